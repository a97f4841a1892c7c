//! The operator's view: every counter of `Status::counters` and the fields added for issue 13,
//! each driven through the engine and asserted exactly; and the operator's PARTNER-DOWN,
//! refused unless communications are interrupted or it is forced.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

use std::net::Ipv4Addr;

use failover_fsm::{
    BindingStatus, Counters, EngineError, Instant, RejectReason, Role, ServerState, UnixTime,
};
use failover_proto::{Connect, Hba, Repr, Text};
use failover_testkit::support::{self, Node, Pair, Store, T0};

fn counters(n: &Node, now: Instant) -> Counters {
    n.engine.status(now).counters
}

/// A pair in NORMAL, with the BNDUPDs of the primary's pool balancing behind it.
fn normal_pair() -> Pair {
    let mut pair = Pair::new(8);
    pair.connect();
    pair.run_for(5);
    assert_eq!(pair.states(), (ServerState::Normal, ServerState::Normal));
    pair
}

fn sent(pair: &Pair, from_primary: bool, name: &str) -> u32 {
    pair.trace_types()
        .iter()
        .filter(|(p, t)| *p == from_primary && *t == name)
        .count() as u32
}

#[test]
fn bndupd_and_bndack_counts_match_the_wire_on_both_sides() {
    let mut pair = normal_pair();
    // Pool balancing moved the secondary's share as BACKUP bindings.
    let backups = pair.secondary.store.count(BindingStatus::Backup) as u32;
    assert!(backups > 0);
    let wall = pair.wall();
    for i in 0..3u8 {
        let addr = Ipv4Addr::new(198, 18, 1, i);
        pair.primary.grant(addr, [2, 0, 0, 0, 0, i], wall, 600);
    }
    pair.secondary
        .grant(Ipv4Addr::new(198, 18, 1, 7), [2, 0, 0, 0, 0, 7], wall, 600);
    pair.pump();
    let now = pair.now;
    let (p, s) = (counters(&pair.primary, now), counters(&pair.secondary, now));
    // The balancing, then our 3 leases; the secondary sent its one lease. Every message
    // delivered is counted once at each end.
    assert_eq!(p.bndupd_sent, backups + 3);
    assert_eq!(p.bndupd_sent, sent(&pair, true, "BNDUPD"));
    assert_eq!(s.bndupd_received, p.bndupd_sent);
    assert_eq!(s.bndack_sent, p.bndupd_sent);
    assert_eq!(p.bndack_received, p.bndupd_sent);
    assert_eq!(s.bndupd_sent, 1);
    assert_eq!(p.bndupd_received, 1);
    assert_eq!(p.bndack_sent, 1);
    assert_eq!(s.bndack_received, 1);
    assert_eq!(p.bndack_sent, sent(&pair, true, "BNDACK"));
    // Nothing rejected, nothing dropped.
    for c in [p, s] {
        assert_eq!((c.rejects_sent_total(), c.rejects_received_total()), (0, 0));
        assert_eq!(c.updates_dropped, 0);
    }
    let st = pair.primary.engine.status(now);
    assert_eq!((st.queued, st.unacked_sent), (0, 0));
}

#[test]
fn a_rejected_binding_is_counted_by_reason_on_both_sides_and_as_dropped() {
    let mut pair = normal_pair();
    let now = pair.now;
    let before = counters(&pair.primary, now).bndupd_sent;
    // An address outside the secondary's pool: reject-reason 1 (§7.1.3).
    let wall = pair.wall();
    pair.primary
        .grant(Ipv4Addr::new(198, 18, 9, 9), [2, 0, 0, 0, 0, 9], wall, 600);
    pair.pump();
    let (p, s) = (counters(&pair.primary, now), counters(&pair.secondary, now));
    assert_eq!(p.bndupd_sent, before + 1);
    assert_eq!(s.rejects_sent(RejectReason::IllegalIpAddress), 1);
    assert_eq!(s.rejects_sent_total(), 1);
    assert_eq!(p.rejects_received(RejectReason::IllegalIpAddress), 1);
    assert_eq!(p.rejects_received_total(), 1);
    assert_eq!(p.rejects_sent_total(), 0);
    assert_eq!(s.rejects_received_total(), 0);
    // The rejected update leaves the queue; it is not sent again at once (§7.2.2).
    assert_eq!(p.updates_dropped, 1);
    assert_eq!(s.updates_dropped, 0);
    assert_eq!(
        p.rejects().collect::<Vec<_>>(),
        [(RejectReason::IllegalIpAddress, 0, 1)]
    );
}

#[test]
fn a_silent_partner_is_disconnected_with_17_counted_at_both_ends() {
    let mut pair = normal_pair();
    pair.secondary_silent = true;
    pair.run_for(20);
    let now = pair.now;
    let (p, s) = (counters(&pair.primary, now), counters(&pair.secondary, now));
    // The primary's receive timer (15 s) ran out: DISCONNECT(17), delivered before the close.
    assert_eq!(p.rejects_sent(RejectReason::NoTraffic), 1);
    assert_eq!(p.rejects_sent_total(), 1);
    assert_eq!(s.rejects_received(RejectReason::NoTraffic), 1);
    assert_eq!(s.rejects_received_total(), 1);
    assert!(!pair.connected);
}

#[test]
fn a_refused_connect_is_counted_as_sent_and_as_received() {
    // The primary's relationship name differs: the secondary answers reject-reason 8.
    let mut pair = Pair::new(4);
    let mut config = support::config(Role::Primary);
    config.relationship_name = heapless::Vec::from_slice(b"other").unwrap();
    pair.primary = Node::new(
        "P",
        config,
        Store::pool(Ipv4Addr::new(198, 18, 1, 0), 4),
        pair.now,
        pair.wall(),
    );
    pair.connect();
    let now = pair.now;
    let (p, s) = (counters(&pair.primary, now), counters(&pair.secondary, now));
    assert_eq!(s.rejects_sent(RejectReason::InvalidPartner), 1);
    assert_eq!(s.rejects_sent_total(), 1);
    assert_eq!(p.rejects_received(RejectReason::InvalidPartner), 1);
    assert_eq!(p.rejects_received_total(), 1);
    assert_eq!(
        pair.primary.engine.status(now).relationship_name.as_bytes(),
        b"other"
    );
    assert_eq!(
        pair.secondary.engine.status(now).relationship_name.as_str(),
        Some("fo-test")
    );
}

#[test]
fn state_entries_are_counted() {
    let mut pair = normal_pair();
    let now = pair.now;
    // A brand-new server starts as RECOVER (§9.3.2) and reaches NORMAL from there.
    for n in [&pair.primary, &pair.secondary] {
        let c = counters(n, now);
        assert_eq!(
            (c.recover, c.communications_interrupted, c.partner_down),
            (1, 0, 0)
        );
    }
    // Twice interrupted and back; then the operator's PARTNER-DOWN on the secondary.
    for _ in 0..2 {
        pair.disconnect();
        pair.run_for(1);
        assert_eq!(
            pair.states(),
            (
                ServerState::CommunicationsInterrupted,
                ServerState::CommunicationsInterrupted
            )
        );
        pair.connect();
        pair.run_for(5);
        assert_eq!(pair.states(), (ServerState::Normal, ServerState::Normal));
    }
    pair.disconnect();
    let now = pair.now;
    pair.secondary.engine.partner_down(now, false).unwrap();
    pair.pump();
    let (p, s) = (counters(&pair.primary, now), counters(&pair.secondary, now));
    assert_eq!(p.communications_interrupted, 3);
    assert_eq!(s.communications_interrupted, 3);
    assert_eq!((p.partner_down, s.partner_down), (0, 1));
    // The primary restarts with its storage lost: RECOVER once more, on a fresh engine.
    let (now, wall) = (pair.now, pair.wall());
    pair.primary
        .restart(support::config(Role::Primary), now, wall, true);
    pair.connect();
    pair.run_for(1);
    let p = counters(&pair.primary, pair.now);
    assert_eq!(pair.primary.engine.state(), ServerState::RecoverWait);
    assert_eq!((p.recover, p.communications_interrupted), (1, 0));
}

#[test]
fn our_unsent_copy_superseded_by_the_partners_binding_is_dropped() {
    // The secondary takes one BNDUPD at a time: the primary's second update waits unsent.
    let first = Ipv4Addr::new(198, 18, 1, 0);
    let mut pair = Pair::new(8);
    let mut config = support::config(Role::Secondary);
    config.max_unacked_bndupd = 1;
    pair.secondary = Node::new("S", config, Store::pool(first, 8), pair.now, pair.wall());
    pair.connect();
    pair.run_for(5);
    assert_eq!(pair.states(), (ServerState::Normal, ServerState::Normal));
    let wall = pair.wall();
    let (a, b) = (Ipv4Addr::new(198, 18, 1, 1), Ipv4Addr::new(198, 18, 1, 2));
    let mac = [2, 0, 0, 0, 0, 1];
    // The client's lease of `a`, known to both.
    pair.primary.grant(a, mac, wall, 600);
    pair.pump();
    pair.disconnect();
    pair.run_for(10);
    // Apart, the primary leases `b` and renews `a`; the secondary renews `a` later, for
    // longer. On reconnection the secondary's renewal arrives while the primary's copy still
    // waits behind `b`: it is stale, and dropped unsent.
    let wall = pair.wall();
    pair.primary.grant(b, [2, 0, 0, 0, 0, 2], wall, 600);
    pair.primary.grant(a, mac, wall, 600);
    pair.run_for(5);
    let wall = pair.wall();
    pair.secondary.grant(a, mac, wall, 1200);
    let before = counters(&pair.primary, pair.now);
    pair.connect();
    pair.run_for(5);
    let now = pair.now;
    let (p, s) = (counters(&pair.primary, now), counters(&pair.secondary, now));
    assert_eq!(p.bndupd_sent - before.bndupd_sent, 1, "only `b` went out");
    assert_eq!((p.updates_dropped, s.updates_dropped), (1, 0));
    assert_eq!(
        (p.rejects_received_total(), s.rejects_received_total()),
        (0, 0)
    );
    assert_eq!(
        pair.primary.store.leases[&a.octets()]
            .local
            .lease_expiration,
        Some(wall.plus(1200))
    );
}

#[test]
fn our_copy_in_flight_superseded_then_the_connection_lost_is_dropped() {
    let mut pair = normal_pair();
    let addr = Ipv4Addr::new(198, 18, 1, 1);
    let mac = [2, 0, 0, 0, 0, 1];
    let mut buf = vec![0u8; 2048];
    // The primary renews the client's lease: its BNDUPD leaves, and is never delivered.
    let wall = pair.wall();
    pair.primary.grant(addr, mac, wall, 600);
    pair.primary.drain_events();
    let now = pair.now;
    assert!(
        pair.primary
            .engine
            .poll_transmit(now, &mut buf, &pair.primary.store)
            .is_some()
    );
    assert_eq!(pair.primary.engine.status(now).unacked_sent, 1);
    // Two seconds later the secondary renews it for longer; that BNDUPD is delivered: the
    // primary takes it, and its own copy in flight is stale.
    pair.now = pair.now + std::time::Duration::from_secs(2);
    let (now, wall) = (pair.now, pair.wall());
    pair.secondary.grant(addr, mac, wall, 1200);
    pair.secondary.drain_events();
    let n = pair
        .secondary
        .engine
        .poll_transmit(now, &mut buf, &pair.secondary.store)
        .unwrap();
    let p = &mut pair.primary;
    p.handle(now, wall, &buf[..n]).unwrap();
    p.drain_events();
    assert_eq!(counters(p, now).updates_dropped, 0, "still in flight");
    // The connection drops before its BNDACK: the stale copy is not sent again.
    pair.disconnect();
    let c = counters(&pair.primary, pair.now);
    assert_eq!(c.updates_dropped, 1);
    assert_eq!(c.rejects_received_total(), 0);
    assert_eq!(pair.primary.engine.status(pair.now).queued, 0);
    let sent = c.bndupd_sent;
    pair.connect();
    pair.run_for(5);
    assert_eq!(pair.states(), (ServerState::Normal, ServerState::Normal));
    assert_eq!(counters(&pair.primary, pair.now).bndupd_sent, sent);
}

#[test]
fn status_shows_the_configuration_and_measurements() {
    let mut pair = normal_pair();
    let now = pair.now;
    let p = pair.primary.engine.status(now);
    let s = pair.secondary.engine.status(now);
    assert_eq!(p.relationship_name.to_string(), "fo-test");
    assert_eq!((p.receive_timer, p.partner_receive_timer), (15, 15));
    assert_eq!((p.max_unacked_bndupd, p.partner_max_unacked), (10, 10));
    assert_eq!(p.load_balance_max_seconds, 0);
    // split 128: half the buckets each.
    assert_eq!((p.buckets_served(), s.buckets_served()), (128, 128));
    // Same clocks, no latency: both bounds 0.
    assert_eq!((p.clock_skew, p.clock_skew_lower), (Some(0), Some(0)));
    assert_eq!(p.last_contact, Some(UnixTime(T0 + 5)));
    assert_eq!(
        p.last_contact,
        Some(pair.primary.engine.wall_at(p.last_received.unwrap()))
    );
    // The partner's clock is 3 s behind ours from now on: the next messages measure it.
    pair.secondary.skew = -3;
    pair.disconnect();
    pair.connect();
    pair.run_for(5);
    let p = pair.primary.engine.status(pair.now);
    assert_eq!((p.clock_skew, p.clock_skew_lower), (Some(3), Some(3)));
}

#[test]
fn operator_partner_down_in_normal_only_forced() {
    let mut pair = normal_pair();
    let now = pair.now;
    // NORMAL: the partner is talking to us, it may be serving clients.
    assert_eq!(
        pair.primary.engine.partner_down(now, false),
        Err(EngineError::NotInterrupted {
            state: ServerState::Normal
        })
    );
    pair.pump();
    assert_eq!(pair.states(), (ServerState::Normal, ServerState::Normal));
    assert_eq!(counters(&pair.primary, now).partner_down, 0);
    // Forced, it goes (ISC's OMAPI allows it from any state).
    pair.primary.engine.partner_down(now, true).unwrap();
    assert_eq!(pair.primary.engine.state(), ServerState::PartnerDown);
    // Again: nothing to do.
    assert_eq!(pair.primary.engine.partner_down(now, false), Ok(()));
    assert_eq!(counters(&pair.primary, now).partner_down, 1);
}

#[test]
fn operator_partner_down_from_communications_interrupted() {
    let mut pair = normal_pair();
    pair.disconnect();
    let now = pair.now;
    assert_eq!(
        pair.secondary.engine.state(),
        ServerState::CommunicationsInterrupted
    );
    pair.secondary.engine.partner_down(now, false).unwrap();
    assert_eq!(pair.secondary.engine.state(), ServerState::PartnerDown);
}

#[test]
fn forced_partner_down_follows_the_draft_rule_book() {
    // Under draft rules a RECOVER server has no operator PARTNER-DOWN (§9.5.3).
    let mut config = support::config(Role::Secondary);
    config.dialect = failover_fsm::Dialect::Draft;
    let mut n = Node::new(
        "S",
        config,
        Store::pool(Ipv4Addr::new(198, 18, 1, 0), 4),
        Instant::ZERO,
        UnixTime(T0),
    );
    let later = Instant::from_millis(20_000);
    n.engine.handle_timeout(later);
    n.drain_events();
    assert_eq!(n.engine.state(), ServerState::Recover);
    assert_eq!(
        n.engine.partner_down(later, false),
        Err(EngineError::NotInterrupted {
            state: ServerState::Recover
        })
    );
    assert_eq!(
        n.engine.partner_down(later, true),
        Err(EngineError::NoTransition {
            state: ServerState::Recover
        })
    );
    assert_eq!(n.engine.state(), ServerState::Recover);
}

#[test]
fn a_connect_refused_on_the_wire_counts_one_reject_sent() {
    // The hand-made CONNECT of a stranger relationship, to a lone secondary.
    let mut n = Node::new(
        "S",
        support::config(Role::Secondary),
        Store::pool(Ipv4Addr::new(198, 18, 1, 0), 4),
        Instant::ZERO,
        UnixTime(T0),
    );
    n.engine.connection_up(Instant::ZERO).unwrap();
    let c = Connect {
        time: T0,
        xid: 5,
        relationship_name: Text::from("stranger"),
        max_unacked_bndupd: 10,
        receive_timer: 15,
        vendor_class: Text::from("test"),
        protocol_version: 1,
        mclt: 60,
        hba: Hba::split(128),
        ..Connect::default()
    };
    let mut bytes = vec![0; c.buffer_len()];
    c.emit(&mut bytes).unwrap();
    n.handle(Instant::ZERO, UnixTime(T0), &bytes).unwrap();
    n.drain_events();
    // Counted when it goes out, not when decided.
    assert_eq!(counters(&n, Instant::ZERO).rejects_sent_total(), 0);
    let mut buf = [0u8; 2048];
    let len = n
        .engine
        .poll_transmit(Instant::ZERO, &mut buf, &n.store)
        .unwrap();
    assert!(matches!(Repr::parse(&buf[..len]), Ok(Repr::ConnectAck(_))));
    let c = counters(&n, Instant::ZERO);
    assert_eq!(c.rejects_sent(RejectReason::InvalidPartner), 1);
    assert_eq!(c.rejects_sent_total(), 1);
    assert_eq!((c.bndupd_received, c.bndack_sent), (0, 0));
}
