//! Values at RFC 6901 pointers, read off a document in one pass without building it.

use super::Number;
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use std::fmt;

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
