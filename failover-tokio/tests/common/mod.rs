//! What failover-tokio's tests share: a peer on the loopback with short timers and backoffs,
//! what it reported and whether its link came up, bounded waits, and the binding each test
//! sends once a pair is up (tests/digest.rs, tests/tls.rs; each says how its peers are
//! secured, [`Setup`]); a raw BNDUPD as a hand-written partner sends it (tests/hostile_partner.rs,
//! tests/shared_listener.rs).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

#[cfg(feature = "tls")]
pub(crate) mod pki;
pub(crate) mod v6;

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use failover_fsm::{BindingData, BindingStatus, Config, Link, Role, ServerState};
use failover_proto::{Binding, BndUpd, HardwareAddress};
use failover_tokio::{Handle, MemoryStore, PeerBuilder, PeerEvent, wall_clock};

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub(crate) fn addr(p: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], p))
}

/// A relationship `name` with a 5 s MCLT and a 6 s receive timer.
pub(crate) fn config(role: Role, name: &str) -> Config {
    let mut c = Config::new(role, name, 5);
    c.receive_timer = 6;
    c
}

/// How a test secures its peers: the relationship they share, and what the builder gets
/// beside the listen address and backoffs (the transport, a message digest).
pub(crate) trait Setup {
    /// The relationship name of every peer of the test.
    const RELATIONSHIP: &'static str;
    /// Adds the test's choices to a peer's builder.
    fn apply(self, builder: PeerBuilder<MemoryStore>) -> PeerBuilder<MemoryStore>;
}

/// A running peer, what it reported, and what its engine's link did.
pub(crate) struct Peer {
    pub(crate) handle: Handle,
    pub(crate) store: Arc<MemoryStore>,
    events: Arc<Mutex<Vec<PeerEvent>>>,
    /// How often the link came up.
    link_ups: Arc<Mutex<u32>>,
    /// Whether the link ever left Down.
    link_seen: Arc<Mutex<bool>>,
}

impl Peer {
    /// A peer in `role` listening on `listen` and dialing `partner`, secured by `setup`.
    pub(crate) async fn start<S: Setup>(role: Role, listen: u16, partner: u16, setup: S) -> Peer {
        let store = Arc::new(MemoryStore::new(role, Ipv4Addr::new(198, 18, 9, 0), 16));
        let b = PeerBuilder::new(config(role, S::RELATIONSHIP), addr(partner), store.clone())
            .listen(addr(listen))
            .reconnect(Duration::from_millis(100), Duration::from_millis(400))
            .reject_backoff(Duration::from_millis(400));
        let (handle, mut rx) = setup.apply(b).start().await.unwrap();
        let events = Arc::new(Mutex::new(Vec::new()));
        let log = events.clone();
        tokio::spawn(async move {
            while let Some(e) = rx.recv().await {
                log.lock().unwrap().push(e);
            }
        });
        let link_ups = Arc::new(Mutex::new(0));
        let link_seen = Arc::new(Mutex::new(false));
        let (ups, seen) = (link_ups.clone(), link_seen.clone());
        let mut w = handle.watch();
        tokio::spawn(async move {
            let mut was_up = false;
            loop {
                let link = w.borrow_and_update().link;
                if link != Link::Down {
                    *seen.lock().unwrap() = true;
                }
                let up = link == Link::Up;
                if up && !was_up {
                    *ups.lock().unwrap() += 1;
                }
                was_up = up;
                if w.changed().await.is_err() {
                    break;
                }
            }
        });
        Peer {
            handle,
            store,
            events,
            link_ups,
            link_seen,
        }
    }

    /// What `pick` takes from the events reported so far, in order.
    pub(crate) fn reported<T>(&self, pick: impl FnMut(&PeerEvent) -> Option<T>) -> Vec<T> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter_map(pick)
            .collect()
    }

    /// How often the engine's link came up.
    pub(crate) fn link_ups(&self) -> u32 {
        *self.link_ups.lock().unwrap()
    }

    /// Whether the engine's link ever left Down.
    pub(crate) fn link_seen(&self) -> bool {
        *self.link_seen.lock().unwrap()
    }
}

pub(crate) async fn within<T>(secs: u64, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), f)
        .await
        .expect("timed out")
}

/// Waits until `done` holds, polling.
pub(crate) async fn until(secs: u64, what: &str, mut done: impl FnMut() -> bool) {
    let wait = async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    if tokio::time::timeout(Duration::from_secs(secs), wait)
        .await
        .is_err()
    {
        panic!("timed out waiting for {what}");
    }
}

/// `primary` and `secondary` reach NORMAL, and a binding the primary sends (to client `mac`)
/// is stored by the secondary and acknowledged.
pub(crate) async fn normal_with_a_binding(primary: &Peer, secondary: &Peer, mac: u8) {
    within(20, primary.handle.wait_for_state(ServerState::Normal))
        .await
        .unwrap();
    within(20, secondary.handle.wait_for_state(ServerState::Normal))
        .await
        .unwrap();
    let before = secondary.store.count(BindingStatus::Active);
    let wall = wall_clock();
    let a = primary.store.free_address().unwrap();
    let mut b = BindingData::new(a, BindingStatus::Active)
        .with_client(None, 1, &[2, 0, 0, 0, 0, mac])
        .unwrap();
    b.lease_expiration_time = Some(wall.plus(300));
    b.potential_expiration_time = Some(wall.plus(450));
    b.client_last_transaction_time = Some(wall);
    within(10, primary.handle.send_binding(b)).await.unwrap();
    until(10, "the binding acknowledged", || {
        secondary.store.count(BindingStatus::Active) == before + 1
            && primary.handle.status().unacked_sent == 0
    })
    .await;
}

/// ACTIVE leases of 300 s (potential-expiration 450 s) from `wall_clock()`, one for each of
/// `addresses`, each to its own client (hardware address from its index): what a DHCP server
/// hands its peer after a burst of DHCPACKs.
pub(crate) fn active_leases(addresses: impl IntoIterator<Item = Ipv4Addr>) -> Vec<BindingData> {
    let wall = wall_clock();
    addresses
        .into_iter()
        .enumerate()
        .map(|(i, a)| {
            let mut b = BindingData::new(a, BindingStatus::Active)
                .with_client(None, 1, &[2, 0, 0, 0, (i >> 8) as u8, i as u8])
                .unwrap();
            b.lease_expiration_time = Some(wall.plus(300));
            b.potential_expiration_time = Some(wall.plus(450));
            b.client_last_transaction_time = Some(wall);
            b
        })
        .collect()
}

/// An ACTIVE binding of `address` as a primary sends it, one per BNDUPD.
pub(crate) fn emit_bndupd(xid: u32, address: Ipv4Addr, n: u32) -> Vec<u8> {
    let wall = wall_clock().0;
    let mac = [2, 0, 0, 0, (n >> 8) as u8, n as u8];
    let b = Binding {
        hardware_address: Some(HardwareAddress {
            htype: 1,
            address: &mac,
        }),
        lease_expiration_time: Some(wall + 300),
        potential_expiration_time: Some(wall + 600),
        start_time_of_state: Some(wall),
        client_last_transaction_time: Some(wall),
        ..Binding::new(address, BindingStatus::Active)
    };
    let m = BndUpd::single(wall, xid, &b);
    let mut buf = vec![0u8; m.buffer_len()];
    let k = m.emit(&mut buf).unwrap();
    buf.truncate(k);
    buf
}
