#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| app_metrics_wasm_fuzz::body_reader(data));
