//! Typed RFC 8156 messages: one struct per message type (§5.3), borrowing from the bytes they
//! were parsed from, and [`Repr`] over all of them.
//!
//! Every struct has `parse` (from a [`Message`] view), `from_bytes`, `buffer_len` and `emit`.
//! `parse` enforces the option rules (exact lengths, no duplicates, binding options only where
//! §7.4 nests them) and the options the RFC requires, naming the first one missing. `emit`
//! writes the options in the order the RFC lists them (§6.1.1, §6.3, §7.4), then the options
//! the struct does not model (`extra`), as received; a message in that order re-encodes byte
//! for byte, any other parses back to an equal value. `emit` into a buffer of `buffer_len()`
//! bytes succeeds for every value `parse` returns.

use crate::error::{DecodeError, DecodeErrorKind, EncodeError};
use crate::option::{ExtraOptions, OptionWriter, WideCodeSet};
use crate::repr::repr_enum;
use crate::value::Text;

use super::binding::{
    Binding, be16, be32, missing, opt_len, put_opt, put_opt_u32, put_status, status_len,
};
use super::header::{HEADER_LEN, MAX_FRAME_LEN, MAX_XID, Message, MessageType, PLAIN_HEADER_LEN};
use super::option::{Level, OptionCode, scan, scan_plain};
use super::value::{ConnectFlags, ProtocolVersion, ServerFlags, ServerState, Status, StatusCode};

/// What the header of a typed message says besides its length: its type (the variant named
/// as the struct) and the (xid, sent_time) fields. `message_api!` implements it.
trait Head {
    const TYPE: MessageType;
    fn header(&self) -> (u32, u32);
}

/// The body of one message type: how its options are read and written.
trait Body<'a>: Head + Sized {
    fn parse_payload(
        xid: u32,
        sent_time: u32,
        payload: &'a [u8],
        base: usize,
    ) -> Result<Self, DecodeError>;
    fn payload_len(&self) -> usize;
    fn emit_payload(&self, w: &mut OptionWriter<'_>) -> Result<(), EncodeError>;
}

fn payload_of<'a>(msg: &Message<&'a [u8]>) -> &'a [u8] {
    let start = msg.options_start();
    let bytes: &'a [u8] = msg.into_inner();
    bytes.get(start..msg.frame_len()).unwrap_or_default()
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
    B::parse_payload(msg.xid(), msg.sent_time(), payload_of(msg), HEADER_LEN)
}

/// Writes the header of a message of `len` bytes (with the size field) and hands the rest of
/// `out` to `body`.
fn emit_with(
    out: &mut [u8],
    msg_type: MessageType,
    xid: u32,
    sent_time: Option<u32>,
    len: usize,
    body: impl FnOnce(&mut OptionWriter<'_>) -> Result<(), EncodeError>,
) -> Result<usize, EncodeError> {
    if len > MAX_FRAME_LEN {
        return Err(EncodeError::V6TooLong { len });
    }
    if xid > MAX_XID {
        return Err(EncodeError::XidTooLarge(xid));
    }
    let head_len = if sent_time.is_some() {
        HEADER_LEN
    } else {
        PLAIN_HEADER_LEN
    };
    let (header, rest) = out
        .get_mut(..len)
        .ok_or(EncodeError::BufferTooSmall { required: len })?
        .split_at_mut_checked(head_len)
        .ok_or(EncodeError::BufferTooSmall { required: len })?;
    let mut m = Message::new_unchecked(&mut *header);
    m.set_size(u16::try_from(len - 2).unwrap_or(u16::MAX));
    m.set_msg_type(msg_type);
    m.set_xid(xid);
    if let Some(t) = sent_time {
        m.set_sent_time(t);
    }
    let mut w = OptionWriter::new(rest);
    body(&mut w)?;
    Ok(head_len + w.position())
}

fn emit_message<'a, B: Body<'a>>(body: &B, out: &mut [u8]) -> Result<usize, EncodeError> {
    let (xid, sent_time) = body.header();
    let len = HEADER_LEN + body.payload_len();
    emit_with(out, B::TYPE, xid, Some(sent_time), len, |w| {
        body.emit_payload(w)
    })
}

/// Gives a body type the public `parse`, `from_bytes`, `buffer_len` and `emit`.
macro_rules! message_api {
    ($name:ident) => {
        impl $crate::v6::repr::Head for $name<'_> {
            const TYPE: MessageType = MessageType::$name;

            fn header(&self) -> (u32, u32) {
                (self.xid, self.sent_time)
            }
        }

        impl<'a> $name<'a> {
            /// Decodes the message in `msg` (checked here), which must be of this type.
            pub fn parse(msg: &Message<&'a [u8]>) -> Result<Self, DecodeError> {
                parse_message(msg)
            }

            /// Decodes a message from its bytes (starting at the message-size field).
            pub fn from_bytes(bytes: &'a [u8]) -> Result<Self, DecodeError> {
                parse_message(&Message::new_unchecked(bytes))
            }

            /// Bytes the encoded message takes, with its message-size field.
            pub fn buffer_len(&self) -> usize {
                HEADER_LEN + <Self as Body<'a>>::payload_len(self)
            }

            /// Encodes the message, with its message-size field, into the start of `out`;
            /// returns its length.
            pub fn emit(&self, out: &mut [u8]) -> Result<usize, EncodeError> {
                emit_message(self, out)
            }
        }
    };
}

fn require<T>(v: Option<T>, code: u16, base: usize) -> Result<T, DecodeError> {
    v.ok_or_else(|| missing(code, 0, base))
}

fn byte(data: &[u8]) -> u8 {
    data.first().copied().unwrap_or(0)
}

fn version(data: &[u8]) -> ProtocolVersion {
    ProtocolVersion {
        major: be16(data),
        minor: be16(data.get(2..).unwrap_or_default()),
    }
}

fn put_version(w: &mut OptionWriter<'_>, v: ProtocolVersion) -> Result<(), EncodeError> {
    w.put2(127, &v.major.to_be_bytes(), &v.minor.to_be_bytes())
}

/// Defines a message type without options of its own (POOLREQ, POOLRESP, UPDREQ, UPDREQALL,
/// UPDDONE, CONTACT: the RFC defines none for them).
macro_rules! bare_message {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
        #[cfg_attr(feature = "defmt", derive(defmt::Format))]
        pub struct $name<'a> {
            /// transaction-id (24 bits, §5.4).
            pub xid: u32,
            /// sent-time: the sender's clock, seconds since 2000 (§5.2).
            pub sent_time: u32,
            /// Options, kept as received (the RFC defines none for this message).
            pub extra: ExtraOptions<'a>,
        }

        impl<'a> Body<'a> for $name<'a> {
            fn parse_payload(
                xid: u32,
                sent_time: u32,
                payload: &'a [u8],
                base: usize,
            ) -> Result<Self, DecodeError> {
                scan(payload, base, Level::TOP, |_| Ok(()))?;
                Ok($name {
                    xid,
                    sent_time,
                    extra: ExtraOptions::from_wire_wide(payload, base, &WideCodeSet::EMPTY),
                })
            }

            fn payload_len(&self) -> usize {
                self.extra.wire_len()
            }

            fn emit_payload(&self, w: &mut OptionWriter<'_>) -> Result<(), EncodeError> {
                self.extra.write(w)
            }
        }

        message_api!($name);
    };
}

bare_message!(
    /// POOLREQ (§5.3.3): the secondary asks the primary to balance the delegable prefixes.
    PoolReq
);
bare_message!(
    /// POOLRESP (§5.3.4): the primary got the POOLREQ (transaction-id of the POOLREQ).
    PoolResp
);
bare_message!(
    /// UPDREQ (§5.3.5): send me the binding changes I have not acknowledged.
    UpdReq
);
bare_message!(
    /// UPDREQALL (§5.3.6): send me every binding.
    UpdReqAll
);
bare_message!(
    /// UPDDONE (§5.3.7): every BNDUPD asked for was sent and answered (transaction-id of the
    /// UPDREQ/UPDREQALL).
    UpdDone
);
bare_message!(
    /// CONTACT (§5.3.12): keep-alive.
    Contact
);

/// CONNECT (§5.3.8, §6.1.1): the primary opens the session and states its configuration.
///
/// OPTION_F_PROTOCOL_VERSION, OPTION_F_MCLT, OPTION_F_KEEPALIVE_TIME,
/// OPTION_F_MAX_UNACKED_BNDUPD and OPTION_F_CONNECT_FLAGS are required, in that order of
/// checking; OPTION_F_RELATIONSHIP_NAME may be absent (a single relationship).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Connect<'a> {
    /// transaction-id; the CONNECTREPLY echoes it.
    pub xid: u32,
    /// sent-time: the secondary checks the skew against it (§6.1.2, §7.1).
    pub sent_time: u32,
    /// OPTION_F_PROTOCOL_VERSION (127).
    pub protocol_version: ProtocolVersion,
    /// OPTION_F_MCLT (122), seconds.
    pub mclt: u32,
    /// OPTION_F_KEEPALIVE_TIME (128), seconds.
    pub keepalive_time: u32,
    /// OPTION_F_MAX_UNACKED_BNDUPD (121).
    pub max_unacked_bndupd: u32,
    /// OPTION_F_RELATIONSHIP_NAME (130), UTF-8.
    pub relationship_name: Option<Text<'a>>,
    /// OPTION_F_CONNECT_FLAGS (115).
    pub connect_flags: ConnectFlags,
    /// Options not modelled here.
    pub extra: ExtraOptions<'a>,
}

impl Connect<'_> {
    const MODELED: WideCodeSet = WideCodeSet::of(&[115, 121, 122, 127, 128, 130]);
}

impl<'a> Body<'a> for Connect<'a> {
    fn parse_payload(
        xid: u32,
        sent_time: u32,
        payload: &'a [u8],
        base: usize,
    ) -> Result<Self, DecodeError> {
        let (mut pv, mut mclt, mut ka, mut mud, mut flags, mut name) =
            (None, None, None, None, None, None);
        scan(payload, base, Level::TOP, |o| {
            match o.code {
                127 => pv = Some(version(o.data)),
                122 => mclt = Some(be32(o.data)),
                128 => ka = Some(be32(o.data)),
                121 => mud = Some(be32(o.data)),
                115 => flags = Some(ConnectFlags(be16(o.data))),
                130 => name = Some(Text(o.data)),
                _ => {}
            }
            Ok(())
        })?;
        Ok(Connect {
            xid,
            sent_time,
            protocol_version: require(pv, 127, base)?,
            mclt: require(mclt, 122, base)?,
            keepalive_time: require(ka, 128, base)?,
            max_unacked_bndupd: require(mud, 121, base)?,
            connect_flags: require(flags, 115, base)?,
            relationship_name: name,
            extra: ExtraOptions::from_wire_wide(payload, base, &Self::MODELED),
        })
    }

    fn payload_len(&self) -> usize {
        8 + 8 + 8 + 8 + opt_len(self.relationship_name.map(|t| t.0)) + 6 + self.extra.wire_len()
    }

    fn emit_payload(&self, w: &mut OptionWriter<'_>) -> Result<(), EncodeError> {
        put_version(w, self.protocol_version)?;
        w.put_u32(122, self.mclt)?;
        w.put_u32(128, self.keepalive_time)?;
        w.put_u32(121, self.max_unacked_bndupd)?;
        put_opt(w, 130, self.relationship_name.map(|t| t.0))?;
        w.put_u16(115, self.connect_flags.0)?;
        self.extra.write(w)
    }
}
message_api!(Connect);

/// CONNECTREPLY (§5.3.9, §6.1.2): the secondary accepts or rejects a CONNECT (with its
/// transaction-id).
///
/// It rejects with a top-level OPTION_STATUS_CODE holding an error; one without (or with
/// Success) accepts, and then must carry the five options CONNECT must.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ConnectReply<'a> {
    /// transaction-id (the CONNECT's).
    pub xid: u32,
    /// sent-time.
    pub sent_time: u32,
    /// OPTION_STATUS_CODE (13): an error rejects the CONNECT.
    pub status: Option<StatusCode<'a>>,
    /// OPTION_F_PROTOCOL_VERSION (127): the secondary's.
    pub protocol_version: Option<ProtocolVersion>,
    /// OPTION_F_MCLT (122): the CONNECT's.
    pub mclt: Option<u32>,
    /// OPTION_F_KEEPALIVE_TIME (128).
    pub keepalive_time: Option<u32>,
    /// OPTION_F_MAX_UNACKED_BNDUPD (121).
    pub max_unacked_bndupd: Option<u32>,
    /// OPTION_F_CONNECT_FLAGS (115).
    pub connect_flags: Option<ConnectFlags>,
    /// Options not modelled here.
    pub extra: ExtraOptions<'a>,
}

impl ConnectReply<'_> {
    const MODELED: WideCodeSet = WideCodeSet::of(&[13, 115, 121, 122, 127, 128]);

    /// Whether the CONNECT was accepted: no status code, or Success (§6.1.3).
    pub fn is_accept(&self) -> bool {
        self.status.is_none_or(|s| !s.status.is_error())
    }
}

impl<'a> Body<'a> for ConnectReply<'a> {
    fn parse_payload(
        xid: u32,
        sent_time: u32,
        payload: &'a [u8],
        base: usize,
    ) -> Result<Self, DecodeError> {
        let mut r = ConnectReply {
            xid,
            sent_time,
            extra: ExtraOptions::from_wire_wide(payload, base, &Self::MODELED),
            ..ConnectReply::default()
        };
        scan(payload, base, Level::TOP, |o| {
            match o.code {
                13 => r.status = Some(StatusCode::from_data(o.data)),
                127 => r.protocol_version = Some(version(o.data)),
                122 => r.mclt = Some(be32(o.data)),
                128 => r.keepalive_time = Some(be32(o.data)),
                121 => r.max_unacked_bndupd = Some(be32(o.data)),
                115 => r.connect_flags = Some(ConnectFlags(be16(o.data))),
                _ => {}
            }
            Ok(())
        })?;
        if r.is_accept() {
            require(r.protocol_version, 127, base)?;
            require(r.mclt, 122, base)?;
            require(r.keepalive_time, 128, base)?;
            require(r.max_unacked_bndupd, 121, base)?;
            require(r.connect_flags, 115, base)?;
        }
        Ok(r)
    }

    fn payload_len(&self) -> usize {
        status_len(&self.status)
            + self.protocol_version.map_or(0, |_| 8)
            + self.mclt.map_or(0, |_| 8)
            + self.keepalive_time.map_or(0, |_| 8)
            + self.max_unacked_bndupd.map_or(0, |_| 8)
            + self.connect_flags.map_or(0, |_| 6)
            + self.extra.wire_len()
    }

    fn emit_payload(&self, w: &mut OptionWriter<'_>) -> Result<(), EncodeError> {
        put_status(w, &self.status)?;
        if let Some(v) = self.protocol_version {
            put_version(w, v)?;
        }
        put_opt_u32(w, 122, self.mclt)?;
        put_opt_u32(w, 128, self.keepalive_time)?;
        put_opt_u32(w, 121, self.max_unacked_bndupd)?;
        if let Some(f) = self.connect_flags {
            w.put_u16(115, f.0)?;
        }
        self.extra.write(w)
    }
}
message_api!(ConnectReply);

/// DISCONNECT (§5.3.10): the sender closes the connection; SHOULD say why with
/// OPTION_STATUS_CODE (often ServerShuttingDown).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Disconnect<'a> {
    /// transaction-id.
    pub xid: u32,
    /// sent-time.
    pub sent_time: u32,
    /// OPTION_STATUS_CODE (13).
    pub status: Option<StatusCode<'a>>,
    /// Options not modelled here.
    pub extra: ExtraOptions<'a>,
}

impl<'a> Body<'a> for Disconnect<'a> {
    fn parse_payload(
        xid: u32,
        sent_time: u32,
        payload: &'a [u8],
        base: usize,
    ) -> Result<Self, DecodeError> {
        let mut status = None;
        scan(payload, base, Level::TOP, |o| {
            if o.code == 13 {
                status = Some(StatusCode::from_data(o.data));
            }
            Ok(())
        })?;
        Ok(Disconnect {
            xid,
            sent_time,
            status,
            extra: ExtraOptions::from_wire_wide(payload, base, &const { WideCodeSet::of(&[13]) }),
        })
    }

    fn payload_len(&self) -> usize {
        status_len(&self.status) + self.extra.wire_len()
    }

    fn emit_payload(&self, w: &mut OptionWriter<'_>) -> Result<(), EncodeError> {
        put_status(w, &self.status)?;
        self.extra.write(w)
    }
}
message_api!(Disconnect);

/// STATE (§5.3.11, §6.3): the sender's endpoint state.
///
/// OPTION_F_SERVER_STATE, OPTION_F_SERVER_FLAGS and OPTION_F_START_TIME_OF_STATE are
/// required; OPTION_F_PARTNER_DOWN_TIME comes with PARTNER-DOWN only (not enforced here).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct State<'a> {
    /// transaction-id.
    pub xid: u32,
    /// sent-time.
    pub sent_time: u32,
    /// OPTION_F_SERVER_STATE (132): while in STARTUP, the previous state (§8.3.1).
    pub server_state: ServerState,
    /// OPTION_F_SERVER_FLAGS (131).
    pub server_flags: ServerFlags,
    /// OPTION_F_START_TIME_OF_STATE (133).
    pub start_time_of_state: u32,
    /// OPTION_F_PARTNER_DOWN_TIME (125).
    pub partner_down_time: Option<u32>,
    /// Options not modelled here.
    pub extra: ExtraOptions<'a>,
}

impl<'a> Body<'a> for State<'a> {
    fn parse_payload(
        xid: u32,
        sent_time: u32,
        payload: &'a [u8],
        base: usize,
    ) -> Result<Self, DecodeError> {
        let (mut state, mut flags, mut stos, mut pdt) = (None, None, None, None);
        scan(payload, base, Level::TOP, |o| {
            match o.code {
                132 => state = Some(ServerState::from(byte(o.data))),
                131 => flags = Some(ServerFlags(byte(o.data))),
                133 => stos = Some(be32(o.data)),
                125 => pdt = Some(be32(o.data)),
                _ => {}
            }
            Ok(())
        })?;
        Ok(State {
            xid,
            sent_time,
            server_state: require(state, 132, base)?,
            server_flags: require(flags, 131, base)?,
            start_time_of_state: require(stos, 133, base)?,
            partner_down_time: pdt,
            extra: ExtraOptions::from_wire_wide(
                payload,
                base,
                &const { WideCodeSet::of(&[125, 131, 132, 133]) },
            ),
        })
    }

    fn payload_len(&self) -> usize {
        5 + 5 + 8 + self.partner_down_time.map_or(0, |_| 8) + self.extra.wire_len()
    }

    fn emit_payload(&self, w: &mut OptionWriter<'_>) -> Result<(), EncodeError> {
        w.put_u8(132, self.server_state.into())?;
        w.put_u8(131, self.server_flags.0)?;
        w.put_u32(133, self.start_time_of_state)?;
        put_opt_u32(w, 125, self.partner_down_time)?;
        self.extra.write(w)
    }
}
message_api!(State);

/// Parses the payload of a BNDUPD/BNDREPLY: exactly one binding, other options kept.
fn parse_binding<'a>(
    payload: &'a [u8],
    base: usize,
    update: bool,
) -> Result<(Binding<'a>, ExtraOptions<'a>), DecodeError> {
    scan(payload, base, Level::BINDING, |_| Ok(()))?;
    let binding = Binding::parse(payload, base, update)?;
    Ok((
        binding,
        ExtraOptions::from_wire_wide(payload, base, &const { WideCodeSet::of(&[26, 45]) }),
    ))
}

/// Defines a message that carries one binding (BNDUPD, BNDREPLY); `update` says whether the
/// binding is read with an update's rules (see [`Binding`]).
macro_rules! binding_message {
    (
        $(#[$meta:meta])*
        pub struct $name:ident<'a> {
            $(#[$xid_meta:meta])* xid,
            $(#[$binding_meta:meta])* binding,
        }
        update: $update:expr;
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[cfg_attr(feature = "defmt", derive(defmt::Format))]
        pub struct $name<'a> {
            $(#[$xid_meta])*
            pub xid: u32,
            /// sent-time.
            pub sent_time: u32,
            $(#[$binding_meta])*
            pub binding: Binding<'a>,
            /// Other top-level options.
            pub extra: ExtraOptions<'a>,
        }

        impl<'a> Body<'a> for $name<'a> {
            fn parse_payload(
                xid: u32,
                sent_time: u32,
                payload: &'a [u8],
                base: usize,
            ) -> Result<Self, DecodeError> {
                let (binding, extra) = parse_binding(payload, base, $update)?;
                Ok($name {
                    xid,
                    sent_time,
                    binding,
                    extra,
                })
            }

            fn payload_len(&self) -> usize {
                self.binding.wire_len() + self.extra.wire_len()
            }

            fn emit_payload(&self, w: &mut OptionWriter<'_>) -> Result<(), EncodeError> {
                self.binding.write(w)?;
                self.extra.write(w)
            }
        }

        message_api!($name);
    };
}

binding_message! {
    /// BNDUPD (§5.3.1, §7.4): one binding: a client's OPTION_CLIENT_DATA, or one delegable
    /// prefix as a top-level OPTION_IAPREFIX.
    pub struct BndUpd<'a> {
        /// transaction-id; the BNDREPLY echoes it.
        xid,
        /// The binding.
        binding,
    }
    update: true;
}

binding_message! {
    /// BNDREPLY (§5.3.2, §7.6): the answer to one BNDUPD, with its transaction-id: the
    /// OPTION_CLIENT_DATA or OPTION_IAPREFIX, with an OPTION_STATUS_CODE at the level a
    /// rejection concerns.
    pub struct BndReply<'a> {
        /// transaction-id (the BNDUPD's).
        xid,
        /// The acknowledged binding.
        binding,
    }
    update: false;
}

/// A DHCPv6 message of a type outside 24..=35 on the failover connection (STARTTLS, its
/// REPLY, or anything else), read with the plain DHCPv6 header: no sent-time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct OtherMessage<'a> {
    /// The message type.
    pub msg_type: MessageType,
    /// transaction-id.
    pub xid: u32,
    /// Its options, uninterpreted (TLV structure and known lengths checked).
    pub options: ExtraOptions<'a>,
}

impl<'a> OtherMessage<'a> {
    /// STARTTLS (23, no options): the first message of a secure-mode connection, from the
    /// primary, before CONNECT (§6.1, RFC 7653 §8.2).
    ///
    /// ```
    /// use failover_proto::v6::OtherMessage;
    /// let mut out = [0u8; 8];
    /// let n = OtherMessage::start_tls(0x0a0b0c).emit(&mut out)?;
    /// assert_eq!(&out[..n], &[0x00, 0x04, 23, 0x0a, 0x0b, 0x0c]);
    /// # Ok::<(), failover_proto::EncodeError>(())
    /// ```
    pub const fn start_tls(xid: u32) -> OtherMessage<'static> {
        OtherMessage {
            msg_type: MessageType::StartTls,
            xid,
            options: ExtraOptions::EMPTY,
        }
    }

    /// The REPLY (7) to a STARTTLS with `xid` (RFC 7653 §8.2): without options, it agrees to
    /// TLS; with `refused` it carries OPTION_STATUS_CODE TLSConnectionRefused, as a server in
    /// insecure mode answers. Written into `out`; returns its length.
    ///
    /// ```
    /// use failover_proto::v6::{OtherMessage, Repr, Status};
    /// let mut out = [0u8; 16];
    /// let n = OtherMessage::emit_start_tls_reply(9, true, &mut out)?;
    /// let Repr::Other(reply) = Repr::parse(&out[..n])? else { unreachable!() };
    /// assert_eq!(reply.status_code().map(|s| s.status), Some(Status::TlsConnectionRefused));
    /// let n = OtherMessage::emit_start_tls_reply(9, false, &mut out)?;
    /// let Repr::Other(reply) = Repr::parse(&out[..n])? else { unreachable!() };
    /// assert_eq!(reply.status_code(), None);
    /// # Ok::<(), Box<dyn core::error::Error>>(())
    /// ```
    pub fn emit_start_tls_reply(
        xid: u32,
        refused: bool,
        out: &mut [u8],
    ) -> Result<usize, EncodeError> {
        let [hi, lo] = u16::from(Status::TlsConnectionRefused).to_be_bytes();
        let [c1, c2] = u16::from(OptionCode::StatusCode).to_be_bytes();
        let status = [c1, c2, 0, 2, hi, lo];
        OtherMessage {
            msg_type: MessageType::Reply,
            xid,
            options: if refused {
                ExtraOptions::from_encoded(&status)
            } else {
                ExtraOptions::EMPTY
            },
        }
        .emit(out)
    }

    /// The message's OPTION_STATUS_CODE (13), if it carries one: what a REPLY to STARTTLS
    /// says (RFC 7653 §8.2).
    pub fn status_code(&self) -> Option<StatusCode<'a>> {
        let code = u16::from(OptionCode::StatusCode);
        self.options
            .iter()
            .find(|o| o.code == code)
            .map(|o| StatusCode::from_data(o.data))
    }

    /// Bytes the encoded message takes, with its message-size field.
    pub fn buffer_len(&self) -> usize {
        PLAIN_HEADER_LEN + self.options.wire_len()
    }

    /// Encodes the message into the start of `out`; returns its length.
    pub fn emit(&self, out: &mut [u8]) -> Result<usize, EncodeError> {
        emit_with(out, self.msg_type, self.xid, None, self.buffer_len(), |w| {
            self.options.write(w)
        })
    }
}

repr_enum! {
    $;
    /// Any message of a failover connection, typed.
    ///
    /// ```
    /// use failover_proto::v6::{MessageType, Repr};
    /// // The digest's STATE: NORMAL, flags C, started 100 s before 2024-01-01.
    /// let bytes = [
    ///     0x00, 0x1a, 0x22, 0x00, 0x00, 0x02, 0x2d, 0x24, 0xbd, 0x00, 0x00, 0x84, 0x00, 0x01,
    ///     0x02, 0x00, 0x83, 0x00, 0x01, 0x01, 0x00, 0x85, 0x00, 0x04, 0x2d, 0x24, 0xbc, 0x9c,
    /// ];
    /// let repr = Repr::parse(&bytes)?;
    /// assert_eq!(repr.message_type(), MessageType::State);
    /// assert_eq!(repr.xid(), 2);
    /// let mut out = [0u8; 28];
    /// assert_eq!(repr.emit(&mut out)?, 28);
    /// assert_eq!(out, bytes);
    /// # Ok::<(), Box<dyn core::error::Error>>(())
    /// ```
    pub enum Repr<'a> {
        /// BNDUPD (24).
        BndUpd,
        /// BNDREPLY (25).
        BndReply,
        /// POOLREQ (26).
        PoolReq,
        /// POOLRESP (27).
        PoolResp,
        /// UPDREQ (28).
        UpdReq,
        /// UPDREQALL (29).
        UpdReqAll,
        /// UPDDONE (30).
        UpdDone,
        /// CONNECT (31).
        Connect,
        /// CONNECTREPLY (32).
        ConnectReply,
        /// DISCONNECT (33).
        Disconnect,
        /// STATE (34).
        State,
        /// CONTACT (35).
        Contact,
        ..
        /// Any other type (STARTTLS, REPLY, ...).
        Other(OtherMessage) => |o| o.msg_type,
    }
    fn parse_message(msg) {
        msg_type @ (MessageType::Reply | MessageType::StartTls | MessageType::Unknown(_)) => {
            let payload = payload_of(msg);
            scan_plain(payload, PLAIN_HEADER_LEN)?;
            Repr::Other(OtherMessage {
                msg_type,
                xid: msg.xid(),
                options: ExtraOptions::from_wire_wide(
                    payload,
                    PLAIN_HEADER_LEN,
                    &WideCodeSet::EMPTY,
                ),
            })
        }
    }
}

impl<'a> Repr<'a> {
    /// Decodes one whole framed message from `bytes` (which must hold at least its
    /// message-size field and the bytes it announces).
    pub fn parse(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        Self::parse_message(&Message::new_unchecked(bytes))
    }

    /// transaction-id.
    pub fn xid(&self) -> u32 {
        each!(self, m => m.xid, o => o.xid)
    }

    /// sent-time (0 for a type without one).
    pub fn sent_time(&self) -> u32 {
        each!(self, m => m.sent_time, _o => 0)
    }

    /// Bytes the encoded message takes, with its message-size field.
    pub fn buffer_len(&self) -> usize {
        each!(self, m => m.buffer_len(), o => o.buffer_len())
    }

    /// Encodes the message into the start of `out`; returns its length.
    pub fn emit(&self, out: &mut [u8]) -> Result<usize, EncodeError> {
        each!(self, m => m.emit(out), o => o.emit(out))
    }
}
