//! A whole failover run — cold start, RECOVER, NORMAL, a thousand binding updates each way, an
//! outage, reconnection — performs no heap allocation in the engine.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

use std::net::Ipv4Addr;

use failover_fsm::accept::LocalBinding;
use failover_fsm::{
    Action, BindingData, BindingSource, BindingStatus, Commits, Config, Engine, Instant,
    LeaseLookup, Role, ServerState, UnixTime,
};

#[path = "../../failover-proto/tests/common/counting_alloc.rs"]
mod counting_alloc;

use counting_alloc::{Counting, counting, self_test, take_count};

#[global_allocator]
static GLOBAL: Counting = Counting;

const POOL: usize = 64;
const BASE: u32 = 0xC612_0100; // 198.18.1.0

/// A fixed-size lease store: no heap.
struct ArrayStore {
    status: [BindingStatus; POOL],
    /// Our bindings as queued, read back when the engine sends them.
    bindings: [Option<BindingData>; POOL],
}

impl BindingSource for ArrayStore {
    fn binding(&self, address: Ipv4Addr) -> Option<BindingData> {
        let i = u32::from(address).checked_sub(BASE)? as usize;
        self.bindings.get(i)?.clone()
    }
}

impl LeaseLookup for ArrayStore {
    fn lookup(&self, address: Ipv4Addr) -> Option<LocalBinding> {
        let i = u32::from(address).checked_sub(BASE)? as usize;
        self.status.get(i).map(|s| LocalBinding::new(*s))
    }
}

type E = Engine<64, 32, 64>;

struct Side {
    engine: E,
    store: ArrayStore,
    acked: usize,
    committed: usize,
    close: bool,
}

impl Side {
    fn new(role: Role) -> Self {
        let mut config = Config::new(role, "fo-alloc", 60);
        config.max_unacked_bndupd = 16;
        Side {
            engine: E::new(config, None, Instant::ZERO, UnixTime(1_700_000_000), 1).unwrap(),
            store: ArrayStore {
                status: [BindingStatus::Free; POOL],
                bindings: core::array::from_fn(|_| None),
            },
            acked: 0,
            committed: 0,
            close: false,
        }
    }

    fn drain(&mut self) {
        while let Some(a) = self.engine.poll_action() {
            match a {
                Action::Persist { token, .. } => self.engine.persist_complete(token).unwrap(),
                Action::BindingAcked { .. } => self.acked += 1,
                Action::SendAllBindings | Action::SendUnackedBindings => {
                    self.engine.end_of_updates();
                }
                Action::CloseConnection => self.close = true,
                _ => {}
            }
        }
        while self.engine.poll_event().is_some() {}
    }
}

/// Sends everything `from` has to `to`; returns whether anything moved.
fn flush(from: &mut Side, to: &mut Side, now: Instant, wall: UnixTime, buf: &mut [u8]) -> bool {
    let mut moved = false;
    from.drain();
    while let Some(n) = from.engine.poll_transmit(now, buf, &from.store) {
        // The commit list is on the stack: no heap.
        let mut commits = Commits::new();
        to.engine
            .handle_message(now, wall, &buf[..n], &to.store, &mut commits)
            .unwrap();
        while let Some(c) = commits.pop() {
            let i = (u32::from(c.binding.ip()) - BASE) as usize;
            to.store.status[i] = c.verdict.store_as;
            to.engine.binding_committed(c.token).unwrap();
            to.committed += 1;
        }
        to.drain();
        from.drain();
        moved = true;
    }
    moved
}

/// Moves messages between the two until neither has anything to send. Fixed buffers only.
fn pump(a: &mut Side, b: &mut Side, now: Instant, wall: UnixTime) {
    let mut buf = [0u8; 2048];
    loop {
        let ab = flush(a, b, now, wall, &mut buf);
        let ba = flush(b, a, now, wall, &mut buf);
        if !ab && !ba {
            return;
        }
    }
}

fn run(a: &mut Side, b: &mut Side, now: &mut Instant, secs: u64) {
    let end = *now + std::time::Duration::from_secs(secs);
    for _ in 0..10_000 {
        let next = [a.engine.poll_timeout(), b.engine.poll_timeout()]
            .into_iter()
            .flatten()
            .min();
        match next {
            Some(t) if t <= end => {
                *now = (*now).max(t);
                a.engine.handle_timeout(*now);
                b.engine.handle_timeout(*now);
                let wall = a.engine.wall_at(*now);
                pump(a, b, *now, wall);
            }
            _ => break,
        }
    }
    *now = end;
}

#[test]
fn a_whole_run_does_not_allocate() {
    let mut p = Side::new(Role::Primary);
    let mut s = Side::new(Role::Secondary);
    let mut now = Instant::ZERO;

    self_test();

    counting(true);
    p.engine.connection_up(now).unwrap();
    s.engine.connection_up(now).unwrap();
    let wall = p.engine.wall_at(now);
    pump(&mut p, &mut s, now, wall);
    run(&mut p, &mut s, &mut now, 5);
    assert_eq!(p.engine.state(), ServerState::Normal);
    assert_eq!(s.engine.state(), ServerState::Normal);

    // A thousand updates, half each way, in rounds the queues can hold.
    for round in 0..(1000 / POOL as u32 + 1) {
        for i in 0..POOL as u32 {
            let wall = p.engine.wall_at(now);
            let addr = Ipv4Addr::from(BASE + i);
            let mut b = BindingData::new(addr, BindingStatus::Active)
                .with_client(None, 1, &[0, 1, 2, 3, (i >> 8) as u8, i as u8])
                .unwrap();
            b.lease_expiration_time = Some(wall.plus(600 + round));
            b.potential_expiration_time = Some(wall.plus(900 + round));
            b.client_last_transaction_time = Some(wall);
            let (from, _) = if i % 2 == 0 {
                (&mut p, &mut s)
            } else {
                (&mut s, &mut p)
            };
            from.engine.send_binding(&b).unwrap();
            from.store.bindings[i as usize] = Some(b);
        }
        let wall = p.engine.wall_at(now);
        pump(&mut p, &mut s, now, wall);
        run(&mut p, &mut s, &mut now, 1);
    }
    // An outage and a reconnection.
    p.engine.connection_down(now);
    s.engine.connection_down(now);
    p.drain();
    s.drain();
    run(&mut p, &mut s, &mut now, 3);
    p.engine.connection_up(now).unwrap();
    s.engine.connection_up(now).unwrap();
    let wall = p.engine.wall_at(now);
    pump(&mut p, &mut s, now, wall);
    run(&mut p, &mut s, &mut now, 5);
    counting(false);

    assert_eq!(take_count(), 0, "heap allocations");
    assert_eq!(p.engine.state(), ServerState::Normal);
    assert_eq!(s.engine.state(), ServerState::Normal);
    // 16 rounds of 32 updates each way: every one committed by the receiver and acked.
    assert_eq!((p.acked, s.acked), (512, 512));
    assert_eq!((p.acked, s.acked), (s.committed, p.committed));
    assert!(!p.close && !s.close);
}

// ----- the same for two V6 engines (RFC 8156) -----

mod v6 {
    use std::net::Ipv6Addr;

    use failover_fsm::engine::{
        Action, BindingHandle, BindingSource6, CommitToken, Engine, LeaseLookup6, UpdateId,
        UpdateSink6, V6,
    };
    use failover_fsm::v6::accept::Verdict;
    use failover_fsm::v6::{ClientKey, LocalLease, owner, wire_time};
    use failover_fsm::{Config, Instant, Role, ServerState, UnixTime};
    use failover_proto::v6::{
        Binding, BindingStatus, ClientData, Ia, IaKind, Lease, LeaseAddr, List, Status, time,
    };

    use super::counting_alloc::{counting, self_test, take_count};

    const POOL: usize = 64;
    const T0: u32 = 1_700_000_000;

    type E6 = Engine<64, 32, 64, V6>;

    fn addr(i: usize) -> LeaseAddr {
        LeaseAddr::Address(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, i as u16 + 1))
    }

    fn slot(a: LeaseAddr) -> Option<usize> {
        match a {
            LeaseAddr::Address(a) => (a.segments()[7] as usize)
                .checked_sub(1)
                .filter(|i| *i < POOL),
            LeaseAddr::Prefix { .. } => None,
        }
    }

    fn duid(i: usize) -> [u8; 6] {
        [0, 3, 0, 1, 0x5e, i as u8]
    }

    /// A fixed-size v6 lease store: a record per address, client `i` holds address `i`.
    struct Store6 {
        records: [LocalLease; POOL],
        wall: UnixTime,
    }

    impl LeaseLookup6 for Store6 {
        fn lookup(&self, lease: LeaseAddr) -> Option<LocalLease> {
            slot(lease).map(|i| self.records[i])
        }
    }

    impl BindingSource6 for Store6 {
        fn binding<R>(
            &self,
            handle: BindingHandle,
            write: impl FnOnce(&Binding<'_>) -> R,
        ) -> Option<R> {
            let i = handle.0 as usize;
            let record = self.records.get(i)?;
            let lease = [record.update_lease(addr(i), 300, 600, self.wall)];
            let ia = [Ia {
                kind: IaKind::Na,
                iaid: 1,
                t1: 150,
                t2: 240,
                leases: List::from_slice(&lease),
                status: None,
                extra: Default::default(),
            }];
            let d = duid(i);
            Some(write(&Binding::Client(ClientData {
                status: None,
                client_id: Some(&d),
                lq_base_time: time::from_unix(u64::from(self.wall.0)),
                vss: None,
                reconfigure: None,
                relay_data: None,
                ias: List::from_slice(&ia),
                extra: Default::default(),
            })))
        }
    }

    /// Commits and answers, handled as they come: no heap.
    struct Sink6<'a> {
        records: &'a mut [LocalLease; POOL],
        commits: [Option<CommitToken>; 32],
        acked: usize,
        wall: UnixTime,
    }

    impl UpdateSink6 for Sink6<'_> {
        fn commit(
            &mut self,
            token: CommitToken,
            binding: &Binding<'_>,
            ia: Option<&Ia<'_>>,
            lease: &Lease<'_>,
            verdict: &Verdict,
        ) {
            let client = ClientKey::of_update(binding, ia);
            let i = slot(lease.addr).unwrap();
            self.records[i].store_received(client, verdict);
            let free = self.commits.iter_mut().find(|c| c.is_none()).unwrap();
            *free = Some(token);
        }

        fn acked(
            &mut self,
            _update: UpdateId,
            _handle: BindingHandle,
            lease: &Lease<'_>,
            outcome: Result<(), Status>,
        ) {
            let i = slot(lease.addr).unwrap();
            if outcome.is_ok() {
                let LeaseAddr::Address(a) = lease.addr else {
                    return;
                };
                // Only ACTIVE leases go out here: nothing is freed to send again.
                let _freed = self.records[i].store_ack(
                    owner::Kind::Address(a),
                    lease.binding_status,
                    lease.partner_lifetime_sent.map(wire_time),
                    self.wall,
                );
                self.acked += 1;
            }
        }
    }

    struct Side6 {
        engine: E6,
        store: Store6,
        acked: usize,
        committed: usize,
        close: bool,
    }

    impl Side6 {
        fn new(role: Role) -> Self {
            let mut config = Config::new(role, "fo6-alloc", 60);
            config.max_unacked_bndupd = 16;
            let wall = UnixTime(T0);
            Side6 {
                engine: E6::new(config, None, Instant::ZERO, wall, 1).unwrap(),
                store: Store6 {
                    records: core::array::from_fn(|i| {
                        LocalLease::new(owner::freed_status(owner::Kind::Address(match addr(i) {
                            LeaseAddr::Address(a) => a,
                            LeaseAddr::Prefix { .. } => unreachable!(),
                        })))
                    }),
                    wall,
                },
                acked: 0,
                committed: 0,
                close: false,
            }
        }

        fn drain(&mut self) {
            while let Some(a) = self.engine.poll_action() {
                match a {
                    Action::Persist { token, .. } => self.engine.persist_complete(token).unwrap(),
                    Action::SendAllBindings | Action::SendUnackedBindings => {
                        self.engine.end_of_updates();
                    }
                    Action::PoolRequested => self.engine.pool_response(0),
                    Action::CloseConnection => self.close = true,
                    _ => {}
                }
            }
            while self.engine.poll_event().is_some() {}
        }
    }

    fn wall_of(now: Instant) -> UnixTime {
        UnixTime(T0 + (now.as_millis() / 1000) as u32)
    }

    fn flush(from: &mut Side6, to: &mut Side6, now: Instant, buf: &mut [u8]) -> bool {
        let mut moved = false;
        from.drain();
        from.store.wall = wall_of(now);
        while let Some(n) = from.engine.poll_transmit(now, buf, &from.store) {
            let wall = wall_of(now);
            let Store6 { records, .. } = &mut to.store;
            let lookup = Store6 {
                records: *records,
                wall,
            };
            let mut sink = Sink6 {
                records,
                commits: [None; 32],
                acked: 0,
                wall,
            };
            to.engine
                .handle_message(now, wall, &buf[..n], &lookup, &mut sink)
                .unwrap();
            to.acked += sink.acked;
            for token in sink.commits.into_iter().flatten() {
                to.engine.binding_committed(token).unwrap();
                to.committed += 1;
            }
            to.drain();
            from.drain();
            moved = true;
        }
        moved
    }

    fn pump(a: &mut Side6, b: &mut Side6, now: Instant) {
        let mut buf = [0u8; 2048];
        loop {
            let ab = flush(a, b, now, &mut buf);
            let ba = flush(b, a, now, &mut buf);
            if !ab && !ba {
                return;
            }
        }
    }

    fn run(a: &mut Side6, b: &mut Side6, now: &mut Instant, secs: u64) {
        let end = *now + std::time::Duration::from_secs(secs);
        for _ in 0..10_000 {
            let next = [a.engine.poll_timeout(), b.engine.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(t) if t <= end => {
                    *now = (*now).max(t);
                    a.engine.handle_timeout(*now);
                    b.engine.handle_timeout(*now);
                    pump(a, b, *now);
                }
                _ => break,
            }
        }
        *now = end;
    }

    /// Gives client `i` its address on `side` (ACTIVE for 600 s) and queues the binding.
    fn grant(side: &mut Side6, i: usize, now: Instant, round: u32) {
        let wall = wall_of(now);
        side.store.records[i] = LocalLease {
            client: Some(ClientKey::new(&duid(i), IaKind::Na, 1)),
            cltt: Some(wall),
            start_time_of_state: Some(wall),
            state_expiration_time: Some(wall.plus(600 + round)),
            partner_lifetime: Some(wall.plus(900 + round)),
            ..LocalLease::new(BindingStatus::Active)
        };
        side.engine.send_binding(BindingHandle(i as u32)).unwrap();
    }

    #[test]
    fn a_whole_v6_run_does_not_allocate() {
        let mut p = Side6::new(Role::Primary);
        let mut s = Side6::new(Role::Secondary);
        let mut now = Instant::ZERO;

        self_test();

        counting(true);
        // STARTUP, then connect: both new, RECOVER, UPDREQALL, RECOVER-WAIT for the MCLT.
        run(&mut p, &mut s, &mut now, 16);
        p.engine.connection_up(now).unwrap();
        s.engine.connection_up(now).unwrap();
        pump(&mut p, &mut s, now);
        run(&mut p, &mut s, &mut now, 90);
        assert_eq!(p.engine.state(), ServerState::Normal);
        assert_eq!(s.engine.state(), ServerState::Normal);

        // Bindings each way (odd addresses the primary's, even the secondary's, §4.2.1.1),
        // in rounds the queues hold; every one committed by the partner and answered.
        for round in 0..16u32 {
            for i in 0..POOL {
                let from = if i % 2 == 0 { &mut p } else { &mut s };
                grant(from, i, now, round);
            }
            pump(&mut p, &mut s, now);
            run(&mut p, &mut s, &mut now, 1);
        }
        // An outage and a reconnection.
        p.engine.connection_down(now);
        s.engine.connection_down(now);
        p.drain();
        s.drain();
        run(&mut p, &mut s, &mut now, 3);
        p.engine.connection_up(now).unwrap();
        s.engine.connection_up(now).unwrap();
        pump(&mut p, &mut s, now);
        run(&mut p, &mut s, &mut now, 5);
        counting(false);

        assert_eq!(take_count(), 0, "heap allocations");
        assert_eq!(p.engine.state(), ServerState::Normal);
        assert_eq!(s.engine.state(), ServerState::Normal);
        assert_eq!((p.acked, s.acked), (512, 512));
        assert_eq!((p.acked, s.acked), (s.committed, p.committed));
        assert!(!p.close && !s.close);
    }
}
