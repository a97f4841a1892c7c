//! The RFC 8156 codec performs no heap allocation: decoding (with the lazy lists walked),
//! encoding, and framing every constructed message.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

use failover_proto::v6::{Binding, Framer, Repr};

#[path = "common/counting_alloc.rs"]
mod counting_alloc;

#[path = "common/v6_vectors.rs"]
mod v;

use counting_alloc::{Counting, counting, self_test, take_count};

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn v6_codec_never_allocates() {
    let msgs: Vec<Vec<u8>> = v::all().into_iter().map(|(_, b)| b).collect();
    let stream: Vec<u8> = msgs.concat();
    let mut out = vec![0u8; 4096];
    let mut framer = Box::new(Framer::new());
    let mut small = Box::new(Framer::<600>::with_capacity());

    self_test();

    counting(true);
    let mut leases = 0usize;
    for m in &msgs {
        let repr = Repr::parse(m).unwrap();
        if let Repr::BndUpd(u) = &repr {
            if let Binding::Client(c) = u.binding {
                for ia in c.ias.iter() {
                    leases += ia
                        .leases
                        .iter()
                        .filter(|l| l.binding_status.is_some())
                        .count();
                }
            }
        }
        let n = repr.emit(&mut out).unwrap();
        assert_eq!(&out[..n], &m[..]);
    }
    let mut framed = 0usize;
    for size in [7usize, 1460] {
        framer.reset();
        for piece in stream.chunks(size) {
            let mut input = piece;
            while let Some(msg) = framer.next_message(&mut input).unwrap() {
                framed += msg.len();
            }
        }
    }
    for piece in stream.chunks(100) {
        let mut input = piece;
        while let Some(msg) = small.next_message(&mut input).unwrap() {
            framed += msg.len();
        }
    }
    counting(false);

    assert_eq!(take_count(), 0, "heap allocations");
    assert_eq!(framed, 3 * stream.len());
    assert!(leases >= 5);
}
