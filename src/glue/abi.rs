//! The proxy-wasm ABI (0.2.1) entry points this module exports, and nothing more.
//!
//! The host calls into the VM only for the callbacks a module exports, and each call costs
//! about as much as everything else the filter does for a request (see BENCHMARKS.md). An SDK
//! exports every callback, so Envoy would enter the VM seven times per request; this module
//! exports two: `proxy_on_context_create`, which says which root context (plugin
//! configuration) the request belongs to, and `proxy_on_log`, when the request has ended, where
//! everything is read in one pass. Not `proxy_on_done`/`proxy_on_delete`: Envoy would call them
//! for every request too; roots tick to say they are alive instead (`lifecycle.rs`).
//!
//! `proxy_on_configure` always succeeds: a configuration Envoy saw refused would cost the app
//! requests (a refused ECDS update leaves a new pod answering 500). A bad one is logged, shown on
//! `app_metrics_config_valid`, and the plugin's last good configuration stays in force.

use super::host::{self, Buffer, Stats};
use super::root::{Root, TICK_MS};
use super::{http, install_logging};
use crate::config;
use crate::lifecycle::Plugins;
use crate::metrics::config_valid;
use std::cell::RefCell;

thread_local! {
    /// Everything one VM (one worker thread) keeps: its root contexts, one per plugin
    /// configuration alive in it, and which root each request in flight belongs to.
    static VM: RefCell<Plugins<Root>> = RefCell::new(Plugins::default());
}

pub(super) fn now_ms() -> u64 {
    host::now_ns().unwrap_or(0) / 1_000_000
}

/// A configuration this build can serve: the lean one refuses body rules.
fn parse(raw: &[u8]) -> Result<config::Config, config::ConfigError> {
    let config = config::parse(raw)?;
    config::check_build(&config, cfg!(feature = "bodies"))?;
    Ok(config)
}

/// Configures root `id`: never refused (see the module comment).
fn configure(plugins: &mut Plugins<Root>, id: u32) {
    let name = host::plugin_name().unwrap_or_default();
    let shown = String::from_utf8_lossy(&name).into_owned();
    let delivered = match host::buffer(Buffer::PluginConfiguration, 0, usize::MAX) {
        Ok(raw) => Ok(raw.unwrap_or_default()),
        Err(status) => Err(format!(
            "cannot read the plugin configuration (host status {status})"
        )),
    };
    let parsed = delivered
        .as_ref()
        .map_err(Clone::clone)
        .and_then(|raw| parse(raw).map_err(|e| e.to_string()));
    let valid = parsed.is_ok();
    let config = parsed.or_else(|error| {
        log::error!("{error}");
        let good = plugins.last_good(&name).and_then(|raw| parse(raw).ok());
        match good {
            Some(_) => log::warn!(
                "plugin {shown:?}: configuration refused; this VM keeps its last good one in force"
            ),
            None => log::warn!(
                "plugin {shown:?}: configuration refused, and this VM had no good one before (a new proxy, or Envoy's configuration check): what it serves passes unrecorded"
            ),
        }
        good.ok_or(())
    });
    let root = Root::new(config.as_ref().ok());
    warn_shared_samplers(plugins, &name, &root);
    if let Err(status) = host::set_tick_period_ms(TICK_MS) {
        log::error!("cannot start the timer (host status {status})");
    }
    if !config_valid(&Stats, &name, valid) {
        log::error!("cannot set app_metrics_config_valid");
    }
    let raw = delivered.unwrap_or_default();
    plugins.configured(id, &name, &raw, valid, now_ms(), root);
}

/// Says so when a sampler of plugin `name` would feed the same gauge (and share the schedule) as
/// another live plugin's in this VM: one series for two configurations.
fn warn_shared_samplers(plugins: &Plugins<Root>, name: &[u8], root: &Root) {
    let Some(filter) = root.filter() else {
        return;
    };
    for other in plugins.others(name) {
        let shared = other.root.filter().map(|f| filter.shared_samplers(f));
        if let Some(shared) = shared.filter(|s| !s.is_empty()) {
            log::warn!(
                "plugin {:?}: sampler(s) {shared:?} feed the same gauge and schedule as plugin {:?}'s (expected other names, or constant labels that tell the two apart)",
                String::from_utf8_lossy(name),
                String::from_utf8_lossy(&other.name)
            );
        }
    }
}

/// Runs `f` on the VM's state; a re-entrant call (never expected: the host defers its callbacks
/// while the VM runs) is dropped and logged rather than allowed to panic.
pub(super) fn with_vm<R>(f: impl FnOnce(&mut Plugins<Root>) -> R) -> Option<R> {
    VM.with(|vm| match vm.try_borrow_mut() {
        Ok(mut vm) => Some(f(&mut vm)),
        Err(_) => {
            warn_limited!(|| "re-entrant callback ignored".to_string());
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

/// A context was created: a request's (`parent` is its root) or a root's (`parent` 0).
#[no_mangle]
pub extern "C" fn proxy_on_context_create(context_id: u32, parent: u32) {
    if parent != 0 {
        with_vm(|vm| vm.request_started(context_id, parent));
    }
}

/// The request has ended (Envoy's access-log phase): both header maps are readable.
#[no_mangle]
pub extern "C" fn proxy_on_log(context_id: u32) {
    #[cfg(feature = "bodies")]
    let bodies = super::body::finish(context_id);
    #[cfg(not(feature = "bodies"))]
    let bodies = None;
    with_vm(|vm| {
        let live = vm.root_of_request(context_id, host::plugin_name);
        if let Some(state) = live.and_then(|l| l.root.state()) {
            http::on_log(state, bodies.as_ref());
        }
    });
}

#[no_mangle]
pub extern "C" fn proxy_on_configure(root_id: u32, _configuration_size: usize) -> u32 {
    with_vm(|vm| configure(vm, root_id));
    1
}

#[no_mangle]
pub extern "C" fn proxy_on_tick(root_id: u32) {
    #[cfg(feature = "bodies")]
    super::body::sweep();
    with_vm(|vm| {
        let ended = vm.ticked(root_id, now_ms());
        if let Some(live) = vm.root(root_id) {
            live.root.tick();
        }
        // A plugin whose newest root ended is served by its previous one again.
        for name in ended {
            if let Some(valid) = vm.in_force_valid(&name) {
                config_valid(&Stats, &name, valid);
            }
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
        if let Some(live) = vm.root(root_id) {
            live.root.http_call_response(token, body_size);
        }
    });
}
