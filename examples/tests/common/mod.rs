//! The DHCP client fleet and child-process helpers shared by the `dhcp-server` tests.
//!
//! The fleet pretends to be a relay: every message carries giaddr = the address its socket is
//! bound to, and goes to every server (or, for a RENEWING client, to its server only); the
//! replies come back to the socket. Each client records the lease it holds and from whom; the
//! oracle checks on every ACK that no address is held by two clients at once, and — for the
//! servers whose lease logs it knows ([`Fleet::logs`]) — that the lease ends no later than
//! the MCLT after what the partner had been told.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dhcproto::v4::{DhcpOption, HType, Message, MessageType, Opcode, OptionCode};
use dhcproto::{Decodable, Decoder, Encodable};
use failover_fsm::policy::{
    Endpoint, INFINITE, LeaseRequest, LeaseTimes, PartnerDownLeases, lease_time,
};
use failover_fsm::record::LeaseClient;
use failover_fsm::{BindingStatus, Dialect, Role, ServerState, UnixTime};
use failover_tokio::FileStore;

pub(crate) fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub(crate) fn free_udp_port(ip: Ipv4Addr) -> u16 {
    UdpSocket::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The `dhcp-server` example next to this test's executable, built by cargo (a no-op when up
/// to date): `cargo test --test dhcp_server` does not build examples itself.
pub(crate) fn server_binary() -> PathBuf {
    example_binary("dhcp-server")
}

/// The example `name`, built by cargo as [`server_binary`] is.
pub(crate) fn example_binary(name: &str) -> PathBuf {
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
        name,
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
    assert!(status.success(), "cargo build --example {name}: {status}");
    let bin = profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(bin.is_file(), "no example at {}", bin.display());
    bin
}

/// A child process, SIGKILLed by its PID and reaped on every way out; its output collected.
pub(crate) struct Proc {
    pub(crate) child: Option<Child>,
    pub(crate) name: &'static str,
    pub(crate) out: Arc<Mutex<Vec<String>>>,
}

impl Proc {
    pub(crate) fn new(child: Child, name: &'static str) -> Proc {
        Proc {
            child: Some(child),
            name,
            out: Arc::default(),
        }
    }

    pub(crate) fn spawn(bin: &Path, args: &[String], name: &'static str) -> Proc {
        Proc::spawn_with_env(bin, args, name, &[])
    }

    /// [`Proc::spawn`] with `env` added to the child's environment.
    pub(crate) fn spawn_with_env(
        bin: &Path,
        args: &[String],
        name: &'static str,
        env: &[(&str, &str)],
    ) -> Proc {
        let child = Command::new(bin)
            .args(args)
            .envs(env.iter().copied())
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

    pub(crate) fn text(&self) -> String {
        self.out.lock().unwrap().join("\n")
    }

    /// The last status line.
    pub(crate) fn status(&self) -> Option<String> {
        self.status_after(0)
    }

    /// How many lines the process printed so far: a mark for [`Proc::status_after`].
    pub(crate) fn mark(&self) -> usize {
        self.out.lock().unwrap().len()
    }

    /// The last status line printed after `mark` (lines printed before it may predate what
    /// the caller just did).
    pub(crate) fn status_after(&self, mark: usize) -> Option<String> {
        let out = self.out.lock().unwrap();
        let fresh = out.get(mark..).unwrap_or_default();
        fresh.iter().rev().find(|l| l.contains("status: ")).cloned()
    }

    /// Waits (bounded) until the last status line satisfies `ok`.
    pub(crate) fn wait_status(&self, what: &str, secs: u64, ok: impl Fn(&str) -> bool) {
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
    pub(crate) fn command(&mut self, line: &str) {
        use std::io::Write;
        let stdin = self.child.as_mut().unwrap().stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    /// SIGKILL, then reap.
    pub(crate) fn kill(&mut self) {
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
pub(crate) fn count(status: &str, word: &str) -> Option<usize> {
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
pub(crate) struct Held {
    pub(crate) address: Ipv4Addr,
    pub(crate) server: Ipv4Addr,
    pub(crate) until: Instant,
    /// When it was granted, and for how long (T1 and T2 are measured from it).
    pub(crate) since: Instant,
    pub(crate) secs: u32,
}

impl Held {
    /// RFC 2131 §4.4.5 defaults: T1 at half the lease, T2 at seven eighths.
    pub(crate) fn t1(&self) -> Instant {
        self.since + Duration::from_secs(u64::from(self.secs)) / 2
    }

    pub(crate) fn t2(&self) -> Instant {
        self.since + Duration::from_secs(u64::from(self.secs)) * 7 / 8
    }
}

/// What one [`Fleet::tick`] did.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Tick {
    /// ACKs taken, by the kind of request: SELECTING, RENEWING, REBINDING.
    pub(crate) bound: usize,
    pub(crate) renewed: usize,
    pub(crate) rebound: usize,
    /// Clients that lost their address: NAKed, or the lease ran out while they asked.
    pub(crate) lost: usize,
}

#[derive(Debug, Clone)]
pub(crate) struct Client {
    pub(crate) mac: [u8; 6],
    pub(crate) lease: Option<Held>,
    /// Every lease this client was granted, with the server.
    pub(crate) history: Vec<(Ipv4Addr, Ipv4Addr)>,
}

/// One client message.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ask {
    pub(crate) client: usize,
    pub(crate) kind: MessageType,
    pub(crate) ciaddr: Ipv4Addr,
    pub(crate) requested: Option<Ipv4Addr>,
    pub(crate) server_id: Option<Ipv4Addr>,
    /// Unicast to this server (a RENEWING client); else to every server, as a relay does.
    pub(crate) only: Option<Ipv4Addr>,
}

impl Ask {
    pub(crate) fn new(client: usize, kind: MessageType) -> Ask {
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

pub(crate) struct Fleet {
    pub(crate) socket: UdpSocket,
    pub(crate) servers: Vec<SocketAddr>,
    pub(crate) clients: Vec<Client>,
    pub(crate) round: u32,
    /// Addresses declined: not to be leased again while others are free (ABANDONED is the
    /// last resort).
    pub(crate) declined: Vec<Ipv4Addr>,
    /// giaddr of every message: the address the fleet's socket is bound to.
    pub(crate) relay: Ipv4Addr,
    /// The lease log of each server (by server id) whose ACKs the lease-length oracle checks.
    pub(crate) logs: HashMap<Ipv4Addr, PathBuf>,
    /// The pair's MCLT, for that oracle.
    pub(crate) mclt: u32,
    /// ACKs the lease-length oracle checked, and the least slack it found (seconds between
    /// the lease's end and the MCLT limit).
    pub(crate) length_checks: usize,
    pub(crate) least_slack: Option<u32>,
}

pub(crate) fn mac(i: usize) -> [u8; 6] {
    [0x02, 0x5e, 0x00, 0x31, (i >> 8) as u8, i as u8]
}

/// A client message relayed from 127.0.0.1.
pub(crate) fn message(mac: &[u8; 6], relay: Ipv4Addr, ask: &Ask, xid: u32) -> Vec<u8> {
    let mut m = Message::new_with_id(
        xid,
        ask.ciaddr,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        relay,
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
pub(crate) struct Reply {
    pub(crate) kind: MessageType,
    pub(crate) yiaddr: Ipv4Addr,
    pub(crate) server: Ipv4Addr,
    /// Option 51, if present.
    pub(crate) lease_time: Option<u32>,
    /// Unix seconds: the exchange began at or after `asked_at` and this reply arrived at or
    /// before `answered_at` (the server's clock read between the two).
    pub(crate) asked_at: u32,
    pub(crate) answered_at: u32,
}

/// Unix seconds, rounded down or up.
fn unix_secs(up: bool) -> u32 {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let s = u32::try_from(d.as_secs()).unwrap();
    if up && d.subsec_nanos() > 0 { s + 1 } else { s }
}

pub(crate) fn decode_reply(bytes: &[u8]) -> Option<(u32, Reply)> {
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
            asked_at: 0,
            answered_at: u32::MAX,
        },
    ))
}

impl Fleet {
    pub(crate) fn new(socket: UdpSocket, servers: Vec<SocketAddr>) -> Fleet {
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let relay = match socket.local_addr().unwrap().ip() {
            std::net::IpAddr::V4(ip) => ip,
            other => panic!("an IPv4 relay, not {other}"),
        };
        Fleet {
            relay,
            socket,
            servers,
            clients: Vec::new(),
            round: 0,
            declined: Vec::new(),
            logs: HashMap::new(),
            mclt: 0,
            length_checks: 0,
            least_slack: None,
        }
    }

    /// Checks the ACKs of one exchange against the lease logs of the servers that sent them
    /// (`logs`): the lease ends no later than the MCLT after the latest of the time of the
    /// grant and the potential-expiration-times the partner had acknowledged for it or sent
    /// us (§5.2.1, §7.1.5) — the limit [`lease_time`] computes in NORMAL, from the record the
    /// server wrote for the grant (durable before the ACK; a renewal's record keeps the
    /// acknowledged and received PETs it was granted under, a new lease has none).
    fn check_lease_lengths(&mut self, acks: &[(usize, &Reply)]) {
        let mut histories = HashMap::new();
        for &(i, r) in acks {
            let Some(path) = self.logs.get(&r.server) else {
                continue;
            };
            let history = histories
                .entry(r.server)
                .or_insert_with(|| FileStore::history(path).unwrap());
            let granted = r.lease_time.unwrap();
            let ends = r.asked_at + granted..=r.answered_at.saturating_add(granted);
            let client = LeaseClient {
                client_identifier: None,
                htype: 1,
                chaddr: &self.clients[i].mac,
            }
            .identity();
            // The first record of this grant: later ones may carry its own acknowledgement.
            let record = history.iter().find(|l| {
                l.data.ip() == r.yiaddr
                    && l.local.status == BindingStatus::Active
                    && l.local.client.same_client(&client) == Some(true)
                    && l.local
                        .lease_expiration
                        .is_some_and(|e| ends.contains(&e.0))
            });
            let Some(record) = record else {
                let of_address: Vec<String> = history
                    .iter()
                    .filter(|l| l.data.ip() == r.yiaddr)
                    .map(|l| {
                        format!(
                            "{:?} until {:?} client {:?} cltt {:?}",
                            l.local.status,
                            l.local.lease_expiration.map(|t| t.0),
                            l.local.client.same_client(&client),
                            l.local.cltt.map(|t| t.0)
                        )
                    })
                    .collect();
                panic!(
                    "{} ACKed {} to client {i} for {granted} s (asked at {}, answered at {}) with \
                     no such lease in its log ({} records; of this address: {of_address:#?})",
                    r.server,
                    r.yiaddr,
                    r.asked_at,
                    r.answered_at,
                    history.len()
                );
            };
            let ends_at = record.local.lease_expiration.unwrap();
            let endpoint = Endpoint {
                dialect: Dialect::Draft,
                role: Role::Primary,
                state: ServerState::Normal,
                state_since: UnixTime(0),
                partner_state: None,
                mclt: self.mclt,
                lease_mclt: self.mclt,
            };
            // The record's sent PET is this grant's own.
            let times = LeaseTimes {
                sent_pet: None,
                ..LeaseTimes::for_client(&record.local, true)
            };
            let limit = lease_time(
                &endpoint,
                &LeaseRequest {
                    now: UnixTime(r.answered_at),
                    desired: INFINITE,
                    times,
                    partner_down: PartnerDownLeases::KeepMclt,
                },
            )
            .cap
            .unwrap();
            assert!(
                ends_at <= limit,
                "{} ACKed {} to client {i} until {} (for {granted} s), beyond the MCLT {} after \
                 what the partner was told (acked PET {:?}, received PET {:?}): limit {}",
                r.server,
                r.yiaddr,
                ends_at.0,
                self.mclt,
                record.local.acked_pet.map(|t| t.0),
                record.local.received_pet.map(|t| t.0),
                limit.0
            );
            self.length_checks += 1;
            let slack = limit.0 - ends_at.0;
            self.least_slack = Some(self.least_slack.map_or(slack, |s| s.min(slack)));
        }
    }

    pub(crate) fn add_clients(&mut self, n: usize) -> std::ops::Range<usize> {
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

    /// Client `i`'s lease, while it runs (a client whose lease ended is back to INIT).
    pub(crate) fn held(&self, i: usize) -> Option<Held> {
        self.clients[i].lease.filter(|h| h.until > Instant::now())
    }

    /// Sends the messages and collects the replies for `window` or until every client asked
    /// has one — from the server its message names (option 54), if it names one: another
    /// server that knows the lease from its partner may answer too, and first.
    pub(crate) fn exchange(
        &mut self,
        asks: &[Ask],
        window: Duration,
    ) -> HashMap<usize, Vec<Reply>> {
        self.round += 1;
        // Before the first send: a server may grant while the fleet is still sending.
        let asked_at = unix_secs(false);
        let mut expected = HashMap::new();
        let mut named = HashMap::new();
        for ask in asks {
            let xid = (self.round << 12) | ask.client as u32;
            expected.insert(xid, ask.client);
            named.insert(ask.client, ask.server_id);
            let bytes = message(&self.clients[ask.client].mac, self.relay, ask, xid);
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
        let mut done = std::collections::HashSet::new();
        while Instant::now() < deadline && done.len() < expected.len() {
            let Ok((n, _)) = self.socket.recv_from(&mut buf) else {
                continue;
            };
            // Replies of earlier rounds carry other xids and are dropped.
            if let Some((xid, mut r)) = decode_reply(&buf[..n])
                && let Some(&i) = expected.get(&xid)
            {
                r.asked_at = asked_at;
                r.answered_at = unix_secs(true);
                if named
                    .get(&i)
                    .copied()
                    .flatten()
                    .is_none_or(|s| s == r.server)
                {
                    done.insert(i);
                }
                replies.entry(i).or_default().push(r);
            }
        }
        // Every ACK with a lease, whether the client takes it or not.
        let acks: Vec<(usize, &Reply)> = replies
            .iter()
            .flat_map(|(&i, rs)| rs.iter().map(move |r| (i, r)))
            .filter(|(_, r)| r.kind == MessageType::Ack && r.lease_time.is_some())
            .collect();
        self.check_lease_lengths(&acks);
        replies
    }

    /// The oracle, on every ACK: the address is nobody else's running lease (from the
    /// clients' own records), and never one a client declined.
    pub(crate) fn bind(&mut self, i: usize, r: &Reply) {
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
            since: now,
            secs: lease_time,
        });
        c.history.push((r.yiaddr, r.server));
    }

    /// DISCOVER, then REQUEST the first offer, until each of `who` is bound or `rounds` are
    /// spent. Returns how many of `who` are bound.
    pub(crate) fn acquire(&mut self, who: std::ops::Range<usize>, rounds: usize) -> usize {
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
                // The selected server's ACK; another's (it knows the lease from the partner)
                // only without one.
                let selected = requests
                    .iter()
                    .find(|a| a.client == i)
                    .and_then(|a| a.server_id);
                let ack = rs
                    .iter()
                    .find(|r| r.kind == MessageType::Ack && Some(r.server) == selected)
                    .or_else(|| rs.iter().find(|r| r.kind == MessageType::Ack));
                if let Some(r) = ack {
                    self.bind(i, r);
                }
            }
        }
        who.filter(|&i| self.held(i).is_some()).count()
    }

    /// DHCPREQUEST with ciaddr (no server id) for each bound client of `who`: RENEWING, unicast
    /// to the server of its lease, or REBINDING, to every server. Returns the clients ACKed
    /// with their address, and those NAKed (which drop it).
    pub(crate) fn extend(
        &mut self,
        who: std::ops::Range<usize>,
        rebinding: bool,
    ) -> (usize, usize) {
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
                let held = self.clients[i].lease.unwrap().address;
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

    /// One step of clients living by the clock (RFC 2131 §4.4): each of `who` without a lease
    /// DISCOVERs, or REQUESTs the offer it got in the last step; past T1 a client RENEWs with
    /// its server (unicast), past T2 it REBINDs with every server. One exchange of `window`
    /// for all. A lease that ran out or was NAKed is lost: the client goes back to INIT.
    pub(crate) fn tick(
        &mut self,
        who: std::ops::Range<usize>,
        offers: &mut HashMap<usize, (Ipv4Addr, Ipv4Addr)>,
        window: Duration,
    ) -> Tick {
        let now = Instant::now();
        let mut done = Tick::default();
        let mut asks = Vec::new();
        for i in who {
            match self.clients[i].lease {
                Some(h) if h.until <= now => {
                    done.lost += 1;
                    eprintln!("client {i}: its lease of {} ran out", h.address);
                    self.clients[i].lease = None;
                }
                Some(h) if now >= h.t1() => asks.push(Ask {
                    ciaddr: h.address,
                    only: (now < h.t2()).then_some(h.server),
                    ..Ask::new(i, MessageType::Request)
                }),
                Some(_) => {}
                None => asks.push(match offers.remove(&i) {
                    Some((address, server)) => Ask {
                        requested: Some(address),
                        server_id: Some(server),
                        ..Ask::new(i, MessageType::Request)
                    },
                    None => Ask::new(i, MessageType::Discover),
                }),
            }
        }
        let replies = self.exchange(&asks, window);
        for ask in &asks {
            let i = ask.client;
            let rs = replies.get(&i).map(Vec::as_slice).unwrap_or_default();
            let ack = rs
                .iter()
                .find(|r| r.kind == MessageType::Ack && ask.server_id.is_none_or(|s| s == r.server))
                .or_else(|| rs.iter().find(|r| r.kind == MessageType::Ack));
            match (ask.kind, ack) {
                (MessageType::Discover, _) => {
                    if let Some(o) = rs.iter().find(|r| r.kind == MessageType::Offer) {
                        offers.insert(i, (o.yiaddr, o.server));
                    }
                }
                (_, Some(r)) => {
                    if !ask.ciaddr.is_unspecified() {
                        assert_eq!(
                            r.yiaddr, ask.ciaddr,
                            "client {i} extended to another address"
                        );
                        if ask.only.is_some() {
                            done.renewed += 1;
                        } else {
                            done.rebound += 1;
                        }
                    } else {
                        done.bound += 1;
                    }
                    self.bind(i, r);
                }
                (_, None) if rs.iter().any(|r| r.kind == MessageType::Nak) => {
                    if !ask.ciaddr.is_unspecified() {
                        done.lost += 1;
                        eprintln!("client {i}: NAK for {}", ask.ciaddr);
                    }
                    self.clients[i].lease = None;
                }
                (_, None) => {}
            }
        }
        done
    }

    /// DHCPRELEASE to the lease's server (no answer expected).
    pub(crate) fn release(&mut self, i: usize) {
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
    pub(crate) fn decline(&mut self, i: usize) -> Ipv4Addr {
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
    pub(crate) fn check_no_double_holding(&self) {
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

    pub(crate) fn served_by(&self, who: std::ops::Range<usize>, server: Ipv4Addr) -> usize {
        who.filter(|&i| self.held(i).is_some_and(|h| h.server == server))
            .count()
    }
}
