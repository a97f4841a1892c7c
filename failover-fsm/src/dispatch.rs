//! Which failover endpoint a connection serves when one listener (port 647) serves several
//! relationships.
//!
//! Draft §5.1: "the unique failover endpoint to which the message is directed is determined
//! solely by the IP address of the partner, the relationship-name, and the role of the
//! receiving server". §8.2: on an accepted connection only the partner's address is known; a
//! server with no relationship with that address drops the connection, one with secondary
//! relationships with it awaits the CONNECT "to determine which relationship this connection is
//! to serve". §7.8.2 step 5: a CONNECT naming no relationship configured with its sender is
//! answered with a CONNECTACK rejecting it with reason 8, "invalid failover partner".
//!
//! The rules are pure functions over the relationships a listener holds for one partner
//! address ([`Candidate`]s); the host does the I/O. When a partner address has exactly one
//! relationship, its connections go there unread, as they would to a listener of its own: the
//! engine itself then checks the CONNECT (its name included, [`crate::Engine::handle_message`]).
//!
//! ```
//! use failover_fsm::dispatch::{Candidate, OnAccept, Route, on_accept, on_first_message};
//! use failover_fsm::Role;
//!
//! let here = [
//!     Candidate { name: b"pool-a", role: Role::Secondary },
//!     Candidate { name: b"pool-b", role: Role::Secondary },
//! ];
//! assert_eq!(on_accept(&here), OnAccept::AwaitConnect);
//! // A CONNECT that is not whole yet, or not a CONNECT at all: closed.
//! assert_eq!(on_first_message(&here, &[0, 12, 11, 12, 0, 0, 0, 0, 0, 0, 0, 1]), Route::Close);
//! ```

use failover_proto::{ConnectAck, EncodeError, PROTOCOL_VERSION, RejectReason, Repr, Text};

use crate::Role;
use crate::time::UnixTime;

/// One relationship a listener holds for a partner address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate<'a> {
    /// Its relationship name (option 22).
    pub name: &'a [u8],
    /// Our role in it.
    pub role: Role,
}

/// What to do with a connection as soon as it is accepted, from the relationships configured
/// with its source address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnAccept {
    /// No relationship with that address: drop it unread (§8.2).
    Refuse,
    /// The address alone tells: hand it to this relationship unread.
    Relationship(usize),
    /// Several relationships with that address: read the first message, a CONNECT naming one
    /// of them (§8.2), then [`on_first_message`].
    AwaitConnect,
}

/// Where a connection goes once its first message is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// To this relationship, with the message (its engine checks the rest of the CONNECT,
    /// the role included, and its digest).
    Relationship(usize),
    /// A CONNECT naming none of them: answer with [`emit_refusal`] (reason 8, §7.8.2 step 5),
    /// then close.
    Refuse {
        /// The CONNECT's xid, which the CONNECTACK carries.
        xid: u32,
    },
    /// Not a (well-formed) CONNECT: no relationship can be told, nothing to answer to; close.
    Close,
}

/// [`OnAccept`] for a connection from an address with these relationships.
pub fn on_accept(candidates: &[Candidate<'_>]) -> OnAccept {
    match candidates.len() {
        0 => OnAccept::Refuse,
        1 => OnAccept::Relationship(0),
        _ => OnAccept::AwaitConnect,
    }
}

/// [`Route`] for the first whole message (`msg`, as framed) of a connection whose address has
/// these relationships: by the relationship-name of its CONNECT.
pub fn on_first_message(candidates: &[Candidate<'_>], msg: &[u8]) -> Route {
    match Repr::parse(msg) {
        Ok(Repr::Connect(c)) => candidates
            .iter()
            .position(|k| k.name == c.relationship_name.0)
            .map_or(Route::Refuse { xid: c.xid }, Route::Relationship),
        _ => Route::Close,
    }
}

/// The relationships to connect now after a connection from their partner's address said
/// nothing: a secondary's stimulus (§8.2: "it should initiate a connection of its own ... one
/// for each primary relationship it has with that server"), the ones where we are primary.
pub fn on_silence<'c>(candidates: &'c [Candidate<'_>]) -> impl Iterator<Item = usize> + 'c {
    candidates
        .iter()
        .enumerate()
        .filter(|(_, k)| k.role == Role::Primary)
        .map(|(i, _)| i)
}

/// The CONNECTACK for [`Route::Refuse`]: reject reason 8 (invalid failover partner, §7.8.2
/// step 5), echoing the CONNECT's `xid` and the relationship `name` it asked for, at our
/// `wall` clock. Writes it into `buf` and returns its length.
pub fn emit_refusal(
    xid: u32,
    name: &[u8],
    wall: UnixTime,
    buf: &mut [u8],
) -> Result<usize, EncodeError> {
    let reason = RejectReason::InvalidPartner;
    ConnectAck {
        time: wall.0,
        xid,
        relationship_name: Some(Text(name)),
        protocol_version: PROTOCOL_VERSION,
        reject_reason: Some(reason),
        message: Some(Text(reason.description().as_bytes())),
        ..ConnectAck::default()
    }
    .emit(buf)
}

/// The relationship-name of a CONNECT, for [`emit_refusal`] (`None` if `msg` is no CONNECT).
pub fn connect_name(msg: &[u8]) -> Option<&[u8]> {
    match Repr::parse(msg) {
        Ok(Repr::Connect(c)) => Some(c.relationship_name.0),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
    use super::*;
    use failover_proto::{Connect, Hba};

    fn connect(name: &[u8], xid: u32) -> ([u8; 256], usize) {
        let mut buf = [0u8; 256];
        let n = Connect {
            time: 1_000,
            xid,
            relationship_name: Text(name),
            max_unacked_bndupd: 10,
            receive_timer: 30,
            protocol_version: PROTOCOL_VERSION,
            mclt: 3600,
            hba: Hba::split(128),
            ..Connect::default()
        }
        .emit(&mut buf)
        .unwrap();
        (buf, n)
    }

    const TWO: [Candidate<'static>; 2] = [
        Candidate {
            name: b"a",
            role: Role::Secondary,
        },
        Candidate {
            name: b"b",
            role: Role::Primary,
        },
    ];

    #[test]
    fn accept_by_address() {
        assert_eq!(on_accept(&[]), OnAccept::Refuse);
        assert_eq!(on_accept(&TWO[..1]), OnAccept::Relationship(0));
        assert_eq!(on_accept(&TWO), OnAccept::AwaitConnect);
    }

    #[test]
    fn route_by_name() {
        let (b, n) = connect(b"b", 7);
        assert_eq!(on_first_message(&TWO, &b[..n]), Route::Relationship(1));
        let (b, n) = connect(b"c", 9);
        assert_eq!(on_first_message(&TWO, &b[..n]), Route::Refuse { xid: 9 });
        assert_eq!(connect_name(&b[..n]), Some(&b"c"[..]));
        // Cut short, or garbage: closed.
        assert_eq!(on_first_message(&TWO, &b[..n - 1]), Route::Close);
        assert_eq!(on_first_message(&TWO, &[0xff; 3]), Route::Close);
    }

    #[test]
    fn silence_stimulates_the_primaries() {
        let mut it = on_silence(&TWO);
        assert_eq!((it.next(), it.next()), (Some(1), None));
    }

    #[test]
    fn the_refusal_is_a_connectack_with_reason_8() {
        let mut buf = [0u8; 256];
        let n = emit_refusal(9, b"c", UnixTime(5), &mut buf).unwrap();
        let Ok(Repr::ConnectAck(a)) = Repr::parse(&buf[..n]) else {
            panic!("not a CONNECTACK")
        };
        assert_eq!(a.xid, 9);
        assert_eq!(a.reject_reason, Some(RejectReason::InvalidPartner));
        assert_eq!(a.relationship_name, Some(Text(b"c")));
    }
}
