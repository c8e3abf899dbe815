#!/usr/bin/env bash
# Benchmarks, tulip beside its peers, in one run.
#
#   usage: tools/bench.sh [SLEEPERS]     (default 1000000)
#          tools/bench.sh --table        the table of the last run again
#
# Builds tulip's bench programs (make build-bench: build/bench), runs
# bench_switch, bench_core and every other bench/*.c program (their
# figures have no peer column), then every peer in bench/peers/ whose
# toolchain is installed (scripts/install-bench-deps.sh installs them all),
# skipping the missing ones with a note:
#   asyncio   python3 bench/peers/asyncio_peer.py
#   go        go build bench/peers/go_peer.go   (GOMAXPROCS=1)
#   libuv     cc bench/peers/uv_peer.c $(pkg-config --cflags --libs libuv)
# Every program prints "key: value unit  (what)" lines with the same keys;
# the table puts each peer's figure beside tulip's with the ratio
# peer / tulip (every figure is "lower is better", so a ratio above 1 means
# tulip is faster or leaner). The raw output of each program is kept in
# build/bench/results/. Benchmarks never gate CI.
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 2
sleepers=${1:-1000000}
out=build/bench/results
peers_bin=build/bench/peers
table_only=0
if [ "$sleepers" = --table ]; then
    table_only=1
    [ -r "$out/tulip.txt" ] || { echo "bench: no results in $out yet" >&2; exit 1; }
fi
notes=()
if [ $table_only -eq 0 ]; then

load_at_start=$(cut -d' ' -f1-3 /proc/loadavg)
mkdir -p build
echo "bench: building tulip's bench programs (make build-bench)"
if ! make -s build-bench >build/bench-build.log 2>&1; then
    cat build/bench-build.log
    echo "bench: the build failed"
    exit 1
fi
mkdir -p "$out" "$peers_bin"
rm -f "$out"/*.txt

run() { # name command... : run, keep the output, show it
    local name=$1
    shift
    echo "bench: running $name"
    if "$@" >"$out/$name.txt" 2>"$out/$name.err"; then
        sed 's/^/  /' "$out/$name.txt"
    else
        echo "  $name failed (exit $?); see $out/$name.err"
        sed 's/^/  /' "$out/$name.err" | tail -n 5
    fi
}

# tulip's own programs: bench_switch and bench_core first, then every
# other bench/*.c program (tulip-only figures: primitives, generators,
# the thread pool), each as "tulip-<name>".
run switch build/bench/bench/bench_switch
run tulip build/bench/bench/bench_core "$sleepers"
for b in build/bench/bench/*; do
    name=${b##*/}
    case $name in bench_switch|bench_core) continue ;; esac
    [ -f "$b" ] && [ -x "$b" ] || continue
    run "tulip-${name#bench_}" "$b"
done

if command -v python3 >/dev/null 2>&1; then
    run asyncio python3 bench/peers/asyncio_peer.py "$sleepers"
    notes+=("asyncio: $(python3 --version 2>&1)")
else
    notes+=("asyncio: skipped (python3 not installed)")
fi

if command -v go >/dev/null 2>&1; then
    if go build -o "$peers_bin/go_peer" bench/peers/go_peer.go \
        2>"$out/go-build.err"; then
        run go "$peers_bin/go_peer" "$sleepers"
        notes+=("go: $(go version | awk '{print $3}'), GOMAXPROCS=${GOMAXPROCS:-1}")
    else
        notes+=("go: skipped (build failed, see $out/go-build.err)")
    fi
else
    notes+=("go: skipped (go not installed; scripts/install-bench-deps.sh)")
fi

if pkg-config --exists libuv 2>/dev/null; then
    # shellcheck disable=SC2046 # pkg-config output is a list of flags
    if cc -O2 -o "$peers_bin/uv_peer" bench/peers/uv_peer.c \
        $(pkg-config --cflags --libs libuv) 2>"$out/uv-build.err"; then
        run libuv "$peers_bin/uv_peer" "$sleepers"
        notes+=("libuv: $(pkg-config --modversion libuv)")
    else
        notes+=("libuv: skipped (build failed, see $out/uv-build.err)")
    fi
else
    notes+=("libuv: skipped (libuv1-dev not installed; scripts/install-bench-deps.sh)")
fi

printf '%s\n' "${notes[@]}" >"$out/peers.txt"
cpu=$(awk -F': *' '/^model name/ {print $2; exit}' /proc/cpuinfo)
echo "date: $(date -u +%Y-%m-%d), machine: ${cpu:-unknown CPU}, $(nproc) CPU(s), $(uname -sr), $(awk '/MemTotal/ {printf "%.0f GiB RAM", $2/1048576}' /proc/meminfo), load average $load_at_start before the run" >"$out/machine.txt"
fi

# ---- the table -----------------------------------------------------------
echo
cat "$out/machine.txt"
echo "peers: $(paste -sd ';' "$out/peers.txt" | sed 's/;/; /g')"
echo "ratio = peer / tulip (lower is better for every figure: > 1 means tulip is faster or leaner)"
echo
extra=$(cd "$out" && ls tulip-*.txt 2>/dev/null | sed 's/\.txt$//' | tr '\n' ' ')
awk -v dir="$out" -v extra="$extra" '
function parse(file, tag,   line, key, rest, val, unit, what) {
    while ((getline line < file) > 0) {
        if (line !~ /^[^:]+: [0-9.]+ [^ ]+/) continue
        key = line; sub(/:.*/, "", key)
        rest = line; sub(/^[^:]+: /, "", rest)
        val = rest; sub(/ .*/, "", val)
        unit = rest; sub(/^[^ ]+ /, "", unit); sub(/ .*/, "", unit)
        what = ""
        if (match(rest, /\(.*\)$/)) what = substr(rest, RSTART + 1, RLENGTH - 2)
        V[tag, key] = val; U[tag, key] = unit
        if (!((key) in seen)) { seen[key] = 1; order[++n] = key; desc[key] = what }
        if (tag !~ /^(asyncio|go|libuv)$/ && !(key in own)) own[key] = tag
    }
    close(file)
}
BEGIN {
    parse(dir "/switch.txt", "switch")
    parse(dir "/tulip.txt", "tulip")
    nx = split(extra, xs, " ")
    for (i = 1; i <= nx; i++) parse(dir "/" xs[i] ".txt", xs[i])
    np = split("asyncio go libuv", peers, " ")
    for (i = 1; i <= np; i++) parse(dir "/" peers[i] ".txt", peers[i])
    print "| figure | tulip | peer | ratio |"
    print "|---|---|---|---|"
    for (k = 1; k <= n; k++) {
        key = order[k]
        if (!(key in own)) continue
        t = own[key]
        label = desc[key] != "" ? desc[key] " [" key "]" : key
        mine = V[t, key] " " U[t, key]
        shown = 0
        for (i = 1; i <= np; i++) {
            p = peers[i]
            if (!((p, key) in V)) continue
            r = "-"
            if (V[t, key] > 0) {
                x = V[p, key] / V[t, key]
                r = sprintf(x >= 10 ? "%.0fx" : x >= 1 ? "%.1fx" : "%.2fx", x)
            }
            printf "| %s | %s | %s: %s %s | %s |\n", shown ? "" : label, shown ? "" : mine, p, V[p, key], U[p, key], r
            shown = 1
        }
        if (!shown) printf "| %s | %s | - | - |\n", label, mine
    }
}'
