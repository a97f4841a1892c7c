//! The DHCPv6 failover task: one `Engine<_, _, _, V6>`, its state store and one
//! [`Connection6`], driven by tokio. Section numbers are RFC 8156's.
//!
//! Each turn of [`Task6::run`] delivers one input — a command, a message from the partner, a
//! timer, a connection set up or lost, a snapshot written — then [`Task6::drive`]s the engine
//! until nothing moves: carry out its actions (a snapshot goes to the blocking pool and is
//! confirmed only once durable), forward its events, write what it has to send. The engine is
//! fed in one place ([`Task6::deliver`]) and drained in one ([`Task6::transmit`]).
//!
//! No protocol decision is taken here: the engine takes them all, and the records follow the
//! library's rules. The lease table is a [`MemoryStore6`] shared with the application. A
//! journaled table ([`MemoryStore6::open`]) is synced on the blocking pool after each message
//! that changed it, and the partner's leases it carried are confirmed to the engine (their
//! BNDREPLY released) only once the sync returned.

use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use failover_fsm::engine::{BindingHandle, UpdateSink6};
use failover_fsm::v6::accept::Verdict;
use failover_fsm::v6::pool::{
    PoolConfig, PoolReqAnswer, PrefixCounts, needs_rebalance, plan_prefixes, poolreq_answer,
};
use failover_fsm::{
    Action, CommitToken, EngineError, Event, PersistToken, Persisted, RejectReason, Role, UpdateId,
};
use failover_proto::v6::{Binding, BindingStatus, Ia, IaKind, Lease, LeaseAddr, Status};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::{JoinHandle, JoinSet};
use tracing::{debug, info, warn};

use super::peer::{Engine6, PeerEvent6, Reply};
use super::state::StateStore;
use super::store::MemoryStore6;
use super::{Connection6, Security6, StartError, start_as_primary};
use crate::peer::{PeerError, wall_clock};
use crate::task::{
    Backoff, Clock, Forward, Outbox, Redial, earliest, log_event, refused_us, sleep_opt,
};

mod net;
pub(crate) use net::Net;
use net::NetInput;

/// Most rounds of [`Task6::drive`] per input: every round moves something, so this only
/// bounds a defect, never normal work.
const MAX_ROUNDS: usize = 10_000;
/// Most set-ups of accepted connections (STARTTLS, TLS, the first message) under way at once;
/// more connections are closed (the partner needs one).
const MAX_SETUPS: usize = 4;
/// Longest the engine's last messages (a DISCONNECT) may wait for a partner that does not
/// read once the engine asked to close.
const CLOSE_LINGER: Duration = Duration::from_secs(2);
/// How long the listener rests after a failed accept.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);
/// How long a plan that fell short waits before the next: more than the 5 s within which
/// the partner takes two times as equal (§7.5.1).
const POOL_RETRY: Duration = Duration::from_secs(6);
/// Longest a shutdown waits for its DISCONNECT to be written and its last snapshot.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(2);
/// Most syncs of a journaled lease table running at once; beyond, what waits forms one group
/// (the journal shares an fsync among the syncs that overlap anyway).
const MAX_LEASE_SYNCS: usize = 3;
/// How often the table is looked at: leases whose end passed ([`MemoryStore6::expire_due`])
/// and bindings the library said to send again ([`MemoryStore6::take_resends`]).
const TABLE_TICK: Duration = Duration::from_secs(1);
/// How often the bindings whose partner must be updated go again (§7.5.4's periodic scan;
/// the RFC names no period).
const UPDATE_SCAN: Duration = Duration::from_secs(30);

/// What the application asks of the task.
pub(crate) enum Command {
    PartnerDown { force: bool, reply: Reply },
    SendBinding { handle: BindingHandle, reply: Reply },
    PoolRequest { reply: Reply },
    Shutdown(oneshot::Sender<()>),
}

/// A snapshot on its way to the state store.
struct Persisting {
    token: PersistToken,
    snapshot: Persisted,
    write: JoinHandle<io::Result<()>>,
}

/// A sync of the journaled lease table on the blocking pool, and the partner's leases waiting
/// for it.
struct LeaseSync {
    commits: Vec<CommitToken>,
    /// Bindings to send once the sync returned (moved prefixes, §4.2.2; our own changes).
    after_sync: Vec<BindingHandle>,
    sync: JoinHandle<io::Result<()>>,
}

/// The DHCPv6 failover task.
pub(crate) struct Task6 {
    engine: Box<Engine6>,
    clock: Clock,
    net: Net,
    store: Arc<dyn StateStore>,
    /// The relationship's lease table (shared with the application).
    leases: Arc<Mutex<MemoryStore6>>,
    /// Bindings to queue as the engine's queue has room, oldest first; `answering` says
    /// whether they answer an update request (then `end_of_updates` follows them, §5.3.7).
    backlog: VecDeque<BindingHandle>,
    answering: bool,
    /// Oldest first (the engine has one outstanding at a time).
    persisting: VecDeque<Persisting>,
    /// Syncs of a journaled lease table running, oldest first (confirmed in this order).
    lease_syncs: VecDeque<LeaseSync>,
    /// The partner's leases waiting for the next sync, which waits for room
    /// ([`MAX_LEASE_SYNCS`]); `Some` even when empty if the table changed.
    lease_sync_next: Option<Vec<CommitToken>>,
    /// Bindings of a journaled table waiting for the next sync before they are sent: moved
    /// prefixes (§4.2.2), our expiries, what the library said to send again.
    after_sync: Vec<BindingHandle>,
    out: Forward<PeerEvent6>,
    cmd_rx: mpsc::Receiver<Command>,
    /// The engine asked to close the connection: done once its last messages are written.
    close_pending: bool,
    /// A shutdown was asked for: whom to tell once done.
    stopping: Option<oneshot::Sender<()>>,
    /// The primary's split of the delegable prefixes (§4.2.2).
    pool: PoolConfig,
    /// The prefix counts once the last plan was carried out: a primary in NORMAL plans again
    /// when they move by more than the threshold (§4.2.2).
    pool_counts: Option<PrefixCounts>,
    /// A plan fell short (prefixes that changed in the last 5 s): when to plan again.
    pool_retry: Option<tokio::time::Instant>,
    /// A POOLREQ came while we were not NORMAL (a primary still CONFLICT-DONE while its
    /// secondary is NORMAL, §8.10.2): carried out once we are.
    pool_deferred: bool,
    /// The next look at the table ([`TABLE_TICK`]) and the next §7.5.4 scan ([`UPDATE_SCAN`]).
    table_tick: tokio::time::Instant,
    update_scan: tokio::time::Instant,
}

impl Task6 {
    pub(crate) fn new(
        engine: Box<Engine6>,
        clock: Clock,
        net: Net,
        store: Arc<dyn StateStore>,
        leases: Arc<Mutex<MemoryStore6>>,
        cmd_rx: mpsc::Receiver<Command>,
        out: Forward<PeerEvent6>,
    ) -> Self {
        Task6 {
            engine,
            clock,
            net,
            store,
            leases,
            backlog: VecDeque::new(),
            answering: false,
            persisting: VecDeque::new(),
            lease_syncs: VecDeque::new(),
            lease_sync_next: None,
            after_sync: Vec::new(),
            out,
            cmd_rx,
            close_pending: false,
            stopping: None,
            pool: PoolConfig::default(),
            pool_counts: None,
            pool_retry: None,
            pool_deferred: false,
            table_tick: tokio::time::Instant::now(),
            update_scan: tokio::time::Instant::now() + UPDATE_SCAN,
        }
    }

    /// The primary's split of the delegable prefixes ([`Peer6::prefix_pool`](super::Peer6)).
    pub(crate) fn prefix_pool(mut self, pool: PoolConfig) -> Self {
        self.pool = pool;
        self
    }

    pub(crate) async fn run(mut self) {
        info!(partner = %self.net.partner, "DHCPv6 failover peer started");
        loop {
            self.drive().await;
            if self.stopping.is_some() {
                self.finish_shutdown().await;
                break;
            }
            self.next_input().await;
        }
        info!("DHCPv6 failover peer stopped");
    }

    /// Waits for one input and hands it to the engine.
    async fn next_input(&mut self) {
        let timeout = self.engine.poll_timeout().map(|t| self.clock.deadline(t));
        let redial = self.net.redial_deadline();
        tokio::select! {
            cmd = self.cmd_rx.recv() => self.command(cmd),
            input = self.net.next() => self.network(input),
            _ = sleep_opt(timeout) => {
                let now = self.clock.now();
                self.engine.handle_timeout(now);
            }
            _ = sleep_opt(redial) => self.net.dial(),
            written = written(&mut self.persisting) => self.persisted(written),
            synced = lease_synced(&mut self.lease_syncs) => self.leases_synced(synced),
            _ = sleep_opt(self.pool_retry) => {
                self.pool_retry = None;
                self.balance_prefixes();
            }
            _ = tokio::time::sleep_until(self.table_tick) => self.look_at_table(),
        }
    }

    /// Every [`TABLE_TICK`]: leases whose end passed become EXPIRED (the library's
    /// [`LocalLease::expiry_due`](failover_fsm::v6::LocalLease::expiry_due)), and the bindings
    /// the library said to send again go (a freed lease, a later end kept, an outdated update
    /// refused, what a reopened journal holds unacknowledged); every [`UPDATE_SCAN`], the
    /// bindings whose partner must still be updated (§7.5.4).
    fn look_at_table(&mut self) {
        let now = tokio::time::Instant::now();
        self.table_tick = now + TABLE_TICK;
        let mut leases = lock(&self.leases);
        let mut send = leases.expire_due(wall_clock());
        send.extend(leases.take_resends());
        if now >= self.update_scan {
            self.update_scan = now + UPDATE_SCAN;
            send.extend(leases.outdated_at_partner());
        }
        let durable = leases.is_durable();
        drop(leases);
        if send.is_empty() {
            return;
        }
        send.sort_unstable();
        send.dedup();
        if durable {
            // Expiries are changes of ours: journaled before they go out.
            self.after_sync.extend(send);
            self.lease_sync_next.get_or_insert_default();
            self.start_lease_sync();
        } else {
            self.backlog.extend(send);
            self.queue_backlog();
        }
    }

    fn command(&mut self, cmd: Option<Command>) {
        let now = self.clock.now();
        match cmd {
            Some(Command::PartnerDown { force, reply }) => {
                let taken = self.engine.partner_down(now, force);
                match taken {
                    Ok(()) => info!(force, "operator: partner down"),
                    Err(e) => warn!(error = %e, "operator's partner down refused"),
                }
                let _ = reply.send(taken.map_err(PeerError::Engine));
            }
            Some(Command::SendBinding { handle, reply }) => {
                // A full queue: the binding waits in the backlog (the engine's answers make
                // room), as the v4 task does.
                if self.engine.send_binding(handle).is_err() {
                    self.backlog.push_back(handle);
                }
                let _ = reply.send(Ok(()));
                // A grant may have used an available prefix.
                self.rebalance_prefixes();
            }
            Some(Command::PoolRequest { reply }) => {
                // §4.2.2: the secondary may ask at any time while in contact.
                self.engine.request_pool_balance();
                let _ = reply.send(Ok(()));
            }
            Some(Command::Shutdown(done)) => self.begin_shutdown(done),
            // Every handle is gone: stop as if told to.
            None => self.begin_shutdown(oneshot::channel().0),
        }
    }

    fn begin_shutdown(&mut self, done: oneshot::Sender<()>) {
        info!("shutting down");
        let now = self.clock.now();
        // RFC 8156 has no SHUTDOWN state: DISCONNECT with ServerShuttingDown, and the partner
        // goes COMMUNICATIONS-INTERRUPTED.
        self.engine.shutdown(now);
        self.stopping = Some(done);
    }

    async fn finish_shutdown(&mut self) {
        self.net.finish_writes(SHUTDOWN_WAIT).await;
        self.connection_lost();
        // A snapshot being written finishes (its confirmation no longer matters).
        while let Some(p) = self.persisting.pop_front() {
            let _ = tokio::time::timeout(SHUTDOWN_WAIT, p.write).await;
        }
        // So does a sync of the lease table; what changed since is synced too (the
        // application's own syncs cover its changes).
        while let Some(s) = self.lease_syncs.pop_front() {
            let _ = tokio::time::timeout(SHUTDOWN_WAIT, s.sync).await;
        }
        if self.lease_sync_next.take().is_some() {
            let leases = self.leases.clone();
            let sync = tokio::task::spawn_blocking(move || MemoryStore6::sync(&leases));
            let _ = tokio::time::timeout(SHUTDOWN_WAIT, sync).await;
        }
        self.out.flush().await;
        if let Some(done) = self.stopping.take() {
            let _ = done.send(());
        }
    }

    /// Carries out the engine's outputs until nothing moves: actions, events, messages to the
    /// partner, the close it asked for; then publishes the status.
    async fn drive(&mut self) {
        for _ in 0..MAX_ROUNDS {
            let mut moved = self.carry_out();
            let wrote = self.transmit();
            if !wrote && self.close_pending && self.net.written_before_close() {
                // The engine's last messages are written: now the close it asked for.
                self.connection_lost();
                moved = true;
            } else if !self.net.is_up() {
                self.close_pending = false;
            }
            self.out.flush().await;
            if !wrote && !moved {
                break;
            }
        }
        let status = self.engine.status(self.clock.now());
        self.out.publish(status);
    }

    /// Actions, then events, as the engine hands them out; `true` if there were any.
    fn carry_out(&mut self) -> bool {
        let mut moved = false;
        for _ in 0..MAX_ROUNDS {
            let Some(action) = self.engine.poll_action() else {
                break;
            };
            moved = true;
            self.act(action);
        }
        for _ in 0..MAX_ROUNDS {
            let Some(event) = self.engine.poll_event() else {
                break;
            };
            moved = true;
            log_event(&event);
            if let Event::ConnectionRejected { reason, .. } | Event::PartnerDisconnected { reason } =
                event
                && refused_us(reason)
            {
                // §6.1: retry more slowly after a rejection.
                self.net.refused = true;
            }
            self.out.push(PeerEvent6::Engine(event));
        }
        moved
    }

    fn act(&mut self, action: Action) {
        match action {
            Action::Persist { token, snapshot } => {
                // Durable before confirmed: the write (and its fsync) on the blocking pool.
                let store = self.store.clone();
                let write = tokio::task::spawn_blocking(move || store.save(&snapshot));
                self.persisting.push_back(Persisting {
                    token,
                    snapshot,
                    write,
                });
            }
            Action::CloseConnection => self.close_pending = true,
            // UPDREQALL: every binding of the table; UPDREQ: those holding a lease the
            // partner may not have (§5.3.5, `LocalLease::unacknowledged`). UPDDONE once all
            // are answered.
            Action::SendAllBindings => {
                let handles = lock(&self.leases).update_handles();
                self.backlog.extend(handles);
                self.answering = true;
                self.queue_backlog();
            }
            Action::SendUnackedBindings => {
                let handles = lock(&self.leases).unacknowledged();
                self.backlog.extend(handles);
                self.answering = true;
                self.queue_backlog();
            }
            // Entering NORMAL or RECOVER: what the partner may not have (§8.8).
            Action::SendBacklog => {
                let handles = lock(&self.leases).update_handles();
                self.backlog.extend(handles);
                self.queue_backlog();
            }
            Action::PoolRequested => self.pool_requested(),
            // Nothing queued, nothing to balance, no update of ours acknowledged.
            _ => {}
        }
    }

    /// The oldest snapshot's write ended.
    fn persisted(&mut self, written: io::Result<()>) {
        let Some(p) = self.persisting.pop_front() else {
            return;
        };
        let now = self.clock.now();
        match written {
            Ok(()) => {
                let _ = self.engine.persist_complete(p.token);
                self.out.push(PeerEvent6::Persisted(p.snapshot));
            }
            Err(e) => {
                warn!(error = %e, "failover state not saved; the engine asks again");
                let _ = self.engine.persist_failed(now, p.token);
                self.out.push(PeerEvent6::StorageError(Arc::new(e)));
            }
        }
    }

    /// What happened on the network side.
    fn network(&mut self, input: NetInput) {
        match input {
            NetInput::Accepted(Ok((tcp, from))) => self.accepted(tcp, from),
            NetInput::Accepted(Err(e)) => debug!(error = %e, "accept failed"),
            NetInput::SetUp(from, Ok(conn)) => self.admit(conn, from, false),
            NetInput::SetUp(from, Err(e)) => self.setup_failed(from, false, e),
            NetInput::Dialed(Ok(conn)) => {
                let peer = conn.peer_addr().unwrap_or(self.net.partner);
                self.admit(conn, peer, true);
            }
            NetInput::Dialed(Err(e)) => {
                // Refused at STARTTLS or in the TLS handshake: slower, as after a rejection.
                self.net.refused = !matches!(
                    e,
                    StartError::Io(_) | StartError::Timeout | StartError::Closed
                );
                self.setup_failed(self.net.partner, true, e);
                self.net.schedule_redial();
            }
            NetInput::Message(Ok(true)) => self.deliver(),
            NetInput::Message(Ok(false)) => {
                debug!("the partner closed the connection");
                self.connection_lost();
            }
            NetInput::Message(Err(e)) => {
                // A size below a DHCPv6 header, or a close within a message: the stream cannot
                // be trusted any more (§5.1).
                warn!(error = %e, "unreadable stream from the partner; dropping the connection");
                self.connection_lost();
            }
            NetInput::Written(Ok(())) | NetInput::Nothing => {}
            NetInput::Written(Err(e)) => {
                warn!(error = %e, "write to the partner failed; dropping the connection");
                self.connection_lost();
            }
            NetInput::WriteStalled if !self.net.stalled() => {}
            NetInput::WriteStalled => {
                warn!(timeout = ?self.net.write_timeout, "the partner took nothing we sent for the write timeout (or since we closed); dropping the connection");
                self.connection_lost();
            }
        }
    }

    /// The one place a message from the partner reaches the engine.
    fn deliver(&mut self) {
        let now = self.clock.now();
        let wall = wall_clock();
        self.out.counters.count_in();
        let mut sink = Received::default();
        for _ in 0..3 {
            let leases = lock(&self.leases);
            let handled = self
                .engine
                .handle_message(now, wall, &self.net.msg, &*leases, &mut sink);
            drop(leases);
            match handled {
                // The engine refuses input while its output queues lack room: carry them out,
                // then retry.
                Err(EngineError::EventsPending) => {
                    if !self.carry_out() {
                        warn!("engine outputs stuck; message dropped");
                        break;
                    }
                }
                _ => break,
            }
        }
        // Stored through the library's record rules. In memory only, a stored lease is as
        // durable as it gets: confirmed at once (the BNDREPLY follows). Journaled: confirmed
        // once a sync that began after it was stored returned.
        let mut leases = lock(&self.leases);
        let durable = leases.is_durable();
        for c in &sink.commits {
            let client = c
                .client
                .as_ref()
                .map(|(duid, kind, iaid)| (&duid[..], *kind, *iaid));
            leases.store_received(client, c.lease, &c.verdict);
        }
        for (lease, status, sent) in &sink.acks {
            leases.store_ack(*lease, *status, *sent, wall);
        }
        for lease in &sink.outdated {
            leases.refused_as_outdated(*lease);
        }
        // What the library said to send again (a freed lease, a later end kept, an outdated
        // update refused): after this message's BNDREPLY, read from the table when sent.
        let resend = leases.take_resends();
        drop(leases);
        if durable {
            if !sink.commits.is_empty()
                || !sink.acks.is_empty()
                || !sink.outdated.is_empty()
                || !resend.is_empty()
            {
                let tokens = sink.commits.into_iter().map(|c| c.token);
                self.lease_sync_next.get_or_insert_default().extend(tokens);
                self.after_sync.extend(resend);
                self.start_lease_sync();
            }
        } else {
            for c in sink.commits {
                let _ = self.engine.binding_committed(c.token);
            }
            self.backlog.extend(resend);
        }
        self.queue_backlog();
        // The partner's updates may have delegated or freed prefixes.
        self.rebalance_prefixes();
    }

    /// The partner's POOLREQ (§5.3.3): POOLRESP, which only says it arrived (§5.3.4), and a
    /// primary in NORMAL moves prefixes ([`poolreq_answer`]).
    fn pool_requested(&mut self) {
        match poolreq_answer(self.net.role, self.v6_state()) {
            PoolReqAnswer::RespondAndBalance => {
                self.engine.pool_response(0);
                self.balance_prefixes();
            }
            PoolReqAnswer::RespondOnly(why) => {
                debug!(?why, "POOLREQ: prefixes move once we are NORMAL");
                self.engine.pool_response(0);
                self.pool_deferred = true;
            }
            PoolReqAnswer::Ignore => debug!("POOLREQ to a secondary ignored"),
        }
    }

    /// Runs [`plan_prefixes`] on the table's counts and queues the moved prefixes' bindings
    /// through the backlog (a full engine queue holds them there, none is dropped).
    fn balance_prefixes(&mut self) {
        let state = self.v6_state();
        let wall = wall_clock();
        let mut leases = lock(&self.leases);
        let counts = leases.prefix_counts();
        let plan = match plan_prefixes(self.net.role, state, counts, &self.pool) {
            Ok(plan) => plan,
            Err(why) => {
                debug!(?why, "prefixes not balanced");
                return;
            }
        };
        let moved = leases.move_prefixes(&plan, wall);
        let after = leases.prefix_counts();
        let durable = leases.is_durable();
        drop(leases);
        // Prefixes that changed in the last 5 s wait (§7.5.1); the rest of the plan then.
        let short = moved.len() < plan.give.saturating_add(plan.take_back) as usize;
        self.pool_retry = short.then(|| tokio::time::Instant::now() + POOL_RETRY);
        if !plan.is_empty() {
            info!(
                free = counts.free,
                free_backup = counts.free_backup,
                give = plan.give,
                take_back = plan.take_back,
                sent = moved.len(),
                "delegable prefixes moved (§4.2.2)"
            );
        }
        self.pool_counts = Some(after);
        self.out.push(PeerEvent6::PrefixesBalanced {
            before: counts,
            plan,
            moved: moved.len(),
        });
        if durable && !moved.is_empty() {
            // §4.2.2: a given prefix is the secondary's from the moment its BNDUPD is sent;
            // journaled first, so that a restart does not delegate it again.
            self.after_sync.extend(moved);
            self.lease_sync_next.get_or_insert_default();
            self.start_lease_sync();
        } else {
            self.backlog.extend(moved);
            self.queue_backlog();
        }
    }

    /// A primary in NORMAL carries out a POOLREQ that came before it was, and plans again
    /// once the counts moved by more than the threshold since the last plan (§4.2.2,
    /// [`needs_rebalance`]): the secondary delegated or either side freed prefixes.
    fn rebalance_prefixes(&mut self) {
        if self.net.role != Role::Primary
            || self.v6_state() != failover_proto::v6::ServerState::Normal
        {
            return;
        }
        if std::mem::take(&mut self.pool_deferred) {
            self.balance_prefixes();
            return;
        }
        let Some(last) = self.pool_counts else {
            return;
        };
        let now = lock(&self.leases).prefix_counts();
        if needs_rebalance(last, now, &self.pool) {
            self.balance_prefixes();
        }
    }

    /// Our state in RFC 8156's terms (one it lacks reads as STARTUP, which moves nothing).
    fn v6_state(&self) -> failover_proto::v6::ServerState {
        failover_fsm::v6::state::from_v4(self.engine.state())
            .unwrap_or(failover_proto::v6::ServerState::Startup)
    }

    /// Starts the sync of the journaled lease table for what waits, if fewer than
    /// [`MAX_LEASE_SYNCS`] run: on the blocking pool, never on a runtime worker.
    fn start_lease_sync(&mut self) {
        if self.lease_syncs.len() >= MAX_LEASE_SYNCS {
            return;
        }
        let Some(commits) = self.lease_sync_next.take() else {
            return;
        };
        let leases = self.leases.clone();
        let sync = tokio::task::spawn_blocking(move || MemoryStore6::sync(&leases));
        let after_sync = std::mem::take(&mut self.after_sync);
        self.lease_syncs.push_back(LeaseSync {
            commits,
            after_sync,
            sync,
        });
    }

    /// The oldest sync of the lease table returned: its leases are acknowledged to the
    /// partner, or, not durable, refused (UnspecFail: the partner sends them again later).
    fn leases_synced(&mut self, synced: io::Result<()>) {
        let Some(s) = self.lease_syncs.pop_front() else {
            return;
        };
        match synced {
            Ok(()) => {
                for t in s.commits {
                    let _ = self.engine.binding_committed(t);
                }
                self.backlog.extend(s.after_sync);
                self.queue_backlog();
            }
            Err(e) => {
                warn!(error = %e, "lease table not synced; the partner's leases are refused");
                // Not durable: a restart could delegate a prefix the partner holds as its
                // own. They wait for a sync that succeeds.
                let mut moves = s.after_sync;
                moves.append(&mut self.after_sync);
                self.after_sync = moves;
                for t in s.commits {
                    let _ = self
                        .engine
                        .binding_commit_failed(t, RejectReason::UnknownError);
                }
                self.out.push(PeerEvent6::StorageError(Arc::new(e)));
            }
        }
        self.start_lease_sync();
    }

    /// Queues what waits in the backlog as far as the engine's queue has room; once the
    /// backlog answering an update request is all queued, says so (UPDDONE follows the
    /// answers).
    fn queue_backlog(&mut self) {
        while let Some(h) = self.backlog.front().copied() {
            if self.engine.send_binding(h).is_err() {
                return;
            }
            self.backlog.pop_front();
        }
        if self.answering {
            self.answering = false;
            self.engine.end_of_updates();
        }
    }

    /// The one place the engine's messages are taken: into the outbox, as far as it has
    /// room, then written as far as the socket takes them now; `true` if the engine had any.
    fn transmit(&mut self) -> bool {
        let now = self.clock.now();
        let mut wrote = false;
        while self.net.out.has_room()
            && let Some(n) = {
                let mut leases = lock(&self.leases);
                leases.set_now(wall_clock());
                self.engine.poll_transmit(now, &mut self.net.tx, &*leases)
            }
        {
            wrote = true;
            let Net { out, tx, .. } = &mut self.net;
            out.push(tx.get(..n).unwrap_or_default());
            self.out.counters.count_out();
        }
        if let Some(e) = self.net.write_now() {
            warn!(error = %e, "write to the partner failed; dropping the connection");
            self.connection_lost();
        }
        wrote
    }

    /// A secondary's listener took a connection: set up beside the task (a slow one holds up
    /// nothing), unless it is not from the partner (§6.1: dropped unread).
    fn accepted(&mut self, tcp: TcpStream, from: SocketAddr) {
        if from.ip() != self.net.partner.ip() {
            drop(tcp);
            let error = StartError::Stranger { from: from.ip() };
            self.setup_failed(from, false, error);
            return;
        }
        if self.net.setups.len() >= MAX_SETUPS {
            self.out.counters.count_refused();
            debug!(%from, "refused a connection: too many set-ups under way");
            return;
        }
        let security = self.net.security.clone();
        let partner = self.net.partner.ip();
        let timeout = self.net.setup_timeout;
        self.net.setups.spawn(async move {
            let r = super::accept_as_secondary(tcp, partner, &security, timeout).await;
            (from, r)
        });
    }

    fn setup_failed(&mut self, peer: SocketAddr, outgoing: bool, error: StartError) {
        match &error {
            StartError::Io(_) | StartError::Timeout | StartError::Closed => {
                debug!(%peer, outgoing, %error, "connection not set up");
            }
            _ => {
                #[cfg(feature = "tls")]
                if matches!(error, StartError::Tls(_)) {
                    self.out.counters.count_tls_refused();
                } else {
                    self.out.counters.count_refused();
                }
                #[cfg(not(feature = "tls"))]
                self.out.counters.count_refused();
                warn!(%peer, outgoing, %error, "connection refused");
            }
        }
        self.out.push(PeerEvent6::SetupFailed {
            peer,
            outgoing,
            error: Arc::new(error),
        });
    }

    /// Hands a set-up connection to the engine. One connection per relationship: a new one
    /// from the partner replaces one still in its handshake (the primary gave that one up),
    /// and is closed while one is up.
    fn admit(&mut self, conn: Connection6, peer: SocketAddr, outgoing: bool) {
        let now = self.clock.now();
        if self.net.conn.is_some() {
            if self.engine.is_communicating() {
                self.out.counters.count_refused();
                debug!(%peer, "closed a second connection from the partner");
                return;
            }
            debug!(%peer, "replacing a connection still in its handshake");
            self.net.drop_conn();
            self.engine.connection_down(now);
        }
        if self.engine.connection_up(now).is_err() {
            return;
        }
        let tls = conn.is_tls();
        info!(%peer, outgoing, tls, "connected to the partner");
        self.net.attach(conn);
        self.out.counters.count_connection(outgoing);
        self.out.push(PeerEvent6::Connected {
            peer,
            outgoing,
            tls,
        });
    }

    /// Closes the connection (if any), tells the engine, and has a primary dial again.
    fn connection_lost(&mut self) {
        self.close_pending = false;
        if self.net.drop_conn() {
            info!("disconnected from the partner");
            self.out.push(PeerEvent6::Disconnected);
        }
        let now = self.clock.now();
        self.engine.connection_down(now);
        self.net.schedule_redial();
    }
}

/// The lease table, locked (a poisoned lock still holds the table: the panic that poisoned
/// it was elsewhere).
fn lock(leases: &Mutex<MemoryStore6>) -> MutexGuard<'_, MemoryStore6> {
    leases
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A lease of the partner's the engine accepted, owned: stored once the message is read.
struct Commit {
    token: CommitToken,
    /// DUID, IA type, IAID; `None` for a clientless prefix.
    client: Option<(Vec<u8>, IaKind, u32)>,
    /// The lease and its preferred and valid lifetimes.
    lease: (LeaseAddr, u32, u32),
    verdict: Verdict,
}

/// What the engine handed over while it read one message: the partner's accepted leases,
/// and the partner's answers accepting ours (binding-status, partner-lifetime-sent).
#[derive(Default)]
struct Received {
    commits: Vec<Commit>,
    acks: Vec<(LeaseAddr, Option<BindingStatus>, Option<u32>)>,
    /// The partner's leases refused as outdated (§7.5.4: the partner must be updated).
    outdated: Vec<LeaseAddr>,
}

impl UpdateSink6 for Received {
    fn commit(
        &mut self,
        token: CommitToken,
        binding: &Binding<'_>,
        ia: Option<&Ia<'_>>,
        lease: &Lease<'_>,
        verdict: &Verdict,
    ) {
        let client = match (binding, ia) {
            (Binding::Client(c), Some(ia)) => {
                c.client_id.map(|duid| (duid.to_vec(), ia.kind, ia.iaid))
            }
            _ => None,
        };
        self.commits.push(Commit {
            token,
            client,
            lease: (lease.addr, lease.preferred_lifetime, lease.valid_lifetime),
            verdict: *verdict,
        });
    }

    fn refused(&mut self, _: &Binding<'_>, _: Option<&Ia<'_>>, lease: &Lease<'_>, status: Status) {
        debug!(lease = ?lease.addr, %status, "partner's lease refused");
        if status == Status::OutdatedBindingInformation {
            self.outdated.push(lease.addr);
        }
    }

    fn acked(
        &mut self,
        _: UpdateId,
        _: BindingHandle,
        lease: &Lease<'_>,
        outcome: Result<(), Status>,
    ) {
        match outcome {
            Ok(()) => self.acks.push((
                lease.addr,
                lease.binding_status,
                lease.partner_lifetime_sent,
            )),
            // §7.7: only remembered (logged); the record stays as it is.
            Err(status) => debug!(lease = ?lease.addr, %status, "our lease refused by the partner"),
        }
    }
}

/// The end of the oldest snapshot's write (pending forever if none). Cancel-safe: the
/// write's handle stays queued until [`Task6::persisted`] takes it.
async fn written(persisting: &mut VecDeque<Persisting>) -> io::Result<()> {
    match persisting.front_mut() {
        Some(p) => match (&mut p.write).await {
            Ok(r) => r,
            Err(e) => Err(io::Error::other(e.to_string())),
        },
        None => std::future::pending().await,
    }
}

/// The end of the oldest sync of the lease table (pending forever if none runs).
/// Cancel-safe: the sync's handle stays queued until [`Task6::leases_synced`] takes it.
async fn lease_synced(syncs: &mut VecDeque<LeaseSync>) -> io::Result<()> {
    match syncs.front_mut() {
        Some(s) => match (&mut s.sync).await {
            Ok(r) => r,
            Err(e) => Err(io::Error::other(e.to_string())),
        },
        None => std::future::pending().await,
    }
}
