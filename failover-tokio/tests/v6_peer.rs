//! The DHCPv6 failover peer (`failover_tokio::v6::Peer6`) on the loopback: two peers from a
//! cold start to NORMAL (plain and over TLS), a crash of the secondary, the operator's
//! PARTNER-DOWN, a restart from the state file through RECOVER, and the state store's part:
//! nothing announced before it is durable, the snapshot read back at the restart; a refused
//! STARTTLS slowing the primary down; a hand-written partner's BNDUPD answered. Section
//! numbers are RFC 8156's. Every wait is bounded.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

mod common;

use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use common::{addr, free_port};
use failover_fsm::engine::EngineError;
use failover_fsm::{Config, Event, Persisted, Role, ServerState};
use failover_tokio::PeerError;
use failover_tokio::v6::{
    Handle6, MemoryState, Peer6, PeerEvent6, Security6, StateFile, StateStore,
};
use tokio::task::JoinHandle;

/// Short enough for a test of seconds: RECOVER-WAIT lasts the MCLT.
const MCLT: u32 = 5;

fn config(role: Role) -> Config {
    let mut c = Config::new(role, "v6-peer", MCLT);
    // CONTACT every second (a quarter of the keep-alive time, §6.5); STARTUP 1 s.
    c.receive_timer = 4;
    c.startup_delay = 1;
    c.startup_delay_after_long_down = 1;
    c.connect_timeout = 5;
    c
}

/// A running peer and what it reported.
struct Peer {
    handle: Handle6,
    events: Arc<Mutex<Vec<PeerEvent6>>>,
    collector: JoinHandle<()>,
}

impl Peer {
    /// A primary dials `partner_port`; a secondary listens on `port` for 127.0.0.1.
    async fn start(role: Role, port: u16, security: Security6, state: Arc<dyn StateStore>) -> Peer {
        let builder = Peer6::new(config(role), addr(port))
            .listen(addr(port))
            .security(security)
            .state_store(state)
            .reconnect(Duration::from_millis(100), Duration::from_millis(400))
            .reject_backoff(Duration::from_millis(400))
            .setup_timeout(Duration::from_secs(3));
        let (handle, mut rx) = builder.start().await.unwrap();
        let events = Arc::new(Mutex::new(Vec::new()));
        let log = events.clone();
        // Ends when the task does (its sender goes with it).
        let collector = tokio::spawn(async move {
            while let Some(e) = rx.recv().await {
                log.lock().unwrap().push(e);
            }
        });
        Peer {
            handle,
            events,
            collector,
        }
    }

    fn reported<T>(&self, pick: impl FnMut(&PeerEvent6) -> Option<T>) -> Vec<T> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter_map(pick)
            .collect()
    }

    /// The state changes, in order.
    fn transitions(&self) -> Vec<(ServerState, ServerState)> {
        self.reported(|e| match e {
            PeerEvent6::Engine(Event::StateChanged { from, to }) => Some((*from, *to)),
            _ => None,
        })
    }

    fn persisted(&self) -> Vec<Persisted> {
        self.reported(|e| match e {
            PeerEvent6::Persisted(p) => Some(*p),
            _ => None,
        })
    }

    async fn reach(&self, state: ServerState, secs: u64) {
        let waited =
            tokio::time::timeout(Duration::from_secs(secs), self.handle.wait_for_state(state))
                .await;
        assert!(
            matches!(waited, Ok(Ok(()))),
            "{state} not reached within {secs} s: {:?}\n{:?}",
            self.handle.status(),
            self.transitions()
        );
        // The event saying so follows the status (the collector may lag behind).
        eventually(2, &format!("{state} reported"), || {
            self.transitions().iter().any(|(_, to)| *to == state)
        })
        .await;
    }

    /// Stops the task in order and waits for its event collector.
    async fn stop(self) {
        tokio::time::timeout(Duration::from_secs(10), self.handle.shutdown())
            .await
            .expect("shutdown within 10 s");
        tokio::time::timeout(Duration::from_secs(5), self.collector)
            .await
            .expect("events end with the task")
            .unwrap();
    }
}

/// A new directory for one test's state files.
fn state_dir(test: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("v6-peer-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Waits (at most 5 s) until the state file at `path` says `state`.
async fn until_on_disk(path: &std::path::Path, state: ServerState) {
    let file = StateFile::new(path);
    let waited = tokio::time::timeout(Duration::from_secs(5), async {
        while file.load().unwrap().map(|p| p.state) != Some(state) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(
        waited.is_ok(),
        "{} says {:?}, not {state}",
        path.display(),
        file.load()
    );
}

/// Waits (at most `secs`) until `done` holds.
async fn eventually(secs: u64, what: &str, mut done: impl FnMut() -> bool) {
    let waited = tokio::time::timeout(Duration::from_secs(secs), async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "{what}: not within {secs} s");
}

/// Whether `seq` holds `want` in this order (other items between them allowed).
fn in_order<T: PartialEq>(seq: &[T], want: &[T]) -> bool {
    let mut it = seq.iter();
    want.iter().all(|w| it.any(|s| s == w))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insecure_pair_fails_over_and_recovers_from_its_state_file() {
    use ServerState::*;
    let dir = state_dir("insecure");
    let port = free_port();
    let p_file = dir.join("primary.state");
    let s_file = dir.join("secondary.state");

    // The primary first: nobody listens yet, so it retries (§6.1) until the secondary is up.
    let primary = Peer::start(
        Role::Primary,
        port,
        Security6::Insecure,
        Arc::new(StateFile::new(&p_file)),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let failed_dials = primary.reported(|e| match e {
        PeerEvent6::SetupFailed { outgoing: true, .. } => Some(()),
        _ => None,
    });
    assert!(!failed_dials.is_empty(), "the primary dialed and failed");
    let secondary = Peer::start(
        Role::Secondary,
        port,
        Security6::Insecure,
        Arc::new(StateFile::new(&s_file)),
    )
    .await;
    assert_eq!(primary.handle.restored(), None, "a new server");
    assert_eq!(secondary.handle.restored(), None, "a new server");

    // Cold start: RECOVER, RECOVER-WAIT for the MCLT, RECOVER-DONE, NORMAL on both.
    primary.reach(Normal, 30).await;
    secondary.reach(Normal, 30).await;
    for side in [&primary, &secondary] {
        let t = side.transitions();
        assert!(
            in_order(
                &t,
                &[
                    (Startup, Recover),
                    (Recover, RecoverWait),
                    (RecoverWait, RecoverDone),
                    (RecoverDone, Normal)
                ]
            ),
            "{t:?}"
        );
    }
    let connected = primary.reported(|e| match e {
        PeerEvent6::Connected { outgoing, tls, .. } => Some((*outgoing, *tls)),
        _ => None,
    });
    assert_eq!(connected, [(true, false)]);
    let accepted = secondary.reported(|e| match e {
        PeerEvent6::Connected { outgoing, tls, .. } => Some((*outgoing, *tls)),
        _ => None,
    });
    assert_eq!(accepted, [(false, false)]);
    assert_eq!(secondary.handle.counters().accepted(), 1);
    // Not interrupted: the operator's PARTNER-DOWN needs force (§8.4.2 via
    // COMMUNICATIONS-INTERRUPTED).
    assert_eq!(
        primary.handle.partner_down(false).await,
        Err(PeerError::Engine(EngineError::NotInterrupted {
            state: Normal
        }))
    );

    // What the secondary announced is on disk: its file says NORMAL (once the write that
    // holds it has returned), with the primary's MCLT.
    until_on_disk(&s_file, Normal).await;
    let on_disk = StateFile::new(&s_file).load().unwrap().expect("a snapshot");
    assert_eq!(on_disk.mclt, Some(MCLT));
    eventually(2, "NORMAL's snapshot reported", || {
        secondary.persisted().iter().any(|p| p.state == Normal)
    })
    .await;

    // The secondary crashes: the primary loses the connection.
    secondary.handle.abort().await;
    primary.reach(CommunicationsInterrupted, 10).await;
    primary.handle.partner_down(false).await.unwrap();
    primary.reach(PartnerDown, 5).await;
    until_on_disk(&p_file, PartnerDown).await;
    let crashed_with = StateFile::new(&s_file).load().unwrap();
    assert_eq!(crashed_with.map(|p| p.state), Some(Normal));

    // It restarts from its file. The primary has been in PARTNER-DOWN since after the
    // secondary last operated: RECOVER (§8.3 step 5), then RECOVER-WAIT for the MCLT, and
    // both end in NORMAL.
    let secondary = Peer::start(
        Role::Secondary,
        port,
        Security6::Insecure,
        Arc::new(StateFile::new(&s_file)),
    )
    .await;
    assert_eq!(
        secondary.handle.restored(),
        crashed_with,
        "the restart starts from the snapshot on disk"
    );
    secondary.reach(Normal, 30).await;
    primary.reach(Normal, 10).await;
    let t = secondary.transitions();
    assert!(
        in_order(
            &t,
            &[
                (Startup, Recover),
                (Recover, RecoverWait),
                (RecoverWait, RecoverDone),
                (RecoverDone, Normal)
            ]
        ),
        "{t:?}"
    );
    assert!(
        in_order(
            &primary.transitions(),
            &[
                (Normal, CommunicationsInterrupted),
                (CommunicationsInterrupted, PartnerDown),
                (PartnerDown, Normal)
            ]
        ),
        "{:?}",
        primary.transitions()
    );
    let partner_seen = secondary.reported(|e| match e {
        PeerEvent6::Engine(Event::PartnerStateChanged { state, .. }) => Some(*state),
        _ => None,
    });
    assert_eq!(partner_seen.first(), Some(&PartnerDown), "{partner_seen:?}");

    secondary.stop().await;
    // The secondary's DISCONNECT: the primary is interrupted again (RFC 8156 has no SHUTDOWN).
    primary.reach(CommunicationsInterrupted, 10).await;
    primary.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// A state store whose writes wait until the test opens it.
#[derive(Default)]
struct Gated {
    inner: MemoryState,
    open: Mutex<bool>,
    opened: Condvar,
    writes: Mutex<u32>,
}

impl Gated {
    fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.opened.notify_all();
    }
}

impl StateStore for Gated {
    fn load(&self) -> std::io::Result<Option<Persisted>> {
        self.inner.load()
    }

    fn save(&self, snapshot: &Persisted) -> std::io::Result<()> {
        *self.writes.lock().unwrap() += 1;
        let mut open = self.open.lock().unwrap();
        while !*open {
            // Bounded: the test opens the gate within seconds.
            let (o, t) = self
                .opened
                .wait_timeout(open, Duration::from_secs(30))
                .unwrap();
            open = o;
            if t.timed_out() {
                return Err(std::io::Error::other("gate never opened"));
            }
        }
        self.inner.save(snapshot)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_is_announced_only_once_its_snapshot_is_written() {
    let port = free_port();
    let gate = Arc::new(Gated::default());
    let secondary = Peer::start(Role::Secondary, port, Security6::Insecure, gate.clone()).await;
    // STARTUP ends before the primary connects: a new server's RECOVER changes nothing on
    // stable storage (a restart without a snapshot starts there too), so nothing is written
    // yet and its STATE may go out at once.
    secondary.reach(ServerState::Recover, 10).await;
    assert_eq!(*gate.writes.lock().unwrap(), 0);
    let primary = Peer::start(
        Role::Primary,
        port,
        Security6::Insecure,
        Arc::new(MemoryState::new()),
    )
    .await;
    // The secondary learns the primary's MCLT from its CONNECT: that snapshot waits at the
    // gate. Its UPDREQALL answered, it enters RECOVER-WAIT: a state change, whose snapshot
    // can only follow the first, and whose STATE waits for it (§8.3: the state is recorded
    // before it is announced).
    secondary.reach(ServerState::RecoverWait, 10).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(*gate.writes.lock().unwrap() >= 1);
    let heard = primary.handle.status().partner_state;
    assert_eq!(
        heard,
        Some(ServerState::Recover),
        "the partner heard of a state not yet durable"
    );
    assert!(secondary.persisted().is_empty());
    assert_eq!(gate.inner.saved(), None);

    gate.open();
    tokio::time::timeout(Duration::from_secs(10), async {
        let mut w = primary.handle.watch();
        w.wait_for(|s| s.partner_state != Some(ServerState::Recover))
            .await
            .map(|_| ())
    })
    .await
    .expect("announced once written")
    .unwrap();
    // The primary heard it, so the write had returned: the store holds it.
    assert_eq!(
        gate.inner.saved().map(|p| p.state),
        Some(ServerState::RecoverWait)
    );
    eventually(2, "the snapshot reported", || {
        secondary
            .persisted()
            .iter()
            .any(|p| p.state == ServerState::RecoverWait)
    })
    .await;
    secondary.stop().await;
    primary.stop().await;
}

#[tokio::test]
async fn start_needs_a_security_mode_and_a_state_store() {
    use failover_tokio::v6::Peer6Error;
    let p = Peer6::new(config(Role::Primary), addr(1));
    let e = p.state_store(Arc::new(MemoryState::new())).start().await;
    assert!(matches!(e, Err(Peer6Error::SecurityNotChosen)));
    let e = Peer6::new(config(Role::Primary), addr(1))
        .security(Security6::Insecure)
        .start()
        .await;
    assert!(matches!(e, Err(Peer6Error::StateNotChosen)));
    // A file that is not a snapshot: not started as a new server.
    let dir = state_dir("unreadable");
    std::fs::write(dir.join("state"), "not a state\n").unwrap();
    let e = Peer6::new(config(Role::Primary), addr(1))
        .security(Security6::Insecure)
        .state_file(dir.join("state"))
        .start()
        .await;
    assert!(matches!(e, Err(Peer6Error::StateUnreadable(_))), "{e:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[cfg(feature = "tls")]
mod secure {
    use super::*;
    use common::pki::Pki;
    use failover_tokio::v6::StartError;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn secure_pair_reaches_normal_over_tls() {
        let pki = Pki::new();
        let port = free_port();
        let secondary = Peer::start(
            Role::Secondary,
            port,
            Security6::Secure(pki.secondary()),
            Arc::new(MemoryState::new()),
        )
        .await;
        let primary = Peer::start(
            Role::Primary,
            port,
            Security6::Secure(pki.primary()),
            Arc::new(MemoryState::new()),
        )
        .await;
        primary.reach(ServerState::Normal, 30).await;
        secondary.reach(ServerState::Normal, 30).await;
        for (side, outgoing) in [(&primary, true), (&secondary, false)] {
            let c = side.reported(|e| match e {
                PeerEvent6::Connected { outgoing, tls, .. } => Some((*outgoing, *tls)),
                _ => None,
            });
            assert_eq!(c, [(outgoing, true)]);
        }
        secondary.stop().await;
        primary.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_refused_starttls_slows_the_primary_down() {
        // An insecure secondary refuses STARTTLS (RFC 7653 §8.2); the primary retries at
        // its reject backoff (§6.1: slower after rejections), not its 100 ms minimum.
        let pki = Pki::new();
        let port = free_port();
        let secondary = Peer::start(
            Role::Secondary,
            port,
            Security6::Insecure,
            Arc::new(MemoryState::new()),
        )
        .await;
        let state = Arc::new(MemoryState::new());
        let (handle, mut rx) = Peer6::new(config(Role::Primary), addr(port))
            .security(Security6::Secure(pki.primary()))
            .state_store(state)
            .reconnect(Duration::from_millis(100), Duration::from_millis(100))
            .reject_backoff(Duration::from_millis(1000))
            .start()
            .await
            .unwrap();
        let mut refusals = 0;
        let window = tokio::time::sleep(Duration::from_millis(2600));
        tokio::pin!(window);
        loop {
            tokio::select! {
                e = rx.recv() => match e {
                    Some(PeerEvent6::SetupFailed { outgoing: true, error, .. }) => {
                        assert!(
                            matches!(*error, StartError::TlsRefusedByPartner { .. }),
                            "{error}"
                        );
                        refusals += 1;
                    }
                    Some(_) => {}
                    None => break,
                },
                _ = &mut window => break,
            }
        }
        // At 100 ms the primary would have tried some 20 times; at 1 s (±25 %), 3 or 4.
        assert!((2..=4).contains(&refusals), "{refusals} refusals");
        assert!(!handle.status().link.eq(&failover_fsm::Link::Up));
        handle.abort().await;
        secondary.stop().await;
    }
}

/// A hand-written primary: CONNECT, the peer's CONNECTREPLY and STATE, our STATE, then one
/// BNDUPD for an IA_NA address. With no DHCPv6 lease store plugged in, the peer holds no
/// lease: its BNDREPLY echoes the binding with ConfigurationConflict (§7.5.4) — the engine's
/// binding parameters wired through the task's one feeding and one draining place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partners_bndupd_is_answered_by_a_bndreply() {
    use std::net::Ipv6Addr;

    use failover_proto::Text;
    use failover_proto::v6::{
        Binding, BindingStatus, BndUpd, ClientData, Connect, ConnectFlags, Ia, IaKind, Lease,
        LeaseAddr, List, ProtocolVersion, Repr, ServerFlags, State, Status, time,
    };
    use failover_tokio::v6::connect_as_primary;

    let port = free_port();
    let secondary = Peer::start(
        Role::Secondary,
        port,
        Security6::Insecure,
        Arc::new(MemoryState::new()),
    )
    .await;
    let wait = Duration::from_secs(3);
    let mut conn = connect_as_primary(addr(port), &Security6::Insecure, 1, wait)
        .await
        .unwrap();
    let now = || time::from_unix(u64::from(failover_tokio::wall_clock().0)).unwrap();
    let send = |r: Repr<'_>| {
        let mut buf = vec![0u8; r.buffer_len()];
        let n = r.emit(&mut buf).unwrap();
        buf.truncate(n);
        buf
    };
    conn.write_message(&send(Repr::Connect(Connect {
        xid: 0x10,
        sent_time: now(),
        protocol_version: ProtocolVersion::V1_0,
        mclt: MCLT,
        keepalive_time: 60,
        max_unacked_bndupd: 8,
        relationship_name: Some(Text(b"v6-peer")),
        connect_flags: ConnectFlags::EMPTY,
        extra: Default::default(),
    })))
    .await
    .unwrap();
    // Reads until `pick` finds what it wants (bounded: 20 messages, 3 s each).
    async fn read_until<T>(
        conn: &mut failover_tokio::v6::Connection6,
        mut pick: impl FnMut(Repr<'_>) -> Option<T>,
    ) -> T {
        let mut msg = Vec::new();
        for _ in 0..20 {
            let got = tokio::time::timeout(Duration::from_secs(3), conn.next_message(&mut msg))
                .await
                .expect("the peer answers")
                .unwrap();
            assert!(got, "the peer closed the connection");
            if let Some(t) = pick(Repr::parse(&msg).unwrap()) {
                return t;
            }
        }
        panic!("not among 20 messages");
    }
    let accepted = read_until(&mut conn, |r| match r {
        Repr::ConnectReply(a) => Some(a.is_accept()),
        _ => None,
    })
    .await;
    assert!(accepted);
    read_until(&mut conn, |r| matches!(r, Repr::State(_)).then_some(())).await;
    conn.write_message(&send(Repr::State(State {
        xid: 0x11,
        sent_time: now(),
        server_state: failover_proto::v6::ServerState::Recover,
        server_flags: ServerFlags::EMPTY,
        start_time_of_state: now(),
        partner_down_time: None,
        extra: Default::default(),
    })))
    .await
    .unwrap();

    let at = now();
    let lease = Lease {
        addr: LeaseAddr::Address(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
        preferred_lifetime: 300,
        valid_lifetime: 600,
        status: None,
        vss: None,
        lq_base_time: None,
        binding_status: Some(BindingStatus::Active),
        start_time_of_state: Some(at - 5),
        state_expiration_time: Some(at + 600),
        clt_time: Some(5),
        partner_lifetime: Some(at + 900),
        partner_raw_clt_time: None,
        expiration_time: Some(at + 600),
        partner_lifetime_sent: None,
        client_fqdn: None,
        dns_removal_info: None,
        extra: Default::default(),
    };
    let leases = [lease];
    let ias = [Ia {
        kind: IaKind::Na,
        iaid: 1,
        t1: 150,
        t2: 240,
        leases: List::from_slice(&leases),
        status: None,
        extra: Default::default(),
    }];
    let duid: &[u8] = &[0, 3, 0, 1, 2, 0, 0x5e, 0, 0x53, 1];
    conn.write_message(&send(Repr::BndUpd(BndUpd {
        xid: 0x12,
        sent_time: at,
        binding: Binding::Client(ClientData {
            status: None,
            client_id: Some(duid),
            lq_base_time: Some(at),
            vss: None,
            reconfigure: None,
            relay_data: None,
            ias: List::from_slice(&ias),
            extra: Default::default(),
        }),
        extra: Default::default(),
    })))
    .await
    .unwrap();
    let statuses = read_until(&mut conn, |r| match r {
        Repr::BndReply(reply) => {
            assert_eq!(reply.xid, 0x12);
            let Binding::Client(c) = reply.binding else {
                panic!("CLIENT_DATA echoed")
            };
            assert_eq!(c.client_id, Some(duid));
            Some(
                c.ias
                    .iter()
                    .flat_map(|ia| ia.leases.iter())
                    .map(|l| l.status.map(|s| s.status))
                    .collect::<Vec<_>>(),
            )
        }
        _ => None,
    })
    .await;
    assert_eq!(statuses, [Some(Status::ConfigurationConflict)]);
    assert_eq!(secondary.handle.status().link, failover_fsm::Link::Up);
    drop(conn);
    secondary.stop().await;
}
