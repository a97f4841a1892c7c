//! Crash consistency of the `peer` program's file store (`--store FILE`).
//!
//! The `peer` example runs as a child process (secondary, `--store FILE`, `--pool`); an
//! in-process failover-tokio primary streams ACTIVE bindings to it — several versions per
//! address, now and then for a new client, lease expiry always later — while a seeded schedule
//! kills the child with SIGKILL at [`KILLS`] points: during its start and handshake, right after
//! the partner counted a given number of acknowledgements, or a while into the stream. After
//! each kill (the child is dead, its store file final) the file is read with
//! [`FileStore::open`] and every binding the partner saw acknowledged (BNDACK, i.e.
//! `Action::BindingAcked`) must be there: the acknowledged version or a later one the partner
//! sent for the same address (status, client hardware address, lease expiration). Before one
//! restart in five the file also gets what a power loss in the middle of an append would leave
//! (half a record, then bytes that are not text). The child is then restarted on the same file.
//! After the stream, both sides must return to NORMAL with the same lease table, address by
//! address.
//!
//! `CRASH_SEED=<n>` replays another schedule (the seed is printed on failure); `CRASH_KEEP=1`
//! keeps the store and the child's output (kept anyway on failure).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use failover_fsm::{
    Action, BindingData, BindingStatus, Config, Event, Link, RejectReason, Role, ServerState,
    UnixTime,
};
use failover_tokio::{FileStore, Handle, MemoryStore, PeerBuilder, PeerEvent, wall_clock};
use tokio::sync::{Notify, mpsc};

/// How many times the child is killed.
const KILLS: usize = 50;
/// The default schedule.
const SEED: u64 = 0x5eed_c0de_0647;
/// The relationship's pool: `POOL` addresses from `FIRST`.
const FIRST: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
const POOL: u32 = 64;
/// The partner streams bindings for the lowest `STREAMED` addresses (pool balancing moves
/// FREE addresses from the top, never these).
const STREAMED: u32 = 24;
/// The end of the torn record written into the store now and then: not text.
const TORN_TAIL: &[u8] = &[0xff, 0x00];
/// Longest any single wait may take.
const WAIT: Duration = Duration::from_secs(15);

/// splitmix64: a small seeded generator (the schedule must be reproducible).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// When to kill the child.
#[derive(Debug, Clone, Copy)]
enum KillAt {
    /// This long after it was started: before it connects, or in the handshake.
    Start(u64),
    /// As soon as the partner has seen this many acknowledgements from this incarnation.
    AfterAcks(u64),
    /// This long after the link came up: in the middle of the stream.
    Streaming(u64),
}

impl KillAt {
    fn pick(rng: &mut Rng) -> KillAt {
        match rng.below(5) {
            0 => KillAt::Start(rng.below(40)),
            1 | 2 => KillAt::AfterAcks(1 + rng.below(60)),
            _ => KillAt::Streaming(rng.below(300)),
        }
    }
}

/// One version of a streamed binding, as the partner recorded and sent it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Version {
    hw: [u8; 6],
    expiry: u32,
    pet: u32,
}

impl Version {
    fn binding(&self, address: [u8; 4]) -> BindingData {
        let mut b = BindingData::new(Ipv4Addr::from(address), BindingStatus::Active)
            .with_client(None, 1, &self.hw)
            .unwrap();
        let now = wall_clock();
        b.lease_expiration_time = Some(UnixTime(self.expiry));
        b.potential_expiration_time = Some(UnixTime(self.pet));
        b.client_last_transaction_time = Some(now);
        b.start_time_of_state = Some(now);
        b
    }

    /// Whether `data` (a stored binding) is this version.
    fn is(&self, data: &BindingData) -> bool {
        data.status == BindingStatus::Active
            && data.lease_expiration_time == Some(UnixTime(self.expiry))
            && data
                .hardware_address
                .as_ref()
                .is_some_and(|(t, a)| *t == 1 && a.as_slice() == self.hw)
    }
}

#[derive(Debug, Default)]
struct Streamed {
    /// Every version sent, oldest first.
    sent: Vec<Version>,
    /// The newest version the partner saw acknowledged (index into `sent`).
    acked: Option<usize>,
    /// Before the stream: the status acknowledged (the pool as the child first learns it).
    before: Option<BindingStatus>,
}

impl Streamed {
    fn ready_for_next(&self) -> bool {
        self.sent.is_empty() || self.acked == Some(self.sent.len() - 1)
    }
}

#[derive(Debug, Default)]
struct Model {
    streamed: BTreeMap<[u8; 4], Streamed>,
    /// Acknowledged bindings of other addresses (pool balancing): the status acknowledged.
    others: BTreeMap<[u8; 4], BindingStatus>,
    /// Acknowledgements seen, in all and since the child was last started.
    acks: u64,
    acks_since_start: u64,
    /// Other things the partner reported that should not happen here.
    rejected: Vec<String>,
    /// Crossing updates refused by ISC's dueling-update rule (reason 16): after a restart both
    /// sides send what the other may lack, and a server whose own update of the address is
    /// still unacknowledged refuses the other's (the engine knows what it has outstanding).
    /// Expected; the tables are compared at the end.
    duels: u64,
    /// Versions handed to the partner.
    versions: u64,
}

impl Model {
    fn on_event(&mut self, event: &PeerEvent) {
        match event {
            PeerEvent::StorageError(e) => {
                self.rejected.push(format!("partner storage error: {e}"));
            }
            PeerEvent::Action(a) => self.on_action(a),
            PeerEvent::Engine(e) => self.on_engine_event(e),
            _ => {}
        }
    }

    fn on_action(&mut self, a: &Action) {
        match a {
            Action::BindingAcked {
                address,
                status,
                potential_expiration_time,
                ..
            } => {
                self.acks += 1;
                self.acks_since_start += 1;
                match self.streamed.get_mut(address) {
                    // The address as it was before the stream (FREE), acknowledged before
                    // any version of it was.
                    Some(s) if *status != BindingStatus::Active => {
                        if s.acked.is_none() {
                            s.before = Some(*status);
                        } else {
                            self.rejected.push(format!(
                                "{status} of {} acknowledged after a version of the stream",
                                Ipv4Addr::from(*address)
                            ));
                        }
                    }
                    Some(s) => {
                        // The PET tells the versions apart (each one has its own).
                        let pet = potential_expiration_time.map(|t| t.0);
                        let Some(i) = s.sent.iter().rposition(|v| Some(v.pet) == pet) else {
                            panic!(
                                "an acknowledgement of {} ({status}, PET {pet:?}) matches no \
                                 version sent: {:?}",
                                Ipv4Addr::from(*address),
                                s.sent
                            );
                        };
                        s.acked = Some(s.acked.map_or(i, |a| a.max(i)));
                    }
                    None => {
                        self.others.insert(*address, *status);
                    }
                }
            }
            Action::BindingRejected {
                reason: RejectReason::LessCriticalBindingInformation,
                ..
            } => self.duels += 1,
            Action::BindingRejected {
                address, reason, ..
            } => self.rejected.push(format!(
                "the child rejected {}: {reason}",
                Ipv4Addr::from(*address)
            )),
            _ => {}
        }
    }

    fn on_engine_event(&mut self, e: &Event) {
        match e {
            Event::RejectedPartnerBinding {
                reason: RejectReason::LessCriticalBindingInformation,
                ..
            } => self.duels += 1,
            Event::RejectedPartnerBinding { address, reason } => self.rejected.push(format!(
                "the partner rejected the child's {}: {reason}",
                Ipv4Addr::from(*address)
            )),
            Event::ProtocolError { error } => {
                self.rejected.push(format!("protocol error: {error}"));
            }
            _ => {}
        }
    }

    fn all_acked(&self) -> bool {
        self.streamed.values().all(Streamed::ready_for_next)
    }
}

/// A port for the child to listen on, below the ephemeral range when possible: the partner
/// redials it while the child is down, and a dial from an ephemeral port equal to it could
/// connect the socket to itself and take the port.
fn child_port() -> u16 {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let mut it = s.split_whitespace().map(|p| p.parse::<u16>().ok());
            Some((it.next()??, it.next()??))
        })
        .unwrap_or((32768, 60999));
    let start = 20_000 + (std::process::id() % 8_000) as u16;
    (0..500u16)
        .map(|i| start + i * 7)
        .filter(|p| *p < range.0 || *p > range.1)
        .find(|p| TcpListener::bind(("127.0.0.1", *p)).is_ok())
        .unwrap_or_else(free_port)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The `peer` example next to this test's executable, (re)built by cargo (a no-op when it is
/// up to date): `cargo test --test crash_consistency` does not build examples itself.
fn peer_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // <target>/<profile>/deps/crash_consistency-<hash>
    let profile_dir = exe.parent().and_then(Path::parent).unwrap().to_path_buf();
    let target_dir = profile_dir.parent().unwrap();
    let profile = profile_dir
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args([
        "build",
        "--quiet",
        "-p",
        "failover-examples",
        "--example",
        "peer",
    ])
    .current_dir(env!("CARGO_MANIFEST_DIR"))
    .env("CARGO_TARGET_DIR", target_dir)
    .stdin(Stdio::null());
    match profile.as_str() {
        "debug" => {}
        "release" => {
            cmd.arg("--release");
        }
        other => {
            cmd.args(["--profile", other]);
        }
    }
    let mut build = Guard(Some(cmd.spawn().expect("cargo runs")));
    let deadline = Instant::now() + Duration::from_secs(300);
    let status = loop {
        if let Some(s) = build.0.as_mut().unwrap().try_wait().unwrap() {
            build.0 = None;
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "building the peer example took too long"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "cargo build --example peer: {status}");
    let bin = profile_dir
        .join("examples")
        .join(format!("peer{}", std::env::consts::EXE_SUFFIX));
    assert!(bin.is_file(), "no peer example at {}", bin.display());
    bin
}

/// A child process killed (SIGKILL) and reaped on every way out.
struct Guard(Option<Child>);

impl Guard {
    /// SIGKILL, and wait until it is gone (its file is then final, its port free).
    fn kill(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Panics if the child exited on its own.
    fn assert_running(&mut self, log: &Path) {
        if let Some(c) = self.0.as_mut()
            && let Some(status) = c.try_wait().unwrap()
        {
            self.0 = None;
            panic!(
                "the peer exited by itself ({status}):\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.kill();
    }
}

struct Setup {
    bin: PathBuf,
    dir: PathBuf,
    store: PathBuf,
    listen: SocketAddr,
    partner: SocketAddr,
}

impl Setup {
    fn spawn(&self, run: usize) -> (Guard, PathBuf) {
        let log = self.dir.join(format!("peer-{run:02}.out"));
        let out = std::fs::File::create(&log).unwrap();
        let err = out.try_clone().unwrap();
        let last = Ipv4Addr::from(u32::from(FIRST) + POOL - 1);
        let child = Command::new(&self.bin)
            .args([
                "--role",
                "secondary",
                "--name",
                "crash-test",
                "--mrd",
                "6",
                "--plaintext",
            ])
            .args(["--listen", &self.listen.to_string()])
            .args(["--partner", &self.partner.to_string()])
            .args(["--store", &self.store.to_string_lossy()])
            .args(["--pool", &format!("{FIRST}-{last}")])
            .args(["--status-every", "1", "--quiet"])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("the peer starts");
        (Guard(Some(child)), log)
    }
}

/// The child's store after a kill: what it would restart from.
fn read_store(path: &Path) -> BTreeMap<[u8; 4], failover_tokio::Lease> {
    FileStore::open(path, Role::Secondary, FIRST, POOL)
        .unwrap()
        .memory()
        .snapshot()
}

/// What one check after a kill covered.
#[derive(Debug, Default, Clone, Copy)]
struct Checked {
    /// Addresses with an acknowledged binding, checked.
    acked: u64,
    /// Of those, how many the store already had in a later version than acknowledged
    /// (committed, acknowledgement not yet seen by the partner: the kill hit mid-exchange).
    ahead: u64,
}

/// Every acknowledged binding is in the store, or a later version of it.
fn check_acked(
    model: &Model,
    partner: &MemoryStore,
    stored: &BTreeMap<[u8; 4], failover_tokio::Lease>,
    failures: &mut Vec<String>,
) -> Checked {
    let mut checked = 0;
    let mut ahead = 0;
    for (address, s) in &model.streamed {
        let ip = Ipv4Addr::from(*address);
        let Some(acked) = s.acked else {
            if let Some(status) = s.before {
                // Acknowledged before the stream: that status, or a version sent since.
                checked += 1;
                let lease = stored.get(address);
                let ok = lease.is_some_and(|l| {
                    l.data.status == status || s.sent.iter().any(|v| v.is(&l.data))
                });
                if !ok {
                    failures.push(format!(
                        "{ip}: {status} acknowledged, the store has {}",
                        describe(lease)
                    ));
                }
            }
            continue;
        };
        checked += 1;
        let Some(lease) = stored.get(address) else {
            failures.push(format!("{ip}: acknowledged, not in the store at all"));
            continue;
        };
        match s.sent.iter().rposition(|v| v.is(&lease.data)) {
            Some(i) if i >= acked => ahead += u64::from(i > acked),
            Some(i) => failures.push(format!(
                "{ip}: version {acked} {:?} acknowledged, the store has the older version \
                 {i} {:?}",
                s.sent[acked], s.sent[i]
            )),
            None => failures.push(format!(
                "{ip}: version {acked} {:?} acknowledged, the store has {:?}",
                s.sent[acked], lease.data
            )),
        }
    }
    for (address, status) in &model.others {
        checked += 1;
        let ip = Ipv4Addr::from(*address);
        let lease = stored.get(address);
        let have = lease.map(|l| l.data.status);
        // The acknowledged status; or a newer one the partner holds (and may have sent); or a
        // change the child made since to what it had accepted (pool balancing on the secondary
        // gives BACKUP addresses back as FREE): its own record, not acknowledged yet, which
        // keeps the status it last accepted from the partner as the partner's until it is
        // queued, and the status it sent once it is (`LeaseRecord::queued`).
        let newer = partner.get(ip).map(|l| l.data.status);
        let own_change = lease.is_some_and(|l| {
            !l.partner_has_it
                && (l.local.partner_status == Some(*status)
                    || (*status == BindingStatus::Backup
                        && l.data.status == BindingStatus::Free
                        && l.local.partner_status == Some(BindingStatus::Free)))
        });
        if have != Some(*status) && have != newer && !own_change {
            failures.push(format!(
                "{ip}: {status} acknowledged, the store has {} (partner {newer:?})",
                lease.map_or_else(|| "nothing".into(), |l| format!("{l:?}"))
            ));
        }
    }
    Checked {
        acked: checked,
        ahead,
    }
}

struct Partner {
    handle: Handle,
    events: mpsc::Receiver<PeerEvent>,
    model: Arc<Mutex<Model>>,
    acked: Arc<Notify>,
    /// The `peer` process of the moment, and its output.
    child: Guard,
    log: PathBuf,
}

impl Partner {
    fn take(&mut self, e: &PeerEvent) {
        let mut m = self.model.lock().unwrap();
        m.on_event(e);
        if matches!(e, PeerEvent::Action(Action::BindingAcked { .. })) {
            self.acked.notify_one();
        }
    }

    /// Handles the partner's events for `d`.
    async fn pump_for(&mut self, d: Duration) {
        let until = tokio::time::Instant::now() + d;
        loop {
            match tokio::time::timeout_at(until, self.events.recv()).await {
                Ok(Some(e)) => self.take(&e),
                Ok(None) => panic!("the partner's task stopped"),
                Err(_) => break,
            }
        }
        self.child.assert_running(&self.log);
    }

    /// Handles the partner's events until `done` holds (checked after each event and every
    /// 10 ms); panics after [`WAIT`].
    async fn pump_until(&mut self, what: &str, mut done: impl FnMut(&Partner) -> bool) {
        let until = tokio::time::Instant::now() + WAIT;
        while !done(self) {
            self.child.assert_running(&self.log);
            assert!(
                tokio::time::Instant::now() < until,
                "timed out waiting for {what}; partner {:?}",
                self.handle.status()
            );
            let tick = tokio::time::Instant::now() + Duration::from_millis(10);
            match tokio::time::timeout_at(tick, self.events.recv()).await {
                Ok(Some(e)) => self.take(&e),
                Ok(None) => panic!("the partner's task stopped"),
                Err(_) => {}
            }
        }
    }

    /// Every event already queued.
    fn drain(&mut self) {
        while let Ok(e) = self.events.try_recv() {
            self.take(&e);
        }
    }
}

/// Streams versions of the `STREAMED` addresses: one unacknowledged version per address at
/// most, so that each acknowledgement names one version. Starts once the pair first reached
/// NORMAL (a primary grants no leases in RECOVER; and the child's first answer to UPDREQALL
/// says FREE for every address it has never heard of).
async fn stream(
    handle: Handle,
    model: Arc<Mutex<Model>>,
    acked: Arc<Notify>,
    stop: Arc<AtomicBool>,
    seed: u64,
) {
    let mut rng = Rng(seed);
    let _ = handle.wait_for_state(ServerState::Normal).await;
    let base = wall_clock().0 + 3600;
    let mut serial = 0u32;
    let mut clients = 0u16;
    while !stop.load(Ordering::Relaxed) {
        let next = {
            let mut m = model.lock().unwrap();
            let ready: Vec<[u8; 4]> = m
                .streamed
                .iter()
                .filter(|(_, s)| s.ready_for_next())
                .map(|(a, _)| *a)
                .collect();
            if ready.is_empty() {
                None
            } else {
                let address = ready[rng.below(ready.len() as u64) as usize];
                let s = m.streamed.get_mut(&address).unwrap();
                // A new client for a quarter of the versions (and the first).
                let hw = match s.sent.last() {
                    Some(v) if rng.below(4) != 0 => v.hw,
                    _ => {
                        clients += 1;
                        let [h, l] = clients.to_be_bytes();
                        [0x02, 0xcc, address[2], address[3], h, l]
                    }
                };
                serial += 1;
                let v = Version {
                    hw,
                    expiry: base + serial,
                    pet: base + 600 + serial,
                };
                s.sent.push(v);
                m.versions += 1;
                Some(v.binding(address))
            }
        };
        match next {
            Some(b) => handle.send_binding(b).await.expect("the partner queues it"),
            None => {
                let _ = tokio::time::timeout(Duration::from_millis(50), acked.notified()).await;
            }
        }
    }
}

/// The last status line the child printed (`--status-every 1`), if any.
fn last_status_line(log: &Path) -> Option<String> {
    std::fs::read_to_string(log)
        .ok()?
        .lines()
        .rev()
        .find(|l| l.contains("status: "))
        .map(str::to_owned)
}

fn describe(lease: Option<&failover_tokio::Lease>) -> String {
    match lease {
        None => "absent".into(),
        Some(l) => {
            let d = &l.data;
            format!(
                "{} hw {:?} expiry {:?} ({d:?})",
                d.status,
                d.hardware_address.as_ref().map(|(t, a)| (*t, a.to_vec())),
                d.lease_expiration_time.map(|t| t.0)
            )
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acked_bindings_survive_sigkill_and_the_pair_returns_to_normal() {
    let seed = std::env::var("CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(SEED);
    let started = Instant::now();
    let bin = tokio::task::spawn_blocking(peer_binary).await.unwrap();
    let build_time = started.elapsed();
    let started = Instant::now();

    let (pp, cp) = (free_port(), child_port());
    let dir = std::env::temp_dir().join(format!("failover-crash-{}-{cp}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let setup = Setup {
        bin,
        store: dir.join("child-store.log"),
        dir: dir.clone(),
        listen: SocketAddr::from(([127, 0, 0, 1], cp)),
        partner: SocketAddr::from(([127, 0, 0, 1], pp)),
    };

    // The partner: a primary with the same pool in memory.
    let store = Arc::new(MemoryStore::new(Role::Primary, FIRST, POOL));
    let mut config = Config::new(Role::Primary, "crash-test", 5);
    config.receive_timer = 6;
    let (handle, events) = PeerBuilder::new(config, setup.listen, store.clone())
        .plaintext()
        .listen(setup.partner)
        .reconnect(Duration::from_millis(50), Duration::from_millis(300))
        .reject_backoff(Duration::from_millis(300))
        .start()
        .await
        .unwrap();
    let mut model = Model::default();
    for i in 0..STREAMED {
        model
            .streamed
            .insert((u32::from(FIRST) + i).to_be_bytes(), Streamed::default());
    }
    let model = Arc::new(Mutex::new(model));
    let acked = Arc::new(Notify::new());
    let mut partner = Partner {
        handle: handle.clone(),
        events,
        model: model.clone(),
        acked: acked.clone(),
        child: Guard(None),
        log: PathBuf::new(),
    };
    let stop = Arc::new(AtomicBool::new(false));
    let streamer = tokio::spawn(stream(
        handle.clone(),
        model.clone(),
        acked.clone(),
        stop.clone(),
        seed ^ 0xa5a5,
    ));

    let mut rng = Rng(seed);
    let mut schedule = String::new();
    let mut failures = Vec::new();
    let mut checked = 0u64;
    let (mut ahead, mut kills_ahead, mut torn_tails) = (0u64, 0u64, 0u64);
    let mut torn_injected = 0u64;
    (partner.child, partner.log) = setup.spawn(0);
    for kill in 0..KILLS {
        let at = KillAt::pick(&mut rng);
        match at {
            KillAt::Start(ms) => partner.pump_for(Duration::from_millis(ms)).await,
            KillAt::AfterAcks(n) => {
                partner
                    .pump_until("acknowledgements", |p| {
                        p.model.lock().unwrap().acks_since_start >= n
                    })
                    .await;
            }
            KillAt::Streaming(ms) => {
                partner
                    .pump_until("the link", |p| p.handle.status().link == Link::Up)
                    .await;
                partner.pump_for(Duration::from_millis(ms)).await;
            }
        }
        partner.child.assert_running(&partner.log);
        partner.child.kill();
        // Everything the dead child sent reaches the partner before it sees the link go down.
        partner
            .pump_until("the partner to see the link down", |p| {
                p.handle.status().link == Link::Down
            })
            .await;
        partner.drain();
        // A torn last line left by the kill (not one written below before a restart and not
        // cut off yet because the child died before opening its store).
        let bytes = std::fs::read(&setup.store).unwrap_or_default();
        let torn = bytes.last().is_some_and(|c| *c != b'\n') && !bytes.ends_with(TORN_TAIL);
        torn_tails += u64::from(torn);
        let tail = if torn {
            let from = bytes.iter().rposition(|c| *c == b'\n').map_or(0, |i| i + 1);
            format!(
                ", torn last line {:?}",
                String::from_utf8_lossy(&bytes[from..])
            )
        } else {
            String::new()
        };
        let stored = read_store(&setup.store);
        let (n, acks) = {
            let m = model.lock().unwrap();
            (check_acked(&m, &store, &stored, &mut failures), m.acks)
        };
        checked += n.acked;
        ahead += n.ahead;
        kills_ahead += u64::from(n.ahead > 0);
        let _ = writeln!(
            schedule,
            "kill {kill:2}: {at:?}, {acks} acknowledgements so far, {} addresses checked, {} \
             ahead{}",
            n.acked, n.ahead, tail
        );
        if !failures.is_empty() {
            let keep = dir.join(format!("store-after-kill-{kill}.log"));
            let _ = std::fs::copy(&setup.store, &keep);
            panic!(
                "seed {seed}: after kill {kill} ({at:?}) the store ({}) lacks acknowledged \
                 bindings:\n{}\nschedule:\n{schedule}",
                keep.display(),
                failures.join("\n")
            );
        }
        // Now and then, what a power loss in the middle of an append would leave (SIGKILL
        // cannot tear a write): the start of a record that was never acknowledged, and bytes
        // that are not even text. The restarted peer must drop it and lose nothing after it.
        if rng.below(5) == 0 {
            let a = Ipv4Addr::from(u32::from(FIRST) + rng.below(u64::from(STREAMED)) as u32);
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(&setup.store)
                .unwrap();
            std::io::Write::write_all(&mut f, format!("recv {a} 1 - 1 02ccdeadbeef").as_bytes())
                .unwrap();
            std::io::Write::write_all(&mut f, TORN_TAIL).unwrap();
            torn_injected += 1;
            let _ = writeln!(schedule, "         torn last line written");
        }
        // Restart on the same store, now or after a moment.
        partner.pump_for(Duration::from_millis(rng.below(30))).await;
        model.lock().unwrap().acks_since_start = 0;
        (partner.child, partner.log) = setup.spawn(kill + 1);
    }

    // The stream ends; both sides return to NORMAL and agree.
    stop.store(true, Ordering::Relaxed);
    let streamed_for = started.elapsed();
    partner
        .pump_until("every streamed binding acknowledged, both NORMAL", |p| {
            let s = p.handle.status();
            s.state == ServerState::Normal
                && s.partner_state == Some(ServerState::Normal)
                && s.link == Link::Up
                && s.queued == 0
                && s.unacked_sent == 0
                && p.model.lock().unwrap().all_acked()
        })
        .await;
    streamer.await.unwrap();
    let quiet_since = Instant::now();
    // A status line of the child's printed after that: NORMAL, nothing pending.
    let line = {
        let until = Instant::now() + WAIT;
        loop {
            partner.pump_for(Duration::from_millis(100)).await;
            let line = last_status_line(&partner.log);
            let s = partner.handle.status();
            let settled = s.queued == 0 && s.unacked_sent == 0 && s.link == Link::Up;
            if quiet_since.elapsed() > Duration::from_millis(1100)
                && settled
                && let Some(l) = line
                && l.contains("status: NORMAL")
                && l.contains("partner NORMAL")
                && l.contains("queued 0, unacked 0, awaiting commit 0")
            {
                break l;
            }
            assert!(
                Instant::now() < until,
                "the child did not settle in NORMAL: {:?}\npartner {:?}",
                last_status_line(&partner.log),
                partner.handle.status()
            );
        }
    };
    assert!(line.contains("link Up"), "{line}");
    partner.drain();

    // The lease tables, address by address.
    let theirs = read_store(&setup.store);
    let ours = store.snapshot();
    let mut differences = Vec::new();
    let mut active = 0;
    for i in 0..POOL {
        let a = (u32::from(FIRST) + i).to_be_bytes();
        let (p, c) = (ours.get(&a), theirs.get(&a));
        // The whole binding: status, client, lease expiration, PET, times, flags.
        let same = matches!((p, c), (Some(p), Some(c)) if p.data == c.data);
        if !same {
            differences.push(format!(
                "{}: partner {}, child {}",
                Ipv4Addr::from(a),
                describe(p),
                describe(c)
            ));
        }
        active += usize::from(p.is_some_and(|l| l.data.status == BindingStatus::Active));
    }
    {
        // And the partner's table has the last version of every streamed address.
        let m = model.lock().unwrap();
        for (a, s) in &m.streamed {
            let last = s.sent.last().expect("every streamed address got versions");
            assert!(
                last.is(&ours[a].data),
                "{}: partner holds {:?}, last sent {last:?}",
                Ipv4Addr::from(*a),
                ours[a].data
            );
        }
        assert!(
            differences.is_empty(),
            "seed {seed}: the lease tables differ:\n{}",
            differences.join("\n")
        );
        assert!(
            m.rejected.is_empty(),
            "seed {seed}: unexpected reports:\n{}",
            m.rejected.join("\n")
        );
        assert_eq!(active, STREAMED as usize);
        println!(
            "crash consistency (seed {seed:#x}): {KILLS} SIGKILLs, {} versions streamed, {} \
             acknowledgements; {checked} acknowledged bindings checked against the store after \
             the kills; {ahead} found committed ahead of their acknowledgement (at \
             {kills_ahead} kills), {torn_tails} torn last lines left by a kill, {torn_injected} written \
             before a restart; {} crossing updates refused (reason 16); {} addresses compared at the \
             end; stream {:.1} s, total {:.1} s (+ {:.1} s cargo build check)",
            m.versions,
            m.acks,
            m.duels,
            POOL,
            streamed_for.as_secs_f64(),
            started.elapsed().as_secs_f64(),
            build_time.as_secs_f64()
        );
        println!("{schedule}");
    }
    partner.child.kill();
    handle.abort().await;
    if std::env::var_os("CRASH_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        println!("kept {}", dir.display());
    }
}
