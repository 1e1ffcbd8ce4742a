#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test code
//! Counters on JSON bodies in a real Envoy with the body-reading module: every condition kind
//! on both bodies, increments, bodies over the cap (declared and chunked), non-JSON and
//! compressed bodies, chunked bodies in both directions, clients leaving mid-body; each counted
//! exactly, each refusal under its reason, the seed's counters unchanged beside them. And the
//! lean module: it refuses body rules, naming the field and the other build, and loses no
//! request for it.

mod common;

use common::{bootstrap::*, envoy::*, scrape::*, upstream::*, *};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

const CONFIG: &str = r#"{"counters": [
  {"name": "successful_login_details_total", "match": {"method": "POST", "path": "/login", "status": ["2xx"]}},
  {"name": "failed_login_details_total", "match": {"method": "POST", "path": "/login", "status": [400, 401]}},
  {"name": "wrong_password_total",
   "match": {"method": "POST", "path": "/login",
             "response_json": [{"pointer": "/detail", "equals": "Incorrect username or password"}]}},
  {"name": "locked_logins_total",
   "match": {"method": "POST", "path": "/login", "status": ["2xx"],
             "response_json": [{"pointer": "/ok", "equals": false}, {"pointer": "/error", "present": true}]}},
  {"name": "alice_signups_total",
   "match": {"method": "POST", "path": "/users", "request_json": [{"pointer": "/username", "equals": "alice"}]}},
  {"name": "vip_orders_total",
   "match": {"method": "POST", "path": "/orders",
             "request_json": [{"pointer": "/vip", "equals": true}, {"pointer": "/items/0/qty", "equals": 2},
                              {"pointer": "/coupon", "equals": null}, {"pointer": "/test", "present": false}]}},
  {"name": "graphql_errors_total",
   "match": {"method": "POST", "path": "/graphql", "response_json": [{"pointer": "/errors", "present": true}]}},
  {"name": "llm_tokens_total", "match": {"method": "POST", "path": "/v1/chat/completions", "status": ["2xx"]},
   "increment": {"response_json": "/usage/total_tokens"}, "max_body_bytes": 262144},
  {"name": "uploaded_items_total", "match": {"method": "POST", "path": "/batch"},
   "increment": {"request_json": "/count"}}
]}"#;

/// A JSON body of about `size` bytes, `tail` (`"key": value`) after the padding.
fn padded(size: usize, tail: &str) -> String {
    format!(r#"{{"pad": "{}", {tail}}}"#, "x".repeat(size))
}

/// The app. `/login?r=` picks the answer, `/v1/chat/completions?t=` the token count.
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
        let locked = r#"{"ok": false, "error": "locked"}"#;
        match (method, path) {
            ("POST", "/login") => match param("r").as_str() {
                "wrong" => Reply::json(401, r#"{"detail": "Incorrect username or password"}"#),
                "locked" => Reply::json(200, locked),
                "text" => Reply::new(200, "welcome").header("content-type", "text/plain"),
                "gzip" => Reply::json(200, locked).header("content-encoding", "gzip"),
                "big" => Reply::json(200, padded(100_000, r#""ok": false, "error": "locked""#)),
                "bigchunked" => Reply::json(200, padded(100_000, r#""ok": false, "error": "x""#))
                    .chunked(8192, Duration::from_millis(2)),
                "chunked" => Reply::json(200, locked).chunked(5, Duration::from_millis(5)),
                _ => Reply::json(200, r#"{"ok": true, "token": "t0k3n"}"#),
            },
            ("POST", "/graphql") => match param("r").as_str() {
                "err" => Reply::json(200, r#"{"data": null, "errors": [{"message": "boom"}]}"#),
                _ => Reply::json(200, r#"{"data": {"x": 1}}"#),
            },
            ("POST", "/v1/chat/completions") => {
                let t = param("t");
                let usage = |tokens: &str| {
                    format!(
                        r#"{{"id": "c1", "usage": {{"prompt_tokens": 3, "total_tokens": {tokens}}}}}"#
                    )
                };
                match t.as_str() {
                    "none" => Reply::json(200, r#"{"id": "c1", "usage": {}}"#),
                    "fail" => Reply::json(500, usage("999")),
                    "neg" => Reply::json(200, usage("-5")),
                    "float" => Reply::json(200, usage("12.5")),
                    "string" => Reply::json(200, usage("\"7\"")),
                    "big" => {
                        Reply::json(200, padded(200_000, r#""usage": {"total_tokens": 12345}"#))
                            .chunked(8192, Duration::from_millis(2))
                    }
                    "slow" => Reply::json(200, padded(200_000, r#""usage": {"total_tokens": 5}"#))
                        .chunked(8192, Duration::from_millis(100)),
                    t => Reply::json(200, usage(t)),
                }
            }
            _ => Reply::json(201, r#"{"id": 1}"#),
        }
    })
}

fn post_json(agent: &ureq::Agent, envoy: &Envoy, path: &str, body: &str) -> u16 {
    let headers = [("content-type", "application/json")];
    send_with(agent, "POST", &envoy.url(path), &headers, body)
}

fn start(config: &str, upstream: &Upstream, wasm: String) -> Envoy {
    let mut opts = EnvoyOptions::new(config, upstream.port);
    opts.wasm = wasm;
    Envoy::start(opts)
}

/// The scrape once every `(name, want)` holds, or after 10 s (the caller asserts).
fn settled(envoy: &Envoy, expect: &[(&str, f64)]) -> Metrics {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let m = envoy.scrape();
        let done = expect
            .iter()
            .all(|(name, want)| m.value(name, &[]) == Some(*want));
        if done || std::time::Instant::now() > deadline {
            return m;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn not_counted(m: &Metrics, reason: &str) -> f64 {
    m.value("app_metrics_body_not_counted_total", &[("reason", reason)])
        .unwrap_or(0.0)
}

#[test]
fn every_condition_on_both_bodies_counts_exactly_and_says_why_not() {
    let upstream = app();
    let envoy = start(CONFIG, &upstream, bodies_wasm_path());
    let agent = agent();

    // Logins: the answer decides. (variant, how many, status)
    let logins = [
        ("ok", 3, 200),
        ("wrong", 4, 401),
        ("locked", 5, 200),
        ("text", 2, 200),
        ("gzip", 2, 200),
        ("big", 2, 200),
        ("bigchunked", 2, 200),
        ("chunked", 3, 200),
    ];
    for (r, n, status) in logins {
        for _ in 0..n {
            let got = post_json(&agent, &envoy, &format!("/login?r={r}"), r#"{"user": "u"}"#);
            assert_eq!(got, status, "/login?r={r}");
        }
    }
    // Sign-ups: the request body decides (one chunked, sent raw).
    let signups = [
        (r#"{"username": "alice", "password": "p"}"#, 3),
        (r#"{"username": "bob"}"#, 2),
        (r#"{"user": "alice"}"#, 2),
    ];
    for (body, n) in signups {
        for _ in 0..n {
            assert_eq!(post_json(&agent, &envoy, "/users", body), 201);
        }
    }
    let text = [("content-type", "text/plain")];
    assert_eq!(
        send_with(
            &agent,
            "POST",
            &envoy.url("/users"),
            &text,
            r#"{"username": "alice"}"#
        ),
        201
    );
    assert_eq!(post_json(&agent, &envoy, "/users", ""), 201);
    let chunked = b"POST /users HTTP/1.1\r\nhost: app\r\ncontent-type: application/json\r\n\
        transfer-encoding: chunked\r\nconnection: close\r\n\r\n\
        9\r\n{\"usernam\r\nc\r\ne\": \"alice\"}\r\n0\r\n\r\n";
    assert_eq!(raw_request(envoy.listen_port, chunked), Some(201));
    // Orders: equals on a boolean, a number by value, null; present false.
    let orders = [
        (
            r#"{"vip": true, "items": [{"qty": 2.0}], "coupon": null}"#,
            2,
        ),
        (r#"{"vip": true, "items": [{"qty": 2}], "coupon": null}"#, 1),
        (
            r#"{"vip": true, "items": [{"qty": 2}], "coupon": null, "test": 1}"#,
            1,
        ),
        (
            r#"{"vip": "true", "items": [{"qty": 2}], "coupon": null}"#,
            1,
        ),
        (r#"{"vip": true, "items": [{"qty": 3}], "coupon": null}"#, 1),
        (r#"{"vip": true, "items": [], "coupon": null}"#, 2),
        (r#"{"vip": true, "items": [{"qty": 2}"#, 1),
    ];
    for (body, n) in orders {
        for _ in 0..n {
            assert_eq!(post_json(&agent, &envoy, "/orders", body), 201);
        }
    }
    for (r, n) in [("err", 3), ("ok", 2)] {
        for _ in 0..n {
            assert_eq!(
                post_json(&agent, &envoy, &format!("/graphql?r={r}"), "{}"),
                200
            );
        }
    }
    // Token usage: amounts, refusals, a 500 never read, a 200 KB chunked answer within its cap.
    let amounts = [17u64, 250, 3000, 0];
    for t in amounts {
        assert_eq!(
            post_json(&agent, &envoy, &format!("/v1/chat/completions?t={t}"), "{}"),
            200
        );
    }
    for t in ["neg", "float", "string", "none"] {
        assert_eq!(
            post_json(&agent, &envoy, &format!("/v1/chat/completions?t={t}"), "{}"),
            200
        );
    }
    assert_eq!(
        post_json(&agent, &envoy, "/v1/chat/completions?t=fail", "{}"),
        500
    );
    assert_eq!(
        post_json(&agent, &envoy, "/v1/chat/completions?t=big", "{}"),
        200
    );
    for body in [
        r#"{"count": 7}"#,
        r#"{"count": 11, "items": []}"#,
        r#"{"count": "7"}"#,
    ] {
        assert_eq!(post_json(&agent, &envoy, "/batch", body), 201);
    }

    let count = |r: &str| logins.iter().find(|l| l.0 == r).unwrap().1 as f64;
    let succeeded: f64 = logins
        .iter()
        .filter(|l| l.2 == 200)
        .map(|l| l.1 as f64)
        .sum();
    let expect = [
        ("successful_login_details_total", succeeded),
        ("failed_login_details_total", count("wrong")),
        ("wrong_password_total", count("wrong")),
        ("locked_logins_total", count("locked") + count("chunked")),
        ("alice_signups_total", 3.0 + 1.0),
        ("vip_orders_total", 3.0),
        ("graphql_errors_total", 3.0),
        (
            "llm_tokens_total",
            amounts.iter().sum::<u64>() as f64 + 12345.0,
        ),
        ("uploaded_items_total", 18.0),
    ];
    // Requests end on two workers: wait until every count is in.
    let m = settled(&envoy, &expect);
    for (name, want) in expect {
        assert_eq!(m.value(name, &[]), Some(want), "{name}\n{}", m.text);
    }
    // Why not, per counter that otherwise matched: wrong_password finds no /detail in every
    // other JSON login answer; both login counters see the text, gzip and big answers.
    let reasons = [
        (
            "missing",
            count("ok") + count("locked") + count("chunked") + 2.0 + 2.0 + 1.0,
        ),
        ("not_json", 2.0 * count("text") + 1.0),
        ("compressed", 2.0 * count("gzip")),
        ("too_large", 2.0 * (count("big") + count("bigchunked"))),
        ("parse", 1.0),
        ("invalid", 3.0 + 1.0),
        ("no_body", 1.0),
        ("incomplete", 0.0),
        ("busy", 0.0),
    ];
    for (reason, want) in reasons {
        assert_eq!(not_counted(&m, reason), want, "reason {reason}\n{}", m.text);
    }
    // The app saw every request: reading bodies cost none.
    assert_eq!(upstream.count("POST", "/login", 200) as f64, succeeded);
    assert_eq!(upstream.count("POST", "/users", 201), 3 + 2 + 2 + 1 + 1 + 1);
}

/// Opens a request and leaves: with `partial` of a longer request body sent, or after reading
/// the first bytes of the answer.
fn leave(port: u16, request: &[u8], read_first: bool) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.write_all(request).unwrap();
    if read_first {
        let mut head = [0u8; 64];
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let n = stream.read(&mut head).unwrap();
        assert!(
            head[..n].starts_with(b"HTTP/1.1 200"),
            "{:?}",
            String::from_utf8_lossy(&head[..n])
        );
    } else {
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(stream);
}

#[test]
fn clients_leaving_mid_body_are_counted_as_incomplete_and_lose_nothing_else() {
    let upstream = app();
    let envoy = start(CONFIG, &upstream, bodies_wasm_path());
    let agent = agent();

    // Half a request body, then gone; and gone while a slow answer streams.
    let half = b"POST /users HTTP/1.1\r\nhost: app\r\ncontent-type: application/json\r\n\
        content-length: 1000\r\n\r\n{\"username\": \"alice\", \"pad\": \"xxxxxxxx";
    let slow = b"POST /v1/chat/completions?t=slow HTTP/1.1\r\nhost: app\r\n\
        content-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
    for _ in 0..2 {
        leave(envoy.listen_port, half, false);
        leave(envoy.listen_port, slow, true);
    }
    let m = wait_value(
        &envoy,
        "app_metrics_body_not_counted_total",
        &[("reason", "incomplete")],
        4.0,
    );
    assert_eq!(m.value("alice_signups_total", &[]), Some(0.0), "{}", m.text);
    assert_eq!(m.value("llm_tokens_total", &[]), Some(0.0), "{}", m.text);

    // Everything around them counts, on every worker.
    for round in 1..=10u64 {
        assert_eq!(
            post_json(&agent, &envoy, "/users", r#"{"username": "alice"}"#),
            201
        );
        assert_eq!(
            post_json(&agent, &envoy, "/v1/chat/completions?t=10", "{}"),
            200
        );
        assert_eq!(post_json(&agent, &envoy, "/login?r=wrong", "{}"), 401);
        let m = wait_value(&envoy, "llm_tokens_total", &[], (10 * round) as f64);
        assert_eq!(m.value("alice_signups_total", &[]), Some(round as f64));
        assert_eq!(m.value("wrong_password_total", &[]), Some(round as f64));
        assert_eq!(
            m.value("failed_login_details_total", &[]),
            Some(round as f64)
        );
    }
    let m = envoy.scrape();
    assert_eq!(not_counted(&m, "incomplete"), 4.0, "{}", m.text);
    assert!(!envoy.log().contains("panic"), "{}", envoy.log());
}

#[test]
fn the_lean_module_refuses_body_rules_naming_the_other_build_and_serves_every_request() {
    let upstream = app();
    let envoy = start(CONFIG, &upstream, wasm_path());
    let agent = agent();
    for _ in 0..5 {
        assert_eq!(post_json(&agent, &envoy, "/login?r=wrong", "{}"), 401);
        assert_eq!(post_json(&agent, &envoy, "/login?r=locked", "{}"), 200);
    }
    assert_eq!(upstream.count("POST", "/login", 401), 5);
    assert_eq!(upstream.count("POST", "/login", 200), 5);
    let m = wait_value(
        &envoy,
        "app_metrics_config_valid",
        &[("plugin", "app_metrics")],
        0.0,
    );
    // Nothing of the refused configuration is in force.
    assert_eq!(
        m.value("failed_login_details_total", &[]),
        None,
        "{}",
        m.text
    );
    let log = envoy.log();
    let want = "counters[2].match.response_json: reads a body, which app_metrics.wasm does not \
                (expected the body-reading build, app_metrics_bodies.wasm";
    assert!(log.contains(want), "{log}");
}
