//! Typed option values of RFC 8156: binding and server states, status codes, flag fields,
//! and the 2000-based time of the wire.

use core::fmt;

use crate::value::{Text, flags, u8_enum};

u8_enum! {
    /// OPTION_F_BINDING_STATUS (114, §5.5.1; life cycle in §7.2). The numbering differs from
    /// draft-12's.
    pub enum BindingStatus {
        /// 1: assigned to a client.
        Active = 1 => "ACTIVE",
        /// 2: the client's lease expired.
        Expired = 2 => "EXPIRED",
        /// 3: the client released it.
        Released = 3 => "RELEASED",
        /// 4: transient, on its way to FREE or FREE-BACKUP (§7.2).
        PendingFree = 4 => "PENDING-FREE",
        /// 5: available to the primary.
        Free = 5 => "FREE",
        /// 6: available to the secondary.
        FreeBackup = 6 => "FREE-BACKUP",
        /// 7: unusable (declined, found in use).
        Abandoned = 7 => "ABANDONED",
        /// 8: made available by an operator.
        Reset = 8 => "RESET",
    }
}

u8_enum! {
    /// OPTION_F_SERVER_STATE (132, §5.5.16). No PAUSED or SHUTDOWN, and 7..=10 differ from
    /// draft-12's numbers.
    pub enum ServerState {
        /// 1: STARTUP (§8.3).
        Startup = 1 => "STARTUP",
        /// 2: NORMAL (§8.8).
        Normal = 2 => "NORMAL",
        /// 3: COMMUNICATIONS-INTERRUPTED (§8.9).
        CommunicationsInterrupted = 3 => "COMMUNICATIONS-INTERRUPTED",
        /// 4: PARTNER-DOWN (§8.4).
        PartnerDown = 4 => "PARTNER-DOWN",
        /// 5: POTENTIAL-CONFLICT (§8.10).
        PotentialConflict = 5 => "POTENTIAL-CONFLICT",
        /// 6: RECOVER (§8.5).
        Recover = 6 => "RECOVER",
        /// 7: RECOVER-WAIT (§8.6).
        RecoverWait = 7 => "RECOVER-WAIT",
        /// 8: RECOVER-DONE (§8.7).
        RecoverDone = 8 => "RECOVER-DONE",
        /// 9: RESOLUTION-INTERRUPTED (§8.11).
        ResolutionInterrupted = 9 => "RESOLUTION-INTERRUPTED",
        /// 10: CONFLICT-DONE (§8.12).
        ConflictDone = 10 => "CONFLICT-DONE",
    }
}

u8_enum! {
    /// The status-code of OPTION_STATUS_CODE (13): RFC 3315/3633/5007/5460/7653's 0..=15 and
    /// RFC 8156's 16..=22 (§5.6, §11).
    pub enum Status: u16 {
        /// 0: success.
        Success = 0 => "Success",
        /// 1: unspecified failure.
        UnspecFail = 1 => "UnspecFail",
        /// 2: no addresses available.
        NoAddrsAvail = 2 => "NoAddrsAvail",
        /// 3: no binding.
        NoBinding = 3 => "NoBinding",
        /// 4: not on link.
        NotOnLink = 4 => "NotOnLink",
        /// 5: use multicast.
        UseMulticast = 5 => "UseMulticast",
        /// 6: no prefix available.
        NoPrefixAvail = 6 => "NoPrefixAvail",
        /// 7: unknown query type.
        UnknownQueryType = 7 => "UnknownQueryType",
        /// 8: malformed query.
        MalformedQuery = 8 => "MalformedQuery",
        /// 9: not configured.
        NotConfigured = 9 => "NotConfigured",
        /// 10: not allowed.
        NotAllowed = 10 => "NotAllowed",
        /// 11: query terminated.
        QueryTerminated = 11 => "QueryTerminated",
        /// 12: data missing.
        DataMissing = 12 => "DataMissing",
        /// 13: catch-up complete.
        CatchUpComplete = 13 => "CatchUpComplete",
        /// 14: not supported (an unsupported protocol version, §6.1.2).
        NotSupported = 14 => "NotSupported",
        /// 15: TLS connection refused (RFC 7653 §8.2).
        TlsConnectionRefused = 15 => "TLSConnectionRefused",
        /// 16: the lease is bound to another client (§5.6).
        AddressInUse = 16 => "AddressInUse",
        /// 17: the update contradicts the receiver's configuration (§5.6).
        ConfigurationConflict = 17 => "ConfigurationConflict",
        /// 18: the update lacks information needed to process it (§5.6).
        MissingBindingInformation = 18 => "MissingBindingInformation",
        /// 19: the receiver's data is more accurate (§5.6).
        OutdatedBindingInformation = 19 => "OutdatedBindingInformation",
        /// 20: the sender is shutting down (§5.6).
        ServerShuttingDown = 20 => "ServerShuttingDown",
        /// 21: the receiver does not do DNS update (§5.6, §9).
        DnsUpdateNotSupported = 21 => "DNSUpdateNotSupported",
        /// 22: the clocks differ by more than 5 s (§5.6, §7.1).
        ExcessiveTimeSkew = 22 => "ExcessiveTimeSkew",
    }
}

impl Status {
    /// Whether the code reports an error (anything but Success, §7.7).
    pub fn is_error(&self) -> bool {
        *self != Status::Success
    }
}

flags! {
    /// OPTION_F_SERVER_FLAGS (131, §5.5.15); bit 0 is the most significant.
    pub struct ServerFlags(u8) {
        /// C (bit 7): the sender has communicated with its partner.
        const COMMUNICATED = 0x01;
        /// S (bit 6): the sender is in STARTUP.
        const STARTUP = 0x02;
        /// A (bit 5): the last server flags received had S set.
        const ACK_STARTUP = 0x04;
    }
}

flags! {
    /// OPTION_F_CONNECT_FLAGS (115, §5.5.2).
    pub struct ConnectFlags(u16) {
        /// F (bit 15): every prefix delegated from one delegable prefix has the same length.
        const FIXED_PD_LENGTH = 0x0001;
    }
}

flags! {
    /// OPTION_F_DNS_FLAGS (119, §5.5.3.3).
    pub struct DnsFlags(u16) {
        /// F (bit 15): the forward zone is up to date.
        const FWD_UPTODATE = 0x0001;
        /// R (bit 14): the reverse zone is up to date.
        const REV_UPTODATE = 0x0002;
        /// S (bit 13): the name was synthesized.
        const SYNTHESIZED_NAME = 0x0004;
        /// U (bit 12): the name came from the client's FQDN option.
        const USING_REQUESTED_FQDN = 0x0008;
    }
}

/// OPTION_F_PROTOCOL_VERSION (127, §5.5.11).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ProtocolVersion {
    /// Major version, 1.
    pub major: u16,
    /// Minor version, 0.
    pub minor: u16,
}

impl ProtocolVersion {
    /// The version RFC 8156 defines: 1.0.
    pub const V1_0: ProtocolVersion = ProtocolVersion { major: 1, minor: 0 };
}

impl fmt::Display for ProtocolVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// OPTION_STATUS_CODE (13): a status and a UTF-8 message (may be empty).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct StatusCode<'a> {
    /// The code.
    pub status: Status,
    /// The message, not NUL-terminated.
    pub message: Text<'a>,
}

impl<'a> StatusCode<'a> {
    /// A status with a message.
    pub const fn new(status: Status, message: &'a str) -> Self {
        StatusCode {
            status,
            message: Text(message.as_bytes()),
        }
    }

    pub(crate) fn from_data(data: &'a [u8]) -> Self {
        let (code, message) = data.split_first_chunk::<2>().unwrap_or((&[0, 0], &[]));
        StatusCode {
            status: Status::from(u16::from_be_bytes(*code)),
            message: Text(message),
        }
    }
}

/// OPTION_F_RECONFIGURE_DATA (129, §5.5.13): when the client's reconfigure key was made, and
/// the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ReconfigureData<'a> {
    /// reconfigure-time, seconds since 2000 ([`time`](super::time)).
    pub time: u32,
    /// reconfigure-key.
    pub key: &'a [u8],
}
