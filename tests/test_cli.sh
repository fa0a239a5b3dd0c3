#!/bin/sh
# test_cli.sh - the `gpt` command: help, errors, and each subcommand on a
# small random model. Run from the repository root; $GPT is the binary.
GPT=${GPT:-build/gpt}
BUILD=${BUILD:-build}
T=$BUILD/tmp_cli
rm -rf "$T"; mkdir -p "$T"

pass() { echo "PASS $1"; }
fail() { echo "FAIL $1: $2"; }
# check NAME CONDITION-COMMAND... : passes when the command succeeds
check() { name=$1; shift; if "$@"; then pass "$name"; else fail "$name" "$*"; fi; }

# --- help and version -------------------------------------------------------
check version sh -c "$GPT --version | grep -q '^gpt [0-9]'"
check help sh -c "$GPT --help | grep -q 'usage: gpt COMMAND'"
ok=1
for c in generate score tokenize detokenize info convert bench; do
    $GPT $c --help >"$T/help" 2>&1 || ok=0
    grep -q "usage: gpt $c" "$T/help" || ok=0
done
check every_command_has_help test $ok = 1
$GPT frobnicate >"$T/out" 2>"$T/err"; rc=$?
check unknown_command_fails sh -c "test $rc = 2 && grep -q 'unknown command' '$T/err' && test ! -s '$T/out'"
$GPT generate --bogus >"$T/out" 2>"$T/err"; rc=$?
check unknown_option_fails sh -c "test $rc = 2 && grep -q 'bogus' '$T/err'"
$GPT generate -m x --temp -1 >/dev/null 2>"$T/err"; rc=$?
check bad_value_names_option sh -c "test $rc = 2 && grep -q -- '--temp' '$T/err'"

# --- option parsing (every command shares one table-driven parser) ------------------
# usage_case NAME WORDS COMMAND ARGS...: exit status 2, WORDS in the message, nothing on stdout
usage_case() {
    name=$1; words=$2; shift 2
    $GPT "$@" >"$T/out" 2>"$T/err"; rc=$?
    if [ $rc = 2 ] && grep -q -- "$words" "$T/err" && grep -q -- "--help" "$T/err" && test ! -s "$T/out"; then pass "$name"
    else fail "$name" "gpt $*: exit $rc: $(cat "$T/err")"; fi
}
ok=1; why=
for c in generate score tokenize detokenize info convert bench; do
    $GPT $c --bogus >/dev/null 2>"$T/err"; rc=$?
    { [ $rc = 2 ] && grep -q 'unknown option "--bogus"' "$T/err"; } || { ok=0; why="$why $c:$rc"; }
    $GPT $c --bogus=3 >/dev/null 2>"$T/err"; rc=$?
    { [ $rc = 2 ] && grep -q 'unknown option "--bogus"' "$T/err"; } || { ok=0; why="$why $c=:$rc"; }
    $GPT $c -Z >/dev/null 2>"$T/err"; rc=$?
    { [ $rc = 2 ] && grep -q 'unknown option "-Z"' "$T/err"; } || { ok=0; why="$why $c-Z:$rc"; }
done
check options_unknown_every_command test $ok = 1
usage_case options_missing_value_long "option --model needs a value PATH" generate --model
usage_case options_missing_value_short "option -n (--n-predict) needs a value" generate -p x -n
usage_case options_missing_value_score "option --ids needs a value" score --ids
usage_case options_missing_value_tokenize "option --vocab needs a value" tokenize --vocab
usage_case options_missing_value_bench "option -p (--prompt) needs a value" bench -p
usage_case options_missing_value_info "option --model needs a value" info --model
usage_case options_int_range "-n (--n-predict) expects an integer in -1 .. 2147483647, not \"-2\"" generate -n -2
usage_case options_int_not_a_number "--top-k expects an integer in 0 .. 2147483647, not \"abc\"" generate --top-k abc
usage_case options_int_range_equals "--threads expects an integer in 0 .. 256, not \"300\"" generate --threads=300
usage_case options_float_range "--top-p expects a number in 1e-09 .. 1, not \"2\"" generate --top-p 2
usage_case options_float_equals "--temp expects a number in 0 .. 1e+06, not \"-1\"" generate --temp=-1
usage_case options_float_nan "--min-p expects a number in 0 .. 1, not \"nan\"" generate --min-p nan
usage_case options_u64_negative "--seed expects an integer in 0 .. 18446744073709551615, not \"-1\"" convert --seed -1
usage_case options_seed_below_minus_one "--seed expects an integer in 0 .. 18446744073709551615 or -1 (a random seed), not \"-2\"" generate --seed -2
usage_case options_u64_too_large "-s (--seed) expects an integer in 0 .. 18446744073709551615" generate -s 18446744073709551616
usage_case options_choice "--kv expects auto, f16 or f32, not \"f8\"" score --kv=f8
usage_case options_bench_repeats "-r (--repeats) expects an integer in 1 .. 1000, not \"0\"" bench -r 0
usage_case options_flag_with_value "--ignore-eos takes no value" generate --ignore-eos=1
usage_case options_empty_stop "--stop needs a non-empty value" generate --stop=
usage_case options_argument "unexpected argument \"hello\"" generate hello
usage_case options_after_double_dash "unexpected argument \"-p\"" generate -- -p x
# every option that --help lists is one the parser knows (help comes from the same table)
ok=1; why=; n=0
for c in generate score tokenize detokenize info convert bench; do
    for o in $($GPT $c --help | sed -n '/^ *-/s/^ *\(-., \)\{0,1\}\(--[a-z0-9-]*\).*/\2/p'); do
        $GPT $c $o --help --help >/dev/null 2>"$T/err"
        if grep -q 'unknown option' "$T/err"; then ok=0; why="$why $c $o"; fi
        n=$((n + 1))
    done
done
check options_in_help_are_accepted sh -c "test $ok = 1 && test $n -ge 50 || { echo '$n options;$why'; false; }"

# --- convert --random -----------------------------------------------------------
M=$T/tiny.bin
$GPT convert --random 2,2,32,64 --n-vocab 512 --seed 3 -o "$M" 2>"$T/err"; rc=$?
check convert_random sh -c "test $rc = 0 && test -s '$M'"
cp "$M" "$T/copy.bin"
$GPT convert --random 1,1,16,8 --n-vocab 300 -o "$M" 2>"$T/err"; rc=$?
check convert_refuses_existing sh -c "test $rc = 1 && grep -q 'exists' '$T/err' && cmp -s '$M' '$T/copy.bin'"
$GPT convert --random 2,2,32,64 --n-vocab 512 --seed 3 -o "$M" --force 2>/dev/null; rc=$?
check convert_force_overwrites sh -c "test $rc = 0 && cmp -s '$M' '$T/copy.bin'"
$GPT convert --random 2,3,32,64 -o "$T/bad.bin" 2>"$T/err"; rc=$?
check convert_bad_shape sh -c "test $rc != 0 && grep -q 'multiple' '$T/err' && test ! -e '$T/bad.bin'"
check no_temporary_files_left sh -c "! ls '$T' | grep -q tmp"

# --- info -------------------------------------------------------------------------
$GPT info -m "$M" >"$T/info" 2>&1; rc=$?
check info sh -c "test $rc = 0 && grep -q 'n_layer    2' '$T/info' && grep -q 'n_vocab    512' '$T/info' && grep -q 'dtype      f32' '$T/info'"
$GPT info -m "$T/missing.bin" >/dev/null 2>"$T/err"; rc=$?
check info_missing_file sh -c "test $rc = 1 && grep -q 'missing.bin' '$T/err'"
head -c 1000 "$M" >"$T/trunc.bin"
$GPT info -m "$T/trunc.bin" >/dev/null 2>"$T/err"; rc=$?
check info_truncated_file sh -c "test $rc = 1 && grep -q 'truncated' '$T/err'"

# --- tokenize / detokenize ----------------------------------------------------
V="--vocab models/tokenizer/encoder.json --merges models/tokenizer/vocab.bpe"
printf 'Hello world' | $GPT tokenize $V >"$T/ids"; rc=$?
check tokenize_vocab_files sh -c "test $rc = 0 && test \"\$(cat '$T/ids')\" = '15496 995'"
printf '<|endoftext|>' | $GPT tokenize $V --special >"$T/ids"
check tokenize_special sh -c "test \"\$(cat '$T/ids')\" = '50256'"
printf 'caf\303\251 \342\202\254 \360\237\230\200 \377\000x' >"$T/text"
$GPT tokenize $V <"$T/text" | $GPT detokenize $V >"$T/back"; rc=$?
check tokenize_detokenize_round_trip sh -c "test $rc = 0 && cmp -s '$T/text' '$T/back'"
echo "15496 50257" | $GPT detokenize $V >/dev/null 2>"$T/err"; rc=$?
check detokenize_out_of_range sh -c "test $rc = 1 && grep -q '50257' '$T/err'"
echo "15496 abc" | $GPT detokenize $V >/dev/null 2>"$T/err"; rc=$?
check detokenize_not_a_number sh -c "test $rc = 1 && grep -q 'abc' '$T/err'"
printf 'abc' | $GPT tokenize -m "$M" >"$T/ids"; rc=$?
check tokenize_with_model sh -c "test $rc = 0 && test -s '$T/ids'"

# --- generate -------------------------------------------------------------------
$GPT generate -m "$M" -p "Hello" -n 12 --temp 0 -t 1 >"$T/g1" 2>"$T/err"; rc=$?
$GPT generate -m "$M" -p "Hello" -n 12 --temp 0 -t 2 >"$T/g2" 2>&1
check generate_greedy sh -c "test $rc = 0 && test -s '$T/g1' && cmp -s '$T/g1' '$T/g2'"
$GPT generate --model="$M" --prompt=Hello --n-predict=12 --temp=0 --threads=1 >"$T/g1eq" 2>&1; rc=$?
check options_equals_form_same_text sh -c "test $rc = 0 && cmp -s '$T/g1' '$T/g1eq'"
$GPT generate -m "$M" -p "Hello" -n 12 --temp 0 -t 0 >"$T/g1t0" 2>&1; rc=$?
check options_threads_0_is_one_per_cpu sh -c "test $rc = 0 && cmp -s '$T/g1' '$T/g1t0'"
check options_value_may_start_with_dash sh -c "$GPT generate -m '$M' -p -x -n 2 --stop - >/dev/null 2>&1"
$GPT generate -m "$M" -p "Hello" -n 20 --temp 1 --seed 7 >"$T/s1" 2>/dev/null
$GPT generate -m "$M" -p "Hello" -n 20 --temp 1 --seed 7 >"$T/s2" 2>/dev/null
$GPT generate -m "$M" -p "Hello" -n 20 --temp 1 --seed 8 >"$T/s3" 2>/dev/null
check generate_seed_reproduces sh -c "cmp -s '$T/s1' '$T/s2' && ! cmp -s '$T/s1' '$T/s3'"
printf 'Hello' >"$T/prompt"
$GPT generate -m "$M" -f "$T/prompt" -n 12 --temp 0 >"$T/g3" 2>/dev/null
$GPT generate -m "$M" -n 12 --temp 0 <"$T/prompt" >"$T/g4" 2>/dev/null
check generate_prompt_from_file_and_stdin sh -c "cmp -s '$T/g1' '$T/g3' && cmp -s '$T/g1' '$T/g4'"
# three printable ASCII characters of the output: a command line on Windows
# is UTF-16 and cannot carry the bytes that are not UTF-8 a random model prints
stop=$(LC_ALL=C grep -a -o "[ -~][ -~][ -~]" "$T/g1" | head -n 1)
$GPT generate -m "$M" -p "Hello" -n 12 --temp 0 --stop "$stop" >"$T/g5" 2>/dev/null; rc=$?
check generate_stop_string sh -c "test $rc = 0 && ! grep -qF -- '$stop' '$T/g5' && test \$(wc -c <'$T/g5') -lt \$(wc -c <'$T/g1')"
$GPT generate -m "$M" -p "Hello" -n 100 -c 16 >/dev/null 2>"$T/err"; rc=$?
check generate_context_full_says_so sh -c "test $rc = 0 && grep -q 'context is full' '$T/err'"
$GPT generate -m "$M" -p "Hello" -n 40 -c 16 --slide >"$T/g6" 2>"$T/err"; rc=$?
check generate_slide sh -c "test $rc = 0 && ! grep -q 'full' '$T/err'"
$GPT generate -m "$M" -p "Hello" -c 100000 >/dev/null 2>"$T/err"; rc=$?
check generate_ctx_too_large sh -c "test $rc = 1 && grep -q 'n_ctx' '$T/err'"
$GPT generate -m "$T/missing.bin" -p x >/dev/null 2>"$T/err"; rc=$?
check generate_missing_model sh -c "test $rc = 1 && grep -q 'missing.bin' '$T/err'"

$GPT generate -m "$M" -p "Hello" -n 12 --temp 0 --kv-f16 >"$T/g7" 2>"$T/err"; rc=$?
check generate_kv_f16 sh -c "test $rc = 0 && test -s '$T/g7'"
$GPT generate -m "$M" -p "Hello" --kv f8 >/dev/null 2>"$T/err"; rc=$?
check generate_kv_bad_type sh -c "test $rc = 2 && grep -q 'auto, f16 or f32' '$T/err'"
# --kv as score sees it (log-probs to 6 decimals): on f32 weights the default
# cache is f32, on q8_0 weights f16; --kv-f16 is --kv f16
$GPT convert --random 2,2,32,64 --n-vocab 512 --seed 3 --dtype q8_0 -o "$T/tiny-q8.bin" 2>/dev/null
ids="5 17 300 4 99 12 250 7 61 480 3 77"
for kv in auto f16 f32; do
    $GPT score -m "$M" --ids "$ids" --kv $kv >"$T/s32_$kv" 2>/dev/null
    $GPT score -m "$T/tiny-q8.bin" --ids "$ids" --kv $kv >"$T/sq8_$kv" 2>/dev/null
done
$GPT score -m "$T/tiny-q8.bin" --ids "$ids" --kv-f16 >"$T/sq8_kvf16" 2>/dev/null
$GPT score -m "$T/tiny-q8.bin" --ids "$ids" >"$T/sq8_default" 2>/dev/null
check kv_auto_is_f32_for_f32_weights sh -c "test -s '$T/s32_auto' && cmp -s '$T/s32_auto' '$T/s32_f32' && ! cmp -s '$T/s32_auto' '$T/s32_f16'"
check kv_auto_is_f16_for_q8_0_weights sh -c "test -s '$T/sq8_auto' && cmp -s '$T/sq8_auto' '$T/sq8_f16' && ! cmp -s '$T/sq8_auto' '$T/sq8_f32'"
check kv_default_is_auto_and_kv_f16_is_f16 sh -c "cmp -s '$T/sq8_default' '$T/sq8_auto' && cmp -s '$T/sq8_kvf16' '$T/sq8_f16'"

# --- bench: two tiny runs (each streams a 512 MiB buffer); the report is checked,
# not the figures -------------------------------------------------------------------
# (the first decodes after 20 positions, past its 8-token prompt; the second from
# an empty context)
$GPT bench -m "$T/tiny-q8.bin" -p 8 -n 4 -d 20 -r 1 --kv f32 --json >"$T/bench" 2>"$T/err"; rc=$?
ok=1
for k in model dtype threads bandwidth_gbs peak_gflops prefill_tokens prefill_tok_s decode_tokens decode_tok_s \
    bytes_per_token flops_per_token decode_roofline prefill_roofline kv_cache kv_bytes_per_token decode_roofline_kv \
    decode_depth; do
    grep -q "\"$k\": " "$T/bench" || ok=0
done
check bench_json_keys sh -c "test $rc = 0 && test $ok = 1 && test \$(wc -l <'$T/bench') = 1"
check bench_json_kv_f32 sh -c "grep -q '\"dtype\": \"q8_0\"' '$T/bench' && grep -q '\"kv_cache\": \"f32\"' '$T/bench'"
check bench_json_depth sh -c "grep -q '\"decode_depth\": 20,' '$T/bench'"
$GPT bench -m "$T/tiny-q8.bin" -p 8 -n 4 -d 0 -r 1 >"$T/bench" 2>"$T/err"; rc=$?
check bench_table_default_cache_of_q8_0_is_f16 sh -c "test $rc = 0 && grep -q 'KV cache f16' '$T/bench' && grep -q '^decode .*roofline' '$T/bench'"
check bench_table_depth_0 grep -q 'at positions 0 \.\. 3,' "$T/bench"
$GPT bench -m "$M" -p 600 -n 4 -r 1 >/dev/null 2>"$T/err"; rc=$?
check bench_prompt_too_long_for_context sh -c "test $rc = 1 && grep -q 'a prompt of 600 tokens exceeds the context' '$T/err'"
# the tiny model's context is 64: by default decoding starts after the prompt
$GPT bench -m "$T/tiny-q8.bin" -p 62 -n 4 -r 1 >/dev/null 2>"$T/err"; rc=$?
check bench_decode_after_prompt_too_long sh -c "test $rc = 1 && grep -q 'decoding 4 tokens after 62 of context exceeds the context of 64' '$T/err'"
$GPT bench -m "$T/tiny-q8.bin" -p 8 -n 4 -d 61 -r 1 >/dev/null 2>"$T/err"; rc=$?
check bench_depth_too_long sh -c "test $rc = 1 && grep -q 'after 61 of context exceeds' '$T/err'"
# decoding that fills the context exactly is allowed
$GPT bench -m "$T/tiny-q8.bin" -p 8 -n 4 -d 60 -r 1 >"$T/bench" 2>"$T/err"; rc=$?
check bench_depth_fills_context sh -c "test $rc = 0 && grep -q 'at positions 60 \.\. 63,' '$T/bench'"

# --- the README's first command prints the README's text, with 1 and 2 threads ---
awk '/on any machine and with any thread count/{f=1;next} f==1&&/^```$/{f=2;next} f==2&&/^```$/{exit} f==2{print}' \
    README.md >"$T/readme_text"
for t in 1 2; do
    { $GPT generate -p "And God said" -t $t; echo; } >"$T/demo_text_$t" 2>"$T/err"
    check readme_demo_text_threads_$t sh -c "test -s '$T/readme_text' && cmp -s '$T/readme_text' '$T/demo_text_$t'"
done

# --- score ------------------------------------------------------------------------
$GPT score -m "$M" --ids "1 2 3 4 5" >"$T/score" 2>"$T/err"; rc=$?
check score_format sh -c "test $rc = 0 && test \$(wc -l <'$T/score') = 5 && head -1 '$T/score' | grep -qE '^1	2	-[0-9]+\.[0-9]+$' && tail -1 '$T/score' | grep -qE '^ppl	[0-9.]+$'"
awk 'BEGIN{for(i=0;i<300;i++) printf "%d ", (i*37)%512}' >"$T/many"
$GPT score -m "$M" --ids "$(cat "$T/many")" -c 32 >"$T/score" 2>/dev/null; rc=$?
check score_longer_than_context sh -c "test $rc = 0 && test \$(wc -l <'$T/score') = 300"
printf 'Hello there, world.' | $GPT score -m "$M" >"$T/score" 2>/dev/null; rc=$?
check score_text_on_stdin sh -c "test $rc = 0 && tail -1 '$T/score' | grep -q '^ppl'"
$GPT score -m "$M" --ids "1" >/dev/null 2>"$T/err"; rc=$?
check score_needs_two_tokens sh -c "test $rc = 1 && grep -q 'at least 2' '$T/err'"
$GPT score -m "$M" --ids "1 999" >/dev/null 2>"$T/err"; rc=$?
check score_id_out_of_range sh -c "test $rc = 1 && grep -q '999' '$T/err'"

# --- issue 17: inputs that are not regular files, size limits, exit statuses, -----
# write errors, non-finite weights, pipelines, bench defaults, --no-mmap
# POSIX_ONLY: FIFOs, devices, closed descriptors and signals are tested on POSIX
# systems, not under wine (the Windows build is checked for the rest).
case "${TEST_WRAPPER:-}" in *wine*) POSIX_ONLY= ;; *) POSIX_ONLY=1 ;; esac
posix_skip() { echo "SKIP $1: POSIX files and signals; not under wine"; }
# limited COMMAND...: a command that must end by itself (a regression would hang)
limited() { timeout 60 "$@"; }
fails_with() { # name words rc command...: exit status rc, words on stderr, nothing on stdout
    name=$1; words=$2; want=$3; shift 3
    "$@" >"$T/out" 2>"$T/err"; rc=$?
    if [ "$rc" = "$want" ] && grep -q -- "$words" "$T/err" && test ! -s "$T/out"; then pass "$name"
    else fail "$name" "exit $rc (want $want): $(head -c 300 "$T/err")"; fi
}
if [ -n "$POSIX_ONLY" ]; then
    mkfifo "$T/fifo"
    fails_with info_fifo_model "FIFO (named pipe), not a regular file" 1 limited $GPT info -m "$T/fifo"
    fails_with tokenize_fifo_vocab "FIFO (named pipe), not a regular file" 1 \
        limited sh -c "echo hi | $GPT tokenize --vocab '$T/fifo' --merges models/tokenizer/vocab.bpe"
    fails_with tokenize_dev_zero_vocab "/dev/zero is a character device" 1 \
        limited sh -c "echo hi | $GPT tokenize --vocab /dev/zero --merges models/tokenizer/vocab.bpe"
    fails_with generate_file_dev_zero "/dev/zero is a character device" 1 limited $GPT generate -m "$M" -f /dev/zero
    fails_with generate_file_fifo "FIFO" 1 limited $GPT generate -m "$M" -f "$T/fifo"
    fails_with score_file_fifo "FIFO" 1 limited $GPT score -m "$M" -f "$T/fifo"
    fails_with generate_stdin_dev_zero "stdin: more than 256 MiB" 1 limited sh -c "$GPT generate -m '$M' </dev/zero"
    fails_with score_ids_stdin_dev_zero "stdin: more than 256 MiB" 1 limited sh -c "$GPT score -m '$M' --ids - </dev/zero"
else
    for n in info_fifo_model tokenize_fifo_vocab tokenize_dev_zero_vocab generate_file_dev_zero generate_file_fifo \
        score_file_fifo generate_stdin_dev_zero score_ids_stdin_dev_zero; do posix_skip $n; done
fi
# sparse files just over the limits
dd if=/dev/zero of="$T/big.json" bs=1 count=1 seek=67108864 2>/dev/null
fails_with tokenize_vocab_too_large "more than the 64 MiB" 1 \
    sh -c "echo hi | $GPT tokenize --vocab '$T/big.json' --merges models/tokenizer/vocab.bpe"
dd if=/dev/zero of="$T/big.txt" bs=1 count=1 seek=268435456 2>/dev/null
fails_with generate_prompt_file_too_large "more than the 256 MiB" 1 $GPT generate -m "$M" -f "$T/big.txt"
rm -f "$T/big.json" "$T/big.txt"
fails_with generate_model_is_directory "is a directory" 1 $GPT generate -m "$T" -p x

# a prompt that does not fit: exit 1 before any text, with a message
fails_with generate_prompt_longer_than_context "the prompt does not fit" 1 $GPT generate -p "And God said" -c 2
awk 'BEGIN{for(i=0;i<400;i++) printf "word%d ", i}' >"$T/long.txt"
fails_with generate_file_longer_than_context "the prompt does not fit" 1 $GPT generate -m "$M" -f "$T/long.txt" -n 5

# write errors: exit 1 and a message, for every command
if [ -n "$POSIX_ONLY" ] && [ -c /dev/full ]; then
    out_fails() { # name command...: its stdout goes to /dev/full
        name=$1; shift
        "$@" >/dev/full 2>"$T/err"; rc=$?
        if [ $rc = 1 ] && grep -q 'cannot write to stdout: No space left on device' "$T/err"; then pass "$name"
        else fail "$name" "exit $rc: $(head -c 300 "$T/err")"; fi
    }
    out_fails write_error_generate $GPT generate -m "$M" -p x -n 5
    out_fails write_error_info $GPT info -m "$M"
    out_fails write_error_help $GPT --help
    out_fails write_error_command_help $GPT generate --help
    out_fails write_error_version $GPT --version
    out_fails write_error_tokenize sh -c "echo hi | $GPT tokenize -m '$M'"
    out_fails write_error_detokenize sh -c "echo 1 2 3 | $GPT detokenize -m '$M'"
    out_fails write_error_score $GPT score -m "$M" --ids "1 2 3"
    out_fails write_error_bench_json $GPT bench -m "$M" -p 4 -n 2 -r 1 --json
    $GPT generate -m "$M" -p x -n 5 >&- 2>"$T/err"; rc=$?
    check write_error_closed_stdout sh -c "test $rc = 1 && grep -q 'cannot write to stdout' '$T/err'"
    $GPT info -m "$M" >&- 2>"$T/err"; rc=$?
    check write_error_closed_stdout_info sh -c "test $rc = 1 && grep -q 'cannot write to stdout' '$T/err'"
    # a reader that has gone: with SIGPIPE ignored the write fails with EPIPE
    { (trap '' PIPE; exec $GPT generate -m "$M" -p x -n 3000 --ignore-eos --slide 2>"$T/err"); echo $? >"$T/rc"; } | true
    check write_error_broken_pipe sh -c "test \"\$(cat '$T/rc')\" = 1 && grep -q 'cannot write to stdout: Broken pipe' '$T/err'"
else
    for n in write_error_generate write_error_info write_error_help write_error_command_help write_error_version \
        write_error_tokenize write_error_detokenize write_error_score write_error_bench_json write_error_closed_stdout \
        write_error_closed_stdout_info write_error_broken_pipe; do posix_skip $n; done
fi

# non-finite weights: a NaN in h.0.attn.c_attn.bias (tensor 5) of a copy of the model
cp "$M" "$T/nan.bin"
off=$(od -An -t u8 -j $((128 + 32 * 5 + 16)) -N 8 "$T/nan.bin" | tr -d ' ')
printf '\000\000\300\177' | dd of="$T/nan.bin" bs=1 seek=$((off + 8)) conv=notrunc 2>/dev/null
$GPT info -m "$T/nan.bin" --check >"$T/out" 2>"$T/err"; rc=$?
check info_check_names_nan sh -c "test $rc = 1 && grep -q 'tensor 5 (h.0.attn.c_attn.bias) holds NaN at element 2 (row 0, column 2)' '$T/err'"
$GPT info -m "$M" --check >"$T/out" 2>"$T/err"; rc=$?
check info_check_finite sh -c "test $rc = 0 && grep -q '^check      all 43904 weights are finite' '$T/out'"
fails_with generate_nan_weights "not finite" 1 $GPT generate -m "$T/nan.bin" -p Hello -n 5
fails_with score_nan_weights "not finite" 1 $GPT score -m "$T/nan.bin" --ids "1 2 3 4"

# pipelines
printf 'And God said unto Moses, Go' >"$T/text"
$GPT tokenize <"$T/text" | $GPT score --ids - >"$T/s_ids" 2>"$T/err"; rc=$?
$GPT score <"$T/text" >"$T/s_text" 2>/dev/null
$GPT score -f "$T/text" >"$T/s_file" 2>/dev/null
check score_ids_from_stdin_is_the_text_score sh -c "test $rc = 0 && test -s '$T/s_ids' && cmp -s '$T/s_ids' '$T/s_text'"
check score_file_is_stdin sh -c "cmp -s '$T/s_file' '$T/s_text'"
$GPT tokenize <"$T/text" | $GPT score >/dev/null 2>"$T/err"
check score_warns_about_ids_as_text grep -q 'use --ids -' "$T/err"
usage_case score_ids_and_file "not both" score --ids "1 2" -f "$T/text"
$GPT generate -m "$M" -f - -n 12 --temp 0 <"$T/prompt" >"$T/g8" 2>/dev/null; rc=$?
check generate_file_dash_is_stdin sh -c "test $rc = 0 && cmp -s '$T/g1' '$T/g8'"
had_dash=0; test -e ./- && had_dash=1
$GPT convert --random 1,1,16,8 --n-vocab 300 -o - >"$T/out" 2>"$T/err"; rc=$?
check convert_output_dash_refused sh -c "test $rc = 2 && grep -q 'not supported' '$T/err' && { test $had_dash = 1 || test ! -e ./-; } && test ! -s '$T/out'"

# bench: the defaults fit the model's context (the demo model's is 256)
$GPT bench -r 1 --json >"$T/bench" 2>"$T/err"; rc=$?
check bench_defaults_fit_the_demo sh -c "test $rc = 0 && grep -q '\"prefill_tokens\": 128,' '$T/bench' && grep -q '\"decode_tokens\": 128,' '$T/bench'"
$GPT bench -m "$M" -r 1 -p 8 --json >"$T/bench" 2>"$T/err"; rc=$?
check bench_default_gen_fits sh -c "test $rc = 0 && grep -q '\"decode_tokens\": 56,' '$T/bench'"

# -v: the prompt's speed and generation's speed apart
$GPT generate -m "$M" -p "Hello there" -n 8 -v >/dev/null 2>"$T/err"; rc=$?
check verbose_prompt_and_generation_rates sh -c "test $rc = 0 && grep -q '^gpt generate: prompt: [0-9]* tokens in .* tokens/s)' '$T/err' && grep -q '^gpt generate: generation: 8 tokens in .* tokens/s), stop: max tokens' '$T/err'"

# a model file truncated (or replaced) while it is in use
if [ -n "$POSIX_ONLY" ] && [ -z "${TEST_WRAPPER:-}" ]; then
    $GPT convert --random 2,2,64,256 --seed 5 -o "$T/big.bin" 2>/dev/null
    # background_run NAME MODEL ARGS... : starts a long generation, waits for its first text
    background_run() {
        $GPT generate -m "$@" -p Hello -n 1000000 --ignore-eos --slide -t 1 >"$T/bg_out" 2>"$T/bg_err" &
        bg=$!
        i=0
        while [ ! -s "$T/bg_out" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
    }
    # background_check NAME: still running half a second later, then stopped by us
    background_check() {
        sleep 0.5
        alive=0; kill -0 $bg 2>/dev/null && alive=1
        kill $bg 2>/dev/null; wait $bg; rc=$?
        if [ $alive = 1 ] && [ $rc = 143 ]; then pass "$1"; else fail "$1" "alive $alive, exit $rc: $(head -c 200 "$T/bg_err")"; fi
    }
    cp "$T/big.bin" "$T/victim.bin"
    background_run "$T/victim.bin" --no-mmap
    : >"$T/victim.bin" # truncated to nothing
    background_check no_mmap_survives_truncation
    cp "$T/big.bin" "$T/victim.bin"
    background_run "$T/victim.bin"
    $GPT convert --random 2,2,64,256 --seed 6 -o "$T/victim.bin" --force 2>/dev/null
    background_check mapped_model_survives_convert_force
    rm -f "$T/big.bin" "$T/victim.bin"
else
    echo "SKIP no_mmap_survives_truncation: background processes and signals; native POSIX runs only"
    echo "SKIP mapped_model_survives_convert_force: background processes and signals; native POSIX runs only"
fi

rm -rf "$T"
