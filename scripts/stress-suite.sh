#!/usr/bin/env bash
# Runs the whole test suite RUNS times in a row while HOGS busy loops compete
# for the CPUs, to show that no test depends on the machine being quiet (no
# fixed sleeps, no timing races). Not part of CI: it takes RUNS times the
# suite's time, longer under the load it makes.
#
# Usage: scripts/stress-suite.sh [RUNS] [HOGS]    (defaults: 5 runs, 2 hogs)
# Run it as root with BANWARDEN_REQUIRE_PRIVILEGED_TESTS=1 so that the
# privileged tests run rather than skip. Output: one line per run (result,
# wall time, load average at its end, failed tests) and the log of every run
# in $OUT (default /tmp/banwarden-stress); exit status 1 if any run failed.
set -uo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-5}
HOGS=${2:-2}
OUT=${OUT:-/tmp/banwarden-stress}
mkdir -p "$OUT"

echo "building the tests once" >&2
cargo test --all-targets --no-run --quiet >"$OUT/build.log" 2>&1 || {
    echo "build failed: $OUT/build.log" >&2
    exit 1
}

hogs=()
stop_hogs() {
    for p in "${hogs[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
}
trap stop_hogs EXIT
for _ in $(seq "$HOGS"); do
    (while :; do :; done) &
    hogs+=($!)
done

failed=0
for run in $(seq "$RUNS"); do
    log="$OUT/run-$run.log"
    start=$(date +%s)
    if cargo test --all-targets >"$log" 2>&1; then
        result=pass
    else
        result=FAIL
        failed=$((failed + 1))
    fi
    secs=$(($(date +%s) - start))
    load=$(cut -d' ' -f1-3 /proc/loadavg)
    tests=$(grep -Eo 'test result: [a-zA-Z]+\. [0-9]+ passed' "$log" | awk '{s+=$4} END {print s+0}')
    bad=$(grep -E '^test .* \.\.\. FAILED$' "$log" | sed 's/^test //; s/ \.\.\. FAILED$//' | tr '\n' ' ')
    echo "run $run/$RUNS: $result in ${secs}s, $tests tests passed, load $load, $HOGS hogs${bad:+, failed: $bad}"
done
echo "$((RUNS - failed)) of $RUNS runs passed (logs in $OUT)"
[ "$failed" = 0 ]
