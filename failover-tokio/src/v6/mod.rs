//! DHCPv6 failover connections (RFC 8156): who opens them, STARTTLS before CONNECT, and the
//! 2-byte message framing. Section numbers are RFC 8156's unless another RFC is named.
//!
//! * **Roles** (§6.1): the primary opens the connection ([`connect_as_primary`]); the
//!   secondary listens and takes only connections from its partner's address
//!   ([`accept_as_secondary`]); a primary never answers a connection it did not open.
//! * **STARTTLS** (§6.1, §10, RFC 7653 §8.2): in secure mode ([`Security6::Secure`]) the
//!   primary's first message is STARTTLS; the secondary answers a REPLY without a status code
//!   and both run the TLS handshake before anything else, with the same mutual, pinned
//!   certificates as the DHCPv4 link ([`TlsConfig`]). A secondary in secure mode closes a
//!   connection whose first message is not STARTTLS; one in insecure mode answers STARTTLS
//!   with TLSConnectionRefused and closes; a primary in secure mode closes on that refusal, on
//!   silence and on a close (RFC 7653 §8.2). Nothing of the failover protocol is sent before
//!   TLS is up, so an attacker on the path can stop the connection but not strip its TLS.
//! * **Framing** (§5.1, RFC 5460 §5.1): each message after a 2-byte size, as
//!   [`failover_proto::v6::framer`] checks it.
//!
//! * **The peer** ([`Peer6`], [`Handle6`]): the engine (`failover_fsm::Engine<_, _, _, V6>`)
//!   driven over these connections — the primary connects and reconnects with backoff
//!   (slower after a refusal, §6.1), the secondary accepts its partner; the engine's timers
//!   (CONTACT every quarter of the partner's keep-alive time, §6.5); its state snapshots made
//!   durable in a [`StateStore`] ([`StateFile`]: written atomically and fsync'd on tokio's
//!   blocking pool) before the engine may announce them, and read back at the next start
//!   (§8.3). No DHCPv6 lease store is plugged in yet: the peer sends no binding update, and
//!   answers the partner's with ConfigurationConflict (no prefix of this relationship holds
//!   them, §7.5.4).
//!
//! The connection functions alone are the transport: the messages that go over a
//! [`Connection6`] (CONNECT, STATE, BNDUPD, ...) are then the caller's, encoded and decoded
//! with [`failover_proto::v6`].
//!
//! ```
//! use std::net::{IpAddr, Ipv4Addr};
//! use std::time::Duration;
//! use failover_proto::v6::{Contact, Repr};
//! use failover_tokio::v6::{Security6, accept_as_secondary, connect_as_primary};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
//! let at = listener.local_addr()?;
//! let wait = Duration::from_secs(2);
//! // The secondary listens and takes only its partner's connections (here: 127.0.0.1).
//! let secondary = tokio::spawn(async move {
//!     let (tcp, _) = listener.accept().await?;
//!     let partner = IpAddr::V4(Ipv4Addr::LOCALHOST);
//!     let mut conn = accept_as_secondary(tcp, partner, &Security6::Insecure, wait).await?;
//!     let mut msg = Vec::new();
//!     conn.next_message(&mut msg).await?;
//!     Ok::<_, Box<dyn std::error::Error + Send + Sync>>(msg)
//! });
//! // The primary connects (with `Security6::Secure(tls)` it would run STARTTLS first).
//! let mut conn = connect_as_primary(at, &Security6::Insecure, 1, wait).await?;
//! conn.send(&Repr::Contact(Contact { xid: 2, sent_time: 0, extra: Default::default() }))
//!     .await?;
//! let got = secondary.await?.map_err(|e| e.to_string())?;
//! assert!(matches!(Repr::parse(&got)?, Repr::Contact(c) if c.xid == 2));
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::task::{Context, Poll};
use std::time::Duration;

use failover_proto::DecodeError;
use failover_proto::framer::FrameStatus;
use failover_proto::v6::{self, MessageType, OtherMessage, Repr, Status};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[cfg(feature = "tls")]
use crate::TlsConfig;
use crate::task::Stream;
#[cfg(feature = "tls")]
use crate::tls::{HandshakeFailed, TlsRefusal};

mod journal;
mod peer;
mod state;
mod store;
mod task;

pub use peer::{Handle6, MAX_UNACKED_BNDUPD, Peer6, Peer6Error, PeerEvent6};
pub use state::{MemoryState, StateFile, StateStore};
pub use store::{ClientBinding, GrantError, IaBinding, MemoryStore6, PREFIX_HANDLES};

/// The failover port, as for DHCPv4 (§5.1).
pub const PORT: u16 = v6::FAILOVER_PORT;

/// Whether a relationship runs TLS (§10 and RFC 7653 §9.1: secure mode is to be the
/// default; insecure mode is an explicit choice, e.g. on a link that is private anyway).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Security6 {
    /// STARTTLS, then TLS 1.3 with both certificates checked and the partner's pinned.
    #[cfg(feature = "tls")]
    Secure(TlsConfig),
    /// Plain TCP: the primary sends no STARTTLS; the secondary refuses one.
    Insecure,
}

/// Why a connection could not be set up. The connection is closed in every case.
#[derive(Debug)]
#[non_exhaustive]
pub enum StartError {
    /// The socket failed.
    Io(io::Error),
    /// The partner said nothing (or not all of a message) within the time allowed.
    Timeout,
    /// The partner closed the connection before the exchange was done.
    Closed,
    /// The connection came from another address than the partner's (§6.1: dropped unread).
    Stranger {
        /// Where it came from.
        from: IpAddr,
    },
    /// What arrived is not a message ([`failover_proto::v6::framer`]), or not one that
    /// parses.
    Malformed(DecodeError),
    /// The partner sent `msg_type` where the exchange expects another message: a secondary in
    /// secure mode got something else than STARTTLS (it closes such connections, RFC 7653
    /// §8.2); a primary got something else than the REPLY to its STARTTLS, or a REPLY with
    /// another transaction-id; or bytes followed a message that nothing may follow before TLS.
    Unexpected {
        /// The message type received (0 for bytes after a message).
        msg_type: u8,
    },
    /// The secondary is in insecure mode: it answered our STARTTLS with `status`
    /// (TLSConnectionRefused, RFC 7653 §8.2), and a primary in secure mode closes.
    TlsRefusedByPartner {
        /// The status code of the REPLY.
        status: Status,
    },
    /// We are in insecure mode and the primary asked for TLS: we answered
    /// TLSConnectionRefused and closed (RFC 7653 §8.2).
    TlsNotOffered,
    /// The TLS handshake failed or was refused (the partner's certificate, or ours).
    #[cfg(feature = "tls")]
    Tls(TlsRefusal),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Io(e) => write!(f, "connection failed: {e}"),
            StartError::Timeout => f.write_str("the partner did not answer in time"),
            StartError::Closed => f.write_str("the partner closed the connection"),
            StartError::Stranger { from } => {
                write!(f, "connection from {from}, not the partner: dropped")
            }
            StartError::Malformed(e) => write!(f, "malformed message: {e}"),
            StartError::Unexpected { msg_type } => {
                write!(f, "unexpected message type {msg_type} before TLS")
            }
            StartError::TlsRefusedByPartner { status } => {
                write!(
                    f,
                    "the partner refused STARTTLS ({status}): it is in insecure mode"
                )
            }
            StartError::TlsNotOffered => {
                f.write_str("the partner asked for TLS and we are in insecure mode: refused")
            }
            #[cfg(feature = "tls")]
            StartError::Tls(r) => write!(f, "TLS: {r}"),
        }
    }
}

impl std::error::Error for StartError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StartError::Io(e) => Some(e),
            StartError::Malformed(e) => Some(e),
            #[cfg(feature = "tls")]
            StartError::Tls(r) => Some(r),
            _ => None,
        }
    }
}

impl From<io::Error> for StartError {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            StartError::Closed
        } else {
            StartError::Io(e)
        }
    }
}

#[cfg(feature = "tls")]
impl From<HandshakeFailed> for StartError {
    fn from(h: HandshakeFailed) -> Self {
        match h {
            HandshakeFailed::Refused(r) => StartError::Tls(r),
            HandshakeFailed::Closed(e) => StartError::from(e),
        }
    }
}

/// Opens the relationship's connection as the primary (§6.1): TCP to `partner`, then, in
/// secure mode, STARTTLS with transaction-id `xid` and the TLS handshake. `timeout` bounds
/// the TCP connect and the wait for the REPLY (the TLS handshake has its own,
/// [`TlsConfig::handshake_timeout`]).
pub async fn connect_as_primary(
    partner: SocketAddr,
    security: &Security6,
    xid: u32,
    timeout: Duration,
) -> Result<Connection6, StartError> {
    let tcp = tokio::time::timeout(timeout, TcpStream::connect(partner))
        .await
        .map_err(|_| StartError::Timeout)??;
    start_as_primary(tcp, security, xid, timeout).await
}

/// [`connect_as_primary`] on a TCP connection already open (the peer's, from its bind
/// address).
pub(crate) async fn start_as_primary(
    tcp: TcpStream,
    security: &Security6,
    xid: u32,
    timeout: Duration,
) -> Result<Connection6, StartError> {
    tcp.set_nodelay(true)?;
    match security {
        Security6::Insecure => {
            let _ = (xid, timeout); // no STARTTLS
            Ok(Connection6::new(Stream::Plain(tcp)))
        }
        #[cfg(feature = "tls")]
        Security6::Secure(tls) => {
            let mut tcp = tcp;
            let mut buf = [0u8; 8];
            let n = OtherMessage::start_tls(xid)
                .emit(&mut buf)
                .map_err(|_| StartError::Io(io::ErrorKind::InvalidInput.into()))?;
            tcp.write_all(buf.get(..n).unwrap_or_default()).await?;
            let reply = tokio::time::timeout(timeout, read_plain(&mut tcp))
                .await
                .map_err(|_| StartError::Timeout)??;
            match Repr::parse(&reply).map_err(StartError::Malformed)? {
                Repr::Other(r) if r.msg_type == MessageType::Reply && r.xid == xid => {
                    match r.status_code().map(|s| s.status) {
                        None | Some(Status::Success) => {}
                        Some(status) => return Err(StartError::TlsRefusedByPartner { status }),
                    }
                }
                other => {
                    return Err(StartError::Unexpected {
                        msg_type: u8::from(other.message_type()),
                    });
                }
            }
            let tls = tls.connect(tcp).await?;
            Ok(Connection6::new(Stream::Tls(Box::new(tls))))
        }
    }
}

/// Takes a connection accepted on the secondary's listener (§6.1): dropped unread unless it
/// comes from `partner`; in secure mode the first message must be STARTTLS, answered with a
/// REPLY, then the TLS handshake; in insecure mode a STARTTLS is refused (REPLY with
/// TLSConnectionRefused) and the connection closed, and any other first message is kept for
/// [`Connection6::next_message`]. `timeout` bounds the wait for the first message.
pub async fn accept_as_secondary(
    mut tcp: TcpStream,
    partner: IpAddr,
    security: &Security6,
    timeout: Duration,
) -> Result<Connection6, StartError> {
    let from = tcp.peer_addr()?.ip();
    if from != partner {
        return Err(StartError::Stranger { from });
    }
    tcp.set_nodelay(true)?;
    let first = tokio::time::timeout(timeout, read_plain(&mut tcp))
        .await
        .map_err(|_| StartError::Timeout)??;
    let start_tls = match Repr::parse(&first).map_err(StartError::Malformed)? {
        Repr::Other(m) if m.msg_type == MessageType::StartTls => Some(m.xid),
        _ => None,
    };
    match (security, start_tls) {
        (Security6::Insecure, None) => {
            let mut c = Connection6::new(Stream::Plain(tcp));
            c.inbuf = first;
            Ok(c)
        }
        (Security6::Insecure, Some(xid)) => {
            let mut buf = [0u8; 16];
            if let Ok(n) = OtherMessage::emit_start_tls_reply(xid, true, &mut buf) {
                tcp.write_all(buf.get(..n).unwrap_or_default()).await?;
            }
            let _ = tcp.shutdown().await;
            Err(StartError::TlsNotOffered)
        }
        #[cfg(feature = "tls")]
        (Security6::Secure(_), None) => Err(StartError::Unexpected {
            msg_type: first.get(2).copied().unwrap_or(0),
        }),
        #[cfg(feature = "tls")]
        (Security6::Secure(tls), Some(xid)) => {
            let mut buf = [0u8; 16];
            let n = OtherMessage::emit_start_tls_reply(xid, false, &mut buf)
                .map_err(|_| StartError::Io(io::ErrorKind::InvalidInput.into()))?;
            tcp.write_all(buf.get(..n).unwrap_or_default()).await?;
            let tls = tls.accept(tcp).await?;
            Ok(Connection6::new(Stream::Tls(Box::new(tls))))
        }
    }
}

/// Reads one whole message from a plain stream without reading past it: before TLS, any byte
/// after it belongs to the TLS handshake (or is a protocol error). Size checked before the
/// body is read.
async fn read_plain(tcp: &mut TcpStream) -> Result<Vec<u8>, StartError> {
    let mut size = [0u8; 2];
    tcp.read_exact(&mut size).await?;
    let total = match v6::framer::frame_status(&size).map_err(StartError::Malformed)? {
        FrameStatus::Incomplete { needed } => size.len() + needed,
        FrameStatus::Complete(n) => n,
    };
    let mut msg = vec![0u8; total];
    if let Some((head, body)) = msg.split_first_chunk_mut::<2>() {
        *head = size;
        tcp.read_exact(body).await?;
    }
    Ok(msg)
}

/// An established failover connection: messages in and out, framed (§5.1), over TLS or plain
/// TCP.
pub struct Connection6 {
    stream: Stream,
    /// Bytes read and not yet returned as a message.
    inbuf: Vec<u8>,
}

impl fmt::Debug for Connection6 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection6")
            .field("tls", &self.is_tls())
            .field("buffered", &self.inbuf.len())
            .finish_non_exhaustive()
    }
}

impl Connection6 {
    fn new(stream: Stream) -> Self {
        Connection6 {
            stream,
            inbuf: Vec::new(),
        }
    }

    /// Whether the connection runs TLS.
    pub fn is_tls(&self) -> bool {
        !matches!(self.stream, Stream::Plain(_))
    }

    /// The partner's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.stream.peer_addr()
    }

    /// Writes one encoded message (with its size field, as the codec's `emit` writes it).
    pub async fn write_message(&mut self, message: &[u8]) -> io::Result<()> {
        self.stream.write_all(message).await
    }

    /// Encodes `repr` and writes it.
    pub async fn send(&mut self, repr: &Repr<'_>) -> io::Result<()> {
        let mut buf = vec![0u8; repr.buffer_len()];
        let n = repr
            .emit(&mut buf)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        self.write_message(buf.get(..n).unwrap_or_default()).await
    }

    /// Reads the next whole message (with its size field) into `out`, replacing what `out`
    /// held. `Ok(false)`: the partner closed the connection between two messages. A size below
    /// a DHCPv6 header is an error, after which the stream cannot be trusted: close it.
    pub async fn next_message(&mut self, out: &mut Vec<u8>) -> Result<bool, StartError> {
        std::future::poll_fn(|cx| self.poll_message(cx, out)).await
    }

    /// [`Connection6::next_message`] as a poll, for a task that polls reads and writes
    /// together. Cancel-safe: bytes read stay buffered until their message is whole.
    pub(crate) fn poll_message(
        &mut self,
        cx: &mut Context<'_>,
        out: &mut Vec<u8>,
    ) -> Poll<Result<bool, StartError>> {
        let mut rbuf = [0u8; 4096];
        loop {
            match v6::framer::frame_status(&self.inbuf).map_err(StartError::Malformed)? {
                FrameStatus::Complete(n) => {
                    out.clear();
                    out.extend(self.inbuf.drain(..n));
                    return Poll::Ready(Ok(true));
                }
                FrameStatus::Incomplete { .. } => {
                    let n = match self.stream.poll_read(cx, &mut rbuf) {
                        Poll::Ready(r) => r?,
                        Poll::Pending => return Poll::Pending,
                    };
                    if n == 0 {
                        return Poll::Ready(if self.inbuf.is_empty() {
                            Ok(false)
                        } else {
                            Err(StartError::Closed)
                        });
                    }
                    self.inbuf
                        .extend_from_slice(rbuf.get(..n).unwrap_or_default());
                }
            }
        }
    }

    /// The stream under the framing (the peer task writes through an outbox).
    pub(crate) fn stream_mut(&mut self) -> &mut Stream {
        &mut self.stream
    }

    /// Closes our side (with TLS, after its close_notify).
    pub async fn shutdown(&mut self) -> io::Result<()> {
        self.stream.shutdown().await
    }
}
