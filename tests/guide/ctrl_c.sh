#!/bin/bash
# Runs the guide's Ctrl-C program (ctrl_c.c): waits for its "serving" line,
# sends it SIGINT as a terminal's Ctrl-C would, and expects exit status 130
# with the state saved. usage: ctrl_c.sh PROGRAM
set -u
prog=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
mkfifo "$dir/out"
# A background job of a non-interactive shell starts with SIGINT ignored
# (and so does everything started from a shell that was itself started
# that way), and tulip leaves an ignored SIGINT alone: give the program
# the default disposition, as a terminal's foreground job has.
env --default-signal=INT "$prog" >"$dir/out" 2>"$dir/err" &
pid=$!
exec 3<"$dir/out"
if ! read -r -t 60 line <&3; then
    echo "ctrl_c: no 'serving' line within 60 s"; kill -KILL "$pid"; exit 1
fi
case $line in
serving*) ;;
*) echo "ctrl_c: printed '$line'"; kill -KILL "$pid"; exit 1 ;;
esac
kill -INT "$pid"
wait "$pid"
rc=$?
cat "$dir/err"
[ $rc -eq 130 ] || { echo "ctrl_c: exit status $rc, not 130"; exit 1; }
grep -q "state saved" "$dir/err" || { echo "ctrl_c: state not saved"; exit 1; }
echo "ctrl_c: ok"
