//! Every PromQL expression the kit ships (Grafana dashboard, PrometheusRule) evaluated by a real
//! Prometheus scraping an Envoy with the filter under test traffic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test code

mod common;
#[path = "common/prometheus.rs"]
mod prometheus;

use common::{bootstrap::*, envoy::*, upstream::*, *};
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
    // and a route to a cluster where nothing listens: Envoy's own 503s beside the app's 500s.
    let config = r#"{
      "labels": {"service": "k8s-sample-api"},
      "http_metrics": {"handlers": ["/login", "/users", "/users/count", "/users/{user_id}", "/health", "/boom", "/unreachable"]},
      "samplers": [
        {"name": "total_users", "cluster": "app", "path": "/users/count", "interval_seconds": 1, "value": {"json_pointer": "/count"}},
        {"name": "broken_gauge", "cluster": "app", "path": "/boom", "interval_seconds": 1, "value": {"text": true}}
      ]}"#;
    let mut opts = EnvoyOptions::new(config, upstream.port);
    opts.extra_clusters = vec![Cluster::fixed("nowhere", free_port())];
    opts.routes = vec![route_yaml("/unreachable", "nowhere", "10s")];
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
        thread::sleep(Duration::from_millis(100));
    }
    let expressions = shipped_expressions();
    let mut empty = Vec::new();
    for (source, expr) in &expressions {
        let result = prometheus
            .query_all(expr)
            .unwrap_or_else(|e| panic!("{source}: {e}"));
        if !result.is_empty() {
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
}
