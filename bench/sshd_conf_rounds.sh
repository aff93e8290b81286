#!/usr/bin/env bash
# Issue 11's goal, measured as bench/README.md reports it: dry-run with
# fail2ban's own sshd.conf on the 1M-line sshd log, against fail2ban-regex
# with the same file timed in the same minutes, and against banwarden's own
# filters/sshd.yaml. A benchmark, not a test.
#
# Usage: bench/sshd_conf_rounds.sh ROUNDS [BIN [OLD_BIN]]
#   BIN defaults to the release binary; OLD_BIN, when given, is timed in
#   every round beside it. Every round times fail2ban-regex once, then
#   banwarden (hyperfine, 10 runs), and compares the two: the VM's speed
#   drifts from minute to minute, and a ratio of two times from different
#   minutes measured the drift as much as the programs.
# Needs: hyperfine, fail2ban (fail2ban-regex, /etc/fail2ban/filter.d), and
# the logs of ../shared/bench (see dry_run_bench.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 1 ]; then
  sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
rounds=$1
bin=${2:-${CARGO_TARGET_DIR:-$PWD/target}/release/banwarden}
old=${3:-}
log=/tmp/f2bbench/logs/sshd-1m.log
conf=/etc/fail2ban/filter.d/sshd.conf
yaml=$PWD/filters/sshd.yaml
for need in hyperfine fail2ban-regex; do
  command -v "$need" >/dev/null || { echo "needs $need" >&2; exit 1; }
done
[ -f "$log" ] || { echo "no $log: run bench/dry_run_bench.sh once" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

f2b() {
  local s e
  s=$(date +%s.%N)
  fail2ban-regex "$log" "$conf" > /dev/null 2>&1
  e=$(date +%s.%N)
  echo "$e - $s" | bc
}

for r in $(seq "$rounds"); do
  cmds=(-n conf "$bin dry-run $log --filter $conf" -n yaml "$bin dry-run $log --filter $yaml")
  if [ -n "$old" ]; then
    cmds+=(-n old "$old dry-run $log --filter $conf")
  fi
  echo "$(cut -d' ' -f1 /proc/loadavg)" > "$tmp/load-$r"
  f2b > "$tmp/f2b-$r"
  hyperfine -N -w 2 -r 10 --export-json "$tmp/round-$r.json" "${cmds[@]}" > /dev/null 2>&1
  echo "round $r: fail2ban-regex $(cat "$tmp/f2b-$r") s" >&2
done

python3 - "$tmp" "$rounds" <<'PY'
import json, statistics as st, sys
tmp, rounds = sys.argv[1], int(sys.argv[2])
print("| round | load | fail2ban-regex | sshd.conf | x fail2ban-regex | / sshd.yaml | old binary |")
print("|---|---|---|---|---|---|---|")
ratios, confs, f2bs = [], [], []
for r in range(1, rounds + 1):
    d = {x["command"]: x["mean"] for x in json.load(open(f"{tmp}/round-{r}.json"))["results"]}
    f2b = float(open(f"{tmp}/f2b-{r}").read())
    ratios.append(f2b / d["conf"]); confs.append(d["conf"]); f2bs.append(f2b)
    old = f"{d['old']:.3f} s" if "old" in d else ""
    load = open(f"{tmp}/load-{r}").read().strip()
    print(f"| {r} | {load} | {f2b:.1f} s | {d['conf']:.3f} s | {f2b / d['conf']:.1f} | {d['conf'] / d['yaml']:.2f} | {old} |")
print(f"\n>= 100x in {sum(x >= 100 for x in ratios)} rounds of {rounds}; "
      f"median sshd.conf {st.median(confs):.3f} s, fail2ban-regex {min(f2bs):.1f}-{max(f2bs):.1f} s, "
      f"ratios {min(ratios):.1f}-{max(ratios):.1f}x (median {st.median(ratios):.1f}x)")
PY
