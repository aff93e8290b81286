#!/usr/bin/env bash
# Runs the whole test suite: formatting, lints, unit and integration tests.
# As root it installs what the tests need (nftables, iproute2, python3, ...)
# and runs the privileged tests (network namespaces, real nft, real packets);
# unprivileged, those tests print why they skip.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
need nft nftables
need ip iproute2
need python3 python3
need systemd-analyze systemd
need journalctl systemd
need /usr/lib/systemd/systemd-journal-remote systemd-journal-remote
need runuser util-linux
need sysctl procps   # tests/forward_netns.rs: ip_forward in its router namespace
need openssl openssl  # tests/webhook_tls.rs: a CA and a server certificate made at test time
# tests/fleet.rs starts its own redis-server on a private unix socket.
need redis-server redis-server
need redis-cli redis-tools   # tests/fleet_tls.rs: waits for the TLS server
need openssl openssl         # tests/fleet_tls.rs: a private CA made at test time
# tests/fail2ban_samples.rs reads fail2ban's own filters and sample logs
# (GPL: read from the package at test time, never copied here).
need fail2ban-regex fail2ban
# tests/deb_package.rs builds the Debian package with cargo-deb and
# installs it in a throw-away overlay root.
need dpkg-deb dpkg
need unshare util-linux
# tests/deb_systemd.rs boots systemd in a container (systemd-nspawn) over
# an overlay of this machine's root and drives it with nsenter.
need systemd-nspawn systemd-container
need nsenter util-linux
if ! cargo deb --version >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
        cargo install cargo-deb --version '^3.8' --locked
    else
        echo "$(basename "$0"): cargo-deb is missing: cargo install cargo-deb (the package tests skip)" >&2
    fi
fi
cargo fmt --all -- --check
cargo clippy --all-targets --quiet -- -D warnings
cargo test --all-targets 2>&1
