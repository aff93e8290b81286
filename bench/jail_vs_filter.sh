#!/bin/bash
# What `dry-run --jail` costs over `--filter` with the same filter on the same
# log, in a config directory that also holds every shipped filter and jail
# (issue 9: at most 1.15x). A benchmark, not a test.
#
# Usage: bench/jail_vs_filter.sh [RUNS]       (default 10; NO_BUILD=1 uses
#        the release binary as it is; BIN=PATH times another binary, e.g.
#        an older build, and implies NO_BUILD). Logs as for dry_run_bench.sh.
# The two commands run in turn (--filter, --jail, --filter, ...) after two
# warm-up runs each, so that a slow minute of the VM slows both instead of
# one command's block of runs (hyperfine times one command's runs, then the
# other's).
# Output: a markdown table on stdout: each command's fastest run and their
# ratio, and the median over the RUNS pairs of a --jail run's time divided
# by the --filter run's just before it.
set -u
cd "$(dirname "$0")/.."
RUNS=${1:-10}
LOGS=/tmp/f2bbench/logs
if [ -n "${BIN:-}" ]; then
  NO_BUILD=1
fi
BIN=${BIN:-${CARGO_TARGET_DIR:-$PWD/target}/release/banwarden}
if [ -z "${NO_BUILD:-}" ]; then
  cargo build --release --quiet || exit 1
fi
CFG=$(mktemp -d)
trap 'rm -rf "$CFG"' EXIT
mkdir -p "$CFG/filters" "$CFG/jails"
cp filters/*.yaml bench/filters/*.yaml "$CFG/filters/"
cp jails/*.yaml "$CFG/jails/"
cat > "$CFG/jails/bench.yaml" <<'YAML'
bench-django: {filter: django-login, maxretry: 3, findtime: 10m, bantime: 10m}
bench-admin: {filter: nginx-admin-login, maxretry: 3, findtime: 10m, bantime: 10m}
bench-bot: {filter: nginx-botsearch, maxretry: 3, findtime: 10m, bantime: 10m}
bench-sshd: {filter: sshd, maxretry: 3, findtime: 10m, bantime: 10m}
YAML
# Times `--filter FILTER` and `--jail JAIL` in turn; prints the table's row.
# Arguments: runs, row label, log name, bans, binary, log path, config
# directory, filter, jail (each its own argument: paths may hold spaces).
pairs() {
  python3 - "$@" <<'PY'
import statistics, subprocess, sys, time

runs, label, log, bans, binary, path, cfg, filt, jail = sys.argv[1:]
base = [binary, "dry-run", path, "--config", cfg]
cmds = {"filter": base + ["--filter", filt], "jail": base + ["--jail", jail]}


def timed(argv):
    start = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


for _ in range(2):
    for argv in cmds.values():
        timed(argv)
times = {name: [] for name in cmds}
for _ in range(int(runs)):
    for name, argv in cmds.items():
        times[name].append(timed(argv))
f, j = min(times["filter"]), min(times["jail"])
paired = statistics.median(b / a for a, b in zip(times["filter"], times["jail"]))
print(f"| {label} | {log}-1m | {f:.3f} | {j:.3f} | {j / f:.2f} | {paired:.2f} | {bans} |")
PY
}
echo "| jail (filter) | log (1M lines) | --filter s (fastest) | --jail s (fastest) | --jail / --filter | median of paired ratios | bans |"
echo "|---|---|---|---|---|---|---|"
for c in "bench-django django-login django" "bench-admin nginx-admin-login nginx" \
         "bench-bot nginx-botsearch nginx" "bench-sshd sshd sshd"; do
  set -- $c
  L=$LOGS/$3-1m.log
  bans=$("$BIN" dry-run "$L" --config "$CFG" --jail "$1" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["jail"]["bans_total"])')
  pairs "$RUNS" "$1 ($2)" "$3" "$bans" "$BIN" "$L" "$CFG" "$2" "$1"
done
