//! The durable table: a journal in a file ([`MemoryStore6::open`]).

use super::*;

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
    /// `tokio::task::spawn_blocking`, or let [`Peer6::lease_file`](crate::v6::Peer6::lease_file)
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
    /// holds a lease a crash would forget; [`Handle6::sync_leases`](crate::v6::Handle6::sync_leases)
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
    pub(in crate::v6) fn journal(&self) -> Option<Arc<Journal>> {
        self.journal.as_ref().map(|j| j.journal.clone())
    }

    /// `lease` changed: its record goes into the next batch.
    pub(super) fn touch(&mut self, lease: LeaseAddr) {
        if let Some(j) = &mut self.journal {
            j.leases.insert(lease);
        }
    }

    /// The bindings holding `lease` change (it leaves them).
    pub(super) fn touch_holders(&mut self, lease: LeaseAddr) {
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
