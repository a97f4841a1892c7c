//! Decoding, framing and encoding every captured message performs no heap allocation.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

use failover_proto::{Framer, Repr, hash};

#[path = "common/counting_alloc.rs"]
mod counting_alloc;

use counting_alloc::{Counting, counting, self_test, take_count};

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

    self_test();

    counting(true);
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
    counting(false);

    assert_eq!(take_count(), 0, "heap allocations");
    assert_eq!(decoded, msgs.len() - 3);
    assert_eq!(framed, stream.len());
    assert!(bindings > 500 && buckets > 0);
}
