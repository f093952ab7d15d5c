//! Connections Warren gives up on leave nothing behind: a connect that ran out of time
//! (black hole, peer silent mid-handshake or after it), a close the frozen broker never
//! confirmed, a client dropped while the broker is frozen. Each connection has a task
//! that owns its socket and would otherwise wait on the stalled peer forever.
//!
//! One test in its own binary, so that no other test's connections are counted.
//! Linux only (threads are counted in `/proc/self/task`).
#![cfg(target_os = "linux")]

mod common;
use common::hostile;

use std::time::Duration;

use common::{bounded, Target};
use hostile::{BlackHole, Proxy, ScriptedPeer, SilentAfter};
use tokio::runtime::Handle;
use tokio::time::Instant;
use warren_rpc::__raw::live_connections;
use warren_rpc::{Error, Request, Response, RpcClient, RpcServer, Status};

/// Waits up to `limit` for `done`, polling; returns whether it came true.
async fn eventually(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + limit;
    while !done() {
        if Instant::now() > until {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    true
}

/// The runtime's live task count once it has held still for 200 ms (at most 5 s).
async fn settled_task_count() -> usize {
    let metrics = Handle::current().metrics();
    let until = Instant::now() + Duration::from_secs(5);
    let mut last = metrics.num_alive_tasks();
    let mut still_since = Instant::now();
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = metrics.num_alive_tasks();
        if now != last {
            last = now;
            still_since = Instant::now();
        } else if still_since.elapsed() >= Duration::from_millis(200) {
            break;
        }
    }
    last
}

/// CPU time this process has used (user + system), from `/proc/self/stat`.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat is readable");
    let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // Fields 14 and 15 of stat (utime, stime) are 12 and 13 after the name.
    let ticks: u64 =
        fields[11].parse::<u64>().unwrap_or(0) + fields[12].parse::<u64>().unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_connections_leave_no_connection_task_behind() {
    bounded(90, async {
        let t = Target::embedded().await;
        let broker = t.embedded.as_ref().expect("embedded").local_addr();
        let proxy = Proxy::start(broker).await;
        let hole = BlackHole::start().await;
        let after_start = ScriptedPeer::start(SilentAfter::StartOk).await;
        let after_open = ScriptedPeer::start(SilentAfter::OpenOk).await;
        // Baselines once everything already started has settled: the broker's accept
        // loop spawns its listener tasks after `start` returns, and a warm-up call
        // through the proxy makes sure every lazily started task exists.
        let warm = RpcClient::connect(&proxy.url()).await.expect("connects");
        warm.shutdown()
            .await
            .expect("a live broker confirms the close");
        drop(warm);
        // The warm-up client's connection task ends a moment after its shutdown.
        assert!(
            eventually(Duration::from_secs(5), || live_connections() == 0).await,
            "the warm-up client's connection task ends ({} left)",
            live_connections()
        );
        let threads_before = live_connections();
        let tasks_before = settled_task_count().await;

        let attempts = 3;
        for _ in 0..attempts {
            for url in [hole.url(), after_start.url(), after_open.url()] {
                let err = RpcClient::builder()
                    .connect_timeout(Duration::from_millis(300))
                    .connect(&url.clone())
                    .await
                    .expect_err("a stalled peer never completes a connect");
                assert!(matches!(err, Error::ConnectTimeout { .. }), "{err}");
                let err = RpcServer::new()
                    .connect_timeout(Duration::from_millis(300))
                    .route("never", |_req: Request| async {
                        Ok::<_, Status>(Response::text("unused"))
                    })
                    .start(&url)
                    .await
                    .expect_err("a stalled peer never completes a server start");
                assert!(matches!(err, Error::ConnectTimeout { .. }), "{err}");
            }
        }

        let closed = RpcClient::builder()
            .shutdown_timeout(Duration::from_millis(300))
            .connect(&proxy.url())
            .await
            .expect("connects through the proxy");
        let dropped = RpcClient::connect(&proxy.url()).await.expect("connects");
        assert_eq!(
            live_connections(),
            threads_before + 2,
            "each live client has its connection task"
        );
        proxy.freeze();
        let err = closed
            .shutdown()
            .await
            .expect_err("a frozen broker never confirms the close");
        assert!(matches!(err, Error::Unavailable { .. }), "{err}");
        drop(closed);
        drop(dropped);

        // Still frozen: only Warren shutting the sockets down can end these tasks.
        let gone = eventually(Duration::from_secs(5), || {
            live_connections() == threads_before
        })
        .await;
        println!(
            "connection tasks: {threads_before} before, {} after {} abandoned connects, \
             a timed-out close and a dropped client",
            live_connections(),
            attempts * 6
        );
        assert!(
            gone,
            "an abandoned connection left its connection task running"
        );

        proxy.thaw();
        let metrics = Handle::current().metrics();
        let settled = eventually(Duration::from_secs(5), || {
            metrics.num_alive_tasks() <= tasks_before
        })
        .await;
        println!(
            "tokio tasks: {tasks_before} before, {} after",
            metrics.num_alive_tasks()
        );
        assert!(settled, "an abandoned connection left a task running");

        let cpu_before = cpu_time();
        tokio::time::sleep(Duration::from_secs(1)).await;
        let burnt = cpu_time().saturating_sub(cpu_before);
        println!("CPU used while idle for 1 s afterwards: {burnt:?}");
        assert!(
            burnt < Duration::from_millis(300),
            "something spins after the connections were abandoned: {burnt:?} of CPU in 1 s"
        );
    })
    .await;
}
