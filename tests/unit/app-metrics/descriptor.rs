use super::*;

/// protoc's own output for tests/grpc/shop.proto (see its header).
const SHOP: &[u8] = include_bytes!("../../grpc/shop.pb");

#[test]
fn every_method_of_every_service_with_its_type() {
    let section = grpc_section(SHOP).unwrap();
    assert_eq!(
        section,
        json!({"grpc": {"methods": [
            "/shop.v1.Cart/Add",
            "/shop.v1.Cart/Get",
            {"path": "/shop.v1.Cart/Watch", "type": "server_stream"},
            {"path": "/shop.v1.Cart/Upload", "type": "client_stream"},
            {"path": "/shop.v1.Cart/Chat", "type": "bidi_stream"},
            "/shop.v1.Health/Check",
        ], "handling_time": true}})
    );
    // What it writes is a configuration the filter accepts as it is.
    let config = app_metrics::config::parse(section.to_string().as_bytes()).unwrap();
    assert_eq!(config.grpc.unwrap().methods.len(), 6);
}

#[test]
fn bytes_that_are_no_descriptor_set_are_refused() {
    let err = grpc_section(b"\x0a\x05hello").unwrap_err();
    assert!(err.starts_with("is not a protobuf descriptor set"), "{err}");
    assert_eq!(
        grpc_section(b"").unwrap_err(),
        "declares no service method (expected a descriptor set of .proto files with services)"
    );
}
