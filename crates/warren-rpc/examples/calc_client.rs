//! A typed client of the `calc` example service (`warren serve calc`), through the
//! `CalcClient` stub `#[warren_rpc::service]` generates. Also what the pika suite runs
//! against a pika server written from the SPEC.
//!
//! ```text
//! calc_client [--queue calc] [--codec json|msgpack|cbor] add 2 3      # prints 5
//! calc_client fib 30                                                  # prints 832040
//! calc_client fail not_found "no such key"                            # exit 3
//! ```
//!
//! The broker is `$AMQP_URL` (default `amqp://guest:guest@127.0.0.1:5672/%2f`).
//! Exit codes: 0 success, 2 usage, 3 the server answered with an error status,
//! 1 anything else.

use std::process::ExitCode;
use std::time::Duration;

use warren_rpc::services::calc::CalcClient;
use warren_rpc::{CallOptions, Codec, Error, RpcClient};

const USAGE: &str = "usage: calc_client [--queue Q] [--codec json|msgpack|cbor] \
                     (add A B | fib N | sleep MS | fail CODE MESSAGE)";

/// What to call, parsed from the command line.
struct Args {
    queue: String,
    codec: Codec,
    call: Vec<String>,
}

fn parse(mut argv: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut args = Args {
        queue: CalcClient::QUEUE.to_owned(),
        codec: Codec::Json,
        call: Vec::new(),
    };
    while let Some(arg) = argv.next() {
        match arg.as_str() {
            "--queue" => args.queue = argv.next().ok_or("--queue needs a name")?,
            "--codec" => {
                let name = argv.next().ok_or("--codec needs a name")?;
                args.codec = Codec::ALL
                    .iter()
                    .copied()
                    .find(|c| c.content_type().ends_with(&format!("/{name}")))
                    .ok_or(format!("unknown codec `{name}`"))?;
            }
            _ => args.call.push(arg),
        }
    }
    Ok(args)
}

fn number<T: std::str::FromStr>(s: Option<&String>, what: &str) -> Result<T, String> {
    s.and_then(|s| s.parse().ok())
        .ok_or(format!("{what} must be a number"))
}

async fn run(args: Args) -> Result<String, Result<Error, String>> {
    let url = std::env::var("AMQP_URL").unwrap_or_else(|_| warren_rpc::DEFAULT_URL.to_owned());
    let client = RpcClient::connect(&url).await.map_err(Ok)?;
    let calc = CalcClient::with_queue(&client, &args.queue);
    let options = CallOptions::new()
        .timeout(Duration::from_secs(10))
        .content_type(args.codec.content_type());
    let c = &args.call;
    let out = match c.first().map(String::as_str) {
        Some("add") => {
            let (a, b) = (
                number(c.get(1), "A").map_err(Err)?,
                number(c.get(2), "B").map_err(Err)?,
            );
            calc.add_with(options, a, b).await.map(|v| v.to_string())
        }
        Some("fib") => {
            let n = number(c.get(1), "N").map_err(Err)?;
            calc.fib_with(options, n).await
        }
        Some("sleep") => {
            let ms = number(c.get(1), "MS").map_err(Err)?;
            calc.sleep_with(options, ms).await.map(|v| v.to_string())
        }
        Some("fail") => {
            let code = c.get(1).cloned().ok_or(Err("fail needs CODE".to_owned()))?;
            let message = c.get(2).cloned().unwrap_or_default();
            calc.fail_with(options, code, message)
                .await
                .map(|()| String::new())
        }
        _ => return Err(Err(USAGE.to_owned())),
    };
    let _ = client.shutdown().await;
    out.map_err(Ok)
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("calc_client: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(args).await {
        Ok(out) => {
            println!("{out}");
            ExitCode::SUCCESS
        }
        Err(Err(usage)) => {
            eprintln!("calc_client: {usage}\n{USAGE}");
            ExitCode::from(2)
        }
        Err(Ok(e)) => {
            eprintln!("calc_client: {}: {e}", e.code());
            ExitCode::from(if matches!(e, Error::Remote(_)) { 3 } else { 1 })
        }
    }
}
