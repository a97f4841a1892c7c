//! Running the state machine of [`crate::transition`] (§9) and carrying out its actions.

use core::time::Duration;

use failover_proto::ServerState;

use super::Family;
use super::{Action, Control, Engine, Event, Link, PdHold, Timer, secs};
use crate::time::{Instant, UnixTime};
use crate::transition::{self, Actions, Context, StateEvent};

/// Seconds a server entering SHUTDOWN keeps the link to see the partner enter PARTNER-DOWN
/// (§9.14.2; ISC waits about 4 s).
const SHUTDOWN_LINGER: u64 = 5;

impl<const QUEUE: usize, const COMMITS: usize, const EVENTS: usize, F: Family>
    Engine<QUEUE, COMMITS, EVENTS, F>
{
    fn context(&self, wall: UnixTime) -> Context {
        Context {
            previous: self.previous,
            last_operational: self.last_operational,
            recover_wait_until: matches!(
                self.state,
                ServerState::Recover | ServerState::RecoverWait
            )
            .then(|| self.state_since.plus(self.mclt.wait(wall))),
            // A partner that announced STARTUP has no state to compare with yet.
            partner: if self.partner_startup {
                Some(ServerState::Startup)
            } else {
                self.partner_state
            },
            // The first STATE on a connection is always evaluated (§9.2).
            comm_ok: self.link == Link::Up && self.state_seen,
            lost_storage: self.lost_storage,
            ..Context::new(self.config.role, self.config.dialect, wall)
        }
    }

    /// Runs the state machine on `event` (§9) and carries out the result.
    pub(super) fn run(&mut self, now: Instant, wall: UnixTime, event: StateEvent) {
        let ctx = self.context(wall);
        let t = if F::IS_V6 {
            crate::v6::state::step_v4(self.state, &event, &ctx)
        } else {
            transition::step(self.state, &event, &ctx)
        };
        let from = self.state;
        if let Some(next) = t.next
            && next != self.state
        {
            self.set_state(now, wall, next);
        }
        self.apply(now, wall, from, t.actions);
    }

    /// Communications failed (§8.3).
    pub(super) fn comm_failed(&mut self, now: Instant) {
        self.push_event(Event::CommunicationsFailed);
        let wall = self.wall_at(now);
        self.run(now, wall, StateEvent::CommFailed);
    }

    fn set_state(&mut self, now: Instant, wall: UnixTime, next: ServerState) {
        let from = self.state;
        let pd_since = self.state_since;
        // Leaving STARTUP for the remembered state, and entering RECOVER-WAIT, keep the start
        // time (ISC does: RECOVER-WAIT ends MCLT after RECOVER began).
        let keep = (from == ServerState::Startup && next == self.previous)
            || next == ServerState::RecoverWait;
        if !keep {
            self.state_since = wall;
        }
        self.state = next;
        self.counters.entered(next);
        if from == ServerState::Startup {
            self.timers.stop(Timer::Startup);
        }
        let leaving_pd = from == ServerState::PartnerDown
            || (from == ServerState::Startup && self.previous == ServerState::PartnerDown);
        if next == ServerState::PartnerDown {
            self.pd_hold = PdHold::Off;
        } else if leaving_pd && next == ServerState::Normal {
            self.pd_hold = PdHold::Armed(pd_since);
        }
        // The hold survives other state changes (NORMAL → COMMUNICATIONS-INTERRUPTED → NORMAL
        // on a reconnect) until its bindings are acknowledged. Meanwhile we persist what we
        // announce instead of NORMAL or COMMUNICATIONS-INTERRUPTED: a restart comes back in
        // PARTNER-DOWN, not in a state the partner would leave RECOVER-DONE for.
        let (persist, persist_since) = match self.pd_hold {
            PdHold::Armed(since) | PdHold::Until(_, since)
                if matches!(
                    next,
                    ServerState::Normal | ServerState::CommunicationsInterrupted
                ) =>
            {
                (ServerState::PartnerDown, since)
            }
            _ => (next, self.state_since),
        };
        self.persist.set_state(persist, persist_since);
        self.push_event(Event::StateChanged { from, to: next });
        if matches!(self.link, Link::AwaitingState | Link::Up) {
            self.push_control(Control::State);
        }
        // Timers belong to the state they were started in.
        for t in [Timer::SafePeriod, Timer::RecoverWait, Timer::Linger] {
            self.timers.stop(t);
        }
        self.recover_wait_over = false;
        // The time of operation is recorded on entry and then every heartbeat (§9.3.2 step 5:
        // compared with a partner's PARTNER-DOWN; §5.9: how long we were down).
        if !transition::operating(next) {
            self.timers.stop(Timer::Heartbeat);
        } else if !self.timers.is_set(Timer::Heartbeat) {
            self.record_operation(now, wall);
        }
    }

    /// Records `wall` as the last time of operation and arms the next heartbeat.
    pub(super) fn record_operation(&mut self, now: Instant, wall: UnixTime) {
        self.last_operational = Some(wall);
        self.persist.set_last_operational(wall);
        let every = super::operation_heartbeat(self.mclt.wait(wall));
        self.timers.set(Timer::Heartbeat, now + secs(every));
    }

    fn apply(&mut self, now: Instant, wall: UnixTime, from: ServerState, actions: Actions) {
        let up = self.link == Link::Up;
        // ISC re-queues its ack queue on leaving some states. On a live connection the
        // BNDACKs of what is in flight are still coming: sending it all again would exceed the
        // partner's max-unacked-bndupd (a protocol error there, §8.4). Without a connection
        // `connection_down` has re-queued everything already.
        if actions.contains(Actions::REQUEUE_UNACKED) && !up {
            self.requeue_unacked();
        }
        // One request at a time: a repeated STATE must not ask for the whole table again
        // while the first answer is still coming (§7.3, §7.4).
        let requesting = self.requesting();
        if !requesting && actions.contains(Actions::SEND_UPDREQALL) && up {
            self.push_control(Control::UpdReqAll);
        } else if !requesting && actions.contains(Actions::SEND_UPDREQ) && up {
            // Without a complete table only everything will do (also in POTENTIAL-CONFLICT).
            self.push_control(if self.lost_storage {
                Control::UpdReqAll
            } else {
                Control::UpdReq
            });
        }
        if actions.contains(Actions::SEND_BACKLOG) {
            self.push_action(Action::SendBacklog);
        }
        if actions.contains(Actions::SEND_POOLREQ) && up {
            self.push_control(Control::PoolReq);
        }
        if actions.contains(Actions::POOL_CHECK) {
            self.push_action(Action::PoolCheck);
        }
        if actions.contains(Actions::ALARM) {
            self.push_event(Event::Alarm {
                state: self.state,
                partner_state: self.partner_state,
            });
        }
        self.apply_persistence(wall, from, actions);
        self.apply_timers(now, wall, actions);
        if actions.contains(Actions::DISCONNECT) {
            if self.state == ServerState::Shutdown && up {
                // Linger to see whether the partner enters PARTNER-DOWN (§9.14.2).
                self.timers
                    .set(Timer::Linger, now + Duration::from_secs(SHUTDOWN_LINGER));
            } else {
                self.close(now);
            }
        }
    }

    /// What a restart must come back to (§9.13.1, §9.14.1).
    fn apply_persistence(&mut self, wall: UnixTime, from: ServerState, actions: Actions) {
        if actions.contains(Actions::SAVE_RESTART_STATE) {
            let restart = if from == ServerState::Startup {
                self.previous
            } else {
                from
            };
            self.persist.set_state(restart, self.state_since);
        }
        if actions.contains(Actions::RESTART_IN_RECOVER) {
            self.persist.set_state(ServerState::Recover, wall);
        }
        if actions.contains(Actions::RECORD_LAST_OPERATIONAL) {
            self.last_operational = Some(wall);
            self.persist.set_last_operational(wall);
        }
    }

    fn apply_timers(&mut self, now: Instant, wall: UnixTime, actions: Actions) {
        if actions.contains(Actions::START_SAFE_TIMER)
            && let Some(period) = self.config.auto_partner_down
        {
            self.timers.set(Timer::SafePeriod, now + secs(period));
        }
        if actions.contains(Actions::START_RECOVER_WAIT) {
            // Until the start of RECOVER + MCLT (ISC; §9.6.2 allows the failure time instead).
            let until = self.state_since.plus(self.mclt.wait(wall));
            self.timers
                .set(Timer::RecoverWait, now + secs(until.secs_since(wall)));
        }
    }
}
