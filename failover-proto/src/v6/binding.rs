//! The binding nesting of BNDUPD and BNDREPLY (§7.4, §7.6): OPTION_CLIENT_DATA holding
//! IA_NA / IA_TA / IA_PD, which hold IAADDR / IAPREFIX with the failover options inside; or
//! one IAPREFIX on its own for a delegable prefix no client holds.
//!
//! Every level keeps the options it does not model in `extra`. Children (the IAs of a client,
//! the leases of an IA) are a [`List`]: decoded lazily from the wire, where they re-encode
//! byte for byte as received, or given as a slice when building a message.

use core::fmt;
use core::net::Ipv6Addr;

use crate::error::{DecodeError, DecodeErrorKind, EncodeError};
use crate::option::{ExtraOptions, OptionWriter, Options, RawOption, WideCodeSet};

use super::option::{Level, scan};
use super::value::{BindingStatus, DnsFlags, ReconfigureData, StatusCode};

pub(crate) fn be32(data: &[u8]) -> u32 {
    data.first_chunk::<4>()
        .map_or(0, |b| u32::from_be_bytes(*b))
}

pub(crate) fn be16(data: &[u8]) -> u16 {
    data.first_chunk::<2>()
        .map_or(0, |b| u16::from_be_bytes(*b))
}

fn ipv6(data: &[u8]) -> Ipv6Addr {
    data.first_chunk::<16>()
        .map_or(Ipv6Addr::UNSPECIFIED, |b| Ipv6Addr::from(*b))
}

pub(crate) fn opt_len(data: Option<&[u8]>) -> usize {
    data.map_or(0, |d| 4 + d.len())
}

pub(crate) fn put_opt(
    w: &mut OptionWriter<'_>,
    code: u16,
    v: Option<&[u8]>,
) -> Result<(), EncodeError> {
    v.map_or(Ok(()), |v| w.put(code, v))
}

pub(crate) fn put_opt_u32(
    w: &mut OptionWriter<'_>,
    code: u16,
    v: Option<u32>,
) -> Result<(), EncodeError> {
    v.map_or(Ok(()), |v| w.put_u32(code, v))
}

pub(crate) fn status_len(s: &Option<StatusCode<'_>>) -> usize {
    s.map_or(0, |s| 6 + s.message.0.len())
}

pub(crate) fn put_status(
    w: &mut OptionWriter<'_>,
    s: &Option<StatusCode<'_>>,
) -> Result<(), EncodeError> {
    match s {
        Some(s) => w.put2(13, &u16::from(s.status).to_be_bytes(), s.message.0),
        None => Ok(()),
    }
}

pub(crate) fn missing(code: u16, parent: u16, offset: usize) -> DecodeError {
    DecodeError::new(DecodeErrorKind::V6MissingOption { code, parent }, offset)
}

/// An element of a [`List`]: one option of the enclosing level.
pub trait Element<'a>: Copy + Sized {
    /// The option codes that carry an element.
    const CODES: WideCodeSet;
    /// Decodes one element from its option (structure and lengths; the message's own
    /// presence rules are checked by the message's parser).
    fn parse_opt(o: RawOption<'a>) -> Result<Self, DecodeError>;
    /// Bytes it takes on the wire, with its option header.
    fn wire_len(&self) -> usize;
    /// Encodes it as one option.
    fn write(&self, w: &mut OptionWriter<'_>) -> Result<(), EncodeError>;
}

/// The children of one level: decoded lazily from the wire, or a slice given by the sender.
#[derive(Clone, Copy)]
pub struct List<'a, T> {
    inner: Inner<'a, T>,
}

#[derive(Clone, Copy)]
enum Inner<'a, T> {
    /// The enclosing option's data (validated), at `offset` in the message.
    Wire {
        raw: &'a [u8],
        offset: usize,
    },
    Slice(&'a [T]),
}

impl<'a, T: Element<'a>> List<'a, T> {
    /// No element.
    pub const EMPTY: List<'a, T> = List {
        inner: Inner::Slice(&[]),
    };

    /// The elements of `items`, to be encoded in that order.
    pub const fn from_slice(items: &'a [T]) -> Self {
        List {
            inner: Inner::Slice(items),
        }
    }

    /// One element.
    pub const fn single(item: &'a T) -> Self {
        Self::from_slice(core::slice::from_ref(item))
    }

    pub(crate) const fn wire(raw: &'a [u8], offset: usize) -> Self {
        List {
            inner: Inner::Wire { raw, offset },
        }
    }

    /// Iterates over the elements.
    pub fn iter(&self) -> ListIter<'a, T> {
        ListIter {
            inner: match self.inner {
                Inner::Wire { raw, offset } => IterInner::Wire(Options::new(raw, offset)),
                Inner::Slice(s) => IterInner::Slice(s.iter()),
            },
        }
    }

    /// The first element.
    pub fn first(&self) -> Option<T> {
        self.iter().next()
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match self.inner {
            Inner::Wire { .. } => self.iter().count(),
            Inner::Slice(s) => s.len(),
        }
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }

    pub(crate) fn wire_len(&self) -> usize {
        match self.inner {
            Inner::Wire { raw, offset } => {
                wire_elements::<T>(raw, offset).map(|o| o.wire_len()).sum()
            }
            Inner::Slice(s) => s.iter().map(T::wire_len).sum(),
        }
    }

    pub(crate) fn write(&self, w: &mut OptionWriter<'_>) -> Result<(), EncodeError> {
        match self.inner {
            // Validated when parsed: copy each element as received.
            Inner::Wire { raw, offset } => {
                wire_elements::<T>(raw, offset).try_for_each(|o| w.put(o.code, o.data))
            }
            Inner::Slice(s) => s.iter().try_for_each(|t| t.write(w)),
        }
    }
}

fn wire_elements<'a, T: Element<'a>>(
    raw: &'a [u8],
    offset: usize,
) -> impl Iterator<Item = RawOption<'a>> {
    Options::new(raw, offset)
        .map_while(Result::ok)
        .filter(|o| T::CODES.contains(o.code))
}

/// Iterator over a [`List`].
#[derive(Debug, Clone)]
pub struct ListIter<'a, T> {
    inner: IterInner<'a, T>,
}

#[derive(Debug, Clone)]
enum IterInner<'a, T> {
    Wire(Options<'a>),
    Slice(core::slice::Iter<'a, T>),
}

impl<'a, T: Element<'a>> Iterator for ListIter<'a, T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        match &mut self.inner {
            IterInner::Wire(opts) => loop {
                // Validated when the message was parsed, so this cannot fail.
                let o = opts.next()?.ok()?;
                if T::CODES.contains(o.code) {
                    return T::parse_opt(o).ok();
                }
            },
            IterInner::Slice(s) => s.next().copied(),
        }
    }
}

impl<'a, T: Element<'a> + PartialEq> PartialEq for List<'a, T> {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl<'a, T: Element<'a> + Eq> Eq for List<'a, T> {}

impl<'a, T: Element<'a> + fmt::Debug> fmt::Debug for List<'a, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

#[cfg(feature = "defmt")]
impl<'a, T: Element<'a> + defmt::Format> defmt::Format for List<'a, T> {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(f, "[");
        for t in self.iter() {
            defmt::write!(f, "{}, ", t);
        }
        defmt::write!(f, "]");
    }
}

/// OPTION_F_DNS_REMOVAL_INFO (116, §5.5.3): what the partner needs to delete the DNS records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct DnsRemovalInfo<'a> {
    /// OPTION_F_DNS_HOST_NAME (117): RFC 1035 wire format.
    pub host_name: Option<&'a [u8]>,
    /// OPTION_F_DNS_ZONE_NAME (118): RFC 1035 wire format.
    pub zone_name: Option<&'a [u8]>,
    /// OPTION_F_DNS_FLAGS (119).
    pub flags: Option<DnsFlags>,
    /// Options not modelled here.
    pub extra: ExtraOptions<'a>,
}

impl<'a> DnsRemovalInfo<'a> {
    const MODELED: WideCodeSet = WideCodeSet::of(&[117, 118, 119]);

    fn parse(o: &RawOption<'a>) -> Result<Self, DecodeError> {
        let mut d = DnsRemovalInfo::default();
        let base = o.offset + 4;
        scan(o.data, base, Level::leaf(116), |s| {
            match s.code {
                117 => d.host_name = Some(s.data),
                118 => d.zone_name = Some(s.data),
                119 => d.flags = Some(DnsFlags(be16(s.data))),
                _ => {}
            }
            Ok(())
        })?;
        d.extra = ExtraOptions::from_wire_wide(o.data, base, &Self::MODELED);
        Ok(d)
    }

    fn data_len(&self) -> usize {
        opt_len(self.host_name)
            + opt_len(self.zone_name)
            + self.flags.map_or(0, |_| 6)
            + self.extra.wire_len()
    }
}

/// The address or prefix of an IAADDR or IAPREFIX.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LeaseAddr {
    /// OPTION_IAADDR (5): an address.
    Address(Ipv6Addr),
    /// OPTION_IAPREFIX (26): a prefix and its length.
    Prefix {
        /// The prefix.
        prefix: Ipv6Addr,
        /// prefix-length in bits.
        len: u8,
    },
}

#[cfg(feature = "defmt")]
impl defmt::Format for LeaseAddr {
    fn format(&self, f: defmt::Formatter<'_>) {
        match self {
            LeaseAddr::Address(a) => defmt::write!(f, "{=[u8]:02x}", a.octets()),
            LeaseAddr::Prefix { prefix, len } => {
                defmt::write!(f, "{=[u8]:02x}/{}", prefix.octets(), len)
            }
        }
    }
}

/// One lease: an OPTION_IAADDR or OPTION_IAPREFIX with the failover options inside it (§7.4),
/// or in a BNDREPLY the acknowledgement of one (§7.6).
///
/// Inside OPTION_CLIENT_DATA a BNDUPD's lease must carry binding-status and
/// start-time-of-state; state-expiration-time, partner-lifetime and expiration-time come
/// together or not at all (present exactly when the status times out, which ACTIVE always
/// does). A clientless IAPREFIX also needs OPTION_LQ_BASE_TIME.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Lease<'a> {
    /// The address or prefix.
    pub addr: LeaseAddr,
    /// preferred-lifetime as sent to the client.
    pub preferred_lifetime: u32,
    /// valid-lifetime as sent to the client.
    pub valid_lifetime: u32,
    /// OPTION_STATUS_CODE (13): in a BNDREPLY, an error rejects this lease (§7.6).
    pub status: Option<StatusCode<'a>>,
    /// OPTION_VSS (68): a clientless IAPREFIX's VPN, if not the default one.
    pub vss: Option<&'a [u8]>,
    /// OPTION_LQ_BASE_TIME (100): a clientless IAPREFIX's data time.
    pub lq_base_time: Option<u32>,
    /// OPTION_F_BINDING_STATUS (114).
    pub binding_status: Option<BindingStatus>,
    /// OPTION_F_START_TIME_OF_STATE (133): when `binding_status` took its value.
    pub start_time_of_state: Option<u32>,
    /// OPTION_F_STATE_EXPIRATION_TIME (134).
    pub state_expiration_time: Option<u32>,
    /// OPTION_CLT_TIME (46): seconds since the sender last talked to the client (relative).
    pub clt_time: Option<u32>,
    /// OPTION_F_PARTNER_LIFETIME (123).
    pub partner_lifetime: Option<u32>,
    /// OPTION_F_PARTNER_RAW_CLT_TIME (126).
    pub partner_raw_clt_time: Option<u32>,
    /// OPTION_F_EXPIRATION_TIME (120).
    pub expiration_time: Option<u32>,
    /// OPTION_F_PARTNER_LIFETIME_SENT (124): a BNDREPLY's echo of the received 123.
    pub partner_lifetime_sent: Option<u32>,
    /// OPTION_CLIENT_FQDN (39): flags and name, raw.
    pub client_fqdn: Option<&'a [u8]>,
    /// OPTION_F_DNS_REMOVAL_INFO (116).
    pub dns_removal_info: Option<DnsRemovalInfo<'a>>,
    /// Options not modelled here.
    pub extra: ExtraOptions<'a>,
}

impl<'a> Lease<'a> {
    const MODELED: WideCodeSet =
        WideCodeSet::of(&[13, 39, 46, 68, 100, 114, 116, 120, 123, 124, 126, 133, 134]);

    /// An IAADDR with only its fixed fields.
    pub const fn address(address: Ipv6Addr, preferred: u32, valid: u32) -> Lease<'static> {
        Self::bare(LeaseAddr::Address(address), preferred, valid)
    }

    /// An IAPREFIX with only its fixed fields.
    pub const fn prefix(prefix: Ipv6Addr, len: u8, preferred: u32, valid: u32) -> Lease<'static> {
        Self::bare(LeaseAddr::Prefix { prefix, len }, preferred, valid)
    }

    const fn bare(addr: LeaseAddr, preferred: u32, valid: u32) -> Lease<'static> {
        Lease {
            addr,
            preferred_lifetime: preferred,
            valid_lifetime: valid,
            status: None,
            vss: None,
            lq_base_time: None,
            binding_status: None,
            start_time_of_state: None,
            state_expiration_time: None,
            clt_time: None,
            partner_lifetime: None,
            partner_raw_clt_time: None,
            expiration_time: None,
            partner_lifetime_sent: None,
            client_fqdn: None,
            dns_removal_info: None,
            extra: ExtraOptions::EMPTY,
        }
    }

    /// The option code: 5 (IAADDR) or 26 (IAPREFIX).
    pub const fn code(&self) -> u16 {
        match self.addr {
            LeaseAddr::Address(_) => 5,
            LeaseAddr::Prefix { .. } => 26,
        }
    }

    const fn fixed_len(&self) -> usize {
        match self.addr {
            LeaseAddr::Address(_) => 24,
            LeaseAddr::Prefix { .. } => 25,
        }
    }

    /// §7.4's presence rules for a BNDUPD; `clientless` for a top-level IAPREFIX; `offset`
    /// is the lease option's.
    pub(crate) fn check_update(&self, clientless: bool, offset: usize) -> Result<(), DecodeError> {
        let code = self.code();
        if clientless && self.lq_base_time.is_none() {
            return Err(missing(100, code, offset));
        }
        if self.binding_status.is_none() {
            return Err(missing(114, code, offset));
        }
        if self.start_time_of_state.is_none() {
            return Err(missing(133, code, offset));
        }
        let times_out = self.state_expiration_time.is_some()
            || self.partner_lifetime.is_some()
            || self.expiration_time.is_some()
            || self.binding_status == Some(BindingStatus::Active);
        if times_out {
            if self.state_expiration_time.is_none() {
                return Err(missing(134, code, offset));
            }
            if self.partner_lifetime.is_none() {
                return Err(missing(123, code, offset));
            }
            if self.expiration_time.is_none() {
                return Err(missing(120, code, offset));
            }
        }
        Ok(())
    }
}

impl<'a> Element<'a> for Lease<'a> {
    const CODES: WideCodeSet = WideCodeSet::of(&[5, 26]);

    fn parse_opt(o: RawOption<'a>) -> Result<Self, DecodeError> {
        let d = o.data;
        let (addr, fixed) = if o.code == 5 {
            (LeaseAddr::Address(ipv6(d)), 24)
        } else {
            let prefix = ipv6(d.get(9..).unwrap_or_default());
            let len = d.get(8).copied().unwrap_or(0);
            (LeaseAddr::Prefix { prefix, len }, 25)
        };
        let (lifetimes_at, rest) = if o.code == 5 { (16, 24) } else { (0, 25) };
        let mut l = Lease::bare(
            addr,
            be32(d.get(lifetimes_at..).unwrap_or_default()),
            be32(d.get(lifetimes_at + 4..).unwrap_or_default()),
        );
        let sub = d.get(rest..).unwrap_or_default();
        let base = o.offset + 4 + fixed;
        let mut result: Result<(), DecodeError> = Ok(());
        scan(sub, base, Level::leaf(o.code), |s| {
            match s.code {
                13 => l.status = Some(StatusCode::from_data(s.data)),
                68 => l.vss = Some(s.data),
                100 => l.lq_base_time = Some(be32(s.data)),
                114 => l.binding_status = s.data.first().map(|b| BindingStatus::from(*b)),
                133 => l.start_time_of_state = Some(be32(s.data)),
                134 => l.state_expiration_time = Some(be32(s.data)),
                46 => l.clt_time = Some(be32(s.data)),
                123 => l.partner_lifetime = Some(be32(s.data)),
                126 => l.partner_raw_clt_time = Some(be32(s.data)),
                120 => l.expiration_time = Some(be32(s.data)),
                124 => l.partner_lifetime_sent = Some(be32(s.data)),
                39 => l.client_fqdn = Some(s.data),
                116 => match DnsRemovalInfo::parse(&s) {
                    Ok(info) => l.dns_removal_info = Some(info),
                    Err(e) => result = Err(e),
                },
                _ => {}
            }
            result
        })?;
        l.extra = ExtraOptions::from_wire_wide(sub, base, &Self::MODELED);
        Ok(l)
    }

    fn wire_len(&self) -> usize {
        4 + self.fixed_len()
            + status_len(&self.status)
            + opt_len(self.vss)
            + self.lq_base_time.map_or(0, |_| 8)
            + self.binding_status.map_or(0, |_| 5)
            + [
                self.start_time_of_state,
                self.state_expiration_time,
                self.clt_time,
                self.partner_lifetime,
                self.partner_raw_clt_time,
                self.expiration_time,
                self.partner_lifetime_sent,
            ]
            .iter()
            .map(|t| t.map_or(0, |_| 8))
            .sum::<usize>()
            + opt_len(self.client_fqdn)
            + self.dns_removal_info.map_or(0, |d| 4 + d.data_len())
            + self.extra.wire_len()
    }

    fn write(&self, w: &mut OptionWriter<'_>) -> Result<(), EncodeError> {
        let len = self.wire_len() - 4;
        let (pref, valid) = (
            self.preferred_lifetime.to_be_bytes(),
            self.valid_lifetime.to_be_bytes(),
        );
        let (octets, plen) = match self.addr {
            LeaseAddr::Address(a) => (a.octets(), None),
            LeaseAddr::Prefix { prefix, len } => (prefix.octets(), Some(len)),
        };
        let mut fixed = [0u8; 25];
        let bytes: &mut dyn Iterator<Item = &u8> = match &plen {
            None => &mut octets.iter().chain(&pref).chain(&valid),
            Some(len) => &mut pref
                .iter()
                .chain(&valid)
                .chain(core::slice::from_ref(len))
                .chain(&octets),
        };
        for (dst, src) in fixed.iter_mut().zip(bytes) {
            *dst = *src;
        }
        let head = fixed.get(..self.fixed_len()).unwrap_or_default();
        w.begin(self.code(), len)?;
        w.put_encoded(head)?;
        put_status(w, &self.status)?;
        put_opt(w, 68, self.vss)?;
        put_opt_u32(w, 100, self.lq_base_time)?;
        if let Some(s) = self.binding_status {
            w.put_u8(114, s.into())?;
        }
        put_opt_u32(w, 133, self.start_time_of_state)?;
        put_opt_u32(w, 134, self.state_expiration_time)?;
        put_opt_u32(w, 46, self.clt_time)?;
        put_opt_u32(w, 123, self.partner_lifetime)?;
        put_opt_u32(w, 126, self.partner_raw_clt_time)?;
        put_opt_u32(w, 120, self.expiration_time)?;
        put_opt_u32(w, 124, self.partner_lifetime_sent)?;
        put_opt(w, 39, self.client_fqdn)?;
        if let Some(d) = &self.dns_removal_info {
            w.begin(116, d.data_len())?;
            put_opt(w, 117, d.host_name)?;
            put_opt(w, 118, d.zone_name)?;
            if let Some(f) = d.flags {
                w.put_u16(119, f.0)?;
            }
            d.extra.write(w)?;
        }
        self.extra.write(w)
    }
}

/// The kind of an IA (the option code).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum IaKind {
    /// OPTION_IA_NA (3): non-temporary addresses.
    Na,
    /// OPTION_IA_TA (4): temporary addresses (no T1/T2 on the wire).
    Ta,
    /// OPTION_IA_PD (25): delegated prefixes.
    Pd,
}

impl IaKind {
    /// The option code.
    pub const fn code(self) -> u16 {
        match self {
            IaKind::Na => 3,
            IaKind::Ta => 4,
            IaKind::Pd => 25,
        }
    }

    const fn fixed_len(self) -> usize {
        match self {
            IaKind::Ta => 4,
            IaKind::Na | IaKind::Pd => 12,
        }
    }
}

/// An OPTION_IA_NA, OPTION_IA_TA or OPTION_IA_PD of a client (§7.4): IAID, T1 and T2 as sent
/// to the client, and its leases (IAADDRs in IA_NA/IA_TA, IAPREFIXes in IA_PD).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Ia<'a> {
    /// Which IA.
    pub kind: IaKind,
    /// IAID.
    pub iaid: u32,
    /// T1 (not on the wire for IA_TA: 0 when parsed, ignored when encoded).
    pub t1: u32,
    /// T2 (likewise).
    pub t2: u32,
    /// The IAADDRs or IAPREFIXes.
    pub leases: List<'a, Lease<'a>>,
    /// OPTION_STATUS_CODE (13): in a BNDREPLY, an error rejects the whole IA (§7.7).
    pub status: Option<StatusCode<'a>>,
    /// Options not modelled here.
    pub extra: ExtraOptions<'a>,
}

impl<'a> Ia<'a> {
    const MODELED: WideCodeSet = WideCodeSet::of(&[5, 13, 26]);

    /// An IA with `leases`.
    pub const fn new(kind: IaKind, iaid: u32, t1: u32, t2: u32, leases: &'a [Lease<'a>]) -> Self {
        Ia {
            kind,
            iaid,
            t1,
            t2,
            leases: List::from_slice(leases),
            status: None,
            extra: ExtraOptions::EMPTY,
        }
    }
}

impl<'a> Element<'a> for Ia<'a> {
    const CODES: WideCodeSet = WideCodeSet::of(&[3, 4, 25]);

    fn parse_opt(o: RawOption<'a>) -> Result<Self, DecodeError> {
        Self::parse_ia(o, false)
    }

    fn wire_len(&self) -> usize {
        4 + self.kind.fixed_len()
            + status_len(&self.status)
            + self.leases.wire_len()
            + self.extra.wire_len()
    }

    fn write(&self, w: &mut OptionWriter<'_>) -> Result<(), EncodeError> {
        // What the decoder would refuse is not written: addresses in IA_NA / IA_TA, prefixes
        // in IA_PD (RFC 8415 §21.4, §21.21).
        let prefixes = self.kind == IaKind::Pd;
        if self
            .leases
            .iter()
            .any(|l| matches!(l.addr, LeaseAddr::Prefix { .. }) != prefixes)
        {
            return Err(EncodeError::V6MisplacedOption {
                code: if prefixes { 5 } else { 26 },
                parent: self.kind.code(),
            });
        }
        w.begin(self.kind.code(), self.wire_len() - 4)?;
        w.put_encoded(&self.iaid.to_be_bytes())?;
        if self.kind != IaKind::Ta {
            w.put_encoded(&self.t1.to_be_bytes())?;
            w.put_encoded(&self.t2.to_be_bytes())?;
        }
        put_status(w, &self.status)?;
        self.leases.write(w)?;
        self.extra.write(w)
    }
}

impl<'a> Ia<'a> {
    /// Decodes an IA; with `update`, also §7.4's rules for a BNDUPD: at least one lease, each
    /// with its required options (errors at the offset of the option missing something).
    fn parse_ia(o: RawOption<'a>, update: bool) -> Result<Self, DecodeError> {
        let kind = match o.code {
            3 => IaKind::Na,
            4 => IaKind::Ta,
            _ => IaKind::Pd,
        };
        let d = o.data;
        let fixed = kind.fixed_len();
        let (t1, t2) = if kind == IaKind::Ta {
            (0, 0)
        } else {
            (
                be32(d.get(4..).unwrap_or_default()),
                be32(d.get(8..).unwrap_or_default()),
            )
        };
        let sub = d.get(fixed..).unwrap_or_default();
        let base = o.offset + 4 + fixed;
        let level = if kind == IaKind::Pd {
            Level::IA_PD
        } else {
            Level::ia_addresses(o.code)
        };
        let mut status = None;
        let mut leases = 0usize;
        scan(sub, base, level, |s| {
            match s.code {
                13 => status = Some(StatusCode::from_data(s.data)),
                5 | 26 => {
                    let lease = Lease::parse_opt(s)?;
                    if update {
                        lease.check_update(false, s.offset)?;
                    }
                    leases += 1;
                }
                _ => {}
            }
            Ok(())
        })?;
        if update && leases == 0 {
            let lease_code = if kind == IaKind::Pd { 26 } else { 5 };
            return Err(missing(lease_code, o.code, o.offset));
        }
        Ok(Ia {
            kind,
            iaid: be32(d),
            t1,
            t2,
            leases: List::wire(sub, base),
            status,
            extra: ExtraOptions::from_wire_wide(sub, base, &Self::MODELED),
        })
    }
}

/// OPTION_CLIENT_DATA (45): everything about one client's binding (§7.4), or in a BNDREPLY
/// its acknowledgement (§7.6).
///
/// In a BNDUPD it must carry OPTION_CLIENTID, OPTION_LQ_BASE_TIME and at least one IA, each IA
/// at least one lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ClientData<'a> {
    /// OPTION_STATUS_CODE (13): in a BNDREPLY, an error rejects the whole update (§7.6).
    pub status: Option<StatusCode<'a>>,
    /// OPTION_CLIENTID (1): the client's DUID.
    pub client_id: Option<&'a [u8]>,
    /// OPTION_LQ_BASE_TIME (100): when the data was put in this option.
    pub lq_base_time: Option<u32>,
    /// OPTION_VSS (68): the VPN, if not the default one.
    pub vss: Option<&'a [u8]>,
    /// OPTION_F_RECONFIGURE_DATA (129).
    pub reconfigure: Option<ReconfigureData<'a>>,
    /// OPTION_LQ_RELAY_DATA (47): peer-address and relay message, raw.
    pub relay_data: Option<&'a [u8]>,
    /// The IA_NA, IA_TA and IA_PD options.
    pub ias: List<'a, Ia<'a>>,
    /// Options not modelled here.
    pub extra: ExtraOptions<'a>,
}

impl<'a> ClientData<'a> {
    const MODELED: WideCodeSet = WideCodeSet::of(&[1, 3, 4, 13, 25, 47, 68, 100, 129]);

    /// A client's binding with its DUID, data time and IAs.
    pub const fn new(client_id: &'a [u8], lq_base_time: u32, ias: &'a [Ia<'a>]) -> Self {
        ClientData {
            status: None,
            client_id: Some(client_id),
            lq_base_time: Some(lq_base_time),
            vss: None,
            reconfigure: None,
            relay_data: None,
            ias: List::from_slice(ias),
            extra: ExtraOptions::EMPTY,
        }
    }

    /// Decodes an OPTION_CLIENT_DATA; with `update`, also §7.4's rules for a BNDUPD: client
    /// id, base time and at least one IA, checked down to every lease.
    pub(crate) fn parse(o: &RawOption<'a>, update: bool) -> Result<Self, DecodeError> {
        let base = o.offset + 4;
        let mut ias = 0usize;
        let mut c = ClientData {
            status: None,
            client_id: None,
            lq_base_time: None,
            vss: None,
            reconfigure: None,
            relay_data: None,
            ias: List::wire(o.data, base),
            extra: ExtraOptions::from_wire_wide(o.data, base, &Self::MODELED),
        };
        scan(o.data, base, Level::CLIENT_DATA, |s| {
            match s.code {
                13 => c.status = Some(StatusCode::from_data(s.data)),
                1 => c.client_id = Some(s.data),
                100 => c.lq_base_time = Some(be32(s.data)),
                68 => c.vss = Some(s.data),
                129 => {
                    c.reconfigure = Some(ReconfigureData {
                        time: be32(s.data),
                        key: s.data.get(4..).unwrap_or_default(),
                    })
                }
                47 => c.relay_data = Some(s.data),
                3 | 4 | 25 => {
                    Ia::parse_ia(s, update)?;
                    ias += 1;
                }
                _ => {}
            }
            Ok(())
        })?;
        if update {
            if c.client_id.is_none() {
                return Err(missing(1, 45, o.offset));
            }
            if c.lq_base_time.is_none() {
                return Err(missing(100, 45, o.offset));
            }
            if ias == 0 {
                return Err(missing(3, 45, o.offset));
            }
        }
        Ok(c)
    }

    pub(crate) fn data_len(&self) -> usize {
        status_len(&self.status)
            + opt_len(self.client_id)
            + self.lq_base_time.map_or(0, |_| 8)
            + opt_len(self.vss)
            + self.reconfigure.map_or(0, |r| 8 + r.key.len())
            + opt_len(self.relay_data)
            + self.ias.wire_len()
            + self.extra.wire_len()
    }

    pub(crate) fn write(&self, w: &mut OptionWriter<'_>) -> Result<(), EncodeError> {
        w.begin(45, self.data_len())?;
        put_status(w, &self.status)?;
        put_opt(w, 1, self.client_id)?;
        put_opt_u32(w, 100, self.lq_base_time)?;
        put_opt(w, 68, self.vss)?;
        if let Some(r) = self.reconfigure {
            w.put2(129, &r.time.to_be_bytes(), r.key)?;
        }
        put_opt(w, 47, self.relay_data)?;
        self.ias.write(w)?;
        self.extra.write(w)
    }
}

/// The one binding a BNDUPD or BNDREPLY carries (§5.3.1, §7.4): a client's, or a delegable
/// prefix no client holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Binding<'a> {
    /// OPTION_CLIENT_DATA.
    Client(ClientData<'a>),
    /// A top-level OPTION_IAPREFIX.
    Prefix(Lease<'a>),
}

impl<'a> Binding<'a> {
    /// Parses the binding of a BNDUPD (`update`: with §7.4's presence rules) or BNDREPLY from
    /// its top-level options (already scanned at [`Level::BINDING`]).
    pub(crate) fn parse(payload: &'a [u8], base: usize, update: bool) -> Result<Self, DecodeError> {
        let mut found: Option<Binding<'a>> = None;
        for o in Options::new(payload, base) {
            let o = o?;
            let b = match o.code {
                45 => Binding::Client(ClientData::parse(&o, update)?),
                26 => {
                    let lease = Lease::parse_opt(o)?;
                    if update {
                        lease.check_update(true, o.offset)?;
                    }
                    Binding::Prefix(lease)
                }
                _ => continue,
            };
            if found.is_some() {
                return Err(DecodeError::new(
                    DecodeErrorKind::MisplacedOption {
                        code: o.code,
                        parent: 0,
                    },
                    o.offset,
                ));
            }
            found = Some(b);
        }
        found.ok_or_else(|| missing(45, 0, base))
    }

    pub(crate) fn wire_len(&self) -> usize {
        match self {
            Binding::Client(c) => 4 + c.data_len(),
            Binding::Prefix(p) => p.wire_len(),
        }
    }

    pub(crate) fn write(&self, w: &mut OptionWriter<'_>) -> Result<(), EncodeError> {
        match self {
            Binding::Client(c) => c.write(w),
            Binding::Prefix(p) => p.write(w),
        }
    }
}
