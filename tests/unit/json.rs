//! Unit tests of src/json.rs (compiled into the library's test build).

use super::*;
use crate::test_support::*;

fn doc(text: &str) -> Json {
    Json::parse(text.as_bytes()).unwrap()
}

logic_test!(
    fn parses_every_kind_in_document_order() {
        let d = doc(r#"{"b": [1, -2, 2.5, "s", true, null, {}], "a": {"x": 1}, "b": 0}"#);
        let Json::Object(entries) = &d else {
            panic!("{d:?}")
        };
        let keys: Vec<&str> = entries.iter().map(|(k, _)| k.as_str()).collect();
        // Order and the repeated key are kept (the reader refuses repeats; see below).
        assert_eq!(keys, ["b", "a", "b"]);
        assert_eq!(
            entries[0].1,
            Json::Array(vec![
                Json::Number(Number::Unsigned(1)),
                Json::Number(Number::Signed(-2)),
                Json::Number(Number::Float(2.5)),
                Json::String("s".into()),
                Json::Bool(true),
                Json::Null,
                Json::Object(vec![]),
            ])
        );
        assert!(Json::parse(b"{").is_err());
        assert!(Json::parse(b"[1,]").is_err());
        // serde_json's recursion limit holds for this tree too: an error, no stack overflow.
        let deep = "[".repeat(10_000);
        assert!(Json::parse(deep.as_bytes()).is_err());
    }
);

logic_test!(
    fn pointers_follow_rfc_6901() {
        let text = r#"{"a": {"b/c": [10, 20], "m~n": 3}, "": 4, "d": 1, "d": 2}"#;
        let at = |p: &str| select(text.as_bytes(), p).unwrap();
        let n = |v| Some(Selected::Number(Number::Unsigned(v)));
        assert_eq!(at(""), Some(Selected::Other));
        assert_eq!(at("/a/b~1c/1"), n(20));
        assert_eq!(at("/a/m~0n"), n(3));
        assert_eq!(at("/"), n(4));
        // The last of repeated keys, as serde_json's Value keeps it.
        assert_eq!(at("/d"), n(2));
        for missing in [
            "a",
            "/x",
            "/a/b~1c/2",
            "/a/b~1c/01",
            "/a/b~1c/-",
            "/a/b~1c/+1",
            "/d/0",
        ] {
            assert_eq!(at(missing), None, "{missing}");
        }
    }
);

logic_test!(
    fn reader_errors_name_the_path_and_the_expectation() {
        let d = doc(
            r#"{"list": [{"n": 1}, {"n": "x"}], "neg": -5, "f": 1.5, "dup": {"k": 1, "k": 2}}"#,
        );
        let root = Node::root(&d);
        let read = |fields: &[&str]| {
            root.object(fields, |f| {
                f.required("list", |n| {
                    n.array(|item| item.object(&["n"], |f| f.required("n", |n| n.u64())))
                })
            })
        };
        let all = ["list", "neg", "f", "dup"];
        assert_eq!(
            read(&all).unwrap_err().to_string(),
            r#"list[1].n: invalid type: string "x", expected u64"#
        );
        assert_eq!(
            read(&["list", "neg", "f"]).unwrap_err().to_string(),
            "dup: unknown field `dup`, expected one of `list`, `neg`, `f`"
        );
        let field = |name: &str| {
            root.object(&all, |f| f.required(name, |n| n.u64()))
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            field("neg"),
            "neg: invalid value: integer `-5`, expected u64"
        );
        assert_eq!(
            field("f"),
            "f: invalid type: floating point number, expected u64"
        );
        assert_eq!(field("dup"), "dup: invalid type: object, expected u64");
        assert_eq!(field("none"), ".: missing field `none`");
        let dup = root
            .object(&all, |f| {
                f.required("dup", |n| {
                    n.object(&["k"], |f| f.required("k", |n| n.u64()))
                })
            })
            .unwrap_err();
        assert_eq!(dup.to_string(), "dup.k: duplicate field `k`");
        // null: absent for `nullable`, a value for `optional` (strict).
        let d = doc(r#"{"a": null}"#);
        let root = Node::root(&d);
        assert_eq!(
            root.object(&["a"], |f| f.nullable("a", |n| n.string())),
            Ok(None)
        );
        assert_eq!(
            root.object(&["a"], |f| f.optional("a", |n| n.string()))
                .unwrap_err()
                .to_string(),
            "a: invalid type: null, expected a string"
        );
    }
);

logic_test!(
    fn maps_are_bounded_and_objects_refuse_repeats_early() {
        // A map over its bound is refused before any key is looked at.
        let body: Vec<String> = (0..20_000).map(|i| format!("\"h{i}\": true")).collect();
        let d = doc(&format!("{{\"m\": {{{}}}}}", body.join(", ")));
        let m = Node::root(&d).object(&["m"], |f| {
            f.required("m", |n| n.entries(32, |k, _| Ok(k.len())))
        });
        assert_eq!(
            m.unwrap_err().to_string(),
            "m: has 20000 entries (expected at most 32)"
        );
        // An object: the first unknown or repeated key ends the reading.
        let d = doc(&format!("{{{}}}", body.join(", ")));
        let err = Node::root(&d).object(&["h0"], |_| Ok(())).unwrap_err();
        assert_eq!(
            err.to_string(),
            "h1: unknown field `h1`, expected one of `h0`"
        );
        let d = doc(r#"{"a": 1, "b": 2, "a": 3}"#);
        let err = Node::root(&d).entries(32, |_, _| Ok(())).unwrap_err();
        assert_eq!(err.to_string(), "a: duplicate field `a`");
    }
);

// The samplers' one-pass reader answers as the tree does, without building it.
logic_test!(
    fn select_finds_what_pointer_finds() {
        let text =
            r#"{"a": [10, {"b~c/d": -3}, [1, 2]], "n": 1, "n": 2.5, "s": "x", "o": {}, "z": null}"#;
        let sel = |p: &str| select(text.as_bytes(), p).unwrap();
        assert_eq!(sel("/a/0"), Some(Selected::Number(Number::Unsigned(10))));
        assert_eq!(
            sel("/a/1/b~0c~1d"),
            Some(Selected::Number(Number::Signed(-3)))
        );
        assert_eq!(sel("/a/2"), Some(Selected::Array(2)));
        assert_eq!(sel("/a"), Some(Selected::Array(3)));
        // Duplicate keys: the last one counts, as in the tree.
        assert_eq!(sel("/n"), Some(Selected::Number(Number::Float(2.5))));
        assert_eq!(sel("/s"), Some(Selected::Other));
        assert_eq!(sel("/o"), Some(Selected::Other));
        assert_eq!(sel("/z"), Some(Selected::Other));
        assert_eq!(sel(""), Some(Selected::Other));
        for missing in [
            "/a/3", "/a/01", "/a/-", "/x", "/n/0", "/s/x", "/a/0/0", "nope",
        ] {
            assert_eq!(sel(missing), None, "{missing}");
        }
        // The whole document is checked, not just the way to the value.
        assert!(select(br#"{"a": 1, "b": [}"#, "/a").is_err());
        assert!(select(br#"{"a": 1} x"#, "/a").is_err());
        assert!(select(b"", "").is_err());
        // A long array is counted, not stored.
        let long = format!("[{}0]", "0,".repeat(1_000_000));
        assert_eq!(
            select(long.as_bytes(), "").unwrap(),
            Some(Selected::Array(1_000_001))
        );
    }
);

// ---------------------------------------------------------------------------------------------
// `lookup`: several pointers, one pass (the body rules')
// ---------------------------------------------------------------------------------------------

fn found(text: &str, pointers: &[&str]) -> Vec<Option<Found>> {
    match lookup(text.as_bytes(), pointers) {
        Ok(found) => found,
        Err(e) => panic!("{text}: {e}"),
    }
}

fn unsigned(n: u64) -> Option<Found> {
    Some(Found::Number(Number::Unsigned(n)))
}

fn string(s: &str) -> Option<Found> {
    Some(Found::String(s.to_string()))
}

logic_test!(
    fn lookup_answers_every_pointer_in_its_order() {
        let text = r#"{"a": {"b": [1, {"c": "x", "d": [true]}], "n": null, "e": [], "o": {}},
                       "f": -1.5, "g": {"h": 18446744073709551615}, "i": -9223372036854775808}"#;
        let pointers = [
            "/a/b/1/c",
            "",
            "/a",
            "/a/b",
            "/a/b/0",
            "/a/b/1",
            "/a/b/1/d",
            "/a/b/1/d/0",
            "/a/n",
            "/a/e",
            "/a/o",
            "/f",
            "/g/h",
            "/i",
            "/a/b/2",
            "/a/x",
            "/a/b/1/c/0",
            "/a/n/x",
            "/a/b/1/c",
        ];
        assert_eq!(
            found(text, &pointers),
            [
                string("x"),
                Some(Found::Object),
                Some(Found::Object),
                Some(Found::Array(2)),
                unsigned(1),
                Some(Found::Object),
                Some(Found::Array(1)),
                Some(Found::Bool(true)),
                Some(Found::Null),
                Some(Found::Array(0)),
                Some(Found::Object),
                Some(Found::Number(Number::Float(-1.5))),
                unsigned(u64::MAX),
                Some(Found::Number(Number::Signed(i64::MIN))),
                None,
                None,
                None,
                None,
                // The same pointer twice answers twice.
                string("x"),
            ]
        );
        // No pointers: only the syntax is checked.
        assert_eq!(found(text, &[]), []);
        assert!(lookup(b"{", &[]).is_err());
        // Scalars at the root.
        assert_eq!(found("5", &["", "/0"]), [unsigned(5), None]);
        assert_eq!(found(r#""s""#, &["", "/0"]), [string("s"), None]);
        assert_eq!(
            found("[7, 8]", &["/1", "", "/0", "/2"]),
            [unsigned(8), Some(Found::Array(2)), unsigned(7), None]
        );
    }
);

logic_test!(
    fn lookup_numbers_as_serde_json_reads_them() {
        let text = "[0, -0, 1.0, 2e0, -3, 1e300, 18446744073709551616, 0.1]";
        let got = found(text, &["/0", "/1", "/2", "/3", "/4", "/5", "/6", "/7"]);
        let n = |i: usize| match &got[i] {
            Some(Found::Number(n)) => *n,
            other => panic!("{other:?}"),
        };
        assert_eq!(n(0), Number::Unsigned(0));
        // -0 is a float for serde_json (an integer has no negative zero).
        assert!(matches!(n(1), Number::Float(f) if f == 0.0 && f.is_sign_negative()));
        assert_eq!(n(2), Number::Float(1.0));
        assert_eq!(n(3), Number::Float(2.0));
        assert_eq!(n(4), Number::Signed(-3));
        assert_eq!(n(5), Number::Float(1e300));
        assert_eq!(n(6), Number::Float(18446744073709551616.0));
        assert_eq!(n(7), Number::Float(0.1));
        // Out of range for serde_json: an error, on the path or off it (as serde_json has it).
        assert!(lookup(b"[1e400]", &["/0"]).is_err());
        let far = br#"{"a": 1, "b": [1e400, -1e999]}"#;
        assert!(lookup(far, &["/a"]).is_err());
        assert!(serde_json::from_slice::<serde_json::Value>(far).is_err());
    }
);

logic_test!(
    fn numbers_are_the_same_by_value() {
        use Number::*;
        assert!(Unsigned(2).same(Float(2.0)));
        assert!(Float(2.0).same(Unsigned(2)));
        assert!(Signed(-2).same(Float(-2.0)));
        assert!(Float(-0.0).same(Unsigned(0)));
        assert!(Float(0.5).same(Float(0.5)));
        assert!(Unsigned(7).same(Unsigned(7)));
        assert!(Signed(-7).same(Signed(-7)));
        assert!(!Unsigned(2).same(Float(2.5)));
        assert!(!Unsigned(2).same(Unsigned(3)));
        assert!(!Signed(-2).same(Signed(-3)));
        // Signed holds only negatives: never the same as an Unsigned.
        assert!(!Unsigned(2).same(Signed(-2)));
        assert!(!Signed(-2).same(Unsigned(2)));
        assert!(!Float(f64::NAN).same(Float(f64::NAN)));
    }
);

logic_test!(
    fn lookup_decodes_escaped_tokens_and_keys() {
        let text = r#"{"a/b": 1, "m~n": 2, "~1": 3, "": 4, "~0": 5, "x": {"": 6}, "q\"\u00e9": 7, "/": 8}"#;
        assert_eq!(
            found(
                text,
                &[
                    "/a~1b", "/m~0n", "/~01", "/", "/~00", "/x/", "/q\"é", "/~1", "/a/b", "/m~n",
                    "//"
                ]
            ),
            [
                unsigned(1),
                unsigned(2),
                unsigned(3),
                unsigned(4),
                unsigned(5),
                unsigned(6),
                unsigned(7),
                unsigned(8),
                None,
                // `~n` is no escape: the token stays as it is.
                unsigned(2),
                None,
            ]
        );
    }
);

logic_test!(
    fn lookup_takes_the_last_of_repeated_keys() {
        // The last copy decides even where it lacks what an earlier one had.
        let text = r#"{"a": {"b": 1, "c": {"d": 2}}, "a": {"c": 3}, "x": [1, 2], "x": 5, "y": 1, "y": [9]}"#;
        assert_eq!(
            found(
                text,
                &["/a/b", "/a/c/d", "/a/c", "/a", "/x/0", "/x", "/y", "/y/0"]
            ),
            [
                None,
                None,
                unsigned(3),
                Some(Found::Object),
                None,
                unsigned(5),
                Some(Found::Array(1)),
                unsigned(9)
            ]
        );
        // Within one object, and deep down.
        assert_eq!(
            found(
                r#"{"o": {"k": 1, "k": {"z": 2}, "k": 3}}"#,
                &["/o/k", "/o/k/z"]
            ),
            [unsigned(3), None]
        );
        assert_eq!(
            found(r#"{"o": {"k": 1, "k": {"z": 2}}}"#, &["/o/k", "/o/k/z"]),
            [Some(Found::Object), unsigned(2)]
        );
        // As serde_json's own tree has it.
        let tree: serde_json::Value = serde_json::from_str(text).unwrap();
        assert_eq!(tree.pointer("/a/b"), None);
        assert_eq!(tree.pointer("/x"), Some(&serde_json::json!(5)));
    }
);

logic_test!(
    fn lookup_array_indices_are_rfc_6901s() {
        let text = r#"{"a": [10, 11, 12], "o": {"01": 1, "-": 2, "1": 3}}"#;
        assert_eq!(
            found(
                text,
                &[
                    "/a/0",
                    "/a/2",
                    "/a/3",
                    "/a/01",
                    "/a/-",
                    "/a/+1",
                    "/a/1.0",
                    "/a/ 1",
                    "/a/18446744073709551616",
                    "/a/",
                    "/o/01",
                    "/o/-",
                    "/o/1"
                ]
            ),
            [
                unsigned(10),
                unsigned(12),
                None,
                None,
                None,
                None,
                None,
                None,
                None,
                None,
                // In an object a token is a key, whatever it looks like.
                unsigned(1),
                unsigned(2),
                unsigned(3),
            ]
        );
    }
);

logic_test!(
    fn lookup_refuses_what_is_not_a_pointer() {
        let text = r#"{"a": 1, "": {"a": 2}}"#;
        assert_eq!(
            found(text, &["a", "/a", "#/a", " /a", "", "/"]),
            [
                None,
                unsigned(1),
                None,
                None,
                Some(Found::Object),
                Some(Found::Object)
            ]
        );
        assert_eq!(pointer_tokens("a"), None);
        assert_eq!(pointer_tokens(""), Some(vec![]));
        assert_eq!(pointer_tokens("/"), Some(vec![String::new()]));
        assert_eq!(
            pointer_tokens("/a~1b/~0/~01"),
            Some(vec!["a/b".to_string(), "~".to_string(), "~1".to_string()])
        );
    }
);

logic_test!(
    fn lookup_checks_the_whole_document() {
        for text in [
            "",
            " ",
            r#"{"a": 1, "b": [}"#,
            r#"{"a": 1} x"#,
            r#"{"a": 1}{"a": 1}"#,
            r#"{"a": 1, "b": tru}"#,
            r#"{"a": 1, "b": [1, 2,]}"#,
            r#"{"a": 1,}"#,
            r#"{"a" 1}"#,
            r#"{a: 1}"#,
            r#"{"a": 01}"#,
            r#"{"a": 1, "b": {"c": "unterminated}}"#,
            "[1, 2",
            "\u{feff}{}",
        ] {
            for pointers in [&["/a"][..], &["/a", "/b", ""], &[]] {
                assert!(
                    lookup(text.as_bytes(), pointers).is_err(),
                    "{text:?} {pointers:?}"
                );
            }
        }
        // Invalid UTF-8 in a value, on the path or off it.
        assert!(lookup(b"{\"a\": \"\xff\"}", &["/a"]).is_err());
        assert!(lookup(b"{\"a\": 1, \"b\": \"\xff\"}", &["/a"]).is_err());
        // Deep documents never overflow the stack: serde_json's recursion limit makes them an
        // error, on the path or off it, as it does for serde_json.
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        let pointer = "/0".repeat(10_000);
        assert!(lookup(deep.as_bytes(), &[pointer.as_str()]).is_err());
        let past_the_limit = "/0".repeat(130);
        assert!(lookup(deep.as_bytes(), &[past_the_limit.as_str()]).is_err());
        assert!(lookup(deep.as_bytes(), &["", "/0/1"]).is_err());
        assert!(serde_json::from_slice::<serde_json::Value>(deep.as_bytes()).is_err());
        assert!(Json::parse(deep.as_bytes()).is_err());
        // Within it, a deep path is followed to its end.
        let nested = format!("{}7{}", "[".repeat(100), "]".repeat(100));
        let pointer = "/0".repeat(100);
        assert_eq!(
            found(&nested, &[pointer.as_str(), &pointer[..4], &pointer[..198]]),
            [unsigned(7), Some(Found::Array(1)), Some(Found::Array(1))]
        );
    }
);
