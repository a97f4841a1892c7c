//! Group commit: the changes made while one batch of input is handled become durable with one
//! [`Storage::sync`], run on tokio's blocking pool so that an fsync never stalls a runtime
//! worker. Only once it returned are BNDACKs released (§7.2), STATE announced (§9.2) and the
//! application told its bindings are recorded.

use std::time::Duration;

use failover_fsm::{CommitToken, PersistToken, RejectReason};
use tracing::warn;

use super::Core;
use crate::peer::{PeerError, PeerEvent, Reply};
use crate::storage::Storage;

/// Longest a change nobody waits for (an acknowledgement recorded, an update queued) stays
/// only in memory.
const LAZY_SYNC: Duration = Duration::from_millis(50);

/// What waits for the next sync.
pub(super) struct GroupCommit {
    commits: Vec<CommitToken>,
    persists: Vec<PersistToken>,
    replies: Vec<(Reply, Result<(), PeerError>)>,
    /// The store changed since the last sync and nobody waits: sync by then.
    lazy: Option<tokio::time::Instant>,
}

impl GroupCommit {
    pub(super) fn new() -> Self {
        GroupCommit {
            commits: Vec::new(),
            persists: Vec::new(),
            replies: Vec::new(),
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
        self.commits.push(token);
    }

    pub(super) fn wait_persist(&mut self, token: PersistToken) {
        self.touched();
        self.persists.push(token);
    }

    pub(super) fn wait_reply(&mut self, reply: Reply, result: Result<(), PeerError>) {
        self.touched();
        self.replies.push((reply, result));
    }

    /// Something waits for a sync.
    pub(super) fn must_sync_now(&self) -> bool {
        !self.commits.is_empty() || !self.persists.is_empty() || !self.replies.is_empty()
    }

    pub(super) fn lazy_deadline(&self) -> Option<tokio::time::Instant> {
        self.lazy
    }
}

impl<S: Storage> Core<S> {
    /// Syncs the store once for everything changed so far, then confirms what waited: the
    /// engine's commits and persists, the application's bindings. A failed sync rejects the
    /// partner's bindings (reason 254, the draft's "unknown reason": the partner sends them
    /// again later) and fails the persists (the engine retries).
    pub(super) async fn commit_group(&mut self) {
        let commit = &mut self.commit;
        if commit.lazy.is_none() && !commit.must_sync_now() {
            return;
        }
        commit.lazy = None;
        let commits = std::mem::take(&mut commit.commits);
        let persists = std::mem::take(&mut commit.persists);
        let replies = std::mem::take(&mut commit.replies);
        let synced = if self.store.sync_blocks() {
            let store = self.store.clone();
            match tokio::task::spawn_blocking(move || store.sync()).await {
                Ok(r) => r,
                Err(e) => Err(std::io::Error::other(e.to_string())),
            }
        } else {
            self.store.sync()
        };
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
