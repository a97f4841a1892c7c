//! DHCPv4 failover (draft-ietf-dhc-failover-12) over TCP with tokio: a thin binding of the
//! [`failover_fsm`] engine to sockets and timers.
//!
//! [`PeerBuilder`] starts one failover peer: it listens (port 647 by default) and connects to
//! the partner, keeps one live connection per relationship (the partner's extra connections and
//! every connection from another address are closed unread), reconnects with jittered backoff,
//! and runs the engine's timers. The DHCP server talks to it through a [`Handle`]
//! (`send_binding`, policy queries, `partner_down`, `shutdown`, `status`, `watch`) and receives
//! [`PeerEvent`]s.
//!
//! Many relationships can share one listening port: bind a [`Listener`] and give it to each
//! with [`PeerBuilder::listener`]; connections go to their relationship by the partner's
//! address and the relationship-name of their CONNECT (draft §5.1, §8.2).
//!
//! The link is plain TCP ([`PeerBuilder::plaintext`], what ISC dhcpd speaks) or, with the
//! `tls` feature, TLS 1.3 with a certificate on each side and the partner's identity pinned
//! (`PeerBuilder::tls`, the `tls` module); a relationship must say which. Either can carry the
//! draft's message-digest over a shared secret ([`PeerBuilder::message_auth`], §11.1): every
//! message signed, every received one verified before the engine sees it.
//!
//! Durability is the [`Storage`]'s: every change is applied to the store at once, by the rules
//! of [`failover_fsm::record::LeaseRecord`], and made durable by [`Storage::sync`]. The task
//! syncs once for everything one batch of input changed (group commit), on tokio's blocking
//! pool, and only then lets the engine acknowledge the partner's bindings (BNDACK), announce a
//! new state (STATE) or tell the application its bindings are recorded. [`MemoryStore`] is the
//! in-memory reference; [`FileStore`] an append-only log whose `sync` is one fsync.
//!
//! All protocol decisions are the engine's; this crate only moves bytes, time and events.

// Without the `tls` feature the docs' links to the TLS items have nothing to point at.
#![cfg_attr(not(feature = "tls"), allow(rustdoc::broken_intra_doc_links))]

mod auth;
pub mod listener;
pub mod peer;
pub mod storage;
mod task;
#[cfg(feature = "tls")]
pub mod tls;
pub mod transport;
pub mod v6;

pub use listener::{Listener, ListenerCounters};
pub use peer::{Counters, Handle, PeerBuilder, PeerError, PeerEvent, wall_clock};
pub use storage::{Backlog, FileStore, Lease, MemoryStore, Storage};
#[cfg(feature = "tls")]
pub use tls::{TlsConfig, TlsError, TlsRefusal};
pub use transport::{Transport, TransportNotChosen};

/// The largest max-unacked-bndupd a [`PeerBuilder`]'s configuration may advertise: the
/// partner's BNDUPDs its engine holds awaiting commit (a larger value is refused by
/// [`failover_fsm::Config::validate`] when the peer starts).
pub const MAX_UNACKED_BNDUPD: u32 = 512;

/// The README's code examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
