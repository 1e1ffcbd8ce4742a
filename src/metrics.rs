//! The metrics registry: which Envoy stat each observation lands in.
//!
//! Stat ids are defined once per series and cached in flat tables indexed by label positions, so
//! the request path does no hashing, no formatting and no allocation after a series' first use.
//! The host side is a trait so this logic is tested on the host with a fake.

use crate::extract::Reason;
use crate::filter::{Exchange, Filter, HttpMetrics};
use crate::labels::{
    method_label, plugin_label_value, stat_name, status_index, status_label, METHOD_COUNT,
    OTHER_STATUS, STATUS_COUNT,
};
use crate::proxy::ProxyReason;

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

pub const REQUESTS_TOTAL: &str = "http_requests_total";
pub const PROXY_RESPONSES: &str = "http_proxy_responses_total";
pub const DURATION: &str = "http_request_duration_milliseconds";
pub const TOTAL_DURATION: &str = "http_request_total_duration_milliseconds";
pub const REQUEST_SIZE: &str = "http_request_size_bytes";
pub const RESPONSE_SIZE: &str = "http_response_size_bytes";
pub const SAMPLER_ERRORS: &str = "app_metrics_sampler_errors_total";
pub const SAMPLER_LAST_SUCCESS: &str = "app_metrics_sampler_last_success_timestamp_seconds";
pub const CONFIG_VALID: &str = "app_metrics_config_valid";

/// `app_metrics_config_valid{plugin}`: 1 while plugin `name`'s last delivered configuration is in
/// force, 0 while it is refused. Set on configuration changes only, so defined by name each time.
pub fn config_valid(host: &impl MetricHost, name: &[u8], valid: bool) -> bool {
    let stat = stat_name(CONFIG_VALID, &[("plugin", &plugin_label_value(name))]);
    host.define(Kind::Gauge, &stat)
        .is_some_and(|id| host.record(id, u64::from(valid)))
}

/// One request, complete.
#[derive(Debug, Clone)]
pub struct Completed<'a> {
    pub exchange: &'a Exchange,
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
    /// Defines the configured counters and gauges at once so they read 0 before first use.
    pub fn new(filter: &Filter, host: &impl MetricHost) -> Self {
        let handlers = filter.http.as_ref().map_or(0, |h| h.handler_count());
        let timed_whole = if filter.total_duration() { handlers } else { 0 };
        let samplers = filter.samplers.len();
        Registry {
            counters: filter
                .rules
                .rules
                .iter()
                .map(|r| host.define(Kind::Counter, &r.name))
                .collect(),
            gauges: filter
                .samplers
                .iter()
                .map(|s| host.define(Kind::Gauge, &s.name))
                .collect(),
            requests: vec![None; handlers * METHOD_COUNT * STATUS_COUNT],
            durations: vec![None; handlers * METHOD_COUNT],
            proxy_responses: vec![None; handlers * STATUS_COUNT * ProxyReason::ALL.len()],
            total_durations: vec![None; timed_whole * METHOD_COUNT],
            request_sizes: vec![None; handlers],
            response_sizes: vec![None; handlers],
            sampler_errors: vec![None; samplers * Reason::ALL.len()],
            sampler_success: vec![None; samplers],
        }
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
                ok &= self
                    .counters
                    .get(i)
                    .copied()
                    .flatten()
                    .is_some_and(|id| host.increment(id, 1));
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
        ok &= id_in(self.requests.get_mut(series), host, Kind::Counter, || {
            stat_name(
                REQUESTS_TOTAL,
                &[
                    ("handler", handler()),
                    ("method", method_label(m)),
                    ("status", status_label(s)),
                ],
            )
        })
        .is_some_and(|id| host.increment(id, 1));
        if done.proxy.is_some() || done.total_ms.is_some() {
            ok &= self.record_envoy_side(http, host, done, (h, m, s));
        }
        if let Some(ms) = done.duration_ms {
            ok &= id_in(
                self.durations.get_mut(h * METHOD_COUNT + m),
                host,
                Kind::Histogram,
                || {
                    stat_name(
                        DURATION,
                        &[("handler", handler()), ("method", method_label(m))],
                    )
                },
            )
            .is_some_and(|id| host.record(id, ms));
        }
        ok &= id_in(self.request_sizes.get_mut(h), host, Kind::Histogram, || {
            stat_name(REQUEST_SIZE, &[("handler", handler())])
        })
        .is_some_and(|id| host.record(id, done.request_bytes));
        ok &= id_in(
            self.response_sizes.get_mut(h),
            host,
            Kind::Histogram,
            || stat_name(RESPONSE_SIZE, &[("handler", handler())]),
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
        http: &HttpMetrics,
        host: &impl MetricHost,
        done: &Completed<'_>,
        (h, m, s): (usize, usize, usize),
    ) -> bool {
        let mut ok = true;
        let handler = || http.handler_label(h);
        if let Some(reason) = done.proxy {
            let series = (h * STATUS_COUNT + s) * ProxyReason::ALL.len() + reason.index();
            ok &= id_in(
                self.proxy_responses.get_mut(series),
                host,
                Kind::Counter,
                || {
                    stat_name(
                        PROXY_RESPONSES,
                        &[
                            ("handler", handler()),
                            ("status", status_label(s)),
                            ("reason", reason.label()),
                        ],
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
                    stat_name(
                        TOTAL_DURATION,
                        &[("handler", handler()), ("method", method_label(m))],
                    )
                },
            )
            .is_some_and(|id| host.record(id, ms));
        }
        ok
    }

    /// A sampler's good value, and the time of this success.
    pub fn sample_ok(
        &mut self,
        filter: &Filter,
        host: &impl MetricHost,
        sampler: usize,
        value: u64,
        now_s: u64,
    ) -> bool {
        let Some(spec) = filter.samplers.get(sampler) else {
            return false;
        };
        let gauge = self
            .gauges
            .get(sampler)
            .copied()
            .flatten()
            .is_some_and(|id| host.record(id, value));
        let stamp = id_in(
            self.sampler_success.get_mut(sampler),
            host,
            Kind::Gauge,
            || stat_name(SAMPLER_LAST_SUCCESS, &[("sampler", &spec.name)]),
        )
        .is_some_and(|id| host.record(id, now_s));
        gauge && stamp
    }

    /// A failed sample: the gauge keeps its value, the error is counted under its reason.
    pub fn sample_failed(
        &mut self,
        filter: &Filter,
        host: &impl MetricHost,
        sampler: usize,
        reason: Reason,
    ) -> bool {
        let Some(spec) = filter.samplers.get(sampler) else {
            return false;
        };
        let slot = self
            .sampler_errors
            .get_mut(sampler * Reason::ALL.len() + reason.index());
        id_in(slot, host, Kind::Counter, || {
            stat_name(
                SAMPLER_ERRORS,
                &[("sampler", &spec.name), ("reason", reason.label())],
            )
        })
        .is_some_and(|id| host.increment(id, 1))
    }
}

#[cfg(test)]
#[path = "../tests/unit/metrics.rs"]
mod tests;
