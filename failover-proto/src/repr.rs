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

use core::fmt;
use core::net::Ipv4Addr;

use byteorder::{BigEndian, ByteOrder};

use crate::error::{DecodeError, DecodeErrorKind, EncodeError};
use crate::header::{HEADER_LEN, MAX_MESSAGE_LEN, Message, MessageType};
use crate::option::{CodeSet, ExtraOptions, OptionCode, OptionWriter, Options, RawOption, scan};
use crate::value::{
    BindingStatus, Ddns, DdnsFlags, DigestType, HardwareAddress, Hba, IpFlags, MessageDigest,
    RejectReason, ServerFlags, ServerState, Text, TlsReply, TlsRequest,
};

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
            pub fn parse(msg: &Message<&'a [u8]>) -> Result<Self, DecodeError> {
                parse_message(msg)
            }

            /// Decodes a message from its bytes (starting at the length field).
            pub fn from_bytes(bytes: &'a [u8]) -> Result<Self, DecodeError> {
                parse_message(&Message::new_unchecked(bytes))
            }

            /// Bytes the encoded message takes.
            pub fn buffer_len(&self) -> usize {
                HEADER_LEN + <Self as Body<'a>>::payload_len(self)
            }

            /// Encodes the message into the start of `out`; returns its length.
            pub fn emit(&self, out: &mut [u8]) -> Result<usize, EncodeError> {
                emit_message(self, out)
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

/// Defines a message type without options of its own (POOLREQ, UPDREQALL, UPDDONE, UPDREQ,
/// CONTACT).
macro_rules! bare_message {
    ($(#[$meta:meta])* $name:ident, $ty:expr) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
        #[cfg_attr(feature = "defmt", derive(defmt::Format))]
        pub struct $name<'a> {
            /// Header time: the sender's clock (§6.1).
            pub time: u32,
            /// Header xid (§6.1).
            pub xid: u32,
            /// Options not modelled here (the draft defines none for this message).
            pub extra: ExtraOptions<'a>,
            /// message-digest, when a shared secret is in use (§11.1).
            pub digest: Option<MessageDigest<'a>>,
        }

        impl<'a> Body<'a> for $name<'a> {
            const TYPE: MessageType = $ty;

            fn header(&self) -> (u32, u32) {
                (self.time, self.xid)
            }

            fn parse_payload(
                time: u32,
                xid: u32,
                payload: &'a [u8],
                base: usize,
            ) -> Result<Self, DecodeError> {
                let mut digest = None;
                scan(payload, base, false, |o| {
                    if o.code == 17 {
                        digest = Some(digest_of(&o));
                    }
                    Ok(())
                })?;
                Ok($name {
                    time,
                    xid,
                    extra: ExtraOptions::from_wire(payload, base, CodeSet::of(&[17])),
                    digest,
                })
            }

            fn payload_len(&self) -> usize {
                self.extra.wire_len() + digest_len(&self.digest)
            }

            fn emit_payload(&self, w: &mut OptionWriter<'_>) -> Result<(), EncodeError> {
                self.extra.write(w)?;
                put_digest(w, &self.digest)
            }
        }

        message_api!($name);
    };
}

bare_message!(
    /// POOLREQ (§7.6): asks the partner to balance the address pools.
    PoolReq,
    MessageType::PoolReq
);
bare_message!(
    /// UPDREQALL (§7.4): asks the partner for every binding it has.
    UpdReqAll,
    MessageType::UpdReqAll
);
bare_message!(
    /// UPDDONE (§7.5): every binding asked for by UPDREQ/UPDREQALL was sent and acked; xid of
    /// the request.
    UpdDone,
    MessageType::UpdDone
);
bare_message!(
    /// UPDREQ (§7.3): asks the partner for the bindings it has not had acknowledged.
    UpdReq,
    MessageType::UpdReq
);
bare_message!(
    /// CONTACT (§7.11): keep-alive.
    Contact,
    MessageType::Contact
);

/// POOLRESP (§7.7): answer to a POOLREQ, with its xid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct PoolResp<'a> {
    /// Header time.
    pub time: u32,
    /// Header xid (the POOLREQ's).
    pub xid: u32,
    /// addresses-transferred (option 1): how many addresses were moved to the other pool.
    pub addresses_transferred: u32,
    /// Options not modelled here.
    pub extra: ExtraOptions<'a>,
    /// message-digest.
    pub digest: Option<MessageDigest<'a>>,
}

impl<'a> Body<'a> for PoolResp<'a> {
    const TYPE: MessageType = MessageType::PoolResp;

    fn header(&self) -> (u32, u32) {
        (self.time, self.xid)
    }

    fn parse_payload(
        time: u32,
        xid: u32,
        payload: &'a [u8],
        base: usize,
    ) -> Result<Self, DecodeError> {
        let (mut transferred, mut digest) = (None, None);
        scan(payload, base, false, |o| {
            match o.code {
                1 => transferred = Some(be32(o.data)),
                17 => digest = Some(digest_of(&o)),
                _ => {}
            }
            Ok(())
        })?;
        Ok(PoolResp {
            time,
            xid,
            addresses_transferred: require(transferred, OptionCode::AddressesTransferred, base)?,
            extra: ExtraOptions::from_wire(payload, base, CodeSet::of(&[1, 17])),
            digest,
        })
    }

    fn payload_len(&self) -> usize {
        8 + self.extra.wire_len() + digest_len(&self.digest)
    }

    fn emit_payload(&self, w: &mut OptionWriter<'_>) -> Result<(), EncodeError> {
        w.put_u32(1, self.addresses_transferred)?;
        self.extra.write(w)?;
        put_digest(w, &self.digest)
    }
}
message_api!(PoolResp);

/// STATE (§7.10): the sender's failover state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct State<'a> {
    /// Header time.
    pub time: u32,
    /// Header xid.
    pub xid: u32,
    /// server-state (option 24): while in STARTUP, the state before it (§12.24).
    pub server_state: ServerState,
    /// server-flags (option 23).
    pub server_flags: ServerFlags,
    /// start-time-of-state (option 25): when the sender entered `server_state`.
    pub start_time_of_state: u32,
    /// Options not modelled here.
    pub extra: ExtraOptions<'a>,
    /// message-digest.
    pub digest: Option<MessageDigest<'a>>,
}

impl<'a> Body<'a> for State<'a> {
    const TYPE: MessageType = MessageType::State;

    fn header(&self) -> (u32, u32) {
        (self.time, self.xid)
    }

    fn parse_payload(
        time: u32,
        xid: u32,
        payload: &'a [u8],
        base: usize,
    ) -> Result<Self, DecodeError> {
        let (mut state, mut flags, mut stos, mut digest) = (None, None, None, None);
        scan(payload, base, false, |o| {
            match o.code {
                24 => state = Some(ServerState::from(byte(o.data))),
                23 => flags = Some(ServerFlags(byte(o.data))),
                25 => stos = Some(be32(o.data)),
                17 => digest = Some(digest_of(&o)),
                _ => {}
            }
            Ok(())
        })?;
        Ok(State {
            time,
            xid,
            server_state: require(state, OptionCode::ServerState, base)?,
            server_flags: require(flags, OptionCode::ServerFlags, base)?,
            start_time_of_state: require(stos, OptionCode::StartTimeOfState, base)?,
            extra: ExtraOptions::from_wire(payload, base, CodeSet::of(&[17, 23, 24, 25])),
            digest,
        })
    }

    fn payload_len(&self) -> usize {
        5 + 5 + 8 + self.extra.wire_len() + digest_len(&self.digest)
    }

    fn emit_payload(&self, w: &mut OptionWriter<'_>) -> Result<(), EncodeError> {
        w.put_u8(24, self.server_state.into())?;
        w.put_u8(23, self.server_flags.0)?;
        w.put_u32(25, self.start_time_of_state)?;
        self.extra.write(w)?;
        put_digest(w, &self.digest)
    }
}
message_api!(State);

/// DISCONNECT (§7.12): the last message before an orderly close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Disconnect<'a> {
    /// Header time.
    pub time: u32,
    /// Header xid.
    pub xid: u32,
    /// reject-reason (option 21): why.
    pub reject_reason: RejectReason,
    /// message (option 16): human-readable detail.
    pub message: Option<Text<'a>>,
    /// Options not modelled here.
    pub extra: ExtraOptions<'a>,
    /// message-digest.
    pub digest: Option<MessageDigest<'a>>,
}

impl<'a> Body<'a> for Disconnect<'a> {
    const TYPE: MessageType = MessageType::Disconnect;

    fn header(&self) -> (u32, u32) {
        (self.time, self.xid)
    }

    fn parse_payload(
        time: u32,
        xid: u32,
        payload: &'a [u8],
        base: usize,
    ) -> Result<Self, DecodeError> {
        let (mut reason, mut message, mut digest) = (None, None, None);
        scan(payload, base, false, |o| {
            match o.code {
                21 => reason = Some(RejectReason::from(byte(o.data))),
                16 => message = Some(Text(o.data)),
                17 => digest = Some(digest_of(&o)),
                _ => {}
            }
            Ok(())
        })?;
        Ok(Disconnect {
            time,
            xid,
            reject_reason: require(reason, OptionCode::RejectReason, base)?,
            message,
            extra: ExtraOptions::from_wire(payload, base, CodeSet::of(&[16, 17, 21])),
            digest,
        })
    }

    fn payload_len(&self) -> usize {
        5 + opt_len(self.message.map(|m| m.0)) + self.extra.wire_len() + digest_len(&self.digest)
    }

    fn emit_payload(&self, w: &mut OptionWriter<'_>) -> Result<(), EncodeError> {
        w.put_u8(21, self.reject_reason.into())?;
        put_opt(w, 16, self.message.map(|m| m.0))?;
        self.extra.write(w)?;
        put_digest(w, &self.digest)
    }
}
message_api!(Disconnect);

/// CONNECT (§7.8): the primary opens the application session and states its configuration.
///
/// Mandatory (§7.8 Table 7.8-1), checked in ISC dhcpd's order so the first missing option maps
/// to the reject-reason ISC answers with: relationship-name (8), hash-bucket-assignment (18),
/// MCLT (5), then protocol-version, max-unacked-bndupd, receive-timer, vendor-class-identifier.
/// TLS-request is optional here: the draft forbids it on a CONNECT sent over TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Connect<'a> {
    /// Header time: the receiver measures clock skew from it (§7.8.2).
    pub time: u32,
    /// Header xid; the CONNECTACK echoes it.
    pub xid: u32,
    /// relationship-name (option 22).
    pub relationship_name: Text<'a>,
    /// max-unacked-bndupd (option 14): BNDUPDs the sender can hold un-acked.
    pub max_unacked_bndupd: u32,
    /// receive-timer (option 19): the sender's tReceive in seconds.
    pub receive_timer: u32,
    /// vendor-class-identifier (option 28).
    pub vendor_class: Text<'a>,
    /// protocol-version (option 20), 1.
    pub protocol_version: u8,
    /// TLS-request (option 27).
    pub tls_request: Option<TlsRequest>,
    /// MCLT (option 15), seconds.
    pub mclt: u32,
    /// hash-bucket-assignment (option 11).
    pub hba: Hba,
    /// delayed-service-parameter (option 10), seconds.
    pub delayed_service: Option<u8>,
    /// vendor-specific-options (option 29), raw nested TLVs.
    pub vendor_options: Option<&'a [u8]>,
    /// Options not modelled here.
    pub extra: ExtraOptions<'a>,
    /// message-digest.
    pub digest: Option<MessageDigest<'a>>,
}

impl<'a> Body<'a> for Connect<'a> {
    const TYPE: MessageType = MessageType::Connect;

    fn header(&self) -> (u32, u32) {
        (self.time, self.xid)
    }

    fn parse_payload(
        time: u32,
        xid: u32,
        payload: &'a [u8],
        base: usize,
    ) -> Result<Self, DecodeError> {
        let (mut name, mut mud, mut rt, mut vc, mut pv) = (None, None, None, None, None);
        let (mut tls, mut mclt, mut hba, mut dsp, mut vso, mut digest) =
            (None, None, None, None, None, None);
        scan(payload, base, false, |o| {
            match o.code {
                22 => name = Some(Text(o.data)),
                14 => mud = Some(be32(o.data)),
                19 => rt = Some(be32(o.data)),
                28 => vc = Some(Text(o.data)),
                20 => pv = Some(byte(o.data)),
                27 => tls = Some(TlsRequest::from(byte(o.data))),
                15 => mclt = Some(be32(o.data)),
                11 => {
                    let mut bits = [0u8; 32];
                    bits.copy_from_slice(o.data);
                    hba = Some(Hba(bits));
                }
                10 => dsp = Some(byte(o.data)),
                29 => vso = Some(o.data),
                17 => digest = Some(digest_of(&o)),
                _ => {}
            }
            Ok(())
        })?;
        let relationship_name = require(name, OptionCode::RelationshipName, base)?;
        let hba = require(hba, OptionCode::HashBucketAssignment, base)?;
        let mclt = require(mclt, OptionCode::Mclt, base)?;
        Ok(Connect {
            time,
            xid,
            relationship_name,
            protocol_version: require(pv, OptionCode::ProtocolVersion, base)?,
            max_unacked_bndupd: require(mud, OptionCode::MaxUnackedBndupd, base)?,
            receive_timer: require(rt, OptionCode::ReceiveTimer, base)?,
            vendor_class: require(vc, OptionCode::VendorClassIdentifier, base)?,
            tls_request: tls,
            mclt,
            hba,
            delayed_service: dsp,
            vendor_options: vso,
            extra: ExtraOptions::from_wire(payload, base, Self::MODELED),
            digest,
        })
    }

    fn payload_len(&self) -> usize {
        4 + self.relationship_name.0.len()
            + 8
            + 8
            + 4
            + self.vendor_class.0.len()
            + 5
            + self.tls_request.map_or(0, |_| 5)
            + 8
            + 36
            + self.delayed_service.map_or(0, |_| 5)
            + opt_len(self.vendor_options)
            + self.extra.wire_len()
            + digest_len(&self.digest)
    }

    fn emit_payload(&self, w: &mut OptionWriter<'_>) -> Result<(), EncodeError> {
        w.put(22, self.relationship_name.0)?;
        w.put_u32(14, self.max_unacked_bndupd)?;
        w.put_u32(19, self.receive_timer)?;
        w.put(28, self.vendor_class.0)?;
        w.put_u8(20, self.protocol_version)?;
        put_opt_u8(w, 27, self.tls_request.map(u8::from))?;
        w.put_u32(15, self.mclt)?;
        w.put(11, &self.hba.0)?;
        put_opt_u8(w, 10, self.delayed_service)?;
        put_opt(w, 29, self.vendor_options)?;
        self.extra.write(w)?;
        put_digest(w, &self.digest)
    }
}
message_api!(Connect);

impl Connect<'_> {
    const MODELED: CodeSet = CodeSet::of(&[10, 11, 14, 15, 17, 19, 20, 22, 27, 28, 29]);
}

/// CONNECTACK (§7.9): the secondary's answer to CONNECT, with its xid.
///
/// An accepting CONNECTACK must carry relationship-name, max-unacked-bndupd, receive-timer,
/// vendor-class-identifier and protocol-version (Table 7.9-1). A rejecting one (reject-reason
/// present) needs only protocol-version: ISC dhcpd omits the relationship-name when the CONNECT
/// had none, and adds max-unacked/receive-timer when it knows the relationship.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ConnectAck<'a> {
    /// Header time.
    pub time: u32,
    /// Header xid (the CONNECT's).
    pub xid: u32,
    /// relationship-name (option 22).
    pub relationship_name: Option<Text<'a>>,
    /// max-unacked-bndupd (option 14).
    pub max_unacked_bndupd: Option<u32>,
    /// receive-timer (option 19).
    pub receive_timer: Option<u32>,
    /// vendor-class-identifier (option 28).
    pub vendor_class: Option<Text<'a>>,
    /// protocol-version (option 20).
    pub protocol_version: u8,
    /// TLS-reply (option 26).
    pub tls_reply: Option<TlsReply>,
    /// reject-reason (option 21): present means the CONNECT was rejected.
    pub reject_reason: Option<RejectReason>,
    /// message (option 16).
    pub message: Option<Text<'a>>,
    /// vendor-specific-options (option 29).
    pub vendor_options: Option<&'a [u8]>,
    /// Options not modelled here.
    pub extra: ExtraOptions<'a>,
    /// message-digest.
    pub digest: Option<MessageDigest<'a>>,
}

impl<'a> Body<'a> for ConnectAck<'a> {
    const TYPE: MessageType = MessageType::ConnectAck;

    fn header(&self) -> (u32, u32) {
        (self.time, self.xid)
    }

    fn parse_payload(
        time: u32,
        xid: u32,
        payload: &'a [u8],
        base: usize,
    ) -> Result<Self, DecodeError> {
        let mut a = ConnectAck {
            time,
            xid,
            ..ConnectAck::default()
        };
        let mut pv = None;
        scan(payload, base, false, |o| {
            match o.code {
                22 => a.relationship_name = Some(Text(o.data)),
                14 => a.max_unacked_bndupd = Some(be32(o.data)),
                19 => a.receive_timer = Some(be32(o.data)),
                28 => a.vendor_class = Some(Text(o.data)),
                20 => pv = Some(byte(o.data)),
                26 => a.tls_reply = Some(TlsReply::from(byte(o.data))),
                21 => a.reject_reason = Some(RejectReason::from(byte(o.data))),
                16 => a.message = Some(Text(o.data)),
                29 => a.vendor_options = Some(o.data),
                17 => a.digest = Some(digest_of(&o)),
                _ => {}
            }
            Ok(())
        })?;
        if a.reject_reason.is_none() {
            require(a.relationship_name, OptionCode::RelationshipName, base)?;
        }
        a.protocol_version = require(pv, OptionCode::ProtocolVersion, base)?;
        if a.reject_reason.is_none() {
            require(a.max_unacked_bndupd, OptionCode::MaxUnackedBndupd, base)?;
            require(a.receive_timer, OptionCode::ReceiveTimer, base)?;
            require(a.vendor_class, OptionCode::VendorClassIdentifier, base)?;
        }
        a.extra = ExtraOptions::from_wire(payload, base, Self::MODELED);
        Ok(a)
    }

    fn payload_len(&self) -> usize {
        opt_len(self.relationship_name.map(|t| t.0))
            + self.max_unacked_bndupd.map_or(0, |_| 8)
            + self.receive_timer.map_or(0, |_| 8)
            + opt_len(self.vendor_class.map(|t| t.0))
            + 5
            + self.tls_reply.map_or(0, |_| 5)
            + self.reject_reason.map_or(0, |_| 5)
            + opt_len(self.message.map(|t| t.0))
            + opt_len(self.vendor_options)
            + self.extra.wire_len()
            + digest_len(&self.digest)
    }

    fn emit_payload(&self, w: &mut OptionWriter<'_>) -> Result<(), EncodeError> {
        put_opt(w, 22, self.relationship_name.map(|t| t.0))?;
        put_opt_u32(w, 14, self.max_unacked_bndupd)?;
        put_opt_u32(w, 19, self.receive_timer)?;
        put_opt(w, 28, self.vendor_class.map(|t| t.0))?;
        w.put_u8(20, self.protocol_version)?;
        put_opt_u8(w, 26, self.tls_reply.map(u8::from))?;
        put_opt_u8(w, 21, self.reject_reason.map(u8::from))?;
        put_opt(w, 16, self.message.map(|t| t.0))?;
        put_opt(w, 29, self.vendor_options)?;
        self.extra.write(w)?;
        put_digest(w, &self.digest)
    }
}
message_api!(ConnectAck);

impl ConnectAck<'_> {
    const MODELED: CodeSet = CodeSet::of(&[14, 16, 17, 19, 20, 21, 22, 26, 28, 29]);
}

/// One binding transaction of a BNDUPD (§7.1, Table 7.1-1): everything from an
/// assigned-IP-address up to the next one.
///
/// Mandatory: assigned-IP-address and binding-status; client-hardware-address for ACTIVE,
/// EXPIRED and RELEASED (ISC rejects those without it, reason 3); lease-expiration-time and
/// potential-expiration-time for ACTIVE. ISC sends the two times for every status (0 for a
/// lease never used), so they are accepted whatever the status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Binding<'a> {
    /// assigned-IP-address (option 2).
    pub address: Ipv4Addr,
    /// binding-status (option 3).
    pub status: BindingStatus,
    /// client-identifier (option 4): the client's DHCP option 61 data.
    pub client_identifier: Option<&'a [u8]>,
    /// client-hardware-address (option 5).
    pub hardware_address: Option<HardwareAddress<'a>>,
    /// lease-expiration-time (option 13).
    pub lease_expiration_time: Option<u32>,
    /// potential-expiration-time (option 18).
    pub potential_expiration_time: Option<u32>,
    /// start-time-of-state (option 25): when the binding entered `status`.
    pub start_time_of_state: Option<u32>,
    /// client-last-transaction-time (option 6).
    pub client_last_transaction_time: Option<u32>,
    /// IP-flags (option 12).
    pub ip_flags: Option<IpFlags>,
    /// DDNS (option 9). Never send it to ISC dhcpd, whose decoder drops the connection.
    pub ddns: Option<Ddns<'a>>,
    /// client-request-options (option 8): magic cookie then DHCP options.
    pub client_request_options: Option<&'a [u8]>,
    /// client-reply-options (option 7): magic cookie then DHCP options.
    pub client_reply_options: Option<&'a [u8]>,
    /// Options of this transaction not modelled here.
    pub extra: ExtraOptions<'a>,
}

impl Binding<'_> {
    const MODELED: CodeSet = CodeSet::of(&[2, 3, 4, 5, 6, 7, 8, 9, 12, 13, 17, 18, 25]);

    /// A binding with only address and status set.
    pub const fn new(address: Ipv4Addr, status: BindingStatus) -> Binding<'static> {
        Binding {
            address,
            status,
            client_identifier: None,
            hardware_address: None,
            lease_expiration_time: None,
            potential_expiration_time: None,
            start_time_of_state: None,
            client_last_transaction_time: None,
            ip_flags: None,
            ddns: None,
            client_request_options: None,
            client_reply_options: None,
            extra: ExtraOptions::EMPTY,
        }
    }
}

/// One binding transaction of a BNDACK (§7.2, Table 7.2-1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BindingAck<'a> {
    /// assigned-IP-address (option 2) of the acknowledged binding.
    pub address: Ipv4Addr,
    /// reject-reason (option 21): present means the update was rejected.
    pub reject_reason: Option<RejectReason>,
    /// message (option 16).
    pub message: Option<Text<'a>>,
    /// Other options of this transaction (echoed binding data; unreliable, §7.2.1).
    pub extra: ExtraOptions<'a>,
}

impl BindingAck<'_> {
    const MODELED: CodeSet = CodeSet::of(&[2, 16, 17, 21]);

    /// An acceptance of `address`.
    pub const fn accept(address: Ipv4Addr) -> BindingAck<'static> {
        BindingAck {
            address,
            reject_reason: None,
            message: None,
            extra: ExtraOptions::EMPTY,
        }
    }
}

// core::net::Ipv4Addr has no defmt::Format: write the octets.
#[cfg(feature = "defmt")]
impl defmt::Format for Binding<'_> {
    fn format(&self, f: defmt::Formatter<'_>) {
        let a = self.address.octets();
        defmt::write!(
            f,
            "Binding {{ address: {}.{}.{}.{}, status: {}, client_identifier: {}, hardware_address: {}, lease_expiration_time: {}, potential_expiration_time: {}, start_time_of_state: {}, client_last_transaction_time: {}, ip_flags: {}, ddns: {}, extra: {} }}",
            a[0],
            a[1],
            a[2],
            a[3],
            self.status,
            self.client_identifier,
            self.hardware_address,
            self.lease_expiration_time,
            self.potential_expiration_time,
            self.start_time_of_state,
            self.client_last_transaction_time,
            self.ip_flags,
            self.ddns,
            self.extra
        );
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for BindingAck<'_> {
    fn format(&self, f: defmt::Formatter<'_>) {
        let a = self.address.octets();
        defmt::write!(
            f,
            "BindingAck {{ address: {}.{}.{}.{}, reject_reason: {}, message: {} }}",
            a[0],
            a[1],
            a[2],
            a[3],
            self.reject_reason,
            self.message
        );
    }
}

/// A transaction type inside a batched message.
pub trait Transaction<'a>: Copy + Sized {
    /// Decodes one transaction from exactly its options (starting at assigned-IP-address).
    fn parse_txn(raw: &'a [u8], base: usize) -> Result<Self, DecodeError>;
    /// Bytes it takes on the wire.
    fn wire_len(&self) -> usize;
    /// Encodes it.
    fn write(&self, w: &mut OptionWriter<'_>) -> Result<(), EncodeError>;
}

impl<'a> Transaction<'a> for Binding<'a> {
    fn parse_txn(raw: &'a [u8], base: usize) -> Result<Self, DecodeError> {
        let mut b = Binding::new(Ipv4Addr::UNSPECIFIED, BindingStatus::Unknown(0));
        let (mut addr, mut status) = (None, None);
        for o in Options::new(raw, base) {
            let o = o?;
            match o.code {
                2 => addr = Some(ipv4(o.data)),
                3 => status = Some(BindingStatus::from(byte(o.data))),
                4 => b.client_identifier = Some(o.data),
                5 => {
                    b.hardware_address = Some(HardwareAddress {
                        htype: byte(o.data),
                        address: o.data.get(1..).unwrap_or_default(),
                    })
                }
                13 => b.lease_expiration_time = Some(be32(o.data)),
                18 => b.potential_expiration_time = Some(be32(o.data)),
                25 => b.start_time_of_state = Some(be32(o.data)),
                6 => b.client_last_transaction_time = Some(be32(o.data)),
                12 => {
                    // One byte (Microsoft, §12.12 "Len 1") is the low byte of the field.
                    let v = match o.data {
                        [lo] => u16::from(*lo),
                        d => BigEndian::read_u16(d.get(..2).unwrap_or(&[0, 0])),
                    };
                    b.ip_flags = Some(IpFlags(v));
                }
                9 => {
                    b.ddns = Some(Ddns {
                        flags: DdnsFlags(BigEndian::read_u16(o.data.get(..2).unwrap_or(&[0, 0]))),
                        fqdn: o.data.get(2..).unwrap_or_default(),
                    })
                }
                8 => b.client_request_options = Some(o.data),
                7 => b.client_reply_options = Some(o.data),
                _ => {}
            }
        }
        b.address = require(addr, OptionCode::AssignedIpAddress, base)?;
        b.status = require(status, OptionCode::BindingStatus, base)?;
        if b.status.requires_client() && b.hardware_address.is_none() {
            return Err(missing(OptionCode::ClientHardwareAddress, base));
        }
        if b.status == BindingStatus::Active {
            require(
                b.lease_expiration_time,
                OptionCode::LeaseExpirationTime,
                base,
            )?;
            require(
                b.potential_expiration_time,
                OptionCode::PotentialExpirationTime,
                base,
            )?;
        }
        b.extra = ExtraOptions::from_wire(raw, base, Self::MODELED);
        Ok(b)
    }

    fn wire_len(&self) -> usize {
        8 + 5
            + opt_len(self.client_identifier)
            + self.hardware_address.map_or(0, |h| 4 + h.wire_len())
            + self.lease_expiration_time.map_or(0, |_| 8)
            + self.potential_expiration_time.map_or(0, |_| 8)
            + self.start_time_of_state.map_or(0, |_| 8)
            + self.client_last_transaction_time.map_or(0, |_| 8)
            + self.ip_flags.map_or(0, |_| 6)
            + self.ddns.map_or(0, |d| 6 + d.fqdn.len())
            + opt_len(self.client_request_options)
            + opt_len(self.client_reply_options)
            + self.extra.wire_len()
    }

    fn write(&self, w: &mut OptionWriter<'_>) -> Result<(), EncodeError> {
        // ISC dhcpd's order (dhcp_failover_send_bind_update): 2 3 4 5 13 18 25 6 [12].
        w.put(2, &self.address.octets())?;
        w.put_u8(3, self.status.into())?;
        put_opt(w, 4, self.client_identifier)?;
        if let Some(h) = self.hardware_address {
            w.put2(5, &[h.htype], h.address)?;
        }
        put_opt_u32(w, 13, self.lease_expiration_time)?;
        put_opt_u32(w, 18, self.potential_expiration_time)?;
        put_opt_u32(w, 25, self.start_time_of_state)?;
        put_opt_u32(w, 6, self.client_last_transaction_time)?;
        if let Some(f) = self.ip_flags {
            w.put_u16(12, f.0)?;
        }
        if let Some(d) = self.ddns {
            w.put2(9, &d.flags.0.to_be_bytes(), d.fqdn)?;
        }
        put_opt(w, 8, self.client_request_options)?;
        put_opt(w, 7, self.client_reply_options)?;
        self.extra.write(w)
    }
}

impl<'a> Transaction<'a> for BindingAck<'a> {
    fn parse_txn(raw: &'a [u8], base: usize) -> Result<Self, DecodeError> {
        let mut a = BindingAck::accept(Ipv4Addr::UNSPECIFIED);
        let mut addr = None;
        for o in Options::new(raw, base) {
            let o = o?;
            match o.code {
                2 => addr = Some(ipv4(o.data)),
                21 => a.reject_reason = Some(RejectReason::from(byte(o.data))),
                16 => a.message = Some(Text(o.data)),
                _ => {}
            }
        }
        a.address = require(addr, OptionCode::AssignedIpAddress, base)?;
        a.extra = ExtraOptions::from_wire(raw, base, Self::MODELED);
        Ok(a)
    }

    fn wire_len(&self) -> usize {
        8 + self.reject_reason.map_or(0, |_| 5)
            + opt_len(self.message.map(|m| m.0))
            + self.extra.wire_len()
    }

    fn write(&self, w: &mut OptionWriter<'_>) -> Result<(), EncodeError> {
        w.put(2, &self.address.octets())?;
        put_opt_u8(w, 21, self.reject_reason.map(u8::from))?;
        put_opt(w, 16, self.message.map(|m| m.0))?;
        self.extra.write(w)
    }
}

/// Splits a validated binding region into transactions: each starts at an assigned-IP-address
/// and runs to the next one or to the message-digest.
#[derive(Debug, Clone)]
struct Transactions<'a> {
    rest: &'a [u8],
    offset: usize,
}

impl<'a> Iterator for Transactions<'a> {
    type Item = (&'a [u8], usize);

    fn next(&mut self) -> Option<Self::Item> {
        let mut len = 0;
        for o in Options::new(self.rest, self.offset) {
            let Ok(o) = o else { break };
            if (len > 0 && o.code == 2) || o.code == 17 {
                break;
            }
            len += o.wire_len();
        }
        if len == 0 {
            return None;
        }
        let (txn, rest) = self.rest.split_at_checked(len)?;
        let at = self.offset;
        self.rest = rest;
        self.offset += len;
        Some((txn, at))
    }
}

/// The binding transactions of a BNDUPD or BNDACK: decoded lazily from the wire, or a slice
/// given by the sender.
///
/// A list decoded from the wire (already validated by `parse`) is re-emitted as it was received,
/// byte for byte; a list built from a slice is encoded from its typed values.
#[derive(Clone, Copy)]
pub struct BindingList<'a, T> {
    inner: ListInner<'a, T>,
}

#[derive(Clone, Copy)]
enum ListInner<'a, T> {
    Wire { raw: &'a [u8], offset: usize },
    Slice(&'a [T]),
}

impl<'a, T: Transaction<'a>> BindingList<'a, T> {
    /// The transactions of `items`, to be encoded in that order.
    pub const fn from_slice(items: &'a [T]) -> Self {
        BindingList {
            inner: ListInner::Slice(items),
        }
    }

    /// One transaction.
    pub const fn single(item: &'a T) -> Self {
        Self::from_slice(core::slice::from_ref(item))
    }

    /// Iterates over the transactions.
    pub fn iter(&self) -> BindingIter<'a, T> {
        match self.inner {
            ListInner::Wire { raw, offset } => BindingIter {
                inner: IterInner::Wire(Transactions { rest: raw, offset }),
            },
            ListInner::Slice(s) => BindingIter {
                inner: IterInner::Slice(s.iter()),
            },
        }
    }

    /// The first transaction.
    pub fn first(&self) -> Option<T> {
        self.iter().next()
    }

    /// Number of transactions.
    pub fn len(&self) -> usize {
        match self.inner {
            // Validated when the message was parsed: count the transactions' boundaries
            // without decoding their fields.
            ListInner::Wire { raw, offset } => Transactions { rest: raw, offset }.count(),
            ListInner::Slice(s) => s.len(),
        }
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        match self.inner {
            // A parsed region starts with an assigned-IP-address: empty or one transaction+.
            ListInner::Wire { raw, .. } => raw.is_empty(),
            ListInner::Slice(s) => s.is_empty(),
        }
    }

    fn wire_len(&self) -> usize {
        match self.inner {
            ListInner::Wire { raw, .. } => raw.len(),
            ListInner::Slice(s) => s.iter().map(T::wire_len).sum(),
        }
    }

    fn write(&self, w: &mut OptionWriter<'_>) -> Result<(), EncodeError> {
        if self.is_empty() {
            return Err(EncodeError::NoBinding);
        }
        match self.inner {
            // Validated options, re-encoded byte for byte: copy them as they are.
            ListInner::Wire { raw, .. } => w.put_encoded(raw),
            ListInner::Slice(s) => s.iter().try_for_each(|t| t.write(w)),
        }
    }
}

/// Iterator over a [`BindingList`].
#[derive(Debug, Clone)]
pub struct BindingIter<'a, T> {
    inner: IterInner<'a, T>,
}

#[derive(Debug, Clone)]
enum IterInner<'a, T> {
    Wire(Transactions<'a>),
    Slice(core::slice::Iter<'a, T>),
}

impl<'a, T: Transaction<'a>> Iterator for BindingIter<'a, T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        match &mut self.inner {
            // Validated when the message was parsed, so this cannot fail.
            IterInner::Wire(t) => t.next().and_then(|(raw, at)| T::parse_txn(raw, at).ok()),
            IterInner::Slice(s) => s.next().copied(),
        }
    }
}

impl<'a, T: Transaction<'a> + PartialEq> PartialEq for BindingList<'a, T> {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl<'a, T: Transaction<'a> + Eq> Eq for BindingList<'a, T> {}

impl<'a, T: Transaction<'a> + fmt::Debug> fmt::Debug for BindingList<'a, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

#[cfg(feature = "defmt")]
impl<'a, T: Transaction<'a> + defmt::Format> defmt::Format for BindingList<'a, T> {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(f, "[");
        for t in self.iter() {
            defmt::write!(f, "{}, ", t);
        }
        defmt::write!(f, "]");
    }
}

/// Parses the payload of a batched message: message-level options, then transactions.
fn parse_batched<'a, T: Transaction<'a>>(
    payload: &'a [u8],
    base: usize,
    binding_codes: CodeSet,
) -> Result<
    (
        ExtraOptions<'a>,
        BindingList<'a, T>,
        Option<MessageDigest<'a>>,
    ),
    DecodeError,
> {
    let mut first: Option<usize> = None;
    let mut digest = None;
    // Where the binding region ends: at the message-digest (always last), else at the end.
    let mut end = payload.len();
    let mut transactions = 0usize;
    scan(payload, base, true, |o| {
        if o.code == 2 {
            transactions += 1;
            first.get_or_insert(o.offset - base);
        } else if o.code == 17 {
            digest = Some(digest_of(&o));
            end = o.offset - base;
        } else if first.is_none() && binding_codes.contains(o.code) {
            return Err(DecodeError::new(
                DecodeErrorKind::OptionOutsideBinding(o.code),
                o.offset,
            ));
        }
        Ok(())
    })?;
    let Some(first) = first else {
        return Err(missing(OptionCode::AssignedIpAddress, base));
    };
    let head = payload.get(..first).unwrap_or_default();
    // The transactions, back to back: validated options from the first assigned-IP-address up
    // to the message-digest.
    let raw = payload.get(first..end).unwrap_or_default();
    let offset = base + first;
    if transactions == 1 {
        // The only transaction is the whole region (ISC always sends one): no need to split.
        T::parse_txn(raw, offset)?;
    } else {
        for (t, at) in (Transactions { rest: raw, offset }) {
            T::parse_txn(t, at)?;
        }
    }
    Ok((
        ExtraOptions::from_wire(head, base, CodeSet::of(&[17])),
        BindingList {
            inner: ListInner::Wire { raw, offset },
        },
        digest,
    ))
}

/// BNDUPD (§7.1): one or more binding updates. ISC dhcpd sends and accepts exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct BndUpd<'a> {
    /// Header time.
    pub time: u32,
    /// Header xid; the BNDACK echoes it.
    pub xid: u32,
    /// The binding transactions.
    pub bindings: BindingList<'a, Binding<'a>>,
    /// Message-level options not modelled here (before the first binding).
    pub extra: ExtraOptions<'a>,
    /// message-digest.
    pub digest: Option<MessageDigest<'a>>,
}

impl<'a> BndUpd<'a> {
    /// A BNDUPD carrying one binding, as ISC dhcpd sends them.
    pub const fn single(time: u32, xid: u32, binding: &'a Binding<'a>) -> Self {
        BndUpd {
            time,
            xid,
            bindings: BindingList::single(binding),
            extra: ExtraOptions::EMPTY,
            digest: None,
        }
    }
}

/// Codes that only belong inside a binding transaction of a BNDUPD.
const BNDUPD_BINDING_CODES: CodeSet = CodeSet::of(&[3, 4, 5, 6, 7, 8, 9, 12, 13, 18, 25]);
/// Codes that only belong inside a binding transaction of a BNDACK.
const BNDACK_BINDING_CODES: CodeSet = CodeSet::of(&[3, 4, 5, 6, 7, 8, 9, 12, 13, 16, 18, 21, 25]);

impl<'a> Body<'a> for BndUpd<'a> {
    const TYPE: MessageType = MessageType::BndUpd;

    fn header(&self) -> (u32, u32) {
        (self.time, self.xid)
    }

    fn parse_payload(
        time: u32,
        xid: u32,
        payload: &'a [u8],
        base: usize,
    ) -> Result<Self, DecodeError> {
        let (extra, bindings, digest) = parse_batched(payload, base, BNDUPD_BINDING_CODES)?;
        Ok(BndUpd {
            time,
            xid,
            bindings,
            extra,
            digest,
        })
    }

    fn payload_len(&self) -> usize {
        self.extra.wire_len() + self.bindings.wire_len() + digest_len(&self.digest)
    }

    fn emit_payload(&self, w: &mut OptionWriter<'_>) -> Result<(), EncodeError> {
        self.extra.write(w)?;
        self.bindings.write(w)?;
        put_digest(w, &self.digest)
    }
}
message_api!(BndUpd);

/// BNDACK (§7.2): the answer to a BNDUPD, with its xid; one transaction per binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct BndAck<'a> {
    /// Header time.
    pub time: u32,
    /// Header xid (the BNDUPD's).
    pub xid: u32,
    /// One acknowledgement per binding of the BNDUPD.
    pub acks: BindingList<'a, BindingAck<'a>>,
    /// Message-level options not modelled here.
    pub extra: ExtraOptions<'a>,
    /// message-digest.
    pub digest: Option<MessageDigest<'a>>,
}

impl<'a> BndAck<'a> {
    /// A BNDACK answering one binding.
    pub const fn single(time: u32, xid: u32, ack: &'a BindingAck<'a>) -> Self {
        BndAck {
            time,
            xid,
            acks: BindingList::single(ack),
            extra: ExtraOptions::EMPTY,
            digest: None,
        }
    }
}

impl<'a> Body<'a> for BndAck<'a> {
    const TYPE: MessageType = MessageType::BndAck;

    fn header(&self) -> (u32, u32) {
        (self.time, self.xid)
    }

    fn parse_payload(
        time: u32,
        xid: u32,
        payload: &'a [u8],
        base: usize,
    ) -> Result<Self, DecodeError> {
        let (extra, acks, digest) = parse_batched(payload, base, BNDACK_BINDING_CODES)?;
        Ok(BndAck {
            time,
            xid,
            acks,
            extra,
            digest,
        })
    }

    fn payload_len(&self) -> usize {
        self.extra.wire_len() + self.acks.wire_len() + digest_len(&self.digest)
    }

    fn emit_payload(&self, w: &mut OptionWriter<'_>) -> Result<(), EncodeError> {
        self.extra.write(w)?;
        self.acks.write(w)?;
        put_digest(w, &self.digest)
    }
}
message_api!(BndAck);

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
