//! The shipped envoy/envoy.yaml in front of the demo app, scraped by a real Prometheus that
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test code
//! answers the seed dashboard's queries.

mod common;
#[path = "common/prometheus.rs"]
mod prometheus;

use common::{envoy::*, scrape::*, upstream::*, *};
use prometheus::Prometheus;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_demo_app(port: u16) -> Process {
    let child = Command::new("python3")
        .arg(repo_root().join("demo/app.py"))
        .args(["--port", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 demo/app.py");
    let app = Process(child);
    let health = format!("http://127.0.0.1:{port}/health");
    eventually(Duration::from_secs(15), "demo app", || {
        agent()
            .get(&health)
            .call()
            .ok()
            .filter(|r| r.status() == 200)
            .map(|_| ())
    });
    app
}

/// envoy/envoy.yaml as shipped, with its fixed ports moved to free ones.
struct Shipped {
    envoy: Envoy,
    metrics_port: u16,
}

fn start_shipped(app_port: u16) -> Shipped {
    let (listen, metrics, admin) = (free_port(), free_port(), free_port());
    let shipped = std::fs::read_to_string(repo_root().join("envoy/envoy.yaml")).unwrap();
    for port in [
        "port_value: 10000",
        "port_value: 15090",
        "port_value: 9901",
        "port_value: 8000",
    ] {
        assert_eq!(
            shipped.matches(port).count(),
            if port.ends_with("9901") { 2 } else { 1 },
            "{port} in envoy.yaml"
        );
    }
    let config = shipped
        .replace("port_value: 10000", &format!("port_value: {listen}"))
        .replace("port_value: 15090", &format!("port_value: {metrics}"))
        .replace("port_value: 9901", &format!("port_value: {admin}"))
        .replace("port_value: 8000", &format!("port_value: {app_port}"))
        .replace(
            "target/wasm32-wasip1/release/app_metrics.wasm",
            &wasm_path(),
        );
    let envoy =
        Envoy::start_with_config(&config, 2, listen, admin).unwrap_or_else(|log| panic!("{log}"));
    Shipped {
        envoy,
        metrics_port: metrics,
    }
}

fn drive_seed_traffic(envoy: &Envoy, users: &[&str]) -> (u64, u64) {
    let agent = agent();
    for user in users {
        let body = format!(r#"{{"username": "{user}", "password": "pw-{user}"}}"#);
        assert_eq!(send(&agent, "POST", &envoy.url("/users"), &body), 201);
    }
    let (mut good, mut bad) = (0, 0);
    for user in users {
        let ok = format!("username={user}&password=pw-{user}");
        let wrong = format!("username={user}&password=nope");
        let form = |body: &str| {
            let request = ureq::http::Request::builder()
                .method("POST")
                .uri(envoy.url("/login"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body.to_string())
                .unwrap();
            agent.run(request).unwrap().status().as_u16()
        };
        assert_eq!(form(&ok), 200);
        good += 1;
        assert_eq!(form(&wrong), 400);
        bad += 1;
    }
    (good, bad)
}

#[test]
fn shipped_config_counts_the_demo_app_and_only_serves_metrics() {
    let app_port = free_port();
    let _app = start_demo_app(app_port);
    let Shipped {
        envoy,
        metrics_port,
    } = start_shipped(app_port);
    let (good, bad) = drive_seed_traffic(&envoy, &["ada7q", "bob7q", "cyx7q"]);
    let agent = agent();
    assert_eq!(send(&agent, "GET", &envoy.url("/users/1"), ""), 200);
    assert_eq!(send(&agent, "GET", &envoy.url("/users/99"), ""), 404);
    assert_eq!(send(&agent, "POST", &envoy.url("/users"), "not json"), 422);

    let metrics_url = format!("http://127.0.0.1:{metrics_port}/stats/prometheus");
    let m = eventually(
        Duration::from_secs(20),
        "seed metrics on the metrics listener",
        || {
            let m = scrape_url(&metrics_url);
            (m.value("total_users", &[]) == Some(3.0)
                && m.value("failed_login_details_total", &[]) == Some(bad as f64))
            .then_some(m)
        },
    );
    assert_eq!(
        m.value("successful_login_details_total", &[]),
        Some(good as f64)
    );
    assert_eq!(
        m.value(
            "http_requests_total",
            &[("handler", "/users"), ("method", "POST"), ("status", "2xx")]
        ),
        Some(3.0)
    );
    assert_eq!(
        m.value(
            "http_requests_total",
            &[("handler", "/users"), ("method", "POST"), ("status", "4xx")]
        ),
        Some(1.0)
    );
    assert_eq!(
        m.value(
            "http_requests_total",
            &[
                ("handler", "/users/{user_id}"),
                ("method", "GET"),
                ("status", "4xx")
            ]
        ),
        Some(1.0)
    );
    assert!(m
        .value(
            "app_metrics_sampler_last_success_timestamp_seconds",
            &[("sampler", "total_users")]
        )
        .is_some());
    for user in ["ada7q", "bob7q", "pw-cyx7q"] {
        assert!(
            !m.text.contains(user),
            "request data {user:?} leaked into metrics"
        );
    }
    // The metrics listener is not the admin API.
    for path in ["/quitquitquit", "/config_dump", "/stats", "/"] {
        assert_eq!(
            send(
                &agent,
                "GET",
                &format!("http://127.0.0.1:{metrics_port}{path}"),
                ""
            ),
            404,
            "{path}"
        );
    }
    assert_eq!(
        send(
            &agent,
            "POST",
            &format!("http://127.0.0.1:{metrics_port}/quitquitquit"),
            ""
        ),
        404
    );
}

#[test]
fn prometheus_answers_the_seed_dashboard_queries() {
    let app_port = free_port();
    let _app = start_demo_app(app_port);
    let Shipped {
        envoy,
        metrics_port,
    } = start_shipped(app_port);
    let prometheus = Prometheus::start(&format!("127.0.0.1:{metrics_port}"));
    let users = ["ada7q", "bob7q", "cyx7q", "dee7q"];
    let (mut good, mut bad) = drive_seed_traffic(&envoy, &users);
    // Keep logins coming past Prometheus's first scrapes so rate() has two points to work with.
    let agent = agent();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(12) {
        let ok = send(
            &agent,
            "POST",
            &envoy.url("/login"),
            "username=ada7q&password=pw-ada7q",
        );
        let no = send(
            &agent,
            "POST",
            &envoy.url("/login"),
            "username=ada7q&password=x",
        );
        assert_eq!((ok, no), (200, 400));
        good += 1;
        bad += 1;
        thread::sleep(Duration::from_millis(250));
    }
    let total = eventually(Duration::from_secs(30), "sum(total_users)", || {
        prometheus
            .query("sum(total_users)")
            .filter(|v| *v == users.len() as f64)
    });
    assert_eq!(total, 4.0);
    let success_rate = eventually(Duration::from_secs(30), "login success rate", || {
        prometheus
            .query("sum(rate(successful_login_details_total[1m]))")
            .filter(|v| *v > 0.0)
    });
    let failure_rate = eventually(Duration::from_secs(30), "login failure rate", || {
        prometheus
            .query("sum(rate(failed_login_details_total[1m]))")
            .filter(|v| *v > 0.0)
    });
    // About 4 logins of each kind per second were sent for the last 12 s.
    assert!(
        success_rate < 20.0 && failure_rate < 20.0,
        "rates {success_rate} {failure_rate}"
    );
    // And the raw counters Prometheus stored are the exact numbers sent.
    let stored = eventually(Duration::from_secs(15), "latest counters", || {
        let s = prometheus.query("sum(successful_login_details_total)")?;
        let f = prometheus.query("sum(failed_login_details_total)")?;
        (s == good as f64 && f == bad as f64).then_some((s, f))
    });
    assert_eq!(stored, (good as f64, bad as f64));
}
