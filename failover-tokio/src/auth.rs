//! Message authentication on the link (draft §11.1): every message we send carries the
//! message-digest option, every message received is verified before the engine sees it. The
//! digest, the replay rule and the refusals are [`failover_proto::auth`]'s; this module holds
//! the relationship's [`Authenticator`] between the task's reads and writes.
//!
//! A message that fails (missing, bad or replayed digest; a digest without a secret
//! configured) is not handed to the engine: the engine is told to send DISCONNECT with the
//! reject reason and close, nothing else read on that connection reaches it, and the refusal
//! is counted ([`crate::Counters::digest_refused`]) and reported
//! ([`crate::PeerEvent::DigestRefused`]).

use std::fmt;
use std::sync::Arc;

use failover_proto::auth::{Authenticator, DigestError, MessageAuth, check_no_digest};
use failover_proto::{EncodeError, Role};

/// A host's [`MessageAuth`], shared with the builder.
#[derive(Clone)]
pub(crate) struct DynAuth(pub(crate) Arc<dyn MessageAuth + Send + Sync>);

impl fmt::Debug for DynAuth {
    // The digest type only; never anything of the key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessageAuth")
            .field("digest_type", &self.0.digest_type())
            .finish_non_exhaustive()
    }
}

impl MessageAuth for DynAuth {
    fn digest_type(&self) -> u8 {
        self.0.digest_type()
    }
    fn digest_len(&self) -> usize {
        self.0.digest_len()
    }
    fn compute(&self, parts: &[&[u8]], out: &mut [u8]) {
        self.0.compute(parts, out)
    }
}

/// One relationship's digests: with a shared secret, or none (then a received digest is
/// refused, §11.1).
pub(crate) struct LinkAuth {
    auth: Option<Authenticator<DynAuth>>,
    /// This connection failed authentication: nothing more of it goes to the engine.
    refused: bool,
}

impl LinkAuth {
    pub(crate) fn new(auth: Option<DynAuth>, role: Role, max_skew: u32) -> Self {
        LinkAuth {
            auth: auth.map(|a| Authenticator::new(a, role, max_skew)),
            refused: false,
        }
    }

    /// A new connection.
    pub(crate) fn connection_up(&mut self) {
        self.refused = false;
        if let Some(a) = &mut self.auth {
            a.connection_up();
        }
    }

    /// Whether this connection was refused already.
    pub(crate) fn refused(&self) -> bool {
        self.refused
    }

    /// Bytes each message grows by when signed.
    pub(crate) fn overhead(&self) -> usize {
        self.auth.as_ref().map_or(0, Authenticator::overhead)
    }

    /// Signs the message in `buf[..len]`; its new length.
    pub(crate) fn sign(&mut self, buf: &mut [u8], len: usize) -> Result<usize, EncodeError> {
        match &mut self.auth {
            Some(a) => a.sign(buf, len),
            None => Ok(len),
        }
    }

    /// Verifies a received message (`now`: our wall clock); an error refuses the connection.
    pub(crate) fn verify(&mut self, msg: &[u8], now: u32) -> Result<(), DigestError> {
        let checked = match &mut self.auth {
            Some(a) => a.verify(msg, now),
            None => check_no_digest(msg),
        };
        self.refused |= checked.is_err();
        checked
    }
}
