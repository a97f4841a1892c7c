//! The demo behind `cargo run --example pair6`: two DHCPv6 failover peers (RFC 8156) in one
//! process, over loopback TCP, through a failure and a recovery.
//!
//! 1. Cold start: both peers are new (no state file) and reach NORMAL through RECOVER,
//!    RECOVER-WAIT (one MCLT) and RECOVER-DONE. The secondary asks for its share of the
//!    delegable prefixes (POOLREQ) and the primary gives it half as FREE-BACKUP (§4.2.2).
//! 2. Client A gets an address (IA_NA) and a delegated prefix (IA_PD) from the primary; the
//!    binding reaches the secondary's table (BNDUPD, BNDREPLY). The secondary, only renew
//!    responsive in NORMAL (§8.8.1), refuses a new client.
//! 3. The secondary crashes (its task aborted: no DISCONNECT); the primary goes
//!    COMMUNICATIONS-INTERRUPTED.
//! 4. The operator declares the partner down: the primary goes PARTNER-DOWN and gives client C
//!    an address of its own half (§4.2.1).
//! 5. The secondary restarts from its state file (its lease table kept). The primary has been
//!    in PARTNER-DOWN since after the secondary last operated, so the secondary goes RECOVER
//!    (RFC 8156 §8.3), asks for updates, learns client C's lease, waits the MCLT, and both end
//!    in NORMAL with identical lease tables.
//!
//! Leases are decided by the library's rules (`MemoryStore6::grant`: `v6::allocate`,
//! `v6::lifetime`). Every step prints a timestamped line; [`run`] returns a [`Report`] whose
//! [`Report::passed`] says whether every check held. Every wait is bounded.
//!
//! ```no_run
//! # async fn demo() {
//! use failover_examples::console::Console;
//! use failover_examples::pair6::{Pair6Options, run};
//! let report = run(&Pair6Options::default(), &Console::stdout(false)).await;
//! assert!(report.passed());
//! # }
//! ```

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use std::net::Ipv6Addr;

use failover_fsm::v6::ClientKey;
use failover_fsm::v6::allocate::{Endpoint, Refusal};
use failover_fsm::{Config, Event, Role, ServerState, UnixTime};
use failover_proto::v6::{IaKind, LeaseAddr};
use failover_tokio::v6::{GrantError, Handle6, MemoryStore6, Peer6, PeerEvent6, Security6};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::console::{ArgError, Args, Console, Style, state_name};

/// `--help`.
pub const USAGE: &str = "\
pair6 — two DHCPv6 failover peers (RFC 8156) in one process, over loopback TCP

USAGE:
    cargo run --example pair6 [-- OPTIONS]

Starts a primary and a secondary on 127.0.0.1 (a free high port) with empty state files,
lets them reach NORMAL, kills the secondary, watches the primary go
COMMUNICATIONS-INTERRUPTED, declares the partner down (PARTNER-DOWN), restarts the secondary
from its state file, and waits for both to be NORMAL again — with IA_NA and IA_PD leases
granted on the way and both lease tables identical at the end. Exit status 0 when every
check passed, 1 otherwise.

OPTIONS:
    --mclt S          maximum client lead time, seconds (default 5, at most 20)
    --quiet           print only the summary
    -h, --help        this text

ENVIRONMENT:
    RUST_LOG          tracing filter for the failover task's own logs (default: errors only)
    NO_COLOR          no colours on a terminal
";

/// Largest `--mclt`: the demo waits out two MCLTs and must stay within a minute.
pub const MAX_MCLT: u32 = 20;

/// Who prints the demo's own lines.
const WHO: &str = "demo";

/// The demo's knobs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair6Options {
    /// Maximum client lead time, seconds (`--mclt`): RECOVER-WAIT lasts this long.
    pub mclt: u32,
    /// Only the summary (`--quiet`).
    pub quiet: bool,
}

impl Default for Pair6Options {
    fn default() -> Self {
        Pair6Options {
            mclt: 5,
            quiet: false,
        }
    }
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// Run the demo.
    Run(Pair6Options),
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
    let mut o = Pair6Options::default();
    while let Some(flag) = args.next_flag()? {
        match flag.as_str() {
            "-h" | "--help" => return Ok(Parsed::Help),
            "--mclt" => o.mclt = args.value(&flag)?,
            "--quiet" => o.quiet = true,
            other => return Err(ArgError(format!("unknown option {other} (see --help)"))),
        }
    }
    if !(1..=MAX_MCLT).contains(&o.mclt) {
        return Err(ArgError(format!("--mclt must be 1 to {MAX_MCLT} seconds")));
    }
    Ok(Parsed::Run(o))
}

/// One check of the story.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// What was checked.
    pub what: String,
    /// Whether it held.
    pub ok: bool,
}

/// What the demo saw.
#[derive(Debug, Clone)]
pub struct Report {
    /// Every check, in order.
    pub checks: Vec<Check>,
    /// The primary's and the secondary's states at the end.
    pub final_states: [ServerState; 2],
    /// The state changes of each peer (the secondary's over both of its runs), in order.
    pub transitions: [Vec<(ServerState, ServerState)>; 2],
    /// How long the demo took.
    pub elapsed: Duration,
}

impl Report {
    /// Whether every check held.
    pub fn passed(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|c| c.ok)
    }
}

/// What one peer reported, printed as it comes.
struct Log {
    name: &'static str,
    style: Style,
    transitions: Mutex<Vec<(ServerState, ServerState)>>,
    /// Bumped at every state change the listener printed.
    printed: watch::Sender<usize>,
}

impl Log {
    fn new(name: &'static str, style: Style) -> Arc<Log> {
        Arc::new(Log {
            name,
            style,
            transitions: Mutex::new(Vec::new()),
            printed: watch::Sender::new(0),
        })
    }

    fn transitions(&self) -> Vec<(ServerState, ServerState)> {
        self.transitions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn entered_after(&self, first: usize, state: ServerState) -> bool {
        self.transitions()
            .iter()
            .skip(first)
            .any(|(_, to)| *to == state)
    }
}

/// Prints what one peer reports; ends when the peer's task is gone.
fn spawn_listener(
    mut events: mpsc::Receiver<PeerEvent6>,
    log: Arc<Log>,
    console: Console,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let say = |text: String| console.styled_line(log.name, Some(log.style), text);
        let dim = |text: String| say(console.paint(Style::Dim, text));
        while let Some(event) = events.recv().await {
            match event {
                PeerEvent6::Connected { peer, outgoing, .. } => say(if outgoing {
                    format!("connected to the secondary at {peer}: CONNECT")
                } else {
                    format!("accepted the primary's connection from {peer}")
                }),
                PeerEvent6::Disconnected => say("connection to the partner closed".into()),
                PeerEvent6::SetupFailed { error, .. } => dim(format!("no connection: {error}")),
                PeerEvent6::Persisted(p) => dim(format!(
                    "state file: {} since {} (written and fsync'd before it is announced)",
                    state_name(p.state),
                    p.since.0
                )),
                PeerEvent6::StorageError(e) => {
                    say(console.paint(Style::Red, format!("state file: {e}")));
                }
                PeerEvent6::Engine(e) => print_engine_event(&console, &say, &log, e),
                PeerEvent6::PrefixesBalanced {
                    before,
                    plan,
                    moved,
                } => say(format!(
                    "delegable prefixes: {} FREE, {} FREE-BACKUP; gave {} and took back {} \
                     ({moved} BNDUPDs now, §4.2.2)",
                    before.free, before.free_backup, plan.give, plan.take_back
                )),
                _ => {}
            }
        }
    })
}

fn print_engine_event(console: &Console, say: &impl Fn(String), log: &Log, e: Event) {
    let dim = |text: String| say(console.paint(Style::Dim, text));
    match e {
        Event::StateChanged { from, to } => {
            say(format!(
                "{} → {}",
                console.state(from),
                console.paint(Style::Bold, console.state(to))
            ));
            log.transitions
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((from, to));
            log.printed.send_modify(|n| *n += 1);
        }
        Event::PartnerStateChanged { state, startup, .. } => {
            let s = if startup { " (starting up)" } else { "" };
            dim(format!("partner's STATE: {}{s}", state_name(state)));
        }
        Event::CommunicationsOk => dim("communications OK (CONNECT, CONNECTREPLY, STATE)".into()),
        Event::CommunicationsFailed => say(console.paint(Style::Yellow, "communications lost")),
        Event::UpdatesReceived => dim("partner sent everything we asked for (UPDDONE)".into()),
        Event::PoolResponse { .. } => dim("partner answered our POOLREQ (POOLRESP)".into()),
        Event::ConnectionRejected { reason, by_partner } => say(console.paint(
            Style::Red,
            format!(
                "connection rejected by {}: {reason}",
                if by_partner { "the partner" } else { "us" }
            ),
        )),
        Event::PartnerDisconnected { reason } => dim(format!("partner sent DISCONNECT: {reason}")),
        Event::PartnerShuttingDown => dim("partner is shutting down".to_string()),
        Event::ProtocolError { error } => {
            say(console.paint(Style::Red, format!("protocol error: {error}")));
        }
        _ => {}
    }
}

/// One side of the pair: its handle (while it runs), its listener, what it printed.
struct Side {
    role: Role,
    log: Arc<Log>,
    handle: Option<Handle6>,
    listener: Option<JoinHandle<()>>,
    /// The lease table: kept across a restart (the task's, not the machine's).
    leases: Arc<Mutex<MemoryStore6>>,
}

impl Side {
    async fn start(
        &mut self,
        opts: &Pair6Options,
        port: u16,
        state: &Path,
        console: &Console,
    ) -> Result<(), String> {
        let mut config = Config::new(self.role, "pair6", opts.mclt);
        // A CONTACT every second (a quarter of the keep-alive time, §6.5) and a short
        // STARTUP, so that the story takes seconds.
        config.receive_timer = 4;
        config.startup_delay = 1;
        config.startup_delay_after_long_down = 1;
        config.connect_timeout = 5;
        let at = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let (handle, events) = Peer6::new(config, at)
            .listen(at)
            .security(Security6::Insecure)
            .state_file(state)
            .leases(self.leases.clone())
            .reconnect(Duration::from_millis(200), Duration::from_secs(1))
            .reject_backoff(Duration::from_secs(2))
            .start()
            .await
            .map_err(|e| format!("{} did not start: {e}", self.log.name))?;
        self.listener = Some(spawn_listener(events, self.log.clone(), console.clone()));
        self.handle = Some(handle);
        Ok(())
    }

    fn state(&self) -> Option<ServerState> {
        self.handle.as_ref().map(|h| h.status().state)
    }

    /// Gives `lease` to client `duid` for an hour if the rules allow it now, and sends the
    /// binding to the partner (queued while it is away).
    async fn grant(&self, duid: &[u8], ia: (IaKind, u32), lease: LeaseAddr) -> Result<u32, String> {
        let h = self.handle.as_ref().ok_or("not running")?;
        let status = h.status();
        let endpoint = Endpoint::of_status(&status);
        let granted = lock(&self.leases).grant(
            &endpoint,
            status.lease_mclt,
            duid,
            ia,
            lease,
            3600,
            false,
            wall_now(),
        );
        let (handle, lifetime) = granted.map_err(|e| e.to_string())?;
        h.send_binding(handle).await.map_err(|e| e.to_string())?;
        Ok(lifetime)
    }

    /// The delegable prefixes the secondary has (FREE-BACKUP), as this side's table says.
    fn given_prefixes(&self) -> Vec<LeaseAddr> {
        lock(&self.leases)
            .records()
            .into_iter()
            .filter(|(a, r)| {
                matches!(a, LeaseAddr::Prefix { .. })
                    && r.status == failover_proto::v6::BindingStatus::FreeBackup
            })
            .map(|(a, _)| a)
            .collect()
    }

    /// The lease table as both sides must agree on it: per lease, status, client, and the
    /// state's times.
    fn table(&self) -> Vec<String> {
        lock(&self.leases)
            .records()
            .into_iter()
            .filter(|(_, r)| r.client.is_some())
            .map(|(a, r)| {
                let client = [("A", CLIENT_A), ("B", CLIENT_B), ("C", CLIENT_C)]
                    .iter()
                    .find(|(_, duid)| {
                        r.client
                            .is_some_and(|k| k.same_duid(&ClientKey::new(duid, k_ia(a), 0)))
                    })
                    .map_or("?", |(name, _)| name);
                format!(
                    "{:<20} {:<7} client {client}, since {}, until {}",
                    lease_name(a),
                    r.status.to_string(),
                    r.start_time_of_state.map_or(0, |t| t.0),
                    r.state_expiration_time.map_or(0, |t| t.0),
                )
            })
            .collect()
    }

    /// Waits (at most `secs`) until the peer is in `state` and its listener has printed the
    /// change (so that the timeline reads in order); `first`: count only changes after the
    /// first `first` ones.
    async fn reach(&self, state: ServerState, first: usize, secs: u64) -> bool {
        let Some(h) = &self.handle else {
            return false;
        };
        let mut printed = self.log.printed.subscribe();
        let wait = async {
            if h.wait_for_state(state).await.is_err() {
                return false;
            }
            while !self.log.entered_after(first, state) {
                if printed.changed().await.is_err() {
                    return false;
                }
            }
            true
        };
        tokio::time::timeout(Duration::from_secs(secs), wait)
            .await
            .unwrap_or(false)
    }

    /// Stops the peer: a crash (`abort`) or in order; waits for its listener (bounded).
    async fn stop(&mut self, crash: bool) {
        if let Some(h) = self.handle.take() {
            if crash {
                h.abort().await;
            } else {
                let _ = tokio::time::timeout(Duration::from_secs(10), h.shutdown()).await;
                // Whatever the shutdown left, the task ends here.
                h.abort().await;
            }
        }
        if let Some(l) = self.listener.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), l).await;
        }
    }
}

/// The story's checks, printed as they are made.
struct Story<'a> {
    console: &'a Console,
    checks: Vec<Check>,
}

impl Story<'_> {
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

    fn step(&self, text: impl AsRef<str>) {
        self.console
            .styled_line(WHO, Some(Style::Bold), text.as_ref());
    }
}

/// A free port on 127.0.0.1 for the secondary to listen on.
fn free_port() -> Result<u16, String> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

fn lock(leases: &Mutex<MemoryStore6>) -> std::sync::MutexGuard<'_, MemoryStore6> {
    leases
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn wall_now() -> UnixTime {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    UnixTime(u32::try_from(secs).unwrap_or(u32::MAX))
}

/// The relationship's pools: 2001:db8::1–8 (odd: the primary's, even: the secondary's,
/// §4.2.1.1) and four /56 delegable prefixes (the primary's to start with, §4.2.2).
fn pools() -> Arc<Mutex<MemoryStore6>> {
    let mut s = MemoryStore6::new();
    for n in 1..=8 {
        s.add_pool_lease(address(n));
    }
    for n in 1..=4 {
        s.add_pool_lease(prefix(n));
    }
    Arc::new(Mutex::new(s))
}

fn address(n: u16) -> LeaseAddr {
    LeaseAddr::Address(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, n))
}

fn prefix(n: u16) -> LeaseAddr {
    LeaseAddr::Prefix {
        prefix: Ipv6Addr::new(0x2001, 0xdb8, 0x100 + n, 0, 0, 0, 0, 0),
        len: 56,
    }
}

/// The IA type of a lease (for naming its client).
fn k_ia(l: LeaseAddr) -> IaKind {
    match l {
        LeaseAddr::Address(_) => IaKind::Na,
        LeaseAddr::Prefix { .. } => IaKind::Pd,
    }
}

fn lease_name(l: LeaseAddr) -> String {
    match l {
        LeaseAddr::Address(a) => a.to_string(),
        LeaseAddr::Prefix { prefix, len } => format!("{prefix}/{len}"),
    }
}

/// Waits (at most `secs`) until both tables agree; the last tables seen.
async fn tables_agree(a: &Side, b: &Side, secs: u64) -> (bool, Vec<String>, Vec<String>) {
    let end = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let (ta, tb) = (a.table(), b.table());
        if ta == tb || tokio::time::Instant::now() >= end {
            return (ta == tb, ta, tb);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

const CLIENT_A: &[u8] = &[0, 3, 0, 1, 2, 0, 0x5e, 0, 0x53, 0xa];
const CLIENT_B: &[u8] = &[0, 3, 0, 1, 2, 0, 0x5e, 0, 0x53, 0xb];
const CLIENT_C: &[u8] = &[0, 3, 0, 1, 2, 0, 0x5e, 0, 0x53, 0xc];

/// A new directory for the two state files.
fn state_dir() -> Result<PathBuf, String> {
    let d = std::env::temp_dir().join(format!("pair6-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).map_err(|e| format!("{}: {e}", d.display()))?;
    Ok(d)
}

/// Runs the demo, printing to `console`.
pub async fn run(opts: &Pair6Options, console: &Console) -> Report {
    let mut story = Story {
        console,
        checks: Vec::new(),
    };
    let mut primary = Side {
        role: Role::Primary,
        log: Log::new("primary", Style::Blue),
        handle: None,
        listener: None,
        leases: pools(),
    };
    let mut secondary = Side {
        role: Role::Secondary,
        log: Log::new("secondary", Style::Magenta),
        handle: None,
        listener: None,
        leases: pools(),
    };
    let dir = state_dir();
    if let Ok(dir) = &dir {
        play(opts, console, &mut story, &mut primary, &mut secondary, dir).await;
    } else if let Err(e) = &dir {
        story.check(false, e.clone());
    }
    let final_states = [
        primary.state().unwrap_or(ServerState::Startup),
        secondary.state().unwrap_or(ServerState::Startup),
    ];
    story.step(format!(
        "final states: primary {}, secondary {}",
        console.state(final_states[0]),
        console.state(final_states[1])
    ));
    secondary.stop(false).await;
    primary.stop(false).await;
    if let Ok(dir) = &dir {
        let _ = std::fs::remove_dir_all(dir);
    }
    let report = Report {
        checks: story.checks,
        final_states,
        transitions: [primary.log.transitions(), secondary.log.transitions()],
        elapsed: console.elapsed(),
    };
    summary(console, &report);
    report
}

/// The story; stops at the first check that fails (what follows would wait in vain).
async fn play(
    opts: &Pair6Options,
    console: &Console,
    story: &mut Story<'_>,
    primary: &mut Side,
    secondary: &mut Side,
    dir: &Path,
) {
    use ServerState::*;
    let Ok(port) = free_port() else {
        story.check(false, "a free port on 127.0.0.1");
        return;
    };
    let p_file = dir.join("primary.state");
    let s_file = dir.join("secondary.state");
    // Two MCLTs of RECOVER-WAIT at most, plus STARTUP and the exchanges.
    let recovery = u64::from(opts.mclt) + 15;
    story.step(format!(
        "DHCPv6 failover (RFC 8156), insecure mode (plain TCP): the secondary listens on \
         127.0.0.1:{port}, the primary connects; MCLT {} s",
        opts.mclt
    ));
    story.step("1. cold start: both peers new, no state file");
    for (side, file) in [(&mut *secondary, &s_file), (&mut *primary, &p_file)] {
        if let Err(e) = side.start(opts, port, file, console).await {
            story.check(false, e);
            return;
        }
    }
    let both = primary.reach(Normal, 0, recovery).await && secondary.reach(Normal, 0, 10).await;
    if !story.check(
        both,
        "both peers NORMAL after a cold start (through RECOVER-WAIT)",
    ) {
        return;
    }

    // The secondary's POOLREQ on entering NORMAL: half of the four prefixes (§4.2.2).
    let end = tokio::time::Instant::now() + Duration::from_secs(10);
    let share = loop {
        let (p, s) = (primary.given_prefixes(), secondary.given_prefixes());
        if (p.len() == 2 && p == s) || tokio::time::Instant::now() >= end {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let names: Vec<String> = share.iter().map(|p| lease_name(*p)).collect();
    if !story.check(
        share.len() == 2 && share == primary.given_prefixes(),
        format!(
            "the secondary holds its share of the delegable prefixes, FREE-BACKUP on both \
             sides: {} (POOLREQ, §4.2.2)",
            names.join(", ")
        ),
    ) {
        return;
    }

    story
        .step("2. client A asks the primary for an address (IA_NA) and a delegated prefix (IA_PD)");
    let a_na = primary.grant(CLIENT_A, (IaKind::Na, 1), address(1)).await;
    let a_pd = primary.grant(CLIENT_A, (IaKind::Pd, 2), prefix(1)).await;
    let both_leased = match (&a_na, &a_pd) {
        (Ok(na), Ok(pd)) => story.check(
            true,
            format!(
                "granted {} for {na} s and {} for {pd} s (MCLT rule, §4.4)",
                lease_name(address(1)),
                lease_name(prefix(1))
            ),
        ),
        _ => story.check(false, format!("grants: {a_na:?}, {a_pd:?}")),
    };
    if !both_leased {
        return;
    }
    let (agree, ..) = tables_agree(primary, secondary, 10).await;
    if !story.check(
        agree,
        "the secondary's lease table holds client A's address and prefix (BNDUPD, BNDREPLY)",
    ) {
        return;
    }
    let refused = secondary.grant(CLIENT_B, (IaKind::Na, 1), address(2)).await;
    let not_serving =
        GrantError::Refused(Refusal::NotServing(failover_proto::v6::ServerState::Normal))
            .to_string();
    story.check(
        refused.as_ref().err() == Some(&not_serving),
        format!(
            "the secondary, renew responsive in NORMAL (§8.8.1), refuses new client B: {refused:?}"
        ),
    );

    story.step("3. the secondary crashes (task aborted: no DISCONNECT, the OS closes the socket)");
    let before = primary.log.transitions().len();
    secondary.stop(true).await;
    let ci = primary.reach(CommunicationsInterrupted, before, 10).await;
    if !story.check(ci, "primary COMMUNICATIONS-INTERRUPTED") {
        return;
    }

    // Times are whole seconds: PARTNER-DOWN must start in a later second than the
    // secondary's last recorded operation for the restart to go RECOVER (§8.3 step 5), not
    // POTENTIAL-CONFLICT (seen under load when both fell in one second).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    story.step("4. the operator declares the secondary down on the primary");
    let before = primary.log.transitions().len();
    let taken = match &primary.handle {
        Some(h) => h.partner_down(false).await.map_err(|e| e.to_string()),
        None => Err("the primary is not running".into()),
    };
    let pd = taken.is_ok() && primary.reach(PartnerDown, before, 5).await;
    if !story.check(pd, "primary PARTNER-DOWN") {
        return;
    }

    let c = primary.grant(CLIENT_C, (IaKind::Na, 1), address(3)).await;
    story.check(
        c.is_ok(),
        format!(
            "the primary, PARTNER-DOWN, gives client C {} from its own half: {c:?}",
            lease_name(address(3))
        ),
    );

    story.step("5. the secondary restarts from its state file (its lease table kept)");
    let before = secondary.log.transitions().len();
    if let Err(e) = secondary.start(opts, port, &s_file, console).await {
        story.check(false, e);
        return;
    }
    let restored = secondary.handle.as_ref().and_then(|h| h.restored());
    let read_back = restored.is_some_and(|p| p.state == Normal);
    story.check(
        read_back,
        format!(
            "state file read back: {}",
            restored.map_or("nothing".into(), |p| format!(
                "{} since {}",
                state_name(p.state),
                p.since.0
            ))
        ),
    );
    let recover = secondary.reach(Recover, before, 10).await;
    story.check(
        recover,
        "secondary RECOVER: the primary was PARTNER-DOWN since after it last operated (§8.3)",
    );
    let normal = secondary.reach(Normal, before, recovery).await
        && primary.reach(Normal, 0, 10).await
        && primary.state() == Some(Normal);
    story.check(normal, "both NORMAL again");
    let (agree, p_table, _) = tables_agree(primary, secondary, 10).await;
    story.check(
        agree,
        format!(
            "lease tables identical ({} leases held, client C's learned by the secondary)",
            p_table.len()
        ),
    );
    for row in p_table {
        story.step(format!("    {row}"));
    }
}

fn summary(console: &Console, report: &Report) {
    let c = console;
    c.plain("");
    c.plain(c.paint(Style::Bold, "summary"));
    for (name, t) in ["primary", "secondary"].iter().zip(&report.transitions) {
        // A change that does not start where the last ended is a restart.
        let mut path = String::new();
        let mut at = None;
        for (from, to) in t {
            if at != Some(*from) {
                if at.is_some() {
                    path.push_str(" | restart: ");
                }
                path.push_str(&state_name(*from));
            }
            path.push_str(" → ");
            path.push_str(&state_name(*to));
            at = Some(*to);
        }
        c.plain(format!("  {name:<9} {path}"));
    }
    for check in &report.checks {
        let mark = if check.ok {
            c.paint(Style::Green, "✓")
        } else {
            c.paint(Style::Red, "✗")
        };
        c.plain(format!("  {mark} {}", check.what));
    }
    let passed = report.checks.iter().filter(|x| x.ok).count();
    let verdict = if report.passed() {
        c.paint(Style::Green, "PASS")
    } else {
        c.paint(Style::Red, "FAIL")
    };
    c.plain(format!(
        "{verdict} — {passed}/{} checks in {:.1} s",
        report.checks.len(),
        report.elapsed.as_secs_f64()
    ));
}
