//! ISC's "dueling updates" rule over TCP: two peers in NORMAL grant the same address to two
//! different clients at the same moment, and their BNDUPDs cross on the wire.
//!
//! The rule (ISC dhcpd 4.4 `dhcp_failover_process_bind_update`, `failover_fsm::accept`): a
//! BNDUPD for an address whose own update is still unacknowledged is judged against that
//! update; for two ACTIVE bindings the later client-last-transaction-time wins. The winner
//! refuses the loser's update with reject reason 16 (less critical binding information), the
//! loser accepts the winner's, and both end with the winner's binding.
//!
//! The crossing is made deterministic by a TCP relay between the peers: once armed it holds
//! every BNDUPD, in both directions, until it holds one from each side, then forwards them
//! together — each peer receives the partner's update while its own is in flight, whatever the
//! scheduling. The peers use distinct loopback addresses (the primary 127.0.0.2, the secondary
//! 127.0.0.3), and the relay connects to each from the address that peer expects of its
//! partner (peers close connections from any other address unread).
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
use std::time::Duration;

use failover_fsm::{
    Action, BindingData, BindingStatus, Config, Dialect, Event, RejectReason, Role, ServerState,
};
use failover_proto::{Framer, Message, MessageType};
use failover_tokio::{Handle, MemoryStore, PeerBuilder, PeerEvent, wall_clock};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

const PRIMARY_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
const SECONDARY_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);
const POOL_SIZE: u32 = 8;

async fn within<T>(secs: u64, what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), f)
        .await
        .unwrap_or_else(|_| panic!("timed out after {secs} s: {what}"))
}

/// Polls `cond` every 20 ms for at most `secs` seconds.
async fn until(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    within(secs, what, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

fn config(role: Role) -> Config {
    let mut c = Config::new(role, "dueling-updates", 5);
    // ISC's rule book (also the default; said here because the test is about it).
    c.dialect = Dialect::Isc;
    c.receive_timer = 6;
    c
}

// ----- the relay -----

/// Which peer a message comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Primary,
    Secondary,
}

/// What the relay saw when it released a crossing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Crossing {
    from_primary: usize,
    from_secondary: usize,
}

#[derive(Default)]
struct Gate {
    armed: bool,
    /// Held BNDUPDs, in arrival order, with the writer each goes to.
    held: Vec<(Side, Vec<u8>, mpsc::UnboundedSender<Vec<u8>>)>,
    released: Option<Crossing>,
}

impl Gate {
    /// Routes one whole message read from `from`'s side.
    fn route(&mut self, from: Side, msg: Vec<u8>, to: &mpsc::UnboundedSender<Vec<u8>>) {
        let bndupd = Message::new_unchecked(&msg[..]).msg_type() == MessageType::BndUpd;
        if !(self.armed && bndupd) {
            let _ = to.send(msg);
            return;
        }
        self.held.push((from, msg, to.clone()));
        let count = |side| self.held.iter().filter(|(f, _, _)| *f == side).count();
        let crossing = Crossing {
            from_primary: count(Side::Primary),
            from_secondary: count(Side::Secondary),
        };
        if crossing.from_primary > 0 && crossing.from_secondary > 0 {
            eprintln!(
                "relay: held {} BNDUPD(s) ({} from the primary, {} from the secondary); \
                 forwarding them together",
                crossing.from_primary + crossing.from_secondary,
                crossing.from_primary,
                crossing.from_secondary
            );
            for (_, m, t) in self.held.drain(..) {
                let _ = t.send(m);
            }
            self.armed = false;
            self.released = Some(crossing);
        }
    }
}

/// A TCP relay between the two peers. The primary dials `for_primary` (on the secondary's
/// address); the relay then dials the secondary from the primary's address. And the other way
/// round.
struct Relay {
    gate: Arc<Mutex<Gate>>,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
    /// Where the primary finds "the secondary".
    for_primary: SocketAddr,
    /// Where the secondary finds "the primary".
    for_secondary: SocketAddr,
    listeners: Option<(TcpListener, TcpListener)>,
}

impl Relay {
    async fn bind() -> Relay {
        let for_primary = TcpListener::bind((SECONDARY_IP, 0)).await.unwrap();
        let for_secondary = TcpListener::bind((PRIMARY_IP, 0)).await.unwrap();
        Relay {
            gate: Arc::default(),
            tasks: Arc::default(),
            for_primary: for_primary.local_addr().unwrap(),
            for_secondary: for_secondary.local_addr().unwrap(),
            listeners: Some((for_primary, for_secondary)),
        }
    }

    /// Starts relaying to the peers' listeners.
    fn start(&mut self, primary: SocketAddr, secondary: SocketAddr) {
        let (for_primary, for_secondary) = self.listeners.take().unwrap();
        for (listener, from, target, source) in [
            (for_primary, Side::Primary, secondary, PRIMARY_IP),
            (for_secondary, Side::Secondary, primary, SECONDARY_IP),
        ] {
            let gate = self.gate.clone();
            let tasks = self.tasks.clone();
            let accept = tokio::spawn(async move {
                loop {
                    let Ok((inbound, _)) = listener.accept().await else {
                        return;
                    };
                    let gate = gate.clone();
                    let inner = tasks.clone();
                    let pipe = tokio::spawn(async move {
                        pipe(inbound, from, target, source, gate, inner).await;
                    });
                    tasks.lock().unwrap().push(pipe);
                }
            });
            self.tasks.lock().unwrap().push(accept);
        }
    }

    fn arm(&self) {
        let mut g = self.gate.lock().unwrap();
        g.armed = true;
        g.released = None;
    }

    fn released(&self) -> Option<Crossing> {
        self.gate.lock().unwrap().released
    }

    /// What is held now (for the failure message when no crossing happened).
    fn holding(&self) -> Vec<Side> {
        self.gate
            .lock()
            .unwrap()
            .held
            .iter()
            .map(|(f, _, _)| *f)
            .collect()
    }

    fn stop(&self) {
        for t in self.tasks.lock().unwrap().drain(..) {
            t.abort();
        }
        self.gate.lock().unwrap().held.clear();
    }
}

/// One relayed connection: `inbound` from the `from` peer, an outgoing one to `target` from
/// `source` (the address `target` expects of its partner).
async fn pipe(
    inbound: TcpStream,
    from: Side,
    target: SocketAddr,
    source: Ipv4Addr,
    gate: Arc<Mutex<Gate>>,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
) {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(IpAddr::V4(source), 0)).unwrap();
    let Ok(Ok(outbound)) =
        tokio::time::timeout(Duration::from_secs(5), socket.connect(target)).await
    else {
        return; // the inbound connection is dropped: the peer dials again
    };
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    let other = match from {
        Side::Primary => Side::Secondary,
        Side::Secondary => Side::Primary,
    };
    let (in_r, in_w) = inbound.into_split();
    let (out_r, out_w) = outbound.into_split();
    let mut spawned = Vec::new();
    for (read, write, side) in [(in_r, out_w, from), (out_r, in_w, other)] {
        let (tx, rx) = mpsc::unbounded_channel();
        spawned.push(tokio::spawn(writer(write, rx)));
        spawned.push(tokio::spawn(reader(read, side, tx, gate.clone())));
    }
    tasks.lock().unwrap().extend(spawned);
}

/// Frames what `side` sends and routes each message through the gate.
async fn reader(
    mut read: tokio::net::tcp::OwnedReadHalf,
    side: Side,
    tx: mpsc::UnboundedSender<Vec<u8>>,
    gate: Arc<Mutex<Gate>>,
) {
    let mut framer = Framer::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match read.read(&mut buf).await {
            Ok(0) | Err(_) => return, // `tx` dropped: the writer closes its half
            Ok(n) => n,
        };
        let mut input = &buf[..n];
        loop {
            match framer.next_message(&mut input) {
                Ok(Some(msg)) => gate.lock().unwrap().route(side, msg.to_vec(), &tx),
                Ok(None) => break,
                Err(e) => {
                    eprintln!("relay: unframeable stream from the {side:?}: {e}");
                    return;
                }
            }
        }
    }
}

/// Writes what the gate forwards; closes its half once every sender is gone.
async fn writer(
    mut write: tokio::net::tcp::OwnedWriteHalf,
    mut rx: mpsc::UnboundedReceiver<Vec<u8>>,
) {
    while let Some(m) = rx.recv().await {
        if write.write_all(&m).await.is_err() {
            return;
        }
    }
    let _ = write.shutdown().await;
}

// ----- the peers -----

struct Peer {
    handle: Handle,
    store: Arc<MemoryStore>,
    events: Arc<Mutex<Vec<PeerEvent>>>,
    collector: JoinHandle<()>,
}

async fn start_peer(role: Role, own: Ipv4Addr, partner: SocketAddr, first: Ipv4Addr) -> Peer {
    let store = Arc::new(MemoryStore::new(role, first, POOL_SIZE));
    let (handle, mut rx) = PeerBuilder::new(config(role), partner, store.clone())
        .plaintext()
        .listen(SocketAddr::new(IpAddr::V4(own), 0))
        .bind_address(IpAddr::V4(own))
        .reconnect(Duration::from_millis(100), Duration::from_millis(500))
        .reject_backoff(Duration::from_millis(500))
        .start()
        .await
        .unwrap();
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    let collector = tokio::spawn(async move {
        while let Some(e) = rx.recv().await {
            sink.lock().unwrap().push(e);
        }
    });
    Peer {
        handle,
        store,
        events,
        collector,
    }
}

impl Peer {
    fn events_since(&self, mark: usize) -> Vec<PeerEvent> {
        self.events.lock().unwrap()[mark..].to_vec()
    }

    fn mark(&self) -> usize {
        self.events.lock().unwrap().len()
    }

    /// Nothing queued, in flight or awaiting a commit.
    fn quiet(&self) -> bool {
        let s = self.handle.status();
        s.unacked_sent == 0 && s.queued == 0 && s.awaiting_commit == 0
    }
}

/// What the engine said (an action carried out, or an event).
#[derive(Debug, Clone)]
enum Seen {
    Did(Action),
    Told(Event),
    /// A binding of the partner's, committed.
    Committed(BindingData),
}

/// The engine outputs about `address` among `events`.
fn about(events: &[PeerEvent], address: [u8; 4]) -> Vec<Seen> {
    events
        .iter()
        .filter_map(|e| match e {
            PeerEvent::Engine(ev) => Some(Seen::Told(ev.clone())),
            PeerEvent::Action(a) => Some(Seen::Did(a.clone())),
            PeerEvent::Received(c) => Some(Seen::Committed(c.binding.clone())),
            _ => None,
        })
        .filter(|seen| match seen {
            Seen::Told(Event::RejectedPartnerBinding { address: a, .. })
            | Seen::Did(Action::BindingAcked { address: a, .. })
            | Seen::Did(Action::BindingRejected { address: a, .. }) => *a == address,
            Seen::Committed(binding) => binding.address == address,
            _ => false,
        })
        .collect()
}

/// Our own update of `address` was answered (acknowledged or rejected).
fn answered(events: &[Seen]) -> bool {
    events.iter().any(|e| {
        matches!(
            e,
            Seen::Did(Action::BindingAcked { .. } | Action::BindingRejected { .. })
        )
    })
}

/// The partner's update of `address` was judged (refused, or committed).
fn judged(events: &[Seen]) -> bool {
    events.iter().any(|e| {
        matches!(
            e,
            Seen::Told(Event::RejectedPartnerBinding { .. }) | Seen::Committed(_)
        )
    })
}

fn refused_16(events: &[Seen]) -> usize {
    events
        .iter()
        .filter(|e| {
            matches!(
                e,
                Seen::Told(Event::RejectedPartnerBinding {
                    reason: RejectReason::LessCriticalBindingInformation,
                    ..
                })
            )
        })
        .count()
}

fn grant(address: Ipv4Addr, chaddr: [u8; 6], cltt: u32, lease: u32) -> BindingData {
    let wall = wall_clock();
    let mut b = BindingData::new(address, BindingStatus::Active)
        .with_client(None, 1, &chaddr)
        .unwrap();
    let cltt = wall.minus(cltt);
    b.client_last_transaction_time = Some(cltt);
    b.start_time_of_state = Some(cltt);
    b.lease_expiration_time = Some(cltt.plus(lease));
    b.potential_expiration_time = Some(cltt.plus(lease + 60));
    b
}

/// Two crossing BNDUPDs for one address in NORMAL (ISC dialect): the one with the later
/// client-last-transaction-time wins on both servers; its sender refuses the other with
/// reason 16.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crossing_updates_for_one_address_settle_on_the_later_binding() {
    let first = Ipv4Addr::new(198, 18, 40, 0);
    let mut relay = Relay::bind().await;
    let p = start_peer(Role::Primary, PRIMARY_IP, relay.for_primary, first).await;
    let s = start_peer(Role::Secondary, SECONDARY_IP, relay.for_secondary, first).await;
    relay.start(p.handle.local_addr(), s.handle.local_addr());
    within(
        20,
        "primary NORMAL",
        p.handle.wait_for_state(ServerState::Normal),
    )
    .await
    .unwrap();
    within(
        20,
        "secondary NORMAL",
        s.handle.wait_for_state(ServerState::Normal),
    )
    .await
    .unwrap();
    // Pool balancing on entering NORMAL gives the secondary half the pool; let it finish so
    // that no other BNDUPD is on the wire when the relay is armed.
    until(10, "pool balancing done", || {
        s.store.count(BindingStatus::Backup) == POOL_SIZE as usize / 2 && p.quiet() && s.quiet()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        p.quiet() && s.quiet(),
        "traffic still under way before arming"
    );

    // The first address, FREE on both: each server grants it to a different client.
    let address = first;
    let key = address.octets();
    let primary_grant = grant(address, [2, 0, 0, 0, 0, 0xa], 20, 300);
    let secondary_grant = grant(address, [2, 0, 0, 0, 0, 0xb], 10, 300);
    let (pm, sm) = (p.mark(), s.mark());
    relay.arm();
    // `send_binding` is what a DHCP server calls after granting: the task records the grant in
    // the store (`Storage::record_local`) and then queues it for the partner.
    let (rp, rs) = within(10, "send_binding", async {
        tokio::join!(
            p.handle.send_binding(primary_grant.clone()),
            s.handle.send_binding(secondary_grant.clone())
        )
    })
    .await;
    rp.unwrap();
    rs.unwrap();
    // Not fatal here: the assertions below report what the relay held.
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        while relay.released().is_none() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    let crossing = relay.released();

    // Both updates answered and both partner updates judged; then nothing left in flight.
    let settled = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let (pe, se) = (
                about(&p.events_since(pm), key),
                about(&s.events_since(sm), key),
            );
            if answered(&pe)
                && answered(&se)
                && judged(&pe)
                && judged(&se)
                && p.quiet()
                && s.quiet()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .is_ok();
    let (p_events, s_events) = (p.events_since(pm), s.events_since(sm));
    let (pe, se) = (about(&p_events, key), about(&s_events, key));
    let (p_lease, s_lease) = (p.store.get(address).unwrap(), s.store.get(address).unwrap());
    let left_normal = |evs: &[PeerEvent]| {
        evs.iter()
            .filter_map(|e| match e {
                PeerEvent::Engine(Event::StateChanged { from, to }) => {
                    Some(format!("{from} -> {to}"))
                }
                PeerEvent::Disconnected => Some("disconnected".to_string()),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    let (p_left, s_left) = (left_normal(&p_events), left_normal(&s_events));
    let (p_state, s_state) = (p.handle.status().state, s.handle.status().state);
    let summary = format!(
        "\n  relay crossing: {crossing:?} (still held: {:?})\
         \n  primary   granted hw ..:0a cltt {:?}; store now: {:?} hw {:?} cltt {:?} partner_has_it {}\
         \n  secondary granted hw ..:0b cltt {:?}; store now: {:?} hw {:?} cltt {:?} partner_has_it {}\
         \n  primary   events: {pe:?}\
         \n  secondary events: {se:?}\
         \n  states: primary {p_state} (changes {p_left:?}), secondary {s_state} (changes {s_left:?})",
        relay.holding(),
        primary_grant.client_last_transaction_time,
        p_lease.data.status,
        p_lease.data.hardware_address,
        p_lease.data.client_last_transaction_time,
        p_lease.partner_has_it,
        secondary_grant.client_last_transaction_time,
        s_lease.data.status,
        s_lease.data.hardware_address,
        s_lease.data.client_last_transaction_time,
        s_lease.partner_has_it,
    );
    eprintln!("outcome:{summary}");

    // Shut everything down before judging, so that a failure leaves nothing running.
    within(20, "shutdown", async {
        tokio::join!(p.handle.shutdown(), s.handle.shutdown());
    })
    .await;
    relay.stop();
    p.collector.abort();
    s.collector.abort();

    // The relay, not timing, made them cross: exactly one BNDUPD from each side, held together.
    assert_eq!(
        crossing,
        Some(Crossing {
            from_primary: 1,
            from_secondary: 1
        }),
        "the updates did not cross in the relay as arranged{summary}"
    );
    assert!(settled, "the exchange did not settle within 10 s{summary}");
    // ISC's rule: exactly one side refuses the other's update with reason 16 — the secondary,
    // whose binding has the later client-last-transaction-time — and the primary's update is
    // rejected with 16 accordingly.
    let (p16, s16) = (refused_16(&pe), refused_16(&se));
    assert!(
        p16 + s16 == 1,
        "expected exactly one side to refuse the other's update with reason 16 \
         (less critical binding information), got primary {p16}, secondary {s16}{summary}"
    );
    assert_eq!(
        (p16, s16),
        (0, 1),
        "the refusal must come from the side with the later CLTT (the secondary){summary}"
    );
    assert!(
        pe.iter().any(|e| matches!(
            e,
            Seen::Did(Action::BindingRejected {
                reason: RejectReason::LessCriticalBindingInformation,
                ..
            })
        )),
        "the primary did not see its update rejected with reason 16{summary}"
    );
    // Both stores hold the winner: the same client, status and CLTT.
    let fields = |b: &BindingData| {
        (
            b.status,
            b.hardware_address.clone(),
            b.client_identifier.clone(),
            b.client_last_transaction_time,
        )
    };
    assert!(
        fields(&p_lease.data) == fields(&s_lease.data),
        "the stores disagree on {address}: the records {}{summary}",
        if fields(&p_lease.data) == fields(&secondary_grant)
            && fields(&s_lease.data) == fields(&primary_grant)
        {
            "swapped (each server holds the other's binding)"
        } else {
            "differ"
        }
    );
    assert!(
        fields(&s_lease.data) == fields(&secondary_grant),
        "both stores hold a binding, but not the one with the later CLTT{summary}"
    );
    // The winner's update was acknowledged by the partner, which stored it.
    assert!(
        se.iter().any(|e| matches!(
            e,
            Seen::Did(Action::BindingAcked {
                status: BindingStatus::Active,
                ..
            })
        )) && s_lease.partner_has_it,
        "the secondary's update was not acknowledged{summary}"
    );
    assert!(
        pe.iter().any(
            |e| matches!(e, Seen::Committed(binding) if fields(binding) == fields(&secondary_grant))
        ) && p_lease.partner_has_it,
        "the primary did not commit the secondary's binding{summary}"
    );
    // And the relationship was not disturbed.
    assert!(
        p_state == ServerState::Normal
            && s_state == ServerState::Normal
            && p_left.is_empty()
            && s_left.is_empty(),
        "a peer left NORMAL or lost the connection{summary}"
    );
}
