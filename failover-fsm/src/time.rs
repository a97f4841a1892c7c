//! Time as the engine sees it: a monotonic instant for timers and the wall clock for the draft's
//! absolute times. The caller supplies both; the engine never reads a clock.

use core::fmt;
use core::ops::{Add, Sub};
use core::time::Duration;

/// A monotonic point in time, in milliseconds from an origin the caller chooses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Instant(u64);

impl Instant {
    /// The origin.
    pub const ZERO: Instant = Instant(0);

    /// An instant `millis` milliseconds after the origin.
    pub const fn from_millis(millis: u64) -> Self {
        Instant(millis)
    }

    /// An instant `secs` seconds after the origin.
    pub const fn from_secs(secs: u64) -> Self {
        Instant(secs.saturating_mul(1000))
    }

    /// Milliseconds since the origin.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// Time from `earlier` to `self`, zero if `earlier` is later.
    pub const fn saturating_duration_since(self, earlier: Instant) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;

    fn add(self, d: Duration) -> Instant {
        Instant(
            self.0
                .saturating_add(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        )
    }
}

impl Sub<Duration> for Instant {
    type Output = Instant;

    fn sub(self, d: Duration) -> Instant {
        Instant(
            self.0
                .saturating_sub(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        )
    }
}

/// An optional [`UnixTime`] in four bytes, for the engine's queues: 0 stands for none, as on
/// the wire, where ISC sends 0 for "unknown".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct OptTime(u32);

impl OptTime {
    pub(crate) const fn new(t: Option<UnixTime>) -> Self {
        match t {
            Some(t) => OptTime(t.0),
            None => OptTime(0),
        }
    }

    pub(crate) const fn get(self) -> Option<UnixTime> {
        if self.0 == 0 {
            None
        } else {
            Some(UnixTime(self.0))
        }
    }
}

/// Wall-clock time: seconds since 1970-01-01 UTC, as the draft's absolute times (§6.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct UnixTime(pub u32);

impl UnixTime {
    /// `secs` seconds later, saturating.
    #[must_use]
    pub const fn plus(self, secs: u32) -> UnixTime {
        UnixTime(self.0.saturating_add(secs))
    }

    /// `secs` seconds earlier, saturating at 0.
    #[must_use]
    pub const fn minus(self, secs: u32) -> UnixTime {
        UnixTime(self.0.saturating_sub(secs))
    }

    /// Seconds from `earlier` to `self`, 0 if `earlier` is later.
    pub const fn secs_since(self, earlier: UnixTime) -> u32 {
        self.0.saturating_sub(earlier.0)
    }
}

impl fmt::Display for UnixTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "@{}", self.0)
    }
}
