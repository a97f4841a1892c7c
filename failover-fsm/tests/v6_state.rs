//! RFC 8156's endpoint state machine (§8) as `v6::state::step` gives it on v4's transition
//! function: every cell of the communications-OK table (§8.4.2–§8.12.2), STARTUP (§8.3), the
//! other events, the MCLT lifetime rule (§4.4) on v4's `lease_time`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

use failover_fsm::transition::{self, Actions, StartupExpiry};
use failover_fsm::v6::lifetime::grant;
use failover_fsm::v6::state::{Context, Event, from_v4, startup_previous, step, to_v4};
use failover_fsm::{Dialect, Role, UnixTime};
use failover_proto::v6::ServerState;
use proptest::prelude::*;

use Role::{Primary, Secondary};
use ServerState::{
    CommunicationsInterrupted as CommInt, ConflictDone, Normal, PartnerDown, PotentialConflict,
    Recover, RecoverDone, RecoverWait, ResolutionInterrupted, Startup,
};

const NOW: UnixTime = UnixTime(1_700_000_000);

/// Column order of the table.
const PARTNER: [ServerState; 9] = [
    Normal,
    CommInt,
    PartnerDown,
    PotentialConflict,
    ResolutionInterrupted,
    ConflictDone,
    Recover,
    RecoverWait,
    RecoverDone,
];

fn partner(state: ServerState) -> Event {
    Event::PartnerState {
        state,
        startup: false,
        since: NOW,
    }
}

/// The communications-OK table of RFC 8156 §8 (the first STATE on a connection): 'N' NORMAL,
/// 'C' COMMUNICATIONS-INTERRUPTED, 'P' POTENTIAL-CONFLICT, '-' stay, 'u' stay and ask for
/// updates (UPDREQ). Columns as `PARTNER`.
const TABLE: [(ServerState, &str); 9] = [
    (PartnerDown, "PPPPPP--N"),           // §8.4.2
    (CommInt, "NNPPPP--N"),               // §8.9.2 (RECOVER-WAIT: the text has no cell)
    (Recover, "uuuPPPuuu"),               // §8.5.2
    (RecoverDone, "N--P--CCN"),           // §8.7.2
    (Normal, "--PPPPCC-"),                // §8.8.2: as COMM-INT, then its row
    (ResolutionInterrupted, "PPPPPPPPP"), // §8.11.2
    (ConflictDone, "N--------"),          // §8.12.2
    (PotentialConflict, "---------"),     // §8.10.2 (the primary)
    (RecoverWait, "---------"),           // §8.6.2: the timer only
];

#[test]
fn communications_ok_table() {
    let mut cells = 0;
    for (ours, row) in TABLE {
        for (p, cell) in PARTNER.iter().zip(row.chars()) {
            let ctx = Context::new(Primary, NOW);
            let t = step(ours, &partner(*p), &ctx);
            let want = match cell {
                'N' => Some(Normal),
                'C' => Some(CommInt),
                'P' => Some(PotentialConflict),
                '-' | 'u' => None,
                _ => unreachable!(),
            };
            assert_eq!(t.next, want, "{ours} with partner {p}");
            if cell == 'u' {
                assert!(t.actions.contains(Actions::SEND_UPDREQ), "{ours}/{p}");
            }
            cells += 1;
        }
    }
    assert_eq!(cells, 81);
}

#[test]
fn the_cells_where_v6_differs_from_draft12() {
    for (p, want) in [
        (Recover, CommInt),
        (RecoverWait, CommInt),
        (PotentialConflict, PotentialConflict),
    ] {
        let ctx = Context::new(Primary, NOW);
        assert_eq!(step(RecoverDone, &partner(p), &ctx).next, Some(want));
        // draft-12 §9.7.2 stays.
        let v4 = transition::step(
            to_v4(RecoverDone),
            &transition::StateEvent::PartnerState {
                state: to_v4(p),
                startup: false,
                since: NOW,
            },
            &transition::Context::new(Primary, Dialect::Draft, NOW),
        );
        assert_eq!(v4.next, None);
    }
    // Entering POTENTIAL-CONFLICT from there: the primary asks (entry actions, §8.10).
    let t = step(
        RecoverDone,
        &partner(PotentialConflict),
        &Context::new(Primary, NOW),
    );
    assert!(t.actions.contains(Actions::SEND_UPDREQ));
    // A repeat of the partner's state on an established link changes nothing.
    let known = Context {
        comm_ok: true,
        partner: Some(Recover),
        ..Context::new(Primary, NOW)
    };
    assert_eq!(step(RecoverDone, &partner(Recover), &known).next, None);
}

#[test]
fn secondary_potential_conflict_asks_once_the_primary_is_conflict_done() {
    let ctx = Context::new(Secondary, NOW);
    let t = step(PotentialConflict, &partner(ConflictDone), &ctx);
    assert_eq!(t.next, None);
    assert!(t.actions.contains(Actions::SEND_UPDREQ));
    // Entering NORMAL the secondary sends its backlog and POOLREQ (§8.8).
    let t = step(CommInt, &partner(Normal), &ctx);
    assert_eq!(t.next, Some(Normal));
    assert!(
        t.actions
            .contains(Actions::SEND_BACKLOG | Actions::SEND_POOLREQ)
    );
    let t = step(CommInt, &partner(Normal), &Context::new(Primary, NOW));
    assert!(!t.actions.contains(Actions::SEND_POOLREQ));
}

#[test]
fn partner_down_ignores_a_starting_partner() {
    let ctx = Context::new(Primary, NOW);
    for p in PARTNER {
        let e = Event::PartnerState {
            state: p,
            startup: true,
            since: NOW,
        };
        assert_eq!(step(PartnerDown, &e, &ctx).next, None, "{p}");
    }
}

#[test]
fn recover_asks_for_everything_after_losing_storage() {
    let ctx = Context {
        lost_storage: true,
        ..Context::new(Secondary, NOW)
    };
    let t = step(Recover, &partner(PartnerDown), &ctx);
    assert!(t.actions.contains(Actions::SEND_UPDREQALL));
    assert!(!t.actions.contains(Actions::SEND_UPDREQ));
}

#[test]
fn other_events() {
    use Event::*;
    let rows: [(Role, ServerState, Event, Option<ServerState>); 16] = [
        (Primary, Normal, CommFailed, Some(CommInt)),
        (
            Primary,
            PotentialConflict,
            CommFailed,
            Some(ResolutionInterrupted),
        ),
        (Primary, CommInt, CommFailed, None),
        (Primary, PartnerDown, CommFailed, None),
        (Primary, ConflictDone, CommFailed, None),
        (Primary, PotentialConflict, UpdDone, Some(ConflictDone)),
        (Secondary, PotentialConflict, UpdDone, Some(Normal)),
        (Primary, Recover, UpdDone, Some(RecoverWait)),
        (Primary, RecoverWait, RecoverWaitExpired, Some(RecoverDone)),
        (Primary, CommInt, AutoPartnerDownExpired, Some(PartnerDown)),
        (Primary, Normal, AdminPartnerDown, Some(PartnerDown)),
        (Secondary, CommInt, AdminPartnerDown, Some(PartnerDown)),
        (
            Primary,
            ResolutionInterrupted,
            AdminPartnerDown,
            Some(PartnerDown),
        ),
        (Primary, Recover, AdminPartnerDown, None),
        (Primary, PotentialConflict, AdminPartnerDown, None),
        (Primary, Normal, UpdDone, None),
    ];
    for (role, ours, event, want) in rows {
        let t = step(ours, &event, &Context::new(role, NOW));
        assert_eq!(t.next, want, "{role:?} {ours} {event:?}");
    }
    // Entry actions come with the move.
    let t = step(Normal, &CommFailed, &Context::new(Primary, NOW));
    assert!(
        t.actions
            .contains(Actions::START_SAFE_TIMER | Actions::ALARM)
    );
    let t = step(Recover, &UpdDone, &Context::new(Primary, NOW));
    assert!(t.actions.contains(Actions::START_RECOVER_WAIT));
}

#[test]
fn startup_previous_state() {
    // §8.3.2 step 1 (nothing stored: RECOVER) and step 2.
    assert_eq!(startup_previous(None), Recover);
    let rows = [
        (Normal, CommInt),
        (PotentialConflict, ResolutionInterrupted),
        (CommInt, CommInt),
        (PartnerDown, PartnerDown),
        (Recover, Recover),
        (RecoverWait, RecoverWait),
        (RecoverDone, RecoverDone),
        (ResolutionInterrupted, ResolutionInterrupted),
        (ConflictDone, ConflictDone),
        (Startup, Recover),
        (ServerState::Unknown(0), Recover),
    ];
    for (stored, want) in rows {
        assert_eq!(startup_previous(Some(stored)), want, "{stored}");
    }
}

fn starting(role: Role, previous: ServerState, last_operational: Option<UnixTime>) -> Context {
    Context {
        previous,
        last_operational,
        ..Context::new(role, NOW)
    }
}

#[test]
fn startup_on_the_partners_first_state() {
    let last = Some(NOW.minus(600));
    let down_since = |since| Event::PartnerState {
        state: PartnerDown,
        startup: false,
        since,
    };
    // §8.3.2 step 5: the partner took over after we last operated → RECOVER (and ask).
    let t = step(
        Startup,
        &down_since(NOW.minus(300)),
        &starting(Primary, CommInt, last),
    );
    assert_eq!(t.next, Some(Recover));
    assert!(t.actions.contains(Actions::SEND_UPDREQ));
    // ... before (or at) it → POTENTIAL-CONFLICT.
    for since in [NOW.minus(900), NOW.minus(600)] {
        let t = step(
            Startup,
            &down_since(since),
            &starting(Primary, CommInt, last),
        );
        assert_eq!(t.next, Some(PotentialConflict));
    }
    // Never operated: RECOVER.
    let t = step(
        Startup,
        &down_since(NOW.minus(900)),
        &starting(Primary, Recover, None),
    );
    assert_eq!(t.next, Some(Recover));
    // Otherwise the previous state, then its row.
    let rows = [
        (CommInt, Normal, Normal),
        (CommInt, Recover, CommInt),
        (PartnerDown, Recover, PartnerDown),
        (PartnerDown, RecoverDone, Normal),
        (RecoverWait, Normal, RecoverWait),
        (ResolutionInterrupted, Normal, PotentialConflict),
        (ConflictDone, Normal, Normal),
        // The v6 cells of RECOVER-DONE apply to a resumed RECOVER-DONE too.
        (RecoverDone, Recover, CommInt),
        (RecoverDone, PotentialConflict, PotentialConflict),
        (RecoverDone, CommInt, RecoverDone),
    ];
    for (previous, p, want) in rows {
        let t = step(Startup, &partner(p), &starting(Primary, previous, last));
        assert_eq!(t.next, Some(want), "previous {previous}, partner {p}");
    }
}

#[test]
fn startup_timer() {
    // §8.3.2 step 6: SHOULD go to PREVIOUS-STATE; the knobs of v4 apply.
    let ctx = starting(Primary, ResolutionInterrupted, None);
    assert_eq!(
        step(Startup, &Event::StartupExpired, &ctx).next,
        Some(ResolutionInterrupted)
    );
    let wait = Context {
        startup_expiry: StartupExpiry::Wait,
        ..ctx
    };
    assert_eq!(step(Startup, &Event::StartupExpired, &wait).next, None);
    let down = Context {
        startup_expiry: StartupExpiry::PartnerDown,
        ..ctx
    };
    assert_eq!(
        step(Startup, &Event::StartupExpired, &down).next,
        Some(PartnerDown)
    );
}

#[test]
fn state_mapping_round_trips() {
    for v in 0..=255u8 {
        let s = ServerState::from(v);
        match s {
            ServerState::Unknown(_) => assert_eq!(from_v4(to_v4(s)), None),
            _ => {
                assert_eq!(from_v4(to_v4(s)), Some(s));
                assert_eq!(to_v4(s).to_string(), s.to_string());
            }
        }
    }
    assert_eq!(from_v4(failover_proto::ServerState::Paused), None);
    assert_eq!(from_v4(failover_proto::ServerState::Shutdown), None);
}

fn v6_state() -> impl Strategy<Value = ServerState> {
    (0u8..=11).prop_map(ServerState::from)
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        (v6_state(), any::<bool>()).prop_map(|(state, startup)| Event::PartnerState {
            state,
            startup,
            since: NOW
        }),
        Just(Event::CommFailed),
        Just(Event::UpdDone),
        Just(Event::RecoverWaitExpired),
        Just(Event::AutoPartnerDownExpired),
        Just(Event::StartupExpired),
        Just(Event::AdminPartnerDown),
    ]
}

proptest! {
    #[test]
    fn never_startup_never_unknown_never_itself(
        ours in v6_state(),
        event in event(),
        primary in any::<bool>(),
        previous in v6_state(),
        partner in proptest::option::of(v6_state()),
        comm_ok in any::<bool>(),
    ) {
        let role = if primary { Primary } else { Secondary };
        let ctx = Context { previous, partner, comm_ok, ..Context::new(role, NOW) };
        let t = step(ours, &event, &ctx);
        if let Some(next) = t.next {
            prop_assert_ne!(next, ours);
            prop_assert_ne!(next, Startup);
            prop_assert!(!matches!(next, ServerState::Unknown(_)));
            prop_assert!(!(role == Secondary && next == ConflictDone));
        }
    }
}

#[test]
fn lifetimes_follow_figure_1() {
    // §4.4 Figure 1: MCLT 1 h, desired 3 days.
    let (mclt, d) = (3600, 3 * 86_400);
    let first = grant(Normal, mclt, NOW, d, None);
    assert_eq!(first.granted, 3600);
    assert_eq!(first.potential_expiration, NOW.plus(1800 + d));
    // Renewal at T1 with the first partner-lifetime acked: the full 3 days.
    let t1 = NOW.plus(1800);
    let second = grant(Normal, mclt, t1, d, Some(first.potential_expiration));
    assert_eq!(second.granted, d);
    assert_eq!(second.potential_expiration, t1.plus(d / 2 + d));
    // In COMMUNICATIONS-INTERRUPTED the same cap: max(acked, now) + MCLT.
    let ci = grant(
        CommInt,
        mclt,
        t1,
        10 * 86_400,
        Some(first.potential_expiration),
    );
    assert_eq!(ci.lease_expiration, first.potential_expiration.plus(mclt));
    // PARTNER-DOWN: no MCLT cap (§8.4.1).
    assert_eq!(grant(PartnerDown, mclt, NOW, d, None).granted, d);
    // A desired lifetime under the MCLT is granted as is.
    assert_eq!(grant(Normal, mclt, NOW, 600, None).granted, 600);
}
