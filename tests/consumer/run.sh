#!/bin/sh
# The install_consumer test: install a tulip build tree into a scratch
# prefix (outside the linker's and the loader's search paths, as a user's
# $HOME/.local would be), then build main.c against it every way the
# README tells, and run each binary:
#   1. find_package(tulip) with CMAKE_PREFIX_PATH, tulip::tulip (shared,
#      RPATH set by CMake)
#   2. find_package(tulip), tulip::tulip_static
#   3. cc main.c $(pkg-config --cflags --libs tulip) with -Wl,-rpath
#   4. the same without an rpath, run with LD_LIBRARY_PATH
#   5. cc main.c $(pkg-config --cflags --libs tulip-static): no libtulip.so
#      needed at run time
#   6. cc -static ... $(pkg-config --static ... tulip-static): no shared
#      library at all
#   7. the guide's out-of-tree hello world (tests/guide/CMakeLists.txt and
#      hello.c, shown in docs/guide.md), as its reader builds it
#   8. pg.c, curl.c and tls.c with pkg-config tulip-pg, tulip-curl and
#      tulip-tls, and with find_package(tulip COMPONENTS pg curl tls)
#      (tulip::<name>, shared and static), each when that integration was
#      built
# and checks the man pages: installed, and `man -M <prefix>/share/man
# tl_spawn` shows the page (when man is installed; else only the files).
# usage: run.sh BUILD_DIR WORK_DIR LIBDIR CC CMAKE MANDIR
set -eu
build=$1 work=$2 libdir=$3 cc=$4 cmake=${5:-cmake} mandir=${6:-share/man}
here=$(cd "$(dirname "$0")" && pwd)
prefix=$work/prefix

rm -rf "$work"
mkdir -p "$work"
"$cmake" --install "$build" --prefix "$prefix" >"$work/install.log" 2>&1 || {
    cat "$work/install.log"; echo "install_consumer: install failed"; exit 1; }

for f in include/tulip.h include/tulip/version.h "$libdir/libtulip.a" \
         "$libdir/pkgconfig/tulip.pc" "$libdir/pkgconfig/tulip-static.pc" \
         "$libdir/cmake/tulip/tulipConfig.cmake" \
         "$libdir/cmake/tulip/tulipConfigVersion.cmake" \
         "$mandir/man3/tl_spawn.3" "$mandir/man3/tl_spawn_ex.3" \
         "$mandir/man7/tulip.7" share/tulip/tulip-gdb.py; do
    [ -e "$prefix/$f" ] || { echo "install_consumer: $f not installed"; exit 1; }
done
ls "$prefix/$libdir"/libtulip.so.* >/dev/null 2>&1 ||
    { echo "install_consumer: versioned libtulip.so not installed"; exit 1; }

check() { # name binary [env assignments...]
    name=$1 bin=$2
    shift 2
    out=$(env "$@" "$bin") || { echo "install_consumer: $name: exit status $?"; exit 1; }
    [ "$out" = "tulip consumer ok" ] ||
        { echo "install_consumer: $1: printed '$out'"; exit 1; }
    echo "install_consumer: $name: ok"
}
needs_libtulip_so() { # binary
    readelf -d "$1" | grep -q 'NEEDED.*libtulip\.so'
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
needs_libtulip_so "$work/consumer-pc" ||
    { echo "install_consumer: pkg-config: libtulip.so is not NEEDED"; exit 1; }

version=$("$work/consumer-pc" --version)
[ "$version" = "$(pkg-config --modversion tulip)" ] ||
    { echo "install_consumer: tl_version_string() '$version' but tulip.pc says $(pkg-config --modversion tulip)"; exit 1; }

# shellcheck disable=SC2086
"$cc" -o "$work/consumer-ldpath" "$here/main.c" $flags ||
    { echo "install_consumer: pkg-config build without rpath failed"; exit 1; }
check "LD_LIBRARY_PATH" "$work/consumer-ldpath" LD_LIBRARY_PATH="$prefix/$libdir"
LD_LIBRARY_PATH="$prefix/$libdir" ldd "$work/consumer-ldpath" | grep -q "$prefix/$libdir/libtulip.so" ||
    { echo "install_consumer: LD_LIBRARY_PATH: libtulip.so not taken from the prefix"; exit 1; }

flags=$(pkg-config --cflags --libs tulip-static)
# shellcheck disable=SC2086
"$cc" -o "$work/consumer-static-pc" "$here/main.c" $flags ||
    { echo "install_consumer: tulip-static build failed (flags: $flags)"; exit 1; }
check "pkg-config tulip-static" "$work/consumer-static-pc"
! needs_libtulip_so "$work/consumer-static-pc" ||
    { echo "install_consumer: tulip-static: the binary still needs libtulip.so"; exit 1; }

flags=$(pkg-config --static --cflags --libs tulip-static)
# shellcheck disable=SC2086
"$cc" -static -o "$work/consumer-all-static" "$here/main.c" $flags ||
    { echo "install_consumer: cc -static build failed (flags: $flags)"; exit 1; }
check "cc -static" "$work/consumer-all-static"
readelf -d "$work/consumer-all-static" | grep -q NEEDED &&
    { echo "install_consumer: cc -static: the binary needs shared libraries"; exit 1; }

"$cmake" -S "$here/../guide" -B "$work/guide" -DCMAKE_C_COMPILER="$cc" \
    -DCMAKE_PREFIX_PATH="$prefix" >"$work/guide.log" 2>&1 &&
"$cmake" --build "$work/guide" >>"$work/guide.log" 2>&1 || {
    cat "$work/guide.log"; echo "install_consumer: the guide's hello world did not build"; exit 1; }
out=$("$work/guide/hello") || { echo "install_consumer: guide hello: exit status $?"; exit 1; }
[ "$out" = "hello, world
hello, tulip" ] || { echo "install_consumer: guide hello printed '$out'"; exit 1; }
echo "install_consumer: the guide's hello world: ok"

# Each integration this build made (libtulip-pg, -curl, -tls): its
# header, its pkg-config file (Requires: tulip <library>), a program
# linked with it that way, the same program linked through
# find_package(tulip COMPONENTS ...) (shared and static); and the core
# still links none of the libraries.
components=""
for it in pg:libpq curl:libcurl tls:libssl; do
    name=${it%%:*} lib=${it#*:}
    if [ ! -e "$prefix/$libdir/pkgconfig/tulip-$name.pc" ]; then
        echo "install_consumer: no tulip-$name.pc (libtulip-$name not built): skipped"
        continue
    fi
    components="$components${components:+;}$name"
    [ -e "$prefix/include/tulip/$name.h" ] ||
        { echo "install_consumer: tulip/$name.h not installed"; exit 1; }
    [ -e "$prefix/$libdir/cmake/tulip/tulipComponent-$name.cmake" ] ||
        { echo "install_consumer: no CMake component file for $name"; exit 1; }
    flags=$(pkg-config --cflags --libs "tulip-$name") ||
        { echo "install_consumer: pkg-config tulip-$name failed"; exit 1; }
    # shellcheck disable=SC2086
    "$cc" -o "$work/consumer-$name" "$here/$name.c" $flags -Wl,-rpath,"$prefix/$libdir" ||
        { echo "install_consumer: tulip-$name build failed (flags: $flags)"; exit 1; }
    check "pkg-config tulip-$name" "$work/consumer-$name"
    if readelf -d "$prefix/$libdir"/libtulip.so | grep -q "NEEDED.*$lib"; then
        echo "install_consumer: libtulip.so links $lib"; exit 1
    fi
done
if [ -n "$components" ]; then
    for kind in shared static; do
        static=OFF; [ $kind = static ] && static=ON
        "$cmake" -S "$here" -B "$work/cmake-int-$kind" -DCMAKE_C_COMPILER="$cc" \
            -DCMAKE_PREFIX_PATH="$prefix" -DTULIP_CONSUMER_STATIC=$static \
            -DTULIP_CONSUMER_COMPONENTS="$components" \
            >"$work/cmake-int-$kind.log" 2>&1 &&
        "$cmake" --build "$work/cmake-int-$kind" >>"$work/cmake-int-$kind.log" 2>&1 || {
            cat "$work/cmake-int-$kind.log"
            echo "install_consumer: find_package(tulip COMPONENTS $components) ($kind) build failed"
            exit 1; }
        for name in $(echo "$components" | tr ';' ' '); do
            check "find_package component $name ($kind)" "$work/cmake-int-$kind/consumer_$name"
        done
    done
fi
# A component that was not built is reported, not silently empty.
"$cmake" -S "$here" -B "$work/cmake-nocomp" -DCMAKE_C_COMPILER="$cc" \
    -DCMAKE_PREFIX_PATH="$prefix" -DTULIP_CONSUMER_COMPONENTS=nosuch \
    >"$work/cmake-nocomp.log" 2>&1 &&
    { cat "$work/cmake-nocomp.log"; echo "install_consumer: COMPONENTS nosuch was found"; exit 1; }
grep -q "nosuch was not built" "$work/cmake-nocomp.log" ||
    { cat "$work/cmake-nocomp.log"; echo "install_consumer: COMPONENTS nosuch: no clear message"; exit 1; }
echo "install_consumer: find_package(tulip COMPONENTS nosuch) fails clearly: ok"

# man tl_spawn: the page itself, a second name of it (a .so page), tulip(7).
if command -v man >/dev/null 2>&1; then
    for page in "3 tl_spawn" "3 tl_spawn_ex" "7 tulip"; do
        # shellcheck disable=SC2086 # "section name"
        out=$(MANPAGER=cat MANWIDTH=100 man -M "$prefix/$mandir" $page 2>&1) ||
            { echo "$out"; echo "install_consumer: man $page failed"; exit 1; }
        case $page in
        *tl_spawn*) want="int tl_spawn_ex(tl_task" ;;
        *) want="asyncio for C" ;;
        esac
        case $out in
        *"$want"*) echo "install_consumer: man $page: ok" ;;
        *) echo "$out" | head -20
           echo "install_consumer: man $page: no '$want' in the page"; exit 1 ;;
        esac
    done
else
    echo "install_consumer: man is not installed: the pages' files were checked"
fi
echo "install_consumer: all ok"
