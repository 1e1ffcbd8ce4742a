//! One sampler request per interval per Envoy, however many VMs (workers) tick.
//!
//! Every VM's tick reads the sampler's next deadline from Envoy's shared data; the first VM to
//! compare-and-set it one interval further wins and sends the request. The key is created at
//! configure time because a CAS on a missing key always succeeds.

/// Shared-data key holding a sampler's next deadline. `series` is the sampler gauge's stat name,
/// constant labels included (`service=.=a;.;total_users`): shared data is per Envoy, so two
/// configurations whose samplers share a name but not their labels keep a schedule each.
pub fn key(series: &str) -> String {
    format!("app_metrics.sampler.{series}.deadline_ms")
}

pub fn encode(deadline_ms: u64) -> [u8; 8] {
    deadline_ms.to_be_bytes()
}

pub fn decode(bytes: &[u8]) -> Option<u64> {
    <[u8; 8]>::try_from(bytes).ok().map(u64::from_be_bytes)
}

/// If the deadline has passed, the deadline to store on winning. It advances by exactly one
/// interval, so samples keep their rhythm; after a long stall it restarts from `now`. A
/// deadline more than one interval ahead is not trusted: it was set under a longer interval
/// (shared data outlives a configuration update) or before the clock stepped back.
pub fn next_deadline(now_ms: u64, deadline_ms: u64, interval_ms: u64) -> Option<u64> {
    if now_ms < deadline_ms {
        return (deadline_ms - now_ms > interval_ms).then(|| now_ms.saturating_add(interval_ms));
    }
    let next = deadline_ms.saturating_add(interval_ms);
    Some(if next <= now_ms {
        now_ms.saturating_add(interval_ms)
    } else {
        next
    })
}

#[cfg(test)]
#[path = "../tests/unit/schedule.rs"]
mod tests;
