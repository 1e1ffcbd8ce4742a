//! Label values and their encoding into Envoy stat names.
//!
//! Envoy custom metrics have no labels of their own. We encode them Istio-style in the name,
//! `handler=.=/login;.;method=.=POST;.;http_requests_total`, and the bootstrap's `stats_tags`
//! (one regex per label name) turn them back into Prometheus labels. Every value here comes from
//! a fixed set or from the configuration: never from the request itself.

/// Label names the filter emits; the Envoy bootstrap needs one `stats_tags` entry for each.
pub const LABEL_NAMES: [&str; 6] = ["handler", "method", "status", "sampler", "reason", "plugin"];

/// Label names a configuration may not give its own labels: the filter's, and those Prometheus
/// adds to histogram and summary series.
pub const RESERVED_LABEL_NAMES: [&str; 8] = [
    "handler", "method", "status", "sampler", "reason", "plugin", "le", "quantile",
];

/// The `tag_name`s of Istio's own bootstrap `stats_tags` (1.30; `../shared/notes/envoy-wasm-facts.md`).
/// Envoy refuses a bootstrap naming a tag twice, so a configured label (added to `extraStatTags`)
/// may not take one of these names.
pub const ISTIO_TAG_NAMES: [&str; 16] = [
    "cluster_name",
    "http_conn_manager_prefix",
    "thread_name",
    "tcp_prefix",
    "response_code",
    "response_code_class",
    "http_conn_manager_listener_prefix",
    "listener_address",
    "mongo_prefix",
    "cache",
    "component",
    "tag",
    "wasm_filter",
    "authz_enforce_result",
    "authz_dry_run_action",
    "authz_dry_run_result",
];

/// What a dynamic label reads when its header holds a value that is not listed.
pub const OTHER_VALUE: &str = "other";
/// What a dynamic label reads when its header is absent.
pub const ABSENT_VALUE: &str = "none";

/// Which header map a dynamic label's header is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Request,
    Response,
}

/// A label whose value comes from a header, mapped onto a fixed set: one of `values` when the
/// header's (first) value is exactly that, [`OTHER_VALUE`] when it is present but not listed,
/// [`ABSENT_VALUE`] when absent. So it takes `values.len() + 2` values at most.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dynamic {
    pub name: String,
    pub side: Side,
    /// The header's index among the headers the filter reads from that side beyond the fixed
    /// ones (`filter::REQUEST_RULE_HEADERS` onwards).
    pub header: usize,
    pub values: Vec<String>,
}

impl Dynamic {
    /// The index of the label value for a header value: listed values first, then `other`, then
    /// `none`.
    pub fn index(&self, value: Option<&[u8]>) -> usize {
        match value {
            None => self.values.len() + 1,
            Some(v) => self
                .values
                .iter()
                .position(|w| w.as_bytes() == v)
                .unwrap_or(self.values.len()),
        }
    }

    /// The label value at `index` (see [`Dynamic::index`]).
    pub fn label(&self, index: usize) -> &str {
        match self.values.get(index) {
            Some(v) => v,
            None if index == self.values.len() => OTHER_VALUE,
            None => ABSENT_VALUE,
        }
    }

    /// How many label values it can take.
    pub fn radix(&self) -> u64 {
        self.values.len() as u64 + 2
    }
}

/// The dynamic labels of one metric. A request's values are one number, the combination
/// (mixed radix over the labels), so a labelled series is found by (series, combination).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSet {
    pub labels: Vec<Dynamic>,
}

impl LabelSet {
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// How many combinations of values the labels can take (1 without labels).
    pub fn combinations(&self) -> u64 {
        self.labels
            .iter()
            .fold(1u64, |n, l| n.saturating_mul(l.radix()))
    }

    /// The combination of a request: `request` and `response` hold the values of the headers
    /// read beyond the fixed ones (the labels' `header` indices), `None` when absent.
    pub fn combination(&self, request: &[Option<&[u8]>], response: &[Option<&[u8]>]) -> u64 {
        self.labels.iter().fold(0u64, |n, l| {
            let values = match l.side {
                Side::Request => request,
                Side::Response => response,
            };
            let value = values.get(l.header).copied().flatten();
            n.saturating_mul(l.radix())
                .saturating_add(l.index(value) as u64)
        })
    }

    /// The (name, value) labels of `combination`, in the labels' order.
    pub fn pairs(&self, combination: u64) -> Vec<(&str, &str)> {
        let mut rest = combination;
        let mut pairs: Vec<(&str, &str)> = self
            .labels
            .iter()
            .rev()
            .map(|l| {
                let radix = l.radix();
                let index = usize::try_from(rest % radix).unwrap_or(usize::MAX);
                rest /= radix;
                (l.name.as_str(), l.label(index))
            })
            .collect();
        pairs.reverse();
        pairs
    }
}

/// What Istio's bootstrap tag regexes (1.30; `../shared/notes/envoy-wasm-facts.md`) capture
/// anywhere in a stat name, besides our own `NAME=.=VALUE;.;` ones: a label value holding one of
/// these gains an extra label and loses part of its text. Each `.` is followed in a stat name by
/// another `.` (our `;.;` separators), so the substring alone decides.
pub const ISTIO_CAPTURED: [&str; 10] = [
    "cache.",
    "component.",
    "tag.",
    "wasm_filter.",
    "rbac.allowed",
    "rbac.denied",
    ".istio_dry_run_allow_",
    ".istio_dry_run_deny_",
    ".shadow_allowed",
    ".shadow_denied",
];

/// The first substring of `value` that Istio's tag regexes would capture.
pub fn istio_captured(value: &str) -> Option<&'static str> {
    ISTIO_CAPTURED.iter().copied().find(|c| value.contains(c))
}

/// Istio's `response_code` tags take a stat name ending in `_rq_200` or `_rq_2xx`.
pub fn ends_like_response_code(name: &str) -> bool {
    let Some((_, tail)) = name.rsplit_once("_rq_") else {
        return false;
    };
    let b = tail.as_bytes();
    b.len() == 3
        && b.first().is_some_and(u8::is_ascii_digit)
        && (b.get(1..).is_some_and(|r| r.iter().all(u8::is_ascii_digit))
            || b.get(1..) == Some(b"xx"))
}

/// A plugin name (`extensions.istio.io/wasmplugin/ns.name`) as a label value: `;` and `=` (our
/// label delimiters) and the `.` of any sequence Istio's regexes capture become `_`, so the name
/// keeps exactly its one label; everything else is kept.
pub fn plugin_label_value(name: &[u8]) -> String {
    let mut out: Vec<u8> = name
        .iter()
        .map(|&b| if b == b';' || b == b'=' { b'_' } else { b })
        .collect();
    for captured in ISTIO_CAPTURED {
        let pattern = captured.as_bytes();
        let dot = pattern.iter().position(|&b| b == b'.').unwrap_or(0);
        let mut at = 0;
        while let Some(found) = out
            .get(at..)
            .and_then(|rest| rest.windows(pattern.len()).position(|w| w == pattern))
        {
            if let Some(b) = out.get_mut(at + found + dot) {
                *b = b'_';
            }
            at += found + 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

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
