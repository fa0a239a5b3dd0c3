#!/usr/bin/env python3
"""Hugging Face `generate()` decoding rules for GPT-2, written independently.

The rules (README.md, "Decoding rules") come from the documented behaviour and
the source of transformers' generation code, taken as facts; the code here is
our own. Everything is float64, on top of gpt2_ref's forward pass.

    greedy search   do_sample=False, num_beams=1   (GenerationMixin._sample)
    beam search     do_sample=False, num_beams>1   (GenerationMixin._beam_search)

with the logits processors repetition_penalty, no_repeat_ngram_size and
min_new_tokens (HF), plus two OpenAI-style penalties that HF does not have:
presence_penalty and frequency_penalty (counted over the generated tokens only).

Each result also carries its "decision margins": how far apart the two
numbers of every comparison that decided the output were, so that a float32
implementation (whose logits differ by ~1e-4) can be checked for robustness.
"""

import collections
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gpt2_ref as R  # noqa: E402

torch.set_num_threads(2)

NEG_BIG = -1.0e9          # HF's "very large negative value" for dead/finished beams
INF = float("inf")
EARLY_STOPPING_VALUES = (True, False, "never")


class GenConfig:
    """The generation parameters we implement, with HF's defaults."""

    FIELDS = ("num_beams", "max_new_tokens", "max_length", "min_new_tokens",
              "repetition_penalty", "presence_penalty", "frequency_penalty",
              "no_repeat_ngram_size", "length_penalty", "early_stopping",
              "num_return_sequences")

    def __init__(self, **kw):
        self.num_beams = 1
        self.max_new_tokens = None      # HF: wins over max_length when both are given
        self.max_length = None          # total length, prompt included
        self.min_new_tokens = 0
        self.repetition_penalty = 1.0
        self.presence_penalty = 0.0
        self.frequency_penalty = 0.0
        self.no_repeat_ngram_size = 0
        self.length_penalty = 1.0
        self.early_stopping = False
        self.num_return_sequences = 1
        for k, v in kw.items():
            if k not in self.FIELDS:
                raise ValueError("unknown generation parameter %r" % k)
            setattr(self, k, v)
        if not (self.early_stopping is True or self.early_stopping is False or self.early_stopping == "never"):
            raise ValueError("early_stopping must be True, False or 'never'")
        if self.num_beams < 1 or not 1 <= self.num_return_sequences <= self.num_beams:
            raise ValueError("need 1 <= num_return_sequences <= num_beams")
        if self.num_beams == 1 and self.num_return_sequences != 1:
            raise ValueError("greedy search returns one sequence")
        if self.max_new_tokens is None and self.max_length is None:
            raise ValueError("give max_new_tokens or max_length")
        if self.repetition_penalty <= 0:
            raise ValueError("repetition_penalty must be > 0")

    def effective_max_length(self, prompt_len):
        """HF _prepare_generated_length: max_new_tokens (when given) sets
        max_length = prompt length + max_new_tokens, whatever max_length says."""
        if self.max_new_tokens is not None:
            L = prompt_len + self.max_new_tokens
        else:
            L = self.max_length
        if prompt_len >= L:   # HF _validate_generated_length raises here
            raise ValueError("prompt of %d tokens, max_length %d: nothing to generate" % (prompt_len, L))
        return L

    def items(self):
        """key=value pairs in a fixed order, as written in the golden files."""
        def v(x):
            if x is None:
                return "-"
            if x is True:
                return "true"
            if x is False:
                return "false"
            if isinstance(x, float):
                return repr(x)
            return str(x)
        return [(k, v(getattr(self, k))) for k in self.FIELDS]


# ---------------------------------------------------------------------------
# Model access with a cache (beams and cases share prefixes)

class LogitCache:
    """Raw logits after the last token of a prefix, float64, cached (LRU)."""

    def __init__(self, model, size=3000):
        self.model = model
        self.size = size
        self.d = collections.OrderedDict()
        self.calls = 0

    def __call__(self, ids):
        key = tuple(ids)
        hit = self.d.get(key)
        if hit is not None:
            self.d.move_to_end(key)
            return hit
        if len(ids) > self.model.cfg.n_ctx:
            raise ValueError("%d tokens do not fit the context of %d" % (len(ids), self.model.cfg.n_ctx))
        self.calls += 1
        out = R.forward(self.model, list(key), last_only=True)
        self.d[key] = out
        if len(self.d) > self.size:
            self.d.popitem(last=False)
        return out


# ---------------------------------------------------------------------------
# Logits processors, in the order we apply them:
#   1. repetition_penalty   (HF RepetitionPenaltyLogitsProcessor)
#   2. presence_penalty + frequency_penalty   (ours; after the repetition penalty)
#   3. no_repeat_ngram_size (HF NoRepeatNGramLogitsProcessor)
#   4. min_new_tokens       (HF MinNewTokensLengthLogitsProcessor; needs an EOS)
# Greedy search applies them to the raw logits, beam search to the
# log-softmax of the logits (as HF does).

def banned_ngram_tokens(ids, n):
    """Tokens t such that (last n-1 ids, t) is an n-gram already present in ids."""
    L = len(ids)
    if n <= 0 or L < n:
        return set()
    prefix = tuple(ids[L - n + 1:]) if n > 1 else ()
    out = set()
    for s in range(L - n + 1):
        if tuple(ids[s:s + n - 1]) == prefix:
            out.add(ids[s + n - 1])
    return out


def process(scores, ids, prompt_len, cfg, eos_id):
    """The processed scores (a new float64 tensor) for the next token after
    ids (prompt + generated so far)."""
    if cfg.repetition_penalty == 1.0 and cfg.presence_penalty == 0.0 and \
            cfg.frequency_penalty == 0.0 and cfg.no_repeat_ngram_size <= 0 and cfg.min_new_tokens <= 0:
        return scores
    s = scores.clone()
    if cfg.repetition_penalty != 1.0:
        # every distinct id of prompt + generated, once: negative scores are
        # multiplied by the penalty, the others divided by it
        idx = torch.tensor(sorted(set(ids)), dtype=torch.long)
        v = s[idx]
        s[idx] = torch.where(v < 0, v * cfg.repetition_penalty, v / cfg.repetition_penalty)
    if cfg.presence_penalty != 0.0 or cfg.frequency_penalty != 0.0:
        counts = collections.Counter(ids[prompt_len:])   # generated tokens only
        if counts:
            idx = torch.tensor(sorted(counts), dtype=torch.long)
            c = torch.tensor([float(counts[t]) for t in sorted(counts)], dtype=torch.float64)
            s[idx] = s[idx] - (cfg.frequency_penalty * c + cfg.presence_penalty)
    if cfg.no_repeat_ngram_size > 0:
        banned = banned_ngram_tokens(ids, cfg.no_repeat_ngram_size)
        if banned:
            s[torch.tensor(sorted(banned), dtype=torch.long)] = -INF
    if cfg.min_new_tokens > 0 and eos_id >= 0 and len(ids) - prompt_len < cfg.min_new_tokens:
        s[eos_id] = -INF
    return s


def top_alternatives(logprobs, n):
    """The n largest entries as [(id, value)], value descending, ties by lower id."""
    thr = float(torch.topk(logprobs, n).values[-1])
    idx = torch.nonzero(logprobs >= thr).flatten().tolist()   # every id tied with the n-th too
    vals = logprobs[idx].tolist()
    return sorted(zip(idx, vals), key=lambda iv: (-iv[1], iv[0]))[:n]


class Sequence:
    """One returned sequence: generated ids (EOS included when it stopped on
    it), its score, per-token raw and processed log-probs, top alternatives."""

    def __init__(self, ids, score, processed, stop):
        self.ids = list(ids)
        self.score = float(score)
        self.processed = list(processed)
        self.stop = stop              # "eos" or "length"
        self.raw = []
        self.top = []


class Result:
    def __init__(self, max_length, sequences, steps, margins, step_margins):
        self.max_length = max_length
        self.sequences = sequences
        self.steps = steps                  # decoding steps run (forward passes per beam)
        self.margins = margins              # [(value, kind, step)] decisive comparisons
        self.step_margins = step_margins    # smallest margin of each step (inf if none)

    def min_margin(self):
        if not self.margins:
            return (INF, "none", -1)
        return min(self.margins, key=lambda m: m[0])


def fill_raw(logits_of, prompt, seq, topn):
    """Raw log-probs (log_softmax of the unprocessed logits) of each generated
    token of seq, and the topn alternatives at each step."""
    ids = list(prompt)
    for t in seq.ids:
        lp = R.log_softmax(logits_of(ids))
        seq.raw.append(float(lp[t]))
        seq.top.append(top_alternatives(lp, topn))
        ids.append(t)


# ---------------------------------------------------------------------------
# Greedy search (HF _sample with do_sample=False)

def greedy_search(logits_of, prompt, cfg, eos_id, topn=5):
    """Argmax of the processed logits at each step (first index on a tie, as
    torch.argmax); stops after EOS or at max_length. The score is the sum of
    the generated tokens' log-probs under the processed distribution
    (log_softmax of the processed logits)."""
    P = len(prompt)
    L = cfg.effective_max_length(P)
    ids = list(prompt)
    processed, margins, step_margins = [], [], []
    stop = "length"
    while len(ids) < L:
        step = len(ids) - P
        raw = logits_of(ids)
        s = process(raw, ids, P, cfg, eos_id)
        top2 = torch.topk(s, 2)
        t = int(torch.argmax(s))
        assert t == int(top2.indices[0]) or float(top2.values[0]) == float(top2.values[1])
        gap = float(top2.values[0] - top2.values[1])
        margins.append((gap, "argmax", step))
        step_margins.append(gap)
        processed.append(float(R.log_softmax(s)[t]))
        ids.append(t)
        if t == eos_id:
            stop = "eos"
            break
    seq = Sequence(ids[P:], sum(processed), processed, stop)
    fill_raw(logits_of, prompt, seq, topn)
    return Result(L, [seq], len(ids) - P, margins, step_margins)


# ---------------------------------------------------------------------------
# Beam search (HF _beam_search, the vectorized version, batch size 1)

class _Beam:
    __slots__ = ("ids", "score", "processed")

    def __init__(self, ids, score, processed):
        self.ids = ids
        self.score = score
        self.processed = processed


def _top(scored, k):
    """Indices of the k largest scores, descending; equal scores keep their
    order (a stable choice; ties are measure-zero and show up as margin 0)."""
    order = sorted(range(len(scored)), key=lambda i: -scored[i])
    return order[:k]


def _sum_units(gap, fa, fb):
    """A gap between two length-normalized scores x = a/fa and y = b/fb
    (fa, fb = length ** length_penalty) expressed in units of the summed
    log-probs a, b: gap * 2 fa fb / (fa + fb), the size of equal and opposite
    changes of a and b that close it (gap * fa when fa == fb, i.e. exactly the
    gap between the two sums)."""
    return gap * 2.0 * fa * fb / (fa + fb)


def beam_search(logits_of, prompt, cfg, eos_id, topn=5):
    """HF beam search for one prompt.

    State: num_beams running beams (sum of processed log-probs; all but the
    first start at -1e9) and num_beams slots of finished hypotheses (score
    -1e9 and "not finished" at first). Each step:
      a. for each running beam: log_softmax of the logits, the processors
         applied to those log-probs, plus the beam's running sum;
      b. the K = 2*num_beams best (beam, token) candidates over all beams;
      c. a candidate "hits" when its token is EOS or its length reaches max_length;
      d. next running beams: the num_beams best candidates after -1e9 is added
         to the ones that hit;
      e. candidates that hit AND rank among the first num_beams of the K are
         finalized with score sum / (generated length ** length_penalty),
         generated length = tokens after the prompt, the new token included;
         they merge with the finished slots, the best num_beams are kept;
      f. stop when no improvement is possible (early-stop heuristic), when
         early_stopping is True and every slot holds a finished hypothesis, or
         when all K candidates hit (max_length).
    Returns the num_return_sequences best finished hypotheses, best first."""
    P = len(prompt)
    L = cfg.effective_max_length(P)
    B = cfg.num_beams
    n_eos = 1 if eos_id >= 0 else 0
    K = max(2, 1 + n_eos) * B
    lp_pow = cfg.length_penalty
    es = cfg.early_stopping

    running = [_Beam(list(prompt), 0.0 if b == 0 else NEG_BIG, []) for b in range(B)]
    slots = [(NEG_BIG, False, None) for _ in range(B)]   # (score, finished, (ids, processed))
    unsatisfied = True
    all_finalized = []                 # every hypothesis ever finalized: (score, ids, processed)
    margins, step_margins = [], []
    cur_len = P
    steps = 0
    while True:
        step = cur_len - P
        steps += 1
        # a. accumulated scores of every (beam, token)
        acc_rows = []
        for bm in running:
            raw = logits_of(bm.ids)
            lp = R.log_softmax(raw)
            proc = process(lp, bm.ids, P, cfg, eos_id)
            acc_rows.append((proc, proc + bm.score))
        V = acc_rows[0][0].shape[0]
        acc = torch.cat([a for _, a in acc_rows])                      # [B*V], beam-major
        # b. top K (plus a few more for the margins), stable on ties
        n_more = min(acc.numel(), 2 * K + 2)
        vals, idx = torch.sort(acc, descending=True, stable=True)
        vals, idx = vals[:n_more].tolist(), idx[:n_more].tolist()
        cands = []
        for r in range(K):
            b, t = divmod(idx[r], V)
            hits = (t == eos_id) or (cur_len + 1 >= L)
            cands.append((vals[r], b, t, hits))
        # d. next running beams
        run_scores = [c[0] + (NEG_BIG if c[3] else 0.0) for c in cands]
        keep = _top(run_scores, B)
        new_running = []
        for k in keep:
            s, b, t, hits = cands[k]
            src = running[b]
            new_running.append(_Beam(src.ids + [t], run_scores[k],
                                     src.processed + [float(acc_rows[b][0][t])]))
        # e. finalize
        gen_len = cur_len + 1 - P
        full_and_early = all(f for _, f, _ in slots) and es is True
        merged = [(sc, f, payload) for sc, f, payload in slots]
        for r, (s, b, t, hits) in enumerate(cands):
            did = hits and r < B
            adj = s / (gen_len ** lp_pow)
            if full_and_early:
                adj += NEG_BIG
            if not unsatisfied:
                adj += NEG_BIG
            if not did:
                adj += NEG_BIG
            payload = (running[b].ids + [t], running[b].processed + [float(acc_rows[b][0][t])])
            merged.append((adj, did, payload))
            if did and not full_and_early and unsatisfied:
                all_finalized.append((adj, payload[0][P:], payload[1]))
        order = _top([m[0] for m in merged], B)
        slots = [merged[i] for i in order]
        running = new_running
        # f. stopping
        cur_len += 1
        if es == "never" and lp_pow > 0.0:
            hyp_len = L - P
        else:
            hyp_len = cur_len - P
        best_possible = running[0].score / (hyp_len ** lp_pow)
        worst = min(sc for sc, _, _ in slots)
        heur = any(best_possible > (worst if f else NEG_BIG) for _, f, _ in slots)
        unsatisfied = unsatisfied and heur
        all_hit = all(c[3] for c in cands)
        exists_open = not (all(f for _, f, _ in slots) and es is True)
        go_on = unsatisfied and exists_open and not all_hit

        # decision margins of this step
        m = []
        # the 2*num_beams cut (which candidates are considered at all)
        if len(vals) > K:
            m.append((vals[K - 1] - vals[K], "cut2b"))
        # the num_beams cut among candidates that do not hit (the next running
        # beams); only decisive when there is a next step
        if go_on:
            nh = [v for v, i in zip(vals, idx) if not ((i % V) == eos_id or cur_len >= L)]
            if len(nh) > B:
                m.append((nh[B - 1] - nh[B], "cutb"))
        # candidates that hit: finalized iff ranked < num_beams
        for r in range(min(len(vals), K)):
            t = idx[r] % V
            if t == eos_id or cur_len >= L:
                if r < B and len(vals) > B:
                    m.append((vals[r] - vals[B], "eos" if t == eos_id else "lastcut"))
                elif r >= B and t == eos_id:
                    m.append((vals[B - 1] - vals[r], "eos"))
        # the early-stop heuristic, where it compares real numbers (in sum
        # units, see _sum_units)
        if es is not True and all(f for _, f, _ in slots) and not all_hit:
            worst_len = len(min(slots, key=lambda x: x[0])[2][0]) - P
            m.append((_sum_units(abs(best_possible - worst), hyp_len ** lp_pow,
                                 worst_len ** lp_pow), "heuristic"))
        for v, kind in m:
            margins.append((v, kind, step))
        step_margins.append(min([v for v, _ in m], default=INF))
        if not go_on:
            break

    # the returned hypotheses: the best num_return_sequences slots
    R_ = cfg.num_return_sequences
    assert all(f for _, f, _ in slots[:R_]), "fewer finished hypotheses than num_return_sequences"
    seqs = []
    for sc, f, (ids, processed) in slots[:R_]:
        gen = ids[P:]
        stop = "eos" if gen and gen[-1] == eos_id else "length"
        seqs.append(Sequence(gen, sc, processed, stop))
    # margins of the final ranking: adjacent scores among all hypotheses ever
    # finalized, down to the first one not returned
    fin = sorted(((s, len(ids) ** lp_pow) for s, ids, _ in all_finalized), reverse=True)
    assert [s for s, _ in fin[:R_]] == [s.score for s in seqs]
    for r in range(min(R_, len(fin) - 1)):
        margins.append((_sum_units(fin[r][0] - fin[r + 1][0], fin[r][1], fin[r + 1][1]),
                        "final", steps - 1))
    for seq in seqs:
        fill_raw(logits_of, prompt, seq, topn)
    return Result(L, seqs, steps, margins, step_margins)


def generate(logits_of, prompt, cfg, eos_id, topn=5):
    if cfg.num_beams == 1:
        return greedy_search(logits_of, prompt, cfg, eos_id, topn)
    return beam_search(logits_of, prompt, cfg, eos_id, topn)


# ---------------------------------------------------------------------------
# Self-test: `/usr/bin/python3 tests/reference/hf_generate.py`

def textbook_beam(logits_of, prompt, n_new, B):
    """Plain beam search without EOS: keep the B best sums at every step; at
    the end the B best sequences. With no EOS and length_penalty applied to
    equal lengths, HF's beam search must return the same (a second, simpler
    formulation to check beam_search against)."""
    beams = [(0.0, list(prompt))]
    for _ in range(n_new):
        cand = []
        for s, ids in beams:
            lp = R.log_softmax(logits_of(ids))
            v, i = torch.topk(lp, B)
            cand += [(s + float(a), ids + [int(t)]) for a, t in zip(v, i)]
        cand.sort(key=lambda c: -c[0])
        beams = cand[:B]
    return beams


def selftest():
    # processors on hand-made scores
    assert banned_ngram_tokens([1, 2, 3, 1, 2], 3) == {3}
    assert banned_ngram_tokens([1, 2, 3, 1, 2], 2) == {3}
    assert banned_ngram_tokens([5, 5, 5], 2) == {5}
    assert banned_ngram_tokens([4, 7, 4], 1) == {4, 7}
    assert banned_ngram_tokens([1, 2], 3) == set()
    assert banned_ngram_tokens([9, 1, 2, 8, 1, 2, 7, 1, 2], 3) == {8, 7}
    sc = torch.tensor([2.0, -1.0, 0.5, -3.0, 1.0], dtype=torch.float64)
    out = process(sc, [0, 1, 4, 1], 2, GenConfig(max_new_tokens=1, repetition_penalty=2.0), -1)
    assert out.tolist() == [1.0, -2.0, 0.5, -3.0, 0.5], out
    out = process(sc, [0, 1, 4, 1, 4, 2], 3, GenConfig(max_new_tokens=1, presence_penalty=0.5,
                                                       frequency_penalty=0.25), -1)
    # generated: [1, 4, 2] -> counts 1 each; the prompt's 0 and 1 are not counted
    assert out.tolist() == [2.0, -1.75, -0.25, -3.0, 0.25], out
    out = process(sc, [0, 1, 4, 4, 4], 2, GenConfig(max_new_tokens=1, frequency_penalty=1.0), -1)
    assert out.tolist() == [2.0, -1.0, 0.5, -3.0, -2.0], out
    cfg = GenConfig(max_new_tokens=5, min_new_tokens=2)
    assert process(sc, [0, 1, 2], 2, cfg, 4)[4] == -INF
    assert process(sc, [0, 1, 2, 3], 2, cfg, 4)[4] == 1.0
    assert process(sc, [0, 1, 2], 2, cfg, -1).tolist() == sc.tolist()
    # order: the repetition penalty sees the raw value, presence/frequency come after
    out = process(sc, [0, 4], 1, GenConfig(max_new_tokens=1, repetition_penalty=2.0, presence_penalty=1.0), -1)
    assert out.tolist() == [1.0, -1.0, 0.5, -3.0, -0.5], out
    assert top_alternatives(torch.tensor([0.0, 1.0, 1.0, -1.0, 1.0]), 2) == [(1, 1.0), (2, 1.0)]
    assert GenConfig(max_new_tokens=4, max_length=2).effective_max_length(3) == 7
    assert GenConfig(max_length=9).effective_max_length(3) == 9
    print("processors ok")

    cfg_, w, tok, info = R.read_checkpoint(os.path.join(R.REPO, "tests", "data", "ckpt",
                                                        "l2_h3_c36_t64_v300_f32.bin"))
    model = R.Model(cfg_, w)
    lo = LogitCache(model)
    prompt = tok.encode("The sea")
    # greedy == gpt2_ref.greedy (no processors, no EOS in this vocabulary)
    new, margins = R.greedy(model, prompt, 50)
    res = greedy_search(lo, prompt, GenConfig(max_new_tokens=50), tok.eot_id)
    assert res.sequences[0].ids == new
    assert max(abs(a - b) for a, b in zip(res.step_margins, margins)) < 1e-9
    print("greedy == gpt2_ref.greedy (50 tokens)")
    # beam search == textbook beam search when there is no EOS
    for B, n in ((2, 6), (4, 12), (5, 9)):
        tb = textbook_beam(lo, prompt, n, B)
        for lp_pow in (0.5, 1.0, 2.0):
            for es in EARLY_STOPPING_VALUES:
                res = beam_search(lo, prompt, GenConfig(num_beams=B, max_new_tokens=n, length_penalty=lp_pow,
                                                        early_stopping=es, num_return_sequences=B), -1)
                assert [s.ids for s in res.sequences] == [ids[len(prompt):] for _, ids in tb]
                for s, (sum_, _) in zip(res.sequences, tb):
                    assert abs(s.score - sum_ / n ** lp_pow) < 1e-9
                    assert abs(sum(s.processed) - sum_) < 1e-9
                assert res.steps == n
    print("beam search == textbook beam search without EOS")
    # the demo model: greedy up to its first EOS
    demo = os.path.join(R.REPO, "models", "demo.bin")
    if os.path.exists(demo):
        cfg_, w, tok, info = R.read_checkpoint(demo)
        model = R.Model(cfg_, w)
        prompt = tok.encode("And God said")
        new, _ = R.greedy(model, prompt, 30)
        res = greedy_search(LogitCache(model), prompt, GenConfig(max_new_tokens=30), tok.eot_id)
        got = res.sequences[0].ids
        cut = new.index(tok.eot_id) + 1 if tok.eot_id in new else len(new)
        assert got == new[:cut]
        print("demo: greedy == gpt2_ref.greedy (%d tokens)" % len(got))
    print("selftest passed")


if __name__ == "__main__":
    selftest()
