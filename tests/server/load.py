"""load.py - the load test of `gpt serve`: REQUESTS completions (streamed and
not, mixed prompts, lengths, seeds, n, stop strings, logprobs), first one at
a time, then from CLIENTS concurrent clients. Every request must succeed and
its text must be identical under load to its text alone (batch invariance
through continuous batching); prints the aggregate tokens/s of both runs.

    python3 tests/server/load.py [--requests 64] [--clients 16] [--slots 8] [--model PATH]

Environment: GPT, BUILD (tests/run.sh)."""
import argparse
import os
import queue
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serve_util import Checks, Server, getenv_gpt, post, stream  # noqa: E402

PROMPTS = [
    "And God said",
    "In the beginning",
    "The LORD is my shepherd; I shall not want. He maketh me to lie down in green pastures:",
    "Blessed are the poor in spirit: for theirs is the kingdom of heaven.",
    "And it came to pass",
    "Now the serpent was more subtil than any beast of the field which the LORD God had made. And he said unto the woman,",
    "Thus saith the LORD",
    "",
]
LENGTHS = [8, 16, 24, 32, 48, 64, 96]


def specs(n):
    out = []
    for i in range(n):
        body = {"prompt": PROMPTS[i % len(PROMPTS)], "max_tokens": LENGTHS[(i * 3) % len(LENGTHS)],
                "seed": 1000 + 17 * i}
        if i % 8 == 3:
            body["n"] = 2
        if i % 16 == 5:
            body["temperature"] = 0
        if i % 8 == 6:
            body["stop"] = [",", "\n\n"]
        if i % 11 == 4:
            body["logprobs"] = 2
        if i % 13 == 7:
            body["top_k"] = 40
            body["min_p"] = 0.05
        out.append((i % 2 == 1, body))
    return out


def run_one(port, streamed, body):
    """Returns (texts by choice index, completion tokens) or raises."""
    if streamed:
        b = dict(body)
        b["stream_options"] = {"include_usage": True}
        st, ev, done, _ = stream(port, b)
        if st != 200 or not done:
            raise RuntimeError("stream status %d, done %s: %s" % (st, done, ev))
        n = body.get("n", 1)
        texts = [""] * n
        tokens = 0
        for e in ev:
            if "usage" in e:
                tokens = e["usage"]["completion_tokens"]
            for c in e["choices"]:
                texts[c["index"]] += c["text"]
        return texts, tokens
    st, r = post(port, "/v1/completions", body)
    if st != 200:
        raise RuntimeError("status %d: %s" % (st, r))
    texts = [c["text"] for c in sorted(r["choices"], key=lambda c: c["index"])]
    return texts, r["usage"]["completion_tokens"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=64)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--slots", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--model", default=None)
    ap.add_argument("--name", default="serve_load")
    a = ap.parse_args()
    gpt, build = getenv_gpt()
    tmp = os.path.join(build, "tmp_serve_load")
    os.makedirs(tmp, exist_ok=True)
    args = ["--slots", str(a.slots), "-t", str(a.threads), "--queue", str(a.requests)]
    if a.model:
        args += ["-m", a.model]
    srv = Server(gpt, args, os.path.join(tmp, a.name + ".log"))
    C = Checks()
    try:
        srv.start()
    except RuntimeError as e:
        if "not supported" in str(e):
            print("SKIP %s: %s" % (a.name, str(e).strip().splitlines()[-1]))
            return 0
        print("FAIL %s_server_starts: %s" % (a.name, e))
        return 1
    port = srv.port
    work = specs(a.requests)
    try:
        # warm up (page in the model)
        run_one(port, False, {"prompt": "x", "max_tokens": 4})
        # one at a time
        alone, errors = {}, []
        t0 = time.time()
        for i, (streamed, body) in enumerate(work):
            try:
                alone[i] = run_one(port, streamed, body)
            except Exception as e:  # noqa: BLE001
                errors.append((i, str(e)))
        t_alone = time.time() - t0
        # CLIENTS at once
        loaded, q, lock = {}, queue.Queue(), threading.Lock()
        for i in range(len(work)):
            q.put(i)

        def client():
            while True:
                try:
                    i = q.get_nowait()
                except queue.Empty:
                    return
                try:
                    res = run_one(port, *work[i])
                    with lock:
                        loaded[i] = res
                except Exception as e:  # noqa: BLE001
                    with lock:
                        errors.append((i, str(e)))

        threads = [threading.Thread(target=client) for _ in range(a.clients)]
        t0 = time.time()
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        t_load = time.time() - t0
    finally:
        rc = srv.stop()
    C.check(a.name + "_no_errors", not errors, errors[:3])
    differ = [i for i in range(len(work)) if i in alone and i in loaded and alone[i][0] != loaded[i][0]]
    C.check(a.name + "_texts_identical_to_alone", not differ and len(alone) == len(loaded) == len(work),
            [(i, alone[i][0], loaded[i][0]) for i in differ[:2]])
    tok_alone = sum(v[1] for v in alone.values())
    tok_load = sum(v[1] for v in loaded.values())
    C.check(a.name + "_same_tokens", tok_alone == tok_load, (tok_alone, tok_load))
    C.check(a.name + "_server_exits_0", rc == 0, rc)
    streamed = sum(1 for s, _ in work if s)
    if t_alone > 0 and t_load > 0:
        C.check(a.name + "_throughput", True, note="%d requests, %d streamed, %d tokens, %d slots, %d threads: one at "
                "a time %.1f s = %.0f tokens/s; %d clients at once %.1f s = %.0f tokens/s, x%.2f" %
                (len(work), streamed, tok_alone, a.slots, a.threads, t_alone, tok_alone / t_alone, a.clients, t_load,
                 tok_load / t_load, t_alone / t_load))
    return 1 if C.failed else 0


if __name__ == "__main__":
    sys.exit(main())
