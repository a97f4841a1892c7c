//! [`FileStore`]: the [`MemoryStore`] behind an append-only, fsync'd log, its replay on open
//! and its compaction.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use failover_fsm::accept::{LocalBinding, Verdict};
use failover_fsm::policy::{BalancePlan, PoolCounts};
use failover_fsm::record::{Ack, BacklogWalk, Queued, Received, UpdateQueue, Walked};
use failover_fsm::{BindingData, BindingSource, LeaseLookup, Persisted, Role, UnixTime, UpdateId};

use tracing::{debug, warn};

use super::log_format::{Record, decode_record, encode_record, put_lease};
use super::{Inner, Lease, MemoryStore, Storage};

/// A [`MemoryStore`] backed by an append-only log file: [`Storage::sync`] appends the record of
/// every address changed since the last sync, and the failover state if it changed, then
/// fsyncs once, so "acknowledged" means "on disk". Reopening the file replays the log.
///
/// The log is compacted when it holds more than twice the live records (plus
/// [`FileStore::COMPACT_SLACK`]): the whole table is written to `<path>.compact`, fsync'd and
/// renamed over the log, so the file stays within a small multiple of the table however long
/// the server runs. A crash at any point leaves either the old log or the new one, each
/// complete. The copy is written and fsync'd on a thread of its own, outside the log's lock:
/// the sync that starts it returns at once, syncs go on meanwhile, and what they append is
/// added to the copy before the rename. Dropping the store waits for a compaction under way.
#[derive(Debug)]
pub struct FileStore {
    /// Shared with a compaction's thread, which reads the table from it.
    memory: Arc<MemoryStore>,
    log: Arc<Mutex<Log>>,
    /// Signalled when a sync ends: the next in line may end then.
    turn: Condvar,
    path: PathBuf,
    /// The thread of the compaction under way (or of the last one, ended).
    compaction: Mutex<Option<JoinHandle<()>>>,
    /// Tests: a compaction waits here between writing its snapshot and taking the tail.
    #[cfg(test)]
    pub(super) compaction_gate: Mutex<Option<std::sync::mpsc::Receiver<()>>>,
}

/// The open log and how many records it holds.
#[derive(Debug)]
struct Log {
    file: File,
    records: u64,
    compactions: u64,
    /// After a failed compaction: the record count to reach before the next attempt.
    retry_after: u64,
    /// Syncs begun so far: each takes the next number and ends in that order.
    begun: u64,
    /// Syncs ended so far (the number of the next to end).
    ended: u64,
    /// Failed writes and fsyncs so far. A sync that began before a failure fails too: the
    /// records it covers may have been written by the one that failed.
    failures: u64,
    /// While a compaction writes its copy: the records appended since its snapshot (text and
    /// count), which the copy takes before it replaces the log.
    tail: Option<(String, u64)>,
}

impl FileStore {
    /// Opens (or creates) the log at `path` for a pool of `count` addresses from `first`.
    ///
    /// The log is replayed; lines that are not records are skipped, and a torn last line (a
    /// crash in the middle of an append, so never acknowledged) is cut off the file. What
    /// belonged to the last conversation with the partner is forgotten
    /// ([`LeaseRecord::restarted`](failover_fsm::record::LeaseRecord::restarted)).
    ///
    /// Blocking (it reads the log and may fsync a cut-back): call it before the runtime starts
    /// or inside `tokio::task::spawn_blocking`. [`Storage::sync`], the store's only other
    /// fsync, is run by the task on tokio's blocking pool ([`Storage::sync_blocks`]).
    pub fn open(
        path: impl AsRef<Path>,
        role: Role,
        first: Ipv4Addr,
        count: u32,
    ) -> io::Result<Self> {
        FileStore::open_pools(path, role, &[(first, count)])
    }

    /// [`FileStore::open`] for a relationship with several pools (`count` addresses from
    /// `first` each; [`MemoryStore::with_pools`]).
    pub fn open_pools(
        path: impl AsRef<Path>,
        role: Role,
        pools: &[(Ipv4Addr, u32)],
    ) -> io::Result<Self> {
        let path = path.as_ref().to_path_buf();
        let memory = MemoryStore::with_pools(role, pools);
        let mut whole = 0u64;
        let mut records = 0u64;
        // A compaction cut short: the log itself is still whole.
        match std::fs::remove_file(compact_path(&path)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
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
                records += 1;
                // Lines that are not records (not even text) are skipped.
                if let Some(r) = std::str::from_utf8(&line)
                    .ok()
                    .and_then(|l| decode_record(l.trim_end_matches('\n')))
                {
                    replay(&mut g, role, r);
                }
            }
            for (_, l) in g.leases.iter_mut() {
                l.restarted();
            }
            g.reindex();
            g.dirty.clear();
            g.state_dirty = false;
        }
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        if file.metadata()?.len() > whole {
            file.set_len(whole)?;
            file.sync_all()?;
        }
        Ok(FileStore {
            memory: Arc::new(memory),
            log: Arc::new(Mutex::new(Log {
                file,
                records,
                compactions: 0,
                retry_after: 0,
                begun: 0,
                ended: 0,
                failures: 0,
                tail: None,
            })),
            turn: Condvar::new(),
            path,
            compaction: Mutex::new(None),
            #[cfg(test)]
            compaction_gate: Mutex::new(None),
        })
    }

    /// Records the log may hold beyond twice the live ones before it is compacted.
    pub const COMPACT_SLACK: u64 = 1024;

    /// How many times the log was compacted since it was opened (after waiting for a
    /// compaction under way to end).
    pub fn compactions(&self) -> u64 {
        self.wait_compaction();
        self.lock_log().compactions
    }

    /// Waits for the compaction thread, if one was started, to end.
    fn wait_compaction(&self) {
        // Taken out first: the thread needs the log's lock, which a sync may hold while it
        // waits for this one.
        let running = self
            .compaction
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(t) = running {
            let _ = t.join();
        }
    }

    /// Starts a compaction on its own thread: under the log's lock (`log`), opens the tail
    /// that later syncs append to; the thread then reads the table.
    fn start_compaction(&self, mut log: MutexGuard<'_, Log>) {
        log.tail = Some((String::new(), 0));
        drop(log);
        // The previous thread ended its work under the lock, before `tail` could be closed.
        self.wait_compaction();
        let shared = self.log.clone();
        let memory = self.memory.clone();
        let path = self.path.clone();
        #[cfg(test)]
        let gate = self
            .compaction_gate
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        #[cfg(not(test))]
        let gate = None;
        let started = std::thread::Builder::new()
            .name("lease-log-compaction".into())
            .spawn(move || {
                if let Err(e) = compact(&shared, &memory, &path, gate) {
                    warn!(error = %e, path = %path.display(), "lease log compaction failed; the log stays as it was");
                }
            });
        match started {
            Ok(t) => {
                *self.compaction.lock().unwrap_or_else(|p| p.into_inner()) = Some(t);
            }
            Err(_) => {
                let mut log = self.lock_log();
                log.tail = None;
                log.retry_after = log.records + Self::COMPACT_SLACK;
            }
        }
    }

    /// The in-memory view.
    pub fn memory(&self) -> &MemoryStore {
        &self.memory
    }

    /// The log's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every lease record in the log at `path`, oldest first: each address's record as it
    /// stood at each sync since the log was last compacted (a compaction keeps only the
    /// current record of each address). An audit of what a server knew when it acted — a lease granted is
    /// on disk, with the acknowledged and received potential-expiration-times it was granted
    /// under, before its DHCPACK goes out. The file is only read (a live server's log may be
    /// read while it appends): a torn last line is skipped, not cut off as
    /// [`FileStore::open`] does. Lines of the first log format (operations, not records) are
    /// not returned.
    pub fn history(path: impl AsRef<Path>) -> io::Result<Vec<Lease>> {
        let mut reader = BufReader::new(File::open(path)?);
        let mut out = Vec::new();
        let mut line = Vec::new();
        loop {
            line.clear();
            if reader.read_until(b'\n', &mut line)? == 0 || line.last() != Some(&b'\n') {
                return Ok(out);
            }
            if let Some(Record::Lease(l)) = std::str::from_utf8(&line)
                .ok()
                .and_then(|l| decode_record(l.trim_end_matches('\n')))
            {
                out.push(*l);
            }
        }
    }
}

/// Records a compaction reads from the table under its lock at a time: the lock is held for
/// a chunk, not for the whole table, so the task's changes go on meanwhile.
const COMPACT_CHUNK: usize = 2048;

/// A compaction's own thread: writes the table to `<path>.compact` and fsyncs it without the
/// log's lock (the long part: syncs go on, their records also go to the tail); then, under
/// the lock, adds the tail, fsyncs, renames the copy over the log and fsyncs the directory;
/// the log continues in the new file. Every record appended before the rename is in the old
/// log, so a crash before it leaves the old log whole. A failure leaves the old log in use,
/// and the next attempt waits until as many records again were appended.
///
/// The table is read in chunks after the tail opened, so each record's copy is its version of
/// some moment since: as new as the tail's last version of it, or newer and then not yet synced
/// (still to be appended by the sync that covers it, after the copy). The new log replays to
/// every synced version.
fn compact(
    shared: &Mutex<Log>,
    memory: &MemoryStore,
    path: &Path,
    gate: Option<std::sync::mpsc::Receiver<()>>,
) -> io::Result<()> {
    let tmp = compact_path(path);
    let started = std::time::Instant::now();
    let mut out = String::new();
    let mut snapshot = 0u64;
    if let Some(p) = memory.lock().state {
        out.push_str(&encode_record(&Record::State(p)));
        out.push('\n');
        snapshot += 1;
    }
    let mut from = Some([0u8; 4]);
    while let Some(start) = from {
        let g = memory.lock();
        let mut last = None;
        for (a, l) in g.leases.range_from(start).take(COMPACT_CHUNK) {
            put_lease(&mut out, l);
            out.push('\n');
            snapshot += 1;
            last = Some(a);
        }
        drop(g);
        // The address after the last one written; none after 255.255.255.255.
        from = last
            .and_then(|a| u32::from_be_bytes(a).checked_add(1))
            .map(u32::to_be_bytes);
    }
    let written = (|| {
        match std::fs::remove_file(&tmp) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let mut f = OpenOptions::new()
            .append(true)
            .create_new(true)
            .open(&tmp)?;
        f.write_all(out.as_bytes())?;
        f.sync_all()?;
        Ok::<File, io::Error>(f)
    })();
    drop(out);
    let copied = started.elapsed();
    if let Some(gate) = gate {
        let _ = gate.recv();
    }
    let mut log = shared.lock().unwrap_or_else(|p| p.into_inner());
    let locked = std::time::Instant::now();
    let tail = log.tail.take().unwrap_or_default();
    let renamed = written.and_then(|mut f| {
        if tail.1 > 0 {
            f.write_all(tail.0.as_bytes())?;
            f.sync_data()?;
        }
        std::fs::rename(&tmp, path)?;
        Ok(f)
    });
    let f = match renamed {
        Ok(f) => f,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            log.retry_after = log.records + FileStore::COMPACT_SLACK;
            return Err(e);
        }
    };
    // From here the new file is the log (its handle follows the rename).
    log.file = f;
    log.records = snapshot + tail.1;
    log.compactions += 1;
    log.retry_after = 0;
    // Under the lock: no sync appends before the rename is durable.
    if let Some(dir) = path.parent() {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        File::open(dir)?.sync_all()?;
    }
    let (total, under_lock) = (started.elapsed(), locked.elapsed());
    // An operator reading a latency spike wants to know whether a compaction made it.
    if total > SLOW_COMPACTION {
        warn!(records = snapshot, tail = tail.1, copy_ms = copied.as_millis(), under_lock_ms = under_lock.as_millis(), total_ms = total.as_millis(), path = %path.display(), "slow lease log compaction");
    } else {
        debug!(records = snapshot, tail = tail.1, copy_ms = copied.as_millis(), under_lock_ms = under_lock.as_millis(), path = %path.display(), "lease log compacted");
    }
    Ok(())
}

/// A compaction longer than this is logged as a warning.
const SLOW_COMPACTION: std::time::Duration = std::time::Duration::from_secs(1);

/// Where a compaction writes the new log before renaming it over the old one.
pub(super) fn compact_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".compact");
    PathBuf::from(p)
}

/// Applies one log line at start.
fn replay(g: &mut Inner, role: Role, r: Record) {
    match r {
        Record::State(p) => g.state = Some(p),
        Record::Lease(l) => {
            g.leases.insert(l.data.address, *l);
        }
        // The first log format recorded operations; they replay through the same rules.
        Record::Received(b, v) => {
            g.record(b.address, |l| l.apply_received(&b, &v));
        }
        Record::Local(b) => g.record(b.address, |l| l.apply_local(b, true)),
        Record::Acked(a, status, pet) => g.record(a, |l| {
            if l.data.status == status {
                let update = UpdateId(u64::MAX);
                l.queued_again(update);
                let ack = Ack {
                    update,
                    status,
                    client: l.local.client,
                    potential_expiration_time: pet,
                };
                l.apply_ack(&ack, role);
            }
        }),
    }
}

impl LeaseLookup for FileStore {
    fn lookup(&self, address: Ipv4Addr) -> Option<LocalBinding> {
        self.memory.lookup(address)
    }
}

impl BindingSource for FileStore {
    fn binding(&self, address: Ipv4Addr) -> Option<BindingData> {
        self.memory.binding(address)
    }
}

impl Storage for FileStore {
    fn load_state(&self) -> Option<Persisted> {
        self.memory.load_state()
    }

    fn persist_state(&self, state: &Persisted) -> io::Result<()> {
        self.memory.persist_state(state)
    }

    fn commit_binding(&self, binding: &BindingData, verdict: &Verdict) -> io::Result<Received> {
        self.memory.commit_binding(binding, verdict)
    }

    fn record_local(&self, binding: &BindingData) -> io::Result<()> {
        self.memory.record_local(binding)
    }

    fn binding_queued(&self, address: [u8; 4], update: UpdateId, again: bool) -> io::Result<()> {
        self.memory.binding_queued(address, update, again)
    }

    fn binding_acked(&self, address: [u8; 4], ack: &Ack) -> io::Result<()> {
        self.memory.binding_acked(address, ack)
    }

    fn binding_rejected(&self, address: [u8; 4], update: UpdateId) {
        self.memory.binding_rejected(address, update);
    }

    fn begin_walk(&self, walk: &BacklogWalk) {
        self.memory.begin_walk(walk);
    }

    fn walk(&self, walk: &mut BacklogWalk, queue: &mut dyn UpdateQueue) -> Walked {
        self.memory.walk(walk, queue)
    }

    fn send_current(&self, address: [u8; 4], again: bool, queue: &mut dyn UpdateQueue) -> Queued {
        self.memory.send_current(address, again, queue)
    }

    fn pool_counts(&self) -> PoolCounts {
        self.memory.pool_counts()
    }

    fn latest_received_pet(&self) -> Option<UnixTime> {
        self.memory.latest_received_pet()
    }

    fn move_to_partner(&self, plan: &BalancePlan, now: UnixTime) -> io::Result<Vec<BindingData>> {
        self.memory.move_to_partner(plan, now)
    }

    fn pool_count(&self) -> usize {
        self.memory.pool_count()
    }

    fn pool_counts_of(&self, pool: usize) -> PoolCounts {
        self.memory.pool_counts_of(pool)
    }

    fn move_to_partner_in(
        &self,
        pool: usize,
        plan: &BalancePlan,
        now: UnixTime,
    ) -> io::Result<Vec<BindingData>> {
        self.memory.move_to_partner_in(pool, plan, now)
    }

    /// Several syncs may run at once (the task starts the next group's while one runs): each
    /// appends under the log's lock, so records reach the file in the order they were taken,
    /// then fsyncs outside it, so that a sync need not wait for one that began before and
    /// does not cover its records. Syncs end in the order they began, and one that began
    /// before any write or fsync failed fails too: the records it covers may have been written
    /// by the one that failed.
    fn sync(&self) -> io::Result<()> {
        let (number, failures, written) = self.append_for_sync();
        let synced = match written {
            Ok(Some(description)) => description.sync_data(),
            Ok(None) => Ok(()),
            Err(e) => Err(e),
        };
        let mut log = self.lock_log();
        while log.ended != number {
            log = self.turn.wait(log).unwrap_or_else(|p| p.into_inner());
        }
        let result = match synced {
            Err(e) => {
                // Not durable: every record is written again at the next sync.
                log.failures += 1;
                self.memory.lock().mark_all_dirty();
                Err(e)
            }
            Ok(()) if log.failures != failures => Err(io::Error::other(
                "an earlier sync of the lease log failed; its records are written again",
            )),
            Ok(()) => Ok(()),
        };
        log.ended += 1;
        self.turn.notify_all();
        if result.is_ok() && log.tail.is_none() {
            let live = self.memory.lock().leases.len() as u64 + 1;
            if log.records > (2 * live + Self::COMPACT_SLACK).max(log.retry_after) {
                // What was appended is durable either way; the compaction goes on aside.
                self.start_compaction(log);
            }
        }
        result
    }
}

impl Drop for FileStore {
    /// Waits for a compaction under way: the store reopened at once must find the log whole
    /// and no thread still renaming over it.
    fn drop(&mut self) {
        self.wait_compaction();
    }
}

impl FileStore {
    fn lock_log(&self) -> MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A sync's first half, under the log's lock: takes its number and the failure count, and
    /// appends every changed record. Returns, if it wrote, a file description of the log
    /// opened before the write, to fsync: Linux reports a write-back error once to each open
    /// description, so a description of its own sees any error on the pages it wrote (a
    /// shared one could have reported it to an overlapping sync instead). Records written by
    /// an earlier sync are that sync's to make durable; this one ends after it.
    fn append_for_sync(&self) -> (u64, u64, io::Result<Option<File>>) {
        let mut log = self.lock_log();
        let number = log.begun;
        log.begun += 1;
        let failures = log.failures;
        let written = self.append(&mut log);
        if written.is_err() {
            log.failures += 1;
        }
        (number, failures, written)
    }

    /// Appends the record of every address changed since the last sync, and the state if it
    /// changed; `None` if there was nothing to write.
    fn append(&self, log: &mut Log) -> io::Result<Option<File>> {
        let (records, state) = self.memory.take_dirty();
        if records.is_empty() && state.is_none() {
            return Ok(None);
        }
        // With write access: some systems flush only a file opened for writing.
        let description = OpenOptions::new().append(true).open(&self.path);
        let appended = records.len() as u64 + u64::from(state.is_some());
        let mut out = String::new();
        if let Some(p) = state {
            out.push_str(&encode_record(&Record::State(p)));
            out.push('\n');
        }
        for (_, l) in &records {
            put_lease(&mut out, l);
            out.push('\n');
        }
        let f = &mut log.file;
        let written = description.and_then(|d| {
            let len = f.metadata()?.len();
            let w = f.write_all(out.as_bytes());
            if w.is_err() {
                // No torn line stays in the middle of the log.
                let _ = f.set_len(len);
            }
            w.map(|()| d)
        });
        match written {
            Ok(d) => {
                log.records += appended;
                if let Some((text, count)) = &mut log.tail {
                    text.push_str(&out);
                    *count += appended;
                }
                Ok(Some(d))
            }
            Err(e) => {
                // Every record is written again at the next attempt.
                self.memory.lock().mark_all_dirty();
                Err(e)
            }
        }
    }
}
