//! The partner's connection as the task reads and writes it: a TCP stream, or the TLS session
//! over one.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
#[cfg(feature = "tls")]
use std::task::Waker;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

/// Longest we try to say close_notify to a partner.
#[cfg(feature = "tls")]
const CLOSE_NOTIFY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

pub(crate) enum Stream {
    Plain(TcpStream),
    #[cfg(feature = "tls")]
    Tls(Box<tokio_rustls::TlsStream<TcpStream>>),
}

impl Stream {
    pub(crate) fn peer_addr(&self) -> io::Result<SocketAddr> {
        match self {
            Stream::Plain(s) => s.peer_addr(),
            #[cfg(feature = "tls")]
            Stream::Tls(s) => s.get_ref().0.peer_addr(),
        }
    }

    /// Reads what comes.
    pub(crate) async fn read_some(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        std::future::poll_fn(|cx| self.poll_read(cx, buf)).await
    }

    /// Writes all of `buf` (through the TLS session's records, flushed).
    pub(crate) async fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.write_all(buf).await,
            #[cfg(feature = "tls")]
            Stream::Tls(s) => {
                s.write_all(buf).await?;
                s.flush().await
            }
        }
    }

    /// Reads what is there without waiting (`WouldBlock` if nothing is).
    pub(crate) fn try_read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.try_read(buf),
            #[cfg(feature = "tls")]
            Stream::Tls(_) => {
                // TLS has no try_read: one poll with a waker that does nothing. A pending poll
                // leaves the socket registered with it, which the next real read replaces.
                match self.poll_read(&mut Context::from_waker(Waker::noop()), buf) {
                    Poll::Ready(r) => r,
                    Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
                }
            }
        }
    }

    /// Reads what comes, as a poll (the task's select polls reads and writes together).
    pub(crate) fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let mut rb = ReadBuf::new(buf);
        let r = match self {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, &mut rb),
            #[cfg(feature = "tls")]
            Stream::Tls(s) => Pin::new(&mut **s).poll_read(cx, &mut rb),
        };
        r.map_ok(|()| rb.filled().len())
    }

    /// Writes as much of `buf` as the socket takes now.
    pub(crate) fn poll_write(
        &mut self,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            #[cfg(feature = "tls")]
            Stream::Tls(s) => Pin::new(&mut **s).poll_write(cx, buf),
        }
    }

    /// Pushes out what the TLS session keeps back (nothing to do on plain TCP).
    pub(crate) fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            #[cfg(feature = "tls")]
            Stream::Tls(s) => Pin::new(&mut **s).poll_flush(cx),
        }
    }

    /// Closes our side (with TLS, after a close_notify).
    pub(crate) async fn shutdown(&mut self) -> io::Result<()> {
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
