//! The failover endpoint: one relationship, one role, driven by the caller.
//!
//! See the crate documentation for the four API groups and the polling order.
//!
//! [`Engine`] is the hub: it keeps the public API and dispatches inputs. Each piece of its
//! state lives in a module of its own: `timer` (every deadline, and what each does when it
//! expires), `outgoing` (our binding updates and flow control), `incoming` (the partner's updates awaiting commit, and their
//! BNDACKs), `control` (the other messages), `skew` (§5.10), `mclt` (§5.2.1), `persist`
//! (what survives a restart), `recovery` (update requests and the holds that order state
//! announcements after them). `handshake` handles the connection messages, `update` the
//! binding updates, `state` runs the state machine of [`crate::transition`]. The wire of each
//! family is its own module: `wire4` (draft-12) and `wire6` (RFC 8156), over `family`.

use core::net::Ipv4Addr;
use core::time::Duration;

use failover_proto::{DecodeError, DecodeErrorKind, Hba, RejectReason, Role, ServerState};
use heapless::Deque;

use crate::accept::LocalBinding;
use crate::binding::BindingSource;
use crate::config::{Config, ConfigError};
use crate::time::{Instant, UnixTime};
use crate::transition::{self, StateEvent};

mod balance;
mod control;
mod counters;
mod family;
mod handshake;
mod incoming;
mod mclt;
mod outgoing;
mod output;
mod persist;
mod recovery;
mod skew;
mod state;
mod status;
mod timer;
mod update;
mod wire4;
mod wire6;
use wire6::EchoStore;
pub use wire6::{BindingHandle, BindingSource6, LeaseLookup6, MAX_ECHO, UpdateSink6};

use control::{CONTROL_CAPACITY, Control};
pub use counters::{Counters, REJECT_SLOTS};
pub use family::{Family, V4, V6};
use incoming::IncomingQueue;
use mclt::Mclt;
use outgoing::{OutgoingQueue, Sent};
use output::Outputs;
pub use output::{Action, Commit, CommitSink, CommitToken, Commits, Event, UpdateId};
use persist::Persistence;
pub use persist::{PersistToken, Persisted};
use recovery::{PdHold, Requests};
use skew::Skew;
pub use status::{Link, RelationshipName, Status};
use timer::{Timer, TimerTable};

/// Most binding transactions accepted in one received BNDUPD (ISC sends one).
pub const MAX_BATCH: usize = 8;
/// How long after [`Engine::persist_failed`] the engine asks again.
pub const PERSIST_RETRY: Duration = Duration::from_secs(1);

/// Answers the engine needs from the caller's lease database to judge a received BNDUPD
/// (§7.1.3).
pub trait LeaseLookup {
    /// The local binding of `address`, or `None` when the address is not in any pool of this
    /// relationship (answered with reject-reason 1).
    fn lookup(&self, address: Ipv4Addr) -> Option<LocalBinding>;
}

/// A command or input the engine refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum EngineError {
    /// The binding queue is full: retry after acknowledgements free space (back-pressure).
    QueueFull,
    /// Poll actions and events first: too few output slots are free to process more input.
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
    /// The operator's PARTNER-DOWN is taken unforced only while communications are
    /// interrupted (COMMUNICATIONS-INTERRUPTED, RESOLUTION-INTERRUPTED): in any other state
    /// the partner may be serving clients. See [`Engine::partner_down`].
    NotInterrupted {
        /// Our state.
        state: ServerState,
    },
    /// The rule book has no operator PARTNER-DOWN from this state, even forced (draft: only
    /// from NORMAL and the interrupted states; ISC: any state).
    NoTransition {
        /// Our state.
        state: ServerState,
    },
}

impl core::fmt::Display for EngineError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            EngineError::QueueFull => "binding queue full",
            EngineError::EventsPending => "poll actions and events before giving more input",
            EngineError::AlreadyConnected => "a connection is already up",
            EngineError::NotConnected => "no connection",
            EngineError::UnknownToken => "unknown or already used token",
            EngineError::IncompleteBinding => "binding lacks the options its status requires",
            EngineError::NotInterrupted { state } => {
                return write!(
                    f,
                    "{state}: PARTNER-DOWN only while communications are interrupted, unless forced"
                );
            }
            EngineError::NoTransition { state } => {
                return write!(f, "no transition to PARTNER-DOWN from {state}");
            }
        })
    }
}

impl core::error::Error for EngineError {}

/// A failover endpoint (§5.1): the state machine, the connection protocol and binding-update
/// flow control for one relationship.
///
/// # API groups
///
/// * **Inputs** — what happened: [`connection_up`](Engine::connection_up) /
///   [`connection_down`](Engine::connection_down), [`handle_message`](Engine::handle_message),
///   [`handle_timeout`](Engine::handle_timeout), and the confirmations of actions:
///   [`persist_complete`](Engine::persist_complete) / [`persist_failed`](Engine::persist_failed),
///   [`binding_committed`](Engine::binding_committed) /
///   [`binding_commit_failed`](Engine::binding_commit_failed).
/// * **Commands** — what the DHCP server or an operator wants:
///   [`send_binding`](Engine::send_binding), [`end_of_updates`](Engine::end_of_updates),
///   [`partner_down`](Engine::partner_down), [`shutdown`](Engine::shutdown),
///   [`pause`](Engine::pause), [`disconnect`](Engine::disconnect),
///   [`pool_response`](Engine::pool_response), [`balance_pools`](Engine::balance_pools),
///   [`request_pool_balance`](Engine::request_pool_balance),
///   [`lease_table_lost`](Engine::lease_table_lost).
/// * **Queries**: [`state`](Engine::state), [`partner_state`](Engine::partner_state),
///   [`status`](Engine::status), [`link`](Engine::link),
///   [`is_communicating`](Engine::is_communicating), [`mclt`](Engine::mclt),
///   [`endpoint`](Engine::endpoint), [`hba`](Engine::hba), [`config`](Engine::config),
///   [`send_queue_space`](Engine::send_queue_space), [`wall_at`](Engine::wall_at).
/// * **Outputs**, polled after every input or command, in this order:
///   1. [`poll_action`](Engine::poll_action) until `None`, carrying out each [`Action`]
///      before polling the next (persist, commit, queue bindings, close...);
///   2. [`poll_event`](Engine::poll_event) until `None` ([`Event`]s are informational);
///   3. [`poll_transmit`](Engine::poll_transmit) until `None`, writing each message to the
///      connection (then close it if [`Action::CloseConnection`] said so);
///   4. [`poll_timeout`](Engine::poll_timeout): when to call `handle_timeout` next.
///
///   Only `poll_action` and `poll_event` hand out actions and events; `poll_transmit` and
///   `poll_timeout` never create any. Inputs are refused with [`EngineError::EventsPending`]
///   while too few output slots are free.
///
///   The partner's bindings are not outputs: [`handle_message`](Engine::handle_message) hands
///   each one it accepts to the caller's [`CommitSink`] while it reads the BNDUPD.
///
/// # Persistence
///
/// Whenever a field of [`Persisted`] changes, the engine hands out the whole snapshot as
/// [`Action::Persist`]; changes made by one input, or while a write is outstanding, are
/// coalesced into one snapshot, and only one write is outstanding at a time. The caller
/// answers with [`persist_complete`](Engine::persist_complete) — possibly several inputs
/// later — or [`persist_failed`](Engine::persist_failed). No STATE announcing a state goes out
/// before the snapshot holding that state is confirmed (§9.2), and what was queued after that
/// STATE waits behind it, so the partner hears everything in the order it was decided. After a
/// failure the STATE stays unsent, [`Event::PersistFailed`] says so, and the snapshot (with
/// whatever changed meanwhile) is asked for again [`PERSIST_RETRY`] later.
///
/// # Capacities
///
/// Const generics: `QUEUE` bindings queued to send (in flight included), `COMMITS` received
/// BNDUPDs awaiting the caller's commit (at least the advertised max-unacked-bndupd),
/// `EVENTS` undelivered actions, and as many undelivered events (at least 32).
#[derive(Debug)]
pub struct Engine<
    const QUEUE: usize = 256,
    const COMMITS: usize = 128,
    const EVENTS: usize = 64,
    F: Family = V4,
> {
    family: core::marker::PhantomData<F>,
    config: Config,
    // Failover state (§9).
    state: ServerState,
    state_since: UnixTime,
    previous: ServerState,
    partner_state: Option<ServerState>,
    partner_since: Option<UnixTime>,
    /// The partner announced STARTUP (server-flags S) in its last STATE.
    partner_startup: bool,
    last_operational: Option<UnixTime>,
    mclt: Mclt,
    hba: Hba,
    // Clock: wall time anchored to a monotonic instant.
    anchor: (Instant, UnixTime),
    // Connection.
    link: Link,
    next_xid: u32,
    partner_max_unacked: u32,
    partner_receive_timer: u32,
    last_rx: Option<Instant>,
    last_tx: Option<Instant>,
    /// A STATE arrived on the current connection.
    state_seen: bool,
    skew: Skew,
    last_reject: Option<RejectReason>,
    timers: TimerTable,
    // Queues.
    control: Deque<Control, CONTROL_CAPACITY>,
    incoming: IncomingQueue<COMMITS>,
    /// What the answers to `incoming` must echo (RFC 8156 only).
    echoes: <F as family::sealed::Sealed>::Echoes<COMMITS>,
    outgoing: OutgoingQueue<QUEUE>,
    outputs: Outputs<EVENTS>,
    /// What must survive a restart, and how far the caller has written it.
    persist: Persistence,
    // Update requests and the holds that follow them.
    requests: Requests,
    /// Left PARTNER-DOWN for NORMAL with bindings still to send (see [`PdHold`]).
    pd_hold: PdHold,
    /// RECOVER-WAIT's time ran out while communications were not OK: RECOVER-DONE waits for
    /// them (04 §3.2 allows deferring it). In RECOVER-DONE we renew leases (§9.7.1), which is
    /// safe only once the partner — possibly in PARTNER-DOWN, reclaiming addresses on the
    /// strength of what it knows — can hear of it.
    recover_wait_over: bool,
    /// The partner's POOLREQ we have not answered yet.
    pending_pool_xid: Option<u32>,
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
    /// What operators count ([`Status::counters`]).
    counters: Counters,
}

impl<const QUEUE: usize, const COMMITS: usize, const EVENTS: usize, F: Family>
    Engine<QUEUE, COMMITS, EVENTS, F>
{
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
        let mut config = config;
        if F::IS_V6 {
            // RFC 8156 has one rule book, draft-12's where they agree (`v6::state`).
            config.dialect = crate::dialect::Dialect::Draft;
        }
        config.validate(COMMITS)?;
        let previous = transition::startup_previous(persisted.map(|p| p.state), config.dialect);
        let mclt = Mclt::new(config.role, config.mclt, persisted.and_then(|p| p.mclt));
        let mut timers = TimerTable::default();
        let startup = startup_period(&config, persisted.as_ref(), previous, wall, mclt.wait(wall));
        timers.set(Timer::Startup, now + secs(startup));
        // A start time in the future means the clock was set back since it was saved: count
        // from now (RECOVER-WAIT then lasts a full MCLT from now, on the safe side).
        let state_since = persisted.map_or(wall, |p| p.since.min(wall));
        // A new server has nothing on stable storage: its first snapshot says what a restart
        // would assume anyway (the remembered state, RECOVER, §9.3.2 step 1).
        let base = Persisted {
            state: previous,
            since: state_since,
            mclt: None,
            last_operational: None,
            lease_table_lost: false,
        };
        Ok(Engine {
            family: core::marker::PhantomData,
            hba: config.hba,
            mclt,
            config,
            state: ServerState::Startup,
            state_since,
            previous,
            partner_state: None,
            partner_since: None,
            partner_startup: false,
            last_operational: persisted.and_then(|p| p.last_operational),
            anchor: (now, wall),
            link: Link::Down,
            next_xid: xid_seed,
            partner_max_unacked: 1,
            partner_receive_timer: 0,
            last_rx: None,
            last_tx: None,
            state_seen: false,
            skew: Skew::default(),
            last_reject: None,
            timers,
            control: Deque::new(),
            incoming: IncomingQueue::new(),
            echoes: Default::default(),
            outgoing: OutgoingQueue::new(),
            outputs: Outputs::new(),
            persist: Persistence::new(persisted, base),
            requests: Requests::default(),
            pd_hold: PdHold::Off,
            recover_wait_over: false,
            pending_pool_xid: None,
            lost_storage: persisted
                .is_none_or(|p| p.state == ServerState::Recover || p.lease_table_lost),
            // A refresh cut short by a restart goes on: the table is still the old copy.
            refresh_from_partner: persisted.is_some_and(|p| p.lease_table_lost),
            had_persisted: persisted.is_some(),
            counters: Counters::default(),
        })
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
        self.mclt.current()
    }

    /// This server's situation as the lease rules of [`crate::policy`] need it, at `now`.
    pub fn endpoint(&self, now: Instant) -> crate::policy::Endpoint {
        crate::policy::Endpoint {
            dialect: self.config.dialect,
            role: self.config.role,
            state: self.state,
            state_since: self.state_since,
            partner_state: self.partner_state,
            mclt: self.mclt.wait(self.wall_at(now)),
            lease_mclt: self.mclt.lease(),
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
        self.outgoing.space()
    }

    /// Whether our update `update` ([`Engine::send_binding`]) is still queued or in flight:
    /// `false` once it was acknowledged, rejected, replaced by a newer copy of its address or
    /// dropped as older than the partner's binding (§7.1.4). A record whose update is no
    /// longer queued and not acknowledged goes with the next backlog (§9.8.1).
    pub fn is_queued(&self, update: UpdateId) -> bool {
        self.outgoing.holds_update(update.0)
    }

    /// The wall clock at monotonic `now`, from the last wall time given.
    pub fn wall_at(&self, now: Instant) -> UnixTime {
        let (at, wall) = self.anchor;
        let delta = now.saturating_duration_since(at).as_secs();
        wall.plus(u32::try_from(delta).unwrap_or(u32::MAX))
    }

    // ----- connection inputs -----

    /// A TCP connection to the partner is up (either direction). A primary sends CONNECT on it
    /// (ISC sends CONNECT on accepted connections too); a secondary waits for one.
    pub fn connection_up(&mut self, now: Instant) -> Result<(), EngineError> {
        if self.link != Link::Down {
            return Err(EngineError::AlreadyConnected);
        }
        self.state_seen = false;
        self.last_rx = Some(now);
        self.last_tx = None;
        self.skew.reset();
        self.control.clear();
        self.incoming.clear();
        self.echoes.clear();
        self.timers
            .set(Timer::Handshake, now + secs(self.config.connect_timeout));
        self.timers
            .set(Timer::Receive, now + secs(self.config.receive_timer));
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
        self.stop_link_timers();
        self.control.clear();
        // Received updates not yet acked are dropped: their BNDACK belongs to the dead
        // connection (§8.6); the partner sends them again.
        self.incoming.clear();
        self.echoes.clear();
        self.requeue_unacked();
        self.requests.connection_lost();
        if was_up {
            self.comm_failed(now);
        }
    }

    /// What every received message does first: `false` when the connection is not there to
    /// read it.
    fn begin_message(&mut self, now: Instant, wall: UnixTime) -> Result<bool, EngineError> {
        self.outputs.check_room()?;
        if matches!(self.link, Link::Down | Link::Closing) {
            return Ok(false);
        }
        self.anchor = (now, wall);
        self.last_rx = Some(now);
        self.timers
            .set(Timer::Receive, now + secs(self.config.receive_timer));
        if self.link == Link::Up && self.last_tx.is_none() {
            // Nothing sent on this connection yet: CONTACT counts from what we heard.
            self.timers
                .set(Timer::Contact, now + self.contact_interval());
        }
        Ok(true)
    }

    // ----- commands -----

    /// Tells a new engine the latest potential-expiration-time among the partner's bindings in
    /// the caller's store ([`LocalBinding::received_pet`](crate::accept::LocalBinding), the
    /// PETs we acknowledged; [`crate::record::latest_received_pet`] finds it). The partner may
    /// extend a lease up to an acknowledged PET plus the MCLT (§5.2.1): when the MCLT is
    /// lowered (a primary restarted with a smaller one, or a secondary that learns one), the
    /// safety waits keep the old MCLT until that PET plus the old MCLT, not only until the
    /// servers agree plus it. Call it right after [`Engine::new`]; the engine follows the
    /// PETs it receives itself from then on. Without it, a PET acknowledged before the
    /// restart is not counted.
    pub fn restore_received_pet(&mut self, latest: UnixTime) {
        self.mclt.note_received_pet(latest);
    }

    /// Tells a new engine that the caller's lease table is lost or is an older copy restored
    /// from a backup (draft §9.5.2: the server "has been instructed ... that it has lost its
    /// stable storage"): until the partner's UPDDONE answers our UPDREQALL, the partner's
    /// bindings are judged as an empty table would judge them, and the partner's own update
    /// requests are answered at once, since nothing of ours is worth sending. Call it right
    /// after [`Engine::new`] (without persisted state), before the first connection. A server
    /// that is new to failover but holds a current lease table must not call it. The next
    /// [`Action::Persist`] snapshot records it ([`Persisted::lease_table_lost`]), so that a
    /// restart before the refresh is done goes on refreshing (found by the simulator, seed
    /// 348627 of the million-seed run).
    pub fn lease_table_lost(&mut self) {
        self.refresh_from_partner = true;
        self.lost_storage = true;
        self.persist.set_lease_table_lost(true);
    }

    /// After [`Action::SendAllBindings`] / [`Action::SendUnackedBindings`]: everything asked
    /// for is queued. UPDDONE goes out once all of it is acknowledged (§7.5).
    pub fn end_of_updates(&mut self) {
        let last = self.outgoing.last_seq();
        if let Some(r) = self.requests.partner.as_mut() {
            r.until_seq = Some(last);
        }
        self.check_upddone();
    }

    /// The binding handed to the [`CommitSink`] with `token` is on stable storage: acknowledge
    /// it.
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

    /// The operator declares the partner down (§9.4): it is known not to serve clients, so
    /// we may take over its addresses once the MCLT has passed.
    ///
    /// Taken from COMMUNICATIONS-INTERRUPTED or RESOLUTION-INTERRUPTED (§9.9.3, §9.11.3),
    /// where the partner is unreachable; anywhere else refused with
    /// [`EngineError::NotInterrupted`] unless `force` — a partner we still talk to may be
    /// serving the same clients. Forced, the dialect's rule book decides (draft: also from
    /// NORMAL; ISC's OMAPI: any state), [`EngineError::NoTransition`] where it has no row.
    /// Already in PARTNER-DOWN: nothing to do, `Ok`.
    pub fn partner_down(&mut self, now: Instant, force: bool) -> Result<(), EngineError> {
        let state = self.state;
        if state == ServerState::PartnerDown {
            return Ok(());
        }
        let interrupted = matches!(
            state,
            ServerState::CommunicationsInterrupted | ServerState::ResolutionInterrupted
        );
        if !interrupted && !force {
            return Err(EngineError::NotInterrupted { state });
        }
        let wall = self.wall_at(now);
        self.run(now, wall, StateEvent::AdminPartnerDown);
        if self.state == ServerState::PartnerDown {
            Ok(())
        } else {
            Err(EngineError::NoTransition { state })
        }
    }

    /// Closes the connection in an orderly way: DISCONNECT with `reason`, then close (§7.12).
    pub fn disconnect(&mut self, now: Instant, reason: RejectReason) {
        if matches!(self.link, Link::Down | Link::Closing) {
            return;
        }
        self.push_control(Control::Disconnect(reason));
        self.close(now);
    }

    // ----- confirmations -----

    /// The snapshot of [`Action::Persist`] `token` is on stable storage. A STATE held for it
    /// goes out at the next [`Engine::poll_transmit`]; changes made meanwhile come as the next
    /// [`Action::Persist`]. `Err(UnknownToken)` for a token not outstanding (already confirmed
    /// or failed).
    pub fn persist_complete(&mut self, token: PersistToken) -> Result<(), EngineError> {
        self.persist.complete(token)
    }

    /// The snapshot of [`Action::Persist`] `token` could not be written. Nothing that depends
    /// on it is announced: a STATE holding a state change stays unsent (as does everything
    /// queued behind it), [`Event::PersistFailed`] says so, and after [`PERSIST_RETRY`] (a
    /// deadline of [`Engine::poll_timeout`]) the engine hands out the snapshot again — with
    /// whatever changed meanwhile — as a new [`Action::Persist`]. A partner left without our
    /// STATE for its receive timer closes the connection; that is the safe outcome while our
    /// state cannot be recorded.
    pub fn persist_failed(&mut self, now: Instant, token: PersistToken) -> Result<(), EngineError> {
        self.persist.failed(token)?;
        self.timers.set(Timer::PersistRetry, now + PERSIST_RETRY);
        self.push_event(Event::PersistFailed { token });
        Ok(())
    }

    // ----- outputs -----

    /// The next thing the caller must do, if any. Poll until `None` after every input,
    /// carrying out each action before polling the next (see [`Action`]); then poll events.
    #[must_use]
    pub fn poll_action(&mut self) -> Option<Action> {
        if let Some(a) = self.issue_persist() {
            return Some(a);
        }
        if let Some(a) = self.outputs.pop_action() {
            return Some(a);
        }
        // Every action is carried out, so the backlog asked for on entering NORMAL is queued:
        // the PARTNER-DOWN hold can be fixed (possibly releasing it, a state change to persist).
        // Only that can produce another action here: skip the second look otherwise (this is
        // the last poll after every input).
        if !self.fix_pd_hold() {
            return None;
        }
        self.issue_persist().or_else(|| self.outputs.pop_action())
    }

    /// The snapshot to write, if one is due and no failed write waits for its retry.
    fn issue_persist(&mut self) -> Option<Action> {
        if self.timers.is_set(Timer::PersistRetry) {
            return None;
        }
        let (token, snapshot) = self.persist.issue()?;
        Some(Action::Persist { token, snapshot })
    }

    /// The next informational event, if any. Poll until `None` after the actions.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.outputs.pop_event()
    }

    /// [`Engine::poll_transmit`] for either family; `binding` writes the next binding update
    /// (`None`: none to send; `Some(None)`: it did not fit).
    fn transmit(
        &mut self,
        now: Instant,
        buf: &mut [u8],
        binding: impl FnOnce(&mut Self, Instant, u32, &mut [u8]) -> Option<Option<usize>>,
    ) -> Option<usize> {
        if self.link == Link::Down || self.state_held() {
            return None;
        }
        let wall = self.wall_at(now).0;
        let n = if let Some(c) = self.control.pop_front() {
            if c == Control::Close {
                self.control.clear();
                return None;
            }
            let n = self.emit_control(c, wall, buf);
            if n.is_some()
                && let Control::ConnectAck {
                    reject: Some(reason),
                    ..
                }
                | Control::Disconnect(reason) = c
            {
                self.counters.reject_sent(reason);
            }
            n
        } else if self.link != Link::Up {
            return None;
        } else if let Some(ack) = self.incoming.pop_ack() {
            let n = if F::IS_V6 {
                self.emit_reply6(&ack, wall, buf)
            } else {
                wire4::emit_ack(&ack, wall, buf)
            };
            if n.is_some() {
                counters::bump(&mut self.counters.bndack_sent);
                if ack.items.any_rejected() {
                    for reason in ack.items.iter().filter_map(|(_, r)| r.flatten()) {
                        self.counters.reject_sent(reason);
                    }
                }
            }
            n
        } else {
            let n = binding(self, now, wall, buf)?;
            if n.is_some() {
                counters::bump(&mut self.counters.bndupd_sent);
            }
            n
        };
        if n.is_some() {
            self.sent(now);
        }
        n
    }

    /// Whether the next message is a STATE whose state is not on stable storage yet. On a
    /// closing connection such a STATE is dropped instead (the rest, a DISCONNECT, goes).
    fn state_held(&mut self) -> bool {
        while self.control.front() == Some(&Control::State) && !self.persist.state_durable() {
            if self.link != Link::Closing {
                return true;
            }
            self.control.pop_front();
        }
        false
    }

    /// The next BNDUPD within the partner's window: `None` when there is none to send,
    /// `Some(None)` when it did not fit into the buffer.
    fn emit_next_binding<B: BindingSource + ?Sized>(
        &mut self,
        now: Instant,
        wall: u32,
        buf: &mut [u8],
        bindings: &B,
    ) -> Option<Option<usize>> {
        self.emit_next_update(now, buf, |queue, idx, xid, buf| {
            queue.send(idx, xid, wall, buf, bindings)
        })
    }

    /// The next update within the partner's window, written by `send` (either family's).
    fn emit_next_update(
        &mut self,
        now: Instant,
        buf: &mut [u8],
        mut send: impl FnMut(&mut OutgoingQueue<QUEUE>, usize, u32, &mut [u8]) -> Sent,
    ) -> Option<Option<usize>> {
        if self.state == ServerState::Startup || self.outgoing.in_flight() >= self.window() {
            return None;
        }
        loop {
            let idx = self.outgoing.first_unsent()?;
            // Our update of an address waits for our BNDACK of the partner's update of it, so
            // the partner reads that BNDACK first (TCP keeps the order) and no longer counts
            // its own update as in flight when it judges ours: ISC's rule for dueling updates
            // otherwise rejects a secondary's (simulator seed 80763798: the primary's BACKUP,
            // sent again, and the secondary's FREE, its newer record sent again at once, were
            // each judged against the other's in flight; the secondary's was rejected and
            // the pair ended BACKUP on one side and FREE on the other). v6's received updates
            // carry no v4 address: the rule is v4's.
            if !F::IS_V6
                && self.incoming.unacked() > 0
                && self
                    .outgoing
                    .address_at(idx)
                    .is_some_and(|a| self.incoming.holds(&a))
            {
                return None;
            }
            let xid = self.take_xid();
            match send(&mut self.outgoing, idx, xid, buf) {
                Sent::Written(n) => return Some(Some(n)),
                Sent::NoRoom => return Some(None),
                Sent::Dropped => {
                    // The store holds no binding for it. What waited for it (an UPDDONE, the
                    // PARTNER-DOWN hold) is looked at again by `handle_timeout` at once: this
                    // poll makes no output.
                    self.count_dropped(1);
                    self.timers.set(Timer::Dropped, now);
                }
            }
        }
    }

    /// A message went out at `now`: the partner hears from us, CONTACT can wait.
    fn sent(&mut self, now: Instant) {
        self.last_tx = Some(now);
        if self.link == Link::Up {
            self.timers
                .set(Timer::Contact, now + self.contact_interval());
            if self.config.ack_timeout > 0
                && self.outgoing.in_flight() > 0
                && !self.timers.is_set(Timer::AckWait)
            {
                self.timers
                    .set(Timer::AckWait, now + secs(self.config.ack_timeout));
            }
        }
    }

    /// When [`Engine::handle_timeout`] must next be called.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next_timeout()
    }

    // ----- internals -----

    fn window(&self) -> usize {
        usize::try_from(self.partner_max_unacked.max(1)).unwrap_or(usize::MAX)
    }

    /// CONTACT after ⌊partner receive-timer / 3⌋ s of silence (§7.9.1; ISC the same); in
    /// RFC 8156, FO_SEND_TIME = the partner's keep-alive time / 4 (§6.5, integer division,
    /// at least 1 s: the digest's reading).
    fn contact_interval(&self) -> Duration {
        let per = if F::IS_V6 { 4 } else { 3 };
        secs((self.partner_receive_timer / per).max(1))
    }

    fn stop_link_timers(&mut self) {
        for t in [
            Timer::Handshake,
            Timer::Receive,
            Timer::Contact,
            Timer::AckWait,
        ] {
            self.timers.stop(t);
        }
    }

    fn take_xid(&mut self) -> u32 {
        // ISC never uses xid 0 for a BNDUPD; skip it for every message. RFC 8156's are 24
        // bits (§5.4).
        let mask = if F::IS_V6 {
            failover_proto::v6::MAX_XID
        } else {
            u32::MAX
        };
        self.next_xid = self.next_xid.wrapping_add(1) & mask;
        if self.next_xid == 0 {
            self.next_xid = 1;
        }
        self.next_xid
    }

    fn push_event(&mut self, e: Event) {
        self.outputs.push_event(e);
    }

    fn push_action(&mut self, a: Action) {
        self.outputs.push_action(a);
    }
}

/// Takes the element at `idx` out of `queue`, keeping the order of the others (a
/// `heapless::Deque` has no `remove`: it rotates once through the queue).
fn take_at<T, const N: usize>(queue: &mut Deque<T, N>, idx: usize) -> Option<T> {
    if idx == 0 {
        return queue.pop_front();
    }
    let mut taken = None;
    for i in 0..queue.len() {
        let item = queue.pop_front()?;
        if i == idx {
            taken = Some(item);
        } else {
            let _ = queue.push_back(item);
        }
    }
    taken
}

/// An out-of-place message type, as a decode error (for [`Event::ProtocolError`]).
fn wrong_type(expected: u8, found: u8) -> DecodeError {
    DecodeError::new(DecodeErrorKind::WrongMessageType { expected, found }, 2)
}

/// How long STARTUP waits (§5.9): longer when this server would then serve clients and has
/// been down for `mclt` seconds or more, or has no record of when it last operated — the
/// partner may have entered PARTNER-DOWN meanwhile and still hold our last connection.
fn startup_period(
    config: &Config,
    persisted: Option<&Persisted>,
    previous: ServerState,
    wall: UnixTime,
    mclt: u32,
) -> u32 {
    let long = config
        .startup_delay_after_long_down
        .max(config.startup_delay);
    match persisted {
        // A new server starts as RECOVER and serves nobody until it has met the partner.
        None => config.startup_delay,
        Some(_) if !transition::operating(previous) => config.startup_delay,
        // Down less than the MCLT: the partner may still have been put in PARTNER-DOWN by its
        // operator, and may still hold our last connection (half-open) until its receive timer
        // runs out, counted from our last message — at most a heartbeat after our last
        // recorded operation. The long wait counts from then, so that STARTUP outlasts that
        // connection and meets the partner before we serve (simulator seed 82845043: down
        // 16 s of an MCLT of 20, the 15-s STARTUP ended 11 ms before the partner dropped the
        // old connection).
        Some(p) => match p.last_operational {
            Some(t) if wall.secs_since(t) < mclt => long
                .saturating_add(operation_heartbeat(mclt))
                .saturating_sub(wall.secs_since(t))
                .min(long)
                .max(config.startup_delay),
            _ => long,
        },
    }
}

/// Seconds between two records of the time of operation while serving: a quarter of the MCLT
/// keeps the downtime estimate well within the MCLT it is compared with, at one small persist
/// every 5–60 s.
fn operation_heartbeat(mclt: u32) -> u32 {
    (mclt / 4).clamp(5, 60)
}

fn secs(s: u32) -> Duration {
    Duration::from_secs(u64::from(s))
}
