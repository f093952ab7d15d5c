//! Deadlines against hostile peers: `RpcClient::connect`, `call` and `close`, and
//! `RpcServer::start` and `shutdown`, each end by their bound whatever the peer does
//! (a black hole, a TCP connect that never completes, a peer silent after part of the
//! handshake, a broker frozen mid-call, a broker that drops the connection), with the
//! error naming the step that stalled. A frozen broker is also detected by heartbeats
//! and the client reconnects once it answers again.
//!
//! Each case prints its measured wall time (`cargo test ... -- --nocapture`).

mod common;
use common::hostile;

use std::time::{Duration, Instant};

use common::servers::announcing_sleep_server;
use common::{bounded, unique, Target};
use hostile::{BlackHole, FullBacklog, Proxy, ScriptedPeer, SilentAfter};
use tokio::sync::mpsc;
use warren_rpc::{
    CallOptions, ConnectStep, Error, Request, Response, RpcClient, RpcServer, Status,
};

/// Slack allowed past a bound: scheduling on a loaded 2-core machine.
const SLACK: Duration = Duration::from_millis(700);

/// Checks that `took` is within `bound` (plus [`SLACK`]) and prints it.
fn ends_by(case: &str, outcome: &str, took: Duration, bound: Duration) {
    println!("{case}: {outcome} after {:.2} s", took.as_secs_f64());
    assert!(
        took <= bound + SLACK,
        "{case}: took {took:?}, bound {bound:?}"
    );
}

fn stalled_at(err: &Error) -> Option<ConnectStep> {
    match err {
        Error::ConnectTimeout { step, .. } => Some(*step),
        _ => None,
    }
}

async fn connect_fails_at(case: &str, url: String, step: ConnectStep) {
    let bound = Duration::from_secs(1);
    let started = Instant::now();
    let err = RpcClient::builder()
        .connect_timeout(bound)
        .connect(&url)
        .await
        .expect_err("connecting to a stalled peer must fail");
    let took = started.elapsed();
    ends_by(case, &format!("{err}"), took, bound);
    assert_eq!(stalled_at(&err), Some(step), "{err}");
    assert!(
        took >= bound - Duration::from_millis(50),
        "{case}: gave up early ({took:?}): {err}"
    );
    assert!(err.is_retryable(), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_connect_to_a_black_hole_ends_at_the_connect_timeout() {
    let hole = BlackHole::start().await;
    connect_fails_at(
        "client connect, black hole",
        hole.url(),
        ConnectStep::AmqpHandshake,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_connect_whose_tcp_connect_hangs_says_so() {
    let backlog = FullBacklog::start().await;
    connect_fails_at(
        "client connect, TCP connect never completes",
        backlog.url(),
        ConnectStep::TcpConnect,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_connect_to_a_peer_silent_after_start_ok() {
    let peer = ScriptedPeer::start(SilentAfter::StartOk).await;
    connect_fails_at(
        "client connect, peer silent after connection.start-ok",
        peer.url(),
        ConnectStep::AmqpHandshake,
    )
    .await;
    assert_eq!(peer.silenced(), 1, "the client got as far as start-ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_connect_to_a_peer_silent_after_open_ok() {
    let peer = ScriptedPeer::start(SilentAfter::OpenOk).await;
    connect_fails_at(
        "client connect, peer silent after connection.open-ok",
        peer.url(),
        ConnectStep::ChannelSetup,
    )
    .await;
    assert_eq!(peer.silenced(), 1, "the handshake completed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_black_hole_does_not_starve_the_fallback_address() {
    let t = Target::embedded().await;
    let hole = BlackHole::start().await;
    let bound = Duration::from_secs(2);
    let started = Instant::now();
    let client = RpcClient::builder()
        .fallback_url(t.url.clone())
        .connect_timeout(bound)
        .connect(&hole.url())
        .await
        .expect("the fallback address answers");
    ends_by(
        "client connect, black hole then a live broker",
        "connected",
        started.elapsed(),
        bound,
    );
    assert!(client.is_connected());
    client.shutdown().await.expect("closes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_and_close_end_by_their_bounds_when_the_broker_freezes_mid_call() {
    bounded(30, async {
        let t = Target::embedded().await;
        let broker = t.embedded.as_ref().expect("embedded").local_addr();
        let proxy = Proxy::start(broker).await;
        let q = unique("frozen");
        let (seen, mut started) = mpsc::unbounded_channel();
        let server = announcing_sleep_server(&t.url, &q, seen).await;
        let close_bound = Duration::from_millis(500);
        let client = RpcClient::builder()
            .shutdown_timeout(close_bound)
            .connect(&proxy.url())
            .await
            .expect("connects through the proxy");
        let call_bound = Duration::from_secs(2);
        let call = {
            let (client, q) = (client.clone(), q.clone());
            tokio::spawn(async move {
                let started = Instant::now();
                let outcome = client
                    .call_with(&q, "1500", CallOptions::new().timeout(call_bound))
                    .await;
                (outcome, started.elapsed())
            })
        };
        assert_eq!(started.recv().await.as_deref(), Some("1500"));
        proxy.freeze();
        let (outcome, took) = call.await.expect("the call task ends");
        let err = outcome.expect_err("no reply can pass a frozen broker");
        ends_by(
            "call, broker frozen mid-call",
            &format!("{err}"),
            took,
            call_bound,
        );
        assert!(matches!(err, Error::Timeout { .. }), "{err}");

        let started = Instant::now();
        let closed = client.shutdown().await;
        ends_by(
            "close, broker frozen",
            &format!("{closed:?}"),
            started.elapsed(),
            close_bound,
        );
        assert!(
            matches!(closed, Err(Error::Unavailable { .. })),
            "{closed:?}"
        );
        proxy.thaw();
        server.shutdown().await.expect("server shuts down");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_dropping_the_connection_fails_the_call_at_once() {
    bounded(30, async {
        let t = Target::embedded().await;
        let broker = t.embedded.as_ref().expect("embedded").local_addr();
        let proxy = Proxy::start(broker).await;
        let q = unique("severed");
        let (seen, mut started) = mpsc::unbounded_channel();
        let server = announcing_sleep_server(&t.url, &q, seen).await;
        let client = RpcClient::connect(&proxy.url()).await.expect("connects");
        let call = {
            let (client, q) = (client.clone(), q.clone());
            tokio::spawn(async move {
                client
                    .call_with(
                        &q,
                        "1500",
                        CallOptions::new().timeout(Duration::from_secs(5)),
                    )
                    .await
            })
        };
        assert_eq!(started.recv().await.as_deref(), Some("1500"));
        let cut_at = Instant::now();
        proxy.sever();
        let err = call
            .await
            .expect("the call task ends")
            .expect_err("the connection is gone");
        ends_by(
            "call, broker drops the connection",
            &format!("{err}"),
            cut_at.elapsed(),
            Duration::from_millis(300),
        );
        assert!(matches!(err, Error::Unavailable { .. }), "{err}");
        let _ = client.shutdown().await;
        server.shutdown().await.expect("server shuts down");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_broker_is_detected_by_heartbeats_and_the_client_reconnects() {
    bounded(40, async {
        let t = Target::embedded().await;
        let broker = t.embedded.as_ref().expect("embedded").local_addr();
        let proxy = Proxy::start(broker).await;
        let q = unique("heartbeat");
        let (seen, _started) = mpsc::unbounded_channel();
        let server = announcing_sleep_server(&t.url, &q, seen).await;
        let heartbeat = Duration::from_secs(1);
        let client = RpcClient::builder()
            .heartbeat(heartbeat)
            .connect_timeout(Duration::from_secs(1))
            .connect(&proxy.url())
            .await
            .expect("connects");
        assert_eq!(
            client.call(&q, "0").await.expect("answers").text().unwrap(),
            "0"
        );

        proxy.freeze();
        let frozen_at = Instant::now();
        while client.is_connected() && frozen_at.elapsed() < Duration::from_secs(15) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let noticed = frozen_at.elapsed();
        assert!(!client.is_connected(), "a frozen broker must be noticed");
        // lapin gives up after two silent intervals, checked every half interval.
        ends_by(
            "heartbeat 1 s, broker frozen",
            "connection torn down",
            noticed,
            heartbeat * 5 / 2,
        );
        let err = client
            .call_with(
                &q,
                "0",
                CallOptions::new().timeout(Duration::from_millis(500)),
            )
            .await
            .expect_err("no connection while frozen");
        assert!(matches!(err, Error::Timeout { .. }), "{err}");

        proxy.thaw();
        let thawed_at = Instant::now();
        let reply = client
            .call_with(&q, "0", CallOptions::new().timeout(Duration::from_secs(10)))
            .await
            .expect("the client reconnects once the broker answers");
        assert_eq!(reply.text().unwrap(), "0");
        println!(
            "heartbeat 1 s, broker thawed: answered again after {:.2} s",
            thawed_at.elapsed().as_secs_f64()
        );
        client.shutdown().await.expect("closes");
        server.shutdown().await.expect("server shuts down");
    })
    .await;
}

async fn server_start_fails_at(case: &str, url: String, step: ConnectStep) {
    let bound = Duration::from_secs(1);
    let started = Instant::now();
    let err = RpcServer::new()
        .connect_timeout(bound)
        .route(unique("never"), |_req: Request| async {
            Ok::<_, Status>(Response::text("unused"))
        })
        .start(&url)
        .await
        .expect_err("starting against a stalled peer must fail");
    let took = started.elapsed();
    ends_by(case, &format!("{err}"), took, bound);
    assert_eq!(stalled_at(&err), Some(step), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_start_against_a_black_hole_ends_at_the_connect_timeout() {
    let hole = BlackHole::start().await;
    server_start_fails_at(
        "server start, black hole",
        hole.url(),
        ConnectStep::AmqpHandshake,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_start_against_a_peer_silent_after_open_ok() {
    let peer = ScriptedPeer::start(SilentAfter::OpenOk).await;
    server_start_fails_at(
        "server start, peer silent after connection.open-ok",
        peer.url(),
        ConnectStep::ChannelSetup,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_shutdown_ends_when_the_broker_is_frozen() {
    bounded(30, async {
        let t = Target::embedded().await;
        let broker = t.embedded.as_ref().expect("embedded").local_addr();
        let proxy = Proxy::start(broker).await;
        let (seen, _started) = mpsc::unbounded_channel();
        let server = announcing_sleep_server(&proxy.url(), &unique("shutdown"), seen).await;
        proxy.freeze();
        let started = Instant::now();
        let outcome = server.shutdown().await;
        // The consumer's cancel, then the connection's close, each get the close timeout.
        ends_by(
            "server shutdown, broker frozen",
            &format!("{outcome:?}"),
            started.elapsed(),
            warren_rpc::DEFAULT_SHUTDOWN_TIMEOUT * 2,
        );
        assert!(outcome.is_ok(), "{outcome:?}");
        proxy.thaw();
    })
    .await;
}
