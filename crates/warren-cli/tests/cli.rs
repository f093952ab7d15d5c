//! The `warren` command end to end: output, exit codes and signals.

mod common;
use common::run_warren;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{unique, Target};
use run_warren::{stderr, warren, WARREN};
use warren_rpc::{services::fib, Request, Response, RpcClient, RpcServer};

async fn call_prints_reply_and_exit_codes(t: Target) {
    let q = t.queue("fib");
    let slow = t.queue("slow");
    let server = RpcServer::new()
        .route(q.as_str(), fib::handle)
        .route(slow.as_str(), |_r: Request| async {
            tokio::time::sleep(Duration::from_secs(3)).await;
            Ok(Response::text("late"))
        })
        .start(&t.url)
        .await
        .unwrap();
    let url = t.url.as_str();

    let ok = warren(&["call", "--url", url, "--queue", &q, "30"]).await;
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
    assert_eq!(String::from_utf8_lossy(&ok.stdout), "832040\n");

    let bad = warren(&["call", "--url", url, "--queue", &q, "abc"]).await;
    assert_eq!(bad.status.code(), Some(3));
    assert!(
        stderr(&bad).contains("invalid_argument"),
        "{}",
        stderr(&bad)
    );
    assert!(bad.stdout.is_empty());

    let started = Instant::now();
    let none = warren(&["call", "--url", url, "--queue", &unique("nobody"), "1"]).await;
    assert_eq!(none.status.code(), Some(5), "{}", stderr(&none));
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert!(stderr(&none).contains("no route"), "{}", stderr(&none));
    assert_eq!(
        stderr(&none).lines().count(),
        1,
        "one clear line: {}",
        stderr(&none)
    );

    let late = warren(&[
        "call",
        "--url",
        url,
        "--queue",
        &slow,
        "--timeout",
        "200ms",
        "1",
    ])
    .await;
    assert_eq!(late.status.code(), Some(4), "{}", stderr(&late));
    assert!(stderr(&late).contains("timed out"), "{}", stderr(&late));

    server.shutdown().await.unwrap();
}

async fn serve_answers_and_stops_on_sigterm(t: Target) {
    let q = t.queue("fib");
    let mut child = Command::new(WARREN)
        .args([
            "serve",
            "fib",
            "--queue",
            &q,
            "--concurrency",
            "4",
            "--url",
            &t.url,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let first_line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map(|_| line)
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(first_line, " [x] Awaiting RPC requests\n");
    let client = RpcClient::connect(&t.url).await.unwrap();
    assert_eq!(
        client.call(&q, "30").await.unwrap().text().unwrap(),
        "832040"
    );
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

#[tokio::test]
async fn call_without_broker_exits_6() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("amqp://guest:guest@127.0.0.1:{port}/%2f");
    let out = warren(&["call", "--url", &url, "1"]).await;
    assert_eq!(out.status.code(), Some(6));
    let err = stderr(&out);
    assert!(
        err.contains("cannot connect") && err.contains("AMQP_URL"),
        "{err}"
    );
    assert!(
        !err.contains("guest:guest"),
        "password must not be printed: {err}"
    );
}

#[tokio::test]
async fn bench_counts_every_call_and_reports_json() {
    let out = warren(&["bench", "--calls", "300", "--in-flight", "8", "--json"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let json = String::from_utf8_lossy(&out.stdout);
    assert!(json.contains("\"calls_ok\":300,"), "{json}");
    assert!(json.contains("\"calls_failed\":0,"), "{json}");
    for key in [
        "calls_per_sec",
        "p50_ms",
        "p99_ms",
        "p999_ms",
        "max_ms",
        "cpu_us_per_call",
    ] {
        assert!(
            json.contains(&format!("\"{key}\":")),
            "missing {key}: {json}"
        );
    }
}

#[tokio::test]
async fn bench_typed_checks_every_calc_add_and_splits_cpu_by_role() {
    let out = warren(&[
        "bench",
        "--typed",
        "--calls",
        "200",
        "--in-flight",
        "4",
        "--json",
    ])
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let json = String::from_utf8_lossy(&out.stdout);
    assert!(json.contains("\"mode\":\"typed\""), "{json}");
    assert!(json.contains("\"calls_ok\":200,"), "{json}");
    assert!(json.contains("\"calls_failed\":0,"), "{json}");
    // The embedded broker runs in-process on its own threads: its share is measured.
    assert!(!json.contains("\"broker\":null"), "{json}");
    for role in ["client", "worker", "broker", "other", "process"] {
        assert!(
            json.contains(&format!("\"{role}\":")),
            "missing {role}: {json}"
        );
    }
}

/// `warren bench` on a broker it did not start declares a queue of its own; that queue
/// goes away with its workers (nothing piles up on a shared RabbitMQ).
async fn bench_leaves_no_queue_behind(t: Target) {
    let url = t.url.clone();
    let (pid, out) = tokio::task::spawn_blocking(move || {
        let child = Command::new(WARREN)
            .args(["bench", "--url", &url, "--calls", "200", "--json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("warren runs");
        (child.id(), child.wait_with_output().expect("warren exits"))
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let conn = lapin::Connection::connect(&t.url, Default::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    let passive = lapin::options::QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let queue = format!("warren-bench-{pid}");
    let gone = ch
        .queue_declare(queue.as_str().into(), passive, Default::default())
        .await;
    assert!(gone.is_err(), "{queue} was left behind");
    let _ = conn.close(200, "done".into()).await;
}

#[tokio::test]
async fn demo_prints_the_tutorial_exchange() {
    let out = warren(&["demo"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        " [x] Requesting fib(30)\n [.] Got 832040\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_fails_over_to_the_next_url() {
    let t = Target::embedded().await;
    let q = t.queue("fib");
    let server = RpcServer::new()
        .route(q.as_str(), fib::handle)
        .start(&t.url)
        .await
        .unwrap();
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let dead_url = format!("amqp://guest:guest@{dead}/%2f");
    let out = warren(&[
        "call", "--url", &dead_url, "--url", &t.url, "--queue", &q, "30",
    ])
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "832040\n");
    let joined = format!("{dead_url},{}", t.url);
    let out = warren(&["call", "--url", &joined, "--queue", &q, "10"]).await;
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "55\n",
        "{}",
        stderr(&out)
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn call_help_documents_exit_codes() {
    let out = warren(&["call", "--help"]).await;
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "3  the server answered",
        "4  timeout",
        "5  no route",
        "6  broker unavailable",
    ] {
        assert!(help.contains(needle), "missing {needle:?} in:\n{help}");
    }
}

broker_tests!(
    call_prints_reply_and_exit_codes,
    serve_answers_and_stops_on_sigterm,
    bench_leaves_no_queue_behind
);

#[tokio::test]
async fn wrong_password_exits_7_with_one_plain_line() {
    let broker = warren_broker::Broker::builder()
        .listen(([127, 0, 0, 1], 0).into())
        .credentials("alice", "right")
        .start()
        .await
        .unwrap();
    let addr = broker.local_addr();
    let url = format!("amqp://alice:wrong@{addr}/%2f");
    let out = warren(&["call", "--url", &url, "--timeout", "3s", "1"]).await;
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(7), "{err}");
    assert!(
        err.contains("refused the credentials for user alice") && err.contains("ACCESS_REFUSED"),
        "{err}"
    );
    assert!(!err.contains("is the broker running"), "{err}");
    assert!(
        !err.contains("wrong"),
        "password must not be printed: {err}"
    );
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(
        !err.contains('\u{1b}'),
        "no ANSI colour off a terminal: {err}"
    );
    broker.shutdown().await;
}

#[tokio::test]
async fn bad_arguments_are_usage_errors() {
    for args in [
        &["call", "--url", "http://127.0.0.1:15672", "1"][..],
        &["call", "--timeout", "0", "1"],
        &["serve", "fib", "--concurrency", "0"],
    ] {
        let out = warren(args).await;
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains("unsupported URL scheme \"http\"")
                || err.contains("greater than zero")
                || err.contains("not in 1.."),
            "{args:?}: {err}"
        );
    }
}

#[tokio::test]
async fn help_documents_rust_log() {
    let out = warren(&["--help"]).await;
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("RUST_LOG") && help.contains("WARREN_LOG"),
        "{help}"
    );
}

#[tokio::test]
async fn completions_cover_every_subcommand_in_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let out = warren(&["completions", shell]).await;
        assert_eq!(out.status.code(), Some(0), "{shell}: {}", stderr(&out));
        let script = String::from_utf8_lossy(&out.stdout);
        for word in ["serve", "call", "bench", "broker", "completions", "quorum"] {
            assert!(script.contains(word), "{shell} script lacks {word}");
        }
    }
    // bash loads its script and registers a completion for `warren`.
    let out = warren(&["completions", "bash"]).await;
    let loaded = Command::new("bash")
        .args(["--norc", "-c", "eval \"$1\" && complete -p warren", "bash"])
        .arg(String::from_utf8_lossy(&out.stdout).as_ref())
        .output()
        .expect("bash runs");
    assert_eq!(loaded.status.code(), Some(0), "{}", stderr(&loaded));
    assert!(
        String::from_utf8_lossy(&loaded.stdout).contains("_warren"),
        "{}",
        String::from_utf8_lossy(&loaded.stdout)
    );
    let bad = warren(&["completions", "tcsh"]).await;
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
}
