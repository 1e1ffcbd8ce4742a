//! The proxy-wasm ABI (0.2.1) entry points this module exports, and nothing more.
//!
//! The host calls into the VM only for the callbacks a module exports, and each call costs
//! about as much as everything else the filter does for a request (see BENCHMARKS.md). An SDK
//! exports every callback, so Envoy would enter the VM seven times per request; this module
//! exports one: `proxy_on_log`, when the request has ended, where everything is read in one
//! pass. Not even `proxy_on_context_create`: the duration comes from a response header
//! (`http.rs`), so nothing needs the start of a request.
//!
//! Without `proxy_on_context_create` the host never says which root context (plugin
//! configuration) a request belongs to. One VM usually serves one plugin; when several share
//! it, the plugin's name tells them apart (one host call per request, only then). A plugin
//! configured again under the same name (a configuration update) replaces the old one.

use super::host;
use super::root::Root;
use super::{http, install_logging, warn_limited};
use std::cell::RefCell;

/// Everything one VM (one worker thread) keeps: its root contexts by id, one per plugin
/// configuration sharing this VM, in the order they were configured.
#[derive(Default)]
struct Vm {
    roots: Vec<(u32, Root)>,
}

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

    /// The root context a finished request belongs to (see the module comment).
    fn root_of_request(&mut self) -> Option<&mut Root> {
        let mut at = self.roots.len().checked_sub(1)?;
        if at > 0 {
            if let Some(name) = host::plugin_name() {
                let named = |(_, root): &(u32, Root)| root.name() == Some(name.as_slice());
                at = self.roots.iter().rposition(named).unwrap_or(at);
            }
        }
        self.roots.get_mut(at).map(|(_, root)| root)
    }

    /// Configures root `id`. Kept only if that succeeds (Envoy then keeps the old plugin);
    /// an older root of the same plugin name is a configuration this one replaces (Envoy keeps
    /// the VM across configuration updates), and is dropped.
    fn configure(&mut self, id: u32) -> bool {
        self.roots.retain(|(r, _)| *r != id);
        let mut root = Root::default();
        if !root.configure() {
            return false;
        }
        let before = self.roots.len();
        self.roots.retain(|(_, old)| old.name() != root.name());
        if self.roots.len() < before {
            // Envoy keeps a VM across a plugin's configuration updates; the same name in two
            // listeners at once would also land here, hence the hint.
            log::info!(
                "plugin {:?} configured again: its requests now use the new configuration (two \
                 listeners with different configurations need distinct plugin names)",
                String::from_utf8_lossy(root.name().unwrap_or_default())
            );
        }
        self.roots.push((id, root));
        true
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

/// The request has ended (Envoy's access-log phase): both header maps are readable.
#[no_mangle]
pub extern "C" fn proxy_on_log(_context_id: u32) {
    with_vm(|vm| {
        if let Some(state) = vm.root_of_request().and_then(Root::state) {
            http::on_log(state);
        }
    });
}

#[no_mangle]
pub extern "C" fn proxy_on_configure(root_id: u32, _configuration_size: usize) -> u32 {
    let configured = with_vm(|vm| vm.configure(root_id));
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
