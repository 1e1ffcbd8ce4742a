#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test code
//! Bad configuration in a real Envoy: each invalid plugin configuration is logged with a message
//! naming the field path, shown on `app_metrics_config_valid`, and costs the app no request (a new
//! Envoy with nothing good before records nothing); on file-based LDS, a bad configuration pushed
//! by hot reload leaves the last good one counting, a good one keeps the counters' values and
//! applies its new rules, and a revert while the old listener drains counts by the reverted rules.

mod common;

use common::{bootstrap::*, envoy::*, scrape::*, upstream::*, *};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

fn sampler(extra: &str) -> String {
    format!(
        r#"{{"samplers": [{{"name": "s", "cluster": "app", "path": "/p", "value": {{"text": true}}{extra}}}]}}"#
    )
}

fn sampler_value(value: &str) -> String {
    format!(
        r#"{{"samplers": [{{"name": "s", "cluster": "app", "path": "/p", "value": {value}}}]}}"#
    )
}

/// (invalid plugin configuration, the exact error Envoy's log must show after `app_metrics: `).
fn cases() -> Vec<(String, String)> {
    let c = |config: &str, message: &str| (config.to_string(), message.to_string());
    vec![
        c("[1, 2]", r#".: is not a JSON object (expected {"counters": …, "http_metrics": …, "samplers": …})"#),
        c(r#"{"countres": []}"#, "countres: unknown field `countres`, expected one of `counters`, `http_metrics`, `samplers`, `labels`, `grpc`"),
        // A syntax error has no field path yet: serde_json's line and column say where.
        c("{\"counters\": [", ".: EOF while parsing a list at line 2 column 0"),
        c(r#"{"counters": [{"name": "logins-total", "match": {}}]}"#,
          r#"counters[0].name: "logins-total" is not a metric name Envoy exports as is (expected [a-zA-Z_][a-zA-Z0-9_]*)"#),
        c(r#"{"counters": [{"name": "http_requests_total", "match": {}}]}"#,
          r#"counters[0].name: "http_requests_total" is reserved by the filter (expected a name that is not one of the filter's request metrics (http_*, grpc_server_*) or one of their series and does not start with app_metrics_)"#),
        c(r#"{"counters": [{"name": "a_total", "match": {}}], "samplers": [{"name": "a_total", "cluster": "app", "path": "/p", "value": {"text": true}}]}"#,
          r#"samplers[0].name: "a_total" is already used by counters[0] (expected a unique metric name)"#),
        c(r#"{"counters": [{"name": "a_total", "match": {"method": "post"}}]}"#,
          r#"counters[0].match.method: "post" is not an HTTP method (expected upper-case letters, e.g. "POST")"#),
        c(r#"{"counters": [{"name": "a_total", "match": {"path": "/login?next=1"}}]}"#,
          r#"counters[0].match.path: "/login?next=1" is not a path (expected it to start with '/', without query, fragment, spaces or control characters)"#),
        c(r#"{"counters": [{"name": "a_total", "match": {"status": [200, 600]}}]}"#,
          "counters[0].match.status[1]: 600 is not a status code or class (expected 100-599 or 1xx-5xx)"),
        c(r#"{"counters": [{"name": "a_total", "match": {"status": []}}]}"#,
          "counters[0].match.status: is empty (expected at least one status code or class, or leave it out to match any)"),
        c(r#"{"counters": [{"name": "a_total", "match": {"request_headers": {"x role": "admin"}}}]}"#,
          r#"counters[0].match.request_headers.x role: "x role" is not a header name (expected letters, digits, '-', '_', '.' or a leading ':')"#),
        c(r#"{"counters": [{"name": "a_total", "match": {"response_headers": {"x-cache": 1}}}]}"#,
          "counters[0].match.response_headers.x-cache: invalid type: integer `1`, expected a string for an exact value, or true/false for presence"),
        c(r#"{"http_metrics": {"enabled": "yes"}}"#,
          r#"http_metrics.enabled: invalid type: string "yes", expected a boolean"#),
        c(r#"{"http_metrics": {"handlers": ["/users/{id}", "/users/{name}"]}}"#,
          r#"http_metrics.handlers[1]: "/users/{name}" is not a usable route template: "#),
        c(r#"{"http_metrics": {"handlers": ["/a", "/b=c"]}}"#,
          r#"http_metrics.handlers[1]: "/b=c" contains ';' or '=' (expected a path template without them: they delimit labels in stat names)"#),
        c(r#"{"http_metrics": {"handlers": ["/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}/{i}"]}}"#,
          r#"http_metrics.handlers[0]: "/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}/{i}" has too many parameters (expected at most 8)"#),
        c(r#"{"http_metrics": {"excluded_handlers": ["metrics"]}}"#,
          r#"http_metrics.excluded_handlers[0]: "metrics" is not a path (expected it to start with '/', without query, fragment, spaces or control characters)"#),
        c(r#"{"samplers": [{"name": "s", "path": "/p", "value": {"text": true}}]}"#,
          "samplers[0]: missing field `cluster`"),
        c(&sampler(r#", "cluster": "again""#), "samplers[0].cluster: duplicate field `cluster`"),
        c(r#"{"samplers": [{"name": "s", "cluster": "  ", "path": "/p", "value": {"text": true}}]}"#,
          "samplers[0].cluster: is empty (expected the name of an Envoy cluster)"),
        c(&sampler(r#", "authority": """#),
          "samplers[0].authority: is empty (expected a host name, or leave it out to use the cluster name)"),
        c(&sampler(r#", "interval_seconds": 0"#), "samplers[0].interval_seconds: 0 is out of range (expected 1-86400)"),
        c(&sampler(r#", "interval_seconds": -5"#), "samplers[0].interval_seconds: invalid value: integer `-5`, expected u64"),
        c(&sampler(r#", "timeout_ms": 60001"#), "samplers[0].timeout_ms: 60001 is out of range (expected 1-60000)"),
        c(&sampler(r#", "interval_seconds": 5, "timeout_ms": 5001"#),
          "samplers[0].timeout_ms: 5001 is longer than interval_seconds (5 s): samples would overlap (expected at most 5000)"),
        c(r#"{"samplers": [{"name": "s", "cluster": "app|v1", "path": "/p", "value": {"text": true}}]}"#,
          r#"samplers[0].authority: is not set and the cluster name "app|v1" is not a valid :authority, which Envoy would refuse (expected a host name with an optional port, e.g. "app.ns.svc.cluster.local:8000")"#),
        c(r#"{"counters": [{"name": "logins:total", "match": {}}]}"#,
          r#"counters[0].name: "logins:total" is not a metric name Envoy exports as is (expected [a-zA-Z_][a-zA-Z0-9_]*)"#),
        c(r#"{"counters": [{"name": "a_total", "match": {"request_headers": {"X-Role": "admin", "x-role": "user"}}}]}"#,
          r#"counters[0].match.request_headers.X-Role: names the same header as "x-role" (header names are case-insensitive; expected one entry per header)"#),
        c(&sampler(r#", "max_body_bytes": 16777217"#), "samplers[0].max_body_bytes: 16777217 is out of range (expected 1-16777216)"),
        c(&sampler_value(r#"{"json_pointer": "/count", "header": "x-total-count"}"#),
          "samplers[0].value: must set exactly one of json_pointer, json_array_length, header, text"),
        c(&sampler_value(r#"{"text": false}"#), "samplers[0].value.text: is false (expected true, or leave it out)"),
        c(&sampler_value(r#"{"json_pointer": "count"}"#),
          r#"samplers[0].value.json_pointer: "count" is not a JSON pointer (expected "" for the root or a path starting with '/')"#),
        c(&sampler_value(r#"{"header": " "}"#),
          r#"samplers[0].value.header: is empty (expected a header name such as "x-total-count")"#),
        c(&sampler_value(r#"{"jsonpointer": "/count"}"#),
          "samplers[0].value.jsonpointer: unknown field `jsonpointer`, expected one of `json_pointer`, `json_array_length`, `header`, `text`"),
        c(r#"{"http_metrics": {"handlers": ["/static/cache.v1/{file}"]}}"#,
          r#"http_metrics.handlers[0]: "/static/cache.v1/{file}" contains "cache.", which Istio's stats tag regexes would cut out of the handler label into a label of their own (expected a template without it)"#),
        c(r#"{"counters": [{"name": "login_rq_401", "match": {}}]}"#,
          r#"counters[0].name: "login_rq_401" ends like an Envoy response-code stat (_rq_NNN or _rq_Nxx), which Istio's stats tag regexes would cut off into a response_code label (expected another ending)"#),
        // Labels (issue 13).
        c(r#"{"labels": {"ser-vice": "a"}}"#,
          r#"labels.ser-vice: "ser-vice" is not a label name (expected [a-zA-Z_][a-zA-Z0-9_]*)"#),
        c(r#"{"labels": {"status": "a"}}"#,
          r#"labels.status: "status" is a label the filter or Prometheus sets itself (expected a name other than handler, method, status, sampler, reason, plugin, grpc_type, grpc_service, grpc_method, grpc_code, le, quantile)"#),
        c(r#"{"labels": {"service": "a;b"}}"#,
          r#"labels.service: "a;b" contains ';' (expected printable ASCII other than ';', '=', '"' and '\': ';' and '=' delimit labels in stat names)"#),
        c(&label_cases::counter_label(r#"{"name": "service", "request_header": "x-client", "values": ["web"]}"#),
          r#"counters[0].labels[0].name: "service" is already a label of these series, at labels.service (expected a label name unique per series)"#),
        c(&label_cases::counter_label(r#"{"name": "api_service", "request_header": "x-client", "values": ["web"]}"#),
          r#"counters[0].labels[0].name: "api_service" and "service" (labels.service) end alike: the stats tag regex of "service" would also match "api_service"'s label in stat names (expected label names that do not end with one another)"#),
        c(&label_cases::counter_label(r#"{"name": "client", "request_header": "x-client", "response_header": "x-client", "values": ["web"]}"#),
          "counters[0].labels[0]: must set exactly one of request_header, response_header"),
        c(&label_cases::http_label(r#"{"name": "client", "request_header": "x-client", "values": ["web", "other"]}"#),
          r#"http_metrics.labels[0].values[1]: "other" is what the label reads for a header value not listed (expected another value)"#),
        c(&label_cases::http_label(r#"{"name": "client", "request_header": "x-client", "values": ["web", "web"]}"#),
          r#"http_metrics.labels[0].values[1]: "web" is listed twice (expected unique values)"#),
        c(&label_cases::http_label(&label_cases::values(33)),
          r#"http_metrics.labels[0].values: has 33 values (expected 1-32: the header values that become label values; others read "other")"#),
        c(&label_cases::http_label(r#"{"name": "version", "response_header": "x-app-version", "values": ["1.0", "v.cache.2"]}"#),
          r#"http_metrics.labels[0].values[1]: "v.cache.2" makes "cache." in the stat name, which Istio's stats tag regexes would cut out of the label into a label of their own (expected a value without it)"#),
        c(&label_cases::http_label(&label_cases::labels(5, 1)),
          "http_metrics.labels: has 5 labels (expected at most 4: each multiplies the metric's series)"),
        c(&label_cases::http_label(&label_cases::labels(3, 32)),
          "http_metrics.labels: brings the configuration's series bound to 4716483 (expected at most 100000: fewer labels, label values or handlers)"),
    ]
}

/// Configurations for the label cases above.
mod label_cases {
    /// The seed's counter with a constant `service` label and `label` as its dynamic one.
    pub fn counter_label(label: &str) -> String {
        format!(
            r#"{{"labels": {{"service": "shop"}}, "counters": [{{"name": "failed_login_details_total", "match": {{"method": "POST", "path": "/login", "status": [400, 401]}}, "labels": [{label}]}}]}}"#
        )
    }

    /// `labels` (the list's items) as the request metrics' dynamic labels.
    pub fn http_label(labels: &str) -> String {
        format!(r#"{{"http_metrics": {{"labels": [{labels}]}}}}"#)
    }

    /// A label `client` with `n` values.
    pub fn values(n: usize) -> String {
        let values: Vec<String> = (0..n).map(|i| format!(r#""v{i}""#)).collect();
        format!(
            r#"{{"name": "client", "request_header": "x-client", "values": [{}]}}"#,
            values.join(", ")
        )
    }

    /// `count` labels `l0`… of `n` values each, from headers `x-l0`….
    pub fn labels(count: usize, n: usize) -> String {
        let values: Vec<String> = (0..n).map(|i| format!(r#""v{i}""#)).collect();
        let labels: Vec<String> = (0..count)
            .map(|i| {
                format!(
                    r#"{{"name": "l{i}", "request_header": "x-l{i}", "values": [{}]}}"#,
                    values.join(", ")
                )
            })
            .collect();
        labels.join(", ")
    }
}

/// Envoys started at once; each takes about a second of CPU to load the filter.
const PARALLEL: usize = 3;

/// What one Envoy started with an invalid configuration did wrong, if anything: it must start,
/// log the exact message, answer every request from the app, record nothing and say so on
/// `app_metrics_config_valid`.
fn problem_with_invalid(config: &str, want: &str, upstream: &Upstream) -> Option<String> {
    let mut attempt = 0;
    // A port picked free may be taken by another process before Envoy binds it: that failure is
    // the harness's, not the configuration's; try again.
    let envoy = loop {
        let mut opts = EnvoyOptions::new(config, upstream.port);
        opts.concurrency = 1;
        match Envoy::try_start(opts) {
            Err(log) if log.contains("Address already in use") && attempt < 3 => attempt += 1,
            Err(log) => return Some(format!("not started:\n{log}")),
            Ok(envoy) => break envoy,
        }
    };
    let want_line = format!("app_metrics: {want}");
    let agent = agent();
    let answers: Vec<u16> = (0..5)
        .map(|_| send(&agent, "POST", &envoy.url("/login"), "x"))
        .collect();
    if answers.iter().any(|&s| s != 200) {
        return Some(format!(
            "answers {answers:?}, expected the app's 200s:\n{}",
            envoy.log()
        ));
    }
    if !envoy.log().contains(&want_line) {
        return Some(format!("no {want_line:?} in the log:\n{}", envoy.log()));
    }
    let m = envoy.scrape();
    let valid = m.value("app_metrics_config_valid", &[("plugin", "app_metrics")]);
    if valid != Some(0.0) {
        return Some(format!(
            "app_metrics_config_valid {valid:?}, expected 0:\n{}",
            m.text
        ));
    }
    let recorded = m.filter_series_count();
    (recorded != 1).then(|| {
        format!(
            "{recorded} series recorded, expected only the gauge:\n{}",
            m.text
        )
    })
}

#[test]
fn invalid_configurations_are_logged_and_cost_no_request() {
    let started = Instant::now();
    let upstream = Arc::new(Upstream::start(|_, _| Reply::new(200, "ok")));
    let cases = cases();
    let queue = Arc::new(Mutex::new(cases.clone().into_iter().enumerate()));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let workers: Vec<_> = (0..PARALLEL)
        .map(|_| {
            let (queue, failures, upstream) = (queue.clone(), failures.clone(), upstream.clone());
            thread::spawn(move || loop {
                let Some((i, (config, want))) = queue.lock().unwrap().next() else {
                    return;
                };
                if let Some(problem) = problem_with_invalid(&config, &want, &upstream) {
                    failures
                        .lock()
                        .unwrap()
                        .push(format!("case {i}: {config}\n{problem}"));
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let failures = failures.lock().unwrap();
    eprintln!(
        "config: {} invalid configurations, {} logged with the field path, 5 of 5 requests answered \
         by the app, nothing recorded, app_metrics_config_valid 0; {:.1} s",
        cases.len(),
        cases.len() - failures.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(cases.len() >= 15);
    assert_eq!(
        upstream.count("POST", "/login", 200),
        5 * cases.len() as u64
    );
}

const SEED_WITH_HANDLERS: &str = r#"{"http_metrics": {"handlers": ["/login", "/orders"]}}"#;

/// The same, plus a counter the first configuration did not have.
const WITH_ORDERS: &str = r#"{
  "counters": [
    {"name": "successful_login_details_total", "match": {"method": "POST", "path": "/login", "status": ["2xx"]}},
    {"name": "failed_login_details_total", "match": {"method": "POST", "path": "/login", "status": [400, 401]}},
    {"name": "orders_placed_total", "match": {"method": "POST", "path": "/orders", "status": [201]}}
  ],
  "http_metrics": {"handlers": ["/login", "/orders"]}
}"#;

const BAD: &str = r#"{"counters": [{"name": "orders_placed_total", "match": {"method": "post"}}]}"#;

fn shop() -> Upstream {
    Upstream::start(|method, url| match (method, url) {
        ("POST", "/login?ok") => Reply::new(200, "{}"),
        ("POST", "/login?bad") => Reply::new(401, ""),
        ("POST", "/orders") => Reply::new(201, "{}"),
        _ => Reply::new(200, "ok"),
    })
}

/// Sends `good` good logins, `bad` bad ones and `orders` orders, each on a new connection (a
/// listener update drains the old connections' filter chains; new ones get the new one).
fn traffic(envoy: &Envoy, good: u32, bad: u32, orders: u32) {
    for (path, n, status) in [
        ("/login?ok", good, 200),
        ("/login?bad", bad, 401),
        ("/orders", orders, 201),
    ] {
        for _ in 0..n {
            assert_eq!(send(&agent(), "POST", &envoy.url(path), "x"), status);
        }
    }
}

#[test]
fn hot_reload_keeps_the_last_good_config_over_a_bad_one_and_counters_across_a_good_one() {
    let started = Instant::now();
    let upstream = shop();
    let dir = TempDir::new("lds");
    let opts = EnvoyOptions::new(SEED_WITH_HANDLERS, upstream.port);
    // Old filter chains drain for 1 s (600 s by default), so the checks after the good push below
    // run once the old configuration is gone, not while it still holds the stats.
    let envoy =
        start_lds(&opts, &dir.0, &["--drain-time-s", "1"]).unwrap_or_else(|log| panic!("{log}"));
    let post = |handler: &str, status: &str| {
        vec![
            ("handler", handler.to_string()),
            ("method", "POST".to_string()),
            ("status", status.to_string()),
        ]
    };
    let value = |m: &Metrics, labels: Vec<(&str, String)>| {
        let labels: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
        m.value("http_requests_total", &labels)
    };

    traffic(&envoy, 5, 3, 2);
    let m = wait_value(&envoy, "successful_login_details_total", &[], 5.0);
    assert_eq!(m.value("failed_login_details_total", &[]), Some(3.0));
    assert_eq!(value(&m, post("/orders", "2xx")), Some(2.0));
    assert_eq!(m.value("orders_placed_total", &[]), None);

    let valid = |m: &Metrics| m.value("app_metrics_config_valid", &[("plugin", "app_metrics")]);
    assert_eq!(valid(&m), Some(1.0));

    // (a) A bad plugin configuration, pushed: Envoy takes the listener update (refusing it would
    // cost a new Envoy every request), the filter logs it and the last good one keeps counting.
    let success_before = admin_stat(&envoy, "listener_manager.lds.update_success").unwrap_or(0);
    let mut bad = EnvoyOptions::new(BAD, upstream.port);
    bad.concurrency = opts.concurrency;
    push_lds(&dir.0, &lds_resources(&bad, envoy.listen_port));
    let want = r#"app_metrics: counters[0].match.method: "post" is not an HTTP method (expected upper-case letters, e.g. "POST")"#;
    let m = eventually(Duration::from_secs(20), "the bad config logged", || {
        let m = envoy.scrape();
        (envoy.log().contains(want)
            && admin_stat(&envoy, "listener_manager.lds.update_success")
                .is_some_and(|n| n > success_before)
            && valid(&m) == Some(0.0))
        .then_some(m)
    });
    assert_eq!(m.value("successful_login_details_total", &[]), Some(5.0));
    traffic(&envoy, 2, 1, 1);
    let m = wait_value(&envoy, "successful_login_details_total", &[], 7.0);
    assert_eq!(m.value("failed_login_details_total", &[]), Some(4.0));
    assert_eq!(value(&m, post("/orders", "2xx")), Some(3.0));
    assert_eq!(
        m.value("orders_placed_total", &[]),
        None,
        "the bad config never applied"
    );
    assert_eq!(valid(&m), Some(0.0));
    eprintln!(
        "config: hot reload: bad config taken by Envoy, logged, app_metrics_config_valid 0, the last good config kept counting"
    );

    // (b) A good configuration with a new rule: the counters keep their values, the rule counts.
    let success_before = admin_stat(&envoy, "listener_manager.lds.update_success").unwrap_or(0);
    let mut good = EnvoyOptions::new(WITH_ORDERS, upstream.port);
    good.concurrency = opts.concurrency;
    push_lds(&dir.0, &lds_resources(&good, envoy.listen_port));
    let m = eventually(Duration::from_secs(20), "the new config applied", || {
        let m = envoy.scrape();
        (admin_stat(&envoy, "listener_manager.lds.update_success")
            .is_some_and(|n| n > success_before)
            && m.value("orders_placed_total", &[]).is_some())
        .then_some(m)
    });
    assert_eq!(m.value("successful_login_details_total", &[]), Some(7.0));
    assert_eq!(m.value("orders_placed_total", &[]), Some(0.0));
    assert_eq!(valid(&m), Some(1.0));
    // The old filter chain (and the plugin instance that defined the stats) drains away; the
    // values must outlive it.
    eventually(
        Duration::from_secs(20),
        "the old filter chain drained",
        || {
            (admin_stat(&envoy, "listener_manager.total_filter_chains_draining") == Some(0))
                .then_some(())
        },
    );
    assert_eq!(
        admin_stat(&envoy, "listener_manager.listener_in_place_updated"),
        Some(2),
        "the bad and then the good config each replaced the listener's filter chain"
    );
    let m = envoy.scrape();
    assert_eq!(
        m.value("successful_login_details_total", &[]),
        Some(7.0),
        "no reset to 0"
    );
    assert_eq!(
        m.value("failed_login_details_total", &[]),
        Some(4.0),
        "no reset to 0"
    );
    assert_eq!(
        value(&m, post("/orders", "2xx")),
        Some(3.0),
        "no reset to 0"
    );
    assert_eq!(value(&m, post("/login", "2xx")), Some(7.0), "no reset to 0");
    traffic(&envoy, 1, 2, 4);
    let m = wait_value(&envoy, "orders_placed_total", &[], 4.0);
    assert_eq!(m.value("successful_login_details_total", &[]), Some(8.0));
    assert_eq!(m.value("failed_login_details_total", &[]), Some(6.0));
    assert_eq!(value(&m, post("/orders", "2xx")), Some(7.0));
    eprintln!(
        "config: hot reload: good config applied, counters kept (logins 7 -> 8, failed 4 -> 6), new rule counted 4; {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// Two listeners whose filters share a VM (same `vm_config`), plugins `names`, each counting
/// `POST /orders` in a counter of its own (`shop_a_orders_total`, `shop_b_orders_total`): sends
/// `traffic` (listener 0 or 1, requests) and checks that each counter got exactly its listener's.
fn orders_counted_per_listener(names: [&str; 2], traffic: &[(usize, u32)]) -> Envoy {
    let upstream = shop();
    let orders = |name: &str| {
        format!(
            r#"{{"counters": [{{"name": "{name}", "match": {{"method": "POST", "path": "/orders"}}}}],
               "http_metrics": {{"enabled": false}}}}"#
        )
    };
    let ports = [free_port(), free_port()];
    let admin = free_port();
    let opts = EnvoyOptions::new("", upstream.port);
    let configs = [orders("shop_a_orders_total"), orders("shop_b_orders_total")];
    let plugins = [
        (ports[0], names[0], configs[0].as_str()),
        (ports[1], names[1], configs[1].as_str()),
    ];
    let envoy = Envoy::start_with_config(
        &shared_vm_bootstrap(&opts, admin, &plugins),
        2,
        ports[0],
        admin,
    )
    .unwrap_or_else(|log| panic!("{log}"));
    let agent = agent();
    let mut want = [0.0; 2];
    for &(listener, n) in traffic {
        let url = format!("http://127.0.0.1:{}/orders", ports[listener]);
        for _ in 0..n {
            assert_eq!(send(&agent, "POST", &url, "x"), 201);
        }
        want[listener] += f64::from(n);
    }
    wait_value(&envoy, "shop_a_orders_total", &[], want[0]);
    wait_value(&envoy, "shop_b_orders_total", &[], want[1]);
    thread::sleep(Duration::from_millis(300));
    let m = envoy.scrape();
    assert_eq!(
        m.value("shop_a_orders_total", &[]),
        Some(want[0]),
        "no stray counts"
    );
    assert_eq!(
        m.value("shop_b_orders_total", &[]),
        Some(want[1]),
        "no stray counts"
    );
    envoy
}

/// Two plugins of this module in one VM (as for two listeners or two WasmPlugins of one
/// module): each request is counted by the plugin of its own listener, with its own
/// configuration (`proxy_on_context_create` says which root a request belongs to).
#[test]
fn plugins_sharing_a_vm_count_their_own_requests() {
    let envoy = orders_counted_per_listener(["shop_a", "shop_b"], &[(0, 5), (1, 3), (0, 2)]);
    // One set of VMs (2 workers, the main thread, the configuration check), not one per plugin.
    let vms = admin_stat(&envoy, "wasm.envoy.wasm.runtime.v8.active");
    assert!(
        vms.is_some_and(|n| n <= 4),
        "VMs shared by both plugins: {vms:?}"
    );
}

/// Only orders: no login counters.
const ORDERS_ONLY: &str = r#"{"counters": [{"name": "orders_placed_total", "match": {"method": "POST", "path": "/orders", "status": [201]}}],
  "http_metrics": {"handlers": ["/login", "/orders"]}}"#;

/// A → B → A while A's listener still drains (Envoy's default 600 s): Envoy reuses A's plugin
/// without configuring it again, and the requests after the revert must count by A's rules.
#[test]
fn a_revert_while_the_old_listener_drains_counts_by_the_reverted_rules() {
    let upstream = shop();
    let dir = TempDir(temp_dir("lds-revert"));
    let a = EnvoyOptions::new(SEED_WITH_HANDLERS, upstream.port);
    let envoy =
        start_lds(&a, &dir.0, &["--drain-time-s", "600"]).unwrap_or_else(|log| panic!("{log}"));
    let push = |config: &str| {
        let before = admin_stat(&envoy, "listener_manager.lds.update_success").unwrap_or(0);
        let mut opts = EnvoyOptions::new(config, upstream.port);
        opts.concurrency = a.concurrency;
        push_lds(&dir.0, &lds_resources(&opts, envoy.listen_port));
        eventually(Duration::from_secs(20), "the listener updated", || {
            admin_stat(&envoy, "listener_manager.lds.update_success")
                .is_some_and(|n| n > before)
                .then_some(())
        });
    };
    traffic(&envoy, 3, 2, 0);
    let m = wait_value(&envoy, "failed_login_details_total", &[], 2.0);
    assert_eq!(m.value("successful_login_details_total", &[]), Some(3.0));

    push(ORDERS_ONLY);
    traffic(&envoy, 1, 3, 5);
    let m = wait_value(&envoy, "orders_placed_total", &[], 5.0);
    assert_eq!(
        m.value("failed_login_details_total", &[]),
        Some(2.0),
        "B counts no logins"
    );

    push(SEED_WITH_HANDLERS);
    assert!(
        admin_stat(&envoy, "listener_manager.total_filter_chains_draining").is_some_and(|n| n >= 1),
        "A's first filter chain still drains, so Envoy reuses its plugin"
    );
    traffic(&envoy, 2, 4, 6);
    let m = wait_value(&envoy, "failed_login_details_total", &[], 6.0);
    assert_eq!(m.value("successful_login_details_total", &[]), Some(5.0));
    thread::sleep(Duration::from_millis(300));
    let m = envoy.scrape();
    assert_eq!(
        m.value("failed_login_details_total", &[]),
        Some(6.0),
        "no stray counts"
    );
    assert_eq!(
        m.value("orders_placed_total", &[]),
        Some(5.0),
        "A counts no orders"
    );
    assert_eq!(
        m.value("app_metrics_config_valid", &[("plugin", "app_metrics")]),
        Some(1.0)
    );
    eprintln!("config: revert A -> B -> A while A drains: 4 failed logins after the revert counted 4, orders 0");
}

/// Two listeners whose plugins share a name and a VM but not a configuration: each request is
/// counted by its own listener's.
#[test]
fn one_plugin_name_on_two_listeners_counts_by_each_listeners_configuration() {
    orders_counted_per_listener(["shop", "shop"], &[(0, 4), (1, 6), (0, 3), (1, 1)]);
}

/// A sampler on `path` every second, plus the seed counters.
fn sampling(path: &str) -> String {
    format!(
        r#"{{"samplers": [{{"name": "total_users", "cluster": "app", "path": "{path}", "interval_seconds": 1, "value": {{"json_pointer": "/count"}}}}]}}"#
    )
}

/// The sampler keeps sampling through a good config, a bad one (the last good one's sampler goes
/// on), a good one with another path, and after the old listeners drained away.
#[test]
fn samplers_keep_sampling_across_updates() {
    let count = Arc::new(Mutex::new((1u32, 100u32)));
    let upstream = {
        let count = count.clone();
        Upstream::start(move |_, url| {
            let (a, b) = *count.lock().unwrap();
            match url {
                "/count-a" => Reply::new(200, format!(r#"{{"count": {a}}}"#)),
                "/count-b" => Reply::new(200, format!(r#"{{"count": {b}}}"#)),
                _ => Reply::new(200, "ok"),
            }
        })
    };
    let dir = TempDir(temp_dir("lds-sampler"));
    let first = EnvoyOptions::new(&sampling("/count-a"), upstream.port);
    let envoy =
        start_lds(&first, &dir.0, &["--drain-time-s", "1"]).unwrap_or_else(|log| panic!("{log}"));
    let push = |config: &str| {
        let mut opts = EnvoyOptions::new(config, upstream.port);
        opts.concurrency = first.concurrency;
        push_lds(&dir.0, &lds_resources(&opts, envoy.listen_port));
    };
    let set = |a: u32, b: u32| *count.lock().unwrap() = (a, b);
    wait_value(&envoy, "total_users", &[], 1.0);

    push(BAD);
    eventually(Duration::from_secs(20), "the bad config logged", || {
        envoy
            .log()
            .contains("app_metrics: counters[0].match.method")
            .then_some(())
    });
    set(2, 100);
    wait_value(&envoy, "total_users", &[], 2.0);

    push(&sampling("/count-b"));
    wait_value(
        &envoy,
        "app_metrics_config_valid",
        &[("plugin", "app_metrics")],
        1.0,
    );
    set(2, 3);
    wait_value(&envoy, "total_users", &[], 3.0);
    eventually(
        Duration::from_secs(20),
        "the old filter chains drained",
        || {
            (admin_stat(&envoy, "listener_manager.total_filter_chains_draining") == Some(0))
                .then_some(())
        },
    );
    set(4, 5);
    let m = wait_value(&envoy, "total_users", &[], 5.0);
    let errors: f64 = m.series("app_metrics_sampler_errors_total").values().sum();
    assert_eq!(errors, 0.0, "{}", m.text);
}

/// A good → B bad → A again while A's listener still drains: Envoy reuses A's plugin (no new
/// `proxy_on_configure`), which counts by A's rules at once, and the gauge says A is in force as
/// soon as A serves (`lifecycle.rs`: a superseded root serving again), not a minute later.
#[test]
fn after_a_revert_to_a_live_good_config_the_gauge_recovers_once_the_bad_one_ends() {
    let upstream = shop();
    let dir = TempDir(temp_dir("lds-gauge"));
    let a = EnvoyOptions::new(SEED_WITH_HANDLERS, upstream.port);
    let envoy =
        start_lds(&a, &dir.0, &["--drain-time-s", "5"]).unwrap_or_else(|log| panic!("{log}"));
    let valid = |m: &Metrics| m.value("app_metrics_config_valid", &[("plugin", "app_metrics")]);
    let push = |config: &str| {
        let mut opts = EnvoyOptions::new(config, upstream.port);
        opts.concurrency = a.concurrency;
        push_lds(&dir.0, &lds_resources(&opts, envoy.listen_port));
    };
    traffic(&envoy, 1, 1, 0);
    wait_value(&envoy, "failed_login_details_total", &[], 1.0);
    push(BAD);
    eventually(Duration::from_secs(20), "the bad config taken", || {
        (valid(&envoy.scrape()) == Some(0.0)).then_some(())
    });
    push(SEED_WITH_HANDLERS);
    eventually(Duration::from_secs(20), "the revert taken", || {
        (admin_stat(&envoy, "listener_manager.listener_in_place_updated") == Some(2)).then_some(())
    });
    let reverted = Instant::now();
    traffic(&envoy, 0, 3, 0);
    wait_value(&envoy, "failed_login_details_total", &[], 4.0);
    let m = eventually(Duration::from_secs(120), "the gauge back at 1", || {
        let m = envoy.scrape();
        (valid(&m) == Some(1.0)).then_some(m)
    });
    eprintln!(
        "config: revert to a live good config: gauge 0 -> 1 {:.1} s after the revert",
        reverted.elapsed().as_secs_f64(),
    );
    assert!(
        reverted.elapsed() < Duration::from_secs(30),
        "A serves: the gauge says so before B's root has been silent for long"
    );
    // And stays so: B's root ending changes nothing.
    thread::sleep(Duration::from_secs(3));
    assert_eq!(valid(&envoy.scrape()), Some(1.0));
    assert_eq!(m.value("failed_login_details_total", &[]), Some(4.0));
}
