//! The rules of DHCPv6 failover (RFC 8156) where they differ from draft-12's, as pure
//! functions: no state, no clock, no heap. Section numbers (§x.y) in this module tree are
//! RFC 8156's. The engine calls them; where v6 agrees with v4 they call the v4 rule instead of
//! repeating it.
//!
//! * [`owner`]: who may allocate an address (the last bit, §4.2.1.1) and what a freed lease
//!   becomes (§7.2).
//! * [`allocate`]: whether a lease may go to a client now, per state (§8.x.1), ownership
//!   (§4.2.1, §4.2.2) and the reallocation waits (§4.2.2.1, §8.4.1).
//! * [`pool`]: the proportional split of delegable prefixes between the servers and what the
//!   primary does with a POOLREQ (§4.2.2, §5.3.3, §5.3.4).
//! * [`accept`]: the BNDUPD accept/reject table (§7.5.4, Figure 4) and what an accepted lease
//!   stores (§7.5.5), with the BNDREPLY status code of a refusal (§5.6).
//! * [`state`]: the endpoint state machine (§8), including STARTUP (§8.3): v4's
//!   [`transition::step`](crate::transition::step) with [`Dialect::Draft`](crate::Dialect),
//!   plus the cells where RFC 8156 differs.
//! * [`lifetime`]: the MCLT rule (§4.4): v4's [`policy::lease_time`](crate::policy::lease_time)
//!   with the v6 times mapped onto it.
//!
//! Times are [`UnixTime`]: convert the wire's seconds since 2000 with [`wire_time`].
//!
//! ```
//! use core::net::Ipv6Addr;
//! use failover_fsm::v6::{allocate, owner, LocalLease};
//! use failover_fsm::{Role, UnixTime};
//! use failover_proto::v6::{BindingStatus, ServerState};
//!
//! // ::1 ends in bit 1: the primary's; ::2 the secondary's (§4.2.1.1).
//! assert_eq!(owner::address_owner(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)), Role::Primary);
//! let endpoint = allocate::Endpoint {
//!     role: Role::Secondary,
//!     state: ServerState::CommunicationsInterrupted,
//!     state_since: UnixTime(1_700_000_000),
//!     mclt: 3600,
//! };
//! let free = LocalLease::new(BindingStatus::Free);
//! let two = owner::Kind::Address(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2));
//! let request = allocate::Request { resource: two, last_client: false, own_pool_empty: false };
//! assert_eq!(allocate::may_allocate(&endpoint, &free, request, UnixTime(1_700_000_100)), Ok(()));
//! ```

use failover_proto::v6::time;
use failover_proto::v6::{BindingStatus, IaKind};

use crate::accept::fingerprint;
use crate::time::UnixTime;

pub mod accept;
pub mod allocate;
pub mod lifetime;
pub mod owner;
pub mod pool;
pub mod state;

/// The 5-second window within which two times count as equal (§7.5.1) and beyond which the
/// clocks are too far apart (§7.1).
pub const TIME_SKEW_LIMIT: u32 = 5;

/// A wire time (seconds since 2000, §3) as a [`UnixTime`], saturating after 2106.
pub const fn wire_time(wire: u32) -> UnixTime {
    let unix = time::to_unix(wire);
    if unix > u32::MAX as u64 {
        UnixTime(u32::MAX)
    } else {
        UnixTime(unix as u32)
    }
}

/// Who a lease belongs to (§7.4, §5.6): a fingerprint of the client's DUID (OPTION_CLIENTID),
/// the IA type and the IAID. `Copy` and small, like v4's
/// [`ClientIdentity`](crate::accept::ClientIdentity).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ClientKey {
    duid: u64,
    ia: IaKind,
    iaid: u32,
}

impl ClientKey {
    /// The key of client `duid`'s IA `iaid` of type `ia`.
    pub fn new(duid: &[u8], ia: IaKind, iaid: u32) -> Self {
        ClientKey {
            duid: fingerprint(0x06, &[], duid),
            ia,
            iaid,
        }
    }

    /// The client a lease of a BNDUPD belongs to: the CLIENT_DATA's DUID with the IA's type
    /// and IAID; `None` for a clientless prefix (no IA) or a binding without a client id.
    /// What [`UpdateSink6::commit`](crate::engine::UpdateSink6::commit) hands to
    /// [`LocalLease::store_received`].
    pub fn of_update(
        binding: &failover_proto::v6::Binding<'_>,
        ia: Option<&failover_proto::v6::Ia<'_>>,
    ) -> Option<Self> {
        match (binding, ia) {
            (failover_proto::v6::Binding::Client(c), Some(ia)) => c
                .client_id
                .map(|duid| ClientKey::new(duid, ia.kind, ia.iaid)),
            _ => None,
        }
    }

    /// Same DUID (the same client, whichever IA).
    pub fn same_duid(&self, other: &ClientKey) -> bool {
        self.duid == other.duid
    }
}

/// What this server has stored for one address or prefix: the inputs of the accept table
/// (§7.5.4), of the reallocation waits (§4.2.2.1, §8.4.1) and of the MCLT rule (§4.4). The
/// fields are §7.3's per-lease times. `None` = unknown / never set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct LocalLease {
    /// The binding-status (§7.2). A never-used lease is FREE (a prefix) or FREE /
    /// FREE-BACKUP by owner (an address, [`owner::free_status`]).
    pub status: BindingStatus,
    /// The client holding (or last holding) the lease; `None` for a clientless prefix.
    pub client: Option<ClientKey>,
    /// client-last-transaction-time: when this server (or, raised from the partner's
    /// partner-raw-clt-time, the partner) last talked to the client.
    pub cltt: Option<UnixTime>,
    /// start-time-of-state: when `status` took its value.
    pub start_time_of_state: Option<UnixTime>,
    /// state-expiration-time: when `status` times out (an ACTIVE lease's end).
    pub state_expiration_time: Option<UnixTime>,
    /// expiration-time: the greatest partner-lifetime this server has acked to the partner.
    pub expiration_time: Option<UnixTime>,
    /// acked-partner-lifetime: the greatest lifetime the partner has acked to this server.
    pub acked_partner_lifetime: Option<UnixTime>,
    /// partner-lifetime: the lifetime sent (or to send) to the partner and not yet acked.
    pub partner_lifetime: Option<UnixTime>,
    /// partner-raw-clt-time: the partner's client-last-transaction-time as last received,
    /// never adjusted (§7.3); sent back as OPTION_F_PARTNER_RAW_CLT_TIME, where the partner
    /// raises its CLTT to it (Figure 5).
    pub partner_raw_clt_time: Option<UnixTime>,
    /// A BNDUPD with the current status has been sent to the partner (§4.2.2.1): an EXPIRED
    /// or RELEASED lease then no longer goes back to its client without the partner's ack.
    /// A lease [`LocalLease::store_ack`] freed has it false until the partner acked its
    /// FREE / FREE-BACKUP: its client's binding carries it until then.
    pub update_sent: bool,
    /// The partner must be updated (§7.5.4): its record of this lease is older than ours —
    /// we refused its update as outdated ([`LocalLease::refused_as_outdated`]) or kept our
    /// later end ([`accept::Verdict::update_partner`]). Cleared when the partner accepts our
    /// current status ([`LocalLease::store_ack`]) or sends newer data. A store sends the
    /// bindings of leases with it set on a periodic scan.
    pub update_partner: bool,
}

impl AsRef<LocalLease> for LocalLease {
    fn as_ref(&self) -> &LocalLease {
        self
    }
}

impl LocalLease {
    /// A lease with `status` and nothing else recorded.
    pub const fn new(status: BindingStatus) -> Self {
        LocalLease {
            status,
            client: None,
            cltt: None,
            start_time_of_state: None,
            state_expiration_time: None,
            expiration_time: None,
            acked_partner_lifetime: None,
            partner_lifetime: None,
            partner_raw_clt_time: None,
            update_sent: false,
            update_partner: false,
        }
    }

    /// The lease goes to `client` at `now` for what `grant` allows
    /// ([`lifetime::grant`], after [`allocate::may_allocate`] said yes): ACTIVE, its end and
    /// the partner-lifetime to send (§4.4, §7.3). A renewal of the same client's ACTIVE
    /// keeps its start-time-of-state; what was acked for another client is forgotten (it
    /// belongs to that client, as in [`accept::Verdict`]).
    ///
    /// ```
    /// use failover_fsm::UnixTime;
    /// use failover_fsm::v6::{ClientKey, LocalLease, lifetime};
    /// use failover_proto::v6::{BindingStatus, IaKind, ServerState};
    ///
    /// let now = UnixTime(1_700_000_000);
    /// let client = ClientKey::new(&[0, 3, 0, 1, 2, 0, 0x5e, 0, 0x53, 1], IaKind::Na, 1);
    /// let mut lease = LocalLease::new(BindingStatus::Free);
    /// let g = lifetime::grant(ServerState::Normal, 3600, now, 86_400, None);
    /// lease.grant(client, &g, now);
    /// assert_eq!(lease.status, BindingStatus::Active);
    /// assert_eq!(lease.state_expiration_time, Some(now.plus(3600)));
    /// assert_eq!(lease.partner_lifetime, Some(g.potential_expiration));
    /// assert!(!lease.update_sent);
    /// ```
    pub fn grant(&mut self, client: ClientKey, grant: &crate::policy::LeaseGrant, now: UnixTime) {
        let same = self.client == Some(client);
        if !same {
            self.acked_partner_lifetime = None;
            self.expiration_time = None;
            self.partner_raw_clt_time = None;
        }
        if !(same && self.status == BindingStatus::Active) {
            self.start_time_of_state = Some(now);
        }
        self.status = BindingStatus::Active;
        self.client = Some(client);
        self.cltt = Some(now);
        self.state_expiration_time = Some(grant.lease_expiration);
        self.partner_lifetime = Some(grant.potential_expiration);
        self.update_sent = false;
    }

    /// The partner may not have our current record of this lease: a change of ours not
    /// acked ([`LocalLease::update_sent`] false: a grant, a freed lease), an EXPIRED /
    /// RELEASED / RESET not freed by an ack, or the partner must be updated
    /// ([`LocalLease::update_partner`]). What an UPDREQ asks for (§5.3.5: "every binding
    /// update the partner has not acknowledged") and what a store sends again after a
    /// restart.
    ///
    /// Not a partner-lifetime as such: a copy of the partner's ACTIVE keeps one (Figure 5
    /// raises it from the partner's expiration-time), and sent back after a restart it is
    /// taken by a secondary even over another client's newer lease (accept(3)): the v6
    /// simulator, seed 24683, gave an address to two clients that way.
    pub const fn unacknowledged(&self) -> bool {
        !self.update_sent || self.update_partner || is_ended(self.status)
    }

    /// We refused the partner's update of this lease as outdated (§7.5.4, step 6): the
    /// partner must be updated. Returns `true` when the flag was clear: send our binding
    /// now (after the BNDREPLY). When it was already set, wait for the periodic scan, so
    /// that two servers that disagree do not answer each other in a storm.
    #[must_use = "true: send the binding now"]
    pub fn refused_as_outdated(&mut self) -> bool {
        !core::mem::replace(&mut self.update_partner, true)
    }
}

/// How long past its state-expiration-time an ACTIVE lease is marked EXPIRED
/// ([`LocalLease::expiry_due`]): the partner takes an EXPIRED over its ACTIVE copy only once
/// its own clock is more than [`TIME_SKEW_LIMIT`] past the lease's end (Figure 4's time(1)
/// with §7.5.1's window), and its clock may be up to [`TIME_SKEW_LIMIT`] behind ours (§7.1).
/// An EXPIRED sent at the end is refused as outdated, and nothing sends it again: the lease
/// would stay EXPIRED at its owner, lost to every client outside PARTNER-DOWN (v6 simulator:
/// 45 % of expiries, tests/v6_sim6_findings.rs).
pub const EXPIRY_DELAY: u32 = 2 * TIME_SKEW_LIMIT;

impl LocalLease {
    /// An ACTIVE lease whose end passed more than [`EXPIRY_DELAY`] ago: mark it EXPIRED
    /// ([`LocalLease::expire`]) and send its binding now. Until then the client has no lease
    /// (its lifetimes ran out at the end) and the lease goes to no other client: it is still
    /// ACTIVE here.
    ///
    /// ```
    /// use failover_fsm::UnixTime;
    /// use failover_fsm::v6::{EXPIRY_DELAY, LocalLease};
    /// use failover_proto::v6::BindingStatus;
    ///
    /// let end = UnixTime(1_700_000_000);
    /// let mut lease = LocalLease {
    ///     state_expiration_time: Some(end),
    ///     ..LocalLease::new(BindingStatus::Active)
    /// };
    /// assert!(!lease.expiry_due(end.plus(EXPIRY_DELAY)));
    /// assert!(lease.expiry_due(end.plus(EXPIRY_DELAY + 1)));
    /// lease.expire(end.plus(EXPIRY_DELAY + 1));
    /// assert_eq!(lease.status, BindingStatus::Expired);
    /// assert!(!lease.expiry_due(end.plus(3600)));
    /// ```
    pub fn expiry_due(&self, now: UnixTime) -> bool {
        self.expires_at().is_some_and(|t| now >= t)
    }

    /// When [`LocalLease::expiry_due`] becomes true: the first second more than
    /// [`EXPIRY_DELAY`] past an ACTIVE lease's end (`None` if it is not ACTIVE or has no
    /// end). A store's expiry timer waits for the earliest.
    pub fn expires_at(&self) -> Option<UnixTime> {
        if self.status != BindingStatus::Active {
            return None;
        }
        self.state_expiration_time
            .map(|end| end.plus(EXPIRY_DELAY).plus(1))
    }

    /// The lease expired at `now` (§7.2, ACTIVE → EXPIRED): it waits for the partner's ack
    /// before it is free ([`LocalLease::store_ack`]), and for it before it goes back to its
    /// client once sent (§4.2.2.1, [`LocalLease::update_sent`]).
    pub fn expire(&mut self, now: UnixTime) {
        self.end(BindingStatus::Expired, now);
    }

    /// The client released the lease at `now` (§7.2, ACTIVE → RELEASED): as
    /// [`LocalLease::expire`], and `now` is the client's last transaction.
    pub fn release(&mut self, now: UnixTime) {
        self.end(BindingStatus::Released, now);
        self.cltt = Some(now);
    }

    /// ACTIVE → `status`: no lifetime runs (no state-expiration-time, no partner-lifetime to
    /// send, §7.4) and the partner has not been told.
    fn end(&mut self, status: BindingStatus, now: UnixTime) {
        self.status = status;
        self.start_time_of_state = Some(now);
        self.state_expiration_time = None;
        self.partner_lifetime = None;
        self.update_sent = false;
    }
}

impl LocalLease {
    /// Stores a lease of the partner's BNDUPD that [`accept::judge_update`] accepted as
    /// `verdict` (§7.5.5): the received status and times, the client the update names
    /// (`None` for a clientless prefix). What the partner acked to us belongs to the client
    /// it was acked for: a lease taken over by another client forgets it. The status came
    /// from the partner, which knows it: [`LocalLease::update_sent`] — §4.2.2.1's exception
    /// for a status not told to the partner yet — does not apply (an EXPIRED or RELEASED
    /// lease the partner may have freed and given away does not go back to its old client
    /// here; found by the v6 simulator, seed 6). When [`accept::Verdict::update_partner`]
    /// says the partner is behind, the caller sends the client's binding back.
    pub fn store_received(&mut self, client: Option<ClientKey>, verdict: &accept::Verdict) {
        // What the partner acked belongs to the binding it was acked for: another client's,
        // or one that has ended (see `store_ack`).
        if verdict.client_changed || is_free(verdict.status) {
            self.acked_partner_lifetime = None;
        }
        self.update_sent = true;
        self.status = verdict.status;
        self.client = client;
        self.start_time_of_state = verdict.start_time_of_state;
        self.state_expiration_time = verdict.state_expiration_time;
        self.expiration_time = verdict.expiration_time;
        self.cltt = verdict.cltt;
        self.partner_lifetime = verdict.partner_lifetime;
        self.partner_raw_clt_time = verdict.partner_raw_clt_time;
        // The partner's data is the newer, unless we kept our later end.
        self.update_partner = verdict.update_partner;
    }
}

impl LocalLease {
    /// Stores the partner's acceptance of our update of this lease (§7.7): the
    /// partner-lifetime it acknowledges (`partner_lifetime_sent`, OPTION_F_PARTNER_LIFETIME_SENT)
    /// raises acked-partner-lifetime, partner-lifetime is sent (0, "nothing more to send"), and
    /// an EXPIRED, RELEASED or RESET lease the partner now knows of goes through PENDING-FREE
    /// to its free status (§7.2, [`owner::freed_status`]) — only if the acknowledged
    /// binding-status (`acked_status`) is still ours: a newer change waits for its own answer.
    ///
    /// Returns `true` when the lease was freed: send its binding again. The partner still
    /// records the EXPIRED / RELEASED it acked, which is available to neither server; only
    /// the sender frees on the ack (§7.2 transition 4), and a change of status goes to the
    /// partner like any other (§4.3). Without it the owner of an address the partner
    /// released never gets it back outside PARTNER-DOWN (v6 simulator: 7,577 leases in
    /// 2,000 seeds, tests/v6_sim6_findings.rs).
    #[must_use = "a freed lease goes to the partner again"]
    pub fn store_ack(
        &mut self,
        kind: owner::Kind,
        acked_status: Option<BindingStatus>,
        partner_lifetime_sent: Option<UnixTime>,
        now: UnixTime,
    ) -> bool {
        if let Some(t) = partner_lifetime_sent {
            self.acked_partner_lifetime = later_of(self.acked_partner_lifetime, Some(t));
        }
        if acked_status != Some(self.status) {
            return false;
        }
        self.partner_lifetime = None;
        self.update_sent = true;
        self.update_partner = false;
        if is_ended(self.status) {
            self.status = owner::freed_status(kind);
            self.start_time_of_state = Some(now);
            self.state_expiration_time = None;
            // The binding the partner acked lifetimes for has ended: a new grant, even to the
            // same client, starts from now + MCLT (§4.4). The partner, holding the lease free,
            // reuses it in PARTNER-DOWN after its MCLT wait only (v6 simulator, seed 53499).
            self.acked_partner_lifetime = None;
            // The partner has not been told of the new status.
            self.update_sent = false;
            return true;
        }
        false
    }

    /// This lease as our BNDUPD carries it (§7.4, Figure 5): binding-status,
    /// start-time-of-state, the client's last contact relative to `lq_base_time` (the
    /// CLIENT_DATA's OPTION_LQ_BASE_TIME), and — for a status that times out (one with a
    /// state-expiration-time) — state-expiration-time, partner-lifetime and expiration-time
    /// together (§7.4: all three or none), and the partner's own CLTT as we last received it
    /// (OPTION_F_PARTNER_RAW_CLT_TIME, when known). `preferred` and `valid` are the lifetimes
    /// sent to the client.
    pub fn update_lease(
        &self,
        addr: failover_proto::v6::LeaseAddr,
        preferred: u32,
        valid: u32,
        lq_base_time: UnixTime,
    ) -> failover_proto::v6::Lease<'static> {
        let wire = |t: UnixTime| time::from_unix(u64::from(t.0)).unwrap_or(0);
        let times_out = self.state_expiration_time.is_some();
        let or_start = |t: Option<UnixTime>| t.or(self.start_time_of_state).map(wire);
        failover_proto::v6::Lease {
            addr,
            preferred_lifetime: preferred,
            valid_lifetime: valid,
            status: None,
            vss: None,
            lq_base_time: None,
            binding_status: Some(self.status),
            start_time_of_state: Some(self.start_time_of_state.map_or(0, wire)),
            state_expiration_time: self.state_expiration_time.map(wire),
            clt_time: self.cltt.map(|c| lq_base_time.secs_since(c)),
            // Figure 5: our partner-lifetime (123; once acked, the acked one again), our
            // expiration-time (120, what we acked to the partner; the state's start when
            // nothing was).
            partner_lifetime: if times_out {
                or_start(
                    self.partner_lifetime
                        .or(self.acked_partner_lifetime)
                        .or(self.state_expiration_time),
                )
            } else {
                None
            },
            partner_raw_clt_time: self.partner_raw_clt_time.map(wire),
            expiration_time: if times_out {
                or_start(self.expiration_time)
            } else {
                None
            },
            partner_lifetime_sent: None,
            client_fqdn: None,
            dns_removal_info: None,
            extra: Default::default(),
        }
    }
}

/// FREE, FREE-BACKUP or PENDING-FREE: available, bound to nobody.
pub(crate) const fn is_free(status: BindingStatus) -> bool {
    matches!(
        status,
        BindingStatus::Free | BindingStatus::FreeBackup | BindingStatus::PendingFree
    )
}

/// EXPIRED, RELEASED or RESET: a binding that ended, free once the partner acks it (§7.2).
pub(crate) const fn is_ended(status: BindingStatus) -> bool {
    matches!(
        status,
        BindingStatus::Expired | BindingStatus::Released | BindingStatus::Reset
    )
}

/// The later of two optional times.
fn later_of(a: Option<UnixTime>, b: Option<UnixTime>) -> Option<UnixTime> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// The OPTION_STATUS_CODE that says `reason` in a CONNECTREPLY, DISCONNECT or BNDREPLY
/// (§5.6, §6.1.2). The engine decides in draft-12's reasons; this is the one mapping onto
/// RFC 8156's codes (and [`reason_of`] the way back).
///
/// | draft-12 reason | RFC 8156 status |
/// |---|---|
/// | time mismatch | ExcessiveTimeSkew (§7.1) |
/// | protocol version mismatch | NotSupported (§6.1.2) |
/// | invalid partner, invalid MCLT, illegal address | ConfigurationConflict (*reading*, §6.1.2 names none) |
/// | missing binding information | MissingBindingInformation |
/// | outdated binding information | OutdatedBindingInformation |
/// | fatal conflict | AddressInUse |
/// | TLS not configured / not supported / required | TLSConnectionRefused |
/// | anything else | UnspecFail |
pub const fn status_of(reason: failover_proto::RejectReason) -> failover_proto::v6::Status {
    use failover_proto::RejectReason as R;
    use failover_proto::v6::Status as S;
    match reason {
        R::TimeMismatch => S::ExcessiveTimeSkew,
        R::VersionMismatch => S::NotSupported,
        R::InvalidPartner | R::InvalidMclt | R::IllegalIpAddress => S::ConfigurationConflict,
        R::MissingBindingInformation => S::MissingBindingInformation,
        R::OutdatedBindingInformation => S::OutdatedBindingInformation,
        R::FatalConflict => S::AddressInUse,
        R::TlsNotConfigured | R::TlsNotSupported | R::TlsRequired => S::TlsConnectionRefused,
        _ => S::UnspecFail,
    }
}

/// The draft-12 reason the engine records for a partner's error status (the inverse of
/// [`status_of`] where it is one to one; ServerShuttingDown and the codes without a
/// counterpart read as unknown-connection-reason).
pub const fn reason_of(status: failover_proto::v6::Status) -> failover_proto::RejectReason {
    use failover_proto::RejectReason as R;
    use failover_proto::v6::Status as S;
    match status {
        S::ExcessiveTimeSkew => R::TimeMismatch,
        S::NotSupported => R::VersionMismatch,
        S::ConfigurationConflict => R::InvalidPartner,
        S::MissingBindingInformation => R::MissingBindingInformation,
        S::OutdatedBindingInformation => R::OutdatedBindingInformation,
        S::AddressInUse => R::FatalConflict,
        S::TlsConnectionRefused => R::TlsNotConfigured,
        _ => R::UnknownConnectionReason,
    }
}
