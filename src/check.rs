//! `app-metrics check FILE...` (src/bin/app-metrics.rs): the filter's own validation,
//! [`config::parse`], run on the host over the files a configuration ships in, and what each valid
//! configuration needs from the proxy (stat tags, histogram buckets).
//!
//! The finding is the part worth care: for each kind of file, the bytes handed to `parse` are the
//! bytes the filter would receive in `on_configure`:
//!
//! | file | where the configuration is | the bytes |
//! |---|---|---|
//! | `*.json` | the whole file | the file |
//! | Envoy YAML/JSON (bootstrap, LDS, ECDS, EnvoyFilter, a ConfigMap's `*.yaml`) | each `envoy.extensions.filters.http.wasm.v3.Wasm` (also in a `TypedStruct`) loading this module: `config.configuration` | a `StringValue`'s `value`, a `BytesValue`'s decoded `value`; none: empty (the defaults) |
//! | Istio `WasmPlugin` / `TrafficExtension` loading this module | `spec.pluginConfig` / `spec.wasm.pluginConfig` | compact JSON, as Istio serializes the `Struct` (numbers are doubles: integral ones print as integers); absent or `{}`: empty |
//!
//! "This module": the code's file name or URL path ends in a segment that is `plugin.wasm`
//! (Istio's name for the module of an image) or contains `app_metrics` / `app-metrics`
//! (`app_metrics.wasm`, the image `…/app-metrics-wasm:0.1.0`). [`Options::any_module`] takes
//! every wasm filter instead. Other wasm filters are reported as skipped.
//!
//! Two builds: the lean module refuses body rules ([`config::check_build`]). A configuration that
//! reads a body is told to need the body-reading one ([`BODIES_MODULE`], image tag
//! `<version>-bodies`), and is an error where the file clearly loads the lean one
//! ([`loads_lean_module`]): the filter would refuse it with the same message.
//!
//! Host only (serde_yaml): `lib.rs` compiles this module only outside wasm32.

use crate::config::{self, Config, SeriesBound, BODIES_MODULE, LEAN_MODULE};
use crate::filter::Filter;
use crate::names::DURATION;
use crate::names::LABEL_NAMES;
use serde_yaml::{Mapping, Value};

/// Usage of the `app-metrics` binary.
pub const USAGE: &str = "\
usage: app-metrics check [--any-module] FILE...

Validates app-metrics-wasm configurations exactly as the filter does, and prints what each valid
one needs: the body-reading module when it reads a body (app_metrics_bodies.wasm, image tag
<version>-bodies; an error where the file loads app_metrics.wasm or an image tag without
-bodies); Istio's extraStatTags (the filter's labels and the configuration's own) and the
sidecar.istio.io/statsHistogramBuckets annotation; and the most series it can make.

FILE: a *.json file (the plugin configuration itself), or YAML / JSON holding Envoy wasm HTTP
filters (bootstrap, LDS, ECDS, EnvoyFilter, ConfigMaps with *.yaml data), Istio WasmPlugins or
TrafficExtensions: multi-document, kubectl kustomize output included. `-` reads YAML from
stdin (shown as `(stdin)`).

--any-module  check every wasm filter and plugin, not only those loading app_metrics.wasm,
              plugin.wasm or an app-metrics image

Exit status: 0 when every configuration found is valid, 1 on any error (or a file in which
none is found), 2 on a usage error.
";

/// Envoy's type for the wasm HTTP filter (the name after the type URL's last `/`).
const WASM_FILTER: &str = "envoy.extensions.filters.http.wasm.v3.Wasm";
/// A typed config given as a struct, as older Istio EnvoyFilters do.
const TYPED_STRUCTS: [&str; 2] = ["udpa.type.v1.TypedStruct", "xds.type.v3.TypedStruct"];
const STRING_VALUE: &str = "google.protobuf.StringValue";
const BYTES_VALUE: &str = "google.protobuf.BytesValue";
const ISTIO_EXTENSIONS: &str = "extensions.istio.io/";
/// ConfigMap data keys searched as embedded files (an Envoy config mounted into a pod).
const EMBEDDED_SUFFIXES: [&str; 3] = [".yaml", ".yml", ".json"];
/// Envoy prefixes the stats a wasm module defines with this (and drops it on /stats/prometheus);
/// histogram bucket settings match the full name.
const CUSTOM_STAT_PREFIX: &str = "wasmcustom.";
/// The duration histogram's bucket bounds this kit recommends, in milliseconds: 0.5 ms to 10 s,
/// above that +Inf (Envoy's defaults run to an hour, too coarse for an HTTP app).
pub const DURATION_BUCKETS_MS: [f64; 14] = [
    0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0,
];

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

/// What a valid configuration needs from the proxy.
#[derive(Debug, Clone, PartialEq)]
pub struct Needs {
    /// One stats tag rule per label name the filter emits (Istio's `extraStatTags`): its own,
    /// then the configuration's constant and dynamic label names.
    pub extra_stat_tags: Vec<String>,
    /// Bucket bounds by stat-name prefix: the duration histogram of each handler label value.
    pub histogram_buckets: Vec<(String, Vec<f64>)>,
    /// The most series the configuration can make (`config::series_bound`).
    pub series: SeriesBound,
}

impl Needs {
    /// `at most 363 (counters 2, http_requests_total 180, http_proxy_responses_total 144,
    /// histograms 36, samplers 0, app_metrics_config_valid 1)`
    pub fn series_text(&self) -> String {
        let s = &self.series;
        format!(
            "at most {} (counters {}, http_requests_total {}, http_proxy_responses_total {}, histograms {}, samplers {}, app_metrics_config_valid {})",
            s.total(),
            s.counters,
            s.requests,
            s.proxy_responses,
            s.histograms,
            s.samplers,
            s.config_valid
        )
    }

    /// `["handler","method",…]`
    pub fn extra_stat_tags_json(&self) -> String {
        serde_json::Value::from(self.extra_stat_tags.clone()).to_string()
    }

    /// The `sidecar.istio.io/statsHistogramBuckets` value, keys in handler order.
    pub fn histogram_buckets_json(&self) -> String {
        let entries: Vec<String> = self
            .histogram_buckets
            .iter()
            .map(|(prefix, bounds)| {
                let bounds: Vec<String> = bounds.iter().map(f64::to_string).collect();
                format!(
                    "{}:[{}]",
                    serde_json::Value::from(prefix.as_str()),
                    bounds.join(",")
                )
            })
            .collect();
        format!("{{{}}}", entries.join(","))
    }
}

/// The stat tags and histogram buckets `config` needs: every label name the filter emits, then
/// the configuration's (constant, then dynamic in order of appearance), and one
/// duration-histogram prefix per handler label value (the templates, then `none`).
pub fn needs(config: &Config) -> Needs {
    let filter = Filter::new(config);
    let histogram_buckets = filter
        .http
        .iter()
        .flat_map(|http| (0..http.handler_count()).map(|h| http.handler_label(h)))
        .map(|handler| {
            (
                duration_prefix(&filter, handler),
                DURATION_BUCKETS_MS.to_vec(),
            )
        })
        .collect();
    let mut extra_stat_tags: Vec<String> = LABEL_NAMES.iter().map(|n| n.to_string()).collect();
    let dynamic = config
        .counters
        .iter()
        .flat_map(|c| &c.labels)
        .chain(
            config
                .http_metrics
                .labels
                .iter()
                .filter(|_| config.http_metrics.enabled),
        )
        .map(|l| &l.name);
    for name in config.labels.iter().map(|(n, _)| n).chain(dynamic) {
        if !extra_stat_tags.contains(name) {
            extra_stat_tags.push(name.clone());
        }
    }
    Needs {
        extra_stat_tags,
        histogram_buckets,
        series: config::series_bound(config),
    }
}

/// The stat name of `handler`'s duration histogram up to its method value: the histograms of
/// every method of that handler, the app's time and (with `total_duration`) the whole request's
/// alike, and nothing else (the size histograms have no method label). Constant labels come
/// first in a stat name, so they are part of the prefix; dynamic ones come after the method.
fn duration_prefix(filter: &Filter, handler: &str) -> String {
    // A method value that cannot occur, cut off again: the name's start is the prefix.
    const CUT: &str = "\u{0}";
    let full = filter.series_name(DURATION, &[("handler", handler), ("method", CUT)], &[]);
    let head = full.split(CUT).next().unwrap_or_default();
    format!("{CUSTOM_STAT_PREFIX}{head}")
}

/// What `check` prints: results on stdout, errors and notes on stderr.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub stdout: Vec<String>,
    pub stderr: Vec<String>,
    pub errors: usize,
}

/// Checks one file: `name` is how it is shown (and `*.json` says it is a plugin configuration).
pub fn check(name: &str, contents: &[u8], options: Options) -> Report {
    let scan = if name.to_ascii_lowercase().ends_with(".json") {
        Scan {
            found: vec![Found {
                location: String::new(),
                bytes: Ok(contents.to_vec()),
                lean: None,
            }],
            ..Scan::default()
        }
    } else {
        scan_yaml(contents, options)
    };
    let mut report = Report::default();
    let at = |location: &str| {
        if location.is_empty() {
            name.to_string()
        } else {
            format!("{name} {location}")
        }
    };
    for (location, module) in &scan.skipped {
        report.stderr.push(format!(
            "{}: skipped: loads {module}, not app-metrics-wasm (--any-module checks it)",
            at(location)
        ));
    }
    for (location, message) in &scan.problems {
        report.stderr.push(format!("{}: {message}", at(location)));
        report.errors += 1;
    }
    for found in &scan.found {
        let outcome = found
            .bytes
            .clone()
            .and_then(|bytes| config::parse(&bytes).map_err(|e| e.to_string()));
        match outcome {
            Ok(config) => {
                // The lean module refuses body rules: its own message, and where the file loads it.
                if let (Err(refusal), Some(lean)) =
                    (config::check_build(&config, false), &found.lean)
                {
                    report.stderr.push(format!(
                        "{}: {refusal}; {lean} loads the lean build",
                        at(&found.location)
                    ));
                    report.errors += 1;
                    continue;
                }
                let needs = needs(&config);
                report
                    .stdout
                    .push(format!("{}: valid", at(&found.location)));
                if let Some(field) = config::first_body_read(&config) {
                    report
                        .stdout
                        .push(format!("  module: {}", bodies_module_text(&field)));
                }
                report
                    .stdout
                    .push(format!("  extraStatTags: {}", needs.extra_stat_tags_json()));
                report.stdout.push(format!(
                    "  sidecar.istio.io/statsHistogramBuckets: {}",
                    needs.histogram_buckets_json()
                ));
                report
                    .stdout
                    .push(format!("  series: {}", needs.series_text()));
            }
            Err(message) => {
                report
                    .stderr
                    .push(format!("{}: {message}", at(&found.location)));
                report.errors += 1;
            }
        }
    }
    if scan.found.is_empty() && scan.problems.is_empty() {
        report.stderr.push(format!(
            "{name}: no app-metrics-wasm configuration found (looked for wasm HTTP filters, \
             WasmPlugins and TrafficExtensions loading app_metrics.wasm, plugin.wasm or an \
             app-metrics image)"
        ));
        report.errors += 1;
    }
    report
}

/// `app_metrics_bodies.wasm (image tag 0.1.0-bodies): counters[2].match.response_json reads a
/// body`: the module a configuration reading a body needs, and the image `make oci` tags it.
pub fn bodies_module_text(field: &str) -> String {
    format!(
        "{BODIES_MODULE} (image tag {}): {field} reads a body",
        bodies_image_tag()
    )
}

/// The tag `make oci` gives the body-reading image: the crate version, `-bodies`.
pub fn bodies_image_tag() -> String {
    format!("{}{BODIES_TAG_SUFFIX}", env!("CARGO_PKG_VERSION"))
}

/// How the body-reading image's tag ends (`scripts/oci.sh`).
pub const BODIES_TAG_SUFFIX: &str = "-bodies";

/// Whether `source` clearly loads the lean module, which refuses body rules. `image`: `source` is
/// an Istio plugin URL, an image reference unless its scheme says otherwise (Istio's default is
/// `oci://`); lean when it has a tag that does not end in `-bodies` (a digest alone says nothing).
/// Otherwise (a file name, a `file://`/`http(s)://` URL): lean when the file is `app_metrics.wasm`.
/// Anything else (`plugin.wasm`, an image without a tag) may be either build.
pub fn loads_lean_module(source: &str, image: bool) -> bool {
    let (scheme, rest) = source.split_once("://").unwrap_or(("oci", source));
    if image && scheme.eq_ignore_ascii_case("oci") {
        let reference = rest.split('@').next().unwrap_or_default();
        let last = reference.rsplit('/').next().unwrap_or_default();
        return match last.split_once(':') {
            Some((_, tag)) => !tag.ends_with(BODIES_TAG_SUFFIX),
            None => false,
        };
    }
    let path = rest.split(['?', '#']).next().unwrap_or_default();
    path.rsplit('/').next() == Some(LEAN_MODULE)
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

fn get<'a>(map: &'a Mapping, key: &str) -> Option<&'a Value> {
    map.get(key).filter(|v| !v.is_null())
}

fn get_str<'a>(map: &'a Mapping, key: &str) -> Option<&'a str> {
    map.get(key).and_then(Value::as_str)
}

fn get_map<'a>(map: &'a Mapping, key: &str) -> Option<&'a Mapping> {
    map.get(key).and_then(Value::as_mapping)
}

/// The message name of a type URL (`type.googleapis.com/google.protobuf.StringValue`).
fn type_name(url: &str) -> &str {
    url.rsplit('/').next().unwrap_or(url)
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

/// What Envoy hands the filter for its `configuration` (an Any): a StringValue's or a
/// BytesValue's value; for any other type its protobuf encoding, which is no JSON.
fn any_bytes(any: &Mapping) -> Result<Vec<u8>, String> {
    let value = get(any, "value");
    match get_str(any, "@type").map(type_name) {
        Some(STRING_VALUE) => match value {
            None => Ok(Vec::new()),
            Some(Value::String(s)) => Ok(s.as_bytes().to_vec()),
            Some(_) => Err(format!("value: is not a string ({STRING_VALUE})")),
        },
        Some(BYTES_VALUE) => match value {
            None => Ok(Vec::new()),
            Some(Value::String(s)) => base64_decode(s)
                .map_err(|e| format!("value: is not base64 ({BYTES_VALUE} in YAML/JSON): {e}")),
            Some(_) => Err(format!("value: is not a base64 string ({BYTES_VALUE})")),
        },
        Some(other) => Err(format!(
            "@type {other}: Envoy would hand the filter this message's protobuf encoding, not JSON \
             (expected {STRING_VALUE} or {BYTES_VALUE})"
        )),
        None => Err(format!("has no @type (expected {STRING_VALUE})")),
    }
}

/// Protobuf's JSON mapping takes standard or URL-safe base64, padded or not.
fn base64_decode(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    use base64::engine::{general_purpose, DecodePaddingMode, Engine, GeneralPurpose};
    let config = general_purpose::GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent);
    let alphabet = if text.contains(['-', '_']) {
        &base64::alphabet::URL_SAFE
    } else {
        &base64::alphabet::STANDARD
    };
    GeneralPurpose::new(alphabet, config).decode(text)
}

/// Where a PluginConfig's code comes from, as shown in a skip note and matched by
/// [`is_this_module`].
fn code_source(config: &Mapping) -> String {
    let code = get_map(config, "vm_config").and_then(|vm| get_map(vm, "code"));
    let local = code.and_then(|c| get_map(c, "local"));
    let remote = code
        .and_then(|c| get_map(c, "remote"))
        .and_then(|r| get_map(r, "http_uri"))
        .and_then(|u| get_str(u, "uri"));
    if let Some(file) = local.and_then(|l| get_str(l, "filename")) {
        file.to_string()
    } else if let Some(var) = local.and_then(|l| get_str(l, "environment_variable")) {
        format!("the environment variable {var}")
    } else if local.is_some() {
        "inline code".to_string()
    } else if let Some(uri) = remote {
        uri.to_string()
    } else {
        "no vm_config.code".to_string()
    }
}

/// The field of a PluginConfig naming its code's file or URL, if it has one.
fn code_field(config: &Mapping) -> Option<&'static str> {
    let code = get_map(config, "vm_config").and_then(|vm| get_map(vm, "code"))?;
    if get_map(code, "local")
        .and_then(|l| get_str(l, "filename"))
        .is_some()
    {
        Some("vm_config.code.local.filename")
    } else if get_map(code, "remote")
        .and_then(|r| get_map(r, "http_uri"))
        .and_then(|u| get_str(u, "uri"))
        .is_some()
    {
        Some("vm_config.code.remote.http_uri.uri")
    } else {
        None
    }
}

/// Whether `source` (a file name, a URL, an image reference) is this module; see the module doc.
pub fn is_this_module(source: &str) -> bool {
    let without_scheme = source.split_once("://").map_or(source, |(_, rest)| rest);
    let path = without_scheme
        .split(['?', '#', '@'])
        .next()
        .unwrap_or_default();
    let last = path.rsplit('/').next().unwrap_or_default();
    // An image tag (`app-metrics-wasm:0.1.0`).
    let name = last
        .split(':')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    name == "plugin.wasm" || name.contains("app_metrics") || name.contains("app-metrics")
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

/// `value` as Istio serializes a Struct: every number a double, an integral one printed as an
/// integer (protojson), object keys sorted (serde_json's map, as protojson orders map keys).
fn istio_json(value: &Value) -> Result<serde_json::Value, String> {
    use serde_json::Value as J;
    Ok(match value {
        Value::Null => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::Number(n) => {
            let d = n
                .as_f64()
                .filter(|d| d.is_finite())
                .ok_or_else(|| format!("{n}: not a finite number (a Struct holds doubles)"))?;
            double_json(d)
        }
        Value::String(s) => J::String(s.clone()),
        Value::Sequence(items) => J::Array(items.iter().map(istio_json).collect::<Result<_, _>>()?),
        Value::Mapping(map) => {
            let mut out = serde_json::Map::new();
            for (key, v) in map {
                let key = key.as_str().ok_or_else(|| {
                    "holds a key that is not a string (a Struct's keys are strings)".to_string()
                })?;
                out.insert(key.to_string(), istio_json(v)?);
            }
            J::Object(out)
        }
        Value::Tagged(tagged) => istio_json(&tagged.value)?,
    })
}

/// A double as protojson prints it: an integral one without a fraction (here up to 64 bits;
/// beyond that, far outside every field's range, serde_json's exponent form).
fn double_json(d: f64) -> serde_json::Value {
    // Exact: an integral double within these bounds converts without loss.
    if d.fract() == 0.0 && d >= 0.0 && d < u64::MAX as f64 {
        return serde_json::Value::from(d as u64);
    }
    if d.fract() == 0.0 && d < 0.0 && d >= i64::MIN as f64 {
        return serde_json::Value::from(d as i64);
    }
    serde_json::Number::from_f64(d).map_or(serde_json::Value::Null, serde_json::Value::Number)
}
