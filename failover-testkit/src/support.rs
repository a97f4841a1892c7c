//! A failover endpoint with an in-memory lease store, and a pair of them wired together in
//! memory: the harness of the scenario tests and of the simulator.
#![allow(
    dead_code,
    unreachable_pub,
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::{BTreeMap, VecDeque};
use std::net::Ipv4Addr;

use failover_fsm::accept::{LocalBinding, Verdict, own_free_status};
use failover_fsm::policy::{BalanceTrigger, PoolCounts, balance_candidates};
use failover_fsm::record::{Ack, BacklogWalk, LeaseRecord, Received, Walked};
use failover_fsm::{
    Action, BindingData, BindingSource, BindingStatus, Commit, Commits, Config, Engine, Event,
    Instant, LeaseLookup, Persisted, Role, ServerState, UnixTime, UpdateId,
};
use failover_proto::HardwareAddress;

/// The engine type the tests use.
pub type TestEngine = Engine<512, 128, 128>;

/// What a server keeps per address: the library's lease record.
pub type Stored = LeaseRecord;

/// A lease store: address → record. Stands for stable storage. Every change goes through the
/// record contract of `failover_fsm::record`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Store {
    pub leases: BTreeMap<[u8; 4], LeaseRecord>,
}

impl LeaseLookup for Store {
    fn lookup(&self, address: Ipv4Addr) -> Option<LocalBinding> {
        self.leases.get(&address.octets()).map(|s| s.local)
    }
}

impl BindingSource for Store {
    fn binding(&self, address: Ipv4Addr) -> Option<BindingData> {
        self.leases.get(&address.octets()).map(|r| r.data.clone())
    }
}

impl Store {
    /// A pool of `n` addresses starting at `first`, all FREE (all addresses start on the
    /// primary, §5.4).
    pub fn pool(first: Ipv4Addr, n: u32) -> Self {
        let leases = (0..n)
            .map(|i| {
                let a = Ipv4Addr::from(u32::from(first) + i);
                (a.octets(), LeaseRecord::fresh(a))
            })
            .collect();
        Store { leases }
    }

    /// Counts addresses per binding-status.
    pub fn count(&self, status: BindingStatus) -> usize {
        self.leases
            .values()
            .filter(|s| s.local.status == status)
            .count()
    }

    pub fn record(&mut self, address: [u8; 4]) -> &mut LeaseRecord {
        self.leases
            .entry(address)
            .or_insert_with(|| LeaseRecord::fresh(Ipv4Addr::from(address)))
    }

    /// Stores a binding received from the partner with the engine's verdict.
    pub fn commit_received(&mut self, binding: &BindingData, verdict: &Verdict) -> Received {
        self.record(binding.address)
            .apply_received(binding, verdict)
    }

    /// A local change of our own (a lease granted, released, ...); `send`: it goes to the
    /// partner.
    pub fn update_local(&mut self, data: BindingData, send: bool) {
        self.record(data.address).apply_local(data, send);
    }

    /// The current record of `address` was queued as `update`.
    pub fn queued(&mut self, address: [u8; 4], update: UpdateId, again: bool) {
        let r = self.record(address);
        if again {
            r.queued_again(update);
        } else {
            r.queued(update);
        }
    }

    /// The partner acknowledged our update of `address`; whether it freed the address.
    pub fn acked(&mut self, address: [u8; 4], ack: &Ack, role: Role) -> bool {
        self.leases
            .get_mut(&address)
            .is_some_and(|e| e.apply_ack(ack, role))
    }

    /// The partner refused our update of `address`.
    pub fn rejected(&mut self, address: [u8; 4], update: UpdateId) {
        if let Some(e) = self.leases.get_mut(&address) {
            e.apply_reject(update);
        }
    }

    /// A restart: what belonged to the conversation with the partner is gone.
    pub fn restarted(&mut self) {
        self.leases.values_mut().for_each(LeaseRecord::restarted);
    }
}

/// One failover endpoint with its store.
pub struct Node {
    pub name: &'static str,
    pub engine: TestEngine,
    pub store: Store,
    pub persisted: Option<Persisted>,
    pub actions: Vec<Action>,
    pub events: Vec<Event>,
    /// This node's wall clock minus the simulation's (clock skew).
    pub skew: i64,
    /// Bindings the partner acknowledged, as (address, status) — for invariant checks.
    pub acked: Vec<([u8; 4], BindingStatus)>,
    pub close_requested: bool,
    /// The time of the pair's last input to this node (pool balancing dates its moves).
    pub now: Instant,
    /// Commit received bindings at once (true) or leave them for the test to confirm.
    pub auto_commit: bool,
    pub pending_commits: Vec<failover_fsm::CommitToken>,
    /// Every binding of the partner's the engine handed over to commit, in order.
    pub received: Vec<Commit>,
}

impl Node {
    pub fn new(
        name: &'static str,
        config: Config,
        store: Store,
        now: Instant,
        wall: UnixTime,
    ) -> Self {
        let engine = TestEngine::new(config, None, now, wall, 0).unwrap();
        Node {
            name,
            engine,
            store,
            persisted: None,
            actions: Vec::new(),
            events: Vec::new(),
            skew: 0,
            acked: Vec::new(),
            close_requested: false,
            now,
            auto_commit: true,
            pending_commits: Vec::new(),
            received: Vec::new(),
        }
    }

    /// Hands `bytes` to the engine and commits the partner's bindings it accepted, as a DHCP
    /// server's store would.
    pub fn handle(
        &mut self,
        now: Instant,
        wall: UnixTime,
        bytes: &[u8],
    ) -> Result<(), failover_fsm::EngineError> {
        let mut commits = Commits::new();
        self.engine
            .handle_message(now, wall, bytes, &self.store, &mut commits)?;
        while let Some(c) = commits.pop() {
            self.commit(c);
        }
        Ok(())
    }

    /// Applies a received binding to the store (the record contract) and confirms it, or
    /// leaves it for the test to confirm.
    fn commit(&mut self, c: Commit) {
        if let Received::KeptOurs(_) = self.store.commit_received(&c.binding, &c.verdict) {
            self.store
                .record(c.binding.address)
                .send_again(&mut self.engine)
                .unwrap();
        }
        if self.auto_commit {
            let _ = self.engine.binding_committed(c.token);
        } else {
            self.pending_commits.push(c.token);
        }
        self.received.push(c);
    }

    /// Restarts the engine from what was persisted (a crash or a restart).
    pub fn restart(&mut self, config: Config, now: Instant, wall: UnixTime, lose_storage: bool) {
        if lose_storage {
            self.persisted = None;
            let first = *self.store.leases.keys().next().unwrap();
            let n = self.store.leases.len() as u32;
            self.store = Store::pool(Ipv4Addr::from(first), n);
        }
        self.store.restarted();
        self.engine = TestEngine::new(config, self.persisted, now, self.wall(wall), 7).unwrap();
        if let Some(pet) = failover_fsm::record::latest_received_pet(self.store.leases.values()) {
            self.engine.restore_received_pet(pet);
        }
        self.close_requested = false;
        self.pending_commits.clear();
    }

    pub fn wall(&self, sim_wall: UnixTime) -> UnixTime {
        UnixTime((i64::from(sim_wall.0) + self.skew).max(0) as u32)
    }

    pub fn role(&self) -> Role {
        self.engine.config().role
    }

    /// Drains actions and events, acting on each action as a DHCP server would.
    pub fn drain_events(&mut self) {
        while let Some(e) = self.engine.poll_action() {
            match &e {
                Action::Persist { token, snapshot } => {
                    self.persisted = Some(*snapshot);
                    self.engine.persist_complete(*token).unwrap();
                }
                Action::BindingAcked { .. } => {
                    let (address, ack) = e.ack().unwrap();
                    self.acked.push((address, ack.status));
                    let role = self.role();
                    self.store.acked(address, &ack, role);
                }
                Action::BindingRejected {
                    address, update, ..
                } => self.store.rejected(*address, *update),
                Action::SendAllBindings | Action::SendUnackedBindings | Action::SendBacklog => {
                    if let Some(mut walk) = BacklogWalk::for_action(&e) {
                        walk.begin(self.store.leases.values_mut());
                        // The harness's queue holds every record of its pools.
                        let walked =
                            walk.walk(self.store.leases.values_mut(), &mut self.engine, |_, r| {
                                r.unwrap();
                            });
                        assert_eq!(walked, Walked::Done, "{}: binding queue full", self.name);
                    }
                }
                Action::PoolRequested => self.balance(BalanceTrigger::PoolReq),
                Action::PoolCheck => self.balance(BalanceTrigger::Manual),
                Action::CloseConnection => self.close_requested = true,
                _ => {}
            }
            self.actions.push(e);
        }
        while let Some(e) = self.engine.poll_event() {
            self.events.push(e);
        }
    }

    /// Pool balancing as a DHCP server does it: count, let the engine decide, move addresses
    /// from the end of our available ones.
    pub fn balance(&mut self, trigger: BalanceTrigger) {
        let counts = PoolCounts::of(self.store.leases.values());
        let Ok(plan) = self.engine.balance_pools(counts, trigger) else {
            return;
        };
        let wall = self.engine.wall_at(self.now);
        let moving: Vec<BindingData> = balance_candidates(&plan, self.store.leases.values())
            .map(|r| r.given_to_partner(&plan, wall))
            .collect();
        for data in moving {
            self.store.update_local(data.clone(), true);
            self.send(data, false);
        }
    }

    /// Queues `data` (the current record of its address) and notes it in the store.
    pub fn send(&mut self, data: BindingData, again: bool) {
        let address = data.address;
        let update = self.engine.send_binding(&data).unwrap();
        self.store.queued(address, update, again);
    }

    /// Grants `address` to a client as the DHCP server would (own pool), and queues the BNDUPD.
    pub fn grant(&mut self, address: Ipv4Addr, mac: [u8; 6], now: UnixTime, lease: u32) {
        let pet = now.plus(lease + lease / 2);
        let mut data = BindingData::new(address, BindingStatus::Active)
            .with_client(None, 1, &mac)
            .unwrap();
        data.lease_expiration_time = Some(now.plus(lease));
        data.potential_expiration_time = Some(pet);
        data.start_time_of_state = Some(now);
        data.client_last_transaction_time = Some(now);
        self.store.update_local(data.clone(), true);
        self.send(data, false);
    }

    /// The addresses available to this server for new clients.
    pub fn free_addresses(&self) -> Vec<Ipv4Addr> {
        let own = own_free_status(self.role());
        self.store
            .leases
            .iter()
            .filter(|(_, s)| s.local.status == own)
            .map(|(a, _)| Ipv4Addr::from(*a))
            .collect()
    }

    pub fn saw(&self, f: impl Fn(&Event) -> bool) -> bool {
        self.events.iter().any(f)
    }

    pub fn did(&self, f: impl Fn(&Action) -> bool) -> bool {
        self.actions.iter().any(f)
    }

    pub fn hardware(mac: &[u8; 6]) -> HardwareAddress<'_> {
        HardwareAddress {
            htype: 1,
            address: mac,
        }
    }
}

/// Two nodes and the connection between them (messages delivered in order, no loss).
pub struct Pair {
    pub primary: Node,
    pub secondary: Node,
    /// Monotonic simulation time.
    pub now: Instant,
    /// Simulation wall clock at `now == 0`.
    pub wall0: u32,
    pub connected: bool,
    /// In flight: (from primary?, bytes).
    pub wire: VecDeque<(bool, Vec<u8>)>,
    /// Every message delivered, (from primary?, bytes), for assertions.
    pub trace: Vec<(bool, Vec<u8>)>,
    /// The secondary's messages are lost (a hung partner whose TCP stays up).
    pub secondary_silent: bool,
}

pub const T0: u32 = 1_700_000_000;

pub fn config(role: Role) -> Config {
    let mut c = Config::new(role, "fo-test", 60);
    c.receive_timer = 15;
    c
}

impl Pair {
    pub fn new(pool: u32) -> Self {
        Pair::with_config(pool, |_| {})
    }

    /// A pair whose configurations (from [`config`]) `adjust` changes first.
    pub fn with_config(pool: u32, adjust: impl Fn(&mut Config)) -> Self {
        let config = |role| {
            let mut c = config(role);
            adjust(&mut c);
            c
        };
        let now = Instant::ZERO;
        let wall = UnixTime(T0);
        let first = Ipv4Addr::new(198, 18, 1, 0);
        Pair {
            primary: Node::new(
                "P",
                config(Role::Primary),
                Store::pool(first, pool),
                now,
                wall,
            ),
            secondary: Node::new(
                "S",
                config(Role::Secondary),
                Store::pool(first, pool),
                now,
                wall,
            ),
            now,
            wall0: T0,
            connected: false,
            wire: VecDeque::new(),
            trace: Vec::new(),
            secondary_silent: false,
        }
    }

    pub fn wall(&self) -> UnixTime {
        UnixTime(self.wall0 + (self.now.as_millis() / 1000) as u32)
    }

    pub fn node(&mut self, primary: bool) -> &mut Node {
        if primary {
            &mut self.primary
        } else {
            &mut self.secondary
        }
    }

    pub fn connect(&mut self) {
        assert!(!self.connected);
        self.connected = true;
        self.wire.clear();
        let now = self.now;
        self.primary.engine.connection_up(now).unwrap();
        self.secondary.engine.connection_up(now).unwrap();
        self.pump();
    }

    pub fn disconnect(&mut self) {
        if !self.connected {
            return;
        }
        self.connected = false;
        self.wire.clear();
        let now = self.now;
        self.primary.engine.connection_down(now);
        self.secondary.engine.connection_down(now);
        self.primary.close_requested = false;
        self.secondary.close_requested = false;
        self.primary.now = now;
        self.secondary.now = now;
        self.primary.drain_events();
        self.secondary.drain_events();
    }

    /// Moves events and messages until nothing more happens at this instant.
    pub fn pump(&mut self) {
        let mut buf = vec![0u8; 2048];
        for _ in 0..1_000_000 {
            let mut progress = false;
            for p in [true, false] {
                let now = self.now;
                let node = if p {
                    &mut self.primary
                } else {
                    &mut self.secondary
                };
                node.now = now;
                node.drain_events();
                while let Some(n) = node.engine.poll_transmit(now, &mut buf, &node.store) {
                    self.wire.push_back((p, buf[..n].to_vec()));
                    progress = true;
                }
                node.drain_events();
            }
            if self.primary.close_requested || self.secondary.close_requested {
                // Deliver what was sent before the close, then drop the connection.
                self.deliver_all();
                self.disconnect();
                return;
            }
            if let Some((from_primary, bytes)) = self.wire.pop_front() {
                if self.connected && (from_primary || !self.secondary_silent) {
                    let now = self.now;
                    let sim_wall = self.wall();
                    let to = self.node(!from_primary);
                    let wall = to.wall(sim_wall);
                    to.now = now;
                    loop {
                        match to.handle(now, wall, &bytes) {
                            Ok(()) => break,
                            Err(failover_fsm::EngineError::EventsPending) => to.drain_events(),
                            Err(e) => panic!("{e}"),
                        }
                    }
                    self.trace.push((from_primary, bytes));
                }
                progress = true;
            }
            if !progress {
                return;
            }
        }
        panic!("pump did not settle");
    }

    fn deliver_all(&mut self) {
        while let Some((from_primary, bytes)) = self.wire.pop_front() {
            let now = self.now;
            let sim_wall = self.wall();
            let to = self.node(!from_primary);
            let wall = to.wall(sim_wall);
            to.now = now;
            let _ = to.handle(now, wall, &bytes);
            to.drain_events();
            self.trace.push((from_primary, bytes));
        }
    }

    /// Advances time to the next timer (at most `limit`), handles it and pumps.
    pub fn step_time(&mut self, limit: Instant) -> bool {
        let next = [
            self.primary.engine.poll_timeout(),
            self.secondary.engine.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min();
        let Some(next) = next else { return false };
        if next > limit {
            self.now = limit;
            return false;
        }
        self.now = self.now.max(next);
        let now = self.now;
        self.primary.engine.handle_timeout(now);
        self.secondary.engine.handle_timeout(now);
        self.pump();
        true
    }

    /// Runs timers until `secs` more seconds have passed.
    pub fn run_for(&mut self, secs: u64) {
        let limit = self.now + std::time::Duration::from_secs(secs);
        for _ in 0..100_000 {
            if !self.step_time(limit) {
                break;
            }
        }
        self.now = self.now.max(limit);
        self.pump();
    }

    pub fn states(&self) -> (ServerState, ServerState) {
        (self.primary.engine.state(), self.secondary.engine.state())
    }

    /// Message types delivered, in order, as (from primary?, type name).
    pub fn trace_types(&self) -> Vec<(bool, &'static str)> {
        self.trace
            .iter()
            .map(|(p, b)| {
                (
                    *p,
                    failover_proto::Message::new_unchecked(&b[..])
                        .msg_type()
                        .name(),
                )
            })
            .collect()
    }
}
