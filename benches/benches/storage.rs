//! Durable lease tables: one change and its sync (write + fsync) per iteration, DHCPv4's
//! `FileStore` (append-only log) beside DHCPv6's journaled `MemoryStore6` in the same run, on
//! the temporary directory's disk; alone (`1_thread`: one fsync per sync) and with 4 threads
//! syncing at once (`4_threads`: what group commit shares). Throughput: syncs per second.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_docs
)]

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use failover_fsm::v6::{ClientKey, LocalLease};
use failover_fsm::{BindingData, BindingStatus, Role, UnixTime};
use failover_proto::v6::{BindingStatus as Status6, IaKind, LeaseAddr};
use failover_tokio::v6::{ClientBinding, IaBinding, MemoryStore6};
use failover_tokio::{FileStore, Storage};

const FIRST: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 0);
const POOL: u32 = 1024;

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("failover-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn lease4(i: u32) -> BindingData {
    let a = Ipv4Addr::from(u32::from(FIRST) + i % POOL);
    let mut b = BindingData::new(a, BindingStatus::Active)
        .with_client(
            None,
            1,
            &[2, 0, (i >> 16) as u8, (i >> 8) as u8, i as u8, 1],
        )
        .unwrap();
    b.lease_expiration_time = Some(UnixTime(1_900_000_000 + i));
    b.potential_expiration_time = Some(UnixTime(1_900_003_600 + i));
    b.client_last_transaction_time = Some(UnixTime(1_800_000_000 + i));
    b
}

/// Client `i % POOL` renews its address: its record and binding change.
fn change6(t: &mut MemoryStore6, i: u32) {
    let n = i % POOL;
    let addr = LeaseAddr::Address(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 1, n as u16));
    let duid = vec![0, 3, 0, 1, 2, 0, (n >> 8) as u8, n as u8];
    let r = LocalLease {
        client: Some(ClientKey::new(&duid, IaKind::Na, 1)),
        cltt: Some(UnixTime(1_800_000_000 + i)),
        start_time_of_state: Some(UnixTime(1_800_000_000)),
        state_expiration_time: Some(UnixTime(1_900_000_000 + i)),
        partner_lifetime: Some(UnixTime(1_900_003_600 + i)),
        ..LocalLease::new(Status6::Active)
    };
    t.update(
        ClientBinding {
            duid,
            ias: vec![IaBinding {
                kind: IaKind::Na,
                iaid: 1,
                leases: vec![(addr, 1800, 3600)],
            }],
        },
        [(addr, r)],
    );
}

/// `iters` change-and-sync rounds spread over `threads` threads; the wall time they took.
fn spread(threads: u32, iters: u64, round: &(dyn Fn(u32) + Sync)) -> Duration {
    let per = iters.div_ceil(u64::from(threads)) as u32;
    let t = Instant::now();
    std::thread::scope(|s| {
        for k in 0..threads {
            s.spawn(move || {
                for i in 0..per {
                    round(k * per + i);
                }
            });
        }
    });
    t.elapsed()
}

fn durable_sync(c: &mut Criterion) {
    let mut g = c.benchmark_group("durable_sync");
    g.sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .throughput(Throughput::Elements(1));
    for threads in [1u32, 4] {
        let d = dir("v4");
        let store = FileStore::open(d.join("leases4"), Role::Primary, FIRST, POOL).unwrap();
        g.bench_function(format!("v4_file_store/{threads}_threads"), |b| {
            b.iter_custom(|iters| {
                spread(threads, iters, &|i| {
                    store.record_local(&lease4(i)).unwrap();
                    store.sync().unwrap();
                })
            });
        });
        drop(store);
        let _ = std::fs::remove_dir_all(&d);

        let d = dir("v6");
        let table = Mutex::new(MemoryStore6::open(d.join("leases6")).unwrap());
        g.bench_function(format!("v6_journal/{threads}_threads"), |b| {
            b.iter_custom(|iters| {
                spread(threads, iters, &|i| {
                    change6(&mut table.lock().unwrap(), i);
                    MemoryStore6::sync(&table).unwrap();
                })
            });
        });
        drop(table);
        let _ = std::fs::remove_dir_all(&d);
    }
    g.finish();
}

criterion_group!(benches, durable_sync);
criterion_main!(benches);
