//! Framing failover messages out of a TCP byte stream (§6.1).
//!
//! Each message starts with its 2-byte total length. The length is checked (12..=2048) as soon
//! as its two bytes arrive, before any of the body is waited for; a bad one means the stream
//! can no longer be trusted and the connection must be closed.

use crate::error::{DecodeError, DecodeErrorKind};
use crate::header::{MAX_MESSAGE_LEN, MIN_MESSAGE_LEN};

/// What the start of a buffer holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum FrameStatus {
    /// A whole message of this many bytes is at the start of the buffer: consume them.
    Complete(usize),
    /// The message is not complete: at least this many more bytes are needed.
    Incomplete {
        /// Bytes still missing (2 minus what is there, while the length is unknown).
        needed: usize,
    },
}

/// Looks at the start of `buf` and tells whether a whole message is there.
///
/// ```
/// use failover_proto::framer::{frame_status, FrameStatus};
/// let contact = [0x00, 0x0c, 0x0b, 0x0c, 0, 0, 0, 0, 0, 0, 0, 1];
/// assert_eq!(frame_status(&contact[..1]), Ok(FrameStatus::Incomplete { needed: 1 }));
/// assert_eq!(frame_status(&contact[..5]), Ok(FrameStatus::Incomplete { needed: 7 }));
/// assert_eq!(frame_status(&contact), Ok(FrameStatus::Complete(12)));
/// assert!(frame_status(&[0x08, 0x01]).is_err()); // 2049 bytes: too long
/// ```
pub fn frame_status(buf: &[u8]) -> Result<FrameStatus, DecodeError> {
    status(V4, buf)
}

/// How a protocol's 2-byte length field delimits its messages: the one rule the framers share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rule {
    /// draft-12 (§6.1): the field counts the whole message, itself included (12..=2048);
    /// RFC 8156 (§5.1, RFC 5460 §5.1): it counts the bytes after it (8..=65535).
    pub(crate) counts_itself: bool,
    /// Smallest valid field value.
    pub(crate) min_field: u16,
    /// Largest message, with the length field, that the receiver holds.
    pub(crate) max_total: usize,
}

/// The draft-12 rule.
pub(crate) const V4: Rule = Rule {
    counts_itself: true,
    min_field: MIN_MESSAGE_LEN as u16,
    max_total: MAX_MESSAGE_LEN,
};

/// Looks at the start of `buf` with `rule`.
pub(crate) fn status(rule: Rule, buf: &[u8]) -> Result<FrameStatus, DecodeError> {
    let Some(field) = buf.first_chunk::<2>() else {
        return Ok(FrameStatus::Incomplete {
            needed: 2 - buf.len(),
        });
    };
    let field = u16::from_be_bytes(*field);
    let len = if rule.counts_itself {
        usize::from(field)
    } else {
        usize::from(field) + 2
    };
    if field < rule.min_field {
        let kind = if rule.counts_itself {
            DecodeErrorKind::BadLength(field)
        } else {
            DecodeErrorKind::SizeOutOfRange(field)
        };
        return Err(DecodeError::new(kind, 0));
    }
    if len > rule.max_total {
        let kind = if rule.counts_itself {
            DecodeErrorKind::BadLength(field)
        } else {
            DecodeErrorKind::FrameTooLarge {
                len: u32::try_from(len).unwrap_or(u32::MAX),
                capacity: u32::try_from(rule.max_total).unwrap_or(u32::MAX),
            }
        };
        return Err(DecodeError::new(kind, 0));
    }
    Ok(if buf.len() >= len {
        FrameStatus::Complete(len)
    } else {
        FrameStatus::Incomplete {
            needed: len - buf.len(),
        }
    })
}

/// Iterates over the whole messages at the start of a buffer, without copying.
///
/// It stops at the first incomplete message; [`Frames::remainder`] then holds the bytes to keep
/// for the next read. A bad length is yielded as an error and ends the iteration.
///
/// ```
/// use failover_proto::framer::Frames;
/// let two = [0x00, 0x0c, 0x0b, 0x0c, 0, 0, 0, 0, 0, 0, 0, 1,
///            0x00, 0x0c, 0x0b, 0x0c, 0, 0, 0, 0, 0, 0, 0, 2, 0x00];
/// let mut frames = Frames::new(&two);
/// assert_eq!(frames.next().unwrap().unwrap().len(), 12);
/// assert_eq!(frames.next().unwrap().unwrap().len(), 12);
/// assert!(frames.next().is_none());
/// assert_eq!(frames.remainder(), &[0x00]);
/// ```
#[derive(Debug, Clone)]
pub struct Frames<'a> {
    rest: &'a [u8],
    consumed: usize,
    failed: bool,
    rule: Rule,
}

impl<'a> Frames<'a> {
    /// Frames over `buf`.
    pub const fn new(buf: &'a [u8]) -> Self {
        Self::with_rule(buf, V4)
    }

    pub(crate) const fn with_rule(buf: &'a [u8], rule: Rule) -> Self {
        Frames {
            rest: buf,
            consumed: 0,
            failed: false,
            rule,
        }
    }

    /// Bytes of whole messages yielded so far.
    pub const fn consumed(&self) -> usize {
        self.consumed
    }

    /// What is left after the messages yielded so far.
    pub const fn remainder(&self) -> &'a [u8] {
        self.rest
    }
}

impl<'a> Iterator for Frames<'a> {
    type Item = Result<&'a [u8], DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        match status(self.rule, self.rest) {
            Ok(FrameStatus::Complete(len)) => {
                let (msg, rest) = self.rest.split_at_checked(len)?;
                self.rest = rest;
                self.consumed += len;
                Some(Ok(msg))
            }
            Ok(FrameStatus::Incomplete { .. }) => None,
            Err(e) => {
                self.failed = true;
                Some(Err(DecodeError::new(e.kind(), self.consumed)))
            }
        }
    }
}

/// A stream framer with its own 2048-byte buffer, for reads that split messages.
///
/// Messages that arrive whole in one read are returned as slices of that read (no copy); only a
/// message split across reads is assembled in the framer's buffer. Memory is bounded: the
/// framer never holds more than one message.
///
/// ```
/// use failover_proto::framer::Framer;
/// let contact = [0x00, 0x0c, 0x0b, 0x0c, 0, 0, 0, 0, 0, 0, 0, 7];
/// let mut framer = Framer::new();
/// let mut seen = 0;
/// for read in [&contact[..5], &contact[5..]] {
///     let mut input = read;
///     while let Some(msg) = framer.next_message(&mut input)? {
///         assert_eq!(msg, &contact);
///         seen += 1;
///     }
/// }
/// assert_eq!(seen, 1);
/// # Ok::<(), failover_proto::DecodeError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Framer {
    core: Assembler<MAX_MESSAGE_LEN>,
}

impl Default for Framer {
    fn default() -> Self {
        Self::new()
    }
}

impl Framer {
    /// An empty framer.
    pub const fn new() -> Self {
        Framer {
            core: Assembler::new(V4),
        }
    }

    /// Bytes of an incomplete message held from earlier reads.
    pub const fn buffered(&self) -> usize {
        self.core.buffered()
    }

    /// Stream offset of the start of the message being assembled. Once `next_message` has
    /// returned `None` (the input is used up), the bytes fed so far are
    /// `stream_offset() + buffered()`.
    pub const fn stream_offset(&self) -> u64 {
        self.core.stream_offset
    }

    /// Forgets everything, for a new connection.
    pub fn reset(&mut self) {
        self.core.reset();
    }

    /// Takes bytes from `input` (advancing it) and returns the next whole message, or `None`
    /// when `input` is used up without completing one (its bytes are kept).
    ///
    /// After an error the stream is out of sync: every later call returns the same error until
    /// [`Framer::reset`].
    pub fn next_message<'r, 'i: 'r>(
        &'r mut self,
        input: &mut &'i [u8],
    ) -> Result<Option<&'r [u8]>, DecodeError> {
        self.core.next_message(input)
    }
}

impl<const N: usize> core::fmt::Debug for Assembler<N> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Assembler")
            .field("buffered", &self.buffered())
            .field("stream_offset", &self.stream_offset)
            .field("failed", &self.failed)
            .finish()
    }
}

/// The stream assembler both framers share: an `N`-byte buffer and a length [`Rule`].
#[derive(Clone)]
pub(crate) struct Assembler<const N: usize> {
    buf: [u8; N],
    len: usize,
    /// A message assembled in `buf` was handed out; drop it on the next call.
    delivered: bool,
    /// Stream offset of the start of `buf` (for error offsets).
    pub(crate) stream_offset: u64,
    pub(crate) failed: Option<DecodeError>,
    rule: Rule,
}

impl<const N: usize> Assembler<N> {
    /// An empty assembler; `rule.max_total` is capped at `N`.
    pub(crate) const fn new(rule: Rule) -> Self {
        let max_total = if rule.max_total < N {
            rule.max_total
        } else {
            N
        };
        Assembler {
            buf: [0; N],
            len: 0,
            delivered: false,
            stream_offset: 0,
            failed: None,
            rule: Rule { max_total, ..rule },
        }
    }

    pub(crate) const fn buffered(&self) -> usize {
        if self.delivered { 0 } else { self.len }
    }

    pub(crate) fn reset(&mut self) {
        self.len = 0;
        self.delivered = false;
        self.stream_offset = 0;
        self.failed = None;
    }

    pub(crate) fn next_message<'r, 'i: 'r>(
        &'r mut self,
        input: &mut &'i [u8],
    ) -> Result<Option<&'r [u8]>, DecodeError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        if self.delivered {
            self.stream_offset += self.len as u64;
            self.len = 0;
            self.delivered = false;
        }
        if self.len == 0 {
            match status(self.rule, input) {
                Ok(FrameStatus::Complete(n)) => {
                    let (msg, rest) = input.split_at_checked(n).unwrap_or((input, &[]));
                    *input = rest;
                    self.stream_offset += n as u64;
                    return Ok(Some(msg));
                }
                Ok(FrameStatus::Incomplete { .. }) => {}
                Err(e) => return Err(self.fail(e)),
            }
        }
        // Assemble in our buffer: first the length field, then the rest of the message.
        loop {
            let target = match status(self.rule, self.buf.get(..self.len).unwrap_or_default()) {
                Ok(FrameStatus::Complete(n)) => {
                    self.delivered = true;
                    return Ok(self.buf.get(..n));
                }
                Ok(FrameStatus::Incomplete { needed }) => self.len + needed,
                Err(e) => return Err(self.fail(e)),
            };
            if input.is_empty() {
                return Ok(None);
            }
            let take = (target - self.len).min(input.len());
            let (head, rest) = input.split_at_checked(take).unwrap_or((input, &[]));
            let Some(dst) = self.buf.get_mut(self.len..self.len + take) else {
                return Err(self.fail(DecodeError::new(DecodeErrorKind::BadLength(0), 0)));
            };
            dst.copy_from_slice(head);
            self.len += take;
            *input = rest;
        }
    }

    fn fail(&mut self, e: DecodeError) -> DecodeError {
        let e = DecodeError::new(
            e.kind(),
            usize::try_from(self.stream_offset).unwrap_or(usize::MAX),
        );
        self.failed = Some(e);
        e
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for Framer {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(
            f,
            "Framer {{ buffered: {}, stream_offset: {}, failed: {} }}",
            self.buffered(),
            self.stream_offset(),
            self.core.failed
        );
    }
}
