//! The clock skew estimate of one connection (§5.10): our clock minus the partner's.

use crate::time::UnixTime;

/// Bounds on the skew, measured from the partner's message header times.
#[derive(Debug, Clone, Default)]
pub(super) struct Skew {
    /// Upper bound: the smallest difference seen on arrival (a message's transit time adds to
    /// what it measures, never subtracts).
    hi: Option<i64>,
    /// Lower bound: from answers to messages of ours (see [`Skew::raise_floor`]).
    floor: Option<i64>,
    /// When we sent CONNECT (primary) or an accepting CONNECTACK (secondary), our clock.
    handshake_sent: Option<u32>,
}

impl Skew {
    /// A new connection: nothing measured yet.
    pub(super) fn reset(&mut self) {
        *self = Skew::default();
    }

    /// The estimate for operators (the upper bound).
    pub(super) fn estimate(&self) -> Option<i64> {
        self.hi
    }

    /// The lower bound, once an answer to a message of ours has come.
    pub(super) fn lower(&self) -> Option<i64> {
        self.floor
    }

    /// We sent CONNECT or an accepting CONNECTACK at `wall` (our clock): the partner's next
    /// message bounds the skew from below.
    pub(super) fn handshake_sent(&mut self, wall: u32) {
        self.handshake_sent = Some(wall);
    }

    /// Measures a message's header time at `wall`; returns this message's own measurement, for
    /// the CONNECT / CONNECTACK check.
    ///
    /// Taking the last measurement (rather than the smallest) let a slow STATE inflate the
    /// estimate by seconds, and the received binding times shifted by it reordered a partner's
    /// RELEASED after our newer lease of the same client — found by the simulator.
    pub(super) fn measure(&mut self, wall: UnixTime, header_time: u32) -> i64 {
        let skew = i64::from(wall.0) - i64::from(header_time);
        self.hi = Some(self.hi.map_or(skew, |s| s.min(skew)));
        // The first message the partner sent after it had ours (the CONNECTACK answering our
        // CONNECT, or the primary's STATE after our CONNECTACK) bounds the skew from below.
        if self.floor.is_none()
            && let Some(sent) = self.handshake_sent
        {
            self.floor = Some(i64::from(sent) - i64::from(header_time));
        }
        skew
    }

    /// Refines the lower bound with an answer (header time `answered_at`) to a message of ours
    /// sent at `sent` (§5.10: "upon receipt of each message, the delta time ... is used to
    /// refine"). A latency spike during the handshake leaves a floor far below the skew, so 0
    /// fitted between the bounds and no correction was applied; the lease of a partner whose
    /// clock was 10 s behind then ended 10 s early here (simulator, seed 767018). Kept at most
    /// the upper bound, so a clock stepped mid-connection cannot cross the bounds.
    pub(super) fn raise_floor(&mut self, sent: u32, answered_at: u32) {
        if let (Some(lo), Some(hi)) = (self.floor, self.hi) {
            let measured = i64::from(sent) - i64::from(answered_at);
            self.floor = Some(lo.max(measured.min(hi)));
        }
    }

    /// The correction for the partner's times (§5.10), as far as the messages prove it. A
    /// message's header time, read on arrival, bounds the skew from above (plus its transit
    /// time); the answer to one of ours bounds it from below (minus the answer's transit time).
    /// Times are whole seconds on both sides, so each bound is good to a second. No correction
    /// when 0 fits within the bounds: a latency spike at connection time must not shift the
    /// partner's times by the transit delay, which reorders a release and a renewal made a
    /// second apart (found by the `pair` fuzz target). Otherwise the upper bound, the smallest
    /// difference seen on arrival: both servers measure it the same way, so their corrections
    /// mirror each other and they order two events a second apart alike (the bound nearer 0,
    /// or the middle rounded, made each reject the other's update: seeds 528901, 21240).
    pub(super) fn correction(&self) -> Option<i64> {
        let hi = self.hi?;
        if let Some(lo) = self.floor
            && lo - 1 <= 0
            && 0 <= hi + 1
        {
            return None;
        }
        Some(hi).filter(|s| *s != 0)
    }

    /// How much later than taken the partner's times may fall in our clock, seconds: the
    /// upper bound beyond the correction applied (none, while 0 fits between the bounds).
    pub(super) fn unproven_lateness(&self) -> u32 {
        let applied = self.correction().unwrap_or(0);
        self.hi
            .map_or(0, |hi| u32::try_from(hi - applied).unwrap_or(0))
    }

    /// How far the partner's corrected times may still be off ours, seconds: the skew bounds
    /// around the correction applied, plus a second for whole-second times.
    pub(super) fn uncertainty(&self) -> u32 {
        let applied = self.correction().unwrap_or(0);
        let off = match (self.hi, self.floor) {
            (Some(hi), Some(lo)) => (hi - applied).abs().max((applied - lo).abs()),
            _ => 0,
        };
        u32::try_from(off + 1).unwrap_or(u32::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_correction_while_zero_fits_between_the_bounds() {
        let mut s = Skew::default();
        s.handshake_sent(1000);
        // Answer stamped 995 arrives at 1010: skew between 5 and 15.
        assert_eq!(s.measure(UnixTime(1010), 995), 15);
        assert_eq!(s.correction(), Some(15));
        let mut s = Skew::default();
        s.handshake_sent(1000);
        s.measure(UnixTime(1003), 1001); // bounds -1 ..= 2
        assert_eq!(s.correction(), None);
        assert_eq!(s.uncertainty(), 3);
        assert_eq!(s.unproven_lateness(), 2);
    }

    #[test]
    fn a_slow_handshake_leaves_the_partners_times_up_to_the_upper_bound_late() {
        // Our CONNECT took 11 s, the answer came at once: skew between -1 and 10, unproven.
        let mut s = Skew::default();
        s.handshake_sent(1000);
        s.measure(UnixTime(1011), 1001);
        assert_eq!(s.correction(), None);
        assert_eq!(s.unproven_lateness(), 10);
        // An answer to one of ours proves it: corrected, nothing left unproven.
        s.raise_floor(1011, 1001);
        assert_eq!(s.correction(), Some(10));
        assert_eq!(s.unproven_lateness(), 0);
        // A partner ahead of us: its times are early at worst, never late.
        let mut s = Skew::default();
        s.handshake_sent(1000);
        s.measure(UnixTime(1000), 1010);
        assert_eq!(s.unproven_lateness(), 0);
    }
}
