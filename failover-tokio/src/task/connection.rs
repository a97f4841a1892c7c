//! The TCP side: the listener, dialing with jittered backoff, the TLS handshakes (the `tls`
//! feature), the one live connection to the partner, reading into a fixed buffer and writing
//! the engine's messages in batches.
//!
//! A connection reaches the engine (`connection_up`) only once its transport is established:
//! with TLS, after a handshake that verified the partner's certificate. A handshake that fails
//! closes the connection before the engine has seen it.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::task::Poll;
use std::time::Duration;

use failover_fsm::{Link, Role};
use failover_proto::Framer;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::mpsc;
#[cfg(feature = "tls")]
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use super::Core;
use super::backoff::{Backoff, Redial, refused_us};
use super::outbox::Outbox;
use super::stream::Stream;
use crate::listener::{Handoff, Registration};
use crate::peer::PeerEvent;
use crate::storage::Storage;
#[cfg(feature = "tls")]
use crate::tls::HandshakeFailed;
use crate::transport::Security;

/// Bytes read from the socket at a time (bounded; the framer holds at most one message).
const READ_BUFFER: usize = 16 * 1024;
/// Further reads of what the socket already holds, after one that woke the task.
const READ_AHEAD: usize = 7;
/// Longest the engine's last messages (a DISCONNECT) may wait for a partner that does not read
/// once the engine asked to close.
const CLOSE_LINGER: Duration = Duration::from_secs(2);
/// Most TLS handshakes with the partner's address under way at once; more connections are
/// refused (the partner itself needs one).
#[cfg(feature = "tls")]
const MAX_HANDSHAKES: usize = 4;

/// One thing that happened on the network side.
pub(super) enum NetInput {
    Accepted(io::Result<(TcpStream, SocketAddr)>),
    /// From a shared listener (`None`: it is gone).
    HandedOver(Option<Handoff>),
    Read(io::Result<usize>),
    /// Everything waiting for the socket was written (or the write failed).
    Written(io::Result<()>),
    /// The socket took nothing of what waits for the write timeout.
    WriteStalled,
    Dialed(Result<Stream, DialError>),
    /// The TLS handshake of an accepted connection ended.
    #[cfg(feature = "tls")]
    Handshaken(Option<Handshaken>),
}

/// An accepted connection's TLS handshake, done.
#[cfg(feature = "tls")]
pub(super) struct Handshaken {
    from: SocketAddr,
    result: Result<Stream, HandshakeFailed>,
}

/// Why a dial gave no connection.
pub(super) enum DialError {
    /// No TCP connection.
    Connect(io::Error),
    /// A TCP connection whose TLS handshake failed.
    #[cfg(feature = "tls")]
    Tls(HandshakeFailed),
}

struct Conn {
    stream: Stream,
    peer: SocketAddr,
    outgoing: bool,
}

#[cfg(feature = "tls")]
type Handshakes = JoinSet<Handshaken>;
/// Nothing to wait for without TLS.
#[cfg(not(feature = "tls"))]
type Handshakes = ();

type Dial = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Stream, DialError>> + Send>>;

/// The partner's connection and how we get one.
/// Where the partner's connections come from.
pub(crate) enum Incoming {
    /// A listener of the relationship's own ([`crate::PeerBuilder::listen`]).
    Own(TcpListener),
    /// A listener shared with other relationships ([`crate::Listener`]), which hands over
    /// the connections that are ours.
    Shared {
        rx: mpsc::Receiver<Handoff>,
        local: SocketAddr,
        /// Our place on it, given up with the task.
        _registration: Registration,
    },
}

impl Incoming {
    fn local_addr(&self) -> io::Result<SocketAddr> {
        match self {
            Incoming::Own(l) => l.local_addr(),
            Incoming::Shared { local, .. } => Ok(*local),
        }
    }

    /// The next connection (cancel-safe: tokio's accept and channel receive are).
    async fn next(&mut self) -> NetInput {
        match self {
            Incoming::Own(l) => NetInput::Accepted(l.accept().await),
            Incoming::Shared { rx, .. } => match rx.recv().await {
                Some(h) => NetInput::HandedOver(Some(h)),
                None => {
                    // Not while our registration keeps the listener's sender; just in case.
                    std::future::pending::<()>().await;
                    NetInput::HandedOver(None)
                }
            },
        }
    }
}

pub(crate) struct Connection {
    partner: SocketAddr,
    bind: Option<IpAddr>,
    listener: Incoming,
    security: Security,
    conn: Option<Conn>,
    dialing: Option<Dial>,
    /// TLS handshakes of accepted connections, run beside the task so that a slow one holds
    /// up nothing.
    handshakes: Handshakes,
    reconnect_at: Option<tokio::time::Instant>,
    redial: Redial,
    write_timeout: Duration,
    rbuf: Box<[u8]>,
    out: Outbox,
    /// The engine asked to close while our last messages wait for the socket: closed by then
    /// even if they are not written.
    close_by: Option<tokio::time::Instant>,
}

impl Connection {
    pub(crate) fn new(
        partner: SocketAddr,
        bind: Option<IpAddr>,
        listener: Incoming,
        security: Security,
        timing: Backoff,
        write_timeout: Duration,
        seed: u32,
    ) -> Self {
        Connection {
            partner,
            bind,
            listener,
            security,
            conn: None,
            dialing: None,
            handshakes: Handshakes::default(),
            reconnect_at: Some(tokio::time::Instant::now()),
            redial: Redial::new(timing, seed),
            write_timeout,
            rbuf: vec![0u8; READ_BUFFER].into_boxed_slice(),
            out: Outbox::new(),
            close_by: None,
        }
    }

    pub(super) fn listen_addr(&self) -> String {
        self.listener
            .local_addr()
            .map_or_else(|e| e.to_string(), |a| a.to_string())
    }

    pub(super) fn partner(&self) -> SocketAddr {
        self.partner
    }

    pub(super) fn is_up(&self) -> bool {
        self.conn.is_some()
    }

    /// When to dial next, if no connection is up or being made.
    pub(super) fn reconnect_deadline(&self) -> Option<tokio::time::Instant> {
        if self.conn.is_none() && self.dialing.is_none() {
            self.reconnect_at
        } else {
            None
        }
    }

    /// Waits for the next thing to happen on the network side: a connection accepted, bytes
    /// read, what waited for the socket written, a dial finished. Cancel-safe (tokio's accept
    /// and read are; what is written is recorded in the outbox as it goes; the dial future is
    /// kept across calls).
    pub(super) async fn next(&mut self) -> NetInput {
        let Connection {
            listener,
            conn,
            dialing,
            rbuf,
            handshakes,
            out,
            write_timeout,
            close_by,
            ..
        } = self;
        let handshaking = handshakes_under_way(handshakes);
        let stall = conn
            .as_ref()
            .and(earliest(out.stall_deadline(*write_timeout), *close_by));
        tokio::select! {
            a = listener.next() => a,
            io = conn_io(conn, rbuf, out) => io,
            d = dial_opt(dialing) => NetInput::Dialed(d),
            h = handshake_done(handshakes), if handshaking => h,
            _ = sleep_opt(stall) => NetInput::WriteStalled,
        }
    }

    /// Acts on a [`Connection::next`]: the bytes read go to the engine through `framer`.
    pub(super) async fn handle<S: Storage>(
        &mut self,
        core: &mut Core<S>,
        framer: &mut Framer,
        input: NetInput,
    ) {
        match input {
            NetInput::Accepted(a) => self.accepted(core, framer, a),
            NetInput::HandedOver(Some(h)) => self.handed_over(core, framer, h),
            NetInput::HandedOver(None) => {}
            NetInput::Dialed(d) => self.dialed(core, framer, d),
            #[cfg(feature = "tls")]
            NetInput::Handshaken(Some(h)) => match h.result {
                Ok(stream) => {
                    self.admit(core, framer, stream, h.from);
                }
                Err(failed) => refuse_tls(core, h.from, false, failed),
            },
            #[cfg(feature = "tls")]
            NetInput::Handshaken(None) => {}
            NetInput::Written(Ok(())) => {}
            NetInput::Written(Err(e)) => {
                warn!(error = %e, "write to the partner failed; dropping the connection");
                self.drop_conn(core, framer).await;
            }
            NetInput::WriteStalled if !self.stalled() => {}
            NetInput::WriteStalled => {
                warn!(timeout = ?self.write_timeout, "the partner took nothing we sent for the write timeout (or since we closed); dropping the connection");
                self.drop_conn(core, framer).await;
            }
            NetInput::Read(Ok(n)) if n > 0 => {
                let bytes = self.rbuf.get(..n).unwrap_or_default();
                core.deliver(framer, bytes);
                if !self.read_ready(core, framer) {
                    self.drop_conn(core, framer).await;
                }
            }
            NetInput::Read(r) => {
                #[cfg(feature = "tls")]
                if let (Err(e), Some(c)) = (&r, &self.conn)
                    && let Some(alert) = crate::tls::alert_of(e)
                {
                    // A TLS 1.3 client's handshake is done before the server has checked the
                    // client's certificate: a refusal of ours arrives as the first read.
                    warn!(peer = %c.peer, alert, "the partner ended the TLS session with an alert (did it refuse our certificate?)");
                }
                let _ = r;
                self.drop_conn(core, framer).await
            }
        }
    }

    /// Delivers what else the socket holds already, up to [`READ_AHEAD`] more reads, so that one
    /// sync covers all of it (the partner's whole window, when it sent it at once) instead of
    /// one sync per read. `false` if the connection ended.
    fn read_ready<S: Storage>(&mut self, core: &mut Core<S>, framer: &mut Framer) -> bool {
        // No further than the window we advertise: a partner that does not wait for our
        // BNDACKs would otherwise fill the engine while they wait for the sync (and be
        // disconnected for it) instead of stalling on our unread socket.
        let window = core.engine.config().max_unacked_bndupd as usize;
        for _ in 0..READ_AHEAD {
            let Some(c) = self.conn.as_mut() else {
                return true;
            };
            if core.engine.status(core.clock.now()).unacked_received >= window
                || !self.out.has_room()
            {
                return true;
            }
            match c.stream.try_read(&mut self.rbuf) {
                Ok(0) => return false,
                Ok(n) => core.deliver(framer, self.rbuf.get(..n).unwrap_or_default()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(_) => return false,
            }
        }
        true
    }

    fn accepted<S: Storage>(
        &mut self,
        core: &mut Core<S>,
        framer: &mut Framer,
        accepted: io::Result<(TcpStream, SocketAddr)>,
    ) {
        let Ok((stream, from)) = accepted else { return };
        if from.ip() != self.partner.ip() {
            // Not our partner: closed before a byte is read (draft §8.2, ISC "no matching state").
            core.out.counters.count_refused();
            debug!(%from, "refused a connection from a stranger");
            drop(stream);
            core.out.push(PeerEvent::Refused { from });
            return;
        }
        self.partner_connected(core, framer, stream, from);
    }

    /// A connection from the partner's address, nothing read yet.
    fn partner_connected<S: Storage>(
        &mut self,
        core: &mut Core<S>,
        framer: &mut Framer,
        stream: TcpStream,
        from: SocketAddr,
    ) {
        let _ = stream.set_nodelay(true);
        match &self.security {
            Security::Plain => {
                self.admit(core, framer, Stream::Plain(stream), from);
            }
            #[cfg(feature = "tls")]
            Security::Tls(tls) => {
                if self.handshakes.len() >= MAX_HANDSHAKES {
                    core.out.counters.count_refused();
                    debug!(%from, "refused a connection: too many TLS handshakes under way");
                    return;
                }
                let tls = tls.clone();
                self.handshakes.spawn(async move {
                    let result = tls.accept(stream).await.map(|s| Stream::Tls(Box::new(s)));
                    Handshaken { from, result }
                });
            }
        }
    }

    /// What a shared listener handed over.
    fn handed_over<S: Storage>(&mut self, core: &mut Core<S>, framer: &mut Framer, h: Handoff) {
        match h {
            Handoff::Accepted(stream, from) => self.partner_connected(core, framer, stream, from),
            Handoff::Named { stream, from, read } => {
                // The CONNECT that named us goes to the engine (and its digest check) first.
                if self.admit(core, framer, stream, from) {
                    core.deliver(framer, &read);
                }
            }
            Handoff::Stimulus => {
                if self.conn.is_none() && self.dialing.is_none() {
                    self.reconnect_at = Some(tokio::time::Instant::now());
                }
            }
            #[cfg(feature = "tls")]
            Handoff::TlsRefused(from, reason) => {
                refuse_tls(core, from, false, HandshakeFailed::Refused(reason));
            }
        }
    }

    /// Hands an accepted connection, its transport established, to the engine; `false` if it
    /// was closed instead.
    fn admit<S: Storage>(
        &mut self,
        core: &mut Core<S>,
        framer: &mut Framer,
        stream: Stream,
        from: SocketAddr,
    ) -> bool {
        if !self.prefer(core, false) {
            // One connection per relationship: the partner's extra one is closed (ISC keeps
            // the first too).
            core.out.counters.count_refused();
            debug!(%from, "closed a second connection from the partner");
            return false;
        }
        self.dialing = None;
        self.replace_conn(core);
        self.attach(core, framer, stream, from, false)
    }

    pub(super) fn dial(&mut self) {
        let partner = self.partner;
        let bind = self.bind;
        let security = self.security.clone();
        debug!(%partner, "connecting");
        self.dialing = Some(Box::pin(async move {
            let tcp = connect(partner, bind).await.map_err(DialError::Connect)?;
            let _ = tcp.set_nodelay(true);
            match security {
                Security::Plain => Ok(Stream::Plain(tcp)),
                #[cfg(feature = "tls")]
                Security::Tls(tls) => match tls.connect(tcp).await {
                    Ok(s) => Ok(Stream::Tls(Box::new(s))),
                    Err(failed) => Err(DialError::Tls(failed)),
                },
            }
        }));
    }

    fn dialed<S: Storage>(
        &mut self,
        core: &mut Core<S>,
        framer: &mut Framer,
        r: Result<Stream, DialError>,
    ) {
        self.dialing = None;
        match r {
            Ok(stream) if self.prefer(core, true) => {
                let peer = stream.peer_addr().unwrap_or(self.partner);
                self.replace_conn(core);
                let _ = self.attach(core, framer, stream, peer, true);
            }
            Ok(_) => {}
            Err(DialError::Connect(e)) => {
                debug!(error = %e, "connect failed");
                self.schedule_reconnect(false);
            }
            #[cfg(feature = "tls")]
            Err(DialError::Tls(failed)) => {
                refuse_tls(core, self.partner, true, failed);
                self.schedule_reconnect(false);
            }
        }
    }

    /// Whether a new connection (ours if `outgoing`) should be used. With none, yes. When both
    /// peers dial at once, each would otherwise keep its own and close the other's, losing
    /// both: the primary keeps the connection it opened, the secondary the one it accepted —
    /// as long as the current one has not finished its handshake.
    fn prefer<S: Storage>(&self, core: &Core<S>, outgoing: bool) -> bool {
        let Some(current) = &self.conn else {
            return true;
        };
        let handshaking = !matches!(core.engine.link(), Link::Up | Link::Closing);
        let primary = core.engine.config().role == Role::Primary;
        handshaking && current.outgoing != outgoing && outgoing == primary
    }

    /// Drops the current connection (still in its handshake) for a better one.
    fn replace_conn<S: Storage>(&mut self, core: &mut Core<S>) {
        if let Some(old) = self.conn.take() {
            debug!(peer = %old.peer, "replacing a connection still in its handshake");
            let now = core.clock.now();
            core.engine.connection_down(now);
        }
    }

    fn attach<S: Storage>(
        &mut self,
        core: &mut Core<S>,
        framer: &mut Framer,
        stream: Stream,
        peer: SocketAddr,
        outgoing: bool,
    ) -> bool {
        let now = core.clock.now();
        if core.engine.connection_up(now).is_err() {
            return false;
        }
        info!(%peer, outgoing, "connected to the partner");
        core.auth.connection_up();
        core.out.counters.count_connection(outgoing);
        framer.reset();
        self.conn = Some(Conn {
            stream,
            peer,
            outgoing,
        });
        self.redial.connected();
        core.out.push(PeerEvent::Connected { peer, outgoing });
        true
    }

    fn schedule_reconnect(&mut self, after_reject: bool) {
        let d = self.redial.delay(after_reject);
        self.reconnect_at = Some(tokio::time::Instant::now() + d);
    }

    /// Closes the connection (if any) and tells the engine communications failed.
    pub(super) async fn drop_conn<S: Storage>(&mut self, core: &mut Core<S>, framer: &mut Framer) {
        self.out.clear();
        self.close_by = None;
        if let Some(mut c) = self.conn.take() {
            info!(peer = %c.peer, "disconnected from the partner");
            // Closing may mean a close_notify to a partner that no longer reads: not on the
            // task's time (the TLS one is bounded, the plain one does not wait).
            tokio::spawn(async move {
                let _ = c.stream.shutdown().await;
            });
            core.out.push(PeerEvent::Disconnected);
        }
        let now = core.clock.now();
        core.engine.connection_down(now);
        framer.reset();
        let rejected = core.engine.status(now).last_reject.is_some_and(refused_us);
        self.schedule_reconnect(rejected);
    }

    /// Takes what the engine has to send into the outbox, up to
    /// [`super::outbox::WRITE_BATCH`] bytes waiting, and writes what the socket takes now (one
    /// syscall for a burst of BNDUPDs); `true` if the engine had anything. Never waits for the socket: the rest goes as it drains
    /// ([`Connection::next`]); a write that fails drops the connection.
    pub(super) async fn transmit<S: Storage>(
        &mut self,
        core: &mut Core<S>,
        framer: &mut Framer,
    ) -> bool {
        let now = core.clock.now();
        let mut wrote = false;
        let mut msg = [0u8; failover_proto::MAX_MESSAGE_LEN];
        // The engine writes into what is left once the digest has its room.
        let room = failover_proto::MAX_MESSAGE_LEN - core.auth.overhead();
        let mut failed = false;
        while self.out.has_room()
            && let Some(n) = core.engine.poll_transmit(
                now,
                msg.get_mut(..room).unwrap_or_default(),
                &*core.store,
            )
        {
            wrote = true;
            let n = match core.auth.sign(&mut msg, n) {
                Ok(n) => n,
                Err(e) => {
                    // Not with room kept for it; were it to happen, an unsigned message must
                    // not go out, and what follows would be out of sequence.
                    warn!(error = %e, "could not sign a message; dropping the connection");
                    failed = true;
                    break;
                }
            };
            self.out.push(msg.get(..n).unwrap_or_default());
            core.out.counters.count_out();
        }
        match self.conn.as_mut() {
            None => self.out.clear(),
            Some(c) if !failed && !self.out.is_empty() => {
                if let Some(e) = self.out.write_now(&mut c.stream) {
                    warn!(error = %e, "write to the partner failed; dropping the connection");
                    failed = true;
                }
            }
            Some(_) => {}
        }
        if failed {
            self.drop_conn(core, framer).await;
        }
        wrote
    }

    /// Whether the socket took nothing for the write timeout, or the close the engine asked
    /// for waited its longest (the deadline [`Connection::next`] slept to may be stale: the
    /// socket may have taken bytes meanwhile).
    fn stalled(&self) -> bool {
        let now = tokio::time::Instant::now();
        let stall = earliest(self.out.stall_deadline(self.write_timeout), self.close_by);
        stall.is_some_and(|t| t <= now)
    }

    /// Nothing waits to be written to the partner. If something does, the close the engine
    /// asked for waits for it at most [`CLOSE_LINGER`].
    pub(super) fn written_before_close(&mut self) -> bool {
        if self.out.is_empty() {
            return true;
        }
        if self.close_by.is_none() {
            self.close_by = Some(tokio::time::Instant::now() + CLOSE_LINGER);
        }
        false
    }

    /// Waits, at most `limit`, until what waits for the socket is written (a DISCONNECT
    /// before the task ends).
    pub(super) async fn finish_writes(&mut self, limit: Duration) {
        let Connection { conn, out, .. } = self;
        if let Some(c) = conn.as_mut() {
            let write = std::future::poll_fn(|cx| out.poll_write(&mut c.stream, cx));
            let _ = tokio::time::timeout(limit, write).await;
        }
    }
}

pub(crate) fn earliest(
    a: Option<tokio::time::Instant>,
    b: Option<tokio::time::Instant>,
) -> Option<tokio::time::Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

pub(crate) async fn sleep_opt(at: Option<tokio::time::Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// The connection's next read, or the end of what waited for the socket. Nothing is read
/// while the outbox is full: a partner that does not take our answers gets no more of them
/// made (TCP's back-pressure, as before the task stopped waiting for its writes).
async fn conn_io(conn: &mut Option<Conn>, rbuf: &mut [u8], out: &mut Outbox) -> NetInput {
    let Some(c) = conn else {
        return std::future::pending().await;
    };
    std::future::poll_fn(|cx| {
        if !out.is_empty()
            && let Poll::Ready(r) = out.poll_write(&mut c.stream, cx)
        {
            return Poll::Ready(NetInput::Written(r));
        }
        if !out.has_room() {
            return Poll::Pending;
        }
        c.stream.poll_read(cx, rbuf).map(NetInput::Read)
    })
    .await
}

/// Opens a TCP connection to `partner`, from `bind` if given, within 10 s.
async fn connect(partner: SocketAddr, bind: Option<IpAddr>) -> io::Result<TcpStream> {
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
}

/// A connection whose TLS handshake failed, closed (by its end): if refused, counted and
/// reported. The engine never saw it.
#[cfg(feature = "tls")]
fn refuse_tls<S: Storage>(
    core: &mut Core<S>,
    peer: SocketAddr,
    outgoing: bool,
    failed: HandshakeFailed,
) {
    let reason = match failed {
        HandshakeFailed::Refused(r) => r,
        HandshakeFailed::Closed(e) => {
            debug!(%peer, outgoing, error = %e, "connection closed during the TLS handshake");
            return;
        }
    };
    core.out.counters.count_tls_refused();
    warn!(%peer, outgoing, %reason, "TLS handshake with the partner failed; connection closed");
    core.out.push(PeerEvent::TlsRefused {
        peer,
        outgoing,
        reason,
    });
}

#[cfg(feature = "tls")]
fn handshakes_under_way(handshakes: &Handshakes) -> bool {
    !handshakes.is_empty()
}

#[cfg(not(feature = "tls"))]
fn handshakes_under_way(_: &Handshakes) -> bool {
    false
}

#[cfg(feature = "tls")]
async fn handshake_done(handshakes: &mut Handshakes) -> NetInput {
    // A handshake task that panicked or was aborted counts as nothing that happened.
    NetInput::Handshaken(handshakes.join_next().await.and_then(Result::ok))
}

#[cfg(not(feature = "tls"))]
async fn handshake_done(_: &mut Handshakes) -> NetInput {
    std::future::pending().await
}

async fn dial_opt(d: &mut Option<Dial>) -> Result<Stream, DialError> {
    match d {
        Some(f) => f.await,
        None => std::future::pending().await,
    }
}
