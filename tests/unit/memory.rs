use super::*;
use crate::test_support::*;

logic_test! {
fn memory_the_vm_cannot_have_is_null_not_an_abort() {
    // What the glue does with an allocation: the host writes into it, a Vec takes it back.
    let pointer = allocate(100);
    assert!(!pointer.is_null());
    // SAFETY: 100 bytes allocated as a Vec<u8> of capacity 100 holds them.
    let taken = unsafe {
        pointer.write_bytes(7, 100);
        Vec::from_raw_parts(pointer, 100, 100)
    };
    assert!(taken.iter().all(|&b| b == 7));
    drop(taken);
    let empty = allocate(0);
    assert!(!empty.is_null());
    // SAFETY: an empty Vec's pointer is the dangling one.
    drop(unsafe { Vec::from_raw_parts(empty, 0, 0) });
    // Past what any allocator gives (isize::MAX bytes): an answer, and the VM goes on.
    assert!(allocate(usize::MAX).is_null());
    assert!(allocate(isize::MAX as usize + 1).is_null());
    // The host says so: a request whose maps it could not hand over passes under this reason.
    assert_eq!(Unread::from_status(NO_MEMORY_STATUS), Unread::Memory);
    assert_eq!(Unread::from_status(2), Unread::Host);
    assert_eq!(Unread::Memory.label(), "memory");
}
}
