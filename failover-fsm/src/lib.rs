//! The DHCPv4 failover engine of draft-ietf-dhc-failover-12: one failover endpoint (one
//! relationship, one role) as a deterministic state machine. Sans-IO, `no_std`, no heap:
//! it owns no socket, no clock and no lease database.
//!
//! # The four API groups of [`Engine`]
//!
//! * **Getters**: [`Engine::state`], [`Engine::partner_state`], [`Engine::status`],
//!   [`Engine::mclt`], [`Engine::is_communicating`].
//! * **Inputs**: [`Engine::connection_up`] / [`Engine::connection_down`] from the transport,
//!   [`Engine::handle_message`] for every message framed off the TCP stream,
//!   [`Engine::handle_timeout`] when the deadline of [`Engine::poll_timeout`] is reached.
//! * **Commands** from the DHCP server: [`Engine::send_binding`] (lazy update, §5.1),
//!   [`Engine::end_of_updates`], [`Engine::binding_committed`], [`Engine::partner_down`],
//!   [`Engine::shutdown`], [`Engine::pause`], [`Engine::pool_response`].
//! * **Outputs**, polled after every input in this order:
//!   1. [`Engine::poll_event`] until `None`: persist what it says to persist, commit received
//!      bindings, close the connection when told;
//!   2. [`Engine::poll_transmit`] until `None`: write each message to the TCP connection;
//!   3. [`Engine::poll_timeout`]: when to call [`Engine::handle_timeout`] next.
//!
//! Time comes in as arguments: a monotonic [`Instant`] for timers and the wall-clock
//! [`UnixTime`] for the draft's absolute times. Same inputs, same outputs.
//!
//! # Durability
//!
//! The engine tells the caller what must reach stable storage and waits for it:
//! * [`Event::PersistState`] comes before the STATE message that announces the change (§9.2);
//!   `poll_transmit` sends nothing while such an event is unpolled.
//! * A binding from the partner is handed over as [`Event::CommitBinding`] and acknowledged
//!   (BNDACK) only after [`Engine::binding_committed`] (§7.2): nothing is acknowledged that is
//!   not durable. A commit confirmed after the connection dropped is not acknowledged on the
//!   next connection; the partner sends the binding again.
//! * Our own bindings stay queued until the partner acknowledges them, across reconnects.
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
pub mod engine;
pub mod policy;
pub mod time;
pub mod transition;

pub use binding::BindingData;
pub use config::{Config, ConfigError};
pub use dialect::Dialect;
pub use engine::{
    CommitToken, Engine, EngineError, Event, LeaseLookup, Link, MAX_BATCH, Persisted, Status,
};
pub use failover_proto::{BindingStatus, Hba, HbaPolarity, RejectReason, Role, ServerState};
pub use time::{Instant, UnixTime};
