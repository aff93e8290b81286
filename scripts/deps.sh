# Sourced by the scripts: `need COMMAND DEBIAN_PACKAGE` makes sure a tool is
# there, installing it with apt-get when run as root, or says how to get it.
need() {
    command -v "$1" >/dev/null 2>&1 && return 0
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        if [ -z "${_apt_updated:-}" ]; then
            apt-get update -qq >/dev/null && _apt_updated=1
        fi
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
        command -v "$1" >/dev/null 2>&1 && return 0
    fi
    echo "$(basename "$0"): '$1' is missing: install it with 'apt-get install $2' (as root)" >&2
    exit 1
}
