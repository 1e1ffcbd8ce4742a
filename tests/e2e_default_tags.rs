//! Envoy's default tag extraction on (`use_all_default_tags` left at its default, true), as in
//! the shipped envoy/envoy.yaml and the README's parts to copy: the filter's series come out
//! exactly as with it off, and Envoy's own stats keep their default tags (`envoy_cluster_name`,
//! `envoy_response_code`, …) that existing dashboards use.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test code

mod common;

use common::{bootstrap::*, envoy::*, upstream::*, *};
use std::collections::BTreeMap;

const CONFIG: &str = r#"{
  "counters": [
    {"name": "successful_login_details_total", "match": {"method": "POST", "path": "/login", "status": ["2xx"]}},
    {"name": "failed_login_details_total", "match": {"method": "POST", "path": "/login", "status": [400, 401]}},
    {"name": "unavailable_total", "match": {"status": [503]}}
  ],
  "http_metrics": {"handlers": ["/login", "/users/{user_id}", "/cluster.v1/{name}", "/http.x/{y}"]}
}"#;

/// The harness's bootstrap (envoy/envoy.yaml's stats tags) with the default tags on or off.
fn start(default_tags: bool, upstream: &Upstream) -> Envoy {
    let opts = EnvoyOptions::new(CONFIG, upstream.port);
    let (listen, admin) = (free_port(), free_port());
    let config = bootstrap(&opts, listen, admin);
    let off = "  use_all_default_tags: false\n";
    assert!(
        config.contains(off),
        "the harness's bootstrap changed: update this test"
    );
    let config = if default_tags {
        config.replace(off, "")
    } else {
        config
    };
    Envoy::start_with_config(&config, opts.concurrency, listen, admin).unwrap()
}

fn traffic(envoy: &Envoy) {
    let agent = agent();
    for (method, path, status) in [
        ("POST", "/login?ok", 200),
        ("POST", "/login?ok", 200),
        ("POST", "/login?bad", 400),
        ("GET", "/users/7", 200),
        ("GET", "/cluster.v1/a", 200),
        ("GET", "/http.x/b", 503),
        ("GET", "/nowhere", 404),
    ] {
        assert_eq!(send(&agent, method, &envoy.url(path), ""), status, "{path}");
    }
}

type Series = BTreeMap<Vec<(String, String)>, f64>;

fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    v.sort();
    v
}

/// The filter's series after `traffic`, by metric name (Envoy's own `envoy_*` left out).
fn filter_series(envoy: &Envoy) -> BTreeMap<String, Series> {
    let m = wait_value(
        envoy,
        "http_requests_total",
        &[("handler", "none"), ("method", "GET"), ("status", "4xx")],
        1.0,
    );
    let mut out = BTreeMap::new();
    for s in &m.scrape.samples {
        if !s.metric.starts_with("envoy_") && !s.metric.starts_with("app_metrics_") {
            out.insert(s.metric.clone(), m.series(&s.metric));
        }
    }
    out
}

#[test]
fn filter_series_are_exact_with_envoys_default_tags_on() {
    let upstream = Upstream::start(|_, url| match url {
        "/login?bad" => Reply::new(400, "{}"),
        "/http.x/b" => Reply::new(503, ""),
        "/nowhere" => Reply::new(404, ""),
        _ => Reply::new(200, "{}"),
    });
    let on = start(true, &upstream);
    traffic(&on);
    let with_defaults = filter_series(&on);

    assert_eq!(
        with_defaults["http_requests_total"],
        Series::from([
            (
                labels(&[("handler", "/login"), ("method", "POST"), ("status", "2xx")]),
                2.0
            ),
            (
                labels(&[("handler", "/login"), ("method", "POST"), ("status", "4xx")]),
                1.0
            ),
            (
                labels(&[
                    ("handler", "/users/{user_id}"),
                    ("method", "GET"),
                    ("status", "2xx")
                ]),
                1.0
            ),
            (
                labels(&[
                    ("handler", "/cluster.v1/{name}"),
                    ("method", "GET"),
                    ("status", "2xx")
                ]),
                1.0
            ),
            (
                labels(&[
                    ("handler", "/http.x/{y}"),
                    ("method", "GET"),
                    ("status", "5xx")
                ]),
                1.0
            ),
            (
                labels(&[("handler", "none"), ("method", "GET"), ("status", "4xx")]),
                1.0
            ),
        ])
    );
    assert_eq!(
        with_defaults["successful_login_details_total"],
        Series::from([(vec![], 2.0)])
    );
    assert_eq!(
        with_defaults["failed_login_details_total"],
        Series::from([(vec![], 1.0)])
    );

    // Envoy's own stats keep their default tags: what breaks with use_all_default_tags: false.
    let scrape = on.scrape();
    assert_eq!(
        scrape.value(
            "envoy_cluster_upstream_rq",
            &[
                ("envoy_cluster_name", "app"),
                ("envoy_response_code", "200")
            ]
        ),
        Some(4.0),
        "{}",
        scrape.text
    );
    assert!(
        scrape.text.contains("envoy_http_conn_manager_prefix="),
        "{}",
        scrape.text
    );

    assert_eq!(
        with_defaults["unavailable_total"],
        Series::from([(vec![], 1.0)])
    );

    // The same Envoy with the default tags off makes exactly the same series. (The one name
    // Envoy's default response-code tags would cut, `…_rq_NNN`, the filter refuses.)
    let off = start(false, &upstream);
    traffic(&off);
    assert_eq!(with_defaults, filter_series(&off));
}
