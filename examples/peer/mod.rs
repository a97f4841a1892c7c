//! A standalone failover peer: the library behind `cargo run --example peer`.
//!
//! It speaks draft-12 failover to any partner (ISC dhcpd's `failover peer` statement, or another
//! copy of itself), prints every state change and binding that goes by, keeps its lease table
//! in memory or in an fsync'd log file ([`failover_tokio::FileStore`], `--store`), prints a
//! status line on request (SIGUSR1) or periodically, and shuts down gracefully (SHUTDOWN, then
//! DISCONNECT) when told (SIGINT/SIGTERM). It serves no DHCP clients itself.
//!
//! [`parse_args`] reads the command line into [`PeerOptions`]; [`run`] is the program, with
//! the signals passed in as a future and a channel so that tests can drive it.
//!
//! ```
//! use failover_examples::peer::{Parsed, parse_args};
//! let args = ["--role", "secondary", "--listen", "127.0.0.1:6647",
//!             "--partner", "127.0.0.1:7647", "--name", "dhcp-failover", "--plaintext"];
//! let Ok(Parsed::Run(o)) = parse_args(args) else { panic!() };
//! assert_eq!(o.partner.port(), 7647);
//! assert_eq!(o.mclt, 3600);
//! ```

use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use failover_fsm::accept::{LocalBinding, Verdict};
use failover_fsm::policy::{BalancePlan, PoolCounts};
use failover_fsm::record::{Ack, BacklogWalk, Queued, Received, UpdateQueue, Walked};
use failover_fsm::{
    Action, BindingData, BindingSource, BindingStatus, Commit, Config, Event, Hba, LeaseLookup,
    Persisted, Role, Status, UnixTime, UpdateId,
};
use failover_proto::auth::HmacSha256;
use failover_tokio::{
    FileStore, Handle, MemoryStore, PeerBuilder, PeerEvent, Storage, TlsConfig, wall_clock,
};
use tokio::sync::mpsc;

use crate::console::{ArgError, Args, Console, Style, mac, state_name, thousands};

/// `--help`.
pub const USAGE: &str = "\
peer — a standalone DHCP failover peer (draft-ietf-dhc-failover-12, TCP)

USAGE:
    cargo run --example peer -- --role primary|secondary --listen IP:PORT --partner IP:PORT
                                --name NAME (--plaintext | --tls-cert ...) [OPTIONS]

Pairs with any draft-12 failover partner (ISC dhcpd, or another `peer`), prints state changes
and the bindings that go by, and keeps a lease table. It serves no DHCP clients itself.

REQUIRED:
    --role primary|secondary   our role in the relationship
    --listen IP:PORT           where to accept the partner's connection (ISC: port 647;
                               ports below 1024 need root or CAP_NET_BIND_SERVICE)
    --partner IP:PORT          the partner's failover address (ISC: `peer address` and
                               `peer port`); connections from any other address are refused
    --name NAME                relationship name: ISC's `failover peer \"NAME\"`, byte for byte

THE LINK (one of):
    --plaintext                plain TCP, as ISC dhcpd speaks it: anyone on the path reads
                               and can forge the lease updates
    --tls-cert FILE --tls-key FILE --tls-ca FILE --tls-partner-name NAME
                               TLS 1.3 to another `peer` (or the library): our certificate
                               chain and key (PEM), the CA the partner's certificate must
                               chain to, and the DNS name or IP address it must name. Both
                               certificates need the serverAuth and clientAuth key usages

MESSAGE AUTHENTICATION (optional, with either link):
    --secret FILE              sign every message and check every one received with
                               HMAC-SHA256 over the shared secret in FILE (its bytes, a final
                               newline left out): the draft's message-digest option (§12.17),
                               digest type 254. The partner needs the same secret; a message
                               without it or with a wrong one is refused and the connection
                               closed. ISC dhcpd signs nothing: not with ISC

OPTIONS:
    --bind IP                  source address of our connections (ISC accepts only its
                               configured `peer address`); default: chosen by the OS
    --mclt S                   maximum client lead time, seconds (default 3600). The primary's
                               is sent in CONNECT; a secondary learns it from its primary
    --split N                  hash buckets 0..N-1 of 256 for the primary (ISC `split`,
                               default 128); a secondary learns the primary's
    --mud N                    max-unacked-bndupd we advertise, 1..=512 (ISC
                               `max-unacked-updates`, default 10)
    --mrd S                    max-response-delay: the partner must send something every S
                               seconds or the connection is dropped (default 20, at least 3)
    --auto-partner-down S      go from COMMUNICATIONS-INTERRUPTED to PARTNER-DOWN after S
                               seconds (ISC `auto-partner-down`; default: never)
    --store FILE               keep leases and state in FILE, an append-only log fsync'd before
                               anything is acknowledged (replayed at start); default: memory
    --pool FIRST-LAST          the addresses of the relationship's pools (e.g.
                               10.0.0.10-10.0.0.250; repeat it for several pools), all FREE
                               at first; updates for other addresses are rejected (reason 1).
                               Default: any address the partner sends is accepted and learnt
    --status-every S           print a status line every S seconds (default: only on SIGUSR1)
    --admin IP:PORT            serve the operator's HTTP endpoints there: GET /metrics
                               (Prometheus), GET /status (JSON), POST /partner-down (only in
                               COMMUNICATIONS-INTERRUPTED; ?force=1 from other states)
    --quiet                    no line per binding: a count per second instead
    -h, --help                 this text

SIGNALS:
    SIGUSR1                    print a status line
    SIGINT, SIGTERM            graceful shutdown: SHUTDOWN is announced, the partner gets a few
                               seconds to take over, then DISCONNECT

ENVIRONMENT:
    RUST_LOG                   tracing filter for the failover task's log on stderr (default
                               warn), e.g. RUST_LOG=failover_tokio=debug

EXAMPLE (two peers on one machine):
    cargo run --example peer -- --role primary   --listen 127.0.0.1:6647 \\
        --partner 127.0.0.1:7647 --name demo --mclt 30 --pool 10.0.0.10-10.0.0.250 --plaintext
    cargo run --example peer -- --role secondary --listen 127.0.0.1:7647 \\
        --partner 127.0.0.1:6647 --name demo --pool 10.0.0.10-10.0.0.250 --plaintext
";

/// How the link to the partner is carried (`--plaintext` or the `--tls-*` options).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    /// `--plaintext`.
    Plaintext,
    /// `--tls-cert`, `--tls-key`, `--tls-ca`, `--tls-partner-name`.
    Tls(Box<TlsFiles>),
}

/// The `--tls-*` options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// Our certificate chain (PEM).
    pub cert: PathBuf,
    /// Our private key (PEM).
    pub key: PathBuf,
    /// The CA certificates the partner's must chain to (PEM).
    pub ca: PathBuf,
    /// The identity the partner's certificate must name.
    pub partner_name: String,
}

/// Everything the command line sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerOptions {
    /// `--role`.
    pub role: Role,
    /// `--listen`.
    pub listen: SocketAddr,
    /// `--partner`.
    pub partner: SocketAddr,
    /// `--bind`.
    pub bind: Option<IpAddr>,
    /// `--name`.
    pub name: String,
    /// `--mclt`, seconds.
    pub mclt: u32,
    /// `--split`: hash buckets of the primary.
    pub split: u16,
    /// `--mud`: max-unacked-bndupd.
    pub mud: u32,
    /// `--mrd`: max-response-delay (our receive timer), seconds.
    pub mrd: u32,
    /// `--auto-partner-down`, seconds.
    pub auto_partner_down: Option<u32>,
    /// `--store`.
    pub store: Option<PathBuf>,
    /// `--pool` (repeated): the first and last address of each pool.
    pub pools: Vec<(Ipv4Addr, Ipv4Addr)>,
    /// `--status-every`, seconds.
    pub status_every: Option<u32>,
    /// `--admin`: where to serve `/metrics`, `/status` and `/partner-down`.
    pub admin: Option<SocketAddr>,
    /// `--quiet`.
    pub quiet: bool,
    /// `--plaintext` or `--tls-*`.
    pub link: Link,
    /// `--secret`: the file holding the shared secret of the message digest.
    pub secret: Option<PathBuf>,
}

/// Largest pool `--pool` accepts (the store holds one record per address).
pub const MAX_POOL: u32 = 1 << 20;

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)] // made once per run; boxing would only add noise
pub enum Parsed {
    /// Run the peer.
    Run(PeerOptions),
    /// Print [`USAGE`].
    Help,
}

fn parse_role(s: &str) -> Result<Role, ArgError> {
    match s.to_ascii_lowercase().as_str() {
        "primary" | "p" => Ok(Role::Primary),
        "secondary" | "s" => Ok(Role::Secondary),
        _ => Err(ArgError(format!(
            "--role {s}: expected `primary` or `secondary`"
        ))),
    }
}

/// Parses `FIRST-LAST`.
pub fn parse_pool(s: &str) -> Result<(Ipv4Addr, Ipv4Addr), ArgError> {
    let bad = |why: &str| ArgError(format!("--pool {s}: {why}"));
    let (a, b) = s
        .split_once('-')
        .ok_or_else(|| bad("expected FIRST-LAST, e.g. 10.0.0.10-10.0.0.250"))?;
    let first: Ipv4Addr = a.trim().parse().map_err(|e| bad(&format!("{e}")))?;
    let last: Ipv4Addr = b.trim().parse().map_err(|e| bad(&format!("{e}")))?;
    if u32::from(last) < u32::from(first) {
        return Err(bad("LAST is before FIRST"));
    }
    if u32::from(last) - u32::from(first) >= MAX_POOL {
        return Err(bad(&format!("more than {MAX_POOL} addresses")));
    }
    Ok((first, last))
}

/// Parses the arguments after the program name.
pub fn parse_args<I, S>(args: I) -> Result<Parsed, ArgError>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let mut args = Args::new(args);
    let (mut role, mut listen, mut partner, mut name) = (None, None, None, None);
    let mut o = PeerOptions {
        role: Role::Primary,
        listen: SocketAddr::from(([0, 0, 0, 0], failover_proto::FAILOVER_PORT)),
        partner: SocketAddr::from(([0, 0, 0, 0], failover_proto::FAILOVER_PORT)),
        bind: None,
        name: String::new(),
        mclt: 3600,
        split: 128,
        mud: 10,
        mrd: 20,
        auto_partner_down: None,
        store: None,
        pools: Vec::new(),
        status_every: None,
        admin: None,
        quiet: false,
        link: Link::Plaintext,
        secret: None,
    };
    let mut plaintext = false;
    let mut tls: [Option<String>; 4] = Default::default();
    while let Some(flag) = args.next_flag()? {
        match flag.as_str() {
            "-h" | "--help" => return Ok(Parsed::Help),
            "--role" => role = Some(parse_role(&args.value::<String>(&flag)?)?),
            "--listen" => listen = Some(args.value(&flag)?),
            "--partner" => partner = Some(args.value(&flag)?),
            "--bind" => o.bind = Some(args.value(&flag)?),
            "--name" => name = Some(args.value::<String>(&flag)?),
            "--mclt" => o.mclt = args.value(&flag)?,
            "--split" => o.split = args.value(&flag)?,
            "--mud" => o.mud = args.value(&flag)?,
            "--mrd" => o.mrd = args.value(&flag)?,
            "--auto-partner-down" => o.auto_partner_down = Some(args.value(&flag)?),
            "--store" => o.store = Some(args.value::<PathBuf>(&flag)?),
            "--pool" => o.pools.push(parse_pool(&args.value::<String>(&flag)?)?),
            "--status-every" => {
                let s: u32 = args.value(&flag)?;
                o.status_every = (s > 0).then_some(s);
            }
            "--admin" => o.admin = Some(args.value(&flag)?),
            "-q" | "--quiet" => o.quiet = true,
            "--plaintext" => plaintext = true,
            "--tls-cert" => tls[0] = Some(args.value(&flag)?),
            "--tls-key" => tls[1] = Some(args.value(&flag)?),
            "--tls-ca" => tls[2] = Some(args.value(&flag)?),
            "--tls-partner-name" => tls[3] = Some(args.value(&flag)?),
            "--secret" => o.secret = Some(args.value::<PathBuf>(&flag)?),
            other => return Err(ArgError(format!("unknown option `{other}` (see --help)"))),
        }
    }
    let missing = |f: &str| ArgError(format!("{f} is required (see --help)"));
    o.role = role.ok_or_else(|| missing("--role"))?;
    o.listen = listen.ok_or_else(|| missing("--listen"))?;
    o.partner = partner.ok_or_else(|| missing("--partner"))?;
    o.name = name.ok_or_else(|| missing("--name"))?;
    if o.name.is_empty() || o.name.len() > failover_fsm::config::MAX_NAME {
        return Err(ArgError(format!(
            "--name must be 1 to {} bytes",
            failover_fsm::config::MAX_NAME
        )));
    }
    if o.role == Role::Primary && o.mclt == 0 {
        return Err(ArgError("--mclt must be above 0 on a primary".into()));
    }
    if o.split > 256 {
        return Err(ArgError("--split must be 0..=256".into()));
    }
    if o.mud == 0 || o.mud > failover_tokio::MAX_UNACKED_BNDUPD {
        return Err(ArgError(format!(
            "--mud must be 1..={}",
            failover_tokio::MAX_UNACKED_BNDUPD
        )));
    }
    if o.mrd < 3 {
        return Err(ArgError("--mrd must be at least 3 seconds".into()));
    }
    o.link = parse_link(plaintext, tls)?;
    check_pools(&o.pools)?;
    if o.listen == o.partner {
        return Err(ArgError(
            "--listen and --partner are the same address".into(),
        ));
    }
    Ok(Parsed::Run(o))
}

/// Pools may not overlap, and hold at most [`MAX_POOL`] addresses together.
fn check_pools(pools: &[(Ipv4Addr, Ipv4Addr)]) -> Result<(), ArgError> {
    let mut sorted = pools.to_vec();
    sorted.sort_unstable();
    for w in sorted.windows(2) {
        if let [(a, b), (c, d)] = w
            && c <= b
        {
            return Err(ArgError(format!(
                "--pool {a}-{b} and --pool {c}-{d} overlap"
            )));
        }
    }
    let total: u64 = pools
        .iter()
        .map(|(a, b)| u64::from(u32::from(*b) - u32::from(*a)) + 1)
        .sum();
    if total > u64::from(MAX_POOL) {
        return Err(ArgError(format!(
            "the pools hold more than {MAX_POOL} addresses"
        )));
    }
    Ok(())
}

/// The link the options choose: exactly one of `--plaintext` and the four `--tls-*` options.
fn parse_link(plaintext: bool, tls: [Option<String>; 4]) -> Result<Link, ArgError> {
    match (plaintext, tls) {
        (true, [None, None, None, None]) => Ok(Link::Plaintext),
        (true, _) => Err(ArgError(
            "--plaintext and the --tls-* options exclude each other".into(),
        )),
        (false, [Some(cert), Some(key), Some(ca), Some(partner_name)]) => {
            Ok(Link::Tls(Box::new(TlsFiles {
                cert: cert.into(),
                key: key.into(),
                ca: ca.into(),
                partner_name,
            })))
        }
        (false, [None, None, None, None]) => Err(ArgError(
            "choose the link: --plaintext (ISC dhcpd) or --tls-cert, --tls-key, --tls-ca and \
             --tls-partner-name (see --help)"
                .into(),
        )),
        (false, _) => Err(ArgError(
            "TLS needs all of --tls-cert, --tls-key, --tls-ca and --tls-partner-name".into(),
        )),
    }
}

impl PeerOptions {
    /// The engine configuration these options describe.
    pub fn config(&self) -> Config {
        let mut c = Config::new(self.role, &self.name, self.mclt);
        c.hba = Hba::split(self.split);
        c.max_unacked_bndupd = self.mud;
        c.receive_timer = self.mrd;
        c.auto_partner_down = self.auto_partner_down;
        c
    }

    fn pool_ranges(&self) -> Vec<(Ipv4Addr, u32)> {
        self.pools
            .iter()
            .map(|&(first, last)| (first, u32::from(last) - u32::from(first) + 1))
            .collect()
    }
}

enum Backing {
    Memory(MemoryStore),
    File(FileStore),
}

/// The peer's lease table: in memory or in a [`FileStore`] log. Without `--pool` any address
/// the partner sends is taken as a pool address (FREE until then) and learnt.
pub struct PeerStore {
    backing: Backing,
    open_pool: bool,
}

impl std::fmt::Debug for PeerStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerStore")
            .field(
                "backing",
                &match &self.backing {
                    Backing::Memory(_) => "memory".to_string(),
                    Backing::File(fs) => fs.path().display().to_string(),
                },
            )
            .field("open_pool", &self.open_pool)
            .finish()
    }
}

impl PeerStore {
    /// Opens what `opts` asks for (`--store`, `--pool`).
    pub fn open(opts: &PeerOptions) -> io::Result<PeerStore> {
        let pools = opts.pool_ranges();
        let backing = match &opts.store {
            Some(path) => Backing::File(FileStore::open_pools(path, opts.role, &pools)?),
            None => Backing::Memory(MemoryStore::with_pools(opts.role, &pools)),
        };
        Ok(PeerStore {
            backing,
            open_pool: opts.pools.is_empty(),
        })
    }

    /// [`PeerStore::open`] on tokio's blocking pool: reading the log (and fsyncing a torn
    /// tail) blocks, so not on a runtime worker.
    pub async fn open_blocking(opts: &PeerOptions) -> io::Result<Arc<PeerStore>> {
        let o = opts.clone();
        tokio::task::spawn_blocking(move || PeerStore::open(&o))
            .await
            .map_err(io::Error::other)?
            .map(Arc::new)
    }

    /// The in-memory view.
    pub fn memory(&self) -> &MemoryStore {
        match &self.backing {
            Backing::Memory(m) => m,
            Backing::File(f) => f.memory(),
        }
    }

    fn inner(&self) -> &dyn Storage {
        match &self.backing {
            Backing::Memory(m) => m,
            Backing::File(f) => f,
        }
    }

    /// Addresses known, and how many are ACTIVE, FREE, BACKUP.
    pub fn counts(&self) -> StoreCounts {
        // In place: a copy of the table per status line cost the DHCP server more than its
        // DISCOVERs once those were indexed.
        self.memory().with_leases(|leases| {
            let count = |s| leases.values().filter(|l| l.local.status == s).count();
            StoreCounts {
                known: leases.len(),
                active: count(BindingStatus::Active),
                free: count(BindingStatus::Free),
                backup: count(BindingStatus::Backup),
            }
        })
    }

    /// Where the table lives, for humans.
    pub fn describe(&self) -> String {
        match &self.backing {
            Backing::Memory(_) => "memory".into(),
            Backing::File(f) => format!("file {}", f.path().display()),
        }
    }
}

/// Counts of a [`PeerStore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreCounts {
    /// Addresses known.
    pub known: usize,
    /// ACTIVE.
    pub active: usize,
    /// FREE.
    pub free: usize,
    /// BACKUP.
    pub backup: usize,
}

impl LeaseLookup for PeerStore {
    fn lookup(&self, address: Ipv4Addr) -> Option<LocalBinding> {
        self.inner().lookup(address).or_else(|| {
            self.open_pool
                .then(|| LocalBinding::new(BindingStatus::Free))
        })
    }
}

impl BindingSource for PeerStore {
    fn binding(&self, address: Ipv4Addr) -> Option<BindingData> {
        self.inner().binding(address)
    }
}

impl Storage for PeerStore {
    fn load_state(&self) -> Option<Persisted> {
        self.inner().load_state()
    }

    fn persist_state(&self, state: &Persisted) -> io::Result<()> {
        self.inner().persist_state(state)
    }

    fn commit_binding(&self, binding: &BindingData, verdict: &Verdict) -> io::Result<Received> {
        self.inner().commit_binding(binding, verdict)
    }

    fn record_local(&self, binding: &BindingData) -> io::Result<()> {
        self.inner().record_local(binding)
    }

    fn binding_queued(&self, address: [u8; 4], update: UpdateId, again: bool) -> io::Result<()> {
        self.inner().binding_queued(address, update, again)
    }

    fn binding_acked(&self, address: [u8; 4], ack: &Ack) -> io::Result<()> {
        self.inner().binding_acked(address, ack)
    }

    fn binding_rejected(&self, address: [u8; 4], update: UpdateId) {
        self.inner().binding_rejected(address, update);
    }

    fn begin_walk(&self, walk: &BacklogWalk) {
        self.inner().begin_walk(walk);
    }

    fn walk(&self, walk: &mut BacklogWalk, queue: &mut dyn UpdateQueue) -> Walked {
        self.inner().walk(walk, queue)
    }

    fn send_current(&self, address: [u8; 4], again: bool, queue: &mut dyn UpdateQueue) -> Queued {
        self.inner().send_current(address, again, queue)
    }

    fn pool_counts(&self) -> PoolCounts {
        self.inner().pool_counts()
    }

    fn latest_received_pet(&self) -> Option<UnixTime> {
        self.inner().latest_received_pet()
    }

    fn move_to_partner(&self, plan: &BalancePlan, now: UnixTime) -> io::Result<Vec<BindingData>> {
        self.inner().move_to_partner(plan, now)
    }

    fn pool_count(&self) -> usize {
        self.inner().pool_count()
    }

    fn pool_counts_of(&self, pool: usize) -> PoolCounts {
        self.inner().pool_counts_of(pool)
    }

    fn move_to_partner_in(
        &self,
        pool: usize,
        plan: &BalancePlan,
        now: UnixTime,
    ) -> io::Result<Vec<BindingData>> {
        self.inner().move_to_partner_in(pool, plan, now)
    }

    fn sync(&self) -> io::Result<()> {
        self.inner().sync()
    }

    fn sync_blocks(&self) -> bool {
        self.inner().sync_blocks()
    }
}

/// `in 3600 s`, `12 s ago`, `never` for a wall-clock time.
fn relative(t: Option<UnixTime>, now: UnixTime) -> String {
    match t {
        None | Some(UnixTime(0)) => "—".into(),
        Some(UnixTime(u32::MAX)) => "never".into(),
        Some(t) if t >= now => format!("in {} s", t.0 - now.0),
        Some(t) => format!("{} s ago", now.0 - t.0),
    }
}

/// One binding as a line: address, status, client.
pub fn describe_binding(b: &BindingData) -> String {
    let mut s = format!("{} {}", b.ip(), b.status);
    if let Some((htype, hw)) = &b.hardware_address {
        if *htype == 1 {
            s.push_str(&format!(" {}", mac(hw)));
        } else {
            s.push_str(&format!(" hw {htype}/{}", mac(hw)));
        }
    }
    if let Some(id) = &b.client_identifier {
        s.push_str(&format!(" id {}", mac(id)));
    }
    if b.status == BindingStatus::Active {
        let now = wall_clock();
        s.push_str(&format!(
            ", ends {}",
            relative(b.lease_expiration_time, now)
        ));
    }
    s
}

/// The status line.
pub fn status_line(status: &Status, handle: &Handle, store: &PeerStore) -> String {
    let now = wall_clock();
    let c = store.counts();
    let counters = handle.counters();
    let skew = status
        .clock_skew
        .map_or_else(|| "?".to_string(), |s| format!("{s:+}"));
    format!(
        "status: {} for {} s, partner {}, link {:?}, MCLT {} s, skew {skew} s · \
         queued {}, unacked {}, awaiting commit {} · {} addresses: {} ACTIVE, {} FREE, {} BACKUP · \
         messages {} in / {} out, {} connections, {} refused · {}{}",
        state_name(status.state),
        now.0.saturating_sub(status.state_since.0),
        status
            .partner_state
            .map_or_else(|| "unknown".to_string(), state_name),
        status.link,
        status.mclt,
        status.queued,
        status.unacked_sent,
        status.awaiting_commit,
        thousands(c.known as u64),
        thousands(c.active as u64),
        thousands(c.free as u64),
        thousands(c.backup as u64),
        thousands(counters.messages_in()),
        thousands(counters.messages_out()),
        counters.connections(),
        counters.refused(),
        handle.transport(),
        handle.digest_type().map_or_else(String::new, |t| format!(
            ", message digest type {t} ({} refused)",
            counters.digest_refused()
        )),
    )
}

/// Prints events as they come (one peer).
pub struct Printer<'a> {
    console: &'a Console,
    quiet: bool,
    /// Bindings received / acknowledged since the last count line (`--quiet`).
    received: u64,
    acked: u64,
    /// The MCLT of the last persisted snapshot (shown when it changes).
    mclt: Option<u32>,
}

const ME: &str = "peer";

impl<'a> Printer<'a> {
    /// A printer on `console`; `quiet`: a count line per [`Printer::flush_counts`] instead of
    /// a line per binding.
    pub fn new(console: &'a Console, quiet: bool) -> Self {
        Printer {
            console,
            quiet,
            received: 0,
            acked: 0,
            mclt: None,
        }
    }

    fn say(&self, text: impl AsRef<str>) {
        self.console.line(ME, text);
    }

    fn warn(&self, text: impl AsRef<str>) {
        self.console
            .line(ME, self.console.paint(Style::Yellow, text.as_ref()));
    }

    /// Prints the counts of bindings since the last call (`quiet`).
    pub fn flush_counts(&mut self) {
        if self.received + self.acked > 0 {
            self.say(format!(
                "bindings: {} received, {} acknowledged by the partner",
                thousands(self.received),
                thousands(self.acked)
            ));
            self.received = 0;
            self.acked = 0;
        }
    }

    /// Prints one event.
    pub fn event(&mut self, event: PeerEvent) {
        let c = self.console;
        match event {
            PeerEvent::Connected { peer, outgoing } => self.say(if outgoing {
                format!("connected to the partner at {peer}")
            } else {
                format!("accepted the partner's connection from {peer}")
            }),
            PeerEvent::Disconnected => self.say("connection to the partner closed"),
            PeerEvent::Refused { from } => {
                self.warn(format!(
                    "refused a connection from {from} (not the partner)"
                ));
            }
            PeerEvent::StorageError(e) => self.warn(format!("storage error: {e}")),
            PeerEvent::Engine(e) => match e {
                Event::StateChanged { from, to } => self.say(format!(
                    "{} → {}",
                    c.state(from),
                    c.paint(Style::Bold, c.state(to))
                )),
                Event::PartnerStateChanged { state, startup, .. } => {
                    let s = if startup { " (starting up)" } else { "" };
                    self.say(format!("partner is {}{s}", c.state(state)));
                }
                Event::CommunicationsOk => self.say("communications OK"),
                Event::CommunicationsFailed => self.say("communications failed"),
                Event::RejectedPartnerBinding { address, reason } => self.warn(format!(
                    "rejected the partner's binding of {}: {reason}",
                    Ipv4Addr::from(address)
                )),
                Event::UpdatesReceived => {
                    self.say("partner has sent every binding we asked for (UPDDONE)");
                }
                Event::PoolResponse {
                    addresses_transferred,
                } => self.say(format!(
                    "partner answers POOLREQ: {addresses_transferred} addresses moved to us"
                )),
                Event::ConnectionRejected { reason, by_partner } => self.warn(format!(
                    "connection rejected by {}: {reason}",
                    if by_partner { "the partner" } else { "us" }
                )),
                Event::PartnerDisconnected { reason } => {
                    self.warn(format!("partner sent DISCONNECT: {reason}"));
                }
                Event::ProtocolError { error } => {
                    self.warn(format!("protocol error from the partner: {error}"));
                }
                Event::Alarm {
                    state,
                    partner_state,
                } => self.warn(format!(
                    "operator alarm: we are {state}, partner {}",
                    partner_state.map_or_else(|| "unknown".to_string(), state_name)
                )),
                _ => {}
            },
            PeerEvent::Received(Commit {
                binding, verdict, ..
            }) => {
                if self.quiet {
                    self.received += 1;
                } else {
                    let stored = if verdict.store_as == binding.status {
                        String::new()
                    } else {
                        format!(" (stored as {})", verdict.store_as)
                    };
                    self.say(format!("← {}{stored}", describe_binding(&binding)));
                }
            }
            PeerEvent::Action(a) => match a {
                Action::Persist { snapshot, .. } if snapshot.mclt != self.mclt => {
                    self.mclt = snapshot.mclt;
                    if let Some(mclt) = snapshot.mclt {
                        self.say(format!("MCLT agreed with the partner: {mclt} s"));
                    }
                }
                Action::BindingAcked {
                    address, status, ..
                } => {
                    if self.quiet {
                        self.acked += 1;
                    } else {
                        self.say(c.paint(
                            Style::Dim,
                            format!("→ {} {status} acknowledged", Ipv4Addr::from(address)),
                        ));
                    }
                }
                Action::BindingRejected {
                    address, reason, ..
                } => self.warn(format!(
                    "partner rejected our binding of {}: {reason}",
                    Ipv4Addr::from(address)
                )),
                Action::SendAllBindings => {
                    self.say("partner asks for every binding (UPDREQALL)");
                }
                Action::SendUnackedBindings => {
                    self.say("partner asks for the bindings it has not acknowledged (UPDREQ)");
                }
                Action::PoolRequested => self.say("partner asks for addresses (POOLREQ)"),
                _ => {}
            },
            _ => {}
        }
    }
}

/// Starts the failover task for `opts` with `config` (`opts.config()`, perhaps adjusted) on
/// `store`: the `peer` program's and the `dhcp-server`'s.
pub async fn start_peer(
    opts: &PeerOptions,
    config: Config,
    store: Arc<PeerStore>,
) -> io::Result<(Handle, mpsc::Receiver<PeerEvent>)> {
    let builder = PeerBuilder::new(config, opts.partner, store);
    let mut builder = match &opts.link {
        Link::Plaintext => builder.plaintext(),
        Link::Tls(f) => builder.tls(
            TlsConfig::from_pem_files(&f.cert, &f.key, &f.ca, &f.partner_name)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?,
        ),
    }
    .listen(opts.listen)
    .reconnect(Duration::from_secs(1), Duration::from_secs(30))
    .reject_backoff(Duration::from_secs(30));
    if let Some(ip) = opts.bind {
        builder = builder.bind_address(ip);
    }
    if let Some(path) = &opts.secret {
        builder = builder.message_auth(read_secret(path)?);
    }
    builder.start().await
}

/// The message-digest key of `--secret`: the file's bytes without a final newline (as `echo`
/// writes one), never empty.
fn read_secret(path: &std::path::Path) -> io::Result<HmacSha256> {
    let bytes = std::fs::read(path)
        .map_err(|e| io::Error::new(e.kind(), format!("--secret {}: {e}", path.display())))?;
    let secret = bytes
        .strip_suffix(b"\r\n")
        .or_else(|| bytes.strip_suffix(b"\n"))
        .unwrap_or(&bytes);
    HmacSha256::new(secret).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("--secret {}: {e}", path.display()),
        )
    })
}

/// Runs the peer until `stop` completes, then shuts it down gracefully. Each message on
/// `status_requests` prints a status line (the program sends one per SIGUSR1). `started` gets
/// the handle once the peer listens (tests use it to watch the state).
pub async fn run(
    opts: &PeerOptions,
    console: &Console,
    stop: impl Future<Output = ()>,
    mut status_requests: mpsc::Receiver<()>,
    started: impl FnOnce(&Handle),
) -> io::Result<()> {
    let store = PeerStore::open_blocking(opts).await?;
    let persisted = store.load_state();
    let (handle, mut events) = start_peer(opts, opts.config(), store.clone()).await?;
    let counts = store.counts();
    console.line(
        ME,
        console.paint(
            Style::Bold,
            format!(
                "{} of \"{}\" listening on {}, partner {}, {}",
                match opts.role {
                    Role::Primary => "primary",
                    Role::Secondary => "secondary",
                },
                opts.name,
                handle.local_addr(),
                opts.partner,
                handle.transport()
            ),
        ),
    );
    console.line(
        ME,
        format!(
            "MCLT {} s · max-unacked-bndupd {} · max-response-delay {} s · auto-partner-down {} · \
             split {}",
            opts.mclt,
            opts.mud,
            opts.mrd,
            opts.auto_partner_down
                .map_or_else(|| "off".to_string(), |s| format!("{s} s")),
            opts.split
        ),
    );
    console.line(
        ME,
        format!(
            "store: {}, {} addresses ({} ACTIVE){}; last state {}; starting in {}",
            store.describe(),
            thousands(counts.known as u64),
            thousands(counts.active as u64),
            if opts.pools.is_empty() {
                ", learning addresses from the partner"
            } else {
                ""
            },
            persisted.map_or_else(|| "none (a new peer)".to_string(), |p| state_name(p.state)),
            console.state(handle.status().state)
        ),
    );
    let admin = start_admin(opts, console, &handle, &store).await?;
    started(&handle);

    let mut printer = Printer::new(console, opts.quiet);
    let every = opts.status_every.map(|s| Duration::from_secs(u64::from(s)));
    let mut status_tick = tokio::time::interval(every.unwrap_or(Duration::from_secs(3600)));
    status_tick.tick().await;
    let mut count_tick = tokio::time::interval(Duration::from_secs(1));
    let mut requests_open = true;
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => break,
            event = events.recv() => match event {
                Some(e) => printer.event(e),
                None => {
                    console.line(ME, console.paint(Style::Red, "the failover task stopped"));
                    return Err(io::Error::other("the failover task stopped"));
                }
            },
            _ = status_tick.tick(), if every.is_some() => {
                console.line(ME, status_line(&handle.status(), &handle, &store));
            }
            req = status_requests.recv(), if requests_open => match req {
                Some(()) => console.line(ME, status_line(&handle.status(), &handle, &store)),
                None => requests_open = false,
            },
            _ = count_tick.tick(), if opts.quiet => printer.flush_counts(),
        }
    }

    console.line(
        ME,
        "shutting down: SHUTDOWN to the partner, a few seconds for it to take over, DISCONNECT",
    );
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
    while let Ok(e) = events.try_recv() {
        printer.event(e);
    }
    printer.flush_counts();
    if let Some(a) = admin {
        a.abort();
    }
    console.line(ME, status_line(&handle.status(), &handle, &store));
    console.line(ME, "stopped");
    Ok(())
}

/// Serves the admin endpoints on `--admin`, if given ([`crate::admin`]).
pub async fn start_admin(
    opts: &PeerOptions,
    console: &Console,
    handle: &Handle,
    store: &Arc<PeerStore>,
) -> io::Result<Option<tokio::task::JoinHandle<()>>> {
    let Some(addr) = opts.admin else {
        return Ok(None);
    };
    let admin = crate::admin::Admin {
        handle: handle.clone(),
        store: store.clone(),
    };
    let (local, task) = crate::admin::start(addr, admin).await?;
    console.line(
        ME,
        format!("admin on http://{local}: GET /metrics, GET /status, POST /partner-down"),
    );
    Ok(Some(task))
}
