//! Label values and their encoding into Envoy stat names.
//!
//! Envoy custom metrics have no labels of their own. We encode them Istio-style in the name,
//! `handler=.=/login;.;method=.=POST;.;http_requests_total`, and the bootstrap's `stats_tags`
//! (one regex per label name) turn them back into Prometheus labels. Every value here comes from
//! a fixed set or from the configuration: never from the request itself.

/// Label names the filter emits; the Envoy bootstrap needs one `stats_tags` entry for each.
pub const LABEL_NAMES: [&str; 5] = ["handler", "method", "status", "sampler", "reason"];

/// Methods reported by name (Instrumentator's set); anything else is `other`.
pub const METHODS: [&str; 9] = [
    "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT", "TRACE",
];
pub const OTHER_METHOD: usize = METHODS.len();
pub const METHOD_COUNT: usize = METHODS.len() + 1;

pub const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];
/// A status outside 100-599 (Envoy passes on what the upstream sends).
pub const OTHER_STATUS: usize = STATUS_CLASSES.len();
pub const STATUS_COUNT: usize = STATUS_CLASSES.len() + 1;

/// Handler label for a path that matches no template (Instrumentator's grouping of untemplated routes).
pub const UNMATCHED_HANDLER: &str = "none";

pub fn method_index(method: &[u8]) -> usize {
    METHODS
        .iter()
        .position(|m| m.as_bytes() == method)
        .unwrap_or(OTHER_METHOD)
}

pub fn method_label(index: usize) -> &'static str {
    METHODS.get(index).copied().unwrap_or("other")
}

pub fn status_index(status: u16) -> usize {
    match status {
        100..=599 => usize::from(status / 100 - 1),
        _ => OTHER_STATUS,
    }
}

pub fn status_label(index: usize) -> &'static str {
    STATUS_CLASSES.get(index).copied().unwrap_or("other")
}

/// `k1=.=v1;.;k2=.=v2;.;name`: the stat name carrying `labels`.
pub fn stat_name(name: &str, labels: &[(&str, &str)]) -> String {
    let len = name.len()
        + labels
            .iter()
            .map(|(k, v)| k.len() + v.len() + 6)
            .sum::<usize>();
    let mut out = String::with_capacity(len);
    for (key, value) in labels {
        out.push_str(key);
        out.push_str("=.=");
        out.push_str(value);
        out.push_str(";.;");
    }
    out.push_str(name);
    out
}

#[cfg(test)]
#[path = "../tests/unit/labels.rs"]
mod tests;
