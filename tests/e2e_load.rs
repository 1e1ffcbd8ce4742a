#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test code
//! Exact counts under concurrent load: Envoy with 4 workers (4 wasm VMs counting in parallel),
//! 8 client threads on keep-alive connections, a mix of good and bad logins, 422s, 5xx and other
//! paths. Afterwards every counter the filter exports equals what the upstream itself answered:
//! 0 lost, 0 extra.

mod common;

use common::{bootstrap::*, envoy::*, upstream::*, *};
use std::collections::BTreeMap;
use std::thread;
use std::time::{Duration, Instant};

const THREADS: usize = 8;
const PER_THREAD: usize = 4_000;

/// The seed login counters (no `counters` field) plus request metrics with three templates.
const CONFIG: &str = r#"{
  "http_metrics": {"enabled": true,
    "handlers": ["/login", "/users/{user_id}", "/health"],
    "excluded_handlers": ["/metrics"]}
}"#;

/// The upstream answers by path and query: `POST /login?<outcome>`, `/users/<n>` (404 when n is
/// a multiple of 7), `/health`, `/metrics`, anything else 404.
fn app() -> Upstream {
    Upstream::start_with_threads(8, |method, url| {
        let (path, query) = url.split_once('?').unwrap_or((url, ""));
        match (method, path, query) {
            ("POST", "/login", "ok") => Reply::new(200, r#"{"access_token": "t"}"#),
            ("POST", "/login", "bad") => Reply::new(400, r#"{"detail": "Incorrect"}"#),
            ("POST", "/login", "unauthorized") => Reply::new(401, ""),
            ("POST", "/login", "invalid") => Reply::new(422, r#"{"detail": []}"#),
            ("POST", "/login", "boom") => Reply::new(500, "boom"),
            ("POST", "/login", "busy") => Reply::new(503, "busy"),
            (_, "/login", _) => Reply::new(405, ""),
            ("DELETE", p, _) if p.starts_with("/users/") => Reply::new(204, ""),
            ("GET", p, _) if p.starts_with("/users/") => {
                let n: u64 = p.trim_start_matches("/users/").parse().unwrap_or(0);
                if n.is_multiple_of(7) {
                    Reply::new(404, "")
                } else {
                    Reply::new(200, r#"{"id": 1}"#)
                }
            }
            ("GET", "/health", _) | ("GET", "/metrics", _) => Reply::new(200, "ok"),
            ("PUT", "/health", _) => Reply::new(405, ""),
            _ => Reply::new(404, ""),
        }
    })
}

/// A small deterministic PRNG (xorshift64*), so a failing run can be replayed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// One request of the mix: (method, path with query, body).
fn pick(rng: &mut Rng) -> (&'static str, String, &'static str) {
    let form = "username=alice&password=secret";
    match rng.below(20) {
        0..=4 => ("POST", "/login?ok".into(), form),
        5..=7 => ("POST", "/login?bad".into(), form),
        8..=9 => ("POST", "/login?unauthorized".into(), form),
        10 => ("POST", "/login?invalid".into(), form),
        11 => ("POST", "/login?boom".into(), form),
        12 => ("POST", "/login?busy".into(), form),
        13 => ("GET", "/login".into(), ""),
        14..=15 => ("GET", format!("/users/{}", rng.below(1000)), ""),
        16 => ("DELETE", format!("/users/{}", rng.below(1000)), ""),
        17 => ("GET", "/health".into(), ""),
        18 => ("GET", "/metrics".into(), ""),
        _ => match rng.below(3) {
            0 => ("PUT", "/health".into(), "x"),
            1 => ("GET", format!("/other/{}", rng.below(50)), ""),
            _ => ("PATCH", "/users/1/avatar".into(), "x"),
        },
    }
}

/// The `handler` label a path must get under CONFIG (None: excluded), written independently of
/// the filter's router.
fn handler_of(path: &str) -> Option<&'static str> {
    match path {
        "/metrics" => None,
        "/login" => Some("/login"),
        "/health" => Some("/health"),
        p if p.starts_with("/users/") && !p["/users/".len()..].contains('/') => {
            Some("/users/{user_id}")
        }
        _ => Some("none"),
    }
}

fn class_of(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "other",
    }
}

type Key = Vec<(String, String)>;
/// (method, path, status, whether the upstream made the answer).
type Answer = (String, String, u16, bool);

fn series_key(handler: &str, method: &str, status: &str) -> Key {
    vec![
        ("handler".to_string(), handler.to_string()),
        ("method".to_string(), method.to_string()),
        ("status".to_string(), status.to_string()),
    ]
}

#[test]
fn counters_are_exact_under_concurrent_load() {
    let upstream = app();
    let mut opts = EnvoyOptions::new(CONFIG, upstream.port);
    opts.concurrency = 4;
    let envoy = Envoy::start(opts);
    prewarm_upstream(&upstream, 24);

    let started = Instant::now();
    let clients: Vec<_> = (0..THREADS)
        .map(|t| {
            let base = envoy.url("");
            thread::spawn(move || {
                // One keep-alive agent per thread: Envoy spreads the connections over its workers.
                let agent = agent();
                let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ ((t as u64 + 1) * 0x1000_0001));
                let mut seen: BTreeMap<Answer, u64> = BTreeMap::new();
                for _ in 0..PER_THREAD {
                    let (method, path, body) = pick(&mut rng);
                    let (status, from_upstream) =
                        exchange(&agent, method, &format!("{base}{path}"), body);
                    let bare = path.split('?').next().unwrap().to_string();
                    *seen
                        .entry((method.to_string(), bare, status, from_upstream))
                        .or_default() += 1;
                }
                seen
            })
        })
        .collect();
    let mut client_seen: BTreeMap<Answer, u64> = BTreeMap::new();
    for c in clients {
        for (k, n) in c.join().unwrap() {
            *client_seen.entry(k).or_default() += n;
        }
    }
    let elapsed = started.elapsed();
    let sent = (THREADS * PER_THREAD) as u64;
    assert_eq!(client_seen.values().sum::<u64>(), sent);
    // Answers Envoy made itself (no x-envoy-upstream-service-time), e.g. a 503 when an upstream
    // connection fails: they pass through the filter, so they count in http_requests_total.
    let by_envoy: BTreeMap<Answer, u64> = client_seen
        .iter()
        .filter(|(k, _)| !k.3)
        .map(|(k, n)| (k.clone(), *n))
        .collect();
    let from_upstream: BTreeMap<(String, String, u16), u64> = client_seen
        .iter()
        .filter(|(k, _)| k.3)
        .map(|(k, n)| ((k.0.clone(), k.1.clone(), k.2), *n))
        .collect();

    // The upstream tallies right after answering: wait until it has tallied every answer the
    // clients got from it, then check it tallied exactly those.
    let upstream_total: u64 = from_upstream.values().sum();
    let answered = eventually(Duration::from_secs(10), "upstream tally", || {
        let tally = upstream.answered.lock().unwrap().clone();
        (tally.values().sum::<u64>() >= upstream_total).then_some(tally)
    });
    thread::sleep(Duration::from_millis(200));
    let answered_now = upstream.answered.lock().unwrap().clone();
    assert_eq!(answered, answered_now, "the upstream tally settled");
    assert_eq!(
        answered, from_upstream,
        "the upstream answered exactly what the clients got from it"
    );
    eprintln!(
        "load: {} answers made by Envoy itself (not the upstream): {by_envoy:?}; \
         cluster.app.upstream_rq_timeout {:?}",
        by_envoy.values().sum::<u64>(),
        admin_stat(&envoy, "cluster.app.upstream_rq_timeout")
    );

    // What the filter must show, derived from the upstream's own tally.
    let mut want: BTreeMap<Key, f64> = BTreeMap::new();
    let (mut good, mut failed) = (0u64, 0u64);
    let envoy_made = by_envoy
        .iter()
        .map(|(k, n)| ((k.0.clone(), k.1.clone(), k.2), *n));
    let everything: Vec<((String, String, u16), u64)> =
        answered.clone().into_iter().chain(envoy_made).collect();
    for ((method, path, status), n) in &answered {
        if method == "POST" && path == "/login" {
            match status {
                200..=299 => good += n,
                400 | 401 => failed += n,
                _ => {}
            }
        }
    }
    assert!(
        by_envoy
            .keys()
            .all(|(_, _, status, _)| !matches!(status, 200..=299 | 400 | 401)),
        "Envoy made no login answer of its own: {by_envoy:?}"
    );
    for ((method, path, status), n) in &everything {
        if let Some(handler) = handler_of(path) {
            *want
                .entry(series_key(handler, method, class_of(*status)))
                .or_default() += *n as f64;
        }
    }
    let counted: f64 = want.values().sum();

    // The filter records in on_log, which may run just after the client has its response.
    let m = eventually(Duration::from_secs(10), "filter counts to settle", || {
        let m = envoy.scrape();
        let total: f64 = m.series("http_requests_total").values().sum();
        (total >= counted).then_some(m)
    });
    let got = m.series("http_requests_total");
    let good_seen = m.value("successful_login_details_total", &[]).unwrap();
    let failed_seen = m.value("failed_login_details_total", &[]).unwrap();

    eprintln!(
        "load: {sent} requests from {THREADS} threads in {:.1} s ({:.0} req/s), Envoy --concurrency 4",
        elapsed.as_secs_f64(),
        sent as f64 / elapsed.as_secs_f64()
    );
    eprintln!(
        "load: successful_login_details_total {good_seen} (upstream 2xx on POST /login: {good}); \
         failed_login_details_total {failed_seen} (upstream 400+401: {failed})"
    );
    eprintln!(
        "load: http_requests_total: {} series, sum {} (upstream, /metrics excluded: {} series, sum {counted})",
        got.len(),
        got.values().sum::<f64>(),
        want.len()
    );
    assert_eq!(good_seen, good as f64, "successful logins: lost or extra");
    assert_eq!(failed_seen, failed as f64, "failed logins: lost or extra");
    for (labels, n) in &want {
        assert_eq!(got.get(labels), Some(n), "http_requests_total{labels:?}");
    }
    assert_eq!(got, want, "no series beyond what the upstream answered");
    assert!(
        good > 4_000 && failed > 4_000,
        "the mix exercised both counters"
    );

    // The connections really were spread over several workers, i.e. several wasm VMs counted.
    let mut stats = agent()
        .get(&envoy.admin_url("/stats?filter=worker_.*downstream_cx_total"))
        .call()
        .unwrap();
    let stats = stats.body_mut().read_to_string().unwrap();
    let per_worker: Vec<u64> = stats
        .lines()
        .filter(|l| l.starts_with("listener.127.0.0.1_"))
        .filter_map(|l| l.rsplit(": ").next()?.parse().ok())
        .collect();
    eprintln!("load: client connections per Envoy worker: {per_worker:?}");
    assert!(
        per_worker.iter().filter(|&&n| n > 0).count() >= 2,
        "connections on at least two workers: {stats}"
    );

    // Histograms count the same requests (they show after a stats flush).
    let mut want_durations: BTreeMap<(String, String), f64> = BTreeMap::new();
    for (labels, n) in &want {
        *want_durations
            .entry((labels[0].1.clone(), labels[1].1.clone()))
            .or_default() += n;
    }
    let m = eventually(Duration::from_secs(15), "histograms flushed", || {
        let m = envoy.scrape();
        want_durations
            .iter()
            .all(|((h, method), n)| {
                m.histogram_count(
                    "http_request_duration_milliseconds",
                    &[("handler", h), ("method", method)],
                ) == Some(*n)
            })
            .then_some(m)
    });
    assert_eq!(
        m.series("http_request_duration_milliseconds").len(),
        want_durations.len()
    );
    eprintln!(
        "load: 0 lost, 0 extra: both login counters ({} login outcomes), all {} http_requests_total \
         series ({counted} requests) and all {} duration histogram counts equal the upstream's tally",
        good + failed,
        want.len(),
        want_durations.len()
    );
}
