//! Unit tests of src/filter.rs (compiled into the library's test build).

use super::*;
use crate::config::parse;
use crate::labels::{LabelSet, Side};
use crate::test_support::*;

logic_test!(
    fn classifies_handlers_and_exclusions() {
        let config = parse(br#"{"http_metrics": {"handlers": ["/users/{id}", "/login"], "excluded_handlers": ["/metrics"]}}"#).unwrap();
        let filter = Filter::new(&config);
        let http = filter.http.as_ref().unwrap();
        let e = filter.classify(b"GET", Some("/users/alice"), &[]);
        assert_eq!(
            e.handler.map(|h| http.handler_label(h)),
            Some("/users/{id}")
        );
        let e = filter.classify(b"POST", Some("/login"), &[]);
        assert_eq!(e.handler.map(|h| http.handler_label(h)), Some("/login"));
        assert_eq!(e.candidates, [0, 1]);
        let e = filter.classify(b"GET", Some("/secret/token-123"), &[]);
        assert_eq!(e.handler.map(|h| http.handler_label(h)), Some("none"));
        assert_eq!(filter.classify(b"GET", Some("/metrics"), &[]).handler, None);
        assert_eq!(
            filter
                .classify(b"GET", None, &[])
                .handler
                .map(|h| http.handler_label(h)),
            Some("none")
        );
    }
);

logic_test!(
    fn disabled_request_metrics() {
        let config = parse(br#"{"counters": [], "http_metrics": {"enabled": false}}"#).unwrap();
        let filter = Filter::new(&config);
        assert!(!filter.observes_requests());
        assert_eq!(filter.classify(b"GET", Some("/"), &[]).handler, None);
    }
);

logic_test!(
    fn the_path_is_read_only_when_something_looks_at_it() {
        let seed = Filter::new(&parse(b"").unwrap());
        assert!(seed.need_path(b"POST"));
        assert!(!seed.need_path(b"GET"));
        let templated =
            Filter::new(&parse(br#"{"http_metrics": {"handlers": ["/users/{id}"]}}"#).unwrap());
        assert!(templated.need_path(b"GET"));
        let excluding = Filter::new(
            &parse(br#"{"counters": [], "http_metrics": {"excluded_handlers": ["/metrics"]}}"#)
                .unwrap(),
        );
        assert!(excluding.need_path(b"GET"));
        let pathless =
            Filter::new(&parse(br#"{"counters": [{"name": "all_total", "match": {}}]}"#).unwrap());
        assert!(!pathless.need_path(b"GET"));
        // Skipping the path changes nothing: unmatched paths are `none` and match no path rule.
        let http = seed.http.as_ref().unwrap();
        let e = seed.classify(b"GET", None, &[]);
        assert_eq!(e.handler.map(|h| http.handler_label(h)), Some("none"));
        assert!(e.candidates.is_empty());
    }
);

logic_test!(
    fn label_headers_are_read_once_after_the_rules() {
        let config = parse(
            br#"{"counters": [{"name": "admin_total", "match": {"request_headers": {"X-Role": "admin"}},
                               "labels": [{"name": "client", "request_header": "x-client", "values": ["web"]}]}],
                 "http_metrics": {"labels": [
                    {"name": "role", "request_header": "x-role", "values": ["admin"]},
                    {"name": "client", "request_header": "X-Client", "values": ["web", "ios"]},
                    {"name": "version", "response_header": "x-version", "values": ["1"]}]}}"#,
        )
        .unwrap();
        let filter = Filter::new(&config);
        // x-role is the rule's header and a label's: read once; x-client once for two labels.
        assert_eq!(
            filter.request_names,
            [":method", ":path", "content-length", "x-role", "x-client"]
        );
        assert_eq!(
            filter.response_names,
            [":status", "content-length", UPSTREAM_TIME, "x-version"]
        );
        let http = filter.http.as_ref().unwrap();
        let headers: Vec<(&str, Side, usize)> = http
            .labels
            .labels
            .iter()
            .map(|l| (l.name.as_str(), l.side, l.header))
            .collect();
        assert_eq!(
            headers,
            [
                ("role", Side::Request, 0),
                ("client", Side::Request, 1),
                ("version", Side::Response, 0)
            ]
        );
        assert_eq!(filter.counter_labels[0].labels[0].header, 1);
        // The default configuration reads exactly the fixed headers.
        let default = Filter::new(&parse(b"").unwrap());
        assert_eq!(
            default.request_names,
            [":method", ":path", "content-length"]
        );
        assert_eq!(
            default.response_names,
            [":status", "content-length", UPSTREAM_TIME]
        );
        assert!(default.constant.is_empty());
        assert!(default.counter_labels.iter().all(LabelSet::is_empty));
        assert!(default.http.as_ref().unwrap().labels.is_empty());
    }
);

logic_test!(
    fn constant_labels_lead_every_stat_name_and_the_schedule_key() {
        let config = parse(
            br#"{"labels": {"service": "a", "tenant": "t1"},
                 "samplers": [{"name": "total_users", "cluster": "c", "path": "/p", "value": {"text": true}}]}"#,
        )
        .unwrap();
        let filter = Filter::new(&config);
        assert_eq!(
            filter.series_name("x_total", &[("handler", "/a")], &[("client", "web")]),
            "service=.=a;.;tenant=.=t1;.;handler=.=/a;.;client=.=web;.;x_total"
        );
        assert_eq!(
            filter.sampler_keys,
            ["app_metrics.sampler.service=.=a;.;tenant=.=t1;.;total_users.deadline_ms"]
        );
        let plain = Filter::new(
            &parse(br#"{"samplers": [{"name": "total_users", "cluster": "c", "path": "/p", "value": {"text": true}}]}"#)
                .unwrap(),
        );
        assert_eq!(
            plain.sampler_keys,
            ["app_metrics.sampler.total_users.deadline_ms"]
        );
    }
);

logic_test!(
    fn samplers_feeding_one_series_are_found() {
        let sampler = |name: &str| {
            format!(
                r#"{{"name": "{name}", "cluster": "app", "path": "/n", "value": {{"text": true}}}}"#
            )
        };
        let config = |labels: &str, samplers: &[&str]| {
            let samplers: Vec<String> = samplers.iter().map(|n| sampler(n)).collect();
            let text = format!(
                r#"{{"labels": {{{labels}}}, "samplers": [{}]}}"#,
                samplers.join(",")
            );
            Filter::new(&parse(text.as_bytes()).unwrap())
        };
        let a = config("", &["total_users", "orders"]);
        let b = config("", &["orders", "stock"]);
        assert_eq!(a.shared_samplers(&b), ["orders"]);
        assert_eq!(b.shared_samplers(&a), ["orders"]);
        // Constant labels make them two series, two schedules.
        let c = config(r#""service": "c""#, &["total_users", "orders"]);
        assert!(a.shared_samplers(&c).is_empty());
        let d = config(r#""service": "c""#, &["orders"]);
        assert_eq!(c.shared_samplers(&d), ["orders"]);
    }
);

logic_test!(
    fn the_prefix_leads_every_published_name_but_the_filters_own() {
        let filter = |json: &str| Filter::new(&parse(json.as_bytes()).unwrap());
        let gw = filter(r#"{"prefix": "gw_", "labels": {"service": "a"}}"#);
        assert_eq!(
            gw.series_name("http_requests_total", &[("handler", "/x")], &[]),
            "service=.=a;.;handler=.=/x;.;gw_http_requests_total"
        );
        assert_eq!(
            gw.own_series_name("app_metrics_sampler_errors_total", &[("sampler", "s")], &[]),
            "service=.=a;.;sampler=.=s;.;app_metrics_sampler_errors_total"
        );
        let plain = filter(r#"{"labels": {"service": "a"}}"#);
        assert_eq!(
            plain.series_name("http_requests_total", &[("handler", "/x")], &[]),
            "service=.=a;.;handler=.=/x;.;http_requests_total"
        );
        // A sampler's gauge with and without a prefix: two series, two schedules.
        let sampler = r#""samplers": [{"name": "orders", "cluster": "app", "path": "/n", "value": {"text": true}}]"#;
        let a = filter(&format!(r#"{{"prefix": "gw_", {sampler}}}"#));
        let b = filter(&format!(r#"{{{sampler}}}"#));
        assert!(a.shared_samplers(&b).is_empty());
    }
);
