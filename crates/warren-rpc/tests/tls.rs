//! Client TLS: a Warren client reaches the embedded broker's TLS listener, with server
//! verification on. A bad CA, a wrong host name and an expired certificate each fail
//! with their own [`TlsFailure`]; a broker that demands a client certificate refuses
//! a client without one and admits one with it, also by EXTERNAL login. Certificates
//! are made here, per run.

use std::net::SocketAddr;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use warren_broker::{Broker, BrokerHandle, TlsOptions};
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

/// Starts a broker listening only for TLS with `server`'s certificate; with
/// `client_ca`, it demands a client certificate signed by it.
async fn tls_broker(server: &Pair, client_ca: Option<&str>) -> (BrokerHandle, SocketAddr) {
    let mut tls = TlsOptions::from_pem(server.cert.as_bytes(), server.key.as_bytes()).unwrap();
    if let Some(ca) = client_ca {
        tls = tls
            .client_ca_pem(ca.as_bytes())
            .unwrap()
            .fail_if_no_peer_cert(true);
    }
    let handle = Broker::builder()
        .plain_listener(false)
        .tls_listen("127.0.0.1:0".parse().unwrap(), tls)
        .start()
        .await
        .unwrap();
    let addr = handle.tls_addr().unwrap();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verified_server_certificate_connects_and_bad_ones_fail_by_cause() {
    let pki = Pki::new("warren test CA");
    let (_good, good) = tls_broker(
        &pki.issue(&["localhost", "127.0.0.1"], "localhost", false),
        None,
    )
    .await;
    let (_expired, expired) = tls_broker(&pki.issue(&["localhost"], "localhost", true), None).await;
    let (_wrong, wrong_name) =
        tls_broker(&pki.issue(&["elsewhere.example"], "elsewhere", false), None).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_that_verifies_peers_needs_the_client_certificate() {
    let pki = Pki::new("warren test CA");
    let server = pki.issue(&["localhost"], "localhost", false);
    let (_broker, front) = tls_broker(&server, Some(&pki.ca)).await;
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

    // EXTERNAL: the user is the certificate's CN, no password in the URL.
    let external = trust()
        .client_cert_pem(me.cert.as_bytes(), me.key.as_bytes())
        .unwrap()
        .external_login();
    let url = format!("amqps://localhost:{}/%2f", front.port());
    let client = connect(&url, external)
        .await
        .expect("EXTERNAL login by certificate");
    client.shutdown().await.unwrap();
}
