//! The engine's timers: one enum and one table of deadlines.
//!
//! [`super::Engine::poll_timeout`] is the earliest deadline of the table;
//! [`super::Engine::handle_timeout`] walks [`Timer::ORDER`] and handles each one that expired.

use failover_proto::{RejectReason, ServerState};

use super::Family;
use super::control::Control;
use super::{Engine, Event, Link, secs};
use crate::time::{Instant, UnixTime};
use crate::transition::{self, StateEvent};

/// Everything the engine waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Timer {
    /// The connection handshake (CONNECT / CONNECTACK / first STATE) must finish by then.
    Handshake,
    /// tReceive (§8.3): nothing heard from the partner for our receive timer.
    Receive,
    /// Send CONTACT: the partner's receive timer would run out otherwise (§7.9.1).
    Contact,
    /// STARTUP ends (§9.3).
    Startup,
    /// RECOVER-WAIT ends (§9.6).
    RecoverWait,
    /// The safe period ends: COMMUNICATIONS-INTERRUPTED moves to PARTNER-DOWN (§10).
    SafePeriod,
    /// SHUTDOWN stops waiting to see the partner enter PARTNER-DOWN (§9.14.2).
    Linger,
    /// Ask again to persist after a failed write.
    PersistRetry,
    /// Record the time of operation again (§9.3.2 step 5, §5.9).
    Heartbeat,
    /// Check that our oldest BNDUPD in flight is not older than `Config::ack_timeout`.
    AckWait,
    /// A binding the caller's store did not hold was dropped when its turn came: what waited
    /// for it (an UPDDONE, the PARTNER-DOWN hold) is looked at again.
    Dropped,
}

impl Timer {
    /// How many kinds there are.
    const COUNT: usize = 11;

    /// The order `handle_timeout` handles expired timers in: the connection first (a
    /// connection that timed out is closed before anything is decided on it), then the
    /// failover state.
    pub(super) const ORDER: [Timer; Timer::COUNT] = [
        Timer::Handshake,
        Timer::Receive,
        Timer::AckWait,
        Timer::Contact,
        Timer::Startup,
        Timer::RecoverWait,
        Timer::SafePeriod,
        Timer::Linger,
        Timer::PersistRetry,
        Timer::Heartbeat,
        Timer::Dropped,
    ];

    const fn index(self) -> usize {
        self as usize
    }
}

/// One optional deadline per [`Timer`]: the deadlines, and a bit per armed one (half the
/// size of an `Option<Instant>` each).
#[derive(Debug, Clone, Default)]
pub(super) struct TimerTable {
    deadlines: [Instant; Timer::COUNT],
    armed: u16,
}

impl TimerTable {
    const fn bit(timer: Timer) -> u16 {
        1 << timer.index()
    }

    /// Arms `timer` for `at` (replacing its deadline).
    pub(super) fn set(&mut self, timer: Timer, at: Instant) {
        if let Some(d) = self.deadlines.get_mut(timer.index()) {
            *d = at;
            self.armed |= Self::bit(timer);
        }
    }

    /// Disarms `timer`.
    pub(super) fn stop(&mut self, timer: Timer) {
        self.armed &= !Self::bit(timer);
    }

    /// The deadline of `timer`, if armed.
    pub(super) fn get(&self, timer: Timer) -> Option<Instant> {
        if self.armed & Self::bit(timer) == 0 {
            return None;
        }
        self.deadlines.get(timer.index()).copied()
    }

    /// Whether `timer` is armed.
    pub(super) fn is_set(&self, timer: Timer) -> bool {
        self.armed & Self::bit(timer) != 0
    }

    /// Disarms `timer` and returns `true` if it expired by `now`.
    pub(super) fn expire(&mut self, timer: Timer, now: Instant) -> bool {
        if self.get(timer).is_some_and(|d| d <= now) {
            self.stop(timer);
            true
        } else {
            false
        }
    }

    /// The earliest deadline.
    pub(super) fn next_timeout(&self) -> Option<Instant> {
        Timer::ORDER.iter().filter_map(|t| self.get(*t)).min()
    }
}

/// Expired timers: what each one does.
impl<const QUEUE: usize, const COMMITS: usize, const EVENTS: usize, F: Family>
    Engine<QUEUE, COMMITS, EVENTS, F>
{
    /// Handles expired timers at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        for timer in Timer::ORDER {
            if self.timers.expire(timer, now) {
                self.on_timer(timer, now);
            }
        }
    }

    fn on_timer(&mut self, timer: Timer, now: Instant) {
        let wall = self.wall_at(now);
        match timer {
            Timer::Handshake => {
                if matches!(
                    self.link,
                    Link::AwaitingConnect | Link::AwaitingConnectAck | Link::AwaitingState
                ) {
                    self.close(now);
                }
            }
            Timer::Receive => {
                // tReceive expired (§8.3): DISCONNECT(17), then close (§7.12).
                self.last_reject = Some(RejectReason::NoTraffic);
                self.push_control(Control::Disconnect(RejectReason::NoTraffic));
                self.close(now);
            }
            Timer::AckWait => self.check_ack_wait(now, wall),
            Timer::Contact => {
                // Nothing else about to go out (it would do as well).
                if self.link == Link::Up && self.control.is_empty() {
                    self.push_control(Control::Contact);
                }
            }
            Timer::Startup => {
                if self.state == ServerState::Startup {
                    self.run(now, wall, StateEvent::StartupExpired);
                }
            }
            Timer::RecoverWait => {
                if self.link == Link::Up {
                    self.run(now, wall, StateEvent::RecoverWaitExpired);
                } else {
                    self.recover_wait_over = true;
                }
            }
            Timer::SafePeriod => self.run(now, wall, StateEvent::SafePeriodExpired),
            Timer::Linger => self.close(now),
            // Nothing to do here: `poll_action` hands the snapshot out again.
            Timer::PersistRetry => {}
            Timer::Heartbeat => {
                if transition::operating(self.state) {
                    self.record_operation(now, wall);
                }
            }
            Timer::Dropped => {
                self.check_upddone();
                self.release_pd_hold();
            }
        }
    }

    /// Our oldest BNDUPD in flight waited `Config::ack_timeout` for its BNDACK: the partner
    /// keeps the connection (and CONTACTs) alive but does not process updates. Close it like a
    /// silent one (DISCONNECT 17, §9.8.4); the update goes again on the next connection.
    /// Otherwise look again when the oldest one's time is up.
    fn check_ack_wait(&mut self, now: Instant, wall: UnixTime) {
        let Some(oldest) = self.outgoing.oldest_sent() else {
            return;
        };
        if self.link != Link::Up {
            return;
        }
        let waited = wall.0.saturating_sub(oldest);
        if waited >= self.config.ack_timeout {
            self.push_event(Event::UpdateUnacknowledged { waited });
            self.last_reject = Some(RejectReason::NoTraffic);
            self.push_control(Control::Disconnect(RejectReason::NoTraffic));
            self.close(now);
        } else {
            let left = self.config.ack_timeout - waited;
            self.timers.set(Timer::AckWait, now + secs(left));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn earliest_deadline_and_expiry() {
        let mut t = TimerTable::default();
        assert_eq!(t.next_timeout(), None);
        t.set(Timer::Linger, Instant::from_secs(5));
        t.set(Timer::Startup, Instant::from_secs(3));
        assert_eq!(t.next_timeout(), Some(Instant::from_secs(3)));
        assert!(!t.expire(Timer::Linger, Instant::from_secs(4)));
        assert!(t.expire(Timer::Startup, Instant::from_secs(4)));
        assert!(!t.is_set(Timer::Startup));
        assert_eq!(t.next_timeout(), Some(Instant::from_secs(5)));
        t.stop(Timer::Linger);
        assert_eq!(t.next_timeout(), None);
    }
}
