//! Fault tests: each drives a bounded load of calls through a fault and counts every
//! call: answered correctly, failed (by kind), hung (no outcome by deadline + grace:
//! must be 0), wrong answer (must be 0). Then it checks that client and server came
//! back by themselves.
//!
//! Tests named `disruptive_*` stop, disconnect or reconfigure a RabbitMQ: a throw-away
//! node the test suite started (`disruptive_rabbitmq_*`: `WARREN_DISRUPTIVE_RABBITMQ_URL`
//! and `_NODE`, see `common/rabbitmqctl.rs`) or the cluster of `scripts/cluster.sh`
//! (`disruptive_cluster_*`: `WARREN_CLUSTER_URLS`), never `WARREN_RABBITMQ_URL`. They
//! are ignored unless asked for; `scripts/test.sh` runs them alone, one at a time.
//! Set `WARREN_FAULT_REPORT` to a file to collect the table rows
//! (`docs/reliability.md`).

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::rabbitmqctl::{self, Rabbitmqctl, Watermark};
use common::{unique, Target};
use futures_util::StreamExt;
use warren_broker::Broker;
use warren_rpc::services::{fib, sleep};
use warren_rpc::{CallOptions, Error, Reply, RpcClient, RpcServer};

const WARREN: &str = env!("CARGO_BIN_EXE_warren");
/// Extra time past a call's deadline after which it counts as hung.
const HUNG_GRACE: Duration = Duration::from_secs(3);

#[derive(Debug, Default)]
struct Tally {
    issued: usize,
    ok: usize,
    wrong: usize,
    hung: usize,
    failed: BTreeMap<&'static str, usize>,
}

impl Tally {
    /// Counts one call: `None` if it hung, else its outcome, a reply being right when
    /// its body is `expected`.
    fn count(&mut self, outcome: Option<warren_rpc::Result<Reply>>, expected: &[u8]) {
        self.issued += 1;
        match outcome {
            None => self.hung += 1,
            Some(Ok(reply)) if reply.body == expected => self.ok += 1,
            Some(Ok(_)) => self.wrong += 1,
            Some(Err(e)) => *self.failed.entry(kind(&e)).or_default() += 1,
        }
    }

    /// Records a table row and checks the invariants every fault must keep.
    fn report(&self, fault: &str, target: &str) {
        let failed: Vec<String> = self
            .failed
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let failed = if failed.is_empty() {
            "-".to_owned()
        } else {
            failed.join(", ")
        };
        let row = format!(
            "| {fault} | {target} | {} | {} | {failed} | {} | {} |",
            self.issued, self.ok, self.hung, self.wrong
        );
        println!("{row}");
        if let Ok(path) = std::env::var("WARREN_FAULT_REPORT") {
            if let Ok(mut f) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
            {
                let _ = writeln!(f, "{row}");
            }
        }
        assert_eq!(self.hung, 0, "{fault} on {target}: hung calls: {self:?}");
        assert_eq!(
            self.wrong, 0,
            "{fault} on {target}: wrong answers: {self:?}"
        );
        let counted = self.ok + self.failed.values().sum::<usize>();
        assert_eq!(counted, self.issued, "every call is counted: {self:?}");
    }
}

fn kind(e: &Error) -> &'static str {
    match e {
        Error::Unavailable { .. }
        | Error::Connect { .. }
        | Error::ConnectTimeout { .. }
        | Error::Amqp(_) => "unavailable",
        Error::Timeout { .. } => "deadline_exceeded",
        Error::NoRoute { .. } => "no_route",
        Error::Remote(_) => "remote",
        Error::ResourceExhausted { .. } => "resource_exhausted",
        Error::InvalidArgument(_) => "invalid_argument",
        Error::Decode { .. } => "decode",
        Error::AccessRefused { .. } => "access_refused",
        _ => "other",
    }
}

/// Issues `calls` fib calls, at most one per `pace`, at most `concurrency` at once.
async fn drive(
    client: &RpcClient,
    queue: &str,
    calls: usize,
    concurrency: usize,
    pace: Duration,
) -> Tally {
    let timeout = Duration::from_secs(2);
    let outcomes: Vec<_> = futures_util::stream::iter(0..calls)
        .then(|i| async move {
            tokio::time::sleep(pace).await;
            i
        })
        .map(|i| async move {
            let n = (i % 90) as u64;
            let call = client.call_with(queue, n.to_string(), CallOptions::new().timeout(timeout));
            let outcome = tokio::time::timeout(timeout + HUNG_GRACE, call).await.ok();
            (outcome, fib::fib(n).to_string())
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let mut tally = Tally::default();
    for (outcome, expected) in outcomes {
        tally.count(outcome, expected.as_bytes());
    }
    tally
}

/// Waits (bounded) until calls succeed again, then checks 20 in a row do.
async fn recovered(client: &RpcClient, queue: &str, within: Duration) {
    let start = Instant::now();
    loop {
        let call = client.call_with(
            queue,
            "10",
            CallOptions::new().timeout(Duration::from_secs(1)),
        );
        if let Ok(reply) = call.await {
            assert_eq!(reply.body, b"55");
            break;
        }
        assert!(start.elapsed() < within, "no recovery within {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let after = drive(client, queue, 20, 4, Duration::ZERO).await;
    assert_eq!(after.ok, 20, "all calls succeed after recovery: {after:?}");
}

fn serve(procedure: &str, queue: &str, url: &str, concurrency: u16) -> Child {
    let mut child = Command::new(WARREN)
        .args(["serve", procedure, "--queue", queue, "--url", url])
        .args(["--concurrency", &concurrency.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("warren serve starts");
    let mut line = String::new();
    if let Some(out) = child.stdout.take() {
        let _ = BufReader::new(out).read_line(&mut line);
    }
    assert_eq!(line, " [x] Awaiting RPC requests\n", "worker is ready");
    child
}

fn kill(child: &mut Child, signal: &str) {
    let _ = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status();
    let _ = child.wait();
}

/// An embedded broker on a free loopback port.
fn loopback_broker() -> warren_broker::BrokerBuilder {
    Broker::builder().listen(([127, 0, 0, 1], 0).into())
}

/// A fib server and client on one broker with 300 paced calls running: the load a
/// fault is injected into.
struct FibLoad {
    q: String,
    server: warren_rpc::ServerHandle,
    client: RpcClient,
    load: tokio::task::JoinHandle<Tally>,
}

impl FibLoad {
    /// Starts the server on queue `q`, the client and the load, and lets it run for
    /// a second.
    async fn start(url: &str, q: String) -> FibLoad {
        let server = RpcServer::new()
            .route(q.as_str(), fib::handle)
            .start(url)
            .await
            .unwrap();
        let client = RpcClient::connect(url).await.unwrap();
        let load = tokio::spawn({
            let (client, q) = (client.clone(), q.clone());
            async move { drive(&client, &q, 300, 8, Duration::from_millis(10)).await }
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        FibLoad {
            q,
            server,
            client,
            load,
        }
    }

    /// Waits for the load, checks that the same client and server answer again
    /// within `within`, reports the row and stops the server.
    async fn finish(self, within: Duration, fault: &str, target: &str) -> Tally {
        let tally = self.load.await.unwrap();
        recovered(&self.client, &self.q, within).await;
        tally.report(fault, target);
        self.server.shutdown().await.unwrap();
        tally
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_broker_restart() {
    common::bounded(60, async {
        let broker = loopback_broker().start().await.unwrap();
        let addr = broker.local_addr();
        let run = FibLoad::start(&broker.amqp_url(), unique("fib")).await;
        broker.shutdown().await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let broker = Broker::builder().listen(addr).start().await.unwrap();
        let tally = run
            .finish(Duration::from_secs(15), "broker restarted", "embedded")
            .await;
        assert!(tally.ok > 0);
        broker.shutdown().await;
    })
    .await;
}

/// A running `warren serve fib` process and a long-lived client both come back by
/// themselves after the broker restarts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warren_serve_process_survives_a_broker_restart() {
    common::bounded(60, async {
        let broker = loopback_broker().start().await.unwrap();
        let (addr, url) = (broker.local_addr(), broker.amqp_url());
        let q = unique("fib");
        let mut worker = serve("fib", &q, &url, 8);
        let client = RpcClient::connect(&url).await.unwrap();
        assert_eq!(client.call(&q, "30").await.unwrap().body, b"832040");
        broker.shutdown().await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let broker = Broker::builder().listen(addr).start().await.unwrap();
        recovered(&client, &q, Duration::from_secs(20)).await;
        assert_eq!(client.call(&q, "30").await.unwrap().body, b"832040");
        kill(&mut worker, "-TERM");
        broker.shutdown().await;
    })
    .await;
}

async fn worker_killed_mid_call(t: Target) {
    let q = t.queue("sleep");
    let mut first = serve("sleep", &q, &t.url, 4);
    let client = RpcClient::connect(&t.url).await.unwrap();
    let calls = tokio::spawn({
        let (client, q) = (client.clone(), q.clone());
        async move {
            let opts = || CallOptions::new().timeout(Duration::from_secs(10));
            futures_util::future::join_all((0..4).map(|_| client.call_with(&q, "700", opts())))
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    kill(&mut first, "-KILL");
    let mut second = serve("sleep", &q, &t.url, 4);
    let results = tokio::time::timeout(Duration::from_secs(15), calls).await;
    let mut tally = Tally::default();
    match results {
        Err(_) => (0..4).for_each(|_| tally.count(None, b"700")),
        Ok(results) => {
            for r in results.unwrap() {
                tally.count(Some(r), b"700");
            }
        }
    }
    kill(&mut second, "-TERM");
    tally.report("worker killed (SIGKILL) mid-call", t.name);
    assert_eq!(
        tally.ok, 4,
        "every request was redelivered and answered by the second worker"
    );
}

async fn slow_worker_past_deadline(t: Target) {
    let q = t.queue("sleep");
    let server = RpcServer::new()
        .route(q.as_str(), sleep::handle)
        .start(&t.url)
        .await
        .unwrap();
    let client = RpcClient::connect(&t.url).await.unwrap();
    let opts = || CallOptions::new().timeout(Duration::from_millis(300));
    let results = futures_util::future::join_all((0..10).map(|_| {
        let call = client.call_with(&q, "1500", opts());
        tokio::time::timeout(Duration::from_millis(300) + HUNG_GRACE, call)
    }))
    .await;
    let mut tally = Tally::default();
    for r in results {
        tally.count(r.ok(), b"1500");
    }
    tally.report("worker slower than the deadline", t.name);
    assert_eq!(tally.failed.get("deadline_exceeded"), Some(&10));
    let fast = client.call_with(&q, "0", opts()).await.unwrap();
    assert_eq!(fast.body, b"0", "the worker stays healthy");
    assert_eq!(client.in_flight(), 0);
    server.shutdown().await.unwrap();
}

async fn client_vanishes_with_calls_pending(t: Target) {
    let q = t.queue("sleep");
    let server = RpcServer::new()
        .route(q.as_str(), sleep::handle)
        .start(&t.url)
        .await
        .unwrap();
    let mut callers: Vec<Child> = (0..4)
        .map(|_| {
            Command::new(WARREN)
                .args([
                    "call",
                    "--url",
                    &t.url,
                    "--queue",
                    &q,
                    "--timeout",
                    "10s",
                    "400",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(250)).await;
    for c in &mut callers {
        kill(c, "-KILL");
    }
    // The server answers into the void and stays healthy for everyone else.
    let client = RpcClient::connect(&t.url).await.unwrap();
    let mut tally = Tally::default();
    for _ in 0..10 {
        let call = client.call_with(&q, "5", CallOptions::new().timeout(Duration::from_secs(3)));
        let outcome = tokio::time::timeout(Duration::from_secs(3) + HUNG_GRACE, call).await;
        tally.count(outcome.ok(), b"5");
    }
    tally.report("client killed with calls pending", t.name);
    assert_eq!(tally.ok, 10);
    server.shutdown().await.unwrap();
}

/// A fib load through a fault that `inject` causes on the disruptive RabbitMQ (see
/// `common/rabbitmqctl.rs`); client and server must recover on their own.
async fn through_rabbitmq_fault(fault: &'static str, secs: u64, inject: fn(&Rabbitmqctl)) {
    let (t, ctl) = rabbitmqctl::disruptive();
    common::run(t, secs, |t| async move {
        let run = FibLoad::start(&t.url, t.queue("fib")).await;
        tokio::task::block_in_place(|| inject(&ctl));
        run.finish(Duration::from_secs(30), fault, t.name).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs WARREN_DISRUPTIVE_RABBITMQ_URL and _NODE (bash scripts/rabbitmq-node.sh start)"]
async fn disruptive_rabbitmq_close_all_connections() {
    through_rabbitmq_fault("rabbitmqctl close_all_connections", 90, |ctl| {
        ctl.run(&["close_all_connections", "warren fault test"]);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs WARREN_DISRUPTIVE_RABBITMQ_URL and _NODE (bash scripts/rabbitmq-node.sh start)"]
async fn disruptive_rabbitmq_stop_start_app() {
    through_rabbitmq_fault("rabbitmqctl stop_app / start_app", 120, |ctl| {
        let before = ctl.watermark();
        let stopped = ctl.stop_app();
        std::thread::sleep(Duration::from_millis(500));
        drop(stopped);
        assert_eq!(ctl.watermark(), before, "the watermark is restored");
    })
    .await;
}

/// A memory alarm makes RabbitMQ block publishing connections (`connection.blocked`):
/// calls made meanwhile fail at their deadline (none hangs), and once the alarm clears
/// (the watermark is back to what it was) the same client and server carry on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs WARREN_DISRUPTIVE_RABBITMQ_URL and _NODE (bash scripts/rabbitmq-node.sh start)"]
async fn disruptive_rabbitmq_memory_alarm_blocks_publishers() {
    through_rabbitmq_fault(
        "memory alarm (connection.blocked), cleared after 2 s",
        90,
        |ctl| {
            let before = ctl.watermark();
            let alarm = ctl.memory_alarm();
            std::thread::sleep(Duration::from_secs(2));
            drop(alarm);
            assert_eq!(ctl.watermark(), before, "the watermark is restored");
        },
    )
    .await;
}

/// `rabbitmqctl eval 'vm_memory_monitor:get_vm_memory_high_watermark().'` prints a
/// float or a tagged tuple; the guard restores exactly what it read.
#[test]
fn watermark_forms_parse_and_print_back() {
    assert_eq!(Watermark::parse("0.4\n"), Some(Watermark::Relative(0.4)));
    assert_eq!(Watermark::parse("1.0e-6"), Some(Watermark::Relative(1e-6)));
    assert_eq!(
        Watermark::parse("{absolute,1073741824}\n"),
        Some(Watermark::Absolute(1 << 30))
    );
    assert_eq!(
        Watermark::parse("{relative, 0.5}"),
        Some(Watermark::Relative(0.5))
    );
    assert_eq!(Watermark::parse("{bogus,1}"), None);
    assert_eq!(Watermark::parse("ok"), None);
    // What set_vm_memory_high_watermark is given back: no exponent, no rounding.
    assert_eq!(1e-6_f64.to_string(), "0.000001");
    assert_eq!(0.4_f64.to_string(), "0.4");
}

/// The embedded broker's memory alarm: a ballast of unconsumed messages past its
/// `memory_limit` blocks publishing connections (`connection.blocked`) as RabbitMQ's
/// alarm does; calls made meanwhile fail at their deadline (none hangs), and once the
/// ballast is purged the same client and server carry on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_memory_alarm_blocks_publishers() {
    use lapin::options::{BasicPublishOptions, QueuePurgeOptions};
    use lapin::types::FieldTable;
    use lapin::{BasicProperties, Connection, ConnectionProperties};
    common::bounded(60, async {
        // Messages only: the RSS of this test process (client, server and broker
        // together) is not the broker's.
        let broker = loopback_broker()
            .memory_limit(1 << 20)
            .memory_counting(warren_broker::Counting::Messages)
            .start()
            .await
            .unwrap();
        let url = broker.amqp_url();
        let run = FibLoad::start(&url, unique("fib")).await;
        let ballast = unique("ballast");
        let filler = Connection::connect(&url, ConnectionProperties::default())
            .await
            .unwrap();
        let ch = filler.create_channel().await.unwrap();
        ch.queue_declare(
            ballast.as_str().into(),
            Default::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        ch.basic_publish(
            "".into(),
            ballast.as_str().into(),
            BasicPublishOptions::default(),
            &vec![0u8; 2 << 20],
            BasicProperties::default(),
        )
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_secs(2)).await;
        // A connection that has not published is not blocked: it clears the ballast.
        let janitor = Connection::connect(&url, ConnectionProperties::default())
            .await
            .unwrap();
        let purged = janitor
            .create_channel()
            .await
            .unwrap()
            .queue_purge(ballast.as_str().into(), QueuePurgeOptions::default())
            .await
            .unwrap();
        assert_eq!(purged, 1, "the ballast message was held");
        let tally = run
            .finish(
                Duration::from_secs(15),
                "memory alarm (connection.blocked), cleared after 2 s",
                "embedded",
            )
            .await;
        assert!(
            tally.failed.values().sum::<usize>() > 0,
            "the alarm blocked some calls: {tally:?}"
        );
        broker.shutdown().await;
    })
    .await;
}

/// A quorum request queue on a 3-node cluster (`WARREN_CLUSTER_URLS`, comma-separated,
/// from `bash scripts/cluster.sh start`): stop the node everyone is connected to (and
/// that leads the queue) under load; client and server fail over to the next address
/// and the calls go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs WARREN_CLUSTER_URLS (bash scripts/cluster.sh start)"]
async fn disruptive_cluster_node_stopped() {
    let urls = common::required_env(
        "WARREN_CLUSTER_URLS",
        "set it to what `bash scripts/cluster.sh start` prints",
    );
    let mut urls: Vec<String> = urls.split(',').map(str::to_owned).collect();
    let ctl = Rabbitmqctl::node(
        std::env::var("WARREN_CLUSTER_NODE_TO_STOP")
            .unwrap_or_else(|_| "warren1@localhost".to_owned()),
    );
    let first = urls.remove(0);
    let t = Target::external("rabbitmq cluster", first, urls);
    common::run(t, 150, |t| async move {
        let q = t.queue("quorum-fib");
        let mut server =
            RpcServer::new().route(warren_rpc::QueueSpec::quorum(q.as_str()), fib::handle);
        let mut client = RpcClient::builder();
        for url in t.fallback_urls() {
            server = server.fallback_url(url.clone());
            client = client.fallback_url(url.clone());
        }
        let server = server.start(&t.url).await.unwrap();
        let client = client.connect(&t.url).await.unwrap();
        let load = tokio::spawn({
            let (client, q) = (client.clone(), q.clone());
            async move { drive(&client, &q, 400, 8, Duration::from_millis(10)).await }
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        let stopped = tokio::task::block_in_place(|| ctl.stop_app());
        let tally = load.await.unwrap();
        recovered(&client, &q, Duration::from_secs(60)).await;
        tokio::task::block_in_place(|| drop(stopped));
        tally.report(
            "cluster node stopped (quorum queue, 3 nodes)",
            "rabbitmq cluster",
        );
        server.shutdown().await.unwrap();
    })
    .await;
}

broker_tests!(
    worker_killed_mid_call,
    slow_worker_past_deadline,
    client_vanishes_with_calls_pending
);
