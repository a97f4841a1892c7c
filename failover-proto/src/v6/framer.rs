//! Framing RFC 8156 messages out of a TCP byte stream (§5.1, RFC 5460 §5.1).
//!
//! Each message follows a 2-byte message-size that counts the bytes after it. The size is
//! checked as soon as its two bytes arrive: below 4 (a DHCPv6 header) the stream cannot be
//! trusted and the connection must be closed; above the framer's capacity the message cannot
//! be held. The assembly itself is draft-12's [`crate::framer`], with RFC 8156's length rule.

use crate::error::DecodeError;
use crate::framer::{Assembler, FrameStatus, Frames, Rule, status};

use super::header::{MAX_FRAME_LEN, MIN_SIZE};

/// RFC 8156's rule, for a receiver holding up to `max_total` bytes per message.
const fn rule(max_total: usize) -> Rule {
    Rule {
        counts_itself: false,
        min_field: MIN_SIZE,
        max_total,
    }
}

/// Looks at the start of `buf` and tells whether a whole message is there.
///
/// ```
/// use failover_proto::framer::FrameStatus;
/// use failover_proto::v6::framer::frame_status;
/// let contact = [0x00, 0x08, 35, 0, 0, 7, 0x2d, 0x24, 0xbd, 0x00];
/// assert_eq!(frame_status(&contact[..1]), Ok(FrameStatus::Incomplete { needed: 1 }));
/// assert_eq!(frame_status(&contact[..4]), Ok(FrameStatus::Incomplete { needed: 6 }));
/// assert_eq!(frame_status(&contact), Ok(FrameStatus::Complete(10)));
/// assert!(frame_status(&[0x00, 0x03]).is_err()); // shorter than a DHCPv6 header
/// ```
pub fn frame_status(buf: &[u8]) -> Result<FrameStatus, DecodeError> {
    status(rule(MAX_FRAME_LEN), buf)
}

/// The whole messages at the start of `buf`, without copying (see [`Frames`]).
///
/// ```
/// use failover_proto::v6::framer::frames;
/// let contact = [0x00, 0x08, 35, 0, 0, 7, 0x2d, 0x24, 0xbd, 0x00];
/// let mut two = contact.to_vec();
/// two.extend_from_slice(&contact[..3]);
/// let mut it = frames(&two);
/// assert_eq!(it.next(), Some(Ok(&contact[..])));
/// assert_eq!(it.next(), None);
/// assert_eq!(it.remainder(), &contact[..3]);
/// ```
pub const fn frames(buf: &[u8]) -> Frames<'_> {
    Frames::with_rule(buf, rule(MAX_FRAME_LEN))
}

/// A stream framer with an `N`-byte buffer for messages split across reads (by default
/// 65,537 bytes: the largest message with its size field).
///
/// Messages that arrive whole in one read are returned as slices of that read (no copy);
/// only a message split across reads is assembled in the buffer. A message longer than `N`
/// is an error ([`crate::DecodeErrorKind::FrameTooLarge`]), so a small device can bound its
/// memory, e.g. `Framer::<4096>::with_capacity()`.
///
/// ```
/// use failover_proto::v6::Framer;
/// let contact = [0x00, 0x08, 35, 0, 0, 7, 0x2d, 0x24, 0xbd, 0x00];
/// let mut framer = Framer::<512>::with_capacity();
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
#[derive(Clone)]
pub struct Framer<const N: usize = MAX_FRAME_LEN> {
    core: Assembler<N>,
}

impl Default for Framer {
    fn default() -> Self {
        Self::new()
    }
}

impl Framer {
    /// An empty framer that holds any message (65,537 bytes: box it on small stacks).
    pub const fn new() -> Self {
        Self::with_capacity()
    }
}

impl<const N: usize> Framer<N> {
    /// An empty framer holding messages of up to `N` bytes (with the size field).
    pub const fn with_capacity() -> Self {
        Framer {
            core: Assembler::new(rule(MAX_FRAME_LEN)),
        }
    }

    /// Bytes of an incomplete message held from earlier reads.
    pub const fn buffered(&self) -> usize {
        self.core.buffered()
    }

    /// Stream offset of the start of the message being assembled.
    pub const fn stream_offset(&self) -> u64 {
        self.core.stream_offset
    }

    /// Forgets everything, for a new connection.
    pub fn reset(&mut self) {
        self.core.reset();
    }

    /// Takes bytes from `input` (advancing it) and returns the next whole message (with its
    /// size field), or `None` when `input` is used up without completing one (its bytes are
    /// kept). After an error every later call returns the same error until
    /// [`Framer::reset`].
    pub fn next_message<'r, 'i: 'r>(
        &'r mut self,
        input: &mut &'i [u8],
    ) -> Result<Option<&'r [u8]>, DecodeError> {
        self.core.next_message(input)
    }
}

impl<const N: usize> core::fmt::Debug for Framer<N> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("v6::Framer")
            .field("capacity", &N)
            .field("buffered", &self.buffered())
            .field("stream_offset", &self.stream_offset())
            .field("failed", &self.core.failed)
            .finish()
    }
}

#[cfg(feature = "defmt")]
impl<const N: usize> defmt::Format for Framer<N> {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(
            f,
            "v6::Framer {{ capacity: {}, buffered: {}, stream_offset: {}, failed: {} }}",
            N,
            self.buffered(),
            self.stream_offset(),
            self.core.failed
        );
    }
}
