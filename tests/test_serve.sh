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

T=$BUILD/tmp_serve_cli
rm -rf "$T"; mkdir -p "$T"
# usage CHECK-NAME WORDS ARGS...: exit status 2 and WORDS on stderr
usage() {
    n=$1; words=$2; shift 2
    # shellcheck disable=SC2086
    $GPT serve "$@" >"$T/out" 2>"$T/err" </dev/null; rc=$?
    if [ $rc = 2 ] && grep -q -- "$words" "$T/err"; then echo "PASS $n"
    elif [ $rc = 1 ] && grep -q 'not supported' "$T/err"; then echo "SKIP $n: $(head -n 1 "$T/err")"
    else echo "FAIL $n: gpt serve $*: status $rc: $(head -c 300 "$T/err")"; fi
}
# shellcheck disable=SC2086
if $GPT serve --help >"$T/out" 2>&1 && grep -q 'usage: gpt serve' "$T/out" && grep -q -- '--api-key KEY' "$T/out"; then
    echo "PASS serve_help"
else
    echo "FAIL serve_help: $(head -c 300 "$T/out")"
fi
usage serve_unknown_option 'unknown option "--bogus"' --bogus
usage serve_port_range '--port expects an integer in 0 .. 65535' --port 70000
usage serve_slots_range '--slots expects an integer in 1 .. 1024' --slots 0
usage serve_empty_key '--api-key needs a non-empty key' --api-key=
usage serve_key_twice 'not both' --api-key a --api-key-file b
usage serve_ctx_too_large "more than the model's context" -c 100000

if ! command -v "$PYTHON" >/dev/null 2>&1 || ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 6))' 2>/dev/null; then
    if [ -n "${GPT_REQUIRE_TOOLS:-}" ]; then echo "FAIL $name: no Python 3.6 or later ($PYTHON)"; exit 1; fi
    echo "SKIP $name: no Python 3.6 or later ($PYTHON) to drive the server"
    exit 0
fi
GPT="$GPT" BUILD="$BUILD" exec timeout 300 "$PYTHON" tests/server/test_serve.py
