//! Unit tests of src/bin/app-metrics/needs.rs (compiled into the binary's test build).

use super::*;
use app_metrics::names::LABEL_NAMES;

#[test]
fn needs_follow_the_parsed_configuration() {
    let config = app_metrics::config::parse(
        br#"{"http_metrics": {"handlers": ["/b", "/a/{id}"], "excluded_handlers": ["/metrics"]}}"#,
    )
    .unwrap();
    let n = needs(&config);
    assert_eq!(n.extra_stat_tags, LABEL_NAMES.to_vec());
    assert_eq!(n.series.total(), 2 + 3 * 120 + 1);
    assert_eq!(
        n.histogram_buckets,
        [("wasmcustom.".to_string(), HISTOGRAM_BUCKETS.to_vec())]
    );
    // The latency SLO alerts (k8s/monitoring/prometheusrule.yaml) count requests under 250 ms.
    assert!(HISTOGRAM_BUCKETS.contains(&250.0));
    assert!(HISTOGRAM_BUCKETS.windows(2).all(|w| w[0] < w[1]));
}

/// One key whatever the handlers, label values and plugin (that Envoy applies it to every
/// histogram of the filter is measured in tests/e2e_buckets.rs): no change needs a new key.
#[test]
fn the_bucket_key_covers_every_histogram_of_every_configuration() {
    let configs: [&[u8]; 3] = [
        br#"{"http_metrics": {"handlers": ["/b"]}}"#,
        br#"{"labels": {"team": "a"}, "http_metrics": {"handlers": ["/orders/{id}"], "labels": [{"name": "tier", "request_header": "x-tier", "values": ["gold"]}]}}"#,
        br#"{"labels": {"app": "shop"}, "grpc": {"methods": ["/a.B/C"], "handling_time": true}}"#,
    ];
    for json in configs {
        let config = app_metrics::config::parse(json).unwrap();
        let n = needs(&config);
        let keys: Vec<&str> = n
            .histogram_buckets
            .iter()
            .map(|(k, _)| k.as_str())
            .collect();
        assert_eq!(keys, [BUCKET_KEY]);
    }
    assert!(needs_of(br#"{"http_metrics": {"enabled": false}}"#)
        .histogram_buckets
        .is_empty());
}

#[test]
fn a_grpc_section_needs_its_tags_and_one_bucket_key() {
    let config = app_metrics::config::parse(
        br#"{"labels": {"app": "shop"}, "grpc": {"methods": ["/a.B/C"], "handling_time": true}}"#,
    )
    .unwrap();
    let needs = needs(&config);
    for tag in [
        "grpc_type",
        "grpc_service",
        "grpc_method",
        "grpc_code",
        "app",
    ] {
        assert!(needs.extra_stat_tags.iter().any(|t| t == tag), "{tag}");
    }
    let keys: Vec<&str> = needs
        .histogram_buckets
        .iter()
        .map(|(k, _)| k.as_str())
        .collect();
    assert_eq!(keys, ["wasmcustom."]);
    assert!(
        needs
            .series_text()
            .ends_with("app_metrics_config_valid 1, grpc 38)"),
        "{}",
        needs.series_text()
    );
    let plain = needs_of(br#"{}"#);
    assert!(!plain.extra_stat_tags.iter().any(|t| t.starts_with("grpc_")));
}

fn needs_of(json: &[u8]) -> Needs {
    needs(&app_metrics::config::parse(json).unwrap())
}
