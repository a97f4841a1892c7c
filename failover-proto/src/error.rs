//! Typed decode and encode errors.

use core::fmt;

use crate::option::OptionCode;
use crate::value::RejectReason;

/// Why a message or a byte stream could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum DecodeErrorKind {
    /// The buffer ends before the bytes the header or an option announced.
    Truncated {
        /// Bytes needed from the start of the message (a message takes at most 65,537 bytes
        /// with its size field: four bytes hold it, and keep the error small).
        needed: u32,
    },
    /// The message-length field is outside 12..=2048 (§6.1).
    BadLength(u16),
    /// The payload-offset is neither 8 (read as 12) nor within `12..=length` (§6.1).
    BadPayloadOffset(u8),
    /// A message type in the mandatory range (0, 13..=127) that this codec does not know (§6.1):
    /// the connection must be closed.
    UnknownMessageType(u8),
    /// A typed parser was handed a message of another type.
    WrongMessageType {
        /// The type the parser decodes.
        expected: u8,
        /// The type in the header.
        found: u8,
    },
    /// An option's 4-byte header or its data runs past the end of the message.
    OptionOverrun {
        /// The option code (0 when even the code was cut off).
        code: u16,
    },
    /// A known option has a length its definition does not allow (§12).
    OptionLength {
        /// The option code.
        code: u16,
        /// The length on the wire.
        len: u16,
    },
    /// A known option appears twice in one message or binding transaction (§6.2).
    DuplicateOption(u16),
    /// The message-digest option (17) is followed by another option.
    DigestNotLast,
    /// An option the draft makes mandatory for this message is absent.
    MissingOption(OptionCode),
    /// A binding option (BNDUPD/BNDACK) appears before the first assigned-IP-address (§6.3).
    OptionOutsideBinding(u16),
    /// RFC 8156: a message-size field below 8, the smallest failover message (RFC 8156 §5.1,
    /// RFC 5460 §5.1). The stream cannot be framed further.
    SizeOutOfRange(u16),
    /// RFC 8156: a message larger than the framer's buffer (`len` bytes with the size field).
    FrameTooLarge {
        /// Bytes the message takes on the stream, with its 2-byte size field (at most 65,537).
        len: u32,
        /// Bytes the framer can hold (`u32::MAX` for more). `u32`, not `usize`: an error is
        /// returned by value on every failure path and stays within three words.
        capacity: u32,
    },
    /// RFC 8156: a known DHCPv6 option with a length its definition does not allow.
    V6OptionLength {
        /// The option code.
        code: u16,
        /// The length on the wire.
        len: u16,
    },
    /// RFC 8156: a DHCPv6 option that may appear once per level appears twice in one message,
    /// OPTION_CLIENT_DATA, IA or IAADDR/IAPREFIX.
    V6DuplicateOption(u16),
    /// RFC 8156: an option the RFC requires is absent.
    V6MissingOption {
        /// The missing option's code.
        code: u16,
        /// The option it is missing from (0: the message itself).
        parent: u16,
    },
    /// RFC 8156: a binding option nested where the RFC does not put it (an IAADDR outside an
    /// IA_NA/IA_TA, an IA outside OPTION_CLIENT_DATA, both a client and a prefix in a BNDUPD, ...).
    MisplacedOption {
        /// The option's code.
        code: u16,
        /// The option it appears in (0: the message itself).
        parent: u16,
    },
}

/// A decode failure: what went wrong and at which byte offset of the message or stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct DecodeError {
    kind: DecodeErrorKind,
    // Four bytes, as `needed`: the error is 16 bytes, and so is every event that carries one.
    offset: u32,
}

impl DecodeError {
    /// An error of `kind` found at `offset`.
    pub const fn new(kind: DecodeErrorKind, offset: usize) -> Self {
        let offset = if offset > u32::MAX as usize {
            u32::MAX
        } else {
            offset as u32
        };
        DecodeError { kind, offset }
    }

    /// What went wrong.
    pub const fn kind(&self) -> DecodeErrorKind {
        self.kind
    }

    /// Byte offset, from the start of the message, of the field at fault.
    pub const fn offset(&self) -> usize {
        self.offset as usize
    }

    /// Whether the TCP stream can no longer be framed after this error.
    ///
    /// A bad length field or a mandatory unknown message type leaves the receiver unable to
    /// trust the stream (§6.1): the connection must be closed. Everything else concerns one
    /// message, which is delimited by its length field, so the stream itself stays in sync.
    pub const fn is_fatal(&self) -> bool {
        matches!(
            self.kind,
            DecodeErrorKind::BadLength(_)
                | DecodeErrorKind::UnknownMessageType(_)
                | DecodeErrorKind::SizeOutOfRange(_)
                | DecodeErrorKind::FrameTooLarge { .. }
        )
    }

    /// The reject-reason (§12.21) a receiver answers this error with, in a CONNECTACK, a BNDACK
    /// or a DISCONNECT.
    ///
    /// Missing CONNECT options map to the reasons ISC dhcpd answers with (relationship-name → 8,
    /// HBA → 18, MCLT → 5, protocol-version → 14); missing binding data maps to 3 (§7.1.3).
    /// Anything else is "unknown error" (254).
    pub const fn reject_reason(&self) -> RejectReason {
        match self.kind {
            DecodeErrorKind::MissingOption(code) => match code {
                OptionCode::RelationshipName => RejectReason::InvalidPartner,
                OptionCode::HashBucketAssignment => RejectReason::HbaConflict,
                OptionCode::Mclt => RejectReason::InvalidMclt,
                OptionCode::ProtocolVersion => RejectReason::VersionMismatch,
                OptionCode::AssignedIpAddress
                | OptionCode::BindingStatus
                | OptionCode::ClientHardwareAddress
                | OptionCode::LeaseExpirationTime
                | OptionCode::PotentialExpirationTime => RejectReason::MissingBindingInformation,
                _ => RejectReason::UnknownError,
            },
            DecodeErrorKind::OptionLength { code: 11, .. } => RejectReason::HbaConflict,
            _ => RejectReason::UnknownError,
        }
    }
}

impl fmt::Display for DecodeErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            DecodeErrorKind::Truncated { needed } => {
                write!(f, "truncated: {needed} bytes needed")
            }
            DecodeErrorKind::BadLength(len) => {
                write!(f, "message length {len} outside 12..=2048")
            }
            DecodeErrorKind::BadPayloadOffset(p) => write!(f, "invalid payload offset {p}"),
            DecodeErrorKind::UnknownMessageType(t) => {
                write!(f, "unknown mandatory message type {t}")
            }
            DecodeErrorKind::WrongMessageType { expected, found } => {
                write!(f, "message type {found} where {expected} was expected")
            }
            DecodeErrorKind::OptionOverrun { code } => {
                write!(f, "option {code} runs past the end of the message")
            }
            DecodeErrorKind::OptionLength { code, len } => write!(
                f,
                "option {} ({}) has invalid length {len}",
                code,
                OptionCode::from(code).name()
            ),
            DecodeErrorKind::DuplicateOption(code) => write!(
                f,
                "duplicate option {} ({})",
                code,
                OptionCode::from(code).name()
            ),
            DecodeErrorKind::DigestNotLast => f.write_str("message-digest is not the last option"),
            DecodeErrorKind::MissingOption(code) => write!(
                f,
                "missing mandatory option {} ({})",
                u16::from(code),
                code.name()
            ),
            DecodeErrorKind::OptionOutsideBinding(code) => write!(
                f,
                "binding option {} ({}) before the first assigned-IP-address",
                code,
                OptionCode::from(code).name()
            ),
            DecodeErrorKind::SizeOutOfRange(size) => {
                write!(f, "message-size {size} below 8")
            }
            DecodeErrorKind::FrameTooLarge { len, capacity } => {
                write!(
                    f,
                    "message of {len} bytes exceeds the {capacity}-byte buffer"
                )
            }
            DecodeErrorKind::V6OptionLength { code, len } => write!(
                f,
                "option {} ({}) has invalid length {len}",
                code,
                crate::v6::OptionCode::from(code).name()
            ),
            DecodeErrorKind::V6DuplicateOption(code) => write!(
                f,
                "duplicate option {} ({})",
                code,
                crate::v6::OptionCode::from(code).name()
            ),
            DecodeErrorKind::V6MissingOption { code, parent } => write!(
                f,
                "missing option {} ({}) in {}",
                code,
                crate::v6::OptionCode::from(code).name(),
                crate::v6::option::parent_name(parent)
            ),
            DecodeErrorKind::MisplacedOption { code, parent } => write!(
                f,
                "option {} ({}) not allowed in {}",
                code,
                crate::v6::OptionCode::from(code).name(),
                crate::v6::option::parent_name(parent)
            ),
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at offset {}", self.kind, self.offset)
    }
}

impl core::error::Error for DecodeError {}

/// Why a message could not be encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum EncodeError {
    /// The output buffer is shorter than the message.
    BufferTooSmall {
        /// The exact number of bytes the message needs.
        required: usize,
    },
    /// The message would exceed the 2048-byte maximum (§6.1).
    MessageTooLong {
        /// The length it would have.
        len: usize,
    },
    /// A BNDUPD or BNDACK without any binding transaction.
    NoBinding,
    /// RFC 8156: the message would not fit the 16-bit message-size (65,535 bytes after the
    /// size field, RFC 5460 §5.1), or an option's data the 16-bit option-len.
    V6TooLong {
        /// The length it would have.
        len: usize,
    },
    /// RFC 8156: a transaction-id above 24 bits (§5.4).
    XidTooLarge(u32),
    /// RFC 8156: a binding option where the decoder refuses it (RFC 8415 §21.4, §21.21): an
    /// IAPREFIX in an IA_NA or IA_TA, an IAADDR in an IA_PD.
    V6MisplacedOption {
        /// The option's code.
        code: u16,
        /// The option it would be in.
        parent: u16,
    },
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            EncodeError::BufferTooSmall { required } => {
                write!(f, "output buffer too small: {required} bytes required")
            }
            EncodeError::MessageTooLong { len } => {
                write!(f, "message of {len} bytes exceeds the 2048-byte maximum")
            }
            EncodeError::NoBinding => f.write_str("binding message without any binding"),
            EncodeError::XidTooLarge(xid) => write!(f, "transaction-id {xid} exceeds 24 bits"),
            EncodeError::V6TooLong { len } => {
                write!(f, "{len} bytes exceed a 16-bit DHCPv6 length field")
            }
            EncodeError::V6MisplacedOption { code, parent } => write!(
                f,
                "option {} ({}) not allowed in {}",
                code,
                crate::v6::OptionCode::from(code).name(),
                crate::v6::option::parent_name(parent)
            ),
        }
    }
}

impl core::error::Error for EncodeError {}
