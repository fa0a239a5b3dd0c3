#!/bin/sh
# test_generate_cli.sh - gpt generate's many sequences (-N), JSON lines,
# log-probabilities, Hugging Face's generate() options, random seeds, the
# usage errors of their combinations, and gpt bench -B. Run from the
# repository root; $GPT is the binary. The JSON is read with Python (checks
# that need it say SKIP without it).
GPT=${GPT:-build/gpt}
BUILD=${BUILD:-build}
PY=${PYTHON:-python3}
T=$BUILD/tmp_generate_cli
rm -rf "$T"; mkdir -p "$T"

pass() { echo "PASS $1"; }
fail() { echo "FAIL $1: $2"; }
check() { name=$1; shift; if "$@"; then pass "$name"; else fail "$name" "$*"; fi; }
HAVE_PY=1
$PY -c 'import json' >/dev/null 2>&1 || HAVE_PY=
# pycheck NAME FILE PYTHON-CODE: the code gets `lines` (each line of FILE
# parsed as JSON) and `raw` (FILE's bytes); it passes unless it raises
pycheck() {
    name=$1; file=$2; code=$3
    if [ -z "$HAVE_PY" ]; then echo "SKIP $name: no $PY to read the JSON"; return; fi
    if $PY - "$file" >"$T/py_err" 2>&1 <<EOF
import json, sys
raw = open(sys.argv[1], "rb").read()
lines = [json.loads(l) for l in raw.decode("utf-8").splitlines()]
$code
EOF
    then pass "$name"; else fail "$name" "$(tail -n 5 "$T/py_err")"; fi
}
# usage_case NAME WORDS ARGS...: exit status 2, WORDS in the message, nothing on stdout
usage_case() {
    name=$1; words=$2; shift 2
    $GPT generate "$@" >"$T/out" 2>"$T/err"; rc=$?
    if [ $rc = 2 ] && grep -q -- "$words" "$T/err" && test ! -s "$T/out"; then pass "$name"
    else fail "$name" "gpt generate $*: exit $rc: $(cat "$T/err")"; fi
}
P="And God said"

# --- -N: K continuations, each the text of a run with seed + i ---------------------
$GPT generate -p "$P" -n 16 -N 3 --seed 11 >"$T/n3" 2>"$T/err"; rc=$?
: >"$T/n3_expected"
for i in 0 1 2; do
    printf -- '--- %d ---\n' $i >>"$T/n3_expected"
    $GPT generate -p "$P" -n 16 --seed $((11 + i)) >>"$T/n3_expected" 2>/dev/null
    printf '\n' >>"$T/n3_expected"
done
check n_sequences_three_sections sh -c "test $rc = 0 && test \$(grep -c '^--- [0-9] ---\$' '$T/n3') = 3"
check n_sequences_each_is_seed_plus_i cmp -s "$T/n3" "$T/n3_expected"
# the same with more threads, and with the sequences' text as JSON
$GPT generate -p "$P" -n 16 -N 3 --seed 11 -t 1 >"$T/n3t1" 2>/dev/null
check n_sequences_any_thread_count cmp -s "$T/n3" "$T/n3t1"
$GPT generate -p "$P" -n 16 -N 3 --seed 11 --json >"$T/n3.json" 2>"$T/err"; rc=$?
for i in 0 1 2; do $GPT generate -p "$P" -n 16 --seed $((11 + i)) >"$T/single_$i" 2>/dev/null; done
pycheck n_sequences_json_text_is_seed_plus_i "$T/n3.json" "
assert [l['index'] for l in lines] == [0, 1, 2], [l['index'] for l in lines]
for i, l in enumerate(lines):
    want = open('$T/single_%d' % i, 'rb').read().decode('utf-8')
    assert l['text'] == want, (i, l['text'], want)
    assert l['seed'] == 11 and l['stop_reason'] == 'length' and len(l['tokens']) == 16
"
# the README's example
awk '/^\$ gpt generate -p "And God said" -n 6 --json$/{getline; print; exit}' README.md >"$T/readme_json"
$GPT generate -p "$P" -n 6 --json >"$T/readme_json_out" 2>/dev/null
check readme_json_example sh -c "test -s '$T/readme_json' && cmp -s '$T/readme_json' '$T/readme_json_out'"
# -N 1 is the plain output: no header
$GPT generate -p "$P" -n 16 -N 1 --seed 11 >"$T/n1" 2>/dev/null
check n_sequences_one_has_no_header cmp -s "$T/n1" "$T/single_0"

# --- --json ---------------------------------------------------------------------------
$GPT generate -p "$P" -n 12 --json >"$T/j1" 2>"$T/err"; rc=$?
$GPT generate -p "$P" -n 12 >"$T/t1" 2>/dev/null
check json_exit_status test $rc = 0
pycheck json_shape "$T/j1" "
assert len(lines) == 1
l = lines[0]
assert sorted(l) == ['index', 'seed', 'stop_reason', 'text', 'tokens'], sorted(l)
assert l['index'] == 0 and l['seed'] == 42 and l['stop_reason'] == 'length'
assert len(l['tokens']) == 12 and all(isinstance(t, int) and 0 <= t < 50257 for t in l['tokens'])
assert l['text'] == open('$T/t1', 'rb').read().decode('utf-8')
"
# escaping: a prompt with quotes, a backslash, a tab, a control character,
# a newline, UTF-8 and bytes that are not UTF-8, echoed into the JSON text
printf 'say "hi" \\ \t\001 caf\303\251\n\377\300\200 \342\202 end' >"$T/odd_prompt"
$GPT generate -f "$T/odd_prompt" -n 4 --echo --json >"$T/j_odd" 2>"$T/err"; rc=$?
check json_escaping_exit_status test $rc = 0
pycheck json_escaping "$T/j_odd" "
assert raw.count(b'\n') == 1 and raw.endswith(b'}\n'), raw[-20:]
assert b'\\\\u0001' in raw and b'\\\\t' in raw and b'\\\\\"hi\\\\\"' in raw, raw[:80]
want = 'say \"hi\" \\\\ \t\x01 caf\u00e9\n\ufffd\ufffd\ufffd \ufffd end'
assert lines[0]['text'].startswith(want), (lines[0]['text'], want)
"
# --echo in text mode: the prompt's exact bytes, then the same continuation
$GPT generate -f "$T/odd_prompt" -n 4 >"$T/odd_plain" 2>/dev/null
$GPT generate -f "$T/odd_prompt" -n 4 --echo >"$T/odd_echo" 2>/dev/null
cat "$T/odd_prompt" "$T/odd_plain" >"$T/odd_expected"
check echo_prints_prompt_then_text cmp -s "$T/odd_echo" "$T/odd_expected"
$GPT generate -p "$P" -n 8 -N 2 --echo >"$T/echo2" 2>/dev/null
check echo_in_every_section sh -c "test \$(grep -c '^And God said' '$T/echo2') = 2"

# --- --logprobs ------------------------------------------------------------------------
$GPT generate -p "$P" -n 10 -N 2 --logprobs 5 --json >"$T/lp" 2>"$T/err"; rc=$?
check logprobs_exit_status test $rc = 0
pycheck logprobs_consistent "$T/lp" "
for l in lines:
    lp = l['logprobs']
    assert [e['token'] for e in lp] == l['tokens']
    for e in lp:
        assert e['logprob'] <= 0 and len(e['top']) == 5
        tops = [x[1] for x in e['top']]
        assert all(x <= 0 for x in tops) and tops == sorted(tops, reverse=True)
        assert tops[0] >= e['logprob'], e
        # the chosen id, when among the top, has the same log-probability
        for t, x in e['top']:
            if t == e['token']: assert x == e['logprob'], e
    assert ''.join(e['text'] for e in lp) == l['text']
"
$GPT generate -p "$P" -n 3 --logprobs 0 --json >"$T/lp0" 2>/dev/null
pycheck logprobs_zero_is_the_chosen_only "$T/lp0" "
lp = lines[0]['logprobs']
assert len(lp) == 3 and all(e['top'] == [] and e['logprob'] <= 0 for e in lp)
"
# a random model with a 512-token vocabulary writes bytes that are not UTF-8:
# such a token's text has U+FFFD and its entry the exact bytes; the bytes of
# every token together are what detokenize gives
M=$T/tiny.bin
$GPT convert --random 2,2,32,64 --n-vocab 512 --seed 3 -o "$M" >/dev/null 2>&1
$GPT generate -m "$M" -p "Hello" -n 40 --seed 5 --logprobs 3 --json >"$T/lp_bytes" 2>"$T/err"; rc=$?
check logprobs_random_bytes_exit_status test $rc = 0
if [ -n "$HAVE_PY" ]; then
    $PY -c "import json,sys; print(' '.join(str(t) for t in json.loads(open(sys.argv[1]).read())['tokens']))" \
        "$T/lp_bytes" | $GPT detokenize -m "$M" >"$T/lp_bytes_exact" 2>/dev/null
fi
pycheck logprobs_invalid_utf8_bytes "$T/lp_bytes" "
exact = open('$T/lp_bytes_exact', 'rb').read()
got = b''
n_bytes = 0
for e in lines[0]['logprobs']:
    if 'bytes' in e:
        n_bytes += 1
        assert '\ufffd' in e['text'], e
        got += bytes(e['bytes'])
    else:
        got += e['text'].encode('utf-8')
assert n_bytes > 0, 'no token with bytes that are not UTF-8: pick another seed'
assert got == exact, (got, exact)
"

# --- Hugging Face's options -----------------------------------------------------------
# max_length counts the prompt (3 tokens); alone, it lifts -n's default of 128;
# -n given wins over it, as max_new_tokens does in Hugging Face's generate()
$GPT generate -p "$P" --greedy --ignore-eos --max-length 10 --json >"$T/ml" 2>/dev/null
$GPT generate -p "$P" --greedy --ignore-eos --max-length 10 -n 12 --json >>"$T/ml" 2>"$T/ml_err"
$GPT generate -p "$P" --greedy --ignore-eos --max-length 150 --json >>"$T/ml" 2>/dev/null
$GPT generate -p "$P" --greedy --ignore-eos --max-length 3 --json >>"$T/ml" 2>/dev/null
$GPT generate -p "$P" --greedy --ignore-eos -n 7 --json >>"$T/ml" 2>/dev/null
pycheck max_length_semantics "$T/ml" "
n = [len(l['tokens']) for l in lines]
assert n == [7, 12, 147, 0, 7], n
assert all(l['stop_reason'] == 'length' for l in lines)
assert lines[0]['tokens'] == lines[4]['tokens'] == lines[1]['tokens'][:7]
"
check max_length_with_n_warns grep -q 'warning: -n 12 wins over --max-length 10' "$T/ml_err"
# min_new_tokens: a seed whose text ends with <|endoftext|> early goes on
if [ -n "$HAVE_PY" ]; then
    eos_seed=
    for s in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
        $GPT generate -p "$P" -n 200 --seed $s --json >"$T/eos" 2>/dev/null
        if $PY -c "import json,sys; l=json.loads(open(sys.argv[1]).read()); sys.exit(0 if l['stop_reason']=='eos' and len(l['tokens'])<100 else 1)" "$T/eos"; then
            eos_seed=$s; break
        fi
    done
    if [ -n "$eos_seed" ]; then
        $GPT generate -p "$P" -n 200 --seed $eos_seed --min-new-tokens 100 --json >>"$T/eos" 2>/dev/null
        pycheck min_new_tokens_holds_back_eos "$T/eos" "
a, b = lines
assert a['stop_reason'] == 'eos' and a['tokens'][-1] == 50256 and len(a['tokens']) < 100
assert 50256 not in b['tokens'][:100] and len(b['tokens']) >= 100, (len(b['tokens']), b['stop_reason'])
"
    else
        fail min_new_tokens_holds_back_eos "no seed in 1..20 ends with <|endoftext|> within 100 tokens"
    fi
else
    echo "SKIP min_new_tokens_holds_back_eos: no $PY to read the JSON"
fi
# --greedy is --do-sample false is --temp 0 (HF's default)
$GPT generate -p "$P" -n 20 --greedy >"$T/g1" 2>/dev/null
$GPT generate -p "$P" -n 20 --do-sample false >"$T/g2" 2>/dev/null
$GPT generate -p "$P" -n 20 --temp 0 >"$T/g3" 2>/dev/null
check greedy_spellings_agree sh -c "test -s '$T/g1' && cmp -s '$T/g1' '$T/g2' && cmp -s '$T/g1' '$T/g3'"
# no_repeat_ngram_size: greedy text on the demo repeats " I will I will"
$GPT generate -p "$P" -n 40 --greedy --json >"$T/ng" 2>/dev/null
$GPT generate -p "$P" -n 40 --greedy --no-repeat-ngram 2 --json >>"$T/ng" 2>/dev/null
pycheck no_repeat_ngram "$T/ng" "
def bigrams(ids): return [tuple(ids[i:i + 2]) for i in range(len(ids) - 1)]
prompt = [1870, 1793, 531]
a, b = (prompt + l['tokens'] for l in lines)
assert len(set(bigrams(a))) < len(bigrams(a)), 'the greedy text had no repeated bigram'
assert len(set(bigrams(b))) == len(bigrams(b)), 'a bigram repeats'
"
$GPT generate -p "$P" -n 30 --seed 3 >"$T/pp0" 2>/dev/null
$GPT generate -p "$P" -n 30 --seed 3 --presence-penalty 1.5 --frequency-penalty 0.5 >"$T/pp1" 2>"$T/err"; rc=$?
check presence_frequency_penalties_change_the_text sh -c "test $rc = 0 && test -s '$T/pp1' && ! cmp -s '$T/pp0' '$T/pp1'"
# beam search: the best hypotheses, best first, with their scores
$GPT generate -p "$P" -n 12 --beams 3 -N 3 --json >"$T/beam" 2>"$T/err"; rc=$?
check beams_exit_status test $rc = 0
pycheck beams_scores_best_first "$T/beam" "
assert [l['index'] for l in lines] == [0, 1, 2]
s = [l['score'] for l in lines]
assert s == sorted(s, reverse=True), s
assert len(set(tuple(l['tokens']) for l in lines)) == 3
"
$GPT generate -p "$P" -n 12 --beams 3 -N 2 --logprobs 2 --json >"$T/beam_lp" 2>/dev/null
pycheck beams_logprobs "$T/beam_lp" "
for l in lines:
    assert [e['token'] for e in l['logprobs']] == l['tokens']
    assert all(e['logprob'] <= 0 and e['top'][0][1] >= e['logprob'] for e in l['logprobs'])
"
$GPT generate -p "$P" -n 12 --beams 3 -N 2 >"$T/beam_text" 2>/dev/null; rc=$?
check beams_text_sections sh -c "test $rc = 0 && test \$(grep -c '^--- [01] ---\$' '$T/beam_text') = 2"
ok=1
for e in false true never; do
    $GPT generate -p "$P" -n 8 --beams 2 --early-stopping $e --length-penalty 0.5 --json >"$T/es_$e" 2>/dev/null || ok=0
done
check beams_early_stopping_and_length_penalty test $ok = 1

# --- Hugging Face's generate() through the command: the float64 reference's
# decoding goldens (tests/reference/README.md) turned into flags; the ids
# exactly, beam scores and log-probabilities within 1e-4 --------------------------
if [ -n "$HAVE_PY" ]; then
    GPT="$GPT" $PY - tests/data/golden/demo.generate tests/data/golden/ckpt_l2_h3_c36_t64_v300_f32.generate \
        >"$T/hf" 2>&1 <<'EOF'
import json, os, shlex, subprocess, sys
gpt = shlex.split(os.environ["GPT"])
def cases(path):
    model, case = None, None
    for line in open(path, encoding="utf-8"):
        w = line.split()
        if not w: continue
        if w[0] == "model": model = w[2]
        elif w[0] == "case": case = {"name": w[1], "seqs": [], "scores": [], "lp": [], "top": {}}
        elif w[0] == "prompt-text": case["text"] = json.loads(line[len("prompt-text "):])
        elif w[0] == "params": case["params"] = dict(kv.split("=") for kv in w[1:])
        elif w[0] == "seq": case["seqs"].append((w[2], [int(x) for x in w[4:]]))
        elif w[0] == "score": case["scores"].append(float(w[2]))
        elif w[0] == "logprob": case["lp"].append([float(x) for x in w[3:]])
        elif w[0] == "top":
            case["top"][(int(w[1]), int(w[2]))] = [(int(a), float(b)) for a, b in (x.split(":") for x in w[4:])]
        elif w[0] == "end-case": yield model, case
for path in sys.argv[1:]:
    for model, c in cases(path):
        name = "hf_golden_%s_%s" % (os.path.basename(path).split(".")[0], c["name"])
        if "text" not in c:
            print("SKIP %s: the prompt is ids only" % name)
            continue
        p = c["params"]
        args = ["generate", "-m", model, "-p", c["text"], "--json", "--logprobs", "5", "--kv", "f32"]
        args += ["--beams", p["num_beams"]] if int(p["num_beams"]) > 1 else ["--greedy"]
        if p["max_new_tokens"] != "-": args += ["-n", p["max_new_tokens"]]
        if p["max_length"] != "-": args += ["--max-length", p["max_length"]]
        args += ["--min-new-tokens", p["min_new_tokens"], "--repeat-penalty", p["repetition_penalty"],
                 "--presence-penalty", p["presence_penalty"], "--frequency-penalty", p["frequency_penalty"],
                 "--no-repeat-ngram", p["no_repeat_ngram_size"], "--length-penalty", p["length_penalty"],
                 "--early-stopping", p["early_stopping"], "-N", p["num_return_sequences"]]
        r = subprocess.run(gpt + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        why = []
        try:
            lines = [json.loads(l) for l in r.stdout.decode("utf-8").splitlines()]
        except ValueError as e:
            lines = []
            why.append("output is not JSON lines: %s" % e)
        if r.returncode != 0: why.append("exit %d: %s" % (r.returncode, r.stderr.decode()[-300:]))
        elif len(lines) != len(c["seqs"]): why.append("%d sequences, not %d" % (len(lines), len(c["seqs"])))
        for i, l in enumerate(lines[:len(c["seqs"])]):
            kind, ids = c["seqs"][i]
            if l["tokens"] != ids:
                why.append("seq %d: ids %s, not %s" % (i, l["tokens"], ids))
                continue
            if l["stop_reason"] != kind: why.append("seq %d: stop %s, not %s" % (i, l["stop_reason"], kind))
            if int(p["num_beams"]) > 1 and abs(l["score"] - c["scores"][i]) > 1e-4:
                why.append("seq %d: score %r, not %r" % (i, l["score"], c["scores"][i]))
            for j, e in enumerate(l["logprobs"]):
                want = c["top"][(i, j)]
                if abs(e["logprob"] - c["lp"][i][j]) > 1e-4:
                    why.append("seq %d id %d: logprob %r, not %r" % (i, j, e["logprob"], c["lp"][i][j]))
                    break
                if len(e["top"]) != len(want) or any(abs(a[1] - b[1]) > 1e-4 for a, b in zip(e["top"], want)):
                    why.append("seq %d id %d: top %s, not %s" % (i, j, e["top"], want))
                    break
        print(("FAIL %s: %s" % (name, "; ".join(why)[:600])) if why else "PASS %s" % name)
EOF
    cat "$T/hf"
else
    echo "SKIP hf_goldens: no $PY to read the JSON"
fi

# --- random seeds ------------------------------------------------------------------
$GPT generate -p "$P" -n 12 --seed -1 --json -v >"$T/rs" 2>"$T/rs_err"; rc=$?
check seed_random_exit_status test $rc = 0
if [ -n "$HAVE_PY" ]; then
    seed=$($PY -c "import json,sys; print(json.loads(open(sys.argv[1]).read())['seed'])" "$T/rs")
    $GPT generate -p "$P" -n 12 --seed "$seed" --json >"$T/rs2" 2>/dev/null
    check seed_random_reruns_with_its_seed cmp -s "$T/rs" "$T/rs2"
    check seed_random_shown_by_verbose grep -q "^gpt generate: seed $seed (drawn at random" "$T/rs_err"
    $GPT generate -p "$P" -n 12 --seed -1 --json >"$T/rs3" 2>/dev/null
    seed3=$($PY -c "import json,sys; print(json.loads(open(sys.argv[1]).read())['seed'])" "$T/rs3")
    check seed_random_differs_and_fits_a_double sh -c "test '$seed' != '$seed3' && test '$seed' -lt 9007199254740992"
else
    for n in seed_random_reruns_with_its_seed seed_random_shown_by_verbose seed_random_differs_and_fits_a_double; do
        echo "SKIP $n: no $PY to read the JSON"
    done
fi

# --- values and combinations that are refused: exit 2, nothing printed --------------
usage_case bad_beams_zero "--beams expects an integer in 1 .. 65536, not \"0\"" -p x --beams 0
usage_case bad_n_sequences_zero "-N (--n-sequences) expects an integer in 1 .. 65536, not \"0\"" -p x -N 0
usage_case bad_n_sequences_more_than_beams "-N (--n-sequences) 5 is more than --beams 4" -p x --beams 4 -N 5
usage_case bad_no_repeat_ngram_negative "--no-repeat-ngram expects an integer in 0 .. 2147483647, not \"-1\"" \
    -p x --no-repeat-ngram -1
usage_case bad_logprobs_21 "--logprobs expects an integer in 0 .. 20, not \"21\"" -p x --json --logprobs 21
usage_case bad_logprobs_without_json "--logprobs goes with --json" -p x --logprobs 2
usage_case bad_do_sample_with_beams "--do-sample true does not go with --beams 2" -p x --beams 2 --do-sample true
usage_case bad_do_sample_value "--do-sample expects false or true, not \"yes\"" -p x --do-sample yes
usage_case bad_greedy_many_sequences "greedy search (--greedy, --do-sample false) gives one sequence" -p x --greedy -N 2
usage_case bad_do_sample_temp_0 "--do-sample true needs a temperature above 0" -p x --do-sample true --temp 0
usage_case bad_early_stopping "--early-stopping expects false, true or never, not \"maybe\"" -p x --early-stopping maybe
usage_case bad_max_length_zero "--max-length expects an integer in 1 .. 2147483647, not \"0\"" -p x --max-length 0
usage_case bad_min_new_tokens_negative "--min-new-tokens expects an integer in 0 .. 2147483647" -p x --min-new-tokens -3
usage_case bad_presence_penalty "--presence-penalty expects a number in -2 .. 2, not \"3\"" -p x --presence-penalty 3
usage_case bad_frequency_penalty "--frequency-penalty expects a number in -2 .. 2, not \"nan\"" -p x --frequency-penalty nan
usage_case bad_length_penalty "--length-penalty expects a number" -p x --length-penalty inf
usage_case bad_stop_with_beams "--stop does not go with --beams" -p x --beams 2 --stop y
usage_case bad_slide_with_beams "--slide does not go with --beams" -p x --beams 2 --slide
usage_case bad_seed_minus_two "--seed expects an integer in 0 .. 18446744073709551615 or -1" -p x --seed -2
# what only the model can tell: exit 1
$GPT generate -p "$P" -c 3 -N 2 >"$T/out" 2>"$T/err"; rc=$?
check no_room_for_many_sequences sh -c "test $rc = 1 && grep -q 'no room to generate' '$T/err' && test ! -s '$T/out'"
$GPT generate -p "$P" -n 30 -c 10 -N 2 --json >"$T/cf" 2>"$T/err"; rc=$?
check context_full_many_sequences sh -c "test $rc = 0 && grep -q '2 of 2 continuations stopped: the context is full' '$T/err'"
pycheck context_full_stop_reason "$T/cf" "
assert [l['stop_reason'] for l in lines] == ['context_full'] * 2 and all(len(l['tokens']) == 7 for l in lines)
"

# --- gpt bench -B: tiny runs (each streams a 512 MiB buffer); keys, not speed ------
$GPT bench -m "$M" -p 8 -n 4 -r 1 -B 1,2,3 --json >"$T/bench" 2>"$T/err"; rc=$?
check bench_batches_exit_status sh -c "test $rc = 0 && test \$(wc -l <'$T/bench') = 3"
pycheck bench_batches_json "$T/bench" "
keys = '''model dtype threads bandwidth_gbs peak_gflops prefill_tokens prefill_tok_s decode_tokens decode_tok_s
    bytes_per_token flops_per_token decode_roofline prefill_roofline kv_cache kv_bytes_per_token decode_roofline_kv
    decode_depth batch decode_tok_s_per_seq bytes_per_step decode_flops_per_token decode_bound'''.split()
assert [l['batch'] for l in lines] == [1, 2, 3]
for l in lines:
    missing = [k for k in keys if k not in l]
    assert not missing, missing
    assert l['decode_tokens'] == 4 and l['prefill_tokens'] == 8 and l['decode_depth'] == 8
    assert l['decode_tok_s'] > 0 and l['decode_roofline'] > 0 and l['decode_bound'] in ('bandwidth', 'compute')
    assert abs(l['decode_tok_s_per_seq'] * l['batch'] - l['decode_tok_s']) <= 0.01 * l['batch'] + 1e-9
    assert abs(l['bytes_per_token'] * l['batch'] - l['bytes_per_step']) <= l['batch']
"
$GPT bench -m "$M" -p 8 -n 4 -d 0 -r 1 -B 2 >"$T/bench_t" 2>"$T/err"; rc=$?
check bench_batches_table sh -c "test $rc = 0 && grep -q 'decoded at positions 0 \.\. 3' '$T/bench_t' && grep -qE '^ +2 ' '$T/bench_t'"
for bad in 0 "1,,2" x "2," 5000; do
    $GPT bench -m "$M" -B "$bad" >"$T/out" 2>"$T/err"; rc=$?
    if [ $rc = 2 ] && grep -q 'batch-sizes' "$T/err" && test ! -s "$T/out"; then :; else
        fail "bench_batches_bad_list" "-B '$bad': exit $rc: $(cat "$T/err")"; bad=FAILED; break
    fi
done
[ "$bad" = FAILED ] || pass bench_batches_bad_list

rm -rf "$T"
