//! Unit tests of src/proxy.rs (compiled into the library's test build).

use super::*;
use crate::test_support::*;

fn reason(details: &str) -> Option<&'static str> {
    classify(Some(details.as_bytes())).map(ProxyReason::label)
}

// The details Envoy 1.40 wrote in these situations (its access log's %RESPONSE_CODE_DETAILS%).
logic_test!(
    fn envoys_own_answers_by_reason() {
        let seen = [
            ("route_not_found", "no_route"),
            ("cluster_not_found", "no_route"),
            ("no_healthy_upstream", "no_healthy_upstream"),
            (
                "upstream_reset_before_response_started{remote_connection_failure|delayed_connect_error:_Connection_refused}",
                "connection_failure",
            ),
            (
                "upstream_reset_before_response_started{connection_failure,delayed_connect_error:_111}",
                "connection_failure",
            ),
            ("upstream_reset_before_response_started{local_connection_failure}", "connection_failure"),
            ("upstream_reset_before_response_started{connection_timeout}", "connection_failure"),
            ("response_timeout", "timeout"),
            ("upstream_per_try_timeout", "timeout"),
            ("stream_idle_timeout", "timeout"),
            ("upstream_reset_before_response_started{connection_termination}", "reset"),
            ("upstream_reset_before_response_started{remote_reset}", "reset"),
            ("upstream_reset_before_response_started{remote_refused_stream_reset}", "reset"),
            ("upstream_reset_before_response_started{local_reset}", "reset"),
            ("upstream_reset_before_response_started{overflow}", "overflow"),
            ("maintenance_mode", "overflow"),
            ("overload", "overflow"),
            ("local_rate_limited", "rate_limited"),
            ("request_rate_limited", "rate_limited"),
            ("direct_response", "other"),
            ("rbac_access_denied_matched_policy[none]", "other"),
            ("fault_filter_abort", "other"),
        ];
        for (details, want) in seen {
            assert_eq!(reason(details), Some(want), "{details}");
        }
    }
);

logic_test!(
    fn answers_from_the_app_are_not_envoys() {
        // A router with suppress_envoy_headers sends no x-envoy-upstream-service-time: the
        // details still say the app answered, or began to before the stream broke.
        assert_eq!(reason("via_upstream"), None);
        assert_eq!(
            reason("upstream_reset_after_response_started{remote_reset}"),
            None
        );
    }
);

logic_test!(
    fn odd_details_are_other_never_a_panic() {
        assert_eq!(classify(None), Some(ProxyReason::Other));
        // An early reset is a reset whatever follows; anything unknown is `other`.
        for (odd, want) in [
            ("", "other"),
            ("via_upstream ", "other"),
            ("route_not_found{x}", "other"),
            ("upstream_reset_before_response_started", "reset"),
            ("upstream_reset_before_response_started{", "reset"),
            ("upstream_reset_before_response_started{}", "reset"),
            (
                "upstream_reset_before_response_started{overflowing}",
                "reset",
            ),
        ] {
            assert_eq!(reason(odd), Some(want), "{odd:?}");
        }
        assert_eq!(
            classify(Some(&b"upstream_reset_before_response_started{\xff}"[..])),
            Some(ProxyReason::Reset)
        );
    }
);

logic_test!(
    fn labels_are_distinct_and_indexed() {
        for (i, r) in ProxyReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
            assert!(
                ProxyReason::ALL
                    .iter()
                    .filter(|o| o.label() == r.label())
                    .count()
                    == 1
            );
        }
        let labels: Vec<&str> = ProxyReason::ALL.iter().map(|r| r.label()).collect();
        assert_eq!(
            labels,
            [
                "no_route",
                "no_healthy_upstream",
                "connection_failure",
                "timeout",
                "reset",
                "overflow",
                "rate_limited",
                "other"
            ]
        );
    }
);
