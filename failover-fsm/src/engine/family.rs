//! Which protocol an [`Engine`](super::Engine) speaks: draft-12's DHCPv4 failover ([`V4`], the
//! default) or RFC 8156's DHCPv6 failover ([`V6`]).
//!
//! One engine runs both: the state machine, MCLT, timers, persistence, skew and update
//! requests are the same code. The family decides the wire format, the handshake checks,
//! the keep-alive ratio and the clock-skew limit, and which commands exist (`send_binding`
//! takes a v4 binding; PAUSED and SHUTDOWN exist only in draft-12).

use core::fmt::Debug;

pub(super) mod sealed {
    /// What the engine reads of a family. Sealed: the engine knows both wire formats.
    pub trait Sealed {
        /// RFC 8156 (DHCPv6) on the wire.
        const IS_V6: bool;
        /// Received BNDUPDs kept until their answer is written: RFC 8156's BNDREPLY echoes
        /// the binding (§7.6), draft-12's BNDACK only the addresses the engine keeps anyway.
        type Echoes<const N: usize>: super::super::wire6::EchoStore + Default + core::fmt::Debug;
    }
}

/// A failover protocol family: [`V4`] or [`V6`]. Sealed.
pub trait Family: sealed::Sealed + Copy + Default + Debug + Eq + 'static {}

/// DHCPv4 failover, draft-ietf-dhc-failover-12.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct V4;

/// DHCPv6 failover, RFC 8156: its wire format (`failover_proto::v6`), its state machine
/// ([`crate::v6::state`]: draft-12's without PAUSED and SHUTDOWN, three cells differ), a
/// CONTACT every quarter of the partner's keep-alive time (§6.5) and at most 5 s of clock
/// skew (§7.1). The engine reports states in draft-12's terms; [`crate::v6::state::from_v4`]
/// gives the RFC 8156 name. [`Config::dialect`](crate::Config::dialect) is set to
/// [`Dialect::Draft`](crate::Dialect::Draft): RFC 8156 follows the draft where they agree.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct V6;

impl sealed::Sealed for V4 {
    const IS_V6: bool = false;
    type Echoes<const N: usize> = super::wire6::NoEchoes;
}
impl Family for V4 {}

impl sealed::Sealed for V6 {
    const IS_V6: bool = true;
    type Echoes<const N: usize> = super::wire6::Echoes<N>;
}
impl Family for V6 {}
