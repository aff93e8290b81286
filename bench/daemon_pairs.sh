#!/usr/bin/env bash
# Two daemon binaries alternated, run after run, each run in a throw-away
# network namespace of its own with a fresh daemon (never the host's
# ruleset): the way the flood and latency figures of bench/README.md are
# taken, so that both binaries meet the same minutes of a noisy VM.
#
# Usage: bench/daemon_pairs.sh RUNS BIN_A BIN_B [daemon_bench.py args]
#   default args: --latency-n 0 --throughput-n 0 --flood-n 200000
#   e.g. bench/daemon_pairs.sh 10 target/release/banwarden /tmp/banwarden-old
#        bench/daemon_pairs.sh 5 A B --latency-n 100 --throughput-n 0 --flood-n 200000
# Output: a line per run, then per binary the medians of what was measured
# (flood: lines/s, how many floods reached 3 M, the write, the time after it,
# the daemon's CPU time and page faults over the flood; latency: each run's
# p99).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
if [ $# -lt 3 ]; then
  sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
runs=$1
a=$(realpath "$2")
b=$(realpath "$3")
shift 3
args=("$@")
if [ ${#args[@]} -eq 0 ]; then
  args=(--latency-n 0 --throughput-n 0 --flood-n 200000)
fi
out=$(mktemp)
res=$(mktemp)
ns=""
work=""
cleanup() {
  [ -n "$ns" ] && ip netns delete "$ns" 2>/dev/null || true
  [ -n "$work" ] && rm -rf "$work"
  rm -f "$out" "$res"
}
trap cleanup EXIT

one() {
  ns="bwpair$$"
  work=$(mktemp -d)
  ip netns add "$ns"
  ip netns exec "$ns" ip link set lo up
  BW_BENCH_NETNS="$ns" ip netns exec "$ns" python3 "$here/daemon_bench.py" \
    --workdir "$work/run" --binary "$1" "${args[@]}"
  ip netns delete "$ns"
  rm -rf "$work"
  ns=""
  work=""
}

for _ in $(seq "$runs"); do
  for bin in "$a" "$b"; do
    one "$bin" > "$res"
    json=$(python3 -c 'import json, sys; t = open(sys.argv[1]).read(); print(json.dumps(json.loads(t[t.index("{"):])))' "$res")
    printf '%s\t%s\t%s\t%s\n' "$(date -u +%T)" "$(cut -d' ' -f1 /proc/loadavg)" "$bin" "$json" >> "$out"
    tail -n 1 "$out" | python3 -c '
import json, sys
t, load, b, j = sys.stdin.read().rstrip("\n").split("\t", 3)
d = json.loads(j); l = d.get("latency_ms"); f = d.get("flood")
parts = [t, "load", load, b]
if l: parts += ["p50 %.2f p99 %.2f ms" % (l["p50"], l["p99"])]
if f: parts += ["flood %.2f M lines/s, write %.1f ms, after it %.1f ms, daemon CPU %.1f ms, %d page faults" % (
    f["lines_per_s"] / 1e6, f["write_s"] * 1e3, (f["all_read_s"] - f["write_s"]) * 1e3,
    f.get("daemon_cpu_ms", 0), f.get("daemon_minflt", 0))]
print(" ".join(parts))'
  done
done

python3 - "$out" <<'PY'
import json, statistics as st, sys
rows = {}
for line in open(sys.argv[1]):
    _, _, b, j = line.rstrip("\n").split("\t", 3)
    rows.setdefault(b, []).append(json.loads(j))
for b, ds in rows.items():
    print(f"{b}: {len(ds)} runs")
    fl = [d["flood"] for d in ds if "flood" in d]
    if fl:
        rate = [f["lines_per_s"] / 1e6 for f in fl]
        write = [f["write_s"] * 1e3 for f in fl]
        after = [(f["all_read_s"] - f["write_s"]) * 1e3 for f in fl]
        cpu = [f.get("daemon_cpu_ms", 0) for f in fl]
        faults = [f.get("daemon_minflt", 0) for f in fl]
        print(f"  flood: median {st.median(rate):.2f} M lines/s ({min(rate):.2f}-{max(rate):.2f}), "
              f">= 3 M in {sum(r >= 3 for r in rate)} of {len(rate)}; write median {st.median(write):.1f} ms; "
              f"after the write median {st.median(after):.1f} ms ({min(after):.1f}-{max(after):.1f}); "
              f"daemon CPU median {st.median(cpu):.1f} ms; page faults median {st.median(faults):.0f}")
    lat = [d["latency_ms"] for d in ds if "latency_ms" in d]
    if lat:
        print("  latency p99: " + " / ".join(f"{l['p99']:.2f}" for l in lat) + " ms; p50 "
              + " / ".join(f"{l['p50']:.2f}" for l in lat) + " ms")
PY
