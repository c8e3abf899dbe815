#!/usr/bin/env bash
# The seed tour: runs the examples listed in examples/tour.txt, in order,
# each under a heading banner.
#   usage: tools/demo.sh DIR       (DIR holds the built examples, e.g.
#                                   build/release/examples; `make demo`)
# tour.txt lines: name<TAB>heading[<TAB>expect-fail | needs=WHAT]; `#`
# starts a comment. An `expect-fail` example (a pitfall demo) is supposed
# to exit non-zero. A `needs=WHAT` example is built only when an optional
# library is (WHAT says which Debian packages bring it): when it is
# missing, one line says what to install and the tour goes on. An example
# that exits with 77 skipped itself (a server it starts is not installed;
# it printed what to install).
# Every example runs even if an earlier one failed; the exit status is
# non-zero if any example failed unexpectedly (or was missing).
set -u
dir=${1:?usage: tools/demo.sh DIR}
root=$(cd "$(dirname "$0")/.." && pwd)
tour=${TULIP_TOUR:-$root/examples/tour.txt}
[ -r "$tour" ] || { echo "demo: $tour not found" >&2; exit 2; }

ran=0 bad=0 skipped=0 problems=()
while IFS=$'\t' read -r name heading flag _ || [ -n "${name:-}" ]; do
    name=${name%$'\r'} heading=${heading:-$name} flag=${flag:-}
    flag=${flag%$'\r'}
    case $name in ''|'#'*) continue ;; esac
    ran=$((ran + 1))
    printf '\n==== %s ====\n' "$heading"
    printf '$ %s\n' "$name"
    if [ ! -x "$dir/$name" ] && [ "${flag#needs=}" != "$flag" ]; then
        echo "skipped: $name was not built: install ${flag#needs=} (scripts/install-deps.sh does), then make demo"
        skipped=$((skipped + 1))
        continue
    fi
    if [ ! -x "$dir/$name" ]; then
        echo "demo: $dir/$name is missing"
        bad=$((bad + 1)) problems+=("$name: missing")
        continue
    fi
    "$dir/$name" </dev/null
    rc=$?
    if [ "$flag" = expect-fail ]; then
        if [ $rc -ne 0 ]; then
            echo "[$name exited with $rc, as this pitfall demo should]"
        else
            echo "[$name exited 0 but was expected to fail]"
            bad=$((bad + 1)) problems+=("$name: expected to fail, exited 0")
        fi
    elif [ $rc -eq 77 ]; then
        skipped=$((skipped + 1))
    elif [ $rc -ne 0 ]; then
        echo "[$name FAILED with exit status $rc]"
        bad=$((bad + 1)) problems+=("$name: exit status $rc")
    fi
done <"$tour"

echo
if [ $ran -eq 0 ]; then
    echo "demo: the tour ($tour) lists no examples yet"
    exit 0
fi
if [ $bad -ne 0 ]; then
    echo "demo: $bad of $ran examples failed unexpectedly:"
    printf '  %s\n' "${problems[@]}"
    exit 1
fi
if [ $skipped -ne 0 ]; then
    echo "demo: all $ran examples behaved as expected ($skipped skipped: see their lines above)"
else
    echo "demo: all $ran examples behaved as expected"
fi
