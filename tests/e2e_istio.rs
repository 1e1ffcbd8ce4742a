//! Istio without a cluster: Envoy with the parts of an Istio sidecar bootstrap that decide whether
//! our metrics show up (Istio's stats inclusion list, its default tag regexes plus the
//! `extraStatTags` ones, Istio-style cluster names), and the filter configured from the
//! `pluginConfig` of the shipped `istio/wasmplugin.yaml`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test code

mod common;

use common::*;
use std::time::Duration;

/// The WasmPlugin's pluginConfig, as the JSON string Istio hands the filter.
fn plugin_config_from_wasmplugin() -> serde_json::Value {
    let text = std::fs::read_to_string(repo_root().join("istio/wasmplugin.yaml")).unwrap();
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let value = serde_json::to_value(serde_yaml::Value::deserialize(doc).unwrap()).unwrap();
        if value["kind"] == "WasmPlugin" {
            return value["spec"]["pluginConfig"].clone();
        }
    }
    panic!("no WasmPlugin in istio/wasmplugin.yaml");
}

use serde::Deserialize;

/// Istio's extraStatTags entries become `(<tag>=\.=(.*?);\.;)` regexes, next to Istio's own tags.
fn istio_like_bootstrap(
    plugin_config: &str,
    clusters: &[(String, u16)],
    listen: u16,
    admin: u16,
) -> String {
    let extra_tags: String = ["handler", "method", "status", "sampler", "reason"]
        .iter()
        .map(|t| format!("  - {{ tag_name: {t}, regex: \"({t}=\\\\.=(.*?);\\\\.;)\" }}\n"))
        .collect();
    let clusters: String = clusters
        .iter()
        .map(|(name, port)| cluster_yaml(name, *port))
        .collect();
    let config_json = plugin_config;
    format!(
        r#"node: {{ id: "sidecar~10.0.0.7~k8s-sample-api-5d9c7b-abcde.default~default.svc.cluster.local", cluster: k8s-sample-api.default }}
admin:
  address:
    socket_address: {{ address: 127.0.0.1, port_value: {admin} }}
stats_flush_interval: 1s
stats_config:
  use_all_default_tags: false
  stats_matcher:
    inclusion_list:
      patterns:
      - prefix: "reporter="
      - prefix: cluster_manager
      - prefix: listener_manager
      - prefix: server
      - prefix: cluster.xds-grpc
      - prefix: wasm
      - prefix: component
  stats_tags:
  - {{ tag_name: cluster_name, regex: "^cluster\\.((.+?(\\..+?\\.svc\\.cluster\\.local)?)\\.)" }}
  - {{ tag_name: tcp_prefix, regex: "^tcp\\.((.*?)\\.)\\w+?$" }}
  - {{ tag_name: response_code, regex: "(response_code=\\.=(.+?);\\.;)|_rq(_(\\.d{{3}}))$" }}
  - {{ tag_name: response_code_class, regex: "_rq(_(\\dxx))$" }}
  - {{ tag_name: reporter, regex: "(reporter=\\.=(.*?);\\.;)" }}
  - {{ tag_name: source_workload, regex: "(source_workload=\\.=(.*?);\\.;)" }}
  - {{ tag_name: destination_service, regex: "(destination_service=\\.=(.*?);\\.;)" }}
  - {{ tag_name: request_protocol, regex: "(request_protocol=\\.=(.*?);\\.;)" }}
{extra_tags}static_resources:
  listeners:
  - name: virtualInbound
    address:
      socket_address: {{ address: 127.0.0.1, port_value: {listen} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: inbound_0.0.0.0_8000
          route_config:
            name: "inbound|8000||"
            virtual_hosts:
            - name: inbound
              domains: ["*"]
              routes:
              - match: {{ prefix: "/" }}
                route: {{ cluster: "inbound|8000||" }}
          http_filters:
          - name: app-metrics.default
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
              config:
                name: default.app-metrics
                root_id: app_metrics
                failure_policy: FAIL_OPEN
                configuration:
                  "@type": type.googleapis.com/google.protobuf.StringValue
                  value: {config_json:?}
                vm_config:
                  vm_id: default.app-metrics
                  runtime: envoy.wasm.runtime.v8
                  code:
                    local: {{ filename: "{wasm}" }}
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
{clusters}"#,
        wasm = wasm_path(),
    )
}

#[test]
fn wasmplugin_config_in_an_istio_like_sidecar() {
    let plugin_config = plugin_config_from_wasmplugin();
    assert!(
        plugin_config.is_object(),
        "pluginConfig must be an object: {plugin_config}"
    );
    let upstream = Upstream::start(|method, url| match (method, url) {
        ("POST", "/login?ok") => Reply::new(200, "{}"),
        ("POST", "/login?bad") => Reply::new(400, "{}"),
        (_, "/users/count") => Reply::new(200, r#"{"count": 11}"#),
        _ => Reply::new(200, "[]").header("X-Total-Count", "11"),
    });
    // Every cluster the WasmPlugin's samplers name exists in a sidecar; here they point at the app.
    let mut clusters = vec![("inbound|8000||".to_string(), upstream.port)];
    let samplers = plugin_config["samplers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        !samplers.is_empty(),
        "the WasmPlugin should configure the total_users sampler"
    );
    for sampler in &samplers {
        let cluster = sampler["cluster"].as_str().unwrap().to_string();
        assert!(
            cluster.contains('|'),
            "{cluster:?} is not an Istio cluster name"
        );
        if !clusters.iter().any(|(c, _)| *c == cluster) {
            clusters.push((cluster, upstream.port));
        }
    }
    let (listen, admin) = (free_port(), free_port());
    let config = istio_like_bootstrap(&plugin_config.to_string(), &clusters, listen, admin);
    let envoy =
        Envoy::start_with_config(&config, 2, listen, admin).unwrap_or_else(|log| panic!("{log}"));

    let agent = agent();
    for _ in 0..3 {
        assert_eq!(
            send(
                &agent,
                "POST",
                &envoy.url("/login?ok"),
                "username=a&password=b"
            ),
            200
        );
    }
    assert_eq!(
        send(
            &agent,
            "POST",
            &envoy.url("/login?bad"),
            "username=a&password=x"
        ),
        400
    );
    assert_eq!(send(&agent, "GET", &envoy.url("/users/count"), ""), 200);

    let m = eventually(
        Duration::from_secs(40),
        "seed metrics through Istio's stats matcher",
        || {
            let m = envoy.scrape();
            (m.value("successful_login_details_total", &[]) == Some(3.0)
                && m.value("total_users", &[]) == Some(11.0))
            .then_some(m)
        },
    );
    assert_eq!(m.value("failed_login_details_total", &[]), Some(1.0));
    let login_2xx = m.value(
        "http_requests_total",
        &[("handler", "/login"), ("method", "POST"), ("status", "2xx")],
    );
    assert_eq!(
        login_2xx,
        Some(3.0),
        "labels survive Istio's tag rules:\n{}",
        m.series("http_requests_total").len()
    );
    assert!(m
        .value(
            "app_metrics_sampler_last_success_timestamp_seconds",
            &[("sampler", "total_users")]
        )
        .is_some());
    // Istio's inclusion list drops Envoy's own per-cluster stats but keeps ours.
    assert!(m
        .scrape
        .samples
        .iter()
        .all(|s| !s.metric.starts_with("envoy_cluster_upstream_rq")));
}
