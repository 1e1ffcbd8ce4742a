//! Where a request becomes metrics: once it has ended (Envoy's access-log phase), one read of
//! each header map gives everything the configuration asks about, and the registry records it.
//!
//! Reading at the end rather than as headers pass means two host reads per request however
//! many values are needed, and no callback in between. The maps are then final: the path the
//! application received (after any route rewrite), the response as the client got it.

use super::host::{self, Map, Stats};
use super::root::State;
use super::warn_limited;
use crate::metrics::Completed;
use crate::pairs;

pub fn on_log(state: &mut State, start_ns: Option<u64>) {
    let filter = &state.filter;
    if !filter.observes_requests() {
        return;
    }
    let request = read(Map::Request);
    let request = request.as_deref().unwrap_or_default();
    let method = pairs::get(request, ":method").unwrap_or_default();
    let path = filter
        .need_path(method)
        .then(|| pairs::get(request, ":path").and_then(|p| std::str::from_utf8(p).ok()))
        .flatten();
    let request_headers: Vec<Option<Vec<u8>>> = filter
        .rules
        .request_headers
        .iter()
        .map(|name| pairs::get(request, name).map(<[u8]>::to_vec))
        .collect();
    let exchange = filter.classify(method, path, &request_headers);
    if exchange.handler.is_none() && exchange.candidates.is_empty() {
        return;
    }
    let response = read(Map::Response);
    let response = response.as_deref().unwrap_or_default();
    let response_headers: Vec<Option<Vec<u8>>> = if exchange.candidates.is_empty() {
        Vec::new()
    } else {
        filter
            .rules
            .response_headers
            .iter()
            .map(|name| pairs::get(response, name).map(<[u8]>::to_vec))
            .collect()
    };
    let duration_ms = match (start_ns, exchange.handler) {
        (Some(start), Some(_)) => host::now_ns().map(|end| end.saturating_sub(start) / 1_000_000),
        _ => None,
    };
    let done = Completed {
        exchange: &exchange,
        // No :status when the client went away before any response.
        status: pairs::get(response, ":status")
            .and_then(pairs::decimal)
            .and_then(|s| u16::try_from(s).ok()),
        response_headers: &response_headers,
        duration_ms,
        request_bytes: content_length(request),
        response_bytes: content_length(response),
    };
    if !state.registry.record(&state.filter, &Stats, &done) {
        warn_limited(|| "the host refused a metric update".to_string());
    }
}

/// Body size as prometheus-fastapi-instrumentator measures it: the Content-Length header, 0
/// without one.
fn content_length(map: &[u8]) -> u64 {
    pairs::get(map, "content-length")
        .and_then(pairs::decimal)
        .unwrap_or(0)
}

fn read(map: Map) -> Option<Vec<u8>> {
    host::header_pairs(map).unwrap_or_else(|status| {
        warn_limited(|| format!("cannot read a header map (host status {status})"));
        None
    })
}
