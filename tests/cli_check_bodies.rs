//! `app-metrics check` (src/bin/app-metrics/) as a process, continued from cli_check.rs: which
//! build a configuration needs (body rules), and every shipped file.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test code

mod cli;

use cli::*;
use std::path::Path;

// ------------------------------------------------------------------ body rules: which build

/// A counter reading the response body, as JSON and as YAML lines for a pluginConfig.
const BODY_RULE_JSON: &str = r#"{"counters": [{"name": "locked_logins_total", "match": {"method": "POST", "path": "/login", "status": ["2xx"], "response_json": [{"pointer": "/ok", "equals": false}]}}]}"#;
const BODY_RULE_YAML: &str = "  pluginConfig:\n    counters:\n    - { name: locked_logins_total, match: { method: POST, path: /login, status: [\"2xx\"], response_json: [{ pointer: /ok, equals: false }] } }\n";
/// What the lean module logs for it (config::check_build), and what the check prints.
const LEAN_REFUSAL: &str =
    "counters[0].match.response_json: reads a body, which app_metrics.wasm does not \
     (expected the body-reading build, app_metrics_bodies.wasm, image tag suffix -bodies: README, \
     \"Counters on JSON bodies\")";

/// The line saying a configuration needs the bodies build, for counter `index`'s `field`.
fn module_line(field: &str) -> String {
    format!(
        "  module: app_metrics_bodies.wasm (image tag {}-bodies): {field} reads a body",
        env!("CARGO_PKG_VERSION")
    )
}

/// A valid configuration with one body counter and nothing else: what the check prints.
fn valid_body_rule(location: &str) -> Vec<String> {
    let mut out = valid_with(location, &["none"], 1, 0);
    out.insert(1, module_line("counters[0].match.response_json"));
    out
}

#[test]
fn a_configuration_reading_a_body_needs_the_bodies_build() {
    // Where the build cannot be told (a bare pluginConfig, Istio's plugin.wasm, an image by
    // digest) or is the bodies one: valid, and the module line says which build it needs.
    let r = check("bodies_json", &[("c.json", BODY_RULE_JSON)], &["c.json"]);
    assert_eq!((r.code, r.err()), (0, Vec::<&str>::new()), "{}", r.stderr);
    assert_eq!(r.out(), valid_body_rule("c.json"));
    for (field, json) in [
        (
            "counters[0].match.request_json",
            r#"{"counters": [{"name": "a", "match": {"path": "/u", "request_json": [{"pointer": "/x", "present": true}]}}]}"#,
        ),
        (
            "counters[0].increment",
            r#"{"counters": [{"name": "t", "match": {"path": "/v1"}, "increment": {"response_json": "/usage/total_tokens"}}]}"#,
        ),
    ] {
        let r = check("bodies_fields", &[("c.json", json)], &["c.json"]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert_eq!(r.out()[1], module_line(field));
    }
    let docs = [
        wasmplugin(
            "tagged",
            "oci://ghcr.io/acme/app-metrics-wasm:0.1.0-bodies",
            BODY_RULE_YAML,
        ),
        wasmplugin(
            "file",
            "file:///var/local/app-metrics/plugin.wasm",
            BODY_RULE_YAML,
        ),
        wasmplugin(
            "digest",
            "oci://ghcr.io/acme/app-metrics-wasm@sha256:0123",
            BODY_RULE_YAML,
        ),
        wasmplugin("untagged", "ghcr.io/acme/app-metrics-wasm", BODY_RULE_YAML),
    ];
    let r = check(
        "bodies_wasmplugin",
        &[("wp.yaml", &docs.join("---\n"))],
        &["wp.yaml"],
    );
    assert_eq!((r.code, r.err()), (0, Vec::<&str>::new()), "{}", r.stderr);
    let out: Vec<String> = ["tagged", "file", "digest", "untagged"]
        .iter()
        .enumerate()
        .flat_map(|(i, name)| {
            valid_body_rule(&format!(
                "wp.yaml document {}, WasmPlugin default/{name}, spec.pluginConfig",
                i + 1
            ))
        })
        .collect();
    assert_eq!(r.out(), out);
    let yaml = bootstrap(&[envoy_filter(
        "/etc/wasm/app_metrics_bodies.wasm",
        &string_value(BODY_RULE_JSON),
    )]);
    let r = check("bodies_envoy", &[("envoy.yaml", &yaml)], &["envoy.yaml"]);
    assert_eq!((r.code, r.err()), (0, Vec::<&str>::new()), "{}", r.stderr);
    assert_eq!(
        r.out(),
        valid_body_rule(&format!(
            "envoy.yaml document 1, {HCM}[0].typed_config.config.configuration"
        ))
    );
}

#[test]
fn the_lean_module_with_a_body_rule_is_an_error() {
    // Each file names the lean build (a tag without -bodies, app_metrics.wasm) for a
    // configuration that reads a body: the lean module's own refusal, and where it is loaded.
    let docs = [
        wasmplugin("lean", "oci://ghcr.io/acme/app-metrics-wasm:0.1.0", BODY_RULE_YAML),
        // The same image without a body rule: valid, no module line.
        wasmplugin("seed", "oci://ghcr.io/acme/app-metrics-wasm:0.1.0", ""),
        wasmplugin("https", "https://example.com/filters/app_metrics.wasm", BODY_RULE_YAML),
        "\
apiVersion: extensions.istio.io/v1alpha1
kind: TrafficExtension
metadata: { name: te, namespace: shop }
spec:
  wasm:
    url: registry.local/app-metrics-wasm:0.2.0
    pluginConfig:
      counters:
      - { name: locked_logins_total, match: { method: POST, path: /login, status: [\"2xx\"], response_json: [{ pointer: /ok, equals: false }] } }
"
        .to_string(),
    ];
    let r = check(
        "lean_istio",
        &[("wp.yaml", &docs.join("---\n"))],
        &["wp.yaml"],
    );
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    // No pluginConfig: the defaults, the seed's two counters.
    assert_eq!(
        r.out(),
        valid(
            "wp.yaml document 2, WasmPlugin default/seed, spec.pluginConfig",
            &["none"]
        )
    );
    assert_eq!(
        r.err(),
        vec![
            format!(
                "wp.yaml document 1, WasmPlugin default/lean, spec.pluginConfig: {LEAN_REFUSAL}; \
                 spec.url (oci://ghcr.io/acme/app-metrics-wasm:0.1.0) loads the lean build"
            ),
            format!(
                "wp.yaml document 3, WasmPlugin default/https, spec.pluginConfig: {LEAN_REFUSAL}; \
                 spec.url (https://example.com/filters/app_metrics.wasm) loads the lean build"
            ),
            format!(
                "wp.yaml document 4, TrafficExtension shop/te, spec.wasm.pluginConfig: {LEAN_REFUSAL}; \
                 spec.wasm.url (registry.local/app-metrics-wasm:0.2.0) loads the lean build"
            ),
        ]
    );
    // Envoy: a local file and a remote one named app_metrics.wasm; the raw build's too.
    let remote = "\
- name: envoy.filters.http.wasm
  typed_config:
    \"@type\": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
    config:
      configuration:
        \"@type\": type.googleapis.com/google.protobuf.StringValue
        value: 'BODY'
      vm_config:
        runtime: envoy.wasm.runtime.v8
        code: { remote: { http_uri: { uri: 'https://example.com/app_metrics.wasm', cluster: c, timeout: 5s }, sha256: abc } }"
        .replace("BODY", BODY_RULE_JSON);
    let yaml = bootstrap(&[
        envoy_filter("/etc/wasm/app_metrics.wasm", &string_value(BODY_RULE_JSON)),
        remote,
        envoy_filter(
            "/etc/wasm/app_metrics_bodies.wasm",
            &string_value(BODY_RULE_JSON),
        ),
    ]);
    let r = check("lean_envoy", &[("envoy.yaml", &yaml)], &["envoy.yaml"]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(
        r.out(),
        valid_body_rule(&format!(
            "envoy.yaml document 1, {HCM}[2].typed_config.config.configuration"
        ))
    );
    assert_eq!(
        r.err(),
        vec![
            format!(
                "envoy.yaml document 1, {HCM}[0].typed_config.config.configuration: {LEAN_REFUSAL}; \
                 config.vm_config.code.local.filename (/etc/wasm/app_metrics.wasm) loads the lean build"
            ),
            format!(
                "envoy.yaml document 1, {HCM}[1].typed_config.config.configuration: {LEAN_REFUSAL}; \
                 config.vm_config.code.remote.http_uri.uri (https://example.com/app_metrics.wasm) loads \
                 the lean build"
            ),
        ]
    );
}

// ------------------------------------------------------------------ the shipped files

#[test]
fn shipped_configurations_are_valid() {
    let root = env!("CARGO_MANIFEST_DIR");
    let files = [
        "envoy/envoy.yaml",
        "istio/wasmplugin.yaml",
        "istio/trafficextension/trafficextension.yaml",
        "k8s/envoy-sidecar/envoy.yaml",
    ];
    let r = run_in(Path::new(root), &[&["check"][..], &files].concat(), "");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.err(), Vec::<&str>::new());
    let handlers = [
        "/login",
        "/users",
        "/users/count",
        "/users/{user_id}",
        "/health",
        "none",
    ];
    let envoy = format!("document 1, {HCM}[0].typed_config.config.configuration");
    let mut out = Vec::new();
    for location in [
        format!("envoy/envoy.yaml {envoy}"),
        "istio/wasmplugin.yaml document 1, WasmPlugin default/app-metrics, spec.pluginConfig".into(),
        "istio/trafficextension/trafficextension.yaml document 1, TrafficExtension default/app-metrics, spec.wasm.pluginConfig".into(),
        format!("k8s/envoy-sidecar/envoy.yaml {envoy}"),
    ] {
        out.extend(valid_with(&location, &handlers, 2, 1));
    }
    assert_eq!(r.out(), out);
}

#[test]
fn shipped_bodies_variants_need_the_bodies_build_and_load_it() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let r = run_in(root, &["check", "envoy/envoy-bodies.yaml"], "");
    assert_eq!((r.code, r.err()), (0, Vec::<&str>::new()), "{}", r.stderr);
    let handlers = [
        "/login",
        "/users",
        "/users/count",
        "/users/{user_id}",
        "/health",
        "none",
    ];
    let mut out = valid_with(
        &format!("envoy/envoy-bodies.yaml document 1, {HCM}[0].typed_config.config.configuration"),
        &handlers,
        3,
        1,
    );
    out.insert(1, module_line("counters[2].match.response_json"));
    assert_eq!(r.out(), out);
}
