//! The endpoint state machine of §8, STARTUP (§8.3) included, on v4's.
//!
//! RFC 8156's machine is draft-12's (§8.1–§8.12 against draft §9) without PAUSED and SHUTDOWN
//! and with other state numbers, so [`step`] maps the states ([`to_v4`], [`from_v4`]) and
//! calls v4's [`transition::step`] with [`Dialect::Draft`]: one rule book. It agrees on
//! every cell but three, which this module adds:
//!
//! * RECOVER-DONE with the partner in RECOVER or RECOVER-WAIT → COMMUNICATIONS-INTERRUPTED,
//!   and with the partner in POTENTIAL-CONFLICT → POTENTIAL-CONFLICT (§8.7.2; draft-12 §9.7.2
//!   stays in both). A STARTUP that resumes RECOVER-DONE takes these cells too (§8.3 step 5).
//!
//! What v4 gives and RFC 8156 says alike:
//! * STARTUP (§8.3): with nothing stored the previous state is RECOVER ([`startup_previous`];
//!   §8.2 says PARTNER-DOWN for a primary, §8.3.2 step 1 RECOVER — RECOVER is the safe one,
//!   and [`StartupExpiry::PartnerDown`] is the knob §8.3.2 asks for); NORMAL and
//!   POTENTIAL-CONFLICT map to their communications-failed states (step 2); on the
//!   partner's first STATE a partner in PARTNER-DOWN since after our last operation sends us
//!   to RECOVER, since before to POTENTIAL-CONFLICT (step 5), then that state's row applies;
//!   the timer going off enters the previous state (step 6, [`StartupExpiry::EnterPrevious`]).
//! * PARTNER-DOWN ignores a STATE with the S flag (§8.4.2); NORMAL takes a partner change as
//!   COMMUNICATIONS-INTERRUPTED and then that row (§8.8.2); COMMUNICATIONS-INTERRUPTED stays
//!   with a partner in RECOVER-WAIT (§8.9.2's text has no cell; Figure 6 would go to
//!   POTENTIAL-CONFLICT; staying is the reading that waits for the partner's RECOVER-DONE).
//! * RECOVER asks with UPDREQ, or UPDREQALL when it lost its storage (§8.5.2); UPDDONE →
//!   RECOVER-WAIT, its timer → RECOVER-DONE; POTENTIAL-CONFLICT's UPDDONE → CONFLICT-DONE
//!   (primary) or NORMAL (secondary) (§8.10.2); the secondary sends POOLREQ on entering
//!   NORMAL (§8.8) — v4's [`Actions`].
//!
//! ```
//! use failover_fsm::transition::Actions;
//! use failover_fsm::v6::state::{Context, Event, startup_previous, step};
//! use failover_fsm::{Role, UnixTime};
//! use failover_proto::v6::ServerState;
//!
//! let now = UnixTime(1_700_000_000);
//! // Restarted after NORMAL: STARTUP remembers COMMUNICATIONS-INTERRUPTED (§8.3 step 2).
//! let ctx = Context {
//!     previous: startup_previous(Some(ServerState::Normal)),
//!     ..Context::new(Role::Secondary, now)
//! };
//! assert_eq!(ctx.previous, ServerState::CommunicationsInterrupted);
//! // The primary says NORMAL: both NORMAL; the secondary sends its backlog and POOLREQ.
//! let partner = Event::PartnerState { state: ServerState::Normal, startup: false, since: now };
//! let t = step(ServerState::Startup, &partner, &ctx);
//! assert_eq!(t.next, Some(ServerState::Normal));
//! assert!(t.actions.contains(Actions::SEND_BACKLOG | Actions::SEND_POOLREQ));
//! ```

use failover_proto::Role;
use failover_proto::ServerState as V4;
use failover_proto::v6::ServerState;

use crate::dialect::Dialect;
use crate::time::UnixTime;
use crate::transition::{self, Actions, StartupExpiry, StateEvent};

/// The draft-12 state of the same name.
pub const fn to_v4(state: ServerState) -> V4 {
    match state {
        ServerState::Startup => V4::Startup,
        ServerState::Normal => V4::Normal,
        ServerState::CommunicationsInterrupted => V4::CommunicationsInterrupted,
        ServerState::PartnerDown => V4::PartnerDown,
        ServerState::PotentialConflict => V4::PotentialConflict,
        ServerState::Recover => V4::Recover,
        ServerState::RecoverWait => V4::RecoverWait,
        ServerState::RecoverDone => V4::RecoverDone,
        ServerState::ResolutionInterrupted => V4::ResolutionInterrupted,
        ServerState::ConflictDone => V4::ConflictDone,
        ServerState::Unknown(v) => V4::Unknown(v),
    }
}

/// The RFC 8156 state of the same name; `None` for PAUSED, SHUTDOWN and unknown values,
/// which RFC 8156 does not have.
pub const fn from_v4(state: V4) -> Option<ServerState> {
    Some(match state {
        V4::Startup => ServerState::Startup,
        V4::Normal => ServerState::Normal,
        V4::CommunicationsInterrupted => ServerState::CommunicationsInterrupted,
        V4::PartnerDown => ServerState::PartnerDown,
        V4::PotentialConflict => ServerState::PotentialConflict,
        V4::Recover => ServerState::Recover,
        V4::RecoverWait => ServerState::RecoverWait,
        V4::RecoverDone => ServerState::RecoverDone,
        V4::ResolutionInterrupted => ServerState::ResolutionInterrupted,
        V4::ConflictDone => ServerState::ConflictDone,
        V4::Paused | V4::Shutdown | V4::Unknown(_) => return None,
    })
}

/// Something that can move the state machine (§8.1): RFC 8156 has no PAUSED or SHUTDOWN, so
/// no operator event leads there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Event {
    /// A STATE from the partner (§6.4), or the first one of a connection (communications OK).
    PartnerState {
        /// OPTION_F_SERVER_STATE.
        state: ServerState,
        /// The S (STARTUP) bit of OPTION_F_SERVER_FLAGS.
        startup: bool,
        /// OPTION_F_START_TIME_OF_STATE, as [`UnixTime`](super::wire_time).
        since: UnixTime,
    },
    /// Communications failed: TCP lost, FO_KEEPALIVE_TIMER expired, DISCONNECT (§6.6, §8.8.2).
    CommFailed,
    /// UPDDONE for our UPDREQ or UPDREQALL (§5.3.7).
    UpdDone,
    /// The RECOVER-WAIT timer (TIME-OF-FAILURE + MCLT) went off (§8.6.2).
    RecoverWaitExpired,
    /// The auto-partner-down timer of COMMUNICATIONS-INTERRUPTED went off (§8.9.2).
    AutoPartnerDownExpired,
    /// The STARTUP timer went off (§8.3.2 step 6).
    StartupExpired,
    /// The operator says the partner is down (§8.8.2, §8.9.2, §8.11.2).
    AdminPartnerDown,
}

impl Event {
    const fn to_v4(self) -> StateEvent {
        match self {
            Event::PartnerState {
                state,
                startup,
                since,
            } => StateEvent::PartnerState {
                state: to_v4(state),
                startup,
                since,
            },
            Event::CommFailed => StateEvent::CommFailed,
            Event::UpdDone => StateEvent::UpdDone,
            Event::RecoverWaitExpired => StateEvent::RecoverWaitExpired,
            Event::AutoPartnerDownExpired => StateEvent::SafePeriodExpired,
            Event::StartupExpired => StateEvent::StartupExpired,
            Event::AdminPartnerDown => StateEvent::AdminPartnerDown,
        }
    }
}

/// What the machine knows besides our state and the event: v4's
/// [`transition::Context`] with v6 states, the draft's rules implied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Context {
    /// Our role.
    pub role: Role,
    /// The wall clock now.
    pub now: UnixTime,
    /// PREVIOUS-STATE of STARTUP ([`startup_previous`]); only read in STARTUP.
    pub previous: ServerState,
    /// The last time this server is known to have been operating (§8.3 steps 1 and 5; persist
    /// it periodically); `None` = never.
    pub last_operational: Option<UnixTime>,
    /// The partner's state as recorded before this event; `None` = never heard of it.
    pub partner: Option<ServerState>,
    /// Communications are OK: the partner's STATE has been received on this connection.
    pub comm_ok: bool,
    /// We lost our binding database (or never talked to the partner while it has a record of
    /// us): RECOVER asks with UPDREQALL (§8.5.2).
    pub lost_storage: bool,
    /// What the STARTUP timer does (§8.3.2 step 6).
    pub startup_expiry: StartupExpiry,
}

impl Context {
    /// Nothing recorded: previous state RECOVER, partner unknown, communications not OK.
    pub const fn new(role: Role, now: UnixTime) -> Context {
        Context {
            role,
            now,
            previous: ServerState::Recover,
            last_operational: None,
            partner: None,
            comm_ok: false,
            lost_storage: false,
            startup_expiry: StartupExpiry::EnterPrevious,
        }
    }

    const fn to_v4(self) -> transition::Context {
        transition::Context {
            role: self.role,
            dialect: Dialect::Draft,
            now: self.now,
            previous: to_v4(self.previous),
            last_operational: self.last_operational,
            partner: match self.partner {
                Some(p) => Some(to_v4(p)),
                None => None,
            },
            recover_wait_until: None,
            comm_ok: self.comm_ok,
            lost_storage: self.lost_storage,
            startup_expiry: self.startup_expiry,
        }
    }
}

/// Where to go and what to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Transition {
    /// The state to enter; `None` = stay. Never STARTUP, never our state.
    pub next: Option<ServerState>,
    /// What to do: the event's actions and the entry actions of `next` (v4's
    /// [`transition::entry_actions`]).
    pub actions: Actions,
}

/// PREVIOUS-STATE for STARTUP from the stored state (§8.3.2 steps 1–2): RECOVER when nothing
/// is stored, else the stored state through its communications-failed transition.
pub fn startup_previous(stored: Option<ServerState>) -> ServerState {
    let v4 = transition::startup_previous(stored.map(to_v4), Dialect::Draft);
    from_v4(v4).unwrap_or(ServerState::Recover)
}

/// The transition `event` causes in `ours` (§8), with the entry actions of the next state.
pub fn step(ours: ServerState, event: &Event, ctx: &Context) -> Transition {
    let t = step_v4(to_v4(ours), &event.to_v4(), &ctx.to_v4());
    Transition {
        next: t.next.and_then(from_v4),
        actions: t.actions,
    }
}

/// [`step`] on draft-12's types, as the engine runs it for a [`V6`](crate::engine::V6)
/// relationship (it keeps its state as draft-12's): v4's table with the cells RFC 8156 adds.
/// A cell leading to PAUSED or SHUTDOWN, which RFC 8156 lacks, stays.
pub(crate) fn step_v4(
    ours: V4,
    event: &StateEvent,
    ctx: &transition::Context,
) -> transition::Transition {
    let mut t = transition::step(ours, event, ctx);
    if let Some(next) = recover_done_cell(ours, event, ctx, t.next) {
        t.next = Some(next);
        t.actions |= transition::entry_actions(next, ours, &ctx.after(event));
    }
    if matches!(t.next, Some(V4::Paused | V4::Shutdown)) {
        t.next = None;
    }
    t
}

/// §8.7.2's cells that draft-12 §9.7.2 lacks: RECOVER-DONE (stayed in, or resumed from
/// STARTUP) with a partner in RECOVER / RECOVER-WAIT or POTENTIAL-CONFLICT.
fn recover_done_cell(
    ours: V4,
    event: &StateEvent,
    ctx: &transition::Context,
    v4_next: Option<V4>,
) -> Option<V4> {
    let StateEvent::PartnerState { state: p, .. } = *event else {
        return None;
    };
    let repeat = ours != V4::Startup && ctx.comm_ok && ctx.partner == Some(p);
    let in_recover_done = match v4_next {
        None => ours == V4::RecoverDone,
        Some(next) => next == V4::RecoverDone,
    };
    if repeat || !in_recover_done {
        return None;
    }
    match p {
        V4::Recover | V4::RecoverWait => Some(V4::CommunicationsInterrupted),
        V4::PotentialConflict => Some(V4::PotentialConflict),
        _ => None,
    }
}
