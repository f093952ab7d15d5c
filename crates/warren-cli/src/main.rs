//! `warren`: serve, call and demo RPC over AMQP 0-9-1.

mod cmd;
mod exit;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// RPC over AMQP 0-9-1 (RabbitMQ or the embedded Warren broker).
#[derive(Debug, Parser)]
#[command(name = "warren", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve a procedure on a queue until SIGINT/SIGTERM.
    Serve(cmd::serve::Args),
    /// Call a procedure once and print its reply.
    #[command(after_help = exit::CALL_EXIT_CODES)]
    Call(cmd::call::Args),
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WARREN_LOG").unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new("warn,lapin::returned_messages=error")
            }),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
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
            Command::Call(args) => cmd::call::run(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("warren: {e}");
            ExitCode::from(exit::code_of(&e))
        }
    }
}
