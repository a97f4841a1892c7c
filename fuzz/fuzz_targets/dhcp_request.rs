//! Fuzz target: arbitrary bytes as one datagram to the `dhcp-server` example's UDP port,
//! through its request parser and, for what it accepts, every reply it can build.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "dhcp_checks.rs"]
mod dhcp_checks;

fuzz_target!(|data: &[u8]| dhcp_checks::check_dhcp_request(data));
