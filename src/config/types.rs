//! The configuration's types: what a plugin configuration says, once read and checked.

use super::limits::DEFAULT_MAX_BODY_BYTES;
pub use crate::extract::ValueSource;
use crate::grpc::RpcType;
use crate::istio;
use crate::json::Json;
use crate::labels::Side;
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `prefix`: put before the name of every series the configuration publishes (counters,
    /// request and gRPC metrics, samplers' gauges), not the filter's own `app_metrics_*`; empty
    /// for none.
    pub prefix: Option<String>,
    /// Constant labels on every series the configuration makes (but `app_metrics_config_valid`),
    /// in document order: (name, value).
    pub labels: Vec<(String, String)>,
    /// Absent means the seed's two login counters; `[]` means none.
    pub counters: Vec<Counter>,
    pub http_metrics: HttpMetrics,
    pub samplers: Vec<Sampler>,
    /// `grpc`: the gRPC metrics; `None` leaves gRPC requests to the HTTP metrics alone.
    pub grpc: Option<Grpc>,
}

/// The `grpc` section.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Grpc {
    /// The RPCs counted by name, in order: (path `/package.Service/Method`, its type).
    pub methods: Vec<(String, RpcType)>,
    /// `grpc_server_handling_milliseconds`.
    pub handling_time: bool,
    /// `grpc_server_msg_received_total` / `_sent_total`: read from the streams, so the
    /// body-reading module only.
    pub messages: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            prefix: None,
            labels: Vec::new(),
            counters: seed_counters(),
            http_metrics: HttpMetrics::default(),
            samplers: Vec::new(),
            grpc: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Counter {
    pub name: String,
    pub help: String,
    pub matches: Match,
    pub labels: Vec<LabelSpec>,
    /// `increment`: add the integer at a pointer in a body instead of 1.
    pub increment: Option<Increment>,
    /// How much of a body this counter reads (`max_body_bytes`); `None`: the default.
    pub max_body_bytes: Option<usize>,
}

impl Counter {
    /// What makes the counter read a body: each (side, field) that reads one, conditions first.
    /// The one answer to "does it read a body" that validation, module choice and rules use.
    pub fn body_reads(&self) -> impl Iterator<Item = (Side, &'static str)> + '_ {
        let m = &self.matches;
        let response =
            (!m.response_json.is_empty()).then_some((Side::Response, "match.response_json"));
        let request = (!m.request_json.is_empty()).then_some((Side::Request, "match.request_json"));
        let increment = self.increment.as_ref().map(|i| (i.side, "increment"));
        response.into_iter().chain(request).chain(increment)
    }

    /// Whether the counter reads a body on `side` (a condition or its increment).
    pub fn reads_body(&self, side: Side) -> bool {
        self.body_reads().any(|(s, _)| s == side)
    }

    /// The most body bytes this counter reads.
    pub fn body_limit(&self) -> usize {
        self.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES)
    }
}

/// A condition on a JSON body: the value at `pointer` (RFC 6901).
#[derive(Debug, Clone, PartialEq)]
pub struct BodyCondition {
    pub pointer: String,
    pub test: BodyTest,
}

#[derive(Debug, Clone, PartialEq)]
pub enum BodyTest {
    /// A string, number (compared by value: 1 = 1.0), boolean or null.
    Equals(Json),
    /// `present: true` holds when the pointer finds a value (null included), `false` when not.
    Present(bool),
}

/// `increment`: the counter adds the non-negative integer at `pointer` in one body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Increment {
    pub side: Side,
    pub pointer: String,
}

/// A dynamic label: its value comes from a request or response header, mapped onto `values`
/// (`labels::Dynamic`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelSpec {
    pub name: String,
    /// The map the header is read from (`request_header` or `response_header`).
    pub side: Side,
    /// Lower-cased.
    pub header: String,
    pub values: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Match {
    pub method: Option<String>,
    pub path: Option<String>,
    pub status: Option<Vec<StatusMatch>>,
    pub request_headers: BTreeMap<String, HeaderMatch>,
    pub response_headers: BTreeMap<String, HeaderMatch>,
    /// Conditions on the JSON bodies: all must hold.
    pub request_json: Vec<BodyCondition>,
    pub response_json: Vec<BodyCondition>,
}

/// `"value"` must equal; `true` must be present; `false` must be absent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderMatch {
    Exact(String),
    Present(bool),
}

/// A status code (`401`) or a class (`"4xx"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusMatch {
    Code(u16),
    Class(u8),
}

impl StatusMatch {
    pub fn matches(self, status: u16) -> bool {
        match self {
            StatusMatch::Code(code) => code == status,
            StatusMatch::Class(class) => status / 100 == u16::from(class),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct HttpMetrics {
    pub enabled: bool,
    pub handlers: Vec<String>,
    pub excluded_handlers: Vec<String>,
    /// Dynamic labels on every request metric.
    pub labels: Vec<LabelSpec>,
    /// `http_request_total_duration_milliseconds`: Envoy's time for the whole request, at one
    /// more host call per request.
    pub total_duration: bool,
}

impl Default for HttpMetrics {
    fn default() -> Self {
        HttpMetrics {
            enabled: true,
            handlers: Vec::new(),
            excluded_handlers: Vec::new(),
            labels: Vec::new(),
            total_duration: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Sampler {
    pub name: String,
    pub help: String,
    /// The Envoy cluster the sample request goes to.
    pub cluster: String,
    /// `:authority` of the sample request; defaults to the cluster name.
    pub authority: Option<String>,
    pub path: String,
    pub interval_seconds: u64,
    pub timeout_ms: u64,
    /// Only this many bytes of the answer are read; a longer body is an error (`too_large`).
    pub max_body_bytes: usize,
    pub value: ValueSource,
}

impl Sampler {
    /// `authority`, else the host of an Istio cluster name (`istio::cluster_authority`), else
    /// the cluster name.
    pub fn authority(&self) -> String {
        match &self.authority {
            Some(authority) => authority.clone(),
            None => istio::cluster_authority(&self.cluster).unwrap_or_else(|| self.cluster.clone()),
        }
    }
}

/// The seed tutorial's counters: `POST /login` answered 2xx, or 400/401 (a 422 or 5xx is no failed login).
pub fn seed_counters() -> Vec<Counter> {
    let login = |name: &str, help: &str, status: Vec<StatusMatch>| Counter {
        name: name.to_string(),
        help: help.to_string(),
        matches: Match {
            method: Some("POST".to_string()),
            path: Some("/login".to_string()),
            status: Some(status),
            ..Match::default()
        },
        labels: Vec::new(),
        increment: None,
        max_body_bytes: None,
    };
    vec![
        login(
            "successful_login_details_total",
            "Successful login details",
            vec![StatusMatch::Class(2)],
        ),
        login(
            "failed_login_details_total",
            "Failed login details",
            vec![StatusMatch::Code(400), StatusMatch::Code(401)],
        ),
    ]
}
