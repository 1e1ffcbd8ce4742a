//! Unit tests of src/labels.rs (compiled into the library's test build).

use super::*;
use crate::test_support::*;

logic_test!(
    fn encodes_labels_istio_style() {
        assert_eq!(
            stat_name(
                "http_requests_total",
                &[("handler", "/login"), ("method", "POST"), ("status", "2xx")]
            ),
            "handler=.=/login;.;method=.=POST;.;status=.=2xx;.;http_requests_total"
        );
        assert_eq!(stat_name("total_users", &[]), "total_users");
    }
);

logic_test!(
    fn methods_outside_the_standard_set_are_other() {
        assert_eq!(method_label(method_index(b"POST")), "POST");
        assert_eq!(method_label(method_index(b"post")), "other");
        assert_eq!(method_label(method_index(b"BREW")), "other");
        assert_eq!(method_label(method_index(&[0xff, 0x00])), "other");
    }
);

logic_test!(
    fn statuses_map_to_classes() {
        assert_eq!(status_label(status_index(200)), "2xx");
        assert_eq!(status_label(status_index(401)), "4xx");
        assert_eq!(status_label(status_index(599)), "5xx");
        assert_eq!(status_label(status_index(99)), "other");
        assert_eq!(status_label(status_index(600)), "other");
        assert_eq!(status_label(status_index(0)), "other");
    }
);

logic_test! {
fn istio_captured_substrings_are_found() {
    assert_eq!(istio_captured("/static/cache.v1/{file}"), Some("cache."));
    assert_eq!(istio_captured("/a/rbac.denied"), Some("rbac.denied"));
    assert_eq!(istio_captured("/users/{id}"), None);
    assert_eq!(istio_captured("/cache/tag/rbac"), None);
}
}

logic_test! {
fn response_code_endings_are_recognised() {
    for name in ["upstream_rq_200", "a_rq_5xx", "x_rq_404"] {
        assert!(ends_like_response_code(name), "{name}");
    }
    for name in ["upstream_rq_total", "a_rq_20", "a_rq_2000", "a_rq_x00", "rq_200", "a_rq_2x"] {
        assert!(!ends_like_response_code(name), "{name}");
    }
}
}

logic_test! {
fn plugin_names_become_one_clean_label_value() {
    assert_eq!(
        plugin_label_value(b"extensions.istio.io/wasmplugin/default.app-metrics"),
        "extensions.istio.io/wasmplugin/default.app-metrics"
    );
    assert_eq!(
        plugin_label_value(b"extensions.istio.io/wasmplugin/tag.cache.app~x"),
        "extensions.istio.io/wasmplugin/tag_cache_app~x"
    );
    assert_eq!(plugin_label_value(b"a;b=c.shadow_allowed"), "a_b_c_shadow_allowed");
    assert_eq!(plugin_label_value(b"cache.cache.x"), "cache_cache_x");
    for value in [
        plugin_label_value(b"x.component.y.wasm_filter.z.rbac.allowed.istio_dry_run_deny_"),
        plugin_label_value(b"tag.tag.tag."),
    ] {
        assert_eq!(istio_captured(&value), None, "{value}");
    }
}
}
