//! Pool balancing with ISC's rules: how many available addresses to hand to the partner, when
//! to send POOLREQ, when to run again (draft §7.6, §7.7; ISC `dhcp_failover_pool_balance`).

use failover_proto::{BindingStatus, Role, ServerState};

use super::clamp_u32;
use crate::accept::LocalBinding;
use crate::time::UnixTime;

/// ISC's pool-balancing knobs (`failover peer` statements; defaults as ISC's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct BalanceConfig {
    /// `max-lease-misbalance`, percent of the pool's available addresses (default 15).
    pub max_lease_misbalance: u32,
    /// `max-lease-ownership`, percent (default 10).
    pub max_lease_ownership: u32,
    /// `min-balance`: least seconds between two runs (default 60).
    pub min_balance: u32,
    /// `max-balance`: most seconds between two runs (default 3600).
    pub max_balance: u32,
}

impl Default for BalanceConfig {
    fn default() -> Self {
        BalanceConfig {
            max_lease_misbalance: 15,
            max_lease_ownership: 10,
            min_balance: 60,
            max_balance: 3600,
        }
    }
}

/// Available addresses of one pool, as this server counts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct PoolCounts {
    /// FREE addresses (the primary's), reserved ones not counted.
    pub free: u32,
    /// BACKUP addresses (the secondary's), reserved ones not counted.
    pub backup: u32,
}

impl PoolCounts {
    /// Counts the available addresses of `records` (a pool's [`LocalBinding`]s, or the
    /// [`crate::record::LeaseRecord`]s that hold them): FREE and BACKUP ones, reserved
    /// addresses left out (§5.13: they belong to their client, not to a pool).
    ///
    /// ```
    /// # use core::net::Ipv4Addr;
    /// use failover_fsm::policy::PoolCounts;
    /// use failover_fsm::record::LeaseRecord;
    ///
    /// let records: Vec<LeaseRecord> =
    ///     (1..=4).map(|i| LeaseRecord::fresh(Ipv4Addr::new(192, 0, 2, i))).collect();
    /// assert_eq!(PoolCounts::of(&records), PoolCounts { free: 4, backup: 0 });
    /// ```
    pub fn of<I>(records: I) -> PoolCounts
    where
        I: IntoIterator,
        I::Item: AsRef<LocalBinding>,
    {
        records.into_iter().fold(PoolCounts::default(), |mut c, r| {
            c.add(r.as_ref());
            c
        })
    }

    /// Counts one more address (see [`PoolCounts::of`]).
    pub fn add(&mut self, local: &LocalBinding) {
        if let Some(n) = self.count_of(local) {
            *n = n.saturating_add(1);
        }
    }

    /// Counts one address less: a store that keeps its counts up to date calls it with a
    /// record's old value, then [`PoolCounts::add`] with the new one.
    ///
    /// ```
    /// # use core::net::Ipv4Addr;
    /// use failover_fsm::policy::PoolCounts;
    /// use failover_fsm::record::LeaseRecord;
    /// use failover_fsm::BindingStatus;
    ///
    /// let mut record = LeaseRecord::fresh(Ipv4Addr::new(192, 0, 2, 1));
    /// let mut counts = PoolCounts::of([&record]);
    /// counts.remove(&record.local);
    /// record.local.status = BindingStatus::Backup;
    /// counts.add(&record.local);
    /// assert_eq!(counts, PoolCounts { free: 0, backup: 1 });
    /// ```
    pub fn remove(&mut self, local: &LocalBinding) {
        if let Some(n) = self.count_of(local) {
            *n = n.saturating_sub(1);
        }
    }

    /// The count `local` is in, if any.
    fn count_of(&mut self, local: &LocalBinding) -> Option<&mut u32> {
        if local.reserved {
            return None;
        }
        match local.status {
            BindingStatus::Free => Some(&mut self.free),
            BindingStatus::Backup => Some(&mut self.backup),
            _ => None,
        }
    }
}

/// What started a balancing run; only timer runs may send POOLREQ (ISC
/// `dhcp_failover_pool_rebalance` vs `..._reqbalance` / `..._balance`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum BalanceTrigger {
    /// The rebalance timer ([`next_rebalance`]).
    Timer,
    /// A POOLREQ from the partner: answer POOLRESP with the number of addresses moved, and
    /// never a POOLREQ back (§7.6.2, §7.7.1).
    PoolReq,
    /// Entry to NORMAL or an operator.
    Manual,
}

/// Why no balancing run happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum BalanceSkipped {
    /// ISC balances only in NORMAL.
    NotNormal(ServerState),
}

/// The outcome of ISC's balance computation for one pool (`dhcp_failover_pool_dobalance`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct BalancePlan {
    /// The status moved addresses get: BACKUP when the primary gives, FREE when the secondary
    /// gives back (ISC; the draft only has the primary give).
    pub give_as: BindingStatus,
    /// "Leases to send": half our excess over the partner, negative when we are short —
    /// `(free − backup) / 2` on the primary, `(backup − free) / 2` on the secondary, rounded
    /// towards zero.
    pub lts: i64,
    /// `max-lease-misbalance` of the total, rounded: above this excess the pool is logged
    /// "IMBALANCED".
    pub threshold: i64,
    /// `max-lease-ownership` of the total, rounded: the excess either side may keep.
    pub hold: i64,
    /// `−2 × threshold` (−1 if that is 0): below this `lts` the run sends POOLREQ.
    pub panic: i64,
    /// Send POOLREQ (timer runs only, `lts < panic`).
    pub send_poolreq: bool,
}

impl BalancePlan {
    /// Addresses to move to even the pool out with never-used addresses (ISC's second pass
    /// stops at `lts ≤ 0` for those): `max(lts, 0)`.
    pub fn to_move(&self) -> u32 {
        clamp_i64(self.lts)
    }

    /// Most addresses moved when every candidate's last client hashes to the partner (the
    /// first pass runs until `lts ≤ −hold`): `max(lts + hold, 0)`.
    pub fn max_affine(&self) -> u32 {
        clamp_i64(self.lts.saturating_add(self.hold))
    }

    /// Addresses moved when all candidates were used before and none is affine to the partner
    /// (second pass stops at `lts ≤ hold`): `max(lts − hold, 0)`.
    pub fn min_used(&self) -> u32 {
        clamp_i64(self.lts.saturating_sub(self.hold))
    }

    /// Whether the pool is still "IMBALANCED" after moving `moved` addresses.
    pub fn imbalanced_after(&self, moved: u32) -> bool {
        self.lts - i64::from(moved) > self.threshold
    }

    /// The status of the addresses this server gives (FREE on the primary, BACKUP on the
    /// secondary): the one that is not [`BalancePlan::give_as`].
    pub fn takes_from(&self) -> BindingStatus {
        match self.give_as {
            BindingStatus::Backup => BindingStatus::Free,
            _ => BindingStatus::Backup,
        }
    }

    /// A cursor to walk our available addresses, oldest first, deciding for each.
    pub fn cursor(&self) -> BalanceCursor {
        BalanceCursor {
            lts: self.lts,
            hold: self.hold,
            second_pass: false,
            done: false,
            moved: 0,
        }
    }
}

fn clamp_i64(x: i64) -> u32 {
    u32::try_from(x.max(0)).unwrap_or(u32::MAX)
}

/// `(x × percent + 50) / 100`, ISC's rounding.
fn percent(x: u64, pct: u32) -> i64 {
    i64::try_from((x * u64::from(pct) + 50) / 100).unwrap_or(i64::MAX)
}

/// ISC's balance computation for one pool (03 §10 of the ISC notes; §5.4 asks for "some
/// threshold mechanism"): how far this server's available addresses exceed the partner's,
/// what may move and whether to ask the partner with POOLREQ.
///
/// ISC runs it in both roles, only in NORMAL. The primary gives FREE addresses as BACKUP; the
/// secondary gives BACKUP addresses back as FREE (D48).
pub fn plan_balance(
    role: Role,
    state: ServerState,
    counts: PoolCounts,
    config: &BalanceConfig,
    trigger: BalanceTrigger,
) -> Result<BalancePlan, BalanceSkipped> {
    if state != ServerState::Normal {
        return Err(BalanceSkipped::NotNormal(state));
    }
    let free = i64::from(counts.free);
    let backup = i64::from(counts.backup);
    let (lts, give_as) = match role {
        Role::Primary => ((free - backup) / 2, BindingStatus::Backup),
        Role::Secondary => ((backup - free) / 2, BindingStatus::Free),
    };
    let total = u64::from(counts.free) + u64::from(counts.backup);
    let threshold = percent(total, config.max_lease_misbalance);
    let hold = percent(total, config.max_lease_ownership);
    let panic = match -2 * threshold {
        0 => -1,
        p => p,
    };
    Ok(BalancePlan {
        give_as,
        lts,
        threshold,
        hold,
        panic,
        send_poolreq: trigger == BalanceTrigger::Timer && lts < panic,
    })
}

/// The addresses a balancing run moves to the partner (§5.4, §7.6): of `records` in address
/// order, the highest [`BalancePlan::to_move`] that are ours to give
/// ([`BalancePlan::takes_from`]) and not reserved, highest first.
///
/// Highest first: a server hands out its lowest available address first, so the top of the
/// pool holds the never-used addresses that ISC's second pass moves (`lts > 0`) and, after a
/// fresh start, none that a client may come back for. Every store (failover-tokio's, the
/// examples', the test kit's) moves these and sends each as
/// [`crate::record::LeaseRecord::given_to_partner`].
///
/// ```
/// # use core::net::Ipv4Addr;
/// use failover_fsm::policy::{
///     BalanceConfig, BalanceTrigger, PoolCounts, balance_candidates, plan_balance,
/// };
/// use failover_fsm::record::LeaseRecord;
/// use failover_fsm::{Role, ServerState};
///
/// let records: Vec<LeaseRecord> =
///     (1..=8).map(|i| LeaseRecord::fresh(Ipv4Addr::new(192, 0, 2, i))).collect();
/// let plan = plan_balance(
///     Role::Primary,
///     ServerState::Normal,
///     PoolCounts::of(&records),
///     &BalanceConfig::default(),
///     BalanceTrigger::Manual,
/// )
/// .unwrap();
/// let moved: Vec<Ipv4Addr> = balance_candidates(&plan, &records).map(|r| r.data.ip()).collect();
/// assert_eq!(moved, [8, 7, 6, 5].map(|i| Ipv4Addr::new(192, 0, 2, i)));
/// ```
pub fn balance_candidates<I>(plan: &BalancePlan, records: I) -> impl Iterator<Item = I::Item>
where
    I: IntoIterator,
    I::IntoIter: DoubleEndedIterator,
    I::Item: AsRef<LocalBinding>,
{
    let own = plan.takes_from();
    records
        .into_iter()
        .rev()
        .filter(move |r| {
            let local = r.as_ref();
            local.status == own && !local.reserved
        })
        .take(usize::try_from(plan.to_move()).unwrap_or(usize::MAX))
}

/// ISC's `secondary_not_hoarding`, asked by the primary before sending a freed address to the
/// secondary because its last client hashes there (MAC affinity, §5.4): whether
/// `(free − backup) / 2 > −hold`.
pub fn secondary_not_hoarding(counts: PoolCounts, config: &BalanceConfig) -> bool {
    let total = u64::from(counts.free) + u64::from(counts.backup);
    let hold = percent(total, config.max_lease_ownership);
    (i64::from(counts.free) - i64::from(counts.backup)) / 2 > -hold
}

/// One of our available addresses, as the balancing walk sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct BalanceCandidate {
    /// The address was leased before (ISC: `ends ≠ 0`).
    pub used: bool,
    /// Its last client hashes to the partner (ISC `peer_wants_lease`).
    pub partner_affine: bool,
}

/// What to do with a [`BalanceCandidate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum BalanceStep {
    /// Give it to the partner (store [`BalancePlan::give_as`] and send a BNDUPD).
    Move,
    /// Keep it and look at the next one.
    Keep,
    /// The pool is balanced enough: stop the walk.
    Stop,
}

/// ISC's two-pass walk over our available addresses (FREE queue on the primary, BACKUP on the
/// secondary), oldest first.
///
/// Pass 1 moves addresses whose last client hashes to the partner until `lts ≤ −hold`; at the
/// end of the queue call [`BalanceCursor::end_of_queue`] and, if it says so, walk the queue
/// again from the head, skipping what was moved. Pass 2 moves any address, stopping at the
/// first never-used one once `lts ≤ 0` or the first used one once `lts ≤ hold`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct BalanceCursor {
    lts: i64,
    hold: i64,
    second_pass: bool,
    done: bool,
    moved: u32,
}

impl BalanceCursor {
    /// Decides for the next address of the queue.
    pub fn consider(&mut self, candidate: BalanceCandidate) -> BalanceStep {
        if self.done {
            return BalanceStep::Stop;
        }
        let stop = if self.second_pass {
            if candidate.used {
                self.lts <= self.hold
            } else {
                self.lts <= 0
            }
        } else {
            self.lts <= -self.hold
        };
        if stop {
            self.done = true;
            return BalanceStep::Stop;
        }
        if self.second_pass || candidate.partner_affine {
            self.lts -= 1;
            self.moved = self.moved.saturating_add(1);
            BalanceStep::Move
        } else {
            BalanceStep::Keep
        }
    }

    /// The queue ran out: `true` to walk it again (second pass), `false` when the run is over.
    pub fn end_of_queue(&mut self) -> bool {
        if self.done || self.second_pass {
            self.done = true;
            false
        } else {
            self.second_pass = true;
            true
        }
    }

    /// Addresses moved so far (the addresses-transferred of a POOLRESP, §7.7.1).
    pub const fn moved(&self) -> u32 {
        self.moved
    }

    /// The remaining excess (`lts` after the moves).
    pub const fn lts(&self) -> i64 {
        self.lts
    }

    /// Whether the walk is over.
    pub const fn is_done(&self) -> bool {
        self.done
    }
}

/// When to run the balancer next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Reschedule {
    /// Keep the run already scheduled (ISC only ever moves it earlier).
    Keep,
    /// Run at this time.
    At(UnixTime),
}

/// ISC's `dhcp_failover_pool_check`: the next balancing run, called whenever the FREE or
/// BACKUP counts change (NORMAL only).
///
/// `oldest_free` / `oldest_backup` are the lease-expiration-times of the oldest address of
/// each queue (`None` = queue empty, `UnixTime(0)` = never used). For each, the time since it
/// expired × `max-lease-misbalance` % estimates when the imbalance will matter; our own queue
/// (FREE on the primary, BACKUP on the secondary) counts double. The earlier estimate, at most
/// `max-balance` from now, not before `last_balance + min-balance`. ISC adds `random() % 5`
/// seconds; add your own jitter.
pub fn next_rebalance(
    role: Role,
    now: UnixTime,
    oldest_free: Option<UnixTime>,
    oldest_backup: Option<UnixTime>,
    last_balance: Option<UnixTime>,
    scheduled: Option<UnixTime>,
    config: &BalanceConfig,
) -> Reschedule {
    let estimate = |oldest: Option<UnixTime>| -> u64 {
        let age = match oldest {
            Some(ends) if ends < now => u64::from(now.secs_since(ends)),
            _ => 0,
        };
        (age * u64::from(config.max_lease_misbalance) + 50) / 100
    };
    let (mut free_est, mut backup_est) = (estimate(oldest_free), estimate(oldest_backup));
    match role {
        Role::Primary => free_est *= 2,
        Role::Secondary => backup_est *= 2,
    }
    let delay = free_est.min(backup_est).min(u64::from(config.max_balance));
    let mut at = now.plus(clamp_u32(delay));
    if let Some(last) = last_balance {
        at = at.max(last.plus(config.min_balance));
    }
    match scheduled {
        Some(s) if at >= s => Reschedule::Keep,
        _ => Reschedule::At(at),
    }
}
