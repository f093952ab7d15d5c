//! `warren call` over TLS, against RabbitMQ's TLS listener (the throw-away node of
//! `scripts/rabbitmq-tls-node.sh`): with the test CA it prints the reply; trusting
//! another CA it exits 9 (TLS) with one plain line.

#[path = "common/run_warren.rs"]
mod run_warren;

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
