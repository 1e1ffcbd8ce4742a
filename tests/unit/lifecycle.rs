use super::*;
use crate::test_support::*;

fn plugins() -> Plugins<&'static str> {
    Plugins::default()
}

fn served(p: &mut Plugins<&'static str>, context: u32, name: &[u8]) -> Option<&'static str> {
    let name = name.to_vec();
    p.root_of_request(context, || Some(name)).map(|l| l.root)
}

logic_test! {
fn a_request_is_counted_by_the_root_it_started_under() {
    let mut p = plugins();
    p.configured(1, b"app", b"A", true, 0, "A");
    p.request_started(10, 1);
    p.configured(2, b"app", b"B", true, 0, "B");
    p.request_started(11, 2);
    // A revert while A's listener drains: Envoy reuses root 1 without configuring it again.
    p.request_started(12, 1);
    assert_eq!(served(&mut p, 12, b"app"), Some("A"));
    assert_eq!(served(&mut p, 11, b"app"), Some("B"));
    assert_eq!(served(&mut p, 10, b"app"), Some("A"));
}
}

logic_test! {
fn an_unrecorded_request_falls_back_to_the_newest_root_of_its_name() {
    let mut p = plugins();
    p.configured(1, b"a", b"A", true, 0, "A1");
    p.configured(2, b"b", b"B", true, 0, "B");
    p.configured(3, b"a", b"A2", true, 0, "A2");
    assert_eq!(served(&mut p, 99, b"a"), Some("A2"));
    assert_eq!(served(&mut p, 99, b"b"), Some("B"));
    assert_eq!(served(&mut p, 99, b"unknown"), Some("A2"), "the newest of all");
    // A record is used once: the slot is free again after the request.
    p.request_started(5, 1);
    assert_eq!(served(&mut p, 5, b"a"), Some("A1"));
    assert_eq!(served(&mut p, 5, b"a"), Some("A2"));
    // Another context in the same slot is not this request's.
    p.request_started(5 + IN_FLIGHT as u32, 2);
    assert_eq!(served(&mut p, 5, b"a"), Some("A2"));
}
}

logic_test! {
fn one_root_serves_every_request_without_asking_its_name() {
    let mut p = plugins();
    assert!(p.root_of_request(1, || None).is_none());
    p.configured(1, b"app", b"A", true, 0, "A");
    let asked = std::cell::Cell::new(false);
    let served = p.root_of_request(7, || {
        asked.set(true);
        None
    });
    assert_eq!(served.map(|l| l.root), Some("A"));
    assert!(!asked.get());
}
}

logic_test! {
fn last_good_is_per_name_and_survives_refused_ones() {
    let mut p = plugins();
    assert_eq!(p.last_good(b"app"), None);
    p.configured(1, b"app", b"bad", false, 0, "x");
    assert_eq!(p.last_good(b"app"), None);
    p.configured(2, b"app", b"good", true, 0, "y");
    p.configured(3, b"app", b"worse", false, 0, "z");
    p.configured(4, b"other", b"o", true, 0, "o");
    assert_eq!(p.last_good(b"app"), Some(&b"good"[..]));
    assert_eq!(p.last_good(b"other"), Some(&b"o"[..]));
    assert_eq!(p.in_force_valid(b"app"), Some(false));
    assert_eq!(p.in_force_valid(b"nothing"), None);
}
}

logic_test! {
fn silent_roots_end_and_the_previous_configuration_is_in_force_again() {
    let mut p = plugins();
    p.configured(1, b"app", b"good", true, 0, "good");
    p.configured(2, b"app", b"bad", false, 1_000, "bad");
    assert_eq!(p.in_force_valid(b"app"), Some(false));
    // Root 1 keeps ticking; root 2 was ended by Envoy and never ticks again.
    let mut ended = Vec::new();
    for s in 1..=62u64 {
        ended.extend(p.ticked(1, s * 1_000));
    }
    assert_eq!(p.len(), 1, "root 2 dropped after {STALE_MS} ms of silence");
    assert_eq!(ended, vec![b"app".to_vec()]);
    assert_eq!(p.in_force_valid(b"app"), Some(true));
    assert_eq!(served(&mut p, 3, b"app"), Some("good"));
    // A root that ticks is never dropped, however long it lives.
    assert!(p.ticked(1, 10_000_000).is_empty());
    assert_eq!(p.len(), 1);
}
}

logic_test! {
fn a_root_configured_again_replaces_its_own_entry() {
    let mut p = plugins();
    p.configured(1, b"app", b"A", true, 0, "A");
    p.configured(1, b"app", b"B", true, 0, "B");
    assert_eq!(p.len(), 1);
    assert_eq!(served(&mut p, 3, b"app"), Some("B"));
}
}
