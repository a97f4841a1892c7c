//! The partner's connection as the task reads and writes it: a TCP stream, or the TLS session
//! over one.

use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longest we try to say close_notify to a partner.
#[cfg(feature = "tls")]
const CLOSE_NOTIFY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

pub(super) enum Stream {
    Plain(TcpStream),
    #[cfg(feature = "tls")]
    Tls(Box<tokio_rustls::TlsStream<TcpStream>>),
}

impl Stream {
    pub(super) fn peer_addr(&self) -> io::Result<SocketAddr> {
        match self {
            Stream::Plain(s) => s.peer_addr(),
            #[cfg(feature = "tls")]
            Stream::Tls(s) => s.get_ref().0.peer_addr(),
        }
    }

    /// Reads what comes (cancel-safe: tokio's read and tokio-rustls' are).
    pub(super) async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf).await,
            #[cfg(feature = "tls")]
            Stream::Tls(s) => s.read(buf).await,
        }
    }

    /// Reads what is there without waiting (`WouldBlock` if nothing is).
    pub(super) fn try_read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.try_read(buf),
            #[cfg(feature = "tls")]
            Stream::Tls(s) => {
                // TLS has no try_read: one poll with a waker that does nothing. A pending poll
                // leaves the socket registered with it, which the next real read replaces.
                use std::pin::Pin;
                use std::task::{Context, Poll, Waker};
                use tokio::io::{AsyncRead, ReadBuf};
                let mut cx = Context::from_waker(Waker::noop());
                let mut rb = ReadBuf::new(buf);
                match Pin::new(&mut **s).poll_read(&mut cx, &mut rb) {
                    Poll::Ready(Ok(())) => Ok(rb.filled().len()),
                    Poll::Ready(Err(e)) => Err(e),
                    Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
                }
            }
        }
    }

    /// Writes all of `buf` to the socket (through the TLS session's records, flushed).
    pub(super) async fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.write_all(buf).await,
            #[cfg(feature = "tls")]
            Stream::Tls(s) => {
                s.write_all(buf).await?;
                // tokio-rustls may keep records back until flushed.
                s.flush().await
            }
        }
    }

    /// Closes our side (with TLS, after a close_notify).
    pub(super) async fn shutdown(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.shutdown().await,
            // The close_notify and any records still queued are writes: to a partner that
            // stopped reading (why a connection is often dropped) they would wait forever.
            #[cfg(feature = "tls")]
            Stream::Tls(s) => tokio::time::timeout(CLOSE_NOTIFY_TIMEOUT, s.shutdown())
                .await
                .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into())),
        }
    }
}
