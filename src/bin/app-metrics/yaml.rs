//! Reading serde_yaml's tree: a mapping's fields by name, a type URL's message name.

use serde_yaml::{Mapping, Value};

/// A field that is present and not null.
pub fn get<'a>(map: &'a Mapping, key: &str) -> Option<&'a Value> {
    map.get(key).filter(|v| !v.is_null())
}

pub fn get_str<'a>(map: &'a Mapping, key: &str) -> Option<&'a str> {
    map.get(key).and_then(Value::as_str)
}

pub fn get_map<'a>(map: &'a Mapping, key: &str) -> Option<&'a Mapping> {
    map.get(key).and_then(Value::as_mapping)
}

/// The message name of a type URL (`type.googleapis.com/google.protobuf.StringValue`).
pub fn type_name(url: &str) -> &str {
    url.rsplit('/').next().unwrap_or(url)
}
