//! The deterministic simulator of a DHCPv6 failover pair (RFC 8156): two
//! `Engine<_, _, _, V6>`, their durable lease stores, the connection between them, DHCPv6
//! clients asking for addresses (IA_NA) and delegated prefixes (IA_PD), seeded faults, and the
//! invariants checked after every step. Section numbers (§x.y) are RFC 8156's.
//!
//! * this module: the world — one virtual clock jumping to the next thing due, the
//!   connection (framed bytes, in order, with latency; lost on a cut), the engines' actions
//!   and events, the main loop ([`World6::run`]);
//! * [`server`]: a server's engine and durable store, and the store's side of
//!   `LeaseLookup6`, `BindingSource6` and `UpdateSink6`;
//! * [`client`]: the DHCPv6 clients and the DHCP-server side, which decides every grant with
//!   `failover_fsm::v6` (`allocate`, `lifetime`, `owner`) and nothing else;
//! * [`faults`]: the seeded faults and the assumptions they respect;
//! * [`check`]: the invariants.
//!
//! Every choice comes from one [`Rng`] seeded by the run's seed, so a seed
//! replays exactly; [`World6::digest`] sums up a run.

pub mod check;
pub mod client;
pub mod faults;
pub mod server;

use std::collections::{BTreeMap, VecDeque};
use std::io::Write;

use failover_fsm::engine::{Action, BindingHandle, Event};
use failover_fsm::v6::wire_time;
use failover_fsm::{Config, Instant, Role, ServerState};

use crate::rng::Rng;
use check::Checks;
use client::Client;
use server::{Engine6, Logged, Pool, Rec, Server, View};

pub(crate) const NAMES: [&str; 2] = ["primary", "secondary"];

pub(crate) fn ms(n: u64) -> core::time::Duration {
    core::time::Duration::from_millis(n)
}

pub(crate) fn secs(n: u64) -> core::time::Duration {
    core::time::Duration::from_secs(n)
}

/// What a seed draws.
#[derive(Debug, Clone, Copy)]
pub struct Params6 {
    pub mclt: u32,
    /// The lifetime clients are given when the MCLT does not cut it (§4.4's desired).
    pub desired: u32,
    pub clients: usize,
    pub pool: (usize, usize),
    /// Seconds of the fault phase.
    pub fault_secs: u64,
    pub receive_timer: u32,
}

/// What a run did.
#[derive(Debug, Default, Clone)]
pub struct Stats6 {
    pub steps: u64,
    /// Messages delivered between the servers.
    pub messages: u64,
    pub grants: u64,
    pub renewals: u64,
    /// Grants in PARTNER-DOWN (exempt from the MCLT rule, §8.4.1).
    pub partner_down_grants: u64,
    pub prefix_grants: u64,
    pub refusals: u64,
    pub releases: u64,
    pub expiries: u64,
    pub acked: u64,
    pub rejected: u64,
    /// Rejections by status code.
    pub rejects: BTreeMap<String, u64>,
    pub faults: BTreeMap<&'static str, u64>,
    pub states: BTreeMap<&'static str, u64>,
    /// ACTIVE records on one side only, held by no client, when the records are compared.
    pub stale_at_end: u64,
    /// Leases a client holds that one server records as RELEASED or EXPIRED for it at the end.
    pub held_not_active: u64,
    /// Acknowledged leases checked again after their store lost its table and refreshed.
    pub refreshed_checked: u64,
    /// Received ACTIVE leases of the same client whose earlier end the library did not take
    /// (`Verdict::update_partner`): the binding went back to the partner.
    pub kept_later_expiration: u64,
    /// Leases held by no client that neither server may give out at the end.
    pub lost_at_end: u64,
    /// Virtual seconds until both were NORMAL in the quiet phase.
    pub settle_secs: u64,
}

/// A message on its way: delivered to `to` at `due`.
struct InFlight {
    due: Instant,
    to: usize,
    bytes: Vec<u8>,
}

/// The connection between the servers (the primary connects, §6.1).
pub(crate) struct Link {
    pub up: bool,
    flight: VecDeque<InFlight>,
    /// The last delivery time each way (messages stay in order).
    last_due: [Instant; 2],
    /// The primary tries to connect from then on.
    pub reconnect_at: Option<Instant>,
    /// A side closed: the connection goes down once its last messages are delivered.
    close_at: Option<Instant>,
    /// A latency spike lasts until then.
    pub spike_until: Instant,
}

/// The phases of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Faults,
    /// No more faults; the servers must both reach NORMAL.
    Quiet,
    /// Clients stopped; records settle before they are compared.
    Drain {
        until: Instant,
    },
    Done,
}

/// A simulated DHCPv6 failover pair.
pub struct World6 {
    pub seed: u64,
    pub params: Params6,
    pub now: Instant,
    pub stats: Stats6,
    /// A hash of everything sent and granted.
    pub digest: u64,
    pub(crate) rng: Rng,
    pub(crate) pool: Pool,
    pub(crate) servers: [Server; 2],
    pub(crate) link: Link,
    pub(crate) clients: Vec<Client>,
    pub(crate) checks: Checks,
    /// The write counter behind [`Rec::stamp`].
    pub(crate) stamp: u64,
    pub(crate) next_fault: Instant,
    phase: Phase,
    quiet_from: Instant,
    log: Option<Box<dyn Write>>,
}

impl World6 {
    /// A run of `seed` with `fault_secs` seconds of faults; `log` gets a line per event.
    pub fn new(seed: u64, fault_secs: u64, log: Option<Box<dyn Write>>) -> World6 {
        let mut rng = Rng::new(seed);
        let mclt = rng.pick(&[30u32, 60, 120]);
        let clients = rng.range(3, 12) as usize;
        let params = Params6 {
            mclt,
            desired: mclt * rng.range(2, 6) as u32,
            clients,
            pool: (2 * clients + 4, clients / 2 + 2),
            fault_secs,
            receive_timer: rng.pick(&[10u32, 20, 60]),
        };
        let pool = Pool {
            addresses: params.pool.0,
            prefixes: params.pool.1,
        };
        // The secondary's clock within ±2 s of the primary's: §7.1 allows 5.
        let skew = rng.range(0, 4) as i64 - 2;
        let mut servers = [
            Server::new(Role::Primary, 0, &pool),
            Server::new(Role::Secondary, skew, &pool),
        ];
        for (i, s) in servers.iter_mut().enumerate() {
            s.engine = Some(Box::new(
                Engine6::new(
                    config(s.role, &params),
                    None,
                    Instant::ZERO,
                    s.wall(Instant::ZERO),
                    (seed as u32).wrapping_mul(7).wrapping_add(i as u32),
                )
                .unwrap(),
            ));
        }
        let clients = (0..params.clients)
            .map(|id| Client::new(id as u32, &mut rng))
            .collect();
        let first_fault = Instant::from_secs(60 + rng.below(60));
        let mut w = World6 {
            seed,
            params,
            now: Instant::ZERO,
            stats: Stats6::default(),
            digest: 0xcbf2_9ce4_8422_2325,
            rng,
            pool,
            servers,
            link: Link {
                up: false,
                flight: VecDeque::new(),
                last_due: [Instant::ZERO; 2],
                reconnect_at: Some(Instant::from_secs(1)),
                close_at: None,
                spike_until: Instant::ZERO,
            },
            clients,
            checks: Checks::default(),
            stamp: 0,
            next_fault: first_fault,
            phase: Phase::Faults,
            quiet_from: Instant::from_secs(fault_secs),
            log,
        };
        w.log(format_args!(
            "seed {seed}: {params:?}, secondary clock {skew:+} s"
        ));
        w
    }

    pub(crate) fn log(&mut self, what: core::fmt::Arguments<'_>) {
        if let Some(l) = self.log.as_mut() {
            let _ = writeln!(l, "{:>9.3} {}", self.now.as_millis() as f64 / 1000.0, what);
        }
    }

    pub(crate) fn hash(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.digest = (self.digest ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    pub(crate) fn bump(&mut self) -> u64 {
        self.stamp += 1;
        self.stamp
    }

    /// Runs to the end: the fault phase, the quiet phase until both are NORMAL, then the
    /// drain and the comparison of the records. Panics on a violated invariant.
    pub fn run(&mut self, max_steps: u64) {
        while self.phase != Phase::Done {
            if self.stats.steps >= max_steps {
                self.fail(format_args!("no end after {max_steps} steps"));
            }
            self.now = self.next_due().max(self.now);
            self.step();
        }
    }

    /// A violated invariant: panics with the seed, the step and what broke.
    pub(crate) fn fail(&mut self, what: core::fmt::Arguments<'_>) -> ! {
        let msg = format!(
            "seed {} step {} at {:.3} s: {}",
            self.seed,
            self.stats.steps,
            self.now.as_millis() as f64 / 1000.0,
            what
        );
        self.log(format_args!("VIOLATION {msg}"));
        if let Some(l) = self.log.as_mut() {
            let _ = l.flush();
        }
        panic!("{msg}");
    }

    fn next_due(&self) -> Instant {
        let mut next = [
            self.link.flight.front().map(|f| f.due),
            self.link.reconnect_at,
            self.link.close_at,
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(Instant::from_millis(u64::MAX));
        let mut at = |t: Instant| next = next.min(t);
        for s in &self.servers {
            if let Some(e) = &s.engine {
                if let Some(t) = e.poll_timeout() {
                    at(t);
                }
                if let Some(t) = self.expiry_due(s) {
                    at(t);
                }
            }
            if let Some(t) = s.restart_at {
                at(t);
            }
        }
        for c in &self.clients {
            if let Some(t) = c.next_due(self.phase_clients()) {
                at(t);
            }
        }
        match self.phase {
            Phase::Faults => {
                at(self.next_fault);
                at(self.quiet_from);
            }
            Phase::Quiet => at(self.now + secs(1)),
            Phase::Drain { until } => at(until),
            Phase::Done => {}
        }
        next
    }

    fn phase_clients(&self) -> bool {
        matches!(self.phase, Phase::Faults | Phase::Quiet)
    }

    /// The earliest end of an ACTIVE lease this server made.
    fn expiry_due(&self, s: &Server) -> Option<Instant> {
        s.store
            .recs
            .iter()
            .filter(|r| r.mine)
            .filter_map(|r| r.lease.expires_at())
            .map(|t| s.instant_of(t))
            .min()
    }

    fn step(&mut self) {
        self.stats.steps += 1;
        let clients_on = self.phase_clients();
        self.clients_expire();
        self.deliver();
        self.link_events();
        for i in 0..2 {
            self.timeouts(i);
        }
        self.expire_leases();
        if self.phase == Phase::Faults && self.now >= self.next_fault {
            self.inject_fault();
        }
        if clients_on {
            self.client_actions();
        }
        for i in 0..2 {
            self.flush(i);
        }
        self.check_step();
        self.advance_phase();
    }

    fn advance_phase(&mut self) {
        match self.phase {
            Phase::Faults if self.now >= self.quiet_from => {
                self.log(format_args!("quiet phase"));
                self.phase = Phase::Quiet;
                // Whoever is down comes back now.
                for i in 0..2 {
                    if let Some(t) = self.servers[i].restart_at.as_mut() {
                        *t = (*t).min(self.now + secs(1));
                    }
                }
                if !self.link.up && self.link.reconnect_at.is_none() {
                    self.link.reconnect_at = Some(self.now + secs(1));
                }
            }
            Phase::Quiet => {
                let normal = self.servers.iter().all(|s| {
                    s.engine
                        .as_ref()
                        .is_some_and(|e| e.state() == ServerState::Normal)
                });
                let limit = u64::from(self.params.mclt) * 4 + 900;
                let waited = (self.now.as_millis() - self.quiet_from.as_millis()) / 1000;
                if normal {
                    self.stats.settle_secs = waited;
                    self.log(format_args!("both NORMAL after {waited} s: clients stop"));
                    self.phase = Phase::Drain {
                        until: self.now + secs(30),
                    };
                } else if waited > limit {
                    let st: Vec<_> = self
                        .servers
                        .iter()
                        .map(|s| s.engine.as_ref().map(|e| e.state()))
                        .collect();
                    self.fail(format_args!(
                        "(d) not both NORMAL {waited} s into the quiet phase: {st:?}"
                    ));
                }
            }
            Phase::Drain { until } if self.now >= until => {
                self.check_agreement();
                self.phase = Phase::Done;
            }
            _ => {}
        }
    }

    // ----- the connection -----

    /// Delivers the messages due, in order, through each receiver's framer.
    fn deliver(&mut self) {
        while self.link.flight.front().is_some_and(|f| f.due <= self.now) {
            let f = self.link.flight.pop_front().unwrap();
            let to = f.to;
            if !self.servers[to].alive() {
                continue;
            }
            let mut input = &f.bytes[..];
            loop {
                let msg = match self.servers[to].framer.next_message(&mut input) {
                    Ok(Some(m)) => m.to_vec(),
                    Ok(None) => break,
                    Err(e) => self.fail(format_args!("framing error at {}: {e:?}", NAMES[to])),
                };
                self.receive(to, &msg);
            }
        }
    }

    fn receive(&mut self, to: usize, msg: &[u8]) {
        self.stats.messages += 1;
        self.settle(to);
        let now = self.now;
        let pool = self.pool;
        let s = &mut self.servers[to];
        let wall = s.wall(now);
        let view = View {
            store: &s.store,
            pool,
            wall,
            full: &s.full,
        };
        let e = s.engine.as_mut().unwrap();
        if let Err(err) = e.handle_message(now, wall, msg, &view, &mut s.sink) {
            self.fail(format_args!("{} handle_message: {err:?}", NAMES[to]));
        }
        self.settle(to);
    }

    /// Sends what server `i` has, after its actions and events.
    fn flush(&mut self, i: usize) {
        if !self.servers[i].alive() {
            return;
        }
        self.settle(i);
        self.retry_sends(i);
        let now = self.now;
        let pool = self.pool;
        let mut buf = vec![0u8; 4096];
        let mut out = Vec::new();
        {
            let s = &mut self.servers[i];
            let wall = s.wall(now);
            let view = View {
                store: &s.store,
                pool,
                wall,
                full: &s.full,
            };
            let e = s.engine.as_mut().unwrap();
            while let Some(n) = e.poll_transmit(now, &mut buf, &view) {
                out.push(buf[..n].to_vec());
            }
        }
        for m in out {
            self.hash(&m);
            self.send(i, m);
        }
        self.settle(i);
    }

    fn send(&mut self, from: usize, bytes: Vec<u8>) {
        if !self.link.up {
            return;
        }
        let lat = if self.now < self.link.spike_until {
            self.rng.range(500, 8000)
        } else {
            self.rng.range(1, 20)
        };
        let to = 1 - from;
        let due = (self.now + ms(lat)).max(self.link.last_due[to]);
        self.link.last_due[to] = due;
        // The stream may split a message: the framer joins it again.
        if bytes.len() > 4 && self.rng.chance(20) {
            let cut = self.rng.range(1, bytes.len() as u64 - 1) as usize;
            self.link.flight.push_back(InFlight {
                due,
                to,
                bytes: bytes[..cut].to_vec(),
            });
            self.link.flight.push_back(InFlight {
                due,
                to,
                bytes: bytes[cut..].to_vec(),
            });
        } else {
            self.link.flight.push_back(InFlight { due, to, bytes });
        }
    }

    /// The connection goes down (a cut, a crash, a close); the primary reconnects after
    /// `retry` (if given).
    pub(crate) fn connection_down(&mut self, retry: Option<core::time::Duration>) {
        if self.link.up {
            self.log(format_args!("connection down"));
        }
        self.link.up = false;
        self.link.flight.clear();
        self.link.close_at = None;
        let now = self.now;
        for i in 0..2 {
            if let Some(e) = self.servers[i].engine.as_mut() {
                e.connection_down(now);
            }
            self.servers[i].closed = false;
            self.settle(i);
        }
        if let Some(r) = retry {
            self.link.reconnect_at = Some(now + r);
        }
    }

    fn link_events(&mut self) {
        if self.link.close_at.is_some_and(|t| t <= self.now) {
            let r = secs(self.rng.range(1, 5));
            self.connection_down(Some(r));
        }
        for i in 0..2 {
            if self.servers[i].restart_at.is_some_and(|t| t <= self.now) {
                // Only on a calm network (see `faults`).
                if self.now < self.link.spike_until {
                    self.servers[i].restart_at = Some(self.link.spike_until);
                } else {
                    self.restart(i);
                }
            }
        }
        if self.link.reconnect_at.is_some_and(|t| t <= self.now) && !self.link.up {
            self.link.reconnect_at = None;
            if self.servers.iter().all(Server::alive) {
                self.connect();
            }
            // Else the restart of the one down schedules the next try.
        }
    }

    fn connect(&mut self) {
        self.log(format_args!("connection up"));
        let now = self.now;
        self.link.up = true;
        self.link.flight.clear();
        self.link.last_due = [now; 2];
        for i in 0..2 {
            let s = &mut self.servers[i];
            s.framer.reset();
            s.closed = false;
            let _ = s.engine.as_mut().unwrap().connection_up(now);
        }
    }

    fn timeouts(&mut self, i: usize) {
        let now = self.now;
        if let Some(e) = self.servers[i].engine.as_mut()
            && e.poll_timeout().is_some_and(|t| t <= now)
        {
            e.handle_timeout(now);
            self.settle(i);
        }
    }

    // ----- the store's side of the engine -----

    /// Carries out server `i`'s commits, answers, actions and events.
    pub(crate) fn settle(&mut self, i: usize) {
        if !self.servers[i].alive() {
            return;
        }
        self.commit(i);
        self.store_answers(i);
        self.update_partner(i);
        let now = self.now;
        while let Some(a) = self.servers[i].engine.as_mut().unwrap().poll_action() {
            let s = &mut self.servers[i];
            let e = s.engine.as_mut().unwrap();
            match a {
                Action::Persist { token, snapshot } => {
                    s.persisted = Some(snapshot);
                    e.persist_complete(token).unwrap();
                }
                Action::CloseConnection => {
                    s.closed = true;
                    if self.link.up && self.link.close_at.is_none() {
                        let last = self.link.last_due[0].max(self.link.last_due[1]);
                        self.link.close_at = Some(last.max(now) + ms(1));
                    }
                }
                // Prefixes stay the primary's: no proportional split in this world.
                Action::PoolRequested => e.pool_response(0),
                // UPDREQALL: everything we know, the partner's own leases included (it may
                // have lost them); UPDREQ: what we changed (§7.5).
                Action::SendAllBindings => {
                    for id in 0..self.clients.len() as u32 {
                        self.servers[i].full.insert(id, None);
                        self.send_binding(i, id);
                    }
                    self.servers[i].engine.as_mut().unwrap().end_of_updates();
                }
                Action::SendUnackedBindings => {
                    self.send_ours(i);
                    self.servers[i].engine.as_mut().unwrap().end_of_updates();
                }
                _ => {}
            }
        }
        while let Some(ev) = self.servers[i].engine.as_mut().unwrap().poll_event() {
            if let Event::StateChanged { to, .. } = ev {
                *self.stats.states.entry(state_name(to)).or_default() += 1;
                self.log(format_args!("{} -> {to:?}", NAMES[i]));
                self.on_state(i, to);
            } else if self.log.is_some() {
                self.log(format_args!("{} event {ev:?}", NAMES[i]));
            }
        }
    }

    fn on_state(&mut self, i: usize, to: ServerState) {
        if to == ServerState::Normal
            && self.servers[1 - i]
                .engine
                .as_ref()
                .is_some_and(|e| e.state() == ServerState::Normal)
        {
            self.servers[0].declared_pd = false;
            self.servers[1].declared_pd = false;
        }
        if matches!(
            to,
            ServerState::RecoverWait | ServerState::RecoverDone | ServerState::Normal
        ) && self.servers[i].refreshing
        {
            self.servers[i].refreshing = false;
            self.check_refreshed(i);
        }
    }

    /// Stores the partner's accepted leases ([`LocalLease::store_received`]) and confirms
    /// them: the store is synchronous and durable.
    fn commit(&mut self, i: usize) {
        let commits = std::mem::take(&mut self.servers[i].sink.commits);
        let mut kept_later = 0;
        let mut resend = Vec::new();
        for (token, addr, client, verdict) in commits {
            let stamp = self.bump();
            let slot = self.pool.slot(addr).unwrap();
            let s = &mut self.servers[i];
            let r: &mut Rec = &mut s.store.recs[slot];
            r.lease.store_received(client, &verdict);
            // The library kept our later end of a same client's ACTIVE, and the partner gets
            // it back. Who expires the lease stays who made the binding (a lease we granted
            // stays ours; the partner's renewal with an end earlier than ours is still the
            // partner's: it talked to the client last).
            r.mine = r.mine && verdict.update_partner;
            if verdict.update_partner {
                kept_later += 1;
                resend.push(client);
            }
            r.stamp = stamp;
            r.changed = [
                verdict.partner_raw_clt_time,
                verdict.start_time_of_state,
                verdict.cltt,
            ]
            .into_iter()
            .flatten()
            .max()
            .map_or(0, |t| t.0);
            let log = &mut s.store.log[slot];
            log.push(Logged {
                stamp,
                status: r.lease.status,
                client: r.lease.client,
                start: r.lease.start_time_of_state,
                cltt: r.lease.cltt,
                changed: r.changed,
            });
            if log.len() > 16 {
                log.remove(0);
            }
            let lease = r.lease;
            let _ = s.engine.as_mut().unwrap().binding_committed(token);
            if self.log.is_some() {
                self.log(format_args!(
                    "{} stores slot {slot} from partner: {lease:?}",
                    NAMES[i]
                ));
            }
        }
        self.stats.kept_later_expiration += kept_later;
        for client in resend {
            if let Some(id) = self.client_of(client) {
                self.servers[i].full.insert(id, None);
                self.send_binding(i, id);
            }
        }
    }

    /// The partner's leases refused as outdated: the partner must be updated (§7.5.4,
    /// [`LocalLease::refused_as_outdated`]): the binding goes whole now if the flag was
    /// clear, else on the periodic scan ([`UPDATE_SCAN_SECS`]).
    fn update_partner(&mut self, i: usize) {
        let outdated = std::mem::take(&mut self.servers[i].sink.outdated);
        let mut now_ids = Vec::new();
        for addr in outdated {
            let slot = self.pool.slot(addr).unwrap();
            let r = &mut self.servers[i].store.recs[slot];
            if r.lease.refused_as_outdated() {
                now_ids.extend(r.lease.client);
            }
        }
        let scan = self.now >= self.servers[i].scan_at;
        if scan {
            self.servers[i].scan_at = self.now + secs(UPDATE_SCAN_SECS);
            now_ids.extend(
                self.servers[i]
                    .store
                    .recs
                    .iter()
                    .filter(|r| r.lease.update_partner)
                    .filter_map(|r| r.lease.client),
            );
        }
        let mut ids: Vec<u32> = now_ids
            .into_iter()
            .filter_map(|c| self.client_of(Some(c)))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        for id in ids {
            self.servers[i].full.insert(id, None);
            self.send_binding(i, id);
        }
    }

    /// Stores the partner's answers to ours ([`LocalLease::store_ack`]).
    fn store_answers(&mut self, i: usize) {
        let answers = std::mem::take(&mut self.servers[i].sink.answers);
        let mut freed_bindings = Vec::new();
        for (update, handle, addr, status, sent, outcome) in answers {
            let slot = self.pool.slot(addr).unwrap();
            let full = &mut self.servers[i].full;
            if full.get(&handle.0) == Some(&Some(update)) {
                full.remove(&handle.0);
            }
            if self.log.is_some() {
                self.log(format_args!(
                    "{} answer for slot {slot} of client {}: {status:?} {outcome:?}",
                    NAMES[i], handle.0
                ));
            }
            let Err(_) = outcome else {
                self.stats.acked += 1;
                let key = server::key(handle.0, self.pool.ia(slot));
                self.on_acked(i, slot, key, status);
                let wall = self.servers[i].wall(self.now);
                let kind = self.pool.kind(slot);
                let stamp = self.bump();
                let r = &mut self.servers[i].store.recs[slot];
                // An answer about a binding the lease has left since belongs to nobody now;
                // one about the partner's own lease we sent back (a whole binding goes out,
                // §7.4) acknowledges nothing of ours: `store_ack` would free the partner's
                // RELEASED or EXPIRED as if we had set it.
                if r.lease.client == Some(key) {
                    let freed = r.lease.store_ack(kind, status, sent.map(wire_time), wall);
                    r.stamp = stamp;
                    if freed {
                        r.changed = wall.0;
                        freed_bindings.push(handle.0);
                    }
                }
                continue;
            };
            self.stats.rejected += 1;
            if let Err(code) = outcome {
                // Whole bindings go out (§7.4): the partner's own leases we hold copies of
                // come back to it too, and a copy no newer than its record is refused.
                let copy = !self.servers[i].store.recs[slot].mine;
                let what = if copy {
                    format!("{code:?} (a copy of the partner's lease)")
                } else {
                    format!("{code:?} (our {})", status.map_or("?", status_name))
                };
                *self.stats.rejects.entry(what).or_default() += 1;
            }
        }
        // `store_ack` freed them: the partner still records the ended status (§4.3).
        freed_bindings.dedup();
        for id in freed_bindings {
            self.send_binding(i, id);
        }
    }

    pub(crate) fn send_binding(&mut self, i: usize, id: u32) {
        let Some(e) = self.servers[i].engine.as_mut() else {
            return;
        };
        let Ok(update) = e.send_binding(BindingHandle(id)) else {
            self.servers[i].retry.insert(id);
            return;
        };
        self.servers[i].retry.remove(&id);
        if let Some(last) = self.servers[i].full.get_mut(&id) {
            *last = Some(update);
        }
        // §4.2.2.1: once a BNDUPD carries an EXPIRED or RELEASED lease, it goes back to its
        // client only after the partner's answer. Queued counts as sent (the safe side).
        for ia in [
            failover_proto::v6::IaKind::Na,
            failover_proto::v6::IaKind::Pd,
        ] {
            let k = server::key(id, ia);
            for r in &mut self.servers[i].store.recs {
                if r.lease.client == Some(k) && server::in_binding(r.lease.status) {
                    r.lease.update_sent =
                        r.lease.status != failover_proto::v6::BindingStatus::Active;
                }
            }
        }
    }

    /// Queues every binding with a change of ours the partner has not acknowledged.
    fn send_ours(&mut self, i: usize) {
        for id in 0..self.clients.len() as u32 {
            let keys = [
                server::key(id, failover_proto::v6::IaKind::Na),
                server::key(id, failover_proto::v6::IaKind::Pd),
            ];
            let ours = self.servers[i].store.recs.iter().any(|r| {
                r.lease.unacknowledged() && r.lease.client.is_some_and(|c| keys.contains(&c))
            });
            if ours {
                self.send_binding(i, id);
            }
        }
    }

    fn retry_sends(&mut self, i: usize) {
        let ids: Vec<u32> = self.servers[i].retry.iter().copied().collect();
        for id in ids {
            self.send_binding(i, id);
        }
    }

    /// The store's expiry: an ACTIVE lease this server made that
    /// [`LocalLease::expiry_due`](failover_fsm::v6::LocalLease::expiry_due) says has run out
    /// becomes EXPIRED (§7.2) and goes to the partner.
    fn expire_leases(&mut self) {
        for i in 0..2 {
            if !self.servers[i].alive() {
                continue;
            }
            let wall = self.servers[i].wall(self.now);
            let mut ids = Vec::new();
            for slot in 0..self.pool.len() {
                let r = self.servers[i].store.recs[slot];
                if r.mine && r.lease.expiry_due(wall) {
                    let stamp = self.bump();
                    let r = &mut self.servers[i].store.recs[slot];
                    r.lease.expire(wall);
                    r.stamp = stamp;
                    r.changed = wall.0;
                    let client = r.lease.client;
                    self.stats.expiries += 1;
                    if let Some(id) = self.client_of(client) {
                        ids.push(id);
                    }
                }
            }
            for id in ids {
                self.send_binding(i, id);
            }
        }
    }

    pub(crate) fn client_of(&self, key: Option<failover_fsm::v6::ClientKey>) -> Option<u32> {
        let key = key?;
        (0..self.clients.len() as u32).find(|id| {
            server::key(*id, failover_proto::v6::IaKind::Na) == key
                || server::key(*id, failover_proto::v6::IaKind::Pd) == key
        })
    }

    /// Server `i` starts again from what it persisted (or, its lease table lost, from
    /// nothing), with the clock it restarts with.
    fn restart(&mut self, i: usize) {
        let now = self.now;
        let params = self.params;
        let pool = self.pool;
        let wipe = self.servers[i].wipe_on_restart;
        let xid = self.rng.next_u64() as u32;
        let s = &mut self.servers[i];
        s.restart_at = None;
        s.crashed_at = None;
        s.wipe_on_restart = false;
        s.offset = s.restart_offset;
        if wipe {
            s.store = server::Store::new(&pool);
            s.persisted = None;
            s.refreshing = true;
        }
        s.sink = Default::default();
        s.retry.clear();
        s.full.clear();
        s.closed = false;
        let wall = s.wall(now);
        let mut e = Engine6::new(config(s.role, &params), s.persisted, now, wall, xid).unwrap();
        if wipe {
            e.lease_table_lost();
        }
        s.engine = Some(Box::new(e));
        let offset = s.offset;
        self.log(format_args!(
            "{} restarts{} (clock {offset:+} s)",
            NAMES[i],
            if wipe {
                " with its lease table lost"
            } else {
                ""
            }
        ));
        if wipe {
            self.checks.wiped(i);
        }
        // The store sends again what its partner may not have acknowledged (the engine's
        // queue died with the process).
        self.send_ours(i);
        if !self.link.up {
            let r = ms(self.rng.range(200, 3000));
            self.link.reconnect_at = Some(now + r);
        }
    }
}

/// How often a store sends the bindings whose partner must be updated (§7.5.4's periodic
/// scan; the RFC names no period).
pub(crate) const UPDATE_SCAN_SECS: u64 = 30;

fn config(role: Role, p: &Params6) -> Config {
    let mut c = Config::new(role, "sim6", p.mclt);
    c.receive_timer = p.receive_timer;
    c
}

fn status_name(s: failover_proto::v6::BindingStatus) -> &'static str {
    use failover_proto::v6::BindingStatus as B;
    match s {
        B::Active => "ACTIVE",
        B::Expired => "EXPIRED",
        B::Released => "RELEASED",
        B::Free => "FREE",
        B::FreeBackup => "FREE-BACKUP",
        B::PendingFree => "PENDING-FREE",
        B::Reset => "RESET",
        _ => "other",
    }
}

pub(crate) fn state_name(s: ServerState) -> &'static str {
    match s {
        ServerState::Startup => "STARTUP",
        ServerState::Normal => "NORMAL",
        ServerState::CommunicationsInterrupted => "COMMUNICATIONS-INTERRUPTED",
        ServerState::PartnerDown => "PARTNER-DOWN",
        ServerState::PotentialConflict => "POTENTIAL-CONFLICT",
        ServerState::Recover => "RECOVER",
        ServerState::RecoverWait => "RECOVER-WAIT",
        ServerState::RecoverDone => "RECOVER-DONE",
        ServerState::ResolutionInterrupted => "RESOLUTION-INTERRUPTED",
        ServerState::ConflictDone => "CONFLICT-DONE",
        _ => "other",
    }
}
