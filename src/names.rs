//! The names the filter publishes, and those it reserves: one list that the configuration's
//! checks (`config`), the registry (`metrics`) and the `app-metrics` binary all read.
//!
//! It also says how many series each request metric has per handler, which both
//! `metrics::Registry` (its flat tables) and `config::series_bound` (the bound a configuration
//! is held to) use, so the two cannot drift apart.

use crate::extract::SampleError;
use crate::grpc::Code;
use crate::labels::{METHOD_COUNT, STATUS_COUNT};
use crate::proxy::ProxyReason;

pub const REQUESTS_TOTAL: &str = "http_requests_total";
pub const PROXY_RESPONSES: &str = "http_proxy_responses_total";
pub const DURATION: &str = "http_request_duration_milliseconds";
pub const TOTAL_DURATION: &str = "http_request_total_duration_milliseconds";
pub const REQUEST_SIZE: &str = "http_request_size_bytes";
pub const RESPONSE_SIZE: &str = "http_response_size_bytes";
pub const SAMPLER_ERRORS: &str = "app_metrics_sampler_errors_total";
pub const SAMPLER_LAST_SUCCESS: &str = "app_metrics_sampler_last_success_timestamp_seconds";
pub const CONFIG_VALID: &str = "app_metrics_config_valid";
pub const BODY_NOT_COUNTED: &str = "app_metrics_body_not_counted_total";
pub const REQUESTS_NOT_COUNTED: &str = "app_metrics_requests_not_counted_total";
/// The gRPC metrics, with go-grpc-middleware's names (milliseconds: Envoy histograms hold
/// integers, as for `http_request_duration_milliseconds`).
pub const GRPC_STARTED: &str = "grpc_server_started_total";
pub const GRPC_HANDLED: &str = "grpc_server_handled_total";
pub const GRPC_HANDLING: &str = "grpc_server_handling_milliseconds";
pub const GRPC_MSG_RECEIVED: &str = "grpc_server_msg_received_total";
pub const GRPC_MSG_SENT: &str = "grpc_server_msg_sent_total";

/// The request metrics; user metrics may not take their names.
pub const RESERVED_NAMES: [&str; 11] = [
    REQUESTS_TOTAL,
    PROXY_RESPONSES,
    DURATION,
    TOTAL_DURATION,
    REQUEST_SIZE,
    RESPONSE_SIZE,
    GRPC_STARTED,
    GRPC_HANDLED,
    GRPC_HANDLING,
    GRPC_MSG_RECEIVED,
    GRPC_MSG_SENT,
];
/// The counters among them; the others are histograms.
pub const RESERVED_COUNTERS: [&str; 6] = [
    REQUESTS_TOTAL,
    PROXY_RESPONSES,
    GRPC_STARTED,
    GRPC_HANDLED,
    GRPC_MSG_RECEIVED,
    GRPC_MSG_SENT,
];
/// The lines each histogram also renders as.
pub const HISTOGRAM_SUFFIXES: [&str; 3] = ["_bucket", "_sum", "_count"];
/// Prefix of the filter's self-metrics (`app_metrics_config_valid`, ...).
pub const SELF_PREFIX: &str = "app_metrics_";
/// Prefixes of the series Envoy (its own stats) and Istio (`istio_requests_total`, ...) publish
/// on the same page.
pub const FOREIGN_PREFIXES: [&str; 2] = ["envoy_", "istio_"];

/// Label names the filter emits; the Envoy bootstrap needs one `stats_tags` entry for each.
pub const LABEL_NAMES: [&str; 6] = ["handler", "method", "status", "sampler", "reason", "plugin"];
/// The gRPC metrics' labels: stats tags only a configuration with a `grpc` section needs.
pub const GRPC_LABEL_NAMES: [&str; 4] = ["grpc_type", "grpc_service", "grpc_method", "grpc_code"];
/// Label names a configuration may not give its own labels: the filter's, and those Prometheus
/// adds to histogram and summary series.
pub const RESERVED_LABEL_NAMES: [&str; 12] = [
    "handler",
    "method",
    "status",
    "sampler",
    "reason",
    "plugin",
    "grpc_type",
    "grpc_service",
    "grpc_method",
    "grpc_code",
    "le",
    "quantile",
];
/// [`RESERVED_LABEL_NAMES`] as error messages list them (a literal: `join` would add its own
/// copy of the joining code to the module).
pub const RESERVED_LIST: &str = "handler, method, status, sampler, reason, plugin, grpc_type, grpc_service, grpc_method, grpc_code, le, quantile";

/// Series per handler (`handler` label value) of each request metric, before dynamic labels.
pub const REQUESTS_PER_HANDLER: usize = METHOD_COUNT * STATUS_COUNT;
pub const DURATIONS_PER_HANDLER: usize = METHOD_COUNT;
pub const PROXY_RESPONSES_PER_HANDLER: usize = STATUS_COUNT * ProxyReason::COUNT;
/// Each of the two size histograms has one series per handler.
pub const SIZES_PER_HANDLER: usize = 2;
/// Series per RPC (listed method, or `other`) of the gRPC metrics: started, handled by code.
pub const GRPC_PER_METHOD: usize = 1 + Code::COUNT;
/// A sampler's series: its gauge, its last-success gauge, its errors by reason.
pub const SERIES_PER_SAMPLER: usize = 2 + SampleError::COUNT;

#[cfg(test)]
#[path = "../tests/unit/names.rs"]
mod tests;
