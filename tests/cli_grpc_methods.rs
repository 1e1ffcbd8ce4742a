//! `app-metrics grpc-methods DESCRIPTOR_SET` (src/bin/app-metrics/descriptor.rs), run as a
//! process on protoc's real output: the `grpc` section it prints is one the filter accepts, and
//! what is not a descriptor set is an error (exit 1) that says so.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test code

mod cli;

use cli::*;
use std::path::Path;

#[test]
fn prints_the_grpc_section_of_a_descriptor_set() {
    let shop = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/grpc/shop.pb");
    let run = run_in(
        Path::new("."),
        &["grpc-methods", shop.to_str().unwrap()],
        "",
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let section: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let methods = &section["grpc"]["methods"];
    assert_eq!(methods[0], "/shop.v1.Cart/Add");
    assert_eq!(methods[2]["type"], "server_stream");
    assert_eq!(methods[4]["type"], "bidi_stream");
    app_metrics::config::parse(run.stdout.as_bytes()).unwrap();
}

#[test]
fn refuses_what_is_not_a_descriptor_set() {
    let dir = dir("grpc_methods_bad", &[("x.pb", "not protobuf {")]);
    let run = run_in(&dir, &["grpc-methods", "x.pb"], "");
    assert_eq!(run.code, 1);
    assert!(
        run.stderr
            .starts_with("x.pb: is not a protobuf descriptor set"),
        "{}",
        run.stderr
    );
    let run = run_in(&dir, &["grpc-methods"], "");
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.starts_with("grpc-methods takes one file"),
        "{}",
        run.stderr
    );
}
