use super::*;
use crate::test_support::*;

logic_test! {
fn the_reserved_names_message_lists_them_all() {
    assert_eq!(RESERVED_LIST, RESERVED_LABEL_NAMES.join(", "));
    for name in LABEL_NAMES {
        assert!(RESERVED_LABEL_NAMES.contains(&name), "{name}");
    }
}
}

logic_test! {
fn the_request_metrics_reserve_their_names_and_series() {
    assert!(RESERVED_COUNTERS.iter().all(|c| RESERVED_NAMES.contains(c)));
    for name in RESERVED_NAMES
        .iter()
        .chain([&SAMPLER_ERRORS, &CONFIG_VALID, &BODY_NOT_COUNTED, &REQUESTS_NOT_COUNTED])
    {
        assert!(!FOREIGN_PREFIXES.iter().any(|p| name.starts_with(p)), "{name}");
    }
    // 10 methods × 6 status classes; 6 classes × 8 reasons; 10 methods; 2 sizes; 2 + 8 reasons.
    assert_eq!(REQUESTS_PER_HANDLER, 60);
    assert_eq!(PROXY_RESPONSES_PER_HANDLER, 48);
    assert_eq!(DURATIONS_PER_HANDLER, 10);
    assert_eq!(SIZES_PER_HANDLER, 2);
    assert_eq!(SERIES_PER_SAMPLER, 10);
}
}
