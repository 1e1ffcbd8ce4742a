//! Turning a sampler's HTTP answer into a gauge value, or into the reason it could not be.

use crate::json::{select, Number, Selected};

crate::labels::label_enum! {
    /// Why a sample failed; the `reason` label of `app_metrics_sampler_errors_total`.
    pub enum SampleError {
        /// The request could not be sent (e.g. unknown cluster).
        Dispatch => "dispatch",
        /// Envoy gave up waiting (its own 504).
        Timeout => "timeout",
        /// Envoy could not reach the upstream (its own 503).
        Unreachable => "unreachable",
        /// The upstream answered with a non-2xx status.
        Status => "status",
        /// The body is longer than `max_body_bytes`.
        TooLarge => "too_large",
        /// The body is not JSON, or not a number for `text`.
        Parse => "parse",
        /// The JSON pointer or header is absent.
        Missing => "missing",
        /// The value is there but is not a non-negative integer (Envoy gauges are unsigned integers).
        Invalid => "invalid",
    }
}

/// Where a sampler's number comes from in the answer (`samplers[].value`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueSource {
    JsonPointer(String),
    JsonArrayLength(String),
    /// Lower-cased.
    Header(String),
    Text,
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
) -> Result<u64, SampleError> {
    match answer.status {
        Some(200..=299) => {}
        Some(504) if !answer.from_upstream => return Err(SampleError::Timeout),
        Some(503) if !answer.from_upstream => return Err(SampleError::Unreachable),
        Some(_) => return Err(SampleError::Status),
        None => return Err(SampleError::Unreachable),
    }
    match source {
        ValueSource::Header(_) => {
            let raw = answer.header.ok_or(SampleError::Missing)?;
            parse_number_text(raw)
        }
        _ if answer.body_size > max_body || answer.body.len() > max_body => {
            Err(SampleError::TooLarge)
        }
        ValueSource::Text => parse_number_text(answer.body),
        ValueSource::JsonPointer(pointer) => {
            match select(answer.body, pointer).map_err(|_| SampleError::Parse)? {
                Some(Selected::Number(n)) => number_to_u64(n),
                Some(_) => Err(SampleError::Invalid),
                None => Err(SampleError::Missing),
            }
        }
        ValueSource::JsonArrayLength(pointer) => {
            match select(answer.body, pointer).map_err(|_| SampleError::Parse)? {
                Some(Selected::Array(length)) => Ok(length),
                Some(_) => Err(SampleError::Invalid),
                None => Err(SampleError::Missing),
            }
        }
    }
}

fn number_to_u64(n: Number) -> Result<u64, SampleError> {
    match n {
        Number::Unsigned(n) => Ok(n),
        // 42.0 is an integer written as a float; 4.2 or -1 cannot be a gauge value.
        Number::Float(f) if f >= 0.0 && f.fract() == 0.0 && f < u64::MAX as f64 => Ok(f as u64),
        _ => Err(SampleError::Invalid),
    }
}

/// A body or header that is just a number (surrounding whitespace allowed).
fn parse_number_text(raw: &[u8]) -> Result<u64, SampleError> {
    let text = std::str::from_utf8(raw)
        .map_err(|_| SampleError::Parse)?
        .trim();
    if text.is_empty() {
        return Err(SampleError::Parse);
    }
    if let Ok(n) = text.parse::<u64>() {
        return Ok(n);
    }
    // Any other number ("42.0", "-3", "4.2e1") as JSON reads it: one number parser in the module.
    match select(text.as_bytes(), "") {
        Ok(Some(Selected::Number(n))) => number_to_u64(n),
        _ => Err(SampleError::Parse),
    }
}

#[cfg(test)]
#[path = "../tests/unit/extract.rs"]
mod tests;
