//! `warren call`: one call, reply on stdout. The body is an argument, or stdin with `-`;
//! `--method` calls a method of a typed service (JSON body by default).
//!
//! `--timeout` bounds the whole command: connecting takes what it needs of it (and at
//! most the library's connect timeout), the call gets the rest, and closing the
//! connection afterwards takes at most [`CLOSE_TIMEOUT`] more.

use std::io::{Read, Write};
use std::time::Duration;

use tokio::time::Instant;
use warren_rpc::{codec, services::fib, CallOptions, Error, DEFAULT_CONNECT_TIMEOUT};

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
    #[arg(long, default_value = "5s", value_parser = crate::parse::positive_duration)]
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

/// How long closing the connection may take after the call, on top of `--timeout`.
pub const CLOSE_TIMEOUT: Duration = Duration::from_millis(300);

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
    let deadline = Instant::now() + args.timeout;
    let client = args
        .broker
        .builder()?
        .connect_timeout(args.timeout.min(DEFAULT_CONNECT_TIMEOUT))
        .shutdown_timeout(CLOSE_TIMEOUT)
        .connect(args.broker.primary())
        .await?;
    let mut options = CallOptions::new()
        .timeout(deadline.saturating_duration_since(Instant::now()))
        .content_type(content_type)
        .persistent(args.persistent)
        .idempotent(args.idempotent);
    if let Some(method) = args.method {
        options = options.method(method);
    }
    let reply = client.call_with(&args.queue, body, options).await;
    let _ = client.shutdown().await;
    // The call had what connecting left of --timeout; the user set --timeout.
    let reply = reply.map_err(|e| match e {
        Error::Timeout { queue, .. } => Error::Timeout {
            queue,
            timeout: args.timeout,
        },
        other => other,
    })?;
    let mut out = std::io::stdout().lock();
    let written = out
        .write_all(&reply.body)
        .and_then(|_| out.write_all(b"\n"))
        .and_then(|_| out.flush());
    written.map_err(|e| Error::InvalidArgument(format!("cannot write the reply to stdout: {e}")))
}
