//! Proportional allocation of delegable prefixes (§4.2.2): every available prefix starts as
//! the primary's (FREE); the primary gives the secondary its configured share by sending each
//! given prefix in a BNDUPD as FREE-BACKUP (a clientless top-level IAPREFIX, §7.4), and may
//! take some back with FREE (the secondary refuses if it delegated one meanwhile, which the
//! accept table does, [`super::accept`]). Addresses are never balanced (§4.2.1).
//!
//! The secondary asks with POOLREQ (on entering NORMAL, §8.8 — v4's
//! [`Actions::SEND_POOLREQ`](crate::transition::Actions::SEND_POOLREQ) — and at any time in
//! contact); the primary answers POOLRESP, which only says the request arrived (§5.3.4), and
//! runs [`plan_prefixes`]. The same shape as v4's [`policy::plan_balance`](crate::policy::plan_balance),
//! with RFC 8156's rule instead of ISC's: a configured share, a threshold against churn, no
//! defaults in the RFC (ours: [`PoolConfig::default`]).
//!
//! ```
//! use failover_fsm::Role;
//! use failover_fsm::v6::pool::{PoolConfig, PrefixCounts, plan_prefixes};
//! use failover_proto::v6::ServerState;
//!
//! // A fresh pair: all 100 prefixes are the primary's; the secondary gets half.
//! let counts = PrefixCounts { free: 100, free_backup: 0 };
//! let plan = plan_prefixes(Role::Primary, ServerState::Normal, counts, &PoolConfig::default())?;
//! assert_eq!((plan.give, plan.take_back), (50, 0));
//! assert_eq!(counts.after(&plan), PrefixCounts { free: 50, free_backup: 50 });
//! # Ok::<(), failover_fsm::v6::pool::PoolSkipped>(())
//! ```

use failover_proto::Role;
use failover_proto::v6::{BindingStatus, ServerState};

use super::LocalLease;

/// The primary's configuration of the split (§4.2.2: both are configuration, the RFC gives no
/// defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct PoolConfig {
    /// The secondary's share of the available prefixes, percent (values above 100 count as
    /// 100). Default 50.
    pub secondary_percent: u8,
    /// How many prefixes the secondary's count may be off its share before prefixes move
    /// (§4.2.2's threshold against churn). Default 1.
    pub threshold: u32,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            secondary_percent: 50,
            threshold: 1,
        }
    }
}

/// Available delegable prefixes of one pool, as the primary counts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct PrefixCounts {
    /// FREE (and PENDING-FREE, which becomes FREE for a prefix, §7.2): the primary's.
    pub free: u32,
    /// FREE-BACKUP: given to the secondary and not delegated.
    pub free_backup: u32,
}

impl PrefixCounts {
    /// Counts one more prefix of status `status`; other statuses are not available.
    pub fn add(&mut self, status: BindingStatus) {
        match status {
            BindingStatus::Free | BindingStatus::PendingFree => {
                self.free = self.free.saturating_add(1);
            }
            BindingStatus::FreeBackup => self.free_backup = self.free_backup.saturating_add(1),
            _ => {}
        }
    }

    /// Counts the available prefixes of `leases`.
    pub fn of<I>(leases: I) -> PrefixCounts
    where
        I: IntoIterator,
        I::Item: AsRef<LocalLease>,
    {
        leases
            .into_iter()
            .fold(PrefixCounts::default(), |mut c, l| {
                c.add(l.as_ref().status);
                c
            })
    }

    /// Both together.
    pub const fn total(&self) -> u64 {
        self.free as u64 + self.free_backup as u64
    }

    /// The counts once `plan` has been carried out and acked.
    #[must_use]
    pub const fn after(&self, plan: &PrefixPlan) -> PrefixCounts {
        PrefixCounts {
            free: self
                .free
                .saturating_sub(plan.give)
                .saturating_add(plan.take_back),
            free_backup: self
                .free_backup
                .saturating_add(plan.give)
                .saturating_sub(plan.take_back),
        }
    }
}

/// What the primary does now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct PrefixPlan {
    /// The secondary's share of the total, rounded to the nearest prefix.
    pub target: u32,
    /// FREE prefixes to send as FREE-BACKUP (each a BNDUPD, §4.2.2).
    pub give: u32,
    /// FREE-BACKUP prefixes to ask back with FREE (each a BNDUPD, §4.2.2).
    pub take_back: u32,
}

impl PrefixPlan {
    /// Nothing moves.
    pub const fn is_empty(&self) -> bool {
        self.give == 0 && self.take_back == 0
    }
}

/// Why no balancing happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum PoolSkipped {
    /// Only the primary gives prefixes (§4.2.2).
    NotPrimary,
    /// Prefixes move in NORMAL, where the secondary asks for them (§8.8); in other states
    /// the partner cannot be told or may be using its own.
    NotNormal(ServerState),
}

/// The secondary's share: `total × percent / 100`, rounded to the nearest.
fn share(total: u64, percent: u8) -> u64 {
    (total * u64::from(percent.min(100)) + 50) / 100
}

/// How many delegable prefixes the primary moves (§4.2.2): none while the secondary's
/// available count is within `threshold` of its share; otherwise exactly enough to reach it
/// (giving FREE ones as FREE-BACKUP, or taking FREE-BACKUP ones back). The total is
/// conserved, and once carried out the next plan is empty.
pub fn plan_prefixes(
    role: Role,
    state: ServerState,
    counts: PrefixCounts,
    config: &PoolConfig,
) -> Result<PrefixPlan, PoolSkipped> {
    if role != Role::Primary {
        return Err(PoolSkipped::NotPrimary);
    }
    if state != ServerState::Normal {
        return Err(PoolSkipped::NotNormal(state));
    }
    let target = share(counts.total(), config.secondary_percent);
    let have = u64::from(counts.free_backup);
    let off = target.abs_diff(have);
    let clamp = |x: u64| u32::try_from(x).unwrap_or(u32::MAX);
    let (give, take_back) = if off <= u64::from(config.threshold) {
        (0, 0)
    } else if target > have {
        (clamp(off).min(counts.free), 0)
    } else {
        (0, clamp(off).min(counts.free_backup))
    };
    Ok(PrefixPlan {
        target: clamp(target),
        give,
        take_back,
    })
}

/// Whether the primary should look at the balance again (§4.2.2: "whenever either side's
/// count changes by more than a threshold"): either count moved more than `threshold` since
/// the counts of the last run.
pub fn needs_rebalance(last: PrefixCounts, now: PrefixCounts, config: &PoolConfig) -> bool {
    let t = config.threshold;
    last.free.abs_diff(now.free) > t || last.free_backup.abs_diff(now.free_backup) > t
}

/// What the primary does with a POOLREQ (§5.3.3, §5.3.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum PoolReqAnswer {
    /// Send POOLRESP (with the POOLREQ's transaction-id, no options) and run
    /// [`plan_prefixes`]; the BNDUPDs may go before or after the POOLRESP.
    RespondAndBalance,
    /// Send POOLRESP, which promises nothing (§5.3.4), and move nothing now.
    RespondOnly(PoolSkipped),
    /// We are the secondary: POOLREQ is the secondary's message; ignore it.
    Ignore,
}

/// The answer to a POOLREQ received in `state`.
pub const fn poolreq_answer(role: Role, state: ServerState) -> PoolReqAnswer {
    match (role, state) {
        (Role::Secondary, _) => PoolReqAnswer::Ignore,
        (Role::Primary, ServerState::Normal) => PoolReqAnswer::RespondAndBalance,
        (Role::Primary, other) => PoolReqAnswer::RespondOnly(PoolSkipped::NotNormal(other)),
    }
}

/// The prefixes that carry out `plan`, in the order of `leases`: the first
/// [`PrefixPlan::give`] FREE or PENDING-FREE ones (send as FREE-BACKUP) and the first
/// [`PrefixPlan::take_back`] FREE-BACKUP ones (send as FREE).
pub fn plan_candidates<I>(plan: &PrefixPlan, leases: I) -> impl Iterator<Item = I::Item>
where
    I: IntoIterator,
    I::Item: AsRef<LocalLease>,
{
    let (mut give, mut take) = (plan.give, plan.take_back);
    leases.into_iter().filter(move |l| match l.as_ref().status {
        BindingStatus::Free | BindingStatus::PendingFree if give > 0 => {
            give -= 1;
            true
        }
        BindingStatus::FreeBackup if take > 0 => {
            take -= 1;
            true
        }
        _ => false,
    })
}
