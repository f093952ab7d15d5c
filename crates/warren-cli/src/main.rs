//! `warren`: serve, call and demo RPC over AMQP 0-9-1.

mod alloc;
mod cmd;
mod declare;
mod exit;
mod metrics_http;
mod parse;
mod signal;
mod telemetry;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use exit::Failure;

/// RPC over AMQP 0-9-1 (RabbitMQ or the embedded Warren broker).
#[derive(Debug, Parser)]
#[command(name = "warren", version, about, after_help = LOGGING_HELP)]
struct Cli {
    /// Log line format on stderr.
    #[arg(
        long,
        global = true,
        env = "WARREN_LOG_FORMAT",
        value_enum,
        default_value_t
    )]
    log_format: telemetry::LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// RabbitMQ's RPC tutorial end to end on an embedded broker: prints fib(30).
    Demo(cmd::demo::Args),
    /// Serve a procedure on a queue until SIGINT/SIGTERM.
    #[command(after_help = exit::SERVE_EXIT_CODES)]
    Serve(cmd::serve::Args),
    /// Call a procedure once and print its reply.
    #[command(after_help = exit::CALL_EXIT_CODES)]
    Call(cmd::call::Args),
    /// Measure calls/s and latency percentiles (embedded broker unless --url).
    Bench(cmd::bench::Args),
    /// Run the embedded AMQP 0-9-1 broker until SIGINT/SIGTERM.
    Broker(cmd::broker::Args),
    /// List the queues, from the management HTTP API (RabbitMQ or `warren broker`).
    #[command(after_help = exit::INSPECT_EXIT_CODES)]
    Queues(cmd::inspect::Args),
    /// List the connections, from the management HTTP API.
    #[command(after_help = exit::INSPECT_EXIT_CODES)]
    Connections(cmd::inspect::Args),
    /// Broker-wide totals and rates, from the management HTTP API.
    #[command(after_help = exit::INSPECT_EXIT_CODES)]
    Status(cmd::inspect::Args),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(cmd::completions::Args),
}

/// The help text on logging.
const LOGGING_HELP: &str = "\
Logging (to stderr):
  RUST_LOG=<filter>    tracing filter, e.g. RUST_LOG=debug or RUST_LOG=warren_rpc=trace
                       [default: warn, with lapin off]
  WARREN_LOG=<filter>  the same; used when RUST_LOG is not set
  RUST_LOG=warren_rpc::calls=debug   one line per call (failed calls at info)
  --log-format json / WARREN_LOG_FORMAT=json   one JSON object per line
Colour is used only when stderr is a terminal.
Traces (OpenTelemetry, OTLP/HTTP protobuf), off unless the endpoint is set:
  OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318   OTEL_SERVICE_NAME [warren]
  OTEL_TRACES_SAMPLER, OTEL_TRACES_SAMPLER_ARG         [parentbased_always_on]";

fn main() -> ExitCode {
    let cli = Cli::parse();
    let traces = match &cli.command {
        Command::Bench(args) if args.observe() => telemetry::Traces::Always,
        _ => telemetry::Traces::FromEnv,
    };
    let telemetry = match telemetry::init(cli.log_format, traces) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("warren: {e}");
            return ExitCode::from(exit::INTERNAL);
        }
    };
    if let Command::Completions(args) = cli.command {
        // No runtime, no logging of its own: the script is all it prints.
        return match cmd::completions::run(args, Cli::command()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("warren: {e}");
                ExitCode::from(exit::INTERNAL)
            }
        };
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("warren: cannot start the async runtime: {e}");
            return ExitCode::from(exit::INTERNAL);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => cmd::serve::run(args).await,
            Command::Call(args) => cmd::call::run(args).await.map_err(Failure::Rpc),
            Command::Demo(args) => cmd::demo::run(args).await.map_err(Failure::Other),
            Command::Bench(args) => cmd::bench::run(args).await.map_err(Failure::Other),
            Command::Broker(args) => cmd::broker::run(args).await.map_err(Failure::Other),
            Command::Queues(a) => cmd::inspect::queues(a).await.map_err(Failure::Management),
            Command::Connections(a) => cmd::inspect::connections(a)
                .await
                .map_err(Failure::Management),
            Command::Status(a) => cmd::inspect::status(a).await.map_err(Failure::Management),
            Command::Completions(_) => Ok(()), // handled above, before the runtime
        }
    });
    // Do not wait on stray blocking work (a name lookup that hangs): the command's
    // deadline is over.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    telemetry.shutdown();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("warren: {failure}");
            ExitCode::from(failure.code())
        }
    }
}
