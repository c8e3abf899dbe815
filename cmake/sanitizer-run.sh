#!/bin/sh
# Runs one test of a sanitized build (ctest calls this; see
# cmake/tulip_tests.cmake) and fails it if any process it started wrote a
# sanitizer report, even when the test's own exit status says it passed.
#
# Why: Criterion runs each test in a forked worker and ignores how the
# worker exits once the test body has returned, so LeakSanitizer's exit
# status at the worker's exit (and TSan's, whose reports do not stop the
# program) are lost. Sending every report to per-process log files and
# checking them afterwards catches reports from any process: Criterion
# workers, the runner, and subprocesses the test spawns.
#
# Every report is printed after the run; the test fails for those that a
# harness could have missed (see below).
#
# usage: sanitizer-run.sh LOGDIR PROGRAM [ARGS...]
logdir=$1
shift
rm -rf "$logdir"
mkdir -p "$logdir" || exit 1

ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}log_path=$logdir/asan"
UBSAN_OPTIONS="print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}:log_path=$logdir/ubsan"
# tsan.supp: races TSan cannot judge inside uninstrumented OpenSSL.
supp="$(cd "$(dirname "$0")" && pwd)/tsan.supp"
TSAN_OPTIONS="second_deadlock_stack=1:suppressions=$supp${TSAN_OPTIONS:+:$TSAN_OPTIONS}:log_path=$logdir/tsan"
LSAN_OPTIONS="${LSAN_OPTIONS:+$LSAN_OPTIONS:}log_path=$logdir/lsan"
export ASAN_OPTIONS UBSAN_OPTIONS TSAN_OPTIONS LSAN_OPTIONS

"$@"
rc=$?

reports=0
for f in "$logdir"/*; do
    [ -s "$f" ] || continue
    echo "---- sanitizer output: $(basename "$f") ----" >&2
    cat "$f" >&2
    # Only the reports that do not stop the process count here: leaks
    # (found at exit), TSan warnings, UBSan errors. A fatal ASan error
    # already kills the process, which the harness sees; tests that crash a
    # child on purpose (guard pages, signal chaining) must not fail here.
    if grep -qE 'ERROR: LeakSanitizer|WARNING: ThreadSanitizer|runtime error:' "$f"; then
        reports=$((reports + 1))
    fi
done

if [ $rc -eq 0 ] || [ $rc -eq 77 ]; then
    if [ $reports -ne 0 ]; then
        echo "sanitizer-run: the test exited $rc but $reports process(es) reported sanitizer errors" >&2
        exit 1
    fi
fi
exit $rc
