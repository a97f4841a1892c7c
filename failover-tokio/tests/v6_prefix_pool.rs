//! Proportional allocation of delegable prefixes (RFC 8156 §4.2.2) between two
//! `failover_tokio::v6::Peer6` on the loopback: every prefix starts as the primary's; once the
//! secondary is NORMAL it asks (POOLREQ) and the primary gives it its configured share as
//! FREE-BACKUP clientless prefixes (top-level IAPREFIX BNDUPDs, §7.4); both tables agree; a
//! POOLREQ with balanced counts moves nothing; the primary takes a prefix back (FREE) when its
//! own delegations shrink the total. Who may delegate what follows `v6::allocate`: the
//! secondary, renew responsive in NORMAL (§8.8.1), delegates nothing new there, and in
//! COMMUNICATIONS-INTERRUPTED only its FREE-BACKUP share. Plus the store's part without a
//! network. Section numbers are RFC 8156's. Every wait is bounded.
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

use common::v6::{MCLT, TempDir, address, config, now, prefix};
use common::{addr, free_port};
use failover_fsm::engine::BindingSource6;
use failover_fsm::v6::accept::{Received, judge_update};
use failover_fsm::v6::allocate::{Endpoint, Refusal};
use failover_fsm::v6::pool::{PoolConfig, PrefixCounts, PrefixPlan, plan_prefixes};
use failover_fsm::v6::{ClientKey, TIME_SKEW_LIMIT};
use failover_fsm::{Role, ServerState, UnixTime};
use failover_proto::v6::{self as wire, Binding, BindingStatus, IaKind, LeaseAddr, Repr};
use failover_tokio::v6::{
    GrantError, Handle6, MemoryState, MemoryStore6, PREFIX_HANDLES, Peer6, PeerEvent6, Security6,
};

const PREFIXES: u16 = 20;

/// The relationship's pools: 8 addresses, 20 delegable prefixes.
fn table() -> MemoryStore6 {
    let mut s = MemoryStore6::new();
    for n in 1..=8 {
        s.add_pool_lease(address(n));
    }
    for n in 1..=PREFIXES {
        s.add_pool_lease(prefix(n));
    }
    s
}

const T0: UnixTime = UnixTime(1_700_000_000);
const A: &[u8] = &[0, 3, 0, 1, 2, 0, 0x5e, 0, 0x53, 0xa];
const B: &[u8] = &[0, 3, 0, 1, 2, 0, 0x5e, 0, 0x53, 0xb];

// ----- the store, without a network -----

fn plan(counts: PrefixCounts, config: &PoolConfig) -> PrefixPlan {
    plan_prefixes(Role::Primary, wire::ServerState::Normal, counts, config).unwrap()
}

fn statuses(s: &MemoryStore6, status: BindingStatus) -> Vec<LeaseAddr> {
    s.records()
        .into_iter()
        .filter(|(a, r)| matches!(a, LeaseAddr::Prefix { .. }) && r.status == status)
        .map(|(a, _)| a)
        .collect()
}

#[test]
fn prefixes_have_their_own_handles() {
    let s = table();
    let first = s.prefix_handle(prefix(1)).unwrap();
    let last = s.prefix_handle(prefix(PREFIXES)).unwrap();
    assert_eq!(first.0, PREFIX_HANDLES);
    assert_eq!(last.0, PREFIX_HANDLES + u32::from(PREFIXES) - 1);
    assert_eq!(s.prefix_handle(address(1)), None);
    assert_eq!(s.prefix_handle(prefix(PREFIXES + 1)), None);
    // Untouched prefixes are FREE on both sides by configuration: not sent on UPDREQALL.
    assert!(s.update_handles().is_empty());
    assert_eq!(
        s.prefix_counts(),
        PrefixCounts {
            free: 20,
            free_backup: 0
        }
    );
}

#[test]
fn the_primary_gives_the_last_prefixes_and_a_second_plan_is_empty() {
    let mut s = table();
    let config = PoolConfig::default();
    let p = plan(s.prefix_counts(), &config);
    assert_eq!((p.give, p.take_back), (10, 0));
    let handles = s.move_prefixes(&p, T0);
    assert_eq!(handles.len(), 10);
    assert_eq!(
        statuses(&s, BindingStatus::FreeBackup),
        (11..=20).map(prefix).collect::<Vec<_>>()
    );
    assert_eq!(
        statuses(&s, BindingStatus::Free),
        (1..=10).map(prefix).collect::<Vec<_>>()
    );
    let r = s.lease(prefix(20)).unwrap();
    assert_eq!((r.start_time_of_state, r.client), (Some(T0), None));
    // The moved ones are sent on an UPDREQALL too; the others are not.
    let mut sent = s.update_handles();
    sent.sort();
    let mut moved = handles.clone();
    moved.sort();
    assert_eq!(sent, moved);
    // Balanced: the next plan moves nothing.
    let again = plan(s.prefix_counts(), &config);
    assert!(again.is_empty(), "{again:?}");
    assert!(s.move_prefixes(&again, T0.plus(60)).is_empty());
}

#[test]
fn a_take_back_waits_until_the_give_is_more_than_5_s_old() {
    let mut s = table();
    s.move_prefixes(&plan(s.prefix_counts(), &PoolConfig::default()), T0);
    // The secondary's share drops to a quarter: 5 come back.
    let quarter = PoolConfig {
        secondary_percent: 25,
        threshold: 0,
    };
    let p = plan(s.prefix_counts(), &quarter);
    assert_eq!((p.give, p.take_back), (0, 5));
    // Within 5 s of the give the secondary would take FREE as "not later" (§7.5.1) and refuse.
    assert!(s.move_prefixes(&p, T0.plus(TIME_SKEW_LIMIT)).is_empty());
    let back = s.move_prefixes(&p, T0.plus(TIME_SKEW_LIMIT + 1));
    assert_eq!(back.len(), 5);
    assert_eq!(
        s.prefix_counts(),
        PrefixCounts {
            free: 15,
            free_backup: 5
        }
    );
    // The last ones given come back first.
    assert_eq!(
        statuses(&s, BindingStatus::FreeBackup),
        (11..=15).map(prefix).collect::<Vec<_>>()
    );
}

/// A moved prefix's BNDUPD, written by the store, read back by the codec with §7.4's rules,
/// judged and stored by a fresh secondary's table.
#[test]
fn a_given_prefix_reaches_the_secondary_as_a_clientless_iaprefix() {
    let mut primary = table();
    let mut secondary = table();
    primary.move_prefixes(&plan(primary.prefix_counts(), &PoolConfig::default()), T0);
    let handle = primary.prefix_handle(prefix(20)).unwrap();
    let mut buf = [0u8; 512];
    let n = primary
        .binding(handle, |b| {
            wire::BndUpd {
                xid: 1,
                sent_time: 0,
                binding: *b,
                extra: Default::default(),
            }
            .emit(&mut buf)
            .unwrap()
        })
        .unwrap();
    let Repr::BndUpd(u) = Repr::parse(&buf[..n]).unwrap() else {
        panic!("not a BNDUPD")
    };
    let Binding::Prefix(lease) = u.binding else {
        panic!("not a clientless prefix: {:?}", u.binding)
    };
    assert_eq!(lease.addr, prefix(20));
    assert_eq!(lease.binding_status, Some(BindingStatus::FreeBackup));
    let (_, received) = Received::all(&u.binding).next().unwrap();
    let local = secondary.lease(prefix(20));
    let verdict = judge_update(Role::Secondary, local.as_ref(), &received, T0).unwrap();
    secondary.store_received(None, (lease.addr, 0, 0), &verdict);
    assert_eq!(
        secondary.prefix_counts(),
        PrefixCounts {
            free: 19,
            free_backup: 1
        }
    );
    assert_eq!(
        secondary.lease(prefix(20)).unwrap().start_time_of_state,
        Some(T0)
    );

    // A delegated prefix is its client's binding: its clientless handle writes nothing.
    let endpoint = Endpoint {
        role: Role::Primary,
        state: wire::ServerState::Normal,
        state_since: T0,
        mclt: MCLT,
    };
    primary
        .grant(
            &endpoint,
            MCLT,
            A,
            (IaKind::Pd, 1),
            prefix(1),
            600,
            false,
            T0,
        )
        .unwrap();
    let one = primary.prefix_handle(prefix(1)).unwrap();
    assert_eq!(primary.binding(one, |_| ()), None);
    // What carries each lease when it must go again: the client's binding, else the prefix's.
    let (a, _) = primary.client(A).unwrap();
    assert_eq!(primary.holder(prefix(1)), Some(a));
    assert_eq!(primary.holder(prefix(20)), Some(handle));
    // ... and the primary may not delegate what it gave (§4.2.2).
    assert_eq!(
        primary.grant(
            &endpoint,
            MCLT,
            B,
            (IaKind::Pd, 1),
            prefix(20),
            600,
            false,
            T0.plus(60)
        ),
        Err(GrantError::Refused(Refusal::PartnersPrefix))
    );
}

#[test]
fn which_prefixes_each_server_may_delegate() {
    let mut s = table();
    s.move_prefixes(&plan(s.prefix_counts(), &PoolConfig::default()), T0);
    let later = T0.plus(60);
    let at = |role, state| Endpoint {
        role,
        state,
        state_since: T0,
        mclt: MCLT,
    };
    use wire::ServerState::{CommunicationsInterrupted, Normal, PartnerDown};
    let firsts: Vec<LeaseAddr> = (1..=10).map(prefix).collect();
    let lasts: Vec<LeaseAddr> = (11..=20).map(prefix).collect();
    assert_eq!(
        s.delegable_prefixes(&at(Role::Primary, Normal), later),
        firsts
    );
    // Renew responsive in NORMAL (§8.8.1): nothing new.
    assert!(
        s.delegable_prefixes(&at(Role::Secondary, Normal), later)
            .is_empty()
    );
    assert_eq!(
        s.delegable_prefixes(&at(Role::Secondary, CommunicationsInterrupted), later),
        lasts
    );
    // PARTNER-DOWN: own ones only while any is left (§8.4.1).
    assert_eq!(
        s.delegable_prefixes(&at(Role::Secondary, PartnerDown), later.plus(MCLT)),
        lasts
    );
}

/// A journaled table keeps the moves: reopened, the split and the clientless bindings are
/// there (a restarted primary must not delegate what it gave, §4.2.2).
#[test]
fn moves_are_journaled() {
    let dir = TempDir::new("pool-journal");
    let path = dir.0.join("primary.leases6");
    let mut t = MemoryStore6::open(&path).unwrap();
    for n in 1..=PREFIXES {
        t.add_pool_lease(prefix(n));
    }
    let table = Mutex::new(t);
    MemoryStore6::sync(&table).unwrap();
    {
        let mut t = table.lock().unwrap();
        let p = plan(t.prefix_counts(), &PoolConfig::default());
        assert_eq!(t.move_prefixes(&p, T0).len(), 10);
    }
    MemoryStore6::sync(&table).unwrap();
    drop(table);
    let again = MemoryStore6::open(&path).unwrap();
    assert_eq!(again.prefix_counts(), counts(10, 10));
    assert_eq!(
        statuses(&again, BindingStatus::FreeBackup),
        (11..=20).map(prefix).collect::<Vec<_>>()
    );
    let h = again.prefix_handle(prefix(20)).unwrap();
    assert!(again.update_handles().contains(&h));
    assert_eq!(again.holder(prefix(20)), Some(h));
    assert!(
        again
            .binding(h, |b| matches!(b, Binding::Prefix(_)))
            .unwrap()
    );
}

// ----- two peers on the loopback -----

/// A running peer and every event it reported.
struct Peer {
    handle: Handle6,
    events: Arc<Mutex<Vec<PeerEvent6>>>,
    leases: Arc<Mutex<MemoryStore6>>,
}

impl Peer {
    async fn start(role: Role, port: u16, pool: PoolConfig) -> Peer {
        Peer::start_with(role, port, pool, table()).await
    }

    async fn start_with(role: Role, port: u16, pool: PoolConfig, table: MemoryStore6) -> Peer {
        let leases = Arc::new(Mutex::new(table));
        let (handle, mut rx) = Peer6::new(config(role, "v6-prefix-pool"), addr(port))
            .listen(addr(port))
            .security(Security6::Insecure)
            .state_store(Arc::new(MemoryState::default()))
            .leases(leases.clone())
            .prefix_pool(pool)
            .reconnect(Duration::from_millis(100), Duration::from_millis(400))
            .reject_backoff(Duration::from_millis(400))
            .start()
            .await
            .unwrap();
        let events = Arc::new(Mutex::new(Vec::new()));
        let log = events.clone();
        // Ends when the task does (its sender goes with it).
        tokio::spawn(async move {
            while let Some(e) = rx.recv().await {
                log.lock().unwrap().push(e);
            }
        });
        Peer {
            handle,
            events,
            leases,
        }
    }

    fn counts(&self) -> PrefixCounts {
        self.leases.lock().unwrap().prefix_counts()
    }

    /// What both tables must agree on: per lease, status, client and the state's times.
    fn rows(
        &self,
    ) -> Vec<(
        LeaseAddr,
        BindingStatus,
        Option<ClientKey>,
        Option<UnixTime>,
    )> {
        self.leases
            .lock()
            .unwrap()
            .records()
            .into_iter()
            .map(|(a, r)| (a, r.status, r.client, r.start_time_of_state))
            .collect()
    }

    /// The plans the primary ran: (counts before, plan, prefixes sent).
    fn plans(&self) -> Vec<(PrefixCounts, PrefixPlan, usize)> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter_map(|e| match e {
                PeerEvent6::PrefixesBalanced {
                    before,
                    plan,
                    moved,
                } => Some((*before, *plan, *moved)),
                _ => None,
            })
            .collect()
    }

    fn endpoint(&self) -> (Endpoint, u32) {
        let status = self.handle.status();
        (Endpoint::of_status(&status), status.lease_mclt)
    }

    /// Client `duid` asks this server for `lease` (IA_PD 1) at `now`; sent if granted.
    async fn grant(&self, duid: &[u8], lease: LeaseAddr, now: UnixTime) -> Result<(), GrantError> {
        let (endpoint, mclt) = self.endpoint();
        let granted = self.leases.lock().unwrap().grant(
            &endpoint,
            mclt,
            duid,
            (IaKind::Pd, 1),
            lease,
            600,
            false,
            now,
        );
        let (handle, _) = granted?;
        self.handle.send_binding(handle).await.unwrap();
        Ok(())
    }

    async fn reach(&self, state: ServerState, secs: u64) {
        let r = tokio::time::timeout(Duration::from_secs(secs), self.handle.wait_for_state(state))
            .await;
        assert!(
            matches!(r, Ok(Ok(()))),
            "{state} not within {secs} s: {:?}",
            self.handle.status()
        );
    }
}

/// Polls `cond` every 20 ms for at most `secs`; whether it held.
async fn within(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    tokio::time::timeout(Duration::from_secs(secs), async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .is_ok()
}

fn counts(free: u32, free_backup: u32) -> PrefixCounts {
    PrefixCounts { free, free_backup }
}

async fn pair(pool: PoolConfig) -> (Peer, Peer) {
    let port = free_port();
    let secondary = Peer::start(Role::Secondary, port, PoolConfig::default()).await;
    let primary = Peer::start(Role::Primary, port, pool).await;
    primary.reach(ServerState::Normal, 20).await;
    secondary.reach(ServerState::Normal, 20).await;
    (primary, secondary)
}

async fn agree(primary: &Peer, secondary: &Peer, want: PrefixCounts, secs: u64) {
    let ok = within(secs, || {
        primary.counts() == want && secondary.counts() == want && primary.rows() == secondary.rows()
    })
    .await;
    assert!(
        ok,
        "not {want:?} on both within {secs} s: primary {:?}, secondary {:?}\n{:?}\n{:?}\nplans {:?}",
        primary.counts(),
        secondary.counts(),
        primary.rows(),
        secondary.rows(),
        primary.plans()
    );
}

async fn stop(peers: [&Peer; 2]) {
    for p in peers {
        tokio::time::timeout(Duration::from_secs(10), p.handle.shutdown())
            .await
            .expect("shutdown within 10 s");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_secondary_gets_half_and_a_balanced_poolreq_moves_nothing() {
    let (primary, secondary) = pair(PoolConfig::default()).await;

    // The secondary's POOLREQ on entering NORMAL (§8.8): half of the 20 prefixes become
    // FREE-BACKUP, the same on both sides.
    agree(&primary, &secondary, counts(10, 10), 10).await;
    let s = secondary.leases.lock().unwrap().records();
    let given: Vec<LeaseAddr> = s
        .iter()
        .filter(|(a, r)| {
            matches!(a, LeaseAddr::Prefix { .. }) && r.status == BindingStatus::FreeBackup
        })
        .map(|(a, _)| *a)
        .collect();
    assert_eq!(given, (11..=20).map(prefix).collect::<Vec<_>>());
    assert!(s.iter().all(|(_, r)| r.client.is_none()));
    let plans = primary.plans();
    assert_eq!(plans.len(), 1, "{plans:?}");
    assert_eq!(
        (plans[0].0, plans[0].1.give, plans[0].2),
        (counts(20, 0), 10, 10)
    );
    assert!(secondary.plans().is_empty());

    // In NORMAL the primary delegates its own; the secondary, renew responsive (§8.8.1),
    // nothing new — not even from its share.
    let now = now();
    let (p_end, _) = primary.endpoint();
    let (s_end, _) = secondary.endpoint();
    let p_may = primary
        .leases
        .lock()
        .unwrap()
        .delegable_prefixes(&p_end, now);
    assert_eq!(p_may, (1..=10).map(prefix).collect::<Vec<_>>());
    assert!(
        secondary
            .leases
            .lock()
            .unwrap()
            .delegable_prefixes(&s_end, now)
            .is_empty()
    );
    assert_eq!(
        secondary.grant(B, prefix(20), now).await,
        Err(GrantError::Refused(Refusal::NotServing(
            wire::ServerState::Normal
        )))
    );
    // The primary's given prefix: the partner's (past the 5 s a moved prefix waits).
    let later = now.plus(TIME_SKEW_LIMIT + 1);
    assert_eq!(
        primary.grant(A, prefix(20), later).await,
        Err(GrantError::Refused(Refusal::PartnersPrefix))
    );

    // Another POOLREQ with the split in place: POOLRESP, an empty plan, no BNDUPD.
    let sent = primary.handle.status().counters.bndupd_sent;
    secondary.handle.pool_request().await.unwrap();
    assert!(
        within(5, || primary.plans().len() == 2).await,
        "{:?}",
        primary.plans()
    );
    let second = primary.plans()[1];
    assert_eq!(second.0, counts(10, 10));
    assert!(second.1.is_empty() && second.2 == 0, "{second:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(primary.handle.status().counters.bndupd_sent, sent);
    agree(&primary, &secondary, counts(10, 10), 1).await;

    // The primary goes away (DISCONNECT): COMMUNICATIONS-INTERRUPTED, where the secondary
    // delegates from its share and not from the primary's. 6 s on: a prefix given less than
    // 5 s ago waits (§7.5.1).
    primary.handle.shutdown().await;
    secondary
        .reach(ServerState::CommunicationsInterrupted, 10)
        .await;
    let later = common::v6::now().plus(TIME_SKEW_LIMIT + 1);
    let (s_end, _) = secondary.endpoint();
    let s_may = secondary
        .leases
        .lock()
        .unwrap()
        .delegable_prefixes(&s_end, later);
    assert_eq!(s_may, (11..=20).map(prefix).collect::<Vec<_>>());
    assert_eq!(secondary.grant(B, prefix(20), later).await, Ok(()));
    assert_eq!(
        secondary.grant(B, prefix(1), later).await,
        Err(GrantError::Refused(Refusal::PartnersPrefix))
    );
    assert_eq!(secondary.counts(), counts(10, 9));
    stop([&secondary, &primary]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quarter_then_a_take_back_when_the_primary_delegates() {
    let quarter = PoolConfig {
        secondary_percent: 25,
        threshold: 0,
    };
    let (primary, secondary) = pair(quarter).await;
    agree(&primary, &secondary, counts(15, 5), 10).await;
    let given: Vec<LeaseAddr> = secondary
        .leases
        .lock()
        .unwrap()
        .records()
        .into_iter()
        .filter(|(a, r)| {
            matches!(a, LeaseAddr::Prefix { .. }) && r.status == BindingStatus::FreeBackup
        })
        .map(|(a, _)| a)
        .collect();
    assert_eq!(given, (16..=20).map(prefix).collect::<Vec<_>>());

    // The primary delegates four of its own: 16 available, a quarter is 4, the secondary has
    // 5 — the counts moved beyond the threshold, so the primary takes one back (FREE). The
    // secondary would refuse a FREE within 5 s of its FREE-BACKUP (§7.5.1): it goes once the
    // give is older.
    let now = now();
    for n in 1..=4 {
        primary.grant(A, prefix(n), now).await.unwrap();
    }
    agree(&primary, &secondary, counts(12, 4), 15).await;
    for p in [&primary, &secondary] {
        let r = p.leases.lock().unwrap().lease(prefix(20)).unwrap();
        assert_eq!(
            r.status,
            BindingStatus::Free,
            "taken back: the last one given"
        );
    }
    let plans = primary.plans();
    assert!(
        plans.iter().any(|(_, plan, _)| plan.take_back == 1),
        "{plans:?}"
    );
    stop([&primary, &secondary]).await;
}

/// A journaled primary sends its moves once they are synced (§4.2.2: from then on the
/// secondary's; a restart must not give them out again), and they are in its journal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journaled_primary_gives_once_synced() {
    let dir = TempDir::new("pair");
    let path = dir.0.join("primary.leases6");
    let mut journaled = MemoryStore6::open(&path).unwrap();
    for n in 1..=8 {
        journaled.add_pool_lease(address(n));
    }
    for n in 1..=PREFIXES {
        journaled.add_pool_lease(prefix(n));
    }
    let port = free_port();
    let secondary = Peer::start(Role::Secondary, port, PoolConfig::default()).await;
    let primary = Peer::start_with(Role::Primary, port, PoolConfig::default(), journaled).await;
    primary.reach(ServerState::Normal, 20).await;
    secondary.reach(ServerState::Normal, 20).await;
    agree(&primary, &secondary, counts(10, 10), 10).await;
    stop([&primary, &secondary]).await;
    drop(primary);
    let again = MemoryStore6::open(&path).unwrap();
    assert_eq!(again.prefix_counts(), counts(10, 10));
}
