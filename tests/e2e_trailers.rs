#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test code
//! Bodies that end without saying so in their last data frame, in a real Envoy with the
//! body-reading module: a JSON answer followed by HTTP/1.1 trailers, a chunked request body
//! followed by trailers (both end at the trailers, not `incomplete`), and chunked bodies whose
//! end is an empty data frame of its own (no `parse` error; an empty chunked body is `no_body`);
//! gRPC messages in JSON (framed, the status in trailers) are no JSON document: `not_json`.
//! Envoy drops HTTP/1 trailers unless `enable_trailers` is set, on the listener for the client's
//! and on the cluster for the app's: both are set here, and the client sees the app's trailer
//! come back, so the trailers really pass the filter.

mod common;

use common::{bootstrap::*, envoy::*, grpc::explicit_cluster_yaml, scrape::*, upstream::*, *};
use std::time::Duration;

const CONFIG: &str = r#"{"counters": [
  {"name": "paid_orders_total",
   "match": {"method": "POST", "path": "/orders", "status": ["2xx"],
             "response_json": [{"pointer": "/state", "equals": "paid"}]}},
  {"name": "ordered_items_total", "match": {"method": "POST", "path": "/orders", "status": ["2xx"]},
   "increment": {"response_json": "/items"}},
  {"name": "alice_signups_total",
   "match": {"method": "POST", "path": "/users", "request_json": [{"pointer": "/username", "equals": "alice"}]}},
  {"name": "uploaded_items_total", "match": {"method": "POST", "path": "/batch"},
   "increment": {"request_json": "/count"}}
]}"#;

const TRAILER: &str = "x-checksum";

/// The app. `/orders?state=&items=` picks the answer's JSON; `&send=` how it is sent:
/// `trailers` (one chunk, then a trailer section), `paced` (5-byte chunks 5 ms apart, then
/// trailers), `chunked` (5-byte chunks, no trailers: the end is an empty frame), `empty`
/// (chunked, no byte).
fn app() -> Upstream {
    Upstream::start(|method, url| {
        let (path, query) = url.split_once('?').unwrap_or((url, ""));
        let param = |name: &str| {
            query
                .split('&')
                .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
                .unwrap_or("")
                .to_string()
        };
        match (method, path) {
            ("POST", "/orders") => {
                let body = format!(
                    r#"{{"state": "{}", "items": {}}}"#,
                    param("state"),
                    param("items")
                );
                let pace = Duration::from_millis(5);
                match param("send").as_str() {
                    "trailers" => Reply::json(200, body).trailer(TRAILER, "abc"),
                    "paced" => Reply::json(200, body)
                        .chunked(5, pace)
                        .trailer(TRAILER, "abc"),
                    "chunked" => Reply::json(200, body).chunked(5, pace),
                    "empty" => Reply::json(200, "").chunked(5, pace),
                    // gRPC's JSON codec: the message framed (a 5-byte prefix), the status in
                    // trailers. Not one JSON document.
                    "grpc" => {
                        let mut framed = vec![0u8];
                        framed.extend_from_slice(&(body.len() as u32).to_be_bytes());
                        framed.extend_from_slice(body.as_bytes());
                        Reply::new(200, framed)
                            .header("content-type", "application/grpc+json")
                            .trailer("grpc-status", "0")
                    }
                    other => panic!("send={other}"),
                }
            }
            _ => Reply::json(201, r#"{"id": 1}"#),
        }
    })
}

/// Envoy with trailers on both sides: the listener's (the client's trailers, and the app's
/// passed back) and those of the cluster `/orders` goes to (the app's). Other paths go to a
/// cluster without: the client's trailers stop at Envoy (tiny_http cannot read them).
fn start(upstream: &Upstream) -> Envoy {
    let mut opts = EnvoyOptions::new(CONFIG, upstream.port);
    opts.wasm = bodies_wasm_path();
    opts.connection_manager = vec!["http_protocol_options: { enable_trailers: true }".into()];
    opts.raw_clusters = vec![explicit_cluster_yaml(
        "app-trailers",
        upstream.port,
        "http_protocol_options: { enable_trailers: true }",
    )];
    opts.routes = vec![route_yaml("/orders", "app-trailers", "10s")];
    Envoy::start(opts)
}

/// A POST with a JSON body of `content-length`, on a connection of its own; the whole answer
/// as it came (chunks and trailers included).
fn post(envoy: &Envoy, path: &str, body: &str) -> String {
    let request = format!(
        "POST {path} HTTP/1.1\r\nhost: app\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    String::from_utf8(raw_response(envoy.listen_port, request.as_bytes())).unwrap()
}

/// `body` sent chunked, `piece` bytes a chunk, then `trailers` (`name: value` lines): the status.
fn post_chunked(envoy: &Envoy, path: &str, body: &str, piece: usize, trailers: &[&str]) -> u16 {
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nhost: app\r\ncontent-type: application/json\r\n\
         transfer-encoding: chunked\r\nconnection: close\r\n\r\n"
    );
    for chunk in body.as_bytes().chunks(piece) {
        let chunk = std::str::from_utf8(chunk).unwrap();
        request.push_str(&format!("{:x}\r\n{chunk}\r\n", chunk.len()));
    }
    request.push_str("0\r\n");
    for trailer in trailers {
        request.push_str(&format!("{trailer}\r\n"));
    }
    request.push_str("\r\n");
    raw_request(envoy.listen_port, request.as_bytes()).unwrap()
}

/// The body of a chunked answer, its chunks joined.
fn dechunked(answer: &str) -> String {
    let (_, mut rest) = answer.split_once("\r\n\r\n").unwrap();
    let mut body = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n").unwrap();
        let size = usize::from_str_radix(size, 16).unwrap();
        if size == 0 {
            return body;
        }
        body.push_str(&after[..size]);
        rest = &after[size + 2..];
    }
}

/// Each reason's count, absent as 0.
fn not_counted(m: &Metrics) -> Vec<(&'static str, f64)> {
    // Every reason a body rule may give, as the module names them.
    app_metrics::body::NotCounted::ALL
        .iter()
        .map(|reason| {
            let r = reason.label();
            let v = m.value("app_metrics_body_not_counted_total", &[("reason", r)]);
            (r, v.unwrap_or(0.0))
        })
        .collect()
}

/// Every counter of `expect` at its value and every reason at its count in `reasons` (0 when
/// not listed), once requests ending on both workers are in (10 s at most).
fn assert_counts(envoy: &Envoy, expect: &[(&str, f64)], reasons: &[(&str, f64)]) {
    let want = |reason: &str| reasons.iter().find(|r| r.0 == reason).map_or(0.0, |r| r.1);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let m = loop {
        let m = envoy.scrape();
        let done = expect.iter().all(|(n, v)| m.value(n, &[]) == Some(*v))
            && not_counted(&m).iter().all(|(r, v)| *v == want(r));
        if done || std::time::Instant::now() > deadline {
            break m;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    for (name, v) in expect {
        assert_eq!(m.value(name, &[]), Some(*v), "{name}\n{}", m.text);
    }
    for (reason, got) in not_counted(&m) {
        assert_eq!(got, want(reason), "reason {reason}\n{}", m.text);
    }
}

#[test]
fn a_json_answer_followed_by_trailers_is_counted_not_incomplete() {
    let upstream = app();
    let envoy = start(&upstream);
    // (state, items, how sent, how many)
    let orders = [
        ("paid", 3, "trailers", 3),
        ("pending", 5, "trailers", 2),
        ("paid", 1, "paced", 2),
        ("pending", 4, "paced", 1),
    ];
    for (state, items, send, n) in orders {
        for _ in 0..n {
            let answer = post(
                &envoy,
                &format!("/orders?state={state}&items={items}&send={send}"),
                "{}",
            );
            assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
            // The app's trailer passed the filter and reached the client: the body's end
            // came to the filter as trailers, not as a data frame.
            assert!(
                answer.ends_with(&format!("\r\n0\r\n{TRAILER}: abc\r\n\r\n")),
                "{answer:?}"
            );
            let body = format!(r#"{{"state": "{state}", "items": {items}}}"#);
            assert_eq!(dechunked(&answer), body, "{answer}");
        }
    }
    // A gRPC message in JSON, then the status as a trailer: framed, so not read as JSON.
    for _ in 0..2 {
        let answer = post(&envoy, "/orders?state=paid&items=9&send=grpc", "{}");
        assert!(
            answer.ends_with("\r\n0\r\ngrpc-status: 0\r\n\r\n"),
            "{answer:?}"
        );
    }
    let paid: u64 = orders.iter().filter(|o| o.0 == "paid").map(|o| o.3).sum();
    let items: u64 = orders.iter().map(|o| o.1 * o.3).sum();
    let expect = [
        ("paid_orders_total", paid as f64),
        ("ordered_items_total", items as f64),
    ];
    // Both order rules, twice.
    assert_counts(&envoy, &expect, &[("not_json", 4.0)]);
    assert_eq!(upstream.count("POST", "/orders", 200), 8 + 2);
}

#[test]
fn a_chunked_request_body_followed_by_trailers_is_counted_not_incomplete() {
    let upstream = app();
    let envoy = start(&upstream);
    let checksum = ["x-checksum: abc", "x-signed: yes"];
    // (body, piece, how many)
    let signups = [
        (r#"{"username": "alice", "password": "p"}"#, 9, 3),
        (r#"{"username": "alice"}"#, 1000, 1),
        (r#"{"username": "bob"}"#, 4, 2),
    ];
    for (body, piece, n) in signups {
        for _ in 0..n {
            assert_eq!(post_chunked(&envoy, "/users", body, piece, &checksum), 201);
        }
    }
    for (body, piece) in [(r#"{"count": 7}"#, 3), (r#"{"count": 11, "x": []}"#, 64)] {
        assert_eq!(
            post_chunked(&envoy, "/batch", body, piece, &checksum[..1]),
            201
        );
    }
    let expect = [("alice_signups_total", 4.0), ("uploaded_items_total", 18.0)];
    assert_counts(&envoy, &expect, &[]);
    assert_eq!(upstream.count("POST", "/users", 201), 6);
    assert_eq!(upstream.count("POST", "/batch", 201), 2);
}

#[test]
fn a_body_ending_in_an_empty_data_frame_is_counted_and_no_bytes_is_no_body() {
    let upstream = app();
    let envoy = start(&upstream);
    // HTTP/1.1 chunked without trailers: Envoy passes each chunk as a data frame, then the
    // final `0` chunk as an empty frame that ends the stream.
    for _ in 0..3 {
        assert_eq!(
            post_chunked(&envoy, "/users", r#"{"username": "alice"}"#, 6, &[]),
            201
        );
    }
    assert_eq!(
        post_chunked(&envoy, "/batch", r#"{"count": 5}"#, 2, &[]),
        201
    );
    for (state, items) in [("paid", 2), ("paid", 3), ("open", 4)] {
        let answer = post(
            &envoy,
            &format!("/orders?state={state}&items={items}&send=chunked"),
            "{}",
        );
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("\r\n0\r\n\r\n"), "{answer:?}");
    }
    // No byte at all, each way: an empty frame alone is no body, not a parse error.
    assert_eq!(post_chunked(&envoy, "/users", "", 1, &[]), 201);
    let answer = post(&envoy, "/orders?state=paid&items=1&send=empty", "{}");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    let expect = [
        ("alice_signups_total", 3.0),
        ("uploaded_items_total", 5.0),
        ("paid_orders_total", 2.0),
        ("ordered_items_total", 9.0),
    ];
    // One for the empty request (alice_signups), two for the empty answer (both order rules).
    assert_counts(&envoy, &expect, &[("no_body", 3.0)]);
}
