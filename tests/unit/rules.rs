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

// The index (src/rules/index.rs): every rule whose method and path match is found, whatever
// else is configured.

fn counters(json: &str) -> Rules {
    let config = parse(format!(r#"{{"counters": [{json}]}}"#).as_bytes()).unwrap();
    Rules::new(&config.counters)
}

logic_test!(
    fn overlapping_templates_are_all_found() {
        let rules = counters(
            r#"{"name": "a_total", "match": {"path": "/users/{id}"}},
            {"name": "b_total", "match": {"path": "/{kind}/{id}"}},
            {"name": "c_total", "match": {"path": "/users/{user_id}"}},
            {"name": "d_total", "match": {"path": "/users/7"}},
            {"name": "e_total", "match": {"path": "/users/{*rest}"}},
            {"name": "f_total", "match": {"path": "/users/{id}.json"}},
            {"name": "g_total", "match": {"path": "/users/{id}"}}"#,
        );
        assert_eq!(
            rules.candidates(b"GET", Some("/users/7"), &[]),
            [0, 1, 2, 3, 4, 6]
        );
        assert_eq!(
            rules.candidates(b"GET", Some("/users/7.json"), &[]),
            [0, 1, 2, 4, 5, 6]
        );
        assert_eq!(rules.candidates(b"GET", Some("/users/7/x?y=1"), &[]), [4]);
        assert_eq!(rules.candidates(b"GET", Some("/orders/7"), &[]), [1]);
        assert!(rules.candidates(b"GET", Some("/users"), &[]).is_empty());
    }
);

logic_test!(
    fn methods_named_and_any_in_rule_order() {
        let rules = counters(
            r#"{"name": "a_total", "match": {"method": "POST", "path": "/login"}},
            {"name": "b_total", "match": {"path": "/login"}},
            {"name": "c_total", "match": {"method": "GET", "path": "/login"}},
            {"name": "d_total", "match": {"method": "POST"}},
            {"name": "e_total", "match": {}}"#,
        );
        assert_eq!(rules.candidates(b"POST", Some("/login"), &[]), [0, 1, 3, 4]);
        assert_eq!(rules.candidates(b"GET", Some("/login"), &[]), [1, 2, 4]);
        assert_eq!(rules.candidates(b"GET", Some("/"), &[]), [4]);
        assert_eq!(rules.candidates(b"post", Some("/login"), &[]), [1, 4]);
        assert_eq!(rules.candidates(b"POST", None, &[]), [3, 4]);
        assert!(rules.need_path(b"GET"));
        let rules = counters(
            r#"{"name": "a_total", "match": {"method": "POST", "path": "/login"}},
            {"name": "b_total", "match": {"method": "GET"}}"#,
        );
        assert!(rules.need_path(b"POST"));
        assert!(!rules.need_path(b"GET"));
        assert!(!rules.need_path(b"PUT"));
    }
);

logic_test!(
    fn many_counters_only_their_own_routes() {
        let many: Vec<String> = (0..200)
            .map(|i| {
                let method = ["GET", "POST", "PUT", "DELETE"][i % 4];
                let path = if i % 2 == 0 { format!("/r{i}") } else { format!("/r{i}/{{id}}") };
                format!(r#"{{"name": "c{i}_total", "match": {{"method": "{method}", "path": "{path}"}}}}"#)
            })
            .collect();
        let rules = counters(&many.join(","));
        assert_eq!(rules.candidates(b"PUT", Some("/r6"), &[]), [6]);
        assert_eq!(rules.candidates(b"POST", Some("/r5/x"), &[]), [5]);
        assert_eq!(rules.candidates(b"DELETE", Some("/r199/x"), &[]), [199]);
        assert!(rules.candidates(b"GET", Some("/r5/x"), &[]).is_empty());
        assert!(rules.candidates(b"GET", Some("/r1000"), &[]).is_empty());
    }
);

logic_test!(
    fn escaped_braces_are_literal() {
        let rules = counters(
            r#"{"name": "a_total", "match": {"path": "/a/{{x}}/{id}"}},
            {"name": "b_total", "match": {"path": "/a/{y}/{id}"}}"#,
        );
        assert_eq!(rules.candidates(b"GET", Some("/a/{x}/1"), &[]), [0, 1]);
        assert_eq!(rules.candidates(b"GET", Some("/a/x/1"), &[]), [1]);
    }
);

logic_test!(
    fn body_rules_through_the_index() {
        let rules = counters(
            r#"{"name": "a_total", "match": {"method": "POST", "path": "/login",
                "response_json": [{"pointer": "/detail", "equals": "x"}], "status": [401]}},
            {"name": "b_total", "match": {"method": "POST", "path": "/login"}},
            {"name": "c_total", "match": {"path": "/users/{id}", "request_json": [{"pointer": "/a", "present": true}]}}"#,
        );
        assert_eq!(
            rules.reading_body(Side::Response, b"POST", Some("/login"), None),
            [0]
        );
        assert_eq!(
            rules.reading_body(Side::Response, b"POST", Some("/login"), Some(401)),
            [0]
        );
        assert!(rules
            .reading_body(Side::Response, b"POST", Some("/login"), Some(200))
            .is_empty());
        assert!(rules
            .reading_body(Side::Request, b"POST", Some("/login"), None)
            .is_empty());
        assert_eq!(
            rules.reading_body(Side::Request, b"PUT", Some("/users/1?x"), None),
            [2]
        );
        assert!(rules
            .reading_body(Side::Request, b"PUT", None, None)
            .is_empty());
    }
);

logic_test!(
    fn templates_share_a_layer_only_when_they_part_at_text() {
        use index::apart;
        assert!(apart("/users/{id}", "/orders/{id}"));
        assert!(apart("/users/{id}", "/users/{id}/posts"));
        assert!(apart("/r1/{id}", "/r2/{id}"));
        assert!(apart("/{id}/a", "/{id}/b"));
        assert!(!apart("/users/{id}", "/users/{user_id}"));
        assert!(!apart("/users/{id}", "/{kind}/{id}"));
        assert!(!apart("/users/{id}", "/users/{*rest}"));
        assert!(!apart("/users/{id}/x", "/users/count/y"));
        assert!(!apart("/{id}/{id}/{id}", "/{n}.json/a"));
        assert!(!apart("/a/{{x}}", "/a/b"));
        assert!(!apart("/a/{id}", "/a/{id}"));
    }
);

/// The index against the rules tried one by one, each template in a router of its own.
#[cfg(not(target_arch = "wasm32"))]
mod against_linear {
    use super::*;
    use crate::config::{BodyTest, Match};
    use crate::routes::insertable;
    use proptest::prelude::*;

    fn linear(counters: &[Counter], method: &[u8], path: Option<&str>) -> Vec<usize> {
        let path = path.map(strip_query);
        let path_matches = |template: &Option<String>| match (template, path) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(t), Some(p)) if !t.contains('{') => t == p,
            (Some(t), Some(p)) => {
                let mut router = matchit::Router::new();
                insertable(t) && router.insert(t.as_str(), ()).is_ok() && router.at(p).is_ok()
            }
        };
        (0..counters.len())
            .filter(|&i| {
                let m = &counters[i].matches;
                m.method.as_ref().is_none_or(|x| x.as_bytes() == method) && path_matches(&m.path)
            })
            .collect()
    }

    fn segment() -> impl Strategy<Value = String> {
        prop_oneof![
            prop::sample::select(vec!["a", "b", "users", "7", "x.json", "img-1"])
                .prop_map(String::from),
            prop::sample::select(vec!["{id}", "{p}", "img-{n}", "{n}.json", "{{x}}", "a{n}b"])
                .prop_map(String::from),
        ]
    }

    fn template() -> impl Strategy<Value = String> {
        (
            prop::collection::vec(segment(), 0..4),
            prop::bool::weighted(0.2),
        )
            .prop_map(|(s, rest)| {
                let mut t = format!("/{}", s.join("/"));
                if rest {
                    t.push_str(if t.ends_with('/') {
                        "{*rest}"
                    } else {
                        "/{*rest}"
                    });
                }
                t
            })
    }

    fn request_path() -> impl Strategy<Value = String> {
        let seg = prop::sample::select(vec![
            "a",
            "b",
            "users",
            "7",
            "x.json",
            "img-1",
            "img-1.json",
            "{x}",
            "axb",
            "",
            "q?x=1",
        ]);
        prop::collection::vec(seg, 0..5).prop_map(|s| format!("/{}", s.join("/")))
    }

    proptest! {
        #[test]
        fn index_finds_what_trying_each_rule_finds(
            specs in prop::collection::vec((
                prop::option::of(prop::sample::select(vec!["GET", "POST"])),
                prop::option::of(template()),
                prop::option::of(any::<bool>()),
            ), 0..24),
            requests in prop::collection::vec((prop::sample::select(vec!["GET", "POST", "PUT"]),
                prop::option::of(request_path())), 1..12),
        ) {
            let counters: Vec<Counter> = specs.iter().enumerate().map(|(i, (method, path, body))| {
                let json = body.map(|present| vec![BodyCondition {
                    pointer: "/a".into(), test: BodyTest::Present(present) }]).unwrap_or_default();
                Counter {
                    name: format!("c{i}"),
                    help: String::new(),
                    matches: Match {
                        method: method.map(String::from),
                        path: path.clone(),
                        response_json: json,
                        ..Match::default()
                    },
                    labels: Vec::new(),
                    increment: None,
                    max_body_bytes: None,
                }
            }).collect();
            let rules = Rules::new(&counters);
            // Every instance of every template, besides the random paths.
            let instances = specs.iter().filter_map(|(_, p, _)| p.as_ref()).map(|t| {
                t.replace("{{x}}", "{x}").replace("{*rest}", "b/c").replace("{id}", "7")
                    .replace("{p}", "a").replace("{n}", "1")
            });
            let requests: Vec<(&str, Option<String>)> = requests.into_iter()
                .chain(instances.map(|p| ("GET", Some(p))))
                .collect();
            for (method, path) in &requests {
                let want = linear(&counters, method.as_bytes(), path.as_deref());
                let got = rules.candidates(method.as_bytes(), path.as_deref(), &[]);
                prop_assert_eq!(&got, &want, "{} {:?}", method, path);
                let reading: Vec<usize> = want.iter().copied()
                    .filter(|&i| path.is_some() && !counters[i].matches.response_json.is_empty())
                    .collect();
                prop_assert_eq!(
                    rules.reading_body(Side::Response, method.as_bytes(), path.as_deref(), None),
                    reading
                );
                let needs = counters.iter().any(|c| c.matches.path.is_some()
                    && c.matches.method.as_ref().is_none_or(|m| m == method));
                prop_assert_eq!(rules.need_path(method.as_bytes()), needs);
            }
        }
    }
}
