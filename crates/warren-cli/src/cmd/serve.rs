//! `warren serve`: serve a built-in procedure until SIGINT/SIGTERM.

use warren_rpc::services::{fib, sleep};
use warren_rpc::{QueueSpec, RpcServer};

use super::BrokerArgs;

/// Procedures `warren serve` knows.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Procedure {
    /// Fibonacci: decimal n in, decimal fib(n) out (RabbitMQ's tutorial six).
    Fib,
    /// Sleep: sleeps the milliseconds in the body, then echoes it (for tests and benchmarks).
    Sleep,
}

/// Arguments of `warren serve`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The procedure to serve.
    procedure: Procedure,
    /// The request queue (declared as the tutorial does).
    #[arg(long, default_value = fib::QUEUE)]
    queue: String,
    /// Requests worked on at once (the consumer's prefetch); 1 is the tutorial's.
    #[arg(long, default_value_t = warren_rpc::DEFAULT_CONCURRENCY)]
    concurrency: u16,
    /// Declare the queue as a durable quorum queue (RabbitMQ clusters: requests survive
    /// the loss of a node) instead of the tutorial's plain queue.
    #[arg(long)]
    quorum: bool,
    #[command(flatten)]
    broker: BrokerArgs,
}

/// Runs `warren serve`.
pub async fn run(args: Args) -> warren_rpc::Result<()> {
    let queue = if args.quorum {
        QueueSpec::quorum(args.queue.as_str())
    } else {
        QueueSpec::tutorial(args.queue.as_str())
    };
    let server = match args.procedure {
        Procedure::Fib => RpcServer::new().route(queue, fib::handle),
        Procedure::Sleep => RpcServer::new().route(queue, sleep::handle),
    };
    let mut server = server.concurrency(args.concurrency);
    for url in args.broker.fallbacks() {
        server = server.fallback_url(url.clone());
    }
    let handle = server.start(args.broker.primary()).await?;
    println!(" [x] Awaiting RPC requests");
    warren_rpc::shutdown::signal().await;
    eprintln!(" [x] Shutting down: finishing calls in flight");
    handle.shutdown().await
}
