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
    let path = std::env::var("APP_METRICS_WASM").unwrap_or_else(|_| {
        format!(
            "{}/target/wasm32-wasip1/release/app_metrics.wasm",
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
fn next_base_id() -> u32 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    20_000 + (std::process::id() % 10_000) * 16 + NEXT.fetch_add(1, Ordering::SeqCst) % 16
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
pub struct Cluster {
    pub name: String,
    pub port: u16,
}

/// What to start Envoy with.
pub struct EnvoyOptions {
    pub plugin_config: String,
    pub upstream_port: u16,
    pub concurrency: u32,
    pub extra_clusters: Vec<Cluster>,
}

impl EnvoyOptions {
    pub fn new(plugin_config: &str, upstream_port: u16) -> Self {
        EnvoyOptions {
            plugin_config: plugin_config.to_string(),
            upstream_port,
            concurrency: 2,
            extra_clusters: Vec::new(),
        }
    }
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

/// Cluster `app` (the upstream) and the options' extra clusters.
fn clusters_yaml(opts: &EnvoyOptions) -> String {
    let mut clusters = cluster_yaml("app", opts.upstream_port);
    for c in &opts.extra_clusters {
        clusters.push_str(&cluster_yaml(&c.name, c.port));
    }
    clusters
}

/// Admin on loopback, stats flushed every second (histograms show quickly), and the stats tags
/// of envoy/envoy.yaml: the head of every test bootstrap.
fn admin_and_stats(admin_port: u16) -> String {
    format!(
        r#"admin:
  address:
    socket_address: {{ address: 127.0.0.1, port_value: {admin_port} }}
stats_flush_interval: 1s
stats_config:
  use_all_default_tags: false
  stats_tags:
  - {{ tag_name: handler, regex: "(handler=\\.=(.*?);\\.;)" }}
  - {{ tag_name: method,  regex: "(method=\\.=(.*?);\\.;)" }}
  - {{ tag_name: status,  regex: "(status=\\.=(.*?);\\.;)" }}
  - {{ tag_name: sampler, regex: "(sampler=\\.=(.*?);\\.;)" }}
  - {{ tag_name: reason,  regex: "(reason=\\.=(.*?);\\.;)" }}
  - {{ tag_name: plugin,  regex: "(plugin=\\.=(.*?);\\.;)" }}
"#
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
                upstream_port: opts.upstream_port,
                concurrency: opts.concurrency,
                extra_clusters: Vec::new(),
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
          - match: {{ prefix: "/" }}
            route: {{ cluster: app, timeout: 10s }}
      http_filters:
      - name: envoy.filters.http.wasm
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
        wasm = wasm_path(),
    )
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

/// A response the test upstream sends.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub delay: Duration,
}

impl Reply {
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: body.into(),
            delay: Duration::ZERO,
        }
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
                        let mut response = tiny_http::Response::from_data(reply.body)
                            .with_status_code(reply.status);
                        for (name, value) in &reply.headers {
                            response.add_header(
                                tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes())
                                    .unwrap(),
                            );
                        }
                        let path = url.split('?').next().unwrap_or("").to_string();
                        let _ = request.respond(response);
                        *answered
                            .lock()
                            .unwrap()
                            .entry((method, path, reply.status))
                            .or_default() += 1;
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
        r#"node: {{ id: app-metrics-e2e, cluster: app-metrics-e2e }}
{admin_and_stats}dynamic_resources:
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

/// Replaces `<lds_dir>/lds.yaml` atomically (write a temporary file, then rename it over), the
/// move Envoy's directory watch reacts to.
pub fn push_lds(lds_dir: &std::path::Path, resources: &str) {
    let tmp = lds_dir.join(".lds.yaml.tmp");
    std::fs::write(&tmp, resources).unwrap();
    std::fs::rename(&tmp, lds_dir.join("lds.yaml")).unwrap();
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

/// [`Envoy::start_with_config`] with extra command-line arguments.
pub fn start_with_config_args(
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
