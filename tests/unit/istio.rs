use super::*;
use crate::test_support::*;

logic_test! {
fn istio_captured_substrings_are_found() {
    assert_eq!(captured(Place::Template, "/static/cache.v1/{file}"), Some("cache."));
    assert_eq!(captured(Place::Template, "/a/rbac.denied"), Some("rbac.denied"));
    assert_eq!(captured(Place::Template, "/users/{id}"), None);
    assert_eq!(captured(Place::Template, "/cache/tag/rbac"), None);
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
        assert_eq!(captured(Place::Template, &value), None, "{value}");
    }
}
}

logic_test! {
fn what_is_captured_depends_on_the_place() {
    // A metric name follows a '.', so "tag" alone is not captured but a name ending in it is.
    assert_eq!(captured(Place::MetricName, "tag_users"), None);
    assert_eq!(captured(Place::MetricName, "cache"), None);
    assert_eq!(captured(Place::LabelName, "tag"), None);
    assert_eq!(captured(Place::LabelValue, "cache"), None);
    assert_eq!(captured(Place::LabelValue, "a.rbac"), None);
    assert_eq!(captured(Place::LabelValue, "x_rbac"), None);
    assert_eq!(captured(Place::MetricName, "istio_dry_run_allow_x"), Some(".istio_dry_run_allow_"));
    assert_eq!(captured(Place::LabelValue, "wasm_filter"), None);
    assert_eq!(captured(Place::LabelValue, "a.cache"), None);
    assert_eq!(captured(Place::LabelValue, "v.shadow_denied"), Some(".shadow_denied"));
}
}

logic_test! {
fn cluster_names_give_authorities() {
    assert_eq!(cluster_authority("outbound|8000||app.ns.svc.cluster.local").as_deref(), Some("app.ns.svc.cluster.local:8000"));
    assert_eq!(cluster_authority("inbound-vip|8000|http|app.ns.svc.cluster.local").as_deref(), Some("app.ns.svc.cluster.local:8000"));
    assert_eq!(cluster_authority("inbound|8000||").as_deref(), Some("localhost:8000"));
    assert_eq!(cluster_authority("outbound|8000||"), None);
    assert_eq!(cluster_authority("outbound|http||app"), None);
    assert_eq!(cluster_authority("app"), None);
    assert_eq!(tag_regex("tenant"), "(tenant=\\.=(.*?);\\.;)");
}
}
