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
use std::collections::HashMap;
use std::net::Ipv6Addr;

use failover_fsm::engine::{
    Action, BindingHandle, BindingSource6, CommitToken, Engine, Event, LeaseLookup6, Persisted,
    UpdateId, UpdateSink6, V6,
};
use failover_fsm::v6::accept::Verdict;
use failover_fsm::v6::{ClientKey, LocalLease, owner};
use failover_fsm::{Config, Instant, RejectReason, Role, ServerState, UnixTime};
use failover_proto::v6::{
    self, Binding, BindingStatus, ClientData, ConnectFlags, Ia, IaKind, Lease, LeaseAddr, List,
    ProtocolVersion, Repr, ServerFlags, Status, StatusCode, time,
};

type Engine6 = Engine<16, 16, 64, V6>;

const T0: u32 = 1_700_000_000;
const MCLT: u32 = 300;

fn config(role: Role) -> Config {
    let mut c = Config::new(role, "fo6", MCLT);
    c.receive_timer = 60;
    c
}

/// One client's binding: its DUID and leases (IA_NA 1, IA_PD 2).
struct Client {
    duid: Vec<u8>,
    na: Vec<LeaseAddr>,
    pd: Vec<LeaseAddr>,
}

/// A DHCPv6 lease table: the records, and the clients that hold them.
#[derive(Default)]
struct Leases {
    records: HashMap<LeaseAddr, LocalLease>,
    clients: HashMap<u32, Client>,
    /// The wall clock for OPTION_LQ_BASE_TIME.
    now: u32,
}

impl LeaseLookup6 for Leases {
    fn lookup(&self, lease: LeaseAddr) -> Option<LocalLease> {
        self.records.get(&lease).copied()
    }
}

impl BindingSource6 for Leases {
    fn binding<R>(
        &self,
        handle: BindingHandle,
        write: impl FnOnce(&Binding<'_>) -> R,
    ) -> Option<R> {
        let client = self.clients.get(&handle.0)?;
        let base = UnixTime(self.now);
        let lease = |addr: &LeaseAddr| self.records[addr].update_lease(*addr, 300, 600, base);
        let na: Vec<Lease<'static>> = client.na.iter().map(lease).collect();
        let pd: Vec<Lease<'static>> = client.pd.iter().map(lease).collect();
        let ia = |kind, iaid, leases| Ia {
            kind,
            iaid,
            t1: 150,
            t2: 240,
            leases: List::from_slice(leases),
            status: None,
            extra: Default::default(),
        };
        let ias = [ia(IaKind::Na, 1, &na[..]), ia(IaKind::Pd, 2, &pd[..])];
        let ias = if pd.is_empty() { &ias[..1] } else { &ias[..] };
        Some(write(&Binding::Client(ClientData {
            status: None,
            client_id: Some(&client.duid),
            lq_base_time: time::from_unix(u64::from(self.now)),
            vss: None,
            reconfigure: None,
            relay_data: None,
            ias: List::from_slice(ias),
            extra: Default::default(),
        })))
    }
}

/// One answer to our updates: (update, handle, lease, acked binding-status,
/// partner-lifetime-sent, outcome).
type Answer = (
    UpdateId,
    BindingHandle,
    LeaseAddr,
    Option<BindingStatus>,
    Option<u32>,
    Result<(), Status>,
);

/// Accepted leases awaiting their commit, and the answers to ours not yet stored.
#[derive(Default)]
struct Pending {
    commits: Vec<(CommitToken, LeaseAddr, Option<ClientKey>, Verdict)>,
    answers: Vec<Answer>,
    /// Every answer ever received.
    answered: Vec<Answer>,
    /// The partner's leases we refused.
    refused: Vec<(LeaseAddr, Status)>,
}

impl UpdateSink6 for Pending {
    fn commit(
        &mut self,
        token: CommitToken,
        binding: &Binding<'_>,
        ia: Option<&Ia<'_>>,
        lease: &Lease<'_>,
        verdict: &Verdict,
    ) {
        let client = ClientKey::of_update(binding, ia);
        self.commits.push((token, lease.addr, client, *verdict));
    }

    fn refused(&mut self, _: &Binding<'_>, _: Option<&Ia<'_>>, lease: &Lease<'_>, status: Status) {
        self.refused.push((lease.addr, status));
    }

    fn acked(
        &mut self,
        update: UpdateId,
        handle: BindingHandle,
        lease: &Lease<'_>,
        outcome: Result<(), Status>,
    ) {
        let answer = (
            update,
            handle,
            lease.addr,
            lease.binding_status,
            lease.partner_lifetime_sent,
            outcome,
        );
        self.answers.push(answer);
        self.answered.push(answer);
    }
}

fn kind_of(addr: LeaseAddr) -> owner::Kind {
    match addr {
        LeaseAddr::Address(a) => owner::Kind::Address(a),
        LeaseAddr::Prefix { .. } => owner::Kind::Prefix,
    }
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
    leases: Leases,
    pending: Pending,
    /// Leave commits to the test (else `settle` commits everything at once).
    hold: bool,
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
            leases: Leases::default(),
            pending: Pending::default(),
            hold: false,
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
        if !self.hold {
            self.commit_all();
        }
        let now = UnixTime(self.leases.now);
        for (_, _, addr, status, sent, outcome) in std::mem::take(&mut self.pending.answers) {
            if outcome.is_ok()
                && let Some(r) = self.leases.records.get_mut(&addr)
            {
                // A freed lease would go to the partner again; the tests here send what they
                // look at themselves (the store's side: sim6, `MemoryStore6`).
                let _freed = r.store_ack(
                    kind_of(addr),
                    status,
                    sent.map(v6::time::to_unix).map(|t| UnixTime(t as u32)),
                    now,
                );
            }
        }
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
                Action::SendAllBindings | Action::SendUnackedBindings => {
                    let mut handles: Vec<u32> = self.leases.clients.keys().copied().collect();
                    handles.sort_unstable();
                    for h in handles {
                        self.e.send_binding(BindingHandle(h)).unwrap();
                    }
                    self.e.end_of_updates();
                }
                _ => {}
            }
        }
        while let Some(ev) = self.e.poll_event() {
            self.events.push(ev);
        }
    }

    /// Stores every accepted lease (`LocalLease::store_received`) and confirms it.
    fn commit_all(&mut self) {
        for (token, addr, client, verdict) in std::mem::take(&mut self.pending.commits) {
            self.leases
                .records
                .entry(addr)
                .or_insert(LocalLease::new(BindingStatus::Free))
                .store_received(client, &verdict);
            self.e.binding_committed(token).unwrap();
        }
    }

    fn transmit(&mut self, now: Instant) -> Vec<Vec<u8>> {
        self.settle();
        let mut out = Vec::new();
        let mut buf = [0u8; 2048];
        self.leases.now = self.wall(now).0;
        while let Some(n) = self.e.poll_transmit(now, &mut buf, &self.leases) {
            out.push(buf[..n].to_vec());
        }
        self.settle();
        out
    }

    fn receive(&mut self, now: Instant, msg: &[u8]) {
        let wall = self.wall(now);
        self.leases.now = wall.0;
        self.e
            .handle_message(now, wall, msg, &self.leases, &mut self.pending)
            .unwrap();
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

// ----- binding updates received (§7.5, §7.6) -----

const DUID: &[u8] = &[0, 3, 0, 1, 2, 0, 0x5e, 0, 0x53, 1];
const OTHER_DUID: &[u8] = &[0, 3, 0, 1, 2, 0, 0x5e, 0, 0x53, 2];

fn address(n: u16) -> LeaseAddr {
    LeaseAddr::Address(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, n))
}

fn prefix(n: u16) -> LeaseAddr {
    LeaseAddr::Prefix {
        prefix: Ipv6Addr::new(0x2001, 0xdb8, n, 0, 0, 0, 0, 0),
        len: 56,
    }
}

/// An ACTIVE lease as a BNDUPD carries it (§7.4): last contact `ago` seconds before `at`.
fn active(addr: LeaseAddr, at: u32, ago: u32) -> Lease<'static> {
    Lease {
        addr,
        preferred_lifetime: 300,
        valid_lifetime: 600,
        status: None,
        vss: None,
        lq_base_time: None,
        binding_status: Some(BindingStatus::Active),
        start_time_of_state: Some(at - ago),
        state_expiration_time: Some(at + 600),
        clt_time: Some(ago),
        partner_lifetime: Some(at + 900),
        partner_raw_clt_time: None,
        expiration_time: Some(at + 600),
        partner_lifetime_sent: None,
        client_fqdn: None,
        dns_removal_info: None,
        extra: Default::default(),
    }
}

/// A BNDUPD for `duid`: `na` in IA_NA 1, `pd` in IA_PD 2, sent at wire time `at`.
fn bndupd(xid: u32, at: u32, duid: &[u8], na: &[Lease<'_>], pd: &[Lease<'_>]) -> Vec<u8> {
    let ia = |kind, iaid, leases| Ia {
        kind,
        iaid,
        t1: 150,
        t2: 240,
        leases: List::from_slice(leases),
        status: None,
        extra: Default::default(),
    };
    let mut ias = Vec::new();
    if !na.is_empty() {
        ias.push(ia(IaKind::Na, 1, na));
    }
    if !pd.is_empty() {
        ias.push(ia(IaKind::Pd, 2, pd));
    }
    let client = ClientData {
        status: None,
        client_id: Some(duid),
        lq_base_time: Some(at),
        vss: None,
        reconfigure: None,
        relay_data: None,
        ias: List::from_slice(&ias),
        extra: Default::default(),
    };
    let mut buf = [0u8; 2048];
    let n = v6::BndUpd {
        xid,
        sent_time: at,
        binding: Binding::Client(client),
        extra: Default::default(),
    }
    .emit(&mut buf)
    .unwrap();
    buf[..n].to_vec()
}

/// Both in NORMAL; the link's delivery stops, so that the test alone speaks to each side.
fn normal_pair() -> Link6 {
    let mut link = Link6::new(0);
    link.run_for(16);
    link.connect();
    link.run_for(u64::from(MCLT) + 30);
    assert_eq!(link.states(), (ServerState::Normal, ServerState::Normal));
    link.up = false;
    link
}

/// A lease of a BNDREPLY: (address, status code, binding-status, partner-lifetime-sent).
type Replied = (
    LeaseAddr,
    Option<Status>,
    Option<BindingStatus>,
    Option<u32>,
);

/// The xid and every lease of a BNDREPLY.
fn replied(bytes: &[u8]) -> (u32, Vec<Replied>) {
    let Ok(Repr::BndReply(r)) = Repr::parse(bytes) else {
        panic!("BNDREPLY expected: {bytes:02x?}");
    };
    let Binding::Client(c) = r.binding else {
        panic!("CLIENT_DATA expected")
    };
    assert_eq!(c.client_id, Some(DUID));
    let leases = c
        .ias
        .iter()
        .flat_map(|ia| ia.leases.iter())
        .map(|l| {
            (
                l.addr,
                l.status.map(|s| s.status),
                l.binding_status,
                l.partner_lifetime_sent,
            )
        })
        .collect();
    (r.xid, leases)
}

#[test]
fn bndupd_is_committed_then_answered_with_its_echo() {
    let mut link = normal_pair();
    let now = link.now;
    let at = time::from_unix(u64::from(link.s.wall(now).0)).unwrap();
    let s = &mut link.s;
    s.leases
        .records
        .insert(address(1), LocalLease::new(BindingStatus::Free));
    s.leases
        .records
        .insert(prefix(7), LocalLease::new(BindingStatus::Free));
    s.hold = true;
    let upd = bndupd(
        0x00ab_cdef,
        at,
        DUID,
        &[active(address(1), at, 5)],
        &[active(prefix(7), at, 5)],
    );
    s.receive(now, &upd);
    assert_eq!(
        s.pending.commits.len(),
        2,
        "both leases handed to the store"
    );
    assert!(
        s.transmit(now).is_empty(),
        "no BNDREPLY before the commits (§7.5.2)"
    );
    let later = s.pending.commits.split_off(1);
    s.commit_all();
    assert!(
        s.transmit(now).is_empty(),
        "one lease still awaits its commit"
    );
    s.pending.commits = later;
    s.commit_all();
    let out = s.transmit(now);
    assert_eq!(out.len(), 1);
    let (xid, leases) = replied(&out[0]);
    assert_eq!(xid, 0x00ab_cdef);
    assert_eq!(
        leases,
        [
            (
                address(1),
                None,
                Some(BindingStatus::Active),
                Some(at + 900)
            ),
            (prefix(7), None, Some(BindingStatus::Active), Some(at + 900)),
        ],
        "accepted: no status code; partner-lifetime echoed as partner-lifetime-sent (§7.6)"
    );
    let stored = s.leases.records[&address(1)];
    assert_eq!(stored.status, BindingStatus::Active);
    assert_eq!(stored.client, Some(ClientKey::new(DUID, IaKind::Na, 1)));
    assert_eq!(
        stored.expiration_time.map(|t| t.0),
        Some(link.s.wall(now).0 + 900)
    );
    assert_eq!(link.s.e.status(now).counters.bndupd_received, 1);
}

#[test]
fn rejected_leases_carry_their_status_code() {
    let mut link = normal_pair();
    let now = link.now;
    let wall = link.p.wall(now);
    let at = time::from_unix(u64::from(wall.0)).unwrap();
    let p = &mut link.p;
    // address(1) is ACTIVE here for another client since 10 s ago; address(3) is not ours.
    p.leases.records.insert(
        address(1),
        LocalLease {
            client: Some(ClientKey::new(OTHER_DUID, IaKind::Na, 1)),
            cltt: Some(wall.minus(10)),
            start_time_of_state: Some(wall.minus(10)),
            state_expiration_time: Some(wall.plus(600)),
            ..LocalLease::new(BindingStatus::Active)
        },
    );
    p.leases
        .records
        .insert(address(5), LocalLease::new(BindingStatus::Free));
    // The secondary's client last talked 100 s ago: older than our lease (accept(3) with
    // another client, and we are the primary: AddressInUse, §7.5.4).
    let upd = bndupd(
        77,
        at,
        DUID,
        &[
            active(address(1), at, 100),
            active(address(3), at, 1),
            active(address(5), at, 1),
        ],
        &[],
    );
    p.receive(now, &upd);
    let out = p.transmit(now);
    let (xid, leases) = replied(&out[0]);
    assert_eq!(xid, 77);
    let statuses: Vec<_> = leases.iter().map(|l| (l.0, l.1)).collect();
    assert_eq!(
        statuses,
        [
            (address(1), Some(Status::AddressInUse)),
            (address(3), Some(Status::ConfigurationConflict)),
            (address(5), None),
        ]
    );
    assert_eq!(
        p.leases.records[&address(1)].client,
        Some(ClientKey::new(OTHER_DUID, IaKind::Na, 1))
    );
    assert_eq!(p.leases.records[&address(5)].status, BindingStatus::Active);
    assert_eq!(
        p.pending.refused,
        [
            (address(1), Status::AddressInUse),
            (address(3), Status::ConfigurationConflict)
        ],
        "the store hears of each refusal"
    );
    assert!(
        p.e.is_communicating(),
        "a rejection is an answer, not a failure"
    );
}

#[test]
fn bndupd_lacking_binding_status_is_answered_not_disconnected() {
    let mut link = normal_pair();
    let now = link.now;
    let at = time::from_unix(u64::from(link.s.wall(now).0)).unwrap();
    let mut lease = active(address(1), at, 5);
    lease.binding_status = None;
    let mut buf = [0u8; 1024];
    let ia = [Ia {
        kind: IaKind::Na,
        iaid: 1,
        t1: 0,
        t2: 0,
        leases: List::single(&lease),
        status: None,
        extra: Default::default(),
    }];
    let n = v6::BndReply {
        // Emitted with BNDREPLY's rules (which do not ask for binding-status), sent as BNDUPD.
        xid: 9,
        sent_time: at,
        binding: Binding::Client(ClientData {
            status: None,
            client_id: Some(DUID),
            lq_base_time: Some(at),
            vss: None,
            reconfigure: None,
            relay_data: None,
            ias: List::from_slice(&ia),
            extra: Default::default(),
        }),
        extra: Default::default(),
    }
    .emit(&mut buf)
    .unwrap();
    buf[2] = 24; // BNDUPD
    assert!(
        Repr::parse(&buf[..n]).is_err(),
        "the codec refuses it as a BNDUPD"
    );
    let s = &mut link.s;
    s.receive(now, &buf[..n]);
    let out = s.transmit(now);
    let Ok(Repr::BndReply(r)) = Repr::parse(&out[0]) else {
        panic!("BNDREPLY expected")
    };
    assert_eq!(r.xid, 9);
    let Binding::Client(c) = r.binding else {
        panic!()
    };
    assert_eq!(
        c.status.map(|s| s.status),
        Some(Status::MissingBindingInformation)
    );
    assert!(s.e.is_communicating());
    assert!(s.pending.commits.is_empty());
}

#[test]
fn more_bndupds_than_the_window_close_the_connection() {
    let mut link = normal_pair();
    let now = link.now;
    let at = time::from_unix(u64::from(link.s.wall(now).0)).unwrap();
    let s = &mut link.s;
    s.leases
        .records
        .insert(address(1), LocalLease::new(BindingStatus::Free));
    s.hold = true;
    // max-unacked-bndupd is 10 (§6.1.2: never more unanswered than the partner's).
    for xid in 1..=10 {
        s.receive(
            now,
            &bndupd(xid, at, DUID, &[active(address(1), at, 5)], &[]),
        );
    }
    assert!(s.e.is_communicating());
    s.receive(
        now,
        &bndupd(11, at, DUID, &[active(address(1), at, 5)], &[]),
    );
    let out = s.transmit(now);
    assert!(
        matches!(Repr::parse(&out[0]), Ok(Repr::Disconnect(_))),
        "{:?}",
        Repr::parse(&out[0]).map(|r| r.message_type())
    );
    assert!(s.closed);
}

#[test]
fn a_lost_connection_forgets_its_unanswered_bndupds() {
    let mut link = normal_pair();
    let now = link.now;
    let at = time::from_unix(u64::from(link.s.wall(now).0)).unwrap();
    link.s
        .leases
        .records
        .insert(address(1), LocalLease::new(BindingStatus::Free));
    link.s.hold = true;
    link.s
        .receive(now, &bndupd(5, at, DUID, &[active(address(1), at, 5)], &[]));
    let (token, ..) = link.s.pending.commits[0];
    link.disconnect();
    // Its BNDREPLY belonged to the dead connection: the partner sends the BNDUPD again.
    assert!(link.s.e.binding_committed(token).is_err());
    link.up = true;
    link.trace.clear();
    link.connect();
    assert!(!link.names().iter().any(|(_, n)| *n == "BNDREPLY"));
}

// ----- our binding updates (§7.4, §7.7) -----

/// Gives `side` client `handle` holding `na` and `pd` ACTIVE from `wall`, and tells its
/// partner's table the leases exist (FREE).
fn grant(
    link: &mut Link6,
    primary: bool,
    handle: u32,
    duid: &[u8],
    na: &[LeaseAddr],
    pd: &[LeaseAddr],
) {
    let wall = if primary {
        link.p.wall(link.now)
    } else {
        link.s.wall(link.now)
    };
    let (me, partner) = if primary {
        (&mut link.p, &mut link.s)
    } else {
        (&mut link.s, &mut link.p)
    };
    for (addr, kind) in na
        .iter()
        .map(|a| (*a, IaKind::Na))
        .chain(pd.iter().map(|a| (*a, IaKind::Pd)))
    {
        let iaid = if kind == IaKind::Na { 1 } else { 2 };
        me.leases.records.insert(
            addr,
            LocalLease {
                client: Some(ClientKey::new(duid, kind, iaid)),
                cltt: Some(wall),
                start_time_of_state: Some(wall),
                state_expiration_time: Some(wall.plus(600)),
                partner_lifetime: Some(wall.plus(900)),
                ..LocalLease::new(BindingStatus::Active)
            },
        );
        partner
            .leases
            .records
            .entry(addr)
            .or_insert(LocalLease::new(BindingStatus::Free));
    }
    me.leases.clients.insert(
        handle,
        Client {
            duid: duid.to_vec(),
            na: na.to_vec(),
            pd: pd.to_vec(),
        },
    );
}

/// A binding no partner could read (a prefix in the IA_NA: the codec refuses to write it) is
/// dropped and counted, and the updates queued behind it still go out.
#[test]
fn an_unwritable_binding_does_not_hold_up_the_others() {
    let mut link = normal_pair();
    link.up = true;
    grant(&mut link, true, 1, DUID, &[prefix(3)], &[]);
    grant(
        &mut link,
        true,
        2,
        &[0, 3, 0, 1, 2, 0, 0, 0, 0, 9],
        &[address(5)],
        &[],
    );
    let now = link.now;
    let dropped = link.p.e.status(now).counters.updates_dropped;
    let bad = link.p.e.send_binding(BindingHandle(1)).unwrap();
    let good = link.p.e.send_binding(BindingHandle(2)).unwrap();
    link.trace.clear();
    link.pump();
    assert_eq!(link.names(), [(true, "BNDUPD"), (false, "BNDREPLY")]);
    assert!(!link.p.e.is_queued(bad) && !link.p.e.is_queued(good));
    assert_eq!(link.p.e.status(now).counters.updates_dropped, dropped + 1);
    assert_eq!(
        link.s.leases.records[&address(5)].status,
        BindingStatus::Active
    );
    assert_eq!(
        link.s.leases.records[&prefix(3)].status,
        BindingStatus::Free,
        "never sent"
    );
}

#[test]
fn our_binding_goes_out_and_its_answer_is_stored() {
    let mut link = normal_pair();
    link.up = true;
    grant(&mut link, true, 1, DUID, &[address(1)], &[prefix(7)]);
    let wall = link.p.wall(link.now);
    let id = link.p.e.send_binding(BindingHandle(1)).unwrap();
    assert!(link.p.e.is_queued(id));
    link.trace.clear();
    link.pump();
    assert_eq!(link.names(), [(true, "BNDUPD"), (false, "BNDREPLY")]);
    assert!(!link.p.e.is_queued(id));
    // The secondary stored both leases for our client (§7.5.5).
    let theirs = link.s.leases.records[&address(1)];
    assert_eq!(theirs.status, BindingStatus::Active);
    assert_eq!(theirs.client, Some(ClientKey::new(DUID, IaKind::Na, 1)));
    assert_eq!(
        theirs.expiration_time,
        Some(wall.plus(900)),
        "our partner-lifetime (123)"
    );
    // Our CLTT, kept raw (§7.3), goes back to us as OPTION_F_PARTNER_RAW_CLT_TIME (Figure 5).
    assert_eq!(theirs.partner_raw_clt_time, Some(wall));
    let back = theirs.update_lease(address(1), 300, 600, wall.plus(1));
    assert_eq!(
        back.partner_raw_clt_time,
        time::from_unix(u64::from(wall.0))
    );
    assert_eq!(
        link.s.leases.records[&prefix(7)].client,
        Some(ClientKey::new(DUID, IaKind::Pd, 2))
    );
    // Both leases answered, accepted, with the partner-lifetime they acknowledge (§7.7).
    let answered: Vec<_> = link
        .p
        .pending
        .answered
        .iter()
        .map(|a| (a.0, a.2, a.5))
        .collect();
    assert_eq!(
        answered,
        [(id, address(1), Ok(())), (id, prefix(7), Ok(()))]
    );
    let ours = link.p.leases.records[&address(1)];
    assert_eq!(ours.acked_partner_lifetime, Some(wall.plus(900)));
    assert_eq!(ours.partner_lifetime, None, "nothing more to send");

    // The client releases its address: the partner hears of it; once it answered, the
    // address goes back to its owner, the primary (last bit 1): FREE (§7.2, §4.2.1.1).
    link.p
        .leases
        .records
        .get_mut(&address(1))
        .unwrap()
        .release(wall.plus(10));
    link.run_for(11);
    link.p.e.send_binding(BindingHandle(1)).unwrap();
    link.pump();
    assert_eq!(
        link.s.leases.records[&address(1)].status,
        BindingStatus::Released
    );
    assert_eq!(
        link.p.leases.records[&address(1)].status,
        BindingStatus::Free
    );
    assert_eq!(
        link.p.leases.records[&prefix(7)].status,
        BindingStatus::Active
    );
}

#[test]
fn a_rejected_lease_is_only_remembered() {
    let mut link = normal_pair();
    link.up = true;
    // The secondary's client holds address(2) and prefix(9); the primary's table has
    // address(2) ACTIVE for another client since later than that: the primary refuses that
    // lease with AddressInUse (accept(3), §7.5.4), and takes the prefix.
    grant(&mut link, false, 4, DUID, &[address(2)], &[prefix(9)]);
    let wall = link.p.wall(link.now);
    let others = LocalLease {
        client: Some(ClientKey::new(OTHER_DUID, IaKind::Na, 1)),
        cltt: Some(wall.plus(30)),
        start_time_of_state: Some(wall.plus(30)),
        state_expiration_time: Some(wall.plus(600)),
        ..LocalLease::new(BindingStatus::Active)
    };
    link.p.leases.records.insert(address(2), others);
    let ours_before = link.s.leases.records[&address(2)];
    let id = link.s.e.send_binding(BindingHandle(4)).unwrap();
    link.pump();
    let answered: Vec<_> = link
        .s
        .pending
        .answered
        .iter()
        .map(|a| (a.0, a.2, a.5))
        .collect();
    assert_eq!(
        answered,
        [
            (id, address(2), Err(Status::AddressInUse)),
            (id, prefix(9), Ok(()))
        ]
    );
    assert_eq!(
        link.p.leases.records[&address(2)],
        others,
        "the primary kept its own"
    );
    assert_eq!(
        link.s.leases.records[&address(2)],
        ours_before,
        "a rejection changes nothing of ours (§7.7)"
    );
    assert_eq!(
        link.s.leases.records[&prefix(9)].acked_partner_lifetime,
        Some(link.s.wall(link.now).plus(900))
    );
    let counters = link.s.e.status(link.now).counters;
    assert_eq!(counters.rejects_received(RejectReason::FatalConflict), 1);
    assert!(link.p.e.is_communicating() && link.s.e.is_communicating());
}

#[test]
fn update_request_gets_every_binding_then_upddone() {
    let mut link = normal_pair();
    link.up = true;
    for h in 1..=3u16 {
        grant(
            &mut link,
            true,
            u32::from(h),
            &[0, 3, 0, 1, 2, 0, 0x5e, 0, 0x53, h as u8],
            &[address(2 * h + 1)],
            &[],
        );
    }
    // The secondary loses its lease table and restarts: RECOVER, UPDREQALL (§8.5.2).
    link.disconnect();
    let now = link.now;
    link.s.leases.records.clear();
    link.s.persisted = None;
    link.s.restart(Role::Secondary, now);
    link.s.e.lease_table_lost();
    link.run_for(16);
    for h in 1..=3u16 {
        link.s
            .leases
            .records
            .insert(address(2 * h + 1), LocalLease::new(BindingStatus::Free));
    }
    link.trace.clear();
    link.up = true;
    link.connect();
    let names = link.names();
    let pos = |n: &str, from_p: bool| names.iter().position(|x| *x == (from_p, n));
    let upddone = pos("UPDDONE", true).expect("UPDDONE");
    let updates: Vec<usize> = names
        .iter()
        .enumerate()
        .filter(|(_, x)| **x == (true, "BNDUPD"))
        .map(|(i, _)| i)
        .collect();
    let replies: Vec<usize> = names
        .iter()
        .enumerate()
        .filter(|(_, x)| **x == (false, "BNDREPLY"))
        .map(|(i, _)| i)
        .collect();
    assert!(pos("UPDREQALL", false).is_some(), "{names:?}");
    assert_eq!(updates.len(), 3, "{names:?}");
    assert_eq!(replies.len(), 3, "{names:?}");
    assert!(
        replies.iter().all(|r| *r < upddone),
        "UPDDONE only once every BNDUPD was answered (§5.3.7): {names:?}"
    );
    for h in 1..=3u16 {
        assert_eq!(
            link.s.leases.records[&address(2 * h + 1)].status,
            BindingStatus::Active
        );
    }
    link.run_for(u64::from(MCLT) + 30);
    assert_eq!(link.states(), (ServerState::Normal, ServerState::Normal));
}

#[test]
fn shutdown_says_server_shutting_down() {
    let mut link = normal_pair();
    let now = link.now;
    link.p.e.shutdown(now);
    let out = link.p.transmit(now);
    let Ok(Repr::Disconnect(d)) = Repr::parse(&out[0]) else {
        panic!("DISCONNECT expected")
    };
    assert_eq!(d.status.map(|s| s.status), Some(Status::ServerShuttingDown));
    assert!(link.p.closed);
    assert_eq!(link.p.e.state(), ServerState::CommunicationsInterrupted);
    // The secondary reads an orderly stop, not a refusal: nothing counted as a rejection.
    link.s.receive(now, &out[0]);
    assert!(link.s.closed);
    assert!(
        link.s
            .events
            .iter()
            .any(|e| matches!(e, Event::PartnerShuttingDown)),
        "{:?}",
        link.s.events
    );
    assert!(
        !link
            .s
            .events
            .iter()
            .any(|e| matches!(e, Event::PartnerDisconnected { .. }))
    );
    assert_eq!(link.s.e.status(now).last_reject, None);
}
