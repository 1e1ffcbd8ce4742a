//! What each fuzz target checks, in one place. The targets in `fuzz_targets/` call these, and
//! the root crate's `tests/fuzz_regressions.rs` includes this very file (`#[path]`) to replay
//! every input kept under `tests/fuzz_regressions/<target>/` with a plain `cargo test`.
//!
//! A check fails by panicking (`assert!`), which libFuzzer records as a crash. No `unwrap`,
//! indexing or `panic!` here: the root crate's lints apply when the regression test includes it.

use app_metrics::config::{self, Counter, Match, ValueSource};
use app_metrics::extract::{sample_value, Answer, Reason};
use app_metrics::filter::Filter;
use app_metrics::labels::UNMATCHED_HANDLER;
use app_metrics::routes::Routes;
use app_metrics::rules::Rules;

/// The fuzz targets, by the names `cargo fuzz` knows them.
pub const TARGETS: [&str; 3] = ["config_parse", "path_templates", "value_extraction"];

/// Runs `data` through `target`'s checks; false for an unknown target.
pub fn run(target: &str, data: &[u8]) -> bool {
    match target {
        "config_parse" => config_parse(data),
        "path_templates" => path_templates(data),
        "value_extraction" => value_extraction(data),
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
        Routes::new(handlers).len(),
        handlers.len(),
        "a validated handler was dropped"
    );
    let excluded = &config.http_metrics.excluded_handlers;
    assert_eq!(
        Routes::new(excluded).len(),
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
    let routes = Routes::new(&templates);
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
            let alone = Routes::new(std::slice::from_ref(t));
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
                Err(Reason::Status | Reason::Timeout | Reason::Unreachable)
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
