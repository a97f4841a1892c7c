//! The demo behind `cargo run --example pair`: two failover peers in one process, talking
//! draft-12 over loopback TCP, through a whole failover story.
//!
//! 1. Both start with empty stores (a new pair) and reach NORMAL through RECOVER.
//! 2. Pool balancing on entering NORMAL gives the secondary half the pool as BACKUP.
//! 3. The primary grants leases to simulated clients (lease times from
//!    [`Handle::lease_time`], the MCLT rule) and the secondary stores them (BNDUPD / BNDACK).
//! 4. The primary is killed (its task aborted: no SHUTDOWN, no DISCONNECT).
//! 5. The secondary goes COMMUNICATIONS-INTERRUPTED, then PARTNER-DOWN when the safe period
//!    (auto-partner-down) ends, and serves a new client from its BACKUP pool.
//! 6. The primary restarts from its store, goes through RECOVER, and both end in NORMAL.
//! 7. The two lease tables are compared: address → status and client.
//!
//! Every step prints a timestamped line; [`run`] returns a [`Report`] whose
//! [`Report::passed`] says whether every check held.
//!
//! ```no_run
//! # async fn demo() {
//! use failover_examples::console::Console;
//! use failover_examples::pair::{PairOptions, run};
//! let report = run(&PairOptions::default(), &Console::stdout(false)).await;
//! assert!(report.passed());
//! # }
//! ```

use std::collections::BTreeMap;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use failover_fsm::policy::{
    AllocRefusal, AllocationRequest, ClientMessage, Endpoint, LeaseRequest, LeaseTimes,
    MessageKind, PartnerDownLeases, PartnerPool, may_allocate,
};
use failover_fsm::{
    Action, BindingData, BindingStatus, Config, Event, RejectReason, Role, ServerState,
};
use failover_tokio::{Handle, Lease, MemoryStore, PeerBuilder, PeerEvent, Storage, wall_clock};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::console::{ArgError, Args, Console, Style, mac, thousands};

/// `--help`.
pub const USAGE: &str = "\
pair — two DHCP failover peers (draft-ietf-dhc-failover-12) in one process, over loopback TCP

USAGE:
    cargo run --example pair [-- OPTIONS]

Starts a primary and a secondary on 127.0.0.1 (free high ports), lets them reach NORMAL,
balances the pool, streams leases from the primary to the secondary, kills the primary,
watches the secondary take over (COMMUNICATIONS-INTERRUPTED, then PARTNER-DOWN) and serve a
new client, restarts the primary from its store, waits for both to be NORMAL again and checks
that the two lease tables are identical. Exit status 0 when every check passed, 1 otherwise.

OPTIONS:
    --leases N        leases the primary grants (default 1000, at most 50000)
    --mclt S          maximum client lead time, seconds (default 5)
    --safe-period S   secondary's auto-partner-down delay, seconds (default 3)
    --quiet           print only the summary
    -h, --help        this text

ENVIRONMENT:
    RUST_LOG          tracing filter for the failover task's own logs (default: errors only),
                      e.g. RUST_LOG=failover_tokio=debug
    NO_COLOR          no colours on a terminal
";

/// The demo's knobs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairOptions {
    /// Leases the primary grants (`--leases`).
    pub leases: u32,
    /// Maximum client lead time, seconds (`--mclt`).
    pub mclt: u32,
    /// The secondary's safe period before PARTNER-DOWN, seconds (`--safe-period`).
    pub safe_period: u32,
    /// Only the summary (`--quiet`).
    pub quiet: bool,
}

impl Default for PairOptions {
    fn default() -> Self {
        PairOptions {
            leases: 1000,
            mclt: 5,
            safe_period: 3,
            quiet: false,
        }
    }
}

/// Most leases `--leases` accepts (the pool is twice as large and must fit 198.18.0.0/15).
pub const MAX_LEASES: u32 = 50_000;

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// Run the demo.
    Run(PairOptions),
    /// Print [`USAGE`].
    Help,
}

/// Parses the arguments after the program name.
pub fn parse_args<I, S>(args: I) -> Result<Parsed, ArgError>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let mut args = Args::new(args);
    let mut o = PairOptions::default();
    while let Some(flag) = args.next_flag()? {
        match flag.as_str() {
            "-h" | "--help" => return Ok(Parsed::Help),
            "--leases" => o.leases = args.value(&flag)?,
            "--mclt" => o.mclt = args.value(&flag)?,
            "--safe-period" => o.safe_period = args.value(&flag)?,
            "-q" | "--quiet" => o.quiet = true,
            other => return Err(ArgError(format!("unknown option `{other}` (see --help)"))),
        }
    }
    if o.leases == 0 || o.leases > MAX_LEASES {
        return Err(ArgError(format!("--leases must be 1..={MAX_LEASES}")));
    }
    if o.mclt == 0 || o.mclt > 3600 {
        return Err(ArgError("--mclt must be 1..=3600 seconds".into()));
    }
    if o.safe_period > 3600 {
        return Err(ArgError(
            "--safe-period must be at most 3600 seconds".into(),
        ));
    }
    Ok(Parsed::Run(o))
}

/// One verified claim of the demo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// What was checked.
    pub what: String,
    /// Whether it held.
    pub ok: bool,
}

/// Time spent in one state (`None`: the process was not running).
#[derive(Debug, Clone, PartialEq)]
pub struct StateTime {
    /// The state.
    pub state: Option<ServerState>,
    /// Total time in it.
    pub time: Duration,
}

/// The outcome of [`run`].
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// Every check, in order.
    pub checks: Vec<Check>,
    /// Leases granted by the primary.
    pub leases_granted: u64,
    /// Bindings the secondary committed from the primary while the leases streamed.
    pub leases_stored: u64,
    /// How long the lease stream took (first grant to last acknowledgement).
    pub stream_time: Option<Duration>,
    /// Time in each state: primary, secondary.
    pub time_in_state: [Vec<StateTime>; 2],
    /// The whole run.
    pub total_time: Duration,
}

impl Report {
    /// Whether every check held (and there was at least one).
    pub fn passed(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|c| c.ok)
    }

    /// Leases per second during the stream.
    pub fn updates_per_sec(&self) -> Option<f64> {
        self.stream_time
            .filter(|d| !d.is_zero())
            .map(|d| self.leases_stored as f64 / d.as_secs_f64())
    }
}

/// What the event listener of one peer saw (across restarts).
#[derive(Debug)]
struct PeerLog {
    name: &'static str,
    style: Style,
    /// (time since start, state): `None` while the process is down.
    states: Mutex<Vec<(Duration, Option<ServerState>)>>,
    /// Bumped after every entry to `states` (after its line was printed).
    changed: watch::Sender<u64>,
    /// Bindings received from the partner and committed.
    received: AtomicU64,
    /// … of which ACTIVE.
    received_active: AtomicU64,
    /// Our bindings the partner acknowledged.
    acked: AtomicU64,
    /// Bindings rejected either way, protocol errors, storage errors, refused connections.
    problems: AtomicU64,
    /// Messages in/out and connections of the incarnations that are gone.
    past_in: AtomicU64,
    past_out: AtomicU64,
    past_connections: AtomicU64,
}

impl PeerLog {
    fn new(name: &'static str, style: Style) -> PeerLog {
        PeerLog {
            name,
            style,
            states: Mutex::new(Vec::new()),
            changed: watch::Sender::new(0),
            received: AtomicU64::new(0),
            received_active: AtomicU64::new(0),
            acked: AtomicU64::new(0),
            problems: AtomicU64::new(0),
            past_in: AtomicU64::new(0),
            past_out: AtomicU64::new(0),
            past_connections: AtomicU64::new(0),
        }
    }

    fn enter(&self, at: Duration, state: Option<ServerState>) {
        let mut g = self.states.lock().unwrap_or_else(|p| p.into_inner());
        if g.last().map(|(_, s)| *s) != Some(state) {
            g.push((at, state));
        }
        drop(g);
        self.changed.send_modify(|n| *n += 1);
    }

    fn entered_since(&self, state: ServerState, since: Duration) -> bool {
        let g = self.states.lock().unwrap_or_else(|p| p.into_inner());
        g.iter().any(|(t, s)| *t >= since && *s == Some(state))
    }

    /// Waits until the listener has printed an entry to `state` at or after `since` (the
    /// timeline then reads in order: the state change first, the demo's remark after).
    async fn reached(&self, state: ServerState, since: Duration) {
        let mut rx = self.changed.subscribe();
        while !self.entered_since(state, since) {
            if rx.changed().await.is_err() {
                return;
            }
        }
    }

    fn retire(&self, handle: &Handle) {
        let c = handle.counters();
        self.past_in.fetch_add(c.messages_in(), Ordering::Relaxed);
        self.past_out.fetch_add(c.messages_out(), Ordering::Relaxed);
        self.past_connections
            .fetch_add(c.connections(), Ordering::Relaxed);
    }

    fn time_in_state(&self, end: Duration) -> Vec<StateTime> {
        let g = self.states.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<StateTime> = Vec::new();
        for (i, (at, state)) in g.iter().enumerate().filter(|(_, (at, _))| *at < end) {
            let until = g.get(i + 1).map_or(end, |(t, _)| *t);
            let d = until.saturating_sub(*at);
            match out.iter_mut().find(|s| s.state == *state) {
                Some(s) => s.time += d,
                None => out.push(StateTime {
                    state: *state,
                    time: d,
                }),
            }
        }
        out
    }
}

/// Prints what one peer reports and counts bindings; ends when the peer's task is gone.
fn spawn_listener(
    mut events: mpsc::Receiver<PeerEvent>,
    log: Arc<PeerLog>,
    console: Console,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let say = |text: String| console.styled_line(log.name, Some(log.style), text);
        let warn = |text: String| {
            log.problems.fetch_add(1, Ordering::Relaxed);
            console.styled_line(log.name, Some(log.style), console.paint(Style::Red, text));
        };
        while let Some(event) = events.recv().await {
            match event {
                PeerEvent::Connected { peer, outgoing } => say(if outgoing {
                    format!("connected to the partner at {peer}")
                } else {
                    format!("accepted the partner's connection from {peer}")
                }),
                PeerEvent::Disconnected => say("connection to the partner closed".into()),
                PeerEvent::Refused { from } => warn(format!("refused a stranger at {from}")),
                PeerEvent::StorageError(e) => warn(format!("storage error: {e}")),
                PeerEvent::Engine(e) => match e {
                    Event::StateChanged { from, to } => {
                        say(format!(
                            "{} → {}",
                            console.state(from),
                            console.paint(Style::Bold, console.state(to))
                        ));
                        log.enter(console.elapsed(), Some(to));
                    }
                    Event::PartnerStateChanged { state, startup, .. } => {
                        let s = if startup { " (starting up)" } else { "" };
                        say(console.paint(
                            Style::Dim,
                            format!("partner reports {}{s}", crate::console::state_name(state)),
                        ));
                    }
                    Event::UpdatesReceived => say(console.paint(
                        Style::Dim,
                        "partner has sent everything we asked for (UPDDONE)",
                    )),
                    Event::PoolResponse {
                        addresses_transferred,
                    } => say(console.paint(
                        Style::Dim,
                        format!(
                            "partner answers POOLREQ: {addresses_transferred} more addresses (POOLRESP)"
                        ),
                    )),
                    Event::PartnerDisconnected { reason } => {
                        say(format!("partner sent DISCONNECT: {reason}"));
                    }
                    Event::ConnectionRejected { reason, by_partner } => warn(format!(
                        "connection rejected by {}: {reason}",
                        if by_partner { "the partner" } else { "us" }
                    )),
                    // Both sent an update of the address at once (both resynchronising after a
                    // start): ISC's dueling rule keeps one. Expected, not a problem.
                    Event::RejectedPartnerBinding {
                        address,
                        reason: RejectReason::LessCriticalBindingInformation,
                    } => say(console.paint(
                        Style::Dim,
                        format!(
                            "crossing updates of {}: ours stands (dueling rule)",
                            Ipv4Addr::from(address)
                        ),
                    )),
                    Event::RejectedPartnerBinding { address, reason } => warn(format!(
                        "we rejected the partner's binding of {}: {reason}",
                        Ipv4Addr::from(address)
                    )),
                    Event::ProtocolError { error } => warn(format!("protocol error: {error}")),
                    // An operator alarm (§9.9.1): expected when the partner goes away.
                    Event::Alarm {
                        state,
                        partner_state,
                    } => say(console.paint(
                        Style::Yellow,
                        format!(
                            "operator alarm: we are {state}, partner last seen {}",
                            partner_state.map_or_else(|| "never".to_string(), |s| s.to_string())
                        ),
                    )),
                    _ => {}
                },
                PeerEvent::Received(c) => {
                    log.received.fetch_add(1, Ordering::Relaxed);
                    if c.binding.status == BindingStatus::Active {
                        log.received_active.fetch_add(1, Ordering::Relaxed);
                    }
                }
                PeerEvent::Action(a) => match a {
                    Action::BindingAcked { .. } => {
                        log.acked.fetch_add(1, Ordering::Relaxed);
                    }
                    Action::SendAllBindings => {
                        say(console.paint(Style::Dim, "partner asks for every binding (UPDREQALL)"))
                    }
                    Action::SendUnackedBindings => say(console.paint(
                        Style::Dim,
                        "partner asks for the bindings it has not acknowledged (UPDREQ)",
                    )),
                    Action::PoolRequested => {
                        say(console.paint(Style::Dim, "partner asks for addresses (POOLREQ)"))
                    }
                    Action::BindingRejected {
                        address,
                        reason: RejectReason::LessCriticalBindingInformation,
                        ..
                    } => say(console.paint(
                        Style::Dim,
                        format!(
                            "crossing updates of {}: the partner's stands (dueling rule)",
                            Ipv4Addr::from(address)
                        ),
                    )),
                    Action::BindingRejected {
                        address, reason, ..
                    } => warn(format!(
                        "partner rejected our binding of {}: {reason}",
                        Ipv4Addr::from(address)
                    )),
                    _ => {}
                },
                _ => {}
            }
        }
    })
}

/// A port nobody listens on now (the kernel's pick).
fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn config(role: Role, opts: &PairOptions) -> Config {
    let mut c = Config::new(role, "pair-demo", opts.mclt);
    c.receive_timer = 6;
    c.max_unacked_bndupd = 100;
    c.startup_delay = 5;
    c.auto_partner_down = Some(opts.safe_period);
    c
}

async fn within<T>(limit: Duration, what: &str, f: impl Future<Output = T>) -> Result<T, String> {
    tokio::time::timeout(limit, f)
        .await
        .map_err(|_| format!("timed out after {} s: {what}", limit.as_secs()))
}

async fn until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) -> Result<(), String> {
    within(limit, what, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
}

fn endpoint(config: &Config, handle: &Handle) -> Endpoint {
    let s = handle.status();
    Endpoint {
        dialect: config.dialect,
        role: config.role,
        state: s.state,
        state_since: s.state_since,
        partner_state: s.partner_state,
        mclt: s.mclt,
        lease_mclt: s.lease_mclt,
    }
}

/// Address → (status, client-identifier, hardware address): what both tables must agree on.
type TableRow = (BindingStatus, Option<Vec<u8>>, Option<(u8, Vec<u8>)>);

fn table(leases: &BTreeMap<[u8; 4], Lease>) -> BTreeMap<[u8; 4], TableRow> {
    leases
        .iter()
        .map(|(a, l)| {
            (
                *a,
                (
                    l.local.status,
                    l.data.client_identifier.as_ref().map(|c| c.to_vec()),
                    l.data
                        .hardware_address
                        .as_ref()
                        .map(|(t, h)| (*t, h.to_vec())),
                ),
            )
        })
        .collect()
}

fn describe(row: Option<&TableRow>) -> String {
    match row {
        None => "missing".into(),
        Some((status, _, hw)) => match hw {
            Some((_, hw)) => format!("{status} {}", mac(hw)),
            None => status.to_string(),
        },
    }
}

/// Differences between two tables, at most `limit` described.
fn differences(
    a: &BTreeMap<[u8; 4], TableRow>,
    b: &BTreeMap<[u8; 4], TableRow>,
    limit: usize,
) -> (usize, Vec<String>) {
    let mut count = 0;
    let mut shown = Vec::new();
    let keys: std::collections::BTreeSet<_> = a.keys().chain(b.keys()).collect();
    for k in keys {
        let (x, y) = (a.get(k), b.get(k));
        if x != y {
            count += 1;
            if shown.len() < limit {
                shown.push(format!(
                    "{}: primary {}, secondary {}",
                    Ipv4Addr::from(*k),
                    describe(x),
                    describe(y)
                ));
            }
        }
    }
    (count, shown)
}

/// `[██████░░░░░░]  42%  2,103 of 5,000 stored · 2,100 acked · 12,739/s`: short enough
/// for an 80-column terminal.
fn stream_line(stored: u64, acked: u64, total: u64, rate: f64) -> String {
    const WIDTH: u64 = 16;
    let total = total.max(1);
    let filled = (stored.min(total) * WIDTH / total) as usize;
    format!(
        "[{}{}] {:>3}%  {} of {} stored · {} acked · {}/s",
        "█".repeat(filled),
        "░".repeat(WIDTH as usize - filled),
        stored * 100 / total,
        thousands(stored),
        thousands(total),
        thousands(acked),
        thousands(rate as u64)
    )
}

/// The simulated client number `i`: a locally administered MAC.
fn client_mac(i: u32) -> [u8; 6] {
    let [_, a, b, c] = i.to_be_bytes();
    [0x02, 0x00, 0x5e, a, b, c]
}

struct Demo<'a> {
    opts: &'a PairOptions,
    console: &'a Console,
    checks: Vec<Check>,
    first: Ipv4Addr,
    pool: u32,
    ports: (u16, u16),
    pstore: Arc<MemoryStore>,
    sstore: Arc<MemoryStore>,
    plog: Arc<PeerLog>,
    slog: Arc<PeerLog>,
    primary: Option<Handle>,
    secondary: Option<Handle>,
    listeners: Vec<JoinHandle<()>>,
    granted: u64,
    stored: u64,
    stream_time: Option<Duration>,
}

const WHO: &str = "demo";

impl<'a> Demo<'a> {
    fn say(&self, text: impl AsRef<str>) {
        self.console.styled_line(
            WHO,
            Some(Style::Bold),
            self.console.paint(Style::Bold, text.as_ref()),
        );
    }

    fn note(&self, text: impl AsRef<str>) {
        self.console.styled_line(WHO, Some(Style::Bold), text);
    }

    fn check(&mut self, ok: bool, what: impl Into<String>) -> bool {
        let what = what.into();
        let mark = if ok {
            self.console.paint(Style::Green, "✓")
        } else {
            self.console.paint(Style::Red, "✗")
        };
        self.console
            .styled_line(WHO, Some(Style::Bold), format!("{mark} {what}"));
        self.checks.push(Check { what, ok });
        ok
    }

    fn require(&mut self, ok: bool, what: impl Into<String>) -> Result<(), String> {
        let what = what.into();
        if self.check(ok, what.clone()) {
            Ok(())
        } else {
            Err(format!("failed: {what}"))
        }
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    async fn start(&mut self, role: Role) -> Result<Handle, String> {
        let (listen, partner, store, log) = match role {
            Role::Primary => (self.ports.0, self.ports.1, &self.pstore, &self.plog),
            Role::Secondary => (self.ports.1, self.ports.0, &self.sstore, &self.slog),
        };
        let (handle, events) =
            PeerBuilder::new(config(role, self.opts), Self::addr(partner), store.clone())
                .plaintext()
                .listen(Self::addr(listen))
                .reconnect(Duration::from_millis(100), Duration::from_secs(1))
                .reject_backoff(Duration::from_secs(1))
                .start()
                .await
                .map_err(|e| format!("{role:?} could not listen on 127.0.0.1:{listen}: {e}"))?;
        log.enter(self.console.elapsed(), Some(handle.status().state));
        self.console.styled_line(
            log.name,
            Some(log.style),
            format!(
                "started in {}, listening on {}",
                self.console.state(handle.status().state),
                handle.local_addr()
            ),
        );
        self.listeners
            .push(spawn_listener(events, log.clone(), self.console.clone()));
        Ok(handle)
    }

    fn handles(&self) -> Result<(Handle, Handle), String> {
        match (&self.primary, &self.secondary) {
            (Some(p), Some(s)) => Ok((p.clone(), s.clone())),
            _ => Err("a peer is not running".into()),
        }
    }

    /// Both NORMAL, nothing queued, nothing unacknowledged, nothing awaiting commit.
    async fn settle(&self, limit: Duration, what: &str) -> Result<(), String> {
        let (p, s) = self.handles()?;
        until(limit, what, || {
            [p.status(), s.status()].iter().all(|st| {
                st.state == ServerState::Normal
                    && st.partner_state == Some(ServerState::Normal)
                    && st.queued == 0
                    && st.unacked_sent == 0
                    && st.awaiting_commit == 0
            })
        })
        .await
    }

    async fn scenario(&mut self) -> Result<(), String> {
        let o = self.opts;
        let last = Ipv4Addr::from(u32::from(self.first) + self.pool - 1);
        self.say(format!(
            "DHCP failover pair: primary 127.0.0.1:{} ⇄ secondary 127.0.0.1:{}",
            self.ports.0, self.ports.1
        ));
        self.note(format!(
            "pool {}–{last} ({} addresses, all FREE on both: a new pair) · MCLT {} s · safe period {} s",
            self.first,
            thousands(u64::from(self.pool)),
            o.mclt,
            o.safe_period
        ));

        // 1. Cold start.
        let t = self.console.elapsed();
        // One after the other: had both dialled at the same moment, each would keep its own
        // outgoing connection and close the other's, and both would retry after a backoff.
        // The primary's first dial fails at once (nobody listens yet); the secondary's lands.
        self.primary = Some(self.start(Role::Primary).await?);
        tokio::time::sleep(Duration::from_millis(25)).await;
        self.secondary = Some(self.start(Role::Secondary).await?);
        let (p, s) = self.handles()?;
        within(Duration::from_secs(30), "both peers reach NORMAL", async {
            tokio::join!(
                self.plog.reached(ServerState::Normal, t),
                self.slog.reached(ServerState::Normal, t)
            )
        })
        .await?;
        let ok = p.status().state == ServerState::Normal && s.status().state == ServerState::Normal;
        self.require(
            ok,
            format!(
                "both peers NORMAL after a cold start ({:.2} s)",
                (self.console.elapsed() - t).as_secs_f64()
            ),
        )?;

        // 2. Pool balancing.
        let half = self.pool / 2;
        let ss = self.sstore.clone();
        let ps = self.pstore.clone();
        let balanced = until(Duration::from_secs(15), "pool balancing", || {
            ss.count(BindingStatus::Backup) == half as usize
                && ps.count(BindingStatus::Backup) == half as usize
                && p.status().queued == 0
                && p.status().unacked_sent == 0
        })
        .await;
        self.require(
            balanced.is_ok(),
            format!(
                "pool balanced: primary keeps {} FREE, secondary holds {} BACKUP",
                thousands(ps.count(BindingStatus::Free) as u64),
                thousands(ss.count(BindingStatus::Backup) as u64)
            ),
        )?;

        // 3. The lease stream.
        self.stream(&p).await?;

        // 4. Kill the primary.
        let before = ps.count(BindingStatus::Active);
        self.console.styled_line(
            self.plog.name,
            Some(self.plog.style),
            self.console.paint(
                Style::Red,
                "✗ killed: task aborted, sockets closed by the OS (no SHUTDOWN, no DISCONNECT)",
            ),
        );
        let killed_at = self.console.elapsed();
        self.plog.enter(killed_at, None);
        self.plog.retire(&p);
        p.abort().await;
        self.primary = None;

        // 5. The secondary takes over.
        within(
            Duration::from_secs(15),
            "secondary notices the primary is gone",
            self.slog
                .reached(ServerState::CommunicationsInterrupted, killed_at),
        )
        .await?;
        let ci = self.console.elapsed() - killed_at;
        self.check(
            true,
            format!(
                "secondary COMMUNICATIONS-INTERRUPTED {:.3} s after the kill",
                ci.as_secs_f64()
            ),
        );
        self.note(format!(
            "secondary waits out its safe period ({} s) before PARTNER-DOWN",
            o.safe_period
        ));
        within(
            Duration::from_secs(u64::from(o.safe_period) + 15),
            "secondary goes PARTNER-DOWN",
            self.slog.reached(ServerState::PartnerDown, killed_at),
        )
        .await?;
        let pd = self.console.elapsed() - killed_at;
        self.require(
            pd + Duration::from_millis(50) >= Duration::from_secs(u64::from(o.safe_period)),
            format!(
                "secondary PARTNER-DOWN {:.2} s after the kill (safe period {} s)",
                pd.as_secs_f64(),
                o.safe_period
            ),
        )?;
        self.serve_in_partner_down(&s).await?;

        // 6. The primary comes back.
        let persisted = ps.load_state();
        self.say(format!(
            "restarting the primary from its store ({} ACTIVE leases, last state {})",
            thousands(before as u64),
            persisted.map_or_else(|| "none".to_string(), |p| p.state.to_string())
        ));
        let restarted_at = self.console.elapsed();
        self.primary = Some(self.start(Role::Primary).await?);
        let p = self.handles()?.0;
        let limit = Duration::from_secs(u64::from(o.mclt) * 2 + 30);
        let waiting = within(limit, "the primary recovers", async {
            tokio::select! {
                () = self.plog.reached(ServerState::RecoverWait, restarted_at) => true,
                () = self.plog.reached(ServerState::Normal, restarted_at) => false,
            }
        })
        .await?;
        if waiting {
            let left = p.status().recover_wait_left.unwrap_or_default();
            self.note(format!(
                "the primary has the secondary's bindings and waits {:.1} s in RECOVER-WAIT \
                 (until RECOVER + MCLT, §9.6) so that no lease the partner granted is reused early",
                left.as_secs_f64()
            ));
        }
        within(limit, "both peers NORMAL again", async {
            tokio::join!(
                self.plog.reached(ServerState::Normal, restarted_at),
                self.slog.reached(ServerState::Normal, restarted_at)
            )
        })
        .await?;
        self.check(
            true,
            format!(
                "both NORMAL again, {:.2} s after the restart",
                (self.console.elapsed() - restarted_at).as_secs_f64()
            ),
        );

        // 7. The tables.
        self.settle(Duration::from_secs(30), "both peers idle in NORMAL")
            .await?;
        let mut diff = (usize::MAX, Vec::new());
        let mut tables = (BTreeMap::new(), BTreeMap::new());
        for _ in 0..50 {
            tables = (table(&ps.snapshot()), table(&ss.snapshot()));
            diff = differences(&tables.0, &tables.1, 5);
            if diff.0 == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let count = |status| tables.0.values().filter(|r| r.0 == status).count();
        let active = count(BindingStatus::Active);
        let (free, backup) = (count(BindingStatus::Free), count(BindingStatus::Backup));
        for d in &diff.1 {
            self.note(self.console.paint(Style::Red, d));
        }
        self.require(
            diff.0 == 0,
            if diff.0 == 0 {
                format!(
                    "lease tables identical: {} addresses ({} ACTIVE, {} FREE, {} BACKUP)",
                    thousands(tables.0.len() as u64),
                    thousands(active as u64),
                    thousands(free as u64),
                    thousands(backup as u64)
                )
            } else {
                format!(
                    "lease tables differ at {} of {} addresses",
                    thousands(diff.0 as u64),
                    thousands(tables.0.len() as u64)
                )
            },
        )?;
        self.require(
            active == o.leases as usize + 1,
            format!(
                "{} ACTIVE leases: the primary's {} and the secondary's 1",
                thousands(active as u64),
                thousands(u64::from(o.leases))
            ),
        )?;
        let problems =
            self.plog.problems.load(Ordering::Relaxed) + self.slog.problems.load(Ordering::Relaxed);
        self.require(
            problems == 0,
            format!("no rejected binding, protocol or storage error ({problems})"),
        )?;
        Ok(())
    }

    /// Grants the leases on the primary while a progress line runs.
    async fn stream(&mut self, p: &Handle) -> Result<(), String> {
        let o = self.opts;
        let desired = 3600;
        let probe = p.lease_time(&LeaseRequest {
            now: wall_clock(),
            desired,
            times: LeaseTimes::NONE,
            partner_down: PartnerDownLeases::KeepMclt,
        });
        self.say(format!(
            "the primary grants {} leases to new clients",
            thousands(u64::from(o.leases))
        ));
        self.note(format!(
            "each: {desired} s asked, {} s granted (a first lease is capped by the MCLT), \
             potential-expiration +{} s sent to the secondary",
            probe.granted,
            probe.potential_expiration.0.saturating_sub(wall_clock().0)
        ));
        let granted = Arc::new(AtomicU64::new(0));
        let start = self.console.elapsed();
        let out_before = p.counters().messages_out();
        let acked_before = self.plog.acked.load(Ordering::Relaxed);
        let ticker = {
            let (console, slog, plog) =
                (self.console.clone(), self.slog.clone(), self.plog.clone());
            let (n, active0, acked0) = (
                u64::from(o.leases),
                self.slog.received_active.load(Ordering::Relaxed),
                self.plog.acked.load(Ordering::Relaxed),
            );
            let every = if console.is_tty() {
                Duration::from_millis(50)
            } else {
                Duration::from_millis(500)
            };
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    let stored = slog.received_active.load(Ordering::Relaxed) - active0;
                    let acked = plog.acked.load(Ordering::Relaxed) - acked0;
                    let secs = (console.elapsed() - start).as_secs_f64();
                    let rate = if secs > 0.0 {
                        stored as f64 / secs
                    } else {
                        0.0
                    };
                    console.progress("stream", stream_line(stored, acked, n, rate));
                }
            })
        };
        let result = self.grant_all(p, desired, &granted).await;
        let done = match result {
            Ok(()) => {
                let need = u64::from(o.leases);
                until(
                    Duration::from_secs(60),
                    "the secondary stores every lease",
                    || {
                        self.sstore.count(BindingStatus::Active) >= need as usize
                            && p.status().queued == 0
                            && p.status().unacked_sent == 0
                    },
                )
                .await
            }
            Err(e) => Err(e),
        };
        ticker.abort();
        let _ = ticker.await;
        let elapsed = self.console.elapsed() - start;
        self.granted = granted.load(Ordering::Relaxed);
        self.stored = self.sstore.count(BindingStatus::Active) as u64;
        done?;
        self.stream_time = Some(elapsed);
        let msgs = p.counters().messages_out() - out_before;
        let rate = self.stored as f64 / elapsed.as_secs_f64().max(1e-9);
        // The last state of the progress line stays on screen.
        self.console.line(
            "stream",
            stream_line(
                self.stored,
                self.plog.acked.load(Ordering::Relaxed) - acked_before,
                u64::from(o.leases),
                rate,
            ),
        );
        self.require(
            self.stored == u64::from(o.leases),
            format!(
                "secondary stored all {} leases in {:.3} s ({} updates/s, {} messages from the primary)",
                thousands(self.stored),
                elapsed.as_secs_f64(),
                thousands(rate as u64),
                thousands(msgs)
            ),
        )
    }

    async fn grant_all(&self, p: &Handle, desired: u32, granted: &AtomicU64) -> Result<(), String> {
        // The lowest FREE address, found by walking up from the last one given (the store's
        // `free_address` scans from the bottom every time).
        let mut cursor = u32::from(self.first);
        let end = cursor + self.pool;
        let mut next_free = move || {
            while cursor < end {
                let a = Ipv4Addr::from(cursor);
                cursor += 1;
                if self
                    .pstore
                    .get(a)
                    .is_some_and(|l| l.local.status == BindingStatus::Free)
                {
                    return Some(a);
                }
            }
            None
        };
        for i in 0..self.opts.leases {
            let chaddr = client_mac(i);
            let msg = ClientMessage {
                kind: MessageKind::Discover,
                client_id: None,
                chaddr: &chaddr,
                secs: 0,
            };
            let answer = p.may_answer(&msg, PartnerPool::HasFree);
            if !answer.is_serve() {
                return Err(format!("the primary may not answer client {i}: {answer:?}"));
            }
            let address = next_free()
                .ok_or_else(|| format!("the primary ran out of FREE addresses at lease {i}"))?;
            let now = wall_clock();
            let grant = p.lease_time(&LeaseRequest {
                now,
                desired,
                times: LeaseTimes::NONE,
                partner_down: PartnerDownLeases::KeepMclt,
            });
            let mut b = BindingData::new(address, BindingStatus::Active)
                .with_client(None, 1, &chaddr)
                .map_err(|e| e.to_string())?;
            b.lease_expiration_time = Some(grant.lease_expiration);
            b.potential_expiration_time = Some(grant.potential_expiration);
            b.start_time_of_state = Some(now);
            b.client_last_transaction_time = Some(now);
            p.send_binding(b)
                .await
                .map_err(|e| format!("send_binding: {e}"))?;
            granted.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// A new client asks the secondary while it is PARTNER-DOWN.
    async fn serve_in_partner_down(&mut self, s: &Handle) -> Result<(), String> {
        let chaddr = [0x02, 0x00, 0x5e, 0xff, 0x00, 0x01];
        let msg = ClientMessage {
            kind: MessageKind::Discover,
            client_id: None,
            chaddr: &chaddr,
            secs: 0,
        };
        let answer = s.may_answer(&msg, PartnerPool::HasFree);
        self.require(
            answer.is_serve(),
            if answer.is_serve() {
                "may_answer: the secondary answers a new client in PARTNER-DOWN".to_string()
            } else {
                format!("may_answer refuses a new client in PARTNER-DOWN: {answer:?}")
            },
        )?;
        let config = config(Role::Secondary, self.opts);
        let ep = endpoint(&config, s);
        let now = wall_clock();
        let address = self
            .sstore
            .free_address()
            .ok_or("the secondary has no BACKUP address")?;
        let local = self
            .sstore
            .get(address)
            .map(|l| l.local)
            .ok_or("the BACKUP address is not in the store")?;
        let allowed = may_allocate(&ep, &local, AllocationRequest::default(), now);
        self.require(
            allowed.is_ok() && local.status == BindingStatus::Backup,
            match allowed {
                Ok(()) => {
                    format!("may_allocate: {address} is one of the secondary's BACKUP addresses")
                }
                Err(e) => format!("may_allocate refuses {address} ({}): {e:?}", local.status),
            },
        )?;
        if let Some(theirs) = self.sstore.partner_free_address()
            && let Some(l) = self.sstore.get(theirs)
        {
            match may_allocate(&ep, &l.local, AllocationRequest::default(), now) {
                Err(AllocRefusal::WaitUntil(t)) => self.note(format!(
                    "the primary's FREE addresses (e.g. {theirs}) stay off limits until \
                     PARTNER-DOWN + MCLT: {} s from now",
                    t.0.saturating_sub(now.0)
                )),
                other => self.note(format!("the primary's FREE {theirs}: {other:?}")),
            }
        }
        let grant = s.lease_time(&LeaseRequest {
            now,
            desired: 3600,
            times: LeaseTimes::NONE,
            partner_down: PartnerDownLeases::KeepMclt,
        });
        let mut b = BindingData::new(address, BindingStatus::Active)
            .with_client(None, 1, &chaddr)
            .map_err(|e| e.to_string())?;
        b.lease_expiration_time = Some(grant.lease_expiration);
        b.potential_expiration_time = Some(grant.potential_expiration);
        b.start_time_of_state = Some(now);
        b.client_last_transaction_time = Some(now);
        s.send_binding(b)
            .await
            .map_err(|e| format!("send_binding: {e}"))?;
        let stored = self.sstore.get(address).map(|l| l.local.status);
        self.require(
            stored == Some(BindingStatus::Active),
            format!(
                "secondary leased {address} to {} for {} s (queued for the primary)",
                mac(&chaddr),
                grant.granted
            ),
        )
    }

    async fn finish(mut self, outcome: Result<(), String>) -> Report {
        if let Err(e) = &outcome {
            let e = e.clone();
            if self.checks.last().is_none_or(|c| c.ok) {
                self.check(false, e);
            }
        }
        // The story is over: stop both peers at once. (A graceful shutdown would linger a
        // few seconds in SHUTDOWN for the partner to take over, §9.14.)
        let end = self.console.elapsed();
        for l in &self.listeners {
            l.abort();
        }
        for (handle, log) in [
            (self.primary.take(), &self.plog),
            (self.secondary.take(), &self.slog),
        ] {
            if let Some(h) = handle {
                log.retire(&h);
                h.abort().await;
            }
        }
        for l in self.listeners.drain(..) {
            let _ = l.await;
        }
        let report = Report {
            checks: self.checks.clone(),
            leases_granted: self.granted,
            leases_stored: self.stored,
            stream_time: self.stream_time,
            time_in_state: [self.plog.time_in_state(end), self.slog.time_in_state(end)],
            total_time: end,
        };
        self.summary(&report);
        report
    }

    fn summary(&self, r: &Report) {
        let c = self.console;
        let rule = c.paint(Style::Dim, "─".repeat(72));
        c.plain("");
        c.plain(format!("{} {rule}", c.paint(Style::Bold, "summary")));
        match (r.stream_time, r.updates_per_sec()) {
            (Some(t), Some(rate)) => c.plain(format!(
                "  lease stream      {} granted, {} stored by the secondary in {:.3} s: {} updates/s",
                thousands(r.leases_granted),
                thousands(r.leases_stored),
                t.as_secs_f64(),
                c.paint(Style::Bold, thousands(rate as u64))
            )),
            _ => c.plain(format!(
                "  lease stream      {} granted, {} stored (incomplete)",
                thousands(r.leases_granted),
                thousands(r.leases_stored)
            )),
        }
        for log in [&self.plog, &self.slog] {
            c.plain(format!(
                "  {:<17} {} messages sent, {} received, {} connections; {} bindings received, {} acknowledged",
                log.name,
                thousands(log.past_out.load(Ordering::Relaxed)),
                thousands(log.past_in.load(Ordering::Relaxed)),
                log.past_connections.load(Ordering::Relaxed),
                thousands(log.received.load(Ordering::Relaxed)),
                thousands(log.acked.load(Ordering::Relaxed)),
            ));
        }
        c.plain("");
        c.plain(format!(
            "  {:<28} {:>10} {:>10}",
            "time in state", "primary", "secondary"
        ));
        let mut states: Vec<Option<ServerState>> = Vec::new();
        for side in &r.time_in_state {
            for st in side {
                if !states.contains(&st.state) {
                    states.push(st.state);
                }
            }
        }
        states.sort_by_key(|s| state_rank(*s));
        for state in states {
            let cell = |side: &Vec<StateTime>| {
                side.iter().find(|s| s.state == state).map_or_else(
                    || "—".to_string(),
                    |s| format!("{:.2} s", s.time.as_secs_f64()),
                )
            };
            let name = state.map_or_else(|| "(not running)".to_string(), |s| s.to_string());
            let name = format!("{name:<28}");
            let name = match state {
                Some(s) => c.paint(crate::console::state_style(s), name),
                None => c.paint(Style::Red, name),
            };
            c.plain(format!(
                "  {name} {:>10} {:>10}",
                cell(&r.time_in_state[0]),
                cell(&r.time_in_state[1])
            ));
        }
        c.plain("");
        for check in &r.checks {
            let mark = if check.ok {
                c.paint(Style::Green, "✓")
            } else {
                c.paint(Style::Red, "✗")
            };
            c.plain(format!("  {mark} {}", check.what));
        }
        let passed = r.checks.iter().filter(|c| c.ok).count();
        let verdict = if r.passed() {
            c.paint(
                Style::Green,
                format!("PASS — {passed}/{} checks", r.checks.len()),
            )
        } else {
            c.paint(
                Style::Red,
                format!("FAIL — {passed}/{} checks passed", r.checks.len()),
            )
        };
        c.plain(format!(
            "\n  {} in {:.1} s",
            c.paint(Style::Bold, verdict),
            r.total_time.as_secs_f64()
        ));
    }
}

/// The order of the time-in-state table: the way through a failover story.
fn state_rank(state: Option<ServerState>) -> u8 {
    use ServerState::*;
    match state {
        Some(Startup) => 0,
        Some(Recover) => 1,
        Some(RecoverWait) => 2,
        Some(RecoverDone) => 3,
        Some(Normal) => 4,
        Some(CommunicationsInterrupted) => 5,
        Some(PartnerDown) => 6,
        Some(PotentialConflict) => 7,
        Some(ResolutionInterrupted) => 8,
        Some(ConflictDone) => 9,
        Some(Paused) => 10,
        Some(Shutdown) => 11,
        Some(_) => 12,
        None => 13,
    }
}

/// Runs the whole demo, printing the timeline on `console`. Needs a multi-threaded tokio
/// runtime (or a current-thread one; either works).
pub async fn run(opts: &PairOptions, console: &Console) -> Report {
    let ports = match (free_port(), free_port()) {
        (Ok(a), Ok(b)) if a != b => (a, b),
        _ => (0, 0),
    };
    let pool = (opts.leases + (opts.leases / 8).max(16)) * 2;
    let first = Ipv4Addr::new(198, 18, 0, 10);
    let mut demo = Demo {
        opts,
        console,
        checks: Vec::new(),
        first,
        pool,
        ports,
        pstore: Arc::new(MemoryStore::new(Role::Primary, first, pool)),
        sstore: Arc::new(MemoryStore::new(Role::Secondary, first, pool)),
        plog: Arc::new(PeerLog::new("primary", Style::Blue)),
        slog: Arc::new(PeerLog::new("secondary", Style::Magenta)),
        primary: None,
        secondary: None,
        listeners: Vec::new(),
        granted: 0,
        stored: 0,
        stream_time: None,
    };
    let outcome = if ports.0 == 0 {
        Err("no free loopback ports".to_string())
    } else {
        demo.scenario().await
    };
    demo.finish(outcome).await
}
