//! Checking what the types cannot: names, paths, templates, ranges, uniqueness, and what each
//! part of a configuration may read.

use super::bound::check_series_bound;
use super::labels::{
    check_grpc_overlap, check_label_value, side_field, validate_constant_labels, validate_labels,
    HeaderNames,
};
use super::limits::*;
use super::syntax::*;
use super::types::*;
use crate::istio::{self, Place};
use crate::json::ConfigError;
use crate::labels::Side;
use crate::names;
use crate::routes::Routes;
use std::collections::BTreeMap;

/// Checks what the types cannot: names, paths, templates, ranges, uniqueness.
pub fn validate(config: &Config) -> Result<(), ConfigError> {
    let prefix = config.prefix.as_deref();
    if let Some(prefix) = prefix {
        check_prefix(prefix, "prefix")?;
        // The request and gRPC metrics take it too (the filter's own app_metrics_* do not).
        for name in names::RESERVED_NAMES
            .iter()
            .filter(|n| !n.starts_with(names::SELF_PREFIX))
        {
            check_prefixed_name(prefix, name, "prefix")?;
        }
    }
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    let mut claim = |name: &str, path: String| -> Result<(), ConfigError> {
        check_metric_name(name, &path)?;
        if let Some(prefix) = prefix {
            check_prefixed_name(prefix, name, &path)?;
        }
        if let Some(owner) = names.get(name) {
            return Err(ConfigError::new(
                path,
                format!("{name:?} is already used by {owner} (expected a unique metric name)"),
            ));
        }
        names.insert(name.to_string(), path.trim_end_matches(".name").to_string());
        Ok(())
    };
    if config.counters.len() > MAX_COUNTERS {
        return Err(ConfigError::new(
            "counters",
            format!(
                "has {} counters (expected at most {MAX_COUNTERS}: every request is checked against each)",
                config.counters.len()
            ),
        ));
    }
    let mut header_names = HeaderNames::default();
    let mut labels = validate_constant_labels(&config.labels)?;
    for (i, counter) in config.counters.iter().enumerate() {
        let at = format!("counters[{i}]");
        claim(&counter.name, format!("{at}.name"))?;
        validate_match(&counter.matches, &format!("{at}.match"))?;
        validate_body_reads(counter, &at)?;
        let m = &counter.matches;
        for (side, headers) in [
            (Side::Request, &m.request_headers),
            (Side::Response, &m.response_headers),
        ] {
            for name in headers.keys() {
                header_names.read(side, name, || {
                    format!("{at}.match.{}.{name}", side_field(side))
                })?;
            }
        }
        validate_labels(
            &counter.labels,
            &format!("{at}.labels"),
            &mut labels,
            &mut header_names,
        )?;
    }
    for (i, sampler) in config.samplers.iter().enumerate() {
        let at = format!("samplers[{i}]");
        claim(&sampler.name, format!("{at}.name"))?;
        validate_sampler(sampler, &at)?;
    }
    if let Some(grpc) = &config.grpc {
        validate_grpc(grpc)?;
    }
    let http = &config.http_metrics;
    validate_labels(
        &http.labels,
        "http_metrics.labels",
        &mut labels,
        &mut header_names,
    )?;
    for (field, list) in [
        ("handlers", &http.handlers),
        ("excluded_handlers", &http.excluded_handlers),
    ] {
        for (i, template) in list.iter().enumerate() {
            let at = format!("http_metrics.{field}[{i}]");
            check_template(template, &at)?;
            if template.contains(';') || template.contains('=') {
                return Err(ConfigError::new(
                    at,
                    format!("{template:?} contains ';' or '=' (expected a path template without them: they delimit labels in stat names)"),
                ));
            }
            if let Some(captured) = istio::captured(Place::Template, template) {
                return Err(ConfigError::new(
                    at,
                    format!("{template:?} contains {captured:?}, which Istio's stats tag regexes would cut out of the handler label into a label of their own (expected a template without it)"),
                ));
            }
        }
        Routes::new(list)
            .map_err(|(i, e)| ConfigError::new(format!("http_metrics.{field}[{i}]"), e))?;
    }
    if config.grpc.is_some() {
        check_grpc_overlap(&labels)?;
    }
    check_series_bound(config)
}

// Not inlined: V8 compiles each function whole at load, and its memory follows the largest
// (BENCHMARKS.md); `validate` with this, validate_sampler and check_metric_name inlined was the
// module's largest.
#[inline(never)]
fn validate_match(m: &Match, at: &str) -> Result<(), ConfigError> {
    if let Some(method) = &m.method {
        let ok = !method.is_empty() && method.bytes().all(|b| b.is_ascii_uppercase());
        if !ok {
            return Err(ConfigError::new(
                format!("{at}.method"),
                format!(
                    "{method:?} is not an HTTP method (expected upper-case letters, e.g. \"POST\")"
                ),
            ));
        }
    }
    if let Some(path) = &m.path {
        check_template(path, &format!("{at}.path"))?;
    }
    if let Some(status) = &m.status {
        if status.is_empty() {
            return Err(ConfigError::new(
                format!("{at}.status"),
                "is empty (expected at least one status code or class, or leave it out to match any)",
            ));
        }
    }
    for (field, headers) in [
        ("request_headers", &m.request_headers),
        ("response_headers", &m.response_headers),
    ] {
        for name in headers.keys() {
            if !is_header_name(name) {
                return Err(ConfigError::new(
                    format!("{at}.{field}.{name}"),
                    format!("{name:?} is not a header name (expected letters, digits, '-', '_', '.' or a leading ':')"),
                ));
            }
            let same = |other: &&String| *other != name && other.eq_ignore_ascii_case(name);
            if let Some(other) = headers.keys().find(same) {
                return Err(ConfigError::new(
                    format!("{at}.{field}.{name}"),
                    format!("names the same header as {other:?} (header names are case-insensitive; expected one entry per header)"),
                ));
            }
        }
    }
    Ok(())
}

/// What a counter reads of bodies: only on a path, only what it says.
#[inline(never)] // as validate_match
fn validate_body_reads(counter: &Counter, at: &str) -> Result<(), ConfigError> {
    let reads = counter.body_reads().next().is_some();
    if !reads {
        if counter.max_body_bytes.is_some() {
            return Err(ConfigError::new(
                format!("{at}.max_body_bytes"),
                "is set, but the counter reads no body (expected match.request_json, match.response_json or increment with it)",
            ));
        }
        return Ok(());
    }
    if counter.matches.path.is_none() {
        return Err(ConfigError::new(
            format!("{at}.match.path"),
            "is missing, and the counter reads a body (expected the path whose bodies are read: the path decides before the body which requests pay for reading it)",
        ));
    }
    if let Some(increment) = &counter.increment {
        let field = match increment.side {
            Side::Request => "request_json",
            Side::Response => "response_json",
        };
        check_pointer(&increment.pointer, &format!("{at}.increment.{field}"))?;
    }
    Ok(())
}

#[inline(never)] // as validate_match
fn validate_sampler(s: &Sampler, at: &str) -> Result<(), ConfigError> {
    if s.cluster.trim().is_empty() {
        return Err(ConfigError::new(
            format!("{at}.cluster"),
            "is empty (expected the name of an Envoy cluster)",
        ));
    }
    if let Some(authority) = &s.authority {
        if authority.trim().is_empty() {
            return Err(ConfigError::new(
                format!("{at}.authority"),
                "is empty (expected a host name, or leave it out to use the cluster name)",
            ));
        }
    }
    let authority = s.authority();
    if !is_authority(&authority) {
        let what = if s.authority.is_some() {
            format!("{authority:?} is not a valid :authority")
        } else {
            format!(
                "is not set and the cluster name {authority:?} is not a valid :authority, which \
                 Envoy would refuse"
            )
        };
        return Err(ConfigError::new(
            format!("{at}.authority"),
            format!("{what} (expected a host name with an optional port, e.g. \"app.ns.svc.cluster.local:8000\")"),
        ));
    }
    check_path(&s.path, &format!("{at}.path"))?;
    if !(1..=MAX_INTERVAL_SECONDS).contains(&s.interval_seconds) {
        return Err(ConfigError::new(
            format!("{at}.interval_seconds"),
            format!(
                "{} is out of range (expected 1-{MAX_INTERVAL_SECONDS})",
                s.interval_seconds
            ),
        ));
    }
    if !(1..=MAX_TIMEOUT_MS).contains(&s.timeout_ms) {
        return Err(ConfigError::new(
            format!("{at}.timeout_ms"),
            format!(
                "{} is out of range (expected 1-{MAX_TIMEOUT_MS})",
                s.timeout_ms
            ),
        ));
    }
    if s.timeout_ms > s.interval_seconds.saturating_mul(1000) {
        return Err(ConfigError::new(
            format!("{at}.timeout_ms"),
            format!(
                "{} is longer than interval_seconds ({} s): samples would overlap (expected at most {})",
                s.timeout_ms,
                s.interval_seconds,
                s.interval_seconds.saturating_mul(1000)
            ),
        ));
    }
    if !(1..=MAX_BODY_BYTES_LIMIT).contains(&s.max_body_bytes) {
        return Err(ConfigError::new(
            format!("{at}.max_body_bytes"),
            format!(
                "{} is out of range (expected 1-{MAX_BODY_BYTES_LIMIT})",
                s.max_body_bytes
            ),
        ));
    }
    let value_at = format!("{at}.value");
    match &s.value {
        ValueSource::JsonPointer(p) => check_pointer(p, &format!("{value_at}.json_pointer")),
        ValueSource::JsonArrayLength(p) => {
            check_pointer(p, &format!("{value_at}.json_array_length"))
        }
        ValueSource::Header(h) if h.trim().is_empty() => Err(ConfigError::new(
            format!("{value_at}.header"),
            "is empty (expected a header name such as \"x-total-count\")",
        )),
        ValueSource::Header(h) if !is_header_name(h) => Err(ConfigError::new(
            format!("{value_at}.header"),
            format!("{h:?} is not a header name (expected letters, digits, '-', '_', '.', e.g. \"x-total-count\")"),
        )),
        ValueSource::Header(_) | ValueSource::Text => Ok(()),
    }
}

/// The RPCs listed: each a `/package.Service/Method` path, once, whose parts can be label values.
#[inline(never)] // as validate_match
fn validate_grpc(grpc: &Grpc) -> Result<(), ConfigError> {
    if grpc.methods.len() > MAX_GRPC_METHODS {
        return Err(ConfigError::new(
            "grpc.methods",
            format!(
                "has {} methods (expected at most {MAX_GRPC_METHODS}: each is a row of series)",
                grpc.methods.len()
            ),
        ));
    }
    for (i, (path, _)) in grpc.methods.iter().enumerate() {
        let at = format!("grpc.methods[{i}]");
        let Some((service, method)) = crate::grpc::split_path(path) else {
            return Err(ConfigError::new(
                at,
                format!("{path:?} is not a gRPC method path (expected /package.Service/Method: letters, digits, '_' and '.')"),
            ));
        };
        if grpc.methods.iter().take(i).any(|(p, _)| p == path) {
            return Err(ConfigError::new(
                at,
                format!("{path:?} is listed twice (expected each method once)"),
            ));
        }
        check_label_value(service, &at)?;
        check_label_value(method, &at)?;
    }
    Ok(())
}
