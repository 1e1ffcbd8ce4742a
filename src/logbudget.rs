//! How often a recurring problem reaches Envoy's log: the first few times, then one in a
//! thousand. Each problem (each call site of the glue's `warn_limited!`) has a budget of its own,
//! so one that recurs on every request cannot hide the first lines of another.

use std::sync::atomic::{AtomicU64, Ordering};

/// Occurrences logged before thinning out.
pub const FIRST: u64 = 10;
/// After those, one occurrence in this many.
pub const EVERY: u64 = 1000;

#[derive(Debug, Default)]
pub struct LogBudget(AtomicU64);

impl LogBudget {
    pub const fn new() -> Self {
        LogBudget(AtomicU64::new(0))
    }

    /// The occurrence's number (from 1) if this one is to be logged.
    pub fn admit(&self) -> Option<u64> {
        let n = self.0.fetch_add(1, Ordering::Relaxed);
        (n < FIRST || n.is_multiple_of(EVERY)).then_some(n + 1)
    }
}

#[cfg(test)]
#[path = "../tests/unit/logbudget.rs"]
mod tests;
