//! What Istio does to the filter's stat names and configuration, in one place: the tag regexes
//! its bootstrap defines (Istio 1.30, read from its source; docs/configuration.md lists them),
//! the plugin names it gives, and the cluster names it makes for Services.
//!
//! The filter encodes labels as `NAME=.=VALUE;.;` in stat names (`labels::stat_name`); Envoy
//! matches every tag regex of the bootstrap against the whole name and cuts out what it
//! captures. Istio's own regexes may capture inside our names, so whatever a configuration puts
//! in a stat name is checked here first.

/// The `tag_name`s of Istio's own bootstrap `stats_tags`. Envoy refuses a bootstrap naming a tag
/// twice, so a configured label (added to `extraStatTags`) may not take one of these names.
pub const TAG_NAMES: [&str; 16] = [
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

/// What Istio's tag regexes capture anywhere in a stat name, besides our own `NAME=.=VALUE;.;`
/// ones: a label value holding one of these gains an extra label and loses part of its text.
/// Each `.` is followed in a stat name by another `.` (our `;.;` separators), so the substring
/// alone decides.
pub const CAPTURED: [&str; 10] = [
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

/// Where a configured string lands in a stat name; what surrounds it there decides what Istio's
/// regexes can capture across its edges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// A metric name follows a `.`: `wasmcustom.` or a label's `;.;`.
    MetricName,
    /// The first label name of a stat name follows `wasmcustom.` and is followed by `=`.
    LabelName,
    /// A label value sits between `=.=` and `;.;`.
    LabelValue,
    /// A handler template, as a label value (checked alone: it holds its own dots).
    Template,
}

/// The first substring Istio's tag regexes would capture from `text` placed at `place`.
pub fn captured(place: Place, text: &str) -> Option<&'static str> {
    let in_name = match place {
        Place::MetricName => format!(".{text}"),
        Place::LabelName => format!(".{text}="),
        Place::LabelValue => format!("=.={text};.;"),
        Place::Template => text.to_string(),
    };
    CAPTURED.iter().copied().find(|c| in_name.contains(c))
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

/// The stats tag regex that turns label `name` back into a Prometheus label: what Istio's
/// `extraStatTags` generates, and what a plain Envoy bootstrap lists in `stats_tags`.
pub fn tag_regex(name: &str) -> String {
    format!("({name}=\\.=(.*?);\\.;)")
}

/// A plugin name (Istio's `<namespace>.<name>`, `~istio-translated-wasmplugin` appended from
/// 1.30) as a label value: `;` and `=` (our label delimiters) and the `.` of any sequence Istio's
/// regexes capture become `_`, so the name keeps exactly its one label; everything else is kept.
pub fn plugin_label_value(name: &[u8]) -> String {
    let mut out: Vec<u8> = name
        .iter()
        .map(|&b| if b == b';' || b == b'=' { b'_' } else { b })
        .collect();
    for captured in CAPTURED {
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

/// The `:authority` of a Service from an Istio cluster name: `outbound|8000||app.ns.svc.cluster.local`
/// → `app.ns.svc.cluster.local:8000`; a waypoint's `inbound-vip|8000|http|app.ns.svc.cluster.local`
/// the same; `inbound|8000||`, this pod's app → `localhost:8000`. `None` for any other name.
pub fn cluster_authority(cluster: &str) -> Option<String> {
    let mut parts = cluster.split('|');
    match (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) {
        (
            Some(direction @ ("outbound" | "inbound" | "inbound-vip")),
            Some(port),
            Some(_),
            Some(host),
            None,
        ) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => match host {
            "" if direction == "inbound" => Some(format!("localhost:{port}")),
            "" => None,
            host => Some(format!("{host}:{port}")),
        },
        _ => None,
    }
}

#[cfg(test)]
#[path = "../tests/unit/istio.rs"]
mod tests;
