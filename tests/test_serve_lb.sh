#!/bin/sh
# test_serve_lb.sh - two `gpt serve` instances behind Debian's nginx on
# loopback ports (tests/server/lb.py): 64 requests through the balancer all
# succeed; SIGTERM to one instance mid-run loses none (it drains, nginx
# retries the refused connections on the other) and it exits 0.
# Environment: GPT, BUILD, PYTHON (tests/run.sh); NGINX names the binary;
# GPT_REQUIRE_TOOLS=1 turns a SKIP for a missing tool into a FAIL (CI).
GPT=${GPT:-build/gpt}
BUILD=${BUILD:-build}
PYTHON=${PYTHON:-python3}
name=serve_lb

skip() {
    if [ -n "${GPT_REQUIRE_TOOLS:-}" ]; then echo "FAIL $name: $1"; exit 1; fi
    echo "SKIP $name: $1"
    exit 0
}
NGINX=${NGINX:-$(command -v nginx || { [ -x /usr/sbin/nginx ] && echo /usr/sbin/nginx; })}
[ -n "$NGINX" ] || skip "nginx is not installed (Debian: apt-get install nginx)"
if ! command -v "$PYTHON" >/dev/null 2>&1 || ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 6))' 2>/dev/null; then
    skip "no Python 3.6 or later ($PYTHON) to drive the test"
fi
GPT="$GPT" BUILD="$BUILD" exec timeout 400 "$PYTHON" tests/server/lb.py "$NGINX"
