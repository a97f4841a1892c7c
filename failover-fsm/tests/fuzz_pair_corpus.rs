//! Replays the committed corpus and crash artifacts of the `pair` fuzz target
//! (`fuzz/corpus/pair/**`, `fuzz/artifacts/pair/**`): each file is a tape of choices for one
//! run of the simulator (see `fuzz/fuzz_targets/pair_checks.rs`), with the simulator's
//! invariants checked after every step. The simulator comes from failover-testkit and the
//! target's file is compiled in here unchanged, on stable Rust.
//!
//! * `cargo test -p failover-fsm --test fuzz_pair_corpus`: every file.
//! * `PAIR_INPUT=fuzz/artifacts/pair/crash-... cargo test -p failover-fsm --test
//!   fuzz_pair_corpus -- --nocapture`: that one file (a path relative to the workspace root or
//!   absolute) with the simulator's full event log on stderr.
//! * `cargo test -p failover-fsm --test fuzz_pair_corpus -- --ignored write_seeds`: writes the
//!   seed inputs into `fuzz/corpus/pair/`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::needless_range_loop,
    missing_docs
)]

// The simulator, under the module names `pair_checks.rs` uses (`crate::rng`, `crate::world`).
use failover_testkit::{rng, world};

#[path = "../../fuzz/fuzz_targets/pair_checks.rs"]
mod pair_checks;

#[path = "../../failover-proto/tests/common/fuzz_inputs.rs"]
mod fuzz_inputs;

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, BufWriter};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use failover_fsm::Dialect;
use fuzz_inputs::{fuzz_dir, inputs};
use pair_checks::{FAULT_SECS, check_pair, on_big_stack, run_pair, tape_of_seed};
use rng::{MAX_TAPE, Rng};
use world::World;

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_string()))
        .unwrap_or_else(|| "non-string panic".into())
}

/// What a passing run did, for the not-degenerate check.
struct Summary {
    draft: bool,
    grants: u64,
    acked: u64,
    faults: Vec<&'static str>,
    tape_used: usize,
}

/// Replays `data` with the log in a file; returns the file and its last lines.
fn replay_to_file(name: &str, data: &[u8]) -> (PathBuf, String) {
    let path = std::env::temp_dir().join(format!("failover-pair-{name}.log"));
    if let Ok(f) = fs::File::create(&path) {
        let data = data.to_vec();
        let _ = on_big_stack(move || {
            let out: Box<dyn std::io::Write> = Box::new(BufWriter::new(f));
            catch_unwind(AssertUnwindSafe(|| {
                run_pair(&data, Some(out));
            }))
            .is_ok()
        });
    }
    let lines: Vec<String> = fs::File::open(&path)
        .map(|f| BufReader::new(f).lines().map_while(Result::ok).collect())
        .unwrap_or_default();
    let tail = lines[lines.len().saturating_sub(40)..].join("\n");
    (path, tail)
}

#[test]
fn corpus_and_artifacts_pass_the_simulator_invariants() {
    if let Ok(one) = std::env::var("PAIR_INPUT") {
        replay_one(&one);
        return;
    }
    let mut failures = Vec::new();
    let mut runs = Vec::new();
    let mut count = 0;
    for (path, data) in inputs(&["pair"]) {
        count += 1;
        let d = data.clone();
        let outcome = on_big_stack(move || {
            catch_unwind(AssertUnwindSafe(|| {
                let w = run_pair(&d, None);
                summary(&w)
            }))
            .map_err(|p| panic_text(&*p))
        });
        match outcome {
            Ok(s) => runs.push(s),
            Err(what) => {
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                let (log, tail) = replay_to_file(&name, &data);
                failures.push(format!(
                    "{}: {what}\n--- last lines of {} ---\n{tail}",
                    path.display(),
                    log.display()
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "failing inputs (replay one with PAIR_INPUT=<file> cargo test -p failover-fsm --test \
         fuzz_pair_corpus -- --nocapture):\n{}",
        failures.join("\n\n")
    );
    eprintln!("replayed {count} pair fuzz inputs");
    if fuzz_dir().join("corpus/pair").is_dir() {
        // The corpus is committed: an empty replay means the paths are wrong. It is not
        // degenerate: both dialects, leases granted and bindings acknowledged in most runs,
        // many kinds of fault, and some inputs long enough to steer the faults too.
        assert!(count >= 10, "fuzz/corpus/pair holds {count} inputs");
        assert!(runs.iter().any(|s| s.draft) && runs.iter().any(|s| !s.draft));
        // (Not every run: a run can legitimately spend its clients' time in RECOVER-WAIT.)
        assert!(runs.iter().filter(|s| s.grants > 0).count() * 4 > runs.len() * 3);
        assert!(runs.iter().filter(|s| s.acked > 0).count() * 2 > runs.len());
        let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
        for s in &runs {
            for f in &s.faults {
                *kinds.entry(f).or_default() += 1;
            }
        }
        eprintln!("runs with each fault: {kinds:?}");
        assert!(kinds.len() >= 6, "the corpus injects only {kinds:?}");
        assert!(runs.iter().any(|s| s.tape_used >= 1000));
    }
}

fn summary(w: &World) -> Summary {
    Summary {
        draft: w.p.dialect == Dialect::Draft,
        grants: w.stats.grants,
        acked: w.stats.acked,
        faults: w.stats.faults.keys().copied().collect(),
        tape_used: w.rng.tape_used(),
    }
}

/// `PAIR_INPUT=<file>`: that input with the full log on stderr.
fn replay_one(file: &str) {
    let mut path = PathBuf::from(file);
    if path.is_relative() && !path.exists() {
        path = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(file);
    }
    let data = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let shown = path.display().to_string();
    on_big_stack(move || {
        let w = run_pair(&data, Some(Box::new(std::io::stderr())));
        eprintln!(
            "{shown}: ok, {} steps, {} virtual s, {} tape bytes read, digest {:016x}",
            w.stats.steps,
            w.now.as_millis() / 1000,
            w.rng.tape_used(),
            w.digest
        );
    });
}

#[test]
fn a_seeds_recorded_tape_replays_that_seeds_run() {
    // The tape steers every choice: a seed's choices, written down as a tape, give the same
    // run (same steps, same digest over everything that happened).
    on_big_stack(|| {
        for seed in [11u64, 12, 777] {
            let (tape, steps, digest) = tape_of_seed(seed);
            eprintln!("seed {seed}: {steps} steps, {} tape bytes", tape.len());
            assert!(tape.len() > 100, "seed {seed}: {} bytes", tape.len());
            let mut w = World::new(seed, FAULT_SECS, None);
            w.run(pair_checks::MAX_STEPS);
            assert_eq!((w.stats.steps, w.digest), (steps, digest), "seed {seed}");
            if tape.len() <= MAX_TAPE {
                let t = run_pair(&tape, None);
                assert_eq!(t.rng.tape_used(), tape.len(), "seed {seed}");
                assert_eq!((t.stats.steps, t.digest), (steps, digest), "seed {seed}");
            } else {
                // Only a prefix fits: the run follows the seed's until the tape ends.
                let t = run_pair(&tape[..MAX_TAPE], None);
                assert_eq!(t.rng.tape_used(), MAX_TAPE, "seed {seed}");
                assert_eq!(t.p.mclt, w.p.mclt);
                assert_eq!(t.p.clients, w.p.clients);
            }
        }
    });
}

#[test]
fn one_changed_byte_changes_the_run() {
    on_big_stack(|| {
        let (tape, _, digest) = tape_of_seed(11);
        let mut other = tape.clone();
        let last = other.len().min(MAX_TAPE) - 1;
        other[last] ^= 0x55;
        let a = run_pair(&tape[..=last], None);
        let b = run_pair(&other[..=last], None);
        assert_ne!(a.digest, b.digest);
        if tape.len() <= MAX_TAPE {
            assert_eq!(a.digest, digest);
        }
    });
}

#[test]
fn short_and_odd_inputs_pass() {
    check_pair(&[]);
    check_pair(&[0]);
    check_pair(&[0xff; 64]);
    check_pair(&[0; 300]);
    // Past the tape, the input's hash decides: different short inputs, different runs.
    let a = on_big_stack(|| run_pair(&[1], None).digest);
    let b = on_big_stack(|| run_pair(&[2], None).digest);
    assert_ne!(a, b);
    assert_ne!(Rng::tape_hash(&[1]), Rng::tape_hash(&[2]));
}

/// Writes the seed inputs into `fuzz/corpus/pair/`: the recorded tapes of seeds 0..6
/// (`seed-<n>`, each an ordinary run, whole as far as `MAX_TAPE` reaches), the first 256
/// bytes of those of seeds 100..118 (`head-<n>`: the configuration and the first choices of
/// an ordinary run, then the input's hash takes over), and three fixed patterns.
#[test]
#[ignore = "writes into fuzz/corpus/pair"]
fn write_seeds() {
    let dir = fuzz_dir().join("corpus/pair");
    fs::create_dir_all(&dir).unwrap();
    for (seeds, len, prefix) in [(0..6u64, MAX_TAPE, "seed"), (100..118, 256, "head")] {
        for seed in seeds {
            let (mut tape, _, _) = on_big_stack(move || tape_of_seed(seed));
            tape.truncate(len);
            fs::write(dir.join(format!("{prefix}-{seed}")), tape).unwrap();
        }
    }
    for (name, data) in [
        ("zeros-64", vec![0u8; 64]),
        ("ones-256", vec![0xffu8; 256]),
        ("count-512", (0..512u32).map(|i| i as u8).collect()),
    ] {
        fs::write(dir.join(name), data).unwrap();
    }
}
