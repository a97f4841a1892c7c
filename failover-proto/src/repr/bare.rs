//! The messages without options of their own: POOLREQ, UPDREQALL, UPDDONE, UPDREQ, CONTACT.

use super::{Body, digest_len, digest_of, put_digest};
use crate::error::{DecodeError, EncodeError};
use crate::option::{CodeSet, ExtraOptions, OptionWriter, scan};
use crate::value::MessageDigest;

/// Defines a message type without options of its own (POOLREQ, UPDREQALL, UPDDONE, UPDREQ,
/// CONTACT).
macro_rules! bare_message {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
        #[cfg_attr(feature = "defmt", derive(defmt::Format))]
        pub struct $name<'a> {
            /// Header time: the sender's clock (§6.1).
            pub time: u32,
            /// Header xid (§6.1).
            pub xid: u32,
            /// Options not modelled here (the draft defines none for this message).
            pub extra: ExtraOptions<'a>,
            /// message-digest, when a shared secret is in use (§11.1).
            pub digest: Option<MessageDigest<'a>>,
        }

        impl<'a> Body<'a> for $name<'a> {
            fn parse_payload(
                time: u32,
                xid: u32,
                payload: &'a [u8],
                base: usize,
            ) -> Result<Self, DecodeError> {
                let mut digest = None;
                scan(payload, base, false, |o| {
                    if o.code == 17 {
                        digest = Some(digest_of(&o));
                    }
                    Ok(())
                })?;
                Ok($name {
                    time,
                    xid,
                    extra: ExtraOptions::from_wire(payload, base, CodeSet::of(&[17])),
                    digest,
                })
            }

            fn payload_len(&self) -> usize {
                self.extra.wire_len() + digest_len(&self.digest)
            }

            fn emit_payload(&self, w: &mut OptionWriter<'_>) -> Result<(), EncodeError> {
                self.extra.write(w)?;
                put_digest(w, &self.digest)
            }
        }

        message_api!($name);
    };
}

bare_message!(
    /// POOLREQ (§7.6): asks the partner to balance the address pools.
    PoolReq
);
bare_message!(
    /// UPDREQALL (§7.4): asks the partner for every binding it has.
    UpdReqAll
);
bare_message!(
    /// UPDDONE (§7.5): every binding asked for by UPDREQ/UPDREQALL was sent and acked; xid of
    /// the request.
    UpdDone
);
bare_message!(
    /// UPDREQ (§7.3): asks the partner for the bindings it has not had acknowledged.
    UpdReq
);
bare_message!(
    /// CONTACT (§7.11): keep-alive.
    Contact
);
