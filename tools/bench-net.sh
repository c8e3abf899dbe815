#!/usr/bin/env bash
# tulip's servers beside its peers': TCP echo and an HTTP/1.1 keep-alive
# hello world, each server pinned to one CPU and the load generator to the
# other, on loopback; one table of ratios from one run.
#
#   usage: tools/bench-net.sh [--reps N] [--secs S] [--peers a,b] [--runs a,b]
#          tools/bench-net.sh --table     the table of the last run
#
#   --reps N    runs of each figure (default 3, or $BENCH_REPS); the table
#               shows the median and the spread (min-max)
#   --secs S    seconds each load runs (default 3)
#   --peers     only these columns (tulip is always run), e.g. --peers libuv
#   --runs      only these runs: echo, http
#
# echo: bench/net/echo_load (C, epoll, one thread) keeps one 64-byte
# message in flight on each of 64 connections for S seconds after 0.5 s of
# warm-up, and reads the server's CPU time (/proc/PID/stat utime + stime,
# all threads) when its counted window opens and closes: messages/s and
# server CPU per message. http: `wrk -c64 -t1 -dSs` after a 1 s warm-up
# run, the server's CPU time read before and after: requests/s and
# requests per server-CPU-second; a run with any error (non-2xx, socket
# errors) is reported under the table. tulip's servers are
# examples/echo_server and examples/http_server, as shipped.
#
# Each server is a fresh process started for one run and stopped by its
# PID; every load is bounded (S seconds, `timeout`). Results are kept in
# build/bench-net/results/, the table in build/bench-net/table.md.
# scripts/install-bench-deps.sh installs the peers and wrk; a peer whose
# toolchain is missing is skipped with a note. Never part of the tests.
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 2

# ---- what is measured -------------------------------------------------------
# RUNS: name (also the mode every server takes) | label
RUNS=(
    "echo|TCP echo, 64 connections, one 64-byte message in flight on each"
    "http|HTTP/1.1 keep-alive hello world, wrk -c64 -t1"
)
# FIGURES: name | run | key | unit | lower or higher (is better) | label
FIGURES=(
    "echo_rate|echo|echo_rate|msg/s|higher|TCP echo (64 connections, 64-byte messages): messages per second"
    "echo_cpu|echo|echo_cpu|ns/msg|lower|TCP echo: server CPU per message"
    "http_rate|http|http_rate|req/s|higher|HTTP/1.1 keep-alive hello world (wrk -c64 -t1): requests per second"
    "http_cpu|http|http_per_cpu|req/CPU-s|higher|HTTP hello world: requests per server-CPU-second"
)
# PEERS: the columns, tulip first. build_<name> sets label, version and
# modes (the runs it serves), or returns non-zero with why=...;
# server_<name> MODE PORT sets srv=(command) for one server process.
PEERS=(tulip libuv go tokio node asyncio nginx)

out=build/bench-net
res=$out/results
bin=$out/peers

build_tulip() {
    label="tulip" modes="echo http"
    if ! make -s build-bench >"$res/build-tulip.log" 2>&1; then
        why="build failed, see $res/build-tulip.log"
        return 1
    fi
    local e=build/bench/examples
    [ -x $e/echo_server ] && [ -x $e/http_server ] ||
        { why="examples/echo_server or http_server not built (libhttp-parser-dev missing?)"; return 1; }
    version="tulip $(git describe --always --dirty 2>/dev/null || echo '?'), release build (-O2), backend ${TULIP_BACKEND:-default}"
}
server_tulip() {
    srv=(env TULIP_BLOCKING_MS=0 "build/bench/examples/${1}_server" "$2")
}

build_libuv() {
    pkg-config --exists libuv 2>/dev/null || { why="libuv1-dev not installed"; return 1; }
    [ -r /usr/include/http_parser.h ] || { why="libhttp-parser-dev not installed"; return 1; }
    # shellcheck disable=SC2046 # pkg-config prints a list of flags
    if ! cc -O2 -o "$bin/uv_net_peer" bench/peers/uv_net_peer.c \
        $(pkg-config --cflags --libs libuv) -lhttp_parser >"$res/build-libuv.log" 2>&1; then
        why="build failed, see $res/build-libuv.log"
        return 1
    fi
    label="libuv" modes="echo http"
    version="libuv $(pkg-config --modversion libuv) + http-parser (callbacks)"
}
server_libuv() { srv=("$bin/uv_net_peer" "$1" "$2"); }

build_go() {
    command -v go >/dev/null 2>&1 || { why="go not installed"; return 1; }
    if ! timeout 600 go build -o "$bin/go_net_peer" bench/peers/go_net_peer.go \
        >"$res/build-go.log" 2>&1; then
        why="build failed, see $res/build-go.log"
        return 1
    fi
    label="Go" modes="echo http"
    version="$(go version | awk '{print $3}') net and net/http, GOMAXPROCS from the 1-CPU affinity"
}
server_go() { srv=("$bin/go_net_peer" "$1" "$2"); }

build_tokio() {
    command -v cargo >/dev/null 2>&1 || { why="cargo not installed"; return 1; }
    local reg=/usr/share/cargo/registry
    ls -d "$reg"/tokio-1.* >/dev/null 2>&1 || { why="librust-tokio-dev not installed"; return 1; }
    ls -d "$reg"/hyper-0.14.* >/dev/null 2>&1 || { why="librust-hyper-dev not installed"; return 1; }
    # As tools/bench.sh: built from a copy, offline, crates-io replaced by
    # Debian's crate sources.
    rm -rf "$bin/tokio_net_peer-src"
    cp -r bench/peers/tokio_net_peer "$bin/tokio_net_peer-src"
    if ! timeout 900 cargo --offline \
        --config 'source.crates-io.replace-with="debian"' \
        --config "source.debian.directory=\"$reg\"" \
        build --release --quiet \
        --manifest-path "$bin/tokio_net_peer-src/Cargo.toml" \
        --target-dir "$bin/tokio-target" >"$res/build-tokio.log" 2>&1; then
        why="build failed, see $res/build-tokio.log"
        return 1
    fi
    label="Tokio current_thread" modes="echo http"
    local lock="$bin/tokio_net_peer-src/Cargo.lock" tv hv
    tv=$(awk '/^name = "tokio"$/ {getline; gsub(/[^0-9.]/, ""); print}' "$lock" 2>/dev/null)
    hv=$(awk '/^name = "hyper"$/ {getline; gsub(/[^0-9.]/, ""); print}' "$lock" 2>/dev/null)
    version="Tokio ${tv:-?} current_thread, hyper ${hv:-?} for HTTP, $(rustc --version 2>/dev/null | awk '{print $1, $2}')"
}
server_tokio() { srv=("$bin/tokio-target/release/tokio_net_peer" "$1" "$2"); }

build_node() {
    command -v node >/dev/null 2>&1 || { why="node not installed"; return 1; }
    label="Node" modes="echo http"
    version="Node $(node --version) net and http"
}
server_node() { srv=(node bench/peers/node_net_peer.js "$1" "$2"); }

build_asyncio() {
    command -v python3 >/dev/null 2>&1 || { why="python3 not installed"; return 1; }
    label="asyncio" modes="echo http"
    version="$(python3 --version) asyncio streams (HTTP answered by hand: no stdlib HTTP server)"
}
server_asyncio() { srv=(python3 bench/peers/asyncio_net_peer.py "$1" "$2"); }

build_nginx() {
    local ng
    ng=$(command -v nginx 2>/dev/null || ls /usr/sbin/nginx 2>/dev/null) ||
        { why="nginx not installed (nginx-light)"; return 1; }
    nginx_bin=$ng
    label="nginx" modes="http"
    version="$("$ng" -v 2>&1 | sed 's/.*version: //'), one process, return 200"
}
server_nginx() {
    local dir
    dir=$(cd "$bin" && pwd)/nginx-$2
    rm -rf "$dir" && mkdir -p "$dir"
    sed -e "s|@PORT@|$2|g" -e "s|@DIR@|$dir|g" bench/peers/nginx_peer.conf >"$dir/nginx.conf"
    srv=("${nginx_bin:-nginx}" -p "$dir" -c "$dir/nginx.conf")
}

# ---- options ----------------------------------------------------------------
reps=${BENCH_REPS:-3}
secs=3
only_peers=""
only_runs=""
table_only=0
die() { echo "bench-net: $*" >&2; exit 2; }
while [ $# -gt 0 ]; do
    case $1 in
        --reps) reps=${2:-}; shift ;;
        --secs) secs=${2:-}; shift ;;
        --peers) only_peers=${2:-}; shift ;;
        --runs) only_runs=${2:-}; shift ;;
        --table) table_only=1 ;;
        -h|--help) sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option '$1' (see --help)" ;;
    esac
    shift
done
[[ $reps =~ ^[1-9][0-9]*$ ]] || die "--reps wants a positive count"
[[ $secs =~ ^[1-9][0-9]*$ ]] && [ "$secs" -le 60 ] || die "--secs wants 1..60 seconds"

field() { local IFS='|'; local parts=($1); printf '%s' "${parts[$2 - 1]}"; } # shellcheck disable=SC2206
in_list() { [ -z "$2" ] || [[ ",$2," == *",$1,"* ]]; }
loadavg() { cut -d' ' -f1 /proc/loadavg; }
mmss() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }
# CPU seconds (utime + stime, every thread) of process $1.
proc_cpu() {
    awk -v hz="$(getconf CLK_TCK)" '{sub(/.*\) /, ""); print ($12 + $13) / hz}' "/proc/$1/stat" 2>/dev/null
}
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
# Wait (at most 10 s) until something listens on 127.0.0.1:$1 and process
# $2 is still alive.
wait_listening() {
    local i
    for ((i = 0; i < 200; i++)); do
        kill -0 "$2" 2>/dev/null || return 1
        ss -Hltn "sport = :$1" 2>/dev/null | grep -q . && return 0
        sleep 0.05
    done
    return 1
}
# Stop server $1 (SIGTERM, then SIGKILL after 5 s) and reap it.
stop_server() {
    local i
    kill -TERM "$1" 2>/dev/null
    for ((i = 0; i < 100; i++)); do
        kill -0 "$1" 2>/dev/null || break
        sleep 0.05
    done
    kill -KILL "$1" 2>/dev/null
    wait "$1" 2>/dev/null
}

# ---- run --------------------------------------------------------------------
if [ $table_only -eq 0 ]; then
    mkdir -p "$res" "$bin"
    rm -f "$res"/*.out "$res"/*.err "$res"/*.tsv
    start=$(date +%s)
    load_start=$(cut -d' ' -f1-3 /proc/loadavg)
    ncpu=$(nproc)
    if [ "$ncpu" -ge 2 ]; then
        srv_pin=(taskset -c 1) load_pin=(taskset -c 0)
        pin_note="server on CPU 1, load generator on CPU 0"
    else
        srv_pin=() load_pin=()
        pin_note="one CPU: server and load generator share it"
    fi
    command -v wrk >/dev/null 2>&1 || echo "bench-net: wrk not installed: no http runs (scripts/install-bench-deps.sh)"
    if ! cc -O2 -o "$bin/echo_load" bench/net/echo_load.c >"$res/build-echo_load.log" 2>&1; then
        die "the echo load client did not build, see $res/build-echo_load.log"
    fi

    : >"$res/peers.tsv"
    used=()
    for p in "${PEERS[@]}"; do
        [ "$p" = tulip ] || in_list "$p" "$only_peers" || continue
        printf 'bench-net: building %s...\n' "$p"
        label=$p why="" version="" modes=""
        if "build_$p"; then
            used+=("$p")
            printf '%s\t%s\t%s\t%s\n' "$p" "$label" "$version" "$modes" >>"$res/peers.tsv"
        else
            echo "bench-net: skipping $p: $why (scripts/install-bench-deps.sh)"
        fi
    done
    [ ${#used[@]} -gt 0 ] || die "no server built"

    runs=()
    for r in "${RUNS[@]}"; do
        nm=$(field "$r" 1)
        in_list "$nm" "$only_runs" || continue
        [ "$nm" = http ] && ! command -v wrk >/dev/null 2>&1 && continue
        runs+=("$nm")
    done
    [ ${#runs[@]} -gt 0 ] || die "nothing to run"

    total=0
    for r in "${runs[@]}"; do
        for p in "${used[@]}"; do
            [[ " $(awk -F'\t' -v p="$p" '$1 == p {print $4}' "$res/peers.tsv") " == *" $r "* ]] &&
                total=$((total + reps))
        done
    done
    i=0 failures=0 stop=0 loads=()
    trap 'stop=1' INT TERM
    tty=0
    [ -t 1 ] && tty=1
    for ((rep = 1; rep <= reps; rep++)); do
        for r in "${runs[@]}"; do
            for p in "${used[@]}"; do
                [[ " $(awk -F'\t' -v p="$p" '$1 == p {print $4}' "$res/peers.tsv") " == *" $r "* ]] || continue
                [ $stop -eq 1 ] && break 3
                i=$((i + 1))
                l=$(loadavg)
                loads+=("$l")
                line=$(printf 'bench-net: [%2d/%d] rep %d/%d  %-5s %-8s %s elapsed, load %s' \
                    "$i" "$total" "$rep" "$reps" "$r" "$p" \
                    "$(mmss $(($(date +%s) - start)))" "$l")
                if [ $tty -eq 1 ]; then printf '\r\033[K%s' "$line"; else echo "$line"; fi
                base="$res/$r.$p.$rep"
                port=$(free_port)
                "server_$p" "$r" "$port"
                "${srv_pin[@]}" "${srv[@]}" >"$base.server" 2>&1 </dev/null &
                pid=$!
                rc=0
                if ! wait_listening "$port" "$pid"; then
                    echo "server did not listen on port $port within 10 s" >"$base.err"
                    rc=1
                elif [ "$r" = echo ]; then
                    timeout -k 5 $((secs + 20)) "${load_pin[@]}" "$bin/echo_load" \
                        "$port" 64 64 "$secs" 0.5 "$pid" >"$base.out" 2>"$base.err" || rc=$?
                else
                    url="http://127.0.0.1:$port/"
                    timeout -k 5 20 "${load_pin[@]}" wrk -c64 -t1 -d1s "$url" >"$base.warm" 2>&1
                    c0=$(proc_cpu "$pid")
                    timeout -k 5 $((secs + 20)) "${load_pin[@]}" wrk -c64 -t1 -d"${secs}s" "$url" \
                        >"$base.wrk" 2>"$base.err" || rc=$?
                    c1=$(proc_cpu "$pid")
                    if [ $rc -eq 0 ]; then
                        awk -v c0="$c0" -v c1="$c1" '
                            / requests in / { n = $1 }
                            /^Requests\/sec:/ { rate = $2 }
                            /Non-2xx or 3xx responses:/ { err += $NF }
                            /Socket errors:/ { gsub(/,/, ""); err += $4 + $6 + $8 + $10 }
                            END {
                                if (n == "" || rate == "") exit 1
                                cpu = c1 - c0
                                printf "http_requests: %d\nhttp_rate: %s req/s\nserver_cpu: %.2f s\n", n, rate, cpu
                                if (cpu > 0) printf "http_per_cpu: %.0f req/CPU-s\n", n / cpu
                                printf "http_errors: %d\n", err
                                if (err > 0) printf "note: %d errors (non-2xx or socket errors)\n", err
                            }' "$base.wrk" >"$base.out" || { rc=1; echo "no figures in wrk's output" >>"$base.err"; }
                    fi
                fi
                kill -0 "$pid" 2>/dev/null || { rc=1; echo "the server died during the run" >>"$base.err"; }
                stop_server "$pid"
                if [ $rc -ne 0 ]; then
                    failures=$((failures + 1))
                    [ $tty -eq 1 ] && printf '\n'
                    echo "bench-net: $r on $p failed (exit $rc): $(tail -n 1 "$base.err" 2>/dev/null) $(tail -n 1 "$base.server" 2>/dev/null)"
                    rm -f "$base.out"
                fi
            done
        done
    done
    [ $tty -eq 1 ] && printf '\r\033[K'
    trap - INT TERM
    [ $stop -eq 1 ] && echo "bench-net: interrupted: the table covers the $i run(s) started"
    elapsed=$(($(date +%s) - start))
    load_end=$(cut -d' ' -f1-3 /proc/loadavg)
    lo=$(printf '%s\n' "${loads[@]}" | sort -g | head -n1)
    hi=$(printf '%s\n' "${loads[@]}" | sort -g | tail -n1)
    cpu=$(awk -F': *' '/^model name/ {print $2; exit}' /proc/cpuinfo)
    {
        echo "date: $(date -u '+%Y-%m-%d %H:%M UTC'), $(mmss "$elapsed") for $reps rep(s) of ${secs} s loads$([ "$failures" -gt 0 ] && echo ", $failures failed run(s)")"
        echo "machine: ${cpu:-unknown CPU}, $ncpu CPU(s), $(uname -sr); $pin_note"
        echo "load average (1 min): $load_start at the start, $lo-$hi at the start of each run, $load_end at the end"
        echo "load generators: bench/net/echo_load (C, epoll), $(wrk -v 2>&1 | head -n1 | awk '{print $1, $2}')"
    } >"$res/machine.txt"
    printf '%s\n' "${runs[@]}" >"$res/runs.txt"
fi

[ -r "$res/machine.txt" ] || die "no results in $res yet"

# ---- the table (tools/bench-table.awk, shared with tools/bench.sh) ----------
printf '%s\n' "${FIGURES[@]}" >"$res/figures.txt"
awk -v res="$res" -f tools/bench-table.awk \
    "$res/peers.tsv" "$res/runs.txt" "$res/figures.txt" >"$out/table.md"

echo
cat "$res/machine.txt"
awk -F'\t' '{printf "%s: %s\n", $2, $3}' "$res/peers.tsv"
echo "each cell: median of the runs (min-max); tulip/best < 1 means tulip wins a lower-is-better row, > 1 a higher-is-better one"
echo
cat "$out/table.md"
notes=$(cd "$res" && grep -H '^note: ' -- *.out 2>/dev/null |
    sed -E 's/^([^.]+)\.([^.]+)\.([0-9]+)\.out:note: /  \1, \2, run \3: /')
if [ -n "$notes" ]; then
    echo
    echo "notes:"
    printf '%s\n' "$notes"
fi
[ "${failures:-0}" -eq 0 ]
