//! The lease records of a store, by address: one vector per run of pool addresses, where an
//! address is an index, and an ordered map for any address outside the pools (a partner's
//! binding for an address we were not configured with).
//!
//! The failover path reads or changes the record of its address several times a binding
//! (lookup, commit, queue, send, acknowledgement); in an ordered map each was a search of a
//! tree of 424-byte records, a fifth of the CPU of the loopback benchmark.

use std::collections::BTreeMap;
use std::iter::Peekable;
use std::net::Ipv4Addr;
use std::ops::RangeInclusive;

use failover_fsm::record::LeaseRecord;

/// A run of consecutive addresses, each with its record.
#[derive(Debug, Clone)]
struct Block {
    first: u32,
    records: Vec<LeaseRecord>,
}

impl Block {
    fn last(&self) -> u32 {
        let len = u32::try_from(self.records.len()).unwrap_or(u32::MAX);
        self.first.saturating_add(len.saturating_sub(1))
    }

    /// Where iteration from `from` starts in this block: the first address, and its index.
    /// Sliced, not skipped: a walk resumes in the middle of a pool again and again.
    fn start(&self, from: u32) -> (u32, usize) {
        let first = from.max(self.first);
        (
            first,
            usize::try_from(first - self.first).unwrap_or(usize::MAX),
        )
    }

    fn index(&self, address: u32) -> Option<usize> {
        usize::try_from(address.checked_sub(self.first)?)
            .ok()
            .filter(|i| *i < self.records.len())
    }
}

/// Every lease record a store holds, by address: a vector per run of pool addresses (the
/// address is the index) and an ordered map for any address outside the pools.
/// Iteration is in address order.
#[derive(Debug, Clone, Default)]
pub struct LeaseTable {
    /// In address order, disjoint and not adjacent.
    blocks: Vec<Block>,
    strays: BTreeMap<[u8; 4], LeaseRecord>,
}

impl LeaseTable {
    /// A table with a fresh (FREE) record for every address of `pools`
    /// (`(first, count)`; overlapping pools hold each address once).
    pub(super) fn with_pools(pools: &[(Ipv4Addr, u32)]) -> Self {
        let mut runs: Vec<(u32, u32)> = pools
            .iter()
            .filter(|(_, count)| *count > 0)
            .map(|&(first, count)| {
                let first = u32::from(first);
                (first, first.saturating_add(count - 1))
            })
            .collect();
        runs.sort_unstable();
        let mut merged: Vec<(u32, u32)> = Vec::with_capacity(runs.len());
        for (lo, hi) in runs {
            match merged.last_mut() {
                Some((_, last)) if lo <= last.saturating_add(1) => *last = (*last).max(hi),
                _ => merged.push((lo, hi)),
            }
        }
        let blocks = merged
            .into_iter()
            .map(|(lo, hi)| Block {
                first: lo,
                records: (lo..=hi)
                    .map(|a| LeaseRecord::fresh(Ipv4Addr::from(a)))
                    .collect(),
            })
            .collect();
        LeaseTable {
            blocks,
            strays: BTreeMap::new(),
        }
    }

    /// The first block that holds `address` or a later one.
    fn first_block(&self, address: u32) -> usize {
        self.blocks.partition_point(|b| b.last() < address)
    }

    /// The block holding `address`, and the record's index in it.
    fn locate(&self, address: u32) -> Option<(usize, usize)> {
        let b = self.first_block(address);
        let i = self.blocks.get(b)?.index(address)?;
        Some((b, i))
    }

    /// The record of `address`.
    pub fn get(&self, address: &[u8; 4]) -> Option<&LeaseRecord> {
        match self.locate(u32::from_be_bytes(*address)) {
            Some((b, i)) => self.blocks.get(b)?.records.get(i),
            None => self.strays.get(address),
        }
    }

    /// Whether `address` has a record.
    pub fn contains(&self, address: &[u8; 4]) -> bool {
        self.get(address).is_some()
    }

    /// The record of `address`, a fresh one added if it has none; `true` when added.
    pub(super) fn get_or_fresh(&mut self, address: [u8; 4]) -> (&mut LeaseRecord, bool) {
        let at = self.locate(u32::from_be_bytes(address));
        let LeaseTable { blocks, strays } = self;
        if let Some(r) = at.and_then(|(b, i)| blocks.get_mut(b)?.records.get_mut(i)) {
            return (r, false);
        }
        let mut added = false;
        let r = strays.entry(address).or_insert_with(|| {
            added = true;
            LeaseRecord::fresh(Ipv4Addr::from(address))
        });
        (r, added)
    }

    /// Puts `record` in place of the record of `address`.
    pub(super) fn insert(&mut self, address: [u8; 4], record: LeaseRecord) {
        *self.get_or_fresh(address).0 = record;
    }

    /// How many addresses have a record.
    pub fn len(&self) -> usize {
        self.blocks.iter().map(|b| b.records.len()).sum::<usize>() + self.strays.len()
    }

    /// Whether no address has a record.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every address and its record, in address order.
    pub fn iter(&self) -> impl Iterator<Item = ([u8; 4], &LeaseRecord)> + '_ {
        self.range_from([0; 4])
    }

    /// Every record, in address order.
    pub fn values(&self) -> impl Iterator<Item = &LeaseRecord> + '_ {
        self.iter().map(|(_, l)| l)
    }

    pub(super) fn iter_mut(&mut self) -> impl Iterator<Item = ([u8; 4], &mut LeaseRecord)> + '_ {
        self.range_from_mut([0; 4])
    }

    /// The addresses from `from` on, with their records, in address order.
    pub fn range_from(&self, from: [u8; 4]) -> impl Iterator<Item = ([u8; 4], &LeaseRecord)> + '_ {
        let from = u32::from_be_bytes(from);
        let start = self.first_block(from);
        let pooled = self
            .blocks
            .get(start..)
            .unwrap_or_default()
            .iter()
            .flat_map(move |b| {
                let (first, skip) = b.start(from);
                (first..=u32::MAX)
                    .zip(b.records.get(skip..).unwrap_or_default())
                    .map(|(a, l)| (a.to_be_bytes(), l))
            });
        let strays = self
            .strays
            .range(from.to_be_bytes()..)
            .map(|(a, l)| (*a, l));
        Merge::new(pooled, strays)
    }

    pub(super) fn range_from_mut(
        &mut self,
        from: [u8; 4],
    ) -> impl Iterator<Item = ([u8; 4], &mut LeaseRecord)> + '_ {
        let from = u32::from_be_bytes(from);
        let start = self.first_block(from);
        let pooled = self
            .blocks
            .get_mut(start..)
            .unwrap_or_default()
            .iter_mut()
            .flat_map(move |b| {
                let (first, skip) = b.start(from);
                (first..=u32::MAX)
                    .zip(b.records.get_mut(skip..).unwrap_or_default())
                    .map(|(a, l)| (a.to_be_bytes(), l))
            });
        let strays = self
            .strays
            .range_mut(from.to_be_bytes()..)
            .map(|(a, l)| (*a, l));
        Merge::new(pooled, strays)
    }

    /// The records of the addresses in `range`, in address order.
    pub fn range(&self, range: RangeInclusive<[u8; 4]>) -> impl Iterator<Item = &LeaseRecord> + '_ {
        let end = *range.end();
        self.range_from(*range.start())
            .take_while(move |(a, _)| *a <= end)
            .map(|(_, l)| l)
    }

    /// A copy, as an ordered map.
    pub fn to_map(&self) -> BTreeMap<[u8; 4], LeaseRecord> {
        self.iter().map(|(a, l)| (a, l.clone())).collect()
    }
}

/// Two iterators in address order (with no address in both), as one in address order.
struct Merge<A: Iterator, B: Iterator> {
    a: Peekable<A>,
    b: Peekable<B>,
}

impl<T, A, B> Merge<A, B>
where
    A: Iterator<Item = ([u8; 4], T)>,
    B: Iterator<Item = ([u8; 4], T)>,
{
    fn new(a: A, b: B) -> Self {
        Merge {
            a: a.peekable(),
            b: b.peekable(),
        }
    }
}

impl<T, A, B> Iterator for Merge<A, B>
where
    A: Iterator<Item = ([u8; 4], T)>,
    B: Iterator<Item = ([u8; 4], T)>,
{
    type Item = ([u8; 4], T);

    fn next(&mut self) -> Option<Self::Item> {
        match (self.a.peek(), self.b.peek()) {
            (Some((x, _)), Some((y, _))) if y < x => self.b.next(),
            (Some(_), _) => self.a.next(),
            (None, _) => self.b.next(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use failover_fsm::BindingStatus;

    fn a(x: [u8; 4]) -> Ipv4Addr {
        Ipv4Addr::from(x)
    }

    #[test]
    fn pools_merge_and_strays_keep_address_order() {
        // Two overlapping pools and an adjacent one become one run; a separate one its own.
        let mut t = LeaseTable::with_pools(&[
            (a([10, 0, 0, 8]), 4),
            (a([10, 0, 0, 10]), 4),
            (a([10, 0, 0, 14]), 2),
            (a([10, 0, 1, 0]), 2),
        ]);
        assert_eq!(t.blocks.len(), 2);
        assert_eq!(t.len(), 10);
        // Strays before, between and after the runs.
        for s in [[10, 0, 0, 1], [10, 0, 0, 200], [10, 0, 2, 0]] {
            let (r, added) = t.get_or_fresh(s);
            assert!(added);
            r.local.status = BindingStatus::Abandoned;
        }
        assert!(!t.get_or_fresh([10, 0, 0, 9]).1);
        let all: Vec<[u8; 4]> = t.iter().map(|(a, _)| a).collect();
        let mut sorted = all.clone();
        sorted.sort_unstable();
        assert_eq!(all, sorted);
        assert_eq!(all.len(), 13);
        // Every key is its record's address.
        assert!(t.iter().all(|(a, l)| l.data.address == a));
        assert_eq!(
            t.range_from([10, 0, 0, 15])
                .map(|(a, _)| a)
                .collect::<Vec<_>>(),
            vec![
                [10, 0, 0, 15],
                [10, 0, 0, 200],
                [10, 0, 1, 0],
                [10, 0, 1, 1],
                [10, 0, 2, 0]
            ]
        );
        assert_eq!(t.range([10, 0, 0, 0]..=[10, 0, 0, 9]).count(), 3);
        assert_eq!(t.range_from_mut([10, 0, 1, 1]).count(), 2);
        assert_eq!(
            t.get(&[10, 0, 0, 200]).unwrap().local.status,
            BindingStatus::Abandoned
        );
        assert!(t.get(&[10, 0, 0, 7]).is_none() && !t.contains(&[10, 0, 1, 2]));
        assert_eq!(t.to_map().len(), 13);
    }

    #[test]
    fn the_ends_of_the_address_space() {
        let t = LeaseTable::with_pools(&[(a([255, 255, 255, 254]), 5), (a([0, 0, 0, 0]), 1)]);
        assert_eq!(t.len(), 3);
        assert!(t.get(&[255, 255, 255, 255]).is_some() && t.get(&[0, 0, 0, 0]).is_some());
        assert_eq!(t.range_from([255, 255, 255, 255]).count(), 1);
    }
}
