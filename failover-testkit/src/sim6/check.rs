//! The invariants of the v6 simulator; a violation panics with the seed, the step and what
//! broke (`World6::fail`).
//!
//! * (a) no address or prefix validly held by two clients at once: each grant is checked
//!   against what the clients hold (`Checks::granted`, called by the grant itself);
//! * (b) nothing acknowledged lost: when a BNDREPLY accepts one of our leases, the partner's
//!   store must have committed it, and from then on its record keeps that status and client
//!   or a newer change (`World6::check_step`, after every step). A record rewritten by a
//!   store that lost its table (`lease_table_lost`) must hold it again once the partner's
//!   UPDDONE ended the refresh, unless we changed it since (`World6::check_refreshed`);
//! * (c) lifetimes within the MCLT (§4.4): checked where the lease is granted
//!   (`client.rs`), from the record as it was;
//! * (d) after the faults both servers reach NORMAL (`World6::advance_phase`), and then their
//!   records agree: every lease a client holds is bound to it on both (ACTIVE, or RELEASED /
//!   EXPIRED for it where two changes within 5 s refused each other — counted), a lease
//!   ACTIVE on one side is bound to the same client on the other, and no prefix is available
//!   to both servers at once (`World6::check_agreement`). An ACTIVE record no
//!   client holds any more (its client took a shorter lifetime from the other server) may
//!   still disagree until it ends — Figure 4's time1 refuses the other side's EXPIRED until
//!   then — and is counted ([`Stats6::stale_at_end`](super::Stats6)).

use std::collections::BTreeMap;

use failover_fsm::v6::owner::available_to;
use failover_fsm::v6::{ClientKey, TIME_SKEW_LIMIT};
use failover_fsm::{Instant, Role};
use failover_proto::v6::{BindingStatus, IaKind};

use super::server::{Logged, Rec, in_binding, key};
use super::{NAMES, World6};

/// One of our leases the partner acknowledged: held by server `at` as `logged`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fact {
    pub(crate) at: usize,
    pub(crate) slot: usize,
    pub(crate) logged: Logged,
}

#[derive(Default)]
pub(crate) struct Checks {
    /// Who holds each slot, and until when.
    holders: BTreeMap<usize, (u32, Instant)>,
    facts: Vec<Fact>,
    /// Facts about a store that lost its table, until its refresh ends.
    suspended: Vec<Fact>,
}

impl Checks {
    /// (a): client `id` gets `slot` until `until`.
    pub(crate) fn granted(
        &mut self,
        slot: usize,
        id: u32,
        until: Instant,
        now: Instant,
        _server: usize,
    ) -> Result<(), String> {
        if let Some(&(other, end)) = self.holders.get(&slot)
            && other != id
            && end > now
        {
            return Err(format!(
                "client {other} still holds it for {} ms; now client {id} too",
                end.as_millis() - now.as_millis()
            ));
        }
        self.holders.insert(slot, (id, until));
        Ok(())
    }

    pub(crate) fn dropped(&mut self, slot: usize, id: u32) {
        if self.holders.get(&slot).is_some_and(|h| h.0 == id) {
            self.holders.remove(&slot);
        }
    }

    /// Server `j` restarted with its lease table lost.
    pub(crate) fn wiped(&mut self, j: usize) {
        let (gone, keep): (Vec<Fact>, Vec<Fact>) = self.facts.iter().partition(|f| f.at == j);
        self.facts = keep;
        self.suspended.extend(gone);
    }
}

/// `r` holds `f`'s lease, or a change at least as new (allowing the clocks' skew).
fn holds_or_newer(r: &Rec, f: &Fact) -> bool {
    // A free lease's client is only a hint (§7.4: MAY): a refreshed table that has the lease
    // free for the same server holds the fact.
    let free = matches!(
        f.logged.status,
        BindingStatus::Free | BindingStatus::FreeBackup | BindingStatus::PendingFree
    );
    let same = r.lease.status == f.logged.status && (r.lease.client == f.logged.client || free);
    same || r.changed + 2 * TIME_SKEW_LIMIT >= f.logged.changed
}

impl World6 {
    /// (b): server `i`'s lease `slot` of client `key` was accepted by the partner.
    pub(crate) fn on_acked(
        &mut self,
        i: usize,
        slot: usize,
        key: ClientKey,
        status: Option<BindingStatus>,
    ) {
        let j = 1 - i;
        let Some(logged) = self.servers[j].store.log[slot]
            .iter()
            .rev()
            .find(|l| l.client == Some(key) && status.is_none_or(|s| s == l.status))
            .copied()
        else {
            let r = self.servers[j].store.recs[slot];
            self.fail(format_args!(
                "(b) {}'s BNDREPLY accepted slot {slot} of {key:?}, which its store never \
                 committed (its record: {:?})",
                NAMES[j], r.lease
            ));
        };
        self.checks.facts.retain(|f| !(f.at == j && f.slot == slot));
        self.checks.facts.push(Fact {
            at: j,
            slot,
            logged,
        });
    }

    /// (b) after every step.
    pub(crate) fn check_step(&mut self) {
        let mut broken = None;
        let servers = &self.servers;
        self.checks.facts.retain(|f| {
            let r = &servers[f.at].store.recs[f.slot];
            let same = r.lease.status == f.logged.status && r.lease.client == f.logged.client;
            if same {
                return true;
            }
            if r.stamp > f.logged.stamp && holds_or_newer(r, f) {
                return false;
            }
            broken = Some((*f, *r));
            true
        });
        if let Some((f, r)) = broken {
            self.fail(format_args!(
                "(b) {} lost acknowledged slot {}: stored {:?}, now {:?}",
                NAMES[f.at], f.slot, f.logged, r.lease
            ));
        }
    }

    /// (b) for server `j`, whose refresh after a lost lease table just ended.
    pub(crate) fn check_refreshed(&mut self, j: usize) {
        let (mine, rest): (Vec<Fact>, Vec<Fact>) =
            self.checks.suspended.iter().partition(|f| f.at == j);
        self.checks.suspended = rest;
        for f in mine {
            self.stats.refreshed_checked += 1;
            let r = self.servers[j].store.recs[f.slot];
            let origin = self.servers[1 - j].store.recs[f.slot].lease;
            let superseded = origin.status != f.logged.status || origin.client != f.logged.client;
            if !superseded && !holds_or_newer(&r, &f) {
                self.fail(format_args!(
                    "(b) {} refreshed its lost table without slot {} ({:?}; the partner still \
                     has {:?}); it has {:?}",
                    NAMES[j], f.slot, f.logged, origin, r.lease
                ));
            }
        }
    }

    /// (d): both NORMAL and quiet: the records agree.
    pub(crate) fn check_agreement(&mut self) {
        let now = self.now;
        for slot in 0..self.pool.len() {
            for i in 0..2 {
                let x = self.servers[i].store.recs[slot].lease;
                let y = self.servers[1 - i].store.recs[slot].lease;
                let wall = self.servers[i].wall(now);
                let lasting = x.status == BindingStatus::Active
                    && x.state_expiration_time
                        .is_some_and(|t| t > wall.plus(2 * TIME_SKEW_LIMIT));
                let held = self
                    .clients
                    .iter()
                    .any(|c| [c.na, c.pd].into_iter().flatten().any(|h| h.slot == slot));
                let agree = y.client == x.client && in_binding(y.status);
                if lasting && !agree {
                    // A record that outlives its client's lease (another server renewed it
                    // for less, the client took the shorter lifetime) is refused by the other
                    // side until it ends (Figure 4's time1), then agrees: counted, not a
                    // violation. A lease a client holds must agree.
                    if !held {
                        self.stats.stale_at_end += 1;
                        continue;
                    }
                    self.fail(format_args!(
                        "(d) slot {slot}: {} has {x:?}, {} has {y:?}",
                        NAMES[i],
                        NAMES[1 - i]
                    ));
                }
            }
            let kind = self.pool.kind(slot);
            let p = available_to(kind, self.servers[0].store.recs[slot].lease.status);
            let s = available_to(kind, self.servers[1].store.recs[slot].lease.status);
            let held = self
                .clients
                .iter()
                .any(|c| [c.na, c.pd].into_iter().flatten().any(|h| h.slot == slot));
            let ends =
                |i: usize| self.servers[i].store.recs[slot].lease.status == BindingStatus::Active;
            if !held
                && p != Some(Role::Primary)
                && s != Some(Role::Secondary)
                && !ends(0)
                && !ends(1)
            {
                let (a, b) = (
                    self.servers[0].store.recs[slot].lease,
                    self.servers[1].store.recs[slot].lease,
                );
                if std::env::var_os("SIM6_LOST").is_some() {
                    eprintln!("lost slot {slot}: {a:?} / {b:?}");
                }
                self.stats.lost_at_end += 1;
            }
            if p == Some(Role::Primary) && s == Some(Role::Secondary) {
                let (a, b) = (
                    self.servers[0].store.recs[slot].lease,
                    self.servers[1].store.recs[slot].lease,
                );
                self.fail(format_args!(
                    "(d) slot {slot} available to both servers: {a:?} / {b:?}"
                ));
            }
        }
        for c in 0..self.clients.len() {
            let id = self.clients[c].id;
            for (ia, h) in [
                (IaKind::Na, self.clients[c].na),
                (IaKind::Pd, self.clients[c].pd),
            ] {
                let Some(h) = h else { continue };
                for i in 0..2 {
                    let r = self.servers[i].store.recs[h.slot].lease;
                    // RELEASED or EXPIRED for the same client: changes made on each side
                    // during a cut within the 5 s in which times count as equal (§7.5.1)
                    // refuse each other (Figure 4) until the ACTIVE ends; nobody else can get
                    // the lease meanwhile (it awaits an ack, §4.2.2.1). Counted.
                    let same = r.client == Some(key(id, ia));
                    if same && r.status != BindingStatus::Active && in_binding(r.status) {
                        self.stats.held_not_active += 1;
                        continue;
                    }
                    if r.status != BindingStatus::Active || !same {
                        self.fail(format_args!(
                            "(d) client {id} holds slot {} but {} has {r:?}",
                            h.slot, NAMES[i]
                        ));
                    }
                }
            }
        }
    }
}
