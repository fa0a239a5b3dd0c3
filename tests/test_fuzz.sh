#!/bin/sh
# test_fuzz.sh - builds every libFuzzer harness tests/fuzz/*.c with clang
# (-fsanitize=fuzzer,address,undefined) into $BUILD/fuzz, replays its
# regression inputs (tests/fuzz/regressions/NAME/, NAME without "fuzz_"),
# then fuzzes it for FUZZ_TIME seconds on its seeds (tests/fuzz/seeds/NAME/)
# and on the corpus it grew in earlier runs ($BUILD/fuzz/corpus/NAME/).
# Prints one PASS/FAIL line per harness, or SKIP when clang's libFuzzer is
# not available. Run from the repository root.
#
#   FUZZ_TIME=10     seconds per harness (make test: 10; make fuzz: 60);
#                    0 only replays the seeds, the corpus and the regressions
#   FUZZ_JOBS=2      harnesses fuzzed at once
#   FUZZ_CC=clang    the compiler; FUZZ_ARCH=-march=native its target flags
#   FUZZ_ONLY=name   only this harness (e.g. fuzz_load)
#
# A crash, sanitizer report, leak or timeout (10 s per input) is saved as
# $BUILD/fuzz/artifacts/NAME-crash-... and reported with the command that
# replays it; copy it into tests/fuzz/regressions/NAME/ once the bug is fixed.
BUILD=${BUILD:-build}
FUZZ_TIME=${FUZZ_TIME:-10}
FUZZ_JOBS=${FUZZ_JOBS:-2}
FUZZ_CC=${FUZZ_CC:-clang}
FUZZ_ARCH=${FUZZ_ARCH--march=native}
OUT=$BUILD/fuzz
SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
CFLAGS_F="-std=c99 -g -O1 -Wall -Wextra $FUZZ_ARCH $SAN"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}

harnesses=""
for f in tests/fuzz/fuzz_*.c; do
    [ -f "$f" ] || continue
    n=$(basename "$f" .c)
    if [ -n "${FUZZ_ONLY:-}" ] && [ "$n" != "$FUZZ_ONLY" ]; then continue; fi
    harnesses="$harnesses $n"
done
[ -n "$harnesses" ] || { echo "SKIP fuzz: no harness in tests/fuzz"; exit 0; }

skip_all() {
    for n in $harnesses; do echo "SKIP $n: $1"; done
    exit 0
}

mkdir -p "$OUT/obj/cli" "$OUT/log" "$OUT/artifacts" "$OUT/corpus" || skip_all "cannot create $OUT"

# --- is libFuzzer there? ------------------------------------------------------
command -v "$FUZZ_CC" >/dev/null 2>&1 || skip_all "$FUZZ_CC is not installed (apt-get install clang)"
printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { (void)d; (void)n; return 0; }\n' \
    >"$OUT/probe.c"
if ! $FUZZ_CC -fsanitize=fuzzer,address,undefined "$OUT/probe.c" -o "$OUT/probe" >"$OUT/log/probe.log" 2>&1; then
    skip_all "$FUZZ_CC cannot link -fsanitize=fuzzer,address,undefined ($(head -c 160 "$OUT/log/probe.log" | tr '\n' ' '))"
fi

# --- the library and the converter's code, instrumented ------------------------
# An object is rebuilt when its source or any header is newer than it.
newest_header=$(ls -t gpt.h cli/*.h tests/*.h 2>/dev/null | head -n 1)
build_obj() { # source object
    if [ ! -f "$2" ] || [ "$1" -nt "$2" ] || [ "$newest_header" -nt "$2" ]; then
        $FUZZ_CC $CFLAGS_F -fsanitize=fuzzer-no-link -I. -Icli -c "$1" -o "$2" >"$2.log" 2>&1 || { rm -f "$2"; return 1; }
    fi
    return 0
}
lib_src="gpt.c tokenizer.c"
cli_src=$(ls cli/*.c | grep -v '^cli/main\.c$')
pids=""
for s in $lib_src $cli_src; do
    o="$OUT/obj/${s%.c}.o"
    build_obj "$s" "$o" &
    pids="$pids $!"
    # two compilers at a time
    set -- $pids
    if [ $# -ge 2 ]; then wait $1; shift; pids="$*"; fi
done
wait
libfail=""
for s in $lib_src $cli_src; do
    [ -f "$OUT/obj/${s%.c}.o" ] || libfail="$libfail $s"
done
if [ -n "$libfail" ]; then
    for n in $harnesses; do echo "FAIL $n: the library does not build with $FUZZ_CC:$libfail"; done
    for s in $libfail; do tail -n 15 "$OUT/obj/${s%.c}.o.log" | sed 's/^/    /'; done
    exit 1
fi
rm -f "$OUT/libgpt.a" "$OUT/libgptcli.a"
ar rcs "$OUT/libgpt.a" $(for s in $lib_src; do echo "$OUT/obj/${s%.c}.o"; done)
ar rcs "$OUT/libgptcli.a" $(for s in $cli_src; do echo "$OUT/obj/${s%.c}.o"; done)

# --- each harness: build, replay, fuzz ------------------------------------------
# run_one NAME: writes $OUT/log/NAME.result (one PASS/FAIL line) and NAME.log
run_one() {
    n=$1
    short=${n#fuzz_}
    bin=$OUT/$n
    log=$OUT/log/$n.log
    res=$OUT/log/$n.result
    : >"$log"
    if ! $FUZZ_CC $CFLAGS_F -fsanitize=fuzzer -I. -Icli -Itests "tests/fuzz/$n.c" \
        "$OUT/libgptcli.a" "$OUT/libgpt.a" -lm -pthread -o "$bin" >"$log" 2>&1; then
        echo "FAIL $n: tests/fuzz/$n.c does not build" >"$res"
        return
    fi
    # regressions: each input once
    if [ -d "tests/fuzz/regressions/$short" ]; then
        regs=$(find "tests/fuzz/regressions/$short" -type f ! -name '*.md' ! -name '.*' | sort)
        if [ -n "$regs" ]; then
            # shellcheck disable=SC2086
            if ! "$bin" -timeout=10 $regs >>"$log" 2>&1; then
                bad=$(sed -n 's/^Running: //p' "$log" | tail -n 1)
                why=$(grep -m 1 -E 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error|^fuzz_[a-z_]*: ' "$log" | head -c 200)
                echo "FAIL $n: ${why:+$why; }input ${bad:-in tests/fuzz/regressions/$short} fails; replay: $bin ${bad:-FILE}" >"$res"
                return
            fi
        fi
    fi
    corpus=$OUT/corpus/$short
    mkdir -p "$corpus"
    seeds=""
    [ -d "tests/fuzz/seeds/$short" ] && seeds="tests/fuzz/seeds/$short"
    if [ "$FUZZ_TIME" -gt 0 ] 2>/dev/null; then
        limit="-max_total_time=$FUZZ_TIME"
    else
        limit="-runs=0"
    fi
    # shellcheck disable=SC2086
    "$bin" $limit -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$OUT/artifacts/$n-" "$corpus" $seeds >>"$log" 2>&1
    rc=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    secs=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    cov=$(grep -E '^#[0-9]+' "$log" | tail -n 1 | sed -n 's/.*cov: \([0-9]*\).*/\1/p')
    units=$(ls "$corpus" | wc -l | tr -d ' ')
    if [ "$rc" -ne 0 ]; then
        art=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
        why=$(grep -m 1 -E 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error|^fuzz_[a-z_]*: ' "$log" | head -c 200)
        echo "FAIL $n: ${why:-exit status $rc}; input saved as ${art:-?}; replay: $bin ${art:-FILE}" >"$res"
        return
    fi
    if [ "$limit" = "-runs=0" ]; then
        echo "PASS $n (replayed seeds, corpus and regressions; coverage ${cov:-?})" >"$res"
    else
        echo "PASS $n (${runs:-?} inputs in ${FUZZ_TIME} s, ${secs:-?}/s, coverage ${cov:-?}, corpus $units)" >"$res"
    fi
}

failed=0
set -- $harnesses
while [ $# -gt 0 ]; do
    batch=""
    i=0
    while [ $# -gt 0 ] && [ $i -lt "$FUZZ_JOBS" ]; do
        run_one "$1" &
        batch="$batch $1"
        shift
        i=$((i + 1))
    done
    wait
    for n in $batch; do
        if [ -f "$OUT/log/$n.result" ]; then cat "$OUT/log/$n.result"; else echo "FAIL $n: no result"; fi
        case "$(cat "$OUT/log/$n.result" 2>/dev/null)" in
            PASS*) ;;
            *) failed=1
               grep -v '^#\|^INFO:\|^Running:\|^Executed\|in fuzzer::\|libc_start\|in _start \|print_stack_trace\|in main (\|^ *$' \
                   "$OUT/log/$n.log" | tail -n 25 | sed 's/^/    /' ;;
        esac
        rm -f "$OUT/log/$n.result"
    done
done
exit $failed
