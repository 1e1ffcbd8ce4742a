#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test code
//! Slow and lying clients against the body-reading module, in a real Envoy: 40 clients declare
//! 1 MiB JSON bodies, send one byte and hold their requests open, while other clients' body
//! counters count exactly. What a client declares reserves nothing; what arrives is what counts
//! against the VM's body budget (`body.rs`).

mod common;

use common::{bootstrap::*, envoy::*, upstream::*, *};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::Duration;

const CONFIG: &str = r#"{"counters": [
  {"name": "uploads_total", "match": {"method": "POST", "path": "/upload",
   "request_json": [{"pointer": "/username", "present": true}]}, "max_body_bytes": 1048576},
  {"name": "alice_signups_total",
   "match": {"method": "POST", "path": "/users", "request_json": [{"pointer": "/username", "equals": "alice"}]}},
  {"name": "llm_tokens_total", "match": {"method": "POST", "path": "/v1/chat/completions", "status": ["2xx"]},
   "increment": {"response_json": "/usage/total_tokens"}}
]}"#;

const HOLDERS: usize = 40;

/// An upstream that accepts, reads whatever comes and never answers: the holders' requests
/// stay open as long as their clients keep them.
fn sink() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            thread::spawn(move || {
                let mut stream = stream;
                let mut buffer = [0u8; 4096];
                while matches!(stream.read(&mut buffer), Ok(n) if n > 0) {}
            });
        }
    });
    port
}

#[test]
fn clients_declaring_big_bodies_and_holding_them_cost_others_nothing() {
    let app = Upstream::start(|method, url| match (method, url) {
        ("POST", "/users") => Reply::json(201, "{}"),
        ("POST", "/v1/chat/completions") => Reply::json(200, r#"{"usage": {"total_tokens": 10}}"#),
        _ => Reply::new(404, ""),
    });
    let sink = sink();
    let mut opts = EnvoyOptions::new(CONFIG, app.port);
    opts.wasm = bodies_wasm_path();
    opts.extra_clusters = vec![Cluster::fixed("sink", sink)];
    opts.routes = vec![route_yaml("/upload", "sink", "0s")];
    let envoy = Envoy::start(opts);

    // 40 clients declare 1 MiB (40 MiB: past every VM's 16 MiB budget) and send one byte.
    let head = format!(
        "POST /upload HTTP/1.1\r\nhost: app\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n\r\n{{",
        1024 * 1024
    );
    let holders: Vec<TcpStream> = (0..HOLDERS)
        .map(|_| {
            let mut s = TcpStream::connect(("127.0.0.1", envoy.listen_port)).unwrap();
            s.write_all(head.as_bytes()).unwrap();
            s
        })
        .collect();
    thread::sleep(Duration::from_secs(1));

    // Everyone else's bodies are read and counted exactly, on every worker.
    let agent = agent();
    let json = [("content-type", "application/json")];
    let rounds = 20u64;
    for _ in 0..rounds {
        let users = send_with(
            &agent,
            "POST",
            &envoy.url("/users"),
            &json,
            r#"{"username": "alice"}"#,
        );
        assert_eq!(users, 201);
        let chat = send_with(
            &agent,
            "POST",
            &envoy.url("/v1/chat/completions"),
            &json,
            "{}",
        );
        assert_eq!(chat, 200);
    }
    let m = wait_value(&envoy, "llm_tokens_total", &[], (10 * rounds) as f64);
    assert_eq!(
        m.value("alice_signups_total", &[]),
        Some(rounds as f64),
        "{}",
        m.text
    );
    assert_eq!(
        m.value("app_metrics_body_not_counted_total", &[("reason", "busy")]),
        None,
        "{}",
        m.text
    );
    // The holders are still there; when they go, their requests end incomplete.
    drop(holders);
    let m = wait_value(
        &envoy,
        "app_metrics_body_not_counted_total",
        &[("reason", "incomplete")],
        HOLDERS as f64,
    );
    assert_eq!(m.value("uploads_total", &[]), Some(0.0));
    assert!(!envoy.log().contains("panic"), "{}", envoy.log());
    eprintln!(
        "slow clients: {HOLDERS} holding 1 MiB declarations; {rounds} signups and {} tokens counted exactly",
        10 * rounds
    );
}
