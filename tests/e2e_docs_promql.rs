//! Every PromQL query the documents give (README.md, docs/*.md) run by a real Prometheus against
//! real series: plain Envoy as the shipped envoy/envoy.yaml runs it (Envoy's default tags on),
//! and an Istio sidecar with the shipped WasmPlugin under Istio 1.29's and 1.30's names (its
//! `plugin` label). Each query must parse and return data from at least one of them.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test code

mod common;
#[path = "common/prometheus.rs"]
mod prometheus;

use common::{bootstrap::*, envoy::*, istio::*, upstream::*, *};
use prometheus::Prometheus;
use std::thread;
use std::time::{Duration, Instant};

/// PromQL functions and aggregations a query in the docs may start with.
const FUNCTIONS: [&str; 12] = [
    "sum",
    "rate",
    "irate",
    "increase",
    "max",
    "min",
    "avg",
    "count",
    "histogram_quantile",
    "time",
    "topk",
    "label_values",
];

/// Whether an inline code span of the docs is a query: a function call or a selector with a
/// matcher, and no placeholder (`<name>`, `…`, `sum()`).
fn is_query(span: &str) -> bool {
    if span.contains('<') || span.contains('…') || span.contains("...") || span.contains("()") {
        return false;
    }
    // A line of a scrape (`name{…} 2`), not a query.
    if span
        .rsplit_once("} ")
        .is_some_and(|(_, v)| v.parse::<f64>().is_ok())
    {
        return false;
    }
    let call = FUNCTIONS.iter().any(|f| {
        span.match_indices(f).any(|(i, _)| {
            let before_ok = i == 0
                || !span[..i]
                    .chars()
                    .next_back()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
            let rest = span[i + f.len()..].trim_start();
            // `sum by (x) (…)` is a query, `sum by (x)` a phrase.
            let rest = match rest.strip_prefix("by (").and_then(|r| r.split_once(')')) {
                Some((_, after)) => after.trim_start(),
                None => rest,
            };
            before_ok && rest.starts_with('(')
        })
    });
    let selector = span.split_once('{').is_some_and(|(name, rest)| {
        !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
            && (rest.contains("=\"") || rest.contains("=~\""))
    });
    call || selector
}

/// (file, query) for every query in README.md and docs/*.md: inline code spans outside fenced
/// blocks (a span may wrap onto the next line), and each line of a ```promql block; Grafana's
/// variables as "All" selects them.
fn doc_queries() -> Vec<(String, String)> {
    let root = repo_root();
    let mut files = vec![root.join("README.md")];
    let mut docs: Vec<_> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    let mut out = Vec::new();
    for f in files {
        let name = f.strip_prefix(&root).unwrap().display().to_string();
        let text = std::fs::read_to_string(&f).unwrap();
        let mut fence: Option<String> = None;
        let mut prose = String::new();
        for line in text.lines() {
            if let Some(lang) = line.trim_start().strip_prefix("```") {
                fence = match fence {
                    Some(_) => None,
                    None => Some(lang.trim().to_string()),
                };
                continue;
            }
            match fence.as_deref() {
                Some("promql") if !line.trim().is_empty() && !line.trim().starts_with('#') => {
                    out.push((name.clone(), line.trim().to_string()));
                }
                Some(_) => {}
                None => {
                    prose.push_str(line);
                    prose.push(if line.trim().is_empty() { '\n' } else { ' ' });
                }
            }
        }
        for paragraph in prose.split('\n') {
            for (i, span) in paragraph.split('`').enumerate() {
                if i % 2 == 1 && is_query(span) {
                    let query = span
                        .replace("$__rate_interval", "1m")
                        .replace("$cluster", ".*")
                        .replace("$namespace", ".*")
                        .replace("$service", ".*");
                    out.push((name.clone(), query));
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

fn traffic(agent: &ureq::Agent, url: &dyn Fn(&str) -> String) {
    send(agent, "POST", &url("/login?ok"), "");
    send(agent, "POST", &url("/login?bad"), "");
    send(agent, "GET", &url("/users/7"), "");
    send(agent, "GET", &url("/boom"), "");
    send(agent, "GET", &url("/unreachable"), "");
}

#[test]
fn every_query_in_the_docs_returns_real_series() {
    let queries = doc_queries();
    let texts: Vec<&str> = queries.iter().map(|(_, q)| q.as_str()).collect();
    // The extraction finds what the docs are known to hold (it must not silently find nothing).
    for must in [
        "max(total_users)",
        r#"app_metrics_config_valid{plugin="default.app-metrics~istio-translated-wasmplugin"}"#,
        r#"envoy_http_downstream_rq_total{envoy_http_conn_manager_prefix="app"}"#,
    ] {
        assert!(texts.contains(&must), "{must} not among {texts:?}");
    }
    assert!(!texts.iter().any(|q| q.contains("<plugin name>")));

    let app = Upstream::start(|_, url| match url {
        "/login?bad" => Reply::new(400, "{}"),
        "/users/count" => Reply::new(200, r#"{"count": 9}"#),
        "/boom" => Reply::new(500, ""),
        _ => Reply::new(200, "{}"),
    });
    // Plain Envoy: the harness's bootstrap with envoy/envoy.yaml's stats (default tags on).
    let config = r#"{
      "counters": [
        {"name": "successful_login_details_total", "match": {"method": "POST", "path": "/login", "status": ["2xx"]}},
        {"name": "failed_login_details_total", "match": {"method": "POST", "path": "/login", "status": [400, 401]}}],
      "http_metrics": {"handlers": ["/login", "/users", "/users/count", "/users/{user_id}", "/health"]},
      "samplers": [{"name": "total_users", "cluster": "app", "path": "/users/count", "interval_seconds": 1,
                    "value": {"json_pointer": "/count"}}]}"#;
    let mut opts = EnvoyOptions::new(config, app.port);
    // A route to a cluster where nothing listens: Envoy's own 503s beside the app's 500s.
    opts.extra_clusters = vec![Cluster::fixed("nowhere", free_port())];
    opts.routes = vec![route_yaml("/unreachable", "nowhere", "10s")];
    let (listen, admin) = (free_port(), free_port());
    let off = "  use_all_default_tags: false\n";
    let bootstrap = bootstrap(&opts, listen, admin);
    assert!(
        bootstrap.contains(off),
        "the harness's bootstrap changed: update this test"
    );
    let envoy = Envoy::start_with_config(&bootstrap.replace(off, ""), 1, listen, admin).unwrap();
    // Istio sidecars with the shipped WasmPlugin, under each release's names.
    let wp = shipped_wasmplugin();
    let sampler = wp["spec"]["pluginConfig"]["samplers"][0]["cluster"]
        .as_str()
        .unwrap()
        .to_string();
    let sidecars: Vec<IstioSidecar> = ISTIO_RELEASES
        .iter()
        .map(|&release| {
            let mut plugin = IstioPlugin::new(
                wp["metadata"]["namespace"].as_str().unwrap(),
                wp["metadata"]["name"].as_str().unwrap(),
                release,
            );
            plugin.plugin_name = wp["spec"]["pluginName"].as_str().unwrap().to_string();
            IstioSidecar::start(
                &[(plugin, &wp["spec"]["pluginConfig"])],
                app.port,
                &[(sampler.clone(), app.port)],
                1,
            )
        })
        .collect();
    let mut targets = vec![("plain Envoy".to_string(), &envoy)];
    for (s, release) in sidecars.iter().zip(ISTIO_RELEASES) {
        targets.push((format!("Istio sidecar {release:?}"), &s.envoy));
    }
    let prometheuses: Vec<(String, Prometheus)> = targets
        .iter()
        .map(|(name, e)| {
            (
                name.clone(),
                Prometheus::start(&format!("127.0.0.1:{}", e.admin_port)),
            )
        })
        .collect();
    let agent = agent();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(8) {
        for (_, e) in &targets {
            traffic(&agent, &|p| e.url(p));
        }
        thread::sleep(Duration::from_millis(200));
    }

    let mut failures = Vec::new();
    for (file, query) in &queries {
        let mut answered = Vec::new();
        let mut errors = Vec::new();
        for (name, p) in &prometheuses {
            match p.query_all(query) {
                Ok(r) if !r.is_empty() => answered.push(name.as_str()),
                Ok(_) => {}
                Err(e) => errors.push(e),
            }
        }
        if answered.is_empty() {
            failures.push(format!("{file}: {query}: no data ({errors:?})"));
        }
        eprintln!("{file}: {query} -> {answered:?}");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
