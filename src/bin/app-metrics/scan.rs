//! Finding configurations in the files they ship in. For each kind of file, the bytes handed to
//! `config::parse` are the bytes the filter would receive in `on_configure`:
//!
//! | file | where the configuration is | the bytes |
//! |---|---|---|
//! | `*.json` | the whole file | the file |
//! | Envoy YAML/JSON (bootstrap, LDS, ECDS, EnvoyFilter, a ConfigMap's `*.yaml`) | each `envoy.extensions.filters.http.wasm.v3.Wasm` (also in a `TypedStruct`) loading this module: `config.configuration` | a `StringValue`'s `value`, a `BytesValue`'s decoded `value`; none: empty (the defaults) |
//! | Istio `WasmPlugin` / `TrafficExtension` loading this module | `spec.pluginConfig` / `spec.wasm.pluginConfig` | compact JSON, as Istio serializes the `Struct` (numbers are doubles: integral ones print as integers); absent or `{}`: empty |
//!
//! Which wasm filters load this module: module.rs; the bytes themselves: bytes.rs.

use crate::bytes::{any_bytes, istio_json, STRING_VALUE};
use crate::module::{code_field, code_source, is_this_module, loads_lean_module};
use crate::yaml::{get, get_map, get_str, type_name};
use serde_yaml::{Mapping, Value};

/// Envoy's type for the wasm HTTP filter (the name after the type URL's last `/`).
const WASM_FILTER: &str = "envoy.extensions.filters.http.wasm.v3.Wasm";
/// A typed config given as a struct, as older Istio EnvoyFilters do.
const TYPED_STRUCTS: [&str; 2] = ["udpa.type.v1.TypedStruct", "xds.type.v3.TypedStruct"];
const ISTIO_EXTENSIONS: &str = "extensions.istio.io/";
/// ConfigMap data keys searched as embedded files (an Envoy config mounted into a pod).
const EMBEDDED_SUFFIXES: [&str; 3] = [".yaml", ".yml", ".json"];

#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Check every wasm filter and plugin, whatever module it loads.
    pub any_module: bool,
}

/// A configuration found in a file: where, and the exact bytes the filter would receive, or why
/// they cannot be known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub location: String,
    pub bytes: Result<Vec<u8>, String>,
    /// Where the file names the lean module for it, when it clearly does: `spec.url
    /// (oci://…/app-metrics-wasm:0.1.0)`.
    pub lean: Option<String>,
}

/// What a file holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scan {
    pub found: Vec<Found>,
    /// Wasm filters and plugins loading another module: (location, where its code comes from).
    pub skipped: Vec<(String, String)>,
    /// What hides configurations from view, (location, message): YAML that does not parse.
    pub problems: Vec<(String, String)>,
}

/// Every configuration in a multi-document YAML (or JSON) text.
pub fn scan_yaml(text: &[u8], options: Options) -> Scan {
    let mut scan = Scan::default();
    scan_documents(text, &Loc::default(), "document", options, &mut scan);
    scan
}

fn scan_documents(text: &[u8], at: &Loc, label: &str, options: Options, scan: &mut Scan) {
    use serde::Deserialize;
    for (i, doc) in serde_yaml::Deserializer::from_slice(text).enumerate() {
        let loc = at.context(&format!("{label} {}", i + 1));
        match Value::deserialize(doc) {
            Ok(value) => walk(&value, &loc, options, scan),
            Err(e) => {
                scan.problems
                    .push((loc.render(), format!("is not YAML: {e}")));
                // The parser cannot resynchronise after an error.
                return;
            }
        }
    }
}

/// Where in a file: the context (document, Kubernetes object) and the field path within it.
#[derive(Debug, Clone, Default)]
struct Loc {
    context: String,
    path: String,
}

impl Loc {
    fn context(&self, more: &str) -> Loc {
        let context = if self.context.is_empty() {
            more.to_string()
        } else {
            let path = if self.path.is_empty() {
                String::new()
            } else {
                format!("{} ", self.path)
            };
            format!("{}, {path}{more}", self.context)
        };
        Loc {
            context,
            path: String::new(),
        }
    }

    fn field(&self, key: &str) -> Loc {
        let plain = !key.is_empty()
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '@'));
        let path = match (plain, self.path.is_empty()) {
            (true, true) => key.to_string(),
            (true, false) => format!("{}.{key}", self.path),
            (false, _) => format!("{}[{}]", self.path, serde_json::Value::from(key)),
        };
        Loc {
            context: self.context.clone(),
            path,
        }
    }

    fn key(&self, key: &Value) -> Loc {
        match key {
            Value::String(s) => self.field(s),
            other => {
                let shown = serde_yaml::to_string(other).unwrap_or_default();
                self.field(shown.trim_end())
            }
        }
    }

    fn index(&self, i: usize) -> Loc {
        Loc {
            context: self.context.clone(),
            path: format!("{}[{i}]", self.path),
        }
    }

    fn render(&self) -> String {
        match (self.context.is_empty(), self.path.is_empty()) {
            (_, true) => self.context.clone(),
            (true, false) => self.path.clone(),
            (false, false) => format!("{}, {}", self.context, self.path),
        }
    }
}

fn walk(value: &Value, at: &Loc, options: Options, scan: &mut Scan) {
    match value {
        Value::Mapping(map) => walk_mapping(map, at, options, scan),
        Value::Sequence(items) => {
            for (i, item) in items.iter().enumerate() {
                walk(item, &at.index(i), options, scan);
            }
        }
        Value::Tagged(tagged) => walk(&tagged.value, at, options, scan),
        _ => {}
    }
}

fn walk_mapping(map: &Mapping, at: &Loc, options: Options, scan: &mut Scan) {
    match get_str(map, "@type").map(type_name) {
        Some(WASM_FILTER) => return wasm_filter(map, at, options, scan),
        Some(t)
            if TYPED_STRUCTS.contains(&t)
                && get_str(map, "type_url").map(type_name) == Some(WASM_FILTER) =>
        {
            if let Some(fields) = get_map(map, "value") {
                wasm_filter(fields, &at.field("value"), options, scan);
            }
            return;
        }
        _ => {}
    }
    if let Some((api_version, kind, object)) = kubernetes_object(map, at) {
        let spec = get_map(map, "spec");
        let wasm = match kind {
            "WasmPlugin" => Some((spec, object.field("spec"))),
            "TrafficExtension" => Some((
                spec.and_then(|s| get_map(s, "wasm")),
                object.field("spec").field("wasm"),
            )),
            _ => None,
        };
        match wasm {
            Some((spec, at)) if api_version.starts_with(ISTIO_EXTENSIONS) => {
                // A TrafficExtension without `wasm` is a Lua one: nothing to check.
                if let Some(spec) = spec {
                    istio_plugin(spec, &at, options, scan);
                }
            }
            _ if kind == "ConfigMap" => config_map(map, &object, options, scan),
            _ => walk_entries(map, &object, options, scan),
        }
        return;
    }
    walk_entries(map, at, options, scan);
}

fn walk_entries(map: &Mapping, at: &Loc, options: Options, scan: &mut Scan) {
    for (key, value) in map {
        walk(value, &at.key(key), options, scan);
    }
}

/// `(apiVersion, kind, location)` when `map` is a Kubernetes object.
fn kubernetes_object<'a>(map: &'a Mapping, at: &Loc) -> Option<(&'a str, &'a str, Loc)> {
    let api_version = get_str(map, "apiVersion")?;
    let kind = get_str(map, "kind")?;
    let metadata = get_map(map, "metadata")?;
    let name = get_str(metadata, "name").unwrap_or("(no name)");
    let id = match get_str(metadata, "namespace") {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    };
    Some((api_version, kind, at.context(&id)))
}

/// A ConfigMap's `*.yaml`/`*.yml`/`*.json` data, each searched as a file of its own.
fn config_map(map: &Mapping, at: &Loc, options: Options, scan: &mut Scan) {
    let Some(data) = get_map(map, "data") else {
        return;
    };
    for (key, value) in data {
        let (Some(key), Some(text)) = (key.as_str(), value.as_str()) else {
            continue;
        };
        if EMBEDDED_SUFFIXES
            .iter()
            .any(|s| key.to_ascii_lowercase().ends_with(s))
        {
            let at = at.field("data").field(key);
            scan_documents(text.as_bytes(), &at, "document", options, scan);
        }
    }
}

/// The fields of an `envoy.extensions.filters.http.wasm.v3.Wasm`: its `config` (PluginConfig).
fn wasm_filter(fields: &Mapping, at: &Loc, options: Options, scan: &mut Scan) {
    let Some(config) = get_map(fields, "config") else {
        return;
    };
    let at = at.field("config");
    let module = code_source(config);
    if !options.any_module && !is_this_module(&module) {
        scan.skipped.push((at.render(), module));
        return;
    }
    let lean = code_field(config)
        .filter(|_| loads_lean_module(&module, false))
        .map(|field| format!("config.{field} ({module})"));
    let found = match get(config, "configuration") {
        None => Found {
            location: at.render(),
            bytes: Ok(Vec::new()),
            lean,
        },
        Some(any) => Found {
            location: at.field("configuration").render(),
            bytes: any
                .as_mapping()
                .ok_or_else(|| {
                    format!("is not a google.protobuf.Any (expected {{\"@type\": {STRING_VALUE}, value: …}})")
                })
                .and_then(any_bytes),
            lean,
        },
    };
    scan.found.push(found);
}

/// A WasmPlugin's `spec` or a TrafficExtension's `spec.wasm`.
fn istio_plugin(spec: &Mapping, at: &Loc, options: Options, scan: &mut Scan) {
    let url = get_str(spec, "url").unwrap_or("no url");
    if !options.any_module && !is_this_module(url) {
        scan.skipped.push((at.render(), url.to_string()));
        return;
    }
    let lean = get_str(spec, "url")
        .filter(|url| loads_lean_module(url, true))
        .map(|url| format!("{} ({url})", at.field("url").path));
    let at = at.field("pluginConfig");
    let bytes = match get(spec, "pluginConfig") {
        // Istio sets no configuration for an empty Struct: the filter gets empty bytes.
        None => Ok(Vec::new()),
        Some(Value::Mapping(m)) if m.is_empty() => Ok(Vec::new()),
        Some(v @ Value::Mapping(_)) => istio_json(v).map(|json| json.to_string().into_bytes()),
        Some(_) => Err(
            "is not an object (Istio takes pluginConfig as a google.protobuf.Struct)".to_string(),
        ),
    };
    scan.found.push(Found {
        location: at.render(),
        bytes,
        lean,
    });
}
