//! The root context: configuration, and the samplers' timer and answers.

use super::host::now_ms;
use super::host::{self, Buffer, Map, Stats, CAS_MISMATCH};
use crate::config::Config;
use crate::extract::{sample_value, Answer, SampleError, ValueSource};
use crate::filter::Filter;
use crate::metrics::Registry;
use crate::schedule;

/// A configuration this build can serve: the lean one refuses body rules.
pub fn parse(raw: &[u8]) -> Result<Config, crate::config::ConfigError> {
    let config = crate::config::parse(raw)?;
    crate::config::check_build(&config, cfg!(feature = "bodies"))?;
    Ok(config)
}

/// A dormant root brought back (`lifecycle.rs`), serving the configuration it served (one that
/// passed validation then), or nothing.
pub fn revived(in_force: Option<&[u8]>) -> Root {
    log::info!("a root dropped as ended is alive: serving its configuration again");
    Root::new(in_force.and_then(|raw| parse(raw).ok()).as_ref())
}

/// One plugin configuration, compiled, and its cached stat ids.
pub struct State {
    pub filter: Filter,
    pub registry: Registry,
}

/// A root context's own part: its compiled configuration (none: the filter is inert for it) and
/// its sampler calls in flight. Which root serves a request is `lifecycle.rs`'s business.
#[derive(Default)]
pub struct Root {
    state: Option<State>,
    /// Sampler requests in flight: (token, sampler index). A few at most; a Vec keeps
    /// HashMap's hashing machinery out of the .wasm.
    pending: Vec<(u32, usize)>,
}

impl Root {
    pub fn state(&mut self) -> Option<&mut State> {
        self.state.as_mut()
    }

    /// The configuration in force, if any.
    pub fn filter(&self) -> Option<&Filter> {
        self.state.as_ref().map(|s| &s.filter)
    }

    pub fn http_call_response(&mut self, token: u32, body_size: usize) {
        let Some(index) = self.take_pending(token) else {
            return;
        };
        let Some(state) = self.state.as_mut() else {
            return;
        };
        let Some(sampler) = state.filter.samplers.get(index) else {
            return;
        };
        let source = &sampler.source;
        let header = |name: &str| host::header(Map::CallResponse, name).ok().flatten();
        let status = header(":status").and_then(|s| {
            std::str::from_utf8(&s)
                .ok()
                .and_then(|s| s.parse::<u16>().ok())
        });
        let value_header = match source {
            ValueSource::Header(name) => header(name),
            _ => None,
        };
        // Read one byte past the cap so an oversized body is recognised, never more.
        let body = match source {
            ValueSource::Header(_) => None,
            _ => host::buffer(
                Buffer::CallResponseBody,
                0,
                body_size.min(sampler.max_body_bytes + 1),
            )
            .ok()
            .flatten(),
        };
        let answer = Answer {
            status,
            from_upstream: header("x-envoy-upstream-service-time").is_some(),
            header: value_header.as_deref(),
            body: body.as_deref().unwrap_or_default(),
            body_size,
        };
        let registry = &mut state.registry;
        match sample_value(source, &answer, sampler.max_body_bytes) {
            Ok(value) => {
                let now_s = host::now_ns().unwrap_or(0) / 1_000_000_000;
                registry.sample_ok(&state.filter, &Stats, index, value, now_s);
            }
            Err(reason) => {
                warn_limited!(|| format!("sampler {}: {}", sampler.name, reason.label()));
                registry.sample_failed(&state.filter, &Stats, index, reason);
            }
        }
    }

    /// A root serving `config`, or recording nothing without one.
    pub fn new(config: Option<&Config>) -> Root {
        let Some(config) = config else {
            return Root::default();
        };
        let filter = Filter::new(config);
        let registry = Registry::new(&filter, &Stats);
        let now_ms = now_ms();
        for (sampler, key) in filter.samplers.iter().zip(&filter.sampler_keys) {
            // Create the deadline once (due now): a CAS on a missing key would always win.
            if let Ok((None, _)) = host::get_shared(key) {
                if let Err(status) = host::set_shared(key, &schedule::encode(now_ms), 0) {
                    log::error!(
                        "sampler {}: cannot create its schedule (host status {status})",
                        sampler.name
                    );
                }
            }
        }
        log::info!(
            "configured: {} counters, request metrics {}, {} samplers, {} constant labels",
            filter.rules.rules.len(),
            if filter.http.is_some() { "on" } else { "off" },
            filter.samplers.len(),
            filter.constant.len()
        );
        Root {
            state: Some(State { filter, registry }),
            pending: Vec::new(),
        }
    }

    pub fn tick(&mut self) {
        let Some(state) = self.state.as_mut() else {
            return;
        };
        // Monotonic: a wall clock stepped forward would fire every deadline, stepped back none.
        let Some(now_ms) = host::monotonic_ns().map(|ns| ns / 1_000_000) else {
            return;
        };
        let mut due = Vec::new();
        let filter = &state.filter;
        for (index, (sampler, key)) in filter.samplers.iter().zip(&filter.sampler_keys).enumerate()
        {
            let Ok((Some(stored), cas)) = host::get_shared(key) else {
                continue;
            };
            let Some(deadline) = schedule::decode(&stored) else {
                continue;
            };
            let Some(next) = schedule::next_deadline(now_ms, deadline, sampler.interval_ms) else {
                continue;
            };
            match host::set_shared(key, &schedule::encode(next), cas) {
                Ok(()) => due.push(index),
                Err(CAS_MISMATCH) => {} // another VM won this round
                Err(status) => warn_limited!(|| {
                    format!("sampler {}: shared data status {status}", sampler.name)
                }),
            }
        }
        for index in due {
            send(state, &mut self.pending, index);
        }
    }

    fn take_pending(&mut self, token: u32) -> Option<usize> {
        let at = self.pending.iter().position(|(t, _)| *t == token)?;
        Some(self.pending.swap_remove(at).1)
    }
}

/// Asks the application for one sampler's value; the answer comes to `http_call_response`.
fn send(state: &mut State, pending: &mut Vec<(u32, usize)>, index: usize) {
    let Some(sampler) = state.filter.samplers.get(index) else {
        return;
    };
    let headers = [
        (":method", "GET"),
        (":path", sampler.path.as_str()),
        (":authority", sampler.authority.as_str()),
        ("user-agent", "app-metrics-wasm"),
    ];
    match host::http_call(&sampler.cluster, &headers, sampler.timeout_ms) {
        Ok(token) => pending.push((token, index)),
        Err(status) => {
            warn_limited!(|| {
                format!(
                    "sampler {}: cannot call cluster {:?} (host status {status})",
                    sampler.name, sampler.cluster
                )
            });
            // The cluster exists but has no healthy host: as unreachable as a refused connection.
            let reason = if status == host::INTERNAL_FAILURE {
                SampleError::Unreachable
            } else {
                SampleError::Dispatch
            };
            state
                .registry
                .sample_failed(&state.filter, &Stats, index, reason);
        }
    }
}
