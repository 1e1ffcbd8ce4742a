//! Unit tests of src/bin/app-metrics/module.rs (compiled into the binary's test build).

use super::*;
use std::path::Path;

#[test]
fn which_code_is_this_module() {
    for yes in [
        "target/wasm32-wasip1/release/app_metrics.wasm",
        "target/wasm32-wasip1/release/deps/app_metrics.wasm",
        "/var/local/app-metrics/plugin.wasm",
        "file:///var/local/wasm/plugin.wasm",
        "oci://ghcr.io/acme/app-metrics-wasm:0.1.0",
        "ghcr.io/acme/app-metrics-wasm@sha256:0123abcd",
        "https://example.com/filters/app_metrics.wasm?v=2",
    ] {
        assert!(is_this_module(yes), "{yes}");
    }
    for no in [
        "/etc/wasm/other_filter.wasm",
        "oci://ghcr.io/app-metrics/basic-auth:1.0",
        "https://app-metrics.example.com/filter.wasm",
        "inline code",
        "no vm_config.code",
        "",
    ] {
        assert!(!is_this_module(no), "{no}");
    }
}

#[test]
fn which_build_a_module_source_is() {
    // Istio plugin URLs: an image reference unless the scheme says otherwise.
    for (url, lean) in [
        ("oci://ghcr.io/acme/app-metrics-wasm:0.1.0", true),
        ("ghcr.io/acme/app-metrics-wasm:0.1.0", true),
        ("oci://registry.local:5000/app-metrics-wasm:0.1.0", true),
        ("oci://ghcr.io/acme/app-metrics-wasm:0.1.0-bodies", false),
        ("registry.local:5000/app-metrics-wasm:0.1.0-bodies", false),
        // No tag: the digest (or latest) says nothing of the build.
        ("oci://ghcr.io/acme/app-metrics-wasm@sha256:0123", false),
        ("oci://registry.local:5000/app-metrics-wasm", false),
        ("file:///var/local/app-metrics/plugin.wasm", false),
        ("file:///opt/app_metrics.wasm", true),
        ("https://example.com/app_metrics.wasm?v=2", true),
        ("https://example.com/app_metrics_bodies.wasm", false),
    ] {
        assert_eq!(loads_lean_module(url, true), lean, "{url}");
    }
    // Envoy code file names and URLs.
    for (source, lean) in [
        ("target/wasm32-wasip1/release/app_metrics.wasm", true),
        ("/etc/app-metrics/app_metrics.wasm", true),
        ("https://example.com/app_metrics.wasm", true),
        (
            "target/wasm32-wasip1/release/app_metrics_bodies.wasm",
            false,
        ),
        ("/var/local/app-metrics/plugin.wasm", false),
        ("the environment variable WASM", false),
    ] {
        assert_eq!(loads_lean_module(source, false), lean, "{source}");
    }
}

#[test]
fn the_shipped_bodies_patch_swaps_the_lean_image_for_the_bodies_one() {
    // istio/bodies (a kustomize Component; make kit checks its build) swaps the lean image's URL
    // for the bodies one: the same repository, the tag with -bodies.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let url = |file: &str| {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        let line = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("url: "))
            .unwrap();
        line.to_string()
    };
    let (lean, bodies) = (
        url("istio/wasmplugin.yaml"),
        url("istio/bodies/wasmplugin-patch.yaml"),
    );
    assert_eq!(bodies, format!("{lean}-bodies"));
    assert!(loads_lean_module(&lean, true), "{lean}");
    assert!(!loads_lean_module(&bodies, true), "{bodies}");
}
