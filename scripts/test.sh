#!/usr/bin/env bash
# The whole test suite: Rust (unit, integration, CLI) and the Python pika suite.
# Every broker test runs on the embedded broker; set WARREN_RABBITMQ_URL to run the
# same tests on a RabbitMQ as well (CI does; with CI set, RabbitMQ is required).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --workspace
cargo test --release --workspace
WARREN_BIN="$PWD/target/release/warren" bash tests/pika/run.sh
