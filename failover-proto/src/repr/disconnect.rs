//! DISCONNECT (§7.12).

use super::{Body, byte, digest_len, digest_of, opt_len, put_digest, put_opt, require};
use crate::error::{DecodeError, EncodeError};
use crate::option::{CodeSet, ExtraOptions, OptionCode, OptionWriter, scan};
use crate::value::{MessageDigest, RejectReason, Text};

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
