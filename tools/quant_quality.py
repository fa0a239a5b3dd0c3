#!/usr/bin/env python3
"""How much 8-bit (q8_0) and 4-bit (q4_0) weights would move a model.

Reads a checkpoint with tests/reference/gpt2_ref.py, rounds wte and the block
matrices through q8_0 (as `gpt convert` writes it) and through q4_0 (as
llama.cpp's reference quantizer makes it: blocks of 32, d = m / -8 where m
is the block's value of largest magnitude, codes q = min(15, trunc(x * (1/d)
+ 8.5)) standing for f16(d) * (q - 8)), and writes each result as an f32
checkpoint, which `gpt score` can then score. wpe and the vectors stay as they are, as in
`gpt convert`. docs/PERFORMANCE.md ("What is not done") has the figures.

usage: /usr/bin/python3 tools/quant_quality.py MODEL.bin OUT_DIR
then:  ids=$(build/gpt tokenize < tests/data/demo_heldout.txt)
       build/gpt score -m OUT_DIR/MODEL-q4_0-rounded.bin --kv f32 --ids "50256 $ids" | tail -1
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "reference"))
import gpt2_ref as R  # noqa: E402


def q4_0_round_trip(w):
    rows, cols = w.shape
    nb = (cols + 31) // 32
    x = np.zeros((rows, nb * 32), np.float32)
    x[:, :cols] = w
    x = x.reshape(rows, nb, 32)
    largest = np.take_along_axis(x, np.abs(x).argmax(axis=2)[:, :, None], axis=2)[:, :, 0]
    d = (largest / np.float32(-8.0))[:, :, None]                      # binary32
    with np.errstate(divide="ignore"):
        inv = np.where(d != 0, np.float32(1.0) / d, np.float32(0.0)).astype(np.float32)
    # codes from the binary32 d, rounded by truncating x/d + 8.5; only d's
    # f16 rounding is stored and used to decode
    q = np.minimum(np.float32(15), np.trunc(x * inv + np.float32(8.5)))
    d16 = R.f16_bits_to_f32(R.f32_to_f16_bits(d))
    return (d16 * (q - 8)).reshape(rows, nb * 32)[:, :cols].astype(np.float32)


def q8_0_round_trip(w):
    q, s = R.q8_0_quantize(w)
    return R.q8_0_dequantize(q, s, w.shape[1])


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    path, out_dir = sys.argv[1], sys.argv[2]
    cfg, weights, tokenizer, _ = R.read_checkpoint(path)
    stem = os.path.splitext(os.path.basename(path))[0]
    os.makedirs(out_dir, exist_ok=True)
    for name, round_trip in (("q8_0", q8_0_round_trip), ("q4_0", q4_0_round_trip)):
        out = []
        for (tname, kind, rows, cols), w in zip(R.canonical_tensors(cfg), weights):
            if kind == "matrix" and tname != "wpe.weight":
                w = round_trip(np.asarray(w, np.float32).reshape(rows, cols))
            out.append(w)
        dest = os.path.join(out_dir, "%s-%s-rounded.bin" % (stem, name))
        R.write_checkpoint(dest, cfg, out, "f32", tokenizer)
        print(dest)


if __name__ == "__main__":
    main()
