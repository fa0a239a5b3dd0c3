#!/bin/sh
# test_python.sh - the Python binding (bindings/python/gpt.py): runs
# tests/python/run.py (every tests/python/test_*.py) against the shared
# library of the build under test ($BUILD/libgpt.so), which prints one
# PASS/FAIL/SKIP line per test. Run from the repository root; environment:
# GPT, BUILD, PYTHON, TEST_WRAPPER (see tests/run.sh), and PYTHON_NUMPY: an
# interpreter with numpy for the tests of numpy results when PYTHON has none
# (default: /usr/bin/python3 when it has numpy).
BUILD=${BUILD:-build}
PYTHON=${PYTHON:-python3}
name=python_binding

if [ -n "${TEST_WRAPPER:-}" ]; then
    echo "SKIP $name: the library in $BUILD is built for another machine (runs under $TEST_WRAPPER); Python tests run on native builds"
    exit 0
fi
case $(uname -s 2>/dev/null) in
    MINGW*|MSYS*|CYGWIN*) lib=$BUILD/gpt.dll ;;
    Darwin) lib=$BUILD/libgpt.dylib ;;
    *) lib=$BUILD/libgpt.so ;;
esac
if [ ! -f "$lib" ]; then
    echo "SKIP $name: no shared library $lib in this build"
    exit 0
fi
if ! command -v "$PYTHON" >/dev/null 2>&1; then
    echo "SKIP $name: no Python interpreter ($PYTHON)"
    exit 0
fi
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 6))' 2>/dev/null; then
    echo "SKIP $name: $PYTHON is older than Python 3.6"
    exit 0
fi

GPT_LIBRARY=$lib
export GPT_LIBRARY
# A library built with a sanitizer (make test-sanitize, test-tsan) can only
# be loaded into an interpreter started with the sanitizer runtime, where
# Python's own signal handling and threads trip it (Ctrl-C tests stall); the
# binding is tested against the normal build in make test.
if command -v readelf >/dev/null 2>&1 && readelf -d "$lib" 2>/dev/null | grep -q 'libasan\|libtsan'; then
    echo "SKIP $name: $lib is built with a sanitizer; the binding is tested against the plain build (make test)"
    exit 0
fi
"$PYTHON" tests/python/run.py
rc=$?

# numpy is optional: the tests of numpy results run in PYTHON when it has
# numpy (and report SKIP otherwise); then in an interpreter that has it.
has_numpy() { "$1" -c 'import numpy' >/dev/null 2>&1; }
if ! has_numpy "$PYTHON"; then
    other=${PYTHON_NUMPY:-/usr/bin/python3}
    if command -v "$other" >/dev/null 2>&1 && has_numpy "$other"; then
        out=$("$other" tests/python/run.py numpy 2>&1) || rc=1
        echo "$out" | sed 's/^\(PASS\|FAIL\|SKIP\) python_/\1 python_with_numpy_/'
    fi
fi
exit $rc
