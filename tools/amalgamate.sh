#!/bin/sh
# amalgamate.sh - writes the two-file form of the library (make dist):
#
#   OUT/gpt.h   the public header, unchanged
#   OUT/gpt.c   gpt.c followed by tokenizer.c, one translation unit
#
# so that vendoring the library means copying two files and compiling one:
# `cc -O2 -c gpt.c`. The repository's gpt.h, gpt.c and tokenizer.c stay the
# files people read and edit; this script only concatenates them.
#
# Both sources keep their internal names `static` (the tokenizer's carry a
# `tk_` prefix), so they cannot clash at file scope; a clash would be a
# compile error, which tests/test_dist.sh would report. Macros are the one
# silent hazard, so every macro that gpt.c defines is #undef'd before the
# tokenizer's text begins.
#
# Usage: tools/amalgamate.sh [OUT]    (default build/dist; POSIX sh and sed)
set -eu
OUT=${1:-build/dist}
case $OUT in /*) ;; *) OUT=$(pwd)/$OUT ;; esac
cd "$(dirname "$0")/.."
mkdir -p "$OUT"

version=$(sed -n 's/^#define GPT_VERSION_STRING "\(.*\)"/\1/p' gpt.h)
tmp="$OUT/gpt.c.tmp.$$"
trap 'rm -f "$tmp"' EXIT INT TERM

{
    cat <<EOF
/*
 * gpt.c $version, amalgamated: gpt.c and tokenizer.c of the gpt.c library in
 * one file, written by tools/amalgamate.sh (make dist). Do not edit; edit the
 * original files and run make dist again.
 *
 * Vendoring: copy this file and gpt.h into your tree and compile this file
 * with any C99 compiler, e.g. \`cc -O2 -c gpt.c\` (add -march=native for the
 * SIMD kernels; link with -lm, and -pthread where threads are POSIX).
 * Options: -DGPT_NO_SIMD, -DGPT_NO_THREADS, -DGPT_NO_MMAP.
 *
 * MIT licence; see LICENSE (reproduced at the end of this comment).
 *
EOF
    sed 's/^/ * /; s/ *$//' LICENSE
    echo ' */'
    echo
    echo '/* ==== gpt.c ==== */'
    cat gpt.c
    echo
    echo '/* ---- end of gpt.c: forget its macros before tokenizer.c begins ---- */'
    # every name that gpt.c #defines (object- or function-like)
    sed -n 's/^[[:space:]]*#[[:space:]]*define[[:space:]]\{1,\}\([A-Za-z_][A-Za-z0-9_]*\).*/\1/p' gpt.c |
        grep -v '^_POSIX_C_SOURCE$' | grep -v '^WIN32_LEAN_AND_MEAN$' | sort -u |
        sed 's/^/#undef /'
    echo
    echo '/* ==== tokenizer.c ==== */'
    cat tokenizer.c
} >"$tmp"
mv "$tmp" "$OUT/gpt.c"
trap - EXIT INT TERM
cp gpt.h "$OUT/gpt.h.tmp.$$" && mv "$OUT/gpt.h.tmp.$$" "$OUT/gpt.h"
