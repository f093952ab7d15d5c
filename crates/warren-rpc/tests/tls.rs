//! Client TLS: a Warren client reaches the embedded broker through a TLS front (a
//! tokio-rustls terminator that forwards to the broker's plain port), with server
//! verification on. A bad CA, a wrong host name and an expired certificate each fail
//! with their own [`TlsFailure`]; a front that demands a client certificate refuses
//! a client without one and admits one with it. Certificates are made here, per run.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use tokio::net::TcpListener;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{RootCertStore, ServerConfig};
use warren_rpc::{Error, RpcClient, TlsConfig, TlsFailure};

/// A PEM certificate and its PEM private key.
struct Pair {
    cert: String,
    key: String,
}

struct Pki {
    ca: String,
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Pki {
    fn new(name: &str) -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Pki {
            ca: issuer.pem(),
            issuer,
        }
    }

    fn issue(&self, names: &[&str], cn: &str, expired: bool) -> Pair {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Pair {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }
}

/// Starts a TLS front on a free loopback port forwarding to `broker`; with
/// `client_ca`, it demands a client certificate signed by it.
async fn tls_front(server: &Pair, client_ca: Option<&str>, broker: SocketAddr) -> SocketAddr {
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(server.cert.as_bytes())
            .collect::<Result<_, _>>()
            .unwrap();
    let key = PrivateKeyDer::from_pem_slice(server.key.as_bytes()).unwrap();
    let builder = ServerConfig::builder();
    let builder = match client_ca {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for c in CertificateDer::pem_slice_iter(ca.as_bytes()) {
                roots.add(c.unwrap()).unwrap();
            }
            builder.with_client_cert_verifier(
                WebPkiClientVerifier::builder(Arc::new(roots))
                    .build()
                    .unwrap(),
            )
        }
        None => builder.with_no_client_auth(),
    };
    let config = builder.with_single_cert(chain, key).unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                if let Ok(mut plain) = tokio::net::TcpStream::connect(broker).await {
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                }
            });
        }
    });
    addr
}

async fn broker() -> (warren_broker::BrokerHandle, SocketAddr) {
    let handle = warren_broker::Broker::builder()
        .listen("127.0.0.1:0".parse().unwrap())
        .start()
        .await
        .unwrap();
    let addr = handle.local_addr();
    (handle, addr)
}

async fn connect(url: &str, tls: TlsConfig) -> Result<RpcClient, Error> {
    RpcClient::builder()
        .tls(tls)
        .connect_timeout(Duration::from_secs(5))
        .connect(url)
        .await
}

fn tls_failure(result: Result<RpcClient, Error>) -> TlsFailure {
    match result {
        Err(Error::Tls { failure, .. }) => failure,
        Err(other) => panic!("expected a TLS error, got {other}"),
        Ok(_) => panic!("expected a TLS error, the connection opened"),
    }
}

#[tokio::test]
async fn verified_server_certificate_connects_and_bad_ones_fail_by_cause() {
    let (_broker, plain) = broker().await;
    let pki = Pki::new("warren test CA");
    let good = tls_front(
        &pki.issue(&["localhost", "127.0.0.1"], "localhost", false),
        None,
        plain,
    )
    .await;
    let expired = tls_front(&pki.issue(&["localhost"], "localhost", true), None, plain).await;
    let wrong_name = tls_front(
        &pki.issue(&["elsewhere.example"], "elsewhere", false),
        None,
        plain,
    )
    .await;
    let trust = || TlsConfig::new().ca_pem(pki.ca.as_bytes()).unwrap();

    let url = |a: SocketAddr| format!("amqps://guest:guest@localhost:{}/%2f", a.port());
    let client = connect(&url(good), trust())
        .await
        .expect("verified TLS connect");
    client.shutdown().await.unwrap();

    let other_ca = Pki::new("some other CA");
    let untrusted = TlsConfig::new().ca_pem(other_ca.ca.as_bytes()).unwrap();
    assert_eq!(
        tls_failure(connect(&url(good), untrusted).await),
        TlsFailure::UnknownCa
    );
    assert_eq!(
        tls_failure(connect(&url(expired), trust()).await),
        TlsFailure::Expired
    );
    assert_eq!(
        tls_failure(connect(&url(wrong_name), trust()).await),
        TlsFailure::NameMismatch
    );

    let insecure = TlsConfig::new().danger_accept_invalid_certs();
    let client = connect(&url(wrong_name), insecure)
        .await
        .expect("insecure opt-out connects");
    client.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_front_that_verifies_peers_needs_the_client_certificate() {
    let (_broker, plain) = broker().await;
    let pki = Pki::new("warren test CA");
    let server = pki.issue(&["localhost"], "localhost", false);
    let front = tls_front(&server, Some(&pki.ca), plain).await;
    let url = format!("amqps://guest:guest@localhost:{}/%2f", front.port());
    let trust = || TlsConfig::new().ca_pem(pki.ca.as_bytes()).unwrap();

    let refused = connect(&url, trust()).await;
    assert!(
        matches!(refused, Err(Error::Tls { .. }) | Err(Error::Connect { .. })),
        "{:?}",
        refused.err()
    );

    let me = pki.issue(&[], "guest", false);
    let with_cert = trust()
        .client_cert_pem(me.cert.as_bytes(), me.key.as_bytes())
        .unwrap();
    let client = connect(&url, with_cert)
        .await
        .expect("client certificate accepted");
    client.shutdown().await.unwrap();
}
