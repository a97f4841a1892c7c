//! A global allocator that counts allocations while counting is switched on: the zero-heap
//! tests of failover-proto and failover-fsm include it with `#[path]` and install it.
#![allow(unsafe_code, dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Forwards to the system allocator and counts the `alloc`/`realloc` calls of the thread that
/// switched counting on, while it is on. (The test harness's own threads allocate at times of
/// their choosing; counting them made the zero-heap tests fail under load.)
pub(crate) struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
/// The counting thread, as the address of its `MARK`.
static COUNTING_THREAD: AtomicUsize = AtomicUsize::new(0);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    // Constant-initialised and without a destructor: reading its address never allocates.
    static MARK: u8 = const { 0 };
}

fn this_thread() -> usize {
    MARK.with(|m| std::ptr::from_ref(m) as usize)
}

fn counted() -> bool {
    COUNTING.load(Ordering::SeqCst) && COUNTING_THREAD.load(Ordering::SeqCst) == this_thread()
}

// SAFETY: forwards to the system allocator unchanged; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if counted() {
            ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        }
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if counted() {
            ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        }
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Switches counting on or off.
pub(crate) fn counting(on: bool) {
    COUNTING_THREAD.store(this_thread(), Ordering::SeqCst);
    COUNTING.store(on, Ordering::SeqCst);
}

/// Allocations counted so far, reset to zero.
pub(crate) fn take_count() -> usize {
    ALLOCATIONS.swap(0, Ordering::SeqCst)
}

/// Checks the counter works: one Box while counting is one allocation.
pub(crate) fn self_test() {
    take_count();
    counting(true);
    drop(std::hint::black_box(Box::new(1u64)));
    counting(false);
    assert_eq!(take_count(), 1, "the counting allocator is not installed");
}
