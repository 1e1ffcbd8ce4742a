use super::*;
use crate::test_support::*;

fn plugins() -> Plugins<String> {
    Plugins::default()
}

/// What a dormant root is rebuilt as: the configuration it served, marked.
fn revive(in_force: Option<&[u8]>) -> String {
    format!(
        "revived {}",
        String::from_utf8_lossy(in_force.unwrap_or(b"nothing"))
    )
}

fn served(p: &mut Plugins<String>, context: u32, name: &[u8]) -> Option<String> {
    let name = name.to_vec();
    p.root_of_request(context, || Some(name), revive)
        .map(|l| l.root.clone())
}

fn configure(p: &mut Plugins<String>, id: u32, name: &[u8], raw: &str, valid: bool) -> Vec<u32> {
    p.configured(id, name, raw.as_bytes(), valid, raw.to_string())
}

/// Root `id` ticks `n` times while root `others` tick too (one round each).
fn rounds(p: &mut Plugins<String>, ids: &[u32], n: usize) -> Vec<Vec<u8>> {
    let mut ended = Vec::new();
    for _ in 0..n {
        for &id in ids {
            ended.extend(p.ticked(id).ended);
        }
    }
    ended
}

logic_test! {
fn a_request_is_counted_by_the_root_it_started_under() {
    let mut p = plugins();
    configure(&mut p, 1, b"app", "A", true);
    p.request_started(10, 1);
    configure(&mut p, 2, b"app", "B", true);
    p.request_started(11, 2);
    // A revert while A's listener drains: Envoy reuses root 1 without configuring it again.
    p.request_started(12, 1);
    assert_eq!(served(&mut p, 12, b"app").as_deref(), Some("A"));
    assert_eq!(served(&mut p, 11, b"app").as_deref(), Some("B"));
    assert_eq!(served(&mut p, 10, b"app").as_deref(), Some("A"));
}
}

logic_test! {
fn ending_a_request_never_erases_a_newer_requests_record() {
    let mut p = plugins();
    configure(&mut p, 1, b"a", "A", true);
    configure(&mut p, 2, b"b", "B1", true);
    configure(&mut p, 3, b"b", "B2", true);
    // Request 5 started long ago; a newer request took its slot, under the older root of "b".
    let newer = 5 + IN_FLIGHT as u32;
    p.request_started(5, 1);
    p.request_started(newer, 2);
    // Request 5 ends first: without its record, the newest root of its name serves it...
    assert_eq!(served(&mut p, 5, b"a").as_deref(), Some("A"));
    // ...and the newer request still finds its own root, not the newest of its name.
    assert_eq!(served(&mut p, newer, b"b").as_deref(), Some("B1"));
}
}

logic_test! {
fn an_unrecorded_request_falls_back_to_the_newest_root_of_its_name_only() {
    let mut p = plugins();
    configure(&mut p, 1, b"a", "A1", true);
    configure(&mut p, 2, b"b", "B", true);
    configure(&mut p, 3, b"a", "A2", true);
    assert_eq!(served(&mut p, 99, b"a").as_deref(), Some("A2"));
    assert_eq!(served(&mut p, 99, b"b").as_deref(), Some("B"));
    assert_eq!(served(&mut p, 99, b"unknown"), None, "never another plugin's");
    // A record is used once: the slot is free again after the request (the record wins over
    // the name, which only an unrecorded request is looked up by).
    p.request_started(5, 2);
    assert_eq!(served(&mut p, 5, b"a").as_deref(), Some("B"));
    assert_eq!(served(&mut p, 5, b"a").as_deref(), Some("A2"));
    // Another context in the same slot is not this request's.
    p.request_started(5 + IN_FLIGHT as u32, 2);
    assert_eq!(served(&mut p, 5, b"a").as_deref(), Some("A2"));
}
}

logic_test! {
fn one_root_serves_every_request_without_asking_its_name() {
    let mut p = plugins();
    assert!(p.root_of_request(1, || None, revive).is_none());
    configure(&mut p, 1, b"app", "A", true);
    let asked = std::cell::Cell::new(false);
    let served = p.root_of_request(
        7,
        || {
            asked.set(true);
            None
        },
        revive,
    );
    assert_eq!(served.map(|l| l.root.clone()).as_deref(), Some("A"));
    assert!(!asked.get());
}
}

logic_test! {
fn last_good_is_per_name_and_survives_refused_ones() {
    let mut p = plugins();
    assert_eq!(p.last_good(b"app"), None);
    configure(&mut p, 1, b"app", "bad", false);
    assert_eq!(p.last_good(b"app"), None);
    configure(&mut p, 2, b"app", "good", true);
    configure(&mut p, 3, b"app", "worse", false);
    configure(&mut p, 4, b"other", "o", true);
    assert_eq!(p.last_good(b"app"), Some(&b"good"[..]));
    assert_eq!(p.last_good(b"other"), Some(&b"o"[..]));
    assert_eq!(p.in_force(b"app", b"worse", false), Some(&b"good"[..]));
    assert_eq!(p.in_force_valid(b"app"), Some(false));
    assert_eq!(p.in_force_valid(b"nothing"), None);
}
}

logic_test! {
fn silent_roots_end_and_the_previous_configuration_is_in_force_again() {
    let mut p = plugins();
    configure(&mut p, 1, b"app", "good", true);
    configure(&mut p, 2, b"app", "bad", false);
    assert_eq!(p.in_force_valid(b"app"), Some(false));
    // Root 1 keeps ticking; root 2 was ended by Envoy and never ticks again.
    let ended = rounds(&mut p, &[1], STALE_ROUNDS as usize + 2);
    assert_eq!(p.len(), 1, "root 2 dropped after {STALE_ROUNDS} silent rounds");
    assert_eq!(p.dormant(), 1);
    assert_eq!(ended, vec![b"app".to_vec()]);
    assert_eq!(p.in_force_valid(b"app"), Some(true));
    assert_eq!(served(&mut p, 3, b"app").as_deref(), Some("good"));
    // A root that ticks is never dropped, however long it lives.
    assert!(rounds(&mut p, &[1], 1000).is_empty());
    assert_eq!(p.len(), 1);
}
}

logic_test! {
fn a_stall_drops_no_root_however_long() {
    // Two plugins in one VM; the process stops (no tick at all), then both tick again.
    let mut p = plugins();
    configure(&mut p, 1, b"a", "A", true);
    configure(&mut p, 2, b"b", "B", true);
    rounds(&mut p, &[1, 2], 10);
    p.request_started(7, 1);
    p.request_started(8, 2);
    // After the stall the timers fire once each, in any order, without catch-up.
    let after = rounds(&mut p, &[2, 1], 3);
    assert!(after.is_empty());
    assert_eq!(p.len(), 2);
    assert_eq!(served(&mut p, 7, b"a").as_deref(), Some("A"));
    assert_eq!(served(&mut p, 8, b"b").as_deref(), Some("B"));
}
}

logic_test! {
fn a_dropped_root_that_is_alive_comes_back_under_its_own_configuration() {
    let mut p = plugins();
    configure(&mut p, 1, b"a", "A", true);
    configure(&mut p, 2, b"b", "B", true);
    p.request_started(7, 2);
    // Root 2's ticks are lost for longer than the limit (however that could happen).
    rounds(&mut p, &[1], STALE_ROUNDS as usize + 2);
    assert!(p.is_dormant(2));
    // A request recorded under it brings it back, with its own configuration, not plugin a's.
    assert_eq!(served(&mut p, 7, b"b").as_deref(), Some("revived B"));
    assert_eq!(p.len(), 2);
    // So does a tick; and an unrecorded request of its name finds it too.
    rounds(&mut p, &[1], STALE_ROUNDS as usize + 2);
    assert!(p.is_dormant(2));
    assert_eq!(served(&mut p, 9, b"b").as_deref(), Some("revived B"));
    rounds(&mut p, &[1], STALE_ROUNDS as usize + 2);
    assert!(p.revive(2, revive).is_some());
    assert!(p.ticked(2).ended.is_empty());
    assert!(!p.is_dormant(2));
    // A root that served a refused configuration comes back with what it served.
    configure(&mut p, 3, b"c", "bad", false);
    rounds(&mut p, &[1, 2], STALE_ROUNDS as usize + 2);
    assert_eq!(served(&mut p, 10, b"c").as_deref(), Some("revived nothing"));
}
}

logic_test! {
fn a_request_whose_plugin_has_no_root_is_nobodys() {
    let mut p = plugins();
    configure(&mut p, 1, b"a", "A", true);
    configure(&mut p, 2, b"b", "B", true);
    p.request_started(7, 2);
    // Root 2 dormant, then forgotten as more dormant roots come.
    rounds(&mut p, &[1], STALE_ROUNDS as usize + 2);
    for id in 10..10 + MAX_DORMANT as u32 {
        configure(&mut p, id, b"x", "X", true);
        rounds(&mut p, &[1], STALE_ROUNDS as usize + 2);
    }
    assert!(!p.is_dormant(2));
    assert_eq!(served(&mut p, 7, b"b"), None, "not plugin a's, the only one alive");
}
}

logic_test! {
fn dormant_roots_and_last_good_configurations_are_bounded() {
    let mut p = plugins();
    configure(&mut p, 1, b"keep", "K", true);
    for id in 2..400u32 {
        let name = format!("p{id}");
        configure(&mut p, id, name.as_bytes(), "X", true);
        rounds(&mut p, &[1], 2);
    }
    rounds(&mut p, &[1], STALE_ROUNDS as usize + 2);
    assert_eq!(p.len(), 1);
    assert_eq!(p.dormant(), MAX_DORMANT);
    assert!(p.last_good_kept() <= MAX_DORMANT + 1, "{}", p.last_good_kept());
    assert_eq!(p.last_good(b"keep"), Some(&b"K"[..]));
}
}

logic_test! {
fn superseded_roots_stop_and_serve_again_on_a_request() {
    let mut p = plugins();
    assert!(configure(&mut p, 1, b"app", "A", true).is_empty());
    configure(&mut p, 9, b"other", "O", true);
    assert_eq!(configure(&mut p, 2, b"app", "B", false), vec![1]);
    // Superseded once: not told again.
    assert_eq!(configure(&mut p, 3, b"app", "C", false), vec![2]);
    assert_eq!(p.in_force_valid(b"app"), Some(false));
    // A revert served from Envoy's cache: a request under root 1 makes it the one in force.
    let resumed = p.request_started(5, 1);
    assert_eq!(
        resumed,
        Some(Resumed {
            name: b"app".to_vec(),
            valid: true
        })
    );
    assert_eq!(p.in_force_valid(b"app"), Some(true));
    assert_eq!(p.request_started(6, 1), None, "once");
    // The tick a just-stopped root had armed comes before the new root's first: not a reason to
    // serve again.
    assert_eq!(configure(&mut p, 4, b"app", "D", true), vec![1, 3]);
    assert_eq!(p.ticked(3).resumed, None);
    assert_eq!(p.ticked(1).resumed, None);
    // Stopped roots never tick: the host is asked about them at every tick, and rounds never
    // drop them.
    let ended = rounds(&mut p, &[4, 9], 3 * STALE_ROUNDS as usize);
    assert!(ended.is_empty(), "{ended:?}");
    assert!(!p.is_dormant(1) && !p.is_dormant(2) && !p.is_dormant(3));
    let mut asked = p.to_ask(0);
    asked.sort_unstable();
    assert_eq!(asked, vec![1, 2, 3]);
}
}

logic_test! {
fn a_stopped_root_alive_after_the_hold_is_a_backup_that_serves_when_its_successor_ends() {
    let mut p = plugins();
    configure(&mut p, 1, b"app", "A", true);
    configure(&mut p, 9, b"other", "O", true);
    configure(&mut p, 2, b"app", "B", false);
    // Draining for a while: the host says it exists, and it stays stopped.
    rounds(&mut p, &[2, 9], 10);
    assert!(!p.exists(1));
    assert_eq!(p.to_ask(0), vec![1], "asked at every tick while stopped");
    // Still alive after the hold: a backup from now (its timer at SLOW_TICK_MS), asked once
    // silent for a slow period.
    rounds(&mut p, &[2, 9], HOLD_ROUNDS as usize);
    assert!(p.exists(1));
    assert!(!p.exists(1), "once");
    assert!(p.to_ask(0).is_empty());
    let period = (SLOW_TICK_MS / TICK_MS) as usize;
    rounds(&mut p, &[2, 9], period + 1);
    assert_eq!(p.to_ask(0), vec![1]);
    // Its own tick counts as much; root 2 ticks at full rate: it stays a backup.
    assert_eq!(p.ticked(1).resumed, None);
    assert!(p.to_ask(0).is_empty());
    // Root 2 ends (no tick of it for a while): the backup serves again, requests or not.
    rounds(&mut p, &[9], 5);
    assert_eq!(
        p.ticked(1).resumed,
        Some(Resumed {
            name: b"app".to_vec(),
            valid: true
        })
    );
    assert_eq!(p.in_force_valid(b"app"), Some(true));
    // A backup lives three slow periods without a tick before rounds drop it.
    configure(&mut p, 3, b"app", "C", true);
    rounds(&mut p, &[3, 9], HOLD_ROUNDS as usize + 1);
    assert!(p.exists(1));
    for _ in 0..3 {
        rounds(&mut p, &[3, 9], period);
        assert_eq!(p.ticked(1).resumed, None);
        assert!(!p.is_dormant(1));
    }
    rounds(&mut p, &[3, 9], 3 * period + 2);
    assert!(p.is_dormant(1));
}
}

logic_test! {
fn a_root_configured_again_replaces_its_own_entry() {
    let mut p = plugins();
    configure(&mut p, 1, b"app", "A", true);
    configure(&mut p, 1, b"app", "B", true);
    assert_eq!(p.len(), 1);
    assert_eq!(served(&mut p, 3, b"app").as_deref(), Some("B"));
}
}

logic_test! {
fn roots_envoy_deleted_are_forgotten_so_churn_keeps_nothing_per_change() {
    let mut p = plugins();
    configure(&mut p, 1, b"other", "O", true);
    configure(&mut p, 2, b"app", "A0", true);
    for id in 3..303u32 {
        // A change supersedes (stops) the previous root; the host then says which slowed
        // roots are gone: all but that one, still draining.
        assert_eq!(configure(&mut p, id, b"app", "A", true), vec![id - 1]);
        for gone in p.superseded().into_iter().filter(|&s| s != id - 1) {
            assert_eq!(p.deleted(gone), Some(b"app".to_vec()));
        }
        assert!(p.len() <= 3, "{} live roots after change {id}", p.len());
    }
    assert_eq!(p.superseded(), vec![301]);
    assert_eq!(p.deleted(301), Some(b"app".to_vec()));
    assert_eq!(p.len(), 2);
    assert_eq!((p.dormant(), p.last_good_kept()), (0, 2));
    assert!(p.superseded().is_empty(), "nothing left to ask the host about");
    // Forgotten, not dormant: it cannot come back, and is never asked about again.
    assert_eq!(p.deleted(301), None);
    assert!(!p.is_dormant(301));
    assert_eq!(served(&mut p, 400, b"app").as_deref(), Some("A"));
    assert_eq!(p.in_force_valid(b"app"), Some(true));
}
}

logic_test! {
fn a_plugins_last_root_deleted_takes_its_last_good_configuration() {
    let mut p = plugins();
    configure(&mut p, 1, b"keep", "K", true);
    configure(&mut p, 2, b"gone", "G", true);
    assert_eq!(p.deleted(2), Some(b"gone".to_vec()));
    assert_eq!(p.last_good(b"gone"), None);
    assert_eq!(p.in_force_valid(b"gone"), None);
    assert_eq!(p.last_good(b"keep"), Some(&b"K"[..]));
}
}

logic_test! {
fn a_full_rate_root_that_went_silent_is_asked_about_so_a_removed_plugin_ends_at_once() {
    let mut p = plugins();
    configure(&mut p, 1, b"gone", "G", false);
    configure(&mut p, 2, b"stays", "S", true);
    rounds(&mut p, &[1, 2], 5);
    assert!(p.to_ask(2).is_empty(), "both tick");
    // Root 1's plugin is removed: its ticks stop. A few rounds later root 2's tick asks.
    rounds(&mut p, &[2], SILENT_ROUNDS as usize);
    assert!(p.to_ask(2).is_empty());
    rounds(&mut p, &[2], 1);
    assert_eq!(p.to_ask(2), vec![1]);
    assert!(p.to_ask(1).is_empty(), "never itself");
    assert_eq!(p.deleted(1), Some(b"gone".to_vec()));
    assert_eq!(p.in_force_valid(b"gone"), None);
    // Alive after all (a stall of its thread): asked again only after as many rounds.
    configure(&mut p, 3, b"slow", "L", true);
    rounds(&mut p, &[2], SILENT_ROUNDS as usize + 1);
    assert_eq!(p.to_ask(2), vec![3]);
    assert!(!p.exists(3));
    assert!(p.to_ask(2).is_empty());
}
}
