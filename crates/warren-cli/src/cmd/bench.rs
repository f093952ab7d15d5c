//! `warren bench`: drives calls through a broker and prints throughput and latency
//! percentiles (HdrHistogram), with errors by kind. Every run is bounded in count
//! and in time.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use warren_rpc::{CallOptions, QueueSpec, ReplyMode, Request, Response, RpcClient, RpcServer};

/// Longest run allowed, whatever the arguments say.
const MAX_RUN: Duration = Duration::from_secs(600);

/// Arguments of `warren bench`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Broker to measure (default: `$AMQP_URL`); without either, an embedded broker is
    /// started in-process.
    #[arg(long, env = "AMQP_URL", value_parser = crate::parse::amqp_url)]
    url: Option<String>,
    /// Queue to call (default: a fresh queue served by the bench's own workers).
    #[arg(long)]
    queue: Option<String>,
    /// Number of calls to make (default: run for --duration).
    #[arg(long)]
    calls: Option<u64>,
    /// How long to run when --calls is not given (at most 10 minutes).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Calls in flight at once, over all clients.
    #[arg(long, default_value_t = 64)]
    in_flight: usize,
    /// Client connections sharing the calls in flight.
    #[arg(long, default_value_t = 1)]
    clients: usize,
    /// Echo workers to start (0: call an existing server on --queue).
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Prefetch (concurrency) of each worker.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..))]
    worker_concurrency: u16,
    /// Request body size in bytes.
    #[arg(long, default_value_t = 16)]
    payload: usize,
    /// Body to send instead of --payload bytes (e.g. `30` for a fib server).
    #[arg(long)]
    body: Option<String>,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
    /// Receive replies on an exclusive reply queue instead of direct reply-to.
    #[arg(long)]
    exclusive_reply_queue: bool,
    /// Measure the broker's raw one-queue ceiling instead: publish + consume, no RPC
    /// (messages/s; --in-flight bounds messages published ahead of the consumer).
    #[arg(long)]
    raw: bool,
}

struct Outcome {
    latency: Histogram<u64>,
    errors: BTreeMap<String, u64>,
}

/// Runs `warren bench`.
pub async fn run(args: Args) -> Result<(), String> {
    if args.in_flight == 0 || args.clients == 0 {
        return Err("--in-flight and --clients must be at least 1".to_owned());
    }
    if args.workers == 0 && args.queue.is_none() {
        return Err("with --workers 0, name the queue of a running server with --queue".to_owned());
    }
    let (broker, url) = super::broker_or(args.url.as_deref()).await?;
    if args.raw {
        let (budget, run_for, bar) = bounds(&args);
        let tick = bar.clone();
        let started = Instant::now();
        let out = super::bench_raw::run(
            &url,
            args.in_flight,
            args.payload,
            budget,
            run_for,
            new_histogram(),
            move || tick.inc(1),
        )
        .await;
        let elapsed = started.elapsed();
        bar.finish_and_clear();
        if let Some(b) = broker {
            b.shutdown().await;
        }
        let out = out?;
        let total = Outcome {
            latency: out.latency,
            errors: BTreeMap::new(),
        };
        report(&args, &total, elapsed);
        return Ok(());
    }
    // A queue of our own goes away with our workers (auto-delete); one the user
    // named is declared as the tutorial does and left in place.
    let spec = match &args.queue {
        Some(name) => QueueSpec::tutorial(name.as_str()),
        None => {
            QueueSpec::tutorial(format!("warren-bench-{}", std::process::id())).auto_delete(true)
        }
    };
    let queue = spec.name.clone();
    let mut workers = Vec::new();
    for _ in 0..args.workers {
        let server = RpcServer::new()
            .concurrency(args.worker_concurrency)
            .route(spec.clone(), |req: Request| async move {
                Ok(Response::new(req.body, req.content_type))
            })
            .start(&url)
            .await
            .map_err(|e| e.to_string())?;
        workers.push(server);
    }
    let mut clients = Vec::new();
    for _ in 0..args.clients {
        let mode = if args.exclusive_reply_queue {
            ReplyMode::ExclusiveQueue
        } else {
            ReplyMode::DirectReplyTo
        };
        let client = RpcClient::builder()
            .reply_mode(mode)
            .connect(url.as_str())
            .await;
        clients.push(client.map_err(|e| e.to_string())?);
    }
    let body: Arc<[u8]> = match &args.body {
        Some(b) => b.as_bytes().into(),
        None => vec![b'x'; args.payload].into(),
    };
    let (budget, run_for, bar) = bounds(&args);
    let issued = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let stop_at = started + run_for;
    let mut tasks = tokio::task::JoinSet::new();
    for slot in 0..args.in_flight {
        let client = clients[slot % clients.len()].clone();
        let (queue, body, issued, bar) = (
            queue.clone(),
            Arc::clone(&body),
            Arc::clone(&issued),
            bar.clone(),
        );
        tasks.spawn(async move {
            let mut out = Outcome {
                latency: new_histogram(),
                errors: BTreeMap::new(),
            };
            while Instant::now() < stop_at && issued.fetch_add(1, Ordering::Relaxed) < budget {
                let t0 = Instant::now();
                let opts = CallOptions::new().timeout(Duration::from_secs(10));
                match client.call_with(&queue, &body[..], opts).await {
                    Ok(_) => {
                        let micros = u64::try_from(t0.elapsed().as_micros()).unwrap_or(u64::MAX);
                        let _ = out.latency.record(micros.max(1));
                    }
                    Err(e) => *out.errors.entry(e.code().to_string()).or_default() += 1,
                }
                bar.inc(1);
            }
            out
        });
    }
    let mut total = Outcome {
        latency: new_histogram(),
        errors: BTreeMap::new(),
    };
    while let Some(res) = tasks.join_next().await {
        let out = res.map_err(|e| format!("a bench task failed: {e}"))?;
        let _ = total.latency.add(&out.latency);
        for (k, v) in out.errors {
            *total.errors.entry(k).or_default() += v;
        }
    }
    let elapsed = started.elapsed();
    bar.finish_and_clear();
    for c in &clients {
        let _ = c.shutdown().await;
    }
    for w in workers {
        let _ = w.shutdown().await;
    }
    if let Some(b) = broker {
        b.shutdown().await;
    }
    report(&args, &total, elapsed);
    Ok(())
}

/// The run's bounds: at most `--calls` calls, for at most `--duration` (without
/// `--calls`) or [`MAX_RUN`]; and its progress bar.
fn bounds(args: &Args) -> (u64, Duration, ProgressBar) {
    let budget = args.calls.unwrap_or(u64::MAX);
    let run_for = match args.calls {
        Some(_) => MAX_RUN,
        None => args.duration.min(MAX_RUN),
    };
    (budget, run_for, progress(args.calls, run_for, args.json))
}

fn new_histogram() -> Histogram<u64> {
    // 1 µs to 100 s at 3 significant digits; the bounds are constants, so this cannot fail.
    Histogram::new_with_bounds(1, 100_000_000, 3)
        .unwrap_or_else(|_| Histogram::new(3).unwrap_or_else(|_| unreachable!()))
}

fn progress(calls: Option<u64>, run_for: Duration, hidden: bool) -> ProgressBar {
    if hidden {
        return ProgressBar::hidden();
    }
    let bar = match calls {
        Some(n) => ProgressBar::new(n),
        None => ProgressBar::no_length(),
    };
    let template = match calls {
        Some(_) => "{spinner} {pos}/{len} calls [{elapsed}] {per_sec}",
        None => "{spinner} {pos} calls [{elapsed}] {per_sec}",
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    bar.set_message(format!("up to {run_for:?}"));
    bar
}

fn report(args: &Args, total: &Outcome, elapsed: Duration) {
    let h = &total.latency;
    let ok = h.len();
    let failed: u64 = total.errors.values().sum();
    let rate = ok as f64 / elapsed.as_secs_f64().max(1e-9);
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    let broker = if args.url.is_some() {
        "url"
    } else {
        "embedded"
    };
    let mode = if args.raw { "raw" } else { "rpc" };
    let unit = if args.raw { "messages" } else { "calls" };
    if args.json {
        let errors: Vec<String> = total
            .errors
            .iter()
            .map(|(k, v)| format!("\"{k}\":{v}"))
            .collect();
        println!(
            "{{\"mode\":\"{mode}\",\"broker\":\"{broker}\",\"in_flight\":{},\"clients\":{},\"workers\":{},\"payload\":{},\"calls_ok\":{ok},\"calls_failed\":{failed},\"seconds\":{:.3},\"calls_per_sec\":{rate:.1},\"p50_ms\":{:.3},\"p90_ms\":{:.3},\"p99_ms\":{:.3},\"p999_ms\":{:.3},\"max_ms\":{:.3},\"errors\":{{{}}}}}",
            args.in_flight, args.clients, args.workers, args.payload, elapsed.as_secs_f64(),
            ms(0.5), ms(0.9), ms(0.99), ms(0.999), h.max() as f64 / 1000.0, errors.join(",")
        );
        return;
    }
    println!(
        "broker {broker}, {} in flight over {} client(s), {} worker(s), {} B payload",
        args.in_flight, args.clients, args.workers, args.payload
    );
    println!(
        "{unit:<10} {ok} ok, {failed} failed in {:.2} s",
        elapsed.as_secs_f64()
    );
    println!("throughput {rate:.0} {unit}/s");
    println!(
        "latency    p50 {:.3} ms  p90 {:.3} ms  p99 {:.3} ms  p99.9 {:.3} ms  max {:.3} ms",
        ms(0.5),
        ms(0.9),
        ms(0.99),
        ms(0.999),
        h.max() as f64 / 1000.0
    );
    for (kind, n) in &total.errors {
        println!("errors     {kind}: {n}");
    }
}
