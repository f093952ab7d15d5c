#!/usr/bin/env bash
# The amqprs spike against `warren bench` (lapin), one run: the same RPC loop (echo
# worker with manual acks; client with confirms, mandatory, direct reply-to; 16 B) at 1
# and 64 in flight, ROUNDS (3) alternating pairs of SECS (5) s each, on a `warren broker`
# process and, when WARREN_RABBITMQ_URL is set, on RabbitMQ at 127.0.0.1:5672 (its CPU
# from RABBITMQ_PID, default the OS PID `rabbitmqctl status` reports). One JSON line per
# run on stdout. Not part of CI; builds in its own workspace.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$here/../../.."
(cd "$here" && cargo build --release -q)
(cd "$root" && cargo build --release -q -p warren-cli)
S="$here/target/release/amqprs-rpc-spike"
W="$root/target/release/warren"
SECS="${SECS:-5}"; ROUNDS="${ROUNDS:-3}"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$W" broker --listen "127.0.0.1:$port" >/dev/null 2>&1 &
bpid=$!
trap 'kill $bpid 2>/dev/null || true' EXIT
for _ in $(seq 50); do (echo >/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
targets=("embedded $bpid 127.0.0.1:$port amqp://guest:guest@127.0.0.1:$port/%2f")
if [ -n "${WARREN_RABBITMQ_URL:-}" ]; then
  rpid="${RABBITMQ_PID:-$(rabbitmqctl status 2>/dev/null | awk '/^OS PID:/ {print $3}')}"
  targets+=("rabbitmq $rpid 127.0.0.1:5672 $WARREN_RABBITMQ_URL")
fi
for t in "${targets[@]}"; do
  read -r name pid addr url <<<"$t"
  for k in 1 64; do
    for _ in $(seq "$ROUNDS"); do
      echo "{\"broker\":\"$name\",\"client\":\"amqprs\",\"run\":$("$S" "$addr" "$k" "$SECS" "$pid")}"
      echo "{\"broker\":\"$name\",\"client\":\"lapin\",\"run\":$("$W" bench --url "$url" --in-flight "$k" --duration "${SECS}s" --broker-pid "$pid" --json)}"
    done
  done
done
