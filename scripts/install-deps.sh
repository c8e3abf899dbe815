#!/bin/sh
# Installs, from Debian, the packages the build and the test matrix need
# (make test): only those missing, so a second run does nothing.
# libhttp-parser-dev builds examples/http_server; curl and wrk are the
# clients the example tests drive it with.
# libpq-dev builds libtulip-pg; postgresql is the server its tests start.
# libcurl4-openssl-dev builds libtulip-curl; its tests start nginx-light
# (with the echo module for slow and trickling endpoints) and make their
# certificates with the openssl command.
# libssl-dev (OpenSSL 3) builds libtulip-tls; its tests use openssl too.
# Runs as root, or through sudo when not root.
set -eu

PACKAGES="build-essential cmake ninja-build pkg-config git python3
libcriterion-dev liburing-dev valgrind man-db
gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user
libhttp-parser-dev curl wrk
libpq-dev postgresql
libcurl4-openssl-dev nginx-light libnginx-mod-http-echo openssl
libssl-dev"

missing=""
for p in $PACKAGES; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    case $status in
        *" installed") ;;
        *) missing="$missing $p" ;;
    esac
done

if [ -z "$missing" ]; then
    echo "install-deps: all packages present"
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    as_root=""
elif command -v sudo >/dev/null 2>&1; then
    as_root="sudo"
else
    echo "install-deps: missing:$missing; run as root or install sudo" >&2
    exit 1
fi

echo "install-deps: installing:$missing"
$as_root apt-get update
# The tests start their own nginx and PostgreSQL: keep the packages'
# services from starting on the host (invoke-rc.d asks policy-rc.d; 101
# means "not allowed"). A policy the machine already has is left alone.
policy=/usr/sbin/policy-rc.d
made_policy=""
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $as_root tee "$policy" >/dev/null &&
        $as_root chmod 755 "$policy" && made_policy=1
fi
status=0
# shellcheck disable=SC2086 # $missing is a list of package names
$as_root env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y --no-install-recommends $missing || status=$?
if [ -n "$made_policy" ]; then $as_root rm -f "$policy"; fi
[ "$status" -eq 0 ] || exit "$status"
