//! The TCP side: the listener, dialing with jittered backoff, the one live connection to the
//! partner, reading into a fixed buffer and writing the engine's messages in batches.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use failover_fsm::{Link, RejectReason, Role};
use failover_proto::Framer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tracing::{debug, info, warn};

use super::Core;
use crate::peer::PeerEvent;
use crate::storage::Storage;

/// Bytes read from the socket at a time (bounded; the framer holds at most one message).
const READ_BUFFER: usize = 16 * 1024;
/// Further reads of what the socket already holds, after one that woke the task.
const READ_AHEAD: usize = 7;
/// Most bytes gathered into one write.
const WRITE_BATCH: usize = 64 * 1024;

/// One thing that happened on the network side.
pub(super) enum NetInput {
    Accepted(io::Result<(TcpStream, SocketAddr)>),
    Read(io::Result<usize>),
    Dialed(io::Result<TcpStream>),
}

struct Conn {
    stream: TcpStream,
    peer: SocketAddr,
    outgoing: bool,
}

type Dial = std::pin::Pin<Box<dyn std::future::Future<Output = io::Result<TcpStream>> + Send>>;

/// Reconnect timing.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Backoff {
    /// First delay after a failure (doubles up to `max`).
    pub(crate) min: Duration,
    /// Longest delay.
    pub(crate) max: Duration,
    /// Delay after the partner rejected us or sent DISCONNECT (§7.9).
    pub(crate) after_reject: Duration,
}

/// The partner's connection and how we get one.
pub(crate) struct Connection {
    partner: SocketAddr,
    bind: Option<IpAddr>,
    listener: TcpListener,
    conn: Option<Conn>,
    dialing: Option<Dial>,
    reconnect_at: Option<tokio::time::Instant>,
    timing: Backoff,
    backoff: Duration,
    write_timeout: Duration,
    rng: u64,
    rbuf: Box<[u8]>,
    wbuf: Vec<u8>,
}

impl Connection {
    pub(crate) fn new(
        partner: SocketAddr,
        bind: Option<IpAddr>,
        listener: TcpListener,
        timing: Backoff,
        write_timeout: Duration,
        seed: u32,
    ) -> Self {
        Connection {
            partner,
            bind,
            listener,
            conn: None,
            dialing: None,
            reconnect_at: Some(tokio::time::Instant::now()),
            timing,
            backoff: timing.min,
            write_timeout,
            rng: u64::from(seed) | 1,
            rbuf: vec![0u8; READ_BUFFER].into_boxed_slice(),
            wbuf: Vec::with_capacity(WRITE_BATCH + failover_proto::MAX_MESSAGE_LEN),
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
    /// read, a dial finished. Cancel-safe (tokio's accept and read are; the dial future is
    /// kept across calls).
    pub(super) async fn next(&mut self) -> NetInput {
        let Connection {
            listener,
            conn,
            dialing,
            rbuf,
            ..
        } = self;
        tokio::select! {
            a = listener.accept() => NetInput::Accepted(a),
            r = read_conn(conn, rbuf) => NetInput::Read(r),
            d = dial_opt(dialing) => NetInput::Dialed(d),
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
            NetInput::Dialed(d) => self.dialed(core, framer, d),
            NetInput::Read(Ok(n)) if n > 0 => {
                let bytes = self.rbuf.get(..n).unwrap_or_default();
                core.deliver(framer, bytes);
                if !self.read_ready(core, framer) {
                    self.drop_conn(core, framer).await;
                }
            }
            NetInput::Read(_) => self.drop_conn(core, framer).await,
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
            let Some(c) = self.conn.as_ref() else {
                return true;
            };
            if core.engine.status(core.clock.now()).unacked_received >= window {
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

    fn jitter(&mut self, d: Duration) -> Duration {
        // xorshift: ±25 % so that two peers do not dial each other in lockstep.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let spread = d.as_millis() as u64 / 2;
        let offset = if spread == 0 { 0 } else { self.rng % spread };
        d - d / 4 + Duration::from_millis(offset)
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
        if !self.prefer(core, false) {
            // One connection per relationship: the partner's extra one is closed (ISC keeps
            // the first too).
            core.out.counters.count_refused();
            debug!(%from, "closed a second connection from the partner");
            return;
        }
        self.dialing = None;
        self.replace_conn(core);
        self.attach(core, framer, stream, from, false);
    }

    pub(super) fn dial(&mut self) {
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

    fn dialed<S: Storage>(
        &mut self,
        core: &mut Core<S>,
        framer: &mut Framer,
        r: io::Result<TcpStream>,
    ) {
        self.dialing = None;
        match r {
            Ok(stream) if self.prefer(core, true) => {
                let peer = stream.peer_addr().unwrap_or(self.partner);
                self.replace_conn(core);
                self.attach(core, framer, stream, peer, true);
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
        stream: TcpStream,
        peer: SocketAddr,
        outgoing: bool,
    ) {
        let _ = stream.set_nodelay(true);
        let now = core.clock.now();
        if core.engine.connection_up(now).is_err() {
            return;
        }
        info!(%peer, outgoing, "connected to the partner");
        core.out.counters.count_connection(outgoing);
        framer.reset();
        self.conn = Some(Conn {
            stream,
            peer,
            outgoing,
        });
        self.backoff = self.timing.min;
        core.out.push(PeerEvent::Connected { peer, outgoing });
    }

    fn schedule_reconnect(&mut self, after_reject: bool) {
        let base = if after_reject {
            self.timing.after_reject
        } else {
            self.backoff
        };
        let d = self.jitter(base);
        self.backoff = (self.backoff * 2).min(self.timing.max);
        self.reconnect_at = Some(tokio::time::Instant::now() + d);
    }

    /// Closes the connection (if any) and tells the engine communications failed.
    pub(super) async fn drop_conn<S: Storage>(&mut self, core: &mut Core<S>, framer: &mut Framer) {
        if let Some(mut c) = self.conn.take() {
            let _ = c.stream.shutdown().await;
            info!(peer = %c.peer, "disconnected from the partner");
            core.out.push(PeerEvent::Disconnected);
        }
        let now = core.clock.now();
        core.engine.connection_down(now);
        framer.reset();
        let rejected = matches!(
            core.engine.status(now).last_reject,
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

    /// Writes what the engine has to send, gathered into writes of up to [`WRITE_BATCH`]
    /// bytes (one syscall for a burst of BNDUPDs); `true` if there was any. A write that fails
    /// or stalls past the write timeout drops the connection.
    pub(super) async fn transmit<S: Storage>(
        &mut self,
        core: &mut Core<S>,
        framer: &mut Framer,
    ) -> bool {
        let now = core.clock.now();
        let mut wrote = false;
        let mut out = std::mem::take(&mut self.wbuf);
        out.clear();
        let mut msg = [0u8; failover_proto::MAX_MESSAGE_LEN];
        while out.len() < WRITE_BATCH
            && let Some(n) = core.engine.poll_transmit(now, &mut msg)
        {
            wrote = true;
            out.extend_from_slice(msg.get(..n).unwrap_or_default());
            core.out.counters.count_out();
        }
        let mut failed = false;
        if !out.is_empty()
            && let Some(conn) = self.conn.as_mut()
        {
            let w = tokio::time::timeout(self.write_timeout, conn.stream.write_all(&out)).await;
            if !matches!(w, Ok(Ok(()))) {
                warn!("write to the partner failed or stalled; dropping the connection");
                failed = true;
            }
        }
        self.wbuf = out;
        if failed {
            self.drop_conn(core, framer).await;
        }
        wrote
    }
}

pub(super) async fn sleep_opt(at: Option<tokio::time::Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

async fn read_conn(conn: &mut Option<Conn>, buf: &mut [u8]) -> io::Result<usize> {
    match conn {
        Some(c) => c.stream.read(buf).await,
        None => std::future::pending().await,
    }
}

async fn dial_opt(d: &mut Option<Dial>) -> io::Result<TcpStream> {
    match d {
        Some(f) => f.await,
        None => std::future::pending().await,
    }
}
