//! The `pair` fuzz target: one run of the deterministic two-server simulator whose every
//! choice is read from the input.
//!
//! Plain Rust over the simulator of failover-testkit (`failover-testkit/src/`), so that the
//! same file is compiled into the fuzz target and into failover-fsm's replay test
//! `tests/fuzz_pair_corpus.rs`. Both import the kit's modules at their crate root under the
//! names this file uses (`use failover_testkit::{rng, world};`), and include this file next to
//! them.
//!
//! The input is a tape ([`Rng::from_tape`]): the run's choices — the configuration (dialect,
//! MCLT, lease time, pool, clients, timers, windows, load balancing, auto-partner-down,
//! storage latency, clock skews), then, in the order the run makes them, client arrivals and
//! requests, latencies, storage delays, and the faults (breaks, partitions, latency spikes,
//! crashes with or without storage, orderly stops, operator PARTNER-DOWN, a bad clock) with
//! their times — each take the next one to eight bytes of the input. When the input runs out,
//! SplitMix64 seeded with a hash of the input makes the rest, so every input is a complete
//! run. The fault phase is [`FAULT_SECS`] virtual seconds (the simulator's tests run 900),
//! then the quiet tail and the settling phase as usual; the simulator's invariants are
//! checked after every step and a violation panics (see `failover-testkit/src/check.rs`:
//! no address bound to two clients, no acknowledged binding lost, the MCLT rule, the pair
//! settling in NORMAL with agreeing lease tables).
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;

use crate::rng::Rng;
use crate::world::World;

/// Virtual seconds of the fault phase: short, so that one execution is fast.
pub const FAULT_SECS: u64 = 240;

/// Steps before a run counts as a runaway loop (a 240-second run takes a few thousand).
pub const MAX_STEPS: u64 = 300_000;

/// One run of the input as a tape, with the simulator's log written to `log`; panics on a
/// violated invariant (the message starts `seed <hash of the input>`).
pub fn run_pair(data: &[u8], log: Option<Box<dyn Write>>) -> World {
    let mut w = World::with_rng(Rng::tape_hash(data), Rng::from_tape(data), FAULT_SECS, log);
    w.run(MAX_STEPS);
    w
}

/// [`run_pair`] without a log, on a thread with a large stack (two engines are a few hundred
/// kilobytes each, and unoptimised builds copy them around).
pub fn check_pair(data: &[u8]) {
    let data = data.to_vec();
    on_big_stack(move || {
        run_pair(&data, None);
    });
}

/// Runs `f` on a thread with a 256 MiB stack (reserved, not touched) and passes its panic on.
pub fn on_big_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let h = std::thread::Builder::new()
        .stack_size(256 << 20)
        .spawn(f)
        .expect("spawn the simulation thread");
    match h.join() {
        Ok(v) => v,
        Err(p) => std::panic::resume_unwind(p),
    }
}

/// The tape that replays seed `seed` of this target's run (`World::new(seed, FAULT_SECS, _)`)
/// choice for choice, as far as [`crate::rng::MAX_TAPE`] bytes reach; with the run's step
/// count and digest.
pub fn tape_of_seed(seed: u64) -> (Vec<u8>, u64, u64) {
    let mut w = World::with_rng(seed, Rng::recording(seed), FAULT_SECS, None);
    w.run(MAX_STEPS);
    (w.rng.take_record(), w.stats.steps, w.digest)
}
