"""Sessions: a context kept across calls. eval/logits/rewind/fork, batches
over several sequences, generation that continues what a sequence holds
without evaluating it again (proved with a spy on the library's functions),
n continuations and beam search in a session, the sequence view, errors and
lifetimes; logits as lists and, with numpy, as arrays."""

import math
import os

from helpers import DEMO, Case, Spy, gpt, have_numpy, random_model

MUTATING = ("gpt_eval_batch", "gpt_seq_rewind", "gpt_seq_clear", "gpt_seq_fork", "gpt_generator_new",
            "gpt_generator_new_ids")


def log_softmax(logits):
    mx = max(logits)
    lse = mx + math.log(sum(math.exp(x - mx) for x in logits))
    return [x - lse for x in logits]


class Sessions(Case):
    @classmethod
    def setUpClass(cls):
        cls.path = random_model()
        cls.model = gpt.Model(cls.path, threads=1)
        cls.V = cls.model.config["n_vocab"]

    @classmethod
    def tearDownClass(cls):
        cls.model.close()

    def setUp(self):
        super().setUp()
        self._np = gpt._np

    def tearDown(self):
        gpt._np = self._np
        super().tearDown()

    def fresh_logits(self, ids):
        with self.model.session() as s:
            s.eval(ids)
            return list(s.logits)

    # -- eval, logits, rewind ----------------------------------------------------------

    def test_session_eval_and_logits(self):
        m = self.model
        ids = m.tokenize("Hello world, and more words")
        with m.session() as s:
            self.assertEqual((s.n_past, s.tokens, s.logits), (0, [], None))
            s.eval(ids[:3])
            s.eval(ids[3:])  # appends
            self.assertEqual(s.n_past, len(ids))
            self.assertEqual(s.tokens, ids)
            logits = list(s.logits)
            self.assertEqual(len(logits), self.V)
            # the same as one call, bitwise (the library's batch invariance)
            self.assertEqual(logits, self.fresh_logits(ids))
            # and what Model.score says of the next token
            nxt = max(range(self.V), key=lambda i: logits[i])
            self.assertAlmostEqual(log_softmax(logits)[nxt], m.score(ids + [nxt])[-1], delta=1e-4)
            s.eval("text is tokenized")
            self.assertEqual(s.tokens, ids + m.tokenize("text is tokenized"))
            s.eval([])  # nothing: the logits stay
            self.assertIsNotNone(s.logits)

    def test_session_logits_without_numpy(self):
        gpt._np = None
        with self.model.session() as s:
            s.eval([1, 2, 3])
            logits = s.logits
            self.assertIsInstance(logits, list)
            self.assertTrue(all(isinstance(x, float) for x in logits))
            self.assertEqual(len(logits), self.V)

    def test_session_logits_numpy(self):
        if not have_numpy():
            self.skipTest("numpy is not installed in this Python")
        np = gpt._np
        with self.model.session() as s:
            s.eval([1, 2, 3])
            a = s.logits
            self.assertIsInstance(a, np.ndarray)
            self.assertEqual((a.dtype, a.shape), (np.float32, (self.V,)))
            gpt._np = None
            self.assertEqual(a.tolist(), s.logits)  # the same floats
            gpt._np = np
            a[0] = 1e9  # a copy: the session's logits do not change
            self.assertNotEqual(s.logits[0], 1e9)
            s.eval(np.array([4, 5], dtype=np.int64))  # numpy ids are ids
            self.assertEqual(s.tokens, [1, 2, 3, 4, 5])

    def test_session_rewind(self):
        m = self.model
        ids = m.tokenize("Hello world, and more words")
        with m.session() as s:
            s.eval(ids)
            want = list(s.logits)
            s.rewind(3)
            self.assertEqual((s.n_past, s.tokens, s.logits), (3, ids[:3], None))
            s.eval(ids[3:])
            self.assertEqual(list(s.logits), want)
            for bad in (-1, len(ids) + 1):
                with self.assertRaises(ValueError) as cm:
                    s.rewind(bad)
                self.assertIn("n_keep", str(cm.exception))
            self.assertEqual(s.n_past, len(ids))
            s.rewind(0)
            self.assertEqual(s.n_past, 0)

    # -- several sequences ------------------------------------------------------------------

    def test_session_fork_and_batch(self):
        """A fork shares its source's cache; a batch over several sequences
        gives each the logits it would have alone (bitwise)."""
        m = self.model
        prompt = m.tokenize("The same prompt for all")
        a, b = m.tokenize(" goes left"), m.tokenize(" goes right, far")
        with m.session(n_seq=3) as s:
            s.eval(prompt)
            free = s.kv_free
            s.fork(0, 1)
            s.fork(0, 2)
            self.assertEqual(s.kv_free, free)  # shared, not copied
            self.assertEqual(s.sequence(1).tokens, prompt)
            self.assertEqual(list(s.sequence(2).logits), list(s.logits))
            s.eval_batch({0: a, 1: b})
            s.eval_batch([(2, a), (2, b)])  # a sequence twice: in order
            self.assertEqual(s.tokens, prompt + a)
            self.assertEqual(s.sequence(1).tokens, prompt + b)
            self.assertEqual(s.sequence(2).tokens, prompt + a + b)
            self.assertEqual(list(s.logits), self.fresh_logits(prompt + a))
            self.assertEqual(list(s.sequence(1).logits), self.fresh_logits(prompt + b))
            self.assertEqual(list(s.sequence(2).logits), self.fresh_logits(prompt + a + b))
            # a batch that fails appends nothing to any sequence
            before = [s.sequence(i).n_past for i in range(3)]
            with self.assertRaises(gpt.GPTValueError) as cm:
                s.eval_batch({0: [1, 2], 1: [3, self.V]})
            self.assertEqual(cm.exception.status_name, "GPT_ERR_TOKEN_RANGE")
            with self.assertRaises(gpt.GPTError) as cm:
                s.eval_batch({0: [1] * s.n_ctx, 1: [2]})
            self.assertEqual(cm.exception.status_name, "GPT_ERR_CONTEXT_FULL")
            self.assertEqual([s.sequence(i).n_past for i in range(3)], before)
            with self.assertRaises(ValueError):
                s.fork(1, 1)
            s.clear(1)
            self.assertEqual(s.sequence(1).n_past, 0)
            s.clear()
            self.assertEqual([s.sequence(i).n_past for i in range(3)], [0, 0, 0])

    # -- generation that continues ---------------------------------------------------------------

    def test_session_generate_matches_model(self):
        m = self.model
        kw = dict(max_new_tokens=15, seed=6, ignore_eos=True)
        with m.session() as s:
            self.assertEqual(s.generate("Hello", **kw), m.generate("Hello", **kw))
            self.assertEqual(s.tokens, m.tokenize("Hello") + m.generate("Hello", return_details=True, **kw).tokens)
            with Spy("gpt_generator_new_ids") as spy:
                s.clear()
                self.assertEqual(s.generate(m.tokenize("Hello"), **kw), m.generate("Hello", **kw))  # ids
            self.assertEqual(spy.count("gpt_generator_new_ids"), 1)

    def test_session_multi_turn_does_not_evaluate_its_history_again(self):
        """Each turn hands the library only its new prompt: the spy sees one
        gpt_generator_new_ids with exactly the new ids, and nothing that
        clears, rewinds or evaluates the sequence; the sequence grows by
        exactly the new prompt and the new tokens; and the text is what a
        fresh session holding the whole history would generate."""
        m = self.model
        turns = [" Q: why?", " A: because.", " Q: and then?"]
        kw = dict(max_new_tokens=6, do_sample=False, ignore_eos=True)
        with m.session() as s:
            s.generate("Once upon a time", **kw)
            for turn in turns:
                before, n_before = s.tokens, s.n_past
                new = m.tokenize(turn)
                with Spy(*MUTATING) as spy:
                    g = s.generate(turn, return_details=True, **kw)
                self.assertEqual(spy.count("gpt_generator_new_ids"), 1)
                args = spy.calls["gpt_generator_new_ids"][0]
                self.assertEqual(args[2], len(new))  # n_ids: the new prompt only
                self.assertEqual(list(args[1][:len(new)]), new)
                for name in MUTATING:
                    if name != "gpt_generator_new_ids":
                        self.assertEqual(spy.count(name), 0, name)
                self.assertEqual(s.n_past, n_before + len(new) + len(g.tokens))
                self.assertEqual(s.tokens, before + new + g.tokens)
                with m.session() as fresh:
                    fresh.eval(before + new)
                    self.assertEqual(fresh.generate("", **kw), g.text)

    def test_session_stream_continues(self):
        m = self.model
        with m.session() as s:
            s.eval("Once upon")
            n0 = s.n_past
            got = []
            for piece in s.stream_bytes(" a time", max_new_tokens=-1, ignore_eos=True, seed=1):
                got.append(piece)
                if len(got) == 4:
                    break
            new = s.tokens[n0 + len(m.tokenize(" a time")):]
            self.assertTrue(m.detokenize(new).startswith(b"".join(got).decode()))  # invalid UTF-8 is U+FFFD in both
            # a suspended stream is ended by the next call that changes the session
            g = s.stream("", max_new_tokens=-1, ignore_eos=True, seed=2)
            next(g)
            n = s.n_past
            self.assertEqual(gpt._live_counts()["generators"], self._live["generators"] + 1)
            s.eval([5])
            self.assertEqual(gpt._live_counts()["generators"], self._live["generators"])
            self.assertEqual(s.n_past, n + 1)
            with self.assertRaises(gpt.GPTError) as cm:
                next(g)
            self.assertEqual(cm.exception.status_name, "GPT_ERR_CANCELLED")
            self.assertIn("eval()", cm.exception.message)

    def test_session_n_continuations(self):
        """n continuations use sequences seq, seq+1, ...: each then holds
        the history and its continuation, as Model.generate(n=) samples
        them."""
        m = self.model
        kw = dict(max_new_tokens=10, seed=4, ignore_eos=True)
        want = m.generate("Hello", n=3, return_details=True, **kw)
        with m.session(n_seq=4) as s:
            got = s.generate("Hello", n=3, return_details=True, **kw)
            self.assertEqual(got, want)
            for k in range(3):
                self.assertEqual(s.sequence(k).tokens, m.tokenize("Hello") + got[k].tokens)
            self.assertEqual(s.sequence(3).n_past, 0)
            s.clear()
            got = s.generate("Hello", n=3, seqs=[3, 1, 0], return_details=True, **kw)
            self.assertEqual(got, want)
            self.assertEqual(s.sequence(3).tokens, m.tokenize("Hello") + got[0].tokens)
            self.assertEqual(s.sequence(2).n_past, 0)
            # continuing one of them
            s.sequence(1).generate(" and", max_new_tokens=3, ignore_eos=True)
            self.assertEqual(s.sequence(1).n_past, len(m.tokenize("Hello")) + 10 + len(m.tokenize(" and")) + 3)
            for bad in (dict(n=3, seq=2), dict(n=2, seqs=[0]), dict(n=2, seqs=[1, 1]), dict(seq=4),
                        dict(n=2, seq=1, seqs=[0, 1])):
                with self.assertRaises(ValueError, msg=repr(bad)):
                    s.generate("x", max_new_tokens=2, **bad)

    def test_session_beam_search(self):
        """After beam search, sequence seqs[k] holds the history and
        hypothesis k, with the logits after it (bitwise those of a fresh
        evaluation)."""
        m = self.model
        kw = dict(num_beams=4, max_new_tokens=8, ignore_eos=True)
        want = m.generate("Hello", n=3, return_details=True, **kw)
        with m.session(n_seq=4) as s:
            s.eval("Well.")
            history = s.tokens
            got = s.generate(" Hello", n=3, return_details=True, **kw)
            prompt = history + m.tokenize(" Hello")
            for k, g in enumerate(got):
                self.assertEqual(s.sequence(k).tokens, prompt + g.tokens)
                self.assertEqual(list(s.sequence(k).logits), self.fresh_logits(prompt + g.tokens))
            s.clear()
            self.assertEqual(s.generate("Hello", n=3, return_details=True, **kw), want)
        with m.session(n_seq=2) as s:
            with self.assertRaises(ValueError):  # 4 beams need 4 sequences
                s.generate("Hello", **kw)

    def test_session_demo_eos(self):
        """A sequence keeps what was generated, not a final <|endoftext|>."""
        if not os.path.exists(DEMO):
            self.skipTest("models/demo.bin does not exist yet")
        with gpt.Model(DEMO, threads=1) as m, m.session() as s:
            g = s.generate("LAWYER, n.", max_new_tokens=20, do_sample=False, return_details=True)
            self.assertEqual(g.stop_reason, "eos")
            self.assertEqual(s.tokens, m.tokenize("LAWYER, n.") + g.tokens[:-1])

    # -- errors and lifetimes -----------------------------------------------------------------

    def test_session_context_full(self):
        m = self.model
        with m.session() as s:
            s.eval([1] * s.n_ctx)
            with self.assertRaises(gpt.GPTError) as cm:
                s.generate("", max_new_tokens=3)
            self.assertEqual(cm.exception.status_name, "GPT_ERR_CONTEXT_FULL")
            self.assertIn("rewind", cm.exception.message)
            with self.assertRaises(gpt.GPTError) as cm:
                s.eval([1])
            self.assertEqual(cm.exception.status_name, "GPT_ERR_CONTEXT_FULL")
            self.assertEqual(s.n_past, s.n_ctx)
            s.rewind(s.n_ctx - 5)
            g = s.generate("", max_new_tokens=10, ignore_eos=True, return_details=True)
            self.assertEqual((len(g.tokens), g.stop_reason), (5, "context_full"))
            self.assertEqual(len(s.generate("", max_new_tokens=10, slide=True, ignore_eos=True,
                                            return_details=True).tokens), 10)
        with m.session(n_ctx=16) as s:
            self.assertEqual(s.n_ctx, 16)
            with self.assertRaises(gpt.GPTError):
                s.eval([1] * 17)

    def test_session_wrong_arguments(self):
        m = self.model
        with m.session(n_seq=2) as s:
            for call in (lambda: s.eval(1.5), lambda: s.eval(["a"]), lambda: s.eval([1.0]),
                         lambda: s.rewind("1"), lambda: s.fork(0, "1"), lambda: s.eval([1], seq=1.0),
                         lambda: s.eval_batch([5]), lambda: s.generate("x", seqs="01"),
                         lambda: s.generate(3.5)):
                with self.assertRaises(TypeError):
                    call()
            with self.assertRaises(OverflowError):
                s.fork(0, 2 ** 40)
            for call in (lambda: s.eval([1], seq=2), lambda: s.sequence(-1), lambda: s.fork(0, 2),
                         lambda: s.eval([m.config["n_vocab"]]), lambda: s.clear(5)):
                with self.assertRaises(ValueError):
                    call()
        for kw in ({"n_seq": 0}, {"n_ctx": 10 ** 6}, {"n_ctx": -1}, {"threads": -1}, {"kv": "f8"}):
            with self.assertRaises(ValueError, msg=repr(kw)):
                m.session(**kw)
        with self.assertRaises(TypeError):
            gpt.Session("model")

    def test_session_close_and_model_lifetime(self):
        m = gpt.Model(self.path, threads=1)
        s = m.session()
        s.eval([1, 2, 3])
        m.close()  # the session keeps the model until it is closed
        self.assertIsNotNone(m._ptr)
        s.generate("x", max_new_tokens=3, ignore_eos=True)  # and it goes on working
        self.assertEqual(s.n_past, 3 + len(self.model.tokenize("x")) + 3)
        s.close()
        self.assertIsNone(m._ptr)
        self.assertTrue(s.closed)
        with self.assertRaises(gpt.GPTError) as cm:
            s.eval([1])
        self.assertIn("closed", cm.exception.message)
        s.close()  # twice is fine
        with self.model.session() as s2:
            g = s2.stream("Hello", max_new_tokens=50)
            next(g)
        with self.assertRaises(gpt.GPTError) as cm:  # closing the session ended the stream
            next(g)
        self.assertIn("closed", cm.exception.message)
        del s2
        import gc
        gc.collect()  # a session dropped without close() frees its context

    def test_session_repr_and_view(self):
        with self.model.session(n_seq=2) as s:
            self.assertIn("2 sequences", repr(s))
            v = s.sequence(1)
            v.eval([1, 2])
            self.assertEqual((v.n_past, v.tokens, s.n_past), (2, [1, 2], 0))
            self.assertIsNotNone(v.logits)
            v.rewind(1)
            self.assertEqual(v.tokens, [1])
            self.assertIsInstance(v.generate("", max_new_tokens=2), str)
            self.assertEqual(v.n_past, 3)
            self.assertIsInstance("".join(v.stream("", max_new_tokens=2, ignore_eos=True)), str)
            self.assertEqual(v.n_past, 5)
            v.clear()
            self.assertEqual(v.n_past, 0)
        self.assertIn("closed", repr(s))
