#!/usr/bin/env python3
"""banwarden soak benchmark (issue 10): hours-long behaviour in minutes.

Runs INSIDE a throw-away network namespace (use run_soak.sh). For
--minutes (default 30) it appends --rate (default 50,000) lines/s to a
tailed file in 100 ms batches: a flood of distinct addresses (one failure
each, never banned; the jail's max_tracked of 100,000 is overrun within
seconds, so eviction runs all the time) and, once a second, a trickle
address that gets its third failure and must be banned. Every 5 minutes
the log is rotated the way logrotate does (rename, create; the file before
is deleted), so rotation runs under load too.

Reported (JSON on stdout and in WORKDIR/soak.json):
  rss_mib       the daemon's VmRSS sampled every 10 s: first (after the
                first minute), last, max, and the drift last - first
  fds           open file descriptors: first, last, max
  ban_latency   write of the third failure -> element in the set (nft
                monitor): n, p50, p99, max, and bans missed
  lines         lines written and lines the daemon read (status)
  behind_s      how far the daemon's reading lagged the writer at the end
"""
import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import daemon_bench as db  # noqa: E402  (same config, monitor, daemon start)


def status_lines(work):
    return db.lines_read(None, work)


def fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--workdir", default="/tmp/bwsoak")
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--rate", type=int, default=50_000, help="lines per second")
    ap.add_argument("--rotate-every", type=float, default=300, help="seconds")
    args = ap.parse_args()
    if not os.environ.get("BW_BENCH_NETNS"):
        sys.exit("refusing to run outside a throw-away network namespace: use run_soak.sh")
    work = args.workdir
    subprocess.run(["rm", "-rf", work])
    db.write_config(work)
    mon = db.Monitor()
    daemon, _ = db.start_daemon(args.binary, work)
    pid = daemon.pid

    batch = max(1, args.rate // 10)
    flood_i = 0
    trickle_i = 0
    pending = {}  # trickle ip -> time its third failure was written
    latencies = []
    written = 0
    samples = []
    started = time.monotonic()
    end = started + args.minutes * 60
    next_sample = started + 60
    next_rotate = started + args.rotate_every
    next_trickle = started + 1
    tick = started
    while time.monotonic() < end:
        now = time.monotonic()
        stamp = time.strftime("%Y-%m-%d %H:%M:%S,000")
        parts = []
        for _ in range(batch):
            i = flood_i % 16_000_000
            flood_i += 1
            parts.append(f"{stamp} ERROR Login failure 10.{i // 65536 % 250}.{i // 256 % 256}.{i % 256}\n")
        third = None
        if now >= next_trickle:
            next_trickle += 1
            ip = f"198.18.{trickle_i // 250 % 250}.{trickle_i % 250 + 1}"
            trickle_i += 1
            parts.append(f"{stamp} ERROR Login failure {ip}\n" * 2)
            third = ip
        with open(f"{work}/app.log", "a") as f:
            f.write("".join(parts))
            written += batch + (2 if third else 0)
            if third:
                f.flush()
                f.write(f"{stamp} ERROR Login failure {third}\n")
                pending[third] = time.monotonic()
                written += 1
        with mon.cond:
            for ip in [ip for ip in pending if ip in mon.seen]:
                latencies.append((mon.seen[ip] - pending.pop(ip)) * 1000)
        if now >= next_rotate:
            next_rotate += args.rotate_every
            if os.path.exists(f"{work}/app.log.1"):
                os.unlink(f"{work}/app.log.1")
            os.rename(f"{work}/app.log", f"{work}/app.log.1")
            open(f"{work}/app.log", "w").close()
        if now >= next_sample:
            next_sample += 10
            samples.append({"t": round(now - started), "rss_mib": db.rss_now(pid), "fds": fds(pid)})
        tick += 0.1
        time.sleep(max(0.0, tick - time.monotonic()))

    # Let the daemon finish reading, then collect the last bans.
    t_end = time.monotonic()
    deadline = t_end + 120
    while status_lines(work) < written and time.monotonic() < deadline:
        time.sleep(0.05)
    behind = time.monotonic() - t_end
    mon.wait(list(pending), 10)
    with mon.cond:
        for ip in [ip for ip in pending if ip in mon.seen]:
            latencies.append((mon.seen[ip] - pending.pop(ip)) * 1000)
    read = status_lines(work)
    daemon.terminate()
    daemon.wait(30)
    mon.stop()

    rss = [s["rss_mib"] for s in samples] or [0.0]
    fd = [s["fds"] for s in samples] or [0]
    result = {
        "minutes": args.minutes,
        "rate": args.rate,
        "rss_mib": {"first": rss[0], "last": rss[-1], "max": max(rss), "drift": rss[-1] - rss[0]},
        "fds": {"first": fd[0], "last": fd[-1], "max": max(fd)},
        "ban_latency_ms": {
            "n": len(latencies),
            "p50": db.pct(latencies, 50) if latencies else None,
            "p99": db.pct(latencies, 99) if latencies else None,
            "max": max(latencies) if latencies else None,
            "missed": len(pending),
        },
        "lines": {"written": written, "read": read},
        "behind_s": behind,
        "samples": samples,
    }
    json.dump(result, open(f"{work}/soak.json", "w"), indent=2)
    print(json.dumps({k: v for k, v in result.items() if k != "samples"}, indent=2))


if __name__ == "__main__":
    main()
