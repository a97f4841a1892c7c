//! Judging one lease of a received BNDUPD (§7.5): accept it, and store what (§7.5.5), or
//! reject it with the status code for the BNDREPLY (§5.6, §7.6).
//!
//! [`judge_update`] is a pure function of the local record ([`LocalLease`]), the received
//! lease ([`Received`], built from a decoded [`failover_proto::v6::Binding`]), our role and
//! the wall clock, like v4's [`crate::accept::judge_update`]; the tables differ (RFC 8156
//! Figure 4 against draft-12 Figure 7.1.3-1), so the rule is its own.
//!
//! | local \ received | ACTIVE | EXPIRED | RELEASED | FREE, FREE-BACKUP | RESET, ABANDONED |
//! |---|---|---|---|---|---|
//! | ACTIVE | accept(3) | time(1) | accept | time(1) | accept |
//! | RESET | time(2) | accept | accept | accept | accept |
//! | any other | accept | accept | accept | accept | accept |
//!
//! * accept: the message time is later than the local time;
//! * time(1): now is later than the local state-expiration-time (our lease ran out);
//! * time(2): the received OPTION_CLT_TIME is later than the local start-time-of-state;
//! * accept(3): the same client, or time(2), or we are the secondary; else AddressInUse.
//!
//! The message time is OPTION_CLT_TIME for ACTIVE, EXPIRED and RELEASED when present, else
//! start-time-of-state; for the other statuses the later of both. The local time is the
//! CLTT, else start-time-of-state. Times within [`TIME_SKEW_LIMIT`] (5 s) count as equal
//! (§7.5.1), so "later" means more than 5 s later. Readings where the RFC is silent:
//! PENDING-FREE (in no row or column) is judged as FREE; an exact repeat (same status, same
//! client, times equal within 5 s) is accepted, not refused as "not later"; so is the FREE /
//! FREE-BACKUP that follows an EXPIRED, RELEASED or RESET of the same client we hold (the
//! partner freed it on our ack, §7.2), however soon after it; and an EXPIRED, RELEASED or
//! RESET of the same client that began no later than our FREE / FREE-BACKUP (the ending we
//! freed, sent back) is refused as outdated. A same client's RELEASED no older than the local
//! time of the ACTIVE we hold is taken, however soon after it (a release in the second of
//! the grant).
//!
//! ```
//! use failover_fsm::v6::accept::{Received, judge_update};
//! use failover_fsm::v6::{ClientKey, LocalLease};
//! use failover_fsm::{Role, UnixTime};
//! use failover_proto::v6::{BindingStatus, IaKind, Status};
//!
//! let now = UnixTime(1_700_000_000);
//! let client = ClientKey::new(&[0, 3, 0, 1, 2, 0, 0x5e, 0, 0x53, 1], IaKind::Na, 1);
//! // We hold the lease ACTIVE for another 10 minutes; the partner says it EXPIRED.
//! let ours = LocalLease {
//!     client: Some(client),
//!     start_time_of_state: Some(now.minus(600)),
//!     state_expiration_time: Some(now.plus(600)),
//!     ..LocalLease::new(BindingStatus::Active)
//! };
//! let expired = Received {
//!     status: Some(BindingStatus::Expired),
//!     client: Some(client),
//!     clt: None,
//!     start_time_of_state: Some(now),
//!     state_expiration_time: None,
//!     partner_lifetime: None,
//!     partner_raw_clt_time: None,
//!     expiration_time: None,
//! };
//! // time(1): refused while our lease runs.
//! assert_eq!(
//!     judge_update(Role::Secondary, Some(&ours), &expired, now),
//!     Err(Status::OutdatedBindingInformation)
//! );
//! // Once it has run out, taken.
//! let v = judge_update(Role::Secondary, Some(&ours), &expired, now.plus(700)).unwrap();
//! assert_eq!(v.status, BindingStatus::Expired);
//! ```

use failover_proto::Role;
use failover_proto::v6::{Binding, BindingStatus, ClientData, Ia, Lease, Status};

use super::{ClientKey, LocalLease, TIME_SKEW_LIMIT, is_ended, is_free, later_of, wire_time};
use crate::time::UnixTime;

/// One received lease (an IAADDR or IAPREFIX of a BNDUPD) with what the rules need of its
/// CLIENT_DATA and IA, times converted to [`UnixTime`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Received {
    /// OPTION_F_BINDING_STATUS; `None` if absent.
    pub status: Option<BindingStatus>,
    /// The client (DUID, IA type, IAID); `None` for a clientless prefix.
    pub client: Option<ClientKey>,
    /// When the sender last talked to the client: OPTION_LQ_BASE_TIME − OPTION_CLT_TIME, both
    /// the sender's (§7.4, the relative CLT_TIME read against the base time as RFC 7653
    /// §6.3.1 reads its times).
    pub clt: Option<UnixTime>,
    /// OPTION_F_START_TIME_OF_STATE.
    pub start_time_of_state: Option<UnixTime>,
    /// OPTION_F_STATE_EXPIRATION_TIME.
    pub state_expiration_time: Option<UnixTime>,
    /// OPTION_F_PARTNER_LIFETIME: stored as our expiration-time.
    pub partner_lifetime: Option<UnixTime>,
    /// OPTION_F_PARTNER_RAW_CLT_TIME: our own CLTT as the partner last received it.
    pub partner_raw_clt_time: Option<UnixTime>,
    /// OPTION_F_EXPIRATION_TIME: the greatest lifetime the partner acked to us.
    pub expiration_time: Option<UnixTime>,
}

impl Received {
    /// The lease `lease` of IA `ia` of the client binding `client`.
    pub fn of_client(client: &ClientData<'_>, ia: &Ia<'_>, lease: &Lease<'_>) -> Self {
        let mut r = Self::of_lease(lease);
        r.client = client
            .client_id
            .map(|duid| ClientKey::new(duid, ia.kind, ia.iaid));
        r.clt = match (client.lq_base_time, lease.clt_time) {
            (Some(base), Some(ago)) => Some(wire_time(base.saturating_sub(ago))),
            _ => None,
        };
        r
    }

    /// A clientless delegable prefix (a top-level IAPREFIX, §7.4).
    pub fn of_lease(lease: &Lease<'_>) -> Self {
        Received {
            status: lease.binding_status,
            client: None,
            clt: None,
            start_time_of_state: lease.start_time_of_state.map(wire_time),
            state_expiration_time: lease.state_expiration_time.map(wire_time),
            partner_lifetime: lease.partner_lifetime.map(wire_time),
            partner_raw_clt_time: lease.partner_raw_clt_time.map(wire_time),
            expiration_time: lease.expiration_time.map(wire_time),
        }
    }

    /// Every lease of a BNDUPD's binding, each with its [`Received`] view, in message order.
    pub fn all<'a>(binding: &Binding<'a>) -> impl Iterator<Item = (Lease<'a>, Received)> + use<'a> {
        let (client, prefix) = match binding {
            Binding::Client(c) => (Some(*c), None),
            Binding::Prefix(p) => (None, Some(*p)),
        };
        let clientless = prefix.into_iter().map(|p| (p, Received::of_lease(&p)));
        let clients = client.into_iter().flat_map(|c| {
            c.ias.iter().flat_map(move |ia| {
                ia.leases
                    .iter()
                    .map(move |l| (l, Received::of_client(&c, &ia, &l)))
            })
        });
        clientless.chain(clients)
    }
}

/// What to store for an accepted lease (§7.5.5, §7.8 Figure 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Verdict {
    /// binding-status, as received.
    pub status: BindingStatus,
    /// The lease now names another client (or none) than the record did.
    pub client_changed: bool,
    /// start-time-of-state, as received.
    pub start_time_of_state: Option<UnixTime>,
    /// state-expiration-time, as received; a same client's ACTIVE keeps the later of ours and
    /// theirs (an older renewal sent again must not shorten the lease).
    pub state_expiration_time: Option<UnixTime>,
    /// expiration-time: the received partner-lifetime, or the recorded one if that is later
    /// and the client the same (§7.3 "greatest ever acked"; Figure 5 would overwrite — the
    /// greater one keeps PARTNER-DOWN reuse waiting long enough). Another client's lease
    /// starts afresh: an old client's time would hold up the new one's.
    pub expiration_time: Option<UnixTime>,
    /// partner-raw-clt-time: the received client-last-transaction time, unadjusted.
    pub partner_raw_clt_time: Option<UnixTime>,
    /// CLTT: raised to the received partner-raw-clt-time if that is later (same client).
    pub cltt: Option<UnixTime>,
    /// partner-lifetime: raised to the received expiration-time if that is later (same
    /// client).
    pub partner_lifetime: Option<UnixTime>,
    /// The partner's record is behind ours: a same client's ACTIVE kept our later
    /// state-expiration-time. Send the client's binding back (§7.5.4's "update the partner"
    /// flag, here after an acceptance), or the partner expires the lease at its earlier end
    /// while the client holds it here (v6 simulator, seed 54106 of 100,000).
    pub update_partner: bool,
}

/// A rule of Figure 4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    Accept,
    Time1,
    Time2,
    Accept3,
}

/// The cell of Figure 4 for (local, received); PENDING-FREE as FREE.
fn rule(local: BindingStatus, received: BindingStatus) -> Rule {
    use BindingStatus::{Active, Expired, Free, FreeBackup, PendingFree, Reset};
    match (local, received) {
        (Active, Active) => Rule::Accept3,
        (Active, Expired | Free | FreeBackup | PendingFree) => Rule::Time1,
        (Reset, Active) => Rule::Time2,
        _ => Rule::Accept,
    }
}

/// `a` is later than `b` by more than [`TIME_SKEW_LIMIT`] (§7.5.1); anything is later than
/// an unknown time.
fn later(a: UnixTime, b: Option<UnixTime>) -> bool {
    b.is_none_or(|b| a.0 > b.0.saturating_add(TIME_SKEW_LIMIT))
}

/// Judges one lease of a BNDUPD received from the partner (§7.5.3, §7.5.4).
///
/// `local` is our record of the address or prefix; `None` when it is not this endpoint's
/// (no such prefix here, a VPN not configured, another relationship's): ConfigurationConflict
/// (§7.5.4). A lease without binding-status or start-time-of-state, or an ACTIVE one without
/// a client, is MissingBindingInformation (§7.4, §7.5.3). Refusals by the table are
/// OutdatedBindingInformation, except AddressInUse for accept(3) (§7.5.4). After an Outdated
/// refusal the caller sets the lease's "update the partner" flag (§7.5.4).
pub fn judge_update(
    role: Role,
    local: Option<&LocalLease>,
    received: &Received,
    now: UnixTime,
) -> Result<Verdict, Status> {
    let (Some(status), Some(stos)) = (received.status, received.start_time_of_state) else {
        return Err(Status::MissingBindingInformation);
    };
    if matches!(status, BindingStatus::Unknown(_))
        || (status == BindingStatus::Active && received.client.is_none())
    {
        return Err(Status::MissingBindingInformation);
    }
    let Some(local) = local else {
        return Err(Status::ConfigurationConflict);
    };
    if matches!(local.status, BindingStatus::Unknown(_)) {
        return Err(Status::UnspecFail);
    }
    let msg_time = match status {
        BindingStatus::Active | BindingStatus::Expired | BindingStatus::Released => {
            received.clt.unwrap_or(stos)
        }
        _ => received.clt.map_or(stos, |c| c.max(stos)),
    };
    let local_time = local.cltt.or(local.start_time_of_state);
    let same_client = local.client == received.client;
    let repeat = local.status == status
        && same_client
        && local_time.is_some_and(|l| l.0.abs_diff(msg_time.0) <= TIME_SKEW_LIMIT);
    // The partner freed the lease on our ack of its EXPIRED / RELEASED / RESET (§7.2
    // transition 4) and says so: the successor of the ending we hold, however soon after it
    // (*reading*: refused as "not later", the lease would stay available to neither server).
    let completes = same_client
        && is_ended(local.status)
        && is_free(status)
        && local
            .start_time_of_state
            .is_none_or(|l| msg_time.0.saturating_add(TIME_SKEW_LIMIT) >= l.0);
    let time2 = || {
        received
            .clt
            .is_some_and(|c| later(c, local.start_time_of_state))
    };
    let rule = rule(local.status, status);
    // The client released the binding we hold, no earlier than its last contact we know of
    // (a release in the second of the grant is "not later" by §7.5.1's window; refused, the
    // two servers refuse each other's copies until the lease runs out — found on the
    // loopback, failover-tokio's v6_lease_end). Compared without the window: a renewal here
    // after the release (the v6 simulator, seed 1140) has the later CLTT and wins.
    let released_after = same_client
        && local.status == BindingStatus::Active
        && status == BindingStatus::Released
        && local_time.is_none_or(|l| msg_time >= l);
    // The other way round: the EXPIRED / RELEASED / RESET we freed on the partner's ack, sent
    // back as part of the client's binding. Figure 4 may take it (our CLTT can be older than
    // its start), and the lease would be out of reach again.
    let ended_before = same_client
        && is_free(local.status)
        && is_ended(status)
        && local
            .start_time_of_state
            .is_some_and(|freed| stos.0 <= freed.0.saturating_add(TIME_SKEW_LIMIT));
    if ended_before {
        return Err(Status::OutdatedBindingInformation);
    }
    let ok = repeat
        || completes
        || released_after
        || match rule {
            Rule::Accept => later(msg_time, local_time),
            Rule::Time1 => local
                .state_expiration_time
                .is_some_and(|t| later(now, Some(t))),
            Rule::Time2 => time2(),
            Rule::Accept3 => same_client || role == Role::Secondary || time2(),
        };
    if !ok {
        return Err(match rule {
            Rule::Accept3 => Status::AddressInUse,
            _ => Status::OutdatedBindingInformation,
        });
    }
    // A same client's ACTIVE keeps the later end: an older renewal sent again (after a
    // restart) must not shorten the lease the client holds here, or the partner's EXPIRED
    // passes time(1) early and the lease goes to another client (v6 simulator, seed 30037).
    // The partner then needs ours.
    let renewal =
        same_client && local.status == BindingStatus::Active && status == BindingStatus::Active;
    let state_expiration_time = if renewal {
        later_of(local.state_expiration_time, received.state_expiration_time)
    } else {
        received.state_expiration_time
    };
    // Any later end, not only one beyond §7.5.1's window: the partner's expiry margin
    // (`LocalLease::expiry_due`) already spends that window on the clocks' skew.
    let update_partner = renewal
        && local
            .state_expiration_time
            .is_some_and(|ours| received.state_expiration_time.is_none_or(|t| ours > t));
    let raise = |ours: Option<UnixTime>, theirs: Option<UnixTime>| {
        if same_client {
            later_of(ours, theirs)
        } else {
            theirs
        }
    };
    Ok(Verdict {
        status,
        client_changed: !same_client,
        start_time_of_state: Some(stos),
        state_expiration_time,
        expiration_time: raise(local.expiration_time, received.partner_lifetime),
        partner_raw_clt_time: received.clt,
        cltt: raise(local.cltt, received.partner_raw_clt_time),
        partner_lifetime: raise(local.partner_lifetime, received.expiration_time),
        update_partner,
    })
}
