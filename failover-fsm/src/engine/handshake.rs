//! The connection: CONNECT / CONNECTACK (§7.8), the partner's STATE (§7.10), closing, and the
//! answers to malformed or out-of-place messages.

use failover_proto::{
    Connect, ConnectAck, DecodeError, DecodeErrorKind, Message, MessageType, PROTOCOL_VERSION,
    RejectReason, ServerState, TlsRequest,
};

use super::Family;
use super::incoming::Incoming;
use super::{Action, Control, Engine, Event, Link, Timer, wrong_type};
use crate::dialect::Dialect;
use crate::time::{Instant, UnixTime};
use crate::transition::StateEvent;

/// How the partner answered our CONNECT.
pub(super) enum ConnectAnswer {
    /// It refused it with this reason.
    Rejected(RejectReason),
    /// It accepted, and we refuse its answer with this reason.
    Refused(RejectReason),
    /// Accepted both ways: its max-unacked-bndupd and receive timer (keep-alive time).
    Accepted {
        max_unacked: u32,
        receive_timer: u32,
    },
}

impl<const QUEUE: usize, const COMMITS: usize, const EVENTS: usize, F: Family>
    Engine<QUEUE, COMMITS, EVENTS, F>
{
    /// Refuses a CONNECT: CONNECTACK with `reason`, then close (§7.8.2).
    pub(super) fn reject_connect(&mut self, now: Instant, xid: u32, reason: RejectReason) {
        self.last_reject = Some(reason);
        self.push_event(Event::ConnectionRejected {
            reason,
            by_partner: false,
        });
        self.push_control(Control::ConnectAck {
            xid,
            reject: Some(reason),
        });
        self.close(now);
    }

    /// Why a CONNECT cannot be accepted (§7.8.2, in ISC's order: relationship, time, (HBA:
    /// checked by the codec), MCLT), measuring the skew on the way.
    fn connect_refusal(&mut self, wall: UnixTime, c: &Connect<'_>) -> Option<RejectReason> {
        let skew = self.skew.measure(wall, c.time);
        let draft = self.config.dialect == Dialect::Draft;
        if c.relationship_name.0 != &self.config.relationship_name[..] {
            Some(RejectReason::InvalidPartner)
        } else if !self.skew_ok(skew) {
            Some(RejectReason::TimeMismatch)
        } else if c.mclt == 0 {
            Some(RejectReason::InvalidMclt)
        } else if draft && c.protocol_version != PROTOCOL_VERSION {
            Some(RejectReason::VersionMismatch)
        } else if draft && c.tls_request == Some(TlsRequest::Required) {
            Some(RejectReason::TlsNotConfigured)
        } else {
            None
        }
    }

    pub(super) fn on_connect(&mut self, now: Instant, wall: UnixTime, c: &Connect<'_>) {
        if let Some(reason) = self.connect_refusal(wall, c) {
            self.reject_connect(now, c.xid, reason);
            return;
        }
        // A new server (no persisted state, no MCLT learned yet) has granted no lease under
        // another MCLT.
        self.mclt.learn(c.mclt, wall, self.had_persisted);
        self.mclt_agreed(wall);
        self.hba = c.hba;
        self.partner_max_unacked = c.max_unacked_bndupd.max(1);
        self.partner_receive_timer = c.receive_timer;
        self.push_control(Control::ConnectAck {
            xid: c.xid,
            reject: None,
        });
        self.push_control(Control::State);
        self.link = Link::AwaitingState;
    }

    pub(super) fn on_connectack(&mut self, now: Instant, wall: UnixTime, a: &ConnectAck<'_>) {
        let skew = self.skew.measure(wall, a.time);
        let answer = if let Some(reason) = a.reject_reason {
            // Rejected: log and close, no DISCONNECT (ISC does the same).
            ConnectAnswer::Rejected(reason)
        } else if a.relationship_name.map(|n| n.0) != Some(&self.config.relationship_name[..]) {
            ConnectAnswer::Refused(RejectReason::InvalidPartner)
        } else if !self.skew_ok(skew) {
            ConnectAnswer::Refused(RejectReason::TimeMismatch)
        } else {
            ConnectAnswer::Accepted {
                max_unacked: a.max_unacked_bndupd.unwrap_or(1),
                receive_timer: a.receive_timer.unwrap_or(0),
            }
        };
        self.connect_answered(now, wall, answer);
    }

    /// The partner's answer to our CONNECT, judged (either family's): its refusal closes
    /// without DISCONNECT; ours sends DISCONNECT, then closes; an acceptance takes the
    /// partner's window and receive timer (keep-alive time) and sends our STATE.
    pub(super) fn connect_answered(&mut self, now: Instant, wall: UnixTime, answer: ConnectAnswer) {
        match answer {
            ConnectAnswer::Rejected(reason) => {
                self.counters.reject_received(reason);
                self.last_reject = Some(reason);
                self.push_event(Event::ConnectionRejected {
                    reason,
                    by_partner: true,
                });
                self.close(now);
            }
            ConnectAnswer::Refused(reason) => {
                self.last_reject = Some(reason);
                self.push_event(Event::ConnectionRejected {
                    reason,
                    by_partner: false,
                });
                self.push_control(Control::Disconnect(reason));
                self.close(now);
            }
            ConnectAnswer::Accepted {
                max_unacked,
                receive_timer,
            } => {
                self.partner_max_unacked = max_unacked.max(1);
                self.partner_receive_timer = receive_timer;
                self.mclt_agreed(wall);
                // Both sides send STATE after an accepting answer (§7.8; RFC 8156 §6.1.3).
                self.push_control(Control::State);
                self.link = Link::AwaitingState;
            }
        }
    }

    /// The agreed MCLT changed to ours: persist it.
    pub(super) fn mclt_agreed(&mut self, wall: UnixTime) {
        if let Some(mclt) = self.mclt.agree(wall) {
            self.persist.set_mclt(mclt);
        }
    }

    pub(super) fn skew_ok(&self, skew: i64) -> bool {
        let limit = if F::IS_V6 {
            // RFC 8156 §7.1: more than 5 s apart is too far, whatever the configuration.
            self.config.max_clock_skew.min(crate::v6::TIME_SKEW_LIMIT)
        } else {
            self.config.max_clock_skew
        };
        skew.unsigned_abs() <= u64::from(limit)
    }

    /// The partner's STATE (§7.10; RFC 8156 §6.4): sent at `sent`, announcing `state` (with
    /// the STARTUP flag `startup`) since `start` — both times the partner's clock, Unix
    /// seconds.
    pub(super) fn on_state(
        &mut self,
        now: Instant,
        wall: UnixTime,
        sent: u32,
        state: ServerState,
        startup: bool,
        start: u32,
    ) {
        self.skew.measure(wall, sent);
        let since = self.partner_time(start);
        let first = self.link == Link::AwaitingState;
        if first {
            self.communications_ok();
        }
        let changed = first || self.partner_state != Some(state) || self.partner_startup != startup;
        self.push_event(Event::PartnerStateChanged {
            state,
            since,
            startup,
        });
        if changed {
            let event = StateEvent::PartnerState {
                state,
                startup,
                since,
            };
            self.run(now, wall, event);
        }
        self.partner_startup = startup;
        self.partner_state = Some(state);
        self.partner_since = Some(since);
        self.state_seen = true;
        if first {
            self.first_state_seen(now, wall);
        }
        // SHUTDOWN lingers only to see the partner take over (§9.14.2): it has.
        if self.state == ServerState::Shutdown
            && state == ServerState::PartnerDown
            && self.timers.is_set(Timer::Linger)
        {
            self.timers.stop(Timer::Linger);
            self.close(now);
        }
    }

    /// The partner's first STATE on this connection: communications are OK (§8.3).
    fn communications_ok(&mut self) {
        self.link = Link::Up;
        self.timers.stop(Timer::Handshake);
        if let Some(last) = self.last_tx.or(self.last_rx) {
            self.timers
                .set(Timer::Contact, last + self.contact_interval());
        }
        self.push_event(Event::CommunicationsOk);
    }

    /// After the partner's first STATE was taken into account.
    fn first_state_seen(&mut self, now: Instant, wall: UnixTime) {
        if self.state == ServerState::Recover {
            self.request_updates_once();
            // What we changed and the partner has not acknowledged (a restart in RECOVER
            // after a SHUTDOWN in PARTNER-DOWN) goes out now, not only on reaching NORMAL.
            self.push_action(Action::SendBacklog);
        }
        if self.state == ServerState::RecoverWait && self.recover_wait_over {
            self.recover_wait_over = false;
            self.run(now, wall, StateEvent::RecoverWaitExpired);
        }
    }

    /// Closes the connection after what is queued (§7.12).
    pub(super) fn close(&mut self, now: Instant) {
        if matches!(self.link, Link::Down | Link::Closing) {
            return;
        }
        let was_up = self.link == Link::Up;
        self.link = Link::Closing;
        self.stop_link_timers();
        let _ = self.control.push_back(Control::Close);
        self.push_action(Action::CloseConnection);
        if was_up {
            self.comm_failed(now);
        }
    }

    /// Drops the connection at once: the partner is not reading (a queue is full).
    pub(super) fn abort_connection(&mut self) {
        let _ = self.control.push_back(Control::Close);
        if self.link != Link::Closing {
            self.link = Link::Closing;
            self.stop_link_timers();
            self.push_action(Action::CloseConnection);
        }
    }

    pub(super) fn protocol_error(
        &mut self,
        now: Instant,
        error: DecodeError,
        reason: RejectReason,
    ) {
        self.push_event(Event::ProtocolError { error });
        self.last_reject = Some(reason);
        self.push_control(Control::Disconnect(reason));
        self.close(now);
    }

    pub(super) fn out_of_place(&mut self, now: Instant, t: MessageType, reason: RejectReason) {
        self.out_of_place_code(now, t.into(), reason);
    }

    /// A message of type `code` where none may come: DISCONNECT with `reason`, then close.
    pub(super) fn out_of_place_code(&mut self, now: Instant, code: u8, reason: RejectReason) {
        self.protocol_error(now, wrong_type(0, code), reason);
    }

    pub(super) fn malformed(&mut self, now: Instant, bytes: &[u8], error: DecodeError) {
        let msg = Message::new_unchecked(bytes);
        let t = msg.msg_type();
        let reason = error.reject_reason();
        match (t, self.link) {
            // A CONNECT we cannot accept: CONNECTACK with the reason, then close (§7.8.2).
            (MessageType::Connect, Link::AwaitingConnect) => {
                self.push_event(Event::ProtocolError { error });
                self.reject_connect(now, msg.xid(), reason);
            }
            // A BNDUPD with an address but incomplete binding data: reject that binding (§7.1.3).
            (MessageType::BndUpd, Link::Up)
                if matches!(error.kind(), DecodeErrorKind::MissingOption(_))
                    && !self.receive_window_full() =>
            {
                let address = msg
                    .options()
                    .map_while(Result::ok)
                    .find(|o| o.code == 2 && o.data.len() == 4)
                    .and_then(|o| <[u8; 4]>::try_from(o.data).ok());
                match address {
                    Some(address) => {
                        self.push_event(Event::ProtocolError { error });
                        self.reject_now(msg.xid(), address, reason);
                    }
                    None => self.protocol_error(now, error, reason),
                }
            }
            _ => self.protocol_error(now, error, reason),
        }
    }

    /// Rejects one binding of a BNDUPD at once (nothing to commit).
    fn reject_now(&mut self, xid: u32, address: [u8; 4], reason: RejectReason) {
        // A BNDUPD all the same, answered like any other.
        super::counters::bump(&mut self.counters.bndupd_received);
        self.last_reject = Some(reason);
        self.push_event(Event::RejectedPartnerBinding { address, reason });
        let token = self.incoming.tokens(1);
        self.keep_incoming(Incoming::reject(xid, token, address, reason));
    }
}
