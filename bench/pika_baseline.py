#!/usr/bin/env python3
"""Baseline: the tutorial's own pika RPC client (tests/pika/tutorials/rpc_client.py),
one call at a time, against whatever serves the queue. Prints one JSON line.

With --server-pid and --broker-pid, also the CPU per call (user + system, from
/proc/PID/stat) of the tutorial's server and of the broker; the client's is its own
process time.

Usage: AMQP_URL=... pika_baseline.py --queue Q [--seconds 5] [--max-calls 20000]
       [--server-pid PID] [--broker-pid PID]
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "pika" / "tutorials"))
from rpc_client import FibonacciRpcClient  # noqa: E402


def cpu_seconds(pid):
    """utime + stime of process `pid` in seconds, or None if it cannot be read."""
    if not pid:
        return None
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--queue", default="rpc_queue")
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--max-calls", type=int, default=20000)
    p.add_argument("--server-pid", type=int, default=0)
    p.add_argument("--broker-pid", type=int, default=0)
    args = p.parse_args()
    client = FibonacciRpcClient(args.queue)
    lat = []
    pids = (args.server_pid, args.broker_pid)
    before = [cpu_seconds(pid) for pid in pids]
    mine = time.process_time()
    start = time.monotonic()
    while time.monotonic() - start < args.seconds and len(lat) < args.max_calls:
        t0 = time.monotonic()
        body, _ = client.call(1, 10.0)
        if body != b"1":
            print(f"wrong or missing reply: {body!r}", file=sys.stderr)
            sys.exit(1)
        lat.append(time.monotonic() - t0)
    elapsed = time.monotonic() - start
    mine = time.process_time() - mine
    after = [cpu_seconds(pid) for pid in pids]
    per = lambda s: None if s is None else round(s * 1e6 / max(1, len(lat)), 2)  # noqa: E731
    spent = [None if b is None or a is None else a - b for b, a in zip(before, after)]
    lat.sort()
    q = lambda f: lat[min(len(lat) - 1, int(f * len(lat)))] * 1000  # noqa: E731
    print(json.dumps({
        "calls_ok": len(lat), "seconds": round(elapsed, 3),
        "calls_per_sec": round(len(lat) / elapsed, 1),
        "p50_ms": round(q(0.5), 3), "p99_ms": round(q(0.99), 3), "max_ms": round(lat[-1] * 1000, 3),
        "cpu_us_per_call": {"client": per(mine), "worker": per(spent[0]), "broker": per(spent[1])},
    }))


if __name__ == "__main__":
    main()
