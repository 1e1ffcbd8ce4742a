//! Unit tests of src/extract.rs (compiled into the library's test build).

use super::*;
use crate::test_support::*;

fn ok(body: &[u8]) -> Answer<'_> {
    Answer {
        status: Some(200),
        from_upstream: true,
        header: None,
        body,
        body_size: body.len(),
    }
}
fn ptr(p: &str) -> ValueSource {
    ValueSource::JsonPointer(p.to_string())
}

logic_test!(
    fn json_pointer() {
        assert_eq!(
            sample_value(&ptr("/count"), &ok(br#"{"count": 12}"#), 100),
            Ok(12)
        );
        assert_eq!(
            sample_value(&ptr("/a/0/n"), &ok(br#"{"a": [{"n": 3}]}"#), 100),
            Ok(3)
        );
        assert_eq!(
            sample_value(&ptr("/count"), &ok(br#"{"count": 12.0}"#), 100),
            Ok(12)
        );
        assert_eq!(
            sample_value(&ptr("/count"), &ok(br#"{"other": 1}"#), 100),
            Err(SampleError::Missing)
        );
        assert_eq!(
            sample_value(&ptr("/count"), &ok(br#"{"count": -1}"#), 100),
            Err(SampleError::Invalid)
        );
        assert_eq!(
            sample_value(&ptr("/count"), &ok(br#"{"count": 1.5}"#), 100),
            Err(SampleError::Invalid)
        );
        assert_eq!(
            sample_value(&ptr("/count"), &ok(br#"{"count": "12"}"#), 100),
            Err(SampleError::Invalid)
        );
        assert_eq!(
            sample_value(&ptr("/count"), &ok(b"<html>"), 100),
            Err(SampleError::Parse)
        );
        assert_eq!(sample_value(&ptr(""), &ok(b"7"), 100), Ok(7));
    }
);

logic_test!(
    fn array_length() {
        let len = |p: &str| ValueSource::JsonArrayLength(p.to_string());
        assert_eq!(sample_value(&len(""), &ok(b"[1,2,3]"), 100), Ok(3));
        assert_eq!(
            sample_value(&len("/users"), &ok(br#"{"users": []}"#), 100),
            Ok(0)
        );
        assert_eq!(
            sample_value(&len("/users"), &ok(br#"{"users": 4}"#), 100),
            Err(SampleError::Invalid)
        );
        assert_eq!(
            sample_value(&len("/nope"), &ok(b"{}"), 100),
            Err(SampleError::Missing)
        );
    }
);

logic_test!(
    fn header_and_text() {
        let header = ValueSource::Header("x-total-count".to_string());
        let mut answer = ok(b"[]");
        answer.header = Some(b" 42 ");
        assert_eq!(sample_value(&header, &answer, 100), Ok(42));
        answer.header = Some(b"many");
        assert_eq!(sample_value(&header, &answer, 100), Err(SampleError::Parse));
        answer.header = None;
        assert_eq!(
            sample_value(&header, &answer, 100),
            Err(SampleError::Missing)
        );
        assert_eq!(sample_value(&ValueSource::Text, &ok(b"17\n"), 100), Ok(17));
        assert_eq!(
            sample_value(&ValueSource::Text, &ok(b"-3"), 100),
            Err(SampleError::Invalid)
        );
        assert_eq!(
            sample_value(&ValueSource::Text, &ok(b""), 100),
            Err(SampleError::Parse)
        );
        assert_eq!(
            sample_value(&ValueSource::Text, &ok(&[0xff, 0xfe]), 100),
            Err(SampleError::Parse)
        );
        assert_eq!(
            sample_value(&ValueSource::Text, &ok(b"NaN"), 100),
            Err(SampleError::Parse)
        );
    }
);

logic_test!(
    fn status_and_size_faults() {
        let mut answer = ok(br#"{"count": 1}"#);
        answer.status = Some(500);
        assert_eq!(
            sample_value(&ptr("/count"), &answer, 100),
            Err(SampleError::Status)
        );
        answer.status = Some(503);
        assert_eq!(
            sample_value(&ptr("/count"), &answer, 100),
            Err(SampleError::Status)
        );
        answer.from_upstream = false;
        assert_eq!(
            sample_value(&ptr("/count"), &answer, 100),
            Err(SampleError::Unreachable)
        );
        answer.status = Some(504);
        assert_eq!(
            sample_value(&ptr("/count"), &answer, 100),
            Err(SampleError::Timeout)
        );
        let mut big = ok(br#"{"count": 1}"#);
        big.body_size = 10_000_000;
        assert_eq!(
            sample_value(&ptr("/count"), &big, 100),
            Err(SampleError::TooLarge)
        );
    }
);
