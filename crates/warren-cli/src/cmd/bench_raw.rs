//! `warren bench --raw`: the broker's one-queue ceiling, without RPC, driven by
//! warren-rpc's own AMQP client (through `warren_rpc::__raw`) so that the load
//! generator is not what bounds it: one connection publishes 16 B (by default) messages in pipelined batches, at most
//! `--in-flight` ahead of the consumer; another consumes in no-ack mode. Latency is
//! publish-to-delivery (a timestamp in the body).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use amq_protocol::protocol::basic::AMQPProperties;
use hdrhistogram::Histogram;
use tokio::sync::Notify;

use warren_rpc::__raw::{Event, PublishTemplate, RawError, Session};

/// Most publishes written with one `write_all`.
const BATCH: u64 = 256;
/// How long the consumer waits for the last messages after publishing stops.
const DRAIN: Duration = Duration::from_secs(2);
/// How often an idle consumer looks at whether publishing has ended.
const POLL: Duration = Duration::from_millis(20);

/// What a raw run measured.
pub struct RawOutcome {
    /// Publish-to-delivery latency, µs.
    pub latency: Histogram<u64>,
}

/// Counters the publisher and consumer share.
#[derive(Default)]
struct Progress {
    sent: AtomicU64,
    delivered: AtomicU64,
    publishing_done: AtomicBool,
    wake: Notify,
}

fn err(e: RawError) -> String {
    e.to_string()
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
    let mut sub = Session::connect(url).await.map_err(err)?;
    let mut publ = Session::connect(url).await.map_err(err)?;
    let queue = format!("warren-raw-{}", std::process::id());
    sub.channel_open(1).await.map_err(err)?;
    sub.queue_declare(1, &queue, true).await.map_err(err)?;
    sub.consume(1, &queue, true).await.map_err(err)?;
    publ.channel_open(1).await.map_err(err)?;
    let started = Instant::now();
    let stop_at = started + run_for;
    let progress = Arc::new(Progress::default());
    let consumer = tokio::spawn(consume(
        sub,
        Arc::clone(&progress),
        started,
        stop_at,
        budget,
        histogram,
        on_delivery,
    ));
    let published = publish(
        &mut publ, &queue, &progress, in_flight, payload, budget, started, stop_at,
    )
    .await;
    progress.publishing_done.store(true, Ordering::Release);
    let (mut sub, latency) = consumer.await.map_err(|e| e.to_string())??;
    published?;
    let _ = sub.queue_delete(1, &queue).await;
    let _ = sub.close().await;
    let _ = publ.close().await;
    Ok(RawOutcome { latency })
}

/// The pipelined publisher: batches of up to [`BATCH`] publishes per write, never more
/// than `in_flight` ahead of the consumer.
#[allow(clippy::too_many_arguments)]
async fn publish(
    s: &mut Session,
    queue: &str,
    progress: &Progress,
    in_flight: usize,
    payload: usize,
    budget: u64,
    started: Instant,
    stop_at: Instant,
) -> Result<(), String> {
    let template = PublishTemplate::new(1, "", queue, false).map_err(err)?;
    let props = AMQPProperties::default();
    let mut body = vec![b'x'; payload.max(8)];
    let mut sent = 0u64;
    while sent < budget && Instant::now() < stop_at {
        let ahead = sent.saturating_sub(progress.delivered.load(Ordering::Acquire));
        let room = (in_flight as u64)
            .saturating_sub(ahead)
            .min(BATCH)
            .min(budget - sent);
        if room == 0 {
            let _ = tokio::time::timeout(Duration::from_millis(10), progress.wake.notified()).await;
            continue;
        }
        for _ in 0..room {
            let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
            body[..8].copy_from_slice(&micros.to_le_bytes());
            s.out.publish(&template, &props, &body).map_err(err)?;
        }
        s.flush().await.map_err(err)?;
        sent += room;
        progress.sent.store(sent, Ordering::Release);
    }
    Ok(())
}

/// The no-ack consumer: counts deliveries and records their latency, waking the
/// publisher once per read.
async fn consume(
    mut s: Session,
    progress: Arc<Progress>,
    started: Instant,
    stop_at: Instant,
    budget: u64,
    mut latency: Histogram<u64>,
    on_delivery: impl Fn() + Send + 'static,
) -> Result<(Session, Histogram<u64>), String> {
    let mut delivered = 0u64;
    let give_up = stop_at + DRAIN;
    loop {
        let done = progress.publishing_done.load(Ordering::Acquire);
        if delivered >= budget || (done && delivered >= progress.sent.load(Ordering::Acquire)) {
            break;
        }
        // A short wait, so that the end of publishing is seen soon after it happens.
        let wait = give_up.min(Instant::now() + POLL);
        match tokio::time::timeout_at(wait.into(), s.fill()).await {
            Ok(r) => r.map_err(err)?,
            Err(_) if Instant::now() >= give_up => break,
            Err(_) => continue,
        }
        while let Some(event) = s.buffered_event().map_err(err)? {
            match event {
                Event::Deliver { body, .. } => {
                    let mut stamp = [0u8; 8];
                    if body.len() >= 8 {
                        stamp.copy_from_slice(&body[..8]);
                    }
                    let sent = Duration::from_micros(u64::from_le_bytes(stamp));
                    let micros = started.elapsed().saturating_sub(sent).as_micros();
                    let _ = latency.record(u64::try_from(micros).unwrap_or(u64::MAX).max(1));
                    on_delivery();
                    delivered += 1;
                }
                Event::Method(_, class) => {
                    return Err(format!("unexpected method on the consumer: {class:?}"))
                }
                Event::Return { .. } | Event::Heartbeat => {}
            }
        }
        progress.delivered.store(delivered, Ordering::Release);
        progress.wake.notify_one();
    }
    Ok((s, latency))
}
