//! Group commit: the changes made while one batch of input is handled become durable with one
//! [`Storage::sync`], run on tokio's blocking pool so that an fsync never stalls a runtime
//! worker. Only once it returned are BNDACKs released (§7.2), STATE announced (§9.2) and the
//! application told its bindings are recorded.
//!
//! Pipelined: while one group's sync runs, the task goes on reading and applying input to the
//! store in memory; what that input waits for forms the next group, whose sync starts at once
//! as long as fewer than [`MAX_SYNCS`] run (beyond that, as soon as one returns). A
//! confirmation is only given by a sync that started after the change it covers, so
//! "acknowledged" still means "durable"; groups are confirmed in the order their syncs
//! started. Overlapping syncs spare a group the wait for a running sync that does not cover
//! it: on the lab's shared disk that wait was most of the DHCPACK's p99 (BENCHMARKS.md).

use std::collections::VecDeque;
use std::io;
use std::time::Duration;

use failover_fsm::{CommitToken, PersistToken, RejectReason};
use tokio::task::JoinHandle;
use tracing::warn;

use super::Core;
use crate::peer::{PeerError, PeerEvent, Reply};
use crate::storage::Storage;

/// Longest a change nobody waits for (an acknowledgement recorded, an update queued) stays
/// only in memory.
const LAZY_SYNC: Duration = Duration::from_millis(50);

/// Most syncs running at once. More overlap shortens a group's wait only while the disk has
/// room for more flushes; beyond, the groups grow instead (group commit).
pub(super) const MAX_SYNCS: usize = 3;

/// What waits for one sync.
#[derive(Default)]
struct Group {
    commits: Vec<CommitToken>,
    persists: Vec<PersistToken>,
    replies: Vec<(Reply, Result<(), PeerError>)>,
}

impl Group {
    fn is_empty(&self) -> bool {
        self.commits.is_empty() && self.persists.is_empty() && self.replies.is_empty()
    }
}

/// A sync on the blocking pool and the group it makes durable.
pub(super) struct Running {
    sync: JoinHandle<io::Result<()>>,
    group: Group,
}

/// What waits for the next sync, and the syncs running.
pub(super) struct GroupCommit {
    /// Waits for the next sync to start (a running one may not cover it).
    next: Group,
    /// Oldest first: confirmed in this order.
    running: VecDeque<Running>,
    /// The store changed since the last sync started and nobody waits: sync by then.
    lazy: Option<tokio::time::Instant>,
}

impl GroupCommit {
    pub(super) fn new() -> Self {
        GroupCommit {
            next: Group::default(),
            running: VecDeque::new(),
            lazy: None,
        }
    }

    /// The store changed; nothing waits on it yet.
    pub(super) fn touched(&mut self) {
        if self.lazy.is_none() {
            self.lazy = Some(tokio::time::Instant::now() + LAZY_SYNC);
        }
    }

    pub(super) fn wait_commit(&mut self, token: CommitToken) {
        self.touched();
        self.next.commits.push(token);
    }

    pub(super) fn wait_persist(&mut self, token: PersistToken) {
        self.touched();
        self.next.persists.push(token);
    }

    pub(super) fn wait_reply(&mut self, reply: Reply, result: Result<(), PeerError>) {
        self.touched();
        self.next.replies.push((reply, result));
    }

    /// When to sync changes nobody waits for; none while a sync runs (its end starts the next).
    pub(super) fn lazy_deadline(&self) -> Option<tokio::time::Instant> {
        self.lazy.filter(|_| self.running.is_empty())
    }

    pub(super) fn running(&mut self) -> &mut VecDeque<Running> {
        &mut self.running
    }
}

/// The end of the oldest running sync (pending forever if none runs). Cancel-safe: the sync's
/// handle stays in `running` until [`Core::group_synced`] takes it.
pub(super) async fn sync_done(running: &mut VecDeque<Running>) -> io::Result<()> {
    match running.front_mut() {
        Some(r) => match (&mut r.sync).await {
            Ok(r) => r,
            Err(e) => Err(io::Error::other(e.to_string())),
        },
        None => std::future::pending().await,
    }
}

impl<S: Storage> Core<S> {
    /// Starts the sync of the next group if something waits for it and fewer than
    /// [`MAX_SYNCS`] run. A store whose sync does not block is synced in place and the group
    /// confirmed at once: returns `true` then.
    pub(super) fn start_group(&mut self) -> bool {
        let commit = &mut self.commit;
        if commit.running.len() >= MAX_SYNCS || commit.next.is_empty() {
            return false;
        }
        self.sync_next()
    }

    /// Syncs everything changed so far and confirms what waited, waiting for the running syncs
    /// first (a due lazy sync; the task's end).
    pub(super) async fn commit_group(&mut self) {
        while !self.commit.running.is_empty() {
            let result = sync_done(&mut self.commit.running).await;
            self.group_synced(result);
        }
        if self.commit.lazy.is_none() && self.commit.next.is_empty() {
            return;
        }
        if !self.sync_next() {
            let result = sync_done(&mut self.commit.running).await;
            self.group_synced(result);
        }
    }

    /// Starts the sync of everything changed so far for the waiting group; `true` if it ran in
    /// place (and the group is confirmed).
    fn sync_next(&mut self) -> bool {
        let commit = &mut self.commit;
        commit.lazy = None;
        let group = std::mem::take(&mut commit.next);
        if self.store.sync_blocks() {
            let store = self.store.clone();
            let sync = tokio::task::spawn_blocking(move || store.sync());
            self.commit.running.push_back(Running { sync, group });
            false
        } else {
            let synced = self.store.sync();
            self.confirm(synced, group);
            true
        }
    }

    /// The oldest running sync returned `result`: confirms its group.
    pub(super) fn group_synced(&mut self, result: io::Result<()>) {
        if let Some(r) = self.commit.running.pop_front() {
            self.confirm(result, r.group);
        }
    }

    /// Confirms what waited for a sync, or fails it. A failed sync rejects the partner's
    /// bindings (reason 254, the draft's "unknown reason": the partner sends them again later)
    /// and fails the persists (the engine retries).
    fn confirm(&mut self, synced: io::Result<()>, group: Group) {
        let Group {
            commits,
            persists,
            replies,
        } = group;
        match synced {
            Ok(()) => {
                for t in commits {
                    let _ = self.engine.binding_committed(t);
                }
                for t in persists {
                    let _ = self.engine.persist_complete(t);
                }
                for (reply, result) in replies {
                    let _ = reply.send(result);
                }
            }
            Err(e) => {
                warn!(error = %e, "storage sync failed");
                self.out.push(PeerEvent::StorageError(e.to_string()));
                for t in commits {
                    let _ = self
                        .engine
                        .binding_commit_failed(t, RejectReason::UnknownError);
                }
                let now = self.clock.now();
                for t in persists {
                    let _ = self.engine.persist_failed(now, t);
                }
                for (reply, _) in replies {
                    let _ = reply.send(Err(PeerError::Storage));
                }
            }
        }
    }
}
