#!/usr/bin/env python3
"""banwarden end-to-end benchmark: line-to-ban latency and ban throughput.

Runs INSIDE a throw-away network namespace (use run_daemon_bench.sh), with the
same jail shape as ../shared/bench/bench_daemon.py uses for fail2ban (django
login failures, maxretry 3, findtime 600, bantime 600, ports http/https), so
the figures compare. Ban times come from `nft monitor` events.

Phases:
  latency     per address: append 2 failures, wait, append the 3rd; time from
              that write to the element appearing in the set.
  throughput  N addresses x 3 failure lines in one write(); time until all N
              are in the set; daemon CPU (utime+stime) over the phase.
  restart     (with --restart-n) N bans in the state store, daemon restarted:
              time from spawn to all N back in the set.
  flood       (with --flood-n) N distinct-address failure lines (one each: no
              ban) in one write(); time until `status` shows them all read,
              as lines/s. As much is written to a scratch file and deleted
              first (unless --cold-write): see `warm_free_pages`.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")
TABLE = "bwbench"
IP_RE = re.compile(rb"(\d+\.\d+\.\d+\.\d+)")


def write_config(work, max_tracked=None):
    os.makedirs(f"{work}/filters", exist_ok=True)
    os.makedirs(f"{work}/jails", exist_ok=True)
    with open(f"{work}/banwarden.yaml", "w") as f:
        f.write(f"table: {TABLE}\nstate_dir: {work}/state\nsocket: {work}/run/bw.sock\nlog_level: info\n")
    with open(f"{work}/filters/django-login.yaml", "w") as f:
        f.write("failregex:\n  - 'Login failure <HOST>$'\n")
    with open(f"{work}/jails/bench.yaml", "w") as f:
        f.write("bench:\n  enabled: true\n  filter: django-login\n  logpath: app.log\n"
                "  maxretry: 3\n  findtime: 600\n  bantime: 600\n  ports: [http, https]\n  ignoreself: false\n")
        if max_tracked:
            f.write(f"  max_tracked: {max_tracked}\n")
    open(f"{work}/app.log", "w").close()


class Monitor:
    """Follows `nft monitor` (in network namespace `ns`, else this one) and
    records when each address was first added."""

    def __init__(self, ns=None):
        self.seen = {}
        self.cond = threading.Condition()
        prefix = ["ip", "netns", "exec", ns] if ns else []
        self.proc = subprocess.Popen(prefix + ["nft", "monitor", "elements"], stdout=subprocess.PIPE)
        threading.Thread(target=self.run, daemon=True).start()

    def run(self):
        for line in self.proc.stdout:
            t = time.monotonic()
            if b"add element" not in line:
                continue
            with self.cond:
                for ip in IP_RE.findall(line):
                    self.seen.setdefault(ip.decode(), t)
                self.cond.notify_all()

    def wait(self, ips, timeout):
        deadline = time.monotonic() + timeout
        with self.cond:
            while not all(ip in self.seen for ip in ips):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(left)
        return True

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def stat_fields(pid):
    """/proc/PID/stat's fields after the command name (the state first)."""
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()


def cpu(pid, children=False):
    """The process's CPU seconds (utime+stime); with `children`, plus those of
    its waited-for children (the nft processes it ran)."""
    fields = stat_fields(pid)
    own = int(fields[11]) + int(fields[12])
    if children:
        own += int(fields[13]) + int(fields[14])
    return own / CLK_TCK


def cpu_ns(pid):
    """The process's CPU time so far in nanoseconds, summed over its live
    threads (schedstat: finer than the clock ticks `cpu` counts in)."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except OSError:
            pass
    return total


def minflt(pid):
    """The process's minor page faults so far (every thread's)."""
    return int(stat_fields(pid)[7])


def rss_hwm(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def rss_now(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


DAEMON_ARGS = []


def start_daemon(binary, work):
    d = subprocess.Popen([binary, "run", "--config", work, *DAEMON_ARGS], stderr=open(f"{work}/daemon.log", "a"))
    t0 = time.monotonic()
    # `list chains` is the cheap listing: nft (1.0.6) fetches every set
    # element for `list tables` too, a second per 100,000 bans.
    while f"table inet {TABLE} {{" not in subprocess.run(["nft", "list", "chains", "inet"], capture_output=True,
                                                           text=True).stdout:
        if d.poll() is not None:
            sys.exit(f"daemon exited: see {work}/daemon.log")
        if time.monotonic() - t0 > 20:
            sys.exit("daemon did not create its table in 20 s")
        time.sleep(0.005)
    return d, time.monotonic() - t0


def append(work, text):
    with open(f"{work}/app.log", "a") as f:
        f.write(text)


def line(ip):
    return time.strftime("%Y-%m-%d %H:%M:%S,000") + f" ERROR Login failure {ip}\n"


def lines_read(binary, work):
    """The bench jail's `lines` counter, asked over the control socket
    directly (a `banwarden status` process per poll would compete with the
    daemon for the CPU it is measured on)."""
    import socket
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
            c.connect(f"{work}/run/bw.sock")
            c.sendall(b'{"v":1,"cmd":"status","jail":null}\n')
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = c.recv(65536)
                if not chunk:
                    break
                buf += chunk
    except OSError:
        return 0

    def find(v):
        if isinstance(v, dict):
            if v.get("name") == "bench" and "lines" in v:
                return v["lines"]
            vs = v.values()
        elif isinstance(v, list):
            vs = v
        else:
            return None
        for x in vs:
            r = find(x)
            if r is not None:
                return r
        return None
    try:
        return find(json.loads(buf)) or 0
    except ValueError:
        return 0


# How many times the flood's size is written to the scratch file and deleted.
# Once was enough for a log file that starts empty (2.5-3.8 ms writes, 8 of
# 8), not for one that already holds lines, as after the latency phase: with
# no daemon at all, 2.5-88.6 ms over 16 writes. Three times: 2.5-9.8 ms.
WARM_TIMES = 3


def warm_free_pages(data):
    """Writes `data` WARM_TIMES over to a scratch file outside the daemon's
    sight and deletes it, so that the flood's own write takes recently freed
    pages.

    A VM that hands its free memory back to the host (free page reporting)
    pays a fault on the host side for each page it takes back: on this
    project's VM an 11 MB write took 5-125 ms into such pages and 2.6-6.4 ms
    into pages freed just before, with no daemon running at all. The flood
    measures the daemon; the host's memory is reported as `write_s`."""
    fd, path = tempfile.mkstemp(prefix="bw-warm-")
    try:
        for _ in range(WARM_TIMES):
            view = data
            while view:
                view = view[os.write(fd, view):]
    finally:
        os.close(fd)
        os.unlink(path)


def flood(binary, work, n, pid, cold_write=False):
    base = lines_read(binary, work)
    hwm_before = rss_hwm(pid)
    text = "".join(line(f"10.{i // 62500 + 100}.{i // 250 % 250}.{i % 250 + 1}") for i in range(n))
    # Encoded beforehand: the clock starts at the append itself, one write()
    # of the whole flood (Python's own text encoding is not the daemon's time).
    data = memoryview(text.encode())
    if not cold_write:
        warm_free_pages(data)
    fd = os.open(f"{work}/app.log", os.O_WRONLY | os.O_APPEND)
    c0 = cpu(pid)
    f0 = minflt(pid)
    n0 = cpu_ns(pid)
    t0 = time.monotonic()
    while data:
        data = data[os.write(fd, data):]
    written = time.monotonic() - t0
    os.close(fd)
    while lines_read(binary, work) < base + n:
        if time.monotonic() - t0 > 120:
            sys.exit("flood: not all lines read within 120 s")
        time.sleep(0.001)
    t = time.monotonic() - t0
    # The rate counts from the start of the append (the write's own time
    # included: the daemon only hears of the lines once it ends); `write_s`
    # says how much of it the one write took.
    return {"n": n, "all_read_s": t, "lines_per_s": n / t, "write_s": written,
            "daemon_cpu_s": cpu(pid) - c0, "daemon_cpu_ms": (cpu_ns(pid) - n0) / 1e6,
            "daemon_minflt": minflt(pid) - f0, "vm_hwm_mib_before": hwm_before,
            "vm_hwm_mib": rss_hwm(pid), "vm_rss_mib": rss_now(pid)}


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--workdir", default="/tmp/bwbench")
    ap.add_argument("--latency-n", type=int, default=200)
    ap.add_argument("--throughput-n", type=int, default=10000)
    ap.add_argument("--restart-n", type=int, default=0, help="bans to restore after a restart (0: skip)")
    ap.add_argument("--flood-n", type=int, default=0, help="distinct-address lines for the flood phase (0: skip)")
    ap.add_argument("--cold-write", action="store_true",
                    help="append the flood without first writing and deleting as much elsewhere "
                         "(see warm_free_pages: the write then also measures the host's memory)")
    ap.add_argument("--max-tracked", type=int, default=0,
                    help="the jail's max_tracked (0: its default); with --flood-n 1000000 --max-tracked 1000000 "
                         "the flood phase measures memory per tracked address")
    ap.add_argument("--nft", default=None,
                    help="the daemon's hidden --nft: /usr/sbin/nft runs the nft command for each transaction "
                         "instead of libnftables in-process (to compare the two)")
    args = ap.parse_args()
    if args.nft:
        DAEMON_ARGS.extend(["--nft", args.nft])
    if not os.environ.get("BW_BENCH_NETNS"):
        sys.exit("refusing to run outside a throw-away network namespace: use run_daemon_bench.sh")
    work = args.workdir
    subprocess.run(["rm", "-rf", work])
    write_config(work, args.max_tracked)
    mon = Monitor()
    daemon, startup = start_daemon(args.binary, work)
    result = {"startup_s": startup}
    time.sleep(0.3)

    lat = []
    banned = []
    for i in range(args.latency_n):
        ip = f"198.18.{i // 250}.{i % 250 + 1}"
        append(work, line(ip) * 2)
        time.sleep(0.02)
        t0 = time.monotonic()
        append(work, line(ip))
        if not mon.wait([ip], 5):
            sys.exit(f"{ip} not banned within 5 s")
        lat.append((mon.seen[ip] - t0) * 1000)
        banned.append(ip)
        time.sleep(0.01)
    if lat:
        result["latency_ms"] = {"n": len(lat), "min": min(lat), "p50": pct(lat, 50), "p95": pct(lat, 95),
                                "p99": pct(lat, 99), "max": max(lat), "mean": statistics.mean(lat)}

    if args.flood_n:
        result["flood"] = flood(args.binary, work, args.flood_n, daemon.pid, args.cold_write)

    if args.throughput_n:
        n = args.throughput_n
        ips = [f"198.19.{i // 250}.{i % 250 + 1}" for i in range(n)]
        text = "".join(line(ip) * 3 for ip in ips)
        c0 = cpu(daemon.pid)
        t0 = time.monotonic()
        append(work, text)
        ok = mon.wait(ips, 60)
        t1 = time.monotonic()
        banned += ips
        first = min(mon.seen[ip] for ip in ips if ip in mon.seen) - t0
        result["throughput"] = {"n": n, "all_banned": ok, "all_in_set_s": t1 - t0, "first_ban_s": first,
                                "bans_per_s": n / (t1 - t0), "daemon_cpu_s": cpu(daemon.pid) - c0,
                                "vm_hwm_mib": rss_hwm(daemon.pid)}
    if args.restart_n:
        n = args.restart_n
        ips = [f"10.{i // 62500}.{i // 250 % 250}.{i % 250 + 1}" for i in range(n)]
        append(work, "".join(line(ip) * 3 for ip in ips))
        if not mon.wait(ips, 300):
            sys.exit("restart phase: not all bans were made")
        daemon.terminate()
        daemon.wait(30)
        subprocess.run(["nft", "delete", "table", "inet", TABLE], check=True)
        mon.seen.clear()
        t0 = time.monotonic()
        daemon, _ = start_daemon(args.binary, work)
        restored_s = time.monotonic() - t0
        everything = banned + ips
        # The table, its sets and every restored element are created in one
        # transaction: the moment the table is visible, all bans are back.
        # (Polling elements instead would measure nft dumping 100k elements.)
        listed = json.loads(subprocess.run(["nft", "-j", "list", "set", "inet", TABLE, "bench_v4"],
                                           capture_output=True).stdout)
        count = sum(len(x["set"].get("elem", [])) for x in listed["nftables"] if "set" in x)
        result["restart"] = {"bans": len(everything), "in_set": count, "spawn_to_all_restored_s": restored_s,
                             "daemon_cpu_s": cpu(daemon.pid),
                             "daemon_and_nft_cpu_s": cpu(daemon.pid, children=True)}
    daemon.terminate()
    daemon.wait(10)
    mon.stop()
    json.dump(result, open(f"{work}/result.json", "w"), indent=2)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
