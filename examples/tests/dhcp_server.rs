//! The `dhcp-server` example with DHCP clients: a fleet written with dhcproto on loopback, two
//! servers as failover partners (child processes, stopped by PID). The fleet is in
//! `common/mod.rs`; bad input is `dhcp_server_input.rs`.
//!
//! The fleet pretends to be a relay: every message carries giaddr 127.0.0.1 and goes to both
//! servers (127.0.0.1 and 127.0.0.2, unprivileged ports), and the replies come back to the
//! fleet's socket (`--relay-port`). Each client records the leases it holds and from whom; the
//! oracle checks on every ACK that no address is held by two clients at once, and that the
//! lease ends no later than the MCLT after what the partner had been told (from the granting
//! server's lease log).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use dhcproto::v4::MessageType;
use failover_fsm::accept::ClientIdentity;
use failover_fsm::record::LeaseClient;
use failover_fsm::{BindingStatus, Role};
use failover_proto::hash::client_bucket;
use failover_tokio::{FileStore, Lease};

const PRIMARY_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);
const SECONDARY_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
const RELAY: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);

mod common;
use common::{Ask, Fleet, Proc, Tick, count, free_tcp_port, free_udp_port, server_binary};
const SPLIT: u8 = 128;

/// One server of a pair: its DHCP address, its failover port and its partner's.
struct Side {
    role: &'static str,
    dhcp: SocketAddr,
    peer: u16,
    partner: u16,
    store: PathBuf,
}

/// A pair's settings.
struct PairSpec {
    pool: &'static str,
    mclt: u32,
    relay_port: u16,
    /// `--lease-time`.
    lease_time: u32,
    /// `--auto-partner-down`, on both servers.
    auto_partner_down: Option<u32>,
}

fn server_args(side: &Side, spec: &PairSpec) -> Vec<String> {
    [
        "--listen",
        &side.dhcp.to_string(),
        "--pool",
        spec.pool,
        "--subnet",
        "16",
        "--router",
        "10.77.0.1",
        "--lease-time",
        &spec.lease_time.to_string(),
        "--relay-port",
        &spec.relay_port.to_string(),
        "--status-every",
        "1",
        "--plaintext",
        "--role",
        side.role,
        "--peer-listen",
        &format!("127.0.0.1:{}", side.peer),
        "--partner",
        &format!("127.0.0.1:{}", side.partner),
        "--name",
        "dhcp-test",
        "--mclt",
        &spec.mclt.to_string(),
        "--mrd",
        "3",
        "--split",
        &SPLIT.to_string(),
        "--store",
        &side.store.to_string_lossy(),
    ]
    .iter()
    .map(|s| s.to_string())
    .chain(
        spec.auto_partner_down
            .iter()
            .flat_map(|s| ["--auto-partner-down".to_string(), s.to_string()]),
    )
    .collect()
}

/// A pair's setup: a temporary directory for the stores, the fleet's socket, the two sides.
struct Lab {
    dir: PathBuf,
    bin: PathBuf,
    spec: PairSpec,
    primary: Side,
    secondary: Side,
    fleet: Fleet,
}

impl Lab {
    fn new(name: &str, pool: &'static str, mclt: u32) -> Lab {
        let dir = std::env::temp_dir().join(format!("dhcp-server-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let socket = UdpSocket::bind((RELAY, 0)).unwrap();
        let relay_port = socket.local_addr().unwrap().port();
        let (pp, sp) = (free_tcp_port(), free_tcp_port());
        let primary = Side {
            role: "primary",
            dhcp: SocketAddr::from((PRIMARY_IP, free_udp_port(PRIMARY_IP))),
            peer: pp,
            partner: sp,
            store: dir.join("primary.log"),
        };
        let secondary = Side {
            role: "secondary",
            dhcp: SocketAddr::from((SECONDARY_IP, free_udp_port(SECONDARY_IP))),
            peer: sp,
            partner: pp,
            store: dir.join("secondary.log"),
        };
        let mut fleet = Fleet::new(socket, vec![primary.dhcp, secondary.dhcp]);
        fleet.logs.insert(PRIMARY_IP, primary.store.clone());
        fleet.logs.insert(SECONDARY_IP, secondary.store.clone());
        fleet.mclt = mclt;
        Lab {
            dir,
            bin: server_binary(),
            spec: PairSpec {
                pool,
                mclt,
                relay_port,
                lease_time: 600,
                auto_partner_down: None,
            },
            primary,
            secondary,
            fleet,
        }
    }

    fn start(&self, side: &Side, name: &'static str) -> Proc {
        Proc::spawn(&self.bin, &server_args(side, &self.spec), name)
    }
}

/// The lease-length oracle ran (on every ACK of our servers): how often, and how close.
fn lease_lengths_checked(fleet: &Fleet) {
    eprintln!(
        "lease-length oracle: {} ACKs checked against their server's log, least slack {:?} s",
        fleet.length_checks, fleet.least_slack
    );
    assert!(fleet.length_checks > 0, "no ACK was checked");
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Both NORMAL, and the primary gave the secondary its share of the pool (BACKUP).
fn cold_start(primary: &Proc, secondary: &Proc) {
    primary.wait_status("NORMAL", 40, |s| s.contains("status: NORMAL"));
    secondary.wait_status("NORMAL with BACKUP addresses", 40, |s| {
        s.contains("status: NORMAL") && count(s, "BACKUP").is_some_and(|n| n > 0)
    });
}

/// Waits until `p` holds `n` ACTIVE leases and nothing waits for the partner (`other`, whose
/// log is shown too if not), as a status line printed after this call says: one printed
/// before shows `queued 0, unacked 0` while the bindings of the exchanges just made are still
/// on their way (the status line comes once a second, the exchanges take milliseconds).
fn settled(p: &Proc, other: &Proc, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let ok = |s: &str| count(s, "ACTIVE") == Some(n) && s.contains("queued 0, unacked 0");
    let mark = p.mark();
    while !p.status_after(mark).is_some_and(|s| ok(&s)) {
        assert!(
            Instant::now() < deadline,
            "{}: not holding {n} leases, all acknowledged, within 30 s:\n{}\n\n{}:\n{}",
            p.name,
            p.text(),
            other.name,
            other.text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Both stores, read back from their files (the servers stopped), hold exactly the leases
/// the clients hold: the same addresses ACTIVE for the same clients; and the addresses
/// clients declined ABANDONED, nobody's.
fn stores_hold_the_clients_leases(lab: &Lab, first: Ipv4Addr, count: u32, held: usize) {
    let expected: BTreeMap<Ipv4Addr, ClientIdentity> = lab
        .fleet
        .clients
        .iter()
        .filter_map(|c| {
            let client = LeaseClient {
                client_identifier: None,
                htype: 1,
                chaddr: &c.mac,
            };
            Some((c.lease?.address, client.identity()))
        })
        .collect();
    assert_eq!(expected.len(), held);
    for (side, role) in [
        (&lab.primary, Role::Primary),
        (&lab.secondary, Role::Secondary),
    ] {
        let store = FileStore::open(&side.store, role, first, count).unwrap();
        let active: BTreeMap<Ipv4Addr, ClientIdentity> = store
            .memory()
            .snapshot()
            .values()
            .filter(|r| r.local.status == BindingStatus::Active)
            .map(|r| (r.data.ip(), r.local.client))
            .collect();
        assert!(
            active == expected,
            "{}'s store: {} ACTIVE, the clients hold {}",
            side.role,
            active.len(),
            expected.len()
        );
        for a in &lab.fleet.declined {
            let r = store.memory().get(*a).unwrap();
            assert_eq!(
                (r.local.status, r.local.client.is_known()),
                (BindingStatus::Abandoned, false),
                "{}'s store: the declined {a}",
                side.role
            );
        }
    }
}

/// The last record of each address in the log at `path`, as the running server wrote it.
fn last_records(path: &Path) -> BTreeMap<Ipv4Addr, Lease> {
    let mut last = BTreeMap::new();
    for l in FileStore::history(path).unwrap() {
        last.insert(l.data.ip(), l);
    }
    last
}

/// One record, for a failure message.
fn describe(l: &Lease) -> String {
    format!(
        "{} cltt {:?} stos {:?} ends {:?} (sent {:?}) pet sent {:?} acked {:?} received {:?} \
         partner has it {}",
        l.local.status,
        l.local.cltt.map(|t| t.0),
        l.local.start_time_of_state.map(|t| t.0),
        l.local.lease_expiration.map(|t| t.0),
        l.data.lease_expiration_time.map(|t| t.0),
        l.local.sent_pet.map(|t| t.0),
        l.local.acked_pet.map(|t| t.0),
        l.local.received_pet.map(|t| t.0),
        l.partner_has_it
    )
}

/// Waits (5 s at most: the logs are written at each server's next sync) until both stores,
/// read from their logs as the running servers wrote them, agree on every address: the same
/// binding status and lease-expiration-time (§7.1.5: what decides when either server ends the
/// lease). On a mismatch, fails with every record of the differing addresses in both logs,
/// and both servers' output.
fn stores_agree(lab: &Lab, primary: &Proc, secondary: &Proc, when: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let ours = last_records(&lab.primary.store);
        let theirs = last_records(&lab.secondary.store);
        let addresses: BTreeSet<Ipv4Addr> = ours.keys().chain(theirs.keys()).copied().collect();
        let key = |l: Option<&Lease>| l.map(|l| (l.local.status, l.local.lease_expiration));
        let differ: Vec<Ipv4Addr> = addresses
            .into_iter()
            .filter(|a| key(ours.get(a)) != key(theirs.get(a)))
            .collect();
        if differ.is_empty() {
            return;
        }
        if Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(500));
            continue;
        }
        let history = |path: &Path, a: Ipv4Addr| {
            FileStore::history(path)
                .unwrap()
                .iter()
                .filter(|l| l.data.ip() == a)
                .map(|l| format!("    {}", describe(l)))
                .collect::<Vec<_>>()
                .join("\n")
        };
        let report: Vec<String> = differ
            .iter()
            .map(|&a| {
                format!(
                    "{a}:\n  primary {}\n{}\n  secondary {}\n{}",
                    ours.get(&a).map_or_else(|| "none".into(), describe),
                    history(&lab.primary.store, a),
                    theirs.get(&a).map_or_else(|| "none".into(), describe),
                    history(&lab.secondary.store, a),
                )
            })
            .collect();
        panic!(
            "{when}: the stores differ on {} addresses (status or lease-expiration-time; \
             each with its records oldest first):\n{}\n\n{}:\n{}\n\n{}:\n{}",
            differ.len(),
            report.join("\n"),
            primary.name,
            primary.text(),
            secondary.name,
            secondary.text()
        );
    }
}

/// Cold start and the split; INFORM, RELEASE and DECLINE; the primary killed (SIGKILL): its
/// clients keep their addresses on the secondary and new clients are served; the primary
/// restarted from its store: back to NORMAL with every lease, serving again; the secondary
/// restarted without its store: it recovers every lease; both stores equal the clients'.
#[test]
fn a_pair_serves_a_fleet_and_survives_the_primary_killed() {
    let mclt = 20;
    let mut lab = Lab::new("primary-killed", "10.77.0.10-10.77.0.249", mclt);
    let mut primary = lab.start(&lab.primary, "primary");
    let secondary = lab.start(&lab.secondary, "secondary");
    cold_start(&primary, &secondary);

    let n = 100;
    let fleet = &mut lab.fleet;
    let all = fleet.add_clients(n);
    assert_eq!(
        fleet.acquire(all.clone(), 8),
        n,
        "every client gets a lease"
    );
    fleet.check_no_double_holding();
    let by_primary = fleet.served_by(all.clone(), PRIMARY_IP);
    let hashed_primary = fleet.clients[all.clone()]
        .iter()
        .filter(|c| client_bucket(None, &c.mac) < SPLIT)
        .count();
    eprintln!(
        "split: primary {by_primary} / secondary {} of {n} clients; the RFC 3074 hash \
         (split {SPLIT}) gives {hashed_primary} / {}",
        n - by_primary,
        n - hashed_primary
    );
    assert!(
        by_primary.abs_diff(hashed_primary) <= n / 20,
        "measured {by_primary} by the primary, hash says {hashed_primary}"
    );
    let misplaced = all
        .clone()
        .filter(|&i| {
            (client_bucket(None, &fleet.clients[i].mac) < SPLIT)
                != (fleet.held(i).unwrap().server == PRIMARY_IP)
        })
        .count();
    eprintln!("clients served by the other server than their hash names: {misplaced}");
    assert_eq!(
        misplaced, 0,
        "load balancing sends each client to its hash's server"
    );
    // New clients' first leases are at most the MCLT (§5.2.1); the renewal at T1, once the
    // partner acknowledged the potential-expiration-time, gets the desired time.
    let first = fleet.held(0).unwrap();
    assert!(first.until <= Instant::now() + Duration::from_secs(u64::from(mclt)));
    // The ACK goes out once the binding is durable here, not once the partner acknowledged
    // it: wait for that, as the renewal's lease time depends on it.
    settled(&primary, &secondary, n);
    settled(&secondary, &primary, n);
    let fleet = &mut lab.fleet;
    assert_eq!(
        fleet.extend(all.clone(), false),
        (n, 0),
        "every renewal ACKed"
    );
    let renewed = fleet.held(0).unwrap();
    assert!(
        renewed.until > Instant::now() + Duration::from_secs(300),
        "the renewal gets the desired lease time"
    );

    // INFORM: an ACK without a lease; RELEASE and DECLINE: no answer, the lease ends.
    let ask = Ask {
        ciaddr: fleet.held(0).unwrap().address,
        ..Ask::new(0, MessageType::Inform)
    };
    let replies = fleet.exchange(&[ask], Duration::from_secs(2));
    let inform = replies
        .get(&0)
        .and_then(|r| r.first())
        .expect("INFORM answered");
    assert_eq!(
        (inform.kind, inform.yiaddr, inform.lease_time),
        (MessageType::Ack, Ipv4Addr::UNSPECIFIED, None)
    );
    fleet.release(1);
    let declined = fleet.decline(2);
    eprintln!("client 1 released its lease, client 2 declined {declined}");
    let held = n - 2;
    // Both servers hold every lease and nothing waits for the partner: the primary may die
    // now without a client losing its address.
    settled(&primary, &secondary, held);
    settled(&secondary, &primary, held);

    primary.kill();
    let (kept, naks) = fleet.extend(3..n, true);
    eprintln!(
        "after SIGKILL of the primary: {kept} of {} clients rebound to the secondary with \
         their address, {naks} NAKs",
        n - 3
    );
    assert_eq!((kept, naks), (n - 3, 0), "{}", secondary.text());
    assert_eq!(fleet.served_by(3..n, SECONDARY_IP), n - 3);
    secondary.wait_status("COMMUNICATIONS-INTERRUPTED", 20, |s| {
        s.contains("status: COMMUNICATIONS-INTERRUPTED")
    });
    // New clients get addresses from the secondary's own (BACKUP) pool.
    let new = fleet.add_clients(20);
    let got = fleet.acquire(new.clone(), 8);
    eprintln!("new clients while the primary is down: {got} of 20 served");
    assert_eq!(got, 20, "{}", secondary.text());
    assert_eq!(fleet.served_by(new.clone(), SECONDARY_IP), 20);
    fleet.check_no_double_holding();

    // The primary restarts from its store: NORMAL again, and it learns the secondary's news.
    let primary = lab.start(&lab.primary, "primary (restarted)");
    primary.wait_status("NORMAL after the restart", 60, |s| {
        s.contains("status: NORMAL")
    });
    secondary.wait_status("NORMAL after the restart", 60, |s| {
        s.contains("status: NORMAL")
    });
    let fleet = &mut lab.fleet;
    let held = held + 20;
    settled(&primary, &secondary, held);
    settled(&secondary, &primary, held);
    eprintln!("the primary restarted from its store: NORMAL, both servers hold {held} leases");
    let (kept, naks) = fleet.extend(0..fleet.clients.len(), false);
    assert_eq!(
        (kept, naks),
        (held, 0),
        "every lease renewed after the restart"
    );
    // Once the partner has acknowledged those renewals' potential-expiration-times, one more
    // renewal gets the full lease time (§5.2.1: no more than the acknowledged PET plus the
    // MCLT before): no lease may end during the MCLT-long RECOVER-WAIT below, however slow
    // the machine (one granted MCLT-short did on a loaded CI run).
    settled(&primary, &secondary, held);
    settled(&secondary, &primary, held);
    assert_eq!(
        fleet.extend(0..fleet.clients.len(), false),
        (held, 0),
        "every lease renewed again"
    );
    let shortest = fleet
        .clients
        .iter()
        .filter_map(|c| c.lease.as_ref())
        .map(|l| l.until.saturating_duration_since(Instant::now()))
        .min()
        .unwrap();
    assert!(
        shortest > Duration::from_secs(120),
        "a renewed lease runs only {shortest:?}: it could end during RECOVER-WAIT"
    );
    settled(&primary, &secondary, held);
    settled(&secondary, &primary, held);
    // The secondary is about to lose its store: it must hold nothing the primary has not
    // acknowledged, and both stores the same lease times. A server that fails after answering
    // a client and before updating its partner leaves the partner believing the lease ends
    // sooner (draft §5.2.1, lazy update): killed with its last renewals still queued (when
    // `settled` read status lines older than them), the secondary recovered the first,
    // MCLT-long leases of the clients that joined while the primary was down, and the
    // primary expired them during RECOVER-WAIT while the clients held the renewals.
    stores_agree(
        &lab,
        &primary,
        &secondary,
        "before the secondary loses its store",
    );
    // The secondary comes back without its lease file: a new server to the primary (which
    // goes PARTNER-DOWN), it recovers every binding (RECOVER, UPDREQALL), waits the MCLT
    // (RECOVER-WAIT) and both return to NORMAL.
    drop(secondary);
    std::fs::remove_file(&lab.secondary.store).unwrap();
    let since = Instant::now();
    let secondary = lab.start(&lab.secondary, "secondary (store lost)");
    let normal = |s: &str| s.contains("status: NORMAL") && s.contains("partner NORMAL");
    secondary.wait_status("NORMAL again", 90, normal);
    primary.wait_status("NORMAL again", 30, normal);
    settled(&secondary, &primary, held);
    settled(&primary, &secondary, held);
    eprintln!(
        "the secondary back without its store: NORMAL after {:.1} s, holding all {held} leases",
        since.elapsed().as_secs_f64()
    );
    let fleet = &mut lab.fleet;
    let everyone = 0..fleet.clients.len();
    assert_eq!(
        fleet.extend(everyone, false),
        (held, 0),
        "every lease renewed"
    );

    // New clients hashing to the primary are its again.
    let later = fleet.add_clients(20);
    assert_eq!(fleet.acquire(later.clone(), 8), 20);
    let hashed = fleet.clients[later.clone()]
        .iter()
        .filter(|c| client_bucket(None, &c.mac) < SPLIT)
        .count();
    assert_eq!(fleet.served_by(later, PRIMARY_IP), hashed);
    fleet.check_no_double_holding();

    // The two lease databases agree with each other and with the clients: read back from the
    // stores' files after SIGKILL (what was acknowledged is on disk).
    let held = held + 20;
    settled(&primary, &secondary, held);
    settled(&secondary, &primary, held);
    drop(primary);
    drop(secondary);
    stores_hold_the_clients_leases(&lab, Ipv4Addr::new(10, 77, 0, 10), 240, held);
    eprintln!("both stores, read back after SIGKILL, hold exactly the clients' {held} leases");
    lease_lengths_checked(&lab.fleet);
}

/// The secondary killed: its clients keep their addresses on the primary, which serves new
/// clients only from its own FREE addresses — until the operator's `partner-down` (stdin)
/// and the MCLT after it, when the whole pool is the primary's.
#[test]
fn the_secondary_killed_then_partner_down_by_command_opens_the_whole_pool() {
    let pool_size = 24;
    let mclt = 8;
    let mut lab = Lab::new("partner-down", "10.77.1.10-10.77.1.33", mclt);
    let mut primary = lab.start(&lab.primary, "primary");
    let mut secondary = lab.start(&lab.secondary, "secondary");
    cold_start(&primary, &secondary);
    let fleet = &mut lab.fleet;
    let first = fleet.add_clients(8);
    assert_eq!(fleet.acquire(first.clone(), 8), 8);
    // Renewed once so that the leases outlive the test (first leases are at most the MCLT).
    assert_eq!(fleet.extend(first.clone(), false), (8, 0));
    settled(&primary, &secondary, 8);
    settled(&secondary, &primary, 8);
    let on_secondary = fleet.served_by(first.clone(), SECONDARY_IP);

    secondary.kill();
    assert_eq!(
        fleet.extend(first.clone(), true),
        (8, 0),
        "{}",
        primary.text()
    );
    eprintln!("after SIGKILL of the secondary: its {on_secondary} clients rebound to the primary");
    primary.wait_status("COMMUNICATIONS-INTERRUPTED", 20, |s| {
        s.contains("status: COMMUNICATIONS-INTERRUPTED")
    });
    let own_free = count(&primary.status().unwrap(), "FREE").unwrap();
    let backup = count(&primary.status().unwrap(), "BACKUP").unwrap();
    assert_eq!(own_free + backup + 8, pool_size);
    let more = fleet.add_clients(pool_size);
    let got = fleet.acquire(more.clone(), 3);
    eprintln!(
        "COMMUNICATIONS-INTERRUPTED: {got} new clients served = the primary's {own_free} FREE \
         addresses; the {backup} BACKUP ones stay the secondary's"
    );
    assert_eq!(got, own_free);

    // Their leases are the MCLT at most while the partner cannot be told (§5.2.1): they renew
    // at T1 to keep them.
    let keep = |fleet: &mut Fleet| {
        let bound: Vec<usize> = more.clone().filter(|&i| fleet.held(i).is_some()).collect();
        for i in bound {
            assert_eq!(fleet.extend(i..i + 1, false), (1, 0), "client {i} renews");
        }
    };
    primary.command("partner-down");
    primary.wait_status("PARTNER-DOWN", 10, |s| s.contains("status: PARTNER-DOWN"));
    let since = Instant::now();
    keep(fleet);
    // Within the MCLT the partner's addresses stay untouched.
    let early = fleet.acquire(more.clone(), 1);
    assert_eq!(
        early, got,
        "nothing of the partner's pool before the MCLT has passed"
    );
    // After the MCLT (and the library's clock margin), the whole pool.
    let wait = Duration::from_secs(u64::from(mclt) + 4);
    while since.elapsed() < wait {
        keep(fleet);
        std::thread::sleep(Duration::from_secs(2).min(wait.saturating_sub(since.elapsed())));
    }
    keep(fleet);
    // Two rounds: the clients that find no address wait out each round's window, and the
    // renewed leases run only the MCLT.
    let all = fleet.acquire(more.clone(), 2);
    eprintln!(
        "PARTNER-DOWN after the MCLT: {} more clients served; {} of the {pool_size} \
         addresses leased",
        all - got,
        all + 8
    );
    assert_eq!(all + 8, pool_size, "the whole pool, {}", primary.text());
    fleet.check_no_double_holding();
    lease_lengths_checked(fleet);
}

/// The primary SIGKILLed while the fleet renews at T1 and rebinds at T2, then restarted from its
/// store while they go on: no client that kept asking loses its address (the secondary knows
/// every lease the primary granted, or the primary is back before such a lease ends), no
/// address is held twice, no lease outlives the MCLT rule; the restarted primary serves again.
#[test]
fn the_primary_killed_while_clients_renew_and_restarted_from_its_store() {
    let mclt = 10;
    let mut lab = Lab::new("kill-renewing", "10.77.2.10-10.77.2.129", mclt);
    // Short leases, so that renewals run all through: a first lease is the MCLT (T1 after
    // 5 s, T2 after 8.75 s), a renewed one 20 s (T1 after 10 s, T2 after 17.5 s).
    lab.spec.lease_time = 20;
    let primary = lab.start(&lab.primary, "primary");
    let secondary = lab.start(&lab.secondary, "secondary");
    cold_start(&primary, &secondary);
    let n = 60;
    let all = lab.fleet.add_clients(n);
    let mut offers = HashMap::new();
    let t0 = Instant::now();
    // Clients join over 6 s, so that their T1 and T2 are spread.
    let joined = |t: Duration| 0..(n * (1 + t.as_secs() as usize) / 6).min(n);
    // The kill in the middle of the first renewals (at 5 to 11 s); the primary down long
    // enough that clients reach T2 and rebind with the secondary.
    let (kill_at, restart_at, end) = (
        Duration::from_secs(9),
        Duration::from_secs(24),
        Duration::from_secs(40),
    );
    // The kill lands in the middle of an exchange: from another thread.
    let killer = std::thread::spawn(move || {
        let mut primary = primary;
        std::thread::sleep(kill_at);
        primary.kill();
    });
    let mut restarted: Option<(Proc, Instant)> = None;
    let mut first_ack_after_restart = None;
    let (mut during, mut total) = (Tick::default(), Tick::default());
    let mut ticks = 0;
    while t0.elapsed() < end {
        let since = t0.elapsed();
        if restarted.is_none() && since >= restart_at {
            restarted = Some((
                lab.start(&lab.primary, "primary (restarted)"),
                Instant::now(),
            ));
        }
        let t = lab
            .fleet
            .tick(joined(since), &mut offers, Duration::from_secs(1));
        ticks += 1;
        assert_eq!(t.lost, 0, "clients lost their address at {since:?}");
        if (kill_at..restart_at).contains(&since) {
            during.renewed += t.renewed;
            during.rebound += t.rebound;
        }
        total.bound += t.bound;
        total.renewed += t.renewed;
        total.rebound += t.rebound;
        if first_ack_after_restart.is_none()
            && let Some((_, at)) = &restarted
            && lab.fleet.clients.iter().any(|c| {
                c.lease
                    .is_some_and(|h| h.server == PRIMARY_IP && h.since > *at)
            })
        {
            first_ack_after_restart = Some(at.elapsed());
        }
        lab.fleet.check_no_double_holding();
        std::thread::sleep(Duration::from_millis(200));
    }
    killer.join().unwrap();
    let (primary, _) = restarted.unwrap();
    let fleet = &mut lab.fleet;
    eprintln!(
        "{ticks} steps over {:?}: {} leases taken, {} renewals, {} rebindings; while the \
         primary was down: {} renewals, {} rebindings; the restarted primary's first ACK \
         after {first_ack_after_restart:?}",
        t0.elapsed(),
        total.bound,
        total.renewed,
        total.rebound,
        during.renewed,
        during.rebound
    );
    assert_eq!(
        fleet.acquire(all.clone(), 1),
        n,
        "every client holds a lease"
    );
    assert!(
        during.rebound > 0,
        "some of the primary's clients rebound to the secondary"
    );
    primary.wait_status("NORMAL after the restart", 30, |s| {
        s.contains("status: NORMAL")
    });
    secondary.wait_status("NORMAL after the restart", 30, |s| {
        s.contains("status: NORMAL")
    });
    // Both lease databases hold the clients' leases, nothing more, nothing unacknowledged —
    // while the clients go on renewing, as clients do (the leases are shorter than the wait:
    // without renewals they would run out during it). The restarted primary expires the leases
    // its stale copy says ended, and its EXPIREDs cross the secondary's backlog of renewals:
    // ISC's 65-s expiry allowance let the secondary take them for these 20-s leases, and a
    // renewal the engine then dropped from its queue stayed unsent, so the primary's table
    // missed leases until their clients renewed (failover-fsm/tests/short_leases.rs).
    let deadline = Instant::now() + Duration::from_secs(30);
    let settled_now = |p: &Proc| {
        p.status()
            .is_some_and(|s| count(&s, "ACTIVE") == Some(n) && s.contains("queued 0, unacked 0"))
    };
    while !(settled_now(&primary) && settled_now(&secondary)) {
        assert!(
            Instant::now() < deadline,
            "not both holding {n} leases, all acknowledged, within 30 s:\n{}\n\n{}",
            primary.text(),
            secondary.text()
        );
        let t = fleet.tick(all.clone(), &mut offers, Duration::from_secs(1));
        assert_eq!(t.lost, 0, "clients lost their address while settling");
        fleet.check_no_double_holding();
        std::thread::sleep(Duration::from_millis(200));
    }
    // The restarted primary serves again: new clients of its hash buckets get their leases
    // from it. (The clients it had renew with the secondary, which holds their leases now:
    // whether one of them reaches the primary while the loop above runs is a matter of
    // timing, since the secondary no longer frees their leases on the primary's stale
    // EXPIREDs.)
    let new = fleet.add_clients(12);
    assert_eq!(fleet.acquire(new.clone(), 2), 12, "{}", primary.text());
    let primarys = new
        .clone()
        .filter(|&i| client_bucket(None, &fleet.clients[i].mac) < SPLIT)
        .collect::<Vec<_>>();
    assert!(!primarys.is_empty());
    for &i in &primarys {
        assert_eq!(
            fleet.held(i).map(|h| h.server),
            Some(PRIMARY_IP),
            "client {i} of the primary's buckets: {}",
            primary.text()
        );
    }
    eprintln!(
        "the restarted primary's first ACK to a renewing client came after \
         {first_ack_after_restart:?}; {} of 12 new clients served by it",
        primarys.len()
    );
    fleet.check_no_double_holding();
    lease_lengths_checked(fleet);
}

/// `STATE for N s` of a status line: N.
fn seconds_in_state(status: &str) -> Option<u64> {
    let rest = status.split(" for ").nth(1)?;
    rest.split(' ').next()?.parse().ok()
}

/// The secondary killed, the primary started with `--auto-partner-down`: it goes from
/// COMMUNICATIONS-INTERRUPTED to PARTNER-DOWN by itself once the safe period has passed, and
/// leases the secondary's addresses (BACKUP, read from its log) only the MCLT after that —
/// then the whole pool. Clients renew throughout and lose nothing.
#[test]
fn the_secondary_killed_then_partner_down_by_timer_opens_the_whole_pool() {
    let (pool_size, mclt, safe) = (24, 6, 4);
    let mut lab = Lab::new("auto-partner-down", "10.77.3.10-10.77.3.33", mclt);
    lab.spec.auto_partner_down = Some(safe);
    let primary = lab.start(&lab.primary, "primary");
    let mut secondary = lab.start(&lab.secondary, "secondary");
    cold_start(&primary, &secondary);
    let fleet = &mut lab.fleet;
    let first = fleet.add_clients(8);
    assert_eq!(fleet.acquire(first.clone(), 8), 8);
    assert_eq!(fleet.extend(first.clone(), false), (8, 0));
    settled(&primary, &secondary, 8);
    settled(&secondary, &primary, 8);
    // The secondary's addresses, as the primary's log has them last.
    let mut last = BTreeMap::new();
    for l in FileStore::history(&lab.primary.store).unwrap() {
        last.insert(l.data.ip(), l.local.status);
    }
    let backup: Vec<Ipv4Addr> = last
        .iter()
        .filter(|(_, s)| **s == BindingStatus::Backup)
        .map(|(a, _)| *a)
        .collect();
    assert_eq!(
        Some(backup.len()),
        count(&primary.status().unwrap(), "BACKUP"),
        "the log and the status line agree"
    );
    assert!(!backup.is_empty());

    secondary.kill();
    let killed = Instant::now();
    let fleet = &mut lab.fleet;
    assert_eq!(
        fleet.extend(first.clone(), true),
        (8, 0),
        "{}",
        primary.text()
    );
    let more = fleet.add_clients(pool_size);
    let mut offers = HashMap::new();
    let (mut interrupted, mut partner_down, mut first_backup) = (None, None, None);
    let deadline = killed + Duration::from_secs(u64::from(safe + mclt) + 20);
    while Instant::now() < deadline {
        let t = fleet.tick(more.clone(), &mut offers, Duration::from_millis(500));
        assert_eq!(t.lost, 0, "{}", primary.text());
        let status = primary.status().unwrap();
        if interrupted.is_none() && status.contains("status: COMMUNICATIONS-INTERRUPTED") {
            interrupted = Some(killed.elapsed());
        }
        if partner_down.is_none() && status.contains("status: PARTNER-DOWN") {
            // When it entered: now less the time the status line says it has been in it.
            let n = seconds_in_state(&status).unwrap();
            partner_down = Some(killed.elapsed().saturating_sub(Duration::from_secs(n)));
        }
        if first_backup.is_none()
            && more
                .clone()
                .any(|i| fleet.held(i).is_some_and(|h| backup.contains(&h.address)))
        {
            first_backup = Some(killed.elapsed());
        }
        let leased = first
            .clone()
            .chain(more.clone())
            .filter(|&i| fleet.held(i).is_some());
        if leased.count() == pool_size && first_backup.is_some() {
            break;
        }
    }
    let leased = (0..fleet.clients.len())
        .filter(|&i| fleet.held(i).is_some())
        .count();
    eprintln!(
        "after SIGKILL of the secondary: COMMUNICATIONS-INTERRUPTED seen at {interrupted:?}, \
         PARTNER-DOWN entered at {partner_down:?} (auto-partner-down {safe} s), the first of \
         its {} BACKUP addresses leased at {first_backup:?} (MCLT {mclt} s); {leased} of \
         {pool_size} addresses leased",
        backup.len()
    );
    assert!(interrupted.is_some(), "{}", primary.text());
    let entered = partner_down.expect("PARTNER-DOWN by the timer");
    // The engine's timer and the status line both count whole seconds: a second of slack
    // for each (PARTNER-DOWN at once, without the timer, is still caught).
    let safe = Duration::from_secs(u64::from(safe));
    assert!(
        entered + Duration::from_secs(2) >= safe,
        "PARTNER-DOWN {entered:?} after the kill, before the safe period {safe:?}"
    );
    assert!(
        entered <= safe + Duration::from_secs(3),
        "PARTNER-DOWN only {entered:?} after the kill"
    );
    let opened = first_backup.expect("the secondary's addresses leased");
    let mclt = Duration::from_secs(u64::from(mclt));
    assert!(
        opened + Duration::from_secs(1) >= entered + mclt,
        "a BACKUP address leased {opened:?} after the kill, PARTNER-DOWN at {entered:?}"
    );
    // And soon after: the MCLT, the library's clock margin, a status line and a DISCOVER.
    let margin = Duration::from_secs(u64::from(failover_fsm::policy::CLOCK_MARGIN) + 3);
    assert!(
        opened <= entered + mclt + margin,
        "the first BACKUP address leased only {opened:?} after the kill"
    );
    assert_eq!(leased, pool_size, "the whole pool, {}", primary.text());
    fleet.check_no_double_holding();
    lease_lengths_checked(fleet);
}
