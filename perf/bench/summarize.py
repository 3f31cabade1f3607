#!/usr/bin/env python3
"""Summarize compare.sh's raw.tsv as a Markdown table.

Each cell is the median over rounds with min–max; the ratio columns are
ours / peer of the medians, all from the same run. For figures where lower
is better (CPU, latency, memory) a ratio below 1 favours ours.
"""

import statistics
import sys
from collections import defaultdict

METRICS = [
    ("down_mib_s", "Throughput, download (MiB/s)", "higher"),
    ("up_mib_s", "Throughput, upload (MiB/s)", "higher"),
    ("down_cpu_s_per_gib", "CPU s per GiB, download (client + server)", "lower"),
    ("up_cpu_s_per_gib", "CPU s per GiB, upload (client + server)", "lower"),
    ("latency_median_us", "Connect + 1-byte round trip, median (µs)", "lower"),
    ("latency_p99_us", "Connect + 1-byte round trip, p99 (µs)", "lower"),
    ("connections_per_s", "New connections per second", "higher"),
    ("requests_per_s", "1-byte perf requests per second, one connection", "higher"),
    ("down_server_hwm_mib", "Server peak RSS, download run (MiB)", "lower"),
    ("up_server_hwm_mib", "Server peak RSS, upload run (MiB)", "lower"),
    ("down_udp_drops", "UDP receive-buffer drops per download run", "lower"),
    ("up_udp_drops", "UDP receive-buffer drops per upload run", "lower"),
]

NAMES = {
    "ours": "ours (bandwidth_perf)",
    "rust-libp2p": "rust-libp2p 0.57",
    "libp2p-perf-0.3": "libp2p-perf 0.3.0",
    "quinn": "raw quinn",
    "before": "before (an earlier commit)",
}


def fmt(x):
    if x >= 100:
        return f"{x:.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def main(path):
    values = defaultdict(list)
    loads = []
    impls = []
    with open(path) as f:
        next(f)
        for line in f:
            impl, metric, _round, value, load = line.rstrip("\n").split("\t")
            values[(impl, metric)].append(float(value))
            loads.append(float(load))
            if impl not in impls:
                impls.append(impl)
    peers = [i for i in impls if i != "ours"]
    head = ["Figure"] + [NAMES.get(i, i) for i in impls]
    head += [f"ours ÷ {NAMES.get(p, p)}" for p in peers if "ours" in impls]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for metric, label, better in METRICS:
        if not any((i, metric) in values for i in impls):
            continue
        row = [f"{label}, {better} is better"]
        med = {}
        for impl in impls:
            v = values.get((impl, metric))
            if not v:
                row.append("—")
                continue
            med[impl] = statistics.median(v)
            row.append(f"{fmt(med[impl])} ({fmt(min(v))}–{fmt(max(v))})")
        if "ours" in impls:
            for peer in peers:
                if "ours" in med and peer in med and med[peer] > 0 and "drops" not in metric:
                    row.append(f"{med['ours'] / med[peer]:.2f}×")
                else:
                    row.append("—")
        print("| " + " | ".join(row) + " |")
    if loads:
        print()
        print(
            f"1-minute load average during the runs: {min(loads):.2f}–{max(loads):.2f} "
            f"(median {statistics.median(loads):.2f})"
        )


if __name__ == "__main__":
    main(sys.argv[1])
