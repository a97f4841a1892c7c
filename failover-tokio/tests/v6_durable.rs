//! A durable DHCPv6 lease table (`Peer6::lease_file`) between two `failover_tokio::v6::Peer6`
//! on the loopback: leases granted on both sides and synced; the secondary stopped and
//! started again from its lease journal and state file comes back with the same table, without
//! `lease_table_lost` (no RECOVER, no UPDREQALL, RFC 8156 §8.3, §8.5.2), reaches NORMAL and
//! agrees with its partner. Started again with its state file but without its journal, it
//! takes its table as lost and gets every binding back. Every wait is bounded; the files live
//! in a temporary directory removed at the end.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::v6::{
    Row, TempDir, address, config, prefix, reach, record_binding, table, tables_agree,
};
use common::{addr, free_port};
use failover_fsm::v6::{ClientKey, LocalLease};
use failover_fsm::{Event, Role, ServerState};
use failover_proto::v6::{BindingStatus, IaKind, LeaseAddr};
use failover_tokio::v6::{
    ClientBinding, Handle6, MemoryStore6, Peer6, PeerEvent6, Security6, StateFile, StateStore,
};

/// One server's files.
struct Files {
    state: PathBuf,
    leases: PathBuf,
}

fn files(dir: &Path, name: &str) -> Files {
    Files {
        state: dir.join(format!("{name}.state")),
        leases: dir.join(format!("{name}.leases6")),
    }
}

async fn start(
    role: Role,
    port: u16,
    f: &Files,
) -> (Handle6, tokio::sync::mpsc::Receiver<PeerEvent6>) {
    let (h, events) = Peer6::new(config(role, "v6-durable"), addr(port))
        .listen(addr(port))
        .security(Security6::Insecure)
        .state_file(&f.state)
        .lease_file(&f.leases)
        .reconnect(Duration::from_millis(100), Duration::from_millis(400))
        .reject_backoff(Duration::from_millis(400))
        .start()
        .await
        .unwrap();
    // The relationship's pools: 8 addresses, 4 delegable prefixes (a reopened table keeps
    // what it holds of them).
    {
        let leases = h.leases();
        let mut t = leases.lock().unwrap();
        for n in 1..=8 {
            t.add_pool_lease(address(n));
        }
        for n in 1..=4 {
            t.add_pool_lease(prefix(n));
        }
    }
    h.sync_leases().await.unwrap();
    (h, events)
}

/// Records client `duid` holding `leases`, makes it durable (as a server does before its
/// REPLY) and sends it.
async fn grant(h: &Handle6, duid: &[u8], leases: &[LeaseAddr]) {
    let handle = record_binding(h, duid, leases);
    h.sync_leases().await.unwrap();
    h.send_binding(handle).await.unwrap();
}

const A: &[u8] = &[0, 3, 0, 1, 2, 0, 0x5e, 0, 0x53, 0xa];
const B: &[u8] = &[0, 3, 0, 1, 2, 0, 0x5e, 0, 0x53, 0xb];
const C: &[u8] = &[0, 3, 0, 1, 2, 0, 0x5e, 0, 0x53, 0xc];

/// Everything a table answers: every record, the handles, each client's binding.
type View = (
    Vec<(LeaseAddr, LocalLease)>,
    Vec<u32>,
    Vec<Option<(u32, ClientBinding)>>,
);

fn view(t: &MemoryStore6) -> View {
    (
        t.records(),
        t.handles().into_iter().map(|h| h.0).collect(),
        [A, B, C]
            .iter()
            .map(|d| t.client(d).map(|(h, c)| (h.0, c.clone())))
            .collect(),
    )
}

/// The states `events` entered so far.
fn entered(events: &mut tokio::sync::mpsc::Receiver<PeerEvent6>) -> Vec<ServerState> {
    let mut states = Vec::new();
    while let Ok(e) = events.try_recv() {
        if let PeerEvent6::Engine(Event::StateChanged { to, .. }) = e {
            states.push(to);
        }
    }
    states
}

fn held(t: &[Row], l: LeaseAddr, duid: &[u8], kind: IaKind, iaid: u32) -> bool {
    t.iter().any(|r| {
        r.0 == l && r.1 == BindingStatus::Active && r.2 == Some(ClientKey::new(duid, kind, iaid))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_secondary_comes_back_with_its_table() {
    let dir = TempDir::new("durable");
    let (p_files, s_files) = (files(&dir.0, "primary"), files(&dir.0, "secondary"));
    let port = free_port();
    let (secondary, _s_events) = start(Role::Secondary, port, &s_files).await;
    let (primary, _p_events) = start(Role::Primary, port, &p_files).await;
    assert!(secondary.restored().is_none(), "new servers");
    reach(&primary, ServerState::Normal, 20).await;
    reach(&secondary, ServerState::Normal, 20).await;

    // Client A at the primary (its address, last bit 1, and a delegable prefix), clients B
    // and C at the secondary (its addresses, last bit 0).
    grant(&primary, A, &[address(1), prefix(1)]).await;
    grant(&secondary, B, &[address(2)]).await;
    grant(&secondary, C, &[address(4)]).await;
    tables_agree(&primary, &secondary, 10).await;
    let with_acks = tokio::time::timeout(Duration::from_secs(10), async {
        // The partner's BNDREPLYs stored on both sides.
        loop {
            let acked = |h: &Handle6, l| {
                h.leases()
                    .lock()
                    .unwrap()
                    .lease(l)
                    .is_some_and(|r| r.acked_partner_lifetime.is_some())
            };
            if acked(&primary, address(1)) && acked(&secondary, address(2)) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(with_acks.is_ok(), "acks not stored");
    secondary.sync_leases().await.unwrap();

    // Stopped in order: what the task stored is synced before it ends.
    let old = secondary.leases();
    secondary.shutdown().await;
    reach(&primary, ServerState::CommunicationsInterrupted, 10).await;
    let before = view(&old.lock().unwrap());
    assert_eq!(before.1.len(), 3, "three clients: {before:?}");
    assert!(before.2.iter().all(Option::is_some));
    // The journal alone gives the table back, exactly.
    let reread = tokio::task::spawn_blocking({
        let path = s_files.leases.clone();
        move || MemoryStore6::open(path)
    })
    .await
    .unwrap()
    .unwrap();
    assert!(reread.reopened());
    assert_eq!(view(&reread), before, "the journal replays to the table");
    drop(reread);
    drop(old);

    // Started again from its files: its state and its table, no UPDREQALL.
    let (secondary, mut events) = start(Role::Secondary, port, &s_files).await;
    let restored = secondary.restored().expect("the state file read back");
    assert!(!restored.lease_table_lost);
    assert!(secondary.leases().lock().unwrap().reopened());
    reach(&secondary, ServerState::Normal, 20).await;
    reach(&primary, ServerState::Normal, 20).await;
    let states = entered(&mut events);
    assert!(
        !states.contains(&ServerState::Recover),
        "no RECOVER (no lost table): {states:?}"
    );
    assert_eq!(secondary.status().counters.recover, 0);
    tables_agree(&primary, &secondary, 10).await;
    let t = table(&secondary);
    assert!(held(&t, address(1), A, IaKind::Na, 1));
    assert!(held(&t, prefix(1), A, IaKind::Pd, 2));
    assert!(held(&t, address(2), B, IaKind::Na, 1));
    assert!(held(&t, address(4), C, IaKind::Na, 1));
    // The bindings and handles are the ones it had: new grants get new handles.
    let now_view = view(&secondary.leases().lock().unwrap());
    assert_eq!(now_view.1, before.1);
    assert_eq!(now_view.2, before.2);
    assert!(
        StateFile::new(&s_files.state)
            .load()
            .unwrap()
            .is_some_and(|p| !p.lease_table_lost)
    );

    // Crashed, and its journal lost (the state file kept): the table is taken as lost
    // (RECOVER, UPDREQALL) and comes back from the partner.
    secondary.abort().await;
    reach(&primary, ServerState::CommunicationsInterrupted, 10).await;
    std::fs::remove_file(&s_files.leases).unwrap();
    let (secondary, mut events) = start(Role::Secondary, port, &s_files).await;
    assert!(
        secondary.restored().is_none(),
        "the saved state is ignored: a new server"
    );
    assert!(!secondary.leases().lock().unwrap().reopened());
    reach(&secondary, ServerState::Normal, 30).await;
    let states = entered(&mut events);
    assert!(
        states.contains(&ServerState::Recover),
        "a lost table is refreshed: {states:?}"
    );
    tables_agree(&primary, &secondary, 10).await;
    let t = table(&secondary);
    assert!(held(&t, address(1), A, IaKind::Na, 1));
    assert!(held(&t, address(2), B, IaKind::Na, 1));

    for h in [primary, secondary] {
        tokio::time::timeout(Duration::from_secs(10), h.shutdown())
            .await
            .expect("shutdown within 10 s");
    }
}
