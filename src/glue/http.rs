//! Where a request becomes metrics: once it has ended (Envoy's access-log phase), one read of
//! each header map gives everything the configuration asks about, and the registry records it.
//!
//! Reading at the end rather than as headers pass means two host reads per request however
//! many values are needed, and no callback in between. The maps are then final: the path the
//! application received (after any route rewrite), the response as the client got it. Each map
//! is scanned once for all the headers wanted (`Filter::request_names`, `response_names`).
//!
//! The duration is the one Envoy's router puts on every upstream answer
//! (`x-envoy-upstream-service-time`, whole milliseconds): how long the application took, as
//! prometheus-fastapi-instrumentator measures it inside the app, and free to read here. So the
//! module keeps nothing from the start of a request but its root (see `abi.rs`). An answer Envoy made itself
//! (an upstream timeout, no healthy upstream, a direct response) has no such header: then
//! Envoy's own time for the whole request, `request.duration`, and what Envoy recorded about the
//! stream, `response.code_details` (`proxy.rs`: which reason, if any), two more host calls for
//! those answers only. `http_metrics.total_duration` reads `request.duration` for every request.

use super::host::{self, Map, Stats};
use super::root::State;
use crate::body::Pending;
use crate::filter::{
    Filter, Grpc, REQUEST_LENGTH, REQUEST_METHOD, REQUEST_PATH, REQUEST_RULE_HEADERS,
    RESPONSE_LENGTH, RESPONSE_RULE_HEADERS, RESPONSE_STATUS, RESPONSE_UPSTREAM_TIME,
};
use crate::grpc;
use crate::memory::Unread;
use crate::metrics::{Completed, Registry, Rpc};
use crate::pairs::{self, Found};
use crate::proxy;
use crate::streams::Stream;
use std::sync::atomic::{AtomicU32, Ordering};

pub fn on_log(state: &mut State, bodies: Option<&Pending>, stream: Option<&Stream>) {
    let filter = &state.filter;
    if !filter.observes_requests() {
        return;
    }
    // Both maps first, back to back: the host's second copy costs least right after the first.
    let request_map = read_at_end(Map::Request);
    let response_map = read_at_end(Map::Response);
    // Either not handed over (no memory for the copy): the request passes uncounted, under
    // why, rather than counted with half its facts.
    if UNREAD.load(Ordering::Relaxed) != 0 {
        return not_counted(state);
    }
    let request = Found::lookup_in(
        request_map.as_deref().unwrap_or_default(),
        &filter.request_names,
        &filter.request_table,
    );
    let method = request.get(REQUEST_METHOD).unwrap_or_default();
    let path = filter
        .need_path(method)
        .then(|| {
            request
                .get(REQUEST_PATH)
                .and_then(|p| std::str::from_utf8(p).ok())
        })
        .flatten();
    let request_headers = request.from(REQUEST_RULE_HEADERS);
    let exchange = filter.classify(method, path, request_headers);
    let grpc = filter
        .grpc
        .as_ref()
        .filter(|g| request.get(g.content_type).is_some_and(grpc::is_grpc));
    let http = exchange.handler.is_some() || !exchange.candidates.is_empty();
    if !http && grpc.is_none() {
        return;
    }
    let response = Found::lookup_in(
        response_map.as_deref().unwrap_or_default(),
        &filter.response_names,
        &filter.response_table,
    );
    // No :status when the client went away before any response.
    let status = response
        .get(RESPONSE_STATUS)
        .and_then(pairs::decimal)
        .and_then(|s| u16::try_from(s).ok());
    if let Some(g) = grpc {
        let ok = rpc_ended(
            filter,
            &mut state.registry,
            g,
            (&request, &response),
            status,
            stream,
        );
        if !ok {
            warn_limited!(|| "the host refused a gRPC metric update".to_string());
        }
        if !http {
            return;
        }
    }
    let app_ms = response
        .get(RESPONSE_UPSTREAM_TIME)
        .and_then(pairs::decimal);
    let timed = exchange.handler.is_some();
    // Envoy's clock: for answers without the app's time, and for every request when asked.
    let envoy_ms = (timed && (app_ms.is_none() || filter.total_duration()))
        .then(host::request_duration_ns)
        .flatten()
        .map(|ns| ns / 1_000_000);
    // An answer without the router's header was Envoy's own, unless its details say otherwise.
    let proxy = (timed && app_ms.is_none() && status.is_some())
        .then(|| proxy::classify(host::response_code_details().as_deref()))
        .flatten();
    // Body sizes as prometheus-fastapi-instrumentator measures them: Content-Length, 0 without.
    let length = |found: &Found, i| found.get(i).and_then(pairs::decimal).unwrap_or(0);
    let done = Completed {
        exchange: &exchange,
        request_headers,
        status,
        response_headers: response.from(RESPONSE_RULE_HEADERS),
        duration_ms: exchange.handler.and(app_ms.or(envoy_ms)),
        proxy,
        total_ms: envoy_ms.filter(|_| filter.total_duration()),
        request_bytes: length(&request, REQUEST_LENGTH),
        response_bytes: length(&response, RESPONSE_LENGTH),
        bodies,
    };
    if !state.registry.record(&state.filter, &Stats, &done) {
        warn_limited!(|| "the host refused a metric update".to_string());
    }
}

/// The gRPC metrics of an RPC that has ended. Only for gRPC requests of a configuration with a
/// `grpc` section: the trailers (one host call) when the status was not in the headers, Envoy's
/// clock (one more) when the handling time or a deadline needs it.
#[inline(never)]
fn rpc_ended(
    filter: &Filter,
    registry: &mut Registry,
    g: &Grpc,
    (request, response): (&Found, &Found),
    status: Option<u16>,
    stream: Option<&Stream>,
) -> bool {
    let rpc = Rpc {
        index: g
            .methods
            .find(request.get(REQUEST_PATH).unwrap_or_default()),
        request_headers: request.from(REQUEST_RULE_HEADERS),
        response_headers: response.from(RESPONSE_RULE_HEADERS),
    };
    // The status: the headers (trailers-only), what the followed stream saw, or the trailers.
    let seen = stream.and_then(Stream::status);
    let trailers = match response.get(g.status) {
        Some(_) => None,
        None if seen.is_some() => seen,
        None if status.is_some() => host::header(Map::ResponseTrailers, "grpc-status")
            .ok()
            .flatten(),
        None => None,
    };
    let deadline_ms = request.get(g.timeout).and_then(grpc::timeout_ms);
    let duration_ms = (g.handling_time || (status.is_none() && deadline_ms.is_some()))
        .then(host::request_duration_ns)
        .flatten()
        .map(|ns| ns / 1_000_000);
    let code = grpc::code(&grpc::Ending {
        grpc_status: response.get(g.status).or(trailers.as_deref()),
        http_status: status,
        deadline_ms,
        duration_ms,
        web: response
            .get(g.response_type)
            .is_some_and(|t| t.starts_with(b"application/grpc-web")),
    });
    // A stream followed (body-reading module) was counted started at its headers; the lean
    // module has no callback when a request starts: it counts started with handled
    // (docs/grpc.md).
    let started = stream.is_some() || registry.grpc_started(filter, &Stats, &rpc);
    let messages = stream.map(|s| (s.received.messages, s.sent.messages));
    started & registry.grpc_handled(filter, &Stats, &rpc, code, duration_ms, messages)
}

/// A header map, serialized (`crate::pairs`; `None`: the host has none, or refused it: logged),
/// as the body-reading module reads it while a request passes.
#[cfg(feature = "bodies")]
pub(super) fn read(map: Map) -> Option<Vec<u8>> {
    host::header_pairs(map).unwrap_or_else(|status| {
        warn_limited!(|| format!("cannot read a header map (host status {status})"));
        None
    })
}

/// [`read`] for `on_log`: a map the host could not hand over (no memory for the copy) makes
/// the request pass uncounted, under why ([`UNREAD`]).
#[inline(always)]
fn read_at_end(map: Map) -> Option<Vec<u8>> {
    host::header_pairs(map).unwrap_or_else(unread)
}

#[cold]
#[inline(never)]
fn unread(status: u32) -> Option<Vec<u8>> {
    UNREAD.store(status, Ordering::Relaxed);
    warn_limited!(|| format!("cannot read a header map (host status {status})"));
    None
}

/// The status of a read `on_log` could not complete (0: none), until it has put the request
/// down as not counted. Only the failure path writes it.
static UNREAD: AtomicU32 = AtomicU32::new(0);

/// A request whose header maps could not be read passes uncounted, under why.
#[cold]
#[inline(never)]
fn not_counted(state: &mut State) {
    let status = UNREAD.swap(0, Ordering::Relaxed);
    state
        .registry
        .request_not_counted(&state.filter, &Stats, Unread::from_status(status));
}
