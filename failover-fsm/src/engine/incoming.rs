//! The partner's binding updates: those awaiting the caller's commit and the BNDACKs ready to
//! go (§7.2: nothing is acknowledged that is not on stable storage).

use failover_proto::RejectReason;
use heapless::{Deque, Vec};

use super::{CommitToken, EngineError, MAX_BATCH};

/// The outcome of one binding of a received BNDUPD: `None` while its commit is awaited,
/// `Some(None)` committed, `Some(Some(reason))` rejected.
pub(super) type Outcome = Option<Option<RejectReason>>;

/// A received BNDUPD whose transactions wait for commits.
#[derive(Debug, Clone)]
pub(super) struct Incoming {
    pub(super) xid: u32,
    /// The connection it arrived on.
    pub(super) generation: u32,
    /// (address, token, outcome).
    pub(super) items: Vec<([u8; 4], u64, Outcome), MAX_BATCH>,
}

impl Incoming {
    /// The BNDACK answering it.
    fn ack(&self) -> AckOut {
        let mut items = Vec::new();
        for (addr, _, result) in &self.items {
            let _ = items.push((*addr, result.flatten()));
        }
        AckOut {
            xid: self.xid,
            items,
        }
    }
}

/// A BNDACK ready to go.
#[derive(Debug, Clone)]
pub(super) struct AckOut {
    pub(super) xid: u32,
    pub(super) items: Vec<([u8; 4], Option<RejectReason>), MAX_BATCH>,
}

impl AckOut {
    /// A BNDACK rejecting one binding at once.
    pub(super) fn reject(xid: u32, address: [u8; 4], reason: RejectReason) -> Self {
        let mut items = Vec::new();
        let _ = items.push((address, Some(reason)));
        AckOut { xid, items }
    }
}

/// Received updates in the order they came, and their BNDACKs.
#[derive(Debug)]
pub(super) struct IncomingQueue<const N: usize> {
    awaiting: Vec<Incoming, N>,
    acks: Deque<AckOut, N>,
    next_token: u64,
}

impl<const N: usize> IncomingQueue<N> {
    pub(super) fn new() -> Self {
        IncomingQueue {
            awaiting: Vec::new(),
            acks: Deque::new(),
            next_token: 1,
        }
    }

    /// Forgets everything of the current connection: its BNDACKs belong to it (§8.6); the
    /// partner sends the updates again.
    pub(super) fn clear(&mut self) {
        self.awaiting.clear();
        self.acks.clear();
    }

    /// Received BNDUPDs not yet acknowledged: awaiting commit, or BNDACK not yet sent.
    pub(super) fn unacked(&self) -> usize {
        self.awaiting.len() + self.acks.len()
    }

    /// Binding transactions waiting for the caller's commit.
    pub(super) fn awaiting_commit(&self) -> usize {
        self.awaiting.iter().map(|i| i.items.len()).sum()
    }

    /// A new commit token.
    pub(super) fn token(&mut self) -> u64 {
        let t = self.next_token;
        self.next_token += 1;
        t
    }

    /// Keeps `inc` until its commits are confirmed (room was checked by flow control).
    pub(super) fn wait(&mut self, inc: Incoming) {
        let _ = self.awaiting.push(inc);
    }

    /// Records the outcome of the commit of `token`; returns the update once all of its
    /// bindings are settled.
    pub(super) fn resolve(
        &mut self,
        token: CommitToken,
        reason: Option<RejectReason>,
    ) -> Result<Option<Incoming>, EngineError> {
        let (i, j) = self
            .awaiting
            .iter()
            .enumerate()
            .find_map(|(i, inc)| {
                inc.items
                    .iter()
                    .position(|(_, t, r)| *t == token.0 && r.is_none())
                    .map(|j| (i, j))
            })
            .ok_or(EngineError::UnknownToken)?;
        let inc = self.awaiting.get_mut(i).ok_or(EngineError::UnknownToken)?;
        if let Some(item) = inc.items.get_mut(j) {
            item.2 = Some(reason);
        }
        if inc.items.iter().all(|(_, _, r)| r.is_some()) {
            return Ok(Some(self.awaiting.remove(i)));
        }
        Ok(None)
    }

    /// Queues the BNDACK of a settled update; `Err` when the queue is full.
    pub(super) fn answer(&mut self, inc: &Incoming) -> Result<(), ()> {
        self.push_ack(inc.ack())
    }

    /// Queues a BNDACK; `Err` when the queue is full.
    pub(super) fn push_ack(&mut self, ack: AckOut) -> Result<(), ()> {
        self.acks.push_back(ack).map_err(|_| ())
    }

    /// The next BNDACK to send.
    pub(super) fn pop_ack(&mut self) -> Option<AckOut> {
        self.acks.pop_front()
    }
}
