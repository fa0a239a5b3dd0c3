#!/bin/sh
# make bench: gpt bench on random GPT-2 124M-shaped checkpoints in f32, bf16
# and q8_0 (written once with `gpt convert --random`), then on a random GPT-2
# XL (1558M) checkpoint in q8_0, then batched decoding (gpt bench -B) on the
# 124M checkpoints, then beam search against greedy search on them, then the
# quality of bf16 and q8_0 against f32, then the tokenizer benchmark; prints
# a table for each (the JSON of each run is kept in build/bench/).
# Environment: BUILD (default build), THREADS (default: all CPUs), REPEATS
# (default 5), PROMPT (default 512), GEN (128), DTYPES (default "f32 bf16
# q8_0"; empty: no 124M rows), KV (the --kv of gpt bench; default auto); for
# the GPT-2 XL rows XL_DTYPES (default q8_0; empty: none), XL_PROMPT (128),
# XL_GEN (32, decoded right after the prompt) and XL_REPEATS (3); for the
# batched rows BATCHES (default 1,2,4,8,16; empty: none), BATCH_PROMPT (128),
# BATCH_GEN (64 per sequence) and BATCH_REPEATS (3); for beam search against
# greedy search BEAM_GEN (new tokens, default 32; 0: no such rows) and
# BEAM_REPEATS (3); QUALITY=0 leaves out the quality table (bf16 and q8_0
# against f32: perplexity and top-1 agreement, demo and random 124M models).
set -eu
BUILD=${BUILD:-build}
GPT=${GPT:-$BUILD/gpt}
REPEATS=${REPEATS:-5}
PROMPT=${PROMPT:-512}
GEN=${GEN:-128}
DTYPES=${DTYPES-"f32 bf16 q8_0"}
XL_DTYPES=${XL_DTYPES-q8_0}
XL_PROMPT=${XL_PROMPT:-128}
XL_GEN=${XL_GEN:-32}
XL_REPEATS=${XL_REPEATS:-3}
BATCHES=${BATCHES-1,2,4,8,16}
BATCH_PROMPT=${BATCH_PROMPT:-128}
BATCH_GEN=${BATCH_GEN:-64}
BATCH_REPEATS=${BATCH_REPEATS:-3}
BEAM_GEN=${BEAM_GEN:-32}
BEAM_REPEATS=${BEAM_REPEATS:-3}
DIR=$BUILD/bench
mkdir -p "$DIR"
T=
if [ -n "${THREADS:-}" ]; then T="-t $THREADS"; fi
# pull the numbers out of a one-line JSON object
get() { echo "$1" | sed -n "s/.*\"$2\": \([0-9.]*\).*/\1/p"; }

# Two runs per model: the prompt and decoding right after it (positions P ..
# P+GEN-1, where attention also reads P positions of cache), and decoding from
# an empty context (positions 0 .. GEN-1), as llama-bench's tg test does.
if [ -n "$DTYPES" ]; then
    printf '%-6s %7s %7s %18s %6s %6s %18s %6s %6s %18s %6s %6s %5s\n' dtype threads "GFLOP/s" "prefill tok/s" roof \
        "GB/s" "decode@0 tok/s" roof "GB/s" "decode@$PROMPT tok/s" roof "+KV" cache
fi
for d in $DTYPES; do
    m=$DIR/random-124M-$d.bin
    [ -f "$m" ] || "$GPT" convert --random 124M --dtype "$d" --seed 1 -o "$m" >/dev/null 2>&1
    j=$("$GPT" bench -m "$m" $T -p "$PROMPT" -n "$GEN" -r "$REPEATS" --kv "${KV:-auto}" --json 2>"$DIR/err") ||
        { echo "gpt bench failed on $m: $(cat "$DIR/err")" >&2; exit 1; }
    z=$("$GPT" bench -m "$m" $T -p 1 -n "$GEN" -d 0 -r "$REPEATS" --kv "${KV:-auto}" --json 2>"$DIR/err") ||
        { echo "gpt bench -d 0 failed on $m: $(cat "$DIR/err")" >&2; exit 1; }
    echo "$j" >"$DIR/bench-$d.json"
    echo "$z" >"$DIR/bench-$d-depth0.json"
    kv=$(echo "$j" | sed -n 's/.*"kv_cache": "\([a-z0-9]*\)".*/\1/p')
    printf '%-6s %7s %7s %7s (%s..%s) %6s %6s %7s (%s..%s) %6s %6s %7s (%s..%s) %6s %6s %5s\n' "$d" \
        "$(get "$j" threads)" "$(get "$j" peak_gflops)" \
        "$(get "$j" prefill_tok_s)" "$(get "$j" prefill_tok_s_min)" "$(get "$j" prefill_tok_s_max)" \
        "$(get "$j" prefill_roofline)" "$(get "$z" bandwidth_gbs)" \
        "$(get "$z" decode_tok_s)" "$(get "$z" decode_tok_s_min)" "$(get "$z" decode_tok_s_max)" \
        "$(get "$z" decode_roofline)" "$(get "$j" bandwidth_gbs)" \
        "$(get "$j" decode_tok_s)" "$(get "$j" decode_tok_s_min)" "$(get "$j" decode_tok_s_max)" \
        "$(get "$j" decode_roofline)" "$(get "$j" decode_roofline_kv)" "$kv"
done

# GPT-2 XL (1558M; issue: "make bench adds a GPT-2 XL q8_0 row"): one run per
# dtype, an XL_PROMPT-token prompt and XL_GEN tokens decoded right after it
# (positions XL_PROMPT .. XL_PROMPT+XL_GEN-1), the median of XL_REPEATS. The
# weights (1.6 GB in q8_0) are far larger than any cache, so decoding reads
# them from memory at every token.
if [ -n "$XL_DTYPES" ]; then
    if [ -n "$DTYPES" ]; then echo; fi
    echo "GPT-2 XL (1558M)"
    printf '%-6s %7s %7s %18s %6s %6s %18s %6s %6s\n' dtype threads "GFLOP/s" "prefill tok/s" roof \
        "GB/s" "decode@$XL_PROMPT tok/s" roof "+KV"
    for d in $XL_DTYPES; do
        m=$DIR/random-1558M-$d.bin
        [ -f "$m" ] || "$GPT" convert --random 1558M --dtype "$d" --seed 1 -o "$m" >/dev/null 2>"$DIR/err" ||
            { echo "gpt convert --random 1558M failed on $m: $(cat "$DIR/err")" >&2; exit 1; }
        j=$("$GPT" bench -m "$m" $T -p "$XL_PROMPT" -n "$XL_GEN" -r "$XL_REPEATS" --kv "${KV:-auto}" --json 2>"$DIR/err") ||
            { echo "gpt bench failed on $m: $(cat "$DIR/err")" >&2; exit 1; }
        echo "$j" >"$DIR/bench-xl-$d.json"
        printf '%-6s %7s %7s %7s (%s..%s) %6s %6s %7s (%s..%s) %6s %6s\n' "$d" \
            "$(get "$j" threads)" "$(get "$j" peak_gflops)" \
            "$(get "$j" prefill_tok_s)" "$(get "$j" prefill_tok_s_min)" "$(get "$j" prefill_tok_s_max)" \
            "$(get "$j" prefill_roofline)" "$(get "$j" bandwidth_gbs)" \
            "$(get "$j" decode_tok_s)" "$(get "$j" decode_tok_s_min)" "$(get "$j" decode_tok_s_max)" \
            "$(get "$j" decode_roofline)" "$(get "$j" decode_roofline_kv)"
    done
fi

# Batched decoding: for each B, B sequences with prompts of their own
# (BATCH_PROMPT tokens each), then BATCH_GEN tokens per sequence in B-wide
# steps. decode tok/s is over all B sequences; the roofline is against the
# step's bound (weights / bandwidth or B tokens' FLOPs / FMA peak).
if [ -n "$BATCHES" ] && [ -n "$DTYPES" ]; then
    echo
    printf '%-6s %5s %7s %7s %22s %9s %9s %6s %6s\n' dtype batch "GB/s" "GFLOP/s" "decode tok/s" "per seq" bound roof "+KV"
    for d in $DTYPES; do
        m=$DIR/random-124M-$d.bin
        "$GPT" bench -m "$m" $T -p "$BATCH_PROMPT" -n "$BATCH_GEN" -B "$BATCHES" -r "$BATCH_REPEATS" \
            --kv "${KV:-auto}" --json >"$DIR/bench-$d-batch.json" 2>"$DIR/err" ||
            { echo "gpt bench -B failed on $m: $(cat "$DIR/err")" >&2; exit 1; }
        while read -r j; do
            b=$(echo "$j" | sed -n 's/.*"decode_bound": "\([a-z]*\)".*/\1/p')
            printf '%-6s %5s %7s %7s %7s (%s..%s) %9s %9s %6s %6s\n' "$d" "$(get "$j" batch)" \
                "$(get "$j" bandwidth_gbs)" "$(get "$j" peak_gflops)" \
                "$(get "$j" decode_tok_s)" "$(get "$j" decode_tok_s_min)" "$(get "$j" decode_tok_s_max)" \
                "$(get "$j" decode_tok_s_per_seq)" "$b" "$(get "$j" decode_roofline)" "$(get "$j" decode_roofline_kv)"
        done <"$DIR/bench-$d-batch.json"
    done
fi
# Beam search against greedy search (issue 15): BEAM_GEN new tokens after a
# 16-token prompt, <|endoftext|> held back until then so that every run makes
# the same number of steps; the beams are sequences of one context decoded
# in one batched step, so 4 beams should cost far less than 4 greedy runs.
# Medians of BEAM_REPEATS runs of `gpt generate -v` (its generation rate).
if [ "$BEAM_GEN" -gt 0 ] && [ -n "$DTYPES" ]; then
    echo
    printf '%-6s %7s %16s %16s %12s\n' dtype threads "greedy tok/s" "4 beams tok/s" "time ratio"
    prompt="In the beginning God created the heaven and the earth. And the earth was"
    rate() { sed -n 's/.*generation: [0-9]* tokens in [0-9.]* s (\([0-9.]*\) tokens.s).*/\1/p' "$DIR/err"; }
    median() { sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
    for d in $DTYPES; do
        m=$DIR/random-124M-$d.bin
        g=""; b=""; i=0
        while [ $i -lt "$BEAM_REPEATS" ]; do
            "$GPT" generate -m "$m" $T -p "$prompt" -n "$BEAM_GEN" --min-new-tokens "$BEAM_GEN" --greedy -v \
                >/dev/null 2>"$DIR/err" || { echo "gpt generate failed on $m: $(cat "$DIR/err")" >&2; exit 1; }
            g="$g $(rate)"
            "$GPT" generate -m "$m" $T -p "$prompt" -n "$BEAM_GEN" --min-new-tokens "$BEAM_GEN" --beams 4 -v \
                >/dev/null 2>"$DIR/err" || { echo "gpt generate --beams 4 failed on $m: $(cat "$DIR/err")" >&2; exit 1; }
            b="$b $(rate)"
            i=$((i + 1))
        done
        gm=$(for x in $g; do echo "$x"; done | median)
        bm=$(for x in $b; do echo "$x"; done | median)
        printf '%-6s %7s %16s %16s %12s\n' "$d" "${THREADS:-all}" "$gm" "$bm" \
            "$(awk -v g="$gm" -v b="$bm" 'BEGIN {printf "%.2f", g / b}')"
    done
fi

# What bf16 and q8_0 (with the activations rounded for their dot products)
# cost in quality against f32 (build/tests/test_quality): perplexity on
# tests/data/demo_heldout.txt and top-1 agreement, for the demo model and a
# random 124M one. QUALITY=0 leaves it out.
if [ "${QUALITY:-1}" != 0 ] && [ -x "$BUILD/tests/test_quality" ]; then
    echo
    for q in "" "--random 124M"; do
        # shellcheck disable=SC2086 # $q is two words or none
        "$BUILD/tests/test_quality" $q >"$DIR/quality.txt" 2>&1 ||
            { echo "test_quality $q failed: $(cat "$DIR/quality.txt")" >&2; exit 1; }
        sed -n 's/^# //p' "$DIR/quality.txt"
    done
fi

echo
if [ -x "$BUILD/tests/bench_tokenizer" ]; then "$BUILD/tests/bench_tokenizer"; fi
