//! DHCPv6 option codes used by RFC 8156 (§5.5, §7.4, §11), their lengths, and the walk every
//! level of a message shares.
//!
//! The TLV itself (2-byte code, 2-byte length, data: RFC 3315 §22.1) is the draft-12 one, so
//! the iterator [`crate::option::Options`], [`crate::option::RawOption`],
//! [`crate::option::OptionWriter`] and [`crate::option::ExtraOptions`] serve both codecs.

use core::fmt;

use crate::error::{DecodeError, DecodeErrorKind};
use crate::option::{Options, RawOption, WideCodeSet};
use crate::value::code_enum;

code_enum! {
    /// A DHCPv6 option code that RFC 8156 defines or places in a failover message. Any
    /// other code is kept as `Unknown`.
    pub enum OptionCode: u16 {
        /// 1, OPTION_CLIENTID (RFC 3315): the client's DUID in OPTION_CLIENT_DATA (§7.4).
        ClientId = 1 => "OPTION_CLIENTID",
        /// 3, OPTION_IA_NA (RFC 3315).
        IaNa = 3 => "OPTION_IA_NA",
        /// 4, OPTION_IA_TA (RFC 3315).
        IaTa = 4 => "OPTION_IA_TA",
        /// 5, OPTION_IAADDR (RFC 3315).
        IaAddr = 5 => "OPTION_IAADDR",
        /// 13, OPTION_STATUS_CODE (RFC 3315; codes 16..=22 from §5.6).
        StatusCode = 13 => "OPTION_STATUS_CODE",
        /// 25, OPTION_IA_PD (RFC 3633).
        IaPd = 25 => "OPTION_IA_PD",
        /// 26, OPTION_IAPREFIX (RFC 3633).
        IaPrefix = 26 => "OPTION_IAPREFIX",
        /// 39, OPTION_CLIENT_FQDN (RFC 4704).
        ClientFqdn = 39 => "OPTION_CLIENT_FQDN",
        /// 45, OPTION_CLIENT_DATA (RFC 5007): one client's binding (§7.4).
        ClientData = 45 => "OPTION_CLIENT_DATA",
        /// 46, OPTION_CLT_TIME (RFC 5007): seconds since the last client contact.
        CltTime = 46 => "OPTION_CLT_TIME",
        /// 47, OPTION_LQ_RELAY_DATA (RFC 5007).
        LqRelayData = 47 => "OPTION_LQ_RELAY_DATA",
        /// 68, OPTION_VSS (RFC 6607).
        Vss = 68 => "OPTION_VSS",
        /// 100, OPTION_LQ_BASE_TIME (RFC 7653): when the data was put in the option.
        LqBaseTime = 100 => "OPTION_LQ_BASE_TIME",
        /// 114, OPTION_F_BINDING_STATUS (§5.5.1).
        BindingStatus = 114 => "OPTION_F_BINDING_STATUS",
        /// 115, OPTION_F_CONNECT_FLAGS (§5.5.2).
        ConnectFlags = 115 => "OPTION_F_CONNECT_FLAGS",
        /// 116, OPTION_F_DNS_REMOVAL_INFO (§5.5.3).
        DnsRemovalInfo = 116 => "OPTION_F_DNS_REMOVAL_INFO",
        /// 117, OPTION_F_DNS_HOST_NAME (§5.5.3.1).
        DnsHostName = 117 => "OPTION_F_DNS_HOST_NAME",
        /// 118, OPTION_F_DNS_ZONE_NAME (§5.5.3.2).
        DnsZoneName = 118 => "OPTION_F_DNS_ZONE_NAME",
        /// 119, OPTION_F_DNS_FLAGS (§5.5.3.3).
        DnsFlags = 119 => "OPTION_F_DNS_FLAGS",
        /// 120, OPTION_F_EXPIRATION_TIME (§5.5.4).
        ExpirationTime = 120 => "OPTION_F_EXPIRATION_TIME",
        /// 121, OPTION_F_MAX_UNACKED_BNDUPD (§5.5.5).
        MaxUnackedBndupd = 121 => "OPTION_F_MAX_UNACKED_BNDUPD",
        /// 122, OPTION_F_MCLT (§5.5.6).
        Mclt = 122 => "OPTION_F_MCLT",
        /// 123, OPTION_F_PARTNER_LIFETIME (§5.5.7).
        PartnerLifetime = 123 => "OPTION_F_PARTNER_LIFETIME",
        /// 124, OPTION_F_PARTNER_LIFETIME_SENT (§5.5.8).
        PartnerLifetimeSent = 124 => "OPTION_F_PARTNER_LIFETIME_SENT",
        /// 125, OPTION_F_PARTNER_DOWN_TIME (§5.5.9).
        PartnerDownTime = 125 => "OPTION_F_PARTNER_DOWN_TIME",
        /// 126, OPTION_F_PARTNER_RAW_CLT_TIME (§5.5.10).
        PartnerRawCltTime = 126 => "OPTION_F_PARTNER_RAW_CLT_TIME",
        /// 127, OPTION_F_PROTOCOL_VERSION (§5.5.11).
        ProtocolVersion = 127 => "OPTION_F_PROTOCOL_VERSION",
        /// 128, OPTION_F_KEEPALIVE_TIME (§5.5.12).
        KeepaliveTime = 128 => "OPTION_F_KEEPALIVE_TIME",
        /// 129, OPTION_F_RECONFIGURE_DATA (§5.5.13).
        ReconfigureData = 129 => "OPTION_F_RECONFIGURE_DATA",
        /// 130, OPTION_F_RELATIONSHIP_NAME (§5.5.14).
        RelationshipName = 130 => "OPTION_F_RELATIONSHIP_NAME",
        /// 131, OPTION_F_SERVER_FLAGS (§5.5.15).
        ServerFlags = 131 => "OPTION_F_SERVER_FLAGS",
        /// 132, OPTION_F_SERVER_STATE (§5.5.16).
        ServerState = 132 => "OPTION_F_SERVER_STATE",
        /// 133, OPTION_F_START_TIME_OF_STATE (§5.5.17).
        StartTimeOfState = 133 => "OPTION_F_START_TIME_OF_STATE",
        /// 134, OPTION_F_STATE_EXPIRATION_TIME (§5.5.18).
        StateExpirationTime = 134 => "OPTION_F_STATE_EXPIRATION_TIME",
    }
    /// Any other code.
    Unknown => "unknown";
    /// The registry name of the option.
    fn name;
}

/// Every code of [`OptionCode`] but `Unknown`.
pub(crate) const KNOWN: WideCodeSet = WideCodeSet::of(OptionCode::NAMED);

impl fmt::Display for OptionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), u16::from(*self))
    }
}

/// Whether `len` is a valid data length for option `code` (§5.5 for 114..=134, the base
/// specifications for the reused options). Unknown codes accept any length.
pub const fn length_ok(code: u16, len: usize) -> bool {
    match code {
        114 | 131 | 132 => len == 1,
        115 | 119 => len == 2,
        46 | 100 | 120..=128 | 133 | 134 => len == 4,
        129 => len >= 4,
        // DUID: a 2-byte type and at most 128 bytes (RFC 3315 §9.1).
        1 => len >= 2 && len <= 130,
        3 | 25 => len >= 12,
        4 => len >= 4,
        5 => len >= 24,
        26 => len >= 25,
        13 => len >= 2,
        39 | 68 => len >= 1,
        47 => len >= 16,
        _ => true,
    }
}

/// The options that carry a binding and may only appear where §7.4 nests them.
pub(crate) const STRUCTURAL: WideCodeSet = WideCodeSet::of(&[3, 4, 5, 25, 26, 45]);

/// The name of a nesting level for error messages: 0 is the message itself.
pub(crate) fn parent_name(parent: u16) -> &'static str {
    if parent == 0 {
        "the message"
    } else {
        OptionCode::from(parent).name()
    }
}

/// One level of nesting: what may appear in it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Level {
    /// The enclosing option (0: the message).
    pub(crate) parent: u16,
    /// Structural codes allowed here.
    pub(crate) allowed: WideCodeSet,
    /// Known codes that may repeat here.
    pub(crate) repeatable: WideCodeSet,
}

impl Level {
    /// The top level of a failover message without binding.
    pub(crate) const TOP: Level = Level {
        parent: 0,
        allowed: WideCodeSet::EMPTY,
        repeatable: WideCodeSet::EMPTY,
    };
    /// The top level of a BNDUPD/BNDREPLY: one CLIENT_DATA or one IAPREFIX (§7.4).
    pub(crate) const BINDING: Level = Level {
        parent: 0,
        allowed: WideCodeSet::of(&[26, 45]),
        repeatable: WideCodeSet::EMPTY,
    };
    /// Inside OPTION_CLIENT_DATA: any number of IAs.
    pub(crate) const CLIENT_DATA: Level = Level {
        parent: 45,
        allowed: WideCodeSet::of(&[3, 4, 25]),
        repeatable: WideCodeSet::of(&[3, 4, 25]),
    };
    /// Inside an IA_NA or IA_TA: addresses.
    pub(crate) const fn ia_addresses(parent: u16) -> Level {
        Level {
            parent,
            allowed: WideCodeSet::of(&[5]),
            repeatable: WideCodeSet::of(&[5]),
        }
    }
    /// Inside an IA_PD: prefixes.
    pub(crate) const IA_PD: Level = Level {
        parent: 25,
        allowed: WideCodeSet::of(&[26]),
        repeatable: WideCodeSet::of(&[26]),
    };
    /// Inside an IAADDR/IAPREFIX, or OPTION_F_DNS_REMOVAL_INFO: no binding options.
    pub(crate) const fn leaf(parent: u16) -> Level {
        Level {
            parent,
            allowed: WideCodeSet::EMPTY,
            repeatable: WideCodeSet::EMPTY,
        }
    }
}

/// Walks the options of one level and hands each to `visit`: the TLV structure, the length of
/// every known option, binding options only where [`Level`] allows them, no known option
/// twice unless it may repeat there.
pub(crate) fn scan<'a>(
    data: &'a [u8],
    base: usize,
    level: Level,
    mut visit: impl FnMut(RawOption<'a>) -> Result<(), DecodeError>,
) -> Result<(), DecodeError> {
    let mut seen = WideCodeSet::EMPTY;
    for opt in Options::new(data, base) {
        let opt = opt?;
        let code = opt.code;
        if KNOWN.contains(code) {
            if !length_ok(code, opt.data.len()) {
                return Err(DecodeError::new(
                    DecodeErrorKind::V6OptionLength {
                        code,
                        len: u16::try_from(opt.data.len()).unwrap_or(u16::MAX),
                    },
                    opt.offset,
                ));
            }
            if STRUCTURAL.contains(code) && !level.allowed.contains(code) {
                return Err(DecodeError::new(
                    DecodeErrorKind::MisplacedOption {
                        code,
                        parent: level.parent,
                    },
                    opt.offset,
                ));
            }
            if seen.contains(code) && !level.repeatable.contains(code) {
                return Err(DecodeError::new(
                    DecodeErrorKind::V6DuplicateOption(code),
                    opt.offset,
                ));
            }
            seen.insert(code);
        }
        visit(opt)?;
    }
    Ok(())
}

/// Checks only TLV structure and known lengths (plain DHCPv6 messages such as REPLY, whose
/// rules are RFC 3315's, not ours).
pub(crate) fn scan_plain(data: &[u8], base: usize) -> Result<(), DecodeError> {
    for opt in Options::new(data, base) {
        let opt = opt?;
        if KNOWN.contains(opt.code) && !length_ok(opt.code, opt.data.len()) {
            return Err(DecodeError::new(
                DecodeErrorKind::V6OptionLength {
                    code: opt.code,
                    len: u16::try_from(opt.data.len()).unwrap_or(u16::MAX),
                },
                opt.offset,
            ));
        }
    }
    Ok(())
}
