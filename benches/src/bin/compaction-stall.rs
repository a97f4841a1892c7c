//! How long a `FileStore` sync takes while the log is compacted: the lease table holds `N`
//! ACTIVE leases, and one thread renews them one at a time, a sync each (as the failover task
//! syncs each group), for as many renewals as `ROUNDS` compactions take. Printed: the syncs'
//! p50, p99, p99.9 and maximum, the slowest sync's neighbours, and the compactions done.
//!
//! ```sh
//! cargo run --release -p failover-benches --bin compaction-stall -- [N] [ROUNDS]
//! ```
//!
//! A compaction writes the whole table (`N` records) and fsyncs it: while it held the log's
//! lock inside the sync that started it, that sync — and every BNDACK waiting for it — took as
//! long as the copy. The first line gives the machine and the directory of the log
//! (`DURABLE_DIR`, default: the temporary directory); the result line the load average after.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use failover_fsm::{BindingData, BindingStatus, Role, UnixTime};
use failover_testkit::isc::pair::{Machine, load1};
use failover_tokio::{FileStore, Storage};

const FIRST: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 0);

fn lease(i: u32, n: u32) -> Result<BindingData, String> {
    let k = i % n;
    let mut b = BindingData::new(Ipv4Addr::from(u32::from(FIRST) + k), BindingStatus::Active)
        .with_client(
            None,
            1,
            &[2, 0, (k >> 16) as u8, (k >> 8) as u8, k as u8, 1],
        )
        .map_err(|e| e.to_string())?;
    b.lease_expiration_time = Some(UnixTime(1_900_000_000 + i));
    b.potential_expiration_time = Some(UnixTime(1_900_003_600 + i));
    b.client_last_transaction_time = Some(UnixTime(1_800_000_000 + i));
    Ok(b)
}

fn arg(i: usize, default: u32) -> Result<u32, String> {
    std::env::args().nth(i).map_or(Ok(default), |a| {
        a.parse().map_err(|_| format!("not a number: {a}"))
    })
}

fn main() -> ExitCode {
    let (n, rounds) = match (arg(1, 100_000), arg(2, 3)) {
        (Ok(n), Ok(r)) if n > 0 && r > 0 => (n, r),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
        _ => {
            eprintln!("N and ROUNDS must be above 0");
            return ExitCode::FAILURE;
        }
    };
    let dir = std::env::var_os("DURABLE_DIR").map_or_else(std::env::temp_dir, PathBuf::from);
    let path = dir.join(format!("compaction-stall-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&path);
    println!("{}; log in {}", Machine::probe(), dir.display());
    let store = match FileStore::open(&path, Role::Primary, FIRST, n) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    };
    // The table: every address leased, one sync.
    for i in 0..n {
        if let Err(e) = lease(i, n).and_then(|b| store.record_local(&b).map_err(|e| e.to_string()))
        {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    }
    if let Err(e) = store.sync() {
        eprintln!("sync: {e}");
        return ExitCode::FAILURE;
    }
    // ROUNDS compactions: the first after about N + slack renewals (the log then holds twice
    // the table plus the slack), each next one as many later; then half a table more, to see
    // the syncs after the last one. `compactions()` is read only at the end: it waits for a
    // compaction under way.
    let syncs =
        u64::from(rounds) * (u64::from(n) + FileStore::COMPACT_SLACK + 1) + u64::from(n / 2);
    let mut times: Vec<Duration> = Vec::with_capacity(syncs as usize);
    let started = Instant::now();
    for i in (n..).take(syncs as usize) {
        if let Err(e) = lease(i, n).and_then(|b| store.record_local(&b).map_err(|e| e.to_string()))
        {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
        let t = Instant::now();
        if let Err(e) = store.sync() {
            eprintln!("sync: {e}");
            return ExitCode::FAILURE;
        }
        times.push(t.elapsed());
    }
    let elapsed = started.elapsed();
    let slowest = times
        .iter()
        .enumerate()
        .max_by_key(|(_, t)| **t)
        .map_or(0, |(k, _)| k);
    let around: Vec<String> = times
        .get(slowest.saturating_sub(2)..(slowest + 3).min(times.len()))
        .unwrap_or_default()
        .iter()
        .map(|t| format!("{:.2}", t.as_secs_f64() * 1e3))
        .collect();
    let mut sorted = times.clone();
    sorted.sort();
    let at = |q: f64| {
        let k = ((sorted.len() as f64 - 1.0) * q).round() as usize;
        sorted.get(k).map_or(0.0, |t| t.as_secs_f64() * 1e3)
    };
    println!(
        "{n} leases: {} syncs in {:.1} s, {} compactions; sync ms p50 {:.3} p99 {:.3} p99.9 {:.3} max {:.2}; around the slowest: {}; load {}",
        times.len(),
        elapsed.as_secs_f64(),
        store.compactions(),
        at(0.5),
        at(0.99),
        at(0.999),
        at(1.0),
        around.join(" "),
        load1()
    );
    drop(store);
    let _ = std::fs::remove_file(&path);
    ExitCode::SUCCESS
}
