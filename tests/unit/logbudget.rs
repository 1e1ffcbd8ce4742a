//! Unit tests of src/logbudget.rs (compiled into the library's test build).

use super::*;
use crate::test_support::*;

logic_test!(
    fn logs_the_first_ten_then_one_in_a_thousand() {
        let budget = LogBudget::new();
        let logged: Vec<u64> = (0..3001).filter_map(|_| budget.admit()).collect();
        let mut want: Vec<u64> = (1..=10).collect();
        want.extend([1001, 2001, 3001]);
        assert_eq!(logged, want);
    }
);

logic_test!(
    fn one_problem_recurring_leaves_another_its_first_lines() {
        let noisy = LogBudget::new();
        let quiet = LogBudget::new();
        for _ in 0..500 {
            noisy.admit();
        }
        assert_eq!(noisy.admit(), None);
        assert_eq!(quiet.admit(), Some(1));
        assert_eq!(quiet.admit(), Some(2));
    }
);
