#!/usr/bin/env bash
# Builds banwarden and runs the daemon in the foreground on this repository's
# own configuration: the enabled `demo` jail watches demo/demo.log.
# Needs root (it manages its own nftables table, `inet banwarden`).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
if [ "$(id -u)" != 0 ]; then
    echo "quickstart: run as root: banwarden manages an nftables table (sudo $0)" >&2
    exit 1
fi
need nft nftables
cargo build --release --quiet
touch demo/demo.log
./target/release/banwarden check --config .
cat <<MSG

banwarden is starting on $(pwd) (Ctrl-C stops it; bans stay until they expire).
In another terminal, fail three logins and look at the ban:

  for i in 1 2 3; do echo "\$(date '+%F %T'),000 ERROR Login failure 203.0.113.7" >> $(pwd)/demo/demo.log; done
  nft list table inet banwarden

MSG
exec ./target/release/banwarden run --config .
