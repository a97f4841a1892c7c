//! What operators see: the connection and a status snapshot.

use core::time::Duration;

use failover_proto::{Hba, RejectReason, Role, ServerState};

use super::{Engine, Timer};
use crate::time::{Instant, UnixTime};

/// The connection as the engine sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Link {
    /// No TCP connection.
    Down,
    /// Secondary: TCP up, waiting for CONNECT.
    AwaitingConnect,
    /// Primary: CONNECT sent, waiting for CONNECTACK.
    AwaitingConnectAck,
    /// Handshake done, waiting for the partner's STATE.
    AwaitingState,
    /// Communications OK (§8.3).
    Up,
    /// Closing: the last messages are being sent.
    Closing,
}

/// A snapshot of the engine for operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Status {
    /// Our role.
    pub role: Role,
    /// Our failover state.
    pub state: ServerState,
    /// When we entered it.
    pub state_since: UnixTime,
    /// The partner's last reported state.
    pub partner_state: Option<ServerState>,
    /// When the partner entered it (its start-time-of-state).
    pub partner_since: Option<UnixTime>,
    /// The connection.
    pub link: Link,
    /// The MCLT in force for the safety waits (§9.4.2, §9.6): after the MCLT was lowered,
    /// the larger one for as long as leases granted under it may run.
    pub mclt: u32,
    /// The MCLT that bounds the leases granted now (§5.2.1): a primary restarted with a larger
    /// MCLT keeps to the one its secondary knows until the secondary accepts the new one.
    pub lease_mclt: u32,
    /// Measured clock skew: our clock minus the partner's, seconds.
    pub clock_skew: Option<i64>,
    /// Our BNDUPDs sent and not yet acknowledged.
    pub unacked_sent: usize,
    /// Our bindings queued (in flight or waiting).
    pub queued: usize,
    /// Received BNDUPD transactions waiting for the caller's commit.
    pub awaiting_commit: usize,
    /// Partner's max-unacked-bndupd (our send window).
    pub partner_max_unacked: u32,
    /// When we last sent a message (monotonic).
    pub last_sent: Option<Instant>,
    /// When we last received one.
    pub last_received: Option<Instant>,
    /// The last reject-reason sent or received.
    pub last_reject: Option<RejectReason>,
    /// Time left in STARTUP (longer after a long time down, §5.9).
    pub startup_left: Option<Duration>,
    /// Time left in RECOVER-WAIT.
    pub recover_wait_left: Option<Duration>,
    /// Time left before the safe period moves us to PARTNER-DOWN.
    pub auto_partner_down_left: Option<Duration>,
    /// The hash bucket assignment in force (a secondary's is the primary's, once learned).
    pub hba: Hba,
}

impl<const QUEUE: usize, const COMMITS: usize, const EVENTS: usize> Engine<QUEUE, COMMITS, EVENTS> {
    /// A snapshot for operators.
    pub fn status(&self, now: Instant) -> Status {
        let left = |t: Timer| self.timers.get(t).map(|d| d.saturating_duration_since(now));
        Status {
            role: self.config.role,
            state: self.state,
            state_since: self.state_since,
            partner_state: self.partner_state,
            partner_since: self.partner_since,
            link: self.link,
            mclt: self.mclt.wait(self.wall_at(now)),
            lease_mclt: self.mclt.lease(),
            clock_skew: self.skew.estimate(),
            unacked_sent: self.outgoing.in_flight(),
            queued: self.outgoing.len(),
            awaiting_commit: self.incoming.awaiting_commit(),
            partner_max_unacked: self.partner_max_unacked,
            last_sent: self.last_tx,
            last_received: self.last_rx,
            last_reject: self.last_reject,
            startup_left: left(Timer::Startup),
            recover_wait_left: left(Timer::RecoverWait),
            auto_partner_down_left: left(Timer::SafePeriod),
            hba: self.hba,
        }
    }
}
