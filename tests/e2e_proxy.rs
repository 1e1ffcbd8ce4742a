//! Is it the app or the mesh? In a real Envoy: every answer Envoy made itself is counted in
//! `http_proxy_responses_total` under the reason Envoy recorded, nothing the app answered is, and
//! `http_request_total_duration_milliseconds` times every request whole.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test code

mod common;

use common::{bootstrap::*, envoy::*, upstream::*, *};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

/// An upstream that reads each request and closes the connection without an answer.
struct Closer {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Closer {
    fn start() -> Closer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = thread::spawn(move || {
            for conn in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(mut conn) = conn {
                    let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
                    let _ = conn.read(&mut [0u8; 4096]);
                }
            }
        });
        Closer {
            port,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Closer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

const LOCAL_RATE_LIMIT: &str =
    "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit";

/// Envoy's local rate limit filter, enforcing only where a route says so.
fn rate_limit_filter() -> String {
    format!(
        r#"name: envoy.filters.http.local_ratelimit
typed_config:
  "@type": {LOCAL_RATE_LIMIT}
  stat_prefix: limited
"#
    )
}

/// A route to `app` that lets one request through per hour, then answers 429 itself.
fn rate_limited_route(prefix: &str) -> String {
    format!(
        r#"{}typed_per_filter_config:
  envoy.filters.http.local_ratelimit:
    "@type": {LOCAL_RATE_LIMIT}
    stat_prefix: limited
    token_bucket: {{ max_tokens: 1, tokens_per_fill: 1, fill_interval: 3600s }}
    filter_enabled: {{ default_value: {{ numerator: 100, denominator: HUNDRED }} }}
    filter_enforced: {{ default_value: {{ numerator: 100, denominator: HUNDRED }} }}
"#,
        route_yaml(prefix, "app", "10s")
    )
}

/// A cluster for the app whose circuit breaker admits no request at all.
fn no_capacity_cluster(name: &str, port: u16) -> String {
    format!(
        r#"name: {name}
type: STATIC
connect_timeout: 1s
circuit_breakers: {{ thresholds: [ {{ max_requests: 0 }} ] }}
load_assignment:
  cluster_name: {name}
  endpoints: [ {{ lb_endpoints: [ {{ endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }} }} }} ] }} ]
"#
    )
}

fn cluster_without_endpoints(name: &str) -> String {
    format!(
        r#"name: {name}
type: STATIC
connect_timeout: 1s
load_assignment: {{ cluster_name: {name}, endpoints: [] }}
"#
    )
}

fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    v.sort();
    v
}

/// Sends `times` requests and checks each status, and whether it came from the app (the
/// router's `x-envoy-upstream-service-time` header).
fn expect(envoy: &Envoy, method: &str, path: &str, times: usize, status: u16, from_app: bool) {
    let agent = agent();
    for _ in 0..times {
        assert_eq!(
            exchange(&agent, method, &envoy.url(path), ""),
            (status, from_app),
            "{method} {path}"
        );
    }
}

/// A POST whose body arrives `pause` after its headers: Envoy has the request for that long
/// before the app can answer it.
fn slow_upload(port: u16, path: &str, pause: Duration) -> Option<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: app\r\ncontent-length: 5\r\nconnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).unwrap();
    thread::sleep(pause);
    stream.write_all(b"hello").unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    String::from_utf8_lossy(&response)
        .strip_prefix("HTTP/1.1 ")?
        .get(..3)?
        .parse()
        .ok()
}

const HANDLERS: &str = r#"["/app/ok", "/app/boom", "/app/busy", "/app/slow", "/app/upload",
    "/stuck", "/dead", "/empty", "/closer", "/full", "/limited", "/maintenance", "/old"]"#;

/// Each way Envoy answers for the app, side by side with the app's own answers (its 500s and
/// 503s among them), through one Envoy: exact counts by reason, nothing of the app's; and with
/// `total_duration`, every request timed whole.
#[test]
fn envoys_own_answers_are_counted_by_reason_and_the_apps_never() {
    let upstream = Upstream::start(|method, url| match (method, url) {
        (_, "/app/ok") | (_, "/limited") | (_, "/app/upload") => Reply::new(200, "ok"),
        (_, "/app/boom") => Reply::new(500, "boom"),
        (_, "/app/busy") => Reply::new(503, "busy"),
        (_, "/app/slow") => Reply::new(200, "late").delay(Duration::from_millis(60)),
        (_, "/stuck") => Reply::new(200, "too late").delay(Duration::from_millis(1500)),
        _ => Reply::new(404, ""),
    });
    let closer = Closer::start();
    let config = format!(
        r#"{{"counters": [], "http_metrics": {{"handlers": {HANDLERS}, "total_duration": true}}}}"#
    );
    let mut opts = EnvoyOptions::new(&config, upstream.port);
    opts.extra_clusters = vec![
        Cluster::fixed("dead", free_port()), // nothing listens there
        Cluster::fixed("closer", closer.port),
    ];
    opts.raw_clusters = vec![
        cluster_without_endpoints("empty"),
        no_capacity_cluster("full", upstream.port),
    ];
    opts.filters_before = vec![rate_limit_filter()];
    opts.routes = vec![
        route_yaml("/app/", "app", "10s"),
        route_yaml("/stuck", "app", "0.2s"),
        route_yaml("/dead", "dead", "10s"),
        route_yaml("/empty", "empty", "10s"),
        route_yaml("/closer", "closer", "10s"),
        route_yaml("/full", "full", "10s"),
        rate_limited_route("/limited"),
        "match: { prefix: \"/maintenance\" }\ndirect_response: { status: 503, body: { inline_string: \"down\" } }\n".into(),
        "match: { prefix: \"/old\" }\nredirect: { path_redirect: \"/app/ok\" }\n".into(),
    ];
    opts.catch_all = false; // a path under none of the prefixes has no route
    let envoy = Envoy::start(opts);

    // The app's answers, 5xx included: they carry the router's header.
    expect(&envoy, "GET", "/app/ok", 3, 200, true);
    expect(&envoy, "GET", "/app/boom", 3, 500, true);
    expect(&envoy, "POST", "/app/busy", 3, 503, true);
    expect(&envoy, "GET", "/app/slow", 2, 200, true);
    // Envoy's own: none has it.
    expect(&envoy, "GET", "/stuck", 3, 504, false);
    expect(&envoy, "GET", "/dead", 3, 503, false);
    expect(&envoy, "GET", "/empty", 2, 503, false);
    expect(&envoy, "GET", "/closer", 2, 503, false);
    expect(&envoy, "GET", "/full", 2, 503, false);
    expect(&envoy, "GET", "/maintenance", 2, 503, false);
    // (A client would follow the redirect: sent by hand.)
    let old = b"GET /old HTTP/1.1\r\nhost: app\r\nconnection: close\r\n\r\n";
    assert_eq!(raw_request(envoy.listen_port, old), Some(301));
    expect(&envoy, "GET", "/nowhere", 2, 404, false);
    expect(&envoy, "DELETE", "/nowhere/else", 1, 404, false);
    // The first request is the app's; the token bucket is empty after it.
    let agent = agent();
    let limited: Vec<(u16, bool)> = (0..4)
        .map(|_| exchange(&agent, "GET", &envoy.url("/limited"), ""))
        .collect();
    let passed = upstream.hits("/limited");
    assert!(passed >= 1, "{limited:?}");
    assert_eq!(
        limited.iter().filter(|a| **a == (200, true)).count() as u64,
        passed
    );
    assert_eq!(
        limited.iter().filter(|a| **a == (429, false)).count() as u64,
        4 - passed,
        "{limited:?}"
    );
    let pause = Duration::from_millis(300);
    assert_eq!(
        slow_upload(envoy.listen_port, "/app/upload", pause),
        Some(200)
    );
    // The app answered each of its requests itself, 503s included.
    assert_eq!(upstream.count("POST", "/app/busy", 503), 3);
    assert_eq!(upstream.count("GET", "/app/boom", 500), 3);

    let want: BTreeMap<Vec<(String, String)>, f64> = [
        (("/stuck", "5xx", "timeout"), 3.0),
        (("/dead", "5xx", "connection_failure"), 3.0),
        (("/empty", "5xx", "no_healthy_upstream"), 2.0),
        (("/closer", "5xx", "reset"), 2.0),
        (("/full", "5xx", "overflow"), 2.0),
        (("/limited", "4xx", "rate_limited"), (4 - passed) as f64),
        (("/maintenance", "5xx", "other"), 2.0),
        (("/old", "3xx", "other"), 1.0),
        (("none", "4xx", "no_route"), 3.0),
    ]
    .into_iter()
    .map(|((handler, status, reason), n)| {
        (
            labels(&[("handler", handler), ("status", status), ("reason", reason)]),
            n,
        )
    })
    .collect();
    let m = eventually(
        Duration::from_secs(10),
        "every proxy answer counted",
        || {
            let m = envoy.scrape();
            (m.series("http_proxy_responses_total") == want).then_some(m)
        },
    );
    // Every request, the app's and Envoy's, is in http_requests_total as before.
    let requests = m.series("http_requests_total");
    let counted = |handler: &str, method: &str, status: &str| {
        requests
            .get(&labels(&[
                ("handler", handler),
                ("method", method),
                ("status", status),
            ]))
            .copied()
    };
    assert_eq!(counted("/app/busy", "POST", "5xx"), Some(3.0));
    assert_eq!(counted("/app/boom", "GET", "5xx"), Some(3.0));
    assert_eq!(counted("/dead", "GET", "5xx"), Some(3.0));
    assert_eq!(counted("none", "GET", "4xx"), Some(2.0));
    assert_eq!(counted("none", "DELETE", "4xx"), Some(1.0));
    // Nothing the app answered is the proxy's.
    let proxy = m.series("http_proxy_responses_total");
    assert!(proxy.keys().all(|l| !l
        .iter()
        .any(|(k, v)| k == "handler" && v.starts_with("/app/"))));

    // Both histograms count every request once, by (handler, method): the same counts as
    // http_requests_total, summed over status.
    let mut per_request: BTreeMap<Vec<(String, String)>, f64> = BTreeMap::new();
    for (labels, n) in &requests {
        let key = labels
            .iter()
            .filter(|(k, _)| k != "status")
            .cloned()
            .collect();
        *per_request.entry(key).or_default() += n;
    }
    let m = eventually(Duration::from_secs(15), "histogram flush", || {
        let m = envoy.scrape();
        (m.series("http_request_total_duration_milliseconds") == per_request
            && m.series("http_request_duration_milliseconds") == per_request)
            .then_some(m)
    });
    let total = |handler, method, le| {
        m.histogram_bucket(
            "http_request_total_duration_milliseconds",
            &[("handler", handler), ("method", method)],
            le,
        )
    };
    // Bounds the delays guarantee: the app took 60 ms; Envoy waited 200 ms for /stuck; the
    // upload's body came 300 ms after its headers.
    assert_eq!(total("/app/slow", "GET", 50.0), Some(0.0));
    assert_eq!(total("/app/slow", "GET", f64::INFINITY), Some(2.0));
    assert_eq!(total("/stuck", "GET", 100.0), Some(0.0));
    assert_eq!(total("/app/upload", "POST", 250.0), Some(0.0));
    assert_eq!(total("/app/upload", "POST", f64::INFINITY), Some(1.0));
    assert_eq!(
        m.histogram_bucket(
            "http_request_duration_milliseconds",
            &[("handler", "/app/slow"), ("method", "GET")],
            50.0
        ),
        Some(0.0)
    );
    drop(closer);
}

/// A router that leaves out `x-envoy-upstream-service-time` (`suppress_envoy_headers`, Istio's
/// `proxyHeaders.envoyDebugHeaders.disabled`): the app's answers, its 503s too, are still the
/// app's (Envoy's details say `via_upstream`), Envoy's own still counted. Without
/// `total_duration`, no whole-request histogram.
#[test]
fn without_the_routers_header_the_details_still_tell_the_apps_answers() {
    let upstream = Upstream::start(|_, url| match url {
        "/busy" => Reply::new(503, "busy"),
        _ => Reply::new(200, "ok"),
    });
    let config = r#"{"counters": [], "http_metrics": {"handlers": ["/ok", "/busy", "/dead"]}}"#;
    let mut opts = EnvoyOptions::new(config, upstream.port);
    opts.extra_clusters = vec![Cluster::fixed("dead", free_port())];
    opts.routes = vec![route_yaml("/dead", "dead", "10s")];
    let (listen_port, admin_port) = (free_port(), free_port());
    let router = "\"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router";
    let bootstrap: String = bootstrap(&opts, listen_port, admin_port)
        .lines()
        .map(|line| match line.strip_suffix(router) {
            // The router's typed_config gains a field at the same indentation.
            Some(pad) => format!("{line}\n{pad}suppress_envoy_headers: true\n"),
            None => format!("{line}\n"),
        })
        .collect();
    assert_eq!(bootstrap.matches("suppress_envoy_headers").count(), 1);
    let envoy = Envoy::start_with_config(&bootstrap, 2, listen_port, admin_port)
        .unwrap_or_else(|log| panic!("{log}"));
    expect(&envoy, "GET", "/ok", 3, 200, false);
    expect(&envoy, "GET", "/busy", 2, 503, false);
    expect(&envoy, "GET", "/dead", 2, 503, false);
    assert_eq!(upstream.count("GET", "/busy", 503), 2);
    let dead = [
        ("handler", "/dead"),
        ("status", "5xx"),
        ("reason", "connection_failure"),
    ];
    let m = wait_value(&envoy, "http_proxy_responses_total", &dead, 2.0);
    assert_eq!(
        m.series("http_proxy_responses_total").len(),
        1,
        "{:?}",
        m.series("http_proxy_responses_total")
    );
    assert_eq!(
        m.value(
            "http_requests_total",
            &[("handler", "/busy"), ("method", "GET"), ("status", "5xx")]
        ),
        Some(2.0)
    );
    // Still timed (by Envoy's clock), but no whole-request histogram unless asked for.
    let m = wait_histogram_count(
        &envoy,
        "http_request_duration_milliseconds",
        &[("handler", "/ok"), ("method", "GET")],
        3.0,
    );
    assert!(m
        .series("http_request_total_duration_milliseconds")
        .is_empty());
}
