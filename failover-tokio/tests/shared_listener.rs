//! Many relationships on one listening port (draft §5.1, §8.2): connections go to their
//! relationship by the partner's address and, when an address has several, by the
//! relationship-name of the CONNECT; a CONNECT naming no relationship is refused with a
//! CONNECTACK of reason 8 (§7.8.2 step 5); a partner that floods connections and stops reading
//! holds up no other relationship.
//!
//! Loopback only: partners speak from distinct addresses of 127.0.0.0/8 (bound explicitly).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

mod common;

use common::emit_bndupd;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use failover_fsm::{BindingData, BindingStatus, Config, Link, Role, ServerState};
use failover_proto::{
    Connect, Hba, PROTOCOL_VERSION, RejectReason, Repr, ServerFlags, State, Text,
};
use failover_tokio::{Handle, Listener, MemoryStore, PeerBuilder, wall_clock};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const POOL: u32 = 64;

fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

fn config(role: Role, name: &str) -> Config {
    let mut c = Config::new(role, name, 5);
    c.receive_timer = 10;
    c
}

async fn within<T>(secs: u64, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), f)
        .await
        .expect("timed out")
}

fn drain(mut rx: tokio::sync::mpsc::Receiver<failover_tokio::PeerEvent>) {
    tokio::spawn(async move { while rx.recv().await.is_some() {} });
}

/// A port free on `ip`.
fn free_port(ip: IpAddr) -> u16 {
    std::net::TcpListener::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn builder(
    config: Config,
    partner: SocketAddr,
    store: Arc<MemoryStore>,
) -> PeerBuilder<MemoryStore> {
    PeerBuilder::new(config, partner, store)
        .plaintext()
        .reconnect(Duration::from_millis(100), Duration::from_millis(500))
        .reject_backoff(Duration::from_millis(500))
}

/// Our secondary for `name` on the shared `listener`, its partner at `partner`.
async fn ours(
    listener: &Listener,
    name: &str,
    partner: SocketAddr,
    pool: Ipv4Addr,
) -> (Handle, Arc<MemoryStore>) {
    let store = Arc::new(MemoryStore::new(Role::Secondary, pool, POOL));
    let (h, events) = builder(config(Role::Secondary, name), partner, store.clone())
        .listener(listener)
        .bind_address(ip(1))
        .start()
        .await
        .unwrap();
    drain(events);
    (h, store)
}

/// A primary partner for `name` speaking from `from`, listening there on a port of its own.
async fn partner(
    listener: &Listener,
    name: &str,
    from: IpAddr,
    port: u16,
    pool: Ipv4Addr,
) -> (Handle, Arc<MemoryStore>) {
    let store = Arc::new(MemoryStore::new(Role::Primary, pool, POOL));
    let (h, events) = builder(
        config(Role::Primary, name),
        listener.local_addr(),
        store.clone(),
    )
    .listen(SocketAddr::new(from, port))
    .bind_address(from)
    .start()
    .await
    .unwrap();
    drain(events);
    (h, store)
}

async fn normal(handles: &[&Handle]) {
    for h in handles {
        within(20, h.wait_for_state(ServerState::Normal))
            .await
            .unwrap();
    }
}

fn binding(address: Ipv4Addr, n: u32) -> BindingData {
    let wall = wall_clock();
    let mut b = BindingData::new(address, BindingStatus::Active)
        .with_client(None, 1, &[2, 0, 0, 0, (n >> 8) as u8, n as u8])
        .unwrap();
    b.lease_expiration_time = Some(wall.plus(300));
    b.potential_expiration_time = Some(wall.plus(450));
    b.client_last_transaction_time = Some(wall);
    b
}

/// Waits until `h` has had `n` more BNDACKs than `before` (its count before sending) and
/// nothing waits: all it sent is acknowledged. One status snapshot answers both.
async fn all_acked(h: &Handle, before: u32, n: u32) {
    let mut w = h.watch();
    within(
        20,
        w.wait_for(|s| {
            s.counters.bndack_received >= before + n && s.unacked_sent == 0 && s.queued == 0
        }),
    )
    .await
    .unwrap();
}

fn acks(h: &Handle) -> u32 {
    h.status().counters.bndack_received
}

async fn connect_from(from: IpAddr, to: SocketAddr) -> TcpStream {
    let s = TcpSocket::new_v4().unwrap();
    s.bind(SocketAddr::new(from, 0)).unwrap();
    let s = within(5, s.connect(to)).await.unwrap();
    s.set_nodelay(true).unwrap();
    s
}

fn emit_connect(name: &str, xid: u32, max_unacked: u32) -> Vec<u8> {
    let m = Connect {
        time: wall_clock().0,
        xid,
        relationship_name: Text(name.as_bytes()),
        max_unacked_bndupd: max_unacked,
        receive_timer: 30,
        vendor_class: Text(b"test"),
        protocol_version: PROTOCOL_VERSION,
        mclt: 5,
        hba: Hba::split(128),
        ..Connect::default()
    };
    let mut buf = vec![0u8; m.buffer_len()];
    let n = m.emit(&mut buf).unwrap();
    buf.truncate(n);
    buf
}

fn emit_state(xid: u32) -> Vec<u8> {
    let m = State {
        time: wall_clock().0,
        xid,
        server_state: ServerState::Normal,
        server_flags: ServerFlags::EMPTY,
        start_time_of_state: wall_clock().0 - 100,
        extra: Default::default(),
        digest: None,
    };
    let mut buf = vec![0u8; m.buffer_len()];
    let n = m.emit(&mut buf).unwrap();
    buf.truncate(n);
    buf
}

/// Reads until the other end closes (or 5 s pass); what came.
async fn read_to_close(s: &mut TcpStream) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let left = until.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Err(_) => return (out, false),
            Ok(Ok(0) | Err(_)) => return (out, true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_relationships_told_apart_by_address_reach_normal_on_one_port() {
    let listener = Listener::bind(SocketAddr::new(ip(1), 0)).await.unwrap();
    // One relationship name, two partners: only the address tells them apart.
    let (pa, pb) = (free_port(ip(2)), free_port(ip(3)));
    let pool = Ipv4Addr::new(198, 18, 40, 0);
    // Our secondaries' dials find nobody: every connection comes through the listener.
    let (a, a_store) = ours(&listener, "same-name", SocketAddr::new(ip(2), 9), pool).await;
    let (b, b_store) = ours(&listener, "same-name", SocketAddr::new(ip(3), 9), pool).await;
    let (pa_h, _) = partner(&listener, "same-name", ip(2), pa, pool).await;
    let (pb_h, _) = partner(&listener, "same-name", ip(3), pb, pool).await;
    normal(&[&a, &b, &pa_h, &pb_h]).await;
    assert_eq!(listener.counters().handed_over(), 2);
    assert_eq!((a.counters().accepted(), b.counters().accepted()), (1, 1));
    assert_eq!(a.local_addr(), listener.local_addr());
    assert_eq!(b.local_addr(), listener.local_addr());

    // Each partner's binding lands in its own relationship's store only.
    let (ka, kb) = (acks(&pa_h), acks(&pb_h));
    pa_h.send_binding(binding(Ipv4Addr::new(198, 18, 40, 1), 1))
        .await
        .unwrap();
    pb_h.send_binding(binding(Ipv4Addr::new(198, 18, 40, 2), 2))
        .await
        .unwrap();
    all_acked(&pa_h, ka, 1).await;
    all_acked(&pb_h, kb, 1).await;
    let active = |s: &MemoryStore, last: u8| {
        s.get(Ipv4Addr::new(198, 18, 40, last))
            .is_some_and(|l| l.local.status == BindingStatus::Active)
    };
    // The watched status may predate the send (acks of the pool balancing count too): wait
    // for the stores themselves, bounded.
    within(10, async {
        while !(active(&a_store, 1) && active(&b_store, 2)) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(!active(&a_store, 2) && !active(&b_store, 1));
    for h in [pa_h, pb_h, a, b] {
        h.abort().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_relationships_with_one_partner_are_told_apart_by_name() {
    let listener = Listener::bind(SocketAddr::new(ip(1), 0)).await.unwrap();
    let (pa, pb) = (free_port(ip(4)), free_port(ip(4)));
    let (pool_a, pool_b) = (Ipv4Addr::new(198, 18, 41, 0), Ipv4Addr::new(198, 18, 42, 0));
    // Our secondaries' dials find nobody: every connection comes through the listener.
    let (a, a_store) = ours(&listener, "pool-a", SocketAddr::new(ip(4), 9), pool_a).await;
    let (b, b_store) = ours(&listener, "pool-b", SocketAddr::new(ip(4), 10), pool_b).await;
    // A second "pool-a" with the same partner is refused.
    let dup = builder(
        config(Role::Secondary, "pool-a"),
        SocketAddr::new(ip(4), 11),
        Arc::new(MemoryStore::new(Role::Secondary, pool_a, POOL)),
    )
    .listener(&listener)
    .start()
    .await;
    assert_eq!(dup.unwrap_err().kind(), std::io::ErrorKind::InvalidInput);

    let (pa_h, _) = partner(&listener, "pool-a", ip(4), pa, pool_a).await;
    let (pb_h, _) = partner(&listener, "pool-b", ip(4), pb, pool_b).await;
    normal(&[&a, &b, &pa_h, &pb_h]).await;
    // Each by the name in its CONNECT.
    assert_eq!(listener.counters().handed_over(), 2);
    assert_eq!((a.counters().accepted(), b.counters().accepted()), (1, 1));
    assert_eq!(listener.counters().unknown_relationship(), 0);

    let (ka, kb) = (acks(&pa_h), acks(&pb_h));
    pa_h.send_binding(binding(Ipv4Addr::new(198, 18, 41, 5), 5))
        .await
        .unwrap();
    pb_h.send_binding(binding(Ipv4Addr::new(198, 18, 42, 6), 6))
        .await
        .unwrap();
    all_acked(&pa_h, ka, 1).await;
    all_acked(&pb_h, kb, 1).await;
    assert_eq!(a_store.count(BindingStatus::Active), 1);
    assert_eq!(b_store.count(BindingStatus::Active), 1);
    assert!(a_store.get(Ipv4Addr::new(198, 18, 41, 5)).is_some());
    assert!(b_store.get(Ipv4Addr::new(198, 18, 42, 6)).is_some());
    for h in [pa_h, pb_h, a, b] {
        h.abort().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connect_for_an_unknown_relationship_gets_connectack_8_and_is_closed() {
    let listener = Listener::bind(SocketAddr::new(ip(1), 0)).await.unwrap();
    let pool = Ipv4Addr::new(198, 18, 43, 0);
    // Two relationships with 127.0.0.5 (told apart by name), one with 127.0.0.6.
    let (a, _) = ours(&listener, "pool-a", SocketAddr::new(ip(5), 1), pool).await;
    let (b, _) = ours(&listener, "pool-b", SocketAddr::new(ip(5), 2), pool).await;
    let (c, _) = ours(&listener, "pool-c", SocketAddr::new(ip(6), 3), pool).await;
    let to = listener.local_addr();
    // From each address, a CONNECT for a relationship it does not have: refused alike, by the
    // listener (several relationships with 127.0.0.5) or by the engine (one with 127.0.0.6).
    for (from, xid) in [(ip(5), 77u32), (ip(6), 78)] {
        let mut s = connect_from(from, to).await;
        s.write_all(&emit_connect("pool-x", xid, 10)).await.unwrap();
        let (bytes, closed) = read_to_close(&mut s).await;
        assert!(closed, "not closed after the refusal");
        let Some(Ok(frame)) = failover_proto::Frames::new(&bytes).next() else {
            panic!("no answer: {bytes:?}")
        };
        let Ok(Repr::ConnectAck(ack)) = Repr::parse(frame) else {
            panic!("not a CONNECTACK: {bytes:?}")
        };
        assert_eq!(ack.xid, xid);
        assert_eq!(ack.reject_reason, Some(RejectReason::InvalidPartner));
    }
    assert_eq!(listener.counters().unknown_relationship(), 1);
    // A stranger is closed unread.
    let mut s = connect_from(ip(9), to).await;
    let _ = s.write_all(&emit_connect("pool-a", 79, 10)).await;
    let (bytes, closed) = read_to_close(&mut s).await;
    assert!(closed && bytes.is_empty());
    assert_eq!(listener.counters().strangers(), 1);
    // Nothing of it reached the relationships.
    for h in [&a, &b] {
        assert_eq!(h.counters().messages_in(), 0);
    }
    for h in [a, b, c] {
        h.abort().await;
    }
}

/// Relationship A's partner floods connections (and strangers flood too), then sends BNDUPDs
/// and stops reading until A's writes stall; relationship B on the same listener meanwhile
/// exchanges updates with its partner, every one acknowledged, while A is still blocked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_stalled_partner_holds_up_no_other_relationship() {
    let listener = Listener::bind(SocketAddr::new(ip(1), 0)).await.unwrap();
    let to = listener.local_addr();
    let pool_a = Ipv4Addr::new(198, 18, 44, 0);
    let pool_b = Ipv4Addr::new(198, 18, 45, 0);
    let mut ca = config(Role::Secondary, "flooded");
    ca.max_unacked_bndupd = 128;
    ca.receive_timer = 60;
    let a_store = Arc::new(MemoryStore::new(Role::Secondary, pool_a, POOL));
    let (a, events) = builder(ca, SocketAddr::new(ip(7), 1), a_store)
        .listener(&listener)
        .write_timeout(Duration::from_secs(120))
        .start()
        .await
        .unwrap();
    drain(events);
    let pb = free_port(ip(8));
    let (b, b_store) = ours(&listener, "calm", SocketAddr::new(ip(8), pb), pool_b).await;
    let (b_partner, _) = partner(&listener, "calm", ip(8), pb, pool_b).await;
    normal(&[&b, &b_partner]).await;

    // A's partner: the live connection.
    let mut live = connect_from(ip(7), to).await;
    let mut hello = emit_connect("flooded", 1, 10);
    hello.extend(emit_state(2));
    live.write_all(&hello).await.unwrap();
    let mut w = a.watch();
    within(5, w.wait_for(|s| s.link == Link::Up)).await.unwrap();
    // A connection storm from A's partner and from a stranger, held open, saying nothing.
    let mut storm = Vec::new();
    for i in 0..200 {
        let from = if i % 2 == 0 { ip(7) } else { ip(9) };
        storm.push(connect_from(from, to).await);
    }
    // BNDUPDs within A's window, each chunk once the last was answered, never a read: A's
    // BNDACKs fill the socket buffers until its write stalls.
    let (_rd, mut wr) = live.into_split();
    // Both from one status snapshot: the window seen is the one after those BNDUPDs.
    let base = a.status().counters.bndupd_received;
    let mut sent = 0u32;
    let mut stalled = false;
    for _ in 0..5_000 {
        let mut chunk = Vec::new();
        for i in sent..sent + 100 {
            chunk.extend(emit_bndupd(
                10_000 + i,
                Ipv4Addr::from(u32::from(pool_a) + i % POOL),
                i,
            ));
        }
        within(10, wr.write_all(&chunk)).await.unwrap();
        sent += 100;
        let started = Instant::now();
        while !{
            let st = a.status();
            st.counters.bndupd_received >= base + sent && st.unacked_received == 0
        } {
            if started.elapsed() > Duration::from_secs(1) {
                stalled = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        if stalled {
            break;
        }
    }
    assert!(stalled, "{sent} BNDUPDs answered without a stall");

    // B exchanges updates with its partner, one for each address of its pool, all
    // acknowledged and recorded...
    let bindings = (0..POOL)
        .map(|i| binding(Ipv4Addr::from(u32::from(pool_b) + i), i))
        .collect();
    let before = acks(&b_partner);
    within(20, b_partner.send_bindings(bindings)).await.unwrap();
    all_acked(&b_partner, before, POOL).await;
    // The watched status may predate the sends (the balancing's BNDACKs count too): wait,
    // bounded, for the store itself.
    within(10, async {
        while b_store.count(BindingStatus::Active) < POOL as usize {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(b_store.count(BindingStatus::Active), POOL as usize);
    assert_eq!(b.status().state, ServerState::Normal);
    // ...while A is still blocked on its partner: connected, its BNDACKs unsent.
    let st = a.status();
    assert_eq!(st.link, Link::Up, "{st:?}");
    assert!(st.unacked_received > 0, "{st:?}");
    // The storm: A took one connection (the live one) and closed or never got the rest.
    assert!(listener.counters().strangers() >= 100);
    assert_eq!(a.counters().accepted(), 1);
    println!(
        "A stalled after {sent} BNDUPDs; B's {POOL} acknowledged meanwhile; listener: {:?}",
        listener.counters()
    );
    drop(storm);
    for h in [a, b, b_partner] {
        h.abort().await;
    }
}

/// §8.2: a connection that says nothing, from an address with several relationships, is a
/// secondary's stimulus: our primary relationships with that address connect at once instead
/// of at their next retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_connection_makes_our_primaries_with_its_address_connect() {
    let listener = Listener::bind(SocketAddr::new(ip(1), 0))
        .await
        .unwrap()
        .first_message_timeout(Duration::from_millis(300));
    // The partner's port, closed for now: our primaries' first dials fail, and their next
    // retry is at least 22 s away (30 s less the jitter).
    let port = free_port(ip(10));
    let pool = Ipv4Addr::new(198, 18, 46, 0);
    let mut ours = Vec::new();
    for name in ["p-a", "p-b"] {
        let store = Arc::new(MemoryStore::new(Role::Primary, pool, POOL));
        let (h, events) = PeerBuilder::new(
            config(Role::Primary, name),
            SocketAddr::new(ip(10), port),
            store,
        )
        .plaintext()
        .listener(&listener)
        .reconnect(Duration::from_secs(30), Duration::from_secs(60))
        .start()
        .await
        .unwrap();
        drain(events);
        ours.push(h);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let partner = tokio::net::TcpListener::bind(SocketAddr::new(ip(10), port))
        .await
        .unwrap();
    // The stimulus: a connection from the partner's address that says nothing.
    let mut silent = connect_from(ip(10), listener.local_addr()).await;
    let (bytes, closed) = read_to_close(&mut silent).await;
    assert!(closed && bytes.is_empty());
    assert_eq!(listener.counters().unrouted(), 1);
    // Both primaries connect now, each sending its CONNECT.
    let mut names = Vec::new();
    for _ in 0..2 {
        let (mut s, _) = within(5, partner.accept()).await.unwrap();
        let mut buf = vec![0u8; 2048];
        let mut got = Vec::new();
        let name = within(5, async {
            loop {
                let n = s.read(&mut buf).await.unwrap();
                assert!(n > 0, "closed before its CONNECT");
                got.extend_from_slice(&buf[..n]);
                if let Some(Ok(frame)) = failover_proto::Frames::new(&got).next()
                    && let Ok(Repr::Connect(c)) = Repr::parse(frame)
                {
                    return String::from_utf8_lossy(c.relationship_name.0).into_owned();
                }
            }
        })
        .await;
        names.push(name);
    }
    names.sort();
    assert_eq!(names, ["p-a", "p-b"]);
    for h in ours {
        h.abort().await;
    }
}
