//! The lease time a server may grant and the times it tells the partner (§5.2.1, §7.1.5): the
//! MCLT rules in either dialect.

use failover_proto::{BindingStatus, ServerState};

use super::{Endpoint, INFINITE};
use crate::accept::LocalBinding;
use crate::dialect::Dialect;
use crate::time::UnixTime;

/// What PARTNER-DOWN does with the MCLT limit on lease times (§9.4.2 offers both).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum PartnerDownLeases {
    /// Keep the §5.2.1 limit, so that losing our own storage stays recoverable.
    #[default]
    KeepMclt,
    /// Grant the desired time.
    Unrestricted,
}

/// The per-binding times the MCLT rule looks at (§7.1.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct LeaseTimes {
    /// lease-expiration-time currently recorded (the COMMUNICATIONS-INTERRUPTED limit, §9.9.2).
    pub lease_expiration: Option<UnixTime>,
    /// sent-potential-expiration-time.
    pub sent_pet: Option<UnixTime>,
    /// acked-potential-expiration-time.
    pub acked_pet: Option<UnixTime>,
    /// received-potential-expiration-time.
    pub received_pet: Option<UnixTime>,
}

impl LeaseTimes {
    /// Nothing recorded: a new client (the grant is then at most the MCLT).
    pub const NONE: LeaseTimes = LeaseTimes {
        lease_expiration: None,
        sent_pet: None,
        acked_pet: None,
        received_pet: None,
    };

    /// The times of `binding` when it holds a client's lease (ACTIVE, EXPIRED, RELEASED) —
    /// pass it only for that client. For an available address (FREE, BACKUP, RESET,
    /// ABANDONED) a partner's PET says nothing about a new lease: [`LeaseTimes::NONE`].
    pub fn of(binding: &LocalBinding) -> LeaseTimes {
        match binding.status {
            BindingStatus::Active | BindingStatus::Expired | BindingStatus::Released => {
                LeaseTimes {
                    lease_expiration: binding.lease_expiration,
                    sent_pet: binding.sent_pet,
                    acked_pet: binding.acked_pet,
                    received_pet: binding.received_pet,
                }
            }
            _ => LeaseTimes::NONE,
        }
    }

    /// The times to pass to [`lease_time`] for a lease to `binding`'s address: those of
    /// [`LeaseTimes::of`] when the record names the same client (`same_client`), without the
    /// lease-expiration-time; [`LeaseTimes::NONE`] for a new client. In
    /// COMMUNICATIONS-INTERRUPTED `lease_time` adds the recorded expiry to the cap (§9.9.2), so
    /// each renewal could extend the last by another MCLT, beyond anything the partner knows —
    /// and the partner, once in PARTNER-DOWN, takes over our pool after entry + MCLT while the
    /// lease runs (the simulator, seed 19170). The cap stays MCLT + max(now, acked PET,
    /// received PET).
    pub fn for_client(binding: &LocalBinding, same_client: bool) -> LeaseTimes {
        if same_client {
            LeaseTimes {
                lease_expiration: None,
                ..LeaseTimes::of(binding)
            }
        } else {
            LeaseTimes::NONE
        }
    }
}

/// A lease to compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct LeaseRequest {
    /// The wall clock.
    pub now: UnixTime,
    /// The desired lease interval in seconds ([`INFINITE`] for an infinite lease).
    pub desired: u32,
    /// The binding's recorded times.
    pub times: LeaseTimes,
    /// PARTNER-DOWN policy (draft only; ISC always applies its formula).
    pub partner_down: PartnerDownLeases,
}

/// The lease to grant and what to tell the partner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct LeaseGrant {
    /// Lease time for the client (DHCP option 51), seconds; [`INFINITE`] when infinite.
    pub granted: u32,
    /// lease-expiration-time to record and send: `now + granted` (saturating at the end of
    /// `u32` time, also for infinite leases).
    pub lease_expiration: UnixTime,
    /// potential-expiration-time to send in the BNDUPD: `now + desired + granted / 2`
    /// (saturating; the end of `u32` time for an infinite desired lease). It is never before
    /// `lease_expiration` (§9.8.3).
    pub potential_expiration: UnixTime,
    /// The latest expiry the MCLT rule allowed; `None` when no limit applied.
    pub cap: Option<UnixTime>,
}

impl LeaseGrant {
    /// Whether the MCLT rule shortened the desired lease.
    pub const fn shortened(&self, desired: u32) -> bool {
        self.granted < desired
    }
}

/// The lease time to grant and the potential-expiration-time to send (§5.2.1, §7.1.5).
///
/// [`Dialect::Draft`]: granted = `min(desired, cap − now)` with
/// * `cap = MCLT + max(now, acked PET, received PET)` (§7.1.5, §9.8.3) in NORMAL and every
///   state not listed below;
/// * `cap = MCLT + max(now, acked PET, lease expiry, received PET)` in
///   COMMUNICATIONS-INTERRUPTED, RESOLUTION-INTERRUPTED and CONFLICT-DONE (§9.9.2, §9.11.2,
///   §9.12.2 "as COMMUNICATIONS-INTERRUPTED") — the only case where the grant may exceed
///   `MCLT + max(now, acked PET, received PET)`;
/// * in PARTNER-DOWN the NORMAL cap, or none with [`PartnerDownLeases::Unrestricted`]
///   (§9.4.2).
///
/// The acked PET counts only up to the last PET we sent: once we have sent a lower one, the
/// partner will record that (ISC does the same by lowering its `tsfp`).
///
/// PET = `now + granted/2 + desired` (the §5.2.1 example: the renewal at T1 may then get the
/// full desired time).
///
/// [`Dialect::Isc`] (`ack_lease`), in every state, with `tsfp` = the later of acked and
/// received PET, lowered to the sent PET if that is earlier:
/// `granted = D if D ≤ MCLT; MCLT if tsfp ≤ now; tsfp + MCLT − now if now + D > tsfp + MCLT;
/// else D`, and PET = `now + D + granted/2`. This never exceeds `MCLT + max(now, tsfp)`. ISC
/// clamps times at 2038 (`MAX_TIME`); here they saturate at the end of `u32` time.
pub fn lease_time(endpoint: &Endpoint, request: &LeaseRequest) -> LeaseGrant {
    let now = u64::from(request.now.0);
    let desired = request.desired;
    let mclt = u64::from(endpoint.lease_mclt.min(endpoint.mclt));
    let t = &request.times;
    let secs = |x: Option<UnixTime>| x.map_or(0, |t| u64::from(t.0));
    let (granted, cap) = match endpoint.dialect {
        Dialect::Draft => {
            use ServerState::{
                CommunicationsInterrupted, ConflictDone, PartnerDown, ResolutionInterrupted,
            };
            let acked = match t.sent_pet {
                Some(sent) => secs(t.acked_pet).min(u64::from(sent.0)),
                None => secs(t.acked_pet),
            };
            let mut base = now.max(acked).max(secs(t.received_pet));
            let cap = match endpoint.state {
                PartnerDown if request.partner_down == PartnerDownLeases::Unrestricted => None,
                CommunicationsInterrupted | ResolutionInterrupted | ConflictDone => {
                    base = base.max(secs(t.lease_expiration));
                    Some(base + mclt)
                }
                _ => Some(base + mclt),
            };
            let granted = match cap {
                None => desired,
                Some(cap) => clamp_u32(cap.saturating_sub(now)).min(desired),
            };
            (granted, cap)
        }
        Dialect::Isc => {
            let mut tsfp = secs(t.acked_pet).max(secs(t.received_pet));
            if let Some(sent) = t.sent_pet {
                tsfp = tsfp.min(u64::from(sent.0));
            }
            let d = u64::from(desired);
            let granted = if d <= mclt {
                d
            } else if tsfp <= now {
                mclt
            } else if now + d > tsfp + mclt {
                tsfp + mclt - now
            } else {
                d
            };
            (clamp_u32(granted), Some(now.max(tsfp) + mclt))
        }
    };
    let lease_expiration = if granted == INFINITE {
        UnixTime(u32::MAX)
    } else {
        UnixTime(clamp_u32(now + u64::from(granted)))
    };
    let potential_expiration = if desired == INFINITE {
        UnixTime(u32::MAX)
    } else {
        UnixTime(clamp_u32(now + u64::from(desired) + u64::from(granted / 2)))
    };
    LeaseGrant {
        granted,
        lease_expiration,
        potential_expiration,
        cap: cap.map(|c| UnixTime(clamp_u32(c))),
    }
}

pub(super) fn clamp_u32(x: u64) -> u32 {
    u32::try_from(x).unwrap_or(u32::MAX)
}
