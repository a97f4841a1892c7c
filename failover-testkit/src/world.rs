//! The simulated world: two failover servers (engine, lease store, and the DHCP-server logic
//! around them), the TCP connection between them, DHCP clients, one virtual clock and the
//! fault injector.
//!
//! # Time
//!
//! Monotonic time is an [`Instant`] in milliseconds. The simulation's wall clock is
//! `T0 + now / 1000` (whole seconds); each server sees it shifted by its own clock skew.
//! The loop jumps to the earliest pending thing (a message arriving, an engine timer, a storage
//! write completing, a client timer, a server's expiry scan or balancing run, a fault, a
//! restart, a reconnection attempt, a phase change) and does exactly that one thing: one step.
//!
//! # Storage
//!
//! Each server has an in-memory lease table (`store`, what it answers clients from) and its
//! stable storage (`durable`). Local changes (leases granted, released, expired, pool moves,
//! acknowledgements) are written through synchronously, as a DHCP server does before it
//! answers. Bindings received from the partner are written with a random delay: the engine is
//! told `binding_committed` only when the write is durable, and a crash loses writes not yet
//! durable. The log is sequential: a synchronous write makes every earlier write durable too.
//!
//! # The connection
//!
//! One TCP connection at most. Each direction delivers in order with a random latency, or the
//! connection breaks: messages in flight are then lost and each side learns of the break at
//! its own time (or never, for a silent host crash: its receive timer finds out). During a
//! partition nothing moves (TCP retransmits afterwards); the receive timers usually close the
//! connection first.

use std::collections::{BTreeMap, VecDeque};
use std::io::Write as _;
use std::net::Ipv4Addr;
use std::time::Duration;

use failover_fsm::accept::{ClientIdentity, Verdict, judge_update};
use failover_fsm::policy::{BalanceTrigger, PartnerDownLeases};
use failover_fsm::record::{Ack, Backlog, BacklogWalk, Received, Walked};
use failover_fsm::{
    Action as EngineAction, BindingData, BindingStatus, CommitToken, Commits, Config, Dialect,
    EngineError, Event, Instant, Persisted, RejectReason, Role, ServerState, UnixTime,
};
use failover_proto::{Repr, ServerFlags};

use crate::rng::Rng;
use crate::support::{Store, T0, TestEngine};
use failover_fsm::UpdateId;

pub(crate) const PRIMARY: usize = 0;
pub(crate) const SECONDARY: usize = 1;
pub(crate) const NAMES: [&str; 2] = ["P", "S"];
/// First address of the pool.
pub(crate) const POOL_START: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 0);
/// Version of the never-touched FREE record every fresh store starts with.
pub(crate) const INITIAL_VID: u64 = 0;

pub(crate) fn ms(x: u64) -> Duration {
    Duration::from_millis(x)
}

pub(crate) fn secs(x: u64) -> Duration {
    Duration::from_secs(x)
}

/// What a seed draws once: the configuration of the pair and the shape of the run.
#[derive(Debug, Clone)]
pub struct Params {
    pub dialect: Dialect,
    /// The primary's MCLT (the relationship's).
    pub mclt: u32,
    /// Desired lease time for clients.
    pub(crate) desired: u32,
    pub(crate) pool: u32,
    pub clients: usize,
    /// Largest delay before a received binding is durable (0 = synchronous).
    pub(crate) commit_delay_ms: u64,
    /// Largest one-way latency in normal operation.
    pub(crate) latency_ms: u64,
    /// Delay between connection attempts.
    pub(crate) reconnect_ms: u64,
    pub(crate) auto_pd: Option<u32>,
    pub(crate) pd_leases: PartnerDownLeases,
    pub(crate) fault_secs: u64,
    pub(crate) tail_secs: u64,
    /// Mean gap between faults.
    pub(crate) fault_gap_secs: u64,
    pub(crate) release_pct: u64,
    pub(crate) skew: [i64; 2],
    pub(crate) configs: [Config; 2],
}

impl Params {
    pub(crate) fn draw(rng: &mut Rng, fault_secs: u64) -> Params {
        let dialect = if rng.chance(50) {
            Dialect::Draft
        } else {
            Dialect::Isc
        };
        let mclt = rng.pick(&[30u32, 60, 120, 300]);
        let desired = rng.pick(&[mclt / 2, mclt, 3 * mclt, 10 * mclt, 600, 3600]);
        let pool = rng.range(12, 40) as u32;
        let clients = rng.range(10, 36) as usize;
        let lb = rng.pick(&[0u16, 0, 5, 30, u16::MAX]);
        let auto_pd = rng.chance(25).then(|| rng.range(240, 900) as u32);
        let mut configs = [Role::Primary, Role::Secondary].map(|role| {
            let mut c = Config::new(role, "fo-sim", mclt);
            c.dialect = dialect;
            c.receive_timer = rng.range(6, 30) as u32;
            c.max_unacked_bndupd = rng.range(1, 10) as u32;
            c.load_balance_max_seconds = lb;
            c.auto_partner_down = auto_pd;
            c
        });
        if rng.chance(20) {
            // The secondary's own MCLT is only used until it learns the primary's.
            configs[SECONDARY].mclt = rng.pick(&[20u32, 45, 600]);
        }
        // Clock skew within the limit. ISC rules do not correct received times (D27: "keep
        // NTP"): a partner whose clock is behind has its leases expired early by us, so ISC
        // seeds run with synchronised clocks (the beyond-the-limit fault still applies).
        let mut skew = [0i64; 2];
        for s in &mut skew {
            if dialect == Dialect::Draft && rng.chance(40) {
                *s = rng.range(0, 50) as i64 - 25;
            }
        }
        Params {
            dialect,
            mclt,
            desired,
            pool,
            clients,
            commit_delay_ms: rng.pick(&[0u64, 0, 50, 400, 3000]),
            latency_ms: rng.range(1, 60),
            reconnect_ms: rng.range(500, 6000),
            auto_pd,
            pd_leases: if dialect == Dialect::Draft && rng.chance(30) {
                PartnerDownLeases::Unrestricted
            } else {
                PartnerDownLeases::KeepMclt
            },
            fault_secs,
            tail_secs: 3 * u64::from(mclt) + 180,
            fault_gap_secs: rng.range(20, 200),
            release_pct: rng.range(0, 20),
            skew,
            configs,
        }
    }
}

/// A received binding whose write to stable storage is not finished.
#[derive(Debug, Clone)]
pub(crate) struct PendingWrite {
    pub(crate) due: Instant,
    pub(crate) binding: BindingData,
    pub(crate) verdict: Verdict,
    pub(crate) vid: u64,
    pub(crate) token: CommitToken,
    /// The partner had rejected our current record of the address (see `World::refused`).
    pub(crate) refused: bool,
    /// A re-sent update we had applied already; our newer record stays.
    pub(crate) duplicate: bool,
}

/// One failover server.
pub(crate) struct Node {
    pub(crate) idx: usize,
    pub(crate) config: Config,
    /// `None` while the server is down. Boxed: an engine is a few hundred kilobytes.
    pub(crate) engine: Option<Box<TestEngine>>,
    /// The lease table in memory.
    pub(crate) store: Store,
    /// The lease table on stable storage.
    pub(crate) durable: Store,
    /// Version of each in-memory record (for invariant 2).
    pub(crate) vid: BTreeMap<[u8; 4], u64>,
    pub(crate) durable_vid: BTreeMap<[u8; 4], u64>,
    pub(crate) writes: VecDeque<PendingWrite>,
    /// Persisted failover state, MCLT and last-operational time.
    pub(crate) pstate: Option<(ServerState, UnixTime)>,
    pub(crate) pmclt: Option<u32>,
    pub(crate) plast: Option<UnixTime>,
    /// Persisted `lease_table_lost` (a refresh from the partner not yet done).
    pub(crate) plost: bool,
    /// This server's wall clock minus the simulation's, seconds.
    pub(crate) skew: i64,
    pub(crate) good_skew: i64,
    /// Incremented each time stable storage is lost.
    pub(crate) epoch: u32,
    /// Every version this server's stable storage held, per address, with the epoch.
    pub(crate) history: BTreeMap<[u8; 4], Vec<(u64, u32)>>,
    /// Bindings handed to `send_binding`, with their version, newest last.
    pub(crate) sent: BTreeMap<[u8; 4], VecDeque<(BindingData, u64)>>,
    /// BNDUPDs transmitted: (connection, xid) → (address, version).
    pub(crate) tx: BTreeMap<(u64, u32), ([u8; 4], u64)>,
    /// The lease table is complete (never lost, or refilled by a finished RECOVER).
    pub(crate) complete: bool,
    pub(crate) down_since: Option<Instant>,
    pub(crate) restart_at: Option<Instant>,
    pub(crate) restart_lose: bool,
    pub(crate) restart_skew: Option<i64>,
    /// Graceful stop: the process ends at this time.
    pub(crate) halt_at: Option<Instant>,
    /// Running with a wrong clock until this time.
    pub(crate) clock_fix_at: Option<Instant>,
    /// The largest step back of this server's clock (an operator fixing it), seconds: times
    /// it stored before the step (corrected into its wrong clock) are that much late.
    pub(crate) stepped_back: i64,
    /// A copy of stable storage (lease table and versions) taken earlier: what an operator
    /// restores from a backup.
    pub(crate) backup: Option<(Store, BTreeMap<[u8; 4], u64>)>,
    /// The next restart restores `backup` instead of the current stable storage.
    pub(crate) restart_restore: bool,
    /// The next restart runs with this MCLT (an operator changed the configuration).
    pub(crate) restart_mclt: Option<u32>,
    /// ISC's table took this server to PARTNER-DOWN with an incomplete lease table (a restored
    /// older copy): records that look alike may still differ in time, so nothing is untainted
    /// until the table is complete again.
    pub(crate) served_incomplete: bool,
    pub(crate) next_scan: Instant,
    pub(crate) next_balance: Instant,
    pub(crate) close_requested: bool,
    /// While a message is being handled: (connection, xid).
    pub(crate) rx: Option<(u64, u32)>,
    /// Guard against an engine timer that never advances: (instant, repeats).
    pub(crate) timeout_spin: (Instant, u32),
    /// The state remembered at the last boot (RECOVER without persisted state).
    pub(crate) boot_state: ServerState,
    /// The partner entered PARTNER-DOWN since both were last NORMAL together: this server's
    /// table may lack what the partner did then.
    pub(crate) needs_sync: bool,
}

pub(crate) fn fresh_store(pool: u32) -> Store {
    let mut s = Store::pool(POOL_START, pool);
    // A server without records has nothing to tell its partner.
    for e in s.leases.values_mut() {
        e.partner_has_it = true;
    }
    s
}

impl Node {
    fn new(idx: usize, config: Config, pool: u32, skew: i64) -> Node {
        let store = fresh_store(pool);
        let vid: BTreeMap<[u8; 4], u64> = store.leases.keys().map(|a| (*a, INITIAL_VID)).collect();
        Node {
            idx,
            config,
            engine: None,
            durable: store.clone(),
            store,
            durable_vid: vid.clone(),
            vid,
            writes: VecDeque::new(),
            pstate: None,
            pmclt: None,
            plast: None,
            plost: false,
            skew,
            good_skew: skew,
            epoch: 0,
            history: BTreeMap::new(),
            sent: BTreeMap::new(),
            tx: BTreeMap::new(),
            complete: true,
            down_since: None,
            restart_at: None,
            restart_lose: false,
            restart_skew: None,
            halt_at: None,
            clock_fix_at: None,
            stepped_back: 0,
            backup: None,
            restart_restore: false,
            restart_mclt: None,
            served_incomplete: false,
            next_scan: Instant::ZERO,
            next_balance: Instant::ZERO,
            close_requested: false,
            rx: None,
            timeout_spin: (Instant::ZERO, 0),
            boot_state: ServerState::Recover,
            needs_sync: false,
        }
    }

    pub(crate) fn role(&self) -> Role {
        self.config.role
    }

    pub(crate) fn alive(&self) -> bool {
        self.engine.is_some()
    }

    pub(crate) fn state(&self) -> Option<ServerState> {
        self.engine.as_ref().map(|e| e.state())
    }

    pub(crate) fn persisted(&self) -> Option<Persisted> {
        self.pstate.map(|(state, since)| Persisted {
            state,
            since,
            mclt: self.pmclt,
            last_operational: self.plast,
            lease_table_lost: self.plost,
        })
    }
}

/// The TCP connection.
#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) id: u64,
    /// Side `i` still has the connection (its engine was told `connection_up` and not yet
    /// `connection_down`).
    pub(crate) open: [bool; 2],
    /// Messages in flight from side `i`: (arrival, bytes).
    pub(crate) q: [VecDeque<(Instant, Vec<u8>)>; 2],
    /// Arrival time of the last message sent by side `i` (in-order delivery).
    pub(crate) tail: [Instant; 2],
    /// When side `i` learns that the connection is gone.
    pub(crate) notify: [Option<Instant>; 2],
    /// Broken: nothing more is delivered.
    pub(crate) broken: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Faults,
    Tail,
    Drain,
    Done,
}

/// One thing the loop can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    Deliver(usize),
    Notify(usize),
    Write(usize),
    Timeout(usize),
    Connect,
    Halt(usize),
    ClockFix(usize),
    TieBreak,
    Restart(usize),
    Fault,
    Scan(usize),
    Balance(usize),
    Client(usize),
    Phase,
}

#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub steps: u64,
    pub delivered: u64,
    pub grants: u64,
    pub naks: u64,
    pub acked: u64,
    pub rejected: u64,
    pub faults: BTreeMap<&'static str, u64>,
    pub states: BTreeMap<&'static str, u64>,
    pub partner_down_grants: u64,
    pub alarms: u64,
    /// ISC-dialect acceptances the draft's rules reject, by (local <- received (reason)).
    pub isc_only: BTreeMap<String, u64>,
    /// At the final check: addresses ended on one side, available on the other.
    pub ended_vs_available: u64,
    /// Leases granted beyond the MCLT limit in PARTNER-DOWN (unrestricted).
    pub overcap: u64,
    /// SHUTDOWN or PAUSED entered by the engine itself (then restarted).
    pub self_shutdowns: u64,
    /// ISC-dialect moves from a recovery state to PARTNER-DOWN.
    pub isc_recover_to_pd: u64,
}

pub struct World {
    pub(crate) seed: u64,
    pub rng: Rng,
    pub p: Params,
    pub now: Instant,
    pub(crate) nodes: [Node; 2],
    pub(crate) clients: Vec<crate::client::Client>,
    pub(crate) conn: Option<Conn>,
    pub(crate) next_conn_id: u64,
    pub(crate) next_attempt: Instant,
    pub(crate) partition_until: Option<Instant>,
    /// Latency spike: (until, extra latency up to this many ms).
    pub(crate) spike: Option<(Instant, u64)>,
    pub(crate) next_fault: Instant,
    pub(crate) phase: Phase,
    pub(crate) phase_end: Instant,
    pub(crate) next_vid: u64,
    pub(crate) log: Option<Box<dyn std::io::Write>>,
    /// FNV hash over everything that happened (determinism check).
    pub digest: u64,
    pub stats: Stats,
    /// Addresses where ISC's rules accepted an update the draft's rules reject (see
    /// `check.rs`): exempt from the address checks until both servers agree again.
    pub tainted: std::collections::BTreeSet<[u8; 4]>,
    /// The fault kinds added after the first long runs (half-open and duplicate connections,
    /// restores from an older copy of the lease table, MCLT changes). Off for the regression
    /// seeds, which replay runs recorded before them.
    pub extra_faults: bool,
    /// Every draw of the extra faults comes from here, so that with them off a seed replays
    /// exactly as before they existed.
    pub(crate) rng2: Rng,
    /// The connection with this id is a duplicate (both servers dialled at once): the
    /// binding's tie-break closes it at this time and keeps the other one.
    pub(crate) tie_break: Option<(u64, Instant)>,
    /// The next connection that comes up has a duplicate.
    pub(crate) dup_next: bool,
    /// Messages sent during the last latency spike may arrive until then.
    pub(crate) spike_tail: Instant,
    /// The largest MCLT the primary has been configured with during the run.
    pub(crate) mclt_max: u32,
    /// Leases granted beyond the MCLT limit in PARTNER-DOWN: (client, end).
    pub(crate) overcap: BTreeMap<[u8; 4], (ClientIdentity, Instant)>,
    /// The client of the grant being checked.
    pub(crate) grant_client: Option<ClientIdentity>,
    /// The invariants checked at grant time need the step number for messages.
    pub(crate) buf: Vec<u8>,
}

macro_rules! slog {
    ($w:expr, $($arg:tt)*) => {
        if $w.log.is_some() {
            let line = format!($($arg)*);
            $w.write_log(&line);
        }
    };
}
pub(crate) use slog;

impl World {
    pub fn new(seed: u64, fault_secs: u64, log: Option<Box<dyn std::io::Write>>) -> World {
        World::with_rng(seed, Rng::new(seed), fault_secs, log)
    }

    /// A run whose every choice comes from `rng`; `seed` only names it (log, failures).
    pub fn with_rng(
        seed: u64,
        mut rng: Rng,
        fault_secs: u64,
        log: Option<Box<dyn std::io::Write>>,
    ) -> World {
        let p = Params::draw(&mut rng, fault_secs);
        let nodes =
            [PRIMARY, SECONDARY].map(|i| Node::new(i, p.configs[i].clone(), p.pool, p.skew[i]));
        let clients = (0..p.clients)
            .map(|k| crate::client::Client::new(k, Instant::from_millis(rng.range(0, 90_000))))
            .collect();
        let next_attempt = Instant::from_millis(rng.range(0, 3000));
        let next_fault = Instant::from_secs(rng.range(30, 30 + 2 * p.fault_gap_secs));
        let phase_end = Instant::from_secs(p.fault_secs);
        let mut w = World {
            seed,
            rng,
            p,
            now: Instant::ZERO,
            nodes,
            clients,
            conn: None,
            next_conn_id: 1,
            next_attempt,
            partition_until: None,
            spike: None,
            next_fault,
            phase: Phase::Faults,
            phase_end,
            next_vid: 1,
            log,
            digest: 0xcbf2_9ce4_8422_2325,
            stats: Stats::default(),
            tainted: std::collections::BTreeSet::new(),
            extra_faults: true,
            rng2: Rng::new(seed ^ 0x0EF0_FA17_5EED_0001),
            tie_break: None,
            dup_next: false,
            spike_tail: Instant::ZERO,
            mclt_max: 0,
            overcap: BTreeMap::new(),
            grant_client: None,
            buf: vec![0u8; 2048],
        };
        w.mclt_max = w.p.mclt;
        slog!(w, "seed {seed}: {:?}", w.p);
        for i in [PRIMARY, SECONDARY] {
            w.boot(i);
        }
        w
    }

    pub(crate) fn write_log(&mut self, line: &str) {
        let t = self.now.as_millis();
        let step = self.stats.steps;
        if let Some(out) = self.log.as_mut() {
            let _ = writeln!(out, "[{step:>6} {:>7}.{:03}] {line}", t / 1000, t % 1000);
        }
    }

    pub(crate) fn mix(&mut self, x: u64) {
        for b in x.to_le_bytes() {
            self.digest = (self.digest ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    /// The simulation's wall clock.
    pub(crate) fn sim_wall(&self) -> i64 {
        i64::from(T0) + (self.now.as_millis() / 1000) as i64
    }

    /// Server `i`'s wall clock.
    pub(crate) fn wall(&self, i: usize) -> UnixTime {
        UnixTime((self.sim_wall() + self.nodes[i].skew).clamp(0, i64::from(u32::MAX)) as u32)
    }

    /// A draw of the extra faults ([`World::rng2`]), taped like any other choice.
    pub(crate) fn extra(&mut self) -> crate::rng::Side<'_> {
        crate::rng::Side {
            main: &mut self.rng,
            side: &mut self.rng2,
        }
    }

    pub(crate) fn fail(&mut self, what: &str) -> ! {
        let msg = format!(
            "seed {} step {} t={}ms [{:?}]: {what}",
            self.seed,
            self.stats.steps,
            self.now.as_millis(),
            self.p.dialect
        );
        if self.log.is_some() {
            self.write_log(&format!("VIOLATION: {msg}"));
            let dump = self.dump();
            self.write_log(&dump);
            if let Some(out) = self.log.as_mut() {
                let _ = out.flush();
            }
        }
        panic!("{msg}");
    }

    /// Everything about the world, for the failure log.
    pub(crate) fn dump(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        for n in &self.nodes {
            let _ = writeln!(
                s,
                "node {}: state {:?} partner {:?} persisted {:?} skew {} epoch {} complete {} status {:?}",
                NAMES[n.idx],
                n.state(),
                n.engine.as_ref().and_then(|e| e.partner_state()),
                n.persisted(),
                n.skew,
                n.epoch,
                n.complete,
                n.engine.as_ref().map(|e| e.status(self.now))
            );
            for (a, e) in &n.store.leases {
                let _ = writeln!(
                    s,
                    "  {} {:?} client={:?} let={:?} pet={:?} acked={:?} recv={:?} partner_has_it={} vid={}",
                    Ipv4Addr::from(*a),
                    e.local.status,
                    e.data
                        .hardware_address
                        .as_ref()
                        .map(|h| h.1.last().copied()),
                    e.local.lease_expiration.map(|t| t.0),
                    e.data.potential_expiration_time.map(|t| t.0),
                    e.local.acked_pet.map(|t| t.0),
                    e.local.received_pet.map(|t| t.0),
                    e.partner_has_it,
                    n.vid.get(a).copied().unwrap_or(0)
                );
            }
        }
        for c in &self.clients {
            let _ = writeln!(s, "client {}: {:?}", c.idx, c.st);
        }
        s
    }

    // ----- the loop -----

    /// Runs the seed to the end; panics on a violated invariant.
    pub fn run(&mut self, max_steps: u64) {
        while self.phase != Phase::Done {
            let (t, action) = self.next_action();
            self.now = self.now.max(t);
            self.mix(self.now.as_millis());
            self.perform(action);
            self.pump();
            self.stats.steps += 1;
            self.check();
            if self.phase == Phase::Drain && self.settled() {
                self.check_final();
                self.phase = Phase::Done;
            }
            if self.stats.steps > max_steps {
                self.fail("step budget exhausted (runaway loop?)");
            }
        }
    }

    fn next_action(&mut self) -> (Instant, Action) {
        let mut best: Option<(Instant, Action)> = None;
        let mut consider = |t: Option<Instant>, a: Action| {
            if let Some(t) = t
                && best.is_none_or(|(b, _)| t < b)
            {
                best = Some((t, a));
            }
        };
        if self.partition_until.is_some_and(|p| p <= self.now) {
            self.partition_until = None;
        }
        if self.spike.is_some_and(|(u, _)| u <= self.now) {
            self.spike = None;
        }
        let hold = self.partition_until;
        let held = |t: Instant| match hold {
            Some(p) if t < p => p,
            _ => t,
        };
        if let Some(c) = &self.conn {
            for i in 0..2 {
                if !c.broken {
                    consider(c.q[i].front().map(|m| held(m.0)), Action::Deliver(i));
                }
                consider(c.notify[i].map(held), Action::Notify(i));
            }
        }
        for i in 0..2 {
            let n = &self.nodes[i];
            consider(n.writes.front().map(|w| w.due), Action::Write(i));
            consider(
                n.engine.as_ref().and_then(|e| e.poll_timeout()),
                Action::Timeout(i),
            );
        }
        if self.conn.is_none() && self.nodes.iter().all(Node::alive) {
            consider(Some(held(self.next_attempt)), Action::Connect);
        }
        let calm = {
            let mut t = hold.unwrap_or(Instant::ZERO);
            if let Some((u, _)) = self.spike {
                t = t.max(u);
            }
            t
        };
        for i in 0..2 {
            let n = &self.nodes[i];
            consider(n.halt_at, Action::Halt(i));
            consider(n.clock_fix_at, Action::ClockFix(i));
            consider(self.tie_break.map(|t| t.1), Action::TieBreak);
            // A server whose partner ran in PARTNER-DOWN since they were last in sync comes
            // back only while that partner is up: the operator's PARTNER-DOWN decision
            // assumed it stays down until it has met the partner again.
            // (If both ran in PARTNER-DOWN while the other was down, neither can wait.)
            let partner = &self.nodes[1 - i];
            if !(n.needs_sync && !partner.alive() && !partner.needs_sync) {
                consider(n.restart_at.map(|t| t.max(calm)), Action::Restart(i));
            }
        }
        if self.phase == Phase::Faults {
            consider(Some(self.next_fault), Action::Fault);
        }
        if matches!(self.phase, Phase::Faults | Phase::Tail) {
            for i in 0..2 {
                let n = &self.nodes[i];
                if n.alive() {
                    consider(Some(n.next_scan), Action::Scan(i));
                    if i == PRIMARY {
                        consider(Some(n.next_balance), Action::Balance(i));
                    }
                }
            }
            for (k, c) in self.clients.iter().enumerate() {
                consider(Some(c.next), Action::Client(k));
            }
        }
        consider(Some(self.phase_end), Action::Phase);
        best.unwrap_or((self.phase_end, Action::Phase))
    }

    fn perform(&mut self, action: Action) {
        match action {
            Action::Deliver(from) => self.deliver(from),
            Action::Notify(i) => {
                if let Some(c) = self.conn.as_mut() {
                    c.notify[i] = None;
                }
                slog!(self, "{} learns the connection is gone", NAMES[i]);
                self.close_side(i);
            }
            Action::Write(i) => {
                let now = self.now;
                self.flush(i, now);
            }
            Action::Timeout(i) => {
                let now = self.now;
                let n = &mut self.nodes[i];
                if n.timeout_spin.0 == now {
                    n.timeout_spin.1 += 1;
                } else {
                    n.timeout_spin = (now, 0);
                }
                if n.timeout_spin.1 > 1000 {
                    self.fail("engine timer does not advance: poll_timeout stays in the past");
                }
                if let Some(e) = self.nodes[i].engine.as_mut() {
                    e.handle_timeout(now);
                }
                self.drain(i);
            }
            Action::Connect => self.connect(),
            Action::Halt(i) => {
                self.nodes[i].halt_at = None;
                slog!(self, "{} process ends (after SHUTDOWN)", NAMES[i]);
                self.crash(i, true);
                let down = if self.phase == Phase::Faults {
                    self.rng.range(5, 300)
                } else {
                    self.rng.range(5, 20)
                };
                self.nodes[i].restart_at = Some(self.now + secs(down));
            }
            Action::ClockFix(i) => {
                self.nodes[i].clock_fix_at = None;
                slog!(self, "{} operator fixes its clock: restart", NAMES[i]);
                let good = self.nodes[i].good_skew;
                let back = self.nodes[i].skew - good;
                self.nodes[i].stepped_back = self.nodes[i].stepped_back.max(back);
                self.crash(i, true);
                self.nodes[i].restart_skew = Some(good);
                self.nodes[i].restart_at = Some(self.now + secs(1));
            }
            Action::TieBreak => self.tie_break(),
            Action::Restart(i) => self.restart(i),
            Action::Fault => {
                self.inject_fault();
                let gap = self.rng.range(1, 2 * self.p.fault_gap_secs);
                self.next_fault = self.now + secs(gap);
            }
            Action::Scan(i) => {
                self.scan(i);
                let gap = self.rng.range(3000, 10_000);
                self.nodes[i].next_scan = self.now + ms(gap);
            }
            Action::Balance(i) => {
                self.balance(i, BalanceTrigger::Manual);
                let gap = self.rng.range(20, 60);
                self.nodes[i].next_balance = self.now + secs(gap);
            }
            Action::Client(k) => self.client_step(k),
            Action::Phase => self.next_phase(),
        }
    }

    fn next_phase(&mut self) {
        match self.phase {
            Phase::Faults => {
                slog!(
                    self,
                    "=== faults stop: quiet tail of {} s ===",
                    self.p.tail_secs
                );
                self.phase = Phase::Tail;
                // An MCLT raised during the run lengthens RECOVER-WAIT.
                let tail = self.p.tail_secs.max(3 * u64::from(self.mclt_max) + 180);
                self.phase_end = self.now + secs(tail);
                self.dup_next = false;
                self.partition_until = None;
                self.spike = None;
                let now = self.now;
                for n in &mut self.nodes {
                    if n.engine.is_none() && n.halt_at.is_none() {
                        n.restart_at = Some(n.restart_at.map_or(now, |t| t.min(now + secs(1))));
                    }
                    if n.clock_fix_at.is_some() {
                        n.clock_fix_at = Some(now);
                    }
                }
            }
            Phase::Tail => {
                slog!(
                    self,
                    "=== tail over: clients stop, waiting for the pair to settle ==="
                );
                self.phase = Phase::Drain;
                self.phase_end = self.now + secs(600);
            }
            Phase::Drain => {
                let states = [self.nodes[0].state(), self.nodes[1].state()];
                self.fail(&format!(
                    "invariant 4: the pair did not settle in NORMAL with empty queues after the \
                     faults stopped: states {states:?}, connected {}",
                    self.conn.is_some()
                ));
            }
            Phase::Done => {}
        }
    }

    /// Both NORMAL, connected, nothing queued, in flight or waiting for storage.
    fn settled(&self) -> bool {
        let Some(c) = &self.conn else { return false };
        if c.q.iter().any(|q| !q.is_empty()) || c.broken {
            return false;
        }
        self.nodes.iter().all(|n| {
            let Some(e) = &n.engine else { return false };
            let st = e.status(self.now);
            e.state() == ServerState::Normal
                && e.partner_state() == Some(ServerState::Normal)
                && e.is_communicating()
                && st.queued == 0
                && st.awaiting_commit == 0
                && n.writes.is_empty()
        }) && !self.late_expiry_pending()
    }

    /// A lease runs on one server and has ended on the other, and it ends on the first within
    /// a few seconds: the draft dialect shifts received times by the measured skew (whole
    /// seconds, so a copy may end a second later), and a server whose clock was stepped back
    /// (an operator fixing it) holds times stored in the wrong clock, late by that step (on the
    /// safe side). Settling waits for those leases to end instead of comparing the tables in
    /// between.
    fn late_expiry_pending(&self) -> bool {
        const SKEW_SLACK: i64 = 3;
        let running = |i: usize, addr: &[u8; 4]| {
            let wall = self.wall(i);
            self.nodes[i].store.leases.get(addr).is_some_and(|e| {
                e.local.status == BindingStatus::Active
                    && e.local.lease_expiration.is_none_or(|l| l >= wall)
            })
        };
        (0..2).any(|i| {
            let n = &self.nodes[i];
            let wall = self.wall(i);
            let horizon = wall.plus(n.stepped_back.max(SKEW_SLACK) as u32);
            n.store.leases.iter().any(|(addr, e)| {
                e.local.status == BindingStatus::Active
                    && e.local
                        .lease_expiration
                        .is_some_and(|l| l >= wall && l <= horizon)
                    && !running(1 - i, addr)
            })
        })
    }

    // ----- engine I/O -----

    /// Moves events and outgoing messages until nothing more happens at this instant.
    pub(crate) fn pump(&mut self) {
        for _ in 0..100_000 {
            let mut progress = false;
            for i in 0..2 {
                progress |= self.drain(i);
                loop {
                    let now = self.now;
                    let mut buf = std::mem::take(&mut self.buf);
                    let node = &mut self.nodes[i];
                    let n = node
                        .engine
                        .as_mut()
                        .and_then(|e| e.poll_transmit(now, &mut buf, &node.store));
                    if let Some(n) = n {
                        self.net_send(i, &buf[..n]);
                        self.buf = buf;
                        progress = true;
                    } else {
                        self.buf = buf;
                        break;
                    }
                }
                progress |= self.drain(i);
                if self.nodes[i].close_requested {
                    self.nodes[i].close_requested = false;
                    slog!(self, "{} closes the connection", NAMES[i]);
                    self.close_side(i);
                    progress = true;
                }
            }
            if !progress {
                return;
            }
        }
        self.fail("pump did not settle");
    }

    /// Polls every action and event of node `i`.
    pub(crate) fn drain(&mut self, i: usize) -> bool {
        let mut any = false;
        while let Some(a) = self.nodes[i].engine.as_mut().and_then(|e| e.poll_action()) {
            any = true;
            self.on_action(i, a);
        }
        while let Some(e) = self.nodes[i].engine.as_mut().and_then(|e| e.poll_event()) {
            any = true;
            self.on_event(i, e);
        }
        any
    }

    fn on_action(&mut self, i: usize, a: EngineAction) {
        slog!(self, "{} action {:?}", NAMES[i], a);
        match a {
            EngineAction::Persist { token, snapshot } => {
                // Written at once: the whole snapshot replaces what was there.
                let n = &mut self.nodes[i];
                n.pstate = Some((snapshot.state, snapshot.since));
                n.pmclt = snapshot.mclt;
                n.plast = snapshot.last_operational;
                n.plost = snapshot.lease_table_lost;
                if let Some(Err(e)) = n.engine.as_mut().map(|e| e.persist_complete(token)) {
                    self.fail(&format!("persist_complete failed: {e}"));
                }
            }
            EngineAction::BindingAcked { .. } => {
                if let Some((address, ack)) = a.ack() {
                    self.on_acked(i, address, ack);
                }
            }
            EngineAction::BindingRejected {
                address, update, ..
            } => {
                self.stats.rejected += 1;
                // Taken by the record only for its current version (`apply_reject`).
                self.nodes[i].store.rejected(address, update);
            }
            EngineAction::SendAllBindings
            | EngineAction::SendUnackedBindings
            | EngineAction::SendBacklog => {
                if let Some(walk) = BacklogWalk::for_action(&a) {
                    self.walk_backlog(i, walk);
                }
            }
            // The POOLRESP goes with the plan (`balance_pools`).
            EngineAction::PoolRequested => {
                self.balance(i, BalanceTrigger::PoolReq);
            }
            EngineAction::PoolCheck => {
                self.balance(i, BalanceTrigger::Manual);
            }
            EngineAction::CloseConnection => self.nodes[i].close_requested = true,
            _ => {}
        }
    }

    fn on_event(&mut self, i: usize, e: Event) {
        slog!(self, "{} event {:?}", NAMES[i], e);
        match e {
            Event::StateChanged { from, to } => {
                *self.stats.states.entry(to.name()).or_default() += 1;
                if matches!(to, ServerState::Shutdown | ServerState::Paused)
                    && self.nodes[i].halt_at.is_none()
                {
                    // The engine went there on its own (ISC's tables do on some partner
                    // states): like ISC, the process ends after the linger and its supervisor
                    // restarts it.
                    self.stats.self_shutdowns += 1;
                    self.nodes[i].halt_at = Some(self.now + secs(7));
                }
                if from == ServerState::Recover
                    && matches!(to, ServerState::RecoverWait | ServerState::RecoverDone)
                {
                    self.nodes[i].complete = true;
                }
                let recovering = |s: ServerState| {
                    matches!(
                        s,
                        ServerState::Recover | ServerState::RecoverWait | ServerState::RecoverDone
                    )
                };
                if to == ServerState::PartnerDown {
                    self.nodes[1 - i].needs_sync = true;
                }
                if self.p.dialect == Dialect::Isc
                    && to == ServerState::PartnerDown
                    && (recovering(from)
                        || (from == ServerState::Startup && recovering(self.nodes[i].boot_state))
                        || self.nodes[i].needs_sync
                        // also from POTENTIAL-CONFLICT with a table not yet refilled (seeds
                        // 263123, 777085: partner SHUTDOWN → PARTNER-DOWN in ISC's table)
                        || !self.nodes[i].complete)
                {
                    // ISC's table (D36: RECOVER + partner SHUTDOWN → PARTNER-DOWN; also from
                    // RECOVER-DONE) serves with a table the recovery has not completed; the
                    // draft stays. Every address is exempt until both servers agree on it.
                    self.stats.isc_recover_to_pd += 1;
                    let all: Vec<[u8; 4]> = self.nodes[i].store.leases.keys().copied().collect();
                    self.tainted.extend(all);
                    self.nodes[i].served_incomplete = !self.nodes[i].complete;
                }
            }
            Event::ProtocolError { error } => {
                self.fail(&format!(
                    "invariant 0: protocol error between two engines at {}: {error}",
                    NAMES[i]
                ));
            }
            Event::ConnectionRejected { reason, .. } => {
                // A box with a wrong clock (until its restart with the right one; its last
                // answer may still be in flight).
                let bad_clock = self.nodes.iter().any(|n| n.skew != n.good_skew)
                    // The skew measured at CONNECT includes the transit time: up to 50 s of
                    // skew plus a latency spike legitimately exceeds the 60 s limit (the
                    // message may have left during the spike and arrive after it).
                    || self.spike.is_some()
                    || self.now < self.spike_tail;
                if !(reason == RejectReason::TimeMismatch && bad_clock) {
                    self.fail(&format!(
                        "invariant 0: connection rejected with {reason:?} between two engines"
                    ));
                }
            }
            Event::Alarm { .. } => self.stats.alarms += 1,
            _ => {}
        }
    }

    // ----- storage -----

    pub(crate) fn new_vid(&mut self) -> u64 {
        self.next_vid += 1;
        self.next_vid
    }

    /// Makes every pending write due by `upto` durable and confirms its commit to the engine.
    pub(crate) fn flush(&mut self, i: usize, upto: Instant) {
        loop {
            let n = &mut self.nodes[i];
            let Some(w) = n.writes.front() else { break };
            if w.due > upto {
                break;
            }
            let Some(w) = n.writes.pop_front() else { break };
            if w.duplicate {
                // nothing to write: our newer record stays
            } else {
                // The same rules on the durable copy, with what the record knew at commit time.
                let d = n.durable.record(w.binding.address);
                d.last_received = None;
                d.refused = w.refused;
                if d.apply_received(&w.binding, &w.verdict) == Received::Stored {
                    n.durable_vid.insert(w.binding.address, w.vid);
                }
            }
            n.history
                .entry(w.binding.address)
                .or_default()
                .push((w.vid, n.epoch));
            let r = n.engine.as_mut().map(|e| e.binding_committed(w.token));
            match r {
                Some(Ok(()) | Err(EngineError::UnknownToken)) | None => {}
                Some(Err(e)) => self.fail(&format!("binding_committed failed: {e}")),
            }
            slog!(
                self,
                "{} durable: {} v{}",
                NAMES[i],
                Ipv4Addr::from(w.binding.address),
                w.vid
            );
        }
    }

    /// A change of our own to `data.address`: written through (every earlier write becomes
    /// durable first), then queued to the partner if `send`.
    pub(crate) fn local_change(&mut self, i: usize, data: BindingData, send: bool) {
        let vid = self.new_vid();
        self.flush(i, Instant::from_millis(u64::MAX));
        let addr = data.address;
        let n = &mut self.nodes[i];
        for store in [&mut n.store, &mut n.durable] {
            store.update_local(data.clone(), send);
        }
        n.vid.insert(addr, vid);
        n.durable_vid.insert(addr, vid);
        n.history.entry(addr).or_default().push((vid, n.epoch));
        slog!(
            self,
            "{} local change v{vid}: {} {:?} hw={:?} let={:?} pet={:?}{}",
            NAMES[i],
            Ipv4Addr::from(addr),
            data.status,
            data.hardware_address.as_ref().map(|h| h.1.last().copied()),
            data.lease_expiration_time.map(|t| t.0),
            data.potential_expiration_time.map(|t| t.0),
            if send { "" } else { " (not sent)" }
        );
        if send {
            self.queue_binding(i, data, vid);
        }
    }

    fn queue_binding(&mut self, i: usize, data: BindingData, vid: u64) {
        let n = &mut self.nodes[i];
        let Some(e) = n.engine.as_mut() else { return };
        let update = match e.send_binding(&data) {
            Ok(update) => update,
            Err(err) => self.fail(&format!("send_binding refused: {err}")),
        };
        // The record notes it (`LeaseRecord::queued`), in memory and on stable storage.
        if let Some(r) = n.store.leases.get_mut(&data.address) {
            r.queued(update);
        }
        note_queued(&mut n.durable, &mut n.sent, data, vid, update, true);
    }

    /// Queues what `walk` asks for (§7.3, §7.4, §9.8.1) with the library's walk. The simulated
    /// engine's queue holds every record of the pool.
    fn walk_backlog(&mut self, i: usize, mut walk: BacklogWalk) {
        let n = &mut self.nodes[i];
        let Some(e) = n.engine.as_mut() else { return };
        walk.begin(n.store.leases.values_mut());
        if walk.which() == Backlog::All {
            // The partner lost what it acknowledged: on stable storage too.
            for (a, r) in &n.store.leases {
                if !r.is_untouched()
                    && let Some(d) = n.durable.leases.get_mut(a)
                {
                    d.partner_lost_table();
                }
            }
        }
        let (durable, sent, vids) = (&mut n.durable, &mut n.sent, &n.vid);
        let mut refused = None;
        let walked = walk.walk(
            n.store.leases.values_mut(),
            e.as_mut(),
            |r, queued| match queued {
                Ok(update) => {
                    let vid = vids.get(&r.data.address).copied().unwrap_or(INITIAL_VID);
                    note_queued(durable, sent, r.data.clone(), vid, update, true);
                }
                Err(err) => refused = Some(err),
            },
        );
        if let Some(err) = refused {
            self.fail(&format!("send_binding refused: {err}"));
        }
        if walked != Walked::Done {
            self.fail("send_binding refused: the queue is full");
        }
    }

    fn on_commit(&mut self, i: usize, token: CommitToken, binding: BindingData, verdict: Verdict) {
        let j = 1 - i;
        let Some((conn, xid)) = self.nodes[i].rx else {
            self.fail("a commit outside the delivery of a BNDUPD");
        };
        let Some(&(addr, vid)) = self.nodes[j].tx.get(&(conn, xid)) else {
            self.fail(&format!("a commit for xid {xid} the partner never sent"));
        };
        if addr != binding.address {
            self.fail("a commit for another address than the BNDUPD's");
        }
        let delay = if self.p.commit_delay_ms == 0 {
            0
        } else {
            self.rng.range(0, self.p.commit_delay_ms)
        };
        let now = self.now;
        let wall = self.wall(i);
        if self.p.dialect == Dialect::Isc
            && let Some(before) = self.nodes[i].store.leases.get(&addr).map(|e| e.local)
            && let Some(state) = self.nodes[i].state()
        {
            // What the draft's rules (§7.1.3) say about the update ISC's rules accepted.
            let draft = judge_update(
                Dialect::Draft,
                self.nodes[i].role(),
                state,
                Some(&before),
                &binding.to_wire(),
                wall,
                None,
            );
            if let Err(reason) = draft {
                let key = format!("{:?} <- {:?} ({reason:?})", before.status, binding.status);
                *self.stats.isc_only.entry(key).or_default() += 1;
                slog!(
                    self,
                    "{} accepts {:?} over {:?} for {} under ISC rules; the draft rejects it \
                     ({reason:?}): address tainted",
                    NAMES[i],
                    binding.status,
                    before.status,
                    Ipv4Addr::from(addr)
                );
                self.tainted.insert(addr);
            }
        }
        let n = &mut self.nodes[i];
        // The record contract decides (`LeaseRecord::apply_received`): an update sent again
        // after we changed the record keeps ours, an older one yields to our unacknowledged
        // record, otherwise the partner's is stored.
        let refused = n.store.leases.get(&addr).is_some_and(|e| e.refused);
        let outcome = n.store.commit_received(&binding, &verdict);
        let duplicate = matches!(outcome, Received::KeptOurs(_));
        if duplicate {
            // Acknowledged all the same: the partner-status the record noted goes to stable
            // storage too.
            let noted = n
                .store
                .leases
                .get(&addr)
                .and_then(|e| e.local.partner_status);
            if let Some(e) = n.durable.leases.get_mut(&addr) {
                e.local.partner_status = noted;
            }
        } else if outcome == Received::Stored {
            n.vid.insert(addr, vid);
        }
        if duplicate {
            slog!(
                self,
                "{} keeps its newer record of {} over a re-sent update",
                NAMES[i],
                Ipv4Addr::from(addr)
            );
        }
        let n = &mut self.nodes[i];
        let due = n.writes.back().map_or(now, |w| w.due).max(now + ms(delay));
        n.writes.push_back(PendingWrite {
            due,
            binding,
            verdict,
            vid,
            token,
            refused,
            duplicate,
        });
        if delay == 0 {
            self.flush(i, now);
        }
        if duplicate {
            // The engine took the partner's update as newer and dropped our queued copy:
            // queue ours again now, not at the next connection's backlog (seed 466447: a
            // pool-balancing BACKUP queued in the same second stayed unsent, and the tables
            // differed for good). The partner holds its own status, which stays the one it
            // may know (seed 266106: noting ours let us renew a lease the partner frees).
            let n = &mut self.nodes[i];
            let (Some(e), Some(r)) = (n.engine.as_mut(), n.store.leases.get_mut(&addr)) else {
                return;
            };
            let data = r.data.clone();
            let update = match r.send_again(e.as_mut()) {
                Ok(update) => update,
                Err(err) => self.fail(&format!("send_binding refused: {err}")),
            };
            let vid = n.vid.get(&addr).copied().unwrap_or(INITIAL_VID);
            note_queued(&mut n.durable, &mut n.sent, data, vid, update, false);
        }
    }

    fn on_acked(&mut self, i: usize, addr: [u8; 4], ack: Ack) {
        self.stats.acked += 1;
        let j = 1 - i;
        let Some((conn, xid)) = self.nodes[i].rx else {
            self.fail("BindingAcked outside the delivery of a BNDACK");
        };
        let Some(&(taddr, vid)) = self.nodes[i].tx.get(&(conn, xid)) else {
            self.fail(&format!("BindingAcked for xid {xid} we never sent"));
        };
        if taddr != addr {
            self.fail("BindingAcked for another address than the BNDUPD's");
        }
        self.check_acked(j, addr, vid);
        // Bookkeeping: what the partner now knows.
        self.flush(i, Instant::from_millis(u64::MAX));
        let role = self.nodes[i].role();
        let n = &mut self.nodes[i];
        let mut freed = false;
        for store in [&mut n.store, &mut n.durable] {
            freed |= store.acked(addr, &ack, role);
        }
        if freed {
            // Acknowledged EXPIRED/RELEASED/RESET made the address FREE on both sides (§5.11):
            // a new version of the record.
            let vid = self.new_vid();
            let n = &mut self.nodes[i];
            n.vid.insert(addr, vid);
            n.durable_vid.insert(addr, vid);
            n.history.entry(addr).or_default().push((vid, n.epoch));
            slog!(self, "{} frees {} v{vid}", NAMES[i], Ipv4Addr::from(addr));
        }
    }

    // ----- the connection -----

    pub(crate) fn latency(&mut self) -> Duration {
        let mut l = self.rng.range(0, self.p.latency_ms);
        if let Some((_, extra)) = self.spike {
            l += self.rng.range(0, extra);
        }
        ms(l)
    }

    fn connect(&mut self) {
        let gap = self.rng.range(self.p.reconnect_ms / 2, self.p.reconnect_ms);
        self.next_attempt = self.now + ms(gap);
        if self.conn.is_some() || !self.nodes.iter().all(Node::alive) {
            return;
        }
        let id = self.next_conn_id;
        self.next_conn_id += 1;
        let now = self.now;
        self.conn = Some(Conn {
            id,
            open: [true; 2],
            q: [VecDeque::new(), VecDeque::new()],
            tail: [now; 2],
            notify: [None; 2],
            broken: false,
        });
        slog!(self, "connection {id} up");
        for i in 0..2 {
            let r = self.nodes[i].engine.as_mut().map(|e| e.connection_up(now));
            if let Some(Err(e)) = r {
                self.fail(&format!("{} refused connection_up: {e}", NAMES[i]));
            }
            self.drain(i);
        }
        if std::mem::take(&mut self.dup_next) {
            // Both servers dialled: this connection lives until the binding's tie-break
            // closes it (maybe mid-handshake, maybe after STATE), and the other one comes up.
            let after = self.extra().range(0, 60);
            self.tie_break = Some((id, now + ms(after)));
        }
    }

    /// The tie-break between two connections of the pair: the one that came up first is
    /// closed, side by side in an order of the draw, and the other is up at once.
    fn tie_break(&mut self) {
        let Some((id, _)) = self.tie_break.take() else {
            return;
        };
        if self.conn.as_ref().is_none_or(|c| c.id != id) {
            return; // gone already
        }
        slog!(
            self,
            "tie-break: connection {id} is a duplicate and is closed"
        );
        let first = if self.extra().chance(50) { 0 } else { 1 };
        self.close_side(first);
        self.close_side(1 - first);
        self.drop_conn();
        if self.nodes.iter().all(Node::alive) {
            self.connect();
        }
    }

    /// Side `i` closes (or loses) the connection.
    pub(crate) fn close_side(&mut self, i: usize) {
        let now = self.now;
        let lat = self.latency();
        let Some(c) = self.conn.as_mut() else { return };
        if !c.open[i] {
            return;
        }
        c.open[i] = false;
        c.q[1 - i].clear();
        c.notify[i] = None;
        let j = 1 - i;
        if c.open[j] && c.notify[j].is_none() && !c.broken {
            // FIN after the data already sent.
            c.notify[j] = Some(c.tail[i].max(now) + lat);
        }
        let gone = !c.open[0] && !c.open[1];
        if gone {
            self.drop_conn();
        }
        if let Some(e) = self.nodes[i].engine.as_mut() {
            e.connection_down(now);
        }
        self.drain(i);
    }

    fn drop_conn(&mut self) {
        if let Some(c) = self.conn.take() {
            for n in &mut self.nodes {
                n.tx.retain(|(conn, _), _| *conn != c.id);
            }
            slog!(self, "connection {} gone", c.id);
        }
        let gap = self.rng.range(self.p.reconnect_ms / 2, self.p.reconnect_ms);
        self.next_attempt = self.now + ms(gap);
    }

    fn net_send(&mut self, from: usize, bytes: &[u8]) {
        let lat = self.latency();
        let now = self.now;
        let Some(c) = self.conn.as_ref() else { return };
        let id = c.id;
        if c.broken || !c.open[from] || !c.open[1 - from] {
            slog!(self, "{} → (lost) {}", NAMES[from], summarize(bytes));
            return;
        }
        if let Ok(Repr::BndUpd(u)) = Repr::parse(bytes) {
            for b in u.bindings.iter() {
                let Ok(data) = BindingData::from_wire(&b) else {
                    self.fail("undecodable binding sent");
                };
                let n = &self.nodes[from];
                // The engine sends the record as the store holds it: a version given to
                // `send_binding`, or the current record (the partner's binding stored since).
                let vid = n
                    .sent
                    .get(&data.address)
                    .and_then(|v| v.iter().rev().find(|(d, _)| *d == data).map(|x| x.1))
                    .or_else(|| {
                        n.store
                            .leases
                            .get(&data.address)
                            .filter(|r| r.data == data)
                            .map(|_| n.vid.get(&data.address).copied().unwrap_or(INITIAL_VID))
                    });
                let Some(vid) = vid else {
                    let known = self.nodes[from].sent.get(&data.address).map(VecDeque::len);
                    self.fail(&format!(
                        "{} sent a binding it was never given: {data:?} ({known:?} copies known)",
                        NAMES[from]
                    ));
                };
                self.nodes[from].tx.insert((id, u.xid), (data.address, vid));
            }
        }
        slog!(self, "{} → {}", NAMES[from], summarize(bytes));
        let Some(c) = self.conn.as_mut() else { return };
        let at = c.tail[from].max(now + lat);
        c.tail[from] = at;
        c.q[from].push_back((at, bytes.to_vec()));
    }

    fn deliver(&mut self, from: usize) {
        let to = 1 - from;
        let Some(c) = self.conn.as_mut() else { return };
        let Some((_, bytes)) = c.q[from].pop_front() else {
            return;
        };
        if !c.open[to] {
            return;
        }
        let id = c.id;
        self.stats.delivered += 1;
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.mix(u64::from_le_bytes(b));
        }
        let xid = failover_proto::Message::new_checked(&bytes[..]).map_or(0, |m| m.xid());
        slog!(self, "{} ← {}", NAMES[to], summarize(&bytes));
        let now = self.now;
        let wall = self.wall(to);
        self.nodes[to].rx = Some((id, xid));
        let n = &mut self.nodes[to];
        let mut commits = Commits::new();
        if let Some(e) = n.engine.as_mut() {
            match e.handle_message(now, wall, &bytes, &n.store, &mut commits) {
                Ok(()) => {}
                Err(EngineError::EventsPending) => {
                    self.fail("EventsPending although every event was polled");
                }
                Err(e) => self.fail(&format!("handle_message: {e}")),
            }
        }
        // The partner's bindings the engine accepted, in the order of the BNDUPD.
        while let Some(c) = commits.pop() {
            slog!(self, "{} commit {:?} {:?}", NAMES[to], c.token, c.binding);
            self.on_commit(to, c.token, c.binding, c.verdict);
        }
        self.drain(to);
        self.nodes[to].rx = None;
    }

    // ----- server lifecycle -----

    fn boot(&mut self, i: usize) {
        let now = self.now;
        let wall = self.wall(i);
        let seed = self.rng.next_u64() as u32;
        let n = &mut self.nodes[i];
        let persisted = n.persisted();
        n.boot_state = persisted.map_or(ServerState::Recover, |p| p.state);
        match TestEngine::new(n.config.clone(), persisted, now, wall, seed) {
            Ok(mut e) => {
                if let Some(pet) =
                    failover_fsm::record::latest_received_pet(n.store.leases.values())
                {
                    e.restore_received_pet(pet);
                }
                n.engine = Some(Box::new(e));
            }
            Err(e) => self.fail(&format!("Engine::new: {e}")),
        }
        let n = &mut self.nodes[i];
        n.next_scan = now + secs(1);
        n.next_balance = now + secs(10);
        n.timeout_spin = (Instant::ZERO, 0);
        slog!(
            self,
            "{} boots, persisted {:?}, skew {}",
            NAMES[i],
            persisted,
            self.nodes[i].skew
        );
        self.drain(i);
    }

    /// The server process dies: memory is lost, stable storage stays. With `rst` the partner's
    /// TCP learns of it at once, otherwise only its receive timer will.
    pub(crate) fn crash(&mut self, i: usize, rst: bool) {
        let now = self.now;
        let lat = self.latency();
        let n = &mut self.nodes[i];
        n.engine = None;
        // What was applied but not yet durable is gone, and so is the memory of having applied
        // it (kept in memory only here: a store that remembers it durably is no worse).
        n.store = n.durable.clone();
        n.store.restarted();
        n.vid = n.durable_vid.clone();
        n.writes.clear();
        n.close_requested = false;
        n.rx = None;
        n.halt_at = None;
        n.down_since = Some(now);
        n.sent.clear();
        slog!(
            self,
            "{} crashes ({})",
            NAMES[i],
            if rst { "RST" } else { "silent" }
        );
        let Some(c) = self.conn.as_mut() else { return };
        if c.open[i] {
            c.open[i] = false;
            c.q[1 - i].clear();
            c.notify[i] = None;
            let j = 1 - i;
            if rst && c.open[j] && c.notify[j].is_none() && !c.broken {
                c.notify[j] = Some(c.tail[i].max(now) + lat);
            }
        }
        if !c.open[0] && !c.open[1] {
            self.drop_conn();
        }
    }

    fn restart(&mut self, i: usize) {
        let lose = self.nodes[i].restart_lose;
        let pool = self.p.pool;
        let n = &mut self.nodes[i];
        n.restart_at = None;
        n.restart_lose = false;
        n.down_since = None;
        if let Some(s) = n.restart_skew.take() {
            n.skew = s;
        }
        let restore = std::mem::take(&mut n.restart_restore);
        if let Some(m) = n.restart_mclt.take() {
            n.config.mclt = m;
        }
        if let Some((mut store, vids)) = n.backup.clone().filter(|_| restore) {
            // An operator restored the lease table from an older copy and starts the server
            // without its failover state: it recovers (UPDREQALL) over that table. Whatever
            // the copy holds the partner has since acknowledged newer versions of.
            n.epoch += 1;
            store.restarted();
            for e in store.leases.values_mut() {
                e.partner_has_it = true;
            }
            n.durable = store.clone();
            n.store = store;
            n.vid = vids.clone();
            n.durable_vid = vids;
            n.pstate = None;
            n.pmclt = None;
            n.plast = None;
            n.complete = false;
        } else if lose {
            n.epoch += 1;
            n.store = fresh_store(pool);
            n.durable = n.store.clone();
            for v in n.vid.values_mut() {
                *v = INITIAL_VID;
            }
            n.durable_vid = n.vid.clone();
            n.pstate = None;
            n.pmclt = None;
            n.plast = None;
            n.complete = false;
        } else {
            n.store = n.durable.clone();
            n.store.restarted();
            n.vid = n.durable_vid.clone();
        }
        let mclt = self.nodes[i].config.mclt;
        slog!(
            self,
            "{} restarts{} (MCLT {mclt})",
            NAMES[i],
            if restore {
                " from an OLDER COPY of its storage"
            } else if lose {
                " WITHOUT its storage"
            } else {
                ""
            }
        );
        // A refresh cut short before any failover state was saved must be asked for again.
        let unfinished = self.nodes[i].plost && self.nodes[i].pstate.is_none();
        self.boot(i);
        if restore || lose || unfinished {
            // The operator knows: the lease table is gone or an older copy (draft §9.5.2).
            if let Some(e) = self.nodes[i].engine.as_mut() {
                e.lease_table_lost();
            }
        }
    }
}

/// One line describing a message, for the log.
pub(crate) fn summarize(bytes: &[u8]) -> String {
    match Repr::parse(bytes) {
        Ok(Repr::BndUpd(u)) => {
            let parts: Vec<String> = u
                .bindings
                .iter()
                .map(|b| {
                    format!(
                        "{} {:?} hw={:?} let={:?} pet={:?} cltt={:?}",
                        b.address,
                        b.status,
                        b.hardware_address.map(|h| h.address.last().copied()),
                        b.lease_expiration_time,
                        b.potential_expiration_time,
                        b.client_last_transaction_time
                    )
                })
                .collect();
            format!("BNDUPD xid={} {}", u.xid, parts.join("; "))
        }
        Ok(Repr::BndAck(a)) => {
            let parts: Vec<String> = a
                .acks
                .iter()
                .map(|k| format!("{} {:?}", k.address, k.reject_reason))
                .collect();
            format!("BNDACK xid={} {}", a.xid, parts.join("; "))
        }
        Ok(Repr::State(s)) => format!(
            "STATE {:?}{} since={}",
            s.server_state,
            if s.server_flags.contains(ServerFlags::STARTUP) {
                " (STARTUP)"
            } else {
                ""
            },
            s.start_time_of_state
        ),
        Ok(r) => format!("{} xid={}", r.message_type().name(), r.xid()),
        Err(e) => format!("undecodable message: {e}"),
    }
}

/// What the simulator keeps of an update once queued: the record on stable storage notes it
/// (`note_sent`: [`failover_fsm::record::LeaseRecord::queued`], else `queued_again`), and the
/// history of what was sent, for the invariant checks.
fn note_queued(
    durable: &mut Store,
    sent: &mut BTreeMap<[u8; 4], VecDeque<(BindingData, u64)>>,
    data: BindingData,
    vid: u64,
    update: UpdateId,
    note_sent: bool,
) {
    if durable.leases.contains_key(&data.address) {
        durable.queued(data.address, update, !note_sent);
    }
    let history = sent.entry(data.address).or_default();
    history.push_back((data, vid));
    while history.len() > 64 {
        history.pop_front();
    }
}
