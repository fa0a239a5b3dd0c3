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
# Every internal name of the two files carries its file's prefix (gp_ and
# GP_ in gpt.c, tk_ and TK_ in tokenizer.c; gpt__ for the few helpers they
# share), so they join without renaming: a clash would be a compile error or
# a macro-redefinition warning, which tests/test_dist.sh (-Werror) reports.
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
 * Build options (-DGPT_NO_SIMD, -DGPT_NO_THREADS, -DGPT_NO_MMAP, the
 * allocator hooks GPT_MALLOC / GPT_REALLOC / GPT_FREE): see gpt.h.
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
    echo '/* ==== tokenizer.c ==== */'
    cat tokenizer.c
} >"$tmp"
mv "$tmp" "$OUT/gpt.c"
trap - EXIT INT TERM
cp gpt.h "$OUT/gpt.h.tmp.$$" && mv "$OUT/gpt.h.tmp.$$" "$OUT/gpt.h"
