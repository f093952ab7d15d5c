//! `warren bench --client raw`: the RPC loop of Warren's client and echo worker on the
//! raw client (warren-rpc's own AMQP client, `warren_rpc::__raw`), for issue 12's own-client spike. The same wire traffic
//! as `warren-rpc` makes: the client publishes `mandatory` requests with `reply_to`
//! (direct reply-to) and `correlation_id` on a confirm-mode channel and consumes its
//! replies no-ack; the worker consumes with a prefetch, publishes each reply to the
//! default exchange and acks with `multiple` once per read. Each side is one task that
//! owns its socket: it reads what has arrived, answers all of it, writes once.
//! It has none of the library's deadlines, reconnection or error mapping.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use amq_protocol::protocol::basic::{AMQPMethod, AMQPProperties};
use amq_protocol::protocol::AMQPClass;
use hdrhistogram::Histogram;

use super::bench_cpu as cpu;
use super::bench_report::Summary;
use super::bench_setup::{bounds, new_histogram, on, summary, Args, Outcome, Runtimes};
use warren_rpc::__raw::{Event, PublishTemplate, RawError, Session};

/// The pseudo-queue of RabbitMQ's direct reply-to.
const DIRECT_REPLY_TO: &str = "amq.rabbitmq.reply-to";
/// How often an idle loop looks at whether it should stop.
const POLL: Duration = Duration::from_millis(20);
/// How long the client waits for the replies of calls in flight when time is up.
const DRAIN: Duration = Duration::from_secs(5);

fn err(e: RawError) -> String {
    e.to_string()
}

/// A running echo worker; [`Worker::stop`] ends it.
pub struct Worker {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Result<(), String>>,
}

impl Worker {
    /// Connects, declares `queue` (auto-delete) and starts serving it with `prefetch`.
    /// Runs on the caller's runtime.
    pub async fn start(url: &str, queue: &str, prefetch: u16) -> Result<Self, String> {
        let mut s = Session::connect(url).await.map_err(err)?;
        s.channel_open(1).await.map_err(err)?;
        s.qos(1, prefetch).await.map_err(err)?;
        s.queue_declare(1, queue, true).await.map_err(err)?;
        s.consume(1, queue, false).await.map_err(err)?;
        let stop = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(serve(s, Arc::clone(&stop)));
        Ok(Self { stop, task })
    }

    /// Stops serving and closes the connection.
    pub async fn stop(self) -> Result<(), String> {
        self.stop.store(true, Ordering::Release);
        self.task.await.map_err(|e| e.to_string())?
    }
}

async fn serve(mut s: Session, stop: Arc<AtomicBool>) -> Result<(), String> {
    // The reply's publish frame, for the last reply-to seen (one per client).
    let mut reply: Option<(String, PublishTemplate)> = None;
    while !stop.load(Ordering::Acquire) {
        match tokio::time::timeout(POLL, s.fill()).await {
            Ok(r) => r.map_err(err)?,
            Err(_) => continue,
        }
        let mut last_tag = None;
        while let Some(event) = s.buffered_event().map_err(err)? {
            let Event::Deliver {
                delivery_tag,
                props,
                body,
                ..
            } = event
            else {
                continue;
            };
            last_tag = Some(delivery_tag);
            let Some(to) = props.reply_to() else { continue };
            if reply.as_ref().map(|(name, _)| name.as_str()) != Some(to.as_str()) {
                let template = PublishTemplate::new(1, "", to.as_str(), false).map_err(err)?;
                reply = Some((to.to_string(), template));
            }
            let mut out = AMQPProperties::default();
            if let Some(id) = props.correlation_id() {
                out = out.with_correlation_id(id.clone());
            }
            if let Some((_, template)) = &reply {
                s.out.publish(template, &out, &body).map_err(err)?;
            }
        }
        // One ack for everything this read brought, queued behind its replies.
        if let Some(tag) = last_tag {
            s.out.ack(1, tag, true);
        }
        s.flush().await.map_err(err)?;
    }
    s.close().await.map_err(err)
}

/// What the client measured.
pub struct CallOutcome {
    /// Latency of each answered call, µs.
    pub latency: Histogram<u64>,
    /// Failed calls by kind.
    pub errors: BTreeMap<String, u64>,
}

/// Keeps `in_flight` calls going to `queue` until `budget` calls or `run_for`.
#[allow(clippy::too_many_arguments)]
pub async fn calls(
    url: &str,
    queue: &str,
    in_flight: usize,
    body: &[u8],
    budget: u64,
    run_for: Duration,
    mut latency: Histogram<u64>,
    on_call: impl Fn(),
) -> Result<CallOutcome, String> {
    let mut s = Session::connect(url).await.map_err(err)?;
    s.channel_open(1).await.map_err(err)?;
    s.confirm_select(1).await.map_err(err)?;
    s.consume(1, DIRECT_REPLY_TO, true).await.map_err(err)?;
    let template = PublishTemplate::new(1, "", queue, true).map_err(err)?;
    let stop_at = Instant::now() + run_for;
    let mut errors = BTreeMap::new();
    let mut pending: HashMap<u64, Instant> = HashMap::with_capacity(in_flight * 2);
    let (mut issued, mut next_id) = (0u64, 0u64);
    let mut issue = |s: &mut Session, pending: &mut HashMap<u64, Instant>| -> Result<(), String> {
        let props = AMQPProperties::default()
            .with_reply_to(DIRECT_REPLY_TO.into())
            .with_correlation_id(next_id.to_string().into());
        s.out.publish(&template, &props, body).map_err(err)?;
        pending.insert(next_id, Instant::now());
        next_id += 1;
        Ok(())
    };
    while issued < budget.min(in_flight as u64) {
        issue(&mut s, &mut pending)?;
        issued += 1;
    }
    s.flush().await.map_err(err)?;
    let give_up = stop_at + DRAIN;
    while !pending.is_empty() && Instant::now() < give_up {
        match tokio::time::timeout(POLL, s.fill()).await {
            Ok(r) => r.map_err(err)?,
            Err(_) => continue,
        }
        while let Some(event) = s.buffered_event().map_err(err)? {
            match event {
                Event::Deliver { props, .. } => {
                    let id = props
                        .correlation_id()
                        .as_ref()
                        .and_then(|c| c.as_str().parse().ok());
                    let Some(t0) = id.and_then(|id| pending.remove(&id)) else {
                        *errors.entry("unknown_reply".to_owned()).or_default() += 1;
                        continue;
                    };
                    let micros = u64::try_from(t0.elapsed().as_micros()).unwrap_or(u64::MAX);
                    let _ = latency.record(micros.max(1));
                    on_call();
                    if issued < budget && Instant::now() < stop_at {
                        issue(&mut s, &mut pending)?;
                        issued += 1;
                    }
                }
                Event::Return { props, .. } => {
                    let id = props
                        .correlation_id()
                        .as_ref()
                        .and_then(|c| c.as_str().parse().ok());
                    if let Some(id) = id {
                        pending.remove(&id);
                    }
                    *errors.entry("no_route".to_owned()).or_default() += 1;
                }
                Event::Method(_, AMQPClass::Basic(AMQPMethod::Nack(_))) => {
                    *errors.entry("nacked".to_owned()).or_default() += 1;
                }
                Event::Method(_, AMQPClass::Basic(AMQPMethod::Ack(_))) | Event::Heartbeat => {}
                Event::Method(_, class) => return Err(format!("unexpected method: {class:?}")),
            }
        }
        s.flush().await.map_err(err)?;
    }
    if !pending.is_empty() {
        *errors.entry("timeout".to_owned()).or_default() += pending.len() as u64;
    }
    let _ = s.close().await;
    Ok(CallOutcome { latency, errors })
}

/// `warren bench --client raw`: the bench's workers and client on the raw client, each
/// on its role's runtime, measured as the lapin path is.
pub(super) async fn run(
    args: &Args,
    url: &str,
    roles: &mut cpu::Roles,
    rts: &Runtimes,
) -> Result<Summary, String> {
    let queue = format!("warren-bench-raw-{}", std::process::id());
    let mut workers = Vec::new();
    for _ in 0..args.workers {
        let (url, queue, prefetch) = (url.to_owned(), queue.clone(), args.worker_concurrency);
        let w = on(&rts.worker, async move {
            Worker::start(&url, &queue, prefetch).await
        })
        .await??;
        roles.claim_new(cpu::WORKER);
        workers.push(w);
    }
    let body: Vec<u8> = match &args.body {
        Some(b) => b.as_bytes().to_vec(),
        None => vec![b'x'; args.payload],
    };
    let (budget, run_for, bar) = bounds(args);
    let meter = cpu::Meter::start(roles, args.broker_pid);
    let started = Instant::now();
    let mut tasks = Vec::new();
    let per_client = args.in_flight.div_ceil(args.clients);
    let each = budget.div_ceil(args.clients as u64);
    for _ in 0..args.clients {
        let (url, queue, body, tick) = (url.to_owned(), queue.clone(), body.clone(), bar.clone());
        tasks.push(rts.client.spawn(async move {
            calls(
                &url,
                &queue,
                per_client,
                &body,
                each,
                run_for,
                new_histogram(),
                move || tick.inc(1),
            )
            .await
        }));
    }
    let mut total = Outcome::new();
    for task in tasks {
        let out = task
            .await
            .map_err(|e| format!("a bench task failed: {e}"))??;
        total.add(Outcome {
            latency: out.latency,
            errors: out.errors,
        });
    }
    let elapsed = started.elapsed();
    let spent = meter.stop(roles);
    bar.finish_and_clear();
    for w in workers {
        let _ = on(&rts.worker, async move { w.stop().await }).await;
    }
    Ok(summary(args, total, elapsed, &spent))
}
