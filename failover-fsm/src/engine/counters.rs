//! What operators count (the Windows failover performance counters, ISC's and Kea's
//! statistics): messages, reject-reasons, state entries, dropped updates. Plain integers that
//! only grow (wrapping after 2³² − 1), kept by the engine and shown in [`super::Status`].

use failover_proto::{RejectReason, ServerState};

/// Reject-reason codes counted one by one: 0..=21, the draft's table (§12.21) with the digest
/// codes; every other code (254, and unknown ones) shares the last slot.
pub const REJECT_SLOTS: usize = 23;

/// The engine's counters since it was created.
///
/// Rejects are counted per reject-reason carried: one per binding in a BNDACK, one per
/// rejecting CONNECTACK, one per DISCONNECT (whose reason says why the connection ends).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Counters {
    /// BNDUPD messages we sent.
    pub bndupd_sent: u32,
    /// BNDUPD messages the partner sent us on a live connection (§8.3).
    pub bndupd_received: u32,
    /// BNDACK messages we sent.
    pub bndack_sent: u32,
    /// BNDACK messages the partner sent us on a live connection.
    pub bndack_received: u32,
    /// Entries into COMMUNICATIONS-INTERRUPTED.
    pub communications_interrupted: u32,
    /// Entries into PARTNER-DOWN (by the operator, the safe period, or a restart in it).
    pub partner_down: u32,
    /// Entries into RECOVER.
    pub recover: u32,
    /// Our binding updates taken out of the queue without the partner's acceptance: superseded
    /// by the partner's newer binding of the address (dropped unsent, or not sent again after
    /// a reconnect), or rejected by the partner (§7.2.2: not sent again at once; the caller
    /// may queue its record again later). A full queue drops nothing: the caller is refused
    /// ([`super::EngineError::QueueFull`]) and keeps the binding.
    pub updates_dropped: u32,
    rejects_sent: [u32; REJECT_SLOTS],
    rejects_received: [u32; REJECT_SLOTS],
}

impl Counters {
    /// Reject-reasons `reason` we sent (BNDACK, CONNECTACK, DISCONNECT).
    pub fn rejects_sent(&self, reason: RejectReason) -> u32 {
        self.rejects_sent.get(slot(reason)).copied().unwrap_or(0)
    }

    /// Reject-reasons `reason` the partner sent us (BNDACK, CONNECTACK, DISCONNECT).
    pub fn rejects_received(&self, reason: RejectReason) -> u32 {
        self.rejects_received
            .get(slot(reason))
            .copied()
            .unwrap_or(0)
    }

    /// Every reject-reason we sent, in total.
    pub fn rejects_sent_total(&self) -> u32 {
        self.rejects_sent.iter().fold(0, |a, n| a.wrapping_add(*n))
    }

    /// Every reject-reason the partner sent, in total.
    pub fn rejects_received_total(&self) -> u32 {
        self.rejects_received
            .iter()
            .fold(0, |a, n| a.wrapping_add(*n))
    }

    /// The reasons counted at least once in either direction, as (reason, sent, received):
    /// what a metrics page lists. The last slot is reported as
    /// [`RejectReason::UnknownError`] (254).
    pub fn rejects(&self) -> impl Iterator<Item = (RejectReason, u32, u32)> + '_ {
        self.rejects_sent
            .iter()
            .zip(self.rejects_received.iter())
            .enumerate()
            .filter(|(_, (s, r))| **s != 0 || **r != 0)
            .map(|(i, (s, r))| (reason_of(i), *s, *r))
    }

    pub(super) fn reject_sent(&mut self, reason: RejectReason) {
        bump_slot(&mut self.rejects_sent, reason);
    }

    pub(super) fn reject_received(&mut self, reason: RejectReason) {
        bump_slot(&mut self.rejects_received, reason);
    }

    /// We entered `state`.
    pub(super) fn entered(&mut self, state: ServerState) {
        match state {
            ServerState::CommunicationsInterrupted => bump(&mut self.communications_interrupted),
            ServerState::PartnerDown => bump(&mut self.partner_down),
            ServerState::Recover => bump(&mut self.recover),
            _ => {}
        }
    }
}

/// Adds one (wrapping, as counters of this kind do; a rate stays right across the wrap).
pub(super) fn bump(n: &mut u32) {
    *n = n.wrapping_add(1);
}

fn bump_slot(slots: &mut [u32; REJECT_SLOTS], reason: RejectReason) {
    if let Some(n) = slots.get_mut(slot(reason)) {
        bump(n);
    }
}

fn slot(reason: RejectReason) -> usize {
    let code = usize::from(u8::from(reason));
    code.min(REJECT_SLOTS - 1)
}

fn reason_of(slot: usize) -> RejectReason {
    match u8::try_from(slot) {
        Ok(code) if slot < REJECT_SLOTS - 1 => RejectReason::from(code),
        _ => RejectReason::UnknownError,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_a_slot_and_the_rest_share_the_last() {
        let mut c = Counters::default();
        c.reject_sent(RejectReason::MissingDigest);
        c.reject_sent(RejectReason::UnknownError);
        c.reject_sent(RejectReason::from(200));
        assert_eq!(c.rejects_sent(RejectReason::MissingDigest), 1);
        assert_eq!(c.rejects_sent(RejectReason::UnknownError), 2);
        assert_eq!(c.rejects_sent_total(), 3);
        let listed: heapless::Vec<_, 4> = c.rejects().collect();
        assert_eq!(
            &listed[..],
            &[
                (RejectReason::MissingDigest, 1, 0),
                (RejectReason::UnknownError, 2, 0)
            ]
        );
    }
}
