//! Fuzz target: one RFC 8156 engine (`Engine<_, _, _, V6>`) driven by arbitrary steps, its
//! properties checked after every step. See `engine6_checks.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "engine6_checks.rs"]
mod engine6_checks;

fuzz_target!(|data: &[u8]| engine6_checks::check_engine6(data));
