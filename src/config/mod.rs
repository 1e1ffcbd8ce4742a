//! The plugin's JSON configuration: the public contract.
//!
//! [`parse`] is the one way in: serde_json reads the document, `read` takes the typed fields out
//! of it (the types hold only what the contract allows: one header per label, one source per
//! sampler), then `validate` checks what types cannot. Any error rejects the whole
//! configuration: the glue logs it and keeps the plugin's last good one (`lifecycle.rs`).
//! `filter::Filter::new` compiles what `parse` returned, with the same constructors `validate`
//! used to check it (`routes::Routes`), so nothing accepted here can fail there.
//!
//! | file | concern |
//! |---|---|
//! | `types.rs` | what a configuration says |
//! | `limits.rs` | defaults and bounds |
//! | `read.rs` | JSON → types, strict, with field paths |
//! | `validate.rs` | names, paths, ranges, uniqueness, what each part reads |
//! | `labels.rs` | label names and values, header names read |
//! | `syntax.rs` | the strings' syntax (names, paths, pointers, authorities) |
//! | `bound.rs` | the series bound |
//! | `module.rs` | which module (lean or body-reading) a configuration needs |

mod bound;
mod labels;
mod limits;
mod module;
mod read;
mod syntax;
mod types;
mod validate;

pub use crate::json::ConfigError;
pub use bound::{series_bound, SeriesBound};
pub use limits::*;
pub use module::{check_build, first_body_read, BODIES_MODULE, LEAN_MODULE};
pub use types::*;
pub use validate::validate;

use crate::json::{Json, Node};

/// Parses and validates. Empty or whitespace-only input means the defaults.
pub fn parse(input: &[u8]) -> Result<Config, ConfigError> {
    if input.iter().all(u8::is_ascii_whitespace) {
        return Ok(Config::default());
    }
    // Said up front: the contract is an object, and this error shows its shape.
    if input.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ConfigError::new(
            ".",
            "is not a JSON object (expected {\"counters\": …, \"http_metrics\": …, \"samplers\": …})",
        ));
    }
    // serde_json's syntax errors say where (line, column): there is no field path yet.
    let doc = Json::parse(input).map_err(|e| ConfigError::new(".", e.to_string()))?;
    let config = read::read_config(Node::root(&doc))?;
    validate(&config)?;
    Ok(config)
}

#[cfg(test)]
#[path = "../../tests/unit/config.rs"]
mod tests;
