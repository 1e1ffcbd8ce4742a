use super::*;
use crate::config::parse;
use crate::grpc::Code;
use crate::metrics::Rpc;
use crate::proxy::ProxyReason;
use crate::test_support::*;
use std::cell::RefCell;
use std::collections::BTreeMap;

/// Records stats by name, like Envoy's store.
#[derive(Default)]
struct FakeHost {
    names: RefCell<Vec<(Kind, String)>>,
    values: RefCell<BTreeMap<String, Vec<u64>>>,
}

impl FakeHost {
    fn value(&self, name: &str) -> Vec<u64> {
        self.values.borrow().get(name).cloned().unwrap_or_default()
    }
    fn name(&self, id: u32) -> String {
        self.names.borrow()[id as usize].1.clone()
    }
}

impl MetricHost for FakeHost {
    fn define(&self, kind: Kind, name: &str) -> Option<u32> {
        let mut names = self.names.borrow_mut();
        if let Some(i) = names.iter().position(|(k, n)| *k == kind && n == name) {
            return Some(i as u32);
        }
        names.push((kind, name.to_string()));
        Some(names.len() as u32 - 1)
    }
    fn increment(&self, id: u32, by: u64) -> bool {
        let name = self.name(id);
        let mut values = self.values.borrow_mut();
        let v = values.entry(name).or_default();
        if v.is_empty() {
            v.push(0);
        }
        v[0] += by;
        true
    }
    fn record(&self, id: u32, value: u64) -> bool {
        self.values
            .borrow_mut()
            .entry(self.name(id))
            .or_default()
            .push(value);
        true
    }
}

fn run(
    filter: &Filter,
    registry: &mut Registry,
    host: &FakeHost,
    method: &str,
    path: &str,
    status: u16,
) {
    let exchange = filter.classify(method.as_bytes(), Some(path), &[]);
    let done = Completed {
        exchange: &exchange,
        request_headers: &[],
        status: Some(status),
        response_headers: &[],
        duration_ms: Some(3),
        proxy: None,
        total_ms: None,
        request_bytes: 10,
        response_bytes: 20,
        bodies: None,
    };
    assert!(registry.record(filter, host, &done));
}

logic_test!(
    fn a_login_becomes_counters_and_request_metrics() {
        let config =
            parse(br#"{"http_metrics": {"handlers": ["/login", "/users/{user_id}"]}}"#).unwrap();
        let filter = Filter::new(&config);
        let host = FakeHost::default();
        let mut registry = Registry::new(&filter, &host);
        // Seed counters exist before any traffic.
        assert!(host
            .names
            .borrow()
            .iter()
            .any(|(_, n)| n == "successful_login_details_total"));
        run(&filter, &mut registry, &host, "POST", "/login", 200);
        run(&filter, &mut registry, &host, "POST", "/login", 200);
        run(&filter, &mut registry, &host, "POST", "/login", 400);
        run(&filter, &mut registry, &host, "POST", "/login", 422);
        run(&filter, &mut registry, &host, "GET", "/users/bob", 404);
        run(&filter, &mut registry, &host, "BREW", "/secret-token", 418);
        assert_eq!(host.value("successful_login_details_total"), [2]);
        assert_eq!(host.value("failed_login_details_total"), [1]);
        assert_eq!(
            host.value("handler=.=/login;.;method=.=POST;.;status=.=2xx;.;http_requests_total"),
            [2]
        );
        assert_eq!(
            host.value("handler=.=/login;.;method=.=POST;.;status=.=4xx;.;http_requests_total"),
            [2]
        );
        assert_eq!(
            host.value(
                "handler=.=/users/{user_id};.;method=.=GET;.;status=.=4xx;.;http_requests_total"
            ),
            [1]
        );
        assert_eq!(
            host.value("handler=.=none;.;method=.=other;.;status=.=4xx;.;http_requests_total"),
            [1]
        );
        assert_eq!(
            host.value("handler=.=/login;.;method=.=POST;.;http_request_duration_milliseconds"),
            [3, 3, 3, 3]
        );
        assert_eq!(
            host.value("handler=.=/login;.;http_request_size_bytes"),
            [10, 10, 10, 10]
        );
        assert_eq!(
            host.value("handler=.=/login;.;http_response_size_bytes"),
            [20, 20, 20, 20]
        );
        // Nothing from the request itself became a name.
        assert!(host
            .names
            .borrow()
            .iter()
            .all(|(_, n)| !n.contains("bob") && !n.contains("secret") && !n.contains("BREW")));
    }
);

logic_test!(
    fn series_are_defined_once() {
        let filter = Filter::new(&parse(b"{}").unwrap());
        let host = FakeHost::default();
        let mut registry = Registry::new(&filter, &host);
        let before = host.names.borrow().len();
        for _ in 0..100 {
            run(&filter, &mut registry, &host, "GET", "/anything", 200);
        }
        // One counter and three histograms for the one series, in the flat tables: without
        // dynamic labels nothing goes to the sparse one.
        assert_eq!(host.names.borrow().len(), before + 4);
        assert!(registry.labelled.is_empty());
        assert_eq!(registry.requests.len(), 60);
        assert_eq!(
            host.value("handler=.=none;.;method=.=GET;.;status=.=2xx;.;http_requests_total"),
            [100]
        );
    }
);

logic_test!(
    fn no_response_is_status_other() {
        let config = br#"{"counters": [
            {"name": "logins_total", "match": {"method": "POST", "path": "/login"}},
            {"name": "successful_logins_total", "match": {"method": "POST", "path": "/login", "status": ["2xx"]}}
        ]}"#;
        let filter = Filter::new(&parse(config).unwrap());
        let host = FakeHost::default();
        let mut registry = Registry::new(&filter, &host);
        let exchange = filter.classify(b"POST", Some("/login"), &[]);
        let done = Completed {
            exchange: &exchange,
            request_headers: &[],
            status: None,
            response_headers: &[],
            duration_ms: Some(2500),
            proxy: None,
            total_ms: None,
            request_bytes: 7,
            response_bytes: 0,
            bodies: None,
        };
        assert!(registry.record(&filter, &host, &done));
        assert_eq!(
            host.value("handler=.=none;.;method=.=POST;.;status=.=other;.;http_requests_total"),
            [1]
        );
        assert_eq!(
            host.value("handler=.=none;.;method=.=POST;.;http_request_duration_milliseconds"),
            [2500]
        );
        // The counter without a status condition counts it; the one asking for 2xx does not.
        assert_eq!(host.value("logins_total"), [1]);
        assert!(host.value("successful_logins_total").is_empty());
    }
);

/// One finished request as the glue hands it over: `proxy` for an answer Envoy made itself,
/// `total_ms` when `total_duration` is on.
fn finish(
    filter: &Filter,
    registry: &mut Registry,
    host: &FakeHost,
    (method, path, status): (&str, &str, Option<u16>),
    proxy: Option<ProxyReason>,
    total_ms: Option<u64>,
) {
    let exchange = filter.classify(method.as_bytes(), Some(path), &[]);
    let done = Completed {
        exchange: &exchange,
        request_headers: &[],
        status,
        response_headers: &[],
        duration_ms: Some(7),
        proxy,
        total_ms,
        request_bytes: 0,
        response_bytes: 0,
        bodies: None,
    };
    assert!(registry.record(filter, host, &done));
}

logic_test!(
    fn envoys_own_answers_are_counted_by_reason_beside_every_request() {
        let config = br#"{"counters": [], "http_metrics": {"handlers": ["/users/{id}"]}}"#;
        let filter = Filter::new(&parse(config).unwrap());
        let host = FakeHost::default();
        let mut registry = Registry::new(&filter, &host);
        let get = |status| ("GET", "/users/7", Some(status));
        for _ in 0..3 {
            finish(&filter, &mut registry, &host, get(503), None, None); // the app's 503
        }
        finish(&filter, &mut registry, &host, get(500), None, None);
        for _ in 0..2 {
            let unreachable = Some(ProxyReason::ConnectionFailure);
            finish(&filter, &mut registry, &host, get(503), unreachable, None);
        }
        let timeout = Some(ProxyReason::Timeout);
        finish(&filter, &mut registry, &host, get(504), timeout, None);
        let nowhere = ("POST", "/nowhere", Some(404));
        finish(
            &filter,
            &mut registry,
            &host,
            nowhere,
            Some(ProxyReason::NoRoute),
            None,
        );
        let proxy = |handler: &str, status: &str, reason: &str| {
            host.value(&format!(
                "handler=.={handler};.;status=.={status};.;reason=.={reason};.;http_proxy_responses_total"
            ))
        };
        assert_eq!(proxy("/users/{id}", "5xx", "connection_failure"), [2]);
        assert_eq!(proxy("/users/{id}", "5xx", "timeout"), [1]);
        assert_eq!(proxy("none", "4xx", "no_route"), [1]);
        // Every request is in http_requests_total, the app's and Envoy's alike.
        assert_eq!(
            host.value("handler=.=/users/{id};.;method=.=GET;.;status=.=5xx;.;http_requests_total"),
            [7]
        );
        let proxy_series = host
            .names
            .borrow()
            .iter()
            .filter(|(_, n)| n.ends_with("http_proxy_responses_total"))
            .count();
        assert_eq!(proxy_series, 3, "nothing for the app's own 5xx");
        // Without total_duration, no whole-request histogram, whatever the glue hands over.
        finish(&filter, &mut registry, &host, get(200), None, Some(9));
        assert!(host
            .names
            .borrow()
            .iter()
            .all(|(_, n)| !n.contains("total_duration")));
    }
);

logic_test!(
    fn total_duration_times_every_request_when_asked() {
        let config = br#"{"counters": [], "http_metrics": {"total_duration": true}}"#;
        let filter = Filter::new(&parse(config).unwrap());
        assert!(filter.total_duration());
        let host = FakeHost::default();
        let mut registry = Registry::new(&filter, &host);
        finish(
            &filter,
            &mut registry,
            &host,
            ("GET", "/a", Some(200)),
            None,
            Some(12),
        );
        let reset = Some(ProxyReason::Reset);
        finish(
            &filter,
            &mut registry,
            &host,
            ("GET", "/b", Some(503)),
            reset,
            Some(40),
        );
        finish(
            &filter,
            &mut registry,
            &host,
            ("PUT", "/c", None),
            None,
            Some(900),
        );
        assert_eq!(
            host.value("handler=.=none;.;method=.=GET;.;http_request_total_duration_milliseconds"),
            [12, 40]
        );
        assert_eq!(
            host.value("handler=.=none;.;method=.=PUT;.;http_request_total_duration_milliseconds"),
            [900]
        );
        // The app-time histogram is unchanged beside it.
        assert_eq!(
            host.value("handler=.=none;.;method=.=GET;.;http_request_duration_milliseconds"),
            [7, 7]
        );
        assert_eq!(
            host.value(
                "handler=.=none;.;status=.=5xx;.;reason=.=reset;.;http_proxy_responses_total"
            ),
            [1]
        );
        let off = Filter::new(
            &parse(br#"{"http_metrics": {"enabled": false, "total_duration": true}}"#).unwrap(),
        );
        assert!(!off.total_duration());
    }
);

logic_test!(
    fn sampler_outcomes() {
        let config = parse(br#"{"samplers": [{"name": "total_users", "cluster": "app", "path": "/users/count", "value": {"json_pointer": "/count"}}]}"#).unwrap();
        let filter = Filter::new(&config);
        let host = FakeHost::default();
        let mut registry = Registry::new(&filter, &host);
        assert!(registry.sample_ok(&filter, &host, 0, 12, 1_700_000_000));
        assert!(registry.sample_failed(&filter, &host, 0, SampleError::Timeout));
        assert!(registry.sample_failed(&filter, &host, 0, SampleError::Timeout));
        assert!(!registry.sample_failed(&filter, &host, 7, SampleError::Timeout));
        assert_eq!(host.value("total_users"), [12]);
        assert_eq!(
            host.value(
                "sampler=.=total_users;.;app_metrics_sampler_last_success_timestamp_seconds"
            ),
            [1_700_000_000]
        );
        assert_eq!(
            host.value(
                "sampler=.=total_users;.;reason=.=timeout;.;app_metrics_sampler_errors_total"
            ),
            [2]
        );
    }
);

// `prefix` (issue 21): the sampler's gauge and the gRPC metrics take it, the filter's own
// app_metrics_* series do not.
logic_test!(
    fn the_prefix_leads_the_gauge_and_grpc_names_not_the_filters_own() {
        let config = parse(br#"{"prefix": "gw_", "counters": [], "http_metrics": {"enabled": false},
            "samplers": [{"name": "total_users", "cluster": "app", "path": "/n", "value": {"text": true}}],
            "grpc": {"methods": ["/a.B/C"], "handling_time": true}}"#).unwrap();
        let filter = Filter::new(&config);
        let host = FakeHost::default();
        let mut registry = Registry::new(&filter, &host);
        assert!(registry.sample_ok(&filter, &host, 0, 12, 1_700_000_000));
        assert!(registry.sample_failed(&filter, &host, 0, SampleError::Timeout));
        assert_eq!(host.value("gw_total_users"), [12]);
        assert!(host.value("total_users").is_empty());
        assert_eq!(
            host.value(
                "sampler=.=total_users;.;reason=.=timeout;.;app_metrics_sampler_errors_total"
            ),
            [1]
        );
        assert_eq!(
            host.value(
                "sampler=.=total_users;.;app_metrics_sampler_last_success_timestamp_seconds"
            ),
            [1_700_000_000]
        );
        let rpc = Rpc {
            index: filter.grpc.as_ref().unwrap().methods.find(b"/a.B/C"),
            request_headers: &[],
            response_headers: &[],
        };
        assert!(registry.grpc_started(&filter, &host, &rpc));
        assert!(registry.grpc_handled(&filter, &host, &rpc, Code::Ok, Some(5), None));
        let labels = "method=.=POST;.;grpc_type=.=unary;.;grpc_service=.=a.B;.;grpc_method=.=C;.;";
        assert_eq!(
            host.value(&format!("{labels}gw_grpc_server_started_total")),
            [1]
        );
        assert_eq!(
            host.value(&format!(
                "{labels}grpc_code=.=OK;.;gw_grpc_server_handled_total"
            )),
            [1]
        );
        assert_eq!(
            host.value(&format!("{labels}gw_grpc_server_handling_milliseconds")),
            [5]
        );
    }
);

/// One request with request headers `x-client` / `x-tenant` and response header `x-version`
/// (by their positions in the filter's label headers), `None` when absent.
#[allow(clippy::too_many_arguments)]
fn run_with(
    filter: &Filter,
    registry: &mut Registry,
    host: &FakeHost,
    method: &str,
    path: &str,
    status: Option<u16>,
    request: &[Option<&[u8]>],
    response: &[Option<&[u8]>],
) {
    let exchange = filter.classify(method.as_bytes(), Some(path), request);
    let done = Completed {
        exchange: &exchange,
        request_headers: request,
        status,
        response_headers: response,
        duration_ms: Some(4),
        proxy: None,
        total_ms: None,
        request_bytes: 1,
        response_bytes: 2,
        bodies: None,
    };
    assert!(registry.record(filter, host, &done));
}

const LABELLED: &[u8] = br#"{
  "labels": {"service": "shop"},
  "counters": [{"name": "failed_login_details_total",
                "match": {"method": "POST", "path": "/login", "status": [400, 401]},
                "labels": [{"name": "client", "request_header": "x-client", "values": ["web", "ios"]}]},
               {"name": "logins_total", "match": {"method": "POST", "path": "/login"}}],
  "http_metrics": {"handlers": ["/login"],
                   "labels": [{"name": "client", "request_header": "x-client", "values": ["web", "ios"]},
                              {"name": "version", "response_header": "x-version", "values": ["1.4.2"]}]},
  "samplers": [{"name": "total_users", "cluster": "app", "path": "/users/count", "value": {"text": true}}]
}"#;

logic_test!(
    fn dynamic_labels_count_each_value_listed_other_and_none() {
        let filter = Filter::new(&parse(LABELLED).unwrap());
        let host = FakeHost::default();
        let mut registry = Registry::new(&filter, &host);
        // Defined up front: the unlabelled counter and the gauge, with the constant label; the
        // labelled counter has no series before a request makes one.
        assert_eq!(
            host.names
                .borrow()
                .iter()
                .map(|(_, n)| n.as_str())
                .collect::<Vec<_>>(),
            [
                "service=.=shop;.;logins_total",
                "service=.=shop;.;total_users"
            ]
        );
        let (web, ios, curl): (&[u8], &[u8], &[u8]) = (b"web", b"ios", b"curl");
        let v142: &[u8] = b"1.4.2";
        for (client, version, status, n) in [
            (Some(web), Some(v142), Some(401), 3),
            (Some(ios), None, Some(400), 2),
            (Some(curl), Some(b"9".as_slice()), Some(401), 4),
            (None, Some(v142), Some(401), 1),
            (Some(web), Some(v142), Some(200), 5),
            (None, None, None, 1),
        ] {
            for _ in 0..n {
                run_with(
                    &filter,
                    &mut registry,
                    &host,
                    "POST",
                    "/login",
                    status,
                    &[client],
                    &[version],
                );
            }
        }
        let failed = |client: &str| {
            host.value(&format!(
                "service=.=shop;.;client=.={client};.;failed_login_details_total"
            ))
        };
        assert_eq!(failed("web"), [3]);
        assert_eq!(failed("ios"), [2]);
        assert_eq!(failed("other"), [4]);
        assert_eq!(failed("none"), [1]);
        assert_eq!(host.value("service=.=shop;.;logins_total"), [16]);
        let requests = |client: &str, version: &str, status: &str| {
            host.value(&format!(
                "service=.=shop;.;handler=.=/login;.;method=.=POST;.;status=.={status};.;client=.={client};.;version=.={version};.;http_requests_total"
            ))
        };
        assert_eq!(requests("web", "1.4.2", "4xx"), [3]);
        assert_eq!(requests("ios", "none", "4xx"), [2]);
        assert_eq!(requests("other", "other", "4xx"), [4]);
        assert_eq!(requests("none", "1.4.2", "4xx"), [1]);
        assert_eq!(requests("web", "1.4.2", "2xx"), [5]);
        assert_eq!(requests("none", "none", "other"), [1]);
        // All four request metrics carry the labels.
        assert_eq!(
            host.value("service=.=shop;.;handler=.=/login;.;method=.=POST;.;client=.=web;.;version=.=1.4.2;.;http_request_duration_milliseconds"),
            [4; 8]
        );
        assert_eq!(
            host.value("service=.=shop;.;handler=.=/login;.;client=.=other;.;version=.=other;.;http_request_size_bytes"),
            [1; 4]
        );
        assert_eq!(
            host.value("service=.=shop;.;handler=.=/login;.;client=.=ios;.;version=.=none;.;http_response_size_bytes"),
            [2; 2]
        );
        // Defined once each: 2 up front; 4 failed-login series; 6 request series × 4 metrics
        // but the duration/size histograms of equal label sets (status aside) are shared: 6 + 5 × 3.
        assert_eq!(host.names.borrow().len(), 2 + 4 + 6 + 5 * 3);
        // Nothing from the request itself became a name.
        assert!(host
            .names
            .borrow()
            .iter()
            .all(|(_, n)| !n.contains("curl") && !n.contains("=.=9;")));
    }
);

logic_test!(
    fn constant_labels_reach_the_sampler_series_but_not_config_valid() {
        let filter = Filter::new(&parse(LABELLED).unwrap());
        let host = FakeHost::default();
        let mut registry = Registry::new(&filter, &host);
        assert!(registry.sample_ok(&filter, &host, 0, 7, 1_700_000_000));
        assert!(registry.sample_failed(&filter, &host, 0, SampleError::Parse));
        assert_eq!(host.value("service=.=shop;.;total_users"), [7]);
        assert_eq!(
            host.value("service=.=shop;.;sampler=.=total_users;.;app_metrics_sampler_last_success_timestamp_seconds"),
            [1_700_000_000]
        );
        assert_eq!(
            host.value("service=.=shop;.;sampler=.=total_users;.;reason=.=parse;.;app_metrics_sampler_errors_total"),
            [1]
        );
        assert!(config_valid(&host, b"app_metrics", true));
        assert_eq!(
            host.value("plugin=.=app_metrics;.;app_metrics_config_valid"),
            [1]
        );
    }
);

/// Refuses every definition: a labelled series is then retried on its next request, and
/// nothing is counted meanwhile.
#[derive(Default)]
struct RefusingHost {
    inner: FakeHost,
    refuse: std::cell::Cell<bool>,
}

impl MetricHost for RefusingHost {
    fn define(&self, kind: Kind, name: &str) -> Option<u32> {
        if self.refuse.get() {
            None
        } else {
            self.inner.define(kind, name)
        }
    }
    fn increment(&self, id: u32, by: u64) -> bool {
        self.inner.increment(id, by)
    }
    fn record(&self, id: u32, value: u64) -> bool {
        self.inner.record(id, value)
    }
}

logic_test!(
    fn a_labelled_series_the_host_refused_is_defined_on_a_later_request() {
        let filter = Filter::new(&parse(LABELLED).unwrap());
        let host = RefusingHost::default();
        let mut registry = Registry::new(&filter, &host);
        host.refuse.set(true);
        let exchange = filter.classify(b"POST", Some("/login"), &[Some(b"web")]);
        let web: [Option<&[u8]>; 1] = [Some(b"web")];
        let done = Completed {
            exchange: &exchange,
            request_headers: &web,
            status: Some(401),
            response_headers: &[],
            duration_ms: None,
            proxy: None,
            total_ms: None,
            request_bytes: 0,
            response_bytes: 0,
            bodies: None,
        };
        assert!(!registry.record(&filter, &host, &done));
        host.refuse.set(false);
        assert!(registry.record(&filter, &host, &done));
        assert_eq!(
            host.inner
                .value("service=.=shop;.;client=.=web;.;failed_login_details_total"),
            [1]
        );
    }
);

// The request metrics issue 15 added carry the same labels as the others: constant and dynamic.
logic_test!(
    fn proxy_responses_and_total_durations_carry_the_labels_too() {
        for dynamic in [false, true] {
            let labels = if dynamic {
                r#", "labels": [{"name": "client", "request_header": "x-client", "values": ["web"]}]"#
            } else {
                ""
            };
            let config = format!(
                r#"{{"labels": {{"service": "shop"}}, "counters": [],
                    "http_metrics": {{"handlers": ["/users/{{id}}"], "total_duration": true{labels}}}}}"#
            );
            let filter = Filter::new(&parse(config.as_bytes()).unwrap());
            let host = FakeHost::default();
            let mut registry = Registry::new(&filter, &host);
            let exchange = filter.classify(b"GET", Some("/users/7"), &[]);
            let web: [Option<&[u8]>; 1] = [Some(b"web")];
            for (proxy, total_ms) in [
                (Some(ProxyReason::Timeout), Some(1000)),
                (None, Some(12)),
                (Some(ProxyReason::Timeout), Some(1001)),
            ] {
                let done = Completed {
                    exchange: &exchange,
                    request_headers: &web,
                    status: Some(504),
                    response_headers: &[],
                    duration_ms: Some(5),
                    proxy,
                    total_ms,
                    request_bytes: 0,
                    response_bytes: 0,
                    bodies: None,
                };
                assert!(registry.record(&filter, &host, &done));
            }
            let client = if dynamic { "client=.=web;.;" } else { "" };
            assert_eq!(
                host.value(&format!(
                    "service=.=shop;.;handler=.=/users/{{id}};.;status=.=5xx;.;reason=.=timeout;.;{client}http_proxy_responses_total"
                )),
                [2],
                "dynamic labels: {dynamic}"
            );
            assert_eq!(
                host.value(&format!(
                    "service=.=shop;.;handler=.=/users/{{id}};.;method=.=GET;.;{client}http_request_total_duration_milliseconds"
                )),
                [1000, 12, 1001],
                "dynamic labels: {dynamic}"
            );
        }
    }
);

/// A `POST /chat` answered 200 with `body` (JSON; `None`: no body seen), the `x-tier` request
/// header `gold`.
fn chat(filter: &Filter, registry: &mut Registry, host: &FakeHost, body: Option<&[u8]>) {
    use crate::body::{Pending, Reading};
    use crate::labels::Side;
    let headers: [Option<&[u8]>; 1] = [Some(b"gold")];
    let exchange = filter.classify(b"POST", Some("/chat"), &headers);
    let pending = body.map(|body| {
        let rules = &filter.rules;
        let concerned = rules.reading_body(Side::Response, b"POST", Some("/chat"), Some(200));
        let mut response = Reading::start(rules, concerned, Some(b"application/json"), None, None);
        response.push(body);
        response.end(rules, Side::Response);
        Pending {
            response,
            ..Pending::default()
        }
    });
    let done = Completed {
        exchange: &exchange,
        request_headers: &headers,
        status: Some(200),
        response_headers: &[],
        duration_ms: None,
        proxy: None,
        total_ms: None,
        request_bytes: 0,
        response_bytes: 0,
        bodies: pending.as_ref(),
    };
    assert!(registry.record(filter, host, &done));
}

logic_test!(
    fn body_rules_add_their_amounts_and_say_why_not() {
        let config = parse(
            br#"{"http_metrics": {"enabled": false}, "counters": [
              {"name": "tokens_total", "match": {"method": "POST", "path": "/chat", "status": ["2xx"]},
               "increment": {"response_json": "/usage/total_tokens"}},
              {"name": "tier_tokens_total", "match": {"method": "POST", "path": "/chat"},
               "increment": {"response_json": "/usage/total_tokens"},
               "labels": [{"name": "tier", "request_header": "x-tier", "values": ["gold"]}]},
              {"name": "errors_total",
               "match": {"method": "POST", "path": "/chat", "response_json": [{"pointer": "/error", "present": true}]}}
            ]}"#,
        )
        .unwrap();
        let filter = Filter::new(&config);
        let host = FakeHost::default();
        let mut registry = Registry::new(&filter, &host);
        let not_counted = |reason: &str| {
            host.value(&format!(
                "reason=.={reason};.;app_metrics_body_not_counted_total"
            ))
        };
        chat(
            &filter,
            &mut registry,
            &host,
            Some(br#"{"usage": {"total_tokens": 7}}"#),
        );
        chat(
            &filter,
            &mut registry,
            &host,
            Some(br#"{"usage": {"total_tokens": 5}, "error": "x"}"#),
        );
        assert_eq!(host.value("tokens_total"), [12]);
        assert_eq!(host.value("tier=.=gold;.;tier_tokens_total"), [12]);
        assert_eq!(host.value("errors_total"), [1]);
        // A false condition is no reason; a missing amount is, per counter that matched.
        chat(&filter, &mut registry, &host, Some(br#"{"usage": {}}"#));
        assert_eq!(host.value("tokens_total"), [12]);
        assert_eq!(not_counted("missing"), [2]);
        chat(
            &filter,
            &mut registry,
            &host,
            Some(br#"{"usage": {"total_tokens": -1}}"#),
        );
        assert_eq!(not_counted("invalid"), [2]);
        // No body seen: every body counter that otherwise matched says so.
        chat(&filter, &mut registry, &host, None);
        assert_eq!(not_counted("no_body"), [3]);
        assert_eq!(host.value("errors_total"), [1]);
        assert_eq!(host.value("tokens_total"), [12]);
    }
);

logic_test!(
    fn grpc_series_carry_the_rpc_labels_after_the_constant_ones() {
        let config = parse(
            br#"{"labels": {"service": "shop"}, "counters": [],
                 "grpc": {"methods": ["/shop.v1.Cart/Add", {"path": "/shop.v1.Cart/Watch", "type": "server_stream"}],
                          "handling_time": true}}"#,
        )
        .unwrap();
        let filter = Filter::new(&config);
        let host = FakeHost::default();
        let mut registry = Registry::new(&filter, &host);
        let grpc = filter.grpc.as_ref().unwrap();
        let rpc = |path: &[u8]| Rpc {
            index: grpc.methods.find(path),
            request_headers: &[],
            response_headers: &[],
        };
        let (add, other) = (rpc(b"/shop.v1.Cart/Add"), rpc(b"/evil/../x"));
        assert!(registry.grpc_started(&filter, &host, &add));
        assert!(registry.grpc_handled(&filter, &host, &add, Code::NotFound, Some(12), None));
        assert!(registry.grpc_handled(&filter, &host, &add, Code::NotFound, Some(30), None));
        assert!(registry.grpc_started(&filter, &host, &other));
        assert!(registry.grpc_handled(&filter, &host, &other, Code::Ok, None, Some((1, 2))));
        let lead = "service=.=shop;.;method=.=POST;.;";
        let add_labels = "grpc_type=.=unary;.;grpc_service=.=shop.v1.Cart;.;grpc_method=.=Add;.;";
        assert_eq!(
            host.value(&format!("{lead}{add_labels}grpc_server_started_total")),
            [1]
        );
        assert_eq!(
            host.value(&format!(
                "{lead}{add_labels}grpc_code=.=NotFound;.;grpc_server_handled_total"
            )),
            [2]
        );
        assert_eq!(
            host.value(&format!(
                "{lead}{add_labels}grpc_server_handling_milliseconds"
            )),
            [12, 30]
        );
        let other_labels = "grpc_type=.=unknown;.;grpc_service=.=other;.;grpc_method=.=other;.;";
        assert_eq!(
            host.value(&format!(
                "{lead}{other_labels}grpc_code=.=OK;.;grpc_server_handled_total"
            )),
            [1]
        );
        // No duration, no histogram sample; messages are not counted without `messages`.
        assert!(host
            .value(&format!(
                "{lead}{other_labels}grpc_server_handling_milliseconds"
            ))
            .is_empty());
        assert!(host.names.borrow().iter().all(|(_, n)| !n.contains("msg_")));
    }
);

logic_test!(
    fn grpc_series_take_the_request_metrics_dynamic_labels() {
        let config = parse(
            br#"{"counters": [], "grpc": {"methods": ["/a.B/C"], "handling_time": true},
                 "http_metrics": {"labels": [{"name": "client", "request_header": "x-client", "values": ["web"]}]}}"#,
        )
        .unwrap();
        let filter = Filter::new(&config);
        let host = FakeHost::default();
        let mut registry = Registry::new(&filter, &host);
        let index = filter.grpc.as_ref().unwrap().methods.find(b"/a.B/C");
        let web: [Option<&[u8]>; 1] = [Some(b"web")];
        let rpc = Rpc {
            index,
            request_headers: &web,
            response_headers: &[],
        };
        assert!(registry.grpc_started(&filter, &host, &rpc));
        assert!(registry.grpc_handled(&filter, &host, &rpc, Code::Ok, Some(5), None));
        let rpc = Rpc {
            index,
            request_headers: &[],
            response_headers: &[],
        };
        assert!(registry.grpc_handled(&filter, &host, &rpc, Code::Ok, Some(7), None));
        let labels = "method=.=POST;.;grpc_type=.=unary;.;grpc_service=.=a.B;.;grpc_method=.=C;.;";
        assert_eq!(
            host.value(&format!("{labels}client=.=web;.;grpc_server_started_total")),
            [1]
        );
        assert_eq!(
            host.value(&format!(
                "{labels}grpc_code=.=OK;.;client=.=web;.;grpc_server_handled_total"
            )),
            [1]
        );
        assert_eq!(
            host.value(&format!(
                "{labels}grpc_code=.=OK;.;client=.=none;.;grpc_server_handled_total"
            )),
            [1]
        );
        assert_eq!(
            host.value(&format!(
                "{labels}client=.=none;.;grpc_server_handling_milliseconds"
            )),
            [7]
        );
    }
);

logic_test!(
    fn a_request_whose_maps_the_host_could_not_hand_over_is_counted_under_why_and_labelled() {
        let filter = Filter::new(&parse(LABELLED).unwrap());
        let host = FakeHost::default();
        let mut registry = Registry::new(&filter, &host);
        let memory = crate::memory::Unread::from_status(crate::memory::NO_MEMORY_STATUS);
        assert!(registry.request_not_counted(&filter, &host, memory));
        assert!(registry.request_not_counted(&filter, &host, memory));
        assert!(registry.request_not_counted(&filter, &host, crate::memory::Unread::Host));
        assert_eq!(
            host.value("service=.=shop;.;reason=.=memory;.;app_metrics_requests_not_counted_total"),
            [2]
        );
        assert_eq!(
            host.value("service=.=shop;.;reason=.=host;.;app_metrics_requests_not_counted_total"),
            [1]
        );
    }
);
