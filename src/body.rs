//! Counters on JSON bodies: which bodies are read, the copy of each as it passes, and what it
//! makes of the rules' conditions (`match.request_json`, `match.response_json`, `increment`).
//!
//! Only the module built with the `bodies` feature reads bodies (`glue::body`): the callbacks
//! that see them are entered for every body chunk of every request, a cost the lean module does
//! not pay. A side's body is read only when some rule's method, path (and, for the response,
//! status) match before it starts ([`crate::rules::Rules::reading_body`]), the content type is
//! JSON and the body is not compressed. The filter never holds a body back: it copies what
//! passes, up to the largest `max_body_bytes` of the rules concerned, and evaluates the copy
//! once the body has ended. Then the copy is dropped; only the verdicts stay until the request
//! is counted. The VM's table of bodies being read, within its memory budget, is `bodies.rs`.

use crate::config::BodyTest;
use crate::grpc;
use crate::json::{lookup, Found, Json};
use crate::labels::Side;
use crate::rules::{BodyRule, Rules};

crate::labels::label_enum! {
    /// Why a body rule did not count a request it otherwise matched
    /// (`app_metrics_body_not_counted_total{reason}`).
    pub enum NotCounted {
        /// The request or response had no body (or it never reached the filter).
        NoBody => "no_body",
        /// The content type is not JSON (`application/json`, `…+json`).
        NotJson => "not_json",
        /// The body is compressed (`content-encoding` other than `identity`).
        Compressed => "compressed",
        /// The body is longer than the counter's `max_body_bytes`.
        TooLarge => "too_large",
        /// The body is not JSON.
        Parse => "parse",
        /// A pointer found nothing (for `equals` or `increment`).
        Missing => "missing",
        /// The increment is not a non-negative integer.
        Invalid => "invalid",
        /// The body had not ended when the request did (a client or upstream that went away).
        Incomplete => "incomplete",
        /// The VM's memory for body copies (or what one client may hold), or its table of
        /// requests being read, was full.
        Busy => "busy",
    }
}

/// What the bodies made of one rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Every condition holds; the increment's amount if the rule has one.
    Holds(Option<u64>),
    /// A condition does not hold: an ordinary non-match, not counted anywhere.
    Fails,
    /// The body could not say: not counted, and counted under the reason.
    Unread(NotCounted),
}

/// Whether a body with these headers is one the filter reads: JSON (not gRPC messages), not
/// compressed.
pub fn readable(
    content_type: Option<&[u8]>,
    content_encoding: Option<&[u8]>,
) -> Result<(), NotCounted> {
    let encoded = |e: &[u8]| {
        let e = e.trim_ascii();
        !e.is_empty() && !e.eq_ignore_ascii_case(b"identity")
    };
    if content_encoding.is_some_and(encoded) {
        return Err(NotCounted::Compressed);
    }
    let media = content_type
        .and_then(|t| t.split(|&b| b == b';').next())
        .map(<[u8]>::trim_ascii)
        .unwrap_or_default();
    // gRPC's JSON codec (`application/grpc+json`, grpc-web's too) frames each message: the
    // body is no JSON document.
    let json = media.eq_ignore_ascii_case(b"application/json")
        || (media.len() > 5
            && media
                .get(media.len() - 5..)
                .is_some_and(|end| end.eq_ignore_ascii_case(b"+json"))
            && media.contains(&b'/')
            && !grpc::is_grpc(media));
    if json {
        Ok(())
    } else {
        Err(NotCounted::NotJson)
    }
}

/// One side's body of one request.
#[derive(Debug, Default)]
pub enum Reading {
    /// No chunk seen yet: at the end, a rule that reads this side finds no body.
    #[default]
    NotStarted,
    /// No rule reads this body.
    Skipped,
    /// Being copied for the rules `rules`, at most `limit` bytes.
    Copying {
        rules: Vec<usize>,
        limit: usize,
        bytes: Vec<u8>,
    },
    /// Evaluated (or refused whole): each rule's verdict.
    Done(Vec<(usize, Verdict)>),
}

impl Reading {
    /// Starts reading a body for the rules `rules` (those [`Rules::reading_body`] found), given
    /// its headers; `length` is its `content-length` when declared.
    pub fn start(
        all: &Rules,
        rules: Vec<usize>,
        content_type: Option<&[u8]>,
        content_encoding: Option<&[u8]>,
        length: Option<u64>,
    ) -> Reading {
        if rules.is_empty() {
            return Reading::Skipped;
        }
        if let Err(reason) = readable(content_type, content_encoding) {
            return refused(rules, reason);
        }
        let limit = rules
            .iter()
            .filter_map(|&i| body_rule(all, i))
            .map(|b| b.limit)
            .max()
            .unwrap_or(0);
        if length.is_some_and(|n| n > limit as u64) {
            return refused(rules, NotCounted::TooLarge);
        }
        // Nothing reserved for the declared length: a client may declare a big body and send
        // nothing. Memory follows what arrives.
        Reading::Copying {
            rules,
            limit,
            bytes: Vec::new(),
        }
    }

    /// How many bytes of a `chunk`-byte chunk to fetch: one past the limit, so that a body
    /// over it is seen to be (0 unless copying).
    pub fn wanted(&self, chunk: usize) -> usize {
        match self {
            Reading::Copying { limit, bytes, .. } => {
                chunk.min(limit.saturating_sub(bytes.len()).saturating_add(1))
            }
            _ => 0,
        }
    }

    /// Bytes of the VM's memory this reading holds.
    pub fn held(&self) -> usize {
        match self {
            Reading::Copying { bytes, .. } => bytes.capacity(),
            _ => 0,
        }
    }

    /// The most bytes this reading copies (0 unless copying).
    pub(crate) fn limit(&self) -> usize {
        match self {
            Reading::Copying { limit, .. } => *limit,
            _ => 0,
        }
    }

    /// Bytes held once `more` bytes are appended.
    pub(crate) fn holding(&self, more: usize) -> usize {
        match self {
            Reading::Copying { bytes, limit, .. } => grown(bytes, more, *limit),
            _ => 0,
        }
    }

    /// Appends a fetched chunk; a body past the limit is refused as `too_large` at once, one
    /// the VM has no memory for as `busy` (the allocation fails, the VM lives).
    pub fn push(&mut self, chunk: &[u8]) {
        if let Reading::Copying {
            rules,
            limit,
            bytes,
        } = self
        {
            if bytes.len().saturating_add(chunk.len()) > *limit {
                *self = refused(std::mem::take(rules), NotCounted::TooLarge);
            } else if grow(bytes, chunk.len(), *limit) {
                bytes.extend_from_slice(chunk);
            } else {
                *self = refused(std::mem::take(rules), NotCounted::Busy);
            }
        }
    }

    /// Gives up on the body (no memory, or no way to read it): `reason` for its rules.
    pub fn refuse(&mut self, reason: NotCounted) {
        if let Reading::Copying { rules, .. } = self {
            *self = refused(std::mem::take(rules), reason);
        }
    }

    /// The body has ended (its last data frame, or trailers after it): evaluates the copy for
    /// `side` and drops it.
    pub fn end(&mut self, all: &Rules, side: Side) {
        if let Reading::Copying { rules, bytes, .. } = self {
            *self = Reading::Done(evaluate(all, side, rules, bytes));
        }
    }

    /// This side's verdict for rule `index`, once the request has ended.
    fn verdict(&self, index: usize) -> Verdict {
        match self {
            Reading::NotStarted | Reading::Skipped => Verdict::Unread(NotCounted::NoBody),
            Reading::Copying { .. } => Verdict::Unread(NotCounted::Incomplete),
            Reading::Done(verdicts) => verdicts
                .iter()
                .find(|(i, _)| *i == index)
                .map_or(Verdict::Unread(NotCounted::NoBody), |(_, v)| *v),
        }
    }
}

/// The capacity `bytes` has once `more` bytes are appended: doubling (few copies of a body that
/// comes in many chunks), never past one byte over the limit.
fn grown(bytes: &Vec<u8>, more: usize, limit: usize) -> usize {
    let need = bytes.len().saturating_add(more);
    if need <= bytes.capacity() {
        return bytes.capacity();
    }
    need.max(
        bytes
            .capacity()
            .saturating_mul(2)
            .min(limit.saturating_add(1)),
    )
}

/// Makes room for `more` bytes in `bytes` ([`grown`]) without aborting when memory is short:
/// `false` then.
pub fn grow(bytes: &mut Vec<u8>, more: usize, limit: usize) -> bool {
    let target = grown(bytes, more, limit);
    target <= bytes.capacity()
        || bytes
            .try_reserve_exact(target.saturating_sub(bytes.len()))
            .is_ok()
}

fn body_rule(all: &Rules, index: usize) -> Option<&BodyRule> {
    all.rules.get(index).and_then(|r| r.body.as_deref())
}

fn refused(rules: Vec<usize>, reason: NotCounted) -> Reading {
    Reading::Done(
        rules
            .into_iter()
            .map(|i| (i, Verdict::Unread(reason)))
            .collect(),
    )
}

/// Each rule's verdict on one complete body, the document read once for all their pointers.
/// No byte at all (an empty final data frame) is no body, not a parse error.
pub fn evaluate(all: &Rules, side: Side, rules: &[usize], body: &[u8]) -> Vec<(usize, Verdict)> {
    if body.is_empty() {
        let no_body = Verdict::Unread(NotCounted::NoBody);
        return rules.iter().map(|&i| (i, no_body)).collect();
    }
    let specs: Vec<(usize, Option<&BodyRule>)> =
        rules.iter().map(|&i| (i, body_rule(all, i))).collect();
    let mut pointers: Vec<&str> = Vec::new();
    for (_, spec) in &specs {
        let Some(spec) = spec else { continue };
        let increment = spec.increment.iter().filter(|i| i.side == side);
        let wanted = spec
            .conditions(side)
            .iter()
            .map(|c| c.pointer.as_str())
            .chain(increment.map(|i| i.pointer.as_str()));
        for pointer in wanted {
            if !pointers.contains(&pointer) {
                pointers.push(pointer);
            }
        }
    }
    let found = lookup(body, &pointers).ok();
    specs
        .into_iter()
        .map(|(i, spec)| {
            let verdict = match (spec, &found) {
                (None, _) => Verdict::Fails,
                (Some(spec), _) if body.len() > spec.limit => Verdict::Unread(NotCounted::TooLarge),
                (Some(_), None) => Verdict::Unread(NotCounted::Parse),
                (Some(spec), Some(found)) => judge(spec, side, |pointer| {
                    pointers
                        .iter()
                        .position(|p| *p == pointer)
                        .and_then(|at| found.get(at))
                        .and_then(Option::as_ref)
                }),
            };
            (i, verdict)
        })
        .collect()
}

/// One rule's verdict on one side, `at` giving what each pointer found.
fn judge<'a>(spec: &BodyRule, side: Side, at: impl Fn(&str) -> Option<&'a Found>) -> Verdict {
    let mut missing = false;
    for condition in spec.conditions(side) {
        let found = at(&condition.pointer);
        let holds = match (&condition.test, found) {
            (BodyTest::Present(want), found) => *want == found.is_some(),
            (BodyTest::Equals(_), None) => {
                missing = true;
                continue;
            }
            (BodyTest::Equals(want), Some(found)) => equals(want, found),
        };
        if !holds {
            return Verdict::Fails;
        }
    }
    if missing {
        return Verdict::Unread(NotCounted::Missing);
    }
    match spec.increment.as_ref().filter(|i| i.side == side) {
        None => Verdict::Holds(None),
        Some(increment) => match at(&increment.pointer) {
            None => Verdict::Unread(NotCounted::Missing),
            Some(Found::Number(crate::json::Number::Unsigned(n))) => Verdict::Holds(Some(*n)),
            Some(_) => Verdict::Unread(NotCounted::Invalid),
        },
    }
}

/// `equals`: the same string, boolean or null, or the same number by value.
pub fn equals(want: &Json, found: &Found) -> bool {
    match (want, found) {
        (Json::Null, Found::Null) => true,
        (Json::Bool(a), Found::Bool(b)) => a == b,
        (Json::String(a), Found::String(b)) => a == b,
        (Json::Number(a), Found::Number(b)) => a.same(*b),
        _ => false,
    }
}

/// Both bodies of a request being read.
#[derive(Debug, Default)]
pub struct Pending {
    pub request: Reading,
    pub response: Reading,
    /// The rules whose method and path want the response body, before its status is known.
    pub response_rules: Vec<usize>,
    /// When the request's headers passed: for [`Bodies::sweep`].
    pub born_ms: u64,
    /// Set when the request got no entry (the table was full): every body rule's verdict.
    pub refused: Option<NotCounted>,
    /// The client's connection (`connection.id`), when known: what one client may hold is
    /// bounded.
    pub connection: Option<u64>,
    /// [`Bodies`]' chunk count at this request's last chunk (or its headers): readings that
    /// stopped progressing are the first to go when the budget is full.
    pub progress: u64,
}

impl Pending {
    /// Bytes both copies hold.
    pub fn held(&self) -> usize {
        self.request.held().saturating_add(self.response.held())
    }

    pub fn side(&mut self, side: Side) -> &mut Reading {
        match side {
            Side::Request => &mut self.request,
            Side::Response => &mut self.response,
        }
    }

    /// What both bodies made of rule `index` of `all`: a non-match on either side wins, then a
    /// body that could not say; the increment comes from the side that has it.
    pub fn verdict(&self, all: &Rules, index: usize) -> Verdict {
        verdict(Some(self), all, index)
    }
}

/// [`Pending::verdict`], with `None` for a request none of whose bodies was seen.
pub fn verdict(pending: Option<&Pending>, all: &Rules, index: usize) -> Verdict {
    let Some(spec) = body_rule(all, index) else {
        return Verdict::Holds(None);
    };
    if let Some(reason) = pending.and_then(|p| p.refused) {
        return Verdict::Unread(reason);
    }
    let mut result = Verdict::Holds(None);
    for side in [Side::Request, Side::Response] {
        if !spec.reads(side) {
            continue;
        }
        let this = match (pending, side) {
            (None, _) => Verdict::Unread(NotCounted::NoBody),
            (Some(p), Side::Request) => p.request.verdict(index),
            (Some(p), Side::Response) => p.response.verdict(index),
        };
        result = match (result, this) {
            (Verdict::Fails, _) | (_, Verdict::Fails) => Verdict::Fails,
            (Verdict::Unread(r), _) | (_, Verdict::Unread(r)) => Verdict::Unread(r),
            (Verdict::Holds(a), Verdict::Holds(b)) => Verdict::Holds(a.or(b)),
        };
    }
    result
}

#[cfg(test)]
#[path = "../tests/unit/body.rs"]
mod tests;
