#!/usr/bin/env python3
"""Continues a prompt with the demo model (or -m MODEL), printing the text as
it is produced. Needs only the standard library and the built library:

    make && python3 examples/python/generate.py "And God said"
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bindings", "python"))
import gpt  # noqa: E402

ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
ap.add_argument("prompt", nargs="?", default="And God said")
ap.add_argument("-m", "--model", help="checkpoint (default: the demo model)")
ap.add_argument("-n", type=int, default=60, help="tokens to generate")
ap.add_argument("--temp", type=float, default=0.8)
ap.add_argument("--seed", type=int, default=42)
args = ap.parse_args()

try:
    with gpt.Model(args.model) as model:
        print(args.prompt, end="", flush=True)
        for piece in model.stream(args.prompt, max_new_tokens=args.n, temperature=args.temp, seed=args.seed):
            print(piece, end="", flush=True)
        print()
except gpt.GPTError as e:
    sys.exit("generate.py: %s" % e)
except KeyboardInterrupt:
    print()
