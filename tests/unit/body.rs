//! Unit tests of src/body.rs (compiled into the library's test build): which bodies are read,
//! the copy as chunks pass, each condition kind's verdict, both sides combined. Rules come from
//! `config::parse` of the contract's own JSON.

use super::*;
use crate::config::parse;
use crate::test_support::*;

const HOLDS: Verdict = Verdict::Holds(None);

/// The rules of `counters` (JSON objects, comma-separated), through the configuration's parser.
fn rules(counters: &str) -> Rules {
    let json = format!(r#"{{"counters": [{counters}]}}"#);
    match parse(json.as_bytes()) {
        Ok(config) => Rules::new(&config.counters),
        Err(e) => panic!("{json}: {e}"),
    }
}

/// One counter on `POST /p` whose response must meet `conditions` (a JSON array).
fn response_rule(conditions: &str) -> Rules {
    rules(&format!(
        r#"{{"name": "c", "match": {{"method": "POST", "path": "/p", "response_json": {conditions}}}}}"#
    ))
}

/// The verdict of one counter with response `conditions` on a whole response `body`.
fn on(conditions: &str, body: &str) -> Verdict {
    let all = response_rule(conditions);
    let verdicts = evaluate(&all, Side::Response, &[0], body.as_bytes());
    assert_eq!(verdicts.len(), 1, "{verdicts:?}");
    verdicts[0].1
}

/// The verdict of one counter adding the number at the response's `pointer`, on `body`.
fn increment(pointer: &str, body: &str) -> Verdict {
    let all = rules(&format!(
        r#"{{"name": "c", "match": {{"path": "/p"}}, "increment": {{"response_json": "{pointer}"}}}}"#
    ));
    let verdicts = evaluate(&all, Side::Response, &[0], body.as_bytes());
    assert_eq!(verdicts.len(), 1, "{verdicts:?}");
    verdicts[0].1
}

const JSON: Option<&[u8]> = Some(b"application/json");

// ---------------------------------------------------------------------------------------------
// Which bodies are read
// ---------------------------------------------------------------------------------------------

logic_test!(
    fn readable_means_json_and_not_compressed() {
        let ok: [&[u8]; 8] = [
            b"application/json",
            b"application/json; charset=utf-8",
            b"application/json;charset=UTF-8",
            b"Application/JSON",
            b" application/json ",
            b"application/problem+json",
            b"application/vnd.api+json; charset=utf-8",
            b"application/merge-patch+JSON",
        ];
        for t in ok {
            assert_eq!(
                readable(Some(t), None),
                Ok(()),
                "{:?}",
                String::from_utf8_lossy(t)
            );
            assert_eq!(
                readable(Some(t), Some(b"identity")),
                Ok(()),
                "{:?}",
                String::from_utf8_lossy(t)
            );
            assert_eq!(readable(Some(t), Some(b" Identity ")), Ok(()));
        }
        let not_json: [&[u8]; 13] = [
            // gRPC messages in JSON are framed (a 5-byte prefix each), and end with trailers.
            b"application/grpc+json",
            b"application/grpc-web+json",
            b"Application/GRPC+JSON; charset=utf-8",
            b"application/grpc",
            b"text/plain",
            b"text/html; charset=utf-8",
            b"application/x-www-form-urlencoded",
            b"application/jsonx",
            b"application/json-seq",
            b"+json",
            b"json",
            b"",
            b"; application/json",
        ];
        for t in not_json {
            assert_eq!(
                readable(Some(t), None),
                Err(NotCounted::NotJson),
                "{:?}",
                String::from_utf8_lossy(t)
            );
        }
        // No content type: nothing says it is JSON.
        assert_eq!(readable(None, None), Err(NotCounted::NotJson));
        for encoding in [&b"gzip"[..], b"br", b"deflate", b"GZIP", b"gzip, identity"] {
            assert_eq!(
                readable(JSON, Some(encoding)),
                Err(NotCounted::Compressed),
                "{:?}",
                String::from_utf8_lossy(encoding)
            );
        }
    }
);

logic_test!(
    fn start_skips_refuses_or_copies() {
        let all = response_rule(r#"[{"pointer": "/ok", "present": true}]"#);
        // No rule concerned: nothing read, nothing held, and the rule finds no body.
        let skipped = Reading::start(&all, vec![], JSON, None, Some(10));
        assert!(matches!(skipped, Reading::Skipped), "{skipped:?}");
        assert_eq!(skipped.wanted(100), 0);
        assert_eq!(skipped.held(), 0);
        assert_eq!(skipped.verdict(0), Verdict::Unread(NotCounted::NoBody));

        let refused = |reading: Reading, reason| {
            let Reading::Done(verdicts) = &reading else {
                panic!("{reading:?}")
            };
            assert_eq!(verdicts, &[(0, Verdict::Unread(reason))]);
            assert_eq!(reading.wanted(100), 0);
            assert_eq!(reading.held(), 0);
        };
        refused(
            Reading::start(&all, vec![0], Some(b"text/plain"), None, None),
            NotCounted::NotJson,
        );
        refused(
            Reading::start(&all, vec![0], None, None, None),
            NotCounted::NotJson,
        );
        refused(
            Reading::start(&all, vec![0], JSON, Some(b"gzip"), None),
            NotCounted::Compressed,
        );
        // A declared length over the limit (the default 65536 here) is refused before a byte.
        refused(
            Reading::start(&all, vec![0], JSON, None, Some(65_537)),
            NotCounted::TooLarge,
        );
        refused(
            Reading::start(&all, vec![0], JSON, None, Some(u64::MAX)),
            NotCounted::TooLarge,
        );
        // At the limit it is read, with nothing reserved for it: a declared length is a
        // promise a client need not keep.
        let at_limit = Reading::start(&all, vec![0], JSON, None, Some(65_536));
        assert!(matches!(&at_limit, Reading::Copying { limit: 65_536, .. }));
        assert_eq!(at_limit.held(), 0);
        // Without a length nothing is reserved until bytes come.
        let open = Reading::start(&all, vec![0], JSON, None, None);
        assert!(matches!(open, Reading::Copying { limit: 65_536, .. }));
        assert_eq!(open.held(), 0);
    }
);

logic_test!(
    fn the_limit_is_the_largest_of_the_rules_concerned() {
        let all = rules(
            r#"{"name": "small", "match": {"path": "/p", "response_json": [{"pointer": "/a", "present": true}]}, "max_body_bytes": 8},
               {"name": "large", "match": {"path": "/p", "response_json": [{"pointer": "/a", "present": true}]}, "max_body_bytes": 32},
               {"name": "plain", "match": {"path": "/p"}}"#,
        );
        let limit = |concerned: Vec<usize>| match Reading::start(&all, concerned, JSON, None, None)
        {
            Reading::Copying { limit, .. } => limit,
            other => panic!("{other:?}"),
        };
        assert_eq!(limit(vec![0]), 8);
        assert_eq!(limit(vec![1]), 32);
        assert_eq!(limit(vec![0, 1]), 32);
        // A declared 9..=32 bytes is read for the larger; the smaller then finds it too large.
        let body = br#"{"a": "1234"}"#;
        assert_eq!(body.len(), 13);
        let mut reading = Reading::start(&all, vec![0, 1], JSON, None, Some(13));
        reading.push(&body[..9]);
        reading.push(&body[9..]);
        reading.end(&all, Side::Response);
        let Reading::Done(verdicts) = &reading else {
            panic!("{reading:?}")
        };
        assert_eq!(
            verdicts,
            &[(0, Verdict::Unread(NotCounted::TooLarge)), (1, HOLDS)]
        );
        // A rule without body conditions among them reads nothing and fails.
        assert_eq!(
            evaluate(&all, Side::Response, &[2], b"{}"),
            [(2, Verdict::Fails)]
        );
    }
);

/// Feeds `body` in chunks of `sizes` (cycled; the rest in the last chunk) the way the glue
/// does: fetch what `wanted` says, push it. Returns what was fetched in all.
fn feed(reading: &mut Reading, body: &[u8], sizes: &[usize]) -> usize {
    let mut at = 0;
    let mut fetched = 0;
    let mut size = sizes.iter().cycle();
    while at < body.len() {
        let n = (*size.next().unwrap()).clamp(1, body.len() - at);
        let chunk = &body[at..at + n];
        let want = reading.wanted(chunk.len());
        assert!(want <= chunk.len());
        reading.push(&chunk[..want]);
        fetched += want;
        at += n;
    }
    fetched
}

logic_test!(
    fn copies_a_body_across_many_chunks() {
        let all = rules(
            r#"{"name": "locked_logins_total", "match": {"method": "POST", "path": "/login", "status": ["2xx"],
                 "response_json": [{"pointer": "/ok", "equals": false}, {"pointer": "/error", "present": true}]}},
               {"name": "llm_tokens_total", "match": {"method": "POST", "path": "/login"},
                 "increment": {"response_json": "/usage/total_tokens"}, "max_body_bytes": 262144}"#,
        );
        let concerned = all.reading_body(Side::Response, b"POST", Some("/login"), Some(200));
        assert_eq!(concerned, [0, 1]);
        let body = br#"{"ok": false, "error": "locked", "usage": {"total_tokens": 1234}, "pad": "xxxxxxxxxxxxxxxx"}"#;
        for sizes in [&[1usize][..], &[2, 3, 5], &[7], &[64], &[body.len()]] {
            let mut reading = Reading::start(&all, concerned.clone(), JSON, None, None);
            let fetched = feed(&mut reading, body, sizes);
            assert_eq!(fetched, body.len(), "{sizes:?}");
            assert!(
                matches!(&reading, Reading::Copying { bytes, .. } if bytes == body),
                "{sizes:?}: {reading:?}"
            );
            assert!(reading.held() >= body.len());
            // An empty last chunk (end of stream without data) changes nothing.
            reading.push(b"");
            reading.end(&all, Side::Response);
            assert_eq!(reading.held(), 0, "the copy is dropped once evaluated");
            let Reading::Done(verdicts) = &reading else {
                panic!("{reading:?}")
            };
            assert_eq!(verdicts, &[(0, HOLDS), (1, Verdict::Holds(Some(1234)))]);
            // Ended is ended: more bytes or another end change nothing.
            assert_eq!(reading.wanted(10), 0);
            reading.push(b"garbage");
            reading.end(&all, Side::Response);
            assert_eq!(reading.verdict(1), Verdict::Holds(Some(1234)));
        }
    }
);

logic_test!(
    fn a_body_over_the_limit_mid_way_is_too_large_at_once() {
        let all = rules(
            r#"{"name": "c", "match": {"path": "/p", "request_json": [{"pointer": "", "present": true}]}, "max_body_bytes": 16}"#,
        );
        let mut reading = Reading::start(&all, vec![0], JSON, None, None);
        // One past the limit is fetched, so that a longer body is seen to be.
        assert_eq!(reading.wanted(100), 17);
        reading.push(b"[1,2,3,4,");
        assert_eq!(reading.wanted(100), 8);
        assert_eq!(reading.wanted(3), 3);
        reading.push(b"5,6,7,");
        // 15 bytes: one more fits, the 17th does not.
        assert_eq!(reading.wanted(100), 2);
        reading.push(b"8]");
        let Reading::Done(verdicts) = &reading else {
            panic!("17 bytes over a 16-byte limit: {reading:?}")
        };
        assert_eq!(verdicts, &[(0, Verdict::Unread(NotCounted::TooLarge))]);
        assert_eq!(reading.held(), 0, "the partial copy is dropped");
        assert_eq!(reading.wanted(100), 0, "nothing more is fetched");
        reading.end(&all, Side::Request);
        assert_eq!(reading.verdict(0), Verdict::Unread(NotCounted::TooLarge));

        // Exactly the limit is read and evaluated.
        let mut reading = Reading::start(&all, vec![0], JSON, None, None);
        let body = b"[1,2,3,4,5,6,78]";
        assert_eq!(body.len(), 16);
        assert_eq!(feed(&mut reading, body, &[5]), 16);
        reading.end(&all, Side::Request);
        assert_eq!(reading.verdict(0), HOLDS);
    }
);

logic_test!(
    fn a_body_that_never_ends_is_incomplete() {
        let all = response_rule(r#"[{"pointer": "/ok", "equals": true}]"#);
        let mut reading = Reading::start(&all, vec![0], JSON, None, None);
        feed(&mut reading, br#"{"ok": true}"#, &[4]);
        // The whole document came, but not its end: the filter cannot know.
        assert_eq!(reading.verdict(0), Verdict::Unread(NotCounted::Incomplete));
        let pending = Pending {
            response: reading,
            ..Pending::default()
        };
        assert_eq!(
            pending.verdict(&all, 0),
            Verdict::Unread(NotCounted::Incomplete)
        );
        // A refusal (no memory, or the host would not give the bytes) drops the copy.
        let mut reading = Reading::start(&all, vec![0], JSON, None, None);
        reading.push(b"{");
        reading.refuse(NotCounted::Busy);
        assert_eq!(reading.held(), 0);
        reading.end(&all, Side::Response);
        assert_eq!(reading.verdict(0), Verdict::Unread(NotCounted::Busy));
        // A reading not copying keeps its verdicts.
        let mut done = Reading::Done(vec![(0, HOLDS)]);
        done.refuse(NotCounted::Busy);
        assert_eq!(done.verdict(0), HOLDS);
    }
);

// ---------------------------------------------------------------------------------------------
// Verdicts, condition by condition
// ---------------------------------------------------------------------------------------------

logic_test!(
    fn equals_a_string() {
        let detail = r#"[{"pointer": "/detail", "equals": "Incorrect username or password"}]"#;
        assert_eq!(
            on(detail, r#"{"detail": "Incorrect username or password"}"#),
            HOLDS
        );
        // JSON escapes are decoded before comparing.
        assert_eq!(
            on(
                detail,
                r#"{"detail": "Incorrect\u0020username or password"}"#
            ),
            HOLDS
        );
        assert_eq!(on(detail, r#"{"detail": "Not found"}"#), Verdict::Fails);
        assert_eq!(
            on(detail, r#"{"detail": "incorrect username or password"}"#),
            Verdict::Fails
        );
        assert_eq!(
            on(detail, r#"{"detail": ["Incorrect username or password"]}"#),
            Verdict::Fails
        );
        assert_eq!(on(detail, r#"{"detail": {"x": 1}}"#), Verdict::Fails);
        assert_eq!(on(detail, r#"{"detail": null}"#), Verdict::Fails);
        // A number is not its text.
        assert_eq!(
            on(r#"[{"pointer": "/n", "equals": "2"}]"#, r#"{"n": 2}"#),
            Verdict::Fails
        );
        // Nested keys, array indices and escaped tokens.
        let deep = r#"[{"pointer": "/errors/0/extensions/a~1b~0c", "equals": "FORBIDDEN"}]"#;
        assert_eq!(
            on(
                deep,
                r#"{"data": null, "errors": [{"extensions": {"a/b~c": "FORBIDDEN"}}]}"#
            ),
            HOLDS
        );
        assert_eq!(
            on(deep, r#"{"errors": [{"extensions": {"a/b~c": "OTHER"}}]}"#),
            Verdict::Fails
        );
    }
);

logic_test!(
    fn equals_a_number_by_value() {
        let two = r#"[{"pointer": "/n", "equals": 2}]"#;
        for body in [
            r#"{"n": 2}"#,
            r#"{"n": 2.0}"#,
            r#"{"n": 2e0}"#,
            r#"{"n": 0.2e1}"#,
            r#"{"n": 20E-1}"#,
        ] {
            assert_eq!(on(two, body), HOLDS, "{body}");
        }
        for body in [
            r#"{"n": 3}"#,
            r#"{"n": 2.5}"#,
            r#"{"n": -2}"#,
            r#"{"n": "2"}"#,
        ] {
            assert_eq!(on(two, body), Verdict::Fails, "{body}");
        }
        // Configured as a float, matched by the integer.
        assert_eq!(
            on(r#"[{"pointer": "/n", "equals": 2.0}]"#, r#"{"n": 2}"#),
            HOLDS
        );
        assert_eq!(
            on(r#"[{"pointer": "/n", "equals": 2.5}]"#, r#"{"n": 2.5}"#),
            HOLDS
        );
        // Negative numbers.
        let minus = r#"[{"pointer": "/n", "equals": -1}]"#;
        assert_eq!(on(minus, r#"{"n": -1}"#), HOLDS);
        assert_eq!(on(minus, r#"{"n": -1.0}"#), HOLDS);
        assert_eq!(on(minus, r#"{"n": 1}"#), Verdict::Fails);
        // 0 and -0 are the same amount.
        assert_eq!(
            on(r#"[{"pointer": "/n", "equals": 0}]"#, r#"{"n": -0}"#),
            HOLDS
        );
        // The largest integers compare exactly.
        let max = r#"[{"pointer": "/n", "equals": 18446744073709551615}]"#;
        assert_eq!(on(max, r#"{"n": 18446744073709551615}"#), HOLDS);
        assert_eq!(on(max, r#"{"n": 18446744073709551614}"#), Verdict::Fails);
    }
);

logic_test!(
    fn equals_a_boolean_or_null() {
        let ok_false = r#"[{"pointer": "/ok", "equals": false}]"#;
        assert_eq!(on(ok_false, r#"{"ok": false}"#), HOLDS);
        for body in [
            r#"{"ok": true}"#,
            r#"{"ok": "false"}"#,
            r#"{"ok": 0}"#,
            r#"{"ok": null}"#,
        ] {
            assert_eq!(on(ok_false, body), Verdict::Fails, "{body}");
        }
        assert_eq!(
            on(r#"[{"pointer": "/ok", "equals": true}]"#, r#"{"ok": true}"#),
            HOLDS
        );
        let null = r#"[{"pointer": "/data", "equals": null}]"#;
        assert_eq!(on(null, r#"{"data": null, "errors": []}"#), HOLDS);
        for body in [r#"{"data": {}}"#, r#"{"data": 0}"#, r#"{"data": "null"}"#] {
            assert_eq!(on(null, body), Verdict::Fails, "{body}");
        }
        // Absent is not null: the body could not say.
        assert_eq!(
            on(null, r#"{"errors": []}"#),
            Verdict::Unread(NotCounted::Missing)
        );
    }
);

logic_test!(
    fn present_true_or_false() {
        let present = r#"[{"pointer": "/errors", "present": true}]"#;
        let absent = r#"[{"pointer": "/errors", "present": false}]"#;
        for body in [
            r#"{"errors": [{"message": "x"}]}"#,
            r#"{"errors": []}"#,
            r#"{"errors": null}"#,
            r#"{"errors": false}"#,
            r#"{"errors": {}}"#,
        ] {
            assert_eq!(on(present, body), HOLDS, "{body}");
            assert_eq!(on(absent, body), Verdict::Fails, "{body}");
        }
        for body in [r#"{"data": {}}"#, r#"{"Errors": 1}"#, "[]", "null", "5"] {
            // A pointer that finds nothing is what `present` asks about: not `missing`.
            assert_eq!(on(present, body), Verdict::Fails, "{body}");
            assert_eq!(on(absent, body), HOLDS, "{body}");
        }
        // Array elements by index.
        let second = r#"[{"pointer": "/a/1", "present": true}]"#;
        assert_eq!(on(second, r#"{"a": [0, 0]}"#), HOLDS);
        assert_eq!(on(second, r#"{"a": [0]}"#), Verdict::Fails);
        assert_eq!(on(second, r#"{"a": {"1": 0}}"#), HOLDS);
        // The root.
        assert_eq!(on(r#"[{"pointer": "", "present": true}]"#, "0"), HOLDS);
    }
);

logic_test!(
    fn every_condition_must_hold_and_a_mismatch_beats_a_missing_pointer() {
        let locked =
            r#"[{"pointer": "/ok", "equals": false}, {"pointer": "/error", "present": true}]"#;
        assert_eq!(on(locked, r#"{"ok": false, "error": "locked"}"#), HOLDS);
        assert_eq!(on(locked, r#"{"ok": false}"#), Verdict::Fails);
        assert_eq!(on(locked, r#"{"ok": true, "error": "x"}"#), Verdict::Fails);
        assert_eq!(
            on(locked, r#"{"error": "x"}"#),
            Verdict::Unread(NotCounted::Missing)
        );
        // Whichever comes first, a condition that does not hold decides.
        let both = r#"[{"pointer": "/gone", "equals": 1}, {"pointer": "/ok", "equals": false}]"#;
        assert_eq!(on(both, r#"{"ok": true}"#), Verdict::Fails);
        assert_eq!(
            on(both, r#"{"ok": false}"#),
            Verdict::Unread(NotCounted::Missing)
        );
        let both = r#"[{"pointer": "/ok", "equals": false}, {"pointer": "/gone", "equals": 1}]"#;
        assert_eq!(on(both, r#"{"ok": true}"#), Verdict::Fails);
        assert_eq!(
            on(both, r#"{"ok": false}"#),
            Verdict::Unread(NotCounted::Missing)
        );
        // present: false holding beside a missing equals is still missing.
        let mixed =
            r#"[{"pointer": "/gone", "equals": "x"}, {"pointer": "/also_gone", "present": false}]"#;
        assert_eq!(on(mixed, "{}"), Verdict::Unread(NotCounted::Missing));
        // The same pointer twice is looked up once and answers both.
        let twice = r#"[{"pointer": "/n", "present": true}, {"pointer": "/n", "equals": 7}]"#;
        assert_eq!(on(twice, r#"{"n": 7}"#), HOLDS);
        assert_eq!(on(twice, r#"{"n": 8}"#), Verdict::Fails);
    }
);

logic_test!(
    fn increment_takes_a_non_negative_integer() {
        let tokens = "/usage/total_tokens";
        assert_eq!(
            increment(tokens, r#"{"usage": {"total_tokens": 1234}}"#),
            Verdict::Holds(Some(1234))
        );
        assert_eq!(
            increment(tokens, r#"{"usage": {"total_tokens": 0}}"#),
            Verdict::Holds(Some(0))
        );
        assert_eq!(
            increment(
                tokens,
                r#"{"usage": {"total_tokens": 18446744073709551615}}"#
            ),
            Verdict::Holds(Some(u64::MAX))
        );
        for body in [
            r#"{"usage": {"total_tokens": -1}}"#,
            r#"{"usage": {"total_tokens": 1.5}}"#,
            r#"{"usage": {"total_tokens": 12.0}}"#,
            r#"{"usage": {"total_tokens": 1e3}}"#,
            r#"{"usage": {"total_tokens": "12"}}"#,
            r#"{"usage": {"total_tokens": null}}"#,
            r#"{"usage": {"total_tokens": true}}"#,
            r#"{"usage": {"total_tokens": [12]}}"#,
            r#"{"usage": {"total_tokens": {}}}"#,
            // Past u64: serde_json reads it as a float.
            r#"{"usage": {"total_tokens": 18446744073709551616}}"#,
        ] {
            assert_eq!(
                increment(tokens, body),
                Verdict::Unread(NotCounted::Invalid),
                "{body}"
            );
        }
        for body in [r#"{"usage": {}}"#, r#"{"usage": 5}"#, "{}", "[]"] {
            assert_eq!(
                increment(tokens, body),
                Verdict::Unread(NotCounted::Missing),
                "{body}"
            );
        }
        // The root itself.
        assert_eq!(increment("", "42"), Verdict::Holds(Some(42)));

        // With conditions: they decide first; the amount only when they hold.
        let all = rules(
            r#"{"name": "c", "match": {"path": "/p", "response_json": [{"pointer": "/ok", "equals": true}]},
                "increment": {"response_json": "/n"}}"#,
        );
        let v = |body: &str| evaluate(&all, Side::Response, &[0], body.as_bytes())[0].1;
        assert_eq!(v(r#"{"ok": true, "n": 3}"#), Verdict::Holds(Some(3)));
        assert_eq!(v(r#"{"ok": false}"#), Verdict::Fails);
        assert_eq!(v(r#"{"ok": false, "n": "x"}"#), Verdict::Fails);
        assert_eq!(v(r#"{"ok": true}"#), Verdict::Unread(NotCounted::Missing));
        assert_eq!(
            v(r#"{"ok": true, "n": -3}"#),
            Verdict::Unread(NotCounted::Invalid)
        );
        // The increment is read only on its own side.
        assert_eq!(evaluate(&all, Side::Request, &[0], b"{}")[0].1, HOLDS);
    }
);

logic_test!(
    fn a_body_that_is_not_json_is_a_parse_error() {
        let present = r#"[{"pointer": "/ok", "present": false}]"#;
        // No byte at all is no body (an empty final data frame), not a parse error.
        assert_eq!(on(present, ""), Verdict::Unread(NotCounted::NoBody));
        for body in [
            " ",
            "{",
            r#"{"ok": true"#,
            r#"{"ok": true}}"#,
            r#"{"ok": true} {"ok": false}"#,
            "ok=true",
            "<html></html>",
            r#"{"ok": tru}"#,
            r#"{'ok': true}"#,
            r#"{"a": [1, 2,]}"#,
            "NaN",
        ] {
            // Even `present: false`, which any document without /ok meets, cannot say.
            assert_eq!(
                on(present, body),
                Verdict::Unread(NotCounted::Parse),
                "{body:?}"
            );
        }
        // Invalid UTF-8 on the way to a value.
        let all = response_rule(r#"[{"pointer": "/s", "equals": "x"}]"#);
        assert_eq!(
            evaluate(&all, Side::Response, &[0], b"{\"s\": \"\xff\"}")[0].1,
            Verdict::Unread(NotCounted::Parse)
        );
        // Whitespace around a document is fine.
        assert_eq!(on(present, " \r\n\t{} \n"), HOLDS);
        assert_eq!(
            increment("/n", r#"{"n": 5, "junk": [1, 2, 3] "#),
            Verdict::Unread(NotCounted::Parse)
        );
    }
);

logic_test!(
    fn each_rule_is_judged_on_its_own_limit_and_conditions() {
        let all = rules(
            r#"{"name": "small", "match": {"path": "/p", "response_json": [{"pointer": "/a", "equals": 1}]}, "max_body_bytes": 10},
               {"name": "large", "match": {"path": "/p", "response_json": [{"pointer": "/a", "equals": 1}]}, "max_body_bytes": 100},
               {"name": "other", "match": {"path": "/p", "response_json": [{"pointer": "/b", "equals": 1}]}},
               {"name": "tokens", "match": {"path": "/p"}, "increment": {"response_json": "/n"}}"#,
        );
        let body = br#"{"a": 1, "n": 12}"#;
        assert!(body.len() > 10);
        assert_eq!(
            evaluate(&all, Side::Response, &[0, 1, 2, 3], body),
            [
                (0, Verdict::Unread(NotCounted::TooLarge)),
                (1, HOLDS),
                (2, Verdict::Unread(NotCounted::Missing)),
                (3, Verdict::Holds(Some(12))),
            ]
        );
        // Only the rules asked about get a verdict, in the order asked.
        assert_eq!(
            evaluate(&all, Side::Response, &[3, 1], body),
            [(3, Verdict::Holds(Some(12))), (1, HOLDS)]
        );
        // Too large is said before whether it parses.
        assert_eq!(
            evaluate(&all, Side::Response, &[0, 1], b"not json at all"),
            [
                (0, Verdict::Unread(NotCounted::TooLarge)),
                (1, Verdict::Unread(NotCounted::Parse))
            ]
        );
        // An index without body rules (or past the end) never holds.
        assert_eq!(
            evaluate(&all, Side::Response, &[9], body),
            [(9, Verdict::Fails)]
        );
    }
);

// ---------------------------------------------------------------------------------------------
// Both sides
// ---------------------------------------------------------------------------------------------

logic_test!(
    fn verdicts_of_both_sides_combine() {
        let all = rules(
            r#"{"name": "both", "match": {"path": "/p", "request_json": [{"pointer": "/u", "equals": "alice"}],
                  "response_json": [{"pointer": "/ok", "equals": true}]}, "increment": {"response_json": "/n"}},
               {"name": "response_only", "match": {"path": "/p", "response_json": [{"pointer": "/ok", "equals": true}]}},
               {"name": "request_amount", "match": {"path": "/p"}, "increment": {"request_json": "/n"}},
               {"name": "no_body", "match": {"path": "/p"}}"#,
        );
        let pending = |request: Verdict, response: Verdict| Pending {
            request: Reading::Done(vec![(0, request), (1, request), (2, request)]),
            response: Reading::Done(vec![(0, response), (1, response), (2, response)]),
            ..Pending::default()
        };
        let missing = Verdict::Unread(NotCounted::Missing);
        let parse = Verdict::Unread(NotCounted::Parse);
        let cases = [
            (HOLDS, Verdict::Holds(Some(3)), Verdict::Holds(Some(3))),
            (HOLDS, HOLDS, HOLDS),
            // A non-match on either side wins over everything.
            (Verdict::Fails, missing, Verdict::Fails),
            (missing, Verdict::Fails, Verdict::Fails),
            (Verdict::Fails, Verdict::Holds(Some(3)), Verdict::Fails),
            (Verdict::Holds(None), Verdict::Fails, Verdict::Fails),
            // Then a body that could not say.
            (missing, Verdict::Holds(Some(3)), missing),
            (HOLDS, parse, parse),
            (parse, missing, parse),
        ];
        for (request, response, want) in cases {
            let p = pending(request, response);
            assert_eq!(p.verdict(&all, 0), want, "{request:?} + {response:?}");
            assert_eq!(verdict(Some(&p), &all, 0), want);
        }
        // A rule that reads one side ignores the other.
        let p = pending(Verdict::Fails, HOLDS);
        assert_eq!(p.verdict(&all, 1), HOLDS);
        let p = pending(Verdict::Holds(Some(9)), Verdict::Fails);
        assert_eq!(p.verdict(&all, 2), Verdict::Holds(Some(9)));
        // The increment comes from its side.
        let p = pending(HOLDS, Verdict::Holds(Some(5)));
        assert_eq!(p.verdict(&all, 0), Verdict::Holds(Some(5)));
        // A side never started, skipped, still copying, or without this rule.
        let open = Reading::start(&all, vec![0, 1], JSON, None, None);
        for (response, want) in [
            (Reading::NotStarted, Verdict::Unread(NotCounted::NoBody)),
            (Reading::Skipped, Verdict::Unread(NotCounted::NoBody)),
            (open, Verdict::Unread(NotCounted::Incomplete)),
            (
                Reading::Done(vec![(2, HOLDS)]),
                Verdict::Unread(NotCounted::NoBody),
            ),
        ] {
            let p = Pending {
                request: Reading::Done(vec![(0, HOLDS)]),
                response,
                ..Pending::default()
            };
            assert_eq!(p.verdict(&all, 1), want);
            assert_eq!(p.verdict(&all, 0), want);
        }
        // No body seen at all: a rule that reads one finds none; a rule that does not, holds.
        for i in 0..3 {
            assert_eq!(
                verdict(None, &all, i),
                Verdict::Unread(NotCounted::NoBody),
                "rule {i}"
            );
        }
        assert_eq!(verdict(None, &all, 3), HOLDS);
        assert_eq!(
            verdict(Some(&pending(Verdict::Fails, Verdict::Fails)), &all, 3),
            HOLDS
        );
    }
);

logic_test!(
    fn reasons_have_distinct_labels() {
        let labels: Vec<&str> = NotCounted::ALL.iter().map(|r| r.label()).collect();
        assert_eq!(
            labels,
            [
                "no_body",
                "not_json",
                "compressed",
                "too_large",
                "parse",
                "missing",
                "invalid",
                "incomplete",
                "busy"
            ]
        );
        for (i, r) in NotCounted::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
    }
);

logic_test!(
    fn copies_grow_by_doubling_up_to_the_limit_and_never_abort() {
        let mut bytes = Vec::new();
        assert!(grow(&mut bytes, 1, 100));
        assert!(bytes.capacity() >= 1);
        bytes.push(b'{');
        assert!(grow(&mut bytes, 1, 100));
        assert!(bytes.capacity() >= 2);
        bytes.resize(60, b' ');
        assert!(grow(&mut bytes, 1, 100));
        assert!(
            (61..=101).contains(&bytes.capacity()),
            "{}",
            bytes.capacity()
        );
        // An allocation the VM cannot make is an answer, not an abort.
        assert!(!grow(&mut bytes, usize::MAX, usize::MAX));
        assert!(!grow(&mut bytes, isize::MAX as usize, usize::MAX));
        assert_eq!(bytes.len(), 60, "left as it was");
    }
);
