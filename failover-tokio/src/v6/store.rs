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

/// A batch of the journal taken under the table's lock: its ticket, and its lines (`None`
/// when nothing changed since the last batch: the sync waits for that one).
struct Batch {
    journal: Arc<Journal>,
    ticket: u64,
    lines: Option<(String, bool)>,
}

/// The durable table: a journal in a file ([`MemoryStore6::open`]).
impl MemoryStore6 {
    /// Opens the table journaled in the file at `path`, created empty if there is none. Every
    /// change from then on is written to the journal by [`MemoryStore6::sync`], and the table
    /// read back by the next `open` is the table as of the last sync that returned `Ok`.
    ///
    /// The file is text, one line per record after a header line `failover-v6-leases 1`:
    /// `L` lines hold the [`LocalLease`] of one address or prefix, `C` lines one client's
    /// binding ([`ClientBinding`]: DUID, IAs with IAID, type and each lease's lifetimes) and
    /// its handle, `N` the last handle given out; the last line of a key wins. A last line cut
    /// short by a crash (never acknowledged) is cut off; a file with another header is not
    /// opened (`InvalidData`). Once it holds more than twice as many lines as the table has
    /// records and bindings (plus [`MemoryStore6::COMPACT_SLACK`]), a sync writes the whole
    /// table to `<path>.compact`, fsyncs it and renames it over the journal. Nothing of a
    /// [`LocalLease`] belongs to one conversation with the partner, so nothing is forgotten on
    /// open (unlike v4's `LeaseRecord::restarted`); what the partner may not have of a record
    /// ([`LocalLease::unacknowledged`]) is queued to go again: the bindings holding those
    /// leases are the first [`MemoryStore6::take_resends`] returns.
    ///
    /// Pool leases added after `open` ([`MemoryStore6::add_pool_lease`]) are journaled only
    /// if new: a table reopened keeps their records.
    ///
    /// Blocking (reads the file, may fsync a cut-back): call it before the runtime starts, in
    /// `tokio::task::spawn_blocking`, or let [`Peer6::lease_file`](super::Peer6::lease_file)
    /// do it.
    ///
    /// ```
    /// use std::sync::Mutex;
    /// use failover_proto::v6::LeaseAddr;
    /// use failover_tokio::v6::MemoryStore6;
    ///
    /// let dir = std::env::temp_dir().join(format!("v6-journal-doc-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let path = dir.join("leases6");
    /// let lease = LeaseAddr::Address("2001:db8::1".parse().unwrap());
    ///
    /// let table = Mutex::new(MemoryStore6::open(&path)?);
    /// table.lock().unwrap().add_pool_lease(lease);
    /// MemoryStore6::sync(&table)?; // durable from here: one fsync
    /// drop(table);
    ///
    /// let again = MemoryStore6::open(&path)?; // a restart
    /// assert!(again.lease(lease).is_some());
    /// assert!(again.reopened());
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn open(path: impl AsRef<Path>) -> io::Result<MemoryStore6> {
        let (journal, replayed) = Journal::open(path.as_ref())?;
        let mut store = MemoryStore6::new();
        let mut keys = HashMap::new();
        let count = replayed.lines.len() as u64;
        for line in replayed.lines {
            match line {
                Line::Lease(addr, record, parts) => {
                    if let Some(p) = parts
                        && let Some(k) = record.client
                    {
                        keys.insert(k, p);
                    }
                    store.records.insert(addr, record);
                }
                Line::LeaseGone(addr) => {
                    store.records.remove(&addr);
                }
                Line::Client(h, c) => {
                    for ia in &c.ias {
                        keys.entry(ClientKey::new(&c.duid, ia.kind, ia.iaid))
                            .or_insert_with(|| (c.duid.clone(), ia.kind, ia.iaid));
                    }
                    store.next_handle = store.next_handle.max(h);
                    store.clients.insert(h, c);
                }
                Line::ClientGone(h) => {
                    store.clients.remove(&h);
                }
                Line::NextHandle(n) => store.next_handle = store.next_handle.max(n),
            }
        }
        store.by_duid = store
            .clients
            .iter()
            .map(|(h, c)| (c.duid.clone(), *h))
            .collect();
        // The delegable prefixes get their handles in address order (the journal's is not
        // the pool's).
        let mut prefixes: Vec<LeaseAddr> = store.records.keys().copied().collect();
        prefixes.sort_by_key(|a| match a {
            LeaseAddr::Address(ip) => (0, ip.octets(), 128),
            LeaseAddr::Prefix { prefix, len } => (1, prefix.octets(), *len),
        });
        for p in prefixes {
            store.note_prefix(p);
        }
        if replayed.skipped > 0 {
            tracing::warn!(
                path = %path.as_ref().display(),
                skipped = replayed.skipped,
                "lines of the DHCPv6 lease journal that are not records were skipped"
            );
        }
        // What the partner may not have of our records goes again (the library's rule for a
        // restarted store, `LocalLease::unacknowledged`): through `take_resends`.
        store.resend = store
            .records
            .iter()
            .filter(|(_, r)| r.unacknowledged())
            .map(|(a, _)| *a)
            .collect();
        let mut pending = Pending::new(Arc::new(journal), count);
        pending.keys = keys;
        store.reopened = replayed.existed;
        store.journal = Some(pending);
        Ok(store)
    }

    /// Lines the journal may hold beyond twice the table's records and bindings before a
    /// sync compacts it.
    pub const COMPACT_SLACK: u64 = journal::COMPACT_SLACK;

    /// Makes every change to `table` so far durable: the records and bindings changed since
    /// the last sync, whoever changed them, are appended to the journal (taken under the lock,
    /// written after it is released) and the file fsync'd; a sync that finds nothing changed
    /// (another caller's batch took its changes) waits for that batch's fsync instead (group
    /// commit: concurrent callers share one fsync). Returns `Ok` at once for a table in memory
    /// only.
    ///
    /// The DHCPv6 server calls it after [`MemoryStore6::grant`], [`MemoryStore6::release`] or
    /// [`MemoryStore6::update`] and before it answers its client (REPLY), so that no client
    /// holds a lease a crash would forget; [`Handle6::sync_leases`](super::Handle6::sync_leases)
    /// does it on tokio's blocking pool. The peer syncs the partner's leases itself before it
    /// acknowledges them (BNDREPLY).
    ///
    /// An error if the write or the fsync failed: the changes may not be durable. The table in
    /// memory keeps them, and the next sync writes the whole table again.
    ///
    /// Blocking (write and fsync): not on a runtime worker. Do not hold `table`'s lock when
    /// calling it (it takes the lock briefly).
    pub fn sync(table: &Mutex<MemoryStore6>) -> io::Result<()> {
        let batch = {
            let mut t = table.lock().unwrap_or_else(|p| p.into_inner());
            t.take_batch()
        };
        let Some(b) = batch else {
            return Ok(());
        };
        let lines = b.lines.as_ref().map(|(l, whole)| (l.as_bytes(), *whole));
        b.journal.commit(b.ticket, lines)
    }

    /// Whether the table is journaled (opened with [`MemoryStore6::open`]).
    pub fn is_durable(&self) -> bool {
        self.journal.is_some()
    }

    /// The table was read back from a journal that existed: it is the table saved last, not a
    /// new one (a new file, or a table in memory, says `false`).
    pub fn reopened(&self) -> bool {
        self.reopened
    }

    /// The journal's path, if journaled.
    pub fn journal_path(&self) -> Option<&Path> {
        self.journal.as_ref().map(|j| j.journal.path())
    }

    /// How many times the journal was compacted since it was opened.
    pub fn compactions(&self) -> u64 {
        self.journal.as_ref().map_or(0, |j| j.journal.compactions())
    }

    /// The journal (tests: its failure switch and counters).
    #[cfg(test)]
    pub(super) fn journal(&self) -> Option<Arc<Journal>> {
        self.journal.as_ref().map(|j| j.journal.clone())
    }

    /// `lease` changed: its record goes into the next batch.
    fn touch(&mut self, lease: LeaseAddr) {
        if let Some(j) = &mut self.journal {
            j.leases.insert(lease);
        }
    }

    /// The bindings holding `lease` change (it leaves them).
    fn touch_holders(&mut self, lease: LeaseAddr) {
        if let Some(j) = &mut self.journal {
            for (h, c) in &self.clients {
                if c.ias
                    .iter()
                    .any(|ia| ia.leases.iter().any(|l| l.0 == lease))
                {
                    j.clients.insert(*h);
                }
            }
        }
    }

    /// The next batch of the journal: what changed since the last one, or the whole table
    /// when the file is due for compaction or a write failed. `None` for a table in memory.
    fn take_batch(&mut self) -> Option<Batch> {
        let live = (self.records.len() + self.clients.len()) as u64 + 1;
        let j = self.journal.as_mut()?;
        if j.is_clean() && !j.journal.needs_rewrite() {
            return Some(Batch {
                journal: j.journal.clone(),
                ticket: j.issued,
                lines: None,
            });
        }
        let changed = (j.leases.len() + j.clients.len()) as u64 + u64::from(j.next_handle);
        let whole =
            j.journal.take_rewrite() || j.lines + changed > 2 * live + journal::COMPACT_SLACK;
        let mut out = String::new();
        if whole {
            out.push_str(journal::MAGIC);
            out.push('\n');
            journal::put_next_handle(&mut out, self.next_handle);
            let mut handles: Vec<&u32> = self.clients.keys().collect();
            handles.sort_unstable();
            for h in handles {
                if let Some(c) = self.clients.get(h) {
                    journal::put_client(&mut out, *h, c);
                }
            }
            for (addr, r) in &self.records {
                journal::put_lease(&mut out, *addr, r, r.client.and_then(|k| j.keys.get(&k)));
            }
            // Keys no record names any more are forgotten.
            let named: std::collections::HashSet<ClientKey> =
                self.records.values().filter_map(|r| r.client).collect();
            j.keys.retain(|k, _| named.contains(k));
            j.lines = live;
        } else {
            if j.next_handle {
                journal::put_next_handle(&mut out, self.next_handle);
            }
            for h in &j.clients {
                match self.clients.get(h) {
                    Some(c) => journal::put_client(&mut out, *h, c),
                    None => journal::put_client_gone(&mut out, *h),
                }
            }
            for addr in &j.leases {
                match self.records.get(addr) {
                    Some(r) => journal::put_lease(
                        &mut out,
                        *addr,
                        r,
                        r.client.and_then(|k| j.keys.get(&k)),
                    ),
                    None => journal::put_lease_gone(&mut out, *addr),
                }
            }
            j.lines += changed;
        }
        j.leases.clear();
        j.clients.clear();
        j.next_handle = false;
        j.issued += 1;
        Some(Batch {
            journal: j.journal.clone(),
            ticket: j.issued,
            lines: Some((out, whole)),
        })
    }
}

/// Delegable prefixes and their proportional allocation (§4.2.2): the counts and choices are
/// the library's ([`PrefixCounts::of`], [`movable_candidates`]), and so is each record's change
/// ([`LocalLease::move_prefix`]).
impl MemoryStore6 {
    /// Learns `lease` if it is a delegable prefix (a new one gets the next prefix handle).
    fn note_prefix(&mut self, lease: LeaseAddr) {
        if !matches!(lease, LeaseAddr::Prefix { .. }) || self.prefix_index.contains_key(&lease) {
            return;
        }
        let Ok(i) = u32::try_from(self.prefixes.len()) else {
            return;
        };
        if i >= u32::MAX - PREFIX_HANDLES {
            return; // the namespace is full (two billion prefixes)
        }
        self.prefixes.push(lease);
        self.prefix_index.insert(lease, i);
    }

    /// The handle of the clientless binding of delegable prefix `prefix`: what to send
    /// ([`Handle6::send_binding`](super::Handle6::send_binding)) after changing its record
    /// while no client holds it. `None` for an address or a prefix not in the table.
    pub fn prefix_handle(&self, prefix: LeaseAddr) -> Option<BindingHandle> {
        self.prefix_index
            .get(&prefix)
            .map(|i| BindingHandle(PREFIX_HANDLES + i))
    }

    /// The prefix a handle of [`PREFIX_HANDLES`]' namespace names.
    fn prefix_of(&self, handle: BindingHandle) -> Option<LeaseAddr> {
        let i = handle.0.checked_sub(PREFIX_HANDLES)?;
        self.prefixes.get(usize::try_from(i).ok()?).copied()
    }

    /// Every delegable prefix with its record, in the order learned.
    fn prefix_records(&self) -> impl Iterator<Item = (LeaseAddr, &LocalLease)> {
        self.prefixes
            .iter()
            .filter_map(|p| Some((*p, self.records.get(p)?)))
    }

    /// The available delegable prefixes as the primary counts them ([`PrefixCounts::of`]):
    /// FREE (and PENDING-FREE) the primary's, FREE-BACKUP the secondary's; delegated ones are
    /// nobody's (§4.2.2).
    ///
    /// ```
    /// use std::net::Ipv6Addr;
    /// use failover_fsm::v6::pool::PrefixCounts;
    /// use failover_proto::v6::LeaseAddr;
    /// use failover_tokio::v6::MemoryStore6;
    ///
    /// let mut table = MemoryStore6::new();
    /// for n in 0..4 {
    ///     let prefix = Ipv6Addr::new(0x2001, 0xdb8, 0x100 + n, 0, 0, 0, 0, 0);
    ///     table.add_pool_lease(LeaseAddr::Prefix { prefix, len: 56 });
    /// }
    /// table.add_pool_lease(LeaseAddr::Address(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)));
    /// // Every prefix starts as the primary's; addresses are not counted (§4.2.1).
    /// assert_eq!(table.prefix_counts(), PrefixCounts { free: 4, free_backup: 0 });
    /// ```
    pub fn prefix_counts(&self) -> PrefixCounts {
        PrefixCounts::of(self.prefix_records().map(|(_, r)| r))
    }

    /// The prefixes that carry out `plan` at `now` ([`movable_candidates`]: fewer when some
    /// changed in the last 5 s), taken from the end of the pool: the primary keeps the first
    /// prefixes, which a server delegating in pool order uses first, and asks back the last
    /// ones it gave.
    pub fn prefix_candidates(&self, plan: &PrefixPlan, now: UnixTime) -> Vec<LeaseAddr> {
        let mut backwards: Vec<(LeaseAddr, &LocalLease)> = self.prefix_records().collect();
        backwards.reverse();
        movable_candidates(plan, backwards.iter().map(|(p, r)| Pos(*p, r)), now)
            .map(|c| c.0)
            .collect()
    }

    /// The primary carries out `plan` at `now` (§4.2.2): each of [`Self::prefix_candidates`]
    /// given as FREE-BACKUP or taken back as FREE ([`LocalLease::move_prefix`]) and no longer
    /// in any client's binding. Returns the handles to send, in order (a full engine queue
    /// keeps them in the peer's backlog); fewer than the plan asks for when some prefixes
    /// changed in the last 5 s ([`failover_fsm::v6::pool::movable`]).
    ///
    /// ```
    /// use std::net::Ipv6Addr;
    /// use failover_fsm::{Role, UnixTime};
    /// use failover_fsm::v6::pool::{PoolConfig, PrefixCounts, plan_prefixes};
    /// use failover_proto::v6::{LeaseAddr, ServerState};
    /// use failover_tokio::v6::MemoryStore6;
    ///
    /// let mut table = MemoryStore6::new();
    /// for n in 0..20 {
    ///     let prefix = Ipv6Addr::new(0x2001, 0xdb8, 0x100 + n, 0, 0, 0, 0, 0);
    ///     table.add_pool_lease(LeaseAddr::Prefix { prefix, len: 56 });
    /// }
    /// let counts = table.prefix_counts();
    /// let plan = plan_prefixes(Role::Primary, ServerState::Normal, counts, &PoolConfig::default())
    ///     .expect("the primary in NORMAL plans");
    /// let handles = table.move_prefixes(&plan, UnixTime(1_700_000_000));
    /// assert_eq!(handles.len(), 10);
    /// assert_eq!(table.prefix_counts(), PrefixCounts { free: 10, free_backup: 10 });
    /// assert_eq!(table.prefix_counts(), counts.after(&plan));
    /// ```
    pub fn move_prefixes(&mut self, plan: &PrefixPlan, now: UnixTime) -> Vec<BindingHandle> {
        let mut handles = Vec::new();
        for prefix in self.prefix_candidates(plan, now) {
            let Some(r) = self.records.get_mut(&prefix) else {
                continue;
            };
            if r.move_prefix(now).is_none() {
                continue;
            }
            self.touch(prefix);
            self.touch_holders(prefix);
            for c in self.clients.values_mut() {
                for ia in &mut c.ias {
                    ia.leases.retain(|l| l.0 != prefix);
                }
            }
            handles.extend(self.prefix_handle(prefix));
        }
        handles
    }

    /// The delegable prefixes a new client may get from this server now, in pool order: those
    /// [`allocate::may_allocate`] allows for `endpoint` (a V6 status:
    /// [`allocate::Endpoint::of_status`]) at `now` — outside PARTNER-DOWN only our own
    /// (FREE for the primary, FREE-BACKUP for the secondary, §4.2.2), and none in a state
    /// that gives nothing to new clients (the secondary in NORMAL is renew responsive only,
    /// §8.8.1). In PARTNER-DOWN the partner's follow once ours are all used (§8.4.1). Give one
    /// with [`MemoryStore6::grant`].
    ///
    /// ```
    /// use std::net::Ipv6Addr;
    /// use failover_fsm::v6::allocate::Endpoint;
    /// use failover_fsm::{Role, UnixTime};
    /// use failover_proto::v6::{LeaseAddr, ServerState};
    /// use failover_tokio::v6::MemoryStore6;
    ///
    /// let prefix = |n| LeaseAddr::Prefix { prefix: Ipv6Addr::new(0x2001, 0xdb8, n, 0, 0, 0, 0, 0), len: 56 };
    /// let mut table = MemoryStore6::new();
    /// table.add_pool_lease(prefix(1));
    /// let now = UnixTime(1_700_000_000);
    /// let endpoint = |role, state| Endpoint { role, state, state_since: now, mclt: 3600 };
    /// // A new prefix is the primary's (§4.2.2).
    /// let primary = endpoint(Role::Primary, ServerState::Normal);
    /// assert_eq!(table.delegable_prefixes(&primary, now), [prefix(1)]);
    /// let secondary = endpoint(Role::Secondary, ServerState::CommunicationsInterrupted);
    /// assert!(table.delegable_prefixes(&secondary, now).is_empty());
    /// ```
    pub fn delegable_prefixes(
        &self,
        endpoint: &allocate::Endpoint,
        now: UnixTime,
    ) -> Vec<LeaseAddr> {
        let own_pool_empty = !self.prefix_records().any(|(_, r)| {
            owner::available_to(owner::Kind::Prefix, r.status) == Some(endpoint.role)
        });
        let request = allocate::Request {
            resource: owner::Kind::Prefix,
            last_client: false,
            own_pool_empty,
        };
        self.prefix_records()
            .filter(|(_, r)| allocate::may_allocate(endpoint, r, request, now).is_ok())
            .map(|(p, _)| p)
            .collect()
    }

    /// The handles of the available prefixes no client's binding lists that moved since the
    /// pools were configured (they have a start-time-of-state).
    fn moved_prefix_handles(&self) -> Vec<BindingHandle> {
        let held: std::collections::HashSet<LeaseAddr> = self
            .clients
            .values()
            .flat_map(|c| c.ias.iter().flat_map(|ia| ia.leases.iter().map(|l| l.0)))
            .collect();
        self.prefix_records()
            .filter(|(p, r)| {
                !held.contains(p)
                    && r.start_time_of_state.is_some()
                    && owner::available_to(owner::Kind::Prefix, r.status).is_some()
            })
            .filter_map(|(p, _)| self.prefix_handle(p))
            .collect()
    }

    /// Writes the clientless binding of `prefix` ([`LocalLease::clientless_update`]); `None`
    /// once a client holds it (its client's binding carries it) or it is not available.
    fn prefix_binding<R>(
        &self,
        prefix: LeaseAddr,
        write: impl FnOnce(&Binding<'_>) -> R,
    ) -> Option<R> {
        let r = self.records.get(&prefix)?;
        owner::available_to(owner::Kind::Prefix, r.status)?;
        let lease = r.clientless_update(prefix, UnixTime(self.now));
        Some(write(&Binding::Prefix(lease)))
    }
}

/// A prefix and its record, for the library's choosers (which read the record).
struct Pos<'a>(LeaseAddr, &'a LocalLease);

impl AsRef<LocalLease> for Pos<'_> {
    fn as_ref(&self) -> &LocalLease {
        self.1
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
