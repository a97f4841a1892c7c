//! Carrying out the engine's actions on the store, in memory. What must wait for the store's
//! next sync before the engine hears of it (a commit, a persist) goes to the group commit.

use std::collections::VecDeque;

use failover_fsm::policy::BalanceTrigger;
use failover_fsm::record::{BacklogWalk, Received, Walked};
use failover_fsm::{Action, BindingData, Commit, EngineError, RejectReason};
use tracing::{debug, warn};

use super::Core;
use crate::peer::{PeerError, PeerEvent, Reply};
use crate::storage::Storage;

/// Most of the application's addresses waiting, already answered, for room in the engine's
/// queue while the partner is connected ([`Feed::spilled`]); beyond, the application waits.
/// At 8,000 bindings a second, about half a second of the partner's lag.
pub(super) const MAX_SPILLED: usize = 4096;

/// Bindings waiting for room in the engine's queue.
#[derive(Default)]
pub(super) struct Feed {
    /// The application's bindings, and where their outcome goes; no other command is taken
    /// while they wait (back-pressure).
    parked: Option<(VecDeque<BindingData>, Reply)>,
    /// Addresses of the application's bindings that found the engine's queue full while the
    /// partner is connected: recorded, made durable and answered like the others, their
    /// current record goes as acknowledgements free room, before `current` and in the order
    /// they came (the application's later bindings line up behind them). The partner learns
    /// of them later (§5.1's lazy update); the lease times were decided under the MCLT rules
    /// from what the partner had acknowledged (§5.2.1), which a later send does not change.
    spilled: VecDeque<[u8; 4]>,
    /// Addresses whose current record goes to the partner: `true` queued again after
    /// [`Received::KeptOurs`], `false` moved by pool balancing.
    current: VecDeque<([u8; 4], bool)>,
    /// The answer to the partner's UPDREQ / UPDREQALL, or the backlog, under way.
    walk: Option<BacklogWalk>,
}

impl Feed {
    pub(super) fn accepts_commands(&self) -> bool {
        self.parked.is_none()
    }

    pub(super) fn park(&mut self, list: Vec<BindingData>, reply: Reply) {
        self.parked = Some((list.into(), reply));
    }

    pub(super) fn send_moved(&mut self, moved: &[BindingData]) {
        self.current
            .extend(moved.iter().map(|b| (b.address, false)));
    }
}

impl<S: Storage> Core<S> {
    /// Carries out every pending action and collects the events; `true` if there was any.
    pub(super) fn carry_out(&mut self) -> bool {
        let mut any = false;
        while let Some(action) = self.engine.poll_action() {
            any = true;
            self.act(&action);
            self.out.push(PeerEvent::Action(action));
        }
        while let Some(event) = self.engine.poll_event() {
            any = true;
            super::forward::log_event(&event);
            self.out.push(PeerEvent::Engine(event));
        }
        any
    }

    /// Applies a binding the partner sent and the engine accepted to the store, in memory; the
    /// engine hears it is committed once the sync covering it returned (group commit).
    pub(super) fn commit(&mut self, c: Commit) {
        match self.store.commit_binding(&c.binding, &c.verdict) {
            Ok(received) => {
                self.commit.wait_commit(c.token);
                if let Received::KeptOurs(_) = received {
                    // The engine dropped its queued version of ours: queue it again at once.
                    self.feed.current.push_front((c.binding.address, true));
                }
                self.out.push(PeerEvent::Received(c));
            }
            Err(e) => {
                warn!(error = %e, "could not store a binding; rejecting it");
                let _ = self
                    .engine
                    .binding_commit_failed(c.token, RejectReason::UnknownError);
                self.out.push(PeerEvent::StorageError(e.to_string()));
            }
        }
    }

    /// Carries out one action.
    fn act(&mut self, action: &Action) {
        match action {
            Action::Persist { token, snapshot } => match self.store.persist_state(snapshot) {
                Ok(()) => self.commit.wait_persist(*token),
                Err(e) => {
                    warn!(error = %e, "could not record the failover state");
                    self.out.push(PeerEvent::StorageError(e.to_string()));
                    let now = self.clock.now();
                    let _ = self.engine.persist_failed(now, *token);
                }
            },
            Action::BindingAcked { .. } => {
                if let Some((address, ack)) = action.ack() {
                    self.commit.touched();
                    if let Err(e) = self.store.binding_acked(address, &ack) {
                        warn!(error = %e, "storage failed recording an ack");
                    }
                }
            }
            Action::BindingRejected {
                address,
                reason,
                update,
                ..
            } => {
                self.store.binding_rejected(*address, *update);
                warn!(address = %std::net::Ipv4Addr::from(*address), %reason, "partner rejected a binding");
            }
            Action::SendAllBindings | Action::SendUnackedBindings | Action::SendBacklog => {
                if let Some(walk) = BacklogWalk::for_action(action) {
                    self.store.begin_walk(&walk);
                    self.commit.touched();
                    debug!(which = ?walk.which(), "sending bindings");
                    self.feed.walk = Some(match self.feed.walk.take() {
                        Some(under_way) => under_way.then(walk),
                        None => walk,
                    });
                }
                // Queued before the next `poll_action`, as far as the queue has room: on
                // leaving PARTNER-DOWN, NORMAL is announced once that much is acknowledged.
                self.feed_queue();
            }
            Action::PoolRequested => {
                let _ = self.balance(BalanceTrigger::PoolReq);
            }
            Action::PoolCheck => {
                let _ = self.balance(BalanceTrigger::Manual);
            }
            Action::CloseConnection => self.close_pending = true,
            _ => {}
        }
    }

    /// Moves the application's bindings, the records to send again or moved, and the walk
    /// under way into the engine as room allows, telling the store the id each was queued as;
    /// `true` if any moved.
    pub(super) fn feed_queue(&mut self) -> bool {
        let mut moved = false;
        // The older first: what waits already answered, then the bindings of the command
        // under way (were those first, a full spill would park them for good).
        while let Some(&address) = self.feed.spilled.front() {
            match self.store.send_current(address, false, &mut *self.engine) {
                Ok(_) => {
                    self.commit.touched();
                    moved = true;
                }
                Err(EngineError::QueueFull) if !self.engine.is_communicating() => {
                    // Not acknowledged in the store: they go with the backlog (§9.8.1).
                    self.feed.spilled.clear();
                    moved = true;
                    break;
                }
                // The application's next bindings line up behind (below).
                Err(EngineError::QueueFull) => break,
                Err(e) => {
                    warn!(error = %e, address = %std::net::Ipv4Addr::from(address), "binding not sent");
                }
            }
            self.feed.spilled.pop_front();
        }
        if let Some((mut list, reply)) = self.feed.parked.take() {
            let mut result = Ok(());
            while let Some(b) = list.pop_front() {
                let queued = if self.feed.spilled.is_empty() {
                    self.queue(&b)
                } else {
                    Err(EngineError::QueueFull)
                };
                match queued {
                    Ok(()) => moved = true,
                    Err(EngineError::QueueFull) if !self.engine.is_communicating() => {
                        // The partner is away: the rest is recorded in the store as not
                        // acknowledged and goes with the backlog once it is back (§9.8.1), so
                        // the caller need not wait for an outage to end.
                        break;
                    }
                    Err(EngineError::QueueFull)
                        if self.feed.spilled.len() + list.len() < MAX_SPILLED =>
                    {
                        // The partner is slower than our clients: the rest waits here, and the
                        // caller only for the sync.
                        self.feed.spilled.push_back(b.address);
                        self.feed.spilled.extend(list.iter().map(|b| b.address));
                        break;
                    }
                    Err(EngineError::QueueFull) => {
                        // Keep the rest; retry once acknowledgements free room.
                        list.push_front(b);
                        self.feed.parked = Some((list, reply));
                        return moved;
                    }
                    Err(e) => {
                        result = Err(PeerError::Engine(e));
                        break;
                    }
                }
            }
            // Answered once the sync covering the bindings returned.
            self.commit.wait_reply(reply, result);
            moved = true;
        }
        while let Some((address, again)) = self.feed.current.pop_front() {
            match self.store.send_current(address, again, &mut *self.engine) {
                Ok(_) => {
                    self.commit.touched();
                    moved = true;
                }
                Err(EngineError::QueueFull) => {
                    self.feed.current.push_front((address, again));
                    return moved;
                }
                Err(e) => {
                    warn!(error = %e, address = %std::net::Ipv4Addr::from(address), "binding not sent");
                }
            }
        }
        if let Some(walk) = self.feed.walk.as_mut() {
            let before = walk.queued();
            let walked = self.store.walk(walk, &mut *self.engine);
            if walk.queued() != before {
                self.commit.touched();
                moved = true;
            }
            if walked == Walked::Done {
                self.feed.walk = None;
                moved = true;
            }
        }
        moved
    }

    /// Queues one of the application's bindings and records the update id on its lease record.
    fn queue(&mut self, b: &BindingData) -> Result<(), EngineError> {
        let id = self.engine.send_binding(b)?;
        self.commit.touched();
        if let Err(e) = self.store.binding_queued(b.address, id, false) {
            warn!(error = %e, "storage failed recording a queued update");
        }
        Ok(())
    }
}
