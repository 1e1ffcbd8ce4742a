//! Unit tests of src/filter.rs (compiled into the library's test build).

use super::*;
use crate::config::parse;
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
