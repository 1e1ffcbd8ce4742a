//! Memory handed to the host, allocated without aborting.
//!
//! Every host call that returns data (a header map, a body chunk, a property) has the host
//! allocate in the VM through `proxy_on_memory_allocate`. An infallible allocation that fails
//! aborts the VM, and every later request of its worker passes the filter by (or fails). A
//! fallible one gives the host a null pointer: the host call fails with a status, the request
//! passes uncounted and the failure is logged (`warn_limited!`), and the VM lives.

/// A buffer of exactly `size` bytes' capacity, or `None` when the VM cannot have the memory.
pub fn buffer(size: usize) -> Option<Vec<u8>> {
    let mut buffer = Vec::new();
    buffer.try_reserve_exact(size).ok()?;
    Some(buffer)
}

#[cfg(test)]
#[path = "../tests/unit/memory.rs"]
mod tests;
