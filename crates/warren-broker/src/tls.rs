//! TLS for the broker's `amqps` listener, as RabbitMQ's `listeners.ssl` with its
//! `ssl_options`: [`TlsOptions`] holds the certificate chain, the private key and the
//! peer-verification settings (`verify_peer`, `fail_if_no_peer_cert`), builds the
//! rustls server configuration, and reads the user name the EXTERNAL mechanism logs
//! in with from a verified client certificate.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{self, RootCertStore, ServerConfig, ServerConnection};
use tokio_rustls::TlsAcceptor;

/// A TLS configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A certificate or key file cannot be read.
    #[error("cannot read the TLS {what} {}: {source}", path.display())]
    Read {
        /// Which file: `certificate`, `private key` or `client CA bundle`.
        what: &'static str,
        /// The file's path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A certificate file holds no usable PEM `CERTIFICATE` block.
    #[error("the TLS {what} holds no PEM CERTIFICATE block{detail}")]
    NoCertificate {
        /// Which file: `certificate` or `client CA bundle`.
        what: &'static str,
        /// What the PEM parser said, if anything (starts with `: `).
        detail: String,
    },
    /// The key file holds no PKCS#8, PKCS#1 or SEC1 PEM private key.
    #[error("the TLS private key holds no PKCS#8, PKCS#1 or SEC1 PEM private key: {0}")]
    NoKey(String),
    /// Peer verification is on but no CA to check client certificates against was given.
    #[error("verifying peers needs the CA certificates that sign the clients' certificates")]
    NoClientCa,
    /// rustls refused the combination (e.g. the key does not match the certificate).
    #[error("the TLS certificate and key make no usable configuration: {0}")]
    Config(String),
}

/// How the broker's TLS listener presents itself and checks clients.
///
/// ```
/// # fn main() -> Result<(), warren_broker::TlsError> {
/// # let dir = std::env::temp_dir();
/// # let (cert, key, ca) = (dir.join("missing-cert.pem"), dir.join("missing-key.pem"), dir.join("missing-ca.pem"));
/// use warren_broker::TlsOptions;
/// // Clients must present a certificate signed by ca.pem (RabbitMQ's verify_peer with
/// // fail_if_no_peer_cert), and may then log in with EXTERNAL.
/// let tls = TlsOptions::from_files(&cert, &key)
///     .and_then(|t| t.client_ca_file(&ca))
///     .map(|t| t.verify_peer(true).fail_if_no_peer_cert(true));
/// assert!(tls.is_err()); // the files do not exist here
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct TlsOptions {
    chain: Vec<CertificateDer<'static>>,
    key: Arc<PrivateKeyDer<'static>>,
    client_ca: Vec<CertificateDer<'static>>,
    verify_peer: bool,
    fail_if_no_peer_cert: bool,
}

impl std::fmt::Debug for TlsOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsOptions")
            .field("certificates", &self.chain.len())
            .field("client_ca_certificates", &self.client_ca.len())
            .field("verify_peer", &self.verify_peer)
            .field("fail_if_no_peer_cert", &self.fail_if_no_peer_cert)
            .finish_non_exhaustive()
    }
}

impl TlsOptions {
    /// The broker's certificate chain (PEM, leaf first) and its private key (PKCS#8,
    /// PKCS#1 or SEC1 PEM). Clients are not asked for a certificate.
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Self, TlsError> {
        let chain = certificates(cert_pem, "certificate")?;
        let key =
            PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| TlsError::NoKey(e.to_string()))?;
        Ok(TlsOptions {
            chain,
            key: Arc::new(key),
            client_ca: Vec::new(),
            verify_peer: false,
            fail_if_no_peer_cert: false,
        })
    }

    /// [`TlsOptions::from_pem`] read from files.
    pub fn from_files(cert: impl AsRef<Path>, key: impl AsRef<Path>) -> Result<Self, TlsError> {
        let cert = read(cert.as_ref(), "certificate")?;
        let key = read(key.as_ref(), "private key")?;
        Self::from_pem(&cert, &key)
    }

    /// The CA certificates (PEM) that client certificates are checked against
    /// (RabbitMQ's `ssl_options.cacertfile`).
    pub fn client_ca_pem(mut self, pem: &[u8]) -> Result<Self, TlsError> {
        self.client_ca
            .extend(certificates(pem, "client CA bundle")?);
        Ok(self)
    }

    /// [`TlsOptions::client_ca_pem`] read from a file.
    pub fn client_ca_file(self, path: impl AsRef<Path>) -> Result<Self, TlsError> {
        let pem = read(path.as_ref(), "client CA bundle")?;
        self.client_ca_pem(&pem)
    }

    /// Ask clients for a certificate and check any they present against the client
    /// CAs (RabbitMQ's `verify = verify_peer`); a client may still connect without
    /// one unless [`fail_if_no_peer_cert`](Self::fail_if_no_peer_cert). Turns on the
    /// EXTERNAL mechanism: the user is the certificate subject's common name (CN).
    pub fn verify_peer(mut self, on: bool) -> Self {
        self.verify_peer = on;
        self
    }

    /// Refuse clients that present no certificate (RabbitMQ's
    /// `fail_if_no_peer_cert = true`); implies [`verify_peer`](Self::verify_peer).
    pub fn fail_if_no_peer_cert(mut self, on: bool) -> Self {
        self.fail_if_no_peer_cert = on;
        if on {
            self.verify_peer = true;
        }
        self
    }

    /// Whether client certificates are checked (and EXTERNAL offered).
    pub fn verifies_peers(&self) -> bool {
        self.verify_peer
    }

    /// The acceptor these options describe.
    pub(crate) fn acceptor(&self) -> Result<Acceptor, TlsError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let builder = if self.verify_peer {
            let mut roots = RootCertStore::empty();
            let (added, _) = roots.add_parsable_certificates(self.client_ca.iter().cloned());
            if added == 0 {
                return Err(TlsError::NoClientCa);
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if self.fail_if_no_peer_cert {
                verifier
            } else {
                verifier.allow_unauthenticated()
            };
            let verifier = verifier
                .build()
                .map_err(|e| TlsError::Config(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let config = builder
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|e| TlsError::Config(e.to_string()))?;
        Ok(Acceptor {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            verify_peer: self.verify_peer,
        })
    }
}

/// A TLS listener's acceptor, and whether it verifies peers (so offers EXTERNAL).
#[derive(Clone)]
pub(crate) struct Acceptor {
    /// Runs the server side of the TLS handshake.
    pub(crate) acceptor: TlsAcceptor,
    /// Client certificates are checked (RabbitMQ's `verify_peer`).
    pub(crate) verify_peer: bool,
}

/// What the EXTERNAL mechanism knows about a connection's client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PeerCert {
    /// EXTERNAL is not offered: a plain connection, or TLS without peer verification.
    NotOffered,
    /// TLS with peer verification, and the client presented no certificate.
    Missing,
    /// The verified certificate has no common name in its subject.
    NoCommonName,
    /// The verified certificate's subject common name.
    CommonName(String),
}

impl PeerCert {
    /// What a TLS connection's verified client certificate says, if peers are verified.
    pub(crate) fn of(conn: &ServerConnection, verify_peer: bool) -> Self {
        if !verify_peer {
            return PeerCert::NotOffered;
        }
        let Some(leaf) = conn.peer_certificates().and_then(|c| c.first()) else {
            return PeerCert::Missing;
        };
        match common_name(leaf) {
            Some(cn) => PeerCert::CommonName(cn),
            None => PeerCert::NoCommonName,
        }
    }
}

/// The first common name (CN) of a DER certificate's subject.
fn common_name(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let cn = cert.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_owned)
}

fn certificates(pem: &[u8], what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::NoCertificate {
            what,
            detail: format!(": {e}"),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            what,
            detail: String::new(),
        });
    }
    Ok(certs)
}

fn read(path: &Path, what: &'static str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_owned(),
        source,
    })
}
