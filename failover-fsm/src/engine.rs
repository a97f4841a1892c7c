//! The failover endpoint: one relationship, one role, driven by the caller.
//!
//! See the crate documentation for the four API groups and the polling order.

use core::net::Ipv4Addr;
use core::time::Duration;

use failover_proto::{
    BindingAck, BindingList, BndAck, BndUpd, Connect, ConnectAck, Contact, DecodeError,
    DecodeErrorKind, Disconnect, Hba, Message, MessageType, PROTOCOL_VERSION, PoolReq, PoolResp,
    RejectReason, Repr, Role, ServerFlags, ServerState, State, Text, TlsReply, TlsRequest, UpdDone,
    UpdReq, UpdReqAll,
};
use heapless::{Deque, Vec};

use crate::accept::{ClientIdentity, LocalBinding, Verdict, judge_update};
use crate::binding::BindingData;
use crate::config::{Config, ConfigError};
use crate::dialect::Dialect;
use crate::policy::{BalancePlan, BalanceSkipped, BalanceTrigger, PoolCounts, plan_balance};
use crate::time::{Instant, UnixTime};
use crate::transition::{self, Actions, Context, StateEvent};

/// Most binding transactions accepted in one received BNDUPD (ISC sends one).
pub const MAX_BATCH: usize = 8;
/// Control messages waiting to be sent (CONNECT, STATE, UPDDONE, ...).
const CONTROL_CAPACITY: usize = 16;
/// Seconds a server entering SHUTDOWN keeps the link to see the partner enter PARTNER-DOWN
/// (§9.14.2; ISC waits about 4 s).
const SHUTDOWN_LINGER: u64 = 5;
/// Events an input may produce at most; inputs are refused while fewer slots are free.
const EVENT_HEADROOM: usize = MAX_BATCH + 8;

/// What the engine persisted last time, handed back at start (§9.2, §9.3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Persisted {
    /// The failover state last persisted.
    pub state: ServerState,
    /// When it was entered.
    pub since: UnixTime,
    /// The MCLT both servers last agreed on: a secondary's learned from its primary
    /// (§7.8.2 step 7), a primary's accepted by its secondary. A primary restarted with another
    /// MCLT uses it to stay safe until the secondary has accepted the new one (§5.2.1: the MCLT
    /// "MUST be the same and known to both").
    pub mclt: Option<u32>,
    /// The last time this server knew it was operating (for §9.3.2 step 5).
    pub last_operational: Option<UnixTime>,
    /// The lease table is lost or an older copy ([`Engine::lease_table_lost`]) and the
    /// partner's UPDDONE has not refreshed it yet: a restart in between keeps refreshing.
    pub lease_table_lost: bool,
}

/// Answers the engine needs from the caller's lease database to judge a received BNDUPD
/// (§7.1.3).
pub trait LeaseLookup {
    /// The local binding of `address`, or `None` when the address is not in any pool of this
    /// relationship (answered with reject-reason 1).
    fn lookup(&self, address: Ipv4Addr) -> Option<LocalBinding>;
}

/// Identifies a received binding handed to the caller to commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct CommitToken(pub u64);

/// Something the caller must act on or may want to know.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Event {
    /// Persist the failover state before anything else (§9.2). STATE messages announcing it are
    /// held back until this event has been polled.
    PersistState {
        /// The new state.
        state: ServerState,
        /// When it was entered.
        since: UnixTime,
    },
    /// The failover state changed (after `PersistState`).
    StateChanged {
        /// Previous state.
        from: ServerState,
        /// New state.
        to: ServerState,
    },
    /// The partner reported a state (STATE message).
    PartnerStateChanged {
        /// The partner's state.
        state: ServerState,
        /// Its start-time-of-state, in our clock.
        since: UnixTime,
        /// Whether the partner is in STARTUP (server-flags S).
        startup: bool,
    },
    /// The MCLT both servers agree on changed: a secondary learned the primary's (§7.8.2 step
    /// 7), or a secondary accepted a primary's new one. Persist it as [`Persisted::mclt`].
    PersistMclt {
        /// The MCLT in seconds.
        mclt: u32,
    },
    /// Communications are OK: CONNECT/CONNECTACK done and the partner's STATE received (§8.3).
    CommunicationsOk,
    /// Communications failed: the connection is gone or silent (§8.3).
    CommunicationsFailed,
    /// Close the TCP connection now (everything polled before this was the last to send).
    CloseConnection,
    /// Commit this binding received from the partner to stable storage, then call
    /// [`Engine::binding_committed`]: only then is it acknowledged (§7.2).
    CommitBinding {
        /// Pass back to `binding_committed`.
        token: CommitToken,
        /// The binding, with times in our clock.
        binding: BindingData,
        /// What to store: `verdict.store_as` is the binding-status (EXPIRED, RELEASED and RESET
        /// become FREE on receipt, §5.11), with the times to record.
        verdict: Verdict,
    },
    /// A received binding was rejected with this reason (a BNDACK says so).
    RejectedPartnerBinding {
        /// The address.
        address: [u8; 4],
        /// Why.
        reason: RejectReason,
    },
    /// The partner acknowledged one of our bindings.
    BindingAcked {
        /// The address.
        address: [u8; 4],
        /// Its status in the update.
        status: failover_proto::BindingStatus,
        /// The potential-expiration-time the partner now knows (acked PET, §7.1.5).
        potential_expiration_time: Option<UnixTime>,
    },
    /// The partner rejected one of our bindings (§7.2.2: do not resend it right away).
    BindingRejected {
        /// The address.
        address: [u8; 4],
        /// Why.
        reason: RejectReason,
    },
    /// The partner sent UPDREQALL: queue every binding with [`Engine::send_binding`], then call
    /// [`Engine::end_of_updates`] (§7.4).
    SendAllBindings,
    /// The partner sent UPDREQ: queue every binding it has not acknowledged, then call
    /// [`Engine::end_of_updates`] (§7.3).
    SendUnackedBindings,
    /// The partner finished sending what we asked for (UPDDONE).
    UpdatesReceived,
    /// The partner asks for pool balancing (POOLREQ, §7.6); call
    /// [`Engine::pool_response`] with the number of addresses moved to it.
    PoolRequested,
    /// The partner answered our POOLREQ (§7.7).
    PoolResponse {
        /// Addresses it moved to our pool.
        addresses_transferred: u32,
    },
    /// The partner rejected our CONNECT, or we rejected its CONNECT/CONNECTACK.
    ConnectionRejected {
        /// Why.
        reason: RejectReason,
        /// Whether the partner (not us) rejected.
        by_partner: bool,
    },
    /// The partner sent DISCONNECT.
    PartnerDisconnected {
        /// Its reason.
        reason: RejectReason,
    },
    /// Persist the last time this server was known to operate (§9.14.1, used by §9.3.2 step 5).
    PersistLastOperational {
        /// The time.
        at: UnixTime,
    },
    /// Persist [`Persisted::lease_table_lost`]: `true` once [`Engine::lease_table_lost`] is
    /// called, `false` when the partner's UPDDONE has refreshed the table (§9.5.2).
    PersistLeaseTableLost {
        /// Whether the table still waits for the partner's refresh.
        lost: bool,
    },
    /// Queue every binding change the partner has not acknowledged with
    /// [`Engine::send_binding`] (entering NORMAL, §9.8.1, and on every connection in RECOVER).
    /// Bindings still in the engine's queue need not be queued again.
    SendBacklog,
    /// Run pool balancing now (ISC on entering NORMAL): compare FREE and BACKUP counts and move
    /// addresses with BNDUPDs, or ask with [`Engine::request_pool_balance`].
    PoolCheck,
    /// Something an operator should look at (§9.9.1, §9.11.1), or a partner state change the
    /// protocol forbids.
    Alarm {
        /// Our state.
        state: ServerState,
        /// The partner's.
        partner_state: Option<ServerState>,
    },
    /// A message from the partner was malformed or out of place; the draft's answer was queued.
    ProtocolError {
        /// What was wrong (for an out-of-place message: kind `WrongMessageType`).
        error: DecodeError,
    },
}

/// A command or input the engine refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum EngineError {
    /// The binding queue is full: retry after acknowledgements free space (back-pressure).
    QueueFull,
    /// Poll events first: too few event slots are free to process more input.
    EventsPending,
    /// A connection is already up: refuse the new one as a duplicate (reject-reason 7).
    AlreadyConnected,
    /// No connection is up.
    NotConnected,
    /// The token is unknown or was already used.
    UnknownToken,
    /// The binding lacks what its status requires (ACTIVE: hardware address, lease- and
    /// potential-expiration-time; EXPIRED, RELEASED: hardware address; §7.1).
    IncompleteBinding,
}

impl core::fmt::Display for EngineError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            EngineError::QueueFull => "binding queue full",
            EngineError::EventsPending => "poll events before giving more input",
            EngineError::AlreadyConnected => "a connection is already up",
            EngineError::NotConnected => "no connection",
            EngineError::UnknownToken => "unknown commit token",
            EngineError::IncompleteBinding => "binding lacks the options its status requires",
        })
    }
}

impl core::error::Error for EngineError {}

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
    /// Time left in RECOVER-WAIT.
    pub recover_wait_left: Option<Duration>,
    /// Time left before the safe period moves us to PARTNER-DOWN.
    pub auto_partner_down_left: Option<Duration>,
    /// The hash bucket assignment in force (a secondary's is the primary's, once learned).
    pub hba: Hba,
}

/// One of our bindings, queued or in flight.
#[derive(Debug, Clone)]
struct Outgoing {
    seq: u64,
    xid: Option<u32>,
    /// Our wall time when it was sent (with `xid`): its BNDACK bounds the skew from below.
    sent: u32,
    binding: BindingData,
    /// The partner sent a binding for this address that we accepted after this one was sent:
    /// it is stale and is not sent again after a reconnect.
    superseded: bool,
}

/// A received BNDUPD whose transactions wait for commits.
#[derive(Debug, Clone)]
struct Incoming {
    xid: u32,
    generation: u32,
    /// (address, token, result): result `None` while waiting.
    items: Vec<([u8; 4], u64, Option<Option<RejectReason>>), MAX_BATCH>,
}

/// A BNDACK ready to go.
#[derive(Debug, Clone)]
struct AckOut {
    xid: u32,
    items: Vec<([u8; 4], Option<RejectReason>), MAX_BATCH>,
}

/// A control message ready to go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Control {
    Connect,
    ConnectAck {
        xid: u32,
        reject: Option<RejectReason>,
    },
    State,
    Contact,
    Disconnect(RejectReason),
    UpdReq,
    UpdReqAll,
    UpdDone {
        xid: u32,
    },
    PoolReq,
    PoolResp {
        xid: u32,
        count: u32,
    },
    /// Close after everything before it was sent.
    Close,
}

/// After PARTNER-DOWN → NORMAL (the partner reported RECOVER-DONE, §9.4.3), STATE keeps
/// announcing PARTNER-DOWN until every binding queued by then — what we did in PARTNER-DOWN,
/// possibly with addresses of the partner's pool, and the backlog the caller queued on
/// entering NORMAL — is acknowledged. The partner leaves RECOVER-DONE for NORMAL (and starts
/// allocating from its pool) only on our NORMAL; announcing it at once, ahead of the queued
/// BNDUPDs, let the partner hand out addresses we had leased.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PdHold {
    Off,
    /// Entered NORMAL; the hold is fixed at the next `poll_transmit` (after the caller queued
    /// its backlog). Carries the start time of PARTNER-DOWN.
    Armed(UnixTime),
    /// Until our bindings up to this sequence number are acknowledged.
    Until(u64, UnixTime),
}

/// The partner's outstanding UPDREQ/UPDREQALL that we are answering.
#[derive(Debug, Clone, Copy)]
struct PartnerRequest {
    xid: u32,
    /// Set by `end_of_updates`: UPDDONE once every binding queued up to this sequence is acked.
    until_seq: Option<u64>,
}

/// A failover endpoint (§5.1): the state machine, the connection protocol and binding-update
/// flow control for one relationship.
///
/// Capacities are const generics: `QUEUE` bindings queued to send (in flight included),
/// `COMMITS` received BNDUPDs awaiting the caller's commit (at least the advertised
/// max-unacked-bndupd), `EVENTS` undelivered events (at least 32).
#[derive(Debug)]
pub struct Engine<const QUEUE: usize = 256, const COMMITS: usize = 128, const EVENTS: usize = 64> {
    config: Config,
    // Failover state (§9).
    state: ServerState,
    state_since: UnixTime,
    previous: ServerState,
    partner_state: Option<ServerState>,
    partner_since: Option<UnixTime>,
    last_operational: Option<UnixTime>,
    mclt: u32,
    hba: Hba,
    // Clock: wall time anchored to a monotonic instant.
    anchor: (Instant, UnixTime),
    // Connection.
    link: Link,
    generation: u32,
    next_xid: u32,
    handshake_deadline: Option<Instant>,
    partner_max_unacked: u32,
    partner_receive_timer: u32,
    last_rx: Option<Instant>,
    last_tx: Option<Instant>,
    skew: Option<i64>,
    last_reject: Option<RejectReason>,
    // Queues.
    control: Deque<Control, CONTROL_CAPACITY>,
    acks: Deque<AckOut, COMMITS>,
    incoming: Vec<Incoming, COMMITS>,
    outgoing: Deque<Outgoing, QUEUE>,
    in_flight: usize,
    events: Deque<Event, EVENTS>,
    persist_pending: usize,
    next_seq: u64,
    next_token: u64,
    // Update requests.
    partner_request: Option<PartnerRequest>,
    our_request: Option<u32>,
    /// Our outstanding request is an UPDREQALL.
    our_request_all: bool,
    /// Left PARTNER-DOWN for NORMAL with bindings still to send (see [`PdHold`]).
    pd_hold: PdHold,
    /// No complete lease table yet: started without persisted state (brand-new, or stable
    /// storage lost) or restarted in RECOVER (a recovery that never finished). Every update
    /// request is then an UPDREQALL until one has been answered (§9.5.2).
    lost_storage: bool,
    /// The caller said its lease table is lost or an older copy ([`Engine::lease_table_lost`]):
    /// the partner's bindings are taken as they come until the UPDDONE that answers our
    /// UPDREQALL, in whatever state we are by then (RECOVER, or POTENTIAL-CONFLICT if the
    /// partner was in conflict resolution; see `judge`).
    refresh_from_partner: bool,
    /// Started with persisted state (not a new server).
    had_persisted: bool,
    /// The MCLT last persisted as agreed ([`Persisted::mclt`]).
    agreed_mclt: Option<u32>,
    /// A larger MCLT than `mclt` that leases may still run under (the primary's MCLT was
    /// lowered): safety waits use it until the wall time given, `None` meaning until the
    /// secondary has heard of the change, plus that MCLT.
    mclt_before: Option<(u32, Option<UnixTime>)>,
    /// Primary: the MCLT the secondary last accepted, while smaller than ours. Leases stay
    /// within it until a CONNECTACK accepts the new one.
    mclt_unconfirmed: Option<u32>,
    /// The partner's UPDDONE came while bindings of ours up to this sequence number were
    /// still unacknowledged: RECOVER is left once they are.
    upddone_hold: Option<u64>,
    /// Lower bound of the clock skew on this connection (see `skew_correction`).
    skew_floor: Option<i64>,
    /// When we sent CONNECT (primary) or an accepting CONNECTACK (secondary), our clock.
    handshake_sent: Option<u32>,
    // Timers.
    startup_deadline: Option<Instant>,
    recover_wait_deadline: Option<Instant>,
    /// RECOVER-WAIT's time ran out while communications were not OK: RECOVER-DONE waits for
    /// them (04 §3.2 allows deferring it). In RECOVER-DONE we renew leases (§9.7.1), which is
    /// safe only once the partner — possibly in PARTNER-DOWN, reclaiming addresses on the
    /// strength of what it knows — can hear of it.
    recover_wait_over: bool,
    safe_deadline: Option<Instant>,
    pending_pool_xid: Option<u32>,
    partner_startup: bool,
    linger_deadline: Option<Instant>,
    /// A STATE arrived on the current connection.
    state_seen: bool,
    /// How many queued bindings fall in each address bucket (0: none of that address queued).
    presence: [u16; PRESENCE],
}

impl<const QUEUE: usize, const COMMITS: usize, const EVENTS: usize> Engine<QUEUE, COMMITS, EVENTS> {
    /// Starts an endpoint in STARTUP (§9.3) at monotonic `now` and wall-clock `wall`.
    ///
    /// `persisted` is what the engine last asked to persist (`None` for a brand-new server,
    /// which starts as if in RECOVER, §9.3.2 step 1). `xid_seed` varies the first xid.
    pub fn new(
        config: Config,
        persisted: Option<Persisted>,
        now: Instant,
        wall: UnixTime,
        xid_seed: u32,
    ) -> Result<Self, ConfigError> {
        config.validate(COMMITS)?;
        let previous = transition::startup_previous(persisted.map(|p| p.state), config.dialect);
        let agreed_mclt = persisted.and_then(|p| p.mclt);
        let mclt = match (config.role, agreed_mclt) {
            (Role::Secondary, Some(m)) => m,
            _ => config.mclt,
        };
        // A primary restarted with another MCLT than its secondary knows (§5.2.1).
        let (mclt_before, mclt_unconfirmed) = match (config.role, agreed_mclt) {
            (Role::Primary, Some(old)) if old > mclt => (Some((old, None)), None),
            (Role::Primary, Some(old)) if old < mclt => (None, Some(old)),
            _ => (None, None),
        };
        let mut engine = Engine {
            hba: config.hba,
            mclt,
            config,
            state: ServerState::Startup,
            // A start time in the future means the clock was set back since it was saved:
            // count from now (RECOVER-WAIT then lasts a full MCLT from now, on the safe side).
            state_since: persisted.map_or(wall, |p| p.since.min(wall)),
            previous,
            partner_state: None,
            partner_since: None,
            last_operational: persisted.and_then(|p| p.last_operational),
            anchor: (now, wall),
            link: Link::Down,
            generation: 0,
            next_xid: xid_seed,
            handshake_deadline: None,
            partner_max_unacked: 1,
            partner_receive_timer: 0,
            last_rx: None,
            last_tx: None,
            skew: None,
            last_reject: None,
            control: Deque::new(),
            acks: Deque::new(),
            incoming: Vec::new(),
            outgoing: Deque::new(),
            in_flight: 0,
            events: Deque::new(),
            persist_pending: 0,
            next_seq: 1,
            next_token: 1,
            partner_request: None,
            our_request: None,
            our_request_all: false,
            pd_hold: PdHold::Off,
            lost_storage: persisted
                .is_none_or(|p| p.state == ServerState::Recover || p.lease_table_lost),
            // A refresh cut short by a restart goes on: the table is still the old copy.
            refresh_from_partner: persisted.is_some_and(|p| p.lease_table_lost),
            had_persisted: persisted.is_some(),
            agreed_mclt,
            mclt_before,
            mclt_unconfirmed,
            upddone_hold: None,
            skew_floor: None,
            handshake_sent: None,
            startup_deadline: None,
            recover_wait_deadline: None,
            recover_wait_over: false,
            safe_deadline: None,
            pending_pool_xid: None,
            partner_startup: false,
            linger_deadline: None,
            state_seen: false,
            presence: [0; PRESENCE],
        };
        engine.startup_deadline = Some(now + secs(engine.config.startup_delay));
        Ok(engine)
    }

    // ----- getters -----

    /// Our failover state.
    pub fn state(&self) -> ServerState {
        self.state
    }

    /// The partner's last reported state.
    pub fn partner_state(&self) -> Option<ServerState> {
        self.partner_state
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The MCLT in force (a secondary's is the primary's, once learned). See
    /// [`Status::mclt`] and [`Status::lease_mclt`] for the values the lease rules use while an
    /// MCLT change settles, and [`Engine::endpoint`].
    pub fn mclt(&self) -> u32 {
        self.mclt
    }

    /// This server's situation as the lease rules of [`crate::policy`] need it, at `now`.
    pub fn endpoint(&self, now: Instant) -> crate::policy::Endpoint {
        crate::policy::Endpoint {
            dialect: self.config.dialect,
            role: self.config.role,
            state: self.state,
            state_since: self.state_since,
            partner_state: self.partner_state,
            mclt: self.wait_mclt(self.wall_at(now)),
            lease_mclt: self.lease_mclt(),
        }
    }

    /// Tells a new engine that the caller's lease table is lost or is an older copy restored
    /// from a backup (draft §9.5.2: the server "has been instructed ... that it has lost its
    /// stable storage"): until the partner's UPDDONE answers our UPDREQALL, the partner's
    /// bindings are judged as an empty table would judge them, and the partner's own update
    /// requests are answered at once, since nothing of ours is worth sending. Call it right
    /// after [`Engine::new`] (without persisted state), before the first connection. A server
    /// that is new to failover but holds a current lease table must not call it. It raises
    /// [`Event::PersistLeaseTableLost`]: persist it, so that a restart before the refresh is
    /// done goes on refreshing (found by the simulator, seed 348627 of the million-seed run).
    pub fn lease_table_lost(&mut self) {
        self.refresh_from_partner = true;
        self.lost_storage = true;
        self.push_event(Event::PersistLeaseTableLost { lost: true });
    }

    /// The MCLT for safety waits at `wall` (see [`Status::mclt`]).
    fn wait_mclt(&self, wall: UnixTime) -> u32 {
        match self.mclt_before {
            Some((m, until)) if until.is_none_or(|u| wall < u) => m.max(self.mclt),
            _ => self.mclt,
        }
    }

    /// The MCLT that bounds leases granted now (see [`Status::lease_mclt`]).
    fn lease_mclt(&self) -> u32 {
        self.mclt_unconfirmed
            .map_or(self.mclt, |m| m.min(self.mclt))
    }

    /// The agreed MCLT changed to ours: persist it, and start the clock on a larger one that
    /// leases granted before may still run under.
    fn mclt_agreed(&mut self, wall: UnixTime) {
        if let Some((m, None)) = self.mclt_before {
            self.mclt_before = Some((m, Some(wall.plus(m))));
        }
        self.mclt_unconfirmed = None;
        if self.agreed_mclt != Some(self.mclt) {
            self.agreed_mclt = Some(self.mclt);
            self.push_event(Event::PersistMclt { mclt: self.mclt });
        }
    }

    /// The hash bucket assignment in force (a secondary's is the primary's, once learned).
    pub fn hba(&self) -> Hba {
        self.hba
    }

    /// The connection state.
    pub fn link(&self) -> Link {
        self.link
    }

    /// Whether communications are OK (§8.3).
    pub fn is_communicating(&self) -> bool {
        self.link == Link::Up
    }

    /// Free slots in the binding queue.
    pub fn send_queue_space(&self) -> usize {
        QUEUE - self.outgoing.len()
    }

    /// The wall clock at monotonic `now`, from the last wall time given.
    pub fn wall_at(&self, now: Instant) -> UnixTime {
        let (at, wall) = self.anchor;
        let delta = now.saturating_duration_since(at).as_secs();
        wall.plus(u32::try_from(delta).unwrap_or(u32::MAX))
    }

    /// A snapshot for operators.
    pub fn status(&self, now: Instant) -> Status {
        Status {
            role: self.config.role,
            state: self.state,
            state_since: self.state_since,
            partner_state: self.partner_state,
            partner_since: self.partner_since,
            link: self.link,
            mclt: self.wait_mclt(self.wall_at(now)),
            lease_mclt: self.lease_mclt(),
            clock_skew: self.skew,
            unacked_sent: self.in_flight,
            queued: self.outgoing.len(),
            awaiting_commit: self.incoming.iter().map(|i| i.items.len()).sum(),
            partner_max_unacked: self.partner_max_unacked,
            last_sent: self.last_tx,
            last_received: self.last_rx,
            last_reject: self.last_reject,
            recover_wait_left: self
                .recover_wait_deadline
                .map(|d| d.saturating_duration_since(now)),
            auto_partner_down_left: self.safe_deadline.map(|d| d.saturating_duration_since(now)),
            hba: self.hba,
        }
    }

    // ----- connection inputs -----

    /// A TCP connection to the partner is up (either direction). A primary sends CONNECT on it
    /// (ISC sends CONNECT on accepted connections too); a secondary waits for one.
    pub fn connection_up(&mut self, now: Instant) -> Result<(), EngineError> {
        if self.link != Link::Down {
            return Err(EngineError::AlreadyConnected);
        }
        self.generation = self.generation.wrapping_add(1);
        self.state_seen = false;
        self.last_rx = Some(now);
        self.last_tx = None;
        self.skew = None;
        self.skew_floor = None;
        self.handshake_sent = None;
        self.control.clear();
        self.acks.clear();
        self.incoming.clear();
        self.handshake_deadline = Some(now + secs(self.config.connect_timeout));
        match self.config.role {
            Role::Primary => {
                self.link = Link::AwaitingConnectAck;
                self.push_control(Control::Connect);
            }
            Role::Secondary => self.link = Link::AwaitingConnect,
        }
        Ok(())
    }

    /// The TCP connection is gone. Unacknowledged bindings are sent again on the next one.
    pub fn connection_down(&mut self, now: Instant) {
        if self.link == Link::Down {
            return;
        }
        // A link we were closing already counted its failure in `close` (if it was up); one
        // that never finished its handshake never had communications to lose (§8.3).
        let was_up = self.link == Link::Up;
        self.link = Link::Down;
        self.handshake_deadline = None;
        self.control.clear();
        self.acks.clear();
        // Received updates not yet acked are dropped: their BNDACK belongs to the dead
        // connection (§8.6); the partner sends them again.
        self.incoming.clear();
        self.requeue_unacked();
        self.partner_request = None;
        self.our_request = None;
        self.upddone_hold = None;
        if was_up {
            self.comm_failed(now);
        }
    }

    /// Handles one whole message from the partner (as framed by `failover_proto::Framer`).
    ///
    /// Malformed or out-of-place messages never corrupt state: they get the draft's answer
    /// (a rejecting BNDACK or CONNECTACK, or DISCONNECT and close) and an
    /// [`Event::ProtocolError`]. Returns `Err(EventsPending)` without consuming the message
    /// when events must be polled first.
    pub fn handle_message(
        &mut self,
        now: Instant,
        wall: UnixTime,
        bytes: &[u8],
        db: &impl LeaseLookup,
    ) -> Result<(), EngineError> {
        if EVENTS - self.events.len() < EVENT_HEADROOM.min(EVENTS) {
            return Err(EngineError::EventsPending);
        }
        if matches!(self.link, Link::Down | Link::Closing) {
            return Ok(());
        }
        self.anchor = (now, wall);
        self.last_rx = Some(now);
        match Repr::parse(bytes) {
            Ok(repr) => self.handle_repr(now, wall, repr, db),
            Err(error) => self.malformed(now, bytes, error),
        }
        self.release_upddone_hold(now, wall);
        Ok(())
    }

    /// Leaves RECOVER on the partner's UPDDONE once our own backlog, sent on this connection,
    /// is acknowledged (see `upddone_hold`).
    fn release_upddone_hold(&mut self, now: Instant, wall: UnixTime) {
        if let Some(until) = self.upddone_hold
            && self.outgoing.iter().all(|o| o.seq > until)
        {
            self.upddone_hold = None;
            if self.state == ServerState::Recover && self.link == Link::Up {
                self.run(now, wall, StateEvent::UpdDone);
            }
        }
    }

    /// Handles expired timers at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let wall = self.wall_at(now);
        if let Some(d) = self.handshake_deadline
            && now >= d
        {
            self.handshake_deadline = None;
            if matches!(
                self.link,
                Link::AwaitingConnect | Link::AwaitingConnectAck | Link::AwaitingState
            ) {
                self.close(now);
            }
        }
        if matches!(
            self.link,
            Link::AwaitingConnect | Link::AwaitingConnectAck | Link::AwaitingState | Link::Up
        ) {
            if let Some(rx) = self.last_rx
                && now >= rx + secs(self.config.receive_timer)
            {
                // tReceive expired (§8.3): DISCONNECT(17), then close (§7.12).
                self.last_reject = Some(RejectReason::NoTraffic);
                self.push_control(Control::Disconnect(RejectReason::NoTraffic));
                self.close(now);
            } else if self.link == Link::Up
                && let Some(at) = self.contact_due()
                && now >= at
            {
                self.push_control(Control::Contact);
            }
        }
        if let Some(d) = self.startup_deadline
            && now >= d
        {
            self.startup_deadline = None;
            if self.state == ServerState::Startup {
                self.run(now, wall, StateEvent::StartupExpired);
            }
        }
        if let Some(d) = self.recover_wait_deadline
            && now >= d
        {
            self.recover_wait_deadline = None;
            if self.link == Link::Up {
                self.run(now, wall, StateEvent::RecoverWaitExpired);
            } else {
                self.recover_wait_over = true;
            }
        }
        if let Some(d) = self.safe_deadline
            && now >= d
        {
            self.safe_deadline = None;
            self.run(now, wall, StateEvent::SafePeriodExpired);
        }
        if let Some(d) = self.linger_deadline
            && now >= d
        {
            self.linger_deadline = None;
            self.close(now);
        }
    }

    // ----- commands -----

    /// Queues a binding to send to the partner (lazy update, §5.1). A binding already queued and
    /// not yet sent for the same address is replaced; one in flight is followed by this one.
    /// A binding missing what its status requires is refused with
    /// [`EngineError::IncompleteBinding`].
    pub fn send_binding(&mut self, binding: BindingData) -> Result<(), EngineError> {
        // What the partner would reject as missing binding information (§7.1, reason 3).
        let status = binding.status;
        if (status.requires_client() && binding.hardware_address.is_none())
            || (status == failover_proto::BindingStatus::Active
                && (binding.lease_expiration_time.is_none()
                    || binding.potential_expiration_time.is_none()))
        {
            return Err(EngineError::IncompleteBinding);
        }
        let bucket = presence_bucket(&binding.address);
        if self.presence.get(bucket).is_some_and(|n| *n == 0) {
            // No queued copy of this address: skip the searches below.
            return self.push_outgoing(binding, bucket);
        }
        // The same data already queued or in flight: its acknowledgement covers this one.
        if self
            .outgoing
            .iter()
            .rev()
            .find(|o| o.binding.address == binding.address)
            .is_some_and(|o| o.binding == binding && !o.superseded)
        {
            return Ok(());
        }
        if let Some(o) = self
            .outgoing
            .iter_mut()
            .rev()
            .take_while(|o| o.xid.is_none())
            .find(|o| o.binding.address == binding.address)
        {
            o.binding = binding;
            return Ok(());
        }
        self.push_outgoing(binding, bucket)
    }

    fn push_outgoing(&mut self, binding: BindingData, bucket: usize) -> Result<(), EngineError> {
        let seq = self.next_seq;
        self.outgoing
            .push_back(Outgoing {
                seq,
                xid: None,
                sent: 0,
                binding,
                superseded: false,
            })
            .map_err(|_| EngineError::QueueFull)?;
        if let Some(n) = self.presence.get_mut(bucket) {
            *n = n.saturating_add(1);
        }
        self.next_seq += 1;
        Ok(())
    }

    /// After [`Event::SendAllBindings`] / [`Event::SendUnackedBindings`]: everything asked for is
    /// queued. UPDDONE goes out once all of it is acknowledged (§7.5).
    pub fn end_of_updates(&mut self) {
        if let Some(r) = self.partner_request.as_mut() {
            r.until_seq = Some(self.next_seq - 1);
        }
        self.check_upddone();
    }

    /// The binding of [`Event::CommitBinding`] `token` is on stable storage: acknowledge it.
    pub fn binding_committed(&mut self, token: CommitToken) -> Result<(), EngineError> {
        self.resolve(token, None)
    }

    /// The binding of `token` could not be stored: reject it with `reason`.
    pub fn binding_commit_failed(
        &mut self,
        token: CommitToken,
        reason: RejectReason,
    ) -> Result<(), EngineError> {
        self.resolve(token, Some(reason))
    }

    /// The operator declares the partner down (§9.4).
    pub fn partner_down(&mut self, now: Instant) {
        let wall = self.wall_at(now);
        self.run(now, wall, StateEvent::AdminPartnerDown);
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

    /// Closes the connection in an orderly way: DISCONNECT with `reason`, then close (§7.12).
    pub fn disconnect(&mut self, now: Instant, reason: RejectReason) {
        if matches!(self.link, Link::Down | Link::Closing) {
            return;
        }
        self.push_control(Control::Disconnect(reason));
        self.close(now);
    }

    /// Answers the partner's POOLREQ (after [`Event::PoolRequested`]) with the number of
    /// addresses moved to its pool; the caller then sends them as BNDUPDs (§7.7).
    pub fn pool_response(&mut self, addresses_transferred: u32) {
        if let Some(xid) = self.pending_pool_xid.take()
            && self.link == Link::Up
        {
            self.push_control(Control::PoolResp {
                xid,
                count: addresses_transferred,
            });
        }
    }

    /// Pool balancing (§5.4, §7.6, §7.7) with ISC's thresholds: given this server's counts of
    /// available addresses, decides how many to move to the partner and whether to ask the
    /// partner with POOLREQ. After [`Event::PoolRequested`], call it with
    /// [`BalanceTrigger::PoolReq`]: the POOLRESP carries the number to move. The caller then
    /// moves `plan.to_move()` addresses (walk them with `plan.cursor()` for ISC's choice) and
    /// sends each with [`Engine::send_binding`] as `plan.give_as`.
    pub fn balance_pools(
        &mut self,
        counts: PoolCounts,
        trigger: BalanceTrigger,
    ) -> Result<BalancePlan, BalanceSkipped> {
        let plan = plan_balance(
            self.config.role,
            self.state,
            counts,
            &self.config.balance,
            trigger,
        );
        if trigger == BalanceTrigger::PoolReq {
            let n = plan.map_or(0, |p| p.to_move());
            self.pool_response(n);
        }
        if let Ok(p) = plan
            && p.send_poolreq
        {
            self.request_pool_balance();
        }
        plan
    }

    /// Asks the partner to balance the pools (POOLREQ, §7.6).
    pub fn request_pool_balance(&mut self) {
        if self.link == Link::Up {
            self.push_control(Control::PoolReq);
        }
    }

    // ----- outputs -----

    /// The next event, if any. Poll until `None` after every input, before `poll_transmit`.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        let e = self.events.pop_front()?;
        if matches!(e, Event::PersistState { .. }) {
            self.persist_pending = self.persist_pending.saturating_sub(1);
        }
        Some(e)
    }

    /// Writes the next message to send into `buf` (2048 bytes always suffice) and returns its
    /// length. Nothing is sent while a [`Event::PersistState`] is unpolled (§9.2: persist before
    /// announcing).
    #[must_use]
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        if self.persist_pending > 0 || matches!(self.link, Link::Down) {
            return None;
        }
        if let PdHold::Armed(since) = self.pd_hold {
            // The caller has queued its backlog by now (events come before transmits).
            let until = self.next_seq - 1;
            self.pd_hold = PdHold::Until(until, since);
            self.release_pd_hold();
            if self.persist_pending > 0 {
                return None; // persist NORMAL before announcing it
            }
        }
        let wall = self.wall_at(now).0;
        if let Some(c) = self.control.pop_front() {
            if c == Control::Close {
                self.control.clear();
                self.push_event(Event::CloseConnection);
                return None;
            }
            let n = self.emit_control(c, wall, buf);
            if n.is_some() {
                self.last_tx = Some(now);
            }
            return n;
        }
        if self.link != Link::Up {
            return None;
        }
        if let Some(ack) = self.acks.pop_front() {
            let mut list: Vec<BindingAck<'_>, MAX_BATCH> = Vec::new();
            for (addr, reason) in &ack.items {
                let _ = list.push(BindingAck {
                    reject_reason: *reason,
                    ..BindingAck::accept(Ipv4Addr::from(*addr))
                });
            }
            let msg = BndAck {
                time: wall,
                xid: ack.xid,
                acks: BindingList::from_slice(&list),
                extra: Default::default(),
                digest: None,
            };
            let n = msg.emit(buf).ok();
            self.last_tx = Some(now);
            return n;
        }
        if self.state != ServerState::Startup
            && self.in_flight < self.window()
            && let Some(idx) = self.first_unsent()
        {
            let xid = self.take_xid();
            let o = self.outgoing.iter_mut().nth(idx)?;
            let wire = o.binding.to_wire();
            let n = BndUpd::single(wall, xid, &wire).emit(buf).ok()?;
            o.xid = Some(xid);
            o.sent = wall;
            self.in_flight += 1;
            self.last_tx = Some(now);
            return Some(n);
        }
        None
    }

    /// The first binding not in flight. Bindings are sent in queue order and acknowledged ones
    /// removed, so the ones in flight are the first `in_flight`: look there first.
    fn first_unsent(&self) -> Option<usize> {
        match self.outgoing.iter().nth(self.in_flight) {
            Some(o) if o.xid.is_none() => Some(self.in_flight),
            _ => self.outgoing.iter().position(|o| o.xid.is_none()),
        }
    }

    /// When [`Engine::handle_timeout`] must next be called.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut t: Option<Instant> = None;
        let mut consider = |d: Option<Instant>| {
            if let Some(d) = d {
                t = Some(t.map_or(d, |t| t.min(d)));
            }
        };
        consider(self.handshake_deadline);
        consider(self.startup_deadline);
        consider(self.recover_wait_deadline);
        consider(self.safe_deadline);
        consider(self.linger_deadline);
        if matches!(
            self.link,
            Link::AwaitingConnect | Link::AwaitingConnectAck | Link::AwaitingState | Link::Up
        ) {
            consider(self.last_rx.map(|rx| rx + secs(self.config.receive_timer)));
        }
        if self.link == Link::Up {
            consider(self.contact_due());
        }
        t
    }

    // ----- internals -----

    fn window(&self) -> usize {
        usize::try_from(self.partner_max_unacked.max(1)).unwrap_or(usize::MAX)
    }

    fn contact_due(&self) -> Option<Instant> {
        if !self.control.is_empty() {
            return None; // something is about to be sent anyway
        }
        // CONTACT after ⌊partner receive-timer / 3⌋ s of silence (§7.9.1; ISC the same).
        let every = (self.partner_receive_timer / 3).max(1);
        Some(self.last_tx.or(self.last_rx)? + secs(every))
    }

    fn take_xid(&mut self) -> u32 {
        // ISC never uses xid 0 for a BNDUPD; skip it for every message.
        self.next_xid = self.next_xid.wrapping_add(1);
        if self.next_xid == 0 {
            self.next_xid = 1;
        }
        self.next_xid
    }

    fn push_event(&mut self, e: Event) {
        if matches!(e, Event::PersistState { .. }) {
            self.persist_pending += 1;
        }
        // Inputs are refused without EVENT_HEADROOM free slots, so this cannot overflow.
        let _ = self.events.push_back(e);
    }

    fn push_control(&mut self, c: Control) {
        if matches!(c, Control::State | Control::Contact) && self.control.iter().any(|q| *q == c) {
            return;
        }
        // Bounded: a full queue means the partner is not reading; drop the connection.
        if self.control.push_back(c).is_err() {
            self.control.clear();
            let _ = self.control.push_back(Control::Close);
            self.link = Link::Closing;
        }
    }

    fn close(&mut self, now: Instant) {
        if matches!(self.link, Link::Down | Link::Closing) {
            return;
        }
        let was_up = self.link == Link::Up;
        self.link = Link::Closing;
        self.handshake_deadline = None;
        let _ = self.control.push_back(Control::Close);
        if was_up {
            self.comm_failed(now);
        }
    }

    fn comm_failed(&mut self, now: Instant) {
        self.push_event(Event::CommunicationsFailed);
        let wall = self.wall_at(now);
        self.run(now, wall, StateEvent::CommFailed);
    }

    fn emit_control(&mut self, c: Control, wall: u32, buf: &mut [u8]) -> Option<usize> {
        // Messages we originate take a new xid; answers echo the request's (§6.1).
        let xid = match c {
            Control::ConnectAck { xid, .. }
            | Control::UpdDone { xid }
            | Control::PoolResp { xid, .. } => xid,
            _ => self.take_xid(),
        };
        if matches!(c, Control::UpdReq | Control::UpdReqAll) {
            self.our_request = Some(xid);
            self.our_request_all = c == Control::UpdReqAll;
        }
        let name = Text(&self.config.relationship_name);
        let vendor = Text(&self.config.vendor_class);
        if matches!(
            c,
            Control::Connect | Control::ConnectAck { reject: None, .. }
        ) {
            self.handshake_sent = Some(wall);
        }
        let n = match c {
            Control::Connect => Connect {
                time: wall,
                xid,
                relationship_name: name,
                max_unacked_bndupd: self.config.max_unacked_bndupd,
                receive_timer: self.config.receive_timer,
                vendor_class: vendor,
                protocol_version: PROTOCOL_VERSION,
                tls_request: Some(TlsRequest::NoTls),
                mclt: self.mclt,
                hba: self.hba,
                ..Connect::default()
            }
            .emit(buf),
            Control::ConnectAck { reject, .. } => ConnectAck {
                time: wall,
                xid,
                relationship_name: Some(name),
                max_unacked_bndupd: reject.is_none().then_some(self.config.max_unacked_bndupd),
                receive_timer: reject.is_none().then_some(self.config.receive_timer),
                vendor_class: reject.is_none().then_some(vendor),
                protocol_version: PROTOCOL_VERSION,
                tls_reply: Some(TlsReply::NoTls),
                reject_reason: reject,
                message: reject.map(|r| Text(r.description().as_bytes())),
                ..ConnectAck::default()
            }
            .emit(buf),
            Control::State => {
                let (state, flags, since) = match self.pd_hold {
                    _ if self.state == ServerState::Startup => {
                        (self.previous, ServerFlags::STARTUP, self.state_since)
                    }
                    PdHold::Armed(since) | PdHold::Until(_, since)
                        if self.state == ServerState::Normal =>
                    {
                        (ServerState::PartnerDown, ServerFlags::EMPTY, since)
                    }
                    _ => (self.state, ServerFlags::EMPTY, self.state_since),
                };
                State {
                    time: wall,
                    xid,
                    server_state: state,
                    server_flags: flags,
                    start_time_of_state: since.0,
                    extra: Default::default(),
                    digest: None,
                }
                .emit(buf)
            }
            Control::Contact => Contact {
                time: wall,
                xid,
                ..Contact::default()
            }
            .emit(buf),
            Control::Disconnect(reason) => Disconnect {
                time: wall,
                xid,
                reject_reason: reason,
                message: Some(Text(reason.description().as_bytes())),
                extra: Default::default(),
                digest: None,
            }
            .emit(buf),
            Control::UpdReq | Control::UpdReqAll => {
                if c == Control::UpdReq {
                    UpdReq {
                        time: wall,
                        xid,
                        ..UpdReq::default()
                    }
                    .emit(buf)
                } else {
                    UpdReqAll {
                        time: wall,
                        xid,
                        ..UpdReqAll::default()
                    }
                    .emit(buf)
                }
            }
            Control::UpdDone { .. } => UpdDone {
                time: wall,
                xid,
                ..UpdDone::default()
            }
            .emit(buf),
            Control::PoolReq => PoolReq {
                time: wall,
                xid,
                ..PoolReq::default()
            }
            .emit(buf),
            Control::PoolResp { count, .. } => PoolResp {
                time: wall,
                xid,
                addresses_transferred: count,
                ..PoolResp::default()
            }
            .emit(buf),
            Control::Close => return None,
        };
        n.ok()
    }

    /// Clock skew from a message's header time: our clock minus the partner's (§5.10).
    ///
    /// A message's transit time adds to what it measures, never subtracts: the estimate is the
    /// smallest value seen on the connection. (Taking the last one let a slow STATE inflate
    /// it by seconds, and the received binding times shifted by it reordered a partner's
    /// RELEASED after our newer lease of the same client — found by the simulator.) The
    /// return value is this message's own measurement, for the CONNECT / CONNECTACK check.
    fn measure_skew(&mut self, wall: UnixTime, header_time: u32) -> i64 {
        let skew = i64::from(wall.0) - i64::from(header_time);
        self.skew = Some(self.skew.map_or(skew, |s| s.min(skew)));
        // The first message the partner sent after it had ours (the CONNECTACK answering our
        // CONNECT, or the primary's STATE after our CONNECTACK) bounds the skew from below.
        if self.skew_floor.is_none()
            && let Some(sent) = self.handshake_sent
        {
            self.skew_floor = Some(i64::from(sent) - i64::from(header_time));
        }
        skew
    }

    /// Refines the lower skew bound with an answer (header time `answered_at`) to a message of
    /// ours sent at `sent` (§5.10: "upon receipt of each message, the delta time ... is used
    /// to refine"). A latency spike during the handshake leaves a floor far below the skew,
    /// so 0 fitted between the bounds and no correction was applied; the lease of a partner
    /// whose clock was 10 s behind then ended 10 s early here (simulator, seed 767018). Kept
    /// at most the upper bound, so a clock stepped mid-connection cannot cross the bounds.
    fn raise_skew_floor(&mut self, sent: u32, answered_at: u32) {
        if let (Some(lo), Some(hi)) = (self.skew_floor, self.skew) {
            let measured = i64::from(sent) - i64::from(answered_at);
            self.skew_floor = Some(lo.max(measured.min(hi)));
        }
    }

    /// The correction for the partner's times (§5.10): our clock minus the partner's, as far
    /// as the messages prove it. A message's header time, read on arrival, bounds the skew from
    /// above (plus its transit time); the answer to one of ours bounds it from below (minus
    /// the answer's transit time). Times are whole seconds on both sides, so each bound is good
    /// to a second. No correction when 0 fits within the bounds: a latency spike at connection
    /// time must not shift the partner's times by the transit delay, which reorders a release
    /// and a renewal made a second apart (found by the `pair` fuzz target). Otherwise the upper
    /// bound, the smallest difference seen on arrival: both servers measure it the same way, so
    /// their corrections mirror each other and they order two events a second apart alike (the
    /// bound nearer 0, or the middle rounded, made each reject the other's update: seeds 528901,
    /// 21240).
    fn skew_correction(&self) -> Option<i64> {
        let hi = self.skew?;
        if let Some(lo) = self.skew_floor
            && lo - 1 <= 0
            && 0 <= hi + 1
        {
            return None;
        }
        Some(hi).filter(|s| *s != 0)
    }

    /// How far the partner's corrected times may still be off ours, seconds: the skew bounds
    /// around the correction applied, plus a second for whole-second times.
    fn skew_uncertainty(&self) -> u32 {
        let applied = self.skew_correction().unwrap_or(0);
        let off = match (self.skew, self.skew_floor) {
            (Some(hi), Some(lo)) => (hi - applied).abs().max((applied - lo).abs()),
            _ => 0,
        };
        u32::try_from(off + 1).unwrap_or(u32::MAX)
    }

    /// Crossing updates of one client's lease (ours still queued or in flight) whose
    /// client-last-transaction-times are closer than the clocks can tell apart: a release or
    /// expiry at one server and a renewal at the other a second or two apart. Their order is
    /// unknowable, so both servers keep the lease (draft time rule (1), §7.1.3, read with the
    /// clock uncertainty of §5.10): the address then ends with the lease instead of being
    /// freed on one side while the client holds it (found by the `pair` fuzz target, with a
    /// latency spike at connection time inflating the measured skew).
    fn order_crossing_updates(
        &self,
        local: &mut LocalBinding,
        received: &BindingData,
        now: UnixTime,
    ) {
        use failover_proto::BindingStatus::{Active, Expired, Released};
        let address = received.address;
        let crossing = self
            .presence
            .get(presence_bucket(&address))
            .is_some_and(|n| *n > 0)
            && self.outgoing.iter().any(|o| o.binding.address == address);
        let (Some(ours), Some(theirs)) = (local.cltt, received.client_last_transaction_time) else {
            return;
        };
        let uncertainty = self.skew_uncertainty();
        if !crossing
            || local
                .client
                .same_client(&ClientIdentity::of(&received.to_wire()))
                != Some(true)
            || ours.0.abs_diff(theirs.0) > uncertainty
        {
            return;
        }
        let margin = uncertainty.saturating_add(1);
        // Only a lease still running is kept: an ended ACTIVE and an EXPIRED of the same lease
        // say the same, and the draft settles those by the expiry time (time(2)).
        let running = |t: Option<UnixTime>| t.is_some_and(|t| t > now);
        match (local.status, received.status) {
            // Theirs ends our running lease: take it as older than ours.
            (Active, Expired | Released) if running(local.lease_expiration) => {
                local.cltt = Some(theirs.plus(margin));
            }
            // Theirs renews it: take it as newer than ours.
            (Expired | Released, Active) if running(received.lease_expiration_time) => {
                local.cltt = Some(UnixTime(theirs.0.saturating_sub(margin)));
            }
            _ => {}
        }
    }

    fn skew_ok(&self, skew: i64) -> bool {
        skew.unsigned_abs() <= u64::from(self.config.max_clock_skew)
    }

    /// A time from the partner, in our clock: corrected by the skew under the draft (§5.10),
    /// taken as is under ISC rules (ISC does not correct, D27).
    fn partner_time(&self, t: u32) -> UnixTime {
        match (self.config.dialect, self.skew_correction()) {
            (Dialect::Draft, Some(skew)) if t != 0 => {
                UnixTime(u32::try_from((i64::from(t) + skew).max(0)).unwrap_or(u32::MAX))
            }
            _ => UnixTime(t),
        }
    }

    fn protocol_error(&mut self, now: Instant, error: DecodeError, reason: RejectReason) {
        self.push_event(Event::ProtocolError { error });
        self.last_reject = Some(reason);
        self.push_control(Control::Disconnect(reason));
        self.close(now);
    }

    fn out_of_place(&mut self, now: Instant, t: MessageType, reason: RejectReason) {
        let error = DecodeError::new(
            DecodeErrorKind::WrongMessageType {
                expected: 0,
                found: t.into(),
            },
            2,
        );
        self.protocol_error(now, error, reason);
    }

    fn malformed(&mut self, now: Instant, bytes: &[u8], error: DecodeError) {
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
                    && self.incoming.len() + self.acks.len() < COMMITS =>
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

    fn reject_now(&mut self, xid: u32, address: [u8; 4], reason: RejectReason) {
        self.last_reject = Some(reason);
        self.push_event(Event::RejectedPartnerBinding { address, reason });
        let mut items = Vec::new();
        let _ = items.push((address, Some(reason)));
        if self.acks.push_back(AckOut { xid, items }).is_err() {
            self.link = Link::Closing;
            let _ = self.control.push_back(Control::Close);
        }
    }

    fn handle_repr(&mut self, now: Instant, wall: UnixTime, repr: Repr<'_>, db: &impl LeaseLookup) {
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
                self.last_reject = Some(d.reject_reason);
                self.push_event(Event::PartnerDisconnected {
                    reason: d.reject_reason,
                });
                self.close(now);
            }
            (Repr::Optional(_), _) => {} // §6.1: optional types are ignored.
            (Repr::Contact(_), Link::AwaitingState | Link::Up) => {}
            (Repr::State(s), Link::AwaitingState | Link::Up) => self.on_state(now, wall, &s),
            (Repr::BndUpd(u), Link::Up) => {
                // Received and not yet acknowledged: awaiting commit, or BNDACK not yet sent.
                let unacked = self.incoming.len() + self.acks.len();
                if u.bindings.len() > MAX_BATCH || unacked >= COMMITS {
                    // More than we advertised in flight (§8.4), or a batch we cannot hold.
                    let error = DecodeError::new(
                        DecodeErrorKind::WrongMessageType {
                            expected: 4,
                            found: 3,
                        },
                        2,
                    );
                    self.protocol_error(now, error, RejectReason::UnknownConnectionReason);
                } else {
                    self.on_bndupd(u.xid, &u, wall, db);
                }
            }
            (Repr::BndAck(a), Link::Up) => self.on_bndack(&a),
            (Repr::UpdReq(r), Link::Up) => self.on_update_request(r.xid, false),
            (Repr::UpdReqAll(r), Link::Up) => self.on_update_request(r.xid, true),
            (Repr::UpdDone(_), Link::Up) => {
                if self.our_request.take().is_some() {
                    if self.our_request_all {
                        self.lost_storage = false;
                        if self.refresh_from_partner {
                            self.refresh_from_partner = false;
                            self.push_event(Event::PersistLeaseTableLost { lost: false });
                        }
                    }
                    self.push_event(Event::UpdatesReceived);
                    if self.state == ServerState::Recover && !self.outgoing.is_empty() {
                        // Our own changes go first: RECOVER-WAIT / RECOVER-DONE lets a partner
                        // in RECOVER-DONE start serving (ISC restarts in RECOVER after a
                        // SHUTDOWN, with what it did in PARTNER-DOWN still to send; found by
                        // the simulator, seed 7896 of the extra faults).
                        self.upddone_hold = Some(self.next_seq - 1);
                    } else {
                        self.run(now, wall, StateEvent::UpdDone);
                    }
                }
            }
            (Repr::PoolReq(r), Link::Up) => {
                // ISC balances from both roles; the caller decides how many to move.
                self.push_event(Event::PoolRequested);
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

impl<const QUEUE: usize, const COMMITS: usize, const EVENTS: usize> Engine<QUEUE, COMMITS, EVENTS> {
    /// Refuses a CONNECT: CONNECTACK with `reason`, then close (§7.8.2).
    fn reject_connect(&mut self, now: Instant, xid: u32, reason: RejectReason) {
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

    fn on_connect(&mut self, now: Instant, wall: UnixTime, c: &Connect<'_>) {
        let skew = self.measure_skew(wall, c.time);
        let draft = self.config.dialect == Dialect::Draft;
        // §7.8.2, in ISC's order: relationship, time, (HBA: checked by the codec), MCLT.
        let reject = if c.relationship_name.0 != &self.config.relationship_name[..] {
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
        };
        if let Some(reason) = reject {
            self.reject_connect(now, c.xid, reason);
            return;
        }
        if c.mclt < self.mclt && (self.agreed_mclt.is_some() || self.had_persisted) {
            // Leases granted under the larger MCLT may run that long from now (§5.2.1). A new
            // server (no persisted state, no MCLT learned yet) has granted none.
            let m = self.wait_mclt(wall);
            self.mclt_before = Some((m, Some(wall.plus(m))));
        }
        self.mclt = c.mclt;
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

    fn on_connectack(&mut self, now: Instant, wall: UnixTime, a: &ConnectAck<'_>) {
        let skew = self.measure_skew(wall, a.time);
        if let Some(reason) = a.reject_reason {
            // Rejected: log and close, no DISCONNECT (ISC does the same).
            self.last_reject = Some(reason);
            self.push_event(Event::ConnectionRejected {
                reason,
                by_partner: true,
            });
            self.close(now);
            return;
        }
        let reject = if a.relationship_name.map(|n| n.0) != Some(&self.config.relationship_name[..])
        {
            Some(RejectReason::InvalidPartner)
        } else if !self.skew_ok(skew) {
            Some(RejectReason::TimeMismatch)
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
        self.partner_receive_timer = a.receive_timer.unwrap_or(0);
        self.mclt_agreed(wall);
        self.push_control(Control::State);
        self.link = Link::AwaitingState;
    }

    fn on_state(&mut self, now: Instant, wall: UnixTime, s: &State<'_>) {
        self.measure_skew(wall, s.time);
        let since = self.partner_time(s.start_time_of_state);
        let startup = s.server_flags.contains(ServerFlags::STARTUP);
        let first = self.link == Link::AwaitingState;
        if first {
            self.link = Link::Up;
            self.handshake_deadline = None;
            self.push_event(Event::CommunicationsOk);
        }
        let changed =
            first || self.partner_state != Some(s.server_state) || self.partner_startup != startup;
        self.push_event(Event::PartnerStateChanged {
            state: s.server_state,
            since,
            startup,
        });
        if changed {
            self.run(
                now,
                wall,
                StateEvent::PartnerState {
                    state: s.server_state,
                    startup,
                    since,
                },
            );
        }
        self.partner_startup = startup;
        self.partner_state = Some(s.server_state);
        self.partner_since = Some(since);
        self.state_seen = true;
        if first && self.state == ServerState::Recover {
            self.request_updates_once();
            // What we changed and the partner has not acknowledged (a restart in RECOVER
            // after a SHUTDOWN in PARTNER-DOWN) goes out now, not only on reaching NORMAL.
            self.push_event(Event::SendBacklog);
        }
        if first && self.state == ServerState::RecoverWait && self.recover_wait_over {
            self.recover_wait_over = false;
            self.run(now, wall, StateEvent::RecoverWaitExpired);
        }
        // SHUTDOWN lingers only to see the partner take over (§9.14.2): it has.
        if self.state == ServerState::Shutdown
            && s.server_state == ServerState::PartnerDown
            && self.linger_deadline.take().is_some()
        {
            self.close(now);
        }
    }

    /// In RECOVER, every new connection asks for updates (§9.5.2; 04 §6.7: re-issue the
    /// request on reconnect), whatever the partner's state. ISC's table only asks when the
    /// partner is in COMMUNICATIONS-INTERRUPTED, PARTNER-DOWN or RECOVER: with a partner in
    /// RECOVER-WAIT or RECOVER-DONE a server that entered RECOVER while disconnected would
    /// wait forever, and so would its partner.
    fn request_updates_once(&mut self) {
        let queued = self
            .control
            .iter()
            .any(|c| matches!(c, Control::UpdReq | Control::UpdReqAll));
        if self.our_request.is_none() && !queued && self.link == Link::Up {
            self.push_control(
                if self.config.dialect == Dialect::Isc || self.lost_storage {
                    Control::UpdReqAll
                } else {
                    Control::UpdReq
                },
            );
        }
    }

    fn on_bndupd(&mut self, xid: u32, u: &BndUpd<'_>, wall: UnixTime, db: &impl LeaseLookup) {
        let mut incoming = Incoming {
            xid,
            generation: self.generation,
            items: Vec::new(),
        };
        let mut pending = 0;
        for b in u.bindings.iter() {
            let address = b.address.octets();
            let result = match BindingData::from_wire(&b) {
                // ISC rejects over-long client data with reason 6.
                Err(_) => Err(RejectReason::UnknownConnectionReason),
                Ok(data) => {
                    let data = match (self.config.dialect, self.skew_correction()) {
                        (Dialect::Draft, Some(skew)) => data.shifted(skew),
                        _ => data,
                    };
                    self.judge(db.lookup(b.address), &data, wall)
                        .map(|verdict| (data, verdict))
                }
            };
            let item = match result {
                Ok((binding, verdict)) => {
                    self.supersede(&binding);
                    let token = self.next_token;
                    self.next_token += 1;
                    pending += 1;
                    self.push_event(Event::CommitBinding {
                        token: CommitToken(token),
                        binding,
                        verdict,
                    });
                    (address, token, None)
                }
                Err(reason) => {
                    self.last_reject = Some(reason);
                    self.push_event(Event::RejectedPartnerBinding { address, reason });
                    (address, 0, Some(Some(reason)))
                }
            };
            // The codec and the caller of this function bound the batch to MAX_BATCH.
            let _ = incoming.items.push(item);
        }
        if pending == 0 {
            self.finish_incoming(incoming);
        } else {
            // Room was checked before (flow control: at most max-unacked in flight).
            let _ = self.incoming.push(incoming);
        }
    }

    fn finish_incoming(&mut self, inc: Incoming) {
        if inc.generation != self.generation || self.link != Link::Up {
            return; // its BNDACK belongs to a dead connection (§8.6)
        }
        let mut items = Vec::new();
        for (addr, _, result) in &inc.items {
            let _ = items.push((*addr, result.flatten()));
        }
        if self
            .acks
            .push_back(AckOut {
                xid: inc.xid,
                items,
            })
            .is_err()
        {
            self.link = Link::Closing;
            let _ = self.control.push_back(Control::Close);
        }
    }

    fn resolve(
        &mut self,
        token: CommitToken,
        reason: Option<RejectReason>,
    ) -> Result<(), EngineError> {
        let (i, j) = self
            .incoming
            .iter()
            .enumerate()
            .find_map(|(i, inc)| {
                inc.items
                    .iter()
                    .position(|(_, t, r)| *t == token.0 && r.is_none())
                    .map(|j| (i, j))
            })
            .ok_or(EngineError::UnknownToken)?;
        let inc = self.incoming.get_mut(i).ok_or(EngineError::UnknownToken)?;
        if let Some(item) = inc.items.get_mut(j) {
            item.2 = Some(reason);
        }
        if let Some(r) = reason {
            self.last_reject = Some(r);
        }
        if inc.items.iter().all(|(_, _, r)| r.is_some()) {
            let inc = self.incoming.remove(i);
            self.finish_incoming(inc);
        }
        Ok(())
    }

    fn on_bndack(&mut self, a: &BndAck<'_>) {
        for ack in a.acks.iter() {
            let address = ack.address.octets();
            let Some(idx) = self
                .outgoing
                .iter()
                .position(|o| o.xid == Some(a.xid) && o.binding.address == address)
            else {
                continue; // unknown or stale xid: ignored, as ISC does
            };
            let Some(o) = self.remove_outgoing(idx) else {
                continue;
            };
            self.raise_skew_floor(o.sent, a.time);
            self.in_flight = self.in_flight.saturating_sub(1);
            match ack.reject_reason {
                None => self.push_event(Event::BindingAcked {
                    address,
                    status: o.binding.status,
                    potential_expiration_time: o.binding.potential_expiration_time,
                }),
                Some(reason) => {
                    self.last_reject = Some(reason);
                    self.push_event(Event::BindingRejected { address, reason });
                }
            }
        }
        self.release_pd_hold();
        self.check_upddone();
    }

    /// Announces NORMAL once the bindings held back by [`PdHold`] are acknowledged.
    fn release_pd_hold(&mut self) {
        if let PdHold::Until(until, _) = self.pd_hold
            && self.outgoing.iter().all(|o| o.seq > until)
        {
            self.pd_hold = PdHold::Off;
            self.push_event(Event::PersistState {
                state: self.state,
                since: self.state_since,
            });
            if matches!(self.link, Link::AwaitingState | Link::Up) {
                self.push_control(Control::State);
            }
        }
    }

    /// We accept the partner's `received` binding: our queued copies of that address that
    /// are not more recent than it (client-last-transaction-time, else start-time-of-state)
    /// are stale. One not sent yet is dropped; one in flight is left to its BNDACK but not sent
    /// again after a reconnect. (The queue holds copies, not the current record: sending a
    /// stale one would overwrite the partner's newer binding.) A more recent copy of ours
    /// stays queued: the acceptance rules can take an older binding (same-client ACTIVE), and
    /// dropping ours would lose the newer lease. If the commit fails, the caller queues its
    /// record again.
    fn supersede(&mut self, received: &BindingData) {
        if self
            .presence
            .get(presence_bucket(&received.address))
            .is_some_and(|n| *n == 0)
        {
            return; // nothing of ours queued for this address
        }
        let recency = |b: &BindingData| b.client_last_transaction_time.or(b.start_time_of_state);
        let theirs = recency(received);
        // ISC's rules accepted the partner's binding over ours (its dueling rule, Q2 of the ISC
        // notes): our record is now theirs, and ISC's queue sends a lease's current state, so
        // none of our copies stands — except the same client's longer lease, which the
        // partner must still hear of. (Found by the simulator: a queued RELEASED sent after we
        // took the primary's BACKUP made the primary free an address we were leasing.)
        let isc = self.config.dialect == Dialect::Isc;
        let stale = |o: &Outgoing| {
            o.binding.address == received.address
                && if isc {
                    !longer_lease(&o.binding, received)
                } else {
                    match (recency(&o.binding), theirs) {
                        (Some(ours), Some(theirs)) => {
                            ours < theirs || (ours == theirs && !longer_lease(&o.binding, received))
                        }
                        (None, _) => true,
                        (Some(_), None) => false,
                    }
                }
        };
        let mut dropped = false;
        while let Some(idx) = self
            .outgoing
            .iter()
            .position(|o| o.xid.is_none() && stale(o))
        {
            let _ = self.remove_outgoing(idx);
            dropped = true;
        }
        for o in self.outgoing.iter_mut() {
            if stale(o) {
                o.superseded = true;
            }
        }
        if dropped {
            // A dropped binding may have been the last one an UPDDONE or the PARTNER-DOWN
            // hold waited for: no BNDACK will come for it to trigger them.
            self.check_upddone();
            self.release_pd_hold();
        }
    }

    /// Everything sent and not acknowledged goes back to the queue (a new connection, or ISC's
    /// re-queue on leaving some states), except what a partner's binding superseded.
    fn requeue_unacked(&mut self) {
        while let Some(idx) = self.outgoing.iter().position(|o| o.superseded) {
            let _ = self.remove_outgoing(idx);
        }
        for o in self.outgoing.iter_mut() {
            o.xid = None;
        }
        // One copy per address, with the newest data: an older one was in flight when a newer
        // change was queued behind it (`send_binding` replaces only unsent copies); sending it
        // again would put an outdated binding before the current one. The newest data takes
        // the place (and sequence number) of the oldest copy, so that what an UPDDONE or the
        // PARTNER-DOWN hold waits for still waits for it (found by the simulator: the hold was
        // released with the newer copy of a PARTNER-DOWN lease still unsent).
        let mut idx = 0;
        while let Some(o) = self.outgoing.iter().nth(idx) {
            let address = o.binding.address;
            let later = self
                .outgoing
                .iter()
                .skip(idx + 1)
                .position(|n| n.binding.address == address);
            match later.and_then(|k| self.remove_outgoing(idx + 1 + k)) {
                Some(newer) => {
                    if let Some(o) = self.outgoing.iter_mut().nth(idx) {
                        o.binding = newer.binding;
                    }
                }
                None => idx += 1,
            }
        }
        self.in_flight = 0;
        self.check_upddone();
        self.release_pd_hold();
    }

    fn remove_outgoing(&mut self, idx: usize) -> Option<Outgoing> {
        let removed = self.take_outgoing(idx)?;
        if let Some(n) = self
            .presence
            .get_mut(presence_bucket(&removed.binding.address))
        {
            *n = n.saturating_sub(1);
        }
        Some(removed)
    }

    fn take_outgoing(&mut self, idx: usize) -> Option<Outgoing> {
        if idx == 0 {
            return self.outgoing.pop_front();
        }
        // Rotate once through the queue, keeping order, leaving out `idx`.
        let n = self.outgoing.len();
        let mut removed = None;
        for i in 0..n {
            let o = self.outgoing.pop_front()?;
            if i == idx {
                removed = Some(o);
            } else {
                let _ = self.outgoing.push_back(o);
            }
        }
        removed
    }

    fn on_update_request(&mut self, xid: u32, all: bool) {
        // A newer request replaces one still being answered (ISC: "silently discarding").
        if self.refresh_from_partner {
            // Our own table is being refreshed from the partner (lost, or an older copy
            // restored): nothing in it is worth sending, and a stale record would overwrite the
            // partner's current one while the partner's overwrites ours (both recovering, found
            // by the simulator: seed 97404). Answer at once, with what we already queued.
            self.partner_request = Some(PartnerRequest {
                xid,
                until_seq: Some(self.next_seq - 1),
            });
            self.check_upddone();
            return;
        }
        self.partner_request = Some(PartnerRequest {
            xid,
            until_seq: None,
        });
        self.push_event(if all {
            Event::SendAllBindings
        } else {
            Event::SendUnackedBindings
        });
    }

    fn check_upddone(&mut self) {
        let Some(PartnerRequest {
            xid,
            until_seq: Some(until),
        }) = self.partner_request
        else {
            return;
        };
        if self.outgoing.iter().all(|o| o.seq > until) {
            self.partner_request = None;
            self.push_control(Control::UpdDone { xid });
        }
    }

    fn judge(
        &self,
        local: Option<LocalBinding>,
        received: &BindingData,
        wall: UnixTime,
    ) -> Result<Verdict, RejectReason> {
        let Some(mut local) = local else {
            return Err(RejectReason::IllegalIpAddress);
        };
        let ours_in_flight = local.in_flight;
        if self.config.dialect == Dialect::Draft && !self.refresh_from_partner {
            self.order_crossing_updates(&mut local, received, wall);
        }
        if self.refresh_from_partner {
            // Refreshing a lost lease table from the partner (§9.5: "refresh its stable
            // storage from the other server"). Whatever we hold is a restored older copy at
            // best; the partner's table is the reference, so judge as an empty store would
            // (found by the simulator: a restored lease that had since ended refused the
            // partner's BACKUP, and both then served the address).
            local = LocalBinding {
                reserved: local.reserved,
                bootp: local.bootp,
                ..LocalBinding::new(failover_proto::BindingStatus::Free)
            };
        }
        let verdict = judge_update(
            self.config.dialect,
            self.config.role,
            self.state,
            Some(&local),
            &received.to_wire(),
            wall,
        )?;
        // Taken over ours in a refresh, whatever of ours is in flight is superseded (the
        // caller clears its outstanding flag on that; a stale one made ISC's dueling rule
        // refuse the partner's later updates, seed 503470).
        let refreshed = ours_in_flight.filter(|_| self.refresh_from_partner);
        Ok(Verdict {
            superseded_xid: verdict.superseded_xid.or(refreshed),
            ..verdict
        })
    }

    fn context(&self, wall: UnixTime) -> Context {
        Context {
            previous: self.previous,
            last_operational: self.last_operational,
            recover_wait_until: matches!(
                self.state,
                ServerState::Recover | ServerState::RecoverWait
            )
            .then(|| self.state_since.plus(self.wait_mclt(wall))),
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
    fn run(&mut self, now: Instant, wall: UnixTime, event: StateEvent) {
        let ctx = self.context(wall);
        let t = transition::step(self.state, &event, &ctx);
        let from = self.state;
        if let Some(next) = t.next
            && next != self.state
        {
            self.set_state(now, wall, next);
        }
        self.apply(now, wall, from, t.actions);
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
        if from == ServerState::Startup {
            self.startup_deadline = None;
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
        self.push_event(Event::PersistState {
            state: persist,
            since: persist_since,
        });
        self.push_event(Event::StateChanged { from, to: next });
        if matches!(self.link, Link::AwaitingState | Link::Up) {
            self.push_control(Control::State);
        }
        // Timers belong to the state they were started in.
        self.safe_deadline = None;
        self.recover_wait_deadline = None;
        self.recover_wait_over = false;
        self.linger_deadline = None;
        let _ = now;
    }

    fn apply(&mut self, now: Instant, wall: UnixTime, from: ServerState, actions: Actions) {
        let up = self.link == Link::Up;
        // ISC re-queues its ack queue on leaving some states. On a live connection the
        // BNDACKs of what is in flight are still coming: sending it all again would exceed the
        // partner's max-unacked-bndupd (a protocol error there, §8.4). Without a connection
        // `connection_down` has re-queued everything already.
        if actions.contains(Actions::REQUEUE_UNACKED) && !matches!(self.link, Link::Up) {
            self.requeue_unacked();
        }
        // One request at a time: a repeated STATE must not ask for the whole table again
        // while the first answer is still coming (§7.3, §7.4).
        let requesting = self.our_request.is_some()
            || self
                .control
                .iter()
                .any(|c| matches!(c, Control::UpdReq | Control::UpdReqAll));
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
            self.push_event(Event::SendBacklog);
        }
        if actions.contains(Actions::SEND_POOLREQ) && up {
            self.push_control(Control::PoolReq);
        }
        if actions.contains(Actions::POOL_CHECK) {
            self.push_event(Event::PoolCheck);
        }
        if actions.contains(Actions::ALARM) {
            self.push_event(Event::Alarm {
                state: self.state,
                partner_state: self.partner_state,
            });
        }
        if actions.contains(Actions::SAVE_RESTART_STATE) {
            let restart = if from == ServerState::Startup {
                self.previous
            } else {
                from
            };
            self.push_event(Event::PersistState {
                state: restart,
                since: self.state_since,
            });
        }
        if actions.contains(Actions::RESTART_IN_RECOVER) {
            self.push_event(Event::PersistState {
                state: ServerState::Recover,
                since: wall,
            });
        }
        if actions.contains(Actions::RECORD_LAST_OPERATIONAL) {
            self.last_operational = Some(wall);
            self.push_event(Event::PersistLastOperational { at: wall });
        }
        if actions.contains(Actions::START_SAFE_TIMER)
            && let Some(period) = self.config.auto_partner_down
        {
            self.safe_deadline = Some(now + secs(period));
        }
        if actions.contains(Actions::START_RECOVER_WAIT) {
            // Until the start of RECOVER + MCLT (ISC; §9.6.2 allows the failure time instead).
            let until = self.state_since.plus(self.wait_mclt(wall));
            self.recover_wait_deadline = Some(now + secs(until.secs_since(wall)));
        }
        if actions.contains(Actions::DISCONNECT) {
            if self.state == ServerState::Shutdown && up {
                // Linger to see whether the partner enters PARTNER-DOWN (§9.14.2).
                self.linger_deadline = Some(now + Duration::from_secs(SHUTDOWN_LINGER));
            } else {
                self.close(now);
            }
        }
    }
}

/// `ours` is the same client's running lease as `theirs`, with a later lease-expiration-time:
/// both servers answered the client within the same second (a broadcast REQUEST), and the
/// partner must hear of the longer lease (the merged record keeps the later time, §7.1.5).
fn longer_lease(ours: &BindingData, theirs: &BindingData) -> bool {
    ours.status == failover_proto::BindingStatus::Active
        && theirs.status == failover_proto::BindingStatus::Active
        && ours.hardware_address == theirs.hardware_address
        && ours.client_identifier == theirs.client_identifier
        && ours.lease_expiration_time > theirs.lease_expiration_time
}

/// Buckets of the filter that tells `send_binding` whether an address may be queued.
const PRESENCE: usize = 1024;

/// The filter bucket of an address (Fibonacci hashing: sequential pools spread evenly).
fn presence_bucket(address: &[u8; 4]) -> usize {
    (u32::from_be_bytes(*address).wrapping_mul(0x9E37_79B1) >> 22) as usize % PRESENCE
}

fn secs(s: u32) -> Duration {
    Duration::from_secs(u64::from(s))
}
