//! `warren call --tls-ca` and `warren serve --tls-ca` over TLS: against `warren broker
//! --tls-listen` with its plain listener off (certificates made here, per run), and in
//! `rabbitmq_tls` against RabbitMQ's TLS listener (the throw-away node of
//! `scripts/rabbitmq-tls-node.sh`). With the right CA a call goes through; trusting
//! another CA `warren call` exits 9 (TLS) with one plain line.

mod common;
use common::broker_process;

use broker_process::{BrokerProcess, WARREN};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use warren_test_support::pki::PkiDir;

/// `warren broker` with only a TLS listener on the PKI's server certificate, plus
/// `extra` flags.
fn tls_only_broker(pki: &PkiDir, extra: &[&str]) -> BrokerProcess {
    let (cert, key) = (pki.path("server.pem"), pki.path("server.key"));
    let mut args = vec![
        "--no-plain-listen",
        "--tls-listen",
        "127.0.0.1:0",
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
    ];
    args.extend_from_slice(extra);
    BrokerProcess::start(args)
}

/// A child process killed when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn warren(args: &[&str]) -> Output {
    Command::new(WARREN)
        .args(args)
        .env_remove("AMQP_URL")
        .output()
        .expect("warren runs")
}

#[test]
fn call_and_serve_over_the_brokers_tls_listener() {
    let pki = PkiDir::new("warren-cli-tls");
    let broker = tls_only_broker(&pki, &[]);
    assert!(
        broker.ready_line().contains("for TLS only"),
        "{}",
        broker.ready_line()
    );
    let url = format!("amqps://guest:guest@localhost:{}/%2f", broker.port());
    let queue = format!("tls-fib-{}", std::process::id());
    let serve = Command::new(WARREN)
        .args([
            "serve",
            "fib",
            "--queue",
            &queue,
            "--url",
            &url,
            "--tls-ca",
            &pki.path("ca.pem"),
        ])
        .env_remove("AMQP_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("warren serve runs");
    let _serve = Killed(serve);

    // Until the server has declared its queue, a call finds no route (exit 5).
    let ca = pki.path("ca.pem");
    let call = [
        "call", "--queue", &queue, "--url", &url, "--tls-ca", &ca, "10",
    ];
    let deadline = Instant::now() + Duration::from_secs(20);
    let out = loop {
        let out = warren(&call);
        if out.status.success() || Instant::now() > deadline {
            break out;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "55");

    let other = pki.path("other-ca.pem");
    let bad = warren(&[
        "call", "--queue", &queue, "--url", &url, "--tls-ca", &other, "10",
    ]);
    assert_eq!(
        bad.status.code(),
        Some(9),
        "a CA that did not sign the broker's certificate"
    );
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains("not signed by a trusted CA"), "{stderr}");
}

#[test]
fn a_broker_that_requires_a_client_certificate_refuses_a_call_without_one_with_exit_9() {
    let pki = PkiDir::new("warren-cli-tls-client-cert");
    let ca = pki.path("ca.pem");
    let broker = tls_only_broker(&pki, &["--tls-ca", &ca, "--tls-fail-if-no-peer-cert"]);
    let url = format!("amqps://guest:guest@localhost:{}/%2f", broker.port());
    let out = warren(&[
        "call",
        "--queue",
        "tls-no-client-cert",
        "--url",
        &url,
        "--tls-ca",
        &ca,
        "10",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // TLS 1.3: the refusal is an alert after the client's handshake; still a TLS failure.
    assert_eq!(out.status.code(), Some(9), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.contains("refused the client certificate"),
        "{stderr}"
    );
    assert!(stderr.contains("--tls-cert"), "says what to do: {stderr}");
    assert!(out.stdout.is_empty());
}

use common::run_warren;

/// Needs `WARREN_TLS_RABBITMQ_URL` and `WARREN_TLS_CA` (scripts/rabbitmq-tls-node.sh).
mod rabbitmq_tls {
    use std::path::Path;

    use warren_rpc::{services::fib, QueueSpec, RpcServer, TlsConfig};

    use super::run_warren::{stderr, warren};

    fn env(name: &str) -> String {
        std::env::var(name).unwrap_or_else(|_| {
            panic!("{name} is not set: start the node with scripts/rabbitmq-tls-node.sh start")
        })
    }

    #[tokio::test]
    #[ignore = "needs WARREN_TLS_RABBITMQ_URL: a RabbitMQ TLS listener (scripts/rabbitmq-tls-node.sh)"]
    async fn call_with_tls_ca_works_and_another_ca_exits_9_with_one_line() {
        let (url, ca) = (env("WARREN_TLS_RABBITMQ_URL"), env("WARREN_TLS_CA"));
        let other_ca = Path::new(&ca).with_file_name("other-ca.pem");
        let other_ca = other_ca.to_str().expect("a UTF-8 path");
        let queue = format!("warren-tls-fib-{}", std::process::id());
        let server = RpcServer::new()
            .tls(TlsConfig::new().ca_file(&ca).unwrap())
            .route(
                QueueSpec::tutorial(queue.as_str()).auto_delete(true),
                fib::handle,
            )
            .start(&url)
            .await
            .expect("the fib server connects over TLS");

        let ok = warren(&[
            "call", "--url", &url, "--tls-ca", &ca, "--queue", &queue, "30",
        ])
        .await;
        assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
        assert_eq!(String::from_utf8_lossy(&ok.stdout), "832040\n");

        let bad = warren(&[
            "call", "--url", &url, "--tls-ca", other_ca, "--queue", &queue, "30",
        ])
        .await;
        let err = stderr(&bad);
        assert_eq!(bad.status.code(), Some(9), "{err}");
        assert_eq!(err.lines().count(), 1, "one plain line: {err}");
        assert!(err.contains("not signed by a trusted CA"), "{err}");
        assert!(err.contains("--tls-ca"), "says what to do: {err}");
        assert!(bad.stdout.is_empty());

        server.shutdown().await.unwrap();
    }
}
