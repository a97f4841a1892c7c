//! RFC 8156 resource ownership and reallocation: addresses by the last bit (§4.2.1.1), prefixes
//! by status (§4.2.2), who allocates in which state (§8.x.1), and the waits of §4.2.2.1 and
//! §8.4.1 — row by row, plus properties over every input.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

use core::net::Ipv6Addr;

use failover_fsm::v6::allocate::{Endpoint, Refusal, Request, allocates, may_allocate, renews};
use failover_fsm::v6::owner::{Kind, address_owner, available_to, free_status, freed_status};
use failover_fsm::v6::{LocalLease, TIME_SKEW_LIMIT};
use failover_fsm::{Role, UnixTime};
use failover_proto::v6::{BindingStatus, ServerState};
use proptest::prelude::*;

use BindingStatus::{Abandoned, Active, Expired, Free, FreeBackup, PendingFree, Released, Reset};
use Role::{Primary, Secondary};
use ServerState::{
    CommunicationsInterrupted as CommInt, ConflictDone, Normal, PartnerDown, PotentialConflict,
    Recover, RecoverDone, RecoverWait, ResolutionInterrupted, Startup,
};

const MCLT: u32 = 3600;
/// PARTNER-DOWN entry.
const E: UnixTime = UnixTime(1_700_000_000);
const ODD: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x11); // primary's
const EVEN: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10); // secondary's

const STATES: [ServerState; 10] = [
    Startup,
    Normal,
    CommInt,
    PartnerDown,
    PotentialConflict,
    Recover,
    RecoverWait,
    RecoverDone,
    ResolutionInterrupted,
    ConflictDone,
];

#[test]
fn the_last_bit_decides() {
    assert_eq!(address_owner(ODD), Primary);
    assert_eq!(address_owner(EVEN), Secondary);
    assert_eq!(address_owner(Ipv6Addr::UNSPECIFIED), Secondary);
    assert_eq!(address_owner(Ipv6Addr::from(u128::MAX)), Primary);
    // Only bit 127: bit 126 set changes nothing.
    assert_eq!(address_owner(Ipv6Addr::from(2u128)), Secondary);
    assert_eq!(free_status(Primary), Free);
    assert_eq!(free_status(Secondary), FreeBackup);
    assert_eq!(freed_status(Kind::Address(ODD)), Free);
    assert_eq!(freed_status(Kind::Address(EVEN)), FreeBackup);
    assert_eq!(freed_status(Kind::Prefix), Free);
}

#[test]
fn available_to_table() {
    let rows: [(Kind, BindingStatus, Option<Role>); 12] = [
        // Addresses: the bit, whatever FREE / FREE-BACKUP says (§4.2.1.1).
        (Kind::Address(ODD), Free, Some(Primary)),
        (Kind::Address(ODD), FreeBackup, Some(Primary)),
        (Kind::Address(EVEN), Free, Some(Secondary)),
        (Kind::Address(EVEN), PendingFree, Some(Secondary)),
        // Prefixes: the status (§4.2.2).
        (Kind::Prefix, Free, Some(Primary)),
        (Kind::Prefix, PendingFree, Some(Primary)),
        (Kind::Prefix, FreeBackup, Some(Secondary)),
        // Not available.
        (Kind::Prefix, Active, None),
        (Kind::Address(ODD), Expired, None),
        (Kind::Address(ODD), Released, None),
        (Kind::Address(ODD), Abandoned, None),
        (Kind::Prefix, Reset, None),
    ];
    for (kind, status, want) in rows {
        assert_eq!(available_to(kind, status), want, "{kind:?} {status}");
    }
}

#[test]
fn serving_states() {
    // (state, primary allocates, secondary allocates, primary renews, secondary renews)
    let rows = [
        (Startup, false, false, false, false),
        (Normal, true, false, true, true),
        (CommInt, true, true, true, true),
        (PartnerDown, true, true, true, true),
        (PotentialConflict, false, false, false, false),
        (Recover, false, false, false, false),
        (RecoverWait, false, false, false, false),
        (RecoverDone, false, false, true, true),
        (ResolutionInterrupted, true, true, true, true),
        (ConflictDone, true, false, true, false),
    ];
    assert_eq!(rows.len(), STATES.len());
    for (state, pa, sa, pr, sr) in rows {
        assert_eq!(allocates(Primary, state), pa, "{state} primary allocates");
        assert_eq!(
            allocates(Secondary, state),
            sa,
            "{state} secondary allocates"
        );
        assert_eq!(renews(Primary, state), pr, "{state} primary renews");
        assert_eq!(renews(Secondary, state), sr, "{state} secondary renews");
    }
}

/// One row: who we are, the lease, what is asked, when, and the answer.
struct Row {
    role: Role,
    state: ServerState,
    lease: LocalLease,
    kind: Kind,
    last_client: bool,
    own_pool_empty: bool,
    now: UnixTime,
    want: Result<(), Refusal>,
}

fn row(role: Role, state: ServerState, status: BindingStatus, kind: Kind) -> Row {
    Row {
        role,
        state,
        lease: LocalLease::new(status),
        kind,
        last_client: false,
        own_pool_empty: false,
        now: E.plus(10),
        want: Ok(()),
    }
}

impl Row {
    fn last(mut self) -> Self {
        self.last_client = true;
        self
    }
    fn empty(mut self) -> Self {
        self.own_pool_empty = true;
        self
    }
    fn at(mut self, now: UnixTime) -> Self {
        self.now = now;
        self
    }
    fn with(mut self, f: impl FnOnce(&mut LocalLease)) -> Self {
        f(&mut self.lease);
        self
    }
    fn want(mut self, want: Result<(), Refusal>) -> Self {
        self.want = want;
        self
    }
    fn check(&self, n: usize) {
        let ep = Endpoint {
            role: self.role,
            state: self.state,
            state_since: E,
            mclt: MCLT,
        };
        let request = Request {
            resource: self.kind,
            last_client: self.last_client,
            own_pool_empty: self.own_pool_empty,
        };
        assert_eq!(
            may_allocate(&ep, &self.lease, request, self.now),
            self.want,
            "row {n}: {:?} {} {} {:?} last={} now={:?}",
            self.role,
            self.state,
            self.lease.status,
            self.kind,
            self.last_client,
            self.now
        );
    }
}

/// The lease times of the PARTNER-DOWN reuse rows.
fn times(l: &mut LocalLease) {
    l.start_time_of_state = Some(E.minus(100));
    l.partner_lifetime = Some(E.plus(200));
    l.expiration_time = Some(E.plus(300));
    l.acked_partner_lifetime = Some(E.plus(500));
    l.update_sent = true;
}

#[test]
fn allocation_rows() {
    use Refusal::*;
    let a = Kind::Address;
    let p = Kind::Prefix;
    let entry_wait = E.plus(MCLT + TIME_SKEW_LIMIT);
    let reuse_wait = E.plus(500 + MCLT + TIME_SKEW_LIMIT);
    let rows = [
        // NORMAL: the primary from its own half; the secondary only renews (§8.8.1).
        row(Primary, Normal, Free, a(ODD)),
        row(Primary, Normal, FreeBackup, a(ODD)), // the bit, not the status
        row(Primary, Normal, Free, a(EVEN)).want(Err(PartnersAddress)),
        row(Secondary, Normal, FreeBackup, a(EVEN)).want(Err(NotServing(Normal))),
        row(Secondary, Normal, Active, a(ODD)).last(),
        row(Secondary, Normal, Active, a(ODD)).want(Err(NotServing(Normal))),
        row(Primary, Normal, Active, a(ODD)).want(Err(Unavailable(Active))),
        row(Primary, Normal, Abandoned, a(ODD)).want(Err(Unavailable(Abandoned))),
        row(Primary, Normal, PendingFree, a(ODD)),
        // Prefixes by status (§4.2.2).
        row(Primary, Normal, Free, p),
        row(Primary, Normal, FreeBackup, p).want(Err(PartnersPrefix)),
        row(Secondary, CommInt, FreeBackup, p),
        row(Secondary, CommInt, Free, p).want(Err(PartnersPrefix)),
        row(Secondary, CommInt, PendingFree, p).want(Err(PartnersPrefix)),
        // COMMUNICATIONS-INTERRUPTED: own half, renewals of anybody's (§8.9.1, §4.2.1).
        row(Secondary, CommInt, Free, a(EVEN)),
        row(Secondary, CommInt, Free, a(ODD)).want(Err(PartnersAddress)),
        row(Secondary, CommInt, Active, a(ODD)).last(),
        // EXPIRED / RELEASED back to their client until a BNDUPD said so (§4.2.2.1).
        row(Primary, CommInt, Expired, a(EVEN)).last(),
        row(Primary, CommInt, Released, p).last(),
        row(Primary, CommInt, Expired, a(ODD))
            .last()
            .with(|l| l.update_sent = true)
            .want(Err(AwaitingAck(Expired))),
        row(Primary, Normal, Released, a(ODD)).want(Err(AwaitingAck(Released))),
        row(Primary, Normal, Reset, a(ODD))
            .last()
            .want(Err(AwaitingAck(Reset))),
        // The secondary's own EXPIRED in NORMAL: renew responsive only.
        row(Secondary, Normal, Expired, a(EVEN)).last(),
        row(Secondary, Normal, Expired, a(EVEN)).want(Err(NotServing(Normal))),
        // PARTNER-DOWN: own pool at once; the partner's prefixes after our own and MCLT.
        row(Primary, PartnerDown, Free, p),
        row(Primary, PartnerDown, FreeBackup, p).want(Err(OwnPoolFirst)),
        row(Primary, PartnerDown, FreeBackup, p)
            .empty()
            .want(Err(WaitUntil(entry_wait))),
        row(Primary, PartnerDown, FreeBackup, p)
            .empty()
            .at(entry_wait),
        row(Secondary, PartnerDown, Free, p)
            .empty()
            .at(entry_wait.minus(1))
            .want(Err(WaitUntil(entry_wait))),
        // ... never the partner's addresses (§4.2.1 MUST NOT; §8.4.1's SHOULD NOT).
        row(Primary, PartnerDown, FreeBackup, a(EVEN))
            .empty()
            .at(E.plus(99_999))
            .want(Err(PartnersAddress)),
        // Leases not available at entry: MCLT after the latest of their times (§4.2.2.1).
        row(Primary, PartnerDown, Expired, a(ODD))
            .with(times)
            .want(Err(WaitUntil(reuse_wait))),
        row(Primary, PartnerDown, Expired, a(ODD))
            .with(times)
            .at(reuse_wait),
        row(Primary, PartnerDown, Released, a(ODD))
            .last()
            .with(times)
            .at(reuse_wait.minus(1))
            .want(Err(WaitUntil(reuse_wait))),
        row(Primary, PartnerDown, Reset, p)
            .with(times)
            .at(reuse_wait),
        // ... the entry counts when the lease's times are earlier.
        row(Primary, PartnerDown, Expired, a(ODD))
            .with(|l| l.update_sent = true)
            .want(Err(WaitUntil(entry_wait))),
        // ... then to its freed owner: the partner's address never, a prefix the primary's.
        row(Primary, PartnerDown, Expired, a(EVEN))
            .with(times)
            .at(reuse_wait)
            .want(Err(PartnersAddress)),
        row(Secondary, PartnerDown, Expired, p)
            .with(times)
            .at(reuse_wait)
            .want(Err(OwnPoolFirst)),
        row(Secondary, PartnerDown, Expired, p)
            .with(times)
            .at(reuse_wait)
            .empty(),
        // Freed less than 5 s ago: the partner would refuse the new lease as not later
        // (§7.5.1, §7.5.4); from 6 s on, given.
        row(Primary, Normal, Free, a(ODD))
            .with(|l| l.start_time_of_state = Some(E.plus(5)))
            .want(Err(WaitUntil(E.plus(5 + TIME_SKEW_LIMIT + 1)))),
        row(Primary, Normal, Free, a(ODD))
            .last()
            .with(|l| l.start_time_of_state = Some(E.plus(5)))
            .want(Err(WaitUntil(E.plus(5 + TIME_SKEW_LIMIT + 1)))),
        row(Primary, Normal, Free, a(ODD)).with(|l| l.start_time_of_state = Some(E.plus(4))),
        // ABANDONED never (an operator RESETs it).
        row(Primary, PartnerDown, Abandoned, a(ODD))
            .at(E.plus(99_999))
            .want(Err(Unavailable(Abandoned))),
        // RECOVER-DONE renews only (§8.7.1); RESOLUTION-INTERRUPTED and CONFLICT-DONE serve.
        row(Primary, RecoverDone, Active, a(EVEN)).last(),
        row(Primary, RecoverDone, Free, a(ODD)).want(Err(NotServing(RecoverDone))),
        row(Secondary, ResolutionInterrupted, FreeBackup, a(EVEN)),
        row(Primary, ConflictDone, Free, a(ODD)),
        row(Secondary, ConflictDone, FreeBackup, a(EVEN)).want(Err(NotServing(ConflictDone))),
        // Unresponsive states (§8.3.1, §8.5.1, §8.6.1, §8.10.1).
        row(Primary, Startup, Active, a(ODD))
            .last()
            .want(Err(NotServing(Startup))),
        row(Primary, Recover, Free, a(ODD)).want(Err(NotServing(Recover))),
        row(Primary, RecoverWait, Active, a(ODD))
            .last()
            .want(Err(NotServing(RecoverWait))),
        row(Primary, PotentialConflict, Free, a(ODD)).want(Err(NotServing(PotentialConflict))),
    ];
    for (n, r) in rows.iter().enumerate() {
        r.check(n);
    }
}

fn status() -> impl Strategy<Value = BindingStatus> {
    (0u8..=9).prop_map(BindingStatus::from)
}

fn state() -> impl Strategy<Value = ServerState> {
    (0u8..=11).prop_map(ServerState::from)
}

fn time() -> impl Strategy<Value = Option<UnixTime>> {
    proptest::option::of((E.0 - 10_000..E.0 + 10_000).prop_map(UnixTime))
}

proptest! {
    #[test]
    fn allocation_properties(
        primary in any::<bool>(),
        state in state(),
        status in status(),
        bits in any::<u128>(),
        prefix in any::<bool>(),
        last_client in any::<bool>(),
        own_pool_empty in any::<bool>(),
        update_sent in any::<bool>(),
        stos in time(), apl in time(), pl in time(), exp in time(),
        now in (E.0 - 100..E.0 + 20_000).prop_map(UnixTime),
    ) {
        let role = if primary { Primary } else { Secondary };
        let ep = Endpoint { role, state, state_since: E, mclt: MCLT };
        let lease = LocalLease {
            start_time_of_state: stos,
            acked_partner_lifetime: apl,
            partner_lifetime: pl,
            expiration_time: exp,
            update_sent,
            ..LocalLease::new(status)
        };
        let kind = if prefix { Kind::Prefix } else { Kind::Address(Ipv6Addr::from(bits)) };
        let request = Request { resource: kind, last_client, own_pool_empty };
        let got = may_allocate(&ep, &lease, request, now);
        if got.is_ok() {
            // Only where the state serves.
            prop_assert!(renews(role, state));
            // ABANDONED, unknown: never.
            prop_assert!(!matches!(status, Abandoned | BindingStatus::Unknown(_)));
            // Another client's ACTIVE: never.
            prop_assert!(status != Active || last_client);
            let own_again = last_client && matches!(status, Active | Expired | Released);
            if !own_again {
                prop_assert!(allocates(role, state));
                // The partner's address: never, to a new client.
                if let Kind::Address(a) = kind {
                    prop_assert_eq!(address_owner(a), role);
                }
            }
            // Outside PARTNER-DOWN nothing unacked goes to another client.
            if state != PartnerDown && matches!(status, Expired | Released | Reset) {
                prop_assert!(last_client && !update_sent && status != Reset);
            }
            // In PARTNER-DOWN the partner's prefix only after entry + MCLT and our own.
            if prefix && state == PartnerDown
                && available_to(kind, status).is_some_and(|o| o != role)
            {
                prop_assert!(own_pool_empty && now.0 >= E.0 + MCLT + TIME_SKEW_LIMIT);
            }
        }
        let freed_wait = |s: Option<UnixTime>| s.map(|s| s.plus(TIME_SKEW_LIMIT + 1));
        if got.is_ok() && matches!(status, Free | FreeBackup | PendingFree) {
            // Not within 5 s of the partner's last word on it (§7.5.1).
            prop_assert!(freed_wait(stos).is_none_or(|w| now >= w));
        }
        if let Err(Refusal::WaitUntil(t)) = got {
            prop_assert!(t > now);
            // PARTNER-DOWN's waits, or a lease freed less than 5 s ago.
            prop_assert!(
                state == PartnerDown
                    || (matches!(status, Free | FreeBackup | PendingFree)
                        && freed_wait(stos) == Some(t))
            );
            // Waiting ends: at `t` the answer is no longer a wait for that time.
            let later = may_allocate(&ep, &lease, request, t);
            prop_assert_ne!(later, Err(Refusal::WaitUntil(t)));
        }
    }
}
