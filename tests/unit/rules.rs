//! Unit tests of src/rules.rs (compiled into the library's test build).

use super::*;
use crate::config::{parse, seed_counters};
use crate::test_support::*;

fn matched(rules: &Rules, method: &str, path: &str, status: u16) -> Vec<String> {
    rules
        .candidates(method.as_bytes(), Some(path), &[])
        .into_iter()
        .filter(|&i| rules.confirm(i, Some(status), &[]))
        .map(|i| rules.rules[i].name.clone())
        .collect()
}

logic_test!(
    fn seed_login_counters_follow_the_tutorial() {
        let rules = Rules::new(&seed_counters());
        assert_eq!(
            matched(&rules, "POST", "/login", 200),
            ["successful_login_details_total"]
        );
        assert_eq!(
            matched(&rules, "POST", "/login", 204),
            ["successful_login_details_total"]
        );
        assert_eq!(
            matched(&rules, "POST", "/login", 400),
            ["failed_login_details_total"]
        );
        assert_eq!(
            matched(&rules, "POST", "/login", 401),
            ["failed_login_details_total"]
        );
        assert!(matched(&rules, "POST", "/login", 422).is_empty());
        assert!(matched(&rules, "POST", "/login", 500).is_empty());
        assert!(matched(&rules, "GET", "/login", 200).is_empty());
        assert!(matched(&rules, "POST", "/login/x", 200).is_empty());
        assert_eq!(
            matched(&rules, "POST", "/login?next=%2F", 200),
            ["successful_login_details_total"]
        );
    }
);

logic_test!(
    fn templates_and_headers() {
        let config = parse(br#"{"counters": [
        {"name": "user_reads_total", "match": {"method": "GET", "path": "/users/{id}", "status": ["2xx"]}},
        {"name": "api_key_calls_total", "match": {"request_headers": {"X-Api-Key": true}}},
        {"name": "cache_hits_total", "match": {"response_headers": {"x-cache": "HIT"}, "status": [200]}}
    ]}"#).unwrap();
        let rules = Rules::new(&config.counters);
        assert_eq!(rules.request_headers, ["x-api-key"]);
        assert_eq!(rules.response_headers, ["x-cache"]);
        let key = [Some(&b"k"[..])];
        let none = [None];
        assert_eq!(rules.candidates(b"GET", Some("/users/7"), &none), [0, 2]);
        assert_eq!(rules.candidates(b"GET", Some("/users/7"), &key), [0, 1, 2]);
        assert_eq!(rules.candidates(b"GET", Some("/users"), &none), [2]);
        assert!(rules.confirm(2, Some(200), &[Some(&b"HIT"[..])]));
        assert!(!rules.confirm(2, Some(200), &[Some(&b"MISS"[..])]));
        assert!(!rules.confirm(2, Some(200), &[None]));
        assert!(!rules.confirm(2, Some(201), &[Some(&b"HIT"[..])]));
        assert!(!rules.confirm(0, Some(404), &[]));
        assert!(!rules.confirm(99, Some(200), &[]));
        // No response: only a rule without a status condition can match.
        assert!(!rules.confirm(2, None, &[None]));
    }
);

logic_test!(
    fn absent_header_rule() {
        let config = parse(
            br#"{"counters": [
        {"name": "anonymous_total", "match": {"request_headers": {"authorization": false}}}
    ]}"#,
        )
        .unwrap();
        let rules = Rules::new(&config.counters);
        assert_eq!(rules.candidates(b"GET", Some("/"), &[None]), [0]);
        assert!(rules
            .candidates(b"GET", Some("/"), &[Some(&b"Bearer x"[..])])
            .is_empty());
    }
);

logic_test!(
    fn non_utf8_path_only_matches_pathless_rules() {
        let config = parse(
            br#"{"counters": [
        {"name": "any_total", "match": {}},
        {"name": "login_total", "match": {"path": "/login"}}
    ]}"#,
        )
        .unwrap();
        let rules = Rules::new(&config.counters);
        assert_eq!(rules.candidates(b"GET", None, &[]), [0]);
    }
);
