//! The test kit of the DHCP failover workspace: the in-memory harness and the deterministic
//! two-server simulator that failover-fsm's tests and the fuzz targets share. Not published;
//! the tests depend on it as a dev-dependency, the fuzz package by path.
//!
//! # The harness: [`support`]
//!
//! A failover endpoint with an in-memory lease store ([`support::Node`]: a
//! [`support::TestEngine`] and its [`support::Store`], with the DHCP server's side of the events
//! — persisting state, committing received bindings, balancing pools, granting leases), and
//! [`support::Pair`], two of them wired together in memory with a virtual clock that tests
//! advance step by step. failover-fsm's scenario, hostile-partner and ISC-replay tests are
//! written against it, and the simulator builds its servers from the same store.
//!
//! # The simulator: [`world`], [`check`], [`client`], [`faults`], [`rng`]
//!
//! Two failover engines, the TCP connection between them, DHCP clients, stable storage with
//! write delays, one virtual clock that jumps to the next thing due, and a fault injector. Every
//! choice of a run comes from one [`rng::Rng`] — seeded (SplitMix64), or read from a fuzz input
//! as a tape — so a seed, or an input, replays exactly. The invariants are checked after every
//! step and a violation panics with the seed, the step and the invariant.
//!
//! * [`world`]: time, storage, the connection and the main loop ([`world::World::run`]);
//! * [`check`]: the invariants (no address bound to two clients, nothing acknowledged lost,
//!   the MCLT rule, the pair settling in NORMAL with agreeing lease tables afterwards);
//! * [`client`]: the DHCP clients and the DHCP-server side of the two servers;
//! * [`faults`]: the seeded faults and the assumptions they respect;
//! * [`rng`]: the deterministic choices, seeded or from a tape.
//!
//! The modules refer to each other as `crate::world`, `crate::support`, ...: their internals
//! are `pub(crate)`; what the tests and fuzz targets outside use is `pub` (a [`world::World`]
//! made with [`world::World::new`] or [`world::World::with_rng`], run with
//! [`world::World::run`], and what it reports in [`world::World::stats`] and
//! [`world::World::digest`]).
//!
//! # The DHCPv6 simulator: [`sim6`]
//!
//! The same for an RFC 8156 pair: two `Engine<_, _, _, V6>` with durable lease stores (a
//! `LocalLease` per address and delegable prefix), DHCPv6 clients for IA_NA and IA_PD talking to
//! either server, the connection as framed bytes, seeded faults (cuts, latency spikes, crashes,
//! clocks stepped back, lost lease tables, operators declaring PARTNER-DOWN) and the v6 invariants
//! after every step. Its servers decide every grant with `failover_fsm::v6` (`allocate`,
//! `lifetime`, `owner`) and store the partner's updates and answers with `LocalLease`'s rules
//! (a grant, a release and an expiry set the record's fields themselves: the library has no
//! function for those transitions). It shares [`rng`] with
//! the v4 simulator; the v4 world, clients and faults are draft-12's and stay apart. Run by
//! failover-fsm's `tests/sim6/main.rs` (`cargo test -p failover-fsm --test sim6`, the same
//! `SIM_*` variables as `tests/sim`).
//!
//! # The ISC dhcpd harness: [`isc`]
//!
//! Runs real ISC dhcpd 4.4 processes (Debian's isc-dhcp-server) as failover peers on the
//! loopback: their configuration, the port-less bridge each needs as its DHCP interface, their
//! stamped logs and lease files, network namespaces for serving real DHCP clients, and
//! hand-made failover messages for probing. Used by failover-tokio's `isc_interop` tests. Linux
//! only in practice (`ip`, bridges, namespaces; run as root); callers skip when
//! [`isc::tools_available`] says the tools are missing.
//!
//! # Running it
//!
//! The simulator's tests are failover-fsm's `tests/sim/main.rs` (with the regression tests of
//! the engine bugs it found, `tests/sim/regress.rs`):
//!
//! * `cargo test -p failover-fsm --test sim`: 1,000 seeds (every CI run);
//! * `SIM_SEEDS=100000 SIM_FIRST=0 cargo test --release -p failover-fsm --test sim`: more seeds
//!   (`SIM_FIRST` is the first); `SIM_KEEP_GOING=1` runs every seed and lists the failures at
//!   the end; `SIM_SECS` sets the fault phase (default 900 virtual seconds);
//! * `SIM_SEED=123 cargo test -p failover-fsm --test sim -- --nocapture`: one seed with the full
//!   event log on stderr (a failing seed is replayed at once with its log in
//!   `$TMPDIR/failover-sim-<seed>.log`, and the panic message names this command).
//!
//! The `pair` fuzz target (`fuzz/fuzz_targets/pair.rs`, `pair_checks.rs`) runs the simulator
//! with every choice read from the input; `cargo test -p failover-fsm --test fuzz_pair_corpus`
//! replays its committed corpus and crash artifacts on stable Rust (see `fuzz/README.md`).
//! `cargo test -p failover-testkit` runs the kit's own tests (the tape and seed PRNG).
// Test code: it panics on purpose when an invariant fails, indexes its own tables, and
// documents its modules rather than every field.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::needless_range_loop,
    missing_docs
)]

pub mod check;
pub mod client;
pub mod faults;
pub mod isc;
pub mod rng;
pub mod sim6;
pub mod support;
pub mod world;
