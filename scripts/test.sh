#!/usr/bin/env bash
# The whole test suite: Rust (unit, integration, CLI, faults), `cargo publish --dry-run`
# of each crate (scripts/publish-check.sh) and the Python pika suite.
# Every broker test runs on the embedded broker. The tests that need an external service
# are #[ignore = "needs VAR ..."]; each group runs here when its variable is set, and with
# CI set every variable must be (nothing may be skipped in CI):
#   WARREN_RABBITMQ_URL              a RabbitMQ to declare (and delete) queues on; the
#                                    tests never stop, disconnect or reconfigure it
#   WARREN_DISRUPTIVE_RABBITMQ_URL,  a throw-away node the fault tests stop, disconnect
#   WARREN_DISRUPTIVE_RABBITMQ_NODE  and reconfigure (bash scripts/rabbitmq-node.sh start)
#   WARREN_DISRUPT_RABBITMQ=1        instead, let them do that to WARREN_RABBITMQ_URL's
#                                    broker (WARREN_RABBITMQ_NODE names its node)
#   WARREN_CLUSTER_URLS              the cluster of bash scripts/cluster.sh start
#   WARREN_MGMT_RABBITMQ_URL         the management API of a RabbitMQ node with the
#                                    management plugin (rabbitmqadmin tests, mgmt_api::)
#   WARREN_TLS_RABBITMQ_URL,         amqps:// of a RabbitMQ TLS listener, the test CA and
#   WARREN_TLS_CA, WARREN_TLS_NODE   its node (scripts/rabbitmq-tls-node.sh; rabbitmq_tls::)
#   WARREN_CHROMIUM                  headless Chromium (Debian's chromium) for the broker's
#                                    web page (browser::)
set -euo pipefail
cd "$(dirname "$0")/.."

in_ci() { case "${CI:-}" in "" | 0 | false | no) return 1 ;; *) return 0 ;; esac; }
have() { [ -n "${!1:-}" ]; }
disruptive=false
if have WARREN_DISRUPTIVE_RABBITMQ_URL || [ "${WARREN_DISRUPT_RABBITMQ:-}" = 1 ]; then disruptive=true; fi

if in_ci; then
  missing=()
  have WARREN_RABBITMQ_URL || missing+=(WARREN_RABBITMQ_URL)
  $disruptive || missing+=("WARREN_DISRUPTIVE_RABBITMQ_URL (or WARREN_DISRUPT_RABBITMQ=1)")
  have WARREN_CLUSTER_URLS || missing+=(WARREN_CLUSTER_URLS)
  have WARREN_MGMT_RABBITMQ_URL || missing+=(WARREN_MGMT_RABBITMQ_URL)
  have WARREN_TLS_RABBITMQ_URL || missing+=(WARREN_TLS_RABBITMQ_URL)
  have WARREN_TLS_CA || missing+=(WARREN_TLS_CA)
  have WARREN_CHROMIUM || missing+=(WARREN_CHROMIUM)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "CI is set but not ${missing[*]}: no test may be skipped in CI" >&2
    exit 1
  fi
fi

# The fault tests append their rows (issued / ok / failed / hung / wrong) here.
export WARREN_FAULT_REPORT="${WARREN_FAULT_REPORT:-$PWD/target/fault-report.md}"
# The figures the reliability tests measure (full disk, stalled brokers, memory, floods).
export WARREN_FIGURES="${WARREN_FIGURES:-$PWD/target/figures.md}"
mkdir -p target && rm -f "$WARREN_FAULT_REPORT" "$WARREN_FIGURES"

# Binaries, examples (the typed Warren client the pika suite runs against a pika server,
# test_typed_interop.py) and test binaries in one build: with the tests in it, the
# dev-dependencies' features are on, as under `cargo test`, so the test runs below reuse
# this build instead of compiling the workspace's crates again.
cargo build --release --workspace --bins --examples --tests
echo "--- tests on the embedded broker (tests that need a service are listed as ignored)"
cargo test --release --workspace
# Each group of ignored tests, selected by name. A new group needs a line here and one
# in the CI check below.
if have WARREN_RABBITMQ_URL; then
  echo "--- tests on RabbitMQ (WARREN_RABBITMQ_URL)"
  cargo test --release --workspace --tests -- --ignored rabbitmq::
fi
if have WARREN_ACCESS_RABBITMQ_URL; then
  echo "--- access-control tests on a throw-away RabbitMQ node (WARREN_ACCESS_RABBITMQ_URL)"
  cargo test --release --workspace --tests -- --ignored rabbitmq_access:: --test-threads=1
fi
# They swap the certificate the node serves: one at a time.
if have WARREN_TLS_RABBITMQ_URL; then
  echo "--- TLS tests on a RabbitMQ TLS listener (WARREN_TLS_RABBITMQ_URL)"
  cargo test --release --workspace --tests -- --ignored rabbitmq_tls:: --test-threads=1
fi
# The disruptive tests disrupt each other: alone, one at a time.
if $disruptive; then
  echo "--- fault tests that stop, disconnect and reconfigure a RabbitMQ"
  cargo test --release --workspace --tests -- --ignored disruptive_rabbitmq_ --test-threads=1
fi
if have WARREN_CLUSTER_URLS; then
  echo "--- fault tests on the cluster (WARREN_CLUSTER_URLS)"
  cargo test --release --workspace --tests -- --ignored disruptive_cluster_ --test-threads=1
fi
if have WARREN_MGMT_RABBITMQ_URL; then
  echo "--- rabbitmqadmin on warren broker and on RabbitMQ (WARREN_MGMT_RABBITMQ_URL)"
  cargo test --release --workspace --tests -- --ignored mgmt_api::
fi
if have WARREN_CHROMIUM; then
  echo "--- the broker's web page in headless Chromium (WARREN_CHROMIUM; screenshot: target/management.png)"
  cargo test --release --workspace --tests -- --ignored browser::
fi
if in_ci; then
  # Every ignored test belongs to a group above (throughput_* kept for benchmarks).
  orphans="$(cargo test --release --workspace --tests -- --list --ignored 2>/dev/null \
    | sed -n 's/: test$//p' \
    | grep -Ev '(^|::)(rabbitmq::|disruptive_rabbitmq_|disruptive_cluster_|mgmt_api::|rabbitmq_access::|rabbitmq_tls::|browser::|throughput_)' || true)"
  if [ -n "$orphans" ]; then
    echo "ignored tests that scripts/test.sh never runs (give them a group):" >&2
    echo "$orphans" >&2
    exit 1
  fi
fi
echo "--- every crate packaged and built as crates.io would get it (scripts/publish-check.sh)"
bash scripts/publish-check.sh
echo "--- fault table ($WARREN_FAULT_REPORT)"
cat "$WARREN_FAULT_REPORT"
echo "--- figures ($WARREN_FIGURES)"
cat "$WARREN_FIGURES"
WARREN_BIN="$PWD/target/release/warren" bash tests/pika/run.sh
echo "--- observability: traces across pika and warren (OTLP/HTTP), Prometheus scraping /metrics (tests/otel)"
WARREN_BIN="$PWD/target/release/warren" bash tests/otel/run.sh
