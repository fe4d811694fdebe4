#!/usr/bin/env python3
"""A pure model of a fleet rollout (docs/fleets.md, "Scale"): wall time of
`sluice fleet apply` over N databases against `parallel` and wave sizes.

Nothing runs against a database. Each database's forward pass (start,
backfill, verify, switch) takes fixed overhead + rows / backfill rate, its
rows drawn from a log-normal distribution; its contract pass (verify,
complete) takes a fixed time. The runner's schedule is reproduced exactly:
per wave, up to `parallel` databases at once in inventory order (a worker
takes the next database when it finishes one), then the soak, then the next
wave; after the last soak (the fleet barrier) the contract pass, wave by
wave, with the same parallelism.

Defaults come from measured runs: the per-database overhead (1.9 s forward,
0.5 s contract) from tests/integration/fleet_test.cc's PostgreSQL fleet on
the 2-core CI machine (30-row tables, so almost all of it is the lifecycle's
fixed cost), and the backfill rate (232,558 rows/s, median with the latency
throttle on) from docs/performance.md. Real fleets should put their own
numbers in: `sluice report` on a rehearsed database gives both.

    bench/fleet_model.py                       # 1,000 databases, the default table
    bench/fleet_model.py --databases 200 --rows-median 5e6 --soak 30m
"""
import argparse
import heapq
import math
import random


def makespan(durations, parallel):
    """List scheduling in order on `parallel` workers (the runner's pool)."""
    workers = [0.0] * max(1, min(parallel, len(durations)))
    heapq.heapify(workers)
    end = 0.0
    for d in durations:
        start = heapq.heappop(workers)
        heapq.heappush(workers, start + d)
        end = max(end, start + d)
    return end


def wave_sizes(n, spec):
    """spec: "1,25%,rest" -> sizes; a number is a count, N% of the fleet."""
    sizes, left = [], n
    for part in spec.split(","):
        if part == "rest":
            size = left
        elif part.endswith("%"):
            size = min(left, math.ceil(float(part[:-1]) * n / 100))
        else:
            size = min(left, int(part))
        if size > 0:
            sizes.append(size)
        left -= size
    if left > 0:
        sizes.append(left)
    return sizes


def simulate(n, waves, parallel, soak, rows, rate, fwd_overhead, contract):
    forward = [fwd_overhead + r / rate for r in rows]
    t, i = 0.0, 0
    for size in waves:
        t += makespan(forward[i:i + size], parallel) + soak
        i += size
    for size in waves:
        t += makespan([contract] * size, parallel)
    return t


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--databases", type=int, default=1000)
    p.add_argument("--rows-median", type=float, default=2e6, help="median rows of the migrated table")
    p.add_argument("--rows-sigma", type=float, default=1.0, help="log-normal sigma of the rows")
    p.add_argument("--rate", type=float, default=232558, help="backfill rows/s of one database")
    p.add_argument("--forward-overhead", type=float, default=1.9, help="start+verify+switch seconds")
    p.add_argument("--contract", type=float, default=0.5, help="verify+complete seconds")
    p.add_argument("--soak", type=float, default=600, help="seconds per wave")
    p.add_argument("--waves", nargs="*", default=["1%,rest", "1%,10%,rest", "1%,5%,25%,rest"])
    p.add_argument("--parallel", nargs="*", type=int, default=[1, 4, 16, 64])
    p.add_argument("--seed", type=int, default=15)
    a = p.parse_args()
    rnd = random.Random(a.seed)
    rows = [a.rows_median * math.exp(rnd.gauss(0, a.rows_sigma)) for _ in range(a.databases)]
    print(f"{a.databases} databases, rows median {a.rows_median:g} (sigma {a.rows_sigma}), "
          f"backfill {a.rate:g} rows/s, soak {a.soak:g} s per wave; wall time in hours")
    print("| waves | " + " | ".join(f"parallel {q}" for q in a.parallel) + " |")
    print("|---|" + "---|" * len(a.parallel))
    for spec in a.waves:
        sizes = wave_sizes(a.databases, spec)
        cells = [simulate(a.databases, sizes, q, a.soak, rows, a.rate, a.forward_overhead, a.contract) / 3600
                 for q in a.parallel]
        print(f"| {spec} ({'/'.join(map(str, sizes))}) | " + " | ".join(f"{c:.2f}" for c in cells) + " |")


if __name__ == "__main__":
    main()
