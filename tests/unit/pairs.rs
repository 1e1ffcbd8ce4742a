//! Unit tests of src/pairs.rs (compiled into the library's test build).

use super::*;
use crate::test_support::*;

logic_test!(
    fn round_trip_and_lookup() {
        let map = serialize(&[
            (":method", "POST"),
            (":path", "/login"),
            ("x-empty", ""),
            ("a", "1"),
            ("a", "2"),
        ]);
        assert_eq!(get(&map, ":method"), Some(&b"POST"[..]));
        assert_eq!(get(&map, ":path"), Some(&b"/login"[..]));
        assert_eq!(get(&map, "x-empty"), Some(&b""[..]));
        // The first of repeated headers, as proxy_get_header_map_value answers.
        assert_eq!(get(&map, "a"), Some(&b"1"[..]));
        assert_eq!(get(&map, ":status"), None);
        assert_eq!(iter(&map).unwrap().count(), 5);
    }
);

logic_test!(
    fn empty_map() {
        let map = serialize(&[]);
        assert_eq!(map, [0, 0, 0, 0]);
        assert_eq!(get(&map, ":method"), None);
        assert_eq!(iter(&[]).map(|i| i.count()), None);
    }
);

logic_test!(
    fn malformed_maps_never_panic() {
        let good = serialize(&[(":status", "200"), ("content-length", "12")]);
        // Every truncation: the header is refused or the iteration ends early.
        for cut in 0..good.len() {
            let found: Vec<_> = iter(&good[..cut]).map(|i| i.collect()).unwrap_or_default();
            assert!(found.len() < 2, "cut at {cut}: {found:?}");
        }
        // A count far beyond the data, lengths beyond the data, missing NULs.
        assert!(iter(&u32::MAX.to_le_bytes()).is_none());
        let mut bad = good.clone();
        bad[4] = 200;
        assert_eq!(get(&bad, ":status"), None);
        let mut no_nul = good.clone();
        let at = 4 + 16 + ":status".len(); // the NUL after the first name
        no_nul[at] = b'x';
        assert_eq!(get(&no_nul, ":status"), None);
    }
);

logic_test!(
    fn decimals() {
        assert_eq!(decimal(b"200"), Some(200));
        assert_eq!(decimal(b"0"), Some(0));
        assert_eq!(decimal(b"18446744073709551615"), None); // 20 digits: refused, never overflows
        assert_eq!(
            decimal(b"9999999999999999999"),
            Some(9_999_999_999_999_999_999)
        );
        for bad in [&b""[..], b"-1", b"1.5", b" 12", b"12 ", b"0x10", b"\xff"] {
            assert_eq!(decimal(bad), None, "{bad:?}");
        }
    }
);
