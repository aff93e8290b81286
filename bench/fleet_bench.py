#!/usr/bin/env python3
"""banwarden fleet benchmark: three daemons, each in its own throw-away
network namespace, sharing one redis-server on a private unix socket.
Run as root through bench/run_fleet_bench.sh (never the host's ruleset).

Phases (times from `nft monitor elements` in each node's namespace):
  propagation  --prop-n addresses, one at a time: 3 failure lines written to
               node 0's log in one write(); time from that write to the
               element in node 1's and node 2's sets (the later of the two).
  mass         --mass-n addresses x 3 failure lines in one write() on node 0;
               time until every address is in all three nodes' sets.
  flood        --flood-n distinct-address failure lines (one each: no ban) in
               one write() on node 0, with the jail `fleet: shared` and then
               `fleet: local` (daemons restarted); time until `status` shows
               them all read, as lines/s.
No packet leaves the namespaces: the addresses are only set elements.
"""
import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from daemon_bench import Monitor  # noqa: E402  (nft monitor, in the node's namespace)

TABLE = "bwfleet"


def addr(i, base=(100, 64)):
    """The i-th address of 100.64.0.0/10 (shared address space; set elements only)."""
    return f"{base[0]}.{base[1] + (i >> 16) % 64}.{(i >> 8) & 255}.{i & 255}"


class Node:
    def __init__(self, binary, work, i, redis_url, prefix, mode):
        self.binary, self.i = binary, i
        self.ns = f"bwfb{os.getpid()}n{i}"
        self.dir = f"{work}/n{i}-{mode}"
        os.makedirs(f"{self.dir}/filters", exist_ok=True)
        os.makedirs(f"{self.dir}/jails", exist_ok=True)
        with open(f"{self.dir}/banwarden.yaml", "w") as f:
            f.write(f"table: {TABLE}\nstate_dir: {self.dir}/state\nsocket: {self.dir}/run/bw.sock\n"
                    f"log_level: warn\nfleet:\n  redis: {redis_url}\n  node: n{i}\n  prefix: {prefix}\n")
        with open(f"{self.dir}/filters/app.yaml", "w") as f:
            f.write("failregex:\n  - '^Login failure <HOST>$'\n")
        with open(f"{self.dir}/jails/app.yaml", "w") as f:
            f.write("app:\n  enabled: true\n  filter: app\n  logpath: app.log\n  maxretry: 3\n"
                    f"  findtime: 600\n  bantime: 600\n  ports: [http, https]\n  fleet: {mode}\n"
                    "  max_tracked: 1000000\n")
        open(f"{self.dir}/app.log", "w").close()
        subprocess.run(["ip", "netns", "add", self.ns], check=True)
        subprocess.run(["ip", "-n", self.ns, "link", "set", "lo", "up"], check=True)
        self.monitor = Monitor(self.ns)
        self.proc = subprocess.Popen(["ip", "netns", "exec", self.ns, binary, "run", "--config", self.dir],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=open(f"{self.dir}/daemon.log", "w"))
        deadline = time.monotonic() + 30
        while not self.status().get("fleet", {}).get("connected"):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                sys.exit(f"node {i} did not come up: see {self.dir}/daemon.log")
            time.sleep(0.1)

    def status(self):
        out = subprocess.run([self.binary, "status", "--json", "--config", self.dir],
                             capture_output=True)
        try:
            return json.loads(out.stdout or b"{}") or {}
        except ValueError:
            return {}

    def append(self, text):
        with open(f"{self.dir}/app.log", "a") as f:
            f.write(text)
            f.flush()

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.monitor.stop()
        subprocess.run(["ip", "netns", "delete", self.ns], check=False)


def start_redis(work):
    sock = f"{work}/redis.sock"
    proc = subprocess.Popen(["redis-server", "--port", "0", "--unixsocket", sock, "--unixsocketperm", "700",
                             "--save", "", "--appendonly", "no", "--dir", work],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            s = socket.socket(socket.AF_UNIX)
            s.connect(sock)
            s.sendall(b"PING\r\n")
            if s.recv(16).startswith(b"+PONG"):
                return proc, f"unix://{sock}"
        except OSError:
            time.sleep(0.05)
    sys.exit("redis-server did not start")


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def fleet(binary, work, redis_url, mode, tag):
    return [Node(binary, work, i, redis_url, f"bench{tag}", mode) for i in range(3)]


def propagation(nodes, n):
    lat, local = [], []
    for k in range(n):
        ip = addr(k, (100, 100))
        t0 = time.monotonic()
        nodes[0].append(f"Login failure {ip}\n" * 3)
        if not all(nd.monitor.wait([ip], 10) for nd in nodes):
            print(f"propagation: {ip} missing after 10 s", file=sys.stderr)
            continue
        local.append((nodes[0].monitor.seen[ip] - t0) * 1000)
        lat.append((max(nodes[1].monitor.seen[ip], nodes[2].monitor.seen[ip]) - t0) * 1000)
    return lat, local


def mass(nodes, n):
    ips = [addr(k, (100, 110)) for k in range(n)]
    text = "".join(f"Login failure {ip}\n" * 3 for ip in ips)
    t0 = time.monotonic()
    nodes[0].append(text)
    ok = all(nd.monitor.wait(ips, 120) for nd in nodes)
    per_node = [max(nd.monitor.seen.get(ip, 0) for ip in ips) - t0 for nd in nodes]
    return ok, max(per_node), per_node


def flood(nodes, n):
    text = "".join(f"Login failure {addr(k, (100, 64))}\n" for k in range(n))
    t0 = time.monotonic()
    nodes[0].append(text)
    while True:
        jails = nodes[0].status().get("jails", [])
        if jails and jails[0].get("lines", 0) >= n:
            return time.monotonic() - t0
        if time.monotonic() - t0 > 300:
            return float("nan")
        time.sleep(0.02)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", required=True)
    ap.add_argument("--prop-n", type=int, default=1000)
    ap.add_argument("--mass-n", type=int, default=10000)
    ap.add_argument("--flood-n", type=int, default=200000)
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="bwfleetbench")
    redis, url = start_redis(work)
    results = {}
    nodes = []
    try:
        nodes = fleet(a.binary, work, url, "shared", "s")
        if a.prop_n:
            lat, local = propagation(nodes, a.prop_n)
            results["propagation_ms"] = {"n": len(lat), "p50": statistics.median(lat),
                                         "p99": pct(lat, 99), "max": max(lat),
                                         "local_p50": statistics.median(local), "local_p99": pct(local, 99)}
            print("propagation", json.dumps(results["propagation_ms"]), flush=True)
        if a.mass_n:
            ok, took, per_node = mass(nodes, a.mass_n)
            results["mass"] = {"n": a.mass_n, "all_three": ok, "seconds": took,
                               "per_node_seconds": per_node}
            print("mass", json.dumps(results["mass"]), flush=True)
        if a.flood_n:
            took = flood(nodes, a.flood_n)
            results["flood_shared"] = {"n": a.flood_n, "seconds": took, "lines_per_s": a.flood_n / took}
            print("flood shared", json.dumps(results["flood_shared"]), flush=True)
            for nd in nodes:
                nd.stop()
            nodes = fleet(a.binary, work, url, "local", "l")
            took = flood(nodes, a.flood_n)
            results["flood_local"] = {"n": a.flood_n, "seconds": took, "lines_per_s": a.flood_n / took}
            print("flood local", json.dumps(results["flood_local"]), flush=True)
            results["flood_shared_over_local"] = results["flood_shared"]["seconds"] / took
    finally:
        for nd in nodes:
            nd.stop()
        redis.kill()
        if not os.environ.get("BW_FLEET_BENCH_KEEP"):
            shutil.rmtree(work, ignore_errors=True)
        else:
            print("kept", work)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
