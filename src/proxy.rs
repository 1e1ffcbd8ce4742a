//! Who answered a request, the app or Envoy itself, and for Envoy's own answers why: the bounded
//! `reason` of `http_proxy_responses_total`.
//!
//! The glue asks only for answers without the router's `x-envoy-upstream-service-time` header
//! (every answer from the app has it), so requests the app answered cost nothing more. For those
//! it reads the response code details Envoy records for the stream (`response.code_details`,
//! the `%RESPONSE_CODE_DETAILS%` of access logs) and [`classify`] maps them. The details rather
//! than the response flags: they tell a `direct_response` route (no flag) from an app answer
//! whose header a router removed (`suppress_envoy_headers`, no flag either), and name the reset
//! reason. Values as Envoy 1.40 writes them (seen in its access log; tests/e2e_proxy.rs checks
//! each mapping end to end): `route_not_found`,
//! `no_healthy_upstream`, `response_timeout`, `local_rate_limited`, `direct_response` (also for
//! redirects), `upstream_reset_before_response_started{remote_connection_failure|delayed_connect_error:_Connection_refused}`,
//! `…{connection_termination}`, `…{overflow}`.

crate::labels::label_enum! {
    pub enum ProxyReason {
        /// No route for the request, or its route's cluster does not exist (Envoy's NR, NC): 404/503.
        NoRoute => "no_route",
        /// The cluster has no healthy host (UH): 503.
        NoHealthyUpstream => "no_healthy_upstream",
        /// No connection to the app could be made: refused, timed out, TLS failed (UF): 503.
        ConnectionFailure => "connection_failure",
        /// A timeout: the route's (UT: 504), a per-try, stream idle or request timeout (408, 504).
        Timeout => "timeout",
        /// The connection or stream to the app was reset before any response (UC, UR, LR): 503.
        Reset => "reset",
        /// Capacity: a circuit breaker or pending-request overflow (UO), Envoy's overload manager,
        /// `drop_overload`, a cluster in maintenance mode: 503.
        Overflow => "overflow",
        /// A rate limit filter said no (RL): 429.
        RateLimited => "rate_limited",
        /// Anything else Envoy answered: a `direct_response` route or redirect, another filter's
        /// local reply (RBAC, ext_authz, fault injection, ...).
        Other => "other",
    }
}

use ProxyReason::*;

/// What Envoy records for an answer from the app.
const VIA_UPSTREAM: &[u8] = b"via_upstream";
/// The app started answering, then the stream broke: still the app's answer.
const LATE_RESET: &[u8] = b"upstream_reset_after_response_started";
/// Followed by `{reason|more details}`.
const EARLY_RESET: &[u8] = b"upstream_reset_before_response_started";

/// Details Envoy writes whole, and their reason. A table rather than a `match`: the compiler
/// unrolls a match on byte strings into a 6 KB function, which V8 compiles at load (RSS).
const EXACT: [(&[u8], ProxyReason); 20] = [
    (b"route_not_found", NoRoute),
    (b"cluster_not_found", NoRoute),
    (b"route_configuration_not_found", NoRoute),
    (b"no_healthy_upstream", NoHealthyUpstream),
    (b"response_timeout", Timeout),
    (b"upstream_per_try_timeout", Timeout),
    (b"upstream_per_try_idle_timeout", Timeout),
    (b"upstream_max_stream_duration_reached", Timeout),
    (b"request_overall_timeout", Timeout),
    (b"max_duration_timeout", Timeout),
    (b"stream_idle_timeout", Timeout),
    (b"request_header_timeout", Timeout),
    (b"downstream_header_timeout", Timeout),
    (b"duration_timeout", Timeout),
    (b"overload", Overflow),
    (b"drop_overload", Overflow),
    (b"unconditional_drop_overload", Overflow),
    (b"maintenance_mode", Overflow),
    (b"local_rate_limited", RateLimited),
    (b"request_rate_limited", RateLimited),
];
/// Envoy's `StreamResetReason` names after an early reset that are not a plain reset.
const RESET_REASONS: [(&[u8], ProxyReason); 5] = [
    (b"overflow", Overflow),
    (b"connection_failure", ConnectionFailure),
    (b"local_connection_failure", ConnectionFailure),
    (b"remote_connection_failure", ConnectionFailure),
    (b"connection_timeout", ConnectionFailure),
];

fn lookup(table: &[(&[u8], ProxyReason)], key: &[u8], otherwise: ProxyReason) -> ProxyReason {
    table
        .iter()
        .find(|(known, _)| *known == key)
        .map_or(otherwise, |(_, reason)| *reason)
}

/// The reason for an answer that came without the router's upstream header, from Envoy's
/// response code details (`None` if it recorded none). `None` when the details say the app
/// answered after all (a router with `suppress_envoy_headers: true` sends no such header).
pub fn classify(details: Option<&[u8]>) -> Option<ProxyReason> {
    let Some(details) = details else {
        return Some(Other);
    };
    if details == VIA_UPSTREAM || details.starts_with(LATE_RESET) {
        return None;
    }
    if let Some(rest) = details.strip_prefix(EARLY_RESET) {
        return Some(early_reset(rest));
    }
    Some(lookup(&EXACT, details, Other))
}

/// `{remote_connection_failure|delayed_connect_error:_Connection_refused}` → the reason of its
/// first item.
fn early_reset(rest: &[u8]) -> ProxyReason {
    let inner = rest.strip_prefix(b"{").unwrap_or(rest);
    let end = inner
        .iter()
        .position(|b| matches!(b, b'|' | b',' | b'}'))
        .unwrap_or(inner.len());
    lookup(&RESET_REASONS, inner.get(..end).unwrap_or_default(), Reset)
}

#[cfg(test)]
#[path = "../tests/unit/proxy.rs"]
mod tests;
