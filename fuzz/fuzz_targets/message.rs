//! Fuzz target: arbitrary bytes as one failover message, through `Repr::parse` and `emit`.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "checks.rs"]
mod checks;

fuzz_target!(|data: &[u8]| checks::check_message(data));
