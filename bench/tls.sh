#!/usr/bin/env bash
# TLS vs plain on the embedded broker, in one run: `warren bench` echo calls at 1 and 64
# in flight, over amqp:// and over amqps:// (the in-process broker listening for TLS with
# a throw-away certificate from scripts/tls-certs.sh, the client checking it against its
# CA), printing calls/s and CPU time per call (client, worker, broker) per row.
# Bounded: BENCH_SECONDS (5) per row. Usage: bash bench/tls.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p warren-cli >/dev/null
W="$PWD/target/release/warren"
SECS="${BENCH_SECONDS:-5}"
pki="$(mktemp -d)"
trap 'rm -rf "$pki"' EXIT
bash scripts/tls-certs.sh "$pki"
tls=(--embedded-tls-cert "$pki/server.pem" --embedded-tls-key "$pki/server.key" --tls-ca "$pki/ca.pem")

echo "| transport | in flight | calls/s | p50 ms | p99 ms | client µs/call | worker µs/call | broker µs/call |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
for k in 1 64; do
  for t in plain tls; do
    extra=(); [ "$t" = tls ] && extra=("${tls[@]}")
    env -u AMQP_URL "$W" bench --in-flight "$k" --duration "${SECS}s" --json "${extra[@]}" \
      | python3 bench/tls_row.py "$t" "$k"
  done
done
