//! Unit tests of src/routes.rs (compiled into the library's test build).

use super::*;
use crate::test_support::*;

fn routes() -> Routes {
    let t: Vec<String> = [
        "/login",
        "/users",
        "/users/count",
        "/users/{user_id}",
        "/health",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    Routes::new(&t).unwrap()
}

logic_test!(
    fn static_beats_parameter() {
        let r = routes();
        assert_eq!(
            r.find("/users/count").and_then(|i| r.template(i)),
            Some("/users/count")
        );
        assert_eq!(
            r.find("/users/42").and_then(|i| r.template(i)),
            Some("/users/{user_id}")
        );
        assert_eq!(r.find("/users").and_then(|i| r.template(i)), Some("/users"));
    }
);

logic_test!(
    fn query_is_ignored_and_unknown_paths_match_nothing() {
        let r = routes();
        assert_eq!(
            r.find("/login?next=/x").and_then(|i| r.template(i)),
            Some("/login")
        );
        assert_eq!(r.find("/users/42/extra"), None);
        assert_eq!(r.find("/nope"), None);
        assert_eq!(r.find(""), None);
        assert_eq!(r.find("?"), None);
    }
);

logic_test!(
    fn empty_set_matches_nothing() {
        assert_eq!(Routes::new(&[]).unwrap().find("/login"), None);
    }
);
