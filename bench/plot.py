#!/usr/bin/env python3
"""Plots bench/results.md: Warren's throughput and p50/p99 latency vs calls in flight,
one line per broker, with the tutorial baseline as a marker. Usage: plot.py results.md out.svg"""
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def rows(path):
    for line in open(path):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 7 and cells[2].isdigit():
            yield cells[0], cells[1], int(cells[2]), float(cells[3]), float(cells[4]), float(cells[5])


def main():
    src, out = sys.argv[1], sys.argv[2]
    data = list(rows(src))
    fig, (thr, lat) = plt.subplots(1, 2, figsize=(11, 4.2))
    for broker in sorted({r[0] for r in data}):
        warren = sorted((r for r in data if r[0] == broker and r[1] == "warren"), key=lambda r: r[2])
        ks = [r[2] for r in warren]
        thr.plot(ks, [r[3] for r in warren], marker="o", label=f"warren on {broker}")
        lat.plot(ks, [r[4] for r in warren], marker="o", label=f"p50 on {broker}")
        lat.plot(ks, [r[5] for r in warren], marker="x", linestyle="--", label=f"p99 on {broker}")
        for r in data:
            if r[0] == broker and r[1].startswith("tutorial"):
                thr.scatter([r[2]], [r[3]], marker="s", label=f"tutorial pika on {broker}")
    for ax in (thr, lat):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("calls in flight")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    thr.set_ylabel("calls/s")
    thr.set_title("throughput")
    lat.set_ylabel("latency (ms)")
    lat.set_yscale("log")
    lat.set_title("latency")
    fig.tight_layout()
    fig.savefig(out)


if __name__ == "__main__":
    main()
