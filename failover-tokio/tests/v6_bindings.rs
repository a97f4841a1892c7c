//! DHCPv6 bindings between two `failover_tokio::v6::Peer6` on the loopback: IA_NA and IA_PD
//! leases recorded on either side reach the other's table (BNDUPD, BNDREPLY, §7.4–§7.7); a
//! partner restarted without its table (`lease_table_lost`) gets every binding back
//! (UPDREQALL, UPDDONE, §8.5.2) and both tables agree again. Section numbers are RFC 8156's.
//! Every wait is bounded.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::v6::{Row, address, config, prefix, reach, record_binding, table, tables_agree};
use common::{addr, free_port};
use failover_fsm::v6::ClientKey;
use failover_fsm::{Event, Role, ServerState};
use failover_proto::v6::{BindingStatus, IaKind, LeaseAddr};
use failover_tokio::v6::{
    Handle6, MemoryState, MemoryStore6, Peer6, PeerEvent6, Security6, StateStore,
};

/// Records client `duid` holding `leases` and sends its binding.
async fn grant(h: &Handle6, duid: &[u8], leases: &[LeaseAddr]) {
    let handle = record_binding(h, duid, leases);
    h.send_binding(handle).await.unwrap();
}

/// The relationship's pools: 8 addresses, 4 delegable prefixes.
fn pools() -> Arc<Mutex<MemoryStore6>> {
    let mut s = MemoryStore6::new();
    for n in 1..=8 {
        s.add_pool_lease(address(n));
    }
    for n in 1..=4 {
        s.add_pool_lease(prefix(n));
    }
    Arc::new(Mutex::new(s))
}

async fn start(
    role: Role,
    port: u16,
    state: Arc<dyn StateStore>,
    leases: Arc<Mutex<MemoryStore6>>,
    lost: bool,
) -> (Handle6, tokio::sync::mpsc::Receiver<PeerEvent6>) {
    let mut builder = Peer6::new(config(role, "v6-bindings"), addr(port))
        .listen(addr(port))
        .security(Security6::Insecure)
        .state_store(state)
        .leases(leases)
        .reconnect(Duration::from_millis(100), Duration::from_millis(400))
        .reject_backoff(Duration::from_millis(400));
    if lost {
        builder = builder.lease_table_lost();
    }
    builder.start().await.unwrap()
}

const A: &[u8] = &[0, 3, 0, 1, 2, 0, 0x5e, 0, 0x53, 0xa];
const B: &[u8] = &[0, 3, 0, 1, 2, 0, 0x5e, 0, 0x53, 0xb];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bindings_sync_both_ways_and_come_back_after_a_lost_table() {
    let port = free_port();
    let s_state: Arc<dyn StateStore> = Arc::new(MemoryState::default());
    let p_state: Arc<dyn StateStore> = Arc::new(MemoryState::default());
    let (secondary, _s_events) = start(Role::Secondary, port, s_state, pools(), false).await;
    let (primary, _p_events) = start(Role::Primary, port, p_state, pools(), false).await;
    reach(&primary, ServerState::Normal, 20).await;
    reach(&secondary, ServerState::Normal, 20).await;

    // Client A at the primary: its address (last bit 1) and a delegable prefix; client B at
    // the secondary: its address (last bit 0).
    grant(&primary, A, &[address(1), prefix(1)]).await;
    grant(&secondary, B, &[address(2)]).await;
    tables_agree(&primary, &secondary, 10).await;
    let table_now = table(&secondary);
    let held = |t: &[Row], l: LeaseAddr, duid: &[u8], kind, iaid| {
        t.iter().any(|r| {
            r.0 == l
                && r.1 == BindingStatus::Active
                && r.2 == Some(ClientKey::new(duid, kind, iaid))
        })
    };
    assert!(held(&table_now, address(1), A, IaKind::Na, 1));
    assert!(held(&table_now, prefix(1), A, IaKind::Pd, 2));
    assert!(held(&table(&primary), address(2), B, IaKind::Na, 1));
    // The partner's BNDREPLY stored: what it acknowledged is recorded. It follows the
    // partner's store (the tables agree first), behind the prefixes the primary gave on
    // entering NORMAL (§4.2.2): waited for, bounded.
    let acked = || {
        let r = primary.leases().lock().unwrap().lease(address(1)).unwrap();
        r.acked_partner_lifetime.is_some() && r.partner_lifetime.is_none()
    };
    let stored = tokio::time::timeout(Duration::from_secs(5), async {
        while !acked() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(
        stored.is_ok(),
        "the BNDREPLY for address 1 not stored within 5 s"
    );
    // Each side knows the other's client binding (for an UPDREQALL).
    assert!(secondary.leases().lock().unwrap().client(A).is_some());
    assert!(primary.leases().lock().unwrap().client(B).is_some());

    // The secondary's machine is replaced: no state, an empty table. It starts as a new
    // server (RECOVER), asks for everything (UPDREQALL, §8.5.2), gets every binding, then
    // UPDDONE, RECOVER-WAIT, NORMAL; and the tables agree again.
    secondary.abort().await;
    reach(&primary, ServerState::CommunicationsInterrupted, 10).await;
    let fresh = pools();
    let new_state: Arc<dyn StateStore> = Arc::new(MemoryState::default());
    let (secondary, mut events) =
        start(Role::Secondary, port, new_state, fresh.clone(), true).await;
    reach(&secondary, ServerState::Normal, 30).await;
    let mut entered = Vec::new();
    while let Ok(e) = events.try_recv() {
        if let PeerEvent6::Engine(Event::StateChanged { to, .. }) = e {
            entered.push(to);
        }
    }
    assert!(
        entered.starts_with(&[ServerState::Recover, ServerState::RecoverWait]),
        "{entered:?}"
    );
    let counters = secondary.status().counters;
    assert!(counters.bndupd_received >= 2, "{counters:?}");
    tables_agree(&primary, &secondary, 10).await;
    assert!(held(&table(&secondary), address(1), A, IaKind::Na, 1));
    assert!(held(&table(&secondary), address(2), B, IaKind::Na, 1));
    assert!(held(&table(&secondary), prefix(1), A, IaKind::Pd, 2));
    assert!(fresh.lock().unwrap().client(B).is_some());

    for h in [primary, secondary] {
        tokio::time::timeout(Duration::from_secs(10), h.shutdown())
            .await
            .expect("shutdown within 10 s");
    }
}
