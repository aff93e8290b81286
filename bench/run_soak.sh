#!/usr/bin/env bash
# banwarden's soak benchmark inside a throw-away network namespace (never the
# host's ruleset). Usage: bench/run_soak.sh [soak.py args], e.g. --minutes 30
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/.."
cargo build --release --quiet
ns="bwsoak$$"
trap 'ip netns delete "$ns" 2>/dev/null || true' EXIT
ip netns add "$ns"
ip netns exec "$ns" ip link set lo up
BW_BENCH_NETNS="$ns" ip netns exec "$ns" python3 "$here/soak.py" --binary "$PWD/target/release/banwarden" "$@"
