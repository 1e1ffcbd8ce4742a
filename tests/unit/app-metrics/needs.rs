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
    let prefixes: Vec<&str> = n
        .histogram_buckets
        .iter()
        .map(|(p, _)| p.as_str())
        .collect();
    assert_eq!(
        prefixes,
        [
            "wasmcustom.handler=.=/b;.;method=.=",
            "wasmcustom.handler=.=/a/{id};.;method=.=",
            "wasmcustom.handler=.=none;.;method=.="
        ]
    );
    assert!(n
        .histogram_buckets
        .iter()
        .all(|(_, b)| b == &DURATION_BUCKETS_MS));
    // Each prefix takes both duration histograms of its handler, the app's time and the whole
    // request's (`total_duration`), and no other stat.
    for metric in [
        app_metrics::names::DURATION,
        app_metrics::names::TOTAL_DURATION,
    ] {
        let name = app_metrics::labels::stat_name(metric, &[("handler", "/b"), ("method", "GET")]);
        assert!(
            format!("wasmcustom.{name}").starts_with(prefixes[0]),
            "{name}"
        );
    }
    let proxy = app_metrics::labels::stat_name(
        app_metrics::names::PROXY_RESPONSES,
        &[("handler", "/b"), ("status", "5xx"), ("reason", "timeout")],
    );
    assert!(!format!("wasmcustom.{proxy}").starts_with(prefixes[0]));
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
    let last = needs.histogram_buckets.last().unwrap();
    assert_eq!(
        last.0,
        "wasmcustom.app=.=shop;.;method=.=POST;.;grpc_type=.="
    );
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
