//! A hostile partner over loopback TCP: bad lengths, silence, random bytes, garbage after a valid
//! CONNECT, BNDUPD floods, out-of-place messages, duplicate connections and a partner that stops
//! reading.
//!
//! Our peer under test listens on 127.0.0.1 and its partner address is 127.0.0.1, so a plain
//! TCP connection from 127.0.0.1 counts as the partner. Each case checks what our peer answers on
//! the wire (decoded with `failover_proto::Repr`), that it closes the connection within a bound,
//! that its queues stay bounded, and that the relationship is unharmed afterwards: a real
//! partner peer connects and both reach NORMAL (or an established pair stays NORMAL).
//!
//! Timers are short (receive timer 4 s, connect timeout 2 s); the tests run in parallel, each
//! with its own ports, and the file takes about 10 s.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs,
    unreachable_pub
)]

mod common;

use common::{active_leases, emit_bndupd};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::{Duration, Instant};

use failover_fsm::{BindingData, BindingStatus, Config, Link, Role, ServerState};
use failover_proto::{
    Connect, ConnectAck, Contact, Hba, PROTOCOL_VERSION, RejectReason, Repr, ServerFlags, State,
    Text,
};
use failover_tokio::{Handle, MemoryStore, PeerBuilder, PeerEvent, wall_clock};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const NAME: &str = "hostile-partner";
/// Our receive timer (s): a silent partner is dropped after this.
const RECEIVE_TIMER: u32 = 4;
/// Our connect timeout (s): the CONNECT/CONNECTACK exchange must finish within it.
const CONNECT_TIMEOUT: u32 = 2;
/// The max-unacked-bndupd our peer advertises.
const MAX_UNACKED: u32 = 10;
const POOL_SIZE: u32 = 64;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn config(role: Role) -> Config {
    let mut c = Config::new(role, NAME, 5);
    c.receive_timer = RECEIVE_TIMER;
    c.connect_timeout = CONNECT_TIMEOUT;
    c.max_unacked_bndupd = MAX_UNACKED;
    c
}

async fn within<T>(secs: u64, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), f)
        .await
        .expect("timed out")
}

fn drain(mut rx: tokio::sync::mpsc::Receiver<PeerEvent>) {
    tokio::spawn(async move { while rx.recv().await.is_some() {} });
}

/// The peer under test and the port its (real) partner will listen on.
struct Ours {
    handle: Handle,
    port: u16,
    partner_port: u16,
    pool: Ipv4Addr,
}

async fn start_ours(role: Role, pool: Ipv4Addr, write_timeout: Option<Duration>) -> Ours {
    start_ours_with(config(role), pool, write_timeout).await
}

async fn start_ours_with(config: Config, pool: Ipv4Addr, write_timeout: Option<Duration>) -> Ours {
    let (port, partner_port) = (free_port(), free_port());
    let role = config.role;
    let store = Arc::new(MemoryStore::new(role, pool, POOL_SIZE));
    let mut b = PeerBuilder::new(config, addr(partner_port), store)
        .plaintext()
        .listen(addr(port))
        .reconnect(Duration::from_millis(100), Duration::from_millis(500))
        .reject_backoff(Duration::from_millis(500));
    if let Some(d) = write_timeout {
        b = b.write_timeout(d);
    }
    let (handle, events) = b.start().await.unwrap();
    drain(events);
    Ours {
        handle,
        port,
        partner_port,
        pool,
    }
}

/// The relationship is unharmed: a real partner peer (the other role, a fresh store) connects
/// and both reach NORMAL. Returns the partner's handle.
async fn real_partner_reaches_normal(ours: &Ours) -> Handle {
    let role = match ours.handle.status().role {
        Role::Primary => Role::Secondary,
        Role::Secondary => Role::Primary,
    };
    let store = Arc::new(MemoryStore::new(role, ours.pool, POOL_SIZE));
    let (p, events) = PeerBuilder::new(config(role), addr(ours.port), store)
        .plaintext()
        .listen(addr(ours.partner_port))
        .reconnect(Duration::from_millis(100), Duration::from_millis(500))
        .reject_backoff(Duration::from_millis(500))
        .start()
        .await
        .unwrap();
    drain(events);
    within(20, p.wait_for_state(ServerState::Normal))
        .await
        .unwrap();
    within(20, ours.handle.wait_for_state(ServerState::Normal))
        .await
        .unwrap();
    assert_eq!(ours.handle.status().link, Link::Up);
    p
}

async fn finish(ours: Ours, partner: Handle) {
    partner.abort().await;
    ours.handle.abort().await;
}

/// What our peer sent, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Msg {
    Connect,
    ConnectAck(Option<RejectReason>),
    Disconnect(RejectReason),
    State(ServerState),
    Contact,
    BndUpd {
        xid: u32,
    },
    BndAck {
        xid: u32,
        rejects: Vec<Option<RejectReason>>,
    },
    UpdReqAll,
    UpdReq,
    Other(String),
}

/// Decodes a whole stream; panics on anything our peer should never send.
fn decode(bytes: &[u8]) -> Vec<Msg> {
    let (msgs, partial) = decode_prefix(bytes);
    assert_eq!(partial, 0, "a partial message at the end of the stream");
    msgs
}

/// Decodes the whole messages at the start of `bytes`; returns them and the length of the
/// partial message after them.
fn decode_prefix(bytes: &[u8]) -> (Vec<Msg>, usize) {
    let mut out = Vec::new();
    for frame in failover_proto::Frames::new(bytes) {
        let frame = frame.expect("our peer sent an unframeable stream");
        let repr = Repr::parse(frame).expect("our peer sent an undecodable message");
        out.push(match repr {
            Repr::Connect(_) => Msg::Connect,
            Repr::ConnectAck(a) => Msg::ConnectAck(a.reject_reason),
            Repr::Disconnect(d) => Msg::Disconnect(d.reject_reason),
            Repr::State(s) => Msg::State(s.server_state),
            Repr::Contact(_) => Msg::Contact,
            Repr::BndUpd(u) => Msg::BndUpd { xid: u.xid },
            Repr::BndAck(a) => Msg::BndAck {
                xid: a.xid,
                rejects: a.acks.iter().map(|b| b.reject_reason).collect(),
            },
            Repr::UpdReqAll(_) => Msg::UpdReqAll,
            Repr::UpdReq(_) => Msg::UpdReq,
            other => Msg::Other(format!("{:?}", other.message_type())),
        });
    }
    let framed: usize = failover_proto::Frames::new(bytes)
        .map(|f| f.map_or(0, <[u8]>::len))
        .sum();
    (out, bytes.len() - framed)
}

/// Reads until our peer closes (EOF or reset) or `limit` passes. Returns the bytes and how
/// long the connection stayed open (`None`: still open at `limit`).
async fn read_until_close(s: &mut TcpStream, limit: Duration) -> (Vec<u8>, Option<Duration>) {
    let start = Instant::now();
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let left = limit.saturating_sub(start.elapsed());
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Err(_) => return (out, None),
            Ok(Ok(0) | Err(_)) => return (out, Some(start.elapsed())),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}

async fn connect(port: u16) -> TcpStream {
    let s = within(5, TcpStream::connect(addr(port))).await.unwrap();
    s.set_nodelay(true).unwrap();
    s
}

fn emit_connect(xid: u32, max_unacked: u32) -> Vec<u8> {
    let m = Connect {
        time: wall_clock().0,
        xid,
        relationship_name: Text(NAME.as_bytes()),
        max_unacked_bndupd: max_unacked,
        receive_timer: RECEIVE_TIMER,
        vendor_class: Text(b"hostile"),
        protocol_version: PROTOCOL_VERSION,
        tls_request: None,
        mclt: 5,
        hba: Hba::split(128),
        ..Connect::default()
    };
    let mut buf = vec![0u8; m.buffer_len()];
    let n = m.emit(&mut buf).unwrap();
    buf.truncate(n);
    buf
}

fn emit_state(xid: u32, state: ServerState) -> Vec<u8> {
    let m = State {
        time: wall_clock().0,
        xid,
        server_state: state,
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

fn emit_contact(xid: u32) -> Vec<u8> {
    let m = Contact {
        time: wall_clock().0,
        xid,
        ..Contact::default()
    };
    let mut buf = vec![0u8; m.buffer_len()];
    let n = m.emit(&mut buf).unwrap();
    buf.truncate(n);
    buf
}

fn emit_connectack(xid: u32) -> Vec<u8> {
    let m = ConnectAck {
        time: wall_clock().0,
        xid,
        relationship_name: Some(Text(NAME.as_bytes())),
        max_unacked_bndupd: Some(10),
        receive_timer: Some(RECEIVE_TIMER),
        vendor_class: Some(Text(b"hostile")),
        protocol_version: PROTOCOL_VERSION,
        ..ConnectAck::default()
    };
    let mut buf = vec![0u8; m.buffer_len()];
    let n = m.emit(&mut buf).unwrap();
    buf.truncate(n);
    buf
}

/// CONNECT and STATE(NORMAL) from a hostile "primary": our secondary's link is then Up.
async fn handshake(s: &mut TcpStream, ours: &Ours, max_unacked: u32) {
    let mut hello = emit_connect(1, max_unacked);
    hello.extend(emit_state(2, ServerState::Normal));
    s.write_all(&hello).await.unwrap();
    let mut w = ours.handle.watch();
    within(5, w.wait_for(|st| st.link == Link::Up))
        .await
        .unwrap();
}

/// xorshift64*, seeded: the "random" bytes are the same on every run.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn close_bound() -> Duration {
    Duration::from_secs(u64::from(CONNECT_TIMEOUT) + 2)
}

// ----- 1. bad length fields -----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_length_fields_get_disconnect_and_close() {
    let ours = start_ours(Role::Secondary, Ipv4Addr::new(198, 18, 11, 0), None).await;
    for len in [0u16, 1, 11, 2049, 65535] {
        let mut s = connect(ours.port).await;
        let [hi, lo] = len.to_be_bytes();
        // A whole 12-byte header (CONTACT) whose length field lies.
        s.write_all(&[hi, lo, 11, 12, 0, 0, 0, 0, 0, 0, 0, 1])
            .await
            .unwrap();
        let (bytes, open) = read_until_close(&mut s, close_bound()).await;
        let answer = decode(&bytes);
        println!("length {len}: {answer:?} closed after {open:?}");
        assert!(open.is_some(), "length {len}: not closed");
        assert!(
            open.unwrap() < Duration::from_secs(1),
            "length {len}: slow close"
        );
        assert_eq!(
            answer,
            vec![Msg::Disconnect(RejectReason::UnknownError)],
            "length {len}"
        );
        let mut w = ours.handle.watch();
        within(3, w.wait_for(|st| st.link == Link::Down))
            .await
            .unwrap();
    }
    // Nothing was framed, so nothing reached the engine as a message.
    assert_eq!(ours.handle.counters().messages_in(), 0);
    assert_eq!(ours.handle.counters().connections(), 5);
    println!(
        "state after the bad lengths: {}",
        ours.handle.status().state
    );
    let partner = real_partner_reaches_normal(&ours).await;
    finish(ours, partner).await;
}

// ----- 2. a header, then silence -----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_header_then_silence_is_closed_at_the_connect_deadline() {
    let ours = start_ours(Role::Secondary, Ipv4Addr::new(198, 18, 12, 0), None).await;
    let deadline = Duration::from_secs(u64::from(CONNECT_TIMEOUT));
    // A header announcing a 200-byte CONNECT, then nothing; and a connection that sends nothing.
    for opening in [&[0x00, 200, 5, 12, 0, 0, 0, 0, 0, 0, 0, 1][..], &[][..]] {
        let mut s = connect(ours.port).await;
        s.write_all(opening).await.unwrap();
        let (bytes, open) = read_until_close(&mut s, deadline * 3).await;
        let answer = decode(&bytes);
        println!(
            "{} bytes then silence: {answer:?} closed after {open:?}",
            opening.len()
        );
        let open = open.expect("held past three connect timeouts");
        assert!(
            open >= deadline - Duration::from_millis(300)
                && open < deadline + Duration::from_secs(1),
            "closed after {open:?}, connect timeout {deadline:?}"
        );
        // The handshake deadline closes without a word (§7.8: no CONNECT, no answer).
        assert_eq!(answer, vec![]);
        let mut w = ours.handle.watch();
        within(3, w.wait_for(|st| st.link == Link::Down))
            .await
            .unwrap();
    }
    assert_eq!(ours.handle.counters().messages_in(), 0);
    let partner = real_partner_reaches_normal(&ours).await;
    finish(ours, partner).await;
}

// ----- 3. random bytes -----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeded_random_bytes_are_answered_and_closed() {
    let ours = start_ours(Role::Secondary, Ipv4Addr::new(198, 18, 13, 0), None).await;
    let mut answers = std::collections::BTreeMap::<String, usize>::new();
    // 4 KB of raw random bytes (seeds 1-8), and 4 KB of well-framed messages with random type,
    // xid and body (seeds 9-24): those reach the message decoder and the engine.
    for seed in 1..=24u64 {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ seed);
        let junk = if seed <= 8 {
            rng.bytes(4096)
        } else {
            let mut out = Vec::new();
            while out.len() < 4096 {
                let len = 12 + (rng.next() % 300) as u16;
                let ty = if rng.next() % 4 == 0 {
                    rng.next() as u8
                } else {
                    1 + (rng.next() % 12) as u8
                };
                out.extend(len.to_be_bytes());
                out.extend([ty, 12]);
                out.extend(wall_clock().0.to_be_bytes());
                out.extend(rng.bytes(usize::from(len) - 8));
            }
            out
        };
        let mut s = connect(ours.port).await;
        // Our peer may close before taking it all.
        let _ = s.write_all(&junk).await;
        let (bytes, open) = read_until_close(&mut s, close_bound()).await;
        let answer = decode(&bytes);
        println!(
            "seed {seed} (first bytes {:02x?}): {answer:?} closed after {open:?}",
            &junk[..4]
        );
        *answers.entry(format!("{answer:?}")).or_default() += 1;
        assert!(open.is_some(), "seed {seed}: not closed");
        // One answer, reason 254 (unknown error): DISCONNECT, or a rejecting CONNECTACK to an
        // undecodable "CONNECT" (§7.8.2). Optional message types (128-255) are skipped (§6.1).
        assert!(
            matches!(
                answer.as_slice(),
                [Msg::Disconnect(RejectReason::UnknownError)]
                    | [Msg::ConnectAck(Some(RejectReason::UnknownError))]
            ),
            "seed {seed}: {answer:?}"
        );
        let mut w = ours.handle.watch();
        within(3, w.wait_for(|st| st.link == Link::Down))
            .await
            .unwrap();
    }
    println!("random input, answers: {answers:?}");
    let partner = real_partner_reaches_normal(&ours).await;
    finish(ours, partner).await;
}

// ----- 4. a valid CONNECT, then garbage -----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_connect_followed_by_garbage() {
    let ours = start_ours(Role::Secondary, Ipv4Addr::new(198, 18, 14, 0), None).await;
    let mut rng = Rng(0xDEAD_BEEF);
    // (a) bytes that cannot be framed; (b) a well-framed BNDUPD whose options are random.
    let unframeable = [0xffu8; 64].to_vec();
    let mut framed = vec![0x00, 64, 3, 12];
    framed.extend(wall_clock().0.to_be_bytes());
    framed.extend(7u32.to_be_bytes());
    framed.extend(rng.bytes(52));
    for (what, garbage) in [("unframeable", unframeable), ("well-framed", framed)] {
        let mut s = connect(ours.port).await;
        let mut out = emit_connect(1, 10);
        out.extend(&garbage);
        s.write_all(&out).await.unwrap();
        let (bytes, open) = read_until_close(&mut s, close_bound()).await;
        let answer = decode(&bytes);
        println!("CONNECT + {what} garbage: {answer:?} closed after {open:?}");
        assert!(open.is_some(), "{what}: not closed");
        assert!(open.unwrap() < Duration::from_secs(1), "{what}: slow close");
        let [
            Msg::ConnectAck(None),
            Msg::State(_),
            Msg::Disconnect(reason),
        ] = answer.as_slice()
        else {
            panic!("{what}: {answer:?}");
        };
        assert_eq!(*reason, RejectReason::UnknownError, "{what}");
        let mut w = ours.handle.watch();
        within(3, w.wait_for(|st| st.link == Link::Down))
            .await
            .unwrap();
    }
    let partner = real_partner_reaches_normal(&ours).await;
    finish(ours, partner).await;
}

// ----- 5. BNDUPDs beyond max-unacked -----

/// Sends `n` BNDUPDs (xids from `xid`) in one write.
async fn burst(s: &mut TcpStream, pool: Ipv4Addr, xid: u32, n: u32) {
    let mut out = Vec::new();
    for i in 0..n {
        let a = Ipv4Addr::from(u32::from(pool) + i % POOL_SIZE);
        out.extend(emit_bndupd(xid + i, a, i));
    }
    s.write_all(&out).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bndupds_beyond_max_unacked() {
    let ours = start_ours(Role::Secondary, Ipv4Addr::new(198, 18, 15, 0), None).await;
    let mut s = connect(ours.port).await;
    handshake(&mut s, &ours, 10).await;
    // As many BNDUPDs in one write as our max-unacked-bndupd, no BNDACK read meanwhile: each
    // is acknowledged.
    let n = MAX_UNACKED;
    burst(&mut s, ours.pool, 1000, n).await;
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let msgs = within(10, async {
        loop {
            let k = s.read(&mut buf).await.unwrap();
            assert!(k > 0, "closed: {:?}", decode(&got));
            got.extend_from_slice(&buf[..k]);
            let (msgs, partial) = decode_prefix(&got);
            let acks = msgs
                .iter()
                .filter(|m| matches!(m, Msg::BndAck { .. }))
                .count();
            if partial == 0 && acks == n as usize {
                return msgs;
            }
        }
    })
    .await;
    let acks: Vec<(u32, Option<RejectReason>)> = msgs
        .iter()
        .filter_map(|m| match m {
            Msg::BndAck { xid, rejects } => Some((*xid, rejects[0])),
            _ => None,
        })
        .collect();
    let xids: Vec<u32> = acks.iter().map(|(x, _)| *x).collect();
    assert_eq!(xids, (1000..1000 + n).collect::<Vec<_>>());
    let rejected: Vec<_> = acks.iter().filter_map(|(_, r)| *r).collect();
    println!(
        "{n} BNDUPDs at once: {} BNDACKs ({} rejecting: {:?}); other messages: {:?}",
        acks.len(),
        rejected.len(),
        rejected.first(),
        msgs.iter()
            .filter(|m| !matches!(m, Msg::BndAck { .. }))
            .collect::<Vec<_>>()
    );
    let st = ours.handle.status();
    assert_eq!(st.link, Link::Up);
    assert_eq!(st.awaiting_commit, 0);

    // 100 at once, ten times what we advertised: the partner breaks flow control (§8.4, §7.3).
    // DISCONNECT(6) and close once more than 10 are unacknowledged.
    burst(&mut s, ours.pool, 5000, 100).await;
    let (bytes, open) = read_until_close(&mut s, close_bound()).await;
    let answer = decode(&bytes);
    println!(
        "100 BNDUPDs at once: {} BNDACKs, then {:?}; closed after {open:?}",
        answer.len().saturating_sub(1),
        answer.last()
    );
    assert!(open.is_some());
    assert_eq!(
        answer.last(),
        Some(&Msg::Disconnect(RejectReason::UnknownConnectionReason))
    );
    assert!(answer.len() < 100);
    let mut w = ours.handle.watch();
    within(5, w.wait_for(|st| st.link == Link::Down))
        .await
        .unwrap();
    let st = ours.handle.status();
    assert!(st.awaiting_commit <= 128 && st.queued <= 256, "{st:?}");
    let partner = real_partner_reaches_normal(&ours).await;
    finish(ours, partner).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_that_sends_bndupds_and_never_reads_is_dropped_by_the_write_timeout() {
    let write_timeout = Duration::from_secs(2);
    // We advertise 128 (the engine's capacity): the partner's chunks of 100 keep within it.
    let mut c = config(Role::Secondary);
    c.max_unacked_bndupd = 128;
    let ours = start_ours_with(c, Ipv4Addr::new(198, 18, 16, 0), Some(write_timeout)).await;
    let mut s = connect(ours.port).await;
    handshake(&mut s, &ours, 10).await;
    let (mut rd, mut wr) = s.into_split();
    let pool = ours.pool;
    let h = ours.handle.clone();
    let base = h.counters().messages_in();
    // The window and the BNDUPDs read, from one status snapshot (the counter and the watch
    // may disagree for a moment).
    let base_rx = h.status().counters.bndupd_received;
    // Chunks of 100 BNDUPDs, each sent once our peer has read the previous one and written
    // its BNDACKs (so that it never holds more than 100 unacknowledged, within the 128 we
    // advertise), never reading a BNDACK. Our peer's BNDACKs fill the socket buffers until its
    // writes stall.
    const CHUNK: u32 = 100;
    let flood = tokio::spawn(async move {
        let mut sent = 0u32;
        let mut last_progress = Instant::now();
        loop {
            let mut chunk = Vec::new();
            for i in sent..sent + CHUNK {
                let a = Ipv4Addr::from(u32::from(pool) + i % POOL_SIZE);
                chunk.extend(emit_bndupd(10_000 + i, a, i));
            }
            match tokio::time::timeout(Duration::from_secs(10), wr.write_all(&chunk)).await {
                Ok(Ok(())) => sent += CHUNK,
                Ok(Err(e)) => return (sent, last_progress, e.to_string()),
                Err(_) => return (sent, last_progress, "write blocked".into()),
            }
            loop {
                // Down first: a dropped connection's window is empty too, which is no progress.
                if h.status().link == Link::Down {
                    return (sent, last_progress, "link down".into());
                }
                let st = h.status();
                if st.counters.bndupd_received >= base_rx + sent && st.unacked_received == 0 {
                    last_progress = Instant::now();
                    break;
                }
                if last_progress.elapsed() > Duration::from_secs(10) {
                    return (sent, last_progress, "not read for 10 s".into());
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    });
    let mut w = ours.handle.watch();
    within(20, w.wait_for(|st| st.link == Link::Down))
        .await
        .unwrap();
    let down = Instant::now();
    let (sent, last_progress, how) = within(15, flood).await.unwrap();
    let stalled = down - last_progress;
    let read_in = ours.handle.counters().messages_in() - base;
    // What our peer managed to send before it gave up (the last write may be cut short).
    let mut tail = Vec::new();
    let _ = within(5, rd.read_to_end(&mut tail)).await;
    let (answer, partial) = decode_prefix(&tail);
    let acks = answer
        .iter()
        .filter(|m| matches!(m, Msg::BndAck { .. }))
        .count();
    println!(
        "never reading: {sent} BNDUPDs sent, {read_in} read by our peer; its writes stalled and \
         the link went down {stalled:?} after the last progress ({how}); {} bytes of answers \
         buffered: {acks} BNDACKs, last {:?}, {partial} bytes of a cut message",
        tail.len(),
        answer.last()
    );
    assert!(
        stalled >= write_timeout - Duration::from_millis(300)
            && stalled < write_timeout + Duration::from_secs(2),
        "{stalled:?}"
    );
    assert!(acks as u64 <= read_in);
    assert!(!answer.iter().any(|m| matches!(m, Msg::Disconnect(_))));
    let st = ours.handle.status();
    assert!(st.awaiting_commit <= 128 && st.queued <= 256, "{st:?}");
    let partner = real_partner_reaches_normal(&ours).await;
    finish(ours, partner).await;
}

// ----- 6. messages of the wrong type for the state -----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_place_messages_get_disconnect() {
    let ours = start_ours(Role::Secondary, Ipv4Addr::new(198, 18, 17, 0), None).await;
    let cases: [(&str, Vec<u8>, RejectReason); 4] = [
        (
            "BNDUPD before CONNECT",
            emit_bndupd(5, ours.pool, 0),
            RejectReason::UnknownConnectionReason,
        ),
        (
            "STATE before CONNECT",
            emit_state(5, ServerState::Normal),
            RejectReason::UnknownConnectionReason,
        ),
        (
            "CONNECTACK to a secondary",
            emit_connectack(5),
            RejectReason::InvalidPartner,
        ),
        (
            "CONTACT before CONNECT",
            emit_contact(5),
            RejectReason::UnknownConnectionReason,
        ),
    ];
    for (what, msg, reason) in cases {
        let mut s = connect(ours.port).await;
        s.write_all(&msg).await.unwrap();
        let (bytes, open) = read_until_close(&mut s, close_bound()).await;
        let answer = decode(&bytes);
        println!("{what}: {answer:?} closed after {open:?}");
        assert!(open.is_some(), "{what}: not closed");
        assert!(open.unwrap() < Duration::from_secs(1), "{what}: slow close");
        assert_eq!(answer, vec![Msg::Disconnect(reason)], "{what}");
        let mut w = ours.handle.watch();
        within(3, w.wait_for(|st| st.link == Link::Down))
            .await
            .unwrap();
    }
    // A CONNECT on a live link (after the handshake) is a duplicate: rejected with 7.
    let mut s = connect(ours.port).await;
    let mut out = emit_connect(1, 10);
    out.extend(emit_connect(9, 10));
    s.write_all(&out).await.unwrap();
    let (bytes, open) = read_until_close(&mut s, close_bound()).await;
    let answer = decode(&bytes);
    println!("a second CONNECT on one connection: {answer:?} closed after {open:?}");
    assert!(open.is_some());
    assert!(matches!(
        answer.as_slice(),
        [
            Msg::ConnectAck(None),
            Msg::State(_),
            Msg::ConnectAck(Some(RejectReason::DuplicateConnection))
        ]
    ));
    let partner = real_partner_reaches_normal(&ours).await;
    finish(ours, partner).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connect_sent_to_a_primary_is_rejected() {
    let ours = start_ours(Role::Primary, Ipv4Addr::new(198, 18, 18, 0), None).await;
    let mut s = connect(ours.port).await;
    s.write_all(&emit_connect(1, 10)).await.unwrap();
    let (bytes, open) = read_until_close(&mut s, close_bound()).await;
    let answer = decode(&bytes);
    println!("CONNECT to a primary: {answer:?} closed after {open:?}");
    assert!(open.is_some());
    // Our primary sends its own CONNECT on the accepted connection first (as ISC does).
    assert_eq!(
        answer,
        vec![
            Msg::Connect,
            Msg::ConnectAck(Some(RejectReason::InvalidPartner))
        ]
    );
    let partner = real_partner_reaches_normal(&ours).await;
    finish(ours, partner).await;
}

// ----- 7. a second connection while one is live -----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_connection_is_closed_and_the_first_stays_normal() {
    let ours = start_ours(Role::Secondary, Ipv4Addr::new(198, 18, 19, 0), None).await;
    let partner = real_partner_reaches_normal(&ours).await;
    let connections = ours.handle.counters().connections();
    for opening in [emit_connect(1, 10), Vec::new(), vec![0xff; 32]] {
        let mut s = connect(ours.port).await;
        let _ = s.write_all(&opening).await;
        let (bytes, open) = read_until_close(&mut s, close_bound()).await;
        println!(
            "second connection ({} bytes sent): {:?} closed after {open:?}",
            opening.len(),
            decode(&bytes)
        );
        assert!(open.is_some());
        assert!(open.unwrap() < Duration::from_secs(1));
        // Closed unread and unanswered.
        assert!(bytes.is_empty());
    }
    // The first connection is untouched: same connection, NORMAL, and keep-alives still flow.
    let before = ours.handle.status().last_received;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let st = ours.handle.status();
    assert_eq!(st.state, ServerState::Normal);
    assert_eq!(st.link, Link::Up);
    assert!(st.last_received > before, "{st:?}");
    assert_eq!(partner.status().state, ServerState::Normal);
    assert_eq!(ours.handle.counters().connections(), connections);
    finish(ours, partner).await;
}

// ----- 8. a partner that stops reading -----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_that_stops_reading_is_bounded_and_dropped() {
    let ours = start_ours(Role::Secondary, Ipv4Addr::new(198, 18, 20, 0), None).await;
    let mut s = connect(ours.port).await;
    // A large window: our peer may have as many BNDUPDs in flight as its queue holds.
    handshake(&mut s, &ours, 100_000).await;
    let h = ours.handle.clone();
    let base = u32::from(Ipv4Addr::new(10, 20, 0, 0));
    // More than the engine's queue (1,024) and the addresses that may wait beside it
    // answered (4,096): the call waits for room.
    let bindings = active_leases((0..8000u32).map(|i| Ipv4Addr::from(base + i)));
    let send = tokio::spawn(async move { h.send_bindings(bindings).await });
    // Phase 1: CONTACT every second, never a read: the link stays up, the queue stays bounded.
    let mut peak = (0usize, 0usize);
    let mut last_contact = Instant::now();
    for i in 0..3u32 {
        let before = ours.handle.status().last_received;
        s.write_all(&emit_contact(100 + i)).await.unwrap();
        last_contact = Instant::now();
        tokio::time::sleep(Duration::from_secs(1)).await;
        let st = ours.handle.status();
        assert_eq!(st.link, Link::Up);
        assert!(st.last_received > before, "status not updated: {st:?}");
        assert!(st.queued <= 1024 && st.unacked_sent <= 1024, "{st:?}"); // the engine queue
        peak = (peak.0.max(st.queued), peak.1.max(st.unacked_sent));
    }
    assert!(!send.is_finished(), "8,000 bindings cannot all be queued");
    // Phase 2: silence. The receive timer drops the connection.
    let mut w = ours.handle.watch();
    within(
        u64::from(RECEIVE_TIMER) + 3,
        w.wait_for(|st| st.link == Link::Down),
    )
    .await
    .unwrap();
    let dropped_after = last_contact.elapsed();
    let (bytes, open) = read_until_close(&mut s, Duration::from_secs(5)).await;
    assert!(open.is_some());
    let answer = decode(&bytes);
    let bndupds = answer
        .iter()
        .filter(|m| matches!(m, Msg::BndUpd { .. }))
        .count();
    println!(
        "stopped reading: peak queued {} / in flight {}; dropped {dropped_after:?} after the \
         last CONTACT; {} bytes buffered: {} messages, {bndupds} BNDUPDs, first {:?}, last {:?}",
        peak.0,
        peak.1,
        bytes.len(),
        answer.len(),
        &answer[..3.min(answer.len())],
        answer.last()
    );
    let timer = Duration::from_secs(u64::from(RECEIVE_TIMER));
    assert!(
        dropped_after >= timer - Duration::from_millis(300)
            && dropped_after < timer + Duration::from_millis(1500),
        "{dropped_after:?}"
    );
    assert_eq!(
        answer.last(),
        Some(&Msg::Disconnect(RejectReason::NoTraffic))
    );
    assert_eq!(bndupds, peak.1.max(bndupds));
    assert!(bndupds <= 1024); // no more than the engine queue holds
    let partner = real_partner_reaches_normal(&ours).await;
    // The real partner acknowledges (or rejects) them all: the back-pressured call returns.
    let r = within(30, send).await.unwrap();
    println!("send_bindings of 5,000 returned {r:?}");
    assert!(r.is_ok());
    finish(ours, partner).await;
}

// ----- 8b. a partner slower than our clients -----

/// A partner that takes BNDUPDs but never acknowledges them: the application's bindings beyond
/// what the engine's queue holds are recorded and answered all the same (the partner learns of
/// them later, §5.1), the partner still gets no more than its window, and once a real partner
/// connects every one is sent and answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bindings_beyond_the_queue_are_answered_while_the_partner_lags() {
    let ours = start_ours(Role::Secondary, Ipv4Addr::new(198, 18, 22, 0), None).await;
    let mut s = connect(ours.port).await;
    handshake(&mut s, &ours, 10).await;
    let base = u32::from(Ipv4Addr::new(10, 22, 0, 0));
    let bindings = active_leases((0..2000u32).map(|i| Ipv4Addr::from(base + i)));
    // More than the engine's queue (1,024), not acknowledged at all: answered anyway.
    within(5, ours.handle.send_bindings(bindings))
        .await
        .unwrap();
    let st = ours.handle.status();
    assert_eq!(st.link, Link::Up);
    assert!(st.queued <= 1024 && st.unacked_sent <= 10, "{st:?}");
    // The hostile partner hangs up; a real one connects and gets them all.
    drop(s);
    let mut w = ours.handle.watch();
    within(5, w.wait_for(|st| st.link == Link::Down))
        .await
        .unwrap();
    let partner = real_partner_reaches_normal(&ours).await;
    within(
        30,
        w.wait_for(|st| st.state == ServerState::Normal && st.queued == 0 && st.unacked_sent == 0),
    )
    .await
    .unwrap();
    let c = ours.handle.status().counters;
    assert!(c.bndupd_sent >= 2000, "{c:?}");
    finish(ours, partner).await;
}

/// Bindings `from..to` of 10.23.0.0/16, ACTIVE for five minutes.
fn lab_bindings(from: u32, to: u32) -> Vec<BindingData> {
    let base = u32::from(Ipv4Addr::new(10, 23, 0, 0));
    let wall = wall_clock();
    (from..to)
        .map(|i| {
            let mut b = BindingData::new(Ipv4Addr::from(base + i), BindingStatus::Active)
                .with_client(None, 1, &[2, 0, 0, 0, (i >> 8) as u8, i as u8])
                .unwrap();
            b.lease_expiration_time = Some(wall.plus(300));
            b.potential_expiration_time = Some(wall.plus(450));
            b.client_last_transaction_time = Some(wall);
            b
        })
        .collect()
}

/// With a real partner: a first command leaves addresses waiting beyond the engine's queue, a
/// second one more than may wait beside them (it waits for room): both are answered, the
/// waiting addresses going first as acknowledgements free room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bindings_waiting_beyond_the_queue_drain_before_the_next_command() {
    let ours = start_ours(Role::Secondary, Ipv4Addr::new(198, 18, 23, 0), None).await;
    let partner = real_partner_reaches_normal(&ours).await;
    let h = ours.handle.clone();
    let (first, second) = within(60, async {
        tokio::join!(
            h.send_bindings(lab_bindings(0, 3000)),
            h.send_bindings(lab_bindings(3000, 8000))
        )
    })
    .await;
    first.unwrap();
    second.unwrap();
    let mut w = ours.handle.watch();
    within(60, w.wait_for(|st| st.queued == 0 && st.unacked_sent == 0))
        .await
        .unwrap();
    finish(ours, partner).await;
}

// ----- 9. a stalled write does not stall the task -----

/// A partner that stops reading while our peer has BNDACKs for it: our peer's write stalls.
/// Meanwhile the task goes on serving its handle (a command's round trip, a binding recorded
/// and queued) and its timers: the receive timer, not the (much longer) write timeout, ends
/// the connection of a partner that went silent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_write_leaves_the_task_serving_its_handle() {
    let mut c = config(Role::Secondary);
    c.max_unacked_bndupd = 128;
    // Far beyond this test: were the task waiting in the write, nothing below would happen.
    let write_timeout = Duration::from_secs(120);
    let ours = start_ours_with(c, Ipv4Addr::new(198, 18, 21, 0), Some(write_timeout)).await;
    let mut s = connect(ours.port).await;
    handshake(&mut s, &ours, 10).await;
    let (_rd, mut wr) = s.into_split();
    let h = ours.handle.clone();
    // Both from one status snapshot: the window seen is the one after those BNDUPDs.
    let base = h.status().counters.bndupd_received;
    // Chunks of 100 BNDUPDs (within the 128 we advertise), each once our peer read the
    // previous one and wrote its BNDACKs; never a read. The BNDACKs fill the socket buffers
    // (megabytes on the loopback) until our peer's write stalls.
    const CHUNK: u32 = 100;
    let mut sent = 0u32;
    let mut stalled = None;
    for _ in 0..5_000 {
        let mut chunk = Vec::new();
        for i in sent..sent + CHUNK {
            let a = Ipv4Addr::from(u32::from(ours.pool) + i % POOL_SIZE);
            chunk.extend(emit_bndupd(10_000 + i, a, i));
        }
        within(10, wr.write_all(&chunk)).await.unwrap();
        sent += CHUNK;
        let started = Instant::now();
        while !{
            let st = h.status();
            st.counters.bndupd_received >= base + sent && st.unacked_received == 0
        } {
            if started.elapsed() > Duration::from_secs(1) {
                stalled = Some(Instant::now());
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        if stalled.is_some() {
            break;
        }
    }
    let stalled = stalled.unwrap_or_else(|| panic!("{sent} BNDUPDs answered without a stall"));
    assert_eq!(h.status().link, Link::Up);

    // The write is blocked; the task answers a command's round trip...
    let _ = within(3, h.balance_pools()).await.unwrap();
    // ...records and queues a binding (the reply comes after the store's sync)...
    let wall = wall_clock();
    let mut b = BindingData::new(
        Ipv4Addr::from(u32::from(ours.pool) + 1),
        BindingStatus::Active,
    )
    .with_client(None, 1, &[2, 0, 0, 0, 9, 9])
    .unwrap();
    b.lease_expiration_time = Some(wall.plus(300));
    b.potential_expiration_time = Some(wall.plus(450));
    within(3, h.send_binding(b)).await.unwrap();
    // ...while what it has for the partner still waits.
    let st = h.status();
    assert_eq!(st.link, Link::Up, "{st:?}");
    assert!(st.unacked_received > 0, "{st:?}");
    // Its timers run: the partner, silent since, is dropped by the receive timer (plus the
    // moment given to the DISCONNECT nobody reads), long before the write timeout.
    let mut w = h.watch();
    within(
        u64::from(RECEIVE_TIMER) + 6,
        w.wait_for(|st| st.link == Link::Down),
    )
    .await
    .unwrap();
    println!(
        "stalled after {sent} BNDUPDs ({} BNDACKs unsent); the handle was served meanwhile; \
         dropped {:?} after the stall",
        st.unacked_received,
        stalled.elapsed()
    );
    ours.handle.abort().await;
}
