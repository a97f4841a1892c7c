//! The 12-byte message header (§6.1) and a checked view over a whole message: the generic
//! [`View`] with the draft-12 layout, [`Draft12`].

use byteorder::{BigEndian, ByteOrder};

use crate::error::{DecodeError, DecodeErrorKind};
use crate::value::code_enum;
use crate::view::{Layout, View};

/// Byte positions of the header fields, in one place.
mod field {
    use core::ops::Range;
    pub(super) const LENGTH: Range<usize> = 0..2;
    pub(super) const MSG_TYPE: usize = 2;
    pub(super) const PAYLOAD_OFFSET: usize = 3;
    pub(super) const TIME: Range<usize> = 4..8;
    pub(super) const XID: Range<usize> = 8..12;
}

/// Size of the fixed header; also the payload-offset we always send.
pub const HEADER_LEN: usize = 12;
/// Smallest valid message (§6.1).
pub const MIN_MESSAGE_LEN: usize = 12;
/// Largest valid message, including the length field (§6.1).
pub const MAX_MESSAGE_LEN: usize = 2048;
/// The IANA port of the failover protocol (§8.2).
pub const FAILOVER_PORT: u16 = 647;

code_enum! {
    /// Message type (§6.1). Wireshark's dissector swaps the names of 7 and 9; these are the
    /// draft's and ISC dhcpd's.
    pub enum MessageType: u8 {
        /// 1, POOLREQ (§7.6).
        PoolReq = 1 => "POOLREQ",
        /// 2, POOLRESP (§7.7).
        PoolResp = 2 => "POOLRESP",
        /// 3, BNDUPD (§7.1).
        BndUpd = 3 => "BNDUPD",
        /// 4, BNDACK (§7.2).
        BndAck = 4 => "BNDACK",
        /// 5, CONNECT (§7.8).
        Connect = 5 => "CONNECT",
        /// 6, CONNECTACK (§7.9).
        ConnectAck = 6 => "CONNECTACK",
        /// 7, UPDREQALL (§7.4).
        UpdReqAll = 7 => "UPDREQALL",
        /// 8, UPDDONE (§7.5).
        UpdDone = 8 => "UPDDONE",
        /// 9, UPDREQ (§7.3).
        UpdReq = 9 => "UPDREQ",
        /// 10, STATE (§7.10).
        State = 10 => "STATE",
        /// 11, CONTACT (§7.11).
        Contact = 11 => "CONTACT",
        /// 12, DISCONNECT (§7.12).
        Disconnect = 12 => "DISCONNECT",
    }
    /// Any other value.
    Unknown => "UNKNOWN", displayed as "UNKNOWN({})";
    /// The draft's name (`"BNDUPD"`).
    fn name;
}

impl MessageType {
    /// Whether a receiver may ignore this type when it does not know it: 128..=255 are optional,
    /// everything below is mandatory to understand (§6.1).
    pub const fn is_optional(&self) -> bool {
        matches!(self, MessageType::Unknown(t) if *t >= 128)
    }
}

/// A view over the bytes of one failover message.
///
/// After [`Message::new_checked`] (or a successful [`Message::check_len`]) the length field is
/// within 12..=2048, the buffer holds that many bytes and the payload offset is valid. No getter
/// ever panics, checked or not: on a short buffer they read zeros.
pub type Message<T> = View<T, Draft12>;

/// The draft-12 header layout (§6.1) of a [`Message`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Draft12;

impl crate::view::sealed::Sealed for Draft12 {}

impl Layout for Draft12 {
    type MsgType = MessageType;
    const MSG_TYPE: usize = field::MSG_TYPE;

    /// Checks the header's receive rules (§6.1, ISC): the buffer holds at least the 12-byte
    /// header and the whole message, the length is within 12..=2048, and the payload offset is
    /// 8 (read as 12, a draft-text artefact) or within `12..=length`.
    fn check_len<T: AsRef<[u8]>>(m: &Message<T>) -> Result<(), DecodeError> {
        let buf = m.buffer();
        if buf.len() < 2 {
            return Err(DecodeError::new(
                DecodeErrorKind::Truncated { needed: 2 },
                buf.len(),
            ));
        }
        let len = m.length();
        if !(MIN_MESSAGE_LEN..=MAX_MESSAGE_LEN).contains(&usize::from(len)) {
            return Err(DecodeError::new(DecodeErrorKind::BadLength(len), 0));
        }
        if buf.len() < usize::from(len) {
            return Err(DecodeError::new(
                DecodeErrorKind::Truncated {
                    needed: u32::from(len),
                },
                buf.len(),
            ));
        }
        let poff = m.payload_offset();
        if poff != 8 && !(HEADER_LEN..=usize::from(len)).contains(&usize::from(poff)) {
            return Err(DecodeError::new(
                DecodeErrorKind::BadPayloadOffset(poff),
                field::PAYLOAD_OFFSET,
            ));
        }
        Ok(())
    }

    /// message-length: total bytes including the length field.
    fn frame_len<T: AsRef<[u8]>>(m: &Message<T>) -> usize {
        usize::from(m.length())
    }

    /// The payload offset, with 8 read as 12 (§6.1 says 8, the header is 12 bytes; Wireshark
    /// and ISC read 12).
    fn options_start<T: AsRef<[u8]>>(m: &Message<T>) -> usize {
        match m.payload_offset() {
            8 => HEADER_LEN,
            p => usize::from(p),
        }
    }
}

impl<T: AsRef<[u8]>> Message<T> {
    /// message-length: total bytes including the length field.
    pub fn length(&self) -> u16 {
        BigEndian::read_u16(self.bytes(field::LENGTH))
    }

    /// payload-offset as on the wire.
    pub fn payload_offset(&self) -> u8 {
        self.byte(field::PAYLOAD_OFFSET)
    }

    /// time: the sender's clock at transmission, seconds since 1970 (§6.1).
    pub fn time(&self) -> u32 {
        BigEndian::read_u32(self.bytes(field::TIME))
    }

    /// xid: transaction id (§6.1).
    pub fn xid(&self) -> u32 {
        BigEndian::read_u32(self.bytes(field::XID))
    }

    /// Extra header bytes between the fixed header and the options (skipped by receivers).
    pub fn extra_header(&self) -> &[u8] {
        self.as_bytes()
            .get(HEADER_LEN..self.options_start())
            .unwrap_or(&[])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Message<T> {
    /// Sets message-length. Does nothing if the buffer is shorter than the header.
    pub fn set_length(&mut self, value: u16) {
        if let Some(b) = self.bytes_mut(field::LENGTH) {
            BigEndian::write_u16(b, value);
        }
    }

    /// Sets payload-offset.
    pub fn set_payload_offset(&mut self, value: u8) {
        if let Some(b) = self.byte_mut(field::PAYLOAD_OFFSET) {
            *b = value;
        }
    }

    /// Sets time.
    pub fn set_time(&mut self, value: u32) {
        if let Some(b) = self.bytes_mut(field::TIME) {
            BigEndian::write_u32(b, value);
        }
    }

    /// Sets xid.
    pub fn set_xid(&mut self, value: u32) {
        if let Some(b) = self.bytes_mut(field::XID) {
            BigEndian::write_u32(b, value);
        }
    }
}

#[cfg(feature = "defmt")]
impl<T: AsRef<[u8]>> defmt::Format for Message<T> {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(
            f,
            "Message {{ length: {}, msg_type: {}, payload_offset: {}, time: {}, xid: {} }}",
            self.length(),
            self.msg_type(),
            self.payload_offset(),
            self.time(),
            self.xid()
        );
    }
}
