#!/usr/bin/env python3
"""Baseline: the tutorial's own pika RPC client (tests/pika/tutorials/rpc_client.py),
one call at a time, against whatever serves the queue. Prints one JSON line.

Usage: AMQP_URL=... pika_baseline.py --queue Q [--seconds 5] [--max-calls 20000]
"""
import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "pika" / "tutorials"))
from rpc_client import FibonacciRpcClient  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--queue", default="rpc_queue")
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--max-calls", type=int, default=20000)
    args = p.parse_args()
    client = FibonacciRpcClient(args.queue)
    lat = []
    start = time.monotonic()
    while time.monotonic() - start < args.seconds and len(lat) < args.max_calls:
        t0 = time.monotonic()
        body, _ = client.call(1, 10.0)
        if body != b"1":
            print(f"wrong or missing reply: {body!r}", file=sys.stderr)
            sys.exit(1)
        lat.append(time.monotonic() - t0)
    elapsed = time.monotonic() - start
    lat.sort()
    q = lambda f: lat[min(len(lat) - 1, int(f * len(lat)))] * 1000  # noqa: E731
    print(json.dumps({
        "calls_ok": len(lat), "seconds": round(elapsed, 3),
        "calls_per_sec": round(len(lat) / elapsed, 1),
        "p50_ms": round(q(0.5), 3), "p99_ms": round(q(0.99), 3), "max_ms": round(lat[-1] * 1000, 3),
    }))


if __name__ == "__main__":
    main()
