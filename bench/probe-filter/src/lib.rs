//! Host-call probe for `bench/run.py --diagnose`. The plugin configuration is a list of
//! whitespace-separated steps, each done once per request when it has ended (`proxy_on_log`):
//!
//! - `req:<name>` / `resp:<name>`  read one request / response header
//! - `req-map` / `resp-map`        read the whole request / response header map (one call)
//! - `counter`                     increment a counter (each one its own)
//! - `histogram`                   record a value in a histogram (each one its own)
//! - `prop:<a.b>`                  read a property (`prop:request.duration`)
//!
//! - `time`                        read the clock
//!
//! Like app-metrics-wasm it exports no `proxy_on_context_create`: Envoy enters it once per
//! request. No configuration: no host call at all.

use std::cell::RefCell;
use std::ptr::null_mut;

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_get_header_map_value(map: u32, key: *const u8, key_len: usize, data: *mut *mut u8, len: *mut usize) -> u32;
    fn proxy_get_header_map_pairs(map: u32, data: *mut *mut u8, len: *mut usize) -> u32;
    fn proxy_get_buffer_bytes(buffer: u32, start: usize, max: usize, data: *mut *mut u8, len: *mut usize) -> u32;
    fn proxy_get_property(path: *const u8, path_len: usize, data: *mut *mut u8, len: *mut usize) -> u32;
    fn proxy_get_current_time_nanoseconds(time: *mut u64) -> u32;
    fn proxy_define_metric(kind: u32, name: *const u8, name_len: usize, id: *mut u32) -> u32;
    fn proxy_increment_metric(id: u32, by: i64) -> u32;
    fn proxy_record_metric(id: u32, value: u64) -> u32;
}

enum Step {
    Header(u32, String),
    Map(u32),
    Property(Vec<u8>),
    Counter(u32),
    Histogram(u32),
    Time,
}

#[derive(Default)]
struct Plan {
    steps: Vec<Step>,
}

thread_local! {
    static PLAN: RefCell<Plan> = RefCell::new(Plan::default());
}

/// Takes (and frees) what the host allocated through `proxy_on_memory_allocate`.
unsafe fn take(data: *mut u8, len: usize) -> usize {
    if !data.is_null() {
        drop(Vec::from_raw_parts(data, len, len));
    }
    len
}

fn now() -> u64 {
    let mut t = 0;
    unsafe { proxy_get_current_time_nanoseconds(&mut t) };
    t
}

fn define(kind: u32, name: &str) -> u32 {
    let mut id = 0;
    unsafe { proxy_define_metric(kind, name.as_ptr(), name.len(), &mut id) };
    id
}

#[no_mangle]
pub extern "C" fn proxy_abi_version_0_2_1() {}

#[no_mangle]
pub extern "C" fn proxy_on_memory_allocate(size: usize) -> *mut u8 {
    let mut buffer: Vec<u8> = Vec::with_capacity(size);
    let pointer = buffer.as_mut_ptr();
    std::mem::forget(buffer);
    pointer
}

#[no_mangle]
pub extern "C" fn proxy_on_vm_start(_: u32, _: usize) -> u32 {
    1
}

#[no_mangle]
pub extern "C" fn proxy_on_configure(_: u32, size: usize) -> u32 {
    let (mut data, mut len) = (null_mut(), 0);
    let config = unsafe {
        if proxy_get_buffer_bytes(7, 0, size, &mut data, &mut len) == 0 && !data.is_null() {
            Vec::from_raw_parts(data, len, len)
        } else {
            Vec::new()
        }
    };
    let config = String::from_utf8(config).unwrap_or_default();
    let mut plan = Plan::default();
    for step in config.split_whitespace() {
        let n = plan.steps.len();
        plan.steps.push(match step {
            "req-map" => Step::Map(0),
            "resp-map" => Step::Map(2),
            "counter" => Step::Counter(define(0, &format!("probe_{n}_total"))),
            "histogram" => Step::Histogram(define(2, &format!("probe_{n}"))),
            "time" => Step::Time,
            _ => match step.split_once(':') {
                Some(("req", name)) => Step::Header(0, name.to_string()),
                Some(("resp", name)) => Step::Header(2, name.to_string()),
                // The host takes a property path as its segments, each followed by a NUL.
                Some(("prop", path)) => Step::Property(path.split('.').flat_map(|s| s.bytes().chain([0])).collect()),
                _ => return 0,
            },
        });
    }
    PLAN.with(|p| *p.borrow_mut() = plan);
    1
}

#[no_mangle]
pub extern "C" fn proxy_on_log(_: u32) {
    PLAN.with(|p| {
        let plan = p.borrow();
        let mut seen = 0usize;
        for step in &plan.steps {
            let (mut data, mut len) = (null_mut(), 0);
            seen += match step {
                Step::Header(map, name) => unsafe {
                    proxy_get_header_map_value(*map, name.as_ptr(), name.len(), &mut data, &mut len);
                    take(data, len)
                },
                Step::Map(map) => unsafe {
                    proxy_get_header_map_pairs(*map, &mut data, &mut len);
                    take(data, len)
                },
                Step::Property(path) => unsafe {
                    proxy_get_property(path.as_ptr(), path.len(), &mut data, &mut len);
                    take(data, len)
                },
                Step::Counter(id) => unsafe { proxy_increment_metric(*id, 1) as usize },
                Step::Histogram(id) => unsafe { proxy_record_metric(*id, seen as u64 & 7) as usize },
                Step::Time => now() as usize & 1,
            };
        }
    });
}
