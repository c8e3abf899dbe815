#!/bin/sh
# Peers for the comparison benchmarks in bench/ (not needed by CI):
# libuv for the C comparison, Python (asyncio) and Go for the others.
# Like install-deps.sh: installs only what is missing, as root or via sudo.
set -eu

PACKAGES="python3 libuv1-dev golang-go"

missing=""
for p in $PACKAGES; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    case $status in
        *" installed") ;;
        *) missing="$missing $p" ;;
    esac
done
[ -n "$missing" ] || { echo "install-bench-deps: all packages present"; exit 0; }

if [ "$(id -u)" -eq 0 ]; then
    as_root=""
elif command -v sudo >/dev/null 2>&1; then
    as_root="sudo"
else
    echo "install-bench-deps: missing:$missing; run as root or install sudo" >&2
    exit 1
fi
echo "install-bench-deps: installing:$missing"
$as_root apt-get update
# shellcheck disable=SC2086
$as_root env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y --no-install-recommends $missing
