//! Typed fields out of a [`Json`] tree, each error naming its field path.

use super::{Json, Number};
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
