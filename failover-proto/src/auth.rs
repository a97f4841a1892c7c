//! Message authentication: the message-digest option (17, draft §11.1, §12.17) over a shared
//! secret, with a rule against replayed messages.
//!
//! * [`MessageAuth`] is the keyed digest a host plugs in (a `no_std` trait: an HSM, another
//!   algorithm); `HmacSha256` (feature `hmac-sha256`) is the reference implementation.
//! * [`Authenticator`] keeps one relationship's digest state: [`Authenticator::sign`] appends
//!   the option to an encoded message and fixes its length field,
//!   [`Authenticator::verify`] checks a received one. [`check_no_digest`] is the other side of
//!   §11.1: without a shared secret, a message carrying a digest is refused.
//! * [`DigestError`] says why a message was refused and which reject reason answers it.
//!
//! # The option
//!
//! `code 17 | len | type | digest`, the last option of the message (the codec's rule, as in the
//! §6.3 schematics; §11.1 and §12.17 say "first", a contradiction of the draft, D7 in the
//! spec notes). The digest covers the whole message as sent — header with its final length,
//! every option, the option's code, length and type — with the digest bytes zeroed, as §11.1
//! computes it, preceded by the replay context below. It is keyed with the secret as an HMAC
//! (RFC 2104), not "the message concatenated with the secret" (§11.1's wording, ambiguous).
//!
//! # The type byte
//!
//! §12.17 defines type 1 (HMAC-MD5) only and calls 0 and 2..=255 "not allowed", with no private
//! range; new types need IETF consensus (§13). HMAC-SHA256 has no draft value, so
//! [`HMAC_SHA256_TYPE`] is **254**, a value no implementation is known to send (Wireshark shows
//! 2 as "Microsoft-specific": Windows' HMAC-SHA256, whose key and coverage are unpublished, so
//! reusing 2 would fail against Windows as a bad digest instead of as an unknown type). §12.17
//! requires the type to be configurable: `HmacSha256::with_digest_type`.
//!
//! # Replay
//!
//! A digest alone lets anyone who recorded a message send it again. Two rules stop that:
//!
//! 1. **CONNECT is fresh** (§11.1: "If a CONNECT message is ever received containing that time
//!    or containing a time before that time, it MUST be rejected", and its xid rule): a CONNECT
//!    is refused unless its `(time, xid)` is greater than that of the last CONNECT accepted on
//!    this relationship, and its time is within the allowed clock skew of ours (§11.1: "when
//!    using a shared secret administrators MAY wish to configure a maximum allowable time
//!    skew"). The pair, not the time alone, so that a second CONNECT within one second (a quick
//!    reconnect) passes: our xids only grow.
//! 2. **Every other message is bound to its connection and its place in it.** The digest of a
//!    message covers, before the message, a context: the sender's role (0 primary, 1
//!    secondary), the number of messages that sender sent before it on this connection (u32,
//!    big-endian), the digest of the connection's CONNECT and that of its CONNECTACK (zeros
//!    until each is sent or received). A message recorded on another connection (another
//!    CONNECT or CONNECTACK), sent again on the same one (another count), reordered, or
//!    reflected back to its sender (another role) does not verify. This replaces §11.1's rule
//!    that every received xid exceed the previous one, which answers (CONNECTACK, BNDACK,
//!    UPDDONE) cannot keep: they echo the request's xid (D11).
//!
//! The CONNECTACK's digest is the secondary's part: its time (and what it says) is its own, so
//! a recorded primary side replayed to a secondary that lost its memory of the last CONNECT
//! (a restart; then only the clock-skew window bounds a replayed CONNECT) gets no further than
//! the CONNECT: what the primary sent after it was bound to another CONNECTACK. It relies on
//! the primary sending nothing between its CONNECT and the CONNECTACK (§7.8, §7.9; our engine
//! sends STATE only once the CONNECTACK is in) but DISCONNECT when it gives up.

use core::fmt;

use crate::EncodeError;
use crate::header::{HEADER_LEN, MAX_MESSAGE_LEN, Message, MessageType};
use crate::option::Options;
use crate::value::{RejectReason, Role};

/// The option code of message-digest.
const DIGEST_CODE: u16 = 17;
/// Code, length and type in front of the digest bytes.
const OPTION_HEAD: usize = 5;
/// Largest digest an [`Authenticator`] handles (SHA-256's 32 bytes).
pub const MAX_DIGEST_LEN: usize = 32;
/// The most bytes [`Authenticator::sign`] adds to a message.
pub const MAX_DIGEST_OPTION_LEN: usize = OPTION_HEAD + MAX_DIGEST_LEN;
/// The digest type we send for HMAC-SHA256: 254 (see the [module docs](self)).
pub const HMAC_SHA256_TYPE: u8 = 254;
/// Bytes of the replay context in front of the message: role, count, the digests of CONNECT
/// and CONNECTACK.
const CONTEXT_LEN: usize = 1 + 4 + 2 * MAX_DIGEST_LEN;

/// A keyed message digest over a shared secret, as the message-digest option carries it.
///
/// Implementations compute only; the [`Authenticator`] decides what is covered and compares
/// digests in constant time.
pub trait MessageAuth {
    /// The type byte of the option (§12.17).
    fn digest_type(&self) -> u8;
    /// Bytes of digest, at most [`MAX_DIGEST_LEN`].
    fn digest_len(&self) -> usize;
    /// Writes the digest of the concatenation of `parts` into `out`, which is
    /// [`MessageAuth::digest_len`] bytes long.
    fn compute(&self, parts: &[&[u8]], out: &mut [u8]);
}

impl<T: MessageAuth + ?Sized> MessageAuth for &T {
    fn digest_type(&self) -> u8 {
        (**self).digest_type()
    }
    fn digest_len(&self) -> usize {
        (**self).digest_len()
    }
    fn compute(&self, parts: &[&[u8]], out: &mut [u8]) {
        (**self).compute(parts, out)
    }
}

/// Why a received message failed authentication; the connection must be closed (§11.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum DigestError {
    /// No message-digest option, with a shared secret configured (reject reason 21).
    Missing,
    /// The digest does not match: altered, another secret, or a message replayed from another
    /// connection or another place in this one (reason 20).
    Bad,
    /// A digest of a type we do not use (reason 12).
    UnsupportedType(u8),
    /// message-digest is followed by another option (reason 20).
    NotLast,
    /// The options cannot be walked to find the digest (reason 20).
    Malformed,
    /// A digest without a shared secret configured (reason 13).
    NotConfigured,
    /// A CONNECT whose `(time, xid)` is not after the last one accepted: a replay (reason 4).
    ConnectReplayed {
        /// Its time.
        time: u32,
        /// The last accepted CONNECT's time.
        last: u32,
    },
    /// A CONNECT whose time is further from our clock than the allowed skew (reason 4).
    ConnectTime {
        /// Its time.
        time: u32,
        /// Our clock.
        now: u32,
    },
}

impl DigestError {
    /// The reject reason for the DISCONNECT that answers it.
    pub const fn reject_reason(&self) -> RejectReason {
        match self {
            DigestError::Missing => RejectReason::MissingDigest,
            DigestError::Bad | DigestError::NotLast | DigestError::Malformed => {
                RejectReason::DigestFailed
            }
            DigestError::UnsupportedType(_) => RejectReason::DigestNotSupported,
            DigestError::NotConfigured => RejectReason::DigestNotConfigured,
            DigestError::ConnectReplayed { .. } | DigestError::ConnectTime { .. } => {
                RejectReason::TimeMismatch
            }
        }
    }
}

impl fmt::Display for DigestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DigestError::Missing => f.write_str("message-digest missing"),
            DigestError::Bad => f.write_str("message-digest does not match"),
            DigestError::UnsupportedType(t) => write!(f, "message-digest of type {t}"),
            DigestError::NotLast => f.write_str("message-digest is not the last option"),
            DigestError::Malformed => f.write_str("options malformed around the message-digest"),
            DigestError::NotConfigured => {
                f.write_str("message-digest received, no shared secret configured")
            }
            DigestError::ConnectReplayed { time, last } => write!(
                f,
                "CONNECT of time {time} not after the last accepted one ({last}): replayed"
            ),
            DigestError::ConnectTime { time, now } => {
                write!(f, "CONNECT of time {time} too far from our clock ({now})")
            }
        }
    }
}

impl core::error::Error for DigestError {}

/// A message's digest option, found.
struct Found<'a> {
    /// Where the option starts.
    at: usize,
    kind: u8,
    digest: &'a [u8],
}

/// The message's digest option, if it has one (as its last option).
fn find_digest(msg: &[u8]) -> Result<Option<Found<'_>>, DigestError> {
    let view = Message::new_unchecked(msg);
    if view.check_len().is_err() {
        return Err(DigestError::Malformed);
    }
    let start = view.options_start();
    let payload = msg
        .get(start..usize::from(view.length()))
        .ok_or(DigestError::Malformed)?;
    let mut found = None;
    for opt in Options::new(payload, start) {
        let opt = opt.map_err(|_| DigestError::Malformed)?;
        if found.is_some() {
            return Err(DigestError::NotLast);
        }
        if opt.code == DIGEST_CODE {
            let (&kind, digest) = opt.data.split_first().ok_or(DigestError::Malformed)?;
            found = Some(Found {
                at: opt.offset,
                kind,
                digest,
            });
        }
    }
    Ok(found)
}

/// Without a shared secret: a message carrying message-digest is refused (§11.1, reason 13).
pub fn check_no_digest(msg: &[u8]) -> Result<(), DigestError> {
    match find_digest(msg) {
        Ok(None) => Ok(()),
        Ok(Some(_)) | Err(DigestError::NotLast) => Err(DigestError::NotConfigured),
        // Not ours to judge: the engine refuses malformed messages itself.
        Err(_) => Ok(()),
    }
}

/// Compares without an early exit, so that the time taken does not say how many leading
/// bytes of a forged digest were right.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    core::hint::black_box(diff) == 0
}

/// One relationship's message authentication: the secret (in `A`), the replay state of the
/// current connection, and the last CONNECT accepted.
///
/// Call [`Authenticator::connection_up`] for each new connection, [`Authenticator::sign`] on
/// every message sent, in order, and [`Authenticator::verify`] on every message received, in
/// order, before anything else looks at it.
#[derive(Debug, Clone)]
pub struct Authenticator<A> {
    auth: A,
    role: Role,
    max_skew: u32,
    last_connect: Option<(u32, u32)>,
    sent: u32,
    received: u32,
    /// The digests of this connection's CONNECT and CONNECTACK (zeros until each is seen).
    handshake: [u8; 2 * MAX_DIGEST_LEN],
}

impl<A: MessageAuth> Authenticator<A> {
    /// Authentication with `auth` for a server in `role`, accepting a CONNECT whose time is at
    /// most `max_skew` seconds from ours.
    pub fn new(auth: A, role: Role, max_skew: u32) -> Self {
        Authenticator {
            auth,
            role,
            max_skew,
            last_connect: None,
            sent: 0,
            received: 0,
            handshake: [0; 2 * MAX_DIGEST_LEN],
        }
    }

    /// The digest in use.
    pub fn auth(&self) -> &A {
        &self.auth
    }

    /// Bytes [`Authenticator::sign`] adds to every message.
    pub fn overhead(&self) -> usize {
        OPTION_HEAD + self.digest_len()
    }

    fn digest_len(&self) -> usize {
        self.auth.digest_len().min(MAX_DIGEST_LEN)
    }

    /// A new connection: the message counts start again, no CONNECT yet.
    pub fn connection_up(&mut self) {
        self.sent = 0;
        self.received = 0;
        self.handshake = [0; 2 * MAX_DIGEST_LEN];
    }

    fn context(&self, sender: Role, count: u32) -> [u8; CONTEXT_LEN] {
        let mut ctx = [0u8; CONTEXT_LEN];
        let (head, digest) = ctx.split_at_mut(5);
        let (role, n) = head.split_at_mut(1);
        role.copy_from_slice(&[u8::from(sender == Role::Secondary)]);
        n.copy_from_slice(&count.to_be_bytes());
        digest.copy_from_slice(&self.handshake);
        ctx
    }

    /// Appends message-digest to the message in `buf[..len]` (encoded, its length field
    /// `len`), sets the length field, and returns the new length. Messages must be signed in
    /// the order they are sent.
    pub fn sign(&mut self, buf: &mut [u8], len: usize) -> Result<usize, EncodeError> {
        let dlen = self.digest_len();
        let total = len + OPTION_HEAD + dlen;
        let required = total.max(HEADER_LEN);
        if len < HEADER_LEN || total > MAX_MESSAGE_LEN || buf.len() < total {
            return Err(EncodeError::BufferTooSmall { required });
        }
        let (msg, rest) = buf.split_at_mut(len + OPTION_HEAD);
        let Some(head) = msg.get_mut(len..) else {
            return Err(EncodeError::BufferTooSmall { required });
        };
        let [c0, c1] = DIGEST_CODE.to_be_bytes();
        let [l0, l1] = ((1 + dlen) as u16).to_be_bytes();
        head.copy_from_slice(&[c0, c1, l0, l1, self.auth.digest_type()]);
        let mut view = Message::new_unchecked(&mut *msg);
        view.set_length(total as u16);
        let kind = view.msg_type();
        let ctx = self.context(self.role, self.sent);
        let zeros = [0u8; MAX_DIGEST_LEN];
        let mut digest = [0u8; MAX_DIGEST_LEN];
        let (digest, zeros) = (
            digest.get_mut(..dlen).unwrap_or_default(),
            zeros.get(..dlen).unwrap_or_default(),
        );
        self.auth.compute(&[ctx.as_slice(), &*msg, zeros], digest);
        if let Some(out) = rest.get_mut(..dlen) {
            out.copy_from_slice(digest);
        }
        self.bind_handshake(kind, digest);
        self.sent = self.sent.wrapping_add(1);
        Ok(total)
    }

    /// A CONNECT or CONNECTACK sent or received: what follows on this connection is bound to
    /// its digest.
    fn bind_handshake(&mut self, kind: MessageType, digest: &[u8]) {
        let (connect, ack) = self.handshake.split_at_mut(MAX_DIGEST_LEN);
        let slot = match kind {
            MessageType::Connect => {
                // A new handshake: no CONNECTACK for it yet.
                ack.fill(0);
                connect
            }
            MessageType::ConnectAck => ack,
            _ => return,
        };
        slot.fill(0);
        if let Some(d) = slot.get_mut(..digest.len()) {
            d.copy_from_slice(digest);
        }
    }

    /// Checks the digest of a received, framed message, with our wall clock `now` (Unix
    /// seconds) for a CONNECT's time. `Ok` means the message may go to the engine; after an
    /// error the connection must be closed.
    pub fn verify(&mut self, msg: &[u8], now: u32) -> Result<(), DigestError> {
        let Found { at, kind, digest } = find_digest(msg)?.ok_or(DigestError::Missing)?;
        if kind != self.auth.digest_type() {
            return Err(DigestError::UnsupportedType(kind));
        }
        let dlen = self.digest_len();
        if digest.len() != dlen {
            return Err(DigestError::Bad);
        }
        let sender = match self.role {
            Role::Primary => Role::Secondary,
            Role::Secondary => Role::Primary,
        };
        let covered = msg.get(..at + OPTION_HEAD).ok_or(DigestError::Malformed)?;
        let ctx = self.context(sender, self.received);
        let zeros = [0u8; MAX_DIGEST_LEN];
        let mut expected = [0u8; MAX_DIGEST_LEN];
        let expected = expected.get_mut(..dlen).unwrap_or_default();
        self.auth.compute(
            &[
                ctx.as_slice(),
                covered,
                zeros.get(..dlen).unwrap_or_default(),
            ],
            expected,
        );
        if !ct_eq(expected, digest) {
            return Err(DigestError::Bad);
        }
        let view = Message::new_unchecked(msg);
        if view.msg_type() == MessageType::Connect {
            self.fresh_connect(view.time(), view.xid(), now)?;
        }
        self.bind_handshake(view.msg_type(), digest);
        self.received = self.received.wrapping_add(1);
        Ok(())
    }

    /// §11.1's CONNECT rule: after the last accepted one, and within the clock skew.
    fn fresh_connect(&mut self, time: u32, xid: u32, now: u32) -> Result<(), DigestError> {
        if let Some((last, last_xid)) = self.last_connect
            && (time, xid) <= (last, last_xid)
        {
            return Err(DigestError::ConnectReplayed { time, last });
        }
        if time.abs_diff(now) > self.max_skew {
            return Err(DigestError::ConnectTime { time, now });
        }
        self.last_connect = Some((time, xid));
        Ok(())
    }
}

#[cfg(feature = "hmac-sha256")]
pub use hmac_sha256::{EmptySecret, HmacSha256};

#[cfg(feature = "hmac-sha256")]
mod hmac_sha256 {
    use core::fmt;

    use hmac::{Hmac, Mac};
    use sha2::Sha256;

    use super::{HMAC_SHA256_TYPE, MessageAuth};

    /// HMAC-SHA256 (RFC 2104, FIPS 180-4) keyed with the shared secret: a 32-byte digest of
    /// type [`HMAC_SHA256_TYPE`] unless told otherwise.
    #[derive(Clone)]
    pub struct HmacSha256 {
        // Keyed once; each digest starts from a copy.
        keyed: Hmac<Sha256>,
        digest_type: u8,
    }

    /// An empty shared secret authenticates nothing.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct EmptySecret;

    impl fmt::Display for EmptySecret {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("the shared secret is empty")
        }
    }

    impl core::error::Error for EmptySecret {}

    impl HmacSha256 {
        /// HMAC-SHA256 keyed with `secret` (any length but zero).
        pub fn new(secret: &[u8]) -> Result<Self, EmptySecret> {
            if secret.is_empty() {
                return Err(EmptySecret);
            }
            let keyed = <Hmac<Sha256> as Mac>::new_from_slice(secret).map_err(|_| EmptySecret)?;
            Ok(HmacSha256 {
                keyed,
                digest_type: HMAC_SHA256_TYPE,
            })
        }

        /// Sends and expects `digest_type` instead (§12.17: "The Type MUST be configurable").
        pub fn with_digest_type(mut self, digest_type: u8) -> Self {
            self.digest_type = digest_type;
            self
        }
    }

    impl fmt::Debug for HmacSha256 {
        // Never the key.
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("HmacSha256")
                .field("digest_type", &self.digest_type)
                .finish_non_exhaustive()
        }
    }

    impl MessageAuth for HmacSha256 {
        fn digest_type(&self) -> u8 {
            self.digest_type
        }

        fn digest_len(&self) -> usize {
            32
        }

        fn compute(&self, parts: &[&[u8]], out: &mut [u8]) {
            let mut mac = self.keyed.clone();
            for p in parts {
                mac.update(p);
            }
            let digest = mac.finalize().into_bytes();
            let n = out.len().min(digest.len());
            if let (Some(o), Some(d)) = (out.get_mut(..n), digest.get(..n)) {
                o.copy_from_slice(d);
            }
        }
    }
}
