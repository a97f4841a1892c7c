//! Properties checked by the `engine6` fuzz target: one `Engine<_, _, _, V6>` (RFC 8156) driven
//! by arbitrary steps — transport, time, commands, commits, and partner messages built from
//! typed values or given as raw bytes. Compiled into the target and into failover-fsm's replay
//! test `tests/fuzz_engine6_corpus.rs`.
//!
//! After every step:
//! * every message the engine writes decodes with the v6 codec, is a failover type, and
//!   carries a 24-bit xid (§5.4), non-zero unless it answers one of the partner's;
//! * no more of our BNDUPDs are unanswered than the partner's max-unacked-bndupd (§6.1.2);
//! * a BNDREPLY goes out only for a BNDUPD every accepted lease of which was committed or
//!   failed (§7.5.2), at most once, and only on the connection that received it;
//! * a DISCONNECT or rejecting CONNECTREPLY comes with `Action::CloseConnection`;
//! * the engine never enters PAUSED or SHUTDOWN (RFC 8156 has neither), and every command it
//!   refuses is refused with a typed error.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used
)]

use std::collections::{HashMap, HashSet};
use std::net::Ipv6Addr;
use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use failover_fsm::engine::{
    Action, BindingHandle, BindingSource6, CommitToken, Engine, LeaseLookup6, Persisted, UpdateId,
    UpdateSink6, V6,
};
use failover_fsm::v6::accept::Verdict;
use failover_fsm::v6::{ClientKey, LocalLease};
use failover_fsm::{Config, Instant, RejectReason, Role, ServerState, UnixTime};
use failover_proto::Text;
use failover_proto::v6::{
    self, Binding, BindingStatus, ClientData, ConnectFlags, Ia, IaKind, Lease, LeaseAddr, List,
    MAX_XID, ProtocolVersion, Repr, ServerFlags, StatusCode, time,
};

/// Steps read from one input at most.
const MAX_STEPS: usize = 200;
const T0: u32 = 1_700_000_000;
const MCLT: u32 = 60;

/// The engine's configuration.
#[derive(Debug, Clone, Arbitrary)]
pub struct Setup {
    pub secondary: bool,
    /// A persisted state to start from (index into the RFC 8156 states), or a new server.
    pub persisted: Option<u8>,
    pub lease_table_lost: bool,
    /// Our max-unacked-bndupd, 1..=8.
    pub window: u8,
}

/// A lease of a BNDUPD from the partner.
#[derive(Debug, Clone, Arbitrary)]
pub struct LeaseArb {
    /// Which of 8 addresses (even: IA_NA) or 4 prefixes.
    pub which: u8,
    pub status: u8,
    /// Seconds before the message's time.
    pub ago: u8,
    pub times_out: bool,
}

/// One step.
#[derive(Debug, Clone, Arbitrary)]
pub enum Step {
    Up,
    Down,
    /// Time passes (seconds) and the timers run.
    Wait(u8),
    /// Bytes as they are (a framed message, the size included or not).
    Raw(Vec<u8>),
    Connect {
        mclt: u16,
        version: u8,
        keepalive: u8,
        window: u8,
        skew: i8,
    },
    ConnectReply {
        status: Option<u8>,
        mclt_delta: i8,
        window: u8,
        skew: i8,
    },
    State {
        state: u8,
        flags: u8,
        start_ago: u16,
    },
    Contact,
    Disconnect(u8),
    BndUpd {
        xid: u32,
        duid: u8,
        leases: Vec<LeaseArb>,
    },
    /// The partner answers our BNDUPD with this xid (or the oldest in flight), rejecting
    /// leases whose bit is set.
    BndReply {
        oldest: bool,
        xid: u32,
        reject: u8,
        top: Option<u8>,
    },
    UpdReq,
    UpdReqAll,
    UpdDone,
    PoolReq,
    PoolResp,
    /// Commit (or fail) the oldest accepted lease.
    Commit {
        fail: bool,
    },
    /// From now on, leave snapshots outstanding (`true`) or confirm them at once.
    HoldPersist(bool),
    /// Confirm (or fail) the outstanding snapshot.
    PersistDone {
        fail: bool,
    },
    SendBinding(u8),
    EndOfUpdates,
    PartnerDown {
        force: bool,
    },
    PoolResponse,
}

/// Reads an input.
pub fn decode(data: &[u8]) -> (Setup, Vec<Step>) {
    let mut u = Unstructured::new(data);
    let setup = Setup::arbitrary(&mut u).unwrap_or(Setup {
        secondary: false,
        persisted: None,
        lease_table_lost: false,
        window: 1,
    });
    let mut steps = Vec::new();
    while !u.is_empty() && steps.len() < MAX_STEPS {
        match Step::arbitrary(&mut u) {
            Ok(s) => steps.push(s),
            Err(_) => break,
        }
    }
    (setup, steps)
}

/// The fuzz target.
pub fn check_engine6(data: &[u8]) {
    let (setup, steps) = decode(data);
    run(&setup, &steps);
}

/// What a run did (for the replay test's coverage figures).
#[derive(Debug, Default, Clone, Copy)]
pub struct Outcome {
    pub messages_sent: usize,
    pub bndupds_sent: usize,
    pub bndreplies_sent: usize,
    pub reached_normal: bool,
}

const STATES: [v6::ServerState; 10] = [
    v6::ServerState::Startup,
    v6::ServerState::Normal,
    v6::ServerState::CommunicationsInterrupted,
    v6::ServerState::PartnerDown,
    v6::ServerState::PotentialConflict,
    v6::ServerState::Recover,
    v6::ServerState::RecoverWait,
    v6::ServerState::RecoverDone,
    v6::ServerState::ResolutionInterrupted,
    v6::ServerState::ConflictDone,
];

fn lease_addr(which: u8) -> LeaseAddr {
    if which % 3 == 2 {
        LeaseAddr::Prefix {
            prefix: Ipv6Addr::new(0x2001, 0xdb8, u16::from(which % 4), 0, 0, 0, 0, 0),
            len: 56,
        }
    } else {
        LeaseAddr::Address(Ipv6Addr::new(
            0x2001,
            0xdb8,
            0,
            0,
            0,
            0,
            0,
            u16::from(which % 8),
        ))
    }
}

/// The caller's side: lease records, clients, accepted leases awaiting commit.
#[derive(Default)]
struct Store {
    records: HashMap<LeaseAddr, LocalLease>,
    now: u32,
}

impl LeaseLookup6 for Store {
    fn lookup(&self, lease: LeaseAddr) -> Option<LocalLease> {
        self.records.get(&lease).copied()
    }
}

impl BindingSource6 for Store {
    fn binding<R>(
        &self,
        handle: BindingHandle,
        write: impl FnOnce(&Binding<'_>) -> R,
    ) -> Option<R> {
        // Handle h: a client holding address h % 8 (a handle ≥ 200 is gone from the store).
        if handle.0 >= 200 {
            return None;
        }
        let addr = lease_addr((handle.0 % 8) as u8 & !1);
        let record = self.records.get(&addr).copied().unwrap_or(LocalLease {
            state_expiration_time: Some(UnixTime(self.now + 600)),
            start_time_of_state: Some(UnixTime(self.now)),
            ..LocalLease::new(BindingStatus::Active)
        });
        let lease = record.update_lease(addr, 300, 600, UnixTime(self.now));
        let kind = match addr {
            LeaseAddr::Prefix { .. } => IaKind::Pd,
            LeaseAddr::Address(_) => IaKind::Na,
        };
        let ia = [Ia {
            kind,
            iaid: handle.0,
            t1: 0,
            t2: 0,
            leases: List::single(&lease),
            status: None,
            extra: Default::default(),
        }];
        let duid = [0, 3, 0, 1, handle.0 as u8];
        Some(write(&Binding::Client(ClientData {
            status: None,
            client_id: Some(&duid),
            lq_base_time: time::from_unix(u64::from(self.now)),
            vss: None,
            reconfigure: None,
            relay_data: None,
            ias: List::from_slice(&ia),
            extra: Default::default(),
        })))
    }
}

#[derive(Default)]
struct Sink {
    /// Accepted leases awaiting commit: (token, lease, client, verdict).
    pending: Vec<(CommitToken, LeaseAddr, Option<ClientKey>, Verdict)>,
    answered: Vec<(UpdateId, LeaseAddr)>,
}

impl UpdateSink6 for Sink {
    fn commit(
        &mut self,
        token: CommitToken,
        binding: &Binding<'_>,
        ia: Option<&Ia<'_>>,
        lease: &Lease<'_>,
        verdict: &Verdict,
    ) {
        let client = match (binding, ia) {
            (Binding::Client(c), Some(ia)) => {
                c.client_id.map(|d| ClientKey::new(d, ia.kind, ia.iaid))
            }
            _ => None,
        };
        self.pending.push((token, lease.addr, client, *verdict));
    }

    fn acked(
        &mut self,
        update: UpdateId,
        _: BindingHandle,
        lease: &Lease<'_>,
        _: Result<(), v6::Status>,
    ) {
        self.answered.push((update, lease.addr));
    }
}

struct Harness {
    e: Engine<16, 8, 64, V6>,
    store: Store,
    sink: Sink,
    now: Instant,
    up: bool,
    /// Per xid, the tokens handed out for each received BNDUPD with that xid on this
    /// connection and not answered yet (a partner may reuse an xid); the settled tokens.
    tokens_of: HashMap<u32, Vec<Vec<u64>>>,
    settled: HashSet<u64>,
    /// Our BNDUPDs in flight, by xid, in order.
    in_flight: Vec<u32>,
    /// The partner's max-unacked-bndupd, once a CONNECT / CONNECTREPLY told us.
    partner_window: Option<u32>,
    persist: Option<failover_fsm::engine::PersistToken>,
    hold_persist: bool,
    closing: bool,
    outcome: Outcome,
}

pub fn run(setup: &Setup, steps: &[Step]) -> Outcome {
    let role = if setup.secondary {
        Role::Secondary
    } else {
        Role::Primary
    };
    let mut config = Config::new(role, "fo6", MCLT);
    config.receive_timer = 20;
    config.max_unacked_bndupd = u32::from(setup.window % 8 + 1);
    let persisted = setup.persisted.map(|i| Persisted {
        state: failover_fsm::v6::state::to_v4(STATES[usize::from(i) % STATES.len()]),
        since: UnixTime(T0 - 100),
        mclt: None,
        last_operational: Some(UnixTime(T0 - 50)),
        lease_table_lost: false,
    });
    let mut e = Engine::<16, 8, 64, V6>::new(config, persisted, Instant::ZERO, UnixTime(T0), 1)
        .expect("a valid configuration");
    if setup.lease_table_lost {
        e.lease_table_lost();
    }
    let mut h = Harness {
        e,
        store: Store::default(),
        sink: Sink::default(),
        now: Instant::ZERO,
        up: false,
        tokens_of: HashMap::new(),
        settled: HashSet::new(),
        in_flight: Vec::new(),
        partner_window: None,
        persist: None,
        hold_persist: false,
        closing: false,
        outcome: Outcome::default(),
    };
    for i in 0..8u8 {
        h.store
            .records
            .insert(lease_addr(i), LocalLease::new(BindingStatus::Free));
    }
    h.drain();
    for step in steps {
        h.step(step);
        h.drain();
    }
    h.outcome
}

impl Harness {
    fn wall(&self) -> UnixTime {
        UnixTime(T0 + (self.now.as_millis() / 1000) as u32)
    }

    fn wire_now(&self, skew: i8) -> u32 {
        let unix = i64::from(self.wall().0) + i64::from(skew);
        time::from_unix(unix as u64).unwrap_or(0)
    }

    fn deliver(&mut self, bytes: &[u8]) {
        let wall = self.wall();
        self.store.now = wall.0;
        // A refusal for pending events is the only error, and drain() empties them.
        let r = self
            .e
            .handle_message(self.now, wall, bytes, &self.store, &mut self.sink);
        assert!(r.is_ok(), "handle_message after draining: {r:?}");
        // Tokens handed out now belong to the BNDUPD just delivered (read or not: one that
        // lacks binding information is answered too, §7.5.3).
        let msg = v6::Message::new_unchecked(bytes);
        if msg.msg_type() == v6::MessageType::BndUpd && bytes.len() >= v6::HEADER_LEN {
            let xid = msg.xid();
            let new: Vec<u64> = self
                .sink
                .pending
                .iter()
                .map(|p| p.0.0)
                .filter(|t| !self.tokens_of.values().flatten().flatten().any(|x| x == t))
                .collect();
            // A BNDUPD the engine took (not one that closed the connection).
            if !self.closing {
                self.tokens_of.entry(xid).or_default().push(new);
            }
        }
    }

    fn emit(&mut self, repr: Repr<'_>) {
        let mut buf = vec![0u8; repr.buffer_len()];
        if repr.emit(&mut buf).is_ok() {
            self.deliver(&buf);
        }
    }

    fn step(&mut self, step: &Step) {
        match step {
            Step::Up => {
                if self.e.connection_up(self.now).is_ok() {
                    self.up = true;
                    self.closing = false;
                    self.in_flight.clear();
                    self.tokens_of.clear();
                    self.sink.pending.clear();
                    self.partner_window = None;
                }
            }
            Step::Down => {
                self.e.connection_down(self.now);
                self.up = false;
                self.in_flight.clear();
                self.tokens_of.clear();
                self.sink.pending.clear();
            }
            Step::Wait(s) => {
                self.now = self.now + Duration::from_secs(u64::from(*s));
                while let Some(t) = self.e.poll_timeout() {
                    if t > self.now {
                        break;
                    }
                    self.e.handle_timeout(self.now);
                    self.drain();
                }
            }
            Step::Raw(bytes) => self.deliver(bytes),
            Step::Connect {
                mclt,
                version,
                keepalive,
                window,
                skew,
            } => {
                let c = v6::Connect {
                    xid: 7,
                    sent_time: self.wire_now(*skew),
                    protocol_version: ProtocolVersion {
                        major: u16::from(*version % 3),
                        minor: 0,
                    },
                    mclt: u32::from(*mclt),
                    keepalive_time: u32::from(*keepalive),
                    max_unacked_bndupd: u32::from(*window % 8),
                    relationship_name: None,
                    connect_flags: ConnectFlags::EMPTY,
                    extra: Default::default(),
                };
                self.partner_window = Some(c.max_unacked_bndupd.max(1));
                self.emit(Repr::Connect(c));
            }
            Step::ConnectReply {
                status,
                mclt_delta,
                window,
                skew,
            } => {
                let mclt = u32::try_from(i64::from(MCLT) + i64::from(*mclt_delta % 2)).unwrap_or(0);
                let r = v6::ConnectReply {
                    xid: 1,
                    sent_time: self.wire_now(*skew),
                    status: status
                        .map(|s| StatusCode::new(v6::Status::from(u16::from(s % 24)), "")),
                    protocol_version: Some(ProtocolVersion::V1_0),
                    mclt: Some(mclt),
                    keepalive_time: Some(20),
                    max_unacked_bndupd: Some(u32::from(*window % 8)),
                    connect_flags: Some(ConnectFlags::EMPTY),
                    extra: Default::default(),
                };
                self.partner_window = Some(u32::from(*window % 8).max(1));
                self.emit(Repr::ConnectReply(r));
            }
            Step::State {
                state,
                flags,
                start_ago,
            } => {
                let s = v6::State {
                    xid: 3,
                    sent_time: self.wire_now(0),
                    server_state: STATES[usize::from(*state) % STATES.len()],
                    server_flags: ServerFlags(*flags & 7),
                    start_time_of_state: self.wire_now(0).saturating_sub(u32::from(*start_ago)),
                    partner_down_time: None,
                    extra: Default::default(),
                };
                self.emit(Repr::State(s));
            }
            Step::Contact => self.emit(Repr::Contact(v6::Contact {
                xid: 4,
                sent_time: self.wire_now(0),
                extra: Default::default(),
            })),
            Step::Disconnect(s) => self.emit(Repr::Disconnect(v6::Disconnect {
                xid: 5,
                sent_time: self.wire_now(0),
                status: Some(StatusCode {
                    status: v6::Status::from(u16::from(*s % 24)),
                    message: Text(b""),
                }),
                extra: Default::default(),
            })),
            Step::BndUpd { xid, duid, leases } => self.bndupd(*xid & MAX_XID, *duid, leases),
            Step::BndReply {
                oldest,
                xid,
                reject,
                top,
            } => {
                let xid = if *oldest {
                    self.in_flight.first().copied().unwrap_or(*xid & MAX_XID)
                } else {
                    *xid & MAX_XID
                };
                self.bndreply(xid, *reject, *top);
            }
            Step::UpdReq => self.emit(Repr::UpdReq(v6::UpdReq {
                xid: 8,
                sent_time: self.wire_now(0),
                extra: Default::default(),
            })),
            Step::UpdReqAll => self.emit(Repr::UpdReqAll(v6::UpdReqAll {
                xid: 9,
                sent_time: self.wire_now(0),
                extra: Default::default(),
            })),
            Step::UpdDone => self.emit(Repr::UpdDone(v6::UpdDone {
                xid: 10,
                sent_time: self.wire_now(0),
                extra: Default::default(),
            })),
            Step::PoolReq => self.emit(Repr::PoolReq(v6::PoolReq {
                xid: 11,
                sent_time: self.wire_now(0),
                extra: Default::default(),
            })),
            Step::PoolResp => self.emit(Repr::PoolResp(v6::PoolResp {
                xid: 12,
                sent_time: self.wire_now(0),
                extra: Default::default(),
            })),
            Step::Commit { fail } => {
                if self.sink.pending.is_empty() {
                    return;
                }
                let (token, addr, client, verdict) = self.sink.pending.remove(0);
                let r = if *fail {
                    self.e
                        .binding_commit_failed(token, RejectReason::UnknownConnectionReason)
                } else {
                    self.store
                        .records
                        .entry(addr)
                        .or_insert(LocalLease::new(BindingStatus::Free))
                        .store_received(client, &verdict);
                    self.e.binding_committed(token)
                };
                if r.is_ok() {
                    self.settled.insert(token.0);
                }
            }
            Step::HoldPersist(hold) => self.hold_persist = *hold,
            Step::PersistDone { fail } => {
                if let Some(token) = self.persist.take() {
                    let r = if *fail {
                        self.e.persist_failed(self.now, token)
                    } else {
                        self.e.persist_complete(token)
                    };
                    assert!(r.is_ok(), "the outstanding persist token: {r:?}");
                }
            }
            Step::SendBinding(h) => {
                let _ = self.e.send_binding(BindingHandle(u32::from(*h)));
            }
            Step::EndOfUpdates => self.e.end_of_updates(),
            Step::PartnerDown { force } => {
                let _ = self.e.partner_down(self.now, *force);
            }
            Step::PoolResponse => self.e.pool_response(0),
        }
    }

    fn bndupd(&mut self, xid: u32, duid: u8, leases: &[LeaseArb]) {
        let at = self.wire_now(0);
        let made: Vec<(IaKind, Lease<'static>)> = leases
            .iter()
            .take(10)
            .map(|l| {
                let addr = lease_addr(l.which);
                let status = BindingStatus::from(l.status % 9);
                let kind = if matches!(addr, LeaseAddr::Prefix { .. }) {
                    IaKind::Pd
                } else {
                    IaKind::Na
                };
                let timed = l.times_out || status == BindingStatus::Active;
                (
                    kind,
                    Lease {
                        addr,
                        preferred_lifetime: 300,
                        valid_lifetime: 600,
                        status: None,
                        vss: None,
                        lq_base_time: None,
                        binding_status: Some(status),
                        start_time_of_state: Some(at.saturating_sub(u32::from(l.ago))),
                        state_expiration_time: timed.then_some(at + 600),
                        clt_time: Some(u32::from(l.ago)),
                        partner_lifetime: timed.then_some(at + 900),
                        partner_raw_clt_time: None,
                        expiration_time: timed.then_some(at + 600),
                        partner_lifetime_sent: None,
                        client_fqdn: None,
                        dns_removal_info: None,
                        extra: Default::default(),
                    },
                )
            })
            .collect();
        let na: Vec<Lease<'static>> = made
            .iter()
            .filter(|m| m.0 == IaKind::Na)
            .map(|m| m.1)
            .collect();
        let pd: Vec<Lease<'static>> = made
            .iter()
            .filter(|m| m.0 == IaKind::Pd)
            .map(|m| m.1)
            .collect();
        let mut ias = Vec::new();
        for (kind, leases) in [(IaKind::Na, &na), (IaKind::Pd, &pd)] {
            if !leases.is_empty() {
                ias.push(Ia {
                    kind,
                    iaid: 1,
                    t1: 0,
                    t2: 0,
                    leases: List::from_slice(leases),
                    status: None,
                    extra: Default::default(),
                });
            }
        }
        let duid = [0, 3, 0, 1, duid];
        self.emit(Repr::BndUpd(v6::BndUpd {
            xid,
            sent_time: at,
            binding: Binding::Client(ClientData {
                status: None,
                client_id: Some(&duid),
                lq_base_time: Some(at),
                vss: None,
                reconfigure: None,
                relay_data: None,
                ias: List::from_slice(&ias),
                extra: Default::default(),
            }),
            extra: Default::default(),
        }));
    }

    fn bndreply(&mut self, xid: u32, reject: u8, top: Option<u8>) {
        let addr = lease_addr(0);
        let lease = Lease {
            addr,
            preferred_lifetime: 300,
            valid_lifetime: 600,
            status: (reject & 1 == 1)
                .then(|| StatusCode::new(v6::Status::OutdatedBindingInformation, "")),
            vss: None,
            lq_base_time: None,
            binding_status: Some(BindingStatus::Active),
            start_time_of_state: None,
            state_expiration_time: None,
            clt_time: None,
            partner_lifetime: None,
            partner_raw_clt_time: None,
            expiration_time: None,
            partner_lifetime_sent: Some(self.wire_now(0) + 900),
            client_fqdn: None,
            dns_removal_info: None,
            extra: Default::default(),
        };
        let ia = [Ia {
            kind: IaKind::Na,
            iaid: 1,
            t1: 0,
            t2: 0,
            leases: List::single(&lease),
            status: None,
            extra: Default::default(),
        }];
        let duid = [0, 3, 0, 1, 0];
        let sent = self.wire_now(0);
        if self.in_flight.contains(&xid) {
            self.in_flight.retain(|x| *x != xid);
        }
        self.emit(Repr::BndReply(v6::BndReply {
            xid,
            sent_time: sent,
            binding: Binding::Client(ClientData {
                status: top.map(|s| StatusCode::new(v6::Status::from(u16::from(s % 24)), "")),
                client_id: Some(&duid),
                lq_base_time: None,
                vss: None,
                reconfigure: None,
                relay_data: None,
                ias: List::from_slice(&ia),
                extra: Default::default(),
            }),
            extra: Default::default(),
        }));
    }

    /// Polls every output and checks each.
    fn drain(&mut self) {
        for _ in 0..1000 {
            let mut moved = false;
            while let Some(a) = self.e.poll_action() {
                moved = true;
                match a {
                    Action::Persist { token, .. } if self.hold_persist => {
                        self.persist = Some(token);
                    }
                    Action::Persist { token, .. } => {
                        assert!(self.e.persist_complete(token).is_ok());
                    }
                    Action::CloseConnection => self.closing = true,
                    _ => {}
                }
            }
            while self.e.poll_event().is_some() {
                moved = true;
            }
            let mut buf = [0u8; 2048];
            self.store.now = self.wall().0;
            while let Some(n) = self.e.poll_transmit(self.now, &mut buf, &self.store) {
                moved = true;
                self.check_sent(&buf[..n]);
            }
            let state = self.e.state();
            assert!(
                !matches!(state, ServerState::Paused | ServerState::Shutdown),
                "RFC 8156 has no {state:?}"
            );
            if state == ServerState::Normal {
                self.outcome.reached_normal = true;
            }
            if !moved {
                return;
            }
        }
        panic!("the engine kept producing output");
    }

    fn check_sent(&mut self, bytes: &[u8]) {
        self.outcome.messages_sent += 1;
        let repr = Repr::parse(bytes)
            .unwrap_or_else(|e| panic!("we wrote an undecodable message: {e}: {bytes:02x?}"));
        let t = repr.message_type();
        assert!(t.is_failover(), "{t:?} on the failover connection");
        let xid = repr.xid();
        assert!(xid <= MAX_XID, "xid {xid:#x} beyond 24 bits (§5.4)");
        match repr {
            Repr::BndUpd(_) => {
                assert_ne!(xid, 0);
                self.outcome.bndupds_sent += 1;
                self.in_flight.push(xid);
                if let Some(w) = self.partner_window {
                    assert!(
                        self.in_flight.len() <= w as usize,
                        "{} BNDUPDs unanswered, the partner allows {w} (§6.1.2)",
                        self.in_flight.len()
                    );
                }
            }
            Repr::BndReply(_) => {
                self.outcome.bndreplies_sent += 1;
                // One answer per BNDUPD received with this xid, each after its commits.
                let settled = &self.settled;
                let updates = self.tokens_of.get_mut(&xid);
                let Some(updates) = updates else {
                    panic!("BNDREPLY {xid} answers no BNDUPD of this connection");
                };
                let Some(i) = updates
                    .iter()
                    .position(|tokens| tokens.iter().all(|t| settled.contains(t)))
                else {
                    panic!("BNDREPLY {xid} before its commits (§7.5.2)");
                };
                updates.remove(i);
            }
            Repr::Disconnect(_) => assert!(self.closing, "DISCONNECT without closing"),
            Repr::ConnectReply(r) if !r.is_accept() => {
                assert!(self.closing, "a rejecting CONNECTREPLY without closing");
            }
            Repr::Connect(_)
            | Repr::State(_)
            | Repr::Contact(_)
            | Repr::UpdReq(_)
            | Repr::UpdReqAll(_)
            | Repr::PoolReq(_) => assert_ne!(xid, 0),
            _ => {}
        }
    }
}

/// Hand-made inputs that reach the interesting places, for the corpus.
pub fn seeds() -> Vec<(&'static str, Setup, Vec<Step>)> {
    let lease = |which, status| LeaseArb {
        which,
        status,
        ago: 3,
        times_out: true,
    };
    let handshake_secondary = vec![
        Step::Wait(20),
        Step::Up,
        Step::Connect {
            mclt: 60,
            version: 1,
            keepalive: 20,
            window: 3,
            skew: 0,
        },
        Step::PersistDone { fail: false },
        Step::State {
            state: 1,
            flags: 0,
            start_ago: 10,
        },
        Step::PersistDone { fail: false },
    ];
    let mut bindings = handshake_secondary.clone();
    bindings.extend([
        Step::BndUpd {
            xid: 100,
            duid: 1,
            leases: vec![lease(0, 1), lease(2, 1)],
        },
        Step::Commit { fail: false },
        Step::Commit { fail: true },
        Step::SendBinding(4),
        Step::SendBinding(6),
        Step::BndReply {
            oldest: true,
            xid: 0,
            reject: 1,
            top: None,
        },
        Step::BndReply {
            oldest: true,
            xid: 0,
            reject: 0,
            top: Some(19),
        },
        Step::UpdReqAll,
        Step::SendBinding(2),
        Step::EndOfUpdates,
        Step::BndReply {
            oldest: true,
            xid: 0,
            reject: 0,
            top: None,
        },
        Step::Wait(30),
        Step::Down,
        Step::Wait(30),
        Step::PartnerDown { force: false },
    ]);
    let primary = vec![
        Step::Wait(20),
        Step::Up,
        Step::ConnectReply {
            status: None,
            mclt_delta: 0,
            window: 2,
            skew: 0,
        },
        Step::PersistDone { fail: false },
        Step::State {
            state: 1,
            flags: 0,
            start_ago: 5,
        },
        Step::PersistDone { fail: false },
        Step::SendBinding(1),
        Step::SendBinding(3),
        Step::SendBinding(5),
        Step::BndReply {
            oldest: true,
            xid: 0,
            reject: 0,
            top: None,
        },
        Step::PoolReq,
        Step::PoolResponse,
        Step::Wait(200),
    ];
    let setup = |secondary| Setup {
        secondary,
        persisted: Some(1),
        lease_table_lost: false,
        window: 2,
    };
    vec![
        ("handshake_secondary", setup(true), handshake_secondary),
        ("bindings_secondary", setup(true), bindings),
        ("primary_sends", setup(false), primary),
        (
            "skewed_connect",
            setup(true),
            vec![
                Step::Up,
                Step::Connect {
                    mclt: 60,
                    version: 1,
                    keepalive: 20,
                    window: 1,
                    skew: 9,
                },
            ],
        ),
    ]
}
