//! A JSON document as serde_json reads it (`Json`), a typed reader over it that knows where each
//! value sits (`reader.rs`: `counters[1].match.status[0]`, for the configuration), and pointer
//! lookups that read a document without building it (`lookup.rs`: samplers' answers, bodies).
//!
//! Why not `#[derive(Deserialize)]` on the configuration types: every derived type, wrapped for
//! field paths, put its own copy of serde's machinery into the .wasm: half of the module's code,
//! compiled by V8 at load in every Envoy, ~6 MB of RSS (BENCHMARKS.md). Here serde_json parses
//! into one small tree type (objects keep their order and duplicate keys, so duplicates can be
//! refused) and [`Node`] reads typed fields out of it with serde's wording for its errors.

mod lookup;
mod reader;

pub use lookup::{lookup, pointer_tokens, select, Found, Selected};
pub use reader::{ConfigError, Fields, Node, Path};

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Number(Number),
    String(String),
    Array(Vec<Json>),
    /// Entries in document order, duplicates kept.
    Object(Vec<(String, Json)>),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Number {
    Unsigned(u64),
    /// Only negative values: serde_json reads every non-negative integer as `Unsigned`.
    Signed(i64),
    Float(f64),
}

impl Json {
    /// Parses a whole document; the error is serde_json's, with line and column.
    pub fn parse(input: &[u8]) -> Result<Json, serde_json::Error> {
        serde_json::from_slice(input)
    }

    /// How serde words a value it did not expect: "integer `5`", "string \"yes\"".
    fn unexpected(&self) -> String {
        match self {
            Json::Null => "null".to_string(),
            Json::Bool(b) => format!("boolean `{b}`"),
            // The path says where the fraction is; formatting floats would cost the module a
            // float printer.
            Json::Number(Number::Float(_)) => "floating point number".to_string(),
            Json::Number(n) => format!("integer `{n}`"),
            Json::String(s) => format!("string {s:?}"),
            Json::Array(_) => "array".to_string(),
            Json::Object(_) => "object".to_string(),
        }
    }
}

impl Number {
    /// Non-negative integers are `Unsigned` however serde_json hands them over.
    fn from_i64(v: i64) -> Number {
        match u64::try_from(v) {
            Ok(u) => Number::Unsigned(u),
            Err(_) => Number::Signed(v),
        }
    }

    /// Equal as numbers: `1`, `1.0` and `1e0` are the same value (serde_json's `Value` would
    /// tell the integer from the float; a body condition asks about the amount).
    pub fn same(self, other: Number) -> bool {
        match (self, other) {
            (Number::Unsigned(a), Number::Unsigned(b)) => a == b,
            (Number::Signed(a), Number::Signed(b)) => a == b,
            (Number::Float(a), b) | (b, Number::Float(a)) => a == b.as_f64(),
            _ => false,
        }
    }

    #[allow(clippy::cast_precision_loss)] // compared with a float, which has that precision
    fn as_f64(self) -> f64 {
        match self {
            Number::Unsigned(n) => n as f64,
            Number::Signed(n) => n as f64,
            Number::Float(f) => f,
        }
    }
}

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Number::Unsigned(n) => write!(f, "{n}"),
            Number::Signed(n) => write!(f, "{n}"),
            Number::Float(_) => f.write_str("floating point number"),
        }
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Json, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }
    fn visit_none<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Json, E> {
        Ok(Json::Bool(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Json, E> {
        Ok(Json::Number(Number::Unsigned(v)))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Json, E> {
        Ok(Json::Number(Number::from_i64(v)))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Json, E> {
        Ok(Json::Number(Number::Float(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Json, E> {
        Ok(Json::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Json, E> {
        Ok(Json::String(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = map.next_entry()? {
            entries.push(entry);
        }
        Ok(Json::Object(entries))
    }
}

#[cfg(test)]
#[path = "../../tests/unit/json.rs"]
mod tests;
