//! Typed services from the command line: `warren serve calc` answers
//! `warren call --method`, with the body as an argument or on stdin (`-`).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Output, Stdio};

use common::{unique, Target};

const WARREN: &str = env!("CARGO_BIN_EXE_warren");

/// Runs `warren args..`, feeding `stdin` to it.
async fn warren(args: &[&str], stdin: &[u8]) -> Output {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let stdin = stdin.to_vec();
    tokio::task::spawn_blocking(move || {
        let mut child = Command::new(WARREN)
            .args(&args)
            .env_remove("AMQP_URL")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("warren runs");
        if let Some(mut input) = child.stdin.take() {
            input.write_all(&stdin).expect("stdin is written");
        }
        child.wait_with_output().expect("warren exits")
    })
    .await
    .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `warren serve calc [--queue queue]`, once it is serving.
async fn serve_calc(url: &str, queue: Option<&str>) -> Child {
    let mut args = vec!["serve", "calc", "--url", url];
    if let Some(queue) = queue {
        args.extend(["--queue", queue]);
    }
    let mut child = Command::new(WARREN)
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let first = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map(|_| line)
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(first, " [x] Awaiting RPC requests\n");
    child
}

async fn stop(mut child: Child) {
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));
}

async fn delete_queue(url: &str, queue: &str) {
    let conn = lapin::Connection::connect(url, Default::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    ch.queue_delete(queue.into(), Default::default())
        .await
        .unwrap();
    let _ = conn.close(200, "done".into()).await;
}

async fn serve_calc_answers_call_method(t: Target) {
    let q = unique("calc");
    let server = serve_calc(&t.url, Some(&q)).await;
    let url = t.url.as_str();

    let add = warren(
        &[
            "call",
            "--url",
            url,
            "--queue",
            &q,
            "--method",
            "add",
            r#"{"a":2,"b":3}"#,
        ],
        b"",
    )
    .await;
    assert_eq!(add.status.code(), Some(0), "{}", text(&add.stderr));
    assert_eq!(text(&add.stdout), "5\n");

    let fib = warren(
        &["call", "--url", url, "--queue", &q, "--method", "fib", "-"],
        br#"{"n": 30}"#,
    )
    .await;
    assert_eq!(fib.status.code(), Some(0), "{}", text(&fib.stderr));
    assert_eq!(text(&fib.stdout), "\"832040\"\n", "a JSON string");

    let missing = warren(
        &[
            "call",
            "--url",
            url,
            "--queue",
            &q,
            "--method",
            "add",
            r#"{"a":2}"#,
        ],
        b"",
    )
    .await;
    assert_eq!(missing.status.code(), Some(3));
    let err = text(&missing.stderr);
    assert!(
        err.contains("invalid_argument") && err.contains("missing field `b`"),
        "{err}"
    );

    let unknown = warren(
        &["call", "--url", url, "--queue", &q, "--method", "mul", "{}"],
        b"",
    )
    .await;
    assert_eq!(unknown.status.code(), Some(3));
    assert!(text(&unknown.stderr).contains("unimplemented"));

    let failed = warren(
        &[
            "call",
            "--url",
            url,
            "--queue",
            &q,
            "--method",
            "fail",
            r#"{"code":"not_found","message":"no such key"}"#,
        ],
        b"",
    )
    .await;
    assert_eq!(failed.status.code(), Some(3));
    assert!(
        text(&failed.stderr).contains("not_found: no such key"),
        "{}",
        text(&failed.stderr)
    );

    let slow = warren(
        &[
            "call",
            "--url",
            url,
            "--queue",
            &q,
            "--method",
            "sleep",
            "--timeout",
            "200ms",
            r#"{"ms":2000}"#,
        ],
        b"",
    )
    .await;
    assert_eq!(slow.status.code(), Some(4), "{}", text(&slow.stderr));

    stop(server).await;
    delete_queue(url, &q).await;
}

/// Without `--queue`, `warren serve calc` serves `calc` (embedded broker only: the
/// shared RabbitMQ's `calc` may be someone else's).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_calc_defaults_to_queue_calc() {
    let t = Target::embedded().await;
    let server = serve_calc(&t.url, None).await;
    let add = warren(
        &[
            "call",
            "--url",
            &t.url,
            "--queue",
            "calc",
            "--method",
            "add",
            r#"{"a":40,"b":2}"#,
        ],
        b"",
    )
    .await;
    assert_eq!(add.status.code(), Some(0), "{}", text(&add.stderr));
    assert_eq!(text(&add.stdout), "42\n");
    stop(server).await;
}

/// `-` reads an untyped body from stdin too; `warren serve fib` is unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_reads_the_body_from_stdin() {
    let t = Target::embedded().await;
    let server = warren_rpc::RpcServer::new()
        .route(
            warren_rpc::services::fib::QUEUE,
            warren_rpc::services::fib::handle,
        )
        .start(&t.url)
        .await
        .unwrap();
    let out = warren(&["call", "--url", &t.url, "-"], b"30\n").await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "832040\n");
    server.shutdown().await.unwrap();
}

broker_tests!(serve_calc_answers_call_method);
