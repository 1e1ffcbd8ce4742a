//! The syntax of the strings a configuration holds: metric and label names, paths, templates,
//! JSON pointers, header names, authorities.

use super::limits::MAX_PREFIX_BYTES;
use crate::istio::{self, Place};
use crate::json::ConfigError;
use crate::names;

pub(super) fn check_pointer(pointer: &str, at: &str) -> Result<(), ConfigError> {
    if pointer.is_empty() || pointer.starts_with('/') {
        Ok(())
    } else {
        Err(ConfigError::new(
            at,
            format!("{pointer:?} is not a JSON pointer (expected \"\" for the root or a path starting with '/')"),
        ))
    }
}

/// A path that is also a route template matchit accepts (`routes::check_template`).
pub(super) fn check_template(path: &str, at: &str) -> Result<(), ConfigError> {
    check_path(path, at)?;
    crate::routes::check_template(path).map_err(|e| ConfigError::new(at, e))
}

pub(super) fn check_path(path: &str, at: &str) -> Result<(), ConfigError> {
    let clean = !path
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '?' || c == '#');
    if path.starts_with('/') && clean {
        Ok(())
    } else {
        Err(ConfigError::new(
            at,
            format!("{path:?} is not a path (expected it to start with '/', without query, fragment, spaces or control characters)"),
        ))
    }
}

pub(super) fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_:.".contains(&b))
}

/// RFC 3986 authority characters (host, port, user info, IPv6 brackets, %-escapes).
pub(super) fn is_authority(authority: &str) -> bool {
    !authority.is_empty()
        && authority
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@[]%".contains(&b))
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`: what Prometheus takes as a metric or label name.
pub(super) fn is_identifier(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// `prefix`: a start for metric names (identifier characters, at most [`MAX_PREFIX_BYTES`]) that
/// no name Envoy, Istio or the filter's own metrics use can follow, and nothing Istio's tag
/// regexes capture.
pub(super) fn check_prefix(prefix: &str, at: &str) -> Result<(), ConfigError> {
    if !is_identifier(prefix) || prefix.len() > MAX_PREFIX_BYTES {
        return Err(ConfigError::new(
            at,
            format!("{prefix:?} is not a metric name prefix (expected [a-zA-Z_][a-zA-Z0-9_]*, at most {MAX_PREFIX_BYTES} characters)"),
        ));
    }
    if let Some(captured) = istio::captured(Place::MetricName, prefix) {
        return Err(ConfigError::new(
            at,
            format!("{prefix:?} makes {captured:?} in the stat names, which Istio's stats tag regexes would cut out of them into a label of their own (expected another prefix)"),
        ));
    }
    check_namespace(prefix, at, "prefix")
}

/// A name as published (with the configuration's `prefix`) does not start like the filter's own
/// metrics or Envoy's and Istio's.
pub(super) fn check_namespace(name: &str, at: &str, what: &str) -> Result<(), ConfigError> {
    if name.starts_with(names::SELF_PREFIX) {
        return Err(ConfigError::new(
            at,
            format!("{name:?} is reserved by the filter (expected a {what} that does not start with {})", names::SELF_PREFIX),
        ));
    }
    if let Some(prefix) = names::FOREIGN_PREFIXES
        .iter()
        .find(|p| name.starts_with(**p))
    {
        return Err(ConfigError::new(
            at,
            format!("{name:?} starts with {prefix}, which Envoy's and Istio's own metrics use on the same page (expected another {what})"),
        ));
    }
    Ok(())
}

/// Metric names as Envoy's `/stats/prometheus` prints them unchanged, `[a-zA-Z_][a-zA-Z0-9_]*`
/// (it turns any other character, ':' included, into '_', so two names could print as one),
/// and not one the filter, Envoy or Istio publishes there.
#[inline(never)] // as validate_match
pub(super) fn check_metric_name(name: &str, at: &str) -> Result<(), ConfigError> {
    if !is_identifier(name) {
        return Err(ConfigError::new(
            at,
            format!("{name:?} is not a metric name Envoy exports as is (expected [a-zA-Z_][a-zA-Z0-9_]*)"),
        ));
    }
    // In a stat name a metric name follows a `.`: `wasmcustom.` or a label's `;.;`.
    if let Some(captured) = istio::captured(Place::MetricName, name) {
        return Err(ConfigError::new(
            at,
            format!("{name:?} makes {captured:?} in the stat name, which Istio's stats tag regexes would cut out of it into a label of their own (expected another name)"),
        ));
    }
    if istio::ends_like_response_code(name) {
        return Err(ConfigError::new(
            at,
            format!("{name:?} ends like an Envoy response-code stat (_rq_NNN or _rq_Nxx), which Istio's stats tag regexes would cut off into a response_code label (expected another ending)"),
        ));
    }
    let ours = names::RESERVED_NAMES.iter().any(|r| {
        name == *r
            || (!names::RESERVED_COUNTERS.contains(r)
                && names::HISTOGRAM_SUFFIXES
                    .iter()
                    .any(|suffix| name.strip_suffix(suffix) == Some(r)))
    });
    if ours || name.starts_with(names::SELF_PREFIX) {
        return Err(ConfigError::new(
            at,
            format!("{name:?} is reserved by the filter (expected a name that is not one of the filter's request metrics (http_*, grpc_server_*) or one of their series and does not start with {})", names::SELF_PREFIX),
        ));
    }
    check_namespace(name, at, "name")
}

/// `name` as published after `prefix`: still nothing Istio's tag regexes capture (they can
/// span the two), still not in the filter's, Envoy's or Istio's namespace.
pub(super) fn check_prefixed_name(prefix: &str, name: &str, at: &str) -> Result<(), ConfigError> {
    let full = format!("{prefix}{name}");
    if let Some(captured) = istio::captured(Place::MetricName, &full) {
        return Err(ConfigError::new(
            at,
            format!("{full:?} (prefix {prefix:?}, then {name:?}) makes {captured:?} in the stat name, which Istio's stats tag regexes would cut out of it into a label of their own (expected another name or prefix)"),
        ));
    }
    check_namespace(&full, at, "name or prefix")
}
