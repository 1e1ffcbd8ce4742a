//! Property tests (proptest) over the three places hostile input reaches: configuration parsing,
//! path templating (handlers and counter paths) and sampler value extraction. Host only: proptest
//! does not build for wasm32-unknown-unknown.
//!
//! Strings are built to be hostile on purpose: `{`, `}`, `?`, `#`, `%`, `*`, `;`, `=`, control
//! characters, any Unicode, `String::from_utf8_lossy` of random bytes, and paths of up to ~60 kB.

use crate::config::{self, Config, ConfigError, Counter, HeaderMatch, Match, ValueSource};
use crate::extract::{sample_value, Answer, SampleError};
use crate::filter::Filter;
use crate::labels::{self, METHODS, STATUS_CLASSES, UNMATCHED_HANDLER};
use crate::metrics::{Completed, Kind, MetricHost, Registry};
use crate::names::{self, LABEL_NAMES};
use crate::proxy::{self, ProxyReason};
use crate::routes::Routes;
use crate::rules::Rules;
use proptest::prelude::*;
use serde_json::{json, Map, Value};
use std::cell::RefCell;
use std::collections::BTreeMap;

// ---------------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------------

/// Short strings that tend to hit edge cases in templates, names and numbers.
fn nasty_string() -> BoxedStrategy<String> {
    prop_oneof![
        "[a-zA-Z0-9_/{}?#%*:;=. -]{0,12}",
        ".{0,10}",
        prop::collection::vec(any::<u8>(), 0..16)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        prop::sample::select(vec![
            "",
            " ",
            "/",
            "//",
            "/login",
            "/users/{id}",
            "/users/{id}/{id}",
            "/{*rest}",
            "/{*rest}/x",
            "/{}",
            "/{",
            "/}",
            "/{{a}}",
            "/a{x}b{y}",
            "/{x}{y}",
            "/a?b",
            "/a#b",
            "/a;b",
            "/a=b",
            "POST",
            "post",
            "2xx",
            "4XX",
            "6xx",
            "401",
            "99",
            "600",
            "x-total-count",
            ":authority",
            "http_requests_total",
            "app_metrics_x",
            "9abc",
        ])
        .prop_map(str::to_string),
    ]
    .boxed()
}

/// Any JSON value (finite numbers only: JSON has no others).
fn any_json() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1000i64..1000).prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        nasty_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(nasty_string(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
    .boxed()
}

/// Mostly plausible values for a field, sometimes anything at all.
fn field(plausible: BoxedStrategy<Value>) -> BoxedStrategy<Value> {
    prop_oneof![4 => plausible, 1 => any_json()].boxed()
}

/// An object with some of the given (real) fields and, now and then, an unknown one.
fn object(fields: Vec<(&'static str, BoxedStrategy<Value>)>) -> BoxedStrategy<Value> {
    let present: Vec<_> = fields
        .into_iter()
        .map(|(name, strategy)| prop::option::weighted(0.7, strategy).prop_map(move |v| (name, v)))
        .collect();
    (
        present,
        prop::option::weighted(0.1, ("[a-z_]{0,8}", any_json())),
    )
        .prop_map(|(fields, extra)| {
            let mut map = Map::new();
            for (name, value) in fields {
                if let Some(value) = value {
                    map.insert(name.to_string(), value);
                }
            }
            if let Some((name, value)) = extra {
                map.insert(name, value);
            }
            Value::Object(map)
        })
        .boxed()
}

fn string_field() -> BoxedStrategy<Value> {
    field(nasty_string().prop_map(Value::String).boxed())
}

fn number_field() -> BoxedStrategy<Value> {
    field(
        prop_oneof![
            prop::sample::select(vec![
                json!(0),
                json!(1),
                json!(30),
                json!(60_000),
                json!(60_001),
                json!(86_400),
                json!(86_401),
                json!(16_777_216),
                json!(16_777_217),
                json!(u64::MAX),
                json!(-1),
                json!(1.5),
                json!("30"),
            ]),
            any::<u64>().prop_map(Value::from),
        ]
        .boxed(),
    )
}

fn headers_field() -> BoxedStrategy<Value> {
    field(
        prop::collection::btree_map(
            prop_oneof!["[a-zA-Z0-9_:.-]{1,10}", nasty_string()],
            prop_oneof![
                any::<bool>().prop_map(Value::from),
                nasty_string().prop_map(Value::String),
                any_json(),
            ],
            0..3,
        )
        .prop_map(|m| Value::Object(m.into_iter().collect()))
        .boxed(),
    )
}

fn status_field() -> BoxedStrategy<Value> {
    let entry = prop_oneof![
        (0u64..1000).prop_map(Value::from),
        prop::sample::select(vec![
            "1xx", "2xx", "5XX", "0xx", "6xx", "2x", "200", "abc", ""
        ])
        .prop_map(Value::from),
        any_json(),
    ];
    field(
        prop::collection::vec(entry, 0..4)
            .prop_map(Value::Array)
            .boxed(),
    )
}

fn templates_field() -> BoxedStrategy<Value> {
    field(
        prop::collection::vec(nasty_string().prop_map(Value::String), 0..5)
            .prop_map(Value::Array)
            .boxed(),
    )
}

/// Dynamic labels shaped like the real ones, with random names, headers and values.
fn labels_field() -> BoxedStrategy<Value> {
    let label = object(vec![
        ("name", string_field()),
        ("request_header", string_field()),
        ("response_header", string_field()),
        ("values", templates_field()),
    ]);
    field(
        prop::collection::vec(field(label), 0..5)
            .prop_map(Value::Array)
            .boxed(),
    )
}

/// Configurations shaped like the real one (real field names at every level) with random values.
fn config_shaped_json() -> BoxedStrategy<Value> {
    let matches = object(vec![
        ("method", string_field()),
        ("path", string_field()),
        ("status", status_field()),
        ("request_headers", headers_field()),
        ("response_headers", headers_field()),
    ]);
    let counter = object(vec![
        ("name", string_field()),
        ("help", string_field()),
        ("match", field(matches)),
        ("labels", labels_field()),
    ]);
    let http = object(vec![
        (
            "enabled",
            field(any::<bool>().prop_map(Value::from).boxed()),
        ),
        ("handlers", templates_field()),
        ("excluded_handlers", templates_field()),
        (
            "total_duration",
            field(any::<bool>().prop_map(Value::from).boxed()),
        ),
        ("labels", labels_field()),
    ]);
    let value = object(vec![
        ("json_pointer", string_field()),
        ("json_array_length", string_field()),
        ("header", string_field()),
        ("text", field(any::<bool>().prop_map(Value::from).boxed())),
    ]);
    let sampler = object(vec![
        ("name", string_field()),
        ("help", string_field()),
        ("cluster", string_field()),
        ("authority", string_field()),
        ("path", string_field()),
        ("interval_seconds", number_field()),
        ("timeout_ms", number_field()),
        ("max_body_bytes", number_field()),
        ("value", field(value)),
    ]);
    object(vec![
        (
            "counters",
            field(
                prop::collection::vec(field(counter), 0..4)
                    .prop_map(Value::Array)
                    .boxed(),
            ),
        ),
        ("http_metrics", field(http)),
        (
            "samplers",
            field(
                prop::collection::vec(field(sampler), 0..3)
                    .prop_map(Value::Array)
                    .boxed(),
            ),
        ),
        (
            "labels",
            field(
                prop::collection::btree_map(nasty_string(), string_field(), 0..3)
                    .prop_map(|m| Value::Object(m.into_iter().collect()))
                    .boxed(),
            ),
        ),
    ])
}

/// A path segment a template parameter must match: non-empty, no '/', and no '?' or '#' (those
/// start the query or fragment, which matching ignores).
fn segment() -> BoxedStrategy<String> {
    prop_oneof![
        "[^/?#]{1,12}",
        "[{}%*;=.a-z0-9]{1,12}",
        prop::collection::vec(any::<u8>(), 1..16).prop_filter_map("empty or has / ? #", |b| {
            let s = String::from_utf8_lossy(&b).into_owned();
            (!s.contains(['/', '?', '#'])).then_some(s)
        }),
        (1usize..2000).prop_map(|n| "x{}%*".repeat(n)),
    ]
    .boxed()
}

/// Paths as a client could send them, and worse.
fn hostile_path() -> BoxedStrategy<String> {
    prop_oneof![
        "(/[a-z0-9{}?#%*.]{0,6}){0,6}",
        "[/{}?#%*a-z0-9.]{0,40}",
        ".{0,40}",
        prop::collection::vec(any::<u8>(), 0..64)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        (
            prop::sample::select(vec![
                "/", "{", "}", "?", "%", "*", "/{id}", "/a", "\u{fffd}"
            ]),
            1usize..60_000
        )
            .prop_map(|(s, n)| s.repeat(n)),
        (segment(), "[?#]?.{0,8}").prop_map(|(s, q)| format!("/users/{s}{q}")),
        prop::sample::select(vec![
            "",
            "/",
            "/users",
            "/users/",
            "/users/count",
            "/login?x",
            "?",
            "#"
        ])
        .prop_map(str::to_string),
    ]
    .boxed()
}

/// A static template segment.
fn static_segment() -> impl Strategy<Value = String> {
    "[a-z0-9_.-]{1,6}"
}

/// `/h{i}` + optional `/{id}` + optional static suffix, or `/h{i}/{*rest}`: distinct first
/// segments, so no two templates conflict.
fn handler_templates(prefix: &'static str) -> BoxedStrategy<Vec<String>> {
    prop::collection::vec((0u8..4, prop::option::of(static_segment())), 0..5)
        .prop_map(move |shapes| {
            shapes
                .into_iter()
                .enumerate()
                .map(|(i, (shape, suffix))| {
                    let suffix = suffix.map(|s| format!("/{s}")).unwrap_or_default();
                    match shape {
                        0 => format!("/{prefix}{i}{suffix}"),
                        1 => format!("/{prefix}{i}/{{id}}{suffix}"),
                        2 => format!("/{prefix}{i}/{{*rest}}"),
                        _ => format!("/{prefix}{i}/v{{n}}.json"),
                    }
                })
                .collect()
        })
        .boxed()
}

/// A concrete path for a template from [`handler_templates`].
fn instantiate(template: &str, value: &str) -> String {
    template
        .replace("{id}", value)
        .replace("{*rest}", value)
        .replace("{n}", value)
}

#[derive(Debug, Clone)]
struct ValidCounter {
    name: String,
    help: String,
    method: Option<String>,
    path: Option<String>,
    /// (JSON form, expected status that must match).
    status: Option<Vec<(Value, u16)>>,
    request_headers: BTreeMap<String, HeaderMatch>,
    response_headers: BTreeMap<String, HeaderMatch>,
}

#[derive(Debug, Clone)]
struct ValidSampler {
    name: String,
    cluster: String,
    authority: Option<String>,
    path: String,
    interval: u64,
    timeout: u64,
    max_body: usize,
    source: ValueSource,
}

#[derive(Debug, Clone)]
struct ValidConfig {
    counters: Vec<ValidCounter>,
    enabled: bool,
    handlers: Vec<String>,
    excluded: Vec<String>,
    total_duration: bool,
    samplers: Vec<ValidSampler>,
}

fn header_matches() -> impl Strategy<Value = BTreeMap<String, HeaderMatch>> {
    prop::collection::btree_map(
        "[a-z][a-z0-9_.-]{0,8}|:[a-z]{1,8}",
        prop_oneof![
            any::<bool>().prop_map(HeaderMatch::Present),
            ".{0,8}".prop_map(HeaderMatch::Exact),
        ],
        0..3,
    )
}

fn status_entry() -> impl Strategy<Value = (Value, u16)> {
    prop_oneof![
        (100u16..600).prop_map(|c| (json!(c), c)),
        (100u16..600).prop_map(|c| (json!(c.to_string()), c)),
        (1u16..6, any::<bool>(), 0u16..100).prop_map(|(class, upper, rest)| {
            let text = if upper {
                format!("{class}XX")
            } else {
                format!("{class}xx")
            };
            (json!(text), class * 100 + rest)
        }),
    ]
}

fn valid_counter(i: usize) -> impl Strategy<Value = ValidCounter> {
    (
        "[a-z0-9_]{0,10}",
        ".{0,12}",
        prop::option::of("[A-Z]{1,7}"),
        prop::option::of(prop_oneof![
            "(/[a-z0-9_.-]{1,6}){1,3}".boxed(),
            handler_templates("p")
                .prop_filter_map("no template", |t| t.into_iter().next())
                .boxed(),
        ]),
        prop::option::of(prop::collection::vec(status_entry(), 1..4)),
        header_matches(),
        header_matches(),
    )
        .prop_map(
            move |(suffix, help, method, path, status, request_headers, response_headers)| {
                ValidCounter {
                    name: format!("c{i}_{suffix}"),
                    help,
                    method,
                    path,
                    status,
                    request_headers,
                    response_headers,
                }
            },
        )
}

fn valid_sampler(i: usize) -> impl Strategy<Value = ValidSampler> {
    let source = prop_oneof![
        "|(/[a-z0-9~]{0,4}){1,3}".prop_map(ValueSource::JsonPointer),
        "|(/[a-z0-9~]{0,4}){1,3}".prop_map(ValueSource::JsonArrayLength),
        "[a-zA-Z][a-zA-Z0-9-]{0,10}".prop_map(ValueSource::Header),
        Just(ValueSource::Text),
    ];
    (
        "[a-z0-9_]{0,8}",
        "[a-z][a-z0-9_.-]{0,10}",
        prop::option::of("[a-z][a-z0-9.:-]{0,10}"),
        "(/[a-z0-9_.{}-]{1,6}){1,3}",
        1u64..=86_400,
        1u64..=60_000,
        1usize..=16 * 1024 * 1024,
        source,
    )
        .prop_map(
            move |(suffix, cluster, authority, path, interval, timeout, max_body, source)| {
                ValidSampler {
                    name: format!("s{i}_{suffix}"),
                    cluster,
                    authority,
                    path,
                    interval,
                    // At most the interval (or the validation refuses it).
                    timeout: 1 + (timeout - 1) % interval.saturating_mul(1000).min(60_000),
                    max_body,
                    source,
                }
            },
        )
}

fn valid_config() -> impl Strategy<Value = ValidConfig> {
    (
        (0usize..4).prop_flat_map(|n| (0..n).map(valid_counter).collect::<Vec<_>>()),
        any::<bool>(),
        handler_templates("h"),
        handler_templates("x"),
        any::<bool>(),
        (0usize..3).prop_flat_map(|n| (0..n).map(valid_sampler).collect::<Vec<_>>()),
    )
        .prop_map(
            |(counters, enabled, handlers, excluded, total_duration, samplers)| ValidConfig {
                counters,
                enabled,
                handlers,
                excluded,
                total_duration,
                samplers,
            },
        )
}

fn header_json(headers: &BTreeMap<String, HeaderMatch>) -> Value {
    Value::Object(
        headers
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    HeaderMatch::Exact(s) => json!(s),
                    HeaderMatch::Present(b) => json!(b),
                };
                (k.clone(), v)
            })
            .collect(),
    )
}

fn to_json(c: &ValidConfig) -> Value {
    let counters: Vec<Value> = c
        .counters
        .iter()
        .map(|k| {
            let mut m = Map::new();
            if let Some(method) = &k.method {
                m.insert("method".into(), json!(method));
            }
            if let Some(path) = &k.path {
                m.insert("path".into(), json!(path));
            }
            if let Some(status) = &k.status {
                m.insert(
                    "status".into(),
                    Value::Array(status.iter().map(|(v, _)| v.clone()).collect()),
                );
            }
            m.insert("request_headers".into(), header_json(&k.request_headers));
            m.insert("response_headers".into(), header_json(&k.response_headers));
            json!({"name": k.name, "help": k.help, "match": m})
        })
        .collect();
    let samplers: Vec<Value> = c
        .samplers
        .iter()
        .map(|s| {
            let value = match &s.source {
                ValueSource::JsonPointer(p) => json!({"json_pointer": p}),
                ValueSource::JsonArrayLength(p) => json!({"json_array_length": p}),
                ValueSource::Header(h) => json!({"header": h}),
                ValueSource::Text => json!({"text": true}),
            };
            let mut o = json!({
                "name": s.name, "cluster": s.cluster, "path": s.path,
                "interval_seconds": s.interval, "timeout_ms": s.timeout,
                "max_body_bytes": s.max_body, "value": value,
            });
            if let (Some(a), Some(obj)) = (&s.authority, o.as_object_mut()) {
                obj.insert("authority".into(), json!(a));
            }
            o
        })
        .collect();
    json!({
        "counters": counters,
        "http_metrics": {"enabled": c.enabled, "handlers": c.handlers, "excluded_handlers": c.excluded,
                         "total_duration": c.total_duration},
        "samplers": samplers,
    })
}

/// Records every stat name the registry defines.
#[derive(Default)]
struct NameHost {
    names: RefCell<Vec<(Kind, String)>>,
}

impl MetricHost for NameHost {
    fn define(&self, kind: Kind, name: &str) -> Option<u32> {
        let mut names = self.names.borrow_mut();
        names.push((kind, name.to_string()));
        u32::try_from(names.len() - 1).ok()
    }
    fn increment(&self, _: u32, _: u64) -> bool {
        true
    }
    fn record(&self, _: u32, _: u64) -> bool {
        true
    }
}

fn config_error_is_described(e: &ConfigError) -> Result<(), TestCaseError> {
    prop_assert!(!e.path.is_empty(), "empty path in {:?}", e);
    prop_assert!(!e.message.trim().is_empty(), "empty message in {:?}", e);
    Ok(())
}

/// What a successful parse must also satisfy: it validates again, and every validated handler
/// template is kept by the router (none silently dropped).
fn accepted_config_is_usable(config: &Config) -> Result<(), TestCaseError> {
    prop_assert_eq!(config::validate(config), Ok(()));
    let handlers = Routes::new(&config.http_metrics.handlers).map_or(0, |r| r.len());
    prop_assert_eq!(handlers, config.http_metrics.handlers.len());
    let excluded = Routes::new(&config.http_metrics.excluded_handlers).map_or(0, |r| r.len());
    prop_assert_eq!(excluded, config.http_metrics.excluded_handlers.len());
    let filter = Filter::new(config);
    let _ = filter.classify(b"GET", Some("/"), &[]);
    Ok(())
}

/// Independent check of an `Ok(v)` from [`sample_value`]: the raw value is a non-negative integer
/// equal to `v`.
fn number_text_is(raw: &[u8], v: u64) -> Result<(), TestCaseError> {
    let text = std::str::from_utf8(raw);
    prop_assert!(text.is_ok(), "Ok({}) from non-UTF-8 {:?}", v, raw);
    let text = text.unwrap_or_default().trim();
    // As serde_json reads it (the module's one number parser): without its `float_roundtrip`
    // feature a float may land one unit in the last place from Rust's own parse, which then
    // decides whether it has a fraction (4.4813250964991355e15).
    let f: Result<f64, _> = serde_json::from_str::<f64>(text)
        .map_err(|_| ())
        .or_else(|_| text.parse().map_err(|_| ()));
    prop_assert!(f.is_ok(), "Ok({}) from non-number {:?}", v, text);
    let f = f.unwrap_or(f64::NAN);
    prop_assert!(
        f.is_finite() && f >= 0.0 && f.fract() == 0.0 && v as f64 == f,
        "Ok({}) from {:?}",
        v,
        text
    );
    Ok(())
}

fn json_number_is(value: &Value, v: u64) -> Result<(), TestCaseError> {
    prop_assert!(value.is_number(), "Ok({}) from non-number {}", v, value);
    let exact = value.as_u64() == Some(v);
    let integral = value
        .as_f64()
        .is_some_and(|f| f >= 0.0 && f.fract() == 0.0 && v as f64 == f);
    prop_assert!(exact || integral, "Ok({}) from {}", v, value);
    Ok(())
}

fn pointer() -> BoxedStrategy<String> {
    prop_oneof!["|(/[ab0~1]{0,2}){1,3}", nasty_string(),].boxed()
}

fn body() -> BoxedStrategy<Vec<u8>> {
    let number_text = prop_oneof![
        any::<u64>().prop_map(|n| n.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| f.to_string()),
        any::<f64>().prop_map(|f| format!("{f:e}")),
        prop::sample::select(vec![
            "0",
            "-0",
            "+5",
            "1e3",
            "1E19",
            "1e20",
            "0x10",
            "1_000",
            "inf",
            "-inf",
            "NaN",
            "infinity",
            "42.0",
            "42.5",
            "-1",
            "18446744073709551615",
            "18446744073709551616",
            "18446744073709551615.0",
            "9007199254740993",
            "1.8446744073709552e19",
            " ",
            "",
            "\u{a0}7",
        ])
        .prop_map(str::to_string),
    ];
    let doc_keys = prop::collection::btree_map("[ab0~]{1,2}", any_json(), 0..3)
        .prop_map(|m| Value::Object(m.into_iter().collect()));
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..64),
        ("[ \t\r\n]{0,2}", number_text, "[ \t\r\n]{0,2}")
            .prop_map(|(a, n, b)| format!("{a}{n}{b}").into_bytes()),
        any_json().prop_map(|v| v.to_string().into_bytes()),
        doc_keys.prop_map(|v| v.to_string().into_bytes()),
        (1usize..100_000).prop_map(|n| "[".repeat(n).into_bytes()),
    ]
    .boxed()
}

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

/// 512 cases each (about 3 s for all of them in a debug build on 2 cores); `PROPTEST_CASES`
/// overrides.
fn config() -> ProptestConfig {
    let default = ProptestConfig::default();
    let cases = match std::env::var("PROPTEST_CASES") {
        Ok(_) => default.cases,
        Err(_) => 512,
    };
    ProptestConfig { cases, ..default }
}

proptest! {
    #![proptest_config(config())]

    /// Arbitrary bytes: never a panic, and every refusal names a field path and a reason.
    #[test]
    fn parse_never_panics_on_bytes(
        bytes in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..256),
            prop::collection::vec(any::<u8>(), 0..256).prop_map(|mut b| { b.insert(0, b'{'); b }),
            ".{0,64}".prop_map(|s| format!("{{{s}").into_bytes()),
        ]
    ) {
        match config::parse(&bytes) {
            Ok(config) => accepted_config_is_usable(&config)?,
            Err(e) => config_error_is_described(&e)?,
        }
    }

    /// Arbitrary JSON values, and objects with the real field names at every level holding
    /// random values: same as above.
    #[test]
    fn parse_never_panics_on_json(
        value in prop_oneof![1 => any_json(), 4 => config_shaped_json()],
        pretty in any::<bool>(),
    ) {
        let text = if pretty {
            serde_json::to_vec_pretty(&value)
        } else {
            serde_json::to_vec(&value)
        };
        let text = text.unwrap_or_default();
        match config::parse(&text) {
            Ok(config) => accepted_config_is_usable(&config)?,
            Err(e) => config_error_is_described(&e)?,
        }
    }

    /// A valid configuration always parses, keeps what it said, and its handlers classify their
    /// own paths.
    #[test]
    fn valid_config_parses_and_round_trips(valid in valid_config(), value in segment()) {
        let text = to_json(&valid).to_string();
        let parsed = config::parse(text.as_bytes());
        prop_assert!(parsed.is_ok(), "refused {}: {:?}", text, parsed);
        let config = parsed.unwrap_or_default();

        prop_assert_eq!(config.counters.len(), valid.counters.len());
        for (got, want) in config.counters.iter().zip(&valid.counters) {
            prop_assert_eq!(&got.name, &want.name);
            prop_assert_eq!(&got.help, &want.help);
            prop_assert_eq!(&got.matches.method, &want.method);
            prop_assert_eq!(&got.matches.path, &want.path);
            prop_assert_eq!(&got.matches.request_headers, &want.request_headers);
            prop_assert_eq!(&got.matches.response_headers, &want.response_headers);
            match (&got.matches.status, &want.status) {
                (None, None) => {}
                (Some(got), Some(want)) => {
                    prop_assert_eq!(got.len(), want.len());
                    for (g, (_, status)) in got.iter().zip(want) {
                        prop_assert!(g.matches(*status), "{:?} does not match {}", g, status);
                    }
                }
                (got, want) => prop_assert!(false, "status {:?} vs {:?}", got, want),
            }
        }
        prop_assert_eq!(config.http_metrics.enabled, valid.enabled);
        prop_assert_eq!(&config.http_metrics.handlers, &valid.handlers);
        prop_assert_eq!(&config.http_metrics.excluded_handlers, &valid.excluded);
        prop_assert_eq!(config.http_metrics.total_duration, valid.total_duration);
        prop_assert_eq!(config.samplers.len(), valid.samplers.len());
        for (got, want) in config.samplers.iter().zip(&valid.samplers) {
            prop_assert_eq!(&got.name, &want.name);
            prop_assert_eq!(&got.cluster, &want.cluster);
            prop_assert_eq!(got.authority(), want.authority.as_deref().unwrap_or(&want.cluster).to_string());
            prop_assert_eq!(&got.path, &want.path);
            prop_assert_eq!(got.interval_seconds, want.interval);
            prop_assert_eq!(got.timeout_ms, want.timeout);
            prop_assert_eq!(got.max_body_bytes, want.max_body);
            let want_source = match &want.source {
                ValueSource::Header(h) => ValueSource::Header(h.to_ascii_lowercase()),
                other => other.clone(),
            };
            prop_assert_eq!(&got.value, &want_source);
        }

        // Each handler template classifies its own instances; excluded ones are not counted.
        let filter = Filter::new(&config);
        prop_assert_eq!(filter.rules.rules.len(), valid.counters.len());
        if let Some(http) = &filter.http {
            for template in &valid.handlers {
                let path = instantiate(template, &value);
                let e = filter.classify(b"GET", Some(&path), &[]);
                let label = e.handler.map(|h| http.handler_label(h));
                prop_assert_eq!(label, Some(template.as_str()), "path {:?}", path);
            }
            for template in &valid.excluded {
                let path = instantiate(template, &value);
                prop_assert_eq!(filter.classify(b"GET", Some(&path), &[]).handler, None);
            }
        } else {
            prop_assert!(!valid.enabled);
        }
        // Counter paths match their own instances.
        for (i, counter) in valid.counters.iter().enumerate() {
            if let Some(template) = &counter.path {
                let path = instantiate(template, &value);
                let method = counter.method.clone().unwrap_or_else(|| "GET".into());
                let headers: Vec<Option<Vec<u8>>> = filter
                    .rules
                    .request_headers
                    .iter()
                    .map(|name| {
                        counter
                            .request_headers
                            .iter()
                            .find(|(k, _)| k.to_ascii_lowercase() == *name)
                            .and_then(|(_, m)| match m {
                                HeaderMatch::Exact(v) => Some(v.clone().into_bytes()),
                                HeaderMatch::Present(true) => Some(b"x".to_vec()),
                                HeaderMatch::Present(false) => None,
                            })
                    })
                    .collect();
                let headers: Vec<Option<&[u8]>> = headers.iter().map(Option::as_deref).collect();
                let candidates = filter.rules.candidates(method.as_bytes(), Some(&path), &headers);
                prop_assert!(candidates.contains(&i), "{:?} {:?} -> {:?}", counter, path, candidates);
            }
        }
    }

    /// Routes::find never panics, and only ever returns a configured template.
    #[test]
    fn routes_find_never_panics(
        templates in prop_oneof![
            prop::collection::vec(nasty_string(), 0..6),
            handler_templates("h"),
        ],
        paths in prop::collection::vec(hostile_path(), 1..4),
    ) {
        let routes = Routes::accepting(&templates);
        prop_assert!(routes.len() <= templates.len());
        for path in &paths {
            if let Some(i) = routes.find(path) {
                let template = routes.template(i);
                prop_assert!(template.is_some_and(|t| templates.iter().any(|c| c == t)));
            }
        }
    }

    /// Rules::new / candidates / confirm never panic, even on templates that skipped validation.
    #[test]
    fn rules_never_panic(
        rules in prop::collection::vec(
            (
                prop::option::of(nasty_string()),
                prop::option::of(prop_oneof![nasty_string(), hostile_path()]),
                prop::collection::btree_map(nasty_string(), prop_oneof![
                    any::<bool>().prop_map(HeaderMatch::Present),
                    nasty_string().prop_map(HeaderMatch::Exact),
                ], 0..3),
            ),
            0..4,
        ),
        method in prop::collection::vec(any::<u8>(), 0..12),
        path in prop::option::of(hostile_path()),
        headers in prop::collection::vec(prop::option::of(prop::collection::vec(any::<u8>(), 0..8)), 0..4),
        status in any::<u16>(),
    ) {
        let counters: Vec<Counter> = rules
            .into_iter()
            .enumerate()
            .map(|(i, (method, path, request_headers))| Counter {
                name: format!("c{i}"),
                help: String::new(),
                matches: Match {
                    method,
                    path,
                    status: None,
                    response_headers: request_headers.clone(),
                    request_headers,
                    ..Match::default()
                },
                labels: Vec::new(),
                increment: None,
                max_body_bytes: None,
            })
            .collect();
        let rules = Rules::new(&counters);
        let headers: Vec<Option<&[u8]>> = headers.iter().map(Option::as_deref).collect();
        let candidates = rules.candidates(&method, path.as_deref(), &headers);
        prop_assert!(candidates.windows(2).all(|w| w.first() < w.get(1)));
        prop_assert!(candidates.iter().all(|&i| i < counters.len()));
        for i in candidates.into_iter().chain([counters.len(), usize::MAX]) {
            let _ = rules.confirm(i, Some(status), &headers);
            let _ = rules.confirm(i, None, &headers);
        }
    }

    /// A template with `{x}` matches every path that puts a non-empty segment without '/' in its
    /// place (a query or fragment after it is ignored), in handlers and in counter paths alike.
    #[test]
    fn parameter_matches_any_segment(
        before in prop::collection::vec(static_segment(), 0..3),
        name in "[a-z_][a-z0-9_]{0,5}",
        after in prop::collection::vec(static_segment(), 0..3),
        value in segment(),
        query in prop::option::of("[?#].{0,10}"),
    ) {
        let mut template = String::new();
        let mut path = String::new();
        for s in &before {
            template += &format!("/{s}");
            path += &format!("/{s}");
        }
        template += &format!("/{{{name}}}");
        path += &format!("/{value}");
        for s in &after {
            template += &format!("/{s}");
            path += &format!("/{s}");
        }
        path += query.as_deref().unwrap_or("");

        let routes = Routes::accepting(std::slice::from_ref(&template));
        prop_assert_eq!(routes.len(), 1);
        prop_assert_eq!(routes.find(&path), Some(0), "template {:?} path {:?}", template, path);

        let config = json!({"counters": [{"name": "c", "match": {"path": template}}],
                            "http_metrics": {"handlers": [template]}});
        let parsed = config::parse(config.to_string().as_bytes());
        prop_assert!(parsed.is_ok(), "{:?}", parsed);
        let filter = Filter::new(&parsed.unwrap_or_default());
        let e = filter.classify(b"GET", Some(&path), &[]);
        prop_assert_eq!(e.candidates, vec![0]);
        let label = e.handler.and_then(|h| filter.http.as_ref().map(|http| http.handler_label(h)));
        prop_assert_eq!(label, Some(template.as_str()));
    }

    /// No request data becomes a label: whatever the request, the handler is a configured
    /// template or "none", and every stat the registry defines has only label values from fixed
    /// sets or the configuration.
    #[test]
    fn no_request_data_in_labels(
        config in prop_oneof![
            valid_config().prop_map(|v| to_json(&v)),
            config_shaped_json(),
        ],
        requests in prop::collection::vec(
            (
                prop_oneof![
                    prop::sample::select(METHODS.to_vec()).prop_map(|m| m.as_bytes().to_vec()),
                    prop::collection::vec(any::<u8>(), 0..10),
                ],
                prop::option::of(hostile_path()),
                prop::option::of(any::<u16>()),
                prop::option::of(any::<u64>()),
                // Envoy's response code details for an answer without the app's header.
                prop::option::of(prop::option::of(prop_oneof![
                    prop::collection::vec(any::<u8>(), 0..48),
                    prop::sample::select(vec![
                        "via_upstream", "no_healthy_upstream", "route_not_found",
                        "upstream_reset_before_response_started{overflow}",
                        "upstream_reset_before_response_started{remote_connection_failure|x}",
                    ]).prop_map(|d| d.as_bytes().to_vec()),
                ])),
            ),
            1..6,
        ),
    ) {
        let Ok(config) = config::parse(config.to_string().as_bytes()) else {
            return Ok(());
        };
        let filter = Filter::new(&config);
        let host = NameHost::default();
        let mut registry = Registry::new(&filter, &host);
        let handlers = &config.http_metrics.handlers;
        for (method, path, status, duration, details) in &requests {
            let headers = vec![Some(&b"v"[..]); filter.rules.request_headers.len()];
            let e = filter.classify(method, path.as_deref(), &headers);
            if let (Some(http), Some(h)) = (&filter.http, e.handler) {
                prop_assert!(h < http.handler_count());
                let label = http.handler_label(h);
                prop_assert!(label == UNMATCHED_HANDLER || handlers.iter().any(|t| t == label));
            }
            prop_assert!(e.candidates.iter().all(|&i| i < config.counters.len()));
            let response_headers = vec![None; filter.rules.response_headers.len()];
            let done = Completed {
                exchange: &e,
                request_headers: &headers,
                status: *status,
                response_headers: &response_headers,
                duration_ms: *duration,
                proxy: details.as_ref().and_then(|d| proxy::classify(d.as_deref())),
                total_ms: *duration,
                request_bytes: 1,
                response_bytes: 2,
                bodies: None,
            };
            registry.record(&filter, &host, &done);
        }
        let own = [
            names::REQUESTS_TOTAL,
            names::PROXY_RESPONSES,
            names::DURATION,
            names::TOTAL_DURATION,
            names::REQUEST_SIZE,
            names::RESPONSE_SIZE,
        ];
        // Constant labels lead every stat name, as configured.
        let constant: Vec<String> = config.labels.iter().map(|(k, v)| format!("{k}=.={v}")).collect();
        // A dynamic label reads one of its values, `other` or `none`.
        let dynamic = |labels: &[config::LabelSpec], key: &str, value: &str| {
            labels.iter().any(|l| {
                l.name == key
                    && (value == labels::OTHER_VALUE
                        || value == labels::ABSENT_VALUE
                        || l.values.iter().any(|v| v == value))
            })
        };
        for (_, name) in host.names.borrow().iter() {
            let mut parts: Vec<&str> = name.split(";.;").collect();
            let metric = parts.pop().unwrap_or_default();
            prop_assert!(parts.len() >= constant.len() && parts[..constant.len()] == constant[..],
                "stat {:?} without the constant labels {:?}", name, constant);
            let parts = &parts[constant.len()..];
            let counter = config.counters.iter().find(|c| c.name == metric);
            if parts.is_empty() {
                prop_assert!(counter.is_some()
                    || config.samplers.iter().any(|s| s.name == metric), "stat {:?}", name);
                continue;
            }
            prop_assert!(own.contains(&metric) || counter.is_some(), "stat {:?}", name);
            for part in parts {
                let (key, value) = part.split_once("=.=").unwrap_or_default();
                let allowed = match (counter, key) {
                    (Some(c), _) => dynamic(&c.labels, key, value),
                    (None, "handler") => value == UNMATCHED_HANDLER || handlers.iter().any(|t| t == value),
                    (None, "method") => value == "other" || METHODS.contains(&value),
                    (None, "status") => value == "other" || STATUS_CLASSES.contains(&value),
                    (None, "reason") => metric == names::PROXY_RESPONSES
                        && ProxyReason::ALL.iter().any(|r| r.label() == value),
                    (None, _) => !LABEL_NAMES.contains(&key) && dynamic(&config.http_metrics.labels, key, value),
                };
                prop_assert!(allowed, "label {}={:?} in {:?}", key, value, name);
            }
        }
    }

    /// Dynamic labels stay within their configured sets whatever the headers hold, constant
    /// labels are on every series, and the series defined never exceed `config::series_bound`.
    #[test]
    fn dynamic_labels_stay_bounded(
        service in "[a-z][a-z0-9-]{0,10}",
        http_values in prop::collection::btree_set("[a-zA-Z0-9._/-]{1,6}", 1..4),
        counter_values in prop::collection::btree_set("[a-z]{1,3}", 1..3),
        requests in prop::collection::vec(
            (
                prop::sample::select(vec!["GET", "POST", "BREW"]),
                prop::sample::select(vec!["/login", "/users/7", "/x"]),
                prop::option::of(prop_oneof![
                    "[a-zA-Z0-9._/-]{1,6}".prop_map(String::into_bytes),
                    prop::collection::vec(any::<u8>(), 0..8),
                ]),
                prop::option::of(prop_oneof![
                    "[a-z]{1,3}".prop_map(String::into_bytes),
                    prop::collection::vec(any::<u8>(), 0..8),
                ]),
                prop::option::of(100u16..700),
            ),
            1..40,
        ),
    ) {
        let http_values: Vec<String> = http_values
            .into_iter()
            .filter(|v| v != "other" && v != "none" && crate::istio::captured(crate::istio::Place::LabelValue, v).is_none())
            .collect();
        prop_assume!(!http_values.is_empty());
        let counter_values: Vec<String> = counter_values
            .into_iter()
            .filter(|v| v != "other" && v != "none")
            .collect();
        prop_assume!(!counter_values.is_empty());
        let config = json!({
            "labels": {"service": service},
            "counters": [
                {"name": "a_total", "match": {"method": "POST"},
                 "labels": [{"name": "tier", "request_header": "x-tier", "values": counter_values}]},
                {"name": "b_total", "match": {}}
            ],
            "http_metrics": {"handlers": ["/login", "/users/{id}"], "labels": [
                {"name": "client", "request_header": "x-client", "values": http_values},
                {"name": "tier", "response_header": "x-tier", "values": counter_values}]},
        });
        let parsed = config::parse(config.to_string().as_bytes());
        prop_assert!(parsed.is_ok(), "{:?}", parsed);
        let config = parsed.unwrap_or_default();
        let filter = Filter::new(&config);
        let host = NameHost::default();
        let mut registry = Registry::new(&filter, &host);
        for (method, path, client, tier, status) in &requests {
            // The request's x-tier and x-client, at the label headers' places.
            let request: Vec<Option<&[u8]>> = vec![tier.as_deref(), client.as_deref()];
            prop_assert_eq!(&filter.request_names[3..], ["x-tier", "x-client"]);
            let response: Vec<Option<&[u8]>> = vec![tier.as_deref()];
            let e = filter.classify(method.as_bytes(), Some(path), &request);
            let done = Completed {
                exchange: &e,
                request_headers: &request,
                status: *status,
                response_headers: &response,
                duration_ms: Some(1),
                proxy: None,
                total_ms: None,
                request_bytes: 0,
                response_bytes: 0,
                bodies: None,
            };
            prop_assert!(registry.record(&filter, &host, &done));
        }
        let names = host.names.borrow();
        let bound = config::series_bound(&config);
        // Every name defined once (NameHost records each define) and within the bound, less
        // `app_metrics_config_valid`, which the glue defines.
        prop_assert!((names.len() as u64) < bound.total());
        let mut unique: Vec<&String> = names.iter().map(|(_, n)| n).collect();
        unique.sort();
        unique.dedup();
        prop_assert_eq!(unique.len(), names.len());
        let allowed = |values: &[String], v: &str| v == "other" || v == "none" || values.iter().any(|w| w == v);
        for (_, name) in names.iter() {
            let mut parts: Vec<&str> = name.split(";.;").collect();
            parts.pop();
            let first = format!("service=.={service}");
            prop_assert_eq!(parts.first().copied(), Some(first.as_str()));
            for part in parts {
                let (key, value) = part.split_once("=.=").unwrap_or_default();
                let ok = match key {
                    "service" => value == service,
                    "client" => allowed(&http_values, value),
                    "tier" => allowed(&counter_values, value),
                    "handler" => ["/login", "/users/{id}", "none"].contains(&value),
                    "method" => value == "other" || METHODS.contains(&value),
                    "status" => value == "other" || STATUS_CLASSES.contains(&value),
                    _ => false,
                };
                prop_assert!(ok, "label {}={:?} in {:?}", key, value, name);
            }
        }
    }

    /// sample_value never panics, and an Ok is always a non-negative integer really present in
    /// the answer.
    #[test]
    fn sample_value_never_panics(
        source in prop_oneof![
            pointer().prop_map(ValueSource::JsonPointer),
            pointer().prop_map(ValueSource::JsonArrayLength),
            nasty_string().prop_map(ValueSource::Header),
            Just(ValueSource::Text),
        ],
        status in prop_oneof![
            Just(None),
            any::<u16>().prop_map(Some),
            (200u16..300).prop_map(Some),
            (200u16..300).prop_map(Some),
            prop::sample::select(vec![503u16, 504]).prop_map(Some),
        ],
        from_upstream in any::<bool>(),
        header in prop::option::of(body()),
        body in body(),
        size in prop_oneof![Just(None), any::<usize>().prop_map(Some)],
        max_body in prop_oneof![any::<usize>(), 0usize..200, Just(usize::MAX)],
    ) {
        let answer = Answer {
            status,
            from_upstream,
            header: header.as_deref(),
            body: &body,
            body_size: size.unwrap_or(body.len()),
        };
        let result = sample_value(&source, &answer, max_body);
        let two_xx = status.is_some_and(|s| (200..300).contains(&s));
        if !two_xx {
            prop_assert!(matches!(result, Err(SampleError::Status | SampleError::Timeout | SampleError::Unreachable)), "{:?}", result);
        }
        let Ok(v) = result else {
            return Ok(());
        };
        prop_assert!(two_xx);
        if !matches!(source, ValueSource::Header(_)) {
            prop_assert!(answer.body_size <= max_body && body.len() <= max_body);
        }
        match &source {
            ValueSource::Header(_) => number_text_is(header.as_deref().unwrap_or_default(), v)?,
            ValueSource::Text => number_text_is(&body, v)?,
            ValueSource::JsonPointer(p) => {
                let doc: Result<Value, _> = serde_json::from_slice(&body);
                prop_assert!(doc.is_ok());
                let doc = doc.unwrap_or_default();
                let value = doc.pointer(p);
                prop_assert!(value.is_some());
                json_number_is(value.unwrap_or(&Value::Null), v)?;
            }
            ValueSource::JsonArrayLength(p) => {
                let doc: Result<Value, _> = serde_json::from_slice(&body);
                let len = doc.ok().and_then(|d| d.pointer(p).and_then(Value::as_array).map(Vec::len));
                prop_assert_eq!(len.map(|l| l as u64), Some(v));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Header maps as the host serializes them (every request's two reads)
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any map round-trips, the first of repeated names wins, and arbitrary bytes (a host bug,
    /// a truncated copy) never panic: they yield nothing or fewer pairs.
    #[test]
    fn header_maps_round_trip_and_garbage_never_panics(
        entries in prop::collection::vec((".{0,12}", ".{0,40}"), 0..12),
        junk in prop::collection::vec(any::<u8>(), 0..256),
        cut in any::<prop::sample::Index>(),
    ) {
        let borrowed: Vec<(&str, &str)> = entries.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        let map = crate::pairs::serialize(&borrowed);
        let back: Vec<(&[u8], &[u8])> = crate::pairs::iter(&map).map(|i| i.collect()).unwrap_or_default();
        let want: Vec<(&[u8], &[u8])> = borrowed.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())).collect();
        prop_assert_eq!(back, want);
        for (name, _) in &borrowed {
            let first = borrowed.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_bytes());
            prop_assert_eq!(crate::pairs::get(&map, name), first);
        }
        // The one-pass lookup answers as `get` does, name by name, on whole and cut maps.
        let names: Vec<String> = entries.iter().map(|(n, _)| n.clone()).chain([":status".to_string()]).collect();
        let truncated = map.get(..cut.index(map.len() + 1)).unwrap_or_default();
        for m in [&map[..], truncated, &junk[..]] {
            let found = crate::pairs::Found::lookup(m, &names);
            // Through the names' hash table too (used past INLINE names).
            let table = crate::pairs::table(&names);
            let sorted = crate::pairs::Found::lookup_in(m, &names, &table);
            for (i, name) in names.iter().enumerate() {
                prop_assert_eq!(found.get(i), crate::pairs::get(m, name));
                prop_assert_eq!(sorted.get(i), crate::pairs::get(m, name));
            }
        }
        let truncated = map.get(..cut.index(map.len() + 1)).unwrap_or_default();
        let n = crate::pairs::iter(truncated).map(|i| i.count()).unwrap_or(0);
        prop_assert!(n <= entries.len());
        let _ = crate::pairs::iter(&junk).map(|i| i.count());
        let _ = crate::pairs::get(&junk, ":status").and_then(crate::pairs::decimal);
    }

    /// The samplers' one-pass reader finds what serde_json's `Value::pointer` finds at every pointer of a
    /// document (and at some that miss), and refuses the same text inputs as the parser (values
    /// off the path are only syntax-checked, so this holds for valid UTF-8 without escapes
    /// that decode wrong, which is what `junk` generates).
    #[test]
    fn select_agrees_with_the_tree(value in any_json(), junk in ".{0,40}", extra in "(/[a-z0-9~]{0,3}){0,3}") {
        use crate::json::{select, Json, Number, Selected};
        fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
            out.push(at.clone());
            match v {
                Value::Array(items) => {
                    for (i, item) in items.iter().enumerate() {
                        pointers(item, format!("{at}/{i}"), out);
                    }
                }
                Value::Object(m) => {
                    for (k, item) in m {
                        pointers(item, format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")), out);
                    }
                }
                _ => {}
            }
        }
        let text = value.to_string();
        // Read back from the text, so floats went through the same parser as `select`'s.
        let parsed: Value = serde_json::from_str(&text).unwrap();
        let mut all = Vec::new();
        pointers(&value, String::new(), &mut all);
        all.push(extra);
        for p in &all {
            // serde_json's own RFC 6901 reader over its own tree is the reference.
            let want = parsed.pointer(p).map(|found| match found {
                Value::Number(n) => Selected::Number(match (n.as_u64(), n.as_i64(), n.as_f64()) {
                    (Some(u), _, _) => Number::Unsigned(u),
                    (None, Some(i), _) => Number::Signed(i),
                    (_, _, f) => Number::Float(f.unwrap_or(f64::NAN)),
                }),
                Value::Array(items) => Selected::Array(items.len() as u64),
                _ => Selected::Other,
            });
            prop_assert_eq!(select(text.as_bytes(), p).unwrap(), want, "pointer {}", p);
        }
        prop_assert_eq!(select(junk.as_bytes(), "").is_ok(), Json::parse(junk.as_bytes()).is_ok());
    }
}

// ---------------------------------------------------------------------------------------------
// Counters on JSON bodies: the one-pass lookup against serde_json's tree, and the copy as
// chunks pass against the whole body
// ---------------------------------------------------------------------------------------------

// `cfg(test)` (already true here) tells clippy this is test code, as `#[test]` functions are.
#[cfg(test)]
mod bodies {
    use super::*;
    use crate::bodies::{Bodies, Chunk};
    use crate::body::{self, Pending, Reading, Verdict};
    use crate::config::{BodyTest, Counter};
    use crate::json::{lookup, Found, Json, Number};
    use crate::labels::Side;

    /// Every pointer to a value of `v` (RFC 6901, escaped), and near each pointers that may
    /// miss: one level deeper, a key that is not there, one index past the end.
    fn paths(v: &Value, at: String, out: &mut Vec<String>) {
        out.push(at.clone());
        out.push(format!("{at}/0"));
        out.push(format!("{at}/~1missing"));
        match v {
            Value::Array(items) => {
                out.push(format!("{at}/{}", items.len()));
                for (i, item) in items.iter().enumerate() {
                    paths(item, format!("{at}/{i}"), out);
                }
            }
            Value::Object(m) => {
                for (k, item) in m {
                    let token = k.replace('~', "~0").replace('/', "~1");
                    paths(item, format!("{at}/{token}"), out);
                }
            }
            _ => {}
        }
    }

    /// What `lookup` should find where serde_json's tree has `v`: numbers exactly as serde_json
    /// holds them, arrays by length.
    fn expected(v: &Value) -> Found {
        match v {
            Value::Null => Found::Null,
            Value::Bool(b) => Found::Bool(*b),
            Value::Number(n) => Found::Number(match (n.as_u64(), n.as_i64(), n.as_f64()) {
                (Some(u), _, _) => Number::Unsigned(u),
                (None, Some(i), _) => Number::Signed(i),
                (None, None, Some(f)) => Number::Float(f),
                (None, None, None) => Number::Float(f64::NAN),
            }),
            Value::String(s) => Found::String(s.clone()),
            Value::Array(items) => Found::Array(items.len() as u64),
            Value::Object(_) => Found::Object,
        }
    }

    /// Floats compared by their bits: "exactly as serde_json holds them" (-0.0 is not 0.0).
    fn same_found(a: &Option<Found>, b: &Option<Found>) -> bool {
        match (a, b) {
            (Some(Found::Number(Number::Float(x))), Some(Found::Number(Number::Float(y)))) => {
                x.to_bits() == y.to_bits()
            }
            _ => a == b,
        }
    }

    /// `lookup` of all `pointers` at once agrees with `tree.pointer`, pointer by pointer.
    fn agrees(text: &[u8], tree: &Value, pointers: &[String]) -> Result<(), TestCaseError> {
        let borrowed: Vec<&str> = pointers.iter().map(String::as_str).collect();
        let found = lookup(text, &borrowed);
        prop_assert!(
            found.is_ok(),
            "lookup refused what serde_json accepts: {:?}",
            found
        );
        let found = found.unwrap_or_default();
        prop_assert_eq!(found.len(), pointers.len());
        for (p, got) in pointers.iter().zip(&found) {
            let want = tree.pointer(p).map(expected);
            prop_assert!(
                same_found(got, &want),
                "pointer {:?}: got {:?}, want {:?}",
                p,
                got,
                want
            );
        }
        Ok(())
    }

    /// Documents whose objects repeat keys (serde_json's tree keeps the last): an object of
    /// `(key, value)` entries, values themselves such objects or any JSON, keys from a few.
    fn repeated_keys_text() -> BoxedStrategy<String> {
        let entries = |inner: BoxedStrategy<String>| {
            prop::collection::vec(("[ab~/]{0,2}", inner), 0..6).prop_map(|entries| {
                let body: Vec<String> = entries
                    .iter()
                    .map(|(k, v)| format!("{}: {v}", Value::String(k.clone())))
                    .collect();
                format!("{{{}}}", body.join(", "))
            })
        };
        let leaf = any_json().prop_map(|v| v.to_string()).boxed();
        let inner = entries(leaf.clone()).boxed();
        let inner = prop_oneof![
            leaf.clone(),
            inner.clone(),
            inner.prop_map(|o| format!("[{o}, 1]"))
        ]
        .boxed();
        entries(inner).boxed()
    }

    /// A few byte edits: (where, what) with `what` a JSON-significant byte or any byte, or a cut.
    #[derive(Debug, Clone)]
    enum Edit {
        Replace(prop::sample::Index, u8),
        Insert(prop::sample::Index, u8),
        Delete(prop::sample::Index),
        Truncate(prop::sample::Index),
    }

    fn edit() -> impl Strategy<Value = Edit> {
        let byte = prop_oneof![
            3 => prop::sample::select(b"{}[],:\"\\ -.0123456789eEu+tfn".to_vec()),
            1 => any::<u8>(),
        ];
        prop_oneof![
            (any::<prop::sample::Index>(), byte.clone()).prop_map(|(i, b)| Edit::Replace(i, b)),
            (any::<prop::sample::Index>(), byte).prop_map(|(i, b)| Edit::Insert(i, b)),
            any::<prop::sample::Index>().prop_map(Edit::Delete),
            any::<prop::sample::Index>().prop_map(Edit::Truncate),
        ]
    }

    fn apply(mut bytes: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
        for e in edits {
            let len = bytes.len();
            match e {
                Edit::Replace(i, b) if len > 0 => bytes[i.index(len)] = *b,
                Edit::Insert(i, b) => bytes.insert(i.index(len + 1), *b),
                Edit::Delete(i) if len > 0 => {
                    bytes.remove(i.index(len));
                }
                Edit::Truncate(i) => bytes.truncate(i.index(len + 1)),
                _ => {}
            }
        }
        bytes
    }

    /// Pointers of the contract's shape that may or may not be in a document.
    fn random_pointer() -> BoxedStrategy<String> {
        prop_oneof![
            "(/[ab0-2~]{0,2}){0,4}",
            "(/(~0|~1|[ab]|-|01|00)){1,3}",
            pointer(),
        ]
        .boxed()
    }

    // -----------------------------------------------------------------------------------------
    // Counters on bodies: a small model from serde_json's tree
    // -----------------------------------------------------------------------------------------

    const BODY_POINTERS: [&str; 8] = ["", "/a", "/b", "/a/0", "/a/b", "/b/0", "/c", "/a/b/0"];

    fn body_value() -> BoxedStrategy<Value> {
        prop_oneof![
            Just(json!(null)),
            Just(json!(true)),
            Just(json!(false)),
            Just(json!(0)),
            Just(json!(1)),
            Just(json!(7)),
            (0u64..1000).prop_map(|n| json!(n)),
            Just(json!(u64::MAX)),
            Just(json!(1.0)),
            Just(json!(-1)),
            Just(json!(2.5)),
            Just(json!("x")),
            Just(json!("")),
        ]
        .boxed()
    }

    /// The scalars of `v` with their pointers: what a counter on that body would test.
    fn leaves(v: &Value, at: String, out: &mut Vec<(String, Value)>) {
        match v {
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    leaves(item, format!("{at}/{i}"), out);
                }
            }
            Value::Object(m) => {
                for (k, item) in m {
                    let token = k.replace('~', "~0").replace('/', "~1");
                    leaves(item, format!("{at}/{token}"), out);
                }
            }
            scalar => out.push((at, scalar.clone())),
        }
    }

    /// The same number written the other way (`1` ↔ `1.0`), for `equals` by value.
    fn twin(v: &Value) -> Value {
        match (v.as_u64(), v.as_i64(), v.as_f64()) {
            (Some(n), _, _) => json!(n as f64),
            (None, Some(n), _) => json!(n as f64),
            (None, None, Some(f)) if f.fract() == 0.0 && f.abs() < 1e15 => json!(f as i64),
            _ => v.clone(),
        }
    }

    /// A body counter: 0-2 conditions, maybe an increment, a limit of 1-256 bytes; pointers and
    /// values from `known` (a body's own scalars) half the time, so that conditions hold.
    fn body_counter(known: Vec<(String, Value)>) -> BoxedStrategy<Value> {
        let amounts: Vec<String> = known
            .iter()
            .filter(|(_, v)| v.is_u64())
            .map(|(p, _)| p.clone())
            .collect();
        let mut pointers: Vec<String> = BODY_POINTERS.iter().map(|p| p.to_string()).collect();
        pointers.extend(known.iter().map(|(p, _)| p.clone()));
        let random = (
            prop::sample::select(pointers.clone()),
            prop_oneof![
                body_value().prop_map(|v| ("equals", v)),
                any::<bool>().prop_map(|b| ("present", Value::Bool(b))),
            ],
        )
            .prop_map(|(p, (kind, v))| json!({"pointer": p, kind: v}));
        let condition = if known.is_empty() {
            random.boxed()
        } else {
            let k = known.clone();
            prop_oneof![
                1 => random,
                1 => prop::sample::select(k.clone()).prop_map(|(p, v)| json!({"pointer": p, "equals": v})),
                1 => prop::sample::select(k).prop_map(|(p, v)| json!({"pointer": p, "equals": twin(&v)})),
                1 => prop::sample::select(known).prop_map(|(p, _)| json!({"pointer": p, "present": true})),
            ]
            .boxed()
        };
        (
            prop::collection::vec(condition, 0..3),
            prop::option::of(if amounts.is_empty() {
                prop::sample::select(pointers).boxed()
            } else {
                prop_oneof![1 => prop::sample::select(pointers), 2 => prop::sample::select(amounts)]
                    .boxed()
            }),
            prop_oneof![1 => 1usize..=32, 3 => 32usize..=256],
        )
            .prop_map(|(conditions, increment, limit)| {
                // A counter reading no body is no body counter: give it the increment.
                let increment = match (conditions.is_empty(), increment) {
                    (true, None) => Some("/a".to_string()),
                    (_, i) => i,
                };
                let mut c = json!({
                    "match": {"method": "POST", "path": "/p", "response_json": conditions},
                    "max_body_bytes": limit,
                });
                if let Some(p) = increment {
                    c["increment"] = json!({"response_json": p});
                }
                c
            })
            .boxed()
    }

    /// 1-4 body counters on `POST /p`, through the configuration's parser.
    fn body_counters(known: Vec<(String, Value)>) -> BoxedStrategy<Vec<Counter>> {
        prop::collection::vec(body_counter(known), 1..5)
            .prop_map(|counters| {
                let counters: Vec<Value> = counters
                    .into_iter()
                    .enumerate()
                    .map(|(i, mut c)| {
                        c["name"] = json!(format!("c{i}_total"));
                        c
                    })
                    .collect();
                let text = json!({"counters": counters}).to_string();
                match config::parse(text.as_bytes()) {
                    Ok(config) => config.counters,
                    Err(e) => panic!("{text}: {e}"),
                }
            })
            .boxed()
    }

    /// Documents on the pointers' keys: mostly an object at the root.
    fn body_doc() -> BoxedStrategy<Value> {
        let doc = body_value().prop_recursive(3, 16, 3, |inner| {
            prop_oneof![
                prop::collection::btree_map("[abc0]", inner.clone(), 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
                prop::collection::vec(inner, 0..3).prop_map(Value::Array),
            ]
        });
        prop_oneof![
            3 => prop::collection::btree_map("[abc]", doc.clone(), 1..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            1 => doc,
        ]
        .boxed()
    }

    /// Counters and a response body: a document and counters on what it holds (sometimes
    /// edited, pretty-printed), or counters and a body of any kind.
    fn counters_and_body() -> BoxedStrategy<(Vec<Counter>, Vec<u8>)> {
        let on_doc = body_doc().prop_flat_map(|doc| {
            let mut known = Vec::new();
            leaves(&doc, String::new(), &mut known);
            let text = prop_oneof![
                Just(doc.to_string()),
                Just(serde_json::to_string_pretty(&doc).unwrap_or_default()),
            ];
            let bytes = prop_oneof![
                3 => text.clone().prop_map(String::into_bytes),
                1 => (text, prop::collection::vec(edit(), 1..3))
                    .prop_map(|(t, e)| apply(t.into_bytes(), &e)),
            ];
            (body_counters(known), bytes)
        });
        let any = prop_oneof![
            any_json().prop_map(|v| v.to_string().into_bytes()),
            body(),
            repeated_keys_text().prop_map(String::into_bytes),
        ];
        prop_oneof![
            3 => on_doc,
            1 => (body_counters(Vec::new()), any),
        ]
        .boxed()
    }

    /// `equals` by value: integers exactly, anything with a float as floats.
    fn model_equals(want: &Json, v: &Value) -> bool {
        match (want, v) {
            (Json::Null, Value::Null) => true,
            (Json::Bool(a), Value::Bool(b)) => a == b,
            (Json::String(a), Value::String(b)) => a == b,
            (Json::Number(a), Value::Number(b)) => {
                let b_int = b.as_u64().map(i128::from).or(b.as_i64().map(i128::from));
                match (a, b_int) {
                    (Number::Unsigned(a), Some(b)) => i128::from(*a) == b,
                    (Number::Signed(a), Some(b)) => i128::from(*a) == b,
                    (Number::Unsigned(a), None) => Some(*a as f64) == b.as_f64(),
                    (Number::Signed(a), None) => Some(*a as f64) == b.as_f64(),
                    (Number::Float(a), _) => Some(*a) == b.as_f64(),
                }
            }
            _ => false,
        }
    }

    /// What the contract says of counter `c` on a response body serde_json reads as `tree`.
    fn model(c: &Counter, tree: &Value) -> Verdict {
        let mut missing = false;
        for condition in &c.matches.response_json {
            let at = tree.pointer(&condition.pointer);
            let holds = match (&condition.test, at) {
                (BodyTest::Present(want), at) => *want == at.is_some(),
                (BodyTest::Equals(_), None) => {
                    missing = true;
                    true
                }
                (BodyTest::Equals(want), Some(v)) => model_equals(want, v),
            };
            if !holds {
                return Verdict::Fails;
            }
        }
        if missing {
            return Verdict::Unread(body::NotCounted::Missing);
        }
        match &c.increment {
            None => Verdict::Holds(None),
            Some(i) => match tree.pointer(&i.pointer) {
                None => Verdict::Unread(body::NotCounted::Missing),
                Some(Value::Number(n)) if n.is_u64() => Verdict::Holds(n.as_u64()),
                Some(_) => Verdict::Unread(body::NotCounted::Invalid),
            },
        }
    }

    /// The bytes of one response chunk; its headers decided how it is read, as in the glue.
    struct Source<'a> {
        chunk: &'a [u8],
    }

    impl Source<'_> {
        fn bytes(&mut self, n: usize) -> Option<Vec<u8>> {
            self.chunk
                .get(..n.min(self.chunk.len()))
                .map(<[u8]>::to_vec)
        }
    }

    /// `body` cut at the `sizes` (cycled; at least 1 byte each).
    fn chunks<'a>(body: &'a [u8], sizes: &[usize]) -> Vec<&'a [u8]> {
        let mut out = Vec::new();
        let mut rest = body;
        let mut size = sizes.iter().cycle();
        while !rest.is_empty() {
            let n = size.next().copied().unwrap_or(1).clamp(1, rest.len());
            let (chunk, tail) = rest.split_at(n);
            out.push(chunk);
            rest = tail;
        }
        out
    }

    proptest! {
        #![proptest_config(config())]

        /// (a) Any document serde_json writes: `lookup` of all its paths (and of near misses and
        /// random pointers) at once finds what `Value::pointer` finds.
        #[test]
        fn lookup_agrees_with_value_pointer(
            value in any_json(),
            extra in prop::collection::vec(random_pointer(), 0..6),
        ) {
            let text = serde_json::to_string(&value).unwrap();
            // Read back, so floats went through the same parser as `lookup`'s.
            let tree: Value = serde_json::from_str(&text).unwrap();
            let mut pointers = Vec::new();
            paths(&tree, String::new(), &mut pointers);
            pointers.extend(extra);
            agrees(text.as_bytes(), &tree, &pointers)?;
            // Pretty-printed: the same answers.
            let pretty = serde_json::to_string_pretty(&value).unwrap();
            agrees(pretty.as_bytes(), &tree, &pointers)?;
        }

        /// Repeated keys: the last one counts, as in serde_json's tree, however deep.
        #[test]
        fn lookup_agrees_on_repeated_keys(
            text in repeated_keys_text(),
            extra in prop::collection::vec(random_pointer(), 0..6),
        ) {
            let tree: Value = serde_json::from_str(&text).unwrap();
            let mut pointers = Vec::new();
            paths(&tree, String::new(), &mut pointers);
            // Pointers into values an earlier copy of a key had and the last one lacks.
            for token in ["a", "b", "~0", "~1", "", "a~1", "b~0"] {
                for second in ["a", "b", "0", ""] {
                    pointers.push(format!("/{token}/{second}"));
                    pointers.push(format!("/{token}/{second}/a"));
                }
            }
            pointers.extend(extra);
            agrees(text.as_bytes(), &tree, &pointers)?;
        }

        /// (b) Edited documents: whatever serde_json still accepts, `lookup` accepts and reads
        /// the same; what serde_json refuses, `lookup` refuses too.
        #[test]
        fn lookup_accepts_what_serde_json_accepts_and_nothing_else(
            original in prop_oneof![any_json().prop_map(|v| v.to_string()), repeated_keys_text()],
            edits in prop::collection::vec(edit(), 1..4),
            extra in prop::collection::vec(random_pointer(), 0..6),
        ) {
            let bytes = apply(original.clone().into_bytes(), &edits);
            let mut pointers = Vec::new();
            let before: Value = serde_json::from_str(&original).unwrap();
            paths(&before, String::new(), &mut pointers);
            pointers.extend(extra);
            match serde_json::from_slice::<Value>(&bytes) {
                Ok(tree) => {
                    paths(&tree, String::new(), &mut pointers);
                    agrees(&bytes, &tree, &pointers)?;
                }
                Err(_) => {
                    // And refuses what serde_json refuses, whatever the pointers.
                    let borrowed: Vec<&str> = pointers.iter().map(String::as_str).collect();
                    prop_assert!(lookup(&bytes, &borrowed).is_err());
                }
            }
        }

        /// (c) A body fed through `Reading` in any chunking, and through the VM's table, gets
        /// the verdicts `evaluate` gives the whole body; too large exactly when longer than a
        /// rule's limit; and, where serde_json reads the body, the contract's verdicts.
        #[test]
        fn chunked_reading_gives_the_whole_body_verdicts(
            (counters, body) in counters_and_body(),
            sizes in prop::collection::vec(1usize..40, 1..8),
            asked_mask in any::<u8>(),
            declared in any::<bool>(),
        ) {
            let rules = Rules::new(&counters);
            let all = rules.reading_body(Side::Response, b"POST", Some("/p"), Some(200));
            prop_assert_eq!(&all, &(0..counters.len()).collect::<Vec<_>>());
            let asked: Vec<usize> = all.iter().copied().filter(|i| asked_mask & (1 << i) != 0).collect();
            let length = declared.then_some(body.len() as u64);
            let whole = body::evaluate(&rules, Side::Response, &asked, &body);
            let pieces = chunks(&body, &sizes);

            // Reading alone, as the glue drives it.
            let mut reading = Reading::start(&rules, asked.clone(), Some(b"application/json"), None, length);
            for chunk in &pieces {
                let n = reading.wanted(chunk.len());
                prop_assert!(n <= chunk.len());
                reading.push(&chunk[..n]);
            }
            reading.end(&rules, Side::Response);
            let verdicts = match &reading {
                Reading::Skipped if asked.is_empty() => Vec::new(),
                Reading::Done(v) => v.clone(),
                other => return Err(TestCaseError::fail(format!("not done: {other:?}"))),
            };
            // Only the rules asked, each once, as the whole body has it.
            let indices: Vec<usize> = verdicts.iter().map(|(i, _)| *i).collect();
            prop_assert_eq!(&indices, &asked);
            prop_assert_eq!(&verdicts, &whole);

            let tree = serde_json::from_slice::<Value>(&body).ok();
            for (i, verdict) in &verdicts {
                let c = &counters[*i];
                let too_large = *verdict == Verdict::Unread(body::NotCounted::TooLarge);
                prop_assert_eq!(too_large, body.len() > c.body_limit(), "rule {} {:?}", i, verdict);
                if too_large {
                    continue;
                }
                match &tree {
                    Some(tree) => prop_assert_eq!(*verdict, model(c, tree), "rule {} on {:?}", i, String::from_utf8_lossy(&body)),
                    // serde_json refuses: no verdict but a parse error unless `lookup` (which
                    // skips values off the paths undecoded) read it.
                    None => {
                        let parsed = lookup(&body, &[]).is_ok();
                        // No byte at all is no body, not a parse error.
                        let want = if body.is_empty() { body::NotCounted::NoBody } else { body::NotCounted::Parse };
                        prop_assert!(parsed || *verdict == Verdict::Unread(want), "rule {} {:?}", i, verdict);
                    }
                }
            }

            // Through the VM's table as the glue drives it (request headers: no request body,
            // the response's rules noted; response headers: its reading decided): the same
            // verdicts, and nothing held afterwards.
            let mut bodies = Bodies::default();
            let noted = rules.reading_body(Side::Response, b"POST", Some("/p"), None);
            prop_assert_eq!(&noted, &all);
            prop_assert_eq!(bodies.request_headers(3, 0, Reading::NotStarted, noted), None);
            bodies.response_headers(3, |noted| {
                let concerned = noted.iter().copied().filter(|&i| rules.status_allows(i, 200)).collect();
                Reading::start(&rules, concerned, Some(b"application/json"), None, length)
            });
            let mut source = Source { chunk: b"" };
            let last = pieces.len().saturating_sub(1);
            let mut sent = 0;
            for (n, chunk) in pieces.iter().enumerate() {
                source.chunk = chunk;
                let c = Chunk { context: 3, side: Side::Response, size: chunk.len(), end: n == last };
                bodies.chunk(c, &rules, |n| source.bytes(n));
                sent += 1;
            }
            if sent == 0 {
                let c = Chunk { context: 3, side: Side::Response, size: 0, end: true };
                bodies.chunk(c, &rules, |n| source.bytes(n));
            }
            prop_assert_eq!(bodies.held(), 0);
            let pending: Option<Pending> = bodies.finish(3);
            prop_assert!(pending.is_some());
            let pending = pending.unwrap();
            // All the rules read the body together: on a body serde_json refuses, one rule's
            // pointer into a bad value off another's path makes it a parse error for both.
            let together = body::evaluate(&rules, Side::Response, &all, &body);
            for (i, want) in &together {
                prop_assert_eq!(pending.verdict(&rules, *i), *want, "rule {}", i);
                if tree.is_some() {
                    let alone = body::evaluate(&rules, Side::Response, &[*i], &body);
                    prop_assert_eq!(&alone, &vec![(*i, *want)]);
                }
            }
            prop_assert_eq!(bodies.held(), 0);
        }
    }
}
