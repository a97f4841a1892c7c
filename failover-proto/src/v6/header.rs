//! The RFC 8156 message header (§5.2) behind its 2-byte message-size (§5.1, RFC 5460 §5.1),
//! and a checked view over one framed message.

use byteorder::{BigEndian, ByteOrder};

use crate::error::{DecodeError, DecodeErrorKind};
use crate::value::code_enum;
use crate::view::{Layout, View};

/// Byte positions in a framed message, in one place: the 2-byte message-size, then the DHCPv6
/// message (msg-type, 24-bit transaction-id) and, for the failover types 24..=35, the 4-byte
/// sent-time before the options (§5.2).
pub(crate) mod field {
    use core::ops::Range;
    pub(crate) const SIZE: Range<usize> = 0..2;
    pub(crate) const MSG_TYPE: usize = 2;
    pub(crate) const XID: Range<usize> = 3..6;
    pub(crate) const SENT_TIME: Range<usize> = 6..10;
}

/// Bytes before the options of a failover message: message-size (2), msg-type (1),
/// transaction-id (3), sent-time (4) (§5.1, §5.2).
pub const HEADER_LEN: usize = 10;
/// Bytes before the options of any other DHCPv6 message on the connection (STARTTLS, REPLY:
/// RFC 7653 §6.2.2): message-size, msg-type and transaction-id, no sent-time.
pub const PLAIN_HEADER_LEN: usize = 6;
/// The smallest message-size the framer accepts: a DHCPv6 message without options (4 bytes).
pub const MIN_SIZE: u16 = 4;
/// The smallest message-size of a failover message (types 24..=35): its header without options.
pub const MIN_FAILOVER_SIZE: u16 = 8;
/// The largest message on the stream, with its size field: 2 + 65,535 bytes.
pub const MAX_FRAME_LEN: usize = 2 + u16::MAX as usize;
/// The largest transaction-id (24 bits, §5.4).
pub const MAX_XID: u32 = 0x00ff_ffff;

code_enum! {
    /// DHCPv6 message type (§5.3, §11): the twelve failover types 24..=35, the two RFC 7653
    /// types a failover connection also carries (STARTTLS before CONNECT, REPLY answering it),
    /// and any other value, kept.
    pub enum MessageType: u8 {
        /// 24, BNDUPD (§5.3.1).
        BndUpd = 24 => "BNDUPD",
        /// 25, BNDREPLY (§5.3.2).
        BndReply = 25 => "BNDREPLY",
        /// 26, POOLREQ (§5.3.3).
        PoolReq = 26 => "POOLREQ",
        /// 27, POOLRESP (§5.3.4).
        PoolResp = 27 => "POOLRESP",
        /// 28, UPDREQ (§5.3.5).
        UpdReq = 28 => "UPDREQ",
        /// 29, UPDREQALL (§5.3.6).
        UpdReqAll = 29 => "UPDREQALL",
        /// 30, UPDDONE (§5.3.7).
        UpdDone = 30 => "UPDDONE",
        /// 31, CONNECT (§5.3.8).
        Connect = 31 => "CONNECT",
        /// 32, CONNECTREPLY (§5.3.9).
        ConnectReply = 32 => "CONNECTREPLY",
        /// 33, DISCONNECT (§5.3.10).
        Disconnect = 33 => "DISCONNECT",
        /// 34, STATE (§5.3.11).
        State = 34 => "STATE",
        /// 35, CONTACT (§5.3.12).
        Contact = 35 => "CONTACT",
        /// 7, REPLY (RFC 3315): the answer to STARTTLS (RFC 7653 §8.2, RFC 8156 §6.1).
        Reply = 7 => "REPLY",
        /// 23, STARTTLS (RFC 7653 §6.2.2): the first message on a secure connection (§10).
        StartTls = 23 => "STARTTLS",
    }
    /// Any other value.
    Unknown => "UNKNOWN", displayed as "UNKNOWN({})";
    /// The RFC's name (`"BNDUPD"`).
    fn name;
}

impl MessageType {
    /// Whether the type is one of RFC 8156's 24..=35, whose header carries a sent-time (§5.2).
    /// Every other type is read with the plain DHCPv6 header (msg-type and transaction-id).
    pub fn is_failover(&self) -> bool {
        (24..=35).contains(&u8::from(*self))
    }
}

/// A view over one framed message: the 2-byte message-size and the DHCPv6 message after it.
///
/// After [`Message::new_checked`] (or a successful [`Message::check_len`]) the buffer holds
/// the whole message and, for a failover type, its 10-byte header. No getter ever panics,
/// checked or not: on a short buffer they read zeros.
pub type Message<T> = View<T, Rfc8156>;

/// The RFC 8156 header layout (§5.1, §5.2) of a [`Message`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Rfc8156;

impl crate::view::sealed::Sealed for Rfc8156 {}

impl Layout for Rfc8156 {
    type MsgType = MessageType;
    const MSG_TYPE: usize = field::MSG_TYPE;

    /// Checks that the buffer holds the size field and the whole message it announces, that
    /// the size is at least 4 (a DHCPv6 header; below that the stream cannot be framed), and
    /// that a failover message (24..=35) is at least its 8-byte header (§5.2).
    fn check_len<T: AsRef<[u8]>>(m: &Message<T>) -> Result<(), DecodeError> {
        let buf = m.buffer();
        if buf.len() < field::SIZE.end {
            return Err(DecodeError::new(
                DecodeErrorKind::Truncated {
                    needed: wire_len(field::SIZE.end),
                },
                buf.len(),
            ));
        }
        let size = m.size();
        if size < MIN_SIZE {
            return Err(DecodeError::new(DecodeErrorKind::SizeOutOfRange(size), 0));
        }
        let len = m.frame_len();
        if buf.len() < len {
            return Err(DecodeError::new(
                DecodeErrorKind::Truncated {
                    needed: wire_len(len),
                },
                buf.len(),
            ));
        }
        if m.msg_type().is_failover() && size < MIN_FAILOVER_SIZE {
            return Err(DecodeError::new(
                DecodeErrorKind::Truncated {
                    needed: wire_len(HEADER_LEN),
                },
                len,
            ));
        }
        Ok(())
    }

    /// The size field and `size()` bytes.
    fn frame_len<T: AsRef<[u8]>>(m: &Message<T>) -> usize {
        m.frame_len()
    }

    /// After the sent-time for a failover type, after the transaction-id for any other.
    fn options_start<T: AsRef<[u8]>>(m: &Message<T>) -> usize {
        if m.msg_type().is_failover() {
            HEADER_LEN
        } else {
            PLAIN_HEADER_LEN
        }
    }
}

impl<T: AsRef<[u8]>> Message<T> {
    /// message-size: the bytes after the size field (RFC 5460 §5.1).
    pub fn size(&self) -> u16 {
        BigEndian::read_u16(self.bytes(field::SIZE))
    }

    /// Bytes the message takes on the stream: the size field and `size()` bytes.
    pub fn frame_len(&self) -> usize {
        field::SIZE.end + usize::from(self.size())
    }

    /// transaction-id, 24 bits (§5.4).
    pub fn xid(&self) -> u32 {
        BigEndian::read_u24(self.bytes(field::XID))
    }

    /// sent-time: seconds since 2000-01-01 (§5.2, §3); 0 for a type without one.
    pub fn sent_time(&self) -> u32 {
        if self.msg_type().is_failover() {
            BigEndian::read_u32(self.bytes(field::SENT_TIME))
        } else {
            0
        }
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Message<T> {
    /// Sets message-size. Does nothing if the buffer is too short.
    pub fn set_size(&mut self, value: u16) {
        if let Some(b) = self.bytes_mut(field::SIZE) {
            BigEndian::write_u16(b, value);
        }
    }

    /// Sets the transaction-id (its low 24 bits).
    pub fn set_xid(&mut self, value: u32) {
        if let Some(b) = self.bytes_mut(field::XID) {
            BigEndian::write_u24(b, value & MAX_XID);
        }
    }

    /// Sets sent-time (bytes 6..10; only failover types have it).
    pub fn set_sent_time(&mut self, value: u32) {
        if let Some(b) = self.bytes_mut(field::SENT_TIME) {
            BigEndian::write_u32(b, value);
        }
    }
}

#[cfg(feature = "defmt")]
impl<T: AsRef<[u8]>> defmt::Format for Message<T> {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(
            f,
            "v6::Message {{ size: {}, msg_type: {}, xid: {}, sent_time: {} }}",
            self.size(),
            self.msg_type(),
            self.xid(),
            self.sent_time()
        );
    }
}

/// A length on the stream as the error reports it (a frame is at most 65,537 bytes).
fn wire_len(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}
