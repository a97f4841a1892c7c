//! Fuzz target: arbitrary bytes as one RFC 8156 message (and as a stream), through
//! `v6::Repr::parse`, `emit` and the v6 framer.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "v6_checks.rs"]
mod v6_checks;

fuzz_target!(|data: &[u8]| v6_checks::check_v6(data));
