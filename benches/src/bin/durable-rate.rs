//! Durable acknowledged BNDUPD/s between two failover-tokio peers over loopback, both on
//! [`FileStore`] (append-only log, fsync'd), next to an ISC dhcpd pair measured in the same
//! run.
//!
//! ```sh
//! cargo run --release -p failover-benches --bin durable-rate -- [N] [RUNS]
//! ```
//!
//! Two ways of making bindings durable are compared, side by side:
//!
//! * `each`: one fsync per binding — every change is synced as it is made (the store's
//!   behaviour before group commit), by a wrapper that calls [`Storage::sync`] after each one;
//! * `group`: failover-tokio's group commit — the changes made while one batch of input is
//!   handled share one sync, run off the runtime's workers.
//!
//! and two workloads: `stream` (the primary's application hands over `N` new ACTIVE bindings;
//! timed until the last is acknowledged) and `resync` (a secondary that lost its table asks for
//! everything, UPDREQALL; timed from its connection until UPDDONE). The ISC pair's figure is
//! its resync of `N` leases (see `failover_testkit::isc::pair`), measured when root, dhcpd and
//! iproute2 are present; skipped with a note otherwise. Every line carries the 1-minute load
//! average before it; the first line gives the CPU and the file system the logs are on
//! (`DURABLE_DIR`, default: the temporary directory).

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use failover_fsm::accept::{LocalBinding, Verdict};
use failover_fsm::policy::{BalancePlan, PoolCounts};
use failover_fsm::record::{Ack, BacklogWalk, Queued, Received, UpdateQueue, Walked};
use failover_fsm::{
    BindingData, BindingSource, BindingStatus, Config, LeaseLookup, Persisted, Role, ServerState,
    UnixTime, UpdateId,
};
use failover_testkit::isc;
use failover_testkit::isc::pair::{Machine, load1, measure_resync};
use failover_tokio::{FileStore, Handle, PeerBuilder, PeerEvent, Storage};
use tokio::runtime::Runtime;

const FIRST: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 0);
/// Longest one measurement may take.
const LIMIT: Duration = Duration::from_secs(300);

/// A [`FileStore`] that syncs after every change: one fsync per binding.
struct EachSync(FileStore);

impl LeaseLookup for EachSync {
    fn lookup(&self, address: Ipv4Addr) -> Option<LocalBinding> {
        self.0.lookup(address)
    }
}

impl BindingSource for EachSync {
    fn binding(&self, address: Ipv4Addr) -> Option<BindingData> {
        self.0.binding(address)
    }
}

impl Storage for EachSync {
    fn load_state(&self) -> Option<Persisted> {
        self.0.load_state()
    }
    fn persist_state(&self, state: &Persisted) -> std::io::Result<()> {
        self.0.persist_state(state)?;
        self.0.sync()
    }
    fn commit_binding(&self, b: &BindingData, v: &Verdict) -> std::io::Result<Received> {
        let r = self.0.commit_binding(b, v)?;
        self.0.sync()?;
        Ok(r)
    }
    fn record_local(&self, b: &BindingData) -> std::io::Result<()> {
        self.0.record_local(b)?;
        self.0.sync()
    }
    fn binding_queued(&self, a: [u8; 4], u: UpdateId, again: bool) -> std::io::Result<()> {
        self.0.binding_queued(a, u, again)
    }
    fn binding_acked(&self, a: [u8; 4], ack: &Ack) -> std::io::Result<()> {
        self.0.binding_acked(a, ack)?;
        self.0.sync()
    }
    fn binding_rejected(&self, a: [u8; 4], u: UpdateId) {
        self.0.binding_rejected(a, u);
    }
    fn begin_walk(&self, walk: &BacklogWalk) {
        self.0.begin_walk(walk);
    }
    fn walk(&self, walk: &mut BacklogWalk, queue: &mut dyn UpdateQueue) -> Walked {
        self.0.walk(walk, queue)
    }
    fn send_current(&self, a: [u8; 4], again: bool, queue: &mut dyn UpdateQueue) -> Queued {
        self.0.send_current(a, again, queue)
    }
    fn pool_counts(&self) -> PoolCounts {
        self.0.pool_counts()
    }
    fn move_to_partner(
        &self,
        plan: &BalancePlan,
        now: UnixTime,
    ) -> std::io::Result<Vec<BindingData>> {
        self.0.move_to_partner(plan, now)
    }
    fn sync(&self) -> std::io::Result<()> {
        self.0.sync()
    }
    fn latest_received_pet(&self) -> Option<UnixTime> {
        self.0.latest_received_pet()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Each,
    Group,
}

fn port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn lease(i: u32) -> Option<BindingData> {
    let a = Ipv4Addr::from(u32::from(FIRST) + i);
    let mut b = BindingData::new(a, BindingStatus::Active)
        .with_client(
            None,
            1,
            &[2, 0, (i >> 16) as u8, (i >> 8) as u8, i as u8, 1],
        )
        .ok()?;
    b.lease_expiration_time = Some(UnixTime(1_900_000_000));
    b.potential_expiration_time = Some(UnixTime(1_900_003_600));
    b.client_last_transaction_time = Some(UnixTime(1_800_000_000));
    Some(b)
}

async fn start<S: Storage>(
    role: Role,
    listen: u16,
    partner: u16,
    store: Arc<S>,
) -> std::io::Result<Handle> {
    let a = |p| SocketAddr::from(([127, 0, 0, 1], p));
    let mut config = Config::new(role, "durable-rate", 5);
    config.max_unacked_bndupd = mud();
    let (h, mut rx) = PeerBuilder::new(config, a(partner), store)
        .plaintext()
        .listen(a(listen))
        .reconnect(Duration::from_millis(20), Duration::from_millis(200))
        .start()
        .await?;
    tokio::spawn(async move {
        while let Some(e) = rx.recv().await {
            if let PeerEvent::StorageError(e) = e {
                eprintln!("storage error: {e}");
            }
        }
    });
    Ok(h)
}

async fn wait(what: &str, mut done: impl FnMut() -> bool) -> std::io::Result<()> {
    let t = Instant::now();
    while !done() {
        if t.elapsed() > LIMIT {
            return Err(std::io::Error::other(format!(
                "timed out waiting for {what}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok(())
}

fn quiet(h: &Handle) -> bool {
    let s = h.status();
    s.unacked_sent == 0 && s.queued == 0 && s.awaiting_commit == 0
}

fn open(dir: &Path, name: &str, role: Role, n: u32) -> std::io::Result<FileStore> {
    let path = dir.join(name);
    let _ = std::fs::remove_file(&path);
    FileStore::open(path, role, FIRST, n)
}

/// Wraps the store as `mode` says and starts a peer on it.
async fn peer(
    mode: Mode,
    role: Role,
    listen: u16,
    partner: u16,
    store: FileStore,
) -> std::io::Result<Handle> {
    match mode {
        Mode::Each => start(role, listen, partner, Arc::new(EachSync(store))).await,
        Mode::Group => start(role, listen, partner, Arc::new(store)).await,
    }
}

/// `stream`: N new bindings from the primary's application, acknowledged by the secondary.
async fn stream(mode: Mode, dir: &Path, n: u32) -> std::io::Result<Duration> {
    let (pp, sp) = (port()?, port()?);
    let p = peer(
        mode,
        Role::Primary,
        pp,
        sp,
        open(dir, "p.log", Role::Primary, n)?,
    )
    .await?;
    let s = peer(
        mode,
        Role::Secondary,
        sp,
        pp,
        open(dir, "s.log", Role::Secondary, n)?,
    )
    .await?;
    p.wait_for_state(ServerState::Normal).await.ok();
    s.wait_for_state(ServerState::Normal).await.ok();
    wait("the pair to settle", || quiet(&p) && quiet(&s)).await?;
    let bindings: Vec<BindingData> = (0..n).filter_map(lease).collect();
    let t = Instant::now();
    p.send_bindings(bindings)
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    wait("the stream's acknowledgements", || quiet(&p)).await?;
    let elapsed = t.elapsed();
    p.abort().await;
    s.abort().await;
    Ok(elapsed)
}

/// A secondary told its lease table is lost (it asks for everything).
fn secondary_lost<S: Storage>(
    config: Config,
    partner: u16,
    listen: u16,
    store: Arc<S>,
) -> PeerBuilder<S> {
    let a = |p| SocketAddr::from(([127, 0, 0, 1], p));
    PeerBuilder::new(config, a(partner), store)
        .plaintext()
        .listen(a(listen))
        .reconnect(Duration::from_millis(20), Duration::from_millis(200))
        .lease_table_lost()
}

/// `resync`: a secondary that lost its table gets all N bindings back (UPDREQALL .. UPDDONE).
async fn resync(mode: Mode, dir: &Path, n: u32) -> std::io::Result<Duration> {
    // The primary's table: N acknowledged ACTIVE leases, on disk before it starts.
    let ps = open(dir, "p.log", Role::Primary, n)?;
    for b in (0..n).filter_map(lease) {
        ps.record_local(&b)?;
    }
    ps.sync()?;
    drop(ps);
    let ps = FileStore::open(dir.join("p.log"), Role::Primary, FIRST, n)?;
    let (pp, sp) = (port()?, port()?);
    let p = peer(mode, Role::Primary, pp, sp, ps).await?;
    let ss = open(dir, "s.log", Role::Secondary, n)?;
    let mut config = Config::new(Role::Secondary, "durable-rate", 5);
    config.max_unacked_bndupd = mud();
    let t = Instant::now();
    let (s, mut rx) = match mode {
        Mode::Each => {
            secondary_lost(config, pp, sp, Arc::new(EachSync(ss)))
                .start()
                .await?
        }
        Mode::Group => secondary_lost(config, pp, sp, Arc::new(ss)).start().await?,
    };
    let waited = async {
        while let Some(e) = rx.recv().await {
            if let PeerEvent::Engine(failover_fsm::Event::UpdatesReceived) = e {
                return Ok(());
            }
        }
        Err(std::io::Error::other(
            "the secondary stopped before UPDDONE",
        ))
    };
    tokio::time::timeout(LIMIT, waited)
        .await
        .map_err(|_| std::io::Error::other("timed out waiting for UPDDONE"))??;
    let elapsed = t.elapsed();
    p.abort().await;
    s.abort().await;
    Ok(elapsed)
}

/// The window both peers advertise (max-unacked-bndupd): `DURABLE_MUD`, default 128.
fn mud() -> u32 {
    std::env::var("DURABLE_MUD")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(128)
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let parse = |a: Option<String>, default: u32| match a {
        None => Some(default),
        Some(a) => a.replace('_', "").parse::<u32>().ok().filter(|&n| n > 0),
    };
    let (Some(n), Some(runs)) = (parse(args.next(), 10_000), parse(args.next(), 1)) else {
        eprintln!("usage: durable-rate [N bindings, default 10000] [RUNS, default 1]");
        return ExitCode::from(64);
    };
    let dir: PathBuf = std::env::var_os("DURABLE_DIR")
        .map_or_else(std::env::temp_dir, PathBuf::from)
        .join(format!("durable-rate-{}", std::process::id()));
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("cannot create {}: {e}", dir.display());
        return ExitCode::FAILURE;
    }
    println!("{} logs={}", Machine::probe(), dir.display());
    let rt = match Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    // DURABLE_GROUP_ONLY=1: group commit only, without the slow `each` rows and the ISC pair
    // (for comparing two builds of the group commit, run after run).
    let group_only = std::env::var_os("DURABLE_GROUP_ONLY").is_some();
    let mut failed = false;
    for run in 0..runs {
        for (workload, mode) in [
            ("stream", Mode::Each),
            ("stream", Mode::Group),
            ("resync", Mode::Each),
            ("resync", Mode::Group),
        ] {
            if group_only && mode == Mode::Each {
                continue;
            }
            let load = load1();
            let r = rt.block_on(async {
                match workload {
                    "stream" => stream(mode, &dir, n).await,
                    _ => resync(mode, &dir, n).await,
                }
            });
            match r {
                Ok(d) => println!(
                    "run={run} {workload:6} {:5} N={n} {:.3} s {:>9.0} acked BNDUPD/s load={load}",
                    format!("{mode:?}").to_lowercase(),
                    d.as_secs_f64(),
                    f64::from(n) / d.as_secs_f64().max(1e-9)
                ),
                Err(e) => {
                    eprintln!("run={run} {workload} {mode:?}: {e}");
                    failed = true;
                }
            }
        }
        if !group_only && isc::tools_available("durable-rate") {
            let load = load1();
            match measure_resync(n as usize) {
                Ok(r) => println!("run={run} isc-pair {r} load={load}"),
                Err(e) => {
                    eprintln!("run={run} isc-pair: {e}");
                    failed = true;
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
