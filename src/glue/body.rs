//! The header and body callbacks, in the module built with the `bodies` feature only
//! (`app_metrics_bodies.wasm`).
//!
//! Envoy enters a module that exports these for the headers and for every body chunk of every
//! request, which is why the lean module does not. Header maps can be read only in their own
//! callback (Envoy forgets them once the filter lets them pass), so the headers decide which
//! bodies are read: a request no body rule concerns gets no entry, and its chunks cost the
//! callback and one table lookup. A concerned body is copied (`crate::body`), never held back:
//! each callback answers `Continue`.

use super::host::now_ms;
use super::host::Stats;
use super::host::{self, Buffer, Map};
use super::http::read;
use super::root::{revived, State};
use super::vm::{with_bodies, with_streams, with_vm};
use crate::bodies::Chunk;
use crate::body::{Pending, Reading};
use crate::filter::{REQUEST_PATH, REQUEST_RULE_HEADERS};
use crate::grpc;
use crate::labels::Side;
use crate::metrics::Rpc;
use crate::pairs::Found;
use crate::pairs::{self, decimal};
use crate::rules::Rules;
use crate::streams::Stream;

/// `Continue`: the headers or the chunk go on to the next filter at once.
const CONTINUE: u32 = 0;

#[no_mangle]
pub extern "C" fn proxy_on_request_headers(context_id: u32, _headers: usize, end: u32) -> u32 {
    on_request_headers(context_id, end != 0);
    CONTINUE
}

#[no_mangle]
pub extern "C" fn proxy_on_response_headers(context_id: u32, _headers: usize, end: u32) -> u32 {
    on_response_headers(context_id, end != 0);
    CONTINUE
}

#[no_mangle]
pub extern "C" fn proxy_on_request_body(context_id: u32, size: usize, end: u32) -> u32 {
    on_body(context_id, Side::Request, size, end != 0);
    CONTINUE
}

#[no_mangle]
pub extern "C" fn proxy_on_response_body(context_id: u32, size: usize, end: u32) -> u32 {
    on_body(context_id, Side::Response, size, end != 0);
    CONTINUE
}

/// Trailers end the body before them (gRPC, chunked with trailers): its last data frame did
/// not say so.
#[no_mangle]
pub extern "C" fn proxy_on_request_trailers(context_id: u32, _trailers: usize) -> u32 {
    on_body(context_id, Side::Request, 0, true);
    CONTINUE
}

#[no_mangle]
pub extern "C" fn proxy_on_response_trailers(context_id: u32, _trailers: usize) -> u32 {
    rpc_trailers(context_id);
    on_body(context_id, Side::Response, 0, true);
    CONTINUE
}

/// Runs `f` with the configuration serving request `context`.
fn with_root(context: u32, f: impl FnOnce(&mut State)) {
    with_vm(|vm| {
        let live = vm.root_of_live_request(context, host::plugin_name, revived);
        if let Some(state) = live.and_then(|l| l.root.state()) {
            f(state);
        }
    });
}

fn reads_bodies(state: &State) -> bool {
    let rules = &state.filter.rules;
    rules.reads_body(Side::Request) || rules.reads_body(Side::Response)
}

/// Runs `f` with the configuration serving request `context`, if it reads any body.
fn with_body_rules(context: u32, f: impl FnOnce(&mut State)) {
    with_root(context, |state| {
        if reads_bodies(state) {
            f(state);
        }
    });
}

/// Headers of the body they announce: content type, encoding and declared length.
fn start_reading(rules: &Rules, concerned: Vec<usize>, map: &[u8], no_body: bool) -> Reading {
    if no_body {
        return Reading::NotStarted;
    }
    Reading::start(
        rules,
        concerned,
        pairs::get(map, "content-type"),
        pairs::get(map, "content-encoding"),
        pairs::get(map, "content-length").and_then(decimal),
    )
}

/// A request's headers: one lookup of its configuration and one read of the map serve both
/// what this module follows, the gRPC stream and the bodies body rules read.
fn on_request_headers(context: u32, end: bool) {
    with_root(context, |state| {
        let bodies = reads_bodies(state);
        if !bodies && state.filter.grpc.is_none() {
            return;
        }
        let map = read(Map::Request).unwrap_or_default();
        rpc_started(context, state, &map);
        if bodies {
            request_bodies(context, state, &map, end);
        }
    });
}

/// Which of the request's bodies the rules read, and its connection's share.
fn request_bodies(context: u32, state: &State, map: &[u8], end: bool) {
    let rules = &state.filter.rules;
    let method = pairs::get(map, ":method").unwrap_or_default();
    let path = pairs::get(map, ":path").and_then(|p| std::str::from_utf8(p).ok());
    let request = rules.reading_body(Side::Request, method, path, None);
    let response = rules.reading_body(Side::Response, method, path, None);
    let reading = start_reading(rules, request, map, end);
    let now = now_ms();
    let busy = with_bodies(|b| b.request_headers(context, now, reading, response)).flatten();
    // What one client may hold is bounded: its connection, for the requests read.
    if with_bodies(|b| b.has(context)).unwrap_or(false) {
        if let Some(id) = host::connection_id() {
            with_bodies(|b| b.connection(context, id));
        }
    }
    // Counted when the request ends, by each body rule that otherwise matched it.
    if busy.is_some() {
        warn_limited!(|| {
            "a body was not read: this VM is reading as many requests' bodies as it may"
        });
    }
}

fn on_response_headers(context: u32, end: bool) {
    if !with_bodies(|b| b.has(context)).unwrap_or(false) {
        return;
    }
    with_body_rules(context, |state| {
        let rules = &state.filter.rules;
        let map = read(Map::Response).unwrap_or_default();
        let status = pairs::get(&map, ":status")
            .and_then(decimal)
            .and_then(|s| u16::try_from(s).ok());
        with_bodies(|b| {
            b.response_headers(context, |noted| {
                let concerned = noted
                    .iter()
                    .copied()
                    .filter(|&i| status.is_some_and(|s| rules.status_allows(i, s)))
                    .collect();
                start_reading(rules, concerned, &map, end)
            })
        });
    });
}

fn on_body(context: u32, side: Side, size: usize, end: bool) {
    rpc_data(context, side, size);
    if !with_bodies(|b| b.has(context)).unwrap_or(false) {
        return;
    }
    with_body_rules(context, |state| {
        let chunk = Chunk {
            context,
            side,
            size,
            end,
        };
        let buffer = match side {
            Side::Request => Buffer::RequestBody,
            Side::Response => Buffer::ResponseBody,
        };
        // The chunk's first `n` bytes.
        let fetch = |n| {
            host::buffer(buffer, 0, n)
                .ok()
                .map(Option::unwrap_or_default)
        };
        with_bodies(|b| b.chunk(chunk, &state.filter.rules, fetch));
    });
}

/// The request has ended: what its bodies made of the rules.
pub fn finish(context: u32) -> Option<Pending> {
    with_bodies(|b| {
        if b.is_empty() {
            None
        } else {
            b.finish(context)
        }
    })
    .flatten()
}

/// A gRPC request of a configuration with a `grpc` section starts: counted started now (so
/// started minus handled is what is in flight), and followed to its end.
fn rpc_started(context: u32, state: &mut State, map: &[u8]) {
    let Some(g) = state.filter.grpc.as_ref() else {
        return;
    };
    let found = Found::lookup_in(
        map,
        &state.filter.request_names,
        &state.filter.request_table,
    );
    if !found.get(g.content_type).is_some_and(grpc::is_grpc) {
        return;
    }
    let rpc = Rpc {
        index: g.methods.find(found.get(REQUEST_PATH).unwrap_or_default()),
        request_headers: found.from(REQUEST_RULE_HEADERS),
        response_headers: &[],
    };
    if with_streams(|s| s.start(context, rpc.index)).unwrap_or(false)
        && !state.registry.grpc_started(&state.filter, &Stats, &rpc)
    {
        warn_limited!(|| "the host refused a gRPC metric update".to_string());
    }
}

/// A followed stream's data: its messages, counted from their prefixes.
fn rpc_data(context: u32, side: Side, size: usize) {
    let buffer = match side {
        Side::Request => Buffer::RequestBody,
        Side::Response => Buffer::ResponseBody,
    };
    with_streams(|s| {
        if let Some(stream) = s.get_mut(context) {
            let frames = match side {
                Side::Request => &mut stream.received,
                Side::Response => &mut stream.sent,
            };
            frames.feed(size, |at, len| {
                host::buffer(buffer, at, len)
                    .ok()
                    .flatten()
                    .unwrap_or_default()
            });
        }
    });
}

/// A followed stream's trailers: the status, before a later filter (Envoy's `grpc_web`) moves
/// them into the body, where the log phase could not read them.
fn rpc_trailers(context: u32) {
    if with_streams(|s| s.get_mut(context).is_some()).unwrap_or(false) {
        let status = host::header(Map::ResponseTrailers, "grpc-status")
            .ok()
            .flatten();
        with_streams(|s| {
            if let Some(stream) = s.get_mut(context) {
                stream.status = status;
            }
        });
    }
}

/// The RPC has ended: what its stream showed, if it was followed.
pub fn finish_rpc(context: u32) -> Option<Stream> {
    with_streams(|s| {
        if s.is_empty() {
            None
        } else {
            s.finish(context)
        }
    })
    .flatten()
}

/// Forgets requests whose end never came.
pub fn sweep() {
    let now = now_ms();
    with_bodies(|b| b.sweep(now));
}
