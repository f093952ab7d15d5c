#!/usr/bin/env python3
"""The issue-13 and issue-12 target rows, read from bench/results.md (as bench/run.sh
writes it): raw 16 B messages/s on both brokers, Warren RPC at 64 in flight embedded vs
RabbitMQ, p99, client + worker CPU per call, the ratio to the tutorial's pika client,
p50 at 1 in flight and the 64 KiB echo's payload rate. Prints a markdown table.

Usage: targets.py bench/results.md
"""
import sys

RAW = "raw publish+consume, one queue, 16 B (messages/s; raw client)"


def load(path):
    rows = {}
    for line in open(path, encoding="utf-8"):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 10 or not cells[3].replace(".", "").isdigit():
            continue
        broker, client, k = cells[0], cells[1], cells[2]
        num = lambda v: None if v == "-" else float(v)
        rows[(broker, client, k)] = {
            "rate": float(cells[3]), "p50": float(cells[4]), "p99": float(cells[5]),
            "client": num(cells[7]), "worker": num(cells[8]), "broker": num(cells[9]),
        }
    return rows


def main():
    rows = load(sys.argv[1])
    get = lambda b, c, k: rows.get((b, c, str(k)))
    out = ["| issue | target | measured | met |", "| --- | --- | --- | --- |"]

    def add(issue, target, measured, met):
        out.append(f"| {issue} | {target} | {measured} | {met} |")

    e, r = get("embedded", RAW, 256), get("rabbitmq", RAW, 256)
    if e:
        rmq = f"; RabbitMQ {r['rate']:,.0f} msg/s, p99 {r['p99']} ms" if r else ""
        add(13, "raw one queue, 16 B, end to end >= 250k msg/s",
            f"embedded {e['rate']:,.0f} msg/s, p99 {e['p99']} ms{rmq}", "yes" if e["rate"] >= 250_000 else "no")
    for client in ("warren", "warren, placed", "raw client RPC (spike)"):
        e, r = get("embedded", client, 64), get("rabbitmq", client, 64)
        if e and r:
            ratio = e["rate"] / r["rate"]
            add(13, f"RPC at 64 in flight ({client}): embedded >= 4x RabbitMQ",
                f"{e['rate']:,.0f} vs {r['rate']:,.0f} calls/s: {ratio:.1f}x; p99 {e['p99']} vs {r['p99']} ms",
                "yes" if ratio >= 4 else "no")
    e = get("embedded", "warren", 64)
    if e and e["client"] is not None and e["worker"] is not None:
        cw = e["client"] + e["worker"]
        add(12, "client + worker <= 20 µs CPU per call, 64 in flight, embedded",
            f"{cw:.1f} µs ({e['client']} + {e['worker']}); broker {e['broker']} µs", "yes" if cw <= 20 else "no")
    w, p = get("rabbitmq", "warren", 64), get("rabbitmq", "tutorial pika client + server", 1)
    if w and p:
        ratio = w["rate"] / p["rate"]
        add(12, ">= 10x the tutorial's pika client at 64 in flight on RabbitMQ",
            f"{w['rate']:,.0f} vs {p['rate']:,.0f} calls/s: {ratio:.1f}x", "yes" if ratio >= 10 else "no")
    for client in ("warren", "warren, placed"):
        e = get("embedded", client, 1)
        if e:
            add(12, f"p50 <= 0.2 ms at 1 in flight, embedded ({client})", f"{e['p50']} ms", "yes" if e["p50"] <= 0.2 else "no")
    for client in ("warren, 64 KiB echo", "warren, placed, 64 KiB echo", "raw client RPC (spike), 64 KiB echo"):
        e = get("embedded", client, 64)
        if e:
            gbs = e["rate"] * 65536 / 1e9
            add(12, f"64 KiB echo at 64 in flight >= 1 GB/s of payload ({client.removesuffix(', 64 KiB echo')})",
                f"{gbs:.2f} GB/s of request payload ({e['rate']:,.0f} calls/s); broker {e['broker']} µs/call",
                "yes" if gbs >= 1 else "no")
    print("\n".join(out))


if __name__ == "__main__":
    main()
