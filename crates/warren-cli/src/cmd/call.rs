//! `warren call`: one call, reply on stdout. The body is an argument, or stdin with `-`;
//! `--method` calls a method of a typed service (JSON body by default).

use std::io::{Read, Write};
use std::time::Duration;

use warren_rpc::{codec, services::fib, CallOptions, Error};

use super::BrokerArgs;

/// Arguments of `warren call`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The request body (for `fib`: n in decimal; with --method: the arguments, e.g.
    /// '{"a":2,"b":3}'); `-` reads it from stdin.
    body: String,
    /// The queue to call.
    #[arg(long, default_value = fib::QUEUE)]
    queue: String,
    /// Deadline of the call (e.g. 500ms, 5s, 1m).
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// The method of a typed service (sent as the AMQP `type` property), e.g. `add`.
    #[arg(long)]
    method: Option<String>,
    /// `content_type` of the request [default: text/plain; application/json with --method].
    #[arg(long)]
    content_type: Option<String>,
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
    let body = if args.body == "-" {
        let mut body = Vec::new();
        std::io::stdin()
            .lock()
            .read_to_end(&mut body)
            .map_err(|e| Error::InvalidArgument(format!("cannot read the body from stdin: {e}")))?;
        body
    } else {
        args.body.into_bytes()
    };
    let content_type = args.content_type.unwrap_or_else(|| {
        let default = if args.method.is_some() {
            codec::JSON
        } else {
            "text/plain"
        };
        default.to_owned()
    });
    let mut options = CallOptions::new()
        .timeout(args.timeout)
        .content_type(content_type)
        .persistent(args.persistent)
        .idempotent(args.idempotent);
    if let Some(method) = args.method {
        options = options.method(method);
    }
    let client = args.broker.client().await?;
    let reply = client.call_with(&args.queue, body, options).await;
    let _ = client.close().await;
    let reply = reply?;
    let mut out = std::io::stdout().lock();
    let written = out
        .write_all(&reply.body)
        .and_then(|_| out.write_all(b"\n"))
        .and_then(|_| out.flush());
    written.map_err(|e| Error::InvalidArgument(format!("cannot write the reply to stdout: {e}")))
}
