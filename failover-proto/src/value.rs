//! Typed option values: enumerations, flag fields, the hash bucket assignment.

use core::fmt;

/// Defines an integer-coded enumeration that keeps unknown values: the variants with their
/// numbers and names, `From` both ways, `name()`, and, when a format for unknown values is
/// given, `Display` (the name, or that format with the number). The message types, option
/// codes and option values of both protocols are defined with it.
macro_rules! code_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident: $int:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $value:literal => $text:literal, )+
        }
        $(#[$umeta:meta])*
        Unknown => $utext:literal $(, displayed as $ufmt:literal)?;
        $(#[$nmeta:meta])*
        fn name;
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[cfg_attr(feature = "defmt", derive(defmt::Format))]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
            $(#[$umeta])*
            Unknown($int),
        }

        impl From<$int> for $name {
            fn from(value: $int) -> Self {
                match value {
                    $( $value => $name::$variant, )+
                    other => $name::Unknown(other),
                }
            }
        }

        impl From<$name> for $int {
            fn from(value: $name) -> $int {
                match value {
                    $( $name::$variant => $value, )+
                    $name::Unknown(other) => other,
                }
            }
        }

        impl $name {
            $(#[$nmeta])*
            pub const fn name(&self) -> &'static str {
                match self {
                    $( $name::$variant => $text, )+
                    $name::Unknown(_) => $utext,
                }
            }

            /// Every value with a name, in the order of the table.
            #[allow(dead_code)]
            pub(crate) const NAMED: &'static [$int] = &[$( $value, )+];
        }

        $(
            impl core::fmt::Display for $name {
                fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                    match self {
                        $name::Unknown(v) => write!(f, $ufmt, v),
                        _ => f.write_str(self.name()),
                    }
                }
            }
        )?
    };
}

/// Defines an option value enumeration (`u8` unless `: u16` follows the name) with
/// [`code_enum!`]: unknown values are named "unknown" and shown with their number. Shared with
/// [`crate::v6`].
macro_rules! u8_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $value:literal => $text:literal, )+
        }
    ) => {
        u8_enum! {
            $(#[$meta])*
            pub enum $name: u8 {
                $( $(#[$vmeta])* $variant = $value => $text, )+
            }
        }
    };
    (
        $(#[$meta:meta])*
        pub enum $name:ident: $int:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $value:literal => $text:literal, )+
        }
    ) => {
        $crate::value::code_enum! {
            $(#[$meta])*
            pub enum $name: $int {
                $( $(#[$vmeta])* $variant = $value => $text, )+
            }
            /// A value this codec does not know, kept as received.
            Unknown => "unknown", displayed as "unknown ({})";
            /// The specification's name or description of this value.
            fn name;
        }
    };
}

u8_enum! {
    /// binding-status (option 3, §12.3; life cycle in §5.11).
    pub enum BindingStatus {
        /// Available to the primary.
        Free = 1 => "FREE",
        /// Leased to a client.
        Active = 2 => "ACTIVE",
        /// The client's lease ran out.
        Expired = 3 => "EXPIRED",
        /// The client released the lease.
        Released = 4 => "RELEASED",
        /// Unusable (declined, answered a ping, ...).
        Abandoned = 5 => "ABANDONED",
        /// Made available by an operator.
        Reset = 6 => "RESET",
        /// Available to the secondary.
        Backup = 7 => "BACKUP",
    }
}

impl BindingStatus {
    /// Whether a BNDUPD with this status must identify the client (§7.1.1 Table 7.1.1-1):
    /// ACTIVE MUST, EXPIRED and RELEASED SHOULD (ISC rejects them without a hardware address).
    pub const fn requires_client(&self) -> bool {
        matches!(
            self,
            BindingStatus::Active | BindingStatus::Expired | BindingStatus::Released
        )
    }
}

u8_enum! {
    /// server-state (option 24, §12.24). RECOVER-WAIT has no number in draft-12; ISC dhcpd
    /// uses 254 for it, as do we.
    pub enum ServerState {
        /// STARTUP (§9.3). Never sent: the S flag and the remembered state are sent instead.
        Startup = 1 => "STARTUP",
        /// NORMAL (§9.8).
        Normal = 2 => "NORMAL",
        /// COMMUNICATIONS-INTERRUPTED (§9.9).
        CommunicationsInterrupted = 3 => "COMMUNICATIONS-INTERRUPTED",
        /// PARTNER-DOWN (§9.4).
        PartnerDown = 4 => "PARTNER-DOWN",
        /// POTENTIAL-CONFLICT (§9.10).
        PotentialConflict = 5 => "POTENTIAL-CONFLICT",
        /// RECOVER (§9.5).
        Recover = 6 => "RECOVER",
        /// PAUSED (§9.1).
        Paused = 7 => "PAUSED",
        /// SHUTDOWN (§9.2).
        Shutdown = 8 => "SHUTDOWN",
        /// RECOVER-DONE (§9.7).
        RecoverDone = 9 => "RECOVER-DONE",
        /// RESOLUTION-INTERRUPTED (§9.11).
        ResolutionInterrupted = 10 => "RESOLUTION-INTERRUPTED",
        /// CONFLICT-DONE (§9.12).
        ConflictDone = 11 => "CONFLICT-DONE",
        /// RECOVER-WAIT (§9.6), 254 as ISC dhcpd sends it.
        RecoverWait = 254 => "RECOVER-WAIT",
    }
}

u8_enum! {
    /// reject-reason (option 21, §12.21).
    pub enum RejectReason {
        /// 0: reserved.
        Reserved = 0 => "Reserved",
        /// 1: the address is not in any pool of this relationship.
        IllegalIpAddress = 1 => "Illegal IP address (not part of any address pool)",
        /// 2: the address is in use by another client.
        FatalConflict = 2 => "Fatal conflict exists: address in use by other client",
        /// 3: required binding options are missing.
        MissingBindingInformation = 3 => "Missing binding information",
        /// 4: the clocks differ too much.
        TimeMismatch = 4 => "Connection rejected, time mismatch too great",
        /// 5: the MCLT is missing or invalid.
        InvalidMclt = 5 => "Connection rejected, invalid MCLT",
        /// 6: unspecified connection rejection.
        UnknownConnectionReason = 6 => "Connection rejected, unknown reason",
        /// 7: a connection for this relationship exists already.
        DuplicateConnection = 7 => "Connection rejected, duplicate connection",
        /// 8: the relationship name or partner is not known.
        InvalidPartner = 8 => "Connection rejected, invalid failover partner",
        /// 9: TLS not supported.
        TlsNotSupported = 9 => "TLS not supported",
        /// 10: TLS supported but not configured.
        TlsNotConfigured = 10 => "TLS supported but not configured",
        /// 11: TLS required but not supported by the partner.
        TlsRequired = 11 => "TLS required but not supported by partner",
        /// 12: message digest not supported.
        DigestNotSupported = 12 => "Message digest not supported",
        /// 13: message digest not configured.
        DigestNotConfigured = 13 => "Message digest not configured",
        /// 14: protocol version mismatch.
        VersionMismatch = 14 => "Protocol version mismatch",
        /// 15: the received binding data is older than ours.
        OutdatedBindingInformation = 15 => "Outdated binding information",
        /// 16: the received binding data is less critical than ours.
        LessCriticalBindingInformation = 16 => "Less critical binding information",
        /// 17: no traffic within the receive timer.
        NoTraffic = 17 => "No traffic within sufficient time",
        /// 18: the hash bucket assignment conflicts (§7.8.2; its text says 19, the table 18).
        HbaConflict = 18 => "Hash bucket assignment conflict",
        /// 19: the R flag names an address this server has not reserved.
        IpNotReserved = 19 => "IP not reserved on this server",
        /// 20: the message digest did not compare.
        DigestFailed = 20 => "Message digest failed to compare",
        /// 21: the message digest is missing.
        MissingDigest = 21 => "Missing message digest",
        /// 254: an error that matches no other code.
        UnknownError = 254 => "Unknown: Error occurred but does not match any reason code",
    }
}

impl RejectReason {
    /// The draft's human description of this reason (§12.21).
    pub const fn description(&self) -> &'static str {
        self.name()
    }
}

u8_enum! {
    /// TLS-request (option 27, §12.27).
    pub enum TlsRequest {
        /// 0: no TLS.
        NoTls = 0 => "no TLS",
        /// 1: TLS desired but optional.
        Optional = 1 => "TLS optional",
        /// 2: TLS required.
        Required = 2 => "TLS required",
    }
}

u8_enum! {
    /// TLS-reply (option 26, §12.26).
    pub enum TlsReply {
        /// 0: no TLS.
        NoTls = 0 => "no TLS",
        /// 1: TLS will be used.
        Tls = 1 => "TLS",
    }
}

u8_enum! {
    /// The digest type byte of message-digest (option 17, §12.17).
    pub enum DigestType {
        /// 1: HMAC-MD5, 16-byte digest.
        HmacMd5 = 1 => "HMAC-MD5",
    }
}

/// Defines a bit-field newtype with named flags.
macro_rules! flags {
    (
        $(#[$meta:meta])*
        pub struct $name:ident($ty:ty) {
            $( $(#[$fmeta:meta])* const $flag:ident = $bit:literal; )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
        #[cfg_attr(feature = "defmt", derive(defmt::Format))]
        pub struct $name(pub $ty);

        impl $name {
            $( $(#[$fmeta])* pub const $flag: $name = $name($bit); )+
            /// No flag set.
            pub const EMPTY: $name = $name(0);

            /// Whether every bit of `other` is set.
            pub const fn contains(self, other: $name) -> bool {
                self.0 & other.0 == other.0
            }

            /// The bits of both.
            #[must_use]
            pub const fn union(self, other: $name) -> $name {
                $name(self.0 | other.0)
            }

            /// Bits the draft says must be zero but are set.
            pub const fn unknown_bits(self) -> $ty {
                self.0 & !(0 $( | $bit )+)
            }
        }
    };
}

flags! {
    /// server-flags (option 23, §12.23).
    pub struct ServerFlags(u8) {
        /// S: the sender is in STARTUP.
        const STARTUP = 0x01;
    }
}

flags! {
    /// IP-flags (option 12, §12.12): two bytes on the wire (bits numbered from the LSB).
    pub struct IpFlags(u16) {
        /// R: the address is reserved on the sender (§5.13).
        const RESERVED = 0x0001;
        /// B: the address was allocated to a BOOTP client.
        const BOOTP = 0x0002;
    }
}

flags! {
    /// The flags of the DDNS option (option 9, §12.9).
    pub struct DdnsFlags(u16) {
        /// C: the forward (A) update is complete.
        const FORWARD_COMPLETE = 0x0001;
        /// A: this server controls the A record.
        const SERVER_CONTROLS_A = 0x0002;
        /// D: the reverse (PTR) update is complete.
        const REVERSE_COMPLETE = 0x0004;
        /// P: this server controls the PTR record.
        const SERVER_CONTROLS_PTR = 0x0008;
    }
}

/// The role of a server in a failover relationship (§5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Role {
    /// The primary server: owns FREE addresses, sends CONNECT, sets the MCLT.
    Primary,
    /// The secondary server: owns BACKUP addresses.
    Secondary,
}

impl Role {
    /// The other role.
    #[must_use]
    pub const fn partner(self) -> Role {
        match self {
            Role::Primary => Role::Secondary,
            Role::Secondary => Role::Primary,
        }
    }
}

/// What a set bit of a hash bucket assignment means (draft vs ISC, RFC 3074 §5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum HbaPolarity {
    /// ISC dhcpd: a set bit means the **primary** serves the bucket (`split`, `hba`).
    #[default]
    BitsArePrimary,
    /// draft-12 §12.11 / §5.3: a set bit means the **secondary** serves the bucket.
    BitsAreSecondary,
}

/// hash-bucket-assignment (option 11, §12.11): 256 bits, one per RFC 3074 hash bucket.
///
/// Bucket `b` is bit `b & 7` (LSB first) of byte `b >> 3`.
///
/// ```
/// use failover_proto::{Hba, HbaPolarity, Role};
/// let hba = Hba::split(128); // ISC `split 128;`
/// assert!(hba.get(57));
/// assert!(!hba.get(201));
/// assert_eq!(hba.server_for(201, HbaPolarity::BitsArePrimary), Role::Secondary);
/// assert_eq!(hba.server_for(201, HbaPolarity::BitsAreSecondary), Role::Primary);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Hba(pub [u8; 32]);

impl Hba {
    /// Length of the option data.
    pub const LEN: usize = 32;

    /// Buckets `0..n` set (ISC's `split n`); `n` above 256 is read as 256.
    #[allow(clippy::indexing_slicing)] // b < 256, so b >> 3 < 32
    pub const fn split(n: u16) -> Hba {
        let mut bits = [0u8; 32];
        let mut b = 0u16;
        while b < n && b < 256 {
            bits[(b >> 3) as usize] |= 1 << (b & 7);
            b += 1;
        }
        Hba(bits)
    }

    /// Whether bucket `bucket` is set.
    #[allow(clippy::indexing_slicing)] // a u8 bucket >> 3 is below 32
    pub const fn get(&self, bucket: u8) -> bool {
        self.0[(bucket >> 3) as usize] & (1 << (bucket & 7)) != 0
    }

    /// Sets or clears bucket `bucket`.
    pub fn set(&mut self, bucket: u8, value: bool) {
        let mask = 1u8 << (bucket & 7);
        if let Some(byte) = self.0.get_mut(usize::from(bucket >> 3)) {
            if value {
                *byte |= mask;
            } else {
                *byte &= !mask;
            }
        }
    }

    /// Number of set buckets.
    pub fn count(&self) -> u32 {
        self.0.iter().map(|b| b.count_ones()).sum()
    }

    /// The complement: every bucket flipped.
    #[must_use]
    pub fn inverted(&self) -> Hba {
        let mut out = self.0;
        for b in &mut out {
            *b = !*b;
        }
        Hba(out)
    }

    /// Which server the assignment designates for `bucket`, read with `polarity`.
    pub const fn server_for(&self, bucket: u8, polarity: HbaPolarity) -> Role {
        match (self.get(bucket), polarity) {
            (true, HbaPolarity::BitsArePrimary) | (false, HbaPolarity::BitsAreSecondary) => {
                Role::Primary
            }
            _ => Role::Secondary,
        }
    }

    /// Whether the server in `role` serves `bucket` under this assignment.
    pub const fn serves(&self, role: Role, bucket: u8, polarity: HbaPolarity) -> bool {
        matches!(
            (self.server_for(bucket, polarity), role),
            (Role::Primary, Role::Primary) | (Role::Secondary, Role::Secondary)
        )
    }
}

impl fmt::Debug for Hba {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Hba(")?;
        for b in &self.0 {
            write!(f, "{b:02x}")?;
        }
        f.write_str(")")
    }
}

/// Text carried by an option (relationship-name, message, vendor-class-identifier): bytes on
/// the wire, usually ASCII, without a NUL terminator.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Text<'a>(pub &'a [u8]);

impl<'a> Text<'a> {
    /// The text as a string slice, if it is UTF-8.
    pub fn as_str(&self) -> Option<&'a str> {
        core::str::from_utf8(self.0).ok()
    }

    /// The raw bytes.
    pub const fn as_bytes(&self) -> &'a [u8] {
        self.0
    }
}

impl<'a> From<&'a str> for Text<'a> {
    fn from(s: &'a str) -> Self {
        Text(s.as_bytes())
    }
}

impl fmt::Debug for Text<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\"", self)
    }
}

impl fmt::Display for Text<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for chunk in self.0.utf8_chunks() {
            for c in chunk.valid().chars() {
                write!(f, "{}", c.escape_debug())?;
            }
            for b in chunk.invalid() {
                write!(f, "\\x{b:02x}")?;
            }
        }
        Ok(())
    }
}

/// client-hardware-address (option 5, §12.5): the ARP hardware type, then the address bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct HardwareAddress<'a> {
    /// ARP hardware type (1 = Ethernet); the draft forbids 0.
    pub htype: u8,
    /// The `chaddr` bytes (6 for Ethernet).
    pub address: &'a [u8],
}

impl HardwareAddress<'_> {
    /// Length of the option data.
    pub const fn wire_len(&self) -> usize {
        1 + self.address.len()
    }
}

/// DDNS (option 9, §12.9): flags and the client's FQDN in DNS wire format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Ddns<'a> {
    /// Who controls which records, and what is done.
    pub flags: DdnsFlags,
    /// The FQDN, RFC 1035 wire format.
    pub fqdn: &'a [u8],
}

/// message-digest (option 17, §12.17): a type byte and the digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct MessageDigest<'a> {
    /// The algorithm.
    pub kind: DigestType,
    /// The digest bytes (16 for HMAC-MD5).
    pub digest: &'a [u8],
}

/// The only protocol-version defined (§12.20).
pub const PROTOCOL_VERSION: u8 = 1;

pub(crate) use {code_enum, flags, u8_enum};
