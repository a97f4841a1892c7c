//! The failover state machine, cell by cell: every row and column of the draft-12 tables
//! (partner-state transitions and other events) and of ISC dhcpd's tables, encoded as data;
//! the STARTUP algorithm of §9.3.2 for both dialects; entry actions; repeats of STATE; and a
//! property test over arbitrary inputs.
#![allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::panic)]

use std::collections::BTreeSet;

use failover_fsm::transition::{
    Actions, Context, StartupExpiry, StateEvent, Transition, comm_fail_mapping, entry_actions,
    startup_previous, step, transition,
};
use failover_fsm::{Dialect, Role, ServerState, UnixTime};
use proptest::prelude::*;

// ----- short names -----

const STU: ServerState = ServerState::Startup;
const N: ServerState = ServerState::Normal;
const CI: ServerState = ServerState::CommunicationsInterrupted;
const PD: ServerState = ServerState::PartnerDown;
const POT: ServerState = ServerState::PotentialConflict;
const REC: ServerState = ServerState::Recover;
const PAU: ServerState = ServerState::Paused;
const SHUT: ServerState = ServerState::Shutdown;
const RD: ServerState = ServerState::RecoverDone;
const RES: ServerState = ServerState::ResolutionInterrupted;
const CD: ServerState = ServerState::ConflictDone;
const RW: ServerState = ServerState::RecoverWait;
/// ISC's "unknown_state" (0), a value ISC accepts.
const Z: ServerState = ServerState::Unknown(0);
/// A value outside {0..11, 254}.
const BAD: ServerState = ServerState::Unknown(99);

const NO: Actions = Actions::NONE;
const UPD: Actions = Actions::SEND_UPDREQ;
const UPDALL: Actions = Actions::SEND_UPDREQALL;
const BACKLOG: Actions = Actions::SEND_BACKLOG;
const POOLREQ: Actions = Actions::SEND_POOLREQ;
const POOLCHK: Actions = Actions::POOL_CHECK;
const REQUEUE: Actions = Actions::REQUEUE_UNACKED;
const SAFE: Actions = Actions::START_SAFE_TIMER;
const RWAIT: Actions = Actions::START_RECOVER_WAIT;
const ALARM: Actions = Actions::ALARM;
const SAVE: Actions = Actions::SAVE_RESTART_STATE;
const INREC: Actions = Actions::RESTART_IN_RECOVER;
const LASTOP: Actions = Actions::RECORD_LAST_OPERATIONAL;
const DISC: Actions = Actions::DISCONNECT;

const NOW: UnixTime = UnixTime(1_000_000);

/// STATE from the partner, STARTUP bit clear.
const fn st(state: ServerState) -> StateEvent {
    StateEvent::PartnerState {
        state,
        startup: false,
        since: UnixTime(0),
    }
}

/// STATE from the partner, STARTUP bit set.
const fn sts(state: ServerState) -> StateEvent {
    StateEvent::PartnerState {
        state,
        startup: true,
        since: UnixTime(0),
    }
}

const CF: StateEvent = StateEvent::CommFailed;
const UD: StateEvent = StateEvent::UpdDone;
const RWE: StateEvent = StateEvent::RecoverWaitExpired;
const SPE: StateEvent = StateEvent::SafePeriodExpired;
const SE: StateEvent = StateEvent::StartupExpired;
const APD: StateEvent = StateEvent::AdminPartnerDown;
const ASH: StateEvent = StateEvent::AdminShutdown;
const APA: StateEvent = StateEvent::AdminPause;

// ----- the cell type -----

/// Which role(s) a cell is checked for.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Who {
    Both,
    P,
    S,
}

/// Context beyond the default (nothing recorded, communications not yet OK).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Pre {
    Fresh,
    /// The partner's state recorded before the event.
    PartnerWas(ServerState),
    /// The remembered previous state (STARTUP rows).
    Prev(ServerState),
    /// RECOVER-WAIT end already passed.
    WaitPast,
    /// RECOVER-WAIT end in the future, partner recorded as given (`None` = unknown).
    WaitFuture(Option<ServerState>),
    /// §9.5.2: storage lost / never talked.
    Lost,
}

#[derive(Debug, Clone, Copy)]
struct Cell {
    ours: ServerState,
    event: StateEvent,
    who: Who,
    pre: Pre,
    next: Option<ServerState>,
    actions: Actions,
    cite: &'static str,
}

/// A cell for both roles, default context.
const fn c(
    ours: ServerState,
    event: StateEvent,
    next: Option<ServerState>,
    actions: Actions,
    cite: &'static str,
) -> Cell {
    Cell {
        ours,
        event,
        who: Who::Both,
        pre: Pre::Fresh,
        next,
        actions,
        cite,
    }
}

/// A cell with a role and/or context variant.
const fn cv(
    ours: ServerState,
    event: StateEvent,
    who: Who,
    pre: Pre,
    next: Option<ServerState>,
    actions: Actions,
    cite: &'static str,
) -> Cell {
    Cell {
        ours,
        event,
        who,
        pre,
        next,
        actions,
        cite,
    }
}

fn context(role: Role, dialect: Dialect, pre: Pre) -> Context {
    let base = Context::new(role, dialect, NOW);
    match pre {
        Pre::Fresh => base,
        Pre::PartnerWas(p) => Context {
            partner: Some(p),
            ..base
        },
        Pre::Prev(p) => Context {
            previous: p,
            ..base
        },
        Pre::WaitPast => Context {
            recover_wait_until: Some(NOW.minus(1)),
            ..base
        },
        Pre::WaitFuture(partner) => Context {
            recover_wait_until: Some(NOW.plus(3600)),
            partner,
            ..base
        },
        Pre::Lost => Context {
            lost_storage: true,
            ..base
        },
    }
}

/// The grid column of an event: partner state code (+0x100 with the STARTUP bit) or an index
/// for the other events.
fn column(event: &StateEvent) -> u16 {
    match *event {
        StateEvent::PartnerState { state, startup, .. } => {
            u16::from(u8::from(state)) + if startup { 0x100 } else { 0 }
        }
        StateEvent::CommFailed => 0x1000,
        StateEvent::UpdDone => 0x1001,
        StateEvent::RecoverWaitExpired => 0x1002,
        StateEvent::SafePeriodExpired => 0x1003,
        StateEvent::StartupExpired => 0x1004,
        StateEvent::AdminPartnerDown => 0x1005,
        StateEvent::AdminShutdown => 0x1006,
        StateEvent::AdminPause => 0x1007,
    }
}

/// Checks every cell of `table` with `dialect`; asserts that the cells cover the full grid
/// `rows × cols` (no more, no less) and returns how many (cell, role) checks ran.
fn check_table(
    name: &str,
    dialect: Dialect,
    table: &[Cell],
    rows: &[ServerState],
    cols: &[StateEvent],
) -> usize {
    let mut checked = 0;
    let mut failures = Vec::new();
    let mut covered = BTreeSet::new();
    for cell in table {
        covered.insert((u8::from(cell.ours), column(&cell.event)));
        let roles: &[Role] = match cell.who {
            Who::Both => &[Role::Primary, Role::Secondary],
            Who::P => &[Role::Primary],
            Who::S => &[Role::Secondary],
        };
        for &role in roles {
            let ctx = context(role, dialect, cell.pre);
            let got = transition(cell.ours, &cell.event, &ctx);
            let want = Transition {
                next: cell.next,
                actions: cell.actions,
            };
            if got != want {
                failures.push(format!(
                    "{name} [{}] {:?} + {:?} ({role:?}, {:?}): want {want:?}, got {got:?}",
                    cell.cite, cell.ours, cell.event, cell.pre
                ));
            }
            checked += 1;
        }
    }
    assert!(
        failures.is_empty(),
        "{} cell(s) wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
    let grid: BTreeSet<(u8, u16)> = rows
        .iter()
        .flat_map(|r| cols.iter().map(move |e| (u8::from(*r), column(e))))
        .collect();
    let missing: Vec<_> = grid.difference(&covered).collect();
    let extra: Vec<_> = covered.difference(&grid).collect();
    assert!(missing.is_empty(), "{name}: cells not encoded: {missing:?}");
    assert!(
        extra.is_empty(),
        "{name}: cells outside the grid: {extra:?}"
    );
    checked
}

// ===== Draft: partner-state transitions (the draft table, §3.1 of the digest) =====

const DRAFT_PARTNER_COLS: [StateEvent; 11] = [
    st(N),
    st(CI),
    st(PD),
    st(POT),
    st(RES),
    st(CD),
    st(REC),
    st(RW),
    st(RD),
    st(PAU),
    st(SHUT),
];
const DRAFT_PARTNER_ROWS: [ServerState; 11] = [N, CI, PD, REC, RW, RD, POT, RES, CD, PAU, SHUT];

#[rustfmt::skip]
const DRAFT_PARTNER: &[Cell] = &[
    // NORMAL: a partner change goes through COMM-INT (§9.2, §9.8.4), then §9.9.3.
    c(N, st(N), None, NO, "§9.8.4"),
    cv(N, st(CI), Who::P, Pre::Fresh, None, BACKLOG, "§9.2, §9.9.3, §9.8.1"),
    cv(N, st(CI), Who::S, Pre::Fresh, None, BACKLOG.union(POOLREQ), "§9.2, §9.9.3, §9.8.1"),
    c(N, st(PD), Some(POT), NO, "§9.8.4, §9.9.3"),
    c(N, st(POT), Some(POT), NO, "§9.8.4, §9.9.3"),
    c(N, st(RES), Some(POT), NO, "§9.8.4, §9.9.3"),
    c(N, st(CD), Some(POT), NO, "§9.8.4, §9.9.3"),
    c(N, st(REC), Some(CI), NO, "§9.8.4, §9.9.3"),
    c(N, st(RW), Some(CI), NO, "§9.8.4, Figure 9.2-1"),
    cv(N, st(RD), Who::P, Pre::Fresh, None, BACKLOG, "§9.2, §9.9.3, §9.8.1"),
    cv(N, st(RD), Who::S, Pre::Fresh, None, BACKLOG.union(POOLREQ), "§9.2, §9.9.3, §9.8.1"),
    c(N, st(PAU), Some(CI), NO, "§9.8.4"),
    c(N, st(SHUT), Some(PD), NO, "§9.8.4"),
    // COMMUNICATIONS-INTERRUPTED (§9.9.3)
    c(CI, st(N), Some(N), NO, "§9.9.3"),
    c(CI, st(CI), Some(N), NO, "§9.9.3"),
    c(CI, st(PD), Some(POT), NO, "§9.9.3"),
    c(CI, st(POT), Some(POT), NO, "§9.9.3"),
    c(CI, st(RES), Some(POT), NO, "§9.9.3"),
    c(CI, st(CD), Some(POT), NO, "§9.9.3"),
    c(CI, st(REC), None, NO, "§9.9.3"),
    c(CI, st(RW), None, NO, "Figure 9.2-1 (text silent)"),
    c(CI, st(RD), Some(N), NO, "§9.9.3"),
    c(CI, st(PAU), None, NO, "§9.9.3"),
    c(CI, st(SHUT), Some(PD), NO, "§9.9.3"),
    // PARTNER-DOWN (§9.4.3)
    c(PD, st(N), Some(POT), NO, "§9.4.3"),
    c(PD, st(CI), Some(POT), NO, "§9.4.3"),
    c(PD, st(PD), Some(POT), NO, "§9.4.3"),
    c(PD, st(POT), Some(POT), NO, "§9.4.3"),
    c(PD, st(RES), Some(POT), NO, "§9.4.3"),
    c(PD, st(CD), Some(POT), NO, "§9.4.3"),
    c(PD, st(REC), None, NO, "§9.4.3"),
    c(PD, st(RW), None, NO, "§9.4.3"),
    c(PD, st(RD), Some(N), NO, "§9.4.3"),
    c(PD, st(PAU), None, NO, "§9.4.3"),
    c(PD, st(SHUT), None, NO, "§9.4.3"),
    // PARTNER-DOWN ignores STATE with the STARTUP bit (§9.4.3)
    c(PD, sts(N), None, NO, "§9.4.3 S bit"),
    c(PD, sts(CI), None, NO, "§9.4.3 S bit"),
    c(PD, sts(PD), None, NO, "§9.4.3 S bit"),
    c(PD, sts(POT), None, NO, "§9.4.3 S bit"),
    c(PD, sts(RES), None, NO, "§9.4.3 S bit"),
    c(PD, sts(CD), None, NO, "§9.4.3 S bit"),
    c(PD, sts(REC), None, NO, "§9.4.3 S bit"),
    c(PD, sts(RW), None, NO, "§9.4.3 S bit"),
    c(PD, sts(RD), None, NO, "§9.4.3 S bit"),
    c(PD, sts(PAU), None, NO, "§9.4.3 S bit"),
    c(PD, sts(SHUT), None, NO, "§9.4.3 S bit"),
    // RECOVER (§9.5.2): request updates unless the partner is resolving a conflict.
    c(REC, st(N), None, UPD, "§9.5.2"),
    cv(REC, st(N), Who::Both, Pre::Lost, None, UPDALL, "§9.5.2 storage lost"),
    c(REC, st(CI), None, UPD, "§9.5.2"),
    c(REC, st(PD), None, UPD, "§9.5.2"),
    cv(REC, st(PD), Who::Both, Pre::Lost, None, UPDALL, "§9.5.2 storage lost"),
    c(REC, st(POT), Some(POT), NO, "§9.5.2"),
    c(REC, st(RES), Some(POT), NO, "§9.5.2"),
    c(REC, st(CD), Some(POT), NO, "§9.5.2"),
    c(REC, st(REC), None, UPD, "§9.5.2"),
    c(REC, st(RW), None, UPD, "§9.5.2"),
    c(REC, st(RD), None, UPD, "§9.5.2"),
    c(REC, st(PAU), None, UPD, "§9.5.2"),
    c(REC, st(SHUT), None, UPD, "§9.5.2"),
    // RECOVER-WAIT: timer only (§9.6.2)
    c(RW, st(N), None, NO, "§9.6.2"),
    c(RW, st(CI), None, NO, "§9.6.2"),
    c(RW, st(PD), None, NO, "§9.6.2"),
    c(RW, st(POT), None, NO, "§9.6.2"),
    c(RW, st(RES), None, NO, "§9.6.2"),
    c(RW, st(CD), None, NO, "§9.6.2"),
    c(RW, st(REC), None, NO, "§9.6.2"),
    c(RW, st(RW), None, NO, "§9.6.2"),
    c(RW, st(RD), None, NO, "§9.6.2"),
    c(RW, st(PAU), None, NO, "§9.6.2"),
    c(RW, st(SHUT), None, NO, "§9.6.2"),
    // RECOVER-DONE (§9.7.2)
    c(RD, st(N), Some(N), NO, "§9.7.2"),
    c(RD, st(CI), None, NO, "§9.7.2"),
    c(RD, st(PD), None, NO, "§9.7.2"),
    c(RD, st(POT), None, NO, "§9.7.2"),
    c(RD, st(RES), None, NO, "§9.7.2"),
    c(RD, st(CD), None, NO, "§9.7.2"),
    c(RD, st(REC), None, NO, "§9.7.2"),
    c(RD, st(RW), None, NO, "§9.7.2"),
    c(RD, st(RD), Some(N), NO, "§9.7.2"),
    c(RD, st(PAU), None, NO, "§9.7.2"),
    c(RD, st(SHUT), None, NO, "§9.7.2"),
    // POTENTIAL-CONFLICT (§9.10.3): only the secondary reacts, to CONFLICT-DONE.
    c(POT, st(N), None, NO, "§9.10.3"),
    c(POT, st(CI), None, NO, "§9.10.3"),
    c(POT, st(PD), None, NO, "§9.10.3"),
    c(POT, st(POT), None, NO, "§9.10.3"),
    c(POT, st(RES), None, NO, "§9.10.3"),
    cv(POT, st(CD), Who::P, Pre::Fresh, None, NO, "§9.10.3"),
    cv(POT, st(CD), Who::S, Pre::Fresh, None, UPD, "§9.10.3"),
    c(POT, st(REC), None, NO, "§9.10.3"),
    c(POT, st(RW), None, NO, "§9.10.3"),
    c(POT, st(RD), None, NO, "§9.10.3"),
    c(POT, st(PAU), None, NO, "§9.10.3"),
    c(POT, st(SHUT), None, NO, "§9.10.3"),
    // RESOLUTION-INTERRUPTED (§9.11.3)
    c(RES, st(N), Some(POT), NO, "§9.11.3"),
    c(RES, st(CI), Some(POT), NO, "§9.11.3"),
    c(RES, st(PD), Some(POT), NO, "§9.11.3"),
    c(RES, st(POT), Some(POT), NO, "§9.11.3"),
    c(RES, st(RES), Some(POT), NO, "§9.11.3"),
    c(RES, st(CD), Some(POT), NO, "§9.11.3"),
    c(RES, st(REC), Some(POT), NO, "§9.11.3"),
    c(RES, st(RW), Some(POT), NO, "§9.11.3"),
    c(RES, st(RD), Some(POT), NO, "§9.11.3"),
    c(RES, st(PAU), Some(POT), NO, "§9.11.3"),
    c(RES, st(SHUT), Some(POT), NO, "§9.11.3"),
    // CONFLICT-DONE (§9.12.3): only a partner in NORMAL moves it.
    c(CD, st(N), Some(N), NO, "§9.12.3"),
    c(CD, st(CI), None, NO, "§9.12.3"),
    c(CD, st(PD), None, NO, "§9.12.3"),
    c(CD, st(POT), None, NO, "§9.12.3"),
    c(CD, st(RES), None, NO, "§9.12.3"),
    c(CD, st(CD), None, NO, "§9.12.3"),
    c(CD, st(REC), None, NO, "§9.12.3"),
    c(CD, st(RW), None, NO, "§9.12.3"),
    c(CD, st(RD), None, NO, "§9.12.3"),
    c(CD, st(PAU), None, NO, "§9.12.3"),
    c(CD, st(SHUT), None, NO, "§9.12.3"),
    // PAUSED: left only by restart (§9.13.2)
    c(PAU, st(N), None, NO, "§9.13.2"),
    c(PAU, st(CI), None, NO, "§9.13.2"),
    c(PAU, st(PD), None, NO, "§9.13.2"),
    c(PAU, st(POT), None, NO, "§9.13.2"),
    c(PAU, st(RES), None, NO, "§9.13.2"),
    c(PAU, st(CD), None, NO, "§9.13.2"),
    c(PAU, st(REC), None, NO, "§9.13.2"),
    c(PAU, st(RW), None, NO, "§9.13.2"),
    c(PAU, st(RD), None, NO, "§9.13.2"),
    c(PAU, st(PAU), None, NO, "§9.13.2"),
    c(PAU, st(SHUT), None, NO, "§9.13.2"),
    // SHUTDOWN: left only by restart (§9.14.3); partner PARTNER-DOWN → restart in RECOVER (§9.14.2)
    c(SHUT, st(N), None, NO, "§9.14.3"),
    c(SHUT, st(CI), None, NO, "§9.14.3"),
    c(SHUT, st(PD), None, INREC, "§9.14.2"),
    c(SHUT, st(POT), None, NO, "§9.14.3"),
    c(SHUT, st(RES), None, NO, "§9.14.3"),
    c(SHUT, st(CD), None, NO, "§9.14.3"),
    c(SHUT, st(REC), None, NO, "§9.14.3"),
    c(SHUT, st(RW), None, NO, "§9.14.3"),
    c(SHUT, st(RD), None, NO, "§9.14.3"),
    c(SHUT, st(PAU), None, NO, "§9.14.3"),
    c(SHUT, st(SHUT), None, NO, "§9.14.3"),
];

#[test]
fn draft_partner_state_table() {
    let mut cols = DRAFT_PARTNER_COLS.to_vec();
    cols.extend(DRAFT_PARTNER_COLS.iter().map(|e| match *e {
        StateEvent::PartnerState { state, .. } => sts(state),
        other => other,
    }));
    // The S-bit columns exist only for the PARTNER-DOWN row.
    let plain = DRAFT_PARTNER
        .iter()
        .copied()
        .filter(|c| !matches!(c.event, StateEvent::PartnerState { startup: true, .. }))
        .collect::<Vec<_>>();
    let sbit = DRAFT_PARTNER
        .iter()
        .copied()
        .filter(|c| matches!(c.event, StateEvent::PartnerState { startup: true, .. }))
        .collect::<Vec<_>>();
    let n1 = check_table(
        "draft partner",
        Dialect::Draft,
        &plain,
        &DRAFT_PARTNER_ROWS,
        &DRAFT_PARTNER_COLS,
    );
    let n2 = check_table("draft S bit", Dialect::Draft, &sbit, &[PD], &cols[11..]);
    // 11 × 11 grid cells; 3 of them (N+CI, N+RD, POT+CD) split into a primary and a
    // secondary entry; 2 storage-lost variants. 11 S-bit cells.
    assert_eq!(plain.len(), 121 + 3 + 2);
    assert_eq!(n1, 2 * (121 - 3) + 2 * 3 + 2 * 2);
    assert_eq!(n2, 22);
}

// ===== Draft: other events (§3.2 of the digest) =====

const OTHER_COLS: [StateEvent; 8] = [CF, UD, RWE, SPE, SE, APD, ASH, APA];
const ALL_ROWS: [ServerState; 12] = [STU, N, CI, PD, POT, RES, CD, REC, RW, RD, PAU, SHUT];

#[rustfmt::skip]
const DRAFT_OTHER: &[Cell] = &[
    // STARTUP (§9.3.2): only the timer (step 6); previous NORMAL was mapped to COMM-INT (step 2).
    cv(STU, CF, Who::Both, Pre::Prev(CI), None, NO, "§9.3.2"),
    cv(STU, UD, Who::Both, Pre::Prev(CI), None, NO, "§9.3.2"),
    cv(STU, RWE, Who::Both, Pre::Prev(CI), None, NO, "§9.3.2"),
    cv(STU, SPE, Who::Both, Pre::Prev(CI), None, NO, "§9.3.2"),
    cv(STU, SE, Who::Both, Pre::Prev(CI), Some(CI), NO, "§9.3.2 step 6"),
    cv(STU, APD, Who::Both, Pre::Prev(CI), None, NO, "§9.3"),
    cv(STU, ASH, Who::Both, Pre::Prev(CI), None, NO, "§9.3"),
    cv(STU, APA, Who::Both, Pre::Prev(CI), None, NO, "§9.3"),
    // NORMAL
    c(N, CF, Some(CI), NO, "§9.8.4"),
    c(N, UD, None, NO, "§9.8.4"),
    c(N, RWE, None, NO, "§9.8.4"),
    c(N, SPE, None, NO, "§9.8.4"),
    c(N, SE, None, NO, "§9.8.4"),
    c(N, APD, Some(PD), NO, "§9.8.4"),
    c(N, ASH, Some(SHUT), NO, "§9.14"),
    c(N, APA, Some(PAU), NO, "§9.13"),
    // COMMUNICATIONS-INTERRUPTED
    c(CI, CF, None, NO, "§9.9.3"),
    c(CI, UD, None, NO, "§9.9.3"),
    c(CI, RWE, None, NO, "§9.9.3"),
    c(CI, SPE, Some(PD), NO, "§9.9.3, §10"),
    c(CI, SE, None, NO, "§9.9.3"),
    c(CI, APD, Some(PD), NO, "§9.9.3"),
    c(CI, ASH, Some(SHUT), NO, "§9.14"),
    c(CI, APA, Some(PAU), NO, "§9.13"),
    // PARTNER-DOWN
    c(PD, CF, None, NO, "§9.4.3"),
    c(PD, UD, None, NO, "§9.4.3"),
    c(PD, RWE, None, NO, "§9.4.3"),
    c(PD, SPE, None, NO, "§9.4.3"),
    c(PD, SE, None, NO, "§9.4.3"),
    c(PD, APD, None, NO, "§9.4.3"),
    c(PD, ASH, Some(SHUT), NO, "§9.14"),
    c(PD, APA, Some(PAU), NO, "§9.13"),
    // POTENTIAL-CONFLICT
    c(POT, CF, Some(RES), NO, "§9.10.3"),
    cv(POT, UD, Who::P, Pre::Fresh, Some(CD), NO, "§9.10.3"),
    cv(POT, UD, Who::S, Pre::Fresh, Some(N), NO, "§9.10.3"),
    c(POT, RWE, None, NO, "§9.10.3"),
    c(POT, SPE, None, NO, "§9.10.3"),
    c(POT, SE, None, NO, "§9.10.3"),
    c(POT, APD, None, NO, "§9.10.3"),
    c(POT, ASH, Some(SHUT), NO, "§9.14"),
    c(POT, APA, Some(PAU), NO, "§9.13"),
    // RESOLUTION-INTERRUPTED
    c(RES, CF, None, NO, "§9.11.3"),
    c(RES, UD, None, NO, "§9.11.3"),
    c(RES, RWE, None, NO, "§9.11.3"),
    c(RES, SPE, None, NO, "§9.11.3"),
    c(RES, SE, None, NO, "§9.11.3"),
    c(RES, APD, Some(PD), NO, "§9.11.3"),
    c(RES, ASH, Some(SHUT), NO, "§9.14"),
    c(RES, APA, Some(PAU), NO, "§9.13"),
    // CONFLICT-DONE
    c(CD, CF, None, NO, "§9.12.3"),
    c(CD, UD, None, NO, "§9.12.3"),
    c(CD, RWE, None, NO, "§9.12.3"),
    c(CD, SPE, None, NO, "§9.12.3"),
    c(CD, SE, None, NO, "§9.12.3"),
    c(CD, APD, None, NO, "§9.12.3"),
    c(CD, ASH, Some(SHUT), NO, "§9.14"),
    c(CD, APA, Some(PAU), NO, "§9.13"),
    // RECOVER
    c(REC, CF, None, NO, "§9.5.2"),
    c(REC, UD, Some(RW), NO, "§9.5.2"),
    c(REC, RWE, None, NO, "§9.5.2"),
    c(REC, SPE, None, NO, "§9.5.2"),
    c(REC, SE, None, NO, "§9.5.2"),
    c(REC, APD, None, NO, "§9.5.2"),
    c(REC, ASH, Some(SHUT), NO, "§9.14"),
    c(REC, APA, Some(PAU), NO, "§9.13"),
    // RECOVER-WAIT
    c(RW, CF, None, NO, "§9.6.2"),
    c(RW, UD, None, NO, "§9.6.2"),
    c(RW, RWE, Some(RD), NO, "§9.6.2"),
    c(RW, SPE, None, NO, "§9.6.2"),
    c(RW, SE, None, NO, "§9.6.2"),
    c(RW, APD, None, NO, "§9.6.2"),
    c(RW, ASH, Some(SHUT), NO, "§9.14"),
    c(RW, APA, Some(PAU), NO, "§9.13"),
    // RECOVER-DONE
    c(RD, CF, None, NO, "§9.7.2"),
    c(RD, UD, None, NO, "§9.7.2"),
    c(RD, RWE, None, NO, "§9.7.2"),
    c(RD, SPE, None, NO, "§9.7.2"),
    c(RD, SE, None, NO, "§9.7.2"),
    c(RD, APD, None, NO, "§9.7.2"),
    c(RD, ASH, Some(SHUT), NO, "§9.14"),
    c(RD, APA, Some(PAU), NO, "§9.13"),
    // PAUSED, SHUTDOWN: left only by restart
    c(PAU, CF, None, NO, "§9.13.2"),
    c(PAU, UD, None, NO, "§9.13.2"),
    c(PAU, RWE, None, NO, "§9.13.2"),
    c(PAU, SPE, None, NO, "§9.13.2"),
    c(PAU, SE, None, NO, "§9.13.2"),
    c(PAU, APD, None, NO, "§9.13.2"),
    c(PAU, ASH, None, NO, "§9.13.2"),
    c(PAU, APA, None, NO, "§9.13.2"),
    c(SHUT, CF, None, NO, "§9.14.3"),
    c(SHUT, UD, None, NO, "§9.14.3"),
    c(SHUT, RWE, None, NO, "§9.14.3"),
    c(SHUT, SPE, None, NO, "§9.14.3"),
    c(SHUT, SE, None, NO, "§9.14.3"),
    c(SHUT, APD, None, NO, "§9.14.3"),
    c(SHUT, ASH, None, NO, "§9.14.3"),
    c(SHUT, APA, None, NO, "§9.14.3"),
];

#[test]
fn draft_other_events_table() {
    let n = check_table(
        "draft other",
        Dialect::Draft,
        DRAFT_OTHER,
        &ALL_ROWS,
        &OTHER_COLS,
    );
    assert_eq!(DRAFT_OTHER.len(), 96 + 1);
    assert_eq!(n, 2 * 95 + 2);
}

// ===== ISC: partner-state transitions (§5.1 of the digest) =====

const ISC_PARTNER_COLS: [StateEvent; 14] = [
    st(N),
    st(CI),
    st(PD),
    st(POT),
    st(RES),
    st(CD),
    st(REC),
    st(RW),
    st(RD),
    st(PAU),
    st(SHUT),
    st(Z),
    st(STU),
    st(BAD),
];

const SD_ALARM: Actions = ALARM;

#[rustfmt::skip]
const ISC_PARTNER: &[Cell] = &[
    // NORMAL
    c(N, st(N), None, POOLCHK, "ISC: pool check"),
    c(N, st(CI), None, NO, "ISC"),
    c(N, st(PD), Some(POT), NO, "ISC"),
    c(N, st(POT), Some(SHUT), SD_ALARM, "ISC: invalid transition"),
    c(N, st(RES), Some(SHUT), SD_ALARM, "ISC: invalid transition"),
    c(N, st(CD), Some(SHUT), SD_ALARM, "ISC: invalid transition"),
    c(N, st(REC), Some(PD), NO, "ISC"),
    c(N, st(RW), None, NO, "ISC"),
    c(N, st(RD), None, NO, "ISC"),
    c(N, st(PAU), Some(CI), NO, "ISC, §9.8.4"),
    c(N, st(SHUT), Some(PD), NO, "ISC, §9.8.4"),
    c(N, st(Z), None, NO, "ISC"),
    c(N, st(STU), None, NO, "ISC"),
    c(N, st(BAD), Some(SHUT), SD_ALARM, "ISC: invalid state"),
    // COMMUNICATIONS-INTERRUPTED
    c(CI, st(N), Some(N), BACKLOG, "ISC: send updates"),
    c(CI, st(CI), Some(N), BACKLOG, "ISC: send updates"),
    c(CI, st(PD), Some(POT), NO, "ISC"),
    c(CI, st(POT), Some(POT), NO, "ISC"),
    c(CI, st(RES), Some(POT), NO, "ISC"),
    c(CI, st(CD), Some(POT), NO, "ISC"),
    c(CI, st(REC), Some(PD), NO, "ISC: amnesic peer"),
    c(CI, st(RW), Some(N), BACKLOG, "ISC: send updates"),
    c(CI, st(RD), Some(N), BACKLOG, "ISC: send updates"),
    c(CI, st(PAU), None, NO, "ISC"),
    c(CI, st(SHUT), Some(PD), NO, "ISC"),
    c(CI, st(Z), None, NO, "ISC"),
    c(CI, st(STU), None, NO, "ISC"),
    c(CI, st(BAD), Some(SHUT), SD_ALARM, "ISC: invalid state"),
    // PARTNER-DOWN
    c(PD, st(N), Some(POT), NO, "ISC"),
    c(PD, st(CI), Some(POT), NO, "ISC"),
    c(PD, st(PD), Some(POT), NO, "ISC"),
    c(PD, st(POT), Some(POT), NO, "ISC"),
    c(PD, st(RES), Some(POT), NO, "ISC"),
    c(PD, st(CD), Some(POT), NO, "ISC"),
    c(PD, st(REC), None, NO, "ISC"),
    c(PD, st(RW), None, NO, "ISC"),
    c(PD, st(RD), Some(N), NO, "ISC"),
    c(PD, st(PAU), None, NO, "ISC"),
    c(PD, st(SHUT), None, NO, "ISC"),
    c(PD, st(Z), None, NO, "ISC"),
    c(PD, st(STU), None, NO, "ISC"),
    c(PD, st(BAD), Some(SHUT), SD_ALARM, "ISC: invalid state"),
    // PARTNER-DOWN, STARTUP bit set: ignored (the validity check comes first in ISC)
    c(PD, sts(N), None, NO, "ISC S bit"),
    c(PD, sts(CI), None, NO, "ISC S bit"),
    c(PD, sts(PD), None, NO, "ISC S bit"),
    c(PD, sts(POT), None, NO, "ISC S bit"),
    c(PD, sts(RES), None, NO, "ISC S bit"),
    c(PD, sts(CD), None, NO, "ISC S bit"),
    c(PD, sts(REC), None, NO, "ISC S bit"),
    c(PD, sts(RW), None, NO, "ISC S bit"),
    c(PD, sts(RD), None, NO, "ISC S bit"),
    c(PD, sts(PAU), None, NO, "ISC S bit"),
    c(PD, sts(SHUT), None, NO, "ISC S bit"),
    c(PD, sts(Z), None, NO, "ISC S bit"),
    c(PD, sts(STU), None, NO, "ISC S bit"),
    c(PD, sts(BAD), Some(SHUT), SD_ALARM, "ISC: invalid state"),
    // RECOVER
    c(REC, st(N), Some(POT), NO, "ISC"),
    c(REC, st(CI), None, UPDALL, "ISC"),
    c(REC, st(PD), None, UPDALL, "ISC"),
    c(REC, st(POT), Some(POT), NO, "ISC"),
    c(REC, st(RES), Some(POT), NO, "ISC"),
    c(REC, st(CD), Some(POT), NO, "ISC"),
    c(REC, st(REC), None, UPDALL, "ISC"),
    c(REC, st(RW), None, NO, "ISC"),
    c(REC, st(RD), None, NO, "ISC"),
    c(REC, st(PAU), None, NO, "ISC"),
    c(REC, st(SHUT), Some(PD), NO, "ISC"),
    c(REC, st(Z), None, NO, "ISC"),
    c(REC, st(STU), None, NO, "ISC"),
    c(REC, st(BAD), Some(SHUT), SD_ALARM, "ISC: invalid state"),
    // RECOVER-WAIT: no transitions
    c(RW, st(N), None, NO, "ISC"),
    c(RW, st(CI), None, NO, "ISC"),
    c(RW, st(PD), None, NO, "ISC"),
    c(RW, st(POT), None, NO, "ISC"),
    c(RW, st(RES), None, NO, "ISC"),
    c(RW, st(CD), None, NO, "ISC"),
    c(RW, st(REC), None, NO, "ISC"),
    c(RW, st(RW), None, NO, "ISC"),
    c(RW, st(RD), None, NO, "ISC"),
    c(RW, st(PAU), None, NO, "ISC"),
    c(RW, st(SHUT), None, NO, "ISC"),
    c(RW, st(Z), None, NO, "ISC"),
    c(RW, st(STU), None, NO, "ISC"),
    c(RW, st(BAD), Some(SHUT), SD_ALARM, "ISC: invalid state"),
    // RECOVER-DONE
    c(RD, st(N), Some(N), NO, "ISC"),
    c(RD, st(CI), None, NO, "ISC"),
    c(RD, st(PD), None, NO, "ISC"),
    c(RD, st(POT), None, NO, "ISC"),
    c(RD, st(RES), None, NO, "ISC"),
    c(RD, st(CD), None, NO, "ISC"),
    c(RD, st(REC), None, NO, "ISC"),
    c(RD, st(RW), None, NO, "ISC"),
    c(RD, st(RD), Some(N), NO, "ISC: both recover-done"),
    c(RD, st(PAU), None, NO, "ISC"),
    c(RD, st(SHUT), Some(PD), NO, "ISC"),
    c(RD, st(Z), None, NO, "ISC"),
    c(RD, st(STU), None, NO, "ISC"),
    c(RD, st(BAD), Some(SHUT), SD_ALARM, "ISC: invalid state"),
    // POTENTIAL-CONFLICT
    c(POT, st(N), Some(SHUT), SD_ALARM, "ISC: panic"),
    c(POT, st(CI), None, NO, "ISC"),
    c(POT, st(PD), None, NO, "ISC"),
    c(POT, st(POT), None, NO, "ISC"),
    c(POT, st(RES), None, NO, "ISC"),
    c(POT, st(CD), None, ALARM, "ISC: unexpected move to conflict-done"),
    cv(POT, st(CD), Who::Both, Pre::PartnerWas(POT), None, UPD, "ISC, §9.10.3"),
    c(POT, st(REC), None, NO, "ISC goes RECOVER; we stay: RECOVER/POT-CONFLICT livelock"),
    c(POT, st(RW), None, NO, "ISC"),
    c(POT, st(RD), None, NO, "ISC"),
    c(POT, st(PAU), None, NO, "ISC"),
    c(POT, st(SHUT), Some(PD), NO, "ISC"),
    c(POT, st(Z), None, NO, "ISC"),
    c(POT, st(STU), None, NO, "ISC"),
    c(POT, st(BAD), Some(SHUT), SD_ALARM, "ISC: invalid state"),
    // RESOLUTION-INTERRUPTED
    c(RES, st(N), Some(POT), NO, "ISC"),
    c(RES, st(CI), Some(POT), NO, "ISC"),
    c(RES, st(PD), Some(POT), NO, "ISC"),
    c(RES, st(POT), Some(POT), NO, "ISC"),
    c(RES, st(RES), Some(POT), NO, "ISC"),
    c(RES, st(CD), Some(POT), NO, "ISC"),
    c(RES, st(REC), Some(POT), NO, "ISC"),
    c(RES, st(RW), Some(POT), NO, "ISC"),
    c(RES, st(RD), Some(POT), NO, "ISC"),
    c(RES, st(PAU), None, NO, "ISC"),
    c(RES, st(SHUT), Some(PD), NO, "ISC"),
    c(RES, st(Z), None, NO, "ISC"),
    c(RES, st(STU), None, NO, "ISC"),
    c(RES, st(BAD), Some(SHUT), SD_ALARM, "ISC: invalid state"),
    // CONFLICT-DONE: ISC's log_fatal cells stay and alarm (our decision, as §9.12.3).
    c(CD, st(N), Some(N), NO, "ISC, §9.12.3"),
    c(CD, st(CI), None, ALARM, "ISC fatal → stay, §9.12.3"),
    c(CD, st(PD), None, ALARM, "ISC fatal → stay, §9.12.3"),
    c(CD, st(POT), None, NO, "ISC"),
    c(CD, st(RES), None, NO, "ISC"),
    c(CD, st(CD), None, ALARM, "ISC fatal → stay, §9.12.3"),
    c(CD, st(REC), None, ALARM, "ISC fatal → stay, §9.12.3"),
    c(CD, st(RW), None, ALARM, "ISC fatal → stay, §9.12.3"),
    c(CD, st(RD), None, ALARM, "ISC fatal → stay, §9.12.3"),
    c(CD, st(PAU), None, ALARM, "ISC fatal → stay, §9.12.3"),
    c(CD, st(SHUT), Some(SHUT), NO, "ISC"),
    c(CD, st(Z), None, ALARM, "ISC fatal → stay, §9.12.3"),
    c(CD, st(STU), None, ALARM, "ISC fatal → stay, §9.12.3"),
    c(CD, st(BAD), Some(SHUT), SD_ALARM, "ISC: invalid state"),
    // PAUSED, SHUTDOWN: dead in the water
    c(PAU, st(N), None, NO, "ISC"),
    c(PAU, st(CI), None, NO, "ISC"),
    c(PAU, st(PD), None, NO, "ISC"),
    c(PAU, st(POT), None, NO, "ISC"),
    c(PAU, st(RES), None, NO, "ISC"),
    c(PAU, st(CD), None, NO, "ISC"),
    c(PAU, st(REC), None, NO, "ISC"),
    c(PAU, st(RW), None, NO, "ISC"),
    c(PAU, st(RD), None, NO, "ISC"),
    c(PAU, st(PAU), None, NO, "ISC"),
    c(PAU, st(SHUT), None, NO, "ISC"),
    c(PAU, st(Z), None, NO, "ISC"),
    c(PAU, st(STU), None, NO, "ISC"),
    c(PAU, st(BAD), Some(SHUT), SD_ALARM, "ISC: invalid state"),
    c(SHUT, st(N), None, NO, "ISC"),
    c(SHUT, st(CI), None, NO, "ISC"),
    c(SHUT, st(PD), None, NO, "ISC"),
    c(SHUT, st(POT), None, NO, "ISC"),
    c(SHUT, st(RES), None, NO, "ISC"),
    c(SHUT, st(CD), None, NO, "ISC"),
    c(SHUT, st(REC), None, NO, "ISC"),
    c(SHUT, st(RW), None, NO, "ISC"),
    c(SHUT, st(RD), None, NO, "ISC"),
    c(SHUT, st(PAU), None, NO, "ISC"),
    c(SHUT, st(SHUT), None, NO, "ISC"),
    c(SHUT, st(Z), None, NO, "ISC"),
    c(SHUT, st(STU), None, NO, "ISC"),
    c(SHUT, st(BAD), None, NO, "ISC: already shut down"),
];

#[test]
fn isc_partner_state_table() {
    let plain = ISC_PARTNER
        .iter()
        .copied()
        .filter(|c| !matches!(c.event, StateEvent::PartnerState { startup: true, .. }))
        .collect::<Vec<_>>();
    let sbit = ISC_PARTNER
        .iter()
        .copied()
        .filter(|c| matches!(c.event, StateEvent::PartnerState { startup: true, .. }))
        .collect::<Vec<_>>();
    let sbit_cols = ISC_PARTNER_COLS
        .iter()
        .map(|e| match *e {
            StateEvent::PartnerState { state, .. } => sts(state),
            other => other,
        })
        .collect::<Vec<_>>();
    let n1 = check_table(
        "isc partner",
        Dialect::Isc,
        &plain,
        &DRAFT_PARTNER_ROWS,
        &ISC_PARTNER_COLS,
    );
    let n2 = check_table("isc S bit", Dialect::Isc, &sbit, &[PD], &sbit_cols);
    // 11 rows × 14 columns, plus the POT+CD variant with the partner coming from POT.
    assert_eq!(plain.len(), 154 + 1);
    assert_eq!(n1, 2 * 155);
    assert_eq!(n2, 2 * 14);
}

// ===== ISC: other events (§5.2 of the digest) =====

#[rustfmt::skip]
const ISC_OTHER: &[Cell] = &[
    // STARTUP (remembered NORMAL, unmapped): disconnect / 15 s timer → mapped; OMAPI anything.
    cv(STU, CF, Who::Both, Pre::Prev(N), Some(CI), NO, "ISC disconnect in startup"),
    cv(STU, UD, Who::Both, Pre::Prev(N), None, NO, "ISC"),
    cv(STU, RWE, Who::Both, Pre::Prev(N), None, NO, "ISC"),
    cv(STU, SPE, Who::Both, Pre::Prev(N), None, NO, "ISC"),
    cv(STU, SE, Who::Both, Pre::Prev(N), Some(CI), NO, "ISC startup timeout, §9.3.2 step 6"),
    cv(STU, SE, Who::Both, Pre::Prev(POT), Some(RES), NO, "ISC startup timeout"),
    cv(STU, CF, Who::P, Pre::Prev(CD), Some(CD), REQUEUE, "ISC disconnect in startup"),
    cv(STU, APD, Who::Both, Pre::Prev(N), Some(PD), NO, "ISC OMAPI local-state"),
    cv(STU, ASH, Who::Both, Pre::Prev(N), Some(SHUT), NO, "ISC OMAPI local-state"),
    cv(STU, APA, Who::Both, Pre::Prev(N), Some(PAU), NO, "ISC OMAPI local-state"),
    // NORMAL
    c(N, CF, Some(CI), NO, "ISC"),
    c(N, UD, None, NO, "ISC"),
    c(N, RWE, None, NO, "ISC"),
    c(N, SPE, None, NO, "ISC"),
    c(N, SE, None, NO, "ISC"),
    c(N, APD, Some(PD), NO, "ISC OMAPI"),
    c(N, ASH, Some(SHUT), NO, "ISC SIGTERM"),
    c(N, APA, Some(PAU), NO, "ISC OMAPI"),
    // COMMUNICATIONS-INTERRUPTED
    c(CI, CF, None, NO, "ISC"),
    c(CI, UD, None, NO, "ISC"),
    c(CI, RWE, None, NO, "ISC"),
    c(CI, SPE, Some(PD), NO, "ISC auto-partner-down"),
    c(CI, SE, None, NO, "ISC"),
    c(CI, APD, Some(PD), NO, "ISC OMAPI"),
    c(CI, ASH, Some(SHUT), NO, "ISC OMAPI"),
    c(CI, APA, Some(PAU), NO, "ISC OMAPI"),
    // PARTNER-DOWN
    c(PD, CF, None, NO, "ISC"),
    c(PD, UD, None, NO, "ISC"),
    c(PD, RWE, None, NO, "ISC"),
    c(PD, SPE, None, NO, "ISC"),
    c(PD, SE, None, NO, "ISC"),
    c(PD, APD, None, NO, "ISC"),
    c(PD, ASH, Some(SHUT), NO, "ISC OMAPI"),
    c(PD, APA, Some(PAU), NO, "ISC OMAPI"),
    // POTENTIAL-CONFLICT
    c(POT, CF, Some(RES), NO, "ISC"),
    cv(POT, UD, Who::P, Pre::Fresh, Some(CD), NO, "ISC, §9.10.3"),
    cv(POT, UD, Who::P, Pre::PartnerWas(CD), Some(SHUT), ALARM, "ISC: secondary in conflict-done"),
    cv(POT, UD, Who::S, Pre::Fresh, None, NO, "ISC: spurious update-done"),
    cv(POT, UD, Who::S, Pre::PartnerWas(CD), Some(N), NO, "ISC, §9.10.3"),
    c(POT, RWE, None, NO, "ISC"),
    c(POT, SPE, None, NO, "ISC"),
    c(POT, SE, None, NO, "ISC"),
    c(POT, APD, Some(PD), NO, "ISC OMAPI"),
    c(POT, ASH, Some(SHUT), NO, "ISC OMAPI"),
    c(POT, APA, Some(PAU), NO, "ISC OMAPI"),
    // RESOLUTION-INTERRUPTED
    c(RES, CF, None, NO, "ISC"),
    c(RES, UD, None, NO, "ISC"),
    c(RES, RWE, None, NO, "ISC"),
    c(RES, SPE, None, NO, "ISC"),
    c(RES, SE, None, NO, "ISC"),
    c(RES, APD, Some(PD), NO, "ISC OMAPI"),
    c(RES, ASH, Some(SHUT), NO, "ISC OMAPI"),
    c(RES, APA, Some(PAU), NO, "ISC OMAPI"),
    // CONFLICT-DONE
    c(CD, CF, None, REQUEUE, "ISC: rescind updates"),
    c(CD, UD, None, NO, "ISC: spurious update-done"),
    c(CD, RWE, None, NO, "ISC"),
    c(CD, SPE, None, NO, "ISC"),
    c(CD, SE, None, NO, "ISC"),
    c(CD, APD, Some(PD), NO, "ISC OMAPI"),
    c(CD, ASH, Some(SHUT), NO, "ISC OMAPI"),
    c(CD, APA, Some(PAU), NO, "ISC OMAPI"),
    // RECOVER: UPDDONE → RECOVER-WAIT until stos + MCLT, or RECOVER-DONE at once
    c(REC, CF, None, NO, "ISC"),
    c(REC, UD, Some(RW), NO, "ISC (wait end unknown: wait)"),
    cv(REC, UD, Who::Both, Pre::WaitFuture(None), Some(RW), NO, "ISC"),
    cv(REC, UD, Who::Both, Pre::WaitFuture(Some(PD)), Some(RW), NO, "ISC"),
    cv(REC, UD, Who::Both, Pre::WaitPast, Some(RD), NO, "ISC: MCLT passed"),
    cv(REC, UD, Who::Both, Pre::WaitFuture(Some(REC)), Some(RD), NO, "ISC: partner recover"),
    cv(REC, UD, Who::Both, Pre::WaitFuture(Some(RD)), Some(RD), NO, "ISC: partner recover-done"),
    c(REC, RWE, None, NO, "ISC"),
    c(REC, SPE, None, NO, "ISC"),
    c(REC, SE, None, NO, "ISC"),
    c(REC, APD, Some(PD), NO, "ISC OMAPI"),
    c(REC, ASH, Some(SHUT), NO, "ISC OMAPI"),
    c(REC, APA, Some(PAU), NO, "ISC OMAPI"),
    // RECOVER-WAIT
    c(RW, CF, None, NO, "ISC"),
    c(RW, UD, None, NO, "ISC"),
    c(RW, RWE, Some(RD), NO, "ISC recover_done"),
    c(RW, SPE, None, NO, "ISC"),
    c(RW, SE, None, NO, "ISC"),
    c(RW, APD, Some(PD), NO, "ISC OMAPI"),
    c(RW, ASH, Some(SHUT), NO, "ISC OMAPI"),
    c(RW, APA, Some(PAU), NO, "ISC OMAPI"),
    // RECOVER-DONE
    c(RD, CF, None, NO, "ISC"),
    c(RD, UD, None, NO, "ISC"),
    c(RD, RWE, None, NO, "ISC"),
    c(RD, SPE, None, NO, "ISC"),
    c(RD, SE, None, NO, "ISC"),
    c(RD, APD, Some(PD), NO, "ISC OMAPI"),
    c(RD, ASH, Some(SHUT), NO, "ISC OMAPI"),
    c(RD, APA, Some(PAU), NO, "ISC OMAPI"),
    // PAUSED, SHUTDOWN: only OMAPI moves them
    c(PAU, CF, None, NO, "ISC"),
    c(PAU, UD, None, NO, "ISC"),
    c(PAU, RWE, None, NO, "ISC"),
    c(PAU, SPE, None, NO, "ISC"),
    c(PAU, SE, None, NO, "ISC"),
    c(PAU, APD, Some(PD), NO, "ISC OMAPI"),
    c(PAU, ASH, Some(SHUT), NO, "ISC OMAPI"),
    c(PAU, APA, None, NO, "ISC"),
    c(SHUT, CF, None, NO, "ISC"),
    c(SHUT, UD, None, NO, "ISC"),
    c(SHUT, RWE, None, NO, "ISC"),
    c(SHUT, SPE, None, NO, "ISC"),
    c(SHUT, SE, None, NO, "ISC"),
    c(SHUT, APD, Some(PD), NO, "ISC OMAPI"),
    c(SHUT, ASH, None, NO, "ISC"),
    c(SHUT, APA, Some(PAU), NO, "ISC OMAPI"),
];

#[test]
fn isc_other_events_table() {
    let n = check_table("isc other", Dialect::Isc, ISC_OTHER, &ALL_ROWS, &OTHER_COLS);
    // 96 grid cells; variants: STARTUP SE with POT and CF with CD (primary), 3 POT+UD split /
    // partner variants, 5 RECOVER+UD variants.
    assert_eq!(ISC_OTHER.len(), 96 + 2 + 3 + 5);
    // Role-restricted cells: STU+CF(CD) P, POT+UD ×4 → 5 single-role checks.
    assert_eq!(n, 2 * (ISC_OTHER.len() - 5) + 5);
}

// ===== STARTUP (§9.3.2; ISC's variant) =====

fn ctx_startup(dialect: Dialect, previous: ServerState) -> Context {
    Context {
        previous,
        ..Context::new(Role::Primary, dialect, NOW)
    }
}

fn state_since(state: ServerState, startup: bool, since: u32) -> StateEvent {
    StateEvent::PartnerState {
        state,
        startup,
        since: UnixTime(since),
    }
}

#[test]
fn startup_previous_steps_1_and_2() {
    // Step 1: nothing recorded → RECOVER; PAUSED/SHUTDOWN/STARTUP/unknown → RECOVER.
    for dialect in [Dialect::Draft, Dialect::Isc] {
        assert_eq!(startup_previous(None, dialect), REC);
        for s in [PAU, SHUT, STU, Z, BAD] {
            assert_eq!(startup_previous(Some(s), dialect), REC, "{s:?}");
        }
        for s in [CI, PD, REC, RW, RD, RES, CD] {
            assert_eq!(startup_previous(Some(s), dialect), s, "{s:?}");
        }
    }
    // Step 2 (draft): through the communications-failed transition. ISC keeps them.
    assert_eq!(startup_previous(Some(N), Dialect::Draft), CI);
    assert_eq!(startup_previous(Some(POT), Dialect::Draft), RES);
    assert_eq!(startup_previous(Some(N), Dialect::Isc), N);
    assert_eq!(startup_previous(Some(POT), Dialect::Isc), POT);
    // The mapping itself.
    assert_eq!(comm_fail_mapping(N), CI);
    assert_eq!(comm_fail_mapping(POT), RES);
    for s in [STU, CI, PD, REC, RW, RD, RES, CD, PAU, SHUT, Z] {
        assert_eq!(comm_fail_mapping(s), s);
    }
}

#[test]
fn draft_startup_step_5() {
    let d = Dialect::Draft;
    // Remembered NORMAL (mapped to COMM-INT) meets a partner in COMM-INT → NORMAL.
    let ctx = ctx_startup(d, startup_previous(Some(N), d));
    assert_eq!(transition(STU, &st(CI), &ctx), Transition::to(N));
    // ...in PAUSED: COMM-INT stays, so enter COMM-INT.
    assert_eq!(transition(STU, &st(PAU), &ctx), Transition::to(CI));
    // ...in SHUTDOWN → PARTNER-DOWN.
    assert_eq!(transition(STU, &st(SHUT), &ctx), Transition::to(PD));
    // Partner PARTNER-DOWN since after our last operation → RECOVER, requesting updates.
    let ctx_op = Context {
        last_operational: Some(UnixTime(500)),
        ..ctx
    };
    assert_eq!(
        transition(STU, &state_since(PD, false, 600), &ctx_op),
        Transition::to_with(REC, UPD)
    );
    let lost = Context {
        lost_storage: true,
        ..ctx_op
    };
    assert_eq!(
        transition(STU, &state_since(PD, false, 600), &lost),
        Transition::to_with(REC, UPDALL)
    );
    // ...since before our last operation → POTENTIAL-CONFLICT; equal → the same (our choice).
    assert_eq!(
        transition(STU, &state_since(PD, false, 400), &ctx_op),
        Transition::to(POT)
    );
    assert_eq!(
        transition(STU, &state_since(PD, false, 500), &ctx_op),
        Transition::to(POT)
    );
    // No record of ever operating → RECOVER.
    assert_eq!(
        transition(STU, &state_since(PD, false, 0), &ctx),
        Transition::to_with(REC, UPD)
    );
    // Remembered POTENTIAL-CONFLICT (mapped to RESOLUTION-INT) → POTENTIAL-CONFLICT.
    let ctx = ctx_startup(d, startup_previous(Some(POT), d));
    for p in [N, CI, RD, REC, PAU, SHUT] {
        assert_eq!(transition(STU, &st(p), &ctx), Transition::to(POT), "{p:?}");
    }
    // Remembered PARTNER-DOWN and the partner starting up too: §9.4.3 ignores it, enter PD.
    let ctx = ctx_startup(d, PD);
    assert_eq!(transition(STU, &sts(REC), &ctx), Transition::to(PD));
    assert_eq!(transition(STU, &sts(N), &ctx), Transition::to(PD));
    assert_eq!(transition(STU, &st(N), &ctx), Transition::to(POT));
    // Remembered RECOVER, partner NORMAL: request updates, stay in RECOVER.
    let ctx = ctx_startup(d, REC);
    assert_eq!(transition(STU, &st(N), &ctx), Transition::to_with(REC, UPD));
    // Remembered RECOVER-DONE, partner NORMAL → NORMAL.
    let ctx = ctx_startup(d, RD);
    assert_eq!(transition(STU, &st(N), &ctx), Transition::to(N));
    assert_eq!(transition(STU, &st(CI), &ctx), Transition::to(RD));
    // A secondary that "remembers" CONFLICT-DONE resumes conflict resolution instead.
    let ctx = Context {
        role: Role::Secondary,
        ..ctx_startup(d, CD)
    };
    assert_eq!(transition(STU, &st(CD), &ctx), Transition::to(POT));
    assert_eq!(step(STU, &st(CD), &ctx), Transition::to_with(POT, UPD));
    assert_eq!(transition(STU, &SE, &ctx), Transition::to(RES));
    // A garbage partner value: enter the previous state.
    let ctx = ctx_startup(d, CI);
    assert_eq!(transition(STU, &st(BAD), &ctx), Transition::to(CI));
}

#[test]
fn draft_startup_step_6_choices() {
    let d = Dialect::Draft;
    let ctx = ctx_startup(d, startup_previous(Some(N), d));
    assert_eq!(transition(STU, &SE, &ctx), Transition::to(CI));
    let wait = Context {
        startup_expiry: StartupExpiry::Wait,
        ..ctx
    };
    assert_eq!(transition(STU, &SE, &wait), Transition::NONE);
    let pd = Context {
        startup_expiry: StartupExpiry::PartnerDown,
        ..ctx
    };
    assert_eq!(transition(STU, &SE, &pd), Transition::to(PD));
    // A communications failure does not end STARTUP in the draft.
    assert_eq!(transition(STU, &CF, &ctx), Transition::NONE);
}

#[test]
fn isc_startup() {
    let i = Dialect::Isc;
    // Remembered NORMAL + partner PARTNER-DOWN → RECOVER, whatever the times.
    let ctx = Context {
        last_operational: Some(UnixTime(900)),
        ..ctx_startup(i, startup_previous(Some(N), i))
    };
    assert_eq!(
        transition(STU, &state_since(PD, false, 100), &ctx),
        Transition::to(REC)
    );
    // step() adds RECOVER's entry action: UPDREQALL once the STATE is in.
    assert_eq!(
        step(STU, &state_since(PD, false, 100), &ctx),
        Transition::to_with(REC, UPDALL)
    );
    // Remembered NORMAL + partner NORMAL → pool check, enter NORMAL.
    assert_eq!(
        transition(STU, &st(N), &ctx),
        Transition::to_with(N, POOLCHK)
    );
    // ...+ COMM-INT: nothing moves, enter NORMAL.
    assert_eq!(transition(STU, &st(CI), &ctx), Transition::to(N));
    // ...+ POTENTIAL-CONFLICT: ISC shuts down.
    assert_eq!(
        transition(STU, &st(POT), &ctx),
        Transition::to_with(SHUT, ALARM)
    );
    // Remembered COMM-INT + partner PARTNER-DOWN → the normal table: POTENTIAL-CONFLICT.
    let ctx = ctx_startup(i, CI);
    assert_eq!(transition(STU, &st(PD), &ctx), Transition::to(POT));
    // Remembered RECOVER: the RECOVER row sends no UPDREQALL in startup (entry does, once).
    let ctx = ctx_startup(i, REC);
    assert_eq!(transition(STU, &st(PD), &ctx), Transition::to(REC));
    assert_eq!(step(STU, &st(PD), &ctx), Transition::to_with(REC, UPDALL));
    // Remembered RESOLUTION-INT: partner in the same state → POTENTIAL-CONFLICT;
    // partner PAUSED → nothing moves, enter RESOLUTION-INT.
    let ctx = Context {
        partner: Some(RES),
        ..ctx_startup(i, RES)
    };
    assert_eq!(transition(STU, &st(RES), &ctx), Transition::to(POT));
    assert_eq!(transition(STU, &st(PAU), &ctx), Transition::to(RES));
    // Remembered PARTNER-DOWN, partner starting up: ignored, enter PARTNER-DOWN.
    let ctx = ctx_startup(i, PD);
    assert_eq!(transition(STU, &sts(N), &ctx), Transition::to(PD));
    // Invalid partner state in STARTUP → SHUTDOWN.
    assert_eq!(
        transition(STU, &st(BAD), &ctx),
        Transition::to_with(SHUT, ALARM)
    );
    // Timer and disconnect: remembered state through the communications-failed column.
    let ctx = ctx_startup(i, N);
    assert_eq!(transition(STU, &SE, &ctx), Transition::to(CI));
    assert_eq!(transition(STU, &CF, &ctx), Transition::to(CI));
    let ctx = ctx_startup(i, RW);
    assert_eq!(transition(STU, &SE, &ctx), Transition::to(RW));
    assert_eq!(step(STU, &SE, &ctx), Transition::to_with(RW, RWAIT));
}

// ===== Repeats of STATE =====

#[test]
fn repeated_state_is_a_no_op_on_an_established_link() {
    let states = [N, CI, PD, POT, RES, CD, REC, RW, RD, PAU, SHUT, Z];
    let mut checked = 0;
    for dialect in [Dialect::Draft, Dialect::Isc] {
        for role in [Role::Primary, Role::Secondary] {
            for ours in [N, CI, PD, POT, RES, CD, REC, RW, RD, PAU, SHUT] {
                for p in states {
                    let ctx = Context {
                        partner: Some(p),
                        comm_ok: true,
                        ..Context::new(role, dialect, NOW)
                    };
                    assert_eq!(
                        transition(ours, &st(p), &ctx),
                        Transition::NONE,
                        "{dialect:?} {role:?} {ours:?} + repeated {p:?}"
                    );
                    checked += 1;
                }
            }
        }
    }
    assert_eq!(checked, 2 * 2 * 11 * 12);
    // The first STATE of a connection is evaluated even if the partner's state is unchanged.
    for dialect in [Dialect::Draft, Dialect::Isc] {
        let ctx = Context {
            partner: Some(CI),
            comm_ok: false,
            ..Context::new(Role::Primary, dialect, NOW)
        };
        assert_eq!(transition(CI, &st(CI), &ctx).next, Some(N), "{dialect:?}");
        // A changed state on an established link is evaluated too.
        let ctx = Context {
            partner: Some(N),
            comm_ok: true,
            ..ctx
        };
        assert_eq!(transition(N, &st(SHUT), &ctx), Transition::to(PD));
    }
}

// ===== Entry actions =====

/// (dialect, entered, from, role, comm_ok, partner at entry, lost storage, expected)
type Entry = (
    Dialect,
    ServerState,
    ServerState,
    Role,
    bool,
    Option<ServerState>,
    bool,
    Actions,
);

const D: Dialect = Dialect::Draft;
const I: Dialect = Dialect::Isc;
const P: Role = Role::Primary;
const S: Role = Role::Secondary;

#[rustfmt::skip]
const ENTRY: &[Entry] = &[
    // NORMAL: backlog; secondary POOLREQ (§9.8.1); ISC pool check; nothing to send when down.
    (D, N, CI, P, true, Some(N), false, BACKLOG),
    (D, N, CI, S, true, Some(N), false, BACKLOG.union(POOLREQ)),
    (I, N, CI, P, true, Some(N), false, BACKLOG.union(POOLCHK)),
    (I, N, CI, S, true, Some(N), false, BACKLOG.union(POOLCHK).union(POOLREQ)),
    (D, N, POT, S, false, None, false, NO),
    (I, N, POT, P, true, Some(N), false, BACKLOG.union(POOLCHK).union(REQUEUE)),
    // COMM-INT: safe timer (§9.9.1), alarm from NORMAL; ISC re-queues on leaving NORMAL.
    (D, CI, N, P, false, None, false, SAFE.union(ALARM)),
    (D, CI, STU, P, false, None, false, SAFE),
    (I, CI, N, P, false, None, false, SAFE.union(ALARM).union(REQUEUE)),
    (I, CI, STU, S, false, None, false, SAFE),
    // PARTNER-DOWN: nothing (§9.4.1); ISC re-queues when leaving NORMAL.
    (D, PD, CI, P, false, None, false, NO),
    (D, PD, N, P, true, Some(SHUT), false, NO),
    (I, PD, N, P, true, Some(SHUT), false, REQUEUE),
    // POTENTIAL-CONFLICT: primary UPDREQ (§9.10.1); secondary only if primary is CONFLICT-DONE.
    (D, POT, PD, P, true, Some(N), false, UPD),
    (D, POT, PD, S, true, Some(N), false, NO),
    (D, POT, RES, S, true, Some(CD), false, UPD),
    (I, POT, RES, P, true, Some(RES), false, UPD),
    (I, POT, RES, S, true, Some(RES), false, NO),
    (I, POT, RES, S, true, Some(CD), false, UPD),
    (I, POT, PD, S, true, Some(N), false, REQUEUE),
    (D, POT, RES, P, false, None, false, NO),
    // RECOVER: UPDREQ / UPDREQALL (§9.5.2); ISC always UPDREQALL; nothing when not connected.
    (D, REC, STU, P, true, Some(PD), false, UPD),
    (D, REC, STU, P, true, Some(PD), true, UPDALL),
    (I, REC, STU, P, true, Some(PD), false, UPDALL),
    (I, REC, POT, S, true, Some(REC), false, UPDALL.union(REQUEUE)),
    (D, REC, STU, P, false, None, false, NO),
    (I, REC, STU, P, false, None, false, NO),
    // RECOVER-WAIT (§9.6.2), RECOVER-DONE, CONFLICT-DONE
    (D, RW, REC, P, true, Some(PD), false, RWAIT),
    (I, RW, REC, P, true, Some(PD), false, RWAIT),
    (D, RD, RW, P, true, Some(PD), false, NO),
    (I, RD, RW, S, true, Some(PD), false, NO),
    (D, CD, POT, P, true, Some(POT), false, NO),
    (I, CD, POT, P, true, Some(POT), false, REQUEUE),
    // RESOLUTION-INTERRUPTED: alarm (§9.11.1)
    (D, RES, POT, P, false, None, false, ALARM),
    (I, RES, POT, S, false, None, false, ALARM.union(REQUEUE)),
    // PAUSED (§9.13.1), SHUTDOWN (§9.14.1, §9.14.2; ISC restarts in RECOVER)
    (D, PAU, N, P, true, Some(N), false, SAVE.union(DISC)),
    (I, PAU, CI, P, false, None, false, SAVE.union(DISC)),
    (D, SHUT, N, P, true, Some(N), false, SAVE.union(LASTOP).union(DISC)),
    (D, SHUT, PAU, P, true, Some(N), false, LASTOP.union(DISC)),
    (I, SHUT, N, P, true, Some(N), false, INREC.union(LASTOP).union(DISC).union(REQUEUE)),
    (I, SHUT, RD, P, true, Some(N), false, INREC.union(LASTOP).union(DISC)),
];

#[test]
fn entry_actions_table() {
    let mut checked = 0;
    for &(dialect, entered, from, role, comm_ok, partner, lost_storage, want) in ENTRY {
        let ctx = Context {
            comm_ok,
            partner,
            lost_storage,
            ..Context::new(role, dialect, NOW)
        };
        assert_eq!(
            entry_actions(entered, from, &ctx),
            want,
            "{dialect:?} {role:?}: {from:?} → {entered:?} (comm_ok {comm_ok}, partner {partner:?})"
        );
        checked += 1;
    }
    assert_eq!(checked, ENTRY.len());
    assert_eq!(checked, 41);
}

#[test]
fn step_combines_transition_and_entry_actions() {
    // COMM-INT, partner NORMAL, ISC secondary: send updates, enter NORMAL, POOLREQ, pool check.
    let ctx = Context::new(Role::Secondary, Dialect::Isc, NOW);
    assert_eq!(
        step(CI, &st(N), &ctx),
        Transition::to_with(N, BACKLOG.union(POOLCHK).union(POOLREQ))
    );
    // Draft NORMAL loses the link: COMM-INT with safe timer and alarm.
    let ctx = Context {
        comm_ok: true,
        partner: Some(N),
        ..Context::new(Role::Primary, Dialect::Draft, NOW)
    };
    assert_eq!(
        step(N, &CF, &ctx),
        Transition::to_with(CI, SAFE.union(ALARM))
    );
    // Draft primary POTENTIAL-CONFLICT → UPDDONE → CONFLICT-DONE: nothing more to do.
    assert_eq!(step(POT, &UD, &ctx), Transition::to(CD));
    // No state change: the transition's own actions only.
    let ctx = Context::new(Role::Primary, Dialect::Draft, NOW);
    assert_eq!(step(REC, &st(PD), &ctx), Transition::act(UPD));
}

#[test]
fn actions_api() {
    let a = UPD | ALARM;
    assert!(a.contains(UPD) && a.contains(ALARM) && !a.contains(UPDALL));
    assert!(!a.is_empty() && NO.is_empty());
    assert_eq!(format!("{a:?}"), "Actions(SEND_UPDREQ | ALARM)");
    assert_eq!(format!("{NO:?}"), "Actions(NONE)");
    assert_eq!(Actions::from_bits_truncate(0xffff), Actions::ALL);
    assert_eq!(Actions::from_bits_truncate(a.bits()), a);
    let mut b = NO;
    b |= DISC;
    assert_eq!(b, DISC);
}

// ===== Properties =====

fn any_state() -> impl Strategy<Value = ServerState> {
    any::<u8>().prop_map(ServerState::from)
}

fn any_event() -> impl Strategy<Value = StateEvent> {
    prop_oneof![
        (any_state(), any::<bool>(), any::<u32>()).prop_map(|(state, startup, since)| {
            StateEvent::PartnerState {
                state,
                startup,
                since: UnixTime(since),
            }
        }),
        Just(CF),
        Just(UD),
        Just(RWE),
        Just(SPE),
        Just(SE),
        Just(APD),
        Just(ASH),
        Just(APA),
    ]
}

fn any_context() -> impl Strategy<Value = Context> {
    (
        (
            prop_oneof![Just(Role::Primary), Just(Role::Secondary)],
            prop_oneof![Just(Dialect::Isc), Just(Dialect::Draft)],
            any::<u32>(),
            any_state(),
            proptest::option::of(any::<u32>()),
        ),
        (
            proptest::option::of(any_state()),
            proptest::option::of(any::<u32>()),
            any::<bool>(),
            any::<bool>(),
            prop_oneof![
                Just(StartupExpiry::EnterPrevious),
                Just(StartupExpiry::Wait),
                Just(StartupExpiry::PartnerDown)
            ],
        ),
    )
        .prop_map(
            |(
                (role, dialect, now, previous, last_operational),
                (partner, recover_wait_until, comm_ok, lost_storage, startup_expiry),
            )| Context {
                role,
                dialect,
                now: UnixTime(now),
                previous,
                last_operational: last_operational.map(UnixTime),
                partner,
                recover_wait_until: recover_wait_until.map(UnixTime),
                comm_ok,
                lost_storage,
                startup_expiry,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(20_000))]

    #[test]
    fn never_startup_unknown_self_or_secondary_conflict_done(
        ours in any_state(),
        event in any_event(),
        ctx in any_context(),
    ) {
        for t in [transition(ours, &event, &ctx), step(ours, &event, &ctx)] {
            if let Some(next) = t.next {
                prop_assert!(next != ServerState::Startup, "{ours:?} {event:?} → STARTUP");
                prop_assert!(!matches!(next, ServerState::Unknown(_)), "{ours:?} {event:?} → {next:?}");
                prop_assert!(next != ours, "{ours:?} {event:?} → itself");
                prop_assert!(
                    !(ctx.role == Role::Secondary && next == ServerState::ConflictDone),
                    "secondary {ours:?} {event:?} → CONFLICT-DONE"
                );
            }
            prop_assert_eq!(Actions::from_bits_truncate(t.actions.bits()), t.actions);
        }
        // Entry actions are total too.
        let a = entry_actions(ours, ctx.previous, &ctx);
        prop_assert_eq!(Actions::from_bits_truncate(a.bits()), a);
    }

    #[test]
    fn startup_previous_is_a_state_one_can_restart_in(
        persisted in proptest::option::of(any_state()),
        draft in any::<bool>(),
    ) {
        let dialect = if draft { Dialect::Draft } else { Dialect::Isc };
        let p = startup_previous(persisted, dialect);
        prop_assert!(!matches!(
            p,
            ServerState::Startup | ServerState::Paused | ServerState::Shutdown | ServerState::Unknown(_)
        ));
        if draft {
            prop_assert!(!matches!(p, ServerState::Normal | ServerState::PotentialConflict));
        }
        // The mapping is idempotent.
        prop_assert_eq!(comm_fail_mapping(comm_fail_mapping(p)), comm_fail_mapping(p));
    }
}
