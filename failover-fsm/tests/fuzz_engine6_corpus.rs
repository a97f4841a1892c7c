//! Replays the `engine6` fuzz target's checks (`fuzz/fuzz_targets/engine6_checks.rs`, compiled
//! in here unchanged) on its hand-made seeds, its committed corpus and crash artifacts
//! (`fuzz/corpus/engine6/**`, `fuzz/artifacts/engine6/**`), and 2,000 inputs of a fixed
//! pseudo-random generator, so that a plain `cargo test` on stable Rust re-checks them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

#[path = "../../fuzz/fuzz_targets/engine6_checks.rs"]
mod engine6_checks;

#[path = "../../failover-proto/tests/common/fuzz_inputs.rs"]
mod fuzz_inputs;

use engine6_checks::{check_engine6, run, seeds};
use fuzz_inputs::inputs;

#[test]
fn seeds_reach_what_they_are_for() {
    for (name, setup, steps) in seeds() {
        let o = run(&setup, &steps);
        assert!(o.messages_sent > 0, "{name}: {o:?}");
        match name {
            "bindings_secondary" => {
                assert!(
                    o.bndreplies_sent >= 1 && o.bndupds_sent >= 2,
                    "{name}: {o:?}"
                );
                assert!(o.reached_normal, "{name}: {o:?}");
            }
            "primary_sends" => assert!(o.bndupds_sent >= 2, "{name}: {o:?}"),
            _ => {}
        }
    }
}

#[test]
fn corpus_artifacts_and_generated_inputs_pass_the_checks() {
    let mut count = 0;
    for (path, data) in inputs(&["engine6"]) {
        count += 1;
        if std::panic::catch_unwind(|| check_engine6(&data)).is_err() {
            panic!("{} fails the engine6 checks", path.display());
        }
    }
    // SplitMix64: the same 2,000 inputs every run.
    let mut x: u64 = 0x5eed_0006;
    let mut next = || {
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    for _ in 0..2_000 {
        let len = (next() % 600) as usize;
        let data: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        check_engine6(&data);
        count += 1;
    }
    assert!(count >= 2_000);
}
