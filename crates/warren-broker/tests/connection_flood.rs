//! Availability under connection floods: thousands of sockets that never finish the
//! handshake (idle, or slow-loris dripping the header or a start-ok byte by byte), each
//! reopened by the attacker as soon as it closes, must not keep real clients out.

use futures_util::StreamExt;
use lapin::options::{BasicConsumeOptions, BasicPublishOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
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
    /// Sockets opened in total, and connects that failed or timed out.
    opened: AtomicU64,
    connect_failed: AtomicU64,
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
        let mut s = match tokio::time::timeout(Duration::from_secs(3), TcpStream::connect(addr))
            .await
        {
            Ok(Ok(s)) => s,
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
async fn real_client(url: String) -> Result<RealOk, String> {
    let t0 = Instant::now();
    let conn = Connection::connect(&url, ConnectionProperties::default())
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let connect = t0.elapsed();
    let ch = conn
        .create_channel()
        .await
        .map_err(|e| format!("channel: {e}"))?;
    let opts = QueueDeclareOptions {
        exclusive: true,
        ..Default::default()
    };
    let q = ch
        .queue_declare("".into(), opts, FieldTable::default())
        .await
        .map_err(|e| format!("declare: {e}"))?;
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
    ch.basic_publish(
        "".into(),
        q.name().as_str().into(),
        BasicPublishOptions::default(),
        b"ping",
        BasicProperties::default(),
    )
    .await
    .map_err(|e| format!("publish: {e}"))?;
    let delivery = consumer
        .next()
        .await
        .ok_or("consumer ended")?
        .map_err(|e| format!("delivery: {e}"))?;
    if delivery.data != b"ping" {
        return Err(format!("wrong body {:?}", delivery.data));
    }
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
    // The broker, the attacker and the real clients each get their own runtime, as
    // three processes would (they still share the machine's cores).
    let broker_rt = runtime("broker", 2);
    let attack_rt = runtime("attacker", 1);
    let client_rt = runtime("client", 1);
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
    let warm_open = flood.open.load(Ordering::Relaxed);
    let opened_before = flood.opened.load(Ordering::Relaxed);
    let t_real = Instant::now();
    let results = client_rt.block_on(async {
        let mut tasks = Vec::with_capacity(REAL_ATTEMPTS);
        for i in 0..REAL_ATTEMPTS {
            tokio::time::sleep_until((t_real + REAL_EVERY * i as u32).into()).await;
            let url = url.clone();
            tasks.push(tokio::spawn(async move {
                match tokio::time::timeout(REAL_BOUND, real_client(url)).await {
                    Ok(r) => r,
                    Err(_) => Err(format!("no outcome within {REAL_BOUND:?}")),
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
    let churn = flood.opened.load(Ordering::Relaxed) - opened_before;
    let open_end = flood.open.load(Ordering::Relaxed);
    flood.stop.store(true, Ordering::Relaxed);
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
    println!(
        "flood {FLOOD_SOCKETS} sockets (open after warm-up {warm_open}, at end {open_end}, peak {}; \
         {churn} reopened in {real_secs:.1} s = {:.0}/s; {} connects failed), \
         real clients {ok}/{REAL_ATTEMPTS} ok, connect p50 {:?} p99 {:?} max {:?}, \
         publish+consume round p50 {:?} p99 {:?}",
        flood.peak.load(Ordering::Relaxed),
        churn as f64 / real_secs,
        flood.connect_failed.load(Ordering::Relaxed),
        percentile(&connects, 50),
        percentile(&connects, 99),
        connects.last().copied().unwrap_or_default(),
        percentile(&totals, 50),
        percentile(&totals, 99),
    );
    if !errors.is_empty() {
        println!("real client errors: {errors:?}");
    }
    assert!(
        warm_open >= FLOOD_SOCKETS * 9 / 10,
        "the flood did not get going: {warm_open} of {FLOOD_SOCKETS} sockets open"
    );
    assert!(
        ok * 100 >= REAL_ATTEMPTS * 99,
        "only {ok} of {REAL_ATTEMPTS} real clients got through: {errors:?}"
    );
}
