//! CONNECT (§7.8) and CONNECTACK (§7.9): the application session's handshake.

use super::{
    Body, be32, byte, digest_len, digest_of, opt_len, put_digest, put_opt, put_opt_u8, put_opt_u32,
    require,
};
use crate::error::{DecodeError, EncodeError};
use crate::option::{CodeSet, ExtraOptions, OptionCode, OptionWriter, scan};
use crate::value::{Hba, MessageDigest, RejectReason, Text, TlsReply, TlsRequest};

/// CONNECT (§7.8): the primary opens the application session and states its configuration.
///
/// Mandatory (§7.8 Table 7.8-1), checked in ISC dhcpd's order so the first missing option maps
/// to the reject-reason ISC answers with: relationship-name (8), hash-bucket-assignment (18),
/// MCLT (5), then protocol-version, max-unacked-bndupd, receive-timer, vendor-class-identifier.
/// TLS-request is optional here: the draft forbids it on a CONNECT sent over TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Connect<'a> {
    /// Header time: the receiver measures clock skew from it (§7.8.2).
    pub time: u32,
    /// Header xid; the CONNECTACK echoes it.
    pub xid: u32,
    /// relationship-name (option 22).
    pub relationship_name: Text<'a>,
    /// max-unacked-bndupd (option 14): BNDUPDs the sender can hold un-acked.
    pub max_unacked_bndupd: u32,
    /// receive-timer (option 19): the sender's tReceive in seconds.
    pub receive_timer: u32,
    /// vendor-class-identifier (option 28).
    pub vendor_class: Text<'a>,
    /// protocol-version (option 20), 1.
    pub protocol_version: u8,
    /// TLS-request (option 27).
    pub tls_request: Option<TlsRequest>,
    /// MCLT (option 15), seconds.
    pub mclt: u32,
    /// hash-bucket-assignment (option 11).
    pub hba: Hba,
    /// delayed-service-parameter (option 10), seconds.
    pub delayed_service: Option<u8>,
    /// vendor-specific-options (option 29), raw nested TLVs.
    pub vendor_options: Option<&'a [u8]>,
    /// Options not modelled here.
    pub extra: ExtraOptions<'a>,
    /// message-digest.
    pub digest: Option<MessageDigest<'a>>,
}

impl<'a> Body<'a> for Connect<'a> {
    fn parse_payload(
        time: u32,
        xid: u32,
        payload: &'a [u8],
        base: usize,
    ) -> Result<Self, DecodeError> {
        let (mut name, mut mud, mut rt, mut vc, mut pv) = (None, None, None, None, None);
        let (mut tls, mut mclt, mut hba, mut dsp, mut vso, mut digest) =
            (None, None, None, None, None, None);
        scan(payload, base, false, |o| {
            match o.code {
                22 => name = Some(Text(o.data)),
                14 => mud = Some(be32(o.data)),
                19 => rt = Some(be32(o.data)),
                28 => vc = Some(Text(o.data)),
                20 => pv = Some(byte(o.data)),
                27 => tls = Some(TlsRequest::from(byte(o.data))),
                15 => mclt = Some(be32(o.data)),
                11 => {
                    let mut bits = [0u8; 32];
                    bits.copy_from_slice(o.data);
                    hba = Some(Hba(bits));
                }
                10 => dsp = Some(byte(o.data)),
                29 => vso = Some(o.data),
                17 => digest = Some(digest_of(&o)),
                _ => {}
            }
            Ok(())
        })?;
        let relationship_name = require(name, OptionCode::RelationshipName, base)?;
        let hba = require(hba, OptionCode::HashBucketAssignment, base)?;
        let mclt = require(mclt, OptionCode::Mclt, base)?;
        Ok(Connect {
            time,
            xid,
            relationship_name,
            protocol_version: require(pv, OptionCode::ProtocolVersion, base)?,
            max_unacked_bndupd: require(mud, OptionCode::MaxUnackedBndupd, base)?,
            receive_timer: require(rt, OptionCode::ReceiveTimer, base)?,
            vendor_class: require(vc, OptionCode::VendorClassIdentifier, base)?,
            tls_request: tls,
            mclt,
            hba,
            delayed_service: dsp,
            vendor_options: vso,
            extra: ExtraOptions::from_wire(payload, base, Self::MODELED),
            digest,
        })
    }

    fn payload_len(&self) -> usize {
        4 + self.relationship_name.0.len()
            + 8
            + 8
            + 4
            + self.vendor_class.0.len()
            + 5
            + self.tls_request.map_or(0, |_| 5)
            + 8
            + 36
            + self.delayed_service.map_or(0, |_| 5)
            + opt_len(self.vendor_options)
            + self.extra.wire_len()
            + digest_len(&self.digest)
    }

    fn emit_payload(&self, w: &mut OptionWriter<'_>) -> Result<(), EncodeError> {
        w.put(22, self.relationship_name.0)?;
        w.put_u32(14, self.max_unacked_bndupd)?;
        w.put_u32(19, self.receive_timer)?;
        w.put(28, self.vendor_class.0)?;
        w.put_u8(20, self.protocol_version)?;
        put_opt_u8(w, 27, self.tls_request.map(u8::from))?;
        w.put_u32(15, self.mclt)?;
        w.put(11, &self.hba.0)?;
        put_opt_u8(w, 10, self.delayed_service)?;
        put_opt(w, 29, self.vendor_options)?;
        self.extra.write(w)?;
        put_digest(w, &self.digest)
    }
}
message_api!(Connect);

impl Connect<'_> {
    const MODELED: CodeSet = CodeSet::of(&[10, 11, 14, 15, 17, 19, 20, 22, 27, 28, 29]);
}

/// CONNECTACK (§7.9): the secondary's answer to CONNECT, with its xid.
///
/// An accepting CONNECTACK must carry relationship-name, max-unacked-bndupd, receive-timer,
/// vendor-class-identifier and protocol-version (Table 7.9-1). A rejecting one (reject-reason
/// present) needs only protocol-version: ISC dhcpd omits the relationship-name when the CONNECT
/// had none, and adds max-unacked/receive-timer when it knows the relationship.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ConnectAck<'a> {
    /// Header time.
    pub time: u32,
    /// Header xid (the CONNECT's).
    pub xid: u32,
    /// relationship-name (option 22).
    pub relationship_name: Option<Text<'a>>,
    /// max-unacked-bndupd (option 14).
    pub max_unacked_bndupd: Option<u32>,
    /// receive-timer (option 19).
    pub receive_timer: Option<u32>,
    /// vendor-class-identifier (option 28).
    pub vendor_class: Option<Text<'a>>,
    /// protocol-version (option 20).
    pub protocol_version: u8,
    /// TLS-reply (option 26).
    pub tls_reply: Option<TlsReply>,
    /// reject-reason (option 21): present means the CONNECT was rejected.
    pub reject_reason: Option<RejectReason>,
    /// message (option 16).
    pub message: Option<Text<'a>>,
    /// vendor-specific-options (option 29).
    pub vendor_options: Option<&'a [u8]>,
    /// Options not modelled here.
    pub extra: ExtraOptions<'a>,
    /// message-digest.
    pub digest: Option<MessageDigest<'a>>,
}

impl<'a> Body<'a> for ConnectAck<'a> {
    fn parse_payload(
        time: u32,
        xid: u32,
        payload: &'a [u8],
        base: usize,
    ) -> Result<Self, DecodeError> {
        let mut a = ConnectAck {
            time,
            xid,
            ..ConnectAck::default()
        };
        let mut pv = None;
        scan(payload, base, false, |o| {
            match o.code {
                22 => a.relationship_name = Some(Text(o.data)),
                14 => a.max_unacked_bndupd = Some(be32(o.data)),
                19 => a.receive_timer = Some(be32(o.data)),
                28 => a.vendor_class = Some(Text(o.data)),
                20 => pv = Some(byte(o.data)),
                26 => a.tls_reply = Some(TlsReply::from(byte(o.data))),
                21 => a.reject_reason = Some(RejectReason::from(byte(o.data))),
                16 => a.message = Some(Text(o.data)),
                29 => a.vendor_options = Some(o.data),
                17 => a.digest = Some(digest_of(&o)),
                _ => {}
            }
            Ok(())
        })?;
        if a.reject_reason.is_none() {
            require(a.relationship_name, OptionCode::RelationshipName, base)?;
        }
        a.protocol_version = require(pv, OptionCode::ProtocolVersion, base)?;
        if a.reject_reason.is_none() {
            require(a.max_unacked_bndupd, OptionCode::MaxUnackedBndupd, base)?;
            require(a.receive_timer, OptionCode::ReceiveTimer, base)?;
            require(a.vendor_class, OptionCode::VendorClassIdentifier, base)?;
        }
        a.extra = ExtraOptions::from_wire(payload, base, Self::MODELED);
        Ok(a)
    }

    fn payload_len(&self) -> usize {
        opt_len(self.relationship_name.map(|t| t.0))
            + self.max_unacked_bndupd.map_or(0, |_| 8)
            + self.receive_timer.map_or(0, |_| 8)
            + opt_len(self.vendor_class.map(|t| t.0))
            + 5
            + self.tls_reply.map_or(0, |_| 5)
            + self.reject_reason.map_or(0, |_| 5)
            + opt_len(self.message.map(|t| t.0))
            + opt_len(self.vendor_options)
            + self.extra.wire_len()
            + digest_len(&self.digest)
    }

    fn emit_payload(&self, w: &mut OptionWriter<'_>) -> Result<(), EncodeError> {
        put_opt(w, 22, self.relationship_name.map(|t| t.0))?;
        put_opt_u32(w, 14, self.max_unacked_bndupd)?;
        put_opt_u32(w, 19, self.receive_timer)?;
        put_opt(w, 28, self.vendor_class.map(|t| t.0))?;
        w.put_u8(20, self.protocol_version)?;
        put_opt_u8(w, 26, self.tls_reply.map(u8::from))?;
        put_opt_u8(w, 21, self.reject_reason.map(u8::from))?;
        put_opt(w, 16, self.message.map(|t| t.0))?;
        put_opt(w, 29, self.vendor_options)?;
        self.extra.write(w)?;
        put_digest(w, &self.digest)
    }
}
message_api!(ConnectAck);

impl ConnectAck<'_> {
    const MODELED: CodeSet = CodeSet::of(&[14, 16, 17, 19, 20, 21, 22, 26, 28, 29]);
}
