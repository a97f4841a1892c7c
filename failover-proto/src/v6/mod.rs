//! The DHCPv6 failover protocol of RFC 8156: the same sans-IO, allocation-free, panic-free
//! codec as draft-12's, for the DHCPv6 message format on TCP port 647. Section numbers
//! (§x.y) in this module are RFC 8156's unless another RFC is named.
//!
//! * [`Message`]: a checked view over one framed message: the 2-byte message-size (§5.1,
//!   RFC 5460 §5.1), msg-type, 24-bit transaction-id and, for types 24..=35, the sent-time
//!   (§5.2).
//! * [`Repr`] and one typed struct per message type 24..=35 ([`BndUpd`], [`Connect`], ...);
//!   other types (STARTTLS, its REPLY) as [`OtherMessage`]. `parse` borrows from the input,
//!   `emit` writes the message with its size field into a caller's buffer.
//! * [`Binding`]: the nesting of §7.4: [`ClientData`] (OPTION_CLIENT_DATA) holding [`Ia`]s
//!   (IA_NA, IA_TA, IA_PD) holding [`Lease`]s (IAADDR, IAPREFIX) with the failover options,
//!   or one clientless IAPREFIX. Children are lazily decoded [`List`]s.
//! * [`option`]: the option codes 114..=134 and the reused DHCPv6 ones, with their lengths.
//!   The TLV iterator, writer and [`ExtraOptions`](crate::ExtraOptions) are the draft-12
//!   codec's: both protocols use 2-byte codes and lengths.
//! * [`framer`]: messages out of a TCP byte stream, size-checked before the body is read.
//! * [`time`]: the wire's seconds since 2000 to and from Unix time.
//!
//! Options a struct does not model, at every level, are kept in its `extra` and re-encoded as
//! received. Errors are the crate's [`DecodeError`] with RFC 8156 kinds
//! ([`V6OptionLength`](crate::DecodeErrorKind::V6OptionLength),
//! [`V6MissingOption`](crate::DecodeErrorKind::V6MissingOption),
//! [`MisplacedOption`](crate::DecodeErrorKind::MisplacedOption), ...) and an offset from the
//! start of the framed message; [`status_for`] says which status code answers one.
//!
//! No-panic contract: no getter of [`Message`] panics, checked or not; `parse` returns an
//! error for every malformed input; `emit` into a buffer of `buffer_len()` bytes never fails
//! for a value `parse` returned.
//!
//! # Example
//!
//! ```
//! use core::net::Ipv6Addr;
//! use failover_proto::v6::{
//!     Binding, BindingStatus, BndUpd, ClientData, Ia, IaKind, Lease, Repr, time,
//! };
//!
//! let now = time::from_unix(1_704_067_200).unwrap(); // 2024-01-01T00:00:00Z
//! // An ACTIVE address in an IA_NA of client DUID-LL 00:03:00:01:02:00:5e:00:53:01.
//! let lease = Lease {
//!     binding_status: Some(BindingStatus::Active),
//!     start_time_of_state: Some(now),
//!     state_expiration_time: Some(now + 3600),
//!     partner_lifetime: Some(now + 1800 + 3600),
//!     expiration_time: Some(now + 3600),
//!     ..Lease::address(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x11), 1800, 3600)
//! };
//! let leases = [lease];
//! let ias = [Ia::new(IaKind::Na, 1, 900, 1440, &leases)];
//! let duid = [0x00, 0x03, 0x00, 0x01, 0x02, 0x00, 0x5e, 0x00, 0x53, 0x01];
//! let update = BndUpd {
//!     xid: 7,
//!     sent_time: now,
//!     binding: Binding::Client(ClientData::new(&duid, now, &ias)),
//!     extra: Default::default(),
//! };
//! let mut buf = [0u8; 256];
//! let n = update.emit(&mut buf)?;
//! assert_eq!(n, update.buffer_len());
//!
//! // Decoding gives the same update back; the lease is decoded lazily from the bytes.
//! let Repr::BndUpd(got) = Repr::parse(&buf[..n])? else { unreachable!() };
//! assert_eq!(got, update);
//! let Binding::Client(client) = got.binding else { unreachable!() };
//! let ia = client.ias.first().unwrap();
//! assert_eq!(ia.leases.first().unwrap().binding_status, Some(BindingStatus::Active));
//!
//! // Re-encoding what was parsed gives the same bytes.
//! let mut again = [0u8; 256];
//! let m = got.emit(&mut again)?;
//! assert_eq!(&again[..m], &buf[..n]);
//! # Ok::<(), Box<dyn core::error::Error>>(())
//! ```

pub mod binding;
pub mod framer;
pub mod header;
pub mod option;
pub mod repr;
pub mod time;
pub mod value;

pub use binding::{
    Binding, ClientData, DnsRemovalInfo, Element, Ia, IaKind, Lease, LeaseAddr, List, ListIter,
};
pub use framer::Framer;
pub use header::{
    HEADER_LEN, MAX_FRAME_LEN, MAX_XID, MIN_FAILOVER_SIZE, MIN_SIZE, Message, MessageType,
    PLAIN_HEADER_LEN,
};
pub use option::OptionCode;
pub use repr::{
    BndReply, BndUpd, Connect, ConnectReply, Contact, Disconnect, OtherMessage, PoolReq, PoolResp,
    Repr, State, UpdDone, UpdReq, UpdReqAll,
};
pub use value::{
    BindingStatus, ConnectFlags, DnsFlags, ProtocolVersion, ReconfigureData, ServerFlags,
    ServerState, Status, StatusCode,
};

use crate::error::{DecodeError, DecodeErrorKind};

/// The failover port, as for draft-12 (§5.1).
pub const FAILOVER_PORT: u16 = 647;

/// The status code that answers a message that failed to decode with `err`: a binding
/// lacking required data or nested wrongly gets MissingBindingInformation (§5.6, §7.5.3); a
/// CONNECT without a protocol version NotSupported (§6.1.2); anything else UnspecFail.
pub fn status_for(err: &DecodeError) -> Status {
    match err.kind() {
        DecodeErrorKind::V6MissingOption { code: 127, .. } => Status::NotSupported,
        DecodeErrorKind::V6MissingOption {
            code: 45,
            parent: 0,
        }
        | DecodeErrorKind::MisplacedOption { .. } => Status::MissingBindingInformation,
        DecodeErrorKind::V6MissingOption { parent, .. } if parent != 0 => {
            Status::MissingBindingInformation
        }
        _ => Status::UnspecFail,
    }
}
