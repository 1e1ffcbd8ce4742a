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
