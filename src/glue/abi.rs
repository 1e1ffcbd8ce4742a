//! The proxy-wasm ABI (0.2.1) entry points this module exports, and nothing more.
//!
//! The host calls into the VM only for the callbacks a module exports, and each call costs
//! about as much as everything else the filter does for a request (see BENCHMARKS.md). An SDK
//! exports every callback, so Envoy would enter the VM seven times per request; this module
//! exports two per request: `proxy_on_context_create` (when the request starts: the start time)
//! and `proxy_on_log` (when it has ended: everything else, read in one pass). No body,
//! trailer, done or delete callback: nothing here needs them.

use super::host::{self, Level};
use super::root::Root;
use super::{http, install_logging, warn_limited};
use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Everything one VM (one worker thread) keeps.
#[derive(Default)]
struct Vm {
    /// Root contexts by id: one per plugin configuration sharing this VM.
    roots: Vec<(u32, Root)>,
    /// Requests in flight: context id → (root id, start time in ns when it is needed).
    streams: HashMap<u32, (u32, Option<u64>), BuildHasherDefault<IdHasher>>,
}

/// In-flight requests one worker tracks at most (≈ 1.5 MB). Beyond it (which would mean the host
/// stopped calling `proxy_on_log`) a request is still counted when the VM serves one plugin
/// configuration, only without its duration.
const MAX_STREAMS: usize = 1 << 16;

thread_local! {
    static VM: RefCell<Vm> = RefCell::new(Vm::default());
}

impl Vm {
    fn root(&mut self, id: u32) -> Option<&mut Root> {
        self.roots
            .iter_mut()
            .find(|(r, _)| *r == id)
            .map(|(_, root)| root)
    }
}

/// Runs `f` on the VM's state; a re-entrant call (never expected: the host defers its callbacks
/// while the VM runs) is dropped and logged rather than allowed to panic.
fn with_vm<R>(f: impl FnOnce(&mut Vm) -> R) -> Option<R> {
    VM.with(|vm| match vm.try_borrow_mut() {
        Ok(mut vm) => Some(f(&mut vm)),
        Err(_) => {
            warn_limited(|| "re-entrant callback ignored".to_string());
            None
        }
    })
}

#[no_mangle]
pub extern "C" fn proxy_abi_version_0_2_1() {}

/// The host allocates in the VM through this to hand over data (header maps, bodies, ...).
#[no_mangle]
pub extern "C" fn proxy_on_memory_allocate(size: usize) -> *mut u8 {
    let mut buffer: Vec<u8> = Vec::with_capacity(size);
    let pointer = buffer.as_mut_ptr();
    std::mem::forget(buffer);
    pointer
}

#[no_mangle]
pub extern "C" fn proxy_on_vm_start(_root_id: u32, _vm_configuration_size: usize) -> u32 {
    install_logging();
    1
}

#[no_mangle]
pub extern "C" fn proxy_on_context_create(context_id: u32, parent_id: u32) {
    with_vm(|vm| {
        if parent_id == 0 {
            if vm.root(context_id).is_none() {
                vm.roots.push((context_id, Root::default()));
            }
            return;
        }
        let timed = vm.root(parent_id).is_some_and(|root| root.times_requests());
        if vm.streams.len() >= MAX_STREAMS {
            warn_limited(|| format!("over {MAX_STREAMS} requests in flight; durations skipped"));
            return;
        }
        let start = if timed { host::now_ns() } else { None };
        vm.streams.insert(context_id, (parent_id, start));
    });
}

/// The request has ended (Envoy's access-log phase): both header maps are readable.
#[no_mangle]
pub extern "C" fn proxy_on_log(context_id: u32) {
    with_vm(|vm| {
        // Not found only past MAX_STREAMS: still counted, under the only plugin if there is one.
        let found = vm.streams.remove(&context_id);
        let fallback = match vm.roots.as_slice() {
            [(only, _)] => Some((*only, None)),
            _ => None,
        };
        let Some((root_id, start)) = found.or(fallback) else {
            return;
        };
        if let Some(state) = vm.root(root_id).and_then(|root| root.state()) {
            http::on_log(state, start);
        }
    });
}

#[no_mangle]
pub extern "C" fn proxy_on_configure(root_id: u32, _configuration_size: usize) -> u32 {
    let configured = with_vm(|vm| match vm.root(root_id) {
        Some(root) => root.configure(),
        None => {
            host::log(
                Level::Error,
                "app_metrics: configure for an unknown root context",
            );
            false
        }
    });
    u32::from(configured.unwrap_or(false))
}

#[no_mangle]
pub extern "C" fn proxy_on_tick(root_id: u32) {
    with_vm(|vm| {
        if let Some(root) = vm.root(root_id) {
            root.tick();
        }
    });
}

#[no_mangle]
pub extern "C" fn proxy_on_http_call_response(
    root_id: u32,
    token: u32,
    _headers: usize,
    body_size: usize,
    _trailers: usize,
) {
    with_vm(|vm| {
        if let Some(root) = vm.root(root_id) {
            root.http_call_response(token, body_size);
        }
    });
}

/// Context ids are unique integers already: hashing them again would only cost time.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u32(&mut self, n: u32) {
        // Spread sequential ids over the table's control bytes (top 7 bits) too.
        self.0 = u64::from(n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}
