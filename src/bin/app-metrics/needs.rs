//! What a valid configuration needs from the proxy when it starts: a stats tag per label name
//! (Istio's `extraStatTags`, Envoy's `stats_tags`), histogram bucket settings per handler
//! (`sidecar.istio.io/statsHistogramBuckets`, Envoy's `histogram_bucket_settings`), and the
//! most series it can make.

use app_metrics::config::{self, Config, SeriesBound};
use app_metrics::filter::Filter;
use app_metrics::istio::tag_regex;
use app_metrics::names::{DURATION, GRPC_HANDLING, GRPC_LABEL_NAMES, LABEL_NAMES};

/// Envoy prefixes the stats a wasm module defines with this (and drops it on /stats/prometheus);
/// histogram bucket settings match the full name.
const CUSTOM_STAT_PREFIX: &str = "wasmcustom.";
/// The duration histogram's bucket bounds this kit recommends, in milliseconds: 0.5 ms to 10 s,
/// above that +Inf (Envoy's defaults run to an hour, too coarse for an HTTP app).
pub const DURATION_BUCKETS_MS: [f64; 14] = [
    0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0,
];

/// What a valid configuration needs from the proxy.
#[derive(Debug, Clone, PartialEq)]
pub struct Needs {
    /// One stats tag rule per label name the filter emits (Istio's `extraStatTags`): its own,
    /// then the configuration's constant and dynamic label names.
    pub extra_stat_tags: Vec<String>,
    /// Bucket bounds by stat-name prefix: the duration histogram of each handler label value.
    pub histogram_buckets: Vec<(String, Vec<f64>)>,
    /// The most series the configuration can make (`config::series_bound`).
    pub series: SeriesBound,
}

impl Needs {
    /// `at most 363 (counters 2, http_requests_total 180, http_proxy_responses_total 144,
    /// histograms 36, samplers 0, app_metrics_config_valid 1)`
    pub fn series_text(&self) -> String {
        let s = &self.series;
        format!(
            "at most {} (counters {}, http_requests_total {}, http_proxy_responses_total {}, histograms {}, samplers {}, app_metrics_config_valid {}{})",
            s.total(),
            s.counters,
            s.requests,
            s.proxy_responses,
            s.histograms,
            s.samplers,
            s.config_valid,
            if s.grpc > 0 { format!(", grpc {}", s.grpc) } else { String::new() }
        )
    }

    /// `["handler","method",…]`
    pub fn extra_stat_tags_json(&self) -> String {
        tags_json(&self.extra_stat_tags)
    }

    /// The `sidecar.istio.io/statsHistogramBuckets` value, keys in handler order.
    pub fn histogram_buckets_json(&self) -> String {
        buckets_json(&self.histogram_buckets)
    }
}

/// Istio's `extraStatTags` value: `["handler","method",…]`.
pub fn tags_json(tags: &[String]) -> String {
    serde_json::Value::from(tags.to_vec()).to_string()
}

/// The `sidecar.istio.io/statsHistogramBuckets` value: `{"prefix":[bounds],…}` in this order.
pub fn buckets_json(buckets: &[(String, Vec<f64>)]) -> String {
    let entries: Vec<String> = buckets
        .iter()
        .map(|(prefix, bounds)| format!("{}:{}", json_string(prefix), bounds_json(bounds)))
        .collect();
    format!("{{{}}}", entries.join(","))
}

/// Envoy's `stats_config.stats_tags` entry for a label name, as envoy/envoy.yaml writes it
/// (a JSON string is a YAML double-quoted one).
pub fn envoy_stats_tag(name: &str) -> String {
    format!(
        "{{ tag_name: {name}, regex: {} }}",
        json_string(&tag_regex(name))
    )
}

/// Envoy's `stats_config.histogram_bucket_settings` entry for a prefix.
pub fn envoy_bucket_setting(prefix: &str, bounds: &[f64]) -> String {
    format!(
        "{{ match: {{ prefix: {} }}, buckets: {} }}",
        json_string(prefix),
        bounds_json(bounds)
    )
}

fn json_string(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

/// `[0.5,1,2.5,…]`
fn bounds_json(bounds: &[f64]) -> String {
    let bounds: Vec<String> = bounds.iter().map(f64::to_string).collect();
    format!("[{}]", bounds.join(","))
}

/// The stat tags and histogram buckets `config` needs: every label name the filter emits, then
/// the configuration's (constant, then dynamic in order of appearance), and one
/// duration-histogram prefix per handler label value (the templates, then `none`).
pub fn needs(config: &Config) -> Needs {
    let filter = Filter::new(config);
    let histogram_buckets = filter
        .http
        .iter()
        .flat_map(|http| (0..http.handler_count()).map(|h| http.handler_label(h)))
        .map(|handler| {
            (
                duration_prefix(&filter, handler),
                DURATION_BUCKETS_MS.to_vec(),
            )
        })
        .collect();
    let mut histogram_buckets: Vec<(String, Vec<f64>)> = histogram_buckets;
    if filter.grpc.as_ref().is_some_and(|g| g.handling_time) {
        histogram_buckets.push((grpc_prefix(&filter), DURATION_BUCKETS_MS.to_vec()));
    }
    let grpc_tags = config
        .grpc
        .as_ref()
        .map_or(&[][..], |_| &GRPC_LABEL_NAMES[..]);
    let mut extra_stat_tags: Vec<String> = LABEL_NAMES
        .iter()
        .chain(grpc_tags)
        .map(|n| n.to_string())
        .collect();
    let dynamic = config
        .counters
        .iter()
        .flat_map(|c| &c.labels)
        .chain(
            config
                .http_metrics
                .labels
                .iter()
                .filter(|_| config.http_metrics.enabled),
        )
        .map(|l| &l.name);
    for name in config.labels.iter().map(|(n, _)| n).chain(dynamic) {
        if !extra_stat_tags.contains(name) {
            extra_stat_tags.push(name.clone());
        }
    }
    Needs {
        extra_stat_tags,
        histogram_buckets,
        series: config::series_bound(config),
    }
}

/// The stat name of `handler`'s duration histogram up to its method value: the histograms of
/// every method of that handler, the app's time and (with `total_duration`) the whole request's
/// alike, and nothing else (the size histograms have no method label). Constant labels come
/// first in a stat name, so they are part of the prefix; dynamic ones come after the method.
fn duration_prefix(filter: &Filter, handler: &str) -> String {
    // A method value that cannot occur, cut off again: the name's start is the prefix.
    const CUT: &str = "\u{0}";
    let full = filter.series_name(DURATION, &[("handler", handler), ("method", CUT)], &[]);
    let head = full.split(CUT).next().unwrap_or_default();
    format!("{CUSTOM_STAT_PREFIX}{head}")
}

/// The stat-name prefix every gRPC handling-time histogram of `filter` starts with: its constant
/// labels, then the `method="POST"` and `grpc_type` that lead the gRPC labels.
fn grpc_prefix(filter: &Filter) -> String {
    const CUT: &str = "\u{0}";
    let full = filter.series_name(
        GRPC_HANDLING,
        &[("method", "POST"), ("grpc_type", CUT)],
        &[],
    );
    let head = full.split(CUT).next().unwrap_or_default();
    format!("{CUSTOM_STAT_PREFIX}{head}")
}

#[cfg(test)]
#[path = "../../../tests/unit/app-metrics/needs.rs"]
mod tests;
