#!/usr/bin/env bash
# banwarden's end-to-end daemon benchmark inside a throw-away network namespace
# (never the host's ruleset). Usage: bench/run_daemon_bench.sh [daemon_bench.py args]
# Compare with fail2ban in the same run: ../shared/bench/run_daemon_bench.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/.."
cargo build --release --quiet
ns="bwbench$$"
trap 'ip netns delete "$ns" 2>/dev/null || true' EXIT
ip netns add "$ns"
ip netns exec "$ns" ip link set lo up
# BW_BENCH_SCRIPT: another benchmark of this folder run the same way (soak.py).
BW_BENCH_NETNS="$ns" ip netns exec "$ns" python3 "$here/${BW_BENCH_SCRIPT:-daemon_bench.py}" --binary "$PWD/target/release/banwarden" "$@"
