#!/usr/bin/env bash
# Builds the Debian package: target/debian/banwarden_VERSION-1_ARCH.deb
# (under CARGO_TARGET_DIR when set). As root it installs cargo-deb when missing.
#
# The man pages, completions and the packaged unit are generated from the
# binary itself (`banwarden generate`) and systemd/banwarden.service into
# debian/generated/ (not committed), then `cargo deb` packs what
# [package.metadata.deb] in Cargo.toml lists.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! cargo deb --version >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
        cargo install cargo-deb --locked
    else
        echo "$(basename "$0"): cargo-deb is missing: cargo install cargo-deb" >&2
        exit 1
    fi
fi
target="${CARGO_TARGET_DIR:-target}"
profile="${BANWARDEN_DEB_PROFILE:-release}"
cargo build --profile "$profile" --bin banwarden
dir="$profile"; [ "$profile" = dev ] && dir=debug
bin="$target/$dir/banwarden"
gen=debian/generated
rm -rf "$gen"
mkdir -p "$gen/man" "$gen/completions"
"$bin" generate man --out "$gen/man"
gzip -9n "$gen"/man/*
"$bin" generate completions bash > "$gen/completions/banwarden"
"$bin" generate completions zsh > "$gen/completions/_banwarden"
"$bin" generate completions fish > "$gen/completions/banwarden.fish"
mkdir -p "$gen/systemd"
# The unit, as installed by the package: /usr/bin, and the man pages it
# ships (systemd-analyze verify checks they exist, so the repository's copy
# names only nft(8)).
sed -e 's,/usr/local/bin/banwarden,/usr/bin/banwarden,g' \
    -e 's,^Documentation=man:nft(8)$,Documentation=man:banwarden(8) man:banwarden.yaml(5) man:nft(8),' \
    systemd/banwarden.service > "$gen/systemd/banwarden.service"
cargo deb --no-build --profile "$profile" "$@"
