//! Sizes of the codec's main types, recorded in `BENCHMARKS.md`.
//!
//! `cargo test -p failover-benches --test sizes -- --nocapture` prints them. The bounds catch a
//! type growing by accident (a buffer or a large array slipping into a value that is copied
//! around per message).

use core::mem::size_of;

use failover_proto::{Binding, BndUpd, Connect, DecodeError, Framer, MAX_MESSAGE_LEN, Repr};

#[test]
fn type_sizes() {
    let sizes = [
        ("Repr", size_of::<Repr<'_>>()),
        ("BndUpd", size_of::<BndUpd<'_>>()),
        ("Binding", size_of::<Binding<'_>>()),
        ("Connect", size_of::<Connect<'_>>()),
        ("Framer", size_of::<Framer>()),
        ("DecodeError", size_of::<DecodeError>()),
    ];
    for (name, size) in sizes {
        println!("size_of::<{name}>() = {size}");
    }
    // A parsed message borrows its bytes: none of these may hold a copy of a message.
    assert!(size_of::<Repr<'_>>() <= 256);
    assert!(size_of::<BndUpd<'_>>() <= 128);
    assert!(size_of::<Binding<'_>>() <= 256);
    assert!(size_of::<Connect<'_>>() <= 256);
    // An error is returned by value on every failure path, and an engine event carries one:
    // 16 bytes (its offsets in four bytes each).
    assert!(size_of::<DecodeError>() <= 16);
    // The framer owns exactly one maximum-size message buffer plus a few counters.
    assert!(size_of::<Framer>() >= MAX_MESSAGE_LEN);
    assert!(size_of::<Framer>() <= MAX_MESSAGE_LEN + 64);
    // Repr is an enum over the typed messages: it is at least as large as the largest of them.
    assert!(size_of::<Repr<'_>>() >= size_of::<Connect<'_>>());
}

/// The engine's RAM. It holds no binding: the outgoing queue keeps an address and a summary
/// (64 bytes a slot), the binding is read from the caller's store when it is sent, and the
/// partner's bindings go to the caller while their BNDUPD is read. Issue 14: `Engine<16, 16,
/// 16>` — a window of 16 each way — at 4 KiB or less.
#[test]
fn engine_sizes() {
    use failover_fsm::engine::V6;
    use failover_fsm::{Counters, Engine, Status};
    let sizes = [
        ("Counters", size_of::<Counters>()),
        ("Status", size_of::<Status>()),
        ("Engine<16, 16, 16>", size_of::<Engine<16, 16, 16>>()),
        ("Engine<64, 32, 32>", size_of::<Engine<64, 32, 32>>()),
        ("Engine (256, 128, 64)", size_of::<Engine>()),
        (
            "Engine<16, 16, 16, V6>",
            size_of::<Engine<16, 16, 16, V6>>(),
        ),
    ];
    for (name, size) in sizes {
        println!("size_of::<{name}>() = {size}");
    }
    // The operator's counters (issue 13) are 54 `u32`s in the engine: 8 plain counters and
    // the reject-reasons 0..=21 plus one for the rest, in each direction.
    assert_eq!(size_of::<Counters>(), 54 * 4);
    // Guards against growth beyond what is recorded in BENCHMARKS.md.
    assert!(size_of::<Engine<16, 16, 16>>() <= 4 * 1024);
    assert!(size_of::<Engine<64, 32, 32>>() <= 10 * 1024);
    assert!(size_of::<Engine>() <= 32 * 1024);
    assert!(size_of::<failover_fsm::Event>() <= 16);
    // An RFC 8156 engine keeps each received BNDUPD whole until its BNDREPLY echoes it
    // (`MAX_ECHO` bytes a slot of COMMITS): the v4 engine's size plus that, no more.
    let echoes = 16 * (failover_fsm::engine::MAX_ECHO + 16);
    assert!(size_of::<Engine<16, 16, 16, V6>>() <= size_of::<Engine<16, 16, 16>>() + echoes + 64);
}
