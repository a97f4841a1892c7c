//! TLS on the failover link (issue 13, items 2 and 4): two TLS peers reach NORMAL and exchange
//! a binding; and each way a connection must be refused — a certificate of another CA, one of
//! another identity, an expired one, a plain-TCP client to a TLS listener, a TLS client to a
//! plain listener — is refused before the engine sees a byte, after which the right partner
//! comes up. Loopback only; certificates are made here with rcgen.
#![cfg(feature = "tls")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use common::{Peer, Setup, addr, free_port, until};
use failover_fsm::{Config, Link, Role, ServerState};
use failover_tokio::tls::partner_name;
use failover_tokio::{
    MemoryStore, PeerBuilder, PeerEvent, TlsConfig, TlsError, TlsRefusal, Transport,
    TransportNotChosen,
};

use common::pki::{Ca, PRIMARY_ID, Pki, SECONDARY_ID, tls};

// ---- peers -------------------------------------------------------------------------------

/// TLS with `Some(config)`, plain TCP without.
impl Setup for Option<TlsConfig> {
    const RELATIONSHIP: &'static str = "tls-pair";

    fn apply(self, b: PeerBuilder<MemoryStore>) -> PeerBuilder<MemoryStore> {
        match self {
            Some(t) => b.tls(t),
            None => b.plaintext(),
        }
    }
}

impl Peer {
    /// The TLS refusals so far: (outgoing, reason).
    fn refusals(&self) -> Vec<(bool, TlsRefusal)> {
        self.reported(|e| match e {
            PeerEvent::TlsRefused {
                outgoing, reason, ..
            } => Some((*outgoing, *reason)),
            _ => None,
        })
    }

    /// Nothing of any connection reached the engine: no connection handed to it, no message
    /// read, its link never left Down, nothing heard from a partner.
    fn assert_engine_untouched(&self, who: &str) {
        let c = self.handle.counters();
        assert_eq!(c.connections(), 0, "{who}: a connection reached the engine");
        assert_eq!(c.messages_in(), 0, "{who}: a message reached the engine");
        assert!(!self.link_seen(), "{who}: the link came up");
        let s = self.handle.status();
        assert_eq!(s.link, Link::Down, "{who}");
        assert_eq!(s.last_received, None, "{who}: heard from a partner");
        assert_eq!(s.partner_state, None, "{who}: learnt a partner state");
    }

    /// Nothing from the other end reached the engine. What the refused side can promise: a
    /// TLS 1.3 client has finished its handshake before the server checks its certificate, and
    /// a plain listener hands a connection to its engine before the first byte; so the
    /// intruder's engine may see a connection come and go, but never a message.
    fn assert_nothing_received(&self, who: &str) {
        assert_eq!(
            self.handle.counters().messages_in(),
            0,
            "{who}: a message reached the engine"
        );
        let s = self.handle.status();
        assert_eq!(s.partner_state, None, "{who}: learnt a partner state");
    }
}

/// `primary` and `secondary` reach NORMAL over TLS, and a binding the primary sends is stored
/// by the secondary and acknowledged.
async fn normal_with_a_binding(primary: &Peer, secondary: &Peer) {
    common::normal_with_a_binding(primary, secondary, 7).await;
    assert!(primary.handle.counters().messages_in() > 0);
}

// ---- the right pair ---------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tls_peers_reach_normal_and_acknowledge_a_binding() {
    let pki = Pki::new();
    // The secondary's configuration comes from PEM files, as an operator's would.
    let dir = std::env::temp_dir().join(format!("failover-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let cert = write("secondary.pem", &pki.secondary.cert_pem);
    let key = write("secondary.key", &pki.secondary.key_pem);
    let ca = write("ca.pem", &pki.ca.issuer.pem());
    let from_files = TlsConfig::from_pem_files(&cert, &key, &ca, PRIMARY_ID).unwrap();

    let (pp, sp) = (free_port(), free_port());
    let p = Peer::start(Role::Primary, pp, sp, Some(pki.primary())).await;
    let s = Peer::start(Role::Secondary, sp, pp, Some(from_files)).await;
    normal_with_a_binding(&p, &s).await;
    assert_eq!(
        *p.handle.transport(),
        Transport::Tls {
            partner: SECONDARY_ID.into()
        }
    );
    assert_eq!(
        *s.handle.transport(),
        Transport::Tls {
            partner: PRIMARY_ID.into()
        }
    );
    assert!(
        p.refusals().is_empty() && s.refusals().is_empty(),
        "{:?} {:?}",
        p.refusals(),
        s.refusals()
    );
    assert_eq!(p.handle.counters().tls_refused(), 0);
    std::fs::remove_dir_all(&dir).unwrap();
}

// ---- refusals ----------------------------------------------------------------------------

/// Where the intruder listens and whom it dials.
enum Intruder {
    /// On the port where the secondary expects its partner, dialing the secondary: both
    /// directions meet it.
    BothWays(Option<TlsConfig>),
    /// Dialing the secondary only (it listens elsewhere): the secondary is the listener.
    DialsOnly(Option<TlsConfig>),
    /// On the partner's port only (its own dials go nowhere): the secondary is the client.
    ListensOnly(Option<TlsConfig>),
}

/// The secondary (TLS, the peer under test) meets `intruder` (a primary) until it has refused
/// connections as `expect` says — each (outgoing, reason) seen at least once, and every
/// refusal one of `allowed` — with nothing reaching either engine; then the intruder goes, the
/// right primary comes on the partner's port, and the pair reaches NORMAL and acknowledges a
/// binding.
async fn refused_then_right_partner(
    pki: Pki,
    intruder: Intruder,
    expect: &[(bool, TlsRefusal)],
    allowed: &[TlsRefusal],
) {
    let (sp, pp, elsewhere) = (free_port(), free_port(), free_port());
    let s = Peer::start(Role::Secondary, sp, pp, Some(pki.secondary())).await;
    let bad = match intruder {
        Intruder::BothWays(t) => Peer::start(Role::Primary, pp, sp, t).await,
        Intruder::DialsOnly(t) => Peer::start(Role::Primary, elsewhere, sp, t).await,
        Intruder::ListensOnly(t) => Peer::start(Role::Primary, pp, elsewhere, t).await,
    };
    until(15, "the expected refusals", || {
        let seen = s.refusals();
        expect.iter().all(|e| seen.contains(e))
    })
    .await;
    let seen = s.refusals();
    for (_, reason) in &seen {
        assert!(
            allowed.contains(reason),
            "unexpected refusal {reason:?} in {seen:?}"
        );
    }
    let c = s.handle.counters();
    // The counter runs ahead of the events, which go through a channel.
    assert!(c.tls_refused() >= seen.len() as u64);
    assert!(c.refused() >= c.tls_refused());
    s.assert_engine_untouched("the secondary");
    bad.assert_nothing_received("the intruder");
    bad.handle.abort().await;

    let p = Peer::start(Role::Primary, pp, sp, Some(pki.primary())).await;
    normal_with_a_binding(&p, &s).await;
    assert!(p.refusals().is_empty(), "{:?}", p.refusals());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_of_another_ca_is_refused() {
    let other = Ca::new("another CA");
    let pki = Pki::new();
    // Its own CA signed its certificate; it trusts ours, so only our check stops it.
    let t = tls(&other.leaf(PRIMARY_ID, false), &pki.ca, SECONDARY_ID);
    refused_then_right_partner(
        pki,
        Intruder::BothWays(Some(t)),
        &[
            (false, TlsRefusal::UnknownIssuer),
            (true, TlsRefusal::UnknownIssuer),
        ],
        &[TlsRefusal::UnknownIssuer],
    )
    .await;
}

/// An intruder made with the right pair's CA (`make`), refused as `expect` says.
async fn with_right_ca(
    make: impl FnOnce(&Pki) -> Intruder,
    expect: &[(bool, TlsRefusal)],
    allowed: &[TlsRefusal],
) {
    let pki = Pki::new();
    let intruder = make(&pki);
    refused_then_right_partner(pki, intruder, expect, allowed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_certificate_of_another_identity_is_refused() {
    with_right_ca(
        |pki| {
            let leaf = pki.ca.leaf("intruder.test", false);
            Intruder::BothWays(Some(tls(&leaf, &pki.ca, SECONDARY_ID)))
        },
        &[
            (false, TlsRefusal::WrongIdentity),
            (true, TlsRefusal::WrongIdentity),
        ],
        &[TlsRefusal::WrongIdentity],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_certificate_is_refused() {
    with_right_ca(
        |pki| {
            let leaf = pki.ca.leaf(PRIMARY_ID, true);
            Intruder::BothWays(Some(tls(&leaf, &pki.ca, SECONDARY_ID)))
        },
        &[(false, TlsRefusal::Expired), (true, TlsRefusal::Expired)],
        &[TlsRefusal::Expired],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_client_to_a_tls_listener_is_refused() {
    refused_then_right_partner(
        Pki::new(),
        Intruder::DialsOnly(None),
        &[(false, TlsRefusal::NotTls)],
        &[TlsRefusal::NotTls],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_client_to_a_plain_listener_is_refused() {
    refused_then_right_partner(
        Pki::new(),
        Intruder::ListensOnly(None),
        &[(true, TlsRefusal::NotTls)],
        &[TlsRefusal::NotTls],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_client_holds_up_nothing_and_times_out() {
    let pki = Pki::new();
    let (sp, pp) = (free_port(), free_port());
    let patience = Duration::from_secs(5);
    let tls = pki.secondary().handshake_timeout(patience);
    let s = Peer::start(Role::Secondary, sp, pp, Some(tls)).await;
    // Connects and never says a word: its handshake waits beside the task.
    let silent = tokio::net::TcpStream::connect(addr(sp)).await.unwrap();
    let started = std::time::Instant::now();
    let p = Peer::start(Role::Primary, pp, sp, Some(pki.primary())).await;
    normal_with_a_binding(&p, &s).await;
    assert!(
        started.elapsed() < patience,
        "the pair waited for the silent client's handshake"
    );
    until(10, "the silent client timed out", || {
        s.refusals().contains(&(false, TlsRefusal::Timeout))
    })
    .await;
    drop(silent);
}

// ---- configuration -----------------------------------------------------------------------

#[tokio::test]
async fn plain_tcp_must_be_chosen() {
    let store = Arc::new(MemoryStore::new(
        Role::Primary,
        Ipv4Addr::new(198, 18, 9, 0),
        4,
    ));
    let err = PeerBuilder::new(
        common::config(Role::Primary, "tls-pair"),
        addr(free_port()),
        store,
    )
    .listen(addr(0))
    .start()
    .await
    .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(err.get_ref().unwrap().is::<TransportNotChosen>());
}

#[test]
fn setup_errors_are_typed() {
    let missing = std::path::Path::new("/nonexistent/failover.pem");
    let e = TlsConfig::from_pem_files(missing, missing, missing, PRIMARY_ID).unwrap_err();
    assert!(
        matches!(e, TlsError::Pem { ref path, .. } if path == missing),
        "{e}"
    );
    assert!(matches!(
        partner_name("not a name!"),
        Err(TlsError::PartnerName { .. })
    ));
    let pki = Pki::new();
    // A key that is not the certificate's.
    let e = TlsConfig::new(
        vec![pki.primary.cert.clone()],
        pki.secondary.key.clone_key(),
        vec![pki.ca.der()],
        partner_name(SECONDARY_ID).unwrap(),
    )
    .unwrap_err();
    assert!(matches!(e, TlsError::Rustls(_)), "{e}");
    let e = TlsConfig::new(
        vec![pki.primary.cert.clone()],
        pki.primary.key.clone_key(),
        vec![],
        partner_name(SECONDARY_ID).unwrap(),
    )
    .unwrap_err();
    assert!(matches!(e, TlsError::NoCa { path: None }), "{e}");
}

// ---- one listener, two relationships with one partner, over TLS ---------------------------

/// Two TLS relationships with the same partner address on one shared listener: the listener
/// runs the handshake (one `TlsConfig` for both) and hands each connection over by the name in
/// its CONNECT; both reach NORMAL. A third relationship with that address and another
/// `TlsConfig` is refused, the handshake coming before the name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tls_relationships_with_one_partner_are_told_apart_by_name_after_the_handshake() {
    let pki = Pki::new();
    let listener = failover_tokio::Listener::bind(addr(0)).await.unwrap();
    let shared = pki.secondary();
    let pool = Ipv4Addr::new(198, 18, 10, 0);
    let mut ours = Vec::new();
    for (name, closed) in [("tls-a", free_port()), ("tls-b", free_port())] {
        let store = Arc::new(MemoryStore::new(Role::Secondary, pool, 16));
        // Its own dials go to a closed port: the partner's connections come through the
        // listener.
        let (h, events) =
            PeerBuilder::new(Config::new(Role::Secondary, name, 5), addr(closed), store)
                .tls(shared.clone())
                .listener(&listener)
                .reconnect(Duration::from_millis(100), Duration::from_millis(400))
                .start()
                .await
                .unwrap();
        tokio::spawn(async move {
            let mut events = events;
            while events.recv().await.is_some() {}
        });
        ours.push(h);
    }
    let other = PeerBuilder::new(
        Config::new(Role::Secondary, "tls-c", 5),
        addr(free_port()),
        Arc::new(MemoryStore::new(Role::Secondary, pool, 16)),
    )
    .tls(pki.secondary())
    .listener(&listener)
    .start()
    .await;
    assert_eq!(other.unwrap_err().kind(), std::io::ErrorKind::InvalidInput);

    let mut partners = Vec::new();
    for name in ["tls-a", "tls-b"] {
        let store = Arc::new(MemoryStore::new(Role::Primary, pool, 16));
        let (h, events) = PeerBuilder::new(
            Config::new(Role::Primary, name, 5),
            listener.local_addr(),
            store,
        )
        .tls(pki.primary())
        .listen(addr(free_port()))
        .reconnect(Duration::from_millis(100), Duration::from_millis(400))
        .start()
        .await
        .unwrap();
        tokio::spawn(async move {
            let mut events = events;
            while events.recv().await.is_some() {}
        });
        partners.push(h);
    }
    for h in ours.iter().chain(&partners) {
        tokio::time::timeout(
            Duration::from_secs(20),
            h.wait_for_state(ServerState::Normal),
        )
        .await
        .expect("timed out")
        .unwrap();
    }
    assert_eq!(listener.counters().handed_over(), 2);
    for h in &ours {
        assert_eq!(h.counters().accepted(), 1);
        assert!(matches!(h.transport(), Transport::Tls { .. }));
    }
    for h in ours.into_iter().chain(partners) {
        h.abort().await;
    }
}
