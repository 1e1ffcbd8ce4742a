//! The plugin's JSON configuration: the public contract.
//!
//! Parsing is strict: serde_json reads the document, [`read_config`] takes the typed fields out
//! of it (unknown or repeated fields refused, every error naming its field path; see
//! `json.rs` for why not serde's derive), then [`validate`] checks names, paths, templates,
//! ranges and uniqueness. Any error rejects the whole configuration: the glue logs it and keeps
//! the plugin's last good one (`lifecycle.rs`).

pub use crate::json::ConfigError;
use crate::json::{Fields, Json, Node, Number};
use crate::labels::Side;
use std::collections::BTreeMap;
use std::fmt;

/// Names the filter itself publishes; user metrics may not take them.
pub const RESERVED_NAMES: [&str; 6] = [
    "http_requests_total",
    "http_proxy_responses_total",
    "http_request_duration_milliseconds",
    "http_request_total_duration_milliseconds",
    "http_request_size_bytes",
    "http_response_size_bytes",
];
/// The counters above; the others are histograms.
const RESERVED_COUNTERS: [&str; 2] = ["http_requests_total", "http_proxy_responses_total"];
/// The lines each histogram above also renders as.
const HISTOGRAM_SUFFIXES: [&str; 3] = ["_bucket", "_sum", "_count"];
/// Prefix of the filter's self-metrics.
pub const SELF_PREFIX: &str = "app_metrics_";
/// Prefixes of the series Envoy (its own stats) and Istio (`istio_requests_total`, ...) publish
/// on the same page.
const FOREIGN_PREFIXES: [&str; 2] = ["envoy_", "istio_"];

pub const DEFAULT_INTERVAL_SECONDS: u64 = 30;
pub const DEFAULT_TIMEOUT_MS: u64 = 1000;
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024;
const MAX_INTERVAL_SECONDS: u64 = 86_400;
const MAX_TIMEOUT_MS: u64 = 60_000;
const MAX_BODY_BYTES_LIMIT: usize = 16 * 1024 * 1024;
/// A counter reads at most this much of a body: the VM keeps the copy until the body has ended
/// (and its memory never shrinks).
pub const MAX_COUNTER_BODY_BYTES: usize = 1024 * 1024;
/// Body conditions of one counter on one body: each is looked up in the body.
pub const MAX_BODY_CONDITIONS: usize = 16;
/// Every request is checked against every counter and every header name some counter reads:
/// these bound that work, far above any real configuration.
pub const MAX_COUNTERS: usize = 256;
pub const MAX_HEADER_NAMES: usize = 32;
/// Constant labels of a configuration (`labels`): a few say which app, tenant or cluster.
pub const MAX_CONSTANT_LABELS: usize = 8;
/// Dynamic labels of one metric (`counters[].labels`, `http_metrics.labels`): each multiplies
/// the metric's series by its values + 2.
pub const MAX_DYNAMIC_LABELS: usize = 4;
pub const MAX_LABEL_VALUES: usize = 32;
pub const MAX_LABEL_VALUE_BYTES: usize = 64;
/// The most series (label sets: a histogram counts once) a configuration may make, by
/// [`series_bound`]: far above a useful configuration, it catches a label set multiplied out of
/// all proportion before a proxy holds it.
pub const MAX_SERIES: u64 = 100_000;

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Constant labels on every series the configuration makes (but `app_metrics_config_valid`),
    /// in document order: (name, value).
    pub labels: Vec<(String, String)>,
    /// Absent means the seed's two login counters; `[]` means none.
    pub counters: Vec<Counter>,
    pub http_metrics: HttpMetrics,
    pub samplers: Vec<Sampler>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            labels: Vec::new(),
            counters: seed_counters(),
            http_metrics: HttpMetrics::default(),
            samplers: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Counter {
    pub name: String,
    pub help: String,
    pub matches: Match,
    pub labels: Vec<LabelSpec>,
    /// `increment`: add the integer at a pointer in a body instead of 1.
    pub increment: Option<Increment>,
    /// How much of a body this counter reads (`max_body_bytes`); `None`: the default.
    pub max_body_bytes: Option<usize>,
}

impl Counter {
    /// Whether the counter reads a body on `side` (a condition or its increment).
    pub fn reads_body(&self, side: Side) -> bool {
        let m = &self.matches;
        let conditions = match side {
            Side::Request => &m.request_json,
            Side::Response => &m.response_json,
        };
        !conditions.is_empty() || self.increment.as_ref().is_some_and(|i| i.side == side)
    }

    /// The most body bytes this counter reads.
    pub fn body_limit(&self) -> usize {
        self.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES)
    }
}

/// A condition on a JSON body: the value at `pointer` (RFC 6901).
#[derive(Debug, Clone, PartialEq)]
pub struct BodyCondition {
    pub pointer: String,
    pub test: BodyTest,
}

#[derive(Debug, Clone, PartialEq)]
pub enum BodyTest {
    /// A string, number (compared by value: 1 = 1.0), boolean or null.
    Equals(Json),
    /// `present: true` holds when the pointer finds a value (null included), `false` when not.
    Present(bool),
}

/// `increment`: the counter adds the non-negative integer at `pointer` in one body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Increment {
    pub side: Side,
    pub pointer: String,
}

/// A dynamic label: its value comes from a request or response header, mapped onto `values`
/// (`labels::Dynamic`). Exactly one header field is set (checked by [`validate`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSpec {
    pub name: String,
    pub request_header: Option<String>,
    pub response_header: Option<String>,
    pub values: Vec<String>,
}

impl LabelSpec {
    /// The side and the lower-cased header name, or `None` unless exactly one is set.
    pub fn header(&self) -> Option<(Side, String)> {
        match (&self.request_header, &self.response_header) {
            (Some(h), None) => Some((Side::Request, h.to_ascii_lowercase())),
            (None, Some(h)) => Some((Side::Response, h.to_ascii_lowercase())),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Match {
    pub method: Option<String>,
    pub path: Option<String>,
    pub status: Option<Vec<StatusMatch>>,
    pub request_headers: BTreeMap<String, HeaderMatch>,
    pub response_headers: BTreeMap<String, HeaderMatch>,
    /// Conditions on the JSON bodies: all must hold.
    pub request_json: Vec<BodyCondition>,
    pub response_json: Vec<BodyCondition>,
}

/// `"value"` must equal; `true` must be present; `false` must be absent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderMatch {
    Exact(String),
    Present(bool),
}

/// A status code (`401`) or a class (`"4xx"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusMatch {
    Code(u16),
    Class(u8),
}

impl StatusMatch {
    pub fn matches(self, status: u16) -> bool {
        match self {
            StatusMatch::Code(code) => code == status,
            StatusMatch::Class(class) => status / 100 == u16::from(class),
        }
    }
}

const STATUS_EXPECTED: &str = "(expected 100-599 or 1xx-5xx)";

#[derive(Debug, Clone, PartialEq)]
pub struct HttpMetrics {
    pub enabled: bool,
    pub handlers: Vec<String>,
    pub excluded_handlers: Vec<String>,
    /// Dynamic labels on every request metric.
    pub labels: Vec<LabelSpec>,
    /// `http_request_total_duration_milliseconds`: Envoy's time for the whole request, at one
    /// more host call per request.
    pub total_duration: bool,
}

impl Default for HttpMetrics {
    fn default() -> Self {
        HttpMetrics {
            enabled: true,
            handlers: Vec::new(),
            excluded_handlers: Vec::new(),
            labels: Vec::new(),
            total_duration: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Sampler {
    pub name: String,
    pub help: String,
    /// The Envoy cluster the sample request goes to.
    pub cluster: String,
    /// `:authority` of the sample request; defaults to the cluster name.
    pub authority: Option<String>,
    pub path: String,
    pub interval_seconds: u64,
    pub timeout_ms: u64,
    /// Only this many bytes of the answer are read; a longer body is an error (`too_large`).
    pub max_body_bytes: usize,
    pub value: ValueSpec,
}

impl Sampler {
    /// `authority`, else the host of an Istio cluster name (`outbound|8000||app.ns.svc.cluster.local`
    /// → `app.ns.svc.cluster.local:8000`; a waypoint's `inbound-vip|8000|http|app.ns.svc.cluster.local`
    /// the same; `inbound|8000||`, this pod's app → `localhost:8000`), else the cluster name.
    pub fn authority(&self) -> std::borrow::Cow<'_, str> {
        if let Some(authority) = &self.authority {
            return authority.as_str().into();
        }
        let mut parts = self.cluster.split('|');
        match (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) {
            (
                Some(direction @ ("outbound" | "inbound" | "inbound-vip")),
                Some(port),
                Some(_),
                Some(host),
                None,
            ) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => match host {
                "" if direction == "inbound" => format!("localhost:{port}").into(),
                "" => self.cluster.as_str().into(),
                host => format!("{host}:{port}").into(),
            },
            _ => self.cluster.as_str().into(),
        }
    }
}

/// Where the sampled number comes from: exactly one field is set (checked by [`validate`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ValueSpec {
    pub json_pointer: Option<String>,
    pub json_array_length: Option<String>,
    pub header: Option<String>,
    pub text: Option<bool>,
}

/// The value source once validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueSource {
    JsonPointer(String),
    JsonArrayLength(String),
    Header(String),
    Text,
}

impl ValueSpec {
    /// The single source, or `None` when zero or several are set.
    pub fn source(&self) -> Option<ValueSource> {
        let mut found = Vec::with_capacity(1);
        if let Some(p) = &self.json_pointer {
            found.push(ValueSource::JsonPointer(p.clone()));
        }
        if let Some(p) = &self.json_array_length {
            found.push(ValueSource::JsonArrayLength(p.clone()));
        }
        if let Some(h) = &self.header {
            found.push(ValueSource::Header(h.to_ascii_lowercase()));
        }
        if self.text == Some(true) {
            found.push(ValueSource::Text);
        }
        match (found.pop(), found.is_empty()) {
            (Some(one), true) => Some(one),
            _ => None,
        }
    }
}

/// The seed tutorial's counters: `POST /login` answered 2xx, or 400/401 (a 422 or 5xx is no failed login).
pub fn seed_counters() -> Vec<Counter> {
    let login = |name: &str, help: &str, status: Vec<StatusMatch>| Counter {
        name: name.to_string(),
        help: help.to_string(),
        matches: Match {
            method: Some("POST".to_string()),
            path: Some("/login".to_string()),
            status: Some(status),
            ..Match::default()
        },
        labels: Vec::new(),
        increment: None,
        max_body_bytes: None,
    };
    vec![
        login(
            "successful_login_details_total",
            "Successful login details",
            vec![StatusMatch::Class(2)],
        ),
        login(
            "failed_login_details_total",
            "Failed login details",
            vec![StatusMatch::Code(400), StatusMatch::Code(401)],
        ),
    ]
}

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
    let config = read_config(Node::root(&doc))?;
    validate(&config)?;
    Ok(config)
}

fn read_config(node: Node<'_>) -> Result<Config, ConfigError> {
    node.object(&["counters", "http_metrics", "samplers", "labels"], |f| {
        Ok(Config {
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
                Ok(LabelSpec {
                    name: f.required("name", string)?,
                    request_header: f.nullable("request_header", string)?,
                    response_header: f.nullable("response_header", string)?,
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

fn read_value_spec(node: Node<'_>) -> Result<ValueSpec, ConfigError> {
    let fields = ["json_pointer", "json_array_length", "header", "text"];
    node.object(&fields, |f| {
        Ok(ValueSpec {
            json_pointer: f.nullable("json_pointer", string)?,
            json_array_length: f.nullable("json_array_length", string)?,
            header: f.nullable("header", string)?,
            text: f.nullable("text", |n| n.bool())?,
        })
    })
}

/// Checks what the types cannot: names, paths, templates, ranges, uniqueness.
pub fn validate(config: &Config) -> Result<(), ConfigError> {
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    let mut claim = |name: &str, path: String| -> Result<(), ConfigError> {
        check_metric_name(name, &path)?;
        if let Some(owner) = names.get(name) {
            return Err(ConfigError::new(
                path,
                format!("{name:?} is already used by {owner} (expected a unique metric name)"),
            ));
        }
        names.insert(name.to_string(), path.trim_end_matches(".name").to_string());
        Ok(())
    };
    if config.counters.len() > MAX_COUNTERS {
        return Err(ConfigError::new(
            "counters",
            format!(
                "has {} counters (expected at most {MAX_COUNTERS}: every request is checked against each)",
                config.counters.len()
            ),
        ));
    }
    let mut header_names = HeaderNames::default();
    let mut labels = validate_constant_labels(&config.labels)?;
    for (i, counter) in config.counters.iter().enumerate() {
        let at = format!("counters[{i}]");
        claim(&counter.name, format!("{at}.name"))?;
        validate_match(&counter.matches, &format!("{at}.match"))?;
        validate_body_reads(counter, &at)?;
        let m = &counter.matches;
        for (side, headers) in [
            (Side::Request, &m.request_headers),
            (Side::Response, &m.response_headers),
        ] {
            for name in headers.keys() {
                header_names.read(side, name, || {
                    format!("{at}.match.{}.{name}", side_field(side))
                })?;
            }
        }
        validate_labels(
            &counter.labels,
            &format!("{at}.labels"),
            &mut labels,
            &mut header_names,
        )?;
    }
    for (i, sampler) in config.samplers.iter().enumerate() {
        let at = format!("samplers[{i}]");
        claim(&sampler.name, format!("{at}.name"))?;
        validate_sampler(sampler, &at)?;
    }
    let http = &config.http_metrics;
    validate_labels(
        &http.labels,
        "http_metrics.labels",
        &mut labels,
        &mut header_names,
    )?;
    for (field, list) in [
        ("handlers", &http.handlers),
        ("excluded_handlers", &http.excluded_handlers),
    ] {
        let mut router = matchit::Router::new();
        for (i, template) in list.iter().enumerate() {
            let at = format!("http_metrics.{field}[{i}]");
            check_template(template, &at)?;
            if template.contains(';') || template.contains('=') {
                return Err(ConfigError::new(
                    at,
                    format!("{template:?} contains ';' or '=' (expected a path template without them: they delimit labels in stat names)"),
                ));
            }
            if let Some(captured) = crate::labels::istio_captured(template) {
                return Err(ConfigError::new(
                    at,
                    format!("{template:?} contains {captured:?}, which Istio's stats tag regexes would cut out of the handler label into a label of their own (expected a template without it)"),
                ));
            }
            router.insert(template.as_str(), i).map_err(|e| {
                ConfigError::new(
                    at,
                    format!("{template:?} is not a usable route template: {e}"),
                )
            })?;
        }
    }
    check_series_bound(config)
}

/// The constant labels (`labels`): the first names in use.
#[inline(never)] // as validate_match
fn validate_constant_labels(constant: &[(String, String)]) -> Result<LabelNames, ConfigError> {
    let mut labels = LabelNames::default();
    for (name, value) in constant {
        let at = format!("labels.{name}");
        labels.claim(name, &at)?;
        check_label_value(value, &at)?;
    }
    labels.constant = labels.in_use.len();
    Ok(labels)
}

fn side_field(side: Side) -> &'static str {
    match side {
        Side::Request => "request_headers",
        Side::Response => "response_headers",
    }
}

/// The distinct header names read from each map (rules' and labels'), bounded: each is looked
/// for in every request.
#[derive(Default)]
struct HeaderNames {
    request: Vec<String>,
    response: Vec<String>,
}

impl HeaderNames {
    #[inline(never)] // as validate_match
    fn read(
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

/// `labels::RESERVED_LABEL_NAMES` as the message lists them (a literal: `join` would add its own
/// copy of the joining code to the module).
pub const RESERVED_LIST: &str = "handler, method, status, sampler, reason, plugin, le, quantile";

/// The label names a configuration uses, in order (constant ones first): Envoy's stats tag
/// regexes are per label name and proxy-wide, so names must not overlap anywhere in it.
#[derive(Default)]
struct LabelNames {
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
        if crate::labels::RESERVED_LABEL_NAMES.contains(&name) {
            return Err(ConfigError::new(
                at,
                format!("{name:?} is a label the filter or Prometheus sets itself (expected a name other than {RESERVED_LIST})"),
            ));
        }
        if crate::labels::ISTIO_TAG_NAMES.contains(&name) {
            return Err(ConfigError::new(
                at,
                format!("{name:?} is one of the stats tag names Istio's bootstrap defines, and Envoy refuses a tag name twice (expected another name)"),
            ));
        }
        // The first label name of a stat name follows `wasmcustom.`.
        if let Some(captured) = crate::labels::istio_captured(&format!(".{name}=")) {
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
        let fixed = crate::labels::LABEL_NAMES
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
fn validate_labels(
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
        let Some((side, header)) = spec.header() else {
            return Err(ConfigError::new(
                at,
                "must set exactly one of request_header, response_header",
            ));
        };
        let field = match side {
            Side::Request => "request_header",
            Side::Response => "response_header",
        };
        if !is_header_name(&header) {
            return Err(ConfigError::new(
                format!("{at}.{field}"),
                format!("{header:?} is not a header name (expected letters, digits, '-', '_', '.' or a leading ':')"),
            ));
        }
        headers.read(side, &header, || format!("{at}.{field}"))?;
        let values = &spec.values;
        if values.is_empty() || values.len() > MAX_LABEL_VALUES {
            return Err(ConfigError::new(
                format!("{at}.values"),
                format!(
                    "has {} values (expected 1-{MAX_LABEL_VALUES}: the header values that become label values; others read \"{}\")",
                    values.len(),
                    crate::labels::OTHER_VALUE
                ),
            ));
        }
        for (j, value) in values.iter().enumerate() {
            let at = format!("{at}.values[{j}]");
            check_label_value(value, &at)?;
            let meaning = match value.as_str() {
                crate::labels::OTHER_VALUE => Some("a header value not listed"),
                crate::labels::ABSENT_VALUE => Some("an absent header"),
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
fn check_label_value(value: &str, at: &str) -> Result<(), ConfigError> {
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
    if let Some(captured) = crate::labels::istio_captured(&format!("=.={value};.;")) {
        return Err(ConfigError::new(
            at,
            format!("{value:?} makes {captured:?} in the stat name, which Istio's stats tag regexes would cut out of the label into a label of their own (expected a value without it)"),
        ));
    }
    Ok(())
}

/// The most series a configuration can make, by kind: label sets (a histogram counts once).
/// With H handler templates, L = Π (values + 2) over `http_metrics.labels` and L_c over a
/// counter's labels: counters Σ L_c; `http_requests_total` (H+1)·10·6·L;
/// `http_proxy_responses_total` (H+1)·6·8·L; histograms (H+1)·10·L (duration) + 2·(H+1)·L
/// (sizes) + (H+1)·10·L (whole-request duration, with `total_duration`); 10 per sampler (its
/// gauge, its last-success gauge, its errors by 8 reasons); `app_metrics_config_valid` 1.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeriesBound {
    pub counters: u64,
    pub requests: u64,
    pub proxy_responses: u64,
    pub histograms: u64,
    pub samplers: u64,
    pub config_valid: u64,
}

impl SeriesBound {
    pub fn total(&self) -> u64 {
        self.counters
            .saturating_add(self.requests)
            .saturating_add(self.proxy_responses)
            .saturating_add(self.histograms)
            .saturating_add(self.samplers)
            .saturating_add(self.config_valid)
    }
}

fn combinations(specs: &[LabelSpec]) -> u64 {
    specs
        .iter()
        .fold(1u64, |n, s| n.saturating_mul(s.values.len() as u64 + 2))
}

pub fn series_bound(config: &Config) -> SeriesBound {
    use crate::labels::{METHOD_COUNT, STATUS_COUNT};
    let http = &config.http_metrics;
    let (requests, proxy_responses, histograms) = if http.enabled {
        let per_handler = combinations(&http.labels);
        let handlers = (http.handlers.len() as u64 + 1).saturating_mul(per_handler);
        let durations = if http.total_duration { 2 } else { 1 };
        (
            handlers.saturating_mul((METHOD_COUNT * STATUS_COUNT) as u64),
            handlers.saturating_mul((STATUS_COUNT * crate::proxy::ProxyReason::ALL.len()) as u64),
            handlers.saturating_mul((durations * METHOD_COUNT + 2) as u64),
        )
    } else {
        (0, 0, 0)
    };
    SeriesBound {
        counters: config
            .counters
            .iter()
            .fold(0u64, |n, c| n.saturating_add(combinations(&c.labels))),
        requests,
        proxy_responses,
        histograms,
        samplers: (config.samplers.len() * (2 + crate::extract::Reason::ALL.len())) as u64,
        config_valid: 1,
    }
}

/// Refuses a configuration whose [`series_bound`] passes [`MAX_SERIES`], at the field that
/// takes it there (counters in order, then the request metrics).
#[inline(never)] // as validate_match
fn check_series_bound(config: &Config) -> Result<(), ConfigError> {
    let bound = series_bound(config);
    let over = |n: u64, at: String| {
        Err(ConfigError::new(
            at,
            format!("brings the configuration's series bound to {n} (expected at most {MAX_SERIES}: fewer labels, label values or handlers)"),
        ))
    };
    let mut total = bound.samplers + bound.config_valid;
    for (i, counter) in config.counters.iter().enumerate() {
        total = total.saturating_add(combinations(&counter.labels));
        if total > MAX_SERIES {
            return over(total, format!("counters[{i}].labels"));
        }
    }
    let total = bound.total();
    if total > MAX_SERIES {
        let field = if config.http_metrics.labels.is_empty() {
            "handlers"
        } else {
            "labels"
        };
        return over(total, format!("http_metrics.{field}"));
    }
    Ok(())
}

// Not inlined: V8 compiles each function whole at load, and its memory follows the largest
// (BENCHMARKS.md); `validate` with this, validate_sampler and check_metric_name inlined was the
// module's largest.
#[inline(never)]
fn validate_match(m: &Match, at: &str) -> Result<(), ConfigError> {
    if let Some(method) = &m.method {
        let ok = !method.is_empty() && method.bytes().all(|b| b.is_ascii_uppercase());
        if !ok {
            return Err(ConfigError::new(
                format!("{at}.method"),
                format!(
                    "{method:?} is not an HTTP method (expected upper-case letters, e.g. \"POST\")"
                ),
            ));
        }
    }
    if let Some(path) = &m.path {
        check_template(path, &format!("{at}.path"))?;
    }
    if let Some(status) = &m.status {
        if status.is_empty() {
            return Err(ConfigError::new(
                format!("{at}.status"),
                "is empty (expected at least one status code or class, or leave it out to match any)",
            ));
        }
    }
    for (field, headers) in [
        ("request_headers", &m.request_headers),
        ("response_headers", &m.response_headers),
    ] {
        for name in headers.keys() {
            if !is_header_name(name) {
                return Err(ConfigError::new(
                    format!("{at}.{field}.{name}"),
                    format!("{name:?} is not a header name (expected letters, digits, '-', '_', '.' or a leading ':')"),
                ));
            }
            let same = |other: &&String| *other != name && other.eq_ignore_ascii_case(name);
            if let Some(other) = headers.keys().find(same) {
                return Err(ConfigError::new(
                    format!("{at}.{field}.{name}"),
                    format!("names the same header as {other:?} (header names are case-insensitive; expected one entry per header)"),
                ));
            }
        }
    }
    Ok(())
}

/// What a counter reads of bodies: only on a path, only what it says.
#[inline(never)] // as validate_match
fn validate_body_reads(counter: &Counter, at: &str) -> Result<(), ConfigError> {
    let reads = counter.reads_body(Side::Request) || counter.reads_body(Side::Response);
    if !reads {
        if counter.max_body_bytes.is_some() {
            return Err(ConfigError::new(
                format!("{at}.max_body_bytes"),
                "is set, but the counter reads no body (expected match.request_json, match.response_json or increment with it)",
            ));
        }
        return Ok(());
    }
    if counter.matches.path.is_none() {
        return Err(ConfigError::new(
            format!("{at}.match.path"),
            "is missing, and the counter reads a body (expected the path whose bodies are read: the path decides before the body which requests pay for reading it)",
        ));
    }
    if let Some(increment) = &counter.increment {
        let field = match increment.side {
            Side::Request => "request_json",
            Side::Response => "response_json",
        };
        check_pointer(&increment.pointer, &format!("{at}.increment.{field}"))?;
    }
    Ok(())
}

/// The field of the first counter in `config` that reads a body, if any: the lean module
/// (built without the `bodies` feature) refuses those (`check_build`).
pub fn first_body_read(config: &Config) -> Option<String> {
    config.counters.iter().enumerate().find_map(|(i, c)| {
        let field = if !c.matches.response_json.is_empty() {
            "match.response_json"
        } else if !c.matches.request_json.is_empty() {
            "match.request_json"
        } else if c.increment.is_some() {
            "increment"
        } else {
            return None;
        };
        Some(format!("counters[{i}].{field}"))
    })
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

#[inline(never)] // as validate_match
fn validate_sampler(s: &Sampler, at: &str) -> Result<(), ConfigError> {
    if s.cluster.trim().is_empty() {
        return Err(ConfigError::new(
            format!("{at}.cluster"),
            "is empty (expected the name of an Envoy cluster)",
        ));
    }
    if let Some(authority) = &s.authority {
        if authority.trim().is_empty() {
            return Err(ConfigError::new(
                format!("{at}.authority"),
                "is empty (expected a host name, or leave it out to use the cluster name)",
            ));
        }
    }
    let authority = s.authority();
    if !is_authority(&authority) {
        let what = if s.authority.is_some() {
            format!("{authority:?} is not a valid :authority")
        } else {
            format!(
                "is not set and the cluster name {authority:?} is not a valid :authority, which \
                 Envoy would refuse"
            )
        };
        return Err(ConfigError::new(
            format!("{at}.authority"),
            format!("{what} (expected a host name with an optional port, e.g. \"app.ns.svc.cluster.local:8000\")"),
        ));
    }
    check_path(&s.path, &format!("{at}.path"))?;
    if !(1..=MAX_INTERVAL_SECONDS).contains(&s.interval_seconds) {
        return Err(ConfigError::new(
            format!("{at}.interval_seconds"),
            format!(
                "{} is out of range (expected 1-{MAX_INTERVAL_SECONDS})",
                s.interval_seconds
            ),
        ));
    }
    if !(1..=MAX_TIMEOUT_MS).contains(&s.timeout_ms) {
        return Err(ConfigError::new(
            format!("{at}.timeout_ms"),
            format!(
                "{} is out of range (expected 1-{MAX_TIMEOUT_MS})",
                s.timeout_ms
            ),
        ));
    }
    if s.timeout_ms > s.interval_seconds.saturating_mul(1000) {
        return Err(ConfigError::new(
            format!("{at}.timeout_ms"),
            format!(
                "{} is longer than interval_seconds ({} s): samples would overlap (expected at most {})",
                s.timeout_ms,
                s.interval_seconds,
                s.interval_seconds.saturating_mul(1000)
            ),
        ));
    }
    if !(1..=MAX_BODY_BYTES_LIMIT).contains(&s.max_body_bytes) {
        return Err(ConfigError::new(
            format!("{at}.max_body_bytes"),
            format!(
                "{} is out of range (expected 1-{MAX_BODY_BYTES_LIMIT})",
                s.max_body_bytes
            ),
        ));
    }
    let value_at = format!("{at}.value");
    if s.value.text == Some(false) {
        return Err(ConfigError::new(
            format!("{value_at}.text"),
            "is false (expected true, or leave it out)",
        ));
    }
    match s.value.source() {
        None => Err(ConfigError::new(
            value_at,
            "must set exactly one of json_pointer, json_array_length, header, text",
        )),
        Some(ValueSource::JsonPointer(p)) => check_pointer(&p, &format!("{value_at}.json_pointer")),
        Some(ValueSource::JsonArrayLength(p)) => {
            check_pointer(&p, &format!("{value_at}.json_array_length"))
        }
        Some(ValueSource::Header(h)) if h.trim().is_empty() => Err(ConfigError::new(
            format!("{value_at}.header"),
            "is empty (expected a header name such as \"x-total-count\")",
        )),
        Some(ValueSource::Header(h)) if !is_header_name(&h) => Err(ConfigError::new(
            format!("{value_at}.header"),
            format!("{h:?} is not a header name (expected letters, digits, '-', '_', '.', e.g. \"x-total-count\")"),
        )),
        Some(_) => Ok(()),
    }
}

fn check_pointer(pointer: &str, at: &str) -> Result<(), ConfigError> {
    if pointer.is_empty() || pointer.starts_with('/') {
        Ok(())
    } else {
        Err(ConfigError::new(
            at,
            format!("{pointer:?} is not a JSON pointer (expected \"\" for the root or a path starting with '/')"),
        ))
    }
}

/// matchit panics past 26 parameters in one route; far fewer is already odd.
const MAX_TEMPLATE_PARAMS: usize = 8;

/// A path that is also a route template matchit accepts.
fn check_template(path: &str, at: &str) -> Result<(), ConfigError> {
    check_path(path, at)?;
    if !crate::routes::insertable(path) {
        return Err(ConfigError::new(
            at,
            format!("{path:?} has too many parameters (expected at most {MAX_TEMPLATE_PARAMS})"),
        ));
    }
    let mut router = matchit::Router::new();
    if let Err(e) = router.insert(path, 0usize) {
        return Err(ConfigError::new(
            at,
            format!("{path:?} is not a usable route template: {e}"),
        ));
    }
    let params = router.at(path).map(|m| m.params.len()).unwrap_or(0);
    if params > MAX_TEMPLATE_PARAMS {
        return Err(ConfigError::new(
            at,
            format!("{path:?} has too many parameters (expected at most {MAX_TEMPLATE_PARAMS})"),
        ));
    }
    Ok(())
}

fn check_path(path: &str, at: &str) -> Result<(), ConfigError> {
    let clean = !path
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '?' || c == '#');
    if path.starts_with('/') && clean {
        Ok(())
    } else {
        Err(ConfigError::new(
            at,
            format!("{path:?} is not a path (expected it to start with '/', without query, fragment, spaces or control characters)"),
        ))
    }
}

fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_:.".contains(&b))
}

/// RFC 3986 authority characters (host, port, user info, IPv6 brackets, %-escapes).
fn is_authority(authority: &str) -> bool {
    !authority.is_empty()
        && authority
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@[]%".contains(&b))
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`: what Prometheus takes as a metric or label name.
fn is_identifier(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Metric names as Envoy's `/stats/prometheus` prints them unchanged, `[a-zA-Z_][a-zA-Z0-9_]*`
/// (it turns any other character, ':' included, into '_', so two names could print as one),
/// and not one the filter, Envoy or Istio publishes there.
#[inline(never)] // as validate_match
fn check_metric_name(name: &str, at: &str) -> Result<(), ConfigError> {
    if !is_identifier(name) {
        return Err(ConfigError::new(
            at,
            format!("{name:?} is not a metric name Envoy exports as is (expected [a-zA-Z_][a-zA-Z0-9_]*)"),
        ));
    }
    // In a stat name a metric name follows a `.`: `wasmcustom.` or a label's `;.;`.
    if let Some(captured) = crate::labels::istio_captured(&format!(".{name}")) {
        return Err(ConfigError::new(
            at,
            format!("{name:?} makes {captured:?} in the stat name, which Istio's stats tag regexes would cut out of it into a label of their own (expected another name)"),
        ));
    }
    if crate::labels::ends_like_response_code(name) {
        return Err(ConfigError::new(
            at,
            format!("{name:?} ends like an Envoy response-code stat (_rq_NNN or _rq_Nxx), which Istio's stats tag regexes would cut off into a response_code label (expected another ending)"),
        ));
    }
    let ours = RESERVED_NAMES.iter().any(|r| {
        name == *r
            || (!RESERVED_COUNTERS.contains(r)
                && HISTOGRAM_SUFFIXES
                    .iter()
                    .any(|suffix| name.strip_suffix(suffix) == Some(r)))
    });
    if ours || name.starts_with(SELF_PREFIX) {
        return Err(ConfigError::new(
            at,
            format!("{name:?} is reserved by the filter (expected a name that is not an http_* request metric or one of its series and does not start with {SELF_PREFIX})"),
        ));
    }
    if let Some(prefix) = FOREIGN_PREFIXES.iter().find(|p| name.starts_with(**p)) {
        return Err(ConfigError::new(
            at,
            format!("{name:?} starts with {prefix}, which Envoy's and Istio's own metrics use on the same page (expected another name)"),
        ));
    }
    Ok(())
}

#[cfg(test)]
#[path = "../tests/unit/config.rs"]
mod tests;
