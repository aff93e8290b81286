#!/usr/bin/env bash
# Builds the Debian package: target/debian/banwarden_VERSION-1_ARCH.deb
# (under CARGO_TARGET_DIR when set). As root it installs cargo-deb when missing.
#
# The man pages, completions and the packaged unit are generated from the
# binary itself (`banwarden generate`) and systemd/banwarden.service into
# debian/generated/ (not committed), then `cargo deb` packs what
# [package.metadata.deb] in Cargo.toml lists.
#
# The package is built from a release binary. BANWARDEN_DEB_PROFILE=dev
# (the package tests, to reuse the test build) is refused unless
# BANWARDEN_DEB_ALLOW_DEBUG=1 says it is meant, and then warned about
# loudly: a debug build is many times slower and not for production. Such a
# package's version ends in ~debug (so the release of the same version
# replaces it), and its postinst warns again when it is installed.
# Arguments are passed to cargo deb (e.g. --fast, --deb-version V).
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
profile="${BANWARDEN_DEB_PROFILE:-release}"
debug=()
if [ "$profile" != release ]; then
    if [ "${BANWARDEN_DEB_ALLOW_DEBUG:-}" != 1 ]; then
        echo "$(basename "$0"): refusing to package the '$profile' profile: a debug build is many times" >&2
        echo "slower and not for production. Build the release package (unset BANWARDEN_DEB_PROFILE)," >&2
        echo "or set BANWARDEN_DEB_ALLOW_DEBUG=1 if a debug package is what you want (tests)." >&2
        exit 2
    fi
    warn() {
        echo "######################################################################" >&2
        echo "# WARNING: packaging the '$profile' profile: a DEBUG build, NOT FOR PRODUCTION" >&2
        echo "# (many times slower; version suffix ~debug). Release: unset BANWARDEN_DEB_PROFILE." >&2
        echo "######################################################################" >&2
    }
    warn
    case " $* " in
    *" --deb-version"*) ;; # the caller's version (tests: a ~debug one)
    *) debug=(--deb-revision 1~debug) ;;
    esac
fi
if ! cargo deb --version >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
        cargo install cargo-deb --version '^3.8' --locked
    else
        echo "$(basename "$0"): cargo-deb is missing: cargo install cargo-deb" >&2
        exit 1
    fi
fi
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
cargo deb --no-build --profile "$profile" "${debug[@]}" "$@"
[ "$profile" = release ] || warn
