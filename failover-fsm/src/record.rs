//! The lease record: what a server keeps per address, and the rules by which it changes when
//! the partner sends a binding, when this server changes it, and when the partner
//! acknowledges or refuses our update (§5.11, §7.1.5, §7.2).
//!
//! These rules are the contract every store follows — the in-memory and file stores of
//! failover-tokio, the test harness and the simulator call the same functions, so the
//! simulation proves the code that users run. The engine judges a received update
//! ([`crate::accept::judge_update`]); [`LeaseRecord`] applies the verdict.
//!
//! # What a store does, in order
//!
//! | the engine says | the store calls | then |
//! | --- | --- | --- |
//! | ([`crate::CommitSink::commit`] with a binding and its verdict) | [`LeaseRecord::apply_received`] | make it durable, `binding_committed`; on [`Received::KeptOurs`] send ours again |
//! | (`poll_transmit` reads a binding to send, [`crate::BindingSource`]) | the record's `data` | |
//! | (the DHCP server changed a lease) | [`LeaseRecord::apply_local`] | make it durable, `send_binding`, [`LeaseRecord::queued`] |
//! | `BindingAcked` | [`LeaseRecord::apply_ack`] | make it durable |
//! | `BindingRejected` | [`LeaseRecord::apply_reject`] | |
//! | `SendAllBindings`, `SendUnackedBindings`, `SendBacklog` | [`BacklogWalk::for_action`], [`BacklogWalk::begin`] | [`BacklogWalk::walk`] now and again as acknowledgements free room |
//! | `PoolRequested`, `PoolCheck` | [`crate::policy::PoolCounts::of`], `balance_pools` | for each of [`crate::policy::balance_candidates`]: [`LeaseRecord::given_to_partner`], [`LeaseRecord::apply_local`], queue it |
//! | (restart, from stable storage) | [`LeaseRecord::restarted`] | |
//!
//! A DHCP server makes its own changes with [`LeaseRecord::granted`] (DHCPACK),
//! [`LeaseRecord::released`] (DHCPRELEASE), [`LeaseRecord::declined`] (DHCPDECLINE) and
//! [`LeaseRecord::expired`] (the lease ended): each returns the binding to hand to the failover
//! peer (`send_binding`), whose store applies it with [`LeaseRecord::apply_local`].
//!
//! Some fields live in memory only ([`LeaseRecord::last_received`], [`LeaseRecord::refused`],
//! [`LeaseRecord::queued`]): they describe this process's conversation with the partner and
//! are cleared by [`LeaseRecord::restarted`].

use core::net::Ipv4Addr;

use failover_proto::{BindingStatus, HardwareAddress, IpFlags, Role};

mod walk;

pub use walk::{BacklogWalk, Queued, UpdateQueue, Walked};

use crate::accept::{ClientIdentity, LocalBinding, Verdict, freed_status};
use crate::binding::{BindingData, BindingTooLong};
use crate::engine::UpdateId;
use crate::policy::{BalancePlan, LeaseGrant};
use crate::time::UnixTime;

/// What a server keeps per address of its pools.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct LeaseRecord {
    /// The inputs of the acceptance, MCLT and reuse rules ([`crate::LeaseLookup`] returns it).
    pub local: LocalBinding,
    /// The binding as last stored: what is sent to the partner.
    pub data: BindingData,
    /// The partner has this version: it acknowledged it, or sent it to us (§7.1.5). A record
    /// without it is part of the backlog sent on entering NORMAL (§9.8.1) and on UPDREQ.
    pub partner_has_it: bool,
    /// Memory only: the last binding received from the partner and applied, with its times as
    /// the partner sent them, to recognise the same update sent again after its BNDACK was
    /// lost with a connection.
    pub last_received: Option<BindingData>,
    /// Memory only: the partner refused our current version (§7.2.2); the next update it sends
    /// for the address is taken as it is, however our times compare.
    pub refused: bool,
    /// Memory only: the engine's id of the update carrying the current version, once queued.
    pub queued: Option<UpdateId>,
}

/// Which records a request for bindings covers ([`LeaseRecord::sent_for`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Backlog {
    /// Every record the partner may need: UPDREQALL (§7.4).
    All,
    /// Those the partner has not acknowledged: UPDREQ (§7.3), the backlog on entering NORMAL
    /// (§9.8.1) and in RECOVER.
    Unacked,
}

/// What [`LeaseRecord::apply_received`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Received {
    /// The partner's binding is now the record.
    Stored,
    /// Our record was newer than the partner's (by client-last-transaction-time, else
    /// start-time-of-state) and the partner had not acknowledged it: we keep ours, which stays
    /// in the engine's queue (when the engine dropped it, [`Received::KeptOurs`] instead). (The acceptance rules judge an update against our record alone, so two
    /// crossing updates can each be accepted; keeping the newer makes both sides converge.)
    KeptNewer,
    /// The partner sent again an update applied already and our record changed since, or our
    /// newer record was kept while the engine dropped its queued copy
    /// ([`crate::accept::Verdict::ours_dropped`]): ours stays, and must be queued again at
    /// once ([`LeaseRecord::send_again`]).
    KeptOurs(BindingData),
}

/// A BNDACK for one of our updates, as the engine reports it (`Action::BindingAcked`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Ack {
    /// The update acknowledged.
    pub update: UpdateId,
    /// The binding-status it carried.
    pub status: BindingStatus,
    /// The client it named.
    pub client: ClientIdentity,
    /// The potential-expiration-time it carried: now the acked PET (§7.1.5).
    pub potential_expiration_time: Option<UnixTime>,
}

/// The DHCP client a server changes a lease for: what identifies it in a binding (§7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct LeaseClient<'a> {
    /// DHCP option 61 data, if the client sent it.
    pub client_identifier: Option<&'a [u8]>,
    /// The `htype` field.
    pub htype: u8,
    /// `chaddr[..hlen]`.
    pub chaddr: &'a [u8],
}

impl LeaseClient<'_> {
    /// The identity the records compare ([`ClientIdentity::same_client`]).
    pub fn identity(&self) -> ClientIdentity {
        ClientIdentity::new(
            self.client_identifier,
            Some(HardwareAddress {
                htype: self.htype,
                address: self.chaddr,
            }),
        )
    }
}

impl AsRef<LocalBinding> for LeaseRecord {
    fn as_ref(&self) -> &LocalBinding {
        &self.local
    }
}

impl LeaseRecord {
    /// A pool address never used: FREE, never exchanged with the partner (§5.4, §5.16).
    pub fn fresh(address: Ipv4Addr) -> Self {
        LeaseRecord {
            local: LocalBinding::new(BindingStatus::Free),
            data: BindingData::new(address, BindingStatus::Free),
            partner_has_it: false,
            last_received: None,
            refused: false,
            queued: None,
        }
    }

    /// A record read back from stable storage: the durable fields as written, nothing of the
    /// conversation with the partner.
    pub fn stored(local: LocalBinding, data: BindingData, partner_has_it: bool) -> Self {
        let mut r = LeaseRecord {
            local,
            data,
            partner_has_it,
            last_received: None,
            refused: false,
            queued: None,
        };
        r.restarted();
        r
    }

    /// Whether the record names `client` as its (last) client.
    pub fn holds(&self, client: &ClientIdentity) -> bool {
        self.local.client.same_client(client) == Some(true)
    }

    /// The binding of a lease `grant`ed to `client` (the DHCPACK): ACTIVE, with the grant's
    /// lease-expiration-time and potential-expiration-time (§7.1.5),
    /// client-last-transaction-time `now`, start-time-of-state kept while the same client's
    /// ACTIVE lease goes on (a renewal), else `now`, and IP-flags R if the address is
    /// reserved. Send it to the partner and
    /// wait until it is recorded before the DHCPACK goes out (§5.1).
    pub fn granted(
        &self,
        client: &LeaseClient<'_>,
        grant: &LeaseGrant,
        now: UnixTime,
    ) -> Result<BindingData, BindingTooLong> {
        let renewal = self.local.status == BindingStatus::Active && self.holds(&client.identity());
        let mut b = BindingData::new(self.data.ip(), BindingStatus::Active).with_client(
            client.client_identifier,
            client.htype,
            client.chaddr,
        )?;
        // A DHCP lease: never BOOTP (§5.14); the reservation belongs to the address (§5.13).
        b.ip_flags = if self.local.reserved {
            IpFlags::RESERVED
        } else {
            IpFlags::EMPTY
        };
        b.lease_expiration_time = Some(grant.lease_expiration);
        b.potential_expiration_time = Some(grant.potential_expiration);
        b.start_time_of_state = Some(if renewal {
            self.local.start_time_of_state.unwrap_or(now)
        } else {
            now
        });
        b.client_last_transaction_time = Some(now);
        Ok(b)
    }

    /// The binding after `client` released its lease (DHCPRELEASE): RELEASED since `now`; the
    /// partner's acknowledgement frees the address (§5.11). `None` unless the record is
    /// `client`'s ACTIVE lease (a release for anything else changes nothing).
    pub fn released(&self, client: &ClientIdentity, now: UnixTime) -> Option<BindingData> {
        self.ended_by_client(client, BindingStatus::Released, now)
    }

    /// The binding after `client` declined the address (DHCPDECLINE, RFC 2131 §4.3.3: someone
    /// else uses it): ABANDONED since `now`, out of use until an operator resets it (§5.11),
    /// and nobody's: an ABANDONED binding names no client (ISC refuses one that does, with
    /// reject reason 6). `None` unless the record is `client`'s ACTIVE lease.
    pub fn declined(&self, client: &ClientIdentity, now: UnixTime) -> Option<BindingData> {
        let mut b = self.ended_by_client(client, BindingStatus::Abandoned, now)?;
        b.client_identifier = None;
        b.hardware_address = None;
        Some(b)
    }

    fn ended_by_client(
        &self,
        client: &ClientIdentity,
        status: BindingStatus,
        now: UnixTime,
    ) -> Option<BindingData> {
        if self.local.status != BindingStatus::Active || !self.holds(client) {
            return None;
        }
        let mut b = self.data.clone();
        b.status = status;
        b.start_time_of_state = Some(now);
        b.client_last_transaction_time = Some(now);
        Some(b)
    }

    /// The binding after the lease ended: EXPIRED since `now` (§5.11), when the record is an
    /// ACTIVE lease whose lease-expiration-time has passed; else `None`. The partner's
    /// acknowledgement frees the address. Ask [`crate::policy::expires_leases`] first.
    pub fn expired(&self, now: UnixTime) -> Option<BindingData> {
        if self.local.status != BindingStatus::Active
            || self.local.lease_expiration.is_none_or(|t| t >= now)
        {
            return None;
        }
        let mut b = self.data.clone();
        b.status = BindingStatus::Expired;
        b.start_time_of_state = Some(now);
        Some(b)
    }

    /// Never used nor exchanged with the partner: no record at all. Sent on UPDREQALL as FREE it
    /// would overwrite what the partner knows (the acceptance rules take FREE over BACKUP,
    /// EXPIRED or RELEASED), so it is not sent.
    pub fn is_untouched(&self) -> bool {
        let fresh = LeaseRecord::fresh(self.data.ip());
        self.local == fresh.local && self.data == fresh.data
    }

    /// The process restarted: forget what belonged to the last conversation with the partner.
    pub fn restarted(&mut self) {
        self.last_received = None;
        self.refused = false;
        self.queued = None;
        self.local.in_flight = None;
    }

    /// Applies a binding received from the partner and accepted with `verdict` (§7.1.4).
    ///
    /// The verdict's `store_as` is stored (EXPIRED, RELEASED and RESET become FREE, §5.11),
    /// with the later lease-expiration-time of one lease (§7.1.5) and the received PET.
    /// client-last-transaction-time only moves forward. An update older than our record that
    /// the partner has not acknowledged does not replace it ([`Received::KeptNewer`]); one
    /// applied already and sent again does not undo a newer change ([`Received::KeptOurs`]).
    pub fn apply_received(&mut self, binding: &BindingData, verdict: &Verdict) -> Received {
        // Compared in the partner's clock: sent again over a later connection, the same update
        // may be corrected by another skew estimate (seed 30564403: a re-sent RELEASED,
        // shifted 19 s, looked newer than the lease we granted since).
        let as_sent = binding.clone().shifted(-verdict.partner_time_shift);
        let duplicate = self.last_received.as_ref() == Some(&as_sent) && !self.partner_has_it;
        self.last_received = Some(as_sent);
        let refused = core::mem::take(&mut self.refused);
        if duplicate {
            // Acknowledged all the same, so the partner holds its status (see
            // `note_partner_status`).
            self.note_partner_status(verdict.store_as, verdict.ours_in_flight);
            return Received::KeptOurs(self.data.clone());
        }
        let before = self.clone();
        self.store_received(binding, verdict);
        if let (Some(old), Some(new)) = (before.local.cltt, self.local.cltt)
            && old > new
        {
            self.local.cltt = Some(old);
        }
        // The verdict keeps the later expiry of ours and the partner's (§7.1.5): right within
        // one lease. For a new lease our old time belongs to the previous one and would
        // outlive it (we would then refuse the partner's correct EXPIRED).
        let same_lease = matches!(
            before.local.status,
            BindingStatus::Active | BindingStatus::Expired | BindingStatus::Released
        ) && before.local.client.same_client(&client_of(binding)) == Some(true);
        // (Verdicts judge this themselves now; logs written before may hold merged ones.)
        if !same_lease && let Some(t) = binding.lease_expiration_time.filter(|t| t.0 != 0) {
            self.data.lease_expiration_time = Some(t);
            self.local.lease_expiration = Some(t.plus(verdict.skew_margin));
        }
        // Once the partner acknowledged our record, whatever it sends next was made after it
        // stored ours (TCP keeps its BNDACK and BNDUPD in order), whatever the clocks say.
        let ours = before.local.cltt.or(before.local.start_time_of_state);
        let theirs = binding
            .client_last_transaction_time
            .or(binding.start_time_of_state);
        let older = !before.partner_has_it
            && !refused
            && !verdict.taken_as_newer
            && match (ours, theirs) {
                (Some(o), Some(t)) => o > t || (o == t && verdict.ours_wins_tie),
                _ => false,
            };
        if !older {
            return Received::Stored;
        }
        let received_pet = self.local.received_pet;
        let last_received = self.last_received.take();
        *self = before;
        self.last_received = last_received;
        self.local.received_pet = received_pet.max(self.local.received_pet);
        self.partner_has_it = false;
        // We acknowledge the partner's update all the same: it now holds that status.
        self.note_partner_status(binding.status, verdict.ours_in_flight);
        if verdict.ours_dropped {
            // The engine dropped our queued copy (ISC's rules): nothing would send ours until
            // the next connection's backlog, and the partner would keep its older binding —
            // a restarted primary's stale EXPIRED for a lease we renewed while it was down
            // (the DHCP-server lab test).
            return Received::KeptOurs(self.data.clone());
        }
        Received::KeptNewer
    }

    /// The partner holds `status` for the address: we acknowledged its update while keeping
    /// our newer record. Noted when nothing of ours is on its way, or ours is a running
    /// lease, which the partner frees on our BNDACK before our renewal lands (seed 52843);
    /// otherwise the partner takes ours after its own, and what it may know stays ours (an
    /// ACTIVE would allow the draft's rewind, an available status ISC's, seed 7880). An ended
    /// status (EXPIRED, RELEASED, RESET: freed on our BNDACK, §5.11) allows no rewind in
    /// either dialect and is always noted.
    fn note_partner_status(&mut self, status: BindingStatus, ours_in_flight: bool) {
        let ended = matches!(
            status,
            BindingStatus::Expired | BindingStatus::Released | BindingStatus::Reset
        );
        if ended || !ours_in_flight || self.local.status == BindingStatus::Active {
            self.local.partner_status = Some(status);
        }
    }

    fn store_received(&mut self, binding: &BindingData, verdict: &Verdict) {
        let mut data = binding.clone();
        data.status = verdict.store_as;
        // Sent on later (UPDREQALL) with the merged expiry: a longer lease we granted the same
        // client than the one the partner reported (§7.1.5).
        data.lease_expiration_time = verdict.lease_expiration.or(data.lease_expiration_time);
        self.local.status = verdict.store_as;
        self.local.client = client_of(binding);
        self.local.cltt = binding.client_last_transaction_time.or(self.local.cltt);
        self.local.lease_expiration = verdict
            .lease_expiration
            .map(|t| t.plus(verdict.skew_margin));
        self.local.start_time_of_state = binding.start_time_of_state;
        self.local.received_pet = verdict.received_pet;
        self.local.partner_status = Some(verdict.store_as);
        // The partner says whether the address is reserved for its client (§5.13).
        self.local.reserved = binding.ip_flags.contains(IpFlags::RESERVED);
        // A longer lease of ours for the same client, merged in: the partner knows only its
        // shorter one until our record reaches it, so the backlog sends it (§9.8.1). Noted as
        // known, it was lost with the engine's queued copy in a crash, and the partner's
        // EXPIRED of its shorter lease was refused for good (simulator seed 59074511).
        let merged_longer = matches!(
            (verdict.lease_expiration, binding.lease_expiration_time),
            (Some(merged), Some(theirs)) if merged > theirs
        );
        self.data = data;
        self.partner_has_it = !merged_longer;
        self.queued = None;
    }

    /// Applies a change made by this server: a lease granted, renewed, released, expired, an
    /// address moved between pools. `send`: the change goes to the partner (then queue it and
    /// call [`LeaseRecord::queued`]); without it the partner already knows (an acknowledged
    /// EXPIRED freed on both sides, §5.11).
    ///
    /// A new lease (ACTIVE for a client that did not hold the address, or after FREE/BACKUP)
    /// forgets the potential-expiration-times of the previous one (§7.1.5). The reservation
    /// (§5.13) is the RESERVED bit of `data.ip_flags`, as for a received binding: keep it in
    /// every change of a reserved address.
    pub fn apply_local(&mut self, data: BindingData, send: bool) {
        let client = client_of(&data);
        let continued = matches!(
            self.local.status,
            BindingStatus::Active | BindingStatus::Expired | BindingStatus::Released
        ) && self.local.client.same_client(&client) == Some(true);
        if data.status == BindingStatus::Active && !continued {
            self.local.acked_pet = None;
            self.local.received_pet = None;
        }
        self.local.status = data.status;
        self.local.client = client;
        self.local.cltt = data.client_last_transaction_time;
        self.local.lease_expiration = data.lease_expiration_time;
        self.local.start_time_of_state = data.start_time_of_state;
        self.local.sent_pet = data.potential_expiration_time;
        self.local.reserved = data.ip_flags.contains(IpFlags::RESERVED);
        self.data = data;
        self.refused = false;
        self.queued = None;
        if send {
            self.partner_has_it = false;
        }
    }

    /// The current version was queued to the partner as `update`: the partner may now know
    /// its status (the rewind of EXPIRED / RELEASED ends once it is sent, §5.2.2). Except an
    /// ACTIVE lease while the partner holds the address as ended (we acknowledged its
    /// EXPIRED, RELEASED or RESET and kept our record): the partner frees it on that
    /// acknowledgement and may hand it out before our lease lands, so the ended status stays
    /// until the partner acknowledges ours (seed 32561070: our ended lease, sent again, made
    /// the address look like its client's to the partner and was rewound to the client while
    /// the primary held it FREE).
    pub fn queued(&mut self, update: UpdateId) {
        self.queued = Some(update);
        let partner_ended = matches!(
            self.local.partner_status,
            Some(BindingStatus::Expired | BindingStatus::Released | BindingStatus::Reset)
        );
        if !(partner_ended && self.data.status == BindingStatus::Active) {
            self.local.partner_status = Some(self.data.status);
        }
    }

    /// Queues the current record to the partner and notes it ([`LeaseRecord::queued`]).
    pub fn send<Q: UpdateQueue + ?Sized>(&mut self, queue: &mut Q) -> Queued {
        self.send_noting(queue, LeaseRecord::queued)
    }

    /// After [`Received::KeptOurs`]: queues the current record again at once and notes it
    /// ([`LeaseRecord::queued_again`]). The engine took the partner's update as newer and
    /// dropped its queued copy of ours; waiting for the next backlog would leave the partner
    /// with its older binding until a reconnect (simulator seed 466447). On
    /// [`crate::EngineError::QueueFull`] call it again once acknowledgements free room.
    pub fn send_again<Q: UpdateQueue + ?Sized>(&mut self, queue: &mut Q) -> Queued {
        self.send_noting(queue, LeaseRecord::queued_again)
    }

    fn send_noting<Q: UpdateQueue + ?Sized>(
        &mut self,
        queue: &mut Q,
        note: fn(&mut LeaseRecord, UpdateId),
    ) -> Queued {
        let update = queue.send_binding(&self.data)?;
        note(self, update);
        Ok(update)
    }

    /// The binding that gives this address to the partner's pool in a balancing run (§5.4,
    /// §7.6): [`BalancePlan::give_as`] since `now`, the start-time-of-state, and nothing of a
    /// lease that ended before (ISC sets the lease's start to now when it moves it,
    /// `dhcp_failover_pool_dobalance`). Without that time the move could not be ordered against
    /// the partner's own updates: sent again after its BNDACK was lost, it overwrote the
    /// partner's newer RELEASED, and both servers held the address as theirs (simulator seed
    /// 41003013). Apply it with [`LeaseRecord::apply_local`] and queue it.
    ///
    /// The move is made after the version it replaces, so its time is never earlier than that
    /// version's client-last-transaction-time and start-time-of-state: those may come from the
    /// partner's clock, ahead of ours by less than the skew bounds prove (§5.10, no
    /// correction), and the partner orders its own crossing update against the move by these
    /// times ([`LeaseRecord::apply_received`], §7.1.3). Simulator seed 60023994: the primary
    /// stored the secondary's RELEASED (its BNDACK lost with the connection) and moved the
    /// address to BACKUP a second earlier by its clock; the secondary kept its RELEASED, sent
    /// again, as the newer, the primary kept its BACKUP over that re-sent update, and the
    /// address ended BACKUP on one side and FREE on the other.
    pub fn given_to_partner(&self, plan: &BalancePlan, now: UnixTime) -> BindingData {
        let mut b = BindingData::new(self.data.ip(), plan.give_as);
        let replaced = [self.local.cltt, self.local.start_time_of_state];
        b.start_time_of_state = Some(replaced.into_iter().flatten().fold(now, UnixTime::max));
        b
    }

    /// Our record was queued again after [`Received::KeptOurs`]: the partner holds its own
    /// status until it takes ours, so that stays the status it may know — except when ours
    /// is ended (EXPIRED, RELEASED, RESET): the partner frees the address on it (§5.11), so
    /// the rewind its status would allow is closed, as once an ended status is sent
    /// ([`LeaseRecord::queued`]). (Simulator seed 56136648, ISC dialect: the secondary kept its
    /// RELEASED over the primary's BACKUP sent again, noted BACKUP, and ISC's rewind gave the
    /// address to a new client while the primary took the RELEASED as FREE, its own.)
    pub fn queued_again(&mut self, update: UpdateId) {
        self.queued = Some(update);
        if matches!(
            self.data.status,
            BindingStatus::Expired | BindingStatus::Released | BindingStatus::Reset
        ) {
            self.local.partner_status = Some(self.data.status);
        }
    }

    /// The partner asked for every binding (UPDREQALL, §7.4): it lost or restored what it had
    /// acknowledged, so our record counts as unacknowledged until it acknowledges it again.
    pub fn partner_lost_table(&mut self) {
        self.partner_has_it = false;
    }

    /// Whether this record goes to the partner for `which`. An untouched record never does
    /// ([`LeaseRecord::is_untouched`]). With [`Backlog::All`] every other record does, and
    /// counts as unacknowledged from now on ([`LeaseRecord::partner_lost_table`]); with
    /// [`Backlog::Unacked`] those the partner has not acknowledged.
    pub fn sent_for(&mut self, which: Backlog) -> bool {
        if self.is_untouched() {
            return false;
        }
        match which {
            Backlog::All => {
                self.partner_lost_table();
                true
            }
            Backlog::Unacked => !self.partner_has_it,
        }
    }

    /// The partner acknowledged one of our updates (§7.2). An acknowledged EXPIRED, RELEASED
    /// or RESET frees the address (§5.11): returns `true` when it did.
    pub fn apply_ack(&mut self, ack: &Ack, role: Role) -> bool {
        if self.queued != Some(ack.update) {
            // An older version: the partner knows its PET if it was the same client's lease
            // in the same status.
            if self.data.status == ack.status
                && self.local.client.is_known()
                && self.local.client.same_client(&ack.client) == Some(true)
            {
                self.local.acked_pet = ack.potential_expiration_time.or(self.local.acked_pet);
            }
            return false;
        }
        self.partner_has_it = true;
        self.local.partner_status = Some(ack.status);
        self.local.acked_pet = ack.potential_expiration_time.or(self.local.acked_pet);
        if !matches!(
            ack.status,
            BindingStatus::Expired | BindingStatus::Released | BindingStatus::Reset
        ) {
            return false;
        }
        let mut freed = self.data.clone();
        freed.status = freed_status(role, self.local.reserved);
        self.apply_local(freed, false);
        // The partner freed it on its side as well (§5.11).
        self.local.partner_status = Some(self.data.status);
        true
    }

    /// The partner refused our update (§7.2.2): if it carried the current version, its next
    /// update of the address is taken as it is.
    pub fn apply_reject(&mut self, update: UpdateId) {
        if self.queued == Some(update) {
            self.refused = true;
        }
    }
}

fn client_of(b: &BindingData) -> ClientIdentity {
    b.client()
}

/// The latest potential-expiration-time the partner sent us among `records` (each record's
/// [`LocalBinding::received_pet`]): what [`crate::Engine::restore_received_pet`] wants at start.
pub fn latest_received_pet<'a>(
    records: impl IntoIterator<Item = &'a LeaseRecord>,
) -> Option<UnixTime> {
    records
        .into_iter()
        .filter_map(|r| r.local.received_pet)
        .max()
}
