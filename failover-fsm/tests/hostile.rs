//! Malformed and out-of-place input: each gets the draft's answer (CONNECTACK or BNDACK reject,
//! DISCONNECT and close) and an event, never a panic, and leaves the engine usable.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

use std::net::Ipv4Addr;

use failover_fsm::{
    Action, BindingStatus, Config, Event, Instant, Link, RejectReason, Role, ServerState, UnixTime,
};
use failover_proto::{
    Binding, BindingAck, BindingList, BndAck, BndUpd, Connect, ConnectAck, Hba, Repr, State, Text,
};
use failover_testkit::support::{Node, Store, T0, TestEngine};

fn node(role: Role) -> Node {
    node_with(role, |_| {})
}

fn node_with(role: Role, adjust: impl FnOnce(&mut Config)) -> Node {
    let mut config = Config::new(role, "fo-test", 60);
    config.receive_timer = 15;
    adjust(&mut config);
    Node::new(
        "us",
        config,
        Store::pool(Ipv4Addr::new(198, 18, 1, 0), 8),
        Instant::ZERO,
        UnixTime(T0),
    )
}

/// Delivers `bytes`, then returns everything the engine sends.
fn feed(n: &mut Node, now: Instant, wall: u32, bytes: &[u8]) -> Vec<Vec<u8>> {
    n.handle(now, UnixTime(wall), bytes).unwrap();
    n.drain_events();
    let mut out = Vec::new();
    let mut buf = [0u8; 2048];
    while let Some(len) = n.engine.poll_transmit(now, &mut buf, &n.store) {
        out.push(buf[..len].to_vec());
        n.drain_events();
    }
    n.drain_events();
    out
}

fn connect(name: &str, time: u32) -> Vec<u8> {
    let c = Connect {
        time,
        xid: 77,
        relationship_name: Text::from(name),
        max_unacked_bndupd: 10,
        receive_timer: 15,
        vendor_class: Text::from("test"),
        protocol_version: 1,
        mclt: 60,
        hba: Hba::split(128),
        ..Connect::default()
    };
    let mut b = vec![0; c.buffer_len()];
    c.emit(&mut b).unwrap();
    b
}

fn state(s: ServerState) -> Vec<u8> {
    let m = State {
        time: T0,
        xid: 78,
        server_state: s,
        server_flags: failover_proto::ServerFlags::EMPTY,
        start_time_of_state: T0,
        extra: Default::default(),
        digest: None,
    };
    let mut b = vec![0; 30];
    m.emit(&mut b).unwrap();
    b
}

fn bndupd(xid: u32, addr: Ipv4Addr) -> Vec<u8> {
    let b = Binding::new(addr, BindingStatus::Backup);
    let u = BndUpd::single(T0, xid, &b);
    let mut out = vec![0; u.buffer_len()];
    u.emit(&mut out).unwrap();
    out
}

fn types(msgs: &[Vec<u8>]) -> Vec<&'static str> {
    msgs.iter()
        .map(|m| Repr::parse(m).unwrap().message_type().name())
        .collect()
}

/// A secondary with an established link (CONNECT accepted, STATE exchanged).
fn linked_secondary() -> Node {
    link_secondary(node(Role::Secondary))
}

fn link_secondary(mut n: Node) -> Node {
    n.engine.connection_up(Instant::ZERO).unwrap();
    let out = feed(&mut n, Instant::ZERO, T0, &connect("fo-test", T0));
    assert_eq!(types(&out), ["CONNECTACK", "STATE"]);
    feed(&mut n, Instant::ZERO, T0, &state(ServerState::Normal));
    assert_eq!(n.engine.link(), Link::Up);
    n
}

fn closed_with(n: &Node, out: &[Vec<u8>], reason: RejectReason) {
    let Ok(Repr::Disconnect(d)) = Repr::parse(out.last().unwrap()) else {
        panic!("expected DISCONNECT, got {:?}", types(out))
    };
    assert_eq!(d.reject_reason, reason);
    assert!(n.close_requested);
    assert_eq!(n.engine.link(), Link::Closing);
}

#[test]
fn wrong_relationship_name_is_rejected_with_8() {
    let mut n = node(Role::Secondary);
    n.engine.connection_up(Instant::ZERO).unwrap();
    let out = feed(&mut n, Instant::ZERO, T0, &connect("other", T0));
    let Ok(Repr::ConnectAck(a)) = Repr::parse(&out[0]) else {
        panic!()
    };
    assert_eq!(
        (a.xid, a.reject_reason),
        (77, Some(RejectReason::InvalidPartner))
    );
    assert!(n.close_requested);
    assert!(n.saw(|e| matches!(
        e,
        Event::ConnectionRejected {
            reason: RejectReason::InvalidPartner,
            by_partner: false
        }
    )));
}

#[test]
fn clock_skew_beyond_the_limit_is_rejected_with_4_and_a_later_connect_works() {
    let mut n = node(Role::Secondary);
    n.engine.connection_up(Instant::ZERO).unwrap();
    // The partner's clock is two minutes behind.
    let out = feed(&mut n, Instant::ZERO, T0, &connect("fo-test", T0 - 120));
    let Ok(Repr::ConnectAck(a)) = Repr::parse(&out[0]) else {
        panic!()
    };
    assert_eq!(a.reject_reason, Some(RejectReason::TimeMismatch));
    assert_eq!(n.engine.status(Instant::ZERO).clock_skew, Some(120));
    n.engine.connection_down(Instant::ZERO);
    n.close_requested = false;
    // Clocks agree again: the next connection is accepted.
    n.engine.connection_up(Instant::from_secs(60)).unwrap();
    let out = feed(
        &mut n,
        Instant::from_secs(60),
        T0 + 60,
        &connect("fo-test", T0 + 59),
    );
    assert_eq!(types(&out), ["CONNECTACK", "STATE"]);
}

#[test]
fn incomplete_connect_gets_the_iscs_reasons() {
    // Missing HBA → 18, as ISC answers.
    let mut bytes = connect("fo-test", T0);
    let cut = bytes.len() - 36;
    bytes.truncate(cut);
    let len = bytes.len() as u16;
    bytes[..2].copy_from_slice(&len.to_be_bytes());
    let mut n = node(Role::Secondary);
    n.engine.connection_up(Instant::ZERO).unwrap();
    let out = feed(&mut n, Instant::ZERO, T0, &bytes);
    let Ok(Repr::ConnectAck(a)) = Repr::parse(&out[0]) else {
        panic!()
    };
    assert_eq!(a.reject_reason, Some(RejectReason::HbaConflict));
    assert!(n.saw(|e| matches!(e, Event::ProtocolError { .. })));
}

#[test]
fn bndupd_before_connect_is_out_of_place() {
    let mut n = node(Role::Secondary);
    n.engine.connection_up(Instant::ZERO).unwrap();
    let out = feed(
        &mut n,
        Instant::ZERO,
        T0,
        &bndupd(5, Ipv4Addr::new(198, 18, 1, 1)),
    );
    closed_with(&n, &out, RejectReason::UnknownConnectionReason);
    // Nothing was handed over to commit.
    assert!(n.received.is_empty());
}

#[test]
fn connectack_to_a_secondary_is_refused() {
    let mut n = linked_secondary();
    let a = ConnectAck {
        time: T0,
        protocol_version: 1,
        relationship_name: Some(Text::from("fo-test")),
        max_unacked_bndupd: Some(1),
        receive_timer: Some(1),
        vendor_class: Some(Text::from("x")),
        ..ConnectAck::default()
    };
    let mut b = vec![0; a.buffer_len()];
    a.emit(&mut b).unwrap();
    let out = feed(&mut n, Instant::ZERO, T0, &b);
    closed_with(&n, &out, RejectReason::InvalidPartner);
    // Losing the link in NORMAL is COMMUNICATIONS-INTERRUPTED, as for any failure.
    n.engine.connection_down(Instant::ZERO);
    n.drain_events();
    assert_eq!(n.engine.link(), Link::Down);
}

#[test]
fn second_connect_on_a_live_link_is_a_duplicate() {
    let mut n = linked_secondary();
    let out = feed(&mut n, Instant::ZERO, T0, &connect("fo-test", T0));
    let Ok(Repr::ConnectAck(a)) = Repr::parse(&out[0]) else {
        panic!()
    };
    assert_eq!(a.reject_reason, Some(RejectReason::DuplicateConnection));
}

#[test]
fn garbage_is_answered_with_disconnect() {
    let mut n = linked_secondary();
    let out = feed(
        &mut n,
        Instant::ZERO,
        T0,
        &[0x00, 0x0d, 0x63, 0x0c, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    );
    closed_with(&n, &out, RejectReason::UnknownError);
    assert!(n.saw(|e| matches!(e, Event::ProtocolError { .. })));
}

#[test]
fn incomplete_binding_is_rejected_with_3_and_the_link_stays() {
    let mut n = linked_secondary();
    // ACTIVE without hardware address or times: missing binding information.
    let b = Binding::new(Ipv4Addr::new(198, 18, 1, 2), BindingStatus::Active);
    let u = BndUpd::single(T0, 9, &b);
    let mut bytes = vec![0; u.buffer_len()];
    u.emit(&mut bytes).unwrap();
    let out = feed(&mut n, Instant::ZERO, T0, &bytes);
    let Ok(Repr::BndAck(a)) = Repr::parse(&out[0]) else {
        panic!("{:?}", types(&out))
    };
    assert_eq!(a.xid, 9);
    assert_eq!(
        a.acks.first().unwrap().reject_reason,
        Some(RejectReason::MissingBindingInformation)
    );
    assert_eq!(n.engine.link(), Link::Up);
    // The store is untouched.
    assert_eq!(
        n.store.leases[&[198, 18, 1, 2]].local.status,
        BindingStatus::Free
    );
}

#[test]
fn address_outside_the_pool_is_rejected_with_1() {
    let mut n = linked_secondary();
    let out = feed(
        &mut n,
        Instant::ZERO,
        T0,
        &bndupd(10, Ipv4Addr::new(10, 9, 9, 9)),
    );
    let Ok(Repr::BndAck(a)) = Repr::parse(&out[0]) else {
        panic!()
    };
    assert_eq!(
        a.acks.first().unwrap().reject_reason,
        Some(RejectReason::IllegalIpAddress)
    );
}

#[test]
fn a_partner_ignoring_flow_control_is_disconnected_above_what_we_advertised() {
    let mut n = linked_secondary();
    n.auto_commit = false;
    // We advertised 10 (Config default) and hold up to 128 (COMMITS): the 11th unacknowledged
    // BNDUPD breaks flow control (§8.4, §7.3) and closes the connection.
    let mut closed = None;
    for i in 0..200u32 {
        let out = feed(
            &mut n,
            Instant::ZERO,
            T0,
            &bndupd(100 + i, Ipv4Addr::new(198, 18, 1, (i % 8) as u8)),
        );
        if n.close_requested {
            closed_with(&n, &out, RejectReason::UnknownConnectionReason);
            closed = Some(i);
            break;
        }
    }
    assert_eq!(closed, Some(10), "the 11th BNDUPD closes");
    // Nothing uncommitted was acknowledged.
    assert_eq!(n.pending_commits.len(), 10);
}

#[test]
fn bndupds_within_what_we_advertised_are_held_while_commits_are_slow() {
    let mut n = linked_secondary();
    n.auto_commit = false;
    for i in 0..10u32 {
        let out = feed(
            &mut n,
            Instant::ZERO,
            T0,
            &bndupd(100 + i, Ipv4Addr::new(198, 18, 1, (i % 8) as u8)),
        );
        assert!(out.is_empty(), "nothing acknowledged before its commit");
        assert!(!n.close_requested);
    }
    assert_eq!(n.pending_commits.len(), 10);
    assert_eq!(n.engine.status(Instant::ZERO).awaiting_commit, 10);
    assert_eq!(n.engine.status(Instant::ZERO).unacked_received, 10);
    // Committed: settled, and still counted until the BNDACKs go out.
    for token in std::mem::take(&mut n.pending_commits) {
        n.engine.binding_committed(token).unwrap();
    }
    let status = n.engine.status(Instant::ZERO);
    assert_eq!((status.awaiting_commit, status.unacked_received), (0, 10));
    let out = tick(&mut n, Instant::ZERO);
    assert_eq!(types(&out), ["BNDACK"; 10]);
    assert_eq!(n.engine.status(Instant::ZERO).unacked_received, 0);
}

#[test]
fn acks_for_unknown_xids_are_ignored() {
    let mut n = linked_secondary();
    let ack = BindingAck::accept(Ipv4Addr::new(198, 18, 1, 1));
    let a = BndAck {
        time: T0,
        xid: 4242,
        acks: BindingList::single(&ack),
        extra: Default::default(),
        digest: None,
    };
    let mut b = vec![0; a.buffer_len()];
    a.emit(&mut b).unwrap();
    let out = feed(&mut n, Instant::ZERO, T0, &b);
    assert!(out.is_empty());
    assert_eq!(n.engine.link(), Link::Up);
    assert!(!n.did(|a| matches!(a, Action::BindingAcked { .. })));
}

#[test]
fn commits_confirmed_after_the_link_dropped_are_not_acked_on_the_next() {
    let mut n = linked_secondary();
    n.auto_commit = false;
    feed(
        &mut n,
        Instant::ZERO,
        T0,
        &bndupd(50, Ipv4Addr::new(198, 18, 1, 3)),
    );
    let token = n.pending_commits.pop().unwrap();
    n.engine.connection_down(Instant::ZERO);
    n.drain_events();
    // A new connection; the old token is stale.
    n.engine.connection_up(Instant::from_secs(1)).unwrap();
    feed(
        &mut n,
        Instant::from_secs(1),
        T0 + 1,
        &connect("fo-test", T0 + 1),
    );
    assert_eq!(
        n.engine.binding_committed(token),
        Err(failover_fsm::EngineError::UnknownToken)
    );
    let mut buf = [0u8; 2048];
    while let Some(len) = n
        .engine
        .poll_transmit(Instant::from_secs(1), &mut buf, &n.store)
    {
        assert!(!matches!(Repr::parse(&buf[..len]), Ok(Repr::BndAck(_))));
    }
}

#[test]
fn an_engine_survives_arbitrary_message_sequences() {
    // Deterministic pseudo-random bytes and truncations of valid messages, at every link state.
    let valid = [
        connect("fo-test", T0),
        state(ServerState::Normal),
        bndupd(3, Ipv4Addr::new(198, 18, 1, 4)),
    ];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for round in 0..300 {
        let mut n = node(if round % 2 == 0 {
            Role::Secondary
        } else {
            Role::Primary
        });
        let now = Instant::from_secs(round);
        n.engine.connection_up(now).unwrap();
        for _ in 0..20 {
            let pick = &valid[(next() % 3) as usize];
            let mut m = pick.clone();
            match next() % 3 {
                0 => {}
                1 => {
                    let i = (next() as usize) % m.len();
                    m[i] = next() as u8;
                }
                _ => m.truncate((next() as usize) % m.len() + 1),
            }
            let _ = n.handle(now, UnixTime(T0), &m);
            n.drain_events();
            let mut buf = [0u8; 2048];
            while n.engine.poll_transmit(now, &mut buf, &n.store).is_some() {
                n.drain_events();
            }
            if n.close_requested {
                n.engine.connection_down(now);
                n.close_requested = false;
                let _ = n.engine.connection_up(now);
            }
        }
        let s = n.engine.status(now);
        assert!(s.unacked_sent <= s.partner_max_unacked as usize);
        assert!(!matches!(n.engine.state(), ServerState::Unknown(_)));
    }
    let _: Option<TestEngine> = None;
}

#[test]
fn incomplete_bindings_are_refused_before_they_reach_the_wire() {
    let mut n = linked_secondary();
    let a = Ipv4Addr::new(198, 18, 1, 5);
    let err = Err(failover_fsm::EngineError::IncompleteBinding);
    // ACTIVE without a hardware address, EXPIRED without one, ACTIVE without its times.
    assert_eq!(
        n.engine
            .send_binding(&failover_fsm::BindingData::new(a, BindingStatus::Active)),
        err
    );
    assert_eq!(
        n.engine
            .send_binding(&failover_fsm::BindingData::new(a, BindingStatus::Expired)),
        err
    );
    let no_times = failover_fsm::BindingData::new(a, BindingStatus::Active)
        .with_client(None, 1, &[2, 0, 0, 0, 0, 5])
        .unwrap();
    assert_eq!(n.engine.send_binding(&no_times), err);
    // Complete, it is queued; FREE and BACKUP need nothing more.
    let mut ok = no_times;
    ok.lease_expiration_time = Some(UnixTime(T0 + 60));
    ok.potential_expiration_time = Some(UnixTime(T0 + 90));
    assert!(n.engine.send_binding(&ok).is_ok());
    assert!(
        n.engine
            .send_binding(&failover_fsm::BindingData::new(
                Ipv4Addr::new(198, 18, 1, 6),
                BindingStatus::Backup
            ))
            .is_ok()
    );
    assert_eq!(n.engine.status(Instant::ZERO).queued, 2);
}

/// CONTACT with `xid` at partner time `time` (§7.11).
fn contact(time: u32, xid: u32) -> Vec<u8> {
    let mut b = vec![0x00, 0x0c, 0x0b, 0x0c];
    b.extend_from_slice(&time.to_be_bytes());
    b.extend_from_slice(&xid.to_be_bytes());
    b
}

/// Runs the timers at `now` and returns what the engine sends.
fn tick(n: &mut Node, now: Instant) -> Vec<Vec<u8>> {
    n.engine.handle_timeout(now);
    n.drain_events();
    let mut out = Vec::new();
    let mut buf = [0u8; 2048];
    while let Some(len) = n.engine.poll_transmit(now, &mut buf, &n.store) {
        out.push(buf[..len].to_vec());
        n.drain_events();
    }
    out
}

#[test]
fn a_bndupd_never_acknowledged_closes_the_connection_although_contacts_flow() {
    let mut n = linked_secondary();
    assert_eq!(n.engine.config().ack_timeout, 60);
    let binding = failover_fsm::BindingData::new(Ipv4Addr::new(198, 18, 1, 3), BindingStatus::Free);
    let mut sent_at = None;
    let mut closed_at = None;
    for s in 1..=200u32 {
        let now = Instant::from_secs(u64::from(s));
        if s == 30 {
            n.engine.send_binding(&binding).unwrap();
        }
        let mut out = tick(&mut n, now);
        // The partner is alive: a CONTACT every 5 s keeps tReceive (15 s) from running out.
        if s % 5 == 0 && !n.close_requested {
            out.extend(feed(&mut n, now, T0 + s, &contact(T0 + s, 1000 + s)));
        }
        if sent_at.is_none() && types(&out).contains(&"BNDUPD") {
            sent_at = Some(s);
        }
        if n.close_requested {
            closed_with(&n, &out, RejectReason::NoTraffic);
            closed_at = Some(s);
            break;
        }
    }
    let sent_at = sent_at.expect("the BNDUPD went out");
    assert_eq!(
        closed_at,
        Some(sent_at + 60),
        "closed one ack timeout after the BNDUPD"
    );
    assert!(
        n.events
            .iter()
            .any(|e| matches!(e, Event::UpdateUnacknowledged { waited: 60 }))
    );
}

#[test]
fn acknowledged_bndupds_keep_the_connection_and_a_zero_ack_timeout_never_closes() {
    for ack_timeout in [60, 0] {
        let mut n = link_secondary(node_with(Role::Secondary, |c| c.ack_timeout = ack_timeout));
        let mut bndupds = 0;
        for s in 1..=300u32 {
            let now = Instant::from_secs(u64::from(s));
            if s % 20 == 0 {
                let a = Ipv4Addr::new(198, 18, 1, (s / 20 % 8) as u8);
                n.engine
                    .send_binding(&failover_fsm::BindingData::new(a, BindingStatus::Free))
                    .unwrap();
            }
            let out = tick(&mut n, now);
            for m in &out {
                if let Ok(Repr::BndUpd(u)) = Repr::parse(m) {
                    bndupds += 1;
                    // Acknowledged at once when the timeout is on; never when it is off.
                    if ack_timeout > 0 {
                        let b = u.bindings.iter().next().unwrap();
                        let acks = [BindingAck::accept(b.address)];
                        let ack = BndAck {
                            time: T0 + s,
                            xid: u.xid,
                            acks: BindingList::from_slice(&acks),
                            extra: Default::default(),
                            digest: None,
                        };
                        let mut bytes = vec![0; 512];
                        let len = ack.emit(&mut bytes).unwrap();
                        feed(&mut n, now, T0 + s, &bytes[..len]);
                    }
                }
            }
            if s % 5 == 0 {
                feed(&mut n, now, T0 + s, &contact(T0 + s, 2000 + s));
            }
            assert!(
                !n.close_requested,
                "closed at {s} s (ack timeout {ack_timeout}): {:?}",
                n.events
            );
        }
        assert!(
            bndupds >= 8,
            "{bndupds} BNDUPDs (ack timeout {ack_timeout})"
        );
    }
}

#[test]
fn bndupds_go_in_while_earlier_commits_are_outstanding_and_each_bndack_waits_for_its_own() {
    let mut n = linked_secondary();
    n.auto_commit = false;
    let wall = UnixTime(T0);
    let first = bndupd(200, Ipv4Addr::new(198, 18, 1, 1));
    let second = bndupd(201, Ipv4Addr::new(198, 18, 1, 2));
    // Each binding is handed over while its BNDUPD is read; the engine keeps no copy, so a
    // second BNDUPD goes in while the first one's commit is outstanding.
    n.handle(Instant::ZERO, wall, &first).unwrap();
    n.handle(Instant::ZERO, wall, &second).unwrap();
    n.drain_events();
    let handed: Vec<[u8; 4]> = n.received.iter().map(|c| c.binding.address).collect();
    assert_eq!(handed, [[198, 18, 1, 1], [198, 18, 1, 2]]);
    let acks = |n: &mut Node| -> Vec<u32> {
        let mut buf = [0u8; 2048];
        let mut xids = Vec::new();
        while let Some(len) = n.engine.poll_transmit(Instant::ZERO, &mut buf, &n.store) {
            if let Ok(Repr::BndAck(a)) = Repr::parse(&buf[..len]) {
                xids.push(a.xid);
            }
        }
        xids
    };
    // Nothing is acknowledged before its commit (§7.2).
    assert_eq!(acks(&mut n), Vec::<u32>::new());
    // BNDACKs are matched by xid: the second may pass the first.
    let tokens = n.pending_commits.clone();
    n.engine.binding_committed(tokens[1]).unwrap();
    assert_eq!(acks(&mut n), [201]);
    n.engine.binding_committed(tokens[0]).unwrap();
    assert_eq!(acks(&mut n), [200]);
    assert!(!n.close_requested);
}
