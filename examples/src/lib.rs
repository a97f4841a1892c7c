//! Runnable programs for the DHCP failover crates, and the library code behind them.
//!
//! * [`decode`]: the operator's decoder for failover traffic (`cargo run --example decode --
//!   FILE [--json]`), reading hex vector files and pcap/pcapng captures.

#[path = "../decode/mod.rs"]
pub mod decode;
