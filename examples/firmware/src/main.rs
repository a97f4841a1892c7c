//! A firmware-style program: one failover endpoint fed from a receive buffer, answering into a
//! transmit buffer, as a router's DHCP server would run it. Built for `thumbv7em-none-eabihf`
//! to measure how much flash the failover crates take (`.text`).
#![no_std]
#![no_main]

use core::hint::black_box;
use core::net::Ipv4Addr;

use failover_fsm::accept::LocalBinding;
use failover_fsm::{
    Action, BindingData, BindingSource, BindingStatus, Commits, Config, Engine, Instant,
    LeaseLookup, Role, UnixTime,
};
use failover_proto::Framer;

/// Every address of 192.0.2.0/24 is ours and FREE.
struct Pool;

impl LeaseLookup for Pool {
    fn lookup(&self, a: Ipv4Addr) -> Option<LocalBinding> {
        (a.octets()[..3] == [192, 0, 2]).then(|| LocalBinding::new(BindingStatus::Free))
    }
}

/// What the engine sends for an address: the record as the lease table holds it.
impl BindingSource for Pool {
    fn binding(&self, a: Ipv4Addr) -> Option<BindingData> {
        (a.octets()[..3] == [192, 0, 2])
            .then(|| black_box(BindingData::new(a, BindingStatus::Free)))
    }
}

#[panic_handler]
#[allow(clippy::empty_loop)] // nowhere to report to: the size image has no I/O
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    loop {}
}

/// What the network driver filled in; opaque to the optimiser.
static RX: [u8; 1460] = [0; 1460];

#[unsafe(no_mangle)]
#[allow(clippy::empty_loop)]
pub extern "C" fn _start() -> ! {
    let config = Config::new(Role::Secondary, "router-pair", 3600);
    let Ok(mut engine) = Engine::<32, 16, 32>::new(config, None, Instant::ZERO, UnixTime(0), 1)
    else {
        loop {}
    };
    let mut framer = Framer::new();
    let mut tx = [0u8; 2048];
    let mut ticks: u64 = 0;
    let _ = engine.connection_up(Instant::ZERO);
    loop {
        ticks += 1;
        let now = Instant::from_millis(black_box(ticks));
        let wall = UnixTime(black_box(ticks as u32));
        let mut input: &[u8] = black_box(&RX[..]);
        loop {
            match framer.next_message(&mut input) {
                Ok(Some(msg)) => {
                    let mut commits = Commits::new();
                    let _ = engine.handle_message(now, wall, msg, &Pool, &mut commits);
                    while let Some(c) = commits.pop() {
                        // Flash written (here: pretend), then confirmed.
                        black_box(&c.binding);
                        let _ = engine.binding_committed(c.token);
                    }
                }
                Ok(None) => break,
                Err(_) => {
                    engine.connection_down(now);
                    framer.reset();
                    break;
                }
            }
        }
        engine.handle_timeout(now);
        let mut close = false;
        while let Some(action) = engine.poll_action() {
            match action {
                // Flash written (here: pretend), then confirmed.
                Action::Persist { token, snapshot } => {
                    black_box(&snapshot);
                    let _ = engine.persist_complete(token);
                }
                Action::SendAllBindings | Action::SendUnackedBindings => engine.end_of_updates(),
                Action::CloseConnection => close = true,
                other => {
                    black_box(&other);
                }
            }
        }
        while let Some(event) = engine.poll_event() {
            black_box(&event);
        }
        while let Some(n) = engine.poll_transmit(now, &mut tx, &Pool) {
            black_box(&tx[..n.min(tx.len())]);
        }
        if close {
            engine.connection_down(now);
        }
        if black_box(ticks.is_multiple_of(1000)) {
            let mut b = BindingData::new(Ipv4Addr::new(192, 0, 2, 10), BindingStatus::Active);
            b.lease_expiration_time = Some(wall.plus(3600));
            let _ = engine.send_binding(&b);
        }
        black_box(engine.poll_timeout());
    }
}
