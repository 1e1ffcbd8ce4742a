use super::*;
use crate::test_support::*;

logic_test! {
fn a_buffer_the_vm_cannot_have_is_none_not_an_abort() {
    let small = buffer(100).unwrap();
    assert!(small.capacity() >= 100 && small.is_empty());
    assert_eq!(buffer(0).map(|b| b.capacity()), Some(0));
    // Past what any allocator gives (isize::MAX bytes): an answer, and the VM goes on.
    assert!(buffer(usize::MAX).is_none());
    assert!(buffer(isize::MAX as usize + 1).is_none());
    assert_eq!(buffer(8).map(|b| b.capacity() >= 8), Some(true));
}
}
