//! `prefix` (issue 21): two plugins sharing a VM with the same metric and sampler names, one of
//! them prefixed `gw_`, in real Envoy: each name counts only its own listener's requests, the
//! request metrics and the sampler's gauge included, and the filter's own `app_metrics_*`
//! series keep their names.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test code

mod common;

use common::{bootstrap::*, envoy::*, upstream::*, *};
use std::collections::BTreeMap;

fn config(prefix: &str, count_path: &str) -> String {
    format!(
        r#"{{{prefix}"counters": [{{"name": "orders_total", "match": {{"method": "POST", "path": "/orders", "status": ["2xx"]}}}}],
  "http_metrics": {{"handlers": ["/orders"]}},
  "samplers": [{{"name": "total_users", "cluster": "app", "path": "{count_path}", "interval_seconds": 1,
                "value": {{"json_pointer": "/count"}}}}]}}"#
    )
}

fn key(labels: &[(&str, &str)]) -> Vec<(String, String)> {
    labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn a_prefixed_plugin_and_a_plain_one_in_one_vm_keep_their_own_series() {
    let upstream = Upstream::start(|_, url| match url {
        "/count-a" => Reply::new(200, r#"{"count": 11}"#),
        "/count-b" => Reply::new(200, r#"{"count": 22}"#),
        _ => Reply::new(201, "{}"),
    });
    let (a, b, admin) = (free_port(), free_port(), free_port());
    let opts = EnvoyOptions::new("", upstream.port);
    let (plain, prefixed) = (
        config("", "/count-a"),
        config(r#""prefix": "gw_", "#, "/count-b"),
    );
    let plugins = [
        (a, "shop_a", plain.as_str()),
        (b, "shop_b", prefixed.as_str()),
    ];
    let envoy = Envoy::start_with_config(&shared_vm_bootstrap(&opts, admin, &plugins), 2, a, admin)
        .unwrap_or_else(|log| panic!("{log}"));
    let agent = agent();
    let url = |port: u16| format!("http://127.0.0.1:{port}/orders");
    for (port, n) in [(a, 5), (b, 3)] {
        for _ in 0..n {
            assert_eq!(send(&agent, "POST", &url(port), "x"), 201);
        }
    }
    wait_value(&envoy, "total_users", &[], 11.0);
    wait_value(&envoy, "gw_total_users", &[], 22.0);
    let timed = [("handler", "/orders"), ("method", "POST")];
    wait_histogram_count(&envoy, "http_request_duration_milliseconds", &timed, 5.0);
    let m = wait_histogram_count(&envoy, "gw_http_request_duration_milliseconds", &timed, 3.0);
    let one = |v: f64| -> BTreeMap<Vec<(String, String)>, f64> { [(key(&[]), v)].into() };
    assert_eq!(m.series("orders_total"), one(5.0));
    assert_eq!(m.series("gw_orders_total"), one(3.0));
    let requests = |v: f64| -> BTreeMap<Vec<(String, String)>, f64> {
        [(
            key(&[
                ("handler", "/orders"),
                ("method", "POST"),
                ("status", "2xx"),
            ]),
            v,
        )]
        .into()
    };
    assert_eq!(m.series("http_requests_total"), requests(5.0));
    assert_eq!(m.series("gw_http_requests_total"), requests(3.0));
    for (name, n) in [
        ("http_request_size_bytes", 5.0),
        ("gw_http_request_size_bytes", 3.0),
        ("http_response_size_bytes", 5.0),
        ("gw_http_response_size_bytes", 3.0),
    ] {
        assert_eq!(
            m.histogram_count(name, &[("handler", "/orders")]),
            Some(n),
            "{name}"
        );
    }
    // The filter's own series: one name for both plugins, told apart by `plugin`.
    for plugin in ["shop_a", "shop_b"] {
        assert_eq!(
            m.value("app_metrics_config_valid", &[("plugin", plugin)]),
            Some(1.0),
            "{plugin}"
        );
    }
    assert!(
        !m.text.lines().any(|l| l.contains("gw_app_metrics")),
        "{}",
        m.text
    );
    // Every series of the prefixed plugin's metric names is its own: no name of the plain one
    // appears under gw_ but those, and none of gw_'s without it.
    let ours: Vec<&str> = m
        .text
        .lines()
        .filter(|l| l.starts_with("gw_"))
        .map(|l| l.split(['{', ' ']).next().unwrap())
        .collect();
    for name in &ours {
        let plain = name.strip_prefix("gw_").unwrap();
        assert!(
            m.text.lines().any(|l| l.starts_with(&format!("{plain}{{"))),
            "{name} has no unprefixed twin"
        );
    }
    assert!(!ours.is_empty());
}
