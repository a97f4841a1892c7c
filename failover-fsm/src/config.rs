//! Configuration of one failover endpoint, with validation.

use core::fmt;

use failover_proto::{Hba, HbaPolarity, Role};
use heapless::Vec;

use crate::dialect::Dialect;
use crate::policy::BalanceConfig;

/// Longest relationship name kept.
pub const MAX_NAME: usize = 64;
/// Longest vendor-class-identifier we send.
pub const MAX_VENDOR_CLASS: usize = 32;

/// One failover endpoint: one relationship, one role (§5.1).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Config {
    /// Primary or secondary.
    pub role: Role,
    /// relationship-name (§12.22), compared byte for byte.
    pub relationship_name: Vec<u8, MAX_NAME>,
    /// vendor-class-identifier we send (§12.28).
    pub vendor_class: Vec<u8, MAX_VENDOR_CLASS>,
    /// Maximum client lead time in seconds (§5.2.1). The primary's is authoritative and sent in
    /// CONNECT; a secondary uses this value only until it has learned the primary's.
    pub mclt: u32,
    /// Hash bucket assignment a primary sends in CONNECT (§12.11); a secondary learns it.
    pub hba: Hba,
    /// How set HBA bits are read: ISC (primary serves) or draft (secondary serves).
    pub hba_polarity: HbaPolarity,
    /// max-unacked-bndupd we advertise: BNDUPDs we accept before acknowledging (§12.14).
    pub max_unacked_bndupd: u32,
    /// Our tReceive in seconds (`max-response-delay`), advertised as receive-timer (§12.19).
    pub receive_timer: u32,
    /// Clients whose `secs` exceed this are answered by both servers; 0 disables load
    /// balancing under ISC rules (ISC `load balance max seconds`).
    pub load_balance_max_seconds: u16,
    /// Safe period (§10): COMMUNICATIONS-INTERRUPTED turns into PARTNER-DOWN after this many
    /// seconds (ISC `auto-partner-down`); `None` = never automatically.
    pub auto_partner_down: Option<u32>,
    /// Largest tolerated clock difference at CONNECT/CONNECTACK, seconds (ISC: 60, §7.8.2).
    pub max_clock_skew: u32,
    /// How long STARTUP waits for the partner, seconds (ISC: 15, §9.3.2).
    pub startup_delay: u32,
    /// How long STARTUP waits instead when this server was down for the MCLT or longer, or
    /// cannot tell (no recorded time of operation), and would then serve clients: the partner
    /// may have entered PARTNER-DOWN meanwhile, or may still hold the dead server's last
    /// connection until its receive timer runs out (§5.9 suggests 30–60 s). Seconds; the
    /// larger of this and `startup_delay` applies. A server down for less than the MCLT waits
    /// until this long after its last message may have gone (its last recorded operation plus
    /// one heartbeat, a quarter of the MCLT within 5–60 s), if that is later than
    /// `startup_delay` from now and no longer than this from now: the partner's hold on the
    /// old connection counts from then.
    pub startup_delay_after_long_down: u32,
    /// Deadline for the CONNECT/CONNECTACK exchange on a new connection, seconds (ISC: 15).
    pub connect_timeout: u32,
    /// How long a BNDUPD of ours may go unacknowledged on a live connection, seconds; then the
    /// connection is closed (DISCONNECT 17) as if the partner were silent, and the update is
    /// sent again on the next one. CONTACTs alone do not keep a connection "ok" when the
    /// partner cannot process BNDUPDs (§9.8.4 allows COMMUNICATIONS-INTERRUPTED then). 0: no
    /// limit (ISC has none).
    pub ack_timeout: u32,
    /// Which rule book to follow where draft and ISC disagree.
    pub dialect: Dialect,
    /// Pool balancing thresholds (ISC `max-lease-misbalance`, `max-lease-ownership`,
    /// `min-balance`, `max-balance`).
    pub balance: BalanceConfig,
}

/// Why a [`Config`] is not usable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum ConfigError {
    /// The relationship name is empty.
    EmptyRelationshipName,
    /// A primary needs an MCLT above 0 (ISC refuses to start without one).
    ZeroMclt,
    /// max-unacked-bndupd must be at least 1 (§7.8.1).
    ZeroMaxUnacked,
    /// The engine cannot hold that many unacknowledged BNDUPDs: raise its capacity or lower
    /// `max_unacked_bndupd`.
    MaxUnackedAboveCapacity {
        /// What the engine can hold.
        capacity: u32,
    },
    /// The receive timer must be at least 3 s so the partner can send CONTACT every ⌊t/3⌋ s.
    ReceiveTimerTooShort,
    /// A zero connect timeout would close every connection at once.
    ZeroConnectTimeout,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::EmptyRelationshipName => f.write_str("relationship name is empty"),
            ConfigError::ZeroMclt => f.write_str("a primary needs an MCLT above 0"),
            ConfigError::ZeroMaxUnacked => f.write_str("max-unacked-bndupd must be at least 1"),
            ConfigError::MaxUnackedAboveCapacity { capacity } => write!(
                f,
                "max-unacked-bndupd exceeds the engine's capacity of {capacity}"
            ),
            ConfigError::ReceiveTimerTooShort => f.write_str("receive timer must be at least 3 s"),
            ConfigError::ZeroConnectTimeout => f.write_str("connect timeout must be above 0"),
        }
    }
}

impl core::error::Error for ConfigError {}

impl Config {
    /// A configuration with ISC dhcpd's defaults (max-response-delay 20 s, max-unacked-updates
    /// 10, clock skew 60 s, startup 15 s, load balancing off) for `role` and `name`; STARTUP
    /// after a long time down is 60 s (§5.9; ISC always waits 15 s).
    ///
    /// Panics never; a name longer than [`MAX_NAME`] is cut there.
    pub fn new(role: Role, name: &str, mclt: u32) -> Self {
        let bytes = name.as_bytes();
        let name = Vec::from_slice(bytes.get(..MAX_NAME.min(bytes.len())).unwrap_or_default())
            .unwrap_or_default();
        Config {
            role,
            relationship_name: name,
            vendor_class: Vec::from_slice(b"rust-failover-0.1").unwrap_or_default(),
            mclt,
            hba: Hba::split(128),
            hba_polarity: HbaPolarity::BitsArePrimary,
            max_unacked_bndupd: 10,
            receive_timer: 20,
            load_balance_max_seconds: 0,
            auto_partner_down: None,
            max_clock_skew: 60,
            startup_delay: 15,
            startup_delay_after_long_down: 60,
            connect_timeout: 15,
            ack_timeout: 60,
            dialect: Dialect::Isc,
            balance: BalanceConfig::default(),
        }
    }

    /// Checks the configuration against an engine holding `commit_capacity` received updates.
    pub fn validate(&self, commit_capacity: usize) -> Result<(), ConfigError> {
        if self.relationship_name.is_empty() {
            return Err(ConfigError::EmptyRelationshipName);
        }
        if self.role == Role::Primary && self.mclt == 0 {
            return Err(ConfigError::ZeroMclt);
        }
        if self.max_unacked_bndupd == 0 {
            return Err(ConfigError::ZeroMaxUnacked);
        }
        let capacity = u32::try_from(commit_capacity).unwrap_or(u32::MAX);
        if self.max_unacked_bndupd > capacity {
            return Err(ConfigError::MaxUnackedAboveCapacity { capacity });
        }
        if self.receive_timer < 3 {
            return Err(ConfigError::ReceiveTimerTooShort);
        }
        if self.connect_timeout == 0 {
            return Err(ConfigError::ZeroConnectTimeout);
        }
        Ok(())
    }
}
