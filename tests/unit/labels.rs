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
