//! `warren bench --raw`: the broker's raw ceiling on one queue, without RPC: one
//! connection publishes (at most `--in-flight` messages ahead of the consumer), another
//! consumes in no-ack mode. Latency is publish-to-delivery.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use hdrhistogram::Histogram;
use lapin::options::{BasicConsumeOptions, BasicPublishOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use tokio::sync::Notify;

/// Channels publishing at once.
const PUBLISHERS: usize = 4;

/// What a raw run measured.
pub struct RawOutcome {
    /// Publish-to-delivery latency, µs.
    pub latency: Histogram<u64>,
}

async fn connect(url: &str) -> Result<Connection, String> {
    Connection::connect(url, ConnectionProperties::default())
        .await
        .map_err(|e| format!("cannot connect to {url}: {e}"))
}

/// Publishes and consumes on one fresh queue until `budget` messages or `run_for`.
pub async fn run(
    url: &str,
    in_flight: usize,
    payload: usize,
    budget: u64,
    run_for: Duration,
    histogram: Histogram<u64>,
    on_delivery: impl Fn() + Send + 'static,
) -> Result<RawOutcome, String> {
    let (pub_conn, sub_conn) = (connect(url).await?, connect(url).await?);
    let queue = format!("warren-raw-{}", std::process::id());
    let err = |e: lapin::Error| e.to_string();
    let sub = sub_conn.create_channel().await.map_err(err)?;
    let opts = QueueDeclareOptions {
        auto_delete: true,
        ..Default::default()
    };
    sub.queue_declare(queue.as_str().into(), opts, FieldTable::default())
        .await
        .map_err(err)?;
    let consume = BasicConsumeOptions {
        no_ack: true,
        ..Default::default()
    };
    let mut consumer = sub
        .basic_consume(
            queue.as_str().into(),
            "".into(),
            consume,
            FieldTable::default(),
        )
        .await
        .map_err(err)?;
    let started = Instant::now();
    let stop_at = started + run_for;
    let delivered = Arc::new(AtomicU64::new(0));
    let progress = Arc::new(Notify::new());
    let reader = tokio::spawn({
        let (delivered, progress) = (Arc::clone(&delivered), Arc::clone(&progress));
        async move {
            let mut latency = histogram;
            while let Ok(Some(Ok(d))) =
                tokio::time::timeout_at(stop_at.into(), consumer.next()).await
            {
                let mut stamp = [0u8; 8];
                if d.data.len() >= 8 {
                    stamp.copy_from_slice(&d.data[..8]);
                }
                let sent = Duration::from_micros(u64::from_le_bytes(stamp));
                let micros = started.elapsed().saturating_sub(sent).as_micros();
                let _ = latency.record(u64::try_from(micros).unwrap_or(u64::MAX).max(1));
                on_delivery();
                if delivered.fetch_add(1, Ordering::Relaxed) + 1 >= budget {
                    break;
                }
                progress.notify_waiters();
            }
            progress.notify_waiters();
            latency
        }
    });
    // Several publishing channels, so the publisher side is not the bottleneck.
    let sent = Arc::new(AtomicU64::new(0));
    let mut publishers: tokio::task::JoinSet<Result<(), String>> = tokio::task::JoinSet::new();
    for _ in 0..PUBLISHERS {
        let channel = pub_conn.create_channel().await.map_err(err)?;
        let (sent, delivered, progress, queue) = (
            Arc::clone(&sent),
            Arc::clone(&delivered),
            Arc::clone(&progress),
            queue.clone(),
        );
        publishers.spawn(async move {
            let mut body = vec![b'x'; payload.max(8)];
            loop {
                if Instant::now() >= stop_at {
                    return Ok(());
                }
                let ahead = sent
                    .load(Ordering::Relaxed)
                    .saturating_sub(delivered.load(Ordering::Relaxed));
                if ahead >= in_flight as u64 {
                    let _ =
                        tokio::time::timeout(Duration::from_millis(10), progress.notified()).await;
                    continue;
                }
                if sent.fetch_add(1, Ordering::Relaxed) >= budget {
                    return Ok(());
                }
                let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
                body[..8].copy_from_slice(&micros.to_le_bytes());
                channel
                    .basic_publish(
                        "".into(),
                        queue.as_str().into(),
                        BasicPublishOptions::default(),
                        &body,
                        BasicProperties::default(),
                    )
                    .await
                    .map_err(err)?;
            }
        });
    }
    while let Some(res) = publishers.join_next().await {
        res.map_err(|e| e.to_string())??;
    }
    let latency = reader.await.map_err(|e| e.to_string())?;
    let _ = pub_conn.close(200, "bench done".into()).await;
    let _ = sub_conn.close(200, "bench done".into()).await;
    Ok(RawOutcome { latency })
}
