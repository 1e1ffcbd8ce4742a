//! Reading the JSON document into the types: strict, every error naming its field path
//! (unknown or repeated fields refused; `json.rs` says why not serde's derive).

use super::limits::*;
use super::syntax::check_pointer;
use super::types::*;
use crate::grpc::RpcType;
use crate::json::{ConfigError, Fields, Json, Node, Number};
use crate::labels::Side;
use std::fmt;

const STATUS_EXPECTED: &str = "(expected 100-599 or 1xx-5xx)";

pub(super) fn read_config(node: Node<'_>) -> Result<Config, ConfigError> {
    let fields = [
        "counters",
        "http_metrics",
        "samplers",
        "labels",
        "grpc",
        "prefix",
    ];
    node.object(&fields, |f| {
        Ok(Config {
            prefix: f.optional("prefix", string)?,
            labels: f
                .optional("labels", |n| {
                    n.entries(MAX_CONSTANT_LABELS, |key, v| {
                        Ok((key.to_string(), v.string()?))
                    })
                })?
                .unwrap_or_default(),
            counters: f
                .optional("counters", |n| n.array(read_counter))?
                .unwrap_or_else(seed_counters),
            http_metrics: f
                .optional("http_metrics", read_http_metrics)?
                .unwrap_or_default(),
            samplers: f
                .optional("samplers", |n| n.array(read_sampler))?
                .unwrap_or_default(),
            grpc: f.nullable("grpc", read_grpc)?,
        })
    })
}

fn string(node: Node<'_>) -> Result<String, ConfigError> {
    node.string()
}

fn strings(node: Node<'_>) -> Result<Vec<String>, ConfigError> {
    node.array(string)
}

fn read_counter(node: Node<'_>) -> Result<Counter, ConfigError> {
    let fields = [
        "name",
        "help",
        "match",
        "labels",
        "increment",
        "max_body_bytes",
    ];
    node.object(&fields, |f| {
        Ok(Counter {
            name: f.required("name", string)?,
            help: f.optional("help", string)?.unwrap_or_default(),
            matches: f.required("match", read_match)?,
            labels: f.optional("labels", read_labels)?.unwrap_or_default(),
            increment: f.nullable("increment", read_increment)?,
            max_body_bytes: f
                .nullable("max_body_bytes", |n| read_size(n, MAX_COUNTER_BODY_BYTES))?,
        })
    })
}

/// A byte count in 1..=`max`.
fn read_size(node: Node<'_>, max: usize) -> Result<usize, ConfigError> {
    let v = node.u64()?;
    usize::try_from(v)
        .ok()
        .filter(|n| (1..=max).contains(n))
        .ok_or_else(|| node.error(format!("{v} is out of range (expected 1-{max})")))
}

fn read_increment(node: Node<'_>) -> Result<Increment, ConfigError> {
    node.object(&["request_json", "response_json"], |f| {
        let request = f.nullable("request_json", string)?;
        let response = f.nullable("response_json", string)?;
        match (request, response) {
            (Some(pointer), None) => Ok(Increment {
                side: Side::Request,
                pointer,
            }),
            (None, Some(pointer)) => Ok(Increment {
                side: Side::Response,
                pointer,
            }),
            _ => Err(node.error(
                "must set exactly one of request_json, response_json (the JSON pointer of the amount in that body)",
            )),
        }
    })
}

fn read_body_conditions(node: Node<'_>) -> Result<Vec<BodyCondition>, ConfigError> {
    let Json::Array(items) = node.value else {
        return Err(node.invalid_type("an array of {\"pointer\": …, \"equals\"|\"present\": …}"));
    };
    if items.len() > MAX_BODY_CONDITIONS {
        return Err(node.error(format!(
            "has {} conditions (expected at most {MAX_BODY_CONDITIONS})",
            items.len()
        )));
    }
    node.array(|n| {
        n.object(&["pointer", "equals", "present"], |f| {
            let pointer = f.required("pointer", string)?;
            // `optional`: `"equals": null` is a condition (the value is null), not an absence.
            let equals = f.optional("equals", |v| match v.value {
                Json::Array(_) | Json::Object(_) => {
                    Err(v.invalid_type("a string, number, boolean or null"))
                }
                value => Ok(value.clone()),
            })?;
            let present = f.nullable("present", |v| v.bool())?;
            let test = match (equals, present) {
                (Some(value), None) => BodyTest::Equals(value),
                (None, Some(present)) => BodyTest::Present(present),
                _ => {
                    return Err(n.error(
                        "must set exactly one of equals (a string, number, boolean or null), present (true or false)",
                    ))
                }
            };
            check_pointer(&pointer, &format!("{}.pointer", n.path_string()))?;
            Ok(BodyCondition { pointer, test })
        })
    })
}

fn read_labels(node: Node<'_>) -> Result<Vec<LabelSpec>, ConfigError> {
    node.array(|n| {
        n.object(
            &["name", "request_header", "response_header", "values"],
            |f| {
                let name = f.required("name", string)?;
                let request = f.nullable("request_header", string)?;
                let response = f.nullable("response_header", string)?;
                let (side, header) = match (request, response) {
                    (Some(h), None) => (Side::Request, h),
                    (None, Some(h)) => (Side::Response, h),
                    _ => {
                        return Err(
                            n.error("must set exactly one of request_header, response_header")
                        )
                    }
                };
                Ok(LabelSpec {
                    name,
                    side,
                    header: header.to_ascii_lowercase(),
                    values: f.required("values", strings)?,
                })
            },
        )
    })
}

fn read_match(node: Node<'_>) -> Result<Match, ConfigError> {
    let fields = [
        "method",
        "path",
        "status",
        "request_headers",
        "response_headers",
        "request_json",
        "response_json",
    ];
    node.object(&fields, |f| {
        let headers = |f: &Fields<'_>, name| {
            f.optional(name, |n| {
                n.entries(MAX_HEADER_NAMES, |key, v| {
                    Ok((key.to_string(), read_header_match(v)?))
                })
            })
            .map(|found| found.unwrap_or_default().into_iter().collect())
        };
        Ok(Match {
            method: f.nullable("method", string)?,
            path: f.nullable("path", string)?,
            status: f.nullable("status", |n| n.array(read_status))?,
            request_headers: headers(f, "request_headers")?,
            response_headers: headers(f, "response_headers")?,
            request_json: f
                .nullable("request_json", read_body_conditions)?
                .unwrap_or_default(),
            response_json: f
                .nullable("response_json", read_body_conditions)?
                .unwrap_or_default(),
        })
    })
}

fn read_header_match(node: Node<'_>) -> Result<HeaderMatch, ConfigError> {
    match node.value {
        Json::String(s) => Ok(HeaderMatch::Exact(s.clone())),
        Json::Bool(b) => Ok(HeaderMatch::Present(*b)),
        _ => Err(node.invalid_type("a string for an exact value, or true/false for presence")),
    }
}

fn read_status(node: Node<'_>) -> Result<StatusMatch, ConfigError> {
    let bad = |shown: &dyn fmt::Display| {
        node.error(format!(
            "{shown} is not a status code or class {STATUS_EXPECTED}"
        ))
    };
    let code = |v: u64| {
        u16::try_from(v)
            .ok()
            .filter(|c| (100..=599).contains(c))
            .map(StatusMatch::Code)
    };
    match node.value {
        Json::Number(Number::Unsigned(v)) => code(*v).ok_or_else(|| bad(v)),
        Json::Number(n) => Err(bad(n)),
        Json::String(s) => match s.as_bytes() {
            [d @ b'1'..=b'5', b'x' | b'X', b'x' | b'X'] => Ok(StatusMatch::Class(d - b'0')),
            _ => s
                .parse::<u64>()
                .ok()
                .and_then(code)
                .ok_or_else(|| bad(&format!("{s:?}"))),
        },
        _ => Err(node.invalid_type(&format!("a status code or class {STATUS_EXPECTED}"))),
    }
}

fn read_http_metrics(node: Node<'_>) -> Result<HttpMetrics, ConfigError> {
    let fields = [
        "enabled",
        "handlers",
        "excluded_handlers",
        "total_duration",
        "labels",
    ];
    node.object(&fields, |f| {
        Ok(HttpMetrics {
            enabled: f.optional("enabled", |n| n.bool())?.unwrap_or(true),
            handlers: f.optional("handlers", strings)?.unwrap_or_default(),
            excluded_handlers: f
                .optional("excluded_handlers", strings)?
                .unwrap_or_default(),
            total_duration: f.optional("total_duration", |n| n.bool())?.unwrap_or(false),
            labels: f.optional("labels", read_labels)?.unwrap_or_default(),
        })
    })
}

fn read_sampler(node: Node<'_>) -> Result<Sampler, ConfigError> {
    let fields = [
        "name",
        "help",
        "cluster",
        "authority",
        "path",
        "interval_seconds",
        "timeout_ms",
        "max_body_bytes",
        "value",
    ];
    node.object(&fields, |f| {
        let number = |name, default| f.optional(name, |n| n.u64()).map(|v| v.unwrap_or(default));
        Ok(Sampler {
            name: f.required("name", string)?,
            help: f.optional("help", string)?.unwrap_or_default(),
            cluster: f.required("cluster", string)?,
            authority: f.nullable("authority", string)?,
            path: f.required("path", string)?,
            interval_seconds: number("interval_seconds", DEFAULT_INTERVAL_SECONDS)?,
            timeout_ms: number("timeout_ms", DEFAULT_TIMEOUT_MS)?,
            max_body_bytes: f
                .optional("max_body_bytes", |n| read_size(n, MAX_BODY_BYTES_LIMIT))?
                .unwrap_or(DEFAULT_MAX_BODY_BYTES),
            value: f.required("value", read_value_spec)?,
        })
    })
}

/// Exactly one source; `"text": false` is refused rather than read as no source.
fn read_value_spec(node: Node<'_>) -> Result<ValueSource, ConfigError> {
    let fields = ["json_pointer", "json_array_length", "header", "text"];
    node.object(&fields, |f| {
        let mut found = Vec::with_capacity(1);
        if let Some(p) = f.nullable("json_pointer", string)? {
            found.push(ValueSource::JsonPointer(p));
        }
        if let Some(p) = f.nullable("json_array_length", string)? {
            found.push(ValueSource::JsonArrayLength(p));
        }
        if let Some(h) = f.nullable("header", string)? {
            found.push(ValueSource::Header(h.to_ascii_lowercase()));
        }
        match f.nullable("text", |n| n.bool())? {
            Some(true) => found.push(ValueSource::Text),
            Some(false) => {
                return Err(ConfigError::new(
                    format!("{}.text", node.path_string()),
                    "is false (expected true, or leave it out)",
                ))
            }
            None => {}
        }
        match (found.pop(), found.is_empty()) {
            (Some(one), true) => Ok(one),
            _ => {
                Err(node
                    .error("must set exactly one of json_pointer, json_array_length, header, text"))
            }
        }
    })
}

fn read_grpc(node: Node<'_>) -> Result<Grpc, ConfigError> {
    node.object(&["methods", "handling_time", "messages"], |f| {
        Ok(Grpc {
            methods: f
                .optional("methods", |n| n.array(read_grpc_method))?
                .unwrap_or_default(),
            handling_time: f.optional("handling_time", |n| n.bool())?.unwrap_or(false),
            messages: f.optional("messages", |n| n.bool())?.unwrap_or(false),
        })
    })
}

/// A method: its path (a unary RPC), or `{"path": …, "type": …}`.
fn read_grpc_method(node: Node<'_>) -> Result<(String, RpcType), ConfigError> {
    if let Json::String(path) = node.value {
        return Ok((path.clone(), RpcType::Unary));
    }
    if !matches!(node.value, Json::Object(_)) {
        return Err(node.invalid_type(
            "a method path, or {\"path\": …, \"type\": \"unary\"|\"client_stream\"|\"server_stream\"|\"bidi_stream\"}",
        ));
    }
    node.object(&["path", "type"], |f| {
        let path = f.required("path", string)?;
        let kind = f
            .optional("type", |n| {
                let name = n.string()?;
                RpcType::ALL
                    .iter()
                    .copied()
                    .find(|t| *t != RpcType::Unknown && t.label() == name)
                    .ok_or_else(|| {
                        n.error(format!(
                            "{name:?} is not an RPC type (expected unary, client_stream, server_stream or bidi_stream)"
                        ))
                    })
            })?
            .unwrap_or(RpcType::Unary);
        Ok((path, kind))
    })
}
