#!/usr/bin/env python3
"""One row of bench/tls.sh's table from `warren bench --json` on stdin.

Usage: tls_row.py TRANSPORT IN_FLIGHT < JSON
"""
import json
import sys


def fmt(v):
    return "-" if v is None else f"{v:.1f}"


def main():
    transport, k = sys.argv[1:3]
    d = json.load(sys.stdin)
    c = d.get("cpu_us_per_call") or {}
    cells = [transport, k, f"{d['calls_per_sec']:.0f}", f"{d['p50_ms']:.3f}", f"{d['p99_ms']:.3f}",
             fmt(c.get("client")), fmt(c.get("worker")), fmt(c.get("broker"))]
    print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
