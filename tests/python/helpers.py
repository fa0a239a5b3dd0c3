"""Shared by the tests of the Python binding (tests/python/test_*.py): paths,
the gpt command, test models, a spy on the library's functions, and the
runner that prints tests/run.sh's PASS/FAIL/SKIP lines."""

import os
import shlex
import subprocess
import sys
import signal
import threading
import unittest
import _thread

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "bindings", "python"))
import gpt  # noqa: E402

BUILD = os.environ.get("BUILD", "build")
GPT_CMD = shlex.split(os.environ.get("GPT", os.path.join(BUILD, "gpt")))
DEMO = os.path.join(ROOT, "models", "demo.bin")
TMP = os.path.abspath(os.path.join(BUILD, "tmp_python.%d" % os.getpid()))  # one folder per run: runs may overlap
os.makedirs(TMP, exist_ok=True)

# Generous bounds that only keep a broken binding from hanging the suite;
# no assertion depends on how fast anything runs.
HANG_GUARD = 120.0


def run_gpt(*args, input=None):
    return subprocess.run(GPT_CMD + list(args), input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          check=True).stdout


def random_model(shape="2,2,32,64", vocab=512, seed=3):
    path = os.path.join(TMP, "random-%s-%d-%d.bin" % (shape.replace(",", "x"), vocab, seed))
    if not os.path.exists(path):
        run_gpt("convert", "--random", shape, "--n-vocab", str(vocab), "--seed", str(seed), "-o", path, "--force")
    return path


class Spy:
    """Replaces functions of the loaded library by wrappers that record each
    call's arguments (the binding looks them up on gpt._lib at each call).
    hooks: {name: f(real, *args)} to run instead of the plain call."""

    def __init__(self, *names, hooks=None):
        self.names = list(names) + [n for n in (hooks or {}) if n not in names]
        self.hooks = hooks or {}
        self.calls = {n: [] for n in self.names}
        self.threads = {n: set() for n in self.names}
        self._real = {}

    def __enter__(self):
        lib = gpt._load()
        for name in self.names:
            real = getattr(lib, name)
            self._real[name] = real
            setattr(lib, name, self._wrap(name, real))
        return self

    def _wrap(self, name, real):
        hook = self.hooks.get(name)

        def wrapper(*args):
            self.calls[name].append(args)
            self.threads[name].add(threading.get_ident())
            return hook(real, *args) if hook else real(*args)
        return wrapper

    def __exit__(self, *exc):
        for name, real in self._real.items():
            setattr(gpt._lib, name, real)
        return False

    def count(self, name):
        return len(self.calls[name])


class CtrlC:
    """A Ctrl-C that arrives while the library computes the at-th step of a
    generation (the at-th call of fn: gpt_generator_next, or
    gpt_generator_step for beam search), sent by another thread with
    _thread.interrupt_main(), as the terminal's SIGINT would be.

    Deterministic: the step waits (in Python, HANG_GUARD at most) until the
    other thread has sent it, so the KeyboardInterrupt is raised right when
    that step returns to Python, wherever the machine's load puts the
    threads. A binding that swallowed it would go on stepping: after
    `give_up` more steps the spy raises RuntimeError instead of hanging."""

    def __init__(self, at=3, give_up=200, fn="gpt_generator_next"):
        self.at = at
        self.give_up = give_up
        self.steps = 0
        self.ready = threading.Event()
        self.sent = threading.Event()
        self.cancelled = False
        self.thread = threading.Thread(target=self._send, daemon=True)
        self.spy = Spy(hooks={fn: self._step})

    def _send(self):
        if self.ready.wait(HANG_GUARD) and not self.cancelled:
            _thread.interrupt_main()
            self.sent.set()

    def _step(self, real, *args):
        self.steps += 1
        if self.steps > self.at + self.give_up:
            raise RuntimeError("Ctrl-C did not stop the generation (%d steps after it)" % self.give_up)
        if self.steps != self.at:
            return real(*args)
        self.ready.set()
        rc = real(*args)  # the interrupt arrives during or right after this call
        self.sent.wait(HANG_GUARD)
        return rc

    def __enter__(self):
        # A process started in the background by a shell without job control
        # (a CI runner, `sh -c '... &'`) begins with SIGINT ignored, and then
        # interrupt_main() does nothing: install Python's own handler for the
        # test, as an interactive Python has it.
        self.old_handler = signal.signal(signal.SIGINT, signal.default_int_handler)
        self.spy.__enter__()
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.spy.__exit__(*exc)
        if not self.ready.is_set():  # the generation ended before step `at`: no Ctrl-C
            self.cancelled = True
            self.ready.set()
        self.thread.join(HANG_GUARD)
        # a KeyboardInterrupt still pending (the test failed before it came)
        # must not fire into a later test
        try:
            for _ in range(3):
                threading.Event().wait(0.001)
        except KeyboardInterrupt:
            pass
        signal.signal(signal.SIGINT, self.old_handler)
        return False


class Case(unittest.TestCase):
    """A test that checks that it leaves no library context or generator
    allocated (every call, stream and session frees what it took)."""

    def setUp(self):
        self._live = gpt._live_counts() if gpt._lib is not None else {"contexts": 0, "generators": 0}

    def tearDown(self):
        import gc
        if gpt._live_counts() != self._live:
            gc.collect()  # a stream left suspended by a failing assertion
        self.assertEqual(gpt._live_counts(), self._live, "the test left library objects allocated")


def have_numpy():
    return gpt._np is not None


class Result(unittest.TextTestResult):
    """Prints tests/run.sh's PASS/FAIL/SKIP lines."""

    def _name(self, test):
        return "python_" + test.id().rsplit(".", 1)[-1][len("test_"):]

    @staticmethod
    def _why(err):
        etype, value, _ = err
        return ("%s: %s" % (etype.__name__, value)).replace("\n", " | ")

    def addSuccess(self, test):
        super().addSuccess(test)
        print("PASS %s" % self._name(test), flush=True)

    def addFailure(self, test, err):
        super().addFailure(test, err)
        print("FAIL %s: %s" % (self._name(test), self._why(err)), flush=True)

    def addError(self, test, err):
        super().addError(test, err)
        print("FAIL %s: %s" % (self._name(test), self._why(err)), flush=True)

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        print("SKIP %s: %s" % (self._name(test), reason), flush=True)
