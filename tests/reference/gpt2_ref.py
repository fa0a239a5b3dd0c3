#!/usr/bin/env python3
"""Independent reference implementation of GPT-2 for testing gpt.c.

Written from docs/FORMAT.md (the format and GPT-2's equations)
only, never from the C sources. It provides:

  * the counter-based random weight generator of FORMAT.md ("Random weights"),
  * a reader and a writer of our checkpoint format (f32, f16, bf16, q8_0 and
    the tokenizer section),
  * GPT-2 byte-level BPE (vocabulary, merges, encoding) for the tokenizer
    section and for turning held-out text into ids,
  * a GPT-2 forward pass computed in float64 (the ground truth),
  * writers and readers of Hugging Face GPT-2 folders (safetensors) and of
    llm.c checkpoints, used to make inputs for `gpt convert`,
  * the golden file formats the C tests read.

Needs only Python 3, numpy and torch (Debian: python3-numpy python3-torch).
"""

import json
import math
import os
import struct
import unicodedata

import numpy as np
import torch

torch.set_num_threads(2)

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
TOKENIZER_DIR = os.path.join(REPO, "models", "tokenizer")


class Config:
    """Hyperparameters of a GPT-2 model (names as in FORMAT.md)."""

    def __init__(self, n_layer, n_head, n_embd, n_ctx, n_vocab, ln_eps=1e-5):
        self.n_layer = int(n_layer)
        self.n_head = int(n_head)
        self.n_embd = int(n_embd)
        self.n_ctx = int(n_ctx)
        self.n_vocab = int(n_vocab)
        # the header stores eps as binary32; use exactly that value
        self.ln_eps = float(np.float32(ln_eps))
        if self.n_embd % self.n_head != 0:
            raise ValueError("n_embd %d is not a multiple of n_head %d" % (n_embd, n_head))

    @property
    def head_dim(self):
        return self.n_embd // self.n_head

    def shape(self):
        return (self.n_layer, self.n_head, self.n_embd, self.n_ctx, self.n_vocab)

    def __repr__(self):
        return "Config(n_layer=%d, n_head=%d, n_embd=%d, n_ctx=%d, n_vocab=%d, ln_eps=%r)" % (
            self.n_layer, self.n_head, self.n_embd, self.n_ctx, self.n_vocab, self.ln_eps)


# ---------------------------------------------------------------------------
# Canonical tensor list (FORMAT.md "Canonical order and shapes")

BLOCK_TENSORS = [
    # (name inside block, kind, rows(C), cols(C)) ; kind: matrix | ln_weight | bias
    ("ln_1.weight", "ln_weight", lambda C: 1, lambda C: C),
    ("ln_1.bias", "bias", lambda C: 1, lambda C: C),
    ("attn.c_attn.weight", "matrix", lambda C: 3 * C, lambda C: C),
    ("attn.c_attn.bias", "bias", lambda C: 1, lambda C: 3 * C),
    ("attn.c_proj.weight", "matrix", lambda C: C, lambda C: C),
    ("attn.c_proj.bias", "bias", lambda C: 1, lambda C: C),
    ("ln_2.weight", "ln_weight", lambda C: 1, lambda C: C),
    ("ln_2.bias", "bias", lambda C: 1, lambda C: C),
    ("mlp.c_fc.weight", "matrix", lambda C: 4 * C, lambda C: C),
    ("mlp.c_fc.bias", "bias", lambda C: 1, lambda C: 4 * C),
    ("mlp.c_proj.weight", "matrix", lambda C: C, lambda C: 4 * C),
    ("mlp.c_proj.bias", "bias", lambda C: 1, lambda C: C),
]


def canonical_tensors(cfg):
    """[(name, kind, rows, cols)] in canonical order. Names are Hugging Face's
    GPT-2 names without the "transformer." prefix (wte.weight, h.0.ln_1.weight,
    ...); shapes are ours (output-major, vectors are 1 x n)."""
    C, V, T = cfg.n_embd, cfg.n_vocab, cfg.n_ctx
    out = [("wte.weight", "matrix", V, C), ("wpe.weight", "matrix", T, C)]
    for l in range(cfg.n_layer):
        for name, kind, rows, cols in BLOCK_TENSORS:
            out.append(("h.%d.%s" % (l, name), kind, rows(C), cols(C)))
    out.append(("ln_f.weight", "ln_weight", 1, C))
    out.append(("ln_f.bias", "bias", 1, C))
    assert len(out) == 12 * cfg.n_layer + 4
    return out


# ---------------------------------------------------------------------------
# Random weights (FORMAT.md "Random weights")

MASK64 = (1 << 64) - 1
GOLDEN_GAMMA = 0x9E3779B97F4A7C15
MIX_C1 = 0xBF58476D1CE4E5B9
MIX_C2 = 0x94D049BB133111EB


def mix64_int(z):
    """mix64 on one Python integer (the plain, obviously-correct version)."""
    z &= MASK64
    z = ((z ^ (z >> 30)) * MIX_C1) & MASK64
    z = ((z ^ (z >> 27)) * MIX_C2) & MASK64
    return z ^ (z >> 31)


def mix64_np(z):
    """mix64 on a numpy uint64 array (uint64 arithmetic wraps modulo 2^64)."""
    z = z ^ (z >> np.uint64(30))
    z *= np.uint64(MIX_C1)
    z ^= z >> np.uint64(27)
    z *= np.uint64(MIX_C2)
    z ^= z >> np.uint64(31)
    return z


def tensor_key(seed, k):
    return mix64_int((seed + GOLDEN_GAMMA * (k + 1)) & MASK64)


def bits_int(seed, k, j):
    return mix64_int((tensor_key(seed, k) + GOLDEN_GAMMA * (j + 1)) & MASK64)


def u_int(seed, k, j):
    """u(k, j) as an exact Python float, from the scalar generator."""
    return ((bits_int(seed, k, j) >> 40) - 2 ** 23) / 2.0 ** 23


def random_u(seed, k, start, count):
    """u(k, j) for j = start .. start+count-1, as float32 (exact)."""
    key = np.uint64(tensor_key(seed, k))
    j = np.arange(start + 1, start + count + 1, dtype=np.uint64)  # j + 1
    with np.errstate(over="ignore"):
        z = key + np.uint64(GOLDEN_GAMMA) * j
        bits = mix64_np(z)
    top = (bits >> np.uint64(40)).astype(np.int64) - (1 << 23)  # in [-2^23, 2^23)
    return top.astype(np.float32) / np.float32(2.0 ** 23)


def random_tensor(seed, k, kind, rows, cols, chunk=1 << 22):
    """Tensor k of a random model as float32, shape (rows, cols) for matrices
    and (cols,) for vectors. All values are rounded once to binary32, as the
    spec's binary32 arithmetic gives (each product of two binary32 numbers is
    exact in float64, and 1 + 0.25u is exact in float64)."""
    n = rows * cols
    out = np.empty(n, dtype=np.float32)
    s = float(np.float32(math.sqrt(3.0 / cols)))
    for start in range(0, n, chunk):
        cnt = min(chunk, n - start)
        u = random_u(seed, k, start, cnt).astype(np.float64)
        if kind == "matrix":
            v = u * s
        elif kind == "ln_weight":
            v = 1.0 + 0.25 * u
        elif kind == "bias":
            v = 0.125 * u
        else:
            raise ValueError(kind)
        out[start:start + cnt] = v.astype(np.float32)
    return out.reshape(rows, cols) if kind == "matrix" else out


def random_weights(cfg, seed):
    """All tensors of a random model in canonical order (list of float32 arrays)."""
    return [random_tensor(seed, k, kind, rows, cols)
            for k, (name, kind, rows, cols) in enumerate(canonical_tensors(cfg))]


# ---------------------------------------------------------------------------
# Number formats

DTYPE_F32, DTYPE_F16, DTYPE_BF16, DTYPE_Q8_0 = 0, 1, 2, 3
DTYPE_NAMES = {DTYPE_F32: "f32", DTYPE_F16: "f16", DTYPE_BF16: "bf16", DTYPE_Q8_0: "q8_0"}
DTYPE_CODES = {v: k for k, v in DTYPE_NAMES.items()}


def align(x, a):
    return (x + a - 1) // a * a


def f32_to_f16_bits(a):
    """binary32 -> binary16, round to nearest even (numpy's conversion)."""
    return np.asarray(a, dtype=np.float32).astype(np.float16).view(np.uint16)


def f16_bits_to_f32(b):
    return np.asarray(b, dtype=np.uint16).view(np.float16).astype(np.float32)


def f32_to_bf16_bits(a):
    """binary32 -> bfloat16, round to nearest even (what torch's .to(bfloat16)
    does for finite numbers)."""
    x = np.asarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    x = x + np.uint64(0x7FFF) + ((x >> np.uint64(16)) & np.uint64(1))
    return (x >> np.uint64(16)).astype(np.uint16)


def bf16_bits_to_f32(b):
    return (np.asarray(b, dtype=np.uint16).astype(np.uint32) << np.uint32(16)).view(np.float32)


def q8_0_nbytes(rows, cols):
    nb = (cols + 31) // 32
    return align(rows * nb * 32, 64) + 2 * rows * nb


def q8_0_quantize(w):
    """(quants int8 [rows, nb*32], scales f16 bits [rows, nb]) as gpt convert
    picks them: d = max|x| / 127, s = f16(d), q = clamp(round(x/s), -127, 127)
    with rounding half away from zero; an all-zero block gets scale 0."""
    w = np.asarray(w, dtype=np.float32)
    rows, cols = w.shape
    nb = (cols + 31) // 32
    x = np.zeros((rows, nb * 32), dtype=np.float32)
    x[:, :cols] = w
    x = x.reshape(rows, nb, 32)
    d = np.abs(x).max(axis=2) / np.float32(127.0)           # binary32
    s_bits = f32_to_f16_bits(d)
    s = f16_bits_to_f32(s_bits)[:, :, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        r = (x / s).astype(np.float64)                        # binary32 quotient
    r = np.where(s > 0, r, 0.0)
    q = np.sign(r) * np.floor(np.abs(r) + 0.5)
    q = np.clip(q, -127, 127).astype(np.int8)
    return q.reshape(rows, nb * 32), s_bits.reshape(rows, nb)


def q8_0_dequantize(quants, scales, cols):
    rows = quants.shape[0]
    nb = scales.shape[1]
    v = quants.reshape(rows, nb, 32).astype(np.float32) * f16_bits_to_f32(scales)[:, :, None]
    return v.reshape(rows, nb * 32)[:, :cols].copy()


def encode_tensor(w, dtype):
    """Bytes of a rows x cols float32 array in one of our tensor types."""
    w = np.asarray(w, dtype=np.float32)
    if w.ndim == 1:
        w = w.reshape(1, -1)
    if dtype == DTYPE_F32:
        return w.astype("<f4").tobytes()
    if dtype == DTYPE_F16:
        return f32_to_f16_bits(w).astype("<u2").tobytes()
    if dtype == DTYPE_BF16:
        return f32_to_bf16_bits(w).astype("<u2").tobytes()
    if dtype == DTYPE_Q8_0:
        rows, cols = w.shape
        q, s = q8_0_quantize(w)
        qb = q.tobytes()
        return qb + b"\0" * (align(len(qb), 64) - len(qb)) + s.astype("<u2").tobytes()
    raise ValueError("unknown dtype %r" % dtype)


def tensor_nbytes(dtype, rows, cols):
    if dtype == DTYPE_F32:
        return 4 * rows * cols
    if dtype in (DTYPE_F16, DTYPE_BF16):
        return 2 * rows * cols
    if dtype == DTYPE_Q8_0:
        return q8_0_nbytes(rows, cols)
    raise ValueError("unknown dtype %r" % dtype)


def decode_tensor(buf, dtype, rows, cols):
    """float32 array (rows, cols) from the bytes of a tensor (dequantized)."""
    if dtype == DTYPE_F32:
        return np.frombuffer(buf, dtype="<f4", count=rows * cols).astype(np.float32).reshape(rows, cols)
    if dtype == DTYPE_F16:
        return f16_bits_to_f32(np.frombuffer(buf, dtype="<u2", count=rows * cols)).reshape(rows, cols)
    if dtype == DTYPE_BF16:
        return bf16_bits_to_f32(np.frombuffer(buf, dtype="<u2", count=rows * cols)).reshape(rows, cols)
    if dtype == DTYPE_Q8_0:
        nb = (cols + 31) // 32
        q = np.frombuffer(buf, dtype=np.int8, count=rows * nb * 32).reshape(rows, nb * 32)
        s = np.frombuffer(buf, dtype="<u2", count=rows * nb,
                          offset=align(rows * nb * 32, 64)).reshape(rows, nb)
        return q8_0_dequantize(q, s, cols)
    raise ValueError("unknown dtype %r" % dtype)


# ---------------------------------------------------------------------------
# GPT-2 byte-level BPE tokenizer

def bytes_to_unicode():
    """GPT-2's table byte -> printable unicode character (encoder.json uses it)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


BYTE_ENCODER = bytes_to_unicode()
BYTE_DECODER = {c: b for b, c in BYTE_ENCODER.items()}
EOT_TEXT = "<|endoftext|>"


class Tokenizer:
    """tokens: list of bytes (index = id); merges: list of (left id, right id)
    in rank order; eot_id: id of <|endoftext|> or -1."""

    def __init__(self, tokens, merges, eot_id):
        self.tokens = list(tokens)
        self.merges = list(merges)
        self.eot_id = int(eot_id)
        self._ids = None
        self._ranks = None

    @property
    def n_vocab(self):
        return len(self.tokens)

    def _prepare(self):
        if self._ids is None:
            self._ids = {t: i for i, t in enumerate(self.tokens) if i != self.eot_id}
            self._ranks = {(self.tokens[a], self.tokens[b]): r for r, (a, b) in enumerate(self.merges)}
            self._cache = {}

    def _bpe(self, piece):
        """Ids of one pre-token (bytes), merging the lowest-ranked pair first
        exactly as GPT-2's bpe()."""
        if piece in self._cache:
            return self._cache[piece]
        parts = [bytes([b]) for b in piece]
        while len(parts) > 1:
            best, best_rank = None, None
            for i in range(len(parts) - 1):
                r = self._ranks.get((parts[i], parts[i + 1]))
                if r is not None and (best_rank is None or r < best_rank):
                    best, best_rank = (parts[i], parts[i + 1]), r
            if best is None:
                break
            merged, i = [], 0
            while i < len(parts):   # merge every occurrence, left to right
                if i < len(parts) - 1 and (parts[i], parts[i + 1]) == best:
                    merged.append(parts[i] + parts[i + 1])
                    i += 2
                else:
                    merged.append(parts[i])
                    i += 1
            parts = merged
        ids = [self._ids[p] for p in parts]
        self._cache[piece] = ids
        return ids

    def encode(self, text):
        """Ids of a str, as tiktoken's gpt2 encode_ordinary (no special tokens)."""
        self._prepare()
        out = []
        for piece in pretokenize(text):
            out.extend(self._bpe(piece.encode("utf-8")))
        return out

    def decode(self, ids):
        return b"".join(self.tokens[i] for i in ids)


def load_gpt2_vocab():
    """encoder.json tokens as bytes (by id) and vocab.bpe merges (as pairs of
    token strings) from models/tokenizer."""
    with open(os.path.join(TOKENIZER_DIR, "encoder.json"), encoding="utf-8") as f:
        enc = json.load(f)
    strings = [None] * len(enc)
    for s, i in enc.items():
        strings[i] = s
    with open(os.path.join(TOKENIZER_DIR, "vocab.bpe"), encoding="utf-8") as f:
        lines = f.read().split("\n")
    assert lines[0].startswith("#version"), lines[0]
    merges = [tuple(l.split(" ")) for l in lines[1:] if l]
    return strings, merges, enc


def token_string_to_bytes(s):
    if s == EOT_TEXT:
        return s.encode("ascii")
    return bytes(BYTE_DECODER[c] for c in s)


def gpt2_tokenizer(n_vocab=50257):
    """GPT-2's tokenizer cut to n_vocab tokens (FORMAT.md, last paragraph):
    the whole vocabulary for 50257; otherwise the first n_vocab tokens, the
    merges whose result is among them, and no <|endoftext|>."""
    strings, merge_strs, enc = load_gpt2_vocab()
    if not 256 <= n_vocab <= len(strings):
        raise ValueError("n_vocab %d: a GPT-2 tokenizer needs 256 .. %d" % (n_vocab, len(strings)))
    tokens = [token_string_to_bytes(s) for s in strings[:n_vocab]]
    merges = []
    for a, b in merge_strs:
        if enc[a + b] < n_vocab:
            merges.append((enc[a], enc[b]))
    eot = enc[EOT_TEXT] if enc[EOT_TEXT] < n_vocab else -1
    return Tokenizer(tokens, merges, eot)


def hf_vocab_and_merges(n_vocab):
    """(vocab.json dict, merges.txt lines) for the first n_vocab GPT-2 tokens,
    as Hugging Face folders hold them (printable-unicode token strings)."""
    strings, merge_strs, enc = load_gpt2_vocab()
    vocab = {s: i for i, s in enumerate(strings[:n_vocab])}
    merges = ["%s %s" % (a, b) for a, b in merge_strs if enc[a + b] < n_vocab]
    return vocab, merges


# Pre-tokenizer: GPT-2's split pattern
#   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
# written out as a scanner (the stdlib `re` has no \p{L}). The character
# classes are tiktoken's (tools/unicode_classes_tiktoken_wasm.txt) when that
# file exists, else Python's unicodedata.

_CLASS_TABLE = None


def _char_classes():
    global _CLASS_TABLE
    if _CLASS_TABLE is None:
        path = os.path.join(REPO, "tools", "unicode_classes_tiktoken_wasm.txt")
        table = {}
        if os.path.exists(path):
            with open(path, encoding="ascii") as f:
                for line in f:
                    if line.startswith("#") or not line.strip():
                        continue
                    cls, lo, hi = line.split()
                    for cp in range(int(lo, 16), int(hi, 16) + 1):
                        table[cp] = cls
        _CLASS_TABLE = table
    return _CLASS_TABLE


def char_class(ch):
    """'L' letter, 'N' number, 'S' white space, 'O' other."""
    table = _char_classes()
    if table:
        return table.get(ord(ch), "O")
    if ch in "\t\n\x0b\x0c\r \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000" or "\u2000" <= ch <= "\u200a":
        return "S"
    cat = unicodedata.category(ch)
    return {"L": "L", "N": "N"}.get(cat[0], "O")


CONTRACTIONS = ("s", "t", "re", "ve", "m", "ll", "d")


def pretokenize(text):
    pieces = []
    n = len(text)
    cls = [char_class(c) for c in text]
    i = 0
    while i < n:
        c = text[i]
        # 's 't 're 've 'm 'll 'd
        if c == "'":
            m = next((x for x in CONTRACTIONS if text.startswith(x, i + 1)), None)
            if m is not None:
                pieces.append(text[i:i + 1 + len(m)])
                i += 1 + len(m)
                continue
        # ' ?\p{L}+', ' ?\p{N}+', ' ?[^\s\p{L}\p{N}]+'
        j = i + 1 if (c == " " and i + 1 < n and cls[i + 1] != "S") else i
        if j < n and cls[j] != "S":
            k, want = j, cls[j]
            while k < n and cls[k] == want:
                k += 1
            pieces.append(text[i:k])
            i = k
            continue
        # '\s+(?!\S)' then '\s+'
        k = i
        while k < n and cls[k] == "S":
            k += 1
        if k < n and k - 1 > i:
            k -= 1   # leave the last white space to prefix the next word
        pieces.append(text[i:k])
        i = k
    return pieces


def pack_tokenizer(tok):
    """The tokenizer section (FORMAT.md "Tokenizer section")."""
    n = tok.n_vocab
    offs = [0]
    for t in tok.tokens:
        offs.append(offs[-1] + len(t))
    blob = b"".join(tok.tokens)
    out = bytearray(b"GTOK")
    out += struct.pack("<IIIiI", 1, n, len(tok.merges), tok.eot_id, 0)
    out += np.asarray(offs, dtype="<u4").tobytes()
    out += blob
    out += b"\0" * (align(len(out), 4) - len(out))
    out += np.asarray(tok.merges, dtype="<u4").reshape(-1).tobytes()
    return bytes(out)


class FormatError(Exception):
    pass


def unpack_tokenizer(buf, n_vocab):
    """Parses and checks a tokenizer section (every rule FORMAT.md lists)."""
    def need(cond, msg):
        if not cond:
            raise FormatError("tokenizer: " + msg)
    need(len(buf) >= 24, "section of %d bytes is shorter than its 24-byte header" % len(buf))
    need(buf[:4] == b"GTOK", "magic %r, expected b'GTOK'" % buf[:4])
    version, nv, n_merges, eot, reserved = struct.unpack_from("<IIIiI", buf, 4)
    need(version == 1, "version %d, expected 1" % version)
    need(nv == n_vocab, "n_vocab %d, header says %d" % (nv, n_vocab))
    need(reserved == 0, "reserved field %d, expected 0" % reserved)
    p = 24
    need(len(buf) >= p + 4 * (nv + 1), "token offsets run past the section")
    offs = np.frombuffer(buf, dtype="<u4", count=nv + 1, offset=p).astype(np.int64)
    p += 4 * (nv + 1)
    need(offs[0] == 0, "off[0] = %d, expected 0" % offs[0])
    need(bool(np.all(np.diff(offs) > 0)), "token offsets do not strictly increase (empty token)")
    need(len(buf) >= p + offs[-1], "token blob runs past the section")
    blob = buf[p:p + offs[-1]]
    p = align(p + int(offs[-1]), 4)
    need(len(buf) == p + 8 * n_merges,
         "section is %d bytes, merges end at %d" % (len(buf), p + 8 * n_merges))
    tokens = [bytes(blob[offs[i]:offs[i + 1]]) for i in range(nv)]
    need(len(set(tokens)) == nv, "two tokens have the same bytes")
    ids = {t: i for i, t in enumerate(tokens)}
    need(all(bytes([b]) in ids for b in range(256)), "a single byte is not a token")
    merges = np.frombuffer(buf, dtype="<u4", count=2 * n_merges, offset=p).reshape(-1, 2)
    merges = [(int(a), int(b)) for a, b in merges]
    seen = set()
    for r, (a, b) in enumerate(merges):
        need(a < nv and b < nv, "merge %d has an id out of range" % r)
        need(tokens[a] + tokens[b] in ids, "merge %d: result is not a token" % r)
        need((a, b) not in seen, "merge %d appears twice" % r)
        need(ids[tokens[a] + tokens[b]] != eot, "merge %d produces <|endoftext|>" % r)
        seen.add((a, b))
    need(eot == -1 or 0 <= eot < nv, "eot_id %d out of range" % eot)
    return Tokenizer(tokens, merges, eot)


# ---------------------------------------------------------------------------
# Our checkpoint (FORMAT.md)

MAGIC = b"GPTC\r\n\x1a\n"
HEADER_SIZE = 128
DIR_ENTRY = 32


def write_checkpoint(path, cfg, weights, dtype, tokenizer):
    """Writes a checkpoint: matrices in `dtype` (a code or name), vectors f32.
    weights: float32 arrays in canonical order."""
    if isinstance(dtype, str):
        dtype = DTYPE_CODES[dtype]
    specs = canonical_tensors(cfg)
    assert len(weights) == len(specs)
    assert tokenizer.n_vocab == cfg.n_vocab
    n_t = len(specs)
    tok = pack_tokenizer(tokenizer)
    tok_off = align(HEADER_SIZE + DIR_ENTRY * n_t, 64)
    pos = tok_off + len(tok)
    entries, blobs = [], []
    for (name, kind, rows, cols), w in zip(specs, weights):
        w = np.asarray(w, dtype=np.float32)
        assert w.size == rows * cols, (name, w.shape, rows, cols)
        dt = dtype if kind == "matrix" else DTYPE_F32
        data = encode_tensor(w.reshape(rows, cols), dt)
        assert len(data) == tensor_nbytes(dt, rows, cols)
        pos = align(pos, 64)
        entries.append(struct.pack("<IIIIQQ", dt, rows, cols, 0, pos, len(data)))
        blobs.append((pos, data))
        pos += len(data)
    file_size = pos
    header = bytearray(MAGIC)
    header += struct.pack("<IIIIIIIfII", 1, HEADER_SIZE, cfg.n_vocab, cfg.n_ctx, cfg.n_embd,
                          cfg.n_head, cfg.n_layer, cfg.ln_eps, dtype, 0)
    header += struct.pack("<QQQI", tok_off, len(tok), file_size, n_t)
    header += b"\0" * (HEADER_SIZE - len(header))
    assert len(header) == HEADER_SIZE
    out = bytearray(file_size)
    out[0:HEADER_SIZE] = header
    out[HEADER_SIZE:HEADER_SIZE + DIR_ENTRY * n_t] = b"".join(entries)
    out[tok_off:tok_off + len(tok)] = tok
    for off, data in blobs:
        out[off:off + len(data)] = data
    with open(path, "wb") as f:
        f.write(out)
    return file_size


def read_checkpoint(path):
    """Reads and checks a checkpoint (FORMAT.md "What a reader checks").
    Returns (cfg, weights as float32 arrays in canonical order (vectors 1-D,
    quantized types dequantized), tokenizer, info dict)."""
    with open(path, "rb") as f:
        buf = f.read()

    def need(cond, msg):
        if not cond:
            raise FormatError("%s: %s" % (path, msg))

    need(len(buf) >= HEADER_SIZE, "file of %d bytes is shorter than the 128-byte header" % len(buf))
    need(buf[:8] == MAGIC, "magic %r, expected %r" % (buf[:8], MAGIC))
    (version, header_size, n_vocab, n_ctx, n_embd, n_head, n_layer, ln_eps, dtype,
     flags) = struct.unpack_from("<IIIIIIIfII", buf, 8)
    tok_off, tok_size, file_size, n_tensors = struct.unpack_from("<QQQI", buf, 48)
    need(version == 1, "version %d, expected 1" % version)
    need(header_size == HEADER_SIZE, "header_size %d, expected 128" % header_size)
    need(1 <= n_vocab <= 16777216, "n_vocab %d out of 1..16777216" % n_vocab)
    need(1 <= n_ctx <= 1048576, "n_ctx %d out of 1..1048576" % n_ctx)
    need(1 <= n_embd <= 65536, "n_embd %d out of 1..65536" % n_embd)
    need(1 <= n_layer <= 4096, "n_layer %d out of 1..4096" % n_layer)
    need(n_head >= 1 and n_embd % n_head == 0, "n_embd %d is not a multiple of n_head %d" % (n_embd, n_head))
    need(math.isfinite(ln_eps) and 0 < ln_eps < 1, "ln_eps %r out of (0, 1)" % ln_eps)
    need(dtype in DTYPE_NAMES, "dtype %d unknown" % dtype)
    need(flags == 0, "flags %d, expected 0" % flags)
    need(n_tensors == 12 * n_layer + 4, "n_tensors %d, expected %d" % (n_tensors, 12 * n_layer + 4))
    need(buf[76:128] == b"\0" * 52, "reserved header bytes are not zero")
    need(file_size == len(buf), "file_size %d but the file has %d bytes" % (file_size, len(buf)))
    dir_end = HEADER_SIZE + DIR_ENTRY * n_tensors
    need(dir_end <= len(buf), "tensor directory ends at %d, past the file" % dir_end)
    need(tok_off % 64 == 0, "tokenizer_offset %d is not a multiple of 64" % tok_off)
    need(tok_off >= dir_end and tok_off + tok_size <= len(buf),
         "tokenizer section %d..%d outside %d..%d" % (tok_off, tok_off + tok_size, dir_end, len(buf)))
    cfg = Config(n_layer, n_head, n_embd, n_ctx, n_vocab, ln_eps)
    regions = [(tok_off, tok_off + tok_size, "tokenizer section")]
    weights = []
    dtypes = []
    for k, (name, kind, rows, cols) in enumerate(canonical_tensors(cfg)):
        dt, r, c, reserved, off, nbytes = struct.unpack_from("<IIIIQQ", buf, HEADER_SIZE + DIR_ENTRY * k)
        where = "tensor %d (%s)" % (k, name)
        need(dt in DTYPE_NAMES, "%s: dtype %d unknown" % (where, dt))
        need(kind == "matrix" or dt == DTYPE_F32, "%s: a vector must be f32, found %s" % (where, DTYPE_NAMES[dt]))
        need((r, c) == (rows, cols), "%s: shape %dx%d, expected %dx%d" % (where, r, c, rows, cols))
        need(reserved == 0, "%s: reserved field is %d" % (where, reserved))
        need(nbytes == tensor_nbytes(dt, rows, cols),
             "%s: nbytes %d, expected %d" % (where, nbytes, tensor_nbytes(dt, rows, cols)))
        need(off % 64 == 0, "%s: offset %d is not a multiple of 64" % (where, off))
        need(off >= dir_end and off + nbytes <= len(buf),
             "%s: data %d..%d outside %d..%d" % (where, off, off + nbytes, dir_end, len(buf)))
        regions.append((off, off + nbytes, where))
        w = decode_tensor(buf[off:off + nbytes], dt, rows, cols)
        weights.append(w if kind == "matrix" else w.reshape(-1))
        dtypes.append(dt)
    regions.sort()
    for a, b in zip(regions, regions[1:]):
        need(a[1] <= b[0], "%s overlaps %s" % (a[2], b[2]))
    tokenizer = unpack_tokenizer(buf[tok_off:tok_off + tok_size], n_vocab)
    info = {"dtype": dtype, "tensor_dtypes": dtypes, "file_size": file_size}
    return cfg, weights, tokenizer, info


# ---------------------------------------------------------------------------
# Forward pass (float64)

class Model:
    """A GPT-2 model for the reference forward pass: float64 torch tensors
    made from float32 (or dequantized) weights in canonical order."""

    def __init__(self, cfg, weights):
        self.cfg = cfg
        specs = canonical_tensors(cfg)
        assert len(weights) == len(specs)
        self.w = {}
        for (name, kind, rows, cols), a in zip(specs, weights):
            a = np.asarray(a, dtype=np.float32)
            t = torch.from_numpy(a.astype(np.float64))
            self.w[name] = t.reshape(rows, cols) if kind == "matrix" else t.reshape(-1)


def layer_norm(x, weight, bias, eps):
    mean = x.mean(dim=-1, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=-1, keepdim=True)  # biased (population) variance
    return (x - mean) / torch.sqrt(var + eps) * weight + bias


def gelu_tanh(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def linear(x, weight, bias):
    """y[j] = b[j] + sum_i W[j][i] x[i]  (W output-major)."""
    return x @ weight.T + bias


def forward(model, ids, last_only=False):
    """Logits (float64, [n, n_vocab]) after each of the tokens ids[0..n-1],
    which sit at positions 0..n-1. With last_only, only the logits after the
    last token ([n_vocab]); the same values, without the other rows of the
    output projection."""
    cfg, w = model.cfg, model.w
    n = len(ids)
    if not 1 <= n <= cfg.n_ctx:
        raise ValueError("%d tokens, the context holds %d" % (n, cfg.n_ctx))
    ids_t = torch.tensor([int(i) for i in ids], dtype=torch.long)
    if int(ids_t.min()) < 0 or int(ids_t.max()) >= cfg.n_vocab:
        raise ValueError("token id out of range")
    C, H, D = cfg.n_embd, cfg.n_head, cfg.head_dim
    eps = cfg.ln_eps
    x = w["wte.weight"][ids_t] + w["wpe.weight"][:n]
    pos = torch.arange(n)
    causal = pos[None, :] <= pos[:, None]                   # key j visible from query i iff j <= i
    for l in range(cfg.n_layer):
        p = "h.%d." % l
        h = layer_norm(x, w[p + "ln_1.weight"], w[p + "ln_1.bias"], eps)
        qkv = linear(h, w[p + "attn.c_attn.weight"], w[p + "attn.c_attn.bias"])
        q, k, v = qkv[:, :C], qkv[:, C:2 * C], qkv[:, 2 * C:]
        q = q.reshape(n, H, D).transpose(0, 1)              # [H, n, D]
        k = k.reshape(n, H, D).transpose(0, 1)
        v = v.reshape(n, H, D).transpose(0, 1)
        att = (q @ k.transpose(1, 2)) / math.sqrt(D)       # [H, n, n]
        att = att.masked_fill(~causal, float("-inf"))
        att = torch.softmax(att, dim=-1)
        y = (att @ v).transpose(0, 1).reshape(n, C)         # heads side by side
        x = x + linear(y, w[p + "attn.c_proj.weight"], w[p + "attn.c_proj.bias"])
        h = layer_norm(x, w[p + "ln_2.weight"], w[p + "ln_2.bias"], eps)
        h = gelu_tanh(linear(h, w[p + "mlp.c_fc.weight"], w[p + "mlp.c_fc.bias"]))
        x = x + linear(h, w[p + "mlp.c_proj.weight"], w[p + "mlp.c_proj.bias"])
    if last_only:
        x = x[-1:]                                          # layer norm is per row
    x = layer_norm(x, w["ln_f.weight"], w["ln_f.bias"], eps)
    logits = x @ w["wte.weight"].T                          # tied output head
    return logits[0] if last_only else logits


def forward_incremental_np(model, ids):
    """A second, independent formulation (numpy, one token at a time with a
    key/value cache) used only to cross-check forward()."""
    cfg = model.cfg
    w = {k: v.numpy() for k, v in model.w.items()}
    C, H, D, eps = cfg.n_embd, cfg.n_head, cfg.head_dim, cfg.ln_eps

    def ln(x, g, b):
        m = x.mean()
        return (x - m) / np.sqrt(((x - m) ** 2).mean() + eps) * g + b

    keys = [[] for _ in range(cfg.n_layer)]
    vals = [[] for _ in range(cfg.n_layer)]
    out = []
    for pos, t in enumerate(ids):
        x = w["wte.weight"][t] + w["wpe.weight"][pos]
        for l in range(cfg.n_layer):
            p = "h.%d." % l
            h = ln(x, w[p + "ln_1.weight"], w[p + "ln_1.bias"])
            qkv = w[p + "attn.c_attn.weight"] @ h + w[p + "attn.c_attn.bias"]
            keys[l].append(qkv[C:2 * C])
            vals[l].append(qkv[2 * C:])
            K, Vv = np.stack(keys[l]), np.stack(vals[l])
            y = np.empty(C)
            for hd in range(H):
                sl = slice(hd * D, hd * D + D)
                s = K[:, sl] @ qkv[sl] / math.sqrt(D)
                e = np.exp(s - s.max())
                y[sl] = (e / e.sum()) @ Vv[:, sl]
            x = x + w[p + "attn.c_proj.weight"] @ y + w[p + "attn.c_proj.bias"]
            h = ln(x, w[p + "ln_2.weight"], w[p + "ln_2.bias"])
            f = w[p + "mlp.c_fc.weight"] @ h + w[p + "mlp.c_fc.bias"]
            f = 0.5 * f * (1 + np.tanh(math.sqrt(2 / math.pi) * (f + 0.044715 * f ** 3)))
            x = x + w[p + "mlp.c_proj.weight"] @ f + w[p + "mlp.c_proj.bias"]
        out.append(w["wte.weight"] @ ln(x, w["ln_f.weight"], w["ln_f.bias"]))
    return np.stack(out)


def log_softmax(logits):
    return torch.log_softmax(logits, dim=-1)


# ---------------------------------------------------------------------------
# Scoring (perplexity) and greedy decoding

def score_windows(n, n_ctx):
    """Windows (start, end, first) for scoring n tokens: windows of n_ctx
    positions starting at 0, S, 2S, ... (S = n_ctx // 2); each window scores
    tokens first .. end-1 (token i from the logits at position i-1 of the
    window), i.e. the tokens that no earlier window scored. Every token after
    the first is scored exactly once; in windows after the first, token i has
    at least n_ctx - S >= n_ctx/2 earlier tokens in its window."""
    if n_ctx < 2:
        raise ValueError("scoring needs n_ctx >= 2")
    stride = n_ctx // 2
    if n <= 1:
        return []
    wins = [(0, min(n, n_ctx), 1)]
    while wins[-1][1] < n:
        start = wins[-1][0] + stride
        wins.append((start, min(start + n_ctx, n), wins[-1][1]))
    return wins


def score(model, ids):
    """logprobs[i-1] = log p(ids[i] | earlier ids in its window), i = 1..n-1
    (float64 numpy array)."""
    n = len(ids)
    out = np.zeros(max(0, n - 1))
    for start, end, first in score_windows(n, model.cfg.n_ctx):
        lp = log_softmax(forward(model, ids[start:end]))
        for i in range(first, end):
            out[i - 1] = float(lp[i - 1 - start, ids[i]])
    return out


def greedy(model, prompt, n_new):
    """n_new greedy (argmax) tokens after the prompt; also each step's margin
    between the largest and the second largest logit."""
    ids = list(prompt)
    if len(ids) + n_new - 1 > model.cfg.n_ctx:
        raise ValueError("prompt + continuation does not fit the context")
    new, margins = [], []
    for _ in range(n_new):
        logits = forward(model, ids)[-1]
        top2 = torch.topk(logits, 2)
        t = int(top2.indices[0])
        new.append(t)
        margins.append(float(top2.values[0] - top2.values[1]))
        ids.append(t)
    return new, margins


# ---------------------------------------------------------------------------
# Golden files

def sample_indices(n_vocab, m=64):
    """0, n_vocab-1 and m-2 evenly spaced indices between."""
    return [(i * (n_vocab - 1)) // (m - 1) for i in range(m)]


def fmt(v):
    return "%.9g" % float(v)


def golden_text(model_line, dtype_name, ids, logits, k=8):
    """The `gpt-golden 1` file for logits [n, n_vocab] (float64)."""
    logits = logits.detach().cpu().double()
    n, V = logits.shape
    samp = sample_indices(V)
    lines = ["gpt-golden 1", model_line, "dtype %s" % dtype_name,
             "tokens %d %s" % (len(ids), " ".join(str(int(i)) for i in ids)),
             "sample %d %s" % (len(samp), " ".join(map(str, samp)))]
    for p in range(n):
        row = logits[p]
        lines.append("pos %d %s" % (p, " ".join(fmt(row[j]) for j in samp)))
    for p in range(n):
        vals, idx = torch.sort(logits[p], descending=True, stable=True)
        lines.append("top %d %d %s" % (p, k, " ".join(
            "%d:%s" % (int(idx[i]), fmt(vals[i])) for i in range(k))))
    lines.append("end")
    return "\n".join(lines) + "\n"


def parse_golden(text):
    """Parses a gpt-golden file back (used to check what we wrote)."""
    lines = text.split("\n")
    assert lines[0] == "gpt-golden 1" and lines[-2] == "end" and lines[-1] == ""
    g = {"pos": {}, "top": {}}
    for line in lines[1:-2]:
        f = line.split()
        if f[0] == "model":
            g["model"] = f[1:]
        elif f[0] == "dtype":
            g["dtype"] = f[1]
        elif f[0] == "tokens":
            g["tokens"] = [int(x) for x in f[2:]]
            assert len(g["tokens"]) == int(f[1])
        elif f[0] == "sample":
            g["sample"] = [int(x) for x in f[2:]]
            assert len(g["sample"]) == int(f[1])
        elif f[0] == "pos":
            g["pos"][int(f[1])] = [float(x) for x in f[2:]]
        elif f[0] == "top":
            g["top"][int(f[1])] = [(int(a), float(b)) for a, b in (x.split(":") for x in f[3:])]
            assert len(g["top"][int(f[1])]) == int(f[2])
        else:
            raise ValueError("unknown line %r" % line)
    return g


def score_text(model_line, dtype_name, ids, logprobs, n_ctx, text_path=None):
    """The `gpt-score 1` file: every token's log-prob and the perplexity."""
    lines = ["gpt-score 1", model_line, "dtype %s" % dtype_name]
    if text_path:
        lines.append("text %s" % text_path)
    lines.append("window %d %d" % (n_ctx, max(1, n_ctx // 2)))
    lines.append("tokens %d %s" % (len(ids), " ".join(map(str, ids))))
    lines.append("logprob %d %s" % (len(logprobs), " ".join(fmt(v) for v in logprobs)))
    lines.append("ppl %s" % fmt(math.exp(-float(np.mean(logprobs)))))
    lines.append("end")
    return "\n".join(lines) + "\n"


def greedy_text(model_line, dtype_name, prompt, new, margins, prompt_text=None):
    """The `gpt-greedy 1` file: a greedy continuation and each step's margin."""
    lines = ["gpt-greedy 1", model_line, "dtype %s" % dtype_name]
    if prompt_text is not None:
        lines.append("prompt-text %s" % json.dumps(prompt_text))
    lines.append("prompt %d %s" % (len(prompt), " ".join(map(str, prompt))))
    lines.append("greedy %d %s" % (len(new), " ".join(map(str, new))))
    lines.append("margin %d %s" % (len(margins), " ".join(fmt(v) for v in margins)))
    lines.append("end")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------
# safetensors and Hugging Face GPT-2 folders

ST_DTYPES = {"F32": (4, "<f4"), "F16": (2, "<u2"), "BF16": (2, "<u2")}


def st_bytes(a, st_dtype):
    """Bytes of a float32 array rounded to a safetensors dtype."""
    a = np.asarray(a, dtype=np.float32)
    if st_dtype == "F32":
        return a.astype("<f4").tobytes()
    if st_dtype == "F16":
        return f32_to_f16_bits(a).astype("<u2").tobytes()
    if st_dtype == "BF16":
        return f32_to_bf16_bits(a).astype("<u2").tobytes()
    raise ValueError(st_dtype)


def st_decode(buf, st_dtype, shape):
    n = int(np.prod(shape, dtype=np.int64)) if shape else 1
    if st_dtype == "F32":
        a = np.frombuffer(buf, dtype="<f4", count=n).astype(np.float32)
    elif st_dtype == "F16":
        a = f16_bits_to_f32(np.frombuffer(buf, dtype="<u2", count=n))
    elif st_dtype == "BF16":
        a = bf16_bits_to_f32(np.frombuffer(buf, dtype="<u2", count=n))
    else:
        raise FormatError("unsupported safetensors dtype %r" % st_dtype)
    return a.reshape(shape)


def safetensors_bytes(tensors, metadata=None, data_order=None, header_order=None):
    """A safetensors file. tensors: {name: (dtype, shape, raw bytes)}.
    The header is compact JSON padded with spaces to a multiple of 8 bytes
    (as the safetensors library writes it); data_order / header_order give
    the order of the data blocks and of the header entries (default: by name)."""
    names = sorted(tensors)
    data_order = data_order or names
    header_order = header_order or names
    offsets, pos = {}, 0
    for name in data_order:
        n = len(tensors[name][2])
        offsets[name] = (pos, pos + n)
        pos += n
    header = {}
    if metadata is not None:
        header["__metadata__"] = metadata
    for name in header_order:
        dt, shape, _ = tensors[name]
        header[name] = {"dtype": dt, "shape": list(shape), "data_offsets": list(offsets[name])}
    hj = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hj += b" " * (align(len(hj), 8) - len(hj))
    return struct.pack("<Q", len(hj)) + hj + b"".join(tensors[n][2] for n in data_order)


def read_safetensors(path):
    """{name: (dtype, shape, float32 array)} from a safetensors file, checking
    the header length, the offsets and the sizes."""
    with open(path, "rb") as f:
        buf = f.read()
    if len(buf) < 8:
        raise FormatError("%s: shorter than 8 bytes" % path)
    (hl,) = struct.unpack_from("<Q", buf, 0)
    if 8 + hl > len(buf):
        raise FormatError("%s: header length %d runs past the file (%d bytes)" % (path, hl, len(buf)))
    header = json.loads(buf[8:8 + hl].decode("utf-8"))
    data = buf[8 + hl:]
    out, ranges = {}, []
    for name, e in header.items():
        if name == "__metadata__":
            continue
        dt, shape, (b, e_) = e["dtype"], e["shape"], e["data_offsets"]
        if dt not in ST_DTYPES:
            raise FormatError("%s: tensor %s has dtype %r" % (path, name, dt))
        n = int(np.prod(shape, dtype=np.int64)) if shape else 1
        if not (0 <= b <= e_ <= len(data)) or e_ - b != n * ST_DTYPES[dt][0]:
            raise FormatError("%s: tensor %s data_offsets [%d, %d] bad" % (path, name, b, e_))
        ranges.append((b, e_, name))
        out[name] = (dt, list(shape), st_decode(data[b:e_], dt, shape))
    ranges.sort()
    for a, c in zip(ranges, ranges[1:]):
        if a[1] > c[0]:
            raise FormatError("%s: %s overlaps %s" % (path, a[2], c[2]))
    return out


def hf_config(cfg, with_n_ctx=False, dtype="float32"):
    """config.json as transformers' GPT2Config writes it (sorted keys, indent 2)."""
    c = {
        "activation_function": "gelu_new",
        "architectures": ["GPT2LMHeadModel"],
        "attn_pdrop": 0.1,
        "bos_token_id": 50256,
        "embd_pdrop": 0.1,
        "eos_token_id": 50256,
        "initializer_range": 0.02,
        "layer_norm_epsilon": 1e-05,
        "model_type": "gpt2",
        "n_embd": cfg.n_embd,
        "n_head": cfg.n_head,
        "n_inner": None,
        "n_layer": cfg.n_layer,
        "n_positions": cfg.n_ctx,
        "reorder_and_upcast_attn": False,
        "resid_pdrop": 0.1,
        "scale_attn_by_inverse_layer_idx": False,
        "scale_attn_weights": True,
        "summary_activation": None,
        "summary_first_dropout": 0.1,
        "summary_proj_to_labels": True,
        "summary_type": "cls_index",
        "summary_use_proj": True,
        "torch_dtype": dtype,
        "transformers_version": "4.40.0",
        "use_cache": True,
        "vocab_size": cfg.n_vocab,
    }
    if with_n_ctx:
        c["n_ctx"] = cfg.n_ctx
    return json.dumps(c, indent=2, sort_keys=True) + "\n"


CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


def hf_state_dict(cfg, weights, prefix="transformer.", mask_buffers=False, lm_head=False):
    """{name: float32 array} in Hugging Face GPT-2 layout: Conv1D weights are
    [in, out] (the transpose of ours), vectors 1-D."""
    sd = {}
    for (name, kind, rows, cols), w in zip(canonical_tensors(cfg), weights):
        w = np.asarray(w, dtype=np.float32)
        if name.endswith(CONV1D):
            w = w.reshape(rows, cols).T.copy()
        sd[prefix + name] = w
    if mask_buffers:
        T = cfg.n_ctx
        mask = np.tril(np.ones((T, T), dtype=np.float32)).reshape(1, 1, T, T)
        for l in range(cfg.n_layer):
            sd[prefix + "h.%d.attn.bias" % l] = mask
            sd[prefix + "h.%d.attn.masked_bias" % l] = np.array(-1e4, dtype=np.float32)
    if lm_head is not False:
        sd["lm_head.weight"] = np.asarray(weights[0] if lm_head is True else lm_head, dtype=np.float32)
    return sd


def write_hf_folder(folder, cfg, weights, st_dtype="F32", prefix="transformer.",
                    mask_buffers=False, lm_head=False, shards=1, with_n_ctx=False,
                    ascii_vocab=False, shuffle_layout=False):
    """A Hugging Face GPT-2 folder: config.json, model.safetensors (or
    `shards` shards plus model.safetensors.index.json), vocab.json, merges.txt."""
    os.makedirs(folder, exist_ok=True)
    torch_dtype = {"F32": "float32", "F16": "float16", "BF16": "bfloat16"}[st_dtype]
    with open(os.path.join(folder, "config.json"), "w", encoding="utf-8") as f:
        f.write(hf_config(cfg, with_n_ctx, torch_dtype))
    sd = hf_state_dict(cfg, weights, prefix, mask_buffers, lm_head)
    tensors = {name: (st_dtype, a.shape, st_bytes(a, st_dtype)) for name, a in sd.items()}
    names = list(sd)   # canonical order
    for fn in os.listdir(folder):
        if fn.endswith(".safetensors") or fn.endswith(".safetensors.index.json"):
            os.remove(os.path.join(folder, fn))
    if shards == 1:
        with open(os.path.join(folder, "model.safetensors"), "wb") as f:
            f.write(safetensors_bytes(tensors, {"format": "pt"}))
    else:
        per = (len(names) + shards - 1) // shards
        weight_map = {}
        for s in range(shards):
            part = names[s * per:(s + 1) * per]
            fn = "model-%05d-of-%05d.safetensors" % (s + 1, shards)
            sub = {n: tensors[n] for n in part}
            data_order = header_order = None
            if shuffle_layout:   # data blocks in reverse name order, header unsorted
                data_order = sorted(part, reverse=True)
                header_order = part[::-1]
            with open(os.path.join(folder, fn), "wb") as f:
                f.write(safetensors_bytes(sub, {"format": "pt"}, data_order, header_order))
            for n in part:
                weight_map[n] = fn
        index = {"metadata": {"total_size": sum(len(t[2]) for t in tensors.values())},
                 "weight_map": dict(sorted(weight_map.items()))}
        with open(os.path.join(folder, "model.safetensors.index.json"), "w", encoding="utf-8") as f:
            f.write(json.dumps(index, indent=2) + "\n")
    write_vocab_files(folder, cfg.n_vocab, ascii_vocab)


def write_vocab_files(folder, n_vocab, ascii_vocab=False):
    vocab, merges = hf_vocab_and_merges(n_vocab)
    with open(os.path.join(folder, "vocab.json"), "w", encoding="utf-8") as f:
        f.write(json.dumps(vocab, ensure_ascii=ascii_vocab, separators=(",", ":")))
    with open(os.path.join(folder, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "".join(m + "\n" for m in merges))


def read_hf_folder(folder):
    """(cfg, weights in canonical order, float32) from a Hugging Face GPT-2
    folder, read independently of how write_hf_folder made it."""
    with open(os.path.join(folder, "config.json"), encoding="utf-8") as f:
        c = json.load(f)
    cfg = Config(c["n_layer"], c["n_head"], c["n_embd"], c["n_positions"], c["vocab_size"],
                 c.get("layer_norm_epsilon", 1e-5))
    index = os.path.join(folder, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index, encoding="utf-8") as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    sd = {}
    for fn in files:
        for name, (dt, shape, a) in read_safetensors(os.path.join(folder, fn)).items():
            sd[name[len("transformer."):] if name.startswith("transformer.") else name] = a
    weights = []
    for name, kind, rows, cols in canonical_tensors(cfg):
        a = sd.pop(name)
        if name.endswith(CONV1D):
            assert a.shape == (cols, rows), (name, a.shape)
            a = a.T.copy()
        else:
            assert a.size == rows * cols, (name, a.shape)
        weights.append(a.reshape(rows, cols) if kind == "matrix" else a.reshape(-1))
    if "lm_head.weight" in sd:
        assert np.array_equal(sd.pop("lm_head.weight"), weights[0]), "untied lm_head"
    for name in list(sd):
        if name.endswith(".attn.bias") or name.endswith(".attn.masked_bias"):
            sd.pop(name)
    assert not sd, "unexpected tensors %s" % sorted(sd)
    return cfg, weights


# ---------------------------------------------------------------------------
# llm.c checkpoints (karpathy/llm.c train_gpt2.py write_model / train_gpt2.c)

LLMC_MAGIC = 20240326


def llmc_order(cfg):
    """The 16 parameter tensors in llm.c's order, by our canonical names (block
    tensors without the "h.N." part: llm.c stacks them over the layers)."""
    return ["wte.weight", "wpe.weight", "ln_1.weight", "ln_1.bias", "attn.c_attn.weight",
            "attn.c_attn.bias", "attn.c_proj.weight", "attn.c_proj.bias", "ln_2.weight",
            "ln_2.bias", "mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight",
            "mlp.c_proj.bias", "ln_f.weight", "ln_f.bias"]


def write_llmc(path, cfg, weights, version=3, padded_vocab=None, pad_fill=0.0):
    """An llm.c checkpoint: 256 int32 header (magic 20240326, version 3 = fp32
    or 5 = bf16, max_seq_len, vocab_size, num_layers, num_heads, channels,
    padded_vocab_size), then every parameter in llm.c's order, nn.Linear
    layout ([out, in], the same as ours), wte padded to padded_vocab rows."""
    Vp = padded_vocab or align(cfg.n_vocab, 128)
    assert Vp >= cfg.n_vocab
    header = np.zeros(256, dtype="<i4")
    header[:8] = [LLMC_MAGIC, version, cfg.n_ctx, cfg.n_vocab, cfg.n_layer, cfg.n_head,
                  cfg.n_embd, Vp]
    w = {name: a for (name, _, _, _), a in zip(canonical_tensors(cfg), weights)}
    wte = np.full((Vp, cfg.n_embd), pad_fill, dtype=np.float32)
    wte[:cfg.n_vocab] = w["wte.weight"]
    parts = []
    for name in llmc_order(cfg):
        if name == "wte.weight":
            a = wte
        elif name in w:
            a = w[name]
        else:
            a = np.stack([w["h.%d.%s" % (l, name)] for l in range(cfg.n_layer)])
        parts.append(np.asarray(a, dtype=np.float32).reshape(-1))
    flat = np.concatenate(parts)
    with open(path, "wb") as f:
        f.write(header.tobytes())
        if version == 3:
            f.write(flat.astype("<f4").tobytes())
        elif version == 5:
            f.write(f32_to_bf16_bits(flat).astype("<u2").tobytes())
        else:
            raise ValueError("llm.c version %d" % version)


def read_llmc(path):
    """(cfg, weights in canonical order, Vp) from an llm.c checkpoint."""
    with open(path, "rb") as f:
        buf = f.read()
    h = np.frombuffer(buf, dtype="<i4", count=256)
    assert h[0] == LLMC_MAGIC and h[1] in (3, 5), (h[0], h[1])
    T, V, L, NH, C, Vp = (int(x) for x in h[2:8])
    cfg = Config(L, NH, C, T, V)
    if h[1] == 3:
        flat = np.frombuffer(buf, dtype="<f4", offset=1024).astype(np.float32)
    else:
        flat = bf16_bits_to_f32(np.frombuffer(buf, dtype="<u2", offset=1024))
    shapes = {"wte.weight": (Vp, C), "wpe.weight": (T, C), "ln_1.weight": (L, C), "ln_1.bias": (L, C),
              "attn.c_attn.weight": (L, 3 * C, C), "attn.c_attn.bias": (L, 3 * C),
              "attn.c_proj.weight": (L, C, C), "attn.c_proj.bias": (L, C),
              "ln_2.weight": (L, C), "ln_2.bias": (L, C), "mlp.c_fc.weight": (L, 4 * C, C),
              "mlp.c_fc.bias": (L, 4 * C), "mlp.c_proj.weight": (L, C, 4 * C),
              "mlp.c_proj.bias": (L, C), "ln_f.weight": (C,), "ln_f.bias": (C,)}
    got, p = {}, 0
    for name in llmc_order(cfg):
        n = int(np.prod(shapes[name]))
        got[name] = flat[p:p + n].reshape(shapes[name])
        p += n
    assert p == flat.size, "llm.c file has %d values, parameters need %d" % (flat.size, p)
    weights = []
    for name, kind, rows, cols in canonical_tensors(cfg):
        if name == "wte.weight":
            a = got[name][:V]
        elif name.startswith("h."):
            l, rest = name[2:].split(".", 1)
            a = got[rest][int(l)]
        else:
            a = got[name]
        a = np.array(a, dtype=np.float32)
        weights.append(a.reshape(rows, cols) if kind == "matrix" else a.reshape(-1))
    return cfg, weights, Vp


# ---------------------------------------------------------------------------
# Self-test: `/usr/bin/python3 tests/reference/gpt2_ref.py`

# u(k, j) for seed 0 (also in README.md): (k, j, bits(k, j), u(k, j))
GENERATOR_CHECKS = [
    (0, 0, 0xA706DD2F4D197E6F, 2557661 / 2.0 ** 23),
    (0, 1, 0xB382A305F4414F5E, 3375779 / 2.0 ** 23),
    (1, 0, 0x46B73E79F0C37C00, -3754178 / 2.0 ** 23),
]


def selftest(tmpdir="/tmp"):
    import tempfile
    # generator: the listed values, and scalar == vectorized
    for k, j, bits, u in GENERATOR_CHECKS:
        assert bits_int(0, k, j) == bits and u_int(0, k, j) == u, (k, j)
        assert float(random_u(0, k, j, 1)[0]) == u
    for seed in (0, 1, MASK64, 0x0123456789ABCDEF):
        for k in (0, 3, 52):
            v = random_u(seed, k, 999, 40).astype(np.float64)
            assert np.array_equal(v, [u_int(seed, k, j) for j in range(999, 1039)])
    print("generator ok")
    # number formats against torch's conversions
    a = np.random.default_rng(0).standard_normal(100000).astype(np.float32) * 3
    t = torch.from_numpy(a)
    assert np.array_equal(f16_bits_to_f32(f32_to_f16_bits(a)), t.half().float().numpy())
    assert np.array_equal(bf16_bits_to_f32(f32_to_bf16_bits(a)), t.bfloat16().float().numpy())
    print("f16/bf16 rounding ok")
    # checkpoint round trip in all four types; forward pass cross-check
    cfg = Config(2, 3, 36, 20, 300)
    w = random_weights(cfg, 7)
    tok = gpt2_tokenizer(cfg.n_vocab)
    ids = [0, 299, 5, 17, 256, 42, 42, 1, 100, 200, 150, 3]
    ref = forward(Model(cfg, w), ids)
    with tempfile.TemporaryDirectory(dir=tmpdir) as d:
        for dt in ("f32", "f16", "bf16", "q8_0"):
            path = os.path.join(d, "m.bin")
            write_checkpoint(path, cfg, w, dt, tok)
            cfg2, w2, tok2, info = read_checkpoint(path)
            assert cfg2.shape() == cfg.shape() and tok2.tokens == tok.tokens and tok2.merges == tok.merges
            assert DTYPE_NAMES[info["dtype"]] == dt
            diff = float((forward(Model(cfg2, w2), ids) - ref).abs().max())
            assert diff == 0 if dt == "f32" else diff < 0.1, (dt, diff)
            print("checkpoint %-4s ok (logit change %.2g)" % (dt, diff))
    inc = forward_incremental_np(Model(cfg, w), ids)
    assert np.abs(inc - ref.numpy()).max() < 1e-12
    print("forward == incremental forward")
    # tokenizer against the reference ids of the tokenizer corpus
    corpus = os.path.join(REPO, "tests", "data", "tokenizer")
    full = gpt2_tokenizer()
    for name in ("en.txt", "code.txt", "ws.txt"):
        path = os.path.join(corpus, name)
        if os.path.exists(path):
            with open(path, "rb") as f:
                text = f.read().decode("utf-8")
            with open(path + ".ids") as f:
                assert full.encode(text) == [int(x) for x in f.read().split()], name
            print("tokenizer matches %s" % name)
    print("selftest passed")


if __name__ == "__main__":
    selftest()
