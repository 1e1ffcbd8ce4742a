//! The series bound: the most series a configuration can make, and the limit it is held to.

use super::limits::MAX_SERIES;
use super::types::{Config, LabelSpec};
use crate::json::ConfigError;
use crate::names;

/// The most series a configuration can make, by kind: label sets (a histogram counts once).
/// With H handler templates, L = Π (values + 2) over `http_metrics.labels` and L_c over a
/// counter's labels: counters Σ L_c; `http_requests_total` (H+1)·10·6·L;
/// `http_proxy_responses_total` (H+1)·6·8·L; histograms (H+1)·10·L (duration) + 2·(H+1)·L
/// (sizes) + (H+1)·10·L (whole-request duration, with `total_duration`); 10 per sampler (its
/// gauge, its last-success gauge, its errors by 8 reasons); `app_metrics_config_valid` 1.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeriesBound {
    pub counters: u64,
    pub requests: u64,
    pub proxy_responses: u64,
    pub histograms: u64,
    pub samplers: u64,
    /// The gRPC metrics: per listed RPC and `other`, started, handled by code, and with their
    /// options the handling time and the two message counters.
    pub grpc: u64,
    pub config_valid: u64,
}

impl SeriesBound {
    pub fn total(&self) -> u64 {
        self.counters
            .saturating_add(self.requests)
            .saturating_add(self.proxy_responses)
            .saturating_add(self.histograms)
            .saturating_add(self.samplers)
            .saturating_add(self.grpc)
            .saturating_add(self.config_valid)
    }
}

fn combinations(specs: &[LabelSpec]) -> u64 {
    specs
        .iter()
        .fold(1u64, |n, s| n.saturating_mul(s.values.len() as u64 + 2))
}

pub fn series_bound(config: &Config) -> SeriesBound {
    let http = &config.http_metrics;
    let (requests, proxy_responses, histograms) = if http.enabled {
        let per_handler = combinations(&http.labels);
        let handlers = (http.handlers.len() as u64 + 1).saturating_mul(per_handler);
        let durations = if http.total_duration { 2 } else { 1 };
        let per = |n: usize| handlers.saturating_mul(n as u64);
        (
            per(names::REQUESTS_PER_HANDLER),
            per(names::PROXY_RESPONSES_PER_HANDLER),
            per(durations * names::DURATIONS_PER_HANDLER + names::SIZES_PER_HANDLER),
        )
    } else {
        (0, 0, 0)
    };
    SeriesBound {
        counters: config
            .counters
            .iter()
            .fold(0u64, |n, c| n.saturating_add(combinations(&c.labels))),
        requests,
        proxy_responses,
        histograms,
        samplers: (config.samplers.len() * names::SERIES_PER_SAMPLER) as u64,
        grpc: config.grpc.as_ref().map_or(0, |g| {
            let per =
                names::GRPC_PER_METHOD + usize::from(g.handling_time) + 2 * usize::from(g.messages);
            // They take the request metrics' dynamic labels.
            let labels = match http.enabled {
                true => combinations(&http.labels),
                false => 1,
            };
            (((g.methods.len() + 1) * per) as u64).saturating_mul(labels)
        }),
        config_valid: 1,
    }
}

/// Refuses a configuration whose [`series_bound`] passes [`MAX_SERIES`], at the field that
/// takes it there (counters in order, then the request metrics).
#[inline(never)] // as validate_match
pub(super) fn check_series_bound(config: &Config) -> Result<(), ConfigError> {
    let bound = series_bound(config);
    let over = |n: u64, at: String| {
        Err(ConfigError::new(
            at,
            format!("brings the configuration's series bound to {n} (expected at most {MAX_SERIES}: fewer labels, label values or handlers)"),
        ))
    };
    let mut total = bound.samplers + bound.config_valid;
    for (i, counter) in config.counters.iter().enumerate() {
        total = total.saturating_add(combinations(&counter.labels));
        if total > MAX_SERIES {
            return over(total, format!("counters[{i}].labels"));
        }
    }
    let total = bound.total();
    if total > MAX_SERIES {
        let field = if config.http_metrics.labels.is_empty() {
            "handlers"
        } else {
            "labels"
        };
        return over(total, format!("http_metrics.{field}"));
    }
    Ok(())
}
