//! RFC 8156 on the wire, for a [`V6`](super::V6) engine: the partner's messages read into the
//! engine's inputs, and ours written (§5.3, §6.1, §6.3–§6.6). Section numbers here are
//! RFC 8156's.
//!
//! The engine decides in draft-12's terms (states, reject reasons); this module maps them at
//! the wire ([`crate::v6::state::to_v4`] / [`from_v4`](crate::v6::state::from_v4),
//! [`crate::v6::status_of`] / [`reason_of`](crate::v6::reason_of)) and converts the times of
//! the 2000 epoch ([`crate::v6::wire_time`]).

use failover_proto::v6::{
    self, Binding, BindingStatus, ClientData, ConnectFlags, Ia, Lease, LeaseAddr, List,
    MessageType, ProtocolVersion, Repr, ServerFlags, StatusCode,
};
use failover_proto::{EncodeError, RejectReason, Role, ServerState, Text};
use heapless::{Deque, Vec};

use super::handshake::ConnectAnswer;
use super::incoming::{Incoming, Items};
use super::{
    Action, CommitToken, Control, Engine, EngineError, Event, Family, Link, MAX_BATCH, UpdateId,
    V6, counters,
};
use crate::time::{Instant, UnixTime};
use crate::v6::accept::{Received, Verdict, judge_update};
use crate::v6::{LocalLease, reason_of, state, status_of, wire_time};

/// Largest received BNDUPD the engine keeps to echo in its BNDREPLY (§7.6): one client's
/// binding with [`MAX_BATCH`] leases takes about 600 bytes. A larger one closes the
/// connection (DISCONNECT), as does one with more leases.
pub const MAX_ECHO: usize = 1024;

/// Answers the engine needs from the caller's DHCPv6 lease database to judge a received
/// BNDUPD (§7.5.4).
pub trait LeaseLookup6 {
    /// The local record of `lease` (an address or a prefix), or `None` when it belongs to no
    /// prefix of this relationship (answered with ConfigurationConflict, §7.5.4).
    fn lookup(&self, lease: LeaseAddr) -> Option<LocalLease>;
}

/// Where a V6 engine hands, while it reads a message, each lease of the partner's BNDUPDs it
/// accepts (§7.5.5) and each answer the partner's BNDREPLYs give to ours (§7.7).
pub trait UpdateSink6 {
    /// Store `lease` (of IA `ia` of `binding`; `ia` is `None` for a clientless prefix) as
    /// `verdict` says ([`LocalLease::store_received`]), then confirm with
    /// [`Engine::binding_committed`] (or [`Engine::binding_commit_failed`]) once it is on
    /// stable storage: the BNDREPLY waits for every lease of the BNDUPD (§7.5.2).
    fn commit(
        &mut self,
        token: CommitToken,
        binding: &Binding<'_>,
        ia: Option<&Ia<'_>>,
        lease: &Lease<'_>,
        verdict: &Verdict,
    );

    /// A lease of the partner's BNDUPD judged and refused with `status` (§7.5.4): its BNDREPLY
    /// says so. For logging; nothing to store (by default, nothing is done).
    fn refused(
        &mut self,
        binding: &Binding<'_>,
        ia: Option<&Ia<'_>>,
        lease: &Lease<'_>,
        status: v6::Status,
    ) {
        let _ = (binding, ia, lease, status);
    }

    /// The partner answered our update `update` of `handle` for `lease` (the BNDREPLY's
    /// echo): `Ok` accepted ([`LocalLease::store_ack`] with its binding-status and
    /// partner-lifetime-sent), `Err` rejected with that status (§7.7: only remember it; an
    /// error at the CLIENT_DATA or IA level rejects every lease under it).
    fn acked(
        &mut self,
        update: UpdateId,
        handle: BindingHandle,
        lease: &Lease<'_>,
        outcome: Result<(), v6::Status>,
    );
}

/// The caller's name for one of its bindings (a client's, or a clientless delegable prefix):
/// what [`Engine::send_binding`] queues and [`BindingSource6`] reads back. One BNDUPD carries
/// one binding (§5.3.1), so the queue keeps the handle, not the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct BindingHandle(pub u32);

/// The caller's DHCPv6 bindings as they are now, read when their BNDUPD is written.
pub trait BindingSource6 {
    /// Calls `write` with the current binding of `handle` — its OPTION_CLIENT_DATA (leases
    /// built with [`LocalLease::update_lease`]) or its top-level OPTION_IAPREFIX — and returns
    /// what it returned; `None` when the store no longer holds it (the update is dropped).
    fn binding<R>(&self, handle: BindingHandle, write: impl FnOnce(&Binding<'_>) -> R)
    -> Option<R>;
}

/// One received BNDUPD, kept whole until its BNDREPLY is written.
#[derive(Debug, Clone)]
pub struct Echo {
    xid: u32,
    bytes: Vec<u8, MAX_ECHO>,
}

/// Where the engine keeps received BNDUPDs until they are answered (see
/// [`Family`](super::Family)).
pub trait EchoStore {
    /// Keeps `bytes` for the answer to `xid`; `false` when they do not fit.
    fn keep(&mut self, xid: u32, bytes: &[u8]) -> bool;
    /// Takes back what was kept for `xid`.
    fn take(&mut self, xid: u32) -> Option<Echo>;
    /// Forgets everything (the connection went: its answers go with it).
    fn clear(&mut self);
}

/// A draft-12 BNDACK echoes nothing the engine does not keep anyway.
#[derive(Debug, Default)]
pub struct NoEchoes;

impl EchoStore for NoEchoes {
    fn keep(&mut self, _: u32, _: &[u8]) -> bool {
        false
    }
    fn take(&mut self, _: u32) -> Option<Echo> {
        None
    }
    fn clear(&mut self) {}
}

/// RFC 8156: up to `N` BNDUPDs (the engine's commit capacity) of [`MAX_ECHO`] bytes.
#[derive(Debug, Default)]
pub struct Echoes<const N: usize>(Deque<Echo, N>);

impl<const N: usize> EchoStore for Echoes<N> {
    fn keep(&mut self, xid: u32, bytes: &[u8]) -> bool {
        let Ok(bytes) = Vec::from_slice(bytes) else {
            return false;
        };
        self.0.push_back(Echo { xid, bytes }).is_ok()
    }

    fn take(&mut self, xid: u32) -> Option<Echo> {
        let idx = self.0.iter().position(|e| e.xid == xid)?;
        super::take_at(&mut self.0, idx)
    }

    fn clear(&mut self) {
        self.0.clear();
    }
}

/// Our clock as a wire time (seconds since 2000); 0 before 2000.
fn to_wire(unix: u32) -> u32 {
    v6::time::from_unix(u64::from(unix)).unwrap_or(0)
}

/// A wire time as Unix seconds (the engine's measure for the partner's clock).
fn from_wire(wire: u32) -> u32 {
    wire_time(wire).0
}

/// A received lease as its BNDREPLY acknowledges it (§7.6): the address or prefix and the
/// lifetimes as received (*reading*: the RFC lists only the address), binding-status and
/// state-expiration-time as received, partner-lifetime-sent the exact echo of the received
/// partner-lifetime, and the status code of a rejection.
fn echo_lease<'a>(lease: &Lease<'a>, rejection: Option<StatusCode<'a>>) -> Lease<'a> {
    Lease {
        addr: lease.addr,
        preferred_lifetime: lease.preferred_lifetime,
        valid_lifetime: lease.valid_lifetime,
        status: rejection,
        vss: lease.vss,
        lq_base_time: None,
        binding_status: lease.binding_status,
        start_time_of_state: None,
        state_expiration_time: lease.state_expiration_time,
        clt_time: None,
        partner_lifetime: None,
        partner_raw_clt_time: None,
        expiration_time: None,
        partner_lifetime_sent: lease.partner_lifetime,
        client_fqdn: None,
        dns_removal_info: None,
        extra: Default::default(),
    }
}

impl<const QUEUE: usize, const COMMITS: usize, const EVENTS: usize, F: Family>
    Engine<QUEUE, COMMITS, EVENTS, F>
{
    /// One whole framed RFC 8156 message from the partner.
    fn handle_v6(
        &mut self,
        now: Instant,
        wall: UnixTime,
        bytes: &[u8],
        db: &impl LeaseLookup6,
        commits: &mut impl UpdateSink6,
    ) {
        match Repr::parse(bytes) {
            Ok(Repr::BndUpd(u)) if self.link == Link::Up => {
                counters::bump(&mut self.counters.bndupd_received);
                self.on_bndupd6(now, wall, &u, bytes, db, commits);
            }
            Ok(Repr::BndReply(r)) if self.link == Link::Up => {
                counters::bump(&mut self.counters.bndack_received);
                self.on_bndreply6(&r, commits);
            }
            Ok(repr) => self.handle_repr6(now, wall, repr),
            Err(error) => {
                let msg = v6::Message::new_unchecked(bytes);
                let status = v6::status_for(&error);
                let reason = reason_of(status);
                if msg.msg_type() == MessageType::Connect && self.link == Link::AwaitingConnect {
                    // A CONNECT we cannot read: CONNECTREPLY with the reason (§6.1.2).
                    self.push_event(Event::ProtocolError { error });
                    self.reject_connect(now, msg.xid(), reason);
                } else if msg.msg_type() == MessageType::BndUpd
                    && self.link == Link::Up
                    && status == v6::Status::MissingBindingInformation
                    && !self.receive_window_full()
                    && self.echoes.keep(msg.xid(), bytes)
                {
                    // A binding lacking what §7.4 requires: its BNDREPLY says so (§7.5.3),
                    // the connection stays.
                    counters::bump(&mut self.counters.bndupd_received);
                    self.push_event(Event::ProtocolError { error });
                    self.last_reject = Some(reason);
                    let mut items = Items::new();
                    let _ = items.push(([0; 4], Some(Some(reason))));
                    let first_token = self.incoming.tokens(1);
                    self.keep_incoming(Incoming {
                        xid: msg.xid(),
                        first_token,
                        items,
                    });
                } else {
                    self.protocol_error(now, error, reason);
                }
            }
        }
    }

    fn handle_repr6(&mut self, now: Instant, wall: UnixTime, repr: Repr<'_>) {
        match (repr, self.link) {
            (Repr::Connect(c), Link::AwaitingConnect) => self.on_connect6(now, wall, &c),
            (Repr::Connect(c), _) => {
                // Only the primary connects (§6.1): a CONNECT to a primary, or a second one.
                let reason = if self.config.role == Role::Secondary {
                    RejectReason::DuplicateConnection
                } else {
                    RejectReason::InvalidPartner
                };
                self.reject_connect(now, c.xid, reason);
            }
            (Repr::ConnectReply(a), Link::AwaitingConnectAck) => {
                self.on_connectreply6(now, wall, &a);
            }
            (Repr::Disconnect(d), _)
                if d.status.map(|s| s.status) == Some(v6::Status::ServerShuttingDown) =>
            {
                // An orderly stop (§5.6): nothing refused, nothing to count as a rejection.
                self.push_event(Event::PartnerShuttingDown);
                self.close(now);
            }
            (Repr::Disconnect(d), _) => {
                let reason = d.status.map_or(RejectReason::UnknownConnectionReason, |s| {
                    reason_of(s.status)
                });
                self.counters.reject_received(reason);
                self.last_reject = Some(reason);
                self.push_event(Event::PartnerDisconnected { reason });
                self.close(now);
            }
            (Repr::Contact(_), Link::AwaitingState | Link::Up) => {}
            (Repr::State(s), Link::AwaitingState | Link::Up) => self.on_state(
                now,
                wall,
                from_wire(s.sent_time),
                state::to_v4(s.server_state),
                s.server_flags.contains(ServerFlags::STARTUP),
                from_wire(s.start_time_of_state),
            ),
            (Repr::UpdReq(r), Link::Up) => self.on_update_request(r.xid, false),
            (Repr::UpdReqAll(r), Link::Up) => self.on_update_request(r.xid, true),
            (Repr::UpdDone(_), Link::Up) => self.on_upddone(now, wall),
            (Repr::PoolReq(r), Link::Up) => {
                // §5.3.3: the secondary asks; the caller plans the prefixes to move
                // (`v6::pool`) and answers with `pool_response`.
                self.push_action(Action::PoolRequested);
                self.pending_pool_xid = Some(r.xid);
            }
            // POOLRESP only says the POOLREQ arrived (§5.3.4): it counts nothing.
            (Repr::PoolResp(_), Link::Up) => self.push_event(Event::PoolResponse {
                addresses_transferred: 0,
            }),
            (repr, _) => {
                // CONNECT first, then STATE (§6.1); STARTTLS only before CONNECT (§6.1, §10);
                // binding updates are not carried by this engine yet.
                let code = u8::from(repr.message_type());
                self.out_of_place_code(now, code, RejectReason::UnknownConnectionReason);
            }
        }
    }

    /// A BNDUPD from the partner (§7.5): each lease is judged (Figure 4); the accepted ones
    /// go to the caller to commit, and the BNDREPLY waits for those commits (§7.5.2).
    fn on_bndupd6(
        &mut self,
        now: Instant,
        wall: UnixTime,
        u: &v6::BndUpd<'_>,
        bytes: &[u8],
        db: &impl LeaseLookup6,
        commits: &mut impl UpdateSink6,
    ) {
        self.skew.measure(wall, from_wire(u.sent_time));
        let (ias, leases) = match &u.binding {
            Binding::Client(c) => (
                c.ias.len(),
                c.ias.iter().map(|ia| ia.leases.len()).sum::<usize>(),
            ),
            Binding::Prefix(_) => (0, 1),
        };
        if self.receive_window_full()
            || leases > MAX_BATCH
            || ias > MAX_BATCH
            || !self.echoes.keep(u.xid, bytes)
        {
            // More BNDUPDs unanswered than the max-unacked-bndupd we advertised (§6.1.2:
            // the partner MUST NOT), or a binding too big to keep for its BNDREPLY.
            let error = super::wrong_type(24, 24);
            self.protocol_error(now, error, RejectReason::UnknownConnectionReason);
            return;
        }
        let first_token = self.incoming.tokens(leases);
        let mut incoming = Incoming {
            xid: u.xid,
            first_token,
            items: Items::new(),
        };
        let mut token = first_token;
        let mut judge = |e: &mut Self, ia: Option<&Ia<'_>>, lease: &Lease<'_>, r: Received| {
            let local = if e.refresh_from_partner {
                // Our table is lost or old: take the partner's as an empty table would.
                Some(LocalLease::new(BindingStatus::Free))
            } else {
                db.lookup(lease.addr)
            };
            let outcome = match judge_update(e.config.role, local.as_ref(), &r, wall) {
                Ok(verdict) => {
                    commits.commit(CommitToken(token), &u.binding, ia, lease, &verdict);
                    None
                }
                Err(status) => {
                    commits.refused(&u.binding, ia, lease, status);
                    let reason = reason_of(status);
                    e.last_reject = Some(reason);
                    Some(Some(reason))
                }
            };
            token += 1;
            // Leases are counted and bounded above; the item's address is unused for v6.
            let _ = incoming.items.push(([0; 4], outcome));
        };
        match &u.binding {
            Binding::Client(c) => {
                for ia in c.ias.iter() {
                    for lease in ia.leases.iter() {
                        judge(self, Some(&ia), &lease, Received::of_client(c, &ia, &lease));
                    }
                }
            }
            Binding::Prefix(p) => judge(self, None, p, Received::of_lease(p)),
        }
        self.keep_incoming(incoming);
    }

    /// The BNDREPLY answering `ack` (§7.6): its BNDUPD's binding echoed, each lease with its
    /// binding-status, state-expiration-time, the received partner-lifetime as
    /// partner-lifetime-sent, and a status code where it was rejected.
    pub(super) fn emit_reply6(
        &mut self,
        ack: &Incoming,
        wall: u32,
        buf: &mut [u8],
    ) -> Option<usize> {
        let echo = self.echoes.take(ack.xid)?;
        let rejection = |i: usize| {
            let reason = ack
                .items
                .get(i)
                .and_then(|(_, outcome)| outcome.flatten())?;
            Some(StatusCode {
                status: status_of(reason),
                message: Text(reason.description().as_bytes()),
            })
        };
        let sent_time = to_wire(wall);
        let Ok(Repr::BndUpd(u)) = Repr::parse(&echo.bytes) else {
            // Unreadable (missing binding information): a CLIENT_DATA with the status alone.
            return v6::BndReply {
                xid: ack.xid,
                sent_time,
                binding: Binding::Client(ClientData {
                    status: rejection(0),
                    client_id: None,
                    lq_base_time: None,
                    vss: None,
                    reconfigure: None,
                    relay_data: None,
                    ias: List::EMPTY,
                    extra: Default::default(),
                }),
                extra: Default::default(),
            }
            .emit(buf)
            .ok();
        };
        match u.binding {
            Binding::Prefix(p) => v6::BndReply {
                xid: u.xid,
                sent_time,
                binding: Binding::Prefix(echo_lease(&p, rejection(0))),
                extra: Default::default(),
            }
            .emit(buf)
            .ok(),
            Binding::Client(c) => {
                let mut leases: Vec<Vec<Lease<'_>, MAX_BATCH>, MAX_BATCH> = Vec::new();
                let mut i = 0;
                for ia in c.ias.iter() {
                    let mut these = Vec::new();
                    for lease in ia.leases.iter() {
                        let _ = these.push(echo_lease(&lease, rejection(i)));
                        i += 1;
                    }
                    let _ = leases.push(these);
                }
                let mut ias: Vec<Ia<'_>, MAX_BATCH> = Vec::new();
                for (ia, these) in c.ias.iter().zip(leases.iter()) {
                    let _ = ias.push(Ia {
                        leases: List::from_slice(these),
                        status: None,
                        extra: Default::default(),
                        ..ia
                    });
                }
                let client = ClientData {
                    status: None,
                    client_id: c.client_id,
                    lq_base_time: None,
                    vss: c.vss,
                    reconfigure: None,
                    relay_data: None,
                    ias: List::from_slice(&ias),
                    extra: Default::default(),
                };
                v6::BndReply {
                    xid: u.xid,
                    sent_time,
                    binding: Binding::Client(client),
                    extra: Default::default(),
                }
                .emit(buf)
                .ok()
            }
        }
    }

    /// The partner's BNDREPLY to one of our BNDUPDs (§7.7): each lease's outcome goes to the
    /// caller; an error status at a level rejects everything under it.
    fn on_bndreply6(&mut self, r: &v6::BndReply<'_>, sink: &mut impl UpdateSink6) {
        let Some(o) = self.outgoing.take_answered_xid(r.xid) else {
            return; // unknown or stale xid (an answer for a dead connection's update)
        };
        self.skew.raise_floor(o.sent, from_wire(r.sent_time));
        let (update, handle) = (UpdateId(o.id), BindingHandle(u32::from_be_bytes(o.address)));
        let error = |s: Option<StatusCode<'_>>| s.map(|s| s.status).filter(|s| s.is_error());
        let mut rejected = None;
        let mut answer = |lease: &Lease<'_>, above: Option<v6::Status>| {
            let outcome = match above.or(error(lease.status)) {
                Some(status) => {
                    rejected = Some(status);
                    Err(status)
                }
                None => Ok(()),
            };
            sink.acked(update, handle, lease, outcome);
        };
        match &r.binding {
            Binding::Client(c) => {
                let top = error(c.status);
                for ia in c.ias.iter() {
                    let above = top.or(error(ia.status));
                    for lease in ia.leases.iter() {
                        answer(&lease, above);
                    }
                }
            }
            Binding::Prefix(p) => answer(p, None),
        }
        if let Some(status) = rejected {
            let reason = reason_of(status);
            self.counters.reject_received(reason);
            self.last_reject = Some(reason);
        }
        self.release_pd_hold();
        self.check_upddone();
    }

    /// Why a CONNECT cannot be accepted (§6.1.2), measuring the skew on the way.
    fn connect_refusal6(&mut self, wall: UnixTime, c: &v6::Connect<'_>) -> Option<RejectReason> {
        let skew = self.skew.measure(wall, from_wire(c.sent_time));
        let name = c.relationship_name.map(|n| n.0);
        if !self.skew_ok(skew) {
            Some(RejectReason::TimeMismatch)
        } else if c.protocol_version.major != ProtocolVersion::V1_0.major {
            Some(RejectReason::VersionMismatch)
        } else if name.is_some_and(|n| n != &self.config.relationship_name[..]) {
            // *reading*: §6.1.2 names no status for an unknown relationship.
            Some(RejectReason::InvalidPartner)
        } else if c.mclt == 0 {
            Some(RejectReason::InvalidMclt)
        } else {
            None
        }
    }

    fn on_connect6(&mut self, now: Instant, wall: UnixTime, c: &v6::Connect<'_>) {
        if let Some(reason) = self.connect_refusal6(wall, c) {
            self.reject_connect(now, c.xid, reason);
            return;
        }
        // The secondary adopts the primary's MCLT (§6.1.2).
        self.mclt.learn(c.mclt, wall, self.had_persisted);
        self.mclt_agreed(wall);
        self.partner_max_unacked = c.max_unacked_bndupd.max(1);
        self.partner_receive_timer = c.keepalive_time;
        self.push_control(Control::ConnectAck {
            xid: c.xid,
            reject: None,
        });
        // After an accepting CONNECTREPLY the secondary MUST send STATE (§6.1.2).
        self.push_control(Control::State);
        self.link = Link::AwaitingState;
    }

    fn on_connectreply6(&mut self, now: Instant, wall: UnixTime, a: &v6::ConnectReply<'_>) {
        let skew = self.skew.measure(wall, from_wire(a.sent_time));
        // §6.1.3: a rejection closes; an unsupported version or another MCLT → DISCONNECT.
        let answer = if let Some(status) = a.status.filter(|s| s.status.is_error()) {
            ConnectAnswer::Rejected(reason_of(status.status))
        } else if !self.skew_ok(skew) {
            ConnectAnswer::Refused(RejectReason::TimeMismatch)
        } else if a
            .protocol_version
            .is_some_and(|v| v.major != ProtocolVersion::V1_0.major)
        {
            ConnectAnswer::Refused(RejectReason::VersionMismatch)
        } else if a.mclt.is_some_and(|m| m != self.mclt.current()) {
            ConnectAnswer::Refused(RejectReason::InvalidMclt)
        } else {
            ConnectAnswer::Accepted {
                max_unacked: a.max_unacked_bndupd.unwrap_or(1),
                receive_timer: a.keepalive_time.unwrap_or(0),
            }
        };
        self.connect_answered(now, wall, answer);
    }

    /// Writes control message `c` (xid `xid`, our clock `wall`) as RFC 8156 has it.
    pub(super) fn emit_control6(
        &self,
        c: Control,
        xid: u32,
        wall: u32,
        buf: &mut [u8],
    ) -> Option<usize> {
        let sent_time = to_wire(wall);
        let name = (!self.config.relationship_name.is_empty())
            .then_some(Text(&self.config.relationship_name));
        let status = |reason: RejectReason| StatusCode {
            status: status_of(reason),
            message: Text(reason.description().as_bytes()),
        };
        let n = match c {
            Control::Connect => v6::Connect {
                xid,
                sent_time,
                protocol_version: ProtocolVersion::V1_0,
                mclt: self.mclt.current(),
                keepalive_time: self.config.receive_timer,
                max_unacked_bndupd: self.config.max_unacked_bndupd,
                relationship_name: name,
                connect_flags: ConnectFlags::EMPTY,
                extra: Default::default(),
            }
            .emit(buf),
            Control::ConnectAck { reject, .. } => {
                let accept = reject.is_none();
                v6::ConnectReply {
                    xid,
                    sent_time,
                    status: reject.map(status),
                    protocol_version: Some(ProtocolVersion::V1_0),
                    mclt: accept.then(|| self.mclt.current()),
                    keepalive_time: accept.then_some(self.config.receive_timer),
                    max_unacked_bndupd: accept.then_some(self.config.max_unacked_bndupd),
                    connect_flags: accept.then_some(ConnectFlags::EMPTY),
                    extra: Default::default(),
                }
                .emit(buf)
            }
            Control::State => {
                let (announced, flags, since) = self.announced_state();
                let mut server_flags = ServerFlags::EMPTY;
                if flags.contains(failover_proto::ServerFlags::STARTUP) {
                    server_flags = server_flags.union(ServerFlags::STARTUP);
                }
                // *reading*: C = communicated with the partner since this start (§5.5.15).
                if self.partner_state.is_some() {
                    server_flags = server_flags.union(ServerFlags::COMMUNICATED);
                }
                if self.partner_startup {
                    server_flags = server_flags.union(ServerFlags::ACK_STARTUP);
                }
                // A state RFC 8156 lacks never occurs in a V6 engine (no command leads there,
                // `step_v4` stays instead); should one, RECOVER is the safe claim.
                let server_state = state::from_v4(announced).unwrap_or(v6::ServerState::Recover);
                v6::State {
                    xid,
                    sent_time,
                    server_state,
                    server_flags,
                    start_time_of_state: to_wire(since.0),
                    // §6.3: present iff in PARTNER-DOWN; its entry time (*reading*, §5.5.9).
                    partner_down_time: (announced == ServerState::PartnerDown)
                        .then(|| to_wire(since.0)),
                    extra: Default::default(),
                }
                .emit(buf)
            }
            Control::Contact => v6::Contact {
                xid,
                sent_time,
                ..Default::default()
            }
            .emit(buf),
            Control::Disconnect(reason) => v6::Disconnect {
                xid,
                sent_time,
                status: Some(status(reason)),
                extra: Default::default(),
            }
            .emit(buf),
            Control::ShuttingDown => v6::Disconnect {
                xid,
                sent_time,
                status: Some(StatusCode::new(
                    v6::Status::ServerShuttingDown,
                    "server shutting down",
                )),
                extra: Default::default(),
            }
            .emit(buf),
            Control::UpdReq => v6::UpdReq {
                xid,
                sent_time,
                ..Default::default()
            }
            .emit(buf),
            Control::UpdReqAll => v6::UpdReqAll {
                xid,
                sent_time,
                ..Default::default()
            }
            .emit(buf),
            Control::UpdDone { .. } => v6::UpdDone {
                xid,
                sent_time,
                ..Default::default()
            }
            .emit(buf),
            Control::PoolReq => v6::PoolReq {
                xid,
                sent_time,
                ..Default::default()
            }
            .emit(buf),
            Control::PoolResp { .. } => v6::PoolResp {
                xid,
                sent_time,
                ..Default::default()
            }
            .emit(buf),
            Control::Close => return None,
        };
        n.ok()
    }
}

/// What a DHCPv6 engine offers in place of the DHCPv4 one's message methods.
impl<const QUEUE: usize, const COMMITS: usize, const EVENTS: usize>
    Engine<QUEUE, COMMITS, EVENTS, V6>
{
    /// Handles one whole message from the partner, as framed by
    /// `failover_proto::v6::Framer` (2-byte message-size first, §5.1).
    ///
    /// Malformed or out-of-place messages never corrupt state: a CONNECT we cannot accept
    /// gets a CONNECTREPLY with the status code (§6.1.2), anything else DISCONNECT with one,
    /// then close; both with an [`Event::ProtocolError`]. Returns `Err(EventsPending)` without
    /// consuming the message when events must be polled first.
    ///
    /// `db` answers what the engine needs to judge a received lease (§7.5.4); each lease of a
    /// BNDUPD it accepts goes to `commits` at once, to be confirmed with
    /// [`binding_committed`](Engine::binding_committed) once durable; the BNDREPLY goes out
    /// when every lease of the BNDUPD is settled.
    pub fn handle_message(
        &mut self,
        now: Instant,
        wall: UnixTime,
        bytes: &[u8],
        db: &impl LeaseLookup6,
        commits: &mut impl UpdateSink6,
    ) -> Result<(), EngineError> {
        if self.begin_message(now, wall)? {
            self.handle_v6(now, wall, bytes, db, commits);
            self.release_upddone_hold(now, wall);
        }
        Ok(())
    }

    /// Stops in order: DISCONNECT with ServerShuttingDown (§5.6), then close. RFC 8156 has no
    /// SHUTDOWN state (draft-12's [`Engine::shutdown`] of a V4 engine): the partner goes to
    /// COMMUNICATIONS-INTERRUPTED, and so do we.
    pub fn shutdown(&mut self, now: Instant) {
        if matches!(self.link, Link::Down | Link::Closing) {
            return;
        }
        self.push_control(Control::ShuttingDown);
        self.close(now);
    }

    /// Queues binding `handle` to send to the partner (lazy update, §4.3) and returns the id
    /// its answers ([`UpdateSink6::acked`]) carry. The queue keeps the handle: when its turn
    /// comes, [`poll_transmit`](Engine::poll_transmit) reads the binding from the caller's
    /// store as it is then. A version not sent yet is replaced (a new id, the same place);
    /// one in flight is followed by this one. `Err(QueueFull)`: retry after answers free
    /// space.
    pub fn send_binding(&mut self, handle: BindingHandle) -> Result<UpdateId, EngineError> {
        self.outgoing.push_version(handle.0.to_be_bytes())
    }

    /// Writes the next message to send into `buf` and returns its length: `buf` must hold
    /// the largest binding `bindings` writes (2048 bytes hold everything else). Poll until
    /// `None` after actions and events; see [`Engine`] for the order. Our BNDUPDs carry the
    /// bindings as `bindings` holds them now, one binding a BNDUPD, no more in flight than
    /// the partner's max-unacked-bndupd (§6.1.2).
    #[must_use]
    pub fn poll_transmit(
        &mut self,
        now: Instant,
        buf: &mut [u8],
        bindings: &impl BindingSource6,
    ) -> Option<usize> {
        self.transmit(now, buf, |e, now, wall, buf| {
            let sent_time = to_wire(wall);
            e.emit_next_update(now, buf, |queue, idx, xid, buf| {
                queue.send_with(idx, xid, wall, buf, |key, buf| {
                    let handle = BindingHandle(u32::from_be_bytes(key));
                    let written = bindings.binding(handle, |binding| {
                        v6::BndUpd {
                            xid,
                            sent_time,
                            binding: *binding,
                            extra: Default::default(),
                        }
                        .emit(buf)
                    })?;
                    match written {
                        Ok(n) => Some(Some(n)),
                        // The caller's buffer: the update waits for a poll with room.
                        Err(EncodeError::BufferTooSmall { .. }) => Some(None),
                        // A binding no partner could read (a prefix in an IA_NA, over 64 KiB):
                        // dropped and counted like one the store no longer holds, so it does
                        // not hold up every update behind it.
                        Err(_) => None,
                    }
                })
            })
        })
    }
}
