#!/usr/bin/env python3
"""A multi-turn loop on one Session: each line read is appended to what the
session holds and continued; the history is never evaluated again, so a turn
costs only its new tokens. Reads lines from the terminal or stdin:

    make && python3 examples/python/chat.py
    printf 'And Moses said unto the LORD,\\n And the LORD said unto Moses,\\n' | python3 examples/python/chat.py

-v prints, after each turn, the positions the session holds and how many of
them the turn added.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bindings", "python"))
import gpt  # noqa: E402

ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
ap.add_argument("-m", "--model", help="checkpoint (default: the demo model)")
ap.add_argument("-n", type=int, default=40, help="most tokens per answer")
ap.add_argument("--seed", type=int, default=42)
ap.add_argument("-v", "--verbose", action="store_true")
args = ap.parse_args()

try:
    with gpt.Model(args.model) as model, model.session() as chat:
        interactive = sys.stdin.isatty()
        while True:
            if interactive:
                print("> ", end="", flush=True)
            line = sys.stdin.readline()
            if not line:
                break
            turn = line.rstrip("\n")
            if not turn:
                continue
            before = chat.n_past
            if chat.n_past + len(model.tokenize(turn)) + args.n > chat.n_ctx:
                chat.rewind(0)  # the window is full: start again (or keep a summary)
                before = 0
            try:
                for piece in chat.stream(turn, max_new_tokens=args.n, stop=["\n", "."], seed=args.seed):
                    print(piece, end="", flush=True)
            except KeyboardInterrupt:  # Ctrl-C ends the answer, not the chat
                pass
            print()
            if args.verbose:
                print("[session: %d positions, this turn added %d]" % (chat.n_past, chat.n_past - before),
                      file=sys.stderr)
except gpt.GPTError as e:
    sys.exit("chat.py: %s" % e)
except KeyboardInterrupt:
    print()
