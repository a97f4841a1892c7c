//! How the failover link is carried: plain TCP, or TLS with the `tls` feature. A relationship
//! says which ([`crate::PeerBuilder::plaintext`], `PeerBuilder::tls`); there is no
//! default, so that plain TCP is never had by forgetting to configure TLS.

use std::fmt;

/// The transport a relationship uses, as its status reports it ([`crate::Handle::transport`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Transport {
    /// Plain TCP, as the draft and ISC dhcpd speak it: anyone on the path reads the lease
    /// database and can inject updates.
    Plain,
    /// TLS 1.3 with a certificate on each side (the `tls` module).
    #[cfg(feature = "tls")]
    Tls {
        /// The identity the partner's certificate must name (a DNS name or an IP address).
        partner: String,
    },
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Transport::Plain => f.write_str("plain TCP"),
            #[cfg(feature = "tls")]
            Transport::Tls { partner } => write!(f, "TLS 1.3, partner {partner}"),
        }
    }
}

/// [`crate::PeerBuilder::start`] was called without choosing the transport: plain TCP must be
/// asked for ([`crate::PeerBuilder::plaintext`]), TLS configured (`PeerBuilder::tls`).
/// It comes as the inner error of an `io::Error` of kind `InvalidInput`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransportNotChosen;

impl fmt::Display for TransportNotChosen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "no transport chosen for the failover link: PeerBuilder::plaintext() or PeerBuilder::tls()",
        )
    }
}

impl std::error::Error for TransportNotChosen {}

/// The transport as configured (what [`Transport`] reports, with what TLS needs).
#[derive(Debug, Clone)]
pub(crate) enum Security {
    Plain,
    #[cfg(feature = "tls")]
    Tls(crate::tls::TlsConfig),
}

impl Security {
    /// Whether a listener can handshake connections for both alike: both plain, or TLS with
    /// one configuration.
    pub(crate) fn same_transport(&self, other: &Security) -> bool {
        match (self, other) {
            (Security::Plain, Security::Plain) => true,
            #[cfg(feature = "tls")]
            (Security::Tls(a), Security::Tls(b)) => a.same_as(b),
            #[cfg(feature = "tls")]
            _ => false,
        }
    }

    pub(crate) fn transport(&self) -> Transport {
        match self {
            Security::Plain => Transport::Plain,
            #[cfg(feature = "tls")]
            Security::Tls(t) => Transport::Tls {
                partner: partner_text(t.partner()),
            },
        }
    }
}

#[cfg(feature = "tls")]
fn partner_text(name: &crate::tls::ServerName<'_>) -> String {
    match name {
        crate::tls::ServerName::DnsName(d) => d.as_ref().to_string(),
        crate::tls::ServerName::IpAddress(ip) => std::net::IpAddr::from(*ip).to_string(),
        other => format!("{other:?}"),
    }
}
