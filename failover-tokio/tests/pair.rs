//! Two peers over loopback TCP: reach NORMAL, exchange bindings, survive a restart.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use failover_fsm::{BindingData, BindingStatus, Config, Role, ServerState};
use failover_tokio::{Handle, MemoryStore, PeerBuilder, wall_clock};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn config(role: Role) -> Config {
    let mut c = Config::new(role, "loopback-pair", 5);
    c.receive_timer = 6;
    c
}

async fn start(
    role: Role,
    listen: u16,
    partner: u16,
    store: Arc<MemoryStore>,
) -> (
    Handle,
    tokio::sync::mpsc::Receiver<failover_tokio::PeerEvent>,
) {
    let addr = |p| SocketAddr::from(([127, 0, 0, 1], p));
    PeerBuilder::new(config(role), addr(partner), store)
        .plaintext()
        .listen(addr(listen))
        .reconnect(Duration::from_millis(100), Duration::from_millis(500))
        .reject_backoff(Duration::from_millis(500))
        .start()
        .await
        .unwrap()
}

fn drain(mut rx: tokio::sync::mpsc::Receiver<failover_tokio::PeerEvent>) {
    tokio::spawn(async move { while rx.recv().await.is_some() {} });
}

async fn within<T>(secs: u64, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), f)
        .await
        .expect("timed out")
}

/// Two peers on fresh in-memory stores of `n` addresses from `first`, both NORMAL.
struct Pair {
    p: Handle,
    s: Handle,
    ps: Arc<MemoryStore>,
    ss: Arc<MemoryStore>,
    /// The primary's and the secondary's listening ports.
    ports: (u16, u16),
}

async fn normal_pair(first: Ipv4Addr, n: u32) -> Pair {
    let (pp, sp) = (free_port(), free_port());
    let ps = Arc::new(MemoryStore::new(Role::Primary, first, n));
    let ss = Arc::new(MemoryStore::new(Role::Secondary, first, n));
    let (p, pe) = start(Role::Primary, pp, sp, ps.clone()).await;
    let (s, se) = start(Role::Secondary, sp, pp, ss.clone()).await;
    drain(pe);
    drain(se);
    within(20, p.wait_for_state(ServerState::Normal))
        .await
        .unwrap();
    within(20, s.wait_for_state(ServerState::Normal))
        .await
        .unwrap();
    Pair {
        p,
        s,
        ps,
        ss,
        ports: (pp, sp),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_peers_reach_normal_and_share_bindings() {
    let Pair { p, s, ps, ss, .. } = normal_pair(Ipv4Addr::new(198, 18, 1, 0), 32).await;
    // Pool balancing gave the secondary half the pool.
    within(10, async {
        while ss.count(BindingStatus::Backup) != 16 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;

    // The primary grants 10 leases; the secondary stores them.
    let wall = wall_clock();
    for i in 0..10u8 {
        let a = ps.free_address().unwrap();
        let mut b = BindingData::new(a, BindingStatus::Active)
            .with_client(None, 1, &[2, 0, 0, 0, 0, i])
            .unwrap();
        b.lease_expiration_time = Some(wall.plus(300));
        b.potential_expiration_time = Some(wall.plus(450));
        b.client_last_transaction_time = Some(wall);
        p.send_binding(b).await.unwrap();
    }
    within(10, async {
        while ss.count(BindingStatus::Active) != 10 || p.status().unacked_sent != 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(ps.count(BindingStatus::Active), 10);

    // Graceful shutdown of the primary: the secondary takes over (§9.14, §9.8.4).
    within(15, p.shutdown()).await;
    within(15, s.wait_for_state(ServerState::PartnerDown))
        .await
        .unwrap();
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_strangers_never_reaches_the_engine_and_normal_holds() {
    let (pp, sp) = (free_port(), free_port());
    let first = Ipv4Addr::new(198, 18, 2, 0);
    let (p, pe) = start(
        Role::Primary,
        pp,
        sp,
        Arc::new(MemoryStore::new(Role::Primary, first, 8)),
    )
    .await;
    let (s, se) = start(
        Role::Secondary,
        sp,
        pp,
        Arc::new(MemoryStore::new(Role::Secondary, first, 8)),
    )
    .await;
    drain(pe);
    drain(se);
    within(20, p.wait_for_state(ServerState::Normal))
        .await
        .unwrap();
    within(20, s.wait_for_state(ServerState::Normal))
        .await
        .unwrap();
    let messages_before = p.counters().messages_in();

    // 1,000 connections at once from 127.0.0.2 (the partner is 127.0.0.1), each sending junk.
    let target = SocketAddr::from(([127, 0, 0, 1], pp));
    let mut burst = tokio::task::JoinSet::new();
    for _ in 0..1000 {
        burst.spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let sock = tokio::net::TcpSocket::new_v4().unwrap();
            sock.bind(SocketAddr::from(([127, 0, 0, 2], 0))).unwrap();
            let Ok(mut c) = sock.connect(target).await else {
                return false;
            };
            let _ = c
                .write_all(&[0x00, 0x0c, 0x05, 0x0c, 0, 0, 0, 0, 0, 0, 0, 0])
                .await;
            let mut b = [0u8; 16];
            // Closed without a byte sent back.
            matches!(
                tokio::time::timeout(Duration::from_secs(10), c.read(&mut b)).await,
                Ok(Ok(0) | Err(_))
            )
        });
    }
    let mut closed = 0;
    while let Some(r) = burst.join_next().await {
        closed += usize::from(r.unwrap());
    }
    assert!(closed >= 990, "{closed} of 1000 closed unanswered");
    within(10, async {
        while p.counters().refused() < closed as u64 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    // None of it reached the engine: only the partner's own traffic (keep-alives) arrived.
    assert!(p.counters().messages_in() - messages_before < 10);
    assert_eq!(p.status().state, ServerState::Normal);
    assert_eq!(s.status().state, ServerState::Normal);
    assert!(p.status().link == failover_fsm::Link::Up);
    p.shutdown().await;
    s.shutdown().await;
}

/// A secondary whose lease table was restored from an older copy (`lease_table_lost`): the
/// store records the refresh under way at once (its old failover state ignored), a restart
/// before the partner is reachable keeps it, and the partner's UPDDONE ends it, with the
/// partner's leases in the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_lease_table_is_refreshed_across_a_restart() {
    use failover_fsm::{Persisted, UnixTime};
    use failover_tokio::Storage;
    let (pp, sp) = (free_port(), free_port());
    let first = Ipv4Addr::new(198, 18, 3, 0);
    let addr = |p| SocketAddr::from(([127, 0, 0, 1], p));
    let ss = Arc::new(MemoryStore::new(Role::Secondary, first, 8));
    // The restored copy's own failover state says NORMAL.
    ss.persist_state(&Persisted {
        state: ServerState::Normal,
        since: UnixTime(1_700_000_000),
        mclt: Some(5),
        last_operational: None,
        lease_table_lost: false,
    })
    .unwrap();
    let (s, se) = PeerBuilder::new(config(Role::Secondary), addr(pp), ss.clone())
        .plaintext()
        .listen(addr(sp))
        .reconnect(Duration::from_millis(100), Duration::from_millis(500))
        .lease_table_lost()
        .start()
        .await
        .unwrap();
    drain(se);
    within(10, async {
        while !ss.load_state().is_some_and(|p| p.lease_table_lost) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(ss.load_state().unwrap().state, ServerState::Recover);
    // Stopped before the partner was ever reached: the refresh is still owed.
    within(15, s.shutdown()).await;
    assert!(ss.load_state().unwrap().lease_table_lost);

    // The primary, with a lease the secondary's table lacks.
    let ps = Arc::new(MemoryStore::new(Role::Primary, first, 8));
    let a = ps.free_address().unwrap();
    let wall = wall_clock();
    let mut lease = BindingData::new(a, BindingStatus::Active)
        .with_client(None, 1, &[2, 0, 0, 0, 0, 7])
        .unwrap();
    lease.lease_expiration_time = Some(wall.plus(300));
    lease.potential_expiration_time = Some(wall.plus(450));
    lease.client_last_transaction_time = Some(wall);
    lease.start_time_of_state = Some(wall);
    ps.record_local(&lease).unwrap();
    let (p, pe) = start(Role::Primary, pp, sp, ps.clone()).await;
    drain(pe);
    // Restarted without being told again.
    let (s, se) = start(Role::Secondary, sp, pp, ss.clone()).await;
    drain(se);
    within(30, s.wait_for_state(ServerState::Normal))
        .await
        .unwrap();
    let persisted = ss.load_state().unwrap();
    assert!(!persisted.lease_table_lost, "{persisted:?}");
    let got = ss.get(a).unwrap();
    assert_eq!(got.local.status, BindingStatus::Active);
    assert_eq!(got.data.hardware_address, lease.hardware_address);
    p.shutdown().await;
    s.shutdown().await;
}

/// While the partner is away, the application's bindings beyond the engine's queue (256) are
/// recorded and answered at once; they reach the partner with the backlog when it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bindings_made_while_the_partner_is_away_do_not_wait_and_reach_it_later() {
    const N: usize = 400;
    let Pair {
        p,
        s,
        ps,
        ss,
        ports: (pp, sp),
    } = normal_pair(Ipv4Addr::new(198, 18, 4, 0), 1024).await;
    within(10, async {
        while ss.count(BindingStatus::Backup) != 512 || p.status().queued != 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    // The secondary goes away.
    s.abort().await;
    within(20, p.wait_for_state(ServerState::CommunicationsInterrupted))
        .await
        .unwrap();
    let free: Vec<Ipv4Addr> = ps
        .snapshot()
        .iter()
        .filter(|(_, l)| l.local.status == BindingStatus::Free)
        .map(|(a, _)| Ipv4Addr::from(*a))
        .take(N)
        .collect();
    assert_eq!(free.len(), N);
    let bindings = common::active_leases(free.iter().copied());
    // More than the engine's queue holds: answered without waiting for the partner.
    within(10, p.send_bindings(bindings)).await.unwrap();
    assert_eq!(ps.count(BindingStatus::Active), N);
    // The secondary is back with its table: every one of them reaches it.
    let (s, se) = start(Role::Secondary, sp, pp, ss.clone()).await;
    drain(se);
    within(30, async {
        while ss.count(BindingStatus::Active) != N || p.status().queued != 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(p.status().state, ServerState::Normal);
    p.shutdown().await;
    s.shutdown().await;
}
