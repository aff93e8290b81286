#!/usr/bin/env python3
"""Compares banwarden binaries on the fleet benchmark's 10,000-ban and flood
phases, alternating them run by run so that every binary meets the same
machine load (the load of a shared machine drifts within minutes).
Run as root (it runs bench/fleet_bench.py, which builds its own namespaces):

    bench/fleet_compare.py --runs 8 target/release/banwarden /tmp/banwarden-old

Prints per binary: the median (min-max) time until 10,000 bans decided on
node 0 are in all three nodes' sets and how many runs stayed within 2 s, and
the median flood time ratio `fleet: shared` / `fleet: local` and how many
runs stayed within 2x; with the 1-minute load average seen before each run.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def one_run(binary):
    out = subprocess.run([sys.executable, os.path.join(HERE, "fleet_bench.py"), "--binary", binary,
                          "--prop-n", "0"], capture_output=True, text=True, timeout=600).stdout
    phases = {}
    for line in out.splitlines():
        if line.startswith(("mass ", "flood ")):
            name, value = line.split(" {", 1)
            phases[name] = json.loads("{" + value)
    return (phases["mass"]["seconds"], phases["mass"]["per_node_seconds"][0],
            phases["flood shared"]["seconds"] / phases["flood local"]["seconds"])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=6)
    ap.add_argument("binaries", nargs="+")
    a = ap.parse_args()
    res = {b: [] for b in a.binaries}
    loads = []
    for r in range(a.runs):
        for b in a.binaries:
            with open("/proc/loadavg") as f:
                loads.append(float(f.read().split()[0]))
            res[b].append(one_run(b))
            mass, _, ratio = res[b][-1]
            print(f"run {r + 1} {b}: mass {mass:.2f} s, flood ratio {ratio:.2f}x", flush=True)
    print(f"load average: min {min(loads):.1f}, median {statistics.median(loads):.1f}, max {max(loads):.1f}")
    for b, rows in res.items():
        mass = [m for m, _, _ in rows]
        node0 = [n for _, n, _ in rows]
        ratio = [q for _, _, q in rows]
        print(f"{b}: 10,000 bans median {statistics.median(mass):.2f} s ({min(mass):.2f}-{max(mass):.2f}), "
              f"{sum(m <= 2 for m in mass)}/{len(mass)} within 2 s, node 0's own median "
              f"{statistics.median(node0):.2f} s; flood shared/local median {statistics.median(ratio):.2f}x "
              f"({min(ratio):.2f}-{max(ratio):.2f}), {sum(q <= 2 for q in ratio)}/{len(ratio)} within 2x")


if __name__ == "__main__":
    main()
