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
    fn found_takes_every_wanted_header_in_one_pass() {
        let map = serialize(&[
            (":method", "GET"),
            ("a", "1"),
            ("content-length", "12"),
            ("a", "2"),
        ]);
        let names: Vec<String> = [":method", ":path", "a", "content-length"]
            .map(String::from)
            .into();
        let found = Found::lookup(&map, &names);
        assert_eq!(found.get(0), Some(&b"GET"[..]));
        assert_eq!(found.get(1), None);
        // The first of repeated headers, as `get` answers.
        assert_eq!(found.get(2), Some(&b"1"[..]));
        assert_eq!(found.get(3), Some(&b"12"[..]));
        assert_eq!(found.get(4), None);
        assert_eq!(found.from(2), [Some(&b"1"[..]), Some(&b"12"[..])]);
        assert!(found.from(5).is_empty());
        // Past INLINE names the slots move to the heap, with the same answers.
        let many: Vec<String> = (0..INLINE + 3).map(|i| format!("h{i}")).collect();
        let pairs: Vec<(String, String)> =
            many.iter().map(|n| (n.clone(), n.to_uppercase())).collect();
        let borrowed: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let map = serialize(&borrowed);
        let found = Found::lookup(&map, &many);
        assert!(matches!(found, Found::Heap(_)));
        for (i, name) in many.iter().enumerate() {
            assert_eq!(found.get(i), Some(name.to_uppercase().as_bytes()));
        }
        // A damaged map: what comes before the damage is found, nothing after it.
        let good = serialize(&[(":status", "200"), ("content-length", "12")]);
        let names: Vec<String> = [":status", "content-length"].map(String::from).into();
        for cut in 0..good.len() {
            let found = Found::lookup(&good[..cut], &names);
            assert_eq!(found.get(1), None, "cut at {cut}");
        }
    }
);

logic_test!(
    fn many_names_are_found_through_their_hash_table() {
        // More names than INLINE, some twice, some absent, in no order.
        let names: Vec<String> = [
            "x-c", "a", ":path", "x-b", "x-a", "a", "zz", "x-d", "b", "x-e",
        ]
        .map(String::from)
        .into();
        let table = table(&names);
        assert_eq!(table.len(), 32);
        let mut held: Vec<u32> = table.iter().copied().filter(|&s| s != 0).collect();
        held.sort_unstable();
        assert_eq!(held, (1..=10).collect::<Vec<u32>>());
        let map = serialize(&[
            (":path", "/"),
            ("x-e", "5"),
            ("a", "1"),
            ("x-b", "2"),
            ("a", "again"),
            ("x-z", "no"),
        ]);
        let found = Found::lookup_in(&map, &names, &table);
        let linear = Found::lookup(&map, &names);
        for (i, name) in names.iter().enumerate() {
            assert_eq!(found.get(i), linear.get(i), "{name}");
        }
        assert_eq!(found.get(1), Some(&b"1"[..]));
        assert_eq!(found.get(5), Some(&b"1"[..]));
        assert_eq!(found.get(6), None);
        // A table too small for this list is not used.
        let found = Found::lookup_in(&map, &names, &table[..8]);
        assert_eq!(found.get(9), Some(&b"5"[..]));
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
