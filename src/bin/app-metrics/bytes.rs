//! The bytes the filter receives in `on_configure`, from how a file writes them: an Envoy
//! `google.protobuf.Any` (a `StringValue`'s value, a `BytesValue`'s decoded one), or an Istio
//! `pluginConfig` serialized as Istio serializes a `Struct`.

use crate::yaml::{get, get_str, type_name};
use serde_yaml::{Mapping, Value};

pub const STRING_VALUE: &str = "google.protobuf.StringValue";
const BYTES_VALUE: &str = "google.protobuf.BytesValue";

/// What Envoy hands the filter for its `configuration` (an Any): a StringValue's or a
/// BytesValue's value; for any other type its protobuf encoding, which is no JSON.
pub fn any_bytes(any: &Mapping) -> Result<Vec<u8>, String> {
    let value = get(any, "value");
    match get_str(any, "@type").map(type_name) {
        Some(STRING_VALUE) => match value {
            None => Ok(Vec::new()),
            Some(Value::String(s)) => Ok(s.as_bytes().to_vec()),
            Some(_) => Err(format!("value: is not a string ({STRING_VALUE})")),
        },
        Some(BYTES_VALUE) => match value {
            None => Ok(Vec::new()),
            Some(Value::String(s)) => base64_decode(s)
                .map_err(|e| format!("value: is not base64 ({BYTES_VALUE} in YAML/JSON): {e}")),
            Some(_) => Err(format!("value: is not a base64 string ({BYTES_VALUE})")),
        },
        Some(other) => Err(format!(
            "@type {other}: Envoy would hand the filter this message's protobuf encoding, not JSON \
             (expected {STRING_VALUE} or {BYTES_VALUE})"
        )),
        None => Err(format!("has no @type (expected {STRING_VALUE})")),
    }
}

/// Protobuf's JSON mapping takes standard or URL-safe base64, padded or not.
fn base64_decode(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    use base64::engine::{general_purpose, DecodePaddingMode, Engine, GeneralPurpose};
    let config = general_purpose::GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent);
    let alphabet = if text.contains(['-', '_']) {
        &base64::alphabet::URL_SAFE
    } else {
        &base64::alphabet::STANDARD
    };
    GeneralPurpose::new(alphabet, config).decode(text)
}

/// `value` as Istio serializes a Struct: every number a double, an integral one printed as an
/// integer (protojson), object keys sorted (serde_json's map, as protojson orders map keys).
pub fn istio_json(value: &Value) -> Result<serde_json::Value, String> {
    use serde_json::Value as J;
    Ok(match value {
        Value::Null => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::Number(n) => {
            let d = n
                .as_f64()
                .filter(|d| d.is_finite())
                .ok_or_else(|| format!("{n}: not a finite number (a Struct holds doubles)"))?;
            double_json(d)
        }
        Value::String(s) => J::String(s.clone()),
        Value::Sequence(items) => J::Array(items.iter().map(istio_json).collect::<Result<_, _>>()?),
        Value::Mapping(map) => {
            let mut out = serde_json::Map::new();
            for (key, v) in map {
                let key = key.as_str().ok_or_else(|| {
                    "holds a key that is not a string (a Struct's keys are strings)".to_string()
                })?;
                out.insert(key.to_string(), istio_json(v)?);
            }
            J::Object(out)
        }
        Value::Tagged(tagged) => istio_json(&tagged.value)?,
    })
}

/// A double as protojson prints it: an integral one without a fraction (here up to 64 bits;
/// beyond that, far outside every field's range, serde_json's exponent form).
fn double_json(d: f64) -> serde_json::Value {
    // Exact: an integral double within these bounds converts without loss.
    if d.fract() == 0.0 && d >= 0.0 && d < u64::MAX as f64 {
        return serde_json::Value::from(d as u64);
    }
    if d.fract() == 0.0 && d < 0.0 && d >= i64::MIN as f64 {
        return serde_json::Value::from(d as i64);
    }
    serde_json::Number::from_f64(d).map_or(serde_json::Value::Null, serde_json::Value::Number)
}
