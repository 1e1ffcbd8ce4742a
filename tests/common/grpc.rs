//! gRPC end to end: the Python gRPC server (`tests/grpc/server.py`, grpcio with
//! py-grpc-prometheus as the in-app reference), the client (`tests/grpc/client.py`: grpcio over
//! HTTP/2, grpc-web and raw POSTs over HTTP/1.1), and Envoy in front of it: `grpc_web` filter,
//! the app-metrics filter, router; HTTP/2 to the server; `:authority` [`DOWN_AUTHORITY`] routed
//! to a port where nothing listens.

use super::bootstrap::*;
use super::envoy::*;
use super::scrape::*;
use super::upstream::{Reply, Upstream};
use super::*;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Requests with this `:authority` go to a cluster whose port has nothing listening.
pub const DOWN_AUTHORITY: &str = "down.test";
/// Requests with this `:authority` go to a plain HTTP/1.1 upstream (not gRPC: no grpc-status)
/// that answers each path with the status [`PLAIN_STATUS`] gives it (401 for any other).
pub const PLAIN_AUTHORITY: &str = "plain.test";
pub const PLAIN_STATUS: [(&str, u16); 5] = [
    ("/shop.v1.Cart/Add", 404),
    ("/shop.v1.Cart/Get", 503),
    ("/shop.v1.Cart/Watch", 403),
    ("/shop.v1.Cart/Upload", 400),
    ("/shop.v1.Cart/Chat", 500),
];

/// grpc-go's label values (go-grpc-middleware `providers/prometheus`) for each status code,
/// by number; grpc's Python names (py-grpc-prometheus's spelling) beside them.
pub const CODES: [(&str, &str); 17] = [
    ("OK", "OK"),
    ("CANCELLED", "Canceled"),
    ("UNKNOWN", "Unknown"),
    ("INVALID_ARGUMENT", "InvalidArgument"),
    ("DEADLINE_EXCEEDED", "DeadlineExceeded"),
    ("NOT_FOUND", "NotFound"),
    ("ALREADY_EXISTS", "AlreadyExists"),
    ("PERMISSION_DENIED", "PermissionDenied"),
    ("RESOURCE_EXHAUSTED", "ResourceExhausted"),
    ("FAILED_PRECONDITION", "FailedPrecondition"),
    ("ABORTED", "Aborted"),
    ("OUT_OF_RANGE", "OutOfRange"),
    ("UNIMPLEMENTED", "Unimplemented"),
    ("INTERNAL", "Internal"),
    ("UNAVAILABLE", "Unavailable"),
    ("DATA_LOSS", "DataLoss"),
    ("UNAUTHENTICATED", "Unauthenticated"),
];

/// py-grpc-prometheus's `grpc_type` values and grpc-go's.
const TYPES: [(&str, &str); 4] = [
    ("UNARY", "unary"),
    ("CLIENT_STREAMING", "client_stream"),
    ("SERVER_STREAMING", "server_stream"),
    ("BIDI_STREAMING", "bidi_stream"),
];

/// A code as grpc-go spells it, from Python's name (`NOT_FOUND` → `NotFound`).
pub fn go_code(python: &str) -> &'static str {
    CODES
        .iter()
        .find(|(p, _)| *p == python)
        .map(|(_, go)| *go)
        .unwrap_or_else(|| panic!("unknown status code {python}"))
}

fn go_type(python: &str) -> &'static str {
    TYPES
        .iter()
        .find(|(p, _)| *p == python)
        .map(|(_, go)| *go)
        .unwrap_or_else(|| panic!("unknown grpc_type {python}"))
}

/// The project venv's Python (`make venv` installs grpcio and py-grpc-prometheus there).
pub fn venv_python() -> PathBuf {
    let python = repo_root().join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} missing: run `make venv`",
        python.display()
    );
    python
}

fn script(name: &str) -> PathBuf {
    repo_root().join("tests/grpc").join(name)
}

/// `tests/grpc/server.py` on free ports; killed when dropped.
pub struct GrpcServer {
    child: Child,
    pub port: u16,
    pub metrics_port: u16,
}

impl GrpcServer {
    pub fn start() -> GrpcServer {
        let (port, metrics_port) = (free_port(), free_port());
        let mut child = Command::new(venv_python())
            .arg(script("server.py"))
            .args(["--port", &port.to_string()])
            .args(["--metrics-port", &metrics_port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn tests/grpc/server.py");
        let mut line = String::new();
        let read = BufReader::new(child.stdout.take().unwrap()).read_line(&mut line);
        if !matches!(read, Ok(n) if n > 0 && line.starts_with("ready")) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("gRPC server did not start: {read:?} {line:?}");
        }
        GrpcServer {
            child,
            port,
            metrics_port,
        }
    }

    /// py-grpc-prometheus's series of `name`, in grpc-go's spelling (see [`grpc_series`]).
    pub fn reference(&self, name: &str) -> GrpcSeries {
        let m = scrape_url(&format!("http://127.0.0.1:{}/metrics", self.metrics_port));
        grpc_series(&m, name)
            .into_iter()
            .map(|((t, s, meth, code), v)| {
                let code = if code.is_empty() {
                    code
                } else {
                    go_code(&code).to_string()
                };
                ((go_type(&t).to_string(), s, meth, code), v)
            })
            .collect()
    }
}

impl Drop for GrpcServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One call for `tests/grpc/client.py` (its docstring says what each field does).
#[derive(Clone)]
pub struct Call(serde_json::Value);

impl Call {
    fn new(kind: &str, method: &str, messages: &[&str]) -> Call {
        Call(serde_json::json!({"type": kind, "method": method, "messages": messages}))
    }
    pub fn unary(method: &str, message: &str) -> Call {
        Call::new("unary", method, &[message])
    }
    pub fn server_stream(method: &str, message: &str) -> Call {
        Call::new("server_stream", method, &[message])
    }
    pub fn client_stream(method: &str, messages: &[&str]) -> Call {
        Call::new("client_stream", method, messages)
    }
    pub fn bidi_stream(method: &str, messages: &[&str]) -> Call {
        Call::new("bidi_stream", method, messages)
    }
    /// grpc-web over HTTP/1.1 (`application/grpc-web+proto`, the messages framed).
    pub fn web(method: &str, message: &str) -> Call {
        Call::new("web", method, &[message])
    }
    /// One framed message POSTed over HTTP/1.1 with any content type.
    pub fn raw(method: &str, content_type: &str, message: &str) -> Call {
        let mut call = Call::new("raw", method, &[message]);
        call.0["content_type"] = content_type.into();
        call
    }
    pub fn timeout_ms(mut self, ms: u64) -> Call {
        self.0["timeout_ms"] = ms.into();
        self
    }
    pub fn authority(mut self, authority: &str) -> Call {
        self.0["authority"] = authority.into();
        self
    }
    pub fn repeat(mut self, n: u32) -> Call {
        self.0["repeat"] = n.into();
        self
    }
}

/// What the client saw of one call.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub method: String,
    /// grpc's Python name (`NOT_FOUND`); None if the answer carried no status at all.
    pub code: Option<String>,
    pub details: String,
    /// Messages received.
    pub replies: u64,
    /// grpc-web and raw calls: `headers` (trailers-only answer), `trailer-frame`, or None.
    pub status_in: Option<String>,
    pub http_status: Option<u16>,
}

/// Runs `calls` through `address` (`127.0.0.1:port`), one outcome per call made, in order.
pub fn run_client(address: &str, calls: &[Call]) -> Vec<Outcome> {
    let list = serde_json::Value::Array(calls.iter().map(|c| c.0.clone()).collect());
    let mut child = Command::new(venv_python())
        .arg(script("client.py"))
        .arg(address)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run tests/grpc/client.py");
    // The list on stdin: an argument is limited to 128 KiB, a test's messages may be larger.
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(list.to_string().as_bytes()).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "client.py failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let text = |k: &str| v[k].as_str().map(str::to_string);
            Outcome {
                method: text("method").unwrap_or_default(),
                code: text("code"),
                details: text("details").unwrap_or_default(),
                replies: v["replies"].as_u64().unwrap_or(0),
                status_in: text("status_in"),
                http_status: v["http_status"].as_u64().map(|s| s as u16),
            }
        })
        .collect()
}

/// Envoy with `wasm` (configuration `config`) in front of `server`: `grpc_web` filter first,
/// then the app-metrics filter, then the router; HTTP/2 to the server (cluster `grpc`);
/// [`DOWN_AUTHORITY`] to cluster `grpc_down`, a closed port; [`PLAIN_AUTHORITY`] to cluster
/// `app`, HTTP/1.1 to `plain_port`. `grpc-timeout` reaches the server, as in a real mesh.
pub fn grpc_envoy_options(
    config: &str,
    wasm: &str,
    server: &GrpcServer,
    plain_port: u16,
) -> EnvoyOptions {
    let mut opts = EnvoyOptions::new(config, plain_port);
    opts.wasm = wasm.to_string();
    opts.catch_all = false;
    opts.filters_before = vec![r#"name: envoy.filters.http.grpc_web
typed_config:
  "@type": type.googleapis.com/envoy.extensions.filters.http.grpc_web.v3.GrpcWeb
"#
    .to_string()];
    opts.raw_clusters = vec![
        h2_cluster_yaml("grpc", server.port),
        h2_cluster_yaml("grpc_down", free_port()),
    ];
    opts.routes = vec![
        format!(
            r#"match: {{ prefix: "/", headers: [{{ name: ":authority", string_match: {{ exact: "{DOWN_AUTHORITY}" }} }}] }}
route: {{ cluster: grpc_down, timeout: 30s }}
"#
        ),
        format!(
            r#"match: {{ prefix: "/", headers: [{{ name: ":authority", string_match: {{ exact: "{PLAIN_AUTHORITY}" }} }}] }}
route: {{ cluster: app, timeout: 30s }}
"#
        ),
        r#"match: { prefix: "/" }
route: { cluster: grpc, timeout: 30s }
"#
        .to_string(),
    ];
    opts
}

/// A cluster (YAML mapping) speaking HTTP/2 without TLS to 127.0.0.1:`port`.
pub fn h2_cluster_yaml(name: &str, port: u16) -> String {
    explicit_cluster_yaml(name, port, "http2_protocol_options: {}")
}

/// A cluster (YAML mapping) to 127.0.0.1:`port` with these explicit HTTP protocol options
/// (`http2_protocol_options: {}`, `http_protocol_options: { enable_trailers: true }`).
pub fn explicit_cluster_yaml(name: &str, port: u16, protocol_options: &str) -> String {
    format!(
        r#"name: {name}
type: STATIC
connect_timeout: 1s
typed_extension_protocol_options:
  envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
    "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
    explicit_http_config:
      {protocol_options}
load_assignment:
  cluster_name: {name}
  endpoints:
  - lb_endpoints:
    - endpoint:
        address:
          socket_address: {{ address: 127.0.0.1, port_value: {port} }}
"#
    )
}

/// The gRPC server, the plain upstream, and Envoy in front of them.
pub struct GrpcSetup {
    // Envoy first: dropped before the servers it forwards to.
    pub envoy: Envoy,
    pub server: GrpcServer,
    pub plain: Upstream,
}

impl GrpcSetup {
    /// The proxy carries the stats tags of the filter's labels only, as `app-metrics check`
    /// prints them for these configurations (which have no labels of their own).
    pub fn start(config: &str, wasm: &str) -> GrpcSetup {
        GrpcSetup::start_with_tags(config, wasm, false)
    }

    /// With `test_label_tags`, the proxy also carries the tags of the harness's own label names
    /// (`TEST_LABEL_NAMES`: `service`, ...), as a proxy whose other plugins use such labels does.
    pub fn start_with_tags(config: &str, wasm: &str, test_label_tags: bool) -> GrpcSetup {
        let server = GrpcServer::start();
        let plain = Upstream::start(|_, path| {
            let status = PLAIN_STATUS.iter().find(|(p, _)| *p == path);
            Reply::new(status.map_or(401, |(_, s)| *s), "not a gRPC server")
        });
        let opts = grpc_envoy_options(config, wasm, &server, plain.port);
        let (listen_port, admin_port) = (free_port(), free_port());
        let mut yaml = bootstrap(&opts, listen_port, admin_port);
        if !test_label_tags {
            yaml = yaml
                .lines()
                .filter(|l| {
                    !TEST_LABEL_NAMES
                        .iter()
                        .any(|n| l.contains(&format!("tag_name: {n},")))
                })
                .map(|l| format!("{l}\n"))
                .collect();
        }
        let envoy = Envoy::start_with_config(&yaml, opts.concurrency, listen_port, admin_port)
            .unwrap_or_else(|log| panic!("Envoy did not become ready:\n{log}"));
        GrpcSetup {
            envoy,
            server,
            plain,
        }
    }

    /// Runs `calls` through Envoy.
    pub fn call(&self, calls: &[Call]) -> Vec<Outcome> {
        run_client(&format!("127.0.0.1:{}", self.envoy.listen_port), calls)
    }
}

/// A gRPC series key: (grpc_type, grpc_service, grpc_method, grpc_code or "" for the metrics
/// without a code).
pub type GrpcKey = (String, String, String, String);
pub type GrpcSeries = BTreeMap<GrpcKey, f64>;

/// The non-zero series of `name` (a histogram: its observation count). A series with a label
/// other than the grpc ones and `method="POST"` fails the test: the contract has no others
/// here. The filter writes `method="POST"` ahead of the gRPC labels (docs/grpc.md: Envoy's
/// `method` tag regex would otherwise match inside `grpc_method=.=`). Zero series are left out:
/// a series declared ahead of its first use reads 0, and is no observation.
pub fn grpc_series(m: &Metrics, name: &str) -> GrpcSeries {
    m.series(name)
        .into_iter()
        .filter(|(_, v)| *v != 0.0)
        .map(|(labels, v)| {
            let get = |k: &str| {
                labels
                    .iter()
                    .find(|(name, _)| name == k)
                    .map(|(_, v)| v.clone())
            };
            let known = labels.iter().all(|(k, v)| {
                app_metrics::names::GRPC_LABEL_NAMES.contains(&k.as_str())
                    || (k == "method" && v == "POST")
            });
            assert!(known, "{name}: unexpected labels {labels:?}");
            let key = (
                get("grpc_type").unwrap_or_default(),
                get("grpc_service").unwrap_or_default(),
                get("grpc_method").unwrap_or_default(),
                get("grpc_code").unwrap_or_default(),
            );
            (key, v)
        })
        .collect()
}

/// A [`GrpcSeries`] from `(type, service, method, code, value)` rows (code "" where none).
pub fn series_of(rows: &[(&str, &str, &str, &str, f64)]) -> GrpcSeries {
    rows.iter()
        .map(|(t, s, m, c, v)| {
            (
                (t.to_string(), s.to_string(), m.to_string(), c.to_string()),
                *v,
            )
        })
        .collect()
}

/// Polls Envoy's scrape until the series of `name` are `want` (histograms: 15 s, the stats
/// flush), then asserts them (the failure shows both).
pub fn wait_grpc_series(envoy: &Envoy, name: &str, want: &GrpcSeries) {
    let start = Instant::now();
    loop {
        let got = grpc_series(&envoy.scrape(), name);
        if &got == want || start.elapsed() > Duration::from_secs(15) {
            assert_eq!(&got, want, "{name} in Envoy's scrape");
            return;
        }
        thread::sleep(Duration::from_millis(200));
    }
}

/// Polls the in-app reference until the series of `name` are `want`, then asserts them.
pub fn wait_reference(server: &GrpcServer, name: &str, want: &GrpcSeries) {
    let start = Instant::now();
    loop {
        let got = server.reference(name);
        if &got == want || start.elapsed() > Duration::from_secs(10) {
            assert_eq!(&got, want, "{name} in py-grpc-prometheus's scrape");
            return;
        }
        thread::sleep(Duration::from_millis(200));
    }
}
