//! `app-metrics check` (src/bin/app-metrics/), run as a process on files of every
//! kind it reads: exact output lines, field paths and exit codes.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test code

mod cli;

use app_metrics::names::LABEL_NAMES;
use cli::*;

#[test]
fn tags_are_the_label_names_the_filter_emits() {
    // The stat tags Istio's extraStatTags and Envoy's stats_tags need: at least these five.
    for name in ["handler", "method", "status", "sampler", "reason"] {
        assert!(LABEL_NAMES.contains(&name), "{name}");
    }
    let r = check("tags", &[("c.json", "{}")], &["c.json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.out()[1].starts_with("  extraStatTags: [\"handler\",\"method\",\"status\""));
}

// ------------------------------------------------------------------ JSON: the pluginConfig itself

#[test]
fn json_valid_prints_tags_and_a_bucket_key_per_handler_and_none() {
    let config = r#"{"http_metrics": {"handlers": ["/login", "/users/{id}"], "excluded_handlers": ["/metrics"]}}"#;
    let r = check("json_valid", &[("app.json", config)], &["app.json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.out(),
        valid("app.json", &["/login", "/users/{id}", "none"])
    );
    assert_eq!(r.err(), Vec::<&str>::new());
    // The exact bytes: the first line of output in full, for the README's sake.
    assert_eq!(
        r.out()[2],
        format!(
            "  sidecar.istio.io/statsHistogramBuckets: {{\"wasmcustom.handler=.=/login;.;method=.=\":{B},\
             \"wasmcustom.handler=.=/users/{{id}};.;method=.=\":{B},\"wasmcustom.handler=.=none;.;method=.=\":{B}}}"
        )
    );
}

#[test]
fn json_labels_add_their_names_to_the_tags_and_multiply_the_series() {
    let config = r#"{"labels": {"service": "shop", "team": "payments"},
      "counters": [{"name": "failed_login_details_total", "match": {"method": "POST", "path": "/login", "status": [401]},
                    "labels": [{"name": "client", "request_header": "x-client", "values": ["web", "ios"]}]}],
      "http_metrics": {"handlers": ["/login"],
                       "labels": [{"name": "client", "request_header": "x-client", "values": ["web", "ios"]},
                                  {"name": "version", "response_header": "x-app-version", "values": ["1.4.2", "1.5.0", "2.0.0"]}]}}"#;
    let r = check("json_labels", &[("labels.json", config)], &["labels.json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // Constant labels lead every stat name, so the buckets' prefixes hold them.
    let prefix = |h: &str| {
        format!("\"wasmcustom.service=.=shop;.;team=.=payments;.;handler=.={h};.;method=.=\":{B}")
    };
    // H+1 = 2; L = (2+2)·(3+2) = 20; the counter's L_c = 4: 4 + 2·20·(60 + 48 + 12) + 1.
    assert_eq!(
        r.out(),
        vec![
            "labels.json: valid".to_string(),
            "  extraStatTags: [\"handler\",\"method\",\"status\",\"sampler\",\"reason\",\"plugin\",\"service\",\"team\",\"client\",\"version\"]".to_string(),
            format!("  sidecar.istio.io/statsHistogramBuckets: {{{},{}}}", prefix("/login"), prefix("none")),
            "  series: at most 4805 (counters 4, http_requests_total 2400, http_proxy_responses_total 1920, histograms 480, samplers 0, app_metrics_config_valid 1)".to_string(),
        ]
    );
    let bad = r#"{"http_metrics": {"labels": [{"name": "client", "request_header": "x-client", "values": ["web", "other"]}]}}"#;
    let r = check("json_labels_bad", &[("bad.json", bad)], &["bad.json"]);
    assert_eq!(r.code, 1);
    assert_eq!(
        r.err(),
        vec![
            r#"bad.json: http_metrics.labels[0].values[1]: "other" is what the label reads for a header value not listed (expected another value)"#
        ]
    );
}

#[test]
fn json_empty_file_is_the_default_configuration() {
    // As in the filter: empty means the seed's counters and request metrics, no templates.
    let r = check("json_empty", &[("empty.json", "  \n")], &["empty.json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.out(), valid("empty.json", &["none"]));
}

#[test]
fn json_without_request_metrics_needs_no_buckets() {
    let r = check(
        "json_off",
        &[("off.json", r#"{"http_metrics": {"enabled": false}}"#)],
        &["off.json"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.out(),
        vec![
            "off.json: valid".to_string(),
            tags_line(),
            "  sidecar.istio.io/statsHistogramBuckets: {}".to_string(),
            "  series: at most 3 (counters 2, http_requests_total 0, http_proxy_responses_total 0, \
             histograms 0, samplers 0, app_metrics_config_valid 1)"
                .to_string(),
        ]
    );
}

#[test]
fn json_errors_name_the_field_path() {
    let files = [
        (
            "field.json",
            r#"{"samplers": [{"name": "x", "cluster": "app", "path": "/count", "interval_second": 5, "value": {"text": true}}]}"#,
        ),
        (
            "status.json",
            r#"{"counters": [{"name": "a", "match": {}}, {"name": "b", "match": {"status": ["7xx"]}}]}"#,
        ),
        ("array.json", "[]"),
        ("syntax.json", "{\"counters\": [}"),
        ("dup.json", r#"{"counters": [], "counters": []}"#),
    ];
    let names: Vec<&str> = files.iter().map(|(n, _)| *n).collect();
    let r = check("json_errors", &files, &names);
    assert_eq!(r.code, 1);
    assert_eq!(r.out(), Vec::<&str>::new());
    assert_eq!(
        r.err(),
        vec![
            "field.json: samplers[0].interval_second: unknown field `interval_second`, expected one of `name`, `help`, \
             `cluster`, `authority`, `path`, `interval_seconds`, `timeout_ms`, `max_body_bytes`, `value`",
            "status.json: counters[1].match.status[0]: \"7xx\" is not a status code or class (expected 100-599 or 1xx-5xx)",
            "array.json: .: is not a JSON object (expected {\"counters\": …, \"http_metrics\": …, \"samplers\": …})",
            "syntax.json: .: expected value at line 1 column 15",
            "dup.json: counters: duplicate field `counters`",
        ]
    );
}

// ------------------------------------------------------------------ Envoy

#[test]
fn envoy_bootstrap_checks_each_filter_loading_this_module() {
    let good = string_value(r#"{"http_metrics": {"handlers": ["/login"]}}"#);
    let bad = string_value(r#"{"counters": [{"name": "9lives", "match": {}}]}"#);
    let yaml = bootstrap(&[
        envoy_filter("/etc/wasm/app_metrics.wasm", &good),
        envoy_filter("/etc/wasm/other_filter.wasm", &bad),
        envoy_filter("target/wasm32-wasip1/release/app_metrics.wasm", &bad),
        // No configuration at all: the defaults.
        envoy_filter("/var/local/app-metrics/plugin.wasm", ""),
    ]);
    let r = check("envoy", &[("envoy.yaml", &yaml)], &["envoy.yaml"]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let mut out = valid(
        &format!("envoy.yaml document 1, {HCM}[0].typed_config.config.configuration"),
        &["/login", "none"],
    );
    out.extend(valid(
        &format!("envoy.yaml document 1, {HCM}[3].typed_config.config"),
        &["none"],
    ));
    assert_eq!(r.out(), out);
    assert_eq!(
        r.err(),
        vec![
            format!(
                "envoy.yaml document 1, {HCM}[1].typed_config.config: skipped: loads \
                 /etc/wasm/other_filter.wasm, not app-metrics-wasm (--any-module checks it)"
            ),
            format!(
                "envoy.yaml document 1, {HCM}[2].typed_config.config.configuration: counters[0].name: \
                 \"9lives\" is not a metric name Envoy exports as is (expected [a-zA-Z_][a-zA-Z0-9_]*)"
            ),
        ]
    );
    // --any-module checks the other module's filter too.
    let r = check(
        "envoy_any",
        &[("envoy.yaml", &yaml)],
        &["--any-module", "envoy.yaml"],
    );
    assert_eq!(r.code, 1);
    assert_eq!(r.err().len(), 2, "{}", r.stderr);
    assert!(r.err()[0].starts_with(&format!(
        "envoy.yaml document 1, {HCM}[1].typed_config.config.configuration: counters[0].name: "
    )));
}

#[test]
fn envoy_ecds_bytes_value_typed_struct_and_config_discovery_default() {
    use base64::Engine;
    let good = r#"{"counters": [], "http_metrics": {"handlers": ["/a"]}}"#;
    let b64 = base64::engine::general_purpose::STANDARD.encode(good);
    // An ECDS discovery response (what path_config_source watches), a BytesValue configuration.
    let ecds = format!(
        "\
resources:
- \"@type\": type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig
  name: extensions.istio.io/wasmplugin/default.app-metrics
  typed_config:
    \"@type\": {WASM_FILTER}
    config:
      root_id: app_metrics
      configuration:
        \"@type\": type.googleapis.com/google.protobuf.BytesValue
        value: {b64}
      vm_config:
        code: {{ remote: {{ http_uri: {{ uri: \"oci://ghcr.io/acme/app-metrics-wasm:0.1.0\" }} }} }}
"
    );
    // An LDS listener whose filter is delivered by ECDS, with a bad default config, and an
    // EnvoyFilter carrying the filter as a TypedStruct with a wrong configuration type.
    let lds = format!(
        "\
name: app
filter_chains:
- filters:
  - name: envoy.filters.network.http_connection_manager
    typed_config:
      http_filters:
      - name: app-metrics
        config_discovery:
          type_urls: [{WASM_FILTER}]
          default_config:
            \"@type\": {WASM_FILTER}
            config:
              configuration:
                \"@type\": type.googleapis.com/google.protobuf.StringValue
                value: '{{\"samplers\": [{{\"name\": \"n\", \"cluster\": \"c\", \"path\": \"/\", \"interval_seconds\": 0, \"value\": {{\"text\": true}}}}]}}'
              vm_config: {{ code: {{ local: {{ filename: app_metrics.wasm }} }} }}
---
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {{ name: app-metrics, namespace: istio-system }}
spec:
  configPatches:
  - applyTo: HTTP_FILTER
    patch:
      operation: INSERT_BEFORE
      value:
        name: app-metrics
        typed_config:
          \"@type\": type.googleapis.com/udpa.type.v1.TypedStruct
          type_url: {WASM_FILTER}
          value:
            config:
              configuration:
                \"@type\": type.googleapis.com/google.protobuf.Struct
                value: {{ counters: [] }}
              vm_config: {{ code: {{ local: {{ filename: /var/local/wasm/app_metrics.wasm }} }} }}
"
    );
    let r = check(
        "ecds",
        &[("ecds.yaml", &ecds), ("lds.yaml", &lds)],
        &["ecds.yaml", "lds.yaml"],
    );
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(
        r.out(),
        valid_with(
            "ecds.yaml document 1, resources[0].typed_config.config.configuration",
            &["/a", "none"],
            0,
            0
        )
    );
    assert_eq!(
        r.err(),
        vec![
            "lds.yaml document 1, filter_chains[0].filters[0].typed_config.http_filters[0].config_discovery.default_config.config.configuration: \
             samplers[0].interval_seconds: 0 is out of range (expected 1-86400)",
            "lds.yaml document 2, EnvoyFilter istio-system/app-metrics, spec.configPatches[0].patch.value.typed_config.value.config.configuration: \
             @type google.protobuf.Struct: Envoy would hand the filter this message's protobuf encoding, not JSON \
             (expected google.protobuf.StringValue or google.protobuf.BytesValue)",
        ]
    );
}

#[test]
fn envoy_configuration_of_the_wrong_shape() {
    let cases = [
        (
            "string.yaml",
            "      configuration:\n        \"@type\": type.googleapis.com/google.protobuf.StringValue\n        value: [1]",
            "value: is not a string (google.protobuf.StringValue)",
        ),
        (
            "bytes.yaml",
            "      configuration:\n        \"@type\": type.googleapis.com/google.protobuf.BytesValue\n        value: \"not base64!\"",
            "value: is not base64 (google.protobuf.BytesValue in YAML/JSON): Invalid symbol 32, offset 3.",
        ),
        (
            "notype.yaml",
            "      configuration:\n        value: \"{}\"",
            "has no @type (expected google.protobuf.StringValue)",
        ),
    ];
    for (name, configuration, message) in cases {
        let yaml = bootstrap(&[envoy_filter("app_metrics.wasm", configuration)]);
        let r = check("envoy_shape", &[(name, &yaml)], &[name]);
        assert_eq!(r.code, 1, "{name}");
        assert_eq!(
            r.err(),
            vec![format!(
                "{name} document 1, {HCM}[0].typed_config.config.configuration: {message}"
            )],
            "{name}"
        );
    }
}

// ------------------------------------------------------------------ Istio

const DEPLOYMENT: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata: { name: app, namespace: default }
spec: { template: { spec: { containers: [{ name: app, image: app:1 }] } } }
";

#[test]
fn wasmplugins_in_a_multi_document_file() {
    let docs = [
        DEPLOYMENT.to_string(),
        // Numbers as Istio sees them (doubles): 30.0 is sent as 30, and accepted.
        wasmplugin(
            "good",
            "oci://ghcr.io/acme/app-metrics-wasm:0.1.0",
            "  pluginConfig:\n    http_metrics: { handlers: [/users, \"/users/{id}\"] }\n    samplers:\n    - { name: n, cluster: c, path: /count, interval_seconds: 30.0, value: { json_pointer: /count } }\n",
        ),
        wasmplugin(
            "other",
            "oci://ghcr.io/acme/basic-auth:1.0",
            "  pluginConfig: { nonsense: 1 }\n",
        ),
        wasmplugin(
            "bad",
            "file:///var/local/app-metrics/plugin.wasm",
            "  pluginConfig:\n    counters:\n    - { name: a, match: { status: [\"7xx\"] } }\n",
        ),
        wasmplugin(
            "fraction",
            "oci://ghcr.io/acme/app-metrics-wasm@sha256:0123",
            "  pluginConfig:\n    samplers:\n    - { name: n, cluster: c, path: /, interval_seconds: 1.5, value: { text: true } }\n",
        ),
        // No pluginConfig: the defaults.
        wasmplugin("defaults", "https://example.com/app_metrics.wasm", ""),
    ];
    let r = check(
        "wasmplugin",
        &[("all.yaml", &docs.join("---\n"))],
        &["all.yaml"],
    );
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let mut out = valid_with(
        "all.yaml document 2, WasmPlugin default/good, spec.pluginConfig",
        &["/users", "/users/{id}", "none"],
        2,
        1,
    );
    out.extend(valid(
        "all.yaml document 6, WasmPlugin default/defaults, spec.pluginConfig",
        &["none"],
    ));
    assert_eq!(r.out(), out);
    assert_eq!(
        r.err(),
        vec![
            "all.yaml document 3, WasmPlugin default/other, spec: skipped: loads \
             oci://ghcr.io/acme/basic-auth:1.0, not app-metrics-wasm (--any-module checks it)",
            "all.yaml document 4, WasmPlugin default/bad, spec.pluginConfig: counters[0].match.status[0]: \
             \"7xx\" is not a status code or class (expected 100-599 or 1xx-5xx)",
            "all.yaml document 5, WasmPlugin default/fraction, spec.pluginConfig: samplers[0].interval_seconds: \
             invalid type: floating point number, expected u64",
        ]
    );
}

#[test]
fn trafficextension_wasm_is_checked_and_lua_is_not() {
    let yaml = "\
apiVersion: extensions.istio.io/v1alpha1
kind: TrafficExtension
metadata: { name: app-metrics, namespace: shop }
spec:
  phase: STATS
  wasm:
    url: oci://registry.local/app-metrics-wasm:0.2.0
    pluginName: app_metrics
    pluginConfig:
      http_metrics: { handlers: [/cart] }
---
apiVersion: extensions.istio.io/v1alpha1
kind: TrafficExtension
metadata: { name: lua, namespace: shop }
spec:
  lua: { inlineCode: 'function envoy_on_request(h) end' }
---
apiVersion: extensions.istio.io/v1alpha1
kind: TrafficExtension
metadata: { name: typo, namespace: shop }
spec:
  wasm:
    url: oci://registry.local/app-metrics-wasm:0.2.0
    pluginConfig:
      http_metric: { handlers: [/cart] }
";
    let r = check("trafficextension", &[("te.yaml", yaml)], &["te.yaml"]);
    assert_eq!(r.code, 1);
    assert_eq!(
        r.out(),
        valid(
            "te.yaml document 1, TrafficExtension shop/app-metrics, spec.wasm.pluginConfig",
            &["/cart", "none"]
        )
    );
    assert_eq!(
        r.err(),
        vec![
            "te.yaml document 3, TrafficExtension shop/typo, spec.wasm.pluginConfig: http_metric: unknown field \
             `http_metric`, expected one of `counters`, `http_metrics`, `samplers`, `labels`, `grpc`"
        ]
    );
}

#[test]
fn kustomize_output_configmap_data_and_lists() {
    // What `kubectl kustomize` makes of a configMapGenerator holding an Envoy config, and what
    // `kubectl get -o yaml` makes of several objects (a List).
    let envoy = bootstrap(&[envoy_filter(
        "/etc/app-metrics/app_metrics.wasm",
        &string_value(r#"{"http_metrics": {"handlers": ["/x/{id}"]}}"#),
    )]);
    let configmap = serde_yaml::to_string(&serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "envoy-5t2k9", "namespace": "web"},
        "data": {"envoy.yaml": envoy, "README": "static_resources: nothing here"},
    }))
    .unwrap();
    let list = "\
apiVersion: v1
kind: List
metadata: { name: list }
items:
- apiVersion: extensions.istio.io/v1alpha1
  kind: WasmPlugin
  metadata: { name: from-list, namespace: web }
  spec:
    url: oci://ghcr.io/acme/app-metrics-wasm:0.1.0
    pluginConfig: { samplers: [] }
";
    let generated = format!("{DEPLOYMENT}---\n{configmap}---\n{list}");
    let r = check("kustomize", &[("built.yaml", &generated)], &["built.yaml"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let mut out = valid(
        &format!(
            "built.yaml document 2, ConfigMap web/envoy-5t2k9, data[\"envoy.yaml\"] document 1, \
             {HCM}[0].typed_config.config.configuration"
        ),
        &["/x/{id}", "none"],
    );
    out.extend(valid(
        "built.yaml document 3, List list, items[0] WasmPlugin web/from-list, spec.pluginConfig",
        &["none"],
    ));
    assert_eq!(r.out(), out);
}

// ------------------------------------------------------------------ files, arguments, exit codes

#[test]
fn a_file_with_nothing_to_check_is_an_error() {
    let other = bootstrap(&[envoy_filter("/etc/authz.wasm", "")]);
    let r = check(
        "nothing",
        &[
            ("deploy.yaml", DEPLOYMENT),
            ("other.yaml", &other),
            ("empty.yaml", ""),
        ],
        &["deploy.yaml", "other.yaml", "empty.yaml"],
    );
    assert_eq!(r.code, 1);
    assert_eq!(r.out(), Vec::<&str>::new());
    let nothing = "no app-metrics-wasm configuration found (looked for wasm HTTP filters, \
                   WasmPlugins and TrafficExtensions loading app_metrics.wasm, plugin.wasm or an \
                   app-metrics image)";
    assert_eq!(
        r.err(),
        vec![
            format!("deploy.yaml: {nothing}"),
            format!(
                "other.yaml document 1, {HCM}[0].typed_config.config: skipped: loads /etc/authz.wasm, \
                 not app-metrics-wasm (--any-module checks it)"
            ),
            format!("other.yaml: {nothing}"),
            format!("empty.yaml: {nothing}"),
        ]
    );
}

#[test]
fn yaml_that_does_not_parse_is_an_error() {
    let r = check(
        "syntax",
        &[("broken.yaml", "kind: WasmPlugin\nspec: [\n")],
        &["broken.yaml"],
    );
    assert_eq!(r.code, 1);
    assert_eq!(r.err().len(), 1, "{}", r.stderr);
    assert!(
        r.err()[0].starts_with("broken.yaml document 1: is not YAML: "),
        "{}",
        r.stderr
    );
}

#[test]
fn good_and_bad_files_together_exit_1_and_print_both() {
    let r = check(
        "mixed",
        &[("good.json", "{}"), ("bad.json", r#"{"samplers": {}}"#)],
        &["good.json", "missing.json", "bad.json"],
    );
    assert_eq!(r.code, 1);
    assert_eq!(r.out(), valid("good.json", &["none"]));
    assert_eq!(
        r.err(),
        vec![
            "missing.json: cannot read: No such file or directory (os error 2)",
            "bad.json: samplers: invalid type: object, expected an array",
        ]
    );
}

#[test]
fn stdin_is_read_as_yaml() {
    let d = dir("stdin", &[]);
    let r = run_in(
        &d,
        &["check", "-"],
        &wasmplugin("p", "oci://x/app-metrics-wasm:1", ""),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.out(),
        valid(
            "(stdin) document 1, WasmPlugin default/p, spec.pluginConfig",
            &["none"]
        )
    );
}

#[test]
fn usage_errors_exit_2() {
    let d = dir("usage", &[("c.json", "{}")]);
    for args in [
        &[][..],
        &["check"][..],
        &["check", "--all", "c.json"][..],
        &["validate", "c.json"][..],
    ] {
        let r = run_in(&d, args, "");
        assert_eq!(r.code, 2, "{args:?}");
        assert!(r.stderr.contains("usage: app-metrics check"), "{args:?}");
        assert_eq!(r.stdout, "", "{args:?}");
    }
    let r = run_in(&d, &["check", "--", "--any-module"], "");
    assert_eq!(r.code, 1);
    assert!(r.stderr.starts_with("--any-module: cannot read"));
    let r = run_in(&d, &["--help"], "");
    assert_eq!(r.code, 0);
    assert!(r.stdout.starts_with("usage: app-metrics check"));
}
