"""Runs the tests of the Python binding (tests/python/test_*.py), printing
one PASS/FAIL/SKIP line per test for tests/run.sh. Run by
tests/test_python.sh from the repository root, which sets GPT_LIBRARY to
the library of the build under test; environment: GPT (the gpt command,
default build/gpt), BUILD (default build).

    python3 tests/python/run.py                  # every test
    python3 tests/python/run.py session stream   # the tests whose names contain a word
"""

import glob
import importlib
import os
import shutil
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import helpers  # noqa: E402


def main(argv):
    loader = unittest.defaultTestLoader
    suite = unittest.TestSuite()
    for path in sorted(glob.glob(os.path.join(HERE, "test_*.py"))):
        suite.addTests(loader.loadTestsFromModule(importlib.import_module(os.path.basename(path)[:-3])))
    if argv:
        def flat(s):
            for t in s:
                if isinstance(t, unittest.TestSuite):
                    yield from flat(t)
                else:
                    yield t
        suite = unittest.TestSuite(t for t in flat(suite) if any(a in t.id() for a in argv))
    runner = unittest.TextTestRunner(stream=sys.stderr, resultclass=helpers.Result, verbosity=0)
    try:
        result = runner.run(suite)
    finally:
        shutil.rmtree(helpers.TMP, ignore_errors=True)
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
