//! `warren serve`: serve a built-in procedure until SIGINT/SIGTERM.

use warren_rpc::services::calc::{CalcClient, CalcServer, Calculator};
use warren_rpc::services::{fib, sleep};
use warren_rpc::{QueueSpec, RpcServer};

use super::BrokerArgs;
use crate::declare::{quorum_support, Clash, QuorumSupport};
use crate::exit::Failure;

/// Procedures `warren serve` knows.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Procedure {
    /// Fibonacci: decimal n in, decimal fib(n) out (RabbitMQ's tutorial six).
    Fib,
    /// Sleep: sleeps the milliseconds in the body, then echoes it (for tests and benchmarks).
    Sleep,
    /// The typed example service (queue `calc`): methods add(a, b), fib(n), sleep(ms),
    /// fail(code, message); call with `warren call --queue calc --method add '{"a":2,"b":3}'`.
    Calc,
}

impl Procedure {
    /// The queue served when `--queue` is not given.
    fn default_queue(self) -> &'static str {
        match self {
            Procedure::Fib | Procedure::Sleep => fib::QUEUE,
            Procedure::Calc => CalcClient::QUEUE,
        }
    }
}

/// Arguments of `warren serve`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The procedure to serve.
    procedure: Procedure,
    /// The request queue, declared as the tutorial does [default: rpc_queue; calc for calc].
    #[arg(long)]
    queue: Option<String>,
    /// Requests worked on at once (the consumer's prefetch); 1 is the tutorial's.
    #[arg(long, default_value_t = warren_rpc::DEFAULT_CONCURRENCY,
          value_parser = clap::value_parser!(u16).range(1..))]
    concurrency: u16,
    /// Declare the queue as a durable quorum queue (RabbitMQ clusters: requests survive
    /// the loss of a node) instead of the tutorial's plain queue. Refused (exit 8) by a
    /// broker without quorum queues, such as the embedded one.
    #[arg(long)]
    quorum: bool,
    /// Serve call metrics in Prometheus text format at http://ADDR/metrics
    /// (e.g. 127.0.0.1:9464; port 0 picks a free one, printed on stderr).
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<std::net::SocketAddr>,
    #[command(flatten)]
    broker: BrokerArgs,
}

/// Runs `warren serve`.
pub async fn run(args: Args) -> Result<(), Failure> {
    let name = args
        .queue
        .as_deref()
        .unwrap_or(args.procedure.default_queue());
    if args.quorum {
        if let QuorumSupport::Unsupported(why) = quorum_support(&args.broker.url).await {
            return Err(Failure::QueueDeclaration(format!(
                "--quorum: the broker at {} has no quorum queues ({why}); use RabbitMQ 3.8 \
                 or later for quorum queues, or drop --quorum",
                redact(args.broker.primary())
            )));
        }
    }
    let queue = if args.quorum {
        QueueSpec::quorum(name)
    } else {
        QueueSpec::tutorial(name)
    };
    let server = match args.procedure {
        Procedure::Fib => RpcServer::new().route(queue, fib::handle),
        Procedure::Sleep => RpcServer::new().route(queue, sleep::handle),
        Procedure::Calc => RpcServer::new().serve(CalcServer::new(Calculator).queue(queue)),
    };
    let mut server = server.concurrency(args.concurrency);
    let mut metrics_server = None;
    if let Some(addr) = args.metrics_listen {
        let metrics = warren_rpc::metrics::Metrics::new();
        let mut registry = prometheus_client::registry::Registry::default();
        metrics.register(&mut registry);
        let served = crate::metrics_http::serve(addr, std::sync::Arc::new(registry))
            .await
            .map_err(Failure::Other)?;
        eprintln!(" [x] Metrics at http://{}/metrics", served.addr);
        metrics_server = Some(served);
        server = server.metrics(metrics);
    }
    for url in args.broker.fallbacks() {
        server = server.fallback_url(url.clone());
    }
    if let Some(tls) = args.broker.tls().map_err(Failure::Rpc)? {
        server = server.tls(tls);
    }
    let handle = server.start(args.broker.primary()).await.map_err(|e| {
        match Clash::parse(&e.to_string()) {
            Some(clash) => Failure::QueueDeclaration(clash.advice(args.quorum)),
            None => Failure::Rpc(e),
        }
    })?;
    let shutdown = crate::signal::listen();
    println!(" [x] Awaiting RPC requests");
    shutdown.wait().await;
    eprintln!(" [x] Shutting down: finishing calls in flight");
    let stopped = handle.shutdown().await.map_err(Failure::Rpc);
    if let Some(served) = metrics_server {
        served.stop();
    }
    stopped
}

/// `url` without its password, for messages.
fn redact(url: &str) -> String {
    match url.split_once("://").and_then(|(scheme, rest)| {
        rest.split_once('@')
            .map(|(userinfo, host)| (scheme, userinfo, host))
    }) {
        Some((scheme, userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:***@{host}")
        }
        None => url.to_owned(),
    }
}
