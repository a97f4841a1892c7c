//! The DHCPv6 failover peer's public side: [`Peer6`] starts the task, [`Handle6`] talks to
//! it, [`PeerEvent6`]s come out of it. Section numbers are RFC 8156's.

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use failover_fsm::engine::{BindingHandle, Engine, V6};
use failover_fsm::v6::pool::{PoolConfig, PrefixCounts, PrefixPlan};
use failover_fsm::{Config, ConfigError, Event, Instant, Persisted, Role, ServerState, Status};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tracing::{Instrument, info_span};

use super::state::{StateFile, StateStore};
use super::store::MemoryStore6;
use super::task::{Command, Net, Task6};
use super::{Security6, StartError};
use crate::peer::{Counters, PeerError, wall_clock};
use crate::task::{Backoff, Clock, Forward};

/// The largest max-unacked-bndupd a [`Peer6`]'s configuration may advertise (a larger value is
/// refused at start, [`Peer6Error::Config`]): each received BNDUPD is kept whole until its
/// BNDREPLY echoes it (RFC 8156 §7.6, up to `failover_fsm::engine::MAX_ECHO` bytes each).
pub const MAX_UNACKED_BNDUPD: u32 = 64;

/// The engine as the DHCPv6 peer sizes it: 1,024 updates queued, [`MAX_UNACKED_BNDUPD`]
/// received awaiting their answer (about 64 KiB of echoes), 128 actions and as many events.
/// Boxed.
pub(crate) type Engine6 = Engine<1024, { MAX_UNACKED_BNDUPD as usize }, 128, V6>;

/// Configures and starts a DHCPv6 failover peer (RFC 8156): the primary connects to its
/// partner and reconnects after a loss (§6.1), the secondary listens and takes only its
/// partner's connections; STARTTLS and TLS, or plain TCP, as [`Security6`] says; the engine's
/// timers; its state snapshots written to a [`StateStore`] before they are confirmed.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use failover_fsm::{Config, Role, ServerState};
/// use failover_tokio::v6::{Peer6, Security6};
///
/// let config = Config::new(Role::Secondary, "dhcpv6-failover", 3600);
/// let (handle, mut events) = Peer6::new(config, "[2001:db8::1]:647".parse()?)
///     .listen("[2001:db8::2]:647".parse()?)
///     .security(Security6::Insecure) // or Security6::Secure(tls) with the `tls` feature
///     .state_file("/var/lib/dhcp/failover6.state")
///     .start()
///     .await?;
/// tokio::spawn(async move { while let Some(e) = events.recv().await { println!("{e:?}") } });
/// handle.wait_for_state(ServerState::Normal).await?;
/// # Ok(()) }
/// ```
pub struct Peer6 {
    config: Config,
    partner: SocketAddr,
    listen: SocketAddr,
    bind: Option<IpAddr>,
    security: Option<Security6>,
    state: Option<Arc<dyn StateStore>>,
    leases: Arc<Mutex<MemoryStore6>>,
    lease_file: Option<PathBuf>,
    lease_table_lost: bool,
    timing: Backoff,
    setup_timeout: Duration,
    event_capacity: usize,
    write_timeout: Option<Duration>,
    pool: PoolConfig,
}

impl fmt::Debug for Peer6 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Peer6")
            .field("role", &self.config.role)
            .field("partner", &self.partner)
            .field("listen", &self.listen)
            .field("security", &self.security)
            .field("state", &self.state.is_some())
            .finish_non_exhaustive()
    }
}

impl Peer6 {
    /// A peer for `config` whose partner is at `partner` (port 647 normally): the address a
    /// primary connects to, and the only one a secondary takes connections from (§6.1). A
    /// secondary listens on `[::]:647` unless told otherwise ([`Peer6::listen`]).
    pub fn new(config: Config, partner: SocketAddr) -> Self {
        Peer6 {
            config,
            partner,
            listen: SocketAddr::from(([0u16; 8], super::PORT)),
            bind: None,
            security: None,
            state: None,
            leases: Arc::new(Mutex::new(MemoryStore6::new())),
            lease_file: None,
            lease_table_lost: false,
            timing: Backoff {
                min: Duration::from_secs(5),
                max: Duration::from_secs(60),
                after_reject: Duration::from_secs(60),
            },
            setup_timeout: Duration::from_secs(15),
            event_capacity: 1024,
            write_timeout: None,
            pool: PoolConfig::default(),
        }
    }

    /// Where a secondary listens for its partner (§6.1). A primary does not listen: it answers
    /// no connection it did not open.
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    /// Source address of a primary's connections (the secondary takes only its partner's
    /// address).
    pub fn bind_address(mut self, ip: IpAddr) -> Self {
        self.bind = Some(ip);
        self
    }

    /// Secure mode (STARTTLS, then TLS 1.3 with pinned certificates) or insecure mode (§10,
    /// RFC 7653 §8.2). Required: there is no default ([`Peer6Error::SecurityNotChosen`]).
    pub fn security(mut self, security: Security6) -> Self {
        self.security = Some(security);
        self
    }

    /// Keeps the failover state in the file at `path` ([`StateFile`]): read at start, replaced
    /// atomically at every change.
    pub fn state_file(self, path: impl Into<PathBuf>) -> Self {
        self.state_store(Arc::new(StateFile::new(path)))
    }

    /// Keeps the failover state in `store`. A peer needs one ([`Peer6Error::StateNotChosen`]);
    /// [`super::MemoryState`] keeps it for the process's lifetime only.
    pub fn state_store(mut self, store: Arc<dyn StateStore>) -> Self {
        self.state = Some(store);
        self
    }

    /// A primary's reconnect delay: `min` after the first failure, doubling up to `max`, with
    /// jitter (§6.1: "SHOULD be configurable"; default 5–60 s).
    pub fn reconnect(mut self, min: Duration, max: Duration) -> Self {
        self.timing.min = min;
        self.timing.max = max.max(min);
        self
    }

    /// A primary's reconnect delay after the partner refused the connection (a rejecting
    /// CONNECTREPLY, a DISCONNECT, STARTTLS refused, a failed TLS handshake): §6.1 asks for
    /// slower retries then; default 60 s.
    pub fn reject_backoff(mut self, d: Duration) -> Self {
        self.timing.after_reject = d;
        self
    }

    /// Longest a connection's set-up may take before the engine sees it: the TCP connect, the
    /// STARTTLS exchange and the first message (default 15 s; the TLS handshake has its own,
    /// `TlsConfig::handshake_timeout`).
    pub fn setup_timeout(mut self, d: Duration) -> Self {
        self.setup_timeout = d;
        self
    }

    /// Capacity of the event channel (when it is full the task waits for the application).
    pub fn event_capacity(mut self, n: usize) -> Self {
        self.event_capacity = n.max(1);
        self
    }

    /// Longest a write to the partner may block before the connection is dropped; default:
    /// the keep-alive time we advertise (`Config::receive_timer`, §6.5).
    pub fn write_timeout(mut self, d: Duration) -> Self {
        self.write_timeout = Some(d);
        self
    }

    /// The relationship's lease table (a new empty one by default), shared with the
    /// embedding DHCPv6 server: it records its clients' leases there
    /// ([`MemoryStore6::update`]) and asks for them to be sent ([`Handle6::send_binding`]);
    /// the peer stores the partner's there.
    pub fn leases(mut self, leases: Arc<Mutex<MemoryStore6>>) -> Self {
        self.leases = leases;
        self.lease_file = None;
        self
    }

    /// Keeps the lease table in the journal at `path` ([`MemoryStore6::open`], on the
    /// blocking pool at start; replaces [`Peer6::leases`]): the partner's leases are
    /// acknowledged only once synced, and a restart comes back with the table as of the last
    /// sync, so no UPDREQALL is needed. The application reaches the table with
    /// [`Handle6::leases`] and makes its own grants durable with [`Handle6::sync_leases`]
    /// before it answers its clients.
    ///
    /// A journal created at start (no file at `path`) while the state store holds a saved
    /// state means the table was lost (a server that ran before, without this file): the
    /// peer then starts as [`Peer6::lease_table_lost`] would have it.
    ///
    /// A journaled table can also be given through [`Peer6::leases`]
    /// (`Arc::new(Mutex::new(MemoryStore6::open(path)?))`); the same rule applies to it.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// use failover_fsm::{Config, Role, ServerState};
    /// use failover_tokio::v6::{Peer6, Security6};
    ///
    /// let config = Config::new(Role::Primary, "dhcpv6-failover", 3600);
    /// let (handle, _events) = Peer6::new(config, "[2001:db8::2]:647".parse()?)
    ///     .security(Security6::Insecure)
    ///     .state_file("/var/lib/dhcp/failover6.state")
    ///     .lease_file("/var/lib/dhcp/failover6.leases")
    ///     .start()
    ///     .await?;
    /// // A client's lease: recorded, durable, then sent to the partner and answered.
    /// # let (duid, lease) = (vec![0u8, 3], "2001:db8::1".parse().map(failover_proto::v6::LeaseAddr::Address)?);
    /// # let endpoint = failover_fsm::v6::allocate::Endpoint::of_status(&handle.status());
    /// let (binding, granted) = handle.leases().lock().unwrap().grant(
    ///     &endpoint, 3600, &duid, (failover_proto::v6::IaKind::Na, 1), lease, 7200, false,
    ///     failover_fsm::UnixTime(1_800_000_000),
    /// )?;
    /// handle.sync_leases().await?; // before the REPLY to the client
    /// handle.send_binding(binding).await?;
    /// # let _ = granted;
    /// handle.wait_for_state(ServerState::Normal).await?;
    /// # Ok(()) }
    /// ```
    pub fn lease_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.lease_file = Some(path.into());
        self
    }

    /// A primary's split of the delegable prefixes (§4.2.2; default
    /// [`PoolConfig::default`]: half to the secondary, threshold 1). Every prefix of the
    /// table starts as the primary's; when the secondary asks (POOLREQ, sent on entering
    /// NORMAL and by [`Handle6::pool_request`]) and whenever the counts move by more than the
    /// threshold, the primary in NORMAL gives it FREE-BACKUP prefixes up to its share or
    /// takes some back with FREE ([`MemoryStore6::move_prefixes`]). A secondary ignores it.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// use failover_fsm::v6::pool::PoolConfig;
    /// use failover_fsm::{Config, Role};
    /// use failover_tokio::v6::{Peer6, Security6};
    ///
    /// let config = Config::new(Role::Primary, "dhcpv6-failover", 3600);
    /// let (handle, _events) = Peer6::new(config, "[2001:db8::2]:647".parse()?)
    ///     .security(Security6::Insecure)
    ///     .state_file("/var/lib/dhcp/failover6.state")
    ///     // A quarter of the prefixes for the secondary; move none while within 4 of it.
    ///     .prefix_pool(PoolConfig { secondary_percent: 25, threshold: 4 })
    ///     .start()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn prefix_pool(mut self, config: PoolConfig) -> Self {
        self.pool = config;
        self
    }

    /// The lease table is new or lost (a restart without it): the saved state is ignored (the
    /// peer starts as a new server, RECOVER, §8.3), and until the partner has sent every
    /// binding (UPDREQALL, §8.5.2), its bindings are taken as an empty table would take them.
    /// See [`failover_fsm::Engine::lease_table_lost`]. A peer with a
    /// [`Peer6::lease_file`] whose journal had to be created while a saved state exists
    /// starts so by itself.
    pub fn lease_table_lost(mut self) -> Self {
        self.lease_table_lost = true;
        self
    }

    /// Reads the saved state (on the blocking pool), binds a secondary's listener and starts
    /// the task.
    pub async fn start(self) -> Result<(Handle6, mpsc::Receiver<PeerEvent6>), Peer6Error> {
        let security = self.security.ok_or(Peer6Error::SecurityNotChosen)?;
        let store = self.state.ok_or(Peer6Error::StateNotChosen)?;
        let loader = store.clone();
        let restored = tokio::task::spawn_blocking(move || loader.load())
            .await
            .map_err(|e| Peer6Error::StateUnreadable(io::Error::other(e.to_string())))?
            .map_err(Peer6Error::StateUnreadable)?;
        let leases = match self.lease_file {
            Some(path) => {
                let opened = tokio::task::spawn_blocking(move || MemoryStore6::open(path))
                    .await
                    .map_err(|e| Peer6Error::LeasesUnreadable(io::Error::other(e.to_string())))?
                    .map_err(Peer6Error::LeasesUnreadable)?;
                Arc::new(Mutex::new(opened))
            }
            None => self.leases,
        };
        // A journaled table begun afresh by a server that ran before (a saved state): lost.
        let table_lost = {
            let t = leases.lock().unwrap_or_else(|p| p.into_inner());
            t.is_durable() && !t.reopened() && restored.is_some()
        };
        if table_lost && !self.lease_table_lost {
            tracing::warn!(
                "saved failover state but a new lease journal: the lease table is lost, \
                 every binding is asked of the partner (UPDREQALL)"
            );
        }
        let (listener, local) = match self.config.role {
            Role::Secondary => {
                let l = TcpListener::bind(self.listen)
                    .await
                    .map_err(Peer6Error::Bind)?;
                let local = l.local_addr().map_err(Peer6Error::Bind)?;
                (Some(l), Some(local))
            }
            Role::Primary => (None, None),
        };
        // A lost table: the saved state is ignored (the engine starts as a new server, RECOVER,
        // and asks for every binding), as the v4 peer does.
        let lost = self.lease_table_lost || table_lost;
        let restored = if lost { None } else { restored };
        let now = Instant::ZERO;
        let wall = wall_clock();
        let seed = xid_seed(&self.config, wall.0, local);
        let mut engine = Box::new(
            Engine6::new(self.config.clone(), restored, now, wall, seed)
                .map_err(Peer6Error::Config)?,
        );
        if lost {
            engine.lease_table_lost();
        }
        let status = engine.status(now);
        let (status_tx, status_rx) = watch::channel(status);
        let (cmd_tx, cmd_rx) = mpsc::channel(64);
        let (event_tx, event_rx) = mpsc::channel(self.event_capacity);
        let counters = Arc::new(Counters::default());
        let write_timeout = self
            .write_timeout
            .unwrap_or(Duration::from_secs(u64::from(self.config.receive_timer)));
        let net = Net::new(
            self.config.role,
            self.partner,
            self.bind,
            listener,
            security,
            self.timing,
            self.setup_timeout,
            write_timeout,
            seed,
        );
        let task = Task6::new(
            engine,
            Clock::new(tokio::time::Instant::now()),
            net,
            store,
            leases.clone(),
            cmd_rx,
            Forward::new(event_tx, status_tx, counters.clone()),
        )
        .prefix_pool(self.pool);
        let span = info_span!(
            "failover6",
            name = %String::from_utf8_lossy(&self.config.relationship_name),
            role = ?self.config.role
        );
        let join = tokio::spawn(task.run().instrument(span));
        Ok((
            Handle6 {
                leases,
                cmd: cmd_tx,
                status: status_rx,
                counters,
                local,
                restored,
                join: Arc::new(std::sync::Mutex::new(Some(join))),
            },
            event_rx,
        ))
    }
}

/// Distinct per relationship and start (xids, jitter).
fn xid_seed(config: &Config, wall: u32, local: Option<SocketAddr>) -> u32 {
    let name = config
        .relationship_name
        .iter()
        .fold(0x811c_9dc5u32, |h, b| {
            (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
        });
    (wall ^ name ^ u32::from(local.map_or(0, |l| l.port()))).max(1)
}

/// Why a [`Peer6`] did not start.
#[derive(Debug)]
#[non_exhaustive]
pub enum Peer6Error {
    /// No [`Peer6::security`]: insecure mode must be asked for (RFC 7653 §9.1: secure mode is
    /// to be the default, so it is never had by omission).
    SecurityNotChosen,
    /// No [`Peer6::state_file`] or [`Peer6::state_store`].
    StateNotChosen,
    /// The saved state could not be read: starting as a new server would forget it.
    StateUnreadable(io::Error),
    /// The lease journal ([`Peer6::lease_file`]) could not be opened or read.
    LeasesUnreadable(io::Error),
    /// The secondary's listening address could not be bound.
    Bind(io::Error),
    /// The engine refused the configuration.
    Config(ConfigError),
}

impl fmt::Display for Peer6Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer6Error::SecurityNotChosen => {
                f.write_str("choose secure or insecure mode (Peer6::security)")
            }
            Peer6Error::StateNotChosen => {
                f.write_str("choose where the failover state is kept (Peer6::state_file)")
            }
            Peer6Error::StateUnreadable(e) => write!(f, "saved failover state unreadable: {e}"),
            Peer6Error::LeasesUnreadable(e) => write!(f, "lease journal unreadable: {e}"),
            Peer6Error::Bind(e) => write!(f, "cannot listen: {e}"),
            Peer6Error::Config(e) => write!(f, "configuration: {e}"),
        }
    }
}

impl std::error::Error for Peer6Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Peer6Error::StateUnreadable(e)
            | Peer6Error::LeasesUnreadable(e)
            | Peer6Error::Bind(e) => Some(e),
            Peer6Error::Config(e) => Some(e),
            _ => None,
        }
    }
}

/// What the DHCPv6 failover task reports to the application.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum PeerEvent6 {
    /// An informational engine event (state changes, the partner's state, rejections...).
    Engine(Event),
    /// A state snapshot is durable in the [`StateStore`] and confirmed to the engine.
    Persisted(Persisted),
    /// A connection to the partner is set up (STARTTLS and TLS done in secure mode) and handed
    /// to the engine.
    Connected {
        /// The partner's address and port.
        peer: SocketAddr,
        /// We opened it (the primary) or accepted it (the secondary).
        outgoing: bool,
        /// It runs TLS.
        tls: bool,
    },
    /// The connection is gone.
    Disconnected,
    /// The primary ran its plan for the delegable prefixes (§4.2.2: after a POOLREQ, or the
    /// counts moved beyond the threshold): `plan.give` prefixes sent as FREE-BACKUP,
    /// `plan.take_back` asked back with FREE (both empty when the split holds).
    PrefixesBalanced {
        /// The available prefixes before the plan.
        before: PrefixCounts,
        /// What the plan asks for.
        plan: PrefixPlan,
        /// How many prefixes were sent now: fewer than the plan's when some changed in the
        /// last 5 s (§7.5.1); those follow about 6 s later.
        moved: usize,
    },
    /// A connection was not set up: a stranger's (dropped unread, §6.1), a refused STARTTLS,
    /// a failed TLS handshake, a primary's failed connect. The engine never saw it.
    SetupFailed {
        /// The other end (the partner's address for a failed connect).
        peer: SocketAddr,
        /// We opened it.
        outgoing: bool,
        /// Why.
        error: Arc<StartError>,
    },
    /// The state store failed: the snapshot is not durable, and the engine asks again later
    /// (its STATE announcement waits).
    StorageError(Arc<io::Error>),
}

pub(crate) type Reply = oneshot::Sender<Result<(), PeerError>>;

/// The embedding DHCPv6 server's handle on its failover peer. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Handle6 {
    leases: Arc<Mutex<MemoryStore6>>,
    cmd: mpsc::Sender<Command>,
    status: watch::Receiver<Status>,
    counters: Arc<Counters>,
    local: Option<SocketAddr>,
    restored: Option<Persisted>,
    join: Arc<std::sync::Mutex<Option<JoinHandle<()>>>>,
}

impl Handle6 {
    /// The relationship's lease table (see [`Peer6::leases`]).
    pub fn leases(&self) -> Arc<Mutex<MemoryStore6>> {
        self.leases.clone()
    }

    /// Makes every change to the lease table so far durable ([`MemoryStore6::sync`], on
    /// tokio's blocking pool): the DHCPv6 server awaits it after a grant, release or update
    /// and before it answers its client, so that no client holds a lease a crash would
    /// forget. Syncs running at once share one fsync. `Ok` at once for a table in memory
    /// only. An error: the changes may not be on disk (the next sync writes the whole table).
    pub async fn sync_leases(&self) -> io::Result<()> {
        let leases = self.leases.clone();
        tokio::task::spawn_blocking(move || MemoryStore6::sync(&leases))
            .await
            .map_err(|e| io::Error::other(e.to_string()))?
    }

    /// Sends binding `handle` — a client's binding recorded with [`MemoryStore6::update`] —
    /// to the partner (lazy update, §4.3): queued at once, written from the table as it is
    /// when its turn comes. Returns once queued.
    pub async fn send_binding(&self, handle: BindingHandle) -> Result<(), PeerError> {
        let (reply, rx) = oneshot::channel();
        self.cmd
            .send(Command::SendBinding { handle, reply })
            .await
            .map_err(|_| PeerError::Stopped)?;
        rx.await.map_err(|_| PeerError::Stopped)?
    }

    /// A secondary asks the primary for its share of the delegable prefixes again (POOLREQ,
    /// §4.2.2: at any time while in contact; the engine also sends one on entering NORMAL).
    /// Nothing is sent without a connection. Returns once handed to the engine.
    pub async fn pool_request(&self) -> Result<(), PeerError> {
        let (reply, rx) = oneshot::channel();
        self.cmd
            .send(Command::PoolRequest { reply })
            .await
            .map_err(|_| PeerError::Stopped)?;
        rx.await.map_err(|_| PeerError::Stopped)?
    }

    /// The engine's status, as of the task's last step.
    pub fn status(&self) -> Status {
        *self.status.borrow()
    }

    /// A receiver that sees every status change.
    pub fn watch(&self) -> watch::Receiver<Status> {
        self.status.clone()
    }

    /// Waits until our state is `state` (engine terms: `ServerState::Normal`...);
    /// `Err(Stopped)` if the task ends first.
    pub async fn wait_for_state(&self, state: ServerState) -> Result<(), PeerError> {
        let mut w = self.status.clone();
        w.wait_for(|s| s.state == state)
            .await
            .map(|_| ())
            .map_err(|_| PeerError::Stopped)
    }

    /// The operator declares the partner down (§8.4.2 via COMMUNICATIONS-INTERRUPTED): taken
    /// from COMMUNICATIONS-INTERRUPTED (or RESOLUTION-INTERRUPTED) only, unless `force`; see
    /// [`failover_fsm::Engine::partner_down`]. Returns once the engine has taken it.
    pub async fn partner_down(&self, force: bool) -> Result<(), PeerError> {
        let (tx, rx) = oneshot::channel();
        self.cmd
            .send(Command::PartnerDown { force, reply: tx })
            .await
            .map_err(|_| PeerError::Stopped)?;
        rx.await.map_err(|_| PeerError::Stopped)?
    }

    /// Stops the peer in order: DISCONNECT to the partner, the close, a snapshot being written
    /// finished (its confirmation no longer matters), then the task ends. RFC 8156 has no
    /// SHUTDOWN state: the partner goes COMMUNICATIONS-INTERRUPTED.
    pub async fn shutdown(&self) {
        let (tx, rx) = oneshot::channel();
        if self.cmd.send(Command::Shutdown(tx)).await.is_ok() {
            let _ = rx.await;
        }
        let join = self.join.lock().ok().and_then(|mut j| j.take());
        if let Some(j) = join {
            let _ = j.await;
        }
    }

    /// Stops the task at once, as a crash would: no DISCONNECT, nothing more persisted; the
    /// sockets close with the task. Returns once it is gone (a secondary's port is free again).
    /// A state write already on the blocking pool still finishes. What the [`StateStore`]
    /// holds is what a restart starts from.
    pub async fn abort(&self) {
        let join = self.join.lock().ok().and_then(|mut j| j.take());
        if let Some(j) = join {
            j.abort();
            let _ = j.await;
        }
    }

    /// The snapshot the peer started from (read from its [`StateStore`]); `None`: a new
    /// server, or one whose lease table was lost ([`Peer6::lease_table_lost`], or a saved
    /// state with a lease journal created at start), which ignores the saved state. With a
    /// journaled lease table read back ([`MemoryStore6::reopened`]) the peer resumes with
    /// both.
    pub fn restored(&self) -> Option<Persisted> {
        self.restored
    }

    /// Where a secondary listens (`None` for a primary).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local
    }

    /// The task's counters (connections, refusals, messages; no message digests in RFC 8156).
    pub fn counters(&self) -> &Counters {
        &self.counters
    }
}
