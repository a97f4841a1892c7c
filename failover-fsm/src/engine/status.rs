//! What operators see: the connection and a status snapshot.

use core::time::Duration;

use failover_proto::{Hba, HbaPolarity, RejectReason, Role, ServerState};

use super::Family;
use super::{Counters, Engine, Timer};
use crate::config::MAX_NAME;
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

/// The relationship name (§12.22) as a `Copy` value, so that [`Status`] stays `Copy`.
#[derive(Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct RelationshipName {
    bytes: [u8; MAX_NAME],
    len: u8,
}

impl RelationshipName {
    fn new(name: &[u8]) -> Self {
        let mut bytes = [0; MAX_NAME];
        let len = name.len().min(MAX_NAME);
        if let (Some(to), Some(from)) = (bytes.get_mut(..len), name.get(..len)) {
            to.copy_from_slice(from);
        }
        RelationshipName {
            bytes,
            len: u8::try_from(len).unwrap_or(u8::MAX),
        }
    }

    /// The name's bytes, as compared with the partner's.
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or_default()
    }

    /// The name as text, if it is UTF-8 (ISC's are ASCII).
    pub fn as_str(&self) -> Option<&str> {
        core::str::from_utf8(self.as_bytes()).ok()
    }
}

impl core::fmt::Display for RelationshipName {
    /// The name, with bytes that are not printable ASCII escaped.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for b in self.as_bytes() {
            core::fmt::Display::fmt(&core::ascii::escape_default(*b), f)?;
        }
        Ok(())
    }
}

impl core::fmt::Debug for RelationshipName {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "\"{self}\"")
    }
}

/// A snapshot of the engine for operators: every field ISC's OMAPI failover-state object,
/// Kea's `status-get` and Windows' failover performance counters show that the engine knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Status {
    /// The relationship name.
    pub relationship_name: RelationshipName,
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
    /// Measured clock skew: our clock minus the partner's, seconds. The upper bound of the
    /// current connection's measurement (§5.10): the smallest difference seen on arrival.
    pub clock_skew: Option<i64>,
    /// The lower bound of the skew, proven by answers to our messages (a latency spike
    /// during the handshake leaves it low; later answers raise it).
    pub clock_skew_lower: Option<i64>,
    /// Our BNDUPDs sent and not yet acknowledged.
    pub unacked_sent: usize,
    /// Our bindings queued (in flight or waiting).
    pub queued: usize,
    /// Received BNDUPD transactions waiting for the caller's commit.
    pub awaiting_commit: usize,
    /// Received BNDUPDs whose BNDACK has not gone out yet (awaiting commits, or settled and
    /// waiting for `poll_transmit`): what counts against the max-unacked-bndupd we advertise.
    /// One more than that breaks flow control and closes the connection (§8.4).
    pub unacked_received: usize,
    /// Partner's max-unacked-bndupd (our send window; 1 until a handshake said more).
    pub partner_max_unacked: u32,
    /// The max-unacked-bndupd we advertise (§12.14; ISC `max-unacked-updates`).
    pub max_unacked_bndupd: u32,
    /// Our receive timer, seconds (MRD: ISC `max-response-delay`, §12.19).
    pub receive_timer: u32,
    /// The partner's receive timer, seconds (0 until a handshake told us): we send CONTACT
    /// after a third of it without traffic.
    pub partner_receive_timer: u32,
    /// Load balancing: clients waiting longer than this are answered by both servers (ISC
    /// `load balance max seconds`; 0: off).
    pub load_balance_max_seconds: u16,
    /// When we last sent a message (monotonic).
    pub last_sent: Option<Instant>,
    /// When we last received one, or the connection came up (monotonic).
    pub last_received: Option<Instant>,
    /// [`Status::last_received`] in wall-clock time: the last contact with the partner.
    pub last_contact: Option<UnixTime>,
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
    /// How its set bits are read (see [`Status::buckets_served`]).
    pub hba_polarity: HbaPolarity,
    /// Messages, rejects, state entries and dropped updates since the engine started.
    pub counters: Counters,
}

impl Status {
    /// How many of the 256 hash buckets this server serves under the assignment (ISC's
    /// `split` on a primary; the rest on its secondary).
    pub fn buckets_served(&self) -> u32 {
        let set = self.hba.count();
        match (self.role, self.hba_polarity) {
            (Role::Primary, HbaPolarity::BitsArePrimary)
            | (Role::Secondary, HbaPolarity::BitsAreSecondary) => set,
            _ => 256 - set,
        }
    }
}

impl<const QUEUE: usize, const COMMITS: usize, const EVENTS: usize, F: Family>
    Engine<QUEUE, COMMITS, EVENTS, F>
{
    /// A snapshot for operators.
    pub fn status(&self, now: Instant) -> Status {
        let left = |t: Timer| self.timers.get(t).map(|d| d.saturating_duration_since(now));
        Status {
            relationship_name: RelationshipName::new(&self.config.relationship_name),
            role: self.config.role,
            state: self.state,
            state_since: self.state_since,
            partner_state: self.partner_state,
            partner_since: self.partner_since,
            link: self.link,
            mclt: self.mclt.wait(self.wall_at(now)),
            lease_mclt: self.mclt.lease(),
            clock_skew: self.skew.estimate(),
            clock_skew_lower: self.skew.lower(),
            unacked_sent: self.outgoing.in_flight(),
            queued: self.outgoing.len(),
            awaiting_commit: self.incoming.awaiting_commit(),
            unacked_received: self.incoming.unacked(),
            partner_max_unacked: self.partner_max_unacked,
            max_unacked_bndupd: self.config.max_unacked_bndupd,
            receive_timer: self.config.receive_timer,
            partner_receive_timer: self.partner_receive_timer,
            load_balance_max_seconds: self.config.load_balance_max_seconds,
            last_sent: self.last_tx,
            last_received: self.last_rx,
            last_contact: self.last_rx.map(|t| self.wall_at(t)),
            last_reject: self.last_reject,
            startup_left: left(Timer::Startup),
            recover_wait_left: left(Timer::RecoverWait),
            auto_partner_down_left: left(Timer::SafePeriod),
            hba: self.hba,
            hba_polarity: self.config.hba_polarity,
            counters: self.counters,
        }
    }
}
