//! The compiled configuration and the per-request classification: where a request is decided.
//!
//! On request headers, [`Filter::classify`] turns method, path and the few request headers rules
//! read into a small [`Exchange`] (indices only: no request data is kept). On completion,
//! `metrics::Registry::record` turns that plus the status into metric updates.

use crate::config::{self, Config, LabelSpec};
use crate::extract::ValueSource;
use crate::grpc::Methods;
use crate::labels::{method_index, stat_name, Dynamic, LabelSet, Side, UNMATCHED_HANDLER};
use crate::routes::Routes;
use crate::rules::Rules;

#[derive(Debug, Clone)]
pub struct Filter {
    pub rules: Rules,
    /// `None` when `http_metrics.enabled` is false.
    pub http: Option<HttpMetrics>,
    pub samplers: Vec<Sampler>,
    /// The headers read from each map per request, in one pass (`pairs::Found`): the fixed ones
    /// at the indices below, then those rules read ([`Rules::request_headers`], in order), then
    /// those only dynamic labels read. A label header a rule reads too is read once.
    pub request_names: Vec<String>,
    pub response_names: Vec<String>,
    /// Their hash tables (`pairs::table`): many names cost a hash per header, not a comparison each.
    pub request_table: Vec<u32>,
    pub response_table: Vec<u32>,
    /// Constant labels of every series (`labels`), first in each stat name.
    pub constant: Vec<(String, String)>,
    /// Each counter's dynamic labels, by rule index (empty: unlabelled).
    pub counter_labels: Vec<LabelSet>,
    /// The gRPC metrics (`grpc`), and where the headers they need sit among the names read.
    pub grpc: Option<Grpc>,
    /// Each sampler's shared-data schedule key: its gauge's stat name (constant labels
    /// included), so configurations with the same sampler name but other labels keep their own.
    pub sampler_keys: Vec<String>,
}

pub const REQUEST_METHOD: usize = 0;
pub const REQUEST_PATH: usize = 1;
pub const REQUEST_LENGTH: usize = 2;
pub const REQUEST_RULE_HEADERS: usize = 3;
pub const RESPONSE_STATUS: usize = 0;
pub const RESPONSE_LENGTH: usize = 1;
pub const RESPONSE_UPSTREAM_TIME: usize = 2;
pub const RESPONSE_RULE_HEADERS: usize = 3;
/// Set by Envoy's router on every answer from an upstream: the milliseconds the upstream took
/// to answer, the time the application spent on the request.
pub const UPSTREAM_TIME: &str = "x-envoy-upstream-service-time";

/// The `grpc` section, compiled.
#[derive(Debug, Clone)]
pub struct Grpc {
    pub methods: Methods,
    pub handling_time: bool,
    pub messages: bool,
    /// Indices of `content-type` and `grpc-timeout` in [`Filter::request_names`], and of
    /// `grpc-status` and `content-type` in [`Filter::response_names`]: read only with a `grpc`
    /// section.
    pub content_type: usize,
    pub timeout: usize,
    pub status: usize,
    pub response_type: usize,
}

/// A sampler, compiled: what each tick and each answer needs, worked out once.
#[derive(Debug, Clone)]
pub struct Sampler {
    pub name: String,
    pub cluster: String,
    /// `:authority` of the sample request (`config::Sampler::authority`).
    pub authority: String,
    pub path: String,
    pub interval_ms: u64,
    pub timeout_ms: u32,
    pub max_body_bytes: usize,
    pub source: ValueSource,
}

impl Sampler {
    fn new(s: &config::Sampler) -> Self {
        Sampler {
            name: s.name.clone(),
            cluster: s.cluster.clone(),
            authority: s.authority(),
            path: s.path.clone(),
            interval_ms: s.interval_seconds.saturating_mul(1000),
            timeout_ms: u32::try_from(s.timeout_ms).unwrap_or(u32::MAX),
            max_body_bytes: s.max_body_bytes,
            source: s.value.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct HttpMetrics {
    pub handlers: Routes,
    pub excluded: Routes,
    /// Dynamic labels of every request metric.
    pub labels: LabelSet,
    /// Whether every request is also timed by Envoy's clock (`http_metrics.total_duration`).
    pub total_duration: bool,
}

impl HttpMetrics {
    /// Number of `handler` label values: the templates plus `none`.
    pub fn handler_count(&self) -> usize {
        self.handlers.len() + 1
    }

    pub fn handler_label(&self, index: usize) -> &str {
        self.handlers.template(index).unwrap_or(UNMATCHED_HANDLER)
    }
}

/// What the filter keeps about one request between its phases.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Exchange {
    pub method: usize,
    /// Index into the handler labels (`handler_count() - 1` is `none`); `None` when excluded or
    /// request metrics are off.
    pub handler: Option<usize>,
    /// Rules whose request side matched, to be confirmed by the response.
    pub candidates: Vec<usize>,
}

impl Filter {
    pub fn new(config: &Config) -> Self {
        let rules = Rules::new(&config.counters);
        // Label headers after the rules' (whose indices stay), each read once.
        let mut headers = (
            rules.request_headers.clone(),
            rules.response_headers.clone(),
        );
        let counter_labels = config
            .counters
            .iter()
            .map(|c| label_set(&c.labels, &mut headers))
            .collect();
        let http = config.http_metrics.enabled.then(|| HttpMetrics {
            handlers: Routes::new(&config.http_metrics.handlers).unwrap_or_default(),
            excluded: Routes::new(&config.http_metrics.excluded_handlers).unwrap_or_default(),
            labels: label_set(&config.http_metrics.labels, &mut headers),
            total_duration: config.http_metrics.total_duration,
        });
        // gRPC's headers last: a configuration without `grpc` looks for none of them.
        let grpc = config.grpc.as_ref().map(|g| Grpc {
            methods: Methods::new(&g.methods),
            handling_time: g.handling_time,
            messages: g.messages,
            content_type: REQUEST_RULE_HEADERS + index_of(&mut headers.0, "content-type"),
            timeout: REQUEST_RULE_HEADERS + index_of(&mut headers.0, "grpc-timeout"),
            status: RESPONSE_RULE_HEADERS + index_of(&mut headers.1, "grpc-status"),
            response_type: RESPONSE_RULE_HEADERS + index_of(&mut headers.1, "content-type"),
        });
        let names = |fixed: &[&str], more: Vec<String>| -> Vec<String> {
            fixed.iter().map(|n| n.to_string()).chain(more).collect()
        };
        let request_names = names(&[":method", ":path", "content-length"], headers.0);
        let response_names = names(&[":status", "content-length", UPSTREAM_TIME], headers.1);
        let mut filter = Filter {
            request_table: crate::pairs::table(&request_names),
            response_table: crate::pairs::table(&response_names),
            request_names,
            response_names,
            rules,
            http,
            samplers: config.samplers.iter().map(Sampler::new).collect(),
            constant: config.labels.clone(),
            counter_labels,
            grpc,
            sampler_keys: Vec::new(),
        };
        filter.sampler_keys = filter
            .samplers
            .iter()
            .map(|s| crate::schedule::key(&filter.series_name(&s.name, &[], &[])))
            .collect();
        filter
    }

    /// The stat name of a series of metric `name`: the constant labels, then `fixed` (handler,
    /// method, status; sampler, reason), then `dynamic`.
    pub fn series_name(
        &self,
        name: &str,
        fixed: &[(&str, &str)],
        dynamic: &[(&str, &str)],
    ) -> String {
        let labels: Vec<(&str, &str)> = self
            .constant
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .chain(fixed.iter().copied())
            .chain(dynamic.iter().copied())
            .collect();
        stat_name(name, &labels)
    }

    /// The samplers of this configuration whose gauge, and so shared-data schedule, is also one
    /// of `other`'s: two plugins in one Envoy feeding one series (docs/configuration.md: keep them apart by
    /// name or constant label).
    pub fn shared_samplers(&self, other: &Filter) -> Vec<&str> {
        self.samplers
            .iter()
            .zip(&self.sampler_keys)
            .filter(|(_, key)| other.sampler_keys.contains(key))
            .map(|(s, _)| s.name.as_str())
            .collect()
    }

    /// Whether any request needs to be looked at at all.
    pub fn observes_requests(&self) -> bool {
        self.http.is_some() || !self.rules.is_empty() || self.grpc.is_some()
    }

    /// Whether a request counted in the request metrics is timed whole by Envoy's clock too.
    pub fn total_duration(&self) -> bool {
        self.http.as_ref().is_some_and(|h| h.total_duration)
    }

    /// Whether a request with `method` needs its path read at all: with no templates and no rule
    /// for this method looking at paths, it does not (one host call saved per request).
    pub fn need_path(&self, method: &[u8]) -> bool {
        self.http
            .as_ref()
            .is_some_and(|h| !h.handlers.is_empty() || !h.excluded.is_empty())
            || self.rules.need_path(method)
    }

    /// `path` is `None` when it is not UTF-8 (it then matches no template).
    pub fn classify(
        &self,
        method: &[u8],
        path: Option<&str>,
        request_headers: &[Option<&[u8]>],
    ) -> Exchange {
        let handler = self.http.as_ref().and_then(|http| {
            let path = path.unwrap_or("");
            if http.excluded.find(path).is_some() {
                None
            } else {
                Some(http.handlers.find(path).unwrap_or(http.handlers.len()))
            }
        });
        Exchange {
            method: method_index(method),
            handler,
            candidates: self.rules.candidates(method, path, request_headers),
        }
    }
}

/// The index of header `name` in `names`, added at the end unless there: each read once.
fn index_of(names: &mut Vec<String>, name: &str) -> usize {
    match names.iter().position(|n| n == name) {
        Some(i) => i,
        None => {
            names.push(name.to_string());
            names.len() - 1
        }
    }
}

/// Compiles dynamic labels, adding their headers to `headers` (request, response) unless there.
fn label_set(specs: &[LabelSpec], headers: &mut (Vec<String>, Vec<String>)) -> LabelSet {
    let labels = specs
        .iter()
        .map(|spec| {
            let names = match spec.side {
                Side::Request => &mut headers.0,
                Side::Response => &mut headers.1,
            };
            let index = index_of(names, &spec.header);
            Dynamic {
                name: spec.name.clone(),
                side: spec.side,
                header: index,
                values: spec.values.clone(),
            }
        })
        .collect();
    LabelSet { labels }
}

#[cfg(test)]
#[path = "../tests/unit/filter.rs"]
mod tests;
