//! The `dhcp-server` example with DHCP clients: a fleet written with dhcproto on loopback, two
//! servers as failover partners (child processes, stopped by PID), and bad input.
//!
//! The fleet pretends to be a relay: every message carries giaddr 127.0.0.1 and goes to both
//! servers (127.0.0.1 and 127.0.0.2, unprivileged ports), and the replies come back to the
//! fleet's socket (`--relay-port`). Each client records the leases it holds and from whom; the
//! oracle checks on every ACK that no address is held by two clients at once.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dhcproto::v4::{DhcpOption, HType, Message, MessageType, Opcode, OptionCode};
use dhcproto::{Decodable, Decoder, Encodable};
use failover_proto::hash::client_bucket;

const PRIMARY_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);
const SECONDARY_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
const RELAY: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);
const POOL: &str = "10.77.0.10-10.77.0.249";
const SPLIT: u8 = 128;

fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn free_udp_port(ip: Ipv4Addr) -> u16 {
    UdpSocket::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The `dhcp-server` example next to this test's executable, built by cargo (a no-op when up
/// to date): `cargo test --test dhcp_server` does not build examples itself.
fn server_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(Path::parent).unwrap().to_path_buf();
    let target_dir = profile_dir.parent().unwrap();
    let profile = profile_dir
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args([
        "build",
        "--quiet",
        "-p",
        "failover-examples",
        "--example",
        "dhcp-server",
    ])
    .current_dir(env!("CARGO_MANIFEST_DIR"))
    .env("CARGO_TARGET_DIR", target_dir)
    .stdin(Stdio::null());
    match profile.as_str() {
        "debug" => {}
        "release" => {
            cmd.arg("--release");
        }
        other => {
            cmd.args(["--profile", other]);
        }
    }
    let mut build = Proc::new(cmd.spawn().expect("cargo runs"), "cargo");
    let deadline = Instant::now() + Duration::from_secs(600);
    let status = loop {
        if let Some(s) = build.child.as_mut().unwrap().try_wait().unwrap() {
            build.child = None;
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "building the example took too long"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        status.success(),
        "cargo build --example dhcp-server: {status}"
    );
    let bin = profile_dir
        .join("examples")
        .join(format!("dhcp-server{}", std::env::consts::EXE_SUFFIX));
    assert!(bin.is_file(), "no example at {}", bin.display());
    bin
}

/// A child process, SIGKILLed by its PID and reaped on every way out; its output collected.
struct Proc {
    child: Option<Child>,
    name: &'static str,
    out: Arc<Mutex<Vec<String>>>,
}

impl Proc {
    fn new(child: Child, name: &'static str) -> Proc {
        Proc {
            child: Some(child),
            name,
            out: Arc::default(),
        }
    }

    fn spawn(bin: &Path, args: &[String], name: &'static str) -> Proc {
        let child = Command::new(bin)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the server starts");
        let mut p = Proc::new(child, name);
        let c = p.child.as_mut().unwrap();
        for stream in [
            Box::new(c.stdout.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(c.stderr.take().unwrap()),
        ] {
            let out = p.out.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    out.lock().unwrap().push(line);
                }
            });
        }
        p
    }

    fn text(&self) -> String {
        self.out.lock().unwrap().join("\n")
    }

    /// The last status line.
    fn status(&self) -> Option<String> {
        let out = self.out.lock().unwrap();
        out.iter().rev().find(|l| l.contains("status: ")).cloned()
    }

    /// Waits (bounded) until the last status line satisfies `ok`.
    fn wait_status(&self, what: &str, secs: u64, ok: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            if self.status().is_some_and(|s| ok(&s)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "{}: not {what} within {secs} s:\n{}",
            self.name,
            self.text()
        );
    }

    /// SIGKILL, then reap.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `N WORD` in a status line (`12 ACTIVE`).
fn count(status: &str, word: &str) -> Option<usize> {
    let words: Vec<&str> = status.split([' ', ',']).filter(|w| !w.is_empty()).collect();
    let i = words.iter().position(|w| *w == word)?;
    words
        .get(i.checked_sub(1)?)?
        .replace(['\u{202f}', ','], "")
        .parse()
        .ok()
}

// ----- the client fleet -----

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Held {
    address: Ipv4Addr,
    server: Ipv4Addr,
    until: Instant,
}

#[derive(Debug, Clone)]
struct Client {
    mac: [u8; 6],
    lease: Option<Held>,
    /// Every lease this client was granted, with the server.
    history: Vec<(Ipv4Addr, Ipv4Addr)>,
}

/// One client message: the client, its type, ciaddr, requested address, server id.
type Ask = (
    usize,
    MessageType,
    Ipv4Addr,
    Option<Ipv4Addr>,
    Option<Ipv4Addr>,
);

struct Fleet {
    socket: UdpSocket,
    servers: Vec<SocketAddr>,
    clients: Vec<Client>,
    round: u32,
    acks: HashMap<Ipv4Addr, usize>,
}

fn mac(i: usize) -> [u8; 6] {
    [0x02, 0x5e, 0x00, 0x31, (i >> 8) as u8, i as u8]
}

/// A client message relayed from 127.0.0.1.
fn message(
    mac: &[u8; 6],
    kind: MessageType,
    xid: u32,
    ciaddr: Ipv4Addr,
    requested: Option<Ipv4Addr>,
    server_id: Option<Ipv4Addr>,
) -> Vec<u8> {
    let mut m = Message::new_with_id(
        xid,
        ciaddr,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        RELAY,
        mac,
    );
    m.set_opcode(Opcode::BootRequest).set_htype(HType::Eth);
    m.opts_mut().insert(DhcpOption::MessageType(kind));
    if let Some(a) = requested {
        m.opts_mut().insert(DhcpOption::RequestedIpAddress(a));
    }
    if let Some(s) = server_id {
        m.opts_mut().insert(DhcpOption::ServerIdentifier(s));
    }
    m.opts_mut().insert(DhcpOption::ParameterRequestList(vec![
        OptionCode::SubnetMask,
        OptionCode::Router,
    ]));
    m.to_vec().unwrap()
}

struct Reply {
    kind: MessageType,
    yiaddr: Ipv4Addr,
    server: Ipv4Addr,
    lease_time: u32,
}

fn decode_reply(bytes: &[u8]) -> Option<(u32, Reply)> {
    let m = Message::decode(&mut Decoder::new(bytes)).ok()?;
    if m.opcode() != Opcode::BootReply {
        return None;
    }
    let server = match m.opts().get(OptionCode::ServerIdentifier) {
        Some(DhcpOption::ServerIdentifier(s)) => *s,
        _ => return None,
    };
    let lease_time = match m.opts().get(OptionCode::AddressLeaseTime) {
        Some(DhcpOption::AddressLeaseTime(t)) => *t,
        _ => 0,
    };
    Some((
        m.xid(),
        Reply {
            kind: m.opts().msg_type()?,
            yiaddr: m.yiaddr(),
            server,
            lease_time,
        },
    ))
}

impl Fleet {
    fn new(socket: UdpSocket, servers: Vec<SocketAddr>, n: usize) -> Fleet {
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        Fleet {
            socket,
            servers,
            clients: (0..n)
                .map(|i| Client {
                    mac: mac(i),
                    lease: None,
                    history: Vec::new(),
                })
                .collect(),
            round: 0,
            acks: HashMap::new(),
        }
    }

    fn add_clients(&mut self, n: usize) -> std::ops::Range<usize> {
        let first = self.clients.len();
        for i in first..first + n {
            self.clients.push(Client {
                mac: mac(i),
                lease: None,
                history: Vec::new(),
            });
        }
        first..first + n
    }

    /// Sends each client's message to every server (as a relay does) and collects the replies
    /// for `window` or until each client has `wanted` of them.
    fn exchange(&mut self, messages: Vec<Ask>, window: Duration) -> HashMap<usize, Vec<Reply>> {
        self.round += 1;
        let mut expected = HashMap::new();
        for (i, kind, ciaddr, requested, server_id) in messages {
            let xid = (self.round << 12) | i as u32;
            expected.insert(xid, i);
            let bytes = message(
                &self.clients[i].mac,
                kind,
                xid,
                ciaddr,
                requested,
                server_id,
            );
            for s in &self.servers {
                // A dead server's port may refuse; the fleet goes on.
                let _ = self.socket.send_to(&bytes, s);
            }
        }
        let mut replies: HashMap<usize, Vec<Reply>> = HashMap::new();
        let deadline = Instant::now() + window;
        let mut buf = [0u8; 1500];
        while Instant::now() < deadline && replies.len() < expected.len() {
            let Ok((n, _)) = self.socket.recv_from(&mut buf) else {
                continue;
            };
            if let Some((xid, r)) = decode_reply(&buf[..n])
                && let Some(&i) = expected.get(&xid)
            {
                replies.entry(i).or_default().push(r);
            }
        }
        // Late replies of this round are dropped with the next rounds' xids.
        replies
    }

    /// The oracle, on every ACK: the address is nobody else's running lease (from the
    /// clients' own records).
    fn bind(&mut self, i: usize, r: &Reply) {
        let now = Instant::now();
        for (j, other) in self.clients.iter().enumerate() {
            if j != i
                && let Some(h) = other.lease
            {
                assert!(
                    !(h.address == r.yiaddr && h.until > now),
                    "{} ACKed {} to client {i} while client {j} holds it from {}",
                    r.server,
                    r.yiaddr,
                    h.server
                );
            }
        }
        let c = &mut self.clients[i];
        c.lease = Some(Held {
            address: r.yiaddr,
            server: r.server,
            until: now + Duration::from_secs(u64::from(r.lease_time)),
        });
        c.history.push((r.yiaddr, r.server));
        *self.acks.entry(r.server).or_default() += 1;
    }

    /// DISCOVER, then REQUEST the first offer, until each of `who` is bound (bounded rounds).
    fn acquire(&mut self, who: std::ops::Range<usize>) -> usize {
        for _ in 0..8 {
            let todo: Vec<usize> = who
                .clone()
                .filter(|&i| self.clients[i].lease.is_none())
                .collect();
            if todo.is_empty() {
                break;
            }
            let discovers = todo
                .iter()
                .map(|&i| (i, MessageType::Discover, Ipv4Addr::UNSPECIFIED, None, None))
                .collect();
            let offers = self.exchange(discovers, Duration::from_secs(2));
            let requests = offers
                .iter()
                .filter_map(|(&i, rs)| {
                    let o = rs.iter().find(|r| r.kind == MessageType::Offer)?;
                    Some((
                        i,
                        MessageType::Request,
                        Ipv4Addr::UNSPECIFIED,
                        Some(o.yiaddr),
                        Some(o.server),
                    ))
                })
                .collect();
            let acks = self.exchange(requests, Duration::from_secs(3));
            for (i, rs) in acks {
                if let Some(r) = rs.iter().find(|r| r.kind == MessageType::Ack) {
                    self.bind(i, r);
                }
            }
        }
        who.filter(|&i| self.clients[i].lease.is_some()).count()
    }

    /// REQUEST/REBINDING (ciaddr, no server id) to every server until each bound client of
    /// `who` is ACKed again; returns the clients ACKed with the same address, and those NAKed.
    fn rebind(&mut self, who: std::ops::Range<usize>) -> (usize, usize) {
        let mut kept = vec![false; self.clients.len()];
        let mut naks = 0;
        for _ in 0..8 {
            let todo: Vec<(usize, Ipv4Addr)> = who
                .clone()
                .filter(|&i| !kept[i])
                .filter_map(|i| Some((i, self.clients[i].lease?.address)))
                .collect();
            if todo.is_empty() {
                break;
            }
            let msgs = todo
                .iter()
                .map(|&(i, a)| (i, MessageType::Request, a, None, None))
                .collect();
            for (i, rs) in self.exchange(msgs, Duration::from_secs(3)) {
                let held = self.clients[i].lease.unwrap().address;
                if let Some(r) = rs.iter().find(|r| r.kind == MessageType::Ack) {
                    assert_eq!(r.yiaddr, held, "client {i} rebound to another address");
                    self.bind(i, r);
                    kept[i] = true;
                } else if rs.iter().any(|r| r.kind == MessageType::Nak) {
                    naks += 1;
                    self.clients[i].lease = None;
                }
            }
        }
        (kept.iter().filter(|k| **k).count(), naks)
    }

    /// No address held by two clients at once, over the whole run.
    fn check_no_double_holding(&self) {
        let now = Instant::now();
        let mut holder: HashMap<Ipv4Addr, usize> = HashMap::new();
        for (i, c) in self.clients.iter().enumerate() {
            if let Some(h) = c.lease.filter(|h| h.until > now)
                && let Some(j) = holder.insert(h.address, i)
            {
                panic!("{} held by clients {j} and {i}", h.address);
            }
        }
    }
}

fn server_args(
    role: &str,
    dhcp: SocketAddr,
    peer: u16,
    partner: u16,
    relay_port: u16,
    store: &Path,
) -> Vec<String> {
    [
        "--listen",
        &dhcp.to_string(),
        "--pool",
        POOL,
        "--subnet",
        "16",
        "--router",
        "10.77.0.1",
        "--lease-time",
        "600",
        "--relay-port",
        &relay_port.to_string(),
        "--status-every",
        "1",
        "--role",
        role,
        "--peer-listen",
        &format!("127.0.0.1:{peer}"),
        "--partner",
        &format!("127.0.0.1:{partner}"),
        "--name",
        "dhcp-test",
        "--mclt",
        "60",
        "--mrd",
        "3",
        "--split",
        &SPLIT.to_string(),
        "--store",
        &store.to_string_lossy(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Cold start, the split, the primary killed: its clients keep their addresses on the
/// secondary and new clients are served.
#[test]
fn a_pair_serves_a_fleet_and_survives_the_primary_killed() {
    let bin = server_binary();
    let dir = std::env::temp_dir().join(format!("dhcp-server-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fleet_socket = UdpSocket::bind((RELAY, 0)).unwrap();
    let relay_port = fleet_socket.local_addr().unwrap().port();
    let p_dhcp = SocketAddr::from((PRIMARY_IP, free_udp_port(PRIMARY_IP)));
    let s_dhcp = SocketAddr::from((SECONDARY_IP, free_udp_port(SECONDARY_IP)));
    let (pp, sp) = (free_tcp_port(), free_tcp_port());
    let (p_store, s_store) = (dir.join("primary.log"), dir.join("secondary.log"));
    let _ = std::fs::remove_file(&p_store);
    let _ = std::fs::remove_file(&s_store);
    let mut primary = Proc::spawn(
        &bin,
        &server_args("primary", p_dhcp, pp, sp, relay_port, &p_store),
        "primary",
    );
    let secondary = Proc::spawn(
        &bin,
        &server_args("secondary", s_dhcp, sp, pp, relay_port, &s_store),
        "secondary",
    );

    // Cold start: both NORMAL, and the primary gave the secondary its share (BACKUP).
    primary.wait_status("NORMAL", 40, |s| s.contains("status: NORMAL"));
    secondary.wait_status("NORMAL with BACKUP addresses", 40, |s| {
        s.contains("status: NORMAL") && count(s, "BACKUP").is_some_and(|n| n > 0)
    });

    let n = 100;
    let mut fleet = Fleet::new(fleet_socket, vec![p_dhcp, s_dhcp], n);
    let bound = fleet.acquire(0..n);
    assert_eq!(bound, n, "every client gets a lease");
    fleet.check_no_double_holding();
    let by_primary = fleet
        .clients
        .iter()
        .filter(|c| c.lease.unwrap().server == PRIMARY_IP)
        .count();
    let hashed_primary = fleet
        .clients
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
    // Each client was served by the server its hash names.
    let misplaced = fleet
        .clients
        .iter()
        .filter(|c| {
            (client_bucket(None, &c.mac) < SPLIT) != (c.lease.unwrap().server == PRIMARY_IP)
        })
        .count();
    eprintln!("clients served by the other server than their hash names: {misplaced}");
    assert_eq!(
        misplaced, 0,
        "load balancing sends each client to its hash's server"
    );

    // Both servers hold every lease and nothing is waiting for the partner: the primary may
    // die now without a client losing its address.
    for p in [&primary, &secondary] {
        p.wait_status("holding every lease", 30, |s| {
            count(s, "ACTIVE") == Some(n) && s.contains("queued 0, unacked 0")
        });
    }

    primary.kill();
    let (kept, naks) = fleet.rebind(0..n);
    eprintln!(
        "after SIGKILL of the primary: {kept} of {n} clients rebound to the secondary with their address, {naks} NAKs"
    );
    assert_eq!((kept, naks), (n, 0), "{}", secondary.text());
    assert!(
        fleet.clients[..n]
            .iter()
            .all(|c| c.lease.unwrap().server == SECONDARY_IP),
        "the secondary answered every rebind"
    );
    secondary.wait_status("COMMUNICATIONS-INTERRUPTED", 20, |s| {
        s.contains("status: COMMUNICATIONS-INTERRUPTED")
    });

    // New clients get addresses from the secondary's own (BACKUP) pool.
    let new = fleet.add_clients(20);
    let got = fleet.acquire(new.clone());
    eprintln!("new clients while the primary is down: {got} of 20 served");
    assert_eq!(got, 20, "{}", secondary.text());
    assert!(
        fleet.clients[new]
            .iter()
            .all(|c| c.lease.unwrap().server == SECONDARY_IP)
    );
    fleet.check_no_double_holding();
    drop(secondary);
    drop(primary);
    let _ = std::fs::remove_dir_all(&dir);
}
