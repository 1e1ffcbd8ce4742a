//! What the `app-metrics` process tests share: running it in a directory of files, and the lines
//! it prints for a valid configuration.
#![allow(dead_code)]

use app_metrics::names::LABEL_NAMES;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub const BIN: &str = env!("CARGO_BIN_EXE_app-metrics");
/// The duration buckets every handler gets.
pub const B: &str = "[0.5,1,2.5,5,10,25,50,100,250,500,1000,2500,5000,10000]";

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn out(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }
    pub fn err(&self) -> Vec<&str> {
        self.stderr.lines().collect()
    }
}

/// A fresh directory holding `files`; the check runs there, so names print as given.
pub fn dir(test: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("cli_check")
        .join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
    dir
}

pub fn run_in(dir: &Path, args: &[&str], stdin: &str) -> Run {
    let mut child = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().expect("exited"),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

pub fn check(test: &str, files: &[(&str, &str)], args: &[&str]) -> Run {
    let dir = dir(test, files);
    let mut all = vec!["check"];
    all.extend_from_slice(args);
    run_in(&dir, &all, "")
}

pub fn tags_line() -> String {
    format!(
        "  extraStatTags: {}",
        serde_json::to_string(&LABEL_NAMES).unwrap()
    )
}

/// The buckets line for these handler label values (templates, then `none`).
pub fn buckets_line(handlers: &[&str]) -> String {
    let entries: Vec<String> = handlers
        .iter()
        .map(|h| format!("\"wasmcustom.handler=.={h};.;method=.=\":{B}"))
        .collect();
    format!(
        "  sidecar.istio.io/statsHistogramBuckets: {{{}}}",
        entries.join(",")
    )
}

/// The series line, from docs/configuration.md's formula: with H+1 handler label values (`handlers`, `none`
/// included) and no dynamic labels, 60 (H+1) request counters, 48 (H+1) proxy answers, 12 (H+1)
/// histograms, 10 series per sampler and `app_metrics_config_valid`.
pub fn series_line(handlers: usize, counters: usize, samplers: usize) -> String {
    let (requests, proxy, histograms) = (60 * handlers, 48 * handlers, 12 * handlers);
    let total = counters + requests + proxy + histograms + 10 * samplers + 1;
    format!(
        "  series: at most {total} (counters {counters}, http_requests_total {requests}, \
         http_proxy_responses_total {proxy}, histograms {histograms}, samplers {}, \
         app_metrics_config_valid 1)",
        10 * samplers
    )
}

/// A valid configuration with the seed's two counters and no sampler.
pub fn valid(location: &str, handlers: &[&str]) -> Vec<String> {
    valid_with(location, handlers, 2, 0)
}

pub fn valid_with(
    location: &str,
    handlers: &[&str],
    counters: usize,
    samplers: usize,
) -> Vec<String> {
    vec![
        format!("{location}: valid"),
        tags_line(),
        buckets_line(handlers),
        series_line(handlers.len(), counters, samplers),
    ]
}

/// An Istio WasmPlugin `default/<name>` loading `url`, with `plugin_config` (indented YAML lines).
pub fn wasmplugin(name: &str, url: &str, plugin_config: &str) -> String {
    format!(
        "\
apiVersion: extensions.istio.io/v1alpha1
kind: WasmPlugin
metadata: {{ name: {name}, namespace: default }}
spec:
  url: {url}
  pluginName: app_metrics
{plugin_config}"
    )
}

// Envoy files

pub const WASM_FILTER: &str = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm";

/// An Envoy wasm HTTP filter loading `file`, with `configuration` (YAML lines indented 6) if any.
pub fn envoy_filter(file: &str, configuration: &str) -> String {
    [
        "- name: envoy.filters.http.wasm",
        "  typed_config:",
        &format!("    \"@type\": {WASM_FILTER}"),
        "    config:",
        "      name: app_metrics",
        "      root_id: app_metrics",
        configuration.trim_end(),
        "      vm_config:",
        "        runtime: envoy.wasm.runtime.v8",
        &format!("        code: {{ local: {{ filename: {file} }} }}"),
    ]
    .join("\n")
}

pub fn string_value(json: &str) -> String {
    [
        "      configuration:",
        "        \"@type\": type.googleapis.com/google.protobuf.StringValue",
        &format!("        value: {}", serde_json::to_string(json).unwrap()),
    ]
    .join("\n")
}

/// A bootstrap with one listener whose HTTP connection manager has `http_filters`, then the router.
pub fn bootstrap(http_filters: &[String]) -> String {
    let mut lines = vec![
        "static_resources:".to_string(),
        "  listeners:".to_string(),
        "  - name: app".to_string(),
        "    filter_chains:".to_string(),
        "    - filters:".to_string(),
        "      - name: envoy.filters.network.http_connection_manager".to_string(),
        "        typed_config:".to_string(),
        "          \"@type\": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager".to_string(),
        "          stat_prefix: app".to_string(),
        "          http_filters:".to_string(),
    ];
    let router = "- name: envoy.filters.http.router\n  typed_config:\n    \"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router";
    for f in http_filters.iter().map(String::as_str).chain([router]) {
        lines.extend(
            f.lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| format!("          {l}")),
        );
    }
    lines.join("\n") + "\n"
}

pub const HCM: &str =
    "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters";
