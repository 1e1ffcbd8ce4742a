//! Unit tests of src/labels.rs (compiled into the library's test build).

use super::*;
use crate::test_support::*;

logic_test!(
    fn encodes_labels_istio_style() {
        assert_eq!(
            stat_name(
                "http_requests_total",
                &[("handler", "/login"), ("method", "POST"), ("status", "2xx")]
            ),
            "handler=.=/login;.;method=.=POST;.;status=.=2xx;.;http_requests_total"
        );
        assert_eq!(stat_name("total_users", &[]), "total_users");
    }
);

logic_test!(
    fn methods_outside_the_standard_set_are_other() {
        assert_eq!(method_label(method_index(b"POST")), "POST");
        assert_eq!(method_label(method_index(b"post")), "other");
        assert_eq!(method_label(method_index(b"BREW")), "other");
        assert_eq!(method_label(method_index(&[0xff, 0x00])), "other");
    }
);

logic_test!(
    fn statuses_map_to_classes() {
        assert_eq!(status_label(status_index(200)), "2xx");
        assert_eq!(status_label(status_index(401)), "4xx");
        assert_eq!(status_label(status_index(599)), "5xx");
        assert_eq!(status_label(status_index(99)), "other");
        assert_eq!(status_label(status_index(600)), "other");
        assert_eq!(status_label(status_index(0)), "other");
    }
);

fn client() -> Dynamic {
    Dynamic {
        name: "client".into(),
        side: Side::Request,
        header: 1,
        values: vec!["web".into(), "ios".into()],
    }
}

logic_test! {
fn a_dynamic_label_maps_header_values_onto_its_set() {
    let l = client();
    assert_eq!(l.radix(), 4);
    let label = |v: Option<&[u8]>| l.label(l.index(v));
    assert_eq!(label(Some(b"web")), "web");
    assert_eq!(label(Some(b"ios")), "ios");
    // Present but not listed, in any other spelling or bytes: `other`.
    for v in [&b"WEB"[..], b"web ", b"", b"android", b"\xff\xfe", b"web;.;x=.=y"] {
        assert_eq!(label(Some(v)), OTHER_VALUE, "{v:?}");
    }
    assert_eq!(label(None), ABSENT_VALUE);
    assert_eq!(l.label(99), ABSENT_VALUE);
}
}

logic_test! {
fn combinations_number_every_label_set_once() {
    let set = LabelSet {
        labels: vec![
            client(),
            Dynamic {
                name: "version".into(),
                side: Side::Response,
                header: 0,
                values: vec!["1.4.2".into()],
            },
        ],
    };
    assert_eq!(set.combinations(), 4 * 3);
    assert_eq!(LabelSet::default().combinations(), 1);
    let mut seen = std::collections::BTreeSet::new();
    let values: [Option<&[u8]>; 4] = [Some(b"web"), Some(b"ios"), Some(b"curl"), None];
    let versions: [Option<&[u8]>; 3] = [Some(b"1.4.2"), Some(b"2.0"), None];
    for client in values {
        for version in versions {
            // The client header at index 1 of the request's, the version at 0 of the response's.
            let c = set.combination(&[Some(b"unrelated"), client], &[version]);
            assert!(c < set.combinations());
            assert!(seen.insert(c), "{c} twice");
            let pairs = set.pairs(c);
            let want_client = client.map_or("none", |v| match v {
                b"web" => "web",
                b"ios" => "ios",
                _ => "other",
            });
            let want_version = version.map_or("none", |v| if v == b"1.4.2" { "1.4.2" } else { "other" });
            assert_eq!(pairs, [("client", want_client), ("version", want_version)]);
        }
    }
    assert_eq!(seen.len(), 12);
    // Headers missing from the slices (e.g. no response at all) read `none`.
    assert_eq!(set.pairs(set.combination(&[], &[])), [("client", "none"), ("version", "none")]);
}
}
