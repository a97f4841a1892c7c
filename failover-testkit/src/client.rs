//! DHCP clients, and the DHCP-server side of the two servers: what a server answers, which
//! address it picks, how long a lease it grants, lease expiry and pool balancing. The rules are
//! the library's (`failover_fsm::policy::{may_answer, may_allocate_to, judge_request,
//! lease_time, expires_leases}`, `LeaseRecord::{granted, released, expired}`): the calls the
//! `dhcp-server` example makes, so the simulation proves them.
//!
//! A client DISCOVERs (the first server willing to answer and with an address to offer gets
//! its REQUEST), RENEWs with its server at T1, REBINDs with both at T2 (each willing server
//! answers; the client takes the first answer), RELEASEs now and then, and drops its address
//! when the lease ends or on a NAK. Its lease runs from the moment of the ACK for the granted
//! number of seconds: that is the ground truth of invariant 1.
//!
//! Simplifications: DISCOVER and REQUEST happen at one instant; no DECLINE, INFORM or BOOTP;
//! hardware address only (no client-identifier).

use std::net::Ipv4Addr;

use failover_fsm::accept::{ClientIdentity, LocalBinding};
use failover_fsm::policy::{
    AllocRefusal, BalanceTrigger, ClientMessage, Endpoint, LeaseRequest, LeaseTimes, LoadBalance,
    MessageKind, PartnerPool, PoolCounts, RequestAnswer, RequestKind, balance_candidates,
    expires_leases, judge_request, lease_time, may_allocate_to, may_answer,
};
use failover_fsm::record::LeaseClient;
use failover_fsm::{BindingData, Instant, ServerState};
use failover_proto::HardwareAddress;

use crate::world::{NAMES, World, ms, secs, slog};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Lease {
    pub(crate) addr: [u8; 4],
    pub(crate) server: usize,
    pub(crate) expiry: Instant,
    pub(crate) t1: Instant,
    pub(crate) t2: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CState {
    /// Not interested in an address.
    Idle,
    /// Wants one (DISCOVER).
    Init,
    Bound(Lease),
}

#[derive(Debug, Clone)]
pub(crate) struct Client {
    pub(crate) idx: usize,
    pub(crate) mac: [u8; 6],
    pub(crate) st: CState,
    pub(crate) next: Instant,
    /// When the current attempt began (the `secs` field).
    pub(crate) since: Instant,
}

impl Client {
    pub(crate) fn new(idx: usize, start: Instant) -> Client {
        Client {
            idx,
            mac: [0x02, 0x00, 0x5e, 0x10, (idx >> 8) as u8, idx as u8],
            st: CState::Idle,
            next: start,
            since: start,
        }
    }

    pub(crate) fn identity(&self) -> ClientIdentity {
        identity(&self.mac)
    }
}

pub(crate) fn identity(mac: &[u8; 6]) -> ClientIdentity {
    ClientIdentity::new(
        None,
        Some(HardwareAddress {
            htype: 1,
            address: mac,
        }),
    )
}

/// What a server answers a DHCPREQUEST with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reply {
    Ack(u32),
    Nak,
    Silent,
}

impl World {
    // ----- the server's view -----

    pub(crate) fn endpoint(&self, i: usize) -> Option<Endpoint> {
        let e = self.nodes[i].engine.as_ref()?;
        Some(e.endpoint(self.now))
    }

    /// Whether server `i` processes this client message (failover state, load balancing).
    fn answers(&self, i: usize, kind: MessageKind, mac: &[u8; 6], secs: u16) -> bool {
        let n = &self.nodes[i];
        let (Some(ep), Some(e)) = (self.endpoint(i), n.engine.as_ref()) else {
            return false;
        };
        if n.halt_at.is_some() {
            return false;
        }
        if ep.state == ServerState::RecoverDone
            && ep.partner_state == Some(ServerState::PartnerDown)
        {
            // The draft answers renewals in RECOVER-DONE (§9.7.1), but a partner still in
            // PARTNER-DOWN reclaims addresses at PET + MCLT of what it knows while we extend
            // leases (seeds 13106, 815 of the runs that found it): wait until it has left it.
            return false;
        }
        let lb = LoadBalance {
            hba: e.hba(),
            polarity: n.config.hba_polarity,
            max_secs: n.config.load_balance_max_seconds,
        };
        let msg = ClientMessage {
            kind,
            client_id: None,
            chaddr: mac,
            secs,
        };
        let pool = PartnerPool::of(PoolCounts::of(n.store.leases.values()), n.role());
        may_answer(&ep, &lb, &msg, pool).is_serve()
    }

    /// `may_allocate` as this server applies it: the library's
    /// [`may_allocate_to`] (the draft's reuse rules in PARTNER-DOWN, no new clients in
    /// RESOLUTION-INTERRUPTED).
    pub(crate) fn allocatable(
        &self,
        i: usize,
        local: &LocalBinding,
        last_client: bool,
    ) -> Result<(), AllocRefusal> {
        let Some(ep) = self.endpoint(i) else {
            return Err(AllocRefusal::NotServing(ServerState::Startup));
        };
        may_allocate_to(&ep, local, last_client, self.wall(i))
    }

    /// The address server `i` offers `mac`: its last one if it may, else an available one.
    fn pick_address(&mut self, i: usize, mac: &[u8; 6]) -> Option<[u8; 4]> {
        let me = identity(mac);
        let store = &self.nodes[i].store;
        if let Some((a, _)) = store.leases.iter().find(|(a, e)| {
            let _ = a;
            e.local.client.same_client(&me) == Some(true)
                && self.allocatable(i, &e.local, true).is_ok()
        }) {
            return Some(*a);
        }
        let addrs: Vec<[u8; 4]> = store.leases.keys().copied().collect();
        let start = self.rng.below(addrs.len() as u64) as usize;
        let store = &self.nodes[i].store;
        (0..addrs.len())
            .map(|k| addrs[(start + k) % addrs.len()])
            .find(|a| {
                let e = &store.leases[a];
                let same = e.local.client.same_client(&me) == Some(true);
                self.allocatable(i, &e.local, same).is_ok()
            })
    }

    /// A DHCPREQUEST for `addr` (renewing, rebinding): the library's [`judge_request`] (a
    /// renewal too asks `may_allocate`: it refuses a lease the partner records as ended).
    fn request(&mut self, i: usize, addr: [u8; 4], mac: &[u8; 6]) -> Reply {
        let Some(ep) = self.endpoint(i) else {
            return Reply::Silent;
        };
        let local = self.nodes[i].store.leases.get(&addr).map(|e| e.local);
        match judge_request(&ep, local.as_ref(), &identity(mac), self.wall(i)) {
            RequestAnswer::Ack => Reply::Ack(self.grant(i, addr, mac)),
            RequestAnswer::Nak => Reply::Nak,
            RequestAnswer::Silent(_) => Reply::Silent,
        }
    }

    /// Grants `addr` to `mac`: lease time under the MCLT rule, record, BNDUPD.
    fn grant(&mut self, i: usize, addr: [u8; 4], mac: &[u8; 6]) -> u32 {
        let wall = self.wall(i);
        let Some(ep) = self.endpoint(i) else { return 0 };
        let local = self.nodes[i].store.leases[&addr].local;
        let same = local.client.same_client(&identity(mac)) == Some(true);
        // Without the lease-expiration-time for a renewal (seed 19170): the library's rule.
        let times = LeaseTimes::for_client(&local, same);
        let g = lease_time(
            &ep,
            &LeaseRequest {
                now: wall,
                desired: self.p.desired,
                times,
                partner_down: self.p.pd_leases,
            },
        );
        self.grant_client = Some(identity(mac));
        self.check_mclt(i, addr, &local, &ep, &g);
        let client = LeaseClient {
            client_identifier: None,
            htype: 1,
            chaddr: mac,
        };
        let data = self.nodes[i].store.leases[&addr]
            .granted(&client, &g, wall)
            .unwrap();
        self.stats.grants += 1;
        if ep.state == ServerState::PartnerDown {
            self.stats.partner_down_grants += 1;
        }
        slog!(
            self,
            "{} grants {} to client {} for {} s (state {:?})",
            NAMES[i],
            Ipv4Addr::from(addr),
            mac[5],
            g.granted,
            ep.state
        );
        self.local_change(i, data, true);
        // A new binding forgets the previous one's PETs: `LeaseRecord::apply_local` does it.
        g.granted
    }

    fn release(&mut self, i: usize, addr: [u8; 4], mac: &[u8; 6]) {
        let wall = self.wall(i);
        let released = self.nodes[i]
            .store
            .leases
            .get(&addr)
            .and_then(|e| e.released(&identity(mac), wall));
        if let Some(data) = released {
            self.local_change(i, data, true);
        }
    }

    /// Expires the leases of server `i` that ended (ISC's secondary leaves that to the
    /// primary while in NORMAL).
    pub(crate) fn scan(&mut self, i: usize) {
        let Some(ep) = self.endpoint(i) else {
            return;
        };
        // A table being refreshed from the partner (storage lost, or restored from an older
        // copy) is no ground for expiring anything: its leases may have ended or moved long
        // ago, and an EXPIRED from it crosses the partner's current record.
        if !self.nodes[i].complete || !expires_leases(&ep) {
            return;
        }
        let wall = self.wall(i);
        let ended: Vec<_> = self.nodes[i]
            .store
            .leases
            .values()
            .filter_map(|e| e.expired(wall))
            .collect();
        for data in ended {
            self.local_change(i, data, true);
        }
    }

    /// Pool balancing as failover-tokio's stores do it: count, let the engine decide (§7.6, on
    /// both servers in NORMAL), move the library's candidates. Returns the number moved.
    pub(crate) fn balance(&mut self, i: usize, trigger: BalanceTrigger) -> u32 {
        let wall = self.wall(i);
        let n = &mut self.nodes[i];
        let Some(e) = n.engine.as_mut() else {
            return 0;
        };
        let Ok(plan) = e.balance_pools(PoolCounts::of(n.store.leases.values()), trigger) else {
            return 0;
        };
        let moving: Vec<BindingData> = balance_candidates(&plan, n.store.leases.values())
            .map(|r| r.given_to_partner(&plan, wall))
            .collect();
        let k = moving.len();
        for data in moving {
            self.local_change(i, data, true);
        }
        if k > 0 {
            slog!(self, "{} moves {k} addresses to the partner", NAMES[i]);
        }
        k as u32
    }

    // ----- clients -----

    pub(crate) fn client_step(&mut self, k: usize) {
        let now = self.now;
        let c = self.clients[k].clone();
        self.mix(k as u64);
        match c.st {
            CState::Idle => {
                self.clients[k].st = CState::Init;
                self.clients[k].since = now;
                self.clients[k].next = now;
            }
            CState::Init => self.discover(k),
            CState::Bound(l) if now >= l.expiry => {
                slog!(
                    self,
                    "client {} lease of {} ends",
                    c.mac[5],
                    Ipv4Addr::from(l.addr)
                );
                self.clients[k].st = CState::Init;
                self.clients[k].since = now;
                self.clients[k].next = now + ms(self.rng.range(0, 5000));
            }
            CState::Bound(l) => {
                if self.rng.chance(self.p.release_pct) {
                    if self.nodes[l.server].alive()
                        && self.answers(l.server, MessageKind::Release, &c.mac, 0)
                    {
                        self.release(l.server, l.addr, &c.mac);
                    }
                    slog!(
                        self,
                        "client {} releases {}",
                        c.mac[5],
                        Ipv4Addr::from(l.addr)
                    );
                    self.clients[k].st = CState::Idle;
                    self.clients[k].next = now + secs(self.rng.range(1, 600));
                    return;
                }
                let reply = if now < l.t2 {
                    self.renew(k, l)
                } else {
                    self.rebind(k, l)
                };
                match reply {
                    Some((s, Reply::Ack(g))) => self.bind(k, l.addr, s, g),
                    Some((_, Reply::Nak)) => {
                        self.stats.naks += 1;
                        slog!(
                            self,
                            "client {} NAKed for {}",
                            c.mac[5],
                            Ipv4Addr::from(l.addr)
                        );
                        self.clients[k].st = CState::Init;
                        self.clients[k].since = now;
                        self.clients[k].next = now + ms(self.rng.range(0, 3000));
                    }
                    _ => {
                        let target = if now < l.t2 { l.t2 } else { l.expiry };
                        let wait = target.saturating_duration_since(now) / 2;
                        let wait = wait.max(secs(4));
                        self.clients[k].next = (now + wait).min(l.expiry);
                    }
                }
            }
        }
    }

    fn discover(&mut self, k: usize) {
        let now = self.now;
        let mac = self.clients[k].mac;
        let secs_field = u16::try_from(
            now.saturating_duration_since(self.clients[k].since)
                .as_secs(),
        )
        .unwrap_or(u16::MAX);
        let first = self.rng.below(2) as usize;
        for s in [first, 1 - first] {
            if !self.answers(s, MessageKind::Discover, &mac, secs_field) {
                continue;
            }
            if !self.answers(
                s,
                MessageKind::Request(RequestKind::Selecting),
                &mac,
                secs_field,
            ) {
                continue;
            }
            if let Some(addr) = self.pick_address(s, &mac) {
                let g = self.grant(s, addr, &mac);
                self.bind(k, addr, s, g);
                return;
            }
        }
        self.clients[k].next = now + ms(self.rng.range(2000, 10_000));
    }

    fn renew(&mut self, k: usize, l: Lease) -> Option<(usize, Reply)> {
        let mac = self.clients[k].mac;
        let kind = MessageKind::Request(RequestKind::Renewing);
        if !self.answers(l.server, kind, &mac, 0) {
            return None;
        }
        Some((l.server, self.request(l.server, l.addr, &mac)))
    }

    fn rebind(&mut self, k: usize, l: Lease) -> Option<(usize, Reply)> {
        let mac = self.clients[k].mac;
        let kind = MessageKind::Request(RequestKind::Rebinding);
        let first = self.rng.below(2) as usize;
        let mut taken = None;
        for s in [first, 1 - first] {
            if !self.answers(s, kind, &mac, 0) {
                continue;
            }
            let r = self.request(s, l.addr, &mac);
            if taken.is_none() && r != Reply::Silent {
                taken = Some((s, r));
            }
        }
        taken
    }

    fn bind(&mut self, k: usize, addr: [u8; 4], server: usize, granted: u32) {
        // The protocol's times are whole seconds: the server records lease-expiration-time =
        // its clock's second + granted. The client's lease runs in the same seconds (else the
        // partner's `now ≥ MCLT + max(...)` reuse rule would open up to a second before the
        // client's lease ends — an artefact of the sub-second simulation clock).
        let now = Instant::from_secs(self.now.as_millis() / 1000);
        let g = u64::from(granted) * 1000;
        let lease = Lease {
            addr,
            server,
            expiry: now + ms(g),
            t1: now + ms(g / 2),
            t2: now + ms(g * 7 / 8),
        };
        self.clients[k].st = CState::Bound(lease);
        self.clients[k].next = lease.t1;
        self.check_new_binding(k);
    }
}
