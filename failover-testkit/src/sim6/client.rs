//! DHCPv6 clients (one IA_NA, and for some one IA_PD) and the DHCP-server side of both
//! servers. A client solicits from either server (whichever answers first), renews with the
//! one that gave its lease, rebinds with the other when that one does not answer, releases,
//! or lets its leases run out. The server decides with `failover_fsm::v6` only: whether it may
//! give a lease ([`allocate::may_allocate`], which applies [`allocate::allocates`] /
//! [`allocate::renews`] and [`owner`]), for how long ([`lifetime::grant`], §4.4), and tells its
//! partner by [`send_binding`](failover_fsm::engine::Engine::send_binding) after every change
//! (lazy update, §4.3).

use failover_fsm::Instant;
use failover_fsm::v6::allocate::{self, Endpoint, Request};
use failover_fsm::v6::state::from_v4;
use failover_fsm::v6::{lifetime, owner};
use failover_proto::v6::{BindingStatus, IaKind, ServerState};

use super::server::key;
use super::{NAMES, World6, ms, secs};
use crate::rng::Rng;

/// A lease a client holds: which slot, until when (the simulation's clock), and from whom.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Held {
    pub(crate) slot: usize,
    pub(crate) until: Instant,
    pub(crate) server: usize,
}

pub(crate) struct Client {
    pub(crate) id: u32,
    pub(crate) wants_pd: bool,
    pub(crate) na: Option<Held>,
    pub(crate) pd: Option<Held>,
    /// When it next talks to a server (solicit, renew).
    pub(crate) next_at: Instant,
}

impl Client {
    pub(crate) fn new(id: u32, rng: &mut Rng) -> Client {
        Client {
            id,
            wants_pd: rng.chance(50),
            na: None,
            pd: None,
            next_at: Instant::from_secs(rng.range(20, 90)),
        }
    }

    pub(crate) fn next_due(&self, active: bool) -> Option<Instant> {
        let ends = [self.na, self.pd].into_iter().flatten().map(|h| h.until);
        let own = active.then_some(self.next_at);
        ends.chain(own).min()
    }

    fn held(&self, ia: IaKind) -> Option<Held> {
        if ia == IaKind::Na { self.na } else { self.pd }
    }

    fn set(&mut self, ia: IaKind, h: Option<Held>) {
        if ia == IaKind::Na {
            self.na = h;
        } else {
            self.pd = h;
        }
    }
}

impl World6 {
    /// Clients drop the leases whose valid lifetime ended.
    pub(crate) fn clients_expire(&mut self) {
        for c in 0..self.clients.len() {
            for ia in [IaKind::Na, IaKind::Pd] {
                if let Some(h) = self.clients[c].held(ia)
                    && h.until <= self.now
                {
                    self.clients[c].set(ia, None);
                    self.checks.dropped(h.slot, c as u32);
                }
            }
        }
    }

    pub(crate) fn client_actions(&mut self) {
        for c in 0..self.clients.len() {
            if self.clients[c].next_at <= self.now {
                self.client_turn(c);
            }
        }
    }

    fn client_turn(&mut self, c: usize) {
        let cl = &self.clients[c];
        let held = cl.na.is_some() || cl.pd.is_some();
        let wants = [IaKind::Na]
            .into_iter()
            .chain(cl.wants_pd.then_some(IaKind::Pd))
            .collect::<Vec<_>>();
        if held && self.rng.chance(15) {
            self.release(c);
            self.clients[c].next_at = self.now + secs(self.rng.range(7, 120));
            return;
        }
        if held && self.rng.chance(10) {
            // It goes quiet and lets its leases run out (the server expires them, §7.2).
            let end = [self.clients[c].na, self.clients[c].pd]
                .into_iter()
                .flatten()
                .map(|h| h.until)
                .max();
            let end = end.unwrap_or(self.now);
            self.clients[c].next_at = end + secs(self.rng.range(7, 60));
            return;
        }
        for ia in wants {
            match self.clients[c].held(ia) {
                // Renew with the server that gave it, else rebind with the other.
                Some(h) => {
                    let first = h.server;
                    if !self.ask(c, ia, Some(h.slot), first) {
                        self.ask(c, ia, Some(h.slot), 1 - first);
                    }
                }
                // Solicit: both servers hear it; whichever may answer does.
                None => {
                    let first = self.rng.below(2) as usize;
                    if !self.ask(c, ia, None, first) {
                        self.ask(c, ia, None, 1 - first);
                    }
                }
            }
        }
        // Next: half-way through the shortest lease (T1), or a retry.
        let next = [self.clients[c].na, self.clients[c].pd]
            .into_iter()
            .flatten()
            .map(|h| {
                let left = h.until.as_millis().saturating_sub(self.now.as_millis());
                self.now + ms((left / 2).max(1000))
            })
            .min()
            .unwrap_or(self.now + secs(self.rng.range(7, 30)));
        self.clients[c].next_at = next;
    }

    /// The client's RELEASE of everything it holds, to the server that gave each lease (or,
    /// unreachable, nobody: the lease then runs out at the server).
    fn release(&mut self, c: usize) {
        let id = self.clients[c].id;
        for ia in [IaKind::Na, IaKind::Pd] {
            let Some(h) = self.clients[c].held(ia) else {
                continue;
            };
            self.clients[c].set(ia, None);
            self.checks.dropped(h.slot, id);
            let i = h.server;
            let Some(e) = self.servers[i].engine.as_ref() else {
                continue;
            };
            let Some(state) = from_v4(e.state()) else {
                continue;
            };
            if !allocate::renews(self.servers[i].role, state) {
                continue;
            }
            let wall = self.servers[i].wall(self.now);
            let stamp = self.bump();
            let r = &mut self.servers[i].store.recs[h.slot];
            if r.lease.client != Some(key(id, ia)) || r.lease.status != BindingStatus::Active {
                continue;
            }
            r.lease.release(wall);
            r.mine = true;
            r.stamp = stamp;
            r.changed = wall.0;
            self.stats.releases += 1;
            self.log(format_args!(
                "client {id} releases slot {} at {}",
                h.slot, NAMES[i]
            ));
            self.send_binding(i, id);
        }
    }

    /// Client `c` asks server `i` for a lease of `ia` (its lease `slot` to renew, or any);
    /// whether it got one.
    fn ask(&mut self, c: usize, ia: IaKind, slot: Option<usize>, i: usize) -> bool {
        let id = self.clients[c].id;
        let Some(e) = self.servers[i].engine.as_ref() else {
            return false;
        };
        let Some(state) = from_v4(e.state()) else {
            return false;
        };
        let now = self.now;
        let s = &self.servers[i];
        let wall = s.wall(now);
        let ep = Endpoint {
            role: s.role,
            state,
            state_since: e.status(now).state_since,
            mclt: e.mclt(),
        };
        let k = key(id, ia);
        let slots: Vec<usize> = (0..self.pool.len())
            .filter(|x| self.pool.ia(*x) == ia)
            .collect();
        let own_pool_empty = !slots.iter().any(|x| {
            owner::available_to(self.pool.kind(*x), s.store.recs[*x].lease.status) == Some(s.role)
        });
        let candidates: Vec<usize> = match slot {
            Some(x) => vec![x],
            None => {
                // Its last lease first, then the pool from a random place.
                let start = self.rng.below(slots.len() as u64) as usize;
                let mut v: Vec<usize> = slots
                    .iter()
                    .copied()
                    .filter(|x| self.servers[i].store.recs[*x].lease.client == Some(k))
                    .collect();
                v.extend((0..slots.len()).map(|n| slots[(start + n) % slots.len()]));
                v
            }
        };
        for x in candidates {
            let lease = self.servers[i].store.recs[x].lease;
            let request = Request {
                resource: self.pool.kind(x),
                last_client: lease.client == Some(k),
                own_pool_empty,
            };
            if allocate::may_allocate(&ep, &lease, request, wall).is_ok() {
                self.grant(c, ia, x, i, state);
                return true;
            }
        }
        self.stats.refusals += 1;
        false
    }

    /// Server `i` gives slot `x` to client `c`: the lifetime by the MCLT rule (§4.4), the
    /// record ACTIVE for the client, a BNDUPD queued.
    fn grant(&mut self, c: usize, ia: IaKind, x: usize, i: usize, state: ServerState) {
        let id = self.clients[c].id;
        let k = key(id, ia);
        let now = self.now;
        let wall = self.servers[i].wall(now);
        let mclt = self.servers[i].engine.as_ref().unwrap().mclt();
        let lease = self.servers[i].store.recs[x].lease;
        let same = lease.client == Some(k);
        let renewal = same && lease.status == BindingStatus::Active;
        let acked = if same {
            lease.acked_partner_lifetime
        } else {
            None
        };
        let g = lifetime::grant(state, mclt, wall, self.params.desired, acked);
        // (c) the MCLT rule, from the record as it was: outside PARTNER-DOWN the lifetime
        // ends no later than max(acked-partner-lifetime, now) + MCLT (§4.4).
        let end = wall.plus(g.granted);
        if state == ServerState::PartnerDown {
            self.stats.partner_down_grants += 1;
        } else {
            let bound = acked.unwrap_or(wall).max(wall).plus(mclt);
            if end > bound {
                self.fail(format_args!(
                    "(c) {} gave client {id} slot {x} until {} beyond max(acked {:?}, now {}) + \
                     MCLT {mclt} = {} in {state:?}",
                    NAMES[i], end.0, acked, wall.0, bound.0
                ));
            }
        }
        let until = Instant::from_secs(now.as_millis() / 1000 + u64::from(g.granted));
        // (a) nobody else still holds it.
        self.checks
            .granted(x, id, until, now, i)
            .unwrap_or_else(|what| {
                self.fail(format_args!("(a) {} gave slot {x}: {what}", NAMES[i]))
            });
        let stamp = self.bump();
        let r = &mut self.servers[i].store.recs[x];
        r.lease.grant(k, &g, wall);
        r.mine = true;
        r.stamp = stamp;
        r.changed = wall.0;
        if renewal {
            self.stats.renewals += 1;
        } else {
            self.stats.grants += 1;
        }
        if ia == IaKind::Pd && !renewal {
            self.stats.prefix_grants += 1;
        }
        self.hash(&[i as u8, x as u8, id as u8, (g.granted & 0xff) as u8]);
        self.log(format_args!(
            "{} gives slot {x} to client {id} for {} s ({state:?}{})",
            NAMES[i],
            g.granted,
            if renewal { ", renewal" } else { "" }
        ));
        self.clients[c].set(
            ia,
            Some(Held {
                slot: x,
                until,
                server: i,
            }),
        );
        self.send_binding(i, id);
    }
}
