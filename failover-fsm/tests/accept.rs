//! Acceptance of received BNDUPDs: every cell of the draft's Figure 7.1.3-1 and of ISC's two
//! transition tables, ISC's validation and dueling rules, and what an accepted update stores.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

use core::net::Ipv4Addr;

use failover_fsm::accept::{
    ClientIdentity, ISC_EXPIRY_FUDGE, LocalBinding, Verdict, freed_status, isc_expiry_allowance,
    judge_update, own_free_status,
};
use failover_fsm::{BindingStatus, Dialect, RejectReason, Role, ServerState, UnixTime};
use failover_proto::{Binding, HardwareAddress, IpFlags};

use BindingStatus::{Abandoned, Active, Backup, Expired, Free, Released, Reset};

const ALL: [BindingStatus; 7] = [Free, Active, Expired, Released, Abandoned, Reset, Backup];
const NOW: UnixTime = UnixTime(1_700_000_000);
const MAC_A: [u8; 6] = [0x00, 0x0c, 0x29, 0x12, 0x34, 0x56];
const MAC_B: [u8; 6] = [0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff];
const ADDR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);

fn hw(mac: &[u8]) -> HardwareAddress<'_> {
    HardwareAddress {
        htype: 1,
        address: mac,
    }
}

/// A received binding as a well-behaved partner would send it: client identification for
/// every status but ABANDONED (which must not carry any, ISC Q1).
fn received(status: BindingStatus) -> Binding<'static> {
    let mut b = Binding::new(ADDR, status);
    if status != Abandoned {
        b.hardware_address = Some(hw(&MAC_A));
    }
    b
}

fn local(status: BindingStatus) -> LocalBinding {
    let mut l = LocalBinding::new(status);
    if matches!(status, Active | Expired | Released) {
        l.client = ClientIdentity::new(None, Some(hw(&MAC_A)));
    }
    l
}

fn judge(
    dialect: Dialect,
    role: Role,
    state: ServerState,
    local: &LocalBinding,
    recv: &Binding<'_>,
    now: UnixTime,
) -> Result<Verdict, RejectReason> {
    judge_update(dialect, role, state, Some(local), recv, now, None)
}

// ---------------------------------------------------------------------------------------------
// Draft, Figure 7.1.3-1
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq)]
enum Cell {
    Accept,
    /// accept(5)
    SameClient,
    /// time(1): received CLTT > local CLTT
    TimeA,
    /// time(2): now > local lease-expiration-time
    TimeB,
    /// time(3): received CLTT > local start-time-of-state
    TimeC,
    /// reject(4)
    Reject16,
}

const FB: &[BindingStatus] = &[Free, Backup];
const RA: &[BindingStatus] = &[Reset, Abandoned];

/// Figure 7.1.3-1 as printed: rows = local status, columns = received status
/// (ACTIVE, EXPIRED, RELEASED, FREE/BACKUP, RESET/ABANDONED).
const DRAFT_TABLE: [(&[BindingStatus], [Cell; 5]); 6] = {
    use Cell::*;
    [
        (&[Active], [SameClient, TimeB, TimeA, TimeB, Accept]),
        (&[Expired], [TimeA, Accept, Accept, Accept, Accept]),
        (&[Released], [TimeA, TimeA, Accept, Accept, Accept]),
        (FB, [Accept, Accept, Accept, Accept, Accept]),
        (&[Reset], [TimeC, Accept, Accept, Accept, Accept]),
        (
            &[Abandoned],
            [Reject16, Reject16, Reject16, Reject16, Accept],
        ),
    ]
};
const DRAFT_COLUMNS: [&[BindingStatus]; 5] = [&[Active], &[Expired], &[Released], FB, RA];

fn freed(role: Role, recv: BindingStatus) -> BindingStatus {
    match recv {
        Expired | Released | Reset => freed_status(role, false),
        other => other,
    }
}

/// Checks one (local, received) pair of the draft table, both sides of its time rule.
fn check_draft_cell(role: Role, l: BindingStatus, r: BindingStatus, cell: Cell) -> usize {
    let d = Dialect::Draft;
    let s = ServerState::Normal;
    let outdated = Err(RejectReason::OutdatedBindingInformation);
    let mut checks = 0;
    let mut ok = |loc: &LocalBinding, rec: &Binding<'_>, now: UnixTime, expect_ok: bool| {
        let got = judge(d, role, s, loc, rec, now);
        if expect_ok {
            let v = got.unwrap_or_else(|e| panic!("{role:?} {l} <- {r}: rejected {e:?}"));
            assert_eq!(v.store_as, freed(role, r), "{l} <- {r}");
        } else {
            assert_eq!(got, outdated, "{role:?} {l} <- {r}");
        }
        checks += 1;
    };
    match cell {
        Cell::Accept => {
            // Times that would fail every time rule do not matter here.
            let mut loc = local(l);
            loc.cltt = Some(NOW);
            loc.lease_expiration = Some(NOW.plus(10_000));
            loc.start_time_of_state = Some(NOW);
            let mut rec = received(r);
            rec.client_last_transaction_time = Some(NOW.0 - 10);
            ok(&loc, &rec, NOW, true);
        }
        Cell::SameClient => {
            let loc = local(l);
            let rec = received(r);
            ok(&loc, &rec, NOW, true);
            let mut other = received(r);
            other.hardware_address = Some(hw(&MAC_B));
            let got = judge(d, role, s, &loc, &other, NOW);
            match role {
                Role::Primary => assert_eq!(got, Err(RejectReason::FatalConflict)),
                Role::Secondary => assert_eq!(got.unwrap().store_as, Active),
            }
            checks += 1;
        }
        Cell::TimeA | Cell::TimeC => {
            let set_local = |t: Option<UnixTime>| {
                let mut loc = local(l);
                if cell == Cell::TimeA {
                    loc.cltt = t;
                    loc.start_time_of_state = Some(NOW.plus(1_000)); // irrelevant to time(1)
                } else {
                    loc.start_time_of_state = t;
                    loc.cltt = Some(NOW.plus(1_000)); // irrelevant to time(3)
                }
                loc
            };
            let rec_at = |t: Option<u32>| {
                let mut rec = received(r);
                rec.client_last_transaction_time = t;
                rec
            };
            let base = Some(NOW.minus(100));
            ok(&set_local(base), &rec_at(Some(NOW.0 - 99)), NOW, true);
            ok(&set_local(base), &rec_at(Some(NOW.0 - 100)), NOW, false);
            ok(&set_local(base), &rec_at(Some(NOW.0 - 101)), NOW, false);
            // missing in the BNDUPD: never later; missing locally: always later
            ok(&set_local(base), &rec_at(None), NOW, false);
            ok(&set_local(None), &rec_at(Some(1)), NOW, true);
            ok(&set_local(None), &rec_at(None), NOW, false);
        }
        Cell::TimeB => {
            let mut loc = local(l);
            loc.lease_expiration = Some(NOW);
            let rec = received(r);
            ok(&loc, &rec, NOW.plus(1), true);
            ok(&loc, &rec, NOW, false);
            ok(&loc, &rec, NOW.minus(1), false);
            // the CLTT does not matter for time(2)
            let mut later = received(r);
            later.client_last_transaction_time = Some(NOW.0 + 5);
            ok(&loc, &later, NOW, false);
            loc.lease_expiration = None;
            ok(&loc, &rec, NOW, false);
        }
        Cell::Reject16 => {
            let mut rec = received(r);
            rec.client_last_transaction_time = Some(NOW.0);
            assert_eq!(
                judge(d, role, s, &local(l), &rec, NOW),
                Err(RejectReason::LessCriticalBindingInformation)
            );
            checks += 1;
        }
    }
    checks
}

#[test]
fn draft_table_every_cell() {
    let cells = DRAFT_TABLE.iter().map(|(_, row)| row.len()).sum::<usize>();
    assert_eq!(cells, 30, "Figure 7.1.3-1 has 6 rows x 5 columns");
    let mut pairs = Vec::new();
    let mut checks = 0;
    for (rows, row) in DRAFT_TABLE {
        for (cols, cell) in DRAFT_COLUMNS.iter().zip(row) {
            for &l in rows {
                for &r in *cols {
                    pairs.push((l, r));
                    for role in [Role::Primary, Role::Secondary] {
                        checks += check_draft_cell(role, l, r, cell);
                    }
                }
            }
        }
    }
    // the figure's merged rows/columns expand to every (local, received) pair exactly once
    assert_eq!(pairs.len(), 49);
    for l in ALL {
        for r in ALL {
            assert_eq!(pairs.iter().filter(|&&p| p == (l, r)).count(), 1, "{l} {r}");
        }
    }
    // per role: 35 accept cells x 1 + accept(5) x 2 + 3 time(2) cells x 5 + 4 time(1) cells x 6
    // + 1 time(3) cell x 6 + 5 reject(4) cells x 1 = 87
    assert_eq!(checks, 2 * 87);
}

#[test]
fn draft_table_is_state_independent() {
    // §7.1.2: the rules apply to every BNDUPD in every state.
    let mut loc = local(Active);
    loc.lease_expiration = Some(NOW.plus(100));
    for state in [
        ServerState::Normal,
        ServerState::CommunicationsInterrupted,
        ServerState::PotentialConflict,
        ServerState::Recover,
        ServerState::PartnerDown,
    ] {
        assert_eq!(
            judge(
                Dialect::Draft,
                Role::Secondary,
                state,
                &loc,
                &received(Expired),
                NOW
            ),
            Err(RejectReason::OutdatedBindingInformation)
        );
        assert!(
            judge(
                Dialect::Draft,
                Role::Secondary,
                state,
                &loc,
                &received(Expired),
                NOW.plus(101)
            )
            .is_ok()
        );
    }
}

#[test]
fn draft_prechecks_and_reserved_flag() {
    let d = Dialect::Draft;
    let n = ServerState::Normal;
    // not an address of this relationship
    assert_eq!(
        judge_update(d, Role::Primary, n, None, &received(Active), NOW, None),
        Err(RejectReason::IllegalIpAddress)
    );
    // ACTIVE without any client identification: missing information
    let bare = Binding::new(ADDR, Active);
    assert_eq!(
        judge(d, Role::Primary, n, &local(Free), &bare, NOW),
        Err(RejectReason::MissingBindingInformation)
    );
    // a client-identifier alone identifies the client
    let mut by_id = Binding::new(ADDR, Active);
    by_id.client_identifier = Some(&[1, 2, 3]);
    assert!(judge(d, Role::Primary, n, &local(Free), &by_id, NOW).is_ok());
    // unknown binding-status value
    let odd = received(BindingStatus::Unknown(9));
    assert_eq!(
        judge(d, Role::Primary, n, &local(Free), &odd, NOW),
        Err(RejectReason::MissingBindingInformation)
    );
    // R flag with BACKUP for an address we do not hold reserved: 19 (§7.1.3, §5.13)
    let mut r_backup = received(Backup);
    r_backup.ip_flags = Some(IpFlags::RESERVED);
    assert_eq!(
        judge(d, Role::Secondary, n, &local(Free), &r_backup, NOW),
        Err(RejectReason::IpNotReserved)
    );
    let mut reserved = local(Free);
    reserved.reserved = true;
    assert_eq!(
        judge(d, Role::Secondary, n, &reserved, &r_backup, NOW)
            .unwrap()
            .store_as,
        Backup
    );
    // the draft's check is for BACKUP only
    let mut r_free = received(Free);
    r_free.ip_flags = Some(IpFlags::RESERVED);
    assert!(judge(d, Role::Primary, n, &local(Backup), &r_free, NOW).is_ok());
}

// ---------------------------------------------------------------------------------------------
// ISC tables
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq)]
enum Isc {
    Accept,
    Reject,
    /// accept iff the received PET (0 when absent) is not in the future
    PetPassed,
    /// accept iff local ends - 65 s <= now
    Expiry65,
}

/// ISC `normal_binding_state_transition_check`: rows = (local status, roles the row applies
/// to), columns ACTIVE, EXPIRED, RELEASED, FREE, BACKUP, ABANDONED, RESET.
const ISC_COLUMNS: [BindingStatus; 7] = [Active, Expired, Released, Free, Backup, Abandoned, Reset];
const BOTH: &[Role] = &[Role::Primary, Role::Secondary];
const ISC_NORMAL: [(BindingStatus, &[Role], [Isc; 7]); 8] = {
    use Isc::*;
    [
        (Free, BOTH, [Accept; 7]),
        (Abandoned, BOTH, [Accept; 7]),
        (
            Active,
            &[Role::Primary],
            [Accept, Reject, Accept, Reject, Reject, Accept, Reject],
        ),
        (
            Active,
            &[Role::Secondary],
            [
                Accept, Expiry65, Accept, PetPassed, PetPassed, Accept, Accept,
            ],
        ),
        (
            Expired,
            BOTH,
            [Accept, Accept, Accept, PetPassed, PetPassed, Accept, Accept],
        ),
        (Released, BOTH, [Accept; 7]),
        (
            Reset,
            BOTH,
            [Accept, Accept, Accept, PetPassed, PetPassed, Accept, Accept],
        ),
        (Backup, BOTH, [Accept; 7]),
    ]
};

/// ISC `conflict_binding_state_transition_check` (every state but NORMAL), role-independent.
const ISC_CONFLICT: [(BindingStatus, [Isc; 7]); 7] = {
    use Isc::*;
    [
        (Free, [Accept; 7]),
        (
            Active,
            [Accept, Expiry65, Accept, Reject, Reject, Accept, Accept],
        ),
        (Expired, [Accept; 7]),
        (Released, [Accept; 7]),
        (Abandoned, [Accept; 7]),
        (Reset, [Accept; 7]),
        (Backup, [Accept; 7]),
    ]
};

fn check_isc_cell(
    state: ServerState,
    role: Role,
    l: BindingStatus,
    r: BindingStatus,
    cell: Isc,
) -> usize {
    let d = Dialect::Isc;
    let conflict = Err(RejectReason::FatalConflict);
    let judge_with = |ends: Option<UnixTime>, pet: Option<u32>, now: UnixTime| {
        let mut loc = local(l);
        loc.lease_expiration = ends;
        let mut rec = received(r);
        rec.potential_expiration_time = pet;
        judge(d, role, state, &loc, &rec, now)
    };
    let accepts = |res: Result<Verdict, RejectReason>| {
        let v = res.unwrap_or_else(|e| panic!("{state} {role:?} {l} <- {r}: rejected {e:?}"));
        assert_eq!(v.store_as, freed(role, r));
    };
    match cell {
        Isc::Accept => {
            // a future PET and an unexpired lease do not matter here
            accepts(judge_with(
                Some(NOW.plus(86_400)),
                Some(NOW.0 + 86_400),
                NOW,
            ));
            accepts(judge_with(None, None, NOW));
            2
        }
        Isc::Reject => {
            // even with everything in the past
            assert_eq!(judge_with(Some(NOW.minus(86_400)), Some(1), NOW), conflict);
            assert_eq!(judge_with(None, None, NOW), conflict);
            2
        }
        Isc::PetPassed => {
            let ends = Some(NOW.plus(86_400));
            accepts(judge_with(ends, Some(NOW.0), NOW));
            accepts(judge_with(ends, None, NOW)); // absent = 0
            assert_eq!(judge_with(ends, Some(NOW.0 + 1), NOW), conflict);
            3
        }
        Isc::Expiry65 => {
            let pet = Some(NOW.0 + 86_400);
            // ISC's literal 65 s (60 s skew + fudge)
            assert_eq!(ISC_EXPIRY_FUDGE, 65);
            accepts(judge_with(Some(NOW.plus(65)), pet, NOW));
            accepts(judge_with(Some(NOW.minus(5)), pet, NOW));
            accepts(judge_with(None, pet, NOW)); // ISC's ends = 0
            assert_eq!(judge_with(Some(NOW.plus(66)), pet, NOW), conflict);
            4
        }
    }
}

#[test]
fn isc_normal_table_every_cell() {
    let cells: usize = ISC_NORMAL.iter().map(|(_, _, row)| row.len()).sum();
    assert_eq!(cells, 56, "8 rows (ACTIVE split by role) x 7 statuses");
    let mut covered = Vec::new();
    for (l, roles, row) in ISC_NORMAL {
        for (&r, cell) in ISC_COLUMNS.iter().zip(row) {
            for &role in roles {
                covered.push((role, l, r));
                check_isc_cell(ServerState::Normal, role, l, r, cell);
            }
        }
    }
    assert_eq!(covered.len(), 2 * 7 * 7);
    for role in [Role::Primary, Role::Secondary] {
        for l in ALL {
            for r in ALL {
                assert_eq!(covered.iter().filter(|&&c| c == (role, l, r)).count(), 1);
            }
        }
    }
}

#[test]
fn isc_conflict_table_every_cell_in_every_other_state() {
    let cells: usize = ISC_CONFLICT.iter().map(|(_, row)| row.len()).sum();
    assert_eq!(cells, 49);
    let states = [
        ServerState::Startup,
        ServerState::CommunicationsInterrupted,
        ServerState::PartnerDown,
        ServerState::PotentialConflict,
        ServerState::Recover,
        ServerState::Paused,
        ServerState::Shutdown,
        ServerState::RecoverDone,
        ServerState::ResolutionInterrupted,
        ServerState::ConflictDone,
        ServerState::RecoverWait,
    ];
    let mut checks = 0;
    for state in states {
        for role in [Role::Primary, Role::Secondary] {
            for (l, row) in ISC_CONFLICT {
                for (&r, cell) in ISC_COLUMNS.iter().zip(row) {
                    checks += check_isc_cell(state, role, l, r, cell);
                }
            }
        }
    }
    // per state and role: 46 accept cells x 2 + 2 reject cells x 2 + 1 ends-65 cell x 4
    assert_eq!(checks, 11 * 2 * (46 * 2 + 2 * 2 + 4));
}

#[test]
fn isc_primary_rejects_secondarys_expiry_of_active_lease() {
    // I20 / D47: only the primary expires ACTIVE leases while NORMAL.
    let mut loc = local(Active);
    loc.lease_expiration = Some(NOW.minus(3_600));
    let got = judge(
        Dialect::Isc,
        Role::Primary,
        ServerState::Normal,
        &loc,
        &received(Expired),
        NOW,
    );
    assert_eq!(got, Err(RejectReason::FatalConflict));
    // ... but takes its DHCPRELEASE and DHCPDECLINE
    for r in [Released, Abandoned] {
        let v = judge(
            Dialect::Isc,
            Role::Primary,
            ServerState::Normal,
            &loc,
            &received(r),
            NOW,
        );
        assert_eq!(v.unwrap().store_as, freed(Role::Primary, r));
    }
}

#[test]
fn isc_validation_q1() {
    let d = Dialect::Isc;
    let n = ServerState::Normal;
    let p = Role::Primary;
    let misc = Err(RejectReason::UnknownConnectionReason);
    assert_eq!(
        judge_update(d, p, n, None, &received(Active), NOW, None),
        Err(RejectReason::IllegalIpAddress)
    );
    // ABANDONED with a hardware address or a client-identifier
    let mut ab = received(Abandoned);
    ab.hardware_address = Some(hw(&MAC_A));
    assert_eq!(judge(d, p, n, &local(Free), &ab, NOW), misc);
    let mut ab = received(Abandoned);
    ab.client_identifier = Some(b"\x01abc");
    assert_eq!(judge(d, p, n, &local(Free), &ab, NOW), misc);
    // chaddr longer than 21 bytes (type + 20)
    let long = [7u8; 21];
    let mut rec = received(Active);
    rec.hardware_address = Some(hw(&long));
    assert_eq!(judge(d, p, n, &local(Free), &rec, NOW), misc);
    let max = [7u8; 20];
    rec.hardware_address = Some(hw(&max));
    assert!(judge(d, p, n, &local(Free), &rec, NOW).is_ok());
    // ACTIVE / EXPIRED / RELEASED without chaddr: 3, even with a client-identifier
    for s in [Active, Expired, Released] {
        let mut rec = Binding::new(ADDR, s);
        rec.client_identifier = Some(b"\x01abc");
        assert_eq!(
            judge(d, Role::Secondary, n, &local(Free), &rec, NOW),
            Err(RejectReason::MissingBindingInformation),
            "{s}"
        );
    }
    // FREE / BACKUP / RESET need none
    for s in [Free, Backup, Reset] {
        assert!(
            judge(
                d,
                Role::Secondary,
                n,
                &local(Free),
                &Binding::new(ADDR, s),
                NOW
            )
            .is_ok()
        );
    }
    // R flag for an address we hold as our own available but not reserved: 19
    for role in [Role::Primary, Role::Secondary] {
        let own = own_free_status(role);
        let mut rec = received(Free);
        rec.ip_flags = Some(IpFlags::RESERVED);
        assert_eq!(
            judge(d, role, n, &local(own), &rec, NOW),
            Err(RejectReason::IpNotReserved)
        );
        let mut reserved = local(own);
        reserved.reserved = true;
        assert!(judge(d, role, n, &reserved, &rec, NOW).is_ok());
        // not our own available address: no check
        let theirs = own_free_status(role.partner());
        assert!(judge(d, role, n, &local(theirs), &rec, NOW).is_ok());
        // B flag likewise, reason 6
        let mut rec = received(Free);
        rec.ip_flags = Some(IpFlags::BOOTP);
        assert_eq!(judge(d, role, n, &local(own), &rec, NOW), misc);
        let mut bootp = local(own);
        bootp.bootp = true;
        assert!(judge(d, role, n, &bootp, &rec, NOW).is_ok());
    }
    // an unknown local status is our own problem
    assert_eq!(
        judge(
            d,
            p,
            n,
            &LocalBinding::new(BindingStatus::Unknown(0)),
            &received(Free),
            NOW
        ),
        Err(RejectReason::UnknownError)
    );
}

#[test]
fn isc_dueling_updates() {
    // (role, local status, local cltt, received status, received cltt, ISC's data wins)
    let cases: [(Role, BindingStatus, u32, BindingStatus, Option<u32>, bool); 12] = [
        (Role::Primary, Active, 100, Active, Some(99), true),
        (Role::Primary, Active, 100, Active, Some(101), false),
        (Role::Primary, Active, 100, Active, Some(100), true), // tie: primary's view
        (Role::Secondary, Active, 100, Active, Some(100), false),
        (Role::Secondary, Active, 100, Active, Some(99), true),
        (Role::Primary, Active, 100, Active, None, true), // absent CLTT = 0
        (Role::Secondary, Active, 100, Expired, Some(1), false), // EXPIRED beats ACTIVE
        (Role::Primary, Free, 0, Active, Some(1), false), // ACTIVE beats non-ACTIVE
        (Role::Primary, Expired, 0, Active, None, false),
        (Role::Primary, Active, 100, Released, Some(200), true), // otherwise primary wins
        (Role::Primary, Expired, 0, Free, None, true),
        (Role::Secondary, Expired, 0, Free, None, false),
    ];
    for (role, l, lcltt, r, rcltt, ours_wins) in cases {
        // the conflict table accepts all of these transitions (with the lease ended)
        let mut loc = local(l);
        loc.cltt = Some(UnixTime(lcltt));
        loc.lease_expiration = Some(NOW.minus(1_000));
        loc.in_flight = Some(0x1234);
        let mut rec = received(r);
        rec.client_last_transaction_time = rcltt;
        let state = ServerState::CommunicationsInterrupted;
        let got = judge(Dialect::Isc, role, state, &loc, &rec, NOW);
        if ours_wins {
            assert_eq!(
                got,
                Err(RejectReason::LessCriticalBindingInformation),
                "{l} {r}"
            );
        } else {
            assert_eq!(got.unwrap().superseded_xid, Some(0x1234), "{l} {r}");
        }
        // nothing in flight: no dueling check at all
        loc.in_flight = None;
        let v = judge(Dialect::Isc, role, state, &loc, &rec, NOW).unwrap();
        assert_eq!(v.superseded_xid, None);
    }
}

#[test]
fn freed_statuses_and_stored_times() {
    assert_eq!(freed_status(Role::Primary, false), Free);
    assert_eq!(freed_status(Role::Primary, true), Free);
    assert_eq!(freed_status(Role::Secondary, false), Free);
    assert_eq!(freed_status(Role::Secondary, true), Backup);
    for dialect in [Dialect::Draft, Dialect::Isc] {
        for r in [Expired, Released, Reset] {
            let mut reserved = local(Released);
            reserved.reserved = true;
            let mut rec = received(r);
            rec.client_last_transaction_time = Some(NOW.0); // later than none
            let sec = judge(
                dialect,
                Role::Secondary,
                ServerState::Normal,
                &reserved,
                &rec,
                NOW,
            );
            assert_eq!(sec.unwrap().store_as, Backup, "{dialect:?} {r}");
            let pri = judge(
                dialect,
                Role::Primary,
                ServerState::Normal,
                &reserved,
                &rec,
                NOW,
            );
            assert_eq!(pri.unwrap().store_as, Free);
        }
    }
    // lease-expiration-time: within one lease (the same client's) the later one (§7.1.5); 0
    // is "not set"; PET passed through
    let mut loc = local(Active);
    loc.lease_expiration = Some(NOW.plus(50));
    let mut rec = received(Active);
    rec.lease_expiration_time = Some(NOW.0 + 10);
    rec.potential_expiration_time = Some(NOW.0 + 99);
    let v = judge(
        Dialect::Draft,
        Role::Secondary,
        ServerState::Normal,
        &loc,
        &rec,
        NOW,
    )
    .unwrap();
    assert_eq!(v.lease_expiration, Some(NOW.plus(50)));
    assert_eq!(v.received_pet, Some(NOW.plus(99)));
    rec.lease_expiration_time = Some(NOW.0 + 500);
    let v = judge(
        Dialect::Draft,
        Role::Secondary,
        ServerState::Normal,
        &loc,
        &rec,
        NOW,
    )
    .unwrap();
    assert_eq!(v.lease_expiration, Some(NOW.plus(500)));
    // Another client's lease, or none: ours belongs to the previous lease (seed 32438263).
    rec.lease_expiration_time = Some(NOW.0 + 10);
    for mut other in [local(Free), local(Active)] {
        other.lease_expiration = Some(NOW.plus(50));
        if other.status != Free {
            other.client = ClientIdentity::new(None, Some(hw(&MAC_B)));
        }
        let v = judge(
            Dialect::Draft,
            Role::Secondary,
            ServerState::Normal,
            &other,
            &rec,
            NOW,
        );
        assert_eq!(
            v.map(|v| v.lease_expiration),
            Ok(Some(NOW.plus(10))),
            "{:?}",
            other.status
        );
    }
    let mut isc_free = received(Free);
    isc_free.lease_expiration_time = Some(0);
    isc_free.potential_expiration_time = Some(0);
    let v = judge(
        Dialect::Isc,
        Role::Secondary,
        ServerState::Normal,
        &local(Backup),
        &isc_free,
        NOW,
    )
    .unwrap();
    assert_eq!((v.lease_expiration, v.received_pet), (None, None));
}

#[test]
fn client_identity_and_client_changed() {
    let a = ClientIdentity::new(None, Some(hw(&MAC_A)));
    let b = ClientIdentity::new(None, Some(hw(&MAC_B)));
    let a_id = ClientIdentity::new(Some(b"\x01one"), Some(hw(&MAC_A)));
    let b_id = ClientIdentity::new(Some(b"\x01two"), Some(hw(&MAC_A)));
    assert_eq!(a.same_client(&a), Some(true));
    assert_eq!(a.same_client(&b), Some(false));
    // client-identifiers decide when both have one, even with the same MAC
    assert_eq!(a_id.same_client(&b_id), Some(false));
    assert_eq!(a_id.same_client(&a), Some(true)); // falls back to the hardware address
    assert_eq!(ClientIdentity::NONE.same_client(&a), None);
    assert!(!ClientIdentity::NONE.is_known() && a.is_known());
    // the hardware type is part of the identity; prefix/length ambiguity does not collide
    let t6 = ClientIdentity::new(
        None,
        Some(HardwareAddress {
            htype: 6,
            address: &MAC_A,
        }),
    );
    assert_eq!(a.same_client(&t6), Some(false));
    let id1 = ClientIdentity::new(Some(&[1, 2]), None);
    let id2 = ClientIdentity::new(Some(&[1, 2, 0]), None);
    assert_eq!(id1.same_client(&id2), Some(false));

    // an ACTIVE update for another client on our ACTIVE lease: the secondary accepts and
    // reports the change (ISC drops DDNS state then); the same client is no change
    let mut loc = local(Active);
    loc.client = a;
    let mut rec = received(Active);
    rec.hardware_address = Some(hw(&MAC_B));
    for dialect in [Dialect::Draft, Dialect::Isc] {
        let v = judge(
            dialect,
            Role::Secondary,
            ServerState::Normal,
            &loc,
            &rec,
            NOW,
        )
        .unwrap();
        assert!(v.client_changed);
        let v = judge(
            dialect,
            Role::Secondary,
            ServerState::Normal,
            &loc,
            &received(Active),
            NOW,
        )
        .unwrap();
        assert!(!v.client_changed);
    }
    // ISC primary accepts ACTIVE -> ACTIVE for another client (no transition); draft rejects 2
    let isc = judge(
        Dialect::Isc,
        Role::Primary,
        ServerState::Normal,
        &loc,
        &rec,
        NOW,
    );
    assert!(isc.unwrap().client_changed);
    let draft = judge(
        Dialect::Draft,
        Role::Primary,
        ServerState::Normal,
        &loc,
        &rec,
        NOW,
    );
    assert_eq!(draft, Err(RejectReason::FatalConflict));
}

#[test]
fn isc_expiry_allowance_is_the_measured_skew_not_65_seconds() {
    assert_eq!(isc_expiry_allowance(None), ISC_EXPIRY_FUDGE);
    assert_eq!(isc_expiry_allowance(Some(0)), 1);
    assert_eq!(isc_expiry_allowance(Some(30)), 31);
    assert_eq!(isc_expiry_allowance(Some(64)), ISC_EXPIRY_FUDGE);
    assert_eq!(isc_expiry_allowance(Some(u32::MAX)), ISC_EXPIRY_FUDGE);
    // A 20-s lease renewed 5 s ago, the partner's EXPIRED for it (its stale copy ended):
    // ISC's 65 s take it; the measured skew of clocks in step (0) refuses it until the last
    // second of the lease.
    let expired = received(Expired);
    for (state, role) in [
        (ServerState::Normal, Role::Secondary),
        (ServerState::CommunicationsInterrupted, Role::Secondary),
        (ServerState::CommunicationsInterrupted, Role::Primary),
    ] {
        let ours = |ends: UnixTime| LocalBinding {
            lease_expiration: Some(ends),
            ..local(Active)
        };
        let isc = |ends: UnixTime, ahead| {
            judge_update(
                Dialect::Isc,
                role,
                state,
                Some(&ours(ends)),
                &expired,
                NOW,
                ahead,
            )
        };
        let conflict = Err(RejectReason::FatalConflict);
        assert!(isc(NOW.plus(15), None).is_ok(), "{state} {role:?}");
        assert_eq!(isc(NOW.plus(15), Some(0)), conflict, "{state} {role:?}");
        assert_eq!(isc(NOW.plus(2), Some(0)), conflict, "{state} {role:?}");
        assert!(isc(NOW.plus(1), Some(0)).is_ok(), "{state} {role:?}");
        // A partner clock 14 s ahead expires it 14 s early in ours.
        assert!(isc(NOW.plus(15), Some(14)).is_ok(), "{state} {role:?}");
        assert_eq!(isc(NOW.plus(16), Some(14)), conflict, "{state} {role:?}");
        // The draft's rules do not use it (time rule (2): the lease must have ended).
        let draft = judge_update(
            Dialect::Draft,
            role,
            state,
            Some(&ours(NOW.plus(15))),
            &expired,
            NOW,
            Some(60),
        );
        assert!(draft.is_err());
    }
}
