//! `warren bench`: drives calls through a broker and prints throughput, latency
//! percentiles (HdrHistogram), errors by kind and CPU time per call for the client,
//! the workers and the broker. Client, workers and an embedded broker each run on a
//! tokio runtime of their own so that their CPU can be told apart (see `bench_cpu`).
//! Every run is bounded in count and in time.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use tokio::runtime::Runtime;
use warren_rpc::services::calc::{CalcClient, CalcServer, Calculator};
use warren_rpc::{CallOptions, QueueSpec, ReplyMode, Request, Response, RpcClient, RpcServer};

use super::bench_cpu as cpu;
use super::bench_report::Summary;

/// Longest run allowed, whatever the arguments say.
const MAX_RUN: Duration = Duration::from_secs(600);

/// Arguments of `warren bench`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Broker to measure (default: `$AMQP_URL`); without either, an embedded broker is
    /// started in-process.
    #[arg(long, env = "AMQP_URL", value_parser = crate::parse::amqp_url)]
    pub(super) url: Option<String>,
    /// Queue to call (default: a fresh queue served by the bench's own workers).
    #[arg(long)]
    pub(super) queue: Option<String>,
    /// Number of calls to make (default: run for --duration).
    #[arg(long)]
    pub(super) calls: Option<u64>,
    /// How long to run when --calls is not given (at most 10 minutes).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub(super) duration: Duration,
    /// Calls in flight at once, over all clients.
    #[arg(long, default_value_t = 64)]
    pub(super) in_flight: usize,
    /// Client connections sharing the calls in flight.
    #[arg(long, default_value_t = 1)]
    pub(super) clients: usize,
    /// Echo workers to start (0: call an existing server on --queue).
    #[arg(long, default_value_t = 1)]
    pub(super) workers: usize,
    /// Prefetch (concurrency) of each worker.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..))]
    pub(super) worker_concurrency: u16,
    /// Request body size in bytes.
    #[arg(long, default_value_t = 16)]
    pub(super) payload: usize,
    /// Body to send instead of --payload bytes (e.g. `30` for a fib server).
    #[arg(long)]
    pub(super) body: Option<String>,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub(super) json: bool,
    /// Receive replies on an exclusive reply queue instead of direct reply-to.
    #[arg(long)]
    pub(super) exclusive_reply_queue: bool,
    /// Measure the broker's raw one-queue ceiling instead: publish + consume, no RPC
    /// (messages/s; --in-flight bounds messages published ahead of the consumer).
    #[arg(long)]
    pub(super) raw: bool,
    /// Make typed JSON `calc.add(a, b)` calls (the bench's workers serve the typed
    /// `Calc` service) instead of raw bytes echo calls.
    #[arg(long, conflicts_with_all = ["raw", "body"])]
    pub(super) typed: bool,
    /// Also report the CPU per call of the broker process with this id (e.g. RabbitMQ's
    /// `beam.smp`, or a `warren broker`); an embedded broker is measured without it.
    #[arg(long)]
    pub(super) broker_pid: Option<u32>,
    /// Worker threads of each of the client's, the workers' and the embedded broker's
    /// runtimes (default: one per core, as a separate process would have).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub(super) threads: Option<u16>,
    /// Turn observability on, to measure its cost: call metrics on the clients and
    /// workers, and a span per call on both ends recorded with an always-on sampler
    /// (exported over OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set, else dropped).
    #[arg(long)]
    observe: bool,
    /// The bench's own RPC client and workers: `rpc` (warren-rpc's `RpcClient` and
    /// `RpcServer`, the library) or `raw` (loops of their own on warren-rpc's AMQP
    /// client, without the library's deadlines, reconnection and error mapping: echo
    /// calls with direct reply-to only, what the library's figures are compared to).
    #[arg(long, value_enum, default_value_t = ClientKind::Rpc,
          conflicts_with_all = ["raw", "typed", "exclusive_reply_queue", "queue", "observe"])]
    pub(super) client: ClientKind,
    #[command(flatten)]
    pub(super) tls: super::TlsArgs,
    /// The embedded broker listens for TLS only, with this certificate chain (PEM), and
    /// the bench connects over `amqps://127.0.0.1:PORT` (trust its CA with --tls-ca).
    #[arg(long, value_name = "FILE", requires = "embedded_tls_key",
          conflicts_with_all = ["url", "raw", "client"])]
    embedded_tls_cert: Option<std::path::PathBuf>,
    /// The private key (PEM) of --embedded-tls-cert.
    #[arg(long, value_name = "FILE", requires = "embedded_tls_cert")]
    embedded_tls_key: Option<std::path::PathBuf>,
}

impl Args {
    /// Whether `--observe` was given (traces are set up before the command runs).
    pub fn observe(&self) -> bool {
        self.observe
    }
}

/// Which AMQP client `warren bench` makes its RPC calls with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ClientKind {
    /// warren-rpc's `RpcClient` and `RpcServer` (`lapin`: the name before issue 12).
    #[value(alias = "lapin")]
    Rpc,
    /// The bench's own loops on warren-rpc's AMQP client (`warren_rpc::__raw`).
    Raw,
}

/// Latency and errors of one run (or one task's share of it).
pub(super) struct Outcome {
    pub(super) latency: Histogram<u64>,
    pub(super) errors: BTreeMap<String, u64>,
}

impl Outcome {
    pub(super) fn new() -> Self {
        Outcome {
            latency: new_histogram(),
            errors: BTreeMap::new(),
        }
    }

    pub(super) fn add(&mut self, other: Outcome) {
        let _ = self.latency.add(&other.latency);
        for (k, v) in other.errors {
            *self.errors.entry(k).or_default() += v;
        }
    }
}

/// What each call sends.
#[derive(Clone)]
enum Job {
    /// Raw bytes to the echo worker.
    Echo(Arc<[u8]>),
    /// Typed JSON `calc.add(a, b)`, its answer checked.
    Add,
}

/// The runtimes the bench's roles run on, so that their CPU can be told apart.
pub(super) struct Runtimes {
    broker: Runtime,
    pub(super) worker: Runtime,
    pub(super) client: Runtime,
}

impl Runtimes {
    fn new(threads: Option<u16>) -> Result<Self, String> {
        let rt = |name: &str| {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            if let Some(n) = threads {
                builder.worker_threads(usize::from(n));
            }
            builder
                .thread_name(name)
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start the {name} runtime: {e}"))
        };
        Ok(Runtimes {
            broker: rt(cpu::BROKER)?,
            worker: rt(cpu::WORKER)?,
            client: rt(cpu::CLIENT)?,
        })
    }

    fn shutdown(self) {
        self.client.shutdown_background();
        self.worker.shutdown_background();
        self.broker.shutdown_background();
    }
}

/// Runs `f` to completion on `rt`.
pub(super) async fn on<T: Send + 'static>(
    rt: &Runtime,
    f: impl std::future::Future<Output = T> + Send + 'static,
) -> Result<T, String> {
    rt.spawn(f)
        .await
        .map_err(|e| format!("a bench task failed: {e}"))
}

/// Runs `warren bench`.
pub async fn run(args: Args) -> Result<(), String> {
    if args.in_flight == 0 || args.clients == 0 {
        return Err("--in-flight and --clients must be at least 1".to_owned());
    }
    if args.workers == 0 && args.queue.is_none() {
        return Err("with --workers 0, name the queue of a running server with --queue".to_owned());
    }
    let mut roles = cpu::Roles::new();
    let rts = Runtimes::new(args.threads)?;
    let given = args.url.clone();
    let embedded_tls = match (&args.embedded_tls_cert, &args.embedded_tls_key) {
        (Some(cert), Some(key)) => {
            Some(warren_broker::TlsOptions::from_files(cert, key).map_err(|e| e.to_string())?)
        }
        _ => None,
    };
    let (broker, url) = on(&rts.broker, async move {
        super::broker_or(given.as_deref(), embedded_tls).await
    })
    .await??;
    roles.claim_new(cpu::BROKER);
    let measured = if args.raw {
        raw(&args, &url, &roles, &rts).await
    } else if args.client == ClientKind::Raw {
        super::bench_rpc_raw::run(&args, &url, &mut roles, &rts).await
    } else {
        rpc(&args, &url, &mut roles, &rts).await
    };
    if let Some(b) = broker {
        let _ = on(&rts.broker, async move { b.shutdown().await }).await;
    }
    rts.shutdown();
    let summary = measured?;
    if args.json {
        println!("{}", summary.json());
    } else {
        print!("{}", summary.human());
    }
    Ok(())
}

pub(super) fn summary(
    args: &Args,
    total: Outcome,
    elapsed: Duration,
    spent: &cpu::Spent,
) -> Summary {
    let calls = total.latency.len();
    Summary {
        mode: match (args.raw, args.typed, args.client) {
            (true, _, _) => "raw",
            (false, true, _) => "typed",
            (false, false, ClientKind::Raw) => "rpc-raw-client",
            (false, false, ClientKind::Rpc) => "rpc",
        },
        broker: if args.url.is_some() {
            "url"
        } else {
            "embedded"
        },
        in_flight: args.in_flight,
        clients: args.clients,
        workers: args.workers,
        payload: args.payload,
        latency: total.latency,
        errors: total.errors,
        elapsed,
        cpu: cpu::PerCall::new(spent, calls, elapsed),
    }
}

/// `--raw`: the broker's one-queue ceiling, publisher and consumer on the client runtime.
async fn raw(
    args: &Args,
    url: &str,
    roles: &cpu::Roles,
    rts: &Runtimes,
) -> Result<Summary, String> {
    let (budget, run_for, bar) = bounds(args);
    let tick = bar.clone();
    let meter = cpu::Meter::start(roles, args.broker_pid);
    let started = Instant::now();
    let (url, in_flight, payload) = (url.to_owned(), args.in_flight, args.payload);
    let out = on(&rts.client, async move {
        super::bench_raw::run(
            &url,
            in_flight,
            payload,
            budget,
            run_for,
            new_histogram(),
            move || tick.inc(1),
        )
        .await
    })
    .await?;
    let elapsed = started.elapsed();
    let spent = meter.stop(roles);
    bar.finish_and_clear();
    let total = Outcome {
        latency: out?.latency,
        errors: BTreeMap::new(),
    };
    Ok(summary(args, total, elapsed, &spent))
}

/// RPC calls: echo (raw bytes) or typed `calc.add`, through the bench's own workers
/// unless `--workers 0`.
async fn rpc(
    args: &Args,
    url: &str,
    roles: &mut cpu::Roles,
    rts: &Runtimes,
) -> Result<Summary, String> {
    // A queue of our own goes away with our workers (auto-delete); one the user
    // named is declared as the tutorial does and left in place.
    let spec = match &args.queue {
        Some(name) => QueueSpec::tutorial(name.as_str()),
        None => {
            QueueSpec::tutorial(format!("warren-bench-{}", std::process::id())).auto_delete(true)
        }
    };
    let queue = spec.name.clone();
    let metrics = args.observe.then(warren_rpc::metrics::Metrics::new);
    let tls = args.tls.config().map_err(|e| e.to_string())?;
    let mut workers = Vec::new();
    for _ in 0..args.workers {
        let (metrics, tls) = (metrics.clone(), tls.clone());
        let (spec, url, concurrency, typed) = (
            spec.clone(),
            url.to_owned(),
            args.worker_concurrency,
            args.typed,
        );
        let server = on(&rts.worker, async move {
            let mut server = RpcServer::new().concurrency(concurrency);
            if let Some(m) = metrics {
                server = server.metrics(m);
            }
            if let Some(tls) = tls {
                server = server.tls(tls);
            }
            let server = if typed {
                server.serve(CalcServer::new(Calculator).queue(spec))
            } else {
                server.route(spec, |req: Request| async move {
                    Ok(Response::new(req.body, req.content_type))
                })
            };
            server.start(&url).await
        })
        .await?
        .map_err(|e| e.to_string())?;
        roles.claim_new(cpu::WORKER);
        workers.push(server);
    }
    let mut clients = Vec::new();
    for _ in 0..args.clients {
        let mode = if args.exclusive_reply_queue {
            ReplyMode::ExclusiveQueue
        } else {
            ReplyMode::DirectReplyTo
        };
        let (url, metrics, tls) = (url.to_owned(), metrics.clone(), tls.clone());
        let client = on(&rts.client, async move {
            let mut builder = RpcClient::builder().reply_mode(mode);
            if let Some(m) = metrics {
                builder = builder.metrics(m);
            }
            if let Some(tls) = tls {
                builder = builder.tls(tls);
            }
            builder.connect(url.as_str()).await
        })
        .await?;
        roles.claim_new(cpu::CLIENT);
        clients.push(client.map_err(|e| e.to_string())?);
    }
    let job = if args.typed {
        Job::Add
    } else {
        Job::Echo(match &args.body {
            Some(b) => b.as_bytes().into(),
            None => vec![b'x'; args.payload].into(),
        })
    };
    let (budget, run_for, bar) = bounds(args);
    let issued = Arc::new(AtomicU64::new(0));
    let meter = cpu::Meter::start(roles, args.broker_pid);
    let started = Instant::now();
    let stop_at = started + run_for;
    let mut tasks = Vec::new();
    for slot in 0..args.in_flight {
        let client = clients[slot % clients.len()].clone();
        let calc = CalcClient::with_queue(&client, queue.as_str());
        let (queue, job, issued, bar) =
            (queue.clone(), job.clone(), Arc::clone(&issued), bar.clone());
        tasks.push(rts.client.spawn(async move {
            let mut out = Outcome::new();
            loop {
                let n = issued.fetch_add(1, Ordering::Relaxed);
                if Instant::now() >= stop_at || n >= budget {
                    break;
                }
                let t0 = Instant::now();
                let opts = CallOptions::new().timeout(Duration::from_secs(10));
                let done = match &job {
                    Job::Echo(body) => client
                        .call_with(&queue, &body[..], opts)
                        .await
                        .map(drop)
                        .map_err(|e| e.code().to_string()),
                    Job::Add => add(&calc, opts, n).await,
                };
                match done {
                    Ok(()) => {
                        let micros = u64::try_from(t0.elapsed().as_micros()).unwrap_or(u64::MAX);
                        let _ = out.latency.record(micros.max(1));
                    }
                    Err(kind) => *out.errors.entry(kind).or_default() += 1,
                }
                bar.inc(1);
            }
            out
        }));
    }
    let mut total = Outcome::new();
    for task in tasks {
        total.add(
            task.await
                .map_err(|e| format!("a bench task failed: {e}"))?,
        );
    }
    let elapsed = started.elapsed();
    let spent = meter.stop(roles);
    bar.finish_and_clear();
    for c in clients {
        let _ = on(&rts.client, async move { c.shutdown().await }).await;
    }
    for w in workers {
        let _ = on(&rts.worker, async move { w.shutdown().await }).await;
    }
    Ok(summary(args, total, elapsed, &spent))
}

/// One typed `calc.add` call, its answer checked (`wrong_answer` if it is not the sum).
async fn add(calc: &CalcClient, opts: CallOptions, n: u64) -> Result<(), String> {
    let a = i64::try_from(n % 1_000_000).unwrap_or(0);
    let b = 7;
    match calc.add_with(opts, a, b).await {
        Ok(sum) if sum == a + b => Ok(()),
        Ok(_) => Err("wrong_answer".to_owned()),
        Err(e) => Err(e.code().to_string()),
    }
}

/// The run's bounds: at most `--calls` calls, for at most `--duration` (without
/// `--calls`) or [`MAX_RUN`]; and its progress bar.
pub(super) fn bounds(args: &Args) -> (u64, Duration, ProgressBar) {
    let budget = args.calls.unwrap_or(u64::MAX);
    let run_for = match args.calls {
        Some(_) => MAX_RUN,
        None => args.duration.min(MAX_RUN),
    };
    (budget, run_for, progress(args.calls, run_for, args.json))
}

pub(super) fn new_histogram() -> Histogram<u64> {
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
