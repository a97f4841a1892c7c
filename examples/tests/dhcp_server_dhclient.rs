//! The `dhcp-server` pair serving real ISC `dhclient` processes (isc-dhcp-client): direct
//! clients broadcasting on one LAN, no relay. Skipped with a note when dhclient, iproute2 or
//! the right to create network namespaces is missing (`FAILOVER_REQUIRE_TOOLS=1` makes that a
//! failure). Nothing is installed here.
//!
//! Namespaces named after this process: `fo<pid>-lan` holds a bridge; the primary
//! (`-p`, 198.18.0.1) and the secondary (`-s`, 198.18.0.2) each listen on 0.0.0.0:67 of their
//! own namespace; each dhclient (`-d0`…) has one interface on the bridge. dhclient runs a
//! script of ours (not dhclient-script, which would rewrite the host's resolv.conf): it sets
//! the address and logs each event.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

mod common;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Proc, mac, server_binary};
use failover_proto::hash::client_bucket;
use failover_testkit::isc::dhcpd::IP;
use failover_testkit::isc::netns::{self, Netns};

const DHCLIENT: &str = "/usr/sbin/dhclient";
const PRIMARY: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const SECONDARY: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const POOL: &str = "198.18.1.10-198.18.1.59";
const SPLIT: u8 = 128;
const MCLT: u32 = 10;
const LEASE: u32 = 20;

/// dhclient, iproute2 and namespaces, or a printed reason to skip.
fn tools(test: &str) -> bool {
    let mut missing = Vec::new();
    for tool in [DHCLIENT, IP] {
        if !Path::new(tool).exists() {
            missing.push(tool.to_string());
        }
    }
    if missing.is_empty() && !netns::can_create_netns() {
        missing.push("the right to create network namespaces (root)".to_string());
    }
    if missing.is_empty() {
        return true;
    }
    let what = missing.join(", ");
    if std::env::var("FAILOVER_REQUIRE_TOOLS").is_ok_and(|v| v == "1") {
        panic!("{test}: FAILOVER_REQUIRE_TOOLS=1 but missing: {what}");
    }
    eprintln!(
        "note: skipping {test}: missing {what} (apt-get install isc-dhcp-client iproute2; run as root)"
    );
    false
}

fn ip(args: &[&str]) {
    let out = Command::new(IP).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A veth from the LAN's bridge into `ns`, as `dev` there (with `cidr`, if any).
fn attach(lan: &Netns, port: &str, ns: &Netns, dev: &str, cidr: Option<&str>, mac: Option<&str>) {
    ip(&[
        "-n",
        lan.name(),
        "link",
        "add",
        port,
        "type",
        "veth",
        "peer",
        "name",
        dev,
        "netns",
        ns.name(),
    ]);
    ip(&["-n", lan.name(), "link", "set", port, "master", "br0", "up"]);
    if let Some(m) = mac {
        ip(&["-n", ns.name(), "link", "set", dev, "address", m]);
    }
    if let Some(c) = cidr {
        ip(&["-n", ns.name(), "addr", "add", c, "dev", dev]);
    }
    ip(&["-n", ns.name(), "link", "set", dev, "up"]);
    ip(&["-n", ns.name(), "link", "set", "lo", "up"]);
    // Replies to clients without an address go to 255.255.255.255: a route for it.
    if cidr.is_some() {
        ip(&["-n", ns.name(), "route", "add", "default", "dev", dev]);
    }
}

/// What the script logged for one event: reason, address, server identifier.
type Event = (String, String, String);

/// One dhclient's files: its script, configuration, lease file and event log.
struct Client {
    ns: Netns,
    mac: [u8; 6],
    log: PathBuf,
    proc: Option<Proc>,
}

impl Client {
    /// `(reason, address, server)` of each event the script logged.
    fn events(&self) -> Vec<Event> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let mut w = l.split(' ');
                Some((
                    w.next()?.to_string(),
                    w.next().unwrap_or("").to_string(),
                    w.next().unwrap_or("").to_string(),
                ))
            })
            .collect()
    }

    /// The address on its interface, as `ip` shows it.
    fn has_address(&self, a: &str) -> bool {
        let out = Command::new(IP)
            .args(["-n", self.ns.name(), "-4", "addr", "show", "dev", "eth0"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).contains(&format!("inet {a}/"))
    }
}

fn mac_text(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn server(
    bin: &Path,
    ns: &Netns,
    role: &str,
    me: Ipv4Addr,
    partner: Ipv4Addr,
    store: &Path,
) -> Proc {
    let mut args: Vec<String> = vec!["netns".into(), "exec".into(), ns.name().into()];
    args.push(bin.display().to_string());
    for a in [
        "--listen",
        "0.0.0.0:67",
        "--server-id",
        &me.to_string(),
        "--pool",
        POOL,
        "--subnet",
        "16",
        "--lease-time",
        &LEASE.to_string(),
        "--mclt",
        &MCLT.to_string(),
        "--split",
        &SPLIT.to_string(),
        "--status-every",
        "1",
        "--plaintext",
        "--role",
        role,
        "--peer-listen",
        &format!("{me}:647"),
        "--partner",
        &format!("{partner}:647"),
        "--name",
        "dhclient-test",
        "--store",
        &store.display().to_string(),
    ] {
        args.push(a.to_string());
    }
    let name = if role == "primary" {
        "primary"
    } else {
        "secondary"
    };
    Proc::spawn(Path::new(IP), &args, name)
}

/// Three dhclients get leases from the pair, renew, and keep their addresses when the primary
/// is SIGKILLed: its clients rebind with the secondary at T2.
#[test]
fn dhclients_keep_their_addresses_when_the_primary_is_killed() {
    let test = "dhclients_keep_their_addresses_when_the_primary_is_killed";
    if !tools(test) {
        return;
    }
    let bin = server_binary();
    let dir = std::env::temp_dir().join(format!("dhcp-dhclient-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let lan = Netns::create("lan").unwrap();
    ip(&["-n", lan.name(), "link", "add", "br0", "type", "bridge"]);
    ip(&["-n", lan.name(), "link", "set", "br0", "up"]);
    let p_ns = Netns::create("p").unwrap();
    let s_ns = Netns::create("s").unwrap();
    attach(&lan, "lp", &p_ns, "p0", Some("198.18.0.1/16"), None);
    attach(&lan, "ls", &s_ns, "s0", Some("198.18.0.2/16"), None);

    // Two clients the primary serves by the hash, one the secondary serves.
    let mut macs: Vec<[u8; 6]> = (0..64)
        .map(|i| mac(i + 1000))
        .filter(|m| client_bucket(None, m) < SPLIT)
        .take(2)
        .collect();
    macs.extend(
        (0..64)
            .map(|i| mac(i + 1000))
            .find(|m| client_bucket(None, m) >= SPLIT),
    );
    assert_eq!(macs.len(), 3);

    let primary = server(
        &bin,
        &p_ns,
        "primary",
        PRIMARY,
        SECONDARY,
        &dir.join("p.log"),
    );
    let secondary = server(
        &bin,
        &s_ns,
        "secondary",
        SECONDARY,
        PRIMARY,
        &dir.join("s.log"),
    );
    primary.wait_status("NORMAL", 40, |s| s.contains("status: NORMAL"));
    secondary.wait_status("NORMAL with BACKUP addresses", 40, |s| {
        s.contains("status: NORMAL") && common::count(s, "BACKUP").is_some_and(|n| n > 0)
    });
    let mut primary = primary;

    let mut clients = Vec::new();
    for (k, m) in macs.iter().enumerate() {
        let ns = Netns::create(&format!("d{k}")).unwrap();
        attach(
            &lan,
            &format!("ld{k}"),
            &ns,
            "eth0",
            None,
            Some(&mac_text(m)),
        );
        let log = dir.join(format!("d{k}.events"));
        let script = dir.join(format!("d{k}.sh"));
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\n\
                 # Logs the event and sets the address; nothing else of the system is touched.\n\
                 PATH=/usr/sbin:/sbin:/usr/bin:/bin\n\
                 echo \"$reason ${{new_ip_address:-}} ${{new_dhcp_server_identifier:-}}\" >> {log}\n\
                 case \"$reason\" in\n\
                 BOUND|RENEW|REBIND|REBOOT)\n\
                   if [ -n \"$old_ip_address\" ] && [ \"$old_ip_address\" != \"$new_ip_address\" ]; then\n\
                     ip -4 addr del \"$old_ip_address/16\" dev \"$interface\"\n\
                   fi\n\
                   ip -4 addr replace \"$new_ip_address/16\" dev \"$interface\" ;;\n\
                 EXPIRE|FAIL|RELEASE|STOP)\n\
                   [ -n \"$old_ip_address\" ] && ip -4 addr del \"$old_ip_address/16\" dev \"$interface\" ;;\n\
                 esac\n\
                 exit 0\n",
                log = log.display()
            ),
        )
        .unwrap();
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let conf = dir.join(format!("d{k}.conf"));
        // Quick retries: the test waits seconds, not minutes.
        std::fs::write(
            &conf,
            "timeout 30;\nretry 1;\ninitial-interval 1;\nbackoff-cutoff 2;\nrequest subnet-mask;\n",
        )
        .unwrap();
        let args: Vec<String> = [
            "netns",
            "exec",
            ns.name(),
            DHCLIENT,
            "-d",
            "-4",
            "-v",
            "-cf",
            &conf.display().to_string(),
            "-lf",
            &dir.join(format!("d{k}.leases")).display().to_string(),
            "-pf",
            &dir.join(format!("d{k}.pid")).display().to_string(),
            "-sf",
            &script.display().to_string(),
            "eth0",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let proc = Proc::spawn(Path::new(IP), &args, "dhclient");
        clients.push(Client {
            ns,
            mac: *m,
            log,
            proc: Some(proc),
        });
    }

    // Waits (bounded) until `ok` holds for every client's events.
    let wait = |what: &str, secs: u64, ok: &dyn Fn(&[Event]) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if clients.iter().all(|c| ok(&c.events())) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "not every dhclient {what} within {secs} s: {:?}\nprimary:\n{}\nsecondary:\n{}",
                clients.iter().map(Client::events).collect::<Vec<_>>(),
                primary.text(),
                secondary.text()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    let t0 = Instant::now();
    wait("BOUND", 30, &|e| e.iter().any(|(r, _, _)| r == "BOUND"));
    let bound: Vec<(String, String)> = clients
        .iter()
        .map(|c| {
            let e = c.events();
            let (_, a, s) = e.iter().find(|(r, _, _)| r == "BOUND").unwrap().clone();
            (a, s)
        })
        .collect();
    eprintln!("dhclients bound after {:?}: {bound:?}", t0.elapsed());
    let mut addresses: Vec<&String> = bound.iter().map(|(a, _)| a).collect();
    addresses.sort();
    addresses.dedup();
    assert_eq!(addresses.len(), clients.len(), "distinct addresses");
    for (c, (a, s)) in clients.iter().zip(&bound) {
        assert!(c.has_address(a), "{a} on the client's interface");
        let expected = if client_bucket(None, &c.mac) < SPLIT {
            PRIMARY
        } else {
            SECONDARY
        };
        assert_eq!(s, &expected.to_string(), "the hash's server");
    }
    // A first lease is at most the MCLT: T1 comes within 5 s.
    wait("renewed", 20, &|e| e.iter().any(|(r, _, _)| r == "RENEW"));
    let renewed = t0.elapsed();

    primary.kill();
    let killed = Instant::now();
    let before: Vec<usize> = clients.iter().map(|c| c.events().len()).collect();
    // Each client extends its lease again after the kill: the primary's clients by REBIND
    // with the secondary (at T2 of a 20 s lease at most), the other by RENEW.
    let deadline = Instant::now() + Duration::from_secs(u64::from(LEASE) + 10);
    loop {
        let done = clients.iter().zip(&before).all(|(c, &n)| {
            c.events()[n..]
                .iter()
                .any(|(r, _, s)| (r == "RENEW" || r == "REBIND") && s == &SECONDARY.to_string())
        });
        if done {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not every dhclient extended its lease with the secondary: {:?}\n{}",
            clients.iter().map(Client::events).collect::<Vec<_>>(),
            secondary.text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let rebound = killed.elapsed();
    let mut from_secondary = 0;
    for (c, (a, _)) in clients.iter().zip(&bound) {
        let e = c.events();
        // The same address all along, never lost.
        for (r, addr, _) in &e {
            assert!(
                !matches!(r.as_str(), "EXPIRE" | "FAIL" | "RELEASE" | "STOP"),
                "a dhclient's {r}: {e:?}"
            );
            if !addr.is_empty() {
                assert_eq!(addr, a, "a dhclient changed address: {e:?}");
            }
        }
        // dhclient reports an ACK got while rebinding as RENEW too: the server tells.
        from_secondary += e
            .iter()
            .filter(|(r, _, s)| r != "BOUND" && s == &SECONDARY.to_string())
            .count();
        assert!(c.has_address(a), "{a} still on the client's interface");
    }
    eprintln!(
        "dhclients renewed by {renewed:?}; after SIGKILL of the primary, all extended with the \
         secondary within {rebound:?} ({from_secondary} extensions by the secondary), each \
         on its first address; events: {:?}",
        clients.iter().map(Client::events).collect::<Vec<_>>()
    );
    for c in &mut clients {
        drop(c.proc.take());
    }
    drop(clients);
    drop(secondary);
    drop(primary);
    drop(s_ns);
    drop(p_ns);
    drop(lan);
    let _ = std::fs::remove_dir_all(&dir);
}
