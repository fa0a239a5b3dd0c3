#!/bin/sh
# Runs test programs and scripts given as arguments (from the repository
# root), echoes their PASS/FAIL/SKIP lines, and ends with the totals line
# "N passed, N failed, N skipped". A program that crashes or exits non-zero
# without reporting a failure counts as one failed test.
#
# The test programs run first, TEST_JOBS at a time (default: one per online
# CPU): most of them compute on one thread, and under qemu or wine the
# suites took twice as long one after another. Each writes only files named
# after itself. The scripts then run one at a time, since they start
# servers and share the build's folders. Results are reported in argument
# order either way.
pass=0; fail=0; skip=0
results=$(mktemp -d)
trap 'rm -rf "$results"' EXIT

jobs=${TEST_JOBS:-$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)}
i=0
for t in "$@"; do
    i=$((i + 1))
    case "$t" in *.sh | *.py) ;; *) echo "$i $t" ;; esac
done | RESULTS=$results xargs -n 2 -P "$jobs" sh -c \
    '$TEST_WRAPPER "$2" >"$RESULTS/$1.out" 2>&1; echo $? >"$RESULTS/$1.rc"' run_one

i=0
for t in "$@"; do
    i=$((i + 1))
    out=$results/$i.out
    : >>"$out"
    name=$(basename "$t")
    case "$t" in
        *.sh) sh "$t" >"$out" 2>&1; rc=$? ;;
        *.py) ${PYTHON:-python3} "$t" >"$out" 2>&1; rc=$? ;;
        *) rc=$(cat "$results/$i.rc" 2>/dev/null || echo 127) ;;
    esac
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
done
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ] && exit 0
exit 1
