//! Unit tests of src/schedule.rs (compiled into the library's test build).

use super::*;
use crate::test_support::*;

logic_test!(
    fn deadline_round_trips() {
        assert_eq!(decode(&encode(1_700_000_000_123)), Some(1_700_000_000_123));
        assert_eq!(decode(b"short"), None);
    }
);

logic_test!(
    fn advances_by_one_interval() {
        assert_eq!(next_deadline(999, 1000, 5000), None);
        assert_eq!(next_deadline(1000, 1000, 5000), Some(6000));
        assert_eq!(next_deadline(1400, 1000, 5000), Some(6000));
        // Stalled for more than an interval: start over from now, don't fire a burst.
        assert_eq!(next_deadline(20_000, 1000, 5000), Some(25_000));
        assert_eq!(next_deadline(u64::MAX, u64::MAX - 1, 5000), Some(u64::MAX));
        // Further ahead than one interval: set under a longer interval, or the clock went back.
        assert_eq!(next_deadline(1000, 6000, 5000), None);
        assert_eq!(next_deadline(1000, 6001, 5000), Some(6000));
        assert_eq!(next_deadline(1000, 3_600_000, 30_000), Some(31_000));
    }
);
