//! Typed messages: one struct per message type (§7), borrowing from the bytes they were parsed
//! from, and [`Repr`] over all of them.
//!
//! Every struct has `parse` (from a [`Message`] view), `from_bytes`, `buffer_len` and `emit`.
//! `parse` enforces the shared option rules (exact lengths, no duplicates, message-digest last)
//! and the options the draft makes mandatory for the message, naming the first one missing.
//! `emit` writes the header with payload-offset 12 and the options in the order ISC dhcpd
//! writes them, so that re-encoding a parsed ISC message reproduces its bytes; options the
//! struct does not model travel in `extra` and are written after the typed ones; a
//! message-digest is written last. `emit` into a buffer of `buffer_len()` bytes succeeds for
//! every value `parse` can return.

use core::net::Ipv4Addr;

use crate::error::{DecodeError, DecodeErrorKind, EncodeError};
use crate::header::{HEADER_LEN, MAX_MESSAGE_LEN, Message, MessageType};
use crate::option::{CodeSet, ExtraOptions, OptionCode, OptionWriter, RawOption, scan};
use crate::value::{DigestType, MessageDigest};

/// The body of one message type: how its options are read and written.
trait Body<'a>: Sized {
    const TYPE: MessageType;
    fn header(&self) -> (u32, u32);
    fn parse_payload(
        time: u32,
        xid: u32,
        payload: &'a [u8],
        base: usize,
    ) -> Result<Self, DecodeError>;
    fn payload_len(&self) -> usize;
    fn emit_payload(&self, w: &mut OptionWriter<'_>) -> Result<(), EncodeError>;
}

fn parse_message<'a, B: Body<'a>>(msg: &Message<&'a [u8]>) -> Result<B, DecodeError> {
    msg.check_len()?;
    let found = msg.msg_type();
    if found != B::TYPE {
        return Err(DecodeError::new(
            DecodeErrorKind::WrongMessageType {
                expected: B::TYPE.into(),
                found: found.into(),
            },
            2,
        ));
    }
    let start = msg.options_start();
    let bytes: &'a [u8] = msg.into_inner();
    let payload = bytes
        .get(start..usize::from(msg.length()))
        .unwrap_or_default();
    B::parse_payload(msg.time(), msg.xid(), payload, start)
}

fn emit_message<'a, B: Body<'a>>(body: &B, out: &mut [u8]) -> Result<usize, EncodeError> {
    let len = HEADER_LEN + body.payload_len();
    if len > MAX_MESSAGE_LEN {
        return Err(EncodeError::MessageTooLong { len });
    }
    let (header, rest) = out
        .get_mut(..len)
        .and_then(|o| o.split_first_chunk_mut::<HEADER_LEN>())
        .ok_or(EncodeError::BufferTooSmall { required: len })?;
    let (time, xid) = body.header();
    let mut m = Message::new_unchecked(&mut header[..]);
    m.set_length(len as u16);
    m.set_msg_type(B::TYPE);
    m.set_payload_offset(HEADER_LEN as u8);
    m.set_time(time);
    m.set_xid(xid);
    let mut w = OptionWriter::new(rest);
    body.emit_payload(&mut w)?;
    Ok(HEADER_LEN + w.position())
}

/// Gives a body type the public `parse`, `from_bytes`, `buffer_len` and `emit`.
macro_rules! message_api {
    ($name:ident) => {
        impl<'a> $name<'a> {
            /// Decodes the message in `msg` (checked here), which must be of this type.
            pub fn parse(
                msg: &$crate::header::Message<&'a [u8]>,
            ) -> Result<Self, $crate::error::DecodeError> {
                $crate::repr::parse_message(msg)
            }

            /// Decodes a message from its bytes (starting at the length field).
            pub fn from_bytes(bytes: &'a [u8]) -> Result<Self, $crate::error::DecodeError> {
                $crate::repr::parse_message(&$crate::header::Message::new_unchecked(bytes))
            }

            /// Bytes the encoded message takes.
            pub fn buffer_len(&self) -> usize {
                $crate::header::HEADER_LEN + <Self as $crate::repr::Body<'a>>::payload_len(self)
            }

            /// Encodes the message into the start of `out`; returns its length.
            pub fn emit(&self, out: &mut [u8]) -> Result<usize, $crate::error::EncodeError> {
                $crate::repr::emit_message(self, out)
            }
        }
    };
}

fn be32(data: &[u8]) -> u32 {
    match data.first_chunk::<4>() {
        Some(b) => u32::from_be_bytes(*b),
        None => 0,
    }
}

fn byte(data: &[u8]) -> u8 {
    data.first().copied().unwrap_or(0)
}

fn ipv4(data: &[u8]) -> Ipv4Addr {
    Ipv4Addr::from(be32(data))
}

fn missing(code: OptionCode, base: usize) -> DecodeError {
    DecodeError::new(DecodeErrorKind::MissingOption(code), base)
}

fn require<T>(v: Option<T>, code: OptionCode, base: usize) -> Result<T, DecodeError> {
    v.ok_or_else(|| missing(code, base))
}

fn digest_of<'a>(o: &RawOption<'a>) -> MessageDigest<'a> {
    MessageDigest {
        kind: DigestType::from(byte(o.data)),
        digest: o.data.get(1..).unwrap_or_default(),
    }
}

fn opt_len(data: Option<&[u8]>) -> usize {
    data.map_or(0, |d| 4 + d.len())
}

fn digest_len(d: &Option<MessageDigest<'_>>) -> usize {
    d.as_ref().map_or(0, |d| 5 + d.digest.len())
}

fn put_digest(w: &mut OptionWriter<'_>, d: &Option<MessageDigest<'_>>) -> Result<(), EncodeError> {
    match d {
        Some(d) => w.put2(17, &[d.kind.into()], d.digest),
        None => Ok(()),
    }
}

fn put_opt_u32(w: &mut OptionWriter<'_>, code: u16, v: Option<u32>) -> Result<(), EncodeError> {
    v.map_or(Ok(()), |v| w.put_u32(code, v))
}

fn put_opt_u8(w: &mut OptionWriter<'_>, code: u16, v: Option<u8>) -> Result<(), EncodeError> {
    v.map_or(Ok(()), |v| w.put_u8(code, v))
}

fn put_opt(w: &mut OptionWriter<'_>, code: u16, v: Option<&[u8]>) -> Result<(), EncodeError> {
    v.map_or(Ok(()), |v| w.put(code, v))
}

// One module per message type or family; they use the `Body` trait, `message_api!` and the
// option helpers above (macros must be defined before the modules that use them).
mod bare;
mod binding;
mod connect;
mod disconnect;
mod pool;
mod state;
mod update;

pub use bare::{Contact, PoolReq, UpdDone, UpdReq, UpdReqAll};
pub use binding::{Binding, BindingAck, Transaction};
pub use connect::{Connect, ConnectAck};
pub use disconnect::Disconnect;
pub use pool::PoolResp;
pub use state::State;
pub use update::{BindingIter, BindingList, BndAck, BndUpd};

/// A message of an optional type (128..=255, §6.1) that this codec does not know: kept raw so
/// it can be logged, ignored or forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct OptionalMessage<'a> {
    /// The message type, 128..=255.
    pub msg_type: u8,
    /// Header time.
    pub time: u32,
    /// Header xid.
    pub xid: u32,
    /// Its options, uninterpreted.
    pub options: ExtraOptions<'a>,
}

/// Any failover message, typed.
///
/// ```
/// use failover_proto::{Repr, MessageType};
/// // CONTACT, as ISC dhcpd sends it every max-response-delay / 3 seconds.
/// let bytes = [0x00, 0x0c, 0x0b, 0x0c, 0x65, 0x53, 0xf1, 0x14, 0x00, 0x00, 0x00, 0x0a];
/// let repr = Repr::parse(&bytes)?;
/// assert_eq!(repr.message_type(), MessageType::Contact);
/// assert_eq!(repr.xid(), 10);
/// let mut out = [0u8; 12];
/// assert_eq!(repr.emit(&mut out)?, 12);
/// assert_eq!(out, bytes);
/// # Ok::<(), Box<dyn core::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Repr<'a> {
    /// POOLREQ.
    PoolReq(PoolReq<'a>),
    /// POOLRESP.
    PoolResp(PoolResp<'a>),
    /// BNDUPD.
    BndUpd(BndUpd<'a>),
    /// BNDACK.
    BndAck(BndAck<'a>),
    /// CONNECT.
    Connect(Connect<'a>),
    /// CONNECTACK.
    ConnectAck(ConnectAck<'a>),
    /// UPDREQALL.
    UpdReqAll(UpdReqAll<'a>),
    /// UPDDONE.
    UpdDone(UpdDone<'a>),
    /// UPDREQ.
    UpdReq(UpdReq<'a>),
    /// STATE.
    State(State<'a>),
    /// CONTACT.
    Contact(Contact<'a>),
    /// DISCONNECT.
    Disconnect(Disconnect<'a>),
    /// A message of an optional type (128..=255).
    Optional(OptionalMessage<'a>),
}

/// Applies `$e` to the typed message inside a `Repr`, for the twelve draft types.
macro_rules! each {
    ($self:expr, $m:ident => $e:expr, $opt:ident => $o:expr) => {
        match $self {
            Repr::PoolReq($m) => $e,
            Repr::PoolResp($m) => $e,
            Repr::BndUpd($m) => $e,
            Repr::BndAck($m) => $e,
            Repr::Connect($m) => $e,
            Repr::ConnectAck($m) => $e,
            Repr::UpdReqAll($m) => $e,
            Repr::UpdDone($m) => $e,
            Repr::UpdReq($m) => $e,
            Repr::State($m) => $e,
            Repr::Contact($m) => $e,
            Repr::Disconnect($m) => $e,
            Repr::Optional($opt) => $o,
        }
    };
}

impl<'a> Repr<'a> {
    /// Decodes one whole message from `bytes` (which must hold at least its length).
    ///
    /// A mandatory type unknown to the draft (0, 13..=127) is an error the receiver must close
    /// the connection on; an optional one (128..=255) becomes [`Repr::Optional`].
    pub fn parse(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        Self::parse_message(&Message::new_unchecked(bytes))
    }

    /// Decodes the message in a view.
    pub fn parse_message(msg: &Message<&'a [u8]>) -> Result<Self, DecodeError> {
        msg.check_len()?;
        Ok(match msg.msg_type() {
            MessageType::PoolReq => Repr::PoolReq(PoolReq::parse(msg)?),
            MessageType::PoolResp => Repr::PoolResp(PoolResp::parse(msg)?),
            MessageType::BndUpd => Repr::BndUpd(BndUpd::parse(msg)?),
            MessageType::BndAck => Repr::BndAck(BndAck::parse(msg)?),
            MessageType::Connect => Repr::Connect(Connect::parse(msg)?),
            MessageType::ConnectAck => Repr::ConnectAck(ConnectAck::parse(msg)?),
            MessageType::UpdReqAll => Repr::UpdReqAll(UpdReqAll::parse(msg)?),
            MessageType::UpdDone => Repr::UpdDone(UpdDone::parse(msg)?),
            MessageType::UpdReq => Repr::UpdReq(UpdReq::parse(msg)?),
            MessageType::State => Repr::State(State::parse(msg)?),
            MessageType::Contact => Repr::Contact(Contact::parse(msg)?),
            MessageType::Disconnect => Repr::Disconnect(Disconnect::parse(msg)?),
            MessageType::Unknown(t) if t >= 128 => {
                let start = msg.options_start();
                let bytes: &'a [u8] = msg.into_inner();
                let payload = bytes
                    .get(start..usize::from(msg.length()))
                    .unwrap_or_default();
                scan(payload, start, true, |_| Ok(()))?;
                Repr::Optional(OptionalMessage {
                    msg_type: t,
                    time: msg.time(),
                    xid: msg.xid(),
                    options: ExtraOptions::from_wire(payload, start, CodeSet::EMPTY),
                })
            }
            MessageType::Unknown(t) => {
                return Err(DecodeError::new(DecodeErrorKind::UnknownMessageType(t), 2));
            }
        })
    }

    /// The message type.
    pub fn message_type(&self) -> MessageType {
        each!(self, m => <_ as HasType>::msg_type(m), o => MessageType::Unknown(o.msg_type))
    }

    /// Header xid.
    pub fn xid(&self) -> u32 {
        each!(self, m => m.xid, o => o.xid)
    }

    /// Header time.
    pub fn time(&self) -> u32 {
        each!(self, m => m.time, o => o.time)
    }

    /// Bytes the encoded message takes.
    pub fn buffer_len(&self) -> usize {
        each!(self, m => m.buffer_len(), o => HEADER_LEN + o.options.wire_len())
    }

    /// Encodes the message into the start of `out`; returns its length.
    pub fn emit(&self, out: &mut [u8]) -> Result<usize, EncodeError> {
        each!(self, m => m.emit(out), o => emit_optional(o, out))
    }
}

fn emit_optional(o: &OptionalMessage<'_>, out: &mut [u8]) -> Result<usize, EncodeError> {
    let len = HEADER_LEN + o.options.wire_len();
    if len > MAX_MESSAGE_LEN {
        return Err(EncodeError::MessageTooLong { len });
    }
    let (header, rest) = out
        .get_mut(..len)
        .and_then(|o| o.split_first_chunk_mut::<HEADER_LEN>())
        .ok_or(EncodeError::BufferTooSmall { required: len })?;
    let mut m = Message::new_unchecked(&mut header[..]);
    m.set_length(len as u16);
    m.set_msg_type(MessageType::Unknown(o.msg_type));
    m.set_payload_offset(HEADER_LEN as u8);
    m.set_time(o.time);
    m.set_xid(o.xid);
    let mut w = OptionWriter::new(rest);
    o.options.write(&mut w)?;
    Ok(len)
}

/// The message type of a typed message.
trait HasType {
    fn msg_type(&self) -> MessageType;
}

impl<'a, B: Body<'a>> HasType for B {
    fn msg_type(&self) -> MessageType {
        B::TYPE
    }
}

/// Conversions from each typed message into [`Repr`].
macro_rules! into_repr {
    ($($name:ident),+) => {
        $(
            impl<'a> From<$name<'a>> for Repr<'a> {
                fn from(m: $name<'a>) -> Self {
                    Repr::$name(m)
                }
            }
        )+
    };
}
into_repr!(
    PoolReq, PoolResp, BndUpd, BndAck, Connect, ConnectAck, UpdReqAll, UpdDone, UpdReq, State,
    Contact, Disconnect
);
