use super::*;
use crate::grpc::RpcType;
use crate::json::{Json, Number};
use crate::labels::Side;
use crate::test_support::*;

fn err(json: &str) -> String {
    match parse(json.as_bytes()) {
        Ok(c) => panic!("accepted {json}: {c:?}"),
        Err(e) => e.to_string(),
    }
}

logic_test!(
    fn empty_or_absent_means_seed_defaults() {
        for input in ["", "  \n", "{}"] {
            let config = parse(input.as_bytes()).unwrap();
            assert_eq!(config, Config::default());
            assert_eq!(config.counters.len(), 2);
            assert_eq!(config.counters[0].name, "successful_login_details_total");
            assert_eq!(config.counters[1].name, "failed_login_details_total");
            assert!(config.http_metrics.enabled);
            assert!(config.samplers.is_empty());
        }
        assert!(parse(br#"{"counters": []}"#).unwrap().counters.is_empty());
    }
);

logic_test!(
    fn the_issue_example_parses() {
        let config = parse(
            br#"{
      "counters": [
        {"name": "successful_login_details_total", "help": "Successful login details",
         "match": {"method": "POST", "path": "/login", "status": ["2xx"]}},
        {"name": "failed_login_details_total", "help": "Failed login details",
         "match": {"method": "POST", "path": "/login", "status": [400, 401]}}
      ],
      "http_metrics": {"enabled": true,
        "handlers": ["/login", "/users", "/users/count", "/users/{user_id}", "/health"],
        "excluded_handlers": ["/metrics"]},
      "samplers": [
        {"name": "total_users", "help": "Total Users", "cluster": "app", "authority": "app",
         "path": "/users/count", "interval_seconds": 30, "timeout_ms": 1000,
         "value": {"json_pointer": "/count"}}
      ]
    }"#,
        )
        .unwrap();
        assert_eq!(config.counters, seed_counters());
        assert_eq!(
            config.samplers[0].value,
            ValueSource::JsonPointer("/count".into())
        );
        assert_eq!(config.http_metrics.handlers.len(), 5);
    }
);

logic_test!(
    fn total_duration_is_off_unless_asked_for() {
        assert!(!parse(b"{}").unwrap().http_metrics.total_duration);
        let on = parse(br#"{"http_metrics": {"total_duration": true}}"#).unwrap();
        assert!(on.http_metrics.total_duration && on.http_metrics.enabled);
        // Only the histograms have _bucket/_sum/_count series; the counters reserve their own name.
        assert!(parse(
            br#"{"counters": [{"name": "http_proxy_responses_total_count", "match": {}}]}"#
        )
        .is_ok());
    }
);

logic_test!(
    fn sampler_defaults() {
        let config = parse(br#"{"samplers": [{"name": "n", "cluster": "c", "path": "/n", "value": {"text": true}}]}"#).unwrap();
        let s = &config.samplers[0];
        assert_eq!(s.interval_seconds, 30);
        assert_eq!(s.timeout_ms, 1000);
        assert_eq!(s.max_body_bytes, 65536);
        assert_eq!(s.authority(), "c");
        assert_eq!(s.value, ValueSource::Text);
    }
);

// Istio's cluster names are not host names: the sample request's Host is the service's.
logic_test!(
    fn authority_from_istio_cluster_names() {
        let sampler = |cluster: &str, authority: &str| {
            let json = format!(
                r#"{{"samplers": [{{"name": "n", "cluster": "{cluster}", {authority} "path": "/n", "value": {{"text": true}}}}]}}"#
            );
            parse(json.as_bytes()).map(|c| c.samplers[0].authority())
        };
        assert_eq!(
            sampler("outbound|8000||app.ns.svc.cluster.local", "").unwrap(),
            "app.ns.svc.cluster.local:8000"
        );
        assert_eq!(
            sampler("outbound|8000|v1|app.ns.svc.cluster.local", "").unwrap(),
            "app.ns.svc.cluster.local:8000"
        );
        assert_eq!(
            sampler(
                "outbound|8000||app.ns.svc.cluster.local",
                r#""authority": "app","#
            )
            .unwrap(),
            "app"
        );
        assert_eq!(sampler("inbound|8000||", "").unwrap(), "localhost:8000");
        // A waypoint's cluster for a Service it serves (Istio ambient mode).
        assert_eq!(
            sampler("inbound-vip|8000|http|app.ns.svc.cluster.local", "").unwrap(),
            "app.ns.svc.cluster.local:8000"
        );
        assert!(
            sampler("inbound-vip|8000|http|", "").is_err(),
            "no host: the cluster name is no authority"
        );
        assert_eq!(sampler("app_8000", "").unwrap(), "app_8000");
        assert!(
            sampler("outbound|http|v1|app", "").is_err(),
            "a port that is not a number"
        );
        let err = sampler("a|b", "").unwrap_err().to_string();
        assert!(
            err.starts_with(r#"samplers[0].authority: is not set and the cluster name "a|b" is not a valid :authority"#),
            "{err}"
        );
    }
);

logic_test!(
    fn status_forms() {
        let config = parse(
            br#"{"counters": [{"name": "x", "match": {"status": [200, "4xx", "5XX", "404"]}}]}"#,
        )
        .unwrap();
        assert_eq!(
            config.counters[0].matches.status,
            Some(vec![
                StatusMatch::Code(200),
                StatusMatch::Class(4),
                StatusMatch::Class(5),
                StatusMatch::Code(404)
            ])
        );
    }
);

// Every rule, each with the field path and the expectation in the message.
logic_test!(
    fn invalid_configs_name_the_field() {
        let sampler = |extra: &str| {
            format!(
                r#"{{"samplers": [{{"name": "s", "cluster": "c", "path": "/p", "value": {{"text": true}}{extra}}}]}}"#
            )
        };
        let headers = |range: std::ops::Range<usize>| {
            range
                .map(|i| format!(r#""h{i:02}": true"#))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let cases: Vec<(String, &str)> = vec![
        (r#"{"counters": [{"name": "a", "match": {}}, {"name": "b", "match": {"status": ["7xx"]}}]}"#.into(),
         r#"counters[1].match.status[0]: "7xx" is not a status code or class (expected 100-599 or 1xx-5xx)"#),
        (r#"{"counters": [{"name": "b", "match": {"status": [600]}}]}"#.into(),
         "counters[0].match.status[0]: 600 is not a status code or class (expected 100-599 or 1xx-5xx)"),
        (r#"{"counters": [{"name": "b", "match": {"status": [-1]}}]}"#.into(),
         "counters[0].match.status[0]: -1 is not a status code"),
        (r#"{"counters": [{"name": "b", "match": {"status": []}}]}"#.into(),
         "counters[0].match.status: is empty"),
        (r#"{"countres": []}"#.into(), "unknown field `countres`, expected one of `counters`, `http_metrics`, `samplers`, `labels`, `grpc`"),
        (r#"{"counters": [{"name": "a", "match": {"paht": "/x"}}]}"#.into(), "counters[0].match.paht: unknown field `paht`"),
        (r#"{"counters": [{"name": 5, "match": {}}]}"#.into(), "counters[0].name: invalid type: integer `5`, expected a string"),
        (r#"{"counters": [{"name": "9lives", "match": {}}]}"#.into(),
         r#"counters[0].name: "9lives" is not a metric name Envoy exports as is (expected [a-zA-Z_][a-zA-Z0-9_]*)"#),
        (r#"{"counters": [{"name": "a-b", "match": {}}]}"#.into(), r#"counters[0].name: "a-b" is not a metric name"#),
        (r#"{"counters": [{"name": "", "match": {}}]}"#.into(), r#"counters[0].name: "" is not a metric name"#),
        // Envoy prints ':' as '_': "http:requests_total" would print as ours.
        (r#"{"counters": [{"name": "http:requests_total", "match": {}}]}"#.into(),
         r#"counters[0].name: "http:requests_total" is not a metric name"#),
        (r#"{"counters": [{"name": "http_request_size_bytes_count", "match": {}}]}"#.into(),
         r#"counters[0].name: "http_request_size_bytes_count" is reserved"#),
        (r#"{"counters": [{"name": "envoy_cluster_upstream_rq_total", "match": {}}]}"#.into(),
         "counters[0].name: \"envoy_cluster_upstream_rq_total\" starts with envoy_"),
        (r#"{"counters": [{"name": "istio_requests_total", "match": {}}]}"#.into(),
         "counters[0].name: \"istio_requests_total\" starts with istio_"),
        (r#"{"counters": [{"name": "a", "match": {"request_headers": {"X-Role": "a", "x-role": "b"}}}]}"#.into(),
         r#"counters[0].match.request_headers.X-Role: names the same header as "x-role" (header names are case-insensitive"#),
        (sampler(r#", "interval_seconds": 5, "timeout_ms": 5001"#),
         "samplers[0].timeout_ms: 5001 is longer than interval_seconds (5 s): samples would overlap (expected at most 5000)"),
        (sampler(r#", "authority": "app\r\nx-injected: 1""#),
         r#"samplers[0].authority: "app\r\nx-injected: 1" is not a valid :authority"#),
        (r#"{"samplers": [{"name": "s", "cluster": "c", "path": "/p\u0000", "value": {"text": true}}]}"#.into(),
         r#"samplers[0].path: "/p\0" is not a path"#),
        (r#"{"samplers": [{"name": "s", "cluster": "c", "path": "/p", "value": {"header": "X Total"}}]}"#.into(),
         r#"samplers[0].value.header: "x total" is not a header name"#),
        (r#"{"counters": [{"name": "a", "match": {}}, {"name": "a", "match": {}}]}"#.into(),
         r#"counters[1].name: "a" is already used by counters[0]"#),
        (r#"{"counters": [{"name": "a", "match": {}}], "samplers": [{"name": "a", "cluster": "c", "path": "/p", "value": {"text": true}}]}"#.into(),
         r#"samplers[0].name: "a" is already used by counters[0]"#),
        (r#"{"counters": [{"name": "http_requests_total", "match": {}}]}"#.into(), "counters[0].name: \"http_requests_total\" is reserved"),
        (r#"{"counters": [{"name": "app_metrics_x", "match": {}}]}"#.into(), "counters[0].name: \"app_metrics_x\" is reserved"),
        (r#"{"counters": [{"name": "a", "match": {"path": "login"}}]}"#.into(),
         r#"counters[0].match.path: "login" is not a path (expected it to start with '/'"#),
        (r#"{"counters": [{"name": "a", "match": {"path": "/users/{id"}}]}"#.into(),
         r#"counters[0].match.path: "/users/{id" is not a usable route template"#),
        (r#"{"counters": [{"name": "a", "match": {"path": "/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}/{i}"}}]}"#.into(),
         "counters[0].match.path: \"/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}/{i}\" has too many parameters (expected at most 8)"),
        (format!(r#"{{"http_metrics": {{"handlers": ["{}"]}}}}"#, "/{x}".repeat(30)),
         "http_metrics.handlers[0]: "),
        (r#"{"": null}"#.into(), ".: unknown field ``"),
        (r#"{"counters": [{"name": "a", "match": {"method": "post"}}]}"#.into(),
         r#"counters[0].match.method: "post" is not an HTTP method"#),
        (r#"{"counters": [{"name": "a", "match": {"request_headers": {"x y": true}}}]}"#.into(),
         r#"counters[0].match.request_headers.x y: "x y" is not a header name"#),
        (r#"{"counters": [{"name": "a", "match": {"response_headers": {"x": 3}}}]}"#.into(),
         "counters[0].match.response_headers.x: invalid type: integer `3`, expected a string for an exact value, or true/false for presence"),
        (r#"{"http_metrics": {"handlers": ["/a", "nope"]}}"#.into(), r#"http_metrics.handlers[1]: "nope" is not a path"#),
        (r#"{"http_metrics": {"handlers": ["/u/{id}", "/u/{name}"]}}"#.into(), r#"http_metrics.handlers[1]: "/u/{name}" is not a usable route template"#),
        (r#"{"http_metrics": {"handlers": ["/a;b"]}}"#.into(), r#"http_metrics.handlers[0]: "/a;b" contains ';' or '='"#),
        (r#"{"http_metrics": {"excluded_handlers": ["metrics"]}}"#.into(), r#"http_metrics.excluded_handlers[0]: "metrics" is not a path"#),
        (r#"{"http_metrics": {"enabled": "yes"}}"#.into(), "http_metrics.enabled: invalid type: string \"yes\", expected a boolean"),
        (r#"{"http_metrics": {"total_duration": 1}}"#.into(), "http_metrics.total_duration: invalid type: integer `1`, expected a boolean"),
        (r#"{"http_metrics": {"total_durations": true}}"#.into(),
         "http_metrics.total_durations: unknown field `total_durations`, expected one of `enabled`, `handlers`, `excluded_handlers`, `total_duration`"),
        (r#"{"counters": [{"name": "http_proxy_responses_total", "match": {}}]}"#.into(),
         "counters[0].name: \"http_proxy_responses_total\" is reserved"),
        (r#"{"samplers": [{"name": "http_request_total_duration_milliseconds_bucket", "cluster": "c", "path": "/p", "value": {"text": true}}]}"#.into(),
         "samplers[0].name: \"http_request_total_duration_milliseconds_bucket\" is reserved"),
        (r#"{"counters": [{"name": "http_request_total_duration_milliseconds", "match": {}}]}"#.into(),
         "counters[0].name: \"http_request_total_duration_milliseconds\" is reserved"),
        (sampler(r#", "interval_seconds": 0"#), "samplers[0].interval_seconds: 0 is out of range (expected 1-86400)"),
        (sampler(r#", "timeout_ms": 0"#), "samplers[0].timeout_ms: 0 is out of range (expected 1-60000)"),
        (sampler(r#", "max_body_bytes": 0"#), "samplers[0].max_body_bytes: 0 is out of range"),
        (sampler(r#", "interval_seconds": -5"#), "samplers[0].interval_seconds: invalid value: integer `-5`, expected u64"),
        (sampler(r#", "cluster": """#), "duplicate field `cluster`"),
        (r#"{"samplers": [{"name": "s", "cluster": " ", "path": "/p", "value": {"text": true}}]}"#.into(), "samplers[0].cluster: is empty"),
        (r#"{"samplers": [{"name": "s", "cluster": "c", "path": "p", "value": {"text": true}}]}"#.into(), r#"samplers[0].path: "p" is not a path"#),
        (r#"{"samplers": [{"name": "s", "cluster": "c", "path": "/p", "value": {}}]}"#.into(),
         "samplers[0].value: must set exactly one of json_pointer, json_array_length, header, text"),
        (r#"{"samplers": [{"name": "s", "cluster": "c", "path": "/p", "value": {"text": true, "header": "x"}}]}"#.into(),
         "samplers[0].value: must set exactly one of"),
        (r#"{"samplers": [{"name": "s", "cluster": "c", "path": "/p", "value": {"text": false}}]}"#.into(), "samplers[0].value.text: is false"),
        (r#"{"samplers": [{"name": "s", "cluster": "c", "path": "/p", "value": {"json_pointer": "count"}}]}"#.into(),
         r#"samplers[0].value.json_pointer: "count" is not a JSON pointer"#),
        (r#"{"samplers": [{"name": "s", "cluster": "c", "path": "/p", "value": {"header": ""}}]}"#.into(), "samplers[0].value.header: is empty"),
        (r#"{"samplers": [{"name": "s", "path": "/p", "value": {"text": true}}]}"#.into(), "samplers[0]: missing field `cluster`"),
        (format!(r#"{{"counters": [{}]}}"#,
            (0..257).map(|i| format!(r#"{{"name": "c{i}", "match": {{}}}}"#)).collect::<Vec<_>>().join(", ")),
         "counters: has 257 counters (expected at most 256"),
        (format!(r#"{{"counters": [{{"name": "a", "match": {{"request_headers": {{{}}}}}}}]}}"#, headers(0..33)),
         "counters[0].match.request_headers: has 33 entries (expected at most 32)"),
        (format!(r#"{{"counters": [{{"name": "a", "match": {{"request_headers": {{{}}}}}}}, {{"name": "b", "match": {{"request_headers": {{{}}}}}}}]}}"#,
            headers(0..17), headers(17..34)),
         "counters[1].match.request_headers.h32: is one header name too many: counters and labels may read at most 32 distinct request headers (each is looked up in every request)"),
        ("[1, 2]".into(), ".: is not a JSON object"),
        ("null".into(), ".: is not a JSON object"),
        ("{".into(), "EOF while parsing an object"),
        ("{\u{0}".into(), "key must be a string"),
    ];
        for (json, want) in &cases {
            let got = err(json);
            assert!(
                got.contains(want),
                "config {json}\n  got:  {got}\n  want: {want}"
            );
        }
    }
);

logic_test!(
    fn the_labels_example_parses() {
        let config = parse(
            br#"{
      "labels": {"service": "k8s-sample-api"},
      "counters": [{"name": "failed_login_details_total",
                    "match": {"method": "POST", "path": "/login", "status": [400, 401]},
                    "labels": [{"name": "client", "request_header": "x-client", "values": ["web", "ios"]}]}],
      "http_metrics": {"handlers": ["/login", "/health"],
                       "labels": [{"name": "client", "request_header": "X-Client", "values": ["web", "ios"]},
                                  {"name": "version", "response_header": "x-app-version", "values": ["1.4.2"]}]}
    }"#,
        )
        .unwrap();
        assert_eq!(
            config.labels,
            [("service".to_string(), "k8s-sample-api".to_string())]
        );
        let client = LabelSpec {
            name: "client".into(),
            side: Side::Request,
            header: "x-client".into(),
            values: vec!["web".into(), "ios".into()],
        };
        assert_eq!(config.counters[0].labels, std::slice::from_ref(&client));
        let header = |l: &LabelSpec| (l.side, l.header.clone());
        assert_eq!(
            header(&config.http_metrics.labels[0]),
            (Side::Request, "x-client".into())
        );
        assert_eq!(
            header(&config.http_metrics.labels[1]),
            (Side::Response, "x-app-version".into())
        );
        // Without labels nothing changes: the defaults have none.
        let default = parse(b"{}").unwrap();
        assert!(default.labels.is_empty() && default.http_metrics.labels.is_empty());
        assert!(default.counters.iter().all(|c| c.labels.is_empty()));
    }
);

// The series bound of docs/configuration.md ("Labels"): label sets, a histogram counting once.
logic_test!(
    fn series_bound_follows_the_formula() {
        let bound = |json: &str| series_bound(&parse(json.as_bytes()).unwrap());
        // Defaults: 2 counters, H = 0: 60 + 48 + 12 label sets, config_valid.
        let d = bound("{}");
        assert_eq!(
            (
                d.counters,
                d.requests,
                d.proxy_responses,
                d.histograms,
                d.samplers,
                d.config_valid
            ),
            (2, 60, 48, 12, 0, 1)
        );
        assert_eq!(d.total(), 123);
        // The whole-request histogram: 10 more per handler value.
        let t = bound(r#"{"http_metrics": {"total_duration": true}}"#);
        assert_eq!((t.histograms, t.total()), (22, 133));
        // H = 2, L = (2+2)·(1+2) = 12; a counter with L_c = 4, one without; a sampler.
        let b = bound(
            r#"{"labels": {"service": "a"},
                "counters": [{"name": "a_total", "match": {}, "labels": [{"name": "client", "request_header": "x-client", "values": ["web", "ios"]}]},
                             {"name": "b_total", "match": {}}],
                "http_metrics": {"handlers": ["/a", "/b"], "labels": [
                    {"name": "client", "request_header": "x-client", "values": ["web", "ios"]},
                    {"name": "version", "response_header": "x-version", "values": ["1"]}]},
                "samplers": [{"name": "s", "cluster": "c", "path": "/p", "value": {"text": true}}]}"#,
        );
        assert_eq!(b.counters, 4 + 1);
        assert_eq!(b.requests, 3 * 10 * 6 * 12);
        assert_eq!(b.proxy_responses, 3 * 6 * 8 * 12);
        assert_eq!(b.histograms, 3 * 12 * 12);
        assert_eq!(b.samplers, 10);
        assert_eq!(b.total(), 5 + 2160 + 1728 + 432 + 10 + 1);
        let off = bound(
            r#"{"http_metrics": {"enabled": false, "labels": [{"name": "c", "request_header": "x", "values": ["a"]}]}}"#,
        );
        assert_eq!(
            (
                off.requests,
                off.proxy_responses,
                off.histograms,
                off.total()
            ),
            (0, 0, 0, 3)
        );
    }
);

// Every label rule, each message exact: the field path and the expectation.
logic_test!(
    fn invalid_labels_name_the_field() {
        let http = |labels: &str| format!(r#"{{"http_metrics": {{"labels": [{labels}]}}}}"#);
        let client = |values: &str| {
            http(&format!(
                r#"{{"name": "client", "request_header": "x-client", "values": [{values}]}}"#
            ))
        };
        let constant = |labels: &str| format!(r#"{{"labels": {{{labels}}}}}"#);
        let named = |name: &str| {
            format!(
                r#"{{"labels": {{"service": "a"}}, "counters": [{{"name": "c_total", "match": {{}}, "labels": [{{"name": "{name}", "request_header": "x", "values": ["a"]}}]}}]}}"#
            )
        };
        let cases: Vec<(String, &str)> = vec![
            (constant(r#""service": 1"#), "labels.service: invalid type: integer `1`, expected a string"),
            (constant(r#""ser-vice": "a""#), r#"labels.ser-vice: "ser-vice" is not a label name (expected [a-zA-Z_][a-zA-Z0-9_]*)"#),
            (constant(r#""__service": "a""#), r#"labels.__service: "__service" starts with "__", which Prometheus reserves for its own labels (expected another name)"#),
            (constant(r#""handler": "a""#), r#"labels.handler: "handler" is a label the filter or Prometheus sets itself (expected a name other than handler, method, status, sampler, reason, plugin, grpc_type, grpc_service, grpc_method, grpc_code, le, quantile)"#),
            (constant(r#""le": "a""#), r#"labels.le: "le" is a label the filter or Prometheus sets itself (expected a name other than handler, method, status, sampler, reason, plugin, grpc_type, grpc_service, grpc_method, grpc_code, le, quantile)"#),
            (constant(r#""component": "a""#), r#"labels.component: "component" is one of the stats tag names Istio's bootstrap defines, and Envoy refuses a tag name twice (expected another name)"#),
            (constant(r#""http_status": "a""#), r#"labels.http_status: "http_status" and "status" (the filter's own labels) end alike: the stats tag regex of "status" would also match "http_status"'s label in stat names (expected label names that do not end with one another)"#),
            (constant(r#""us": "a""#), r#"labels.us: "us" and "status" (the filter's own labels) end alike: the stats tag regex of "us" would also match "status"'s label in stat names (expected label names that do not end with one another)"#),
            (constant(r#""service": "a", "service": "b""#), "labels.service: duplicate field `service`"),
            (constant(r#""service": """#), r#"labels.service: "" has 0 bytes (expected 1-64 characters, printable ASCII other than ';', '=', '"' and '\')"#),
            (constant(&format!(r#""service": "{}""#, "a".repeat(65))), r#"labels.service: "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" has 65 bytes (expected 1-64 characters, printable ASCII other than ';', '=', '"' and '\')"#),
            (constant(r#""service": "a;b""#), r#"labels.service: "a;b" contains ';' (expected printable ASCII other than ';', '=', '"' and '\': ';' and '=' delimit labels in stat names)"#),
            (constant(r#""service": "a=b""#), r#"labels.service: "a=b" contains '=' (expected printable ASCII other than ';', '=', '"' and '\': ';' and '=' delimit labels in stat names)"#),
            (constant(r#""service": "a\nb""#), r#"labels.service: "a\nb" contains '\n' (expected printable ASCII other than ';', '=', '"' and '\': ';' and '=' delimit labels in stat names)"#),
            (constant(r#""service": "caf\u00e9""#), r#"labels.service: "café" contains 'é' (expected printable ASCII other than ';', '=', '"' and '\': ';' and '=' delimit labels in stat names)"#),
            (constant(r#""service": "a\"b""#), r#"labels.service: "a\"b" contains '"' (expected printable ASCII other than ';', '=', '"' and '\': ';' and '=' delimit labels in stat names)"#),
            (constant(r#""service": "v1.cache.x""#), r#"labels.service: "v1.cache.x" makes "cache." in the stat name, which Istio's stats tag regexes would cut out of the label into a label of their own (expected a value without it)"#),
            // A stat name starts `wasmcustom.<first label name>=.=`: a name starting like one of
            // Istio's dotted suffixes is cut.
            (constant(r#""shadow_allowed_by": "a""#), r#"labels.shadow_allowed_by: "shadow_allowed_by" makes ".shadow_allowed" in the stat name, which Istio's stats tag regexes would cut out of it into a label of their own (expected another name)"#),
            (constant(&(0..9).map(|i| format!(r#""l{i}": "a""#)).collect::<Vec<_>>().join(", ")), "labels: has 9 entries (expected at most 8)"),
            (named("service"), r#"counters[0].labels[0].name: "service" is already a label of these series, at labels.service (expected a label name unique per series)"#),
            (named("api_service"), r#"counters[0].labels[0].name: "api_service" and "service" (labels.service) end alike: the stats tag regex of "service" would also match "api_service"'s label in stat names (expected label names that do not end with one another)"#),
            (http(r#"{"name": "client", "request_header": "x-a", "values": ["a"]}, {"name": "client", "request_header": "x-b", "values": ["a"]}"#),
             r#"http_metrics.labels[1].name: "client" is already a label of these series, at http_metrics.labels[0].name (expected a label name unique per series)"#),
            // Across metrics of one configuration the same name is fine, overlapping ones are not.
            (r#"{"counters": [{"name": "c_total", "match": {}, "labels": [{"name": "client", "request_header": "x", "values": ["a"]}]}],
                 "http_metrics": {"labels": [{"name": "api_client", "request_header": "x", "values": ["a"]}]}}"#.to_string(),
             r#"http_metrics.labels[0].name: "api_client" and "client" (counters[0].labels[0].name) end alike: the stats tag regex of "client" would also match "api_client"'s label in stat names (expected label names that do not end with one another)"#),
            (http(r#"{"name": "client", "values": ["a"]}"#), "http_metrics.labels[0]: must set exactly one of request_header, response_header"),
            (http(r#"{"name": "client", "request_header": "x", "response_header": "y", "values": ["a"]}"#), "http_metrics.labels[0]: must set exactly one of request_header, response_header"),
            (http(r#"{"name": "client", "request_header": "x client", "values": ["a"]}"#),
             r#"http_metrics.labels[0].request_header: "x client" is not a header name (expected letters, digits, '-', '_', '.' or a leading ':')"#),
            (http(r#"{"name": "client", "request_header": "x", "value": ["a"]}"#),
             "http_metrics.labels[0].value: unknown field `value`, expected one of `name`, `request_header`, `response_header`, `values`"),
            (http(r#"{"name": "client", "request_header": "x"}"#), "http_metrics.labels[0]: missing field `values`"),
            (client(""), r#"http_metrics.labels[0].values: has 0 values (expected 1-32: the header values that become label values; others read "other")"#),
            (client(&(0..33).map(|i| format!(r#""v{i}""#)).collect::<Vec<_>>().join(", ")),
             r#"http_metrics.labels[0].values: has 33 values (expected 1-32: the header values that become label values; others read "other")"#),
            (client(r#""web", "web""#), r#"http_metrics.labels[0].values[1]: "web" is listed twice (expected unique values)"#),
            (client(r#""web", "other""#), r#"http_metrics.labels[0].values[1]: "other" is what the label reads for a header value not listed (expected another value)"#),
            (client(r#""none""#), r#"http_metrics.labels[0].values[0]: "none" is what the label reads for an absent header (expected another value)"#),
            (client(r#""a;b""#), r#"http_metrics.labels[0].values[0]: "a;b" contains ';' (expected printable ASCII other than ';', '=', '"' and '\': ';' and '=' delimit labels in stat names)"#),
            (client(r#""x.tag.y""#), r#"http_metrics.labels[0].values[0]: "x.tag.y" makes "tag." in the stat name, which Istio's stats tag regexes would cut out of the label into a label of their own (expected a value without it)"#),
            (client(r#""a.istio_dry_run_deny_x""#), r#"http_metrics.labels[0].values[0]: "a.istio_dry_run_deny_x" makes ".istio_dry_run_deny_" in the stat name, which Istio's stats tag regexes would cut out of the label into a label of their own (expected a value without it)"#),
            (http(&(0..5).map(|i| format!(r#"{{"name": "l{i}", "request_header": "x", "values": ["a"]}}"#)).collect::<Vec<_>>().join(", ")),
             "http_metrics.labels: has 5 labels (expected at most 4: each multiplies the metric's series)"),
            // 33 distinct request headers between rules and labels.
            (format!(r#"{{"counters": [{{"name": "a", "match": {{"request_headers": {{{}}}}}}}], "http_metrics": {{"labels": [{{"name": "l", "request_header": "h32", "values": ["a"]}}]}}}}"#,
                (0..32).map(|i| format!(r#""h{i:02}": true"#)).collect::<Vec<_>>().join(", ")),
             "http_metrics.labels[0].request_header: is one header name too many: counters and labels may read at most 32 distinct request headers (each is looked up in every request)"),
            // (0+1) handlers · 120 · 34³, plus 3: 120 = 60 request counters, 48 proxy
            // answers, 12 histograms per handler value and combination.
            (http(&(0..3).map(|i| format!(r#"{{"name": "l{i}", "request_header": "x{i}", "values": [{}]}}"#,
                (0..32).map(|j| format!(r#""v{j}""#)).collect::<Vec<_>>().join(", "))).collect::<Vec<_>>().join(", ")),
             "http_metrics.labels: brings the configuration's series bound to 4716483 (expected at most 100000: fewer labels, label values or handlers)"),
            (format!(r#"{{"counters": [], "http_metrics": {{"handlers": [{}]}}}}"#,
                (0..833).map(|i| format!(r#""/p{i}""#)).collect::<Vec<_>>().join(", ")),
             "http_metrics.handlers: brings the configuration's series bound to 100081 (expected at most 100000: fewer labels, label values or handlers)"),
            (format!(r#"{{"http_metrics": {{"enabled": false}}, "counters": [{}]}}"#,
                (0..3).map(|i| format!(r#"{{"name": "c{i}", "match": {{}}, "labels": [{}]}}"#,
                    (0..3).map(|k| format!(r#"{{"name": "l{k}", "request_header": "x{k}", "values": [{}]}}"#,
                        (0..32).map(|j| format!(r#""v{j}""#)).collect::<Vec<_>>().join(", "))).collect::<Vec<_>>().join(", "))).collect::<Vec<_>>().join(", ")),
             "counters[2].labels: brings the configuration's series bound to 117913 (expected at most 100000: fewer labels, label values or handlers)"),
            // Metric names follow a '.' in stat names too.
            (r#"{"counters": [{"name": "shadow_denied_total", "match": {}}]}"#.into(),
             r#"counters[0].name: "shadow_denied_total" makes ".shadow_denied" in the stat name, which Istio's stats tag regexes would cut out of it into a label of their own (expected another name)"#),
        ];
        for (json, want) in &cases {
            assert_eq!(&err(json), want, "config {json}");
        }
        let ok = [
            client(
                r#""web", "ios", "Android-12", "a b", "v1.2.3", "x/y:z", "shadow_allowed", "istio_dry_run_deny_x""#,
            ),
            constant(r#""service": "k8s-sample-api", "tenant": "t_1""#),
            named("client"),
            // 120 · 28 · 28 + 3 = 94,083 series: under the bound.
            http(
                &(0..2)
                    .map(|i| {
                        format!(
                            r#"{{"name": "l{i}", "request_header": "x{i}", "values": [{}]}}"#,
                            (0..26)
                                .map(|j| format!(r#""v{j}""#))
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            // Equal names in different metrics share one stats tag: fine.
            r#"{"counters": [{"name": "c_total", "match": {}, "labels": [{"name": "client", "request_header": "x", "values": ["a"]}]}],
                 "http_metrics": {"labels": [{"name": "client", "response_header": "y", "values": ["b"]}]}}"#.to_string(),
        ];
        for json in &ok {
            assert!(
                parse(json.as_bytes()).is_ok(),
                "{json}: {:?}",
                parse(json.as_bytes())
            );
        }
    }
);

// ---------------------------------------------------------------------------------------------
// Counters on JSON bodies (issue 14)
// ---------------------------------------------------------------------------------------------

/// One counter on `POST /p`, `matching` added to its match and `extra` to its fields.
fn body_counter(matching: &str, extra: &str) -> String {
    format!(
        r#"{{"counters": [{{"name": "c_total", "match": {{"method": "POST", "path": "/p"{matching}}}{extra}}}]}}"#
    )
}

// Every body rule, each message exact: the field path and the expectation.
logic_test!(
    fn invalid_body_rules_name_the_field() {
        let response =
            |conditions: &str| body_counter(&format!(r#", "response_json": [{conditions}]"#), "");
        let request =
            |conditions: &str| body_counter(&format!(r#", "request_json": [{conditions}]"#), "");
        let conditions = |n: usize| {
            (0..n)
                .map(|i| format!(r#"{{"pointer": "/k{i}", "present": true}}"#))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let one_of = "must set exactly one of equals (a string, number, boolean or null), present (true or false)";
        let cases: Vec<(String, String)> = vec![
            (response(r#"{"pointer": "/a", "equal": 1}"#),
             "counters[0].match.response_json[0].equal: unknown field `equal`, expected one of `pointer`, `equals`, `present`".into()),
            (request(r#"{"pointer": "/a", "present": true}, {"pointer": "/b", "equals": 1, "present": true}"#),
             format!("counters[0].match.request_json[1]: {one_of}")),
            (response(r#"{"pointer": "/a"}"#), format!("counters[0].match.response_json[0]: {one_of}")),
            // `present: null` is no test either.
            (response(r#"{"pointer": "/a", "present": null}"#), format!("counters[0].match.response_json[0]: {one_of}")),
            (response(r#"{"pointer": "/a", "equals": [1]}"#),
             "counters[0].match.response_json[0].equals: invalid type: array, expected a string, number, boolean or null".into()),
            (response(r#"{"pointer": "/a", "equals": {"b": 1}}"#),
             "counters[0].match.response_json[0].equals: invalid type: object, expected a string, number, boolean or null".into()),
            (response(r#"{"pointer": "/a", "present": "yes"}"#),
             "counters[0].match.response_json[0].present: invalid type: string \"yes\", expected a boolean".into()),
            (response(r#"{"pointer": "a/b", "present": true}"#),
             r#"counters[0].match.response_json[0].pointer: "a/b" is not a JSON pointer (expected "" for the root or a path starting with '/')"#.into()),
            (request(r##"{"pointer": "#/a", "equals": "x"}"##),
             r##"counters[0].match.request_json[0].pointer: "#/a" is not a JSON pointer (expected "" for the root or a path starting with '/')"##.into()),
            (response(r#"{"pointer": 1, "present": true}"#),
             "counters[0].match.response_json[0].pointer: invalid type: integer `1`, expected a string".into()),
            (response(r#"{"equals": 1}"#), "counters[0].match.response_json[0]: missing field `pointer`".into()),
            (response(r#"{"pointer": "/a", "pointer": "/b", "present": true}"#),
             "counters[0].match.response_json[0].pointer: duplicate field `pointer`".into()),
            (response(r#""/a""#),
             "counters[0].match.response_json[0]: invalid type: string \"/a\", expected an object".into()),
            (body_counter(r#", "response_json": {"pointer": "/a", "present": true}"#, ""),
             r#"counters[0].match.response_json: invalid type: object, expected an array of {"pointer": …, "equals"|"present": …}"#.into()),
            (request(&conditions(17)), "counters[0].match.request_json: has 17 conditions (expected at most 16)".into()),
            (response(&conditions(17)), "counters[0].match.response_json: has 17 conditions (expected at most 16)".into()),
            (body_counter("", r#", "increment": {"request_json": "/n", "response_json": "/n"}"#),
             "counters[0].increment: must set exactly one of request_json, response_json (the JSON pointer of the amount in that body)".into()),
            (body_counter("", r#", "increment": {}"#),
             "counters[0].increment: must set exactly one of request_json, response_json (the JSON pointer of the amount in that body)".into()),
            (body_counter("", r#", "increment": {"response_json": null}"#),
             "counters[0].increment: must set exactly one of request_json, response_json (the JSON pointer of the amount in that body)".into()),
            (body_counter("", r#", "increment": {"body_json": "/n"}"#),
             "counters[0].increment.body_json: unknown field `body_json`, expected one of `request_json`, `response_json`".into()),
            (body_counter("", r#", "increment": "/n""#),
             "counters[0].increment: invalid type: string \"/n\", expected an object".into()),
            (body_counter("", r#", "increment": {"response_json": "usage/total_tokens"}"#),
             r#"counters[0].increment.response_json: "usage/total_tokens" is not a JSON pointer (expected "" for the root or a path starting with '/')"#.into()),
            (body_counter("", r#", "increment": {"request_json": 5}"#),
             "counters[0].increment.request_json: invalid type: integer `5`, expected a string".into()),
            (body_counter("", r#", "increment": {"response_json": "/n"}, "max_body_bytes": 0"#),
             "counters[0].max_body_bytes: 0 is out of range (expected 1-1048576)".into()),
            (body_counter("", r#", "increment": {"response_json": "/n"}, "max_body_bytes": 1048577"#),
             "counters[0].max_body_bytes: 1048577 is out of range (expected 1-1048576)".into()),
            (body_counter("", r#", "increment": {"response_json": "/n"}, "max_body_bytes": -1"#),
             "counters[0].max_body_bytes: invalid value: integer `-1`, expected u64".into()),
            (body_counter("", r#", "increment": {"response_json": "/n"}, "max_body_bytes": 1.5"#),
             "counters[0].max_body_bytes: invalid type: floating point number, expected u64".into()),
            (body_counter("", r#", "max_body_bytes": 1024"#),
             "counters[0].max_body_bytes: is set, but the counter reads no body (expected match.request_json, match.response_json or increment with it)".into()),
            (r#"{"counters": [{"name": "a", "match": {}}, {"name": "b", "match": {"method": "POST", "response_json": [{"pointer": "/ok", "equals": false}]}}]}"#.into(),
             "counters[1].match.path: is missing, and the counter reads a body (expected the path whose bodies are read: the path decides before the body which requests pay for reading it)".into()),
            (r#"{"counters": [{"name": "a", "match": {"status": ["2xx"]}, "increment": {"response_json": "/n"}}]}"#.into(),
             "counters[0].match.path: is missing, and the counter reads a body (expected the path whose bodies are read: the path decides before the body which requests pay for reading it)".into()),
        ];
        for (json, want) in &cases {
            assert_eq!(&err(json), want, "config {json}");
        }
    }
);

logic_test!(
    fn body_rules_read_what_they_say() {
        let c = |matching: &str, extra: &str| {
            let json = body_counter(matching, extra);
            match parse(json.as_bytes()) {
                Ok(config) => config.counters[0].clone(),
                Err(e) => panic!("{json}: {e}"),
            }
        };
        // `equals: null` is a condition on a null, not an absent test.
        let null = c(
            r#", "response_json": [{"pointer": "/data", "equals": null}]"#,
            "",
        );
        assert_eq!(
            null.matches.response_json,
            [BodyCondition {
                pointer: "/data".into(),
                test: BodyTest::Equals(Json::Null)
            }]
        );
        assert!(null.reads_body(Side::Response) && !null.reads_body(Side::Request));
        let each = c(
            r#", "request_json": [{"pointer": "", "present": true}, {"pointer": "/a/0/b~1c", "present": false},
                {"pointer": "/s", "equals": "x"}, {"pointer": "/n", "equals": -2.5}, {"pointer": "/b", "equals": true}]"#,
            r#", "max_body_bytes": 1"#,
        );
        assert_eq!(
            each.matches.request_json,
            [
                BodyCondition {
                    pointer: String::new(),
                    test: BodyTest::Present(true)
                },
                BodyCondition {
                    pointer: "/a/0/b~1c".into(),
                    test: BodyTest::Present(false)
                },
                BodyCondition {
                    pointer: "/s".into(),
                    test: BodyTest::Equals(Json::String("x".into()))
                },
                BodyCondition {
                    pointer: "/n".into(),
                    test: BodyTest::Equals(Json::Number(Number::Float(-2.5)))
                },
                BodyCondition {
                    pointer: "/b".into(),
                    test: BodyTest::Equals(Json::Bool(true))
                },
            ]
        );
        assert!(each.reads_body(Side::Request) && !each.reads_body(Side::Response));
        assert_eq!((each.max_body_bytes, each.body_limit()), (Some(1), 1));
        // 16 conditions, 1 MiB, null fields as absent.
        let sixteen = (0..16)
            .map(|i| format!(r#"{{"pointer": "/k{i}", "present": true}}"#))
            .collect::<Vec<_>>()
            .join(", ");
        let most = c(
            &format!(r#", "response_json": [{sixteen}], "request_json": null"#),
            r#", "max_body_bytes": 1048576, "increment": null"#,
        );
        assert_eq!(most.matches.response_json.len(), 16);
        assert!(most.matches.request_json.is_empty());
        assert_eq!(most.increment, None);
        assert_eq!(most.body_limit(), MAX_COUNTER_BODY_BYTES);
        // An increment alone reads its side's body; the default limit is 64 KiB.
        let amount = c(
            "",
            r#", "increment": {"request_json": "/items/3"}, "max_body_bytes": null"#,
        );
        assert_eq!(
            amount.increment,
            Some(Increment {
                side: Side::Request,
                pointer: "/items/3".into()
            })
        );
        assert!(amount.reads_body(Side::Request) && !amount.reads_body(Side::Response));
        assert_eq!((amount.max_body_bytes, amount.body_limit()), (None, 65536));
        // Empty lists read nothing, and a counter reading nothing needs no path.
        let none = parse(
            br#"{"counters": [{"name": "a", "match": {"request_json": [], "response_json": []}}]}"#,
        )
        .unwrap();
        assert!(
            !none.counters[0].reads_body(Side::Request)
                && !none.counters[0].reads_body(Side::Response)
        );
        assert_eq!(first_body_read(&none), None);
    }
);

/// Issue 14's example configuration.
const BODIES_EXAMPLE: &str = r#"{"counters": [
  {"name": "wrong_password_total",
   "match": {"method": "POST", "path": "/login",
             "response_json": [{"pointer": "/detail", "equals": "Incorrect username or password"}]}},
  {"name": "locked_logins_total",
   "match": {"method": "POST", "path": "/login", "status": ["2xx"],
             "response_json": [{"pointer": "/ok", "equals": false}, {"pointer": "/error", "present": true}]}},
  {"name": "alice_signups_total",
   "match": {"method": "POST", "path": "/users", "request_json": [{"pointer": "/username", "equals": "alice"}]}},
  {"name": "llm_tokens_total", "match": {"method": "POST", "path": "/v1/chat/completions", "status": ["2xx"]},
   "increment": {"response_json": "/usage/total_tokens"}, "max_body_bytes": 262144}
]}"#;

logic_test!(
    fn the_bodies_example_parses() {
        let config = parse(BODIES_EXAMPLE.as_bytes()).unwrap();
        let c = &config.counters;
        assert_eq!(c.len(), 4);
        assert_eq!(
            c[0].matches.response_json,
            [BodyCondition {
                pointer: "/detail".into(),
                test: BodyTest::Equals(Json::String("Incorrect username or password".into()))
            }]
        );
        assert_eq!(
            c[1].matches.response_json,
            [
                BodyCondition {
                    pointer: "/ok".into(),
                    test: BodyTest::Equals(Json::Bool(false))
                },
                BodyCondition {
                    pointer: "/error".into(),
                    test: BodyTest::Present(true)
                },
            ]
        );
        assert_eq!(c[1].matches.status, Some(vec![StatusMatch::Class(2)]));
        assert_eq!(
            c[2].matches.request_json,
            [BodyCondition {
                pointer: "/username".into(),
                test: BodyTest::Equals(Json::String("alice".into()))
            }]
        );
        assert_eq!(
            c[3].increment,
            Some(Increment {
                side: Side::Response,
                pointer: "/usage/total_tokens".into()
            })
        );
        let limits: Vec<usize> = c.iter().map(Counter::body_limit).collect();
        assert_eq!(limits, [65536, 65536, 65536, 262144]);
        let sides: Vec<(bool, bool)> = c
            .iter()
            .map(|c| (c.reads_body(Side::Request), c.reads_body(Side::Response)))
            .collect();
        assert_eq!(
            sides,
            [(false, true), (false, true), (true, false), (false, true)]
        );
        // Beside the seed's counters, which read no body.
        assert_eq!(first_body_read(&Config::default()), None);
    }
);

logic_test!(
    fn only_the_bodies_build_takes_body_rules() {
        let config = parse(BODIES_EXAMPLE.as_bytes()).unwrap();
        assert_eq!(check_build(&config, true), Ok(()));
        let e = check_build(&config, false).unwrap_err();
        assert_eq!(e.path, "counters[0].match.response_json");
        assert_eq!(
            e.message,
            "reads a body, which app_metrics.wasm does not (expected the body-reading build, app_metrics_bodies.wasm, image tag suffix -bodies: README, \"Counters on JSON bodies\")"
        );
        assert!(e.message.contains(BODIES_MODULE) && e.message.contains(LEAN_MODULE));
        // The first counter that reads a body, by the field that does.
        let at = |counters: &str| {
            let config = parse(
                format!(r#"{{"counters": [{{"name": "plain", "match": {{}}}}, {counters}]}}"#)
                    .as_bytes(),
            )
            .unwrap();
            check_build(&config, false).unwrap_err().path
        };
        assert_eq!(
            at(
                r#"{"name": "b", "match": {"path": "/p", "request_json": [{"pointer": "/a", "present": true}]}}"#
            ),
            "counters[1].match.request_json"
        );
        assert_eq!(
            at(r#"{"name": "b", "match": {"path": "/p"}, "increment": {"request_json": "/n"}}"#),
            "counters[1].increment"
        );
        assert_eq!(
            at(
                r#"{"name": "b", "match": {"path": "/p"}}, {"name": "c", "match": {"path": "/p", "response_json": [{"pointer": "/a", "present": true}]}}"#
            ),
            "counters[2].match.response_json"
        );
        // Configurations without body rules run in either build.
        for json in [
            "",
            "{}",
            r#"{"counters": []}"#,
            r#"{"counters": [{"name": "a", "match": {"path": "/p"}}]}"#,
        ] {
            let config = parse(json.as_bytes()).unwrap();
            assert_eq!(check_build(&config, false), Ok(()), "{json}");
            assert_eq!(check_build(&config, true), Ok(()), "{json}");
        }
    }
);

logic_test!(
    fn the_grpc_section_reads_methods_and_types() {
        let config = parse(
            br#"{"grpc": {"methods": ["/shop.v1.Cart/Add", {"path": "/shop.v1.Cart/Watch", "type": "server_stream"},
                                      {"path": "/shop.v1.Cart/Get"}], "handling_time": true}}"#,
        )
        .unwrap();
        let grpc = config.grpc.as_ref().unwrap();
        assert_eq!(
            grpc.methods,
            [
                ("/shop.v1.Cart/Add".to_string(), RpcType::Unary),
                ("/shop.v1.Cart/Watch".to_string(), RpcType::ServerStream),
                ("/shop.v1.Cart/Get".to_string(), RpcType::Unary),
            ]
        );
        assert!(grpc.handling_time && !grpc.messages);
        assert_eq!(check_build(&config, false), Ok(()));
        // Without the section, nothing about gRPC is read; with it, 17 codes + started per RPC.
        assert!(parse(b"{}").unwrap().grpc.is_none());
        let bound = series_bound(&config);
        assert_eq!(bound.grpc, 4 * (1 + 17 + 1));
        let messages = parse(br#"{"grpc": {"messages": true}}"#).unwrap();
        assert_eq!(series_bound(&messages).grpc, 1 + 17 + 2);
        let lean = check_build(&messages, false).unwrap_err().to_string();
        assert!(
            lean.starts_with("grpc.messages: reads a body, which app_metrics.wasm does not"),
            "{lean}"
        );
        assert_eq!(check_build(&messages, true), Ok(()));
    }
);

logic_test!(
    fn bad_grpc_sections_name_the_field() {
        let cases = [
            (r#"{"grpc": {"methods": ["shop.Cart/Add"]}}"#,
             r#"grpc.methods[0]: "shop.Cart/Add" is not a gRPC method path (expected /package.Service/Method: letters, digits, '_' and '.')"#),
            (r#"{"grpc": {"methods": ["/a.B/C", "/a.B/C"]}}"#,
             r#"grpc.methods[1]: "/a.B/C" is listed twice (expected each method once)"#),
            (r#"{"grpc": {"methods": [{"path": "/a.B/C", "type": "stream"}]}}"#,
             r#"grpc.methods[0].type: "stream" is not an RPC type (expected unary, client_stream, server_stream or bidi_stream)"#),
            (r#"{"grpc": {"methods": [{"path": "/a.B/C", "type": "unknown"}]}}"#,
             r#"grpc.methods[0].type: "unknown" is not an RPC type (expected unary, client_stream, server_stream or bidi_stream)"#),
            (r#"{"grpc": {"methods": [7]}}"#,
             r#"grpc.methods[0]: invalid type: integer `7`, expected a method path, or {"path": …, "type": "unary"|"client_stream"|"server_stream"|"bidi_stream"}"#),
            (r#"{"grpc": {"method": []}}"#,
             "grpc.method: unknown field `method`, expected one of `methods`, `handling_time`, `messages`"),
            (r#"{"grpc": {"methods": ["/a.tag.B/C"]}}"#,
             r#"grpc.methods[0]: "a.tag.B" makes "tag." in the stat name, which Istio's stats tag regexes would cut out of the label into a label of their own (expected a value without it)"#),
            (r#"{"grpc": {}, "http_metrics": {"labels": [{"name": "type", "request_header": "x-t", "values": ["a"]}]}}"#,
             r#"http_metrics.labels[0].name: "type" and the gRPC label "grpc_type" end alike: the stats tag regex of one would also match the other's label in stat names (expected a label name that does not end like grpc_type, grpc_service, grpc_method or grpc_code)"#),
            (r#"{"labels": {"grpc_code": "x"}}"#,
             r#"labels.grpc_code: "grpc_code" is a label the filter or Prometheus sets itself (expected a name other than handler, method, status, sampler, reason, plugin, grpc_type, grpc_service, grpc_method, grpc_code, le, quantile)"#),
            (r#"{"counters": [{"name": "grpc_server_handled_total", "match": {}}]}"#,
             r#"counters[0].name: "grpc_server_handled_total" is reserved by the filter (expected a name that is not one of the filter's request metrics (http_*, grpc_server_*) or one of their series and does not start with app_metrics_)"#),
        ];
        for (json, want) in cases {
            assert_eq!(err(json), want, "{json}");
        }
        // A constant label may end like a gRPC label: it leads every stat name.
        assert!(parse(br#"{"grpc": {}, "labels": {"service": "shop"}}"#).is_ok());
        // Without a grpc section a dynamic label may.
        assert!(parse(br#"{"http_metrics": {"labels": [{"name": "type", "request_header": "x-t", "values": ["a"]}]}}"#).is_ok());
    }
);
