//! Istio as it is: the WasmPlugin's pluginConfig delivered by ECDS, as istiod delivers it
//! (`config_discovery` with no default configuration, Istio's resource and plugin names of
//! 1.19-1.29 and of 1.30, no `vm_id`, the configuration as protojson text), into a sidecar-like
//! Envoy with Istio 1.30's stats_config (its tag regexes in its order around the
//! `extraStatTags` ones, its inclusion list). The harness is `IstioSidecar` in tests/common.
//!
//! - the shipped `istio/wasmplugin.yaml` counts exactly;
//! - a pod's life: a bad configuration first (nothing recorded, every request answered by the
//!   app), a good one, an update, a bad one after a good one (the good one stays);
//! - label values Istio's own tag regexes would split are refused, naming the field;
//! - the `plugin` label of Istio's names comes out as exactly that one label.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test code

mod common;

use common::{envoy::*, istio::*, scrape::*, upstream::*, *};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;

const VALID: &str = "app_metrics_config_valid";

/// Every counter the configurations define (`*_total`, the filter's own `app_metrics_*` aside),
/// by (metric, sorted labels).
type Counts = BTreeMap<(String, Vec<(String, String)>), f64>;

fn counts(m: &Metrics) -> Counts {
    let names: std::collections::BTreeSet<&str> = m
        .scrape
        .samples
        .iter()
        .map(|s| s.metric.as_str())
        .filter(|n| {
            !n.starts_with("envoy_") && !n.starts_with("app_metrics_") && n.ends_with("_total")
        })
        .collect();
    names
        .into_iter()
        .flat_map(|name| {
            m.series(name)
                .into_iter()
                .map(move |(labels, v)| ((name.to_string(), labels), v))
        })
        .collect()
}

/// What grew from `before` to `after` (series that did not grow left out).
fn growth(before: &Counts, after: &Counts) -> Counts {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0.0)))
        .filter(|(_, d)| *d != 0.0)
        .collect()
}

fn key(metric: &str, labels: &[(&str, &str)]) -> (String, Vec<(String, String)>) {
    let mut labels: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    labels.sort();
    (metric.to_string(), labels)
}

fn req(handler: &str, method: &str, status: &str) -> (String, Vec<(String, String)>) {
    key(
        "http_requests_total",
        &[("handler", handler), ("method", method), ("status", status)],
    )
}

/// Adds `n` to `counts[k]` (nothing for 0: a series that does not grow is not in a growth).
fn add(counts: &mut Counts, k: (String, Vec<(String, String)>), n: u32) {
    if n > 0 {
        *counts.entry(k).or_default() += f64::from(n);
    }
}

/// The app behind the sidecar: the seed's endpoints, and the ones the updates add.
fn app() -> Upstream {
    Upstream::start(|method, url| match (method, url) {
        ("POST", "/login?ok") => Reply::new(200, "{}"),
        ("POST", "/login?bad") => Reply::new(400, "{}"),
        ("POST", "/orders") => Reply::new(201, "{}"),
        (_, "/users/count") => Reply::new(200, r#"{"count": 11}"#),
        _ => Reply::new(200, "[]"),
    })
}

/// Requests of each kind the app serves.
#[derive(Clone, Copy)]
struct Traffic {
    logins: u32,
    failed_logins: u32,
    orders: u32,
    users: u32,
    user_count: u32,
    statics: u32,
}

/// Sends `t` through the sidecar: each request must be answered by the app itself, with the
/// app's status (a refused configuration must never cost a request).
fn send_traffic(envoy: &Envoy, t: Traffic) {
    let agent = agent();
    for (method, path, n, status) in [
        ("POST", "/login?ok", t.logins, 200),
        ("POST", "/login?bad", t.failed_logins, 400),
        ("POST", "/orders", t.orders, 201),
        ("GET", "/users/7", t.users, 200),
        ("GET", "/users/count", t.user_count, 200),
        ("GET", "/static/cache.v1/app.js", t.statics, 200),
    ] {
        for _ in 0..n {
            let (got, from_app) = exchange(&agent, method, &envoy.url(path), "u=a&p=b");
            assert_eq!(
                (got, from_app),
                (status, true),
                "{method} {path}: answered by the app with its status\n{}",
                envoy.log()
            );
        }
    }
}

/// The shipped WasmPlugin's pluginConfig (configuration A).
fn config_a() -> Value {
    shipped_wasmplugin()["spec"]["pluginConfig"].clone()
}

/// What configuration A counts for `t`: its two login counters, its five handlers.
fn counted_by_a(t: Traffic) -> Counts {
    let mut c = Counts::new();
    add(&mut c, key("successful_login_details_total", &[]), t.logins);
    add(
        &mut c,
        key("failed_login_details_total", &[]),
        t.failed_logins,
    );
    add(&mut c, req("/login", "POST", "2xx"), t.logins);
    add(&mut c, req("/login", "POST", "4xx"), t.failed_logins);
    add(&mut c, req("none", "POST", "2xx"), t.orders);
    add(&mut c, req("/users/{user_id}", "GET", "2xx"), t.users);
    add(&mut c, req("/users/count", "GET", "2xx"), t.user_count);
    add(&mut c, req("none", "GET", "2xx"), t.statics);
    c
}

/// Configuration B, an update of A: a new counter (orders) and handler (/orders), the failed
/// login counter and the /users and /users/count handlers dropped.
fn config_b() -> Value {
    let mut b = config_a();
    b["counters"] = json!([
        b["counters"][0].clone(),
        {"name": "orders_placed_total", "help": "Orders placed",
         "match": {"method": "POST", "path": "/orders", "status": [201]}}
    ]);
    b["http_metrics"]["handlers"] = json!(["/login", "/orders", "/users/{user_id}", "/health"]);
    b
}

fn counted_by_b(t: Traffic) -> Counts {
    let mut c = Counts::new();
    add(&mut c, key("successful_login_details_total", &[]), t.logins);
    add(&mut c, key("orders_placed_total", &[]), t.orders);
    add(&mut c, req("/login", "POST", "2xx"), t.logins);
    add(&mut c, req("/login", "POST", "4xx"), t.failed_logins);
    add(&mut c, req("/orders", "POST", "2xx"), t.orders);
    // Without its own template, /users/count is a {user_id}.
    add(
        &mut c,
        req("/users/{user_id}", "GET", "2xx"),
        t.users + t.user_count,
    );
    add(&mut c, req("none", "GET", "2xx"), t.statics);
    c
}

/// Waits until the counters have grown from `before` by exactly `want`, no more, no other.
fn wait_growth(envoy: &Envoy, before: &Counts, want: &Counts, what: &str) -> Metrics {
    let mut last = Counts::new();
    for _ in 0..100 {
        let m = envoy.scrape();
        last = growth(before, &counts(&m));
        if last == *want {
            return m;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{what}: counted\n  {last:?}\nexpected\n  {want:?}");
}

/// Every label of every filter metric is one of the filter's own (`LABEL_NAMES`): none of
/// Istio's tag regexes took a piece of a stat name.
fn assert_only_own_labels(m: &Metrics) {
    for s in &m.scrape.samples {
        if s.metric.starts_with("envoy_") {
            continue;
        }
        for name in s.labels.keys() {
            assert!(
                app_metrics::names::LABEL_NAMES.contains(&name.as_str()),
                "{}: label {name:?} is not the filter's: {:?}",
                s.metric,
                s.labels
            );
        }
    }
}

/// The sampler clusters the shipped configuration names, pointed at the app.
fn sampler_clusters(config: &Value, port: u16) -> Vec<(String, u16)> {
    let samplers = config["samplers"].as_array().cloned().unwrap_or_default();
    assert!(
        !samplers.is_empty(),
        "the WasmPlugin should configure the total_users sampler"
    );
    samplers
        .iter()
        .map(|s| {
            let cluster = s["cluster"].as_str().unwrap().to_string();
            assert!(
                cluster.starts_with("outbound|"),
                "{cluster:?} is not an Istio cluster name"
            );
            (cluster, port)
        })
        .collect()
}

/// The shipped WasmPlugin under its own namespace, name and pluginName.
fn shipped_plugin(release: IstioRelease) -> IstioPlugin {
    let wp = shipped_wasmplugin();
    let mut plugin = IstioPlugin::new(
        wp["metadata"]["namespace"].as_str().unwrap(),
        wp["metadata"]["name"].as_str().unwrap(),
        release,
    );
    plugin.plugin_name = wp["spec"]["pluginName"].as_str().unwrap().to_string();
    plugin
}

/// The shipped pluginConfig, a pod's first and only configuration: counted exactly, its sampler
/// samples, its labels survive Istio's tag regexes, Istio's inclusion list lets it through.
fn shipped_counts_exactly(release: IstioRelease) {
    let config = config_a();
    let app = app();
    let plugin = shipped_plugin(release);
    let sidecar = IstioSidecar::start(
        &[(plugin.clone(), &config)],
        app.port,
        &sampler_clusters(&config, app.port),
        2,
    );
    let envoy = &sidecar.envoy;
    let t = Traffic {
        logins: 3,
        failed_logins: 1,
        orders: 1,
        users: 2,
        user_count: 1,
        statics: 1,
    };
    send_traffic(envoy, t);
    assert_eq!(app.count("POST", "/login", 200), 3);
    assert_eq!(app.count("POST", "/login", 400), 1);
    wait_growth(
        envoy,
        &Counts::new(),
        &counted_by_a(t),
        "the shipped configuration",
    );
    let m = eventually(Duration::from_secs(40), "total_users sampled", || {
        let m = envoy.scrape();
        (m.value("total_users", &[]) == Some(11.0)).then_some(m)
    });
    assert_eq!(
        m.value(VALID, &[("plugin", &plugin.config_name())]),
        Some(1.0),
        "{}",
        m.text
    );
    assert!(m
        .value(
            "app_metrics_sampler_last_success_timestamp_seconds",
            &[("sampler", "total_users")]
        )
        .is_some());
    assert_only_own_labels(&m);
    // Istio's inclusion list drops Envoy's own per-cluster stats but keeps the filter's.
    assert!(m
        .scrape
        .samples
        .iter()
        .all(|s| !s.metric.starts_with("envoy_cluster_upstream_rq")));
    eprintln!(
        "istio {release:?}: {} by ECDS, the shipped pluginConfig counted exactly, total_users sampled",
        plugin.resource_name()
    );
}

#[test]
fn shipped_wasmplugin_counts_exactly_by_ecds_under_istio_1_29_names() {
    shipped_counts_exactly(IstioRelease::WasmPlugin129);
}

#[test]
fn shipped_wasmplugin_counts_exactly_by_ecds_under_istio_1_30_names() {
    shipped_counts_exactly(IstioRelease::TrafficExtension130);
}

/// How often `needle` appears in Envoy's log.
fn log_count(envoy: &Envoy, needle: &str) -> usize {
    envoy.log().matches(needle).count()
}

/// Sends `probe` until the configuration just delivered counts it (`counted` true), so the
/// worker serves with it. One worker: every request after that one meets the same configuration.
fn probe_until(
    envoy: &Envoy,
    method: &str,
    path: &str,
    what: &str,
    counted: impl Fn(&Metrics) -> bool,
) {
    let agent = agent();
    eventually(Duration::from_secs(20), what, || {
        assert!(exchange(&agent, method, &envoy.url(path), "").1);
        counted(&envoy.scrape()).then_some(())
    });
}

/// A pod's life under one release's names. One worker, so that once a probe request is counted
/// by a new configuration, every later request is served by it too.
fn pod_lifecycle(release: IstioRelease, later_bad: (Value, &str)) {
    let app = app();
    let plugin = shipped_plugin(release);
    let label = plugin.config_name(); // no sequence Istio's regexes capture: kept as it is
    let valid = [("plugin", label.as_str())];
    let a = config_a();
    // Istio's `cache` regex would take `cache.v1/{file};.;method=.=GET;.` out of the stat name.
    let mut bad_first = a.clone();
    bad_first["http_metrics"]["handlers"]
        .as_array_mut()
        .unwrap()
        .push(json!("/static/cache.v1/{file}"));
    let refused_handler = "app_metrics: http_metrics.handlers[5]: ";

    // 1. A new pod whose first configuration is refused: inert, and the app answers everything.
    let sidecar = IstioSidecar::start(
        &[(plugin.clone(), &bad_first)],
        app.port,
        &sampler_clusters(&a, app.port),
        1,
    );
    let envoy = &sidecar.envoy;
    let t1 = Traffic {
        logins: 2,
        failed_logins: 1,
        orders: 1,
        users: 1,
        user_count: 1,
        statics: 2,
    };
    send_traffic(envoy, t1);
    assert_eq!(app.hits("/login"), 3);
    assert_eq!(app.count("GET", "/static/cache.v1/app.js", 200), 2);
    let m = wait_value(envoy, VALID, &valid, 0.0);
    // Each VM that configured the plugin logged the refusal (the worker's included: it served).
    let vms = log_count(envoy, refused_handler);
    assert!(vms >= 2, "the refusal names the template:\n{}", envoy.log());
    let names: std::collections::BTreeSet<&str> = m
        .scrape
        .samples
        .iter()
        .map(|s| s.metric.as_str())
        .filter(|n| !n.starts_with("envoy_"))
        .collect();
    assert_eq!(
        names,
        [VALID].into_iter().collect(),
        "nothing recorded under a refused configuration:\n{}",
        m.text
    );
    assert_only_own_labels(&m);
    eprintln!("istio {release:?}: refused first configuration: inert, app answered all, {VALID} 0");

    // 2. A good configuration (the shipped one): in force, counted exactly.
    sidecar.deliver(0, &a);
    wait_value(envoy, VALID, &valid, 1.0);
    probe_until(envoy, "GET", "/health", "configuration A counts", |m| {
        m.value(
            "http_requests_total",
            &[("handler", "/health"), ("method", "GET"), ("status", "2xx")],
        )
        .is_some()
    });
    let before = counts(&envoy.scrape());
    let t2 = Traffic {
        logins: 3,
        failed_logins: 2,
        orders: 1,
        users: 2,
        user_count: 1,
        statics: 1,
    };
    send_traffic(envoy, t2);
    let m = wait_growth(
        envoy,
        &before,
        &counted_by_a(t2),
        "configuration A after a refused one",
    );
    assert_eq!(m.value(VALID, &valid), Some(1.0));

    // 3. An update: B's rules count, A's dropped ones do not.
    sidecar.deliver(0, &config_b());
    probe_until(envoy, "POST", "/orders", "configuration B counts", |m| {
        m.value("orders_placed_total", &[])
            .is_some_and(|n| n >= 1.0)
    });
    let before = counts(&envoy.scrape());
    let t3 = Traffic {
        logins: 2,
        failed_logins: 3,
        orders: 3,
        users: 1,
        user_count: 2,
        statics: 1,
    };
    send_traffic(envoy, t3);
    let m = wait_growth(
        envoy,
        &before,
        &counted_by_b(t3),
        "configuration B, the update",
    );
    assert_eq!(m.value(VALID, &valid), Some(1.0));

    // 4. A refused configuration after a good one: B stays in force, the gauge says 0.
    let (bad, refused_field) = later_bad;
    let refusals = log_count(envoy, refused_field);
    sidecar.deliver(0, &bad);
    wait_value(envoy, VALID, &valid, 0.0);
    // Every VM has met the refused configuration, the worker's included, before the traffic.
    eventually(
        Duration::from_secs(20),
        "the refusal logged by every VM",
        || (log_count(envoy, refused_field) >= refusals + vms).then_some(()),
    );
    let before = counts(&envoy.scrape());
    let t4 = Traffic {
        logins: 1,
        failed_logins: 2,
        orders: 2,
        users: 3,
        user_count: 1,
        statics: 2,
    };
    send_traffic(envoy, t4);
    let m = wait_growth(
        envoy,
        &before,
        &counted_by_b(t4),
        "B in force after a refused update",
    );
    assert_eq!(m.value(VALID, &valid), Some(0.0));
    assert_only_own_labels(&m);
    assert!(!envoy.log().contains("panic"), "{}", envoy.log());
    eprintln!(
        "istio {release:?}: {}: refused first, then A, B counted exactly, B kept after a refused update",
        plugin.resource_name()
    );
}

/// 1.19-1.29 names; the later refusal: a counter name Istio's `response_code` regex would cut.
#[test]
fn a_pods_configuration_lifecycle_by_ecds_under_istio_1_29_names() {
    let mut bad = config_b();
    bad["counters"].as_array_mut().unwrap().push(json!(
        {"name": "orders_rq_201", "match": {"method": "POST", "path": "/orders", "status": [201]}}
    ));
    pod_lifecycle(
        IstioRelease::WasmPlugin129,
        (bad, "app_metrics: counters[2].name: "),
    );
}

/// 1.30 names; the later refusal: an excluded handler Istio's `component` regex would split.
#[test]
fn a_pods_configuration_lifecycle_by_ecds_under_istio_1_30_names() {
    let mut bad = config_b();
    bad["http_metrics"]["excluded_handlers"] = json!(["/metrics", "/component.v2/status"]);
    pod_lifecycle(
        IstioRelease::TrafficExtension130,
        (bad, "app_metrics: http_metrics.excluded_handlers[1]: "),
    );
}

/// Plugin names holding sequences Istio's regexes capture (namespace `tag`, a name with
/// `cache.`; `rbac.allowed`) come out as exactly one `plugin` label each: the filter turns the
/// captured sequence's '.' into '_'. Two WasmPlugins in one filter chain, one VM.
#[test]
fn istio_style_plugin_names_make_exactly_one_plugin_label() {
    let app = app();
    let counter = |name: &str| {
        json!({"counters": [{"name": name, "match": {"method": "POST", "path": "/login"}}],
               "http_metrics": {"enabled": false}})
    };
    let (first, second) = (
        counter("first_logins_total"),
        counter("second_logins_total"),
    );
    let plugins = [
        (
            IstioPlugin::new("tag", "cache.app-metrics", IstioRelease::WasmPlugin129),
            "tag_cache_app-metrics",
        ),
        (
            IstioPlugin::new(
                "shop",
                "rbac.allowed-metrics",
                IstioRelease::TrafficExtension130,
            ),
            "shop.rbac_allowed-metrics~istio-translated-wasmplugin",
        ),
    ];
    let sidecar = IstioSidecar::start(
        &[
            (plugins[0].0.clone(), &first),
            (plugins[1].0.clone(), &second),
        ],
        app.port,
        &[],
        2,
    );
    let envoy = &sidecar.envoy;
    send_traffic(
        envoy,
        Traffic {
            logins: 2,
            failed_logins: 1,
            orders: 0,
            users: 0,
            user_count: 0,
            statics: 0,
        },
    );
    let m = wait_value(envoy, "first_logins_total", &[], 3.0);
    assert_eq!(m.value("second_logins_total", &[]), Some(3.0));
    let want: BTreeMap<Vec<(String, String)>, f64> = plugins
        .iter()
        .map(|(_, label)| (vec![("plugin".to_string(), label.to_string())], 1.0))
        .collect();
    assert_eq!(m.series(VALID), want, "{}", m.text);
    assert_only_own_labels(&m);
}
