//! The operator's decoder for DHCP failover traffic.
//!
//! ```text
//! cargo run --example decode -- FILE [--json]
//! ```
//!
//! FILE is a hex vector file or a pcap/pcapng capture; see [`failover_examples::decode`].

use std::io;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let mut err = io::stderr();
    let status = failover_examples::decode::run(&args, &mut out, &mut err);
    ExitCode::from(u8::try_from(status).unwrap_or(2))
}
