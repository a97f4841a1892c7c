//! TLS 1.3 on the failover link, with a certificate on each side and the partner's identity
//! pinned to the relationship (the `tls` feature).
//!
//! **TLS from the first byte.** The connection is TLS from its first byte, as Kea's HA link
//! is, not upgraded in band as draft-12 describes (TLS-request / TLS-reply in CONNECT and
//! CONNECTACK, §7.8.2 step 3, §8.2; reject reasons 9–11): ISC dhcpd never negotiates TLS
//! (it answers TLS-reply 0), the draft's mandatory suite (TLS_DHE_DSS_WITH_3DES_EDE_CBC_SHA,
//! §11.2) exists in no TLS 1.3 implementation, and an in-band upgrade sends the CONNECT in the
//! clear where anyone on the path can strip the TLS-request. A partner that cannot do TLS
//! (ISC) is reached over plain TCP by an explicit [`crate::PeerBuilder::plaintext`] instead.
//!
//! **Who is accepted.** Both sides present a certificate (client authentication is required
//! on the listener); each must chain to the configured CA and be valid now, and the partner's
//! must name the relationship's partner identity (a DNS name or an IP address in its subject
//! alternative names): a valid certificate of another server of the same CA is refused. Both
//! roles use one certificate, so it needs both the serverAuth and the clientAuth extended key
//! usage. A connection whose handshake fails is closed, counted
//! ([`crate::Counters::refused`], [`crate::Counters::tls_refused`]) and reported
//! ([`crate::PeerEvent::TlsRefused`]); the engine never sees it.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ParsedCertificate, WebPkiClientVerifier};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, DistinguishedName, RootCertStore,
    ServerConfig, SignatureScheme,
};
use rustls_pki_types::pem::PemObject;
pub use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio::net::TcpStream;

/// Default bound on a TLS handshake: a partner that connects and then says nothing holds
/// nothing of ours for longer.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The TLS side of one relationship: our certificate and key, the CA the partner's certificate
/// must chain to, and the partner's identity. Give it to [`crate::PeerBuilder::tls`].
#[derive(Clone)]
pub struct TlsConfig {
    client: Arc<ClientConfig>,
    server: Arc<ServerConfig>,
    partner: ServerName<'static>,
    handshake_timeout: Duration,
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig")
            .field("partner", &self.partner)
            .field("handshake_timeout", &self.handshake_timeout)
            .finish_non_exhaustive()
    }
}

impl TlsConfig {
    /// Our certificate `chain` (ours first, then intermediates) and its `key`, the `ca`
    /// certificates the partner's must chain to, and the `partner`'s identity, which its
    /// certificate must name.
    pub fn new(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        ca: Vec<CertificateDer<'static>>,
        partner: ServerName<'static>,
    ) -> Result<Self, TlsError> {
        if chain.is_empty() {
            return Err(TlsError::NoCertificate { path: None });
        }
        let mut roots = RootCertStore::empty();
        for c in ca {
            roots.add(c).map_err(TlsError::BadCa)?;
        }
        if roots.is_empty() {
            return Err(TlsError::NoCa { path: None });
        }
        let roots = Arc::new(roots);
        // One provider, named here: the process-wide default would depend on which rustls
        // features other crates of the program enable.
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let client_verifier =
            WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
                .build()
                .map_err(TlsError::Verifier)?;
        let server = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(TlsError::Rustls)?
            .with_client_cert_verifier(Arc::new(PinnedClient {
                inner: client_verifier,
                partner: partner.clone(),
            }))
            .with_single_cert(chain.clone(), key.clone_key())
            .map_err(TlsError::Rustls)?;
        // The server's name is checked by the standard verifier against the name we connect
        // to, which is the pinned partner identity.
        let server_verifier = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
            .build()
            .map_err(TlsError::Verifier)?;
        let client = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(TlsError::Rustls)?
            .with_webpki_verifier(server_verifier)
            .with_client_auth_cert(chain, key)
            .map_err(TlsError::Rustls)?;
        Ok(TlsConfig {
            client: Arc::new(client),
            server: Arc::new(server),
            partner,
            handshake_timeout: HANDSHAKE_TIMEOUT,
        })
    }

    /// [`TlsConfig::new`] from PEM files: our certificate chain, our private key (PKCS#8,
    /// PKCS#1 or SEC1), the CA certificates; `partner` is a DNS name or an IP address.
    pub fn from_pem_files(
        cert: impl AsRef<Path>,
        key: impl AsRef<Path>,
        ca: impl AsRef<Path>,
        partner: &str,
    ) -> Result<Self, TlsError> {
        let chain = read_certs(cert.as_ref())?;
        if chain.is_empty() {
            return Err(TlsError::NoCertificate {
                path: Some(cert.as_ref().to_path_buf()),
            });
        }
        let key = PrivateKeyDer::from_pem_file(key.as_ref()).map_err(|error| TlsError::Pem {
            path: key.as_ref().to_path_buf(),
            error,
        })?;
        let roots = read_certs(ca.as_ref())?;
        if roots.is_empty() {
            return Err(TlsError::NoCa {
                path: Some(ca.as_ref().to_path_buf()),
            });
        }
        Self::new(chain, key, roots, partner_name(partner)?)
    }

    /// Longest a TLS handshake may take before the connection is closed (default 10 s).
    pub fn handshake_timeout(mut self, d: Duration) -> Self {
        self.handshake_timeout = d;
        self
    }

    /// The partner identity its certificate must name.
    pub fn partner(&self) -> &ServerName<'static> {
        &self.partner
    }

    /// Whether `other` is a clone of this configuration.
    pub(crate) fn same_as(&self, other: &TlsConfig) -> bool {
        Arc::ptr_eq(&self.server, &other.server)
    }

    /// Runs the listener's side of the handshake on an accepted connection.
    pub(crate) async fn accept(
        &self,
        tcp: TcpStream,
    ) -> Result<tokio_rustls::TlsStream<TcpStream>, HandshakeFailed> {
        let acceptor = tokio_rustls::TlsAcceptor::from(self.server.clone());
        match tokio::time::timeout(self.handshake_timeout, acceptor.accept(tcp)).await {
            Ok(Ok(s)) => Ok(tokio_rustls::TlsStream::Server(s)),
            Ok(Err(e)) => Err(HandshakeFailed::of(e)),
            Err(_) => Err(HandshakeFailed::Refused(TlsRefusal::Timeout)),
        }
    }

    /// Runs the connector's side of the handshake on a connection we opened.
    pub(crate) async fn connect(
        &self,
        tcp: TcpStream,
    ) -> Result<tokio_rustls::TlsStream<TcpStream>, HandshakeFailed> {
        let connector = tokio_rustls::TlsConnector::from(self.client.clone());
        let handshake = connector.connect(self.partner.clone(), tcp);
        match tokio::time::timeout(self.handshake_timeout, handshake).await {
            Ok(Ok(s)) => Ok(tokio_rustls::TlsStream::Client(s)),
            Ok(Err(e)) => Err(HandshakeFailed::of(e)),
            Err(_) => Err(HandshakeFailed::Refused(TlsRefusal::Timeout)),
        }
    }
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = |error| TlsError::Pem {
        path: path.to_path_buf(),
        error,
    };
    CertificateDer::pem_file_iter(path)
        .map_err(pem)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem)
}

/// `partner` as the identity a certificate must name: an IP address, or else a DNS name.
pub fn partner_name(partner: &str) -> Result<ServerName<'static>, TlsError> {
    ServerName::try_from(partner.to_string()).map_err(|_| TlsError::PartnerName {
        name: partner.to_string(),
    })
}

/// The client-certificate check of the listener: the standard one (chain to the CA, validity,
/// clientAuth usage), then the partner's name — webpki's client verifier checks no name, and
/// without this any certificate of the CA would be let in.
#[derive(Debug)]
struct PinnedClient {
    inner: Arc<dyn ClientCertVerifier>,
    partner: ServerName<'static>,
}

impl ClientCertVerifier for PinnedClient {
    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        let parsed = ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_name(&parsed, &self.partner)?;
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Why a TLS configuration could not be built.
#[derive(Debug)]
#[non_exhaustive]
pub enum TlsError {
    /// A PEM file could not be read or holds no item of the kind expected.
    Pem {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        error: rustls_pki_types::pem::Error,
    },
    /// No certificate of ours.
    NoCertificate {
        /// The file it was read from, if any.
        path: Option<PathBuf>,
    },
    /// No CA certificate to check the partner's against.
    NoCa {
        /// The file it was read from, if any.
        path: Option<PathBuf>,
    },
    /// A CA certificate that cannot be used as a trust anchor.
    BadCa(rustls::Error),
    /// The partner identity is neither an IP address nor a DNS name.
    PartnerName {
        /// As given.
        name: String,
    },
    /// The certificate verifier could not be built.
    Verifier(rustls::client::VerifierBuilderError),
    /// rustls refused the configuration (a key that does not match the certificate, a key
    /// type it does not support...).
    Rustls(rustls::Error),
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::Pem { path, error } => write!(f, "{}: {error}", path.display()),
            TlsError::NoCertificate { path: Some(p) } => {
                write!(f, "{}: no certificate", p.display())
            }
            TlsError::NoCertificate { path: None } => f.write_str("no certificate"),
            TlsError::NoCa { path: Some(p) } => write!(f, "{}: no CA certificate", p.display()),
            TlsError::NoCa { path: None } => f.write_str("no CA certificate"),
            TlsError::BadCa(e) => write!(f, "unusable CA certificate: {e}"),
            TlsError::PartnerName { name } => {
                write!(
                    f,
                    "partner identity {name:?} is neither a DNS name nor an IP address"
                )
            }
            TlsError::Verifier(e) => write!(f, "certificate verifier: {e}"),
            TlsError::Rustls(e) => write!(f, "TLS configuration: {e}"),
        }
    }
}

impl std::error::Error for TlsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TlsError::Pem { error, .. } => Some(error),
            TlsError::BadCa(e) | TlsError::Rustls(e) => Some(e),
            TlsError::Verifier(e) => Some(e),
            _ => None,
        }
    }
}

/// Why a TLS handshake with the partner failed, and the connection with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsRefusal {
    /// The partner's certificate does not chain to our CA.
    UnknownIssuer,
    /// The partner's certificate has expired.
    Expired,
    /// The partner's certificate is not valid yet.
    NotYetValid,
    /// The partner's certificate is valid but names another identity than the
    /// relationship's partner.
    WrongIdentity,
    /// Another fault of the partner's certificate (signature, usage, encoding...).
    BadCertificate,
    /// The partner presented no certificate.
    NoCertificate,
    /// The partner refused the handshake with this TLS alert (it did not accept our
    /// certificate, for instance: 42 bad_certificate, 48 unknown_ca, 116
    /// certificate_required).
    PartnerRefused {
        /// The alert's code (RFC 8446 §6).
        alert: u8,
    },
    /// What came is not TLS (a partner on plain TCP sends failover messages).
    NotTls,
    /// TLS, but nothing in common (a partner without TLS 1.3, say).
    Incompatible,
    /// The handshake did not finish in time.
    Timeout,
    /// Any other handshake failure.
    Other,
}

/// How a handshake ended without a session.
#[derive(Debug)]
pub(crate) enum HandshakeFailed {
    /// One side refused the other (counted and reported).
    Refused(TlsRefusal),
    /// The other end closed the connection, or the network failed. Not a refusal: it is what
    /// a peer does to a connection it drops for a better one when both dialed at once.
    Closed(io::Error),
}

impl HandshakeFailed {
    /// Classifies a failed handshake (tokio-rustls carries rustls' error inside the
    /// `io::Error`).
    fn of(e: io::Error) -> Self {
        match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
            Some(tls) => HandshakeFailed::Refused(TlsRefusal::of(tls)),
            None => HandshakeFailed::Closed(e),
        }
    }
}

/// The TLS alert the partner ended the session with, if that is what `e` is.
pub(crate) fn alert_of(e: &io::Error) -> Option<u8> {
    match e.get_ref()?.downcast_ref::<rustls::Error>()? {
        rustls::Error::AlertReceived(a) => Some(u8::from(*a)),
        _ => None,
    }
}

impl TlsRefusal {
    fn of(tls: &rustls::Error) -> Self {
        match tls {
            rustls::Error::InvalidCertificate(c) => match c {
                CertificateError::UnknownIssuer => TlsRefusal::UnknownIssuer,
                CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                    TlsRefusal::Expired
                }
                CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                    TlsRefusal::NotYetValid
                }
                CertificateError::NotValidForName
                | CertificateError::NotValidForNameContext { .. } => TlsRefusal::WrongIdentity,
                _ => TlsRefusal::BadCertificate,
            },
            rustls::Error::NoCertificatesPresented => TlsRefusal::NoCertificate,
            rustls::Error::AlertReceived(a) => TlsRefusal::PartnerRefused {
                alert: u8::from(*a),
            },
            rustls::Error::InvalidMessage(_) => TlsRefusal::NotTls,
            rustls::Error::PeerIncompatible(_) => TlsRefusal::Incompatible,
            _ => TlsRefusal::Other,
        }
    }
}

impl fmt::Display for TlsRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsRefusal::UnknownIssuer => f.write_str("certificate not signed by our CA"),
            TlsRefusal::Expired => f.write_str("certificate expired"),
            TlsRefusal::NotYetValid => f.write_str("certificate not valid yet"),
            TlsRefusal::WrongIdentity => f.write_str("certificate names another partner"),
            TlsRefusal::BadCertificate => f.write_str("bad certificate"),
            TlsRefusal::NoCertificate => f.write_str("no certificate presented"),
            TlsRefusal::PartnerRefused { alert } => {
                write!(f, "the partner refused the handshake (alert {alert})")
            }
            TlsRefusal::NotTls => f.write_str("not TLS (a plain-TCP partner?)"),
            TlsRefusal::Incompatible => f.write_str("no TLS 1.3 parameters in common"),
            TlsRefusal::Timeout => f.write_str("handshake timed out"),
            TlsRefusal::Other => f.write_str("handshake failed"),
        }
    }
}

impl std::error::Error for TlsRefusal {}
