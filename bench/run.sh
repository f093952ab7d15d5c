#!/usr/bin/env bash
# The benchmark report: the tutorial's pika client and server (one call at a time) vs
# Warren with 1, 8, 64, 256 calls in flight (and the raw client's RPC spike at 1 and 64,
# and 64 KiB echoes on both) (raw bytes echo calls, and typed JSON
# calc.add calls at 1 and 64 next to them), on the embedded broker and on RabbitMQ
# (when WARREN_RABBITMQ_URL is set), with CPU time per call for client, worker and
# broker. Writes bench/results.md and prints it, then the issue-13 and issue-12 target
# rows (bench/targets.py). Bounded: BENCH_SECONDS (5) per row, each command killed after
# 3x that plus 30 s; about 15 rows per broker, so about 5 minutes for both.
# RabbitMQ's CPU is read from the process RABBITMQ_PID names (default: the OS PID that
# `rabbitmqctl status` reports for the default node).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p warren-cli >/dev/null
W="$PWD/target/release/warren"
SECS="${BENCH_SECONDS:-5}"
# Every bench command is bounded in time (a stuck run fails the script, not hangs it).
bound() { timeout "$((SECS * 3 + 30))" "$@"; }
PY="$PWD/tests/pika/.venv/bin/python"
[ -x "$PY" ] || { python3 -m venv tests/pika/.venv; tests/pika/.venv/bin/pip install -q -r tests/pika/requirements.txt; }
# matplotlib draws the plot (bench/plot.py); pika runs the tutorial baseline.
"$PY" -c 'import matplotlib, pika' 2>/dev/null || tests/pika/.venv/bin/pip install -q -r tests/pika/requirements.txt matplotlib
out=bench/results.md
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# await_port PORT: waits (at most 5 s) until a broker listens on PORT.
await_port() { for _ in $(seq 50); do (echo >/dev/tcp/127.0.0.1/"$1") 2>/dev/null && break; sleep 0.1; done; }
port=$(free_port)
"$W" broker --listen "127.0.0.1:$port" >/dev/null 2>&1 &
broker_pid=$!
trap 'kill $broker_pid 2>/dev/null || true' EXIT
await_port "$port"

# The placed rows: the same calls with each role on one thread and the bench's client and
# worker on core 1 (taskset); the embedded broker of those rows is a second process, on
# one thread on core 0. RabbitMQ runs as it is (a user's broker is not reconfigured; on
# this machine it is faster on both cores than on one).
placed=false
if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
  placed=true
  pport=$(free_port)
  TOKIO_WORKER_THREADS=1 taskset -c 0 "$W" broker --listen "127.0.0.1:$pport" >/dev/null 2>&1 &
  placed_pid=$!
  trap 'kill $broker_pid $placed_pid 2>/dev/null || true' EXIT
  await_port "$pport"
fi

targets=("embedded $broker_pid amqp://guest:guest@127.0.0.1:$port/%2f")
if [ -n "${WARREN_RABBITMQ_URL:-}" ]; then
  rmq_pid="${RABBITMQ_PID:-$(rabbitmqctl status 2>/dev/null | awk '/^OS PID:/ {print $3}')}"
  targets+=("rabbitmq ${rmq_pid:-0} $WARREN_RABBITMQ_URL")
fi

# row BROKER CLIENT IN_FLIGHT < JSON: one table row (bench/row.py).
row() { "$PY" bench/row.py "$@"; }

{
  echo "# Benchmark results"
  echo
  echo "Machine: $(nproc) cores, $(uname -m), $(date -u +%Y-%m-%d). Each row runs ${SECS} s; client, workers and broker share the machine."
  echo "CPU columns: CPU time (user + system) per call, from /proc, over the same ${SECS} s; Warren's client and worker run on runtimes of their own in one process, the broker in another."
  echo "Reproduce: \`WARREN_RABBITMQ_URL=amqp://guest:guest@127.0.0.1:5672/%2f bash bench/run.sh\`"
  echo "Rows \"warren, placed\": every role on one thread (\`--threads 1\`), the bench's client and worker on core 1 (\`taskset -c 1\`); on the embedded broker, a broker process of its own on one thread on core 0 (\`TOKIO_WORKER_THREADS=1 taskset -c 0 warren broker\`); RabbitMQ as it runs, on both cores."
  echo
  echo "| broker | client | in flight | calls/s | p50 ms | p99 ms | max ms | client µs/call | worker µs/call | broker µs/call |"
  echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
} > "$out"

for t in "${targets[@]}"; do
  read -r name bpid url <<<"$t"
  pidarg=(); [ "$bpid" != 0 ] && pidarg=(--broker-pid "$bpid")
  q="bench_pika_$$"
  AMQP_URL="$url" "$PY" tests/pika/tutorials/rpc_server.py --queue "$q" >/dev/null 2>&1 &
  srv=$!
  sleep 1.5
  AMQP_URL="$url" bound "$PY" bench/pika_baseline.py --queue "$q" --seconds "$SECS" --server-pid "$srv" --broker-pid "$bpid" \
    | row "$name" "tutorial pika client + server" 1 >> "$out"
  kill $srv 2>/dev/null || true; wait $srv 2>/dev/null || true
  bound "$W" bench --raw --url "$url" --in-flight 256 --duration "${SECS}s" --json "${pidarg[@]}" \
    | row "$name" "raw publish+consume, one queue, 16 B (messages/s; raw client)" 256 >> "$out"
  # Issue 12's own-client spike: the same RPC loop on the bench's raw client, next to lapin's.
  for k in 1 64; do
    bound "$W" bench --client raw --url "$url" --in-flight "$k" --duration "${SECS}s" --json "${pidarg[@]}" \
      | row "$name" "raw client RPC (spike)" "$k" >> "$out"
  done
  bound "$W" bench --client raw --payload 65536 --url "$url" --in-flight 64 --duration "${SECS}s" --json "${pidarg[@]}" \
    | row "$name" "raw client RPC (spike), 64 KiB echo" 64 >> "$out"
  bound "$W" bench --payload 65536 --url "$url" --in-flight 64 --duration "${SECS}s" --json "${pidarg[@]}" \
    | row "$name" "warren, 64 KiB echo" 64 >> "$out"
  bound "$W" bench --url "$url" --in-flight 64 --exclusive-reply-queue --duration "${SECS}s" --json "${pidarg[@]}" \
    | row "$name" "warren, exclusive reply queue" 64 >> "$out"
  # Observability's cost: call metrics on both ends and a span per call recorded with
  # an always-on sampler (dropped after the batch processor, no exporter), vs off.
  bound "$W" bench --observe --url "$url" --in-flight 64 --duration "${SECS}s" --json "${pidarg[@]}" \
    | row "$name" "warren, traces + metrics on (--observe)" 64 >> "$out"
  if $placed; then
    purl="$url"; ppid="$bpid"
    if [ "$name" = embedded ]; then purl="amqp://guest:guest@127.0.0.1:$pport/%2f"; ppid="$placed_pid"; fi
    ppidarg=(); [ "$ppid" != 0 ] && ppidarg=(--broker-pid "$ppid")
    for k in 1 64; do
      bound taskset -c 1 "$W" bench --threads 1 --url "$purl" --in-flight "$k" --duration "${SECS}s" --json "${ppidarg[@]}" \
        | row "$name" "warren, placed" "$k" >> "$out"
    done
    bound taskset -c 1 "$W" bench --threads 1 --payload 65536 --url "$purl" --in-flight 64 --duration "${SECS}s" --json "${ppidarg[@]}" \
      | row "$name" "warren, placed, 64 KiB echo" 64 >> "$out"
  fi
  for k in 1 8 64 256; do
    bound "$W" bench --url "$url" --in-flight "$k" --duration "${SECS}s" --json "${pidarg[@]}" \
      | row "$name" "warren" "$k" >> "$out"
    if [ "$k" = 1 ] || [ "$k" = 64 ]; then
      bound "$W" bench --typed --url "$url" --in-flight "$k" --duration "${SECS}s" --json "${pidarg[@]}" \
        | row "$name" "warren, typed JSON calc.add" "$k" >> "$out"
    fi
  done
done
"$PY" bench/plot.py "$out" bench/results.png
cat "$out"
echo
echo "Issue 13 and issue 12 targets (bench/targets.py):"
python3 bench/targets.py "$out"
