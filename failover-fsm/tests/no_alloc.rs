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
