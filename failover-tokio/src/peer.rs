//! The failover peer's public side: [`PeerBuilder`] starts the task, [`Handle`] talks to it,
//! [`PeerEvent`]s come out of it.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use failover_fsm::policy::{
    Answer, BalancePlan, BalanceSkipped, BalanceTrigger, ClientMessage, Endpoint, LeaseGrant,
    LeaseRequest, LoadBalance, PartnerPool, lease_time, may_answer,
};
use failover_fsm::{
    Action, BindingData, Commit, Config, EngineError, Event, Instant, ServerState, Status, UnixTime,
};
use failover_proto::auth::{DigestError, MessageAuth};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tracing::{Instrument, info_span};

use crate::auth::{DynAuth, LinkAuth};
use crate::listener::Listener;
use crate::storage::Storage;
use crate::task::{Backoff, Clock, Connection, Forward, Incoming, PeerEngine, Task};
use crate::transport::{Security, Transport, TransportNotChosen};

/// Configures and starts a failover peer.
///
/// ```no_run
/// # async fn demo() -> std::io::Result<()> {
/// use std::net::Ipv4Addr;
/// use std::sync::Arc;
/// use failover_fsm::{Config, Role};
/// use failover_tokio::{MemoryStore, PeerBuilder};
///
/// let store = Arc::new(MemoryStore::new(Role::Secondary, Ipv4Addr::new(192, 0, 2, 0), 256));
/// let config = Config::new(Role::Secondary, "dhcp-failover", 3600);
/// let (handle, mut events) = PeerBuilder::new(config, "192.0.2.1:647".parse().unwrap(), store)
///     .plaintext() // or .tls(..) with the `tls` feature
///     .listen("192.0.2.2:647".parse().unwrap())
///     .bind_address("192.0.2.2".parse().unwrap())
///     .start()
///     .await?;
/// while let Some(event) = events.recv().await {
///     println!("{event:?} — now {:?}", handle.status().state);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct PeerBuilder<S: Storage> {
    config: Config,
    partner: SocketAddr,
    listen: SocketAddr,
    shared: Option<Listener>,
    bind: Option<IpAddr>,
    security: Option<Security>,
    auth: Option<DynAuth>,
    storage: Arc<S>,
    reconnect_min: Duration,
    reconnect_max: Duration,
    reject_backoff: Duration,
    event_capacity: usize,
    write_timeout: Option<Duration>,
    lease_table_lost: bool,
}

impl<S: Storage> PeerBuilder<S> {
    /// A peer for `config` whose partner listens at `partner` (port 647 normally), storing its
    /// leases and state in `storage`. Listens on 0.0.0.0:647 unless told otherwise.
    pub fn new(config: Config, partner: SocketAddr, storage: Arc<S>) -> Self {
        PeerBuilder {
            config,
            partner,
            listen: SocketAddr::from(([0, 0, 0, 0], failover_proto::FAILOVER_PORT)),
            shared: None,
            bind: None,
            security: None,
            auth: None,
            storage,
            reconnect_min: Duration::from_secs(5),
            reconnect_max: Duration::from_secs(60),
            reject_backoff: Duration::from_secs(60),
            event_capacity: 1024,
            write_timeout: None,
            lease_table_lost: false,
        }
    }

    /// Plain TCP to the partner, as the draft and ISC dhcpd speak it (ISC cannot do TLS):
    /// anyone on the path can read the lease database and inject updates. A relationship must
    /// choose its transport, this or `PeerBuilder::tls` (feature `tls`); [`Handle::transport`] reports it.
    pub fn plaintext(mut self) -> Self {
        self.security = Some(Security::Plain);
        self
    }

    /// TLS 1.3 to the partner, with a certificate on each side and the partner's identity
    /// pinned (see [`crate::tls`]): both peers must be configured so.
    #[cfg(feature = "tls")]
    pub fn tls(mut self, config: crate::tls::TlsConfig) -> Self {
        self.security = Some(Security::Tls(config));
        self
    }

    /// Authenticates every message with the draft's message-digest option over a shared
    /// secret (§11.1), e.g. `failover_proto::HmacSha256` (feature `hmac-sha256` of
    /// failover-proto): ours carry it, the partner's must, or the connection is closed with
    /// DISCONNECT (reasons 20, 21, 12, or 4 for a replayed CONNECT) before the engine sees the
    /// message. Both peers need the same secret; a CONNECT's time must be within
    /// [`Config::max_clock_skew`] of ours. The replay rule is [`failover_proto::auth`]'s.
    /// Without it (the default, and ISC dhcpd's way), a message carrying a digest is refused
    /// (reason 13).
    pub fn message_auth(mut self, auth: impl MessageAuth + Send + Sync + 'static) -> Self {
        self.auth = Some(DynAuth(Arc::new(auth)));
        self
    }

    /// Where to listen for the partner's connections: a port of this relationship's own.
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self.shared = None;
        self
    }

    /// Takes the partner's connections from `listener`, a port shared with other
    /// relationships (draft §5.1, §8.2), instead of a port of its own: the connections from
    /// the partner's address, and when that address has several relationships there, those
    /// whose CONNECT names this one. [`PeerBuilder::start`] fails (`InvalidInput`) if the
    /// listener has this relationship name with this partner address already, or, with TLS, a
    /// relationship with the same partner address and another `TlsConfig`.
    pub fn listener(mut self, listener: &Listener) -> Self {
        self.shared = Some(listener.clone());
        self
    }

    /// Source address of our outgoing connections (ISC accepts only its configured peer
    /// address).
    pub fn bind_address(mut self, ip: IpAddr) -> Self {
        self.bind = Some(ip);
        self
    }

    /// Reconnect delay: starts at `min`, doubles up to `max`, with jitter (ISC retries every
    /// 5 s).
    pub fn reconnect(mut self, min: Duration, max: Duration) -> Self {
        self.reconnect_min = min;
        self.reconnect_max = max.max(min);
        self
    }

    /// Delay before reconnecting after the partner rejected us or sent DISCONNECT (draft §7.9:
    /// "a minute or two"; default 60 s).
    pub fn reject_backoff(mut self, d: Duration) -> Self {
        self.reject_backoff = d;
        self
    }

    /// Capacity of the event channel (events wait there for the application; when it is full
    /// the task stops reading from the partner).
    pub fn event_capacity(mut self, n: usize) -> Self {
        self.event_capacity = n.max(1);
        self
    }

    /// Longest a write to the partner may block (a partner that stops reading) before the
    /// connection is dropped; default: our receive timer.
    pub fn write_timeout(mut self, d: Duration) -> Self {
        self.write_timeout = Some(d);
        self
    }

    /// The lease table in the storage is lost or restored from an older copy (draft §9.5.2:
    /// the server is "instructed" so): the failover state saved there is ignored, and the
    /// partner's bindings replace ours until its UPDDONE answers our UPDREQALL
    /// ([`failover_fsm::Engine::lease_table_lost`]). Say it once: the storage records the
    /// refresh under way, and a restart before it is done goes on with it.
    pub fn lease_table_lost(mut self) -> Self {
        self.lease_table_lost = true;
        self
    }

    /// Binds the listener and starts the task. Fails with [`TransportNotChosen`] (kind
    /// `InvalidInput`) if neither [`PeerBuilder::plaintext`] nor `tls` was called.
    pub async fn start(self) -> io::Result<(Handle, mpsc::Receiver<PeerEvent>)> {
        let security = self
            .security
            .clone()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, TransportNotChosen))?;
        let transport = Arc::new(security.transport());
        let (listener, local) = match &self.shared {
            Some(shared) => {
                let (registration, rx) = shared.register(
                    self.partner.ip(),
                    &self.config.relationship_name,
                    self.config.role,
                    &security,
                )?;
                let local = shared.local_addr();
                let incoming = Incoming::Shared {
                    rx,
                    local,
                    _registration: registration,
                };
                (incoming, local)
            }
            None => {
                let listener = TcpListener::bind(self.listen).await?;
                let local = listener.local_addr()?;
                (Incoming::Own(listener), local)
            }
        };
        let origin = tokio::time::Instant::now();
        let now = Instant::ZERO;
        let wall = wall_clock();
        let persisted = if self.lease_table_lost {
            None
        } else {
            self.storage.load_state()
        };
        // Distinct per relationship of one process (xids, jitter).
        let name_hash = self
            .config
            .relationship_name
            .iter()
            .fold(0x811c_9dc5u32, |h, b| {
                (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
            });
        let seed = (wall.0 ^ u32::from(local.port()) ^ name_hash).max(1);
        let mut engine = Box::new(
            PeerEngine::new(self.config.clone(), persisted, now, wall, seed)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?,
        );
        if self.lease_table_lost {
            engine.lease_table_lost();
        } else if let Some(pet) = self.storage.latest_received_pet() {
            engine.restore_received_pet(pet);
        }
        let status = engine.status(now);
        let (status_tx, status_rx) = watch::channel(status);
        let (cmd_tx, cmd_rx) = mpsc::channel(256);
        let (event_tx, event_rx) = mpsc::channel(self.event_capacity);
        let counters = Arc::new(Counters::default());
        let write_timeout = self
            .write_timeout
            .unwrap_or(Duration::from_secs(u64::from(self.config.receive_timer)));
        let conn = Connection::new(
            self.partner,
            self.bind,
            listener,
            security,
            Backoff {
                min: self.reconnect_min,
                max: self.reconnect_max,
                after_reject: self.reject_backoff,
            },
            write_timeout,
            seed,
        );
        let out = Forward::new(event_tx, status_tx, counters.clone());
        let digest_type = self.auth.as_ref().map(|a| a.digest_type());
        let auth = LinkAuth::new(self.auth, self.config.role, self.config.max_clock_skew);
        let task = Task::new(
            engine,
            self.storage,
            Clock::new(origin),
            conn,
            cmd_rx,
            out,
            auth,
        );
        let span = info_span!(
            "failover",
            name = %String::from_utf8_lossy(&self.config.relationship_name),
            role = ?self.config.role
        );
        let join = tokio::spawn(task.run().instrument(span));
        Ok((
            Handle {
                cmd: cmd_tx,
                status: status_rx,
                config: Arc::new(self.config),
                counters,
                local,
                transport,
                digest_type,
                join: Arc::new(std::sync::Mutex::new(Some(join))),
            },
            event_rx,
        ))
    }
}

/// What the failover task reports to the application.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PeerEvent {
    /// An informational engine event.
    Engine(Event),
    /// An engine action, after the task carried it out (snapshot persisted, acknowledgement
    /// recorded...).
    Action(Action),
    /// A binding from the partner the engine accepted, applied to the store (durable at the
    /// next sync, acknowledged after it).
    Received(Commit),
    /// A TCP connection to the partner is up.
    Connected {
        /// The partner's address and port.
        peer: SocketAddr,
        /// We opened it (`true`) or accepted it.
        outgoing: bool,
    },
    /// The TCP connection is gone.
    Disconnected,
    /// A connection from an address that is not the partner was closed unread.
    Refused {
        /// Its source.
        from: SocketAddr,
    },
    /// A connection to or from the partner's address was closed because its TLS handshake
    /// failed; the engine never saw it.
    #[cfg(feature = "tls")]
    TlsRefused {
        /// The other end.
        peer: SocketAddr,
        /// We opened it (`true`) or accepted it.
        outgoing: bool,
        /// Why.
        reason: crate::tls::TlsRefusal,
    },
    /// A message from the partner failed authentication ([`PeerBuilder::message_auth`]): it
    /// did not reach the engine, which sends DISCONNECT with `reason.reject_reason()` and
    /// closes the connection.
    DigestRefused {
        /// Why.
        reason: DigestError,
    },
    /// Storage failed; the binding could not be acknowledged or the state not persisted.
    StorageError(String),
}

/// Counters kept by the task (the engine's own are in [`Status::counters`]).
#[derive(Debug, Default)]
pub struct Counters {
    refused: AtomicU64,
    tls_refused: AtomicU64,
    digest_refused: AtomicU64,
    accepted: AtomicU64,
    connections: AtomicU64,
    messages_in: AtomicU64,
    messages_out: AtomicU64,
}

impl Counters {
    pub(crate) fn count_refused(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }

    #[cfg(feature = "tls")]
    pub(crate) fn count_tls_refused(&self) {
        self.tls_refused.fetch_add(1, Ordering::Relaxed);
        self.count_refused();
    }

    pub(crate) fn count_digest_refused(&self) {
        self.digest_refused.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_connection(&self, outgoing: bool) {
        self.connections.fetch_add(1, Ordering::Relaxed);
        if !outgoing {
            self.accepted.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn count_in(&self) {
        self.messages_in.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_out(&self) {
        self.messages_out.fetch_add(1, Ordering::Relaxed);
    }

    /// Connections closed before anything of them reached the engine: from an address that is
    /// not the partner's or the partner's while we have one already (one connection per
    /// relationship), both closed unread; and those whose TLS handshake failed, in either
    /// direction ([`Counters::tls_refused`]).
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Connections to or from the partner's address whose TLS handshake failed (always 0
    /// without the `tls` feature).
    pub fn tls_refused(&self) -> u64 {
        self.tls_refused.load(Ordering::Relaxed)
    }

    /// Connections closed because a message failed authentication (missing, bad or replayed
    /// digest, or a digest without a secret configured; [`PeerBuilder::message_auth`]). Their
    /// messages from the failing one on never reached the engine.
    pub fn digest_refused(&self) -> u64 {
        self.digest_refused.load(Ordering::Relaxed)
    }

    /// The partner's connections we accepted (with TLS: handshake done, certificate verified)
    /// and handed to the engine.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Connections to the partner established, accepted or opened by us (with TLS: handshake
    /// done, certificate verified), and handed to the engine.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }

    /// Messages received from the partner and handed to the engine (with
    /// [`PeerBuilder::message_auth`]: authenticated).
    pub fn messages_in(&self) -> u64 {
        self.messages_in.load(Ordering::Relaxed)
    }

    /// Messages sent to the partner.
    pub fn messages_out(&self) -> u64 {
        self.messages_out.load(Ordering::Relaxed)
    }
}

/// Why a command could not be carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PeerError {
    /// The failover task has stopped.
    Stopped,
    /// The storage could not record the binding.
    Storage,
    /// The engine refused.
    Engine(EngineError),
}

impl std::fmt::Display for PeerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PeerError::Stopped => f.write_str("the failover task has stopped"),
            PeerError::Storage => f.write_str("the storage could not record the binding"),
            PeerError::Engine(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for PeerError {}

/// Where a command's outcome goes.
pub(crate) type Reply = oneshot::Sender<Result<(), PeerError>>;

pub(crate) enum Command {
    SendBindings(Vec<BindingData>, Reply),
    PartnerDown {
        force: bool,
        reply: Reply,
    },
    Shutdown(oneshot::Sender<()>),
    Balance(
        BalanceTrigger,
        oneshot::Sender<Result<BalancePlan, BalanceSkipped>>,
    ),
}

/// The DHCP server's handle on its failover peer. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Handle {
    cmd: mpsc::Sender<Command>,
    status: watch::Receiver<Status>,
    config: Arc<Config>,
    counters: Arc<Counters>,
    local: SocketAddr,
    transport: Arc<Transport>,
    digest_type: Option<u8>,
    join: Arc<std::sync::Mutex<Option<JoinHandle<()>>>>,
}

impl Handle {
    /// Records `binding` in the store (durably) and queues it for the partner (lazy update,
    /// draft §5.1). Waits while the queue is full (back-pressure).
    pub async fn send_binding(&self, binding: BindingData) -> Result<(), PeerError> {
        self.send_bindings(vec![binding]).await
    }

    /// [`Handle::send_binding`] for many bindings at once: one round trip to the task.
    pub async fn send_bindings(&self, bindings: Vec<BindingData>) -> Result<(), PeerError> {
        let (tx, rx) = oneshot::channel();
        self.cmd
            .send(Command::SendBindings(bindings, tx))
            .await
            .map_err(|_| PeerError::Stopped)?;
        rx.await.map_err(|_| PeerError::Stopped)?
    }

    /// The operator declares the partner down (§9.4): from COMMUNICATIONS-INTERRUPTED (or
    /// RESOLUTION-INTERRUPTED) only, unless `force`; refused otherwise with
    /// `PeerError::Engine(EngineError::NotInterrupted { state })` (see
    /// [`failover_fsm::Engine::partner_down`]). Returns once the engine has taken it.
    pub async fn partner_down(&self, force: bool) -> Result<(), PeerError> {
        let (tx, rx) = oneshot::channel();
        self.cmd
            .send(Command::PartnerDown { force, reply: tx })
            .await
            .map_err(|_| PeerError::Stopped)?;
        rx.await.map_err(|_| PeerError::Stopped)?
    }

    /// Stops the peer: announces SHUTDOWN (§9.14), waits a few seconds for the partner to
    /// take over, sends DISCONNECT, closes, and ends the task.
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

    /// Stops the task at once, as a crash would: no SHUTDOWN, no DISCONNECT, nothing more
    /// persisted; the operating system closes the sockets. Returns once the task is gone (its
    /// listening port is free again). What the storage holds is what a restart starts from.
    /// Does nothing if a clone of this handle already stopped the task (or is in `shutdown`).
    pub async fn abort(&self) {
        let join = self.join.lock().ok().and_then(|mut j| j.take());
        if let Some(j) = join {
            j.abort();
            let _ = j.await;
        }
    }

    /// Runs pool balancing now with the store's counts (the task also does on entering NORMAL
    /// and on the partner's POOLREQ).
    pub async fn balance_pools(&self) -> Result<Result<BalancePlan, BalanceSkipped>, PeerError> {
        let (tx, rx) = oneshot::channel();
        self.cmd
            .send(Command::Balance(BalanceTrigger::Manual, tx))
            .await
            .map_err(|_| PeerError::Stopped)?;
        rx.await.map_err(|_| PeerError::Stopped)
    }

    /// The engine's status, as of the task's last step.
    pub fn status(&self) -> Status {
        *self.status.borrow()
    }

    /// A receiver that sees every status change.
    pub fn watch(&self) -> watch::Receiver<Status> {
        self.status.clone()
    }

    /// Waits until our state is `state` (or the task stops).
    pub async fn wait_for_state(&self, state: ServerState) -> Result<(), PeerError> {
        let mut w = self.status.clone();
        w.wait_for(|s| s.state == state)
            .await
            .map(|_| ())
            .map_err(|_| PeerError::Stopped)
    }

    /// The task's counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The transport of the failover link: plain TCP, or TLS and the partner identity it
    /// pins.
    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    /// The message-digest type this relationship signs and verifies with
    /// ([`PeerBuilder::message_auth`]), or `None`: no message authentication.
    pub fn digest_type(&self) -> Option<u8> {
        self.digest_type
    }

    /// The address the peer listens on (its own port, or the shared [`Listener`]'s).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    fn endpoint(&self) -> Endpoint {
        let s = self.status();
        Endpoint {
            dialect: self.config.dialect,
            role: self.config.role,
            state: s.state,
            state_since: s.state_since,
            partner_state: s.partner_state,
            mclt: s.mclt,
            lease_mclt: s.lease_mclt,
        }
    }

    /// Whether this server may answer `client` now (state, load balancing, draft §5.3, §9).
    pub fn may_answer(&self, client: &ClientMessage<'_>, partner_pool: PartnerPool) -> Answer {
        let s = self.status();
        let lb = LoadBalance {
            hba: s.hba,
            polarity: self.config.hba_polarity,
            max_secs: self.config.load_balance_max_seconds,
        };
        may_answer(&self.endpoint(), &lb, client, partner_pool)
    }

    /// The lease time to grant and the potential-expiration-time to send (MCLT rules, §5.2.1).
    pub fn lease_time(&self, request: &LeaseRequest) -> LeaseGrant {
        lease_time(&self.endpoint(), request)
    }
}

/// The wall clock as the draft's absolute time.
pub fn wall_clock() -> UnixTime {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    UnixTime(u32::try_from(secs).unwrap_or(u32::MAX))
}
