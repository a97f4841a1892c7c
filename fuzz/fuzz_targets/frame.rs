//! Fuzz target: an arbitrary TCP byte stream through `Frames` and `Framer`.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "checks.rs"]
mod checks;

fuzz_target!(|data: &[u8]| checks::check_frame(data));
