//! Many relationships in one process on one listening port ([`Listener`], issue 13): memory
//! per relationship, CPU while idle (CONTACTs only), time until all are NORMAL, acknowledged
//! BNDUPD/s across all of them.
//!
//! ```sh
//! cargo run --release -p failover-benches --bin many-relationships -- [N] [PER_ADDRESS] [IDLE_S] [UPDATES]
//! ```
//!
//! This process (the one measured) runs `N` secondaries on one [`Listener`] on 127.0.0.1; a
//! child process (this binary again, `--partners`) runs their `N` primaries, which connect from
//! distinct loopback addresses 127.0.x.y, `PER_ADDRESS` relationships per address (1: told apart
//! by address; more: by the relationship name in the CONNECT). The primaries listen on one
//! `Listener` of their own; our secondaries' own dials go to a closed port, so every connection
//! comes in through the listener under test.
//!
//! Measured in this process: VmRSS before and after the `N` secondaries start, and once all
//! are NORMAL (per relationship: the difference / `N`); from the child's start until all `N`
//! are NORMAL (fresh stores: no STARTUP wait); utime+stime over `IDLE_S` seconds
//! (default 30) of CONTACTs only, for this process and the child; then each primary sends
//! `UPDATES` bindings (default 100) in one `send_bindings` call, and the time until all are
//! acknowledged gives BNDUPD/s across all relationships, with both processes' CPU over that
//! time. Defaults: `N` 1,000, `PER_ADDRESS` 1. Every figure line carries the 1-minute load; the first gives the CPU.

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use failover_fsm::{BindingData, BindingStatus, Config, Role, ServerState};
use failover_testkit::isc::pair::{Machine, load1};
use failover_tokio::{Handle, Listener, MemoryStore, PeerBuilder, PeerEvent, wall_clock};
use tokio::runtime::Runtime;
use tokio::sync::mpsc;

const POOL: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 0);
/// Addresses per relationship's pool.
const POOL_SIZE: u32 = 256;
/// MCLT: short, so that the fresh stores' first RECOVER waits little.
const MCLT: u32 = 5;
/// Longest any phase may take.
const LIMIT: Duration = Duration::from_secs(600);

fn name(i: usize) -> String {
    format!("rel-{i:05}")
}

/// The loopback address the `i`-th relationship's primary speaks from.
fn partner_ip(i: usize, per_address: usize) -> IpAddr {
    let a = i / per_address.max(1);
    IpAddr::V4(Ipv4Addr::new(
        127,
        1 + (a / 250) as u8,
        0,
        1 + (a % 250) as u8,
    ))
}

fn drain(mut rx: mpsc::Receiver<PeerEvent>) {
    tokio::spawn(async move { while rx.recv().await.is_some() {} });
}

fn builder(
    role: Role,
    i: usize,
    partner: SocketAddr,
    store: Arc<MemoryStore>,
) -> PeerBuilder<MemoryStore> {
    PeerBuilder::new(Config::new(role, &name(i), MCLT), partner, store)
        .plaintext()
        .reconnect(Duration::from_secs(1), Duration::from_secs(30))
        .event_capacity(64)
}

/// VmRSS of this process, KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// utime + stime of process `pid` ("self" for this one), seconds.
fn cpu_secs(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name's closing parenthesis; utime and stime are 14 and 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // /proc ticks are USER_HZ, 100 on Linux.
    (ticks(11) + ticks(12)) / 100.0
}

/// The soft limit on open files (/proc/self/limits).
fn open_files_limit() -> Option<u64> {
    std::fs::read_to_string("/proc/self/limits")
        .ok()?
        .lines()
        .find(|l| l.starts_with("Max open files"))?
        .split_whitespace()
        .nth(3)?
        .parse()
        .ok()
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = Runtime::new()
        .map_err(Into::into)
        .and_then(|rt| match args.split_first() {
            Some((flag, rest)) if flag == "--partners" => rt.block_on(partners(rest)),
            _ => rt.block_on(measure(&args)),
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("many-relationships: {e}");
            ExitCode::FAILURE
        }
    }
}

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn arg(args: &[String], i: usize, default: usize) -> Res<usize> {
    Ok(match args.get(i) {
        Some(v) => v.parse()?,
        None => default,
    })
}

async fn all_in(handles: &[Handle], state: ServerState) -> Res<()> {
    for h in handles {
        tokio::time::timeout(LIMIT, h.wait_for_state(state)).await??;
    }
    Ok(())
}

/// Waits until every binding each handle sent is acknowledged.
async fn all_acked(handles: &[Handle]) -> Res<()> {
    for h in handles {
        let mut w = h.watch();
        tokio::time::timeout(LIMIT, w.wait_for(|s| s.unacked_sent == 0 && s.queued == 0)).await??;
    }
    Ok(())
}

/// The measured process: `N` secondaries on one listener.
async fn measure(args: &[String]) -> Res<()> {
    let n = arg(args, 0, 1000)?;
    let per_address = arg(args, 1, 1)?.max(1);
    let idle = arg(args, 2, 30)?;
    let updates = arg(args, 3, 100)?;
    if let Some(limit) = open_files_limit()
        && limit < 2 * n as u64 + 256
    {
        return Err(format!(
            "open files limit {limit} too low for {n} relationships (ulimit -n {})",
            2 * n + 256
        )
        .into());
    }
    println!("{}", Machine::probe());
    println!(
        "{n} relationships, {per_address} per partner address, MCLT {MCLT} s, pools of \
         {POOL_SIZE}, ISC's timer defaults (receive timer 20 s)"
    );
    println!(
        "the engine failover-tokio runs (Engine<256, 128, 128>, boxed): {} KiB",
        std::mem::size_of::<failover_fsm::Engine<256, 128, 128>>() / 1024
    );
    let listener = Listener::bind("127.0.0.1:0".parse()?).await?;
    let rss_empty = rss_kib();
    let stores: Vec<_> = (0..n)
        .map(|_| Arc::new(MemoryStore::new(Role::Secondary, POOL, POOL_SIZE)))
        .collect();
    let rss0 = rss_kib();
    println!(
        "{n} lease stores of {POOL_SIZE}: VmRSS {rss_empty} -> {rss0} KiB, {:.1} KiB each \
         (the application's; not counted below)",
        (rss0 - rss_empty) as f64 / n as f64
    );
    let mut ours = Vec::with_capacity(n);
    for (i, store) in stores.into_iter().enumerate() {
        // A closed port: the partner's connections all come through the listener.
        let partner = SocketAddr::new(partner_ip(i, per_address), 9);
        let (h, events) = builder(Role::Secondary, i, partner, store)
            .listener(&listener)
            .bind_address(IpAddr::V4(Ipv4Addr::LOCALHOST))
            .start()
            .await?;
        drain(events);
        ours.push(h);
    }
    let rss1 = rss_kib();
    println!(
        "started {n} secondaries: VmRSS {rss0} -> {rss1} KiB, {:.1} KiB per relationship \
         (not connected) [load {}]",
        (rss1 - rss0) as f64 / n as f64,
        load1()
    );

    let mut child = Partners::spawn(listener.local_addr(), n, per_address)?;
    let start = Instant::now();
    all_in(&ours, ServerState::Normal).await?;
    let to_normal = start.elapsed();
    child.request("wait-normal")?;
    // Pool balancing on entering NORMAL moves addresses: wait until it is acknowledged.
    child.request("wait-acked")?;
    let rss2 = rss_kib();
    println!(
        "all {n} NORMAL {:.3} s after the partners' process started; VmRSS {rss2} KiB: \
         {:.1} KiB per relationship (connected, NORMAL, pools balanced) [load {}]",
        to_normal.as_secs_f64(),
        (rss2 - rss0) as f64 / n as f64,
        load1()
    );
    println!(
        "listener: {} connections handed over, {} unknown relationship, {} unrouted, {} busy",
        listener.counters().handed_over(),
        listener.counters().unknown_relationship(),
        listener.counters().unrouted(),
        listener.counters().busy()
    );

    let pid = child.child.id().to_string();
    let (c0, p0, t0) = (cpu_secs("self"), cpu_secs(&pid), Instant::now());
    let msgs0: u64 = ours.iter().map(|h| h.counters().messages_in()).sum();
    tokio::time::sleep(Duration::from_secs(idle as u64)).await;
    let (c1, p1, secs) = (cpu_secs("self"), cpu_secs(&pid), t0.elapsed().as_secs_f64());
    let msgs1: u64 = ours.iter().map(|h| h.counters().messages_in()).sum();
    println!(
        "idle {secs:.0} s (CONTACTs only: {} messages in): this process {:.2} % of one CPU \
         ({:.3} s), the partners' {:.2} % [load {}]",
        msgs1 - msgs0,
        100.0 * (c1 - c0) / secs,
        c1 - c0,
        100.0 * (p1 - p0) / secs,
        load1()
    );

    let (c0, p0) = (cpu_secs("self"), cpu_secs(&pid));
    let reply = child.request(&format!("send {updates}"))?;
    let (c1, p1) = (cpu_secs("self"), cpu_secs(&pid));
    let mut f = reply.split_whitespace().skip(1);
    let total: f64 = f.next().ok_or("no count")?.parse()?;
    let secs: f64 = f.next().ok_or("no time")?.parse()?;
    let received: u64 = ours
        .iter()
        .map(|h| u64::from(h.status().counters.bndupd_received))
        .sum();
    println!(
        "{total} BNDUPDs ({updates} per relationship) acknowledged in {secs:.2} s: {:.0} \
         BNDUPD/s across all; this process {:.2} s CPU, the partners' {:.2} s; {received} \
         BNDUPDs received here in all [load {}]",
        total / secs,
        c1 - c0,
        p1 - p0,
        load1()
    );
    child.stop();
    Ok(())
}

/// The partners' process, driven over its stdin and stdout.
struct Partners {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Partners {
    fn spawn(listener: SocketAddr, n: usize, per_address: usize) -> Res<Partners> {
        let mut child = Command::new(std::env::current_exe()?)
            .args([
                "--partners",
                &listener.to_string(),
                &n.to_string(),
                &per_address.to_string(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let stdin = child.stdin.take().ok_or("no stdin")?;
        let stdout = BufReader::new(child.stdout.take().ok_or("no stdout")?);
        Ok(Partners {
            child,
            stdin,
            stdout,
        })
    }

    /// Sends a command line; returns the answer line (blocking: the partners answer once
    /// done, and this process's relationships run on the runtime's workers meanwhile).
    fn request(&mut self, line: &str) -> Res<String> {
        writeln!(self.stdin, "{line}")?;
        self.stdin.flush()?;
        let answer = tokio::task::block_in_place(|| {
            let mut answer = String::new();
            self.stdout.read_line(&mut answer).map(|_| answer)
        })?;
        if answer.starts_with("ok") {
            Ok(answer)
        } else {
            Err(format!("partners: {answer:?}").into())
        }
    }

    /// Stops the child by its PID.
    fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Partners {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

/// The child: `N` primaries, each speaking from its loopback address to the listener under
/// test, all listening on one listener of their own.
async fn partners(args: &[String]) -> Res<()> {
    let target: SocketAddr = args.first().ok_or("no listener address")?.parse()?;
    let n = arg(args, 1, 1000)?;
    let per_address = arg(args, 2, 1)?;
    let own = Listener::bind("127.0.0.1:0".parse()?).await?;
    let mut handles = Vec::with_capacity(n);
    let mut stores = Vec::with_capacity(n);
    for i in 0..n {
        let store = Arc::new(MemoryStore::new(Role::Primary, POOL, POOL_SIZE));
        stores.push(store.clone());
        let (h, events) = builder(Role::Primary, i, target, store)
            .listener(&own)
            .bind_address(partner_ip(i, per_address))
            .start()
            .await?;
        drain(events);
        handles.push(h);
    }
    let stdin = std::io::stdin();
    let mut out = std::io::stdout();
    let mut line = String::new();
    loop {
        line.clear();
        if tokio::task::block_in_place(|| stdin.lock().read_line(&mut line))? == 0 {
            return Ok(());
        }
        let mut words = line.split_whitespace();
        let answer = match (words.next(), words.next()) {
            (Some("wait-normal"), _) => all_in(&handles, ServerState::Normal)
                .await
                .map(|()| "ok".to_string()),
            (Some("wait-acked"), _) => all_acked(&handles).await.map(|()| "ok".to_string()),
            (Some("send"), Some(k)) => send(&handles, &stores, k.parse()?).await,
            _ => Ok(format!("unknown command {line:?}")),
        };
        let answer = answer.unwrap_or_else(|e| format!("error {e}"));
        writeln!(out, "{answer}")?;
        out.flush()?;
    }
}

/// Each primary sends `k` new ACTIVE bindings of its own free addresses, in one
/// `send_bindings` call; the answer is `ok TOTAL SECONDS`, once every one is acknowledged.
async fn send(handles: &[Handle], stores: &[Arc<MemoryStore>], k: usize) -> Res<String> {
    let wall = wall_clock();
    let mut lists = Vec::with_capacity(handles.len());
    for (i, store) in stores.iter().enumerate() {
        let mut list = Vec::with_capacity(k);
        let free = store
            .snapshot()
            .into_values()
            .filter(|l| l.local.status == BindingStatus::Free)
            .take(k);
        for (j, lease) in free.enumerate() {
            let mac = [2, (i >> 8) as u8, i as u8, 0, (j >> 8) as u8, j as u8];
            let mut b = BindingData::new(lease.data.ip(), BindingStatus::Active)
                .with_client(None, 1, &mac)?;
            b.lease_expiration_time = Some(wall.plus(3600));
            b.potential_expiration_time = Some(wall.plus(3600 + MCLT));
            b.client_last_transaction_time = Some(wall);
            list.push(b);
        }
        lists.push(list);
    }
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(handles.len());
    for (h, list) in handles.iter().zip(lists) {
        let h = h.clone();
        tasks.push(tokio::spawn(async move {
            let n = list.len();
            h.send_bindings(list).await.map(|()| n)
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await??;
    }
    all_acked(handles).await?;
    Ok(format!("ok {total} {:.3}", start.elapsed().as_secs_f64()))
}
