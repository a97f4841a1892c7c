//! The operator's view through the handle: connections accepted and refused, the engine's
//! counters in the status watch, and the operator's PARTNER-DOWN (issue 13, item 1).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use failover_fsm::{
    BindingData, BindingStatus, Config, EngineError, Link, Role, ServerState, Status,
};
use failover_tokio::{Handle, MemoryStore, PeerBuilder, PeerError, wall_clock};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn within<T>(secs: u64, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), f)
        .await
        .expect("timed out")
}

async fn until(secs: u64, h: &Handle, f: impl Fn(&Status) -> bool) {
    let mut w = h.watch();
    within(secs, w.wait_for(|s| f(s))).await.unwrap();
}

async fn start(role: Role, listen: u16, partner: u16, store: Arc<MemoryStore>) -> Handle {
    let addr = |p| SocketAddr::from(([127, 0, 0, 1], p));
    let mut config = Config::new(role, "status-pair", 5);
    config.receive_timer = 6;
    let (h, mut rx) = PeerBuilder::new(config, addr(partner), store)
        .plaintext()
        .listen(addr(listen))
        .reconnect(Duration::from_millis(100), Duration::from_millis(300))
        .start()
        .await
        .unwrap();
    tokio::spawn(async move { while rx.recv().await.is_some() {} });
    h
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_connections_and_the_operators_partner_down() {
    let (pp, sp, nobody) = (free_port(), free_port(), free_port());
    let first = Ipv4Addr::new(198, 18, 3, 0);
    let ps = Arc::new(MemoryStore::new(Role::Primary, first, 16));
    let ss = Arc::new(MemoryStore::new(Role::Secondary, first, 16));
    // The secondary dials a port nobody listens on (same address as the primary, so the
    // primary's connection is still its partner's): only the primary's connection exists.
    let p = start(Role::Primary, pp, sp, ps.clone()).await;
    let s = start(Role::Secondary, sp, nobody, ss.clone()).await;
    for h in [&p, &s] {
        within(20, h.wait_for_state(ServerState::Normal))
            .await
            .unwrap();
    }
    assert_eq!(
        (p.counters().connections(), p.counters().accepted()),
        (1, 0)
    );
    assert_eq!(
        (s.counters().connections(), s.counters().accepted()),
        (1, 1)
    );

    // A stranger, and a second connection from the partner's address: both refused unread.
    let stranger = tokio::net::TcpSocket::new_v4().unwrap();
    stranger
        .bind(SocketAddr::from(([127, 0, 0, 2], 0)))
        .unwrap();
    let _a = stranger
        .connect(SocketAddr::from(([127, 0, 0, 1], sp)))
        .await
        .unwrap();
    let _b = tokio::net::TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], sp)))
        .await
        .unwrap();
    within(10, async {
        while s.counters().refused() < 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert_eq!(s.counters().refused(), 2);
    assert_eq!(s.counters().accepted(), 1);
    assert_eq!(s.status().link, Link::Up);

    // Five leases from the primary: counted at both ends once acknowledged.
    let wall = wall_clock();
    for i in 0..5u8 {
        let a = ps.free_address().unwrap();
        let mut b = BindingData::new(a, BindingStatus::Active)
            .with_client(None, 1, &[2, 0, 0, 0, 0, i])
            .unwrap();
        b.lease_expiration_time = Some(wall.plus(300));
        b.potential_expiration_time = Some(wall.plus(450));
        b.client_last_transaction_time = Some(wall);
        p.send_binding(b).await.unwrap();
    }
    until(10, &p, |st| {
        st.queued == 0 && ss.count(BindingStatus::Active) == 5
    })
    .await;
    let backups = ss.count(BindingStatus::Backup) as u32;
    let pc = p.status().counters;
    until(10, &s, |st| st.counters.bndack_sent == pc.bndupd_sent).await;
    let sc = s.status().counters;
    assert_eq!(pc.bndupd_sent, backups + 5, "balancing, then our 5 leases");
    assert_eq!(sc.bndupd_received, pc.bndupd_sent);
    assert_eq!(pc.bndack_received, pc.bndupd_sent);
    assert_eq!(pc.recover, 1);

    // NORMAL: the operator's PARTNER-DOWN is refused unless forced.
    assert_eq!(
        s.partner_down(false).await,
        Err(PeerError::Engine(EngineError::NotInterrupted {
            state: ServerState::Normal
        }))
    );
    assert_eq!(s.status().state, ServerState::Normal);
    // The primary crashes: COMMUNICATIONS-INTERRUPTED (after the receive timer at most),
    // then PARTNER-DOWN is taken.
    p.abort().await;
    within(20, s.wait_for_state(ServerState::CommunicationsInterrupted))
        .await
        .unwrap();
    s.partner_down(false).await.unwrap();
    // Taken by the engine; the status watch shows it once the task has run its outputs.
    within(5, s.wait_for_state(ServerState::PartnerDown))
        .await
        .unwrap();
    let sc = s.status().counters;
    assert_eq!((sc.communications_interrupted, sc.partner_down), (1, 1));
    s.shutdown().await;
}
