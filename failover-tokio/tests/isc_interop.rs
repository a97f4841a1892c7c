//! Live interoperation with ISC dhcpd 4.4 (Debian's isc-dhcp-server) as the failover partner.
//!
//! Each test runs one real `dhcpd` on the loopback (its failover endpoint on 127.0.0.1, ours
//! on 127.0.0.2, high ports) with a port-less bridge as its DHCP interface, and checks both
//! sides: our status and store, ISC's log (`I move from X to Y`, `peer moves from X to Y`) and
//! ISC's lease file. Skipped with a note when dhcpd, ip or the right to create a bridge is
//! missing; failing instead when `FAILOVER_REQUIRE_TOOLS=1`.
//!
//! Scenarios: cold starts with ISC as secondary and as primary; warm restarts of either side;
//! 50 ACTIVE bindings; ISC crashing and coming back to queued updates; either side losing
//! its database (UPDREQALL of a 1,000-address pool, both directions); rejects (wrong
//! relationship name, skewed clock) and junk from the partner's address. Namespace mode: ISC
//! serving real (relayed) DHCP clients from a veth pair between two network namespaces, with
//! our peer in ISC's namespace, and the clients' leases reaching our store.
//!
//! The tests run in parallel: each has its own dhcpd, bridge, directory and ports. ISC's
//! timers are short (mrd 6, MCLT 10) and the file takes about 25 s. `--nocapture` prints
//! timings and ISC's state changes; `ISC_INTEROP_KEEP=1` keeps each dhcpd's directory
//! (config, lease file, stamped log) in the temporary directory, as a failing test does.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs,
    unreachable_pub
)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use failover_fsm::{
    Action, BindingData, BindingStatus, Config, Event, Link, RejectReason, Role, ServerState,
};
use failover_proto::Repr;
use failover_tokio::{FileStore, Handle, MemoryStore, PeerBuilder, PeerEvent, Storage, wall_clock};
use tokio::sync::mpsc;

use failover_testkit::isc;
use failover_testkit::isc::dhcpd::{Dhcpd, IscConfig, IscRole, free_port, stamp};
use failover_testkit::isc::leases::unix_time;
use failover_testkit::isc::netns::{self, ChildProc, Netns};
use failover_testkit::isc::wire;

const NAME: &str = "fo-interop";
/// ISC's failover address; ours is [`OURS`]. ISC accepts connections only from its
/// configured `peer address`, so our outgoing connections are bound to it.
const ISC_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);
const OURS: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
/// MCLT both sides use (ours only matters when we are the primary).
const MCLT: u32 = 10;
/// Every wait is bounded by this.
const WAIT: Duration = Duration::from_secs(60);
const POOL_FIRST: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 0);

/// Where one test's two endpoints live.
struct Endpoints {
    isc: SocketAddr,
    ours: SocketAddr,
}

impl Endpoints {
    fn new() -> Self {
        Endpoints {
            isc: SocketAddr::new(IpAddr::V4(ISC_IP), free_port()),
            ours: SocketAddr::new(IpAddr::V4(OURS), free_port()),
        }
    }
}

fn isc(role: IscRole, ep: &Endpoints, pool_len: u32) -> Dhcpd {
    let mut c = IscConfig::new(role, NAME, ep.isc, ep.ours);
    c.mclt = MCLT;
    c.pool = (
        POOL_FIRST,
        Ipv4Addr::from(u32::from(POOL_FIRST) + pool_len - 1),
    );
    Dhcpd::new(c).expect("prepare dhcpd")
}

fn our_config(role: Role, name: &str) -> Config {
    let mut c = Config::new(role, name, MCLT);
    c.receive_timer = 6;
    c.max_unacked_bndupd = 10;
    c.load_balance_max_seconds = 3;
    c
}

/// Our peer and everything it reported.
struct Peer {
    handle: Handle,
    events: EventLog,
}

impl Peer {
    async fn start<S: Storage>(config: Config, ep: &Endpoints, store: Arc<S>) -> Peer {
        let (handle, rx) = PeerBuilder::new(config, ep.isc, store)
            .plaintext()
            .listen(ep.ours)
            .bind_address(IpAddr::V4(OURS))
            .reconnect(Duration::from_millis(200), Duration::from_secs(1))
            .reject_backoff(Duration::from_secs(2))
            .start()
            .await
            .expect("start our peer");
        let events = Arc::new(Mutex::new(Vec::new()));
        tokio::spawn(record(rx, events.clone()));
        Peer { handle, events }
    }

    fn state(&self) -> ServerState {
        self.handle.status().state
    }

    fn events_text(&self) -> String {
        let ev = self.events.lock().unwrap();
        ev.iter()
            .rev()
            .take(40)
            .rev()
            .map(|(_, t, e)| format!("  {t} {e:?}"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Waits for `state`; fails with our status and recent events.
    async fn wait_state(&self, state: ServerState, within: Duration) {
        if tokio::time::timeout(within, self.handle.wait_for_state(state))
            .await
            .is_err()
        {
            panic!(
                "our peer did not reach {state} within {within:?}: {:?}\nour events:\n{}",
                self.handle.status(),
                self.events_text()
            );
        }
    }

    /// Waits until `ok` holds; fails with our status.
    async fn wait_until(&self, what: &str, within: Duration, ok: impl Fn() -> bool) {
        let deadline = tokio::time::Instant::now() + within;
        while !ok() {
            if tokio::time::Instant::now() >= deadline {
                panic!(
                    "never saw {what} within {within:?}: {:?}\nour events:\n{}",
                    self.handle.status(),
                    self.events_text()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn saw(&self, f: impl Fn(&PeerEvent) -> bool) -> bool {
        self.when(f).is_some()
    }

    /// When the first event matching `f` arrived.
    fn when(&self, f: impl Fn(&PeerEvent) -> bool) -> Option<Instant> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .find(|(_, _, e)| f(e))
            .map(|(t, _, _)| *t)
    }
}

type EventLog = Arc<Mutex<Vec<(Instant, String, PeerEvent)>>>;

async fn record(mut rx: mpsc::Receiver<PeerEvent>, into: EventLog) {
    while let Some(e) = rx.recv().await {
        into.lock().unwrap().push((Instant::now(), stamp(), e));
    }
}

fn entered(state: ServerState) -> impl Fn(&PeerEvent) -> bool {
    move |e| matches!(e, PeerEvent::Engine(Event::StateChanged { to, .. }) if *to == state)
}

/// An ACTIVE binding for a client whose MAC ends in `n`, leased for 600 s from now.
fn active(address: Ipv4Addr, n: u16) -> BindingData {
    let wall = wall_clock();
    let [hi, lo] = n.to_be_bytes();
    let mut b = BindingData::new(address, BindingStatus::Active)
        .with_client(None, 1, &[0x02, 0x00, 0x5e, 0x10, hi, lo])
        .unwrap();
    b.lease_expiration_time = Some(wall.plus(600));
    b.potential_expiration_time = Some(wall.plus(600 + MCLT));
    b.start_time_of_state = Some(wall);
    b.client_last_transaction_time = Some(wall);
    b
}

fn mac(n: u16) -> String {
    let [hi, lo] = n.to_be_bytes();
    format!("02:00:5e:10:{hi:02x}:{lo:02x}")
}

/// Prints a timing line (shown with `--nocapture`).
fn timing(test: &str, what: &str, since: Instant) {
    eprintln!("[{test}] {what}: {:.2} s", since.elapsed().as_secs_f64());
}

// ---------------------------------------------------------------------------------------------

/// 1. ISC secondary, our primary, both databases empty: both reach NORMAL, and ISC stores the
///    half of the pool we hand it as BACKUP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isc_secondary_cold_start() {
    const T: &str = "isc_secondary_cold_start";
    if !isc::tools_available(T) {
        return;
    }
    let ep = Endpoints::new();
    let mut dhcpd = isc(IscRole::Secondary, &ep, 64);
    let t0 = Instant::now();
    dhcpd.start().unwrap();
    let store = Arc::new(MemoryStore::new(Role::Primary, POOL_FIRST, 64));
    let peer = Peer::start(our_config(Role::Primary, NAME), &ep, store.clone()).await;

    dhcpd.wait_state(0, "normal", WAIT).await;
    peer.wait_state(ServerState::Normal, WAIT).await;
    timing(T, "both NORMAL", t0);
    // ISC got our UPDDONE for its UPDREQALL (it once never came: see the engine's
    // `supersede`), and our NORMAL.
    let log = dhcpd.log();
    assert!(log.contains("peer update completed"), "{log}");
    assert!(
        log.contains("peer moves from recover-done to normal"),
        "{log}"
    );
    assert_eq!(
        peer.handle.status().partner_state,
        Some(ServerState::Normal)
    );

    // Pool balancing: we kept 32 FREE and gave ISC 32 as BACKUP; ISC acknowledged them all.
    let leases = dhcpd
        .wait_leases("32 backup leases", WAIT, |l| l.count("backup") == 32)
        .await;
    timing(T, "ISC holds 32 BACKUP", t0);
    assert_eq!(leases.count("free"), 32, "{}", leases.summary());
    assert_eq!(store.count(BindingStatus::Backup), 32);
    assert_eq!(store.count(BindingStatus::Free), 32);
    peer.wait_until("every BNDUPD acknowledged", WAIT, || {
        let s = peer.handle.status();
        s.unacked_sent == 0 && s.queued == 0
    })
    .await;
    // What ISC holds as BACKUP is exactly what we gave away.
    for (a, l) in &store.snapshot() {
        let ip = Ipv4Addr::from(*a);
        let theirs = leases.get(ip).map(|x| x.binding_state.as_str());
        let want = match l.local.status {
            BindingStatus::Backup => "backup",
            _ => "free",
        };
        assert_eq!(theirs, Some(want), "{ip}: {}", leases.summary());
    }
    assert!(!peer.saw(|e| matches!(e, PeerEvent::Engine(Event::ProtocolError { .. }))));
}

/// 2. ISC primary, our secondary, both databases empty: both reach NORMAL; we learn ISC's
///    MCLT and HBA and store the BACKUP addresses ISC hands us.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isc_primary_cold_start() {
    const T: &str = "isc_primary_cold_start";
    if !isc::tools_available(T) {
        return;
    }
    let ep = Endpoints::new();
    let mut dhcpd = isc(IscRole::Primary, &ep, 64);
    let t0 = Instant::now();
    dhcpd.start().unwrap();
    let store = Arc::new(MemoryStore::new(Role::Secondary, POOL_FIRST, 64));
    let mut config = our_config(Role::Secondary, NAME);
    config.mclt = 0; // learned from ISC's CONNECT
    let peer = Peer::start(config, &ep, store.clone()).await;

    dhcpd.wait_state(0, "normal", WAIT).await;
    peer.wait_state(ServerState::Normal, WAIT).await;
    timing(T, "both NORMAL", t0);
    let status = peer.handle.status();
    assert_eq!(status.mclt, MCLT);
    assert_eq!(status.hba, failover_fsm::Hba::split(128));

    // ISC's pool balancing: half the pool comes to us as BACKUP, and we acknowledge it.
    peer.wait_until("32 BACKUP addresses in our store", WAIT, || {
        store.count(BindingStatus::Backup) == 32
    })
    .await;
    let leases = dhcpd
        .wait_leases("32 backup leases", WAIT, |l| l.count("backup") == 32)
        .await;
    timing(T, "32 BACKUP stored on both sides", t0);
    for (a, l) in &store.snapshot() {
        let ip = Ipv4Addr::from(*a);
        let theirs = leases.get(ip).map(|x| x.binding_state.as_str());
        let ours = match l.local.status {
            BindingStatus::Backup => "backup",
            BindingStatus::Free => "free",
            other => panic!("{ip} is {other:?} in our store"),
        };
        assert_eq!(theirs, Some(ours), "{ip}: {}", leases.summary());
    }
    // ISC sends a secondary's BACKUP leases and nothing else it would reject.
    assert!(!peer.saw(|e| matches!(e, PeerEvent::Engine(Event::ProtocolError { .. }))));
    assert!(!dhcpd.log().contains("rejected"), "{}", dhcpd.log());
}

/// 3. Warm starts with durable state on both sides: ISC restarted with its lease file, then
///    our peer shut down and restarted with the same [`FileStore`]: back to NORMAL each time,
///    without a full resynchronisation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_restarts_return_to_normal() {
    const T: &str = "warm_restarts_return_to_normal";
    if !isc::tools_available(T) {
        return;
    }
    let ep = Endpoints::new();
    let mut dhcpd = isc(IscRole::Secondary, &ep, 64);
    let path = std::env::temp_dir().join(format!(
        "isc-interop-{}-ours-{}.log",
        std::process::id(),
        ep.ours.port()
    ));
    let _ = std::fs::remove_file(&path);
    let open = || Arc::new(FileStore::open(&path, Role::Primary, POOL_FIRST, 64).unwrap());
    dhcpd.start().unwrap();
    let store = open();
    let peer = Peer::start(our_config(Role::Primary, NAME), &ep, store.clone()).await;
    dhcpd.wait_state(0, "normal", WAIT).await;
    peer.wait_state(ServerState::Normal, WAIT).await;
    dhcpd
        .wait_leases("32 backup leases", WAIT, |l| l.count("backup") == 32)
        .await;
    peer.wait_until("the pool balance acknowledged", WAIT, || {
        peer.handle.status().unacked_sent == 0 && peer.handle.status().queued == 0
    })
    .await;

    // (a) ISC stops (SIGTERM: only a FIN on the wire) and comes back with its lease file.
    let t0 = Instant::now();
    dhcpd.terminate();
    peer.wait_state(ServerState::CommunicationsInterrupted, WAIT)
        .await;
    timing(T, "ISC stopped -> our COMMUNICATIONS-INTERRUPTED", t0);
    let mark = dhcpd.mark();
    dhcpd.start().unwrap();
    dhcpd
        .wait_log(mark, "I move from normal to startup", WAIT)
        .await;
    dhcpd.wait_state(mark, "normal", WAIT).await;
    peer.wait_state(ServerState::Normal, WAIT).await;
    timing(T, "ISC restarted -> both NORMAL", t0);
    assert!(
        !dhcpd.log_since(mark).contains("requesting full update"),
        "a warm restart must not need a full update:\n{}",
        dhcpd.log_since(mark)
    );

    // (b) Our peer shuts down (SHUTDOWN, ISC takes over) and restarts from its file.
    let t1 = Instant::now();
    let mark = dhcpd.mark();
    peer.handle.shutdown().await;
    dhcpd
        .wait_log(mark, "peer moves from normal to shutdown", WAIT)
        .await;
    dhcpd.wait_state(mark, "partner-down", WAIT).await;
    timing(T, "our SHUTDOWN -> ISC PARTNER-DOWN, our task ended", t1);
    drop(peer);
    drop(store);
    let store = open();
    assert_eq!(store.memory().count(BindingStatus::Backup), 32);
    let mark = dhcpd.mark();
    let peer = Peer::start(our_config(Role::Primary, NAME), &ep, store.clone()).await;
    dhcpd.wait_state(mark, "normal", WAIT).await;
    peer.wait_state(ServerState::Normal, WAIT).await;
    timing(T, "our restart -> both NORMAL", t1);
    eprintln!(
        "[{T}] ISC after our restart:\n{}",
        transitions(&dhcpd.log_since(mark))
    );
    assert_eq!(store.memory().count(BindingStatus::Backup), 32);
    let leases = dhcpd.leases();
    assert_eq!(leases.count("backup"), 32, "{}", leases.summary());
    let _ = std::fs::remove_file(&path);
}

/// 3b. Warm starts the other way round: ISC primary, our secondary with a [`FileStore`]. ISC
///     restarted with its lease file, then our peer restarted from its file: back to NORMAL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_restarts_with_isc_primary_return_to_normal() {
    const T: &str = "warm_restarts_with_isc_primary_return_to_normal";
    if !isc::tools_available(T) {
        return;
    }
    let ep = Endpoints::new();
    let mut dhcpd = isc(IscRole::Primary, &ep, 64);
    let path = std::env::temp_dir().join(format!(
        "isc-interop-{}-ours-{}.log",
        std::process::id(),
        ep.ours.port()
    ));
    let _ = std::fs::remove_file(&path);
    let open = || Arc::new(FileStore::open(&path, Role::Secondary, POOL_FIRST, 64).unwrap());
    dhcpd.start().unwrap();
    let store = open();
    let peer = Peer::start(our_config(Role::Secondary, NAME), &ep, store.clone()).await;
    dhcpd.wait_state(0, "normal", WAIT).await;
    peer.wait_state(ServerState::Normal, WAIT).await;
    peer.wait_until("ISC's BACKUP handout stored", WAIT, || {
        store.memory().count(BindingStatus::Backup) == 32
    })
    .await;

    // (a) ISC stops and comes back with its lease file.
    let t0 = Instant::now();
    dhcpd.terminate();
    peer.wait_state(ServerState::CommunicationsInterrupted, WAIT)
        .await;
    let mark = dhcpd.mark();
    dhcpd.start().unwrap();
    dhcpd.wait_state(mark, "normal", WAIT).await;
    peer.wait_state(ServerState::Normal, WAIT).await;
    timing(T, "ISC restarted -> both NORMAL", t0);

    // (b) Our peer stops and restarts from its file.
    let t1 = Instant::now();
    peer.handle.shutdown().await;
    drop(peer);
    drop(store);
    let store = open();
    assert_eq!(store.memory().count(BindingStatus::Backup), 32);
    let mark = dhcpd.mark();
    let peer = Peer::start(our_config(Role::Secondary, NAME), &ep, store.clone()).await;
    dhcpd.wait_state(mark, "normal", WAIT).await;
    peer.wait_state(ServerState::Normal, WAIT).await;
    timing(T, "our restart -> both NORMAL", t1);
    eprintln!(
        "[{T}] ISC after our restart:\n{}",
        transitions(&dhcpd.log_since(mark))
    );
    assert_eq!(store.memory().count(BindingStatus::Backup), 32);
    let _ = std::fs::remove_file(&path);
}

/// ISC's state lines (`I move …`, `peer moves …`) from a log excerpt.
fn transitions(log: &str) -> String {
    log.lines()
        .filter(|l| l.contains("move") || l.contains("Both servers"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// 4. Binding updates: our primary grants 50 leases; ISC stores them as ACTIVE with the right
///    hardware address and acknowledges every one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn active_bindings_reach_isc() {
    const T: &str = "active_bindings_reach_isc";
    if !isc::tools_available(T) {
        return;
    }
    const N: u16 = 50;
    let ep = Endpoints::new();
    let mut dhcpd = isc(IscRole::Secondary, &ep, 128);
    dhcpd.start().unwrap();
    let store = Arc::new(MemoryStore::new(Role::Primary, POOL_FIRST, 128));
    let peer = Peer::start(our_config(Role::Primary, NAME), &ep, store.clone()).await;
    dhcpd.wait_state(0, "normal", WAIT).await;
    peer.wait_state(ServerState::Normal, WAIT).await;
    dhcpd
        .wait_leases("64 backup leases", WAIT, |l| l.count("backup") == 64)
        .await;

    let t0 = Instant::now();
    let mut granted = Vec::new();
    for n in 0..N {
        let a = store.free_address().expect("a FREE address");
        let b = active(a, n);
        peer.handle.send_binding(b.clone()).await.unwrap();
        granted.push((a, n, b));
    }
    peer.wait_until("all 50 acknowledged", WAIT, || {
        let s = peer.handle.status();
        s.unacked_sent == 0 && s.queued == 0
    })
    .await;
    timing(T, "50 BNDUPD acknowledged by ISC", t0);
    let leases = dhcpd
        .wait_leases("50 active leases", WAIT, |l| l.count("active") == 50)
        .await;
    timing(T, "50 ACTIVE in ISC's lease file", t0);
    // The times on the wire are what ISC stored: lease-expiration-time as `ends`,
    // potential-expiration-time as `tsfp`.
    let at = |t: &Option<String>| t.as_deref().and_then(unix_time);
    for (a, n, b) in &granted {
        let l = leases.get(*a).unwrap();
        assert_eq!(l.binding_state, "active", "{a}");
        assert_eq!(
            l.hardware_ethernet.as_deref(),
            Some(mac(*n).as_str()),
            "{a}"
        );
        assert_eq!(
            at(&l.ends),
            b.lease_expiration_time.map(|t| t.0),
            "{a}: {l:?}"
        );
        assert_eq!(
            at(&l.tsfp),
            b.potential_expiration_time.map(|t| t.0),
            "{a}: {l:?}"
        );
    }
    assert_eq!(leases.count("backup"), 64, "{}", leases.summary());
    assert!(!peer.saw(|e| matches!(e, PeerEvent::Action(Action::BindingRejected { .. }))));
}

/// 5. Faults: ISC crashes (SIGKILL); we notice at once (the kernel sends the FIN) and queue
///    the leases we grant meanwhile; ISC restarts with its lease file: NORMAL again and the
///    queued updates arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isc_crash_and_restart_delivers_queued_updates() {
    const T: &str = "isc_crash_and_restart_delivers_queued_updates";
    if !isc::tools_available(T) {
        return;
    }
    let ep = Endpoints::new();
    let mut dhcpd = isc(IscRole::Secondary, &ep, 64);
    dhcpd.start().unwrap();
    let store = Arc::new(MemoryStore::new(Role::Primary, POOL_FIRST, 64));
    let config = our_config(Role::Primary, NAME);
    let receive_timer = config.receive_timer;
    let peer = Peer::start(config, &ep, store.clone()).await;
    dhcpd.wait_state(0, "normal", WAIT).await;
    peer.wait_state(ServerState::Normal, WAIT).await;
    dhcpd
        .wait_leases("32 backup leases", WAIT, |l| l.count("backup") == 32)
        .await;

    let t0 = Instant::now();
    dhcpd.kill();
    peer.wait_state(
        ServerState::CommunicationsInterrupted,
        Duration::from_secs(u64::from(receive_timer)),
    )
    .await;
    timing(T, "ISC SIGKILLed -> our COMMUNICATIONS-INTERRUPTED", t0);

    // Leases granted while the partner is away wait in the queue.
    let mut granted = Vec::new();
    for n in 0..10 {
        let a = store.free_address().unwrap();
        peer.handle.send_binding(active(a, n)).await.unwrap();
        granted.push((a, n));
    }
    peer.wait_until("10 bindings queued", WAIT, || {
        peer.handle.status().queued == 10
    })
    .await;

    let t1 = Instant::now();
    let mark = dhcpd.mark();
    dhcpd.start().unwrap();
    dhcpd.wait_state(mark, "normal", WAIT).await;
    peer.wait_state(ServerState::Normal, WAIT).await;
    timing(T, "ISC restarted -> both NORMAL", t1);
    let leases = dhcpd
        .wait_leases("the 10 queued leases", WAIT, |l| l.count("active") == 10)
        .await;
    timing(T, "queued updates in ISC's lease file", t1);
    for (a, n) in &granted {
        assert_eq!(
            leases.get(*a).and_then(|l| l.hardware_ethernet.clone()),
            Some(mac(*n)),
            "{a}"
        );
    }
    peer.wait_until("the queue drained", WAIT, || {
        let s = peer.handle.status();
        s.unacked_sent == 0 && s.queued == 0
    })
    .await;
    eprintln!(
        "[{T}] ISC after its restart:\n{}",
        transitions(&dhcpd.log_since(mark))
    );
}

/// 6. Our secondary loses its storage and restarts: RECOVER, UPDREQALL, ISC resends the whole
///    pool, RECOVER-WAIT (MCLT), RECOVER-DONE, NORMAL. Measures ISC's resend rate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_storage_recovers_from_isc() {
    const T: &str = "lost_storage_recovers_from_isc";
    if !isc::tools_available(T) {
        return;
    }
    const POOL: u32 = 1000;
    let ep = Endpoints::new();
    let mut dhcpd = isc(IscRole::Primary, &ep, POOL);
    dhcpd.start().unwrap();
    let mut config = our_config(Role::Secondary, NAME);
    config.mclt = 0;
    let store = Arc::new(MemoryStore::new(Role::Secondary, POOL_FIRST, POOL));
    let peer = Peer::start(config.clone(), &ep, store.clone()).await;
    dhcpd.wait_state(0, "normal", WAIT).await;
    peer.wait_state(ServerState::Normal, WAIT).await;
    peer.wait_until("500 BACKUP addresses", WAIT, || {
        store.count(BindingStatus::Backup) == 500
    })
    .await;
    let before: Vec<Ipv4Addr> = store
        .snapshot()
        .iter()
        .filter(|(_, l)| l.local.status == BindingStatus::Backup)
        .map(|(a, _)| Ipv4Addr::from(*a))
        .collect();
    // A crash: no SHUTDOWN, no DISCONNECT, the kernel closes the socket.
    peer.handle.abort().await;
    drop(peer);

    // A new, empty store (a fresh file, fsync'd per binding): we come back in RECOVER.
    let t0 = Instant::now();
    let mark = dhcpd.mark();
    let path = std::env::temp_dir().join(format!(
        "isc-interop-{}-ours-{}.log",
        std::process::id(),
        ep.ours.port()
    ));
    let _ = std::fs::remove_file(&path);
    let file = Arc::new(FileStore::open(&path, Role::Secondary, POOL_FIRST, POOL).unwrap());
    let peer = Peer::start(config, &ep, file.clone()).await;
    peer.wait_state(ServerState::Normal, WAIT).await;
    dhcpd
        .wait_log(mark, "peer moves from recover-done to normal", WAIT)
        .await;
    let total = t0.elapsed();
    let rec = peer.when(entered(ServerState::Recover));
    let done = peer.when(|e| matches!(e, PeerEvent::Engine(Event::UpdatesReceived)));
    let (Some(rec), Some(done)) = (rec, done) else {
        panic!("no RECOVER / UPDDONE seen:\n{}", peer.events_text());
    };
    let resync = done.duration_since(rec).as_secs_f64();
    let received = peer.handle.counters().messages_in();
    eprintln!(
        "[{T}] ISC answered our UPDREQALL for a {POOL}-address pool in {resync:.2} s \
         ({:.0} BNDUPD/s, each committed to an fsync'd file before its BNDACK); \
         RECOVER -> NORMAL {:.2} s; {received} messages received",
        f64::from(POOL) / resync,
        total.as_secs_f64()
    );
    eprintln!("[{T}] ISC:\n{}", transitions(&dhcpd.log_since(mark)));
    // ISC answered UPDREQALL with every lease of the pool (plus CONNECT, STATE, UPDDONE...).
    assert!(received > u64::from(POOL), "{received}");
    let store = file.memory();
    assert!(
        peer.saw(entered(ServerState::RecoverWait)) || peer.saw(entered(ServerState::RecoverDone))
    );
    let after: Vec<Ipv4Addr> = store
        .snapshot()
        .iter()
        .filter(|(_, l)| l.local.status == BindingStatus::Backup)
        .map(|(a, _)| Ipv4Addr::from(*a))
        .collect();
    assert_eq!(after, before, "the BACKUP pool came back from ISC");
    let _ = std::fs::remove_file(&path);
}

/// Seconds of the day of a log line stamped `HH:MM:SS.mmm …`.
fn log_time(line: &str) -> f64 {
    let t = line.split_whitespace().next().unwrap_or_default();
    let mut parts = t.split(':').map(|p| p.parse::<f64>().unwrap_or(0.0));
    let (h, m, s) = (
        parts.next().unwrap_or(0.0),
        parts.next().unwrap_or(0.0),
        parts.next().unwrap_or(0.0),
    );
    h * 3600.0 + m * 60.0 + s
}

/// 6b. ISC (secondary) loses its lease file: it comes back in RECOVER and asks for everything
///     (UPDREQALL); we resend the whole pool, ISC ends in NORMAL with our leases. Measures our
///     resend rate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isc_lost_database_recovers_from_us() {
    const T: &str = "isc_lost_database_recovers_from_us";
    if !isc::tools_available(T) {
        return;
    }
    const POOL: u32 = 1000;
    let ep = Endpoints::new();
    let mut dhcpd = isc(IscRole::Secondary, &ep, POOL);
    dhcpd.start().unwrap();
    let store = Arc::new(MemoryStore::new(Role::Primary, POOL_FIRST, POOL));
    let peer = Peer::start(our_config(Role::Primary, NAME), &ep, store.clone()).await;
    dhcpd.wait_state(0, "normal", WAIT).await;
    peer.wait_state(ServerState::Normal, WAIT).await;
    let mut granted = Vec::new();
    for n in 0..20 {
        let a = store.free_address().unwrap();
        peer.handle.send_binding(active(a, n)).await.unwrap();
        granted.push((a, n));
    }
    peer.wait_until("balancing and leases acknowledged", WAIT, || {
        let s = peer.handle.status();
        s.unacked_sent == 0 && s.queued == 0 && store.count(BindingStatus::Backup) == 500
    })
    .await;

    // ISC crashes and loses its lease file.
    dhcpd.kill();
    std::fs::write(dhcpd.lease_path(), b"").unwrap();
    peer.wait_state(ServerState::CommunicationsInterrupted, WAIT)
        .await;
    let t0 = Instant::now();
    let mark = dhcpd.mark();
    dhcpd.start().unwrap();
    let asked = dhcpd
        .wait_log(mark, "Sent update request all message", WAIT)
        .await;
    let completed = dhcpd.wait_log(mark, "peer update completed", WAIT).await;
    dhcpd.wait_log(mark, "Both servers normal", WAIT).await;
    peer.wait_state(ServerState::Normal, WAIT).await;
    let resync = log_time(&completed) - log_time(&asked);
    eprintln!(
        "[{T}] we answered ISC's UPDREQALL for a {POOL}-address pool in {resync:.2} s \
         ({:.0} BNDUPD/s, ISC batching its BNDACKs); ISC restart -> both NORMAL {:.2} s",
        f64::from(POOL) / resync,
        t0.elapsed().as_secs_f64()
    );
    eprintln!("[{T}] ISC:\n{}", transitions(&dhcpd.log_since(mark)));
    // Our NORMAL follows ISC's RECOVER-DONE at once (it once waited for the next message from
    // ISC, a CONTACT 2 s later, because the task did not act on events queued by the engine's
    // last poll_transmit).
    let isc_done = dhcpd
        .wait_log(mark, "I move from recover-wait to recover-done", WAIT)
        .await;
    let we_normal = dhcpd
        .wait_log(mark, "peer moves from partner-down to normal", WAIT)
        .await;
    let lag = log_time(&we_normal) - log_time(&isc_done);
    assert!(
        lag < 1.0,
        "our NORMAL came {lag:.2} s after ISC's RECOVER-DONE"
    );
    // ISC balances from the secondary's side too: with 480 FREE against its 500 BACKUP it
    // gives 10 back (BNDUPD FREE). Both databases must end up the same.
    let ours = |a: &[u8; 4]| match store.get(Ipv4Addr::from(*a)).map(|l| l.local.status) {
        Some(BindingStatus::Active) => "active",
        Some(BindingStatus::Backup) => "backup",
        Some(BindingStatus::Free) => "free",
        _ => "other",
    };
    let leases = dhcpd
        .wait_leases("the same database as ours", WAIT, |l| {
            l.count("active") == 20
                && store.snapshot().keys().all(|a| {
                    l.get(Ipv4Addr::from(*a)).map(|x| x.binding_state.as_str()) == Some(ours(a))
                })
        })
        .await;
    eprintln!("[{T}] ISC's lease file: {}", leases.summary());
    for (a, n) in &granted {
        assert_eq!(
            leases.get(*a).and_then(|l| l.hardware_ethernet.clone()),
            Some(mac(*n)),
            "{a}"
        );
    }
}

/// 7a. A wrong relationship name: ISC answers CONNECTACK reject-reason 8 and closes; we
///     record the rejection and keep retrying without harm.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isc_rejects_a_wrong_relationship_name() {
    const T: &str = "isc_rejects_a_wrong_relationship_name";
    if !isc::tools_available(T) {
        return;
    }
    let ep = Endpoints::new();
    let mut dhcpd = isc(IscRole::Secondary, &ep, 16);
    dhcpd.start().unwrap();
    let store = Arc::new(MemoryStore::new(Role::Primary, POOL_FIRST, 16));
    let peer = Peer::start(our_config(Role::Primary, "wrong-name"), &ep, store).await;
    peer.wait_until("a reject from ISC", WAIT, || {
        peer.handle.status().last_reject == Some(RejectReason::InvalidPartner)
    })
    .await;
    let line = dhcpd
        .wait_log(0, "Failover CONNECT from wrong-name", WAIT)
        .await;
    assert!(
        line.contains("unknown failover relationship name"),
        "{line}"
    );
    assert!(peer.saw(|e| matches!(
        e,
        PeerEvent::Engine(Event::ConnectionRejected {
            reason: RejectReason::InvalidPartner,
            by_partner: true
        })
    )));
    assert_ne!(peer.state(), ServerState::Normal);
    assert_ne!(dhcpd.state().as_deref(), Some("normal"));
}

/// 7b. A CONNECT whose header time is two minutes off: ISC answers reject-reason 4 (time
///     mismatch). The same CONNECT with the right time is accepted, so the time is the only
///     difference. (Our engine reads the wall clock, so the skew is sent by hand.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isc_rejects_a_skewed_clock() {
    const T: &str = "isc_rejects_a_skewed_clock";
    if !isc::tools_available(T) {
        return;
    }
    let ep = Endpoints::new();
    let mut dhcpd = isc(IscRole::Secondary, &ep, 16);
    dhcpd.start().unwrap();
    // ISC connects to its peer address too; nobody listens there, so its attempts fail.
    let now = wall_clock().0;
    let probe = |time: u32| async move {
        let mut reply = wire::Reply::default();
        for _ in 0..50 {
            // ISC may still be starting.
            if let Ok(mut s) = wire::connect_from(IpAddr::V4(OURS), ep.isc).await {
                reply = wire::exchange(
                    &mut s,
                    &wire::connect_message(NAME, time, MCLT),
                    Duration::from_secs(3),
                )
                .await;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        reply
    };

    let skewed = probe(now - 120).await;
    let msgs = skewed.decoded();
    let Some(Repr::ConnectAck(ack)) = msgs.first() else {
        panic!("no CONNECTACK for a skewed CONNECT: {skewed:?}");
    };
    assert_eq!(ack.reject_reason, Some(RejectReason::TimeMismatch));
    assert_eq!(
        ack.message.and_then(|m| m.as_str()),
        Some("time offset too large")
    );
    assert!(skewed.closed, "ISC closes after rejecting");
    dhcpd
        .wait_log(
            0,
            "Failover CONNECT from fo-interop: time offset too large",
            WAIT,
        )
        .await;

    let right = probe(wall_clock().0).await;
    let msgs = right.decoded();
    let Some(Repr::ConnectAck(ack)) = msgs.first() else {
        panic!("no CONNECTACK for a correct CONNECT: {right:?}");
    };
    assert_eq!(ack.reject_reason, None);
    assert!(
        msgs.iter().any(|m| matches!(m, Repr::State(_))),
        "ISC follows an accepting CONNECTACK with STATE: {msgs:?}"
    );
}

/// 7c. A "partner" that sends junk: our peer drops each connection, keeps running, and then
///     reaches NORMAL with the real ISC.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junk_from_the_partner_address_is_survived() {
    const T: &str = "junk_from_the_partner_address_is_survived";
    if !isc::tools_available(T) {
        return;
    }
    let ep = Endpoints::new();
    let mut dhcpd = isc(IscRole::Primary, &ep, 16);
    let store = Arc::new(MemoryStore::new(Role::Secondary, POOL_FIRST, 16));
    let mut config = our_config(Role::Secondary, NAME);
    config.mclt = 0;
    config.connect_timeout = 2;
    let peer = Peer::start(config, &ep, store).await;

    // A silent connection from the partner's address is closed when the CONNECT does not come
    // within connect_timeout. (It once stayed open for good: the engine's close was queued by
    // a poll_transmit that wrote nothing, and the task acted on it only at the next input.)
    let t0 = Instant::now();
    let mut silent = wire::connect_from(IpAddr::V4(ISC_IP), ep.ours)
        .await
        .unwrap();
    let reply = wire::exchange(&mut silent, &[], Duration::from_secs(5)).await;
    assert!(reply.closed, "a silent partner connection stayed open");
    let waited = t0.elapsed();
    assert!(waited >= Duration::from_millis(1_500) && waited < Duration::from_secs(4));
    timing(T, "a silent connection closed after", t0);
    drop(silent);
    peer.wait_until("the silent connection gone", WAIT, || {
        peer.handle.status().link == Link::Down
    })
    .await;

    // ISC is not running yet; the junk comes from its address, so our peer takes it for the
    // partner (only the source address identifies a partner before CONNECT).
    let mut bad_type = wire::connect_message(NAME, wall_clock().0, MCLT);
    bad_type[2] = 0xee;
    let mut bad_option = wire::connect_message(NAME, wall_clock().0, MCLT);
    let last = bad_option.len() - 33; // length field of the HBA option
    bad_option[last] = 0xff;
    let good = wire::connect_message(NAME, wall_clock().0, MCLT);
    // (what, bytes, whether our peer must drop the connection at once)
    let junk: [(&str, Vec<u8>, bool); 5] = [
        ("HTTP", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), true),
        (
            "length below the header",
            vec![0, 5, 1, 12, 0, 0, 0, 0, 0, 0, 0, 0],
            true,
        ),
        ("option overruns the message", bad_option, true),
        // An unknown message type is ignored (§6.1 leaves room for new types); the link
        // still waits for a CONNECT.
        ("unknown message type", bad_type, false),
        ("truncated CONNECT", good[..40].to_vec(), false),
    ];
    for (what, bytes, closes) in &junk {
        let mut s = wire::connect_from(IpAddr::V4(ISC_IP), ep.ours)
            .await
            .unwrap();
        let reply = wire::exchange(&mut s, bytes, Duration::from_secs(1)).await;
        let types: Vec<_> = reply.decoded().iter().map(|m| m.message_type()).collect();
        eprintln!("[{T}] {what}: closed={} replies={types:?}", reply.closed);
        assert_eq!(reply.closed, *closes, "{what}: {reply:?}");
        if !closes {
            // The connection is still in sync: a real CONNECT after the junk is answered.
            let rest = if what.starts_with("truncated") {
                &good[40..]
            } else {
                &good[..]
            };
            let reply = wire::exchange(&mut s, rest, Duration::from_secs(1)).await;
            let msgs = reply.decoded();
            assert!(
                matches!(msgs.first(), Some(Repr::ConnectAck(a)) if a.reject_reason.is_none()),
                "{what}: a CONNECT after it got {msgs:?}"
            );
        }
        drop(s);
        // Our peer takes one connection from its partner at a time: wait for this one to go.
        peer.wait_until("the junk connection closed", WAIT, || {
            peer.handle.status().link == Link::Down
        })
        .await;
    }
    assert_eq!(peer.handle.counters().connections(), 6);
    assert!(peer.saw(|e| matches!(e, PeerEvent::Engine(Event::ProtocolError { .. }))));

    // Still usable: the real partner arrives.
    let t0 = Instant::now();
    dhcpd.start().unwrap();
    dhcpd.wait_state(0, "normal", WAIT).await;
    peer.wait_state(ServerState::Normal, WAIT).await;
    timing(T, "after the junk: both NORMAL", t0);
}

/// Namespace mode: where ISC serves real DHCP clients and our peer runs in its namespace.
const NS_SERVER_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
/// The relay address (giaddr) the DHCP clients sit behind, in the client namespace.
const NS_RELAY_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 254);
const NS_POOL: u32 = 64;
const NS_CLIENTS: u8 = 4;

/// The MAC of namespace-mode client `i`.
fn ns_mac(i: u8) -> [u8; 6] {
    [0x02, 0x00, 0x5e, 0x20, 0x00, i]
}

/// 9. Namespace mode: ISC dhcpd (primary, `split 256` so it answers every client) hands out
///    leases to real DHCP clients, relayed over a veth pair from a second network namespace,
///    and those leases reach our secondary's store as ACTIVE with the clients' MACs.
///
///    dhcpd and our peer run in namespace `fo<pid>-s` (failover over its own loopback,
///    127.0.0.1:647 ↔ 127.0.0.2:647); the relay in `fo<pid>-c`. Our peer and the relay are this
///    test binary re-executed under `ip netns exec` (see [`netns_child_entry`]); our peer
///    keeps a [`FileStore`], which this test reads from outside.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isc_serves_real_clients_and_their_leases_reach_our_store() {
    const T: &str = "isc_serves_real_clients_and_their_leases_reach_our_store";
    if !isc::netns_available(T) {
        return;
    }
    let t0 = Instant::now();
    // Dropped last: deleting the namespaces also deletes the veth pair.
    let server_ns = Netns::create("s").expect("server namespace");
    let client_ns = Netns::create("c").expect("client namespace");
    netns::veth(
        &server_ns,
        "fo0",
        &format!("{NS_SERVER_IP}/16"),
        &client_ns,
        "cli0",
        &format!("{NS_RELAY_IP}/16"),
    )
    .expect("veth pair");

    let isc_addr = SocketAddr::new(IpAddr::V4(ISC_IP), 647);
    let our_addr = SocketAddr::new(IpAddr::V4(OURS), 647);
    let mut c = IscConfig::new(IscRole::Primary, NAME, isc_addr, our_addr);
    // ISC leases a new client's address for the MCLT at most; a short MCLT would let the
    // leases expire (and come back to us as FREE) while the test looks at them.
    c.mclt = 120;
    c.split = 256;
    c.pool = (
        POOL_FIRST,
        Ipv4Addr::from(u32::from(POOL_FIRST) + NS_POOL - 1),
    );
    let mut dhcpd = Dhcpd::new_in_netns(c, server_ns.name(), "fo0").expect("prepare dhcpd");
    let store_path = std::env::temp_dir().join(format!(
        "isc-interop-{}-netns-store.log",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&store_path);
    dhcpd.start().unwrap();
    let mut peer = ChildProc::spawn(
        &server_ns,
        "peer",
        &[("FAILOVER_NETNS_STORE", store_path.display().to_string())],
    )
    .expect("start our peer in the server namespace");
    dhcpd.wait_state(0, "normal", WAIT).await;
    peer.wait_line(&format!("state {:?}", ServerState::Normal), WAIT)
        .await;
    timing(T, "both NORMAL (namespace mode)", t0);

    // Real DHCP traffic: DISCOVER/OFFER/REQUEST/ACK for each client, relayed.
    let mut client = ChildProc::spawn(&client_ns, "client", &[]).expect("start the relay");
    let status = client.wait_exit(Duration::from_secs(30)).await;
    assert!(
        status.is_some_and(|s| s.success()),
        "the relay failed ({status:?}); its output:\n{}\nISC log tail:\n{}",
        client.output(),
        dhcpd.log_tail(30)
    );
    let granted: Vec<([u8; 6], Ipv4Addr)> = client
        .lines()
        .iter()
        .filter_map(|l| {
            let mut w = l.strip_prefix("lease ")?.split(' ');
            let i: u8 = w.next()?.parse().ok()?;
            let ip: Ipv4Addr = w.next()?.parse().ok()?;
            Some((ns_mac(i), ip))
        })
        .collect();
    assert_eq!(
        granted.len(),
        usize::from(NS_CLIENTS),
        "{}",
        client.output()
    );
    timing(T, "4 clients got leases from ISC", t0);
    let mut ips: Vec<Ipv4Addr> = granted.iter().map(|(_, ip)| *ip).collect();
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), granted.len(), "distinct addresses: {granted:?}");
    // ISC's own lease file has them as active.
    dhcpd
        .wait_leases("the 4 client leases active", WAIT, |l| {
            granted.iter().all(|(_, ip)| {
                l.get(*ip)
                    .is_some_and(|x| x.binding_state.as_str() == "active")
            })
        })
        .await;

    // Our store (the FileStore our peer writes, read from outside) gets them as ACTIVE with
    // the clients' MACs: ISC's BNDUPDs, acknowledged by us.
    let open = || FileStore::open(&store_path, Role::Secondary, POOL_FIRST, NS_POOL).unwrap();
    let ours_ok = |file: &FileStore| -> Result<(), String> {
        for (mac, ip) in &granted {
            let Some(lease) = file.memory().get(*ip) else {
                return Err(format!("{ip} is not in our pool"));
            };
            let d = &lease.data;
            if d.status != BindingStatus::Active {
                return Err(format!("{ip} is {:?} in our store", d.status));
            }
            let hw = d.hardware_address.as_ref().map(|(t, a)| (*t, a.to_vec()));
            if hw != Some((1, mac.to_vec())) {
                return Err(format!("{ip} has hardware address {hw:?}, not {mac:02x?}"));
            }
        }
        Ok(())
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match ours_ok(&open()) {
            Ok(()) => break,
            Err(e) if Instant::now() >= deadline => {
                panic!(
                    "our store never got the leases: {e}\nour peer:\n{}",
                    peer.output()
                )
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    timing(T, "4 ACTIVE leases in our store", t0);

    // A graceful stop; the file, replayed afresh, still has them.
    let stopped = peer.stop(Duration::from_secs(10)).await;
    assert!(
        stopped.is_some_and(|s| s.success()),
        "our peer did not stop cleanly ({stopped:?}):\n{}",
        peer.output()
    );
    ours_ok(&open()).unwrap();
    let file = open();
    assert_eq!(
        file.memory().count(BindingStatus::Active),
        granted.len(),
        "only the clients' leases are ACTIVE"
    );
    let log = dhcpd.log();
    assert!(!log.contains("rejected"), "{}", dhcpd.log_tail(40));
    drop(file);
    let _ = std::fs::remove_file(&store_path);
    drop(client);
    drop(peer);
    drop(dhcpd);
    drop(client_ns);
    drop(server_ns);
}

/// Not a test: the entry point of the children [`isc_serves_real_clients_and_their_leases_reach_our_store`]
/// runs inside network namespaces (this binary, re-executed with `FAILOVER_NETNS_CHILD` set
/// to `peer` or `client`). Without that variable it does nothing.
#[test]
#[ignore = "child process of the namespace-mode interop test"]
fn netns_child_entry() {
    match std::env::var(netns::CHILD_ENV).as_deref() {
        Ok("peer") => netns_peer_child(),
        Ok("client") => std::process::exit(netns_relay_child()),
        _ => eprintln!("{}: only run as a child process", netns::CHILD_TEST),
    }
}

fn report(line: &str) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}{line}", netns::LINE_PREFIX);
    let _ = out.flush();
}

/// Our secondary with a [`FileStore`], until stdin closes; reports its state changes.
fn netns_peer_child() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let path = std::env::var("FAILOVER_NETNS_STORE").unwrap();
        let store = Arc::new(FileStore::open(&path, Role::Secondary, POOL_FIRST, NS_POOL).unwrap());
        let mut config = our_config(Role::Secondary, NAME);
        config.mclt = 0; // learned from ISC's CONNECT
        let (handle, mut rx) =
            PeerBuilder::new(config, SocketAddr::new(IpAddr::V4(ISC_IP), 647), store)
                .plaintext()
                .listen(SocketAddr::new(IpAddr::V4(OURS), 647))
                .bind_address(IpAddr::V4(OURS))
                .reconnect(Duration::from_millis(200), Duration::from_secs(1))
                .start()
                .await
                .unwrap();
        tokio::spawn(async move {
            while let Some(e) = rx.recv().await {
                if let PeerEvent::Engine(Event::StateChanged { to, .. }) = &e {
                    report(&format!("state {to:?}"));
                }
                eprintln!("{} {e:?}", stamp());
            }
        });
        // The parent closes our stdin to stop us (or dies, which closes it too).
        tokio::task::spawn_blocking(|| {
            let mut sink = Vec::new();
            let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
        })
        .await
        .unwrap();
        handle.shutdown().await;
        report("stopped");
    });
}

/// A DHCP relay at [`NS_RELAY_IP`]:67 getting one lease for each of [`NS_CLIENTS`] clients
/// from ISC (DISCOVER, OFFER, REQUEST, ACK, with giaddr set): reports `lease <i> <ip>` per ACK.
/// Bounded: 20 s, 6 transmissions per step. Exit status 0 when every client got a lease.
fn netns_relay_child() -> i32 {
    use std::net::UdpSocket;
    const DISCOVER: u8 = 1;
    const OFFER: u8 = 2;
    const REQUEST: u8 = 3;
    const ACK: u8 = 5;
    const NAK: u8 = 6;
    struct Client {
        i: u8,
        xid: u32,
        /// `None` while discovering; the offered address and server id while requesting.
        offer: Option<(Ipv4Addr, Ipv4Addr)>,
        sent: Option<Instant>,
        tries: u32,
        done: bool,
    }
    let sock = UdpSocket::bind((NS_RELAY_IP, 67)).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let server = SocketAddr::new(IpAddr::V4(NS_SERVER_IP), 67);
    let base = std::process::id().wrapping_mul(2_654_435_761);
    let mut clients: Vec<Client> = (0..NS_CLIENTS)
        .map(|i| Client {
            i,
            xid: base.wrapping_add(u32::from(i)),
            offer: None,
            sent: None,
            tries: 0,
            done: false,
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline && clients.iter().any(|c| !c.done) {
        for c in clients.iter_mut().filter(|c| !c.done) {
            if c.sent.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
                continue;
            }
            if c.tries >= 6 {
                eprintln!("client {} gave up", c.i);
                return 1;
            }
            let pkt = match c.offer {
                None => dhcp_packet(DISCOVER, c.xid, ns_mac(c.i), None),
                Some(o) => dhcp_packet(REQUEST, c.xid, ns_mac(c.i), Some(o)),
            };
            sock.send_to(&pkt, server).unwrap();
            c.sent = Some(Instant::now());
            c.tries += 1;
        }
        let mut buf = [0u8; 1500];
        let Ok((n, _)) = sock.recv_from(&mut buf) else {
            continue;
        };
        let Some(reply) = DhcpReply::parse(&buf[..n]) else {
            continue;
        };
        let Some(c) = clients
            .iter_mut()
            .find(|c| !c.done && c.xid == reply.xid && ns_mac(c.i) == reply.chaddr)
        else {
            continue;
        };
        match (c.offer, reply.msg_type) {
            (None, OFFER) => {
                let Some(sid) = reply.server_id else { continue };
                c.offer = Some((reply.yiaddr, sid));
                (c.sent, c.tries) = (None, 0);
            }
            (Some((ip, _)), ACK) if reply.yiaddr == ip => {
                c.done = true;
                report(&format!("lease {} {ip}", c.i));
            }
            (Some(_), NAK) => {
                c.offer = None;
                (c.sent, c.tries) = (None, 0);
            }
            _ => {}
        }
    }
    let got = clients.iter().filter(|c| c.done).count();
    eprintln!("{got} of {NS_CLIENTS} clients got a lease");
    i32::from(got != usize::from(NS_CLIENTS))
}

/// A relayed BOOTREQUEST (RFC 2131) from `mac`: DISCOVER, or REQUEST for the offered address
/// (`requested`, `server id`).
fn dhcp_packet(
    msg_type: u8,
    xid: u32,
    mac: [u8; 6],
    offer: Option<(Ipv4Addr, Ipv4Addr)>,
) -> Vec<u8> {
    let mut p = vec![1, 1, 6, 1]; // op BOOTREQUEST, htype Ethernet, hlen 6, hops 1
    p.extend_from_slice(&xid.to_be_bytes());
    p.extend_from_slice(&[0; 4]); // secs, flags
    p.extend_from_slice(&[0; 12]); // ciaddr, yiaddr, siaddr
    p.extend_from_slice(&NS_RELAY_IP.octets()); // giaddr
    p.extend_from_slice(&mac);
    p.extend_from_slice(&[0; 10 + 64 + 128]); // chaddr padding, sname, file
    p.extend_from_slice(&[99, 130, 83, 99]); // magic cookie
    p.extend_from_slice(&[53, 1, msg_type]);
    p.extend_from_slice(&[61, 7, 1]);
    p.extend_from_slice(&mac);
    if let Some((ip, sid)) = offer {
        p.extend_from_slice(&[50, 4]);
        p.extend_from_slice(&ip.octets());
        p.extend_from_slice(&[54, 4]);
        p.extend_from_slice(&sid.octets());
    }
    p.extend_from_slice(&[55, 3, 1, 3, 51, 255]);
    p.resize(p.len().max(300), 0);
    p
}

/// The fields of a BOOTREPLY the relay needs.
struct DhcpReply {
    xid: u32,
    yiaddr: Ipv4Addr,
    chaddr: [u8; 6],
    msg_type: u8,
    server_id: Option<Ipv4Addr>,
}

impl DhcpReply {
    fn parse(p: &[u8]) -> Option<DhcpReply> {
        if p.len() < 240 || p[0] != 2 || p[236..240] != [99, 130, 83, 99] {
            return None;
        }
        let quad = |s: &[u8]| -> Option<[u8; 4]> { s.try_into().ok() };
        let xid = u32::from_be_bytes(quad(&p[4..8])?);
        let yiaddr = Ipv4Addr::from(quad(&p[16..20])?);
        let chaddr: [u8; 6] = p[28..34].try_into().ok()?;
        let (mut msg_type, mut server_id) = (0, None);
        let mut opts = &p[240..];
        while let [code, rest @ ..] = opts {
            match *code {
                0 => opts = rest,
                255 => break,
                _ => {
                    let [len, rest @ ..] = rest else { break };
                    let len = usize::from(*len);
                    let value = rest.get(..len)?;
                    match (*code, value) {
                        (53, [t]) => msg_type = *t,
                        (54, v) => server_id = quad(v).map(Ipv4Addr::from),
                        _ => {}
                    }
                    opts = &rest[len..];
                }
            }
        }
        Some(DhcpReply {
            xid,
            yiaddr,
            chaddr,
            msg_type,
            server_id,
        })
    }
}
