//! When to dial the partner again: a delay that doubles from `min` up to `max` after each
//! failure, a longer one after the partner refused us, each with jitter. Shared by the DHCPv4
//! task and the DHCPv6 one ([`crate::v6`], RFC 8156 §6.1: the retry interval "SHOULD be
//! configurable" and slower after rejections).

use std::time::Duration;

use failover_fsm::RejectReason;

/// Whether the partner refused us for `reason` (a rejecting CONNECTACK / CONNECTREPLY or a
/// DISCONNECT): a configuration that does not match theirs, which a quick retry will not
/// change. The next dial then waits [`Backoff::after_reject`].
pub(crate) fn refused_us(reason: RejectReason) -> bool {
    matches!(
        reason,
        RejectReason::InvalidPartner
            | RejectReason::TimeMismatch
            | RejectReason::InvalidMclt
            | RejectReason::HbaConflict
            | RejectReason::VersionMismatch
    )
}

/// Reconnect timing.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Backoff {
    /// First delay after a failure (doubles up to `max`).
    pub(crate) min: Duration,
    /// Longest delay.
    pub(crate) max: Duration,
    /// Delay after the partner rejected us or sent DISCONNECT (draft §7.9).
    pub(crate) after_reject: Duration,
}

/// The delays of one relationship's dials.
#[derive(Debug)]
pub(crate) struct Redial {
    timing: Backoff,
    /// The next failure's delay (before jitter).
    next: Duration,
    rng: u64,
}

impl Redial {
    /// `seed` varies the jitter per relationship.
    pub(crate) fn new(timing: Backoff, seed: u32) -> Self {
        Redial {
            timing,
            next: timing.min,
            rng: u64::from(seed) | 1,
        }
    }

    /// A connection came up: the next failure starts again from `min`.
    pub(crate) fn connected(&mut self) {
        self.next = self.timing.min;
    }

    /// How long to wait before the next dial, after a failure (`after_reject`: the partner
    /// refused us).
    pub(crate) fn delay(&mut self, after_reject: bool) -> Duration {
        let base = if after_reject {
            self.timing.after_reject
        } else {
            self.next
        };
        self.next = (self.next * 2).min(self.timing.max);
        self.jitter(base)
    }

    fn jitter(&mut self, d: Duration) -> Duration {
        // xorshift: ±25 % so that two peers do not dial each other in lockstep.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let spread = u64::try_from(d.as_millis() / 2).unwrap_or(u64::MAX);
        let offset = if spread == 0 { 0 } else { self.rng % spread };
        d - d / 4 + Duration::from_millis(offset)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_max_with_jitter_and_starts_over_once_connected() {
        let ms = Duration::from_millis;
        let mut r = Redial::new(
            Backoff {
                min: ms(100),
                max: ms(400),
                after_reject: ms(1000),
            },
            7,
        );
        let within = |d: Duration, base: u64| d >= ms(base * 3 / 4) && d <= ms(base * 5 / 4);
        for base in [100, 200, 400, 400] {
            let d = r.delay(false);
            assert!(within(d, base), "{d:?} for {base}");
        }
        assert!(within(r.delay(true), 1000));
        r.connected();
        assert!(within(r.delay(false), 100));
    }
}
