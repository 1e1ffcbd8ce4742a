//! End-to-end harness: a real Envoy (from the project venv) with the built filter, real
//! upstreams on loopback, real HTTP, and scrapes parsed with prometheus-parse.
//!
//! Needs `ENVOY_BIN` and `APP_METRICS_WASM` (the Makefile's `e2e` target sets both).
//!
//! By what it starts or reads; each module imports only those below it:
//!
//! | module | what |
//! |---|---|
//! | [`grpc`] | the Python gRPC server (in-app reference metrics) and client; Envoy in front of it and a non-gRPC upstream |
//! | [`istio`] | an Istio-like sidecar: Istio's stats_config, WasmPlugins delivered by ECDS |
//! | [`shared_vm`] | two services whose plugins share one VM, told apart by a constant label |
//! | [`envoy`] | the Envoy process: start (static, LDS), wait for a scrape value, admin stats |
//! | [`bootstrap`] | the YAML Envoy starts on: listeners, clusters, routes; LDS and EDS files |
//! | [`scrape`] | a Prometheus scrape parsed, its values and series |
//! | [`upstream`] | the test upstream (tiny_http) and the requests sent through Envoy |
//! | this file | paths, free ports, temporary directories, the HTTP agent, `eventually` |
#![allow(dead_code)] // each test binary uses part of the harness (covers the submodules too)

pub mod bootstrap;
pub mod envoy;
pub mod grpc;
pub mod istio;
pub mod scrape;
pub mod shared_vm;
pub mod upstream;

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

pub fn envoy_bin() -> String {
    std::env::var("ENVOY_BIN").expect("ENVOY_BIN must point at the Envoy binary (run `make e2e`)")
}

pub fn wasm_path() -> String {
    module_path("APP_METRICS_WASM", "app_metrics.wasm")
}

/// The body-reading build (`make build` makes it beside the lean one).
pub fn bodies_wasm_path() -> String {
    module_path("APP_METRICS_BODIES_WASM", "app_metrics_bodies.wasm")
}

/// A module `make build` made: `$var`, else `file` in the release directory.
fn module_path(var: &str, file: &str) -> String {
    let path = std::env::var(var).unwrap_or_else(|_| {
        format!(
            "{}/target/wasm32-wasip1/release/{file}",
            env!("CARGO_MANIFEST_DIR")
        )
    });
    assert!(
        PathBuf::from(&path).exists(),
        "{path} missing: run `make build`"
    );
    path
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn temp_dir(tag: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "app-metrics-e2e-{}-{}-{tag}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .into()
}

/// Polls `f` until it returns Some, or panics with `what` after `timeout`.
pub fn eventually<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        thread::sleep(Duration::from_millis(100));
    }
}

/// Replaces `<dir>/<name>` atomically (write a temporary file, then rename it over): Envoy's
/// `watched_directory` reacts to the move, and never reads a half-written file.
pub fn push_file(dir: &std::path::Path, name: &str, content: &str) {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, content).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

/// A temporary directory, removed when dropped (kept when the test fails, to look at).
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        TempDir(temp_dir(tag))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
