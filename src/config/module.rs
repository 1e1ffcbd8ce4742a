//! Which module a configuration needs: the lean `app_metrics.wasm` refuses counters that read
//! bodies, which only the body-reading build (cargo feature `bodies`) serves.

use super::types::Config;
use crate::json::ConfigError;

/// The field of the first counter in `config` that reads a body, if any: the lean module
/// (built without the `bodies` feature) refuses those (`check_build`).
pub fn first_body_read(config: &Config) -> Option<String> {
    let counter = config.counters.iter().enumerate().find_map(|(i, c)| {
        let (_, field) = c.body_reads().next()?;
        Some(format!("counters[{i}].{field}"))
    });
    // Messages are counted from the streams' frames as they pass.
    let messages = config.grpc.as_ref().filter(|g| g.messages);
    counter.or_else(|| messages.map(|_| "grpc.messages".to_string()))
}

/// The module each build makes, and the one that reads bodies.
pub const LEAN_MODULE: &str = "app_metrics.wasm";
pub const BODIES_MODULE: &str = "app_metrics_bodies.wasm";

/// Refuses body rules in a module built without body reading (`bodies`: whether this one has it).
pub fn check_build(config: &Config, bodies: bool) -> Result<(), ConfigError> {
    match first_body_read(config) {
        Some(at) if !bodies => Err(ConfigError::new(
            at,
            format!("reads a body, which {LEAN_MODULE} does not (expected the body-reading build, {BODIES_MODULE}, image tag suffix -bodies: README, \"Counters on JSON bodies\")"),
        )),
        _ => Ok(()),
    }
}
