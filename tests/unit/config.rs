use super::*;
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
            config.samplers[0].value.source(),
            Some(ValueSource::JsonPointer("/count".into()))
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
        assert_eq!(s.value.source(), Some(ValueSource::Text));
    }
);

// Istio's cluster names are not host names: the sample request's Host is the service's.
logic_test!(
    fn authority_from_istio_cluster_names() {
        let sampler = |cluster: &str, authority: &str| {
            let json = format!(
                r#"{{"samplers": [{{"name": "n", "cluster": "{cluster}", {authority} "path": "/n", "value": {{"text": true}}}}]}}"#
            );
            parse(json.as_bytes()).map(|c| c.samplers[0].authority().into_owned())
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
        (r#"{"countres": []}"#.into(), "unknown field `countres`, expected one of `counters`, `http_metrics`, `samplers`"),
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
         "counters[1].match.request_headers.h32: is one header name too many: counters may read at most 32 distinct request_headers"),
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
