#!/usr/bin/env python3
"""Train, evaluate, sample and export the gpt.c demo model (a small GPT-2).

The model is GPT-2 exactly (learned token and position embeddings, pre-LayerNorm
blocks with eps 1e-5, causal multi-head attention scaled by 1/sqrt(head_dim),
MLP of 4*n_embd with tanh-GELU, final LayerNorm, output head tied to the token
embedding, biases everywhere) with the real GPT-2 vocabulary (50257 ids).

Input: build/demo-data/{train,val}.bin written by models/demo_data.py and
models/tokenize_demo_data.mjs (uint16 little-endian ids, each document preceded
by <|endoftext|>). See models/README.md for the whole pipeline.

  /usr/bin/python3 models/train_demo.py                 train (resumes from
                                                        --work-dir/ckpt.pt if present),
                                                        evaluate, export
  /usr/bin/python3 models/train_demo.py --export-only   export the checkpoint
  /usr/bin/python3 models/train_demo.py --sample "And God said"
  /usr/bin/python3 models/train_demo.py --eval-text tests/data/demo_heldout.txt

Evaluation of a token sequence (used for validation and --eval-text, and what
a C implementation must reproduce): the sequence is cut into consecutive,
non-overlapping windows of n_ctx inputs (the last one may be shorter); window k
feeds ids[k*n_ctx : k*n_ctx+n] from an empty context and is scored on the next
ids; the loss is the mean negative log-likelihood (natural log) over all scored
ids, perplexity = exp(loss). For a text file the sequence is
[<|endoftext|>] + encode_ordinary(text), so every token of the text is scored.
"""
import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time
import types

# OpenMP threads sleep instead of spinning while they wait: with other
# processes on the same cores, spinning threads slow training down severalfold.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

EOT = 50256
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests", "reference"))
import gpt2_ref  # noqa: E402  the PyTorch reference: Hugging Face writers
from gpt2_ref import BYTE_DECODER  # noqa: E402  GPT-2's byte <-> character table


# ----------------------------------------------------------------------------- model

class Block(nn.Module):
    def __init__(self, C, H, eps):
        super().__init__()
        self.n_head = H
        self.ln_1 = nn.LayerNorm(C, eps=eps)
        self.c_attn = nn.Linear(C, 3 * C)
        self.attn_proj = nn.Linear(C, C)
        self.ln_2 = nn.LayerNorm(C, eps=eps)
        self.c_fc = nn.Linear(C, 4 * C)
        self.mlp_proj = nn.Linear(4 * C, C)

    def forward(self, x, mask):
        B, T, C = x.shape
        H = self.n_head
        hd = C // H
        q, k, v = self.c_attn(self.ln_1(x)).split(C, dim=2)
        q = q.view(B, T, H, hd).transpose(1, 2)
        k = k.view(B, T, H, hd).transpose(1, 2)
        v = v.view(B, T, H, hd).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hd))
        att = att.masked_fill(mask[:T, :T], float("-inf"))
        att = torch.softmax(att, dim=-1)
        y = (att @ v).transpose(1, 2).contiguous().view(B, T, C)
        x = x + self.attn_proj(y)
        x = x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))
        return x


class GPT(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        V, T, C, L, H = cfg["vocab_size"], cfg["n_ctx"], cfg["n_embd"], cfg["n_layer"], cfg["n_head"]
        eps = cfg["layer_norm_epsilon"]
        self.wte = nn.Embedding(V, C)
        self.wpe = nn.Embedding(T, C)
        self.h = nn.ModuleList([Block(C, H, eps) for _ in range(L)])
        self.ln_f = nn.LayerNorm(C, eps=eps)
        self.register_buffer("mask", torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1), persistent=False)
        # GPT-2 initialisation: N(0, 0.02), residual projections scaled by 1/sqrt(2L)
        for name, p in self.named_parameters():
            if name.endswith("bias"):
                nn.init.zeros_(p)
            elif ".ln_" in name or name.startswith("ln_f"):
                nn.init.ones_(p)
            elif name.endswith("attn_proj.weight") or name.endswith("mlp_proj.weight"):
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * L))
            else:
                nn.init.normal_(p, 0.0, 0.02)

    def hidden(self, idx):
        B, T = idx.shape
        x = self.wte(idx) + self.wpe(torch.arange(T))
        for blk in self.h:
            x = blk(x, self.mask)
        return self.ln_f(x)

    def logits(self, idx):
        return self.hidden(idx) @ self.wte.weight.t()   # tied output head


class TiedCrossEntropy(torch.autograd.Function):
    """mean cross-entropy of h @ W^T against targets, computed in row chunks so
    that the (tokens x 50257) logits are never materialised at once; the
    gradients are computed in the forward pass (training only)."""

    @staticmethod
    def forward(ctx, h, W, targets, chunk):
        N = h.shape[0]
        gh = torch.empty_like(h)
        gW = torch.zeros_like(W)
        total = torch.zeros((), dtype=torch.float64)
        buf = torch.empty(min(chunk, N), W.shape[0], dtype=h.dtype)
        for s in range(0, N, chunk):
            e = min(N, s + chunk)
            n = e - s
            L = buf[:n]
            torch.mm(h[s:e], W.t(), out=L)
            t = targets[s:e]
            tl = L.gather(1, t[:, None])
            m = L.amax(1, keepdim=True)
            L.sub_(m).exp_()
            z = L.sum(1, keepdim=True)
            total += (z.log() + m - tl).sum().double()
            L.div_(z * N)
            L[torch.arange(n), t] -= 1.0 / N
            torch.mm(L, W, out=gh[s:e])
            gW.addmm_(L.t(), h[s:e])
        ctx.save_for_backward(gh, gW)
        return (total / N).to(h.dtype)

    @staticmethod
    def backward(ctx, g):
        gh, gW = ctx.saved_tensors
        return gh * g, gW * g, None, None


def train_loss(model, x, y):
    h = model.hidden(x)
    C = h.shape[-1]
    return TiedCrossEntropy.apply(h.reshape(-1, C), model.wte.weight, y.reshape(-1), 512)


@torch.no_grad()
def nll_sum(model, x, y):
    """sum of -log p(y | x) over all positions (full softmax, f32), count"""
    h = model.hidden(x).reshape(-1, model.cfg["n_embd"])
    y = y.reshape(-1)
    W = model.wte.weight
    total = 0.0
    for s in range(0, h.shape[0], 512):
        L = h[s:s + 512] @ W.t()
        total += (torch.logsumexp(L, 1) - L.gather(1, y[s:s + 512, None])[:, 0]).double().sum().item()
    return total, y.numel()


@torch.no_grad()
def eval_sequence(model, ids, batch=16):
    """mean NLL over non-overlapping n_ctx windows (see the module docstring)"""
    T = model.cfg["n_ctx"]
    ids = torch.as_tensor(np.asarray(ids, dtype=np.int64))
    n_pred = ids.numel() - 1
    starts = list(range(0, n_pred, T))
    full = [s for s in starts if s + T <= n_pred]
    total, count = 0.0, 0
    for i in range(0, len(full), batch):
        ss = full[i:i + batch]
        x = torch.stack([ids[s:s + T] for s in ss])
        y = torch.stack([ids[s + 1:s + T + 1] for s in ss])
        t, c = nll_sum(model, x, y)
        total += t
        count += c
    for s in starts[len(full):]:
        x = ids[s:n_pred][None]
        y = ids[s + 1:n_pred + 1][None]
        t, c = nll_sum(model, x, y)
        total += t
        count += c
    return total / count, count


# ----------------------------------------------------------------------------- data

@torch.no_grad()
def eval_sliding(model, ids):
    """mean NLL the way `gpt score` computes it: windows of n_ctx tokens that
    advance by n_ctx/2, every token after the first scored once (the first
    window scores positions 1..n_ctx-1, each later one its last n_ctx/2)"""
    T = model.cfg["n_ctx"]
    ids = torch.as_tensor(np.asarray(ids, dtype=np.int64))
    n = ids.numel()
    total, count, done, s = 0.0, 0, 1, 0
    while done < n:
        w = ids[s:s + T]
        logp = torch.log_softmax(model.logits(w[None])[0].double(), -1)
        for j in range(done - s, w.numel()):
            total -= logp[j - 1, w[j]].item()
            count += 1
        done = s + w.numel()
        s += T // 2
    return total / count, count


def load_bin(path):
    a = np.fromfile(path, dtype="<u2").astype(np.int64)
    if a.size == 0:
        sys.exit("empty token file: " + path)
    return torch.from_numpy(a)


def get_batch(data, B, T, gen, mix=None):
    """B random windows of T+1 tokens. mix: None (uniform over the whole
    stream) or [(weight, start, end)]: each window first draws a source with
    the given probabilities, then a uniform offset inside that source's span."""
    if mix is None:
        ix = torch.randint(0, data.numel() - T - 1, (B,), generator=gen).tolist()
    else:
        w = torch.tensor([m[0] for m in mix], dtype=torch.float64)
        src = torch.multinomial(w, B, replacement=True, generator=gen).tolist()
        u = torch.rand(B, generator=gen, dtype=torch.float64).tolist()
        ix = []
        for k, r in zip(src, u):
            _, a, b = mix[k]
            ix.append(a + min(int(r * (b - a - T - 1)), b - a - T - 2))
    x = torch.stack([data[i:i + T] for i in ix])
    y = torch.stack([data[i + 1:i + T + 1] for i in ix])
    return x, y


def parse_mix(spec, data_dir):
    """'kjv=0.5,tdavid=0.35,...' -> [(weight, start, end)] over train.bin, from
    tokens.json; '' = uniform over the whole stream (sources in proportion to size)"""
    if not spec:
        return None
    with open(os.path.join(data_dir, "tokens.json")) as f:
        spans = json.load(f)["train"]["sources"]
    mix = []
    for item in spec.split(","):
        name, w = item.split("=")
        if name not in spans:
            sys.exit("--mix: no source %r in %s/tokens.json (have %s)" % (name, data_dir, ", ".join(spans)))
        a, b = spans[name]["span"]
        mix.append((float(w), a, b))
    total = sum(m[0] for m in mix)
    return [(w / total, a, b) for w, a, b in mix]


# ----------------------------------------------------------------------------- tokenizer (decode in Python, encode via npm tiktoken)

class Decoder:
    def __init__(self, encoder_json):
        with open(encoder_json, encoding="utf-8") as f:
            enc = json.load(f)
        self.tok = {i: bytes(BYTE_DECODER[c] for c in s) for s, i in enc.items()}

    def decode(self, ids):
        return b"".join(self.tok[i] for i in ids).decode("utf-8", errors="replace")


def encode(text, tiktoken_dir):
    if not tiktoken_dir:
        sys.exit("encoding text needs npm tiktoken: set TIKTOKEN_DIR or pass --tiktoken DIR")
    out = subprocess.run(["node", os.path.join(REPO, "models", "tokenize_demo_data.mjs"),
                          "--tiktoken", tiktoken_dir, "text", "-"],
                         input=text.encode("utf-8"), stdout=subprocess.PIPE, check=True).stdout
    return json.loads(out)


@torch.no_grad()
def generate(model, ids, n_new, temperature=0.0, top_k=0, gen=None):
    """greedy (temperature 0) or sampled continuation; stops at n_ctx"""
    ids = list(ids)
    T = model.cfg["n_ctx"]
    for _ in range(n_new):
        if len(ids) >= T:
            break
        logits = model.logits(torch.tensor([ids]))[0, -1]
        if temperature <= 0:
            nxt = int(torch.argmax(logits))
        else:
            logits = logits / temperature
            if top_k > 0:
                v, _ = torch.topk(logits, top_k)
                logits = logits.masked_fill(logits < v[-1], float("-inf"))
            nxt = int(torch.multinomial(torch.softmax(logits, -1), 1, generator=gen))
        ids.append(nxt)
    return ids


# ----------------------------------------------------------------------------- export

def hf_state(model):
    """Hugging Face GPT-2 tensor names, Conv1D ([in, out]) layout, f32"""
    sd = {"wte.weight": model.wte.weight, "wpe.weight": model.wpe.weight,
          "ln_f.weight": model.ln_f.weight, "ln_f.bias": model.ln_f.bias}
    for i, b in enumerate(model.h):
        p = "h.%d." % i
        for name, mod, conv1d in (("ln_1", b.ln_1, False), ("attn.c_attn", b.c_attn, True),
                                  ("attn.c_proj", b.attn_proj, True), ("ln_2", b.ln_2, False),
                                  ("mlp.c_fc", b.c_fc, True), ("mlp.c_proj", b.mlp_proj, True)):
            sd[p + name + ".weight"] = mod.weight.t() if conv1d else mod.weight
            sd[p + name + ".bias"] = mod.bias
    return {k: v.detach().to(torch.float32).contiguous().numpy() for k, v in sd.items()}


def export_hf(model, out_dir):
    """config.json, model.safetensors (F32), vocab.json and merges.txt, written
    with the PyTorch reference's Hugging Face writers, then read back"""
    cfg = model.cfg
    os.makedirs(out_dir, exist_ok=True)
    shape = types.SimpleNamespace(n_embd=cfg["n_embd"], n_head=cfg["n_head"], n_layer=cfg["n_layer"],
                                  n_ctx=cfg["n_ctx"], n_vocab=cfg["vocab_size"])
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        f.write(gpt2_ref.hf_config(shape, with_n_ctx=True))
    tensors = hf_state(model)
    st_path = os.path.join(out_dir, "model.safetensors")
    tmp = st_path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(gpt2_ref.safetensors_bytes({k: ("F32", v.shape, gpt2_ref.st_bytes(v, "F32")) for k, v in tensors.items()}))
    os.replace(tmp, st_path)
    shutil.copyfile(os.path.join(REPO, "models", "tokenizer", "encoder.json"), os.path.join(out_dir, "vocab.json"))
    shutil.copyfile(os.path.join(REPO, "models", "tokenizer", "vocab.bpe"), os.path.join(out_dir, "merges.txt"))
    back = gpt2_ref.read_safetensors(st_path)
    assert sorted(back) == sorted(tensors), "tensor names differ"
    for k, v in tensors.items():
        assert np.array_equal(back[k][2], v), k
    print("exported %s (%d tensors, %d bytes, read back and verified)" % (
        out_dir, len(tensors), os.path.getsize(st_path)), flush=True)


# ----------------------------------------------------------------------------- training

def lr_at(step, a):
    if step < a.warmup:
        return a.lr * (step + 1) / a.warmup
    p = min(1.0, (step - a.warmup) / max(1, a.steps - a.warmup))
    return a.min_lr + 0.5 * (a.lr - a.min_lr) * (1.0 + math.cos(math.pi * p))


def make_optimizer(model, a):
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": a.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}],
                             lr=a.lr, betas=(0.9, 0.95), eps=1e-8)


def save_ckpt(path, model, opt, step, a, extra):
    tmp = path + ".tmp"
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step,
                "cfg": model.cfg, "args": vars(a), "extra": extra}, tmp)
    os.replace(tmp, path)


@torch.no_grad()
def fixed_windows_loss(model, data, n_windows, T, seed):
    g = torch.Generator().manual_seed(seed)
    x, y = get_batch(data, n_windows, T, g)
    total, count = 0.0, 0
    for i in range(0, n_windows, 16):
        t, c = nll_sum(model, x[i:i + 16], y[i:i + 16])
        total += t
        count += c
    return total / count


@torch.no_grad()
def strided_windows_loss(model, data, n_windows, T):
    """mean NLL over n_windows windows at evenly spaced offsets of the stream"""
    stride = (data.numel() - T - 1) // n_windows
    total, count = 0.0, 0
    for i in range(0, n_windows, 16):
        ss = [k * stride for k in range(i, min(n_windows, i + 16))]
        x = torch.stack([data[s:s + T] for s in ss])
        y = torch.stack([data[s + 1:s + T + 1] for s in ss])
        t, c = nll_sum(model, x, y)
        total += t
        count += c
    return total / count, count


def print_val_by_source(model, val, data_dir):
    """the held-out loss of each source, its documents evaluated as one sequence"""
    path = os.path.join(data_dir, "tokens.json")
    if not os.path.exists(path):
        return
    with open(path) as f:
        spans = json.load(f)["val"]["sources"]
    for name, info in spans.items():
        s, e = info["span"]
        loss, n = eval_sequence(model, val[s:e].numpy())
        print("  val %-7s loss %.4f, perplexity %8.3f (%d tokens)" % (name, loss, math.exp(loss), n))


@torch.no_grad()
def round_f16(model):
    """round the tensors that the shipped file stores as f16 (wte and the four
    weight matrices of each block) to f16 and back; wpe and vectors stay f32"""
    mats = [model.wte.weight]
    for b in model.h:
        mats += [b.c_attn.weight, b.attn_proj.weight, b.c_fc.weight, b.mlp_proj.weight]
    for p in mats:
        p.copy_(p.half().float())


def count_params(model):
    return sum(p.numel() for p in model.parameters())


def shipped_bytes(cfg, tokenizer_bytes=950_000):
    """rough size of the shipped file: wte and block matrices f16, the rest f32"""
    V, T, C, L = cfg["vocab_size"], cfg["n_ctx"], cfg["n_embd"], cfg["n_layer"]
    f16 = V * C + L * 12 * C * C
    f32 = T * C + L * (2 * C + 3 * C + C + 2 * C + 4 * C + C) + 2 * C
    return 2 * f16 + 4 * f32 + tokenizer_bytes


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="build/demo-data", help="folder with train.bin, val.bin, heldout_excerpt.txt")
    ap.add_argument("--work-dir", default="build/demo-train", help="checkpoint folder")
    ap.add_argument("--out", default="build/demo-hf", help="Hugging Face folder to export")
    ap.add_argument("--copy-to", default="", help="also copy the export to this folder after training")
    ap.add_argument("--n-embd", type=int, default=128)
    ap.add_argument("--n-layer", type=int, default=4)
    ap.add_argument("--n-head", type=int, default=4)
    ap.add_argument("--n-ctx", type=int, default=256)
    ap.add_argument("--batch", type=int, default=8, help="sequences of n_ctx tokens per step")
    ap.add_argument("--steps", type=int, default=1300)
    ap.add_argument("--mix", default="kjv=0.5,tdavid=0.3,jargon=0.12,devil=0.08",
                    help="probability of drawing a training window from each source ('' = in proportion to size)")
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--min-lr", type=float, default=2e-4)
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--grad-clip", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=1337)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--eval-every", type=int, default=250)
    ap.add_argument("--ckpt-every", type=int, default=100)
    ap.add_argument("--eval-windows", type=int, default=64, help="windows for the periodic train/val estimates")
    ap.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint")
    ap.add_argument("--no-final-eval", action="store_true")
    ap.add_argument("--export-only", action="store_true", help="export --work-dir/ckpt.pt and exit")
    ap.add_argument("--sample", metavar="PROMPT", help="print greedy and sampled continuations and exit")
    ap.add_argument("--n-new", type=int, default=50)
    ap.add_argument("--n-samples", type=int, default=3)
    ap.add_argument("--temperature", type=float, default=0.8)
    ap.add_argument("--top-k", type=int, default=40)
    ap.add_argument("--eval-text", metavar="FILE", help="print loss and perplexity of a text file and exit")
    ap.add_argument("--eval-val", action="store_true",
                    help="print the loss of the checkpoint on the full held-out split, and per source, and exit")
    ap.add_argument("--round-f16", action="store_true",
                    help="with --sample/--eval-text: round wte and the block matrices to f16 first, "
                         "as `gpt convert --dtype f16` stores them")
    ap.add_argument("--tiktoken", default=os.environ.get("TIKTOKEN_DIR", ""),
                    help="folder holding node_modules/tiktoken (default $TIKTOKEN_DIR)")
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    ckpt_path = os.path.join(a.work_dir, "ckpt.pt")
    os.makedirs(a.work_dir, exist_ok=True)

    if a.sample or a.eval_text or a.export_only or a.eval_val:
        if not os.path.exists(ckpt_path):
            sys.exit("no checkpoint: " + ckpt_path)
        ck = torch.load(ckpt_path)
        model = GPT(ck["cfg"])
        model.load_state_dict(ck["model"])
        model.eval()
        print("checkpoint %s: step %d" % (ckpt_path, ck["step"]))
        if a.round_f16:
            round_f16(model)
            print("wte and the block weight matrices rounded to f16 (as in the shipped file)")
        if a.export_only:
            export_hf(model, a.out)
        if a.eval_val:
            val = load_bin(os.path.join(a.data, "val.bin"))
            vloss, vn = eval_sequence(model, val.numpy())
            print("val loss %.4f, val perplexity %.3f (full held-out split, %d tokens)" % (vloss, math.exp(vloss), vn))
            print_val_by_source(model, val, a.data)
        if a.eval_text:
            with open(a.eval_text, encoding="utf-8") as f:
                ids = [EOT] + encode(f.read(), a.tiktoken)
            loss, n = eval_sequence(model, ids)
            print("%s: %d tokens scored, loss %.6f, perplexity %.6f" % (a.eval_text, n, loss, math.exp(loss)))
            loss, n = eval_sliding(model, ids)
            print("%s: as `gpt score --ids \"50256 <ids>\"` (sliding windows): %d tokens scored, "
                  "loss %.6f, perplexity %.6f" % (a.eval_text, n, loss, math.exp(loss)))
        if a.sample:
            sample(model, a)
        return

    cfg = {"vocab_size": 50257, "n_ctx": a.n_ctx, "n_embd": a.n_embd, "n_layer": a.n_layer,
           "n_head": a.n_head, "layer_norm_epsilon": 1e-5}
    model = GPT(cfg)
    print("model: %d parameters, shipped size about %.2f MB" % (count_params(model), shipped_bytes(cfg) / 1e6))
    if shipped_bytes(cfg) > 16_000_000:
        sys.exit("model too large for the 16,000,000-byte budget")
    opt = make_optimizer(model, a)
    train = load_bin(os.path.join(a.data, "train.bin"))
    val = load_bin(os.path.join(a.data, "val.bin"))
    print("data: train %d tokens, val %d tokens" % (train.numel(), val.numel()))
    mix = parse_mix(a.mix, a.data)
    if mix:
        print("mix: " + ", ".join("%s %.2f (%.2f epochs of it over the run)" % (
            name.split("=")[0], w, w * a.steps * a.batch * a.n_ctx / (e - s))
            for name, (w, s, e) in zip(a.mix.split(","), mix)))
    step, extra = 0, {"train_seconds": 0.0}
    if os.path.exists(ckpt_path) and not a.fresh:
        ck = torch.load(ckpt_path)
        if ck["cfg"] != cfg:
            sys.exit("checkpoint %s has a different shape; use --fresh or another --work-dir" % ckpt_path)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        step, extra = ck["step"], ck["extra"]
        print("resumed from %s at step %d" % (ckpt_path, step))
        for k in ("steps", "batch", "lr", "min_lr", "warmup", "weight_decay", "grad_clip", "seed", "mix"):
            if ck["args"].get(k) != getattr(a, k):
                print("warning: --%s was %r in the checkpoint's run, now %r" % (k.replace("_", "-"), ck["args"].get(k), getattr(a, k)))
    T, B = a.n_ctx, a.batch
    print("training: %d steps x %d x %d tokens, lr %g -> %g (warmup %d, cosine), wd %g, seed %d" % (
        a.steps, B, T, a.lr, a.min_lr, a.warmup, a.weight_decay, a.seed), flush=True)

    def evaluate():
        model.eval()
        tl = fixed_windows_loss(model, train, a.eval_windows, T, a.seed + 1)
        vl = fixed_windows_loss(model, val, a.eval_windows, T, a.seed + 2)
        model.train()
        return tl, vl

    t_start = time.time() - extra["train_seconds"]
    t_last, running = time.time(), None
    model.train()
    while step < a.steps:
        if step % a.eval_every == 0:
            tl, vl = evaluate()
            print("step %5d | eval train %.4f val %.4f (val ppl %.2f) | %.0f s" % (
                step, tl, vl, math.exp(vl), time.time() - t_start), flush=True)
        gen = torch.Generator().manual_seed(a.seed * 1_000_003 + step)   # batch depends only on the step
        x, y = get_batch(train, B, T, gen, mix)
        lr = lr_at(step, a)
        for g in opt.param_groups:
            g["lr"] = lr
        loss = train_loss(model, x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), a.grad_clip)
        opt.step()
        step += 1
        running = loss.item() if running is None else 0.95 * running + 0.05 * loss.item()
        if step % 25 == 0:
            now = time.time()
            print("step %5d | loss %.4f (avg %.4f) | lr %.2e | norm %.2f | %.0f tok/s | %.0f s" % (
                step, loss.item(), running, lr, norm, 25 * B * T / (now - t_last), now - t_start), flush=True)
            t_last = now
        if step % a.ckpt_every == 0 or step == a.steps:
            extra["train_seconds"] = time.time() - t_start
            save_ckpt(ckpt_path, model, opt, step, a, extra)
    extra["train_seconds"] = time.time() - t_start
    tl, vl = evaluate()
    print("step %5d | eval train %.4f val %.4f (val ppl %.2f)" % (step, tl, vl, math.exp(vl)))
    print("training done: %d steps, %d tokens seen (%.2f epochs), %.0f s" % (
        step, step * B * T, step * B * T / train.numel(), extra["train_seconds"]), flush=True)

    model.eval()
    if not a.no_final_eval:
        t0 = time.time()
        vloss, vn = eval_sequence(model, val.numpy())
        tloss, tn = strided_windows_loss(model, train, 800, T)
        print("final: train loss %.4f (%d evenly spaced windows, %d tokens) | val loss %.4f, val perplexity %.3f "
              "(full held-out split, %d tokens) | %.0f s" % (tloss, 800, tn, vloss, math.exp(vloss), vn, time.time() - t0))
        extra.update({"final_train_loss": tloss, "final_val_loss": vloss, "final_val_ppl": math.exp(vloss),
                      "val_tokens_scored": vn})
        save_ckpt(ckpt_path, model, opt, step, a, extra)
        print_val_by_source(model, val, a.data)
        excerpt = os.path.join(a.data, "heldout_excerpt.txt")
        if a.tiktoken and os.path.exists(excerpt):
            with open(excerpt, encoding="utf-8") as f:
                ids = [EOT] + encode(f.read(), a.tiktoken)
            loss, n = eval_sequence(model, ids)
            print("%s: %d tokens scored, loss %.6f, perplexity %.6f" % (excerpt, n, loss, math.exp(loss)))
    export_hf(model, a.out)
    if a.copy_to:
        if os.path.exists(a.copy_to):
            shutil.rmtree(a.copy_to)
        shutil.copytree(a.out, a.copy_to)
        print("copied to", a.copy_to)
    if a.tiktoken:
        a.sample = "And God said"
        sample(model, a)


def sample(model, a):
    dec = Decoder(os.path.join(REPO, "models", "tokenizer", "encoder.json"))
    ids = encode(a.sample, a.tiktoken)
    print("prompt %r -> ids %s" % (a.sample, ids))
    out = generate(model, ids, a.n_new)
    print("greedy (%d new tokens): ids %s" % (len(out) - len(ids), out[len(ids):]))
    print("greedy:  " + json.dumps(dec.decode(out)))
    g = torch.Generator().manual_seed(a.seed)
    for i in range(a.n_samples):
        out = generate(model, ids, a.n_new, a.temperature, a.top_k, g)
        print("sample %d (T=%g, top_k=%d, torch seed %d): %s" % (
            i + 1, a.temperature, a.top_k, a.seed, json.dumps(dec.decode(out))))


if __name__ == "__main__":
    main()
