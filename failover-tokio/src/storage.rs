//! Where a failover peer keeps its lease database and its failover state: the [`Storage`]
//! trait, an in-memory store and an append-only file store that is fsync'd before anything is
//! acknowledged.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use failover_fsm::accept::{ClientIdentity, LocalBinding, Verdict, freed_status, own_free_status};
use failover_fsm::policy::{BalancePlan, PoolCounts};
use failover_fsm::{
    BindingData, BindingStatus, LeaseLookup, Persisted, Role, ServerState, UnixTime,
};
use failover_proto::IpFlags;

/// The lease database and failover state of one peer, as the failover task needs them.
///
/// Every method that changes something must have made the change durable when it returns
/// `Ok`: the task acknowledges a partner's binding (BNDACK) and announces a state (STATE) only
/// after that (draft §7.2, §9.2).
pub trait Storage: LeaseLookup + Send + Sync + 'static {
    /// The failover state persisted last, if any (read at start).
    fn load_state(&self) -> Option<Persisted>;
    /// Persists the failover state.
    fn persist_state(&self, state: &Persisted) -> io::Result<()>;
    /// Stores a binding received from the partner as `verdict` says. Returns the store's own
    /// record when it kept that instead: the partner sent again an update applied already
    /// (its BNDACK was lost with a connection) after our record changed. The engine took the
    /// update as newer and dropped our queued copy, so the task queues the record again.
    fn commit_binding(
        &self,
        binding: &BindingData,
        verdict: &Verdict,
    ) -> io::Result<Option<BindingData>>;
    /// Records a change made by this server (a lease granted, released, expired...), to be sent
    /// to the partner.
    fn record_local(&self, binding: &BindingData) -> io::Result<()>;
    /// The partner acknowledged our update of `address` carrying `status`.
    fn binding_acked(
        &self,
        address: [u8; 4],
        status: BindingStatus,
        potential_expiration: Option<UnixTime>,
    ) -> io::Result<()>;
    /// Every binding (for UPDREQALL), or only those the partner has not acknowledged (UPDREQ,
    /// the backlog on entering NORMAL).
    fn bindings(&self, unacked_only: bool) -> Vec<BindingData>;
    /// Available addresses per pool, for balancing.
    fn pool_counts(&self) -> PoolCounts;
    /// Moves `plan.to_move()` of our available addresses to the partner's pool and returns the
    /// bindings to send.
    fn move_to_partner(&self, plan: &BalancePlan) -> io::Result<Vec<BindingData>>;
}

/// What the store keeps per address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The inputs of the acceptance and MCLT rules.
    pub local: LocalBinding,
    /// The binding as last stored.
    pub data: BindingData,
    /// The partner has this version (it acknowledged it, or sent it).
    pub partner_has_it: bool,
    /// The last binding received from the partner for the address and applied, to recognise
    /// it when the partner sends it again (its BNDACK was lost with a connection).
    pub last_received: Option<BindingData>,
}

#[derive(Debug, Default)]
struct Inner {
    leases: BTreeMap<[u8; 4], Lease>,
    state: Option<Persisted>,
}

/// A lease store in memory: the reference for tests and examples. Not durable across
/// process restarts; see [`FileStore`] for that.
#[derive(Debug)]
pub struct MemoryStore {
    role: Role,
    inner: Mutex<Inner>,
}

impl MemoryStore {
    /// A store whose pool is `count` addresses from `first`, all FREE (all addresses start on
    /// the primary, draft §5.4).
    pub fn new(role: Role, first: Ipv4Addr, count: u32) -> Self {
        let mut inner = Inner::default();
        for i in 0..count {
            let a = Ipv4Addr::from(u32::from(first).wrapping_add(i));
            inner.leases.insert(a.octets(), fresh(a));
        }
        MemoryStore {
            role,
            inner: Mutex::new(inner),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave a lease half-written (each update is one
        // assignment), so a poisoned lock is still consistent.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A copy of every lease, by address.
    pub fn snapshot(&self) -> BTreeMap<[u8; 4], Lease> {
        self.lock().leases.clone()
    }

    /// The lease of `address`.
    pub fn get(&self, address: Ipv4Addr) -> Option<Lease> {
        self.lock().leases.get(&address.octets()).cloned()
    }

    /// Counts addresses with `status`.
    pub fn count(&self, status: BindingStatus) -> usize {
        self.lock()
            .leases
            .values()
            .filter(|l| l.local.status == status)
            .count()
    }

    /// An address this server may give to a new client now (FREE on the primary, BACKUP on
    /// the secondary), lowest first.
    pub fn free_address(&self) -> Option<Ipv4Addr> {
        let own = own_free_status(self.role);
        self.lock()
            .leases
            .iter()
            .find(|(_, l)| l.local.status == own)
            .map(|(a, _)| Ipv4Addr::from(*a))
    }

    /// Addresses the partner may give to new clients: ours in PARTNER-DOWN after MCLT.
    pub fn partner_free_address(&self) -> Option<Ipv4Addr> {
        let theirs = own_free_status(match self.role {
            Role::Primary => Role::Secondary,
            Role::Secondary => Role::Primary,
        });
        self.lock()
            .leases
            .iter()
            .find(|(_, l)| l.local.status == theirs)
            .map(|(a, _)| Ipv4Addr::from(*a))
    }

    /// Forgets everything (a server that lost its storage).
    pub fn wipe(&self) {
        let mut g = self.lock();
        g.state = None;
        for (a, l) in g.leases.iter_mut() {
            *l = fresh(Ipv4Addr::from(*a));
        }
    }

    /// Applies one change; returns our record when it stays over a re-sent update.
    fn apply(inner: &mut Inner, role: Role, record: &Record) -> Option<BindingData> {
        match record {
            Record::State(p) => inner.state = Some(*p),
            Record::Received(b, v) => {
                let wire = b.to_wire();
                let e = inner
                    .leases
                    .entry(b.address)
                    .or_insert_with(|| fresh(b.ip()));
                if e.last_received.as_ref() == Some(b) && !e.partner_has_it {
                    // The partner sent again an update we applied already, and we have
                    // changed the record since: ours is newer and stays (the acceptance
                    // rules cannot tell when the times tie; found by the pair fuzz target).
                    return Some(e.data.clone());
                }
                e.last_received = Some(b.clone());
                let mut data = b.clone();
                data.status = v.store_as;
                // Re-sent later (UPDREQALL): carry the merged expiry, which may be a longer
                // lease we granted the same client than the one the partner reported (§7.1.5).
                data.lease_expiration_time = v.lease_expiration.or(data.lease_expiration_time);
                e.local.status = v.store_as;
                e.local.client = ClientIdentity::of(&wire);
                e.local.cltt = b.client_last_transaction_time.or(e.local.cltt);
                e.local.lease_expiration = v.lease_expiration;
                e.local.start_time_of_state = b.start_time_of_state;
                e.local.received_pet = v.received_pet;
                e.local.partner_status = Some(v.store_as);
                e.local.reserved = b.ip_flags.contains(IpFlags::RESERVED);
                if v.superseded_xid.is_some() {
                    e.local.in_flight = None;
                }
                e.data = data;
                e.partner_has_it = true;
            }
            Record::Local(b) => {
                let wire = b.to_wire();
                let e = inner
                    .leases
                    .entry(b.address)
                    .or_insert_with(|| fresh(b.ip()));
                e.local.status = b.status;
                e.local.client = ClientIdentity::new(wire.client_identifier, wire.hardware_address);
                e.local.cltt = b.client_last_transaction_time.or(e.local.cltt);
                e.local.lease_expiration = b.lease_expiration_time;
                e.local.start_time_of_state = b.start_time_of_state;
                e.local.sent_pet = b.potential_expiration_time.or(e.local.sent_pet);
                e.data = b.clone();
                e.partner_has_it = false;
            }
            Record::Acked(address, status, pet) => {
                if let Some(e) = inner.leases.get_mut(address) {
                    if e.data.status != *status {
                        return None; // a later change is waiting to be sent
                    }
                    e.local.acked_pet = pet.or(e.local.acked_pet);
                    e.local.partner_status = Some(*status);
                    e.local.in_flight = None;
                    e.partner_has_it = true;
                    if matches!(
                        status,
                        BindingStatus::Expired | BindingStatus::Released | BindingStatus::Reset
                    ) {
                        // The partner knows it is gone: the address is free again (§5.11).
                        let freed = freed_status(role, e.local.reserved);
                        e.local.status = freed;
                        e.data.status = freed;
                    }
                }
            }
        }
        None
    }
}

fn fresh(a: Ipv4Addr) -> Lease {
    Lease {
        local: LocalBinding::new(BindingStatus::Free),
        data: BindingData::new(a, BindingStatus::Free),
        partner_has_it: false,
        last_received: None,
    }
}

/// One change to the store, as kept in the file store's log.
#[derive(Debug, Clone)]
enum Record {
    State(Persisted),
    Received(BindingData, Verdict),
    Local(BindingData),
    Acked([u8; 4], BindingStatus, Option<UnixTime>),
}

impl LeaseLookup for MemoryStore {
    fn lookup(&self, address: Ipv4Addr) -> Option<LocalBinding> {
        self.lock().leases.get(&address.octets()).map(|l| l.local)
    }
}

impl Storage for MemoryStore {
    fn load_state(&self) -> Option<Persisted> {
        self.lock().state
    }

    fn persist_state(&self, state: &Persisted) -> io::Result<()> {
        Self::apply(&mut self.lock(), self.role, &Record::State(*state));
        Ok(())
    }

    fn commit_binding(
        &self,
        binding: &BindingData,
        verdict: &Verdict,
    ) -> io::Result<Option<BindingData>> {
        let r = Record::Received(binding.clone(), *verdict);
        Ok(Self::apply(&mut self.lock(), self.role, &r))
    }

    fn record_local(&self, binding: &BindingData) -> io::Result<()> {
        Self::apply(&mut self.lock(), self.role, &Record::Local(binding.clone()));
        Ok(())
    }

    fn binding_acked(
        &self,
        address: [u8; 4],
        status: BindingStatus,
        pet: Option<UnixTime>,
    ) -> io::Result<()> {
        Self::apply(
            &mut self.lock(),
            self.role,
            &Record::Acked(address, status, pet),
        );
        Ok(())
    }

    fn bindings(&self, unacked_only: bool) -> Vec<BindingData> {
        self.lock()
            .leases
            .values()
            .filter(|l| !unacked_only || !l.partner_has_it)
            .map(|l| l.data.clone())
            .collect()
    }

    fn pool_counts(&self) -> PoolCounts {
        let g = self.lock();
        let count = |s| {
            let n = g
                .leases
                .values()
                .filter(|l| l.local.status == s && !l.local.reserved)
                .count();
            u32::try_from(n).unwrap_or(u32::MAX)
        };
        PoolCounts {
            free: count(BindingStatus::Free),
            backup: count(BindingStatus::Backup),
        }
    }

    fn move_to_partner(&self, plan: &BalancePlan) -> io::Result<Vec<BindingData>> {
        let own = own_free_status(self.role);
        let mut g = self.lock();
        // Never-used addresses from the top of the pool first (ISC moves the oldest).
        let chosen: Vec<[u8; 4]> = g
            .leases
            .iter()
            .rev()
            .filter(|(_, l)| l.local.status == own && !l.local.reserved)
            .take(plan.to_move() as usize)
            .map(|(a, _)| *a)
            .collect();
        let mut out = Vec::with_capacity(chosen.len());
        for a in chosen {
            if let Some(l) = g.leases.get(&a) {
                let mut b = l.data.clone();
                b.status = plan.give_as;
                out.push(b);
            }
        }
        for b in &out {
            Self::apply(&mut g, self.role, &Record::Local(b.clone()));
        }
        Ok(out)
    }
}

/// A [`MemoryStore`] backed by an append-only log file: every change is appended and the file
/// is fsync'd before the call returns, so "acknowledged" means "on disk". Reopening the file
/// replays the log.
#[derive(Debug)]
pub struct FileStore {
    memory: MemoryStore,
    file: Mutex<File>,
    path: PathBuf,
}

impl FileStore {
    /// Opens (or creates) the log at `path` for a pool of `count` addresses from `first`.
    ///
    /// The log is replayed; lines that are not records are skipped, and a torn last line (a
    /// crash in the middle of an append, so never acknowledged) is cut off the file.
    pub fn open(
        path: impl AsRef<Path>,
        role: Role,
        first: Ipv4Addr,
        count: u32,
    ) -> io::Result<Self> {
        let path = path.as_ref().to_path_buf();
        let memory = MemoryStore::new(role, first, count);
        let mut whole = 0u64;
        if let Ok(f) = File::open(&path) {
            let mut g = memory.lock();
            let mut reader = BufReader::new(f);
            let mut line = Vec::new();
            loop {
                line.clear();
                if reader.read_until(b'\n', &mut line)? == 0 {
                    break;
                }
                if line.last() != Some(&b'\n') {
                    // A torn last line (crash mid-write): nobody acknowledged it. Skipped, and
                    // cut off below, or the next record appended would be glued to it and lost
                    // at the next replay.
                    break;
                }
                whole += line.len() as u64;
                // Lines that are not records (not even text) are skipped.
                if let Some(r) = std::str::from_utf8(&line)
                    .ok()
                    .and_then(|l| decode_record(l.trim_end_matches('\n')))
                {
                    MemoryStore::apply(&mut g, role, &r);
                }
            }
        }
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        if file.metadata()?.len() > whole {
            file.set_len(whole)?;
            file.sync_all()?;
        }
        Ok(FileStore {
            memory,
            file: Mutex::new(file),
            path,
        })
    }

    /// The in-memory view.
    pub fn memory(&self) -> &MemoryStore {
        &self.memory
    }

    /// The log's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn append(&self, r: &Record) -> io::Result<Option<BindingData>> {
        let mut line = encode_record(r);
        line.push('\n');
        let mut f = self.file.lock().unwrap_or_else(|p| p.into_inner());
        f.write_all(line.as_bytes())?;
        f.sync_data()?;
        Ok(MemoryStore::apply(
            &mut self.memory.lock(),
            self.memory.role,
            r,
        ))
    }
}

impl LeaseLookup for FileStore {
    fn lookup(&self, address: Ipv4Addr) -> Option<LocalBinding> {
        self.memory.lookup(address)
    }
}

impl Storage for FileStore {
    fn load_state(&self) -> Option<Persisted> {
        self.memory.load_state()
    }

    fn persist_state(&self, state: &Persisted) -> io::Result<()> {
        self.append(&Record::State(*state)).map(drop)
    }

    fn commit_binding(
        &self,
        binding: &BindingData,
        verdict: &Verdict,
    ) -> io::Result<Option<BindingData>> {
        self.append(&Record::Received(binding.clone(), *verdict))
    }

    fn record_local(&self, binding: &BindingData) -> io::Result<()> {
        self.append(&Record::Local(binding.clone())).map(drop)
    }

    fn binding_acked(
        &self,
        address: [u8; 4],
        status: BindingStatus,
        pet: Option<UnixTime>,
    ) -> io::Result<()> {
        self.append(&Record::Acked(address, status, pet)).map(drop)
    }

    fn bindings(&self, unacked_only: bool) -> Vec<BindingData> {
        self.memory.bindings(unacked_only)
    }

    fn pool_counts(&self) -> PoolCounts {
        self.memory.pool_counts()
    }

    fn move_to_partner(&self, plan: &BalancePlan) -> io::Result<Vec<BindingData>> {
        let moved = self.memory.move_to_partner(plan)?;
        // Log them too (the memory view already has them).
        let mut f = self.file.lock().unwrap_or_else(|p| p.into_inner());
        for b in &moved {
            let mut line = encode_record(&Record::Local(b.clone()));
            line.push('\n');
            f.write_all(line.as_bytes())?;
        }
        f.sync_data()?;
        Ok(moved)
    }
}

// ----- the log format: one record per line, space-separated fields, '-' for none -----

fn opt_u32(v: Option<UnixTime>) -> String {
    v.map_or_else(|| "-".to_string(), |t| t.0.to_string())
}

fn hex(b: &[u8]) -> String {
    if b.is_empty() {
        return "=".to_string();
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn binding_fields(b: &BindingData) -> String {
    let (htype, hw) = b
        .hardware_address
        .as_ref()
        .map_or(("-".to_string(), "-".to_string()), |(t, a)| {
            (t.to_string(), hex(a))
        });
    format!(
        "{} {} {} {} {} {} {} {} {} {} {}",
        Ipv4Addr::from(b.address),
        u8::from(b.status),
        b.client_identifier
            .as_ref()
            .map_or_else(|| "-".to_string(), |c| hex(c)),
        htype,
        hw,
        opt_u32(b.lease_expiration_time),
        opt_u32(b.potential_expiration_time),
        opt_u32(b.start_time_of_state),
        opt_u32(b.client_last_transaction_time),
        b.ip_flags.0,
        "end"
    )
}

fn encode_record(r: &Record) -> String {
    match r {
        Record::State(p) => format!(
            "state {} {} {} {}{}",
            u8::from(p.state),
            p.since.0,
            p.mclt.map_or_else(|| "-".to_string(), |m| m.to_string()),
            opt_u32(p.last_operational),
            // Only while a refresh is under way, so older logs read the same.
            if p.lease_table_lost { " lost" } else { "" }
        ),
        Record::Received(b, v) => format!(
            "recv {} {} {} {} {} end",
            binding_fields(b),
            u8::from(v.store_as),
            opt_u32(v.lease_expiration),
            opt_u32(v.received_pet),
            v.superseded_xid
                .map_or_else(|| "-".to_string(), |x| x.to_string()),
        ),
        Record::Local(b) => format!("local {}", binding_fields(b)),
        Record::Acked(a, s, pet) => format!(
            "acked {} {} {}",
            Ipv4Addr::from(*a),
            u8::from(*s),
            opt_u32(*pet)
        ),
    }
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s == "=" {
        return Some(Vec::new());
    }
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn time(s: &str) -> Option<Option<UnixTime>> {
    if s == "-" {
        Some(None)
    } else {
        s.parse().ok().map(|t| Some(UnixTime(t)))
    }
}

fn decode_binding<'a>(f: &mut impl Iterator<Item = &'a str>) -> Option<BindingData> {
    let addr: Ipv4Addr = f.next()?.parse().ok()?;
    let status = BindingStatus::from(f.next()?.parse::<u8>().ok()?);
    let mut b = BindingData::new(addr, status);
    let cid = f.next()?;
    if cid != "-" {
        b.client_identifier = Some(heapless::Vec::from_slice(&unhex(cid)?).ok()?);
    }
    let (htype, hw) = (f.next()?, f.next()?);
    if htype != "-" {
        b.hardware_address = Some((
            htype.parse().ok()?,
            heapless::Vec::from_slice(&unhex(hw)?).ok()?,
        ));
    }
    b.lease_expiration_time = time(f.next()?)?;
    b.potential_expiration_time = time(f.next()?)?;
    b.start_time_of_state = time(f.next()?)?;
    b.client_last_transaction_time = time(f.next()?)?;
    b.ip_flags = IpFlags(f.next()?.parse().ok()?);
    (f.next()? == "end").then_some(b)
}

fn decode_record(line: &str) -> Option<Record> {
    let mut f = line.split(' ');
    let r = match f.next()? {
        "state" => Record::State(Persisted {
            state: ServerState::from(f.next()?.parse::<u8>().ok()?),
            since: UnixTime(f.next()?.parse().ok()?),
            mclt: match f.next()? {
                "-" => None,
                m => Some(m.parse().ok()?),
            },
            last_operational: time(f.next()?)?,
            lease_table_lost: match f.next() {
                None => false,
                Some("lost") => true,
                Some(_) => return None,
            },
        }),
        "recv" => {
            let b = decode_binding(&mut f)?;
            let v = Verdict {
                store_as: BindingStatus::from(f.next()?.parse::<u8>().ok()?),
                lease_expiration: time(f.next()?)?,
                received_pet: time(f.next()?)?,
                client_changed: false,
                superseded_xid: match f.next()? {
                    "-" => None,
                    x => Some(x.parse().ok()?),
                },
                // Not logged: what was outstanding matters only when the verdict is applied.
                ours_in_flight: false,
            };
            (f.next()? == "end").then_some(())?;
            Record::Received(b, v)
        }
        "local" => Record::Local(decode_binding(&mut f)?),
        "acked" => Record::Acked(
            f.next()?.parse::<Ipv4Addr>().ok()?.octets(),
            BindingStatus::from(f.next()?.parse::<u8>().ok()?),
            time(f.next()?)?,
        ),
        _ => return None,
    };
    f.next().is_none().then_some(r)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_through_the_log_format() {
        let mut b = BindingData::new(Ipv4Addr::new(192, 0, 2, 7), BindingStatus::Active)
            .with_client(Some(&[1, 2, 3]), 1, &[0xaa, 0xbb, 0xcc, 0, 1, 2])
            .unwrap();
        b.lease_expiration_time = Some(UnixTime(100));
        b.potential_expiration_time = Some(UnixTime(150));
        b.ip_flags = IpFlags::RESERVED;
        let v = Verdict {
            store_as: BindingStatus::Active,
            lease_expiration: Some(UnixTime(100)),
            received_pet: None,
            client_changed: false,
            superseded_xid: Some(9),
            ours_in_flight: false,
        };
        for r in [
            Record::State(Persisted {
                state: ServerState::RecoverWait,
                since: UnixTime(5),
                mclt: Some(60),
                last_operational: None,
                lease_table_lost: false,
            }),
            Record::State(Persisted {
                state: ServerState::Recover,
                since: UnixTime(7),
                mclt: None,
                last_operational: Some(UnixTime(6)),
                lease_table_lost: true,
            }),
            Record::Received(b.clone(), v),
            Record::Local(b.clone()),
            Record::Acked([192, 0, 2, 7], BindingStatus::Expired, Some(UnixTime(3))),
        ] {
            let line = encode_record(&r);
            let back = decode_record(&line).unwrap();
            assert_eq!(encode_record(&back), line);
        }
        // A torn line is skipped.
        let line = encode_record(&Record::Local(b));
        assert!(decode_record(&line[..line.len() - 2]).is_none());
    }

    /// A crash in the middle of an append leaves a torn last line; the records appended after
    /// the restart must not be glued to it (and lost at the next replay).
    #[test]
    fn an_update_sent_again_does_not_undo_a_newer_change() {
        let a = Ipv4Addr::new(192, 0, 2, 3);
        let store = MemoryStore::new(Role::Primary, Ipv4Addr::new(192, 0, 2, 0), 8);
        let mut released = BindingData::new(a, BindingStatus::Released)
            .with_client(None, 1, &[2, 0, 0, 0, 0, 3])
            .unwrap();
        released.client_last_transaction_time = Some(UnixTime(50));
        let v = Verdict {
            store_as: BindingStatus::Free,
            lease_expiration: None,
            received_pet: None,
            client_changed: false,
            superseded_xid: None,
            ours_in_flight: false,
        };
        assert_eq!(store.commit_binding(&released, &v).unwrap(), None);
        assert_eq!(store.get(a).unwrap().local.status, BindingStatus::Free);
        // Our change after it: the address goes to the secondary's pool.
        let backup = BindingData::new(a, BindingStatus::Backup);
        store.record_local(&backup).unwrap();
        // The partner's BNDACK for its RELEASED was lost; it sends it again. Ours is handed
        // back to be queued again (the engine dropped its copy as older).
        assert_eq!(store.commit_binding(&released, &v).unwrap(), Some(backup));
        let l = store.get(a).unwrap();
        assert_eq!(
            (l.local.status, l.data.status),
            (BindingStatus::Backup, BindingStatus::Backup)
        );
        assert!(!l.partner_has_it, "ours still goes out");
        // A different update from the partner is applied as usual.
        let mut again = released.clone();
        again.client_last_transaction_time = Some(UnixTime(60));
        assert_eq!(store.commit_binding(&again, &v).unwrap(), None);
        assert_eq!(store.get(a).unwrap().local.status, BindingStatus::Free);
    }

    #[test]
    fn a_torn_last_line_does_not_swallow_the_next_record() {
        let path =
            std::env::temp_dir().join(format!("failover-storage-torn-{}.log", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let first = Ipv4Addr::new(192, 0, 2, 0);
        let mut a = BindingData::new(Ipv4Addr::new(192, 0, 2, 1), BindingStatus::Active)
            .with_client(None, 1, &[2, 0, 0, 0, 0, 1])
            .unwrap();
        a.lease_expiration_time = Some(UnixTime(1000));
        let verdict = |b: &BindingData| Verdict {
            store_as: b.status,
            lease_expiration: b.lease_expiration_time,
            received_pet: None,
            client_changed: false,
            superseded_xid: None,
            ours_in_flight: false,
        };
        let store = FileStore::open(&path, Role::Secondary, first, 4).unwrap();
        store.commit_binding(&a, &verdict(&a)).unwrap();
        drop(store);
        // The crash: half of the next record reached the file, and some bytes that are not
        // even text.
        let mut b = a.clone();
        b.address = [192, 0, 2, 2];
        let torn = encode_record(&Record::Received(b.clone(), verdict(&b)));
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(torn.as_bytes().get(..torn.len() / 2).unwrap())
            .unwrap();
        f.write_all(&[0xff, 0xfe]).unwrap();
        drop(f);
        // Restart: what was acknowledged is there, the torn record is not; then a new record.
        let store = FileStore::open(&path, Role::Secondary, first, 4).unwrap();
        assert_eq!(store.memory().get(a.ip()).unwrap().data, a);
        assert_eq!(
            store.memory().get(b.ip()).unwrap().data.status,
            BindingStatus::Free
        );
        let mut c = a.clone();
        c.address = [192, 0, 2, 3];
        store.commit_binding(&c, &verdict(&c)).unwrap();
        drop(store);
        // The next restart still has it.
        let store = FileStore::open(&path, Role::Secondary, first, 4).unwrap();
        assert_eq!(store.memory().get(a.ip()).unwrap().data, a);
        assert_eq!(store.memory().get(c.ip()).unwrap().data, c);
        drop(store);
        let _ = std::fs::remove_file(&path);
    }
}
