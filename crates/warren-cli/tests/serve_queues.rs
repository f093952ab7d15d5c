//! `warren serve` and the queue it declares: `--quorum` on a broker without quorum
//! queues is refused, and a queue that exists with other arguments is named with the
//! clash and the ways out (exit 8 for both).

mod common;
use common::run_warren;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::Target;
use lapin::options::QueueDeclareOptions;
use lapin::types::{AMQPValue, FieldTable};
use run_warren::{stderr, warren, WARREN};

/// `warren serve`'s exit code when the queue cannot be declared as asked.
const QUEUE_DECLARATION: i32 = 8;

/// Declares `queue` as `durable`, with `arguments`, as another program would have.
async fn declare(url: &str, queue: &str, durable: bool, arguments: FieldTable) {
    let conn = lapin::Connection::connect(url, Default::default())
        .await
        .expect("connect");
    let ch = conn.create_channel().await.expect("channel");
    let options = QueueDeclareOptions {
        durable,
        ..Default::default()
    };
    ch.queue_declare(queue.into(), options, arguments)
        .await
        .expect("declare");
    conn.close(200, "declared".into()).await.expect("close");
}

/// Whether `queue` exists (a passive declare).
async fn exists(url: &str, queue: &str) -> bool {
    let conn = lapin::Connection::connect(url, Default::default())
        .await
        .expect("connect");
    let ch = conn.create_channel().await.expect("channel");
    let passive = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let found = ch
        .queue_declare(queue.into(), passive, FieldTable::default())
        .await
        .is_ok();
    let _ = conn.close(200, "checked".into()).await;
    found
}

/// A durable queue declared by someone else: the plain `warren serve` says so.
async fn serve_names_a_durability_clash(t: Target) {
    let q = t.queue("durable-rpc");
    declare(&t.url, &q, true, FieldTable::default()).await;
    let out = warren(&["serve", "fib", "--queue", &q, "--url", &t.url]).await;
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(QUEUE_DECLARATION), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(
        err.contains(&format!(
            "queue {q} exists with durable=true; this command wants durable=false"
        )),
        "{err}"
    );
    assert!(
        err.contains("delete the queue") && err.contains("--queue"),
        "{err}"
    );
}

broker_tests!(serve_names_a_durability_clash);

#[tokio::test]
async fn quorum_on_the_embedded_broker_is_refused() {
    let t = Target::embedded().await;
    let q = t.queue("quorum-rpc");
    let out = warren(&["serve", "fib", "--quorum", "--queue", &q, "--url", &t.url]).await;
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(QUEUE_DECLARATION), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(
        err.contains("has no quorum queues") && err.contains("drop --quorum"),
        "{err}"
    );
    assert!(!exists(&t.url, &q).await, "{q} was declared all the same");
}

mod quorum_on {
    use super::*;

    /// `warren serve --quorum` until it prints its ready line, then SIGTERM.
    async fn serve_quorum_once(url: &str, queue: &str) {
        let mut child = Command::new(WARREN)
            .args(["serve", "fib", "--quorum", "--queue", queue, "--url", url])
            .env_remove("AMQP_URL")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("warren runs");
        let stdout = child.stdout.take().expect("stdout is piped");
        let first = tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            BufReader::new(stdout).read_line(&mut line).map(|_| line)
        })
        .await
        .expect("the reader ends")
        .expect("stdout reads");
        let killed = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill runs");
        let out = tokio::task::spawn_blocking(move || child.wait_with_output())
            .await
            .expect("the waiter ends")
            .expect("warren exits");
        assert_eq!(first, " [x] Awaiting RPC requests\n", "{}", stderr(&out));
        assert!(killed.success());
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    }

    async fn quorum_serves_and_clashes_are_named(t: Target) {
        // A real quorum queue: served, and then the plain declaration clashes with it.
        let q = t.queue("quorum-rpc");
        serve_quorum_once(&t.url, &q).await;
        let plain = warren(&["serve", "fib", "--queue", &q, "--url", &t.url]).await;
        let err = stderr(&plain);
        assert_eq!(plain.status.code(), Some(QUEUE_DECLARATION), "{err}");
        assert!(
            err.contains(&format!(
                "queue {q} exists with durable=true; this command wants durable=false"
            )) && err.contains("add --quorum"),
            "{err}"
        );

        // A durable classic queue: --quorum names the queue type it lacks.
        let classic = t.queue("classic-rpc");
        let mut args = FieldTable::default();
        args.insert(
            "x-queue-type".into(),
            AMQPValue::LongString("classic".into()),
        );
        declare(&t.url, &classic, true, args).await;
        let quorum = warren(&[
            "serve", "fib", "--quorum", "--queue", &classic, "--url", &t.url,
        ])
        .await;
        let err = stderr(&quorum);
        assert_eq!(quorum.status.code(), Some(QUEUE_DECLARATION), "{err}");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(
            err.contains(&format!(
                "queue {classic} exists with x-queue-type=classic; this command wants \
                 x-queue-type=quorum"
            )) && err.contains("drop --quorum"),
            "{err}"
        );
    }

    mod rabbitmq {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        #[ignore = "needs WARREN_RABBITMQ_URL (a RabbitMQ to declare queues on)"]
        async fn quorum_serves_and_clashes_are_named() {
            let t = crate::common::Target::rabbitmq();
            crate::common::run(t, 60, super::quorum_serves_and_clashes_are_named).await;
        }
    }
}
