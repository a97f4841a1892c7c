//! The failover task: one engine, its storage and one TCP connection, driven by tokio.
//!
//! Each turn of [`Task::run`] delivers one input (a command, bytes from the partner, a timer),
//! then [`Task::drive`]s the engine until nothing moves:
//!
//! 1. carry out the engine's actions on the store, in memory ([`actions`]);
//! 2. make them durable with one `sync` for the whole batch, off the runtime's workers, and
//!    only then confirm to the engine what waited for it — BNDACKs, STATE, the application's
//!    bindings (group commit, [`commit`]). The sync runs while the next input is read and
//!    applied in memory; that input's group gets the next sync;
//! 3. write what the engine has to send in as few writes as possible ([`connection`]);
//! 4. hand events to the application ([`forward`]).
//!
//! No protocol decision is taken here: the engine takes them all.

mod actions;
mod backoff;
mod commit;
mod connection;
mod forward;
mod outbox;
mod stream;

use std::sync::Arc;
use std::time::Duration;

use failover_fsm::policy::{BalancePlan, BalanceSkipped, BalanceTrigger};
use failover_fsm::{Commits, Engine, EngineError, Instant, Link, RejectReason, Status, UnixTime};
use failover_proto::Framer;
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

use crate::auth::LinkAuth;
use crate::peer::{Command, PeerError, PeerEvent};
use crate::storage::Storage;
use actions::Feed;
pub(crate) use backoff::{Backoff, Redial, refused_us};
use commit::GroupCommit;
pub(crate) use connection::{Connection, Incoming, earliest, sleep_opt};
pub(crate) use forward::{Forward, log_event};
pub(crate) use outbox::Outbox;
pub(crate) use stream::Stream;

/// The engine as the binding sizes it: 1,024 bindings queued (more wait in the task), 512
/// received updates awaiting commit (so max-unacked-bndupd up to 512: between two of our peers
/// a larger window means fewer group-commit syncs per binding), 128 actions and as many
/// events. About 100 KiB, boxed.
pub(crate) type PeerEngine = Engine<1024, { crate::MAX_UNACKED_BNDUPD as usize }, 128>;

/// Most rounds of [`Task::drive`] per input: every round moves something, so this only bounds
/// a defect, never normal work.
const MAX_ROUNDS: usize = 100_000;

/// The task's monotonic clock: the engine's [`Instant`] counts from the task's start.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    origin: tokio::time::Instant,
}

impl Clock {
    pub(crate) fn new(origin: tokio::time::Instant) -> Self {
        Clock { origin }
    }

    pub(crate) fn now(&self) -> Instant {
        let ms = self.origin.elapsed().as_millis();
        Instant::from_millis(u64::try_from(ms).unwrap_or(u64::MAX))
    }

    pub(crate) fn deadline(&self, t: Instant) -> tokio::time::Instant {
        self.origin + Duration::from_millis(t.as_millis())
    }
}

/// Everything an engine output touches. Kept apart from the framer so that a message goes to
/// the engine straight out of the framer's buffer, with no copy.
pub(crate) struct Core<S: Storage> {
    pub(crate) engine: Box<PeerEngine>,
    pub(crate) store: Arc<S>,
    pub(crate) clock: Clock,
    feed: Feed,
    commit: GroupCommit,
    pub(crate) out: Forward,
    /// Message digests: verified before the engine, added after it.
    pub(crate) auth: LinkAuth,
    /// The engine asked to close the connection: done once its last messages are written.
    close_pending: bool,
}

/// The failover task.
pub(crate) struct Task<S: Storage> {
    core: Core<S>,
    framer: Box<Framer>,
    conn: Connection,
    cmd_rx: mpsc::Receiver<Command>,
    shutting_down: Option<(tokio::time::Instant, oneshot::Sender<()>)>,
}

impl<S: Storage> Task<S> {
    pub(crate) fn new(
        engine: Box<PeerEngine>,
        store: Arc<S>,
        clock: Clock,
        conn: Connection,
        cmd_rx: mpsc::Receiver<Command>,
        out: Forward,
        auth: LinkAuth,
    ) -> Self {
        Task {
            core: Core {
                engine,
                store,
                clock,
                feed: Feed::default(),
                commit: GroupCommit::new(),
                out,
                auth,
                close_pending: false,
            },
            framer: Box::new(Framer::new()),
            conn,
            cmd_rx,
            shutting_down: None,
        }
    }

    pub(crate) async fn run(mut self) {
        info!(listen = %self.conn.listen_addr(), partner = %self.conn.partner(), "failover peer started");
        loop {
            self.drive().await;
            if let Some((until, _)) = &self.shutting_down
                && (self.core.engine.link() == Link::Down || tokio::time::Instant::now() >= *until)
            {
                self.finish_shutdown().await;
                break;
            }
            self.next_input().await;
        }
        // Whatever is still waiting for a sync gets one before the task ends.
        self.core.commit_group().await;
        self.core.out.flush().await;
        info!("failover peer stopped");
    }

    /// Waits for one input and hands it to the engine.
    async fn next_input(&mut self) {
        let core = &mut self.core;
        let timeout = core.engine.poll_timeout().map(|t| core.clock.deadline(t));
        let reconnect = self.conn.reconnect_deadline();
        let linger = self.shutting_down.as_ref().map(|(t, _)| *t);
        let lazy_sync = core.commit.lazy_deadline();
        tokio::select! {
            cmd = self.cmd_rx.recv(), if core.feed.accepts_commands() => {
                match cmd {
                    Some(c) => Self::command(core, &mut self.shutting_down, c),
                    None => {
                        // Every handle is gone: stop as if told to.
                        let (tx, _) = oneshot::channel();
                        Self::command(core, &mut self.shutting_down, Command::Shutdown(tx));
                    }
                }
            }
            input = self.conn.next() => self.conn.handle(core, &mut self.framer, input).await,
            _ = connection::sleep_opt(timeout) => {
                let now = core.clock.now();
                core.engine.handle_timeout(now);
            }
            _ = connection::sleep_opt(reconnect) => self.conn.dial(),
            _ = connection::sleep_opt(linger) => {}
            _ = connection::sleep_opt(lazy_sync) => core.commit_group().await,
            synced = commit::sync_done(core.commit.running()) => core.group_synced(synced),
        }
    }

    fn command(
        core: &mut Core<S>,
        shutting_down: &mut Option<(tokio::time::Instant, oneshot::Sender<()>)>,
        c: Command,
    ) {
        let now = core.clock.now();
        match c {
            Command::SendBindings(list, reply) => {
                for b in &list {
                    if let Err(e) = core.store.record_local(b) {
                        warn!(error = %e, "storage failed");
                        let _ = reply.send(Err(PeerError::Storage));
                        return;
                    }
                }
                core.commit.touched();
                // Fed into the engine as its queue allows; no other command is taken meanwhile
                // (back-pressure, bounded by what the caller handed over). The reply waits for
                // the sync that makes the bindings durable.
                core.feed.park(list, reply);
                core.feed_queue();
            }
            Command::PartnerDown { force, reply } => {
                let taken = core.engine.partner_down(now, force);
                match taken {
                    Ok(()) => info!(force, "operator: partner down"),
                    Err(e) => warn!(error = %e, "operator's partner down refused"),
                }
                let _ = reply.send(taken.map_err(PeerError::Engine));
            }
            Command::Shutdown(done) => {
                info!("shutting down");
                core.engine.shutdown(now);
                *shutting_down = Some((tokio::time::Instant::now() + Duration::from_secs(6), done));
            }
            Command::Balance(trigger, reply) => {
                let _ = reply.send(core.balance(trigger));
            }
        }
    }

    /// Carries out the engine's outputs until nothing moves: actions, the sync that makes
    /// them durable, the confirmations that waited for it, messages to the partner, events.
    async fn drive(&mut self) {
        for _ in 0..MAX_ROUNDS {
            let mut moved = self.core.carry_out();
            moved |= self.core.feed_queue();
            // Started here, the sync runs while the next input is read (pipelined); a store
            // that syncs in place has confirmed the group already.
            if self.core.start_group() {
                moved |= self.core.carry_out();
            }
            let wrote = self.conn.transmit(&mut self.core, &mut self.framer).await;
            if !wrote && self.core.close_pending && self.conn.written_before_close() {
                // The engine's last messages are written: now the close it asked for.
                self.core.close_pending = false;
                self.conn.drop_conn(&mut self.core, &mut self.framer).await;
                moved = true;
            } else if !self.conn.is_up() {
                self.core.close_pending = false;
            }
            // `poll_transmit` produces no output, so what a write (or a dropped connection)
            // left behind is carried out at the top of the next round: one pass, not two.
            self.core.out.flush().await;
            if !wrote && !moved {
                break;
            }
        }
        let status: Status = self.core.engine.status(self.core.clock.now());
        self.core.out.publish(status);
    }

    async fn finish_shutdown(&mut self) {
        let now = self.core.clock.now();
        self.core
            .engine
            .disconnect(now, RejectReason::UnknownConnectionReason);
        self.drive().await;
        // The DISCONNECT, if the partner still reads.
        self.conn.finish_writes(Duration::from_secs(1)).await;
        self.conn.drop_conn(&mut self.core, &mut self.framer).await;
        if let Some((_, done)) = self.shutting_down.take() {
            let _ = done.send(());
        }
    }
}

impl<S: Storage> Core<S> {
    /// Hands every whole message in `bytes` to the engine, straight from the framer.
    fn deliver(&mut self, framer: &mut Framer, mut bytes: &[u8]) {
        // One reading of the clocks for the whole read: its messages arrived together.
        let now = self.clock.now();
        let wall = crate::peer::wall_clock();
        loop {
            if self.auth.refused() {
                // Closing: nothing more of this connection is looked at.
                break;
            }
            match framer.next_message(&mut bytes) {
                Ok(Some(msg)) => {
                    if let Err(reason) = self.auth.verify(msg, wall.0) {
                        self.refuse_digest(now, reason);
                        break;
                    }
                    self.out.counters.count_in();
                    // The engine refuses input while its output queues lack room: carry them
                    // out (in memory; the sync comes once the batch is read), then retry.
                    let mut tries = 0;
                    let mut commits = Commits::new();
                    while let Err(EngineError::EventsPending) =
                        self.engine
                            .handle_message(now, wall, msg, &*self.store, &mut commits)
                    {
                        tries += 1;
                        if !self.carry_out() || tries > 2 {
                            warn!("engine outputs stuck; message dropped");
                            break;
                        }
                    }
                    while let Some(c) = commits.pop() {
                        self.commit(c);
                    }
                    // This message's actions before the next message's commits: the store sees
                    // every change in the order the engine decided it (a pool check on entering
                    // NORMAL counts the addresses as they stood then, not with the bindings of
                    // the BNDUPDs read after it).
                    self.carry_out();
                }
                Ok(None) => break,
                Err(e) => {
                    // A bad length: the stream cannot be framed any more (§6.1).
                    warn!(error = %e, "unframeable stream from the partner");
                    self.engine.disconnect(now, RejectReason::UnknownError);
                    break;
                }
            }
        }
    }

    /// A message failed authentication: it does not reach the engine, which answers with
    /// DISCONNECT and closes (§11.1: "MUST close the connection immediately and take steps to
    /// notify operators").
    fn refuse_digest(&mut self, now: Instant, reason: failover_proto::auth::DigestError) {
        warn!(%reason, "message from the partner failed authentication; closing the connection");
        self.out.counters.count_digest_refused();
        self.out.push(PeerEvent::DigestRefused { reason });
        self.engine.disconnect(now, reason.reject_reason());
    }

    /// Pool balancing with the store's counts (on request, on the partner's POOLREQ and when
    /// the engine asks for a check). A store with several pools has each balanced on its own
    /// (§5.4); the plan returned is then the last pool's.
    fn balance(&mut self, trigger: BalanceTrigger) -> Result<BalancePlan, BalanceSkipped> {
        let wall = self.engine.wall_at(self.clock.now());
        let pools = self.store.pool_count();
        if pools <= 1 {
            let plan = self
                .engine
                .balance_pools(self.store.pool_counts(), trigger)?;
            self.move_to_partner(0, &plan, wall);
            return Ok(plan);
        }
        let store = self.store.clone();
        let mut last = None;
        let mut plans = Vec::with_capacity(pools);
        self.engine.balance_each_pool(
            pools,
            trigger,
            |i| store.pool_counts_of(i),
            |i, plan| {
                plans.push((i, *plan));
                last = Some(*plan);
                plan.to_move()
            },
        )?;
        for (i, plan) in plans {
            self.move_to_partner(i, &plan, wall);
        }
        last.ok_or(BalanceSkipped::NotNormal(self.engine.state()))
    }

    /// Moves the addresses `plan` gives the partner from pool `pool` and queues them.
    fn move_to_partner(&mut self, pool: usize, plan: &BalancePlan, wall: UnixTime) {
        if plan.to_move() == 0 {
            return;
        }
        match self.store.move_to_partner_in(pool, plan, wall) {
            Ok(moved) => {
                info!(count = moved.len(), pool, to = ?plan.give_as, "moving addresses to the partner's pool");
                self.commit.touched();
                self.feed.send_moved(&moved);
            }
            Err(e) => warn!(error = %e, "storage failed while balancing"),
        }
    }
}
