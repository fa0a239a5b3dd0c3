#!/usr/bin/env python3
"""Continues a prompt with the demo model (or -m MODEL), printing the text as
it is produced. Needs only the standard library and the built library:

    make && python3 examples/python/generate.py "And God said"
    python3 examples/python/generate.py -N 3 "And God said"        # three continuations
    python3 examples/python/generate.py --beams 4 "And God said"   # beam search
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
ap.add_argument("-N", "--num", type=int, help="continuations to sample (seeds SEED, SEED+1, ...)")
ap.add_argument("--beams", type=int, help="beam search with this many beams")
ap.add_argument("--temp", type=float, default=0.8)
ap.add_argument("--seed", type=int, default=42, help="-1: a random seed")
args = ap.parse_args()

try:
    with gpt.Model(args.model) as model:
        if args.num is None and args.beams is None:
            # one continuation, streamed: each piece as soon as the library has it
            print(args.prompt, end="", flush=True)
            for piece in model.stream(args.prompt, max_new_tokens=args.n, temperature=args.temp, seed=args.seed):
                print(piece, end="", flush=True)
            print()
        else:
            results = model.generate(args.prompt, max_new_tokens=args.n, temperature=args.temp, seed=args.seed,
                                     n=args.num or 1, num_beams=args.beams, return_details=True)
            for g in results:
                how = "score %.3f" % g.score if g.score is not None else "seed %d" % g.seed
                print("--- %d (%s, %s)" % (g.index, how, g.stop_reason))
                print(args.prompt + g.text)
except gpt.GPTError as e:
    sys.exit("generate.py: %s" % e)
except KeyboardInterrupt:
    print()
