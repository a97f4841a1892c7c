//! The DHCP server's side of the rules: which address to offer, what to answer a DHCPREQUEST,
//! and the bindings a grant, a release, a decline and an expiry produce.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, missing_docs)]

use core::net::Ipv4Addr;

use failover_fsm::accept::LocalBinding;
use failover_fsm::policy::{
    AllocRefusal, Endpoint, LeaseRequest, LeaseTimes, PartnerDownLeases, RequestAnswer, as_of,
    choose_address, expires_leases, judge_request, lease_time,
};
use failover_fsm::record::{LeaseClient, LeaseRecord};
use failover_fsm::{BindingStatus, Dialect, Role, ServerState, UnixTime};

const NOW: UnixTime = UnixTime(1_700_000_000);
const MAC_A: [u8; 6] = [2, 0, 0, 0, 0, 0xa];
const MAC_B: [u8; 6] = [2, 0, 0, 0, 0, 0xb];

fn client(mac: &[u8; 6]) -> LeaseClient<'_> {
    LeaseClient {
        client_identifier: None,
        htype: 1,
        chaddr: mac,
    }
}

fn ep(role: Role, state: ServerState) -> Endpoint {
    Endpoint {
        dialect: Dialect::Isc,
        role,
        state,
        state_since: UnixTime(NOW.0 - 10_000),
        partner_state: None,
        mclt: 3600,
        lease_mclt: 3600,
    }
}

fn addr(i: u8) -> Ipv4Addr {
    Ipv4Addr::new(192, 0, 2, i)
}

/// A record of `addr(i)` holding `mac`'s lease until `until`, acknowledged by the partner.
fn leased(i: u8, mac: &[u8; 6], until: UnixTime) -> LeaseRecord {
    let mut r = LeaseRecord::fresh(addr(i));
    let grant = lease_time(
        &ep(Role::Primary, ServerState::Normal),
        &LeaseRequest {
            now: NOW,
            desired: 3600,
            times: LeaseTimes::NONE,
            partner_down: PartnerDownLeases::KeepMclt,
        },
    );
    let mut b = r.granted(&client(mac), &grant, NOW).unwrap();
    b.lease_expiration_time = Some(until);
    r.apply_local(b, true);
    r.local.partner_status = Some(BindingStatus::Active);
    r
}

fn pool(records: &[LeaseRecord]) -> Vec<(Ipv4Addr, LocalBinding)> {
    records.iter().map(|r| (r.data.ip(), r.local)).collect()
}

#[test]
fn choose_address_prefers_the_clients_own_then_the_requested_then_the_first_allowed() {
    let a = client(&MAC_A).identity();
    let b = client(&MAC_B).identity();
    let p = ep(Role::Primary, ServerState::Normal);
    let records = vec![
        LeaseRecord::fresh(addr(1)),
        LeaseRecord::fresh(addr(2)),
        leased(3, &MAC_A, NOW.plus(100)),
    ];
    // The client's running lease first, whatever it asks for.
    assert_eq!(
        choose_address(&p, pool(&records), &a, Some(addr(2)), NOW),
        Some(addr(3))
    );
    // Another client: the address it asks for, else the first FREE; never A's lease.
    assert_eq!(
        choose_address(&p, pool(&records), &b, Some(addr(2)), NOW),
        Some(addr(2))
    );
    assert_eq!(
        choose_address(&p, pool(&records), &b, Some(addr(3)), NOW),
        Some(addr(1))
    );
    // The secondary's own pool is BACKUP: FREE addresses are the primary's (§5.4).
    let s = ep(Role::Secondary, ServerState::Normal);
    assert_eq!(choose_address(&s, pool(&records), &b, None, NOW), None);
    let mut backup = LeaseRecord::fresh(addr(9));
    let mut d = backup.data.clone();
    d.status = BindingStatus::Backup;
    backup.apply_local(d, false);
    let with_backup = [records.clone(), vec![backup]].concat();
    assert_eq!(
        choose_address(&s, pool(&with_backup), &b, Some(addr(1)), NOW),
        Some(addr(9))
    );
    // Nothing in a state that serves nobody.
    let startup = ep(Role::Primary, ServerState::Startup);
    assert_eq!(
        choose_address(&startup, pool(&records), &b, None, NOW),
        None
    );
}

#[test]
fn judge_request_acks_the_holder_naks_others_and_is_silent_on_the_partners_pool() {
    let a = client(&MAC_A).identity();
    let b = client(&MAC_B).identity();
    let s = ep(Role::Secondary, ServerState::CommunicationsInterrupted);
    let lease = leased(3, &MAC_A, NOW.plus(100));
    // The holder rebinding to the partner keeps its address (§5.5).
    assert_eq!(
        judge_request(&s, Some(&lease.local), &a, NOW),
        RequestAnswer::Ack
    );
    assert_eq!(
        judge_request(&s, Some(&lease.local), &b, NOW),
        RequestAnswer::Nak
    );
    assert_eq!(judge_request(&s, None, &a, NOW), RequestAnswer::Nak);
    // A FREE address is the primary's: the secondary may not give it before PARTNER-DOWN.
    let free = LeaseRecord::fresh(addr(1));
    assert_eq!(
        judge_request(&s, Some(&free.local), &b, NOW),
        RequestAnswer::Silent(AllocRefusal::PartnersPool(BindingStatus::Free))
    );
    // A lease that ended is EXPIRED as of now: not another client's before the partner
    // acknowledged the expiry.
    let ended = leased(4, &MAC_A, UnixTime(NOW.0 - 1));
    assert_eq!(as_of(&ended.local, NOW).status, BindingStatus::Expired);
    assert!(matches!(
        judge_request(
            &ep(Role::Primary, ServerState::Normal),
            Some(&ended.local),
            &b,
            NOW
        ),
        RequestAnswer::Silent(AllocRefusal::AwaitingAck(BindingStatus::Expired))
    ));
}

#[test]
fn a_renewal_keeps_start_time_of_state_and_its_times_leave_out_the_expiry() {
    let mut r = leased(5, &MAC_A, NOW.plus(1800));
    r.local.acked_pet = Some(NOW.plus(5400));
    let times = LeaseTimes::for_client(&r.local, true);
    assert_eq!(times.lease_expiration, None);
    assert_eq!(times.acked_pet, Some(NOW.plus(5400)));
    assert_eq!(LeaseTimes::for_client(&r.local, false), LeaseTimes::NONE);
    let later = NOW.plus(900);
    let grant = lease_time(
        &ep(Role::Primary, ServerState::Normal),
        &LeaseRequest {
            now: later,
            desired: 7200,
            times,
            partner_down: PartnerDownLeases::KeepMclt,
        },
    );
    let b = r.granted(&client(&MAC_A), &grant, later).unwrap();
    assert_eq!(b.status, BindingStatus::Active);
    assert_eq!(b.start_time_of_state, Some(NOW));
    assert_eq!(b.client_last_transaction_time, Some(later));
    assert_eq!(b.lease_expiration_time, Some(grant.lease_expiration));
    assert_eq!(
        b.potential_expiration_time,
        Some(grant.potential_expiration)
    );
    // Another client's grant of the same address starts a new binding.
    let other = r.granted(&client(&MAC_B), &grant, later).unwrap();
    assert_eq!(other.start_time_of_state, Some(later));
}

#[test]
fn release_decline_and_expiry_touch_only_the_holders_running_lease() {
    let a = client(&MAC_A).identity();
    let b = client(&MAC_B).identity();
    let r = leased(6, &MAC_A, NOW.plus(100));
    assert_eq!(r.released(&b, NOW), None);
    assert_eq!(r.declined(&b, NOW), None);
    let rel = r.released(&a, NOW).unwrap();
    assert_eq!(
        (rel.status, rel.start_time_of_state),
        (BindingStatus::Released, Some(NOW))
    );
    let abandoned = r.declined(&a, NOW).unwrap();
    assert_eq!(abandoned.status, BindingStatus::Abandoned);
    assert_eq!(
        (abandoned.client_identifier, abandoned.hardware_address),
        (None, None),
        "an ABANDONED binding names no client"
    );
    assert_eq!(r.expired(NOW), None);
    let end = NOW.plus(101);
    let exp = r.expired(end).unwrap();
    assert_eq!(
        (exp.status, exp.start_time_of_state),
        (BindingStatus::Expired, Some(end))
    );
    assert_eq!(LeaseRecord::fresh(addr(7)).expired(end), None);
    assert_eq!(LeaseRecord::fresh(addr(7)).released(&a, end), None);
}

#[test]
fn an_isc_secondary_leaves_expiry_to_the_primary_in_normal() {
    assert!(!expires_leases(&ep(Role::Secondary, ServerState::Normal)));
    assert!(expires_leases(&ep(Role::Primary, ServerState::Normal)));
    assert!(expires_leases(&ep(
        Role::Secondary,
        ServerState::CommunicationsInterrupted
    )));
    let mut draft = ep(Role::Secondary, ServerState::Normal);
    draft.dialect = Dialect::Draft;
    assert!(expires_leases(&draft));
}

#[test]
fn the_endpoint_of_a_status_is_the_engines() {
    use failover_fsm::{Config, Engine, Instant};
    let now = Instant::ZERO;
    for role in [Role::Primary, Role::Secondary] {
        let e: Engine = Engine::new(Config::new(role, "pair", 600), None, now, NOW, 7).unwrap();
        assert_eq!(
            Endpoint::of(&e.status(now), Dialect::Isc),
            e.endpoint(now),
            "{role:?}"
        );
    }
}

#[test]
fn an_abandoned_address_is_the_last_resort() {
    let a = client(&MAC_A).identity();
    let b = client(&MAC_B).identity();
    let p = ep(Role::Primary, ServerState::Normal);
    // A declined its lease of .1: ABANDONED.
    let mut declined = leased(1, &MAC_A, NOW.plus(100));
    let d = declined.declined(&a, NOW).unwrap();
    declined.apply_local(d, true);
    let records = vec![declined, LeaseRecord::fresh(addr(2))];
    // Neither A (its last address) nor B (asking for it) gets it while .2 is FREE.
    assert_eq!(
        choose_address(&p, pool(&records), &a, None, NOW),
        Some(addr(2))
    );
    assert_eq!(
        choose_address(&p, pool(&records), &b, Some(addr(1)), NOW),
        Some(addr(2))
    );
    // ISC's primary takes it as FREE when nothing else is left; the draft never.
    assert_eq!(
        choose_address(&p, pool(&records[..1]), &b, None, NOW),
        Some(addr(1))
    );
    let mut draft = p;
    draft.dialect = Dialect::Draft;
    assert_eq!(
        choose_address(&draft, pool(&records[..1]), &b, None, NOW),
        None
    );
}

#[test]
fn the_partners_pool_is_backup_on_a_primary_and_free_on_a_secondary() {
    use failover_fsm::policy::{PartnerPool, PoolCounts};
    let only_free = PoolCounts { free: 5, backup: 0 };
    assert_eq!(
        PartnerPool::of(only_free, Role::Primary),
        PartnerPool::Empty
    );
    assert_eq!(
        PartnerPool::of(only_free, Role::Secondary),
        PartnerPool::HasFree
    );
    let only_backup = PoolCounts { free: 0, backup: 5 };
    assert_eq!(
        PartnerPool::of(only_backup, Role::Primary),
        PartnerPool::HasFree
    );
    assert_eq!(
        PartnerPool::of(only_backup, Role::Secondary),
        PartnerPool::Empty
    );
}

#[test]
fn resolution_interrupted_renews_only_a_running_lease_for_its_client() {
    // §9.11.2: "continued renewal of a DHCP client's current lease". An ended lease of ours
    // may have gone to another client from the partner's PARTNER-DOWN, which our table has
    // not heard of yet (seed 32569622).
    let a = client(&MAC_A).identity();
    let b = client(&MAC_B).identity();
    let mut ri = ep(Role::Primary, ServerState::ResolutionInterrupted);
    ri.dialect = Dialect::Draft;
    let running = leased(3, &MAC_A, NOW.plus(100));
    assert_eq!(
        judge_request(&ri, Some(&running.local), &a, NOW),
        RequestAnswer::Ack
    );
    assert_eq!(
        judge_request(&ri, Some(&running.local), &b, NOW),
        RequestAnswer::Nak
    );
    let ended = leased(4, &MAC_A, UnixTime(NOW.0 - 1));
    assert_eq!(
        judge_request(&ri, Some(&ended.local), &a, NOW),
        RequestAnswer::Silent(AllocRefusal::NotServing(ServerState::ResolutionInterrupted))
    );
    // Nothing new either: the offer finds nothing.
    let free = LeaseRecord::fresh(addr(1));
    assert_eq!(
        choose_address(&ri, pool(&[ended, free]), &a, None, NOW),
        None
    );
}
