#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test code
//! Labels in a real Envoy: constant labels on every series but `app_metrics_config_valid`,
//! dynamic labels from a request and a response header counted exactly per value (listed,
//! `other`, `none`) on every request metric (Envoy's own answers included) and on a counter;
//! two configurations sharing a
//! VM, told apart by their `service` label, each series counted only by its own traffic, their
//! samplers on schedules of their own.

mod common;

use common::{bootstrap::*, envoy::*, shared_vm::*, upstream::*, *};
use std::collections::BTreeMap;
use std::thread;
use std::time::{Duration, Instant};

const SHOP: &str = r#"{
  "labels": {"service": "shop"},
  "counters": [
    {"name": "failed_login_details_total",
     "match": {"method": "POST", "path": "/login", "status": [400, 401]},
     "labels": [{"name": "client", "request_header": "x-client", "values": ["web", "ios"]}]},
    {"name": "logins_total", "match": {"method": "POST", "path": "/login"}}
  ],
  "http_metrics": {"handlers": ["/login", "/health", "/dead"],
                   "labels": [{"name": "client", "request_header": "x-client", "values": ["web", "ios"]},
                              {"name": "version", "response_header": "x-app-version", "values": ["1.4.2", "2.0.0"]}]},
  "samplers": [{"name": "total_users", "cluster": "app", "path": "/users/count", "interval_seconds": 1,
                "value": {"json_pointer": "/count"}}]
}"#;

/// The app: `?s=` is the status, `?v=` the `x-app-version` it answers with (none without).
fn app() -> Upstream {
    Upstream::start(|_, url| {
        let (path, query) = url.split_once('?').unwrap_or((url, ""));
        if path == "/users/count" {
            return Reply::new(200, r#"{"count": 42}"#);
        }
        let param = |name: &str| {
            query
                .split('&')
                .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
                .map(str::to_string)
        };
        let status = param("s").and_then(|s| s.parse().ok()).unwrap_or(200);
        let reply = Reply::new(status, "ok");
        match param("v") {
            Some(v) => reply.header("x-app-version", &v),
            None => reply,
        }
    })
}

/// Labels as `Metrics::series` keys them: sorted (name, value) pairs.
fn key(labels: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut key: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    key.sort();
    key
}

#[test]
fn dynamic_labels_count_listed_values_other_and_none_exactly() {
    let upstream = app();
    let mut opts = EnvoyOptions::new(SHOP, upstream.port);
    // Nothing listens behind /dead: Envoy answers 503 itself (http_proxy_responses_total).
    opts.extra_clusters = vec![Cluster::fixed("dead", free_port())];
    opts.routes = vec![route_yaml("/dead", "dead", "2s")];
    let envoy = Envoy::start(opts);
    let agent = agent();
    // (method, path, x-client, query: status and version, times)
    let traffic: [(&str, &str, Option<&str>, &str, usize); 8] = [
        ("POST", "/login", Some("web"), "s=401&v=1.4.2", 3),
        ("POST", "/login", Some("ios"), "s=400", 2),
        ("POST", "/login", Some("curl/8.1-qz"), "s=401&v=qz-9", 4),
        ("POST", "/login", None, "s=401&v=1.4.2", 1),
        ("POST", "/login", Some("web"), "s=200&v=2.0.0", 5),
        // Values match exactly: another spelling is `other`.
        ("POST", "/login", Some("WEB"), "s=200&v=2.0.0", 2),
        ("GET", "/health", Some("ios"), "v=1.4.2", 1),
        ("GET", "/dead", Some("ios"), "s=503", 2),
    ];
    for (method, path, client, query, times) in traffic {
        let headers: Vec<(&str, &str)> = client.map(|c| ("x-client", c)).into_iter().collect();
        let want: u16 = query
            .split('&')
            .find_map(|kv| kv.strip_prefix("s="))
            .map_or(200, |s| s.parse().unwrap());
        for _ in 0..times {
            let status = send_with(
                &agent,
                method,
                &envoy.url(&format!("{path}?{query}")),
                &headers,
                "x",
            );
            assert_eq!(status, want);
        }
    }
    let m = wait_value(&envoy, "logins_total", &[("service", "shop")], 17.0);

    // The counter: one series per client value, the constant label on each.
    let failed: BTreeMap<Vec<(String, String)>, f64> =
        [("web", 3.0), ("ios", 2.0), ("other", 4.0), ("none", 1.0)]
            .into_iter()
            .map(|(client, n)| (key(&[("service", "shop"), ("client", client)]), n))
            .collect();
    assert_eq!(m.series("failed_login_details_total"), failed);

    // http_requests_total: exactly these series, all labels.
    let requests: BTreeMap<Vec<(String, String)>, f64> = [
        ("/login", "POST", "4xx", "web", "1.4.2", 3.0),
        ("/login", "POST", "4xx", "ios", "none", 2.0),
        ("/login", "POST", "4xx", "other", "other", 4.0),
        ("/login", "POST", "4xx", "none", "1.4.2", 1.0),
        ("/login", "POST", "2xx", "web", "2.0.0", 5.0),
        ("/login", "POST", "2xx", "other", "2.0.0", 2.0),
        ("/health", "GET", "2xx", "ios", "1.4.2", 1.0),
        ("/dead", "GET", "5xx", "ios", "none", 2.0),
    ]
    .into_iter()
    .map(|(handler, method, status, client, version, n)| {
        let labels = key(&[
            ("service", "shop"),
            ("handler", handler),
            ("method", method),
            ("status", status),
            ("client", client),
            ("version", version),
        ]);
        (labels, n)
    })
    .collect();
    assert_eq!(m.series("http_requests_total"), requests);
    // Envoy's own answers: the same labels.
    assert_eq!(
        m.series("http_proxy_responses_total"),
        [(
            key(&[
                ("service", "shop"),
                ("handler", "/dead"),
                ("status", "5xx"),
                ("reason", "connection_failure"),
                ("client", "ios"),
                ("version", "none"),
            ]),
            2.0
        )]
        .into_iter()
        .collect()
    );

    // The three histograms carry the same labels (less status; the sizes less method too):
    // counted once the stats flush shows them.
    let durations: Vec<(&str, &str, &str, &str, f64)> = vec![
        ("/login", "POST", "web", "1.4.2", 3.0),
        ("/login", "POST", "ios", "none", 2.0),
        ("/login", "POST", "other", "other", 4.0),
        ("/login", "POST", "none", "1.4.2", 1.0),
        ("/login", "POST", "web", "2.0.0", 5.0),
        ("/login", "POST", "other", "2.0.0", 2.0),
        ("/health", "GET", "ios", "1.4.2", 1.0),
        ("/dead", "GET", "ios", "none", 2.0),
    ];
    let want = |with_method: bool| -> BTreeMap<Vec<(String, String)>, f64> {
        durations
            .iter()
            .map(|(handler, method, client, version, n)| {
                let mut labels = vec![
                    ("service", "shop"),
                    ("handler", *handler),
                    ("client", *client),
                    ("version", *version),
                ];
                if with_method {
                    labels.push(("method", method));
                }
                (key(&labels), *n)
            })
            .collect()
    };
    let m = eventually(Duration::from_secs(20), "the histograms flushed", || {
        let m = envoy.scrape();
        (m.series("http_request_duration_milliseconds") == want(true)).then_some(m)
    });
    assert_eq!(m.series("http_request_size_bytes"), want(false));
    assert_eq!(m.series("http_response_size_bytes"), want(false));

    // The sampler's series carry the constant label; app_metrics_config_valid only `plugin`.
    let m = wait_value(&envoy, "total_users", &[("service", "shop")], 42.0);
    assert!(m
        .value(
            "app_metrics_sampler_last_success_timestamp_seconds",
            &[("service", "shop"), ("sampler", "total_users")]
        )
        .is_some_and(|t| t > 1.6e9));
    assert_eq!(
        m.value("app_metrics_config_valid", &[("plugin", "app_metrics")]),
        Some(1.0)
    );
    assert!(m.series("app_metrics_sampler_errors_total").is_empty());
    // No header value that is not configured reached the scrape.
    for leaked in ["curl", "WEB", "qz"] {
        assert!(!m.text.contains(leaked), "{leaked} in\n{}", m.text);
    }
    // Every filter series but app_metrics_config_valid has service="shop".
    for s in m
        .scrape
        .samples
        .iter()
        .filter(|s| !s.metric.starts_with("envoy_") && s.metric != "app_metrics_config_valid")
    {
        assert_eq!(
            s.labels.get("service"),
            Some("shop"),
            "{} {:?}",
            s.metric,
            s.labels
        );
    }
    eprintln!(
        "labels: 20 requests, 4 client values on the counter, 8 request series with client and version, \
         the same on Envoy's own answers and 3 histograms; sampler and its self-metric labelled service=shop"
    );
}

/// Two configurations in one Envoy, their plugins sharing a VM (one `vm_config`, as two
/// listeners of a gateway or two apps behind one waypoint), with the same metric and sampler
/// names and different `service` labels: each series counts only its own listener's requests,
/// and each sampler has its own schedule (the shared-data key holds the label: with one key
/// the two would share one sample per interval between them) and its own gauge.
#[test]
fn two_services_sharing_a_vm_keep_their_own_series_and_samplers() {
    let TwoServices {
        envoy,
        upstream,
        a,
        b,
    } = two_services();
    let vms = admin_stat(&envoy, "wasm.envoy.wasm.runtime.v8.active");
    assert!(
        vms.is_some_and(|n| n <= 4),
        "VMs shared by both plugins: {vms:?}"
    );
    let agent = agent();
    let url = |port: u16| format!("http://127.0.0.1:{port}/orders");
    for (port, n) in [(a, 5), (b, 3), (a, 2)] {
        for _ in 0..n {
            assert_eq!(send(&agent, "POST", &url(port), "x"), 201);
        }
    }
    wait_value(&envoy, "orders_total", &[("service", "a")], 7.0);
    wait_value(&envoy, "total_users", &[("service", "a")], 11.0);
    let m = wait_value(&envoy, "total_users", &[("service", "b")], 22.0);
    thread::sleep(Duration::from_millis(300));
    let m2 = envoy.scrape();
    for m in [&m, &m2] {
        assert_eq!(
            m.series("orders_total"),
            [
                (key(&[("service", "a")]), 7.0),
                (key(&[("service", "b")]), 3.0)
            ]
            .into_iter()
            .collect()
        );
    }
    let requests = |service: &str, n: f64| {
        (
            key(&[
                ("service", service),
                ("handler", "/orders"),
                ("method", "POST"),
                ("status", "2xx"),
            ]),
            n,
        )
    };
    assert_eq!(
        m2.series("http_requests_total"),
        [requests("a", 7.0), requests("b", 3.0)]
            .into_iter()
            .collect()
    );
    assert!(
        !envoy.log().contains("feed the same gauge"),
        "told apart by their labels, yet warned:\n{}",
        envoy.log()
    );
    // Each sampler its own schedule, gauge and last-success stamp.
    for s in ["a", "b"] {
        assert!(
            m2.value(
                "app_metrics_sampler_last_success_timestamp_seconds",
                &[("service", s), ("sampler", "total_users")]
            )
            .is_some_and(|t| t > 1.6e9),
            "{s}: {}",
            m2.text
        );
    }
    assert_eq!(m2.value("total_users", &[("service", "a")]), Some(11.0));
    assert_eq!(m2.value("total_users", &[("service", "b")]), Some(22.0));
    assert!(m2.series("app_metrics_sampler_errors_total").is_empty());
    // One sample per interval each, as for one sampler alone (e2e_filter's
    // one_sample_per_interval_across_four_workers): not one per interval between them.
    let start_hits = [upstream.hits("/count-a"), upstream.hits("/count-b")];
    let start = Instant::now();
    thread::sleep(Duration::from_secs(12));
    let hits = [
        upstream.hits("/count-a") - start_hits[0],
        upstream.hits("/count-b") - start_hits[1],
    ];
    let periods = start.elapsed().as_secs_f64() / 2.0;
    for n in hits {
        assert!(
            (n as f64 - periods).abs() <= 1.0,
            "{hits:?} sampler requests in {periods:.1} intervals (want one per interval each)"
        );
    }
    // Each plugin's validity by its name, without the configuration's labels.
    for plugin in ["shop_a", "shop_b"] {
        assert_eq!(
            m2.value("app_metrics_config_valid", &[("plugin", plugin)]),
            Some(1.0)
        );
    }
    eprintln!(
        "labels: two services in one VM: orders 7 / 3, request series 7 / 3, samplers 11 / 22 \
         on their own schedules ({} / {} samples)",
        upstream.hits("/count-a"),
        upstream.hits("/count-b")
    );
}

/// Two plugins in one VM with the same sampler and no label to tell them apart: one gauge, one
/// schedule between them. The filter says so, naming both plugins and the sampler.
#[test]
fn two_plugins_sharing_a_sampler_series_are_warned_about() {
    let upstream = Upstream::start(|_, _| Reply::new(200, r#"{"count": 3}"#));
    let (a, b, admin) = (free_port(), free_port(), free_port());
    let opts = EnvoyOptions::new("", upstream.port);
    let config = r#"{"samplers": [{"name": "total_users", "cluster": "app", "path": "/count",
        "interval_seconds": 60, "value": {"json_pointer": "/count"}}]}"#;
    let plugins = [(a, "shop_a", config), (b, "shop_b", config)];
    let envoy = Envoy::start_with_config(&shared_vm_bootstrap(&opts, admin, &plugins), 2, a, admin)
        .unwrap_or_else(|log| panic!("{log}"));
    // Said when the second of the two is configured, whichever that is.
    let said = |first: &str, second: &str| {
        format!(
            r#"plugin "{second}": sampler(s) ["total_users"] feed the same gauge and schedule as plugin "{first}"'s"#
        )
    };
    let log = eventually(
        Duration::from_secs(10),
        "the shared-sampler warning",
        || {
            let log = envoy.log();
            (log.contains(&said("shop_a", "shop_b")) || log.contains(&said("shop_b", "shop_a")))
                .then_some(log)
        },
    );
    // Requests still pass.
    assert_eq!(
        send(&agent(), "GET", &format!("http://127.0.0.1:{a}/x"), ""),
        200
    );
    assert!(!log.contains("panic"), "{log}");
}
