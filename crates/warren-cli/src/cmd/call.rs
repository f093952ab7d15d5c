//! `warren call`: one call, reply on stdout.

use std::io::Write;
use std::time::Duration;

use warren_rpc::{services::fib, CallOptions, Error};

use super::BrokerArgs;

/// Arguments of `warren call`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The request body (for `fib`: n in decimal).
    body: String,
    /// The queue to call.
    #[arg(long, default_value = fib::QUEUE)]
    queue: String,
    /// Deadline of the call (e.g. 500ms, 5s, 1m).
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// `content_type` of the request.
    #[arg(long, default_value = "text/plain")]
    content_type: String,
    /// Publish the request as persistent (delivery_mode 2).
    #[arg(long)]
    persistent: bool,
    /// The call may run twice: resend it if the connection drops, within the timeout.
    #[arg(long)]
    idempotent: bool,
    #[command(flatten)]
    broker: BrokerArgs,
}

/// Runs `warren call`.
pub async fn run(args: Args) -> warren_rpc::Result<()> {
    let client = args.broker.client().await?;
    let options = CallOptions::new()
        .timeout(args.timeout)
        .content_type(args.content_type)
        .persistent(args.persistent)
        .idempotent(args.idempotent);
    let reply = client.call_with(&args.queue, args.body, options).await;
    let _ = client.close().await;
    let reply = reply?;
    let mut out = std::io::stdout().lock();
    let written = out
        .write_all(&reply.body)
        .and_then(|_| out.write_all(b"\n"))
        .and_then(|_| out.flush());
    written.map_err(|e| Error::InvalidArgument(format!("cannot write the reply to stdout: {e}")))
}
