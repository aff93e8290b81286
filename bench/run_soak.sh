#!/usr/bin/env bash
# banwarden's soak benchmark inside a throw-away network namespace (never the
# host's ruleset). Usage: bench/run_soak.sh [soak.py args], e.g. --minutes 30
exec env BW_BENCH_SCRIPT=soak.py "$(dirname "$0")/run_daemon_bench.sh" "$@"
