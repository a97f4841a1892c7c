//! The DHCPv4 failover engine of draft-ietf-dhc-failover-12: one failover endpoint (one
//! relationship, one role) as a deterministic state machine. Sans-IO, `no_std`, no heap:
//! it owns no socket, no clock and no lease database.
//!
//! # The four API groups of [`Engine`]
//!
//! * **Inputs** — what happened: [`Engine::connection_up`] / [`Engine::connection_down`]
//!   from the transport, [`Engine::handle_message`] for every message framed off the TCP
//!   stream, [`Engine::handle_timeout`] when the deadline of [`Engine::poll_timeout`] is
//!   reached, and the caller's confirmations of what it was asked to do:
//!   [`Engine::persist_complete`] / [`Engine::persist_failed`],
//!   [`Engine::binding_committed`] / [`Engine::binding_commit_failed`].
//! * **Commands** from the DHCP server or an operator: [`Engine::send_binding`] (lazy
//!   update, §5.1), [`Engine::end_of_updates`], [`Engine::partner_down`],
//!   [`Engine::shutdown`], [`Engine::pause`], [`Engine::disconnect`],
//!   [`Engine::pool_response`], [`Engine::balance_pools`], [`Engine::request_pool_balance`],
//!   [`Engine::lease_table_lost`].
//! * **Queries**: [`Engine::state`], [`Engine::partner_state`], [`Engine::status`],
//!   [`Engine::mclt`], [`Engine::is_communicating`], [`Engine::endpoint`], ...
//! * **Outputs**, polled after every input and command in this order:
//!   1. [`Engine::poll_action`] until `None`: each [`Action`] must be carried out (persist a
//!      snapshot, commit a received binding, queue bindings, record an acknowledgement, close
//!      the connection once the last messages are written) before the next is polled;
//!   2. [`Engine::poll_event`] until `None`: [`Event`]s are informational (log, count);
//!   3. [`Engine::poll_transmit`] until `None`: write each message to the TCP connection;
//!   4. [`Engine::poll_timeout`]: when to call [`Engine::handle_timeout`] next.
//!
//!   `poll_transmit` and `poll_timeout` never produce actions or events.
//!
//! Time comes in as arguments: a monotonic [`Instant`] for timers and the wall-clock
//! [`UnixTime`] for the draft's absolute times. Same inputs, same outputs.
//!
//! # Durability
//!
//! The engine tells the caller what must reach stable storage and waits for it:
//! * Its own state (failover state, agreed MCLT, last-operational time, an unfinished
//!   refresh) comes as one whole [`Persisted`] snapshot in [`Action::Persist`] whenever
//!   something in it changed — one write at a time, changes made meanwhile coalesced into the
//!   next. A STATE message announcing a state change goes out only after
//!   [`Engine::persist_complete`] confirmed the snapshot holding it (§9.2), and everything
//!   queued after that STATE waits behind it. After [`Engine::persist_failed`] the STATE stays
//!   unsent, [`Event::PersistFailed`] says so, and the snapshot is asked for again after
//!   [`PERSIST_RETRY`].
//! * A binding from the partner is handed to the caller's [`CommitSink`] while
//!   [`Engine::handle_message`] reads it, and acknowledged
//!   (BNDACK) only after [`Engine::binding_committed`] (§7.2): nothing is acknowledged that is
//!   not durable. A commit confirmed after the connection dropped is not acknowledged on the
//!   next connection; the partner sends the binding again.
//! * Our own bindings stay queued until the partner acknowledges them, across reconnects;
//!   [`Action::BindingAcked`] names the [`UpdateId`] that [`Engine::send_binding`] returned.
//!   The engine knows which of ours are outstanding and uses that itself when it judges the
//!   partner's updates ([`accept::LocalBinding::in_flight`]).
//!
//! # The lease record
//!
//! How a stored record changes — a received binding applied with the engine's verdict, a
//! change of our own, an acknowledgement (§5.11 frees an acknowledged EXPIRED), a refusal, a
//! restart — is one contract, [`record::LeaseRecord`]: a store keeps one per address and calls
//! its methods for the actions above, in the order the table in [`record`] gives. The stores of
//! failover-tokio, the test harness and the simulator all do, so the simulation proves the
//! rules users run.
//!
//! # DHCPv6 (RFC 8156)
//!
//! [`v6`] holds the rules of DHCPv6 failover where they differ from draft-12's, as pure
//! functions over [`failover_proto::v6`] bindings; where the two agree (the state machine,
//! STARTUP, the MCLT lifetime cap) they call the v4 rule. The engine does not use them yet.
//!
//! # Example: two engines in memory
//!
//! ```
//! use core::net::Ipv4Addr;
//! use failover_fsm::accept::LocalBinding;
//! use failover_fsm::{
//!     Action, BindingData, BindingStatus, Commits, Config, Engine, Instant, LeaseLookup, Role,
//!     ServerState, UnixTime,
//! };
//!
//! /// A lease database where every address of 192.0.2.0/24 is FREE.
//! struct Pool;
//! impl LeaseLookup for Pool {
//!     fn lookup(&self, a: Ipv4Addr) -> Option<LocalBinding> {
//!         (a.octets()[..3] == [192, 0, 2]).then(|| LocalBinding::new(BindingStatus::Free))
//!     }
//! }
//!
//! let wall = UnixTime(1_700_000_000);
//! let mut now = Instant::ZERO;
//! let mut p: Engine = Engine::new(Config::new(Role::Primary, "pair", 3600), None, now, wall, 1)?;
//! let mut s: Engine = Engine::new(Config::new(Role::Secondary, "pair", 0), None, now, wall, 2)?;
//!
//! // The DHCP server's side: carry out actions (a real one writes the snapshot and commits
//! // bindings to disk before confirming), skim events, then move messages (a real one writes
//! // them to TCP).
//! fn serve(e: &mut Engine, acked: &mut u32) {
//!     while let Some(action) = e.poll_action() {
//!         match action {
//!             Action::Persist { token, .. } => e.persist_complete(token).unwrap(),
//!             Action::SendAllBindings | Action::SendUnackedBindings => e.end_of_updates(),
//!             Action::BindingAcked { .. } => *acked += 1,
//!             _ => {}
//!         }
//!     }
//!     while let Some(_event) = e.poll_event() {}
//! }
//! let mut buf = [0u8; 2048];
//! let mut acked = 0;
//! // The bindings each side sends are read from its lease table when they go out; here one
//! // table stands for both.
//! let mut exchange = |p: &mut Engine, s: &mut Engine, now: Instant, acked: &mut u32,
//!                     table: &[BindingData]| loop {
//!     let mut moved = false;
//!     for (from, to) in [(0, 1), (1, 0)] {
//!         let (from, to) = if from == 0 { (&mut *p, &mut *s) } else { (&mut *s, &mut *p) };
//!         serve(from, acked);
//!         while let Some(n) = from.poll_transmit(now, &mut buf, table) {
//!             // The partner's bindings to commit: durable, then confirmed.
//!             let mut commits = Commits::new();
//!             to.handle_message(now, wall, &buf[..n], &Pool, &mut commits).unwrap();
//!             while let Some(c) = commits.pop() {
//!                 to.binding_committed(c.token).unwrap();
//!             }
//!             serve(to, acked);
//!             moved = true;
//!         }
//!     }
//!     if !moved { break }
//! };
//!
//! p.connection_up(now)?;
//! s.connection_up(now)?;
//! exchange(&mut p, &mut s, now, &mut acked, &[]);
//! // A new pair: both RECOVER, exchange their databases, then NORMAL.
//! assert_eq!((p.state(), s.state()), (ServerState::Normal, ServerState::Normal));
//! assert_eq!(s.mclt(), 3600); // learned from the primary's CONNECT
//!
//! // The primary leases 192.0.2.10 and tells the secondary (lazy update, §5.1).
//! let mut b = BindingData::new(Ipv4Addr::new(192, 0, 2, 10), BindingStatus::Active)
//!     .with_client(None, 1, &[0x00, 0x0c, 0x29, 0x12, 0x34, 0x56])?;
//! b.lease_expiration_time = Some(wall.plus(3600));
//! b.potential_expiration_time = Some(wall.plus(5400));
//! p.send_binding(&b)?;
//! let table = [b];
//! exchange(&mut p, &mut s, now, &mut acked, &table);
//! assert_eq!(acked, 1);
//!
//! // Keep-alives: an idle minute keeps the link up.
//! for _ in 0..100 {
//!     let next = [p.poll_timeout(), s.poll_timeout()].into_iter().flatten().min().unwrap();
//!     if next > Instant::from_secs(60) { break }
//!     now = next;
//!     p.handle_timeout(now);
//!     s.handle_timeout(now);
//!     exchange(&mut p, &mut s, now, &mut acked, &table);
//! }
//! assert!(p.is_communicating() && s.is_communicating());
//! # Ok::<(), Box<dyn core::error::Error>>(())
//! ```
#![no_std]
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]
#![deny(clippy::indexing_slicing)]
#![warn(missing_docs)]

pub mod accept;
pub mod binding;
pub mod config;
pub mod dialect;
pub mod dispatch;
pub mod engine;
pub mod policy;
pub mod record;
pub mod time;
pub mod transition;
pub mod v6;

pub use binding::{BindingData, BindingSource};
pub use config::{Config, ConfigError};
pub use dialect::Dialect;
pub use engine::{
    Action, Commit, CommitSink, CommitToken, Commits, Counters, Engine, EngineError, Event,
    LeaseLookup, Link, MAX_BATCH, PERSIST_RETRY, PersistToken, Persisted, RelationshipName, Status,
    UpdateId,
};
pub use failover_proto::{BindingStatus, Hba, HbaPolarity, RejectReason, Role, ServerState};
pub use time::{Instant, UnixTime};
