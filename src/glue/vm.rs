//! What one VM (one worker thread) keeps, in one place both entry-point files use: its root
//! contexts and requests in flight (`crate::lifecycle`), the bodies being read (body-reading
//! build).

use super::root::Root;
#[cfg(feature = "bodies")]
use crate::bodies::Bodies;
use crate::lifecycle::Plugins;
#[cfg(feature = "bodies")]
use crate::streams::Streams;
use std::cell::RefCell;

thread_local! {
    /// Its root contexts, one per plugin configuration alive in it, and which root each request
    /// in flight belongs to.
    static VM: RefCell<Plugins<Root>> = RefCell::new(Plugins::default());
    /// The bodies being read in this VM, by request context.
    #[cfg(feature = "bodies")]
    static BODIES: RefCell<Bodies> = RefCell::new(Bodies::default());
    /// The gRPC streams followed in this VM, by request context.
    #[cfg(feature = "bodies")]
    static STREAMS: RefCell<Streams> = RefCell::new(Streams::default());
}

/// Runs `f` on the VM's roots; a re-entrant call (never expected: the host defers its callbacks
/// while the VM runs) is dropped and logged rather than allowed to panic.
pub fn with_vm<R>(f: impl FnOnce(&mut Plugins<Root>) -> R) -> Option<R> {
    VM.with(|vm| match vm.try_borrow_mut() {
        Ok(mut vm) => Some(f(&mut vm)),
        Err(_) => {
            warn_limited!(|| "re-entrant callback ignored".to_string());
            None
        }
    })
}

/// Runs `f` on the bodies being read.
#[cfg(feature = "bodies")]
pub fn with_bodies<R>(f: impl FnOnce(&mut Bodies) -> R) -> Option<R> {
    BODIES.with(|b| b.try_borrow_mut().ok().map(|mut b| f(&mut b)))
}

/// Runs `f` on the gRPC streams followed.
#[cfg(feature = "bodies")]
pub fn with_streams<R>(f: impl FnOnce(&mut Streams) -> R) -> Option<R> {
    STREAMS.with(|s| s.try_borrow_mut().ok().map(|mut s| f(&mut s)))
}
