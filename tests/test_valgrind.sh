#!/bin/sh
# test_valgrind.sh - valgrind memcheck on the `gpt` command: generation
# (one and two threads, sampling filters, stop strings), scoring and
# tokenizing on small random models, and on the demo model models/demo.bin
# when it exists. Every run must end with no memcheck error and no leak of
# any kind. SKIP when valgrind is not installed.
#
# valgrind does not decode AVX-512, so the command is built again for it in
# $BUILD/valgrind with the AVX2+FMA+F16C kernels on x86-64 (the baseline
# target elsewhere), at -O1 -g. Run from the repository root.
BUILD=${BUILD:-build}
T=$BUILD/tmp_valgrind_$$
VB=$BUILD/valgrind

pass() { echo "PASS $1"; }
fail() { echo "FAIL $1: $2"; }
skip() { echo "SKIP $1: $2"; }

names="valgrind_generate_one_thread valgrind_generate_two_threads valgrind_generate_filters_and_stops \
valgrind_generate_full_vocabulary valgrind_score valgrind_tokenize valgrind_demo_model"
skip_all() {
    for n in $names; do skip "$n" "$1"; done
    exit 0
}

command -v valgrind >/dev/null 2>&1 || skip_all "valgrind is not installed (apt-get install valgrind)"
[ -z "$TEST_WRAPPER" ] || skip_all "the tests run under $TEST_WRAPPER"

case "$(uname -m)" in
    x86_64 | amd64) ARCH="-mavx2 -mfma -mf16c" ;;
    *) ARCH="" ;;
esac
# Everything on the command line: under `make test-sanitize` the
# environment carries EXTRA_CFLAGS with the sanitizers, which valgrind
# cannot run. A build made with other flags is thrown away.
flags="NATIVE=0 ARCHFLAGS=$ARCH OPT=-O1 CFLAGS=-O1 -g EXTRA_CFLAGS= CC=${CC:-cc}"
if [ "$(cat "$VB/build-flags" 2>/dev/null)" != "$flags" ]; then
    rm -rf "$VB"
fi
mkdir -p "$VB"
if ! MAKEFLAGS= ${MAKE:-make} -s BUILD="$VB" NATIVE=0 ARCHFLAGS="$ARCH" OPT=-O1 CFLAGS="-O1 -g" EXTRA_CFLAGS= \
    CC="${CC:-cc}" "$VB/gpt" >"$BUILD/valgrind_build.log" 2>&1; then
    for n in $names; do fail "$n" "the gpt command does not build in $VB (see $BUILD/valgrind_build.log)"; done
    exit 1
fi
printf '%s\n' "$flags" >"$VB/build-flags"
G=$VB/gpt

rm -rf "$T"
mkdir -p "$T"
trap 'rm -rf "$T"' EXIT

# Models made natively (fast), then read under valgrind.
"$G" convert --random 2,2,32,64 --n-vocab 1000 --seed 5 -o "$T/small.bin" >/dev/null 2>&1 &&
    "$G" convert --random 1,2,16,32 --dtype q8_0 --seed 6 -o "$T/full.bin" >/dev/null 2>&1 ||
    skip_all "cannot make the random models"

# vg NAME ARGS...: runs the command under memcheck (standard input from
# $IN, /dev/null by default); any error or leak fails.
IN=/dev/null
vg() {
    name=$1
    shift
    if valgrind --error-exitcode=99 --leak-check=full --show-leak-kinds=all --errors-for-leak-kinds=all \
        --track-origins=yes --log-file="$T/$name.vg" "$G" "$@" >"$T/$name.out" 2>"$T/$name.err" <"$IN"; then
        rc=0
    else
        rc=$?
    fi
    if [ "$rc" -eq 99 ] || grep -q 'ERROR SUMMARY: [1-9]' "$T/$name.vg"; then
        fail "$name" "memcheck reports errors or leaks:"
        grep -E '^==[0-9]+== ( |[A-Z])' "$T/$name.vg" | grep -v 'Copyright\|Command:\|Using Valgrind\|Memcheck, a' | head -n 30 | sed 's/^/    /'
    elif [ "$rc" -ne 0 ]; then
        fail "$name" "gpt $* exited with status $rc: $(head -c 200 "$T/$name.err")"
    elif ! grep -q 'All heap blocks were freed' "$T/$name.vg"; then
        fail "$name" "memory still allocated at exit: $(grep -A3 'HEAP SUMMARY' "$T/$name.vg" | tr '\n' ' ' | head -c 300)"
    else
        pass "$name"
    fi
}

vg valgrind_generate_one_thread generate -m "$T/small.bin" -p "Hello" -n 8 --seed 1 -t 1
vg valgrind_generate_two_threads generate -m "$T/small.bin" -p "In the beginning" -n 8 --seed 2 -t 2
vg valgrind_generate_filters_and_stops generate -m "$T/small.bin" -p "abc $(printf '\303\251')" -n 12 -t 1 \
    --temp 1.3 --top-k 50 --top-p 0.9 --min-p 0.01 --repeat-penalty 1.2 --stop "e" --stop "the" --seed 3
vg valgrind_generate_full_vocabulary generate -m "$T/full.bin" -p "Hello, world" -n 6 -t 2 --seed 4
printf 'And the earth was without form, and void; \303\251t\303\251 \377' >"$T/text"
IN=$T/text
vg valgrind_score score -m "$T/small.bin"
vg valgrind_tokenize tokenize -m "$T/full.bin"
IN=/dev/null
if [ -f models/demo.bin ]; then
    vg valgrind_demo_model generate -m models/demo.bin -p "And God said" -n 4 -t 2 --seed 7
else
    skip valgrind_demo_model "models/demo.bin is not in this checkout"
fi
exit 0
