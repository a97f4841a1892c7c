//! Fuzz target: two failover engines in the deterministic simulator, with the run's every
//! choice (configuration, DHCP clients, latencies, storage delays and the fault schedule) read
//! from the input, and the simulator's invariants checked after every step — no address bound
//! to two clients, no acknowledged binding lost, the MCLT rule, the pair settling afterwards.
//! See `pair_checks.rs`.
#![no_main]
// As in the simulator's own test crate (failover-fsm/tests/sim.rs).
#![allow(clippy::needless_range_loop)]

use libfuzzer_sys::fuzz_target;

// The simulator's files, under the module names they refer to each other by (`crate::world`,
// `crate::support`, ...). Its regression tests (`regress.rs`) are left out.
#[allow(dead_code)]
#[path = "../../failover-fsm/tests/sim/check.rs"]
mod check;
#[allow(dead_code)]
#[path = "../../failover-fsm/tests/sim/client.rs"]
mod client;
#[allow(dead_code)]
#[path = "../../failover-fsm/tests/sim/faults.rs"]
mod faults;
#[allow(dead_code)]
#[path = "../../failover-fsm/tests/sim/rng.rs"]
mod rng;
// (Its own inner attribute allows dead code.)
#[path = "../../failover-fsm/tests/support/mod.rs"]
mod support;
#[allow(dead_code)]
#[path = "../../failover-fsm/tests/sim/world.rs"]
mod world;

#[path = "pair_checks.rs"]
mod pair_checks;

// On libFuzzer's own thread: an optimised build needs no big stack (the replay test, built
// without optimisation, runs each input on a thread with a 256 MiB one).
fuzz_target!(|data: &[u8]| {
    pair_checks::run_pair(data, None);
});
