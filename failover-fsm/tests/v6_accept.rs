//! RFC 8156's BNDUPD accept/reject table (§7.5.4, Figure 4): every cell, each with an input
//! its rule accepts and one it refuses, chosen so that a neighbouring rule would answer the
//! other way; the status codes of refusals; what an accepted lease stores (§7.5.5). The
//! received leases are encoded and decoded with `failover_proto::v6`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

use core::net::Ipv6Addr;

use failover_fsm::v6::accept::{Received, Verdict, judge_update};
use failover_fsm::v6::{ClientKey, LocalLease};
use failover_fsm::{Role, UnixTime};
use failover_proto::v6::{
    Binding, BindingStatus, BndUpd, ClientData, Ia, IaKind, Lease, Repr, Status, time,
};

use BindingStatus::{Abandoned, Active, Expired, Free, FreeBackup, PendingFree, Released, Reset};

const NOW: UnixTime = UnixTime(1_700_000_000);
/// When the local record took its status.
const T0: UnixTime = UnixTime(1_700_000_000 - 1000);
const DUID_A: &[u8] = &[0, 3, 0, 1, 2, 0, 0x5e, 0, 0x53, 1];
const DUID_B: &[u8] = &[0, 3, 0, 1, 2, 0, 0x5e, 0, 0x53, 2];
const ADDR: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x11);

const STATUSES: [BindingStatus; 8] = [
    Active,
    Expired,
    Released,
    PendingFree,
    Free,
    FreeBackup,
    Abandoned,
    Reset,
];

fn wire(t: UnixTime) -> u32 {
    time::from_unix(u64::from(t.0)).unwrap()
}

/// What the partner sends.
#[derive(Clone, Copy)]
struct Sent {
    status: BindingStatus,
    duid: &'static [u8],
    stos: UnixTime,
    clt: Option<UnixTime>,
    times: Option<(UnixTime, UnixTime, UnixTime)>,
    partner_raw_clt: Option<UnixTime>,
}

impl Sent {
    fn new(status: BindingStatus, stos: UnixTime) -> Self {
        let times = (status == Active).then(|| (NOW.plus(3600), NOW.plus(5400), NOW.plus(3600)));
        Sent {
            status,
            duid: DUID_A,
            stos,
            clt: None,
            times,
            partner_raw_clt: None,
        }
    }
}

/// The BNDUPD on the wire, decoded again, and its one lease judged.
fn judge(role: Role, local: Option<&LocalLease>, sent: Sent) -> Result<Verdict, Status> {
    let mut lease = Lease {
        binding_status: Some(sent.status),
        start_time_of_state: Some(wire(sent.stos)),
        clt_time: sent.clt.map(|c| NOW.0 - c.0),
        partner_raw_clt_time: sent.partner_raw_clt.map(wire),
        ..Lease::address(ADDR, 1800, 3600)
    };
    if let Some((set, pl, exp)) = sent.times {
        lease.state_expiration_time = Some(wire(set));
        lease.partner_lifetime = Some(wire(pl));
        lease.expiration_time = Some(wire(exp));
    }
    let leases = [lease];
    let ias = [Ia::new(IaKind::Na, 1, 900, 1440, &leases)];
    let update = BndUpd {
        xid: 9,
        sent_time: wire(NOW),
        binding: Binding::Client(ClientData::new(sent.duid, wire(NOW), &ias)),
        extra: Default::default(),
    };
    let mut buf = [0u8; 512];
    let n = update.emit(&mut buf).unwrap();
    let Repr::BndUpd(got) = Repr::parse(&buf[..n]).unwrap() else {
        panic!("not a BNDUPD")
    };
    let mut all = Received::all(&got.binding);
    let (l, received) = all.next().unwrap();
    assert!(all.next().is_none());
    assert_eq!(l.addr, lease.addr);
    judge_update(role, local, &received, NOW)
}

fn key(duid: &[u8]) -> ClientKey {
    ClientKey::new(duid, IaKind::Na, 1)
}

fn local(status: BindingStatus) -> LocalLease {
    LocalLease {
        client: Some(key(DUID_A)),
        start_time_of_state: Some(T0),
        ..LocalLease::new(status)
    }
}

/// Figure 4 as the RFC prints it: 'a' accept, '1' time(1), '2' time(2), '3' accept(3).
/// Rows local, columns received, both in `STATUSES` order (PENDING-FREE as FREE).
fn figure4(local: BindingStatus, received: BindingStatus) -> char {
    let col = |s| match s {
        Active => 0,
        Expired => 1,
        Released => 2,
        PendingFree | Free | FreeBackup => 3,
        Abandoned | Reset => 4,
        _ => unreachable!(),
    };
    let row: [char; 5] = match local {
        Active => ['3', '1', 'a', '1', 'a'],
        Reset => ['2', 'a', 'a', 'a', 'a'],
        Expired | Released | PendingFree | Free | FreeBackup | Abandoned => ['a'; 5],
        _ => unreachable!(),
    };
    row[col(received)]
}

#[test]
fn every_cell_accepts_and_refuses_by_its_rule() {
    let mut cells = 0;
    for l in STATUSES {
        for r in STATUSES {
            let rule = figure4(l, r);
            let (pass, fail, refusal) = match rule {
                // Message time later than ours; our lease still runs (time(1) would refuse)
                // — and the reverse.
                'a' => {
                    let mut pass_local = local(l);
                    pass_local.state_expiration_time = Some(NOW.plus(100));
                    let mut fail_local = local(l);
                    fail_local.state_expiration_time = Some(NOW.minus(100));
                    (
                        (pass_local, Sent::new(r, T0.plus(100))),
                        (fail_local, Sent::new(r, T0.minus(100))),
                        Status::OutdatedBindingInformation,
                    )
                }
                // Our lease ran out, even with an older message — and a newer message
                // refused while it runs.
                '1' => {
                    let mut pass_local = local(l);
                    pass_local.state_expiration_time = Some(NOW.minus(100));
                    let mut fail_local = local(l);
                    fail_local.state_expiration_time = Some(NOW.plus(100));
                    (
                        (pass_local, Sent::new(r, T0.minus(100))),
                        (fail_local, Sent::new(r, T0.plus(100))),
                        Status::OutdatedBindingInformation,
                    )
                }
                // CLT_TIME later than our start-time-of-state — and a later
                // start-time-of-state without CLT_TIME refused.
                '2' => {
                    let mut pass = Sent::new(r, T0.minus(100));
                    pass.clt = Some(T0.plus(100));
                    (
                        (local(l), pass),
                        (local(l), Sent::new(r, T0.plus(100))),
                        Status::OutdatedBindingInformation,
                    )
                }
                // Another client, nothing later, our lease running: the primary refuses.
                '3' => {
                    let mut lease = local(l);
                    lease.state_expiration_time = Some(NOW.plus(100));
                    let mut other = Sent::new(r, T0.minus(100));
                    other.duid = DUID_B;
                    (
                        (lease, Sent::new(r, T0.minus(100))),
                        (lease, other),
                        Status::AddressInUse,
                    )
                }
                _ => unreachable!(),
            };
            assert!(
                judge(Role::Primary, Some(&pass.0), pass.1).is_ok(),
                "{l} <- {r} ({rule}) should accept"
            );
            assert_eq!(
                judge(Role::Primary, Some(&fail.0), fail.1).map(|v| v.status),
                Err(refusal),
                "{l} <- {r} ({rule}) should refuse"
            );
            cells += 1;
        }
    }
    assert_eq!(cells, 64);
}

#[test]
fn accept3_secondary_takes_another_client_primary_only_with_a_later_clt() {
    let mut lease = local(Active);
    lease.state_expiration_time = Some(NOW.plus(100));
    let mut other = Sent::new(Active, T0.minus(100));
    other.duid = DUID_B;
    let v = judge(Role::Secondary, Some(&lease), other).unwrap();
    assert!(v.client_changed);
    assert_eq!(
        judge(Role::Primary, Some(&lease), other).map(|v| v.status),
        Err(Status::AddressInUse)
    );
    other.clt = Some(T0.plus(100));
    assert!(judge(Role::Primary, Some(&lease), other).is_ok());
    // Another IAID of the same client is another binding (§5.6).
    let mut other_ia = lease;
    other_ia.client = Some(ClientKey::new(DUID_A, IaKind::Na, 2));
    assert_eq!(
        judge(
            Role::Primary,
            Some(&other_ia),
            Sent::new(Active, T0.minus(100))
        )
        .map(|v| v.status),
        Err(Status::AddressInUse)
    );
}

#[test]
fn times_within_five_seconds_are_equal() {
    let l = local(Released);
    for (delta, ok) in [(5, false), (6, true)] {
        let mut sent = Sent::new(Expired, T0.plus(delta));
        sent.duid = DUID_B; // not a repeat
        assert_eq!(
            judge(Role::Primary, Some(&l), sent).is_ok(),
            ok,
            "+{delta} s"
        );
    }
    // CLT_TIME, when sent, is the message time of EXPIRED (not start-time-of-state).
    let mut sent = Sent::new(Expired, T0.plus(100));
    sent.duid = DUID_B;
    sent.clt = Some(T0.minus(50));
    assert_eq!(
        judge(Role::Primary, Some(&l), sent).map(|v| v.status),
        Err(Status::OutdatedBindingInformation)
    );
    // For FREE the later of both counts.
    let mut sent = Sent::new(Free, T0.plus(100));
    sent.clt = Some(T0.minus(50));
    assert!(judge(Role::Primary, Some(&l), sent).is_ok());
}

#[test]
fn an_exact_repeat_is_accepted() {
    let l = local(Expired);
    assert!(judge(Role::Primary, Some(&l), Sent::new(Expired, T0)).is_ok());
    let mut other = Sent::new(Expired, T0);
    other.duid = DUID_B;
    assert_eq!(
        judge(Role::Primary, Some(&l), other).map(|v| v.status),
        Err(Status::OutdatedBindingInformation)
    );
}

#[test]
fn precheck_status_codes() {
    // Not this endpoint's lease.
    assert_eq!(
        judge(Role::Primary, None, Sent::new(Active, NOW)).map(|v| v.status),
        Err(Status::ConfigurationConflict)
    );
    // Our record is corrupt.
    let unknown = LocalLease::new(BindingStatus::Unknown(99));
    assert_eq!(
        judge(Role::Primary, Some(&unknown), Sent::new(Active, NOW)).map(|v| v.status),
        Err(Status::UnspecFail)
    );
    // Missing status, or an ACTIVE without a client (a clientless prefix).
    let bare = Received {
        status: None,
        client: None,
        clt: None,
        start_time_of_state: Some(NOW),
        state_expiration_time: None,
        partner_lifetime: None,
        partner_raw_clt_time: None,
        expiration_time: None,
    };
    let free = LocalLease::new(Free);
    assert_eq!(
        judge_update(Role::Primary, Some(&free), &bare, NOW),
        Err(Status::MissingBindingInformation)
    );
    let prefix = Lease {
        lq_base_time: Some(wire(NOW)),
        binding_status: Some(Active),
        start_time_of_state: Some(wire(NOW)),
        state_expiration_time: Some(wire(NOW.plus(60))),
        partner_lifetime: Some(wire(NOW.plus(60))),
        expiration_time: Some(wire(NOW.plus(60))),
        ..Lease::prefix(Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, 0), 56, 0, 0)
    };
    let received = Received::of_lease(&prefix);
    assert_eq!(
        judge_update(Role::Primary, Some(&free), &received, NOW),
        Err(Status::MissingBindingInformation)
    );
}

#[test]
fn taking_back_a_delegated_prefix_is_refused() {
    // The primary asks a FREE-BACKUP prefix back with FREE (§4.2.2); the secondary has
    // delegated it meanwhile: our ACTIVE runs, time(1) refuses.
    let p = Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, 0);
    let take_back = |t: UnixTime| Lease {
        lq_base_time: Some(wire(t)),
        binding_status: Some(Free),
        start_time_of_state: Some(wire(t)),
        ..Lease::prefix(p, 56, 0, 0)
    };
    let update = BndUpd {
        xid: 1,
        sent_time: wire(NOW),
        binding: Binding::Prefix(take_back(NOW)),
        extra: Default::default(),
    };
    let mut buf = [0u8; 256];
    let n = update.emit(&mut buf).unwrap();
    let Repr::BndUpd(got) = Repr::parse(&buf[..n]).unwrap() else {
        panic!()
    };
    let (_, received) = Received::all(&got.binding).next().unwrap();
    let delegated = LocalLease {
        client: Some(ClientKey::new(DUID_A, IaKind::Pd, 7)),
        start_time_of_state: Some(T0),
        state_expiration_time: Some(NOW.plus(3000)),
        ..LocalLease::new(Active)
    };
    assert_eq!(
        judge_update(Role::Secondary, Some(&delegated), &received, NOW),
        Err(Status::OutdatedBindingInformation)
    );
    let available = LocalLease {
        start_time_of_state: Some(T0),
        ..LocalLease::new(FreeBackup)
    };
    let v = judge_update(Role::Secondary, Some(&available), &received, NOW).unwrap();
    assert_eq!(v.status, Free);
}

#[test]
fn what_an_accepted_lease_stores() {
    let mut l = local(Active);
    l.expiration_time = Some(NOW.plus(9000));
    l.cltt = Some(T0);
    l.partner_lifetime = Some(NOW.plus(100));
    let mut sent = Sent::new(Active, T0.plus(60));
    sent.clt = Some(T0.plus(50));
    sent.partner_raw_clt = Some(T0.plus(20));
    let v = judge(Role::Primary, Some(&l), sent).unwrap();
    assert_eq!(v.status, Active);
    assert!(!v.client_changed);
    assert_eq!(v.start_time_of_state, Some(T0.plus(60)));
    assert_eq!(v.state_expiration_time, Some(NOW.plus(3600)));
    // partner-lifetime received (now + 5400) is below our 9000: keep the greatest (§7.3).
    assert_eq!(v.expiration_time, Some(NOW.plus(9000)));
    // OPTION_CLT_TIME is relative to OPTION_LQ_BASE_TIME.
    assert_eq!(v.partner_raw_clt_time, Some(T0.plus(50)));
    // CLTT raised by the partner's echo of ours; partner-lifetime by its expiration-time.
    assert_eq!(v.cltt, Some(T0.plus(20)));
    assert_eq!(v.partner_lifetime, Some(NOW.plus(3600)));

    // Another client's lease starts afresh (the secondary accepts it).
    let mut other = sent;
    other.duid = DUID_B;
    let v = judge(Role::Secondary, Some(&l), other).unwrap();
    assert!(v.client_changed);
    assert_eq!(v.expiration_time, Some(NOW.plus(5400)));
    assert_eq!(v.cltt, Some(T0.plus(20)));
}

#[test]
fn all_walks_every_lease_in_order() {
    let a = Lease {
        binding_status: Some(Expired),
        start_time_of_state: Some(wire(T0)),
        ..Lease::address(ADDR, 0, 0)
    };
    let b = Lease {
        binding_status: Some(Released),
        start_time_of_state: Some(wire(T0)),
        ..Lease::prefix(Ipv6Addr::new(0x2001, 0xdb8, 0x200, 0, 0, 0, 0, 0), 56, 0, 0)
    };
    let (na, pd) = ([a], [b]);
    let ias = [
        Ia::new(IaKind::Na, 1, 0, 0, &na),
        Ia::new(IaKind::Pd, 2, 0, 0, &pd),
    ];
    let update = BndUpd {
        xid: 1,
        sent_time: wire(NOW),
        binding: Binding::Client(ClientData::new(DUID_A, wire(NOW), &ias)),
        extra: Default::default(),
    };
    let mut buf = [0u8; 512];
    let n = update.emit(&mut buf).unwrap();
    let Repr::BndUpd(got) = Repr::parse(&buf[..n]).unwrap() else {
        panic!()
    };
    let seen: Vec<_> = Received::all(&got.binding)
        .map(|(l, r)| (l.addr, r.status, r.client))
        .collect();
    assert_eq!(
        seen,
        [
            (
                a.addr,
                Some(Expired),
                Some(ClientKey::new(DUID_A, IaKind::Na, 1))
            ),
            (
                b.addr,
                Some(Released),
                Some(ClientKey::new(DUID_A, IaKind::Pd, 2))
            ),
        ]
    );
}
