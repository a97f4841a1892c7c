//! A DHCPv6 lease table in memory for one relationship: what the failover task reads to judge
//! the partner's leases and to write ours, and where it stores what the partner sends and
//! answers. Section numbers are RFC 8156's.
//!
//! Every rule a record follows is the library's: [`LocalLease::store_received`] for an
//! accepted partner lease (§7.5.5), [`LocalLease::store_ack`] for the partner's answer to ours
//! (§7.7), [`LocalLease::update_lease`] for a lease as our BNDUPD carries it (§7.4). The store
//! only keeps the records and which client holds which leases.
//!
//! Delegable prefixes no client holds are bindings of their own (a top-level OPTION_IAPREFIX,
//! §7.4), named by handles from [`PREFIX_HANDLES`] on: what the primary sends when it gives a
//! prefix to the secondary or takes it back (§4.2.2, [`MemoryStore6::move_prefixes`]).
//!
//! In memory only ([`MemoryStore6::new`]) the table lasts as long as the process: a server
//! restarted without it starts with [`Peer6::lease_table_lost`](super::Peer6::lease_table_lost)
//! and gets every binding back from its partner (UPDREQALL, §8.5.2). Opened on a journal
//! ([`MemoryStore6::open`], [`Peer6::lease_file`](super::Peer6::lease_file)) it lasts across
//! restarts: every change is journaled, [`MemoryStore6::sync`] makes the changes so far
//! durable (one fsync shared by concurrent callers), and opening the file again gives back
//! the table as it was at the last sync (file format: the `journal` module's documentation,
//! summed up at [`MemoryStore6::open`]).

use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex};

use failover_fsm::UnixTime;
use failover_fsm::engine::{BindingHandle, BindingSource6, LeaseLookup6};
use failover_fsm::v6::accept::Verdict;
use failover_fsm::v6::pool::{PrefixCounts, PrefixPlan, movable_candidates};
use failover_fsm::v6::{ClientKey, LocalLease, allocate, lifetime, owner};
use failover_proto::v6::{Binding, BindingStatus, ClientData, Ia, IaKind, Lease, LeaseAddr, List};

use super::journal::{self, Journal, Line, Pending};

mod durable;
mod prefix;

/// The first [`BindingHandle`] of the clientless-prefix namespace: handle
/// `PREFIX_HANDLES + i` names the `i`-th delegable prefix the table learned (in the order
/// [`MemoryStore6::add_pool_lease`] added them; a reopened journal's in address order).
/// Client handles count up from 1 and stay below it. Handles live as long as the process:
/// the journal keeps records, not prefix handles.
pub const PREFIX_HANDLES: u32 = 0x8000_0000;

/// Lifetimes and T1/T2 of a lease or IA as the client got them (echoed in BNDUPDs).
const DEFAULT_T1: u32 = 0;

/// Why [`MemoryStore6::grant`] gave nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum GrantError {
    /// The lease is in no pool of this relationship ([`MemoryStore6::add_pool_lease`]).
    NotInPool,
    /// The rules refuse it now ([`allocate::may_allocate`]).
    Refused(allocate::Refusal),
}

impl std::fmt::Display for GrantError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GrantError::NotInPool => f.write_str("not in this relationship's pools"),
            GrantError::Refused(r) => write!(f, "refused: {r:?}"),
        }
    }
}

impl std::error::Error for GrantError {}

/// One IA of a client's binding: which leases it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IaBinding {
    /// IA_NA, IA_TA or IA_PD.
    pub kind: IaKind,
    /// IAID.
    pub iaid: u32,
    /// The addresses (IA_NA, IA_TA) or prefixes (IA_PD), with the preferred and valid
    /// lifetimes the client got.
    pub leases: Vec<(LeaseAddr, u32, u32)>,
}

/// A client's binding (§7.4): its DUID and IAs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientBinding {
    /// OPTION_CLIENTID.
    pub duid: Vec<u8>,
    /// Its IAs.
    pub ias: Vec<IaBinding>,
}

/// The lease table of one DHCPv6 relationship, in memory, and durable if opened on a journal
/// ([`MemoryStore6::open`]).
#[derive(Debug, Default)]
pub struct MemoryStore6 {
    records: HashMap<LeaseAddr, LocalLease>,
    clients: HashMap<u32, ClientBinding>,
    by_duid: HashMap<Vec<u8>, u32>,
    next_handle: u32,
    /// The delegable prefixes, in the order learned: index `i` is handle
    /// `PREFIX_HANDLES + i`.
    prefixes: Vec<LeaseAddr>,
    prefix_index: HashMap<LeaseAddr, u32>,
    /// The wall clock for OPTION_LQ_BASE_TIME, set by the task before it writes.
    now: u32,
    /// Leases whose binding the partner must get again (the library said so: a freed lease,
    /// a later end kept, an outdated update refused): [`MemoryStore6::take_resends`].
    resend: Vec<LeaseAddr>,
    /// The journal and what changed since its last batch (`None`: in memory only).
    journal: Option<Pending>,
    /// Read back from a journal that existed.
    reopened: bool,
}

impl MemoryStore6 {
    /// An empty table.
    pub fn new() -> Self {
        MemoryStore6::default()
    }

    /// Adds `lease` to the relationship's pools, free for its owner (§4.2.1.1: an address by
    /// its last bit; a delegable prefix starts as the primary's, §4.2.2). A lease already
    /// known is left as it is.
    pub fn add_pool_lease(&mut self, lease: LeaseAddr) {
        let status = owner::freed_status(kind_of(lease));
        let new = !self.records.contains_key(&lease);
        self.records.entry(lease).or_insert(LocalLease::new(status));
        if new {
            self.touch(lease);
        }
        self.note_prefix(lease);
    }

    /// The record of `lease`.
    pub fn lease(&self, lease: LeaseAddr) -> Option<LocalLease> {
        self.records.get(&lease).copied()
    }

    /// Every record, addresses then prefixes, each in order: what two partners compare.
    pub fn records(&self) -> Vec<(LeaseAddr, LocalLease)> {
        let mut all: Vec<(LeaseAddr, LocalLease)> =
            self.records.iter().map(|(a, r)| (*a, *r)).collect();
        all.sort_by_key(|(a, _)| match a {
            LeaseAddr::Address(ip) => (0, ip.octets(), 128),
            LeaseAddr::Prefix { prefix, len } => (1, prefix.octets(), *len),
        });
        all
    }

    /// The binding of client `duid`, if any.
    pub fn client(&self, duid: &[u8]) -> Option<(BindingHandle, &ClientBinding)> {
        let h = *self.by_duid.get(duid)?;
        Some((BindingHandle(h), self.clients.get(&h)?))
    }

    /// Every client's handle, in order.
    pub fn handles(&self) -> Vec<BindingHandle> {
        let mut h: Vec<u32> = self.clients.keys().copied().collect();
        h.sort_unstable();
        h.into_iter().map(BindingHandle).collect()
    }

    /// Every binding an UPDREQALL sends: each client's ([`MemoryStore6::handles`]), then each
    /// clientless prefix's that has moved since the pools were configured (a prefix never
    /// moved is FREE on both sides by configuration, §4.2.2).
    pub fn update_handles(&self) -> Vec<BindingHandle> {
        let mut all = self.handles();
        all.extend(self.moved_prefix_handles());
        all
    }

    /// Records a local change: `binding` is what the client now holds, `records` the new
    /// records of its leases (decided with `failover_fsm::v6::allocate` and
    /// `failover_fsm::v6::lifetime`). Returns the handle to send
    /// ([`Handle6::send_binding`](super::Handle6)).
    pub fn update(
        &mut self,
        binding: ClientBinding,
        records: impl IntoIterator<Item = (LeaseAddr, LocalLease)>,
    ) -> BindingHandle {
        for (addr, record) in records {
            self.records.insert(addr, record);
            self.touch(addr);
            self.note_prefix(addr);
        }
        let handle = self.handle_of(&binding.duid);
        if let Some(j) = &mut self.journal {
            for ia in &binding.ias {
                j.remember(&binding.duid, ia.kind, ia.iaid);
            }
            j.clients.insert(handle.0);
        }
        self.clients.insert(handle.0, binding);
        handle
    }

    /// Gives `lease` to client `duid` (in its IA `kind` / `iaid`) for up to `desired` seconds,
    /// as the library's rules allow at `now` for `endpoint` (a V6 status:
    /// [`allocate::Endpoint::of_status`]; `lease_mclt`: [`failover_fsm::Status::lease_mclt`]):
    /// [`allocate::may_allocate`] decides whether (§4.2, §4.2.2.1, §8.x.1),
    /// [`lifetime::grant`] how long (§4.4). Returns the handle to send
    /// ([`Handle6::send_binding`](super::Handle6::send_binding)) and the lifetime granted.
    #[allow(clippy::too_many_arguments)]
    pub fn grant(
        &mut self,
        endpoint: &allocate::Endpoint,
        lease_mclt: u32,
        duid: &[u8],
        (kind, iaid): (IaKind, u32),
        lease: LeaseAddr,
        desired: u32,
        own_pool_empty: bool,
        now: UnixTime,
    ) -> Result<(BindingHandle, u32), GrantError> {
        let record = self.lease(lease).ok_or(GrantError::NotInPool)?;
        let key = ClientKey::new(duid, kind, iaid);
        let same_client = record.client == Some(key);
        let request = allocate::Request {
            resource: kind_of(lease),
            last_client: same_client,
            own_pool_empty,
        };
        allocate::may_allocate(endpoint, &record, request, now).map_err(GrantError::Refused)?;
        let acked = record.acked_partner_lifetime.filter(|_| same_client);
        let g = lifetime::grant(endpoint.state, lease_mclt, now, desired, acked);
        let mut granted = record;
        granted.grant(key, &g, now);
        self.records.insert(lease, granted);
        self.touch(lease);
        let handle = self.hold(duid, kind, iaid, (lease, g.granted / 2, g.granted));
        Ok((handle, g.granted))
    }

    /// Client `duid` released `lease` (or it expired: `expired`) at `now`: the record becomes
    /// RELEASED (EXPIRED), its client's binding keeps it until the partner knows (§7.2).
    /// Returns the handle to send; `None` when the client does not hold the lease.
    pub fn release(
        &mut self,
        duid: &[u8],
        lease: LeaseAddr,
        expired: bool,
        now: UnixTime,
    ) -> Option<BindingHandle> {
        let handle = *self.by_duid.get(duid)?;
        let r = self.records.get_mut(&lease)?;
        if r.status != BindingStatus::Active {
            return None;
        }
        if expired {
            r.expire(now);
        } else {
            r.release(now);
        }
        self.touch(lease);
        Some(BindingHandle(handle))
    }

    /// Client `duid`'s IA (`kind`, `iaid`) holds `lease` (with its preferred and valid
    /// lifetimes), and no other client's does.
    fn hold(
        &mut self,
        duid: &[u8],
        kind: IaKind,
        iaid: u32,
        lease: (LeaseAddr, u32, u32),
    ) -> BindingHandle {
        self.touch_holders(lease.0);
        for c in self.clients.values_mut() {
            for ia in &mut c.ias {
                ia.leases.retain(|l| l.0 != lease.0);
            }
        }
        let handle = self.handle_of(duid);
        let c = self.clients.entry(handle.0).or_insert(ClientBinding {
            duid: duid.to_vec(),
            ias: Vec::new(),
        });
        match c.ias.iter_mut().find(|i| i.kind == kind && i.iaid == iaid) {
            Some(ia) => ia.leases.push(lease),
            None => c.ias.push(IaBinding {
                kind,
                iaid,
                leases: vec![lease],
            }),
        }
        if let Some(j) = &mut self.journal {
            j.remember(duid, kind, iaid);
            j.clients.insert(handle.0);
        }
        handle
    }

    fn handle_of(&mut self, duid: &[u8]) -> BindingHandle {
        if let Some(h) = self.by_duid.get(duid) {
            return BindingHandle(*h);
        }
        self.next_handle += 1;
        self.by_duid.insert(duid.to_vec(), self.next_handle);
        if let Some(j) = &mut self.journal {
            j.next_handle = true;
        }
        BindingHandle(self.next_handle)
    }

    /// Stores a lease of the partner's BNDUPD the engine accepted (§7.5.5): the record
    /// through [`LocalLease::store_received`], and the client's binding (`client`: DUID, IA
    /// type, IAID; `None` for a clientless prefix) learns the lease with its lifetimes.
    pub fn store_received(
        &mut self,
        client: Option<(&[u8], IaKind, u32)>,
        lease: (LeaseAddr, u32, u32),
        verdict: &Verdict,
    ) {
        let (addr, preferred, valid) = lease;
        let key = client.map(|(duid, kind, iaid)| ClientKey::new(duid, kind, iaid));
        self.note_prefix(addr);
        self.records
            .entry(addr)
            .or_insert(LocalLease::new(BindingStatus::Free))
            .store_received(key, verdict);
        self.touch(addr);
        if verdict.update_partner {
            self.resend.push(addr);
        }
        match client {
            // The lease joins this client's IA, and leaves any other's.
            Some((duid, kind, iaid)) => {
                self.hold(duid, kind, iaid, (addr, preferred, valid));
            }
            None => {
                self.touch_holders(addr);
                for c in self.clients.values_mut() {
                    for ia in &mut c.ias {
                        ia.leases.retain(|l| l.0 != addr);
                    }
                }
            }
        }
    }

    /// Stores the partner's acceptance of our update of `lease` (§7.7) through
    /// [`LocalLease::store_ack`]: the acknowledged binding-status and partner-lifetime-sent
    /// (a wire time) of its BNDREPLY.
    pub fn store_ack(
        &mut self,
        lease: LeaseAddr,
        acked_status: Option<BindingStatus>,
        partner_lifetime_sent: Option<u32>,
        now: UnixTime,
    ) {
        if self.records.contains_key(&lease) {
            self.touch(lease);
        }
        if let Some(r) = self.records.get_mut(&lease)
            && r.store_ack(
                kind_of(lease),
                acked_status,
                partner_lifetime_sent.map(failover_fsm::v6::wire_time),
                now,
            )
        {
            self.resend.push(lease);
        }
    }

    /// The partner's update of `lease` was refused as outdated (§7.5.4): the partner must be
    /// updated ([`LocalLease::refused_as_outdated`]); its binding goes again now unless the
    /// flag was already set (then: [`MemoryStore6::outdated_at_partner`], on a periodic scan).
    pub fn refused_as_outdated(&mut self, lease: LeaseAddr) {
        if self.records.contains_key(&lease) {
            self.touch(lease);
        }
        if let Some(r) = self.records.get_mut(&lease)
            && r.refused_as_outdated()
        {
            self.resend.push(lease);
        }
    }

    /// The bindings to send again now, each once: those holding a lease the library said
    /// the partner must hear of again since the last call.
    pub fn take_resends(&mut self) -> Vec<BindingHandle> {
        let leases = std::mem::take(&mut self.resend);
        let mut handles: Vec<BindingHandle> =
            leases.iter().filter_map(|l| self.holder(*l)).collect();
        handles.sort_unstable();
        handles.dedup();
        handles
    }

    /// The bindings holding a lease whose partner must be updated
    /// ([`LocalLease::update_partner`]): what a periodic scan sends (§7.5.4).
    pub fn outdated_at_partner(&self) -> Vec<BindingHandle> {
        let mut handles: Vec<BindingHandle> = self
            .records
            .iter()
            .filter(|(_, r)| r.update_partner)
            .filter_map(|(l, _)| self.holder(*l))
            .collect();
        handles.sort_unstable();
        handles.dedup();
        handles
    }

    /// The bindings holding a lease the partner may not have ([`LocalLease::unacknowledged`]):
    /// what an UPDREQ asks for (§5.3.5).
    pub fn unacknowledged(&self) -> Vec<BindingHandle> {
        let mut handles: Vec<BindingHandle> = self
            .records
            .iter()
            .filter(|(_, r)| r.unacknowledged())
            .filter_map(|(l, _)| self.holder(*l))
            .collect();
        handles.sort_unstable();
        handles.dedup();
        handles
    }

    /// Expires every ACTIVE lease whose end passed long enough ago
    /// ([`LocalLease::expiry_due`], §7.2): its record becomes EXPIRED. Returns the bindings to
    /// send. The failover task calls it every second; a DHCP server may call it too, or
    /// [`MemoryStore6::release`] with `expired` for one lease.
    pub fn expire_due(&mut self, now: UnixTime) -> Vec<BindingHandle> {
        let due: Vec<LeaseAddr> = self
            .records
            .iter()
            .filter(|(_, r)| r.expiry_due(now))
            .map(|(l, _)| *l)
            .collect();
        for l in &due {
            if let Some(r) = self.records.get_mut(l) {
                r.expire(now);
            }
            self.touch(*l);
        }
        let mut handles: Vec<BindingHandle> = due.iter().filter_map(|l| self.holder(*l)).collect();
        handles.sort_unstable();
        handles.dedup();
        handles
    }

    /// The binding that carries `lease`: the client binding that holds it, else a delegable
    /// prefix's clientless one ([`MemoryStore6::prefix_handle`], §7.4).
    pub fn holder(&self, lease: LeaseAddr) -> Option<BindingHandle> {
        self.clients
            .iter()
            .find_map(|(h, c)| {
                c.ias
                    .iter()
                    .any(|ia| ia.leases.iter().any(|l| l.0 == lease))
                    .then_some(BindingHandle(*h))
            })
            .or_else(|| self.prefix_handle(lease))
    }

    /// Sets the clock OPTION_LQ_BASE_TIME is written with.
    pub(crate) fn set_now(&mut self, now: UnixTime) {
        self.now = now.0;
    }
}

/// What an address or prefix is, for the ownership rules.
fn kind_of(lease: LeaseAddr) -> owner::Kind {
    match lease {
        LeaseAddr::Address(a) => owner::Kind::Address(a),
        LeaseAddr::Prefix { .. } => owner::Kind::Prefix,
    }
}

impl LeaseLookup6 for MemoryStore6 {
    fn lookup(&self, lease: LeaseAddr) -> Option<LocalLease> {
        self.lease(lease)
    }
}

impl BindingSource6 for MemoryStore6 {
    fn binding<R>(
        &self,
        handle: BindingHandle,
        write: impl FnOnce(&Binding<'_>) -> R,
    ) -> Option<R> {
        if let Some(prefix) = self.prefix_of(handle) {
            return self.prefix_binding(prefix, write);
        }
        let client = self.clients.get(&handle.0)?;
        let base = UnixTime(self.now);
        let leases: Vec<Vec<Lease<'static>>> = client
            .ias
            .iter()
            .map(|ia| {
                ia.leases
                    .iter()
                    .filter_map(|(addr, preferred, valid)| {
                        let r = self.records.get(addr)?;
                        Some(r.update_lease(*addr, *preferred, *valid, base))
                    })
                    .collect()
            })
            .collect();
        let ias: Vec<Ia<'_>> = client
            .ias
            .iter()
            .zip(&leases)
            .filter(|(_, l)| !l.is_empty())
            .map(|(ia, l)| Ia {
                kind: ia.kind,
                iaid: ia.iaid,
                t1: DEFAULT_T1,
                t2: DEFAULT_T1,
                leases: List::from_slice(l),
                status: None,
                extra: Default::default(),
            })
            .collect();
        Some(write(&Binding::Client(ClientData {
            status: None,
            client_id: Some(&client.duid),
            lq_base_time: failover_proto::v6::time::from_unix(u64::from(self.now)),
            vss: None,
            reconfigure: None,
            relay_data: None,
            ias: List::from_slice(&ias),
            extra: Default::default(),
        })))
    }
}
