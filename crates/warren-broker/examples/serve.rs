//! Run a standalone broker: `cargo run -p warren-broker --example serve -- [PORT] [DATA_DIR]`.

use warren_broker::Broker;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().map(|p| p.parse()).transpose()?.unwrap_or(5672);
    let mut builder = Broker::builder().listen(([127, 0, 0, 1], port).into());
    if let Some(dir) = args.next() {
        builder = builder.data_dir(dir);
    }
    let handle = builder.start().await?;
    println!("{}", handle.amqp_url());
    tokio::signal::ctrl_c().await?;
    handle.shutdown().await;
    Ok(())
}
