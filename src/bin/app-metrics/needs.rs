//! What a valid configuration needs from the proxy when it starts: a stats tag per label name
//! (Istio's `extraStatTags`, Envoy's `stats_tags`), one histogram bucket setting for every
//! histogram the filter makes (`sidecar.istio.io/statsHistogramBuckets`, Envoy's
//! `histogram_bucket_settings`), and the most series it can make.

use app_metrics::config::{self, Config, SeriesBound};
use app_metrics::filter::Filter;
use app_metrics::istio::tag_regex;
use app_metrics::names::{GRPC_LABEL_NAMES, LABEL_NAMES};

/// Envoy prefixes the stats a wasm module defines with this (and drops it on /stats/prometheus);
/// histogram bucket settings match the full name. It is the only key: Istio turns a
/// `statsHistogramBuckets` key into a `prefix` match and nothing else, and every other part of
/// a stat name (constant labels, handler, method) depends on the configuration, so any longer
/// key would need a new proxy start for a new handler, label value or plugin.
pub const BUCKET_KEY: &str = "wasmcustom.";
/// The bucket bounds for every histogram of the filter, milliseconds and bytes alike (one key
/// covers both): 1-2.5-5 steps from 0.5 to 10,000 (durations to 10 s, with 250 the latency SLO's
/// threshold; sizes to 10 kB), then one per decade to 10,000,000 (durations to ~3 h, sizes to
/// 10 MB). 17 bounds: 20 exposition lines a histogram, Envoy's defaults 22.
pub const HISTOGRAM_BUCKETS: [f64; 17] = [
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    25.0,
    50.0,
    100.0,
    250.0,
    500.0,
    1000.0,
    2500.0,
    5000.0,
    10000.0,
    100_000.0,
    1_000_000.0,
    10_000_000.0,
];

/// What a valid configuration needs from the proxy.
#[derive(Debug, Clone, PartialEq)]
pub struct Needs {
    /// One stats tag rule per label name the filter emits (Istio's `extraStatTags`): its own,
    /// then the configuration's constant and dynamic label names.
    pub extra_stat_tags: Vec<String>,
    /// Bucket bounds by stat-name prefix: [`BUCKET_KEY`] when the configuration makes histograms.
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

    /// The `sidecar.istio.io/statsHistogramBuckets` value.
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
/// the configuration's (constant, then dynamic in order of appearance), and [`BUCKET_KEY`] if it
/// makes any histogram (request metrics, or gRPC handling time).
pub fn needs(config: &Config) -> Needs {
    let filter = Filter::new(config);
    let histograms = filter.http.is_some() || filter.grpc.as_ref().is_some_and(|g| g.handling_time);
    let histogram_buckets = if histograms {
        vec![(BUCKET_KEY.to_string(), HISTOGRAM_BUCKETS.to_vec())]
    } else {
        Vec::new()
    };
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

#[cfg(test)]
#[path = "../../../tests/unit/app-metrics/needs.rs"]
mod tests;
