//! The metrics registry: which Envoy stat each observation lands in.
//!
//! Stat ids are defined once per series and cached in flat tables indexed by label positions, so
//! the request path does no hashing, no formatting and no allocation after a series' first use.
//! Metrics with dynamic labels (`labels::LabelSet`) can have far more series than are ever used,
//! so theirs live in one sparse table instead, sorted by (metric, series, combination) and
//! binary-searched; their flat tables stay empty, which is how the request path tells them apart
//! at no cost to unlabelled metrics. The host side is a trait so this logic is tested on the
//! host with a fake.

use crate::body::{self, Pending, Verdict};
use crate::extract::SampleError;
use crate::filter::{Exchange, Filter, HttpMetrics};
use crate::grpc::Code;
use crate::labels::{
    method_label, status_index, status_label, LabelSet, METHOD_COUNT, OTHER_STATUS, STATUS_COUNT,
};
use crate::names::{
    DURATION, DURATIONS_PER_HANDLER, PROXY_RESPONSES, PROXY_RESPONSES_PER_HANDLER,
    REQUESTS_PER_HANDLER, REQUESTS_TOTAL, REQUEST_SIZE, RESPONSE_SIZE, TOTAL_DURATION,
};
use crate::proxy::ProxyReason;

mod grpc;
mod own;

pub use grpc::Rpc;
pub use own::config_valid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// The three stat host calls. Implementations never panic; `false`/`None` means the host refused.
pub trait MetricHost {
    fn define(&self, kind: Kind, name: &str) -> Option<u32>;
    fn increment(&self, id: u32, by: u64) -> bool;
    fn record(&self, id: u32, value: u64) -> bool;
}

/// One request, complete.
#[derive(Debug, Clone)]
pub struct Completed<'a> {
    pub exchange: &'a Exchange,
    /// The values of the request headers read beyond the fixed ones (`Filter::request_names`
    /// from `filter::REQUEST_RULE_HEADERS`): the rules', then the labels'.
    pub request_headers: &'a [Option<&'a [u8]>],
    /// `None` when no response was sent (e.g. the client went away first): counted with status
    /// class `other`, by counters without a status condition, and timed by Envoy's clock.
    pub status: Option<u16>,
    pub response_headers: &'a [Option<&'a [u8]>],
    pub duration_ms: Option<u64>,
    /// Set for an answer Envoy made itself rather than the app: why (`http_proxy_responses_total`).
    pub proxy: Option<ProxyReason>,
    /// Envoy's time for the whole request, first byte in to last byte out (`total_duration`).
    pub total_ms: Option<u64>,
    pub request_bytes: u64,
    pub response_bytes: u64,
    /// What was read of the request's bodies (module built with `bodies` only).
    pub bodies: Option<&'a Pending>,
}

#[derive(Debug, Default)]
pub struct Registry {
    counters: Vec<Option<u32>>,
    gauges: Vec<Option<u32>>,
    requests: Vec<Option<u32>>,
    durations: Vec<Option<u32>>,
    /// By (handler, status class, reason).
    proxy_responses: Vec<Option<u32>>,
    /// Empty unless `total_duration` is on.
    total_durations: Vec<Option<u32>>,
    request_sizes: Vec<Option<u32>>,
    response_sizes: Vec<Option<u32>>,
    sampler_errors: Vec<Option<u32>>,
    sampler_success: Vec<Option<u32>>,
    /// By `body::NotCounted`; empty unless some counter reads a body.
    body_not_counted: Vec<Option<u32>>,
    /// By `memory::Unread`.
    requests_not_counted: Vec<Option<u32>>,
    /// gRPC metrics by RPC (the listed ones, then `other`); empty without a `grpc` section.
    grpc_started: Vec<Option<u32>>,
    /// By (RPC, code).
    grpc_handled: Vec<Option<u32>>,
    /// Empty unless `handling_time`.
    grpc_handling: Vec<Option<u32>>,
    /// Empty unless `messages`.
    grpc_received: Vec<Option<u32>>,
    grpc_sent: Vec<Option<u32>>,
    /// Series of metrics with dynamic labels: (key, stat id), sorted by key ([`labelled_key`]).
    labelled: Vec<(u64, u32)>,
}

/// Which metric a [`labelled_key`] belongs to.
#[derive(Debug, Clone, Copy)]
enum Family {
    Counter = 0,
    Requests = 1,
    Duration = 2,
    RequestSize = 3,
    ResponseSize = 4,
    ProxyResponses = 5,
    TotalDuration = 6,
    GrpcStarted = 7,
    GrpcHandled = 8,
    GrpcHandling = 9,
    GrpcReceived = 10,
    GrpcSent = 11,
}

/// A labelled series' key: the metric, then its series in the flat order (counter index;
/// handler, method, status), then the combination of its dynamic labels. `config::MAX_SERIES`
/// keeps `series * combinations` far below 2^56.
fn labelled_key(family: Family, series: usize, combinations: u64, combination: u64) -> u64 {
    ((family as u64) << 56)
        | (series as u64)
            .saturating_mul(combinations)
            .saturating_add(combination)
}

/// The cached id in `slot`, defining the stat on first use.
fn id_in(
    slot: Option<&mut Option<u32>>,
    host: &impl MetricHost,
    kind: Kind,
    name: impl FnOnce() -> String,
) -> Option<u32> {
    let slot = slot?;
    if slot.is_none() {
        *slot = host.define(kind, &name());
    }
    *slot
}

impl Registry {
    /// Defines the configured counters and gauges at once so they read 0 before first use;
    /// counters with dynamic labels have no series until a request makes one.
    pub fn new(filter: &Filter, host: &impl MetricHost) -> Self {
        // With dynamic labels the request metrics' series are all labelled: no flat tables.
        let handlers = filter
            .http
            .as_ref()
            .filter(|h| h.labels.is_empty())
            .map_or(0, |h| h.handler_count());
        let timed_whole = if filter.total_duration() { handlers } else { 0 };
        let samplers = filter.samplers.len();
        let grpc = filter.grpc.as_ref();
        let rpcs = grpc.map_or(0, |g| g.methods.len());
        let unlabelled = |i: usize| filter.counter_labels.get(i).is_none_or(LabelSet::is_empty);
        Registry {
            counters: filter
                .rules
                .rules
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    unlabelled(i)
                        .then(|| host.define(Kind::Counter, &filter.series_name(&r.name, &[], &[])))
                        .flatten()
                })
                .collect(),
            gauges: filter
                .samplers
                .iter()
                .map(|s| host.define(Kind::Gauge, &filter.series_name(&s.name, &[], &[])))
                .collect(),
            requests: vec![None; handlers * REQUESTS_PER_HANDLER],
            durations: vec![None; handlers * DURATIONS_PER_HANDLER],
            proxy_responses: vec![None; handlers * PROXY_RESPONSES_PER_HANDLER],
            total_durations: vec![None; timed_whole * DURATIONS_PER_HANDLER],
            request_sizes: vec![None; handlers],
            response_sizes: vec![None; handlers],
            sampler_errors: vec![None; samplers * SampleError::COUNT],
            sampler_success: vec![None; samplers],
            body_not_counted: if filter.rules.reads_bodies.contains(&true) {
                vec![None; body::NotCounted::COUNT]
            } else {
                Vec::new()
            },
            requests_not_counted: vec![None; crate::memory::Unread::COUNT],
            grpc_started: vec![None; rpcs],
            grpc_handled: vec![None; rpcs * Code::COUNT],
            grpc_handling: vec![
                None;
                if grpc.is_some_and(|g| g.handling_time) {
                    rpcs
                } else {
                    0
                }
            ],
            grpc_received: vec![
                None;
                if grpc.is_some_and(|g| g.messages) {
                    rpcs
                } else {
                    0
                }
            ],
            grpc_sent: vec![
                None;
                if grpc.is_some_and(|g| g.messages) {
                    rpcs
                } else {
                    0
                }
            ],
            labelled: Vec::new(),
        }
    }

    /// The id of a labelled series, defined (named by `name`) on first use. `name` is a `dyn`:
    /// one copy of this function in the module, not one per caller.
    fn labelled_id(
        &mut self,
        key: u64,
        host: &impl MetricHost,
        kind: Kind,
        name: &dyn Fn() -> String,
    ) -> Option<u32> {
        match self.labelled.binary_search_by_key(&key, |(k, _)| *k) {
            Ok(at) => self.labelled.get(at).map(|(_, id)| *id),
            Err(at) => {
                let id = host.define(kind, &name())?;
                self.labelled.insert(at, (key, id));
                Some(id)
            }
        }
    }

    /// Counts a confirmed counter that has no flat id: one with dynamic labels (or one the host
    /// refused to define, which counts nothing, as before).
    fn count_labelled(
        &mut self,
        filter: &Filter,
        host: &impl MetricHost,
        index: usize,
        done: &Completed<'_>,
        by: u64,
    ) -> bool {
        let (Some(rule), Some(set)) = (
            filter.rules.rules.get(index),
            filter.counter_labels.get(index),
        ) else {
            return false;
        };
        if set.is_empty() {
            return false;
        }
        let combination = set.combination(done.request_headers, done.response_headers);
        let key = labelled_key(Family::Counter, index, set.combinations(), combination);
        self.labelled_id(key, host, Kind::Counter, &|| {
            filter.series_name(&rule.name, &[], &set.pairs(combination))
        })
        .is_some_and(|id| host.increment(id, by))
    }

    /// The request metrics of a request when they have dynamic labels: the same updates as the
    /// flat path, in the sparse table, the labels' values looked up once.
    fn record_labelled(
        &mut self,
        filter: &Filter,
        host: &impl MetricHost,
        done: &Completed<'_>,
        h: usize,
        m: usize,
        s: usize,
    ) -> bool {
        let Some(http) = filter.http.as_ref() else {
            return false;
        };
        let set = &http.labels;
        let combinations = set.combinations();
        let combination = set.combination(done.request_headers, done.response_headers);
        let handler = http.handler_label(h);
        let fixed = [
            ("handler", handler),
            ("method", method_label(m)),
            ("status", status_label(s)),
        ];
        let first = |n: usize| fixed.get(..n).unwrap_or_default();
        let proxy = [
            ("handler", handler),
            ("status", status_label(s)),
            ("reason", done.proxy.map_or("", ProxyReason::label)),
        ];
        let reasons = ProxyReason::COUNT;
        // (metric, its series in flat order, kind, name, fixed labels, what to count or record)
        let updates = [
            (
                Family::Requests,
                (h * METHOD_COUNT + m) * STATUS_COUNT + s,
                Kind::Counter,
                REQUESTS_TOTAL,
                first(3),
                Some(1),
            ),
            (
                Family::Duration,
                h * METHOD_COUNT + m,
                Kind::Histogram,
                DURATION,
                first(2),
                done.duration_ms,
            ),
            (
                Family::RequestSize,
                h,
                Kind::Histogram,
                REQUEST_SIZE,
                first(1),
                Some(done.request_bytes),
            ),
            (
                Family::ResponseSize,
                h,
                Kind::Histogram,
                RESPONSE_SIZE,
                first(1),
                Some(done.response_bytes),
            ),
            (
                Family::ProxyResponses,
                (h * STATUS_COUNT + s) * reasons + done.proxy.map_or(0, ProxyReason::index),
                Kind::Counter,
                PROXY_RESPONSES,
                &proxy[..],
                done.proxy.map(|_| 1),
            ),
            (
                Family::TotalDuration,
                h * METHOD_COUNT + m,
                Kind::Histogram,
                TOTAL_DURATION,
                first(2),
                done.total_ms.filter(|_| http.total_duration),
            ),
        ];
        let mut ok = true;
        for (family, series, kind, metric, fixed, value) in updates {
            let Some(value) = value else {
                continue;
            };
            let key = labelled_key(family, series, combinations, combination);
            ok &= self
                .labelled_id(key, host, kind, &|| {
                    filter.series_name(metric, fixed, &set.pairs(combination))
                })
                .is_some_and(|id| match kind {
                    Kind::Counter => host.increment(id, value),
                    _ => host.record(id, value),
                });
        }
        ok
    }

    /// Counts one finished request: counters whose rules match, then the request metrics.
    /// Returns false if the host refused any update (the caller logs, rate-limited).
    pub fn record(
        &mut self,
        filter: &Filter,
        host: &impl MetricHost,
        done: &Completed<'_>,
    ) -> bool {
        let mut ok = true;
        for &i in &done.exchange.candidates {
            if filter.rules.confirm(i, done.status, done.response_headers) {
                let by = match filter.rules.rules.get(i).and_then(|r| r.body.as_ref()) {
                    None => 1,
                    Some(_) => match body::verdict(done.bodies, &filter.rules, i) {
                        Verdict::Holds(amount) => amount.unwrap_or(1),
                        Verdict::Fails => continue,
                        Verdict::Unread(reason) => {
                            ok &= self.body_not_counted(filter, host, reason);
                            continue;
                        }
                    },
                };
                // An unlabelled counter has its id here since configure time: the labelled
                // path is taken only when it has none.
                ok &= match self.counters.get(i).copied().flatten() {
                    Some(id) => host.increment(id, by),
                    None => self.count_labelled(filter, host, i, done, by),
                };
            }
        }
        let (Some(http), Some(h)) = (filter.http.as_ref(), done.exchange.handler) else {
            return ok;
        };
        let handler = || http.handler_label(h);
        let m = done.exchange.method;
        // No response at all (the client went away first) is status class `other`.
        let s = done.status.map_or(OTHER_STATUS, status_index);
        let series = (h * METHOD_COUNT + m) * STATUS_COUNT + s;
        // The flat tables are empty when the request metrics have dynamic labels: the same
        // bounds check that finds the slot sends those to the sparse table.
        let Some(slot) = self.requests.get_mut(series) else {
            return ok & self.record_labelled(filter, host, done, h, m, s);
        };
        ok &= id_in(Some(slot), host, Kind::Counter, || {
            filter.series_name(
                REQUESTS_TOTAL,
                &[
                    ("handler", handler()),
                    ("method", method_label(m)),
                    ("status", status_label(s)),
                ],
                &[],
            )
        })
        .is_some_and(|id| host.increment(id, 1));
        if done.proxy.is_some() || done.total_ms.is_some() {
            ok &= self.record_envoy_side(filter, http, host, done, (h, m, s));
        }
        if let Some(ms) = done.duration_ms {
            ok &= id_in(
                self.durations.get_mut(h * METHOD_COUNT + m),
                host,
                Kind::Histogram,
                || {
                    filter.series_name(
                        DURATION,
                        &[("handler", handler()), ("method", method_label(m))],
                        &[],
                    )
                },
            )
            .is_some_and(|id| host.record(id, ms));
        }
        ok &= id_in(self.request_sizes.get_mut(h), host, Kind::Histogram, || {
            filter.series_name(REQUEST_SIZE, &[("handler", handler())], &[])
        })
        .is_some_and(|id| host.record(id, done.request_bytes));
        ok &= id_in(
            self.response_sizes.get_mut(h),
            host,
            Kind::Histogram,
            || filter.series_name(RESPONSE_SIZE, &[("handler", handler())], &[]),
        )
        .is_some_and(|id| host.record(id, done.response_bytes));
        ok
    }

    /// What only Envoy knows: whether it answered itself, and its time for the whole request.
    /// Apart from [`Registry::record`], which requests the app answered with the default
    /// configuration never enter.
    #[inline(never)]
    fn record_envoy_side(
        &mut self,
        filter: &Filter,
        http: &HttpMetrics,
        host: &impl MetricHost,
        done: &Completed<'_>,
        (h, m, s): (usize, usize, usize),
    ) -> bool {
        let mut ok = true;
        let handler = || http.handler_label(h);
        if let Some(reason) = done.proxy {
            let series = (h * STATUS_COUNT + s) * ProxyReason::COUNT + reason.index();
            ok &= id_in(
                self.proxy_responses.get_mut(series),
                host,
                Kind::Counter,
                || {
                    filter.series_name(
                        PROXY_RESPONSES,
                        &[
                            ("handler", handler()),
                            ("status", status_label(s)),
                            ("reason", reason.label()),
                        ],
                        &[],
                    )
                },
            )
            .is_some_and(|id| host.increment(id, 1));
        }
        // Only kept when the configuration asks for it.
        if let Some(ms) = done.total_ms.filter(|_| !self.total_durations.is_empty()) {
            ok &= id_in(
                self.total_durations.get_mut(h * METHOD_COUNT + m),
                host,
                Kind::Histogram,
                || {
                    filter.series_name(
                        TOTAL_DURATION,
                        &[("handler", handler()), ("method", method_label(m))],
                        &[],
                    )
                },
            )
            .is_some_and(|id| host.record(id, ms));
        }
        ok
    }
}

#[cfg(test)]
#[path = "../../tests/unit/metrics.rs"]
mod tests;
