//! What a DHCP server asks the failover rules before it answers a client: pure functions of
//! the failover situation ([`Endpoint`]), the address record ([`LocalBinding`]) and the clock.
//!
//! * [`may_answer`]: whether to answer a client message at all — per failover state (§9.x.2,
//!   §9.7.1) and load balancing (§5.3, §9.8.2, RFC 3074).
//! * [`may_allocate`]: whether an address may go to a client now — own pool (§5.4), the
//!   partner's pool in PARTNER-DOWN after entry + MCLT (§9.4.2), reuse of EXPIRED / RELEASED /
//!   RESET (§5.2.2, §9.4.2, §7.1.5).
//! * [`choose_address`], [`judge_request`], [`may_allocate_to`]: the address to offer a
//!   client and the answer to its DHCPREQUEST, from the records of the pool; [`as_of`],
//!   [`expires_leases`]: when a lease has ended and who records it.
//! * [`lease_time`]: the lease time to grant and the potential-expiration-time to send, under
//!   the MCLT rule (§5.2.1, §7.1.5, §9.9.2).
//! * Pool balancing with ISC's rules ([`plan_balance`], [`BalanceCursor`], [`next_rebalance`]):
//!   how many available addresses to hand to the partner, when to send POOLREQ, when to run
//!   again. (The draft's "secondary sends POOLREQ on entering NORMAL", §9.8.1, is the
//!   engine's.)
//!
//! Every function follows [`Dialect::Draft`] or [`Dialect::Isc`] where the two disagree; the
//! differences are listed on each function.

use core::net::Ipv4Addr;

use failover_proto::hash::client_bucket;
use failover_proto::{BindingStatus, Hba, HbaPolarity, Role, ServerState};

use crate::accept::{ClientIdentity, LocalBinding, own_free_status};
use crate::dialect::Dialect;
use crate::time::UnixTime;

mod balance;
mod lease;
pub use balance::*;
pub use lease::*;

/// A lease time meaning "infinite" (DHCP option 51 value `0xffffffff`).
pub const INFINITE: u32 = u32::MAX;

/// The failover situation of this server, as the rules need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Endpoint {
    /// Which rule book to follow.
    pub dialect: Dialect,
    /// Primary or secondary.
    pub role: Role,
    /// Our failover state.
    pub state: ServerState,
    /// When we entered `state`. In PARTNER-DOWN this is the reference of every MCLT wait
    /// (§9.4.2); pass the time the partner is known to have gone down if that is earlier
    /// (§5.2.1).
    pub state_since: UnixTime,
    /// The partner's last reported state, if any (ISC stops serving in some, §9 below).
    pub partner_state: Option<ServerState>,
    /// The maximum client lead time in seconds (§5.2.1) for the safety waits: the largest
    /// MCLT leases may still be running under ([`crate::Status::mclt`]).
    pub mclt: u32,
    /// The MCLT that bounds the leases this server grants now, at most `mclt`
    /// ([`crate::Status::lease_mclt`]; the same value unless the MCLT is changing).
    pub lease_mclt: u32,
}

impl Endpoint {
    /// The situation as a [`Status`](crate::Status) reports it, for a server that reads the
    /// engine's status (failover-tokio's `Handle::status`) rather than the engine itself.
    /// `dialect` is the configuration's ([`crate::Config::dialect`]).
    pub fn of(status: &crate::Status, dialect: Dialect) -> Endpoint {
        Endpoint {
            dialect,
            role: status.role,
            state: status.state,
            state_since: status.state_since,
            partner_state: status.partner_state,
            mclt: status.mclt,
            lease_mclt: status.lease_mclt,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// may_answer
// ---------------------------------------------------------------------------------------------

/// The kind of a DHCPREQUEST (RFC 2131 §4.3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum RequestKind {
    /// Answering an offer (server-identifier present).
    Selecting,
    /// Verifying a remembered address after a reboot (requested-IP, no ciaddr).
    InitReboot,
    /// Renewing: unicast to the server, ciaddr set (T1).
    Renewing,
    /// Rebinding: broadcast, ciaddr set (T2).
    Rebinding,
}

/// The kind of client message a server is about to answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum MessageKind {
    /// DHCPDISCOVER.
    Discover,
    /// DHCPREQUEST.
    Request(RequestKind),
    /// DHCPRELEASE.
    Release,
    /// DHCPDECLINE.
    Decline,
    /// DHCPINFORM.
    Inform,
    /// A BOOTP request.
    Bootp,
}

impl MessageKind {
    /// A DHCPREQUEST/RENEWING or DHCPREQUEST/REBINDING: served by either server whatever the
    /// load balancing says (§5.5, §9.8.2), and the only messages served in RECOVER-DONE
    /// (§9.7.1).
    pub const fn is_renewal(&self) -> bool {
        matches!(
            self,
            MessageKind::Request(RequestKind::Renewing | RequestKind::Rebinding)
        )
    }
}

/// The client message, as far as the failover rules look at it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ClientMessage<'a> {
    /// What the client sent.
    pub kind: MessageKind,
    /// The data of DHCP option 61 (client-identifier), if the client sent it.
    pub client_id: Option<&'a [u8]>,
    /// `chaddr[..hlen]`, without the hardware type.
    pub chaddr: &'a [u8],
    /// The `secs` field: how long the client has been trying (RFC 3074 §5.3).
    pub secs: u16,
}

impl ClientMessage<'_> {
    /// The client's RFC 3074 hash bucket: of the client-identifier if present, else of
    /// `chaddr` (§9.8.2; the whole key is hashed, as ISC does).
    pub fn bucket(&self) -> u8 {
        client_bucket(self.client_id, self.chaddr)
    }
}

/// The load-balancing configuration (§5.3, RFC 3074).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct LoadBalance {
    /// The failover hash bucket assignment (sent by the primary in CONNECT, §12.11).
    pub hba: Hba,
    /// How its set bits are read: ISC (primary serves) or draft (secondary serves).
    pub polarity: HbaPolarity,
    /// Clients whose `secs` exceed this are served by both servers (ISC `load balance max
    /// seconds`; RFC 3074 §5.3's service delay, draft option 10). 0 turns load balancing off:
    /// both servers answer everybody, as in ISC. To never answer the other server's clients,
    /// pass `u16::MAX`.
    pub max_secs: u16,
}

impl LoadBalance {
    /// Whether the server in `role` serves clients hashing to `bucket`.
    pub const fn serves(&self, role: Role, bucket: u8) -> bool {
        self.hba.serves(role, bucket, self.polarity)
    }
}

/// Whether the partner holds available addresses in the pool the client would be served from
/// (ISC answers a DHCPDISCOVER that hashes to the partner when the partner has none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum PartnerPool {
    /// The partner has free addresses (or we do not know): load balancing applies.
    #[default]
    HasFree,
    /// The partner's available pool is empty.
    Empty,
}

impl PartnerPool {
    /// From this server's counts of the pool the client would be served from: the partner's
    /// available addresses are BACKUP when we are the primary, FREE when we are the secondary
    /// (§5.4).
    pub const fn of(counts: PoolCounts, role: Role) -> PartnerPool {
        let partners = match role {
            Role::Primary => counts.backup,
            Role::Secondary => counts.free,
        };
        if partners == 0 {
            PartnerPool::Empty
        } else {
            PartnerPool::HasFree
        }
    }
}

/// Whether to answer a client message, and why not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Answer {
    /// Process the message.
    Serve,
    /// Load balancing gives the client (in this bucket) to the partner (§9.8.2).
    NotOurBucket(u8),
    /// Nobody is answered in our failover state.
    NotResponding(ServerState),
    /// Only DHCPREQUEST/RENEWING and REBINDING are answered in this state (RECOVER-DONE,
    /// §9.7.1).
    RenewalsOnly(ServerState),
    /// ISC stops answering while the partner is in this state (D33).
    PartnerState(ServerState),
}

impl Answer {
    /// Whether the message is to be processed.
    pub const fn is_serve(&self) -> bool {
        matches!(self, Answer::Serve)
    }
}

/// Whether this server answers `msg` now (§5.3, §5.5, §9.x.2 "Operation in ... state").
///
/// A server that does not answer must not remember anything from the message (§9.2).
///
/// [`Dialect::Draft`] (spec text; where Figure 9.2-1 disagrees the text wins, §9):
/// * NORMAL: RENEWING and REBINDING from everybody; every other message only from clients in
///   our hash buckets (§5.5, §9.8.2), or whose `secs` exceed [`LoadBalance::max_secs`].
/// * COMMUNICATIONS-INTERRUPTED, PARTNER-DOWN, RESOLUTION-INTERRUPTED: everybody (§9.9.2,
///   §9.4.2, §9.11.2). CONFLICT-DONE: everybody on the primary (§9.12.2); a secondary never
///   enters it and answers nobody there.
/// * RECOVER-DONE: RENEWING and REBINDING only (§9.7.1; D31).
/// * STARTUP, POTENTIAL-CONFLICT, RECOVER, RECOVER-WAIT, PAUSED, SHUTDOWN: nobody (§9.3.1,
///   §9.10.2, §9.5.1, §9.6.1, §9.13, §9.14.2).
/// * The partner's state does not matter (D33). The server HBA of §5.3, if any, is the
///   caller's.
///
/// [`Dialect::Isc`] (`dhcp_failover_set_service_state`, `load_balance_mine`):
/// * NORMAL: only DHCPDISCOVER and BOOTP are load-balanced; a DISCOVER hashing to the partner
///   is still answered when `partner_pool` is [`PartnerPool::Empty`].
/// * COMMUNICATIONS-INTERRUPTED, PARTNER-DOWN: everybody; STARTUP and every other state:
///   nobody (also RECOVER-DONE, CONFLICT-DONE and RESOLUTION-INTERRUPTED, D31/D32).
/// * Nobody either while the partner is in PARTNER-DOWN, POTENTIAL-CONFLICT, CONFLICT-DONE or
///   RESOLUTION-INTERRUPTED (D33).
/// * DHCPINFORM is answered in every state (ISC's `dhcpinform` never looks at failover).
///
/// ISC applies these checks only when the client's address is in a failover pool; the caller
/// decides that.
pub fn may_answer(
    endpoint: &Endpoint,
    load_balance: &LoadBalance,
    msg: &ClientMessage<'_>,
    partner_pool: PartnerPool,
) -> Answer {
    match endpoint.dialect {
        Dialect::Draft => draft_answer(endpoint, load_balance, msg),
        Dialect::Isc => isc_answer(endpoint, load_balance, msg, partner_pool),
    }
}

/// The hash decision, after the `secs` escape (RFC 3074 §5.3; ISC `load_balance_mine`).
fn balance(role: Role, lb: &LoadBalance, msg: &ClientMessage<'_>) -> Answer {
    if lb.max_secs == 0 || msg.secs > lb.max_secs {
        return Answer::Serve;
    }
    let bucket = msg.bucket();
    if lb.serves(role, bucket) {
        Answer::Serve
    } else {
        Answer::NotOurBucket(bucket)
    }
}

fn draft_answer(ep: &Endpoint, lb: &LoadBalance, msg: &ClientMessage<'_>) -> Answer {
    use ServerState::{
        CommunicationsInterrupted, ConflictDone, Normal, PartnerDown, RecoverDone,
        ResolutionInterrupted,
    };
    match ep.state {
        Normal if msg.kind.is_renewal() => Answer::Serve,
        Normal => balance(ep.role, lb, msg),
        CommunicationsInterrupted | PartnerDown | ResolutionInterrupted => Answer::Serve,
        ConflictDone if ep.role == Role::Primary => Answer::Serve,
        RecoverDone if msg.kind.is_renewal() => Answer::Serve,
        RecoverDone => Answer::RenewalsOnly(RecoverDone),
        other => Answer::NotResponding(other),
    }
}

fn isc_answer(
    ep: &Endpoint,
    lb: &LoadBalance,
    msg: &ClientMessage<'_>,
    partner_pool: PartnerPool,
) -> Answer {
    use ServerState::{
        CommunicationsInterrupted, ConflictDone, Normal, PartnerDown, PotentialConflict,
        ResolutionInterrupted, Startup,
    };
    if msg.kind == MessageKind::Inform {
        return Answer::Serve;
    }
    // ISC's service state: cooperating (NORMAL), not cooperating (COMM-INT), partner-down,
    // startup; everything else is "not responding" and ignores the partner.
    if !matches!(
        ep.state,
        Normal | CommunicationsInterrupted | PartnerDown | Startup
    ) {
        return Answer::NotResponding(ep.state);
    }
    if let Some(p @ (PartnerDown | PotentialConflict | ConflictDone | ResolutionInterrupted)) =
        ep.partner_state
    {
        return Answer::PartnerState(p);
    }
    match (ep.state, msg.kind) {
        (Startup, _) => Answer::NotResponding(Startup),
        (Normal, MessageKind::Discover) => match balance(ep.role, lb, msg) {
            Answer::NotOurBucket(_) if partner_pool == PartnerPool::Empty => Answer::Serve,
            other => other,
        },
        (Normal, MessageKind::Bootp) => balance(ep.role, lb, msg),
        _ => Answer::Serve,
    }
}

// ---------------------------------------------------------------------------------------------
// may_allocate
// ---------------------------------------------------------------------------------------------

/// Who wants the address, as far as the reuse rules care.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct AllocationRequest {
    /// The client is the one the address is (or was last) bound to.
    pub last_client: bool,
    /// The address is reserved for this client (§5.13).
    pub holds_reservation: bool,
    /// The address is in a pool where dynamic BOOTP clients may get addresses (§5.14).
    pub dynamic_bootp_pool: bool,
}

/// Why an address may not be given to the client now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum AllocRefusal {
    /// No addresses are allocated in our failover state.
    NotServing(ServerState),
    /// The address is reserved for another client (§5.13).
    Reserved,
    /// The address is in use or unusable (ACTIVE for another client; ABANDONED).
    Unavailable(BindingStatus),
    /// The address is available to the partner (FREE on a secondary, BACKUP on a primary);
    /// only PARTNER-DOWN lets us take it (§5.4, §9.4.2).
    PartnersPool(BindingStatus),
    /// Partner's addresses in a pool with dynamic BOOTP are never ours, even in PARTNER-DOWN
    /// (§5.14).
    DynamicBootp,
    /// The EXPIRED / RELEASED / RESET status has not been acknowledged by the partner yet; the
    /// acknowledgement makes the address FREE (§5.2.2, §5.11).
    AwaitingAck(BindingStatus),
    /// Allowed from this time on (PARTNER-DOWN waits, §9.4.2).
    WaitUntil(UnixTime),
}

/// Whether the address of `binding` may be given to a client now (new allocation, or
/// reallocation of a no longer ACTIVE address to its last client).
///
/// States where new clients get addresses: NORMAL, COMMUNICATIONS-INTERRUPTED, PARTNER-DOWN
/// (both dialects); draft also RESOLUTION-INTERRUPTED (§9.11.2) and CONFLICT-DONE on the
/// primary (§9.12.2), which ISC does not serve in. Load balancing is [`may_answer`]'s.
///
/// By binding-status:
/// * own available (FREE on the primary, BACKUP on the secondary): yes (§5.4). A reserved
///   address only to its client (§5.13).
/// * the partner's available: only in PARTNER-DOWN, never in a dynamic-BOOTP pool (§5.14).
///   Draft: from entry + MCLT (+ [`CLOCK_MARGIN`]) on (§9.4.2). ISC (`lease_mine_to_reallocate`): once
///   `max(entry, tsfp) + MCLT < now`, tsfp being the received/acked PET of the address.
/// * ACTIVE: only to its own client; when the partner records the address as ended or
///   available ([`LocalBinding::partner_status`] EXPIRED, RELEASED, RESET, FREE or BACKUP: we
///   accepted the partner's EXPIRED while our renewal was still on the way, or under ISC's
///   65-second rule before our lease ended), as EXPIRED — the partner may hand the address out
///   meanwhile.
/// * ABANDONED: draft never (an operator RESETs it, §5.11); ISC treats it as FREE (last
///   resort in `allocate_lease`).
/// * EXPIRED / RELEASED / RESET: outside PARTNER-DOWN only after the partner acknowledged it
///   (then it is FREE), except:
///   - draft: EXPIRED / RELEASED back to the same client while no BNDUPD with that status was
///     sent (§5.2.2);
///   - ISC: EXPIRED / RELEASED to anybody while the partner knows the address only as our
///     available address (ISC's "rewind").
///
///   In PARTNER-DOWN: draft from `MCLT + max(entry, start-time-of-state, lease expiry, sent /
///   acked / received PET)` on (§9.4.2, §7.1.5, §5.2.2) — leases granted during PARTNER-DOWN
///   still wait the MCLT after they ended, the conservative reading of §5.2.1's optimisation.
///   ISC from `entry + MCLT` (strictly after) for the last client, and from
///   `max(entry + MCLT, lease expiry)` for others, when its pool timer frees them — it does
///   not add the MCLT to the lease's own times (D46).
pub fn may_allocate(
    endpoint: &Endpoint,
    binding: &LocalBinding,
    request: AllocationRequest,
    now: UnixTime,
) -> Result<(), AllocRefusal> {
    use BindingStatus::{Abandoned, Active, Backup, Expired, Free, Released, Reset};
    use ServerState::PartnerDown;
    let ep = endpoint;
    let isc = ep.dialect == Dialect::Isc;
    if !serves_clients(ep) {
        return Err(AllocRefusal::NotServing(ep.state));
    }
    if binding.reserved && !request.holds_reservation {
        return Err(AllocRefusal::Reserved);
    }
    let own = own_free_status(ep.role);
    let partner_down = ep.state == PartnerDown;
    let entry_plus_mclt = ep.state_since.plus(ep.mclt);
    // A renewal even of a running lease (ISC's rules accept an EXPIRED up to 65 s before the
    // lease ends); another client only once the lease has ended (seed 12976: a running lease
    // must never pass to another client through the rewind of EXPIRED).
    let ended_for_partner = binding.status == Active
        && (request.last_client || binding.lease_expiration.is_some_and(|l| l < now))
        && matches!(
            binding.partner_status,
            Some(Expired | Released | Reset | Free | Backup)
        );
    let status = if ended_for_partner {
        Expired
    } else {
        binding.status
    };
    match status {
        s if s == own => Ok(()),
        Active if request.last_client => Ok(()),
        Active => Err(AllocRefusal::Unavailable(Active)),
        Abandoned if !isc => Err(AllocRefusal::Unavailable(Abandoned)),
        // ISC treats ABANDONED as FREE: the primary's own, the secondary's partner's.
        Abandoned if ep.role == Role::Primary => Ok(()),
        Free | Backup | Abandoned => {
            if !partner_down {
                return Err(AllocRefusal::PartnersPool(binding.status));
            }
            if request.dynamic_bootp_pool {
                return Err(AllocRefusal::DynamicBootp);
            }
            let from = if isc {
                // allowed once max(entry, tsfp) + MCLT < now
                let tsfp = later_of(binding.acked_pet, binding.received_pet);
                ep.state_since
                    .max(tsfp.unwrap_or(UnixTime(0)))
                    .plus(ep.mclt)
                    .plus(1)
            } else {
                entry_plus_mclt.plus(CLOCK_MARGIN)
            };
            wait_until(now, from)
        }
        Expired | Released | Reset => {
            let rewind = if isc {
                status != Reset && binding.partner_status.unwrap_or(Free) == own
            } else {
                // The partner still knows the address as this client's lease (or not at all):
                // not once it has our EXPIRED / RELEASED, nor once it holds the address as
                // available itself (seed 266106).
                request.last_client
                    && !ended_for_partner
                    && status != Reset
                    && matches!(binding.partner_status, None | Some(Active))
            };
            if rewind {
                return Ok(());
            }
            if !partner_down {
                return Err(AllocRefusal::AwaitingAck(status));
            }
            let from = if isc {
                let after_entry = entry_plus_mclt.plus(1);
                if request.last_client {
                    after_entry
                } else {
                    after_entry.max(binding.lease_expiration.unwrap_or(UnixTime(0)))
                }
            } else {
                [
                    binding.start_time_of_state,
                    binding.lease_expiration,
                    binding.sent_pet,
                    binding.acked_pet,
                    binding.received_pet,
                ]
                .into_iter()
                .flatten()
                .fold(ep.state_since, UnixTime::max)
                .plus(ep.mclt)
                .plus(CLOCK_MARGIN)
            };
            wait_until(now, from)
        }
        other => Err(AllocRefusal::Unavailable(other)),
    }
}

/// Whether `endpoint`'s state allocates addresses at all (§9: NORMAL, COMMUNICATIONS-
/// INTERRUPTED, PARTNER-DOWN; the draft also RESOLUTION-INTERRUPTED, and CONFLICT-DONE on the
/// primary).
fn serves_clients(endpoint: &Endpoint) -> bool {
    use ServerState::{
        CommunicationsInterrupted, ConflictDone, Normal, PartnerDown, ResolutionInterrupted,
    };
    let isc = endpoint.dialect == Dialect::Isc;
    match endpoint.state {
        Normal | CommunicationsInterrupted | PartnerDown => true,
        ResolutionInterrupted => !isc,
        ConflictDone => !isc && endpoint.role == Role::Primary,
        _ => false,
    }
}

/// Seconds added to the draft's PARTNER-DOWN waits: the partner granted its leases on its own
/// clock from times it may not have corrected by a skew too small to prove (§5.10; whole-second
/// times, see `Engine` skew correction), so its lease can end a second or two after ours
/// would (found by the simulator: a 1 s skew, seed 152468). ISC waits strictly after (+1).
pub const CLOCK_MARGIN: u32 = 3;

fn wait_until(now: UnixTime, from: UnixTime) -> Result<(), AllocRefusal> {
    if now >= from {
        Ok(())
    } else {
        Err(AllocRefusal::WaitUntil(from))
    }
}

fn later_of(a: Option<UnixTime>, b: Option<UnixTime>) -> Option<UnixTime> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

// ---------------------------------------------------------------------------------------------
// serving one client: which address, what to answer a DHCPREQUEST
// ---------------------------------------------------------------------------------------------

/// The record as the allocation and MCLT rules see it at `now`: an ACTIVE lease past its
/// lease-expiration-time is EXPIRED, even before the server's expiry scan has recorded it (or
/// while an ISC secondary in NORMAL leaves expiry to its primary, [`expires_leases`]). It is not
/// renewed as if it were running.
pub fn as_of(binding: &LocalBinding, now: UnixTime) -> LocalBinding {
    let mut b = *binding;
    if b.status == BindingStatus::Active && b.lease_expiration.is_some_and(|t| t < now) {
        b.status = BindingStatus::Expired;
    }
    b
}

/// [`may_allocate`] as a DHCP server applies it to one client: `last_client` is whether the
/// record names this client ([`ClientIdentity::same_client`](crate::accept::ClientIdentity::same_client)),
/// and the record is taken [`as_of`] `now`. Two choices on top of [`may_allocate`]:
///
/// * In PARTNER-DOWN the draft's reuse rules apply whatever the dialect: ISC's (D46) do not add
///   the MCLT to a lease's own times and may give an address to a second client while the
///   first still holds it.
/// * In RESOLUTION-INTERRUPTED only a running lease is renewed for its client (§9.11.2's
///   "current lease"): after the partner ran in PARTNER-DOWN our table may lack the leases it
///   granted from our pool until the interrupted conflict resolution brings them, and an
///   ended lease of ours may be among them (ISC allocates nothing there either).
pub fn may_allocate_to(
    endpoint: &Endpoint,
    binding: &LocalBinding,
    last_client: bool,
    now: UnixTime,
) -> Result<(), AllocRefusal> {
    let mut ep = *endpoint;
    if ep.state == ServerState::PartnerDown {
        ep.dialect = Dialect::Draft;
    }
    let current = as_of(binding, now);
    // §9.11.2: "continued renewal of a DHCP client's current lease" — a running one. An ended
    // lease may have gone to another client from the partner's PARTNER-DOWN (seed 32569622).
    if ep.state == ServerState::ResolutionInterrupted
        && !(last_client && current.status == BindingStatus::Active)
    {
        return Err(AllocRefusal::NotServing(ep.state));
    }
    let request = AllocationRequest {
        last_client,
        ..AllocationRequest::default()
    };
    may_allocate(&ep, &current, request, now)
}

/// The address to offer a client (DHCPDISCOVER), from the records of the pool in `pool`:
/// the address the client holds or held last if [`may_allocate_to`] allows it, else the
/// address it asked for (option 50) if allowed, else the lowest address allowed. An ABANDONED
/// address (declined by a client: someone else may use it) only as the last resort, when the
/// dialect allows it at all (ISC's `allocate_lease`). `None` when nothing may be allocated
/// (the server stays silent). The choice does not depend on the order of `pool`
/// ([`AddressChoice`], which a store with an index feeds with fewer records).
///
/// The caller leaves out of `pool` what it must not offer for reasons of its own (an address
/// offered to another client a moment ago).
pub fn choose_address<I>(
    endpoint: &Endpoint,
    pool: I,
    client: &ClientIdentity,
    requested: Option<Ipv4Addr>,
    now: UnixTime,
) -> Option<Ipv4Addr>
where
    I: IntoIterator<Item = (Ipv4Addr, LocalBinding)>,
{
    let mut choice = AddressChoice::new(endpoint, client, requested, now);
    for (address, binding) in pool {
        choice.consider(address, &binding);
    }
    choice.chosen()
}

/// [`choose_address`] one record at a time: the best address allowed among the records
/// considered so far. The best is the least `(rank, address)`, rank 0 for an address the
/// client holds or held last, 1 for the address it asked for, 2 for any other, 3 for an
/// ABANDONED one; so the records may come in any order, and a store that indexes its records
/// need only show those that can still win ([`AddressChoice::could_improve`],
/// [`may_offer_status`]).
///
/// ```
/// # use core::net::Ipv4Addr;
/// use failover_fsm::accept::ClientIdentity;
/// use failover_fsm::policy::{AddressChoice, Endpoint};
/// use failover_fsm::record::LeaseRecord;
/// use failover_fsm::{Dialect, Role, ServerState, UnixTime};
///
/// let ep = Endpoint {
///     dialect: Dialect::Isc,
///     role: Role::Primary,
///     state: ServerState::Normal,
///     state_since: UnixTime(0),
///     partner_state: Some(ServerState::Normal),
///     mclt: 60,
///     lease_mclt: 60,
/// };
/// let client = ClientIdentity::new(Some(b"c1"), None);
/// let mut choice = AddressChoice::new(&ep, &client, None, UnixTime(1_000));
/// for i in [9, 4, 7] {
///     let a = Ipv4Addr::new(192, 0, 2, i);
///     choice.consider(a, &LeaseRecord::fresh(a).local);
/// }
/// assert_eq!(choice.chosen(), Some(Ipv4Addr::new(192, 0, 2, 4)));
/// // A FREE address above the one chosen cannot win any more.
/// let above = Ipv4Addr::new(192, 0, 2, 5);
/// assert!(!choice.could_improve(above, &LeaseRecord::fresh(above).local));
/// ```
#[derive(Debug, Clone, Copy)]
pub struct AddressChoice<'a> {
    endpoint: &'a Endpoint,
    client: &'a ClientIdentity,
    requested: Option<Ipv4Addr>,
    now: UnixTime,
    best: Option<(u8, Ipv4Addr)>,
}

impl<'a> AddressChoice<'a> {
    /// Nothing chosen yet, for `client` (which asked for `requested`) at `now`.
    pub fn new(
        endpoint: &'a Endpoint,
        client: &'a ClientIdentity,
        requested: Option<Ipv4Addr>,
        now: UnixTime,
    ) -> Self {
        AddressChoice {
            endpoint,
            client,
            requested,
            now,
            best: None,
        }
    }

    /// The situation the choice is made in.
    pub fn endpoint(&self) -> &'a Endpoint {
        self.endpoint
    }

    /// The client an address is chosen for.
    pub fn client(&self) -> &'a ClientIdentity {
        self.client
    }

    /// The address the client asked for (option 50), if any.
    pub fn requested(&self) -> Option<Ipv4Addr> {
        self.requested
    }

    /// The time the rules are applied at.
    pub fn now(&self) -> UnixTime {
        self.now
    }

    fn rank(&self, address: Ipv4Addr, binding: &LocalBinding) -> (u8, bool) {
        let same = binding.client.same_client(self.client) == Some(true);
        let rank = if binding.status == BindingStatus::Abandoned {
            3
        } else if same {
            0
        } else if Some(address) == self.requested {
            1
        } else {
            2
        };
        (rank, same)
    }

    /// Whether `address` with record `binding` would be chosen over the best so far, if
    /// [`may_allocate_to`] allows it.
    pub fn could_improve(&self, address: Ipv4Addr, binding: &LocalBinding) -> bool {
        let (rank, _) = self.rank(address, binding);
        self.best.is_none_or(|best| (rank, address) < best)
    }

    /// Looks at one record of the pool; returns whether it is the best so far now.
    pub fn consider(&mut self, address: Ipv4Addr, binding: &LocalBinding) -> bool {
        let (rank, same) = self.rank(address, binding);
        if self.best.is_some_and(|best| (rank, address) >= best) {
            return false;
        }
        let allowed = may_allocate_to(self.endpoint, binding, same, self.now).is_ok();
        if allowed {
            self.best = Some((rank, address));
        }
        allowed
    }

    /// The address to offer, from the records considered.
    pub fn chosen(&self) -> Option<Ipv4Addr> {
        self.best.map(|(_, a)| a)
    }
}

/// Whether a record of `status` that is not reserved may be offered by [`choose_address`] to
/// a client other than its last one in `endpoint`'s state, at some time — a necessary
/// condition of [`may_allocate_to`] with `last_client` false, for a store that indexes its
/// records by status and looks only where an address may be found. Take an ACTIVE record
/// [`as_of`] now (one past its lease-expiration-time is EXPIRED). `false` is sure: an ACTIVE
/// lease, the partner's available addresses outside PARTNER-DOWN, nothing when the state
/// serves no new client; `true` may still be refused record by record.
pub fn may_offer_status(endpoint: &Endpoint, status: BindingStatus) -> bool {
    if !serves_clients(endpoint) || endpoint.state == ServerState::ResolutionInterrupted {
        return false;
    }
    let own = own_free_status(endpoint.role);
    match status {
        s if s == own => true,
        BindingStatus::Active => false,
        BindingStatus::Free | BindingStatus::Backup => endpoint.state == ServerState::PartnerDown,
        _ => true,
    }
}

/// What to answer a DHCPREQUEST for one address (RFC 2131 §4.3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum RequestAnswer {
    /// Grant the lease ([`lease_time`], then the BNDUPD, then DHCPACK).
    Ack,
    /// DHCPNAK: the address is not the client's to have (outside the pools, another client's
    /// lease, unusable).
    Nak,
    /// No answer: the address may become the client's, but not from us now (the partner's,
    /// or waiting for an acknowledgement or the MCLT). The partner, or a later retry, answers.
    Silent(AllocRefusal),
}

/// What to answer a DHCPREQUEST from `client` for an address whose record is `binding`
/// (`None`: not in any pool of ours). Renewals go through [`may_allocate_to`] too: it refuses
/// a lease the partner records as ended (the partner may hand it out meanwhile).
pub fn judge_request(
    endpoint: &Endpoint,
    binding: Option<&LocalBinding>,
    client: &ClientIdentity,
    now: UnixTime,
) -> RequestAnswer {
    let Some(binding) = binding else {
        return RequestAnswer::Nak;
    };
    let b = as_of(binding, now);
    let same = b.client.same_client(client) == Some(true);
    if b.status == BindingStatus::Active && !same {
        return RequestAnswer::Nak;
    }
    match may_allocate_to(endpoint, &b, same, now) {
        Ok(()) => RequestAnswer::Ack,
        Err(AllocRefusal::Unavailable(_) | AllocRefusal::Reserved) => RequestAnswer::Nak,
        Err(why) => RequestAnswer::Silent(why),
    }
}

/// Whether this server records the end of its leases (EXPIRED, and a BNDUPD) now. ISC's
/// secondary in NORMAL leaves that to the primary (D47); the draft has either server do it.
pub fn expires_leases(endpoint: &Endpoint) -> bool {
    !(endpoint.dialect == Dialect::Isc
        && endpoint.role == Role::Secondary
        && endpoint.state == ServerState::Normal)
}
