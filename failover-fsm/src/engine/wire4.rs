//! Draft-12 on the wire, for a [`V4`](super::V4) engine: the partner's messages dispatched to
//! the engine's handlers, the BNDACK written, and what only a DHCPv4 engine offers (its
//! message methods, `send_binding`, PAUSED and SHUTDOWN). RFC 8156's counterpart is
//! `wire6.rs`.

use core::net::Ipv4Addr;

use failover_proto::{
    BindingAck, BindingList, BndAck, MessageType, RejectReason, Repr, Role, ServerFlags,
};
use heapless::Vec;

use super::outgoing::Summary;
use super::{
    Action, CommitSink, Engine, EngineError, Event, Family, LeaseLookup, Link, MAX_BATCH, UpdateId,
    V4, counters, incoming,
};
use crate::binding::{BindingData, BindingSource};
use crate::time::{Instant, UnixTime};
use crate::transition::StateEvent;

impl<const QUEUE: usize, const COMMITS: usize, const EVENTS: usize, F: Family>
    Engine<QUEUE, COMMITS, EVENTS, F>
{
    fn handle_repr(
        &mut self,
        now: Instant,
        wall: UnixTime,
        repr: Repr<'_>,
        db: &impl LeaseLookup,
        commits: &mut impl CommitSink,
    ) {
        match (repr, self.link) {
            (Repr::Connect(c), Link::AwaitingConnect) => self.on_connect(now, wall, &c),
            (Repr::Connect(c), _) => {
                // A second CONNECT on a live link (ISC: reject 7 and close), or a CONNECT to a
                // primary (roles do not match: invalid partner).
                let reason = if self.config.role == Role::Secondary {
                    RejectReason::DuplicateConnection
                } else {
                    RejectReason::InvalidPartner
                };
                self.reject_connect(now, c.xid, reason);
            }
            (Repr::ConnectAck(a), Link::AwaitingConnectAck) => self.on_connectack(now, wall, &a),
            (Repr::ConnectAck(_), _) => {
                let reason = if self.config.role == Role::Primary {
                    RejectReason::DuplicateConnection
                } else {
                    RejectReason::InvalidPartner
                };
                self.out_of_place(now, MessageType::ConnectAck, reason);
            }
            (Repr::Disconnect(d), _) => {
                self.counters.reject_received(d.reject_reason);
                self.last_reject = Some(d.reject_reason);
                self.push_event(Event::PartnerDisconnected {
                    reason: d.reject_reason,
                });
                self.close(now);
            }
            (Repr::Optional(_), _) => {} // §6.1: optional types are ignored.
            (Repr::Contact(_), Link::AwaitingState | Link::Up) => {}
            (Repr::State(s), Link::AwaitingState | Link::Up) => self.on_state(
                now,
                wall,
                s.time,
                s.server_state,
                s.server_flags.contains(ServerFlags::STARTUP),
                s.start_time_of_state,
            ),
            (Repr::BndUpd(u), Link::Up) => {
                counters::bump(&mut self.counters.bndupd_received);
                self.on_bndupd(now, wall, &u, db, commits);
            }
            (Repr::BndAck(a), Link::Up) => {
                counters::bump(&mut self.counters.bndack_received);
                self.on_bndack(&a);
            }
            (Repr::UpdReq(r), Link::Up) => self.on_update_request(r.xid, false),
            (Repr::UpdReqAll(r), Link::Up) => self.on_update_request(r.xid, true),
            (Repr::UpdDone(_), Link::Up) => self.on_upddone(now, wall),
            (Repr::PoolReq(r), Link::Up) => {
                // ISC balances from both roles; the caller decides how many to move.
                self.push_action(Action::PoolRequested);
                self.pending_pool_xid = Some(r.xid);
            }
            (Repr::PoolResp(p), Link::Up) => self.push_event(Event::PoolResponse {
                addresses_transferred: p.addresses_transferred,
            }),
            (repr, _) => {
                // Anything else before communications are OK is out of place (§8.2: CONNECT
                // first, then STATE).
                self.out_of_place(
                    now,
                    repr.message_type(),
                    RejectReason::UnknownConnectionReason,
                );
            }
        }
    }
}

/// What only a DHCPv4 engine does: send draft-12 bindings, pause and shut down (RFC 8156 has
/// neither PAUSED nor SHUTDOWN).
impl<const QUEUE: usize, const COMMITS: usize, const EVENTS: usize>
    Engine<QUEUE, COMMITS, EVENTS, V4>
{
    /// Handles one whole message from the partner (as framed by `failover_proto::Framer`).
    ///
    /// Malformed or out-of-place messages never corrupt state: they get the draft's answer
    /// (a rejecting BNDACK or CONNECTACK, or DISCONNECT and close) and an
    /// [`Event::ProtocolError`]. Returns `Err(EventsPending)` without consuming the message
    /// when events must be polled first.
    ///
    /// `db` answers what the engine needs to judge a received binding (§7.1.3); each binding
    /// of a BNDUPD it accepts goes to `commits` at once (the engine keeps no copy), to be
    /// confirmed with [`binding_committed`](Engine::binding_committed) once durable.
    pub fn handle_message(
        &mut self,
        now: Instant,
        wall: UnixTime,
        bytes: &[u8],
        db: &impl LeaseLookup,
        commits: &mut impl CommitSink,
    ) -> Result<(), EngineError> {
        if self.begin_message(now, wall)? {
            match Repr::parse(bytes) {
                Ok(repr) => self.handle_repr(now, wall, repr, db, commits),
                Err(error) => self.malformed(now, bytes, error),
            }
            self.release_upddone_hold(now, wall);
        }
        Ok(())
    }

    /// Writes the next message to send into `buf` (2048 bytes always suffice) and returns its
    /// length. Poll until `None` after actions and events. Produces no action or event.
    ///
    /// Our BNDUPDs carry the bindings as `bindings` — the caller's store — holds them now (see
    /// [`Engine::send_binding`]).
    ///
    /// A STATE announcing a state change is held, with everything queued after it, until the
    /// [`Action::Persist`] snapshot holding that state is confirmed (§9.2: persist before
    /// announcing); messages queued before it go out.
    #[must_use]
    pub fn poll_transmit<B: BindingSource + ?Sized>(
        &mut self,
        now: Instant,
        buf: &mut [u8],
        bindings: &B,
    ) -> Option<usize> {
        self.transmit(now, buf, |e, now, wall, buf| {
            e.emit_next_binding(now, wall, buf, bindings)
        })
    }

    /// Queues a binding to send to the partner (lazy update, §5.1) and returns the id that
    /// [`Action::BindingAcked`] or [`Action::BindingRejected`] will carry.
    ///
    /// The queue keeps the address and a summary of `binding`, not the binding: when its turn
    /// comes, [`poll_transmit`](Engine::poll_transmit) reads it from the caller's store (a
    /// [`BindingSource`]), which must by then hold this binding or a
    /// newer version of the address.
    ///
    /// * A version of the same address queued and not yet sent is replaced: the queue keeps
    ///   its place, the returned id is a new one, and the acknowledgement carries the new id
    ///   (the replaced id is never acknowledged).
    /// * The same data already queued or in flight is not queued twice: its id is returned.
    /// * A version in flight is followed by this one. Should the connection drop before it is
    ///   acknowledged, the address is sent once again, with the newest id.
    ///
    /// A binding missing what its status requires is refused with
    /// [`EngineError::IncompleteBinding`]; a full queue with [`EngineError::QueueFull`].
    pub fn send_binding(&mut self, binding: &BindingData) -> Result<UpdateId, EngineError> {
        // What the partner would reject as missing binding information (§7.1, reason 3).
        let status = binding.status;
        if (status.requires_client() && binding.hardware_address.is_none())
            || (status == failover_proto::BindingStatus::Active
                && (binding.lease_expiration_time.is_none()
                    || binding.potential_expiration_time.is_none()))
        {
            return Err(EngineError::IncompleteBinding);
        }
        self.outgoing.push(binding.address, Summary::of(binding))
    }

    /// Long stop (§9.14): SHUTDOWN is announced to the partner.
    pub fn shutdown(&mut self, now: Instant) {
        let wall = self.wall_at(now);
        self.run(now, wall, StateEvent::AdminShutdown);
    }

    /// Short stop (§9.13): PAUSED is announced to the partner.
    pub fn pause(&mut self, now: Instant) {
        let wall = self.wall_at(now);
        self.run(now, wall, StateEvent::AdminPause);
    }
}

/// Writes a BNDACK.
pub(super) fn emit_ack(ack: &incoming::Incoming, wall: u32, buf: &mut [u8]) -> Option<usize> {
    let mut list: Vec<BindingAck<'_>, MAX_BATCH> = Vec::new();
    for (addr, outcome) in ack.items.iter() {
        let _ = list.push(BindingAck {
            reject_reason: outcome.flatten(),
            ..BindingAck::accept(Ipv4Addr::from(addr))
        });
    }
    BndAck {
        time: wall,
        xid: ack.xid,
        acks: BindingList::from_slice(&list),
        extra: Default::default(),
        digest: None,
    }
    .emit(buf)
    .ok()
}
