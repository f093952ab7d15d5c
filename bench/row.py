#!/usr/bin/env python3
"""One row of bench/results.md from a bench's JSON line on stdin (`warren bench --json`
or pika_baseline.py). CPU per call in µs; for raw rows (per message) the raw client's
publisher and consumer together go in the client column.

Usage: row.py BROKER CLIENT IN_FLIGHT < JSON
"""
import json
import sys


def fmt(v):
    return "-" if v is None else f"{v:.1f}"


def main():
    name, what, k = sys.argv[1:4]
    d = json.load(sys.stdin)
    c = d.get("cpu_us_per_call") or {}
    client = c.get("client")
    cells = [
        name, what, k,
        f"{d['calls_per_sec']:.0f}", f"{d['p50_ms']:.3f}", f"{d['p99_ms']:.3f}", f"{d['max_ms']:.3f}",
        fmt(client), fmt(None if d.get("mode") == "raw" else c.get("worker")), fmt(c.get("broker")),
    ]
    print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
