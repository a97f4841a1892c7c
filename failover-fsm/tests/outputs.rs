//! The engine's two kinds of output and the contracts around them: a STATE goes out only once
//! the persist snapshot holding its state is confirmed (§9.2), a failed write is asked for
//! again and never announced, the engine knows which of our updates are outstanding (ISC's
//! dueling-update rule, without the store's help), and acknowledgements name the update.
//!
//! Two engines wired together by hand, each with a tiny lease store whose persister can be
//! slow (confirming later) or failing.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use failover_fsm::accept::{ClientIdentity, LocalBinding};
use failover_fsm::{
    Action, BindingData, BindingStatus, Commit, Commits, Config, Engine, EngineError, Event,
    Instant, LeaseLookup, PERSIST_RETRY, PersistToken, Persisted, RejectReason, Role, ServerState,
    UnixTime, UpdateId,
};
use failover_proto::{HardwareAddress, Repr, ServerFlags};

const WALL: u32 = 1_700_000_000;
const MAC: [u8; 6] = [0x00, 0x0c, 0x29, 0x12, 0x34, 0x56];

/// How a side's persister behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Persister {
    /// Writes and confirms at once.
    Prompt,
    /// Confirms only when the test says so.
    Slow,
    /// Every write fails.
    Failing,
}

/// A lease store: every address of 192.0.2.0/24, FREE unless set.
#[derive(Default)]
struct Db(BTreeMap<[u8; 4], LocalBinding>);

impl LeaseLookup for Db {
    fn lookup(&self, a: Ipv4Addr) -> Option<LocalBinding> {
        let free = LocalBinding::new(BindingStatus::Free);
        (a.octets()[..3] == [192, 0, 2]).then(|| *self.0.get(&a.octets()).unwrap_or(&free))
    }
}

struct Side {
    e: Engine,
    db: Db,
    persister: Persister,
    /// Snapshots handed out and not confirmed yet (slow persister).
    unconfirmed: Vec<(PersistToken, Persisted)>,
    /// The last snapshot confirmed.
    written: Option<Persisted>,
    /// Every state written so far.
    written_states: Vec<ServerState>,
    actions: Vec<Action>,
    events: Vec<Event>,
    /// Every message sent, in order.
    sent: Vec<Vec<u8>>,
    /// Our bindings as queued: the engine reads the newest of an address when it sends it.
    queued: Vec<BindingData>,
    /// The partner's bindings handed over to commit (committed at once).
    received: Vec<Commit>,
}

impl Side {
    fn new(role: Role, mclt: u32, persister: Persister) -> Self {
        let config = Config::new(role, "pair", mclt);
        let seed = if role == Role::Primary { 1 } else { 2 };
        Side {
            e: Engine::new(config, None, Instant::ZERO, UnixTime(WALL), seed).unwrap(),
            db: Db::default(),
            persister,
            unconfirmed: Vec::new(),
            written: None,
            written_states: Vec::new(),
            actions: Vec::new(),
            events: Vec::new(),
            sent: Vec::new(),
            queued: Vec::new(),
            received: Vec::new(),
        }
    }

    /// Queues `b` for the partner, keeping it where the engine reads it when it is sent.
    fn queue(&mut self, b: BindingData) -> Result<UpdateId, EngineError> {
        let id = self.e.send_binding(&b);
        self.queued.push(b);
        id
    }

    /// Carries out actions, collects events.
    fn serve(&mut self, now: Instant) {
        while let Some(a) = self.e.poll_action() {
            match &a {
                Action::Persist { token, snapshot } => match self.persister {
                    Persister::Prompt => {
                        self.wrote(*snapshot);
                        self.e.persist_complete(*token).unwrap();
                    }
                    Persister::Slow => {
                        assert!(
                            self.unconfirmed.is_empty(),
                            "a second snapshot while one is unconfirmed"
                        );
                        self.unconfirmed.push((*token, *snapshot));
                    }
                    Persister::Failing => self.e.persist_failed(now, *token).unwrap(),
                },
                Action::SendAllBindings | Action::SendUnackedBindings => self.e.end_of_updates(),
                _ => {}
            }
            self.actions.push(a);
        }
        while let Some(e) = self.e.poll_event() {
            self.events.push(e);
        }
    }

    /// Confirms the outstanding snapshots of a slow persister.
    fn confirm(&mut self, now: Instant) {
        for (token, snapshot) in std::mem::take(&mut self.unconfirmed) {
            self.wrote(snapshot);
            self.e.persist_complete(token).unwrap();
        }
        self.serve(now);
    }

    fn wrote(&mut self, snapshot: Persisted) {
        self.written = Some(snapshot);
        self.written_states.push(snapshot.state);
    }

    /// Everything there is to send now. `poll_transmit` itself produces no output, and a
    /// STATE announces only a state written before (SHUTDOWN and PAUSED: the state to restart
    /// from was written, §9.13.1, §9.14.1).
    fn transmit(&mut self, now: Instant) -> Vec<Vec<u8>> {
        self.serve(now);
        let mut buf = [0u8; 2048];
        let mut out = Vec::new();
        while let Some(n) = self.e.poll_transmit(now, &mut buf, &self.queued[..]) {
            if let Ok(Repr::State(st)) = Repr::parse(&buf[..n])
                && !st.server_flags.contains(ServerFlags::STARTUP)
                && !matches!(st.server_state, ServerState::Shutdown | ServerState::Paused)
            {
                assert!(
                    self.written_states.contains(&st.server_state),
                    "STATE {:?} announced, written only {:?}",
                    st.server_state,
                    self.written_states
                );
            }
            out.push(buf[..n].to_vec());
        }
        assert_eq!(
            self.e.poll_action(),
            None,
            "poll_transmit produced an action"
        );
        assert_eq!(self.e.poll_event(), None, "poll_transmit produced an event");
        self.sent.extend(out.iter().cloned());
        out
    }

    fn deliver(&mut self, now: Instant, msgs: &[Vec<u8>]) {
        for m in msgs {
            let mut commits = Commits::new();
            self.e
                .handle_message(now, wall(now), m, &self.db, &mut commits)
                .unwrap();
            while let Some(c) = commits.pop() {
                self.e.binding_committed(c.token).unwrap();
                self.received.push(c);
            }
            self.serve(now);
        }
    }

    /// The states announced by STATE messages sent so far (without the STARTUP flag).
    fn announced(&self) -> Vec<ServerState> {
        self.sent
            .iter()
            .filter_map(|m| match Repr::parse(m) {
                Ok(Repr::State(s)) if !s.server_flags.contains(ServerFlags::STARTUP) => {
                    Some(s.server_state)
                }
                _ => None,
            })
            .collect()
    }

    fn persist_actions(&self) -> usize {
        self.actions
            .iter()
            .filter(|a| matches!(a, Action::Persist { .. }))
            .count()
    }
}

fn wall(now: Instant) -> UnixTime {
    UnixTime(WALL + u32::try_from(now.as_millis() / 1000).unwrap())
}

/// Moves messages both ways until nothing moves.
fn exchange(a: &mut Side, b: &mut Side, now: Instant) {
    for _ in 0..1000 {
        let x = a.transmit(now);
        b.deliver(now, &x);
        let y = b.transmit(now);
        a.deliver(now, &y);
        if x.is_empty() && y.is_empty() {
            return;
        }
    }
    panic!("the pair never settles");
}

/// Runs both engines' timers up to `until`, exchanging after each.
fn run_until(a: &mut Side, b: &mut Side, now: &mut Instant, until: Instant) {
    for _ in 0..10_000 {
        let next = [a.e.poll_timeout(), b.e.poll_timeout()]
            .into_iter()
            .flatten()
            .min();
        match next {
            Some(t) if t <= until => {
                *now = t.max(*now);
                a.e.handle_timeout(*now);
                b.e.handle_timeout(*now);
                exchange(a, b, *now);
            }
            _ => {
                *now = until;
                return;
            }
        }
    }
    panic!("timers never run dry");
}

/// A new pair, connected, in NORMAL.
fn normal_pair() -> (Side, Side, Instant) {
    let now = Instant::ZERO;
    let mut p = Side::new(Role::Primary, 3600, Persister::Prompt);
    let mut s = Side::new(Role::Secondary, 0, Persister::Prompt);
    p.e.connection_up(now).unwrap();
    s.e.connection_up(now).unwrap();
    exchange(&mut p, &mut s, now);
    assert_eq!(
        (p.e.state(), s.e.state()),
        (ServerState::Normal, ServerState::Normal)
    );
    (p, s, now)
}

fn lease(address: Ipv4Addr, status: BindingStatus, cltt: UnixTime) -> BindingData {
    let mut b = BindingData::new(address, status)
        .with_client(None, 1, &MAC)
        .unwrap();
    b.client_last_transaction_time = Some(cltt);
    b.start_time_of_state = Some(cltt);
    if status == BindingStatus::Active {
        b.lease_expiration_time = Some(cltt.plus(3600));
        b.potential_expiration_time = Some(cltt.plus(5400));
    }
    b
}

/// The BNDACKs among `msgs`: (xid, reject reason of the first binding).
fn bndacks(msgs: &[Vec<u8>]) -> Vec<(u32, Option<RejectReason>)> {
    msgs.iter()
        .filter_map(|m| match Repr::parse(m) {
            Ok(Repr::BndAck(a)) => Some((a.xid, a.acks.iter().next().unwrap().reject_reason)),
            _ => None,
        })
        .collect()
}

fn bndupd_xids(msgs: &[Vec<u8>]) -> Vec<u32> {
    msgs.iter()
        .filter_map(|m| match Repr::parse(m) {
            Ok(Repr::BndUpd(u)) => Some(u.xid),
            _ => None,
        })
        .collect()
}

#[test]
fn a_state_is_announced_only_after_its_snapshot_is_confirmed() {
    let mut now = Instant::ZERO;
    let mut p = Side::new(Role::Primary, 3600, Persister::Slow);
    let mut s = Side::new(Role::Secondary, 0, Persister::Prompt);
    p.e.connection_up(now).unwrap();
    s.e.connection_up(now).unwrap();
    exchange(&mut p, &mut s, now);
    // The primary left STARTUP on the secondary's STATE and asked to persist that; its STATE
    // (and what it queued behind it, UPDREQALL) waits for the write.
    assert_ne!(p.e.state(), ServerState::Startup);
    assert_eq!(p.unconfirmed.len(), 1);
    assert_eq!(p.unconfirmed[0].1.state, p.e.state());
    assert!(p.announced().is_empty(), "{:?}", p.announced());
    assert!(
        s.e.partner_state()
            .is_none_or(|st| st == ServerState::Recover)
    );
    // A slow disk: several inputs (CONTACTs, timers) come and go before it confirms. The
    // secondary keeps the link up (the primary's CONTACTs wait too, but 10 s is within the
    // secondary's receive timer).
    let announced_before = s.e.status(now).partner_state;
    run_until(&mut p, &mut s, &mut now, Instant::from_secs(10));
    assert!(p.announced().is_empty());
    assert_eq!(s.e.status(now).partner_state, announced_before);
    assert_eq!(p.persist_actions(), 1, "one snapshot at a time");
    // Confirmed: the STATE goes out, the pair completes its recovery.
    p.persister = Persister::Prompt;
    p.confirm(now);
    let confirmed = p.written.unwrap().state;
    exchange(&mut p, &mut s, now);
    assert_eq!(p.announced()[0], confirmed);
    run_until(&mut p, &mut s, &mut now, Instant::from_secs(30));
    assert_eq!(
        (p.e.state(), s.e.state()),
        (ServerState::Normal, ServerState::Normal)
    );
    // (`transmit` checked that each state announced was written before.)
    assert_eq!(p.written.unwrap().state, ServerState::Normal);
}

#[test]
fn changes_made_while_a_write_is_outstanding_come_as_one_snapshot() {
    let (mut p, mut s, now) = normal_pair();
    p.actions.clear();
    p.persister = Persister::Slow;
    // The operator declares the partner down: one snapshot, outstanding.
    p.e.partner_down(now, true).unwrap();
    p.serve(now);
    assert_eq!(p.unconfirmed.len(), 1);
    assert_eq!(p.unconfirmed[0].1.state, ServerState::PartnerDown);
    // Then stops this server while the disk is still busy: SHUTDOWN changes the state to
    // restart from (ISC: RECOVER) and the last-operational time (§9.14.1) in one input.
    p.e.shutdown(now);
    p.serve(now);
    assert_eq!(p.unconfirmed.len(), 1, "the second waits for the first");
    exchange(&mut p, &mut s, now);
    assert!(
        !p.announced().contains(&ServerState::PartnerDown),
        "announced before written"
    );
    // The first write completes: the next snapshot holds every change made meanwhile.
    p.confirm(now);
    assert_eq!(p.unconfirmed.len(), 1);
    let next = p.unconfirmed[0].1;
    assert_eq!(next.state, ServerState::Recover);
    assert!(next.last_operational.is_some());
    exchange(&mut p, &mut s, now);
    assert!(!p.announced().contains(&ServerState::Shutdown));
    p.persister = Persister::Prompt;
    p.confirm(now);
    exchange(&mut p, &mut s, now);
    // Only the current state is announced (a STATE says the state when it is written).
    assert_eq!(p.announced().last(), Some(&ServerState::Shutdown));
    assert!(!p.announced().contains(&ServerState::PartnerDown));
    assert_eq!(p.persist_actions(), 2);
}

#[test]
fn a_failed_write_is_retried_and_its_state_never_announced() {
    let (mut p, mut s, mut now) = normal_pair();
    p.actions.clear();
    p.persister = Persister::Failing;
    let before = p.announced().len();
    p.e.partner_down(now, true).unwrap();
    p.serve(now);
    // Failed: an event says so, and the engine asks again after the retry delay.
    assert!(
        p.events
            .iter()
            .any(|e| matches!(e, Event::PersistFailed { .. }))
    );
    assert_eq!(p.persist_actions(), 1);
    assert_eq!(p.e.poll_timeout(), Some(now + PERSIST_RETRY));
    exchange(&mut p, &mut s, now);
    assert_eq!(
        p.announced().len(),
        before,
        "PARTNER-DOWN announced unwritten"
    );
    // Each retry fails too: still nothing announced, and no busy loop.
    run_until(&mut p, &mut s, &mut now, Instant::from_millis(3500));
    assert_eq!(
        p.persist_actions(),
        4,
        "asked again every {PERSIST_RETRY:?}"
    );
    assert_eq!(p.announced().len(), before);
    assert_eq!(s.e.partner_state(), Some(ServerState::Normal));
    // The disk recovers: the next retry is written, and only then is the state announced.
    p.persister = Persister::Prompt;
    now = now + Duration::from_millis(500);
    p.e.handle_timeout(now);
    p.serve(now);
    assert_eq!(p.persist_actions(), 5);
    assert_eq!(p.written.unwrap().state, ServerState::PartnerDown);
    exchange(&mut p, &mut s, now);
    assert_eq!(p.announced()[before], ServerState::PartnerDown);
    // Tokens of failed writes are spent.
    let failed = p.events.iter().find_map(|e| match e {
        Event::PersistFailed { token } => Some(*token),
        _ => None,
    });
    assert_eq!(
        p.e.persist_complete(failed.unwrap()),
        Err(failover_fsm::EngineError::UnknownToken)
    );
}

#[test]
fn isc_rejects_a_crossing_update_while_ours_is_unacknowledged() {
    let a = Ipv4Addr::new(192, 0, 2, 10);
    let t = UnixTime(WALL);
    let ours = lease(a, BindingStatus::Active, t);
    let theirs = lease(a, BindingStatus::Released, t.plus(1));
    let record = |db: &mut Db| {
        // The store's record of our lease: nothing about what is in flight.
        let mut local = LocalBinding::new(BindingStatus::Active);
        local.client = ClientIdentity::new(
            None,
            Some(HardwareAddress {
                htype: 1,
                address: &MAC,
            }),
        );
        local.cltt = Some(t);
        local.lease_expiration = ours.lease_expiration_time;
        assert_eq!(local.in_flight, None);
        db.0.insert(a.octets(), local);
    };

    // Crossing: our ACTIVE is on its way when the secondary's RELEASED of the lease arrives.
    let (mut p, mut s, now) = normal_pair();
    record(&mut p.db);
    p.queue(ours.clone()).unwrap();
    let held = p.transmit(now);
    assert_eq!(bndupd_xids(&held).len(), 1);
    s.queue(theirs.clone()).unwrap();
    let upd = s.transmit(now);
    let their_xid = bndupd_xids(&upd)[0];
    p.deliver(now, &upd);
    // ISC's dueling-update rule (§7 Q2 of the ISC notes): the primary's own update wins.
    assert_eq!(
        bndacks(&p.transmit(now)),
        vec![(
            their_xid,
            Some(RejectReason::LessCriticalBindingInformation)
        )]
    );
    assert!(p.events.iter().any(|e| matches!(
        e,
        Event::RejectedPartnerBinding {
            reason: RejectReason::LessCriticalBindingInformation,
            ..
        }
    )));
    assert!(p.received.is_empty());

    // Not crossing: once ours is acknowledged, the same update is taken.
    let (mut p, mut s, now) = normal_pair();
    record(&mut p.db);
    p.queue(ours).unwrap();
    exchange(&mut p, &mut s, now);
    assert!(
        p.actions
            .iter()
            .any(|a| matches!(a, Action::BindingAcked { .. }))
    );
    s.queue(theirs).unwrap();
    let upd = s.transmit(now);
    let their_xid = bndupd_xids(&upd)[0];
    p.deliver(now, &upd);
    assert_eq!(bndacks(&p.transmit(now)), vec![(their_xid, None)]);
    let verdict = p.received.first().map(|c| c.verdict);
    assert!(!verdict.unwrap().ours_in_flight);
}

#[test]
fn the_engine_reports_queued_updates_as_in_flight_in_the_verdict() {
    // Our record is FREE, so the partner's lease wins the duel; the verdict tells the store
    // that an update of ours was still queued (xid 0: not sent yet) and is superseded.
    let a = Ipv4Addr::new(192, 0, 2, 11);
    let t = UnixTime(WALL);
    let (mut p, mut s, now) = normal_pair();
    p.queue(lease(a, BindingStatus::Active, t)).unwrap();
    s.queue(lease(a, BindingStatus::Active, t.plus(5))).unwrap();
    let upd = s.transmit(now);
    p.deliver(now, &upd);
    let verdict = p.received.first().map(|c| c.verdict);
    assert!(verdict.unwrap().ours_in_flight);
    assert_eq!(verdict.unwrap().superseded_xid, Some(0));
}

#[test]
fn acknowledgements_name_the_update_and_its_bndupd() {
    let a = Ipv4Addr::new(192, 0, 2, 20);
    let t = UnixTime(WALL);
    let (mut p, mut s, now) = normal_pair();
    let first = p.queue(lease(a, BindingStatus::Active, t)).unwrap();
    // Replaced before it went out: a new id, and the replaced one is never acknowledged.
    let newer = lease(a, BindingStatus::Active, t.plus(60));
    let second = p.queue(newer.clone()).unwrap();
    assert!(second > first);
    // The same data again is the same update.
    assert_eq!(p.queue(newer).unwrap(), second);
    let other = p
        .queue(lease(
            Ipv4Addr::new(192, 0, 2, 21),
            BindingStatus::Active,
            t,
        ))
        .unwrap();
    assert!(other > second);
    let upds = p.transmit(now);
    let xids = bndupd_xids(&upds);
    assert_eq!(xids.len(), 2);
    s.deliver(now, &upds);
    let acks = s.transmit(now);
    p.deliver(now, &acks);
    let acked: Vec<(UpdateId, u32, [u8; 4])> = p
        .actions
        .iter()
        .filter_map(|x| match x {
            Action::BindingAcked {
                update,
                xid,
                address,
                ..
            } => Some((*update, *xid, *address)),
            _ => None,
        })
        .collect();
    assert_eq!(
        acked,
        vec![
            (second, xids[0], a.octets()),
            (other, xids[1], [192, 0, 2, 21]),
        ]
    );
}

#[test]
fn a_close_is_an_action_and_the_last_messages_go_before_it() {
    let (mut p, _s, now) = normal_pair();
    p.e.disconnect(now, RejectReason::UnknownConnectionReason);
    let out = p.transmit(now);
    assert!(
        p.actions
            .iter()
            .any(|a| matches!(a, Action::CloseConnection))
    );
    assert!(matches!(Repr::parse(&out[0]), Ok(Repr::Disconnect(_))));
    assert!(p.e.poll_timeout().is_none_or(|t| t > now));
}

#[test]
fn a_bndupd_carries_the_stores_record_as_it_is_when_sent() {
    // Issue 14: the engine keeps an address, not a copy; the binding is read from the store
    // when its turn comes.
    let a = Ipv4Addr::new(192, 0, 2, 30);
    let t = UnixTime(WALL);
    let (mut p, mut s, now) = normal_pair();
    let queued = lease(a, BindingStatus::Active, t);
    let id = p.queue(queued).unwrap();
    // The store's record changes before the BNDUPD is written (a store that changes a record
    // queues it again; here the change is made behind the engine's back to show what is read).
    let mut newer = lease(a, BindingStatus::Active, t);
    newer.lease_expiration_time = Some(t.plus(7200));
    p.queued.push(newer);
    let out = p.transmit(now);
    let sent: Vec<Option<u32>> = out
        .iter()
        .filter_map(|m| match Repr::parse(m) {
            Ok(Repr::BndUpd(u)) => u.bindings.iter().next().map(|b| b.lease_expiration_time),
            _ => None,
        })
        .collect();
    assert_eq!(sent, [Some(WALL + 7200)]);
    // The acknowledgement names the update queued, with what went out.
    s.deliver(now, &out);
    let answers = s.transmit(now);
    p.deliver(now, &answers);
    let acked = p.actions.iter().find_map(|x| match x {
        Action::BindingAcked {
            update,
            potential_expiration_time,
            ..
        } => Some((*update, *potential_expiration_time)),
        _ => None,
    });
    assert_eq!(acked, Some((id, Some(t.plus(5400)))));
}

#[test]
fn an_address_the_store_does_not_hold_is_dropped_counted_and_not_sent() {
    let t = UnixTime(WALL);
    let (mut p, _s, now) = normal_pair();
    // Queued straight into the engine: the store (the side's list) never held it.
    p.e.send_binding(&lease(
        Ipv4Addr::new(192, 0, 2, 31),
        BindingStatus::Active,
        t,
    ))
    .unwrap();
    let kept = p.queue(lease(
        Ipv4Addr::new(192, 0, 2, 32),
        BindingStatus::Active,
        t,
    ));
    assert!(kept.is_ok());
    let out = p.transmit(now);
    // Only the address the store holds goes; the other is gone from the queue, counted.
    let addresses: Vec<Ipv4Addr> = out
        .iter()
        .filter_map(|m| match Repr::parse(m) {
            Ok(Repr::BndUpd(u)) => u.bindings.iter().next().map(|b| b.address),
            _ => None,
        })
        .collect();
    assert_eq!(addresses, [Ipv4Addr::new(192, 0, 2, 32)]);
    let status = p.e.status(now);
    assert_eq!(status.counters.updates_dropped, 1);
    assert_eq!(status.queued, 1, "the one in flight");
    // What waited for it is looked at again at once (a timer due now), not on the next input.
    assert!(p.e.poll_timeout().is_some_and(|t| t <= now));
}
