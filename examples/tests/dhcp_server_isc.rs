//! The `dhcp-server` paired with ISC dhcpd 4.4, in either role, serving a client fleet relayed
//! over a veth pair between two network namespaces (addresses from 198.18.0.0/15): cold start
//! and the hash's split, ISC killed and its clients rebinding to us, then ISC back with its
//! lease file and again without it (RECOVER), both lease databases compared address by
//! address each time. Skipped with a note when dhcpd, iproute2 or the right to create
//! namespaces is missing (`FAILOVER_REQUIRE_TOOLS=1` makes that a failure).
//!
//! * `fo<pid>-s`: ISC on `fo0` 198.18.0.1:67, our server on 198.18.0.2:6767 (an address on
//!   the namespace's loopback — dhcpd takes every address of `fo0` as its own server
//!   identifier — and a port of its own: dhcpd holds 0.0.0.0:67), failover over the
//!   namespace's loopback (ISC 127.0.0.1:647, ours 127.0.0.2:647).
//! * `fo<pid>-c`: the fleet, the relay at 198.18.0.254:67 (`cli0`): this test binary
//!   re-executed under `ip netns exec` ([`fleet_child`]), driven by commands on its stdin.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

mod common;

use std::collections::BTreeMap;
use std::io::BufRead;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{Fleet, Proc, count, server_binary};
use failover_fsm::accept::ClientIdentity;
use failover_fsm::record::LeaseClient;
use failover_fsm::{BindingStatus, Role};
use failover_proto::hash::client_bucket;
use failover_testkit::isc::dhcpd::{Dhcpd, IP, IscConfig, IscRole};
use failover_testkit::isc::leases::{ethernet, isc_binding_state};
use failover_testkit::isc::netns::{self, Netns};
use failover_tokio::FileStore;

const NAME: &str = "dhcp-isc";
const ISC_DHCP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const OUR_DHCP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const OUR_DHCP_PORT: u16 = 6767;
const RELAY: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 254);
const POOL_FIRST: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 10);
const POOL_LEN: u32 = 100;
const CLIENTS: usize = 40;
const SPLIT: u8 = 128;
/// Short enough that ISC's RECOVER-WAIT after losing its lease file (the MCLT) keeps the test
/// within a minute per role; the fleet renews before every comparison.
const MCLT: u32 = 30;
/// Set in the re-executed child: the fleet's commands come on stdin.
const FLEET_ENV: &str = "DHCP_FLEET_CHILD";

fn pool_last() -> Ipv4Addr {
    Ipv4Addr::from(u32::from(POOL_FIRST) + POOL_LEN - 1)
}

/// Sends one command to the fleet child and waits (bounded) for its `done` line; returns the
/// lines it printed for the command.
fn ask(fleet: &mut Proc, command: &str, secs: u64) -> Vec<String> {
    let mark = fleet.out.lock().unwrap().len();
    fleet.command(command);
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        {
            let out = fleet.out.lock().unwrap();
            let new: Vec<String> = out[mark..].to_vec();
            if new.iter().any(|l| l.starts_with("done ")) {
                return new;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the fleet did not finish `{command}` within {secs} s:\n{}",
            fleet.text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `lease I ADDRESS SERVER` lines.
fn leases(lines: &[String]) -> Vec<(usize, Ipv4Addr, Ipv4Addr)> {
    lines
        .iter()
        .filter_map(|l| {
            let mut w = l.strip_prefix("lease ")?.split(' ');
            Some((
                w.next()?.parse().ok()?,
                w.next()?.parse().ok()?,
                w.next()?.parse().ok()?,
            ))
        })
        .collect()
}

#[test]
fn isc_primary_and_our_secondary_serve_a_fleet_and_ours_takes_over() {
    pair_with_isc(IscRole::Primary, "isc_primary_and_our_secondary");
}

#[test]
fn our_primary_and_isc_secondary_serve_a_fleet_and_ours_takes_over() {
    pair_with_isc(IscRole::Secondary, "our_primary_and_isc_secondary");
}

/// Waits (60 s at most) until ISC's lease file and our store (its log, read as the running
/// server wrote it) agree on every address of the pool: the same binding state, and for every
/// lease in `held` (client, address) the same client on both sides.
fn databases_agree(dhcpd: &Dhcpd, store: &Path, held: &[(usize, Ipv4Addr)], when: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let isc = dhcpd.leases();
        let mut ours = BTreeMap::new();
        for l in FileStore::history(store).unwrap() {
            ours.insert(l.data.ip(), l.local);
        }
        let mut differ = Vec::new();
        for k in 0..POOL_LEN {
            let a = Ipv4Addr::from(u32::from(POOL_FIRST) + k);
            // Not written (ISC rewrites its file at start without the addresses never used):
            // an address as the pool started, FREE (§5.4).
            let theirs = isc.get(a).map_or("free", |l| l.binding_state.as_str());
            let mine = ours.get(&a).map_or("free", |l| isc_binding_state(l.status));
            if theirs != mine {
                differ.push(format!("{a}: ISC {theirs}, ours {mine}"));
            }
        }
        for &(i, a) in held {
            let mac = common::mac(i);
            let who = LeaseClient {
                client_identifier: None,
                htype: 1,
                chaddr: &mac,
            }
            .identity();
            let theirs = isc.get(a).and_then(|l| l.hardware_ethernet.clone());
            if theirs.as_deref() != Some(ethernet(&mac).as_str()) {
                differ.push(format!("{a}: client {i} in ISC's file as {theirs:?}"));
            }
            if ours.get(&a).and_then(|l| l.client.same_client(&who)) != Some(true) {
                differ.push(format!("{a}: client {i} not ours in our store"));
            }
        }
        if differ.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{when}: ISC's lease file and our store differ on {} addresses:\n{}\nISC: {}",
            differ.len(),
            differ.join("\n"),
            isc.summary()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Renews the leases of clients `0..n` every 5 s until `done()` or `deadline`, which must
/// comes first only when `done` cannot (`|| false` waits out the deadline).
fn renew_until(fleet: &mut Proc, n: usize, deadline: Instant, done: impl Fn() -> bool) {
    loop {
        let got = ask(fleet, &format!("renew 0 {n}"), 60);
        let naks = got.iter().find(|l| l.starts_with("done renew")).unwrap();
        assert!(naks.ends_with(" 0"), "no client NAKed: {naks}");
        if Instant::now() >= deadline {
            return;
        }
        for _ in 0..10 {
            if Instant::now() >= deadline {
                return;
            }
            if done() {
                return;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

/// ISC in `isc_role`, ours in the other: cold start and the split, both databases, ISC
/// SIGKILLed and its clients rebinding to us, new clients; ISC back with its lease file, then
/// without it (RECOVER); ISC down again and PARTNER-DOWN by command (the whole pool after the
/// MCLT), ISC back (RECOVER); our server SIGKILLed and restarted from its store while the
/// clients renew: both databases equal each time; ISC SIGKILLed and PARTNER-DOWN by our
/// timer, every client rebinding to us; our store read back.
fn pair_with_isc(isc_role: IscRole, test: &str) {
    if !failover_testkit::isc::netns_available(test) {
        return;
    }
    // One at a time: the namespaces are named after this process (`fo<pid>-s`, `-c`).
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let bin = server_binary();
    let t0 = Instant::now();
    let server_ns = Netns::create("s").expect("server namespace");
    let client_ns = Netns::create("c").expect("client namespace");
    netns::veth(
        &server_ns,
        "fo0",
        &format!("{ISC_DHCP}/16"),
        &client_ns,
        "cli0",
        &format!("{RELAY}/16"),
    )
    .expect("veth pair");
    // Our address on the namespace's loopback, not on `fo0`: dhcpd takes every address of its
    // interface as its own server identifier, and would ACK requests meant for us.
    let status = std::process::Command::new(IP)
        .args(["-n", server_ns.name(), "addr", "add"])
        .arg(format!("{OUR_DHCP}/32"))
        .args(["dev", "lo"])
        .status()
        .unwrap();
    assert!(status.success(), "our address in the server namespace");

    let isc_fo: SocketAddr = "127.0.0.1:647".parse().unwrap();
    let our_fo: SocketAddr = "127.0.0.2:647".parse().unwrap();
    let mut c = IscConfig::new(isc_role, NAME, isc_fo, our_fo);
    c.mclt = MCLT;
    c.split = u16::from(SPLIT);
    c.lbms = 3;
    c.pool = (POOL_FIRST, pool_last());
    let mut dhcpd = Dhcpd::new_in_netns(c, server_ns.name(), "fo0").expect("prepare dhcpd");
    dhcpd.start().unwrap();

    let (our_role, role) = match isc_role {
        IscRole::Primary => ("secondary", Role::Secondary),
        IscRole::Secondary => ("primary", Role::Primary),
    };
    let store = std::env::temp_dir().join(format!(
        "dhcp-server-isc-{}-{our_role}.log",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&store);
    let mut args: Vec<String> = ["netns", "exec", server_ns.name()]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.push(bin.display().to_string());
    args.extend(
        [
            "--listen",
            &format!("{OUR_DHCP}:{OUR_DHCP_PORT}"),
            "--pool",
            &format!("{POOL_FIRST}-{}", pool_last()),
            "--subnet",
            "16",
            "--lease-time",
            "600",
            "--status-every",
            "1",
            "--plaintext",
            "--role",
            our_role,
            "--mclt",
            &MCLT.to_string(),
            "--split",
            &SPLIT.to_string(),
            "--peer-listen",
            &our_fo.to_string(),
            "--partner",
            &isc_fo.to_string(),
            "--bind",
            "127.0.0.2",
            "--name",
            NAME,
            "--store",
            &store.display().to_string(),
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    let mut ours = Proc::spawn(std::path::Path::new(IP), &args, "our server");
    // NORMAL, and the pool split between the two (the secondary's share is BACKUP).
    ours.wait_status("NORMAL with the pool balanced", 90, |s| {
        s.contains("status: NORMAL") && count(s, "BACKUP").is_some_and(|n| n > 0)
    });
    assert_eq!(
        dhcpd.state().as_deref(),
        Some("normal"),
        "{}",
        dhcpd.log_tail(30)
    );
    eprintln!("{test}: ISC and ours NORMAL after {:?}", t0.elapsed());

    let exe = std::env::current_exe().unwrap();
    let child_args: Vec<String> = [
        "netns",
        "exec",
        client_ns.name(),
        &exe.display().to_string(),
        "fleet_child",
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
        "--quiet",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut fleet = Proc::spawn_with_env(
        std::path::Path::new(IP),
        &child_args,
        "fleet",
        &[(FLEET_ENV, "1")],
    );

    // Cold start: the split the hash assigns.
    let got = ask(&mut fleet, &format!("acquire 0 {CLIENTS}"), 90);
    let bound = leases(&got);
    assert_eq!(bound.len(), CLIENTS, "{}", fleet.text());
    let by_isc = bound.iter().filter(|(_, _, s)| *s == ISC_DHCP).count();
    // The primary serves the buckets below the split (ISC's polarity).
    let isc_serves =
        |i: usize| (client_bucket(None, &common::mac(i)) < SPLIT) == (isc_role == IscRole::Primary);
    let hashed_isc = (0..CLIENTS).filter(|&i| isc_serves(i)).count();
    eprintln!(
        "{test}: split: ISC {by_isc} / ours {} of {CLIENTS} clients; the hash gives {hashed_isc} / {}",
        CLIENTS - by_isc,
        CLIENTS - hashed_isc
    );
    let misplaced = bound
        .iter()
        .filter(|(i, _, s)| isc_serves(*i) != (*s == ISC_DHCP))
        .count();
    assert_eq!(
        misplaced,
        0,
        "each client served by its hash's server: {:?}\nISC:\n{}\nours:\n{}",
        bound
            .iter()
            .filter(|(i, _, s)| isc_serves(*i) != (*s == ISC_DHCP))
            .collect::<Vec<_>>(),
        dhcpd
            .log()
            .lines()
            .filter(|l| !l.contains("reuse_lease"))
            .collect::<Vec<_>>()
            .join("\n"),
        ours.text()
    );

    // Both lease databases hold every lease: ISC's file, and ours (every ISC lease
    // acknowledged, nothing of ours waiting).
    ours.wait_status("holding every lease", 30, |s| {
        count(s, "ACTIVE") == Some(CLIENTS) && s.contains("queued 0, unacked 0")
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while dhcpd.leases().count("active") < CLIENTS {
        assert!(
            Instant::now() < deadline,
            "ISC's lease file: {}",
            dhcpd.leases().summary()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let held: Vec<(usize, Ipv4Addr)> = bound.iter().map(|&(i, a, _)| (i, a)).collect();
    databases_agree(&dhcpd, &store, &held, "after the cold start");
    eprintln!("{test}: ISC's lease file and our store agree, holding the {CLIENTS} leases");

    // ISC killed: its clients rebind to us and keep their addresses; new clients are ours.
    dhcpd.kill();
    let got = ask(&mut fleet, &format!("rebind 0 {CLIENTS}"), 90);
    let done = got.iter().find(|l| l.starts_with("done rebind")).unwrap();
    eprintln!("{test}: after SIGKILL of ISC: {done}");
    assert_eq!(done, &format!("done rebind {CLIENTS} 0"), "{}", ours.text());
    assert!(leases(&got).iter().all(|(_, _, s)| *s == OUR_DHCP));
    let got = ask(
        &mut fleet,
        &format!("acquire {CLIENTS} {}", CLIENTS + 10),
        90,
    );
    let new = leases(&got);
    eprintln!(
        "{test}: new clients while ISC is down: {} of 10 served by us",
        new.len()
    );
    assert_eq!(new.len(), 10, "{}", ours.text());
    assert!(new.iter().all(|(_, _, s)| *s == OUR_DHCP));
    let got = ask(&mut fleet, "check", 10);
    assert!(got.iter().any(|l| l == "done check"), "{}", fleet.text());

    ours.wait_status("holding every lease", 30, |s| {
        count(s, "ACTIVE") == Some(CLIENTS + 10)
    });
    let all = CLIENTS + 10;

    // ISC back with its lease file: NORMAL again, and it learns what we leased meanwhile.
    let t = Instant::now();
    dhcpd.start().unwrap();
    ours.wait_status("NORMAL after ISC's restart", 90, |s| {
        s.contains("status: NORMAL") && s.contains("queued 0, unacked 0")
    });
    let got = ask(&mut fleet, &format!("renew 0 {all}"), 90);
    let renewed = leases(&got);
    assert_eq!(renewed.len(), all, "{}", fleet.text());
    let held: Vec<(usize, Ipv4Addr)> = renewed.iter().map(|&(i, a, _)| (i, a)).collect();
    databases_agree(&dhcpd, &store, &held, "ISC restarted with its lease file");
    eprintln!(
        "{test}: ISC restarted with its lease file: NORMAL, both databases agree on {all} \
         leases after {:?}",
        t.elapsed()
    );

    // ISC killed again, its lease file lost: it comes back in RECOVER, asks for everything
    // (UPDREQALL) and waits the MCLT before serving; then the same database again.
    dhcpd.kill();
    std::fs::write(dhcpd.lease_path(), b"").unwrap();
    ours.wait_status("COMMUNICATIONS-INTERRUPTED", 30, |s| {
        s.contains("status: COMMUNICATIONS-INTERRUPTED")
    });
    let t = Instant::now();
    let mark = dhcpd.mark();
    dhcpd.start().unwrap();
    ours.wait_status(
        "NORMAL after ISC's recovery",
        30 + u64::from(MCLT) * 2,
        |s| s.contains("status: NORMAL") && s.contains("queued 0, unacked 0"),
    );
    let recovered = dhcpd.log_since(mark);
    assert!(
        recovered.contains("Sent update request all message"),
        "ISC recovers with UPDREQALL:\n{recovered}"
    );
    let got = ask(&mut fleet, &format!("renew 0 {all}"), 90);
    let renewed = leases(&got);
    assert_eq!(renewed.len(), all, "{}", fleet.text());
    let held: Vec<(usize, Ipv4Addr)> = renewed.iter().map(|&(i, a, _)| (i, a)).collect();
    databases_agree(
        &dhcpd,
        &store,
        &held,
        "ISC restarted without its lease file",
    );
    eprintln!(
        "{test}: ISC restarted without its lease file: RECOVER, NORMAL, both databases agree \
         on {all} leases after {:?}",
        t.elapsed()
    );
    let got = ask(&mut fleet, "check", 10);
    assert!(got.iter().any(|l| l == "done check"), "{}", fleet.text());

    // ISC killed once more (its lease file kept), and the operator declares it down: until
    // the MCLT has passed we lease only our own free addresses, then the whole pool (§9.4).
    dhcpd.kill();
    ours.wait_status("COMMUNICATIONS-INTERRUPTED", 30, |s| {
        s.contains("status: COMMUNICATIONS-INTERRUPTED")
    });
    ours.command("partner-down");
    ours.wait_status("PARTNER-DOWN", 10, |s| s.contains("status: PARTNER-DOWN"));
    let since = Instant::now();
    let pool = POOL_LEN as usize;
    let got = ask(&mut fleet, &format!("acquire {all} {pool}"), 90);
    let early = leases(&got).len();
    let own_free = pool - all - early;
    let after = Duration::from_secs(u64::from(MCLT) + 4);
    // Leases in PARTNER-DOWN run the MCLT at most (§5.2.1): the fleet renews while it waits.
    renew_until(&mut fleet, pool, since + after, || false);
    let got = ask(&mut fleet, &format!("acquire {all} {pool}"), 90);
    let late = leases(&got).len();
    eprintln!(
        "{test}: PARTNER-DOWN by command: {early} new clients served from our own addresses \
         at once, {} more after the MCLT ({:?}): {} of {pool} addresses leased",
        late - early,
        since.elapsed(),
        all + late
    );
    assert!(own_free > 0, "ISC's addresses stay ISC's before the MCLT");
    assert_eq!(
        all + late,
        pool,
        "the whole pool after the MCLT: {}",
        ours.text()
    );
    let got = ask(&mut fleet, "check", 10);
    assert!(got.iter().any(|l| l == "done check"), "{}", fleet.text());

    // ISC back with its lease file while we are PARTNER-DOWN: it must recover (RECOVER,
    // RECOVER-WAIT for the MCLT) before both are NORMAL; then the same database again.
    let t = Instant::now();
    let mark = dhcpd.mark();
    dhcpd.start().unwrap();
    renew_until(
        &mut fleet,
        pool,
        t + Duration::from_secs(30 + u64::from(MCLT) * 2),
        || {
            ours.status()
                .is_some_and(|s| s.contains("status: NORMAL") && s.contains("queued 0, unacked 0"))
        },
    );
    let recovered = dhcpd.log_since(mark);
    assert!(
        recovered.contains("I move from recover to recover-wait")
            || recovered.contains("I move from recover to recover-done"),
        "ISC recovers after our PARTNER-DOWN:\n{recovered}"
    );
    let got = ask(&mut fleet, &format!("renew 0 {pool}"), 90);
    let renewed = leases(&got);
    assert_eq!(renewed.len(), pool, "{}", fleet.text());
    let held: Vec<(usize, Ipv4Addr)> = renewed.iter().map(|&(i, a, _)| (i, a)).collect();
    databases_agree(
        &dhcpd,
        &store,
        &held,
        "ISC restarted after our PARTNER-DOWN",
    );
    eprintln!(
        "{test}: ISC restarted after our PARTNER-DOWN: RECOVER, NORMAL, both databases agree \
         on {pool} leases after {:?}",
        t.elapsed()
    );
    let got = ask(&mut fleet, "check", 10);
    assert!(got.iter().any(|l| l == "done check"), "{}", fleet.text());

    // Our server SIGKILLed: every client rebinds to ISC and keeps its address; ours restarted
    // from its store while they go on renewing: NORMAL, and the same database again.
    ours.kill();
    let t = Instant::now();
    let got = ask(&mut fleet, &format!("rebind 0 {pool}"), 90);
    let done = got.iter().find(|l| l.starts_with("done rebind")).unwrap();
    eprintln!("{test}: after SIGKILL of our server: {done}");
    assert_eq!(
        done,
        &format!("done rebind {pool} 0"),
        "{}",
        dhcpd.log_tail(30)
    );
    assert!(leases(&got).iter().all(|(_, _, s)| *s == ISC_DHCP));
    // Restarted with the timer on: COMMUNICATIONS-INTERRUPTED → PARTNER-DOWN after 4 s.
    let safe_period: u32 = 4;
    let mut timed = args.clone();
    timed.extend(["--auto-partner-down".to_string(), safe_period.to_string()]);
    let ours = Proc::spawn(std::path::Path::new(IP), &timed, "our server (restarted)");
    renew_until(&mut fleet, pool, t + Duration::from_secs(90), || {
        ours.status()
            .is_some_and(|s| s.contains("status: NORMAL") && s.contains("queued 0, unacked 0"))
    });
    let got = ask(&mut fleet, &format!("renew 0 {pool}"), 90);
    let renewed = leases(&got);
    assert_eq!(renewed.len(), pool, "{}", fleet.text());
    let held: Vec<(usize, Ipv4Addr)> = renewed.iter().map(|&(i, a, _)| (i, a)).collect();
    databases_agree(&dhcpd, &store, &held, "our server restarted from its store");
    eprintln!(
        "{test}: our server restarted from its store: NORMAL, both databases agree on {pool} \
         leases after {:?}",
        t.elapsed()
    );
    let got = ask(&mut fleet, "check", 10);
    assert!(got.iter().any(|l| l == "done check"), "{}", fleet.text());

    // ISC SIGKILLed once more: PARTNER-DOWN by the timer, not before the safe period, and
    // every client rebinds to us.
    dhcpd.kill();
    let t = Instant::now();
    ours.wait_status(
        "PARTNER-DOWN by the timer",
        u64::from(safe_period) + 20,
        |s| s.contains("status: PARTNER-DOWN"),
    );
    let entered = t.elapsed();
    assert!(
        entered >= Duration::from_secs(u64::from(safe_period) - 1),
        "PARTNER-DOWN after {entered:?}, before the {safe_period}-s safe period"
    );
    let got = ask(&mut fleet, &format!("rebind 0 {pool}"), 90);
    let done = got.iter().find(|l| l.starts_with("done rebind")).unwrap();
    eprintln!(
        "{test}: PARTNER-DOWN by the timer {entered:?} after ISC's SIGKILL ({safe_period}-s \
         safe period); {done}"
    );
    assert_eq!(done, &format!("done rebind {pool} 0"), "{}", ours.text());
    assert!(leases(&got).iter().all(|(_, _, s)| *s == OUR_DHCP));
    let held: Vec<(usize, Ipv4Addr)> = leases(&got).iter().map(|&(i, a, _)| (i, a)).collect();

    // Our store, read back after SIGKILL, holds the clients' leases.
    drop(fleet);
    drop(ours);
    let file = FileStore::open(&store, role, POOL_FIRST, POOL_LEN).unwrap();
    let holders: Vec<(Ipv4Addr, ClientIdentity)> = held
        .iter()
        .map(|(i, a)| {
            let m = common::mac(*i);
            let c = LeaseClient {
                client_identifier: None,
                htype: 1,
                chaddr: &m,
            };
            (*a, c.identity())
        })
        .collect();
    for (addr, who) in holders {
        let r = file.memory().get(addr).unwrap();
        assert_eq!(r.local.status, BindingStatus::Active, "{addr}");
        assert_eq!(r.local.client.same_client(&who), Some(true), "{addr}");
    }
    let _ = std::fs::remove_file(&store);
    drop(dhcpd);
    drop(client_ns);
    drop(server_ns);
}

/// Not a test: the fleet, run by [`pair_with_isc`]
/// inside the client namespace (this binary re-executed with `DHCP_FLEET_CHILD` set). Reads
/// commands from stdin — `acquire A B`, `rebind A B`, `renew A B`, `check` — and answers each with
/// `lease I ADDRESS SERVER` lines and a `done …` line. Without the variable it does nothing.
#[test]
#[ignore = "child process of the ISC pairing test"]
fn fleet_child() {
    if std::env::var(FLEET_ENV).is_err() {
        return;
    }
    let socket = UdpSocket::bind((RELAY, 67)).expect("the relay port in the client namespace");
    let servers = vec![
        SocketAddr::from((ISC_DHCP, 67)),
        SocketAddr::from((OUR_DHCP, OUR_DHCP_PORT)),
    ];
    let mut fleet = Fleet::new(socket, servers);
    let say = |line: String| {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    };
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let words: Vec<&str> = line.split_whitespace().collect();
        let range =
            |w: &[&str]| -> std::ops::Range<usize> { w[1].parse().unwrap()..w[2].parse().unwrap() };
        match words.first().copied() {
            Some("acquire") => {
                let who = range(&words);
                if fleet.clients.len() < who.end {
                    fleet.add_clients(who.end - fleet.clients.len());
                }
                let n = fleet.acquire(who.clone(), 8);
                for i in who {
                    if let Some(h) = fleet.held(i) {
                        say(format!("lease {i} {} {}", h.address, h.server));
                    }
                }
                say(format!("done acquire {n}"));
            }
            Some(command @ ("rebind" | "renew")) => {
                let who = range(&words);
                let (kept, naks) = fleet.extend(who.clone(), command == "rebind");
                for i in who {
                    if let Some(h) = fleet.held(i) {
                        say(format!("lease {i} {} {}", h.address, h.server));
                    }
                }
                say(format!("done {command} {kept} {naks}"));
            }
            Some("check") => {
                fleet.check_no_double_holding();
                say("done check".into());
            }
            _ => say(format!("done unknown {line}")),
        }
    }
}
