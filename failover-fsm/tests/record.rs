//! The lease record contract (`failover_fsm::record`): every rule by which a stored record
//! changes, one test per rule.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, missing_docs)]

use std::net::Ipv4Addr;

use failover_fsm::accept::{ClientIdentity, Verdict};
use failover_fsm::record::{Ack, Backlog, LeaseRecord, Received};
use failover_fsm::{BindingData, BindingStatus, Role, UnixTime, UpdateId};
use failover_proto::IpFlags;

const A: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 7);

fn lease(mac: u8, status: BindingStatus, cltt: u32) -> BindingData {
    let mut b = BindingData::new(A, status)
        .with_client(None, 1, &[2, 0, 0, 0, 0, mac])
        .unwrap();
    b.client_last_transaction_time = Some(UnixTime(cltt));
    b.start_time_of_state = Some(UnixTime(cltt));
    b.lease_expiration_time = Some(UnixTime(cltt + 600));
    b.potential_expiration_time = Some(UnixTime(cltt + 900));
    b
}

fn verdict(b: &BindingData, store_as: BindingStatus) -> Verdict {
    Verdict {
        store_as,
        lease_expiration: b.lease_expiration_time,
        received_pet: b.potential_expiration_time,
        client_changed: false,
        superseded_xid: None,
        ours_in_flight: false,
        ours_dropped: false,
        taken_as_newer: false,
        ours_wins_tie: false,
        partner_time_shift: 0,
        skew_margin: 0,
    }
}

fn ack(update: UpdateId, b: &BindingData) -> Ack {
    Ack {
        update,
        status: b.status,
        client: ClientIdentity::of(&b.to_wire()),
        potential_expiration_time: b.potential_expiration_time,
    }
}

#[test]
fn a_received_binding_is_stored_as_the_verdict_says() {
    let mut r = LeaseRecord::fresh(A);
    let b = lease(1, BindingStatus::Expired, 100);
    assert_eq!(
        r.apply_received(&b, &verdict(&b, BindingStatus::Free)),
        Received::Stored
    );
    assert_eq!(r.local.status, BindingStatus::Free);
    assert_eq!(r.data.status, BindingStatus::Free);
    assert_eq!(r.local.partner_status, Some(BindingStatus::Free));
    assert_eq!(r.local.received_pet, b.potential_expiration_time);
    assert!(r.partner_has_it);
    assert!(!r.is_untouched());
}

#[test]
fn client_last_transaction_time_only_moves_forward() {
    let mut r = LeaseRecord::fresh(A);
    let ours = lease(1, BindingStatus::Active, 200);
    r.apply_local(ours.clone(), true);
    r.partner_has_it = true; // acknowledged
    let mut theirs = lease(1, BindingStatus::Active, 150);
    theirs.start_time_of_state = Some(UnixTime(150));
    assert_eq!(
        r.apply_received(&theirs, &verdict(&theirs, BindingStatus::Active)),
        Received::Stored
    );
    assert_eq!(r.local.cltt, Some(UnixTime(200)));
}

#[test]
fn an_older_update_does_not_replace_our_unacknowledged_record() {
    let mut r = LeaseRecord::fresh(A);
    let ours = lease(1, BindingStatus::Active, 200);
    r.apply_local(ours.clone(), true);
    r.queued(UpdateId(1));
    let theirs = lease(2, BindingStatus::Released, 150);
    let mut v = verdict(&theirs, BindingStatus::Free);
    v.ours_in_flight = true;
    assert_eq!(r.apply_received(&theirs, &v), Received::KeptNewer);
    assert_eq!(r.data, ours);
    assert!(!r.partner_has_it, "ours still goes out");
    // Our running lease: the partner frees the address on our BNDACK.
    assert_eq!(r.local.partner_status, Some(BindingStatus::Released));
    // An ended status is noted whatever of ours is on its way (it ends the rewind; seed
    // 32561070).
    let mut r = LeaseRecord::fresh(A);
    let ours = lease(1, BindingStatus::Expired, 200);
    r.apply_local(ours.clone(), true);
    r.queued(UpdateId(1));
    assert_eq!(r.apply_received(&theirs, &v), Received::KeptNewer);
    assert_eq!(r.local.partner_status, Some(BindingStatus::Released));
    // An ACTIVE, which would allow the rewind again, is not while ours (not a running lease)
    // is on its way: the partner takes ours after its own (seed 7880).
    let mut r = LeaseRecord::fresh(A);
    r.apply_local(ours.clone(), true);
    r.queued(UpdateId(1));
    let active = lease(1, BindingStatus::Active, 150);
    let mut va = verdict(&active, BindingStatus::Active);
    va.ours_in_flight = true;
    assert_eq!(r.apply_received(&active, &va), Received::KeptNewer);
    assert_eq!(r.local.partner_status, Some(BindingStatus::Expired));
}

#[test]
fn our_newer_record_whose_queued_copy_the_engine_dropped_is_sent_again() {
    // ISC's rules: the engine took the partner's EXPIRED over our queued (unsent) renewal and
    // dropped that copy. The record keeps the renewal, and nothing would send it before the
    // next connection: the store must queue it again (DHCP-server lab, a restarted primary).
    let mut r = LeaseRecord::fresh(A);
    let ours = lease(1, BindingStatus::Active, 200);
    r.apply_local(ours.clone(), true);
    r.queued(UpdateId(1));
    let theirs = lease(1, BindingStatus::Expired, 150);
    let mut v = verdict(&theirs, BindingStatus::Free);
    v.ours_in_flight = true;
    v.ours_dropped = true;
    assert_eq!(
        r.apply_received(&theirs, &v),
        Received::KeptOurs(ours.clone())
    );
    assert_eq!(r.data, ours);
    assert!(!r.partner_has_it);
    assert_eq!(r.local.partner_status, Some(BindingStatus::Expired));
    // A partner's update that is newer than ours is stored, dropped copy or not.
    let mut r = LeaseRecord::fresh(A);
    r.apply_local(lease(1, BindingStatus::Active, 100), true);
    r.queued(UpdateId(1));
    assert_eq!(r.apply_received(&theirs, &v), Received::Stored);
    assert_eq!(r.local.status, BindingStatus::Free);
}

#[test]
fn our_lease_sent_again_does_not_undo_the_partners_ended_status_until_acknowledged() {
    // We acknowledged the partner's EXPIRED and kept our (older-looking but unacknowledged)
    // lease; sending it again must not make the address look like the client's to the
    // partner, which freed it on our BNDACK (seed 32561070).
    let mut r = LeaseRecord::fresh(A);
    let ours = lease(1, BindingStatus::Active, 200);
    r.apply_local(ours.clone(), true);
    r.queued(UpdateId(1));
    let theirs = lease(1, BindingStatus::Expired, 150);
    let mut v = verdict(&theirs, BindingStatus::Free);
    v.ours_in_flight = true;
    assert_eq!(r.apply_received(&theirs, &v), Received::KeptNewer);
    assert_eq!(r.local.partner_status, Some(BindingStatus::Expired));
    r.queued(UpdateId(2));
    assert_eq!(r.local.partner_status, Some(BindingStatus::Expired));
    // Its acknowledgement of ours: the partner holds our lease now.
    assert!(!r.apply_ack(&ack(UpdateId(2), &ours), Role::Secondary));
    assert_eq!(r.local.partner_status, Some(BindingStatus::Active));
}

#[test]
fn a_refused_record_yields_to_the_partners_next_update() {
    let mut r = LeaseRecord::fresh(A);
    r.apply_local(lease(1, BindingStatus::Active, 200), true);
    r.queued(UpdateId(4));
    r.apply_reject(UpdateId(3)); // an older update: nothing
    assert!(!r.refused);
    r.apply_reject(UpdateId(4));
    assert!(r.refused);
    let theirs = lease(2, BindingStatus::Active, 150);
    assert_eq!(
        r.apply_received(&theirs, &verdict(&theirs, BindingStatus::Active)),
        Received::Stored
    );
    assert_eq!(r.data.hardware_address, theirs.hardware_address);
    assert!(!r.refused, "taken once");
}

#[test]
fn an_update_sent_again_does_not_undo_a_newer_change() {
    let mut r = LeaseRecord::fresh(A);
    let released = lease(1, BindingStatus::Released, 50);
    let v = verdict(&released, BindingStatus::Free);
    assert_eq!(r.apply_received(&released, &v), Received::Stored);
    let backup = BindingData::new(A, BindingStatus::Backup);
    r.apply_local(backup.clone(), true);
    assert_eq!(
        r.apply_received(&released, &v),
        Received::KeptOurs(backup.clone())
    );
    assert_eq!(r.data, backup);
    assert!(!r.partner_has_it);
    // Queued again: the partner still holds its own status.
    r.queued_again(UpdateId(9));
    assert_eq!(r.local.partner_status, Some(BindingStatus::Free));
    // A different update is applied as usual.
    let again = lease(1, BindingStatus::Released, 60);
    assert_eq!(r.apply_received(&again, &v), Received::Stored);
    assert_eq!(r.local.status, BindingStatus::Free);
}

#[test]
fn an_acknowledged_expiry_frees_the_address() {
    for (role, reserved, freed) in [
        (Role::Primary, false, BindingStatus::Free),
        (Role::Secondary, false, BindingStatus::Free),
        (Role::Secondary, true, BindingStatus::Backup),
    ] {
        let mut r = LeaseRecord::fresh(A);
        let mut expired = lease(1, BindingStatus::Expired, 100);
        if reserved {
            expired.ip_flags = IpFlags::RESERVED;
        }
        r.apply_local(expired.clone(), true);
        assert_eq!(r.local.reserved, reserved);
        r.queued(UpdateId(2));
        assert_eq!(r.local.partner_status, Some(BindingStatus::Expired));
        assert!(r.apply_ack(&ack(UpdateId(2), &expired), role));
        assert_eq!((r.local.status, r.data.status), (freed, freed));
        assert!(r.partner_has_it, "the partner freed it too");
    }
}

#[test]
fn an_ack_of_an_older_version_only_notes_its_pet() {
    let mut r = LeaseRecord::fresh(A);
    let first = lease(1, BindingStatus::Active, 100);
    r.apply_local(first.clone(), true);
    r.queued(UpdateId(1));
    let renewed = lease(1, BindingStatus::Active, 200);
    r.apply_local(renewed.clone(), true);
    r.queued(UpdateId(2));
    assert!(!r.apply_ack(&ack(UpdateId(1), &first), Role::Primary));
    assert_eq!(r.local.acked_pet, first.potential_expiration_time);
    assert!(!r.partner_has_it, "the renewal is not acknowledged yet");
    // Another client's older lease tells nothing about this one.
    let other = lease(2, BindingStatus::Active, 50);
    r.local.acked_pet = None;
    r.apply_ack(&ack(UpdateId(0), &other), Role::Primary);
    assert_eq!(r.local.acked_pet, None);
    assert!(!r.apply_ack(&ack(UpdateId(2), &renewed), Role::Primary));
    assert!(r.partner_has_it);
    assert_eq!(r.local.acked_pet, renewed.potential_expiration_time);
}

#[test]
fn a_new_lease_forgets_the_previous_ones_pets_and_a_renewal_keeps_them() {
    let mut r = LeaseRecord::fresh(A);
    let first = lease(1, BindingStatus::Active, 100);
    r.apply_local(first.clone(), true);
    r.queued(UpdateId(1));
    r.apply_ack(&ack(UpdateId(1), &first), Role::Primary);
    let pet = first.potential_expiration_time;
    r.apply_local(lease(1, BindingStatus::Active, 150), true);
    assert_eq!(
        r.local.acked_pet, pet,
        "a renewal builds on what the partner knows"
    );
    r.apply_local(lease(2, BindingStatus::Active, 300), true);
    assert_eq!(r.local.acked_pet, None, "another client's lease");
}

#[test]
fn a_restart_forgets_the_conversation() {
    let mut r = LeaseRecord::fresh(A);
    let b = lease(1, BindingStatus::Active, 100);
    r.apply_received(&b, &verdict(&b, BindingStatus::Active));
    r.apply_local(lease(1, BindingStatus::Active, 110), true);
    r.queued(UpdateId(1));
    r.apply_reject(UpdateId(1));
    r.restarted();
    assert_eq!(
        (r.last_received.as_ref(), r.refused, r.queued),
        (None, false, None)
    );
    // So a re-sent update after a restart is judged by the times alone.
    assert_eq!(
        r.apply_received(&b, &verdict(&b, BindingStatus::Active)),
        Received::KeptNewer
    );
}

#[test]
fn untouched_records_are_never_sent() {
    let mut r = LeaseRecord::fresh(A);
    assert!(r.is_untouched());
    assert!(!r.sent_for(Backlog::All));
    assert!(!r.sent_for(Backlog::Unacked));
    r.apply_local(BindingData::new(A, BindingStatus::Backup), true);
    assert!(!r.is_untouched());
    assert!(r.sent_for(Backlog::Unacked), "not acknowledged yet");
}

#[test]
fn updreqall_sends_acknowledged_records_and_marks_them_unacknowledged() {
    let mut r = LeaseRecord::fresh(A);
    let b = lease(1, BindingStatus::Active, 100);
    r.apply_local(b.clone(), true);
    r.queued(UpdateId(3));
    r.apply_ack(&ack(UpdateId(3), &b), Role::Primary);
    assert!(r.partner_has_it);
    assert!(!r.sent_for(Backlog::Unacked), "UPDREQ: the partner has it");
    assert!(r.sent_for(Backlog::All), "UPDREQALL: the partner lost it");
    assert!(!r.partner_has_it);
    assert!(
        r.sent_for(Backlog::Unacked),
        "until it acknowledges it again"
    );
}

#[test]
fn the_reserved_flag_is_kept_from_either_side() {
    let mut r = LeaseRecord::fresh(A);
    let mut b = lease(1, BindingStatus::Active, 100);
    b.ip_flags = IpFlags::RESERVED;
    r.apply_received(&b, &verdict(&b, BindingStatus::Active));
    assert!(r.local.reserved, "the partner reserved it (§5.13)");
    // Released by its client: on the secondary a reserved address goes back as BACKUP.
    let mut released = b.clone();
    released.status = BindingStatus::Released;
    r.apply_local(released.clone(), true);
    assert!(r.local.reserved);
    r.queued(UpdateId(1));
    assert!(r.apply_ack(&ack(UpdateId(1), &released), Role::Secondary));
    assert_eq!(r.local.status, BindingStatus::Backup);
    // A change without the flag ends the reservation.
    r.apply_local(lease(2, BindingStatus::Active, 200), true);
    assert!(!r.local.reserved);
}

#[test]
fn an_update_sent_again_under_another_skew_is_still_the_same_update() {
    let mut r = LeaseRecord::fresh(A);
    let released = lease(1, BindingStatus::Released, 100);
    let mut v = verdict(&released, BindingStatus::Free);
    v.partner_time_shift = 5;
    let first = released.clone().shifted(5);
    assert_eq!(r.apply_received(&first, &v), Received::Stored);
    // Our later grant to another client, not acknowledged yet.
    r.apply_local(lease(2, BindingStatus::Active, 110), true);
    // The RELEASED again, corrected 19 s more this time: newer-looking, but the same update.
    v.partner_time_shift = 24;
    let again = released.shifted(24);
    assert!(matches!(
        r.apply_received(&again, &v),
        Received::KeptOurs(_)
    ));
    assert_eq!(r.local.status, BindingStatus::Active);
}

#[test]
fn an_unproven_skew_holds_the_address_longer_here_and_sends_the_partners_time_on() {
    let mut r = LeaseRecord::fresh(A);
    let b = lease(1, BindingStatus::Active, 100);
    let v = Verdict {
        skew_margin: 10,
        ..verdict(&b, BindingStatus::Active)
    };
    assert_eq!(r.apply_received(&b, &v), Received::Stored);
    assert_eq!(r.local.lease_expiration, Some(UnixTime(100 + 600 + 10)));
    assert_eq!(r.data.lease_expiration_time, Some(UnixTime(100 + 600)));
    // A new client's lease: the margin too, and none of the previous lease's time.
    let c = lease(2, BindingStatus::Active, 50);
    let merged = Verdict {
        lease_expiration: Some(UnixTime(100 + 600)),
        skew_margin: 3,
        ..verdict(&c, BindingStatus::Active)
    };
    let mut r = LeaseRecord::fresh(A);
    let old = lease(1, BindingStatus::Released, 40);
    r.apply_received(&old, &verdict(&old, BindingStatus::Free));
    r.local.status = BindingStatus::Released;
    r.apply_received(&c, &merged);
    assert_eq!(r.local.lease_expiration, Some(UnixTime(50 + 600 + 3)));
    assert_eq!(r.data.lease_expiration_time, Some(UnixTime(50 + 600)));
}

// ----- the store-side helpers: pool counts, balancing candidates, the backlog walk -----

mod helpers {
    use std::net::Ipv4Addr;

    use failover_fsm::policy::{
        BalanceConfig, BalancePlan, BalanceTrigger, PoolCounts, balance_candidates, plan_balance,
    };
    use failover_fsm::record::{Backlog, BacklogWalk, LeaseRecord, UpdateQueue, Walked};
    use failover_fsm::{
        BindingData, BindingStatus, EngineError, Role, ServerState, UnixTime, UpdateId,
    };
    use failover_proto::IpFlags;
    use failover_testkit::support::Pair;

    fn ip(i: u8) -> Ipv4Addr {
        Ipv4Addr::new(192, 0, 2, i)
    }

    fn pool(n: u8) -> Vec<LeaseRecord> {
        (1..=n).map(|i| LeaseRecord::fresh(ip(i))).collect()
    }

    fn set(r: &mut LeaseRecord, status: BindingStatus, reserved: bool) {
        let mut b = BindingData::new(r.data.ip(), status);
        if reserved {
            b.ip_flags = IpFlags::RESERVED;
        }
        r.apply_local(b, true);
    }

    fn plan(role: Role, counts: PoolCounts) -> BalancePlan {
        plan_balance(
            role,
            ServerState::Normal,
            counts,
            &BalanceConfig::default(),
            BalanceTrigger::Manual,
        )
        .unwrap()
    }

    /// An engine queue with room for `room` updates, recording what it got.
    #[derive(Default)]
    struct Queue {
        room: usize,
        got: Vec<BindingData>,
        ends: usize,
    }

    impl UpdateQueue for Queue {
        fn send_binding(&mut self, b: &BindingData) -> Result<UpdateId, EngineError> {
            if b.status == BindingStatus::Active && b.hardware_address.is_none() {
                return Err(EngineError::IncompleteBinding);
            }
            if self.room == 0 {
                return Err(EngineError::QueueFull);
            }
            self.room -= 1;
            self.got.push(b.clone());
            Ok(UpdateId(self.got.len() as u64))
        }
        fn end_of_updates(&mut self) {
            self.ends += 1;
        }
    }

    fn queue(room: usize) -> Queue {
        Queue {
            room,
            ..Queue::default()
        }
    }

    fn ips(q: &Queue) -> Vec<Ipv4Addr> {
        q.got.iter().map(BindingData::ip).collect()
    }

    #[test]
    fn pool_counts_leave_out_reserved_and_unavailable_addresses() {
        let mut records = pool(6);
        set(&mut records[0], BindingStatus::Backup, false);
        set(&mut records[1], BindingStatus::Backup, true);
        set(&mut records[2], BindingStatus::Free, true);
        set(&mut records[3], BindingStatus::Abandoned, false);
        assert_eq!(PoolCounts::of(&records), PoolCounts { free: 2, backup: 1 });
        // Folding LocalBindings gives the same.
        let locals: Vec<_> = records.iter().map(|r| r.local).collect();
        assert_eq!(PoolCounts::of(&locals), PoolCounts::of(records.iter()));
    }

    #[test]
    fn balancing_moves_our_highest_unreserved_addresses() {
        let mut records = pool(10);
        set(&mut records[9], BindingStatus::Free, true); // .10 reserved
        set(&mut records[8], BindingStatus::Active, false); // .9 leased
        let p = plan(Role::Primary, PoolCounts::of(&records));
        assert_eq!((p.to_move(), p.takes_from()), (4, BindingStatus::Free));
        let moved: Vec<Ipv4Addr> = balance_candidates(&p, &records)
            .map(|r| r.data.ip())
            .collect();
        assert_eq!(moved, [ip(8), ip(7), ip(6), ip(5)]);
        // Moved as the plan says, since now, with nothing of an earlier lease.
        let mut used = records[7].clone();
        let mut lease = BindingData::new(ip(8), BindingStatus::Free)
            .with_client(None, 1, &[2, 0, 0, 0, 0, 8])
            .unwrap();
        lease.client_last_transaction_time = Some(UnixTime(50));
        used.apply_local(lease, false);
        let b = used.given_to_partner(&p, UnixTime(100));
        assert_eq!(b, {
            let mut b = BindingData::new(ip(8), BindingStatus::Backup);
            b.start_time_of_state = Some(UnixTime(100));
            b
        });
        // The secondary gives BACKUP addresses back as FREE.
        for r in &mut records[..8] {
            set(r, BindingStatus::Backup, false);
        }
        let p = plan(Role::Secondary, PoolCounts::of(&records));
        assert_eq!((p.give_as, p.to_move()), (BindingStatus::Free, 4));
        let moved: Vec<Ipv4Addr> = balance_candidates(&p, records.iter_mut())
            .map(|r| r.data.ip())
            .collect();
        assert_eq!(moved, [ip(8), ip(7), ip(6), ip(5)]);
        // Balanced: nothing.
        let p = plan(Role::Secondary, PoolCounts { free: 4, backup: 4 });
        assert_eq!(balance_candidates(&p, &records).count(), 0);
    }

    #[test]
    fn a_move_is_not_older_than_the_partners_version_it_replaces() {
        use super::{A, ack, lease, verdict};
        use failover_fsm::record::Received;
        // The secondary's clock runs a second ahead of the primary's, too little to prove a
        // correction (§5.10). Its client released the lease at 698 by its clock; the primary
        // took the RELEASED (FREE) and moves the address to the secondary at 697 by its own.
        let released = lease(15, BindingStatus::Released, 698);
        let mut secondary = LeaseRecord::fresh(A);
        secondary.apply_local(released.clone(), true);
        secondary.queued(UpdateId(41));
        let mut primary = LeaseRecord::fresh(A);
        let freed = verdict(&released, BindingStatus::Free);
        assert_eq!(primary.apply_received(&released, &freed), Received::Stored);
        let p = plan(Role::Primary, PoolCounts { free: 8, backup: 0 });
        let backup = primary.given_to_partner(&p, UnixTime(697));
        assert_eq!(backup.start_time_of_state, Some(UnixTime(698)));
        primary.apply_local(backup.clone(), true);
        // The RELEASED sent again (its BNDACK lost with the connection) does not undo the move.
        assert_eq!(
            primary.apply_received(&released, &freed),
            Received::KeptOurs(backup.clone())
        );
        // The secondary takes the move over its RELEASED, and the BNDACK of the RELEASED frees
        // nothing: BACKUP on both sides (simulator seed 60023994).
        let moved = verdict(&backup, BindingStatus::Backup);
        assert_eq!(secondary.apply_received(&backup, &moved), Received::Stored);
        assert!(!secondary.apply_ack(&ack(UpdateId(41), &released), Role::Secondary));
        assert_eq!(secondary.data, backup);
        assert_eq!(primary.data, backup);
    }

    #[test]
    fn crossing_updates_of_the_same_second_keep_the_primarys_on_both_sides() {
        use super::{A, ack, lease, verdict};
        use failover_fsm::record::Received;
        // The client released its lease at 997 and the secondary, on entering NORMAL, sends
        // its FREE of it; in the same second the primary moves the address to the secondary
        // (BACKUP). Neither has heard of the other's update.
        let free = lease(15, BindingStatus::Free, 997);
        let mut secondary = LeaseRecord::fresh(A);
        secondary.apply_local(free.clone(), true);
        secondary.queued(UpdateId(7));
        let mut primary = LeaseRecord::fresh(A);
        primary.apply_local(free.clone(), false);
        let p = plan(Role::Primary, PoolCounts { free: 8, backup: 0 });
        let backup = primary.given_to_partner(&p, UnixTime(997));
        assert_eq!(backup.start_time_of_state, Some(UnixTime(997)));
        primary.apply_local(backup.clone(), true);
        primary.queued(UpdateId(9));
        // Equal times: the primary keeps its move, the secondary takes it (simulator seed
        // 83137859: each took the other's).
        let mut tie = verdict(&free, BindingStatus::Free);
        tie.ours_wins_tie = true;
        assert_eq!(primary.apply_received(&free, &tie), Received::KeptNewer);
        let moved = verdict(&backup, BindingStatus::Backup);
        assert_eq!(secondary.apply_received(&backup, &moved), Received::Stored);
        // The BNDACKs: the secondary's FREE is an older version there now.
        assert!(!secondary.apply_ack(&ack(UpdateId(7), &free), Role::Secondary));
        assert!(!primary.apply_ack(&ack(UpdateId(9), &backup), Role::Primary));
        assert_eq!(primary.data.status, BindingStatus::Backup);
        assert_eq!(secondary.data.status, BindingStatus::Backup);
        assert!(primary.partner_has_it && secondary.partner_has_it);
        // Without the tie rule the primary would store the FREE.
        let mut other = LeaseRecord::fresh(A);
        other.apply_local(backup.clone(), true);
        other.queued(UpdateId(9));
        let no_tie = verdict(&free, BindingStatus::Free);
        assert_eq!(other.apply_received(&free, &no_tie), Received::Stored);
        assert_eq!(other.data.status, BindingStatus::Free);
    }

    #[test]
    fn a_walk_resumes_where_the_queue_filled_and_ends_the_request_once() {
        let mut records = pool(6);
        for r in &mut records[..5] {
            set(r, BindingStatus::Backup, false);
        }
        records[1].partner_has_it = true;
        let mut walk = BacklogWalk::answering(Backlog::Unacked);
        walk.begin(&mut records);
        let mut q = queue(2);
        assert_eq!(
            walk.walk(&mut records, &mut q, |_, _| {}),
            Walked::QueueFull
        );
        assert_eq!(ips(&q), [ip(1), ip(3)]);
        assert_eq!(walk.resume_at(), ip(4));
        assert_eq!(q.ends, 0);
        // A change made meanwhile goes as it stands now, and one acknowledged is left out.
        let mut free = BindingData::new(ip(4), BindingStatus::Free);
        free.start_time_of_state = Some(UnixTime(5));
        records[3].apply_local(free, true);
        records[4].partner_has_it = true;
        q.room = 10;
        // Records before the resume point are skipped, so the store may hand all of them.
        assert_eq!(walk.walk(&mut records, &mut q, |_, _| {}), Walked::Done);
        assert_eq!(ips(&q), [ip(1), ip(3), ip(4)]);
        assert_eq!(q.got[2].status, BindingStatus::Free);
        assert_eq!(q.ends, 1);
        assert_eq!(walk.queued(), 3);
        // Each queued record knows its update.
        assert_eq!(records[3].queued, Some(UpdateId(3)));
        // The untouched record (.6) never went.
    }

    #[test]
    fn updreqall_counts_every_record_as_unacknowledged_from_its_start() {
        let mut records = pool(4);
        for r in &mut records[..3] {
            set(r, BindingStatus::Backup, false);
            r.partner_has_it = true;
        }
        let walk = BacklogWalk::for_action(&failover_fsm::Action::SendAllBindings).unwrap();
        assert!(walk.answers_request());
        walk.begin(&mut records);
        assert!(records[..3].iter().all(|r| !r.partner_has_it));
        assert!(records[3].is_untouched());
        let mut walk = walk;
        let mut q = queue(10);
        assert_eq!(walk.walk(&mut records, &mut q, |_, _| {}), Walked::Done);
        assert_eq!(ips(&q), [ip(1), ip(2), ip(3)]);
        // The backlog is not a request: no end_of_updates.
        let mut backlog = BacklogWalk::for_action(&failover_fsm::Action::SendBacklog).unwrap();
        let mut q = queue(10);
        assert_eq!(backlog.walk(&mut records, &mut q, |_, _| {}), Walked::Done);
        assert_eq!((q.got.len(), q.ends), (3, 0));
    }

    #[test]
    fn a_refused_binding_is_reported_and_skipped() {
        let mut records = pool(2);
        set(&mut records[0], BindingStatus::Active, false); // no client: incomplete
        set(&mut records[1], BindingStatus::Backup, false);
        let mut walk = BacklogWalk::backlog();
        let mut q = queue(10);
        let mut refused = Vec::new();
        let walked = walk.walk(&mut records, &mut q, |r, queued| {
            if let Err(e) = queued {
                refused.push((r.data.ip(), e));
            }
        });
        assert_eq!(walked, Walked::Done);
        assert_eq!(refused, [(ip(1), EngineError::IncompleteBinding)]);
        assert_eq!(ips(&q), [ip(2)]);
    }

    #[test]
    fn a_walk_asked_for_during_another_starts_over_and_answers_if_either_does() {
        let mut records = pool(3);
        for r in &mut records {
            set(r, BindingStatus::Backup, false);
        }
        let mut walk = BacklogWalk::answering(Backlog::Unacked);
        let mut q = queue(1);
        assert_eq!(
            walk.walk(&mut records, &mut q, |_, _| {}),
            Walked::QueueFull
        );
        let mut walk = walk.then(BacklogWalk::backlog());
        assert!(walk.answers_request());
        assert_eq!(walk.resume_at(), Ipv4Addr::UNSPECIFIED);
        q.room = 10;
        assert_eq!(walk.walk(&mut records, &mut q, |_, _| {}), Walked::Done);
        // .1 again (an engine gives the same data its first id back), then the rest.
        assert_eq!(ips(&q), [ip(1), ip(1), ip(2), ip(3)]);
        assert_eq!(q.ends, 1);
    }

    #[test]
    fn sent_again_after_kept_ours_the_partner_status_stays() {
        let mut r = LeaseRecord::fresh(ip(1));
        set(&mut r, BindingStatus::Backup, false);
        r.local.partner_status = Some(BindingStatus::Free);
        let mut q = queue(1);
        let id = r.send_again(&mut q).unwrap();
        assert_eq!(r.queued, Some(id));
        assert_eq!(r.local.partner_status, Some(BindingStatus::Free));
        assert_eq!(r.send_again(&mut q), Err(EngineError::QueueFull));
        // Sent as a change of ours, the partner may know it.
        q.room = 1;
        let id = r.send(&mut q).unwrap();
        assert_eq!(r.queued, Some(id));
        assert_eq!(r.local.partner_status, Some(BindingStatus::Backup));
    }

    #[test]
    fn the_engine_says_whether_an_update_is_still_queued() {
        let mut pair = Pair::new(16);
        let wall = pair.wall();
        let node = pair.node(true);
        let mut a = BindingData::new(ip(200), BindingStatus::Backup);
        a.start_time_of_state = Some(wall);
        let first = node.engine.send_binding(&a).unwrap();
        assert!(node.engine.is_queued(first));
        // A newer copy not yet sent takes its place: the first is gone, the second queued.
        a.start_time_of_state = Some(UnixTime(wall.0 + 1));
        let second = node.engine.send_binding(&a).unwrap();
        assert!(!node.engine.is_queued(first));
        assert!(node.engine.is_queued(second));
        // Acknowledged: gone.
        pair.connect();
        pair.run_for(5);
        assert!(!pair.primary.engine.is_queued(second));
        assert!(!pair.primary.engine.is_queued(UpdateId(u64::MAX)));
    }
}
