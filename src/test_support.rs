//! Test helpers shared by the unit tests.

/// A logic test that runs on the host (`cargo test`) and, compiled for wasm32-unknown-unknown,
/// under wasm-bindgen-test in Node: the same assertions where the code really runs.
macro_rules! logic_test {
    (fn $name:ident() $body:block) => {
        #[cfg_attr(not(target_arch = "wasm32"), test)]
        #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
        fn $name() $body
    };
}
pub(crate) use logic_test;
