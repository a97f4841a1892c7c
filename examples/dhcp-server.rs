//! A DHCPv4 server with failover, on the library: pairs with ISC dhcpd or with itself.
//!
//! ```text
//! cargo run --example dhcp-server -- --pool FIRST-LAST --role primary|secondary \
//!     --peer-listen IP:PORT --partner IP:PORT --name NAME (--plaintext | --tls-* ...) \
//!     [--listen IP:PORT] [OPTIONS]
//! ```
//!
//! `--help` documents every option; see [`failover_examples::dhcp_server`]. A line
//! `partner-down` on stdin or SIGUSR2 declares the partner down (`partner-down force` from a
//! state other than COMMUNICATIONS-INTERRUPTED); `status` or SIGUSR1 prints a
//! status line; SIGINT or SIGTERM shuts down gracefully (a second one stops at once).

use std::process::ExitCode;

use failover_examples::console::Console;
use failover_examples::dhcp_server::{Command, Parsed, USAGE, parse_args, run};
use tokio::io::AsyncBufReadExt;
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

/// Operator commands: stdin lines, SIGUSR1 (status), SIGUSR2 (partner down).
fn commands() -> mpsc::Receiver<Command> {
    let (tx, rx) = mpsc::channel(8);
    let stdin_tx = tx.clone();
    tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let cmd = match line.trim() {
                "partner-down" => Command::PartnerDown(false),
                "partner-down force" => Command::PartnerDown(true),
                "status" => Command::Status,
                "" => continue,
                other => {
                    eprintln!(
                        "dhcp-server: unknown command `{other}` (partner-down [force], status)"
                    );
                    continue;
                }
            };
            if stdin_tx.send(cmd).await.is_err() {
                break;
            }
        }
    });
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        for (kind, cmd) in [
            (SignalKind::user_defined1(), Command::Status),
            (SignalKind::user_defined2(), Command::PartnerDown(false)),
        ] {
            if let Ok(mut s) = signal(kind) {
                let tx = tx.clone();
                tokio::spawn(async move {
                    while s.recv().await.is_some() {
                        if tx.send(cmd).await.is_err() {
                            break;
                        }
                    }
                });
            }
        }
    }
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
            eprintln!("dhcp-server: {e}");
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
        tokio::spawn(async {
            stop_signal().await;
            eprintln!("dhcp-server: stopped without a graceful shutdown");
            std::process::exit(130);
        });
    };
    match run(&opts, &console, stop, commands(), |_, _| {}).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dhcp-server: {e}");
            ExitCode::FAILURE
        }
    }
}
