//! Two services in one Envoy whose plugins share a VM (one `vm_config`, as two listeners of a
//! gateway or two apps behind one waypoint): the same counter, handler and sampler names, told
//! apart by a constant `service` label ("a", "b"); the upstream answers each sampler its own
//! count (11 for a, 22 for b) and every other request 201.

use super::bootstrap::*;
use super::envoy::*;
use super::free_port;
use super::upstream::*;

pub struct TwoServices {
    pub envoy: Envoy,
    pub upstream: Upstream,
    /// The listener ports of service a and service b.
    pub a: u16,
    pub b: u16,
}

/// Service `service`'s configuration: `orders_total` on `POST /orders`, the request metrics of
/// `/orders`, and `total_users` sampled every 2 s from `count_path`.
pub fn service(service: &str, count_path: &str) -> String {
    format!(
        r#"{{"labels": {{"service": "{service}"}},
  "counters": [{{"name": "orders_total", "match": {{"method": "POST", "path": "/orders"}}}}],
  "http_metrics": {{"handlers": ["/orders"]}},
  "samplers": [{{"name": "total_users", "cluster": "app", "path": "{count_path}", "interval_seconds": 2,
                "value": {{"json_pointer": "/count"}}}}]}}"#
    )
}

/// Starts them (plugins `shop_a`, `shop_b`, two workers).
pub fn two_services() -> TwoServices {
    let upstream = Upstream::start(|_, url| match url {
        "/count-a" => Reply::new(200, r#"{"count": 11}"#),
        "/count-b" => Reply::new(200, r#"{"count": 22}"#),
        _ => Reply::new(201, "{}"),
    });
    let (a, b, admin) = (free_port(), free_port(), free_port());
    let opts = EnvoyOptions::new("", upstream.port);
    let (config_a, config_b) = (service("a", "/count-a"), service("b", "/count-b"));
    let plugins = [
        (a, "shop_a", config_a.as_str()),
        (b, "shop_b", config_b.as_str()),
    ];
    let envoy = Envoy::start_with_config(&shared_vm_bootstrap(&opts, admin, &plugins), 2, a, admin)
        .unwrap_or_else(|log| panic!("{log}"));
    TwoServices {
        envoy,
        upstream,
        a,
        b,
    }
}
