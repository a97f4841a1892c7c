//! Deterministic simulation of a DHCPv6 failover pair (RFC 8156) under seeded faults, with
//! the v6 invariants checked after every step: no address or prefix validly held by two
//! clients, nothing acknowledged lost, lifetimes within the MCLT (§4.4), and after the faults
//! both servers NORMAL with agreeing records.
//!
//! Each seed draws the MCLT (30, 60 or 120 s), the desired lifetime (2-6 MCLT), 3-12 clients
//! (half of them also asking for a delegated prefix), the pool, the receive timer and the
//! secondary's clock (within 2 s); then runs a fault phase (`SIM_SECS`, default 600 virtual
//! seconds: connection cuts, latency spikes, crashes, clocks stepped back on restart, lease
//! tables lost, operators declaring PARTNER-DOWN), a quiet phase until both servers are
//! NORMAL, and 30 s with the clients stopped before the records are compared. The simulator
//! is failover-testkit's `sim6` module: `check.rs` the invariants, `faults.rs` the faults and
//! the assumptions they respect, `client.rs` the DHCPv6 side, `server.rs` the stores.
//!
//! The same variables as the v4 simulator (`tests/sim`), read by this test only:
//! * `cargo test -p failover-fsm --test sim6`: 500 seeds (about 6 s in debug).
//! * `SIM_SEEDS=100000 SIM_FIRST=0 cargo test --release -p failover-fsm --test sim6`: more.
//! * `SIM_KEEP_GOING=1`: run every seed and list the failures at the end (for long runs;
//!   a progress line every 10,000 seeds).
//! * `SIM_SEED=123 cargo test -p failover-fsm --test sim6 -- --nocapture`: replay one seed
//!   with its trace on stderr.
//!
//! A failing seed is replayed at once with its trace in `$TMPDIR/failover-sim6-<seed>.log`;
//! the panic message names the seed, the step and the invariant.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, BufWriter};
use std::panic::{AssertUnwindSafe, catch_unwind};

use failover_testkit::sim6::World6;

const DEFAULT_SEEDS: u64 = 500;
const DEFAULT_FAULT_SECS: u64 = 600;
const MAX_STEPS: u64 = 2_000_000;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

fn run(seed: u64, log: Option<Box<dyn std::io::Write>>) -> World6 {
    let secs = env_u64("SIM_SECS").unwrap_or(DEFAULT_FAULT_SECS);
    let mut w = World6::new(seed, secs, log);
    w.run(MAX_STEPS);
    w
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_string()))
        .unwrap_or_else(|| "non-string panic".into())
}

/// Replays `seed` with its trace in a file; returns the path and the last lines.
fn replay_to_file(seed: u64) -> (String, String) {
    let path = std::env::temp_dir().join(format!("failover-sim6-{seed}.log"));
    if let Ok(f) = std::fs::File::create(&path) {
        let out: Box<dyn std::io::Write> = Box::new(BufWriter::new(f));
        let _ = catch_unwind(AssertUnwindSafe(|| run(seed, Some(out))));
    }
    let lines: Vec<String> = std::fs::File::open(&path)
        .map(|f| BufReader::new(f).lines().map_while(Result::ok).collect())
        .unwrap_or_default();
    let tail = lines[lines.len().saturating_sub(60)..].join("\n");
    (path.display().to_string(), tail)
}

#[derive(Default, Debug)]
struct Totals {
    seeds: u64,
    steps: u64,
    virtual_secs: u64,
    messages: u64,
    grants: u64,
    renewals: u64,
    prefix_grants: u64,
    partner_down_grants: u64,
    refusals: u64,
    releases: u64,
    expiries: u64,
    acked: u64,
    rejected: u64,
    rejects: BTreeMap<String, u64>,
    max_settle_secs: u64,
    stale_at_end: u64,
    held_not_active: u64,
    refreshed_checked: u64,
    kept_later_expiration: u64,
    lost_at_end: u64,
    faults: BTreeMap<&'static str, u64>,
    states: BTreeMap<&'static str, u64>,
}

impl Totals {
    fn add(&mut self, w: &World6) {
        let s = &w.stats;
        self.seeds += 1;
        self.steps += s.steps;
        self.virtual_secs += w.now.as_millis() / 1000;
        self.messages += s.messages;
        self.grants += s.grants;
        self.renewals += s.renewals;
        self.prefix_grants += s.prefix_grants;
        self.partner_down_grants += s.partner_down_grants;
        self.refusals += s.refusals;
        self.releases += s.releases;
        self.expiries += s.expiries;
        self.acked += s.acked;
        self.rejected += s.rejected;
        for (k, v) in &s.rejects {
            *self.rejects.entry(k.clone()).or_default() += v;
        }
        self.stale_at_end += s.stale_at_end;
        self.held_not_active += s.held_not_active;
        self.refreshed_checked += s.refreshed_checked;
        self.kept_later_expiration += s.kept_later_expiration;
        self.lost_at_end += s.lost_at_end;
        self.max_settle_secs = self.max_settle_secs.max(s.settle_secs);
        for (k, v) in &s.faults {
            *self.faults.entry(k).or_default() += v;
        }
        for (k, v) in &s.states {
            *self.states.entry(k).or_default() += v;
        }
    }

    fn print(&self, secs: f64, failed: usize) {
        eprintln!(
            "{} seeds in {secs:.1} s, {failed} failed: {} steps, {} virtual hours, {} messages, \
             {} leases granted ({} prefixes), {} renewals, {} grants and renewals in PARTNER-DOWN, {} refusals, {} \
             releases, {} expiries, {} leases acked, {} rejected; longest quiet phase to NORMAL \
             {} s; {} ACTIVE records on one side only (held by no client) and {} held leases RELEASED / EXPIRED for their client on one side at the end; {} acknowledged leases checked after a lost table was refreshed; {} older ACTIVE ends not taken (ours sent back: Verdict::update_partner); {} leases held by no client that neither server may give out at the end\nrejections: {:?}\nfaults: {:?}\nstates entered: {:?}",
            self.seeds,
            self.steps,
            self.virtual_secs / 3600,
            self.messages,
            self.grants,
            self.prefix_grants,
            self.renewals,
            self.partner_down_grants,
            self.refusals,
            self.releases,
            self.expiries,
            self.acked,
            self.rejected,
            self.max_settle_secs,
            self.stale_at_end,
            self.held_not_active,
            self.refreshed_checked,
            self.kept_later_expiration,
            self.lost_at_end,
            self.rejects,
            self.faults,
            self.states
        );
    }
}

/// Runs `f` on a thread with a large stack (debug builds copy engines around).
fn big_stack(f: impl FnOnce() + Send + 'static) {
    let h = std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(f)
        .unwrap();
    if let Err(p) = h.join() {
        std::panic::resume_unwind(p);
    }
}

#[test]
fn simulate_v6_seeds() {
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
                     replay: SIM_SEED={seed} cargo test -p failover-fsm --test sim6 -- --nocapture"
                );
            }
        }
        if keep_going && (seed + 1 - first) % 10_000 == 0 {
            t.print(started.elapsed().as_secs_f64(), failed.len());
        }
    }
    t.print(started.elapsed().as_secs_f64(), failed.len());
    assert!(
        failed.is_empty(),
        "{} of {n} seeds failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
    // The simulation must exercise the protocol.
    assert!(t.grants > t.seeds * 3, "too few leases granted: {t:?}");
    assert!(t.acked > t.seeds * 10, "too few leases acknowledged: {t:?}");
}

#[test]
fn same_seed_same_run() {
    big_stack(|| {
        let a = run(11, None);
        let b = run(11, None);
        assert_eq!(a.stats.steps, b.stats.steps);
        assert_eq!(a.digest, b.digest);
        let c = run(12, None);
        assert_ne!(a.digest, c.digest);
    });
}
