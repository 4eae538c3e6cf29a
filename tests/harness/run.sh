#!/bin/sh
# run.sh - runs test binaries one after another and reports a summary.
# Exits non-zero when any of them fails. Usage: run.sh BINARY...
pass=0
fail=0
failed=""
for t in "$@"; do
    echo "== $t"
    if "$t"; then
        pass=$((pass + 1))
    else
        fail=$((fail + 1))
        failed="$failed $t"
    fi
done
echo "== $pass passed, $fail failed"
[ "$fail" -eq 0 ] || { echo "failed:$failed"; exit 1; }
