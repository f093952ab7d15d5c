//! `warren broker`: run the embedded AMQP 0-9-1 broker standalone.

use std::net::SocketAddr;
use std::path::PathBuf;

use warren_broker::Broker;

/// Arguments of `warren broker`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:5672")]
    listen: SocketAddr,
    /// Keep durable queues and persistent messages in this directory (memory-only without it).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// User name clients authenticate with.
    #[arg(long, default_value = "guest")]
    user: String,
    /// Password clients authenticate with.
    #[arg(long, default_value = "guest", env = "WARREN_BROKER_PASSWORD")]
    password: String,
}

/// Runs `warren broker` until SIGINT/SIGTERM.
pub async fn run(args: Args) -> Result<(), String> {
    let mut builder = Broker::builder()
        .listen(args.listen)
        .credentials(args.user, args.password);
    if let Some(dir) = args.data_dir {
        builder = builder.data_dir(dir);
    }
    let broker = builder
        .start()
        .await
        .map_err(|e| format!("cannot start the broker on {}: {e}", args.listen))?;
    println!(" [*] Warren broker listening on {}", broker.local_addr());
    warren_rpc::shutdown::signal().await;
    eprintln!(" [*] Shutting down: closing connections");
    broker.shutdown().await;
    Ok(())
}
