//! Where a DHCPv6 peer keeps its failover state between runs (RFC 8156 §8.3: a server starts
//! from the state it recorded; the engine's [`Persisted`] snapshot): the [`StateStore`]
//! contract, a file written atomically ([`StateFile`]) and one in memory ([`MemoryState`]).
//!
//! The lease table is not here: it has a journal of its own ([`MemoryStore6::open`],
//! [`Peer6::lease_file`]). A saved state with a journal that had to be created at start is
//! a lost table, and the peer starts as [`Peer6::lease_table_lost`] has it.
//!
//! [`MemoryStore6::open`]: super::MemoryStore6::open
//! [`Peer6::lease_file`]: super::Peer6::lease_file
//! [`Peer6::lease_table_lost`]: super::Peer6::lease_table_lost

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use failover_fsm::Persisted;

use crate::storage::{parse_state_line, state_line};

/// Stable storage for the engine's [`Persisted`] snapshot. Both methods may block (file I/O,
/// fsync): the peer calls them on tokio's blocking pool, never on a runtime worker.
pub trait StateStore: Send + Sync + 'static {
    /// The snapshot saved last, `None` if none was ever saved (a new server: the engine starts
    /// as RFC 8156 §8.3 has it for one, from RECOVER). An error if what is there cannot be
    /// read: the peer does not start then, since starting as a new server would forget the
    /// state it recorded.
    fn load(&self) -> io::Result<Option<Persisted>>;
    /// Replaces the saved snapshot with `snapshot`; returns once it is durable. The peer
    /// confirms it to the engine only then (`persist_complete`), so that no STATE announces a
    /// state that a crash would lose.
    fn save(&self, snapshot: &Persisted) -> io::Result<()>;
}

/// The snapshot in a file of one line (the DHCPv4 file store's `state` record), replaced
/// atomically: written to a temporary file beside it, fsync'd, renamed over it, and the
/// directory fsync'd, so that a crash leaves the old snapshot or the new one, never a mix.
#[derive(Debug)]
pub struct StateFile {
    path: PathBuf,
}

/// Distinguishes the temporary files of writes that overlap (two peers of one process on one
/// path, as a test restarting a peer may have).
static TEMP_SEQ: AtomicU64 = AtomicU64::new(0);

impl StateFile {
    /// The state file at `path` (created at the first save).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        StateFile { path: path.into() }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn temp_path(&self) -> PathBuf {
        let seq = TEMP_SEQ.fetch_add(1, Ordering::Relaxed);
        let mut name = self.path.file_name().unwrap_or_default().to_os_string();
        name.push(format!(".{}.{seq}.tmp", std::process::id()));
        self.path.with_file_name(name)
    }

    fn dir(&self) -> &Path {
        match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        }
    }
}

impl StateStore for StateFile {
    fn load(&self) -> io::Result<Option<Persisted>> {
        let text = match fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        parse_state_line(text.trim_end_matches('\n'))
            .map(Some)
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: not a failover state record", self.path.display()),
                )
            })
    }

    fn save(&self, snapshot: &Persisted) -> io::Result<()> {
        let tmp = self.temp_path();
        let mut line = state_line(snapshot);
        line.push('\n');
        let written = (|| {
            let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
            f.write_all(line.as_bytes())?;
            f.sync_all()
        })();
        if let Err(e) = written.and_then(|()| fs::rename(&tmp, &self.path)) {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        // The rename is durable only once the directory is.
        File::open(self.dir())?.sync_all()
    }
}

/// The snapshot in memory: lost with the process, so a restart starts as a new server
/// (RECOVER, RFC 8156 §8.3). For tests, and for a peer restarted within one process.
#[derive(Debug, Default)]
pub struct MemoryState {
    saved: Mutex<Option<Persisted>>,
}

impl MemoryState {
    /// Nothing saved yet.
    pub fn new() -> Self {
        MemoryState::default()
    }

    /// The snapshot saved last.
    pub fn saved(&self) -> Option<Persisted> {
        *self.saved.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl StateStore for MemoryState {
    fn load(&self) -> io::Result<Option<Persisted>> {
        Ok(self.saved())
    }

    fn save(&self, snapshot: &Persisted) -> io::Result<()> {
        *self.saved.lock().unwrap_or_else(|p| p.into_inner()) = Some(*snapshot);
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use failover_fsm::{ServerState, UnixTime};

    use super::*;

    fn dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "failover-v6-state-{}-{}",
            std::process::id(),
            TEMP_SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_saved_snapshot_reads_back_and_replaces_the_last() {
        let d = dir();
        let f = StateFile::new(d.join("state"));
        assert_eq!(f.load().unwrap(), None, "nothing saved: a new server");
        let mut p = Persisted {
            state: ServerState::Normal,
            since: UnixTime(1_800_000_000),
            mclt: Some(600),
            last_operational: Some(UnixTime(1_800_000_100)),
            lease_table_lost: false,
        };
        f.save(&p).unwrap();
        assert_eq!(f.load().unwrap(), Some(p));
        p.state = ServerState::PartnerDown;
        p.lease_table_lost = true;
        f.save(&p).unwrap();
        assert_eq!(StateFile::new(d.join("state")).load().unwrap(), Some(p));
        // No temporary file is left behind.
        assert_eq!(fs::read_dir(&d).unwrap().count(), 1);
        fs::write(d.join("state"), "lease 1 2 3\n").unwrap();
        assert_eq!(
            f.load().unwrap_err().kind(),
            io::ErrorKind::InvalidData,
            "an unreadable file is an error, not a new server"
        );
        fs::remove_dir_all(&d).unwrap();
    }
}
