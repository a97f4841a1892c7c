//! A DHCPv4 server on the failover library: the code behind `cargo run --example dhcp-server`.
//!
//! It serves clients on UDP (port 67; direct and relayed), from one or more pools, and pairs with a
//! failover partner (ISC dhcpd or another `dhcp-server`) through failover-tokio. Every failover
//! decision is a library call ([`serve`]): whom to answer ([`failover_tokio::Handle::may_answer`],
//! RFC 3074 load balancing), which address
//! ([`failover_fsm::policy::choose_address`], [`failover_fsm::policy::judge_request`]), for
//! how long ([`failover_tokio::Handle::lease_time`]), what to tell the partner
//! ([`failover_fsm::record::LeaseRecord::granted`] and its siblings, then
//! [`failover_tokio::Handle::send_binding`], awaited before the DHCPACK goes out).
//!
//! With several pools each names its subnet, and a client is served from the pool of its
//! network: the one holding its ciaddr, else the one whose subnet holds the relay's giaddr,
//! else our server identifier's; each pool is balanced on its own. Limits: replies to a
//! direct client without an address are broadcast (a UDP socket cannot add the ARP entry a
//! unicast to `yiaddr` needs); the DHCP messages are decided one at a time, each ACK waiting
//! for its binding to be durable ([`serve::RECORD_TIMEOUT`] bounds each wait: no ACK then)
//! while the next messages are handled.
//!
//! ```
//! use failover_examples::dhcp_server::{Parsed, parse_args};
//! let args = ["--listen", "127.0.0.1:6767", "--pool", "10.0.0.10-10.0.0.20",
//!             "--role", "primary", "--peer-listen", "127.0.0.1:6647",
//!             "--partner", "127.0.0.2:6647", "--name", "dhcp", "--plaintext"];
//! let Ok(Parsed::Run(o)) = parse_args(args) else { panic!() };
//! assert_eq!(o.listen.port(), 6767);
//! assert_eq!(o.peer.listen.port(), 6647);
//! ```

pub mod offers;
pub mod serve;
pub mod wire;

use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use failover_fsm::{BindingStatus, Config};
use failover_tokio::Handle;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::console::{ArgError, Args, Console, Style, thousands};
use crate::peer::{PeerOptions, PeerStore, Printer, start_admin, start_peer, status_line};
use serve::{Handled, Ports, Recording, Server};
use wire::{Network, Pool};

/// `--help`.
pub const USAGE: &str = "\
dhcp-server — a DHCPv4 server with failover (draft-ietf-dhc-failover-12)

USAGE:
    cargo run --example dhcp-server -- --pool FIRST-LAST --role primary|secondary
        --peer-listen IP:PORT --partner IP:PORT --name NAME (--plaintext | --tls-cert ...) [OPTIONS]

Serves DHCP clients (DISCOVER, REQUEST, RELEASE, DECLINE, INFORM; direct and relayed) from one
or more pools, in a failover pair with ISC dhcpd or another dhcp-server. Whom it answers, which address,
for how long and what the partner is told are the failover library's rules.

DHCP:
    --listen IP:PORT           where clients and relays send (default 0.0.0.0:67; below 1024
                               needs root or CAP_NET_BIND_SERVICE)
    --pool FIRST-LAST[,subnet=MASK|PREFIX][,router=IP]
                               a pool, e.g. 10.0.0.10-10.0.0.250 (required; the same on both
                               servers). Repeat it for several subnets: each pool then needs
                               a subnet (its own, or --subnet), and a client gets an address
                               of the pool of its network (its ciaddr, else the relay's
                               giaddr, else our server identifier); a request for an address
                               of another network is NAKed; each pool is balanced between
                               the two servers on its own
    --server-id IP             option 54, an address of ours clients can reach (default: the
                               --listen address; required when that is 0.0.0.0)
    --subnet MASK|PREFIX       option 1, e.g. 255.255.255.0 or 24
    --router IP                option 3
    --lease-time S             the lease time we want to grant (default 3600); the MCLT rules
                               may shorten it
    --lb-max-secs N            clients whose `secs` exceed N are answered by both servers
                               (ISC `load balance max seconds`, default 3; 0: no load balancing)
    --relay-port N             port replies to relayed messages go to, at giaddr (default 67)
    --client-port N            port replies to clients go to (default 68)
    --status-every S           a status line every S seconds (default 10; 0: only on request)

FAILOVER (as the `peer` example):
    --role primary|secondary   our role
    --peer-listen IP:PORT      where the partner connects to us (ISC: 647)
    --partner IP:PORT          the partner's failover address
    --name NAME                relationship name (ISC's `failover peer \"NAME\"`)
    --plaintext                plain TCP to the partner (ISC dhcpd); or TLS 1.3 with
    --tls-cert FILE --tls-key FILE --tls-ca FILE --tls-partner-name NAME (see the `peer`
                               example's --help); one of the two is required
    --secret FILE              sign and check every failover message with HMAC-SHA256 over
                               the shared secret in FILE (message-digest, not with ISC)
    --bind IP                  source address of our connections to the partner
    --mclt S                   maximum client lead time (default 3600)
    --split N                  hash buckets 0..N-1 of 256 served by the primary (default 128)
    --mud N                    max-unacked-bndupd we advertise, 1..=512 (default 128: the
                               partner may send that many BNDUPDs before our BNDACKs; the
                               `peer` example's default is ISC's 10)
    --mrd S                    max-response-delay
    --auto-partner-down S      COMMUNICATIONS-INTERRUPTED → PARTNER-DOWN after S seconds
    --store FILE               leases in FILE (fsync'd append-only log; default: memory)
    --admin IP:PORT            operator's HTTP endpoints: GET /metrics (Prometheus), GET
                               /status (JSON), POST /partner-down[?force=1]
    -h, --help                 this text

COMMANDS (one a line on stdin) AND SIGNALS:
    partner-down, SIGUSR2      the operator declares the partner down (PARTNER-DOWN, §9.4):
                               taken in COMMUNICATIONS-INTERRUPTED only
    partner-down force         the same from any state the rule book allows
    status, SIGUSR1            print a status line
    SIGINT, SIGTERM            graceful shutdown (SHUTDOWN to the partner, then DISCONNECT)

EXAMPLE (a pair on one machine, clients relayed to 127.0.0.1 and 127.0.0.2):
    cargo run --example dhcp-server -- --listen 127.0.0.1:6767 --pool 10.0.0.10-10.0.0.250 \\
        --role primary --peer-listen 127.0.0.1:6647 --partner 127.0.0.2:6647 --name demo \\
        --mclt 60 --plaintext
    cargo run --example dhcp-server -- --listen 127.0.0.2:6767 --pool 10.0.0.10-10.0.0.250 \\
        --role secondary --peer-listen 127.0.0.2:6647 --partner 127.0.0.1:6647 --name demo \\
        --plaintext
";

/// Everything the command line sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerOptions {
    /// The failover side (`--peer-listen` is its `listen`).
    pub peer: PeerOptions,
    /// `--listen`.
    pub listen: SocketAddr,
    /// `--server-id`, or the `--listen` address.
    pub server_id: Ipv4Addr,
    /// `--subnet`.
    pub subnet_mask: Option<Ipv4Addr>,
    /// `--router`.
    pub router: Option<Ipv4Addr>,
    /// `--lease-time`.
    pub lease_time: u32,
    /// `--lb-max-secs`.
    pub lb_max_secs: u16,
    /// `--relay-port`, `--client-port`.
    pub ports: Ports,
    /// `--status-every` (0: off).
    pub status_every: u32,
    /// `--pool` (repeated), with their subnets and routers.
    pub pools: Vec<Pool>,
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// Run the server.
    Run(Box<ServerOptions>),
    /// Print [`USAGE`].
    Help,
}

/// `FIRST-LAST[,subnet=MASK|PREFIX][,router=IP]`.
fn parse_pool_spec(s: &str) -> Result<Pool, ArgError> {
    let mut parts = s.split(',');
    let (first, last) = crate::peer::parse_pool(parts.next().unwrap_or(""))?;
    let mut pool = Pool {
        first,
        last,
        subnet_mask: None,
        router: None,
    };
    for part in parts {
        match part.trim().split_once('=') {
            Some(("subnet", m)) => pool.subnet_mask = Some(parse_mask(m)?),
            Some(("router", r)) => {
                pool.router = Some(
                    r.parse()
                        .map_err(|e| ArgError(format!("--pool {s}: router {r}: {e}")))?,
                );
            }
            _ => {
                return Err(ArgError(format!(
                    "--pool {s}: `{part}`: expected subnet=MASK|PREFIX or router=IP"
                )));
            }
        }
    }
    Ok(pool)
}

/// `255.255.255.0` or `24`.
fn parse_mask(s: &str) -> Result<Ipv4Addr, ArgError> {
    let bad = || ArgError(format!("--subnet {s}: expected a mask or a prefix length"));
    if let Ok(mask) = s.parse::<Ipv4Addr>() {
        let m = u32::from(mask);
        // Contiguous ones, then zeros.
        return if m.leading_ones() + m.trailing_zeros() == 32 {
            Ok(mask)
        } else {
            Err(bad())
        };
    }
    let len: u32 = s.trim_start_matches('/').parse().map_err(|_| bad())?;
    match len {
        0 => Ok(Ipv4Addr::UNSPECIFIED),
        1..=32 => Ok(Ipv4Addr::from(u32::MAX << (32 - len))),
        _ => Err(bad()),
    }
}

/// Parses the arguments after the program name. The failover options go to
/// [`crate::peer::parse_args`] (`--peer-listen` as its `--listen`).
pub fn parse_args<I, S>(args: I) -> Result<Parsed, ArgError>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let mut args = Args::new(args);
    let mut peer_args: Vec<String> = Vec::new();
    let mut listen = SocketAddr::from(([0, 0, 0, 0], 67));
    let mut server_id = None;
    let (mut subnet_mask, mut router) = (None, None);
    let mut pools = Vec::new();
    let (mut lease_time, mut lb_max_secs, mut status_every) = (3600u32, 3u16, 10u32);
    let mut ports = Ports {
        client: 68,
        relay: 67,
    };
    while let Some(flag) = args.next_flag()? {
        match flag.as_str() {
            "-h" | "--help" => return Ok(Parsed::Help),
            "--listen" => listen = args.value(&flag)?,
            "--server-id" => server_id = Some(args.value(&flag)?),
            "--subnet" => subnet_mask = Some(parse_mask(&args.value::<String>(&flag)?)?),
            "--router" => router = Some(args.value(&flag)?),
            "--lease-time" => lease_time = args.value(&flag)?,
            "--lb-max-secs" => lb_max_secs = args.value(&flag)?,
            "--relay-port" => ports.relay = args.value(&flag)?,
            "--client-port" => ports.client = args.value(&flag)?,
            "--status-every" => status_every = args.value(&flag)?,
            "--peer-listen" => {
                peer_args.push("--listen".into());
                peer_args.push(args.value(&flag)?);
            }
            "--quiet" | "-q" => {}
            // The one failover option without a value.
            "--plaintext" => peer_args.push(flag.clone()),
            "--listen-peer" => return Err(ArgError("did you mean --peer-listen?".into())),
            "--pool" => {
                let pool = parse_pool_spec(&args.value::<String>(&flag)?)?;
                peer_args.push(flag.clone());
                peer_args.push(format!("{}-{}", pool.first, pool.last));
                pools.push(pool);
            }
            other => {
                peer_args.push(other.into());
                peer_args.push(args.value(&flag)?);
            }
        }
    }
    if pools.is_empty() {
        return Err(ArgError("--pool is required (see --help)".into()));
    }
    if !peer_args.iter().any(|a| a == "--listen") {
        return Err(ArgError("--peer-listen is required (see --help)".into()));
    }
    if !peer_args.iter().any(|a| a == "--mud") {
        // Each BNDUPD carries one binding, and each waits for the partner's sync before its
        // BNDACK: ISC's 10 in flight bounded a pair of ours at ~9,500 DORA/s
        // (BENCHMARKS.md, issue 12). ISC as partner honours what we advertise.
        peer_args.push("--mud".into());
        peer_args.push(DEFAULT_MUD.to_string());
    }
    let mut peer = match crate::peer::parse_args(peer_args)? {
        crate::peer::Parsed::Run(p) => p,
        crate::peer::Parsed::Help => return Ok(Parsed::Help),
    };
    // A line per binding would drown the DHCP traffic: counts per status line instead.
    peer.quiet = true;
    let server_id = match (server_id, listen.ip()) {
        (Some(id), _) => id,
        (None, IpAddr::V4(ip)) if !ip.is_unspecified() => ip,
        _ => {
            return Err(ArgError(
                "--server-id is required when --listen is not one IPv4 address".into(),
            ));
        }
    };
    if lease_time == 0 {
        return Err(ArgError("--lease-time must be above 0".into()));
    }
    // Several pools: each needs a subnet to tell the clients' networks apart.
    for p in &mut pools {
        p.subnet_mask = p.subnet_mask.or(subnet_mask);
        p.router = p.router.or(router);
    }
    if pools.len() > 1
        && let Some(p) = pools.iter().find(|p| p.subnet_mask.is_none())
    {
        return Err(ArgError(format!(
            "--pool {}-{}: with several pools each needs a subnet (subnet=… or --subnet)",
            p.first, p.last
        )));
    }
    Ok(Parsed::Run(Box::new(ServerOptions {
        peer,
        listen,
        server_id,
        subnet_mask,
        router,
        lease_time,
        lb_max_secs,
        ports,
        status_every,
        pools,
    })))
}

impl ServerOptions {
    /// The engine configuration: the peer's, with load balancing on.
    pub fn config(&self) -> Config {
        let mut c = self.peer.config();
        c.load_balance_max_seconds = self.lb_max_secs;
        c
    }
}

/// An operator's command (stdin or a signal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Print a status line.
    Status,
    /// Declare the partner down; `true`: forced (from a state other than
    /// COMMUNICATIONS-INTERRUPTED).
    PartnerDown(bool),
}

const ME: &str = "dhcp";

/// `--mud` unless given (up to [`failover_tokio::MAX_UNACKED_BNDUPD`] may be): the window
/// issue 12's figures were measured with (BENCHMARKS.md).
pub const DEFAULT_MUD: u32 = 128;

/// Most bindings being recorded at once; the socket is not read beyond (back-pressure: the
/// kernel's buffer holds the next messages, then drops them as a saturated server must).
/// About 100 ms of REQUESTs at 8,000/s: a short sync stall is absorbed here rather than in
/// the kernel's smaller buffer, a longer overload is shed at the socket instead of queued
/// (4,096 gave the same saturation rate with seconds of delay, BENCHMARKS.md).
const MAX_RECORDING: usize = 1024;

/// Most datagrams read in one go when the socket holds several: their bindings go to the
/// failover task as one request.
const BURST: usize = 64;

/// Decides one datagram: sends its reply now, or adds its binding to `batch`.
async fn take(
    server: &mut Server,
    socket: &UdpSocket,
    datagram: &[u8],
    batch: &mut Vec<Recording>,
) {
    match server.begin(datagram) {
        Ok(Handled::Reply(Some(out))) => {
            let _ = socket.send_to(&out.bytes, out.to).await;
        }
        // Recorded while the next messages are handled: the failover task makes the bindings
        // of many durable with one sync (group commit).
        Ok(Handled::Record(r)) => batch.push(r),
        Ok(Handled::Reply(None)) => {}
        // Counted (`bad` in the status line); a client's garbage is no news.
        Err(_) => {}
    }
}

/// The status line: the DHCP side, then the failover side.
pub fn dhcp_status(server: &Server, handle: &Handle, store: &PeerStore) -> String {
    let c = &server.counters;
    format!(
        "dhcp: {} offers, {} acks, {} naks, {} silent, {} not ours, {} without address, {} \
         released, {} expired, {} bad · {}",
        thousands(c.offers),
        thousands(c.acks),
        thousands(c.naks),
        thousands(c.silent),
        thousands(c.not_ours),
        thousands(c.no_address),
        thousands(c.releases),
        thousands(c.expired),
        thousands(c.bad),
        status_line(&handle.status(), handle, store)
    )
}

/// Runs the server until `stop` completes, then shuts the failover peer down gracefully.
/// `started` gets the handle and the DHCP socket's address once both listen.
pub async fn run(
    opts: &ServerOptions,
    console: &Console,
    stop: impl Future<Output = ()>,
    mut commands: mpsc::Receiver<Command>,
    started: impl FnOnce(&Handle, SocketAddr),
) -> io::Result<()> {
    let store = PeerStore::open_blocking(&opts.peer).await?;
    let socket = UdpSocket::bind(opts.listen).await?;
    socket.set_broadcast(true)?;
    let config = opts.config();
    let dialect = config.dialect;
    let (handle, mut events) = start_peer(&opts.peer, config, store.clone()).await?;
    let local = socket.local_addr()?;
    console.line(
        ME,
        console.paint(
            Style::Bold,
            format!(
                "DHCP on {local} (server id {}), pool {} addresses, failover {} on {} with {}",
                opts.server_id,
                thousands(store.counts().known as u64),
                match opts.peer.role {
                    failover_fsm::Role::Primary => "primary",
                    failover_fsm::Role::Secondary => "secondary",
                },
                handle.local_addr(),
                opts.peer.partner
            ),
        ),
    );
    console.line(ME, format!("store: {}", store.describe()));
    let admin = start_admin(&opts.peer, console, &handle, &store).await?;
    started(&handle, local);
    let mut server = Server::new(
        handle.clone(),
        store.clone(),
        dialect,
        Network {
            server_id: opts.server_id,
            subnet_mask: opts.subnet_mask,
            router: opts.router,
        },
        opts.ports,
        opts.lease_time,
    )
    .with_pools(opts.pools.clone());
    let mut printer = Printer::new(console, true);
    let every = Duration::from_secs(u64::from(opts.status_every.max(1)));
    let mut status_tick = tokio::time::interval(every);
    status_tick.tick().await;
    let mut expiry_tick = tokio::time::interval(Duration::from_secs(1));
    let mut commands_open = true;
    let mut buf = vec![0u8; 4096];
    let mut recordings = tokio::task::JoinSet::new();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => break,
            event = events.recv() => match event {
                Some(e) => printer.event(e),
                None => return Err(io::Error::other("the failover task stopped")),
            },
            got = socket.recv_from(&mut buf), if server.recording() < MAX_RECORDING => {
                let mut batch = Vec::new();
                if let Ok((n, _from)) = got {
                    take(&mut server, &socket, buf.get(..n).unwrap_or_default(), &mut batch).await;
                }
                // And what else the socket holds already: one request to the failover task for
                // the burst. (An error is ICMP port unreachable from an earlier reply and the
                // like: not fatal.)
                for _ in 1..BURST {
                    if server.recording() >= MAX_RECORDING {
                        break;
                    }
                    match socket.try_recv_from(&mut buf) {
                        Ok((n, _from)) => {
                            let datagram = buf.get(..n).unwrap_or_default();
                            take(&mut server, &socket, datagram, &mut batch).await;
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(_) => {}
                    }
                }
                if !batch.is_empty() {
                    recordings.spawn(server.record_later(batch));
                }
            }
            Some(done) = recordings.join_next(), if !recordings.is_empty() => {
                let Ok(done) = done else { continue };
                for out in server.recorded(done) {
                    let _ = socket.send_to(&out.bytes, out.to).await;
                }
            }
            _ = expiry_tick.tick() => {
                // Recorded beside the clients' messages, not in their way: the expired
                // addresses wait (as being recorded) until the failover task has them durable.
                if let Some(ended) = server.begin_expiry() {
                    console.line(ME, format!("{} leases expired", ended.len()));
                    recordings.spawn(server.record_later(ended));
                }
            }
            _ = status_tick.tick(), if opts.status_every > 0 => {
                printer.flush_counts();
                console.line(ME, dhcp_status(&server, &handle, &store));
            }
            cmd = commands.recv(), if commands_open => match cmd {
                Some(Command::Status) => console.line(ME, dhcp_status(&server, &handle, &store)),
                Some(Command::PartnerDown(force)) => {
                    console.line(ME, console.paint(Style::Yellow, "operator: partner down"));
                    match handle.partner_down(force).await {
                        Ok(()) => {}
                        Err(failover_tokio::PeerError::Engine(e)) => console.line(
                            ME,
                            console.paint(Style::Yellow, format!("partner down refused: {e}")),
                        ),
                        Err(_) => return Err(io::Error::other("the failover task stopped")),
                    }
                }
                None => commands_open = false,
            },
        }
    }
    // The bindings under way are recorded, and their clients answered, before the partner is
    // told we stop (each wait is bounded by RECORD_TIMEOUT).
    while let Some(done) = recordings.join_next().await {
        for out in done.map(|d| server.recorded(d)).unwrap_or_default() {
            let _ = socket.send_to(&out.bytes, out.to).await;
        }
    }
    console.line(ME, "shutting down");
    {
        let shutdown = handle.shutdown();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                Some(e) = events.recv() => printer.event(e),
            }
        }
    }
    printer.flush_counts();
    if let Some(a) = admin {
        a.abort();
    }
    console.line(ME, dhcp_status(&server, &handle, &store));
    let active = store.memory().count(BindingStatus::Active);
    console.line(ME, format!("stopped with {active} ACTIVE leases"));
    Ok(())
}
