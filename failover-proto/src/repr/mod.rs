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

/// What the header of a typed message says besides its length: its type (the variant named
/// as the struct) and the (time, xid) fields. `message_api!` implements it.
trait Head {
    const TYPE: MessageType;
    fn header(&self) -> (u32, u32);
}

/// The body of one message type: how its options are read and written.
trait Body<'a>: Head + Sized {
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

/// Writes the header of a message of `len` bytes (type `msg_type`, payload offset 12) and
/// hands the rest of `out` to `body`.
fn emit_with(
    out: &mut [u8],
    msg_type: MessageType,
    (time, xid): (u32, u32),
    len: usize,
    body: impl FnOnce(&mut OptionWriter<'_>) -> Result<(), EncodeError>,
) -> Result<usize, EncodeError> {
    if len > MAX_MESSAGE_LEN {
        return Err(EncodeError::MessageTooLong { len });
    }
    let (header, rest) = out
        .get_mut(..len)
        .and_then(|o| o.split_first_chunk_mut::<HEADER_LEN>())
        .ok_or(EncodeError::BufferTooSmall { required: len })?;
    let mut m = Message::new_unchecked(&mut header[..]);
    m.set_length(len as u16);
    m.set_msg_type(msg_type);
    m.set_payload_offset(HEADER_LEN as u8);
    m.set_time(time);
    m.set_xid(xid);
    let mut w = OptionWriter::new(rest);
    body(&mut w)?;
    Ok(HEADER_LEN + w.position())
}

fn emit_message<'a, B: Body<'a>>(body: &B, out: &mut [u8]) -> Result<usize, EncodeError> {
    let len = HEADER_LEN + body.payload_len();
    emit_with(out, B::TYPE, body.header(), len, |w| body.emit_payload(w))
}

/// Gives a body type the public `parse`, `from_bytes`, `buffer_len` and `emit`.
macro_rules! message_api {
    ($name:ident) => {
        impl $crate::repr::Head for $name<'_> {
            const TYPE: $crate::header::MessageType = $crate::header::MessageType::$name;

            fn header(&self) -> (u32, u32) {
                (self.time, self.xid)
            }
        }

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

/// Defines a protocol's `Repr`: one variant per typed message, named as its struct and its
/// message type, then (after `..`) one for any other type, whose type `$other_type` gives.
/// With it come `parse_message` (the dispatch from a view to the typed parsers, and
/// `$other_arms` for the other types), `message_type()`, `From` each typed message, and
/// `each!`, which applies an expression to whichever message a `Repr` holds. Both protocols'
/// `Repr` are made with it; `$d` is a `$`, for the `each!` it defines.
macro_rules! repr_enum {
    (
        $d:tt;
        $(#[$meta:meta])*
        pub enum Repr<'a> {
            $( $(#[$vmeta:meta])* $variant:ident, )+
            ..
            $(#[$ometa:meta])* $other:ident($other_ty:ident) => |$o:ident| $other_type:expr,
        }
        fn parse_message($msg:ident) {
            $($other_arms:tt)*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[cfg_attr(feature = "defmt", derive(defmt::Format))]
        pub enum Repr<'a> {
            $( $(#[$vmeta])* $variant($variant<'a>), )+
            $(#[$ometa])* $other($other_ty<'a>),
        }

        /// Applies `$e` to the typed message inside a `Repr`, `$oe` to any other.
        macro_rules! each {
            ($d self:expr, $d m:ident => $d e:expr, $d o:ident => $d oe:expr) => {
                match $d self {
                    $( Repr::$variant($d m) => $d e, )+
                    Repr::$other($d o) => $d oe,
                }
            };
        }

        impl<'a> Repr<'a> {
            /// Decodes the message in a view.
            pub fn parse_message($msg: &Message<&'a [u8]>) -> Result<Self, DecodeError> {
                $msg.check_len()?;
                Ok(match $msg.msg_type() {
                    $( MessageType::$variant => Repr::$variant($variant::parse($msg)?), )+
                    $($other_arms)*
                })
            }

            /// The message type.
            pub fn message_type(&self) -> MessageType {
                match self {
                    $( Repr::$variant(_) => MessageType::$variant, )+
                    Repr::$other($o) => $other_type,
                }
            }
        }

        $(
            impl<'a> From<$variant<'a>> for Repr<'a> {
                fn from(m: $variant<'a>) -> Self {
                    Repr::$variant(m)
                }
            }
        )+
    };
}
pub(crate) use repr_enum;

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

repr_enum! {
    $;
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
    pub enum Repr<'a> {
        /// POOLREQ.
        PoolReq,
        /// POOLRESP.
        PoolResp,
        /// BNDUPD.
        BndUpd,
        /// BNDACK.
        BndAck,
        /// CONNECT.
        Connect,
        /// CONNECTACK.
        ConnectAck,
        /// UPDREQALL.
        UpdReqAll,
        /// UPDDONE.
        UpdDone,
        /// UPDREQ.
        UpdReq,
        /// STATE.
        State,
        /// CONTACT.
        Contact,
        /// DISCONNECT.
        Disconnect,
        ..
        /// A message of an optional type (128..=255).
        Optional(OptionalMessage) => |o| MessageType::Unknown(o.msg_type),
    }
    fn parse_message(msg) {
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
    }
}

impl<'a> Repr<'a> {
    /// Decodes one whole message from `bytes` (which must hold at least its length).
    ///
    /// A mandatory type unknown to the draft (0, 13..=127) is an error the receiver must close
    /// the connection on; an optional one (128..=255) becomes [`Repr::Optional`].
    pub fn parse(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        Self::parse_message(&Message::new_unchecked(bytes))
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
    emit_with(
        out,
        MessageType::Unknown(o.msg_type),
        (o.time, o.xid),
        len,
        |w| o.options.write(w),
    )
}
