//! Replays the `v6_codec` fuzz corpus and artifacts through the target's checks, and checks
//! that the committed seeds are the constructed vectors (`write_seeds` writes them).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "../../fuzz/fuzz_targets/v6_checks.rs"]
mod v6_checks;

#[path = "common/fuzz_inputs.rs"]
mod fuzz_inputs;

#[path = "common/v6_vectors.rs"]
mod v;

use fuzz_inputs::{fuzz_dir, inputs};

#[test]
fn corpus_and_vectors_pass_the_checks() {
    let files = inputs(&["v6_codec"]);
    for (path, data) in &files {
        if std::panic::catch_unwind(|| v6_checks::check_v6(data)).is_err() {
            panic!("failing input {}", path.display());
        }
    }
    for (_, bytes) in v::all() {
        v6_checks::check_v6(&bytes);
        // Every prefix of a valid message is handled too.
        for cut in 0..bytes.len() {
            v6_checks::check_v6(&bytes[..cut]);
        }
    }
    // The whole set as one stream.
    v6_checks::check_v6(
        &v::all()
            .into_iter()
            .flat_map(|(_, b)| b)
            .collect::<Vec<_>>(),
    );
    if fuzz_dir().join("corpus/v6_codec").is_dir() {
        assert!(files.len() >= v::all().len(), "seed corpus incomplete");
    }
}

/// `cargo test -p failover-proto --test v6_fuzz_corpus -- --ignored write_seeds`
#[test]
#[ignore = "writes fuzz/corpus/v6_codec"]
fn write_seeds() {
    let dir = fuzz_dir().join("corpus/v6_codec");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, bytes) in v::all() {
        std::fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
    }
}
