//! An ISC dhcpd 4.4 pair's resync rate on this machine: acknowledged BNDUPD/s from the
//! secondary's UPDREQALL to the primary's UPDDONE, with `N` ACTIVE leases in the primary's lease
//! file (see `failover_testkit::isc::pair`).
//!
//! ```sh
//! cargo run --release -p failover-benches --bin isc-pair-rate -- [N] [RUNS]
//! ```
//!
//! `N` defaults to 10,000 and `RUNS` to 1. Needs root, ISC dhcpd (`apt-get install
//! isc-dhcp-server`) and iproute2; exits with status 2 and a note when they are missing. Prints
//! the machine (CPU model, nproc, 1-minute load average, the lease files' file system), then
//! one line per run with the load average before it.

use std::process::ExitCode;

use failover_testkit::isc;
use failover_testkit::isc::pair::{Machine, load1, measure_resync};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let parse = |a: Option<String>, default: usize| match a {
        None => Some(default),
        Some(a) => a.replace('_', "").parse::<usize>().ok().filter(|&n| n > 0),
    };
    let (Some(n), Some(runs)) = (parse(args.next(), 10_000), parse(args.next(), 1)) else {
        eprintln!("usage: isc-pair-rate [N ACTIVE leases, default 10000] [RUNS, default 1]");
        return ExitCode::from(64);
    };
    if !isc::tools_available("isc-pair-rate") {
        return ExitCode::from(2);
    }
    println!("{}", Machine::probe());
    let mut failed = false;
    for _ in 0..runs {
        // The machine is shared: the load before each run goes with its figure.
        let load = load1();
        match measure_resync(n) {
            Ok(r) => println!("{r} load={load}"),
            Err(e) => {
                eprintln!("isc-pair resync: N={n} failed: {e}");
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
