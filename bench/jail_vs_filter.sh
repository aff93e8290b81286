#!/bin/bash
# What `dry-run --jail` costs over `--filter` with the same filter on the same
# log, in a config directory that also holds every shipped filter and jail
# (issue 9: at most 1.15x). A benchmark, not a test.
#
# Usage: bench/jail_vs_filter.sh [RUNS]       (default 10; NO_BUILD=1 uses
#        the release binary as it is; BIN=PATH times another binary, e.g.
#        an older build, and implies NO_BUILD). Logs as for dry_run_bench.sh.
# Output: a markdown table on stdout.
set -u
cd "$(dirname "$0")/.."
RUNS=${1:-10}
LOGS=/tmp/f2bbench/logs
RES=/tmp/f2bbench/results
if [ -n "${BIN:-}" ]; then
  NO_BUILD=1
fi
BIN=${BIN:-${CARGO_TARGET_DIR:-$PWD/target}/release/banwarden}
mkdir -p "$RES"
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
echo "| jail (filter) | log (1M lines) | --filter s | --jail s | --jail / --filter | bans |"
echo "|---|---|---|---|---|---|"
for c in "bench-django django-login django" "bench-admin nginx-admin-login nginx" \
         "bench-bot nginx-botsearch nginx" "bench-sshd sshd sshd"; do
  set -- $c
  L=$LOGS/$3-1m.log
  out=$RES/jail-$1.json
  bans=$("$BIN" dry-run "$L" --config "$CFG" --jail "$1" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["jail"]["bans_total"])')
  hyperfine -N --warmup 2 --runs "$RUNS" --style none --export-json "$out" \
    -n filter "$BIN dry-run $L --config $CFG --filter $2" \
    -n jail "$BIN dry-run $L --config $CFG --jail $1" > /dev/null 2>&1
  python3 - "$out" "$1 ($2)" "$3" "$bans" <<'PY'
import json, sys
res = {r["command"]: min(r["times"]) for r in json.load(open(sys.argv[1]))["results"]}
f, j = res["filter"], res["jail"]
print(f"| {sys.argv[2]} | {sys.argv[3]}-1m | {f:.3f} | {j:.3f} | {j/f:.2f} | {sys.argv[4]} |")
PY
done
