//! A 64-bit tick counter on SysTick, the one timer every Cortex-M4 has.
//!
//! Under QEMU the processor clock of `mps2-an386` is 25 MHz of *virtual* time. Run with
//! `-icount shift=0`, virtual time advances 1 ns per guest instruction, so one tick is 40
//! instructions and tick counts are deterministic: they count instructions, not cycles (QEMU
//! does not model pipelines or wait states, and does not emulate the DWT cycle counter).

use core::sync::atomic::{AtomicU32, Ordering};

use cortex_m::peripheral::SYST;
use cortex_m::peripheral::syst::SystClkSource;
use cortex_m_rt::exception;

/// SysTick counts down from this (24 bits) and wraps.
const RELOAD: u32 = 0x00FF_FFFF;

/// The processor clock of mps2-an386 (QEMU `hw/arm/mps2.c`: SYSCLK_FRQ).
pub const HZ: u64 = 25_000_000;

static WRAPS: AtomicU32 = AtomicU32::new(0);

#[exception]
fn SysTick() {
    WRAPS.fetch_add(1, Ordering::Relaxed);
}

/// Owns SysTick so that nothing else reprograms it.
pub struct Clock {
    _syst: SYST,
}

impl Clock {
    pub fn start(mut syst: SYST) -> Self {
        syst.set_clock_source(SystClkSource::Core);
        syst.set_reload(RELOAD);
        syst.clear_current();
        syst.enable_interrupt();
        syst.enable_counter();
        Clock { _syst: syst }
    }

    /// Ticks since `start`.
    pub fn ticks(&self) -> u64 {
        loop {
            let wraps = WRAPS.load(Ordering::Relaxed);
            let current = SYST::get_current();
            // A wrap between the two reads ran the handler (interrupts stay enabled): read again.
            if WRAPS.load(Ordering::Relaxed) == wraps {
                return u64::from(wraps) * u64::from(RELOAD + 1) + u64::from(RELOAD - current);
            }
        }
    }
}
