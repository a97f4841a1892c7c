//! The binding transactions of BNDUPD (§7.1) and BNDACK (§7.2): [`Binding`], [`BindingAck`]
//! and the [`Transaction`] trait over them.

use core::net::Ipv4Addr;

use byteorder::{BigEndian, ByteOrder};

use super::{be32, byte, ipv4, missing, opt_len, put_opt, put_opt_u8, put_opt_u32, require};
use crate::error::{DecodeError, EncodeError};
use crate::option::{CodeSet, ExtraOptions, OptionCode, OptionWriter, Options};
use crate::value::{BindingStatus, Ddns, DdnsFlags, HardwareAddress, IpFlags, RejectReason, Text};

/// One binding transaction of a BNDUPD (§7.1, Table 7.1-1): everything from an
/// assigned-IP-address up to the next one.
///
/// Mandatory: assigned-IP-address and binding-status; client-hardware-address for ACTIVE,
/// EXPIRED and RELEASED (ISC rejects those without it, reason 3); lease-expiration-time and
/// potential-expiration-time for ACTIVE. ISC sends the two times for every status (0 for a
/// lease never used), so they are accepted whatever the status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Binding<'a> {
    /// assigned-IP-address (option 2).
    pub address: Ipv4Addr,
    /// binding-status (option 3).
    pub status: BindingStatus,
    /// client-identifier (option 4): the client's DHCP option 61 data.
    pub client_identifier: Option<&'a [u8]>,
    /// client-hardware-address (option 5).
    pub hardware_address: Option<HardwareAddress<'a>>,
    /// lease-expiration-time (option 13).
    pub lease_expiration_time: Option<u32>,
    /// potential-expiration-time (option 18).
    pub potential_expiration_time: Option<u32>,
    /// start-time-of-state (option 25): when the binding entered `status`.
    pub start_time_of_state: Option<u32>,
    /// client-last-transaction-time (option 6).
    pub client_last_transaction_time: Option<u32>,
    /// IP-flags (option 12).
    pub ip_flags: Option<IpFlags>,
    /// DDNS (option 9). Never send it to ISC dhcpd, whose decoder drops the connection.
    pub ddns: Option<Ddns<'a>>,
    /// client-request-options (option 8): magic cookie then DHCP options.
    pub client_request_options: Option<&'a [u8]>,
    /// client-reply-options (option 7): magic cookie then DHCP options.
    pub client_reply_options: Option<&'a [u8]>,
    /// Options of this transaction not modelled here.
    pub extra: ExtraOptions<'a>,
}

impl Binding<'_> {
    const MODELED: CodeSet = CodeSet::of(&[2, 3, 4, 5, 6, 7, 8, 9, 12, 13, 17, 18, 25]);

    /// A binding with only address and status set.
    pub const fn new(address: Ipv4Addr, status: BindingStatus) -> Binding<'static> {
        Binding {
            address,
            status,
            client_identifier: None,
            hardware_address: None,
            lease_expiration_time: None,
            potential_expiration_time: None,
            start_time_of_state: None,
            client_last_transaction_time: None,
            ip_flags: None,
            ddns: None,
            client_request_options: None,
            client_reply_options: None,
            extra: ExtraOptions::EMPTY,
        }
    }
}

/// One binding transaction of a BNDACK (§7.2, Table 7.2-1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BindingAck<'a> {
    /// assigned-IP-address (option 2) of the acknowledged binding.
    pub address: Ipv4Addr,
    /// reject-reason (option 21): present means the update was rejected.
    pub reject_reason: Option<RejectReason>,
    /// message (option 16).
    pub message: Option<Text<'a>>,
    /// Other options of this transaction (echoed binding data; unreliable, §7.2.1).
    pub extra: ExtraOptions<'a>,
}

impl BindingAck<'_> {
    const MODELED: CodeSet = CodeSet::of(&[2, 16, 17, 21]);

    /// An acceptance of `address`.
    pub const fn accept(address: Ipv4Addr) -> BindingAck<'static> {
        BindingAck {
            address,
            reject_reason: None,
            message: None,
            extra: ExtraOptions::EMPTY,
        }
    }
}

// core::net::Ipv4Addr has no defmt::Format: write the octets.
#[cfg(feature = "defmt")]
impl defmt::Format for Binding<'_> {
    fn format(&self, f: defmt::Formatter<'_>) {
        let a = self.address.octets();
        defmt::write!(
            f,
            "Binding {{ address: {}.{}.{}.{}, status: {}, client_identifier: {}, hardware_address: {}, lease_expiration_time: {}, potential_expiration_time: {}, start_time_of_state: {}, client_last_transaction_time: {}, ip_flags: {}, ddns: {}, extra: {} }}",
            a[0],
            a[1],
            a[2],
            a[3],
            self.status,
            self.client_identifier,
            self.hardware_address,
            self.lease_expiration_time,
            self.potential_expiration_time,
            self.start_time_of_state,
            self.client_last_transaction_time,
            self.ip_flags,
            self.ddns,
            self.extra
        );
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for BindingAck<'_> {
    fn format(&self, f: defmt::Formatter<'_>) {
        let a = self.address.octets();
        defmt::write!(
            f,
            "BindingAck {{ address: {}.{}.{}.{}, reject_reason: {}, message: {} }}",
            a[0],
            a[1],
            a[2],
            a[3],
            self.reject_reason,
            self.message
        );
    }
}

/// A transaction type inside a batched message.
pub trait Transaction<'a>: Copy + Sized {
    /// Decodes one transaction from exactly its options (starting at assigned-IP-address).
    fn parse_txn(raw: &'a [u8], base: usize) -> Result<Self, DecodeError>;
    /// Bytes it takes on the wire.
    fn wire_len(&self) -> usize;
    /// Encodes it.
    fn write(&self, w: &mut OptionWriter<'_>) -> Result<(), EncodeError>;
}

impl<'a> Transaction<'a> for Binding<'a> {
    fn parse_txn(raw: &'a [u8], base: usize) -> Result<Self, DecodeError> {
        let mut b = Binding::new(Ipv4Addr::UNSPECIFIED, BindingStatus::Unknown(0));
        let (mut addr, mut status) = (None, None);
        for o in Options::new(raw, base) {
            let o = o?;
            match o.code {
                2 => addr = Some(ipv4(o.data)),
                3 => status = Some(BindingStatus::from(byte(o.data))),
                4 => b.client_identifier = Some(o.data),
                5 => {
                    b.hardware_address = Some(HardwareAddress {
                        htype: byte(o.data),
                        address: o.data.get(1..).unwrap_or_default(),
                    })
                }
                13 => b.lease_expiration_time = Some(be32(o.data)),
                18 => b.potential_expiration_time = Some(be32(o.data)),
                25 => b.start_time_of_state = Some(be32(o.data)),
                6 => b.client_last_transaction_time = Some(be32(o.data)),
                12 => {
                    // One byte (Microsoft, §12.12 "Len 1") is the low byte of the field.
                    let v = match o.data {
                        [lo] => u16::from(*lo),
                        d => BigEndian::read_u16(d.get(..2).unwrap_or(&[0, 0])),
                    };
                    b.ip_flags = Some(IpFlags(v));
                }
                9 => {
                    b.ddns = Some(Ddns {
                        flags: DdnsFlags(BigEndian::read_u16(o.data.get(..2).unwrap_or(&[0, 0]))),
                        fqdn: o.data.get(2..).unwrap_or_default(),
                    })
                }
                8 => b.client_request_options = Some(o.data),
                7 => b.client_reply_options = Some(o.data),
                _ => {}
            }
        }
        b.address = require(addr, OptionCode::AssignedIpAddress, base)?;
        b.status = require(status, OptionCode::BindingStatus, base)?;
        if b.status.requires_client() && b.hardware_address.is_none() {
            return Err(missing(OptionCode::ClientHardwareAddress, base));
        }
        if b.status == BindingStatus::Active {
            require(
                b.lease_expiration_time,
                OptionCode::LeaseExpirationTime,
                base,
            )?;
            require(
                b.potential_expiration_time,
                OptionCode::PotentialExpirationTime,
                base,
            )?;
        }
        b.extra = ExtraOptions::from_wire(raw, base, Self::MODELED);
        Ok(b)
    }

    fn wire_len(&self) -> usize {
        8 + 5
            + opt_len(self.client_identifier)
            + self.hardware_address.map_or(0, |h| 4 + h.wire_len())
            + self.lease_expiration_time.map_or(0, |_| 8)
            + self.potential_expiration_time.map_or(0, |_| 8)
            + self.start_time_of_state.map_or(0, |_| 8)
            + self.client_last_transaction_time.map_or(0, |_| 8)
            + self.ip_flags.map_or(0, |_| 6)
            + self.ddns.map_or(0, |d| 6 + d.fqdn.len())
            + opt_len(self.client_request_options)
            + opt_len(self.client_reply_options)
            + self.extra.wire_len()
    }

    fn write(&self, w: &mut OptionWriter<'_>) -> Result<(), EncodeError> {
        // ISC dhcpd's order (dhcp_failover_send_bind_update): 2 3 4 5 13 18 25 6 [12].
        w.put(2, &self.address.octets())?;
        w.put_u8(3, self.status.into())?;
        put_opt(w, 4, self.client_identifier)?;
        if let Some(h) = self.hardware_address {
            w.put2(5, &[h.htype], h.address)?;
        }
        put_opt_u32(w, 13, self.lease_expiration_time)?;
        put_opt_u32(w, 18, self.potential_expiration_time)?;
        put_opt_u32(w, 25, self.start_time_of_state)?;
        put_opt_u32(w, 6, self.client_last_transaction_time)?;
        if let Some(f) = self.ip_flags {
            w.put_u16(12, f.0)?;
        }
        if let Some(d) = self.ddns {
            w.put2(9, &d.flags.0.to_be_bytes(), d.fqdn)?;
        }
        put_opt(w, 8, self.client_request_options)?;
        put_opt(w, 7, self.client_reply_options)?;
        self.extra.write(w)
    }
}

impl<'a> Transaction<'a> for BindingAck<'a> {
    fn parse_txn(raw: &'a [u8], base: usize) -> Result<Self, DecodeError> {
        let mut a = BindingAck::accept(Ipv4Addr::UNSPECIFIED);
        let mut addr = None;
        for o in Options::new(raw, base) {
            let o = o?;
            match o.code {
                2 => addr = Some(ipv4(o.data)),
                21 => a.reject_reason = Some(RejectReason::from(byte(o.data))),
                16 => a.message = Some(Text(o.data)),
                _ => {}
            }
        }
        a.address = require(addr, OptionCode::AssignedIpAddress, base)?;
        a.extra = ExtraOptions::from_wire(raw, base, Self::MODELED);
        Ok(a)
    }

    fn wire_len(&self) -> usize {
        8 + self.reject_reason.map_or(0, |_| 5)
            + opt_len(self.message.map(|m| m.0))
            + self.extra.wire_len()
    }

    fn write(&self, w: &mut OptionWriter<'_>) -> Result<(), EncodeError> {
        w.put(2, &self.address.octets())?;
        put_opt_u8(w, 21, self.reject_reason.map(u8::from))?;
        put_opt(w, 16, self.message.map(|m| m.0))?;
        self.extra.write(w)
    }
}
