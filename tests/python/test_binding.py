"""Tests of the Python binding bindings/python/gpt.py: the library and its
structures, loading, the tokenizer, scoring, generation with gpt.c's own
options, and the argument checks of issue 17 (unittest, standard library
only). tests/python/run.py runs it with the other test_*.py."""

import ctypes
import os
import re
import shutil
import subprocess
import sys
import tempfile

from helpers import DEMO, ROOT, TMP, Case, gpt, random_model, run_gpt


class Binding(Case):
    @classmethod
    def setUpClass(cls):
        cls.path = random_model()
        # one thread per call: the machine running the tests may be busy
        cls.model = gpt.Model(cls.path, threads=1)

    @classmethod
    def tearDownClass(cls):
        cls.model.close()

    # -- library and structures ------------------------------------------------

    def test_version(self):
        with open(os.path.join(ROOT, "gpt.h")) as f:
            want = re.search(r'#define GPT_VERSION_STRING "([^"]+)"', f.read()).group(1)
        self.assertEqual(gpt.version(), want)
        self.assertTrue(os.path.samefile(gpt.library_path, os.environ.get("GPT_LIBRARY", gpt.library_path)))

    def test_struct_layout(self):
        """The ctypes structures match gpt.h as a C compiler lays it out."""
        cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
        if not cc:
            self.skipTest("no C compiler to compare the structure layouts with")
        structs = {
            "gpt_error": gpt._Error,
            "gpt_config": gpt._Config,
            "gpt_context_params": gpt._ContextParams,
            "gpt_generate_params": gpt._GenerateParams,
            "gpt_generate_result": gpt._GenerateResult,
            "gpt_load_params": gpt._LoadParams,
            "gpt_token_logprob": gpt._TokenLogprob,
            "gpt_piece": gpt._Piece,
            "gpt_batch": gpt._Batch,
        }
        lines = ['#include <stdio.h>', '#include <stddef.h>', '#include "gpt.h"', "int main(void) {"]
        for cname, py in structs.items():
            lines.append('printf("%s size %%zu\\n", sizeof(%s));' % (cname, cname))
            for fname, _ in py._fields_:
                lines.append('printf("%s.%s %%zu\\n", offsetof(%s, %s));' % (cname, fname, cname, fname))
        lines.append("return 0; }")
        d = tempfile.mkdtemp(dir=TMP)
        try:
            src, exe = os.path.join(d, "layout.c"), os.path.join(d, "layout")
            with open(src, "w") as f:
                f.write("\n".join(lines) + "\n")
            subprocess.run([cc, "-std=c99", "-I", ROOT, src, "-o", exe], check=True, stderr=subprocess.PIPE)
            out = subprocess.run([exe], check=True, stdout=subprocess.PIPE).stdout.decode()
        finally:
            shutil.rmtree(d, ignore_errors=True)
        got = dict(line.rsplit(" ", 1) for line in out.splitlines())
        for cname, py in structs.items():
            # a C struct with more fields than the binding knows is the danger
            self.assertEqual(int(got["%s size" % cname]), ctypes.sizeof(py), cname)
            for fname, _ in py._fields_:
                self.assertEqual(int(got["%s.%s" % (cname, fname)]), getattr(py, fname).offset,
                                 "%s.%s" % (cname, fname))

    def test_library_not_found_message(self):
        env = dict(os.environ, GPT_LIBRARY=os.path.join(TMP, "no-such-libgpt.so"))
        code = "import gpt\ntry:\n    gpt.version()\nexcept OSError as e:\n    print('OSError', e)\n"
        out = subprocess.run([sys.executable, "-c", code], env=env, cwd=os.path.join(ROOT, "bindings", "python"),
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT).stdout.decode()
        self.assertIn("OSError", out)
        self.assertIn("no-such-libgpt.so", out)

    # -- loading -------------------------------------------------------------------

    def test_config(self):
        c = self.model.config
        self.assertEqual((c["n_layer"], c["n_head"], c["n_embd"], c["n_ctx"], c["n_vocab"]), (2, 2, 32, 64, 512))
        self.assertEqual(c["dtype"], "f32")
        self.assertAlmostEqual(c["ln_eps"], 1e-5, places=9)
        self.assertGreater(c["n_params"], 0)
        self.assertGreater(c["weight_bytes"], 0)
        info = run_gpt("info", "-m", self.path).decode()
        self.assertIn("params     %d " % c["n_params"], info)

    def test_load_missing_file(self):
        missing = os.path.join(TMP, "missing.bin")
        with self.assertRaises(gpt.GPTError) as cm:
            gpt.Model(missing)
        e = cm.exception
        self.assertEqual(e.status, gpt.GPT_ERR_IO)
        self.assertEqual(e.status_name, "GPT_ERR_IO")
        self.assertIn("missing.bin", e.message)
        self.assertIn("missing.bin", str(e))

    def test_load_not_a_regular_file(self):
        cases = [(TMP, "a directory")]
        if hasattr(os, "mkfifo"):
            fifo = os.path.join(TMP, "fifo")
            if not os.path.exists(fifo):
                os.mkfifo(fifo)
            cases.append((fifo, "a FIFO"))  # would block in open() if it were opened
        if os.path.exists("/dev/zero"):
            cases.append(("/dev/zero", "a character device"))
        for path, kind in cases:
            with self.assertRaises(gpt.GPTError) as cm:
                gpt.Model(path)
            self.assertEqual(cm.exception.status_name, "GPT_ERR_IO")
            self.assertIn(kind, cm.exception.message)

    def test_load_truncated_file(self):
        bad = os.path.join(TMP, "truncated.bin")
        with open(self.path, "rb") as f, open(bad, "wb") as g:
            g.write(f.read(1000))
        with self.assertRaises(gpt.GPTError) as cm:
            gpt.Model(bad)
        self.assertEqual(cm.exception.status_name, "GPT_ERR_FORMAT")
        self.assertIn("truncated", cm.exception.message)

    def test_threads_parameter(self):
        with gpt.Model(self.path, threads=2) as m2:
            self.assertEqual(m2.threads, 2)
            self.assertEqual(m2.generate("Hello", max_new_tokens=10, seed=4),
                             self.model.generate("Hello", max_new_tokens=10, seed=4))

    def test_kv_parameter(self):
        # the test model is f32: "auto" is the f32 cache, "f16" moves the
        # log-probs a little, as the command line's --kv does
        ids = self.model.tokenize("Hello world, and more words here")
        exact = self.model.score(ids)
        with gpt.Model(self.path, threads=1, kv="f32") as m32, gpt.Model(self.path, threads=1, kv="f16") as m16:
            self.assertEqual(m32.score(ids), exact)
            half = m16.score(ids)
            self.assertNotEqual(half, exact)
            for a, b in zip(half, exact):
                self.assertAlmostEqual(a, b, delta=1e-2)
            out = run_gpt("score", "-m", self.path, "--kv", "f16", "--ids", " ".join(map(str, ids))).decode()
            cli = [float(line.split("\t")[2]) for line in out.splitlines() if not line.startswith("ppl")]
            for a, b in zip(half, cli):
                self.assertAlmostEqual(a, b, delta=2e-6 + 1e-6 * abs(b))
        with self.assertRaises(gpt.GPTError):
            gpt.Model(self.path, kv="f8")
        with self.assertRaises(ValueError):
            gpt.Model(self.path, kv="f8")

    def test_bad_threads(self):
        for exc in (gpt.GPTError, ValueError):
            with self.assertRaises(exc):
                gpt.Model(self.path, threads=-1)

    def test_default_model(self):
        if not os.path.exists(DEMO):
            self.skipTest("models/demo.bin does not exist yet")
        with gpt.Model() as m:
            self.assertEqual(os.path.realpath(m.path), os.path.realpath(DEMO))
            self.assertEqual(m.config["n_vocab"], 50257)
            self.assertEqual(m.eot, 50256)

    # -- tokenizer -----------------------------------------------------------------

    def test_tokenize_round_trip(self):
        m = self.model
        for text in ["Hello world", "", "caf\u00e9 \u20ac \U0001F600 \u4f60\u597d", "a\nb\r\n\tc  d"]:
            ids = m.tokenize(text)
            self.assertIsInstance(ids, list)
            self.assertTrue(all(isinstance(i, int) and 0 <= i < 512 for i in ids))
            self.assertEqual(m.detokenize(ids), text)
        self.assertEqual(m.tokenize(""), [])

    def test_tokenize_matches_cli(self):
        text = "The quick brown fox, 1234 times!"
        want = [int(x) for x in run_gpt("tokenize", "-m", self.path, input=text.encode()).split()]
        self.assertEqual(self.model.tokenize(text), want)

    def test_bytes(self):
        m = self.model
        raw = b"ab\xff\xfe\x00cd\xe2\x82"  # invalid UTF-8 and a NUL byte
        ids = m.tokenize(raw)
        self.assertEqual(m.detokenize_bytes(ids), raw)
        self.assertEqual(m.detokenize(ids), raw.decode("utf-8", "replace"))

    def test_tokenize_special(self):
        if not os.path.exists(DEMO):
            self.skipTest("models/demo.bin does not exist yet (the random model has no <|endoftext|>)")
        with gpt.Model(DEMO) as m:
            self.assertEqual(m.tokenize("<|endoftext|>", special=True), [m.eot])
            self.assertNotEqual(m.tokenize("<|endoftext|>"), [m.eot])

    def test_detokenize_out_of_range(self):
        for bad in ([512], [0, -1], [2 ** 40]):
            with self.assertRaises(gpt.GPTError) as cm:
                self.model.detokenize(bad)
            self.assertEqual(cm.exception.status_name, "GPT_ERR_TOKEN_RANGE")
        with self.assertRaises(TypeError):
            self.model.detokenize(["x"])

    # -- scoring ---------------------------------------------------------------------

    def test_score(self):
        m = self.model
        ids = m.tokenize("Hello world, and more words here")
        lp = m.score(ids)
        self.assertEqual(len(lp), len(ids) - 1)
        self.assertTrue(all(isinstance(x, float) and x <= 0 for x in lp))
        out = run_gpt("score", "-m", self.path, "--ids", " ".join(map(str, ids))).decode().splitlines()
        cli = [float(line.split("\t")[2]) for line in out if not line.startswith("ppl")]
        self.assertEqual(len(cli), len(lp))
        for a, b in zip(lp, cli):
            self.assertAlmostEqual(a, b, delta=2e-6 + 1e-6 * abs(b))
        self.assertEqual(m.score(ids[:1]), [])
        self.assertEqual(m.score([]), [])

    def test_score_longer_than_context(self):
        ids = [(i * 7919) % 512 for i in range(150)]  # n_ctx is 64: sliding windows
        lp = self.model.score(ids)
        self.assertEqual(len(lp), 149)

    def test_score_out_of_range(self):
        with self.assertRaises(gpt.GPTError) as cm:
            self.model.score([1, 2, 512])
        self.assertEqual(cm.exception.status_name, "GPT_ERR_TOKEN_RANGE")
        self.assertIn("512", cm.exception.message)

    # -- generation --------------------------------------------------------------------

    def test_generate_deterministic(self):
        m = self.model
        a = m.generate("Hello", max_new_tokens=20, seed=5)
        b = m.generate("Hello", max_new_tokens=20, seed=5)
        self.assertIsInstance(a, str)
        self.assertEqual(a, b)
        self.assertGreater(len(a), 0)
        self.assertNotEqual(m.generate("Hello", max_new_tokens=20, seed=6), a)

    def test_generate_matches_cli(self):
        args = dict(max_new_tokens=25, temperature=0.9, top_k=30, top_p=0.9, min_p=0.02, repeat_penalty=1.3, seed=11)
        got = self.model.generate_bytes("Once upon", **args)
        want = run_gpt("generate", "-m", self.path, "-p", "Once upon", "-n", "25", "--temp", "0.9", "--top-k", "30",
                       "--top-p", "0.9", "--min-p", "0.02", "--repeat-penalty", "1.3", "--seed", "11")
        self.assertEqual(got, want)

    def test_generate_greedy(self):
        m = self.model
        a = m.generate("abc", max_new_tokens=15, temperature=0, seed=1)
        b = m.generate("abc", max_new_tokens=15, temperature=0, seed=2)
        self.assertEqual(a, b)  # greedy ignores the seed

    def test_generate_zero_tokens(self):
        self.assertEqual(self.model.generate("Hello", max_new_tokens=0), "")

    def test_generate_stop_string(self):
        m = self.model
        full = m.generate_bytes("Hello", max_new_tokens=30, seed=3)
        stop = full[len(full) // 2:len(full) // 2 + 2]
        if len(stop) < 2 or b"\x00" in stop:
            self.skipTest("generated text too short for a stop string")
        want = full[:full.index(stop)]
        self.assertEqual(m.generate_bytes("Hello", max_new_tokens=30, seed=3, stop=[stop]), want)
        self.assertEqual(b"".join(m.stream_bytes("Hello", max_new_tokens=30, seed=3, stop=stop)), want)

    def test_generate_bad_params(self):
        m = self.model
        for kw, word in [({"temperature": -1}, "temperature"), ({"top_p": 0}, "top_p"), ({"top_k": -3}, "top_k"),
                         ({"max_new_tokens": -2}, "max_new_tokens"), ({"min_p": 2}, "min_p")]:
            with self.assertRaises(gpt.GPTError) as cm:
                m.generate("x", **kw)
            self.assertEqual(cm.exception.status_name, "GPT_ERR_INVALID_ARG")
            self.assertIn(word, cm.exception.message)
            self.assertIsInstance(cm.exception, ValueError)  # GPTValueError: both
            with self.assertRaises(ValueError):
                m.stream("x", **kw)  # checked when the call is made, before any next()

    def test_generate_context_full(self):
        # 64 positions: stops at the end of the window without an exception
        text = self.model.generate("Hello", max_new_tokens=100, ignore_eos=True, seed=1)
        self.assertGreater(len(text), 0)
        slid = self.model.generate("Hello", max_new_tokens=100, ignore_eos=True, seed=1, slide=True)
        self.assertGreater(len(slid), len(text))
        self.assertTrue(slid.startswith(text))

    def test_generate_prompt_too_long(self):
        with self.assertRaises(gpt.GPTError) as cm:
            self.model.generate("word " * 200, max_new_tokens=5)
        self.assertEqual(cm.exception.status_name, "GPT_ERR_CONTEXT_FULL")

    # -- arguments checked before they reach C (issue 17) -----------------------------

    def test_integers_never_wrap(self):
        m = self.model
        for kw in [{"max_new_tokens": 2 ** 40}, {"max_new_tokens": 2 ** 32 + 3}, {"top_k": 2 ** 32 + 1},
                   {"repeat_last_n": 2 ** 31}, {"seed": 2 ** 64}, {"max_new_tokens": -(2 ** 31) - 1}]:
            with self.assertRaises(OverflowError, msg=str(kw)):
                m.generate("Hello", **kw)
            with self.assertRaises(OverflowError, msg=str(kw)):
                list(m.stream("Hello", **kw))
        for seed in (-2, -(2 ** 63)):  # -1 draws a random seed (test_generate.py)
            with self.assertRaises(ValueError):
                m.generate("Hello", seed=seed)
        self.assertEqual(m.generate("Hello", max_new_tokens=5, seed=2 ** 64 - 1),
                         run_gpt("generate", "-m", self.path, "-p", "Hello", "-n", "5", "--seed",
                                 str(2 ** 64 - 1)).decode("utf-8", "replace"))
        with self.assertRaises(OverflowError):
            gpt.Model(self.path, threads=2 ** 40)

    def test_wrong_types(self):
        m = self.model
        for call in [lambda: m.generate(123), lambda: list(m.stream(123)), lambda: m.generate_bytes(None),
                     lambda: m.tokenize(3), lambda: m.tokenize(None), lambda: m.tokenize(["a"]),
                     lambda: m.generate("x", top_k=1.5), lambda: m.generate("x", top_k=True),
                     lambda: m.generate("x", max_new_tokens="5"), lambda: m.generate("x", temperature="0.5"),
                     lambda: m.generate("x", seed=1.0), lambda: m.generate("x", stop=3),
                     lambda: m.generate("x", stop=["a", 3]), lambda: m.detokenize([1.0]),
                     lambda: m.detokenize([True]), lambda: m.score(["1", "2"]), lambda: gpt.Model(123),
                     lambda: gpt.Model(self.path, threads=1.0), lambda: gpt.Model(self.path, kv=2)]:
            with self.assertRaises(TypeError):
                call()
        self.assertEqual(m.tokenize(bytearray(b"Hello")), m.tokenize("Hello"))

    def test_nul_and_empty_strings_refused(self):
        m = self.model
        for kw in [{"prompt": "And\0 God"}, {"prompt": b"And\0"}, {"prompt": "x", "stop": "a\0b"},
                   {"prompt": "x", "stop": ["z", b"\0"]}, {"prompt": "x", "stop": ""},
                   {"prompt": "x", "stop": ["", "x"]}]:
            with self.assertRaises(ValueError, msg=repr(kw)):
                m.generate(**kw)
        self.assertEqual(m.generate("x", max_new_tokens=5, stop=[]), m.generate("x", max_new_tokens=5))
        ids = m.tokenize("a\0b")  # tokenizing takes a length: NUL is an ordinary byte there
        self.assertEqual(m.detokenize_bytes(ids), b"a\0b")

    def test_defaults_as_the_cli(self):
        m = self.model
        # -1: until the context is full, as gpt generate -n -1
        text = m.generate_bytes("Hello", max_new_tokens=-1, ignore_eos=True, seed=3)
        want = run_gpt("generate", "-m", self.path, "-p", "Hello", "-n", "-1", "--ignore-eos", "--seed", "3")
        self.assertEqual(text, want)
        self.assertGreater(len(text), 0)
        # threads 0: one per CPU, as -t 0
        with gpt.Model(self.path, threads=0) as m0:
            self.assertEqual(m0.threads, 0)
            self.assertEqual(m0.generate("Hello", max_new_tokens=8, seed=1), m.generate("Hello", max_new_tokens=8, seed=1))

    def test_prompt_that_fills_the_context(self):
        m = self.model
        prompt = " a" * m.config["n_ctx"]
        if len(m.tokenize(prompt)) != m.config["n_ctx"]:
            self.skipTest("' a' is not one token of this vocabulary")
        with self.assertRaises(gpt.GPTError) as cm:  # no room for a single token: an error, not ''
            m.generate(prompt, max_new_tokens=5)
        self.assertEqual(cm.exception.status_name, "GPT_ERR_CONTEXT_FULL")

    def test_no_mmap(self):
        victim = os.path.join(TMP, "victim.bin")
        shutil.copy(self.path, victim)
        with gpt.Model(victim, threads=1, mmap=False) as m:
            self.assertFalse(m.mmap)
            with open(victim, "r+b") as f:
                f.truncate(0)  # a mapped model would die of SIGBUS on its next read
            self.assertEqual(m.generate("Hello", max_new_tokens=10, seed=4),
                             self.model.generate("Hello", max_new_tokens=10, seed=4))

    def test_nonfinite_weights(self):
        bad = os.path.join(TMP, "nan.bin")
        with open(self.path, "rb") as f:
            data = bytearray(f.read())
        off = int.from_bytes(data[128 + 32 * 5 + 16:128 + 32 * 5 + 24], "little")  # h.0.attn.c_attn.bias
        data[off + 8:off + 12] = b"\x00\x00\xc0\x7f"  # NaN
        with open(bad, "wb") as f:
            f.write(data)
        with gpt.Model(bad, threads=1) as m:
            for call in (lambda: m.generate("Hello", max_new_tokens=5), lambda: m.score([1, 2, 3])):
                with self.assertRaises(gpt.GPTError) as cm:
                    call()
                self.assertEqual(cm.exception.status, gpt.GPT_ERR_NUMERIC)
                self.assertEqual(cm.exception.status_name, "GPT_ERR_NUMERIC")

    # -- the demo model ----------------------------------------------------------------------

    def test_demo_model_generates_english(self):
        if not os.path.exists(DEMO):
            self.skipTest("models/demo.bin does not exist yet")
        with gpt.Model() as m:
            text = m.generate("And God said", max_new_tokens=30, seed=7)
            self.assertGreater(len(text), 10)
            letters = sum(c.isascii() and (c.isalpha() or c.isspace()) for c in text)
            self.assertGreater(letters, 0.7 * len(text), text)
            want = run_gpt("generate", "-p", "And God said", "-n", "30", "--seed", "7")
            self.assertEqual(text.encode(), want)

    def test_example_script(self):
        if not os.path.exists(DEMO):
            self.skipTest("models/demo.bin does not exist yet")
        script = os.path.join(ROOT, "examples", "python", "generate.py")
        for args in (["-n", "10"], ["-N", "2", "-n", "5"], ["--beams", "3", "-N", "2", "-n", "5"]):
            out = subprocess.run([sys.executable, script] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 check=True).stdout.decode()
            self.assertTrue(out.startswith("And God said") or out.startswith("--- 0"), out)
            self.assertEqual(out.count("--- "), 2 if "-N" in args else 0)

    def test_example_chat(self):
        """examples/python/chat.py: two turns on one session; the second
        adds its own positions to the first's."""
        if not os.path.exists(DEMO):
            self.skipTest("models/demo.bin does not exist yet")
        p = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "python", "chat.py"), "-v", "-n", "12"],
                           input=b"And Moses said unto the LORD,\n And the LORD said unto Moses,\n",
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=True)
        self.assertEqual(len(p.stdout.decode().splitlines()), 2)
        turns = [tuple(map(int, re.findall(r"\d+", line))) for line in p.stderr.decode().splitlines()]
        self.assertEqual(len(turns), 2)
        (n1, added1), (n2, added2) = turns
        self.assertEqual(added1, n1)
        self.assertEqual(n2, n1 + added2)
        with gpt.Model(DEMO) as m:
            self.assertGreater(added2, len(m.tokenize(" And the LORD said unto Moses,")))
