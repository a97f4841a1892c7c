//! The partner's binding updates: those awaiting the caller's commit and the BNDACKs ready to
//! go (§7.2: nothing is acknowledged that is not on stable storage).

use failover_proto::RejectReason;
use heapless::Deque;

use super::{CommitToken, EngineError, MAX_BATCH};

/// The outcome of one binding of a received BNDUPD: `None` while its commit is awaited,
/// `Some(None)` committed, `Some(Some(reason))` rejected.
pub(super) type Outcome = Option<Option<RejectReason>>;

/// A received BNDUPD not yet acknowledged: its bindings wait for commits, or its BNDACK for
/// the connection.
#[derive(Debug, Clone)]
pub(super) struct Incoming {
    pub(super) xid: u32,
    /// The commit token of the first binding; binding `i` has `first_token + i` (one block of
    /// tokens a BNDUPD, so that no binding needs a token of its own).
    pub(super) first_token: u64,
    /// (address, outcome), in the order of the BNDUPD.
    pub(super) items: Items,
}

/// The bindings of one received BNDUPD, (address, outcome) each, in 5 bytes a binding: the
/// outcome is two bits of a mask and the reason's code.
#[derive(Debug, Clone, Default)]
pub(super) struct Items {
    addresses: [[u8; 4]; MAX_BATCH],
    /// A rejection's reason code (when its `rejected` bit is set).
    reasons: [u8; MAX_BATCH],
    /// Bit i: binding i awaits its commit.
    awaiting: u8,
    /// Bit i: binding i is rejected.
    rejected: u8,
    len: u8,
}

// The masks hold a bit per binding.
const _: () = assert!(MAX_BATCH <= 8);

impl Items {
    pub(super) fn new() -> Self {
        Items::default()
    }

    pub(super) fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Appends a binding; `Err` when MAX_BATCH are there.
    pub(super) fn push(&mut self, (address, outcome): ([u8; 4], Outcome)) -> Result<(), ()> {
        let i = self.len();
        let slot = self.addresses.get_mut(i).ok_or(())?;
        *slot = address;
        self.len += 1;
        self.set(i, outcome);
        Ok(())
    }

    /// Binding `i`.
    pub(super) fn get(&self, i: usize) -> Option<([u8; 4], Outcome)> {
        let address = *self.addresses.get(..self.len())?.get(i)?;
        let bit = 1u8 << i;
        let outcome = if self.awaiting & bit != 0 {
            None
        } else if self.rejected & bit != 0 {
            Some(Some(RejectReason::from(self.reasons.get(i).copied()?)))
        } else {
            Some(None)
        };
        Some((address, outcome))
    }

    /// Sets the outcome of binding `i`.
    pub(super) fn set(&mut self, i: usize, outcome: Outcome) {
        let bit = 1u8 << i;
        self.awaiting &= !bit;
        self.rejected &= !bit;
        match outcome {
            None => self.awaiting |= bit,
            Some(None) => {}
            Some(Some(reason)) => {
                self.rejected |= bit;
                if let Some(r) = self.reasons.get_mut(i) {
                    *r = u8::from(reason);
                }
            }
        }
    }

    /// Whether no binding awaits its commit (a bit test: asked of every update queued, each
    /// time a message may be sent).
    pub(super) fn settled(&self) -> bool {
        self.awaiting == 0
    }

    /// Whether any binding is rejected.
    pub(super) fn any_rejected(&self) -> bool {
        self.rejected != 0
    }

    /// The bindings' addresses.
    pub(super) fn addresses(&self) -> &[[u8; 4]] {
        self.addresses.get(..self.len()).unwrap_or_default()
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = ([u8; 4], Outcome)> + '_ {
        (0..self.len()).filter_map(|i| self.get(i))
    }
}

impl Incoming {
    /// A BNDUPD of one binding rejected at once (`token` from [`IncomingQueue::tokens`], to
    /// keep the queue ordered by token).
    pub(super) fn reject(xid: u32, token: u64, address: [u8; 4], reason: RejectReason) -> Self {
        let mut items = Items::new();
        let _ = items.push((address, Some(Some(reason))));
        Incoming {
            xid,
            first_token: token,
            items,
        }
    }

    /// Every binding is committed or rejected: the BNDACK may go.
    pub(super) fn settled(&self) -> bool {
        self.items.settled()
    }

    /// Where the binding of `token` is in `items`, if this update holds it.
    fn index_of(&self, token: u64) -> Option<usize> {
        let idx = usize::try_from(token.checked_sub(self.first_token)?).ok()?;
        (idx < self.items.len()).then_some(idx)
    }

    /// Whether the binding of `token` is here and still awaits its commit.
    fn awaits(&self, token: u64) -> bool {
        self.index_of(token)
            .and_then(|i| self.items.get(i))
            .is_some_and(|(_, outcome)| outcome.is_none())
    }
}

/// Received updates in the order they came, until their BNDACK is sent: awaiting commits, and
/// settled ones ready to be acknowledged. One queue for both: what counts against the
/// max-unacked-bndupd we advertised is every BNDUPD not yet answered.
#[derive(Debug)]
pub(super) struct IncomingQueue<const N: usize> {
    updates: Deque<Incoming, N>,
    next_token: u64,
}

impl<const N: usize> IncomingQueue<N> {
    pub(super) fn new() -> Self {
        IncomingQueue {
            updates: Deque::new(),
            next_token: 1,
        }
    }

    /// Forgets everything of the current connection: its BNDACKs belong to it (§8.6); the
    /// partner sends the updates again. Called when a connection goes and when one comes, so
    /// that the queue only ever holds the current connection's updates.
    pub(super) fn clear(&mut self) {
        self.updates.clear();
    }

    /// Received BNDUPDs not yet acknowledged: awaiting commit, or BNDACK not yet sent.
    pub(super) fn unacked(&self) -> usize {
        self.updates.len()
    }

    /// Binding transactions waiting for the caller's commit.
    pub(super) fn awaiting_commit(&self) -> usize {
        self.updates
            .iter()
            .flat_map(|u| u.items.iter())
            .filter(|(_, outcome)| outcome.is_none())
            .count()
    }

    /// Whether a received update of `address` is not yet acknowledged (its commit awaited, or
    /// its BNDACK not yet sent).
    pub(super) fn holds(&self, address: &[u8; 4]) -> bool {
        self.updates
            .iter()
            .any(|u| u.items.addresses().contains(address))
    }

    /// A block of `n` new commit tokens; returns the first.
    pub(super) fn tokens(&mut self, n: usize) -> u64 {
        let first = self.next_token;
        self.next_token += n as u64;
        first
    }

    /// Keeps `inc` until it is acknowledged; `Err` when the queue is full (the caller checked
    /// the advertised window first, so only a partner breaking flow control gets here).
    pub(super) fn push(&mut self, inc: Incoming) -> Result<(), ()> {
        self.updates.push_back(inc).map_err(|_| ())
    }

    /// Records the outcome of the commit of `token`; returns whether its update is now settled.
    pub(super) fn resolve(
        &mut self,
        token: CommitToken,
        reason: Option<RejectReason>,
    ) -> Result<bool, EngineError> {
        let idx = self.position_of(token.0).ok_or(EngineError::UnknownToken)?;
        let update = self
            .updates
            .get_mut(idx)
            .filter(|u| u.awaits(token.0))
            .ok_or(EngineError::UnknownToken)?;
        let idx = update.index_of(token.0);
        if let Some(i) = idx {
            update.items.set(i, Some(reason));
        }
        Ok(update.settled())
    }

    /// Where the update holding `token` is. Tokens grow with arrival, so the queue is ordered
    /// by `first_token`: a binary search (settled updates waiting for their BNDACK stay in
    /// front of the ones awaiting commits; a search from the front would walk over them).
    fn position_of(&self, token: u64) -> Option<usize> {
        // ISC sends one binding per BNDUPD: then the update is `token - first` places in.
        let first = self.updates.front()?.first_token;
        if let Some(i) = token
            .checked_sub(first)
            .and_then(|i| usize::try_from(i).ok())
            && self
                .updates
                .get(i)
                .is_some_and(|u| u.index_of(token).is_some())
        {
            return Some(i);
        }
        let (front, back) = self.updates.as_slices();
        let holder = |part: &[Incoming]| {
            let i = part
                .partition_point(|u| u.first_token <= token)
                .checked_sub(1)?;
            part.get(i)
                .filter(|u| u.index_of(token).is_some())
                .map(|_| i)
        };
        holder(back)
            .map(|i| front.len() + i)
            .or_else(|| holder(front))
    }

    /// The next BNDACK to send: the first settled update (BNDACKs are matched by xid, §7.2,
    /// so one may pass another still awaiting its commit). Every update here arrived on the
    /// current connection: the queue is cleared when one goes or comes (`clear`).
    pub(super) fn pop_ack(&mut self) -> Option<Incoming> {
        let idx = self.updates.iter().position(Incoming::settled)?;
        super::take_at(&mut self.updates, idx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(q: &mut IncomingQueue<4>, xid: u32, bindings: usize) -> u64 {
        let first_token = q.tokens(bindings);
        let mut items = Items::new();
        for i in 0..bindings {
            let _ = items.push(([10, 0, 0, i as u8], None));
        }
        assert!(
            q.push(Incoming {
                xid,
                first_token,
                items,
            })
            .is_ok()
        );
        first_token
    }

    #[test]
    fn commits_find_their_update_across_the_ring_and_acks_follow_settlement() {
        let mut q = IncomingQueue::<4>::new();
        let a = update(&mut q, 1, 2);
        let b = update(&mut q, 2, 1);
        assert_eq!(q.resolve(CommitToken(a), None), Ok(false));
        assert_eq!(q.resolve(CommitToken(a + 1), None), Ok(true));
        assert_eq!(q.pop_ack().map(|u| u.xid), Some(1));
        assert_eq!(q.resolve(CommitToken(b), None), Ok(true));
        assert_eq!(q.pop_ack().map(|u| u.xid), Some(2));
        // The ring wraps: the next updates straddle its end.
        let c = update(&mut q, 3, 1);
        let d = update(&mut q, 4, 3);
        let e = update(&mut q, 5, 0);
        let f = update(&mut q, 6, 1);
        assert_eq!(q.unacked(), 4);
        assert_eq!(q.awaiting_commit(), 5);
        // Out of order: the later update settles first and its BNDACK may pass.
        assert_eq!(
            q.resolve(CommitToken(f), Some(RejectReason::FatalConflict)),
            Ok(true)
        );
        assert_eq!(
            q.pop_ack().map(|u| u.xid),
            Some(5),
            "the empty one is settled"
        );
        assert_eq!(q.pop_ack().map(|u| u.xid), Some(6));
        for t in d..d + 3 {
            assert!(q.resolve(CommitToken(t), None).is_ok());
        }
        assert_eq!(
            q.resolve(CommitToken(d), None),
            Err(EngineError::UnknownToken)
        );
        assert_eq!(q.pop_ack().map(|u| u.xid), Some(4));
        assert_eq!(q.resolve(CommitToken(c), None), Ok(true));
        assert_eq!(
            q.resolve(CommitToken(e + 7), None),
            Err(EngineError::UnknownToken)
        );
        // The connection goes: its settled update is dropped, not acknowledged on the next.
        assert_eq!(q.unacked(), 1);
        q.clear();
        assert_eq!(q.pop_ack().map(|u| u.xid), None);
        assert_eq!(q.unacked(), 0);
    }
}
