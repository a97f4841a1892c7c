//! Whether a lease may go to a client now: the failover state (§8.x.1), who owns the lease
//! (§4.2.1, §4.2.2, [`super::owner`]) and the reallocation waits (§4.2.2.1, §8.4.1, §8.8.1).
//!
//! * Outside PARTNER-DOWN a server gives out only its own available leases; an EXPIRED,
//!   RELEASED or RESET lease moves to another client only after the partner acked a BNDUPD
//!   with that status (it is then PENDING-FREE, FREE or FREE-BACKUP). The same client may get
//!   its EXPIRED or RELEASED lease back while no BNDUPD with that status was sent (§4.2.2.1).
//! * In PARTNER-DOWN: own available leases at once; the partner's delegable prefixes only once
//!   the own pool is empty and MCLT after entry (§8.4.1); leases that were not available at
//!   entry MCLT after the latest of their times and the entry (§4.2.2.1, §8.4.1).
//! * Never the partner's addresses, even in PARTNER-DOWN: §4.2.1 says MUST NOT, §8.4.1 says
//!   SHOULD NOT and then only after entry + MCLT; never doing it satisfies both.
//!
//! ```
//! use failover_fsm::v6::allocate::{Endpoint, Refusal, Request, may_allocate};
//! use failover_fsm::v6::{LocalLease, TIME_SKEW_LIMIT, owner::Kind};
//! use failover_fsm::{Role, UnixTime};
//! use failover_proto::v6::{BindingStatus, ServerState};
//!
//! let entry = UnixTime(1_700_000_000);
//! let ep = Endpoint {
//!     role: Role::Primary,
//!     state: ServerState::PartnerDown,
//!     state_since: entry,
//!     mclt: 3600,
//! };
//! // The secondary's available prefix, our own pool used up: MCLT after entry (§8.4.1).
//! let theirs = LocalLease::new(BindingStatus::FreeBackup);
//! let ask = Request { resource: Kind::Prefix, last_client: false, own_pool_empty: true };
//! let from = entry.plus(3600 + TIME_SKEW_LIMIT);
//! assert_eq!(may_allocate(&ep, &theirs, ask, entry.plus(60)), Err(Refusal::WaitUntil(from)));
//! assert_eq!(may_allocate(&ep, &theirs, ask, from), Ok(()));
//! ```

use failover_proto::Role;
use failover_proto::v6::{BindingStatus, ServerState};

use super::owner::{Kind, available_to, freed_status};
use super::{LocalLease, TIME_SKEW_LIMIT};
use crate::time::UnixTime;

/// The failover situation of this server, as the allocation rules need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Endpoint {
    /// Primary or secondary.
    pub role: Role,
    /// Our endpoint state.
    pub state: ServerState,
    /// When we entered `state`: in PARTNER-DOWN the reference of every MCLT wait.
    pub state_since: UnixTime,
    /// The maximum client lead time, seconds (§4.4).
    pub mclt: u32,
}

impl Endpoint {
    /// The endpoint a V6 engine's [`Status`](crate::Status) describes (its state mapped with
    /// [`state::from_v4`](super::state::from_v4); a state RFC 8156 lacks reads as STARTUP,
    /// which serves nobody).
    pub fn of_status(status: &crate::Status) -> Endpoint {
        Endpoint {
            role: status.role,
            state: super::state::from_v4(status.state).unwrap_or(ServerState::Startup),
            state_since: status.state_since,
            mclt: status.mclt,
        }
    }
}

/// What is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Request {
    /// The lease: an address or a delegable prefix.
    pub resource: Kind,
    /// The client asking is the one the lease is (or was last) bound to.
    pub last_client: bool,
    /// None of our own available leases of this kind is left: in PARTNER-DOWN the
    /// partner's delegable prefixes are used only then (§8.4.1).
    pub own_pool_empty: bool,
}

/// Why a lease may not go to the client now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Refusal {
    /// No leases are given out (or, for a renewal, renewed) in this state (§8.x.1).
    NotServing(ServerState),
    /// ACTIVE for another client, or ABANDONED (§7.2).
    Unavailable(BindingStatus),
    /// The partner's address: never ours (§4.2.1).
    PartnersAddress,
    /// The partner's delegable prefix: only in PARTNER-DOWN (§4.2.2, §8.4.1).
    PartnersPrefix,
    /// In PARTNER-DOWN the partner's prefixes wait until our own are all used (§8.4.1).
    OwnPoolFirst,
    /// The partner has not acked the EXPIRED / RELEASED / RESET yet (§4.2.2.1).
    AwaitingAck(BindingStatus),
    /// Allowed from this time on (PARTNER-DOWN waits, §4.2.2.1, §8.4.1).
    WaitUntil(UnixTime),
}

/// Whether `role` gives leases to new clients in `state` (§8.x.1): the primary in NORMAL
/// (the secondary is only renew responsive there, §8.8.1), both in COMMUNICATIONS-INTERRUPTED,
/// PARTNER-DOWN and RESOLUTION-INTERRUPTED (own pool), the primary in CONFLICT-DONE.
pub const fn allocates(role: Role, state: ServerState) -> bool {
    use ServerState::{
        CommunicationsInterrupted, ConflictDone, Normal, PartnerDown, ResolutionInterrupted,
    };
    match state {
        Normal | ConflictDone => matches!(role, Role::Primary),
        CommunicationsInterrupted | PartnerDown | ResolutionInterrupted => true,
        _ => false,
    }
}

/// Whether `role` extends a client's existing lease in `state`: where it [`allocates`], and
/// also the secondary in NORMAL and either in RECOVER-DONE, which are renew responsive
/// (§8.8.1, §8.7.1).
pub const fn renews(role: Role, state: ServerState) -> bool {
    allocates(role, state) || matches!(state, ServerState::Normal | ServerState::RecoverDone)
}

/// Whether the lease recorded as `lease` may go to the client of `request` now.
///
/// By binding-status:
/// * ACTIVE: only to its own client, where the state [`renews`].
/// * FREE / FREE-BACKUP / PENDING-FREE: to anybody, where the state [`allocates`], if it is
///   ours ([`available_to`]); the partner's prefix only in PARTNER-DOWN, once
///   `own_pool_empty`, from entry + MCLT on (§8.4.1); the partner's address never (§4.2.1).
/// * EXPIRED / RELEASED: back to its own client while [`LocalLease::update_sent`] is false
///   (§4.2.2.1).
/// * EXPIRED / RELEASED / RESET otherwise: outside PARTNER-DOWN only once acked (then it has
///   another status); in PARTNER-DOWN from `MCLT + max(entry, start-time-of-state,
///   acked-partner-lifetime, partner-lifetime, expiration-time)` on — the union of the lists
///   of §4.2.2.1 and §8.4.1 (the client's lease ended by start-time-of-state), then to its
///   freed owner ([`freed_status`]): an address of the partner's never, a prefix as the
///   partner's above.
/// * ABANDONED: never (an operator RESETs it, §7.2).
///
/// Every wait adds [`TIME_SKEW_LIMIT`]: the partner's times come from a clock up to 5 s off
/// (§7.1).
pub fn may_allocate(
    endpoint: &Endpoint,
    lease: &LocalLease,
    request: Request,
    now: UnixTime,
) -> Result<(), Refusal> {
    use BindingStatus::{Active, Expired, Free, FreeBackup, PendingFree, Released, Reset};
    let ep = endpoint;
    let own_lease = request.last_client && matches!(lease.status, Active | Expired | Released);
    let serving = if own_lease {
        renews(ep.role, ep.state)
    } else {
        allocates(ep.role, ep.state)
    };
    if !serving {
        return Err(Refusal::NotServing(ep.state));
    }
    let partner_down = ep.state == ServerState::PartnerDown;
    let entry_wait = ep.state_since.plus(ep.mclt).plus(TIME_SKEW_LIMIT);
    match lease.status {
        Active if request.last_client => Ok(()),
        Free | FreeBackup | PendingFree => {
            // Freed less than 5 s ago: the partner still holds the release or expiry, and
            // an update no more than 5 s later is "not later" there (§7.5.1): refused as
            // outdated (§7.5.4), the two tables would disagree. Found by the v6 simulator.
            if let Some(freed) = lease.start_time_of_state {
                wait_until(now, freed.plus(TIME_SKEW_LIMIT + 1))?;
            }
            match available_to(request.resource, lease.status) {
                Some(owner) if owner == ep.role => Ok(()),
                _ => partners(ep, request, entry_wait, now),
            }
        }
        Expired | Released if request.last_client && !lease.update_sent => Ok(()),
        status @ (Expired | Released | Reset) => {
            if !partner_down {
                return Err(Refusal::AwaitingAck(status));
            }
            let from = [
                lease.start_time_of_state,
                lease.acked_partner_lifetime,
                lease.partner_lifetime,
                lease.expiration_time,
            ]
            .into_iter()
            .flatten()
            .fold(ep.state_since, UnixTime::max)
            .plus(ep.mclt)
            .plus(TIME_SKEW_LIMIT);
            wait_until(now, from)?;
            match available_to(request.resource, freed_status(request.resource)) {
                Some(owner) if owner == ep.role => Ok(()),
                _ => partners(ep, request, entry_wait, now),
            }
        }
        other => Err(Refusal::Unavailable(other)),
    }
}

/// A lease available to the partner (§4.2.1, §8.4.1).
fn partners(
    ep: &Endpoint,
    request: Request,
    entry_wait: UnixTime,
    now: UnixTime,
) -> Result<(), Refusal> {
    match request.resource {
        Kind::Address(_) => Err(Refusal::PartnersAddress),
        Kind::Prefix if ep.state != ServerState::PartnerDown => Err(Refusal::PartnersPrefix),
        Kind::Prefix if !request.own_pool_empty => Err(Refusal::OwnPoolFirst),
        Kind::Prefix => wait_until(now, entry_wait),
    }
}

fn wait_until(now: UnixTime, from: UnixTime) -> Result<(), Refusal> {
    if now >= from {
        Ok(())
    } else {
        Err(Refusal::WaitUntil(from))
    }
}
