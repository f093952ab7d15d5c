//! Runs the `warren` binary under test to its end, without `$AMQP_URL` (each test
//! passes `--url`), from async tests.
//!
//! A module of `tests/common` (`mod common; use common::run_warren;`).
#![allow(dead_code)]

use std::process::{Command, Output};

/// The `warren` binary under test.
pub const WARREN: &str = env!("CARGO_BIN_EXE_warren");

/// `warren args..`, its output once it exits.
pub async fn warren(args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        Command::new(WARREN)
            .args(&args)
            .env_remove("AMQP_URL")
            .output()
            .expect("warren runs")
    })
    .await
    .expect("the blocking task ends")
}

/// What a run printed on stderr.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
