#!/usr/bin/env bash
# The whole test suite: Rust (unit, integration, CLI, faults) and the Python pika suite.
# Every broker test runs on the embedded broker; set WARREN_RABBITMQ_URL to run the
# same tests on a RabbitMQ as well (CI does; with CI set, RabbitMQ is required).
set -euo pipefail
cd "$(dirname "$0")/.."

# The fault tests append their rows (issued / ok / failed / hung / wrong) here.
export WARREN_FAULT_REPORT="${WARREN_FAULT_REPORT:-$PWD/target/fault-report.md}"
mkdir -p target && rm -f "$WARREN_FAULT_REPORT"

cargo build --release --workspace
# The typed Warren client the pika suite runs against a pika server (test_typed_interop.py).
cargo build --release -p warren-rpc --example calc_client
cargo test --release --workspace -- --skip disruptive_
# Fault tests that disconnect or restart the shared RabbitMQ run alone, one at a time.
cargo test --release -p warren-cli --test faults -- disruptive_ --test-threads=1
echo "--- fault table ($WARREN_FAULT_REPORT)"
cat "$WARREN_FAULT_REPORT"
WARREN_BIN="$PWD/target/release/warren" bash tests/pika/run.sh
