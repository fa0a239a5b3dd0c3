#!/usr/bin/env python3
"""Regenerates every golden file and test input of the PyTorch reference.

    /usr/bin/python3 tests/reference/make_golden.py

writes (deterministically; see tests/reference/README.md):

    tests/data/golden/*.txt        logits of random models, checkpoints, HF folders, llm.c files
    tests/data/golden/*.score      per-token log-probs and perplexity (sliding windows)
    tests/data/golden/*.greedy     greedy continuations
    tests/data/ckpt/               small checkpoints in our format (f32, f16, bf16, q8_0)
    tests/data/hf/                 Hugging Face GPT-2 folders for `gpt convert --hf` (good and bad)
    tests/data/llmc/               llm.c checkpoints for `gpt convert --llmc`

If models/demo.bin exists, the demo model's goldens are written too.
Needs no C program; only numpy and torch.
"""

import json
import os
import shutil
import struct
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gpt2_ref as R  # noqa: E402

REPO = R.REPO
GOLDEN = os.path.join(REPO, "tests", "data", "golden")
CKPT = os.path.join(REPO, "tests", "data", "ckpt")
HF = os.path.join(REPO, "tests", "data", "hf")
LLMC = os.path.join(REPO, "tests", "data", "llmc")

# The demo model and the start of its held-out text (models/README.md).
DEMO_MODEL = "models/demo.bin"
DEMO_HELDOUT = "tests/data/demo_heldout.txt"
DEMO_PROMPT = "And God said"
GREEDY_TOKENS = 50

# Random models rebuilt by the C tests from (shape, seed):
# (case, (n_layer, n_head, n_embd, n_ctx, n_vocab), seed, tokens)
# tokens: an int n (n pseudo-random ids from numpy's default_rng(1000 + the
# case's index in this list)), ("edges", n) (the same but the first two ids
# are n_vocab-1 and 0), or an explicit list of ids.
RANDOM_CASES = [
    ("rand_l1_h1_c32_t16_v256_full", (1, 1, 32, 16, 256), 1, 16),          # 1 layer, 1 head, fills n_ctx
    ("rand_l1_h1_c32_t16_v256_one", (1, 1, 32, 16, 256), 1, [255]),       # one token, the last id
    ("rand_l2_h5_c80_t64_v1000", (2, 5, 80, 64, 1000), 2, ("edges", 37)),  # head_dim 16, n_ctx 64
    ("rand_l2_h5_c80_t64_v1000_full", (2, 5, 80, 64, 1000), 2, 64),
    ("rand_l2_h6_c90_t96_v512", (2, 6, 90, 96, 512), 3, 50),              # head_dim 15 (odd)
    ("rand_l3_h4_c64_t128_v50257", (3, 4, 64, 128, 50257), 4, ("edges", 20)),  # full GPT-2 vocabulary
    ("rand_l12_h12_c768_t1024_v50257", (12, 12, 768, 1024, 50257), 5, 8),  # the 124M shape
    ("rand_l4_h3_c57_t40_v301_full", (4, 3, 57, 40, 301), 6, 40),         # odd n_embd, head_dim 19
    ("rand_l2_h8_c8_t12_v256_seedmax", (2, 8, 8, 12, 256), 2 ** 64 - 1, 12),  # head_dim 1, seed 2^64-1
    ("rand_l1_h2_c16_t1_v256_ctx1", (1, 2, 16, 1, 256), 7, 1),            # n_ctx 1
]

# Checkpoints written by our own writer (the C loader reads them).
CKPT_SHAPE = (2, 3, 36, 64, 300)   # n_embd 36 and 4*36: last q8_0 block of a row is partial
CKPT_SEED = 8
CKPT_TOKENS = 64
CKPT_PROMPT = "The sea"

HELDOUT_TEXT = """\
The lighthouse keeper wrote in his log every evening, whether or not anything
had happened. Most entries were short: the wind from the west, a fishing boat
returning late, the lamp cleaned and the oil measured. On stormy nights he
wrote more, describing the height of the waves and the sound they made against
the rocks below. Years later, his daughter found the books in a wooden chest
and read them one winter, page by page, until she knew the sea as he had.
"""

# Hugging Face folders: (case, shape, seed, st_dtype, options, tokens)
HF_CASES = [
    ("l2_h4_c32_f32_prefix", (2, 4, 32, 24, 300), 11, "F32",
     dict(prefix="transformer.", lm_head=True, with_n_ctx=True), 24),
    ("l3_h5_c40_f16_masks", (3, 5, 40, 32, 500), 12, "F16",
     dict(prefix="", mask_buffers=True), 32),
    ("l2_h6_c42_bf16_prefix", (2, 6, 42, 20, 400), 13, "BF16",
     dict(prefix="transformer.", ascii_vocab=True), 17),
    ("l4_h2_c24_f32_sharded", (4, 2, 24, 16, 350), 14, "F32",
     dict(prefix="", shards=2, shuffle_layout=True), 16),
]

# llm.c files: (file, shape, seed, version, padding of the extra wte rows, tokens)
LLMC_CASES = [
    ("l2_h4_c32_t24_v300_fp32.bin", (2, 4, 32, 24, 300), 31, 3, "zero", 24),
    ("l3_h3_c24_t32_v300_bf16.bin", (3, 3, 24, 32, 300), 32, 5, "random", 32),
]
LLMC_VOCAB = 300   # both files use tests/data/llmc/vocab.json and merges.txt


def rel(path):
    return os.path.relpath(path, REPO)


def write(path, text):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)


def case_tokens(n_vocab, spec, salt):
    if isinstance(spec, list):
        return list(spec)
    edges = isinstance(spec, tuple)
    n = spec[1] if edges else spec
    rng = np.random.default_rng(1000 + salt)
    ids = [int(x) for x in rng.integers(0, n_vocab, n)]
    if edges:
        ids[:2] = [n_vocab - 1, 0][:n]
    return ids


def check_golden(path, ids, logits):
    """Parses a golden file back and checks it against the logits."""
    with open(path, encoding="utf-8") as f:
        g = R.parse_golden(f.read())
    assert g["tokens"] == [int(i) for i in ids]
    L = logits.numpy()
    for p, vals in g["pos"].items():
        assert np.allclose(vals, L[p, g["sample"]], rtol=1e-8, atol=1e-12)
    for p, top in g["top"].items():
        order = np.argsort(-L[p], kind="stable")[:8]
        assert [i for i, _ in top] == list(order)
    assert len(g["pos"]) == len(ids) == len(g["top"])


def golden(path, model_line, dtype_name, model, ids):
    logits = R.forward(model, ids)
    write(path, R.golden_text(model_line, dtype_name, ids, logits))
    check_golden(path, ids, logits)
    return logits


def make_random():
    for salt, (case, shape, seed, spec) in enumerate(RANDOM_CASES):
        t0 = time.time()
        cfg = R.Config(*shape)
        model = R.Model(cfg, R.random_weights(cfg, seed))
        ids = case_tokens(cfg.n_vocab, spec, salt)
        line = "model random %d %d %d %d %d %d" % (shape + (seed,))
        golden(os.path.join(GOLDEN, case + ".txt"), line, "f32", model, ids)
        print("%-40s %3d tokens  %.1fs" % (case, len(ids), time.time() - t0))


def make_ckpt():
    """Checkpoints of one random model in all four types, each with the
    logits of its (dequantized) weights, plus scoring and greedy goldens."""
    os.makedirs(CKPT, exist_ok=True)
    cfg = R.Config(*CKPT_SHAPE)
    weights = R.random_weights(cfg, CKPT_SEED)
    tok = R.gpt2_tokenizer(cfg.n_vocab)
    ids = case_tokens(cfg.n_vocab, CKPT_TOKENS, 100)
    write(os.path.join(CKPT, "heldout.txt"), HELDOUT_TEXT)
    name = "l%d_h%d_c%d_t%d_v%d" % (cfg.n_layer, cfg.n_head, cfg.n_embd, cfg.n_ctx, cfg.n_vocab)
    for dt in ("f32", "f16", "bf16", "q8_0"):
        path = os.path.join(CKPT, "%s_%s.bin" % (name, dt))
        R.write_checkpoint(path, cfg, weights, dt, tok)
        cfg2, w2, tok2, info = R.read_checkpoint(path)     # everything from the file
        assert cfg2.shape() == cfg.shape() and tok2.tokens == tok.tokens and tok2.merges == tok.merges
        if dt == "f32":
            assert all(np.array_equal(a.reshape(b.shape), b) for a, b in zip(weights, w2))
        model = R.Model(cfg2, w2)
        line = "model file %s" % rel(path)
        golden(os.path.join(GOLDEN, "ckpt_%s_%s.txt" % (name, dt)), line, dt, model, ids)
        if dt in ("f32", "q8_0"):
            write_score_and_greedy(os.path.join(GOLDEN, "ckpt_%s_%s" % (name, dt)), line, dt, model,
                                   tok2, HELDOUT_TEXT, rel(os.path.join(CKPT, "heldout.txt")), CKPT_PROMPT)
        print("%-40s %6d bytes" % (rel(path), os.path.getsize(path)))


def write_score_and_greedy(stem, model_line, dt, model, tok, text, text_path, prompt):
    ids = tok.encode(text)
    assert tok.decode(ids) == text.encode("utf-8")
    lp = R.score(model, ids)
    write(stem + ".score", R.score_text(model_line, dt, ids, lp, model.cfg.n_ctx, text_path))
    p_ids = tok.encode(prompt)
    n_new = min(GREEDY_TOKENS, model.cfg.n_ctx - len(p_ids))   # every token fits the context
    new, margins = R.greedy(model, p_ids, n_new)
    write(stem + ".greedy", R.greedy_text(model_line, dt, p_ids, new, margins, prompt))
    print("%-40s %d tokens scored, ppl %.4f; greedy %d tokens, min margin %.3g" % (
        rel(stem) + ".score", len(lp), np.exp(-lp.mean()), len(new), min(margins)))


def make_hf():
    os.makedirs(HF, exist_ok=True)
    for case, shape, seed, st_dtype, opts, ntok in HF_CASES:
        folder = os.path.join(HF, case)
        if os.path.isdir(folder):
            shutil.rmtree(folder)
        cfg = R.Config(*shape)
        weights = R.random_weights(cfg, seed)
        R.write_hf_folder(folder, cfg, weights, st_dtype, **opts)
        cfg2, w2 = R.read_hf_folder(folder)                 # the weights as stored
        assert cfg2.shape() == cfg.shape()
        widen = {"F32": lambda a: a,
                 "F16": lambda a: R.f16_bits_to_f32(R.f32_to_f16_bits(a)),
                 "BF16": lambda a: R.bf16_bits_to_f32(R.f32_to_bf16_bits(a))}[st_dtype]
        assert all(np.array_equal(widen(a).reshape(b.shape), b) for a, b in zip(weights, w2))
        ids = case_tokens(cfg.n_vocab, ntok, 200 + seed)
        golden(os.path.join(GOLDEN, "hf_%s.txt" % case), "model hf %s" % rel(folder), "f32",
               R.Model(cfg2, w2), ids)
        print("%-40s %6d bytes" % (rel(folder), dir_size(folder)))
    make_hf_bad()


def dir_size(folder):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(folder) for f in fs)


def st_layout(entries, metadata={"format": "pt"}):
    """A safetensors file from explicit entries [(name, dtype, shape, begin, end, bytes)];
    data bytes are placed at their offsets (later entries overwrite earlier ones)."""
    header = {"__metadata__": metadata}
    size = 0
    for name, dt, shape, b, e, data in entries:
        header[name] = {"dtype": dt, "shape": list(shape), "data_offsets": [b, e]}
        size = max(size, b + len(data))
    hj = json.dumps(header, separators=(",", ":")).encode()
    hj += b" " * (R.align(len(hj), 8) - len(hj))
    data = bytearray(size)
    for name, dt, shape, b, e, raw in entries:
        data[b:b + len(raw)] = raw
    return struct.pack("<Q", len(hj)) + hj + bytes(data)


def make_hf_bad():
    """Small broken folders for the converter's error tests (README lists them)."""
    cfg = R.Config(1, 1, 8, 8, 256)
    weights = R.random_weights(cfg, 21)
    sd = R.hf_state_dict(cfg, weights, prefix="")

    def entries(sd, dtype="F32"):
        out, pos = [], 0
        for name in sorted(sd):
            raw = R.st_bytes(sd[name], dtype)
            out.append([name, dtype, list(sd[name].shape), pos, pos + len(raw), raw])
            pos += len(raw)
        return out

    def folder(name, st=None, config=None, vocab=True, merges=True, extra=None):
        d = os.path.join(HF, "bad_" + name)
        if os.path.isdir(d):
            shutil.rmtree(d)
        os.makedirs(d)
        write(os.path.join(d, "config.json"), config if config is not None else R.hf_config(cfg))
        if st is not None:
            with open(os.path.join(d, "model.safetensors"), "wb") as f:
                f.write(st)
        write_vocab(d, vocab, merges)
        for fn, content in (extra or {}).items():
            mode = "wb" if isinstance(content, bytes) else "w"
            with open(os.path.join(d, fn), mode) as f:
                f.write(content)
        return d

    def write_vocab(d, vocab, merges):
        R.write_vocab_files(d, cfg.n_vocab)
        if not vocab:
            os.remove(os.path.join(d, "vocab.json"))
        if not merges:
            os.remove(os.path.join(d, "merges.txt"))

    good = st_layout(entries(sd))
    # the header length says the header runs 100 bytes past the end of the file
    folder("header_len", struct.pack("<Q", len(good) + 100) + good[8:])
    # the header is not JSON (same length, unterminated object)
    (hl,) = struct.unpack_from("<Q", good, 0)
    junk = b'{"wte.weight":{"dtype":"F32","shape":[256,8],"data_offsets":[0,'
    folder("header_json", good[:8] + junk + b" " * (hl - len(junk)) + good[8 + hl:])
    # ln_f.bias ends 64 bytes past the end of the data (its size is right)
    e = entries(sd)
    last = max(e, key=lambda x: x[4])
    st = st_layout(e)
    for x in e:
        if x[0] == "ln_f.bias":
            n = x[4] - x[3]
            x[3], x[4] = last[4] + 64 - n, last[4] + 64
    folder("offsets_outside", _rewrite_header(st, e))
    # h.0.ln_1.bias starts 16 bytes inside h.0.attn.c_proj.weight's range; all
    # later tensors move down by 16 so that the data has no hole
    e = entries(sd)
    shift = False
    for x in e:
        if x[0] == "h.0.ln_1.bias":
            shift = True
        if shift:
            x[3] -= 16
            x[4] -= 16
    folder("offsets_overlap", st_layout(e))
    # data_offsets of ln_f.weight cover 4 bytes fewer than its shape needs
    e = entries(sd)
    for x in e:
        if x[0] == "ln_f.weight":
            x[4] -= 4
            x[5] = x[5][:-4]
    folder("offsets_size", _pack_exact(e))
    # a dtype name safetensors does not have
    e = entries(sd)
    for x in e:
        if x[0] == "ln_f.weight":
            x[1] = "Q7"
    folder("dtype_unknown", st_layout(e))
    # a real safetensors dtype that GPT-2 checkpoints do not use (F64)
    e = entries(sd)
    pos = 0
    for x in e:
        if x[0] == "wpe.weight":
            x[1] = "F64"
            x[5] = np.asarray(sd[x[0]], dtype="<f8").tobytes()
        x[4] = pos + len(x[5])
        x[3] = pos
        pos = x[4]
    folder("dtype_f64", st_layout(e))
    # c_attn.weight stored in nn.Linear layout [3C, C] instead of Conv1D [C, 3C]
    e = entries(sd)
    for x in e:
        if x[0] == "h.0.attn.c_attn.weight":
            x[2] = x[2][::-1]
    folder("shape_transposed", st_layout(e))
    # config.json says n_positions 16, wpe.weight has 8 rows
    folder("shape_config", good, config=R.hf_config(R.Config(1, 1, 8, 16, 256)))
    # config.json is not JSON
    folder("config_json", good, config='{\n  "activation_function": "gelu_new",\n  "n_embd": 8,\n  "n_head": 1,\n')
    # vocab.json or merges.txt missing
    folder("no_vocab", good, vocab=False)
    folder("no_merges", good, merges=False)
    # h.0.mlp.c_fc.bias missing
    folder("missing_tensor", st_layout(entries({k: v for k, v in sd.items() if k != "h.0.mlp.c_fc.bias"})))
    # lm_head.weight differs from wte.weight in one element: untied
    lm = np.array(sd["wte.weight"])
    lm[-1, -1] += 0.5
    folder("lm_head_untied", st_layout(entries(dict(sd, **{"lm_head.weight": lm}))))
    # sharded: the index names a second shard that is not there
    names = sorted(sd)
    half = len(names) // 2
    first = st_layout(entries({k: sd[k] for k in names[:half]}))
    index = {"metadata": {"total_size": sum(np.asarray(v).nbytes for v in sd.values())},
             "weight_map": {k: "model-%05d-of-00002.safetensors" % (1 if i < half else 2)
                            for i, k in enumerate(names)}}
    folder("shard_missing", None, extra={"model-00001-of-00002.safetensors": first,
                                         "model.safetensors.index.json": json.dumps(index, indent=2) + "\n"})
    bad = sorted(d for d in os.listdir(HF) if d.startswith("bad_"))
    print("%-40s %d folders, %d bytes" % (rel(HF) + "/bad_*", len(bad),
                                         sum(dir_size(os.path.join(HF, d)) for d in bad)))


def _rewrite_header(st, e):
    """st with its header replaced by one built from entries e (data unchanged)."""
    (hl,) = struct.unpack_from("<Q", st, 0)
    data = st[8 + hl:]
    header = {"__metadata__": {"format": "pt"}}
    for name, dt, shape, b, en, raw in e:
        header[name] = {"dtype": dt, "shape": list(shape), "data_offsets": [b, en]}
    hj = json.dumps(header, separators=(",", ":")).encode()
    hj += b" " * (R.align(len(hj), 8) - len(hj))
    return struct.pack("<Q", len(hj)) + hj + data


def _pack_exact(e):
    """Entries laid out back to back using their (possibly short) bytes."""
    pos = 0
    for x in e:
        x[3], x[4] = pos, pos + len(x[5])
        pos = x[4]
    return st_layout(e)


def make_llmc():
    os.makedirs(LLMC, exist_ok=True)
    R.write_vocab_files(LLMC, LLMC_VOCAB)
    for fn, shape, seed, version, pad, ntok in LLMC_CASES:
        cfg = R.Config(*shape)
        assert cfg.n_vocab == LLMC_VOCAB
        weights = R.random_weights(cfg, seed)
        Vp = R.align(cfg.n_vocab, 128)
        if pad == "zero":
            fill = 0.0
        else:   # what a model trained from scratch in llm.c may hold in its padded rows
            fill = R.random_u(seed, 1000, 0, Vp * cfg.n_embd).reshape(Vp, cfg.n_embd)
        path = os.path.join(LLMC, fn)
        R.write_llmc(path, cfg, weights, version, Vp, fill)
        cfg2, w2, Vp2 = R.read_llmc(path)
        assert cfg2.shape() == cfg.shape() and Vp2 == Vp
        widen = (lambda a: a) if version == 3 else (lambda a: R.bf16_bits_to_f32(R.f32_to_bf16_bits(a)))
        assert all(np.array_equal(widen(a).reshape(b.shape), b) for a, b in zip(weights, w2))
        ids = case_tokens(cfg.n_vocab, ntok, 300 + seed)
        golden(os.path.join(GOLDEN, "llmc_%s.txt" % fn[:-4]), "model llmc %s" % rel(path), "f32",
               R.Model(cfg2, w2), ids)
        print("%-40s %6d bytes (padded vocab %d)" % (rel(path), os.path.getsize(path), Vp))


def make_demo():
    """Goldens of the demo model: logits, held-out perplexity, greedy text."""
    path = os.path.join(REPO, DEMO_MODEL)
    if not os.path.exists(path):
        print("%-40s not there yet: demo goldens skipped" % DEMO_MODEL)
        return
    cfg, w, tok, info = R.read_checkpoint(path)
    dt = R.DTYPE_NAMES[info["dtype"]]
    model = R.Model(cfg, w)
    line = "model file %s" % DEMO_MODEL
    with open(os.path.join(REPO, DEMO_HELDOUT), encoding="utf-8") as f:
        text = f.read()
    ids = tok.encode(text)[:min(cfg.n_ctx, 64)]
    golden(os.path.join(GOLDEN, "demo.txt"), line, dt, model, ids)
    write_score_and_greedy(os.path.join(GOLDEN, "demo"), line, dt, model, tok, text, DEMO_HELDOUT, DEMO_PROMPT)


def main():
    t0 = time.time()
    os.makedirs(GOLDEN, exist_ok=True)
    make_random()
    make_ckpt()
    make_hf()
    make_llmc()
    make_demo()
    total = sum(dir_size(os.path.join(REPO, "tests", "data", d)) for d in ("golden", "ckpt", "hf", "llmc"))
    print("done in %.0fs; tests/data/{golden,ckpt,hf,llmc}: %d bytes" % (time.time() - t0, total))


if __name__ == "__main__":
    main()
