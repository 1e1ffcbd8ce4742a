//! app-metrics-wasm: Prometheus metrics for an application, made by the proxy in front of it.
//!
//! Where a request becomes a metric: when it has ended, `glue::http` reads both header maps
//! ([`pairs`]) → [`filter::Filter::classify`] → [`metrics::Registry::record`]. The entry points
//! Envoy calls are in `glue::abi`. Samplers: `glue::root` ticks →
//! [`schedule`] elects one VM → the answer goes through [`extract::sample_value`].
//!
//! Everything but `glue` is pure logic, tested on the host and, compiled to wasm, under
//! wasm-bindgen-test. The unit tests live in tests/unit/ (one file per module, compiled into the
//! library's test build), so nothing under src/ may panic. `glue` is the only code that talks to proxy-wasm.

pub mod bodies;
pub mod body;
pub mod config;
pub mod extract;
pub mod filter;
pub mod grpc;
pub mod istio;
pub mod json;
pub mod labels;
pub mod lifecycle;
pub mod logbudget;
pub mod memory;
pub mod metrics;
pub mod names;
pub mod pairs;
pub mod proxy;
pub mod routes;
pub mod rules;
pub mod schedule;
pub mod streams;

#[cfg(not(test))]
mod glue;

#[cfg(test)]
mod test_support;

#[cfg(all(test, not(target_arch = "wasm32")))]
#[path = "../tests/unit/proptests.rs"]
mod proptests;
