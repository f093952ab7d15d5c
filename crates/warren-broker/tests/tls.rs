//! The broker's TLS listener with lapin as the client: a server-verified connection
//! with and without a client certificate, EXTERNAL login by the certificate's CN, and
//! the refusals (no client certificate when one is required, a certificate from an
//! unknown CA, EXTERNAL for a user the store does not have, or where it is not
//! offered). Also: the plain listener turned off, and a socket that never finishes its
//! TLS handshake is closed at the handshake timeout. Certificates are made here, per run.

use lapin::options::{
    BasicGetOptions, BasicPublishOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::tcp::{OwnedIdentity, OwnedTLSConfig};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use warren_broker::{AccessControl, Broker, BrokerHandle, Permissions, TlsOptions};
use warren_test_support::pki::{Pair, Pki};

/// The brokers' handshake timeout (TLS handshake included); longer than the second
/// a failed login waits before the broker answers it.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(2);

/// How the broker checks TLS clients.
#[derive(Clone, Copy)]
enum Peers {
    /// No client certificates asked for.
    NotVerified,
    /// Checked if presented (RabbitMQ's verify_peer).
    Verified,
    /// Required (verify_peer with fail_if_no_peer_cert).
    Required,
}

/// A broker with only a TLS listener; its store has guest and `alice` (whose password
/// nobody knows: she logs in with her certificate).
async fn tls_broker(pki: &Pki, peers: Peers) -> BrokerHandle {
    let server = pki.server();
    let tls = TlsOptions::from_pem(server.cert.as_bytes(), server.key.as_bytes())
        .unwrap()
        .client_ca_pem(pki.ca.as_bytes())
        .unwrap();
    let tls = match peers {
        Peers::NotVerified => tls,
        Peers::Verified => tls.verify_peer(true),
        Peers::Required => tls.fail_if_no_peer_cert(true),
    };
    let mut access = AccessControl::new();
    access.add_vhost("/");
    access.add_user("alice", "a password nobody knows", &[]);
    access
        .set_permissions("alice", "/", Permissions::full())
        .unwrap();
    Broker::builder()
        .access_control(access)
        .credentials("guest", "guest")
        .plain_listener(false)
        .tls_listen("127.0.0.1:0".parse().unwrap(), tls)
        .handshake_timeout(HANDSHAKE_TIMEOUT)
        .start()
        .await
        .unwrap()
}

/// lapin's TLS options: trust `ca`, present `identity` if given.
fn lapin_tls(ca: &str, identity: Option<&Pair>) -> OwnedTLSConfig {
    OwnedTLSConfig {
        identity: identity.map(|p| OwnedIdentity::PKCS8 {
            pem: p.cert.clone().into_bytes(),
            key: p.key.clone().into_bytes(),
        }),
        cert_chain: Some(ca.to_owned()),
    }
}

async fn connect(url: &str, tls: OwnedTLSConfig) -> Result<Connection, lapin::Error> {
    let builder = lapin::DefaultConnectionBuilder::new()?
        .with_uri_str(url.to_owned())
        .with_tls_config(tls);
    match tokio::time::timeout(Duration::from_secs(10), builder.connect()).await {
        Ok(r) => r,
        Err(_) => panic!("connecting to {url} did not finish within 10 s"),
    }
}

/// A message goes through a queue of the connection's own, which is then deleted.
async fn round_trip(conn: &Connection, queue: &str) {
    let ch = conn.create_channel().await.unwrap();
    ch.queue_declare(
        queue.into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.basic_publish(
        "".into(),
        queue.into(),
        BasicPublishOptions::default(),
        b"over tls",
        BasicProperties::default(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    let mut got = None;
    for _ in 0..50 {
        got = ch
            .basic_get(queue.into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap();
        if got.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        got.expect("the message comes back").delivery.data,
        b"over tls"
    );
    ch.queue_delete(queue.into(), QueueDeleteOptions::default())
        .await
        .unwrap();
    ch.close(200, "done".into()).await.unwrap();
}

/// The URL of the broker's TLS listener by the certificate's host name.
fn url(broker: &BrokerHandle, auth: &str, query: &str) -> String {
    let port = broker.tls_addr().expect("a TLS listener").port();
    format!("amqps://{auth}localhost:{port}/%2f{query}")
}

/// The user each open connection logged in as.
async fn users(broker: &BrokerHandle) -> Vec<String> {
    let mut users: Vec<String> = broker
        .stats()
        .connections()
        .await
        .into_iter()
        .map(|c| c.user)
        .collect();
    users.sort();
    users
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_verified_tls_without_a_client_certificate() {
    let pki = Pki::new("warren test CA");
    let broker = tls_broker(&pki, Peers::NotVerified).await;
    assert_eq!(broker.local_addr(), broker.tls_addr().unwrap());
    assert!(broker
        .amqp_url()
        .starts_with("amqps://guest:guest@127.0.0.1:"));

    let conn = connect(&url(&broker, "guest:guest@", ""), lapin_tls(&pki.ca, None))
        .await
        .expect("TLS with the broker's CA");
    round_trip(&conn, "tls-plain-login").await;
    conn.close(200, "bye".into()).await.unwrap();

    // Without peer verification EXTERNAL is not offered: RabbitMQ's 503.
    let refused = connect(
        &url(&broker, "", "?auth_mechanism=external"),
        lapin_tls(&pki.ca, Some(&pki.client("alice"))),
    )
    .await;
    let err = refused
        .expect_err("EXTERNAL where it is not offered")
        .to_string();
    assert!(
        err.contains("COMMAND_INVALID - invalid authentication mechanism 'EXTERNAL'"),
        "{err}"
    );

    // A CA that did not sign the broker's certificate.
    let other = Pki::new("some other CA");
    let refused = connect(
        &url(&broker, "guest:guest@", ""),
        lapin_tls(&other.ca, None),
    )
    .await;
    assert!(refused.is_err(), "a broker certificate from an unknown CA");
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_that_requires_client_certificates() {
    let pki = Pki::new("warren test CA");
    let broker = tls_broker(&pki, Peers::Required).await;
    let guest = url(&broker, "guest:guest@", "");

    let refused = connect(&guest, lapin_tls(&pki.ca, None)).await;
    let err = refused.expect_err("no client certificate where one is required");
    assert!(
        format!("{err:?}").contains("CertificateRequired"),
        "{err:?}"
    );

    let other = Pki::new("some other CA");
    let refused = connect(&guest, lapin_tls(&pki.ca, Some(&other.client("guest")))).await;
    let err = refused.expect_err("a client certificate from an unknown CA");
    assert!(format!("{err:?}").contains("UnknownCA"), "{err:?}");

    // A certificate, and a password login over it.
    let conn = connect(&guest, lapin_tls(&pki.ca, Some(&pki.client("guest"))))
        .await
        .expect("client certificate and PLAIN");
    round_trip(&conn, "tls-cert-plain").await;
    assert_eq!(users(&broker).await, ["guest"]);

    // EXTERNAL: alice is who her certificate says.
    let external = url(&broker, "", "?auth_mechanism=external");
    let alice = connect(&external, lapin_tls(&pki.ca, Some(&pki.client("alice"))))
        .await
        .expect("EXTERNAL login by the certificate's CN");
    round_trip(&alice, "tls-external").await;
    assert_eq!(users(&broker).await, ["alice", "guest"]);

    // A verified certificate for a user the store does not have.
    let refused = connect(&external, lapin_tls(&pki.ca, Some(&pki.client("mallory")))).await;
    let err = refused
        .expect_err("EXTERNAL for an unknown user")
        .to_string();
    assert!(
        err.contains("Login was refused using authentication mechanism EXTERNAL"),
        "{err}"
    );
    alice.close(200, "bye".into()).await.unwrap();
    conn.close(200, "bye".into()).await.unwrap();
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_peer_without_fail_if_no_peer_cert_lets_password_logins_in() {
    let pki = Pki::new("warren test CA");
    let broker = tls_broker(&pki, Peers::Verified).await;

    let conn = connect(&url(&broker, "guest:guest@", ""), lapin_tls(&pki.ca, None))
        .await
        .expect("no certificate, PLAIN");
    round_trip(&conn, "tls-verify-optional").await;

    // EXTERNAL is offered, but without a certificate it names nobody.
    let refused = connect(
        &url(&broker, "", "?auth_mechanism=external"),
        lapin_tls(&pki.ca, None),
    )
    .await;
    let err = refused
        .expect_err("EXTERNAL without a certificate")
        .to_string();
    assert!(
        err.contains("ACCESS_REFUSED - Login was refused using authentication mechanism EXTERNAL"),
        "{err}"
    );
    conn.close(200, "bye".into()).await.unwrap();
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_or_garbled_tls_handshake_is_closed_and_the_broker_serves_on() {
    let pki = Pki::new("warren test CA");
    let broker = tls_broker(&pki, Peers::NotVerified).await;
    let addr = broker.tls_addr().unwrap();

    // Connects and never says a word: closed at the handshake timeout.
    let started = Instant::now();
    let mut idle = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(5), idle.read(&mut buf)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "the idle socket is closed"
    );
    let waited = started.elapsed();
    assert!(
        waited >= HANDSHAKE_TIMEOUT.mul_f32(0.9) && waited < HANDSHAKE_TIMEOUT * 4,
        "closed after {waited:?}"
    );

    // Speaks plain AMQP to the TLS port: the handshake fails, nothing panics.
    let mut plain = tokio::net::TcpStream::connect(addr).await.unwrap();
    plain.write_all(b"AMQP\x00\x00\x09\x01").await.unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(5), plain.read(&mut buf)).await;

    let conn = connect(&url(&broker, "guest:guest@", ""), lapin_tls(&pki.ca, None))
        .await
        .expect("the broker still serves TLS clients");
    conn.close(200, "bye".into()).await.unwrap();
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_tls_options_fail_the_start_with_what_to_fix() {
    let pki = Pki::new("warren test CA");
    let server = pki.server();
    // verify_peer without a client CA to verify against.
    let tls = TlsOptions::from_pem(server.cert.as_bytes(), server.key.as_bytes())
        .unwrap()
        .verify_peer(true);
    let err = Broker::builder()
        .listen("127.0.0.1:0".parse().unwrap())
        .tls_listen("127.0.0.1:0".parse().unwrap(), tls)
        .start()
        .await
        .expect_err("peer verification without a CA")
        .to_string();
    assert!(err.contains("CA"), "{err}");
    // A key that is not PEM.
    assert!(TlsOptions::from_pem(server.cert.as_bytes(), b"not a key").is_err());
    // No listener at all.
    let err = Broker::builder()
        .plain_listener(false)
        .start()
        .await
        .expect_err("no listener")
        .to_string();
    assert!(err.contains("no listener"), "{err}");
}
