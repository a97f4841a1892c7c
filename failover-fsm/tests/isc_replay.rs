//! Replays captured ISC dhcpd conversations: one ISC server's messages are fed into an engine
//! configured as the other server, which must accept them and answer as the captured ISC
//! server did (same answers to the same requests, same sequence of announced states).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use failover_fsm::{Config, Event, Instant, Role, ServerState, UnixTime};
use failover_proto::{Message, MessageType, Repr};
use failover_testkit::support::{Node, Store};

enum Item {
    Msg {
        t: f64,
        conn: u32,
        from_primary: bool,
        bytes: Vec<u8>,
    },
    Close {
        t: f64,
        conn: u32,
    },
}

fn load(name: &str) -> Vec<Item> {
    let path = format!(
        "{}/../failover-proto/tests/vectors/{name}.hex",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).expect(&path);
    let mut items = Vec::new();
    for line in text.lines() {
        if let Some(ev) = line.strip_prefix("# tcp conn=") {
            // "# tcp conn=2 FIN P:647>S:56883 t=17.368148"
            let f: Vec<&str> = ev.split_whitespace().collect();
            if f[1] == "FIN" || f[1] == "RST" {
                items.push(Item::Close {
                    t: f[3].trim_start_matches("t=").parse().unwrap(),
                    conn: f[0].parse().unwrap(),
                });
            }
            continue;
        }
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        let hex = f[7];
        items.push(Item::Msg {
            t: f[1].parse().unwrap(),
            conn: f[2].parse().unwrap(),
            from_primary: f[3].starts_with('P'),
            bytes: (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                .collect(),
        });
    }
    items.sort_by(|a, b| {
        let t = |i: &Item| match i {
            Item::Msg { t, .. } | Item::Close { t, .. } => *t,
        };
        t(a).total_cmp(&t(b))
    });
    items
}

/// A summary of one message for comparison.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Sent {
    ConnectAck { xid: u32, rejected: bool },
    BndAck { xid: u32, addresses: Vec<[u8; 4]> },
    UpdDone { xid: u32 },
    PoolResp { xid: u32 },
}

struct Outcome {
    /// Answers to requests: ours, and the captured ISC server's.
    ours: BTreeSet<Sent>,
    isc: BTreeSet<Sent>,
    /// Server states announced in STATE on the first connection (consecutive repeats folded):
    /// later connections follow restarts of the captured servers, which our engine does not
    /// mirror (it sees a connection loss instead).
    our_states: Vec<ServerState>,
    isc_states: Vec<ServerState>,
    node: Node,
    requests: usize,
}

/// The xids of the requests our engine sent, to re-address the captured partner's answers.
#[derive(Default)]
struct OurXids {
    bndupd: std::collections::HashMap<[u8; 4], u32>,
    request: Option<u32>,
    connect: Option<u32>,
    poolreq: Option<u32>,
}

impl OurXids {
    fn record(&mut self, bytes: &[u8]) {
        match Repr::parse(bytes) {
            Ok(Repr::BndUpd(u)) => {
                for b in u.bindings.iter() {
                    self.bndupd.insert(b.address.octets(), u.xid);
                }
            }
            Ok(Repr::UpdReq(r)) => self.request = Some(r.xid),
            Ok(Repr::UpdReqAll(r)) => self.request = Some(r.xid),
            Ok(Repr::Connect(c)) => self.connect = Some(c.xid),
            Ok(Repr::PoolReq(p)) => self.poolreq = Some(p.xid),
            _ => {}
        }
    }
}

fn summarize(bytes: &[u8]) -> Option<Sent> {
    Some(match Repr::parse(bytes).ok()? {
        Repr::ConnectAck(a) => Sent::ConnectAck {
            xid: a.xid,
            rejected: a.reject_reason.is_some(),
        },
        Repr::BndAck(a) => Sent::BndAck {
            xid: a.xid,
            addresses: a.acks.iter().map(|x| x.address.octets()).collect(),
        },
        Repr::UpdDone(d) => Sent::UpdDone { xid: d.xid },
        Repr::PoolResp(p) => Sent::PoolResp { xid: p.xid },
        _ => return None,
    })
}

fn push_state(list: &mut Vec<ServerState>, bytes: &[u8], first_conn: bool) {
    if !first_conn {
        return;
    }
    if let Ok(Repr::State(s)) = Repr::parse(bytes)
        && list.last() != Some(&s.server_state)
    {
        list.push(s.server_state);
    }
}

/// Feeds the `emulate_primary == false` side's partner (the captured primary) into our engine
/// configured as the secondary, or the other way round.
fn replay(name: &str, emulate_primary: bool, pool: (Ipv4Addr, u32), mclt: u32) -> Outcome {
    let items = load(name);
    let role = if emulate_primary {
        Role::Primary
    } else {
        Role::Secondary
    };
    let mut config = Config::new(role, "fo-interop", mclt);
    config.receive_timer = 15;
    config.max_unacked_bndupd = 10;
    let first_t = items
        .iter()
        .find_map(|i| match i {
            Item::Msg { bytes, .. } => Some(Message::new_unchecked(&bytes[..]).time()),
            _ => None,
        })
        .unwrap();
    let mut node = Node::new(
        "us",
        config,
        Store::pool(pool.0, pool.1),
        Instant::ZERO,
        UnixTime(first_t),
    );
    let mut out = Outcome {
        ours: BTreeSet::new(),
        isc: BTreeSet::new(),
        our_states: Vec::new(),
        isc_states: Vec::new(),
        node: Node::new(
            "unused",
            Config::new(Role::Primary, "x", 1),
            Store::default(),
            Instant::ZERO,
            UnixTime(0),
        ),
        requests: 0,
    };
    let mut conn: Option<u32> = None;
    let mut buf = vec![0u8; 2048];
    let mut xids = OurXids::default();
    let mut first_conn: Option<u32> = None;
    for item in items {
        let t = match &item {
            Item::Msg { t, .. } | Item::Close { t, .. } => *t,
        };
        let now = Instant::from_millis((t * 1000.0) as u64);
        for _ in 0..10_000 {
            match node.engine.poll_timeout() {
                Some(d) if d <= now => {
                    node.engine.handle_timeout(d);
                    node.drain_events();
                    while let Some(n) = node.engine.poll_transmit(d, &mut buf, &node.store) {
                        xids.record(&buf[..n]);
                        push_state(
                            &mut out.our_states,
                            &buf[..n],
                            conn.is_some() && conn == first_conn,
                        );
                        node.drain_events();
                    }
                }
                _ => break,
            }
        }
        match item {
            Item::Close { conn: c, .. } => {
                if conn == Some(c) {
                    node.engine.connection_down(now);
                    conn = None;
                }
            }
            Item::Msg {
                conn: c,
                from_primary,
                bytes,
                ..
            } => {
                if from_primary == emulate_primary {
                    // What the captured server we stand in for sent.
                    if conn == Some(c) {
                        if let Some(s) = summarize(&bytes) {
                            out.isc.insert(s);
                        }
                        push_state(&mut out.isc_states, &bytes, first_conn == Some(c));
                    }
                    continue;
                }
                if conn != Some(c) {
                    if conn.is_some() {
                        continue; // a second, parallel connection: not ours to follow
                    }
                    node.engine.connection_up(now).unwrap();
                    conn = Some(c);
                    first_conn.get_or_insert(c);
                }
                let m = Message::new_unchecked(&bytes[..]);
                if matches!(
                    m.msg_type(),
                    MessageType::Connect
                        | MessageType::BndUpd
                        | MessageType::UpdReq
                        | MessageType::UpdReqAll
                        | MessageType::PoolReq
                ) {
                    out.requests += 1;
                }
                let wall = UnixTime(m.time());
                // The captured partner answers the captured server's xids; point its answers at
                // the requests our engine sent instead (same address, same kind of request).
                let mut bytes = bytes;
                let ours = match Repr::parse(&bytes) {
                    Ok(Repr::BndAck(a)) => a
                        .acks
                        .first()
                        .and_then(|x| xids.bndupd.get(&x.address.octets()).copied()),
                    Ok(Repr::UpdDone(_)) => xids.request,
                    Ok(Repr::ConnectAck(_)) => xids.connect,
                    Ok(Repr::PoolResp(_)) => xids.poolreq,
                    _ => None,
                };
                if let Some(xid) = ours {
                    bytes[8..12].copy_from_slice(&xid.to_be_bytes());
                }
                node.drain_events();
                node.handle(now, wall, &bytes).unwrap();
            }
        }
        node.drain_events();
        while let Some(n) = node.engine.poll_transmit(now, &mut buf, &node.store) {
            xids.record(&buf[..n]);
            if let Some(s) = summarize(&buf[..n]) {
                out.ours.insert(s);
            }
            push_state(
                &mut out.our_states,
                &buf[..n],
                conn.is_some() && conn == first_conn,
            );
            node.drain_events();
        }
        if node.close_requested {
            node.close_requested = false;
            node.engine.connection_down(now);
            conn = None;
        }
    }
    for e in &node.events {
        assert!(
            !matches!(
                e,
                Event::ProtocolError { .. } | Event::ConnectionRejected { .. }
            ),
            "{name}: {e:?}"
        );
    }
    out.node = node;
    out
}

/// Our answers contain every answer the captured server gave to the same requests.
fn assert_same_answers(name: &str, o: &Outcome) {
    let missing: Vec<&Sent> = o.isc.difference(&o.ours).collect();
    assert!(
        missing.is_empty(),
        "{name}: ISC answered {missing:?}, we did not"
    );
    assert!(o.isc.len() > 5, "{name}: too little compared");
}

#[test]
fn startup_as_secondary() {
    let o = replay("startup", false, (Ipv4Addr::new(198, 18, 1, 0), 16), 60);
    assert_same_answers("startup/S", &o);
    // RECOVER → RECOVER-DONE → NORMAL, then a warm restart: NORMAL again.
    assert_eq!(
        o.our_states,
        [
            ServerState::Recover,
            ServerState::RecoverDone,
            ServerState::Normal
        ]
    );
    assert_eq!(o.isc_states, o.our_states);
    assert_eq!(o.node.engine.state(), ServerState::Normal);
    // The primary's 8 BACKUP addresses are ours now.
    assert_eq!(o.node.store.count(failover_fsm::BindingStatus::Backup), 8);
}

#[test]
fn startup_as_primary() {
    let o = replay("startup", true, (Ipv4Addr::new(198, 18, 1, 0), 16), 60);
    // Our CONNECT has our own xid, so ISC's CONNECTACK (xid 0) is only compared by type.
    let isc: BTreeSet<Sent> = o
        .isc
        .iter()
        .filter(|s| !matches!(s, Sent::ConnectAck { .. }))
        .cloned()
        .collect();
    let missing: Vec<&Sent> = isc.difference(&o.ours).collect();
    assert!(missing.is_empty(), "ISC answered {missing:?}, we did not");
    assert_eq!(o.isc_states, o.our_states);
    assert_eq!(o.node.engine.state(), ServerState::Normal);
}

#[test]
fn leases_both_roles() {
    for primary in [false, true] {
        let o = replay("leases", primary, (Ipv4Addr::new(198, 18, 1, 0), 64), 60);
        let isc: BTreeSet<Sent> = o
            .isc
            .iter()
            .filter(|s| !(primary && matches!(s, Sent::ConnectAck { .. })))
            .cloned()
            .collect();
        let missing: Vec<&Sent> = isc.difference(&o.ours).collect();
        assert!(
            missing.is_empty(),
            "leases primary={primary}: missing {missing:?}"
        );
        assert_eq!(
            o.node.engine.state(),
            ServerState::Normal,
            "primary={primary}"
        );
        // Every ACTIVE lease the partner announced is in our store.
        assert!(o.node.store.count(failover_fsm::BindingStatus::Active) > 0);
    }
}

#[test]
fn poolreq_as_primary_answers_the_secondarys_poolreq() {
    let o = replay("poolreq", true, (Ipv4Addr::new(198, 18, 1, 0), 40), 60);
    assert!(
        o.ours.iter().any(|s| matches!(s, Sent::PoolResp { .. })),
        "no POOLRESP"
    );
    assert_eq!(o.node.engine.state(), ServerState::Normal);
}

#[test]
fn partnerdown_as_secondary_resolves_the_conflict() {
    let o = replay("partnerdown", false, (Ipv4Addr::new(198, 18, 1, 0), 64), 60);
    assert_same_answers("partnerdown/S", &o);
    // The primary went PARTNER-DOWN while we were stopped; on reconnect both resolve the
    // potential conflict and return to NORMAL.
    let ours: Vec<ServerState> = o
        .node
        .events
        .iter()
        .filter_map(|e| match e {
            Event::StateChanged { to, .. } => Some(*to),
            _ => None,
        })
        .collect();
    // Apart while the captured secondary was stopped: COMM-INT; on reconnect the primary is in
    // PARTNER-DOWN: POTENTIAL-CONFLICT, UPDREQ both ways, then NORMAL (§9.10).
    let tail: Vec<ServerState> = ours
        .iter()
        .copied()
        .skip_while(|s| *s != ServerState::CommunicationsInterrupted)
        .collect();
    assert_eq!(
        tail,
        [
            ServerState::CommunicationsInterrupted,
            ServerState::PotentialConflict,
            ServerState::Normal
        ],
        "{ours:?}"
    );
    assert_eq!(o.node.engine.state(), ServerState::Normal);
}
