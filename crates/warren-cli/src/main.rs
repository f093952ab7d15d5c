//! `warren`: serve, call and demo RPC over AMQP 0-9-1.

mod cmd;
mod declare;
mod exit;
mod parse;
mod signal;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use exit::Failure;

/// RPC over AMQP 0-9-1 (RabbitMQ or the embedded Warren broker).
#[derive(Debug, Parser)]
#[command(name = "warren", version, about, after_help = LOGGING_HELP)]
struct Cli {
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
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(cmd::completions::Args),
}

/// The help text on logging.
const LOGGING_HELP: &str = "\
Logging (to stderr):
  RUST_LOG=<filter>    tracing filter, e.g. RUST_LOG=debug or RUST_LOG=warren_rpc=trace
                       [default: warn, with lapin off]
  WARREN_LOG=<filter>  the same; used when RUST_LOG is not set
Colour is used only when stderr is a terminal.";

/// The log filter: `RUST_LOG`, else `WARREN_LOG`, else warnings with lapin off.
fn log_filter() -> tracing_subscriber::EnvFilter {
    use tracing_subscriber::EnvFilter;
    for var in ["RUST_LOG", "WARREN_LOG"] {
        if std::env::var_os(var).is_some_and(|v| !v.is_empty()) {
            if let Ok(filter) = EnvFilter::try_from_env(var) {
                return filter;
            }
        }
    }
    // lapin logs as errors what Warren reports itself, typed (a lost connection, a
    // refused login) or does on purpose (shutting a stalled connection's socket down).
    EnvFilter::new("warn,lapin=off")
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(log_filter())
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
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
            Command::Completions(_) => Ok(()), // handled above, before the runtime
        }
    });
    // Do not wait on stray blocking work (a name lookup that hangs): the command's
    // deadline is over.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("warren: {failure}");
            ExitCode::from(failure.code())
        }
    }
}
