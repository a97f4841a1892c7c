//! Fuzz target: the failover engine driven by arbitrary inputs (transport, commands, time, and
//! partner messages from typed values or raw bytes), with its invariants checked after every
//! step. See `engine_checks.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "engine_checks.rs"]
mod engine_checks;

fuzz_target!(|data: &[u8]| engine_checks::check_engine(data));
