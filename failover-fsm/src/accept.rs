//! Judging a received binding update (BNDUPD, §7.1.2–§7.1.4): accept it, and store what, or
//! reject it, and with which reject-reason.
//!
//! [`judge_update`] is a pure function of the local record of the address ([`LocalBinding`]),
//! the received [`Binding`], the failover state and the wall clock. It follows either rule
//! book:
//!
//! * [`Dialect::Draft`]: the pre-checks of §7.1.3 (reasons 3 and 1), the acceptance table of
//!   Figure 7.1.3-1 with its time rules (reason 15), ABANDONED beats everything but
//!   RESET/ABANDONED (reason 16), the primary refuses an ACTIVE update for a different client
//!   while its own lease runs (reason 2), and the R-flag check (reason 19).
//! * [`Dialect::Isc`]: what ISC dhcpd 4.4 does in `dhcp_failover_process_bind_update`, in its
//!   order: address check (1), the "dueling updates" rule when an update of ours for the same
//!   address is still unacknowledged (16), option validation (6, 3, 19), then the transition
//!   check — one table in NORMAL, a laxer one in every other state — whose refusals are all
//!   reason 2. ISC allows 65 seconds of clock difference when judging an EXPIRED update; we
//!   allow what the measured clock skew proves instead, when it was measured (see
//!   [`isc_expiry_allowance`]).
//!
//! Either way an accepted EXPIRED, RELEASED or RESET is stored as FREE — or as BACKUP on the
//! secondary for a reserved address — because acknowledging it frees the address (§5.11 last
//! paragraph, §5.13).
//!
//! Not judged here: the "two addresses, one client" conflict of §7.1.2, which needs an index of
//! the lease database; keep the binding with the later client-last-transaction-time.

use core::num::NonZeroU64;

use failover_proto::ServerState;
use failover_proto::{Binding, BindingStatus, HardwareAddress, IpFlags, RejectReason, Role};

use crate::dialect::Dialect;
use crate::time::UnixTime;

/// ISC's allowance for clock difference when a partner expires a lease we hold ACTIVE
/// (60 s of tolerated skew plus 5 s; `normal_binding_state_transition_check`).
pub const ISC_EXPIRY_FUDGE: u32 = 65;

/// How many seconds before our record of a lease ends a partner's EXPIRED for it is taken
/// under ISC's rules, given how far ahead of ours the partner's clock may be
/// (`partner_ahead`, seconds, from the measured skew bounds; `None` when not measured).
///
/// ISC takes an EXPIRED as long as the lease ends within [`ISC_EXPIRY_FUDGE`] (65 s) — for
/// a partner clock up to 60 s ahead. With leases shorter than that, every running lease is
/// inside the allowance (ISC's own comment says the code "will result in problems if MCLT is
/// really short or the max-lease-time is really short"): a restarted partner expiring a lease
/// from its stale copy had it freed here while the client held it from us (the DHCP-server lab
/// test, 20-s leases). A measured bound allows that much, plus a second for whole-second
/// times, and never more than ISC does.
pub fn isc_expiry_allowance(partner_ahead: Option<u32>) -> u32 {
    partner_ahead.map_or(ISC_EXPIRY_FUDGE, |ahead| {
        ahead.saturating_add(1).min(ISC_EXPIRY_FUDGE)
    })
}

/// The longest client-hardware-address option ISC stores: hardware type plus 20 bytes
/// (`HARDWARE_ADDR_LEN + 1`); longer ones are rejected with reason 6.
pub const ISC_MAX_HARDWARE_OPTION: usize = 21;

/// Who a binding belongs to, reduced to two 64-bit fingerprints so that the record stays small
/// and `Copy`: one of the client-identifier (DHCP option 61 data) and one of the hardware
/// address (type and `chaddr` bytes).
///
/// The fingerprint is FNV-1a: fine for telling clients apart, not a defence against a partner
/// crafting collisions (the partner is trusted anyway).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ClientIdentity {
    // Non-zero so that `None` costs no tag: 16 bytes instead of 32 in every lease record, queue
    // slot and acknowledgement.
    client_id: Option<NonZeroU64>,
    hardware: Option<NonZeroU64>,
}

impl ClientIdentity {
    /// No client known (a never-used or freed address).
    pub const NONE: ClientIdentity = ClientIdentity {
        client_id: None,
        hardware: None,
    };

    /// The identity of a client that sent `client_identifier` (option 61 data) from
    /// `hardware` (hardware type and `chaddr[..hlen]`).
    #[inline]
    pub fn new(client_identifier: Option<&[u8]>, hardware: Option<HardwareAddress<'_>>) -> Self {
        ClientIdentity {
            client_id: client_identifier.map(|id| key(fingerprint(0x01, &[], id))),
            hardware: hardware.map(|hw| key(fingerprint(0x02, &[hw.htype], hw.address))),
        }
    }

    /// The identity carried by a binding of a BNDUPD (options 4 and 5).
    pub fn of(binding: &Binding<'_>) -> Self {
        ClientIdentity::new(binding.client_identifier, binding.hardware_address)
    }

    /// Whether anything identifies a client.
    pub const fn is_known(&self) -> bool {
        self.client_id.is_some() || self.hardware.is_some()
    }

    /// Whether `self` and `other` are the same client: compared by client-identifier when both
    /// have one, else by hardware address when both have one; `None` when nothing comparable is
    /// known on both sides.
    pub fn same_client(&self, other: &ClientIdentity) -> Option<bool> {
        match (self.client_id, other.client_id) {
            (Some(a), Some(b)) => Some(a == b),
            _ => match (self.hardware, other.hardware) {
                (Some(a), Some(b)) => Some(a == b),
                _ => None,
            },
        }
    }

    /// The fingerprint of the client identifier (option 61), if any: with
    /// [`ClientIdentity::hardware_key`], what a store indexes its records by to find a
    /// client's addresses. [`ClientIdentity::same_client`] is true only when the two share
    /// one of these keys.
    pub fn client_id_key(&self) -> Option<u64> {
        self.client_id.map(NonZeroU64::get)
    }

    /// The fingerprint of the hardware address, if any (see [`ClientIdentity::client_id_key`]).
    pub fn hardware_key(&self) -> Option<u64> {
        self.hardware.map(NonZeroU64::get)
    }
}

/// A fingerprint as a key: 0 (one value in 2^64) becomes 1.
fn key(fingerprint: u64) -> NonZeroU64 {
    NonZeroU64::new(fingerprint).unwrap_or(NonZeroU64::MIN)
}

/// FNV-1a over a tag, a prefix and the data (length included so that prefixes differ).
#[inline]
pub(crate) fn fingerprint(tag: u8, prefix: &[u8], data: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    // Three steps over zero bytes: a multiplication each.
    const PRIME3: u64 = PRIME.wrapping_mul(PRIME).wrapping_mul(PRIME);
    // One loop per part: a chained iterator's fold costs about twice as many instructions,
    // and this runs up to three times for every binding sent and acknowledged.
    let step = |h: u64, b: &u8| (h ^ u64::from(*b)).wrapping_mul(PRIME);
    let h = step(OFFSET, &tag);
    let h = prefix.iter().fold(h, step);
    // The length is four big-endian bytes; below 256 (every client identifier and hardware
    // address) the first three are zero.
    let h = match u8::try_from(data.len()) {
        Ok(len) => step(h.wrapping_mul(PRIME3), &len),
        Err(_) => {
            let len = u32::try_from(data.len()).unwrap_or(u32::MAX).to_be_bytes();
            len.iter().fold(h, step)
        }
    };
    data.iter().fold(h, step)
}

/// What this server has stored for one address: the inputs of the acceptance rules (§7.1.3),
/// of the MCLT rules (§7.1.5) and of address reuse (§5.2.2, §9.4.2).
///
/// Times are wall-clock ([`UnixTime`]); `None` means unknown / never set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct LocalBinding {
    /// The binding-status stored for the address (§5.11). A never-used pool address is FREE.
    pub status: BindingStatus,
    /// The client the address is (or was last) bound to.
    pub client: ClientIdentity,
    /// client-last-transaction-time: when this server last heard from the client (§7.1.5).
    pub cltt: Option<UnixTime>,
    /// lease-expiration-time: the expiry the client was given (§7.1.5).
    pub lease_expiration: Option<UnixTime>,
    /// start-time-of-state: when the binding entered `status` (§7.1.5).
    pub start_time_of_state: Option<UnixTime>,
    /// sent-potential-expiration-time: the last PET we sent in a BNDUPD (§7.1.5).
    pub sent_pet: Option<UnixTime>,
    /// acked-potential-expiration-time: the last PET the partner acknowledged (§7.1.5).
    pub acked_pet: Option<UnixTime>,
    /// received-potential-expiration-time: the last PET we received and acknowledged (§7.1.5).
    pub received_pet: Option<UnixTime>,
    /// The binding-status the partner may know for this address: the last one we sent it or
    /// accepted from it; `None` if the address was never exchanged (the partner then assumes
    /// FREE, §5.16). ISC calls it the "rewind" state.
    pub partner_status: Option<BindingStatus>,
    /// The xid of a BNDUPD of ours for this address that the partner has not acknowledged yet
    /// (ISC's dueling-update rule, §7 Q2 of the ISC notes); 0 for one queued and not sent yet.
    ///
    /// The engine fills it in itself, from its own queue, before it judges a received update
    /// ([`crate::Engine::handle_message`]): whatever a [`crate::LeaseLookup`] returns here is
    /// overridden, and a store need not track it. Set it only when calling
    /// [`judge_update`] directly.
    pub in_flight: Option<u32>,
    /// The address is reserved for one client on this server (§5.13).
    pub reserved: bool,
    /// The address is (or was) allocated to a BOOTP client (IP-flags B, §5.14).
    pub bootp: bool,
}

impl AsRef<LocalBinding> for LocalBinding {
    fn as_ref(&self) -> &LocalBinding {
        self
    }
}

impl LocalBinding {
    /// A record with `status` and nothing else known.
    pub const fn new(status: BindingStatus) -> Self {
        LocalBinding {
            status,
            client: ClientIdentity::NONE,
            cltt: None,
            lease_expiration: None,
            start_time_of_state: None,
            sent_pet: None,
            acked_pet: None,
            received_pet: None,
            partner_status: None,
            in_flight: None,
            reserved: false,
            bootp: false,
        }
    }
}

/// What to store after accepting a binding update; the BNDACK goes out once it is stored
/// (§7.1.4, §7.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Verdict {
    /// The binding-status to store: the received one, except that EXPIRED, RELEASED and RESET
    /// are stored as FREE — or as BACKUP on the secondary for a reserved address (§5.11,
    /// §5.13; [`freed_status`]).
    pub store_as: BindingStatus,
    /// The lease-expiration-time to store: within one lease (the same client's, still ACTIVE,
    /// EXPIRED or RELEASED here) the later of ours and the received one (§7.1.5); otherwise
    /// the received one (0, which ISC sends for never-used addresses, counts as absent).
    pub lease_expiration: Option<UnixTime>,
    /// The potential-expiration-time to record as received-potential-expiration-time
    /// (§7.1.5); `None` when the update carried none (or 0).
    pub received_pet: Option<UnixTime>,
    /// An ACTIVE update names a client other than the one stored (ISC then drops the lease's
    /// DDNS bindings and scope, §7 Q5 of the ISC notes).
    pub client_changed: bool,
    /// Our unacknowledged BNDUPD for this address that this update supersedes: ignore a later
    /// BNDACK with this xid (ISC's dueling-update rule).
    pub superseded_xid: Option<u32>,
    /// An update of ours for this address was queued or in flight (not yet acknowledged,
    /// rejected or superseded) when this one was judged: [`LocalBinding::in_flight`] as the
    /// engine knew it. A store applying the verdict can use it instead of tracking its own
    /// outstanding updates.
    pub ours_in_flight: bool,
    /// The engine dropped a queued, not yet sent update of ours for this address as
    /// superseded by this one (ISC's rules take the partner's binding over any copy of ours).
    /// If the store keeps its newer record all the same, that record must be queued again
    /// ([`crate::record::Received::KeptOurs`]): nothing else would send it before the next
    /// connection.
    pub ours_dropped: bool,
    /// The engine took this update as newer than ours although our client-last-transaction-
    /// time is later: the two crossed within the clocks' uncertainty, ours ending the client's
    /// lease and this one renewing it (draft time rule (1), §7.1.3, with §5.10; see the
    /// engine's crossing-update ordering). The store keeps it over its record, whatever the
    /// times say, so that both servers keep the lease.
    pub taken_as_newer: bool,
    /// When our unacknowledged record and this update carry the same time
    /// (client-last-transaction-time, else start-time-of-state), ours is kept. Set by the
    /// engine on the primary under the draft's rules, for an update that crosses ours on the
    /// wire and is a FREE, BACKUP, EXPIRED or RELEASED (which takes any update of ours in
    /// turn; never over the partner's lease). Crossing updates of one second cannot be
    /// ordered by the clocks, and both servers must order them alike, or each stores the
    /// other's (simulator seed 83137859: the primary's pool move, BACKUP, crossed the
    /// secondary's FREE of the same second, and both then had the address to lease). ISC's
    /// dueling rule orders them itself ([`Verdict::superseded_xid`]).
    pub ours_wins_tie: bool,
    /// Seconds the engine added to the partner's times to bring them into our clock (the skew
    /// correction, §5.10; 0 without one). The same update sent again over a later connection
    /// may be corrected differently; this tells the store it is the same.
    pub partner_time_shift: i64,
    /// Seconds the partner's lease may run beyond `lease_expiration` in our clock while the
    /// clock skew is not proven (§5.10): the record's own expiry, which decides when the
    /// address may be reused here, adds them; the binding data sent on keeps the partner's
    /// time. 0 once a correction is applied, and under ISC rules (no correction, D27).
    pub skew_margin: u32,
}

/// The status an address takes when a partner accepts our EXPIRED, RELEASED or RESET, or when
/// we accept the partner's (§5.11 last paragraph): FREE, except BACKUP on the secondary for a
/// reserved address, which the primary would send back as BACKUP anyway (§5.13; ISC
/// `dhcp_failover_process_bind_ack`).
pub const fn freed_status(role: Role, reserved: bool) -> BindingStatus {
    match (role, reserved) {
        (Role::Secondary, true) => BindingStatus::Backup,
        _ => BindingStatus::Free,
    }
}

/// The status of addresses available to `role` for new clients (§2.2, §5.4): FREE on the
/// primary, BACKUP on the secondary.
pub const fn own_free_status(role: Role) -> BindingStatus {
    match role {
        Role::Primary => BindingStatus::Free,
        Role::Secondary => BindingStatus::Backup,
    }
}

/// Judges one binding update received from the partner (§7.1.2, §7.1.3).
///
/// `local` is this server's record of the address, `None` when the address belongs to no pool
/// of this relationship (rejected with reason 1). A pool address never used is a
/// [`LocalBinding`] with status FREE. `our_state` selects ISC's table (NORMAL or not); the
/// draft applies one table in every state (§7.1.2). `now` is the local wall clock; the
/// received times are taken as they are (ISC applies no skew correction either).
/// `partner_ahead`: how many seconds the partner's clock may be ahead of ours, as the skew
/// bounds prove it (`None` when not measured); ISC's rules use it for an EXPIRED against a
/// running lease ([`isc_expiry_allowance`]), the draft's ignore it.
///
/// Returns what to store, or the reject-reason for the BNDACK.
pub fn judge_update(
    dialect: Dialect,
    role: Role,
    our_state: ServerState,
    local: Option<&LocalBinding>,
    received: &Binding<'_>,
    now: UnixTime,
    partner_ahead: Option<u32>,
) -> Result<Verdict, RejectReason> {
    if matches!(received.status, BindingStatus::Unknown(_)) {
        return Err(RejectReason::MissingBindingInformation);
    }
    let Some(local) = local else {
        return Err(RejectReason::IllegalIpAddress);
    };
    if matches!(local.status, BindingStatus::Unknown(_)) {
        return Err(RejectReason::UnknownError);
    }
    let superseded_xid = match dialect {
        Dialect::Draft => {
            judge_draft(role, local, received, now)?;
            None
        }
        Dialect::Isc => judge_isc(
            role,
            our_state,
            local,
            received,
            now,
            isc_expiry_allowance(partner_ahead),
        )?,
    };
    let store_as = match received.status {
        BindingStatus::Expired | BindingStatus::Released | BindingStatus::Reset => {
            freed_status(role, local.reserved)
        }
        other => other,
    };
    let received_let = nonzero(received.lease_expiration_time);
    // Our old time belongs to another client's lease and would outlive it (the partner's
    // correct EXPIRED of the new one would then be refused; found by the simulator, seed
    // 32438263).
    let same_lease = matches!(
        local.status,
        BindingStatus::Active | BindingStatus::Expired | BindingStatus::Released
    ) && local.client.same_client(&ClientIdentity::of(received)) == Some(true);
    let lease_expiration = match (local.lease_expiration, received_let) {
        (Some(a), Some(b)) if same_lease => Some(a.max(b)),
        (a, None) if same_lease => a,
        (_, b) => b,
    };
    Ok(Verdict {
        store_as,
        lease_expiration,
        received_pet: nonzero(received.potential_expiration_time),
        client_changed: received.status == BindingStatus::Active
            && local.client != ClientIdentity::of(received),
        superseded_xid,
        ours_in_flight: local.in_flight.is_some(),
        ours_dropped: false,
        taken_as_newer: false,
        ours_wins_tie: false,
        partner_time_shift: 0,
        skew_margin: 0,
    })
}

/// A received time option, 0 meaning "not set" (ISC sends 0 for never-used leases).
fn nonzero(t: Option<u32>) -> Option<UnixTime> {
    t.filter(|&t| t != 0).map(UnixTime)
}

/// A rule of Figure 7.1.3-1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DraftRule {
    /// accept
    Accept,
    /// accept(5): the secondary accepts, the primary rejects a different client with 2
    AcceptSameClient,
    /// time(1): received CLTT later than local CLTT
    TimeA,
    /// time(2): now later than local lease-expiration-time
    TimeB,
    /// time(3): received CLTT later than local start-time-of-state
    TimeC,
    /// reject(4): reason 16
    Reject16,
}

/// The cell of Figure 7.1.3-1 for (local, received); `None` for unknown statuses.
fn draft_rule(local: BindingStatus, received: BindingStatus) -> Option<DraftRule> {
    use BindingStatus::{Abandoned, Active, Backup, Expired, Free, Released, Reset};
    use DraftRule::{Accept, AcceptSameClient, Reject16, TimeA, TimeB, TimeC};
    let rule = match (local, received) {
        (BindingStatus::Unknown(_), _) | (_, BindingStatus::Unknown(_)) => return None,
        (_, Reset) | (Abandoned, Abandoned) => Accept,
        (Active, Active) => AcceptSameClient,
        (Active, Expired | Free | Backup) => TimeB,
        (Active, Released) | (Expired | Released, Active) | (Released, Expired) => TimeA,
        (Active, Abandoned) => Accept,
        (Expired | Released | Free | Backup, _) => Accept,
        (Reset, Active) => TimeC,
        (Reset, _) => Accept,
        (Abandoned, _) => Reject16,
    };
    Some(rule)
}

/// §7.1.3 "time" comparison: a missing received time is never later; a received time with no
/// local one is always later.
fn later(received: Option<u32>, local: Option<UnixTime>) -> bool {
    match (received, local) {
        (None, _) => false,
        (Some(_), None) => true,
        (Some(r), Some(l)) => r > l.0,
    }
}

fn judge_draft(
    role: Role,
    local: &LocalBinding,
    received: &Binding<'_>,
    now: UnixTime,
) -> Result<(), RejectReason> {
    // §7.1.1 Table 7.1.1-1: an ACTIVE binding MUST identify its client.
    if received.status == BindingStatus::Active
        && received.client_identifier.is_none()
        && received.hardware_address.is_none()
    {
        return Err(RejectReason::MissingBindingInformation);
    }
    let rule = draft_rule(local.status, received.status).ok_or(RejectReason::UnknownError)?;
    let cltt = received.client_last_transaction_time;
    let ok = match rule {
        DraftRule::Accept => true,
        DraftRule::AcceptSameClient => {
            // (†) settles two live allocations in the primary's favour. Once our lease has
            // ended (time-B) there is nothing to defend: a secondary that ran in PARTNER-DOWN
            // while we were down may have leased the address to another client, and refusing
            // that keeps our stale record (found by the simulator: we then re-leased it).
            let ended = local.lease_expiration.is_some_and(|l| now > l);
            if role == Role::Primary
                && !ended
                && local.client.same_client(&ClientIdentity::of(received)) == Some(false)
            {
                return Err(RejectReason::FatalConflict);
            }
            true
        }
        DraftRule::TimeA => later(cltt, local.cltt),
        DraftRule::TimeB => local.lease_expiration.is_some_and(|l| now > l),
        DraftRule::TimeC => later(cltt, local.start_time_of_state),
        DraftRule::Reject16 => return Err(RejectReason::LessCriticalBindingInformation),
    };
    if !ok {
        return Err(RejectReason::OutdatedBindingInformation);
    }
    let r_flag = received
        .ip_flags
        .is_some_and(|f| f.contains(IpFlags::RESERVED));
    if r_flag && received.status == BindingStatus::Backup && !local.reserved {
        return Err(RejectReason::IpNotReserved);
    }
    Ok(())
}

/// ISC's `failover_lease_is_better`: whether our in-flight data wins over the received update.
fn isc_local_is_better(role: Role, local: &LocalBinding, received: &Binding<'_>) -> bool {
    use BindingStatus::{Active, Expired};
    if local.status == Active {
        if received.status == Active {
            let theirs = received.client_last_transaction_time.unwrap_or(0);
            let ours = local.cltt.map_or(0, |t| t.0);
            return match theirs.cmp(&ours) {
                core::cmp::Ordering::Less => true,
                core::cmp::Ordering::Greater => false,
                // Both servers answered the client in the same second. ISC keeps the
                // primary's; a later expiry for the same client is kept instead, since the
                // client may hold it (found by the simulator: the primary expired a lease the
                // client held from the secondary, and the pair never converged).
                core::cmp::Ordering::Equal => {
                    role == Role::Primary && !longer_same_client(local, received)
                }
            };
        }
        if received.status == Expired {
            return false;
        }
    }
    received.status != Active && role == Role::Primary
}

/// `received` is the same client's lease as `local`, ending later.
fn longer_same_client(local: &LocalBinding, received: &Binding<'_>) -> bool {
    local.client.same_client(&ClientIdentity::of(received)) == Some(true)
        && later(received.lease_expiration_time, local.lease_expiration)
}

/// ISC's `normal_binding_state_transition_check` (`normal`) or
/// `conflict_binding_state_transition_check`: whether the transition is allowed.
fn isc_transition_allowed(
    normal: bool,
    role: Role,
    local: &LocalBinding,
    received: &Binding<'_>,
    now: UnixTime,
    expiry_allowance: u32,
) -> bool {
    use BindingStatus::{Abandoned, Active, Backup, Expired, Free, Released, Reset};
    let to = received.status;
    if to == local.status {
        return true;
    }
    // "PET ≤ now": the received potential-expiration-time (0 when absent) has passed.
    let pet_passed = u64::from(received.potential_expiration_time.unwrap_or(0)) <= u64::from(now.0);
    // ISC's `ends - 65 <= now`, with its signed time arithmetic, and the allowance the
    // measured skew proves instead of 65 (`isc_expiry_allowance`).
    let ends = i64::from(local.lease_expiration.map_or(0, |t| t.0));
    let expiry_agreed = ends - i64::from(expiry_allowance) <= i64::from(now.0);
    if !normal {
        return match (local.status, to) {
            (Active, Free | Backup) => false,
            (Active, Expired) => expiry_agreed,
            _ => true,
        };
    }
    match (local.status, to) {
        (Free | Abandoned | Released | Backup, _) => true,
        (Active, _) if role == Role::Primary => matches!(to, Released | Abandoned),
        (Active, Free | Backup) | (Expired | Reset, Free | Backup) => pet_passed,
        (Active, Expired) => expiry_agreed,
        _ => true,
    }
}

/// ISC's `dhcp_failover_process_bind_update` checks after the address lookup; returns the
/// superseded in-flight xid.
fn judge_isc(
    role: Role,
    our_state: ServerState,
    local: &LocalBinding,
    received: &Binding<'_>,
    now: UnixTime,
    expiry_allowance: u32,
) -> Result<Option<u32>, RejectReason> {
    use BindingStatus::{Abandoned, Active, Expired, Released};
    // Dueling updates: ours is still waiting for its BNDACK.
    let superseded = match local.in_flight {
        Some(_) if isc_local_is_better(role, local, received) => {
            return Err(RejectReason::LessCriticalBindingInformation);
        }
        other => other,
    };
    match received.hardware_address {
        Some(_) if received.status == Abandoned => {
            return Err(RejectReason::UnknownConnectionReason);
        }
        Some(hw) if hw.wire_len() > ISC_MAX_HARDWARE_OPTION => {
            return Err(RejectReason::UnknownConnectionReason);
        }
        Some(_) => {}
        None if matches!(received.status, Active | Expired | Released) => {
            return Err(RejectReason::MissingBindingInformation);
        }
        None => {}
    }
    if received.client_identifier.is_some() && received.status == Abandoned {
        return Err(RejectReason::UnknownConnectionReason);
    }
    if let Some(flags) = received.ip_flags {
        let own_free = local.status == own_free_status(role);
        if flags.contains(IpFlags::RESERVED) && own_free && !local.reserved {
            return Err(RejectReason::IpNotReserved);
        }
        if flags.contains(IpFlags::BOOTP) && own_free && !local.bootp {
            return Err(RejectReason::UnknownConnectionReason);
        }
    }
    let normal = our_state == ServerState::Normal;
    if !isc_transition_allowed(normal, role, local, received, now, expiry_allowance) {
        return Err(RejectReason::FatalConflict);
    }
    Ok(superseded)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::fingerprint;

    /// FNV-1a over tag, prefix, the length as four big-endian bytes and the data, one byte at
    /// a time: what the fingerprint is by definition (stores index records by it).
    fn fnv1a(tag: u8, prefix: &[u8], data: &[u8]) -> u64 {
        let len = u32::try_from(data.len()).unwrap().to_be_bytes();
        [tag]
            .iter()
            .chain(prefix)
            .chain(&len)
            .chain(data)
            .fold(0xcbf2_9ce4_8422_2325, |h, b| {
                (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
            })
    }

    #[test]
    fn the_fingerprint_is_fnv1a_of_tag_prefix_length_and_data() {
        let data: [u8; 300] = core::array::from_fn(|i| (i * 7 + 3) as u8);
        for len in [0, 1, 6, 16, 64, 255, 256, 257, 300] {
            let d = &data[..len];
            assert_eq!(fingerprint(0x02, &[1], d), fnv1a(0x02, &[1], d), "{len}");
            assert_eq!(fingerprint(0x01, &[], d), fnv1a(0x01, &[], d), "{len}");
        }
        // The key of one simulated client's hardware address, as traces print it.
        assert_eq!(
            fingerprint(0x02, &[1], &[2, 0, 94, 16, 0, 22]),
            1_382_916_751_892_985_384
        );
    }
}
