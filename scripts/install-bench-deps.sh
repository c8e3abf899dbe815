#!/bin/sh
# Peers and tools for the comparison benchmarks (tools/bench.sh; not needed
# by CI), all from Debian:
#   python3            asyncio peer
#   golang-go          Go peer
#   libuv1-dev         libuv peer (C, callbacks)
#   librust-tokio-dev  Tokio's source, built offline by cargo from the
#                      Debian registry directory it installs (no crate
#                      download); cargo + rustc when no cargo is on PATH
#   nodejs             Node peer (plain JS, no npm packages), if no node
#   gnuplot-nox        the PNG chart
#   librust-hyper-dev  the Tokio peer's HTTP server (tools/bench-net.sh)
#   nginx-light        the nginx HTTP peer (tools/bench-net.sh)
#   libhttp-parser-dev the libuv HTTP peer's parser, and wrk the HTTP load
#                      (also in install-deps.sh: the example tests use them)
# Like install-deps.sh: installs only what is missing, as root or via sudo.
set -eu

PACKAGES="python3 libuv1-dev golang-go librust-tokio-dev gnuplot-nox
librust-hyper-dev nginx-light libhttp-parser-dev wrk"
command -v node >/dev/null 2>&1 || PACKAGES="$PACKAGES nodejs"
command -v cargo >/dev/null 2>&1 || PACKAGES="$PACKAGES cargo rustc"

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
