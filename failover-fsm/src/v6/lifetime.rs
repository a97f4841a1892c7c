//! The MCLT rule on lifetimes (§4.4): v4's [`lease_time`] computes the same cap, so this
//! module only maps the v6 times onto it.
//!
//! RFC 8156 §4.4: the lifetime a client is given MUST NOT end later than
//! `max(acked-partner-lifetime, now) + MCLT`, in every state but PARTNER-DOWN, where the MCLT
//! does not restrict lifetimes (§8.4.1). Its example sends `partner-lifetime = now + desired +
//! granted / 2` (T1 at half the lifetime). draft-12's rule under [`Dialect::Draft`] is the
//! same with this mapping:
//!
//! | v4 ([`LeaseTimes`]) | v6 (§7.3) |
//! |---|---|
//! | acked PET | acked-partner-lifetime |
//! | sent PET | — (RFC 8156 clears partner-lifetime once acked, so it cannot lower the acked one) |
//! | received PET | — (not in §4.4's formula) |
//! | lease expiration (COMMUNICATIONS-INTERRUPTED only) | — ([`LeaseTimes::for_client`] leaves it out too) |
//! | PET sent in BNDUPD | partner-lifetime |
//! | [`PartnerDownLeases::Unrestricted`] | PARTNER-DOWN, §8.4.1 |
//!
//! ```
//! use failover_fsm::UnixTime;
//! use failover_fsm::v6::lifetime::grant;
//! use failover_proto::v6::ServerState;
//!
//! // §4.4's Figure 1: MCLT 1 h, desired 3 days; a new client gets 1 h.
//! let now = UnixTime(1_700_000_000);
//! let g = grant(ServerState::Normal, 3600, now, 3 * 86_400, None);
//! assert_eq!(g.granted, 3600);
//! assert_eq!(g.potential_expiration, now.plus(1800 + 3 * 86_400)); // the partner-lifetime
//! ```

use failover_proto::v6::ServerState;

use super::state::to_v4;
use crate::dialect::Dialect;
use crate::policy::{
    Endpoint, LeaseGrant, LeaseRequest, LeaseTimes, PartnerDownLeases, lease_time,
};
use crate::time::UnixTime;

/// The lifetime to give a client asking for `desired` seconds in `state`, and the
/// partner-lifetime to send ([`LeaseGrant::potential_expiration`]): v4's [`lease_time`] with
/// the mapping of the module docs. `acked_partner_lifetime` is the lease's, for a renewal of
/// the same client; `None` for a new client.
pub fn grant(
    state: ServerState,
    mclt: u32,
    now: UnixTime,
    desired: u32,
    acked_partner_lifetime: Option<UnixTime>,
) -> LeaseGrant {
    let endpoint = Endpoint {
        dialect: Dialect::Draft,
        // The role does not enter the draft's lease-time rule.
        role: failover_proto::Role::Primary,
        state: to_v4(state),
        state_since: now,
        partner_state: None,
        mclt,
        lease_mclt: mclt,
    };
    let request = LeaseRequest {
        now,
        desired,
        times: LeaseTimes {
            acked_pet: acked_partner_lifetime,
            ..LeaseTimes::NONE
        },
        partner_down: PartnerDownLeases::Unrestricted,
    };
    lease_time(&endpoint, &request)
}
