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
