//! The service rules: who answers which client message in which state, which addresses may be
//! allocated, the MCLT lease-time rule (worked examples and a property test of the invariant),
//! and ISC's pool balancing.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

use core::net::Ipv4Addr;

use failover_fsm::accept::{ClientIdentity, LocalBinding};
use failover_fsm::policy::{
    AllocRefusal, AllocationRequest, Answer, BalanceCandidate, BalanceConfig, BalanceSkipped,
    BalanceStep, BalanceTrigger, ClientMessage, Endpoint, INFINITE, LeaseRequest, LeaseTimes,
    LoadBalance, MessageKind, PartnerDownLeases, PartnerPool, PoolCounts, RequestKind, Reschedule,
    as_of, choose_address, lease_time, may_allocate, may_allocate_to, may_answer, may_offer_status,
    next_rebalance, plan_balance, secondary_not_hoarding,
};
use failover_fsm::{BindingStatus, Dialect, Hba, HbaPolarity, Role, ServerState, UnixTime};
use failover_proto::HardwareAddress;
use proptest::prelude::*;

use BindingStatus::{Abandoned, Active, Backup, Expired, Free, Released, Reset};
use ServerState::{
    CommunicationsInterrupted, ConflictDone, Normal, PartnerDown, Paused, PotentialConflict,
    Recover, RecoverDone, RecoverWait, ResolutionInterrupted, Shutdown, Startup,
};

/// MAC → bucket 201: the secondary's under ISC `split 128`.
const MAC_201: [u8; 6] = [0x00, 0x0c, 0x29, 0x12, 0x34, 0x56];
/// MAC → bucket 57: the primary's under ISC `split 128`.
const MAC_57: [u8; 6] = [0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff];

const STATES: [ServerState; 12] = [
    Startup,
    Normal,
    CommunicationsInterrupted,
    PartnerDown,
    PotentialConflict,
    Recover,
    Paused,
    Shutdown,
    RecoverDone,
    ResolutionInterrupted,
    ConflictDone,
    RecoverWait,
];

const KINDS: [MessageKind; 9] = [
    MessageKind::Discover,
    MessageKind::Request(RequestKind::Selecting),
    MessageKind::Request(RequestKind::InitReboot),
    MessageKind::Request(RequestKind::Renewing),
    MessageKind::Request(RequestKind::Rebinding),
    MessageKind::Release,
    MessageKind::Decline,
    MessageKind::Inform,
    MessageKind::Bootp,
];

fn endpoint(dialect: Dialect, role: Role, state: ServerState) -> Endpoint {
    Endpoint {
        dialect,
        role,
        state,
        state_since: UnixTime(1_000),
        partner_state: None,
        mclt: 3_600,
        lease_mclt: 3_600,
    }
}

fn isc_split() -> LoadBalance {
    LoadBalance {
        hba: Hba::split(128),
        polarity: HbaPolarity::BitsArePrimary,
        max_secs: 3,
    }
}

fn msg(kind: MessageKind, mac: &[u8], secs: u16) -> ClientMessage<'_> {
    ClientMessage {
        kind,
        client_id: None,
        chaddr: mac,
        secs,
    }
}

// ---------------------------------------------------------------------------------------------
// may_answer
// ---------------------------------------------------------------------------------------------

#[test]
fn hash_bucket_split_vectors() {
    let lb = isc_split();
    let m201 = msg(MessageKind::Discover, &MAC_201, 0);
    let m57 = msg(MessageKind::Discover, &MAC_57, 0);
    assert_eq!(m201.bucket(), 201);
    assert_eq!(m57.bucket(), 57);
    let p = endpoint(Dialect::Isc, Role::Primary, Normal);
    let s = endpoint(Dialect::Isc, Role::Secondary, Normal);
    let has = PartnerPool::HasFree;
    assert_eq!(may_answer(&p, &lb, &m201, has), Answer::NotOurBucket(201));
    assert_eq!(may_answer(&s, &lb, &m201, has), Answer::Serve);
    assert_eq!(may_answer(&p, &lb, &m57, has), Answer::Serve);
    assert_eq!(may_answer(&s, &lb, &m57, has), Answer::NotOurBucket(57));
    // the same bitmap read with the draft's polarity hands the buckets the other way round
    let draft = LoadBalance {
        polarity: HbaPolarity::BitsAreSecondary,
        ..lb
    };
    assert_eq!(may_answer(&p, &draft, &m201, has), Answer::Serve);
    assert_eq!(
        may_answer(&s, &draft, &m201, has),
        Answer::NotOurBucket(201)
    );
    // a client-identifier is hashed instead of chaddr (01 00 11 22 33 44 55 -> 223)
    let with_id = ClientMessage {
        client_id: Some(&[0x01, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55]),
        ..m57
    };
    assert_eq!(with_id.bucket(), 223);
    assert_eq!(
        may_answer(&p, &lb, &with_id, has),
        Answer::NotOurBucket(223)
    );
}

/// What the spec tables (04 §1, D31–D33) say a state does with client messages.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Service {
    Nobody,
    Everybody,
    /// NORMAL, draft: renew/rebind from all, the rest load-balanced.
    DraftBalanced,
    /// NORMAL, ISC: DISCOVER and BOOTP load-balanced, the rest from all.
    IscBalanced,
    RenewalsOnly,
}

fn expected_service(dialect: Dialect, role: Role, state: ServerState) -> Service {
    match (dialect, state) {
        (Dialect::Draft, Normal) => Service::DraftBalanced,
        (Dialect::Draft, CommunicationsInterrupted | PartnerDown | ResolutionInterrupted) => {
            Service::Everybody
        }
        (Dialect::Draft, ConflictDone) if role == Role::Primary => Service::Everybody,
        (Dialect::Draft, RecoverDone) => Service::RenewalsOnly,
        (Dialect::Isc, Normal) => Service::IscBalanced,
        (Dialect::Isc, CommunicationsInterrupted | PartnerDown) => Service::Everybody,
        _ => Service::Nobody,
    }
}

#[test]
fn may_answer_every_state_and_message_kind() {
    let lb = isc_split();
    let mut cells = 0;
    for dialect in [Dialect::Draft, Dialect::Isc] {
        for role in [Role::Primary, Role::Secondary] {
            // one client in our buckets, one in the partner's
            let (ours, theirs, their_bucket) = match role {
                Role::Primary => (&MAC_57, &MAC_201, 201),
                Role::Secondary => (&MAC_201, &MAC_57, 57),
            };
            for state in STATES {
                let ep = endpoint(dialect, role, state);
                let service = expected_service(dialect, role, state);
                for kind in KINDS {
                    let renewal = matches!(
                        kind,
                        MessageKind::Request(RequestKind::Renewing | RequestKind::Rebinding)
                    );
                    let balanced = match service {
                        Service::DraftBalanced => !renewal,
                        Service::IscBalanced => {
                            matches!(kind, MessageKind::Discover | MessageKind::Bootp)
                        }
                        _ => false,
                    };
                    let isc_inform = dialect == Dialect::Isc && kind == MessageKind::Inform;
                    let expect_theirs = match service {
                        _ if isc_inform => Answer::Serve,
                        Service::Nobody => Answer::NotResponding(state),
                        Service::RenewalsOnly if renewal => Answer::Serve,
                        Service::RenewalsOnly => Answer::RenewalsOnly(state),
                        _ if balanced => Answer::NotOurBucket(their_bucket),
                        _ => Answer::Serve,
                    };
                    let expect_ours = match expect_theirs {
                        Answer::NotOurBucket(_) => Answer::Serve,
                        other => other,
                    };
                    let got_ours = may_answer(&ep, &lb, &msg(kind, ours, 0), PartnerPool::HasFree);
                    let got_theirs =
                        may_answer(&ep, &lb, &msg(kind, theirs, 0), PartnerPool::HasFree);
                    assert_eq!(
                        got_ours, expect_ours,
                        "{dialect:?} {role:?} {state} {kind:?}"
                    );
                    assert_eq!(
                        got_theirs, expect_theirs,
                        "{dialect:?} {role:?} {state} {kind:?}"
                    );
                    cells += 1;
                }
            }
        }
    }
    assert_eq!(cells, 2 * 2 * 12 * 9);
    // unknown states answer nobody
    for dialect in [Dialect::Draft, Dialect::Isc] {
        let ep = endpoint(dialect, Role::Primary, ServerState::Unknown(0));
        let m = msg(MessageKind::Discover, &MAC_57, 0);
        assert_eq!(
            may_answer(&ep, &lb, &m, PartnerPool::HasFree),
            Answer::NotResponding(ServerState::Unknown(0))
        );
    }
}

#[test]
fn isc_refuses_while_partner_resolves_or_is_partner_down() {
    let lb = isc_split();
    let m = msg(MessageKind::Request(RequestKind::Renewing), &MAC_57, 0);
    let inform = msg(MessageKind::Inform, &MAC_57, 0);
    for ours in [Normal, CommunicationsInterrupted, PartnerDown] {
        for partner in [
            PartnerDown,
            PotentialConflict,
            ConflictDone,
            ResolutionInterrupted,
        ] {
            let mut ep = endpoint(Dialect::Isc, Role::Primary, ours);
            ep.partner_state = Some(partner);
            assert_eq!(
                may_answer(&ep, &lb, &m, PartnerPool::HasFree),
                Answer::PartnerState(partner)
            );
            assert_eq!(
                may_answer(&ep, &lb, &inform, PartnerPool::HasFree),
                Answer::Serve
            );
            // the draft looks at our state only (D33)
            ep.dialect = Dialect::Draft;
            assert_eq!(
                may_answer(&ep, &lb, &m, PartnerPool::HasFree),
                Answer::Serve
            );
        }
        for partner in [
            Normal,
            CommunicationsInterrupted,
            Recover,
            Startup,
            Shutdown,
        ] {
            let mut ep = endpoint(Dialect::Isc, Role::Primary, ours);
            ep.partner_state = Some(partner);
            assert_eq!(
                may_answer(&ep, &lb, &m, PartnerPool::HasFree),
                Answer::Serve
            );
        }
    }
    // our own "not responding" state is reported first
    let mut ep = endpoint(Dialect::Isc, Role::Primary, Recover);
    ep.partner_state = Some(PartnerDown);
    assert_eq!(
        may_answer(&ep, &lb, &m, PartnerPool::HasFree),
        Answer::NotResponding(Recover)
    );
}

#[test]
fn secs_and_load_balancing_off() {
    for dialect in [Dialect::Draft, Dialect::Isc] {
        let ep = endpoint(dialect, Role::Primary, Normal);
        let lb = isc_split(); // max_secs = 3
        for kind in [MessageKind::Discover, MessageKind::Bootp] {
            let at = |secs| may_answer(&ep, &lb, &msg(kind, &MAC_201, secs), PartnerPool::HasFree);
            assert_eq!(at(0), Answer::NotOurBucket(201));
            assert_eq!(at(3), Answer::NotOurBucket(201));
            assert_eq!(at(4), Answer::Serve, "secs > max answers anyway");
            assert_eq!(at(u16::MAX), Answer::Serve);
        }
        // 0 disables load balancing
        let off = LoadBalance { max_secs: 0, ..lb };
        let m = msg(MessageKind::Discover, &MAC_201, 0);
        assert_eq!(
            may_answer(&ep, &off, &m, PartnerPool::HasFree),
            Answer::Serve
        );
        // u16::MAX: never the partner's clients
        let strict = LoadBalance {
            max_secs: u16::MAX,
            ..lb
        };
        let m = msg(MessageKind::Discover, &MAC_201, u16::MAX);
        assert_eq!(
            may_answer(&ep, &strict, &m, PartnerPool::HasFree),
            Answer::NotOurBucket(201)
        );
    }
}

#[test]
fn isc_answers_discover_when_partner_has_no_free_leases() {
    let lb = isc_split();
    let ep = endpoint(Dialect::Isc, Role::Primary, Normal);
    let disc = msg(MessageKind::Discover, &MAC_201, 0);
    let bootp = msg(MessageKind::Bootp, &MAC_201, 0);
    assert_eq!(
        may_answer(&ep, &lb, &disc, PartnerPool::Empty),
        Answer::Serve
    );
    assert_eq!(
        may_answer(&ep, &lb, &bootp, PartnerPool::Empty),
        Answer::NotOurBucket(201)
    );
    let draft = endpoint(Dialect::Draft, Role::Primary, Normal);
    assert_eq!(
        may_answer(&draft, &lb, &disc, PartnerPool::Empty),
        Answer::NotOurBucket(201)
    );
}

// ---------------------------------------------------------------------------------------------
// may_allocate
// ---------------------------------------------------------------------------------------------

const NEW: AllocationRequest = AllocationRequest {
    last_client: false,
    holds_reservation: false,
    dynamic_bootp_pool: false,
};
const SAME: AllocationRequest = AllocationRequest {
    last_client: true,
    ..NEW
};

fn binding(status: BindingStatus) -> LocalBinding {
    let mut b = LocalBinding::new(status);
    b.client = ClientIdentity::new(
        None,
        Some(HardwareAddress {
            htype: 1,
            address: &MAC_57,
        }),
    );
    b
}

#[test]
fn allocation_from_own_and_partners_pool() {
    let now = UnixTime(2_000);
    for dialect in [Dialect::Draft, Dialect::Isc] {
        for (role, own, theirs) in [
            (Role::Primary, Free, Backup),
            (Role::Secondary, Backup, Free),
        ] {
            for state in [Normal, CommunicationsInterrupted, PartnerDown] {
                let ep = endpoint(dialect, role, state);
                assert_eq!(may_allocate(&ep, &binding(own), NEW, now), Ok(()));
                let partners = may_allocate(&ep, &binding(theirs), NEW, now);
                if state == PartnerDown {
                    assert!(matches!(partners, Err(AllocRefusal::WaitUntil(_))));
                } else {
                    assert_eq!(partners, Err(AllocRefusal::PartnersPool(theirs)));
                }
            }
            // no allocation at all in these
            for state in [
                Startup,
                PotentialConflict,
                Recover,
                RecoverWait,
                Paused,
                Shutdown,
            ] {
                let ep = endpoint(dialect, role, state);
                assert_eq!(
                    may_allocate(&ep, &binding(own), NEW, now),
                    Err(AllocRefusal::NotServing(state))
                );
            }
            // RECOVER-DONE renews only
            let ep = endpoint(dialect, role, RecoverDone);
            assert_eq!(
                may_allocate(&ep, &binding(own), NEW, now),
                Err(AllocRefusal::NotServing(RecoverDone))
            );
        }
    }
    // RESOLUTION-INTERRUPTED and CONFLICT-DONE: draft serves (CONFLICT-DONE: primary), ISC not
    for (role, own) in [(Role::Primary, Free), (Role::Secondary, Backup)] {
        let d = endpoint(Dialect::Draft, role, ResolutionInterrupted);
        assert_eq!(may_allocate(&d, &binding(own), NEW, now), Ok(()));
        let i = endpoint(Dialect::Isc, role, ResolutionInterrupted);
        assert_eq!(
            may_allocate(&i, &binding(own), NEW, now),
            Err(AllocRefusal::NotServing(ResolutionInterrupted))
        );
        let d = endpoint(Dialect::Draft, role, ConflictDone);
        let expect = match role {
            Role::Primary => Ok(()),
            Role::Secondary => Err(AllocRefusal::NotServing(ConflictDone)),
        };
        assert_eq!(may_allocate(&d, &binding(own), NEW, now), expect);
    }
}

#[test]
fn partner_down_takes_partners_pool_after_mclt() {
    // entered PARTNER-DOWN at 1000, MCLT 3600, plus the clock margin
    let draft = endpoint(Dialect::Draft, Role::Secondary, PartnerDown);
    let free = binding(Free);
    let m = failover_fsm::policy::CLOCK_MARGIN;
    assert_eq!(
        may_allocate(&draft, &free, NEW, UnixTime(4_599 + m)),
        Err(AllocRefusal::WaitUntil(UnixTime(4_600 + m)))
    );
    assert_eq!(
        may_allocate(&draft, &free, NEW, UnixTime(4_600 + m)),
        Ok(())
    );
    // ISC: strictly after max(entry, tsfp) + MCLT
    let isc = endpoint(Dialect::Isc, Role::Secondary, PartnerDown);
    assert_eq!(
        may_allocate(&isc, &free, NEW, UnixTime(4_600)),
        Err(AllocRefusal::WaitUntil(UnixTime(4_601)))
    );
    assert_eq!(may_allocate(&isc, &free, NEW, UnixTime(4_601)), Ok(()));
    let mut recent = free;
    recent.received_pet = Some(UnixTime(5_000));
    assert_eq!(
        may_allocate(&isc, &recent, NEW, UnixTime(5_000)),
        Err(AllocRefusal::WaitUntil(UnixTime(8_601)))
    );
    // the draft waits from entry only
    assert_eq!(may_allocate(&draft, &recent, NEW, UnixTime(5_000)), Ok(()));
    // never in a dynamic-BOOTP pool (§5.14)
    let bootp = AllocationRequest {
        dynamic_bootp_pool: true,
        ..NEW
    };
    for ep in [draft, isc] {
        assert_eq!(
            may_allocate(&ep, &free, bootp, UnixTime(1_000_000)),
            Err(AllocRefusal::DynamicBootp)
        );
        // own pool is fine there
        assert_eq!(
            may_allocate(&ep, &binding(Backup), bootp, UnixTime(1_000)),
            Ok(())
        );
    }
}

#[test]
fn reserved_active_and_abandoned() {
    let now = UnixTime(2_000);
    for dialect in [Dialect::Draft, Dialect::Isc] {
        let ep = endpoint(dialect, Role::Primary, Normal);
        let mut reserved = binding(Free);
        reserved.reserved = true;
        assert_eq!(
            may_allocate(&ep, &reserved, NEW, now),
            Err(AllocRefusal::Reserved)
        );
        let holder = AllocationRequest {
            holds_reservation: true,
            ..NEW
        };
        assert_eq!(may_allocate(&ep, &reserved, holder, now), Ok(()));
        assert_eq!(
            may_allocate(&ep, &binding(Active), NEW, now),
            Err(AllocRefusal::Unavailable(Active))
        );
        assert_eq!(may_allocate(&ep, &binding(Active), SAME, now), Ok(()));
        assert_eq!(
            may_allocate(&ep, &binding(BindingStatus::Unknown(9)), NEW, now),
            Err(AllocRefusal::Unavailable(BindingStatus::Unknown(9)))
        );
    }
    // ABANDONED: draft never; ISC treats it as FREE (the primary's)
    let ab = binding(Abandoned);
    let d = endpoint(Dialect::Draft, Role::Primary, PartnerDown);
    assert_eq!(
        may_allocate(&d, &ab, NEW, UnixTime(1_000_000)),
        Err(AllocRefusal::Unavailable(Abandoned))
    );
    let p = endpoint(Dialect::Isc, Role::Primary, Normal);
    assert_eq!(may_allocate(&p, &ab, NEW, now), Ok(()));
    let s = endpoint(Dialect::Isc, Role::Secondary, Normal);
    assert_eq!(
        may_allocate(&s, &ab, NEW, now),
        Err(AllocRefusal::PartnersPool(Abandoned))
    );
}

#[test]
fn reuse_outside_partner_down_needs_the_partners_ack() {
    let now = UnixTime(2_000);
    for status in [Expired, Released, Reset] {
        let mut b = binding(status);
        b.partner_status = Some(Active);
        for dialect in [Dialect::Draft, Dialect::Isc] {
            let ep = endpoint(dialect, Role::Primary, CommunicationsInterrupted);
            assert_eq!(
                may_allocate(&ep, &b, NEW, now),
                Err(AllocRefusal::AwaitingAck(status))
            );
        }
        // draft §5.2.2: same client, status never sent
        let ep = endpoint(Dialect::Draft, Role::Primary, CommunicationsInterrupted);
        let expect = if status == Reset {
            Err(AllocRefusal::AwaitingAck(Reset))
        } else {
            Ok(())
        };
        assert_eq!(may_allocate(&ep, &b, SAME, now), expect, "{status}");
        let mut sent = b;
        sent.partner_status = Some(status);
        assert_eq!(
            may_allocate(&ep, &sent, SAME, now),
            Err(AllocRefusal::AwaitingAck(status))
        );
    }
    // ISC rewind: the partner never heard of the lease -> anybody may get it
    let isc_p = endpoint(Dialect::Isc, Role::Primary, CommunicationsInterrupted);
    let mut never = binding(Expired);
    never.partner_status = None; // the partner assumes FREE
    assert_eq!(may_allocate(&isc_p, &never, NEW, now), Ok(()));
    let isc_s = endpoint(Dialect::Isc, Role::Secondary, Normal);
    assert_eq!(
        may_allocate(&isc_s, &never, NEW, now),
        Err(AllocRefusal::AwaitingAck(Expired))
    );
    let mut was_backup = binding(Released);
    was_backup.partner_status = Some(Backup);
    assert_eq!(may_allocate(&isc_s, &was_backup, NEW, now), Ok(()));
    let mut reset = binding(Reset);
    reset.partner_status = None;
    assert_eq!(
        may_allocate(&isc_p, &reset, NEW, now),
        Err(AllocRefusal::AwaitingAck(Reset))
    );
}

#[test]
fn reuse_in_partner_down() {
    // entry 1000, MCLT 3600
    let mut b = binding(Expired);
    b.partner_status = Some(Expired);
    b.start_time_of_state = Some(UnixTime(2_000));
    b.lease_expiration = Some(UnixTime(2_000));
    b.sent_pet = Some(UnixTime(9_000));
    b.acked_pet = Some(UnixTime(8_000));
    b.received_pet = Some(UnixTime(7_000));
    // draft: MCLT (plus the clock margin) after the latest of them all (§9.4.2, §7.1.5)
    let d = endpoint(Dialect::Draft, Role::Primary, PartnerDown);
    let m = failover_fsm::policy::CLOCK_MARGIN;
    assert_eq!(
        may_allocate(&d, &b, NEW, UnixTime(12_599 + m)),
        Err(AllocRefusal::WaitUntil(UnixTime(12_600 + m)))
    );
    assert_eq!(may_allocate(&d, &b, NEW, UnixTime(12_600 + m)), Ok(()));
    assert_eq!(
        may_allocate(&d, &b, SAME, UnixTime(12_599)),
        Err(AllocRefusal::WaitUntil(UnixTime(12_600 + m)))
    );
    // ... and never before entry + MCLT
    let mut old = binding(Released);
    old.partner_status = Some(Released);
    old.lease_expiration = Some(UnixTime(10));
    assert_eq!(
        may_allocate(&d, &old, NEW, UnixTime(100)),
        Err(AllocRefusal::WaitUntil(UnixTime(4_600 + m)))
    );
    // ... and a status entered during PARTNER-DOWN waits the MCLT after it (§5.2.2)
    let mut late = binding(Reset);
    late.start_time_of_state = Some(UnixTime(50_000));
    assert_eq!(
        may_allocate(&d, &late, NEW, UnixTime(53_599)),
        Err(AllocRefusal::WaitUntil(UnixTime(53_600 + m)))
    );
    // ISC: entry + MCLT (strictly after), and not before the lease's end for another client
    let i = endpoint(Dialect::Isc, Role::Primary, PartnerDown);
    let mut isc_b = b;
    isc_b.partner_status = Some(Active);
    assert_eq!(may_allocate(&i, &isc_b, NEW, UnixTime(4_601)), Ok(()));
    assert_eq!(may_allocate(&i, &isc_b, SAME, UnixTime(4_601)), Ok(()));
    assert_eq!(
        may_allocate(&i, &isc_b, SAME, UnixTime(4_600)),
        Err(AllocRefusal::WaitUntil(UnixTime(4_601)))
    );
    isc_b.lease_expiration = Some(UnixTime(6_000));
    assert_eq!(
        may_allocate(&i, &isc_b, NEW, UnixTime(5_000)),
        Err(AllocRefusal::WaitUntil(UnixTime(6_000)))
    );
    assert_eq!(may_allocate(&i, &isc_b, SAME, UnixTime(5_000)), Ok(()));
}

// ---------------------------------------------------------------------------------------------
// lease_time
// ---------------------------------------------------------------------------------------------

fn request(now: u32, desired: u32, times: LeaseTimes) -> LeaseRequest {
    LeaseRequest {
        now: UnixTime(now),
        desired,
        times,
        partner_down: PartnerDownLeases::KeepMclt,
    }
}

#[test]
fn draft_worked_example() {
    // 05 §3.2 / draft §5.2.1 DISCUSSION: MCLT 1 h, desired 3 days, T1 = half the lease
    const H: u32 = 3_600;
    const D3: u32 = 3 * 86_400;
    let mut ep = endpoint(Dialect::Draft, Role::Primary, Normal);
    ep.mclt = H;
    let t = 1_600_000_000;
    let first = lease_time(&ep, &request(t, D3, LeaseTimes::NONE));
    assert_eq!(first.granted, H);
    assert_eq!(first.lease_expiration, UnixTime(t + H));
    assert_eq!(first.potential_expiration, UnixTime(t + H / 2 + D3));
    assert!(first.shortened(D3));
    // the partner acked that PET; the client renews at T1 = t + 1/2 h
    let t1 = t + H / 2;
    let times = LeaseTimes {
        lease_expiration: Some(first.lease_expiration),
        sent_pet: Some(first.potential_expiration),
        acked_pet: Some(first.potential_expiration),
        received_pet: None,
    };
    let renew = lease_time(&ep, &request(t1, D3, times));
    assert_eq!(renew.granted, D3);
    assert_eq!(renew.lease_expiration, UnixTime(t1 + D3));
    assert_eq!(renew.potential_expiration, UnixTime(t1 + D3 / 2 + D3)); // t1 + 1.5 d + 3 d
    assert!(!renew.shortened(D3));
}

#[test]
fn isc_worked_example() {
    // 05 §3.3: M = 3600, D = 86400
    let mut ep = endpoint(Dialect::Isc, Role::Primary, Normal);
    ep.mclt = 3_600;
    let now = 1_600_000_000;
    let first = lease_time(&ep, &request(now, 86_400, LeaseTimes::NONE));
    assert_eq!(first.granted, 3_600);
    assert_eq!(first.potential_expiration, UnixTime(now + 88_200));
    // after the BNDACK (tsfp = 88200 ahead), a renewal 1800 s later gets 86400 s
    let pet = Some(first.potential_expiration);
    let times = LeaseTimes {
        lease_expiration: Some(first.lease_expiration),
        sent_pet: pet,
        acked_pet: pet,
        received_pet: None,
    };
    let renew = lease_time(&ep, &request(now + 1_800, 86_400, times));
    assert_eq!(renew.granted, 86_400);
    assert_eq!(renew.lease_expiration, UnixTime(now + 1_800 + 86_400));
    assert_eq!(
        renew.potential_expiration,
        UnixTime(now + 1_800 + 86_400 + 43_200)
    );
}

#[test]
fn isc_formula_branches() {
    let ep = endpoint(Dialect::Isc, Role::Secondary, CommunicationsInterrupted);
    let now = 100_000;
    let pet = |t| LeaseTimes {
        received_pet: Some(UnixTime(t)),
        ..LeaseTimes::NONE
    };
    // D <= M: D, whatever tsfp says
    assert_eq!(
        lease_time(&ep, &request(now, 3_600, LeaseTimes::NONE)).granted,
        3_600
    );
    assert_eq!(
        lease_time(&ep, &request(now, 600, LeaseTimes::NONE)).granted,
        600
    );
    // tsfp <= now: M
    assert_eq!(
        lease_time(&ep, &request(now, 86_400, pet(now))).granted,
        3_600
    );
    // now + D > tsfp + M: tsfp + M - now
    assert_eq!(
        lease_time(&ep, &request(now, 86_400, pet(now + 10_000))).granted,
        13_600
    );
    // else D
    assert_eq!(
        lease_time(&ep, &request(now, 86_400, pet(now + 90_000))).granted,
        86_400
    );
    // ISC ignores the lease expiry even in COMMUNICATIONS-INTERRUPTED ...
    let let_only = LeaseTimes {
        lease_expiration: Some(UnixTime(now + 50_000)),
        ..LeaseTimes::NONE
    };
    assert_eq!(
        lease_time(&ep, &request(now, 86_400, let_only)).granted,
        3_600
    );
    // ... where the draft may extend MCLT beyond it (§9.9.2)
    let d = endpoint(Dialect::Draft, Role::Secondary, CommunicationsInterrupted);
    let g = lease_time(&d, &request(now, 86_400, let_only));
    assert_eq!(g.granted, 53_600);
    assert_eq!(g.cap, Some(UnixTime(now + 53_600)));
    // ... but not in NORMAL
    let n = endpoint(Dialect::Draft, Role::Secondary, Normal);
    assert_eq!(
        lease_time(&n, &request(now, 86_400, let_only)).granted,
        3_600
    );
}

#[test]
fn a_lower_sent_pet_limits_the_acked_one() {
    // We acked-PET 200000 earlier but have since sent 120000: the partner will record the
    // lower one, so only that counts (ISC: "if tstp < tsfp: tsfp = tstp").
    let now = 100_000;
    let times = LeaseTimes {
        lease_expiration: None,
        sent_pet: Some(UnixTime(120_000)),
        acked_pet: Some(UnixTime(200_000)),
        received_pet: None,
    };
    for dialect in [Dialect::Draft, Dialect::Isc] {
        let ep = endpoint(dialect, Role::Primary, Normal);
        let g = lease_time(&ep, &request(now, 1_000_000, times));
        assert_eq!(g.granted, 20_000 + 3_600, "{dialect:?}");
    }
    // a received PET still counts in full (the partner's own promise), for the draft
    let with_received = LeaseTimes {
        received_pet: Some(UnixTime(150_000)),
        ..times
    };
    let ep = endpoint(Dialect::Draft, Role::Primary, Normal);
    assert_eq!(
        lease_time(&ep, &request(now, 1_000_000, with_received)).granted,
        50_000 + 3_600
    );
    // ISC lowers its single tsfp, received part included
    let ep = endpoint(Dialect::Isc, Role::Primary, Normal);
    assert_eq!(
        lease_time(&ep, &request(now, 1_000_000, with_received)).granted,
        20_000 + 3_600
    );
}

#[test]
fn partner_down_lease_policy_and_infinite_leases() {
    let now = 100_000;
    let mut ep = endpoint(Dialect::Draft, Role::Primary, PartnerDown);
    let keep = lease_time(&ep, &request(now, 86_400, LeaseTimes::NONE));
    assert_eq!(keep.granted, 3_600);
    let free = LeaseRequest {
        partner_down: PartnerDownLeases::Unrestricted,
        ..request(now, 86_400, LeaseTimes::NONE)
    };
    let g = lease_time(&ep, &free);
    assert_eq!((g.granted, g.cap), (86_400, None));
    // infinite: unrestricted grants it; the lease never ends
    let inf = LeaseRequest {
        desired: INFINITE,
        ..free
    };
    let g = lease_time(&ep, &inf);
    assert_eq!(g.granted, INFINITE);
    assert_eq!(g.lease_expiration, UnixTime(u32::MAX));
    assert_eq!(g.potential_expiration, UnixTime(u32::MAX));
    // with the MCLT rule an infinite request gets the MCLT, and the PET says "forever"
    for dialect in [Dialect::Draft, Dialect::Isc] {
        ep.dialect = dialect;
        ep.state = Normal;
        let g = lease_time(&ep, &request(now, INFINITE, LeaseTimes::NONE));
        assert_eq!(g.granted, 3_600);
        assert_eq!(g.lease_expiration, UnixTime(now + 3_600));
        assert_eq!(g.potential_expiration, UnixTime(u32::MAX));
        // after the partner acked "forever", the renewal is infinite too
        let acked = LeaseTimes {
            sent_pet: Some(UnixTime(u32::MAX)),
            acked_pet: Some(UnixTime(u32::MAX)),
            ..LeaseTimes::NONE
        };
        let g = lease_time(&ep, &request(now, INFINITE, acked));
        assert_eq!(g.lease_expiration, UnixTime(u32::MAX), "{dialect:?}");
    }
    // ISC ignores the PARTNER-DOWN option (it applies its formula in every state)
    ep.dialect = Dialect::Isc;
    ep.state = PartnerDown;
    assert_eq!(lease_time(&ep, &free).granted, 3_600);
}

#[test]
fn times_saturate_at_the_end_of_u32_time() {
    let near = u32::MAX - 10;
    for dialect in [Dialect::Draft, Dialect::Isc] {
        let mut ep = endpoint(dialect, Role::Primary, Normal);
        ep.mclt = u32::MAX;
        let g = lease_time(&ep, &request(near, 1_000_000, LeaseTimes::NONE));
        assert_eq!(g.lease_expiration, UnixTime(u32::MAX));
        assert_eq!(g.potential_expiration, UnixTime(u32::MAX));
        assert!(g.potential_expiration >= g.lease_expiration);
        ep.mclt = 3_600;
        let all_max = LeaseTimes {
            lease_expiration: Some(UnixTime(u32::MAX)),
            sent_pet: Some(UnixTime(u32::MAX)),
            acked_pet: Some(UnixTime(u32::MAX)),
            received_pet: Some(UnixTime(u32::MAX)),
        };
        let g = lease_time(&ep, &request(near, u32::MAX - 1, all_max));
        assert_eq!(g.lease_expiration, UnixTime(u32::MAX));
        assert_eq!(g.cap, Some(UnixTime(u32::MAX)));
    }
}

#[test]
fn lease_times_of_a_binding() {
    let mut b = LocalBinding::new(Active);
    b.lease_expiration = Some(UnixTime(5));
    b.sent_pet = Some(UnixTime(6));
    b.acked_pet = Some(UnixTime(7));
    b.received_pet = Some(UnixTime(8));
    let t = LeaseTimes::of(&b);
    assert_eq!(t.acked_pet, Some(UnixTime(7)));
    assert_eq!(t.received_pet, Some(UnixTime(8)));
    for s in [Free, Backup, Reset, Abandoned] {
        b.status = s;
        assert_eq!(LeaseTimes::of(&b), LeaseTimes::NONE, "{s}");
    }
}

fn time_strategy() -> impl Strategy<Value = Option<UnixTime>> {
    prop_oneof![
        Just(None),
        any::<u32>().prop_map(|t| Some(UnixTime(t))),
        (1_600_000_000u32..1_600_400_000).prop_map(|t| Some(UnixTime(t))),
        Just(Some(UnixTime(u32::MAX))),
    ]
}

fn state_strategy() -> impl Strategy<Value = ServerState> {
    prop::sample::select(STATES.to_vec())
}

fn max_time(times: &[Option<UnixTime>], now: UnixTime) -> u64 {
    times
        .iter()
        .flatten()
        .fold(u64::from(now.0), |m, t| m.max(u64::from(t.0)))
}

proptest! {
    /// §5.2.1 / §7.1.5: lease end ≤ MCLT + max(now, acked PET, received PET). Holds for ISC in
    /// every state and for the draft everywhere except where the draft itself allows more:
    /// COMMUNICATIONS-INTERRUPTED / RESOLUTION-INTERRUPTED / CONFLICT-DONE also count the
    /// recorded lease expiry (§9.9.2), and PARTNER-DOWN may drop the limit (§9.4.2).
    #[test]
    fn mclt_invariant(
        dialect in prop::sample::select(vec![Dialect::Draft, Dialect::Isc]),
        state in state_strategy(),
        mclt in prop_oneof![Just(0u32), 1u32..100_000, any::<u32>()],
        now in prop_oneof![1_600_000_000u32..1_600_200_000, any::<u32>()],
        desired in prop_oneof![1u32..1_000_000, Just(INFINITE), any::<u32>()],
        lease_expiration in time_strategy(),
        sent_pet in time_strategy(),
        acked_pet in time_strategy(),
        received_pet in time_strategy(),
        unrestricted in any::<bool>(),
    ) {
        let mut ep = endpoint(dialect, Role::Primary, state);
        ep.mclt = mclt;
        let now = UnixTime(now);
        let times = LeaseTimes { lease_expiration, sent_pet, acked_pet, received_pet };
        let partner_down = if unrestricted {
            PartnerDownLeases::Unrestricted
        } else {
            PartnerDownLeases::KeepMclt
        };
        let g = lease_time(&ep, &LeaseRequest { now, desired, times, partner_down });

        prop_assert!(g.granted <= desired);
        prop_assert!(g.potential_expiration >= g.lease_expiration, "§9.8.3: PET ≥ LET");
        let end = u64::from(now.0) + u64::from(g.granted);
        prop_assert_eq!(u64::from(g.lease_expiration.0), end.min(u64::from(u32::MAX)));

        let pets = [acked_pet, received_pet];
        let invariant = (u64::from(mclt) + max_time(&pets, now)).min(u64::from(u32::MAX));
        let draft_wider = matches!(
            state,
            CommunicationsInterrupted | ResolutionInterrupted | ConflictDone
        );
        match dialect {
            Dialect::Isc => prop_assert!(u64::from(g.lease_expiration.0) <= invariant),
            Dialect::Draft if state == PartnerDown && unrestricted => {
                prop_assert_eq!(g.granted, desired);
            }
            Dialect::Draft if draft_wider => {
                let with_let = [acked_pet, received_pet, lease_expiration];
                let cap = (u64::from(mclt) + max_time(&with_let, now)).min(u64::from(u32::MAX));
                prop_assert!(u64::from(g.lease_expiration.0) <= cap);
            }
            Dialect::Draft => prop_assert!(u64::from(g.lease_expiration.0) <= invariant),
        }
        // the limit reported is the one applied
        if let Some(cap) = g.cap {
            prop_assert!(g.lease_expiration <= cap);
            if g.granted < desired {
                prop_assert_eq!(g.lease_expiration, cap);
            }
        }
    }
}

fn status_strategy() -> impl Strategy<Value = BindingStatus> {
    prop::sample::select(vec![
        Free, Active, Expired, Released, Abandoned, Reset, Backup,
    ])
}

prop_compose! {
    /// A record as a store may hold it, for one of three clients (or none).
    fn binding_strategy()(
        status in status_strategy(),
        client in 0u8..4,
        lease_expiration in time_strategy(),
        start_time_of_state in time_strategy(),
        sent_pet in time_strategy(),
        acked_pet in time_strategy(),
        received_pet in time_strategy(),
        partner_status in proptest::option::of(status_strategy()),
        reserved in prop::bool::weighted(0.1),
    ) -> LocalBinding {
        let client = match client {
            0 => ClientIdentity::NONE,
            c => ClientIdentity::new(Some(&[c][..]), None),
        };
        LocalBinding {
            status,
            client,
            lease_expiration,
            start_time_of_state,
            sent_pet,
            acked_pet,
            received_pet,
            partner_status,
            reserved,
            ..LocalBinding::new(status)
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4_000))]

    /// `may_offer_status` is a necessary condition of `may_allocate_to` for another client: a
    /// store that skips the statuses it rules out loses no address the rule would give.
    #[test]
    fn may_offer_status_never_hides_an_allowed_address(
        dialect in prop::sample::select(vec![Dialect::Draft, Dialect::Isc]),
        role in prop::sample::select(vec![Role::Primary, Role::Secondary]),
        state in state_strategy(),
        since in prop_oneof![1_600_000_000u32..1_600_400_000, any::<u32>()],
        mclt in prop_oneof![Just(0u32), 1u32..100_000],
        now in prop_oneof![1_600_000_000u32..1_600_400_000, any::<u32>()],
        binding in binding_strategy(),
    ) {
        let mut ep = endpoint(dialect, role, state);
        ep.state_since = UnixTime(since);
        ep.mclt = mclt;
        let now = UnixTime(now);
        if may_allocate_to(&ep, &binding, false, now).is_ok() {
            prop_assert!(!binding.reserved);
            prop_assert!(may_offer_status(&ep, as_of(&binding, now).status));
        }
    }

    /// `choose_address` picks the least (rank, address) allowed: the order of the pool does
    /// not change its choice.
    #[test]
    fn choose_address_does_not_depend_on_the_order_of_the_pool(
        dialect in prop::sample::select(vec![Dialect::Draft, Dialect::Isc]),
        state in prop::sample::select(vec![Normal, CommunicationsInterrupted, PartnerDown]),
        records in prop::collection::vec(binding_strategy(), 0..24),
        client in 1u8..4,
        requested in proptest::option::of(0u8..24),
        now in 1_600_000_000u32..1_600_400_000,
        seed in any::<u64>(),
    ) {
        let ep = endpoint(dialect, Role::Primary, state);
        let me = ClientIdentity::new(Some(&[client][..]), None);
        let requested = requested.map(|i| Ipv4Addr::new(192, 0, 2, i));
        let now = UnixTime(now);
        let mut pool: Vec<(Ipv4Addr, LocalBinding)> = records
            .into_iter()
            .enumerate()
            .map(|(i, b)| (Ipv4Addr::new(192, 0, 2, u8::try_from(i).unwrap()), b))
            .collect();
        let in_order = choose_address(&ep, pool.iter().copied(), &me, requested, now);
        // A deterministic shuffle from the seed.
        let mut x = seed | 1;
        for i in (1..pool.len()).rev() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            pool.swap(i, usize::try_from(x % (i as u64 + 1)).unwrap());
        }
        let shuffled = choose_address(&ep, pool.iter().copied(), &me, requested, now);
        prop_assert_eq!(in_order, shuffled);
    }
}

// ---------------------------------------------------------------------------------------------
// pool balancing
// ---------------------------------------------------------------------------------------------

/// Walks a queue of candidates with ISC's two passes; returns the indexes moved.
fn walk(
    plan_cursor: &mut failover_fsm::policy::BalanceCursor,
    queue: &[BalanceCandidate],
) -> Vec<usize> {
    let mut moved = Vec::new();
    loop {
        for (i, c) in queue.iter().enumerate() {
            if moved.contains(&i) {
                continue;
            }
            match plan_cursor.consider(*c) {
                BalanceStep::Move => moved.push(i),
                BalanceStep::Keep => {}
                BalanceStep::Stop => return moved,
            }
        }
        if !plan_cursor.end_of_queue() {
            return moved;
        }
    }
}

const UNUSED: BalanceCandidate = BalanceCandidate {
    used: false,
    partner_affine: false,
};

#[test]
fn isc_log_total_16_free_16_backup_0() {
    // "balancing pool ... total 16  free 16  backup 0  lts 8  max-own (+/-)2"
    let cfg = BalanceConfig::default();
    let counts = PoolCounts {
        free: 16,
        backup: 0,
    };
    let plan = plan_balance(Role::Primary, Normal, counts, &cfg, BalanceTrigger::Timer).unwrap();
    assert_eq!(plan.lts, 8);
    assert_eq!(plan.hold, 2);
    assert_eq!(plan.threshold, 2);
    assert_eq!(plan.panic, -4);
    assert_eq!(plan.give_as, Backup);
    assert_eq!(plan.to_move(), 8);
    assert!(!plan.send_poolreq);
    assert!(plan.imbalanced_after(0));
    assert!(!plan.imbalanced_after(8));
    // walking 16 never-used, non-affine leases moves exactly 8 (all in the second pass)
    let mut cursor = plan.cursor();
    let moved = walk(&mut cursor, &[UNUSED; 16]);
    assert_eq!(moved, (0..8).collect::<Vec<_>>());
    assert_eq!((cursor.moved(), cursor.lts()), (8, 0));
    assert!(cursor.is_done());
    assert_eq!(cursor.consider(UNUSED), BalanceStep::Stop);
    // previously used leases: ISC keeps `hold` extra
    let used = BalanceCandidate {
        used: true,
        partner_affine: false,
    };
    let mut cursor = plan.cursor();
    assert_eq!(walk(&mut cursor, &[used; 16]).len(), 6);
    assert_eq!(plan.min_used(), 6);
    // leases whose last client hashes to the secondary go first, up to lts = -hold
    let affine = BalanceCandidate {
        used: true,
        partner_affine: true,
    };
    let mut cursor = plan.cursor();
    assert_eq!(walk(&mut cursor, &[affine; 16]).len(), 10);
    assert_eq!(plan.max_affine(), 10);
    // mixed: affine ones in pass 1 wherever they are, then the oldest in pass 2
    let mut queue = [UNUSED; 16];
    queue[5] = affine;
    queue[9] = affine;
    let mut cursor = plan.cursor();
    assert_eq!(walk(&mut cursor, &queue), vec![5, 9, 0, 1, 2, 3, 4, 6]);
    // the secondary side of the same pool is short: it gives nothing
    let sec = plan_balance(Role::Secondary, Normal, counts, &cfg, BalanceTrigger::Timer).unwrap();
    assert_eq!((sec.lts, sec.give_as, sec.to_move()), (-8, Free, 0));
    assert!(sec.send_poolreq, "-8 < panic -4");
}

#[test]
fn drained_secondary_sends_poolreq_on_timer_only() {
    let cfg = BalanceConfig::default();
    let counts = PoolCounts {
        free: 100,
        backup: 0,
    };
    let timer = plan_balance(Role::Secondary, Normal, counts, &cfg, BalanceTrigger::Timer).unwrap();
    assert_eq!((timer.lts, timer.threshold, timer.panic), (-50, 15, -30));
    assert!(timer.send_poolreq);
    for trigger in [BalanceTrigger::PoolReq, BalanceTrigger::Manual] {
        let p = plan_balance(Role::Secondary, Normal, counts, &cfg, trigger).unwrap();
        assert!(!p.send_poolreq, "never a POOLREQ in answer to a POOLREQ");
    }
    // the primary of that pool gives 50 (never-used) on the POOLREQ
    let prim = plan_balance(Role::Primary, Normal, counts, &cfg, BalanceTrigger::PoolReq).unwrap();
    assert_eq!(prim.to_move(), 50);
    let mut cursor = prim.cursor();
    assert_eq!(walk(&mut cursor, &[UNUSED; 100]).len(), 50);
    // the panic threshold: -2 x thresh, or -1 when that rounds to 0
    let sec = |free| {
        plan_balance(
            Role::Secondary,
            Normal,
            PoolCounts { free, backup: 0 },
            &cfg,
            BalanceTrigger::Timer,
        )
        .unwrap()
    };
    assert_eq!(
        (sec(2).threshold, sec(2).panic, sec(2).send_poolreq),
        (0, -1, false)
    );
    assert_eq!(
        (sec(4).lts, sec(4).panic, sec(4).send_poolreq),
        (-2, -2, false)
    );
    assert_eq!(
        (sec(6).lts, sec(6).panic, sec(6).send_poolreq),
        (-3, -2, true)
    );
    // only in NORMAL
    assert_eq!(
        plan_balance(
            Role::Primary,
            CommunicationsInterrupted,
            counts,
            &cfg,
            BalanceTrigger::Timer
        ),
        Err(BalanceSkipped::NotNormal(CommunicationsInterrupted))
    );
}

#[test]
fn mac_affinity_hoarding_check() {
    let cfg = BalanceConfig::default();
    // (free - backup) / 2 > -hold
    assert!(secondary_not_hoarding(
        PoolCounts {
            free: 50,
            backup: 50
        },
        &cfg
    ));
    assert!(secondary_not_hoarding(
        PoolCounts {
            free: 45,
            backup: 55
        },
        &cfg
    )); // -5 > -10
    assert!(!secondary_not_hoarding(
        PoolCounts {
            free: 40,
            backup: 60
        },
        &cfg
    )); // -10
    assert!(!secondary_not_hoarding(
        PoolCounts { free: 0, backup: 0 },
        &cfg
    )); // 0 > 0 fails
}

#[test]
fn rebalance_schedule() {
    let cfg = BalanceConfig::default();
    let now = UnixTime(100_000);
    // FREE oldest expired 10000 s ago -> 1500, doubled on the primary -> 3000;
    // BACKUP oldest expired 1000 s ago -> 150: the earlier wins
    let at = next_rebalance(
        Role::Primary,
        now,
        Some(UnixTime(90_000)),
        Some(UnixTime(99_000)),
        None,
        None,
        &cfg,
    );
    assert_eq!(at, Reschedule::At(UnixTime(100_150)));
    // on the secondary the BACKUP estimate doubles (300) instead
    let at = next_rebalance(
        Role::Secondary,
        now,
        Some(UnixTime(90_000)),
        Some(UnixTime(99_000)),
        None,
        None,
        &cfg,
    );
    assert_eq!(at, Reschedule::At(UnixTime(100_300)));
    // not earlier than last run + min-balance
    let at = next_rebalance(
        Role::Primary,
        now,
        Some(UnixTime(90_000)),
        Some(UnixTime(99_000)),
        Some(UnixTime(100_100)),
        None,
        &cfg,
    );
    assert_eq!(at, Reschedule::At(UnixTime(100_160)));
    // a run already scheduled earlier is kept; a later one is moved earlier
    let keep = |scheduled| {
        next_rebalance(
            Role::Primary,
            now,
            Some(UnixTime(90_000)),
            Some(UnixTime(99_000)),
            None,
            Some(scheduled),
            &cfg,
        )
    };
    assert_eq!(keep(UnixTime(100_150)), Reschedule::Keep);
    assert_eq!(keep(UnixTime(100_100)), Reschedule::Keep);
    assert_eq!(keep(UnixTime(200_000)), Reschedule::At(UnixTime(100_150)));
    // never-used oldest leases (ends 0) push the estimate to max-balance
    let at = next_rebalance(
        Role::Primary,
        now,
        Some(UnixTime(0)),
        Some(UnixTime(0)),
        None,
        None,
        &cfg,
    );
    assert_eq!(at, Reschedule::At(UnixTime(103_600)));
    // an empty queue (or one whose oldest lease has not ended) means "now"
    let at = next_rebalance(
        Role::Primary,
        now,
        None,
        Some(UnixTime(0)),
        None,
        None,
        &cfg,
    );
    assert_eq!(at, Reschedule::At(now));
    let at = next_rebalance(
        Role::Primary,
        now,
        Some(UnixTime(200_000)),
        Some(UnixTime(0)),
        Some(UnixTime(99_990)),
        None,
        &cfg,
    );
    assert_eq!(at, Reschedule::At(UnixTime(100_050)));
}
