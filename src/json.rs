//! A JSON document as serde_json reads it, and a typed reader over it that knows where each value
//! sits (`counters[1].match.status[0]`), for the configuration and the samplers' answers.
//!
//! Why not `#[derive(Deserialize)]` on the configuration types: every derived type, wrapped for
//! field paths, put its own copy of serde's machinery into the .wasm: half of the module's code,
//! compiled by V8 at load in every Envoy, ~6 MB of RSS (BENCHMARKS.md). Here serde_json parses
//! into one small tree type (objects keep their order and duplicate keys, so duplicates can be
//! refused) and [`Node`] reads typed fields out of it with serde's wording for its errors.

use serde::de::{Deserialize, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use std::fmt;

/// A configuration error: the field path (`counters[1].match.status[0]`) and what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub path: String,
    pub message: String,
}

impl ConfigError {
    pub(crate) fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

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

/// An array index token: digits, no leading zero.
fn array_index(token: &str) -> Option<usize> {
    let digits = token.bytes().all(|b| b.is_ascii_digit());
    if !digits || token.is_empty() || (token.len() > 1 && token.starts_with('0')) {
        return None;
    }
    token.parse().ok()
}

/// What [`select`] found at a pointer: only what a sampler can use of it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Selected {
    Number(Number),
    /// An array, by its length.
    Array(u64),
    /// A string, boolean, null or object.
    Other,
}

/// The value at RFC 6901 `pointer` (`""` is the whole document, `/a/0/b~1c` goes through keys
/// and array indices) in the document `input` (`None` when absent): [`lookup`] of one pointer,
/// as a sampler uses it.
pub fn select(input: &[u8], pointer: &str) -> Result<Option<Selected>, serde_json::Error> {
    let found = lookup(input, &[pointer])?;
    Ok(found.into_iter().next().flatten().map(|f| match f {
        Found::Number(n) => Selected::Number(n),
        Found::Array(length) => Selected::Array(length),
        _ => Selected::Other,
    }))
}

/// What [`lookup`] found at a pointer: scalars whole, arrays by their length.
#[derive(Debug, Clone, PartialEq)]
pub enum Found {
    Null,
    Bool(bool),
    Number(Number),
    String(String),
    Array(u64),
    Object,
}

/// The tokens of an RFC 6901 pointer (`""` has none), or `None` when it is not one.
pub fn pointer_tokens(pointer: &str) -> Option<Vec<String>> {
    if pointer.is_empty() {
        return Some(Vec::new());
    }
    let rest = pointer.strip_prefix('/')?;
    Some(
        rest.split('/')
            .map(|t| t.replace("~1", "/").replace("~0", "~"))
            .collect(),
    )
}

/// The values at several RFC 6901 pointers in the document `input` (`None` where absent or the
/// pointer is not one), in one pass without building the document: a sampler's answer or a
/// body may be megabytes, and a tree of it would take about fifteen times that in the VM's
/// memory, which never shrinks. The whole document is read as serde_json reads it (values off
/// the paths are decoded and dropped: an invalid escape or UTF-8, an out-of-range number
/// anywhere is an error), so it accepts exactly what serde_json accepts, and a rule's verdict
/// never depends on another rule's pointers. With duplicate keys the last one counts, as in
/// serde_json's `Value`.
pub fn lookup(input: &[u8], pointers: &[&str]) -> Result<Vec<Option<Found>>, serde_json::Error> {
    let tokens: Vec<Option<Vec<String>>> = pointers.iter().map(|p| pointer_tokens(p)).collect();
    let active = tokens
        .iter()
        .enumerate()
        .filter_map(|(i, t)| t.as_ref().map(|_| i))
        .collect();
    let mut found = vec![None; pointers.len()];
    let mut deserializer = serde_json::Deserializer::from_slice(input);
    Walk {
        tokens: &tokens,
        active,
        depth: 0,
        found: &mut found,
    }
    .deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(found)
}

/// Walks one value at `depth` for the pointers still on its path (`active`), skipping
/// everything off them, and stores what the pointers ending here find.
struct Walk<'a> {
    tokens: &'a [Option<Vec<String>>],
    active: Vec<usize>,
    depth: usize,
    found: &'a mut [Option<Found>],
}

impl Walk<'_> {
    fn token(&self, pointer: usize) -> Option<&str> {
        let tokens = self.tokens.get(pointer)?.as_ref()?;
        tokens.get(self.depth).map(String::as_str)
    }

    /// Stores `value` (made only if some pointer ends here) for the pointers that end here.
    fn leaf<E>(self, value: impl FnOnce() -> Found) -> Result<(), E> {
        let mut value = Some(value);
        let mut made = None;
        for &i in &self.active {
            if self.tokens.get(i).and_then(Option::as_ref).map(Vec::len) == Some(self.depth) {
                if let Some(make) = value.take() {
                    made = Some(make());
                }
                if let Some(slot) = self.found.get_mut(i) {
                    slot.clone_from(&made);
                }
            }
        }
        Ok(())
    }

    /// The pointers going deeper, and the value for those that end here.
    fn split(&self) -> (Vec<usize>, bool) {
        let deeper: Vec<usize> = self
            .active
            .iter()
            .copied()
            .filter(|&i| self.token(i).is_some())
            .collect();
        let ends = deeper.len() < self.active.len();
        (deeper, ends)
    }

    fn child(&mut self, active: Vec<usize>) -> Walk<'_> {
        Walk {
            tokens: self.tokens,
            active,
            depth: self.depth + 1,
            found: &mut *self.found,
        }
    }
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        // A repeated key's later value replaces what an earlier one found.
        for &i in &self.active {
            if let Some(slot) = self.found.get_mut(i) {
                *slot = None;
            }
        }
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        self.leaf(|| Found::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<(), E> {
        self.leaf(|| Found::Bool(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        self.leaf(|| Found::Number(Number::Unsigned(v)))
    }
    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        self.leaf(|| Found::Number(Number::from_i64(v)))
    }
    fn visit_f64<E>(self, v: f64) -> Result<(), E> {
        self.leaf(|| Found::Number(Number::Float(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        self.leaf(|| Found::String(v.to_string()))
    }
    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        let (deeper, ends) = self.split();
        let wanted: Vec<(usize, Option<usize>)> = deeper
            .iter()
            .map(|&i| (i, self.token(i).and_then(array_index)))
            .collect();
        let mut length = 0u64;
        for index in 0usize.. {
            let here: Vec<usize> = wanted
                .iter()
                .filter(|(_, w)| *w == Some(index))
                .map(|(i, _)| *i)
                .collect();
            let more = if here.is_empty() {
                seq.next_element_seed(Skip)?.is_some()
            } else {
                seq.next_element_seed(self.child(here))?.is_some()
            };
            if !more {
                break;
            }
            length += 1;
        }
        if ends {
            return self.leaf(|| Found::Array(length));
        }
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        let (deeper, ends) = self.split();
        while let Some(here) = map.next_key_seed(KeyIs {
            walk: &self,
            candidates: &deeper,
        })? {
            if here.is_empty() {
                map.next_value_seed(Skip)?;
            } else {
                map.next_value_seed(self.child(here))?;
            }
        }
        if ends {
            return self.leaf(|| Found::Object);
        }
        Ok(())
    }
}

/// A value off every pointer's path, read as serde_json reads it and dropped: strings decoded
/// (UTF-8, escapes) into serde_json's scratch buffer, numbers in range, nothing kept.
struct Skip;

impl<'de> DeserializeSeed<'de> for Skip {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(Skip)
    }
}

impl<'de> Visitor<'de> for Skip {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Skip)?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_key_seed(Skip)?.is_some() {
            map.next_value_seed(Skip)?;
        }
        Ok(())
    }
}

/// Which of the `candidates` pointers take an object key as their next token, compared where
/// serde_json has the key (no copy of it).
struct KeyIs<'a, 'b> {
    walk: &'a Walk<'b>,
    candidates: &'a [usize],
}

impl<'de> DeserializeSeed<'de> for KeyIs<'_, '_> {
    type Value = Vec<usize>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Vec<usize>, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeyIs<'_, '_> {
    type Value = Vec<usize>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }
    fn visit_str<E>(self, v: &str) -> Result<Vec<usize>, E> {
        Ok(self
            .candidates
            .iter()
            .copied()
            .filter(|&i| self.walk.token(i) == Some(v))
            .collect())
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

/// A value of the document and its field path, for errors that say where.
#[derive(Clone, Copy)]
pub struct Node<'a> {
    pub value: &'a Json,
    path: &'a Path<'a>,
}

/// A field path as a chain of steps up to the root; turned into text only for an error.
pub enum Path<'a> {
    Root,
    Field(&'a Path<'a>, &'a str),
    Index(&'a Path<'a>, usize),
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Path::Root => Ok(()),
            Path::Field(Path::Root, name) => f.write_str(name),
            Path::Field(parent, name) => write!(f, "{parent}.{name}"),
            Path::Index(parent, i) => write!(f, "{parent}[{i}]"),
        }
    }
}

impl<'a> Node<'a> {
    pub fn root(value: &'a Json) -> Self {
        Node {
            value,
            path: &Path::Root,
        }
    }

    /// An error at this node: "counters[0].name: <message>" ("." for the root).
    pub fn error(&self, message: impl Into<String>) -> ConfigError {
        ConfigError::new(self.path_string(), message)
    }

    /// This node's field path ("." for the root).
    pub fn path_string(&self) -> String {
        match self.path.to_string() {
            p if p.is_empty() => ".".to_string(),
            p => p,
        }
    }

    pub fn invalid_type(&self, expected: &str) -> ConfigError {
        self.error(format!(
            "invalid type: {}, expected {expected}",
            self.value.unexpected()
        ))
    }

    pub fn string(&self) -> Result<String, ConfigError> {
        match self.value {
            Json::String(s) => Ok(s.clone()),
            _ => Err(self.invalid_type("a string")),
        }
    }

    pub fn bool(&self) -> Result<bool, ConfigError> {
        match self.value {
            Json::Bool(b) => Ok(*b),
            _ => Err(self.invalid_type("a boolean")),
        }
    }

    pub fn u64(&self) -> Result<u64, ConfigError> {
        match self.value {
            Json::Number(Number::Unsigned(n)) => Ok(*n),
            Json::Number(n @ Number::Signed(_)) => {
                Err(self.error(format!("invalid value: integer `{n}`, expected u64")))
            }
            _ => Err(self.invalid_type("u64")),
        }
    }

    /// The elements of an array, each with its index in the path, handed to `read`.
    pub fn array<T>(
        &self,
        mut read: impl FnMut(Node<'_>) -> Result<T, ConfigError>,
    ) -> Result<Vec<T>, ConfigError> {
        let Json::Array(items) = self.value else {
            return Err(self.invalid_type("an array"));
        };
        items
            .iter()
            .enumerate()
            .map(|(i, value)| {
                read(Node {
                    value,
                    path: &Path::Index(self.path, i),
                })
            })
            .collect()
    }

    /// The entries of an object (at most `max`), each with its key in the path, handed to
    /// `read`; a repeated key is an error.
    pub fn entries<T>(
        &self,
        max: usize,
        mut read: impl FnMut(&'a str, Node<'_>) -> Result<T, ConfigError>,
    ) -> Result<Vec<T>, ConfigError> {
        let Json::Object(entries) = self.value else {
            return Err(self.invalid_type("an object"));
        };
        if entries.len() > max {
            return Err(self.error(format!(
                "has {} entries (expected at most {max})",
                entries.len()
            )));
        }
        let mut out = Vec::with_capacity(entries.len());
        for (i, (key, value)) in entries.iter().enumerate() {
            let node = Node {
                value,
                path: &Path::Field(self.path, key),
            };
            // Quadratic, but short: `max` bounds maps, and in an object every key must be one
            // of its few fields (`object` refuses the first that is not).
            if entries.iter().take(i).any(|(k, _)| k == key) {
                return Err(node.error(format!("duplicate field `{key}`")));
            }
            out.push(read(key, node)?);
        }
        Ok(out)
    }

    /// An object with exactly these fields allowed, read by `read` through [`Fields`].
    pub fn object<T>(
        &self,
        fields: &[&str],
        read: impl FnOnce(&Fields<'_>) -> Result<T, ConfigError>,
    ) -> Result<T, ConfigError> {
        self.entries(usize::MAX, |key, node| {
            if fields.contains(&key) {
                Ok(())
            } else {
                let list: Vec<String> = fields.iter().map(|f| format!("`{f}`")).collect();
                Err(node.error(format!(
                    "unknown field `{key}`, expected one of {}",
                    list.join(", ")
                )))
            }
        })?;
        read(&Fields { node: *self })
    }
}

/// The fields of an object checked by [`Node::object`].
pub struct Fields<'a> {
    node: Node<'a>,
}

impl Fields<'_> {
    /// Reads field `name` with `read` when present (`null` included: `read` decides).
    pub fn optional<T>(
        &self,
        name: &str,
        read: impl FnOnce(Node<'_>) -> Result<T, ConfigError>,
    ) -> Result<Option<T>, ConfigError> {
        self.field(name, false, read)
    }

    /// Reads field `name` with `read` when present and not `null`, as serde reads an `Option`.
    pub fn nullable<T>(
        &self,
        name: &str,
        read: impl FnOnce(Node<'_>) -> Result<T, ConfigError>,
    ) -> Result<Option<T>, ConfigError> {
        self.field(name, true, read)
    }

    fn field<T>(
        &self,
        name: &str,
        null_is_absent: bool,
        read: impl FnOnce(Node<'_>) -> Result<T, ConfigError>,
    ) -> Result<Option<T>, ConfigError> {
        let Json::Object(entries) = self.node.value else {
            return Ok(None);
        };
        match entries.iter().find(|(key, _)| key == name) {
            None => Ok(None),
            Some((_, Json::Null)) if null_is_absent => Ok(None),
            Some((key, value)) => read(Node {
                value,
                path: &Path::Field(self.node.path, key),
            })
            .map(Some),
        }
    }

    /// Reads field `name`, which must be there.
    pub fn required<T>(
        &self,
        name: &str,
        read: impl FnOnce(Node<'_>) -> Result<T, ConfigError>,
    ) -> Result<T, ConfigError> {
        self.optional(name, read)?
            .ok_or_else(|| self.node.error(format!("missing field `{name}`")))
    }
}

#[cfg(test)]
#[path = "../tests/unit/json.rs"]
mod tests;
