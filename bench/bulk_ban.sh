#!/usr/bin/env bash
# `banwarden ban --from FILE` with 100,000 entries, timed end to end (CLI
# reads and sends the list, the daemon records it in one store commit and
# applies one nft transaction; the command returns once the kernel has it),
# inside a throw-away network namespace (never the host's ruleset).
#
# Usage (root): bench/bulk_ban.sh [ENTRIES] [RUNS]   (defaults 100000, 3)
# Set BANWARDEN=path/to/banwarden to skip the release build.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/.."
n="${1:-100000}"
runs="${2:-3}"
if [ -z "${BANWARDEN:-}" ]; then
    cargo build --release --quiet
    BANWARDEN="${CARGO_TARGET_DIR:-$PWD/target}/release/banwarden"
fi
ns="bwbulk$$"
work="$(mktemp -d)"
pid=""
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
    ip netns delete "$ns" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
ip netns add "$ns"
ip netns exec "$ns" ip link set lo up

mkdir -p "$work/filters" "$work/jails"
cat > "$work/banwarden.yaml" <<YAML
table: bwbulk
state_dir: $work/state
socket: $work/run/banwarden.sock
log_level: warn
YAML
echo "failregex: ['^Login failure <HOST>\$']" > "$work/filters/app.yaml"
cat > "$work/jails/app.yaml" <<YAML
bench: {enabled: true, filter: app, logpath: app.log, bantime: 1h, ports: [80, 443]}
YAML
: > "$work/app.log"
# n distinct addresses in 10.0.0.0/8 (hosts), one per line.
python3 - "$n" > "$work/list.txt" <<'PY'
import sys
n = int(sys.argv[1])
for i in range(n):
    print(f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}")
PY

ip netns exec "$ns" "$BANWARDEN" run --config "$work" 2> "$work/daemon.log" &
pid=$!
for _ in $(seq 100); do [ -S "$work/run/banwarden.sock" ] && break; sleep 0.1; done

# CPU seconds the daemon used so far, with the nft processes it ran and
# waited for (utime, stime, cutime, cstime): less sensitive to other load
# on the machine than wall time.
daemon_cpu() { awk -v hz="$(getconf CLK_TCK)" '{print ($14+$15+$16+$17)/hz}' "/proc/$pid/stat"; }
t() { # prints "WALLs (cpu CPUs)": wall time of "$@", CPU of it and the daemon
    local a b c0 c1
    c0=$(daemon_cpu)
    a=$(date +%s.%N)
    /usr/bin/time -f "%U %S" -o "$work/cli.time" "$@" > /dev/null
    b=$(date +%s.%N)
    c1=$(daemon_cpu)
    python3 -c "u, s = map(float, open('$work/cli.time').read().split()[-2:]); print(f'{$b - $a:.3f}s (cpu {$c1 - $c0 + u + s:.2f}s)')"
}
echo "entries: $n; banwarden: $BANWARDEN; $(nproc) cores; $(date -u +%FT%TZ)"
for r in $(seq "$runs"); do
    new=$(t "$BANWARDEN" ban --from "$work/list.txt" bench --config "$work")
    again=$(t "$BANWARDEN" ban --from "$work/list.txt" bench --config "$work")
    "$BANWARDEN" bans --json --config "$work" > "$work/bans.json"
    unban=$(t "$BANWARDEN" unban --all --config "$work")
    json=$(t "$BANWARDEN" ban --from "$work/bans.json" --config "$work")
    count=$(ip netns exec "$ns" nft -j list set inet bwbulk bench_v4 | python3 -c 'import json,sys; d=json.load(sys.stdin); print(sum(len(o["set"].get("elem", [])) for o in d["nftables"] if "set" in o))')
    "$BANWARDEN" unban --all --config "$work" > /dev/null
    echo "run $r: list (new) ${new}, list again (refresh) ${again}, unban --all ${unban}, json import ${json}; elements in the kernel after the import: $count"
done
