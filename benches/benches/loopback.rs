//! Two failover peers over loopback TCP (failover-tokio, in-memory stores): acked BNDUPD/s with
//! max-unacked 10 and 100, and a cold-start resync of 100,000 bindings.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_docs
)]

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use failover_fsm::{BindingData, BindingStatus, Config, Role, ServerState, UnixTime};
use failover_tokio::{Handle, MemoryStore, PeerBuilder, PeerEvent};
use tokio::runtime::Runtime;
use tokio::sync::mpsc::Receiver;

fn port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn config(role: Role, mud: u32) -> Config {
    let mut c = Config::new(role, "bench-pair", 5);
    c.max_unacked_bndupd = mud;
    c
}

async fn peer(role: Role, mud: u32, listen: u16, partner: u16, store: Arc<MemoryStore>) -> Handle {
    let a = |p| SocketAddr::from(([127, 0, 0, 1], p));
    let (h, rx): (Handle, Receiver<PeerEvent>) =
        PeerBuilder::new(config(role, mud), a(partner), store)
            .plaintext()
            .listen(a(listen))
            .reconnect(Duration::from_millis(20), Duration::from_millis(200))
            .start()
            .await
            .unwrap();
    tokio::spawn(async move {
        let mut rx = rx;
        while rx.recv().await.is_some() {}
    });
    h
}

const FIRST: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 0);

fn lease(i: u32, round: u32) -> BindingData {
    let a = Ipv4Addr::from(u32::from(FIRST) + i);
    let mut b = BindingData::new(a, BindingStatus::Active)
        .with_client(
            None,
            1,
            &[2, 0, (i >> 16) as u8, (i >> 8) as u8, i as u8, round as u8],
        )
        .unwrap();
    b.lease_expiration_time = Some(UnixTime(1_900_000_000 + round));
    b.potential_expiration_time = Some(UnixTime(1_900_003_600 + round));
    b.client_last_transaction_time = Some(UnixTime(1_800_000_000 + round));
    b
}

/// Acked BNDUPD/s: the primary sends `n` updates, timed until the last is acknowledged.
fn acked_rate(c: &mut Criterion) {
    const N: u32 = 20_000;
    let rt = Runtime::new().unwrap();
    let mut g = c.benchmark_group("loopback");
    g.throughput(Throughput::Elements(u64::from(N)));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(10));
    for mud in [10u32, 100] {
        let (p, _s, _ps) = rt.block_on(async {
            let (pp, sp) = (port(), port());
            let ps = Arc::new(MemoryStore::new(Role::Primary, FIRST, N));
            let ss = Arc::new(MemoryStore::new(Role::Secondary, FIRST, N));
            let p = peer(Role::Primary, mud, pp, sp, ps.clone()).await;
            let s = peer(Role::Secondary, mud, sp, pp, ss).await;
            tokio::time::timeout(
                Duration::from_secs(30),
                p.wait_for_state(ServerState::Normal),
            )
            .await
            .unwrap()
            .unwrap();
            tokio::time::timeout(
                Duration::from_secs(30),
                s.wait_for_state(ServerState::Normal),
            )
            .await
            .unwrap()
            .unwrap();
            (p, s, ps)
        });
        let mut round = 0u32;
        g.bench_function(format!("acked_bndupd_mud{mud}"), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        round += 1;
                        // In batches, as a DHCP server would hand over a burst of leases.
                        for chunk in (0..N).collect::<Vec<u32>>().chunks(500) {
                            let batch = chunk.iter().map(|&i| lease(i, round)).collect();
                            p.send_bindings(batch).await.unwrap();
                        }
                        let mut w = p.watch();
                        w.wait_for(|st| st.queued == 0 && st.unacked_sent == 0)
                            .await
                            .unwrap();
                    }
                    start.elapsed()
                })
            })
        });
    }
    g.finish();
}

/// A new pair whose primary holds 100,000 ACTIVE bindings: time from start to both NORMAL,
/// i.e. the mutual UPDREQALL resync of a cold start.
fn resync(c: &mut Criterion) {
    const N: u32 = 100_000;
    let rt = Runtime::new().unwrap();
    let mut g = c.benchmark_group("loopback");
    g.throughput(Throughput::Elements(u64::from(N)));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(30));
    g.bench_function("resync_100k", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let ps = Arc::new(MemoryStore::new(Role::Primary, FIRST, N));
                    for i in 0..N {
                        use failover_tokio::Storage;
                        ps.record_local(&lease(i, 0)).unwrap();
                    }
                    let ss = Arc::new(MemoryStore::new(Role::Secondary, FIRST, N));
                    let (pp, sp) = (port(), port());
                    let start = Instant::now();
                    let p = peer(Role::Primary, 100, pp, sp, ps).await;
                    let s = peer(Role::Secondary, 100, sp, pp, ss.clone()).await;
                    s.wait_for_state(ServerState::Normal).await.unwrap();
                    p.wait_for_state(ServerState::Normal).await.unwrap();
                    total += start.elapsed();
                    assert_eq!(ss.count(BindingStatus::Active), N as usize);
                    p.abort().await;
                    s.abort().await;
                }
                total
            })
        })
    });
    g.finish();
}

criterion_group!(benches, acked_rate, resync);
criterion_main!(benches);
