//! Fuzz target: two failover engines in the deterministic simulator, with the run's every
//! choice (configuration, DHCP clients, latencies, storage delays and the fault schedule) read
//! from the input, and the simulator's invariants checked after every step — no address bound
//! to two clients, no acknowledged binding lost, the MCLT rule, the pair settling afterwards.
//! See `pair_checks.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

// The simulator (failover-testkit), under the module names `pair_checks.rs` uses
// (`crate::rng`, `crate::world`).
use failover_testkit::{rng, world};

#[path = "pair_checks.rs"]
mod pair_checks;

// On libFuzzer's own thread: an optimised build needs no big stack (the replay test, built
// without optimisation, runs each input on a thread with a 256 MiB one).
fuzz_target!(|data: &[u8]| {
    pair_checks::run_pair(data, None);
});
