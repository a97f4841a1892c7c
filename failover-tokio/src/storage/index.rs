//! The store's indexes over its lease table, so that a DHCP server finds an address to offer,
//! the leases that ended and the pool counts without a scan of the whole table per message.
//!
//! The indexes only narrow where to look: the choice is the library's
//! ([`failover_fsm::policy::AddressChoice`], which takes the least `(rank, address)` allowed
//! by `may_allocate_to`, whatever the order it is shown records in), and the statuses skipped
//! are those [`may_offer_status`] rules out.

use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::ops::{Bound, RangeInclusive};

use failover_fsm::accept::{ClientIdentity, LocalBinding};
use failover_fsm::policy::{AddressChoice, PoolCounts, may_offer_status};
use failover_fsm::{BindingStatus, UnixTime};

use super::{Lease, LeaseTable};

/// A key of [`Index::clients`]: a client identifier's fingerprint (`true`) or a hardware
/// address's (`false`).
type ClientKey = (bool, u64);

/// Addresses by what the allocation rules look at, kept in step with the table by
/// [`Index::insert`] / [`Index::update`] around every change of a record.
///
/// The pool counts are always kept. The allocation indexes are built at the first query that
/// needs them ([`Index::build`]: a DHCP server's first offer or expiry scan) and kept from then
/// on: a store that only mirrors the failover partner never pays for them.
#[derive(Debug, Default)]
pub(super) struct Index {
    /// Whether `by_status`, `active` and `clients` are built (and kept).
    built: bool,
    /// Every address but the ACTIVE ones, by status then address.
    by_status: BTreeSet<(BindingStatus, [u8; 4])>,
    /// ACTIVE addresses by lease-expiration-time (none: last), then address.
    active: BTreeSet<(u64, [u8; 4])>,
    /// The addresses each client holds or held last.
    clients: HashMap<ClientKey, Held>,
    /// FREE and BACKUP addresses ([`PoolCounts::add`] / [`PoolCounts::remove`]).
    counts: PoolCounts,
}

/// The addresses of one client: one, almost always, kept in place (no allocation per client).
#[derive(Debug)]
enum Held {
    One([u8; 4]),
    Many(Vec<[u8; 4]>),
}

impl Held {
    fn as_slice(&self) -> &[[u8; 4]] {
        match self {
            Held::One(a) => core::slice::from_ref(a),
            Held::Many(v) => v,
        }
    }

    fn add(&mut self, address: [u8; 4]) {
        match self {
            Held::One(a) if *a == address => {}
            Held::One(a) => *self = Held::Many(vec![*a, address]),
            Held::Many(v) if v.contains(&address) => {}
            Held::Many(v) => v.push(address),
        }
    }

    /// Takes `address` out; whether none is left.
    fn take(&mut self, address: [u8; 4]) -> bool {
        match self {
            Held::One(a) => *a == address,
            Held::Many(v) => {
                v.retain(|a| *a != address);
                v.is_empty()
            }
        }
    }
}

fn expiry_key(local: &LocalBinding) -> u64 {
    local.lease_expiration.map_or(u64::MAX, |t| u64::from(t.0))
}

fn client_keys(client: &ClientIdentity) -> impl Iterator<Item = ClientKey> {
    let id = client.client_id_key().map(|k| (true, k));
    let hw = client.hardware_key().map(|k| (false, k));
    id.into_iter().chain(hw)
}

/// Whether the indexes file `a` and `b` alike.
pub(super) fn same_place(a: &LocalBinding, b: &LocalBinding) -> bool {
    a.status == b.status
        && a.reserved == b.reserved
        && a.client == b.client
        && (a.status != BindingStatus::Active || a.lease_expiration == b.lease_expiration)
}

impl Index {
    /// The indexes of `leases`: the counts, and the allocation indexes if `built`.
    pub(super) fn of(leases: &LeaseTable, built: bool) -> Index {
        let mut index = Index {
            built,
            ..Index::default()
        };
        for (a, l) in leases.iter() {
            index.insert(a, &l.local);
        }
        index
    }

    /// Whether the allocation indexes are built.
    pub(super) fn built(&self) -> bool {
        self.built
    }

    /// Builds the allocation indexes of `leases` if they are not yet.
    pub(super) fn build(&mut self, leases: &LeaseTable) {
        if !self.built {
            *self = Index::of(leases, true);
        }
    }

    /// Files `address`, whose record is now `local`.
    pub(super) fn insert(&mut self, address: [u8; 4], local: &LocalBinding) {
        if self.built {
            self.file(address, local);
            self.add_client(address, &local.client);
        }
        self.counts.add(local);
    }

    /// Moves `address` from where `before` is filed to where `after` is, touching only the
    /// indexes whose key changed (a renewal changes the expiry, not the client).
    pub(super) fn update(&mut self, address: [u8; 4], before: &LocalBinding, after: &LocalBinding) {
        let filed = |l: &LocalBinding| {
            if l.status == BindingStatus::Active {
                (l.status, expiry_key(l))
            } else {
                (l.status, 0)
            }
        };
        self.counts.remove(before);
        self.counts.add(after);
        if !self.built {
            return;
        }
        if filed(before) != filed(after) {
            self.unfile(address, before);
            self.file(address, after);
        }
        if before.client != after.client {
            self.remove_client(address, &before.client);
            self.add_client(address, &after.client);
        }
    }

    fn file(&mut self, address: [u8; 4], local: &LocalBinding) {
        if local.status == BindingStatus::Active {
            self.active.insert((expiry_key(local), address));
        } else {
            self.by_status.insert((local.status, address));
        }
    }

    fn unfile(&mut self, address: [u8; 4], local: &LocalBinding) {
        if local.status == BindingStatus::Active {
            self.active.remove(&(expiry_key(local), address));
        } else {
            self.by_status.remove(&(local.status, address));
        }
    }

    fn add_client(&mut self, address: [u8; 4], client: &ClientIdentity) {
        for k in client_keys(client) {
            self.clients
                .entry(k)
                .and_modify(|held| held.add(address))
                .or_insert(Held::One(address));
        }
    }

    fn remove_client(&mut self, address: [u8; 4], client: &ClientIdentity) {
        for k in client_keys(client) {
            if let Some(held) = self.clients.get_mut(&k)
                && held.take(address)
            {
                self.clients.remove(&k);
            }
        }
    }

    /// FREE and BACKUP addresses, reserved ones left out.
    pub(super) fn counts(&self) -> PoolCounts {
        self.counts
    }

    /// The ACTIVE addresses whose lease-expiration-time is before `now` (after
    /// [`Index::build`]).
    pub(super) fn ended(&self, now: UnixTime) -> impl Iterator<Item = [u8; 4]> + '_ {
        self.active
            .range(..(u64::from(now.0), [0; 4]))
            .map(|(_, a)| *a)
    }

    /// The addresses with `status`, in address order (from the table itself while the
    /// allocation indexes are not built: balancing runs now and then).
    pub(super) fn with_status(&self, status: BindingStatus, leases: &LeaseTable) -> Vec<[u8; 4]> {
        if !self.built {
            return leases
                .iter()
                .filter(|(_, l)| l.local.status == status)
                .map(|(a, _)| a)
                .collect();
        }
        if status == BindingStatus::Active {
            let mut all: Vec<[u8; 4]> = self.active.iter().map(|(_, a)| *a).collect();
            all.sort_unstable();
            return all;
        }
        self.by_status
            .range((status, [0; 4])..=(status, [255; 4]))
            .map(|(_, a)| *a)
            .collect()
    }

    /// The statuses filed in `by_status`, each once, in order.
    fn statuses(&self) -> impl Iterator<Item = BindingStatus> + '_ {
        let mut next = self.by_status.first().map(|(s, _)| *s);
        std::iter::from_fn(move || {
            let s = next?;
            next = self
                .by_status
                .range((Bound::Excluded((s, [255; 4])), Bound::Unbounded))
                .next()
                .map(|(s, _)| *s);
            Some(s)
        })
    }

    /// What `choice` ([`failover_fsm::policy::choose_address`] over the whole table) chooses,
    /// looking only where the chosen address can be: the client's addresses (rank 0), the one
    /// it asked for (rank 1), and per status that [`may_offer_status`] allows, in address
    /// order, until an address is allowed or none further can win. `skip` leaves out what the
    /// caller must not offer.
    /// Only addresses `within` are looked at (one pool of several). After [`Index::build`].
    pub(super) fn choose(
        &self,
        choice: &mut AddressChoice<'_>,
        leases: &LeaseTable,
        within: RangeInclusive<[u8; 4]>,
        mut skip: impl FnMut(Ipv4Addr, &Lease) -> bool,
    ) {
        let (endpoint, client) = (choice.endpoint(), choice.client());
        let (requested, now) = (choice.requested(), choice.now());
        let (lo, hi) = (*within.start(), *within.end());
        let mut look = |choice: &mut AddressChoice<'_>, a: [u8; 4]| -> bool {
            if !within.contains(&a) {
                return false;
            }
            match leases.get(&a) {
                Some(l) if !skip(Ipv4Addr::from(a), l) => {
                    choice.consider(Ipv4Addr::from(a), &l.local)
                }
                _ => false,
            }
        };
        for k in client_keys(client) {
            for a in self.clients.get(&k).map_or(&[][..], Held::as_slice) {
                look(choice, *a);
            }
        }
        if let Some(r) = requested {
            look(choice, r.octets());
        }
        // An ACTIVE lease that ended is EXPIRED to the rules (`as_of`); a running one is
        // never another client's.
        if may_offer_status(endpoint, BindingStatus::Expired) {
            for a in self.ended(now) {
                look(choice, a);
            }
        }
        for status in self.statuses() {
            if !may_offer_status(endpoint, status) {
                continue;
            }
            for (_, a) in self.by_status.range((status, lo)..=(status, hi)) {
                // Later addresses of this status rank the same and are higher: they cannot
                // win either (the client's own and the requested one were looked at above).
                let Some(l) = leases.get(a) else { continue };
                if !choice.could_improve(Ipv4Addr::from(*a), &l.local) {
                    break;
                }
                if look(choice, *a) {
                    break;
                }
            }
        }
    }
}
