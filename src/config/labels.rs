//! The labels of a configuration: names unique per series and safe in stat names, values that
//! cannot break the encoding, and the header names read for them (bounded: each is looked up in
//! every request).

use super::limits::*;
use super::syntax::{is_header_name, is_identifier};
use super::types::LabelSpec;
use crate::istio::{self, Place};
use crate::json::ConfigError;
use crate::labels::{Side, ABSENT_VALUE, OTHER_VALUE};
use crate::names;

/// The constant labels (`labels`): the first names in use.
#[inline(never)] // as validate_match
pub(super) fn validate_constant_labels(
    constant: &[(String, String)],
) -> Result<LabelNames, ConfigError> {
    let mut labels = LabelNames::default();
    for (name, value) in constant {
        let at = format!("labels.{name}");
        labels.claim(name, &at)?;
        check_label_value(value, &at)?;
    }
    labels.constant = labels.in_use.len();
    Ok(labels)
}

pub(super) fn side_field(side: Side) -> &'static str {
    match side {
        Side::Request => "request_headers",
        Side::Response => "response_headers",
    }
}

/// The distinct header names read from each map (rules' and labels'), bounded: each is looked
/// for in every request.
#[derive(Default)]
pub(super) struct HeaderNames {
    request: Vec<String>,
    response: Vec<String>,
}

impl HeaderNames {
    #[inline(never)] // as validate_match
    pub(super) fn read(
        &mut self,
        side: Side,
        name: &str,
        at: impl FnOnce() -> String,
    ) -> Result<(), ConfigError> {
        let seen = match side {
            Side::Request => &mut self.request,
            Side::Response => &mut self.response,
        };
        let name = name.to_ascii_lowercase();
        if !seen.contains(&name) {
            seen.push(name);
        }
        if seen.len() > MAX_HEADER_NAMES {
            let which = match side {
                Side::Request => "request",
                Side::Response => "response",
            };
            return Err(ConfigError::new(
                at(),
                format!("is one header name too many: counters and labels may read at most {MAX_HEADER_NAMES} distinct {which} headers (each is looked up in every request)"),
            ));
        }
        Ok(())
    }
}

/// The label names a configuration uses, in order (constant ones first): Envoy's stats tag
/// regexes are per label name and proxy-wide, so names must not overlap anywhere in it.
#[derive(Default)]
pub(super) struct LabelNames {
    /// (name, field path)
    in_use: Vec<(String, String)>,
    /// How many of `in_use` are constant labels (on every series).
    constant: usize,
    /// Where the labels of the metric being checked start in `in_use`.
    metric: usize,
}

impl LabelNames {
    /// Checks `name` (at `at`) and adds it to the labels of the current series.
    #[inline(never)] // as validate_match
    fn claim(&mut self, name: &str, at: &str) -> Result<(), ConfigError> {
        if !is_identifier(name) {
            return Err(ConfigError::new(
                at,
                format!("{name:?} is not a label name (expected [a-zA-Z_][a-zA-Z0-9_]*)"),
            ));
        }
        if name.starts_with("__") {
            return Err(ConfigError::new(
                at,
                format!("{name:?} starts with \"__\", which Prometheus reserves for its own labels (expected another name)"),
            ));
        }
        if names::RESERVED_LABEL_NAMES.contains(&name) {
            return Err(ConfigError::new(
                at,
                format!("{name:?} is a label the filter or Prometheus sets itself (expected a name other than {})", names::RESERVED_LIST),
            ));
        }
        if istio::TAG_NAMES.contains(&name) {
            return Err(ConfigError::new(
                at,
                format!("{name:?} is one of the stats tag names Istio's bootstrap defines, and Envoy refuses a tag name twice (expected another name)"),
            ));
        }
        // The first label name of a stat name follows `wasmcustom.`.
        if let Some(captured) = istio::captured(Place::LabelName, name) {
            return Err(ConfigError::new(
                at,
                format!("{name:?} makes {captured:?} in the stat name, which Istio's stats tag regexes would cut out of it into a label of their own (expected another name)"),
            ));
        }
        let series = self
            .in_use
            .get(..self.constant)
            .into_iter()
            .chain(self.in_use.get(self.metric..))
            .flatten();
        if let Some((_, other)) = series.clone().find(|(n, _)| n == name) {
            return Err(ConfigError::new(
                at,
                format!("{name:?} is already a label of these series, at {other} (expected a label name unique per series)"),
            ));
        }
        let fixed = names::LABEL_NAMES
            .iter()
            .map(|n| (*n, "the filter's own labels"));
        let used = self.in_use.iter().map(|(n, p)| (n.as_str(), p.as_str()));
        let overlap = fixed
            .chain(used)
            .find(|(n, _)| *n != name && (n.ends_with(name) || name.ends_with(n)));
        if let Some((other, other_at)) = overlap {
            let (short, long) = if other.len() < name.len() {
                (other, name)
            } else {
                (name, other)
            };
            return Err(ConfigError::new(
                at,
                format!("{name:?} and {other:?} ({other_at}) end alike: the stats tag regex of {short:?} would also match {long:?}'s label in stat names (expected label names that do not end with one another)"),
            ));
        }
        self.in_use.push((name.to_string(), at.to_string()));
        Ok(())
    }
}

/// A metric's dynamic labels (`counters[i].labels`, `http_metrics.labels`).
#[inline(never)] // as validate_match
pub(super) fn validate_labels(
    specs: &[LabelSpec],
    at: &str,
    names: &mut LabelNames,
    headers: &mut HeaderNames,
) -> Result<(), ConfigError> {
    if specs.len() > MAX_DYNAMIC_LABELS {
        return Err(ConfigError::new(
            at,
            format!(
                "has {} labels (expected at most {MAX_DYNAMIC_LABELS}: each multiplies the metric's series)",
                specs.len()
            ),
        ));
    }
    names.metric = names.in_use.len();
    for (i, spec) in specs.iter().enumerate() {
        let at = format!("{at}[{i}]");
        names.claim(&spec.name, &format!("{at}.name"))?;
        let (side, header) = (spec.side, &spec.header);
        let field = match side {
            Side::Request => "request_header",
            Side::Response => "response_header",
        };
        if !is_header_name(header) {
            return Err(ConfigError::new(
                format!("{at}.{field}"),
                format!("{header:?} is not a header name (expected letters, digits, '-', '_', '.' or a leading ':')"),
            ));
        }
        headers.read(side, header, || format!("{at}.{field}"))?;
        let values = &spec.values;
        if values.is_empty() || values.len() > MAX_LABEL_VALUES {
            return Err(ConfigError::new(
                format!("{at}.values"),
                format!(
                    "has {} values (expected 1-{MAX_LABEL_VALUES}: the header values that become label values; others read \"{}\")",
                    values.len(),
                    OTHER_VALUE
                ),
            ));
        }
        for (j, value) in values.iter().enumerate() {
            let at = format!("{at}.values[{j}]");
            check_label_value(value, &at)?;
            let meaning = match value.as_str() {
                OTHER_VALUE => Some("a header value not listed"),
                ABSENT_VALUE => Some("an absent header"),
                _ => None,
            };
            if let Some(meaning) = meaning {
                return Err(ConfigError::new(
                    at,
                    format!(
                        "{value:?} is what the label reads for {meaning} (expected another value)"
                    ),
                ));
            }
            if values.iter().take(j).any(|v| v == value) {
                return Err(ConfigError::new(
                    at,
                    format!("{value:?} is listed twice (expected unique values)"),
                ));
            }
        }
    }
    Ok(())
}

/// A label value the configuration sets (constant, or listed for a dynamic label): short, and
/// nothing that breaks the stat-name encoding, the exposition text, or Istio's tag regexes.
#[inline(never)] // as validate_match
pub(super) fn check_label_value(value: &str, at: &str) -> Result<(), ConfigError> {
    const EXPECTED: &str = "printable ASCII other than ';', '=', '\"' and '\\'";
    if value.is_empty() || value.len() > MAX_LABEL_VALUE_BYTES {
        return Err(ConfigError::new(
            at,
            format!(
                "{value:?} has {} bytes (expected 1-{MAX_LABEL_VALUE_BYTES} characters, {EXPECTED})",
                value.len()
            ),
        ));
    }
    if let Some(c) = value
        .chars()
        .find(|c| !(' '..='~').contains(c) || matches!(c, ';' | '=' | '"' | '\\'))
    {
        return Err(ConfigError::new(
            at,
            format!("{value:?} contains {c:?} (expected {EXPECTED}: ';' and '=' delimit labels in stat names)"),
        ));
    }
    // In a stat name the value sits between `=.=` and `;.;`: what Istio captures may span them
    // (a value ending in `cache` would not, but the check costs nothing to make exact).
    if let Some(captured) = istio::captured(Place::LabelValue, value) {
        return Err(ConfigError::new(
            at,
            format!("{value:?} makes {captured:?} in the stat name, which Istio's stats tag regexes would cut out of the label into a label of their own (expected a value without it)"),
        ));
    }
    Ok(())
}

/// With a `grpc` section the gRPC labels' stats tags are in the proxy too: a dynamic label whose
/// name ends like one of them would also match inside the gRPC series' names. Constant labels
/// may: they lead every stat name, and Envoy takes a tag regex's leftmost match.
pub(super) fn check_grpc_overlap(names: &LabelNames) -> Result<(), ConfigError> {
    let dynamic = names.in_use.get(names.constant..).unwrap_or_default();
    for (name, at) in dynamic {
        let overlap = names::GRPC_LABEL_NAMES
            .iter()
            .find(|g| g.ends_with(name.as_str()) || name.ends_with(*g));
        if let Some(grpc) = overlap {
            return Err(ConfigError::new(
                at.as_str(),
                format!("{name:?} and the gRPC label {grpc:?} end alike: the stats tag regex of one would also match the other's label in stat names (expected a label name that does not end like grpc_type, grpc_service, grpc_method or grpc_code)"),
            ));
        }
    }
    Ok(())
}
