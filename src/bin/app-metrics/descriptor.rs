//! `app-metrics grpc-methods DESCRIPTOR_SET`: the `grpc` section's `methods`, written from a
//! protobuf descriptor set (`protoc --descriptor_set_out`), each method with its streaming type,
//! so nobody types them by hand.

use prost::Message;
use prost_types::FileDescriptorSet;
use serde_json::{json, Value};

/// The `grpc` section (`{"grpc": {"methods": [...]}}`) for every method of every service in the
/// descriptor set, in file and declaration order; an error names what is wrong with the bytes.
pub fn grpc_section(descriptor_set: &[u8]) -> Result<Value, String> {
    let set = FileDescriptorSet::decode(descriptor_set).map_err(|e| {
        format!("is not a protobuf descriptor set ({e}; expected the output of protoc --descriptor_set_out)")
    })?;
    let mut methods = Vec::new();
    for file in &set.file {
        let package = file.package();
        for service in &file.service {
            let service_name = match package {
                "" => service.name().to_string(),
                package => format!("{package}.{}", service.name()),
            };
            for method in &service.method {
                let path = format!("/{service_name}/{}", method.name());
                methods.push(
                    match (method.client_streaming(), method.server_streaming()) {
                        (false, false) => json!(path),
                        (true, false) => json!({"path": path, "type": "client_stream"}),
                        (false, true) => json!({"path": path, "type": "server_stream"}),
                        (true, true) => json!({"path": path, "type": "bidi_stream"}),
                    },
                );
            }
        }
    }
    if methods.is_empty() {
        return Err(
            "declares no service method (expected a descriptor set of .proto files with services)"
                .to_string(),
        );
    }
    Ok(json!({"grpc": {"methods": methods, "handling_time": true}}))
}

#[cfg(test)]
#[path = "../../../tests/unit/app-metrics/descriptor.rs"]
mod tests;
