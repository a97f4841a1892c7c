//! Message authentication on the failover link (issue 13, items 3 and the digest half of 4):
//! two peers with the same shared secret reach NORMAL and acknowledge a binding; a peer with
//! another secret, a peer without digests, and captured bytes of the right peer sent again
//! (on a new connection, and injected into the live one) are each refused — DISCONNECT with
//! the reject reason, connection closed, nothing of it reaching the victim's engine — and the
//! relationship then comes up with the right partner. Loopback only, bounded waits.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Peer, Setup, addr, free_port, normal_with_a_binding, until};
use failover_fsm::{Link, RejectReason, Role};
use failover_proto::auth::{DigestError, HMAC_SHA256_TYPE};
use failover_proto::{Framer, HmacSha256, MessageType, Repr};
use failover_tokio::{MemoryStore, PeerBuilder, PeerEvent, wall_clock};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

const SECRET: &[u8] = b"the pair's shared secret";

/// Plain TCP, with message digests over `Some(secret)`.
impl Setup for Option<&[u8]> {
    const RELATIONSHIP: &'static str = "digest-pair";

    fn apply(self, b: PeerBuilder<MemoryStore>) -> PeerBuilder<MemoryStore> {
        let b = b.plaintext();
        match self {
            Some(s) => b.message_auth(HmacSha256::new(s).unwrap()),
            None => b,
        }
    }
}

impl Peer {
    /// The digest refusals reported so far.
    fn refusals(&self) -> Vec<DigestError> {
        self.reported(|e| match e {
            PeerEvent::DigestRefused { reason } => Some(*reason),
            _ => None,
        })
    }

    /// Nothing from a partner reached the engine: no message handed to it, its link never
    /// up, no partner state, no binding received.
    fn assert_engine_untouched(&self, who: &str) {
        assert_eq!(
            self.handle.counters().messages_in(),
            0,
            "{who}: a message reached the engine"
        );
        assert_eq!(self.link_ups(), 0, "{who}: the link came up");
        let s = self.handle.status();
        assert_eq!(s.partner_state, None, "{who}: learnt a partner state");
        assert_eq!(s.counters.bndupd_received, 0, "{who}: received a binding");
    }
}

/// What a raw client read back: each message's type and reject reason, and whether the
/// connection was then closed.
async fn send_raw(to: u16, bytes: &[u8]) -> (Vec<(MessageType, Option<RejectReason>)>, bool) {
    let mut c = tokio::net::TcpStream::connect(addr(to)).await.unwrap();
    c.write_all(bytes).await.unwrap();
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), c.read_to_end(&mut got)).await;
    let closed = matches!(read, Ok(Ok(_)));
    let mut framer = Framer::new();
    let mut input = got.as_slice();
    let mut msgs = Vec::new();
    while let Ok(Some(m)) = framer.next_message(&mut input) {
        let reason = match Repr::parse(m) {
            Ok(Repr::Disconnect(d)) => Some(d.reject_reason),
            _ => None,
        };
        msgs.push((MessageType::from(m[2]), reason));
    }
    (msgs, closed)
}

/// The peer's answer to a refused message: one DISCONNECT with `reason`, then the close.
fn assert_disconnected(
    answer: &(Vec<(MessageType, Option<RejectReason>)>, bool),
    reason: RejectReason,
) {
    assert_eq!(
        answer.0,
        vec![(MessageType::Disconnect, Some(reason))],
        "{answer:?}"
    );
    assert!(answer.1, "the connection was not closed");
}

// ---- the right pair ---------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_peers_with_the_same_secret_reach_normal_and_acknowledge_a_binding() {
    let (pp, sp) = (free_port(), free_port());
    let p = Peer::start(Role::Primary, pp, sp, Some(SECRET)).await;
    let s = Peer::start(Role::Secondary, sp, pp, Some(SECRET)).await;
    normal_with_a_binding(&p, &s, 1).await;
    for peer in [&p, &s] {
        assert_eq!(peer.handle.digest_type(), Some(HMAC_SHA256_TYPE));
        assert_eq!(peer.handle.counters().digest_refused(), 0);
        assert!(peer.refusals().is_empty(), "{:?}", peer.refusals());
        assert!(peer.handle.counters().messages_in() > 0);
    }
}

// ---- refusals ----------------------------------------------------------------------------

/// The secondary (secret [`SECRET`], the victim) meets a primary with `intruder_secret`
/// (dialing it and dialed by it) until it has refused it for `expect`, with nothing reaching
/// its engine; the intruder goes, the right primary comes, and the pair reaches NORMAL.
async fn refused_peer_then_right_partner(intruder_secret: Option<&[u8]>, expect: DigestError) {
    let (sp, pp) = (free_port(), free_port());
    let s = Peer::start(Role::Secondary, sp, pp, Some(SECRET)).await;
    let bad = Peer::start(Role::Primary, pp, sp, intruder_secret).await;
    until(15, "the victim's refusal", || {
        s.refusals().contains(&expect)
    })
    .await;
    assert!(
        s.refusals().iter().all(|r| *r == expect),
        "{:?}",
        s.refusals()
    );
    // The counter runs ahead of the events, which go through a channel.
    assert!(s.handle.counters().digest_refused() >= s.refusals().len() as u64);
    s.assert_engine_untouched("the secondary");
    // The intruder's engine never hears from the victim either: the victim's DISCONNECT
    // fails the intruder's check (another secret: bad; none: not configured).
    assert_eq!(bad.handle.counters().messages_in(), 0);
    bad.handle.abort().await;
    // The refusal counter moves at once, the status at the end of the task's step (after the
    // DISCONNECT): compared once the intruder is gone, so that no refusal is half counted
    // (read between the two, under load, they differed by one).
    until(10, "one DISCONNECT with the reason per refusal", || {
        let sent = s
            .handle
            .status()
            .counters
            .rejects_sent(expect.reject_reason());
        u64::from(sent) == s.handle.counters().digest_refused()
    })
    .await;
    assert!(s.handle.counters().digest_refused() >= 1);

    let p = Peer::start(Role::Primary, pp, sp, Some(SECRET)).await;
    normal_with_a_binding(&p, &s, 2).await;
    assert!(p.refusals().is_empty(), "{:?}", p.refusals());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_with_another_secret_is_refused() {
    refused_peer_then_right_partner(Some(b"not the pair's secret"), DigestError::Bad).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_without_digest_is_refused() {
    refused_peer_then_right_partner(None, DigestError::Missing).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_digest_to_a_peer_without_secret_is_refused() {
    // §11.1 the other way: the victim has no secret, the intruder signs.
    let (sp, pp) = (free_port(), free_port());
    let s = Peer::start(Role::Secondary, sp, pp, None).await;
    let bad = Peer::start(Role::Primary, pp, sp, Some(SECRET)).await;
    until(15, "the victim's refusal", || {
        s.refusals().contains(&DigestError::NotConfigured)
    })
    .await;
    s.assert_engine_untouched("the secondary");
    bad.handle.abort().await;
    let p = Peer::start(Role::Primary, pp, sp, None).await;
    normal_with_a_binding(&p, &s, 3).await;
}

/// A proxy in front of the secondary that records what the primary sends on each connection
/// and can inject bytes into the live one, between two whole messages.
struct Proxy {
    port: u16,
    recorded: Arc<Mutex<Vec<Vec<u8>>>>,
    inject: Arc<Mutex<Option<mpsc::UnboundedSender<Vec<u8>>>>>,
}

impl Proxy {
    async fn start(to: u16) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let recorded = Arc::new(Mutex::new(Vec::new()));
        let inject = Arc::new(Mutex::new(None));
        let (rec, inj) = (recorded.clone(), inject.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(addr(to)).await else {
                    continue;
                };
                let index = {
                    let mut r = rec.lock().unwrap();
                    r.push(Vec::new());
                    r.len() - 1
                };
                let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
                *inj.lock().unwrap() = Some(tx.clone());
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                // Client to server, a whole message at a time, recorded.
                let rec = rec.clone();
                tokio::spawn(async move {
                    loop {
                        let mut len = [0u8; 2];
                        if cr.read_exact(&mut len).await.is_err() {
                            break;
                        }
                        let mut msg = len.to_vec();
                        msg.resize(usize::from(u16::from_be_bytes(len)).max(2), 0);
                        if cr.read_exact(&mut msg[2..]).await.is_err() {
                            break;
                        }
                        rec.lock().unwrap()[index].extend_from_slice(&msg);
                        if tx.send(msg).is_err() {
                            break;
                        }
                    }
                });
                tokio::spawn(async move {
                    while let Some(m) = rx.recv().await {
                        if sw.write_all(&m).await.is_err() {
                            break;
                        }
                    }
                    let _ = sw.shutdown().await;
                });
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut sr, &mut cw).await;
                    let _ = cw.shutdown().await;
                });
            }
        });
        Proxy {
            port,
            recorded,
            inject,
        }
    }

    /// What the primary sent on the `i`th connection.
    fn recorded(&self, i: usize) -> Vec<u8> {
        self.recorded.lock().unwrap()[i].clone()
    }

    /// The first BNDUPD recorded on connection `i`.
    fn bndupd(&self, i: usize) -> Vec<u8> {
        let bytes = self.recorded(i);
        let mut framer = Framer::new();
        let mut input = bytes.as_slice();
        while let Ok(Some(m)) = framer.next_message(&mut input) {
            if MessageType::from(m[2]) == MessageType::BndUpd {
                return m.to_vec();
            }
        }
        panic!("no BNDUPD recorded");
    }

    fn inject(&self, bytes: Vec<u8>) {
        let tx = self.inject.lock().unwrap().clone().unwrap();
        tx.send(bytes).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captured_messages_replayed_are_refused() {
    let (sp, pp, nowhere) = (free_port(), free_port(), free_port());
    let proxy = Proxy::start(sp).await;
    // The secondary's own dials go nowhere: the pair talks through the recording proxy.
    let s = Peer::start(Role::Secondary, sp, nowhere, Some(SECRET)).await;
    let p = Peer::start(Role::Primary, pp, proxy.port, Some(SECRET)).await;
    normal_with_a_binding(&p, &s, 4).await;
    let ups = s.link_ups();
    let bndupds = s.handle.status().counters.bndupd_received;
    let recorded = proxy.recorded(0);
    assert_eq!(MessageType::from(recorded[2]), MessageType::Connect);

    // 1. The BNDUPD recorded on this connection, injected into it again: its place in the
    //    stream is taken, the digest does not compare (20). The primary hears the reason.
    let in_before = s.handle.counters().messages_in();
    proxy.inject(proxy.bndupd(0));
    until(10, "the replayed BNDUPD refused", || {
        s.refusals().contains(&DigestError::Bad)
    })
    .await;
    assert_eq!(
        s.handle.counters().messages_in(),
        in_before,
        "the replay reached the engine"
    );
    assert_eq!(s.handle.status().counters.bndupd_received, bndupds);
    until(10, "the primary heard DISCONNECT 20", || {
        p.handle
            .status()
            .counters
            .rejects_received(RejectReason::DigestFailed)
            == 1
    })
    .await;

    // 2. The whole first connection sent again on a new one, by a client without the
    //    secret: its CONNECT is not newer than the last one accepted (§11.1), reason 4.
    p.handle.abort().await;
    until(10, "the secondary's link down", || {
        s.handle.status().link != Link::Up
    })
    .await;
    let ups = ups.max(s.link_ups());
    let in_before = s.handle.counters().messages_in();
    let answer = send_raw(sp, &recorded).await;
    assert_disconnected(&answer, RejectReason::TimeMismatch);
    until(10, "the replayed CONNECT reported", || {
        s.refusals()
            .iter()
            .any(|r| matches!(r, DigestError::ConnectReplayed { .. }))
    })
    .await;
    assert_eq!(
        s.handle.counters().messages_in(),
        in_before,
        "the replay reached the engine"
    );
    assert_eq!(
        s.link_ups(),
        ups,
        "the replayed CONNECT brought the link up"
    );
    assert_eq!(s.handle.status().counters.bndupd_received, bndupds);

    // 3. The right partner comes back and is accepted. A second later: a restarted engine
    //    draws the xids it drew within the same second (its seed is the wall clock), and a
    //    CONNECT no newer than the last accepted one is refused as a replay.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let p = Peer::start(Role::Primary, pp, proxy.port, Some(SECRET)).await;
    normal_with_a_binding(&p, &s, 5).await;
    assert!(p.refusals().is_empty(), "{:?}", p.refusals());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_refusals_answer_with_the_reason_and_close() {
    let (sp, pp) = (free_port(), free_port());
    let s = Peer::start(Role::Secondary, sp, pp, Some(SECRET)).await;
    // A CONNECT as the right primary would send it, without a digest; with another secret.
    let connect = |secret: Option<&[u8]>| {
        let c = failover_proto::Connect {
            time: wall_clock().0,
            xid: 1,
            relationship_name: failover_proto::Text::from("digest-pair"),
            max_unacked_bndupd: 10,
            receive_timer: 6,
            protocol_version: 1,
            mclt: 5,
            hba: failover_proto::Hba::split(128),
            ..failover_proto::Connect::default()
        };
        let mut buf = [0u8; 2048];
        let mut n = c.emit(&mut buf).unwrap();
        if let Some(secret) = secret {
            let mut a = failover_proto::Authenticator::new(
                HmacSha256::new(secret).unwrap(),
                Role::Primary,
                60,
            );
            n = a.sign(&mut buf, n).unwrap();
        }
        buf[..n].to_vec()
    };
    assert_disconnected(
        &send_raw(sp, &connect(None)).await,
        RejectReason::MissingDigest,
    );
    assert_disconnected(
        &send_raw(sp, &connect(Some(b"wrong"))).await,
        RejectReason::DigestFailed,
    );
    s.assert_engine_untouched("the secondary");
    assert_eq!(s.handle.counters().digest_refused(), 2);
    let p = Peer::start(Role::Primary, pp, sp, Some(SECRET)).await;
    normal_with_a_binding(&p, &s, 6).await;
}
