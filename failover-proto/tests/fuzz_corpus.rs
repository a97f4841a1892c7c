//! Replays the committed fuzz corpus and crash artifacts (`fuzz/corpus/**`, `fuzz/artifacts/**`)
//! through the fuzz targets' checks, so that every input the fuzzers found interesting, and
//! every input that once crashed, is re-checked by a plain `cargo test` on stable Rust.
//!
//! The checks are the fuzz targets' own file, compiled in here unchanged.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../../fuzz/fuzz_targets/checks.rs"]
mod checks;

#[path = "common/fuzz_inputs.rs"]
mod fuzz_inputs;

use std::panic;

use fuzz_inputs::{fuzz_dir, inputs};

fn replay(targets: &[&str]) -> usize {
    let mut failures = Vec::new();
    let mut count = 0;
    for (path, data) in inputs(targets) {
        count += 1;
        for (name, check) in [
            ("check_frame", checks::check_frame as fn(&[u8])),
            ("check_message", checks::check_message as fn(&[u8])),
        ] {
            if panic::catch_unwind(|| check(&data)).is_err() {
                failures.push(format!("{name}({})", path.display()));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "failing inputs:\n{}",
        failures.join("\n")
    );
    count
}

#[test]
fn corpus_and_artifacts_pass_both_checks() {
    let n = replay(&["frame", "message"]);
    eprintln!("replayed {n} fuzz inputs through check_frame and check_message");
    // The seed corpus is committed: an empty replay means the paths are wrong.
    if fuzz_dir().join("corpus").is_dir() {
        assert!(n > 0, "fuzz/corpus exists but holds no input");
    }
}

#[test]
fn handmade_streams_pass_both_checks() {
    // Independent of the committed files: a CONTACT alone, then two CONTACTs followed by the
    // length field of a 2049-byte message, which both framers must reject at offset 24.
    let contact = [0x00, 0x0c, 0x0b, 0x0c, 0, 0, 0, 0, 0, 0, 0, 1];
    checks::check_message(&contact);
    checks::check_frame(&contact);
    let mut stream = contact.to_vec();
    stream.extend_from_slice(&contact);
    stream.extend_from_slice(&[0x08, 0x01, 0x0b]);
    checks::check_frame(&stream);
    checks::check_message(&stream);
    let errors: Vec<_> = failover_proto::Frames::new(&stream)
        .filter_map(Result::err)
        .map(|e| e.offset())
        .collect();
    assert_eq!(errors, [24]);
}
