//! The shipped histogram bucket setting, one key (`wasmcustom.`) for every histogram of the
//! filter: in real Envoy, the histograms of a handler and of a constant label value that arrive
//! only with a later configuration (ECDS under Istio, LDS in plain Envoy, no restart) get the
//! shipped bounds, the durations and the sizes alike, and Envoy's own histograms keep its
//! defaults.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test code

mod common;

use common::{bootstrap::*, envoy::*, istio::*, scrape::*, upstream::*, *};
use serde::Deserialize;
use serde_json::{json, Value};

/// Envoy's default bounds, what every histogram no setting matches keeps.
const ENVOY_DEFAULT: [f64; 19] = [
    0.5, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0,
    60000.0, 300000.0, 600000.0, 1800000.0, 3600000.0,
];

fn yaml_docs(path: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(repo_root().join(path)).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| serde_json::to_value(serde_yaml::Value::deserialize(doc).unwrap()).unwrap())
        .collect()
}

/// istio/app-patch.yaml's `sidecar.istio.io/statsHistogramBuckets`, turned into Envoy settings
/// as istio-agent does (pkg/bootstrap/config.go: each key a `prefix` match, sorted by key).
fn istio_settings() -> (Vec<Value>, Vec<f64>) {
    let patch = &yaml_docs("istio/app-patch.yaml")[0];
    let text = patch["spec"]["template"]["metadata"]["annotations"]
        ["sidecar.istio.io/statsHistogramBuckets"]
        .as_str()
        .unwrap();
    let map: std::collections::BTreeMap<String, Vec<f64>> = serde_json::from_str(text).unwrap();
    assert_eq!(map.keys().collect::<Vec<_>>(), ["wasmcustom."]);
    let bounds = map["wasmcustom."].clone();
    let settings = map
        .into_iter()
        .map(|(prefix, buckets)| json!({"match": {"prefix": prefix}, "buckets": buckets}))
        .collect();
    (settings, bounds)
}

fn app() -> Upstream {
    Upstream::start(|_, _| Reply::new(200, "{\"ok\": true}"))
}

/// Every histogram of `labels` (constant label, then handler) has exactly `bounds`: the
/// durations (with the method) and the two sizes.
fn assert_bounds(m: &Metrics, constant: (&str, &str), handler: &str, method: &str, bounds: &[f64]) {
    let timed = [constant, ("handler", handler), ("method", method)];
    let sized = [constant, ("handler", handler)];
    for (name, labels) in [
        ("http_request_duration_milliseconds", &timed[..]),
        ("http_request_size_bytes", &sized[..]),
        ("http_response_size_bytes", &sized[..]),
    ] {
        assert_eq!(
            m.histogram_bounds(name, labels).as_deref(),
            Some(bounds),
            "{name}{labels:?}\n{}",
            m.text
        );
    }
}

#[test]
fn istio_one_bucket_key_covers_a_handler_and_label_value_delivered_later_by_ecds() {
    let (settings, bounds) = istio_settings();
    assert_ne!(bounds, ENVOY_DEFAULT);
    let upstream = app();
    let first = json!({"labels": {"service": "shop"}, "http_metrics": {"handlers": ["/login"]}});
    let plugin = IstioPlugin::new("default", "app-metrics", IstioRelease::TrafficExtension130);
    let sidecar = IstioSidecar::start_edited(&[(plugin, &first)], upstream.port, &[], 1, |b| {
        let stats = &mut b["stats_config"];
        stats["histogram_bucket_settings"] = Value::Array(settings);
        // The waypoint kit's extra tag (`service`), where Istio puts extraStatTags.
        let tags = stats["stats_tags"].as_array_mut().unwrap();
        let at = tags.iter().position(|t| t["tag_name"] == "cache").unwrap();
        tags.insert(
            at,
            json!({"tag_name": "service", "regex": r"(service=\.=(.*?);\.;)"}),
        );
    });
    let envoy = &sidecar.envoy;
    assert_eq!(send(&agent(), "POST", &envoy.url("/login"), "{}"), 200);
    let timed = [
        ("service", "shop"),
        ("handler", "/login"),
        ("method", "POST"),
    ];
    let m = wait_histogram_count(envoy, "http_request_duration_milliseconds", &timed, 1.0);
    assert_bounds(&m, ("service", "shop"), "/login", "POST", &bounds);

    // A new handler template and another constant label value, delivered by ECDS: the proxy's
    // setting, read when it started, covers them.
    let second = json!({"labels": {"service": "cart"}, "http_metrics": {"handlers": ["/login", "/orders/{id}"]}});
    sidecar.deliver(0, &second);
    let m = new_handler_has_the_bounds(envoy, &bounds);
    assert_bounds(&m, ("service", "shop"), "/login", "POST", &bounds);
}

#[test]
fn plain_envoy_one_bucket_key_covers_a_handler_and_label_value_pushed_later_by_lds() {
    let stats = &yaml_docs("k8s/envoy-sidecar/envoy.yaml")[0]["stats_config"];
    let settings = stats["histogram_bucket_settings"].clone();
    assert_eq!(settings.as_array().unwrap().len(), 1);
    assert_eq!(settings[0]["match"], json!({"prefix": "wasmcustom."}));
    let bounds: Vec<f64> = serde_json::from_value(settings[0]["buckets"].clone()).unwrap();
    let upstream = app();
    let config = |service: &str, handlers: &str| {
        format!(
            r#"{{"labels": {{"service": "{service}"}}, "http_metrics": {{"handlers": {handlers}}}}}"#
        )
    };
    let mut opts = EnvoyOptions::new(&config("shop", r#"["/login"]"#), upstream.port);
    opts.concurrency = 1;
    let dir = TempDir::new("lds");
    let (listen, admin) = (free_port(), free_port());
    push_lds(&dir.0, &lds_resources(&opts, listen));
    // The harness's stats_config (envoy/envoy.yaml's tags), then the shipped setting, as JSON
    // (a YAML flow mapping) under stats_config.
    let bootstrap = lds_bootstrap(&opts, admin, &dir.0).replacen(
        "dynamic_resources:",
        &format!("  histogram_bucket_settings: {settings}\ndynamic_resources:"),
        1,
    );
    let envoy = start_with_config_args(&bootstrap, 1, listen, admin, &["--drain-time-s", "1"])
        .unwrap_or_else(|log| panic!("{log}"));
    assert_eq!(send(&agent(), "POST", &envoy.url("/login"), "{}"), 200);
    let timed = [
        ("service", "shop"),
        ("handler", "/login"),
        ("method", "POST"),
    ];
    let m = wait_histogram_count(&envoy, "http_request_duration_milliseconds", &timed, 1.0);
    assert_bounds(&m, ("service", "shop"), "/login", "POST", &bounds);

    let mut next = EnvoyOptions::new(
        &config("cart", r#"["/login", "/orders/{id}"]"#),
        upstream.port,
    );
    next.concurrency = 1;
    push_lds(&dir.0, &lds_resources(&next, listen));
    new_handler_has_the_bounds(&envoy, &bounds);
}

/// The histograms of the handler `/orders/{id}` of service `cart`, which the proxy met only after
/// it started, have `bounds`; Envoy's own (Istio's inclusion list keeps `server.`) keep
/// Envoy's defaults. The scrape, for more checks.
fn new_handler_has_the_bounds(envoy: &Envoy, bounds: &[f64]) -> Metrics {
    let timed = [
        ("service", "cart"),
        ("handler", "/orders/{id}"),
        ("method", "GET"),
    ];
    let m = eventually(
        std::time::Duration::from_secs(20),
        "the new configuration's histogram",
        || {
            send(&agent(), "GET", &envoy.url("/orders/7"), "");
            let m = envoy.scrape();
            m.histogram_count("http_request_duration_milliseconds", &timed)
                .is_some_and(|n| n >= 1.0)
                .then_some(m)
        },
    );
    assert_bounds(&m, ("service", "cart"), "/orders/{id}", "GET", bounds);
    assert_eq!(
        m.histogram_bounds("envoy_server_initialization_time_ms", &[])
            .as_deref(),
        Some(&ENVOY_DEFAULT[..]),
        "{}",
        m.text
    );
    m
}
