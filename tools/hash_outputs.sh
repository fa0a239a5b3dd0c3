#!/bin/sh
# Hashes every logit of the test models and the gpt command's outputs, to
# prove that a change kept behaviour bit for bit: run before and after the
# change and diff the two outputs (docs/ARCHITECTURE.md).
#
#   sh tools/hash_outputs.sh > before.txt; (change); sh tools/hash_outputs.sh > after.txt; diff before.txt after.txt
#
# Builds with the default flags into $BUILD (default build); the random
# models go to $BUILD/hash. Takes about a minute on 2 cores.
set -eu
BUILD=${BUILD:-build}
make -s BUILD="$BUILD" all >/dev/null  # ARCHFLAGS, NATIVE, SIMD from the environment pick the kernels
GPT=$BUILD/gpt
dir=$BUILD/hash
mkdir -p "$dir"
cc -O2 -march=native -I. tools/hash_outputs.c "$BUILD/libgpt.a" -o "$dir/hash_outputs" -lm -pthread
models="tests/data/ckpt/l2_h3_c36_t64_v300_f32.bin tests/data/ckpt/l2_h3_c36_t64_v300_f16.bin
tests/data/ckpt/l2_h3_c36_t64_v300_bf16.bin tests/data/ckpt/l2_h3_c36_t64_v300_q8_0.bin models/demo.bin"
# shapes that reach every kernel: odd head sizes, tails that fill no vector,
# prompts past the packed-kernel threshold, more than one KV panel
for d in f32 f16 bf16 q8_0; do
    f=$dir/rand_l2_h5_c80_t160_$d.bin
    [ -f "$f" ] || $GPT convert --random 2,5,80,160 --n-vocab 1000 --dtype $d --seed 3 -o "$f" >/dev/null
    g=$dir/rand_l1_h4_c200_t130_$d.bin
    [ -f "$g" ] || $GPT convert --random 1,4,200,130 --n-vocab 777 --dtype $d --seed 5 -o "$g" >/dev/null
    models="$models $f $g"
done
"$dir/hash_outputs" $models
# the command's outputs
h() { printf '%s %s\n' "$1" "$(cksum | cut -d' ' -f1,2)"; }
$GPT generate -p "And God said" -n 40 -t 1 | h "generate -t 1"
$GPT generate -p "And God said" -n 40 -t 2 --kv f32 | h "generate -t 2 --kv f32"
$GPT generate -p "In the beginning" -n 30 --temp 0 -t 3 | h "generate greedy -t 3"
$GPT generate -p "The LORD" -n 30 --top-k 5 --top-p 0.5 --min-p 0.1 --repeat-penalty 1.3 --seed 9 | h "generate filters"
$GPT score < tests/data/demo_heldout.txt | h "score demo_heldout"
$GPT score --kv f32 -t 3 < tests/data/demo_heldout.txt | h "score --kv f32 -t 3"
printf 'Hello, world! 123 ünïcödé' | $GPT tokenize | h "tokenize"
printf '15496 11 995 0' | $GPT detokenize | h "detokenize"
$GPT info | h "info"
