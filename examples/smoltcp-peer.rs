//! A failover peer on [smoltcp]: the engine driven by hand over a user-space TCP/IP stack on a
//! Linux TAP interface — no tokio, no OS sockets, and no heap in the protocol path (the socket
//! set, the TCP buffers, the framer, the engine and the lease table are fixed-size; smoltcp's
//! TAP device reads each frame into a `Vec` of its own, which a firmware's driver would not).
//!
//! ```text
//! ip tuntap add dev tap0 mode tap && ip addr add 198.18.64.1/16 dev tap0 && ip link set tap0 up
//! cargo run --example smoltcp-peer -- --tap tap0 --ip 198.18.64.2/16 --partner 198.18.64.1 \
//!     --role secondary --name dhcp-failover --pool 198.18.1.0-198.18.1.63 --updates 3
//! ```
//!
//! The host's end of the TAP (198.18.64.1 here) is where ISC dhcpd's `address` is; its
//! `peer address` is our `--ip`, and one of its `subnet`s must cover the TAP's (dhcpd serves
//! only on interfaces it has a subnet for). `--help` lists every option. The program prints one line per
//! state change, binding committed or acknowledged, and a `status:` line every
//! `--status-every` seconds; `examples/tests/smoltcp_isc.rs` pairs it with a live dhcpd in a
//! network namespace.
//!
//! Per draft §8.2 the primary opens the connection to the secondary's port 647 and sends
//! CONNECT; a secondary listens and waits for it (its "stimulus" connection is optional and not
//! made here). So `--role primary` connects to `--partner`, `--role secondary` listens.
//!
//! Every protocol rule is the library's: the engine decides, [`failover_fsm::record`] applies
//! its decisions to the lease records, [`failover_fsm::policy`] picks the address and lease
//! time of the `--updates` leases. This file only moves bytes, time and records.
//!
//! [smoltcp]: https://docs.rs/smoltcp

use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use failover_examples::console::{ArgError, Args};
use failover_fsm::accept::LocalBinding;
use failover_fsm::policy::{
    BalanceTrigger, LeaseRequest, LeaseTimes, PartnerDownLeases, PoolCounts, balance_candidates,
    choose_address, lease_time,
};
use failover_fsm::record::{BacklogWalk, LeaseClient, LeaseRecord, Received, Walked};
use failover_fsm::{
    Action, BindingData, BindingSource, BindingStatus, Commit, Commits, Config, Engine,
    EngineError, Event, Hba, Instant, LeaseLookup, Link, Persisted, RejectReason, Role,
    ServerState, UnixTime,
};
use failover_proto::{Framer, MAX_MESSAGE_LEN, MessageType, Repr};
use smoltcp::iface::{Config as IfaceConfig, Interface, SocketSet, SocketStorage};
use smoltcp::phy::{Medium, TunTapInterface, wait as phy_wait};
use smoltcp::socket::tcp;
use smoltcp::time::{Duration as SmolDuration, Instant as SmolInstant};
use smoltcp::wire::{EthernetAddress, IpAddress, IpCidr};

/// Most addresses in `--pool`.
const POOL_CAP: usize = 256;
/// The engine: 128 bindings queued (half the largest pool: a balancing run fits), 32 received
/// updates awaiting commit (so `--mud` up to 32), 64 actions and as many events.
type PeerEngine = Engine<128, 32, 64>;
/// TCP buffers: a window of BNDUPDs either way (each at most 2 KiB, usually ~100 bytes).
const TCP_BUFFER: usize = 16 * 1024;
/// Bytes taken off the socket per read.
const READ_CHUNK: usize = 4096;
/// Between connection attempts (primary).
const RECONNECT: Duration = Duration::from_secs(1);
/// Longest a closed connection may linger (FIN-WAIT) before its socket is reset for the next.
const CLOSE_LINGER: Duration = Duration::from_secs(3);

const USAGE: &str = "\
smoltcp-peer — a DHCP failover peer (draft-ietf-dhc-failover-12) on smoltcp over a TAP device

USAGE:
    cargo run --example smoltcp-peer -- --tap NAME --ip IP/PREFIX --partner IP
        --role primary|secondary --name NAME --pool FIRST-LAST [OPTIONS]

The TAP interface must exist and be up (ip tuntap add dev NAME mode tap; ip link set NAME up;
an address on the host's side in the same subnet as --ip). Needs CAP_NET_ADMIN to open it.

REQUIRED:
    --tap NAME                 the TAP interface
    --ip IP/PREFIX             our address on it (ISC's `peer address`)
    --partner IP               the partner's failover address (ISC's `address`); connections
                               from any other address are refused
    --role primary|secondary   our role: the primary connects to the partner, the secondary
                               listens (draft §8.2)
    --name NAME                relationship name (ISC's `failover peer \"NAME\"`)
    --pool FIRST-LAST          the relationship's pool, at most 256 addresses, all FREE at first

OPTIONS:
    --port N                   failover port, ours and the partner's (default 647)
    --mac XX:XX:XX:XX:XX:XX    our Ethernet address (default 02:00:00:00:40:02)
    --mclt S                   maximum client lead time (default 3600; a secondary learns it)
    --split N                  hash buckets for the primary (default 128)
    --mud N                    max-unacked-bndupd we advertise, 1..=32 (default 10)
    --mrd S                    max-response-delay, seconds (default 20, at least 3)
    --updates N                once NORMAL, lease N addresses to made-up clients
                               (02:00:5e:64:00:01, ...) and send each to the partner (BNDUPD)
    --lease-time S             the desired lease time of those (default 600)
    --status-every S           print a status line every S seconds (default 1; 0: never)
    --help                     this text
";

/// The command line.
#[derive(Debug, Clone)]
struct Options {
    tap: String,
    ip: Ipv4Addr,
    prefix: u8,
    partner: Ipv4Addr,
    port: u16,
    mac: [u8; 6],
    role: Role,
    name: String,
    pool: (Ipv4Addr, Ipv4Addr),
    mclt: u32,
    split: u16,
    mud: u32,
    mrd: u32,
    updates: u32,
    lease_time: u32,
    status_every: u64,
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Option<Options>, ArgError> {
    let mut a = Args::new(args);
    let (mut tap, mut ip, mut partner, mut role, mut name, mut pool) =
        (None, None, None, None, None, None);
    let mut o = Options {
        tap: String::new(),
        ip: Ipv4Addr::UNSPECIFIED,
        prefix: 24,
        partner: Ipv4Addr::UNSPECIFIED,
        port: 647,
        mac: [0x02, 0, 0, 0, 0x40, 0x02],
        role: Role::Primary,
        name: String::new(),
        pool: (Ipv4Addr::UNSPECIFIED, Ipv4Addr::UNSPECIFIED),
        mclt: 3600,
        split: 128,
        mud: 10,
        mrd: 20,
        updates: 0,
        lease_time: 600,
        status_every: 1,
    };
    while let Some(flag) = a.next_flag()? {
        match flag.as_str() {
            "--help" | "-h" => return Ok(None),
            "--tap" => tap = Some(a.value::<String>(&flag)?),
            "--ip" => {
                let v: String = a.value(&flag)?;
                let (addr, len) = v
                    .split_once('/')
                    .ok_or_else(|| ArgError(format!("--ip {v}: expected IP/PREFIX")))?;
                ip = Some(
                    addr.parse::<Ipv4Addr>()
                        .map_err(|e| ArgError(format!("--ip {v}: {e}")))?,
                );
                o.prefix = len
                    .parse::<u8>()
                    .ok()
                    .filter(|p| *p <= 32)
                    .ok_or_else(|| ArgError(format!("--ip {v}: bad prefix length")))?;
            }
            "--partner" => partner = Some(a.value::<Ipv4Addr>(&flag)?),
            "--role" => {
                role = Some(match a.value::<String>(&flag)?.as_str() {
                    "primary" => Role::Primary,
                    "secondary" => Role::Secondary,
                    other => return Err(ArgError(format!("--role {other}: primary|secondary"))),
                })
            }
            "--name" => name = Some(a.value::<String>(&flag)?),
            "--pool" => {
                let v: String = a.value(&flag)?;
                let range = v.split_once('-').and_then(|(f, l)| {
                    Some((f.parse::<Ipv4Addr>().ok()?, l.parse::<Ipv4Addr>().ok()?))
                });
                let Some((f, l)) = range.filter(|(f, l)| f <= l) else {
                    return Err(ArgError(format!("--pool {v}: expected FIRST-LAST")));
                };
                if u32::from(l) - u32::from(f) >= POOL_CAP as u32 {
                    return Err(ArgError(format!(
                        "--pool {v}: at most {POOL_CAP} addresses"
                    )));
                }
                pool = Some((f, l));
            }
            "--port" => o.port = a.value(&flag)?,
            "--mac" => {
                let v: String = a.value(&flag)?;
                let mut m = [0u8; 6];
                let mut parts = v.split(':');
                for b in &mut m {
                    *b = parts
                        .next()
                        .and_then(|p| u8::from_str_radix(p, 16).ok())
                        .ok_or_else(|| ArgError(format!("--mac {v}: expected 6 hex bytes")))?;
                }
                o.mac = m;
            }
            "--mclt" => o.mclt = a.value(&flag)?,
            "--split" => o.split = a.value(&flag)?,
            "--mud" => o.mud = a.value(&flag)?,
            "--mrd" => o.mrd = a.value(&flag)?,
            "--updates" => o.updates = a.value(&flag)?,
            "--lease-time" => o.lease_time = a.value(&flag)?,
            "--status-every" => o.status_every = a.value(&flag)?,
            other => return Err(ArgError(format!("unknown option {other} (see --help)"))),
        }
    }
    let missing = |what: &str| ArgError(format!("{what} is required (see --help)"));
    o.tap = tap.ok_or_else(|| missing("--tap"))?;
    o.ip = ip.ok_or_else(|| missing("--ip"))?;
    o.partner = partner.ok_or_else(|| missing("--partner"))?;
    o.role = role.ok_or_else(|| missing("--role"))?;
    o.name = name.ok_or_else(|| missing("--name"))?;
    o.pool = pool.ok_or_else(|| missing("--pool"))?;
    if !(1..=32).contains(&o.mud) {
        return Err(ArgError("--mud must be 1..=32".into()));
    }
    if o.mrd < 3 {
        return Err(ArgError("--mrd must be at least 3 seconds".into()));
    }
    Ok(Some(o))
}

/// The host's clocks, as the engine and smoltcp take them: monotonic milliseconds since start
/// and the wall clock's Unix seconds.
struct Clock(std::time::Instant);

impl Clock {
    fn now(&self) -> Instant {
        Instant::from_millis(u64::try_from(self.0.elapsed().as_millis()).unwrap_or(u64::MAX))
    }

    fn smol(&self, t: Instant) -> SmolInstant {
        SmolInstant::from_millis(i64::try_from(t.as_millis()).unwrap_or(i64::MAX))
    }

    fn wall(&self) -> UnixTime {
        let s = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        UnixTime(u32::try_from(s).unwrap_or(u32::MAX))
    }
}

/// The lease table: one [`LeaseRecord`] per pool address, in address order, in a fixed-size
/// vector. Every change goes through the record's methods (the library's one contract).
struct Table {
    first: u32,
    role: Role,
    records: heapless::Vec<LeaseRecord, POOL_CAP>,
}

impl Table {
    fn new(role: Role, (first, last): (Ipv4Addr, Ipv4Addr)) -> Table {
        let mut records = heapless::Vec::new();
        for a in u32::from(first)..=u32::from(last) {
            // The range was checked against POOL_CAP.
            let _ = records.push(LeaseRecord::fresh(Ipv4Addr::from(a)));
        }
        Table {
            first: u32::from(first),
            role,
            records,
        }
    }

    fn index(&self, address: Ipv4Addr) -> Option<usize> {
        let i = usize::try_from(u32::from(address).checked_sub(self.first)?).ok()?;
        (i < self.records.len()).then_some(i)
    }

    fn get_mut(&mut self, address: [u8; 4]) -> Option<&mut LeaseRecord> {
        let i = self.index(Ipv4Addr::from(address))?;
        self.records.get_mut(i)
    }

    fn count(&self, status: BindingStatus) -> usize {
        self.records
            .iter()
            .filter(|r| r.local.status == status)
            .count()
    }
}

impl LeaseLookup for Table {
    fn lookup(&self, address: Ipv4Addr) -> Option<LocalBinding> {
        self.records.get(self.index(address)?).map(|r| r.local)
    }
}

impl BindingSource for Table {
    fn binding(&self, address: Ipv4Addr) -> Option<BindingData> {
        self.records
            .get(self.index(address)?)
            .map(|r| r.data.clone())
    }
}

/// Everything an engine output touches, apart from the framer (so that a message can go to
/// the engine straight out of the framer's buffer).
struct Core {
    engine: PeerEngine,
    table: Table,
    clock: Clock,
    /// The last state snapshot the engine asked to persist. Kept in memory: this example has no
    /// stable storage, so it restarts as a new server.
    persisted: Option<Persisted>,
    /// The answer to UPDREQ / UPDREQALL (§7.3, §7.4), the backlog (§9.8.1) or the addresses
    /// moved by pool balancing, under way as the engine's queue has room.
    walk: Option<BacklogWalk>,
    /// Records to queue again after [`Received::KeptOurs`] once the queue has room.
    requeue: heapless::Deque<[u8; 4], 32>,
    close_pending: bool,
    /// `--updates` still to grant, and the next client number.
    updates_left: u32,
    next_client: u32,
    lease_time: u32,
    // Counters for the status line.
    committed: u32,
    acked: u32,
    rejected: u32,
    bndack_sent: u32,
    bndupd_sent: u32,
    messages_in: u32,
}

impl Core {
    /// Carries out every action, then prints the events; `true` if there was any.
    fn carry_out(&mut self) -> bool {
        let mut any = false;
        while let Some(action) = self.engine.poll_action() {
            any = true;
            self.act(action);
        }
        while let Some(event) = self.engine.poll_event() {
            any = true;
            report_event(&event);
        }
        any
    }

    /// A binding the partner sent and the engine accepted: applied to the table, which is
    /// durable here, so confirmed at once (§7.2).
    fn commit(&mut self, c: Commit) {
        let Commit {
            token,
            binding,
            verdict,
        } = c;
        let Some(record) = self.table.get_mut(binding.address) else {
            // The engine judged it against our lookup, so this does not happen.
            let _ = self
                .engine
                .binding_commit_failed(token, RejectReason::IllegalIpAddress);
            return;
        };
        let received = record.apply_received(&binding, &verdict);
        let stored = record.local.status;
        // Applied to the table = durable here: the BNDACK may go (§7.2).
        let _ = self.engine.binding_committed(token);
        self.committed += 1;
        let hw = binding.hardware_address.as_ref().map(|(_, a)| a.as_slice());
        println!(
            "committed {} {stored} (sent as {}) {}",
            Ipv4Addr::from(binding.address),
            binding.status,
            Mac(hw.unwrap_or_default()),
        );
        if let Received::KeptOurs(_) = received
            && self.requeue.push_back(binding.address).is_err()
        {
            println!("warning: requeue list full; the backlog will carry it");
        }
    }

    fn act(&mut self, action: Action) {
        match action {
            Action::Persist { token, snapshot } => {
                // "Stable storage" is this variable: confirmed at once (§9.2).
                self.persisted = Some(snapshot);
                let _ = self.engine.persist_complete(token);
            }
            Action::BindingAcked { .. } => {
                if let Some((address, ack)) = action.ack() {
                    let role = self.table.role;
                    if let Some(r) = self.table.get_mut(address) {
                        r.apply_ack(&ack, role);
                    }
                    self.acked += 1;
                    println!("acked {} {}", Ipv4Addr::from(address), ack.status);
                }
            }
            Action::BindingRejected {
                update,
                address,
                reason,
                ..
            } => {
                if let Some(r) = self.table.get_mut(address) {
                    r.apply_reject(update);
                }
                self.rejected += 1;
                println!("rejected {} {reason}", Ipv4Addr::from(address));
            }
            Action::SendAllBindings | Action::SendUnackedBindings | Action::SendBacklog => {
                if let Some(walk) = BacklogWalk::for_action(&action) {
                    self.start_walk(walk);
                }
                // Before the next poll_action (see Action::SendBacklog).
                self.feed();
            }
            Action::PoolRequested => self.balance(BalanceTrigger::PoolReq),
            Action::PoolCheck => self.balance(BalanceTrigger::Manual),
            Action::CloseConnection => self.close_pending = true,
            other => println!("action {other:?}"),
        }
    }

    /// Pool balancing: the engine decides how many (§5.4, §7.6), the library which records
    /// move; they go with a walk over the records the partner lacks.
    fn balance(&mut self, trigger: BalanceTrigger) {
        let counts = PoolCounts::of(&self.table.records);
        let Ok(plan) = self.engine.balance_pools(counts, trigger) else {
            return;
        };
        let wall = self.clock.wall();
        let mut moved = 0;
        for r in balance_candidates(&plan, self.table.records.iter_mut()) {
            let b = r.given_to_partner(&plan, wall);
            r.apply_local(b, true);
            moved += 1;
        }
        if moved > 0 {
            println!(
                "balancing: {moved} addresses to the partner as {}",
                plan.give_as
            );
            self.start_walk(BacklogWalk::backlog());
            self.feed();
        }
    }

    /// Starts `walk`, or restarts the one under way to cover both.
    fn start_walk(&mut self, walk: BacklogWalk) {
        walk.begin(&mut self.table.records);
        self.walk = Some(match self.walk.take() {
            Some(under_way) => under_way.then(walk),
            None => walk,
        });
    }

    /// Queues what waits, as far as the engine's queue has room; `true` if anything moved.
    fn feed(&mut self) -> bool {
        let mut moved = false;
        while let Some(address) = self.requeue.front().copied() {
            let Some(r) = self.table.get_mut(address) else {
                self.requeue.pop_front();
                continue;
            };
            match r.send_again(&mut self.engine) {
                Ok(_) => moved = true,
                Err(EngineError::QueueFull) => return moved,
                Err(e) => println!("warning: {} not sent again: {e}", r.data.ip()),
            }
            self.requeue.pop_front();
        }
        if let Some(walk) = self.walk.as_mut() {
            let before = walk.queued();
            let walked = walk.walk(&mut self.table.records, &mut self.engine, |r, queued| {
                if let Err(e) = queued {
                    println!("warning: {} not sent: {e}", r.data.ip());
                }
            });
            moved |= walk.queued() != before;
            if walked == Walked::Done {
                self.walk = None;
                moved = true;
            }
        }
        moved
    }

    /// `--updates`: leases to made-up clients while the engine lets us allocate, each sent to
    /// the partner (the lazy update of §5.1). The address, the lease time (the MCLT rule,
    /// §5.2.1) and the binding come from the library.
    fn grant_updates(&mut self) {
        while self.updates_left > 0
            && self.engine.state() == ServerState::Normal
            && self.engine.send_queue_space() > 0
        {
            let now = self.clock.now();
            let wall = self.clock.wall();
            let n = self.next_client;
            let chaddr = [0x02, 0x00, 0x5e, 0x64, (n >> 8) as u8, n as u8];
            let client = LeaseClient {
                client_identifier: None,
                htype: 1,
                chaddr: &chaddr,
            };
            let me = client.identity();
            let endpoint = self.engine.endpoint(now);
            let pool = self.table.records.iter().map(|r| (r.data.ip(), r.local));
            let Some(address) = choose_address(&endpoint, pool, &me, None, wall) else {
                return; // none of ours yet (a secondary waits for BACKUP addresses)
            };
            let Some(record) = self.table.get_mut(address.octets()) else {
                return;
            };
            let grant = lease_time(
                &endpoint,
                &LeaseRequest {
                    now: wall,
                    desired: self.lease_time,
                    times: LeaseTimes::for_client(&record.local, record.holds(&me)),
                    partner_down: PartnerDownLeases::KeepMclt,
                },
            );
            let Ok(binding) = record.granted(&client, &grant, wall) else {
                return;
            };
            record.apply_local(binding, true);
            match record.send(&mut self.engine) {
                Ok(_) => {}
                Err(e) => {
                    println!("warning: lease of {address} not sent: {e}");
                    return;
                }
            }
            println!(
                "granted {address} to {} for {} s",
                Mac(&chaddr),
                grant.granted
            );
            self.updates_left -= 1;
            self.next_client += 1;
        }
    }

    fn status_line(&self) {
        let s = self.engine.status(self.clock.now());
        println!(
            "status: {} partner {} link {:?} queued {} unacked {} free {} backup {} active {} \
             committed {} bndack-sent {} bndupd-sent {} acked {} rejected {} messages-in {}",
            s.state,
            Opt(s.partner_state),
            s.link,
            s.queued,
            s.unacked_sent,
            self.table.count(BindingStatus::Free),
            self.table.count(BindingStatus::Backup),
            self.table.count(BindingStatus::Active),
            self.committed,
            self.bndack_sent,
            self.bndupd_sent,
            self.acked,
            self.rejected,
            self.messages_in,
        );
    }

    /// Hands every whole message in `bytes` to the engine, straight from the framer.
    fn deliver(&mut self, framer: &mut Framer, mut bytes: &[u8]) {
        let now = self.clock.now();
        let wall = self.clock.wall();
        loop {
            match framer.next_message(&mut bytes) {
                Ok(Some(msg)) => {
                    self.messages_in += 1;
                    // The engine refuses input while its output queues are full: empty them.
                    let mut tries = 0;
                    let mut commits = Commits::new();
                    while let Err(EngineError::EventsPending) =
                        self.engine
                            .handle_message(now, wall, msg, &self.table, &mut commits)
                    {
                        tries += 1;
                        if !self.carry_out() || tries > 2 {
                            println!("warning: engine outputs stuck; message dropped");
                            break;
                        }
                    }
                    while let Some(c) = commits.pop() {
                        self.commit(c);
                    }
                    self.carry_out();
                }
                Ok(None) => break,
                Err(e) => {
                    // A bad length: the stream cannot be framed any more (§6.1).
                    println!("warning: unframeable stream: {e}");
                    self.engine.disconnect(now, RejectReason::UnknownError);
                    break;
                }
            }
        }
    }
}

fn report_event(event: &Event) {
    match event {
        Event::StateChanged { from, to } => {
            println!("state {from} -> {to}");
        }
        Event::PartnerStateChanged { state, .. } => {
            println!("partner state {state}");
        }
        other => println!("event {other:?}"),
    }
}

/// A hardware address as `aa:bb:cc:dd:ee:ff` (`-` when unknown), without allocating.
struct Mac<'a>(&'a [u8]);

impl std::fmt::Display for Mac<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            return f.write_str("-");
        }
        for (i, b) in self.0.iter().enumerate() {
            write!(f, "{}{b:02x}", if i == 0 { "" } else { ":" })?;
        }
        Ok(())
    }
}

/// An optional value, `-` when absent.
struct Opt<T>(Option<T>);

impl<T: std::fmt::Display> std::fmt::Display for Opt<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Some(v) => v.fmt(f),
            None => f.write_str("-"),
        }
    }
}

/// One message the engine wrote, waiting for room in the socket's send buffer.
struct Outgoing {
    buf: [u8; MAX_MESSAGE_LEN],
    len: usize,
    sent: usize,
}

impl Outgoing {
    fn pending(&self) -> Option<&[u8]> {
        self.buf.get(self.sent..self.len).filter(|b| !b.is_empty())
    }
}

fn run(o: &Options) -> Result<(), String> {
    let clock = Clock(std::time::Instant::now());
    let mut device = TunTapInterface::new(&o.tap, Medium::Ethernet)
        .map_err(|e| format!("opening TAP {}: {e}", o.tap))?;
    let fd = device.as_raw_fd();
    let mut iface_config = IfaceConfig::new(EthernetAddress(o.mac).into());
    iface_config.random_seed = u64::from(clock.wall().0) ^ u64::from(std::process::id());
    let mut iface = Interface::new(iface_config, &mut device, clock.smol(clock.now()));
    iface.update_ip_addrs(|addrs| {
        let _ = addrs.push(IpCidr::new(IpAddress::Ipv4(o.ip), o.prefix));
    });

    // The socket set and the TCP buffers: fixed arrays, for the program's whole life.
    let mut socket_storage = [SocketStorage::EMPTY; 1];
    let mut rx_storage = [0u8; TCP_BUFFER];
    let mut tx_storage = [0u8; TCP_BUFFER];
    let mut sockets = SocketSet::new(&mut socket_storage[..]);
    let mut socket = tcp::Socket::new(
        tcp::SocketBuffer::new(&mut rx_storage[..]),
        tcp::SocketBuffer::new(&mut tx_storage[..]),
    );
    // Small messages, one at a time in each direction much of the handshake: no Nagle delay.
    socket.set_nagle_enabled(false);
    let handle = sockets.add(socket);

    let mut config = Config::new(o.role, &o.name, o.mclt);
    config.hba = Hba::split(o.split);
    config.max_unacked_bndupd = o.mud;
    config.receive_timer = o.mrd;
    let now = clock.now();
    let engine = PeerEngine::new(config, None, now, clock.wall(), std::process::id())
        .map_err(|e| format!("configuration: {e}"))?;
    let mut core = Core {
        engine,
        table: Table::new(o.role, o.pool),
        clock,
        persisted: None,
        walk: None,
        requeue: heapless::Deque::new(),
        close_pending: false,
        updates_left: o.updates,
        next_client: 1,
        lease_time: o.lease_time,
        committed: 0,
        acked: 0,
        rejected: 0,
        bndack_sent: 0,
        bndupd_sent: 0,
        messages_in: 0,
    };
    let mut framer = Framer::new();
    let mut out = Outgoing {
        buf: [0; MAX_MESSAGE_LEN],
        len: 0,
        sent: 0,
    };
    let mut rbuf = [0u8; READ_CHUNK];
    let mut connected = false;
    let mut closed_at: Option<Instant> = None;
    let mut next_attempt = now;
    let mut local_port: u16 = 49152 + (std::process::id() % 8192) as u16;
    let status_every = Duration::from_secs(o.status_every);
    let mut next_status = now;
    let partner = IpAddress::Ipv4(o.partner);
    println!(
        "smoltcp-peer: {} on {} ({}/{}), partner {}:{}, pool {}-{} ({} addresses)",
        if o.role == Role::Primary {
            "primary"
        } else {
            "secondary"
        },
        o.tap,
        o.ip,
        o.prefix,
        o.partner,
        o.port,
        o.pool.0,
        o.pool.1,
        core.table.records.len()
    );
    // What the protocol path holds, all of it fixed at start.
    println!(
        "memory: engine {} B, lease table {} B, framer {} B, TCP buffers 2 x {} B",
        size_of::<PeerEngine>(),
        size_of::<Table>(),
        size_of::<Framer>(),
        TCP_BUFFER
    );
    core.carry_out();

    loop {
        let now = core.clock.now();
        iface.poll(core.clock.smol(now), &mut device, &mut sockets);
        let socket = sockets.get_mut::<tcp::Socket<'_>>(handle);

        // The connection: up once established with the partner, down when either side ends it.
        if !connected && socket.state() == tcp::State::Established {
            let from = socket.remote_endpoint().map(|e| e.addr);
            if from != Some(partner) {
                // Not our partner: reset before a byte is read (§8.2; ISC does the same).
                println!("refused a connection from {from:?}");
                socket.abort();
            } else if core.engine.connection_up(now).is_ok() {
                connected = true;
                framer.reset();
                out.len = 0;
                out.sent = 0;
                println!("connected to {}:{}", o.partner, o.port);
            } else {
                socket.abort();
            }
        } else if connected && !(socket.may_recv() && socket.may_send()) && !socket.can_recv() {
            // The partner closed or reset the connection (a killed dhcpd: its kernel's FIN).
            println!("disconnected ({})", socket.state());
            core.engine.connection_down(now);
            connected = false;
            socket.abort();
        }
        if !connected {
            match socket.state() {
                tcp::State::Closed => {
                    closed_at = None;
                    if o.role == Role::Secondary {
                        if let Err(e) = socket.listen(o.port) {
                            return Err(format!("listen on port {}: {e}", o.port));
                        }
                    } else if now >= next_attempt {
                        // The primary connects (§8.2), from a new port each time so that a
                        // late segment of the last connection cannot land in this one.
                        local_port = if local_port >= 65000 {
                            49152
                        } else {
                            local_port + 1
                        };
                        if let Err(e) =
                            socket.connect(iface.context(), (partner, o.port), local_port)
                        {
                            println!("warning: connect: {e}");
                        }
                        next_attempt = now + RECONNECT;
                    }
                }
                tcp::State::Listen | tcp::State::SynSent | tcp::State::SynReceived => {}
                _ => {
                    // A connection we closed, finishing (FIN-WAIT, TIME-WAIT): cut it short.
                    let since = *closed_at.get_or_insert(now);
                    if now.saturating_duration_since(since) >= CLOSE_LINGER
                        || socket.state() == tcp::State::TimeWait
                    {
                        socket.abort();
                    }
                }
            }
        }

        // Bytes from the partner to the engine.
        if connected {
            while socket.can_recv() {
                match socket.recv_slice(&mut rbuf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => core.deliver(&mut framer, rbuf.get(..n).unwrap_or_default()),
                }
            }
        }

        // The engine's timers, the `--updates` leases, then its outputs.
        if core.engine.poll_timeout().is_some_and(|t| t <= now) {
            core.engine.handle_timeout(now);
        }
        core.carry_out();
        if core.updates_left > 0 && core.engine.link() == Link::Up {
            core.grant_updates();
        }
        // Actions may queue bindings and the queue may free room: until nothing moves.
        for _ in 0..1000 {
            let moved = core.feed();
            if !core.carry_out() && !moved {
                break;
            }
        }

        // Messages to the socket's send buffer, one whole message at a time.
        let socket = sockets.get_mut::<tcp::Socket<'_>>(handle);
        if connected {
            loop {
                if let Some(rest) = out.pending() {
                    match socket.send_slice(rest) {
                        Ok(n) => out.sent += n,
                        Err(_) => break,
                    }
                    if out.pending().is_some() {
                        break; // the send buffer is full: the rest after the next poll
                    }
                    continue;
                }
                match core.engine.poll_transmit(now, &mut out.buf, &core.table) {
                    Some(n) => {
                        out.len = n;
                        out.sent = 0;
                        match Repr::parse(out.buf.get(..n).unwrap_or_default())
                            .map(|r| r.message_type())
                        {
                            Ok(MessageType::BndAck) => core.bndack_sent += 1,
                            Ok(MessageType::BndUpd) => core.bndupd_sent += 1,
                            _ => {}
                        }
                    }
                    None => break,
                }
            }
            if core.close_pending && out.pending().is_none() {
                // The engine's last messages (a DISCONNECT) are in the send buffer: FIN after
                // them (§7.12), then the engine hears the connection is gone.
                core.close_pending = false;
                socket.close();
                core.engine.connection_down(now);
                connected = false;
                println!("closed the connection");
            }
        } else {
            core.close_pending = false;
        }
        core.carry_out();

        if o.status_every > 0 && now >= next_status {
            core.status_line();
            next_status = now + status_every;
        }

        // Sleep until the TAP has a frame, smoltcp has work, or the engine's next deadline.
        let iface_at = iface.poll_delay(core.clock.smol(now), &sockets);
        let engine_at = core
            .engine
            .poll_timeout()
            .map(|t| t.saturating_duration_since(now));
        let mut wait = Duration::from_millis(200);
        if let Some(d) = engine_at {
            wait = wait.min(d);
        }
        if let Some(d) = iface_at {
            wait = wait.min(Duration::from_micros(d.total_micros()));
        }
        if o.status_every > 0 {
            wait = wait.min(next_status.saturating_duration_since(now));
        }
        phy_wait(fd, Some(SmolDuration::from_micros(wait.as_micros() as u64)))
            .map_err(|e| format!("waiting on the TAP: {e}"))?;
    }
}

fn main() -> ExitCode {
    let opts = match parse_args(std::env::args().skip(1)) {
        Ok(Some(o)) => o,
        Ok(None) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("smoltcp-peer: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("smoltcp-peer: {e}");
            ExitCode::FAILURE
        }
    }
}
