#!/usr/bin/env bash
# banwarden's fleet benchmark: three daemons in throw-away network namespaces
# sharing one redis-server on a private unix socket (never the host's ruleset).
# Usage (as root): bench/run_fleet_bench.sh [fleet_bench.py args]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/.."
cargo build --release --quiet
target="${CARGO_TARGET_DIR:-$PWD/target}"
python3 "$here/fleet_bench.py" --binary "$target/release/banwarden" "$@"
