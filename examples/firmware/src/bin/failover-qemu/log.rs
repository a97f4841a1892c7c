//! One set of logging macros, two back ends: text over semihosting, or defmt frames over
//! semihosting (feature `defmt`) that the host decodes with `defmt-print`. Format strings are
//! written so that both accept them: `{}` with integers and `&str` only.

/// A line of the run's report (always printed).
#[cfg(not(feature = "defmt"))]
macro_rules! say {
    ($($t:tt)*) => { cortex_m_semihosting::hprintln!($($t)*) };
}
#[cfg(feature = "defmt")]
macro_rules! say {
    ($($t:tt)*) => { defmt::println!($($t)*) };
}

/// What the engine did (state changes, actions, events).
#[cfg(not(feature = "defmt"))]
macro_rules! trace {
    ($($t:tt)*) => { cortex_m_semihosting::hprintln!($($t)*) };
}
#[cfg(feature = "defmt")]
macro_rules! trace {
    ($($t:tt)*) => { defmt::info!($($t)*) };
}

pub(crate) use {say, trace};

/// Logs an engine value: with defmt through its `defmt::Format` impl (what the feature is
/// for), in text through `Debug`.
#[cfg(feature = "defmt")]
pub fn value<T: defmt::Format>(what: &str, v: &T) {
    defmt::info!("{=str}: {}", what, v);
}
#[cfg(not(feature = "defmt"))]
pub fn value<T: core::fmt::Debug>(what: &str, v: &T) {
    cortex_m_semihosting::hprintln!("{}: {:?}", what, v);
}
