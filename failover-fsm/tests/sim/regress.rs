//! Regression tests for the engine bugs the simulator found, each pinned with a few messages
//! between two engines (the simulation finds them again only by chance once the code moves).

use std::net::Ipv4Addr;

use failover_fsm::accept::{ClientIdentity, LocalBinding, judge_update};
use failover_fsm::{BindingStatus, Dialect, Instant, RejectReason, Role, ServerState, UnixTime};
use failover_proto::{Binding, HardwareAddress, Repr};

use crate::support::{self, Pair, T0, TestEngine};

fn dialect_pair(pool: u32, dialect: Dialect) -> Pair {
    let mut pair = Pair::new(pool);
    for p in [true, false] {
        let node = pair.node(p);
        let mut c = support::config(node.role());
        c.dialect = dialect;
        node.engine = TestEngine::new(c, None, Instant::ZERO, UnixTime(T0), 3).unwrap();
    }
    pair
}

/// (address, lease-expiration-time) of every BNDUPD sent by the primary from `from` on.
fn primary_bndupds(pair: &Pair, from: usize) -> Vec<(Ipv4Addr, Option<u32>)> {
    pair.trace[from..]
        .iter()
        .filter(|(p, _)| *p)
        .filter_map(|(_, b)| match Repr::parse(b) {
            Ok(Repr::BndUpd(u)) => u
                .bindings
                .iter()
                .next()
                .map(|b| (b.address, b.lease_expiration_time)),
            _ => None,
        })
        .collect()
}

#[test]
fn draft_server_without_storage_asks_for_every_binding() {
    crate::big_stack(draft_server_without_storage_asks_for_every_binding_body);
}

fn draft_server_without_storage_asks_for_every_binding_body() {
    // Engine::new without persisted state is a brand-new server or one that lost its storage:
    // RECOVER must ask with UPDREQALL (§9.5.2), not UPDREQ (which only brings what the
    // partner has not seen acknowledged).
    let mut pair = dialect_pair(8, Dialect::Draft);
    pair.connect();
    pair.run_for(5);
    let types = pair.trace_types();
    assert!(types.contains(&(true, "UPDREQALL")), "{types:?}");
    assert!(types.contains(&(false, "UPDREQALL")), "{types:?}");
    assert!(!types.iter().any(|t| t.1 == "UPDREQ"), "{types:?}");
}

/// A pair where the primary runs in PARTNER-DOWN and the secondary has restarted without
/// its storage and reached RECOVER-WAIT (ISC rules).
fn primary_partner_down_secondary_recovering() -> Pair {
    // The tests below hold the secondary's commits past RECOVER-WAIT (61 s): keep the
    // primary's ack timeout above that, or it would close the connection first.
    let mut pair = Pair::with_config(8, |c| c.ack_timeout = 120);
    pair.connect();
    pair.run_for(5);
    assert_eq!(pair.states(), (ServerState::Normal, ServerState::Normal));
    pair.disconnect();
    let now = pair.now;
    pair.primary.engine.partner_down(now, false).unwrap();
    pair.pump();
    assert_eq!(pair.primary.engine.state(), ServerState::PartnerDown);
    let wall = pair.wall();
    pair.secondary
        .restart(support::config(Role::Secondary), pair.now, wall, true);
    pair.connect();
    pair.run_for(3);
    assert_eq!(pair.secondary.engine.state(), ServerState::RecoverWait);
    pair
}

#[test]
fn partner_down_announces_normal_only_once_its_bindings_are_acknowledged() {
    crate::big_stack(partner_down_announces_normal_only_once_its_bindings_are_acknowledged_body);
}

fn partner_down_announces_normal_only_once_its_bindings_are_acknowledged_body() {
    let mut pair = primary_partner_down_secondary_recovering();
    // A lease granted in PARTNER-DOWN whose BNDUPD the secondary has not acknowledged yet.
    pair.secondary.auto_commit = false;
    let wall = pair.wall();
    pair.primary
        .grant(Ipv4Addr::new(198, 18, 1, 5), [2, 0, 0, 0, 0, 5], wall, 600);
    pair.pump();
    pair.run_for(61); // RECOVER-WAIT ends (MCLT 60)
    assert_eq!(pair.secondary.engine.state(), ServerState::RecoverDone);
    // The primary is NORMAL, but keeps announcing (and persisting) PARTNER-DOWN: the secondary
    // must not start allocating from a pool whose leases it has not all heard of.
    assert_eq!(pair.primary.engine.state(), ServerState::Normal);
    assert_eq!(
        pair.secondary.engine.partner_state(),
        Some(ServerState::PartnerDown)
    );
    assert_eq!(
        pair.primary.persisted.unwrap().state,
        ServerState::PartnerDown
    );
    for t in std::mem::take(&mut pair.secondary.pending_commits) {
        pair.secondary.engine.binding_committed(t).unwrap();
    }
    pair.secondary.auto_commit = true;
    pair.run_for(2);
    assert_eq!(pair.states(), (ServerState::Normal, ServerState::Normal));
    assert_eq!(pair.primary.persisted.unwrap().state, ServerState::Normal);
}

#[test]
fn recover_done_waits_for_the_partner_to_hear_of_it() {
    crate::big_stack(recover_done_waits_for_the_partner_to_hear_of_it_body);
}

fn recover_done_waits_for_the_partner_to_hear_of_it_body() {
    // RECOVER-WAIT's time runs out while disconnected: RECOVER-DONE (which renews leases,
    // §9.7.1) waits until the partner — in PARTNER-DOWN here — can hear of it.
    let mut pair = primary_partner_down_secondary_recovering();
    pair.disconnect();
    pair.run_for(70);
    assert_eq!(pair.secondary.engine.state(), ServerState::RecoverWait);
    pair.connect();
    pair.run_for(3);
    assert_eq!(pair.states(), (ServerState::Normal, ServerState::Normal));
}

#[test]
fn after_a_reconnect_only_the_newest_copy_of_a_binding_is_sent() {
    crate::big_stack(after_a_reconnect_only_the_newest_copy_of_a_binding_is_sent_body);
}

fn after_a_reconnect_only_the_newest_copy_of_a_binding_is_sent_body() {
    let mut pair = Pair::new(8);
    pair.connect();
    pair.run_for(5);
    let a = Ipv4Addr::new(198, 18, 1, 3);
    let mac = [2, 0, 0, 0, 0, 3];
    // Two versions in flight, neither acknowledged, then the connection breaks.
    pair.secondary.auto_commit = false;
    let wall = pair.wall();
    pair.primary.grant(a, mac, wall, 600);
    pair.pump();
    pair.primary.grant(a, mac, wall, 900);
    pair.pump();
    pair.disconnect();
    pair.secondary.auto_commit = true;
    pair.secondary.pending_commits.clear();
    let mark = pair.trace.len();
    pair.connect();
    pair.run_for(3);
    let sent: Vec<_> = primary_bndupds(&pair, mark)
        .into_iter()
        .filter(|(x, _)| *x == a)
        .collect();
    assert_eq!(sent, vec![(a, Some(wall.plus(900).0))]);
}

#[test]
fn draft_primary_takes_another_clients_lease_once_its_own_has_ended() {
    crate::big_stack(draft_primary_takes_another_clients_lease_once_its_own_has_ended_body);
}

fn draft_primary_takes_another_clients_lease_once_its_own_has_ended_body() {
    // §7.1.3 (†): the primary refuses an ACTIVE for another client — while its own lease
    // runs. After the secondary re-leased an address in PARTNER-DOWN, the returning primary's
    // record is an ended lease: refusing kept it, and the primary re-leased the address.
    let hw = |m: &'static [u8; 6]| HardwareAddress {
        htype: 1,
        address: m,
    };
    let mut local = LocalBinding::new(BindingStatus::Active);
    local.client = ClientIdentity::new(None, Some(hw(&[2, 0, 0, 0, 0, 1])));
    local.cltt = Some(UnixTime(T0));
    let now = UnixTime(T0 + 1000);
    let received = Binding {
        hardware_address: Some(hw(&[2, 0, 0, 0, 0, 2])),
        lease_expiration_time: Some(T0 + 1600),
        potential_expiration_time: Some(T0 + 1900),
        client_last_transaction_time: Some(T0 + 990),
        ..Binding::new(Ipv4Addr::new(198, 18, 1, 9), BindingStatus::Active)
    };
    let judge = |l: &LocalBinding| {
        judge_update(
            Dialect::Draft,
            Role::Primary,
            ServerState::Recover,
            Some(l),
            &received,
            now,
            None,
        )
    };
    local.lease_expiration = Some(UnixTime(T0 + 100));
    assert!(judge(&local).is_ok());
    local.lease_expiration = Some(UnixTime(T0 + 5000));
    assert_eq!(judge(&local), Err(RejectReason::FatalConflict));
}

#[test]
fn recover_and_potential_conflict_do_not_swap_forever() {
    crate::big_stack(recover_and_potential_conflict_do_not_swap_forever_body);
}

fn recover_and_potential_conflict_do_not_swap_forever_body() {
    // ISC: RECOVER + partner POTENTIAL-CONFLICT → POTENTIAL-CONFLICT, and ISC's
    // POTENTIAL-CONFLICT + partner RECOVER → RECOVER: two servers meeting in these states
    // swapped them forever. POTENTIAL-CONFLICT now stays, and the pair resolves the conflict.
    let mut pair = Pair::new(8);
    pair.connect();
    pair.run_for(5);
    pair.disconnect();
    let config = support::config(Role::Primary);
    let wall = pair.wall();
    let mut p = pair.primary.persisted.unwrap();
    p.state = ServerState::PotentialConflict;
    pair.primary.persisted = Some(p);
    pair.primary.restart(config, pair.now, wall, false);
    let mut s = pair.secondary.persisted.unwrap();
    s.state = ServerState::Recover;
    pair.secondary.persisted = Some(s);
    pair.secondary
        .restart(support::config(Role::Secondary), pair.now, wall, false);
    pair.connect();
    pair.run_for(120);
    assert!(pair.trace.len() < 2_000, "{} messages", pair.trace.len());
    assert_eq!(pair.states(), (ServerState::Normal, ServerState::Normal));
}

#[test]
fn shutdown_while_recovering_keeps_the_last_operational_time() {
    crate::big_stack(shutdown_while_recovering_keeps_the_last_operational_time_body);
}

fn draft(role: Role) -> failover_fsm::Config {
    let mut c = support::config(role);
    c.dialect = Dialect::Draft;
    c
}

fn shutdown_while_recovering_keeps_the_last_operational_time_body() {
    // Seed 63772 (draft): the primary, shut down in RECOVER-WAIT after the secondary had taken
    // over in PARTNER-DOWN, recorded the shutdown as its last time of operation. At its next
    // start the secondary's PARTNER-DOWN looked older than that, so §9.3.2 step 5 chose
    // POTENTIAL-CONFLICT instead of RECOVER; the connection broke, and in
    // RESOLUTION-INTERRUPTED the primary leased from its FREE pool an address the secondary
    // had leased in PARTNER-DOWN (a double binding).
    let mut pair = dialect_pair(8, Dialect::Draft);
    pair.connect();
    pair.run_for(120);
    assert_eq!(pair.states(), (ServerState::Normal, ServerState::Normal));
    pair.disconnect();
    let now = pair.now;
    pair.primary.engine.shutdown(now);
    pair.pump();
    assert_eq!(pair.primary.engine.state(), ServerState::Shutdown);
    let operated = pair.primary.persisted.unwrap().last_operational;
    assert!(operated.is_some());
    pair.run_for(20);
    let now = pair.now;
    pair.secondary.engine.partner_down(now, false).unwrap();
    pair.pump();
    assert_eq!(pair.secondary.engine.state(), ServerState::PartnerDown);
    pair.run_for(20);
    let wall = pair.wall();
    pair.primary
        .restart(draft(Role::Primary), pair.now, wall, false);
    pair.connect();
    pair.run_for(3);
    assert_eq!(pair.primary.engine.state(), ServerState::RecoverWait);
    // Shut down again before RECOVER-WAIT ends, while cut off from the partner.
    pair.disconnect();
    pair.run_for(20);
    let now = pair.now;
    pair.primary.engine.shutdown(now);
    pair.pump();
    assert_eq!(pair.primary.engine.state(), ServerState::Shutdown);
    assert_eq!(pair.primary.persisted.unwrap().last_operational, operated);
    pair.run_for(20);
    let wall = pair.wall();
    pair.primary
        .restart(draft(Role::Primary), pair.now, wall, false);
    pair.connect();
    pair.run_for(3);
    assert_eq!(pair.secondary.engine.state(), ServerState::PartnerDown);
    assert!(
        matches!(
            pair.primary.engine.state(),
            ServerState::Recover | ServerState::RecoverWait
        ),
        "{:?}",
        pair.states()
    );
}

#[test]
fn an_acknowledged_record_does_not_outrank_the_partners_next_update() {
    // Seed 42862 ("P BACKUP / S FREE" after settling, draft): the primary moved addresses to
    // the secondary (BACKUP, acknowledged) while its clock was 75 s ahead, then restarted with
    // the clock set right. The secondary's next updates of those addresses (ACTIVE, then
    // RELEASED) carried client-last-transaction-times earlier than that start-time-of-state,
    // so the store kept BACKUP over what the engine had accepted and acknowledged, and never
    // sent it again. A record the partner has acknowledged is not ordered by time.
    use failover_fsm::BindingData;
    use failover_fsm::accept::Verdict;
    use failover_fsm::record::Received;

    let a = Ipv4Addr::new(198, 18, 1, 2);
    let ours = |acked: bool| {
        let mut store = support::Store::pool(a, 1);
        let mut data = BindingData::new(a, BindingStatus::Backup);
        data.start_time_of_state = Some(UnixTime(T0 + 100));
        store.update_local(data, true);
        store.leases.get_mut(&a.octets()).unwrap().partner_has_it = acked;
        store
    };
    let mut theirs = BindingData::new(a, BindingStatus::Active)
        .with_client(None, 1, &[2, 0, 0, 0, 0, 8])
        .unwrap();
    theirs.start_time_of_state = Some(UnixTime(T0 + 50));
    theirs.client_last_transaction_time = Some(UnixTime(T0 + 50));
    theirs.lease_expiration_time = Some(UnixTime(T0 + 65));
    theirs.potential_expiration_time = Some(UnixTime(T0 + 72));
    let verdict = Verdict {
        store_as: BindingStatus::Active,
        lease_expiration: Some(UnixTime(T0 + 65)),
        received_pet: Some(UnixTime(T0 + 72)),
        client_changed: true,
        superseded_xid: None,
        ours_in_flight: false,
        ours_dropped: false,
        taken_as_newer: false,
        ours_wins_tie: false,
        partner_time_shift: 0,
        skew_margin: 0,
    };
    // Our BACKUP was acknowledged: the partner's later update wins whatever the times say.
    let mut store = ours(true);
    assert_eq!(store.commit_received(&theirs, &verdict), Received::Stored);
    assert_eq!(
        store.leases[&a.octets()].local.status,
        BindingStatus::Active
    );
    // Not acknowledged (crossing updates): the one with the later time is kept.
    let mut store = ours(false);
    assert_eq!(
        store.commit_received(&theirs, &verdict),
        Received::KeptNewer
    );
    assert_eq!(
        store.leases[&a.octets()].local.status,
        BindingStatus::Backup
    );
}

/// Replays a whole seed of the simulation that failed before a fix, with the default fault
/// phase whatever SIM_SECS says (a violation panics); `extra`: with the fault kinds added later
/// (half-open and duplicate connections, restores from an older copy, MCLT changes).
fn replay(seed: u64, extra: bool) {
    crate::big_stack(move || {
        let mut w = crate::world::World::new(seed, 900, None);
        w.extra_faults = extra;
        w.run(crate::MAX_STEPS);
        assert!(w.stats.steps > 0);
    });
}

/// A seed recorded before the extra fault kinds.
fn seed_passes(seed: u64) {
    replay(seed, false);
}

/// A seed that failed with the fault kinds added later.
fn extra_seed_passes(seed: u64) {
    replay(seed, true);
}

#[test]
fn extra_seed_19800_draft_lowered_mclt_keeps_the_old_wait() {
    extra_seed_passes(19800);
}

#[test]
fn extra_seed_7896_isc_recover_sends_its_backlog_first() {
    extra_seed_passes(7896);
}

#[test]
fn extra_seed_52843_draft_ended_lease_the_partner_freed() {
    extra_seed_passes(52843);
}

#[test]
fn extra_seed_31186_isc_restored_copy_refreshed_in_potential_conflict() {
    extra_seed_passes(31186);
}

#[test]
fn extra_seed_4855_draft_restored_copy_refreshed_in_recover() {
    extra_seed_passes(4855);
}

#[test]
fn extra_seed_2655_draft_incomplete_table_expires_nothing() {
    extra_seed_passes(2655);
}

#[test]
fn extra_seed_7880_draft_sent_release_is_not_rewound() {
    extra_seed_passes(7880);
}

#[test]
fn extra_seed_2028_draft_updreqall_resets_what_the_partner_holds() {
    extra_seed_passes(2028);
}

#[test]
fn seed_63772_draft_shutdown_in_recover_wait() {
    seed_passes(63772);
}

#[test]
fn seed_42862_draft_backup_vs_free() {
    seed_passes(42862);
}

#[test]
fn seed_176827_draft_partner_down_hold_survives_requeue() {
    seed_passes(176827);
}

#[test]
fn seed_22471_isc_queued_copy_dropped_when_partners_binding_taken() {
    seed_passes(22471);
}

#[test]
fn seed_61055_isc_same_second_keeps_the_longer_lease() {
    seed_passes(61055);
}

#[test]
fn seed_63541_draft_same_second_keeps_the_longer_lease() {
    seed_passes(63541);
}

#[test]
fn seed_168751_sent_copy_carries_the_merged_expiry() {
    seed_passes(168751);
}

#[test]
fn seed_79652_isc_refused_record_yields_to_the_partner() {
    seed_passes(79652);
}

#[test]
fn seed_114482_draft_clock_stepped_back_settles() {
    seed_passes(114482);
}

#[test]
fn seed_25721_draft_skew_shifted_expiry_settles() {
    seed_passes(25721);
}

#[test]
fn extra_seed_266106_draft_no_rewind_once_the_partner_holds_it_available() {
    extra_seed_passes(266106);
}

#[test]
fn extra_seed_152468_draft_partner_down_waits_a_clock_margin() {
    extra_seed_passes(152468);
}

#[test]
fn extra_seed_12976_isc_running_lease_never_passes_to_another_client() {
    extra_seed_passes(12976);
}

#[test]
fn extra_seed_68151_draft_crossing_bias_keeps_only_a_running_lease() {
    extra_seed_passes(68151);
}

#[test]
fn extra_seed_263123_isc_partner_down_from_potential_conflict_exempt() {
    extra_seed_passes(263123);
}

#[test]
fn extra_seed_777085_isc_restored_copy_partner_down_exempt() {
    extra_seed_passes(777085);
}

#[test]
fn extra_seed_944702_isc() {
    extra_seed_passes(944702);
}

/// Restored from an older copy, P crashed before the partner's UPDDONE and came back judging
/// the partner's PARTNER-DOWN lease against its stale copy (rejected, then renewed to the old
/// client): the refresh under way is now persisted (`Persisted::lease_table_lost`).
#[test]
fn extra_seed_348627_draft_refresh_survives_a_restart() {
    extra_seed_passes(348627);
}

/// A latency spike during the handshake left the lower skew bound 11 s under the skew, so no
/// correction was applied and the partner's lease ended 10 s early on the primary, which
/// freed the address while the client held it: BNDACKs now raise the lower bound (§5.10).
#[test]
fn extra_seed_767018_draft_skew_floor_refined_by_acks() {
    extra_seed_passes(767018);
}

/// An address tainted by ISC's acceptance of a RELEASED over a newer ACTIVE was cleared while
/// the primary's copy of the lease was still being written; the primary crashed and came back
/// with the address FREE. The harness now clears a taint only on agreeing stable records.
#[test]
fn extra_seed_871436_isc_taint_cleared_on_stable_records() {
    extra_seed_passes(871436);
}

/// A re-sent RELEASED (its BNDACK lost with a duplicate connection) arrived after the primary
/// had moved the address to BACKUP in the same second: the store kept its newer BACKUP, the
/// engine dropped the queued copy as older, and the secondary never heard of it. A store that
/// keeps its record over a re-sent update now queues it again at once.
#[test]
fn extra_seed_466447_draft_kept_record_is_sent_again() {
    extra_seed_passes(466447);
}

/// The same with a secondary's FREE against the primary's BACKUP.
#[test]
fn extra_seed_277136_draft_kept_record_is_sent_again() {
    extra_seed_passes(277136);
}

/// The secondary's RELEASED, its BNDACK lost with the connection, was sent again over the next
/// connection and corrected by a skew estimate 19 s off the first; it no longer matched the
/// update applied before and looked newer than the lease the primary had granted since, which
/// it then freed. The record now compares a re-sent update in the partner's clock
/// (`Verdict::partner_time_shift`). Found by the million-seed run of 2026-12-03; it failed
/// before the lease-record contract too.
#[test]
fn extra_seed_30564403_draft_resent_update_under_a_new_skew() {
    extra_seed_passes(30564403);
}

/// The primary, down longer than the MCLT while the operator had put the secondary in
/// PARTNER-DOWN, came back while the secondary still held its previous connection (half-open,
/// until the secondary's receive timer ran out). Its 15 s of STARTUP ended first, and in
/// COMMUNICATIONS-INTERRUPTED it counted as its own a FREE address the secondary had leased.
/// STARTUP now lasts longer after a long time down (§5.9), measured from the time of operation
/// the engine records every heartbeat (`failover-fsm/tests/startup.rs`). Found by the
/// million-seed run of 2026-12-03; it failed before the lease-record contract too.
#[test]
fn extra_seed_30414378_draft_long_down_restart_meets_the_partner_in_startup() {
    extra_seed_passes(30414378);
}

/// A latency spike slowed the primary's CONNECT by 11 s: the skew bounds were -1 and +10, so
/// 0 fitted and no correction was applied to a secondary whose clock was 10 s behind; its
/// lease was recorded 10 s early and the primary freed the address under its client. While
/// the skew is not proven, a partner's lease now runs to the upper bound here
/// (`Verdict::skew_margin`). Found by the million-seed run of 2026-12-03 (fails at 607ac21).
#[test]
fn extra_seed_32387201_draft_unproven_skew_keeps_the_partners_lease_to_its_upper_bound() {
    extra_seed_passes(32387201);
}

/// A new client's lease took the previous client's longer expiry into the record's binding
/// data (the verdict merged the two); sent on, the partner then refused the secondary's
/// correct EXPIRED forever and the tables never settled. The verdict merges expiries only
/// within one lease now. Found by the million-seed run of 2026-12-03 (fails at 607ac21).
#[test]
fn extra_seed_32438263_draft_a_new_lease_does_not_inherit_the_old_expiry() {
    extra_seed_passes(32438263);
}

/// The secondary acknowledged the primary's EXPIRED while keeping its own newer lease of the
/// client, then sent that lease again on the next connection: queueing it noted ACTIVE as
/// what the partner may hold, and the rewind gave the address back to its client while the
/// primary held it FREE. The ended status now stays until the partner acknowledges ours
/// (`LeaseRecord::queued`), and an acknowledged EXPIRED notes the freed status. Found by the
/// million-seed run of 2026-12-03 (fails at 607ac21).
#[test]
fn extra_seed_32561070_draft_lease_sent_again_does_not_reopen_the_rewind() {
    extra_seed_passes(32561070);
}

/// In RESOLUTION-INTERRUPTED the primary gave an address back to the client of its own ended
/// lease, which the secondary had meanwhile leased to another client in PARTNER-DOWN (the
/// interrupted conflict resolution had not brought it yet). Only a running lease is renewed
/// there now (§9.11.2, `policy::may_allocate_to`). Found by the million-seed run of
/// 2026-12-03 (fails at 607ac21).
#[test]
fn extra_seed_32569622_draft_resolution_interrupted_renews_only_running_leases() {
    extra_seed_passes(32569622);
}

/// ISC dialect: the secondary kept its RELEASED (queued) over the primary's BACKUP sent again;
/// noting BACKUP as the partner's status opened ISC's rewind (RELEASED to anybody while the
/// partner knows the address as our available one) though the primary would free the address
/// on our RELEASED. Made to fail by a first version of the seed-32561070 fix, which noted every
/// non-ACTIVE status; only ended ones are noted whatever of ours is on its way.
#[test]
fn extra_seed_32156737_isc_queued_release_keeps_the_rewind_closed() {
    extra_seed_passes(32156737);
}

/// The same rule in another ISC seed of the rerun.
#[test]
fn extra_seed_32092117_isc_queued_release_keeps_the_rewind_closed() {
    extra_seed_passes(32092117);
}

/// Draft dialect: the primary's RELEASED of a client's lease and the secondary's new lease for
/// the same client crossed a second apart, the secondary's client-last-transaction-time the
/// earlier by the clocks. The engine ordered the renewal after the release (crossing updates
/// within the clocks' uncertainty keep the lease), but the primary's record kept its RELEASED
/// for its later time, sent it again on the next connection, and freed the address once the
/// secondary took it while the client still held the secondary's lease. The record now keeps
/// what the engine took as newer (`Verdict::taken_as_newer`), and the engine's copy in flight
/// is stale. Found by a 100,000-seed run of 2026-12-03 (fails at 19072c4).
#[test]
fn extra_seed_54068510_draft_crossing_renewal_is_kept_over_our_release() {
    extra_seed_passes(54068510);
}

/// ISC dialect: the secondary kept its RELEASED (ours, newer) over the primary's BACKUP sent
/// again, acknowledged it (noting BACKUP as the primary's status) and queued its RELEASED
/// again; ISC's rewind then gave the address to a new client in NORMAL while the primary took
/// the RELEASED and stored FREE, its own. Queued again, an ended status of ours closes the
/// rewind as it does when first sent (`LeaseRecord::queued_again`). Found by a 200,000-seed
/// run of 2026-12-03 (fails at 19072c4).
#[test]
fn extra_seed_56136648_isc_release_queued_again_closes_the_rewind() {
    extra_seed_passes(56136648);
}

/// Draft dialect: both servers answered one client's broadcast REQUEST in the same second, the
/// secondary with a longer lease. It took the primary's shorter lease with the later expiry
/// merged in, noted the partner as knowing the record, and its queued copy of the longer lease
/// was lost when it crashed: the primary expired its shorter lease, and the secondary refused
/// that EXPIRED for good. A merged longer lease of ours now counts as unknown to the partner
/// (the backlog sends it). Found by a 200,000-seed run of 2026-12-03 (fails at 19072c4).
#[test]
fn extra_seed_59074511_draft_merged_longer_lease_goes_to_the_partner() {
    extra_seed_passes(59074511);
}

/// Draft dialect: the secondary's RELEASED crossed a reconnection (its BNDACK lost with the
/// duplicate connection); the primary had stored it as FREE and moved the address to the
/// secondary as BACKUP, a second earlier by its clock than the RELEASED by the secondary's (one
/// second of skew, too little to prove a correction). The secondary kept its RELEASED, sent
/// again, as the newer; the primary kept its BACKUP over that re-sent update; the BNDACK of the
/// RELEASED then freed the address on the secondary: BACKUP on one side, FREE on the other. A
/// pool move's start-time-of-state is now never earlier than the times of the version it
/// replaces (`LeaseRecord::given_to_partner`). Found by a 200,000-seed run of 2026-12-03 (fails
/// the same way before the 59074511 fix).
#[test]
fn extra_seed_60023994_draft_pool_move_is_not_older_than_the_release_it_follows() {
    extra_seed_passes(60023994);
}

/// ISC dialect: the primary's BACKUP, sent again after its BNDACK was lost with a connection,
/// crossed the secondary's FREE (a balancing give-back); the secondary kept its newer record
/// over the re-sent update and queued it again ahead of its BNDACK, so the primary, its own
/// update still in flight, rejected the FREE by ISC's rule for dueling updates, twice: BACKUP
/// on one side, FREE on the other. Our update of an address now waits for our BNDACK of the
/// partner's update of it. Found by the million-seed run of 2026-12-04 at dc90abb.
#[test]
fn extra_seed_80763798_isc_our_update_waits_for_our_bndack() {
    extra_seed_passes(80763798);
}

/// Draft dialect: the primary restarted with its MCLT lowered from 30 to 20 s; the secondary,
/// in COMMUNICATIONS-INTERRUPTED meanwhile, had extended a lease to the acknowledged PET plus
/// the old MCLT (705 + 30) and crashed before sending it. The primary kept the old MCLT for its
/// waits only until agreement plus it (699 + 30) and in PARTNER-DOWN was about to hand the
/// address to another client at 730. The old MCLT now lasts until the latest acknowledged PET
/// plus it (`Engine::restore_received_pet` at start). Found by the million-seed run of
/// 2026-12-04 at dc90abb.
#[test]
fn extra_seed_80573806_draft_lowered_mclt_waits_past_the_acknowledged_pet() {
    extra_seed_passes(80573806);
}

/// ISC dialect: the primary crashed silently (its secondary's connection to it stayed up,
/// half-open), the operator declared PARTNER-DOWN on the secondary 10 s later, and the primary
/// came back 16 s after its last recorded operation, less than the MCLT (20 s): its 15-s
/// STARTUP could not meet the secondary, which closed the new connection while it held the
/// old one until its receive timer ran out — 11 ms after the primary's STARTUP had ended in
/// COMMUNICATIONS-INTERRUPTED. The primary gave a FREE address to a client just as the
/// secondary's PARTNER-DOWN wait for it ended. STARTUP after a short time down now lasts
/// until the long wait after the last message may have gone (last operation plus a
/// heartbeat); the primary meets the partner in PARTNER-DOWN and goes to RECOVER (§9.3.2
/// step 5). Found by the million-seed run of 2026-12-04 at 9fd9a58.
#[test]
fn extra_seed_82845043_isc_short_startup_outlasts_the_partners_old_connection() {
    extra_seed_passes(82845043);
}

/// Draft dialect: on entering NORMAL, the primary's pool move (BACKUP) of an address its
/// client had just released crossed the secondary's FREE of it, both stamped with the same
/// second. Each server took the other's (the times said neither was older): FREE on the
/// primary, BACKUP on the secondary, and both could lease the address. Equal times now keep
/// the primary's on both sides (`Verdict::ours_wins_tie`). Found at 1fe9e53 by the seeds
/// run after the STARTUP fix of 82845043 (which changed this seed's timing).
#[test]
fn extra_seed_83137859_draft_crossing_updates_of_one_second_keep_the_primarys() {
    extra_seed_passes(83137859);
}

/// Draft dialect, found by the first million-seed run at the 83137859 fix (`e55e8d8`), with
/// five more of its kind: the primary's record of a released address was FREE and not
/// acknowledged (a merged later expiry, sent back to the partner), and the secondary leased the
/// address to a new client in the same second. The tie rule kept the primary's FREE over the
/// secondary's ACTIVE, which the secondary would never take in turn (it refuses a FREE while
/// its lease runs): FREE under a client's lease. Equal times now keep ours only against the
/// partner's FREE, BACKUP, EXPIRED or RELEASED, and only when ours is on the wire.
#[test]
fn extra_seed_84722595_draft_a_tie_never_keeps_ours_over_the_partners_lease() {
    extra_seed_passes(84722595);
}
