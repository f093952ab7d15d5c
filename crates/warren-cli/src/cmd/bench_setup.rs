//! What every `warren bench` mode shares: the arguments, the runtimes that tell the
//! client's, the workers' and the broker's CPU apart, a run's bounds and progress bar,
//! the latency histogram and the summary. `bench.rs` (the RPC and raw modes) and
//! `bench_rpc_raw.rs` (the bench's own loops) both build on it, so neither names the other.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use tokio::runtime::Runtime;

use super::bench_cpu as cpu;
use super::bench_report::Summary;

/// Longest run allowed, whatever the arguments say.
pub(super) const MAX_RUN: Duration = Duration::from_secs(600);

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
    pub(super) observe: bool,
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
    pub(super) embedded_tls_cert: Option<std::path::PathBuf>,
    /// The private key (PEM) of --embedded-tls-cert.
    #[arg(long, value_name = "FILE", requires = "embedded_tls_cert")]
    pub(super) embedded_tls_key: Option<std::path::PathBuf>,
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
pub(super) enum Job {
    /// Raw bytes to the echo worker.
    Echo(Arc<[u8]>),
    /// Typed JSON `calc.add(a, b)`, its answer checked.
    Add,
}

/// The runtimes the bench's roles run on, so that their CPU can be told apart.
pub(super) struct Runtimes {
    pub(super) broker: Runtime,
    pub(super) worker: Runtime,
    pub(super) client: Runtime,
}

impl Runtimes {
    pub(super) fn new(threads: Option<u16>) -> Result<Self, String> {
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

    pub(super) fn shutdown(self) {
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

pub(super) fn progress(calls: Option<u64>, run_for: Duration, hidden: bool) -> ProgressBar {
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
