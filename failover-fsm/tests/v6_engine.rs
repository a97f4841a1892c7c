//! The engine speaking RFC 8156 (`Engine<_, _, _, V6>`): two v6 endpoints over an in-memory
//! link, every message read back with the v6 codec. Section numbers are RFC 8156's.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

use core::time::Duration;

use failover_fsm::engine::{Action, Engine, Event, Persisted, V6};
use failover_fsm::{Config, Instant, RejectReason, Role, ServerState, UnixTime};
use failover_proto::v6::{
    self, ConnectFlags, ProtocolVersion, Repr, ServerFlags, Status, StatusCode, time,
};

type Engine6 = Engine<16, 16, 64, V6>;

const T0: u32 = 1_700_000_000;
const MCLT: u32 = 300;

fn config(role: Role) -> Config {
    let mut c = Config::new(role, "fo6", MCLT);
    c.receive_timer = 60;
    c
}

/// One endpoint and what it did.
struct Side {
    e: Engine6,
    /// Our clock minus the simulation's, seconds.
    offset: i64,
    events: Vec<Event>,
    closed: bool,
    pool_requests: usize,
    /// The last snapshot the engine asked to persist (confirmed at once).
    persisted: Option<Persisted>,
}

impl Side {
    fn new(role: Role, offset: i64, xid_seed: u32) -> Side {
        let wall = UnixTime((i64::from(T0) + offset) as u32);
        Side {
            e: Engine6::new(config(role), None, Instant::ZERO, wall, xid_seed).unwrap(),
            offset,
            events: Vec::new(),
            closed: false,
            pool_requests: 0,
            persisted: None,
        }
    }

    /// A restart at `now` from what was persisted.
    fn restart(&mut self, role: Role, now: Instant) {
        let wall = self.wall(now);
        self.e = Engine6::new(config(role), self.persisted, now, wall, 11).unwrap();
        self.events.clear();
        self.closed = false;
    }

    fn wall(&self, now: Instant) -> UnixTime {
        let secs = i64::try_from(now.as_millis() / 1000).unwrap();
        UnixTime((i64::from(T0) + self.offset + secs) as u32)
    }

    /// Carries out actions (persist at once, answer POOLREQ, nothing to send for update
    /// requests) and keeps events.
    fn settle(&mut self) {
        while let Some(a) = self.e.poll_action() {
            match a {
                Action::Persist { token, snapshot } => {
                    self.persisted = Some(snapshot);
                    self.e.persist_complete(token).unwrap();
                }
                Action::CloseConnection => self.closed = true,
                Action::PoolRequested => {
                    self.pool_requests += 1;
                    self.e.pool_response(0);
                }
                Action::SendAllBindings | Action::SendUnackedBindings => self.e.end_of_updates(),
                _ => {}
            }
        }
        while let Some(ev) = self.e.poll_event() {
            self.events.push(ev);
        }
    }

    fn transmit(&mut self, now: Instant) -> Vec<Vec<u8>> {
        self.settle();
        let mut out = Vec::new();
        let mut buf = [0u8; 2048];
        while let Some(n) = self.e.poll_transmit(now, &mut buf) {
            out.push(buf[..n].to_vec());
        }
        self.settle();
        out
    }

    fn receive(&mut self, now: Instant, msg: &[u8]) {
        let wall = self.wall(now);
        self.e.handle_message(now, wall, msg).unwrap();
        self.settle();
    }
}

/// Two endpoints and the messages between them, in order.
struct Link6 {
    p: Side,
    s: Side,
    now: Instant,
    /// (from the primary, bytes)
    trace: Vec<(bool, Vec<u8>)>,
    up: bool,
}

impl Link6 {
    fn new(secondary_offset: i64) -> Link6 {
        Link6 {
            p: Side::new(Role::Primary, 0, 7),
            s: Side::new(Role::Secondary, secondary_offset, 9),
            now: Instant::ZERO,
            trace: Vec::new(),
            up: false,
        }
    }

    fn connect(&mut self) {
        self.p.closed = false;
        self.s.closed = false;
        self.p.e.connection_up(self.now).unwrap();
        self.s.e.connection_up(self.now).unwrap();
        self.up = true;
        self.pump();
    }

    fn disconnect(&mut self) {
        self.up = false;
        self.p.e.connection_down(self.now);
        self.s.e.connection_down(self.now);
        self.p.settle();
        self.s.settle();
    }

    /// Delivers messages both ways until neither side has anything to send; then a side
    /// that closed takes the connection down (after its last messages were delivered, as TCP
    /// delivers data before the FIN).
    fn pump(&mut self) {
        for _ in 0..100 {
            let from_p = self.p.transmit(self.now);
            let from_s = self.s.transmit(self.now);
            if from_p.is_empty() && from_s.is_empty() {
                if self.up && (self.p.closed || self.s.closed) {
                    self.disconnect();
                }
                break;
            }
            for m in from_p {
                if self.up && !self.s.closed {
                    self.s.receive(self.now, &m);
                }
                self.trace.push((true, m));
            }
            for m in from_s {
                if self.up && !self.p.closed {
                    self.p.receive(self.now, &m);
                }
                self.trace.push((false, m));
            }
        }
    }

    /// Runs the clock to `secs` later, firing timers and delivering messages on the way.
    fn run_for(&mut self, secs: u64) {
        let end = self.now + Duration::from_secs(secs);
        for _ in 0..10_000 {
            let next = [self.p.e.poll_timeout(), self.s.e.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(t) if t <= end => {
                    self.now = self.now.max(t);
                    let now = self.now;
                    self.p.e.handle_timeout(now);
                    self.s.e.handle_timeout(now);
                    self.pump();
                }
                _ => break,
            }
        }
        self.now = end;
    }

    fn states(&self) -> (ServerState, ServerState) {
        (self.p.e.state(), self.s.e.state())
    }

    /// Every message sent so far, decoded with the v6 codec (each must decode).
    fn decoded(&self) -> Vec<(bool, Repr<'_>)> {
        self.trace
            .iter()
            .map(|(from_p, m)| (*from_p, Repr::parse(m).expect("a v6 message")))
            .collect()
    }

    fn names(&self) -> Vec<(bool, &'static str)> {
        self.decoded()
            .iter()
            .map(|(p, r)| (*p, r.message_type().name()))
            .collect()
    }
}

/// The v6 STATEs one side sent: (state, flags, partner-down-time present).
fn states_sent(link: &Link6, from_primary: bool) -> Vec<(v6::ServerState, ServerFlags, bool)> {
    link.decoded()
        .into_iter()
        .filter(|(p, _)| *p == from_primary)
        .filter_map(|(_, r)| match r {
            Repr::State(s) => Some((
                s.server_state,
                s.server_flags,
                s.partner_down_time.is_some(),
            )),
            _ => None,
        })
        .collect()
}

#[test]
fn cold_start_speaks_rfc8156_and_reaches_normal() {
    let mut link = Link6::new(0);
    link.run_for(16); // both STARTUP periods (15 s) end: RECOVER
    assert_eq!(link.states(), (ServerState::Recover, ServerState::Recover));
    link.connect();
    let decoded = link.decoded();
    // §6.1: the primary's CONNECT, then the secondary's CONNECTREPLY and STATE.
    let Some((true, Repr::Connect(c))) = decoded.first() else {
        panic!("CONNECT first: {:?}", link.names());
    };
    assert_eq!(c.protocol_version, ProtocolVersion::V1_0);
    assert_eq!(c.mclt, MCLT);
    assert_eq!(c.keepalive_time, 60);
    assert_eq!(c.max_unacked_bndupd, 10);
    assert_eq!(c.relationship_name.map(|n| n.0), Some(&b"fo6"[..]));
    assert_eq!(c.connect_flags, ConnectFlags::EMPTY);
    // §5.2: sent-time counts from 2000.
    let expect = time::from_unix(u64::from(T0) + 16).unwrap();
    assert!(
        c.sent_time.abs_diff(expect) <= 1,
        "{} vs {expect}",
        c.sent_time
    );
    let Some((false, Repr::ConnectReply(a))) = decoded.get(1) else {
        panic!("CONNECTREPLY second: {:?}", link.names());
    };
    assert!(a.is_accept());
    assert_eq!(a.mclt, Some(MCLT));
    assert_eq!(a.keepalive_time, Some(60));
    // Both new: RECOVER, UPDREQALL each way, UPDDONE, RECOVER-WAIT for the MCLT.
    let names = link.names();
    assert!(names.contains(&(true, "UPDREQALL")), "{names:?}");
    assert!(names.contains(&(false, "UPDREQALL")), "{names:?}");
    assert!(names.contains(&(true, "UPDDONE")), "{names:?}");
    assert_eq!(
        link.states(),
        (ServerState::RecoverWait, ServerState::RecoverWait)
    );
    link.run_for(u64::from(MCLT) + 30);
    assert_eq!(link.states(), (ServerState::Normal, ServerState::Normal));
    // RECOVER-WAIT and RECOVER-DONE go out with RFC 8156's numbers (7 and 8, §5.5.16).
    let sent = states_sent(&link, true);
    let kinds: Vec<v6::ServerState> = sent.iter().map(|s| s.0).collect();
    for want in [
        v6::ServerState::Recover,
        v6::ServerState::RecoverWait,
        v6::ServerState::RecoverDone,
        v6::ServerState::Normal,
    ] {
        assert!(kinds.contains(&want), "{want:?} not in {kinds:?}");
    }
    assert!(link.trace.iter().any(|(_, m)| m[2] == 34 && m.len() > 12));
    // C is set once the partner was heard (§5.5.15); no partner-down-time outside
    // PARTNER-DOWN (§6.3).
    assert!(
        sent.iter()
            .all(|(_, f, pdt)| f.contains(ServerFlags::COMMUNICATED) && !pdt)
    );
    // The secondary asks for prefixes on entering NORMAL (§8.8); POOLRESP answers (§5.3.4).
    assert_eq!(link.p.pool_requests, 1);
    assert!(link.names().contains(&(true, "POOLRESP")));
    assert!(
        link.s
            .events
            .iter()
            .any(|e| matches!(e, Event::PoolResponse { .. }))
    );
}

/// Two endpoints in NORMAL, then cut apart: both in COMMUNICATIONS-INTERRUPTED.
fn normal_then_cut() -> Link6 {
    let mut link = Link6::new(0);
    link.run_for(16);
    link.connect();
    link.run_for(u64::from(MCLT) + 30);
    assert_eq!(link.states(), (ServerState::Normal, ServerState::Normal));
    link.disconnect();
    assert_eq!(
        link.states(),
        (
            ServerState::CommunicationsInterrupted,
            ServerState::CommunicationsInterrupted
        )
    );
    link
}

#[test]
fn partner_down_meets_communications_interrupted_in_potential_conflict() {
    let mut link = normal_then_cut();
    let now = link.now;
    link.p.e.partner_down(now, false).unwrap();
    link.p.settle();
    assert_eq!(link.p.e.state(), ServerState::PartnerDown);
    link.run_for(60);
    link.trace.clear();
    link.connect();
    // PARTNER-DOWN with the partner in COMMUNICATIONS-INTERRUPTED, and the other way round:
    // POTENTIAL-CONFLICT on both sides (§8.4.2, §8.9.2); the primary asks for updates, then
    // CONFLICT-DONE, and both end in NORMAL (§8.10.2, §8.12.2).
    let kinds: Vec<_> = states_sent(&link, true).iter().map(|s| s.0).collect();
    assert_eq!(
        kinds,
        [
            v6::ServerState::PotentialConflict,
            v6::ServerState::ConflictDone,
            v6::ServerState::Normal
        ]
    );
    assert!(
        link.names().contains(&(true, "UPDREQ")),
        "{:?}",
        link.names()
    );
    assert_eq!(link.states(), (ServerState::Normal, ServerState::Normal));
}

#[test]
fn restarted_partner_recovers_from_partner_down() {
    let mut link = normal_then_cut();
    // The secondary crashes now: what it persisted so far is all it will have.
    let crashed = link.s.persisted;
    link.run_for(30);
    let now = link.now;
    link.p.e.partner_down(now, false).unwrap();
    link.p.settle();
    link.run_for(60);
    // It restarts: STARTUP; the primary has been in PARTNER-DOWN since after the secondary
    // last operated, so RECOVER (§8.3 step 5).
    let now = link.now;
    link.s.persisted = crashed;
    link.s.restart(Role::Secondary, now);
    link.trace.clear();
    link.connect();
    let sent = states_sent(&link, true);
    assert!(
        sent.iter()
            .any(|(s, _, pdt)| *s == v6::ServerState::PartnerDown && *pdt),
        "PARTNER-DOWN with its partner-down-time (§6.3): {sent:?}"
    );
    let theirs = states_sent(&link, false);
    assert!(
        theirs
            .first()
            .is_some_and(|(_, f, _)| f.contains(ServerFlags::STARTUP)),
        "STATE in STARTUP carries S (§8.3.1): {theirs:?}"
    );
    assert!(
        theirs
            .iter()
            .any(|(s, _, _)| *s == v6::ServerState::Recover),
        "{theirs:?}"
    );
    link.run_for(u64::from(MCLT) + 30);
    assert_eq!(link.states(), (ServerState::Normal, ServerState::Normal));
}

#[test]
fn skew_beyond_five_seconds_is_refused_whatever_the_configuration() {
    // config's max_clock_skew is 60 s; RFC 8156 §7.1 allows 5.
    let mut link = Link6::new(8);
    link.run_for(16);
    link.connect();
    let decoded = link.decoded();
    let Some((false, Repr::ConnectReply(a))) = decoded.get(1) else {
        panic!("{:?}", link.names());
    };
    assert_eq!(a.status.map(|s| s.status), Some(Status::ExcessiveTimeSkew));
    assert_eq!(a.mclt, None);
    assert!(link.p.events.contains(&Event::ConnectionRejected {
        reason: RejectReason::TimeMismatch,
        by_partner: true,
    }));
    assert_eq!(link.p.e.link(), failover_fsm::engine::Link::Down);

    // 4 s apart is within the limit.
    let mut link = Link6::new(4);
    link.run_for(16);
    link.connect();
    assert!(link.p.e.is_communicating() && link.s.e.is_communicating());
}

#[test]
fn connectreply_with_another_mclt_gets_disconnect() {
    // §6.1.3: the primary drops a CONNECTREPLY whose MCLT is not its own.
    let mut p = Side::new(Role::Primary, 0, 1);
    let now = Instant::from_secs(16);
    p.e.handle_timeout(now);
    p.e.connection_up(now).unwrap();
    let out = p.transmit(now);
    let Ok(Repr::Connect(c)) = Repr::parse(&out[0]) else {
        panic!("CONNECT")
    };
    let reply = v6::ConnectReply {
        xid: c.xid,
        sent_time: c.sent_time,
        status: None,
        protocol_version: Some(ProtocolVersion::V1_0),
        mclt: Some(MCLT + 1),
        keepalive_time: Some(60),
        max_unacked_bndupd: Some(10),
        connect_flags: Some(ConnectFlags::EMPTY),
        extra: Default::default(),
    };
    let mut buf = [0u8; 256];
    let n = reply.emit(&mut buf).unwrap();
    p.receive(now, &buf[..n]);
    let out = p.transmit(now);
    let Ok(Repr::Disconnect(d)) = Repr::parse(&out[0]) else {
        panic!("DISCONNECT")
    };
    assert_eq!(
        d.status.map(|s| s.status),
        Some(Status::ConfigurationConflict)
    );
    assert!(p.closed);
}

#[test]
fn unreadable_connect_gets_a_connectreply_with_its_status() {
    // A CONNECT without OPTION_F_PROTOCOL_VERSION: NotSupported (§6.1.2).
    let mut s = Side::new(Role::Secondary, 0, 1);
    let now = Instant::from_secs(1);
    s.e.connection_up(now).unwrap();
    let mut buf = [0u8; 256];
    let n = v6::Connect {
        xid: 5,
        sent_time: time::from_unix(u64::from(T0) + 1).unwrap(),
        protocol_version: ProtocolVersion::V1_0,
        mclt: MCLT,
        keepalive_time: 60,
        max_unacked_bndupd: 10,
        relationship_name: None,
        connect_flags: ConnectFlags::EMPTY,
        extra: Default::default(),
    }
    .emit(&mut buf)
    .unwrap();
    // Option 127 is the first after the header (size, type, xid, sent-time: 10 bytes): drop
    // it (8 bytes).
    let mut bytes: Vec<u8> = buf[..n].to_vec();
    assert_eq!(&bytes[10..12], &[0, 127]);
    bytes.drain(10..18);
    let size = u16::try_from(bytes.len() - 2).unwrap();
    bytes[..2].copy_from_slice(&size.to_be_bytes());
    s.receive(now, &bytes);
    let out = s.transmit(now);
    let Ok(Repr::ConnectReply(a)) = Repr::parse(&out[0]) else {
        panic!("CONNECTREPLY")
    };
    assert_eq!(a.xid, 5);
    assert_eq!(a.status.map(|s| s.status), Some(Status::NotSupported));
    assert!(s.closed);
    assert!(
        s.events
            .iter()
            .any(|e| matches!(e, Event::ProtocolError { .. }))
    );
}

#[test]
fn contact_every_quarter_keepalive_and_silence_closes() {
    let mut link = Link6::new(0);
    link.run_for(16);
    link.connect();
    assert!(link.p.e.is_communicating());
    // The partner's keep-alive is 60 s: CONTACT after 15 s without sending (§6.5).
    let silent_since = link.now;
    let next = link.p.e.poll_timeout().unwrap();
    assert!(next <= silent_since + Duration::from_secs(15), "{next:?}");
    link.trace.clear();
    link.run_for(16);
    let contacts: Vec<_> = link
        .names()
        .into_iter()
        .filter(|(_, n)| *n == "CONTACT")
        .collect();
    assert!(contacts.contains(&(true, "CONTACT")) && contacts.contains(&(false, "CONTACT")));
    // The secondary stops hearing the primary: after 60 s of silence it gives up (§6.6).
    link.up = false;
    let now = link.now;
    link.s.e.handle_timeout(now);
    let _ = link.s.transmit(now);
    for step in 1..=61 {
        let t = now + Duration::from_secs(step);
        link.s.e.handle_timeout(t);
        let _ = link.s.transmit(t);
        if link.s.closed {
            break;
        }
    }
    assert!(link.s.closed);
    assert!(
        link.s
            .events
            .iter()
            .any(|e| matches!(e, Event::CommunicationsFailed))
    );
}

#[test]
fn transaction_ids_stay_within_24_bits() {
    // §5.4: 24 bits. A seed near u32::MAX wraps within them and skips 0.
    let mut p = Side::new(Role::Primary, 0, u32::MAX - 1);
    let now = Instant::from_secs(16);
    p.e.handle_timeout(now);
    for _ in 0..3 {
        p.e.connection_up(now).unwrap();
        let out = p.transmit(now);
        let msg = v6::Message::new_unchecked(&out[0][..]);
        assert!(
            msg.xid() != 0 && msg.xid() <= v6::MAX_XID,
            "{:#x}",
            msg.xid()
        );
        p.e.connection_down(now);
        p.settle();
    }
}

#[test]
fn status_codes_map_both_ways() {
    use failover_fsm::v6::{reason_of, status_of};
    for status in [
        Status::ExcessiveTimeSkew,
        Status::NotSupported,
        Status::ConfigurationConflict,
        Status::MissingBindingInformation,
        Status::OutdatedBindingInformation,
        Status::AddressInUse,
        Status::TlsConnectionRefused,
    ] {
        assert_eq!(status_of(reason_of(status)), status);
    }
    assert_eq!(
        reason_of(Status::ServerShuttingDown),
        RejectReason::UnknownConnectionReason
    );
    assert_eq!(
        status_of(RejectReason::DuplicateConnection),
        Status::UnspecFail
    );
    let _ = StatusCode::new(Status::Success, "");
}
