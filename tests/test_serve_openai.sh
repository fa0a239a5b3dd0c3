#!/bin/sh
# test_serve_openai.sh - a client that no one here wrote: OpenAI's official
# Node library (the `openai` npm package pinned in tests/server/package.json,
# installed by `npm ci` there; .ci/run does it) runs tests/server/openai_client.mjs
# against `gpt serve` on a loopback port: a completion, a stream, n = 3,
# logprobs, stop, echo, the model list, a bad request, an unknown model, a
# wrong key. Then SIGTERM must end the server with status 0.
# Environment: GPT, BUILD (tests/run.sh); GPT_REQUIRE_TOOLS=1 turns a SKIP
# for a missing tool into a FAIL (CI).
GPT=${GPT:-build/gpt}
BUILD=${BUILD:-build}
T=$BUILD/tmp_serve_openai
name=serve_openai
KEY=sk-openai-client-test

skip() {
    if [ -n "${GPT_REQUIRE_TOOLS:-}" ]; then echo "FAIL $name: $1"; exit 1; fi
    echo "SKIP $name: $1"
    exit 0
}
command -v node >/dev/null 2>&1 || skip "node is not installed (Debian: apt-get install nodejs)"
node -e 'process.exit(+process.versions.node.split(".")[0] >= 18 ? 0 : 1)' || skip "node $(node --version) is older than 18"
[ -f tests/server/node_modules/openai/package.json ] ||
    skip "the openai npm package is not installed (cd tests/server && npm ci)"

rm -rf "$T"; mkdir -p "$T"
# shellcheck disable=SC2086
$GPT serve --host 127.0.0.1 --port 0 --api-key "$KEY" -t 2 --slots 4 2>"$T/serve.log" &
pid=$!
i=0
while ! grep -q 'listening on' "$T/serve.log" 2>/dev/null; do
    if ! kill -0 $pid 2>/dev/null; then
        if grep -q 'not supported' "$T/serve.log"; then echo "SKIP $name: $(tail -n 1 "$T/serve.log")"; exit 0; fi
        echo "FAIL $name: the server did not start: $(tail -n 3 "$T/serve.log")"
        exit 1
    fi
    i=$((i + 1))
    if [ $i -gt 1200 ]; then
        kill $pid 2>/dev/null
        echo "FAIL $name: the server did not print 'listening on' in 120 s"
        exit 1
    fi
    sleep 0.1
done
port=$(sed -n 's/.*listening on http:\/\/[^ ]*:\([0-9][0-9]*\).*/\1/p' "$T/serve.log")
timeout 300 node tests/server/openai_client.mjs "$port" "$KEY"
node_rc=$?
kill -TERM $pid
wait $pid
rc=$?
if [ $rc = 0 ]; then echo "PASS openai_server_exits_0"
else echo "FAIL openai_server_exits_0: status $rc: $(tail -n 3 "$T/serve.log")"; fi
[ $node_rc = 0 ] || echo "FAIL openai_client: node exited with status $node_rc"
