//! POOLRESP (§7.7).

use super::{Body, be32, digest_len, digest_of, put_digest, require};
use crate::error::{DecodeError, EncodeError};
use crate::option::{CodeSet, ExtraOptions, OptionCode, OptionWriter, scan};
use crate::value::MessageDigest;

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
