#!/bin/sh
# check-gnu-property.sh READELF WANT OBJECT...
# Fails unless every OBJECT carries a GNU property note whose line contains
# WANT (e.g. "AArch64 feature: BTI, PAC"). The linker ANDs these notes over
# all objects: one hand-written assembly object without it turns BTI/PAC
# off for every program it is linked into.
readelf=$1
want=$2
shift 2
[ $# -gt 0 ] || { echo "check-gnu-property: no objects given" >&2; exit 1; }
rc=0
for obj in "$@"; do
    if "$readelf" -n "$obj" | grep -qF "$want"; then
        echo "$obj: $want"
    else
        echo "$obj: missing GNU property \"$want\":" >&2
        "$readelf" -n "$obj" >&2
        rc=1
    fi
done
exit $rc
