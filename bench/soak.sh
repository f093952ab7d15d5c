#!/usr/bin/env bash
# Memory over a long run: `warren bench` (embedded broker, workers and client in one
# process) for ${SOAK:-10m}, sampling its resident memory every 30 s. Flat = no growth
# in pending calls or broker buffers. Writes bench/soak.md.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p warren-cli >/dev/null
./target/release/warren bench --in-flight 64 --duration "${SOAK:-10m}" --json > /tmp/warren-soak.json &
pid=$!
{
  echo "# Soak: resident memory of \`warren bench --in-flight 64 --duration ${SOAK:-10m}\` (embedded broker + worker + client in one process)"
  echo
  echo "| minute | RSS (MiB) |"
  echo "| ---: | ---: |"
} > bench/soak.md
t=0
while kill -0 "$pid" 2>/dev/null; do
  rss=$(awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$pid/status" 2>/dev/null || true)
  [ -n "$rss" ] && echo "| $(awk "BEGIN {printf \"%.1f\", $t/60}") | $rss |" >> bench/soak.md
  sleep 30; t=$((t + 30))
done
wait "$pid"
echo >> bench/soak.md
echo "Result: \`$(cat /tmp/warren-soak.json)\`" >> bench/soak.md
cat bench/soak.md
