#!/usr/bin/env bash
# TLS vs plain to RabbitMQ, in one run: `warren bench` echo calls (16-byte bodies, one
# client, one worker) at 1 and 64 calls in flight, to the same node over its plain port
# and its TLS listener (certificate and host name verified). Plain and TLS alternate,
# ROUNDS times (default 3) of BENCH_SECONDS (default 5) each, so that load from elsewhere
# on the machine falls on both alike; the table gives the median calls/s and p50.
# Needs the node of scripts/rabbitmq-tls-node.sh (started here unless
# WARREN_TLS_RABBITMQ_URL, WARREN_TLS_PLAIN_RABBITMQ_URL and WARREN_TLS_CA are set; then
# stopped again; bench/rabbitmq4-tls-node.sh prints them for RabbitMQ 4). With
# WARREN_TLS_BROKER_PID (the node's OS process) the table adds RabbitMQ's CPU per call;
# WARREN_TLS_LABEL names the node in the footnote. Prints a Markdown table.
# With socat installed (Debian's `socat`), two more rows tell Warren's TLS from
# RabbitMQ's: the same node's plain port behind a socat TLS terminator (socat-tls, the
# client's rustls against OpenSSL) and behind a plain socat relay (socat-plain, the
# same extra hop without TLS), on loopback ports 5775 and 5776.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p warren-cli >/dev/null
W="$PWD/target/release/warren"
SECS="${BENCH_SECONDS:-5}"
ROUNDS="${ROUNDS:-3}"
if [ -z "${WARREN_TLS_RABBITMQ_URL:-}" ]; then
  vars="$(bash scripts/rabbitmq-tls-node.sh start)"
  trap 'bash scripts/rabbitmq-tls-node.sh stop' EXIT
  while IFS= read -r line; do export "${line?}"; done <<<"$vars"
fi
: "${WARREN_TLS_PLAIN_RABBITMQ_URL:?the plain URL of the same node}" "${WARREN_TLS_CA:?}"
tmp="$(mktemp -d)"
pki="$(dirname "$WARREN_TLS_CA")"
plain_port="${WARREN_TLS_PLAIN_RABBITMQ_URL##*:}"
plain_port="${plain_port%%/*}"
socat=false
if command -v socat >/dev/null 2>&1; then
  socat=true
  socat "OPENSSL-LISTEN:5775,bind=127.0.0.1,reuseaddr,fork,cert=$pki/server.pem,key=$pki/server.key,verify=0,nodelay" \
    "TCP:127.0.0.1:$plain_port,nodelay" >/dev/null 2>&1 &
  socat_tls=$!
  socat "TCP-LISTEN:5776,bind=127.0.0.1,reuseaddr,fork,nodelay" "TCP:127.0.0.1:$plain_port,nodelay" >/dev/null 2>&1 &
  socat_plain=$!
  trap 'kill $socat_tls $socat_plain 2>/dev/null || true; [ -z "${vars:-}" ] || bash scripts/rabbitmq-tls-node.sh stop' EXIT
  sleep 1
fi
pidarg=(); [ -z "${WARREN_TLS_BROKER_PID:-}" ] || pidarg=(--broker-pid "$WARREN_TLS_BROKER_PID")
bench() { "$W" bench --json --duration "${SECS}s" "${pidarg[@]}" --in-flight "$@"; }
for n in 1 64; do
  for r in $(seq "$ROUNDS"); do
    bench "$n" --url "$WARREN_TLS_PLAIN_RABBITMQ_URL" >>"$tmp/plain-$n"
    bench "$n" --url "$WARREN_TLS_RABBITMQ_URL" --tls-ca "$WARREN_TLS_CA" >>"$tmp/tls-$n"
    if $socat; then
      bench "$n" --url amqp://guest:guest@127.0.0.1:5776/%2f >>"$tmp/socat-plain-$n"
      bench "$n" --url amqps://guest:guest@localhost:5775/%2f --tls-ca "$WARREN_TLS_CA" >>"$tmp/socat-tls-$n"
    fi
  done
done
python3 - "$tmp" "$SECS" "$ROUNDS" "${WARREN_TLS_LABEL:-RabbitMQ 3.10 (Debian 12, node warren-tls)}" <<'EOF'
import json, statistics, sys
tmp, secs, rounds, label = sys.argv[1:]
def load(name):
    rows = [json.loads(l) for l in open(f"{tmp}/{name}") if l.strip()]
    assert all(r["calls_failed"] == 0 for r in rows), rows
    broker = [r["cpu_us_per_call"]["broker"] for r in rows if (r.get("cpu_us_per_call") or {}).get("broker")]
    return (statistics.median(r["calls_per_sec"] for r in rows), statistics.median(r["p50_ms"] for r in rows),
            statistics.median(broker) if broker else None)
def cpu(v):
    return "-" if v is None else f"{v:.1f} µs"
import os
print("| path | in flight | plain calls/s | TLS calls/s | TLS vs plain | plain p50 | TLS p50 | RabbitMQ CPU/call plain | TLS |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for prefix, path in (("", "RabbitMQ's TLS listener"), ("socat-", "socat TLS terminator")):
    for n in (1, 64):
        if not os.path.exists(f"{tmp}/{prefix}tls-{n}"):
            continue
        (pr, pp, pc), (tr, tp, tc) = load(f"{prefix}plain-{n}"), load(f"{prefix}tls-{n}")
        print(f"| {path} | {n} | {pr:,.0f} | {tr:,.0f} | {100 * (tr / pr - 1):+.1f}% | {pp:.2f} ms | {tp:.2f} ms | {cpu(pc)} | {cpu(tc)} |")
print(f"\nMedian of {rounds} alternating {secs} s runs each, {label}, "
      "echo calls, 16-byte bodies, 1 client, 1 worker; TLS 1.3 with certificate and host-name checks.")
EOF
rm -rf "$tmp"
