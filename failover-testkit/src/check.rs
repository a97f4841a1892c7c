//! The invariants, checked after every step (and at grant / acknowledgement time).
//!
//! 0. Two engines never report a protocol error to each other, and never reject each other's
//!    connection except for a clock difference beyond the limit (checked in `on_event`).
//! 1. No address is bound to two clients at once. Ground truth is what the clients believe:
//!    each holds its address until the expiry of the last ACK it took.
//!    1b (latent form, also after every step): no server that is up would hand an address a
//!    client holds to a different client now (`may_allocate` of that server on its own
//!    record). This catches a wrong lease table before a client happens to ask.
//! 2. No binding a server acknowledged is lost: when A gets `BindingAcked` for a binding, B's
//!    stable storage holds that version of the binding (or held it, and something later has
//!    replaced it). A version B lost with its storage is exempt.
//!
//!    Exemptions, each counted in the summary: (a) addresses where ISC's rules accepted an
//!    update the draft's rules reject (ISC-dialect seeds: the 65 s expiry fudge, FREE/BACKUP
//!    over a running lease once the received PET has passed, crossing updates that both
//!    sides' dueling rule prefers), until both servers agree again; (b) a lease granted in
//!    PARTNER-DOWN beyond the MCLT limit with unrestricted PARTNER-DOWN leases (§9.4.2), until
//!    it ends — the partner taking over later cannot know of it.
//! 3. Nothing is leased beyond the MCLT rule: each lease ends at most
//!    `MCLT + max(now, acked PET, received PET)` of the address, as the granting server knew
//!    them. The one exception the draft allows: in PARTNER-DOWN a server configured for
//!    unrestricted leases (§9.4.2) has no limit. (§9.9.2's COMMUNICATIONS-INTERRUPTED limit,
//!    which also counts the recorded lease-expiration-time, is not used: renewals could
//!    chain it past what the partner may assume when it takes over — see `client.rs`.)
//! 4. After the faults stop (a quiet tail of `3 × MCLT + 180 s` with clients still active,
//!    then clients stop), both servers reach NORMAL with nothing queued, and their lease
//!    tables are identical in what they let a server do with each address: a running lease
//!    (ACTIVE, not past its lease-expiration-time) for the same client on both sides; an
//!    available address with the same owner on both sides (FREE = the primary's, BACKUP = the
//!    secondary's: never FREE on one side and BACKUP on the other); or an ended lease
//!    (EXPIRED, RELEASED, RESET, ABANDONED, ACTIVE past its end). An ended record may face an
//!    available one: neither side hands the address out on the strength of it, so nothing
//!    conflicts — the ISC secondary leaves expiry to the primary in NORMAL (D47), and an
//!    EXPIRED the partner rejected waits for the next expiry; these pairs are counted.
//!    Times are not compared (each side keeps the later lease-expiration-time it heard of,
//!    and the draft dialect shifts received times by the measured skew). Every client still
//!    bound then holds an address that both servers record as ACTIVE for it.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use failover_fsm::accept::{ClientIdentity, LocalBinding};
use failover_fsm::policy::{Endpoint, LeaseGrant, PartnerDownLeases};
use failover_fsm::{BindingStatus, Dialect, ServerState};

use crate::client::{CState, identity};

/// What a record lets a server do, for invariant 4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// A running lease of this client.
    Live(ClientIdentity),
    /// Available to the primary (0, FREE) or the secondary (1, BACKUP).
    Available(u8),
    /// EXPIRED, RELEASED, RESET, ABANDONED, or ACTIVE past its end: not handed out.
    Ended,
}
use crate::world::{NAMES, World};

impl World {
    /// Invariants 1 and 1b, after every step.
    pub(crate) fn check(&mut self) {
        self.untaint();
        if self.nodes.iter().all(|n| {
            n.engine.as_ref().is_some_and(|e| {
                e.state() == ServerState::Normal
                    && e.partner_state() == Some(ServerState::Normal)
                    && e.is_communicating()
            })
        }) {
            for n in &mut self.nodes {
                n.needs_sync = false;
            }
        }
        let now = self.now;
        let mut held: BTreeMap<[u8; 4], usize> = BTreeMap::new();
        for c in &self.clients {
            if let CState::Bound(l) = c.st
                && l.expiry > now
                && let Some(other) = held.insert(l.addr, c.idx)
                && !self.fudged(l.addr, &self.clients[other].identity())
                && !self.fudged(l.addr, &c.identity())
            {
                let msg = format!(
                    "invariant 1: {} is bound to client {} and client {} at once",
                    Ipv4Addr::from(l.addr),
                    other,
                    c.idx
                );
                self.fail(&msg);
            }
        }
        for (addr, k) in held {
            let me = self.clients[k].identity();
            if self.fudged(addr, &me) {
                continue;
            }
            for i in 0..2 {
                let Some(e) = self.nodes[i].store.leases.get(&addr) else {
                    continue;
                };
                if e.local.client.same_client(&me) == Some(true)
                    && e.local.status == BindingStatus::Active
                {
                    continue;
                }
                let local = e.local;
                if self.allocatable(i, &local, false).is_ok() {
                    let msg = format!(
                        "invariant 1b: {} may hand {} (held by client {k} until {} ms) to \
                         another client: its record is {:?}",
                        NAMES[i],
                        Ipv4Addr::from(addr),
                        match self.clients[k].st {
                            CState::Bound(l) => l.expiry.as_millis(),
                            _ => 0,
                        },
                        local
                    );
                    self.fail(&msg);
                }
            }
        }
    }

    /// Whether `addr`, held by `holder`, is exempt from the address checks: ISC's rules
    /// accepted an update there that the draft's rules reject, or the holder's lease was
    /// granted beyond the MCLT limit in PARTNER-DOWN (unrestricted leases).
    pub(crate) fn fudged(&self, addr: [u8; 4], holder: &ClientIdentity) -> bool {
        self.tainted.contains(&addr)
            || self
                .overcap
                .get(&addr)
                .is_some_and(|(c, until)| c == holder && self.now < *until)
    }

    /// Clears the taint of addresses whose records (in memory and stable) agree again on both
    /// (running) servers and whose holders, if any, both servers record as ACTIVE for them.
    pub(crate) fn untaint(&mut self) {
        if self.tainted.is_empty()
            || !self.nodes.iter().all(|n| n.alive())
            || self
                .nodes
                .iter()
                .any(|n| n.served_incomplete && !n.complete)
        {
            return;
        }
        let now = self.now;
        let walls = [self.wall(0), self.wall(1)];
        // A lease running on one side and ended on the other is no agreement (a restored
        // older copy can hold the same client's earlier, shorter lease).
        let running = |e: &crate::support::Stored, wall| {
            e.local.status == BindingStatus::Active
                && e.local.lease_expiration.is_none_or(|t| t >= wall)
        };
        let clean: Vec<[u8; 4]> = self
            .tainted
            .iter()
            .copied()
            .filter(|addr| {
                // In memory and on stable storage: a record still being written is lost in a
                // crash (seed 871436: the primary crashed between taking the partner's lease
                // and committing it, and came back with the address FREE), and one written
                // already may be replaced in memory (the `pair` target: the secondary's
                // durable lease agreed while it had just taken the primary's BACKUP).
                let [p, s] = &self.nodes;
                [(&p.store, &s.store), (&p.durable, &s.durable)]
                    .iter()
                    .all(|(ps, ss)| {
                        let (Some(a), Some(b)) = (ps.leases.get(addr), ss.leases.get(addr)) else {
                            return false;
                        };
                        let agree = a.local.status == b.local.status
                            && running(a, walls[0]) == running(b, walls[1])
                            && (!matches!(
                                a.local.status,
                                BindingStatus::Active
                                    | BindingStatus::Expired
                                    | BindingStatus::Released
                            ) || a.local.client == b.local.client);
                        agree
                            && self.clients.iter().all(|c| match c.st {
                                CState::Bound(l) if l.addr == *addr && l.expiry > now => {
                                    [a, b].iter().all(|e| {
                                        e.local.status == BindingStatus::Active
                                            && e.local.client.same_client(&c.identity())
                                                == Some(true)
                                    })
                                }
                                _ => true,
                            })
                    })
            })
            .collect();
        for a in clean {
            crate::world::slog!(self, "{} untainted: both records agree", Ipv4Addr::from(a));
            self.tainted.remove(&a);
        }
    }

    /// Invariant 1 at the moment a client takes a lease (same as after the step, but with the
    /// granting context still at hand in the log).
    pub(crate) fn check_new_binding(&mut self, k: usize) {
        let CState::Bound(l) = self.clients[k].st else {
            return;
        };
        let now = self.now;
        if let Some(other) = self.clients.iter().find(|c| {
            c.idx != k
                && matches!(c.st, CState::Bound(o) if o.addr == l.addr && o.expiry > now)
                && !self.fudged(l.addr, &c.identity())
        }) {
            let msg = format!(
                "invariant 1: {} granted to client {k} while client {} holds it",
                Ipv4Addr::from(l.addr),
                other.idx
            );
            self.fail(&msg);
        }
    }

    /// Invariant 3, when server `i` grants a lease on `addr` whose record was `local`.
    pub(crate) fn check_mclt(
        &mut self,
        i: usize,
        addr: [u8; 4],
        local: &LocalBinding,
        ep: &Endpoint,
        g: &LeaseGrant,
    ) {
        let wall = self.wall(i);
        let base = [Some(wall), local.acked_pet, local.received_pet]
            .into_iter()
            .flatten()
            .max()
            .unwrap_or(wall);
        let draft = self.p.dialect == Dialect::Draft;
        match ep.state {
            ServerState::PartnerDown
                if draft && self.p.pd_leases == PartnerDownLeases::Unrestricted =>
            {
                // No limit (§9.4.2). A lease beyond the normal limit is one the partner cannot
                // know about when it takes over later: exempt its holder from invariant 1
                // until it ends (the documented risk of unrestricted PARTNER-DOWN leases).
                if g.lease_expiration > base.plus(self.mclt_max) {
                    let client = self.grant_client.unwrap_or(ClientIdentity::NONE);
                    let until = self.now + crate::world::secs(u64::from(g.granted) + 1);
                    self.overcap.insert(addr, (client, until));
                    self.stats.overcap += 1;
                }
                return;
            }
            _ => {}
        }
        let limit = base.plus(self.mclt_max);
        if g.lease_expiration > limit {
            let msg = format!(
                "invariant 3: {} grants {} until {} > MCLT {} + max(now {}, acked PET {:?}, \
                 received PET {:?}) = {} in {:?} (engine MCLT {})",
                NAMES[i],
                Ipv4Addr::from(addr),
                g.lease_expiration.0,
                self.mclt_max,
                wall.0,
                local.acked_pet.map(|t| t.0),
                local.received_pet.map(|t| t.0),
                limit.0,
                ep.state,
                ep.mclt
            );
            self.fail(&msg);
        }
    }

    /// Invariant 2: node `j` acknowledged version `vid` of `addr`.
    pub(crate) fn check_acked(&mut self, j: usize, addr: [u8; 4], vid: u64) {
        if vid == crate::world::INITIAL_VID {
            return; // the untouched FREE record every store starts with
        }
        let n = &self.nodes[j];
        let held = n
            .history
            .get(&addr)
            .and_then(|h| h.iter().rev().find(|(v, _)| *v == vid).copied());
        match held {
            Some(_) => {} // durable now, or lost with the storage since (exempt)
            None => {
                let msg = format!(
                    "invariant 2: {} acknowledged version {vid} of {} that its stable storage \
                     never held",
                    NAMES[j],
                    Ipv4Addr::from(addr)
                );
                self.fail(&msg);
            }
        }
    }

    /// Invariant 4, once the pair has settled after the quiet tail.
    pub(crate) fn check_final(&mut self) {
        let walls = [self.wall(0), self.wall(1)];
        let class = |e: &crate::support::Stored, wall| match e.local.status {
            BindingStatus::Active if e.local.lease_expiration.is_none_or(|t| t >= wall) => {
                Class::Live(e.local.client)
            }
            BindingStatus::Free => Class::Available(0),
            BindingStatus::Backup => Class::Available(1),
            _ => Class::Ended,
        };
        let [p, s] = &self.nodes;
        let mut diffs = Vec::new();
        let mut ended_vs_available = 0;
        for (addr, a) in &p.store.leases {
            if self.tainted.contains(addr) {
                continue;
            }
            let Some(b) = s.store.leases.get(addr) else {
                diffs.push(format!("{} missing on S", Ipv4Addr::from(*addr)));
                continue;
            };
            let (ca, cb) = (class(a, walls[0]), class(b, walls[1]));
            match (ca, cb) {
                _ if ca == cb => {}
                (Class::Ended, Class::Available(_)) | (Class::Available(_), Class::Ended) => {
                    ended_vs_available += 1;
                }
                _ => diffs.push(format!(
                    "{}: P {:?} hw={:?} / S {:?} hw={:?}",
                    Ipv4Addr::from(*addr),
                    a.local.status,
                    a.data
                        .hardware_address
                        .as_ref()
                        .map(|h| h.1.last().copied()),
                    b.local.status,
                    b.data
                        .hardware_address
                        .as_ref()
                        .map(|h| h.1.last().copied()),
                )),
            }
        }
        self.stats.ended_vs_available += ended_vs_available;
        let now = self.now;
        for c in &self.clients {
            if let CState::Bound(l) = c.st
                && l.expiry > now
            {
                if self.fudged(l.addr, &c.identity()) {
                    continue;
                }
                for n in &self.nodes {
                    let e = &n.store.leases[&l.addr];
                    if e.local.status != BindingStatus::Active
                        || e.local.client.same_client(&identity(&c.mac)) != Some(true)
                    {
                        diffs.push(format!(
                            "client {} holds {} but {} records {:?}",
                            c.idx,
                            Ipv4Addr::from(l.addr),
                            NAMES[n.idx],
                            e.local.status
                        ));
                    }
                }
            }
        }
        if !diffs.is_empty() {
            let msg = format!(
                "invariant 4: lease tables differ after settling: {}",
                diffs.join(", ")
            );
            self.fail(&msg);
        }
    }
}
