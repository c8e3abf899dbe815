#!/usr/bin/env bash
# tulip beside its peers: the same scenarios, the same N, each runtime's
# idiomatic code, one table and one chart.
#
#   usage: tools/bench.sh [--quick] [--reps N] [--peers a,b] [--runs a,b]
#                         [--timeout S] [--micro]
#          tools/bench.sh --table     the table and chart of the last run
#
#   --quick     smaller N everywhere (a smoke check: about a minute)
#   --reps N    runs of each figure (default 3, or $BENCH_REPS); the table
#               shows the median and the spread (min-max)
#   --peers     only these columns (tulip is always run), e.g. --peers go
#   --runs      only these runs (names in RUNS below)
#   --timeout S seconds one run may take before it is killed (default 300,
#               or $BENCH_TIMEOUT)
#   --micro     afterwards also run tulip's own micro benchmarks (every
#               other bench/*.c program) and print their output
#   --cold      no warm-up runs (below)
#
# Every run is a fresh process (so every task stack is fresh), bounded by
# `timeout`. Each measured run follows an unmeasured run of the same
# program and scenario (a warm-up; --cold leaves it out), so no figure
# depends on which program ran before it: on a VM the first touch of
# memory the host has not backed yet costs several microseconds per 4 KiB,
# and it falls on whichever program next takes memory in a shape the one
# before did not leave (tulip's task table in 2 MiB pages after a peer's
# 4 KiB heap pages, for one). Memory is still fresh to every measured
# process: each of its pages faults in once. The raw output of each is
# kept in build/bench/results/, the table in build/bench/table.md, the
# chart in build/bench/bench.png (gnuplot). scripts/install-bench-deps.sh
# installs every peer's toolchain; a peer whose toolchain is missing is
# skipped with a note. Benchmarks never gate CI: nothing in the test
# suite runs them.
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 2

# ---- what is measured: the one place to add a scenario or a peer ----------
#
# RUNS: one process per peer and repetition.
#   name | scenario (argument every program takes) | N | N with --quick
RUNS=(
    "spawn|spawn|1000000|100000"
    "pingpong|pingpong|1000000|100000"
    "yield|yield|2000000|200000"
    "sleep100k|sleep|100000|10000"
    "sleep1m|sleep|1000000|100000"
    "sem|sem|100000|10000"
)
# FIGURES: the table's rows, in order.
#   name | run | key the program prints ("key: value unit") | unit |
#   lower or higher (is better) | label ({N}: the run's N; {IDEAL}: N/100
#   rounds of 1 ms, the semaphore's ideal wall time)
FIGURES=(
    "spawn|spawn|spawn|ns/task|lower|spawn {N} tasks that all exist before any runs, then wait for all"
    "pingpong|pingpong|pingpong|ns/switch|lower|ping-pong through a 1-slot queue ({N} round trips)"
    "sleep100k|sleep100k|sleep_wall|s|lower|{N} tasks sleeping 1 s at once: wall"
    "sleep1m|sleep1m|sleep_wall|s|lower|{N} tasks sleeping 1 s at once: wall"
    "rss1m|sleep1m|sleep_rss|B/task|lower|resident bytes per sleeping task ({N} asleep)"
    "sem|sem|sem_wall|s|lower|{N} tasks through a 100-permit semaphore, 1 ms each (ideal {IDEAL} s): wall"
    "yield|yield|yield|ns/yield|lower|a lone task's yield"
)
# PEERS: the table's columns, tulip first. Each has build_<name> (below),
# which sets the command (cmd=(...)), the column label (label=...), the
# chart's short label (short=...) and a version note (version=...), or
# returns non-zero with a note (why=...) to skip the peer.
PEERS=(tulip go tokio node libuv asyncio)

GO_THREADS=${BENCH_GO_THREADS:-2} # the issue's table: Go on the machine's 2 cores

out=build/bench
res=$out/results
bin=$out/peers

build_tulip() {
    label="tulip" short="tulip"
    if ! make -s build-bench >"$res/build-tulip.log" 2>&1; then
        why="build failed, see $res/build-tulip.log"
        return 1
    fi
    cmd=(env TULIP_BLOCKING_MS=0 "$out/bench/bench_core")
    version="tulip $(git describe --always --dirty 2>/dev/null || echo '?'), release build (-O2), $(uname -m)"
}

build_go() {
    command -v go >/dev/null 2>&1 || { why="go not installed"; return 1; }
    if ! timeout 600 go build -o "$bin/go_peer" bench/peers/go_peer.go \
        >"$res/build-go.log" 2>&1; then
        why="build failed, see $res/build-go.log"
        return 1
    fi
    cmd=(env GOMAXPROCS="$GO_THREADS" "$bin/go_peer")
    label="Go ($GO_THREADS threads)" short="Go"
    version="$(go version | awk '{print $3}') with GOMAXPROCS=$GO_THREADS"
}

build_tokio() {
    command -v cargo >/dev/null 2>&1 || { why="cargo not installed"; return 1; }
    local reg=/usr/share/cargo/registry
    ls -d "$reg"/tokio-1.* >/dev/null 2>&1 || { why="librust-tokio-dev not installed"; return 1; }
    # Built from a copy, so the Cargo.lock that cargo writes stays out of
    # the source tree; offline, with crates-io replaced by Debian's crates.
    rm -rf "$bin/tokio_peer-src"
    cp -r bench/peers/tokio_peer "$bin/tokio_peer-src"
    if ! timeout 600 cargo --offline \
        --config 'source.crates-io.replace-with="debian"' \
        --config "source.debian.directory=\"$reg\"" \
        build --release --quiet \
        --manifest-path "$bin/tokio_peer-src/Cargo.toml" \
        --target-dir "$bin/tokio-target" >"$res/build-tokio.log" 2>&1; then
        why="build failed, see $res/build-tokio.log"
        return 1
    fi
    cmd=("$bin/tokio-target/release/tokio_peer")
    label="Tokio current_thread" short="Tokio"
    local tv
    tv=$(awk '/^name = "tokio"$/ {getline; gsub(/[^0-9.]/, ""); print}' \
        "$bin/tokio_peer-src/Cargo.lock" 2>/dev/null)
    version="Tokio ${tv:-?} current_thread, $(rustc --version 2>/dev/null | awk '{print $1, $2}')"
}

build_node() {
    command -v node >/dev/null 2>&1 || { why="node not installed"; return 1; }
    cmd=(node bench/peers/node_peer.js)
    label="Node" short="Node"
    version="Node $(node --version)"
}

build_libuv() {
    pkg-config --exists libuv 2>/dev/null || { why="libuv1-dev not installed"; return 1; }
    # shellcheck disable=SC2046 # pkg-config prints a list of flags
    if ! cc -O2 -o "$bin/uv_peer" bench/peers/uv_peer.c \
        $(pkg-config --cflags --libs libuv) >"$res/build-libuv.log" 2>&1; then
        why="build failed, see $res/build-libuv.log"
        return 1
    fi
    cmd=("$bin/uv_peer")
    label="libuv (callbacks)" short="libuv"
    version="libuv $(pkg-config --modversion libuv) (callbacks, not tasks: the nearest shape)"
}

build_asyncio() {
    command -v python3 >/dev/null 2>&1 || { why="python3 not installed"; return 1; }
    python3 -c 'import asyncio; asyncio.TaskGroup' 2>/dev/null ||
        { why="python3 older than 3.11 (no asyncio.TaskGroup)"; return 1; }
    cmd=(python3 bench/peers/asyncio_peer.py)
    label="asyncio" short="asyncio"
    version="$(python3 --version) asyncio"
}

# ---- options ----------------------------------------------------------------
quick=0
reps=${BENCH_REPS:-3}
limit=${BENCH_TIMEOUT:-300}
only_peers=""
only_runs=""
micro=0
warm=1
table_only=0
die() { echo "bench: $*" >&2; exit 2; }
while [ $# -gt 0 ]; do
    case $1 in
        --quick) quick=1 ;;
        --reps) reps=${2:-}; shift ;;
        --timeout) limit=${2:-}; shift ;;
        --peers) only_peers=${2:-}; shift ;;
        --runs) only_runs=${2:-}; shift ;;
        --micro) micro=1 ;;
        --cold) warm=0 ;;
        --table) table_only=1 ;;
        -h|--help) sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option '$1' (see --help)" ;;
    esac
    shift
done
[[ $reps =~ ^[1-9][0-9]*$ ]] || die "--reps wants a positive count"
[[ $limit =~ ^[1-9][0-9]*$ ]] || die "--timeout wants seconds"

field() { # field "a|b|c" 2 -> b
    local IFS='|'
    # shellcheck disable=SC2206 # split on | on purpose
    local parts=($1)
    printf '%s' "${parts[$2 - 1]}"
}
in_list() { [ -z "$2" ] || [[ ",$2," == *",$1,"* ]]; }
loadavg() { cut -d' ' -f1 /proc/loadavg; }
mmss() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }

# ---- run --------------------------------------------------------------------
if [ $table_only -eq 0 ]; then
    mkdir -p "$res" "$bin"
    rm -f "$res"/*.out "$res"/*.err "$res"/*.warm "$res"/*.tsv
    start=$(date +%s)
    load_start=$(cut -d' ' -f1-3 /proc/loadavg)

    # Build every peer; keep the ones that built.
    : >"$res/peers.tsv"
    used=()
    for p in "${PEERS[@]}"; do
        [ "$p" = tulip ] || in_list "$p" "$only_peers" || continue
        printf 'bench: building %s...\n' "$p"
        cmd=() label=$p short=$p why="" version=""
        if "build_$p"; then
            used+=("$p")
            printf '%s\t%s\t%s\t%s\t%s\n' "$p" "$label" "$version" "${cmd[*]}" "$short" >>"$res/peers.tsv"
        else
            echo "bench: skipping $p: $why (scripts/install-bench-deps.sh)"
            printf '%s\t%s\t%s\t\t%s\n' "$p" "$label" "skipped: $why" "$short" >>"$res/peers.tsv"
        fi
    done
    [[ " ${used[*]} " == *" tulip "* ]] || die "tulip's bench programs did not build"

    runs=()
    for r in "${RUNS[@]}"; do
        in_list "$(field "$r" 1)" "$only_runs" && runs+=("$r")
    done
    [ ${#runs[@]} -gt 0 ] || die "no run matches --runs $only_runs"
    : >"$res/runs.tsv"
    for r in "${runs[@]}"; do
        n=$(field "$r" 3)
        [ $quick -eq 1 ] && n=$(field "$r" 4)
        printf '%s\t%s\n' "$(field "$r" 1)" "$n" >>"$res/runs.tsv"
    done

    total=$((reps * ${#runs[@]} * ${#used[@]}))
    i=0
    failures=0
    # Ctrl-C (or SIGTERM) ends the run after the current process and still
    # prints the table of what was measured.
    stop=0
    trap 'stop=1' INT TERM
    loads=()
    tty=0
    [ -t 1 ] && tty=1
    # Repetitions outermost, so a burst of load from elsewhere on a shared
    # machine spreads over every column rather than landing on one.
    for ((rep = 1; rep <= reps; rep++)); do
        for r in "${runs[@]}"; do
            name=$(field "$r" 1)
            scenario=$(field "$r" 2)
            n=$(awk -F'\t' -v r="$name" '$1 == r {print $2}' "$res/runs.tsv")
            for p in "${used[@]}"; do
                [ $stop -eq 1 ] && break 3
                i=$((i + 1))
                l=$(loadavg)
                loads+=("$l")
                line=$(printf 'bench: [%3d/%d] rep %d/%d  %-9s %-8s N=%-8s %s elapsed, load %s' \
                    "$i" "$total" "$rep" "$reps" "$name" "$p" "$n" \
                    "$(mmss $(($(date +%s) - start)))" "$l")
                if [ $tty -eq 1 ]; then printf '\r\033[K%s' "$line"; else echo "$line"; fi
                IFS=$'\t' read -r -a cmd < <(awk -F'\t' -v p="$p" '$1 == p {print $4}' "$res/peers.tsv" | tr ' ' '\t')
                base="$res/$name.$p.$rep"
                [ $warm -eq 1 ] &&
                    timeout -k 5 "$limit" "${cmd[@]}" "$scenario" "$n" >"$base.warm" 2>&1
                timeout -k 5 "$limit" "${cmd[@]}" "$scenario" "$n" >"$base.out" 2>"$base.err"
                rc=$?
                if [ $rc -ne 0 ]; then
                    failures=$((failures + 1))
                    [ $rc -eq 124 ] && echo "timed out after ${limit} s" >>"$base.err"
                    [ $tty -eq 1 ] && printf '\n'
                    echo "bench: $name on $p failed (exit $rc): $(tail -n 1 "$base.err")"
                    rm -f "$base.out"
                fi
            done
        done
    done
    [ $tty -eq 1 ] && printf '\r\033[K'
    trap - INT TERM
    done_runs=$i
    [ $stop -eq 1 ] &&
        echo "bench: interrupted: the table covers the $done_runs run(s) that finished"
    elapsed=$(($(date +%s) - start))
    load_end=$(cut -d' ' -f1-3 /proc/loadavg)
    lo=$(printf '%s\n' "${loads[@]}" | sort -g | head -n1)
    hi=$(printf '%s\n' "${loads[@]}" | sort -g | tail -n1)
    cpu=$(awk -F': *' '/^model name/ {print $2; exit}' /proc/cpuinfo)
    {
        echo "date: $(date -u '+%Y-%m-%d %H:%M UTC'), $(mmss $elapsed) for $reps rep(s)$([ $stop -eq 1 ] && echo " (interrupted after $done_runs of $total runs)")$([ $quick -eq 1 ] && echo ', quick mode (small N)')$([ $failures -gt 0 ] && echo ", $failures failed run(s)")"
        echo "machine: ${cpu:-unknown CPU}, $(nproc) CPU(s), $(uname -sr), $(awk '/MemTotal/ {printf "%.0f GiB RAM", $2/1048576}' /proc/meminfo)"
        echo "load average (1 min): $load_start at the start, $lo-$hi at the start of each run, $load_end at the end"
        if [ $warm -eq 1 ]; then
            echo "warm-up: each measured run followed an unmeasured run of the same program and scenario"
        else
            echo "warm-up: none (--cold): a run may pay the host's fresh memory left by the program before it"
        fi
    } >"$res/machine.txt"
    echo "tulip beside its peers, $(date -u '+%Y-%m-%d'), load average $lo-$hi: median of $reps run(s), whiskers min-max, log scale" >"$res/chart-title.txt"
fi

[ -r "$res/machine.txt" ] || die "no results in $res yet"

# ---- the table ----------------------------------------------------------------
printf '%s\n' "${FIGURES[@]}" >"$res/figures.txt"
awk -v res="$res" -v summary="$res/summary.tsv" -f tools/bench-table.awk \
    "$res/peers.tsv" "$res/runs.tsv" "$res/figures.txt" >"$out/table.md"

echo
cat "$res/machine.txt"
awk -F'\t' '{printf "%s: %s\n", $2, $3}' "$res/peers.tsv"
echo "each cell: median of the runs (min-max); tulip/best < 1 means tulip wins a lower-is-better row, > 1 a higher-is-better one"
echo
cat "$out/table.md"
# Programs flag a run whose shape did not hold ("note: ..."): say which.
notes=$(cd "$res" && grep -H '^note: ' -- *.out 2>/dev/null |
    sed -E 's/^([^.]+)\.([^.]+)\.([0-9]+)\.out:note: /  \1, \2, run \3: /')
if [ -n "$notes" ]; then
    echo
    echo "notes:"
    printf '%s\n' "$notes"
fi

# ---- the chart ------------------------------------------------------------------
if ! command -v gnuplot >/dev/null 2>&1; then
    echo
    echo "bench: no chart (gnuplot not installed; scripts/install-bench-deps.sh)"
elif [ -s "$res/summary.tsv" ]; then
    plot="$res/chart.gp"
    nfig=$(cut -f1 "$res/summary.tsv" | uniq | wc -l)
    cols=4
    rows=$(((nfig + cols - 1) / cols))
    {
        echo "set terminal pngcairo size $((cols * 420)),$((rows * 400 + 40)) font 'sans,10'"
        echo "set output '$out/bench.png'"
        echo "set multiplot layout $rows,$cols title \"$(sed 's/"//g' "$res/chart-title.txt")\" noenhanced font 'sans,12'"
        echo "set style fill solid 0.85 border -1"
        echo "set boxwidth 0.7"
        echo "set logscale y"
        echo "set grid ytics"
        echo "set xtics nomirror noenhanced font 'sans,10'"
        echo "set ytics nomirror"
        echo "set format y '%g'"
        echo "unset key"
        echo "set bmargin 3"
        k=0
        for fg in $(cut -f1 "$res/summary.tsv" | uniq); do
            dat="$res/chart-$fg.dat"
            awk -F'\t' -v f="$fg" '
                BEGIN { c["tulip"] = "0xd62728"; c["go"] = "0x1f77b4"; c["tokio"] = "0xff7f0e"
                        c["node"] = "0x2ca02c"; c["libuv"] = "0x9467bd"; c["asyncio"] = "0x8c564b" }
                $1 == f { i++; lab = $8
                          v = $4 >= 100 ? sprintf("%.0f", $4) : $4 >= 10 ? sprintf("%.1f", $4) : sprintf("%.2f", $4)
                          printf "%d\t\"%s\"\t%s\t%s\t%s\t%s\t\"%s\"\n", i, lab, $4, $5, $6, ($2 in c) ? c[$2] : "0x7f7f7f", v }' \
                "$res/summary.tsv" >"$dat"
            meta=$(awk -F'\t' -v f="$fg" '$1 == f {print $7; exit}' "$res/summary.tsv")
            unit=${meta%%|*}
            rest=${meta#*|}
            better=${rest%%|*}
            title=${rest#*|}
            title=$(printf '%s' "$title" | sed 's/"//g' | fold -s -w 46 | awk '{sub(/ +$/, ""); printf "%s%s", (NR > 1) ? "\\n" : "", $0}')
            lo=$(awk -F'\t' 'NR == 1 || $4 < m {m = $4} END {print m / 4}' "$dat")
            hi=$(awk -F'\t' 'NR == 1 || $5 > m {m = $5} END {print m * 4}' "$dat")
            printf '%s\n' "set title \"$title\\n($unit, $better is better)\" noenhanced font 'sans,10'"
            echo "set yrange [$lo:$hi]"
            echo "set xrange [0.4:$(awk 'END {print NR + 0.6}' "$dat")]"
            echo "plot '$dat' using 1:3:6:xtic(2) with boxes lc rgb variable, '' using 1:3:4:5 with yerrorbars lc rgb 'black' pt -1, '' using 1:(\$5*1.25):7 with labels font 'sans,8'"
            k=$((k + 1))
        done
        if [ $k -lt $((rows * cols)) ]; then # a free panel: what ran
            notes=$(awk -F'\t' '$4 != "" {gsub(/"/, "", $3); printf "%s%s: %s", (NR > 1) ? "\\n" : "", $5, $3}' "$res/peers.tsv" |
                sed 's/ (callbacks, not tasks: the nearest shape)/,\\n  callbacks: the nearest shape/')
            echo "unset title; unset border; unset xtics; unset ytics; unset grid; unset logscale y"
            echo "set xrange [0:1]; set yrange [0:1]"
            echo "set label 1 \"$notes\" at graph 0.02,0.9 left noenhanced font 'sans,9'"
            echo "plot NaN notitle"
        fi
        echo "unset multiplot"
    } >"$plot"
    if gnuplot "$plot" 2>"$res/chart.err"; then
        echo
        echo "chart: $out/bench.png"
    else
        echo "bench: gnuplot failed, see $res/chart.err"
    fi
fi

# ---- tulip's own micro benchmarks -----------------------------------------------
if [ $micro -eq 1 ] && [ $table_only -eq 0 ]; then
    for b in "$out"/bench/*; do
        nm=${b##*/}
        [ "$nm" = bench_core ] && continue
        [ -f "$b" ] && [ -x "$b" ] || continue
        echo
        echo "=== $nm (tulip only) ==="
        timeout -k 5 "$limit" "$b" || echo "bench: $nm failed (exit $?)"
    done
fi
[ "${failures:-0}" -eq 0 ]
