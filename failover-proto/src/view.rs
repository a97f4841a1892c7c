//! The view over one framed message that both protocols share, generic over where the header
//! puts its fields and what length it announces: [`crate::Message`] is the draft-12 view
//! ([`Draft12`](crate::header::Draft12)), [`crate::v6::Message`] the RFC 8156 one
//! ([`Rfc8156`](crate::v6::header::Rfc8156)).
//!
//! The rules every view keeps live here: no getter ever panics, checked or not (on a short
//! buffer they read zeros, setters do nothing); the message is the first `frame_len` bytes of
//! the buffer; its options run from the layout's options start to its end.

use core::fmt;
use core::marker::PhantomData;
use core::ops::Range;

use crate::error::DecodeError;
use crate::option::Options;

/// Where a protocol's header puts its fields and how its messages are delimited. Implemented
/// by [`Draft12`](crate::header::Draft12) and [`Rfc8156`](crate::v6::header::Rfc8156) only.
pub trait Layout: sealed::Sealed + Sized {
    /// The protocol's message type.
    type MsgType: From<u8> + Into<u8>;
    /// Where the msg-type byte is.
    const MSG_TYPE: usize;

    /// Checks the receive rules of the header: after success, the buffer holds the whole
    /// message and every offset the header gives is within it.
    fn check_len<T: AsRef<[u8]>>(m: &View<T, Self>) -> Result<(), DecodeError>;

    /// Bytes the message takes in the buffer, as the header announces them.
    fn frame_len<T: AsRef<[u8]>>(m: &View<T, Self>) -> usize;

    /// Where the options start.
    fn options_start<T: AsRef<[u8]>>(m: &View<T, Self>) -> usize;
}

pub(crate) mod sealed {
    /// Only this crate's layouts.
    pub trait Sealed {}
}

/// A view over the bytes of one framed message, laid out as `L` says; see the aliases
/// [`crate::Message`] and [`crate::v6::Message`].
///
/// After [`View::new_checked`] (or a successful [`View::check_len`]) the buffer holds the whole
/// message. No getter ever panics, checked or not: on a short buffer they read zeros.
pub struct View<T: AsRef<[u8]>, L: Layout> {
    buffer: T,
    layout: PhantomData<L>,
}

impl<T: AsRef<[u8]>, L: Layout> View<T, L> {
    /// Wraps a buffer without checking it.
    pub const fn new_unchecked(buffer: T) -> Self {
        View {
            buffer,
            layout: PhantomData,
        }
    }

    /// Wraps a buffer and checks it with [`View::check_len`].
    pub fn new_checked(buffer: T) -> Result<Self, DecodeError> {
        let m = Self::new_unchecked(buffer);
        m.check_len()?;
        Ok(m)
    }

    /// Checks the header's receive rules ([`Layout::check_len`]: draft-12's
    /// [`Draft12`](crate::header::Draft12), RFC 8156's [`Rfc8156`](crate::v6::header::Rfc8156)).
    pub fn check_len(&self) -> Result<(), DecodeError> {
        L::check_len(self)
    }

    /// The inner buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The bytes at `range`, or zeros when the buffer is shorter (ranges are at most 4 long).
    pub(crate) fn bytes(&self, range: Range<usize>) -> &[u8] {
        self.buffer.as_ref().get(range).unwrap_or(&[0; 4])
    }

    /// The byte at `at`, or 0 when the buffer is shorter.
    pub(crate) fn byte(&self, at: usize) -> u8 {
        self.buffer.as_ref().get(at).copied().unwrap_or(0)
    }

    /// The whole buffer.
    pub(crate) fn buffer(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// msg-type.
    pub fn msg_type(&self) -> L::MsgType {
        L::MsgType::from(self.byte(L::MSG_TYPE))
    }

    /// Where the options start ([`Layout::options_start`]).
    pub fn options_start(&self) -> usize {
        L::options_start(self)
    }

    /// The whole message: the first [`Layout::frame_len`] bytes of the buffer.
    pub fn as_bytes(&self) -> &[u8] {
        let buf = self.buffer.as_ref();
        buf.get(..L::frame_len(self)).unwrap_or(buf)
    }

    /// The option bytes: from the options start to the end of the message.
    pub fn payload(&self) -> &[u8] {
        self.as_bytes().get(self.options_start()..).unwrap_or(&[])
    }

    /// A lazy iterator over the (top-level) options; offsets are from the start of the
    /// message.
    pub fn options(&self) -> Options<'_> {
        Options::new(self.payload(), self.options_start())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>, L: Layout> View<T, L> {
    /// The bytes at `range`, if the buffer holds them.
    pub(crate) fn bytes_mut(&mut self, range: Range<usize>) -> Option<&mut [u8]> {
        self.buffer.as_mut().get_mut(range)
    }

    /// The byte at `at`, if the buffer holds it.
    pub(crate) fn byte_mut(&mut self, at: usize) -> Option<&mut u8> {
        self.buffer.as_mut().get_mut(at)
    }

    /// Sets msg-type.
    pub fn set_msg_type(&mut self, value: L::MsgType) {
        if let Some(b) = self.byte_mut(L::MSG_TYPE) {
            *b = value.into();
        }
    }
}

// By hand rather than derived: no bound on the layout, and `Message { buffer }` in Debug
// output, as each protocol's view printed before it was generic.
impl<T: AsRef<[u8]> + fmt::Debug, L: Layout> fmt::Debug for View<T, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("buffer", &self.buffer)
            .finish()
    }
}

impl<T: AsRef<[u8]> + Clone, L: Layout> Clone for View<T, L> {
    fn clone(&self) -> Self {
        Self::new_unchecked(self.buffer.clone())
    }
}

impl<T: AsRef<[u8]> + Copy, L: Layout> Copy for View<T, L> {}

impl<T: AsRef<[u8]> + PartialEq, L: Layout> PartialEq for View<T, L> {
    fn eq(&self, other: &Self) -> bool {
        self.buffer == other.buffer
    }
}

impl<T: AsRef<[u8]> + Eq, L: Layout> Eq for View<T, L> {}
