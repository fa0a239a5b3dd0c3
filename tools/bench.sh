#!/bin/sh
# make bench: gpt bench on random GPT-2 124M-shaped checkpoints in f32, bf16
# and q8_0 (written once with `gpt convert --random`), then the tokenizer
# benchmark; prints one table. Environment: BUILD (default build), THREADS
# (default: all CPUs), REPEATS (default 5), PROMPT (default 512), GEN (128),
# DTYPES (default "f32 bf16 q8_0"), KV (the --kv of gpt bench; default auto).
set -eu
BUILD=${BUILD:-build}
GPT=${GPT:-$BUILD/gpt}
REPEATS=${REPEATS:-5}
PROMPT=${PROMPT:-512}
GEN=${GEN:-128}
DTYPES=${DTYPES:-"f32 bf16 q8_0"}
DIR=$BUILD/bench
mkdir -p "$DIR"
T=
if [ -n "${THREADS:-}" ]; then T="-t $THREADS"; fi

printf '%-6s %8s %9s %9s %18s %9s %18s %9s %9s %6s\n' dtype threads "GB/s" "GFLOP/s" "prefill tok/s" roofline "decode tok/s" roofline "+KV" "cache"
for d in $DTYPES; do
    m=$DIR/random-124M-$d.bin
    [ -f "$m" ] || "$GPT" convert --random 124M --dtype "$d" --seed 1 -o "$m" >/dev/null 2>&1
    j=$("$GPT" bench -m "$m" $T -p "$PROMPT" -n "$GEN" -r "$REPEATS" --kv "${KV:-auto}" --json 2>/dev/null)
    echo "$j" >"$DIR/bench-$d.json"
    # pull the numbers out of the one-line JSON object
    get() { echo "$j" | sed -n "s/.*\"$1\": \([0-9.]*\).*/\1/p"; }
    kv=$(echo "$j" | sed -n 's/.*"kv_cache": "\([a-z0-9]*\)".*/\1/p')
    printf '%-6s %8s %9s %9s %7s (%s..%s) %9s %7s (%s..%s) %9s %9s %6s\n' "$d" "$(get threads)" "$(get bandwidth_gbs)" \
        "$(get peak_gflops)" "$(get prefill_tok_s)" "$(get prefill_tok_s_min)" "$(get prefill_tok_s_max)" \
        "$(get prefill_roofline)" "$(get decode_tok_s)" "$(get decode_tok_s_min)" "$(get decode_tok_s_max)" \
        "$(get decode_roofline)" "$(get decode_roofline_kv)" "$kv"
done
echo
if [ -x "$BUILD/tests/bench_tokenizer" ]; then "$BUILD/tests/bench_tokenizer"; fi
