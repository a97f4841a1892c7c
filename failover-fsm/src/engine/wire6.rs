//! RFC 8156 on the wire, for a [`V6`](super::V6) engine: the partner's messages read into the
//! engine's inputs, and ours written (§5.3, §6.1, §6.3–§6.6). Section numbers here are
//! RFC 8156's.
//!
//! The engine decides in draft-12's terms (states, reject reasons); this module maps them at
//! the wire ([`crate::v6::state::to_v4`] / [`from_v4`](crate::v6::state::from_v4),
//! [`crate::v6::status_of`] / [`reason_of`](crate::v6::reason_of)) and converts the times of
//! the 2000 epoch ([`crate::v6::wire_time`]).

use failover_proto::v6::{
    self, ConnectFlags, MessageType, ProtocolVersion, Repr, ServerFlags, StatusCode,
};
use failover_proto::{RejectReason, Role, ServerState, Text};

use super::{Action, Control, Engine, EngineError, Event, Family, Link, V6};
use crate::time::{Instant, UnixTime};
use crate::v6::{reason_of, state, status_of, wire_time};

/// Our clock as a wire time (seconds since 2000); 0 before 2000.
fn to_wire(unix: u32) -> u32 {
    v6::time::from_unix(u64::from(unix)).unwrap_or(0)
}

/// A wire time as Unix seconds (the engine's measure for the partner's clock).
fn from_wire(wire: u32) -> u32 {
    wire_time(wire).0
}

impl<const QUEUE: usize, const COMMITS: usize, const EVENTS: usize, F: Family>
    Engine<QUEUE, COMMITS, EVENTS, F>
{
    /// One whole framed RFC 8156 message from the partner.
    pub(super) fn handle_v6(&mut self, now: Instant, wall: UnixTime, bytes: &[u8]) {
        match Repr::parse(bytes) {
            Ok(repr) => self.handle_repr6(now, wall, repr),
            Err(error) => {
                let msg = v6::Message::new_unchecked(bytes);
                let reason = reason_of(v6::status_for(&error));
                if msg.msg_type() == MessageType::Connect && self.link == Link::AwaitingConnect {
                    // A CONNECT we cannot read: CONNECTREPLY with the reason (§6.1.2).
                    self.push_event(Event::ProtocolError { error });
                    self.reject_connect(now, msg.xid(), reason);
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
        if let Some(status) = a.status.filter(|s| s.status.is_error()) {
            // Rejected (§6.1.3): close, no DISCONNECT.
            let reason = reason_of(status.status);
            self.counters.reject_received(reason);
            self.last_reject = Some(reason);
            self.push_event(Event::ConnectionRejected {
                reason,
                by_partner: true,
            });
            self.close(now);
            return;
        }
        // §6.1.3: an unsupported version or another MCLT → DISCONNECT and drop.
        let reject = if !self.skew_ok(skew) {
            Some(RejectReason::TimeMismatch)
        } else if a
            .protocol_version
            .is_some_and(|v| v.major != ProtocolVersion::V1_0.major)
        {
            Some(RejectReason::VersionMismatch)
        } else if a.mclt.is_some_and(|m| m != self.mclt.current()) {
            Some(RejectReason::InvalidMclt)
        } else {
            None
        };
        if let Some(reason) = reject {
            self.last_reject = Some(reason);
            self.push_event(Event::ConnectionRejected {
                reason,
                by_partner: false,
            });
            self.push_control(Control::Disconnect(reason));
            self.close(now);
            return;
        }
        self.partner_max_unacked = a.max_unacked_bndupd.unwrap_or(1).max(1);
        self.partner_receive_timer = a.keepalive_time.unwrap_or(0);
        self.mclt_agreed(wall);
        // After an accepting CONNECTREPLY the primary MUST send STATE (§6.1.3).
        self.push_control(Control::State);
        self.link = Link::AwaitingState;
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
    /// Binding updates (BNDUPD, BNDREPLY) are not handled by the engine yet: one is answered
    /// as out of place.
    pub fn handle_message(
        &mut self,
        now: Instant,
        wall: UnixTime,
        bytes: &[u8],
    ) -> Result<(), EngineError> {
        if self.begin_message(now, wall)? {
            self.handle_v6(now, wall, bytes);
            self.release_upddone_hold(now, wall);
        }
        Ok(())
    }

    /// Writes the next message to send into `buf` (2048 bytes always suffice for what the
    /// engine sends) and returns its length. Poll until `None` after actions and events;
    /// see [`Engine`] for the order.
    #[must_use]
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        self.transmit(now, buf, |_, _, _, _| None)
    }
}
