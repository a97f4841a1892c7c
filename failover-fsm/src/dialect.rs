//! Which rule book the engine follows where draft-12 and ISC dhcpd differ.

/// Where draft-12 and ISC dhcpd 4.4 disagree, which one to follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Dialect {
    /// Behave so an ISC dhcpd 4.4 partner is happy (RECOVER-WAIT = 254, UPDREQALL in RECOVER,
    /// ISC's transition and acceptance tables, HBA bit = primary serves, one binding per BNDUPD).
    #[default]
    Isc,
    /// The text of draft-12.
    Draft,
}
