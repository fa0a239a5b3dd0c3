#!/usr/bin/env python3
"""Writes the decoding goldens: Hugging Face generate() rules (hf_generate.py)
run on three models.

    /usr/bin/python3 tests/reference/make_generate_golden.py            # write everything
    /usr/bin/python3 tests/reference/make_generate_golden.py --search   # redo the EOS prompt search
    /usr/bin/python3 tests/reference/make_generate_golden.py --check-f32  # also decode from float32 logits

writes (deterministically; format and rules in tests/reference/README.md):

    tests/data/ckpt/l2_h2_c24_t64_v50257_f16.bin              random model, full vocabulary, f16
    tests/data/golden/ckpt_l2_h2_c24_t64_v50257_f16.txt       its logits (gpt-golden 1)
    tests/data/golden/ckpt_l2_h2_c24_t64_v50257_f16.generate  decoding goldens of that model
    tests/data/golden/ckpt_l2_h3_c36_t64_v300_f32.generate    ... of the 300-token checkpoint (no EOS)
    tests/data/golden/demo.generate                           ... of models/demo.bin

Each case takes the first of its candidate prompts (or settings) whose
smallest decision margin is at least MIN_MARGIN and that shows what the case
is there for (an EOS, a processor that changes the output, ...); the others
are rejected and named on stdout.
"""

import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gpt2_ref as R  # noqa: E402
import hf_generate as G  # noqa: E402

REPO = R.REPO
GOLDEN = os.path.join(REPO, "tests", "data", "golden")

CHECK_F32 = False      # --check-f32: decode every chosen case again from float32 logits
MIN_MARGIN = 2e-3      # float32 logits are within ~1e-4 of ours; reject closer decisions
TOPN = 5               # alternatives written per generated token

# The random model with the full vocabulary (so that <|endoftext|> exists).
# Seed 447: of seeds 300..1099 of this shape, the one whose <|endoftext|> is
# most often the argmax over 1024 random contexts (16 random sequences of 64
# ids): 2 times, 10 times among the 4 largest logits; most seeds: never.
# Random models keep coming back to a few "attractor" tokens, and for most
# seeds <|endoftext|> is not one of them.
RAND_SHAPE = (2, 2, 24, 64, 50257)
RAND_SEED = 447
RAND_DTYPE = "f16"
RAND_FILE = "tests/data/ckpt/l2_h2_c24_t64_v50257_f16.bin"

# A prompt after which greedy decoding of the random model produces
# <|endoftext|> on its own (at its 5th token, step margin 0.028), found by
# search_eos_prompt(): the first of numpy default_rng(5)'s 4-token prompts
# whose greedy continuation reaches EOS within 20 tokens with every step
# margin >= MIN_MARGIN (number 194; number 156 reaches EOS too, with a margin
# of 4.8e-4).
RAND_EOS_PROMPT = [649, 1062, 42900, 9507]
RAND_EOS_SEARCH_SEED = 5


def rel(path):
    return os.path.relpath(path, REPO)


# ---------------------------------------------------------------------------
# Cases

class Case:
    """name, what it tests, parameters (a dict; a callable value gets the
    prompt length), candidate prompts, and a requirement check."""

    def __init__(self, name, what, params, prompts, need=None, derive=None):
        self.name = name
        self.what = what
        self.params = params
        self.prompts = prompts
        self.need = need          # need(ctx, prompt, cfg, result) -> None or a reason to reject
        self.derive = derive      # derive(ctx, prompt) -> extra params, or a reason (str) to reject


def cfg_for(params, P, extra=None):
    kw = {k: (v(P) if callable(v) else v) for k, v in params.items()}
    if extra:
        kw.update(extra)
    return G.GenConfig(**kw)


PLAIN_KEYS = ("repetition_penalty", "presence_penalty", "frequency_penalty",
              "no_repeat_ngram_size", "min_new_tokens")


def differs_without(*keys):
    """The parameters `keys` must change the output (else the case tests
    nothing): the same decoding with them at their defaults differs."""
    def f(ctx, prompt, cfg, res):
        plain = G.GenConfig(**{k: getattr(cfg, k) for k in G.GenConfig.FIELDS if k not in keys})
        base = ctx.run(prompt, plain)
        if [s.ids for s in base.sequences] == [s.ids for s in res.sequences]:
            return "same output as without %s" % "/".join(keys)
        return None
    return f


differs_from_plain = differs_without(*PLAIN_KEYS)


def es_distinct(ctx, prompt, cfg, res):
    """The three early_stopping modes, all with margins >= MIN_MARGIN, return
    three different results, and this one has a hypothesis finished by EOS."""
    why = stops_on_eos(ctx, prompt, cfg, res)
    if why:
        return why
    outs = []
    for es in G.EARLY_STOPPING_VALUES:
        kw = {k: getattr(cfg, k) for k in G.GenConfig.FIELDS}
        kw["early_stopping"] = es
        r = ctx.run(prompt, G.GenConfig(**kw))
        if r.min_margin()[0] < MIN_MARGIN:
            return "early_stopping=%s has margin %.3g" % (es, r.min_margin()[0])
        outs.append(str([(s.ids, s.score) for s in r.sequences]))
    if len(set(outs)) != 3:
        return "the early_stopping modes do not return three different results"
    return None


def stops_on_eos(ctx, prompt, cfg, res):
    if not any(s.stop == "eos" for s in res.sequences):
        return "no returned sequence ends with EOS"
    return None


def eos_before_end(ctx, prompt, cfg, res):
    L = res.max_length - len(prompt)
    if not any(s.stop == "eos" and len(s.ids) < L for s in res.sequences):
        return "no returned hypothesis finished on EOS before max_length"
    return None


def min_new_from_eos(ctx, prompt, params):
    """min_new_tokens = 2 + the number of tokens the same decoding returns
    (EOS included) when it stops on EOS, so that EOS is suppressed there."""
    P = len(prompt)
    base = ctx.run(prompt, cfg_for(params, P))
    eos = [len(s.ids) for s in base.sequences if s.stop == "eos"]
    if not eos:
        return "the decoding without min_new_tokens returns no EOS"
    return {"min_new_tokens": min(eos) + 2}


def and_(*checks):
    def f(ctx, prompt, cfg, res):
        for c in checks:
            why = c(ctx, prompt, cfg, res)
            if why:
                return why
        return None
    return f


def greedy_cases(prompts, eos_prompts=None):
    N = 20
    out = [
        Case("greedy_new20", "greedy, max_new_tokens 20", dict(max_new_tokens=N), prompts),
        Case("greedy_maxlen", "greedy, max_length = prompt length + 12 (max_new_tokens not given)",
             dict(max_length=lambda P: P + 12), prompts),
        Case("greedy_both", "greedy, max_new_tokens 15 and max_length = prompt + 5: max_new_tokens wins",
             dict(max_new_tokens=15, max_length=lambda P: P + 5), prompts),
        Case("greedy_nrng2", "greedy, no_repeat_ngram_size 2", dict(max_new_tokens=N, no_repeat_ngram_size=2),
             prompts, differs_from_plain),
        Case("greedy_nrng3", "greedy, no_repeat_ngram_size 3", dict(max_new_tokens=N, no_repeat_ngram_size=3),
             prompts, differs_from_plain),
        Case("greedy_rep13", "greedy, repetition_penalty 1.3 (prompt included)",
             dict(max_new_tokens=N, repetition_penalty=1.3), prompts, differs_from_plain),
        Case("greedy_presfreq", "greedy, presence_penalty 0.6 + frequency_penalty 0.4 (generated tokens)",
             dict(max_new_tokens=N, presence_penalty=0.6, frequency_penalty=0.4), prompts, differs_from_plain),
        Case("greedy_allproc", "greedy, repetition 1.3 + presence 0.6 + frequency 0.4 + no_repeat_ngram 3 together",
             dict(max_new_tokens=N, repetition_penalty=1.3, presence_penalty=0.6, frequency_penalty=0.4,
                  no_repeat_ngram_size=3), prompts, differs_from_plain),
    ]
    if eos_prompts:
        out += [
            Case("greedy_eos", "greedy stops on EOS (the EOS id is the last generated id)",
                 dict(max_new_tokens=N), eos_prompts, stops_on_eos),
            Case("greedy_minnew", "greedy, min_new_tokens = 2 + the length greedy_eos-like decoding "
                 "stops at: the EOS is suppressed", dict(max_new_tokens=N), eos_prompts,
                 differs_without("min_new_tokens"), derive=min_new_from_eos),
        ]
    return out


def beam_cases(prompts, eos_prompts=None, es_settings=None):
    N = 16
    B = 4
    out = [
        Case("beam4_lp05", "beam search, 4 beams, length_penalty 0.5", dict(num_beams=B, max_new_tokens=N,
             length_penalty=0.5), prompts),
        Case("beam4_lp10", "beam search, 4 beams, length_penalty 1.0", dict(num_beams=B, max_new_tokens=N,
             length_penalty=1.0), prompts),
        Case("beam4_lp20", "beam search, 4 beams, length_penalty 2.0", dict(num_beams=B, max_new_tokens=N,
             length_penalty=2.0), prompts),
        Case("beam4_nrs3", "beam search, 4 beams, num_return_sequences 3 (best first)",
             dict(num_beams=B, max_new_tokens=N, num_return_sequences=3), prompts),
        Case("beam4_nrng3", "beam search, 4 beams, no_repeat_ngram_size 3 (on the log-probs)",
             dict(num_beams=B, max_new_tokens=N, no_repeat_ngram_size=3, num_return_sequences=2),
             prompts, differs_from_plain),
        Case("beam4_penalties", "beam search, 4 beams, repetition 1.3 + presence 0.6 + frequency 0.4 "
             "(on the log-probs)", dict(num_beams=B, max_new_tokens=N, repetition_penalty=1.3,
                                        presence_penalty=0.6, frequency_penalty=0.4), prompts,
             differs_from_plain),
        Case("beam4_maxlen", "beam search, 4 beams, max_length = prompt length + 10 (max_new_tokens not given)",
             dict(num_beams=B, max_length=lambda P: P + 10, num_return_sequences=2), prompts),
    ]
    if eos_prompts:
        out += [
            Case("beam4_eos", "beam search, 4 beams: hypotheses finished by EOS before max_length are returned",
                 dict(num_beams=B, max_new_tokens=N, length_penalty=0.5, no_repeat_ngram_size=3,
                      num_return_sequences=4), eos_prompts, eos_before_end),
            Case("beam4_minnew", "beam search, 4 beams, min_new_tokens = 2 + the shortest EOS hypothesis "
                 "of the same search without it", dict(num_beams=B, max_new_tokens=N, length_penalty=0.5,
                                                       no_repeat_ngram_size=3, num_return_sequences=2),
                 eos_prompts, differs_without("min_new_tokens"), derive=min_new_from_eos),
        ]
    for es_prompts, params in (es_settings or []):
        for es, tag in ((True, "true"), (False, "false"), ("never", "never")):
            out.append(Case("beam_es_" + tag, "early_stopping=%s (the three beam_es_* cases differ "
                            "only in early_stopping and return different sequences)" % json.dumps(es),
                            dict(params, early_stopping=es), es_prompts, es_distinct))
    return out


# ---------------------------------------------------------------------------
# Running and writing

class Context:
    def __init__(self, name, model_file, model, tok, dtype):
        self.name = name
        self.model_file = model_file
        self.model = model
        self.tok = tok
        self.dtype = dtype
        self.eos = tok.eot_id
        self.logits = G.LogitCache(model, size=6000)
        self.memo = {}

    def run(self, prompt, cfg):
        key = (tuple(prompt), tuple(cfg.items()))
        if key not in self.memo:
            self.memo[key] = G.generate(self.logits, prompt, cfg, self.eos, TOPN)
        return self.memo[key]


def choose(ctx, case):
    """The first candidate prompt that passes; (prompt, prompt text, cfg, result, rejected)."""
    rejected = []
    for cand in case.prompts:
        text, prompt = (cand, ctx.tok.encode(cand)) if isinstance(cand, str) else (None, list(cand))
        P = len(prompt)
        extra = None
        if case.derive:
            extra = case.derive(ctx, prompt, case.params)
            if isinstance(extra, str):
                rejected.append((cand, extra))
                continue
        cfg = cfg_for(case.params, P, extra)
        res = ctx.run(prompt, cfg)
        m = res.min_margin()
        if m[0] < MIN_MARGIN:
            rejected.append((cand, "margin %.3g (%s at step %d)" % m))
            continue
        why = case.need(ctx, prompt, cfg, res) if case.need else None
        if why:
            rejected.append((cand, why))
            continue
        return prompt, text, cfg, res, rejected
    raise SystemExit("%s/%s: no candidate passes: %s" % (ctx.name, case.name, rejected))


def fmt(v):
    return R.fmt(v)


def case_text(ctx, case, prompt, text, cfg, res):
    lines = ["case %s" % case.name, "what %s" % json.dumps(case.what)]
    if text is not None:
        lines.append("prompt-text %s" % json.dumps(text))
    lines.append("prompt %d %s" % (len(prompt), " ".join(map(str, prompt))))
    lines.append("params %s" % " ".join("%s=%s" % kv for kv in cfg.items()))
    lines.append("max-length %d" % res.max_length)
    lines.append("steps %d" % res.steps)
    v, kind, step = res.min_margin()
    lines.append("margin %s %s %d" % (fmt(v), kind, step))
    lines.append("step-margin %d %s" % (len(res.step_margins), " ".join(fmt(x) for x in res.step_margins)))
    fin = [m[0] for m in res.margins if m[1] == "final"]
    lines.append("final-margin %s" % (fmt(min(fin)) if fin else "inf"))
    lines.append("returned %d" % len(res.sequences))
    for r, s in enumerate(res.sequences):
        n = len(s.ids)
        lines.append("seq %d %s %d %s" % (r, s.stop, n, " ".join(map(str, s.ids))))
        lines.append("score %d %s" % (r, fmt(s.score)))
        lines.append("logprob %d %d %s" % (r, n, " ".join(fmt(x) for x in s.raw)))
        lines.append("processed %d %d %s" % (r, n, " ".join(fmt(x) for x in s.processed)))
        for j, top in enumerate(s.top):
            lines.append("top %d %d %d %s" % (r, j, len(top), " ".join("%d:%s" % (i, fmt(x)) for i, x in top)))
    lines.append("end-case")
    return lines


class Float32Logits:
    """The same model evaluated in float32 (torch, weights and activations),
    logits widened to float64: what a float32 implementation sees."""

    def __init__(self, model):
        self.model = R.Model.__new__(R.Model)
        self.model.cfg = model.cfg
        self.model.w = {k: v.float() for k, v in model.w.items()}
        self.cache = G.LogitCache(self.model, size=6000)

    def __call__(self, ids):
        return self.cache(ids).double()


def check_float32(ctx, chosen):
    """Runs every chosen case again on float32 logits: the generated ids must
    be the same (that is what the margins are for); returns the largest
    differences of the scores and of the raw log-probs."""
    f32 = Float32Logits(ctx.model)
    d_score = d_lp = 0.0
    for name, prompt, cfg, res in chosen:
        r32 = G.generate(f32, prompt, cfg, ctx.eos, TOPN)
        got = [s.ids for s in r32.sequences]
        want = [s.ids for s in res.sequences]
        assert got == want, "%s/%s: float32 logits give %s, float64 %s" % (ctx.name, name, got, want)
        for a, b in zip(r32.sequences, res.sequences):
            d_score = max(d_score, abs(a.score - b.score))
            d_lp = max(d_lp, max(abs(x - y) for x, y in zip(a.raw, b.raw)))
    return d_score, d_lp


def write_file(ctx, cases, out_path):
    t0 = time.time()
    lines = ["gpt-generate 1", "model file %s" % ctx.model_file, "dtype %s" % ctx.dtype,
             "eos %d" % ctx.eos, "topn %d" % TOPN, "min-margin %s" % fmt(MIN_MARGIN),
             "cases %d" % len(cases)]
    summary, chosen = [], []
    for case in cases:
        t1 = time.time()
        prompt, text, cfg, res, rejected = choose(ctx, case)
        chosen.append((case.name, prompt, cfg, res))
        lines += case_text(ctx, case, prompt, text, cfg, res)
        for cand, why in rejected:
            print("  %-16s rejected %s: %s" % (case.name, json.dumps(cand) if isinstance(cand, str) else cand, why))
        v, kind, step = res.min_margin()
        summary.append((case.name, text if text is not None else prompt, v, kind, res))
        print("  %-16s %-40s margin %.3g (%s)  %s  %.1fs" % (
            case.name, json.dumps(text) if text is not None else str(prompt), v, kind,
            " | ".join("%s%d" % ("E" if s.stop == "eos" else "L", len(s.ids)) for s in res.sequences),
            time.time() - t1))
    lines.append("end")
    data = "\n".join(lines) + "\n"
    with open(out_path, "w", encoding="utf-8", newline="\n") as f:
        f.write(data)
    check_file(ctx, out_path, summary)
    print("%-44s %d cases, %d bytes, %.0fs" % (rel(out_path), len(cases), len(data), time.time() - t0))
    if CHECK_F32:
        d_score, d_lp = check_float32(ctx, chosen)
        print("%-44s float32 logits: same ids in every case; scores within %.2g, log-probs within %.2g" % (
            "", d_score, d_lp))


# ---------------------------------------------------------------------------
# Reading back (what a C test would parse) and checking

def parse_generate(text):
    lines = text.split("\n")
    assert lines[0] == "gpt-generate 1" and lines[-2] == "end" and lines[-1] == ""
    head, cases, cur = {}, [], None
    for line in lines[1:-2]:
        key, _, rest = line.partition(" ")
        f = rest.split(" ")
        if cur is None and key != "case":
            head[key] = rest
            continue
        if key == "case":
            cur = {"name": rest, "seqs": {}}
            continue
        if key == "end-case":
            cases.append(cur)
            cur = None
        elif key in ("what", "prompt-text"):
            cur[key] = json.loads(rest)
        elif key == "prompt":
            cur["prompt"] = [int(x) for x in f[1:]]
            assert len(cur["prompt"]) == int(f[0])
        elif key == "params":
            cur["params"] = dict(x.split("=", 1) for x in f)
        elif key in ("max-length", "steps", "returned"):
            cur[key] = int(f[0])
        elif key == "margin":
            cur["margin"] = (float(f[0]), f[1], int(f[2]))
        elif key == "step-margin":
            cur["step-margin"] = [float(x) for x in f[1:]]
            assert len(cur["step-margin"]) == int(f[0])
        elif key == "final-margin":
            cur["final-margin"] = float(f[0])
        else:
            r = int(f[0])
            s = cur["seqs"].setdefault(r, {"top": []})
            if key == "seq":
                s["stop"] = f[1]
                s["ids"] = [int(x) for x in f[3:]]
                assert len(s["ids"]) == int(f[2])
            elif key == "score":
                s["score"] = float(f[1])
            elif key in ("logprob", "processed"):
                s[key] = [float(x) for x in f[2:]]
                assert len(s[key]) == int(f[1])
            elif key == "top":
                assert int(f[1]) == len(s["top"])
                pairs = [(int(a), float(b)) for a, b in (x.split(":") for x in f[3:])]
                assert len(pairs) == int(f[2])
                s["top"].append(pairs)
            else:
                raise ValueError("unknown line %r" % line)
    assert int(head["cases"]) == len(cases)
    return head, cases


def check_file(ctx, path, summary):
    """Parses the file back and checks it against what was computed, and
    the rules' invariants."""
    with open(path, encoding="utf-8") as f:
        head, cases = parse_generate(f.read())
    assert head["model"] == "file " + ctx.model_file and int(head["eos"]) == ctx.eos
    for c, (name, _, v, kind, res) in zip(cases, summary):
        assert c["name"] == name and c["returned"] == len(c["seqs"]) == len(res.sequences)
        p = c["params"]
        nb, lp = int(p["num_beams"]), float(p["length_penalty"])
        P = len(c["prompt"])
        assert c["margin"][0] >= MIN_MARGIN
        prev = None
        for r in range(c["returned"]):
            s, ref = c["seqs"][r], res.sequences[r]
            n = len(s["ids"])
            assert s["ids"] == ref.ids and 1 <= n <= c["max-length"] - P
            assert (s["stop"] == "eos") == (ctx.eos >= 0 and s["ids"][-1] == ctx.eos)
            assert ctx.eos not in s["ids"][:-1]
            assert s["stop"] == "eos" or n == c["max-length"] - P
            total = sum(s["processed"])
            want = total if nb == 1 else total / n ** lp
            assert abs(want - s["score"]) <= 1e-7 * max(1.0, abs(want)), (name, want, s["score"])
            if prev is not None:
                assert s["score"] <= prev
            prev = s["score"]
            for j, (t, lpj, top) in enumerate(zip(s["ids"], s["logprob"], s["top"])):
                vals = [x for _, x in top]
                assert vals == sorted(vals, reverse=True) and lpj <= vals[0] + 1e-12
                if t in dict(top):
                    assert dict(top)[t] == lpj
                else:
                    assert lpj <= vals[-1]
                if nb == 1 and p["repetition_penalty"] == "1.0" and p["presence_penalty"] == "0.0" and \
                        p["frequency_penalty"] == "0.0" and p["no_repeat_ngram_size"] == "0" and \
                        p["min_new_tokens"] == "0":
                    assert top[0][0] == t   # plain greedy takes the raw argmax


# ---------------------------------------------------------------------------
# Models

def load(name, path):
    cfg, w, tok, info = R.read_checkpoint(os.path.join(REPO, path))
    dt = R.DTYPE_NAMES[info["dtype"]]
    return Context(name, path, R.Model(cfg, w), tok, dt)


def make_rand_checkpoint():
    """The full-vocabulary random model, written with our checkpoint writer in
    f16 (3.3 MB), plus its golden logits; returns its Context (weights as read
    back from the file)."""
    cfg = R.Config(*RAND_SHAPE)
    weights = R.random_weights(cfg, RAND_SEED)
    tok = R.gpt2_tokenizer(cfg.n_vocab)
    path = os.path.join(REPO, RAND_FILE)
    R.write_checkpoint(path, cfg, weights, RAND_DTYPE, tok)
    ctx = load("rand", RAND_FILE)
    assert ctx.model.cfg.shape() == cfg.shape() and ctx.eos == 50256 and ctx.dtype == RAND_DTYPE
    ids = [50256] + [int(x) for x in np.random.default_rng(447).integers(0, cfg.n_vocab, 47)]
    logits = R.forward(ctx.model, ids)
    gpath = os.path.join(GOLDEN, "ckpt_l2_h2_c24_t64_v50257_f16.txt")
    with open(gpath, "w", encoding="utf-8", newline="\n") as f:
        f.write(R.golden_text("model file %s" % RAND_FILE, RAND_DTYPE, ids, logits))
    with open(gpath, encoding="utf-8") as f:
        g = R.parse_golden(f.read())
    assert g["tokens"] == ids
    print("%-44s %d bytes" % (RAND_FILE, os.path.getsize(path)))
    return ctx


def search_eos_prompt(ctx, tries=1000, n_new=20):
    """The first of default_rng(RAND_EOS_SEARCH_SEED)'s 4-token prompts
    (ids < 50256) whose plain greedy continuation reaches EOS within n_new
    tokens, every step with margin >= MIN_MARGIN."""
    rng = np.random.default_rng(RAND_EOS_SEARCH_SEED)
    for k in range(tries):
        p = [int(x) for x in rng.integers(0, 50256, 4)]
        ids, ok = list(p), True
        for _ in range(n_new):
            lg = ctx.logits(ids)
            top2 = lg.topk(2)
            ok = ok and float(top2.values[0] - top2.values[1]) >= MIN_MARGIN
            t = int(top2.indices[0])
            ids.append(t)
            if t == ctx.eos:
                break
        if ids[-1] == ctx.eos:
            print("prompt %d: %s -> %s%s" % (k, p, ids[4:], "" if ok else " (a margin is too small)"))
            if ok:
                return p
    raise SystemExit("no prompt found")


DEMO_PROMPTS = ["And God said", "In the beginning", "The LORD is", "And it came to pass",
                "Blessed are the meek", "Jesus wept.", "The end.", "Amen."]
DEMO_EOS_PROMPTS = ["LAWYER, n.", "WAR, n.", "hacker n.", "PEACE, n.", "kludge n.",
                    "PEACE, n. In international affairs, a period of cheating between two periods of fighting.\n",
                    "hacker n. A person who enjoys exploring the details of programmable systems.\n"]
DEMO_ES = [(["PEACE, n. In international affairs, a period of cheating between two periods of fighting.\n",
             "hacker n. A person who enjoys exploring the details of programmable systems.\n"],
            dict(num_beams=2, max_new_tokens=26, length_penalty=1.0, no_repeat_ngram_size=3,
                 num_return_sequences=2))]

V300_PROMPTS = ["The sea", "Once upon a time", "The lighthouse", "In the morning", "It was", "She said",
                "The wind from the west", "A fishing boat"]


def rand_prompts():
    """Prompts of the random model: a few fixed id lists (edges of the
    vocabulary, an EOS inside the prompt) and random ones."""
    rng = np.random.default_rng(2024)
    out = [[50255, 0, 17, 50256, 1000], [464, 35750, 318], [31846, 3060, 29114]]
    out += [[int(x) for x in rng.integers(0, 50257, 5)] for _ in range(12)]
    return out


def main():
    t0 = time.time()
    os.makedirs(GOLDEN, exist_ok=True)
    global CHECK_F32
    search = "--search" in sys.argv[1:]
    CHECK_F32 = "--check-f32" in sys.argv[1:]

    ctx = make_rand_checkpoint()
    eos_prompt = search_eos_prompt(ctx) if search else RAND_EOS_PROMPT
    rp = rand_prompts()
    cases = greedy_cases(rp, [eos_prompt]) + beam_cases(rp, [eos_prompt] + rp)
    write_file(ctx, cases, os.path.join(GOLDEN, "ckpt_l2_h2_c24_t64_v50257_f16.generate"))

    ctx = load("v300", "tests/data/ckpt/l2_h3_c36_t64_v300_f32.bin")
    assert ctx.eos == -1
    cases = greedy_cases(V300_PROMPTS) + beam_cases(V300_PROMPTS)
    write_file(ctx, cases, os.path.join(GOLDEN, "ckpt_l2_h3_c36_t64_v300_f32.generate"))

    if os.path.exists(os.path.join(REPO, "models", "demo.bin")):
        ctx = load("demo", "models/demo.bin")
        cases = greedy_cases(DEMO_PROMPTS, DEMO_EOS_PROMPTS) + \
            beam_cases(DEMO_PROMPTS, DEMO_EOS_PROMPTS, DEMO_ES)
        write_file(ctx, cases, os.path.join(GOLDEN, "demo.generate"))
    else:
        print("models/demo.bin not there: demo.generate skipped")
    print("done in %.0fs" % (time.time() - t0))


if __name__ == "__main__":
    main()
