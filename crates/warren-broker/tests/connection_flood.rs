//! Availability under connection floods: thousands of sockets that never finish the
//! handshake (idle, or slow-loris dripping the header or a start-ok byte by byte), each
//! reopened by the attacker as soon as it closes, must not keep real clients out.

// The figure also goes to $WARREN_FIGURES for scripts/test.sh.
use warren_test_support::figures;

use futures_util::StreamExt;
use lapin::options::{BasicConsumeOptions, BasicPublishOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use warren_broker::Broker;

/// Attacker sockets held open at once.
const FLOOD_SOCKETS: usize = 3000;
/// Real client attempts, one every `REAL_EVERY`.
const REAL_ATTEMPTS: usize = 100;
const REAL_EVERY: Duration = Duration::from_millis(200);
/// Each real attempt (connect, channel, declare, consume, publish, receive, close).
const REAL_BOUND: Duration = Duration::from_secs(2);
/// Time the attacker gets to open its sockets before the first real client.
const WARM_UP: Duration = Duration::from_secs(2);
/// Slow-loris sockets send one byte per gap.
const LORIS_GAP: Duration = Duration::from_millis(250);
/// Upper bound on the sockets one attacker task opens in the whole test.
const MAX_CYCLES_PER_TASK: u64 = 50_000;

const HEADER: &[u8; 8] = b"AMQP\x00\x00\x09\x01";

/// How an attacker socket behaves once connected.
#[derive(Clone, Copy, Debug)]
enum Style {
    /// Sends nothing.
    Idle,
    /// Sends the protocol header one byte per `LORIS_GAP`, then nothing.
    LorisHeader,
    /// Sends the header, then a start-ok frame one byte per `LORIS_GAP`.
    LorisStartOk,
}

/// Attacker counters.
#[derive(Default)]
struct Flood {
    stop: AtomicBool,
    /// Sockets connected now (from the attacker's side) and the peak.
    open: AtomicUsize,
    peak: AtomicUsize,
    /// Sockets opened in total, connects reset before they completed, and connects
    /// that failed (no free local port) or timed out.
    opened: AtomicU64,
    reset_early: AtomicU64,
    connect_failed: AtomicU64,
}

impl Flood {
    /// Sockets the attacker got connected (even if reset at once).
    fn reopened(&self) -> u64 {
        self.opened.load(Ordering::Relaxed) + self.reset_early.load(Ordering::Relaxed)
    }
}

/// Waits until the peer closes (or errors), reading and discarding what it sends.
async fn until_closed(s: &mut TcpStream, flood: &Flood) {
    let mut sink = [0u8; 1024];
    while !flood.stop.load(Ordering::Relaxed) {
        match tokio::time::timeout(Duration::from_millis(500), s.read(&mut sink)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return,
            Ok(Ok(_)) | Err(_) => {}
        }
    }
}

/// Writes `bytes` one at a time, `LORIS_GAP` apart; false once the peer is gone.
async fn drip(s: &mut TcpStream, bytes: &[u8], flood: &Flood) -> bool {
    let mut sink = [0u8; 1024];
    for b in bytes {
        let gap = tokio::time::sleep(LORIS_GAP);
        tokio::pin!(gap);
        loop {
            tokio::select! {
                _ = &mut gap => break,
                r = s.read(&mut sink) => match r {
                    Ok(0) | Err(_) => return false,
                    Ok(_) => {}
                },
            }
        }
        if flood.stop.load(Ordering::Relaxed) || s.write_all(&[*b]).await.is_err() {
            return false;
        }
    }
    true
}

/// A start-ok method frame (channel 0) announcing a 4000-byte payload: the slow-loris
/// never gets to the end of it.
fn partial_start_ok() -> Vec<u8> {
    let mut f = vec![1u8, 0, 0];
    f.extend_from_slice(&4000u32.to_be_bytes());
    f.extend_from_slice(&[0, 10, 0, 11]);
    f.extend(std::iter::repeat_n(0u8, 64));
    f
}

/// One attacker socket slot: connect, misbehave, and reconnect as soon as it closes.
async fn attacker(addr: SocketAddr, style: Style, flood: Arc<Flood>) {
    let start_ok = partial_start_ok();
    for _ in 0..MAX_CYCLES_PER_TASK {
        if flood.stop.load(Ordering::Relaxed) {
            return;
        }
        let mut s =
            match tokio::time::timeout(Duration::from_secs(3), TcpStream::connect(addr)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) if e.kind() != std::io::ErrorKind::AddrNotAvailable => {
                    // Reset before we saw the connect complete: evicted already.
                    flood.reset_early.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                _ => {
                    flood.connect_failed.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            };
        flood.opened.fetch_add(1, Ordering::Relaxed);
        let now = flood.open.fetch_add(1, Ordering::Relaxed) + 1;
        flood.peak.fetch_max(now, Ordering::Relaxed);
        match style {
            Style::Idle => until_closed(&mut s, &flood).await,
            Style::LorisHeader => {
                if drip(&mut s, HEADER, &flood).await {
                    until_closed(&mut s, &flood).await;
                }
            }
            Style::LorisStartOk => {
                if s.write_all(HEADER).await.is_ok() && drip(&mut s, &start_ok, &flood).await {
                    until_closed(&mut s, &flood).await;
                }
            }
        }
        flood.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What one real client attempt measured.
struct RealOk {
    connect: Duration,
    total: Duration,
}

/// A real client: connect, declare a queue, consume, publish, receive, close.
async fn real_client(url: String, step: Arc<Mutex<&'static str>>) -> Result<RealOk, String> {
    let at = |name: &'static str| {
        if let Ok(mut s) = step.lock() {
            *s = name;
        }
    };
    let t0 = Instant::now();
    let conn = Connection::connect(&url, ConnectionProperties::default())
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let connect = t0.elapsed();
    at("channel");
    let ch = conn
        .create_channel()
        .await
        .map_err(|e| format!("channel: {e}"))?;
    let opts = QueueDeclareOptions {
        exclusive: true,
        ..Default::default()
    };
    at("declare");
    let q = ch
        .queue_declare("".into(), opts, FieldTable::default())
        .await
        .map_err(|e| format!("declare: {e}"))?;
    at("consume");
    let mut consumer = ch
        .basic_consume(
            q.name().as_str().into(),
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(|e| format!("consume: {e}"))?;
    at("publish");
    ch.basic_publish(
        "".into(),
        q.name().as_str().into(),
        BasicPublishOptions::default(),
        b"ping",
        BasicProperties::default(),
    )
    .await
    .map_err(|e| format!("publish: {e}"))?;
    at("deliver");
    let delivery = consumer
        .next()
        .await
        .ok_or("consumer ended")?
        .map_err(|e| format!("delivery: {e}"))?;
    if delivery.data != b"ping" {
        return Err(format!("wrong body {:?}", delivery.data));
    }
    at("close");
    conn.close(200, "bye".into())
        .await
        .map_err(|e| format!("close: {e}"))?;
    Ok(RealOk {
        connect,
        total: t0.elapsed(),
    })
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

fn runtime(name: &str, workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name(name)
        .enable_all()
        .build()
        .expect("build a tokio runtime")
}

#[test]
fn real_clients_get_in_during_a_handshake_flood() {
    // Both ends of every attacker socket live in this process, plus the broker's own.
    let need = 2 * FLOOD_SOCKETS as u64 + 2048;
    let fds = warren_broker::raise_fd_limit().expect("raise RLIMIT_NOFILE");
    assert!(
        fds >= need,
        "RLIMIT_NOFILE is {fds}, the test needs {need}: raise the hard limit (ulimit -Hn)"
    );
    // The broker, the attacker and the real clients each get their own runtime, as
    // three processes would (they still share the machine's cores).
    let broker_rt = runtime("broker", 2);
    let attack_rt = runtime("attacker", 1);
    let client_rt = runtime("client", 1);
    // Default limits: 512 pending handshakes, 5 s handshake timeout.
    let broker = broker_rt
        .block_on(
            Broker::builder()
                .listen("127.0.0.1:0".parse().unwrap())
                .start(),
        )
        .expect("start the broker");
    let addr = broker.local_addr();
    let url = broker.amqp_url();
    let flood = Arc::new(Flood::default());
    let styles = [Style::Idle, Style::LorisHeader, Style::LorisStartOk];
    for i in 0..FLOOD_SOCKETS {
        attack_rt.spawn(attacker(addr, styles[i % styles.len()], flood.clone()));
    }
    std::thread::sleep(WARM_UP);
    let opened_before = flood.reopened();
    let t_real = Instant::now();
    // Samples how many attacker sockets are connected while the real clients run.
    let sampler = {
        let flood = flood.clone();
        std::thread::spawn(move || {
            let mut samples = Vec::new();
            while !flood.stop.load(Ordering::Relaxed) && samples.len() < 10_000 {
                samples.push(flood.open.load(Ordering::Relaxed));
                std::thread::sleep(Duration::from_millis(50));
            }
            samples
        })
    };
    let results = client_rt.block_on(async {
        let mut tasks = Vec::with_capacity(REAL_ATTEMPTS);
        for i in 0..REAL_ATTEMPTS {
            tokio::time::sleep_until((t_real + REAL_EVERY * i as u32).into()).await;
            let url = url.clone();
            tasks.push(tokio::spawn(async move {
                let step = Arc::new(Mutex::new("connect"));
                match tokio::time::timeout(REAL_BOUND, real_client(url, step.clone())).await {
                    Ok(r) => r,
                    Err(_) => Err(format!(
                        "no outcome within {REAL_BOUND:?} (at {})",
                        step.lock().map(|s| *s).unwrap_or("?")
                    )),
                }
            }));
        }
        let mut out = Vec::with_capacity(REAL_ATTEMPTS);
        for t in tasks {
            out.push(t.await.unwrap_or_else(|e| Err(format!("task: {e}"))));
        }
        out
    });
    let real_secs = t_real.elapsed().as_secs_f64();
    let churn = flood.reopened() - opened_before;
    flood.stop.store(true, Ordering::Relaxed);
    let samples = sampler.join().expect("sampler thread");
    attack_rt.shutdown_timeout(Duration::from_secs(5));
    broker_rt.block_on(broker.shutdown());

    let mut connects: Vec<Duration> = results
        .iter()
        .filter_map(|r| r.as_ref().ok().map(|o| o.connect))
        .collect();
    let mut totals: Vec<Duration> = results
        .iter()
        .filter_map(|r| r.as_ref().ok().map(|o| o.total))
        .collect();
    connects.sort();
    totals.sort();
    let ok = connects.len();
    let mut errors: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    errors.sort();
    errors.dedup();
    let mean_open = samples.iter().sum::<usize>() / samples.len().max(1);
    figures::report(&format!(
        "flood {FLOOD_SOCKETS} sockets (mean {mean_open} connected, min {}; {churn} reopened \
         in {real_secs:.1} s = {:.0}/s; {} connects failed): real clients {ok}/{REAL_ATTEMPTS} \
         ok, connect p50 {:?} p99 {:?} max {:?}, connect+publish+consume+close p50 {:?} p99 {:?}",
        samples.iter().min().copied().unwrap_or(0),
        churn as f64 / real_secs,
        flood.connect_failed.load(Ordering::Relaxed),
        percentile(&connects, 50),
        percentile(&connects, 99),
        connects.last().copied().unwrap_or_default(),
        percentile(&totals, 50),
        percentile(&totals, 99),
    ));
    if !errors.is_empty() {
        println!("real client errors: {errors:?}");
    }
    // The flood was real: most attacker sockets connected at any time, and far more
    // reopened than the broker has pending slots (so it evicted all along).
    assert!(
        mean_open >= FLOOD_SOCKETS / 2,
        "the flood held only {mean_open} of {FLOOD_SOCKETS} sockets on average"
    );
    assert!(
        churn >= 10 * FLOOD_SOCKETS as u64,
        "the attacker reopened only {churn} sockets"
    );
    assert!(
        ok * 100 >= REAL_ATTEMPTS * 99,
        "only {ok} of {REAL_ATTEMPTS} real clients got through: {errors:?}"
    );
}

/// Whether the broker closes (or resets) `s` within `within`.
async fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    let mut sink = [0u8; 64];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut sink)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
            Err(_) => return false,
        }
    }
}

async fn small_broker(max_connections: usize, max_pending: usize) -> warren_broker::BrokerHandle {
    Broker::builder()
        .listen("127.0.0.1:0".parse().unwrap())
        .max_connections(max_connections)
        .max_pending_handshakes(max_pending)
        .start()
        .await
        .expect("start the broker")
}

async fn idle_sockets(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        v.push(TcpStream::connect(addr).await.expect("connect"));
    }
    // Let the broker accept them, in order.
    tokio::time::sleep(Duration::from_millis(200)).await;
    v
}

#[tokio::test]
async fn a_full_pending_budget_evicts_the_oldest_socket_not_the_newest() {
    let b = small_broker(16, 4).await;
    let mut old = idle_sockets(b.local_addr(), 4).await;
    let mut new = idle_sockets(b.local_addr(), 4).await;
    for s in &mut old {
        assert!(
            closed_within(s, Duration::from_secs(2)).await,
            "an old idle socket stayed"
        );
    }
    for s in &mut new {
        assert!(
            !closed_within(s, Duration::from_millis(100)).await,
            "a new socket was evicted"
        );
    }
    // A real client still gets in (evicting one more idle socket).
    let c = Connection::connect(&b.amqp_url(), ConnectionProperties::default())
        .await
        .expect("a real client connects past the idle sockets");
    c.close(200, "bye".into()).await.expect("close");
    b.shutdown().await;
}

#[tokio::test]
async fn authenticated_connections_are_never_evicted() {
    let b = small_broker(16, 2).await;
    let c = Connection::connect(&b.amqp_url(), ConnectionProperties::default())
        .await
        .expect("connect");
    let _idle = idle_sockets(b.local_addr(), 20).await;
    let ch = c
        .create_channel()
        .await
        .expect("the connection still works");
    ch.close(200, "bye".into()).await.expect("close channel");
    c.close(200, "bye".into()).await.expect("close");
    b.shutdown().await;
}

#[tokio::test]
async fn pending_handshakes_do_not_count_against_max_connections() {
    let b = small_broker(2, 8).await;
    let _idle = idle_sockets(b.local_addr(), 6).await;
    let c1 = Connection::connect(&b.amqp_url(), ConnectionProperties::default())
        .await
        .expect("first client");
    let c2 = Connection::connect(&b.amqp_url(), ConnectionProperties::default())
        .await
        .expect("second client");
    // The third authenticated client is refused: 530 not-allowed, as RabbitMQ does.
    let err = tokio::time::timeout(
        Duration::from_secs(5),
        Connection::connect(&b.amqp_url(), ConnectionProperties::default()),
    )
    .await
    .expect("refused in time")
    .expect_err("a third client is over max_connections");
    let code = match err.kind() {
        lapin::ErrorKind::ProtocolError(e) => e.get_id(),
        _ => 0,
    };
    assert_eq!(code, 530, "{err}");
    // A closed connection gives its slot back.
    c1.close(200, "bye".into()).await.expect("close");
    let c3 = Connection::connect(&b.amqp_url(), ConnectionProperties::default())
        .await
        .expect("a freed slot is reused");
    c2.close(200, "bye".into()).await.expect("close");
    c3.close(200, "bye".into()).await.expect("close");
    b.shutdown().await;
}

#[tokio::test]
async fn the_handshake_timeout_closes_a_silent_socket() {
    let b = Broker::builder()
        .listen("127.0.0.1:0".parse().unwrap())
        .handshake_timeout(Duration::from_millis(300))
        .start()
        .await
        .expect("start the broker");
    let t0 = Instant::now();
    let mut s = TcpStream::connect(b.local_addr()).await.expect("connect");
    assert!(closed_within(&mut s, Duration::from_secs(5)).await);
    assert!(
        t0.elapsed() >= Duration::from_millis(250),
        "{:?}",
        t0.elapsed()
    );
    // A slow-loris that sent the header does not get longer.
    let t0 = Instant::now();
    let mut s = TcpStream::connect(b.local_addr()).await.expect("connect");
    s.write_all(HEADER).await.expect("header");
    assert!(closed_within(&mut s, Duration::from_secs(5)).await);
    assert!(
        t0.elapsed() >= Duration::from_millis(250),
        "{:?}",
        t0.elapsed()
    );
    b.shutdown().await;
}

#[tokio::test]
async fn zero_budgets_are_refused() {
    for builder in [
        Broker::builder().max_pending_handshakes(0),
        Broker::builder().handshake_timeout(Duration::ZERO),
        Broker::builder().max_connections(0),
    ] {
        let r = builder.listen("127.0.0.1:0".parse().unwrap()).start().await;
        assert!(
            matches!(r, Err(warren_broker::BrokerError::Config(_))),
            "{r:?}"
        );
    }
}
