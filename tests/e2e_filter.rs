//! The filter in a real Envoy: counters, request metrics, samplers, bad configurations.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test code

mod common;

use common::{bootstrap::*, envoy::*, scrape::*, upstream::*, *};
use std::collections::BTreeMap;
use std::io::Write;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// `POST /login?<outcome>`: the test upstream answers by query, the filter matches the path.
fn login_upstream() -> Upstream {
    Upstream::start(|_method, url| match url.split_once('?').map(|(_, q)| q) {
        Some("ok") => Reply::new(200, r#"{"access_token": "t"}"#),
        Some("bad") => Reply::new(400, r#"{"detail": "Incorrect username or password"}"#),
        Some("unauthorized") => Reply::new(401, ""),
        Some("invalid") => Reply::new(422, ""),
        Some("boom") => Reply::new(500, ""),
        _ => Reply::new(200, "{}"),
    })
}

#[test]
fn seed_defaults_count_logins_exactly() {
    let upstream = login_upstream();
    let envoy = Envoy::start(EnvoyOptions::new("", upstream.port));
    // The seed counters exist at 0 before any traffic, as a dashboard expects.
    let before = envoy.scrape();
    assert_eq!(
        before.value("successful_login_details_total", &[]),
        Some(0.0)
    );
    assert_eq!(before.value("failed_login_details_total", &[]), Some(0.0));

    let agent = agent();
    let plan = [
        ("POST", "/login?ok", 7),
        ("POST", "/login?bad", 3),
        ("POST", "/login?unauthorized", 2),
        ("POST", "/login?invalid", 4),
        ("POST", "/login?boom", 1),
        ("GET", "/login?ok", 2),
        ("POST", "/login/x?ok", 1),
    ];
    for (method, path, times) in plan {
        for _ in 0..times {
            send(
                &agent,
                method,
                &envoy.url(path),
                "username=alice&password=secret",
            );
        }
    }
    let m = wait_value(&envoy, "successful_login_details_total", &[], 7.0);
    assert_eq!(
        m.value("failed_login_details_total", &[]),
        Some(5.0),
        "400 and 401 only; 422 and 500 are no failed login"
    );
    // The upstream's own tally agrees.
    assert_eq!(upstream.count("POST", "/login", 200), 7);
    assert_eq!(
        upstream.count("POST", "/login", 400) + upstream.count("POST", "/login", 401),
        5
    );
    // Request metrics are on by default; with no handler templates every path is `none`.
    let m = wait_value(
        &envoy,
        "http_requests_total",
        &[("handler", "none"), ("method", "POST"), ("status", "4xx")],
        9.0,
    );
    assert_eq!(
        m.value(
            "http_requests_total",
            &[("handler", "none"), ("method", "POST"), ("status", "2xx")]
        ),
        Some(8.0)
    );
    assert_eq!(
        m.value(
            "http_requests_total",
            &[("handler", "none"), ("method", "POST"), ("status", "5xx")]
        ),
        Some(1.0)
    );
    assert_eq!(
        m.value(
            "http_requests_total",
            &[("handler", "none"), ("method", "GET"), ("status", "2xx")]
        ),
        Some(2.0)
    );
    // Nothing from the request body or query became a label.
    assert!(!m.text.contains("alice") && !m.text.contains("secret") && !m.text.contains("?ok"));
}

const FULL_CONFIG: &str = r#"{
  "counters": [
    {"name": "successful_login_details_total", "match": {"method": "POST", "path": "/login", "status": ["2xx"]}},
    {"name": "failed_login_details_total", "match": {"method": "POST", "path": "/login", "status": [400, 401]}},
    {"name": "user_lookups_missed_total", "match": {"method": "GET", "path": "/users/{user_id}", "status": [404]}},
    {"name": "admin_calls_total", "match": {"request_headers": {"x-role": "admin"}}},
    {"name": "cache_hits_total", "match": {"response_headers": {"x-cache": "HIT"}}},
    {"name": "anonymous_posts_total", "match": {"method": "POST", "request_headers": {"authorization": false}}}
  ],
  "http_metrics": {"enabled": true,
    "handlers": ["/login", "/users", "/users/count", "/users/{user_id}", "/health"],
    "excluded_handlers": ["/metrics"]}
}"#;

fn app_upstream() -> Upstream {
    Upstream::start(|method, url| {
        let path = url.split('?').next().unwrap_or("");
        match (method, path) {
            ("GET", "/users/1") | ("GET", "/users/2") => {
                Reply::new(200, r#"{"id": 1}"#).header("x-cache", "HIT")
            }
            ("GET", p) if p.starts_with("/users/") && p != "/users/count" => Reply::new(404, ""),
            ("POST", "/users") => Reply::new(201, r#"{"id": 3}"#),
            ("DELETE", _) => Reply::new(204, ""),
            ("GET", "/metrics") => Reply::new(200, "# metrics"),
            (_, "/login") => Reply::new(400, ""),
            ("GET", "/users") | ("GET", "/users/count") | ("GET", "/health") => {
                Reply::new(200, "{}")
            }
            _ => Reply::new(404, ""),
        }
    })
}

fn key(labels: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    v.sort();
    v
}

#[test]
fn request_metrics_use_templates_classes_and_nothing_else() {
    let upstream = app_upstream();
    let envoy = Envoy::start(EnvoyOptions::new(FULL_CONFIG, upstream.port));
    let agent = agent();
    let go = |method: &str, path: &str, body: &str| send(&agent, method, &envoy.url(path), body);
    go("GET", "/users/1", "");
    go("GET", "/users/2?expand=true", "");
    go("GET", "/users/alice", "");
    go("GET", "/users/count", "");
    go("GET", "/users", "");
    go(
        "POST",
        "/users",
        r#"{"username": "carol", "password": "pw"}"#,
    );
    go("DELETE", "/users/9", "");
    go("POST", "/login", "username=eve&password=guess");
    go("GET", "/health", "");
    go("GET", "/secret/token-abc123", "");
    let brew = raw_request(
        envoy.listen_port,
        b"PROPFIND /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    );
    assert_eq!(brew, Some(404));
    for _ in 0..3 {
        go("GET", "/metrics", "");
    }
    let m = wait_value(
        &envoy,
        "http_requests_total",
        &[
            ("handler", "/health"),
            ("method", "other"),
            ("status", "4xx"),
        ],
        1.0,
    );
    let want: BTreeMap<Vec<(String, String)>, f64> = [
        (
            key(&[
                ("handler", "/users/{user_id}"),
                ("method", "GET"),
                ("status", "2xx"),
            ]),
            2.0,
        ),
        (
            key(&[
                ("handler", "/users/{user_id}"),
                ("method", "GET"),
                ("status", "4xx"),
            ]),
            1.0,
        ),
        (
            key(&[
                ("handler", "/users/{user_id}"),
                ("method", "DELETE"),
                ("status", "2xx"),
            ]),
            1.0,
        ),
        (
            key(&[
                ("handler", "/users/count"),
                ("method", "GET"),
                ("status", "2xx"),
            ]),
            1.0,
        ),
        (
            key(&[("handler", "/users"), ("method", "GET"), ("status", "2xx")]),
            1.0,
        ),
        (
            key(&[("handler", "/users"), ("method", "POST"), ("status", "2xx")]),
            1.0,
        ),
        (
            key(&[("handler", "/login"), ("method", "POST"), ("status", "4xx")]),
            1.0,
        ),
        (
            key(&[("handler", "/health"), ("method", "GET"), ("status", "2xx")]),
            1.0,
        ),
        (
            key(&[("handler", "none"), ("method", "GET"), ("status", "4xx")]),
            1.0,
        ),
        (
            key(&[
                ("handler", "/health"),
                ("method", "other"),
                ("status", "4xx"),
            ]),
            1.0,
        ),
    ]
    .into_iter()
    .collect();
    assert_eq!(
        m.series("http_requests_total"),
        want,
        "exact series set; /metrics excluded"
    );
    assert!(
        !m.text.contains("token-abc123")
            && !m.text.contains("PROPFIND")
            && !m.text.contains("alice")
    );

    // Custom counters: templates, request and response headers.
    assert_eq!(m.value("user_lookups_missed_total", &[]), Some(1.0));
    assert_eq!(m.value("cache_hits_total", &[]), Some(2.0));
    assert_eq!(m.value("anonymous_posts_total", &[]), Some(2.0));
    assert_eq!(m.value("failed_login_details_total", &[]), Some(1.0));
    assert_eq!(m.value("admin_calls_total", &[]), Some(0.0));
    let role = ureq::http::Request::builder()
        .method("GET")
        .uri(envoy.url("/health"))
        .header("X-Role", "admin")
        .body(())
        .unwrap();
    agent.run(role).unwrap();
    let authed = ureq::http::Request::builder()
        .method("POST")
        .uri(envoy.url("/users"))
        .header("Authorization", "Bearer x")
        .body("{}")
        .unwrap();
    agent.run(authed).unwrap();
    let m = wait_value(&envoy, "admin_calls_total", &[], 1.0);
    assert_eq!(m.value("anonymous_posts_total", &[]), Some(2.0));

    // Histograms appear after a stats flush (1 s in the test bootstrap): counts are exact.
    let m = wait_histogram_count(
        &envoy,
        "http_request_duration_milliseconds",
        &[("handler", "/users/{user_id}"), ("method", "GET")],
        3.0,
    );
    assert_eq!(
        m.histogram_count(
            "http_request_duration_milliseconds",
            &[("handler", "/users"), ("method", "POST")]
        ),
        Some(2.0)
    );
    assert_eq!(
        m.histogram_count("http_request_size_bytes", &[("handler", "/users")]),
        Some(3.0)
    );
    assert_eq!(
        m.histogram_count(
            "http_response_size_bytes",
            &[("handler", "/users/{user_id}")]
        ),
        Some(4.0)
    );
    assert_eq!(
        m.histogram_count("http_request_size_bytes", &[("handler", "/metrics")]),
        None
    );
    let durations = m.series("http_request_duration_milliseconds");
    assert!(durations
        .keys()
        .all(|labels| labels.iter().all(|(k, _)| k == "handler" || k == "method")));
}

fn sampler(name: &str, path: &str, value: &str, interval: u32) -> String {
    format!(
        r#"{{"name": "{name}", "cluster": "app", "path": "{path}", "interval_seconds": {interval}, "timeout_ms": {timeout}, "value": {value}}}"#,
        // As long as the interval allows (the configuration refuses more).
        timeout = interval * 1000
    )
}

#[test]
fn samplers_read_pointer_array_length_header_and_text() {
    let upstream = Upstream::start(|_, url| match url {
        "/users/count" => Reply::new(200, r#"{"count": 42, "other": [1]}"#),
        "/users" => {
            Reply::new(200, r#"[{"id": 1}, {"id": 2}, {"id": 3}]"#).header("X-Total-Count", "3")
        }
        "/nested" => Reply::new(200, r#"{"data": {"items": [1, 2, 3, 4, 5]}}"#),
        "/text" => Reply::new(200, "17\n"),
        _ => Reply::new(404, ""),
    });
    let config = format!(
        r#"{{"samplers": [{}, {}, {}, {}, {}]}}"#,
        sampler(
            "total_users",
            "/users/count",
            r#"{"json_pointer": "/count"}"#,
            3
        ),
        sampler("listed_users", "/users", r#"{"json_array_length": ""}"#, 3),
        sampler(
            "nested_items",
            "/nested",
            r#"{"json_array_length": "/data/items"}"#,
            3
        ),
        sampler(
            "header_users",
            "/users",
            r#"{"header": "X-Total-Count"}"#,
            3
        ),
        sampler("text_value", "/text", r#"{"text": true}"#, 3),
    );
    let envoy = Envoy::start(EnvoyOptions::new(&config, upstream.port));
    // Gauges read 0 until the first sample, which comes one tick after start.
    let want = [
        ("total_users", 42.0),
        ("text_value", 17.0),
        ("header_users", 3.0),
        ("nested_items", 5.0),
        ("listed_users", 3.0),
    ];
    let m = eventually(Duration::from_secs(15), "every sampler's value", || {
        let m = envoy.scrape();
        want.iter()
            .all(|(name, v)| m.value(name, &[]) == Some(*v))
            .then_some(m)
    });
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let stamp = m
        .value(
            "app_metrics_sampler_last_success_timestamp_seconds",
            &[("sampler", "total_users")],
        )
        .unwrap();
    assert!(
        (now - stamp).abs() < 30.0,
        "last success {stamp} vs now {now}"
    );
    assert!(
        m.series("app_metrics_sampler_errors_total").is_empty(),
        "no errors: {:?}",
        m.series("app_metrics_sampler_errors_total")
    );
    // Sampler calls never pass through the filter chain, so they are not request metrics.
    assert!(m.series("http_requests_total").is_empty());
}

#[test]
fn one_sample_per_interval_across_four_workers() {
    let upstream = Upstream::start(|_, _| Reply::new(200, r#"{"count": 1}"#));
    let config = format!(
        r#"{{"samplers": [{}]}}"#,
        sampler(
            "total_users",
            "/users/count",
            r#"{"json_pointer": "/count"}"#,
            2
        )
    );
    let mut opts = EnvoyOptions::new(&config, upstream.port);
    opts.concurrency = 4;
    let envoy = Envoy::start(opts);
    // Main thread + 4 workers = 5 VMs tick every second; only one may sample each interval.
    eventually(Duration::from_secs(15), "first sample", || {
        (upstream.hits("/users/count") > 0).then_some(())
    });
    let start_hits = upstream.hits("/users/count");
    let start = Instant::now();
    thread::sleep(Duration::from_secs(12));
    let hits = upstream.hits("/users/count") - start_hits;
    let periods = start.elapsed().as_secs_f64() / 2.0;
    assert!(
        (hits as f64 - periods).abs() <= 1.0,
        "{hits} sampler requests in {periods:.1} intervals (want one per interval, not one per VM)"
    );
    drop(envoy);
}

#[test]
fn failed_samples_keep_the_last_value_and_count_the_reason() {
    let upstream = Upstream::start(|_, _| Reply::new(200, r#"{"count": 5}"#));
    let config = format!(
        r#"{{"samplers": [{}]}}"#,
        sampler(
            "total_users",
            "/users/count",
            r#"{"json_pointer": "/count"}"#,
            2
        )
    );
    let envoy = Envoy::start(EnvoyOptions::new(&config, upstream.port));
    wait_value(&envoy, "total_users", &[], 5.0);
    let errors = |m: &Metrics, reason: &str| {
        m.value(
            "app_metrics_sampler_errors_total",
            &[("sampler", "total_users"), ("reason", reason)],
        )
    };
    upstream.set_route(|_, _| Reply::new(500, "oops"));
    let m = eventually(Duration::from_secs(10), "status error", || {
        let m = envoy.scrape();
        errors(&m, "status").is_some_and(|n| n >= 1.0).then_some(m)
    });
    assert_eq!(
        m.value("total_users", &[]),
        Some(5.0),
        "keeps its last good value"
    );
    upstream.set_route(|_, _| Reply::new(200, "<html>not json</html>"));
    let m = eventually(Duration::from_secs(10), "parse error", || {
        let m = envoy.scrape();
        errors(&m, "parse").is_some_and(|n| n >= 1.0).then_some(m)
    });
    assert_eq!(m.value("total_users", &[]), Some(5.0));
    upstream.set_route(|_, _| Reply::new(200, r#"{"count": 6}"#));
    wait_value(&envoy, "total_users", &[], 6.0);
    // Requests kept flowing all along.
    assert_eq!(send(&agent(), "GET", &envoy.url("/health"), ""), 200);
}

/// The issue's measurement: a configuration the filter refuses, in an Envoy that never had a
/// good one (a new pod), used to make Envoy answer 500 to every request. Now every request
/// reaches the app, the error is logged with its field path, and nothing is recorded.
#[test]
fn bad_configuration_costs_no_request_and_is_logged_naming_the_field() {
    let config = r#"{"counters": [
        {"name": "a_total", "match": {"status": [200]}},
        {"name": "b_total", "match": {"status": ["7xx"]}}]}"#;
    let upstream = Upstream::start(|_, _| Reply::new(200, "ok"));
    let envoy = Envoy::start(EnvoyOptions::new(config, upstream.port));
    let agent = agent();
    let answers: Vec<u16> = (0..20)
        .map(|_| send(&agent, "GET", &envoy.url("/health"), ""))
        .collect();
    assert_eq!(answers, vec![200; 20], "log:\n{}", envoy.log());
    assert_eq!(upstream.count("GET", "/health", 200), 20);
    let log = envoy.log();
    assert!(
        log.contains(r#"app_metrics: counters[1].match.status[0]: "7xx" is not a status code or class (expected 100-599 or 1xx-5xx)"#),
        "log:\n{log}"
    );
    let m = envoy.scrape();
    assert_eq!(
        m.value("app_metrics_config_valid", &[("plugin", "app_metrics")]),
        Some(0.0)
    );
    assert_eq!(m.value("a_total", &[]), None, "nothing of it applied");
    assert_eq!(m.filter_series_count(), 1, "{}", m.text);
}

/// Sizes are the Content-Length headers (as the instrumentator measures them) and the duration
/// spans the whole exchange: both read when the request has ended, not as it passes.
#[test]
fn sizes_are_content_lengths_and_durations_span_the_upstream() {
    let upstream = Upstream::start(|_, url| match url {
        "/upload" => Reply::new(201, "ok"),
        "/big" => Reply::new(200, vec![b'x'; 3000]),
        "/slow" => Reply::new(200, "late").delay(Duration::from_millis(60)),
        _ => Reply::new(404, ""),
    });
    let config = r#"{"counters": [], "http_metrics": {"handlers": ["/upload", "/big", "/slow"]}}"#;
    let envoy = Envoy::start(EnvoyOptions::new(config, upstream.port));
    let agent = agent();
    let body = "b".repeat(700);
    for _ in 0..2 {
        send(&agent, "POST", &envoy.url("/upload"), &body);
        send(&agent, "GET", &envoy.url("/big"), "");
    }
    send(&agent, "GET", &envoy.url("/slow"), "");
    let m = wait_histogram_count(
        &envoy,
        "http_request_duration_milliseconds",
        &[("handler", "/slow"), ("method", "GET")],
        1.0,
    );
    // (metric, handler, bucket bound, observations at or below it)
    let buckets = [
        // 700-byte request bodies: none at or below 500, both at or below 1000.
        ("http_request_size_bytes", "/upload", 500.0, 0.0),
        ("http_request_size_bytes", "/upload", 1000.0, 2.0),
        // GETs carry no Content-Length: size 0.
        ("http_request_size_bytes", "/big", 0.5, 2.0),
        // 3000-byte responses; "ok" is 2 bytes.
        ("http_response_size_bytes", "/big", 2500.0, 0.0),
        ("http_response_size_bytes", "/big", 5000.0, 2.0),
        ("http_response_size_bytes", "/upload", 5.0, 2.0),
    ];
    for (metric, handler, le, want) in buckets {
        assert_eq!(
            m.histogram_bucket(metric, &[("handler", handler)], le),
            Some(want),
            "{metric}{{handler={handler:?}}} le={le}"
        );
    }
    // The upstream took 60 ms: the duration cannot be under 50 ms, however slow the machine.
    let slow = [("handler", "/slow"), ("method", "GET")];
    assert_eq!(
        m.histogram_bucket("http_request_duration_milliseconds", &slow, 50.0),
        Some(0.0)
    );
    assert_eq!(
        m.histogram_count("http_request_duration_milliseconds", &slow),
        Some(1.0)
    );
}

/// The duration of an answer from the app is the router's `x-envoy-upstream-service-time`; an
/// answer Envoy made itself has none, and is timed by Envoy's own clock for the request: a 504
/// after a 200 ms route timeout, a 503 from an upstream that refuses connections. Every request
/// counted is also timed.
#[test]
fn answers_envoy_makes_itself_are_counted_and_timed() {
    let upstream = Upstream::start(|_, url| match url {
        "/stuck" => Reply::new(200, "too late").delay(Duration::from_millis(1500)),
        _ => Reply::new(200, "ok"),
    });
    let config = r#"{"counters": [], "http_metrics": {"handlers": ["/stuck", "/fine"]}}"#;
    let opts = EnvoyOptions::new(config, upstream.port);
    let (listen_port, admin_port) = (free_port(), free_port());
    let bootstrap = bootstrap(&opts, listen_port, admin_port);
    assert!(bootstrap.contains("timeout: 10s"));
    let bootstrap = bootstrap.replace("timeout: 10s", "timeout: 0.2s");
    let envoy = Envoy::start_with_config(&bootstrap, 2, listen_port, admin_port)
        .unwrap_or_else(|log| panic!("{log}"));
    let agent = agent();
    for _ in 0..3 {
        assert_eq!(send(&agent, "GET", &envoy.url("/stuck"), ""), 504);
        assert_eq!(send(&agent, "GET", &envoy.url("/fine"), ""), 200);
    }
    let timed = |handler| {
        let labels = [("handler", handler), ("method", "GET")];
        move |m: &Metrics, le| m.histogram_bucket("http_request_duration_milliseconds", &labels, le)
    };
    let (stuck, fine) = (timed("/stuck"), timed("/fine"));
    let m = eventually(Duration::from_secs(15), "histogram flush", || {
        let m = envoy.scrape();
        (stuck(&m, f64::INFINITY) == Some(3.0) && fine(&m, f64::INFINITY) == Some(3.0)).then_some(m)
    });
    let counted = |handler, status| {
        m.value(
            "http_requests_total",
            &[("handler", handler), ("method", "GET"), ("status", status)],
        )
    };
    assert_eq!(counted("/stuck", "5xx"), Some(3.0));
    assert_eq!(counted("/fine", "2xx"), Some(3.0));
    // Envoy gave up after 200 ms: each 504 took at least that, and far less than the 1.5 s the
    // app would have taken.
    assert_eq!(stuck(&m, 100.0), Some(0.0), "504s timed at 200 ms or more");
    assert_eq!(
        stuck(&m, 1000.0),
        Some(3.0),
        "504s timed by Envoy, not the app"
    );

    // An upstream that refuses connections: Envoy's 503s, counted and timed all the same.
    let dead = EnvoyOptions::new(config, free_port());
    let envoy = Envoy::start(dead);
    for _ in 0..4 {
        assert_eq!(send(&agent, "GET", &envoy.url("/fine"), ""), 503);
    }
    let m = eventually(Duration::from_secs(15), "histogram flush", || {
        let m = envoy.scrape();
        (fine(&m, f64::INFINITY) == Some(4.0)).then_some(m)
    });
    assert_eq!(
        m.value(
            "http_requests_total",
            &[("handler", "/fine"), ("method", "GET"), ("status", "5xx")]
        ),
        Some(4.0)
    );
}

/// A client that leaves before the answer: the application got the request, so it is counted,
/// with status class `other` (there is no status) and the time until the client left; counters
/// asking for a status do not count it. The requests around it are counted exactly.
#[test]
fn abandoned_requests_are_counted_as_other_and_lose_nothing_else() {
    let upstream = Upstream::start(|_, url| match url {
        "/slow" => Reply::new(200, "late").delay(Duration::from_millis(800)),
        _ => Reply::new(200, "ok"),
    });
    let config = r#"{"counters": [
        {"name": "slow_total", "match": {"path": "/slow"}},
        {"name": "slow_ok_total", "match": {"path": "/slow", "status": ["2xx"]}}
    ], "http_metrics": {"handlers": ["/slow", "/fast"]}}"#;
    let envoy = Envoy::start(EnvoyOptions::new(config, upstream.port));
    let agent = agent();
    for i in 0..40 {
        if i % 2 == 0 {
            let mut s = std::net::TcpStream::connect(("127.0.0.1", envoy.listen_port)).unwrap();
            s.write_all(b"GET /slow HTTP/1.1\r\nhost: x\r\n\r\n")
                .unwrap();
            std::thread::sleep(Duration::from_millis(20));
            drop(s); // gone before the upstream answers
        } else {
            send(&agent, "GET", &envoy.url("/fast"), "");
        }
    }
    let fast = [("handler", "/fast"), ("method", "GET"), ("status", "2xx")];
    let slow = [("handler", "/slow"), ("method", "GET"), ("status", "other")];
    wait_value(&envoy, "http_requests_total", &fast, 20.0);
    let m = wait_value(&envoy, "http_requests_total", &slow, 20.0);
    assert!(
        upstream.hits("/slow") > 0,
        "no /slow request reached the upstream"
    );
    assert_eq!(m.value("slow_total", &[]), Some(20.0));
    assert_eq!(m.value("slow_ok_total", &[]), Some(0.0));
    assert_eq!(
        m.series("http_requests_total").len(),
        2,
        "only /fast 2xx and /slow other: {:?}",
        m.series("http_requests_total")
    );
    // Timed until the client left (≈ 20 ms), not the 800 ms the application would have taken.
    let timed = [("handler", "/slow"), ("method", "GET")];
    let m = eventually(Duration::from_secs(15), "histogram flush", || {
        let m = envoy.scrape();
        let all = m.histogram_bucket("http_request_duration_milliseconds", &timed, f64::INFINITY);
        (all == Some(20.0)).then_some(m)
    });
    assert_eq!(
        m.histogram_bucket("http_request_duration_milliseconds", &timed, 500.0),
        Some(20.0)
    );
    // Past every /slow answer: nothing more arrives, and the worker is still counting.
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(
        envoy.scrape().value("http_requests_total", &slow),
        Some(20.0)
    );
    send(&agent, "GET", &envoy.url("/fast"), "");
    wait_value(&envoy, "http_requests_total", &fast, 21.0);
}
