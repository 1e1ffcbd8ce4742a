//! Memory handed to the host, allocated without aborting.
//!
//! Every host call that returns data (a header map, a body chunk, a property) has the host
//! allocate in the VM through `proxy_on_memory_allocate`. An infallible allocation that fails
//! aborts the VM, and every later request of its worker passes the filter by (or fails). A
//! fallible one gives the host a null pointer: the host call fails with a status, the request
//! passes uncounted and the failure is logged (`warn_limited!`), and the VM lives.

use std::alloc::{alloc, Layout};
use std::ptr::{null_mut, NonNull};

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
