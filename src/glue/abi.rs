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
use super::root::{parse, revived, Root};
use super::vm::with_vm;
use super::{http, install_logging};
use crate::lifecycle::{Plugins, Resumed, SLOW_TICK_MS, TICK_MS};
use crate::metrics::config_valid;

/// Configures root `id`: never refused (see the module comment).
fn configure(plugins: &mut Plugins<Root>, id: u32) {
    // Under churn the roots superseded by earlier changes are gone by now: no state per change.
    let superseded = plugins.superseded();
    for name in forget_deleted(plugins, superseded, id) {
        config_valid(&Stats, &name, plugins.in_force_valid(&name).unwrap_or(true));
    }
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
    set_tick(TICK_MS);
    if !config_valid(&Stats, &name, valid) {
        log::error!("cannot set app_metrics_config_valid");
    }
    let raw = delivered.unwrap_or_default();
    // The roots this one supersedes stop ticking: once Envoy deletes them, a running timer would
    // fire for the VM's life (`lifecycle.rs`). Only now, while they are alive, can it be stopped.
    for other in plugins.configured(id, &name, &raw, valid, root) {
        match host::set_effective_context(other) {
            Ok(()) => set_tick(0),
            Err(status) => warn_limited!(|| {
                format!(
                "cannot stop superseded root {other} (host status {status}): Envoy ticks it every second"
            )
            }),
        }
        if let Err(status) = host::set_effective_context(id) {
            log::error!("cannot return to root {id} (host status {status})");
        }
    }
}

/// Forgets those of the roots `ids` that Envoy has deleted (`lifecycle.rs`): the host
/// refuses to make them effective. A stopped one alive long enough becomes a backup (its timer
/// set while it is effective). Returns the forgotten roots' plugin names; the effective context
/// is `current` again.
fn forget_deleted(plugins: &mut Plugins<Root>, ids: Vec<u32>, current: u32) -> Vec<Vec<u8>> {
    if ids.is_empty() {
        return Vec::new();
    }
    let mut names = Vec::new();
    for id in ids {
        match host::set_effective_context(id) {
            Err(host::BAD_ARGUMENT) => names.extend(plugins.deleted(id)),
            Ok(()) => {
                if plugins.exists(id) {
                    set_tick(SLOW_TICK_MS);
                }
            }
            Err(_) => {}
        }
    }
    if let Err(status) = host::set_effective_context(current) {
        log::error!("cannot return to root {current} (host status {status})");
    }
    names
}

/// Sets the tick period of the current (or effective) context's root.
fn set_tick(ms: u32) {
    if let Err(status) = host::set_tick_period_ms(ms) {
        warn_limited!(|| format!("cannot set the timer (host status {status})"));
    }
}

/// A superseded root serves again: its timer at full rate, its validity shown.
fn resumed(resumed: Option<Resumed>) {
    if let Some(r) = resumed {
        set_tick(TICK_MS);
        config_valid(&Stats, &r.name, r.valid);
    }
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

#[no_mangle]
pub extern "C" fn proxy_abi_version_0_2_1() {}

/// The host allocates in the VM through this to hand over data (header maps, bodies, ...).
/// Without the memory, null: the host call fails with a status (the request passes uncounted,
/// logged by its caller) rather than the VM aborting (`crate::memory`).
#[no_mangle]
pub extern "C" fn proxy_on_memory_allocate(size: usize) -> *mut u8 {
    crate::memory::allocate(size)
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
        // `Some` only for a superseded root that serves again (rare).
        resumed(with_vm(|vm| vm.request_started(context_id, parent)).flatten());
    }
}

/// The request has ended (Envoy's access-log phase): both header maps are readable.
#[no_mangle]
pub extern "C" fn proxy_on_log(context_id: u32) {
    #[cfg(feature = "bodies")]
    let (bodies, stream) = (
        super::body::finish(context_id),
        super::body::finish_rpc(context_id),
    );
    #[cfg(not(feature = "bodies"))]
    let (bodies, stream) = (None, None);
    with_vm(|vm| {
        let live = vm.root_of_request(context_id, host::plugin_name, revived);
        if let Some(state) = live.and_then(|l| l.root.state()) {
            http::on_log(state, bodies.as_ref(), stream.as_ref());
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
        // Dropped as ended, yet it ticks (a stall longer than the silence limit): it is back.
        if vm.is_dormant(root_id) && vm.revive(root_id, revived).is_some() {
            set_tick(TICK_MS);
        }
        let ticked = vm.ticked(root_id);
        if let Some(live) = vm.root(root_id) {
            live.root.tick();
        }
        let changed = ticked.resumed.as_ref().map(|r| r.name.clone());
        resumed(ticked.resumed);
        let asked = vm.to_ask(root_id);
        let deleted = forget_deleted(vm, asked, root_id);
        // A plugin whose newest root ended is served by its previous one again; one with no
        // root left has nothing refused in force.
        for name in ticked.ended.into_iter().chain(changed).chain(deleted) {
            let valid = vm.in_force_valid(&name).unwrap_or(true);
            config_valid(&Stats, &name, valid);
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
