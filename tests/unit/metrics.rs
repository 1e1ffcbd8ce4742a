use super::*;
use crate::config::parse;
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
        status: Some(status),
        response_headers: &[],
        duration_ms: Some(3),
        proxy: None,
        total_ms: None,
        request_bytes: 10,
        response_bytes: 20,
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
        // One counter and three histograms for the one series.
        assert_eq!(host.names.borrow().len(), before + 4);
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
            status: None,
            response_headers: &[],
            duration_ms: Some(2500),
            proxy: None,
            total_ms: None,
            request_bytes: 7,
            response_bytes: 0,
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
        status,
        response_headers: &[],
        duration_ms: Some(7),
        proxy,
        total_ms,
        request_bytes: 0,
        response_bytes: 0,
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
        assert!(registry.sample_failed(&filter, &host, 0, Reason::Timeout));
        assert!(registry.sample_failed(&filter, &host, 0, Reason::Timeout));
        assert!(!registry.sample_failed(&filter, &host, 7, Reason::Timeout));
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
