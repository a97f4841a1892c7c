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
//! Carrying a plan out: [`PrefixCounts::of`] counts the table, [`movable_candidates`] picks
//! the prefixes (those whose record changed more than 5 s ago, [`movable`]), [`LocalLease::move_prefix`] changes each record (FREE ↔ FREE-BACKUP, before the
//! BNDUPD goes: from then on the primary MUST NOT delegate a given prefix), and
//! [`LocalLease::clientless_update`] is the top-level IAPREFIX that says so (§7.4).
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
use failover_proto::v6::{BindingStatus, Lease, LeaseAddr, ServerState, time};

use super::{LocalLease, TIME_SKEW_LIMIT};
use crate::time::UnixTime;

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

/// The status a prefix takes when the primary moves it (§4.2.2, §7.2 transition 7): an
/// available prefix of the primary's (FREE, PENDING-FREE) is given as FREE-BACKUP, a
/// FREE-BACKUP one is taken back as FREE. `None` for a status that does not move (a
/// delegated or unavailable prefix).
///
/// ```
/// use failover_fsm::v6::pool::moved_status;
/// use failover_proto::v6::BindingStatus;
///
/// assert_eq!(moved_status(BindingStatus::Free), Some(BindingStatus::FreeBackup));
/// assert_eq!(moved_status(BindingStatus::FreeBackup), Some(BindingStatus::Free));
/// assert_eq!(moved_status(BindingStatus::Active), None);
/// ```
pub const fn moved_status(status: BindingStatus) -> Option<BindingStatus> {
    match status {
        BindingStatus::Free | BindingStatus::PendingFree => Some(BindingStatus::FreeBackup),
        BindingStatus::FreeBackup => Some(BindingStatus::Free),
        _ => None,
    }
}

impl LocalLease {
    /// The primary moves this prefix (one of [`plan_candidates`]) at `now`: its status becomes
    /// [`moved_status`], start-time-of-state `now`, and it is clientless (the BNDUPD carries a
    /// top-level IAPREFIX, §7.4) with nothing left to time out or to send. Done before the
    /// BNDUPD is queued: §4.2.2 forbids the primary to delegate a given prefix from then on. A
    /// take-back the secondary refuses (it delegated the prefix, §4.2.2) is corrected by the
    /// secondary's own BNDUPD for its client; meanwhile [`super::allocate::may_allocate`]
    /// holds the prefix back for the 5 s a new start-time-of-state waits. Returns the new
    /// status; `None` (record unchanged) for a prefix that does not move.
    ///
    /// ```
    /// use failover_fsm::UnixTime;
    /// use failover_fsm::v6::LocalLease;
    /// use failover_proto::v6::BindingStatus;
    ///
    /// let now = UnixTime(1_700_000_000);
    /// let mut p = LocalLease::new(BindingStatus::Free);
    /// assert_eq!(p.move_prefix(now), Some(BindingStatus::FreeBackup)); // given
    /// assert_eq!((p.start_time_of_state, p.update_sent), (Some(now), false));
    /// assert_eq!(p.move_prefix(now.plus(60)), Some(BindingStatus::Free)); // taken back
    /// let mut held = LocalLease::new(BindingStatus::Active);
    /// assert_eq!(held.move_prefix(now), None);
    /// ```
    pub fn move_prefix(&mut self, now: UnixTime) -> Option<BindingStatus> {
        let status = moved_status(self.status)?;
        *self = LocalLease {
            status,
            client: None,
            cltt: None,
            partner_raw_clt_time: None,
            start_time_of_state: Some(now),
            state_expiration_time: None,
            partner_lifetime: None,
            update_sent: false,
            ..*self
        };
        Some(status)
    }

    /// This record as the BNDUPD of a prefix no client holds carries it: a top-level
    /// OPTION_IAPREFIX (§7.4) with [`LocalLease::update_lease`]'s options, lifetimes 0 (nobody
    /// holds it), and its own OPTION_LQ_BASE_TIME `lq_base_time` (a clientless prefix has
    /// no CLIENT_DATA to carry one; the codec requires it).
    ///
    /// ```
    /// use core::net::Ipv6Addr;
    /// use failover_fsm::UnixTime;
    /// use failover_fsm::v6::LocalLease;
    /// use failover_proto::v6::{BindingStatus, LeaseAddr};
    ///
    /// let now = UnixTime(1_700_000_000);
    /// let mut p = LocalLease::new(BindingStatus::Free);
    /// p.move_prefix(now);
    /// let prefix = LeaseAddr::Prefix { prefix: Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, 0), len: 56 };
    /// let lease = p.clientless_update(prefix, now);
    /// assert_eq!(lease.binding_status, Some(BindingStatus::FreeBackup));
    /// assert!(lease.lq_base_time.is_some() && lease.start_time_of_state.is_some());
    /// assert_eq!((lease.state_expiration_time, lease.partner_lifetime), (None, None));
    /// ```
    pub fn clientless_update(&self, prefix: LeaseAddr, lq_base_time: UnixTime) -> Lease<'static> {
        Lease {
            lq_base_time: Some(time::from_unix(u64::from(lq_base_time.0)).unwrap_or(0)),
            ..self.update_lease(prefix, 0, 0, lq_base_time)
        }
    }
}

/// Whether the primary may move this prefix at `now`: its status moves ([`moved_status`]) and
/// its record last changed (start-time-of-state, CLTT) more than [`TIME_SKEW_LIMIT`] ago. A
/// move stamped within 5 s of the partner's record is "not later" there (§7.5.1) and refused
/// as outdated (§7.5.4): a prefix just given cannot be taken back at once, nor one just freed
/// be given.
///
/// ```
/// use failover_fsm::UnixTime;
/// use failover_fsm::v6::LocalLease;
/// use failover_fsm::v6::pool::movable;
/// use failover_proto::v6::BindingStatus;
///
/// let t = UnixTime(1_700_000_000);
/// let mut p = LocalLease::new(BindingStatus::Free);
/// assert!(movable(&p, t)); // never changed
/// p.move_prefix(t); // given
/// assert!(!movable(&p, t.plus(5)));
/// assert!(movable(&p, t.plus(6)));
/// ```
pub fn movable(lease: &LocalLease, now: UnixTime) -> bool {
    let changed = match (lease.start_time_of_state, lease.cltt) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    moved_status(lease.status).is_some()
        && changed.is_none_or(|t| now.0 > t.0.saturating_add(TIME_SKEW_LIMIT))
}

/// [`plan_candidates`] among the prefixes [`movable`] at `now`: what the primary moves now. It
/// may be fewer than the plan asks for (prefixes that changed in the last 5 s wait); plan again
/// later for the rest.
pub fn movable_candidates<I>(
    plan: &PrefixPlan,
    leases: I,
    now: UnixTime,
) -> impl Iterator<Item = I::Item>
where
    I: IntoIterator,
    I::Item: AsRef<LocalLease>,
{
    plan_candidates(
        plan,
        leases.into_iter().filter(move |l| movable(l.as_ref(), now)),
    )
}
