//! The MCLT (§5.2.1) while it settles between the two servers: the one in force, the one both
//! servers last agreed on, and the larger or smaller ones leases may still run under.

use failover_proto::Role;

use crate::time::UnixTime;

/// The MCLT and its history.
#[derive(Debug, Clone)]
pub(super) struct Mclt {
    /// The MCLT in force (a secondary's is the primary's, once learned).
    current: u32,
    /// The MCLT last persisted as agreed ([`super::Persisted::mclt`]).
    agreed: Option<u32>,
    /// A larger MCLT than `current` that leases may still run under (the primary's MCLT was
    /// lowered): safety waits use it until the wall time given, `None` meaning until the
    /// secondary has heard of the change, plus that MCLT.
    before: Option<(u32, Option<UnixTime>)>,
    /// Primary: the MCLT the secondary last accepted, while smaller than ours (`u32::MAX`
    /// otherwise: no bound). Leases stay within it until a CONNECTACK accepts the new one.
    unconfirmed: u32,
    /// The latest potential-expiration-time the partner sent us (ours to acknowledge), from
    /// our store at start ([`super::Engine::restore_received_pet`]) and from its updates
    /// since. The partner may extend a lease to an acknowledged PET plus the MCLT (§5.2.1):
    /// under a larger MCLT, until this time plus that MCLT. 0 until one is known.
    reach: UnixTime,
}

impl Mclt {
    /// At start: `configured` is ours, `agreed` the one last persisted.
    pub(super) fn new(role: Role, configured: u32, agreed: Option<u32>) -> Self {
        let current = match (role, agreed) {
            (Role::Secondary, Some(m)) => m,
            _ => configured,
        };
        // A primary restarted with another MCLT than its secondary knows (§5.2.1).
        let (before, unconfirmed) = match (role, agreed) {
            (Role::Primary, Some(old)) if old > current => (Some((old, None)), u32::MAX),
            (Role::Primary, Some(old)) if old < current => (None, old),
            _ => (None, u32::MAX),
        };
        Mclt {
            current,
            agreed,
            before,
            unconfirmed,
            reach: UnixTime(0),
        }
    }

    /// The partner sent a binding with potential-expiration-time `pet`.
    pub(super) fn note_received_pet(&mut self, pet: UnixTime) {
        self.reach = self.reach.max(pet);
    }

    /// When a larger MCLT `m` that leases may have been granted under stops mattering, if the
    /// partner learns the smaller one at `wall`: a lease it granted before may end up to `m`
    /// after the later of `wall` and the latest PET we acknowledged (simulator seed 80573806:
    /// the secondary extended a lease in COMMUNICATIONS-INTERRUPTED to its acknowledged PET
    /// plus the old MCLT, 6 s past `wall` plus it, and the restarted primary, whose MCLT was
    /// lowered, was about to hand the address to another client in PARTNER-DOWN).
    fn old_leases_end(&self, m: u32, wall: UnixTime) -> UnixTime {
        self.reach.max(wall).plus(m)
    }

    /// The MCLT in force.
    pub(super) fn current(&self) -> u32 {
        self.current
    }

    /// The MCLT for safety waits at `wall` (see [`super::Status::mclt`]).
    pub(super) fn wait(&self, wall: UnixTime) -> u32 {
        match self.before {
            Some((m, until)) if until.is_none_or(|u| wall < u) => m.max(self.current),
            _ => self.current,
        }
    }

    /// The MCLT that bounds leases granted now (see [`super::Status::lease_mclt`]).
    pub(super) fn lease(&self) -> u32 {
        self.unconfirmed.min(self.current)
    }

    /// A secondary learns the primary's MCLT from CONNECT (§7.8.2 step 7). `granted` says
    /// whether leases may have been granted under the old one (anything persisted): then they
    /// may run that long from now (§5.2.1).
    pub(super) fn learn(&mut self, mclt: u32, wall: UnixTime, granted: bool) {
        if mclt < self.current && (self.agreed.is_some() || granted) {
            let m = self.wait(wall);
            self.before = Some((m, Some(self.old_leases_end(m, wall))));
        }
        self.current = mclt;
    }

    /// Both servers now agree on the current MCLT: the clock starts on a larger one that leases
    /// granted before may still run under. Returns the MCLT to persist when it changed.
    pub(super) fn agree(&mut self, wall: UnixTime) -> Option<u32> {
        if let Some((m, None)) = self.before {
            self.before = Some((m, Some(self.old_leases_end(m, wall))));
        }
        self.unconfirmed = u32::MAX;
        if self.agreed == Some(self.current) {
            return None;
        }
        self.agreed = Some(self.current);
        self.agreed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lowered_primary_mclt_keeps_the_old_wait_until_agreed_plus_the_old_mclt() {
        let mut m = Mclt::new(Role::Primary, 600, Some(3600));
        assert_eq!(m.wait(UnixTime(0)), 3600);
        assert_eq!(m.agree(UnixTime(100)), Some(600));
        assert_eq!(m.wait(UnixTime(3699)), 3600);
        assert_eq!(m.wait(UnixTime(3700)), 600);
        assert_eq!(m.agree(UnixTime(200)), None);
    }

    #[test]
    fn a_lowered_mclt_keeps_the_old_wait_until_the_latest_acknowledged_pet_plus_the_old_mclt() {
        let mut m = Mclt::new(Role::Primary, 20, Some(30));
        m.note_received_pet(UnixTime(705));
        m.note_received_pet(UnixTime(650));
        assert_eq!(m.agree(UnixTime(699)), Some(20));
        // The partner may have extended a lease to 705 + 30 under the old MCLT.
        assert_eq!(m.wait(UnixTime(734)), 30);
        assert_eq!(m.wait(UnixTime(735)), 20);
        // A secondary that learns a lowered MCLT, likewise.
        let mut s = Mclt::new(Role::Secondary, 0, Some(300));
        s.note_received_pet(UnixTime(2_000));
        s.learn(60, UnixTime(1_000), true);
        assert_eq!(s.current(), 60);
        assert_eq!(s.wait(UnixTime(2_299)), 300);
        assert_eq!(s.wait(UnixTime(2_300)), 60);
    }

    #[test]
    fn a_raised_primary_mclt_bounds_leases_by_the_old_one_until_agreed() {
        let mut m = Mclt::new(Role::Primary, 3600, Some(600));
        assert_eq!(m.lease(), 600);
        m.agree(UnixTime(0));
        assert_eq!(m.lease(), 3600);
    }
}
