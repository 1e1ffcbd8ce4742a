//! `app-metrics check --from IN-FORCE NEW` (src/bin/app-metrics/change.rs), run as a process:
//! whether a change of configuration needs a proxy restart (exit 3) or not (0), the exact tags,
//! bucket keys and module it needs, and errors (1) naming the field.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test code

mod cli;

use app_metrics::names::LABEL_NAMES;
use cli::*;
use std::path::Path;

const RESTART: i32 = 3;

/// `check --from old NEW` in a directory holding `files`.
fn change(test: &str, files: &[(&str, &str)], old: &str, new: &str) -> Run {
    check(&format!("change_{test}"), files, &["--from", old, new])
}

/// The run ended with `code` and wrote nothing to stderr.
fn assert_clean(r: &Run, code: i32) {
    assert_eq!(
        (r.code, r.err()),
        (code, Vec::<&str>::new()),
        "{}",
        r.stderr
    );
}

fn no_restart(new: &str) -> String {
    format!("{new}: no restart needed: the stats tags and histogram buckets in force cover it")
}

fn restart(new: &str) -> String {
    format!(
        "{new}: restart needed: the proxy reads stats tags and histogram buckets when it starts; \
         add these to the proxy first (a restart), then apply {new}"
    )
}

/// The one bucket key of every configuration that makes histograms.
const KEY: &str = "wasmcustom.";

fn annotation(keys: &[String]) -> String {
    let entries: Vec<String> = keys.iter().map(|k| format!("\"{k}\":{B}")).collect();
    format!(
        "  sidecar.istio.io/statsHistogramBuckets: {{{}}}",
        entries.join(",")
    )
}

fn envoy_buckets(key: &str) -> String {
    format!("  Envoy histogram_bucket_settings: {{ match: {{ prefix: \"{key}\" }}, buckets: {B} }}")
}

fn envoy_tag(name: &str) -> String {
    format!("  Envoy stats_tags: {{ tag_name: {name}, regex: \"({name}=\\\\.=(.*?);\\\\.;)\" }}")
}

fn tags(more: &[&str]) -> String {
    let all: Vec<&str> = LABEL_NAMES.iter().chain(more).copied().collect();
    format!("  extraStatTags: {}", serde_json::to_string(&all).unwrap())
}

const LOGIN: &str = r#"{"http_metrics": {"handlers": ["/login"]}}"#;

#[test]
fn no_change_needs_no_restart() {
    let r = change(
        "same",
        &[("old.json", LOGIN), ("new.json", LOGIN)],
        "old.json",
        "new.json",
    );
    assert_clean(&r, 0);
    assert_eq!(r.out(), [no_restart("new.json")]);
    // A shipped WasmPlugin against itself, and a handler or a label taken away: nothing to add.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let file = "istio/wasmplugin.yaml";
    let r = run_in(root, &["check", "--from", file, file], "");
    assert_clean(&r, 0);
    assert_eq!(r.out(), [no_restart(file)]);
    let more = r#"{"http_metrics": {"handlers": ["/login", "/orders"], "labels": [{"name": "client", "request_header": "x-client", "values": ["web"]}]}}"#;
    let r = change(
        "fewer",
        &[("old.json", more), ("new.json", LOGIN)],
        "old.json",
        "new.json",
    );
    assert_eq!(
        (r.code, r.out()),
        (0, vec![no_restart("new.json").as_str()])
    );
}

#[test]
fn a_new_handler_or_plugin_needs_no_restart() {
    // One bucket key covers every handler: a new template is only a new configuration.
    let new = r#"{"http_metrics": {"handlers": ["/login", "/orders"]}}"#;
    let r = change(
        "handler",
        &[("old.json", LOGIN), ("new.json", new)],
        "old.json",
        "new.json",
    );
    assert_clean(&r, 0);
    assert_eq!(r.out(), [no_restart("new.json")]);
    // A second plugin with other handlers, beside the one in force: the same key.
    let two = [
        wasmplugin("a", LEAN, LOGIN_YAML),
        wasmplugin(
            "b",
            LEAN,
            "  pluginConfig:\n    http_metrics: { handlers: [/cart, \"/orders/{id}\"] }\n",
        ),
    ]
    .join("---\n");
    let one = wasmplugin("a", LEAN, LOGIN_YAML);
    let r = change(
        "plugin",
        &[("old.yaml", &one), ("new.yaml", &two)],
        "old.yaml",
        "new.yaml",
    );
    assert_clean(&r, 0);
    assert_eq!(r.out(), [no_restart("new.yaml")]);
}

#[test]
fn the_first_histograms_need_the_bucket_key_first() {
    let off = r#"{"http_metrics": {"enabled": false}}"#;
    let r = change(
        "first_histograms",
        &[("old.json", off), ("new.json", LOGIN)],
        "old.json",
        "new.json",
    );
    assert_clean(&r, RESTART);
    assert_eq!(
        r.out(),
        [
            restart("new.json"),
            format!("  add histogram buckets: {KEY}"),
            annotation(&[KEY.to_string()]),
            envoy_buckets(KEY),
        ]
    );
}

#[test]
fn a_new_label_name_needs_its_stats_tag_first() {
    // A dynamic label comes after the method in a stat name: a tag, the bucket keys stay.
    let dynamic = r#"{"http_metrics": {"handlers": ["/login"], "labels": [{"name": "client", "request_header": "x-client", "values": ["web", "ios"]}]}}"#;
    let r = change(
        "dynamic",
        &[("old.json", LOGIN), ("new.json", dynamic)],
        "old.json",
        "new.json",
    );
    assert_clean(&r, RESTART);
    assert_eq!(
        r.out(),
        [
            restart("new.json"),
            "  add stats tag: client".to_string(),
            tags(&["client"]),
            envoy_tag("client"),
        ]
    );
    // A constant label leads every stat name: a tag, and the bucket key stays.
    let constant = r#"{"labels": {"team": "pay"}, "http_metrics": {"handlers": ["/login"]}}"#;
    let r = change(
        "constant",
        &[("old.json", LOGIN), ("new.json", constant)],
        "old.json",
        "new.json",
    );
    assert_clean(&r, RESTART);
    assert_eq!(
        r.out(),
        [
            restart("new.json"),
            "  add stats tag: team".to_string(),
            tags(&["team"]),
            envoy_tag("team"),
        ]
    );
    // The same label's value changed: no new tag, the same bucket key.
    let other = r#"{"labels": {"team": "ops"}, "http_metrics": {"handlers": ["/login"]}}"#;
    let r = change(
        "constant_value",
        &[("old.json", constant), ("new.json", other)],
        "old.json",
        "new.json",
    );
    assert_clean(&r, 0);
    assert_eq!(r.out(), [no_restart("new.json")]);
}

const BODY_RULE: &str = r#"{"http_metrics": {"handlers": ["/login"]}, "counters": [{"name": "locked_logins_total", "match": {"path": "/login", "status": ["2xx"], "response_json": [{"pointer": "/ok", "equals": false}]}}]}"#;
const BODY_RULE_YAML: &str = "  pluginConfig:\n    http_metrics: { handlers: [/login] }\n    counters:\n    - { name: locked_logins_total, match: { path: /login, status: [\"2xx\"], response_json: [{ pointer: /ok, equals: false }] } }\n";
const LOGIN_YAML: &str = "  pluginConfig:\n    http_metrics: { handlers: [/login] }\n";
const LEAN: &str = "oci://ghcr.io/acme/app-metrics-wasm:0.1.0";
const BODIES: &str = "oci://ghcr.io/acme/app-metrics-wasm:0.1.0-bodies";

fn bodies_line(shown: &str, field: &str) -> String {
    format!(
        "  module for {shown}: app_metrics_bodies.wasm (image tag {}-bodies): {field} reads a body, \
         and the configuration in force reads none: load it before or with this change (the lean \
         module refuses this configuration)",
        env!("CARGO_PKG_VERSION")
    )
}

#[test]
fn a_configuration_that_starts_reading_a_body_needs_the_bodies_module() {
    let r = change(
        "body",
        &[("old.json", LOGIN), ("new.json", BODY_RULE)],
        "old.json",
        "new.json",
    );
    assert_clean(&r, 0);
    assert_eq!(
        r.out(),
        [
            no_restart("new.json"),
            bodies_line("new.json", "counters[0].match.response_json")
        ]
    );
    // And back: the lean module will do.
    let r = change(
        "body_back",
        &[("old.json", BODY_RULE), ("new.json", LOGIN)],
        "old.json",
        "new.json",
    );
    assert_clean(&r, 0);
    assert_eq!(
        r.out(),
        [
            no_restart("new.json"),
            "  module for new.json: it reads no body: app_metrics.wasm will do (the body-reading \
             module keeps working)"
                .to_string()
        ]
    );
    // A WasmPlugin that moves to the -bodies image with its body rule: fine, said once.
    let old = wasmplugin("app-metrics", LEAN, LOGIN_YAML);
    let new = wasmplugin("app-metrics", BODIES, BODY_RULE_YAML);
    let r = change(
        "body_image",
        &[("old.yaml", &old), ("new.yaml", &new)],
        "old.yaml",
        "new.yaml",
    );
    assert_clean(&r, 0);
    let at = "new.yaml document 1, WasmPlugin default/app-metrics, spec.pluginConfig";
    assert_eq!(
        r.out(),
        [
            no_restart("new.yaml"),
            bodies_line(at, "counters[0].match.response_json")
        ]
    );
    // The body rule on the lean image: the filter would refuse it, so no comparison.
    let new = wasmplugin("app-metrics", LEAN, BODY_RULE_YAML);
    let r = change(
        "body_lean",
        &[("old.yaml", &old), ("new.yaml", &new)],
        "old.yaml",
        "new.yaml",
    );
    assert_eq!((r.code, r.stdout.as_str()), (1, ""));
    assert_eq!(
        r.err(),
        [format!(
            "{at}: counters[0].match.response_json: reads a body, which app_metrics.wasm does not \
             (expected the body-reading build, app_metrics_bodies.wasm, image tag suffix -bodies: \
             README, \"Counters on JSON bodies\"); spec.url ({LEAN}) loads the lean build"
        )]
    );
}

#[test]
fn plugins_of_a_file_pair_by_place_and_the_proxy_needs_them_all() {
    // Two plugins, reordered in NEW: `b` starts reading a body (its module line, not `a`'s), and
    // `a` gains a constant label: a tag the proxy (which serves both) lacks.
    let doc = |name: &str, url: &str, config: &str| wasmplugin(name, url, config);
    let old = [doc("a", LEAN, LOGIN_YAML), doc("b", BODIES, LOGIN_YAML)].join("---\n");
    let new = [
        doc("b", BODIES, BODY_RULE_YAML),
        doc(
            "a",
            LEAN,
            "  pluginConfig:\n    labels: { team: pay }\n    http_metrics: { handlers: [/login] }\n",
        ),
    ]
    .join("---\n");
    let r = change(
        "pairs",
        &[("old.yaml", &old), ("new.yaml", &new)],
        "old.yaml",
        "new.yaml",
    );
    assert_clean(&r, RESTART);
    assert_eq!(
        r.out(),
        [
            restart("new.yaml"),
            "  add stats tag: team".to_string(),
            tags(&["team"]),
            envoy_tag("team"),
            bodies_line(
                "new.yaml document 1, WasmPlugin default/b, spec.pluginConfig",
                "counters[0].match.response_json"
            ),
        ]
    );
}

#[test]
fn a_bad_new_or_in_force_configuration_is_an_error_naming_the_field() {
    let bad = r#"{"http_metrics": {"handlers": ["/login"]}, "counters": [{"name": "x", "match": {"status": ["7xx"]}}]}"#;
    let message = "counters[0].match.status[0]: \"7xx\" is not a status code or class (expected 100-599 or 1xx-5xx)";
    let files = [("good.json", LOGIN), ("bad.json", bad)];
    for (old, new) in [("good.json", "bad.json"), ("bad.json", "good.json")] {
        let r = change("bad", &files, old, new);
        assert_eq!((r.code, r.stdout.as_str()), (1, ""), "{old} {new}");
        assert_eq!(r.err(), [format!("bad.json: {message}")]);
    }
    let r = change("missing", &files, "good.json", "missing.json");
    assert_eq!((r.code, r.stdout.as_str()), (1, ""));
    assert_eq!(
        r.err(),
        ["missing.json: cannot read: No such file or directory (os error 2)"]
    );
    // A file holding no configuration of this module is an error too, not "no restart".
    let r = change(
        "nothing",
        &[("good.json", LOGIN), ("none.yaml", "kind: Service\n")],
        "good.json",
        "none.yaml",
    );
    assert_eq!((r.code, r.stdout.as_str()), (1, ""));
    assert!(r
        .stderr
        .starts_with("none.yaml: no app-metrics-wasm configuration found"));
}

#[test]
fn from_takes_one_in_force_file_and_one_new_file() {
    let d = dir("change_usage", &[("a.json", "{}"), ("b.json", "{}")]);
    for args in [
        &["check", "--from"][..],
        &["check", "--from", "a.json"][..],
        &["check", "--from", "a.json", "a.json", "b.json"][..],
        &["check", "--from", "a.json", "--from", "b.json", "b.json"][..],
        &["check", "--from", "-", "-"][..],
    ] {
        let r = run_in(&d, args, "");
        assert_eq!((r.code, r.stdout.as_str()), (2, ""), "{args:?}");
        assert!(r.stderr.contains("usage: app-metrics check"), "{args:?}");
    }
    // NEW from stdin.
    let r = run_in(&d, &["check", "--from", "a.json", "-"], "{}");
    assert_eq!(r.code, 1, "{}", r.stderr);
    // `-` is YAML on stdin: `{}` holds no configuration; a WasmPlugin does.
    let r = run_in(
        &d,
        &["check", "--from", "a.json", "-"],
        &wasmplugin("p", LEAN, "  pluginConfig: {}\n"),
    );
    assert_clean(&r, 0);
    assert_eq!(r.out(), [no_restart("(stdin)")]);
    let r = run_in(&d, &["--help"], "");
    assert!(r
        .stdout
        .contains("3 with --from when the change needs a restart"));
}
