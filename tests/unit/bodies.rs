//! Unit tests of src/bodies.rs (compiled into the library's test build): the VM's table of bodies
//! being read within its memory budget, driven as glue/body.rs drives it. Rules come from
//! `config::parse` of the contract's own JSON.

use super::*;
use crate::body::Verdict;
use crate::config::parse;
use crate::test_support::*;

const HOLDS: Verdict = Verdict::Holds(None);

const JSON: Option<&[u8]> = Some(b"application/json");

/// The rules of `counters` (JSON objects, comma-separated), through the configuration's parser.
fn rules(counters: &str) -> Rules {
    let json = format!(r#"{{"counters": [{counters}]}}"#);
    match parse(json.as_bytes()) {
        Ok(config) => Rules::new(&config.counters),
        Err(e) => panic!("{json}: {e}"),
    }
}

// ---------------------------------------------------------------------------------------------
// The VM's table of bodies being read, driven as glue/body.rs drives it: at each side's headers
// (`request_headers`, `response_headers`), then chunk by chunk for requests in the table
// ---------------------------------------------------------------------------------------------

/// One side of a request as the host shows it: its headers, and the bytes of the chunk passing.
/// Counts what the table asks of it.
struct Host<'a> {
    rules: &'a Rules,
    side: Side,
    path: &'a str,
    status: u16,
    content_type: Option<&'a [u8]>,
    length: Option<u64>,
    /// The headers ended the stream: no body follows.
    no_body: bool,
    chunk: &'a [u8],
    /// The host refuses the bytes (a status other than Ok).
    refuse: bool,
    fetched: usize,
}

impl<'a> Host<'a> {
    fn new(rules: &'a Rules, side: Side, path: &'a str) -> Self {
        Host {
            rules,
            side,
            path,
            status: 200,
            content_type: JSON,
            length: None,
            no_body: false,
            chunk: b"",
            refuse: false,
            fetched: 0,
        }
    }

    fn reading(&self, concerned: Vec<usize>) -> Reading {
        if self.no_body {
            return Reading::NotStarted;
        }
        Reading::start(self.rules, concerned, self.content_type, None, self.length)
    }

    /// This side's headers pass (glue/body.rs `on_headers`): what the table returns.
    fn headers(&self, bodies: &mut Bodies, context: u32, now: u64) -> Option<NotCounted> {
        let rules = self.rules;
        match self.side {
            Side::Request => {
                let request = rules.reading_body(Side::Request, b"POST", Some(self.path), None);
                let response = rules.reading_body(Side::Response, b"POST", Some(self.path), None);
                bodies.request_headers(context, now, self.reading(request), response)
            }
            Side::Response => {
                if bodies.has(context) {
                    bodies.response_headers(context, |noted| {
                        let concerned = noted
                            .iter()
                            .copied()
                            .filter(|&i| rules.status_allows(i, self.status))
                            .collect();
                        self.reading(concerned)
                    });
                }
                None
            }
        }
    }
}

impl Host<'_> {
    /// The first `n` bytes of the chunk passing (what the glue's `fetch` gives).
    fn bytes(&mut self, n: usize) -> Option<Vec<u8>> {
        if self.refuse {
            return None;
        }
        let n = n.min(self.chunk.len());
        self.fetched += n;
        Some(self.chunk[..n].to_vec())
    }
}

/// Passes `body` to `bodies` as request `context`'s `side`, in chunks of `size` bytes (the last
/// one marked `end` when `end`), as the glue does.
fn pass<'a>(
    bodies: &mut Bodies,
    host: &mut Host<'a>,
    context: u32,
    body: &'a [u8],
    size: usize,
    end: bool,
) {
    let chunks: Vec<&[u8]> = if body.is_empty() {
        vec![b""]
    } else {
        body.chunks(size).collect()
    };
    let last = chunks.len() - 1;
    let rules = host.rules;
    let side = host.side;
    for (i, chunk) in chunks.into_iter().enumerate() {
        host.chunk = chunk;
        let c = Chunk {
            context,
            side,
            size: chunk.len(),
            end: end && i == last,
        };
        bodies.chunk(c, rules, |n| host.bytes(n));
    }
}

/// Headers, then the whole body in chunks of `size`.
fn request<'a>(
    bodies: &mut Bodies,
    host: &mut Host<'a>,
    context: u32,
    body: &'a [u8],
    size: usize,
    now: u64,
) -> Option<NotCounted> {
    let busy = host.headers(bodies, context, now);
    pass(bodies, host, context, body, size, true);
    busy
}

fn contract_rules() -> Rules {
    rules(
        r#"{"name": "alice_signups_total",
              "match": {"method": "POST", "path": "/users", "request_json": [{"pointer": "/username", "equals": "alice"}]}},
           {"name": "created_points_total", "match": {"method": "POST", "path": "/users", "status": ["2xx"]},
              "increment": {"response_json": "/points"}},
           {"name": "users_total", "match": {"method": "POST", "path": "/users"}},
           {"name": "locked_logins_total", "match": {"method": "POST", "path": "/login", "status": ["2xx"],
              "response_json": [{"pointer": "/ok", "equals": false}]}}"#,
    )
}

logic_test!(
    fn bodies_are_copied_as_they_pass_and_dropped_at_the_end() {
        let all = contract_rules();
        let mut bodies = Bodies::default();
        assert!(bodies.is_empty());
        let mut req = Host::new(&all, Side::Request, "/users");
        assert_eq!(req.headers(&mut bodies, 7, 1000), None);
        assert!(bodies.has(7));
        let body = br#"{"username": "alice", "password": "pw"}"#;
        // Not ended yet: the copy is held.
        pass(&mut bodies, &mut req, 7, &body[..20], 3, false);
        assert_eq!(req.fetched, 20);
        assert_eq!(bodies.len(), 1);
        assert!(bodies.held() >= 20);
        pass(&mut bodies, &mut req, 7, &body[20..], 3, true);
        assert_eq!(req.fetched, body.len());
        assert_eq!(bodies.held(), 0, "evaluated at the end, the copy dropped");
        let mut resp = Host::new(&all, Side::Response, "/users");
        resp.status = 201;
        resp.length = Some(13);
        request(&mut bodies, &mut resp, 7, br#"{"points": 5}"#, 4, 1002);
        assert_eq!(resp.fetched, 13);
        assert_eq!(bodies.held(), 0);
        let pending = bodies.finish(7).unwrap();
        assert!(bodies.is_empty() && !bodies.has(7));
        assert_eq!(pending.born_ms, 1000);
        assert_eq!(pending.verdict(&all, 0), HOLDS);
        assert_eq!(pending.verdict(&all, 1), Verdict::Holds(Some(5)));
        assert_eq!(pending.verdict(&all, 2), HOLDS);
        assert!(bodies.finish(7).is_none(), "finished once");

        // Another request's bodies are its own; a 500's body no rule reads is not fetched.
        let mut req = Host::new(&all, Side::Request, "/users");
        request(&mut bodies, &mut req, 8, br#"{"username": "bob"}"#, 5, 2000);
        let mut resp = Host::new(&all, Side::Response, "/users");
        resp.status = 500;
        request(&mut bodies, &mut resp, 8, br#"{"points": 5}"#, 5, 2000);
        assert_eq!(resp.fetched, 0);
        let pending = bodies.finish(8).unwrap();
        assert_eq!(pending.verdict(&all, 0), Verdict::Fails);
        assert_eq!(
            pending.verdict(&all, 1),
            Verdict::Unread(NotCounted::NoBody)
        );
        assert_eq!(bodies.held(), 0);
    }
);

logic_test!(
    fn only_requests_some_rule_reads_get_an_entry() {
        let all = contract_rules();
        let mut bodies = Bodies::default();
        // No body rule on this path: no entry, nothing fetched, not even the response's.
        let mut req = Host::new(&all, Side::Request, "/health");
        request(&mut bodies, &mut req, 1, br#"{"username": "alice"}"#, 4, 0);
        let mut resp = Host::new(&all, Side::Response, "/health");
        request(&mut bodies, &mut resp, 1, br#"{"ok": false}"#, 4, 0);
        assert_eq!(req.fetched + resp.fetched, 0);
        assert!(!bodies.has(1) && bodies.is_empty());
        assert!(bodies.finish(1).is_none());
        // A rule on the response only: an entry from the request's headers, the request body
        // not read, the response's read.
        let mut req = Host::new(&all, Side::Request, "/login");
        request(&mut bodies, &mut req, 2, br#"{"user": "x"}"#, 4, 0);
        assert!(bodies.has(2));
        assert_eq!(req.fetched, 0);
        let mut resp = Host::new(&all, Side::Response, "/login");
        request(&mut bodies, &mut resp, 2, br#"{"ok": false}"#, 4, 0);
        assert_eq!(resp.fetched, 13);
        assert_eq!(bodies.finish(2).unwrap().verdict(&all, 3), HOLDS);
        // A response whose headers come for a request not in the table makes no entry.
        let mut resp = Host::new(&all, Side::Response, "/login");
        request(&mut bodies, &mut resp, 3, br#"{"ok": false}"#, 4, 0);
        assert!(!bodies.has(3));
        assert_eq!(resp.fetched, 0);
    }
);

logic_test!(
    fn headers_say_which_bodies_cannot_be_read() {
        let all = contract_rules();
        let mut bodies = Bodies::default();
        let body = br#"{"username": "alice"}"#;
        let mut not_json = Host::new(&all, Side::Request, "/users");
        not_json.content_type = Some(b"text/plain");
        request(&mut bodies, &mut not_json, 2, body, 4, 0);
        assert_eq!(not_json.fetched, 0);
        assert_eq!(
            bodies.finish(2).unwrap().verdict(&all, 0),
            Verdict::Unread(NotCounted::NotJson)
        );
        let mut too_long = Host::new(&all, Side::Request, "/users");
        too_long.length = Some(65_537);
        request(&mut bodies, &mut too_long, 3, body, 4, 0);
        assert_eq!(too_long.fetched, 0);
        assert_eq!(
            bodies.finish(3).unwrap().verdict(&all, 0),
            Verdict::Unread(NotCounted::TooLarge)
        );
        // Headers that end the stream: no body; the response may still be read.
        let mut empty = Host::new(&all, Side::Request, "/users");
        empty.no_body = true;
        assert_eq!(empty.headers(&mut bodies, 4, 0), None);
        assert!(bodies.has(4));
        let mut resp = Host::new(&all, Side::Response, "/users");
        request(&mut bodies, &mut resp, 4, br#"{"points": 2}"#, 4, 0);
        let pending = bodies.finish(4).unwrap();
        assert_eq!(
            pending.verdict(&all, 0),
            Verdict::Unread(NotCounted::NoBody)
        );
        assert_eq!(pending.verdict(&all, 1), Verdict::Holds(Some(2)));
        // Bytes the host will not give: the body is not read.
        let mut refusing = Host::new(&all, Side::Request, "/users");
        refusing.refuse = true;
        request(&mut bodies, &mut refusing, 5, body, 8, 0);
        assert_eq!(
            bodies.finish(5).unwrap().verdict(&all, 0),
            Verdict::Unread(NotCounted::Busy)
        );
        // The client went away mid-body: no end.
        let mut cut = Host::new(&all, Side::Request, "/users");
        cut.headers(&mut bodies, 6, 0);
        pass(&mut bodies, &mut cut, 6, &body[..10], 4, false);
        assert!(bodies.held() >= 10);
        assert_eq!(
            bodies.finish(6).unwrap().verdict(&all, 0),
            Verdict::Unread(NotCounted::Incomplete)
        );
        assert!(bodies.is_empty());
        assert_eq!(bodies.held(), 0);
    }
);

/// A counter reading up to 1 MiB of `/big` request bodies, and one of its responses.
fn big_rules() -> Rules {
    rules(
        r#"{"name": "big", "match": {"path": "/big", "request_json": [{"pointer": "/a", "present": true}]},
             "max_body_bytes": 1048576},
           {"name": "big_answer", "match": {"path": "/big", "response_json": [{"pointer": "/a", "present": true}]},
             "max_body_bytes": 1048576}"#,
    )
}

const MIB: usize = 1024 * 1024;

logic_test!(
    fn a_body_past_the_memory_budget_is_busy_and_not_copied() {
        assert_eq!(BUDGET_BYTES, 16 * MIB);
        let all = big_rules();
        let mut bodies = Bodies::default();
        let mib = vec![b' '; MIB];
        // 16 bodies of 1 MiB, none ended: the whole budget.
        for context in 0..16 {
            let mut host = Host::new(&all, Side::Request, "/big");
            assert_eq!(host.headers(&mut bodies, context, 0), None);
            pass(&mut bodies, &mut host, context, &mib, MIB, false);
            assert_eq!(host.fetched, MIB);
        }
        assert_eq!(bodies.held(), 16 * MIB);
        // One more byte is one too many: not fetched, the rule is told why.
        let mut host = Host::new(&all, Side::Request, "/big");
        assert_eq!(
            request(&mut bodies, &mut host, 16, br#"{"a": 1}"#, 8, 0),
            None,
            "the request has an entry to carry the reason"
        );
        assert_eq!(host.fetched, 0);
        assert_eq!(bodies.held(), 16 * MIB);
        assert_eq!(
            bodies.finish(16).unwrap().verdict(&all, 0),
            Verdict::Unread(NotCounted::Busy)
        );
        // Room again once one ends.
        let first = bodies.finish(0).unwrap();
        assert_eq!(
            first.verdict(&all, 0),
            Verdict::Unread(NotCounted::Incomplete)
        );
        assert_eq!(bodies.held(), 15 * MIB);
        let mut host = Host::new(&all, Side::Request, "/big");
        request(&mut bodies, &mut host, 17, br#"{"a": 1}"#, 3, 0);
        assert_eq!(host.fetched, 8);
        assert_eq!(bodies.finish(17).unwrap().verdict(&all, 0), HOLDS);
        for context in 1..16 {
            assert!(bodies.finish(context).is_some());
        }
        assert_eq!(bodies.held(), 0);
        assert!(bodies.is_empty());
    }
);

logic_test!(
    fn only_what_arrived_counts_against_the_budget() {
        let all = big_rules();
        let mut bodies = Bodies::default();
        // 40 clients declare 1 MiB bodies (40 MiB, past the 16 MiB budget) and send one byte.
        for context in 0..40 {
            let mut host = Host::new(&all, Side::Request, "/big");
            host.length = Some(MIB as u64);
            assert_eq!(host.headers(&mut bodies, context, 0), None);
            pass(&mut bodies, &mut host, context, b"{", 1, false);
            assert_eq!(host.fetched, 1);
        }
        assert!(bodies.held() <= 40 * 2, "{} bytes held", bodies.held());
        // Another client's body is read whole, and its response too.
        let mut host = Host::new(&all, Side::Request, "/big");
        host.length = Some(8);
        request(&mut bodies, &mut host, 40, br#"{"a": 1}"#, 3, 0);
        assert_eq!(host.fetched, 8);
        let mut resp = Host::new(&all, Side::Response, "/big");
        resp.length = Some(MIB as u64);
        request(&mut bodies, &mut resp, 40, br#"{"a": 1}"#, 1, 0);
        assert_eq!(resp.fetched, 8);
        let pending = bodies.finish(40).unwrap();
        assert_eq!(pending.verdict(&all, 0), HOLDS);
        assert_eq!(pending.verdict(&all, 1), HOLDS);
        for context in 0..40 {
            assert_eq!(
                bodies.finish(context).unwrap().verdict(&all, 0),
                Verdict::Unread(NotCounted::Incomplete)
            );
        }
        assert_eq!(bodies.held(), 0);
    }
);

logic_test!(
    fn one_connection_cannot_take_the_budget() {
        assert_eq!(PER_CONNECTION_BYTES, 2 * MIB);
        let all = big_rules();
        let mut bodies = Bodies::default();
        let half = vec![b' '; MIB / 2];
        // Five requests on one connection (HTTP/2): four half-MiB copies are its 2 MiB.
        for context in 0..5 {
            let mut host = Host::new(&all, Side::Request, "/big");
            host.headers(&mut bodies, context, 0);
            bodies.connection(context, 7);
            pass(&mut bodies, &mut host, context, &half, MIB / 2, false);
            assert_eq!(host.fetched, if context < 4 { MIB / 2 } else { 0 });
        }
        assert_eq!(
            bodies.finish(4).unwrap().verdict(&all, 0),
            Verdict::Unread(NotCounted::Busy)
        );
        // Another client is read as before.
        let mut host = Host::new(&all, Side::Request, "/big");
        host.headers(&mut bodies, 5, 0);
        bodies.connection(5, 8);
        pass(&mut bodies, &mut host, 5, br#"{"a": 1}"#, 2, true);
        assert_eq!(bodies.finish(5).unwrap().verdict(&all, 0), HOLDS);
        // One body may always be read to its limit, whatever its connection holds.
        let whole = vec![b' '; MIB];
        let mut host = Host::new(&all, Side::Request, "/big");
        host.headers(&mut bodies, 9, 0);
        bodies.connection(9, 9);
        pass(&mut bodies, &mut host, 9, &whole, MIB, false);
        assert_eq!(host.fetched, MIB);
    }
);

logic_test!(
    fn readings_that_stopped_progressing_go_first_when_the_budget_is_full() {
        let all = big_rules();
        let mut bodies = Bodies::default();
        let mib = vec![b' '; MIB];
        // 16 clients sent 1 MiB each and stopped: the whole budget.
        for context in 0..16 {
            let mut host = Host::new(&all, Side::Request, "/big");
            host.headers(&mut bodies, context, 0);
            pass(&mut bodies, &mut host, context, &mib, MIB, false);
        }
        assert_eq!(bodies.held(), 16 * MIB);
        // A client whose body comes now finds no room: they have not stalled yet.
        let mut host = Host::new(&all, Side::Request, "/big");
        host.headers(&mut bodies, 100, 0);
        pass(&mut bodies, &mut host, 100, &[b' '; 70], 1, false);
        assert_eq!(host.fetched, 0);
        // Its chunks (and others') pass meanwhile; the 16 did not move: stalled. The next
        // body takes the room of the oldest of them, and only as much as it needs.
        let mut host = Host::new(&all, Side::Request, "/big");
        host.headers(&mut bodies, 101, 0);
        pass(&mut bodies, &mut host, 101, br#"{"a": 1}"#, 8, true);
        assert_eq!(host.fetched, 8);
        assert_eq!(bodies.finish(101).unwrap().verdict(&all, 0), HOLDS);
        assert_eq!(
            bodies.finish(0).unwrap().verdict(&all, 0),
            Verdict::Unread(NotCounted::Busy),
            "the oldest stalled reading gave its room"
        );
        assert_eq!(
            bodies.finish(1).unwrap().verdict(&all, 0),
            Verdict::Unread(NotCounted::Incomplete),
            "the others keep theirs"
        );
        assert_eq!(bodies.held(), 14 * MIB);
    }
);

logic_test!(
    fn a_full_table_reads_no_new_body() {
        let all = contract_rules();
        let mut bodies = Bodies::default();
        let alice = br#"{"username": "alice"}"#;
        // MAX_PENDING requests whose bodies are being read (one chunk each, none ended).
        for context in 0..MAX_PENDING as u32 {
            let mut host = Host::new(&all, Side::Request, "/users");
            assert_eq!(host.headers(&mut bodies, context, 0), None);
            pass(&mut bodies, &mut host, context, &alice[..2], 2, false);
        }
        assert_eq!(bodies.len(), MAX_PENDING);
        let held = bodies.held();
        // A new request some rule reads: refused at its headers, once; its chunks then pass
        // unread.
        let mut host = Host::new(&all, Side::Request, "/users");
        assert_eq!(
            request(&mut bodies, &mut host, 99_999, alice, 4, 0),
            Some(NotCounted::Busy)
        );
        let mut resp = Host::new(&all, Side::Response, "/users");
        request(&mut bodies, &mut resp, 99_999, br#"{"points": 1}"#, 4, 0);
        assert_eq!(host.fetched + resp.fetched, 0);
        assert!(!bodies.has(99_999));
        assert_eq!(bodies.len(), MAX_PENDING);
        assert_eq!(bodies.held(), held);
        // Its end says busy for its body rules, not no_body.
        let refused = bodies.finish(99_999).unwrap();
        assert_eq!(refused.verdict(&all, 0), Verdict::Unread(NotCounted::Busy));
        assert!(bodies.finish(99_999).is_none());
        // A new request no rule reads the body of costs nothing and says nothing.
        let mut other = Host::new(&all, Side::Request, "/health");
        assert_eq!(request(&mut bodies, &mut other, 99_998, alice, 4, 0), None);
        assert_eq!(bodies.len(), MAX_PENDING);
        // Requests already in the table go on.
        let mut host = Host::new(&all, Side::Request, "/users");
        pass(&mut bodies, &mut host, 5, &alice[2..], 3, true);
        assert_eq!(bodies.finish(5).unwrap().verdict(&all, 0), HOLDS);
        // The freed slot takes a new request.
        let mut host = Host::new(&all, Side::Request, "/users");
        assert_eq!(request(&mut bodies, &mut host, 99_999, alice, 8, 0), None);
        assert_eq!(bodies.finish(99_999).unwrap().verdict(&all, 0), HOLDS);
        for context in 0..MAX_PENDING as u32 {
            bodies.finish(context);
        }
        assert!(bodies.is_empty());
        assert_eq!(bodies.held(), 0);
    }
);

logic_test!(
    fn sweep_forgets_requests_whose_end_never_came() {
        let all = contract_rules();
        let mut bodies = Bodies::default();
        for (context, path, now) in [
            (1, "/users", 1_000),
            (2, "/users", 5_000),
            (3, "/login", 1_000),
        ] {
            let mut host = Host::new(&all, Side::Request, path);
            host.headers(&mut bodies, context, now);
            pass(
                &mut bodies,
                &mut host,
                context,
                br#"{"username": "#,
                4,
                false,
            );
        }
        assert_eq!(bodies.len(), 3);
        let held_by_2 = bodies.held() / 2;
        assert!(held_by_2 > 0);
        // Just short of FORGET_MS for the oldest: all kept.
        bodies.sweep(1_000 + FORGET_MS - 1);
        assert_eq!(bodies.len(), 3);
        // At FORGET_MS the two born at 1000 go, with what they held.
        bodies.sweep(1_000 + FORGET_MS);
        assert_eq!(bodies.len(), 1);
        assert_eq!(bodies.held(), held_by_2);
        assert!(bodies.finish(1).is_none());
        assert!(bodies.finish(3).is_none());
        // A clock that went back forgets nothing.
        bodies.sweep(0);
        assert_eq!(bodies.len(), 1);
        bodies.sweep(5_000 + FORGET_MS);
        assert!(bodies.is_empty());
        assert_eq!(bodies.held(), 0);
    }
);

logic_test!(
    fn trailers_end_the_body_and_an_empty_final_frame_is_no_body() {
        let all = contract_rules();
        let mut bodies = Bodies::default();
        // gRPC-like: the last data frame does not end the stream, trailers do (the glue passes
        // them as an empty chunk that ends the body).
        let mut req = Host::new(&all, Side::Request, "/users");
        req.headers(&mut bodies, 7, 0);
        pass(
            &mut bodies,
            &mut req,
            7,
            br#"{"username": "alice"}"#,
            6,
            false,
        );
        pass(&mut bodies, &mut req, 7, b"", 1, true);
        assert_eq!(bodies.held(), 0, "evaluated at the trailers");
        let pending = bodies.finish(7).unwrap();
        assert_eq!(pending.verdict(&all, 0), HOLDS, "finished, not incomplete");
        // Headers without end of stream, then one empty data frame that ends it: no body, not a
        // parse error.
        let mut req = Host::new(&all, Side::Request, "/users");
        req.headers(&mut bodies, 8, 0);
        pass(&mut bodies, &mut req, 8, b"", 1, true);
        let pending = bodies.finish(8).unwrap();
        assert_eq!(
            pending.verdict(&all, 0),
            Verdict::Unread(NotCounted::NoBody)
        );
        // Trailers after a body that already ended change nothing.
        let mut req = Host::new(&all, Side::Request, "/users");
        req.headers(&mut bodies, 9, 0);
        pass(
            &mut bodies,
            &mut req,
            9,
            br#"{"username": "bob"}"#,
            50,
            true,
        );
        pass(&mut bodies, &mut req, 9, b"", 1, true);
        assert_eq!(bodies.finish(9).unwrap().verdict(&all, 0), Verdict::Fails);
    }
);
