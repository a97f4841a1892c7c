//! Leases shorter than ISC's 65-second expiry allowance, in the ISC dialect: a primary
//! restarted from a stale lease table expires leases that the secondary renewed while it was
//! down, and its EXPIREDs cross the secondary's backlog (found by the DHCP-server lab test that
//! kills the primary while clients renew: 20-second leases, MCLT 10).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

use std::net::Ipv4Addr;

use failover_fsm::policy::{
    LeaseRequest, LeaseTimes, PartnerDownLeases, expires_leases, lease_time,
};
use failover_fsm::record::LeaseClient;
use failover_fsm::{BindingStatus, Dialect, Instant, ServerState, UnixTime};
use failover_testkit::support::{Node, Pair};

const MCLT: u32 = 10;
const CLIENTS: [u8; 3] = [1, 2, 3];

fn client(mac: &[u8; 6]) -> LeaseClient<'_> {
    LeaseClient {
        client_identifier: None,
        htype: 1,
        chaddr: mac,
    }
}

fn mac(i: u8) -> [u8; 6] {
    [2, 0, 0, 0, 0, i]
}

fn address(i: u8) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 1, i)
}

/// `node` grants (or renews) `address(i)` to client `i` for 20 s as a DHCP server does: the
/// library's lease time for its state, the record's binding, queued for the partner. Returns
/// the lease's end in the node's clock.
fn serve(node: &mut Node, now: Instant, sim_wall: UnixTime, i: u8) -> u32 {
    let wall = node.wall(sim_wall);
    let endpoint = node.engine.endpoint(now);
    let mac = mac(i);
    let record = node.store.record(address(i).octets()).clone();
    let same = record.holds(&client(&mac).identity());
    let grant = lease_time(
        &endpoint,
        &LeaseRequest {
            now: wall,
            desired: 20,
            times: LeaseTimes::for_client(&record.local, same),
            partner_down: PartnerDownLeases::KeepMclt,
        },
    );
    let data = record.granted(&client(&mac), &grant, wall).unwrap();
    node.store.update_local(data.clone(), true);
    node.send(data, false);
    grant.lease_expiration.0
}

/// Three clients (addresses 1 to 3) leased by the primary, renewed by the secondary while the
/// primary is down; the primary restarted from its table after its own records ended, at
/// `restart_after` seconds past the renewals, expiring the leases at once, last address
/// first. Each server accepts one BNDUPD at a time, so the last renewal is still queued at the
/// secondary, behind the first, when the primary's EXPIRED for it arrives. The primary's clock is `primary_ahead` seconds ahead.
/// Returns the pair (connected, messages delivered) and the renewed leases' end (secondary's
/// clock).
fn restarted_primary_expires_renewed_leases(
    primary_ahead: i64,
    restart_after: u64,
) -> (Box<Pair>, u32) {
    let mut pair = Box::new(Pair::with_config(6, |c| {
        c.dialect = Dialect::Isc;
        c.mclt = MCLT;
        c.max_unacked_bndupd = 1;
    }));
    pair.primary.skew = primary_ahead;
    pair.connect();
    pair.run_for(5);
    assert_eq!(pair.states(), (ServerState::Normal, ServerState::Normal));

    // The primary leases both addresses (a first lease: the MCLT); the secondary records them.
    let (now, wall) = (pair.now, pair.wall());
    for i in CLIENTS {
        serve(&mut pair.primary, now, wall, i);
    }
    pair.pump();
    for i in CLIENTS {
        let r = &pair.secondary.store.leases[&address(i).octets()];
        assert_eq!(r.local.status, BindingStatus::Active);
    }

    // The primary dies with those records on its disk; the clients rebind with the secondary,
    // which extends each lease by up to the MCLT.
    pair.disconnect();
    pair.run_for(7);
    assert_eq!(
        pair.secondary.engine.state(),
        ServerState::CommunicationsInterrupted
    );
    let (now, wall) = (pair.now, pair.wall());
    let renewed_end = serve(&mut pair.secondary, now, wall, 1);
    for i in [2, 3] {
        assert_eq!(serve(&mut pair.secondary, now, wall, i), renewed_end);
    }

    // The primary comes back after its own records ended and expires both leases at once.
    pair.run_for(restart_after);
    let (now, wall) = (pair.now, pair.wall());
    let config = pair.primary.engine.config().clone();
    pair.primary.restart(config, now, wall, false);
    let primary_wall = pair.primary.wall(wall);
    assert!(expires_leases(&pair.primary.engine.endpoint(now)));
    for i in CLIENTS.into_iter().rev() {
        let record = &pair.primary.store.leases[&address(i).octets()];
        let expired = record
            .expired(primary_wall)
            .expect("ended in the primary's table");
        pair.primary.store.update_local(expired.clone(), true);
        pair.primary.send(expired, false);
    }
    assert!(wall.0 < renewed_end, "the clients' leases still run");

    // Both back to NORMAL: the secondary's backlog and the primary's EXPIREDs cross.
    pair.connect();
    pair.run_for(2);
    assert_eq!(pair.states(), (ServerState::Normal, ServerState::Normal));
    (pair, renewed_end)
}

/// Runs `test` on a thread with room for two engines of the test kit's size on its stack.
fn with_stack(test: fn()) {
    std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(test)
        .unwrap()
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e));
}

/// Both servers hold every client's renewed lease.
fn assert_both_hold_the_renewals(pair: &Pair, renewed_end: u32) {
    for node in [&pair.primary, &pair.secondary] {
        for i in CLIENTS {
            let r = &node.store.leases[&address(i).octets()];
            assert_eq!(
                (r.local.status, r.local.lease_expiration.map(|t| t.0)),
                (BindingStatus::Active, Some(renewed_end)),
                "{} {}",
                node.name,
                address(i)
            );
        }
    }
}

#[test]
fn a_restarted_primarys_early_expiry_is_refused_while_the_secondarys_renewal_runs() {
    with_stack(|| {
        // Clocks agree: the secondary's renewals run 6 s more when the primary's EXPIREDs come.
        let (pair, renewed_end) = restarted_primary_expires_renewed_leases(0, 4);
        // ISC's 65-s allowance took them, and the primary freed both addresses on the BNDACKs
        // while the clients held them. The measured skew (0) allows a second.
        for i in CLIENTS {
            assert!(
                !pair
                    .primary
                    .acked
                    .contains(&(address(i).octets(), BindingStatus::Expired)),
                "the secondary acknowledged the EXPIRED of {}, a lease it holds until {renewed_end}",
                address(i)
            );
        }
        assert_both_hold_the_renewals(&pair, renewed_end);
    });
}

#[test]
fn an_expiry_taken_within_the_skew_does_not_strand_the_secondarys_renewal() {
    with_stack(|| {
        // The primary comes back a second before the renewals end: within what the measured
        // skew allows (a second), so the secondary takes its EXPIREDs, keeps its newer records
        // and must send them again. The copy of the last one was still queued behind the first,
        // and the engine dropped it as superseded (ISC's rule); the record kept it as "still in
        // the backlog", so nothing sent it, and the primary, which freed the address on the
        // BNDACK, kept it free while the client held the lease from the secondary.
        let (pair, renewed_end) = restarted_primary_expires_renewed_leases(0, 19);
        assert!(
            pair.primary
                .acked
                .contains(&(address(3).octets(), BindingStatus::Expired)),
            "the secondary took the EXPIRED within the skew"
        );
        assert_both_hold_the_renewals(&pair, renewed_end);
    });
}
