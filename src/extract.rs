//! Turning a sampler's HTTP answer into a gauge value, or into the reason it could not be.

use crate::config::ValueSource;
use crate::json::{select, Number, Selected};

/// Why a sample failed; the `reason` label of `app_metrics_sampler_errors_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The request could not be sent (e.g. unknown cluster).
    Dispatch,
    /// Envoy gave up waiting (its own 504).
    Timeout,
    /// Envoy could not reach the upstream (its own 503).
    Unreachable,
    /// The upstream answered with a non-2xx status.
    Status,
    /// The body is longer than `max_body_bytes`.
    TooLarge,
    /// The body is not JSON, or not a number for `text`.
    Parse,
    /// The JSON pointer or header is absent.
    Missing,
    /// The value is there but is not a non-negative integer (Envoy gauges are unsigned integers).
    Invalid,
}

impl Reason {
    pub const ALL: [Reason; 8] = [
        Reason::Dispatch,
        Reason::Timeout,
        Reason::Unreachable,
        Reason::Status,
        Reason::TooLarge,
        Reason::Parse,
        Reason::Missing,
        Reason::Invalid,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Reason::Dispatch => "dispatch",
            Reason::Timeout => "timeout",
            Reason::Unreachable => "unreachable",
            Reason::Status => "status",
            Reason::TooLarge => "too_large",
            Reason::Parse => "parse",
            Reason::Missing => "missing",
            Reason::Invalid => "invalid",
        }
    }

    pub fn index(self) -> usize {
        Reason::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }
}

/// What the glue read of the answer. `body` holds at most `max_body_bytes + 1` bytes.
#[derive(Debug, Clone, Default)]
pub struct Answer<'a> {
    pub status: Option<u16>,
    /// Envoy sets `x-envoy-upstream-service-time` only on answers that came from the upstream.
    pub from_upstream: bool,
    pub header: Option<&'a [u8]>,
    pub body: &'a [u8],
    pub body_size: usize,
}

/// The sampled value, or why there is none.
pub fn sample_value(
    source: &ValueSource,
    answer: &Answer<'_>,
    max_body: usize,
) -> Result<u64, Reason> {
    match answer.status {
        Some(200..=299) => {}
        Some(504) if !answer.from_upstream => return Err(Reason::Timeout),
        Some(503) if !answer.from_upstream => return Err(Reason::Unreachable),
        Some(_) => return Err(Reason::Status),
        None => return Err(Reason::Unreachable),
    }
    match source {
        ValueSource::Header(_) => {
            let raw = answer.header.ok_or(Reason::Missing)?;
            parse_number_text(raw)
        }
        _ if answer.body_size > max_body || answer.body.len() > max_body => Err(Reason::TooLarge),
        ValueSource::Text => parse_number_text(answer.body),
        ValueSource::JsonPointer(pointer) => {
            match select(answer.body, pointer).map_err(|_| Reason::Parse)? {
                Some(Selected::Number(n)) => number_to_u64(n),
                Some(_) => Err(Reason::Invalid),
                None => Err(Reason::Missing),
            }
        }
        ValueSource::JsonArrayLength(pointer) => {
            match select(answer.body, pointer).map_err(|_| Reason::Parse)? {
                Some(Selected::Array(length)) => Ok(length),
                Some(_) => Err(Reason::Invalid),
                None => Err(Reason::Missing),
            }
        }
    }
}

fn number_to_u64(n: Number) -> Result<u64, Reason> {
    match n {
        Number::Unsigned(n) => Ok(n),
        // 42.0 is an integer written as a float; 4.2 or -1 cannot be a gauge value.
        Number::Float(f) if f >= 0.0 && f.fract() == 0.0 && f < u64::MAX as f64 => Ok(f as u64),
        _ => Err(Reason::Invalid),
    }
}

/// A body or header that is just a number (surrounding whitespace allowed).
fn parse_number_text(raw: &[u8]) -> Result<u64, Reason> {
    let text = std::str::from_utf8(raw).map_err(|_| Reason::Parse)?.trim();
    if text.is_empty() {
        return Err(Reason::Parse);
    }
    if let Ok(n) = text.parse::<u64>() {
        return Ok(n);
    }
    // Any other number ("42.0", "-3", "4.2e1") as JSON reads it: one number parser in the module.
    match select(text.as_bytes(), "") {
        Ok(Some(Selected::Number(n))) => number_to_u64(n),
        _ => Err(Reason::Parse),
    }
}

#[cfg(test)]
#[path = "../tests/unit/extract.rs"]
mod tests;
