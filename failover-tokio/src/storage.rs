//! Where a failover peer keeps its lease database and its failover state: the [`Storage`]
//! trait, an in-memory store and an append-only file store that is fsync'd before anything is
//! acknowledged.

use std::collections::BTreeMap;
use std::io;
use std::net::Ipv4Addr;
use std::ops::RangeInclusive;
use std::sync::Mutex;

use failover_fsm::accept::{ClientIdentity, LocalBinding, Verdict, own_free_status};
use failover_fsm::policy::{AddressChoice, BalancePlan, Endpoint, PoolCounts, balance_candidates};
use failover_fsm::record::{Ack, BacklogWalk, LeaseRecord, Queued, Received, UpdateQueue, Walked};
use failover_fsm::{
    BindingData, BindingSource, BindingStatus, LeaseLookup, Persisted, Role, UnixTime, UpdateId,
};
use tracing::warn;

/// The lease database and failover state of one peer, as the failover task needs them.
///
/// Every change is applied in memory at once, by the rules of
/// [`failover_fsm::record::LeaseRecord`] (the one contract every store follows), and becomes
/// durable at the next [`Storage::sync`]. The task acknowledges a partner's binding (BNDACK)
/// and announces a state (STATE) only after the `sync` that covers it returned `Ok` (draft
/// §7.2, §9.2); the changes made while one batch of input is handled share one `sync` (group
/// commit). Our bindings are read from the store when their BNDUPD is written
/// ([`BindingSource`]): the record as it stands then.
pub trait Storage: LeaseLookup + BindingSource + Send + Sync + 'static {
    /// The failover state persisted last, if any (read at start).
    fn load_state(&self) -> Option<Persisted>;
    /// Records the failover state (durable at the next [`Storage::sync`]).
    fn persist_state(&self, state: &Persisted) -> io::Result<()>;
    /// Applies a binding received from the partner as `verdict` says
    /// ([`LeaseRecord::apply_received`]). On [`Received::KeptOurs`] the task queues our record
    /// again.
    fn commit_binding(&self, binding: &BindingData, verdict: &Verdict) -> io::Result<Received>;
    /// Records a change made by this server (a lease granted, released, expired...), to be sent
    /// to the partner ([`LeaseRecord::apply_local`]).
    fn record_local(&self, binding: &BindingData) -> io::Result<()>;
    /// The current record of `address` was queued to the partner as `update`
    /// ([`LeaseRecord::queued`]; with `again`, [`LeaseRecord::queued_again`]).
    fn binding_queued(&self, address: [u8; 4], update: UpdateId, again: bool) -> io::Result<()>;
    /// The partner acknowledged our update of `address` ([`LeaseRecord::apply_ack`]).
    fn binding_acked(&self, address: [u8; 4], ack: &Ack) -> io::Result<()>;
    /// The partner refused our update of `address` ([`LeaseRecord::apply_reject`]).
    fn binding_rejected(&self, address: [u8; 4], update: UpdateId);
    /// Starts `walk` over every record ([`BacklogWalk::begin`]).
    fn begin_walk(&self, walk: &BacklogWalk);
    /// Queues into `queue` the records `walk` asks for, from where it stopped
    /// ([`BacklogWalk::walk`]).
    fn walk(&self, walk: &mut BacklogWalk, queue: &mut dyn UpdateQueue) -> Walked;
    /// Queues the current record of `address` ([`LeaseRecord::send`]; with `again`, after
    /// [`Received::KeptOurs`], [`LeaseRecord::send_again`]).
    fn send_current(&self, address: [u8; 4], again: bool, queue: &mut dyn UpdateQueue) -> Queued;
    /// Available addresses per pool, for balancing ([`PoolCounts::of`]).
    fn pool_counts(&self) -> PoolCounts;
    /// Moves the addresses `plan` gives to the partner's pool at `now`
    /// ([`failover_fsm::policy::balance_candidates`], [`LeaseRecord::given_to_partner`]) and
    /// returns their bindings; queue each with [`Storage::send_current`].
    fn move_to_partner(&self, plan: &BalancePlan, now: UnixTime) -> io::Result<Vec<BindingData>>;
    /// How many pools the store holds: with several, each is balanced on its own (§5.4;
    /// [`failover_fsm::Engine::balance_each_pool`]). 1 by default.
    fn pool_count(&self) -> usize {
        1
    }
    /// Available addresses of pool `pool` (`< pool_count()`); by default the whole store's.
    fn pool_counts_of(&self, pool: usize) -> PoolCounts {
        let _ = pool;
        self.pool_counts()
    }
    /// [`Storage::move_to_partner`] within pool `pool`; by default over the whole store.
    fn move_to_partner_in(
        &self,
        pool: usize,
        plan: &BalancePlan,
        now: UnixTime,
    ) -> io::Result<Vec<BindingData>> {
        let _ = pool;
        self.move_to_partner(plan, now)
    }
    /// The latest potential-expiration-time among the partner's bindings held
    /// ([`failover_fsm::record::latest_received_pet`]), read at start for
    /// [`failover_fsm::Engine::restore_received_pet`]: after the MCLT is lowered, the safety
    /// waits keep the old one as long as a lease the partner granted under it may run. `None`
    /// by default (then only the PETs received since the start count); a store that keeps
    /// the partner's bindings should return it.
    fn latest_received_pet(&self) -> Option<UnixTime> {
        None
    }
    /// Makes every change recorded so far durable (one fsync for all of them). Blocking: the
    /// task runs it off the async runtime's workers, and may run a few at once (the next
    /// group's while one runs): each call returns `Ok` only once every change recorded before
    /// it was called is durable, whichever call wrote it.
    fn sync(&self) -> io::Result<()>;
    /// Whether [`Storage::sync`] does I/O that may block. `true` (the default): the task runs it
    /// on tokio's blocking pool; `false` (a store in memory): it calls it in place, saving two
    /// thread hand-offs per batch.
    fn sync_blocks(&self) -> bool {
        true
    }
}

mod file;
mod index;
mod log_format;
mod table;

pub use file::FileStore;
pub use table::LeaseTable;

/// The failover state as one line of the file store's log (`state ...`): the DHCPv6 peer's
/// state file ([`crate::v6::StateFile`]) holds the same line.
pub(crate) fn state_line(state: &Persisted) -> String {
    log_format::encode_record(&log_format::Record::State(*state))
}

/// A line of [`state_line`]'s format read back; `None` if it is not one.
pub(crate) fn parse_state_line(line: &str) -> Option<Persisted> {
    match log_format::decode_record(line)? {
        log_format::Record::State(p) => Some(p),
        _ => None,
    }
}

use index::{Index, same_place};

/// Which bindings a [`BacklogWalk`] sends.
pub use failover_fsm::record::Backlog;

/// What the store keeps per address: the library's lease record.
pub type Lease = LeaseRecord;

#[derive(Debug, Default)]
struct Inner {
    /// Changed only through [`Inner::update`] (or followed by [`Inner::reindex`]), which keeps
    /// `index` in step.
    leases: LeaseTable,
    index: Index,
    state: Option<Persisted>,
    /// Addresses changed since the last sync (the file store writes their records then), with
    /// repeats: a push per change is cheaper than a set insert, and a sync sorts them once.
    dirty: Vec<[u8; 4]>,
    state_dirty: bool,
}

impl Inner {
    fn mark_all_dirty(&mut self) {
        self.dirty = self.leases.iter().map(|(a, _)| a).collect();
        self.state_dirty = self.state.is_some();
    }

    /// Changes the record of `address` (a fresh one if there is none) with `f`, and marks it
    /// to be written at the next sync.
    fn record<R>(&mut self, address: [u8; 4], f: impl FnOnce(&mut Lease) -> R) -> R {
        self.dirty.push(address);
        self.update(address, f)
    }

    /// Changes the record of `address` with `f`, keeping the indexes in step.
    fn update<R>(&mut self, address: [u8; 4], f: impl FnOnce(&mut Lease) -> R) -> R {
        let (l, added) = self.leases.get_or_fresh(address);
        if added {
            self.index.insert(address, &l.local);
        }
        let before = l.local;
        let r = f(l);
        let after = l.local;
        if !same_place(&before, &after) {
            self.index.update(address, &before, &after);
        }
        r
    }

    /// Builds the indexes again, after a change of many records at once.
    fn reindex(&mut self) {
        self.index = Index::of(&self.leases, self.index.built());
    }
}

/// A lease store in memory: the reference for tests and examples. Not durable across
/// process restarts; see [`FileStore`] for that.
#[derive(Debug)]
pub struct MemoryStore {
    role: Role,
    /// The pools, each balanced on its own when there are several.
    pools: Vec<RangeInclusive<[u8; 4]>>,
    inner: Mutex<Inner>,
}

impl MemoryStore {
    /// A store whose pool is `count` addresses from `first`, all FREE (all addresses start on
    /// the primary, draft §5.4).
    pub fn new(role: Role, first: Ipv4Addr, count: u32) -> Self {
        MemoryStore::with_pools(role, &[(first, count)])
    }

    /// A store whose pools are `count` addresses from `first` each (one relationship may
    /// serve several subnets, draft §5.4: the pools of a relationship), all FREE. Overlapping
    /// pools hold each address once.
    ///
    /// ```
    /// # use std::net::Ipv4Addr;
    /// # use failover_tokio::{MemoryStore, Storage};
    /// # use failover_fsm::Role;
    /// let store = MemoryStore::with_pools(
    ///     Role::Primary,
    ///     &[(Ipv4Addr::new(192, 0, 2, 10), 100), (Ipv4Addr::new(198, 51, 100, 10), 50)],
    /// );
    /// assert_eq!(store.pool_counts().free, 150);
    /// assert_eq!(store.pool_count(), 2);
    /// assert!(store.get(Ipv4Addr::new(198, 51, 100, 59)).is_some());
    /// assert!(store.get(Ipv4Addr::new(198, 51, 100, 60)).is_none());
    /// ```
    pub fn with_pools(role: Role, pools: &[(Ipv4Addr, u32)]) -> Self {
        let mut inner = Inner {
            leases: LeaseTable::with_pools(pools),
            ..Inner::default()
        };
        inner.reindex();
        let mut ranges: Vec<RangeInclusive<[u8; 4]>> = pools
            .iter()
            .filter(|(_, count)| *count > 0)
            .map(|&(first, count)| {
                let last = Ipv4Addr::from(u32::from(first).wrapping_add(count - 1));
                first.octets()..=last.octets()
            })
            .collect();
        ranges.sort_by_key(|r| *r.start());
        MemoryStore {
            role,
            pools: ranges,
            inner: Mutex::new(inner),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave a lease half-written (each update is one
        // assignment), so a poisoned lock is still consistent.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A copy of every lease, by address.
    pub fn snapshot(&self) -> BTreeMap<[u8; 4], Lease> {
        self.lock().leases.to_map()
    }

    /// Runs `f` over every lease, by address, without copying them (the store is locked
    /// meanwhile: keep `f` short, and do not call the store from it).
    ///
    /// ```
    /// # use std::net::Ipv4Addr;
    /// # use failover_tokio::MemoryStore;
    /// # use failover_fsm::{BindingStatus, Role};
    /// let store = MemoryStore::new(Role::Primary, Ipv4Addr::new(192, 0, 2, 0), 8);
    /// let free = store.with_leases(|leases| {
    ///     leases.values().filter(|l| l.local.status == BindingStatus::Free).count()
    /// });
    /// assert_eq!(free, 8);
    /// ```
    pub fn with_leases<R>(&self, f: impl FnOnce(&LeaseTable) -> R) -> R {
        f(&self.lock().leases)
    }

    /// The address to offer `client` ([`failover_fsm::policy::choose_address`] over the whole
    /// table, less what `skip` leaves out), and its lease. The store looks only where the
    /// choice can be — the client's own addresses, the one it asked for (`requested`), and per
    /// status in address order until one is allowed — so a DISCOVER costs about
    /// `O(log n)`, not a pass over the pool. `skip(address, lease)`: addresses the caller must
    /// not offer for reasons of its own (offered to another client a moment ago).
    ///
    /// ```
    /// # use std::net::Ipv4Addr;
    /// use failover_fsm::accept::ClientIdentity;
    /// use failover_fsm::policy::Endpoint;
    /// use failover_fsm::{Dialect, Role, ServerState, UnixTime};
    /// use failover_tokio::MemoryStore;
    ///
    /// let store = MemoryStore::new(Role::Primary, Ipv4Addr::new(192, 0, 2, 10), 100);
    /// let ep = Endpoint {
    ///     dialect: Dialect::Isc,
    ///     role: Role::Primary,
    ///     state: ServerState::Normal,
    ///     state_since: UnixTime(0),
    ///     partner_state: Some(ServerState::Normal),
    ///     mclt: 60,
    ///     lease_mclt: 60,
    /// };
    /// let client = ClientIdentity::new(Some(b"c1"), None);
    /// let first = Ipv4Addr::new(192, 0, 2, 10);
    /// let lease = store.choose_address(&ep, &client, None, UnixTime(1_000), |a, _| a == first);
    /// assert_eq!(lease.map(|l| l.data.ip()), Some(Ipv4Addr::new(192, 0, 2, 11)));
    /// ```
    pub fn choose_address(
        &self,
        endpoint: &Endpoint,
        client: &ClientIdentity,
        requested: Option<Ipv4Addr>,
        now: UnixTime,
        skip: impl FnMut(Ipv4Addr, &Lease) -> bool,
    ) -> Option<Lease> {
        let all = Ipv4Addr::UNSPECIFIED..=Ipv4Addr::BROADCAST;
        self.choose_address_within(all, endpoint, client, requested, now, skip)
    }

    /// [`MemoryStore::choose_address`] among the addresses of `pool` only: the choice
    /// [`failover_fsm::policy::choose_address`] makes over the records of that range, for a
    /// server with several pools that answers a client from the pool of its network.
    pub fn choose_address_within(
        &self,
        pool: RangeInclusive<Ipv4Addr>,
        endpoint: &Endpoint,
        client: &ClientIdentity,
        requested: Option<Ipv4Addr>,
        now: UnixTime,
        skip: impl FnMut(Ipv4Addr, &Lease) -> bool,
    ) -> Option<Lease> {
        let mut g = self.lock();
        let Inner { leases, index, .. } = &mut *g;
        index.build(leases);
        let mut choice = AddressChoice::new(endpoint, client, requested, now);
        let within = pool.start().octets()..=pool.end().octets();
        index.choose(&mut choice, leases, within, skip);
        leases.get(&choice.chosen()?.octets()).cloned()
    }

    /// The bindings of the leases that ended before `now` ([`LeaseRecord::expired`] of every
    /// lease), found through the index of ACTIVE leases by lease-expiration-time.
    pub fn expired(&self, now: UnixTime) -> Vec<BindingData> {
        let mut g = self.lock();
        let Inner { leases, index, .. } = &mut *g;
        index.build(leases);
        index
            .ended(now)
            .filter_map(|a| leases.get(&a)?.expired(now))
            .collect()
    }

    /// The lease of `address`.
    pub fn get(&self, address: Ipv4Addr) -> Option<Lease> {
        self.lock().leases.get(&address.octets()).cloned()
    }

    /// Counts addresses with `status`.
    pub fn count(&self, status: BindingStatus) -> usize {
        self.lock()
            .leases
            .values()
            .filter(|l| l.local.status == status)
            .count()
    }

    /// An address this server may give to a new client now (FREE on the primary, BACKUP on
    /// the secondary), lowest first.
    pub fn free_address(&self) -> Option<Ipv4Addr> {
        let own = own_free_status(self.role);
        self.lock()
            .leases
            .iter()
            .find(|(_, l)| l.local.status == own)
            .map(|(a, _)| Ipv4Addr::from(a))
    }

    /// Addresses the partner may give to new clients: ours in PARTNER-DOWN after MCLT.
    pub fn partner_free_address(&self) -> Option<Ipv4Addr> {
        let theirs = own_free_status(match self.role {
            Role::Primary => Role::Secondary,
            Role::Secondary => Role::Primary,
        });
        self.lock()
            .leases
            .iter()
            .find(|(_, l)| l.local.status == theirs)
            .map(|(a, _)| Ipv4Addr::from(a))
    }

    /// Forgets everything (a server that lost its storage).
    pub fn wipe(&self) {
        let mut g = self.lock();
        g.state = None;
        for (a, l) in g.leases.iter_mut() {
            *l = LeaseRecord::fresh(Ipv4Addr::from(a));
        }
        g.reindex();
    }

    /// The addresses changed and whether the state changed since the last call.
    fn take_dirty(&self) -> (Vec<([u8; 4], Lease)>, Option<Persisted>) {
        let mut g = self.lock();
        let mut dirty = std::mem::take(&mut g.dirty);
        dirty.sort_unstable();
        dirty.dedup();
        let records = dirty
            .into_iter()
            .filter_map(|a| g.leases.get(&a).map(|l| (a, l.clone())))
            .collect();
        let state = std::mem::take(&mut g.state_dirty)
            .then_some(g.state)
            .flatten();
        (records, state)
    }
}

impl LeaseLookup for MemoryStore {
    fn lookup(&self, address: Ipv4Addr) -> Option<LocalBinding> {
        self.lock().leases.get(&address.octets()).map(|l| l.local)
    }
}

impl BindingSource for MemoryStore {
    fn binding(&self, address: Ipv4Addr) -> Option<BindingData> {
        self.lock()
            .leases
            .get(&address.octets())
            .map(|l| l.data.clone())
    }
}

impl MemoryStore {
    /// [`Storage::move_to_partner`] among the addresses in `range`.
    fn move_within(
        &self,
        range: &RangeInclusive<[u8; 4]>,
        plan: &BalancePlan,
        now: UnixTime,
    ) -> io::Result<Vec<BindingData>> {
        let mut g = self.lock();
        let Inner { leases, index, .. } = &*g;
        // Only addresses of the status the plan takes from can be candidates.
        let records = index
            .with_status(plan.takes_from(), leases)
            .into_iter()
            .filter(|a| range.contains(a))
            .filter_map(|a| leases.get(&a));
        let moved: Vec<BindingData> = balance_candidates(plan, records)
            .map(|l| l.given_to_partner(plan, now))
            .collect();
        for b in &moved {
            g.record(b.address, |l| l.apply_local(b.clone(), true));
        }
        Ok(moved)
    }
}

impl Storage for MemoryStore {
    fn load_state(&self) -> Option<Persisted> {
        self.lock().state
    }

    fn persist_state(&self, state: &Persisted) -> io::Result<()> {
        let mut g = self.lock();
        g.state = Some(*state);
        g.state_dirty = true;
        Ok(())
    }

    fn commit_binding(&self, binding: &BindingData, verdict: &Verdict) -> io::Result<Received> {
        Ok(self
            .lock()
            .record(binding.address, |l| l.apply_received(binding, verdict)))
    }

    fn record_local(&self, binding: &BindingData) -> io::Result<()> {
        self.lock()
            .record(binding.address, |l| l.apply_local(binding.clone(), true));
        Ok(())
    }

    fn binding_queued(&self, address: [u8; 4], update: UpdateId, again: bool) -> io::Result<()> {
        self.lock().record(address, |r| {
            if again {
                r.queued_again(update);
            } else {
                r.queued(update);
            }
        });
        Ok(())
    }

    fn binding_acked(&self, address: [u8; 4], ack: &Ack) -> io::Result<()> {
        let role = self.role;
        let mut g = self.lock();
        if g.leases.contains(&address) {
            g.record(address, |l| l.apply_ack(ack, role));
        }
        Ok(())
    }

    fn binding_rejected(&self, address: [u8; 4], update: UpdateId) {
        let mut g = self.lock();
        if g.leases.contains(&address) {
            g.update(address, |r| r.apply_reject(update));
        }
    }

    fn begin_walk(&self, walk: &BacklogWalk) {
        let mut g = self.lock();
        let Inner { leases, dirty, .. } = &mut *g;
        walk.begin(leases.iter_mut().map(|(_, l)| l));
        let all = walk.which() == Backlog::All;
        if all {
            // Counted as unacknowledged from now on: durable too.
            dirty.extend(
                leases
                    .iter()
                    .filter(|(_, l)| !l.is_untouched())
                    .map(|(a, _)| a),
            );
            g.reindex();
        }
    }

    fn walk(&self, walk: &mut BacklogWalk, queue: &mut dyn UpdateQueue) -> Walked {
        let mut g = self.lock();
        let Inner {
            leases,
            dirty,
            index,
            ..
        } = &mut *g;
        let from = walk.resume_at().octets();
        // The records the walk is handed, as they were: those it changed are filed again.
        let mut seen = Vec::new();
        let records = leases.range_from_mut(from).map(|(a, l)| {
            seen.push((a, l.local));
            l
        });
        let walked = walk.walk(records, queue, |l, queued| match queued {
            Ok(_) => dirty.push(l.data.address),
            Err(e) => warn!(error = %e, address = %l.data.ip(), "binding not sent"),
        });
        for (a, before) in seen {
            if let Some(l) = leases.get(&a)
                && !same_place(&before, &l.local)
            {
                index.update(a, &before, &l.local);
            }
        }
        walked
    }

    fn send_current(&self, address: [u8; 4], again: bool, queue: &mut dyn UpdateQueue) -> Queued {
        self.lock().record(address, |r| {
            if again {
                r.send_again(queue)
            } else {
                r.send(queue)
            }
        })
    }

    fn pool_counts(&self) -> PoolCounts {
        self.lock().index.counts()
    }

    fn latest_received_pet(&self) -> Option<UnixTime> {
        failover_fsm::record::latest_received_pet(self.lock().leases.values())
    }

    fn move_to_partner(&self, plan: &BalancePlan, now: UnixTime) -> io::Result<Vec<BindingData>> {
        self.move_within(&([0; 4]..=[255; 4]), plan, now)
    }

    fn pool_count(&self) -> usize {
        self.pools.len().max(1)
    }

    fn pool_counts_of(&self, pool: usize) -> PoolCounts {
        match self.pools.get(pool) {
            Some(range) if self.pools.len() > 1 => {
                PoolCounts::of(self.lock().leases.range(range.clone()))
            }
            _ => self.pool_counts(),
        }
    }

    fn move_to_partner_in(
        &self,
        pool: usize,
        plan: &BalancePlan,
        now: UnixTime,
    ) -> io::Result<Vec<BindingData>> {
        match self.pools.get(pool) {
            Some(range) if self.pools.len() > 1 => self.move_within(range, plan, now),
            _ => self.move_to_partner(plan, now),
        }
    }

    fn sync(&self) -> io::Result<()> {
        let mut g = self.lock();
        g.dirty.clear();
        g.state_dirty = false;
        Ok(())
    }

    fn sync_blocks(&self) -> bool {
        false
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
