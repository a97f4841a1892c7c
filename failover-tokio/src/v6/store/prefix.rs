//! Delegable prefixes and their proportional allocation (§4.2.2).

use super::*;

/// Delegable prefixes and their proportional allocation (§4.2.2): the counts and choices are
/// the library's ([`PrefixCounts::of`], [`movable_candidates`]), and so is each record's change
/// ([`LocalLease::move_prefix`]).
impl MemoryStore6 {
    /// Learns `lease` if it is a delegable prefix (a new one gets the next prefix handle).
    pub(super) fn note_prefix(&mut self, lease: LeaseAddr) {
        if !matches!(lease, LeaseAddr::Prefix { .. }) || self.prefix_index.contains_key(&lease) {
            return;
        }
        let Ok(i) = u32::try_from(self.prefixes.len()) else {
            return;
        };
        if i >= u32::MAX - PREFIX_HANDLES {
            return; // the namespace is full (two billion prefixes)
        }
        self.prefixes.push(lease);
        self.prefix_index.insert(lease, i);
    }

    /// The handle of the clientless binding of delegable prefix `prefix`: what to send
    /// ([`Handle6::send_binding`](crate::v6::Handle6::send_binding)) after changing its record
    /// while no client holds it. `None` for an address or a prefix not in the table.
    pub fn prefix_handle(&self, prefix: LeaseAddr) -> Option<BindingHandle> {
        self.prefix_index
            .get(&prefix)
            .map(|i| BindingHandle(PREFIX_HANDLES + i))
    }

    /// The prefix a handle of [`PREFIX_HANDLES`]' namespace names.
    pub(super) fn prefix_of(&self, handle: BindingHandle) -> Option<LeaseAddr> {
        let i = handle.0.checked_sub(PREFIX_HANDLES)?;
        self.prefixes.get(usize::try_from(i).ok()?).copied()
    }

    /// Every delegable prefix with its record, in the order learned.
    fn prefix_records(&self) -> impl Iterator<Item = (LeaseAddr, &LocalLease)> {
        self.prefixes
            .iter()
            .filter_map(|p| Some((*p, self.records.get(p)?)))
    }

    /// The available delegable prefixes as the primary counts them ([`PrefixCounts::of`]):
    /// FREE (and PENDING-FREE) the primary's, FREE-BACKUP the secondary's; delegated ones are
    /// nobody's (§4.2.2).
    ///
    /// ```
    /// use std::net::Ipv6Addr;
    /// use failover_fsm::v6::pool::PrefixCounts;
    /// use failover_proto::v6::LeaseAddr;
    /// use failover_tokio::v6::MemoryStore6;
    ///
    /// let mut table = MemoryStore6::new();
    /// for n in 0..4 {
    ///     let prefix = Ipv6Addr::new(0x2001, 0xdb8, 0x100 + n, 0, 0, 0, 0, 0);
    ///     table.add_pool_lease(LeaseAddr::Prefix { prefix, len: 56 });
    /// }
    /// table.add_pool_lease(LeaseAddr::Address(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)));
    /// // Every prefix starts as the primary's; addresses are not counted (§4.2.1).
    /// assert_eq!(table.prefix_counts(), PrefixCounts { free: 4, free_backup: 0 });
    /// ```
    pub fn prefix_counts(&self) -> PrefixCounts {
        PrefixCounts::of(self.prefix_records().map(|(_, r)| r))
    }

    /// The prefixes that carry out `plan` at `now` ([`movable_candidates`]: fewer when some
    /// changed in the last 5 s), taken from the end of the pool: the primary keeps the first
    /// prefixes, which a server delegating in pool order uses first, and asks back the last
    /// ones it gave.
    pub fn prefix_candidates(&self, plan: &PrefixPlan, now: UnixTime) -> Vec<LeaseAddr> {
        let mut backwards: Vec<(LeaseAddr, &LocalLease)> = self.prefix_records().collect();
        backwards.reverse();
        movable_candidates(plan, backwards.iter().map(|(p, r)| Pos(*p, r)), now)
            .map(|c| c.0)
            .collect()
    }

    /// The primary carries out `plan` at `now` (§4.2.2): each of [`Self::prefix_candidates`]
    /// given as FREE-BACKUP or taken back as FREE ([`LocalLease::move_prefix`]) and no longer
    /// in any client's binding. Returns the handles to send, in order (a full engine queue
    /// keeps them in the peer's backlog); fewer than the plan asks for when some prefixes
    /// changed in the last 5 s ([`failover_fsm::v6::pool::movable`]).
    ///
    /// ```
    /// use std::net::Ipv6Addr;
    /// use failover_fsm::{Role, UnixTime};
    /// use failover_fsm::v6::pool::{PoolConfig, PrefixCounts, plan_prefixes};
    /// use failover_proto::v6::{LeaseAddr, ServerState};
    /// use failover_tokio::v6::MemoryStore6;
    ///
    /// let mut table = MemoryStore6::new();
    /// for n in 0..20 {
    ///     let prefix = Ipv6Addr::new(0x2001, 0xdb8, 0x100 + n, 0, 0, 0, 0, 0);
    ///     table.add_pool_lease(LeaseAddr::Prefix { prefix, len: 56 });
    /// }
    /// let counts = table.prefix_counts();
    /// let plan = plan_prefixes(Role::Primary, ServerState::Normal, counts, &PoolConfig::default())
    ///     .expect("the primary in NORMAL plans");
    /// let handles = table.move_prefixes(&plan, UnixTime(1_700_000_000));
    /// assert_eq!(handles.len(), 10);
    /// assert_eq!(table.prefix_counts(), PrefixCounts { free: 10, free_backup: 10 });
    /// assert_eq!(table.prefix_counts(), counts.after(&plan));
    /// ```
    pub fn move_prefixes(&mut self, plan: &PrefixPlan, now: UnixTime) -> Vec<BindingHandle> {
        let mut handles = Vec::new();
        for prefix in self.prefix_candidates(plan, now) {
            let Some(r) = self.records.get_mut(&prefix) else {
                continue;
            };
            if r.move_prefix(now).is_none() {
                continue;
            }
            self.touch(prefix);
            self.touch_holders(prefix);
            for c in self.clients.values_mut() {
                for ia in &mut c.ias {
                    ia.leases.retain(|l| l.0 != prefix);
                }
            }
            handles.extend(self.prefix_handle(prefix));
        }
        handles
    }

    /// The delegable prefixes a new client may get from this server now, in pool order: those
    /// [`allocate::may_allocate`] allows for `endpoint` (a V6 status:
    /// [`allocate::Endpoint::of_status`]) at `now` — outside PARTNER-DOWN only our own
    /// (FREE for the primary, FREE-BACKUP for the secondary, §4.2.2), and none in a state
    /// that gives nothing to new clients (the secondary in NORMAL is renew responsive only,
    /// §8.8.1). In PARTNER-DOWN the partner's follow once ours are all used (§8.4.1). Give one
    /// with [`MemoryStore6::grant`].
    ///
    /// ```
    /// use std::net::Ipv6Addr;
    /// use failover_fsm::v6::allocate::Endpoint;
    /// use failover_fsm::{Role, UnixTime};
    /// use failover_proto::v6::{LeaseAddr, ServerState};
    /// use failover_tokio::v6::MemoryStore6;
    ///
    /// let prefix = |n| LeaseAddr::Prefix { prefix: Ipv6Addr::new(0x2001, 0xdb8, n, 0, 0, 0, 0, 0), len: 56 };
    /// let mut table = MemoryStore6::new();
    /// table.add_pool_lease(prefix(1));
    /// let now = UnixTime(1_700_000_000);
    /// let endpoint = |role, state| Endpoint { role, state, state_since: now, mclt: 3600 };
    /// // A new prefix is the primary's (§4.2.2).
    /// let primary = endpoint(Role::Primary, ServerState::Normal);
    /// assert_eq!(table.delegable_prefixes(&primary, now), [prefix(1)]);
    /// let secondary = endpoint(Role::Secondary, ServerState::CommunicationsInterrupted);
    /// assert!(table.delegable_prefixes(&secondary, now).is_empty());
    /// ```
    pub fn delegable_prefixes(
        &self,
        endpoint: &allocate::Endpoint,
        now: UnixTime,
    ) -> Vec<LeaseAddr> {
        let own_pool_empty = !self.prefix_records().any(|(_, r)| {
            owner::available_to(owner::Kind::Prefix, r.status) == Some(endpoint.role)
        });
        let request = allocate::Request {
            resource: owner::Kind::Prefix,
            last_client: false,
            own_pool_empty,
        };
        self.prefix_records()
            .filter(|(_, r)| allocate::may_allocate(endpoint, r, request, now).is_ok())
            .map(|(p, _)| p)
            .collect()
    }

    /// The handles of the available prefixes no client's binding lists that moved since the
    /// pools were configured (they have a start-time-of-state).
    pub(super) fn moved_prefix_handles(&self) -> Vec<BindingHandle> {
        let held: std::collections::HashSet<LeaseAddr> = self
            .clients
            .values()
            .flat_map(|c| c.ias.iter().flat_map(|ia| ia.leases.iter().map(|l| l.0)))
            .collect();
        self.prefix_records()
            .filter(|(p, r)| {
                !held.contains(p)
                    && r.start_time_of_state.is_some()
                    && owner::available_to(owner::Kind::Prefix, r.status).is_some()
            })
            .filter_map(|(p, _)| self.prefix_handle(p))
            .collect()
    }

    /// Writes the clientless binding of `prefix` ([`LocalLease::clientless_update`]); `None`
    /// once a client holds it (its client's binding carries it) or it is not available.
    pub(super) fn prefix_binding<R>(
        &self,
        prefix: LeaseAddr,
        write: impl FnOnce(&Binding<'_>) -> R,
    ) -> Option<R> {
        let r = self.records.get(&prefix)?;
        owner::available_to(owner::Kind::Prefix, r.status)?;
        let lease = r.clientless_update(prefix, UnixTime(self.now));
        Some(write(&Binding::Prefix(lease)))
    }
}

/// A prefix and its record, for the library's choosers (which read the record).
struct Pos<'a>(LeaseAddr, &'a LocalLease);

impl AsRef<LocalLease> for Pos<'_> {
    fn as_ref(&self) -> &LocalLease {
        self.1
    }
}
