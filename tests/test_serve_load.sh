#!/bin/sh
# test_serve_load.sh - the load test of `gpt serve` (tests/server/load.py): 64
# completions (streamed and not, mixed prompts, lengths, seeds, n, stop
# strings, logprobs) one at a time, then from 16 concurrent clients into 8
# slots: no errors, every text identical to the same request run alone, and
# the aggregate tokens/s of both runs (printed; speed is not asserted).
# SERVE_LOAD_REQUESTS changes the count (the sanitizer runs use 32).
# Environment: GPT, BUILD, PYTHON (tests/run.sh).
GPT=${GPT:-build/gpt}
BUILD=${BUILD:-build}
PYTHON=${PYTHON:-python3}
name=serve_load

if ! command -v "$PYTHON" >/dev/null 2>&1 || ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 6))' 2>/dev/null; then
    if [ -n "${GPT_REQUIRE_TOOLS:-}" ]; then echo "FAIL $name: no Python 3.6 or later ($PYTHON)"; exit 1; fi
    echo "SKIP $name: no Python 3.6 or later ($PYTHON) to drive the server"
    exit 0
fi
GPT="$GPT" BUILD="$BUILD" exec timeout 600 "$PYTHON" tests/server/load.py --requests "${SERVE_LOAD_REQUESTS:-64}" --clients 16 --slots 8
