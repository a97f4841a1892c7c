//! Runnable programs: see `cargo run --example decode`.
