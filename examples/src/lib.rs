//! Runnable programs for the DHCP failover crates, and the library code behind them.
//!
//! * [`decode`]: the operator's decoder for failover traffic (`cargo run --example decode --
//!   FILE [--json]`), reading hex vector files and pcap/pcapng captures.
//! * [`pair`]: the two-peer failover demo (`cargo run --example pair`).
//! * [`pair6`]: the same story for DHCPv6 failover, RFC 8156 (`cargo run --example pair6`).
//! * [`peer`]: a standalone failover peer (`cargo run --example peer -- --help`).
//! * [`dhcp_server`]: a DHCPv4 server with failover (`cargo run --example dhcp-server --
//!   --help`).
//! * [`admin`]: the `--admin` HTTP endpoints of `peer` and `dhcp-server` (Prometheus
//!   `/metrics`, JSON `/status`, `POST /partner-down`).
//! * [`console`]: timestamped output and argument parsing shared by `pair` and `peer`.

#[path = "../decode/mod.rs"]
pub mod decode;

#[path = "../admin/mod.rs"]
pub mod admin;
#[path = "../console/mod.rs"]
pub mod console;
#[path = "../dhcp_server/mod.rs"]
pub mod dhcp_server;
#[path = "../pair/mod.rs"]
pub mod pair;
#[path = "../pair6/mod.rs"]
pub mod pair6;
#[path = "../peer/mod.rs"]
pub mod peer;
