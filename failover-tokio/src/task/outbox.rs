//! What is on its way to the partner: the engine's messages, gathered, until the socket takes
//! them. The task never waits for the socket: it writes what the socket takes now and goes on
//! serving its handle, its timers and its reads; the rest is written as the socket drains
//! ([`super::connection::Connection::next`] polls it beside the read). A partner that stops
//! reading fills this buffer, up to [`WRITE_BATCH`] bytes; the engine keeps the rest queued
//! (its own bounds), and the connection is dropped once the socket took nothing for the write
//! timeout. The DHCPv6 task ([`crate::v6`]) writes through one too.

use std::io;
use std::task::{Context, Poll, Waker};

use super::stream::Stream;

/// Most bytes waiting for the socket before the engine is asked for more.
pub(crate) const WRITE_BATCH: usize = 64 * 1024;

pub(crate) struct Outbox {
    buf: Vec<u8>,
    /// How much of `buf` the socket took already.
    pos: usize,
    /// Bytes were written since the last flush (TLS keeps records back until flushed).
    flush: bool,
    /// While bytes wait: when the socket last took some (or they started waiting).
    since: Option<tokio::time::Instant>,
}

impl Outbox {
    pub(crate) fn new() -> Self {
        Outbox {
            // Grown on first use: an idle relationship of many keeps none of it.
            buf: Vec::new(),
            pos: 0,
            flush: false,
            since: None,
        }
    }

    /// Nothing waits to be written or flushed.
    pub(crate) fn is_empty(&self) -> bool {
        self.pos == self.buf.len() && !self.flush
    }

    /// Whether the engine may be asked for more.
    pub(crate) fn has_room(&self) -> bool {
        self.buf.len() - self.pos < WRITE_BATCH
    }

    /// Queues one message.
    pub(crate) fn push(&mut self, msg: &[u8]) {
        if self.is_empty() {
            self.since = Some(tokio::time::Instant::now());
        }
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(msg);
        self.flush = true;
    }

    /// Forgets what waits (the connection is gone).
    pub(crate) fn clear(&mut self) {
        self.buf.clear();
        self.pos = 0;
        self.flush = false;
        self.since = None;
    }

    /// When the connection is to be dropped if the socket takes nothing more meanwhile.
    pub(crate) fn stall_deadline(
        &self,
        write_timeout: std::time::Duration,
    ) -> Option<tokio::time::Instant> {
        self.since
            .filter(|_| !self.is_empty())
            .map(|t| t + write_timeout)
    }

    /// Writes what waits, as far as the socket takes it; ready once all is written and
    /// flushed (or on an error).
    pub(crate) fn poll_write(
        &mut self,
        stream: &mut Stream,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        while let Some(rest) = self.buf.get(self.pos..).filter(|r| !r.is_empty()) {
            match stream.poll_write(cx, rest) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => {
                    self.pos += n;
                    self.since = Some(tokio::time::Instant::now());
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        if self.flush {
            match stream.poll_flush(cx) {
                Poll::Ready(Ok(())) => self.flush = false,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        self.clear();
        Poll::Ready(Ok(()))
    }

    /// Writes what the socket takes now, without waiting: `Some(Err)` if the write failed.
    pub(crate) fn write_now(&mut self, stream: &mut Stream) -> Option<io::Error> {
        // A pending poll leaves the socket registered with a waker that does nothing; the
        // task's next select polls it again with its own.
        match self.poll_write(stream, &mut Context::from_waker(Waker::noop())) {
            Poll::Ready(Err(e)) => Some(e),
            _ => None,
        }
    }
}
