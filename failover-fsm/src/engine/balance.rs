//! Pool balancing commands (§5.4, §7.6, §7.7): the plans of `crate::policy`'s rules, the
//! POOLRESP a POOLREQ asked for and our own POOLREQ.

use crate::policy::{BalancePlan, BalanceSkipped, BalanceTrigger, PoolCounts, plan_balance};

use super::Family;
use super::control::Control;
use super::{Engine, Link};

impl<const QUEUE: usize, const COMMITS: usize, const EVENTS: usize, F: Family>
    Engine<QUEUE, COMMITS, EVENTS, F>
{
    /// Answers the partner's POOLREQ (after [`crate::Action::PoolRequested`]) with the number of
    /// addresses moved to its pool; the caller then sends them as BNDUPDs (§7.7).
    pub fn pool_response(&mut self, addresses_transferred: u32) {
        if let Some(xid) = self.pending_pool_xid.take()
            && self.link == Link::Up
        {
            self.push_control(Control::PoolResp {
                xid,
                count: addresses_transferred,
            });
        }
    }

    /// Pool balancing (§5.4, §7.6, §7.7) with ISC's thresholds: given this server's counts of
    /// available addresses, decides how many to move to the partner and whether to ask the
    /// partner with POOLREQ. After [`crate::Action::PoolRequested`], call it with
    /// [`BalanceTrigger::PoolReq`]: the POOLRESP carries the number to move. The caller counts
    /// with [`PoolCounts::of`], then moves [`crate::policy::balance_candidates`] (or walks
    /// `plan.cursor()` for ISC's choice) and sends each with [`Engine::send_binding`] as
    /// `plan.give_as` ([`crate::record::LeaseRecord::given_to_partner`]).
    pub fn balance_pools(
        &mut self,
        counts: PoolCounts,
        trigger: BalanceTrigger,
    ) -> Result<BalancePlan, BalanceSkipped> {
        let plan = self.plan_pool(counts, trigger);
        let moved = plan.map_or(0, |p| p.to_move());
        self.balanced(trigger, moved, plan.is_ok_and(|p| p.send_poolreq));
        plan
    }

    /// [`Engine::balance_pools`] for a relationship with several pools, each balanced on its
    /// own (§5.4: addresses are allocated "in each pool"; ISC balances pool by pool):
    /// `counts(i)` gives pool `i`'s counts, `apply(i, plan)` moves that pool's addresses and
    /// returns how many it moved. After a POOLREQ one POOLRESP carries the total; one POOLREQ
    /// goes out if any pool runs short. Returns the total moved.
    ///
    /// ```
    /// # use failover_fsm::{Config, Engine, Instant, Role, UnixTime};
    /// # use failover_fsm::policy::{BalanceTrigger, PoolCounts};
    /// let mut e: Engine = Engine::new(Config::new(Role::Primary, "x", 60), None, Instant::ZERO,
    ///     UnixTime(1_700_000_000), 7).unwrap();
    /// let counts = [PoolCounts { free: 10, ..PoolCounts::default() }, PoolCounts::default()];
    /// // Not NORMAL yet: nothing is balanced.
    /// assert!(e.balance_each_pool(2, BalanceTrigger::Manual, |i| counts[i], |_, p| p.to_move())
    ///     .is_err());
    /// ```
    pub fn balance_each_pool(
        &mut self,
        pools: usize,
        trigger: BalanceTrigger,
        mut counts: impl FnMut(usize) -> PoolCounts,
        mut apply: impl FnMut(usize, &BalancePlan) -> u32,
    ) -> Result<u32, BalanceSkipped> {
        let (mut moved, mut poolreq, mut skipped) = (0u32, false, None);
        for i in 0..pools {
            match self.plan_pool(counts(i), trigger) {
                Ok(plan) => {
                    moved = moved.saturating_add(apply(i, &plan));
                    poolreq |= plan.send_poolreq;
                }
                Err(why) => skipped = Some(why),
            }
        }
        self.balanced(trigger, moved, poolreq);
        match skipped {
            Some(why) if moved == 0 => Err(why),
            _ => Ok(moved),
        }
    }

    fn plan_pool(
        &self,
        counts: PoolCounts,
        trigger: BalanceTrigger,
    ) -> Result<BalancePlan, BalanceSkipped> {
        plan_balance(
            self.config.role,
            self.state,
            counts,
            &self.config.balance,
            trigger,
        )
    }

    /// After a balancing run: the POOLRESP a POOLREQ asked for, and our own POOLREQ.
    fn balanced(&mut self, trigger: BalanceTrigger, moved: u32, poolreq: bool) {
        if trigger == BalanceTrigger::PoolReq {
            self.pool_response(moved);
        }
        if poolreq {
            self.request_pool_balance();
        }
    }

    /// Asks the partner to balance the pools (POOLREQ, §7.6).
    pub fn request_pool_balance(&mut self) {
        if self.link == Link::Up {
            self.push_control(Control::PoolReq);
        }
    }
}
