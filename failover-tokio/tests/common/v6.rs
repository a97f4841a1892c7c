//! What the DHCPv6 tests share (tests/v6_*.rs): a relationship's config with short timers,
//! the pools' addresses and prefixes, the wall clock, bounded waits for a state and for two
//! tables to agree, and a client binding recorded the way a DHCPv6 server records one.

use std::net::Ipv6Addr;
use std::time::Duration;

use failover_fsm::v6::{ClientKey, LocalLease};
use failover_fsm::{Config, Role, ServerState, UnixTime};
use failover_proto::v6::{BindingStatus, IaKind, LeaseAddr};
use failover_tokio::v6::{ClientBinding, Handle6, IaBinding};

/// The MCLT of the v6 tests: RECOVER-WAIT lasts as long.
pub(crate) const MCLT: u32 = 3;

/// Relationship `name` with [`MCLT`] and timers short enough for tests.
pub(crate) fn config(role: Role, name: &str) -> Config {
    let mut c = Config::new(role, name, MCLT);
    c.receive_timer = 4;
    c.startup_delay = 1;
    c.startup_delay_after_long_down = 1;
    c.connect_timeout = 5;
    c
}

/// 2001:db8::`n` (last bit 1: the primary's, §4.2.1.1).
pub(crate) fn address(n: u16) -> LeaseAddr {
    LeaseAddr::Address(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, n))
}

/// 2001:db8:1nn::/56.
pub(crate) fn prefix(n: u16) -> LeaseAddr {
    LeaseAddr::Prefix {
        prefix: Ipv6Addr::new(0x2001, 0xdb8, 0x100 + n, 0, 0, 0, 0, 0),
        len: 56,
    }
}

/// The wall clock.
pub(crate) fn now() -> UnixTime {
    UnixTime(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as u32,
    )
}

/// Waits at most `secs` for `h` to reach `state`.
pub(crate) async fn reach(h: &Handle6, state: ServerState, secs: u64) {
    let r = tokio::time::timeout(Duration::from_secs(secs), h.wait_for_state(state)).await;
    assert!(
        matches!(r, Ok(Ok(()))),
        "{state} not within {secs} s: {:?}",
        h.status()
    );
}

/// Records client `duid` holding `leases` (IA_NA 1 for addresses, IA_PD 2 for prefixes),
/// ACTIVE from now for 600 s, in `h`'s table; returns the handle to send.
pub(crate) fn record_binding(
    h: &Handle6,
    duid: &[u8],
    leases: &[LeaseAddr],
) -> failover_fsm::engine::BindingHandle {
    let now = now();
    let kind_of = |l: &LeaseAddr| match l {
        LeaseAddr::Address(_) => (IaKind::Na, 1),
        LeaseAddr::Prefix { .. } => (IaKind::Pd, 2),
    };
    let mut ias: Vec<IaBinding> = Vec::new();
    let mut records = Vec::new();
    for l in leases {
        let (kind, iaid) = kind_of(l);
        match ias.iter_mut().find(|i| i.kind == kind) {
            Some(ia) => ia.leases.push((*l, 300, 600)),
            None => ias.push(IaBinding {
                kind,
                iaid,
                leases: vec![(*l, 300, 600)],
            }),
        }
        records.push((
            *l,
            LocalLease {
                client: Some(ClientKey::new(duid, kind, iaid)),
                cltt: Some(now),
                start_time_of_state: Some(now),
                state_expiration_time: Some(now.plus(600)),
                partner_lifetime: Some(now.plus(900)),
                ..LocalLease::new(BindingStatus::Active)
            },
        ));
    }
    h.leases().lock().unwrap().update(
        ClientBinding {
            duid: duid.to_vec(),
            ias,
        },
        records,
    )
}

/// What two partners' tables must agree on: per lease, status, client and the state's times.
pub(crate) type Row = (
    LeaseAddr,
    BindingStatus,
    Option<ClientKey>,
    Option<UnixTime>,
    Option<UnixTime>,
);

/// `h`'s table as [`Row`]s.
pub(crate) fn table(h: &Handle6) -> Vec<Row> {
    h.leases()
        .lock()
        .unwrap()
        .records()
        .into_iter()
        .map(|(a, r)| {
            (
                a,
                r.status,
                r.client,
                r.start_time_of_state,
                r.state_expiration_time,
            )
        })
        .collect()
}

/// Waits at most `secs` for the two tables to agree.
pub(crate) async fn tables_agree(a: &Handle6, b: &Handle6, secs: u64) {
    let agreed = tokio::time::timeout(Duration::from_secs(secs), async {
        while table(a) != table(b) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(
        agreed.is_ok(),
        "tables differ after {secs} s:\n{:?}\n{:?}",
        table(a),
        table(b)
    );
}

/// A temporary directory, removed when dropped (also when a test fails).
pub(crate) struct TempDir(pub(crate) std::path::PathBuf);

impl TempDir {
    /// `failover-v6-<name>-<pid>-<nanos>` under the system's temporary directory.
    pub(crate) fn new(name: &str) -> Self {
        let d = std::env::temp_dir().join(format!(
            "failover-v6-{name}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
