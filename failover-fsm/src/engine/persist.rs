//! What must survive a restart besides the lease database (§9.2, §9.3.2).

use failover_proto::ServerState;

use crate::time::UnixTime;

/// What the engine persisted last time, handed back at start (§9.2, §9.3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Persisted {
    /// The failover state last persisted.
    pub state: ServerState,
    /// When it was entered.
    pub since: UnixTime,
    /// The MCLT both servers last agreed on: a secondary's learned from its primary
    /// (§7.8.2 step 7), a primary's accepted by its secondary. A primary restarted with another
    /// MCLT uses it to stay safe until the secondary has accepted the new one (§5.2.1: the MCLT
    /// "MUST be the same and known to both").
    pub mclt: Option<u32>,
    /// The last time this server knew it was operating (for §9.3.2 step 5).
    pub last_operational: Option<UnixTime>,
    /// The lease table is lost or an older copy ([`Engine::lease_table_lost`]) and the
    /// partner's UPDDONE has not refreshed it yet: a restart in between keeps refreshing.
    pub lease_table_lost: bool,
}
