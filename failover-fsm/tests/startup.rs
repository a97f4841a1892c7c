//! How long STARTUP lasts (§5.9, §9.3.2 step 6) and the time of operation the engine records
//! for it (§9.3.2 step 5): a server that was down for the MCLT or longer, or cannot tell, waits
//! longer before it serves from its own pool; the time is recorded on entering a state that
//! serves clients and every heartbeat after that.
//!
//! Found by the simulator (seed 30414378; seed 82845043 the same for a primary down less than
//! the MCLT, whose short STARTUP now lasts the long wait counted from its last message): a
//! primary down longer than the MCLT came back while
//! its secondary, in PARTNER-DOWN by the operator's word, still held the primary's previous
//! connection (half-open) until its receive timer ran out. Fifteen seconds of STARTUP ended
//! first; the primary entered COMMUNICATIONS-INTERRUPTED and counted as its own a FREE
//! address the secondary had leased.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

use std::time::Duration;

use failover_fsm::{Action, Config, Engine, Instant, Persisted, Role, ServerState, UnixTime};

const WALL: u32 = 1_700_000_000;
const MCLT: u32 = 300;

fn config() -> Config {
    let mut c = Config::new(Role::Primary, "startup", MCLT);
    c.startup_delay = 15;
    c.startup_delay_after_long_down = 60;
    c
}

fn persisted(state: ServerState, last_operational: Option<u32>) -> Persisted {
    Persisted {
        state,
        since: UnixTime(WALL - 10_000),
        mclt: Some(MCLT),
        last_operational: last_operational.map(|ago| UnixTime(WALL - ago)),
        lease_table_lost: false,
    }
}

/// A started engine (no connection ever comes up), its persister confirming every snapshot.
struct Node {
    e: Engine,
    now: Instant,
    written: Vec<Persisted>,
}

impl Node {
    fn start(config: Config, persisted: Option<Persisted>) -> Node {
        let now = Instant::from_secs(1_000);
        let e = Engine::new(config, persisted, now, UnixTime(WALL), 7).unwrap();
        let mut n = Node {
            e,
            now,
            written: Vec::new(),
        };
        n.drain();
        n
    }

    fn drain(&mut self) {
        while let Some(a) = self.e.poll_action() {
            if let Action::Persist { token, snapshot } = a {
                self.written.push(snapshot);
                self.e.persist_complete(token).unwrap();
            }
        }
        while self.e.poll_event().is_some() {}
    }

    /// Runs the timers up to `secs` seconds after the start.
    fn run_to(&mut self, secs: u64) {
        let end = Instant::from_secs(1_000 + secs);
        while let Some(t) = self.e.poll_timeout().filter(|t| *t <= end) {
            self.now = t;
            self.e.handle_timeout(t);
            self.drain();
        }
        self.now = end;
    }

    fn startup_left(&self) -> Option<Duration> {
        self.e.status(self.now).startup_left
    }
}

#[test]
fn down_for_less_than_the_mclt_waits_the_short_startup() {
    let mut n = Node::start(
        config(),
        Some(persisted(ServerState::Normal, Some(MCLT - 1))),
    );
    assert_eq!(n.startup_left(), Some(Duration::from_secs(15)));
    n.run_to(14);
    assert_eq!(n.e.state(), ServerState::Startup);
    n.run_to(15);
    assert_eq!(n.e.state(), ServerState::CommunicationsInterrupted);
    assert_eq!(n.startup_left(), None);
}

#[test]
fn down_briefly_waits_until_the_long_startup_after_its_last_operation() {
    // Our last message may have gone a heartbeat (60 s at this MCLT) after the last recorded
    // operation, and the partner may hold that connection until its receive timer runs out:
    // STARTUP lasts until 60 + 60 s after that record, never longer than the long startup
    // and never shorter than the short one. Down 16 s: 60 s (the long one); down 70 s: 50 s;
    // down 110 s: 15 s (seed 82845043).
    for (ago, wait) in [(16, 60), (70, 50), (110, 15)] {
        let mut n = Node::start(config(), Some(persisted(ServerState::Normal, Some(ago))));
        assert_eq!(
            n.startup_left(),
            Some(Duration::from_secs(wait)),
            "down {ago} s"
        );
        n.run_to(wait - 1);
        assert_eq!(n.e.state(), ServerState::Startup, "down {ago} s");
        n.run_to(wait);
        assert_eq!(
            n.e.state(),
            ServerState::CommunicationsInterrupted,
            "down {ago} s"
        );
    }
}

#[test]
fn down_for_the_mclt_or_longer_waits_the_long_startup() {
    for ago in [MCLT, 10 * MCLT] {
        let mut n = Node::start(config(), Some(persisted(ServerState::Normal, Some(ago))));
        assert_eq!(
            n.startup_left(),
            Some(Duration::from_secs(60)),
            "down {ago} s"
        );
        n.run_to(59);
        assert_eq!(n.e.state(), ServerState::Startup, "down {ago} s");
        n.run_to(60);
        assert_eq!(
            n.e.state(),
            ServerState::CommunicationsInterrupted,
            "down {ago} s"
        );
    }
}

#[test]
fn no_recorded_time_of_operation_counts_as_a_long_time_down() {
    let mut n = Node::start(config(), Some(persisted(ServerState::PartnerDown, None)));
    assert_eq!(n.startup_left(), Some(Duration::from_secs(60)));
    n.run_to(60);
    assert_eq!(n.e.state(), ServerState::PartnerDown);
}

#[test]
fn a_server_that_would_not_serve_keeps_the_short_startup() {
    // Brand new (RECOVER, §9.3.2 step 1) and a recovery cut short: neither serves anybody
    // after STARTUP, so nothing is gained by waiting longer.
    for p in [None, Some(persisted(ServerState::Recover, None))] {
        let mut n = Node::start(config(), p);
        assert_eq!(n.startup_left(), Some(Duration::from_secs(15)), "{p:?}");
        n.run_to(15);
        assert_eq!(n.e.state(), ServerState::Recover, "{p:?}");
    }
}

#[test]
fn the_long_startup_is_never_shorter_than_the_short_one() {
    let mut c = config();
    c.startup_delay = 90;
    let n = Node::start(c, Some(persisted(ServerState::Normal, None)));
    assert_eq!(n.startup_left(), Some(Duration::from_secs(90)));
}

#[test]
fn the_time_of_operation_is_recorded_on_entry_and_every_heartbeat() {
    // Down 200 s: the short startup (see below for a shorter time down).
    let mut n = Node::start(config(), Some(persisted(ServerState::Normal, Some(200))));
    assert!(
        n.written
            .iter()
            .all(|p| p.last_operational == Some(UnixTime(WALL - 200)))
    );
    n.run_to(15);
    assert_eq!(n.e.state(), ServerState::CommunicationsInterrupted);
    let recorded = |n: &Node| n.written.last().and_then(|p| p.last_operational);
    assert_eq!(recorded(&n), Some(UnixTime(WALL + 15)));
    // A quarter of the MCLT, at most 60 s.
    n.run_to(15 + 59);
    assert_eq!(recorded(&n), Some(UnixTime(WALL + 15)));
    n.run_to(15 + 60);
    assert_eq!(recorded(&n), Some(UnixTime(WALL + 75)));
    n.run_to(15 + 600);
    assert_eq!(recorded(&n), Some(UnixTime(WALL + 615)));
    // SHUTDOWN records its own entry (§9.14.1), then the heartbeat stops.
    let now = n.now;
    n.e.shutdown(now);
    n.drain();
    assert_eq!(n.e.state(), ServerState::Shutdown);
    assert_eq!(recorded(&n), Some(UnixTime(WALL + 615)));
    let count = n.written.len();
    n.run_to(15 + 1_200);
    assert!(
        n.written[count..]
            .iter()
            .all(|p| p.last_operational == Some(UnixTime(WALL + 615))),
        "{:?}",
        &n.written[count..]
    );
}

#[test]
fn recovering_records_no_time_of_operation() {
    let mut n = Node::start(config(), None);
    n.run_to(600);
    assert_eq!(n.e.state(), ServerState::Recover);
    assert!(n.written.iter().all(|p| p.last_operational.is_none()));
}
