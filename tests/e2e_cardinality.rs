#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test code
//! Bounded cardinality: 100,000 hostile requests (random paths, random and invalid methods, odd
//! upstream status codes, paths of 8-60 KB, non-UTF-8 bytes in paths and headers, random values
//! in the headers dynamic labels read) cannot make the filter export more series than its
//! configuration allows (`config::series_bound`, docs/configuration.md "Labels"), nor a label value that is not a
//! configured template, `none`, one of the 10 method labels, one of the 6 status labels, a listed
//! label value, `other` or the constant label's value. Envoy's memory after the run stays within a
//! documented margin of before.

mod common;

use common::{bootstrap::*, envoy::*, scrape::*, upstream::*, *};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

/// Requests in the measured run (the warm-up comes on top).
const TOTAL: u64 = 100_000;
/// Client threads on keep-alive connections.
const THREADS: u64 = 8;
const WARM_UP: u64 = 1_000;
/// Envoy's RSS may grow by at most this much over the run (measured after the warm-up).
/// What the filter itself may add is small and bounded: at most `series_bound()` stats, ≈ 0.6 KB
/// of RSS per counter and ≈ 5.4 KB per histogram (BENCHMARKS.md, "Scale"), i.e. under 1 MB for
/// this configuration, most of which the warm-up already created. The rest of the margin is for
/// Envoy, not the filter: its allocator (tcmalloc) keeps freed pages in per-thread caches, and
/// request heads of up to 60 KB on several connections at once grow those caches and the
/// connection buffers by a few MB that are not returned at once. A leak per request or a series
/// per distinct path would blow well through it: ~87,000 distinct paths as counters alone are
/// ≈ 50 MB.
const RSS_MARGIN_KIB: u64 = 30 * 1024;

const HANDLERS: [&str; 6] = [
    "/login",
    "/users",
    "/users/{user_id}",
    "/users/{user_id}/posts/{post_id}",
    "/files/{*path}",
    "/health",
];
const COUNTERS: [&str; 5] = [
    "successful_login_details_total",
    "failed_login_details_total",
    "user_lookups_missed_total",
    "admin_calls_total",
    "cache_hits_total",
];
const SAMPLERS: [&str; 1] = ["total_users"];
/// The label values the filter may emit for `method` and `status` (labels.rs, documented).
const METHOD_LABELS: [&str; 10] = [
    "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT", "TRACE", "other",
];
const STATUS_LABELS: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "other"];
/// `reason` of Envoy's own answers (`http_proxy_responses_total`, proxy.rs, documented).
const PROXY_REASON_LABELS: [&str; 8] = [
    "no_route",
    "no_healthy_upstream",
    "connection_failure",
    "timeout",
    "reset",
    "overflow",
    "rate_limited",
    "other",
];
const REASON_LABELS: [&str; 8] = [
    "dispatch",
    "timeout",
    "unreachable",
    "status",
    "too_large",
    "parse",
    "missing",
    "invalid",
];

fn config() -> String {
    let quoted = |items: &[&str]| {
        items
            .iter()
            .map(|s| format!("{s:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        r#"{{
  "labels": {{"service": "{SERVICE}"}},
  "counters": [
    {{"name": "successful_login_details_total", "match": {{"method": "POST", "path": "/login", "status": ["2xx"]}}}},
    {{"name": "failed_login_details_total", "match": {{"method": "POST", "path": "/login", "status": [400, 401]}}}},
    {{"name": "user_lookups_missed_total", "match": {{"method": "GET", "path": "/users/{{user_id}}", "status": [404]}}}},
    {{"name": "admin_calls_total", "match": {{"request_headers": {{"x-role": "admin"}}}},
      "labels": [{{"name": "tier", "request_header": "x-tier", "values": {tiers}}}]}},
    {{"name": "cache_hits_total", "match": {{"response_headers": {{"x-cache": "HIT"}}}}}}
  ],
  "http_metrics": {{"enabled": true, "handlers": [{}], "excluded_handlers": ["/metrics"], "total_duration": true,
    "labels": [{{"name": "client", "request_header": "x-client", "values": {clients}}},
               {{"name": "version", "response_header": "x-app-version", "values": {versions}}}]}},
  "samplers": [
    {{"name": "total_users", "cluster": "app", "path": "/users/count", "interval_seconds": 1,
      "timeout_ms": 500, "value": {{"json_pointer": "/count"}}}}
  ]
}}"#,
        quoted(&HANDLERS),
        tiers = serde_json::json!(TIERS),
        clients = serde_json::json!(CLIENTS),
        versions = serde_json::json!(VERSIONS),
    )
}

/// The constant label of every series.
const SERVICE: &str = "hostile-api";
/// The listed values of the dynamic labels: `client` (request header `x-client`) and `version`
/// (response header `x-app-version`) on the request metrics, `tier` (`x-tier`) on
/// `admin_calls_total`. Any other header value is `other`, no header `none`.
const CLIENTS: [&str; 2] = ["web", "ios"];
const VERSIONS: [&str; 2] = ["1.4.2", "2.0.0"];
const TIERS: [&str; 2] = ["gold", "free"];

/// Combinations of the request metrics' dynamic labels: L = Π (values + 2) (docs/configuration.md "Labels").
fn request_label_combinations() -> usize {
    (CLIENTS.len() + 2) * (VERSIONS.len() + 2)
}

const HISTOGRAMS: [&str; 4] = [
    "http_request_duration_milliseconds",
    "http_request_total_duration_milliseconds",
    "http_request_size_bytes",
    "http_response_size_bytes",
];
/// Envoy's default histogram buckets: 19 bounds and +Inf.
const BUCKETS: usize = 20;

/// The most series the filter can export under `config()`, from labels.rs and metrics.rs, as
/// label sets per metric: one per counter; http_requests_total (handlers + none) × 10 methods ×
/// 6 status labels; http_proxy_responses_total (handlers + none) × 6 status labels × 8 reasons;
/// the two duration histograms (handlers + none) × 10 methods each; the two size
/// histograms (handlers + none) each; per sampler its gauge, its last-success gauge and one
/// error counter per reason (8); the plugin's `app_metrics_config_valid`. Returns (label sets
/// of counters and gauges, label sets of histograms).
fn series_bound() -> (usize, usize) {
    let handlers = HANDLERS.len() + 1;
    let (methods, statuses) = (METHOD_LABELS.len(), STATUS_LABELS.len());
    // The request metrics have L series for each of their label sets without dynamic labels;
    // admin_calls_total has TIERS + 2 (other, none); the constant label multiplies nothing.
    let l = request_label_combinations();
    let flat = (COUNTERS.len() - 1)
        + (TIERS.len() + 2)
        + handlers * methods * statuses * l
        + handlers * statuses * PROXY_REASON_LABELS.len() * l
        + SAMPLERS.len() * (1 + 1 + REASON_LABELS.len())
        + 1;
    let histograms = (2 * handlers * methods + handlers + handlers) * l;
    (flat, histograms)
}

/// Label sets in a scrape: (counters and gauges, histograms). A histogram shows in
/// prometheus-parse as three samples (itself, `_sum`, `_count`); it is one label set.
fn label_sets(m: &Metrics) -> (usize, usize) {
    let mut flat = 0;
    let mut histograms = 0;
    for s in m
        .scrape
        .samples
        .iter()
        .filter(|s| !s.metric.starts_with("envoy_"))
    {
        if HISTOGRAMS.contains(&s.metric.as_str()) {
            histograms += 1;
        } else if !HISTOGRAMS
            .iter()
            .any(|h| s.metric == format!("{h}_sum") || s.metric == format!("{h}_count"))
        {
            flat += 1;
        }
    }
    (flat, histograms)
}

/// xorshift64*: deterministic, so a failing run can be replayed.
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
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// Every generated path carries this marker: it must never show in the metrics.
const MARK: &str = "qz";

/// A random path segment: unreserved characters, percent-encoded bytes (also of invalid UTF-8),
/// sub-delimiters, and the marker.
fn segment(rng: &mut Rng) -> String {
    const CHARS: &[u8] =
        b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=:@";
    let mut s = String::from(MARK);
    for _ in 0..rng.below(12) {
        if rng.below(8) == 0 {
            s.push_str(&format!("%{:02X}", rng.below(256)));
        } else {
            s.push(*rng.pick(CHARS) as char);
        }
    }
    s
}

fn random_path(rng: &mut Rng) -> String {
    let mut path = match rng.below(10) {
        0 => "/login".to_string(),
        1 => format!("/users/{}", segment(rng)),
        2 => format!("/users/{}/posts/{}", segment(rng), segment(rng)),
        3 => "/files".to_string(),
        4 => "/metrics".to_string(),
        5 => "/health".to_string(),
        _ => String::new(),
    };
    for _ in 0..rng.below(5) + usize::from(path.is_empty()) as u64 {
        path.push('/');
        path.push_str(&segment(rng));
    }
    if rng.below(3) == 0 {
        path.push('/');
    }
    path
}

/// Statuses the upstream answers with. Envoy passes 2xx-5xx and 600-999 through; an upstream
/// 1xx as final answer (or below 100) becomes Envoy's own 502.
const STATUSES: [u16; 24] = [
    200, 200, 200, 200, 201, 204, 299, 301, 304, 399, 400, 401, 404, 418, 422, 499, 500, 503, 599,
    600, 700, 999, 150, 199,
];

/// Methods Envoy's codec takes: the 9 with their own label, and WebDAV-style ones that must
/// land in `other`. (Envoy refuses methods it does not know, e.g. BREW or lower case, with a 400
/// before any filter: those are sent by `hostile_request`.)
const METHODS: [&str; 16] = [
    "GET", "GET", "GET", "POST", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE",
    "PROPFIND", "MKCOL", "REPORT", "SEARCH", "LOCK",
];

fn app() -> Upstream {
    Upstream::start_with_threads(8, |_method, url| {
        let (path, query) = url.split_once('?').unwrap_or((url, ""));
        if path == "/users/count" {
            return Reply::new(200, r#"{"count": 3}"#);
        }
        let status = query
            .split('&')
            .find_map(|kv| kv.strip_prefix("s="))
            .and_then(|s| s.parse().ok())
            .unwrap_or(200);
        let body = if matches!(status, 204 | 304) {
            ""
        } else {
            "ok"
        };
        let mut reply = Reply::new(status, body);
        if query.contains("hit") {
            reply = reply.header("x-cache", "HIT");
        }
        // The version the app reports, from the request: listed, random or none.
        match query.split('&').find_map(|kv| kv.strip_prefix("ver=")) {
            Some(v) => reply.header("x-app-version", v),
            None => reply,
        }
    })
}

/// A minimal HTTP/1.1 client on one keep-alive connection, writing raw bytes: what no HTTP
/// library sends (unknown methods, non-UTF-8 paths and header bytes, statuses over 999).
struct Conn {
    port: u16,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

impl Conn {
    fn new(port: u16) -> Conn {
        Conn {
            port,
            stream: None,
            buf: Vec::new(),
        }
    }

    /// Sends one request (a complete head, body included) and returns the response status, or
    /// 0 if the connection failed or closed without one. Closes the connection when the
    /// response says so or cannot be delimited.
    fn send(&mut self, request: &[u8], head_request: bool) -> u16 {
        let status = self.exchange(request, head_request).unwrap_or(0);
        if status == 0 {
            self.stream = None;
        }
        status
    }

    fn fill(&mut self) -> Option<()> {
        let mut chunk = [0u8; 16 * 1024];
        let n = self.stream.as_mut()?.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Some(())
    }

    fn exchange(&mut self, request: &[u8], head_request: bool) -> Option<u16> {
        if self.stream.is_none() {
            let stream = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
            stream
                .set_read_timeout(Some(Duration::from_secs(15)))
                .ok()?;
            stream.set_nodelay(true).ok()?;
            self.stream = Some(stream);
            self.buf.clear();
        }
        self.stream.as_mut()?.write_all(request).ok()?;
        let end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i + 4;
            }
            self.fill()?;
        };
        let head = String::from_utf8_lossy(&self.buf[..end]).to_ascii_lowercase();
        let status: u16 = head.get(9..)?.split(' ').next()?.parse().ok()?;
        let header = |name: &str| {
            head.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':').map(str::trim))
                .map(str::to_string)
        };
        let close = header("connection").is_some_and(|v| v == "close");
        self.buf.drain(..end);
        if head_request || matches!(status, 100..=199 | 204 | 304) {
            // No body.
        } else if let Some(len) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
            while self.buf.len() < len {
                self.fill()?;
            }
            self.buf.drain(..len);
        } else if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            loop {
                let line_end = loop {
                    if let Some(i) = find(&self.buf, b"\r\n") {
                        break i;
                    }
                    self.fill()?;
                };
                let size_text = String::from_utf8_lossy(&self.buf[..line_end]).to_string();
                let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
                while self.buf.len() < line_end + 2 + size + 2 {
                    self.fill()?;
                }
                self.buf.drain(..line_end + 2 + size + 2);
                if size == 0 {
                    break;
                }
            }
        } else {
            // Delimited by close.
            while self.fill().is_some() {}
            self.stream = None;
            return Some(status);
        }
        if close {
            self.stream = None;
        }
        Some(status)
    }
}

/// A request Envoy's codec accepts, with random method, path, query, and headers.
fn plausible_request(rng: &mut Rng) -> (Vec<u8>, bool, u64) {
    let method = *rng.pick(&METHODS);
    let mut path = random_path(rng);
    // A few huge paths, 8 to ~59 KB: near Envoy's 60 KB limit on a request head.
    if rng.below(250) == 0 {
        let kb = 8 + rng.below(52) as usize;
        path.push('/');
        path.push_str(&"h".repeat(kb * 1024 - 300));
    }
    // Statuses over 999 only the raw client can take (HTTP libraries stop at 999).
    let status = if rng.below(100) == 0 {
        *rng.pick(&[1000u16, 1234, 9999, 65535, 0, 42, 99])
    } else {
        *rng.pick(&STATUSES)
    };
    let hit = if rng.below(5) == 0 { "&hit" } else { "" };
    // The app's x-app-version: a listed version, another one (random, with the marker), none.
    let version = match rng.below(4) {
        0 => format!("&ver={}", rng.pick(&VERSIONS)),
        1 => format!("&ver={MARK}{}", rng.next() % 100_000),
        2 => "&ver=2.0".to_string(),
        _ => String::new(),
    };
    let mut head = format!(
        "{method} {path}?s={status}&{MARK}={}{hit}{version} HTTP/1.1\r\nhost: app\r\n",
        rng.next()
    )
    .into_bytes();
    // The client: listed, another spelling, random (with the marker), not UTF-8, or absent.
    let client: Option<Vec<u8>> = match rng.below(6) {
        0 | 1 => Some(rng.pick(&CLIENTS).as_bytes().to_vec()),
        2 => Some(b"WEB".to_vec()),
        3 => Some(format!("{MARK}-{}", rng.next()).into_bytes()),
        4 => Some(b"we\xffb".to_vec()),
        _ => None,
    };
    if let Some(client) = client {
        head.extend_from_slice(b"x-client: ");
        head.extend_from_slice(&client);
        head.extend_from_slice(b"\r\n");
    }
    if rng.below(7) == 0 {
        // The one request header a rule reads, sometimes with bytes that are not UTF-8.
        head.extend_from_slice(b"x-role: ");
        const ROLES: [&[u8]; 5] = [b"admin", b"user", b"ADMIN", b"adm\xffin", b"\xc3\x28"];
        let role = *rng.pick(&ROLES);
        head.extend_from_slice(role);
        head.extend_from_slice(b"\r\n");
        // The admin counter's label: a listed tier, a random one, or none.
        match rng.below(3) {
            0 => head.extend_from_slice(format!("x-tier: {}\r\n", rng.pick(&TIERS)).as_bytes()),
            1 => head.extend_from_slice(format!("x-tier: {MARK}{}\r\n", rng.next()).as_bytes()),
            _ => {}
        }
    }
    if rng.below(50) == 0 {
        // A big header and many small ones.
        head.extend_from_slice(
            format!(
                "x-junk: {}\r\n",
                "j".repeat(1024 * (1 + rng.below(30) as usize))
            )
            .as_bytes(),
        );
        for i in 0..rng.below(60) {
            head.extend_from_slice(format!("x-{MARK}-{i}: {}\r\n", rng.next()).as_bytes());
        }
    }
    if rng.below(40) == 0 {
        // obs-text: bytes >= 0x80 in a header value (not UTF-8).
        head.extend_from_slice(b"x-bytes: \xff\xfe\x80 caf\xc3\r\n");
    }
    let body: &[u8] = if method == "POST" || method == "PUT" {
        b"username=alice&password=secret"
    } else {
        b""
    };
    head.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
    head.extend_from_slice(body);
    // A fingerprint of method and path, to count how many distinct ones were sent.
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    std::hash::Hash::hash(&(method, &path), &mut hasher);
    (head, method == "HEAD", std::hash::Hasher::finish(&hasher))
}

/// A request Envoy may refuse (most get a 400 from its codec, before any filter): random bytes
/// or tokens as the method, non-UTF-8 or non-ASCII paths, non-UTF-8 header names and values,
/// CONNECT, absolute-form targets, control characters.
fn hostile_request(rng: &mut Rng) -> Vec<u8> {
    let junk: Vec<u8> = (0..1 + rng.below(20)).map(|_| rng.next() as u8).collect();
    let high: Vec<u8> = (0..1 + rng.below(20))
        .map(|_| 0x80 | rng.next() as u8)
        .collect();
    let status = *rng.pick(&STATUSES);
    let mut head: Vec<u8> = Vec::new();
    match rng.below(9) {
        0 => {
            head.extend_from_slice(&junk);
            head.extend_from_slice(format!(" /users/1?s={status} HTTP/1.1\r\n").as_bytes());
        }
        1 => {
            let token: String = (0..1 + rng.below(12))
                .map(|_| {
                    *rng.pick(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-_") as char
                })
                .collect();
            head.extend_from_slice(format!("{token} /health HTTP/1.1\r\n").as_bytes());
        }
        2 => {
            head.extend_from_slice(b"GET /users/");
            head.extend_from_slice(&high);
            head.extend_from_slice(format!("?s={status} HTTP/1.1\r\n").as_bytes());
        }
        3 => head.extend_from_slice(
            format!("GET /users/caf\u{e9}-{MARK}?s={status} HTTP/1.1\r\n").as_bytes(),
        ),
        4 => {
            head.extend_from_slice(
                format!("GET /users/7?s={status} HTTP/1.1\r\nx-bytes: ").as_bytes(),
            );
            head.extend_from_slice(&high);
            head.extend_from_slice(b"\r\nx-");
            head.extend_from_slice(&high);
            head.extend_from_slice(b": 1\r\n");
        }
        5 => head.extend_from_slice(b"CONNECT example.com:443 HTTP/1.1\r\n"),
        6 => head.extend_from_slice(
            format!(
                "GET http://x/users/{}?s={status} HTTP/1.1\r\n",
                segment(rng)
            )
            .as_bytes(),
        ),
        7 => head.extend_from_slice(
            format!("GET /{}\t/x?s={status} HTTP/1.1\r\n", segment(rng)).as_bytes(),
        ),
        _ => {
            head.extend_from_slice(format!("GET /files/{}", segment(rng)).as_bytes());
            head.push(rng.below(32) as u8);
            head.extend_from_slice(b" HTTP/1.1\r\n");
        }
    }
    head.extend_from_slice(b"host: app\r\ncontent-length: 0\r\n\r\n");
    head
}

/// Sends `count` requests from `threads` client threads, each on its own keep-alive
/// connection; one in 25 is a hostile request on a connection of its own. Returns how many got
/// each status (0: no response, e.g. a connection Envoy closed without answering) and the
/// number of distinct (method, path) pairs among the plausible requests.
fn drive(envoy: &Envoy, seed: u64, count: u64, threads: u64) -> (BTreeMap<u16, u64>, usize) {
    let per_thread = count / threads;
    assert_eq!(per_thread * threads, count);
    let port = envoy.listen_port;
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            thread::spawn(move || {
                let mut rng = Rng(seed ^ (t + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
                let mut conn = Conn::new(port);
                let mut seen: BTreeMap<u16, u64> = BTreeMap::new();
                let mut distinct = BTreeSet::new();
                for _ in 0..per_thread {
                    let status = if rng.below(25) == 0 {
                        Conn::new(port).send(&hostile_request(&mut rng), false)
                    } else {
                        let (request, head, key) = plausible_request(&mut rng);
                        distinct.insert(key);
                        conn.send(&request, head)
                    };
                    *seen.entry(status).or_default() += 1;
                }
                (seen, distinct)
            })
        })
        .collect();
    let mut statuses: BTreeMap<u16, u64> = BTreeMap::new();
    let mut distinct = BTreeSet::new();
    for h in handles {
        let (seen, keys) = h.join().unwrap();
        for (status, n) in seen {
            *statuses.entry(status).or_default() += n;
        }
        distinct.extend(keys);
    }
    assert_eq!(statuses.values().sum::<u64>(), count);
    (statuses, distinct.len())
}

#[test]
fn hostile_traffic_cannot_grow_series_or_memory() {
    let upstream = app();
    let envoy = Envoy::start(EnvoyOptions::new(&config(), upstream.port));
    let (flat_bound, histogram_bound) = series_bound();
    let bound = flat_bound + histogram_bound;
    // The filter's own bound (what `app-metrics check` prints) is the one computed here.
    let filter_bound = app_metrics::config::series_bound(
        &app_metrics::config::parse(config().as_bytes()).unwrap(),
    );
    assert_eq!(filter_bound.total(), bound as u64);
    assert_eq!(filter_bound.histograms, histogram_bound as u64);
    // What Prometheus stores: a histogram label set is BUCKETS + 2 time series.
    let tsdb_bound = flat_bound + histogram_bound * (BUCKETS + 2);

    drive(&envoy, 1, WARM_UP, 2);
    thread::sleep(Duration::from_secs(2));
    let rss_before = envoy.rss_kib();
    let (flat_warm, histograms_warm) = label_sets(&envoy.scrape());
    let series_warm = flat_warm + histograms_warm;

    // Ready threads in the upstream for the burst of new connections (see prewarm_upstream).
    prewarm_upstream(&upstream, 24);
    let started = Instant::now();
    let (statuses, distinct) = drive(&envoy, 0x5EED_2026, TOTAL, THREADS);
    let elapsed = started.elapsed();
    // Let the last on_log calls land and a stats flush show every histogram.
    thread::sleep(Duration::from_secs(3));
    let rss_after = envoy.rss_kib();
    let m = envoy.scrape();
    let (flat, histograms) = label_sets(&m);
    let series = flat + histograms;
    let tsdb = flat + histograms * (BUCKETS + 2);

    let answered: u64 = statuses
        .iter()
        .filter(|(s, _)| **s != 0)
        .map(|(_, n)| n)
        .sum();
    let counted: f64 = m.series("http_requests_total").values().sum();
    let envoy_stats = m
        .scrape
        .samples
        .iter()
        .filter(|s| s.metric.starts_with("envoy_"))
        .count();
    eprintln!(
        "cardinality: {} requests ({WARM_UP} warm-up + {TOTAL}) in {:.1} s, {answered} answered, \
         {distinct} distinct (method, path) pairs; statuses seen by clients: {statuses:?}",
        WARM_UP + TOTAL,
        elapsed.as_secs_f64()
    );
    eprintln!(
        "cardinality: filter label sets {series} ({flat} counters/gauges + {histograms} histograms; \
         after warm-up {series_warm}), bound from config {bound} ({flat_bound} + {histogram_bound}); \
         as Prometheus time series {tsdb}, bound {tsdb_bound}; http_requests_total counted \
         {counted} requests; Envoy's own series {envoy_stats}"
    );
    eprintln!(
        "cardinality: Envoy RSS {} KiB after warm-up, {} KiB after the run ({:+} KiB; margin {} KiB)",
        rss_before,
        rss_after,
        rss_after as i64 - rss_before as i64,
        RSS_MARGIN_KIB
    );

    let mut per_metric: BTreeMap<&str, usize> = BTreeMap::new();
    for s in m
        .scrape
        .samples
        .iter()
        .filter(|s| !s.metric.starts_with("envoy_"))
    {
        *per_metric.entry(s.metric.as_str()).or_default() += 1;
    }
    eprintln!("cardinality: series per metric: {per_metric:?}");

    // The traffic reached the filter in bulk, with odd statuses and methods.
    assert!(
        counted > 0.8 * (WARM_UP + TOTAL) as f64,
        "{counted} requests counted"
    );
    assert!(statuses.keys().any(|s| (600..=999).contains(s)));
    let odd = [
        ("handler".to_string(), "none".to_string()),
        ("method".to_string(), "other".to_string()),
        ("status".to_string(), "other".to_string()),
    ];
    assert!(
        m.series("http_requests_total")
            .keys()
            .any(|labels| odd.iter().all(|l| labels.contains(l))),
        "odd methods and statuses landed in `other`"
    );

    // Bounded: at most what the configuration allows.
    assert!(
        flat <= flat_bound,
        "{flat} counter/gauge series > bound {flat_bound}"
    );
    assert!(
        histograms <= histogram_bound,
        "{histograms} histogram series > bound {histogram_bound}"
    );
    assert!(series <= bound && tsdb <= tsdb_bound);
    // The harness's count (a histogram counts three times there) agrees.
    assert_eq!(m.filter_series_count(), flat + 3 * histograms);
    // ... and nowhere near what the traffic would make of per-path or per-status labels (the
    // dynamic labels multiply the series by up to 16 here; random header values add none).
    assert!(
        series * 10 < distinct,
        "{series} series for {distinct} distinct (method, path) pairs"
    );
    let h = HANDLERS.len() + 1;
    let l = request_label_combinations();
    assert!(per_metric.get("http_requests_total").copied().unwrap_or(0) <= h * 10 * 6 * l);
    assert!(
        per_metric
            .get("http_proxy_responses_total")
            .copied()
            .unwrap_or(0)
            <= h * 6 * 8 * l
    );
    for histogram in [
        "http_request_duration_milliseconds",
        "http_request_total_duration_milliseconds",
    ] {
        assert!(per_metric.get(histogram).copied().unwrap_or(0) <= h * 10 * l);
    }
    assert!(per_metric.get("admin_calls_total").copied().unwrap_or(0) <= TIERS.len() + 2);

    // Only label values from the configuration or the fixed sets.
    let handlers: BTreeSet<&str> = HANDLERS.iter().copied().chain(["none"]).collect();
    let names: BTreeSet<&str> = COUNTERS
        .iter()
        .chain(SAMPLERS.iter())
        .copied()
        .chain([
            "http_requests_total",
            "http_proxy_responses_total",
            "http_request_duration_milliseconds",
            "http_request_total_duration_milliseconds",
            "http_request_size_bytes",
            "http_response_size_bytes",
            "app_metrics_sampler_errors_total",
            "app_metrics_sampler_last_success_timestamp_seconds",
            "app_metrics_config_valid",
            "http_request_duration_milliseconds_sum",
            "http_request_duration_milliseconds_count",
            "http_request_total_duration_milliseconds_sum",
            "http_request_total_duration_milliseconds_count",
            "http_request_size_bytes_sum",
            "http_request_size_bytes_count",
            "http_response_size_bytes_sum",
            "http_response_size_bytes_count",
        ])
        .collect();
    let listed = |values: &[&str], v: &str| v == "other" || v == "none" || values.contains(&v);
    let request_metric = |metric: &str| {
        HISTOGRAMS.iter().any(|h| metric.starts_with(h))
            || ["http_requests_total", "http_proxy_responses_total"].contains(&metric)
    };
    // Every value a dynamic label took, per label name.
    let mut seen: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for s in m
        .scrape
        .samples
        .iter()
        .filter(|s| !s.metric.starts_with("envoy_"))
    {
        assert!(
            names.contains(s.metric.as_str()),
            "unexpected metric {}",
            s.metric
        );
        // The constant label on every series but app_metrics_config_valid; the dynamic ones on
        // every series of their metrics.
        let has = |label: &str| s.labels.get(label).is_some();
        assert_eq!(
            has("service"),
            s.metric != "app_metrics_config_valid",
            "{}",
            s.metric
        );
        assert_eq!(
            has("client") && has("version"),
            request_metric(&s.metric),
            "{}",
            s.metric
        );
        assert_eq!(has("tier"), s.metric == "admin_calls_total", "{}", s.metric);
        for (k, v) in s.labels.iter() {
            let v = v.replace('\u{2045}', "{").replace('\u{2046}', "}");
            if ["client", "version", "tier"].contains(&k.as_str()) {
                seen.entry(k.clone()).or_default().insert(v.clone());
            }
            let ok = match k.as_str() {
                "service" => v == SERVICE,
                "client" => listed(&CLIENTS, &v),
                "version" => listed(&VERSIONS, &v),
                "tier" => listed(&TIERS, &v),
                "handler" => handlers.contains(v.as_str()),
                "method" => METHOD_LABELS.contains(&v.as_str()),
                "status" => STATUS_LABELS.contains(&v.as_str()),
                "sampler" => SAMPLERS.contains(&v.as_str()),
                "reason" if s.metric == "http_proxy_responses_total" => {
                    PROXY_REASON_LABELS.contains(&v.as_str())
                }
                "reason" => REASON_LABELS.contains(&v.as_str()),
                // The harness's one plugin (tests/common: config.name app_metrics).
                "plugin" => v == "app_metrics",
                _ => false,
            };
            assert!(ok, "{}: label {k}={v:?} outside the allowed set", s.metric);
        }
    }
    // The random header values reached every label, and each took exactly its listed values,
    // `other` and `none`: no more.
    let all = |values: &[&str]| -> BTreeSet<String> {
        values
            .iter()
            .chain(["other", "none"].iter())
            .map(|v| v.to_string())
            .collect()
    };
    assert_eq!(seen.get("client"), Some(&all(&CLIENTS)));
    assert_eq!(seen.get("version"), Some(&all(&VERSIONS)));
    assert_eq!(seen.get("tier"), Some(&all(&TIERS)));
    eprintln!("cardinality: dynamic label values seen: {seen:?}");
    // No request data anywhere in the scrape (paths, queries, header values).
    for needle in [
        MARK, "alice", "secret", "jjjj", "hhhh", "caf", "BREW", "PROPFIND",
    ] {
        assert!(
            !m.text.contains(needle),
            "{needle:?} leaked into the scrape"
        );
    }

    assert!(
        rss_after <= rss_before + RSS_MARGIN_KIB,
        "Envoy RSS grew from {rss_before} KiB to {rss_after} KiB (margin {RSS_MARGIN_KIB} KiB)"
    );
    // Envoy still serves normally.
    assert_eq!(send(&agent(), "GET", &envoy.url("/health"), ""), 200);
    assert_eq!(m.value("total_users", &[("service", SERVICE)]), Some(3.0));
}
