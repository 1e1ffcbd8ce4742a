//! What each fuzz target checks, in one place. The targets in `fuzz_targets/` call these, and
//! the root crate's `tests/fuzz_regressions.rs` includes this very file (`#[path]`) to replay
//! every input kept under `tests/fuzz_regressions/<target>/` with a plain `cargo test`.
//!
//! A check fails by panicking (`assert!`), which libFuzzer records as a crash. No `unwrap`,
//! indexing or `panic!` here: the root crate's lints apply when the regression test includes it.

use app_metrics::bodies::{Bodies, Chunk};
use app_metrics::body::{self, Reading, Verdict};
use app_metrics::config::{self, BodyTest, Counter, Match, ValueSource};
use app_metrics::extract::{sample_value, Answer, SampleError};
use app_metrics::filter::Filter;
use app_metrics::json::{Json, Number};
use app_metrics::labels::{Side, UNMATCHED_HANDLER};
use app_metrics::routes::Routes;
use app_metrics::rules::Rules;
use serde_json::Value;

/// The fuzz targets, by the names `cargo fuzz` knows them.
pub const TARGETS: [&str; 4] = [
    "config_parse",
    "path_templates",
    "value_extraction",
    "body_reader",
];

/// Runs `data` through `target`'s checks; false for an unknown target.
pub fn run(target: &str, data: &[u8]) -> bool {
    match target {
        "config_parse" => config_parse(data),
        "path_templates" => path_templates(data),
        "value_extraction" => value_extraction(data),
        "body_reader" => body_reader(data),
        _ => return false,
    }
    true
}

/// Bytes → `config::parse`: never a panic; a refusal names a field path and a reason; an
/// accepted configuration validates again, keeps every handler template, and classifies its
/// own templates to configured labels only.
pub fn config_parse(data: &[u8]) {
    let config = match config::parse(data) {
        Ok(config) => config,
        Err(e) => {
            assert!(!e.path.is_empty(), "config error without a path: {e:?}");
            assert!(
                !e.message.trim().is_empty(),
                "config error without a message: {e:?}"
            );
            return;
        }
    };
    assert_eq!(config::validate(&config), Ok(()));
    let handlers = &config.http_metrics.handlers;
    assert_eq!(
        Routes::new(handlers).map_or(0, |r| r.len()),
        handlers.len(),
        "a validated handler was dropped"
    );
    let excluded = &config.http_metrics.excluded_handlers;
    assert_eq!(
        Routes::new(excluded).map_or(0, |r| r.len()),
        excluded.len(),
        "a validated exclusion was dropped"
    );
    let filter = Filter::new(&config);
    let paths = handlers.iter().chain(excluded).map(String::as_str);
    for path in paths.chain(["/", "", "/login"]) {
        check_classify(&filter, handlers, path);
    }
}

fn check_classify(filter: &Filter, handlers: &[String], path: &str) {
    let e = filter.classify(b"GET", Some(path), &[]);
    assert!(e.candidates.iter().all(|&i| i < filter.rules.rules.len()));
    if let (Some(http), Some(h)) = (&filter.http, e.handler) {
        assert!(h < http.handler_count());
        let label = http.handler_label(h);
        assert!(
            label == UNMATCHED_HANDLER || handlers.iter().any(|t| t == label),
            "handler label {label:?} for {path:?} is not a configured template"
        );
    }
}

/// Splits at the first `sep`: (before, after); no `sep` means all of it is `before`.
fn split_once(data: &[u8], sep: u8) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == sep) {
        Some(i) => (
            data.get(..i).unwrap_or_default(),
            data.get(i + 1..).unwrap_or_default(),
        ),
        None => (data, &[]),
    }
}

fn lines(data: &[u8], max: usize) -> Vec<String> {
    data.split(|&b| b == b'\n')
        .take(max)
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect()
}

/// `templates (one a line) NUL paths (one a line)` → `Routes` and `Rules` built from the
/// templates, validated or not; every path looked up. Never a panic; a match names a configured
/// template; a static template matches itself; a template whose `{x}` parameters are whole
/// segments matches itself with a non-empty segment put in their place.
pub fn path_templates(data: &[u8]) {
    let (templates, paths) = split_once(data, 0);
    let templates = lines(templates, 8);
    let mut paths = lines(paths, 8);
    let routes = Routes::accepting(&templates);
    assert!(routes.len() <= templates.len());
    let counters: Vec<Counter> = templates
        .iter()
        .enumerate()
        .map(|(i, t)| Counter {
            name: format!("c{i}"),
            help: String::new(),
            matches: Match {
                path: Some(t.clone()),
                ..Match::default()
            },
            labels: Vec::new(),
            increment: None,
            max_body_bytes: None,
        })
        .collect();
    let rules = Rules::new(&counters);

    // A segment to put in place of parameters: from the first path, without '/', '?' or '#'.
    let segment: String = paths
        .first()
        .map(|p| {
            p.chars()
                .filter(|c| !matches!(c, '/' | '?' | '#'))
                .collect()
        })
        .filter(|s: &String| !s.is_empty())
        .unwrap_or_else(|| "x".to_string());
    for t in &templates {
        paths.push(t.clone());
        if let Some(path) = instantiate(t, &segment) {
            let alone = Routes::accepting(std::slice::from_ref(t));
            if alone.len() == 1 {
                assert_eq!(alone.find(&path), Some(0), "{t:?} does not match {path:?}");
            }
            paths.push(path);
        }
    }

    for path in &paths {
        if let Some(i) = routes.find(path) {
            let template = routes.template(i);
            assert!(template.is_some_and(|t| templates.iter().any(|c| c == t)));
        }
        let candidates = rules.candidates(b"GET", Some(path), &[]);
        assert!(candidates.iter().all(|&i| i < counters.len()));
        for i in candidates {
            assert!(rules.confirm(i, Some(200), &[]));
        }
    }
    assert!(rules
        .candidates(b"GET", None, &[])
        .iter()
        .all(|&i| i < counters.len()));

    // A static template (no braces, nothing `find` would strip) that the router kept matches
    // itself.
    for i in 0..routes.len() {
        if let Some(t) = routes.template(i) {
            if !t.contains(['{', '}', '?', '#']) {
                assert_eq!(
                    routes.find(t),
                    Some(i),
                    "static template {t:?} does not match itself"
                );
            }
        }
    }

    // The same templates through the configuration: if accepted, classification yields only
    // configured labels.
    let json = format!(
        "{{\"counters\": [], \"http_metrics\": {{\"handlers\": {}}}}}",
        json_strings(&templates)
    );
    if let Ok(config) = config::parse(json.as_bytes()) {
        let filter = Filter::new(&config);
        for path in &paths {
            check_classify(&filter, &config.http_metrics.handlers, path);
        }
    }
}

/// `t` with each whole-segment `{name}` parameter replaced by `value`, or `None` when `t` has
/// braces anywhere else (escapes, catch-alls, prefixes, suffixes), has no parameter, or has a
/// static part `find` would cut (`?`, `#`).
fn instantiate(t: &str, value: &str) -> Option<String> {
    let mut params = 0;
    let mut out = Vec::new();
    for segment in t.split('/') {
        let name = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}'));
        match name {
            Some(n)
                if !n.is_empty() && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
            {
                params += 1;
                out.push(value);
            }
            _ if segment.contains(['{', '}', '?', '#']) => return None,
            _ => out.push(segment),
        }
    }
    (params > 0 && t.starts_with('/')).then(|| out.join("/"))
}

fn json_strings(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
    // Rust's Debug escapes are JSON escapes for everything but `\u{..}` and `\'`; a template
    // that does not survive that is simply refused by the parser, which is fine here.
    format!("[{}]", quoted.join(","))
}

fn bytes<const N: usize>(data: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    for (o, b) in out.iter_mut().zip(data.iter().skip(at)) {
        *o = *b;
    }
    out
}

/// Header (15 bytes: flags, status, max_body, body_size), then `spec NUL header NUL body` →
/// `extract::sample_value`. Never a panic; an `Ok(v)` is a non-negative integer really in the
/// answer; a non-2xx status is always one of the status reasons.
pub fn value_extraction(data: &[u8]) {
    let [flags] = bytes::<1>(data, 0);
    let status = u16::from_le_bytes(bytes(data, 1));
    let max_body = u32::from_le_bytes(bytes(data, 3));
    let body_size = u64::from_le_bytes(bytes(data, 7));
    let rest = data.get(15..).unwrap_or_default();
    let (spec, rest) = split_once(rest, 0);
    let (header, body) = split_once(rest, 0);
    let spec = String::from_utf8_lossy(spec).into_owned();

    let source = match flags & 3 {
        0 => ValueSource::JsonPointer(spec),
        1 => ValueSource::JsonArrayLength(spec),
        2 => ValueSource::Header(spec),
        _ => ValueSource::Text,
    };
    let status = match (flags >> 2) & 3 {
        0 => None,
        1 => Some(status),
        _ => Some(200 + status % 100),
    };
    let max_body = if flags & 0x10 != 0 {
        usize::MAX
    } else {
        usize::try_from(max_body).unwrap_or(usize::MAX)
    };
    let body_size = if flags & 0x20 != 0 {
        usize::try_from(body_size).unwrap_or(usize::MAX)
    } else {
        body.len()
    };
    let answer = Answer {
        status,
        from_upstream: flags & 0x40 != 0,
        header: (flags & 0x80 == 0).then_some(header),
        body,
        body_size,
    };

    let result = sample_value(&source, &answer, max_body);
    let two_xx = status.is_some_and(|s| (200..300).contains(&s));
    if !two_xx {
        assert!(
            matches!(
                result,
                Err(SampleError::Status | SampleError::Timeout | SampleError::Unreachable)
            ),
            "status {status:?} gave {result:?}"
        );
    }
    let Ok(v) = result else {
        return;
    };
    match &source {
        ValueSource::Header(_) => number_text_is(answer.header.unwrap_or_default(), v),
        ValueSource::Text => {
            assert!(body.len() <= max_body && body_size <= max_body);
            number_text_is(body, v);
        }
        ValueSource::JsonPointer(p) => {
            assert!(body.len() <= max_body && body_size <= max_body);
            let doc = serde_json::from_slice::<serde_json::Value>(body).ok();
            let value = doc.as_ref().and_then(|d| d.pointer(p));
            assert!(
                value.is_some_and(serde_json::Value::is_number),
                "Ok({v}) from {value:?}"
            );
            let exact = value.and_then(serde_json::Value::as_u64) == Some(v);
            let integral = value
                .and_then(serde_json::Value::as_f64)
                .is_some_and(|f| f >= 0.0 && f.fract() == 0.0 && v as f64 == f);
            assert!(exact || integral, "Ok({v}) from {value:?}");
        }
        ValueSource::JsonArrayLength(p) => {
            assert!(body.len() <= max_body && body_size <= max_body);
            let doc = serde_json::from_slice::<serde_json::Value>(body).ok();
            let len = doc
                .as_ref()
                .and_then(|d| d.pointer(p))
                .and_then(serde_json::Value::as_array)
                .map(Vec::len);
            assert_eq!(len.and_then(|l| u64::try_from(l).ok()), Some(v));
        }
    }
}

/// `raw` is text for a finite, non-negative integer equal to `v`.
fn number_text_is(raw: &[u8], v: u64) {
    let text = std::str::from_utf8(raw).map(str::trim);
    assert!(text.is_ok(), "Ok({v}) from non-UTF-8 {raw:?}");
    let text = text.unwrap_or_default();
    let f = text.parse::<f64>().unwrap_or(f64::NAN);
    assert!(
        f.is_finite() && f >= 0.0 && f.fract() == 0.0 && v as f64 == f,
        "Ok({v}) from {text:?}"
    );
}

/// One line of `body_reader`'s rules: `?P` present, `!P` absent, `+P` the increment,
/// `=P VALUE` equals (VALUE as JSON if it is a scalar, else as a string), else `P` present.
fn body_rule_line(line: &str) -> (&'static str, String, Value) {
    let pointer = |p: &str| {
        if p.is_empty() || p.starts_with('/') {
            p.to_string()
        } else {
            format!("/{p}")
        }
    };
    let mut chars = line.chars();
    let first = chars.next();
    let rest = chars.as_str();
    match first {
        Some('?') => ("present", pointer(rest), Value::Bool(true)),
        Some('!') => ("present", pointer(rest), Value::Bool(false)),
        Some('+') => ("increment", pointer(rest), Value::Null),
        Some('=') => {
            let (p, text) = rest.split_once(' ').unwrap_or((rest, ""));
            let value = match serde_json::from_str::<Value>(text) {
                Ok(v) if !v.is_array() && !v.is_object() => v,
                _ => Value::String(text.to_string()),
            };
            ("equals", pointer(p), value)
        }
        _ => ("present", pointer(line), Value::Bool(true)),
    }
}

/// Bytes 0-4: the even counters' limit - 1, the odd ones', which counters the body is read
/// for (a bit per counter), flags (1: content-length declared, 2: the request's body), how many
/// chunk sizes follow (at most 15; 0 is 1 byte); then `rules (one a line, see body_rule_line)
/// NUL body`. One counter per line, and one with all the lines' conditions.
///
/// The body goes through `Reading` chunk by chunk, as the glue fetches it, then through the
/// VM's table. Never a panic; verdicts for the counters asked only, each once, the same as
/// `body::evaluate` on the whole body; `too_large` exactly past a counter's limit; where
/// serde_json reads the body, what its `Value::pointer` says the contract gives.
pub fn body_reader(data: &[u8]) {
    let [even, odd, mask, flags, count] = bytes::<5>(data, 0);
    let count = usize::from(count % 16);
    let sizes: Vec<usize> = data
        .iter()
        .skip(5)
        .take(count)
        .map(|&b| usize::from(b).max(1))
        .collect();
    let (rules_text, body) = split_once(data.get(5 + count..).unwrap_or_default(), 0);
    let side = if flags & 2 != 0 {
        Side::Request
    } else {
        Side::Response
    };
    let field = match side {
        Side::Request => "request_json",
        Side::Response => "response_json",
    };
    let lines: Vec<(&str, String, Value)> = lines(rules_text, 8)
        .iter()
        .map(|l| body_rule_line(l))
        .collect();
    let counter = |i: usize, lines: &[&(&str, String, Value)]| {
        let conditions: Vec<Value> = lines
            .iter()
            .filter(|(kind, _, _)| *kind != "increment")
            .map(|(kind, p, v)| serde_json::json!({"pointer": p, *kind: v}))
            .collect();
        let increment = lines.iter().find(|(kind, _, _)| *kind == "increment");
        let limit = 1 + usize::from(if i.is_multiple_of(2) { even } else { odd });
        let mut c = serde_json::json!({
            "name": format!("c{i}_total"),
            "match": {"method": "POST", "path": "/b", field: conditions},
            "max_body_bytes": limit,
        });
        if let (Some((_, p, _)), Some(object)) = (increment, c.as_object_mut()) {
            object.insert("increment".into(), serde_json::json!({ field: p }));
        }
        c
    };
    let mut counters: Vec<Value> = lines
        .iter()
        .enumerate()
        .map(|(i, line)| counter(i, &[line]))
        .collect();
    if lines.len() > 1 {
        let all: Vec<&(&str, String, Value)> = lines.iter().collect();
        counters.push(counter(lines.len(), &all));
    }
    let json = serde_json::json!({ "counters": counters }).to_string();
    let config = match config::parse(json.as_bytes()) {
        Ok(config) => config,
        Err(e) => {
            assert!(!e.path.is_empty() && !e.message.is_empty(), "{e:?}");
            return;
        }
    };
    let counters = &config.counters;
    let rules = Rules::new(counters);
    let status = (side == Side::Response).then_some(200);
    let all = rules.reading_body(side, b"POST", Some("/b"), status);
    assert_eq!(all, (0..counters.len()).collect::<Vec<_>>());
    let asked: Vec<usize> = all
        .iter()
        .copied()
        .filter(|i| i >= &8 || mask & (1 << i) != 0)
        .collect();
    let length = (flags & 1 != 0).then_some(body.len() as u64);
    let pieces = chunks(body, &sizes);

    let mut reading = Reading::start(&rules, asked.clone(), JSON_TYPE, None, length);
    for chunk in &pieces {
        let n = reading.wanted(chunk.len());
        assert!(n <= chunk.len());
        reading.push(chunk.get(..n).unwrap_or_default());
    }
    reading.end(&rules, side);
    let verdicts = match reading {
        Reading::Done(v) => v,
        other => {
            let skipped = matches!(other, Reading::Skipped) && asked.is_empty();
            assert!(skipped, "not done at the end: {other:?}");
            Vec::new()
        }
    };
    let indices: Vec<usize> = verdicts.iter().map(|(i, _)| *i).collect();
    assert_eq!(indices, asked, "verdicts for other rules than asked");
    assert_eq!(
        verdicts,
        body::evaluate(&rules, side, &asked, body),
        "chunked and whole differ"
    );
    let tree = serde_json::from_slice::<Value>(body).ok();
    for (i, verdict) in &verdicts {
        let c = counters.get(*i);
        assert!(c.is_some(), "verdict for rule {i}, not configured");
        let Some(c) = c else { continue };
        let too_large = *verdict == Verdict::Unread(body::NotCounted::TooLarge);
        assert_eq!(
            too_large,
            body.len() > c.body_limit(),
            "rule {i}: {verdict:?}"
        );
        if too_large {
            continue;
        }
        match &tree {
            Some(tree) => assert_eq!(*verdict, model(c, side, tree), "rule {i}"),
            // No byte at all is no body (an empty final data frame), not a parse error.
            None => assert!(
                *verdict
                    == Verdict::Unread(if body.is_empty() {
                        body::NotCounted::NoBody
                    } else {
                        body::NotCounted::Parse
                    })
                    || app_metrics::json::lookup(body, &[]).is_ok(),
                "rule {i}: {verdict:?} on a body that does not parse"
            ),
        }
    }

    // Through the VM's table as the glue drives it, as request 1: headers decide how each body
    // is read, then its chunks are copied; the verdicts of all the rules read together.
    let mut bodies = Bodies::default();
    let reading =
        |concerned: Vec<usize>| Reading::start(&rules, concerned, JSON_TYPE, None, length);
    let noted = rules.reading_body(Side::Response, b"POST", Some("/b"), None);
    let busy = match side {
        Side::Request => bodies.request_headers(1, 0, reading(all.clone()), noted),
        Side::Response => {
            let busy = bodies.request_headers(1, 0, Reading::NotStarted, noted);
            bodies.response_headers(1, |noted| {
                let concerned = noted
                    .iter()
                    .copied()
                    .filter(|&i| rules.status_allows(i, 200))
                    .collect();
                reading(concerned)
            });
            busy
        }
    };
    assert_eq!(busy, None);
    let mut source = Source { chunk: &[] };
    let last = pieces.len().saturating_sub(1);
    for (n, chunk) in pieces.iter().enumerate() {
        source.chunk = chunk;
        let c = Chunk {
            context: 1,
            side,
            size: chunk.len(),
            end: n == last,
        };
        bodies.chunk(c, &rules, |n| source.bytes(n));
    }
    if pieces.is_empty() {
        let c = Chunk {
            context: 1,
            side,
            size: 0,
            end: true,
        };
        bodies.chunk(c, &rules, |n| source.bytes(n));
    }
    assert_eq!(bodies.held(), 0, "a copy held after the body ended");
    let pending = bodies.finish(1);
    assert!(pending.is_some());
    let together = body::evaluate(&rules, side, &all, body);
    if let Some(pending) = pending {
        for (i, want) in together {
            assert_eq!(pending.verdict(&rules, i), want, "rule {i} from the table");
        }
    }
}

const JSON_TYPE: Option<&[u8]> = Some(b"application/json");

/// The bytes of one body chunk; its headers decided how it is read, as in the glue.
struct Source<'a> {
    chunk: &'a [u8],
}

impl Source<'_> {
    fn bytes(&mut self, n: usize) -> Option<Vec<u8>> {
        Some(self.chunk.get(..n.min(self.chunk.len()))?.to_vec())
    }
}

/// `body` cut at `sizes` (cycled; all of it in one chunk without sizes).
fn chunks<'a>(body: &'a [u8], sizes: &[usize]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut rest = body;
    let mut size = sizes.iter().cycle();
    while !rest.is_empty() {
        let n = size
            .next()
            .copied()
            .unwrap_or(rest.len())
            .clamp(1, rest.len());
        let (chunk, tail) = rest.split_at(n);
        out.push(chunk);
        rest = tail;
    }
    out
}

/// The contract on a body serde_json reads as `tree`: every condition holds (a missing
/// pointer for `equals` says nothing, a value that differs says no), then the increment is a
/// non-negative integer.
fn model(c: &Counter, side: Side, tree: &Value) -> Verdict {
    let conditions = match side {
        Side::Request => &c.matches.request_json,
        Side::Response => &c.matches.response_json,
    };
    let mut missing = false;
    for condition in conditions {
        let at = tree.pointer(&condition.pointer);
        let holds = match (&condition.test, at) {
            (BodyTest::Present(want), at) => *want == at.is_some(),
            (BodyTest::Equals(_), None) => {
                missing = true;
                true
            }
            (BodyTest::Equals(want), Some(v)) => model_equals(want, v),
        };
        if !holds {
            return Verdict::Fails;
        }
    }
    if missing {
        return Verdict::Unread(body::NotCounted::Missing);
    }
    match c.increment.as_ref().filter(|i| i.side == side) {
        None => Verdict::Holds(None),
        Some(i) => match tree.pointer(&i.pointer) {
            None => Verdict::Unread(body::NotCounted::Missing),
            Some(Value::Number(n)) if n.is_u64() => Verdict::Holds(n.as_u64()),
            Some(_) => Verdict::Unread(body::NotCounted::Invalid),
        },
    }
}

/// `equals` by value: integers exactly, anything with a float as floats.
fn model_equals(want: &Json, v: &Value) -> bool {
    match (want, v) {
        (Json::Null, Value::Null) => true,
        (Json::Bool(a), Value::Bool(b)) => a == b,
        (Json::String(a), Value::String(b)) => a == b,
        (Json::Number(a), Value::Number(b)) => {
            let int = b.as_u64().map(i128::from).or(b.as_i64().map(i128::from));
            match (a, int) {
                (Number::Unsigned(a), Some(b)) => i128::from(*a) == b,
                (Number::Signed(a), Some(b)) => i128::from(*a) == b,
                (Number::Unsigned(a), None) => Some(*a as f64) == b.as_f64(),
                (Number::Signed(a), None) => Some(*a as f64) == b.as_f64(),
                (Number::Float(a), _) => Some(*a) == b.as_f64(),
            }
        }
        _ => false,
    }
}
