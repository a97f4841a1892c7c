//! Our binding updates to the partner: the queue, what is in flight, and flow control (§5.1,
//! §8.4).
//!
//! The queue holds addresses, not bindings: each slot keeps the address, its place in the
//! order and a [`Summary`] of the version queued (about a third of a binding); the binding
//! itself is read from the caller's store ([`BindingSource`]) when its BNDUPD is written, as
//! ISC sends a lease's current state.

use core::net::Ipv4Addr;

use failover_proto::{BindingStatus, BndUpd, IpFlags};
use heapless::Deque;

use super::{EngineError, UpdateId};
use crate::accept::ClientIdentity;
use crate::binding::{BindingData, BindingSource};
use crate::time::{OptTime, UnixTime};

/// Buckets of the filter that tells whether an address may be queued, per queue slot: a full
/// queue of distinct addresses fills about a quarter of them, so most lookups of an address not
/// queued stop at the filter; the filter's RAM grows with the queue (4 bytes a slot).
const PRESENCE_PER_SLOT: usize = 4;

/// What a slot keeps of the version it stands for: enough to tell new data from the same data
/// (`push`), to judge the partner's binding against ours (`supersede`) and to say what the
/// partner acknowledged. Set from the caller's data when queued, and from what was written when
/// sent.
///
/// Times are kept in four bytes each ([`OptTime`]: a time of 0, "unknown" on the wire, counts
/// as none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Summary {
    pub(super) status: BindingStatus,
    ip_flags: IpFlags,
    pub(super) client: ClientIdentity,
    potential_expiration_time: OptTime,
    lease_expiration_time: OptTime,
    start_time_of_state: OptTime,
    client_last_transaction_time: OptTime,
}

impl Summary {
    #[inline]
    pub(super) fn of(b: &BindingData) -> Self {
        Summary {
            status: b.status,
            ip_flags: b.ip_flags,
            client: b.client(),
            potential_expiration_time: OptTime::new(b.potential_expiration_time),
            lease_expiration_time: OptTime::new(b.lease_expiration_time),
            start_time_of_state: OptTime::new(b.start_time_of_state),
            client_last_transaction_time: OptTime::new(b.client_last_transaction_time),
        }
    }

    /// Nothing: an RFC 8156 slot, whose binding the caller's store describes alone.
    pub(super) fn none() -> Self {
        Summary {
            status: BindingStatus::Free,
            ip_flags: IpFlags::EMPTY,
            client: ClientIdentity::default(),
            potential_expiration_time: OptTime::new(None),
            lease_expiration_time: OptTime::new(None),
            start_time_of_state: OptTime::new(None),
            client_last_transaction_time: OptTime::new(None),
        }
    }

    /// The potential-expiration-time sent.
    pub(super) fn potential_expiration_time(&self) -> Option<UnixTime> {
        self.potential_expiration_time.get()
    }

    /// client-last-transaction-time, else start-time-of-state: what orders two versions.
    fn recency(&self) -> Option<UnixTime> {
        self.client_last_transaction_time
            .get()
            .or(self.start_time_of_state.get())
    }
}

/// One of our bindings, queued or in flight: 64 bytes (the summary's fields are laid out
/// here, not nested, so that no padding is wasted).
#[derive(Debug, Clone)]
pub(super) struct Outgoing {
    /// Position in the queue's order: what an UPDDONE or a hold waits for is "everything up to
    /// this sequence number".
    pub(super) seq: u64,
    /// The [`UpdateId`] of the version: the sequence number given to the `push` that
    /// supplied it.
    pub(super) id: u64,
    client: ClientIdentity,
    potential_expiration_time: OptTime,
    lease_expiration_time: OptTime,
    start_time_of_state: OptTime,
    client_last_transaction_time: OptTime,
    pub(super) address: [u8; 4],
    /// The xid it was sent with, when [`IN_FLIGHT`].
    xid: u32,
    /// Our wall time when it was sent (with `xid`): its BNDACK bounds the skew from below.
    pub(super) sent: u32,
    ip_flags: IpFlags,
    /// The binding-status, as its code (one byte, where the enum takes two).
    status: u8,
    /// [`IN_FLIGHT`], [`SUPERSEDED`].
    flags: u8,
}

/// Sent, with `xid`, and not answered yet.
const IN_FLIGHT: u8 = 1;
/// The partner sent a binding for this address that we accepted after this one was sent: it
/// is stale and is not sent again after a reconnect.
const SUPERSEDED: u8 = 2;

impl Outgoing {
    fn new(seq: u64, address: [u8; 4], summary: Summary) -> Self {
        Outgoing {
            seq,
            id: seq,
            client: summary.client,
            potential_expiration_time: summary.potential_expiration_time,
            lease_expiration_time: summary.lease_expiration_time,
            start_time_of_state: summary.start_time_of_state,
            client_last_transaction_time: summary.client_last_transaction_time,
            address,
            xid: 0,
            sent: 0,
            ip_flags: summary.ip_flags,
            status: u8::from(summary.status),
            flags: 0,
        }
    }

    /// What it stands for.
    pub(super) fn summary(&self) -> Summary {
        Summary {
            status: BindingStatus::from(self.status),
            ip_flags: self.ip_flags,
            client: self.client,
            potential_expiration_time: self.potential_expiration_time,
            lease_expiration_time: self.lease_expiration_time,
            start_time_of_state: self.start_time_of_state,
            client_last_transaction_time: self.client_last_transaction_time,
        }
    }

    fn set_summary(&mut self, s: Summary) {
        self.status = u8::from(s.status);
        self.ip_flags = s.ip_flags;
        self.client = s.client;
        self.potential_expiration_time = s.potential_expiration_time;
        self.lease_expiration_time = s.lease_expiration_time;
        self.start_time_of_state = s.start_time_of_state;
        self.client_last_transaction_time = s.client_last_transaction_time;
    }

    /// The xid it was sent with, if it is in flight.
    pub(super) fn xid(&self) -> Option<u32> {
        (self.flags & IN_FLIGHT != 0).then_some(self.xid)
    }

    fn set_xid(&mut self, xid: Option<u32>) {
        match xid {
            Some(x) => {
                self.xid = x;
                self.flags |= IN_FLIGHT;
            }
            None => self.flags &= !IN_FLIGHT,
        }
    }

    fn superseded(&self) -> bool {
        self.flags & SUPERSEDED != 0
    }
}

/// The queue of our bindings, in the order they are sent.
#[derive(Debug)]
pub(super) struct OutgoingQueue<const N: usize> {
    queue: Deque<Outgoing, N>,
    /// How many of the queue are sent and not yet acknowledged (always the first ones).
    in_flight: usize,
    /// How many queued bindings fall in each address bucket (0: none of that address queued);
    /// `PRESENCE_PER_SLOT * N` buckets. A bucket that reaches 255 stays there (it may then
    /// answer "maybe" for an address not queued, which only costs a look at the queue).
    presence: [[u8; PRESENCE_PER_SLOT]; N],
    next_seq: u64,
}

/// What [`OutgoingQueue::send`] did.
pub(super) enum Sent {
    /// The BNDUPD is written: its length.
    Written(usize),
    /// It did not fit into the buffer.
    NoRoom,
    /// The caller's store no longer holds the address: the slot is gone.
    Dropped,
}

impl<const N: usize> OutgoingQueue<N> {
    pub(super) fn new() -> Self {
        OutgoingQueue {
            queue: Deque::new(),
            in_flight: 0,
            presence: [[0; PRESENCE_PER_SLOT]; N],
            next_seq: 1,
        }
    }

    /// Bindings queued (in flight included).
    pub(super) fn len(&self) -> usize {
        self.queue.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Free slots.
    pub(super) fn space(&self) -> usize {
        N - self.queue.len()
    }

    /// Sent and not yet acknowledged.
    pub(super) fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// The sequence number of the last binding queued so far.
    pub(super) fn last_seq(&self) -> u64 {
        self.next_seq - 1
    }

    /// Whether every binding queued up to sequence number `until` is gone (acknowledged,
    /// rejected or dropped).
    pub(super) fn done_through(&self, until: u64) -> bool {
        self.queue.iter().all(|o| o.seq > until)
    }

    /// Whether update `id` is still queued or in flight: not acknowledged, rejected, replaced
    /// by a newer copy, dropped or superseded by the partner's binding.
    pub(super) fn holds_update(&self, id: u64) -> bool {
        self.queue.iter().any(|o| o.id == id && !o.superseded())
    }

    /// Whether a binding for `address` may be queued (a cheap filter: `false` is certain).
    fn may_hold(&self, address: &[u8; 4]) -> bool {
        self.bucket(address).is_some_and(|n| *n > 0)
    }

    /// Whether a binding for `address` is queued or in flight.
    pub(super) fn holds(&self, address: &[u8; 4]) -> bool {
        self.may_hold(address) && self.queue.iter().any(|o| o.address == *address)
    }

    /// Queues the version `summary` of `address` (see [`super::Engine::send_binding`]).
    pub(super) fn push(
        &mut self,
        address: [u8; 4],
        summary: Summary,
    ) -> Result<UpdateId, EngineError> {
        if !self.may_hold(&address) {
            return self.push_new(address, summary);
        }
        // The same data already queued or in flight: its acknowledgement covers this one.
        if let Some(o) = self
            .queue
            .iter()
            .rev()
            .find(|o| o.address == address)
            .filter(|o| o.summary() == summary && !o.superseded())
        {
            return Ok(UpdateId(o.id));
        }
        let id = self.next_seq;
        if let Some(o) = self
            .queue
            .iter_mut()
            .rev()
            .take_while(|o| o.xid().is_none())
            .find(|o| o.address == address)
        {
            // Replaced in place (its turn and its sequence number stay); the new data has a
            // new id.
            o.set_summary(summary);
            o.id = id;
            self.next_seq += 1;
            return Ok(UpdateId(id));
        }
        self.push_new(address, summary)
    }

    /// Queues a new version of binding `key` (RFC 8156: the caller's handle), whose content
    /// the queue does not know: one not sent yet is replaced in place (new id), one in flight
    /// is followed.
    pub(super) fn push_version(&mut self, key: [u8; 4]) -> Result<UpdateId, EngineError> {
        let id = self.next_seq;
        if self.may_hold(&key)
            && let Some(o) = self
                .queue
                .iter_mut()
                .rev()
                .take_while(|o| o.xid().is_none())
                .find(|o| o.address == key)
        {
            o.id = id;
            self.next_seq += 1;
            return Ok(UpdateId(id));
        }
        self.push_new(key, Summary::none())
    }

    fn push_new(&mut self, address: [u8; 4], summary: Summary) -> Result<UpdateId, EngineError> {
        let seq = self.next_seq;
        self.queue
            .push_back(Outgoing::new(seq, address, summary))
            .map_err(|_| EngineError::QueueFull)?;
        if let Some(n) = self.bucket_mut(&address) {
            *n = n.saturating_add(1);
        }
        self.next_seq += 1;
        Ok(UpdateId(seq))
    }

    /// What ISC's dueling-update rule needs to know (`LocalBinding::in_flight`): for an update
    /// of ours for `address` queued or sent and not yet acknowledged, rejected or superseded
    /// by the partner's, the xid of the last one sent, or 0 if none is sent yet.
    pub(super) fn in_flight_for(&self, address: &[u8; 4]) -> Option<u32> {
        if !self.may_hold(address) {
            return None;
        }
        self.queue
            .iter()
            .filter(|o| o.address == *address && !o.superseded())
            .fold(None, |found, o| o.xid().or(found).or(Some(0)))
    }

    /// Whether an update of ours for `address` is on the wire: sent, not yet acknowledged,
    /// rejected or superseded.
    pub(super) fn sent_for(&self, address: &[u8; 4]) -> bool {
        self.may_hold(address)
            && self
                .queue
                .iter()
                .any(|o| o.address == *address && o.xid().is_some() && !o.superseded())
    }

    /// Our wall time when the oldest binding in flight was sent.
    pub(super) fn oldest_sent(&self) -> Option<u32> {
        self.queue
            .iter()
            .filter(|o| o.xid().is_some())
            .map(|o| o.sent)
            .min()
    }

    /// The first binding not in flight. Bindings are sent in queue order and acknowledged ones
    /// removed, so the ones in flight are the first `in_flight`: look there first.
    pub(super) fn first_unsent(&self) -> Option<usize> {
        // `get`, not `iter().nth`: the deque's iterator steps through every element before.
        match self.queue.get(self.in_flight) {
            Some(o) if o.xid().is_none() => Some(self.in_flight),
            _ => self.queue.iter().position(|o| o.xid().is_none()),
        }
    }

    /// The address (v6: the key) of the update at `idx`.
    pub(super) fn address_at(&self, idx: usize) -> Option<[u8; 4]> {
        self.queue.get(idx).map(|o| o.address)
    }

    /// Writes the binding at `idx`, as `bindings` holds it now, as a BNDUPD with `xid` at our
    /// wall time `wall` and marks it in flight. An address `bindings` no longer holds is
    /// dropped from the queue.
    pub(super) fn send<B: BindingSource + ?Sized>(
        &mut self,
        idx: usize,
        xid: u32,
        wall: u32,
        buf: &mut [u8],
        bindings: &B,
    ) -> Sent {
        let Some(address) = self.queue.get(idx).map(|o| o.address) else {
            return Sent::NoRoom;
        };
        // Not `Option::filter`: that moves the binding once more (a copy of ~150 bytes).
        let binding = bindings.binding(Ipv4Addr::from(address));
        let Some(binding) = binding.as_ref().filter(|b| b.address == address) else {
            let _ = self.remove(idx);
            return Sent::Dropped;
        };
        let Ok(n) = BndUpd::single(wall, xid, &binding.to_wire()).emit(buf) else {
            return Sent::NoRoom;
        };
        let Some(o) = self.queue.get_mut(idx) else {
            return Sent::NoRoom;
        };
        // What went out is what the partner will acknowledge, and what its bindings are judged
        // against from now on.
        o.set_summary(Summary::of(binding));
        o.set_xid(Some(xid));
        o.sent = wall;
        self.in_flight += 1;
        Sent::Written(n)
    }

    /// Writes the binding at `idx` with `write` (given its key and `buf`: `None` when the
    /// caller's store no longer holds it, `Some(None)` when it did not fit) as the update with
    /// `xid`, sent at our wall time `wall`, and marks it in flight.
    pub(super) fn send_with(
        &mut self,
        idx: usize,
        xid: u32,
        wall: u32,
        buf: &mut [u8],
        write: impl FnOnce([u8; 4], &mut [u8]) -> Option<Option<usize>>,
    ) -> Sent {
        let Some(key) = self.queue.get(idx).map(|o| o.address) else {
            return Sent::NoRoom;
        };
        let n = match write(key, buf) {
            None => {
                let _ = self.remove(idx);
                return Sent::Dropped;
            }
            Some(None) => return Sent::NoRoom,
            Some(Some(n)) => n,
        };
        let Some(o) = self.queue.get_mut(idx) else {
            return Sent::NoRoom;
        };
        o.set_xid(Some(xid));
        o.sent = wall;
        self.in_flight += 1;
        Sent::Written(n)
    }

    /// Takes the update sent with `xid` out of the queue (RFC 8156: one binding an update,
    /// matched by xid alone); `None` for an unknown or stale xid.
    pub(super) fn take_answered_xid(&mut self, xid: u32) -> Option<Outgoing> {
        let idx = self.queue.iter().position(|o| o.xid() == Some(xid))?;
        let o = self.remove(idx)?;
        self.in_flight = self.in_flight.saturating_sub(1);
        Some(o)
    }

    /// Takes the binding for `address` sent with `xid` out of the queue (its BNDACK came);
    /// `None` for an unknown or stale xid.
    pub(super) fn take_answered(&mut self, xid: u32, address: &[u8; 4]) -> Option<Outgoing> {
        let idx = self
            .queue
            .iter()
            .position(|o| o.xid() == Some(xid) && o.address == *address)?;
        let o = self.remove(idx)?;
        self.in_flight = self.in_flight.saturating_sub(1);
        Some(o)
    }

    /// We accept the partner's `received` binding: our queued copies of that address that are
    /// not more recent than it (client-last-transaction-time, else start-time-of-state) are
    /// stale. One not sent yet is dropped; one in flight is left to its BNDACK but not sent
    /// again after a reconnect. (The queue holds copies, not the current record: sending a
    /// stale one would overwrite the partner's newer binding.) A more recent copy of ours
    /// stays queued: the acceptance rules can take an older binding (same-client ACTIVE), and
    /// dropping ours would lose the newer lease. If the commit fails, the caller queues its
    /// record again.
    ///
    /// Under ISC's rules (`isc`) the partner's binding was accepted over ours (its dueling
    /// rule, Q2 of the ISC notes): our record is now theirs, and ISC's queue sends a lease's
    /// current state, so none of our copies stands — except the same client's longer lease,
    /// which the partner must still hear of. (Found by the simulator: a queued RELEASED sent
    /// after we took the primary's BACKUP made the primary free an address we were leasing.)
    ///
    /// Returns whether a copy was dropped.
    /// `taken_as_newer`: the engine ordered the partner's binding after ours although ours is
    /// later by the clock (crossing updates, [`crate::accept::Verdict::taken_as_newer`]): ours
    /// are stale like older ones. `ours_wins_tie`: a copy as recent as the partner's binding
    /// stays ([`crate::accept::Verdict::ours_wins_tie`]).
    pub(super) fn supersede(
        &mut self,
        received: &BindingData,
        isc: bool,
        taken_as_newer: bool,
        ours_wins_tie: bool,
    ) -> bool {
        if !self.may_hold(&received.address) {
            return false;
        }
        let address = received.address;
        let received = Summary::of(received);
        let theirs = received.recency();
        let stale = |o: &Outgoing| {
            o.address == address
                && if taken_as_newer {
                    true
                } else if isc {
                    !longer_lease(&o.summary(), &received)
                } else {
                    match (o.summary().recency(), theirs) {
                        (Some(ours), Some(theirs)) => {
                            ours < theirs
                                || (ours == theirs
                                    && !ours_wins_tie
                                    && !longer_lease(&o.summary(), &received))
                        }
                        (None, _) => true,
                        (Some(_), None) => false,
                    }
                }
        };
        let mut dropped = false;
        while let Some(idx) = self
            .queue
            .iter()
            .position(|o| o.xid().is_none() && stale(o))
        {
            let _ = self.remove(idx);
            dropped = true;
        }
        for o in self.queue.iter_mut() {
            if stale(o) {
                o.flags |= SUPERSEDED;
            }
        }
        dropped
    }

    /// Everything sent and not acknowledged goes back to the queue (a new connection, or ISC's
    /// re-queue on leaving some states), except what a partner's binding superseded: returns
    /// how many of those were dropped.
    pub(super) fn requeue_unacked(&mut self) -> usize {
        let mut dropped = 0;
        while let Some(idx) = self.queue.iter().position(|o| o.superseded()) {
            let _ = self.remove(idx);
            dropped += 1;
        }
        for o in self.queue.iter_mut() {
            o.set_xid(None);
        }
        // One copy per address, with the newest data: an older one was in flight when a newer
        // change was queued behind it (`push` replaces only unsent copies); sending it again
        // would put an outdated binding before the current one. The newest data (with its id)
        // takes the place (and sequence number) of the oldest copy, so that what an UPDDONE or the
        // PARTNER-DOWN hold waits for still waits for it (found by the simulator: the hold was
        // released with the newer copy of a PARTNER-DOWN lease still unsent).
        let mut idx = 0;
        while let Some(o) = self.queue.get(idx) {
            let address = o.address;
            let later = self
                .queue
                .iter()
                .skip(idx + 1)
                .position(|n| n.address == address);
            match later.and_then(|k| self.remove(idx + 1 + k)) {
                Some(newer) => {
                    if let Some(o) = self.queue.get_mut(idx) {
                        o.set_summary(newer.summary());
                        o.id = newer.id;
                    }
                }
                None => idx += 1,
            }
        }
        self.in_flight = 0;
        dropped
    }

    fn remove(&mut self, idx: usize) -> Option<Outgoing> {
        let removed = super::take_at(&mut self.queue, idx)?;
        if let Some(n) = self.bucket_mut(&removed.address).filter(|n| **n < u8::MAX) {
            *n = n.saturating_sub(1);
        }
        Some(removed)
    }

    fn bucket(&self, address: &[u8; 4]) -> Option<&u8> {
        let (slot, lane) = presence_bucket(address, N);
        self.presence.get(slot)?.get(lane)
    }

    fn bucket_mut(&mut self, address: &[u8; 4]) -> Option<&mut u8> {
        let (slot, lane) = presence_bucket(address, N);
        self.presence.get_mut(slot)?.get_mut(lane)
    }
}

/// `ours` is the same client's running lease as `theirs`, with a later lease-expiration-time:
/// both servers answered the client within the same second (a broadcast REQUEST), and the
/// partner must hear of the longer lease (the merged record keeps the later time, §7.1.5).
fn longer_lease(ours: &Summary, theirs: &Summary) -> bool {
    ours.status == BindingStatus::Active
        && theirs.status == BindingStatus::Active
        && ours.client == theirs.client
        && ours.lease_expiration_time.get() > theirs.lease_expiration_time.get()
}

/// The filter bucket of an address among `PRESENCE_PER_SLOT * slots`, as (slot, lane):
/// Fibonacci hashing (sequential pools spread evenly), then a multiply-shift range reduction.
fn presence_bucket(address: &[u8; 4], slots: usize) -> (usize, usize) {
    let hash = u64::from(u32::from_be_bytes(*address).wrapping_mul(0x9E37_79B1));
    let bucket = ((hash * (PRESENCE_PER_SLOT * slots) as u64) >> 32) as usize;
    (bucket / PRESENCE_PER_SLOT, bucket % PRESENCE_PER_SLOT)
}
