//! The journal behind a durable [`MemoryStore6`](super::MemoryStore6) (RFC 8156's lease table
//! kept across restarts, §8.3: a server restarted with its table needs no UPDREQALL).
//!
//! # File format
//!
//! Text, one record per line, fields separated by one space, `-` for an absent value, times
//! in seconds since the Unix epoch (the table's own clock). The first line is the header
//!
//! ```text
//! failover-v6-leases 1
//! ```
//!
//! (format version 1); a file whose first whole line is anything else is not opened. Every
//! other line is the whole state of one key after a change, so replaying the file in order and
//! keeping the last line of each key gives the table:
//!
//! | line | meaning |
//! |---|---|
//! | `L <lease> <status> <client> <cltt> <start> <state-exp> <exp> <acked-pl> <pl> <raw-clt> <sent> <outdated>` | the [`LocalLease`] of `<lease>` |
//! | `R <lease>` | `<lease>` left the table |
//! | `C <handle> <duid> <ia>...` | the [`ClientBinding`](super::ClientBinding) with handle `<handle>` |
//! | `X <handle>` | that binding left the table |
//! | `N <next>` | the last handle given out (handles are not reused) |
//!
//! * `<lease>`: an address (`2001:db8::5`) or a prefix with its length (`2001:db8:100::/56`).
//! * `<status>`: the binding-status code (RFC 8156's numbers: 1 ACTIVE ... 8 RESET).
//! * `<client>`: `-` (none: a clientless prefix), `<duid>/<kind>/<iaid>`, or `?` when the
//!   record names a client whose DUID the table never saw (a record given to
//!   [`MemoryStore6::update`](super::MemoryStore6::update) for an IA outside the binding it
//!   came with): replayed without a client.
//! * `<duid>`: the DUID in lowercase hex; `<kind>`: `na`, `ta` or `pd`.
//! * `<cltt>` ... `<raw-clt>`: client-last-transaction-time, start-time-of-state,
//!   state-expiration-time, expiration-time, acked-partner-lifetime, partner-lifetime,
//!   partner-raw-clt-time (§7.3).
//! * `<sent>`: `1` if the current status was sent to the partner
//!   ([`LocalLease::update_sent`]), else `0`; `<outdated>`: `1` if the partner must be updated
//!   ([`LocalLease::update_partner`], §7.5.4), else `0`.
//! * `<ia>`: `<kind>:<iaid>:` then the IA's leases separated by `,`, each
//!   `<lease>=<preferred>=<valid>` (lifetimes in seconds); an IA with no lease is `<kind>:<iaid>:`.
//!
//! # Writing
//!
//! A change to the table marks its key; a sync ([`MemoryStore6::sync`](super::MemoryStore6::sync))
//! takes every marked key, under the table's lock, as one batch with the next ticket number —
//! the changes of every caller so far, so concurrent callers share the batch and its fsync
//! (group commit): a sync that finds nothing marked writes nothing and returns once the last
//! batch is durable. The batch is written after every batch with a smaller ticket (so the
//! file holds the changes in the order they were made) and fsync'd through a file
//! description of its own, beside the batches before it (the file system commits overlapping
//! fsyncs together); batches end in ticket order. Neither the write nor the fsync holds the
//! table's lock.
//!
//! A batch whose write or fsync failed is reported to its caller, and so is every later one
//! until the table was written whole again: the next batch is the whole table (a compaction),
//! so nothing changed before the failure is left out of the file for good.
//!
//! # Compaction
//!
//! When the file would hold more than twice as many lines as the table has keys, plus
//! [`COMPACT_SLACK`], the batch is the whole table instead: written to `<path>.compact`,
//! fsync'd, renamed over the journal, the directory fsync'd. A crash leaves the old file or the
//! new one, each whole; a `<path>.compact` found at open is the remains of one cut short and is
//! removed.
//!
//! # Replay
//!
//! Opening reads the file in order. A last line without its newline is a write cut short by a
//! crash (never acknowledged: its sync had not returned): it is cut off the file. A whole line
//! that does not parse is skipped (counted in [`Replayed::skipped`]).
//!
//! Nothing of a [`LocalLease`] belongs to one conversation with the partner (v4's
//! `LeaseRecord::restarted` forgets the update in flight and the last binding received; a v6
//! record has neither: the engine keeps what is in flight, and [`LocalLease::update_sent`],
//! [`LocalLease::update_partner`] and partner-lifetime stay true across a restart — the partner
//! got that status, its record is still older than ours, the lifetime is still to be
//! acknowledged). So the records come back as they were written; what the partner may not
//! have of them ([`LocalLease::unacknowledged`], the library's rule for a restarted store) is
//! queued for [`MemoryStore6::take_resends`](super::MemoryStore6::take_resends), and the engine
//! sends every binding again on reaching NORMAL or RECOVER (§8.8).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use failover_fsm::UnixTime;
use failover_fsm::v6::{ClientKey, LocalLease};
use failover_proto::v6::{BindingStatus, IaKind, LeaseAddr};

use super::store::{ClientBinding, IaBinding};

/// The first line of a journal (format version 1).
pub(super) const MAGIC: &str = "failover-v6-leases 1";

/// Lines the journal may hold beyond twice the table's keys before it is compacted.
pub(super) const COMPACT_SLACK: u64 = 1024;

/// A client's identity as the journal writes it: DUID, IA type, IAID.
pub(super) type ClientParts = (Vec<u8>, IaKind, u32);

/// One line of the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Line {
    Lease(LeaseAddr, LocalLease, Option<ClientParts>),
    LeaseGone(LeaseAddr),
    Client(u32, ClientBinding),
    ClientGone(u32),
    NextHandle(u32),
}

// ----- encoding -----

fn put_lease_addr(out: &mut String, a: LeaseAddr) {
    let _ = match a {
        LeaseAddr::Address(ip) => write!(out, "{ip}"),
        LeaseAddr::Prefix { prefix, len } => write!(out, "{prefix}/{len}"),
    };
}

fn put_time(out: &mut String, t: Option<UnixTime>) {
    match t {
        Some(t) => {
            let _ = write!(out, " {}", t.0);
        }
        None => out.push_str(" -"),
    }
}

fn put_hex(out: &mut String, b: &[u8]) {
    for x in b {
        let _ = write!(out, "{x:02x}");
    }
}

fn kind_name(k: IaKind) -> &'static str {
    match k {
        IaKind::Na => "na",
        IaKind::Ta => "ta",
        IaKind::Pd => "pd",
    }
}

/// Appends the line of the record of `addr` (with its newline). `client`: the parts of
/// `lease.client`, if known.
pub(super) fn put_lease(
    out: &mut String,
    addr: LeaseAddr,
    lease: &LocalLease,
    client: Option<&ClientParts>,
) {
    out.push_str("L ");
    put_lease_addr(out, addr);
    let _ = write!(out, " {} ", u8::from(lease.status));
    match (lease.client, client) {
        (None, _) => out.push('-'),
        (Some(_), None) => out.push('?'),
        (Some(_), Some((duid, kind, iaid))) => {
            put_hex(out, duid);
            let _ = write!(out, "/{}/{iaid}", kind_name(*kind));
        }
    }
    for t in [
        lease.cltt,
        lease.start_time_of_state,
        lease.state_expiration_time,
        lease.expiration_time,
        lease.acked_partner_lifetime,
        lease.partner_lifetime,
        lease.partner_raw_clt_time,
    ] {
        put_time(out, t);
    }
    out.push_str(if lease.update_sent { " 1" } else { " 0" });
    out.push_str(if lease.update_partner { " 1\n" } else { " 0\n" });
}

/// Appends the line of client binding `handle`.
pub(super) fn put_client(out: &mut String, handle: u32, c: &ClientBinding) {
    let _ = write!(out, "C {handle} ");
    put_hex(out, &c.duid);
    for ia in &c.ias {
        let _ = write!(out, " {}:{}:", kind_name(ia.kind), ia.iaid);
        for (i, (addr, preferred, valid)) in ia.leases.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            put_lease_addr(out, *addr);
            let _ = write!(out, "={preferred}={valid}");
        }
    }
    out.push('\n');
}

pub(super) fn put_lease_gone(out: &mut String, addr: LeaseAddr) {
    out.push_str("R ");
    put_lease_addr(out, addr);
    out.push('\n');
}

pub(super) fn put_client_gone(out: &mut String, handle: u32) {
    let _ = writeln!(out, "X {handle}");
}

pub(super) fn put_next_handle(out: &mut String, next: u32) {
    let _ = writeln!(out, "N {next}");
}

// ----- decoding -----

fn lease_addr(s: &str) -> Option<LeaseAddr> {
    match s.split_once('/') {
        Some((p, len)) => Some(LeaseAddr::Prefix {
            prefix: p.parse::<Ipv6Addr>().ok()?,
            len: len.parse().ok().filter(|l| *l <= 128)?,
        }),
        None => Some(LeaseAddr::Address(s.parse().ok()?)),
    }
}

fn time(s: &str) -> Option<Option<UnixTime>> {
    match s {
        "-" => Some(None),
        t => Some(Some(UnixTime(t.parse().ok()?))),
    }
}

fn hex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn kind(s: &str) -> Option<IaKind> {
    match s {
        "na" => Some(IaKind::Na),
        "ta" => Some(IaKind::Ta),
        "pd" => Some(IaKind::Pd),
        _ => None,
    }
}

/// Parses one whole line (without its newline); `None` if it is not a record.
pub(super) fn decode(line: &str) -> Option<Line> {
    let mut f = line.split(' ');
    let line = match f.next()? {
        "L" => {
            let addr = lease_addr(f.next()?)?;
            let status = BindingStatus::from(f.next()?.parse::<u8>().ok()?);
            let parts = match f.next()? {
                "-" | "?" => None,
                c => {
                    let mut p = c.split('/');
                    let duid = hex(p.next()?)?;
                    let k = kind(p.next()?)?;
                    let iaid = p.next()?.parse().ok()?;
                    if p.next().is_some() {
                        return None;
                    }
                    Some((duid, k, iaid))
                }
            };
            let mut times = [None; 7];
            for t in &mut times {
                *t = time(f.next()?)?;
            }
            let [cltt, start, state_exp, exp, acked, pl, raw_clt] = times;
            let flag = |v: Option<&str>| match v? {
                "0" => Some(false),
                "1" => Some(true),
                _ => None,
            };
            let update_sent = flag(f.next())?;
            let update_partner = flag(f.next())?;
            let lease = LocalLease {
                status,
                client: parts
                    .as_ref()
                    .map(|(duid, k, iaid)| ClientKey::new(duid, *k, *iaid)),
                cltt,
                start_time_of_state: start,
                state_expiration_time: state_exp,
                expiration_time: exp,
                acked_partner_lifetime: acked,
                partner_lifetime: pl,
                partner_raw_clt_time: raw_clt,
                update_sent,
                update_partner,
            };
            Line::Lease(addr, lease, parts)
        }
        "R" => Line::LeaseGone(lease_addr(f.next()?)?),
        "C" => {
            let handle = f.next()?.parse().ok()?;
            let duid = hex(f.next()?)?;
            let mut ias = Vec::new();
            for ia in f.by_ref() {
                let mut p = ia.splitn(3, ':');
                let kind = kind(p.next()?)?;
                let iaid = p.next()?.parse().ok()?;
                let mut leases = Vec::new();
                for l in p.next()?.split(',').filter(|l| !l.is_empty()) {
                    let mut q = l.split('=');
                    let addr = lease_addr(q.next()?)?;
                    let preferred = q.next()?.parse().ok()?;
                    let valid = q.next()?.parse().ok()?;
                    leases.push((addr, preferred, valid));
                }
                ias.push(IaBinding { kind, iaid, leases });
            }
            return Some(Line::Client(handle, ClientBinding { duid, ias }));
        }
        "X" => Line::ClientGone(f.next()?.parse().ok()?),
        "N" => Line::NextHandle(f.next()?.parse().ok()?),
        _ => return None,
    };
    // Nothing may follow the last field.
    f.next().is_none().then_some(line)
}

// ----- the file -----

/// What [`Journal::open`] read.
#[derive(Debug, Default)]
pub(super) struct Replayed {
    /// The records, oldest first.
    pub(super) lines: Vec<Line>,
    /// Whole lines that were not records.
    pub(super) skipped: u64,
    /// The file existed with its header (the table is the one saved last, not a new one).
    pub(super) existed: bool,
}

/// The journal file shared by every sync of one table.
#[derive(Debug)]
pub(super) struct Journal {
    path: PathBuf,
    file: Mutex<FileState>,
    /// Signalled when a batch is written: the next ticket may write then.
    written: Condvar,
    sync: Mutex<SyncState>,
    /// Signalled when a batch ends.
    synced: Condvar,
    /// A write or fsync failed since the table was last written whole: the next batch is the
    /// whole table.
    needs_rewrite: AtomicBool,
    /// fsyncs of the journal run (group commit: fewer than the syncs that asked).
    fsyncs: AtomicU64,
    /// Tests: the next writes fail.
    #[cfg(test)]
    pub(super) fail_writes: AtomicBool,
}

#[derive(Debug)]
struct FileState {
    file: File,
    /// The last ticket written (or failed to write).
    written: u64,
    compactions: u64,
}

#[derive(Debug, Default)]
struct SyncState {
    /// Every ticket up to this one has ended (written and synced, or failed).
    ended: u64,
    /// The first ticket whose write or fsync failed since the table was last written whole:
    /// it and every later one fail until a whole-table batch is durable.
    unhealed: Option<u64>,
}

/// Where a compaction writes the new journal before renaming it over the old one.
pub(super) fn compact_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".compact");
    PathBuf::from(p)
}

fn dir_of(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

fn sync_dir(path: &Path) -> io::Result<()> {
    File::open(dir_of(path))?.sync_all()
}

impl Journal {
    /// Opens (or creates) the journal at `path` and reads it back. Blocking.
    pub(super) fn open(path: &Path) -> io::Result<(Journal, Replayed)> {
        match std::fs::remove_file(compact_path(path)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let mut replayed = Replayed::default();
        let mut whole = 0u64;
        match File::open(path) {
            Ok(f) => {
                let mut reader = BufReader::new(f);
                let mut line = Vec::new();
                loop {
                    line.clear();
                    if reader.read_until(b'\n', &mut line)? == 0 || line.last() != Some(&b'\n') {
                        // The end, or a torn last line (a write cut short: never
                        // acknowledged), cut off below.
                        break;
                    }
                    let text = std::str::from_utf8(&line)
                        .ok()
                        .map(|l| l.trim_end_matches('\n'));
                    if !replayed.existed {
                        if text != Some(MAGIC) {
                            return Err(io::Error::new(
                                io::ErrorKind::InvalidData,
                                format!("{}: not a DHCPv6 lease journal", path.display()),
                            ));
                        }
                        replayed.existed = true;
                    } else {
                        match text.and_then(decode) {
                            Some(l) => replayed.lines.push(l),
                            None => replayed.skipped += 1,
                        }
                    }
                    whole += line.len() as u64;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let mut file = OpenOptions::new().create(true).append(true).open(path)?;
        if !replayed.existed {
            // New (or only a torn header): the header, durable with the file's name.
            file.set_len(0)?;
            file.write_all(MAGIC.as_bytes())?;
            file.write_all(b"\n")?;
            file.sync_all()?;
            sync_dir(path)?;
        } else if file.metadata()?.len() > whole {
            file.set_len(whole)?;
            file.sync_all()?;
        }
        let journal = Journal {
            path: path.to_path_buf(),
            file: Mutex::new(FileState {
                file,
                written: 0,
                compactions: 0,
            }),
            written: Condvar::new(),
            sync: Mutex::new(SyncState::default()),
            synced: Condvar::new(),
            needs_rewrite: AtomicBool::new(false),
            fsyncs: AtomicU64::new(0),
            #[cfg(test)]
            fail_writes: AtomicBool::new(false),
        };
        Ok((journal, replayed))
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the next batch must be the whole table (and from now on it is taken as such).
    pub(super) fn take_rewrite(&self) -> bool {
        self.needs_rewrite.swap(false, Ordering::AcqRel)
    }

    /// Whether a write or fsync failed since the table was last written whole.
    pub(super) fn needs_rewrite(&self) -> bool {
        self.needs_rewrite.load(Ordering::Acquire)
    }

    /// fsyncs run by [`Journal::commit`] so far.
    #[cfg(test)]
    pub(super) fn fsyncs(&self) -> u64 {
        self.fsyncs.load(Ordering::Relaxed)
    }

    pub(super) fn compactions(&self) -> u64 {
        lock(&self.file).compactions
    }

    /// Writes batch `ticket` and makes it durable (`batch`: its lines, and whether they are
    /// the whole table, which replaces the file), or, with no batch (nothing changed), waits
    /// for batch `ticket` — the last one given out — to end. Batches are written in ticket
    /// order; each batch's fsync runs on a file description of its own, opened before its
    /// write, beside those of the batches before it (the file system commits overlapping
    /// fsyncs together), and batches end in ticket order. An error if this batch, or one
    /// before it since the table was last written whole, was not written or not synced.
    /// Blocking.
    pub(super) fn commit(&self, ticket: u64, batch: Option<(&[u8], bool)>) -> io::Result<()> {
        let own = batch.map(|(bytes, whole)| {
            let r = self.write(ticket, bytes, whole).and_then(|d| match d {
                Some(d) => {
                    self.fsyncs.fetch_add(1, Ordering::Relaxed);
                    d.sync_data()
                }
                None => Ok(()),
            });
            if r.is_err() {
                self.needs_rewrite.store(true, Ordering::Release);
            }
            (r, whole)
        });
        let mut s = lock(&self.sync);
        let after = if own.is_some() {
            ticket.saturating_sub(1)
        } else {
            ticket
        };
        while s.ended < after {
            s = self.synced.wait(s).unwrap_or_else(|p| p.into_inner());
        }
        if let Some((r, whole)) = &own {
            match r {
                Err(_) => s.unhealed = Some(s.unhealed.map_or(ticket, |u| u.min(ticket))),
                // Durable and whole: every failure before it is made good.
                Ok(()) if *whole => s.unhealed = None,
                Ok(()) => {}
            }
            s.ended = s.ended.max(ticket);
            self.synced.notify_all();
        }
        match own {
            Some((Err(e), _)) => Err(e),
            _ if s.unhealed.is_some_and(|u| u <= ticket) => Err(io::Error::other(
                "the lease journal could not be written or synced; the whole table is \
                 written again at the next sync",
            )),
            _ => Ok(()),
        }
    }

    /// Writes batch `ticket` once every smaller ticket is written. Returns the description
    /// to fsync (`None` for the whole table: durable already). Linux reports a write-back
    /// error once to each open description: one of its own, opened before the write, sees
    /// any error on the pages it wrote.
    fn write(&self, ticket: u64, bytes: &[u8], whole: bool) -> io::Result<Option<File>> {
        let mut st = lock(&self.file);
        while st.written + 1 < ticket {
            st = self.written.wait(st).unwrap_or_else(|p| p.into_inner());
        }
        let r = if whole {
            self.rewrite(&mut st, bytes).map(|()| None)
        } else {
            // With write access: some systems flush only a file opened for writing.
            OpenOptions::new()
                .append(true)
                .open(&self.path)
                .and_then(|d| self.append(&st, bytes).map(|()| Some(d)))
        };
        st.written = st.written.max(ticket);
        self.written.notify_all();
        r
    }

    fn append(&self, st: &FileState, bytes: &[u8]) -> io::Result<()> {
        let mut f = &st.file;
        let len = f.metadata()?.len();
        #[cfg(test)]
        let w = if self.fail_writes.load(Ordering::Acquire) {
            // As a full disk would: part of the batch, then the error.
            f.write_all(bytes.get(..bytes.len() / 2).unwrap_or_default())
                .and(Err(io::Error::other("injected write failure")))
        } else {
            f.write_all(bytes)
        };
        #[cfg(not(test))]
        let w = f.write_all(bytes);
        if w.is_err() {
            // No torn line stays in the middle of the file.
            let _ = f.set_len(len);
        }
        w
    }

    fn rewrite(&self, st: &mut FileState, bytes: &[u8]) -> io::Result<()> {
        #[cfg(test)]
        if self.fail_writes.load(Ordering::Acquire) {
            return Err(io::Error::other("injected write failure"));
        }
        let tmp = compact_path(&self.path);
        let written = (|| {
            let mut f = OpenOptions::new()
                .create(true)
                .truncate(true)
                .write(true)
                .open(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            sync_dir(&self.path)?;
            OpenOptions::new().append(true).open(&self.path)
        })();
        match written {
            Ok(f) => {
                st.file = f;
                st.compactions += 1;
                Ok(())
            }
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                Err(e)
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The table's side of the journal, under the table's lock: which keys changed since the last
/// batch, and who the clients named by records are.
#[derive(Debug)]
pub(super) struct Pending {
    pub(super) journal: Arc<Journal>,
    pub(super) leases: std::collections::HashSet<LeaseAddr>,
    pub(super) clients: std::collections::HashSet<u32>,
    pub(super) next_handle: bool,
    /// The last ticket given to a batch.
    pub(super) issued: u64,
    /// Lines in the file (since it was last written whole).
    pub(super) lines: u64,
    /// The DUID, IA type and IAID behind each client key the table has seen.
    pub(super) keys: HashMap<ClientKey, ClientParts>,
}

impl Pending {
    pub(super) fn new(journal: Arc<Journal>, lines: u64) -> Self {
        Pending {
            journal,
            leases: Default::default(),
            clients: Default::default(),
            next_handle: false,
            issued: 0,
            lines,
            keys: HashMap::new(),
        }
    }

    pub(super) fn remember(&mut self, duid: &[u8], kind: IaKind, iaid: u32) {
        let key = ClientKey::new(duid, kind, iaid);
        self.keys
            .entry(key)
            .or_insert_with(|| (duid.to_vec(), kind, iaid));
    }

    pub(super) fn is_clean(&self) -> bool {
        self.leases.is_empty() && self.clients.is_empty() && !self.next_handle
    }
}

#[cfg(test)]
mod tests;
