//! What the engine hands to the caller.

use failover_proto::{DecodeError, RejectReason, ServerState};

use crate::accept::Verdict;
use crate::binding::BindingData;
use crate::time::UnixTime;

#[cfg(doc)]
use super::{Engine, Persisted};

/// Identifies a received binding handed to the caller to commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct CommitToken(pub u64);

/// Something the caller must act on or may want to know.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Event {
    /// Persist the failover state before anything else (§9.2). STATE messages announcing it are
    /// held back until this event has been polled.
    PersistState {
        /// The new state.
        state: ServerState,
        /// When it was entered.
        since: UnixTime,
    },
    /// The failover state changed (after `PersistState`).
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
    /// The MCLT both servers agree on changed: a secondary learned the primary's (§7.8.2 step
    /// 7), or a secondary accepted a primary's new one. Persist it as [`Persisted::mclt`].
    PersistMclt {
        /// The MCLT in seconds.
        mclt: u32,
    },
    /// Communications are OK: CONNECT/CONNECTACK done and the partner's STATE received (§8.3).
    CommunicationsOk,
    /// Communications failed: the connection is gone or silent (§8.3).
    CommunicationsFailed,
    /// Close the TCP connection now (everything polled before this was the last to send).
    CloseConnection,
    /// Commit this binding received from the partner to stable storage, then call
    /// [`Engine::binding_committed`]: only then is it acknowledged (§7.2).
    CommitBinding {
        /// Pass back to `binding_committed`.
        token: CommitToken,
        /// The binding, with times in our clock.
        binding: BindingData,
        /// What to store: `verdict.store_as` is the binding-status (EXPIRED, RELEASED and RESET
        /// become FREE on receipt, §5.11), with the times to record.
        verdict: Verdict,
    },
    /// A received binding was rejected with this reason (a BNDACK says so).
    RejectedPartnerBinding {
        /// The address.
        address: [u8; 4],
        /// Why.
        reason: RejectReason,
    },
    /// The partner acknowledged one of our bindings.
    BindingAcked {
        /// The address.
        address: [u8; 4],
        /// Its status in the update.
        status: failover_proto::BindingStatus,
        /// The potential-expiration-time the partner now knows (acked PET, §7.1.5).
        potential_expiration_time: Option<UnixTime>,
    },
    /// The partner rejected one of our bindings (§7.2.2: do not resend it right away).
    BindingRejected {
        /// The address.
        address: [u8; 4],
        /// Why.
        reason: RejectReason,
    },
    /// The partner sent UPDREQALL: queue every binding with [`Engine::send_binding`], then call
    /// [`Engine::end_of_updates`] (§7.4).
    SendAllBindings,
    /// The partner sent UPDREQ: queue every binding it has not acknowledged, then call
    /// [`Engine::end_of_updates`] (§7.3).
    SendUnackedBindings,
    /// The partner finished sending what we asked for (UPDDONE).
    UpdatesReceived,
    /// The partner asks for pool balancing (POOLREQ, §7.6); call
    /// [`Engine::pool_response`] with the number of addresses moved to it.
    PoolRequested,
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
    /// Persist the last time this server was known to operate (§9.14.1, used by §9.3.2 step 5).
    PersistLastOperational {
        /// The time.
        at: UnixTime,
    },
    /// Persist [`Persisted::lease_table_lost`]: `true` once [`Engine::lease_table_lost`] is
    /// called, `false` when the partner's UPDDONE has refreshed the table (§9.5.2).
    PersistLeaseTableLost {
        /// Whether the table still waits for the partner's refresh.
        lost: bool,
    },
    /// Queue every binding change the partner has not acknowledged with
    /// [`Engine::send_binding`] (entering NORMAL, §9.8.1, and on every connection in RECOVER).
    /// Bindings still in the engine's queue need not be queued again.
    SendBacklog,
    /// Run pool balancing now (ISC on entering NORMAL): compare FREE and BACKUP counts and move
    /// addresses with BNDUPDs, or ask with [`Engine::request_pool_balance`].
    PoolCheck,
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
}
