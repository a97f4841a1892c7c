//! What must survive a restart besides the lease database (§9.2, §9.3.2), and the protocol
//! with the caller that writes it: one whole snapshot at a time, confirmed or failed.
//!
//! Every change bumps a revision of the wanted snapshot. When no write is outstanding and the
//! wanted revision is newer than the confirmed one, the engine hands out the whole snapshot
//! ([`super::Action::Persist`]): changes made while a write is outstanding are coalesced into
//! the next one. A state change also records the revision that holds it; the STATE message
//! announcing it waits until a snapshot of at least that revision is confirmed (§9.2: "The
//! current state of a server MUST be recorded in stable storage").

use failover_proto::ServerState;

use super::EngineError;
use crate::time::UnixTime;

/// What the engine persisted last time, handed back at start (§9.2, §9.3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Persisted {
    /// The failover state to restart from (not always the current one: entering SHUTDOWN or
    /// PAUSED saves the state to come back to, §9.13.1, §9.14.1).
    pub state: ServerState,
    /// When it was entered.
    pub since: UnixTime,
    /// The MCLT both servers last agreed on: a secondary's learned from its primary
    /// (§7.8.2 step 7), a primary's accepted by its secondary. A primary restarted with another
    /// MCLT uses it to stay safe until the secondary has accepted the new one (§5.2.1: the MCLT
    /// "MUST be the same and known to both").
    pub mclt: Option<u32>,
    /// The last time this server knew it was operating (for §9.3.2 step 5).
    pub last_operational: Option<UnixTime>,
    /// The lease table is lost or an older copy ([`super::Engine::lease_table_lost`]) and the
    /// partner's UPDDONE has not refreshed it yet: a restart in between keeps refreshing.
    pub lease_table_lost: bool,
}

/// Identifies one [`super::Action::Persist`] snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct PersistToken(pub u64);

/// The wanted snapshot and how far the caller has written it.
#[derive(Debug, Clone)]
pub(super) struct Persistence {
    /// What stable storage should hold now.
    want: Persisted,
    /// Revision of `want`: bumped on every change.
    rev: u64,
    /// The newest revision the caller confirmed written.
    confirmed: u64,
    /// The snapshot handed out and not yet confirmed or failed, with its revision.
    issued: Option<(PersistToken, u64)>,
    /// The revision holding the last state change: STATE waits until it is confirmed.
    state_rev: u64,
    next_token: u64,
}

impl Persistence {
    /// `persisted` is what the caller handed to `Engine::new`; without it (a new server)
    /// `base` is what the first snapshot starts from. Nothing is written until something
    /// changes.
    pub(super) fn new(persisted: Option<Persisted>, base: Persisted) -> Self {
        Persistence {
            want: persisted.unwrap_or(base),
            rev: 0,
            confirmed: 0,
            issued: None,
            state_rev: 0,
            next_token: 1,
        }
    }

    fn update(&mut self, f: impl FnOnce(&mut Persisted)) {
        let before = self.want;
        f(&mut self.want);
        if self.want != before {
            self.rev += 1;
        }
    }

    /// The state a restart comes back to; a STATE announcing a change waits for it.
    pub(super) fn set_state(&mut self, state: ServerState, since: UnixTime) {
        self.update(|p| {
            p.state = state;
            p.since = since;
        });
        self.state_rev = self.rev;
    }

    pub(super) fn set_mclt(&mut self, mclt: u32) {
        self.update(|p| p.mclt = Some(mclt));
    }

    pub(super) fn set_last_operational(&mut self, at: UnixTime) {
        self.update(|p| p.last_operational = Some(at));
    }

    pub(super) fn set_lease_table_lost(&mut self, lost: bool) {
        self.update(|p| p.lease_table_lost = lost);
    }

    /// Whether the last state change is on stable storage (it may be announced).
    pub(super) fn state_durable(&self) -> bool {
        self.confirmed >= self.state_rev
    }

    /// Hands out the wanted snapshot if it is newer than what is written and no write is
    /// outstanding.
    pub(super) fn issue(&mut self) -> Option<(PersistToken, Persisted)> {
        if self.issued.is_some() || self.rev <= self.confirmed {
            return None;
        }
        let token = PersistToken(self.next_token);
        self.next_token += 1;
        self.issued = Some((token, self.rev));
        Some((token, self.want))
    }

    /// The snapshot of `token` is written.
    pub(super) fn complete(&mut self, token: PersistToken) -> Result<(), EngineError> {
        match self.issued {
            Some((t, rev)) if t == token => {
                self.issued = None;
                self.confirmed = self.confirmed.max(rev);
                Ok(())
            }
            _ => Err(EngineError::UnknownToken),
        }
    }

    /// The snapshot of `token` could not be written: it is handed out again later.
    pub(super) fn failed(&mut self, token: PersistToken) -> Result<(), EngineError> {
        match self.issued {
            Some((t, _)) if t == token => {
                self.issued = None;
                Ok(())
            }
            _ => Err(EngineError::UnknownToken),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn base() -> Persisted {
        Persisted {
            state: ServerState::Recover,
            since: UnixTime(100),
            mclt: None,
            last_operational: None,
            lease_table_lost: false,
        }
    }

    #[test]
    fn changes_while_a_write_is_outstanding_go_in_the_next_snapshot() {
        let mut p = Persistence::new(None, base());
        assert_eq!(p.issue(), None, "nothing changed");
        p.set_state(ServerState::Normal, UnixTime(200));
        assert!(!p.state_durable());
        let (t1, s1) = p.issue().unwrap();
        assert_eq!(s1.state, ServerState::Normal);
        p.set_mclt(600);
        p.set_last_operational(UnixTime(300));
        assert_eq!(p.issue(), None, "one write at a time");
        p.complete(t1).unwrap();
        assert!(p.state_durable(), "the MCLT is not a state change");
        let (t2, s2) = p.issue().unwrap();
        assert_eq!(
            (s2.mclt, s2.last_operational),
            (Some(600), Some(UnixTime(300)))
        );
        assert_eq!(p.complete(t1), Err(EngineError::UnknownToken));
        p.complete(t2).unwrap();
        assert_eq!(p.issue(), None);
    }

    #[test]
    fn a_failed_write_is_handed_out_again_with_a_new_token() {
        let mut p = Persistence::new(Some(base()), base());
        p.set_state(ServerState::PartnerDown, UnixTime(200));
        let (t1, _) = p.issue().unwrap();
        p.failed(t1).unwrap();
        assert!(!p.state_durable());
        let (t2, s2) = p.issue().unwrap();
        assert_ne!(t1, t2);
        assert_eq!(s2.state, ServerState::PartnerDown);
        p.complete(t2).unwrap();
        assert!(p.state_durable());
    }

    #[test]
    fn a_state_change_that_changes_nothing_on_disk_waits_only_for_earlier_writes() {
        let mut p = Persistence::new(Some(base()), base());
        p.set_state(ServerState::Recover, UnixTime(100));
        assert!(p.state_durable());
        p.set_mclt(60);
        let (t, _) = p.issue().unwrap();
        p.set_state(ServerState::Recover, UnixTime(100));
        assert!(!p.state_durable(), "behind the outstanding write");
        p.complete(t).unwrap();
        assert!(p.state_durable());
    }
}
