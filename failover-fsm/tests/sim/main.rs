//! Deterministic simulation of a failover pair under seeded faults, with invariants checked
//! after every step.
//!
//! Each seed draws a configuration (dialect, MCLT, lease time, pool and client counts, timers,
//! window sizes, load balancing, auto-partner-down, storage latency, clock skews) and runs:
//! a fault phase (`SIM_SECS`, default 900 virtual seconds) where DHCP clients come and go while
//! connections break, the network partitions and stalls, servers crash (sometimes losing their
//! storage), shut down, get a wrong clock, and operators declare PARTNER-DOWN; then a quiet
//! tail; then the clients stop and the pair must settle. The simulator is failover-testkit's
//! (`failover-testkit/src/`): see `check.rs` for the invariants, `faults.rs` for the faults
//! and the assumptions they respect, `world.rs` for time, storage and the connection,
//! `client.rs` for the DHCP side. `regress.rs` next to this file pins the engine bugs it found.
//!
//! * `cargo test -p failover-fsm --test sim`: 1,000 seeds.
//! * `SIM_SEEDS=100000 SIM_FIRST=0 cargo test --release -p failover-fsm --test sim`: more.
//! * `SIM_KEEP_GOING=1`: run every seed and list the failures at the end (for long runs).
//! * `SIM_SEED=123 cargo test -p failover-fsm --test sim -- --nocapture`: replay one seed
//!   with the full event log on stderr.
//!
//! A failing seed is replayed at once with logging to `$TMPDIR/failover-sim-<seed>.log`; the
//! panic message names the seed, the step and the invariant.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::needless_range_loop,
    missing_docs
)]

mod regress;

use std::io::{BufRead, BufReader, BufWriter};
use std::panic::{AssertUnwindSafe, catch_unwind};

// The kit's modules, under the names `regress.rs` uses (`crate::support`, `crate::world`).
use failover_testkit::{support, world};
use world::{Stats, World};

const DEFAULT_SEEDS: u64 = 1000;
const DEFAULT_FAULT_SECS: u64 = 900;
const MAX_STEPS: u64 = 3_000_000;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

fn fault_secs() -> u64 {
    env_u64("SIM_SECS").unwrap_or(DEFAULT_FAULT_SECS)
}

fn run(seed: u64, log: Option<Box<dyn std::io::Write>>) -> World {
    let mut w = World::new(seed, fault_secs(), log);
    w.run(MAX_STEPS);
    w
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_string()))
        .unwrap_or_else(|| "non-string panic".into())
}

/// Replays `seed` with the log in a file and returns its path and last lines.
fn replay_to_file(seed: u64) -> (String, String) {
    let path = std::env::temp_dir().join(format!("failover-sim-{seed}.log"));
    if let Ok(f) = std::fs::File::create(&path) {
        let out: Box<dyn std::io::Write> = Box::new(BufWriter::new(f));
        let _ = catch_unwind(AssertUnwindSafe(|| run(seed, Some(out))));
    }
    let lines: Vec<String> = std::fs::File::open(&path)
        .map(|f| BufReader::new(f).lines().map_while(Result::ok).collect())
        .unwrap_or_default();
    let tail = lines[lines.len().saturating_sub(80)..].join("\n");
    (path.display().to_string(), tail)
}

#[derive(Default)]
struct Totals {
    seeds: u64,
    steps: u64,
    virtual_secs: u64,
    delivered: u64,
    grants: u64,
    pd_grants: u64,
    naks: u64,
    acked: u64,
    rejected: u64,
    alarms: u64,
    isc_only: std::collections::BTreeMap<String, u64>,
    tainted_at_end: u64,
    ended_vs_available: u64,
    overcap: u64,
    self_shutdowns: u64,
    isc_recover_to_pd: u64,
    draft: u64,
    faults: std::collections::BTreeMap<&'static str, u64>,
    states: std::collections::BTreeMap<&'static str, u64>,
}

impl Totals {
    fn add(&mut self, w: &World) {
        let s: &Stats = &w.stats;
        self.seeds += 1;
        self.steps += s.steps;
        self.virtual_secs += w.now.as_millis() / 1000;
        self.delivered += s.delivered;
        self.grants += s.grants;
        self.pd_grants += s.partner_down_grants;
        self.naks += s.naks;
        self.acked += s.acked;
        self.rejected += s.rejected;
        self.alarms += s.alarms;
        for (k, v) in &s.isc_only {
            *self.isc_only.entry(k.clone()).or_default() += v;
        }
        self.tainted_at_end += w.tainted.len() as u64;
        self.ended_vs_available += s.ended_vs_available;
        self.overcap += s.overcap;
        self.self_shutdowns += s.self_shutdowns;
        self.isc_recover_to_pd += s.isc_recover_to_pd;
        self.draft += u64::from(w.p.dialect == failover_fsm::Dialect::Draft);
        for (k, v) in &s.faults {
            *self.faults.entry(k).or_default() += v;
        }
        for (k, v) in &s.states {
            *self.states.entry(k).or_default() += v;
        }
    }
}

/// Runs `f` on a thread with a large stack (an engine is a few hundred kilobytes, and debug
/// builds copy it around).
pub(crate) fn big_stack(f: impl FnOnce() + Send + 'static) {
    let h = std::thread::Builder::new()
        .stack_size(256 << 20)
        .spawn(f)
        .unwrap();
    if let Err(p) = h.join() {
        std::panic::resume_unwind(p);
    }
}

#[test]
fn simulate_seeds() {
    big_stack(simulate);
}

fn simulate() {
    if let Some(seed) = env_u64("SIM_SEED") {
        let w = run(seed, Some(Box::new(std::io::stderr())));
        eprintln!(
            "seed {seed}: ok, {} steps, digest {:016x}",
            w.stats.steps, w.digest
        );
        return;
    }
    let first = env_u64("SIM_FIRST").unwrap_or(0);
    let n = env_u64("SIM_SEEDS").unwrap_or(DEFAULT_SEEDS);
    let keep_going = env_u64("SIM_KEEP_GOING").is_some_and(|v| v != 0);
    let started = std::time::Instant::now();
    let mut t = Totals::default();
    let mut failed: Vec<String> = Vec::new();
    for seed in first..first + n {
        match catch_unwind(AssertUnwindSafe(|| run(seed, None))) {
            Ok(w) => t.add(&w),
            Err(p) if keep_going => {
                let what = panic_text(&*p);
                eprintln!("FAILED: {what}");
                failed.push(what);
            }
            Err(p) => {
                let what = panic_text(&*p);
                let (path, tail) = replay_to_file(seed);
                panic!(
                    "simulation failed: {what}\n--- last lines of {path} ---\n{tail}\n--- \
                     replay: SIM_SEED={seed} cargo test -p failover-fsm --test sim -- --nocapture"
                );
            }
        }
    }
    eprintln!(
        "{} seeds ({} draft dialect) in {:.1} s: {} steps, {} virtual hours, {} messages, {} \
         leases granted ({} in PARTNER-DOWN, {} of them beyond the MCLT limit (unrestricted, exempt)), {} NAKs, {} bindings acked, {} rejected, {} \
         alarms, {} SHUTDOWNs the engine entered itself (process restarted)\nat the end, {} addresses ended on one side and available on the other\nISC moves from a recovery state to PARTNER-DOWN (all addresses exempt until the \
         servers agree): {}\nISC rules accepting what the draft rejects (address exempt until the servers agree; {} \
         still exempt at the end): {:?}\nfaults: {:?}\nstates entered: {:?}",
        t.seeds,
        t.draft,
        started.elapsed().as_secs_f64(),
        t.steps,
        t.virtual_secs / 3600,
        t.delivered,
        t.grants,
        t.pd_grants,
        t.overcap,
        t.naks,
        t.acked,
        t.rejected,
        t.alarms,
        t.self_shutdowns,
        t.ended_vs_available,
        t.isc_recover_to_pd,
        t.tainted_at_end,
        t.isc_only,
        t.faults,
        t.states
    );
    assert!(
        failed.is_empty(),
        "{} of {n} seeds failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
    // The simulation must actually exercise the protocol.
    assert!(t.grants > t.seeds * 10, "too few leases granted");
    assert!(t.acked > t.seeds * 10, "too few bindings acknowledged");
}

#[test]
fn same_seed_same_run() {
    big_stack(same_seed);
}

fn same_seed() {
    let a = run(11, None);
    let b = run(11, None);
    assert_eq!(a.stats.steps, b.stats.steps);
    assert_eq!(a.digest, b.digest);
    let c = run(12, None);
    assert_ne!(a.digest, c.digest);
}
