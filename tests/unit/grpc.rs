use super::*;
use crate::test_support::*;

logic_test! {
fn grpc_content_types_are_recognised() {
    for yes in [
        "application/grpc",
        "application/grpc+proto",
        "application/grpc+json",
        "Application/GRPC; charset=utf-8",
        "application/grpc-web",
        "application/grpc-web+proto",
        "application/grpc-web-text",
    ] {
        assert!(is_grpc(yes.as_bytes()), "{yes}");
    }
    for no in ["application/json", "application/grpcx", "application/grp", "", "text/grpc"] {
        assert!(!is_grpc(no.as_bytes()), "{no}");
    }
}
}

logic_test! {
fn paths_split_into_service_and_method() {
    assert_eq!(split_path("/shop.v1.Cart/Add"), Some(("shop.v1.Cart", "Add")));
    for bad in ["shop.Cart/Add", "/shop.Cart", "/shop.Cart/", "//Add", "/a/b/c", "/a b/c", "/a/b?x"] {
        assert_eq!(split_path(bad), None, "{bad}");
    }
}
}

logic_test! {
fn listed_methods_are_found_and_the_rest_is_other() {
    let methods = Methods::new(&[
        ("/shop.v1.Cart/Get".to_string(), RpcType::Unary),
        ("/shop.v1.Cart/Add".to_string(), RpcType::Unary),
        ("/shop.v1.Cart/Watch".to_string(), RpcType::ServerStream),
    ]);
    assert_eq!(methods.len(), 4);
    let add = methods.find(b"/shop.v1.Cart/Add");
    assert_eq!(methods.labels(add), ("unary", "shop.v1.Cart", "Add"));
    let watch = methods.find(b"/shop.v1.Cart/Watch?x=1");
    assert_eq!(methods.labels(watch), ("server_stream", "shop.v1.Cart", "Watch"));
    for other in [&b"/shop.v1.Cart/Nope"[..], b"/", b"", b"/shop.v1.Cart/Add/x", &[0xff, 0xfe]] {
        assert_eq!(methods.labels(methods.find(other)), ("unknown", "other", "other"));
    }
    let none = Methods::new(&[]);
    assert_eq!(none.labels(none.find(b"/a.B/C")), ("unknown", "other", "other"));
}
}

logic_test! {
fn codes_come_from_the_status_or_the_http_answer() {
    let status = |s: &'static str| Ending { grpc_status: Some(s.as_bytes()), http_status: Some(200), ..Ending::default() };
    assert_eq!(code(&status("0")), Code::Ok);
    assert_eq!(code(&status("5")), Code::NotFound);
    assert_eq!(code(&status("16")), Code::Unauthenticated);
    assert_eq!(code(&status("17")), Code::Unknown);
    assert_eq!(code(&status("x")), Code::Unknown);
    assert_eq!(Code::DeadlineExceeded.label(), "DeadlineExceeded");
    assert_eq!(Code::COUNT, 17);
    let http = |s: u16| code(&Ending { http_status: Some(s), ..Ending::default() });
    assert_eq!(http(503), Code::Unavailable);
    assert_eq!(http(504), Code::Unavailable);
    assert_eq!(http(404), Code::Unimplemented);
    assert_eq!(http(401), Code::Unauthenticated);
    assert_eq!(http(403), Code::PermissionDenied);
    assert_eq!(http(400), Code::Internal);
    assert_eq!(http(500), Code::Unknown);
    assert_eq!(http(200), Code::Internal);
    let web = Ending { http_status: Some(200), web: true, ..Ending::default() };
    assert_eq!(code(&web), Code::Unknown);
    let gone = |deadline: Option<u64>, took: u64| {
        code(&Ending { deadline_ms: deadline, duration_ms: Some(took), ..Ending::default() })
    };
    assert_eq!(gone(Some(100), 100), Code::DeadlineExceeded);
    // Envoy's clock starts after the client's: within 5 % (10 ms at least) is the deadline.
    assert_eq!(gone(Some(100), 91), Code::DeadlineExceeded);
    assert_eq!(gone(Some(100), 89), Code::Canceled);
    assert_eq!(gone(Some(2000), 1901), Code::DeadlineExceeded);
    assert_eq!(gone(Some(2000), 1899), Code::Canceled);
    assert_eq!(gone(Some(100), 40), Code::Canceled);
    assert_eq!(gone(None, 40), Code::Canceled);
}
}

logic_test! {
fn grpc_timeouts_read_in_milliseconds() {
    assert_eq!(timeout_ms(b"100m"), Some(100));
    assert_eq!(timeout_ms(b"2S"), Some(2000));
    assert_eq!(timeout_ms(b"1M"), Some(60_000));
    assert_eq!(timeout_ms(b"1H"), Some(3_600_000));
    assert_eq!(timeout_ms(b"1500u"), Some(1));
    assert_eq!(timeout_ms(b"99999999n"), Some(99));
    for bad in [&b""[..], b"m", b"123456789m", b"10x", b"-1S", b"1.5S"] {
        assert_eq!(timeout_ms(bad), None);
    }
}
}
