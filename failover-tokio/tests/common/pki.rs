//! A test PKI made at test time (nothing secret checked in): a CA, peer certificates, an
//! expired one and one of another identity (tests/tls.rs, tests/v6_connection.rs).
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::time::Duration;

use failover_tokio::TlsConfig;
use failover_tokio::tls::{CertificateDer, PrivateKeyDer, partner_name};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

/// The secondary's identity, as an IP address SAN (the primary pins it so).
pub(crate) const SECONDARY_ID: &str = "127.0.0.1";
/// The primary's identity, as a DNS name SAN (the secondary pins it so).
pub(crate) const PRIMARY_ID: &str = "primary.test";

// ---- certificates ----------------------------------------------------------------------

pub(crate) struct Ca {
    pub(crate) issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    pub(crate) fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        Ca {
            issuer: CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap(),
        }
    }

    pub(crate) fn der(&self) -> CertificateDer<'static> {
        self.issuer.der().clone()
    }

    /// A peer certificate naming `identity`, usable as server and client; `expired`: valid
    /// through 2021 only.
    pub(crate) fn leaf(&self, identity: &str, expired: bool) -> Leaf {
        let mut params = CertificateParams::new(vec![identity.to_string()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, identity);
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert: cert.der().clone(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            key: PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        }
    }
}

pub(crate) struct Leaf {
    pub(crate) cert: CertificateDer<'static>,
    pub(crate) key: PrivateKeyDer<'static>,
    pub(crate) cert_pem: String,
    pub(crate) key_pem: String,
}

/// `leaf` as our certificate, `ca` as the partner's CA, `partner` its pinned identity.
pub(crate) fn tls(leaf: &Leaf, ca: &Ca, partner: &str) -> TlsConfig {
    TlsConfig::new(
        vec![leaf.cert.clone()],
        leaf.key.clone_key(),
        vec![ca.der()],
        partner_name(partner).unwrap(),
    )
    .unwrap()
    .handshake_timeout(Duration::from_secs(2))
}

/// The CA and the two right peers' certificates.
pub(crate) struct Pki {
    pub(crate) ca: Ca,
    pub(crate) primary: Leaf,
    pub(crate) secondary: Leaf,
}

impl Pki {
    pub(crate) fn new() -> Pki {
        let ca = Ca::new("failover test CA");
        let primary = ca.leaf(PRIMARY_ID, false);
        let secondary = ca.leaf(SECONDARY_ID, false);
        Pki {
            ca,
            primary,
            secondary,
        }
    }

    pub(crate) fn primary(&self) -> TlsConfig {
        tls(&self.primary, &self.ca, SECONDARY_ID)
    }

    pub(crate) fn secondary(&self) -> TlsConfig {
        tls(&self.secondary, &self.ca, PRIMARY_ID)
    }
}
