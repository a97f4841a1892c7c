//! How a DHCPv6 lease ends between two `failover_tokio::v6::Peer6` on the loopback: released
//! at one server, it ends free — available to its owner — at both (§7.2: the sender frees
//! on the partner's ack, then tells the partner, §4.3); run out, the task marks it EXPIRED
//! once `LocalLease::expiry_due` says so and both tables end free again. Before the library
//! sent the FREE, the partner's copy stayed RELEASED for good and the owner of the address
//! never gave it out again outside PARTNER-DOWN. Section numbers are RFC 8156's. Every wait
//! is bounded.
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

use common::v6::{address, config, now, reach};
use common::{addr, free_port};
use failover_fsm::v6::allocate::Endpoint;
use failover_fsm::{Role, ServerState};
use failover_proto::v6::{BindingStatus, IaKind, LeaseAddr};
use failover_tokio::v6::{Handle6, MemoryState, MemoryStore6, Peer6, PeerEvent6, Security6};

const DUID: &[u8] = &[0, 3, 0, 1, 2, 0, 0x5e, 0, 0x53, 9];

/// 2001:db8::3: the primary's.
fn primarys() -> LeaseAddr {
    address(3)
}

async fn start(role: Role, port: u16) -> (Handle6, tokio::sync::mpsc::Receiver<PeerEvent6>) {
    let mut s = MemoryStore6::new();
    for n in 1..=8 {
        s.add_pool_lease(address(n));
    }
    Peer6::new(config(role, "v6-lease-end"), addr(port))
        .listen(addr(port))
        .security(Security6::Insecure)
        .state_store(Arc::new(MemoryState::default()))
        .leases(Arc::new(Mutex::new(s)))
        .reconnect(Duration::from_millis(100), Duration::from_millis(400))
        .start()
        .await
        .unwrap()
}

async fn pair() -> (Handle6, Handle6) {
    let port = free_port();
    let (p, _pe) = start(Role::Primary, port).await;
    let (s, _se) = start(Role::Secondary, port).await;
    for h in [&p, &s] {
        reach(h, ServerState::Normal, 15).await;
    }
    (p, s)
}

fn status_at(h: &Handle6, lease: LeaseAddr) -> Option<BindingStatus> {
    h.leases().lock().unwrap().lease(lease).map(|r| r.status)
}

/// Waits (bounded) until both tables hold `lease` with `status`.
async fn both(p: &Handle6, s: &Handle6, lease: LeaseAddr, status: BindingStatus, secs: u64) {
    let done = tokio::time::timeout(Duration::from_secs(secs), async {
        while status_at(p, lease) != Some(status) || status_at(s, lease) != Some(status) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(
        done.is_ok(),
        "{lease:?} not {status:?} on both sides within {secs} s: primary {:?}, secondary {:?}",
        p.leases().lock().unwrap().lease(lease),
        s.leases().lock().unwrap().lease(lease)
    );
}

/// `h` gives `lease` to the client for `desired` seconds and sends the binding.
async fn grant(h: &Handle6, lease: LeaseAddr, desired: u32) -> u32 {
    let status = h.status();
    let (handle, granted) = h
        .leases()
        .lock()
        .unwrap()
        .grant(
            &Endpoint::of_status(&status),
            status.lease_mclt,
            DUID,
            (IaKind::Na, 1),
            lease,
            desired,
            false,
            now(),
        )
        .unwrap();
    h.send_binding(handle).await.unwrap();
    granted
}

/// The primary's client releases the primary's address there: the primary frees it on the
/// secondary's answer and sends the FREE, and the secondary's RELEASED copy takes it (the
/// completing FREE, however soon after the RELEASED): FREE on both, the primary's again.
#[tokio::test]
async fn a_released_lease_ends_free_at_both_servers() {
    let (p, s) = pair().await;
    grant(&p, primarys(), 600).await;
    both(&p, &s, primarys(), BindingStatus::Active, 5).await;
    let handle = p
        .leases()
        .lock()
        .unwrap()
        .release(DUID, primarys(), false, now())
        .unwrap();
    p.send_binding(handle).await.unwrap();
    both(&p, &s, primarys(), BindingStatus::Free, 5).await;
    p.shutdown().await;
    s.shutdown().await;
}

/// A lease that runs out: the task marks it EXPIRED `EXPIRY_DELAY` after its end (its
/// holder's server, and the partner's copy: both expire it), the EXPIRED is acked, and both
/// tables end FREE — the address is its owner's again.
#[tokio::test]
async fn a_lease_that_runs_out_ends_free_at_both_servers() {
    let (p, s) = pair().await;
    let granted = grant(&p, primarys(), 1).await;
    assert_eq!(granted, 1);
    both(&p, &s, primarys(), BindingStatus::Active, 5).await;
    // End + 10 s + the task's 1-s look at the table, + the exchange.
    both(
        &p,
        &s,
        primarys(),
        BindingStatus::Free,
        u64::from(granted + failover_fsm::v6::EXPIRY_DELAY) + 6,
    )
    .await;
    let r = p.leases().lock().unwrap().lease(primarys()).unwrap();
    assert_eq!(
        r.acked_partner_lifetime, None,
        "the ended binding's promise is gone"
    );
    p.shutdown().await;
    s.shutdown().await;
}
