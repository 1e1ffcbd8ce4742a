#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test code
//! Sampler faults in a real Envoy: every way the sampled upstream can fail, at once, one sampler
//! per fault. For each: the gauge keeps its last good value, the fault is counted under its reason
//! in `app_metrics_sampler_errors_total{sampler,reason}`, requests keep flowing through Envoy, and
//! the gauge recovers when the upstream heals.

mod common;

use common::{bootstrap::*, envoy::*, scrape::*, upstream::*, *};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Default `max_body_bytes` (config.rs DEFAULT_MAX_BODY_BYTES): the cap on a sample's body.
const CAP: usize = 65_536;

/// A JSON body `{"count": value}` padded with spaces to exactly `len` bytes.
fn padded(value: u64, len: usize) -> Vec<u8> {
    let mut body = format!(r#"{{"count": {value}}}"#).into_bytes();
    assert!(body.len() <= len);
    body.resize(len, b' ');
    body
}

/// One sampler per fault, and the reason its fault must be counted under.
struct Case {
    name: &'static str,
    cluster: &'static str,
    path: &'static str,
    value: &'static str,
    timeout_ms: u64,
    reason: &'static str,
}

const POINTER: &str = r#"{"json_pointer": "/count"}"#;
const HEADER: &str = r#"{"header": "x-total-count"}"#;

const CASES: [Case; 16] = [
    Case {
        name: "s_status",
        cluster: "app",
        path: "/status",
        value: POINTER,
        timeout_ms: 2000,
        reason: "status",
    },
    Case {
        name: "s_parse",
        cluster: "app",
        path: "/parse",
        value: POINTER,
        timeout_ms: 2000,
        reason: "parse",
    },
    Case {
        name: "s_huge",
        cluster: "app",
        path: "/huge",
        value: POINTER,
        timeout_ms: 5000,
        reason: "too_large",
    },
    Case {
        name: "s_cap",
        cluster: "app",
        path: "/cap",
        value: POINTER,
        timeout_ms: 2000,
        reason: "too_large",
    },
    Case {
        name: "s_negative",
        cluster: "app",
        path: "/negative",
        value: POINTER,
        timeout_ms: 2000,
        reason: "invalid",
    },
    Case {
        name: "s_float",
        cluster: "app",
        path: "/float",
        value: POINTER,
        timeout_ms: 2000,
        reason: "invalid",
    },
    Case {
        name: "s_string",
        cluster: "app",
        path: "/string",
        value: POINTER,
        timeout_ms: 2000,
        reason: "invalid",
    },
    Case {
        name: "s_missing",
        cluster: "app",
        path: "/missing",
        value: POINTER,
        timeout_ms: 2000,
        reason: "missing",
    },
    Case {
        name: "s_no_header",
        cluster: "app",
        path: "/no-header",
        value: HEADER,
        timeout_ms: 2000,
        reason: "missing",
    },
    Case {
        name: "s_bad_header",
        cluster: "app",
        path: "/bad-header",
        value: HEADER,
        timeout_ms: 2000,
        reason: "parse",
    },
    Case {
        name: "s_text",
        cluster: "app",
        path: "/text",
        value: r#"{"text": true}"#,
        timeout_ms: 2000,
        reason: "parse",
    },
    Case {
        name: "s_slow",
        cluster: "app",
        path: "/slow",
        value: POINTER,
        timeout_ms: 1000,
        reason: "timeout",
    },
    Case {
        name: "s_down",
        cluster: "down",
        path: "/count",
        value: POINTER,
        timeout_ms: 2000,
        reason: "unreachable",
    },
    Case {
        name: "s_refusing",
        cluster: "refusing",
        path: "/count",
        value: POINTER,
        timeout_ms: 2000,
        reason: "unreachable",
    },
    // The cluster loses its last endpoint (EDS): Envoy refuses the call at once (host status
    // 10, no healthy upstream), which is as unreachable as a refused connection.
    Case {
        name: "s_no_endpoints",
        cluster: "no_endpoints",
        path: "/count",
        value: POINTER,
        timeout_ms: 2000,
        reason: "unreachable",
    },
    Case {
        name: "s_dispatch",
        cluster: "no_such_cluster",
        path: "/count",
        value: POINTER,
        timeout_ms: 2000,
        reason: "dispatch",
    },
];

fn value_of(case: usize, generation: u64) -> u64 {
    100 * generation + case as u64
}

fn case_of(path: &str) -> Option<usize> {
    CASES
        .iter()
        .position(|c| c.cluster == "app" && c.path == path)
}

/// The app upstream, healthy: every sampler path answers its value for `generation`.
fn healthy(generation: u64) -> impl Fn(&str, &str) -> Reply + Send + Sync + 'static {
    move |_method, url| {
        let Some(i) = case_of(url) else {
            return Reply::new(200, "ok");
        };
        let v = value_of(i, generation);
        match CASES[i].name {
            "s_no_header" | "s_bad_header" => {
                Reply::new(200, "[]").header("x-total-count", &v.to_string())
            }
            "s_text" => Reply::new(200, format!("{v}\n")),
            // Exactly at the cap: still read.
            "s_cap" => Reply::new(200, padded(v, CAP)),
            _ => Reply::new(200, format!(r#"{{"count": {v}, "note": "fine"}}"#)),
        }
    }
}

/// The app upstream, broken: each sampler path fails its own way.
fn broken(_method: &str, url: &str) -> Reply {
    let Some(i) = case_of(url) else {
        return Reply::new(200, "ok");
    };
    match CASES[i].name {
        "s_status" => Reply::new(500, r#"{"count": 1}"#),
        "s_parse" => Reply::new(200, "<html>not json</html>"),
        "s_huge" => Reply::new(200, padded(1, 10 * 1024 * 1024)),
        // One byte over the cap.
        "s_cap" => Reply::new(200, padded(1, CAP + 1)),
        "s_negative" => Reply::new(200, r#"{"count": -3}"#),
        "s_float" => Reply::new(200, r#"{"count": 2.5}"#),
        "s_string" => Reply::new(200, r#"{"count": "12"}"#),
        "s_missing" => Reply::new(200, r#"{"total": 12}"#),
        "s_no_header" => Reply::new(200, "[]"),
        "s_bad_header" => Reply::new(200, "[]").header("x-total-count", "many"),
        "s_text" => Reply::new(200, "twelve"),
        "s_slow" => Reply::new(200, r#"{"count": 1}"#).delay(Duration::from_millis(2500)),
        other => panic!("{other} is not served by the app upstream"),
    }
}

type Route = Arc<dyn Fn(&str, &str) -> Reply + Send + Sync>;

#[derive(Clone)]
enum Mode {
    /// Nothing listens on the port: connections are refused.
    Down,
    /// Accepts connections and closes them at once, without an answer.
    Refusing,
    /// Answers each request with `route(method, path)`.
    Serve(Route),
}

/// A one-port HTTP/1.1 upstream that can stop listening, hang up on every connection, or answer
/// through a route that can be swapped. One thread per connection, keep-alive: unlike the
/// harness's tiny_http upstream, whose thread pool can leave a new connection unserved while
/// others stay open (seen as Envoy's 504 under load), no request waits for another, so a
/// sampler times out only when its own answer is slow.
struct Server {
    port: u16,
    mode: Arc<Mutex<Mode>>,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Server {
    fn start(mode: Mode) -> Server {
        let port = free_port();
        let mode = Arc::new(Mutex::new(mode));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (mode, stop) = (mode.clone(), stop.clone());
            thread::spawn(move || {
                let mut listener: Option<TcpListener> = None;
                while !stop.load(Ordering::SeqCst) {
                    let now = mode.lock().unwrap().clone();
                    if matches!(now, Mode::Down) {
                        listener = None;
                        thread::sleep(Duration::from_millis(20));
                        continue;
                    }
                    if listener.is_none() {
                        // std sets SO_REUSEADDR: the port can be bound again at once.
                        listener = TcpListener::bind(("127.0.0.1", port)).ok();
                        if let Some(l) = &listener {
                            l.set_nonblocking(true).unwrap();
                        }
                    }
                    let Some(Ok((stream, _))) = listener.as_ref().map(TcpListener::accept) else {
                        thread::sleep(Duration::from_millis(5));
                        continue;
                    };
                    if matches!(now, Mode::Serve(_)) {
                        let mode = mode.clone();
                        thread::spawn(move || serve(stream, &mode));
                    } // Refusing: the stream is dropped, i.e. closed, unanswered.
                }
            })
        };
        Server {
            port,
            mode,
            stop,
            thread: Some(thread),
        }
    }

    fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    fn set_route(&self, route: impl Fn(&str, &str) -> Reply + Send + Sync + 'static) {
        self.set(Mode::Serve(Arc::new(route)));
    }
}

/// Answers the requests of one keep-alive connection (no request bodies: GETs only) until the
/// peer closes it, the server stops serving, or a write fails.
fn serve(mut stream: TcpStream, mode: &Mutex<Mode>) {
    stream.set_nonblocking(false).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            match stream.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_string();
        buf.drain(..end);
        let mut words = head.split(' ');
        let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
        let Mode::Serve(route) = mode.lock().unwrap().clone() else {
            return;
        };
        let reply = route(method, path);
        if !reply.delay.is_zero() {
            thread::sleep(reply.delay);
        }
        let mut out = format!(
            "HTTP/1.1 {} X\r\ncontent-length: {}\r\n",
            reply.status,
            reply.body.len()
        );
        for (name, value) in &reply.headers {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
        out.push_str("\r\n");
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&reply.body);
        if stream.write_all(&bytes).is_err() {
            return;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A route answering every request with `{"count": value}`.
fn count(value: u64) -> Mode {
    Mode::Serve(Arc::new(move |_, _| {
        Reply::new(200, format!(r#"{{"count": {value}}}"#))
    }))
}

fn config() -> String {
    let samplers: Vec<String> = CASES
        .iter()
        .map(|c| {
            format!(
                r#"{{"name": "{}", "cluster": "{}", "path": "{}", "interval_seconds": {}, "timeout_ms": {}, "value": {}}}"#,
                c.name,
                c.cluster,
                c.path,
                // The shortest interval the timeout allows (a longer timeout is refused).
                c.timeout_ms.div_ceil(1000),
                c.timeout_ms,
                c.value
            )
        })
        .collect();
    format!(r#"{{"samplers": [{}]}}"#, samplers.join(",\n  "))
}

fn errors(m: &Metrics, sampler: &str, reason: &str) -> f64 {
    m.value(
        "app_metrics_sampler_errors_total",
        &[("sampler", sampler), ("reason", reason)],
    )
    .unwrap_or(0.0)
}

/// Every (sampler, reason) error counter in a scrape.
fn all_errors(m: &Metrics) -> BTreeMap<(String, String), f64> {
    m.series("app_metrics_sampler_errors_total")
        .into_iter()
        .map(|(labels, v)| {
            let get = |k: &str| {
                labels
                    .iter()
                    .find(|(name, _)| name == k)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            };
            ((get("sampler"), get("reason")), v)
        })
        .collect()
}

/// Polls until every sampler but s_dispatch shows its value for `generation`.
fn wait_generation(envoy: &Envoy, generation: u64, what: &str) -> Metrics {
    eventually(Duration::from_secs(20), what, || {
        let m = envoy.scrape();
        CASES
            .iter()
            .enumerate()
            .filter(|(_, c)| c.cluster != "no_such_cluster")
            .all(|(i, c)| m.value(c.name, &[]) == Some(value_of(i, generation) as f64))
            .then_some(m)
    })
}

#[test]
fn every_sampler_fault_is_counted_keeps_the_gauge_and_heals() {
    let started = Instant::now();
    let app = Server::start(Mode::Serve(Arc::new(healthy(1))));
    let index = |name: &str| CASES.iter().position(|c| c.name == name).unwrap();
    let down = Server::start(count(value_of(index("s_down"), 1)));
    let refusing = Server::start(count(value_of(index("s_refusing"), 1)));
    let lonely = Server::start(count(value_of(index("s_no_endpoints"), 1)));
    let eds = TempDir::new("eds");
    push_eds(&eds.0, "no_endpoints", &[lonely.port]);
    let mut opts = EnvoyOptions::new(&config(), app.port);
    opts.extra_clusters = vec![
        Cluster::fixed("down", down.port),
        Cluster::fixed("refusing", refusing.port),
        Cluster::eds("no_endpoints", &eds.0),
    ];
    let envoy = Envoy::start(opts);
    let agent = agent();

    // 1. Healthy: every gauge has its first value (s_cap's body is exactly at the cap).
    let m = wait_generation(&envoy, 1, "first good samples");
    assert_eq!(m.value("s_dispatch", &[]), Some(0.0), "never sampled");
    // (On a loaded machine the very first samples, sent while Envoy is still starting, may
    // time out; the fault phase below counts from here, and step 3 checks that a healthy
    // upstream counts no errors.)
    eprintln!(
        "sampler faults: all {} gauges sampled after {:.1} s",
        CASES.len() - 1,
        started.elapsed().as_secs_f64()
    );

    // 2. Broken, every way at once.
    app.set_route(broken);
    down.set(Mode::Down);
    refusing.set(Mode::Refusing);
    push_eds(&eds.0, "no_endpoints", &[]);
    let baseline = all_errors(&envoy.scrape());
    let mut flowing = 0;
    let m = eventually(Duration::from_secs(30), "each fault counted twice", || {
        // Requests keep flowing through Envoy while its samplers fail.
        assert_eq!(send(&agent, "GET", &envoy.url("/ping"), ""), 200);
        flowing += 1;
        let m = envoy.scrape();
        CASES
            .iter()
            .all(|c| {
                errors(&m, c.name, c.reason)
                    - baseline
                        .get(&(c.name.to_string(), c.reason.to_string()))
                        .copied()
                        .unwrap_or(0.0)
                    >= 2.0
            })
            .then_some(m)
    });
    let faulty: BTreeMap<(String, String), f64> = all_errors(&m)
        .into_iter()
        .map(|(k, n)| {
            let before = baseline.get(&k).copied().unwrap_or(0.0);
            (k, n - before)
        })
        .filter(|(_, n)| *n > 0.0)
        .collect();
    for (i, c) in CASES.iter().enumerate() {
        let want = if c.cluster == "no_such_cluster" {
            0.0
        } else {
            value_of(i, 1) as f64
        };
        assert_eq!(
            m.value(c.name, &[]),
            Some(want),
            "{}: the gauge keeps its last good value",
            c.name
        );
        for ((sampler, reason), n) in &faulty {
            if sampler == c.name {
                assert_eq!(reason, c.reason, "{}: counted under {reason} ({n})", c.name);
            }
        }
    }
    eprintln!(
        "sampler faults: {} faults counted under their reasons (counts while broken), {flowing} requests through Envoy answered 200 meanwhile: {faulty:?}",
        CASES.len()
    );

    // 3. Healed: the gauges take the new values, the error counters stop.
    app.set_route(healthy(2));
    down.set(count(value_of(index("s_down"), 2)));
    refusing.set(count(value_of(index("s_refusing"), 2)));
    lonely.set(count(value_of(index("s_no_endpoints"), 2)));
    push_eds(&eds.0, "no_endpoints", &[lonely.port]);
    wait_generation(&envoy, 2, "recovery");
    // A slow request sent just before healing may still time out (1 s after it was sent).
    thread::sleep(Duration::from_millis(1200));
    let healed = all_errors(&envoy.scrape());
    thread::sleep(Duration::from_millis(3000));
    let later = all_errors(&envoy.scrape());
    for (key, n) in &later {
        if key.0 != "s_dispatch" {
            assert_eq!(
                healed.get(key),
                Some(n),
                "{key:?} still counting after healing"
            );
        }
    }
    assert!(
        later[&("s_dispatch".to_string(), "dispatch".to_string())]
            > healed[&("s_dispatch".to_string(), "dispatch".to_string())],
        "an unknown cluster keeps failing at dispatch, every interval"
    );
    assert_eq!(send(&agent, "GET", &envoy.url("/ping"), ""), 200);
    assert!(!envoy.log().contains("panic"), "{}", envoy.log());
    eprintln!(
        "sampler faults: every gauge recovered; whole run {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
