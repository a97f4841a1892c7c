//! Decoding, framing and encoding every captured message performs no heap allocation.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]
// A global allocator is unsafe to implement; this test binary is the only place the repo does.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use failover_proto::{Framer, Repr, hash};

/// Counts allocations made while `COUNTING` is set (by any thread: the test runs alone in this
/// binary).
struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::SeqCst) {
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
        if COUNTING.load(Ordering::SeqCst) {
            ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        }
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[path = "common/vectors.rs"]
mod loader;

fn vectors() -> Vec<Vec<u8>> {
    loader::SCENARIOS
        .iter()
        .flat_map(|name| loader::load(name))
        .map(|line| line.bytes)
        .collect()
}

#[test]
fn codec_never_allocates() {
    let msgs = vectors();
    assert_eq!(msgs.len(), 1241);
    let stream: Vec<u8> = msgs.iter().flatten().copied().collect();
    let mut out = vec![0u8; 2048];
    let mut framer = Box::new(Framer::new());

    // The counter sees allocations: one Box while counting is one allocation.
    COUNTING.store(true, Ordering::SeqCst);
    drop(std::hint::black_box(Box::new(1u64)));
    COUNTING.store(false, Ordering::SeqCst);
    assert_eq!(ALLOCATIONS.swap(0, Ordering::SeqCst), 1);

    COUNTING.store(true, Ordering::SeqCst);
    let mut decoded = 0usize;
    let mut bindings = 0usize;
    let mut buckets = 0u32;
    for m in &msgs {
        if let Ok(repr) = Repr::parse(m) {
            if let Repr::BndUpd(u) = &repr {
                for b in u.bindings.iter() {
                    bindings += 1;
                    if let Some(hw) = b.hardware_address {
                        buckets += u32::from(hash::client_bucket(b.client_identifier, hw.address));
                    }
                }
            }
            let n = repr.emit(&mut out).unwrap();
            assert_eq!(&out[..n], &m[..]);
            decoded += 1;
        }
    }
    let mut framed = 0usize;
    for piece in stream.chunks(1460) {
        let mut input = piece;
        while let Some(msg) = framer.next_message(&mut input).unwrap() {
            framed += msg.len();
        }
    }
    COUNTING.store(false, Ordering::SeqCst);

    assert_eq!(ALLOCATIONS.load(Ordering::SeqCst), 0, "heap allocations");
    assert_eq!(decoded, msgs.len() - 3);
    assert_eq!(framed, stream.len());
    assert!(bindings > 500 && buckets > 0);
}
