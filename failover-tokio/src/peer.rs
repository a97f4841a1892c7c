//! The failover task: one TCP connection to the partner driven through the engine.

use std::collections::VecDeque;
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
    Action, BindingData, Config, Engine, EngineError, Event, Instant, Link, PersistToken,
    Persisted, RejectReason, ServerState, Status, UnixTime,
};
use failover_proto::Framer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::storage::Storage;

/// The engine as the binding sizes it: 256 bindings queued (more wait in the task), 128
/// received updates awaiting commit (so max-unacked-bndupd up to 128), 128 actions and as many
/// events.
type PeerEngine = Engine<256, 128, 128>;

/// Bytes read from the socket at a time (bounded; the framer holds at most one message).
const READ_BUFFER: usize = 16 * 1024;
/// Most bytes gathered into one write.
const WRITE_BATCH: usize = 64 * 1024;

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
    bind: Option<IpAddr>,
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
            bind: None,
            storage,
            reconnect_min: Duration::from_secs(5),
            reconnect_max: Duration::from_secs(60),
            reject_backoff: Duration::from_secs(60),
            event_capacity: 1024,
            write_timeout: None,
            lease_table_lost: false,
        }
    }

    /// Where to listen for the partner's connections.
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
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

    /// Binds the listener and starts the task.
    pub async fn start(self) -> io::Result<(Handle, mpsc::Receiver<PeerEvent>)> {
        let listener = TcpListener::bind(self.listen).await?;
        let local = listener.local_addr()?;
        let origin = tokio::time::Instant::now();
        let now = Instant::ZERO;
        let wall = wall_clock();
        let persisted = if self.lease_table_lost {
            None
        } else {
            self.storage.load_state()
        };
        let seed = u32::try_from(wall.0 as u64 ^ u64::from(self.listen.port())).unwrap_or(1);
        let mut engine = Box::new(
            PeerEngine::new(self.config.clone(), persisted, now, wall, seed)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?,
        );
        if self.lease_table_lost {
            engine.lease_table_lost();
        }
        let status = engine.status(now);
        let (status_tx, status_rx) = watch::channel(status);
        let (cmd_tx, cmd_rx) = mpsc::channel(256);
        let (event_tx, event_rx) = mpsc::channel(self.event_capacity);
        let counters = Arc::new(Counters::default());
        let write_timeout = self
            .write_timeout
            .unwrap_or(Duration::from_secs(u64::from(self.config.receive_timer)));
        let task = Task {
            engine,
            storage: self.storage,
            partner: self.partner,
            bind: self.bind,
            listener,
            origin,
            conn: None,
            dialing: None,
            reconnect_at: Some(tokio::time::Instant::now()),
            backoff: self.reconnect_min,
            reconnect_min: self.reconnect_min,
            reconnect_max: self.reconnect_max,
            reject_backoff: self.reject_backoff,
            framer: Box::new(Framer::new()),
            cmd_rx,
            event_tx,
            status_tx,
            parked: None,
            resync: VecDeque::new(),
            resync_end: false,
            counters: counters.clone(),
            write_timeout,
            rng: u64::from(seed) | 1,
            shutting_down: None,
            wbuf: Vec::with_capacity(WRITE_BATCH + failover_proto::MAX_MESSAGE_LEN),
            close_pending: false,
        };
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
    /// An engine action, after the task carried it out (snapshot persisted, binding committed,
    /// acknowledgement recorded...).
    Action(Action),
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
    /// Storage failed; the binding could not be acknowledged or the state not persisted.
    StorageError(String),
}

/// Counters kept by the task.
#[derive(Debug, Default)]
pub struct Counters {
    refused: AtomicU64,
    connections: AtomicU64,
    messages_in: AtomicU64,
    messages_out: AtomicU64,
}

impl Counters {
    /// Connections from non-partner addresses closed before reading.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Connections to the partner established.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }

    /// Messages received from the partner.
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
type Reply = oneshot::Sender<Result<(), PeerError>>;

enum Command {
    SendBindings(Vec<BindingData>, Reply),
    PartnerDown,
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

    /// The operator declares the partner down (§9.4).
    pub async fn partner_down(&self) -> Result<(), PeerError> {
        self.cmd
            .send(Command::PartnerDown)
            .await
            .map_err(|_| PeerError::Stopped)
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

    /// The address the peer listens on.
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

struct Conn {
    stream: TcpStream,
    peer: SocketAddr,
    outgoing: bool,
}

type Dial = std::pin::Pin<Box<dyn std::future::Future<Output = io::Result<TcpStream>> + Send>>;

struct Task<S: Storage> {
    engine: Box<PeerEngine>,
    storage: Arc<S>,
    partner: SocketAddr,
    bind: Option<IpAddr>,
    listener: TcpListener,
    origin: tokio::time::Instant,
    conn: Option<Conn>,
    dialing: Option<Dial>,
    reconnect_at: Option<tokio::time::Instant>,
    backoff: Duration,
    reconnect_min: Duration,
    reconnect_max: Duration,
    reject_backoff: Duration,
    framer: Box<Framer>,
    cmd_rx: mpsc::Receiver<Command>,
    event_tx: mpsc::Sender<PeerEvent>,
    status_tx: watch::Sender<Status>,
    /// A binding the engine had no room for; commands wait until it fits.
    parked: Option<(VecDeque<BindingData>, Reply)>,
    /// Bindings still to queue for the partner's UPDREQ/UPDREQALL.
    resync: VecDeque<BindingData>,
    /// Call `end_of_updates` once `resync` is queued.
    resync_end: bool,
    counters: Arc<Counters>,
    write_timeout: Duration,
    rng: u64,
    shutting_down: Option<(tokio::time::Instant, oneshot::Sender<()>)>,
    wbuf: Vec<u8>,
    /// The engine asked to close the connection: done once its last messages are written.
    close_pending: bool,
}

impl<S: Storage> Task<S> {
    fn now(&self) -> Instant {
        let ms = self.origin.elapsed().as_millis();
        Instant::from_millis(u64::try_from(ms).unwrap_or(u64::MAX))
    }

    fn deadline(&self, t: Instant) -> tokio::time::Instant {
        self.origin + Duration::from_millis(t.as_millis())
    }

    fn jitter(&mut self, d: Duration) -> Duration {
        // xorshift: ±25 % so that two peers do not dial each other in lockstep.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let spread = d.as_millis() as u64 / 2;
        let offset = if spread == 0 { 0 } else { self.rng % spread };
        d - d / 4 + Duration::from_millis(offset)
    }

    async fn run(mut self) {
        info!(listen = %self.listener.local_addr().map_or_else(|e| e.to_string(), |a| a.to_string()), partner = %self.partner, "failover peer started");
        let mut rbuf = vec![0u8; READ_BUFFER];
        loop {
            if self.step_outputs().await.is_err() {
                break;
            }
            if let Some((until, _)) = &self.shutting_down
                && (self.engine.link() == Link::Down || tokio::time::Instant::now() >= *until)
            {
                self.finish_shutdown().await;
                break;
            }
            let timeout = self.engine.poll_timeout().map(|t| self.deadline(t));
            let reconnect = if self.conn.is_none() && self.dialing.is_none() {
                self.reconnect_at
            } else {
                None
            };
            let linger = self.shutting_down.as_ref().map(|(t, _)| *t);
            tokio::select! {
                cmd = self.cmd_rx.recv(), if self.parked.is_none() => {
                    match cmd {
                        Some(c) => self.command(c),
                        None => {
                            // Every handle is gone: stop as if told to.
                            let (tx, _) = oneshot::channel();
                            self.command(Command::Shutdown(tx));
                        }
                    }
                }
                accepted = self.listener.accept() => self.accepted(accepted),
                read = read_conn(&mut self.conn, &mut rbuf) => self.received(read, &rbuf).await,
                _ = sleep_opt(timeout) => {
                    let now = self.now();
                    self.engine.handle_timeout(now);
                }
                _ = sleep_opt(reconnect) => self.dial(),
                dialed = dial_opt(&mut self.dialing) => self.dialed(dialed),
                _ = sleep_opt(linger) => {}
            }
        }
        info!("failover peer stopped");
    }

    fn command(&mut self, c: Command) {
        let now = self.now();
        match c {
            Command::SendBindings(list, reply) => {
                for b in &list {
                    if let Err(e) = self.storage.record_local(b) {
                        warn!(error = %e, "storage failed");
                        let _ = reply.send(Err(PeerError::Storage));
                        return;
                    }
                }
                // Fed into the engine as its queue allows; no other command is taken meanwhile
                // (back-pressure, bounded by what the caller handed over).
                self.parked = Some((list.into(), reply));
                self.feed_queue();
            }
            Command::PartnerDown => self.engine.partner_down(now),
            Command::Shutdown(done) => {
                info!("shutting down");
                self.engine.shutdown(now);
                self.shutting_down =
                    Some((tokio::time::Instant::now() + Duration::from_secs(6), done));
            }
            Command::Balance(trigger, reply) => {
                let _ = reply.send(self.balance(trigger));
            }
        }
    }

    fn balance(&mut self, trigger: BalanceTrigger) -> Result<BalancePlan, BalanceSkipped> {
        let counts = self.storage.pool_counts();
        let plan = self.engine.balance_pools(counts, trigger)?;
        if plan.to_move() > 0 {
            match self.storage.move_to_partner(&plan) {
                Ok(moved) => {
                    info!(count = moved.len(), to = ?plan.give_as, "moving addresses to the partner's pool");
                    self.resync.extend(moved);
                }
                Err(e) => warn!(error = %e, "storage failed while balancing"),
            }
        }
        Ok(plan)
    }

    async fn finish_shutdown(&mut self) {
        let now = self.now();
        self.engine
            .disconnect(now, RejectReason::UnknownConnectionReason);
        let _ = self.step_outputs().await;
        self.drop_conn().await;
        if let Some((_, done)) = self.shutting_down.take() {
            let _ = done.send(());
        }
    }

    fn accepted(&mut self, accepted: io::Result<(TcpStream, SocketAddr)>) {
        let Ok((stream, from)) = accepted else { return };
        if from.ip() != self.partner.ip() {
            // Not our partner: closed before a byte is read (draft §8.2, ISC "no matching state").
            self.counters.refused.fetch_add(1, Ordering::Relaxed);
            debug!(%from, "refused a connection from a stranger");
            drop(stream);
            let _ = self.event_tx.try_send(PeerEvent::Refused { from });
            return;
        }
        if !self.prefer(false) {
            // One connection per relationship: the partner's extra one is closed (ISC keeps
            // the first too).
            debug!(%from, "closed a second connection from the partner");
            return;
        }
        self.dialing = None;
        self.replace_conn();
        self.attach(stream, from, false);
    }

    fn dial(&mut self) {
        let partner = self.partner;
        let bind = self.bind;
        debug!(%partner, "connecting");
        self.dialing = Some(Box::pin(async move {
            let socket = if partner.is_ipv4() {
                TcpSocket::new_v4()?
            } else {
                TcpSocket::new_v6()?
            };
            if let Some(ip) = bind {
                socket.bind(SocketAddr::new(ip, 0))?;
            }
            tokio::time::timeout(Duration::from_secs(10), socket.connect(partner))
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))?
        }));
    }

    fn dialed(&mut self, r: io::Result<TcpStream>) {
        self.dialing = None;
        match r {
            Ok(stream) if self.prefer(true) => {
                let peer = stream.peer_addr().unwrap_or(self.partner);
                self.replace_conn();
                self.attach(stream, peer, true);
            }
            Ok(_) => {}
            Err(e) => {
                debug!(error = %e, "connect failed");
                self.schedule_reconnect(false);
            }
        }
    }

    /// Whether a new connection (ours if `outgoing`) should be used. With none, yes. When both
    /// peers dial at once, each would otherwise keep its own and close the other's, losing
    /// both: the primary keeps the connection it opened, the secondary the one it accepted —
    /// as long as the current one has not finished its handshake.
    fn prefer(&self, outgoing: bool) -> bool {
        let Some(current) = &self.conn else {
            return true;
        };
        let handshaking = !matches!(self.engine.link(), Link::Up | Link::Closing);
        let primary = self.engine.config().role == failover_fsm::Role::Primary;
        handshaking && current.outgoing != outgoing && outgoing == primary
    }

    /// Drops the current connection (still in its handshake) for a better one.
    fn replace_conn(&mut self) {
        if let Some(old) = self.conn.take() {
            debug!(peer = %old.peer, "replacing a connection still in its handshake");
            let now = self.now();
            self.engine.connection_down(now);
        }
    }

    fn attach(&mut self, stream: TcpStream, peer: SocketAddr, outgoing: bool) {
        let _ = stream.set_nodelay(true);
        let now = self.now();
        if self.engine.connection_up(now).is_err() {
            return;
        }
        info!(%peer, outgoing, "connected to the partner");
        self.counters.connections.fetch_add(1, Ordering::Relaxed);
        self.framer.reset();
        self.conn = Some(Conn {
            stream,
            peer,
            outgoing,
        });
        self.backoff = self.reconnect_min;
        let _ = self
            .event_tx
            .try_send(PeerEvent::Connected { peer, outgoing });
    }

    fn schedule_reconnect(&mut self, after_reject: bool) {
        let base = if after_reject {
            self.reject_backoff
        } else {
            self.backoff
        };
        let d = self.jitter(base);
        self.backoff = (self.backoff * 2).min(self.reconnect_max);
        self.reconnect_at = Some(tokio::time::Instant::now() + d);
    }

    async fn drop_conn(&mut self) {
        if let Some(mut c) = self.conn.take() {
            let _ = c.stream.shutdown().await;
            info!(peer = %c.peer, "disconnected from the partner");
            let _ = self.event_tx.try_send(PeerEvent::Disconnected);
        }
        let now = self.now();
        self.engine.connection_down(now);
        self.framer.reset();
        let rejected = matches!(
            self.engine.status(now).last_reject,
            Some(
                RejectReason::InvalidPartner
                    | RejectReason::TimeMismatch
                    | RejectReason::InvalidMclt
                    | RejectReason::HbaConflict
                    | RejectReason::VersionMismatch
            )
        );
        self.schedule_reconnect(rejected);
    }

    async fn received(&mut self, read: io::Result<usize>, rbuf: &[u8]) {
        let n = match read {
            Ok(0) | Err(_) => {
                self.drop_conn().await;
                return;
            }
            Ok(n) => n,
        };
        let mut input = rbuf.get(..n).unwrap_or_default();
        loop {
            let now = self.now();
            let wall = wall_clock();
            match self.framer.next_message(&mut input) {
                Ok(Some(msg)) => {
                    self.counters.messages_in.fetch_add(1, Ordering::Relaxed);
                    // Copied out of the framer so that events can be acted on in between.
                    let mut copy = [0u8; failover_proto::MAX_MESSAGE_LEN];
                    let len = msg.len().min(copy.len());
                    let msg = match copy.get_mut(..len) {
                        Some(dst) => {
                            dst.copy_from_slice(msg.get(..len).unwrap_or_default());
                            &*dst
                        }
                        None => break,
                    };
                    // The engine refuses input while events wait; act on them, then retry.
                    while let Err(EngineError::EventsPending) =
                        self.engine.handle_message(now, wall, msg, &*self.storage)
                    {
                        if self.drain_events().await.is_err() {
                            return;
                        }
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    // A bad length: the stream cannot be framed any more (§6.1).
                    warn!(error = %e, "unframeable stream from the partner");
                    self.engine.disconnect(now, RejectReason::UnknownError);
                    break;
                }
            }
        }
    }

    /// Acts on events, feeds queued bindings, writes messages: until nothing moves.
    async fn step_outputs(&mut self) -> Result<(), ()> {
        let mut buf = [0u8; failover_proto::MAX_MESSAGE_LEN];
        for _ in 0..100_000 {
            self.drain_events().await?;
            let before = (self.resync.len(), self.parked.is_some(), self.resync_end);
            self.feed_queue();
            let fed = before != (self.resync.len(), self.parked.is_some(), self.resync_end);
            let now = self.now();
            let mut wrote = false;
            // Collect what is ready into one write (one syscall for a burst of BNDUPDs).
            let mut out = std::mem::take(&mut self.wbuf);
            out.clear();
            while out.len() < WRITE_BATCH
                && let Some(n) = self.engine.poll_transmit(now, &mut buf)
            {
                wrote = true;
                out.extend_from_slice(buf.get(..n).unwrap_or_default());
                self.counters.messages_out.fetch_add(1, Ordering::Relaxed);
            }
            if !out.is_empty()
                && let Some(conn) = self.conn.as_mut()
            {
                let w = tokio::time::timeout(self.write_timeout, conn.stream.write_all(&out)).await;
                if !matches!(w, Ok(Ok(()))) {
                    warn!("write to the partner failed or stalled; dropping the connection");
                    self.drop_conn().await;
                }
            }
            self.wbuf = out;
            // The engine's last messages are written: now the close it asked for.
            if self.close_pending && !wrote {
                self.close_pending = false;
                self.drop_conn().await;
            }
            // Dropping the connection is an input (communications failed): act on its
            // outputs and go round again.
            let late = self.drain_events().await?;
            if !wrote && !fed && !late {
                break;
            }
        }
        let status = self.engine.status(self.now());
        self.status_tx.send_if_modified(|s| {
            let changed = *s != status;
            *s = status;
            changed
        });
        Ok(())
    }

    /// Moves parked and resync bindings into the engine as room allows.
    fn feed_queue(&mut self) {
        if let Some((mut list, reply)) = self.parked.take() {
            let mut result = Ok(());
            while let Some(b) = list.pop_front() {
                match self.engine.send_binding(b.clone()) {
                    Ok(_) => {}
                    Err(EngineError::QueueFull) => {
                        // Keep the rest; retry once acknowledgements free room.
                        list.push_front(b);
                        self.parked = Some((list, reply));
                        return;
                    }
                    Err(e) => {
                        result = Err(PeerError::Engine(e));
                        break;
                    }
                }
            }
            let _ = reply.send(result);
        }
        while let Some(b) = self.resync.pop_front() {
            if let Err(EngineError::QueueFull) = self.engine.send_binding(b.clone()) {
                self.resync.push_front(b);
                return;
            }
        }
        if self.resync_end {
            self.resync_end = false;
            self.engine.end_of_updates();
        }
    }

    /// Carries out every pending engine action, then forwards the events; `Ok(true)` if there
    /// was any.
    async fn drain_events(&mut self) -> Result<bool, ()> {
        let mut any = false;
        while let Some(action) = self.engine.poll_action() {
            any = true;
            self.act(&action);
            self.forward(PeerEvent::Action(action)).await;
        }
        while let Some(event) = self.engine.poll_event() {
            any = true;
            log_event(&event);
            self.forward(PeerEvent::Engine(event)).await;
        }
        Ok(any)
    }

    /// Carries out one engine action.
    fn act(&mut self, action: &Action) {
        match action {
            Action::Persist { token, snapshot } => self.persist(*token, snapshot),
            Action::CommitBinding {
                token,
                binding,
                verdict,
            } => match self.storage.commit_binding(binding, verdict) {
                Ok(kept) => {
                    let _ = self.engine.binding_committed(*token);
                    if let Some(ours) = kept {
                        // Full queue: it goes with the next backlog instead.
                        let _ = self.engine.send_binding(ours);
                    }
                }
                Err(e) => {
                    warn!(error = %e, "could not store a binding; rejecting it");
                    let _ = self
                        .engine
                        .binding_commit_failed(*token, RejectReason::UnknownConnectionReason);
                    let _ = self
                        .event_tx
                        .try_send(PeerEvent::StorageError(e.to_string()));
                }
            },
            Action::BindingAcked {
                address,
                status,
                potential_expiration_time,
                ..
            } => {
                if let Err(e) =
                    self.storage
                        .binding_acked(*address, *status, *potential_expiration_time)
                {
                    warn!(error = %e, "storage failed recording an ack");
                }
            }
            Action::BindingRejected {
                address, reason, ..
            } => {
                warn!(address = %std::net::Ipv4Addr::from(*address), %reason, "partner rejected a binding");
            }
            Action::SendAllBindings | Action::SendUnackedBindings | Action::SendBacklog => {
                let unacked = !matches!(action, Action::SendAllBindings);
                let list = self.storage.bindings(unacked);
                debug!(count = list.len(), all = !unacked, "sending bindings");
                if !matches!(action, Action::SendBacklog) {
                    self.resync.clear();
                    self.resync_end = true;
                }
                self.resync.extend(list);
                // Queued before the next `poll_action`, as far as the queue has room: on
                // leaving PARTNER-DOWN, NORMAL is announced once that much is acknowledged.
                self.feed_queue();
            }
            Action::PoolRequested => {
                let _ = self.balance(BalanceTrigger::PoolReq);
            }
            Action::PoolCheck => {
                let _ = self.balance(BalanceTrigger::Manual);
            }
            Action::CloseConnection => self.close_pending = true,
            _ => {}
        }
    }

    /// Hands an event to the application.
    async fn forward(&mut self, event: PeerEvent) {
        // Bounded: when the application does not keep up, we wait (and stop reading).
        if self.event_tx.send(event).await.is_err() {
            // The application dropped its receiver; keep running without events.
            self.event_tx = mpsc::channel(1).0;
        }
    }

    /// Writes the engine's snapshot (synchronously: the store fsyncs before it returns) and
    /// tells the engine how it went.
    fn persist(&mut self, token: PersistToken, snapshot: &Persisted) {
        let r = match self.storage.persist_state(snapshot) {
            Ok(()) => self.engine.persist_complete(token),
            Err(e) => {
                warn!(error = %e, "could not persist the failover state");
                let _ = self
                    .event_tx
                    .try_send(PeerEvent::StorageError(e.to_string()));
                let now = self.now();
                self.engine.persist_failed(now, token)
            }
        };
        if let Err(e) = r {
            warn!(error = %e, "the engine refused a persist confirmation");
        }
    }
}

/// Logs an informational engine event.
fn log_event(event: &Event) {
    match event {
        Event::StateChanged { from, to } => {
            info!(from = %from, to = %to, "failover state changed");
        }
        Event::PartnerStateChanged { state, .. } => {
            info!(partner = %state, "partner state");
        }
        Event::ConnectionRejected { reason, by_partner } => {
            warn!(%reason, by_partner, "connection rejected");
        }
        Event::PartnerDisconnected { reason } => {
            info!(%reason, "partner sent DISCONNECT");
        }
        Event::ProtocolError { error } => {
            warn!(%error, "protocol error from the partner");
        }
        Event::Alarm {
            state,
            partner_state,
        } => {
            warn!(%state, partner = ?partner_state, "failover alarm");
        }
        Event::PersistFailed { token } => {
            warn!(
                ?token,
                "failover state not persisted; its announcement waits"
            );
        }
        _ => {}
    }
}

async fn read_conn(conn: &mut Option<Conn>, buf: &mut [u8]) -> io::Result<usize> {
    match conn {
        Some(c) => c.stream.read(buf).await,
        None => std::future::pending().await,
    }
}

async fn sleep_opt(at: Option<tokio::time::Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

async fn dial_opt(d: &mut Option<Dial>) -> io::Result<TcpStream> {
    match d {
        Some(f) => f.await,
        None => std::future::pending().await,
    }
}
