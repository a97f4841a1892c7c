//! RFC 8156 proportional allocation of delegable prefixes (§4.2.2): the plan from the counts,
//! row by row, and its properties (the total is conserved, one run reaches the share, the next
//! run moves nothing); what POOLREQ gets (§5.3.3, §5.3.4).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

use std::net::Ipv6Addr;

use failover_fsm::v6::accept::{Received, judge_update};
use failover_fsm::v6::pool::{
    PoolConfig, PoolReqAnswer, PoolSkipped, PrefixCounts, PrefixPlan, movable, movable_candidates,
    moved_status, needs_rebalance, plan_candidates, plan_prefixes, poolreq_answer,
};
use failover_fsm::v6::{ClientKey, LocalLease};
use failover_fsm::{Role, UnixTime};
use failover_proto::v6::{Binding, BindingStatus, BndUpd, IaKind, LeaseAddr, Repr, ServerState};
use proptest::prelude::*;

fn counts(free: u32, free_backup: u32) -> PrefixCounts {
    PrefixCounts { free, free_backup }
}

fn config(secondary_percent: u8, threshold: u32) -> PoolConfig {
    PoolConfig {
        secondary_percent,
        threshold,
    }
}

#[test]
fn plan_rows() {
    // (free, free-backup, percent, threshold) → (target, give, take back)
    type Inputs = (u32, u32, u8, u32);
    let rows: [(Inputs, (u32, u32, u32)); 12] = [
        ((100, 0, 50, 1), (50, 50, 0)), // a fresh pair: half to the secondary
        ((50, 50, 50, 1), (50, 0, 0)),  // balanced
        ((49, 51, 50, 1), (50, 0, 0)),  // within the threshold
        ((48, 52, 50, 1), (50, 0, 2)),  // beyond it: take two back
        ((60, 38, 50, 1), (49, 11, 0)), // the secondary delegated some: top it up
        ((100, 0, 25, 1), (25, 25, 0)), // a quarter
        ((3, 0, 50, 0), (2, 2, 0)),     // rounded to the nearest (1.5 → 2)
        ((0, 0, 50, 1), (0, 0, 0)),     // nothing to share
        ((10, 0, 0, 0), (0, 0, 0)),     // the secondary gets none
        ((0, 10, 0, 0), (0, 0, 10)),    // ... and gives everything back
        ((10, 0, 100, 0), (10, 10, 0)), // the secondary gets all
        ((10, 0, 200, 0), (10, 10, 0)), // above 100 % counts as 100
    ];
    for ((free, backup, pct, threshold), (target, give, take_back)) in rows {
        let plan = plan_prefixes(
            Role::Primary,
            ServerState::Normal,
            counts(free, backup),
            &config(pct, threshold),
        )
        .unwrap();
        assert_eq!(
            plan,
            PrefixPlan {
                target,
                give,
                take_back
            },
            "{free}/{backup} at {pct}% ±{threshold}"
        );
    }
}

#[test]
fn only_the_primary_in_normal() {
    let c = counts(100, 0);
    let cfg = PoolConfig::default();
    assert_eq!(
        plan_prefixes(Role::Secondary, ServerState::Normal, c, &cfg),
        Err(PoolSkipped::NotPrimary)
    );
    for state in (1u8..=10).map(ServerState::from) {
        let got = plan_prefixes(Role::Primary, state, c, &cfg);
        if state == ServerState::Normal {
            assert!(got.is_ok());
        } else {
            assert_eq!(got, Err(PoolSkipped::NotNormal(state)));
        }
    }
}

#[test]
fn poolreq_answers() {
    for state in (1u8..=10).map(ServerState::from) {
        assert_eq!(
            poolreq_answer(Role::Secondary, state),
            PoolReqAnswer::Ignore
        );
        let want = if state == ServerState::Normal {
            PoolReqAnswer::RespondAndBalance
        } else {
            PoolReqAnswer::RespondOnly(PoolSkipped::NotNormal(state))
        };
        assert_eq!(poolreq_answer(Role::Primary, state), want, "{state}");
    }
}

#[test]
fn counting_and_candidates() {
    use BindingStatus::{Active, Free, FreeBackup, PendingFree};
    let leases: Vec<LocalLease> = [
        Free,
        Active,
        FreeBackup,
        Free,
        PendingFree,
        FreeBackup,
        Free,
    ]
    .into_iter()
    .map(LocalLease::new)
    .collect();
    let c = PrefixCounts::of(&leases);
    assert_eq!(c, counts(4, 2));
    let give = PrefixPlan {
        target: 4,
        give: 3,
        take_back: 0,
    };
    let picked: Vec<usize> =
        plan_candidates(&give, leases.iter().enumerate().map(|(i, l)| Idx(i, *l)))
            .map(|Idx(i, _)| i)
            .collect();
    assert_eq!(picked, [0, 3, 4]);
    let back = PrefixPlan {
        target: 1,
        give: 0,
        take_back: 1,
    };
    let picked: Vec<usize> =
        plan_candidates(&back, leases.iter().enumerate().map(|(i, l)| Idx(i, *l)))
            .map(|Idx(i, _)| i)
            .collect();
    assert_eq!(picked, [2]);
}

#[test]
fn a_moved_record_and_its_bndupd() {
    use BindingStatus::{Active, Expired, Free, FreeBackup, PendingFree};
    let t = UnixTime(1_700_000_000);
    for (from, to) in [
        (Free, Some(FreeBackup)),
        (PendingFree, Some(FreeBackup)),
        (FreeBackup, Some(Free)),
        (Active, None),
        (Expired, None),
    ] {
        assert_eq!(moved_status(from), to, "{from}");
    }
    // A prefix freed from a client: given, it is clientless from `t` on, nothing to time out.
    let freed = LocalLease {
        client: Some(ClientKey::new(&[1, 2, 3], IaKind::Pd, 1)),
        cltt: Some(t.minus(100)),
        partner_raw_clt_time: Some(t.minus(100)),
        start_time_of_state: Some(t.minus(50)),
        acked_partner_lifetime: Some(t.minus(10)),
        ..LocalLease::new(Free)
    };
    let mut given = freed;
    assert_eq!(given.move_prefix(t), Some(FreeBackup));
    assert_eq!(
        given,
        LocalLease {
            status: FreeBackup,
            client: None,
            cltt: None,
            start_time_of_state: Some(t),
            acked_partner_lifetime: Some(t.minus(10)),
            ..LocalLease::new(FreeBackup)
        }
    );
    // Its BNDUPD passes the codec's rules for a top-level IAPREFIX (§7.4) and a partner that
    // knew the prefix as freed takes it: the move is later than its record.
    let p = LeaseAddr::Prefix {
        prefix: Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, 0),
        len: 56,
    };
    let update = BndUpd {
        xid: 1,
        sent_time: 0,
        binding: Binding::Prefix(given.clientless_update(p, t)),
        extra: Default::default(),
    };
    let mut buf = [0u8; 256];
    let n = update.emit(&mut buf).unwrap();
    let Repr::BndUpd(got) = Repr::parse(&buf[..n]).unwrap() else {
        panic!("not a BNDUPD")
    };
    let (lease, received) = Received::all(&got.binding).next().unwrap();
    assert_eq!((lease.preferred_lifetime, lease.valid_lifetime), (0, 0));
    let v = judge_update(Role::Secondary, Some(&freed), &received, t).unwrap();
    assert_eq!((v.status, v.start_time_of_state), (FreeBackup, Some(t)));
    // Taken back within 5 s of the give, the partner would judge FREE "not later" (§7.5.1):
    // not movable until then.
    let mut stored = freed;
    stored.store_received(None, &v);
    let mut back = given;
    assert!(!movable(&given, t.plus(5)));
    back.move_prefix(t.plus(5));
    let early = Received::of_lease(&back.clientless_update(p, t.plus(5)));
    assert_eq!(
        judge_update(Role::Secondary, Some(&stored), &early, t.plus(5)),
        Err(failover_proto::v6::Status::OutdatedBindingInformation)
    );
    assert!(movable(&given, t.plus(6)));
    let mut back = given;
    back.move_prefix(t.plus(6));
    let in_time = Received::of_lease(&back.clientless_update(p, t.plus(6)));
    let v = judge_update(Role::Secondary, Some(&stored), &in_time, t.plus(6)).unwrap();
    assert_eq!(v.status, Free);
    // A delegated prefix neither moves nor counts as movable.
    let mut held = LocalLease::new(Active);
    assert!(!movable(&held, t) && held.move_prefix(t).is_none());
    assert_eq!(held, LocalLease::new(Active));
}

#[test]
fn movable_candidates_skip_what_changed_in_the_last_5_s() {
    let t = UnixTime(1_700_000_000);
    let fresh = LocalLease {
        start_time_of_state: Some(t.minus(2)),
        ..LocalLease::new(BindingStatus::Free)
    };
    let old = LocalLease {
        start_time_of_state: Some(t.minus(60)),
        ..LocalLease::new(BindingStatus::Free)
    };
    let leases = [fresh, old, fresh, LocalLease::new(BindingStatus::Free)];
    let give = PrefixPlan {
        target: 3,
        give: 3,
        take_back: 0,
    };
    let picked: Vec<usize> =
        movable_candidates(&give, leases.iter().enumerate().map(|(i, l)| Idx(i, *l)), t)
            .map(|Idx(i, _)| i)
            .collect();
    // Fewer than asked: the two fresh ones wait.
    assert_eq!(picked, [1, 3]);
}

struct Idx(usize, LocalLease);

impl AsRef<LocalLease> for Idx {
    fn as_ref(&self) -> &LocalLease {
        &self.1
    }
}

#[test]
fn rebalance_when_a_count_moves_beyond_the_threshold() {
    let cfg = config(50, 2);
    assert!(!needs_rebalance(counts(50, 50), counts(48, 50), &cfg));
    assert!(needs_rebalance(counts(50, 50), counts(47, 50), &cfg));
    assert!(needs_rebalance(counts(50, 50), counts(50, 53), &cfg));
}

proptest! {
    #[test]
    fn the_split_conserves_and_converges(
        free in 0u32..100_000,
        backup in 0u32..100_000,
        pct in 0u8..=120,
        threshold in 0u32..50,
    ) {
        let cfg = config(pct, threshold);
        let before = counts(free, backup);
        let plan = plan_prefixes(Role::Primary, ServerState::Normal, before, &cfg).unwrap();
        // One direction at a time, never more than there is.
        prop_assert!(plan.give == 0 || plan.take_back == 0);
        prop_assert!(plan.give <= free && plan.take_back <= backup);
        let after = before.after(&plan);
        // Conserved.
        prop_assert_eq!(after.total(), before.total());
        // The share is reached, or was already within the threshold.
        if plan.is_empty() {
            prop_assert!(u64::from(plan.target.abs_diff(backup)) <= u64::from(threshold));
        } else {
            prop_assert_eq!(after.free_backup, plan.target);
        }
        // Converged: the next run moves nothing.
        let again = plan_prefixes(Role::Primary, ServerState::Normal, after, &cfg).unwrap();
        prop_assert!(again.is_empty(), "{:?} then {:?}", plan, again);
        // The share is the configured proportion, rounded to the nearest prefix.
        let exact = before.total() as f64 * f64::from(pct.min(100)) / 100.0;
        prop_assert!((f64::from(plan.target) - exact).abs() <= 0.5);
    }
}
