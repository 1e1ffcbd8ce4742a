//! The proxy-wasm host calls we use, declared raw so no host status can panic the VM.
//!
//! The SDK's wrappers `panic!` on any status they do not expect (and `get_map_value` unwraps
//! UTF-8), and a panic kills the VM for every request on the worker. Here every status is a value.

use crate::metrics::{Kind, MetricHost};
use std::ptr::{null, null_mut};

const OK: u32 = 0;
pub const NOT_FOUND: u32 = 1;
/// `proxy_set_effective_context` with a context that no longer exists (among others).
pub const BAD_ARGUMENT: u32 = 2;
pub const CAS_MISMATCH: u32 = 8;
/// `proxy_http_call` to a cluster without a healthy host (Envoy: no connection pool).
pub const INTERNAL_FAILURE: u32 = 10;

#[derive(Clone, Copy)]
#[repr(u32)]
pub enum Map {
    Request = 0,
    Response = 2,
    /// gRPC's status arrives here, unless the answer was trailers-only.
    ResponseTrailers = 3,
    CallResponse = 6,
}

#[derive(Clone, Copy)]
#[repr(u32)]
pub enum Buffer {
    #[cfg(feature = "bodies")]
    RequestBody = 0,
    #[cfg(feature = "bodies")]
    ResponseBody = 1,
    CallResponseBody = 4,
    PluginConfiguration = 7,
}

#[derive(Clone, Copy)]
#[repr(u32)]
pub enum Level {
    Debug = 1,
    Info = 2,
    Warn = 3,
    Error = 4,
    Critical = 5,
}

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_log(level: u32, message_data: *const u8, message_size: usize) -> u32;
    fn proxy_get_current_time_nanoseconds(return_time: *mut u64) -> u32;
    fn proxy_set_tick_period_milliseconds(period: u32) -> u32;
    fn proxy_get_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> u32;
    fn proxy_get_property(
        path_data: *const u8,
        path_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> u32;
    fn proxy_get_header_map_pairs(
        map_type: u32,
        return_map_data: *mut *mut u8,
        return_map_size: *mut usize,
    ) -> u32;
    fn proxy_http_call(
        upstream_data: *const u8,
        upstream_size: usize,
        headers_data: *const u8,
        headers_size: usize,
        body_data: *const u8,
        body_size: usize,
        trailers_data: *const u8,
        trailers_size: usize,
        timeout_ms: u32,
        return_token: *mut u32,
    ) -> u32;
    fn proxy_get_buffer_bytes(
        buffer_type: u32,
        start: usize,
        max_size: usize,
        return_buffer_data: *mut *mut u8,
        return_buffer_size: *mut usize,
    ) -> u32;
    fn proxy_get_shared_data(
        key_data: *const u8,
        key_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
        return_cas: *mut u32,
    ) -> u32;
    fn proxy_set_shared_data(
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
        cas: u32,
    ) -> u32;
    fn proxy_define_metric(
        metric_type: u32,
        name_data: *const u8,
        name_size: usize,
        return_id: *mut u32,
    ) -> u32;
    fn proxy_increment_metric(metric_id: u32, offset: i64) -> u32;
    fn proxy_record_metric(metric_id: u32, value: u64) -> u32;
    fn proxy_set_effective_context(context_id: u32) -> u32;
}

#[link(wasm_import_module = "wasi_snapshot_preview1")]
extern "C" {
    /// WASI's clock; proxy-wasm-cpp-host serves the monotonic one (id 1) from Envoy's.
    fn clock_time_get(clock_id: u32, precision: u64, time: *mut u64) -> u16;
}

/// Takes ownership of memory the host allocated through the SDK's `proxy_on_memory_allocate`
/// (a `Vec<u8>` with capacity == size).
unsafe fn owned(data: *mut u8, size: usize) -> Option<Vec<u8>> {
    if data.is_null() {
        None
    } else {
        Some(Vec::from_raw_parts(data, size, size))
    }
}

pub fn log(level: Level, message: &str) {
    // Nothing sensible to do if logging itself fails.
    unsafe {
        proxy_log(level as u32, message.as_ptr(), message.len());
    }
}

pub fn now_ns() -> Option<u64> {
    let mut t = 0u64;
    (unsafe { proxy_get_current_time_nanoseconds(&mut t) } == OK).then_some(t)
}

/// Envoy's monotonic clock: unmoved by clock steps.
pub fn monotonic_ns() -> Option<u64> {
    let mut t = 0u64;
    (unsafe { clock_time_get(1, 1, &mut t) } == 0).then_some(t)
}

/// Host calls that act on a context (the tick period) act on `context` from now until the VM
/// call returns, or until this is called again.
pub fn set_effective_context(context: u32) -> Result<(), u32> {
    match unsafe { proxy_set_effective_context(context) } {
        OK => Ok(()),
        status => Err(status),
    }
}

pub fn set_tick_period_ms(ms: u32) -> Result<(), u32> {
    match unsafe { proxy_set_tick_period_milliseconds(ms) } {
        OK => Ok(()),
        status => Err(status),
    }
}

/// A header's raw bytes; `Ok(None)` when absent.
pub fn header(map: Map, name: &str) -> Result<Option<Vec<u8>>, u32> {
    let mut data = null_mut();
    let mut size = 0usize;
    match unsafe {
        proxy_get_header_map_value(map as u32, name.as_ptr(), name.len(), &mut data, &mut size)
    } {
        OK => Ok(Some(unsafe { owned(data, size) }.unwrap_or_default())),
        NOT_FOUND => Ok(None),
        status => Err(status),
    }
}

/// A whole header map, serialized (see `crate::pairs`); `Ok(None)` when the host has none.
pub fn header_pairs(map: Map) -> Result<Option<Vec<u8>>, u32> {
    let mut data = null_mut();
    let mut size = 0usize;
    match unsafe { proxy_get_header_map_pairs(map as u32, &mut data, &mut size) } {
        OK => Ok(unsafe { owned(data, size) }),
        NOT_FOUND => Ok(None),
        status => Err(status),
    }
}

/// An Envoy attribute such as `request.duration`, serialized as Envoy does (see callers);
/// `Ok(None)` when absent. `path` is as the host takes it, each segment followed by a NUL
/// (`b"request\0duration\0"`): a constant, not built per request (the probe counted ~1,000
/// instructions for building one).
pub fn property(path: &[u8]) -> Result<Option<Vec<u8>>, u32> {
    let mut data = null_mut();
    let mut size = 0usize;
    match unsafe { proxy_get_property(path.as_ptr(), path.len(), &mut data, &mut size) } {
        OK => Ok(unsafe { owned(data, size) }),
        NOT_FOUND => Ok(None),
        status => Err(status),
    }
}

/// How long Envoy has had the request (`request.duration`, nanoseconds as 8 bytes LE).
pub fn request_duration_ns() -> Option<u64> {
    let bytes = property(b"request\0duration\0").ok()??;
    let bytes: [u8; 8] = bytes.as_slice().try_into().ok()?;
    u64::try_from(i64::from_le_bytes(bytes)).ok()
}

/// What Envoy recorded about how the response came about (`response.code_details`, a string
/// such as `via_upstream` or `no_healthy_upstream`, see `crate::proxy`).
pub fn response_code_details() -> Option<Vec<u8>> {
    property(b"response\0code_details\0").ok().flatten()
}

/// The downstream connection's id (`connection.id`, 8 bytes LE): one client.
#[cfg(feature = "bodies")]
pub fn connection_id() -> Option<u64> {
    let bytes = property(b"connection\0id\0").ok()??;
    let bytes: [u8; 8] = bytes.as_slice().try_into().ok()?;
    Some(u64::from_le_bytes(bytes))
}

/// This plugin's name (`plugin_name`), in the root context or a request's.
pub fn plugin_name() -> Option<Vec<u8>> {
    property(b"plugin_name\0").ok().flatten()
}

/// Sends a request to `cluster`; the answer comes to the root context's
/// `proxy_on_http_call_response` with the returned token.
pub fn http_call(cluster: &str, headers: &[(&str, &str)], timeout_ms: u32) -> Result<u32, u32> {
    let headers = crate::pairs::serialize(headers);
    let mut token = 0u32;
    match unsafe {
        proxy_http_call(
            cluster.as_ptr(),
            cluster.len(),
            headers.as_ptr(),
            headers.len(),
            null(),
            0,
            null(),
            0,
            timeout_ms,
            &mut token,
        )
    } {
        OK => Ok(token),
        status => Err(status),
    }
}

pub fn buffer(buffer: Buffer, start: usize, max_size: usize) -> Result<Option<Vec<u8>>, u32> {
    let mut data = null_mut();
    let mut size = 0usize;
    match unsafe { proxy_get_buffer_bytes(buffer as u32, start, max_size, &mut data, &mut size) } {
        OK => Ok(unsafe { owned(data, size) }),
        NOT_FOUND => Ok(None),
        status => Err(status),
    }
}

/// The value and its CAS token; `Ok((None, 0))` when the key does not exist.
pub fn get_shared(key: &str) -> Result<(Option<Vec<u8>>, u32), u32> {
    let mut data = null_mut();
    let mut size = 0usize;
    let mut cas = 0u32;
    match unsafe { proxy_get_shared_data(key.as_ptr(), key.len(), &mut data, &mut size, &mut cas) }
    {
        OK => Ok((unsafe { owned(data, size) }, cas)),
        NOT_FOUND => Ok((None, 0)),
        status => Err(status),
    }
}

/// `cas == 0` sets unconditionally; otherwise fails with [`CAS_MISMATCH`] if another VM wrote first.
pub fn set_shared(key: &str, value: &[u8], cas: u32) -> Result<(), u32> {
    let value_ptr = if value.is_empty() {
        null()
    } else {
        value.as_ptr()
    };
    match unsafe { proxy_set_shared_data(key.as_ptr(), key.len(), value_ptr, value.len(), cas) } {
        OK => Ok(()),
        status => Err(status),
    }
}

/// Envoy's stats through the raw calls.
pub struct Stats;

thread_local! {
    /// Every stat id this VM was given, by kind and name: Envoy allocates a new id (and map
    /// entry) each time a name is defined again, as every new configuration would.
    static DEFINED: std::cell::RefCell<std::collections::BTreeMap<(u32, String), u32>> =
        const { std::cell::RefCell::new(std::collections::BTreeMap::new()) };
}

impl MetricHost for Stats {
    fn define(&self, kind: Kind, name: &str) -> Option<u32> {
        let kind = match kind {
            Kind::Counter => 0,
            Kind::Gauge => 1,
            Kind::Histogram => 2,
        };
        let key = (kind, name.to_string());
        let known = DEFINED.with(|d| d.try_borrow().ok().and_then(|d| d.get(&key).copied()));
        if known.is_some() {
            return known;
        }
        let mut id = 0u32;
        let defined = (unsafe { proxy_define_metric(kind, name.as_ptr(), name.len(), &mut id) }
            == OK)
            .then_some(id)?;
        DEFINED.with(|d| {
            if let Ok(mut d) = d.try_borrow_mut() {
                d.insert(key, defined);
            }
        });
        Some(defined)
    }

    fn increment(&self, id: u32, by: u64) -> bool {
        let by = i64::try_from(by).unwrap_or(i64::MAX);
        unsafe { proxy_increment_metric(id, by) == OK }
    }

    fn record(&self, id: u32, value: u64) -> bool {
        unsafe { proxy_record_metric(id, value) == OK }
    }
}

/// Milliseconds on the monotonic clock: what timeouts and schedules are measured by. Envoy's
/// `proxy_get_current_time_nanoseconds` is its wall clock, which a clock step moves.
pub fn now_ms() -> u64 {
    monotonic_ns().unwrap_or(0) / 1_000_000
}
