#!/usr/bin/env bash
# Fuzz the embedded broker's frame handling for ${FUZZ_SECONDS:-60} seconds: runs the
# proptest suite (crates/warren-broker/tests/fuzz.rs: random bytes, random and mutated
# frame sequences, half-frames, against a live broker on loopback; fails on any broker
# task panic) again and again with fresh random seeds until the time is up.
# FUZZ_LIBFUZZER=1 adds a coverage-guided libFuzzer run of the same length (below).
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${FUZZ_SECONDS:-60}"
cargo test --release -p warren-broker --test fuzz --no-run >/dev/null 2>&1
end=$((SECONDS + secs)); runs=0
while [ "$SECONDS" -lt "$end" ]; do
  cargo test --release -q -p warren-broker --test fuzz >/tmp/warren-fuzz.log 2>&1 || { cat /tmp/warren-fuzz.log; echo "fuzz: failure after $runs clean runs" >&2; exit 1; }
  runs=$((runs + 1))
done
echo "fuzz: $runs runs of the proptest suite in ${secs}s, no panic, no failure"

# Coverage-guided too, when asked: libFuzzer through cargo-fuzz (installed here if
# missing) on crates/warren-broker/fuzz/fuzz_targets/connection.rs. cargo-fuzz needs
# nightly flags; RUSTC_BOOTSTRAP=1 lets the machine's stable toolchain take them.
if [ "${FUZZ_LIBFUZZER:-0}" = 1 ]; then
  command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked -q
  (cd crates/warren-broker && RUSTC_BOOTSTRAP=1 cargo fuzz run connection -- \
     -max_total_time="$secs" -rss_limit_mb=4096 2>&1 | grep -E "^#[0-9]+ +DONE|^Done|panicked|ERROR" )
  echo "libfuzzer: ${secs}s on the connection target, no crash"
fi
