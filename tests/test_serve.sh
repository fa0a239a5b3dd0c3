#!/bin/sh
# test_serve.sh - `gpt serve` end to end over loopback (tests/server/test_serve.py):
# every endpoint, OpenAI's request fields, determinism, HTTP details, and
# faults while it serves (garbage, oversize heads and bodies, one byte a
# second, 200 idle connections, disconnects mid-stream, a full queue, too
# many connections, keys), bounded memory, and a clean SIGTERM.
# Environment: GPT, BUILD, PYTHON (tests/run.sh).
GPT=${GPT:-build/gpt}
BUILD=${BUILD:-build}
PYTHON=${PYTHON:-python3}
name=serve

if ! command -v "$PYTHON" >/dev/null 2>&1 || ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 6))' 2>/dev/null; then
    if [ -n "${GPT_REQUIRE_TOOLS:-}" ]; then echo "FAIL $name: no Python 3.6 or later ($PYTHON)"; exit 1; fi
    echo "SKIP $name: no Python 3.6 or later ($PYTHON) to drive the server"
    exit 0
fi
GPT="$GPT" BUILD="$BUILD" exec timeout 300 "$PYTHON" tests/server/test_serve.py
