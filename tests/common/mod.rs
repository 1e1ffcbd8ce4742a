//! End-to-end harness: a real Envoy (from the project venv) with the built filter, real
//! upstreams on loopback, real HTTP, and scrapes parsed with prometheus-parse.
//!
//! Needs `ENVOY_BIN` and `APP_METRICS_WASM` (the Makefile's `e2e` target sets both).
#![allow(dead_code)]

use prometheus_parse::{Scrape, Value};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
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

/// Distinct `--base-id` per Envoy: tests run in parallel, and other processes may run Envoys too.
/// 256 per process before one comes back: a test may keep an Envoy for a minute while another
/// starts dozens (a base id still held makes Envoy exit; [`start_with_config_args`] then retries).
fn next_base_id() -> u32 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    20_000 + (std::process::id() % 10_000) * 256 + NEXT.fetch_add(1, Ordering::SeqCst) % 256
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

/// An upstream cluster in the generated bootstrap.
#[derive(Clone)]
pub struct Cluster {
    pub name: String,
    /// Its one endpoint, 127.0.0.1:port (when `eds_dir` is None).
    pub port: u16,
    /// Endpoints by EDS from `<eds_dir>/eds.yaml` instead (written with [`push_eds`]).
    pub eds_dir: Option<PathBuf>,
}

impl Cluster {
    pub fn fixed(name: &str, port: u16) -> Cluster {
        Cluster {
            name: name.to_string(),
            port,
            eds_dir: None,
        }
    }

    /// A cluster whose endpoints come from `<eds_dir>/eds.yaml`, which must exist at start.
    pub fn eds(name: &str, eds_dir: &std::path::Path) -> Cluster {
        Cluster {
            name: name.to_string(),
            port: 0,
            eds_dir: Some(eds_dir.to_path_buf()),
        }
    }
}

/// What to start Envoy with.
#[derive(Clone)]
pub struct EnvoyOptions {
    pub plugin_config: String,
    pub upstream_port: u16,
    pub concurrency: u32,
    pub extra_clusters: Vec<Cluster>,
    /// More cluster entries, as YAML mappings (e.g. with circuit breakers).
    pub raw_clusters: Vec<String>,
    /// Routes tried in order before the catch-all, as YAML mappings (e.g. [`route_yaml`]).
    pub routes: Vec<String>,
    /// The last route, `prefix: "/"` to cluster `app` with a 10 s timeout. Without it a path
    /// that no route matches gets Envoy's own 404.
    pub catch_all: bool,
    /// HTTP filters ahead of the app-metrics filter, as YAML mappings (`name`, `typed_config`).
    pub filters_before: Vec<String>,
    /// The module: the lean build ([`wasm_path`]) unless a test sets another.
    pub wasm: String,
}

impl EnvoyOptions {
    pub fn new(plugin_config: &str, upstream_port: u16) -> Self {
        EnvoyOptions {
            plugin_config: plugin_config.to_string(),
            upstream_port,
            concurrency: 2,
            extra_clusters: Vec::new(),
            raw_clusters: Vec::new(),
            routes: Vec::new(),
            catch_all: true,
            filters_before: Vec::new(),
            wasm: wasm_path(),
        }
    }
}

/// A route sending paths under `prefix` to `cluster`, giving up after `timeout` (`"0.2s"`).
pub fn route_yaml(prefix: &str, cluster: &str, timeout: &str) -> String {
    format!(
        r#"match: {{ prefix: "{prefix}" }}
route: {{ cluster: "{cluster}", timeout: {timeout} }}
"#
    )
}

pub struct Envoy {
    child: Child,
    pub listen_port: u16,
    pub admin_port: u16,
    pub dir: PathBuf,
}

fn indent(text: &str, spaces: usize) -> String {
    let pad = " ".repeat(spaces);
    text.lines().map(|l| format!("{pad}{l}\n")).collect()
}

pub fn cluster_yaml(name: &str, port: u16) -> String {
    format!(
        r#"  - name: "{name}"
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: "{name}"
      endpoints:
      - lb_endpoints:
        - endpoint:
            address:
              socket_address: {{ address: 127.0.0.1, port_value: {port} }}
"#
    )
}

/// A cluster whose endpoints come by EDS from `<dir>/eds.yaml`, watched for moves into `dir`.
pub fn eds_cluster_yaml(name: &str, dir: &std::path::Path) -> String {
    format!(
        r#"  - name: "{name}"
    type: EDS
    connect_timeout: 1s
    eds_cluster_config:
      eds_config:
        resource_api_version: V3
        path_config_source:
          path: "{dir}/eds.yaml"
          watched_directory: {{ path: "{dir}" }}
"#,
        dir = dir.display()
    )
}

/// Replaces the endpoints of EDS cluster `name` (see [`Cluster::eds`]) with 127.0.0.1:`ports`;
/// none leaves the cluster without a host.
pub fn push_eds(dir: &std::path::Path, name: &str, ports: &[u16]) {
    let endpoints: Vec<serde_json::Value> = ports
        .iter()
        .map(|port| {
            serde_json::json!({"endpoint": {"address": {"socket_address": {
                "address": "127.0.0.1", "port_value": port}}}})
        })
        .collect();
    let resources = serde_json::json!({"resources": [{
        "@type": "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment",
        "cluster_name": name,
        "endpoints": [{"lb_endpoints": endpoints}],
    }]});
    push_file(dir, "eds.yaml", &resources.to_string());
}

/// Cluster `app` (the upstream) and the options' extra and raw clusters.
fn clusters_yaml(opts: &EnvoyOptions) -> String {
    let mut clusters = cluster_yaml("app", opts.upstream_port);
    for c in &opts.extra_clusters {
        clusters.push_str(&match &c.eds_dir {
            Some(dir) => eds_cluster_yaml(&c.name, dir),
            None => cluster_yaml(&c.name, c.port),
        });
    }
    for c in &opts.raw_clusters {
        clusters.push_str(&list_item(c, 2));
    }
    clusters
}

/// Label names the tests' configurations give their own labels (`labels`, `counters[].labels`,
/// `http_metrics.labels`): each needs a stats tag in the bootstrap, as `app-metrics check` says.
pub const TEST_LABEL_NAMES: [&str; 4] = ["service", "client", "version", "tier"];

/// A node (file-based xDS needs one), admin on loopback, stats flushed every second (histograms
/// show quickly), and the stats tags of envoy/envoy.yaml plus those of [`TEST_LABEL_NAMES`]: the
/// head of every test bootstrap.
fn admin_and_stats(admin_port: u16) -> String {
    let tags: String = app_metrics::labels::LABEL_NAMES
        .iter()
        .chain(TEST_LABEL_NAMES.iter())
        .map(|name| format!("  - {{ tag_name: {name}, regex: \"({name}=\\\\.=(.*?);\\\\.;)\" }}\n"))
        .collect();
    format!(
        r#"node: {{ id: app-metrics-e2e, cluster: app-metrics-e2e }}
admin:
  address:
    socket_address: {{ address: 127.0.0.1, port_value: {admin_port} }}
stats_flush_interval: 1s
stats_config:
  use_all_default_tags: false
  stats_tags:
{tags}"#
    )
}

/// The test bootstrap: the same filter and stats tags as envoy/envoy.yaml, stats flushed every
/// second so histograms show quickly.
pub fn bootstrap(opts: &EnvoyOptions, listen_port: u16, admin_port: u16) -> String {
    static_bootstrap(
        opts,
        admin_port,
        &list_item(&listener_yaml(opts, listen_port), 2),
    )
}

/// Admin, stats and `listeners` (YAML list items), then the clusters of `opts`.
fn static_bootstrap(opts: &EnvoyOptions, admin_port: u16, listeners: &str) -> String {
    let admin_and_stats = admin_and_stats(admin_port);
    let clusters = clusters_yaml(opts);
    format!(
        r#"{admin_and_stats}static_resources:
  listeners:
{listeners}  clusters:
{clusters}"#
    )
}

/// The app listener (filter under test, then the router to cluster `app`) as a YAML mapping,
/// shared by the static bootstrap and the LDS resource file.
fn listener_yaml(opts: &EnvoyOptions, listen_port: u16) -> String {
    named_listener_yaml(opts, listen_port, "app", "app_metrics")
}

/// A bootstrap with one listener per `(port, plugin name, plugin configuration)`, all with the
/// same `vm_config`: Envoy then runs every plugin in the same VM (one per worker), as it does
/// for plugins of one module sharing a `vm_id`.
pub fn shared_vm_bootstrap(
    opts: &EnvoyOptions,
    admin_port: u16,
    plugins: &[(u16, &str, &str)],
) -> String {
    let listeners: String = plugins
        .iter()
        .map(|(port, name, config)| {
            let opts = EnvoyOptions {
                plugin_config: config.to_string(),
                ..opts.clone()
            };
            let listener = format!("{name}-{port}");
            list_item(&named_listener_yaml(&opts, *port, &listener, name), 2)
        })
        .collect();
    static_bootstrap(opts, admin_port, &listeners)
}

fn named_listener_yaml(
    opts: &EnvoyOptions,
    listen_port: u16,
    listener: &str,
    plugin: &str,
) -> String {
    let filters_before: String = opts
        .filters_before
        .iter()
        .map(|f| list_item(f, 6))
        .collect();
    format!(
        r#"name: {listener}
address:
  socket_address: {{ address: 127.0.0.1, port_value: {listen_port} }}
filter_chains:
- filters:
  - name: envoy.filters.network.http_connection_manager
    typed_config:
      "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
      stat_prefix: app
      route_config:
        virtual_hosts:
        - name: app
          domains: ["*"]
          routes:
{routes}      http_filters:
{filters_before}      - name: envoy.filters.http.wasm
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
          config:
            name: {plugin}
            root_id: app_metrics
            failure_policy: FAIL_OPEN
            configuration:
              "@type": type.googleapis.com/google.protobuf.StringValue
              value: |
{config}            vm_config:
              vm_id: app_metrics
              runtime: envoy.wasm.runtime.v8
              code:
                local: {{ filename: "{wasm}" }}
      - name: envoy.filters.http.router
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
"#,
        config = indent(&opts.plugin_config, 16),
        wasm = opts.wasm,
        routes = routes_yaml(opts),
    )
}

/// The options' routes as the items of `routes:`, then the catch-all.
fn routes_yaml(opts: &EnvoyOptions) -> String {
    let mut routes: String = opts.routes.iter().map(|r| list_item(r, 10)).collect();
    if opts.catch_all {
        routes.push_str(&list_item(&route_yaml("/", "app", "10s"), 10));
    }
    routes
}

/// `yaml` as an item of a YAML list indented by `spaces`.
fn list_item(yaml: &str, spaces: usize) -> String {
    let pad = " ".repeat(spaces);
    yaml.lines()
        .enumerate()
        .map(|(i, l)| {
            if i == 0 {
                format!("{pad}- {l}\n")
            } else {
                format!("{pad}  {l}\n")
            }
        })
        .collect()
}

impl Envoy {
    pub fn start(opts: EnvoyOptions) -> Envoy {
        match Envoy::try_start(opts) {
            Ok(envoy) => envoy,
            Err(log) => panic!("Envoy did not become ready:\n{log}"),
        }
    }

    /// Starts Envoy; `Err(log)` if it exits or is not ready within 30 s.
    pub fn try_start(opts: EnvoyOptions) -> Result<Envoy, String> {
        let listen_port = free_port();
        let admin_port = free_port();
        let config = bootstrap(&opts, listen_port, admin_port);
        Envoy::start_with_config(&config, opts.concurrency, listen_port, admin_port)
    }

    /// Starts Envoy on a complete bootstrap whose ports the caller chose.
    pub fn start_with_config(
        config: &str,
        concurrency: u32,
        listen_port: u16,
        admin_port: u16,
    ) -> Result<Envoy, String> {
        start_with_config_args(config, concurrency, listen_port, admin_port, &[])
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.listen_port)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.admin_port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("envoy.log")).unwrap_or_default()
    }

    /// Waits for the process to exit (for configs Envoy must refuse).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            thread::sleep(Duration::from_millis(100));
        }
        None
    }

    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    pub fn scrape(&self) -> Metrics {
        scrape_url(&self.admin_url("/stats/prometheus"))
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            eprintln!("Envoy log kept in {}", self.dir.display());
        }
    }
}

/// A parsed scrape.
pub struct Metrics {
    pub scrape: Scrape,
    pub text: String,
}

pub fn scrape_url(url: &str) -> Metrics {
    let text = agent()
        .get(url)
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    parse_scrape(text)
}

// prometheus-parse's sample regex (`name{[^}]+}`) skips `name{} 1` and cuts a label value that
// holds a brace, as route templates do (`handler="/users/{user_id}"`). Both are valid exposition
// text, so we hand it an equivalent form: no empty braces, and braces inside quoted values swapped
// for stand-ins that are swapped back after parsing.
const OPEN: char = '\u{2045}';
const CLOSE: char = '\u{2046}';

pub fn parse_scrape(text: String) -> Metrics {
    let normalized: String = text
        .lines()
        .map(|line| {
            let mut out = String::with_capacity(line.len());
            let mut quoted = false;
            for c in line.chars() {
                match c {
                    '"' => quoted = !quoted,
                    '{' if quoted => {
                        out.push(OPEN);
                        continue;
                    }
                    '}' if quoted => {
                        out.push(CLOSE);
                        continue;
                    }
                    _ => {}
                }
                out.push(c);
            }
            out.replacen("{} ", " ", 1) + "\n"
        })
        .collect();
    let scrape = Scrape::parse(normalized.lines().map(|l| Ok(l.to_string()))).unwrap();
    Metrics { scrape, text }
}

/// A label value as exported (the stand-ins swapped back).
fn restore(value: &str) -> String {
    value.replace(OPEN, "{").replace(CLOSE, "}")
}

fn labels_match(sample: &prometheus_parse::Sample, labels: &[(&str, &str)]) -> bool {
    sample.labels.len() == labels.len()
        && labels
            .iter()
            .all(|(k, v)| sample.labels.get(k).map(restore).as_deref() == Some(*v))
}

impl Metrics {
    /// The value of the counter or gauge `name` with exactly `labels`.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.scrape
            .samples
            .iter()
            .find(|s| s.metric == name && labels_match(s, labels))
            .and_then(|s| match s.value {
                Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => Some(v),
                _ => None,
            })
    }

    /// The observation count of histogram `name` with exactly `labels` (its +Inf bucket).
    /// Observations at or below `le` (a cumulative bucket) of one histogram series.
    pub fn histogram_bucket(&self, name: &str, labels: &[(&str, &str)], le: f64) -> Option<f64> {
        self.scrape
            .samples
            .iter()
            .find(|s| s.metric == name && labels_match(s, labels))
            .and_then(|s| match &s.value {
                Value::Histogram(buckets) => {
                    buckets.iter().find(|b| b.less_than == le).map(|b| b.count)
                }
                _ => None,
            })
    }

    /// All observations of one histogram series (its `+Inf` bucket).
    pub fn histogram_count(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.histogram_bucket(name, labels, f64::INFINITY)
    }

    /// Every sample of `name`, as (sorted labels, value).
    pub fn series(&self, name: &str) -> BTreeMap<Vec<(String, String)>, f64> {
        self.scrape
            .samples
            .iter()
            .filter(|s| s.metric == name)
            .filter_map(|s| {
                let v = match s.value {
                    Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
                    Value::Histogram(ref b) => b.iter().find(|b| b.less_than.is_infinite())?.count,
                    _ => return None,
                };
                let mut labels: Vec<(String, String)> = s
                    .labels
                    .iter()
                    .map(|(k, v)| (k.clone(), restore(v)))
                    .collect();
                labels.sort();
                Some((labels, v))
            })
            .collect()
    }

    /// Number of distinct series the filter exports (non-Envoy metrics).
    pub fn filter_series_count(&self) -> usize {
        self.scrape
            .samples
            .iter()
            .filter(|s| !s.metric.starts_with("envoy_"))
            .count()
    }
}

/// Polls the scrape until `name{labels}` equals `want`, then returns the scrape.
pub fn wait_value(envoy: &Envoy, name: &str, labels: &[(&str, &str)], want: f64) -> Metrics {
    let mut last = None;
    let found = (0..100).find_map(|_| {
        let m = envoy.scrape();
        let v = m.value(name, labels);
        if v == Some(want) {
            return Some(m);
        }
        last = v;
        thread::sleep(Duration::from_millis(100));
        None
    });
    found.unwrap_or_else(|| panic!("{name}{labels:?}: want {want}, last seen {last:?}"))
}

/// Polls the scrape until histogram `name{labels}` has `want` observations (histograms show
/// after a stats flush, 1 s in the test bootstraps), then returns the scrape.
pub fn wait_histogram_count(
    envoy: &Envoy,
    name: &str,
    labels: &[(&str, &str)],
    want: f64,
) -> Metrics {
    eventually(Duration::from_secs(15), "histogram flush", || {
        let m = envoy.scrape();
        (m.histogram_count(name, labels) == Some(want)).then_some(m)
    })
}

/// A response the test upstream sends.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub delay: Duration,
    /// Sent with `transfer-encoding: chunked` (no `content-length`) in pieces of this many
    /// bytes, `pause` apart, when set.
    pub chunked: Option<(usize, Duration)>,
}

impl Reply {
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: body.into(),
            delay: Duration::ZERO,
            chunked: None,
        }
    }
    /// JSON with its content type.
    pub fn json(status: u16, body: impl Into<Vec<u8>>) -> Reply {
        Reply::new(status, body).header("content-type", "application/json")
    }
    /// Sent chunked, `piece` bytes at a time, `pause` between pieces.
    pub fn chunked(mut self, piece: usize, pause: Duration) -> Reply {
        self.chunked = Some((piece, pause));
        self
    }
    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }
    pub fn delay(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }
}

/// Responses answered, by (method, path, status).
pub type Tally = Arc<Mutex<BTreeMap<(String, String, u16), u64>>>;

pub type Route = Box<dyn Fn(&str, &str) -> Reply + Send + Sync>;

/// A real HTTP/1.1 upstream on loopback that counts what it answered, by (method, path, status).
pub struct Upstream {
    pub port: u16,
    server: Arc<tiny_http::Server>,
    pub answered: Tally,
    route: Arc<Mutex<Route>>,
    threads: Vec<thread::JoinHandle<()>>,
}

impl Upstream {
    pub fn start(route: impl Fn(&str, &str) -> Reply + Send + Sync + 'static) -> Upstream {
        // tiny_http serves a request per thread at a time; plenty of threads keeps a burst of new
        // connections from waiting behind slow ones.
        Upstream::start_with_threads(16, route)
    }

    pub fn start_with_threads(
        threads: usize,
        route: impl Fn(&str, &str) -> Reply + Send + Sync + 'static,
    ) -> Upstream {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
        let port = server.server_addr().to_ip().unwrap().port();
        let answered: Tally = Arc::default();
        let route: Arc<Mutex<Route>> = Arc::new(Mutex::new(Box::new(route)));
        let handles = (0..threads)
            .map(|_| {
                let (server, answered, route) = (server.clone(), answered.clone(), route.clone());
                thread::spawn(move || {
                    for mut request in server.incoming_requests() {
                        let method = request.method().to_string();
                        let url = request.url().to_string();
                        let mut sink = Vec::new();
                        let _ = request.as_reader().read_to_end(&mut sink);
                        let reply = (route.lock().unwrap())(&method, &url);
                        if !reply.delay.is_zero() {
                            thread::sleep(reply.delay);
                        }
                        let mut response = match reply.chunked {
                            None => tiny_http::Response::from_data(reply.body).boxed(),
                            Some((piece, pause)) => tiny_http::Response::new(
                                reply.status.into(),
                                Vec::new(),
                                Paced::boxed(reply.body, piece, pause),
                                None,
                                None,
                            )
                            .with_chunked_threshold(0)
                            .boxed(),
                        }
                        .with_status_code(reply.status);
                        for (name, value) in &reply.headers {
                            response.add_header(
                                tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes())
                                    .unwrap(),
                            );
                        }
                        let path = url.split('?').next().unwrap_or("").to_string();
                        // Tallied before the answer leaves, so a client that has it can read
                        // the tally at once (a test reading after its request never races).
                        *answered
                            .lock()
                            .unwrap()
                            .entry((method, path, reply.status))
                            .or_default() += 1;
                        let _ = request.respond(response);
                    }
                })
            })
            .collect();
        Upstream {
            port,
            server,
            answered,
            route,
            threads: handles,
        }
    }

    /// Swaps the routing function (e.g. to make the upstream fail, then heal).
    pub fn set_route(&self, route: impl Fn(&str, &str) -> Reply + Send + Sync + 'static) {
        *self.route.lock().unwrap() = Box::new(route);
    }

    pub fn count(&self, method: &str, path: &str, status: u16) -> u64 {
        self.answered
            .lock()
            .unwrap()
            .get(&(method.to_string(), path.to_string(), status))
            .copied()
            .unwrap_or(0)
    }

    /// Requests answered for `path`, any method and status.
    pub fn hits(&self, path: &str) -> u64 {
        self.answered
            .lock()
            .unwrap()
            .iter()
            .filter(|((_, p, _), _)| p == path)
            .map(|(_, n)| n)
            .sum()
    }
}

/// A body read `piece` bytes at a time with a pause between pieces: each reaches the proxy
/// as a chunk of its own.
struct Paced {
    body: Vec<u8>,
    at: usize,
    piece: usize,
    pause: Duration,
}

impl Paced {
    fn boxed(body: Vec<u8>, piece: usize, pause: Duration) -> Box<dyn Read + Send> {
        Box::new(Paced {
            body,
            at: 0,
            piece: piece.max(1),
            pause,
        })
    }
}

impl Read for Paced {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.at > 0 && self.at < self.body.len() {
            thread::sleep(self.pause);
        }
        let end = self.body.len().min(self.at + self.piece.min(buf.len()));
        let n = end - self.at;
        buf[..n].copy_from_slice(&self.body[self.at..end]);
        self.at = end;
        Ok(n)
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.server.unblock();
        for _ in 1..self.threads.len() {
            self.server.unblock();
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Sends one request through Envoy: the status, and whether the upstream made the answer (Envoy
/// adds `x-envoy-upstream-service-time` to those only; its own 503/504s lack it).
pub fn exchange(agent: &ureq::Agent, method: &str, url: &str, body: &str) -> (u16, bool) {
    let request = ureq::http::Request::builder()
        .method(method)
        .uri(url)
        .body(body.to_string())
        .unwrap();
    match agent.run(request) {
        Ok(mut resp) => {
            let _ = resp.body_mut().read_to_vec();
            let from_upstream = resp.headers().contains_key("x-envoy-upstream-service-time");
            (resp.status().as_u16(), from_upstream)
        }
        Err(e) => panic!("{method} {url}: {e}"),
    }
}

/// Sends one request through Envoy and returns the status.
pub fn send(agent: &ureq::Agent, method: &str, url: &str, body: &str) -> u16 {
    exchange(agent, method, url, body).0
}

/// Sends one request with these request headers through Envoy and returns the status.
pub fn send_with(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> u16 {
    let mut request = ureq::http::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    match agent.run(request.body(body.to_string()).unwrap()) {
        Ok(mut resp) => {
            let _ = resp.body_mut().read_to_vec();
            resp.status().as_u16()
        }
        Err(e) => panic!("{method} {url}: {e}"),
    }
}

/// Writes raw HTTP/1.1 bytes (for what clients refuse to send: odd methods, non-UTF-8 paths)
/// and returns the response status, or None if Envoy closed the connection without one.
pub fn raw_request(port: u16, request: &[u8]) -> Option<u16> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request).unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let head = String::from_utf8_lossy(response.get(..response.len().min(64))?);
    head.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

// ---- File-based dynamic listeners (LDS), for hot-reload tests ----

/// The listener of [`bootstrap`] (same HTTP filters, route and plugin configuration) as an LDS
/// resource file, the content of `lds.yaml`.
pub fn lds_resources(opts: &EnvoyOptions, listen_port: u16) -> String {
    format!(
        "resources:\n- \"@type\": type.googleapis.com/envoy.config.listener.v3.Listener\n{}",
        indent(&listener_yaml(opts, listen_port), 2)
    )
}

/// A bootstrap like [`bootstrap`] whose listeners come from `<lds_dir>/lds.yaml`, watched for
/// atomic moves into `lds_dir` (write with [`push_lds`]).
pub fn lds_bootstrap(opts: &EnvoyOptions, admin_port: u16, lds_dir: &std::path::Path) -> String {
    let clusters = clusters_yaml(opts);
    let admin_and_stats = admin_and_stats(admin_port);
    format!(
        r#"{admin_and_stats}dynamic_resources:
  lds_config:
    resource_api_version: V3
    path_config_source:
      path: "{dir}/lds.yaml"
      watched_directory: {{ path: "{dir}" }}
static_resources:
  clusters:
{clusters}"#,
        dir = lds_dir.display(),
    )
}

/// Replaces `<lds_dir>/lds.yaml` atomically, the move Envoy's directory watch reacts to.
pub fn push_lds(lds_dir: &std::path::Path, resources: &str) {
    push_file(lds_dir, "lds.yaml", resources);
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

/// Starts Envoy on file-based LDS: the listener of `opts` in `<lds_dir>/lds.yaml`, with extra
/// command-line arguments (e.g. `["--drain-time-s", "1"]`). Its `listen_port` is the listener's.
pub fn start_lds(
    opts: &EnvoyOptions,
    lds_dir: &std::path::Path,
    extra_args: &[&str],
) -> Result<Envoy, String> {
    let (listen_port, admin_port) = (free_port(), free_port());
    push_lds(lds_dir, &lds_resources(opts, listen_port));
    let config = lds_bootstrap(opts, admin_port, lds_dir);
    start_with_config_args(
        &config,
        opts.concurrency,
        listen_port,
        admin_port,
        extra_args,
    )
}

/// [`Envoy::start_with_config`] with extra command-line arguments. A base id another Envoy
/// (of any process) still holds is the harness's problem, not the test's: tried again with the
/// next one.
pub fn start_with_config_args(
    config: &str,
    concurrency: u32,
    listen_port: u16,
    admin_port: u16,
    extra_args: &[&str],
) -> Result<Envoy, String> {
    let mut attempt = 0;
    loop {
        match start_once(config, concurrency, listen_port, admin_port, extra_args) {
            Err(log)
                if log.contains("unable to bind domain socket with base_id") && attempt < 5 =>
            {
                attempt += 1;
            }
            outcome => return outcome,
        }
    }
}

fn start_once(
    config: &str,
    concurrency: u32,
    listen_port: u16,
    admin_port: u16,
    extra_args: &[&str],
) -> Result<Envoy, String> {
    let dir = temp_dir("envoy");
    let config_path = dir.join("envoy.yaml");
    std::fs::write(&config_path, config).unwrap();
    let log = std::fs::File::create(dir.join("envoy.log")).unwrap();
    let child = Command::new(envoy_bin())
        .arg("-c")
        .arg(&config_path)
        .args(["--concurrency", &concurrency.to_string()])
        .args(["--base-id", &next_base_id().to_string()])
        .args(["--log-level", "info"])
        .args(extra_args)
        .current_dir(repo_root())
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("spawn envoy");
    let mut envoy = Envoy {
        child,
        listen_port,
        admin_port,
        dir,
    };
    let start = Instant::now();
    loop {
        if let Ok(Some(status)) = envoy.child.try_wait() {
            return Err(format!("envoy exited with {status}\n{}", envoy.log()));
        }
        if let Ok(mut resp) = agent().get(&envoy.admin_url("/ready")).call() {
            if resp.status() == 200
                && resp.body_mut().read_to_string().unwrap_or_default().trim() == "LIVE"
            {
                return Ok(envoy);
            }
        }
        if start.elapsed() > Duration::from_secs(30) {
            return Err(format!("not ready after 30 s\n{}", envoy.log()));
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// A counter or gauge from the admin API's `/stats` text (e.g. `listener_manager.lds.update_rejected`).
pub fn admin_stat(envoy: &Envoy, name: &str) -> Option<u64> {
    let text = agent()
        .get(&envoy.admin_url(&format!("/stats?filter=^{name}$")))
        .call()
        .ok()?
        .body_mut()
        .read_to_string()
        .ok()?;
    text.lines().find_map(|l| {
        l.strip_prefix(name)?
            .strip_prefix(": ")?
            .trim()
            .parse()
            .ok()
    })
}

/// Gives the tiny_http upstream `n` idle threads for a burst of new connections. tiny_http serves
/// each connection on a pooled thread, and when connections arrive together while fewer threads
/// are idle than connections, the extra ones wait in a queue until some connection closes; Envoy
/// keeps its upstream connections open, so such a request waits for Envoy's 10 s route timeout
/// and becomes Envoy's own 504. Here: `n` keep-alive connections opened one after the other (each
/// served before the next, so each gets a thread of its own), then all closed: `n` threads are
/// idle for the next 5 s (then tiny_http retires them). The requests are not tallied.
pub fn prewarm_upstream(upstream: &Upstream, n: usize) {
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        let Ok(mut c) = std::net::TcpStream::connect(("127.0.0.1", upstream.port)) else {
            break;
        };
        let _ = c.set_read_timeout(Some(Duration::from_secs(2)));
        if c.write_all(b"GET /warm HTTP/1.1\r\nhost: app\r\n\r\n")
            .is_err()
        {
            break;
        }
        let mut got = Vec::new();
        let mut buf = [0u8; 256];
        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
            match c.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(k) => got.extend_from_slice(&buf[..k]),
            }
        }
        conns.push(c);
    }
    let opened = conns.len() as u64;
    drop(conns);
    eventually(Duration::from_secs(5), "warm-up tallied", || {
        (upstream.hits("/warm") >= opened).then_some(())
    });
    upstream.answered.lock().unwrap().clear();
}

// ---- Istio as it is: a sidecar's stats (Istio 1.30's bootstrap) and WasmPlugins by ECDS ----

/// The names Istio delivers a WasmPlugin under (istiod's xDS, read from Istio's source).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IstioRelease {
    /// Up to 1.29: ECDS resource `extensions.istio.io/wasmplugin/<ns>.<name>`, Wasm
    /// `config.name` `<ns>.<name>`.
    WasmPlugin129,
    /// From 1.30 every WasmPlugin is translated to a TrafficExtension: resource
    /// `extensions.istio.io/trafficextension/<ns>.<name>~istio-translated-wasmplugin`, the same
    /// suffix on `config.name`.
    TrafficExtension130,
}

pub const ISTIO_RELEASES: [IstioRelease; 2] = [
    IstioRelease::WasmPlugin129,
    IstioRelease::TrafficExtension130,
];

/// One WasmPlugin as a sidecar receives it.
#[derive(Clone, Debug)]
pub struct IstioPlugin {
    pub namespace: String,
    pub name: String,
    pub release: IstioRelease,
    /// The WasmPlugin's `pluginName`: Istio makes it the `root_id`.
    pub plugin_name: String,
}

impl IstioPlugin {
    pub fn new(namespace: &str, name: &str, release: IstioRelease) -> IstioPlugin {
        IstioPlugin {
            namespace: namespace.to_string(),
            name: name.to_string(),
            release,
            plugin_name: "app_metrics".to_string(),
        }
    }

    /// The ECDS resource name, which is also the HTTP filter's name.
    pub fn resource_name(&self) -> String {
        match self.release {
            IstioRelease::WasmPlugin129 => format!(
                "extensions.istio.io/wasmplugin/{}.{}",
                self.namespace, self.name
            ),
            IstioRelease::TrafficExtension130 => format!(
                "extensions.istio.io/trafficextension/{}.{}~istio-translated-wasmplugin",
                self.namespace, self.name
            ),
        }
    }

    /// The Wasm plugin's `config.name`: the plugin name the filter sees.
    pub fn config_name(&self) -> String {
        match self.release {
            IstioRelease::WasmPlugin129 => format!("{}.{}", self.namespace, self.name),
            IstioRelease::TrafficExtension130 => {
                format!(
                    "{}.{}~istio-translated-wasmplugin",
                    self.namespace, self.name
                )
            }
        }
    }
}

/// `pluginConfig` as the JSON text Istio hands the filter: a protobuf Struct printed by
/// protojson, compact, keys sorted, every number a double (integral ones print as integers).
pub fn istio_plugin_config(config: &serde_json::Value) -> String {
    fn doubles(v: &serde_json::Value) -> serde_json::Value {
        use serde_json::Value as V;
        match v {
            V::Number(n) => {
                let d = n.as_f64().unwrap();
                if d.fract() == 0.0 && d.abs() < 1e15 {
                    V::from(d as i64)
                } else {
                    V::from(d)
                }
            }
            V::Array(items) => V::Array(items.iter().map(doubles).collect()),
            V::Object(map) => V::Object(map.iter().map(|(k, v)| (k.clone(), doubles(v))).collect()),
            other => other.clone(),
        }
    }
    // serde_json's map (no `preserve_order`) is sorted by key, as protojson prints a Struct.
    doubles(config).to_string()
}

/// The WasmPlugin in the shipped `istio/wasmplugin.yaml`, as JSON.
pub fn shipped_wasmplugin() -> serde_json::Value {
    use serde::Deserialize;
    let text = std::fs::read_to_string(repo_root().join("istio/wasmplugin.yaml")).unwrap();
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let value = serde_json::to_value(serde_yaml::Value::deserialize(doc).unwrap()).unwrap();
        if value["kind"] == "WasmPlugin" {
            return value;
        }
    }
    panic!("no WasmPlugin in istio/wasmplugin.yaml");
}

/// Istio 1.30's sidecar `stats_config`: its tag regexes in its order, with one
/// `(NAME=\.=(.*?);\.;)` per `extraStatTags` entry (every label the filter emits,
/// `app_metrics::labels::LABEL_NAMES`) where Istio puts them, and its default inclusion list.
/// Envoy applies the regexes in order to each stat name, each removing what it captured.
pub fn istio_stats_config() -> serde_json::Value {
    let tag = |name: &str, regex: &str| serde_json::json!({"tag_name": name, "regex": regex});
    let mut tags = vec![
        tag("cluster_name", r"^cluster(\.(.+);)"),
        tag(
            "http_conn_manager_prefix",
            r"^http\.(((?:[_.[:digit:]\w]*|[_\[\]aAbBcCdDeEfF[:digit:]\w\:]*));\.)",
        ),
        tag("thread_name", r"^server(\.(.+))\.watchdog"),
        tag("tcp_prefix", r"^tcp\.((.*?)\.)\w+?$"),
        tag("response_code", r"_rq(_(\d{3}))$"),
        tag("response_code_class", r"_rq(_(\dxx))$"),
        tag(
            "http_conn_manager_listener_prefix",
            r"^listener(?=\.).*?\.http\.(((?:[_.[:digit:]]*|[_\[\]aAbBcCdDeEfF[:digit:]]*))\.)",
        ),
        tag(
            "listener_address",
            r"^listener\.(((?:[_.[:digit:]]*|[_\[\]aAbBcCdDeEfF[:digit:]]*))\.)",
        ),
        tag(
            "mongo_prefix",
            r"^mongo\.(.+?)\.(collection|cmd|cx_|op_|delays_|decoding_)(.*?)$",
        ),
    ];
    for name in app_metrics::labels::LABEL_NAMES {
        tags.push(tag(name, &format!(r"({name}=\.=(.*?);\.;)")));
    }
    tags.extend([
        tag("cache", r"(cache\.(.+?)\.)"),
        tag("component", r"(component\.(.+?)\.)"),
        tag("tag", r"(tag\.(.+?);\.)"),
        tag("wasm_filter", r"(wasm_filter\.(.+?)\.)"),
        tag("authz_enforce_result", r"rbac(\.(allowed|denied))"),
        tag("authz_dry_run_action", r"(\.istio_dry_run_(allow|deny)_)"),
        tag("authz_dry_run_result", r"(\.shadow_(allowed|denied))"),
    ]);
    // pkg/bootstrap/config.go: "reporter=" and the required prefixes, suffixes and regex, then
    // the template's own "component" and "istio".
    let prefix = |p: &str| serde_json::json!({ "prefix": p });
    let suffix = |s: &str| serde_json::json!({ "suffix": s });
    let mut patterns: Vec<serde_json::Value> = [
        "reporter=",
        "cluster_manager",
        "listener_manager",
        "server",
        "cluster.xds-grpc",
        "wasm",
    ]
    .iter()
    .map(|p| prefix(p))
    .collect();
    patterns.extend(
        [
            "rbac.allowed",
            "rbac.denied",
            "shadow_allowed",
            "shadow_denied",
            "downstream_cx_active",
        ]
        .iter()
        .map(|s| suffix(s)),
    );
    patterns.push(serde_json::json!({"safe_regex": {"regex": r"vhost\..*\.route\..*"}}));
    patterns.extend([prefix("component"), prefix("istio")]);
    serde_json::json!({
        "use_all_default_tags": false,
        "stats_tags": tags,
        "stats_matcher": {"inclusion_list": {"patterns": patterns}},
    })
}

const WASM_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm";

/// The ECDS resource file for `plugin` with `plugin_config` (the JSON text of
/// [`istio_plugin_config`]): the `Wasm` filter config istiod sends, the module loaded from the
/// local file istio-agent would have fetched. No `vm_id`: Istio sets none.
pub fn ecds_resources(plugin: &IstioPlugin, plugin_config: &str, version: u32) -> String {
    serde_json::json!({
        "version_info": version.to_string(),
        "resources": [{
            "@type": "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig",
            "name": plugin.resource_name(),
            "typed_config": {
                "@type": WASM_TYPE,
                "config": {
                    "name": plugin.config_name(),
                    "root_id": plugin.plugin_name,
                    "configuration": {
                        "@type": "type.googleapis.com/google.protobuf.StringValue",
                        "value": plugin_config,
                    },
                    "failure_policy": "FAIL_OPEN",
                    "vm_config": {
                        "runtime": "envoy.wasm.runtime.v8",
                        "code": {"local": {"filename": wasm_path()}},
                        "environment_variables": {},
                    },
                },
            },
        }],
    })
    .to_string()
}

/// A sidecar-like Envoy: Istio 1.30's stats_config, an inbound listener whose HTTP filters are
/// the plugins, each by ECDS (`config_discovery`, no default config, as istiod configures it;
/// here from a watched file per plugin), then the router to `inbound|8000||` (the app).
pub struct IstioSidecar {
    pub envoy: Envoy,
    pub plugins: Vec<IstioPlugin>,
    ecds_dir: TempDir,
    version: AtomicU32,
}

impl IstioSidecar {
    /// Starts the sidecar with each plugin's first configuration (pluginConfig as JSON) already
    /// delivered, as for a new pod. `clusters` are more upstream clusters (e.g. the samplers').
    pub fn start(
        plugins: &[(IstioPlugin, &serde_json::Value)],
        app_port: u16,
        clusters: &[(String, u16)],
        concurrency: u32,
    ) -> IstioSidecar {
        let ecds_dir = TempDir::new("ecds");
        let sidecar_plugins: Vec<IstioPlugin> = plugins.iter().map(|(p, _)| p.clone()).collect();
        for (i, (plugin, config)) in plugins.iter().enumerate() {
            let dir = ecds_dir.0.join(i.to_string());
            std::fs::create_dir_all(&dir).unwrap();
            push_file(
                &dir,
                "ecds.yaml",
                &ecds_resources(plugin, &istio_plugin_config(config), 1),
            );
        }
        let (listen, admin) = (free_port(), free_port());
        let config = istio_sidecar_bootstrap(
            &sidecar_plugins,
            &ecds_dir.0,
            app_port,
            clusters,
            listen,
            admin,
        );
        let envoy = start_with_config_args(&config, concurrency, listen, admin, &[])
            .unwrap_or_else(|log| panic!("{log}"));
        IstioSidecar {
            envoy,
            plugins: sidecar_plugins,
            ecds_dir,
            version: AtomicU32::new(1),
        }
    }

    /// Pushes a new pluginConfig for plugin `i`, as istiod does on a WasmPlugin change.
    pub fn deliver(&self, i: usize, config: &serde_json::Value) {
        self.deliver_text(i, &istio_plugin_config(config));
    }

    /// Pushes plugin `i`'s configuration as this exact text.
    pub fn deliver_text(&self, i: usize, plugin_config: &str) {
        let version = self.version.fetch_add(1, Ordering::SeqCst) + 1;
        push_file(
            &self.ecds_dir.0.join(i.to_string()),
            "ecds.yaml",
            &ecds_resources(&self.plugins[i], plugin_config, version),
        );
    }
}

/// The bootstrap of [`IstioSidecar`] (JSON, which Envoy reads as YAML).
pub fn istio_sidecar_bootstrap(
    plugins: &[IstioPlugin],
    ecds_dir: &std::path::Path,
    app_port: u16,
    clusters: &[(String, u16)],
    listen: u16,
    admin: u16,
) -> String {
    let mut http_filters: Vec<serde_json::Value> = plugins
        .iter()
        .enumerate()
        .map(|(i, plugin)| {
            let dir = ecds_dir.join(i.to_string());
            serde_json::json!({
                "name": plugin.resource_name(),
                "config_discovery": {
                    "config_source": {
                        "path_config_source": {
                            "path": dir.join("ecds.yaml"),
                            "watched_directory": {"path": dir},
                        },
                        "initial_fetch_timeout": "0s",
                        "resource_api_version": "V3",
                    },
                    "type_urls": [
                        WASM_TYPE,
                        "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC",
                    ],
                },
            })
        })
        .collect();
    http_filters.push(serde_json::json!({
        "name": "envoy.filters.http.router",
        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
    }));
    let socket = |port: u16| serde_json::json!({"socket_address": {"address": "127.0.0.1", "port_value": port}});
    let mut all_clusters = vec![("inbound|8000||".to_string(), app_port)];
    all_clusters.extend(clusters.iter().cloned());
    let clusters: Vec<serde_json::Value> = all_clusters
        .iter()
        .map(|(name, port)| {
            serde_json::json!({
                "name": name,
                // Istio's stat name for a cluster ends in ';' (its cluster_name regex needs it).
                "alt_stat_name": format!("{name};"),
                "type": "STATIC",
                "connect_timeout": "1s",
                "load_assignment": {
                    "cluster_name": name,
                    "endpoints": [{"lb_endpoints": [{"endpoint": {"address": socket(*port)}}]}],
                },
            })
        })
        .collect();
    serde_json::json!({
        "node": {
            "id": "sidecar~10.0.0.7~k8s-sample-api-5d9c7b-abcde.default~default.svc.cluster.local",
            "cluster": "k8s-sample-api.default",
        },
        "admin": {"address": socket(admin)},
        "stats_flush_interval": "1s",
        "stats_config": istio_stats_config(),
        "static_resources": {
            "listeners": [{
                "name": "virtualInbound",
                "address": socket(listen),
                "filter_chains": [{"filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                        "stat_prefix": "inbound_0.0.0.0_8000;",
                        "route_config": {
                            "name": "inbound|8000||",
                            "virtual_hosts": [{
                                "name": "inbound|http|8000",
                                "domains": ["*"],
                                "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "inbound|8000||", "timeout": "10s"}}],
                            }],
                        },
                        "http_filters": http_filters,
                    },
                }]}],
            }],
            "clusters": clusters,
        },
    })
    .to_string()
}
