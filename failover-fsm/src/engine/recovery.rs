//! Update requests (UPDREQ, UPDREQALL, UPDDONE: §7.3–§7.5) and the holds that keep a state
//! announcement behind the bindings it depends on.

use failover_proto::ServerState;

use super::Family;
use super::{Action, Control, Engine, Event, Link};
use crate::dialect::Dialect;
use crate::time::{Instant, UnixTime};
use crate::transition::StateEvent;

/// After PARTNER-DOWN → NORMAL (the partner reported RECOVER-DONE, §9.4.3), STATE keeps
/// announcing PARTNER-DOWN until every binding queued by then — what we did in PARTNER-DOWN,
/// possibly with addresses of the partner's pool, and the backlog the caller queued on
/// entering NORMAL — is acknowledged. The partner leaves RECOVER-DONE for NORMAL (and starts
/// allocating from its pool) only on our NORMAL; announcing it at once, ahead of the queued
/// BNDUPDs, let the partner hand out addresses we had leased.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PdHold {
    Off,
    /// Entered NORMAL; the hold is fixed once the caller has queued its backlog. Carries the
    /// start time of PARTNER-DOWN.
    Armed(UnixTime),
    /// Until our bindings up to this sequence number are acknowledged.
    Until(u64, UnixTime),
}

/// The partner's outstanding UPDREQ/UPDREQALL that we are answering.
#[derive(Debug, Clone, Copy)]
pub(super) struct PartnerRequest {
    pub(super) xid: u32,
    /// Set by `end_of_updates`: UPDDONE once every binding queued up to this sequence is acked.
    pub(super) until_seq: Option<u64>,
}

/// Update requests in both directions on the current connection.
#[derive(Debug, Clone, Default)]
pub(super) struct Requests {
    /// The partner's request we are answering.
    pub(super) partner: Option<PartnerRequest>,
    /// The xid of our outstanding request.
    pub(super) ours: Option<u32>,
    /// Our outstanding request is an UPDREQALL.
    pub(super) ours_all: bool,
    /// The partner's UPDDONE came while bindings of ours up to this sequence number were
    /// still unacknowledged: RECOVER is left once they are.
    pub(super) upddone_hold: Option<u64>,
}

impl Requests {
    /// The connection is gone: requests die with it.
    pub(super) fn connection_lost(&mut self) {
        self.partner = None;
        self.ours = None;
        self.upddone_hold = None;
    }
}

impl<const QUEUE: usize, const COMMITS: usize, const EVENTS: usize, F: Family>
    Engine<QUEUE, COMMITS, EVENTS, F>
{
    /// The partner asks for our bindings (all, or those it has not acknowledged).
    pub(super) fn on_update_request(&mut self, xid: u32, all: bool) {
        // A newer request replaces one still being answered (ISC: "silently discarding").
        if self.refresh_from_partner {
            // Our own table is being refreshed from the partner (lost, or an older copy
            // restored): nothing in it is worth sending, and a stale record would overwrite the
            // partner's current one while the partner's overwrites ours (both recovering, found
            // by the simulator: seed 97404). Answer at once, with what we already queued.
            self.requests.partner = Some(PartnerRequest {
                xid,
                until_seq: Some(self.outgoing.last_seq()),
            });
            self.check_upddone();
            return;
        }
        self.requests.partner = Some(PartnerRequest {
            xid,
            until_seq: None,
        });
        self.push_action(if all {
            Action::SendAllBindings
        } else {
            Action::SendUnackedBindings
        });
    }

    /// UPDDONE once everything the partner asked for is acknowledged (§7.5).
    pub(super) fn check_upddone(&mut self) {
        let Some(PartnerRequest {
            xid,
            until_seq: Some(until),
        }) = self.requests.partner
        else {
            return;
        };
        if self.outgoing.done_through(until) {
            self.requests.partner = None;
            self.push_control(Control::UpdDone { xid });
        }
    }

    /// The partner's UPDDONE: our request is answered.
    pub(super) fn on_upddone(&mut self, now: Instant, wall: UnixTime) {
        if self.requests.ours.take().is_none() {
            return;
        }
        if self.requests.ours_all {
            self.lost_storage = false;
            if self.refresh_from_partner {
                self.refresh_from_partner = false;
                self.persist.set_lease_table_lost(false);
            }
        }
        self.push_event(Event::UpdatesReceived);
        if self.state == ServerState::Recover && !self.outgoing.is_empty() {
            // Our own changes go first: RECOVER-WAIT / RECOVER-DONE lets a partner in
            // RECOVER-DONE start serving (ISC restarts in RECOVER after a SHUTDOWN, with what
            // it did in PARTNER-DOWN still to send; found by the simulator, seed 7896 of the
            // extra faults).
            self.requests.upddone_hold = Some(self.outgoing.last_seq());
        } else {
            self.run(now, wall, StateEvent::UpdDone);
        }
    }

    /// Leaves RECOVER on the partner's UPDDONE once our own backlog, sent on this connection,
    /// is acknowledged (see [`Requests::upddone_hold`]).
    pub(super) fn release_upddone_hold(&mut self, now: Instant, wall: UnixTime) {
        if let Some(until) = self.requests.upddone_hold
            && self.outgoing.done_through(until)
        {
            self.requests.upddone_hold = None;
            if self.state == ServerState::Recover && self.link == Link::Up {
                self.run(now, wall, StateEvent::UpdDone);
            }
        }
    }

    /// In RECOVER, every new connection asks for updates (§9.5.2; 04 §6.7: re-issue the
    /// request on reconnect), whatever the partner's state. ISC's table only asks when the
    /// partner is in COMMUNICATIONS-INTERRUPTED, PARTNER-DOWN or RECOVER: with a partner in
    /// RECOVER-WAIT or RECOVER-DONE a server that entered RECOVER while disconnected would
    /// wait forever, and so would its partner.
    pub(super) fn request_updates_once(&mut self) {
        if !self.requesting() && self.link == Link::Up {
            self.push_control(
                if self.config.dialect == Dialect::Isc || self.lost_storage {
                    Control::UpdReqAll
                } else {
                    Control::UpdReq
                },
            );
        }
    }

    /// The caller has queued its backlog: the PARTNER-DOWN hold waits for everything queued so
    /// far. Returns whether it did (only then can it have produced an output).
    pub(super) fn fix_pd_hold(&mut self) -> bool {
        if let PdHold::Armed(since) = self.pd_hold {
            self.pd_hold = PdHold::Until(self.outgoing.last_seq(), since);
            self.release_pd_hold();
            return true;
        }
        false
    }

    /// Announces NORMAL once the bindings held back by [`PdHold`] are acknowledged.
    pub(super) fn release_pd_hold(&mut self) {
        if let PdHold::Until(until, _) = self.pd_hold
            && self.outgoing.done_through(until)
        {
            self.pd_hold = PdHold::Off;
            self.persist.set_state(self.state, self.state_since);
            if matches!(self.link, Link::AwaitingState | Link::Up) {
                self.push_control(Control::State);
            }
        }
    }

    /// Sends again everything not acknowledged (see `OutgoingQueue::requeue_unacked`).
    pub(super) fn requeue_unacked(&mut self) {
        let dropped = self.outgoing.requeue_unacked();
        self.count_dropped(dropped);
        self.check_upddone();
        self.release_pd_hold();
    }
}
