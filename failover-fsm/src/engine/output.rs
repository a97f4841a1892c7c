//! What the engine hands to the caller: [`Action`]s it must carry out and [`Event`]s it may
//! observe, each in a bounded queue.

use failover_proto::{BindingStatus, DecodeError, RejectReason, ServerState};
use heapless::Deque;

use super::persist::{PersistToken, Persisted};
use super::{EngineError, MAX_BATCH};
use crate::accept::{ClientIdentity, Verdict};
use crate::binding::BindingData;
use crate::record::Ack;
use crate::time::{OptTime, UnixTime};

#[cfg(doc)]
use super::Engine;

/// Identifies a received binding handed to the caller to commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct CommitToken(pub u64);

/// Where the engine hands the partner's bindings it accepted, while it reads their BNDUPD in
/// [`Engine::handle_message`] (the engine keeps no copy). Commit each to stable storage as
/// its verdict says, then call [`Engine::binding_committed`] with its token — or
/// [`Engine::binding_commit_failed`]: only then does the BNDACK go (§7.2).
///
/// `commit` runs while the engine is borrowed: apply the binding or keep it, and confirm once
/// `handle_message` has returned (or later, after a sync). [`Commits`] keeps them for that.
/// (`heapless::Vec<Commit, N>` with `N >= MAX_BATCH` is a sink too.)
pub trait CommitSink {
    /// A binding of the partner's to commit: `binding` has its times in our clock;
    /// `verdict.store_as` is the binding-status to store (EXPIRED, RELEASED and RESET become
    /// FREE on receipt, §5.11), with the times to record.
    fn commit(&mut self, token: CommitToken, binding: BindingData, verdict: Verdict);
}

/// A received binding to commit, as a [`Commits`] list keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Commit {
    /// Pass back to [`Engine::binding_committed`] / [`Engine::binding_commit_failed`].
    pub token: CommitToken,
    /// The binding, with times in our clock.
    pub binding: BindingData,
    /// What to store (see [`CommitSink::commit`]).
    pub verdict: Verdict,
}

/// The bindings of one [`Engine::handle_message`] call, in the order of the BNDUPD: at most
/// [`MAX_BATCH`], so this list never overflows. Make one per call (it is a few words until a
/// binding arrives) and take them with [`Commits::pop`] — one at a time, so that the list is
/// never copied whole.
///
/// ```
/// # use failover_fsm::{Commits, Engine};
/// # fn serve(engine: &mut Engine, mut commits: Commits) {
/// while let Some(c) = commits.pop() {
///     // ... store c.binding as c.verdict says, durably ...
///     engine.binding_committed(c.token).unwrap();
/// }
/// # }
/// ```
#[derive(Debug, Default)]
pub struct Commits(Deque<Commit, MAX_BATCH>);

impl Commits {
    /// An empty list.
    pub const fn new() -> Self {
        Commits(Deque::new())
    }

    /// The first binding not taken yet.
    #[inline]
    pub fn pop(&mut self) -> Option<Commit> {
        self.0.pop_front()
    }

    /// How many are left.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether none is left.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl CommitSink for Commits {
    #[inline]
    fn commit(&mut self, token: CommitToken, binding: BindingData, verdict: Verdict) {
        // One call hands out at most MAX_BATCH.
        let _ = self.0.push_back(Commit {
            token,
            binding,
            verdict,
        });
    }
}

impl<const N: usize> CommitSink for heapless::Vec<Commit, N> {
    fn commit(&mut self, token: CommitToken, binding: BindingData, verdict: Verdict) {
        // One call hands out at most MAX_BATCH: a smaller list would drop commits.
        const { assert!(N >= MAX_BATCH, "a commit list holds at least MAX_BATCH") };
        let _ = self.push(Commit {
            token,
            binding,
            verdict,
        });
    }
}

/// Identifies one of our binding updates: what [`Engine::send_binding`] returns and what
/// [`Action::BindingAcked`] and [`Action::BindingRejected`] carry back.
///
/// Ids grow with every call of one engine instance that changes what goes out (they are the
/// engine's queue sequence numbers); a restarted engine starts again from 1. A store that
/// remembers the id of the version it last queued for an address can tell whether an
/// acknowledgement is for that version (equal ids) or for an older one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct UpdateId(pub u64);

/// Something the caller must act on before it polls the next output (see [`Engine`] for the
/// order). Nothing here may be skipped: the engine's guarantees — nothing acknowledged that is
/// not durable, no state announced that is not persisted — hold only if each is carried out.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Action {
    /// Write `snapshot` to stable storage, replacing what was there (§9.2: the state "MUST be
    /// recorded in stable storage"), then call [`Engine::persist_complete`] with `token` — or
    /// [`Engine::persist_failed`] if the write failed. One snapshot at a time: the next one
    /// (holding every change made meanwhile) comes after the confirmation. A STATE message
    /// announcing a new state goes out only once the snapshot holding it is confirmed. Hand
    /// the last confirmed snapshot to [`Engine::new`] at the next start.
    Persist {
        /// Pass back to `persist_complete` / `persist_failed`.
        token: PersistToken,
        /// Everything that must survive a restart.
        snapshot: Persisted,
    },
    /// Close the TCP connection once [`Engine::poll_transmit`] has returned `None` (the last
    /// messages — a DISCONNECT, a rejecting CONNECTACK — go first), then call
    /// [`Engine::connection_down`].
    CloseConnection,
    /// The partner sent UPDREQALL: queue every binding with [`Engine::send_binding`], then call
    /// [`Engine::end_of_updates`] (§7.4).
    SendAllBindings,
    /// The partner sent UPDREQ: queue every binding it has not acknowledged, then call
    /// [`Engine::end_of_updates`] (§7.3).
    SendUnackedBindings,
    /// Queue every binding change the partner has not acknowledged with
    /// [`Engine::send_binding`] (entering NORMAL, §9.8.1, and on every connection in RECOVER).
    /// Bindings still in the engine's queue need not be queued again. Queue them before the
    /// next `poll_action`: after PARTNER-DOWN, NORMAL is announced only once what was queued
    /// by then is acknowledged (§9.4.3).
    SendBacklog,
    /// The partner asks for pool balancing (POOLREQ, §7.6); call
    /// [`Engine::pool_response`] (or [`Engine::balance_pools`]) with the number of addresses
    /// moved to it.
    PoolRequested,
    /// Run pool balancing now (ISC on entering NORMAL): compare FREE and BACKUP counts and move
    /// addresses with BNDUPDs, or ask with [`Engine::request_pool_balance`].
    PoolCheck,
    /// The partner acknowledged one of our bindings: record that it knows it (acked
    /// potential-expiration-time, §7.1.5; an acknowledged EXPIRED or RELEASED frees the
    /// address, §5.11).
    BindingAcked {
        /// The update acknowledged (the id [`Engine::send_binding`] returned for this data).
        update: UpdateId,
        /// The xid of the BNDUPD that carried it.
        xid: u32,
        /// The address.
        address: [u8; 4],
        /// Its status in the update.
        status: BindingStatus,
        /// The client the update named.
        client: ClientIdentity,
        /// The potential-expiration-time the partner now knows (acked PET, §7.1.5).
        potential_expiration_time: Option<UnixTime>,
    },
    /// The partner rejected one of our bindings: record that it does not know it (§7.2.2: do
    /// not resend it right away).
    BindingRejected {
        /// The update rejected.
        update: UpdateId,
        /// The xid of the BNDUPD that carried it.
        xid: u32,
        /// The address.
        address: [u8; 4],
        /// Why.
        reason: RejectReason,
    },
}

impl Action {
    /// For [`Action::BindingAcked`]: the address and what
    /// [`LeaseRecord::apply_ack`](crate::record::LeaseRecord::apply_ack) needs.
    pub fn ack(&self) -> Option<([u8; 4], Ack)> {
        match *self {
            Action::BindingAcked {
                update,
                address,
                status,
                client,
                potential_expiration_time,
                ..
            } => Some((
                address,
                Ack {
                    update,
                    status,
                    client,
                    potential_expiration_time,
                },
            )),
            _ => None,
        }
    }
}

/// Something the caller may want to know (log it, show it, count it); nothing to do.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Event {
    /// The failover state changed. The partner hears of it once the [`Action::Persist`]
    /// snapshot holding it is confirmed.
    StateChanged {
        /// Previous state.
        from: ServerState,
        /// New state.
        to: ServerState,
    },
    /// The partner reported a state (STATE message).
    PartnerStateChanged {
        /// The partner's state.
        state: ServerState,
        /// Its start-time-of-state, in our clock.
        since: UnixTime,
        /// Whether the partner is in STARTUP (server-flags S).
        startup: bool,
    },
    /// Communications are OK: CONNECT/CONNECTACK done and the partner's STATE received (§8.3).
    CommunicationsOk,
    /// Communications failed: the connection is gone or silent (§8.3).
    CommunicationsFailed,
    /// A received binding was rejected with this reason (a BNDACK says so).
    RejectedPartnerBinding {
        /// The address.
        address: [u8; 4],
        /// Why.
        reason: RejectReason,
    },
    /// The partner finished sending what we asked for (UPDDONE).
    UpdatesReceived,
    /// The partner answered our POOLREQ (§7.7).
    PoolResponse {
        /// Addresses it moved to our pool.
        addresses_transferred: u32,
    },
    /// The partner rejected our CONNECT, or we rejected its CONNECT/CONNECTACK.
    ConnectionRejected {
        /// Why.
        reason: RejectReason,
        /// Whether the partner (not us) rejected.
        by_partner: bool,
    },
    /// The partner sent DISCONNECT.
    PartnerDisconnected {
        /// Its reason.
        reason: RejectReason,
    },
    /// The partner sent DISCONNECT with ServerShuttingDown (RFC 8156 §5.6): an orderly stop,
    /// not a refusal of us (a V6 engine; draft-12 has no such reason). Reconnect as usual.
    PartnerShuttingDown,
    /// Something an operator should look at (§9.9.1, §9.11.1), or a partner state change the
    /// protocol forbids.
    Alarm {
        /// Our state.
        state: ServerState,
        /// The partner's.
        partner_state: Option<ServerState>,
    },
    /// A message from the partner was malformed or out of place; the draft's answer was queued.
    ProtocolError {
        /// What was wrong (for an out-of-place message: kind `WrongMessageType`).
        error: DecodeError,
    },
    /// A BNDUPD of ours waited [`Config::ack_timeout`](crate::Config::ack_timeout) for its
    /// BNDACK while the partner kept the connection alive: the connection is closed
    /// (DISCONNECT 17) and the update goes again on the next one (§9.8.4).
    UpdateUnacknowledged {
        /// Seconds the oldest update in flight waited.
        waited: u32,
    },
    /// The snapshot of [`Action::Persist`] `token` could not be written
    /// ([`Engine::persist_failed`]). A state change it holds stays unannounced; the engine asks
    /// again with a new [`Action::Persist`] after a short delay (see
    /// [`Engine::persist_failed`]).
    PersistFailed {
        /// The failed snapshot's token.
        token: PersistToken,
    },
}

/// Output slots one input may fill at most; inputs are refused while fewer are free.
const HEADROOM: usize = MAX_BATCH + 8;

/// An [`Action`] as it waits in the queue.
#[derive(Debug, Clone)]
enum Queued {
    Persist {
        token: PersistToken,
        snapshot: Persisted,
    },
    Close,
    SendAll,
    SendUnacked,
    SendBacklog,
    PoolRequested,
    PoolCheck,
    // The time in four bytes: 40 bytes a slot, not 48.
    Acked {
        update: UpdateId,
        xid: u32,
        address: [u8; 4],
        status: BindingStatus,
        client: ClientIdentity,
        potential_expiration_time: OptTime,
    },
    Rejected {
        update: UpdateId,
        xid: u32,
        address: [u8; 4],
        reason: RejectReason,
    },
}

/// The two output queues.
#[derive(Debug)]
pub(super) struct Outputs<const N: usize> {
    actions: Deque<Queued, N>,
    events: Deque<Event, N>,
}

impl<const N: usize> Outputs<N> {
    pub(super) fn new() -> Self {
        Outputs {
            actions: Deque::new(),
            events: Deque::new(),
        }
    }

    /// Refuses input while either queue has fewer than the slots one input may fill.
    pub(super) fn check_room(&self) -> Result<(), EngineError> {
        let need = HEADROOM.min(N);
        if N - self.actions.len() < need || N - self.events.len() < need {
            return Err(EngineError::EventsPending);
        }
        Ok(())
    }

    #[inline]
    pub(super) fn push_action(&mut self, a: Action) {
        let queued = match a {
            Action::Persist { token, snapshot } => Queued::Persist { token, snapshot },
            Action::CloseConnection => Queued::Close,
            Action::SendAllBindings => Queued::SendAll,
            Action::SendUnackedBindings => Queued::SendUnacked,
            Action::SendBacklog => Queued::SendBacklog,
            Action::PoolRequested => Queued::PoolRequested,
            Action::PoolCheck => Queued::PoolCheck,
            Action::BindingAcked {
                update,
                xid,
                address,
                status,
                client,
                potential_expiration_time,
            } => Queued::Acked {
                update,
                xid,
                address,
                status,
                client,
                potential_expiration_time: OptTime::new(potential_expiration_time),
            },
            Action::BindingRejected {
                update,
                xid,
                address,
                reason,
            } => Queued::Rejected {
                update,
                xid,
                address,
                reason,
            },
        };
        // Inputs are refused without HEADROOM free slots, so this cannot overflow.
        let _ = self.actions.push_back(queued);
    }

    pub(super) fn push_event(&mut self, e: Event) {
        let _ = self.events.push_back(e);
    }

    #[inline]
    pub(super) fn pop_action(&mut self) -> Option<Action> {
        Some(match self.actions.pop_front()? {
            Queued::Persist { token, snapshot } => Action::Persist { token, snapshot },
            Queued::Close => Action::CloseConnection,
            Queued::SendAll => Action::SendAllBindings,
            Queued::SendUnacked => Action::SendUnackedBindings,
            Queued::SendBacklog => Action::SendBacklog,
            Queued::PoolRequested => Action::PoolRequested,
            Queued::PoolCheck => Action::PoolCheck,
            Queued::Acked {
                update,
                xid,
                address,
                status,
                client,
                potential_expiration_time,
            } => Action::BindingAcked {
                update,
                xid,
                address,
                status,
                client,
                potential_expiration_time: potential_expiration_time.get(),
            },
            Queued::Rejected {
                update,
                xid,
                address,
                reason,
            } => Action::BindingRejected {
                update,
                xid,
                address,
                reason,
            },
        })
    }

    pub(super) fn pop_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }
}
