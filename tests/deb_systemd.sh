#!/bin/sh
# The Debian package under a real systemd (tests/deb_systemd.rs runs this).
#
# Runs as PID 1 of its own pid namespace with a private mount namespace
# (`unshare --mount --pid --fork --kill-child --mount-proc`): the overlay
# root, systemd-nspawn and the container it boots all go when this script
# exits, however it exits. The container is this machine's own root seen
# through an overlay whose upper layer is a tmpfs, with a private network
# namespace: nothing of it reaches the host's files, ruleset or dpkg database.
#
# usage: deb_systemd.sh V1.deb V2.deb V2-VERSION MACHINE-NAME SCRATCH-DIR
set -eu
v1=$1 v2=$2 v2version=$3 machine=$4 t=$5

fail() {
    echo "FAILED: $*"
    exit 1
}
step() { echo "== $*"; }
deadline=$(($(date +%s) + 240))
in_time() { [ "$(date +%s)" -lt "$deadline" ] || fail "timed out (240 s) waiting for: $*"; }

mount -t tmpfs tmpfs "$t"
mkdir "$t/upper" "$t/work" "$t/root"
mount -t overlay overlay -o "lowerdir=/,upperdir=$t/upper,workdir=$t/work" "$t/root"
cp "$v1" "$t/root/root/v1.deb"
cp "$v2" "$t/root/root/v2.deb"
# The container starts from the host's root: make it a machine without
# banwarden and without the host's enabled services (only what basic.target
# pulls in is started).
rm -rf "$t/root/etc/banwarden" "$t/root/var/lib/banwarden"
# A build machine's policy-rc.d (Docker images ship one that exits 101)
# forbids starting services from maintainer scripts; a server has none.
rm -f "$t/root/usr/sbin/policy-rc.d"

if [ -d /run/systemd/system ]; then
    # The host runs systemd: nspawn registers the container with machined.
    register=
else
    # No systemd on the host (a container, a VM with another init): nspawn
    # talks to no bus and keeps its own cgroup. Its propagation directory
    # must be on a tmpfs, which /run may not be here.
    register="--register=no --keep-unit"
    if [ "$(stat -f -c %T /run)" != tmpfs ]; then
        mkdir -p /run/systemd/nspawn
        mount -t tmpfs tmpfs /run/systemd/nspawn
    fi
fi
step "boot systemd in $machine"
# shellcheck disable=SC2086
systemd-nspawn --quiet -D "$t/root" --boot --private-network --link-journal=no \
    --machine "$machine" --console=pipe $register -- systemd.unit=basic.target \
    >"$t/console.log" 2>&1 &
nspawn=$!
leader=
while [ -z "$leader" ]; do
    kill -0 "$nspawn" 2>/dev/null || {
        cat "$t/console.log"
        fail "systemd-nspawn exited"
    }
    for c in $(ps -o pid= --ppid "$nspawn"); do
        for p in $c $(ps -o pid= --ppid "$c"); do
            [ "$(cat "/proc/$p/comm" 2>/dev/null)" = systemd ] && leader=$p
        done
    done
    in_time "systemd in the container"
    sleep 0.1
done
inside() {
    nsenter -t "$leader" -m -u -i -n -p -- \
        env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"
}
until state=$(inside systemctl is-system-running --wait 2>&1) &&
    [ "$state" = running ] || [ "$state" = degraded ]; do
    in_time "the container's boot ($state)"
    sleep 0.2
done
echo "system: $state"
# Polls CMD (run inside) until its output contains TEXT.
wait_for() {
    text=$1
    shift
    until inside "$@" 2>&1 | grep -qF -- "$text"; do
        in_time "'$text' in: $*"
        sleep 0.1
    done
}

step "dpkg -i v1: enabled, not started (no jail enabled)"
inside dpkg -i /root/v1.deb </dev/null
[ "$(inside systemctl is-enabled banwarden)" = enabled ] || fail "unit not enabled"
[ "$(inside systemctl is-active banwarden || true)" = inactive ] || fail "started without a jail"
step "systemd-analyze verify of the installed unit"
out=$(inside systemd-analyze verify /lib/systemd/system/banwarden.service 2>&1) ||
    fail "systemd-analyze verify: $out"
echo "$out" | grep -q banwarden && fail "systemd-analyze verify complains: $out"

step "enable the sshd jail, edit a conffile, systemctl start"
inside sh -c 'echo "sshd: {enabled: true, backend: files}" > /etc/banwarden/jails/sshd.local.yaml'
inside sh -c 'echo "# edited by the operator" >> /etc/banwarden/banwarden.yaml'
inside touch /var/log/auth.log
inside systemctl start banwarden
[ "$(inside systemctl is-active banwarden)" = active ] || fail "not active after start"
inside banwarden status
inside banwarden status | grep -q '^sshd ' || fail "status lacks the sshd jail"

step "failures in auth.log and a manual ban"
now=$(date '+%b %e %H:%M:%S')
inside sh -c "for i in 1 2 3 4 5; do echo '$now vm sshd[4242]: Failed password for root from 203.0.113.7 port 22 ssh2'; done >> /var/log/auth.log"
wait_for 203.0.113.7 banwarden bans
inside banwarden ban sshd 198.51.100.9 --for 2h
inside banwarden bans

step "journalctl JAIL=sshd ADDR=... and -p warning"
wait_for '"MESSAGE":"ban"' journalctl -u banwarden JAIL=sshd ADDR=203.0.113.7 -o json --no-pager
inside journalctl -u banwarden ADDR=203.0.113.7 -o json --no-pager | grep -q '"BANTIME":"3600"' || fail "BANTIME is not the ban's seconds"
inside sh -c 'echo "sshd: {maxretry: five}" > /etc/banwarden/jails/zz.local.yaml'
inside systemctl reload banwarden
wait_for "reload rejected" journalctl -u banwarden -p warning -o cat --no-pager
warnings=$(inside journalctl -u banwarden -p warning -o cat --no-pager)
echo "$warnings"
echo "$warnings" | grep -q "banwarden running" && fail "-p warning shows info records"
inside rm /etc/banwarden/jails/zz.local.yaml
[ "$(inside systemctl is-active banwarden)" = active ] || fail "a rejected reload stopped it"

step "dpkg -i v2 (upgrade) while running: restarted, bans and edited conffiles kept"
before=$(inside systemctl show -p MainPID --value banwarden)
inside dpkg -i /root/v2.deb </dev/null
[ "$(inside dpkg-query -W -f '${Version}' banwarden)" = "$v2version" ] || fail "not upgraded"
[ "$(inside systemctl is-active banwarden)" = active ] || fail "not active after the upgrade"
after=$(inside systemctl show -p MainPID --value banwarden)
[ "$before" != "$after" ] || fail "the upgrade did not restart the daemon ($before)"
inside grep -q "edited by the operator" /etc/banwarden/banwarden.yaml || fail "edited conffile replaced"
inside grep -q "enabled: true" /etc/banwarden/jails/sshd.local.yaml || fail "local jail file lost"
left=$(inside find /etc/banwarden -name '*.dpkg-*')
[ -z "$left" ] || fail "dpkg left $left"
bans=$(inside banwarden bans)
echo "$bans"
echo "$bans" | grep -q 203.0.113.7 || fail "the jail's ban is gone after the upgrade"
echo "$bans" | grep -q 198.51.100.9 || fail "the manual ban is gone after the upgrade"

step "the bans come back from the state file, not from the kernel"
inside systemctl stop banwarden
inside nft delete table inet banwarden
inside systemctl start banwarden
ruleset=$(inside nft list table inet banwarden)
echo "$ruleset" | grep -q 203.0.113.7 || fail "203.0.113.7 not restored into nft: $ruleset"
echo "$ruleset" | grep -q 198.51.100.9 || fail "198.51.100.9 not restored into nft: $ruleset"

step "dpkg -r stops the daemon, bans stay in the kernel; dpkg -P clears"
inside dpkg -r banwarden </dev/null
[ "$(inside systemctl is-active banwarden || true)" = inactive ] || fail "still running after dpkg -r"
inside nft list table inet banwarden | grep -q 203.0.113.7 || fail "dpkg -r lifted the bans"
inside test -f /var/lib/banwarden/state.redb || fail "dpkg -r removed the state"
inside dpkg -P banwarden </dev/null
inside test ! -e /etc/banwarden || fail "dpkg -P left /etc/banwarden"

inside systemctl poweroff || true
while kill -0 "$nspawn" 2>/dev/null; do
    in_time "the container's shutdown"
    sleep 0.1
done
echo ALL-OK
