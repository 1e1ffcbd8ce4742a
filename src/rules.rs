//! Counter rules compiled from the configuration, and the matching that decides which counters a
//! response increments. Split in two halves so nothing from the request is kept longer than needed:
//! [`Rules::candidates`] runs on request headers (method, path, request headers), and
//! [`Rules::confirm`] on response headers (status, response headers).
//!
//! Method and path are looked up in an index ([`index`]): a request pays for the rules of its
//! method and route, however many others there are.

mod index;

use crate::config::{BodyCondition, Counter, HeaderMatch, Increment, StatusMatch};
use crate::labels::Side;
use crate::routes::strip_query;
use index::Index;

/// One header condition, referring to the header by its index in [`Rules::request_headers`]
/// or [`Rules::response_headers`].
#[derive(Debug, Clone)]
struct HeaderRule {
    index: usize,
    expect: HeaderMatch,
}

impl HeaderRule {
    fn matches(&self, values: &[Option<&[u8]>]) -> bool {
        let value = values.get(self.index).copied().flatten();
        match (&self.expect, value) {
            (HeaderMatch::Present(want), v) => *want == v.is_some(),
            (HeaderMatch::Exact(want), Some(v)) => want.as_bytes() == v,
            (HeaderMatch::Exact(_), None) => false,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub name: String,
    status: Vec<StatusMatch>,
    request_headers: Vec<HeaderRule>,
    response_headers: Vec<HeaderRule>,
    /// What the rule reads of the bodies (`body.rs` evaluates it); `None` for most rules.
    pub body: Option<Box<BodyRule>>,
}

/// A rule's conditions on the JSON bodies, its increment, and how much of a body it reads.
#[derive(Debug, Clone)]
pub struct BodyRule {
    pub request_json: Vec<BodyCondition>,
    pub response_json: Vec<BodyCondition>,
    pub increment: Option<Increment>,
    pub limit: usize,
    /// Whether it reads the request body, the response body (`Counter::reads_body`).
    reads: [bool; 2],
}

impl BodyRule {
    pub fn conditions(&self, side: Side) -> &[BodyCondition] {
        match side {
            Side::Request => &self.request_json,
            Side::Response => &self.response_json,
        }
    }

    /// Whether this side's body is read: a condition on it, or the increment.
    pub fn reads(&self, side: Side) -> bool {
        on_side(self.reads, side)
    }
}

impl Rule {
    fn allows(&self, status: u16) -> bool {
        self.status.is_empty() || self.status.iter().any(|s| s.matches(status))
    }
}

#[derive(Debug, Clone, Default)]
pub struct Rules {
    pub rules: Vec<Rule>,
    /// Lower-cased names of the request headers some rule reads; only these are fetched.
    pub request_headers: Vec<String>,
    pub response_headers: Vec<String>,
    /// Whether some rule reads the request body, the response body.
    pub reads_bodies: [bool; 2],
    /// The rules by method and path.
    index: Index,
}

/// A side's flag of a `[request, response]` pair.
fn on_side([request, response]: [bool; 2], side: Side) -> bool {
    match side {
        Side::Request => request,
        Side::Response => response,
    }
}

/// Sorts a few rule indices, mostly in order already; std's sort would add kilobytes of code
/// to the .wasm for this.
fn sort(indices: &mut [usize]) {
    for i in 1..indices.len() {
        let mut j = i;
        while j > 0 && indices.get(j - 1) > indices.get(j) {
            indices.swap(j - 1, j);
            j -= 1;
        }
    }
}

fn header_index(names: &mut Vec<String>, name: &str) -> usize {
    let name = name.to_ascii_lowercase();
    match names.iter().position(|n| *n == name) {
        Some(i) => i,
        None => {
            names.push(name);
            names.len() - 1
        }
    }
}

impl Rules {
    pub fn new(counters: &[Counter]) -> Self {
        let mut rules = Rules::default();
        for counter in counters {
            let m = &counter.matches;
            let request_headers = m
                .request_headers
                .iter()
                .map(|(name, expect)| HeaderRule {
                    index: header_index(&mut rules.request_headers, name),
                    expect: expect.clone(),
                })
                .collect();
            let response_headers = m
                .response_headers
                .iter()
                .map(|(name, expect)| HeaderRule {
                    index: header_index(&mut rules.response_headers, name),
                    expect: expect.clone(),
                })
                .collect();
            let reads = [
                counter.reads_body(Side::Request),
                counter.reads_body(Side::Response),
            ];
            let body = (reads[0] || reads[1]).then(|| {
                Box::new(BodyRule {
                    request_json: m.request_json.clone(),
                    response_json: m.response_json.clone(),
                    increment: counter.increment.clone(),
                    limit: counter.body_limit(),
                    reads,
                })
            });
            for (any, this) in rules.reads_bodies.iter_mut().zip(reads) {
                *any |= this;
            }
            rules
                .index
                .insert(m.method.as_deref(), m.path.as_deref(), rules.rules.len());
            rules.rules.push(Rule {
                name: counter.name.clone(),
                status: m.status.clone().unwrap_or_default(),
                request_headers,
                response_headers,
                body,
            });
        }
        rules
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Whether some rule that `method` can match looks at the path.
    pub fn need_path(&self, method: &[u8]) -> bool {
        self.index.need_path(method)
    }

    /// Indices of the rules whose request side matches, in order. `path` may carry a query
    /// string; `request_headers` holds the values of [`Rules::request_headers`], in order.
    pub fn candidates(
        &self,
        method: &[u8],
        path: Option<&str>,
        request_headers: &[Option<&[u8]>],
    ) -> Vec<usize> {
        let mut found = self.matching(method, path.map(strip_query));
        found.retain(|&i| {
            self.rules.get(i).is_some_and(|rule| {
                rule.request_headers
                    .iter()
                    .all(|h| h.matches(request_headers))
            })
        });
        found
    }

    /// Indices of the rules whose method and path match (`path` without its query; `None`
    /// matches only rules for any path), in order.
    fn matching(&self, method: &[u8], path: Option<&str>) -> Vec<usize> {
        let mut found = Vec::new();
        self.index.matching(method, path, &mut found);
        sort(&mut found);
        found
    }

    /// Whether some rule reads the bodies on `side` at all.
    pub fn reads_body(&self, side: Side) -> bool {
        on_side(self.reads_bodies, side)
    }

    /// The rules that read the body on `side` of a request with `method` and `path` (and, for
    /// the response, `status`; `None`: not known yet, see [`Rules::status_allows`]): decided
    /// before the body, so that only these bodies are read.
    pub fn reading_body(
        &self,
        side: Side,
        method: &[u8],
        path: Option<&str>,
        status: Option<u16>,
    ) -> Vec<usize> {
        let Some(path) = path.map(strip_query).filter(|_| self.reads_body(side)) else {
            return Vec::new();
        };
        let mut found = self.matching(method, Some(path));
        found.retain(|&i| {
            self.rules.get(i).is_some_and(|rule| {
                rule.body.as_ref().is_some_and(|b| b.reads(side))
                    && (side == Side::Request || status.is_none_or(|s| rule.allows(s)))
            })
        });
        found
    }

    /// Whether rule `index`'s status condition, if any, allows `status`.
    pub fn status_allows(&self, index: usize, status: u16) -> bool {
        self.rules.get(index).is_some_and(|r| r.allows(status))
    }

    /// Whether candidate `index` also matches the response; `status` is `None` when there was
    /// none (the client went away first), which only a rule without a status condition matches.
    pub fn confirm(
        &self,
        index: usize,
        status: Option<u16>,
        response_headers: &[Option<&[u8]>],
    ) -> bool {
        self.rules.get(index).is_some_and(|rule| {
            (rule.status.is_empty()
                || status.is_some_and(|status| rule.status.iter().any(|s| s.matches(status))))
                && rule
                    .response_headers
                    .iter()
                    .all(|h| h.matches(response_headers))
        })
    }
}

#[cfg(test)]
#[path = "../tests/unit/rules.rs"]
mod tests;
