//! An owned, bounded copy of a binding, for the engine's queues and events.

use core::net::Ipv4Addr;

use failover_proto::{Binding, BindingStatus, HardwareAddress, IpFlags};
use heapless::Vec;

use crate::accept::ClientIdentity;
use crate::time::UnixTime;

/// Longest client-identifier kept (DHCP option 61 data; ISC has no tighter limit, real ones are
/// under 20 bytes).
pub const MAX_CLIENT_ID: usize = 64;
/// Longest hardware address kept: the 16 bytes of BOOTP's `chaddr`.
pub const MAX_HW_ADDR: usize = 16;

/// A binding (§7.1): what the DHCP server hands the engine to send, and what the engine hands
/// back when the partner sends one.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct BindingData {
    /// assigned-IP-address, as four octets.
    pub address: [u8; 4],
    /// binding-status.
    pub status: BindingStatus,
    /// client-identifier (DHCP option 61 data), if the client sent one.
    pub client_identifier: Option<Vec<u8, MAX_CLIENT_ID>>,
    /// Hardware type and `chaddr` bytes, if known.
    pub hardware_address: Option<(u8, Vec<u8, MAX_HW_ADDR>)>,
    /// lease-expiration-time.
    pub lease_expiration_time: Option<UnixTime>,
    /// potential-expiration-time.
    pub potential_expiration_time: Option<UnixTime>,
    /// start-time-of-state of the binding.
    pub start_time_of_state: Option<UnixTime>,
    /// client-last-transaction-time.
    pub client_last_transaction_time: Option<UnixTime>,
    /// IP-flags (sent only when non-zero, as ISC does).
    pub ip_flags: IpFlags,
}

/// Where the engine reads our bindings when it writes their BNDUPDs: the caller's lease store.
///
/// The engine's queue holds addresses, not bindings ([`Engine::send_binding`] keeps a summary of
/// what was queued); [`Engine::poll_transmit`] asks for the binding of an address when its turn
/// comes and sends it as the store holds it then — the newest version, as ISC sends a lease's
/// current state. Return the same data that was handed to `send_binding` unless the record
/// changed since (a newer version is queued too, or the partner's binding was stored).
///
/// An address the store does not hold (`None`) is dropped from the queue and counted in
/// [`Counters::updates_dropped`](crate::engine::Counters::updates_dropped).
///
/// A slice of bindings is a source (found by address), for tests and small tables:
///
/// ```
/// use core::net::Ipv4Addr;
/// use failover_fsm::{BindingData, BindingSource, BindingStatus};
///
/// let table = [BindingData::new(Ipv4Addr::new(192, 0, 2, 1), BindingStatus::Free)];
/// assert!(table[..].binding(Ipv4Addr::new(192, 0, 2, 1)).is_some());
/// assert!(table[..].binding(Ipv4Addr::new(192, 0, 2, 2)).is_none());
/// ```
///
/// [`Engine::send_binding`]: crate::Engine::send_binding
/// [`Engine::poll_transmit`]: crate::Engine::poll_transmit
pub trait BindingSource {
    /// The binding of `address` as it goes to the partner now, or `None` if there is none.
    fn binding(&self, address: Ipv4Addr) -> Option<BindingData>;
}

impl<T: BindingSource + ?Sized> BindingSource for &T {
    fn binding(&self, address: Ipv4Addr) -> Option<BindingData> {
        (**self).binding(address)
    }
}

impl BindingSource for [BindingData] {
    fn binding(&self, address: Ipv4Addr) -> Option<BindingData> {
        let octets = address.octets();
        self.iter().rev().find(|b| b.address == octets).cloned()
    }
}

/// A binding field too long to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum BindingTooLong {
    /// The client-identifier exceeds [`MAX_CLIENT_ID`].
    ClientIdentifier,
    /// The hardware address exceeds [`MAX_HW_ADDR`].
    HardwareAddress,
}

impl core::fmt::Display for BindingTooLong {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            BindingTooLong::ClientIdentifier => "client-identifier longer than 64 bytes",
            BindingTooLong::HardwareAddress => "hardware address longer than 16 bytes",
        })
    }
}

impl core::error::Error for BindingTooLong {}

impl BindingData {
    /// A binding with only address and status.
    pub fn new(address: Ipv4Addr, status: BindingStatus) -> Self {
        BindingData {
            address: address.octets(),
            status,
            client_identifier: None,
            hardware_address: None,
            lease_expiration_time: None,
            potential_expiration_time: None,
            start_time_of_state: None,
            client_last_transaction_time: None,
            ip_flags: IpFlags::EMPTY,
        }
    }

    /// The address.
    pub fn ip(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.address)
    }

    /// Sets the client identity: client-identifier (optional) and Ethernet-like hardware address.
    pub fn with_client(
        mut self,
        client_identifier: Option<&[u8]>,
        htype: u8,
        chaddr: &[u8],
    ) -> Result<Self, BindingTooLong> {
        self.client_identifier = match client_identifier {
            Some(id) => Some(Vec::from_slice(id).map_err(|_| BindingTooLong::ClientIdentifier)?),
            None => None,
        };
        self.hardware_address = Some((
            htype,
            Vec::from_slice(chaddr).map_err(|_| BindingTooLong::HardwareAddress)?,
        ));
        Ok(self)
    }

    /// A copy of a binding decoded from the wire.
    #[inline]
    pub fn from_wire(b: &Binding<'_>) -> Result<Self, BindingTooLong> {
        Ok(BindingData {
            address: b.address.octets(),
            status: b.status,
            client_identifier: match b.client_identifier {
                Some(id) => {
                    Some(Vec::from_slice(id).map_err(|_| BindingTooLong::ClientIdentifier)?)
                }
                None => None,
            },
            hardware_address: match b.hardware_address {
                Some(h) => Some((
                    h.htype,
                    Vec::from_slice(h.address).map_err(|_| BindingTooLong::HardwareAddress)?,
                )),
                None => None,
            },
            lease_expiration_time: b.lease_expiration_time.map(UnixTime),
            potential_expiration_time: b.potential_expiration_time.map(UnixTime),
            start_time_of_state: b.start_time_of_state.map(UnixTime),
            client_last_transaction_time: b.client_last_transaction_time.map(UnixTime),
            ip_flags: b.ip_flags.unwrap_or_default(),
        })
    }

    /// The wire form, borrowing from `self`.
    pub fn to_wire(&self) -> Binding<'_> {
        Binding {
            client_identifier: self.client_identifier.as_deref(),
            hardware_address: self.hardware(),
            lease_expiration_time: self.lease_expiration_time.map(|t| t.0),
            potential_expiration_time: self.potential_expiration_time.map(|t| t.0),
            start_time_of_state: self.start_time_of_state.map(|t| t.0),
            client_last_transaction_time: self.client_last_transaction_time.map(|t| t.0),
            ip_flags: (self.ip_flags != IpFlags::EMPTY).then_some(self.ip_flags),
            ..Binding::new(self.ip(), self.status)
        }
    }

    /// The client it names: `ClientIdentity::of(&self.to_wire())` without building the wire
    /// form (once per acknowledgement, on the hot path).
    pub(crate) fn client(&self) -> ClientIdentity {
        ClientIdentity::new(self.client_identifier.as_deref(), self.hardware())
    }

    fn hardware(&self) -> Option<HardwareAddress<'_>> {
        self.hardware_address
            .as_ref()
            .map(|(htype, a)| HardwareAddress {
                htype: *htype,
                address: a,
            })
    }

    /// The same binding with every absolute time shifted by `skew` seconds (partner clock →
    /// ours, §5.10).
    #[must_use]
    pub fn shifted(mut self, skew: i64) -> Self {
        self.shift(skew);
        self
    }

    /// [`BindingData::shifted`] in place.
    pub fn shift(&mut self, skew: i64) {
        let shift = |t: Option<UnixTime>| {
            t.map(|t| {
                if t.0 == 0 {
                    t // 0 means "unknown" (ISC sends it for never-used leases)
                } else {
                    UnixTime(u32::try_from((i64::from(t.0) + skew).max(0)).unwrap_or(u32::MAX))
                }
            })
        };
        self.lease_expiration_time = shift(self.lease_expiration_time);
        self.potential_expiration_time = shift(self.potential_expiration_time);
        self.start_time_of_state = shift(self.start_time_of_state);
        self.client_last_transaction_time = shift(self.client_last_transaction_time);
    }
}
