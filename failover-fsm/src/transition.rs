//! The failover endpoint state machine (draft-12 §9) as a pure function.
//!
//! [`transition`] maps *(our state, one event, a snapshot of what we know)* to *(the next state,
//! the actions that go with the move)*. It owns nothing, reads no clock and cannot fail; the
//! same inputs always give the same output. Two rule books are built in, chosen by
//! [`Context::dialect`]:
//!
//! * [`Dialect::Draft`] follows the per-state text of draft-12 §9.3–§9.14. Where the text and
//!   Figure 9.2-1 differ, the text wins (§9).
//! * [`Dialect::Isc`] follows ISC dhcpd 4.4 (`dhcp_failover_peer_state_changed`,
//!   `dhcp_failover_state_transition`, `dhcp_failover_process_update_done`), except that the
//!   cells where ISC calls `log_fatal` (its CONFLICT-DONE row) stay put and raise
//!   [`Actions::ALARM`] instead of exiting, and that POTENTIAL-CONFLICT stays when the
//!   partner reports RECOVER (ISC moves to RECOVER, which with ISC's RECOVER → POTENTIAL-
//!   CONFLICT row makes two servers swap these states forever).
//!
//! # How the engine calls this
//!
//! 1. Build a [`Context`] from what the engine has recorded *before* the event: the partner's
//!    last recorded state in [`Context::partner`], and in [`Context::comm_ok`] whether a STATE
//!    had already been received on the current connection.
//! 2. Call [`step`] (or [`transition`], then [`entry_actions`] with [`Context::after`] when the
//!    result has a next state).
//! 3. If [`Transition::next`] is `Some(s)` (never equal to our state): write `s` and the time it
//!    was entered to stable storage *first*, and move only if that succeeded (§9.2); send STATE
//!    if communications are OK; stop the timers that belong to the state left (startup, safe
//!    period, RECOVER-WAIT); then perform the actions (the transition's, then the entry
//!    actions). With `None`, perform the actions, if any, in the current state.
//! 4. Record the partner's state from the STATE message (also when it was ignored, §9.2).
//!
//! Every STATE message may be fed in: one whose state equals [`Context::partner`] while
//! [`Context::comm_ok`] is already true is a repeat and yields [`Transition::NONE`]. The first
//! STATE of a connection ([`Context::comm_ok`] false) is "communications OK" (§9.2) and is
//! always evaluated, even if the partner's state did not change.
//!
//! STARTUP (§9.3) is left only through this function: on the first STATE from the partner
//! (§9.3.2 step 5), on [`StateEvent::StartupExpired`] (step 6), and with [`Dialect::Isc`] also on
//! [`StateEvent::CommFailed`] and operator commands. It never returns STARTUP, never an unknown
//! state, and never CONFLICT-DONE for a secondary (§9.12.1).

use core::fmt;
use core::ops::{BitOr, BitOrAssign};

use failover_proto::{Role, ServerState};

use crate::dialect::Dialect;
use crate::time::UnixTime;

/// Something that can move the state machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum StateEvent {
    /// A STATE message from the partner (§7.7), or the partner state learned when communications
    /// became OK (§8.2). See the module docs for repeats.
    PartnerState {
        /// The partner's server-state option (§12.24), as received (unknown values included).
        state: ServerState,
        /// The STARTUP bit of the partner's server-flags option (§12.23).
        startup: bool,
        /// The partner's start-time-of-state (§12.25), converted to our wall clock.
        since: UnixTime,
    },
    /// Communications failed: TCP lost, tReceive expired, DISCONNECT sent or received (§8.3),
    /// or (optionally) BNDACKs stopped coming in NORMAL (§9.8.4).
    CommFailed,
    /// UPDDONE received for our UPDREQ or UPDREQALL (§7.5).
    UpdDone,
    /// The RECOVER-WAIT timer went off (§9.6.2).
    RecoverWaitExpired,
    /// The safe-period timer went off (§9.9.3, §10).
    SafePeriodExpired,
    /// The STARTUP timer went off (§9.3.2 step 6).
    StartupExpired,
    /// The operator says the partner is down (§9.8.4, §9.9.3, §9.11.3).
    AdminPartnerDown,
    /// The operator shuts this server down for a long time (§9.14).
    AdminShutdown,
    /// The operator shuts this server down for a short time (§9.13).
    AdminPause,
}

/// What to do when the STARTUP timer expires without the partner having been reached
/// (§9.3.2 step 6, an implementation choice).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum StartupExpiry {
    /// Enter the previous state, mapped through the communications-failed transition
    /// (keeps service up if the partner is dead; what ISC dhcpd does after 15 s).
    #[default]
    EnterPrevious,
    /// Stay in STARTUP until the partner is reached (safer against partitions).
    Wait,
    /// Go straight to PARTNER-DOWN: for a newly commissioned server whose partner is not yet
    /// available (§9.3.2 step 1, last paragraph).
    PartnerDown,
}

/// What the transition function may know besides our state and the event.
///
/// Build one with [`Context::new`] and struct-update syntax for the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Context {
    /// Our role in the relationship (§5.1).
    pub role: Role,
    /// Which rule book to follow.
    pub dialect: Dialect,
    /// The wall clock now (used by ISC's UPDDONE-in-RECOVER rule).
    pub now: UnixTime,
    /// The previous state remembered for STARTUP, as returned by [`startup_previous`] (§9.3.2
    /// steps 1–2). Only read while our state is STARTUP. With [`Dialect::Isc`] it must be the
    /// unmapped state (ISC's "remembered NORMAL" rule needs it); the draft maps it again, which
    /// is harmless.
    pub previous: ServerState,
    /// The last time this server was known to be operating (§9.14.1; a periodically persisted
    /// heartbeat is best, §9.6.2). `None` = no record, treated as "never operated".
    /// Used by STARTUP with a partner in PARTNER-DOWN (§9.3.2 step 5, draft only).
    pub last_operational: Option<UnixTime>,
    /// The partner's state as recorded *before* this event (`None` = never heard of it).
    /// For [`entry_actions`], the state as recorded at entry (see [`Context::after`]).
    pub partner: Option<ServerState>,
    /// When RECOVER-WAIT should end: ISC uses own start-time-of-RECOVER + MCLT, the draft own
    /// failure time (or start time) + MCLT, or a past time when this is the first failover run
    /// (§9.6.2). Read by ISC's UPDDONE-in-RECOVER rule; `None` = unknown, so wait.
    pub recover_wait_until: Option<UnixTime>,
    /// Communications are OK (§8): the link is up and a STATE from the partner has been
    /// received on it. For [`transition`] this is the value before the event; for
    /// [`entry_actions`] the value at entry.
    pub comm_ok: bool,
    /// This server lost its stable storage (operator said so), or has no record of ever having
    /// talked to the partner while the partner has one: RECOVER then asks with UPDREQALL
    /// instead of UPDREQ (§9.5.2, draft only; ISC always sends UPDREQALL).
    pub lost_storage: bool,
    /// What the STARTUP timer does (§9.3.2 step 6).
    pub startup_expiry: StartupExpiry,
}

impl Context {
    /// A context with nothing recorded: previous state RECOVER (§9.3.2 step 1), partner unknown,
    /// communications not OK, default [`StartupExpiry`].
    pub const fn new(role: Role, dialect: Dialect, now: UnixTime) -> Context {
        Context {
            role,
            dialect,
            now,
            previous: ServerState::Recover,
            last_operational: None,
            partner: None,
            recover_wait_until: None,
            comm_ok: false,
            lost_storage: false,
            startup_expiry: StartupExpiry::EnterPrevious,
        }
    }

    /// The context as it is once `event` has been taken into account: a partner STATE is
    /// recorded and means communications are OK; a communications failure clears that.
    /// This is the context to pass to [`entry_actions`].
    #[must_use]
    pub const fn after(&self, event: &StateEvent) -> Context {
        let mut ctx = *self;
        match *event {
            StateEvent::PartnerState { state, .. } => {
                ctx.partner = Some(state);
                ctx.comm_ok = true;
            }
            StateEvent::CommFailed => ctx.comm_ok = false,
            _ => {}
        }
        ctx
    }
}

/// A set of things the engine must do, as bit flags. Combine with `|`.
///
/// Persisting the new state and announcing it with STATE are implied by every state change
/// (§9.2) and have no flag. Timers belong to their state: the engine stops them on leaving it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Actions(u16);

impl Actions {
    /// Nothing to do.
    pub const NONE: Actions = Actions(0);
    /// Send UPDREQ: ask for the bindings the partner has not yet seen acked (§7.5, §9.5.2,
    /// §9.10.1, §9.10.3).
    pub const SEND_UPDREQ: Actions = Actions(1 << 0);
    /// Send UPDREQALL: ask for every binding (§7.4, §9.5.2).
    pub const SEND_UPDREQALL: Actions = Actions(1 << 1);
    /// Send every binding change the partner has not acked, as BNDUPDs (§9.8.1).
    pub const SEND_BACKLOG: Actions = Actions(1 << 2);
    /// Send POOLREQ to ask the primary for addresses (secondary entering NORMAL, §9.8.1, §7.6).
    pub const SEND_POOLREQ: Actions = Actions(1 << 3);
    /// Run the pool-balance check now (ISC on entering NORMAL and on a partner entering NORMAL).
    pub const POOL_CHECK: Actions = Actions(1 << 4);
    /// Move every sent-but-unacked BNDUPD back to the send queue so it is sent again (ISC on
    /// leaving NORMAL, POTENTIAL-CONFLICT or PARTNER-DOWN, and on losing the link in
    /// CONFLICT-DONE).
    pub const REQUEUE_UNACKED: Actions = Actions(1 << 5);
    /// Start the safe-period timer, if one is configured (§9.9.1, §10; ISC
    /// `auto-partner-down`).
    pub const START_SAFE_TIMER: Actions = Actions(1 << 6);
    /// Start the RECOVER-WAIT timer to end at [`Context::recover_wait_until`]; if that time has
    /// passed, deliver [`StateEvent::RecoverWaitExpired`] at once (§9.6.2).
    pub const START_RECOVER_WAIT: Actions = Actions(1 << 7);
    /// Raise an alarm for the operator (§9.9.1, §9.11.1), also used for partner moves the
    /// protocol forbids.
    pub const ALARM: Actions = Actions(1 << 8);
    /// Persist the state we came from as the state to restart in (§9.13.1, §9.14.1); when
    /// leaving STARTUP, that is [`Context::previous`].
    pub const SAVE_RESTART_STATE: Actions = Actions(1 << 9);
    /// Persist RECOVER as the state to restart in (§9.14.2; ISC after SHUTDOWN).
    pub const RESTART_IN_RECOVER: Actions = Actions(1 << 10);
    /// Persist the current time as the last time operational (§9.14.1).
    pub const RECORD_LAST_OPERATIONAL: Actions = Actions(1 << 11);
    /// Close the connection once the STATE announcing the new state has been sent: at once
    /// for PAUSED (§9.13), after lingering a few seconds to see whether the partner enters
    /// PARTNER-DOWN for SHUTDOWN (§9.14.2).
    pub const DISCONNECT: Actions = Actions(1 << 12);

    /// Every flag with its name, in bit order.
    const NAMED: [(Actions, &'static str); 13] = [
        (Actions::SEND_UPDREQ, "SEND_UPDREQ"),
        (Actions::SEND_UPDREQALL, "SEND_UPDREQALL"),
        (Actions::SEND_BACKLOG, "SEND_BACKLOG"),
        (Actions::SEND_POOLREQ, "SEND_POOLREQ"),
        (Actions::POOL_CHECK, "POOL_CHECK"),
        (Actions::REQUEUE_UNACKED, "REQUEUE_UNACKED"),
        (Actions::START_SAFE_TIMER, "START_SAFE_TIMER"),
        (Actions::START_RECOVER_WAIT, "START_RECOVER_WAIT"),
        (Actions::ALARM, "ALARM"),
        (Actions::SAVE_RESTART_STATE, "SAVE_RESTART_STATE"),
        (Actions::RESTART_IN_RECOVER, "RESTART_IN_RECOVER"),
        (Actions::RECORD_LAST_OPERATIONAL, "RECORD_LAST_OPERATIONAL"),
        (Actions::DISCONNECT, "DISCONNECT"),
    ];

    /// The flags as bits.
    pub const fn bits(self) -> u16 {
        self.0
    }

    /// The flags from bits; bits without a meaning are dropped.
    pub const fn from_bits_truncate(bits: u16) -> Actions {
        Actions(bits & Actions::ALL.0)
    }

    /// Every flag.
    pub const ALL: Actions = Actions((1 << 13) - 1);

    /// Both sets.
    #[must_use]
    pub const fn union(self, other: Actions) -> Actions {
        Actions(self.0 | other.0)
    }

    /// Whether every flag of `other` is set.
    pub const fn contains(self, other: Actions) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether no flag is set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// `other` if `cond`, else nothing.
    const fn when(cond: bool, other: Actions) -> Actions {
        if cond { other } else { Actions::NONE }
    }
}

impl BitOr for Actions {
    type Output = Actions;

    fn bitor(self, rhs: Actions) -> Actions {
        self.union(rhs)
    }
}

impl BitOrAssign for Actions {
    fn bitor_assign(&mut self, rhs: Actions) {
        *self = self.union(rhs);
    }
}

impl fmt::Debug for Actions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Actions(")?;
        let mut first = true;
        for (flag, name) in Actions::NAMED {
            if self.contains(flag) {
                if !first {
                    f.write_str(" | ")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        if first {
            f.write_str("NONE")?;
        }
        f.write_str(")")
    }
}

/// The result of one event: where to go, and what to do on the way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Transition {
    /// The state to enter; `None` = stay. Never the state we are in, never STARTUP, never an
    /// unknown value.
    pub next: Option<ServerState>,
    /// What the event itself asks for. With [`transition`] these exclude the entry actions of
    /// `next`; [`step`] adds them.
    pub actions: Actions,
}

impl Transition {
    /// Stay, do nothing.
    pub const NONE: Transition = Transition {
        next: None,
        actions: Actions::NONE,
    };

    /// Go to `state`, with no further actions.
    pub const fn to(state: ServerState) -> Transition {
        Transition {
            next: Some(state),
            actions: Actions::NONE,
        }
    }

    /// Stay, but do `actions`.
    pub const fn act(actions: Actions) -> Transition {
        Transition {
            next: None,
            actions,
        }
    }

    /// Go to `state` and do `actions`.
    pub const fn to_with(state: ServerState, actions: Actions) -> Transition {
        Transition {
            next: Some(state),
            actions,
        }
    }
}

/// The state a server in STARTUP remembers (§9.3.2 steps 1–2), from what stable storage holds.
///
/// Step 1: nothing recorded → RECOVER (the engine should also use a failure time more than
/// MCLT ago, §9.3.2). PAUSED and SHUTDOWN should never be persisted as such (the engine
/// persists the restart state instead, §9.13.1, §9.14.1); if found, and for STARTUP or unknown
/// values, RECOVER is the safe choice.
///
/// Step 2 depends on the dialect: [`Dialect::Draft`] maps the state through the
/// communications-failed transition ([`comm_fail_mapping`]). [`Dialect::Isc`] keeps it as it is
/// (ISC reports it unmapped in STATE while in STARTUP and evaluates its row on the first partner
/// STATE, mapping it only when the STARTUP timer expires).
///
/// The result is what goes into [`Context::previous`] and into the server-state option of
/// every STATE sent while in STARTUP, with the STARTUP flag set (§9.3.1).
pub fn startup_previous(persisted: Option<ServerState>, dialect: Dialect) -> ServerState {
    let remembered = match persisted {
        None => ServerState::Recover,
        Some(state) => sanitize_previous(state),
    };
    match dialect {
        Dialect::Draft => comm_fail_mapping(remembered),
        Dialect::Isc => remembered,
    }
}

/// Where the communications-failed transition of Figure 9.2-1 leads from `state` (§9.3.2 step
/// 2): NORMAL → COMMUNICATIONS-INTERRUPTED (§9.8.4), POTENTIAL-CONFLICT →
/// RESOLUTION-INTERRUPTED (§9.10.3); every other state has no such transition and maps to
/// itself.
pub const fn comm_fail_mapping(state: ServerState) -> ServerState {
    match state {
        ServerState::Normal => ServerState::CommunicationsInterrupted,
        ServerState::PotentialConflict => ServerState::ResolutionInterrupted,
        other => other,
    }
}

/// The transition caused by `event` while in `ours` (§9.2–§9.14 for [`Dialect::Draft`], ISC
/// dhcpd's tables for [`Dialect::Isc`]). Entry actions of the next state are not included; see
/// [`step`] and [`entry_actions`].
pub fn transition(ours: ServerState, event: &StateEvent, ctx: &Context) -> Transition {
    if let StateEvent::PartnerState { state, .. } = *event {
        // A repeat of what we already know on an established link changes nothing (§9.2).
        if ours != ServerState::Startup && ctx.comm_ok && ctx.partner == Some(state) {
            return Transition::NONE;
        }
    }
    let t = match ctx.dialect {
        Dialect::Draft => draft::transition(ours, event, ctx),
        Dialect::Isc => isc::transition(ours, event, ctx),
    };
    guard(ours, t, ctx.role)
}

/// What to do on entering `entered` from `from` (§9.2–§9.14 "upon entry"; ISC
/// `dhcp_failover_set_state`). Sending actions are only given when [`Context::comm_ok`] is
/// true; `ctx` should be the context after the event ([`Context::after`]).
///
/// * NORMAL: [`Actions::SEND_BACKLOG`], and for a secondary [`Actions::SEND_POOLREQ`] (§9.8.1;
///   also towards ISC, which does not send it itself but answers it); ISC adds
///   [`Actions::POOL_CHECK`].
/// * COMMUNICATIONS-INTERRUPTED: [`Actions::START_SAFE_TIMER`] (§9.9.1), [`Actions::ALARM`] when
///   coming from NORMAL.
/// * POTENTIAL-CONFLICT: primary [`Actions::SEND_UPDREQ`] (§9.10.1); a secondary sends UPDREQ
///   only if the primary is already CONFLICT-DONE (§9.10.3; ISC does the same, and otherwise
///   neither side would ever ask).
/// * RECOVER: UPDREQ, or UPDREQALL if [`Context::lost_storage`] (§9.5.2); ISC always UPDREQALL.
/// * RECOVER-WAIT: [`Actions::START_RECOVER_WAIT`] (§9.6.2).
/// * RESOLUTION-INTERRUPTED: [`Actions::ALARM`] (§9.11.1).
/// * PAUSED: [`Actions::SAVE_RESTART_STATE`] (§9.13.1), [`Actions::DISCONNECT`] (§9.13).
/// * SHUTDOWN: [`Actions::SAVE_RESTART_STATE`] (§9.14.1; ISC: [`Actions::RESTART_IN_RECOVER`]),
///   [`Actions::RECORD_LAST_OPERATIONAL`] (§9.14.1; not from RECOVER or RECOVER-WAIT, nor
///   from a STARTUP that would resume one of them: no service since the last record),
///   [`Actions::DISCONNECT`] (§9.14.2).
/// * PARTNER-DOWN, RECOVER-DONE, CONFLICT-DONE: nothing (§9.4.1).
///
/// With [`Dialect::Isc`], leaving NORMAL, POTENTIAL-CONFLICT or PARTNER-DOWN also gives
/// [`Actions::REQUEUE_UNACKED`].
pub fn entry_actions(entered: ServerState, from: ServerState, ctx: &Context) -> Actions {
    use ServerState as S;
    let isc = ctx.dialect == Dialect::Isc;
    let send = ctx.comm_ok;
    let primary = ctx.role == Role::Primary;
    let keep_saved = matches!(from, S::Paused | S::Shutdown);

    let leaving = Actions::when(
        isc && entered != from && matches!(from, S::Normal | S::PotentialConflict | S::PartnerDown),
        Actions::REQUEUE_UNACKED,
    );
    let on_entry = match entered {
        S::Normal => Actions::when(
            send,
            Actions::SEND_BACKLOG
                .union(Actions::when(!primary, Actions::SEND_POOLREQ))
                .union(Actions::when(isc, Actions::POOL_CHECK)),
        ),
        S::CommunicationsInterrupted => {
            Actions::START_SAFE_TIMER.union(Actions::when(from == S::Normal, Actions::ALARM))
        }
        S::PotentialConflict => Actions::when(
            send && (primary || ctx.partner == Some(S::ConflictDone)),
            Actions::SEND_UPDREQ,
        ),
        S::Recover => Actions::when(send, update_request(ctx)),
        S::RecoverWait => Actions::START_RECOVER_WAIT,
        S::ResolutionInterrupted => Actions::ALARM,
        S::Paused => {
            Actions::DISCONNECT.union(Actions::when(!keep_saved, Actions::SAVE_RESTART_STATE))
        }
        // A server shut down while recovering has not served since its last record: noting
        // "now" would make a partner that took over in PARTNER-DOWN meanwhile look earlier
        // than our operation, and §9.3.2 step 5 would pick POTENTIAL-CONFLICT (whose
        // RESOLUTION-INTERRUPTED serves from a pool the partner used) instead of RECOVER.
        S::Shutdown => Actions::DISCONNECT
            .union(Actions::when(
                !served_nobody(from, ctx.previous),
                Actions::RECORD_LAST_OPERATIONAL,
            ))
            .union(if isc {
                Actions::RESTART_IN_RECOVER
            } else {
                Actions::when(!keep_saved, Actions::SAVE_RESTART_STATE)
            }),
        S::Startup | S::PartnerDown | S::RecoverDone | S::ConflictDone | S::Unknown(_) => {
            Actions::NONE
        }
    };
    leaving.union(on_entry)
}

/// The states in which a server answers DHCP clients, in either dialect (§9.4.2, §9.7.1,
/// §9.8.2, §9.9.2, §9.11.2, §9.12.2; ISC's service states): its time in them is its time of
/// operation (§9.3.2 step 5), and a restart after long enough out of them waits longer in
/// STARTUP before entering one (§5.9).
pub const fn operating(state: ServerState) -> bool {
    matches!(
        state,
        ServerState::Normal
            | ServerState::CommunicationsInterrupted
            | ServerState::PartnerDown
            | ServerState::ResolutionInterrupted
            | ServerState::ConflictDone
            | ServerState::RecoverDone
    )
}

/// RECOVER and RECOVER-WAIT: states that serve no client (§9.5.1, §9.6.1).
const fn recovering(state: ServerState) -> bool {
    matches!(state, ServerState::Recover | ServerState::RecoverWait)
}

/// Leaving `from` (with `previous` remembered for STARTUP), the server has served no client
/// since it last recorded its time of operation.
const fn served_nobody(from: ServerState, previous: ServerState) -> bool {
    recovering(from) || (matches!(from, ServerState::Startup) && recovering(previous))
}

/// [`transition`] followed, if the state changes, by [`entry_actions`] of the next state
/// (evaluated with [`Context::after`]); the actions are the union of both.
pub fn step(ours: ServerState, event: &StateEvent, ctx: &Context) -> Transition {
    let t = transition(ours, event, ctx);
    match t.next {
        Some(next) => Transition::to_with(
            next,
            t.actions | entry_actions(next, ours, &ctx.after(event)),
        ),
        None => t,
    }
}

/// The remembered state cleaned of values one cannot restart in (§9.3.2 step 1, §9.13.2,
/// §9.14.3).
const fn sanitize_previous(state: ServerState) -> ServerState {
    match state {
        ServerState::Startup
        | ServerState::Paused
        | ServerState::Shutdown
        | ServerState::Unknown(_) => ServerState::Recover,
        other => other,
    }
}

/// [`Context::previous`], cleaned: never STARTUP, PAUSED, SHUTDOWN or unknown, and for a
/// secondary never CONFLICT-DONE (which it cannot have been in, §9.12.1: treat as the
/// unfinished POTENTIAL-CONFLICT).
fn effective_previous(ctx: &Context) -> ServerState {
    match sanitize_previous(ctx.previous) {
        ServerState::ConflictDone if ctx.role == Role::Secondary => ServerState::PotentialConflict,
        other => other,
    }
}

/// The update request RECOVER makes (§9.5.2; ISC always UPDREQALL).
const fn update_request(ctx: &Context) -> Actions {
    match ctx.dialect {
        Dialect::Isc => Actions::SEND_UPDREQALL,
        Dialect::Draft if ctx.lost_storage => Actions::SEND_UPDREQALL,
        Dialect::Draft => Actions::SEND_UPDREQ,
    }
}

/// Last line of defence: never the current state, never STARTUP, never an unknown state, never
/// CONFLICT-DONE for a secondary (§9.12.1).
fn guard(ours: ServerState, t: Transition, role: Role) -> Transition {
    match t.next {
        Some(next) if next == ours => Transition::act(t.actions),
        Some(ServerState::Startup | ServerState::Unknown(_)) => Transition::act(t.actions),
        Some(ServerState::ConflictDone) if role == Role::Secondary => Transition::act(t.actions),
        _ => t,
    }
}

/// draft-12 §9.
mod draft {
    use super::{
        Actions, Context, Role, ServerState as S, StartupExpiry, StateEvent, Transition, UnixTime,
        comm_fail_mapping, effective_previous, update_request,
    };

    pub(super) fn transition(ours: S, event: &StateEvent, ctx: &Context) -> Transition {
        match (ours, *event) {
            (
                S::Startup,
                StateEvent::PartnerState {
                    state,
                    startup,
                    since,
                },
            ) => startup_comm_ok(state, startup, since, ctx),
            (_, StateEvent::PartnerState { state, startup, .. }) => {
                partner(ours, state, startup, ctx)
            }
            (S::Startup, StateEvent::StartupExpired) => startup_expired(ctx),
            (_, StateEvent::CommFailed) => match ours {
                // §9.8.4, §9.10.3; every other state stays (§9.4–§9.7, §9.9, §9.11, §9.12).
                S::Normal | S::PotentialConflict => Transition::to(comm_fail_mapping(ours)),
                _ => Transition::NONE,
            },
            (S::PotentialConflict, StateEvent::UpdDone) => match ctx.role {
                // §9.10.3: primary → CONFLICT-DONE, secondary → NORMAL.
                Role::Primary => Transition::to(S::ConflictDone),
                Role::Secondary => Transition::to(S::Normal),
            },
            // §9.5.2
            (S::Recover, StateEvent::UpdDone) => Transition::to(S::RecoverWait),
            // §9.6.2
            (S::RecoverWait, StateEvent::RecoverWaitExpired) => Transition::to(S::RecoverDone),
            // §9.9.3, §10
            (S::CommunicationsInterrupted, StateEvent::SafePeriodExpired) => {
                Transition::to(S::PartnerDown)
            }
            // §9.8.4, §9.9.3, §9.11.3
            (
                S::Normal | S::CommunicationsInterrupted | S::ResolutionInterrupted,
                StateEvent::AdminPartnerDown,
            ) => Transition::to(S::PartnerDown),
            // §9.13, §9.14: any running state; PAUSED and SHUTDOWN are left only by restart.
            (_, StateEvent::AdminShutdown) if running(ours) => Transition::to(S::Shutdown),
            (_, StateEvent::AdminPause) if running(ours) => Transition::to(S::Paused),
            _ => Transition::NONE,
        }
    }

    /// States an operator can shut down or pause from (not STARTUP, §9.3; not PAUSED or
    /// SHUTDOWN, §9.13.2, §9.14.3).
    const fn running(ours: S) -> bool {
        !matches!(ours, S::Startup | S::Paused | S::Shutdown | S::Unknown(_))
    }

    /// "Communications OK" with partner state `p` while in `ours` (§9.2 and the per-state
    /// "transitions out of" sections).
    pub(super) fn partner(ours: S, p: S, startup: bool, ctx: &Context) -> Transition {
        // STARTUP is never reported (the S flag is, §9.3.1) and unknown values have no row
        // anywhere: ignore them.
        if matches!(p, S::Startup | S::Unknown(_)) {
            return Transition::NONE;
        }
        match ours {
            // §9.8.4: a partner change while NORMAL goes through COMMUNICATIONS-INTERRUPTED
            // (§9.2) and then takes that state's transition (§9.9.3).
            S::Normal => match p {
                S::Normal => Transition::NONE,
                // Net effect of COMM-INT → NORMAL: stay, and do what entering NORMAL does
                // (§9.8.1), since the partner lost what was in flight.
                S::CommunicationsInterrupted | S::RecoverDone => {
                    Transition::act(Actions::SEND_BACKLOG.union(Actions::when(
                        ctx.role == Role::Secondary,
                        Actions::SEND_POOLREQ,
                    )))
                }
                S::Recover | S::RecoverWait | S::Paused => {
                    Transition::to(S::CommunicationsInterrupted)
                }
                S::Shutdown => Transition::to(S::PartnerDown),
                _ => Transition::to(S::PotentialConflict),
            },
            // §9.9.3 (RECOVER-WAIT from Figure 9.2-1; the text does not list it).
            S::CommunicationsInterrupted => match p {
                S::Normal | S::CommunicationsInterrupted | S::RecoverDone => {
                    Transition::to(S::Normal)
                }
                S::Recover | S::RecoverWait | S::Paused => Transition::NONE,
                S::Shutdown => Transition::to(S::PartnerDown),
                _ => Transition::to(S::PotentialConflict),
            },
            // §9.4.3: STATE with the STARTUP bit is ignored.
            S::PartnerDown if startup => Transition::NONE,
            S::PartnerDown => match p {
                S::Recover | S::RecoverWait | S::Shutdown | S::Paused => Transition::NONE,
                S::RecoverDone => Transition::to(S::Normal),
                _ => Transition::to(S::PotentialConflict),
            },
            // §9.5.2
            S::Recover => match p {
                S::PotentialConflict | S::ResolutionInterrupted | S::ConflictDone => {
                    Transition::to(S::PotentialConflict)
                }
                _ => Transition::act(update_request(ctx)),
            },
            // §9.7.2
            S::RecoverDone => match p {
                S::Normal | S::RecoverDone => Transition::to(S::Normal),
                _ => Transition::NONE,
            },
            // §9.10.3: the secondary asks once the primary is CONFLICT-DONE.
            S::PotentialConflict => match (p, ctx.role) {
                (S::ConflictDone, Role::Secondary) => Transition::act(Actions::SEND_UPDREQ),
                _ => Transition::NONE,
            },
            // §9.11.3
            S::ResolutionInterrupted => Transition::to(S::PotentialConflict),
            // §9.12.3: only a partner in NORMAL moves CONFLICT-DONE.
            S::ConflictDone => match p {
                S::Normal => Transition::to(S::Normal),
                _ => Transition::NONE,
            },
            // §9.14.2
            S::Shutdown => match p {
                S::PartnerDown => Transition::act(Actions::RESTART_IN_RECOVER),
                _ => Transition::NONE,
            },
            // §9.6.2 (timer only), §9.13.2; STARTUP is handled by the caller.
            S::RecoverWait | S::Paused | S::Startup | S::Unknown(_) => Transition::NONE,
        }
    }

    /// §9.3.2 step 5.
    fn startup_comm_ok(p: S, startup: bool, since: UnixTime, ctx: &Context) -> Transition {
        let current = if p == S::PartnerDown {
            // The partner took over after we last operated → RECOVER; otherwise we may both
            // have served → POTENTIAL-CONFLICT (equal times: the conservative choice).
            match ctx.last_operational {
                Some(t) if since <= t => S::PotentialConflict,
                _ => S::Recover,
            }
        } else {
            comm_fail_mapping(effective_previous(ctx))
        };
        let t = partner(current, p, startup, ctx);
        Transition {
            next: t.next.or(Some(current)),
            actions: t.actions,
        }
    }

    /// §9.3.2 step 6.
    fn startup_expired(ctx: &Context) -> Transition {
        match ctx.startup_expiry {
            StartupExpiry::EnterPrevious => {
                Transition::to(comm_fail_mapping(effective_previous(ctx)))
            }
            StartupExpiry::Wait => Transition::NONE,
            StartupExpiry::PartnerDown => Transition::to(S::PartnerDown),
        }
    }
}

/// ISC dhcpd 4.4 (`server/failover.c`).
mod isc {
    use super::{
        Actions, Context, Role, ServerState as S, StartupExpiry, StateEvent, Transition,
        comm_fail_mapping, effective_previous,
    };

    pub(super) fn transition(ours: S, event: &StateEvent, ctx: &Context) -> Transition {
        match (ours, *event) {
            (_, StateEvent::PartnerState { state, startup, .. }) => {
                if !valid(state) {
                    // "Invalid state" → shut_down, from any state.
                    return if ours == S::Shutdown {
                        Transition::NONE
                    } else {
                        Transition::to_with(S::Shutdown, Actions::ALARM)
                    };
                }
                if ours == S::Startup {
                    let previous = effective_previous(ctx);
                    let t = partner(previous, state, startup, true, ctx);
                    Transition {
                        next: t.next.or(Some(previous)),
                        actions: t.actions,
                    }
                } else {
                    partner(ours, state, startup, false, ctx)
                }
            }
            // "disconnect" while in startup: enter the remembered state, mapped.
            (S::Startup, StateEvent::CommFailed) => leave_startup(ctx),
            (S::Startup, StateEvent::StartupExpired) => match ctx.startup_expiry {
                StartupExpiry::EnterPrevious => leave_startup(ctx),
                StartupExpiry::Wait => Transition::NONE,
                StartupExpiry::PartnerDown => Transition::to(S::PartnerDown),
            },
            (_, StateEvent::CommFailed) => match ours {
                S::Normal | S::PotentialConflict => Transition::to(comm_fail_mapping(ours)),
                S::ConflictDone => Transition::act(Actions::REQUEUE_UNACKED),
                _ => Transition::NONE,
            },
            (S::PotentialConflict, StateEvent::UpdDone) => {
                let partner_done = ctx.partner == Some(S::ConflictDone);
                match (ctx.role, partner_done) {
                    (Role::Primary, false) => Transition::to(S::ConflictDone),
                    // "Secondary is in conflict_done state after conflict resolution".
                    (Role::Primary, true) => Transition::to_with(S::Shutdown, Actions::ALARM),
                    (Role::Secondary, true) => Transition::to(S::Normal),
                    // "Spurious update-done message."
                    (Role::Secondary, false) => Transition::NONE,
                }
            }
            (S::Recover, StateEvent::UpdDone) => {
                let waiting = ctx.recover_wait_until.is_none_or(|until| until > ctx.now);
                let partner_recovering = matches!(ctx.partner, Some(S::Recover | S::RecoverDone));
                if waiting && !partner_recovering {
                    Transition::to(S::RecoverWait)
                } else {
                    Transition::to(S::RecoverDone)
                }
            }
            (S::RecoverWait, StateEvent::RecoverWaitExpired) => Transition::to(S::RecoverDone),
            (S::CommunicationsInterrupted, StateEvent::SafePeriodExpired) => {
                Transition::to(S::PartnerDown)
            }
            // OMAPI `local-state` works from any state.
            (_, StateEvent::AdminPartnerDown) => admin(ours, S::PartnerDown),
            (_, StateEvent::AdminShutdown) => admin(ours, S::Shutdown),
            (_, StateEvent::AdminPause) => admin(ours, S::Paused),
            _ => Transition::NONE,
        }
    }

    /// Partner state values ISC knows: 0 ("unknown"), 1..=11 and 254.
    const fn valid(p: S) -> bool {
        !matches!(p, S::Unknown(v) if v != 0)
    }

    fn admin(ours: S, target: S) -> Transition {
        if ours == target {
            Transition::NONE
        } else {
            Transition::to(target)
        }
    }

    fn leave_startup(ctx: &Context) -> Transition {
        let previous = effective_previous(ctx);
        let requeue = Actions::when(previous == S::ConflictDone, Actions::REQUEUE_UNACKED);
        Transition::to_with(comm_fail_mapping(previous), requeue)
    }

    /// `dhcp_failover_peer_state_changed`. `in_startup`: `ours` is the remembered state of a
    /// server still in STARTUP (no UPDREQALL from the RECOVER row then: entering RECOVER sends
    /// it).
    fn partner(ours: S, p: S, startup: bool, in_startup: bool, ctx: &Context) -> Transition {
        let zero_or_startup = matches!(p, S::Unknown(_) | S::Startup);
        match ours {
            S::Normal => match p {
                S::Normal => Transition::act(Actions::POOL_CHECK),
                S::PartnerDown if in_startup => Transition::to(S::Recover),
                S::PartnerDown => Transition::to(S::PotentialConflict),
                // "Invalid state transition".
                S::PotentialConflict | S::ResolutionInterrupted | S::ConflictDone => {
                    Transition::to_with(S::Shutdown, Actions::ALARM)
                }
                S::Recover | S::Shutdown => Transition::to(S::PartnerDown),
                S::Paused => Transition::to(S::CommunicationsInterrupted),
                _ => Transition::NONE,
            },
            S::CommunicationsInterrupted => match p {
                S::Normal | S::CommunicationsInterrupted | S::RecoverDone | S::RecoverWait => {
                    Transition::to_with(S::Normal, Actions::SEND_BACKLOG)
                }
                S::PartnerDown
                | S::PotentialConflict
                | S::ResolutionInterrupted
                | S::ConflictDone => Transition::to(S::PotentialConflict),
                S::Recover | S::Shutdown => Transition::to(S::PartnerDown),
                _ => Transition::NONE,
            },
            // "Take no action if other server is starting up."
            S::PartnerDown if startup => Transition::NONE,
            S::PartnerDown => match p {
                S::Normal
                | S::CommunicationsInterrupted
                | S::PartnerDown
                | S::PotentialConflict
                | S::ResolutionInterrupted
                | S::ConflictDone => Transition::to(S::PotentialConflict),
                S::RecoverDone => Transition::to(S::Normal),
                _ => Transition::NONE,
            },
            S::Recover => match p {
                S::Normal | S::PotentialConflict | S::ResolutionInterrupted | S::ConflictDone => {
                    Transition::to(S::PotentialConflict)
                }
                S::CommunicationsInterrupted | S::PartnerDown | S::Recover => {
                    Transition::act(Actions::when(!in_startup, Actions::SEND_UPDREQALL))
                }
                S::Shutdown => Transition::to(S::PartnerDown),
                _ => Transition::NONE,
            },
            S::RecoverDone => match p {
                S::Normal | S::RecoverDone => Transition::to(S::Normal),
                S::Shutdown => Transition::to(S::PartnerDown),
                _ => Transition::NONE,
            },
            S::PotentialConflict => match p {
                // "Peer moves to normal during conflict resolution - panic".
                S::Normal => Transition::to_with(S::Shutdown, Actions::ALARM),
                S::ConflictDone if ctx.partner == Some(S::PotentialConflict) => {
                    Transition::act(Actions::SEND_UPDREQ)
                }
                // "Unexpected move to conflict-done."
                S::ConflictDone => Transition::act(Actions::ALARM),
                // ISC goes to RECOVER here, and from RECOVER to POTENTIAL-CONFLICT when the
                // partner is there: two servers that meet in these two states swap them
                // forever (found by the simulator). We stay, as the draft does (§9.10.3); the
                // partner in RECOVER then joins us in POTENTIAL-CONFLICT (ISC does too).
                S::Recover => Transition::NONE,
                S::Shutdown => Transition::to(S::PartnerDown),
                _ => Transition::NONE,
            },
            S::ResolutionInterrupted => match p {
                S::Shutdown => Transition::to(S::PartnerDown),
                S::Paused => Transition::NONE,
                _ if zero_or_startup => Transition::NONE,
                _ => Transition::to(S::PotentialConflict),
            },
            S::ConflictDone => match p {
                S::Normal => Transition::to(S::Normal),
                S::Shutdown => Transition::to(S::Shutdown),
                S::PotentialConflict | S::ResolutionInterrupted => Transition::NONE,
                // ISC: log_fatal, the process exits. We stay (as the draft, §9.12.3) and alarm.
                _ => Transition::act(Actions::ALARM),
            },
            S::RecoverWait | S::Paused | S::Shutdown | S::Startup | S::Unknown(_) => {
                Transition::NONE
            }
        }
    }
}
