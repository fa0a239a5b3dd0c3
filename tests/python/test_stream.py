"""Streaming without threads, Ctrl-C, the GIL, and many Python threads.

stream() steps the library's generator (gpt_generator_next) on the
consumer's thread. These tests prove it without timing: a spy on the
library's functions counts the steps and records the threads that make
them, the binding's count of live contexts and generators shows that every
stream frees what it took, and Ctrl-C comes from another thread at a chosen
step (helpers.CtrlC)."""

import sys
import threading
import time
import _thread

from helpers import HANG_GUARD, Case, CtrlC, Spy, gpt, random_model


def python_threads():
    """Every Python-level thread: threading's, and the count of those
    started with _thread."""
    return {t.ident for t in threading.enumerate()}, _thread._count()


def no_new_thread(before):
    """No thread exists now that did not before (threads of earlier tests
    may still be ending: none may start)."""
    idents, count = python_threads()
    return idents <= before[0] and count <= before[1]


class Stream(Case):
    @classmethod
    def setUpClass(cls):
        cls.path = random_model()
        cls.model = gpt.Model(cls.path, threads=1)

    @classmethod
    def tearDownClass(cls):
        cls.model.close()

    def test_stream(self):
        m = self.model
        pieces = list(m.stream("Hello", max_new_tokens=20, seed=5))
        self.assertGreater(len(pieces), 1)
        self.assertTrue(all(isinstance(p, str) and p for p in pieces))
        self.assertEqual("".join(pieces), m.generate("Hello", max_new_tokens=20, seed=5))
        raw = list(m.stream_bytes("Hello", max_new_tokens=20, seed=5))
        self.assertTrue(all(isinstance(p, bytes) and p for p in raw))
        self.assertEqual(b"".join(raw), m.generate_bytes("Hello", max_new_tokens=20, seed=5))

    def test_stream_starts_no_thread(self):
        """A stream runs on the consumer's thread: no thread exists during
        it that did not exist before, and every library step is made by the
        consumer's own thread."""
        before = python_threads()
        with Spy("gpt_generator_next") as spy:
            g = self.model.stream("Hello", max_new_tokens=40, ignore_eos=True, seed=1)
            next(g)
            self.assertTrue(no_new_thread(before))
            rest = list(g)
            self.assertGreater(len(rest), 0)
            self.model.generate("Hello", max_new_tokens=10, seed=1)
        self.assertTrue(no_new_thread(before))
        self.assertEqual(spy.threads["gpt_generator_next"], {threading.get_ident()})
        self.assertFalse(hasattr(gpt, "_Run"))  # the 0.2 worker-thread machinery is gone

    def test_one_step_per_next(self):
        """Each next() of a detailed stream is exactly one
        gpt_generator_next call, and the first piece comes after one step,
        whatever the length asked for (the stream is incremental)."""
        with Spy("gpt_generator_next") as spy:
            g = self.model.stream("Hello", max_new_tokens=10 ** 6, ignore_eos=True, slide=True, return_details=True)
            self.assertEqual(spy.count("gpt_generator_next"), 0)  # nothing before the first next()
            for k in range(1, 6):
                piece = next(g)
                self.assertIsInstance(piece, gpt.Piece)
                self.assertEqual(len(piece.tokens), 1)
                self.assertEqual(spy.count("gpt_generator_next"), k)
            g.close()
            self.assertEqual(spy.count("gpt_generator_next"), 5)

    def test_stream_not_iterated_starts_nothing(self):
        with Spy("gpt_context_new", "gpt_generator_new") as spy:
            g = self.model.stream("Hello", max_new_tokens=100000)
            del g
        self.assertEqual(spy.count("gpt_context_new") + spy.count("gpt_generator_new"), 0)

    def test_stream_break_frees(self):
        """Leaving a stream early frees its generator and context at once
        (tearDown checks the counts too)."""
        base = gpt._live_counts()
        n = 0
        for _ in self.model.stream("Hello", max_new_tokens=10 ** 6, ignore_eos=True, slide=True):
            n += 1
            self.assertEqual(gpt._live_counts(), {"contexts": base["contexts"] + 1,
                                                  "generators": base["generators"] + 1})
            if n == 3:
                break
        self.assertEqual(gpt._live_counts(), base)
        g = self.model.stream("Hello", max_new_tokens=10 ** 6, ignore_eos=True, slide=True)
        next(g)
        g.close()
        self.assertEqual(gpt._live_counts(), base)

    def test_stream_keyboard_interrupt(self):
        """Ctrl-C while the library computes a step of a stream raises
        KeyboardInterrupt in the consumer when the step returns, and the
        generation is freed."""
        m = self.model
        got = []
        with CtrlC(at=4) as ctrl_c:
            with self.assertRaises(KeyboardInterrupt):
                for piece in m.stream_bytes("Hello", max_new_tokens=-1, ignore_eos=True, slide=True):
                    got.append(piece)
        self.assertEqual(ctrl_c.steps, 4)  # not one step more
        self.assertGreater(len(got), 0)
        self.assertEqual(gpt._live_counts(), self._live)
        self.assertEqual(m.generate("Hello", max_new_tokens=5, seed=1), m.generate("Hello", max_new_tokens=5, seed=1))

    def test_generate_keyboard_interrupt(self):
        """Ctrl-C during generate() (an unbounded one: only Ctrl-C ends it)
        stops it after the step it arrived in."""
        with CtrlC(at=3) as ctrl_c:
            with self.assertRaises(KeyboardInterrupt):
                self.model.generate("Hello", max_new_tokens=-1, ignore_eos=True, slide=True)
        self.assertEqual(ctrl_c.steps, 3)
        self.assertEqual(gpt._live_counts(), self._live)
        with CtrlC(at=2) as ctrl_c:  # n continuations
            with self.assertRaises(KeyboardInterrupt):
                self.model.generate("Hello", n=3, max_new_tokens=-1, ignore_eos=True, slide=True)
        self.assertEqual(ctrl_c.steps, 2)
        # beam search is stepped a step per call too: Ctrl-C does not wait for its end
        with CtrlC(at=3, fn="gpt_generator_step") as ctrl_c, Spy("gpt_generator_next") as spy:
            with self.assertRaises(KeyboardInterrupt):
                self.model.generate("Hello", num_beams=3, max_new_tokens=40)
        self.assertEqual(ctrl_c.steps, 3)
        self.assertEqual(spy.count("gpt_generator_next"), 0)  # no piece: the search had not ended
        self.assertEqual(gpt._live_counts(), self._live)

    def test_session_keyboard_interrupt(self):
        """Ctrl-C in a session's stream leaves the session consistent: its
        history is intact, it holds the ids of the text received (and
        perhaps of one step more), and it goes on from there."""
        m = self.model
        with m.session() as s:
            s.eval("Once upon a time")
            history = s.tokens
            got = []
            with CtrlC(at=5):
                with self.assertRaises(KeyboardInterrupt):
                    for piece in s.stream_bytes(" there", max_new_tokens=-1, ignore_eos=True):
                        got.append(piece)
            self.assertEqual(s.tokens[:len(history)], history)
            new = s.tokens[len(history) + len(m.tokenize(" there")):]
            # a step appends one id; the one Ctrl-C arrived in may or may not have been taken
            self.assertIn(len(new), (4, 5))
            self.assertTrue(m.detokenize(new).startswith(b"".join(got).decode()))  # invalid UTF-8 is U+FFFD in both
            n = s.n_past
            s.generate("", max_new_tokens=3, ignore_eos=True)
            self.assertEqual(s.n_past, n + 3)
        self.assertEqual(gpt._live_counts(), self._live)

    def test_threads_release_the_gil(self):
        """While the library computes for one thread, another Python thread
        runs. The switch interval is made so long that the calling thread
        never gives up the GIL on its own: a tick of the other thread between
        two reads around a library call can only come from the call
        releasing it. No rate is assumed: calls are repeated until a tick
        lands in one (HANG_GUARD at most)."""
        m = self.model
        ticks = [0]
        done = threading.Event()

        def ticker():
            while not done.is_set():
                ticks[0] += 1
                time.sleep(0.0005)  # gives the GIL back

        ids = m.tokenize("word " * 20) * 6
        old = sys.getswitchinterval()
        t = threading.Thread(target=ticker, daemon=True)
        sys.setswitchinterval(1000.0)
        try:
            t.start()
            deadline = time.monotonic() + HANG_GUARD
            while ticks[0] == 0 and time.monotonic() < deadline:
                time.sleep(0.001)
            released = False
            calls = 0
            while not released and time.monotonic() < deadline:
                before = ticks[0]
                m.score(ids)  # library calls (context, score) and Python, no sleeping
                calls += 1
                released = ticks[0] > before
        finally:
            sys.setswitchinterval(old)
            done.set()
            t.join(HANG_GUARD)
        self.assertTrue(released, "no other thread ran during %d library calls" % calls)

    def test_four_threads(self):
        """Four threads generating at once give what one thread gives."""
        m = self.model
        prompts = ["Hello", "The", "Once upon a time", "x y z"]
        want = [m.generate(p, max_new_tokens=30, seed=i, ignore_eos=True) for i, p in enumerate(prompts)]
        want_scores = m.score(m.tokenize("Hello world, and more"))
        got, scores, errors = [None] * 4, [None] * 4, []

        def work(i):
            try:
                for _ in range(3):
                    got[i] = m.generate(prompts[i], max_new_tokens=30, seed=i, ignore_eos=True)
                    if got[i] != want[i]:
                        return
                    got[i] = "".join(m.stream(prompts[i], max_new_tokens=30, seed=i, ignore_eos=True))
                scores[i] = m.score(m.tokenize("Hello world, and more"))
            except BaseException as e:  # reported below
                errors.append(e)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(HANG_GUARD)
        self.assertEqual(errors, [])
        self.assertEqual(got, want)
        self.assertEqual(scores, [want_scores] * 4)

    def test_stream_consumed_by_another_thread(self):
        """A stream made in one thread can be consumed in another."""
        m = self.model
        g = m.stream("Hello", max_new_tokens=20, seed=5)
        out = []
        t = threading.Thread(target=lambda: out.append("".join(g)))
        t.start()
        t.join(HANG_GUARD)
        self.assertEqual(out, [m.generate("Hello", max_new_tokens=20, seed=5)])

    def test_context_manager_and_close(self):
        with gpt.Model(self.path, threads=1) as m:
            self.assertTrue(m.generate("Hi", max_new_tokens=3))
        for call in (lambda: m.generate("Hi"), lambda: m.tokenize("Hi"), lambda: m.score([1, 2]),
                     lambda: list(m.stream("Hi")), lambda: m.session()):
            with self.assertRaises(gpt.GPTError) as cm:
                call()
            self.assertIn("closed", cm.exception.message)
        m.close()  # twice is fine

    def test_close_while_streaming(self):
        m = gpt.Model(self.path, threads=1)
        g = m.stream("Hello", max_new_tokens=300, ignore_eos=True, slide=True, seed=2)
        first = next(g)
        m.close()  # the running generation keeps the model until it ends
        self.assertIsNotNone(m._ptr)
        rest = "".join(g)
        self.assertIsNone(m._ptr)  # freed with the stream's context
        with gpt.Model(self.path, threads=1) as m2:
            self.assertEqual(first + rest, m2.generate("Hello", max_new_tokens=300, ignore_eos=True, slide=True,
                                                       seed=2))
