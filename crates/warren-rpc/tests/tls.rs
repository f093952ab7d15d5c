//! Client TLS: a Warren client reaches the embedded broker's TLS listener, with server
//! verification on. A bad CA, a wrong host name and an expired certificate each fail
//! with their own [`TlsFailure`]; a broker that demands a client certificate refuses
//! a client without one and admits one with it, also by EXTERNAL login. Certificates
//! are made here, per run.

use std::net::SocketAddr;
use std::time::Duration;

use warren_broker::{Broker, BrokerHandle, TlsOptions};
use warren_rpc::{Error, RpcClient, TlsConfig, TlsFailure};
use warren_test_support::pki::{Pair, Pki};

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
    let (_good, good) = tls_broker(&pki.server(), None).await;
    let (_expired, expired) = tls_broker(&pki.expired_server(), None).await;
    let (_wrong, wrong_name) = tls_broker(&pki.server_for(&["elsewhere.example"]), None).await;
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
    let server = pki.server();
    let (_broker, front) = tls_broker(&server, Some(&pki.ca)).await;
    let url = format!("amqps://guest:guest@localhost:{}/%2f", front.port());
    let trust = || TlsConfig::new().ca_pem(pki.ca.as_bytes()).unwrap();

    // The broker's alert is a TLS failure (exit 9 in the CLI), not a lost connection.
    let refused = tls_failure(connect(&url, trust()).await);
    assert!(
        matches!(refused, TlsFailure::ClientCertificateRefused(_)),
        "no client certificate: {refused:?}"
    );

    let me = pki.client("guest");
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

/// The same checks against RabbitMQ's own TLS listener: the throw-away node of
/// `scripts/rabbitmq-tls-node.sh` (`WARREN_TLS_RABBITMQ_URL`, its CA at
/// `WARREN_TLS_CA` with the rest of the test PKI beside it, `WARREN_TLS_NODE`). The
/// bad certificates are served by RabbitMQ itself: a test copies one over the file
/// the listener serves and clears Erlang's PEM cache, and puts the good one back when
/// it ends (so these tests run one at a time, `--test-threads=1`).
mod rabbitmq_tls {
    use std::path::{Path, PathBuf};
    use warren_test_support::access;

    use warren_rpc::{QueueSpec, Request, Response, RpcServer, TlsConfig, TlsFailure};

    use super::{connect, tls_failure};

    fn env(name: &str) -> String {
        std::env::var(name).unwrap_or_else(|_| {
            panic!("{name} is not set: start the node with scripts/rabbitmq-tls-node.sh start")
        })
    }

    fn url() -> String {
        env("WARREN_TLS_RABBITMQ_URL")
    }

    /// The directory of the test PKI (scripts/tls-certs.sh).
    fn pki() -> PathBuf {
        Path::new(&env("WARREN_TLS_CA"))
            .parent()
            .expect("WARREN_TLS_CA is a file in the PKI directory")
            .to_path_buf()
    }

    fn trust() -> TlsConfig {
        TlsConfig::new().ca_file(env("WARREN_TLS_CA")).unwrap()
    }

    /// `rabbitmqctl` on the TLS node, which must succeed.
    fn ctl(args: &[&str]) -> String {
        access::ctl(&env("WARREN_TLS_NODE"), args)
    }

    /// Has the node serve `name`.pem / `name`.key from the PKI directory to new
    /// connections.
    fn serve(name: &str) {
        let dir = pki();
        for ext in ["pem", "key"] {
            std::fs::copy(
                dir.join(format!("{name}.{ext}")),
                dir.join(format!("served.{ext}")),
            )
            .expect("copy the certificate to serve");
        }
        ctl(&["eval", "ssl:clear_pem_cache()."]);
    }

    /// Serves `name` until dropped, then the good certificate again.
    struct Serving;

    impl Serving {
        fn cert(name: &str) -> Serving {
            serve(name);
            Serving
        }
    }

    impl Drop for Serving {
        fn drop(&mut self) {
            serve("server");
        }
    }

    /// The user name and TLS flag of each connection of the node, as
    /// `rabbitmqctl list_connections user ssl` prints them.
    fn connections() -> Vec<(String, bool)> {
        ctl(&[
            "list_connections",
            "--no-table-headers",
            "-q",
            "user",
            "ssl",
        ])
        .lines()
        .filter_map(|l| {
            let mut cols = l.split('\t');
            Some((cols.next()?.to_owned(), cols.next()? == "true"))
        })
        .collect()
    }

    #[tokio::test]
    #[ignore = "needs WARREN_TLS_RABBITMQ_URL: a RabbitMQ TLS listener (scripts/rabbitmq-tls-node.sh)"]
    async fn a_call_round_trips_through_rabbitmqs_tls_listener_with_verification() {
        let queue = format!("warren-tls-echo-{}", std::process::id());
        let server = RpcServer::new()
            .tls(trust())
            .route(
                QueueSpec::tutorial(queue.as_str()).auto_delete(true),
                |req: Request| async move { Ok(Response::new(req.body, req.content_type)) },
            )
            .start(&url())
            .await
            .expect("the worker connects over TLS");
        let client = connect(&url(), trust())
            .await
            .expect("verified TLS connect");
        let reply = client
            .call(&queue, b"over tls")
            .await
            .expect("a call over TLS");
        assert_eq!(reply.body, b"over tls");
        let conns = connections();
        let tls_guests = conns.iter().filter(|(u, ssl)| u == "guest" && *ssl).count();
        assert!(
            tls_guests >= 2,
            "RabbitMQ sees the worker's and the client's connections as TLS: {conns:?}"
        );
        client.shutdown().await.unwrap();
        server.shutdown().await.unwrap();
    }

    #[tokio::test]
    #[ignore = "needs WARREN_TLS_RABBITMQ_URL: a RabbitMQ TLS listener (scripts/rabbitmq-tls-node.sh)"]
    async fn a_bad_ca_an_expired_certificate_and_a_wrong_name_fail_by_cause() {
        let other_ca = TlsConfig::new()
            .ca_file(pki().join("other-ca.pem"))
            .unwrap();
        assert_eq!(
            tls_failure(connect(&url(), other_ca).await),
            TlsFailure::UnknownCa
        );
        {
            let _expired = Serving::cert("expired");
            assert_eq!(
                tls_failure(connect(&url(), trust()).await),
                TlsFailure::Expired
            );
        }
        {
            let _wrong = Serving::cert("wrong-name");
            let err = connect(&url(), trust()).await;
            assert_eq!(tls_failure(err), TlsFailure::NameMismatch);
        }
        // The good certificate is back, and the failures were the certificates'.
        let client = connect(&url(), trust())
            .await
            .expect("verified TLS connect");
        client.shutdown().await.unwrap();
    }

    #[tokio::test]
    #[ignore = "needs WARREN_TLS_RABBITMQ_URL: a RabbitMQ TLS listener (scripts/rabbitmq-tls-node.sh)"]
    async fn a_client_certificate_logs_in_with_external_and_one_from_another_ca_is_refused() {
        const USER: &str = "warren-tls-client";
        access::ctl_quiet(&env("WARREN_TLS_NODE"), &["delete_user", USER]);
        ctl(&["add_user", USER, "unused-password"]);
        ctl(&["clear_password", USER]);
        ctl(&["set_permissions", "-p", "/", USER, ".*", ".*", ".*"]);
        // No credentials in the URL: the broker takes the user from the certificate.
        let url = url().replacen("guest:guest@", "", 1);
        let dir = pki();

        let mine = trust()
            .client_cert_files(dir.join("client.pem"), dir.join("client.key"))
            .unwrap()
            .external_login();
        let result = connect(&url, mine).await;
        let seen = connections();
        let client = result.expect("EXTERNAL login with the client certificate");
        assert!(
            seen.iter().any(|(user, ssl)| user == USER && *ssl),
            "RabbitMQ logged the connection in as {USER}: {seen:?}"
        );
        client.shutdown().await.unwrap();

        let foreign = trust()
            .client_cert_files(dir.join("other-client.pem"), dir.join("other-client.key"))
            .unwrap()
            .external_login();
        // RabbitMQ sends an alert, but at times resets the socket so fast that the alert
        // is lost: either way a TLS failure (exit 9 in the CLI), not a lost connection.
        let refused = tls_failure(connect(&url, foreign).await);
        assert!(
            matches!(
                refused,
                TlsFailure::ClientCertificateRefused(_) | TlsFailure::ClosedAfterHandshake(_)
            ),
            "a certificate from another CA is refused: {refused:?}"
        );
        ctl(&["delete_user", USER]);
    }
}
