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
    /// Primary: the MCLT the secondary last accepted, while smaller than ours. Leases stay
    /// within it until a CONNECTACK accepts the new one.
    unconfirmed: Option<u32>,
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
            (Role::Primary, Some(old)) if old > current => (Some((old, None)), None),
            (Role::Primary, Some(old)) if old < current => (None, Some(old)),
            _ => (None, None),
        };
        Mclt {
            current,
            agreed,
            before,
            unconfirmed,
        }
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
        self.unconfirmed
            .map_or(self.current, |m| m.min(self.current))
    }

    /// A secondary learns the primary's MCLT from CONNECT (§7.8.2 step 7). `granted` says
    /// whether leases may have been granted under the old one (anything persisted): then they
    /// may run that long from now (§5.2.1).
    pub(super) fn learn(&mut self, mclt: u32, wall: UnixTime, granted: bool) {
        if mclt < self.current && (self.agreed.is_some() || granted) {
            let m = self.wait(wall);
            self.before = Some((m, Some(wall.plus(m))));
        }
        self.current = mclt;
    }

    /// Both servers now agree on the current MCLT: the clock starts on a larger one that leases
    /// granted before may still run under. Returns the MCLT to persist when it changed.
    pub(super) fn agree(&mut self, wall: UnixTime) -> Option<u32> {
        if let Some((m, None)) = self.before {
            self.before = Some((m, Some(wall.plus(m))));
        }
        self.unconfirmed = None;
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
    fn a_raised_primary_mclt_bounds_leases_by_the_old_one_until_agreed() {
        let mut m = Mclt::new(Role::Primary, 3600, Some(600));
        assert_eq!(m.lease(), 600);
        m.agree(UnixTime(0));
        assert_eq!(m.lease(), 3600);
    }
}
