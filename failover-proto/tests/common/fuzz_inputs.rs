//! The committed fuzz inputs (`fuzz/corpus/<target>/**`, `fuzz/artifacts/<target>/**`), for the
//! tests that replay them: failover-proto's and failover-fsm's include this file with `#[path]`.
#![allow(dead_code, clippy::expect_used)]

use std::fs;
use std::path::{Path, PathBuf};

/// The fuzz package's folder.
pub(crate) fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// Every input of the fuzz `targets` (corpus and artifacts), sorted by path. Dotfiles are not
/// inputs; a file that vanishes while listed (a fuzzer minimising next door) is skipped.
pub(crate) fn inputs(targets: &[&str]) -> Vec<(PathBuf, Vec<u8>)> {
    let root = fuzz_dir();
    let mut paths = Vec::new();
    for target in targets {
        for kind in ["corpus", "artifacts"] {
            let mut todo = vec![root.join(kind).join(target)];
            while let Some(d) = todo.pop() {
                let Ok(entries) = fs::read_dir(&d) else {
                    continue;
                };
                for entry in entries {
                    let path = entry.expect("directory entry").path();
                    if path.is_dir() {
                        todo.push(path);
                    } else if !path
                        .file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
                    {
                        paths.push(path);
                    }
                }
            }
        }
    }
    paths.sort();
    paths
        .into_iter()
        .filter_map(|p| fs::read(&p).ok().map(|data| (p, data)))
        .collect()
}
