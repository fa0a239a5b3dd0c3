"""generate() and stream() with n continuations, seeds, Hugging Face's
generate() keywords, OpenAI's penalties, log-probabilities, echo, beam
search and the details objects; and every case of the float64 reference
goldens of Hugging Face's rules (tests/data/golden/*.generate) through the
binding's keywords."""

import math
import os
import unittest

from helpers import DEMO, ROOT, Case, Spy, gpt, random_model


def parse_goldens(path):
    """The cases of a gpt-generate golden file (tests/reference/README.md)."""
    cases, case, head = [], None, {}
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            word, _, rest = line.partition(" ")
            if case is None:
                if word == "case":
                    case = {"name": rest, "seqs": {}}
                elif word in ("model", "dtype", "eos", "topn"):
                    head[word] = rest
                continue
            if word == "end-case":
                cases.append(case)
                case = None
            elif word == "prompt-text":
                case["text"] = eval(rest)  # a quoted string
            elif word == "prompt":
                case["prompt"] = [int(x) for x in rest.split()[1:]]
            elif word == "params":
                case["params"] = dict(kv.split("=") for kv in rest.split())
            elif word == "seq":
                parts = rest.split()
                case["seqs"].setdefault(int(parts[0]), {})["eos"] = parts[1] == "eos"
                case["seqs"][int(parts[0])]["ids"] = [int(x) for x in parts[3:]]
            elif word == "score":
                i, v = rest.split()
                case["seqs"][int(i)]["score"] = float(v)
            elif word == "logprob":
                parts = rest.split()
                case["seqs"][int(parts[0])]["logprob"] = [float(x) for x in parts[2:]]
            elif word == "top":
                parts = rest.split()
                tops = case["seqs"][int(parts[0])].setdefault("top", {})
                tops[int(parts[1])] = [(int(a), float(b)) for a, b in (x.split(":") for x in parts[3:])]
    return head, cases


def hf_keywords(params):
    """The binding's keywords for a golden's params line, as one would write
    them for Hugging Face's generate(); "-" is a keyword not given."""
    kw = {"do_sample": False}
    for k, v in params.items():
        if v == "-":
            continue
        if k == "early_stopping":
            kw[k] = {"true": True, "false": False, "never": "never"}[v]
        elif k in ("repetition_penalty", "presence_penalty", "frequency_penalty", "length_penalty"):
            kw[k] = float(v)
        else:
            kw[k] = int(v)
    return kw


class Generate(Case):
    @classmethod
    def setUpClass(cls):
        cls.path = random_model()
        cls.model = gpt.Model(cls.path, threads=1)
        cls.demo = gpt.Model(DEMO, threads=1) if os.path.exists(DEMO) else None

    @classmethod
    def tearDownClass(cls):
        cls.model.close()
        if cls.demo:
            cls.demo.close()

    def need_demo(self):
        if self.demo is None:
            self.skipTest("models/demo.bin does not exist yet")
        return self.demo

    # -- n continuations and seeds ---------------------------------------------------

    def test_n_returns_a_list(self):
        m = self.model
        texts = m.generate("Hello", n=3, max_new_tokens=12, ignore_eos=True)
        self.assertIsInstance(texts, list)
        self.assertEqual(len(texts), 3)
        self.assertTrue(all(isinstance(t, str) and t for t in texts))
        self.assertIsInstance(m.generate("Hello", max_new_tokens=4), str)  # n not given: one string
        self.assertEqual(m.generate("Hello", n=1, max_new_tokens=4), [m.generate("Hello", max_new_tokens=4)])
        self.assertEqual(m.generate("Hello", num_return_sequences=3, max_new_tokens=12, ignore_eos=True), texts)
        raw = m.generate_bytes("Hello", n=3, max_new_tokens=12, ignore_eos=True)
        self.assertEqual(raw, [t.encode() for t in texts])

    def test_n_continuation_i_is_seed_plus_i(self):
        """Continuation i of n equals a run of its own with seed + i."""
        m = self.model
        for seed in (7, 2 ** 64 - 2):  # seed + i wraps around 2**64
            texts = m.generate("Once upon", n=4, seed=seed, max_new_tokens=20, ignore_eos=True)
            self.assertEqual(texts, [m.generate("Once upon", seed=(seed + i) % 2 ** 64, max_new_tokens=20,
                                                ignore_eos=True) for i in range(4)])
            self.assertEqual(len(set(texts)), 4)
        if self.demo:  # with <|endoftext|> and stop strings: continuations end at different steps
            kw = dict(max_new_tokens=40, seed=3, stop=["\n"])
            texts = self.demo.generate("And God said", n=5, **kw)
            self.assertEqual(texts, [self.demo.generate("And God said", **dict(kw, seed=3 + i)) for i in range(5)])

    def test_n_stream(self):
        m = self.model
        want = m.generate("Hello", n=3, max_new_tokens=15, seed=2, ignore_eos=True)
        got = ["", "", ""]
        for i, piece in m.stream("Hello", n=3, max_new_tokens=15, seed=2, ignore_eos=True):
            self.assertTrue(piece)
            got[i] += piece
        self.assertEqual(got, want)

    def test_random_seed(self):
        """seed=-1 draws a seed that the details report; generating with
        it gives the same text."""
        m = self.model
        a = m.generate("Hello", seed=-1, max_new_tokens=15, ignore_eos=True, return_details=True)
        b = m.generate("Hello", seed=-1, max_new_tokens=15, ignore_eos=True, return_details=True)
        self.assertTrue(0 <= a.seed < 2 ** 64)
        self.assertNotEqual(a.seed, b.seed)  # 64 random bits
        self.assertEqual(m.generate("Hello", seed=a.seed, max_new_tokens=15, ignore_eos=True), a.text)
        many = m.generate("Hello", seed=-1, n=3, max_new_tokens=10, ignore_eos=True, return_details=True)
        self.assertEqual([g.seed for g in many], [(many[0].seed + i) % 2 ** 64 for i in range(3)])
        for g in many:
            self.assertEqual(m.generate("Hello", seed=g.seed, max_new_tokens=10, ignore_eos=True), g.text)
        self.assertEqual(m.generate("Hello", max_new_tokens=3, return_details=True).seed, 42)  # gpt.c's default

    # -- Hugging Face's keywords ------------------------------------------------------

    def test_do_sample_false_is_greedy(self):
        m = self.model
        greedy = m.generate("Hello", max_new_tokens=20, temperature=0, ignore_eos=True)
        for seed in (1, 2):
            self.assertEqual(m.generate("Hello", max_new_tokens=20, do_sample=False, seed=seed, ignore_eos=True),
                             greedy)
        # do_sample=False ignores the sampling filters, as Hugging Face does
        self.assertEqual(m.generate("Hello", max_new_tokens=20, do_sample=False, temperature=1.7, top_k=3,
                                    ignore_eos=True), greedy)
        # not given: gpt.c's default, sampling at temperature 0.8
        sampled = m.generate("Hello", max_new_tokens=20, seed=5, ignore_eos=True)
        self.assertEqual(m.generate("Hello", max_new_tokens=20, seed=5, do_sample=True, ignore_eos=True), sampled)
        self.assertNotEqual(sampled, greedy)
        with self.assertRaises(ValueError) as cm:
            m.generate("Hello", do_sample=True, temperature=0)
        self.assertIn("temperature", str(cm.exception))
        with self.assertRaises(ValueError) as cm:  # greedy gives one sequence (Hugging Face refuses it too)
            m.generate("Hello", do_sample=False, n=2)
        self.assertIn("greedy", str(cm.exception))

    def test_max_length_and_max_new_tokens(self):
        """max_length counts the prompt; with both, max_new_tokens wins; with
        max_length alone, max_new_tokens has no limit (not gpt.c's 128)."""
        m = self.model
        prompt = "Once upon a time"
        p = len(m.tokenize(prompt))
        kw = dict(do_sample=False, ignore_eos=True, return_details=True)
        g = m.generate(prompt, max_length=p + 5, **kw)
        self.assertEqual((len(g.tokens), g.stop_reason), (5, "max_tokens"))
        self.assertEqual(len(m.generate(prompt, max_new_tokens=3, max_length=p + 10, **kw).tokens), 3)
        self.assertEqual(len(m.generate(prompt, max_new_tokens=10, max_length=p + 2, **kw).tokens), 10)
        self.assertEqual(len(m.generate(prompt, max_length=p, **kw).tokens), 0)
        demo = self.need_demo()
        p = len(demo.tokenize("And God said"))
        g = demo.generate("And God said", max_length=p + 150, **kw)  # more than the default 128 new tokens
        self.assertEqual(len(g.tokens), 150)
        self.assertEqual(len(demo.generate("And God said", **kw).tokens), 128)

    def test_min_new_tokens(self):
        demo = self.need_demo()
        kw = dict(do_sample=False, max_new_tokens=60, return_details=True)
        # a greedy continuation that ends with <|endoftext|>
        for prompt in ["LAWYER, n.", "The end.", "Amen.", "And it was so."]:
            g = demo.generate(prompt, **kw)
            if g.stop_reason == "eos":
                break
        else:
            self.skipTest("no greedy continuation of the demo model ends with <|endoftext|> here")
        k = len(g.tokens)
        self.assertEqual(g.tokens[-1], demo.eot)
        longer = demo.generate(prompt, min_new_tokens=k + 3, **kw)
        self.assertNotIn(demo.eot, longer.tokens[:k + 3])
        self.assertGreaterEqual(len(longer.tokens), k + 3)
        self.assertEqual(longer.tokens[:k - 1], g.tokens[:k - 1])  # the same until the EOS was suppressed

    def test_penalties_change_the_output(self):
        m = self.model
        kw = dict(prompt="Hello", max_new_tokens=30, do_sample=False, ignore_eos=True)
        base = m.generate(**kw)
        for extra in ({"repetition_penalty": 1.5}, {"presence_penalty": 1.5}, {"frequency_penalty": 1.5},
                      {"no_repeat_ngram_size": 2}):
            self.assertNotEqual(m.generate(**dict(kw, **extra)), base, extra)
        # repeat_penalty (gpt.c's name) and repetition_penalty are one option
        self.assertEqual(m.generate(**dict(kw, repeat_penalty=1.5)), m.generate(**dict(kw, repetition_penalty=1.5)))
        self.assertEqual(m.generate(**dict(kw, repeat_penalty=1.5, repetition_penalty=1.5)),
                         m.generate(**dict(kw, repeat_penalty=1.5)))
        with self.assertRaises(ValueError):
            m.generate(**dict(kw, repeat_penalty=1.5, repetition_penalty=1.2))
        # no bigram occurs twice in the prompt and the continuation
        g = m.generate(return_details=True, no_repeat_ngram_size=2, **kw)
        ids = m.tokenize("Hello") + g.tokens
        pairs = list(zip(ids, ids[1:]))
        self.assertEqual(len(pairs), len(set(pairs)))

    def test_hf_keyword_errors(self):
        """Values the library refuses raise ValueError (GPTValueError) with
        its message; wrong types TypeError."""
        m = self.model
        for kw, word in [({"max_length": -1}, "max_length"), ({"min_new_tokens": -1}, "min_new_tokens"),
                         ({"n": 0}, "n_sequences"), ({"num_beams": 0}, "num_beams"),
                         ({"presence_penalty": 3}, "presence_penalty"), ({"frequency_penalty": -2.5}, "frequency"),
                         ({"no_repeat_ngram_size": -1}, "no_repeat_ngram_size"), ({"logprobs": 21}, "n_logprobs"),
                         ({"logprobs": -1}, "n_logprobs"), ({"early_stopping": "sometimes"}, "early_stopping"),
                         ({"num_beams": 2, "n": 3}, "num_beams"), ({"num_beams": 2, "do_sample": True}, "beam"),
                         ({"length_penalty": float("nan")}, "length_penalty"),
                         ({"n": 2, "num_return_sequences": 3}, "num_return_sequences"),
                         ({"num_beams": 2, "stop": "x"}, "stop"), ({"num_beams": 2, "slide": True}, "slide"),
                         ({"logprobs": 2, "return_details": False}, "logprobs")]:
            with self.assertRaises(gpt.GPTValueError, msg=repr(kw)):
                m.stream("Hello", max_new_tokens=3, **kw)  # when the call is made, before any next()
            with self.assertRaises(gpt.GPTValueError, msg=repr(kw)) as cm:
                m.generate("Hello", max_new_tokens=3, **kw)
            self.assertIsInstance(cm.exception, ValueError)
            self.assertIsInstance(cm.exception, gpt.GPTError)
            self.assertEqual(cm.exception.status_name, "GPT_ERR_INVALID_ARG")
            self.assertIn(word, cm.exception.message, kw)
        for kw in [{"do_sample": "yes"}, {"early_stopping": 2}, {"logprobs": True}, {"n": 2.0},
                   {"max_length": "9"}, {"num_beams": None, "length_penalty": "1"}, {"return_details": "yes"}]:
            with self.assertRaises(TypeError, msg=repr(kw)):
                m.generate("Hello", **kw)
        with self.assertRaises(OverflowError):
            m.generate("Hello", max_length=2 ** 31)
        with self.assertRaises(TypeError):
            m.generate("Hello", num_beam=2)  # not a keyword
        with self.assertRaises(TypeError):
            m.generate("Hello", 5, max_new_tokens=5)  # given twice
        with self.assertRaises(TypeError):
            m.generate("Hello", *range(13))  # more than the 12 positional options

    # -- details and log-probabilities -------------------------------------------------

    def test_details(self):
        m = self.model
        g = m.generate("Hello", max_new_tokens=12, seed=4, ignore_eos=True, return_details=True)
        self.assertIsInstance(g, gpt.Generation)
        self.assertEqual(str(g), g.text)
        self.assertEqual(g.text, m.generate("Hello", max_new_tokens=12, seed=4, ignore_eos=True))
        self.assertEqual(g.bytes, g.text.encode())
        self.assertEqual(len(g.tokens), 12)
        self.assertEqual(m.detokenize(g.tokens), g.text)
        self.assertEqual((g.stop_reason, g.score, g.logprobs, g.seed, g.index), ("max_tokens", None, None, 4, 0))
        self.assertEqual(m.generate_bytes("Hello", max_new_tokens=12, seed=4, ignore_eos=True,
                                          return_details=True), g)
        full = m.generate("Hello", max_new_tokens=100, ignore_eos=True, return_details=True)
        self.assertEqual(full.stop_reason, "context_full")
        stop = g.text[3:5]
        s = m.generate("Hello", max_new_tokens=12, seed=4, ignore_eos=True, stop=stop, return_details=True)
        self.assertEqual((s.stop_reason, s.text), ("stop_string", g.text[:g.text.index(stop)]))
        if self.demo:
            e = self.demo.generate("", max_new_tokens=300, seed=1, return_details=True)
            if e.stop_reason == "eos":
                self.assertEqual(e.tokens[-1], self.demo.eot)  # the EOS id is in tokens, not in the text

    def test_logprobs(self):
        """Each token's log-probability and its alternatives agree with each
        other and with Model.score."""
        m = self.model
        prompt = "Once upon a time"
        for kw in (dict(seed=3), dict(do_sample=False), dict(seed=9, temperature=1.5, top_k=0, top_p=1.0, min_p=0)):
            g = m.generate(prompt, max_new_tokens=15, ignore_eos=True, logprobs=5, **kw)
            self.assertIsInstance(g, gpt.Generation)  # logprobs asks for the details
            self.assertEqual(len(g.logprobs), len(g.tokens))
            scored = m.score(m.tokenize(prompt) + g.tokens)[-len(g.tokens):]
            for e, want in zip(g.logprobs, scored):
                self.assertIsInstance(e, gpt.TokenLogprob)
                self.assertEqual(e.bytes, m.detokenize_bytes([e.token]))
                self.assertEqual(e.text, e.bytes.decode("utf-8", "replace"))
                self.assertLessEqual(e.logprob, 0.0)
                self.assertAlmostEqual(e.logprob, want, delta=1e-4)
                self.assertEqual(len(e.top), 5)
                lps = [lp for _, lp in e.top]
                self.assertEqual(lps, sorted(lps, reverse=True))
                self.assertGreaterEqual(lps[0], e.logprob)
                self.assertLessEqual(sum(math.exp(lp) for lp in lps), 1.0 + 1e-5)
                for t, lp in e.top:
                    if t == e.token:
                        self.assertAlmostEqual(lp, e.logprob, delta=1e-6)
                if kw.get("do_sample") is False:
                    self.assertEqual(e.top[0][0], e.token)
        g = m.generate(prompt, max_new_tokens=5, logprobs=0, ignore_eos=True)
        self.assertEqual([e.top for e in g.logprobs], [[]] * 5)
        pieces = list(m.stream(prompt, max_new_tokens=5, logprobs=2, ignore_eos=True, seed=1))
        self.assertTrue(all(isinstance(p, gpt.Piece) and len(p.logprobs) == len(p.tokens) for p in pieces))
        self.assertEqual([p.logprobs[0] for p in pieces if p.tokens],
                         m.generate(prompt, max_new_tokens=5, logprobs=2, ignore_eos=True, seed=1).logprobs)

    def test_echo(self):
        m = self.model
        kw = dict(max_new_tokens=10, seed=2, ignore_eos=True)
        text = m.generate("Hello", **kw)
        self.assertEqual(m.generate("Hello", echo=True, **kw), "Hello" + text)
        self.assertEqual(m.generate_bytes("Hello", echo=True, **kw), b"Hello" + text.encode())
        self.assertEqual("".join(m.stream("Hello", echo=True, **kw)), "Hello" + text)
        self.assertEqual(next(m.stream("Hello", echo=True, **kw)), "Hello")
        self.assertEqual([t[:5] for t in m.generate("Hello", echo=True, n=2, **kw)], ["Hello"] * 2)
        g = m.generate("Hello", echo=True, return_details=True, **kw)
        self.assertEqual((g.text, g.tokens), ("Hello" + text, m.generate("Hello", return_details=True, **kw).tokens))

    # -- beam search -------------------------------------------------------------------

    def test_beam_search(self):
        m = self.model
        kw = dict(num_beams=4, max_new_tokens=10, ignore_eos=True)
        hyps = m.generate("Hello", n=4, return_details=True, logprobs=3, **kw)
        self.assertEqual([g.index for g in hyps], [0, 1, 2, 3])
        scores = [g.score for g in hyps]
        self.assertEqual(scores, sorted(scores, reverse=True))
        self.assertEqual(len({tuple(g.tokens) for g in hyps}), 4)
        for g in hyps:
            # no penalties: the score is the mean log-probability (length_penalty 1)
            self.assertAlmostEqual(g.score, sum(e.logprob for e in g.logprobs) / len(g.tokens), delta=1e-4)
            self.assertEqual(m.detokenize(g.tokens), g.text)
            self.assertEqual(len(g.tokens), 10)
        self.assertEqual(m.generate("Hello", **kw), hyps[0].text)  # n not given: the best
        self.assertEqual(m.generate("Hello", n=2, **kw), [hyps[0].text, hyps[1].text])
        self.assertEqual(list(m.stream("Hello", **kw)), [hyps[0].text])  # one piece, at the end
        # stepped one library step per call: the prompt, then a step per new id, no more
        with Spy("gpt_generator_step", "gpt_generator_next") as spy:
            m.generate("Hello", n=4, **kw)
        self.assertLessEqual(spy.count("gpt_generator_step"), 1 + 10 + 1)
        self.assertEqual(spy.count("gpt_generator_next"), 5)  # 4 hypotheses and the end
        self.assertEqual(m.generate("Hello", do_sample=False, seed=99, **kw), hyps[0].text)  # no randomness
        for es in (True, False, "never"):
            self.assertIsInstance(m.generate("Hello", early_stopping=es, **kw), str)

    @unittest.skipUnless(os.path.isdir(os.path.join(ROOT, "tests", "data", "golden")), "no goldens")
    def test_hf_goldens(self):
        """Every case of the reference goldens (Hugging Face's rules in
        float64), written as Hugging Face keywords: the same ids, and the
        log-probabilities, alternatives and beam scores within 1e-4."""
        import glob
        files = sorted(glob.glob(os.path.join(ROOT, "tests", "data", "golden", "*.generate")))
        if not files:
            self.skipTest("no *.generate goldens")
        n_cases = 0
        for path in files:
            head, cases = parse_goldens(path)
            model_path = os.path.join(ROOT, head["model"].split()[-1])
            if not os.path.exists(model_path):
                continue
            with gpt.Model(model_path, threads=1, kv="f32") as m, m.session(n_seq=8) as s:
                for case in cases:
                    n_cases += 1
                    what = "%s %s" % (os.path.basename(path), case["name"])
                    kw = hf_keywords(case["params"])
                    s.clear()
                    got = s.generate(case["prompt"], logprobs=int(head["topn"]), **kw)
                    if n_cases % 4 == 1 and "text" in case and m.tokenize(case["text"]) == case["prompt"]:
                        # Model.generate, from the text, gives the same (every fourth case: time)
                        self.assertEqual(m.generate(case["text"], logprobs=int(head["topn"]), **kw), got, what)
                    if not isinstance(got, list):
                        got = [got]
                    self.assertEqual(len(got), len(case["seqs"]), what)
                    for g, (i, want) in zip(got, sorted(case["seqs"].items())):
                        self.assertEqual(g.tokens, want["ids"], what)
                        self.assertEqual(g.stop_reason == "eos", want["eos"], what)
                        if kw.get("num_beams", 1) > 1:
                            self.assertAlmostEqual(g.score, want["score"], delta=1e-4, msg=what)
                        for j, e in enumerate(g.logprobs):
                            self.assertAlmostEqual(e.logprob, want["logprob"][j], delta=1e-4, msg=what)
                            top = want["top"][j]
                            self.assertEqual(len(e.top), len(top))
                            for k, ((t, lp), (wt, wlp)) in enumerate(zip(e.top, top)):
                                self.assertAlmostEqual(lp, wlp, delta=1e-4, msg=what)
                                near = [x for x, y in top if abs(y - wlp) < 1e-4]  # near-ties may swap
                                self.assertIn(t, near, what)
        self.assertGreater(n_cases, 20)
