#!/usr/bin/env bash
# The benchmark report: the tutorial's pika client and server (one call at a time) vs
# Warren with 1, 8, 64, 256 calls in flight, on the embedded broker and on RabbitMQ
# (when WARREN_RABBITMQ_URL is set). Writes bench/results.md. Bounded: 5 s per row.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p warren-cli >/dev/null
W="$PWD/target/release/warren"
PY="$PWD/tests/pika/.venv/bin/python"
[ -x "$PY" ] || { python3 -m venv tests/pika/.venv; tests/pika/.venv/bin/pip install -q -r tests/pika/requirements.txt; }
# matplotlib draws the plot (bench/plot.py); pika runs the tutorial baseline.
"$PY" -c 'import matplotlib, pika' 2>/dev/null || tests/pika/.venv/bin/pip install -q -r tests/pika/requirements.txt matplotlib
SECS="${BENCH_SECONDS:-5}"
out=bench/results.md
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$W" broker --listen "127.0.0.1:$port" >/dev/null 2>&1 &
broker_pid=$!
trap 'kill $broker_pid 2>/dev/null || true' EXIT
for _ in $(seq 50); do (echo >/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done

targets=("embedded amqp://guest:guest@127.0.0.1:$port/%2f")
[ -n "${WARREN_RABBITMQ_URL:-}" ] && targets+=("rabbitmq $WARREN_RABBITMQ_URL")

{
  echo "# Benchmark results"
  echo
  echo "Machine: $(nproc) cores, $(uname -m), $(date -u +%Y-%m-%d). Each row runs ${SECS} s; client, workers and broker share the machine."
  echo "Reproduce: \`WARREN_RABBITMQ_URL=amqp://guest:guest@127.0.0.1:5672/%2f bash bench/run.sh\`"
  echo
  echo "| broker | client | in flight | calls/s | p50 ms | p99 ms | max ms |"
  echo "| --- | --- | ---: | ---: | ---: | ---: | ---: |"
} > "$out"

for t in "${targets[@]}"; do
  name=${t%% *}; url=${t#* }
  q="bench_pika_$$"
  AMQP_URL="$url" "$PY" tests/pika/tutorials/rpc_server.py --queue "$q" >/dev/null 2>&1 &
  srv=$!
  sleep 1.5
  j=$(AMQP_URL="$url" "$PY" bench/pika_baseline.py --queue "$q" --seconds "$SECS")
  kill $srv 2>/dev/null || true; wait $srv 2>/dev/null || true
  echo "$j" | "$PY" -c "import json,sys; d=json.load(sys.stdin); print(f\"| $name | tutorial pika client + server | 1 | {d['calls_per_sec']:.0f} | {d['p50_ms']:.3f} | {d['p99_ms']:.3f} | {d['max_ms']:.3f} |\")" >> "$out"
  j=$("$W" bench --raw --url "$url" --in-flight 256 --duration "${SECS}s" --json)
  echo "$j" | "$PY" -c "import json,sys; d=json.load(sys.stdin); print(f\"| $name | raw publish+consume, one queue (messages/s) | 256 | {d['calls_per_sec']:.0f} | {d['p50_ms']:.3f} | {d['p99_ms']:.3f} | {d['max_ms']:.3f} |\")" >> "$out"
  j=$("$W" bench --url "$url" --in-flight 64 --exclusive-reply-queue --duration "${SECS}s" --json)
  echo "$j" | "$PY" -c "import json,sys; d=json.load(sys.stdin); print(f\"| $name | warren, exclusive reply queue | 64 | {d['calls_per_sec']:.0f} | {d['p50_ms']:.3f} | {d['p99_ms']:.3f} | {d['max_ms']:.3f} |\")" >> "$out"
  for k in 1 8 64 256; do
    j=$("$W" bench --url "$url" --in-flight "$k" --duration "${SECS}s" --json)
    echo "$j" | "$PY" -c "import json,sys; d=json.load(sys.stdin); print(f\"| $name | warren | $k | {d['calls_per_sec']:.0f} | {d['p50_ms']:.3f} | {d['p99_ms']:.3f} | {d['max_ms']:.3f} |\")" >> "$out"
  done
done
"$PY" bench/plot.py "$out" bench/results.png
cat "$out"
