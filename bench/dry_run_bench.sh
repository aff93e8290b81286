#!/bin/bash
# Throughput of `banwarden dry-run` against the fail2ban-regex baseline and
# `rg -c` with an equivalent regex (the scan-speed limit), on the 1M-line
# synthetic logs of ../shared/bench/gen_logs.py. A benchmark, not a test.
#
# Usage: bench/dry_run_bench.sh [RUNS]        (default RUNS=10; NO_BUILD=1 skips
#        the release build and uses target/release/banwarden as it is)
# Needs: cargo, hyperfine, rg, python3. Logs: /tmp/f2bbench/logs/*-1m.log
# (generated with ../shared/bench/gen_logs.py when missing; set SHARED=DIR
# if the shared bench scripts are elsewhere).
# Output: a markdown table on stdout (paste into bench/README.md); raw
# hyperfine JSON in /tmp/f2bbench/results/dry-run-*.json.
set -u
cd "$(dirname "$0")/.."
RUNS=${1:-10}
SHARED=${SHARED:-../shared/bench}
LOGS=/tmp/f2bbench/logs
RES=/tmp/f2bbench/results
mkdir -p "$RES"
for t in hyperfine rg python3 cargo; do
  command -v "$t" >/dev/null || { echo "missing $t" >&2; exit 1; }
done
for k in sshd nginx django; do
  if [ ! -f "$LOGS/$k-1m.log" ]; then
    python3 "$SHARED/gen_logs.py" --lines 1000000 >&2 || { echo "cannot generate logs" >&2; exit 1; }
    break
  fi
done
BIN=$PWD/target/release/banwarden
if [ -z "${NO_BUILD:-}" ]; then
  cargo build --release --quiet || exit 1
fi
[ -x "$BIN" ] || { echo "no $BIN" >&2; exit 1; }

# fail2ban-regex 1.0.2 on the same machine and logs, median lines/s over 3 runs
# of 1M lines (../shared/bench/FAIL2BAN-BASELINE.md, "lines/s (wall, med)").
declare -A F2B=([django-login]=84890 [nginx-admin-login]=6133 [nginx-admin-login-dp]=64851
                [nginx-botsearch]=62344 [sshd]=42937)

# rg equivalents (Rust regex syntax), as in ../shared/bench/bench_rg.sh.
RG_DJ='Login failure [0-9a-fA-F.:]+'
RG_ADMIN='^[0-9a-fA-F.:]+ -.*"POST /admin/login/ HTTP/\d\.\d" 200'
# The shipped nginx-botsearch filter, its date cut replaced by `\[[^\]]*\]`.
RG_BOT='^[0-9a-fA-F.:]+ - [^"]* \[[^\]]*\] "(?:GET|POST|HEAD) (?:https?://[^/" ]*)?/(?:[^" ?]*/)?(?:wp-(?:login|signup|config|cron)\.php|xmlrpc\.php|wlwmanifest\.xml|wp-admin|wp-includes|wp-content|(?i:phpmyadmin[\w.-]*|pma|myadmin|mysqladmin|sqladmin|dbadmin)|\.env(?:\.[\w.-]+)?|\.git|\.svn|\.hg|\.aws|\.ssh|\.DS_Store|\.htpasswd|cgi-bin|vendor/phpunit|eval-stdin\.php|phpinfo\.php|HNAP1|boaform|GponForm|setup\.cgi|actuator)(?:[/?;][^" ]*)? HTTP/\d(?:\.\d)?" 404 '
# The baseline's sshd stand-in, and the shipped sshd filter's failregexes
# (prefregex folded in, user names as `.*`, addresses as `[0-9a-fA-F.:]+`).
RG_SSHD_SIMPLE='Failed password for .* from [0-9a-f.:]+'
RG_SSHD_FULL='^(?:\S+ )?(?:\S+ )?(?:\S+ )?(?:\S+ )?sshd(?:-session|-auth)?(?:\[\d+\])?: (?:error: |fatal: )?(?:Invalid user .* from [0-9a-fA-F.:]+(?: port \d+)?|Failed (?:password|publickey|keyboard-interactive(?:/pam)?) for (?:invalid user )?.* from [0-9a-fA-F.:]+ port \d+ ssh2(?:: .*)?|(?:Connection (?:closed|reset) by|Disconnected from) (?:authenticating|invalid) user .* [0-9a-fA-F.:]+ port \d+ \[preauth\]|maximum authentication attempts exceeded for .* from [0-9a-fA-F.:]+ port \d+ ssh2(?: \[preauth\])?|Disconnecting (?:authenticating|invalid) user .* [0-9a-fA-F.:]+ port \d+: Too many authentication failures(?: \[preauth\])?|Did not receive identification string from [0-9a-fA-F.:]+(?: port \d+)?|banner exchange: Connection from [0-9a-fA-F.:]+ port \d+: [A-Za-z ]+|Bad protocol version identification .* from [0-9a-fA-F.:]+(?: port \d+)?)$'

# name | log | dry-run filter | extra dry-run options | rg regex (last: it holds `|`)
CASES=(
  "django-login|django|bench/filters/django-login.yaml||$RG_DJ"
  "nginx-admin-login|nginx|bench/filters/nginx-admin-login.yaml||$RG_ADMIN"
  "nginx-admin-login-dp|nginx|bench/filters/nginx-admin-login-dp.yaml||$RG_ADMIN"
  "nginx-admin-login-dp --all-dates|nginx|bench/filters/nginx-admin-login-dp.yaml|--all-dates|$RG_ADMIN"
  "nginx-botsearch|nginx|filters/nginx-botsearch.yaml||$RG_BOT"
  "sshd|sshd|filters/sshd.yaml||$RG_SSHD_FULL"
  "sshd (rg: baseline's simple regex)|sshd|filters/sshd.yaml||$RG_SSHD_SIMPLE"
)

ROWS=$RES/dry-run-rows.tsv
: > "$ROWS"
i=0
for c in "${CASES[@]}"; do
  IFS='|' read -r name log filter extra rgre <<< "$c"
  L=$LOGS/$log-1m.log
  cat "$L" > /dev/null
  out=$RES/dry-run-$i.json
  # Counts first (also warms the page cache).
  matched=$("$BIN" dry-run "$L" --filter "$filter" $extra --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["lines"]["matched"])')
  rgcount=$(rg -c "$rgre" "$L")
  hyperfine -N -i --warmup 2 --runs "$RUNS" --style none --export-json "$out" \
    -n dry-run "$BIN dry-run $L --filter $filter $extra" \
    -n dry-run-1t "$BIN dry-run $L --filter $filter $extra --threads 1" \
    -n rg "rg -c '$rgre' $L" > /dev/null 2>&1
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$log" "$out" "$matched" "$rgcount" "${F2B[${name%% *}]}" >> "$ROWS"
  i=$((i + 1))
done

python3 - "$ROWS" <<'EOF'
import json, sys
print("| filter | log (1M lines) | dry-run s | dry-run lines/s | 1 thread lines/s | fail2ban-regex lines/s | × fail2ban-regex | rg -c s | rg -c lines/s | dry-run / rg -c | matched (dry-run / rg -c) |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for line in open(sys.argv[1]):
    name, log, path, matched, rgcount, f2b = line.rstrip("\n").split("\t")
    res = {r["command"]: sorted(r["times"]) for r in json.load(open(path))["results"]}
    # The fastest run: the machine is shared, and the minimum is the figure
    # least disturbed by other work (hyperfine JSON keeps every run).
    best = lambda k: res[k][0]
    d, d1, r = best("dry-run"), best("dry-run-1t"), best("rg")
    f2b = int(f2b)
    print(f"| {name} | {log}-1m | {d:.3f} | {1e6/d:.2e} | {1e6/d1:.2e} | {f2b} | {1e6/d/f2b:.0f}× | {r:.3f} | {1e6/r:.2e} | {r/d:.2f} | {matched} / {rgcount} |")
EOF
