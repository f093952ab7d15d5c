//! `warren call --timeout 2s` ends within 3 s, with the right exit code, whatever the
//! peer does: a black hole, a TCP connect that never completes, a peer silent after
//! the AMQP handshake, a `warren broker` process stopped with SIGSTOP (before the
//! call, or mid-call after the request was published), a broker killed mid-call, and
//! no broker at all.
//!
//! Each case prints its exit code and wall time (`-- --nocapture`), e.g.
//! `black hole: exit 6 after 2.04 s`.

mod common;
use common::broker_process;
use common::figures;
use common::hostile;

use std::process::Stdio;
use std::time::{Duration, Instant};

use broker_process::{BrokerProcess, WARREN};
use common::servers::announcing_sleep_server;
use common::unique;
use hostile::{BlackHole, FullBacklog, ScriptedPeer, SilentAfter};
use tokio::sync::mpsc;

/// The `--timeout` of every call.
const TIMEOUT: &str = "2s";
/// Every call must have ended by then.
const BOUND: Duration = Duration::from_secs(3);
/// Exit codes (`warren call --help`).
const EXIT_TIMEOUT: i32 = 4;
const EXIT_UNAVAILABLE: i32 = 6;

/// What one `warren call` did.
struct Ran {
    code: Option<i32>,
    stderr: String,
    took: Duration,
}

/// Runs `warren call --timeout 2s --url <url> --queue <queue> <body>`, killing it if
/// it runs past twice the bound (then the assertions below fail).
async fn call(url: &str, queue: &str, body: &str) -> Ran {
    let started = Instant::now();
    let child = tokio::process::Command::new(WARREN)
        .args([
            "call",
            "--timeout",
            TIMEOUT,
            "--url",
            url,
            "--queue",
            queue,
            body,
        ])
        .env_remove("AMQP_URL")
        .env_remove("WARREN_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("warren runs");
    let output = tokio::time::timeout(BOUND * 2, child.wait_with_output()).await;
    let took = started.elapsed();
    match output {
        Ok(Ok(out)) => Ran {
            code: out.status.code(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            took,
        },
        Ok(Err(e)) => panic!("waiting for warren failed: {e}"),
        Err(_) => Ran {
            code: None,
            stderr: "(still running: killed)".to_owned(),
            took,
        },
    }
}

/// Checks the exit code, the bound and (when given) a phrase of the message.
fn check(case: &str, ran: &Ran, code: i32, says: Option<&str>) {
    figures::report(&format!(
        "{case}: exit {} after {:.2} s",
        ran.code
            .map_or("none (killed)".to_owned(), |c| c.to_string()),
        ran.took.as_secs_f64()
    ));
    assert_eq!(ran.code, Some(code), "{case}: {}", ran.stderr);
    assert!(
        ran.took < BOUND,
        "{case}: took {:?} with --timeout {TIMEOUT}: {}",
        ran.took,
        ran.stderr
    );
    if let Some(phrase) = says {
        assert!(ran.stderr.contains(phrase), "{case}: {}", ran.stderr);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn black_hole_exits_unavailable_by_the_timeout() {
    let hole = BlackHole::start().await;
    let ran = call(&hole.url(), "q", "1").await;
    check("black hole", &ran, EXIT_UNAVAILABLE, Some("AMQP handshake"));
    assert!(
        ran.took >= Duration::from_millis(1900),
        "waited the timeout"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_connect_that_never_completes_exits_unavailable_by_the_timeout() {
    let backlog = FullBacklog::start().await;
    let ran = call(&backlog.url(), "q", "1").await;
    check(
        "TCP connect never completes",
        &ran,
        EXIT_UNAVAILABLE,
        Some("TCP connect"),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_silent_after_the_handshake_exits_unavailable_by_the_timeout() {
    let peer = ScriptedPeer::start(SilentAfter::OpenOk).await;
    let ran = call(&peer.url(), "q", "1").await;
    check(
        "peer silent after connection.open-ok",
        &ran,
        EXIT_UNAVAILABLE,
        Some("channel setup"),
    );
    assert_eq!(peer.silenced(), 1, "the handshake completed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_broker_exits_unavailable_by_the_timeout() {
    let broker = BrokerProcess::start_default();
    broker.pause();
    let ran = call(&broker.url(), "q", "1").await;
    check(
        "broker SIGSTOPped before the call",
        &ran,
        EXIT_UNAVAILABLE,
        Some("AMQP handshake"),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_stopped_mid_call_exits_timeout_by_the_timeout() {
    let broker = BrokerProcess::start_default();
    let q = unique("stopped");
    let (seen, mut started) = mpsc::unbounded_channel();
    let server = announcing_sleep_server(&broker.url(), &q, seen).await;
    let url = broker.url();
    let running = tokio::spawn({
        let q = q.clone();
        async move { call(&url, &q, "1500").await }
    });
    let got = tokio::time::timeout(BOUND, started.recv()).await;
    assert_eq!(
        got.ok().flatten().as_deref(),
        Some("1500"),
        "the request arrived"
    );
    broker.pause();
    let ran = running.await.expect("the call task ends");
    check(
        "broker SIGSTOPped mid-call",
        &ran,
        EXIT_TIMEOUT,
        Some("timed out after 2s"),
    );
    assert!(
        ran.took >= Duration::from_millis(1900),
        "waited the timeout"
    );
    drop(broker);
    server.shutdown().await.expect("server shuts down");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_killed_mid_call_exits_unavailable_at_once() {
    let mut broker = BrokerProcess::start_default();
    let q = unique("killed");
    let (seen, mut started) = mpsc::unbounded_channel();
    let server = announcing_sleep_server(&broker.url(), &q, seen).await;
    let url = broker.url();
    let running = tokio::spawn({
        let q = q.clone();
        async move { call(&url, &q, "1500").await }
    });
    let got = tokio::time::timeout(BOUND, started.recv()).await;
    assert_eq!(
        got.ok().flatten().as_deref(),
        Some("1500"),
        "the request arrived"
    );
    broker.kill9();
    let ran = running.await.expect("the call task ends");
    check(
        "broker killed mid-call",
        &ran,
        EXIT_UNAVAILABLE,
        Some("broker unavailable"),
    );
    assert!(
        ran.took < Duration::from_millis(1500),
        "failed before the reply was due"
    );
    server.shutdown().await.expect("server shuts down");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_broker_exits_unavailable_at_once() {
    let mut broker = BrokerProcess::start_default();
    let url = broker.url();
    broker.kill9();
    let ran = call(&url, "q", "1").await;
    check(
        "no broker (connection refused)",
        &ran,
        EXIT_UNAVAILABLE,
        Some("cannot connect"),
    );
    assert!(
        ran.took < Duration::from_secs(1),
        "a refused connect fails at once"
    );
}
