#!/bin/sh
# Runs test programs and scripts given as arguments (from the repository
# root), echoes their PASS/FAIL/SKIP lines, and ends with the totals line
# "N passed, N failed, N skipped". A program that crashes or exits non-zero
# without reporting a failure counts as one failed test.
pass=0; fail=0; skip=0
for t in "$@"; do
    out=$(mktemp)
    name=$(basename "$t")
    case "$t" in
        *.sh) sh "$t" >"$out" 2>&1 ;;
        *.py) ${PYTHON:-python3} "$t" >"$out" 2>&1 ;;
        *) $TEST_WRAPPER "$t" >"$out" 2>&1 ;;
    esac
    rc=$?
    p=$(grep -a -c '^PASS ' "$out"); f=$(grep -a -c '^FAIL ' "$out"); s=$(grep -a -c '^SKIP ' "$out")
    grep -a -E '^(PASS|FAIL|SKIP) ' "$out"
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        echo "FAIL $name: exited with status $rc; its last output:"
        tail -n 20 "$out" | sed 's/^/    /'
        f=1
    elif [ "$f" -ne 0 ]; then
        # keep context (sanitizer reports, diagnostics) visible in the log
        grep -a -vE '^(PASS|SKIP) ' "$out" | grep -a -v '^FAIL ' | tail -n 30 | sed 's/^/    /'
    fi
    pass=$((pass + p)); fail=$((fail + f)); skip=$((skip + s))
    rm -f "$out"
done
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
