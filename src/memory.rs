//! Memory handed to the host, allocated without aborting.
//!
//! Every host call that returns data (a header map, a body chunk, a property) has the host
//! allocate in the VM through `proxy_on_memory_allocate`. An infallible allocation that fails
//! aborts the VM, and every later request of its worker passes the filter by (or fails). A
//! fallible one gives the host a null pointer: the host call fails with a status, the request
//! passes uncounted under a reason (`app_metrics_requests_not_counted_total{reason="memory"}`),
//! the failure is logged (`warn_limited!`), and the VM lives.

use std::alloc::{alloc, Layout};
use std::ptr::{null_mut, NonNull};

/// The status a host call answers when it could not allocate in the VM for what it hands over
/// (proxy-wasm's `InvalidMemoryAccess`).
pub const NO_MEMORY_STATUS: u32 = 6;

crate::labels::label_enum! {
    /// Why a request the configuration observes passed uncounted: a header map could not be
    /// read (`app_metrics_requests_not_counted_total{reason}`).
    pub enum Unread {
        /// The VM had no memory for the host's copy: this module's allocation answered null,
        /// and the host said so (`InvalidMemoryAccess`).
        Memory => "memory",
        /// The host refused the read with another status (logged).
        Host => "host",
    }
}

impl Unread {
    /// Why a host read that answered `status` failed.
    pub fn from_status(status: u32) -> Unread {
        if status == NO_MEMORY_STATUS {
            Unread::Memory
        } else {
            Unread::Host
        }
    }
}

/// Room for `size` bytes, as a `Vec<u8>` of exactly that capacity holds them (the glue takes
/// them back with `Vec::from_raw_parts(pointer, size, size)`), or null when the VM cannot have
/// the memory. From the allocator directly: through `Vec::try_reserve_exact` it cost twice the
/// instructions, twice per request (the cost probe: 154 against about 340 per allocation).
pub fn allocate(size: usize) -> *mut u8 {
    if size == 0 {
        // What an empty Vec holds: never dereferenced, never freed.
        return NonNull::<u8>::dangling().as_ptr();
    }
    match Layout::array::<u8>(size) {
        // SAFETY: the layout's size is not zero (checked above).
        Ok(layout) => unsafe { alloc(layout) },
        Err(_) => null_mut(),
    }
}

#[cfg(test)]
#[path = "../tests/unit/memory.rs"]
mod tests;
