//! Istio as it is: a sidecar's stats (Istio 1.30's bootstrap) and WasmPlugins delivered by ECDS
//! under the names Istio gives them.

use super::envoy::*;
use super::*;
use std::sync::atomic::{AtomicU32, Ordering};

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
/// `app_metrics::names::LABEL_NAMES`) where Istio puts them, and its default inclusion list.
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
    for name in app_metrics::names::LABEL_NAMES {
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
        Self::start_edited(plugins, app_port, clusters, concurrency, |_| {})
    }

    /// [`IstioSidecar::start`] with the bootstrap changed by `edit` first (e.g. the
    /// `stats_config` a pod's annotations make).
    pub fn start_edited(
        plugins: &[(IstioPlugin, &serde_json::Value)],
        app_port: u16,
        clusters: &[(String, u16)],
        concurrency: u32,
        edit: impl FnOnce(&mut serde_json::Value),
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
        let mut config: serde_json::Value = serde_json::from_str(&config).unwrap();
        edit(&mut config);
        let config = config.to_string();
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
