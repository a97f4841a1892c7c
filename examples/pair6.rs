//! Two DHCPv6 failover peers (RFC 8156) in one process: a cold start, a crash, PARTNER-DOWN,
//! a restart from the state file, recovery.
//!
//! ```text
//! cargo run --example pair6 [-- --mclt S --quiet]
//! ```
//!
//! See [`failover_examples::pair6`] for the story it tells; exit status 0 when every check
//! passed. IA_NA/IA_PD binding sync is not in this demo yet.

use std::process::ExitCode;

use failover_examples::console::Console;
use failover_examples::pair6::{Parsed, USAGE, parse_args, run};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let opts = match parse_args(std::env::args().skip(1)) {
        Ok(Parsed::Run(o)) => o,
        Ok(Parsed::Help) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("pair6: {e}");
            return ExitCode::from(2);
        }
    };
    // The failover tasks log through `tracing`; the demo prints its own timeline, so only
    // errors by default.
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("error")),
        )
        .with_writer(std::io::stderr)
        .init();
    let report = run(&opts, &Console::stdout(opts.quiet)).await;
    if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
