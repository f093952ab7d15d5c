//! TLS for `amqps://` connections, on rustls: which CAs to trust, an optional client
//! certificate (for the EXTERNAL login), the loud opt-out from certificate checks, and
//! the classification of a failed TLS handshake into [`TlsFailure`] (defined beside
//! [`Error`], which carries it).

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

use crate::amqp::RawError;
use crate::error::{Error, Result, TlsFailure};

/// How an `amqps://` connection checks the broker and presents itself.
///
/// The default trusts the system's CA store (webpki roots when none is found) and
/// checks the broker's certificate and host name. Hand it to
/// [`ClientBuilder::tls`](crate::ClientBuilder::tls) or
/// [`ServerBuilder::tls`](crate::ServerBuilder::tls).
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct TlsConfig {
    ca: Vec<CertificateDer<'static>>,
    client: Option<(Vec<CertificateDer<'static>>, Arc<PrivateKeyDer<'static>>)>,
    insecure: bool,
    external: bool,
}

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConfig")
            .field("ca_certificates", &self.ca.len())
            .field("client_certificate", &self.client.is_some())
            .field("danger_accept_invalid_certs", &self.insecure)
            .field("external_login", &self.external)
            .finish()
    }
}

impl TlsConfig {
    /// The default: the system's trust store, certificate and host-name checks on.
    pub fn new() -> Self {
        Self::default()
    }

    /// Trusts the CA certificates in `pem` (one or more PEM `CERTIFICATE` blocks)
    /// instead of the system's store.
    pub fn ca_pem(mut self, pem: &[u8]) -> Result<Self> {
        let certs = certs(pem, "the CA bundle")?;
        self.ca.extend(certs);
        Ok(self)
    }

    /// [`TlsConfig::ca_pem`] read from a file.
    pub fn ca_file(self, path: impl AsRef<Path>) -> Result<Self> {
        let pem = read(path.as_ref(), "CA bundle")?;
        self.ca_pem(&pem)
    }

    /// Presents the client certificate chain `cert_pem` with its private key `key_pem`
    /// (PKCS#8, PKCS#1 or SEC1 PEM) when the broker asks for one.
    pub fn client_cert_pem(mut self, cert_pem: &[u8], key_pem: &[u8]) -> Result<Self> {
        let chain = certs(cert_pem, "the client certificate")?;
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| {
            Error::InvalidArgument(format!("no usable private key in the client key: {e}"))
        })?;
        self.client = Some((chain, Arc::new(key)));
        Ok(self)
    }

    /// [`TlsConfig::client_cert_pem`] read from files.
    pub fn client_cert_files(self, cert: impl AsRef<Path>, key: impl AsRef<Path>) -> Result<Self> {
        let cert = read(cert.as_ref(), "client certificate")?;
        let key = read(key.as_ref(), "client key")?;
        self.client_cert_pem(&cert, &key)
    }

    /// Logs in with SASL EXTERNAL (the broker takes the user name from the client
    /// certificate) unless the URL names an `auth_mechanism` itself.
    pub fn external_login(mut self) -> Self {
        self.external = true;
        self
    }

    /// **Turns off all checks of the broker's certificate**: any certificate, for any
    /// host, expired or self-signed, is accepted, so anyone on the path can read and
    /// change the traffic. For tests against throw-away brokers only; every connection
    /// made with it logs a warning.
    pub fn danger_accept_invalid_certs(mut self) -> Self {
        self.insecure = true;
        self
    }

    /// Whether certificate checks are off (see [`TlsConfig::danger_accept_invalid_certs`]).
    pub fn accepts_invalid_certs(&self) -> bool {
        self.insecure
    }

    /// Whether the EXTERNAL login was asked for.
    pub(crate) fn external(&self) -> bool {
        self.external
    }

    /// The rustls configuration these options describe.
    pub(crate) fn client_config(&self) -> Result<Arc<ClientConfig>> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::InvalidArgument(format!("TLS setup: {e}")))?;
        let builder = if self.insecure {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnything(provider)))
        } else {
            builder.with_root_certificates(self.roots()?)
        };
        let config = match &self.client {
            Some((chain, key)) => builder
                .with_client_auth_cert(chain.clone(), key.clone_key())
                .map_err(|e| {
                    Error::InvalidArgument(format!("the client certificate and key: {e}"))
                })?,
            None => builder.with_no_client_auth(),
        };
        Ok(Arc::new(config))
    }

    fn roots(&self) -> Result<RootCertStore> {
        let mut roots = RootCertStore::empty();
        if self.ca.is_empty() {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
        } else {
            roots.add_parsable_certificates(self.ca.iter().cloned());
        }
        if roots.is_empty() {
            return Err(Error::InvalidArgument(
                "no CA certificate to check the broker against: give a CA bundle".to_owned(),
            ));
        }
        Ok(roots)
    }
}

impl TlsFailure {
    /// Classifies the error a TLS handshake ended with.
    pub(crate) fn from_io(error: &std::io::Error) -> Self {
        TlsFailure::from_tls_io(error).unwrap_or_else(|| TlsFailure::Handshake(error.to_string()))
    }

    /// The failure behind `error` when it came from the TLS layer (an alert from the
    /// broker, a certificate check, a record that does not decode), `None` for a
    /// plain socket error.
    pub(crate) fn from_tls_io(error: &std::io::Error) -> Option<Self> {
        let tls = error.get_ref()?.downcast_ref::<rustls::Error>()?;
        Some(match tls {
            rustls::Error::InvalidCertificate(cert) => match cert {
                CertificateError::UnknownIssuer => TlsFailure::UnknownCa,
                CertificateError::Expired
                | CertificateError::ExpiredContext { .. }
                | CertificateError::NotValidYet
                | CertificateError::NotValidYetContext { .. } => TlsFailure::Expired,
                CertificateError::NotValidForName
                | CertificateError::NotValidForNameContext { .. } => TlsFailure::NameMismatch,
                other => TlsFailure::BadCertificate(format!("{other:?}")),
            },
            rustls::Error::AlertReceived(alert) if refuses_client_certificate(*alert) => {
                TlsFailure::ClientCertificateRefused(format!("{alert:?}"))
            }
            other => TlsFailure::Handshake(other.to_string()),
        })
    }

    /// The TLS failure behind an error of the AMQP handshake on a TLS connection: an
    /// alert (the broker's own word on what it refused), or, when the broker had sent
    /// nothing yet (`heard` false), a reset or close straight after the TLS handshake.
    /// The second is how a broker that refused the client certificate can look when
    /// its alert is lost with the reset (RabbitMQ, at times). `None`: not TLS's doing.
    pub(crate) fn after_handshake(error: &RawError, heard: bool) -> Option<Self> {
        let ended = |how: String| (!heard).then_some(TlsFailure::ClosedAfterHandshake(how));
        match error {
            RawError::Io(io) => TlsFailure::from_tls_io(io).or_else(|| {
                use std::io::ErrorKind as K;
                match io.kind() {
                    K::ConnectionReset
                    | K::ConnectionAborted
                    | K::BrokenPipe
                    | K::UnexpectedEof => ended(io.to_string()),
                    _ => None,
                }
            }),
            RawError::Eof => ended("closed".to_owned()),
            _ => None,
        }
    }
}

/// Whether a fatal alert from the broker is its answer to our client certificate
/// (missing, unknown issuer, expired, not allowed).
fn refuses_client_certificate(alert: rustls::AlertDescription) -> bool {
    use rustls::AlertDescription as A;
    matches!(
        alert,
        A::CertificateRequired
            | A::BadCertificate
            | A::UnsupportedCertificate
            | A::CertificateRevoked
            | A::CertificateExpired
            | A::CertificateUnknown
            | A::UnknownCA
            | A::AccessDenied
    )
}

fn certs(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::InvalidArgument(format!("{what} is not PEM: {e}")))?;
    if certs.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "{what} holds no PEM CERTIFICATE block"
        )));
    }
    Ok(certs)
}

fn read(path: &Path, what: &str) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| {
        Error::InvalidArgument(format!("cannot read the {what} {}: {e}", path.display()))
    })
}

/// The verifier behind [`TlsConfig::danger_accept_invalid_certs`]: accepts any
/// certificate, still checking that the handshake's signatures are sound.
#[derive(Debug)]
struct AcceptAnything(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAnything {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tls_connection_ended_before_the_broker_spoke_is_a_tls_failure() {
        let reset = || RawError::from(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert!(matches!(
            TlsFailure::after_handshake(&reset(), false),
            Some(TlsFailure::ClosedAfterHandshake(_))
        ));
        assert!(matches!(
            TlsFailure::after_handshake(&RawError::Eof, false),
            Some(TlsFailure::ClosedAfterHandshake(_))
        ));
        // Once the broker has sent AMQP bytes, a reset is not the TLS layer's.
        assert!(TlsFailure::after_handshake(&reset(), true).is_none());
        assert!(TlsFailure::after_handshake(&RawError::Eof, true).is_none());
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(TlsFailure::after_handshake(&RawError::from(refused), false).is_none());
    }
}
