//! The body callbacks, in the module built with the `bodies` feature only (`app_metrics_bodies.wasm`).
//!
//! Envoy enters a module that exports these for every body chunk of every request, which is
//! why the lean module does not. Here a chunk of a request no body rule concerns costs the
//! callback and one check; a concerned one is copied (`crate::body`), never held back: each
//! callback answers `Continue`.

use super::abi::{now_ms, with_vm};
use super::host::{self, Buffer, Map, Stats};
use crate::body::{Bodies, Chunk, ChunkSource, Pending, Reading};
use crate::labels::Side;
use crate::pairs::{self, decimal};
use crate::rules::Rules;
use std::cell::RefCell;

thread_local! {
    /// The bodies being read in this VM, by request context.
    static BODIES: RefCell<Bodies> = RefCell::new(Bodies::default());
}

/// `Continue`: the chunk goes on to the next filter at once.
const CONTINUE: u32 = 0;

#[no_mangle]
pub extern "C" fn proxy_on_request_body(context_id: u32, size: usize, end_of_stream: u32) -> u32 {
    on_body(context_id, Side::Request, size, end_of_stream != 0);
    CONTINUE
}

#[no_mangle]
pub extern "C" fn proxy_on_response_body(context_id: u32, size: usize, end_of_stream: u32) -> u32 {
    on_body(context_id, Side::Response, size, end_of_stream != 0);
    CONTINUE
}

fn on_body(context: u32, side: Side, size: usize, end: bool) {
    with_vm(|vm| {
        let live = vm.root_of_request(context, host::plugin_name);
        let Some(state) = live.and_then(|l| l.root.state()) else {
            return;
        };
        let rules = &state.filter.rules;
        if !rules.reads_body(side) {
            return;
        }
        let mut source = HostChunk { side, rules };
        let now = now_ms();
        let chunk = Chunk {
            context,
            side,
            size,
            end,
        };
        let busy = with_bodies(|b| b.chunk(chunk, now, rules, &mut source));
        if let Some(reason) = busy.flatten() {
            state
                .registry
                .body_not_counted(&state.filter, &Stats, reason);
        }
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

/// Forgets requests whose end never came.
pub fn sweep() {
    let now = now_ms();
    with_bodies(|b| b.sweep(now));
}

fn with_bodies<R>(f: impl FnOnce(&mut Bodies) -> R) -> Option<R> {
    BODIES.with(|b| b.try_borrow_mut().ok().map(|mut b| f(&mut b)))
}

/// The host side of one body chunk: its headers (read when the body starts) and its bytes.
struct HostChunk<'a> {
    side: Side,
    rules: &'a Rules,
}

fn read_map(map: Map) -> Vec<u8> {
    host::header_pairs(map).ok().flatten().unwrap_or_default()
}

impl ChunkSource for HostChunk<'_> {
    fn start(&mut self) -> Reading {
        let request = read_map(Map::Request);
        let method = pairs::get(&request, ":method").unwrap_or_default();
        let path = pairs::get(&request, ":path").and_then(|p| std::str::from_utf8(p).ok());
        let response = match self.side {
            Side::Request => Vec::new(),
            Side::Response => read_map(Map::Response),
        };
        let status = pairs::get(&response, ":status")
            .and_then(decimal)
            .and_then(|s| u16::try_from(s).ok());
        let headers = match self.side {
            Side::Request => &request,
            Side::Response => &response,
        };
        let concerned = self.rules.reading_body(self.side, method, path, status);
        Reading::start(
            self.rules,
            concerned,
            pairs::get(headers, "content-type"),
            pairs::get(headers, "content-encoding"),
            pairs::get(headers, "content-length").and_then(decimal),
        )
    }

    fn bytes(&mut self, n: usize) -> Option<Vec<u8>> {
        let buffer = match self.side {
            Side::Request => Buffer::RequestBody,
            Side::Response => Buffer::ResponseBody,
        };
        host::buffer(buffer, 0, n)
            .ok()
            .map(Option::unwrap_or_default)
    }
}
