#!/usr/bin/env bash
# Makes docs/management.png: the broker's page at / in headless Chromium (1366x768)
# after about a minute of traffic, so the chart and the RPC view have something to show.
#
#   bash scripts/management-screenshot.sh [OUT.png]     (default: docs/management.png)
#
# Needs target/release/warren (cargo build --release -p warren-cli), chromium and curl.
# Starts `warren broker` on 127.0.0.1:5798 (management API on 15798), a `warren serve
# fib` worker, a `warren bench` on its own queue (one call in flight, 75 s) and a
# publisher of one message a second to `orders`; stops them all on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-docs/management.png}"
warren=target/release/warren
amqp="amqp://guest:guest@127.0.0.1:5798/%2f"
api="http://127.0.0.1:15798"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

"$warren" broker --listen 127.0.0.1:5798 --management-listen 127.0.0.1:15798 >/dev/null &
pids+=($!)
for _ in $(seq 100); do curl -sf -u guest:guest "$api/api/overview" >/dev/null && break; sleep 0.1; done
for q in orders invoices emails; do
  curl -sf -u guest:guest -X PUT -d '{"durable":true}' "$api/api/queues/%2F/$q"
done
publish() {
  curl -sf -u guest:guest -X POST "$api/api/exchanges/%2F/amq.default/publish" \
    -d "{\"properties\":{},\"routing_key\":\"$1\",\"payload\":\"x\",\"payload_encoding\":\"string\"}" >/dev/null
}
for _ in $(seq 12); do publish invoices; done
"$warren" serve fib --url "$amqp" --queue fib >/dev/null 2>&1 &
pids+=($!)
"$warren" bench --url "$amqp" --in-flight 1 --duration 75s >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 58); do publish orders; "$warren" call --url "$amqp" --queue fib 20 >/dev/null; sleep 1; done
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1366,768 \
  --virtual-time-budget=3000 --screenshot="$out" "http://guest:guest@127.0.0.1:15798/" 2>/dev/null
echo "wrote $out"
