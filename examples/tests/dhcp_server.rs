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

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dhcproto::v4::{DhcpOption, HType, Message, MessageType, Opcode, OptionCode};
use dhcproto::{Decodable, Decoder, Encodable};
use failover_fsm::accept::ClientIdentity;
use failover_fsm::record::LeaseClient;
use failover_fsm::{BindingStatus, Role};
use failover_proto::hash::client_bucket;
use failover_tokio::FileStore;

const PRIMARY_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);
const SECONDARY_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
const RELAY: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);
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

    /// One operator command on the server's stdin.
    fn command(&mut self, line: &str) {
        use std::io::Write;
        let stdin = self.child.as_mut().unwrap().stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
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

/// One client message.
#[derive(Debug, Clone, Copy)]
struct Ask {
    client: usize,
    kind: MessageType,
    ciaddr: Ipv4Addr,
    requested: Option<Ipv4Addr>,
    server_id: Option<Ipv4Addr>,
    /// Unicast to this server (a RENEWING client); else to every server, as a relay does.
    only: Option<Ipv4Addr>,
}

impl Ask {
    fn new(client: usize, kind: MessageType) -> Ask {
        Ask {
            client,
            kind,
            ciaddr: Ipv4Addr::UNSPECIFIED,
            requested: None,
            server_id: None,
            only: None,
        }
    }
}

struct Fleet {
    socket: UdpSocket,
    servers: Vec<SocketAddr>,
    clients: Vec<Client>,
    round: u32,
    /// Addresses declined: not to be leased again while others are free (ABANDONED is the
    /// last resort).
    declined: Vec<Ipv4Addr>,
}

fn mac(i: usize) -> [u8; 6] {
    [0x02, 0x5e, 0x00, 0x31, (i >> 8) as u8, i as u8]
}

/// A client message relayed from 127.0.0.1.
fn message(mac: &[u8; 6], ask: &Ask, xid: u32) -> Vec<u8> {
    let mut m = Message::new_with_id(
        xid,
        ask.ciaddr,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        RELAY,
        mac,
    );
    m.set_opcode(Opcode::BootRequest).set_htype(HType::Eth);
    m.opts_mut().insert(DhcpOption::MessageType(ask.kind));
    if let Some(a) = ask.requested {
        m.opts_mut().insert(DhcpOption::RequestedIpAddress(a));
    }
    if let Some(s) = ask.server_id {
        m.opts_mut().insert(DhcpOption::ServerIdentifier(s));
    }
    m.opts_mut().insert(DhcpOption::ParameterRequestList(vec![
        OptionCode::SubnetMask,
        OptionCode::Router,
    ]));
    m.to_vec().unwrap()
}

#[derive(Debug)]
struct Reply {
    kind: MessageType,
    yiaddr: Ipv4Addr,
    server: Ipv4Addr,
    /// Option 51, if present.
    lease_time: Option<u32>,
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
        Some(DhcpOption::AddressLeaseTime(t)) => Some(*t),
        _ => None,
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
    fn new(socket: UdpSocket, servers: Vec<SocketAddr>) -> Fleet {
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        Fleet {
            socket,
            servers,
            clients: Vec::new(),
            round: 0,
            declined: Vec::new(),
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

    fn held(&self, i: usize) -> Option<Held> {
        self.clients[i].lease
    }

    /// Sends the messages and collects the replies for `window` or until every client asked
    /// has one.
    fn exchange(&mut self, asks: &[Ask], window: Duration) -> HashMap<usize, Vec<Reply>> {
        self.round += 1;
        let mut expected = HashMap::new();
        for ask in asks {
            let xid = (self.round << 12) | ask.client as u32;
            expected.insert(xid, ask.client);
            let bytes = message(&self.clients[ask.client].mac, ask, xid);
            for s in &self.servers {
                if ask.only.is_none_or(|ip| s.ip() == ip) {
                    // A dead server's port may refuse; the fleet goes on.
                    let _ = self.socket.send_to(&bytes, s);
                }
            }
        }
        let mut replies: HashMap<usize, Vec<Reply>> = HashMap::new();
        let deadline = Instant::now() + window;
        let mut buf = [0u8; 1500];
        while Instant::now() < deadline && replies.len() < expected.len() {
            let Ok((n, _)) = self.socket.recv_from(&mut buf) else {
                continue;
            };
            // Replies of earlier rounds carry other xids and are dropped.
            if let Some((xid, r)) = decode_reply(&buf[..n])
                && let Some(&i) = expected.get(&xid)
            {
                replies.entry(i).or_default().push(r);
            }
        }
        replies
    }

    /// The oracle, on every ACK: the address is nobody else's running lease (from the
    /// clients' own records), and never one a client declined.
    fn bind(&mut self, i: usize, r: &Reply) {
        let now = Instant::now();
        let lease_time = r.lease_time.expect("an ACK with a lease carries option 51");
        assert!(lease_time > 0);
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
        assert!(
            !self.declined.contains(&r.yiaddr),
            "{} leased the declined {}",
            r.server,
            r.yiaddr
        );
        let c = &mut self.clients[i];
        c.lease = Some(Held {
            address: r.yiaddr,
            server: r.server,
            until: now + Duration::from_secs(u64::from(lease_time)),
        });
        c.history.push((r.yiaddr, r.server));
    }

    /// DISCOVER, then REQUEST the first offer, until each of `who` is bound or `rounds` are
    /// spent. Returns how many of `who` are bound.
    fn acquire(&mut self, who: std::ops::Range<usize>, rounds: usize) -> usize {
        for _ in 0..rounds {
            let todo: Vec<Ask> = who
                .clone()
                .filter(|&i| self.held(i).is_none())
                .map(|i| Ask::new(i, MessageType::Discover))
                .collect();
            if todo.is_empty() {
                break;
            }
            let offers = self.exchange(&todo, Duration::from_secs(2));
            let requests: Vec<Ask> = offers
                .iter()
                .filter_map(|(&i, rs)| {
                    let o = rs.iter().find(|r| r.kind == MessageType::Offer)?;
                    Some(Ask {
                        requested: Some(o.yiaddr),
                        server_id: Some(o.server),
                        ..Ask::new(i, MessageType::Request)
                    })
                })
                .collect();
            for (i, rs) in self.exchange(&requests, Duration::from_secs(3)) {
                if let Some(r) = rs.iter().find(|r| r.kind == MessageType::Ack) {
                    self.bind(i, r);
                }
            }
        }
        who.filter(|&i| self.held(i).is_some()).count()
    }

    /// DHCPREQUEST with ciaddr (no server id) for each bound client of `who`: RENEWING, unicast
    /// to the server of its lease, or REBINDING, to every server. Returns the clients ACKed
    /// with their address, and those NAKed (which drop it).
    fn extend(&mut self, who: std::ops::Range<usize>, rebinding: bool) -> (usize, usize) {
        let mut kept = vec![false; self.clients.len()];
        let mut naks = 0;
        for _ in 0..5 {
            let todo: Vec<Ask> = who
                .clone()
                .filter(|&i| !kept[i])
                .filter_map(|i| {
                    let h = self.held(i)?;
                    Some(Ask {
                        ciaddr: h.address,
                        only: (!rebinding).then_some(h.server),
                        ..Ask::new(i, MessageType::Request)
                    })
                })
                .collect();
            if todo.is_empty() {
                break;
            }
            for (i, rs) in self.exchange(&todo, Duration::from_secs(3)) {
                let held = self.held(i).unwrap().address;
                if let Some(r) = rs.iter().find(|r| r.kind == MessageType::Ack) {
                    assert_eq!(r.yiaddr, held, "client {i} extended to another address");
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

    /// DHCPRELEASE to the lease's server (no answer expected).
    fn release(&mut self, i: usize) {
        let h = self.held(i).unwrap();
        let ask = Ask {
            ciaddr: h.address,
            only: Some(h.server),
            ..Ask::new(i, MessageType::Release)
        };
        let _ = self.exchange(&[ask], Duration::from_millis(300));
        self.clients[i].lease = None;
    }

    /// DHCPDECLINE of the client's address (to every server: it may be either's news).
    fn decline(&mut self, i: usize) -> Ipv4Addr {
        let h = self.held(i).unwrap();
        let ask = Ask {
            requested: Some(h.address),
            server_id: Some(h.server),
            ..Ask::new(i, MessageType::Decline)
        };
        let _ = self.exchange(&[ask], Duration::from_millis(300));
        self.clients[i].lease = None;
        self.declined.push(h.address);
        h.address
    }

    /// No address held by two clients at once.
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

    fn served_by(&self, who: std::ops::Range<usize>, server: Ipv4Addr) -> usize {
        who.filter(|&i| self.held(i).is_some_and(|h| h.server == server))
            .count()
    }
}

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
        "600",
        "--relay-port",
        &spec.relay_port.to_string(),
        "--status-every",
        "1",
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
        let fleet = Fleet::new(socket, vec![primary.dhcp, secondary.dhcp]);
        Lab {
            dir,
            bin: server_binary(),
            spec: PairSpec {
                pool,
                mclt,
                relay_port,
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

/// Waits until `p` holds `n` ACTIVE leases and nothing waits for the partner.
fn settled(p: &Proc, n: usize) {
    p.wait_status(&format!("holding {n} leases, all acknowledged"), 30, |s| {
        count(s, "ACTIVE") == Some(n) && s.contains("queued 0, unacked 0")
    });
}

/// Cold start and the split; INFORM, RELEASE and DECLINE; the primary killed (SIGKILL): its
/// clients keep their addresses on the secondary and new clients are served; the primary
/// restarted from its store: back to NORMAL with every lease, serving again.
#[test]
fn a_pair_serves_a_fleet_and_survives_the_primary_killed() {
    let mut lab = Lab::new("primary-killed", "10.77.0.10-10.77.0.249", 60);
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
    assert!(first.until <= Instant::now() + Duration::from_secs(60));
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
    settled(&primary, held);
    settled(&secondary, held);

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
    settled(&primary, held);
    settled(&secondary, held);
    eprintln!("the primary restarted from its store: NORMAL, both servers hold {held} leases");
    let (kept, naks) = fleet.extend(0..fleet.clients.len(), false);
    assert_eq!(
        (kept, naks),
        (held, 0),
        "every lease renewed after the restart"
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
    settled(&primary, held);
    settled(&secondary, held);
    drop(primary);
    drop(secondary);
    let fleet = &lab.fleet;
    let expected: BTreeMap<Ipv4Addr, ClientIdentity> = fleet
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
        let store = FileStore::open(&side.store, role, Ipv4Addr::new(10, 77, 0, 10), 240).unwrap();
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
    }
    eprintln!("both stores, read back after SIGKILL, hold exactly the clients' {held} leases");
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
    settled(&primary, 8);
    settled(&secondary, 8);
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

    primary.command("partner-down");
    primary.wait_status("PARTNER-DOWN", 10, |s| s.contains("status: PARTNER-DOWN"));
    let since = Instant::now();
    // Within the MCLT the partner's addresses stay untouched.
    let early = fleet.acquire(more.clone(), 1);
    assert_eq!(
        early, got,
        "nothing of the partner's pool before the MCLT has passed"
    );
    // After the MCLT (and the library's clock margin), the whole pool.
    let wait = Duration::from_secs(u64::from(mclt) + 4);
    std::thread::sleep(wait.saturating_sub(since.elapsed()));
    let all = fleet.acquire(more.clone(), 4);
    eprintln!(
        "PARTNER-DOWN after the MCLT: {all} new clients served; {} of the {pool_size} \
         addresses leased",
        all + 8
    );
    assert_eq!(all + 8, pool_size, "the whole pool, {}", primary.text());
    fleet.check_no_double_holding();
}
