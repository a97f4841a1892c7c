//! Two failover engines in memory exchanging binding updates: send → BNDUPD → commit → BNDACK
//! → acked, with every message encoded and decoded. No sockets, no allocation in the loop.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_docs
)]

use std::hint::black_box;
use std::net::Ipv4Addr;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use failover_fsm::accept::LocalBinding;
use failover_fsm::{
    Action, BindingData, BindingSource, BindingStatus, Commits, Config, Engine, Instant,
    LeaseLookup, Role, ServerState, UnixTime,
};

const BASE: u32 = 0xC612_0000; // 198.18.0.0
const POOL: u32 = 16_384;

struct Pool;

impl LeaseLookup for Pool {
    fn lookup(&self, a: Ipv4Addr) -> Option<LocalBinding> {
        let i = u32::from(a).checked_sub(BASE)?;
        (i < POOL).then(|| LocalBinding::new(BindingStatus::Free))
    }
}

/// The primary's lease table, indexed by address: what the engine reads a binding from when
/// it sends it (as a store would, a lookup and a copy).
struct Table<'a>(&'a [BindingData]);

impl BindingSource for Table<'_> {
    fn binding(&self, a: Ipv4Addr) -> Option<BindingData> {
        let i = u32::from(a).checked_sub(BASE)?;
        self.0.get(i as usize).cloned()
    }
}

type E = Engine<256, 128, 256>;

struct Side {
    e: Box<E>,
    acked: u64,
}

fn side(role: Role, mud: u32) -> Side {
    let mut c = Config::new(role, "bench", 60);
    c.max_unacked_bndupd = mud;
    Side {
        e: Box::new(E::new(c, None, Instant::ZERO, UnixTime(1_700_000_000), 1).unwrap()),
        acked: 0,
    }
}

fn drain(s: &mut Side) {
    while let Some(a) = s.e.poll_action() {
        match a {
            Action::Persist { token, .. } => s.e.persist_complete(token).unwrap(),
            Action::SendAllBindings | Action::SendUnackedBindings => s.e.end_of_updates(),
            Action::BindingAcked { .. } => s.acked += 1,
            _ => {}
        }
    }
    while s.e.poll_event().is_some() {}
}

fn flush(from: &mut Side, to: &mut Side, buf: &mut [u8; 2048], table: &Table<'_>) -> bool {
    let now = Instant::ZERO;
    let wall = UnixTime(1_700_000_000);
    let mut moved = false;
    drain(from);
    while let Some(n) = from.e.poll_transmit(now, buf, table) {
        let mut commits = Commits::new();
        to.e.handle_message(now, wall, &buf[..n], &Pool, &mut commits)
            .unwrap();
        while let Some(c) = commits.pop() {
            to.e.binding_committed(c.token).unwrap();
        }
        drain(to);
        drain(from);
        moved = true;
    }
    moved
}

fn pump(a: &mut Side, b: &mut Side, buf: &mut [u8; 2048], table: &Table<'_>) {
    loop {
        let x = flush(a, b, buf, table);
        let y = flush(b, a, buf, table);
        if !x && !y {
            return;
        }
    }
}

/// A connected pair in NORMAL.
fn pair(mud: u32) -> (Side, Side) {
    let mut p = side(Role::Primary, mud);
    let mut s = side(Role::Secondary, mud);
    p.e.connection_up(Instant::ZERO).unwrap();
    s.e.connection_up(Instant::ZERO).unwrap();
    let mut buf = [0u8; 2048];
    pump(&mut p, &mut s, &mut buf, &Table(&[]));
    assert_eq!(p.e.state(), ServerState::Normal);
    p.acked = 0;
    (p, s)
}

fn binding(i: u32) -> BindingData {
    let mut b = BindingData::new(Ipv4Addr::from(BASE + i % POOL), BindingStatus::Active)
        .with_client(None, 1, &[0, 0x0c, 0x29, 0, (i >> 8) as u8, i as u8])
        .unwrap();
    b.lease_expiration_time = Some(UnixTime(1_700_003_600));
    b.potential_expiration_time = Some(UnixTime(1_700_005_400));
    b.start_time_of_state = Some(UnixTime(1_700_000_000));
    b.client_last_transaction_time = Some(UnixTime(1_700_000_000));
    b
}

/// Sends `n` bindings from the primary and runs until all are acked.
fn stream(p: &mut Side, s: &mut Side, bindings: &[BindingData]) -> u64 {
    let mut buf = [0u8; 2048];
    let mut next = 0;
    let table = Table(bindings);
    while p.acked < bindings.len() as u64 {
        while next < bindings.len() && p.e.send_queue_space() > 0 {
            p.e.send_binding(&bindings[next]).unwrap();
            next += 1;
        }
        pump(p, s, &mut buf, &table);
    }
    p.acked
}

fn acked_updates(c: &mut Criterion) {
    const N: u32 = 10_000;
    let bindings: Vec<BindingData> = (0..N).map(binding).collect();
    let mut g = c.benchmark_group("engine");
    g.throughput(Throughput::Elements(u64::from(N)));
    g.sample_size(20);
    for mud in [10u32, 100] {
        g.bench_function(format!("acked_bndupd_mud{mud}"), |b| {
            b.iter_batched(
                || pair(mud),
                |(mut p, mut s)| black_box(stream(&mut p, &mut s, &bindings)),
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, acked_updates);
criterion_main!(benches);
