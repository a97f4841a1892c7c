//! Replays the committed corpus and crash artifacts of the `engine` fuzz target
//! (`fuzz/corpus/engine/**`, `fuzz/artifacts/engine/**`) through its checks, so that every
//! input the fuzzer found interesting, and every input that once failed, is re-checked by a
//! plain `cargo test` on stable Rust. The checks are the fuzz target's own file, compiled in
//! here unchanged.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

#[path = "../../fuzz/fuzz_targets/engine_checks.rs"]
mod engine_checks;

#[path = "../../failover-proto/tests/common/fuzz_inputs.rs"]
mod fuzz_inputs;

use std::fs;
use std::panic;

use engine_checks::{Outcome, check_engine, decode, encode, run, seeds};
use failover_fsm::{Link, ServerState};
use fuzz_inputs::{fuzz_dir, inputs};

#[test]
fn corpus_and_artifacts_pass_the_engine_checks() {
    let root = fuzz_dir();
    let mut failures = Vec::new();
    let mut count = 0;
    let mut outcomes = Vec::new();
    for (path, data) in inputs(&["engine"]) {
        count += 1;
        match panic::catch_unwind(|| {
            let (setup, steps) = decode(&data);
            run(&setup, &steps)
        }) {
            Ok(o) => outcomes.push(o),
            Err(_) => failures.push(path.display().to_string()),
        }
    }
    assert!(
        failures.is_empty(),
        "failing inputs:\n{}",
        failures.join("\n")
    );
    eprintln!("replayed {count} engine fuzz inputs");
    // The corpus is committed: an empty replay means the paths are wrong.
    if root.join("corpus/engine").is_dir() {
        assert!(count > 0, "fuzz/corpus/engine exists but holds no input");
        // The corpus is not degenerate: runs end in many states, with bindings flowing
        // both ways.
        let mut states: Vec<ServerState> = outcomes.iter().map(|o| o.state).collect();
        states.sort();
        states.dedup();
        eprintln!("final states: {states:?}");
        assert!(states.len() >= 5, "the corpus ends in {states:?} only");
        assert!(outcomes.iter().any(|o| o.acked > 0 && o.link == Link::Up));
        assert!(outcomes.iter().any(|o| o.accepted_sent > 0));
    }
}

fn seed(name: &str) -> Outcome {
    let (_, data) = seeds().into_iter().find(|(n, _)| *n == name).unwrap();
    let (setup, steps) = decode(&data);
    run(&setup, &steps)
}

#[test]
fn seeds_decode_to_what_they_encode() {
    for (name, data) in seeds() {
        let (setup, steps) = decode(&data);
        assert_eq!(
            encode(&setup, &steps),
            data,
            "seed {name} does not round-trip"
        );
        assert!(
            steps.len() > 5,
            "seed {name} decodes to {} steps",
            steps.len()
        );
    }
}

#[test]
fn seeds_reach_the_deep_states() {
    // The scripted partner gets a returning primary to NORMAL, and updates flow both ways.
    let o = seed("primary-normal");
    assert_eq!((o.state, o.link), (ServerState::Normal, Link::Up), "{o:?}");
    assert!(o.acked >= 4, "{o:?}");
    assert_eq!(o.accepted_sent, 1, "{o:?}");

    let o = seed("secondary-normal");
    assert_eq!((o.state, o.link), (ServerState::Normal, Link::Up), "{o:?}");
    assert_eq!(o.accepted_sent, 1, "{o:?}");

    // A brand-new primary leaves RECOVER once its UPDREQALL is answered.
    let o = seed("primary-recover");
    assert_ne!(o.state, ServerState::Recover, "{o:?}");
    assert_ne!(o.state, ServerState::Startup, "{o:?}");

    // PARTNER-DOWN by the operator, then the partner recovers: back to NORMAL.
    let o = seed("secondary-partner-down");
    assert_eq!(o.partner_state, Some(ServerState::RecoverDone), "{o:?}");
    assert_eq!((o.state, o.link), (ServerState::Normal, Link::Up), "{o:?}");
    assert!(o.acked >= 1, "{o:?}");

    let o = seed("shutdown-restart");
    assert!(o.messages_sent > 0, "{o:?}");
}

#[test]
fn short_and_empty_inputs_pass() {
    check_engine(&[]);
    check_engine(&[1]);
    check_engine(&[0xff; 64]);
    check_engine(&[0; 300]);
}

/// Writes the seeds into `fuzz/corpus/engine/` (named `seed-<name>`):
/// `cargo test -p failover-fsm --test fuzz_engine_corpus -- --ignored write_seeds`.
#[test]
#[ignore = "writes into fuzz/corpus/engine"]
fn write_seeds() {
    let dir = fuzz_dir().join("corpus/engine");
    fs::create_dir_all(&dir).unwrap();
    for (name, data) in seeds() {
        fs::write(dir.join(format!("seed-{name}")), data).unwrap();
    }
}
