//! Unit tests of src/bin/app-metrics/change.rs (compiled into the binary's test build).

use super::*;

#[test]
fn a_place_is_a_location_without_its_document_number() {
    for (location, expected) in [
        (
            "document 12, WasmPlugin default/a, spec.pluginConfig",
            "WasmPlugin default/a, spec.pluginConfig",
        ),
        ("document 1", ""),
        ("", ""),
        // Only the file's own document number: a ConfigMap's embedded ones stay.
        (
            "document 2, ConfigMap default/envoy, data[\"envoy.yaml\"] document 3, static_resources",
            "ConfigMap default/envoy, data[\"envoy.yaml\"] document 3, static_resources",
        ),
        ("static_resources.listeners[0]", "static_resources.listeners[0]"),
    ] {
        assert_eq!(place(location), expected, "{location}");
    }
}
