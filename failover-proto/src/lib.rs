//! A sans-IO, allocation-free codec for the DHCPv4 failover protocol of
//! draft-ietf-dhc-failover-12, as spoken on TCP port 647 by ISC dhcpd, Windows Server and others.
//!
//! * [`Message`]: a checked view over the bytes of one message (the 12-byte header of §6.1),
//!   the draft-12 layout of the [`view::View`] both protocols share.
//! * [`Repr`] and one typed struct per message type ([`Connect`], [`BndUpd`], ...): `parse`
//!   borrows from the input, `emit` writes into a caller's buffer. Re-encoding a message parsed
//!   from ISC dhcpd reproduces its bytes, because options are written in ISC's order.
//! * [`option`]: option codes, a lazy iterator and a writer; unknown and vendor options survive
//!   a decode/encode cycle in each message's `extra`.
//! * [`framer`]: messages out of a TCP byte stream, length-checked before the body is read.
//! * [`auth`]: the message-digest option over a shared secret (§11.1), with a replay rule;
//!   `HmacSha256` with the `hmac-sha256` feature.
//! * [`hash`]: the RFC 3074 load-balancing hash, with [`Hba`] for the bucket assignment.
//! * [`v6`]: the DHCPv6 failover protocol of RFC 8156 (messages 24..=35, options 114..=134,
//!   the binding nesting, the 2-byte size framing), in the same style.
//!
//! The crate is `#![no_std]`, never allocates, has no `unsafe`, and does not panic on any
//! input: every malformed message gives a [`DecodeError`] with its offset, and
//! [`DecodeError::reject_reason`] says what to answer the partner.
//!
//! # Example
//!
//! ```
//! use failover_proto::{BindingStatus, BndUpd, Connect, Hba, Repr, Text, TlsRequest};
//!
//! // A BNDUPD captured from ISC dhcpd 4.4.3: an ACTIVE lease with client-id and MAC.
//! let captured = [
//!     0x00, 0x4f, 0x03, 0x0c, 0x65, 0x53, 0xf1, 0x05, 0x00, 0x00, 0x00, 0x07, 0x00, 0x02,
//!     0x00, 0x04, 0xc0, 0x00, 0x02, 0x0a, 0x00, 0x03, 0x00, 0x01, 0x02, 0x00, 0x04, 0x00,
//!     0x07, 0x01, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x00, 0x05, 0x00, 0x07, 0x01, 0xaa,
//!     0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x00, 0x0d, 0x00, 0x04, 0x65, 0x53, 0xff, 0x10, 0x00,
//!     0x12, 0x00, 0x04, 0x65, 0x55, 0x57, 0x98, 0x00, 0x19, 0x00, 0x04, 0x65, 0x53, 0xf1,
//!     0x05, 0x00, 0x06, 0x00, 0x04, 0x65, 0x53, 0xf1, 0x05,
//! ];
//! let Repr::BndUpd(update) = Repr::parse(&captured)? else { unreachable!() };
//! let binding = update.bindings.first().unwrap();
//! assert_eq!(binding.address, core::net::Ipv4Addr::new(192, 0, 2, 10));
//! assert_eq!(binding.status, BindingStatus::Active);
//! assert_eq!(binding.hardware_address.unwrap().address, [0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff]);
//! assert_eq!(binding.potential_expiration_time, Some(1_700_091_800));
//!
//! // Re-encoding gives the captured bytes back.
//! let mut out = [0u8; 2048];
//! let n = update.emit(&mut out)?;
//! assert_eq!(&out[..n], &captured[..]);
//!
//! // A primary's CONNECT, ISC-style: HBA `split 128`, MCLT one hour.
//! let connect = Connect {
//!     time: 1_700_000_000,
//!     xid: 0,
//!     relationship_name: Text::from("dhcp-failover"),
//!     max_unacked_bndupd: 10,
//!     receive_timer: 60,
//!     vendor_class: Text::from("isc-4.4.3-P1"),
//!     protocol_version: 1,
//!     tls_request: Some(TlsRequest::NoTls),
//!     mclt: 3600,
//!     hba: Hba::split(128),
//!     ..Connect::default()
//! };
//! let n = connect.emit(&mut out)?;
//! assert_eq!(n, connect.buffer_len());
//! assert_eq!(n, 115);
//! assert_eq!(Connect::from_bytes(&out[..n])?, connect);
//! # Ok::<(), Box<dyn core::error::Error>>(())
//! ```
#![no_std]
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]
#![deny(clippy::indexing_slicing)]
#![warn(missing_docs)]

pub mod auth;
pub mod error;
pub mod framer;
pub mod hash;
pub mod header;
pub mod option;
pub mod repr;
pub mod v6;
pub mod value;
pub mod view;

pub use auth::{Authenticator, DigestError, MessageAuth};
#[cfg(feature = "hmac-sha256")]
pub use auth::{EmptySecret, HmacSha256};
pub use error::{DecodeError, DecodeErrorKind, EncodeError};
pub use framer::{FrameStatus, Framer, Frames};
pub use header::{
    FAILOVER_PORT, HEADER_LEN, MAX_MESSAGE_LEN, MIN_MESSAGE_LEN, Message, MessageType,
};
pub use option::{ExtraOptions, OptionCode, OptionWriter, Options, RawOption};
pub use repr::{
    Binding, BindingAck, BindingIter, BindingList, BndAck, BndUpd, Connect, ConnectAck, Contact,
    Disconnect, OptionalMessage, PoolReq, PoolResp, Repr, State, Transaction, UpdDone, UpdReq,
    UpdReqAll,
};
pub use value::{
    BindingStatus, Ddns, DdnsFlags, DigestType, HardwareAddress, Hba, HbaPolarity, IpFlags,
    MessageDigest, PROTOCOL_VERSION, RejectReason, Role, ServerFlags, ServerState, Text, TlsReply,
    TlsRequest,
};
