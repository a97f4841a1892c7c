//! The `smoltcp-peer` example paired with a live ISC dhcpd 4.4 over a TAP interface, in a
//! network namespace of its own (`fo<pid>-<tag>`): the kernel's end of the TAP, 198.18.64.1,
//! is dhcpd's failover address; our end, 198.18.64.2, is smoltcp's, reached only through the
//! TAP (the example opens it under `ip netns exec`). Skipped with a note when dhcpd, iproute2,
//! `/dev/net/tun` or the right to create namespaces is missing (`FAILOVER_REQUIRE_TOOLS=1` makes
//! that a failure).
//!
//! * ISC primary, our secondary: both NORMAL; ISC's pool balancing sends us its BACKUP
//!   addresses (BNDUPD, ISC → us), committed and acknowledged on our side and BACKUP in ISC's
//!   lease file; our `--updates` leases (BNDUPD, us → ISC) ACTIVE in ISC's lease file with the
//!   clients' hardware addresses; ISC SIGKILLed, restarted from its lease file: both NORMAL
//!   again.
//! * Our primary, ISC secondary: we connect (§8.2); both NORMAL; our balancing gives ISC half
//!   the pool as BACKUP and our leases reach its lease file; ISC killed and restarted: NORMAL.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

mod common;

use std::io::{BufRead, BufReader, Read};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use failover_testkit::isc::dhcpd::{Dhcpd, IP, IscConfig, IscRole, stamp};
use failover_testkit::isc::leases::Leases;
use failover_testkit::isc::netns::Netns;

const NAME: &str = "smol-isc";
const TAP: &str = "fotap0";
/// The kernel's end of the TAP: dhcpd's interface and failover address.
const ISC_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 64, 1);
/// smoltcp's end.
const OUR_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 64, 2);
/// The harness's pool: 198.18.1.0-198.18.1.63, in its `subnet 198.18.0.0/16` (hence /16 on the
/// TAP: the interface's subnet is the one dhcpd declares).
const POOL: (Ipv4Addr, Ipv4Addr) = (Ipv4Addr::new(198, 18, 1, 0), Ipv4Addr::new(198, 18, 1, 63));
/// Leases we grant once NORMAL.
const UPDATES: usize = 3;
/// Every wait is bounded by this.
const WAIT: Duration = Duration::from_secs(40);
const TUN: &str = "/dev/net/tun";
/// Kills the child when the thread that started it dies (util-linux; used when present).
const SETPRIV: &str = "/usr/bin/setpriv";

/// The tools, the right to make namespaces, and the TUN/TAP driver.
fn lab_available(test: &str) -> bool {
    if !failover_testkit::isc::netns_available(test) {
        return false;
    }
    if Path::new(TUN).exists() {
        return true;
    }
    if std::env::var("FAILOVER_REQUIRE_TOOLS").is_ok_and(|v| v == "1") {
        panic!("{test}: FAILOVER_REQUIRE_TOOLS=1 but {TUN} is missing");
    }
    eprintln!("note: skipping {test}: missing {TUN} (modprobe tun)");
    false
}

/// Runs `ip` with `args`; fails the test with its stderr.
fn ip(args: &[&str]) {
    let out = Command::new(IP).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The namespace with its TAP: `fotap0`, 198.18.64.1/16 on the kernel's side, up, no IPv6.
/// Deleting the namespace deletes the TAP.
fn lab(tag: &str) -> Netns {
    let ns = Netns::create(tag).expect("namespace");
    let n = ns.name().to_string();
    ip(&["-n", &n, "tuntap", "add", "dev", TAP, "mode", "tap"]);
    let _ = Command::new(IP)
        .args(["netns", "exec", &n, "sysctl", "-qw"])
        .arg(format!("net.ipv6.conf.{TAP}.disable_ipv6=1"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    ip(&["-n", &n, "addr", "add", &format!("{ISC_IP}/16"), "dev", TAP]);
    ip(&["-n", &n, "link", "set", TAP, "up"]);
    ns
}

/// Our smoltcp peer, run in the namespace; every line it prints is kept. Killed by PID
/// (SIGKILL) and reaped when dropped.
struct Ours {
    child: Mutex<Option<Child>>,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Ours {
    fn spawn(ns: &Netns, role: &str, mrd: u32) -> Ours {
        let bin = common::example_binary("smoltcp-peer");
        let mut cmd = if Path::new(SETPRIV).exists() {
            let mut c = Command::new(SETPRIV);
            c.args(["--pdeathsig", "KILL", "--", IP]);
            c
        } else {
            Command::new(IP)
        };
        cmd.args(["netns", "exec", ns.name()])
            .arg(bin)
            .args(["--tap", TAP, "--ip", &format!("{OUR_IP}/16")])
            .args([
                "--partner",
                &ISC_IP.to_string(),
                "--role",
                role,
                "--name",
                NAME,
            ])
            .args(["--pool", &format!("{}-{}", POOL.0, POOL.1)])
            .args(["--mclt", "10", "--mrd", &mrd.to_string()])
            .args(["--updates", &UPDATES.to_string(), "--status-every", "1"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("the example starts");
        let lines = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    lines.lock().unwrap().push(format!("{} {line}", stamp()));
                }
            });
        }
        Ours {
            child: Mutex::new(Some(child)),
            lines,
        }
    }

    /// How many lines so far: a mark for [`Ours::wait`].
    fn mark(&self) -> usize {
        self.lines.lock().unwrap().len()
    }

    /// The lines from `mark` on, without their stamps.
    fn since(&self, mark: usize) -> Vec<String> {
        let lines = self.lines.lock().unwrap();
        lines[mark.min(lines.len())..]
            .iter()
            .map(|l| l.split_once(' ').map_or(l.clone(), |(_, r)| r.to_string()))
            .collect()
    }

    fn text(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// Waits until a line after `mark` satisfies `ok`; returns it, or fails with our output
    /// and ISC's log tail.
    fn wait(&self, mark: usize, what: &str, isc: &Dhcpd, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(l) = self.since(mark).into_iter().find(|l| ok(l)) {
                return l;
            }
            assert!(
                Instant::now() < deadline,
                "our peer never printed {what} within {WAIT:?}; its output:\n{}\nISC log tail:\n{}",
                self.text(),
                isc.log_tail(40)
            );
            if let Some(status) = self.exited() {
                panic!(
                    "our peer exited ({status}) before printing {what}; its output:\n{}",
                    self.text()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn exited(&self) -> Option<std::process::ExitStatus> {
        self.child.lock().unwrap().as_mut()?.try_wait().ok()?
    }

    /// Our last status line, as `word value` pairs.
    fn status(&self) -> Option<Status> {
        self.since(0)
            .into_iter()
            .rev()
            .find_map(|l| l.strip_prefix("status: ").map(Status::parse))
    }
}

impl Drop for Ours {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            eprintln!("--- our smoltcp peer ---\n{}\n---", self.text());
        }
    }
}

/// A status line: `STATE partner STATE link L queued N unacked N free N backup N ...`.
#[derive(Debug, Clone)]
struct Status {
    state: String,
    partner: String,
    fields: Vec<(String, String)>,
}

impl Status {
    fn parse(line: &str) -> Status {
        let mut words = line.split_whitespace();
        let state = words.next().unwrap_or_default().to_string();
        let rest: Vec<&str> = words.collect();
        let fields: Vec<(String, String)> = rest
            .chunks(2)
            .filter(|c| c.len() == 2)
            .map(|c| (c[0].to_string(), c[1].to_string()))
            .collect();
        let partner = fields
            .iter()
            .find(|(k, _)| k == "partner")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        Status {
            state,
            partner,
            fields,
        }
    }

    fn get(&self, key: &str) -> u64 {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0)
    }

    fn normal(&self) -> bool {
        self.state == "NORMAL" && self.partner == "NORMAL"
    }
}

fn is_normal(line: &str) -> bool {
    line.strip_prefix("status: ")
        .is_some_and(|s| Status::parse(s).normal())
}

/// `granted A to MAC for S s` lines: (address, mac).
fn granted(lines: &[String]) -> Vec<(Ipv4Addr, String)> {
    lines
        .iter()
        .filter_map(|l| {
            let mut w = l.strip_prefix("granted ")?.split(' ');
            let a = w.next()?.parse().ok()?;
            let _to = w.next()?;
            Some((a, w.next()?.to_string()))
        })
        .collect()
}

fn isc_config(role: IscRole) -> IscConfig {
    let mut c = IscConfig::new(
        role,
        NAME,
        SocketAddr::from((ISC_IP, 647)),
        SocketAddr::from((OUR_IP, 647)),
    );
    c.mclt = 10;
    c.pool = POOL;
    c
}

/// Waits (bounded) until ISC's lease file satisfies `ok`.
fn wait_leases(isc: &Dhcpd, what: &str, ok: impl Fn(&Leases) -> bool) -> Leases {
    let deadline = Instant::now() + WAIT;
    loop {
        let l = isc.leases();
        if ok(&l) {
            return l;
        }
        assert!(
            Instant::now() < deadline,
            "ISC's lease file never showed {what}: {}\nlog tail:\n{}",
            l.summary(),
            isc.log_tail(40)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits (bounded) until ISC logs that it moved to `state` after `mark`.
fn wait_isc_state(isc: &Dhcpd, mark: usize, state: &str) {
    let deadline = Instant::now() + WAIT;
    let needle = format!(" to {state}");
    while !isc.log_since(mark).lines().any(|l| l.contains(&needle)) {
        assert!(
            Instant::now() < deadline,
            "ISC did not move to {state} within {WAIT:?}; log tail:\n{}",
            isc.log_tail(40)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Our leases in ISC's lease file: ACTIVE, for the hardware address we sent.
fn assert_our_leases_at_isc(isc: &Dhcpd, ours: &[(Ipv4Addr, String)]) {
    let leases = wait_leases(isc, "our ACTIVE leases", |l| {
        ours.iter()
            .all(|(a, _)| l.get(*a).is_some_and(|x| x.binding_state == "active"))
    });
    for (a, mac) in ours {
        let l = leases.get(*a).unwrap();
        assert_eq!(l.binding_state, "active", "{a}: {}", leases.summary());
        assert_eq!(
            l.hardware_ethernet.as_deref(),
            Some(mac.as_str()),
            "{a}: {l:?}"
        );
    }
}

/// ISC killed by PID (a crash) and restarted from its lease file: both back to NORMAL.
fn isc_restart(isc: &mut Dhcpd, ours: &Ours, test: &str) {
    let t = Instant::now();
    let mark = ours.mark();
    isc.kill();
    ours.wait(mark, "the connection's end", isc, |l| {
        l.starts_with("disconnected") || l.contains("COMMUNICATIONS-INTERRUPTED")
    });
    let isc_mark = isc.mark();
    let mark = ours.mark();
    isc.start().unwrap();
    wait_isc_state(isc, isc_mark, "normal");
    ours.wait(mark, "NORMAL after ISC's restart", isc, is_normal);
    eprintln!(
        "{test}: ISC killed and restarted, both NORMAL again after {:?}",
        t.elapsed()
    );
}

#[test]
fn isc_primary_and_our_smoltcp_secondary() {
    const T: &str = "isc_primary_and_our_smoltcp_secondary";
    if !lab_available(T) {
        return;
    }
    let t0 = Instant::now();
    let ns = lab("p");
    let ours = Ours::spawn(&ns, "secondary", 6);
    let mut isc = Dhcpd::new_in_netns(isc_config(IscRole::Primary), ns.name(), TAP).unwrap();
    isc.start().unwrap();

    ours.wait(0, "NORMAL", &isc, is_normal);
    wait_isc_state(&isc, 0, "normal");
    eprintln!("{T}: both NORMAL after {:?}", t0.elapsed());

    // ISC → us: its pool balancing hands the secondary half the pool as BACKUP (§5.4); each
    // BNDUPD committed to our table and acknowledged (BNDACK) — then ISC records BACKUP.
    let half = 32;
    ours.wait(
        0,
        "ISC's BACKUP addresses committed and acknowledged",
        &isc,
        |l| {
            l.strip_prefix("status: ").is_some_and(|s| {
                let s = Status::parse(s);
                s.get("backup") + s.get("active") == half
                    && s.get("committed") >= half
                    && s.get("bndack-sent") >= half
            })
        },
    );
    let committed: Vec<String> = ours
        .since(0)
        .into_iter()
        .filter(|l| l.starts_with("committed ") && l.contains(" BACKUP (sent as BACKUP)"))
        .collect();
    assert_eq!(committed.len() as u64, half, "{committed:?}");
    // ISC records the move once we acknowledged it: BACKUP, for every address we committed.
    let leases = wait_leases(&isc, "32 BACKUP", |l| {
        l.count("backup") + l.count("active") == half as usize
    });
    for l in &committed {
        let a: Ipv4Addr = l.split(' ').nth(1).unwrap().parse().unwrap();
        let theirs = leases.get(a).map(|x| x.binding_state.as_str());
        assert!(
            matches!(theirs, Some("backup" | "active")),
            "{a} committed as BACKUP here, {theirs:?} at ISC: {}",
            leases.summary()
        );
    }
    eprintln!(
        "{T}: ISC's 32 BACKUP committed on our side after {:?}",
        t0.elapsed()
    );

    // Us → ISC: our leases (from our BACKUP addresses), acknowledged, ACTIVE at ISC.
    let _ = ours.wait(0, "our leases acknowledged", &isc, |l| {
        l.strip_prefix("status: ")
            .is_some_and(|s| Status::parse(s).get("acked") >= UPDATES as u64)
    });
    let ours_granted = granted(&ours.since(0));
    assert_eq!(ours_granted.len(), UPDATES, "{}", ours.text());
    for (a, _) in &ours_granted {
        assert!(
            committed
                .iter()
                .any(|l| l.starts_with(&format!("committed {a} "))),
            "we leased {a}, which was not one of the BACKUP addresses ISC gave us"
        );
        assert!(
            ours.since(0)
                .iter()
                .any(|l| l == &format!("acked {a} ACTIVE")),
            "{}",
            ours.text()
        );
    }
    assert_our_leases_at_isc(&isc, &ours_granted);
    eprintln!(
        "{T}: our {UPDATES} leases ACTIVE in ISC's lease file after {:?}",
        t0.elapsed()
    );

    isc_restart(&mut isc, &ours, T);
    // ISC came back from its lease file: our leases are still there.
    assert_our_leases_at_isc(&isc, &ours_granted);
    let s = ours.status().unwrap();
    assert_eq!(s.get("rejected"), 0, "{}", ours.text());
    assert!(!isc.log().contains("rejected"), "{}", isc.log_tail(60));
    eprintln!("{T}: done in {:?}", t0.elapsed());
}

#[test]
fn our_smoltcp_primary_and_isc_secondary() {
    const T: &str = "our_smoltcp_primary_and_isc_secondary";
    if !lab_available(T) {
        return;
    }
    let t0 = Instant::now();
    let ns = lab("s");
    let ours = Ours::spawn(&ns, "primary", 6);
    let mut isc = Dhcpd::new_in_netns(isc_config(IscRole::Secondary), ns.name(), TAP).unwrap();
    isc.start().unwrap();

    ours.wait(0, "NORMAL", &isc, is_normal);
    wait_isc_state(&isc, 0, "normal");
    eprintln!("{T}: both NORMAL after {:?}", t0.elapsed());

    // Us → ISC: our balancing gives the secondary half the pool as BACKUP, then our leases.
    let _ = ours.wait(0, "our updates acknowledged", &isc, |l| {
        l.strip_prefix("status: ").is_some_and(|s| {
            let s = Status::parse(s);
            s.get("acked") >= 32 + UPDATES as u64 && s.get("queued") == 0
        })
    });
    wait_leases(&isc, "32 BACKUP", |l| l.count("backup") == 32);
    let ours_granted = granted(&ours.since(0));
    assert_eq!(ours_granted.len(), UPDATES, "{}", ours.text());
    assert_our_leases_at_isc(&isc, &ours_granted);
    eprintln!(
        "{T}: BACKUP half and our {UPDATES} leases at ISC after {:?}",
        t0.elapsed()
    );

    isc_restart(&mut isc, &ours, T);
    // ISC came back from its lease file: our leases are still there.
    assert_our_leases_at_isc(&isc, &ours_granted);
    let s = ours.status().unwrap();
    assert_eq!(s.get("rejected"), 0, "{}", ours.text());
    eprintln!("{T}: done in {:?}", t0.elapsed());
}
