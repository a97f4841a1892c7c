//! Sending a store's records to the partner a bit at a time, as the engine's queue has room:
//! the answer to UPDREQ / UPDREQALL (§7.3, §7.4, then UPDDONE, §7.5) and the backlog on
//! entering NORMAL (§9.8.1).

use core::net::Ipv4Addr;

use super::{Backlog, LeaseRecord};
use crate::binding::BindingData;
use crate::engine::{Action, Engine, EngineError, UpdateId, V4};

/// What queueing a binding gave: the engine's id of the update, or why it was refused.
pub type Queued = Result<UpdateId, EngineError>;

/// The engine's queue of our binding updates, as a store feeds it. [`Engine`] implements it; a
/// test kit may wrap it to watch what is queued.
pub trait UpdateQueue {
    /// Queues `binding` ([`Engine::send_binding`]).
    fn send_binding(&mut self, binding: &BindingData) -> Queued;
    /// Everything asked for is queued ([`Engine::end_of_updates`]).
    fn end_of_updates(&mut self);
}

impl<const QUEUE: usize, const COMMITS: usize, const EVENTS: usize> UpdateQueue
    for Engine<QUEUE, COMMITS, EVENTS, V4>
{
    fn send_binding(&mut self, binding: &BindingData) -> Queued {
        Engine::<QUEUE, COMMITS, EVENTS, V4>::send_binding(self, binding)
    }

    fn end_of_updates(&mut self) {
        Engine::end_of_updates(self);
    }
}

/// How far a [`BacklogWalk::walk`] got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Walked {
    /// Every record was offered (and `end_of_updates` called if the walk answers a request):
    /// drop the walk.
    Done,
    /// The queue is full: walk again once acknowledgements free room (after
    /// `BindingAcked` / `BindingRejected`), with the same records.
    QueueFull,
}

/// A walk over a store's records, in address order, queueing those the partner should have,
/// resumed where the queue filled up. No allocation: the walk remembers only the next address.
///
/// Each record goes with its data as it stands when the walk reaches it, so a change made
/// meanwhile (queued on its own) is never overtaken by an older copy; a record the partner
/// acknowledged meanwhile is left out.
///
/// ```
/// # use core::net::Ipv4Addr;
/// use failover_fsm::record::{Backlog, BacklogWalk, LeaseRecord, UpdateQueue, Walked};
/// use failover_fsm::{BindingData, BindingStatus, EngineError, UpdateId};
///
/// /// A queue with room for two.
/// #[derive(Default)]
/// struct Two(Vec<BindingData>, bool);
/// impl UpdateQueue for Two {
///     fn send_binding(&mut self, b: &BindingData) -> Result<UpdateId, EngineError> {
///         if self.0.len() == 2 {
///             return Err(EngineError::QueueFull);
///         }
///         self.0.push(b.clone());
///         Ok(UpdateId(self.0.len() as u64))
///     }
///     fn end_of_updates(&mut self) {
///         self.1 = true;
///     }
/// }
///
/// let mut records: Vec<LeaseRecord> = (1..=4)
///     .map(|i| {
///         let mut r = LeaseRecord::fresh(Ipv4Addr::new(192, 0, 2, i));
///         r.apply_local(BindingData::new(r.data.ip(), BindingStatus::Backup), true);
///         r
///     })
///     .collect();
/// // UPDREQ: everything not acknowledged, then UPDDONE.
/// let mut walk = BacklogWalk::answering(Backlog::Unacked);
/// walk.begin(&mut records);
/// let mut queue = Two::default();
/// assert_eq!(walk.walk(&mut records, &mut queue, |_, _| {}), Walked::QueueFull);
/// assert_eq!(walk.resume_at(), Ipv4Addr::new(192, 0, 2, 3));
/// queue.0.clear(); // acknowledged
/// assert_eq!(walk.walk(&mut records, &mut queue, |_, _| {}), Walked::Done);
/// assert!(queue.1, "end_of_updates");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct BacklogWalk {
    which: Backlog,
    /// The address the walk resumes at (`u32::MAX + 1`: past the last one).
    next: u64,
    answers_request: bool,
    queued: u32,
}

impl BacklogWalk {
    /// The walk an action asks for: `SendAllBindings` (UPDREQALL, §7.4) and
    /// `SendUnackedBindings` (UPDREQ, §7.3) are answered, then `end_of_updates`;
    /// `SendBacklog` (§9.8.1) is not a request. `None` for any other action.
    pub fn for_action(action: &Action) -> Option<BacklogWalk> {
        match action {
            Action::SendAllBindings => Some(Self::answering(Backlog::All)),
            Action::SendUnackedBindings => Some(Self::answering(Backlog::Unacked)),
            Action::SendBacklog => Some(Self::backlog()),
            _ => None,
        }
    }

    /// The answer to the partner's update request: `which` records, then `end_of_updates`
    /// (UPDDONE once all of it is acknowledged, §7.5).
    pub const fn answering(which: Backlog) -> BacklogWalk {
        BacklogWalk {
            which,
            next: 0,
            answers_request: true,
            queued: 0,
        }
    }

    /// The backlog on entering NORMAL (§9.8.1): the records the partner has not acknowledged.
    pub const fn backlog() -> BacklogWalk {
        BacklogWalk {
            which: Backlog::Unacked,
            next: 0,
            answers_request: false,
            queued: 0,
        }
    }

    /// Which records the walk sends.
    pub const fn which(&self) -> Backlog {
        self.which
    }

    /// Whether the walk answers an update request (`end_of_updates` at its end). A new
    /// request replaces a walk under way; a backlog does not (the walk under way covers
    /// what it has not reached, and what it passed was queued).
    pub const fn answers_request(&self) -> bool {
        self.answers_request
    }

    /// How many records the walk has queued so far.
    pub const fn queued(&self) -> u32 {
        self.queued
    }

    /// One walk for this one, under way, and `next`, asked for meanwhile (after
    /// [`BacklogWalk::begin`] of `next`): from the first record again, answering a request if
    /// either does. Records this walk passed may have been acknowledged, rejected or dropped
    /// since; those the partner still lacks go again.
    pub const fn then(self, next: BacklogWalk) -> BacklogWalk {
        BacklogWalk {
            which: next.which,
            next: 0,
            answers_request: self.answers_request || next.answers_request,
            queued: self.queued,
        }
    }

    /// The address the next [`BacklogWalk::walk`] starts at: a store may hand it only the
    /// records from there on.
    pub fn resume_at(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::try_from(self.next).unwrap_or(u32::MAX))
    }

    /// Starts the walk over all `records`. For UPDREQALL the partner lost or restored what it
    /// had acknowledged: every record counts as unacknowledged from now on
    /// ([`LeaseRecord::sent_for`] with [`Backlog::All`]; make the change durable). Nothing
    /// else changes.
    pub fn begin<'r, I>(&self, records: I)
    where
        I: IntoIterator<Item = &'r mut LeaseRecord>,
    {
        if self.which == Backlog::All {
            for r in records {
                let _ = r.sent_for(Backlog::All);
            }
        }
    }

    /// Queues the records the partner should have ([`LeaseRecord::sent_for`]) from
    /// [`BacklogWalk::resume_at`] on, until the queue is full. `records` are in address order
    /// (earlier ones are skipped). `queued` is told of each record queued, with its update id
    /// ([`LeaseRecord::queued`] is already noted), or with the error of one the engine refused
    /// (an incomplete binding, skipped).
    pub fn walk<'r, I, Q>(
        &mut self,
        records: I,
        queue: &mut Q,
        mut queued: impl FnMut(&LeaseRecord, Queued),
    ) -> Walked
    where
        I: IntoIterator<Item = &'r mut LeaseRecord>,
        Q: UpdateQueue + ?Sized,
    {
        for r in records {
            let address = u64::from(u32::from(r.data.ip()));
            if address < self.next {
                continue;
            }
            // UPDREQALL's records were all marked by `begin`: from here on the unacknowledged
            // ones, so that one acknowledged meanwhile is not sent twice.
            if r.sent_for(Backlog::Unacked) {
                match r.send(queue) {
                    Ok(update) => {
                        self.queued = self.queued.saturating_add(1);
                        queued(r, Ok(update));
                    }
                    Err(EngineError::QueueFull) => {
                        self.next = address;
                        return Walked::QueueFull;
                    }
                    Err(e) => queued(r, Err(e)),
                }
            }
            self.next = address + 1;
        }
        self.next = u64::from(u32::MAX) + 1;
        if self.answers_request {
            queue.end_of_updates();
        }
        Walked::Done
    }
}
