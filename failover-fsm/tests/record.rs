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
