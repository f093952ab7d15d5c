//! The embedded broker's memory bound, measured on a real `warren broker` process
//! (its RSS from `/proc/PID/status`, so nothing else in the test process counts): a
//! publisher flooding a queue nobody consumes is blocked (`connection.blocked`)
//! before the broker's resident memory reaches `--memory-limit`, whatever the
//! message size, and the memory comes back once the queue is deleted.
//!
//! Figures are printed (`cargo test --release -p warren-cli --test broker_memory --
//! --nocapture --test-threads=1`).

mod common;
use common::broker_process;
use common::figures;

use std::time::{Duration, Instant};

use broker_process::BrokerProcess;

use lapin::options::{BasicPublishOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection};

const MIB: u64 = 1 << 20;
/// The limit given to the broker under test.
const LIMIT: u64 = 64 * MIB;
/// How far above its baseline the broker may stay once the queue is deleted.
const GIVEN_BACK_WITHIN: u64 = 8 * MIB;

/// A field of the broker's `/proc/PID/status` in bytes (`VmRSS`, `VmHWM`).
fn status_bytes(broker: &BrokerProcess, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{}/status", broker.pid()))
        .expect("the broker process is running");
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or_else(|| panic!("no {field} in /proc/PID/status"))
}

/// The broker's resident memory.
fn rss(broker: &BrokerProcess) -> u64 {
    status_bytes(broker, "VmRSS")
}

/// The broker's peak resident memory since it started.
fn peak_rss(broker: &BrokerProcess) -> u64 {
    status_bytes(broker, "VmHWM")
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / MIB as f64)
}

/// What one flood measured.
struct Flood {
    published: u64,
    held: u32,
    blocked: bool,
}

/// Publishes `body_len`-byte messages to `queue` until the connection is blocked
/// (or `max` messages, or 60 s, or the broker's RSS passing twice the limit); then
/// reads how many the queue holds on `admin` (a connection that never published,
/// so it is not blocked).
async fn flood(
    broker: &BrokerProcess,
    conn: &Connection,
    admin: &lapin::Channel,
    queue: &str,
    body_len: usize,
    max: u64,
) -> Flood {
    let ch = conn.create_channel().await.expect("channel");
    ch.queue_declare(
        queue.into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("queue declared");
    let body = vec![b'x'; body_len];
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut published = 0u64;
    while published < max && Instant::now() < deadline {
        if conn.status().blocked() {
            break;
        }
        let sent = tokio::time::timeout(
            Duration::from_secs(2),
            ch.basic_publish(
                "".into(),
                queue.into(),
                BasicPublishOptions::default(),
                &body,
                BasicProperties::default(),
            ),
        )
        .await;
        match sent {
            Ok(Ok(_)) => published += 1,
            Ok(Err(e)) => panic!("publish failed: {e}"),
            Err(_) => continue, // held by the client while blocked
        }
        if published.is_multiple_of(512) && rss(broker) > 2 * LIMIT {
            break;
        }
    }
    // Let the broker take what is already on the wire, then read what it holds.
    let settle = Instant::now() + Duration::from_secs(5);
    while !conn.status().blocked() && Instant::now() < settle {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let held = admin
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("queue still there")
        .message_count();
    Flood {
        published,
        held,
        blocked: conn.status().blocked(),
    }
}

/// Waits (up to 10 s) for the broker's RSS to come within `GIVEN_BACK_WITHIN` of
/// `baseline`, then 2 s more (the broker trims at most once a second); returns the
/// RSS read then.
async fn rss_after_release(broker: &BrokerProcess, baseline: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    while rss(broker) > baseline + GIVEN_BACK_WITHIN && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    rss(broker)
}

/// Floods a 64 MiB broker with `body_len`-byte messages, checks it blocked before its
/// RSS reached the limit, deletes the queue and checks the memory came back.
async fn blocked_before_the_limit_and_given_back(body_len: usize, max: u64) {
    let broker = BrokerProcess::start(["--memory-limit", "64MiB"]);
    let publisher = broker.connect().await;
    let admin = broker.connect().await;
    let admin_ch = admin.create_channel().await.expect("channel");
    let queue = format!("flood-{body_len}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let baseline = rss(&broker);

    assert!(
        broker.ready_line().contains("memory limit 64.0 MiB"),
        "the broker reports its limit: {:?}",
        broker.ready_line()
    );
    let f = flood(&broker, &publisher, &admin_ch, &queue, body_len, max).await;
    let peak = peak_rss(&broker);
    let payload = f.held as u64 * body_len as u64;
    admin_ch
        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
        .await
        .expect("queue deleted");
    let after = rss_after_release(&broker, baseline).await;
    figures::report(&format!(
        "{body_len} B messages, limit {}: blocked {}, {} published, {} held (payload {}), \
         baseline RSS {}, peak RSS {}, after delete {}",
        mib(LIMIT),
        f.blocked,
        f.published,
        f.held,
        mib(payload),
        mib(baseline),
        mib(peak),
        mib(after)
    ));
    assert!(
        f.blocked,
        "the publisher was never blocked ({} published)",
        f.published
    );
    assert!(
        peak < LIMIT,
        "peak RSS {} passed the {} limit",
        mib(peak),
        mib(LIMIT)
    );
    assert!(
        after <= baseline + GIVEN_BACK_WITHIN,
        "RSS {} after the delete, baseline {}",
        mib(after),
        mib(baseline)
    );
    // The publisher is told unblocked once the memory is back.
    let deadline = Instant::now() + Duration::from_secs(5);
    while publisher.status().blocked() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!publisher.status().blocked(), "unblocked after the delete");
}

/// Runs `test` within two minutes.
async fn bounded(test: impl std::future::Future<Output = ()>) {
    common::within(Duration::from_secs(120), test).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiny_messages_are_blocked_before_rss_reaches_the_limit_and_memory_comes_back() {
    bounded(blocked_before_the_limit_and_given_back(16, 5_000_000)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_messages_are_blocked_before_rss_reaches_the_limit_and_memory_comes_back() {
    bounded(blocked_before_the_limit_and_given_back(1536 * 1024, 200)).await;
}
