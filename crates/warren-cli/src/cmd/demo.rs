//! `warren demo`: RabbitMQ's RPC tutorial end to end, with zero set-up: an embedded
//! broker on a free port (or `--url`), a Fibonacci worker and a client.

use std::time::Duration;

use warren_rpc::{services::fib, CallOptions, RpcClient, RpcServer};

/// Arguments of `warren demo`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Run against this broker instead of an embedded one.
    #[arg(long, value_parser = crate::parse::amqp_url)]
    url: Option<String>,
    /// The n to ask for.
    #[arg(long, default_value_t = 30)]
    n: u64,
}

/// Runs `warren demo`.
pub async fn run(args: Args) -> Result<(), String> {
    let (broker, url) = super::broker_or(args.url.as_deref(), None).await?;
    let queue = fib::QUEUE;
    let server = RpcServer::new()
        .route(queue, fib::handle)
        .start(&url)
        .await
        .map_err(|e| crate::exit::describe(&e))?;
    let client = RpcClient::connect(&url)
        .await
        .map_err(|e| crate::exit::describe(&e))?;
    println!(" [x] Requesting fib({})", args.n);
    let reply = client
        .call_with(
            queue,
            args.n.to_string(),
            CallOptions::new().timeout(Duration::from_secs(10)),
        )
        .await;
    let _ = client.shutdown().await;
    let _ = server.shutdown().await;
    if let Some(b) = broker {
        b.shutdown().await;
    }
    let reply = reply.map_err(|e| crate::exit::describe(&e))?;
    println!(" [.] Got {}", String::from_utf8_lossy(&reply.body));
    Ok(())
}
