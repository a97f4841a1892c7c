//! STATE (§7.10).

use super::{Body, be32, byte, digest_len, digest_of, put_digest, require};
use crate::error::{DecodeError, EncodeError};
use crate::option::{CodeSet, ExtraOptions, OptionCode, OptionWriter, scan};
use crate::value::{MessageDigest, ServerFlags, ServerState};

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
