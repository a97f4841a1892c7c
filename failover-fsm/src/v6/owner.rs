//! Who owns an available lease (§4.2): addresses by their last bit, fixed and without messages
//! (independent allocation, §4.2.1); delegable prefixes by binding-status, FREE the primary's
//! and FREE-BACKUP the secondary's (proportional allocation, §4.2.2).
//!
//! ```
//! use core::net::Ipv6Addr;
//! use failover_fsm::Role;
//! use failover_fsm::v6::owner::{Kind, address_owner, freed_status};
//! use failover_proto::v6::BindingStatus;
//!
//! let a = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10);
//! assert_eq!(address_owner(a), Role::Secondary); // last bit 0
//! // A freed address goes back to its owner, a freed prefix to the primary (§7.2, §4.2.2).
//! assert_eq!(freed_status(Kind::Address(a)), BindingStatus::FreeBackup);
//! assert_eq!(freed_status(Kind::Prefix), BindingStatus::Free);
//! ```

use core::net::Ipv6Addr;

use failover_proto::Role;
use failover_proto::v6::BindingStatus;

/// What kind of lease: an address (its owner fixed by the address) or a delegable prefix
/// (owned by whoever its status says).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// An IPv6 address (IA_NA, IA_TA).
    Address(Ipv6Addr),
    /// A delegable prefix (IA_PD).
    Prefix,
}

#[cfg(feature = "defmt")]
impl defmt::Format for Kind {
    fn format(&self, f: defmt::Formatter<'_>) {
        match self {
            Kind::Address(a) => defmt::write!(f, "Address({=[u8]:02x})", a.octets()),
            Kind::Prefix => defmt::write!(f, "Prefix"),
        }
    }
}

/// The server that may allocate `address` (§4.2.1.1): the primary when its last bit (bit 127)
/// is 1, the secondary when it is 0.
pub const fn address_owner(address: Ipv6Addr) -> Role {
    let [.., last] = address.octets();
    if last & 1 == 1 {
        Role::Primary
    } else {
        Role::Secondary
    }
}

/// The status of leases available to `role`: FREE for the primary, FREE-BACKUP for the
/// secondary (§4.1, §7.2 transitions 1 and 2).
pub const fn free_status(role: Role) -> BindingStatus {
    match role {
        Role::Primary => BindingStatus::Free,
        Role::Secondary => BindingStatus::FreeBackup,
    }
}

/// Who may allocate an available lease of `kind` whose status is `status` (FREE,
/// FREE-BACKUP or PENDING-FREE): for an address its [`address_owner`] whatever the status
/// says (§4.2.1: no message moves addresses; RFC 8156's Figure 3 and §7.2 disagree on
/// FREE vs FREE-BACKUP for them, so either is taken on the wire — the reading the RFC's own
/// text §4.2.1.1 supports); for a prefix FREE-BACKUP is the secondary's, FREE and
/// PENDING-FREE the primary's (§4.2.2). `None` for a status that is not available.
pub const fn available_to(kind: Kind, status: BindingStatus) -> Option<Role> {
    match status {
        BindingStatus::Free | BindingStatus::FreeBackup | BindingStatus::PendingFree => {
            Some(match kind {
                Kind::Address(a) => address_owner(a),
                Kind::Prefix => match status {
                    BindingStatus::FreeBackup => Role::Secondary,
                    _ => Role::Primary,
                },
            })
        }
        _ => None,
    }
}

/// The status a lease takes when it leaves PENDING-FREE (§7.2 transitions 5 and 6): an
/// address goes back to its owner (FREE for the primary's, FREE-BACKUP for the secondary's,
/// §4.2.1.1); a prefix to the primary (FREE), which may give it to the secondary again
/// (§4.2.2). Where Figure 3 and the transition list of §7.2 disagree, this follows the
/// ownership rules of §4.2.
pub const fn freed_status(kind: Kind) -> BindingStatus {
    match kind {
        Kind::Address(a) => free_status(address_owner(a)),
        Kind::Prefix => BindingStatus::Free,
    }
}
