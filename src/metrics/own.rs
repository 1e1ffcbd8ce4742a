//! The filter's own metrics: whether a configuration is in force, how samplers fare, why body
//! counters did not count.

use super::{id_in, Kind, MetricHost, Registry};
use crate::body;
use crate::extract::SampleError;
use crate::filter::Filter;
use crate::istio::plugin_label_value;
use crate::labels::stat_name;
use crate::memory::Unread;
use crate::names::{
    BODY_NOT_COUNTED, CONFIG_VALID, REQUESTS_NOT_COUNTED, SAMPLER_ERRORS, SAMPLER_LAST_SUCCESS,
};

/// `app_metrics_config_valid{plugin}`: 1 while plugin `name`'s last delivered configuration is in
/// force, 0 while it is refused. Set on configuration changes only, so defined by name each time.
/// Only `plugin`, never the configuration's constant labels: a refused configuration's labels
/// cannot be trusted, and the gauge must be found by plugin whatever they are.
pub fn config_valid(host: &impl MetricHost, name: &[u8], valid: bool) -> bool {
    let stat = stat_name(CONFIG_VALID, &[("plugin", &plugin_label_value(name))]);
    host.define(Kind::Gauge, &stat)
        .is_some_and(|id| host.record(id, u64::from(valid)))
}

impl Registry {
    /// A body counter that did not count a request it otherwise matched, by why.
    #[inline(never)]
    pub fn body_not_counted(
        &mut self,
        filter: &Filter,
        host: &impl MetricHost,
        reason: body::NotCounted,
    ) -> bool {
        id_in(
            self.body_not_counted.get_mut(reason.index()),
            host,
            Kind::Counter,
            || filter.own_series_name(BODY_NOT_COUNTED, &[("reason", reason.label())], &[]),
        )
        .is_some_and(|id| host.increment(id, 1))
    }

    /// A request the configuration observes passed uncounted: its header maps could not be read.
    #[inline(never)]
    pub fn request_not_counted(
        &mut self,
        filter: &Filter,
        host: &impl MetricHost,
        reason: Unread,
    ) -> bool {
        id_in(
            self.requests_not_counted.get_mut(reason.index()),
            host,
            Kind::Counter,
            || filter.own_series_name(REQUESTS_NOT_COUNTED, &[("reason", reason.label())], &[]),
        )
        .is_some_and(|id| host.increment(id, 1))
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
            || filter.own_series_name(SAMPLER_LAST_SUCCESS, &[("sampler", &spec.name)], &[]),
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
        reason: SampleError,
    ) -> bool {
        let Some(spec) = filter.samplers.get(sampler) else {
            return false;
        };
        let slot = self
            .sampler_errors
            .get_mut(sampler * SampleError::COUNT + reason.index());
        id_in(slot, host, Kind::Counter, || {
            filter.own_series_name(
                SAMPLER_ERRORS,
                &[("sampler", &spec.name), ("reason", reason.label())],
                &[],
            )
        })
        .is_some_and(|id| host.increment(id, 1))
    }
}
