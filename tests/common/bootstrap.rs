//! The YAML Envoy starts on: the test bootstrap (listener with the filter under test, clusters,
//! routes, stats tags), its listener as an LDS resource file, and EDS endpoint files.

use super::*;
use std::path::PathBuf;

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
    /// More HttpConnectionManager fields, as YAML lines (e.g.
    /// `http_protocol_options: { enable_trailers: true }`: Envoy drops HTTP/1 trailers without it).
    pub connection_manager: Vec<String>,
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
            connection_manager: Vec::new(),
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
/// show quickly), and the stats tags of envoy/envoy.yaml, the gRPC metrics' and those of
/// [`TEST_LABEL_NAMES`]: the head of every test bootstrap.
fn admin_and_stats(admin_port: u16) -> String {
    let tags: String = app_metrics::names::LABEL_NAMES
        .iter()
        .chain(app_metrics::names::GRPC_LABEL_NAMES.iter())
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
    let connection_manager = indent(&opts.connection_manager.join("\n"), 6);
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
{connection_manager}      route_config:
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

// ---- File-based dynamic listeners (LDS), for hot-reload tests ----

/// The listener of [`bootstrap`] (same HTTP filters, route and plugin configuration) as an LDS
/// resource file, the content of `lds.yaml`.
pub fn lds_resources(opts: &EnvoyOptions, listen_port: u16) -> String {
    format!(
        "resources:\n- \"@type\": type.googleapis.com/envoy.config.listener.v3.Listener\n{}",
        indent(&listener_yaml(opts, listen_port), 2)
    )
}

/// The LDS resource file of [`shared_vm_bootstrap`]'s listeners: one per `(port, plugin name,
/// plugin configuration)`, every plugin in the same VM.
pub fn shared_vm_lds_resources(opts: &EnvoyOptions, plugins: &[(u16, &str, &str)]) -> String {
    let listeners: String = plugins
        .iter()
        .map(|(port, name, config)| {
            let opts = EnvoyOptions {
                plugin_config: config.to_string(),
                ..opts.clone()
            };
            let listener = named_listener_yaml(&opts, *port, &format!("{name}-{port}"), name);
            format!(
                "- \"@type\": type.googleapis.com/envoy.config.listener.v3.Listener\n{}",
                indent(&listener, 2)
            )
        })
        .collect();
    format!("resources:\n{listeners}")
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
