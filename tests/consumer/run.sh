#!/bin/sh
# The install_consumer test: install a tulip build tree into a scratch
# prefix, then build main.c against it three ways and run each binary:
#   1. find_package(tulip), tulip::tulip (shared, RPATH set by CMake)
#   2. find_package(tulip), tulip::tulip_static
#   3. cc main.c $(pkg-config --cflags --libs tulip), with an rpath
# usage: run.sh BUILD_DIR WORK_DIR LIBDIR CC CMAKE
set -eu
build=$1 work=$2 libdir=$3 cc=$4 cmake=${5:-cmake}
here=$(cd "$(dirname "$0")" && pwd)
prefix=$work/prefix

rm -rf "$work"
mkdir -p "$work"
"$cmake" --install "$build" --prefix "$prefix" >"$work/install.log" 2>&1 || {
    cat "$work/install.log"; echo "install_consumer: install failed"; exit 1; }

for f in include/tulip.h "$libdir/libtulip.a" "$libdir/pkgconfig/tulip.pc" \
         "$libdir/cmake/tulip/tulipConfig.cmake" \
         "$libdir/cmake/tulip/tulipConfigVersion.cmake"; do
    [ -e "$prefix/$f" ] || { echo "install_consumer: $f not installed"; exit 1; }
done
ls "$prefix/$libdir"/libtulip.so.* >/dev/null 2>&1 ||
    { echo "install_consumer: versioned libtulip.so not installed"; exit 1; }

check() { # name binary
    out=$("$2") || { echo "install_consumer: $1: exit status $?"; exit 1; }
    [ "$out" = "tulip consumer ok" ] ||
        { echo "install_consumer: $1: printed '$out'"; exit 1; }
    echo "install_consumer: $1: ok"
}

for kind in shared static; do
    static=OFF; [ $kind = static ] && static=ON
    "$cmake" -S "$here" -B "$work/cmake-$kind" -DCMAKE_C_COMPILER="$cc" \
        -DCMAKE_PREFIX_PATH="$prefix" -DTULIP_CONSUMER_STATIC=$static \
        >"$work/cmake-$kind.log" 2>&1 &&
    "$cmake" --build "$work/cmake-$kind" >>"$work/cmake-$kind.log" 2>&1 || {
        cat "$work/cmake-$kind.log"; echo "install_consumer: find_package ($kind) build failed"; exit 1; }
    check "find_package ($kind)" "$work/cmake-$kind/consumer"
done

PKG_CONFIG_PATH=$prefix/$libdir/pkgconfig
export PKG_CONFIG_PATH
flags=$(pkg-config --cflags --libs tulip)
# shellcheck disable=SC2086 # word splitting of pkg-config output is intended
"$cc" -o "$work/consumer-pc" "$here/main.c" $flags -Wl,-rpath,"$prefix/$libdir" ||
    { echo "install_consumer: pkg-config build failed (flags: $flags)"; exit 1; }
check "pkg-config" "$work/consumer-pc"
