//! A standalone DHCP failover peer that pairs with any draft-12 partner (ISC dhcpd, or itself).
//!
//! ```text
//! cargo run --example peer -- --role primary|secondary --listen IP:PORT --partner IP:PORT \
//!     --name NAME (--plaintext | --tls-cert F --tls-key F --tls-ca F --tls-partner-name N) \
//!     [--bind IP] [--mclt S] [--split N] [--mud N] [--mrd S] [--store FILE] \
//!     [--pool FIRST-LAST] [--status-every S] [--auto-partner-down S] [--quiet]
//! ```
//!
//! `--help` documents every option; see [`failover_examples::peer`]. SIGUSR1 prints a status
//! line; SIGINT or SIGTERM shuts the peer down gracefully (a second one stops it at once).

use std::process::ExitCode;

use failover_examples::console::Console;
use failover_examples::peer::{Parsed, USAGE, parse_args, run};
use tokio::sync::mpsc;
use tracing_subscriber::EnvFilter;

/// Completes on SIGINT or SIGTERM.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Sends one status request per SIGUSR1.
fn status_requests() -> mpsc::Receiver<()> {
    let (tx, rx) = mpsc::channel(4);
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut usr1) = signal(SignalKind::user_defined1()) {
            tokio::spawn(async move {
                while usr1.recv().await.is_some() {
                    if tx.send(()).await.is_err() {
                        break;
                    }
                }
            });
        }
    }
    #[cfg(not(unix))]
    drop(tx);
    rx
}

#[tokio::main]
async fn main() -> ExitCode {
    let opts = match parse_args(std::env::args().skip(1)) {
        Ok(Parsed::Run(o)) => o,
        Ok(Parsed::Help) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("peer: {e}");
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let console = Console::stdout(false);
    let stop = async {
        stop_signal().await;
        // A second signal while shutting down: stop at once.
        tokio::spawn(async {
            stop_signal().await;
            eprintln!("peer: stopped without a graceful shutdown");
            std::process::exit(130);
        });
    };
    match run(&opts, &console, stop, status_requests(), |_| {}).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("peer: {e}");
            ExitCode::FAILURE
        }
    }
}
