//! Every PromQL expression the kit ships (Grafana dashboard, PrometheusRule) evaluated by a real
//! Prometheus scraping an Envoy with the filter under test traffic: HTTP to a test upstream, and
//! gRPC (the configuration's `grpc` section) to a real grpcio server (tests/grpc/server.py) over
//! HTTP/2.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test code

mod common;
#[path = "common/prometheus.rs"]
mod prometheus;

use common::{bootstrap::*, envoy::*, grpc::h2_cluster_yaml, grpc::GrpcServer, upstream::*, *};
use prometheus::Prometheus;
use serde::Deserialize;
use std::thread;
use std::time::{Duration, Instant};

/// (where, expression) for every dashboard target and every rule, with the rules' recorded series
/// written out as the expressions that record them (this Prometheus evaluates no rules).
fn shipped_expressions() -> Vec<(String, String)> {
    let mut out = Vec::new();
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("k8s/grafana/dashboards/app-metrics.json"))
            .unwrap(),
    )
    .unwrap();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            if let Some(expr) = target["expr"].as_str() {
                // Grafana's variables, as Grafana would fill them in for a short range and
                // the configuration's service selected.
                let expr = expr
                    .replace("$__rate_interval", "1m")
                    .replace("$__interval", "1m")
                    .replace("$__range", "1h")
                    .replace("$service", SERVICE)
                    .replace("$cluster", ".*")
                    .replace("$namespace", ".*");
                out.push((
                    format!(
                        "dashboard panel {:?}",
                        panel["title"].as_str().unwrap_or("")
                    ),
                    expr,
                ));
            }
        }
    }
    let text =
        std::fs::read_to_string(repo_root().join("k8s/monitoring/prometheusrule.yaml")).unwrap();
    let mut recorded = Vec::new();
    let mut rules = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let rule: serde_json::Value =
            serde_json::to_value(serde_yaml::Value::deserialize(doc).unwrap()).unwrap();
        for group in rule["spec"]["groups"].as_array().into_iter().flatten() {
            for r in group["rules"].as_array().into_iter().flatten() {
                let name = r["alert"]
                    .as_str()
                    .or(r["record"].as_str())
                    .unwrap_or("")
                    .to_string();
                let expr = r["expr"].as_str().unwrap().trim().to_string();
                if r["record"].is_string() {
                    recorded.push((name.clone(), expr.clone()));
                }
                rules.push((format!("rule {name}"), expr));
            }
        }
    }
    for (source, expr) in rules {
        out.push((source, expand_recorded(&expr, &recorded)));
    }
    assert!(
        out.len() >= 10,
        "expected the dashboard and rules, found {out:?}"
    );
    out
}

/// `expr` with each recorded series name replaced by the expression recording it, in parentheses
/// (recursively: records use records), so that a Prometheus without the rules answers it.
fn expand_recorded(expr: &str, recorded: &[(String, String)]) -> String {
    let mut out = String::new();
    let mut token = String::new();
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    for c in expr.chars().chain(std::iter::once(' ')) {
        if is_name(c) {
            token.push(c);
            continue;
        }
        match recorded.iter().find(|(name, _)| *name == token) {
            Some((_, body)) => out.push_str(&format!("({})", expand_recorded(body, recorded))),
            None => out.push_str(&token),
        }
        token.clear();
        out.push(c);
    }
    out.pop();
    out
}

/// The configuration's constant `service` label, which the dashboard selects by.
const SERVICE: &str = "k8s-sample-api";

/// `expr > 90 and …` → `expr`, `(a > t and b > t) and …` → `a`: an alert is silent on a healthy
/// system, its measurement must not be.
fn measurement(expr: &str) -> Option<&str> {
    let (lhs, _) = expr.split_once('>')?;
    let mut lhs = lhs.trim();
    while lhs.starts_with('(') && lhs.matches('(').count() > lhs.matches(')').count() {
        lhs = lhs[1..].trim_start();
    }
    (!lhs.is_empty() && !lhs.contains(" and") && !lhs.contains("unless")).then_some(lhs)
}

/// One unary gRPC call through Envoy over HTTP/1.1 (the filter keys on the content type; Envoy
/// speaks HTTP/2 to the server): the payload as one length-prefixed message. Returns the
/// `grpc-status` of a trailers-only answer (an error), None when it came in the trailers (OK:
/// HTTP/1.1 shows no trailers).
fn grpc_call(agent: &ureq::Agent, url: &str, payload: &str) -> Option<String> {
    let mut body = vec![0u8];
    body.extend_from_slice(&u32::try_from(payload.len()).unwrap().to_be_bytes());
    body.extend_from_slice(payload.as_bytes());
    let request = ureq::http::Request::builder()
        .method("POST")
        .uri(url)
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(body)
        .unwrap();
    let mut resp = agent
        .run(request)
        .unwrap_or_else(|e| panic!("POST {url}: {e}"));
    let _ = resp.body_mut().read_to_vec();
    assert_eq!(resp.status(), 200, "{url}: gRPC answers are HTTP 200");
    resp.headers()
        .get("grpc-status")
        .map(|v| v.to_str().unwrap().to_string())
}

/// The gRPC calls of one round to tests/grpc/server.py: (method, payload, the `grpc-status`
/// header the client must see). 5 RPCs, one server error (Internal, in Add), one caller error
/// (NotFound, in Get), and Get's OK answers take at least 30 ms.
const GRPC_ROUND: [(&str, &str, Option<&str>); 5] = [
    ("/shop.v1.Cart/Get", "sleep:30", None),
    ("/shop.v1.Cart/Get", "sleep:30", None),
    ("/shop.v1.Cart/Get", "notfound", Some("5")),
    ("/shop.v1.Cart/Add", "ok", None),
    ("/shop.v1.Cart/Add", "bare:INTERNAL", Some("13")),
];

/// The one value `expr` gives for `labels` (a subset of its result's labels).
fn value_for(prometheus: &Prometheus, expr: &str, labels: &[(&str, &str)]) -> f64 {
    let result = prometheus.query_all(expr).unwrap();
    let found: Vec<f64> = result
        .iter()
        .filter(|r| labels.iter().all(|(k, v)| r["metric"][*k] == *v))
        .map(|r| r["value"][1].as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(found.len(), 1, "{labels:?} in {expr}: {result:?}");
    found[0]
}

/// Has data only once a VM ran out of memory (`app_metrics_requests_not_counted_total`, driven
/// in the cost probe: tests/cost/test_memory.py): here its metric is checked to be the module's
/// own name, and promtool evaluates the rule (tests/kit/prometheusrule_test.yaml).
const OUT_OF_MEMORY_ONLY: &str = "rule AppMetricsRequestsNotCounted";

#[test]
fn every_shipped_expression_evaluates_with_data() {
    let upstream = Upstream::start(|method, url| match (method, url) {
        ("POST", "/login?ok") => Reply::new(200, "{}"),
        ("POST", "/login?bad") => Reply::new(400, "{}"),
        (_, "/users/count") => Reply::new(200, r#"{"count": 9}"#),
        (_, "/boom") => Reply::new(500, ""),
        _ => Reply::new(200, "{}"),
    });
    // The reference config, plus a sampler that fails so the error panels and alerts have data,
    // a route to a cluster where nothing listens: Envoy's own 503s beside the app's 500s, and
    // gRPC to a real server.
    let grpc = GrpcServer::start();
    let config = r#"{
      "labels": {"service": "k8s-sample-api"},
      "http_metrics": {"handlers": ["/login", "/users", "/users/count", "/users/{user_id}", "/health", "/boom", "/unreachable"]},
      "grpc": {"methods": ["/shop.v1.Cart/Get", "/shop.v1.Cart/Add"], "handling_time": true},
      "samplers": [
        {"name": "total_users", "cluster": "app", "path": "/users/count", "interval_seconds": 1, "value": {"json_pointer": "/count"}},
        {"name": "broken_gauge", "cluster": "app", "path": "/boom", "interval_seconds": 1, "value": {"text": true}}
      ]}"#;
    let mut opts = EnvoyOptions::new(config, upstream.port);
    opts.extra_clusters = vec![Cluster::fixed("nowhere", free_port())];
    opts.raw_clusters = vec![h2_cluster_yaml("grpc", grpc.port)];
    opts.routes = vec![
        route_yaml("/unreachable", "nowhere", "10s"),
        route_yaml("/shop.v1.Cart/", "grpc", "10s"),
    ];
    // Envoy's default tags on, as in the shipped Envoy configurations (the harness turns them off).
    let (listen, admin) = (free_port(), free_port());
    let off = "  use_all_default_tags: false\n";
    let config = bootstrap(&opts, listen, admin);
    assert!(
        config.contains(off),
        "the harness's bootstrap changed: update this test"
    );
    let envoy = Envoy::start_with_config(&config.replace(off, ""), opts.concurrency, listen, admin)
        .unwrap();
    let prometheus = Prometheus::start(&format!("127.0.0.1:{}", envoy.admin_port));
    let agent = agent();
    // Mostly failed logins (the failure-ratio alert fires), some 5xx, for longer than a few scrapes.
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(15) {
        send(&agent, "POST", &envoy.url("/login?ok"), "");
        for _ in 0..3 {
            send(&agent, "POST", &envoy.url("/login?bad"), "");
        }
        send(&agent, "GET", &envoy.url("/users/7"), "");
        send(&agent, "GET", &envoy.url("/boom"), "");
        assert_eq!(send(&agent, "GET", &envoy.url("/unreachable"), ""), 503);
        for (method, payload, status) in GRPC_ROUND {
            let got = grpc_call(&agent, &envoy.url(method), payload);
            assert_eq!(got.as_deref(), status, "{method} {payload}");
        }
        thread::sleep(Duration::from_millis(100));
    }
    let expressions = shipped_expressions();
    assert!(expressions.iter().any(|(s, _)| s == OUT_OF_MEMORY_ONLY));
    let mut empty = Vec::new();
    for (source, expr) in &expressions {
        let result = prometheus
            .query_all(expr)
            .unwrap_or_else(|e| panic!("{source}: {e}"));
        if !result.is_empty() {
            continue;
        }
        if source == OUT_OF_MEMORY_ONLY {
            assert!(
                expr.contains(app_metrics::names::REQUESTS_NOT_COUNTED),
                "{expr}"
            );
            continue;
        }
        match measurement(expr).filter(|_| !source.contains("Silent")) {
            Some(lhs) => {
                let measured = prometheus
                    .query_all(lhs)
                    .unwrap_or_else(|e| panic!("{source}: {e}"));
                if measured.is_empty() {
                    empty.push(format!("{source}: {lhs}"));
                }
            }
            None if source.contains("Silent") => {
                // Fires when requests reach the pod but not the filter: silent here by design.
                // Its first operand (the requests reaching Envoy) must have data. The kit's
                // monitors mark what they scrape with app_metrics_wasm="true"; this scrape
                // has no monitor.
                let lhs = r#"sum by (cluster, namespace, pod) (rate(envoy_http_downstream_rq_total{app_metrics_wasm="true", envoy_http_conn_manager_prefix="app"}[10m]))"#;
                assert!(expr.contains(lhs), "{source} changed: update this test");
                let lhs = lhs.replace(r#"app_metrics_wasm="true", "#, "");
                assert!(
                    !prometheus.query_all(&lhs).unwrap().is_empty(),
                    "{source}: {lhs}"
                );
            }
            None => empty.push(format!("{source}: {expr}")),
        }
    }
    assert!(
        empty.is_empty(),
        "expressions without data:\n{}",
        empty.join("\n")
    );
    // The seed panels' numbers are the real ones, and another service selects nothing.
    assert_eq!(prometheus.query("max(total_users)"), Some(9.0));
    let (_, total_users) = expressions
        .iter()
        .find(|(source, _)| source.contains("Total Users"))
        .unwrap();
    assert_eq!(prometheus.query(total_users), Some(9.0));
    let other = total_users.replace(SERVICE, "another-service");
    assert!(prometheus.query_all(&other).unwrap().is_empty(), "{other}");
    assert!(
        prometheus
            .query("sum(rate(failed_login_details_total[1m]))")
            .unwrap()
            > 0.0
    );
    // "App or mesh": as many 500s from the app as 503s from Envoy were sent (one each per
    // round), and Envoy's were a connection failure.
    let app_5xx = r#"sum(increase(http_requests_total{status="5xx"}[5m])) - sum(increase(http_proxy_responses_total{status="5xx"}[5m]))"#;
    let proxy_5xx = r#"sum(increase(http_proxy_responses_total{status="5xx", reason="connection_failure"}[5m]))"#;
    let (app, proxy) = (prometheus.query(app_5xx), prometheus.query(proxy_5xx));
    assert!(
        matches!((app, proxy), (Some(a), Some(p)) if p > 0.0 && (a - p).abs() < 0.5 * p),
        "app {app:?} vs proxy {proxy:?}"
    );
    assert_eq!(
        prometheus.query(r#"count(http_proxy_responses_total{reason!="connection_failure"})"#),
        None,
        "only the unreachable route's answers are Envoy's"
    );
    grpc_numbers_are_the_real_ones(&prometheus, &expressions);
}

/// The gRPC expressions' numbers against what was sent (five RPCs a round, see [`GRPC_ROUND`]):
/// only the server's codes count as errors, the alert fires for the service sending them, and
/// the handling time tells Get's 30 ms from Add's instant answers.
fn grpc_numbers_are_the_real_ones(prometheus: &Prometheus, expressions: &[(String, String)]) {
    let find = |source: &str| -> &str {
        &expressions
            .iter()
            .find(|(s, _)| s == source)
            .unwrap_or_else(|| panic!("{source} not shipped"))
            .1
    };
    let cart = [("service", SERVICE), ("grpc_service", "shop.v1.Cart")];
    let close = |got: f64, want: f64| (got - want).abs() < 0.05;
    // Rounds are sent whole, scrapes land anywhere in them: close, not exact.
    let record =
        find("rule cluster_namespace_service_grpc_service:grpc_server_handled_errors:ratio_rate5m");
    let ratio = value_for(prometheus, record, &cart);
    assert!(close(ratio, 0.2), "server errors per RPC: {ratio}");
    let per_method = find(
        "rule cluster_namespace_service_grpc_service_grpc_method:grpc_server_handled_errors:ratio_rate5m",
    );
    let get = value_for(prometheus, per_method, &[("grpc_method", "Get")]);
    assert_eq!(
        get, 0.0,
        "Get's NotFound is the caller's error, not the service's"
    );
    let add = value_for(prometheus, per_method, &[("grpc_method", "Add")]);
    assert!(close(add, 0.5), "Add: {add}");
    // The dashboard: server errors by code (Internal only), the rest apart (NotFound).
    let by_code: Vec<&str> = expressions
        .iter()
        .filter(|(s, _)| s == "dashboard panel \"gRPC error ratio by code\"")
        .map(|(_, e)| e.as_str())
        .collect();
    assert_eq!(by_code.len(), 3);
    let codes = |expr: &str| -> Vec<String> {
        let mut codes: Vec<String> = prometheus
            .query_all(expr)
            .unwrap()
            .iter()
            .map(|r| r["metric"]["grpc_code"].as_str().unwrap_or("").to_string())
            .collect();
        codes.sort();
        codes
    };
    assert_eq!(codes(by_code[0]), ["Internal"]);
    assert_eq!(codes(by_code[2]), ["NotFound"]);
    let internal = value_for(prometheus, by_code[0], &[("grpc_code", "Internal")]);
    assert!(close(internal, 0.2), "Internal: {internal}");
    assert!(close(value_for(prometheus, by_code[1], &cart), 0.2));
    let not_found = value_for(prometheus, by_code[2], &[("grpc_code", "NotFound")]);
    assert!(close(not_found, 0.2), "NotFound: {not_found}");
    // The rate: 3 Get for 2 Add.
    let rate = find("dashboard panel \"gRPC request rate by method\"");
    let (get, add) = (
        value_for(prometheus, rate, &[("grpc_method", "Get")]),
        value_for(prometheus, rate, &[("grpc_method", "Add")]),
    );
    assert!(
        add > 0.0 && (get / add - 1.5).abs() < 0.2,
        "Get {get}/s, Add {add}/s"
    );
    // Handling time: two of Get's three RPCs wait 30 ms (bucket 25-50 or above), Add answers at
    // once.
    let quantile = |q: &str, method: &str| {
        let (_, expr) = expressions
            .iter()
            .find(|(s, e)| {
                s == "dashboard panel \"gRPC handling time p50 / p99 by method\""
                    && e.starts_with(&format!("histogram_quantile({q},"))
            })
            .unwrap();
        value_for(prometheus, expr, &[("grpc_method", method)])
    };
    let (get_p50, get_p99, add_p99) = (
        quantile("0.5", "Get"),
        quantile("0.99", "Get"),
        quantile("0.99", "Add"),
    );
    assert!(
        get_p50 > 25.0 && get_p99 >= get_p50,
        "Get p50 {get_p50} p99 {get_p99}"
    );
    assert!(add_p99 < 25.0, "Add p99 {add_p99}");
    // 20 % server errors over a few hundred RPCs: both pairs of the alert fire, for this service
    // only.
    for (source, expr) in expressions {
        if source == "rule AppGrpcErrorBudgetBurn" {
            let fired = prometheus.query_all(expr).unwrap();
            assert_eq!(fired.len(), 1, "{expr}: {fired:?}");
            assert_eq!(fired[0]["metric"]["service"], SERVICE);
            assert_eq!(fired[0]["metric"]["grpc_service"], "shop.v1.Cart");
        }
    }
}
