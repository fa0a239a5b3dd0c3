"""test_serve.py - `gpt serve` end to end on the demo model, over loopback:
the endpoints and OpenAI's request fields, determinism, HTTP details, and
faults (garbage, oversize heads and bodies, a client sending one byte a
second, 200 idle connections, disconnects mid-stream, a full queue, too
many connections, missing or wrong keys) while the server keeps serving the
others with bounded memory; then SIGTERM ends it cleanly. Run by
tests/test_serve.sh, which prints SKIP when it cannot run."""
import json
import os
import random
import shlex
import signal
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serve_util import (Checks, Server, auth, parse_events, post, raw_connect, raw_exchange, read_response,  # noqa: E402
                        request, stream, stream_texts, getenv_gpt)

GPT, BUILD = getenv_gpt()
T = os.path.join(BUILD, "tmp_serve")
os.makedirs(T, exist_ok=True)
KEY = "sk-test-0123456789"
TIMEOUT = 3
PROMPT = "And God said"
C = Checks()


def completion(port, **kw):
    body = {"model": "demo", "prompt": PROMPT, "max_tokens": 16, "seed": 1}
    body.update(kw)
    return post(port, "/v1/completions", body, KEY)


def text_of(port, **kw):
    st, r = completion(port, **kw)
    if st != 200:
        raise AssertionError("status %d: %s" % (st, r))
    return r["choices"][0]["text"]


def is_openai_error(body, code=None, param=None):
    if not isinstance(body, dict) or set(body) != {"error"}:
        return False
    e = body["error"]
    if set(e) != {"message", "type", "param", "code"} or not e["message"]:
        return False
    return (code is None or e["code"] == code) and (param is None or e["param"] == param)


# --- endpoints and the API -------------------------------------------------------------


def t_endpoints(port):
    st, h, data = request(port, "GET", "/health")
    C.check("health_without_key", st == 200 and json.loads(data) == {"status": "ok"}, (st, data))
    st, h, data = request(port, "GET", "/v1/models")
    C.check("key_missing_is_401", st == 401 and is_openai_error(json.loads(data), "invalid_api_key")
            and "bearer" in h.get("www-authenticate", "").lower(), (st, data))
    st, h, data = request(port, "GET", "/v1/models", headers=auth("sk-wrong"))
    C.check("key_wrong_is_401", st == 401 and is_openai_error(json.loads(data), "invalid_api_key"), (st, data))
    st, r = post(port, "/v1/completions", {"prompt": "x"}, "sk-wrong")
    C.check("key_wrong_completion_is_401", st == 401 and is_openai_error(r), (st, r))
    st, h, data = request(port, "GET", "/v1/models", headers=auth(KEY))
    m = json.loads(data)
    C.check("models_list", st == 200 and m["object"] == "list" and m["data"][0]["id"] == "demo"
            and m["data"][0]["object"] == "model", m)
    st, h, data = request(port, "GET", "/v1/models/demo", headers=auth(KEY))
    C.check("models_by_id", st == 200 and json.loads(data)["id"] == "demo", (st, data))
    st, h, data = request(port, "GET", "/v1/models/gpt-4", headers=auth(KEY))
    C.check("models_unknown_404", st == 404 and is_openai_error(json.loads(data), "model_not_found"), (st, data))
    st, h, data = request(port, "GET", "/v2/nothing", headers=auth(KEY))
    C.check("unknown_path_404", st == 404 and is_openai_error(json.loads(data)), (st, data))
    st, h, data = request(port, "GET", "/v1/completions", headers=auth(KEY))
    C.check("wrong_method_405", st == 405 and h.get("allow") == "POST" and is_openai_error(json.loads(data)),
            (st, h, data))
    st, r = post(port, "/tokenize", {"content": "In the beginning \u00e9t\u00e9 \U0001f600"}, KEY)
    ids = r["tokens"] if st == 200 else None
    st2, r2 = post(port, "/detokenize", {"tokens": ids}, KEY)
    C.check("tokenize_detokenize_roundtrip", st == 200 and st2 == 200 and r2["content"] ==
            "In the beginning \u00e9t\u00e9 \U0001f600", (st, r, st2, r2))
    st, r = post(port, "/tokenize", {"content": PROMPT, "with_pieces": True}, KEY)
    C.check("tokenize_with_pieces", st == 200 and [p["piece"] for p in r["tokens"]] == ["And", " God", " said"]
            and [p["id"] for p in r["tokens"]] == [1870, 1793, 531], r)
    st, r = post(port, "/detokenize", {"tokens": [1, 99999999]}, KEY)
    C.check("detokenize_bad_token_400", st == 400 and is_openai_error(r, param="tokens"), (st, r))


def t_completion_shape(port):
    st, r = completion(port, max_tokens=12)
    ok = (st == 200 and r["object"] == "text_completion" and r["id"].startswith("cmpl-") and r["model"] == "demo"
          and isinstance(r["created"], int) and len(r["choices"]) == 1)
    ch = r["choices"][0] if ok else {}
    ok = ok and ch["index"] == 0 and ch["logprobs"] is None and ch["finish_reason"] in ("length", "stop")
    ok = ok and r["usage"] == {"prompt_tokens": 3, "completion_tokens": r["usage"]["completion_tokens"],
                               "total_tokens": 3 + r["usage"]["completion_tokens"]}
    ok = ok and (ch["finish_reason"] == "stop" or r["usage"]["completion_tokens"] == 12)
    C.check("completion_response_shape", ok, r)


def t_determinism(port):
    a = text_of(port, seed=11, max_tokens=24)
    b = text_of(port, seed=11, max_tokens=24)
    c = text_of(port, seed=12, max_tokens=24)
    C.check("same_seed_same_text", a == b and a != c, (a, b, c))
    st, ev, done, hdrs = stream(port, {"model": "demo", "prompt": PROMPT, "max_tokens": 24, "seed": 11,
                                       "stream_options": {"include_usage": True}}, KEY)
    ok = st == 200 and done and hdrs.get("content-type", "").startswith("text/event-stream")
    chunks = [e for e in ev if e["choices"]]
    usage = [e for e in ev if not e["choices"]]
    ok = ok and stream_texts(chunks, 1)[0] == a and chunks[-1]["choices"][0]["finish_reason"] in ("length", "stop")
    ok = ok and all(e["choices"][0]["finish_reason"] is None for e in chunks[:-1])
    ok = ok and len(usage) == 1 and usage[0]["usage"]["completion_tokens"] > 0 and ev[-1] is usage[0]
    C.check("stream_equals_plain_with_usage", ok, (st, done, ev[-2:] if ev else ev, a))
    # n choices: choice i is the request with seed + i
    st, r = completion(port, seed=40, n=3, max_tokens=20)
    texts = [c["text"] for c in sorted(r["choices"], key=lambda c: c["index"])] if st == 200 else []
    alone = [text_of(port, seed=40 + i, max_tokens=20) for i in range(3)]
    C.check("n_choices_are_seed_plus_i", texts == alone and r["usage"]["prompt_tokens"] == 3, (texts, alone))
    st, ev, done, _ = stream(port, {"model": "demo", "prompt": PROMPT, "max_tokens": 20, "seed": 40, "n": 3}, KEY)
    C.check("n_choices_stream", st == 200 and done and stream_texts(ev, 3) == alone, (stream_texts(ev, 3), alone))
    # token-id prompts and several prompts
    a = text_of(port, prompt=[1870, 1793, 531], seed=5)
    b = text_of(port, prompt=PROMPT, seed=5)
    C.check("prompt_as_token_ids", a == b, (a, b))
    st, r = completion(port, prompt=["In the beginning", PROMPT], n=2, seed=9, max_tokens=10)
    idx = sorted(c["index"] for c in r.get("choices", []))
    second = text_of(port, prompt=PROMPT, seed=9, max_tokens=10)
    got = [c["text"] for c in r.get("choices", []) if c["index"] == 2]
    C.check("prompt_array_indices", st == 200 and idx == [0, 1, 2, 3] and got == [second]
            and r["usage"]["prompt_tokens"] == 3 + 3, (st, idx, got, second))
    st, r = completion(port, prompt=[[1870, 1793], [531]], max_tokens=4)
    C.check("prompt_array_of_token_ids", st == 200 and len(r["choices"]) == 2, (st, r))
    st, r = completion(port, prompt="", max_tokens=5)
    C.check("empty_prompt_starts_from_eot", st == 200 and r["usage"]["prompt_tokens"] == 1, (st, r))


def t_sampling_fields(port):
    greedy = text_of(port, temperature=0, max_tokens=30)
    C.check("greedy_ignores_seed", greedy == text_of(port, temperature=0, max_tokens=30, seed=99), greedy)
    # a stop string taken from the greedy text: the text ends right before it
    words = greedy.split(" ")
    stop = " " + words[3] if len(words) > 4 else greedy[5:8]
    st, r = completion(port, temperature=0, max_tokens=30, stop=[stop, "@@never@@"])
    ch = r["choices"][0]
    C.check("stop_string", st == 200 and ch["text"] == greedy[:greedy.index(stop)] and ch["finish_reason"] == "stop",
            (stop, greedy, ch))
    st, ev, done, _ = stream(port, {"model": "demo", "prompt": PROMPT, "temperature": 0, "max_tokens": 30,
                                    "stop": stop}, KEY)
    C.check("stop_string_stream", done and stream_texts(ev, 1)[0] == greedy[:greedy.index(stop)]
            and ev[-1]["choices"][0]["finish_reason"] == "stop", ev[-1:])
    # GPT-2's own fields and OpenAI's penalties change the text and are accepted
    for field, value in (("top_k", 1), ("min_p", 0.5), ("repetition_penalty", 1.3), ("presence_penalty", 1.5),
                         ("frequency_penalty", 1.5), ("top_p", 0.5)):
        st, r = completion(port, **{field: value, "seed": 3})
        C.check("field_" + field, st == 200 and len(r["choices"][0]["text"]) > 0, (st, r))
    a = text_of(port, top_k=1, seed=3, max_tokens=30)
    C.check("top_k_1_is_greedy", a == greedy, (a, greedy))
    st, r = completion(port, user="someone", unknown_field={"x": [1]}, logit_bias={}, best_of=1)
    C.check("unknown_fields_ignored", st == 200, (st, r))


def t_logprobs(port):
    st, r = completion(port, temperature=0, max_tokens=8, logprobs=3)
    lp = r["choices"][0]["logprobs"] if st == 200 else None
    ok = lp is not None and len(lp["tokens"]) == 8 and len(lp["token_logprobs"]) == 8
    ok = ok and len(lp["top_logprobs"]) == 8 and len(lp["text_offset"]) == 8
    ok = ok and all(len(d) == 3 and max(d.values()) == lp["token_logprobs"][i] for i, d in enumerate(lp["top_logprobs"]))
    ok = ok and "".join(lp["tokens"]) == r["choices"][0]["text"] and lp["text_offset"][0] == len(PROMPT)
    ok = ok and all(x <= 0 for x in lp["token_logprobs"])
    C.check("logprobs_greedy", ok, lp)
    st, r = completion(port, max_tokens=6, logprobs=2, echo=True, seed=4)
    ch = r["choices"][0]
    lp = ch["logprobs"]
    ok = (st == 200 and ch["text"].startswith(PROMPT) and lp["tokens"][:3] == ["And", " God", " said"]
          and lp["token_logprobs"][0] is None and lp["top_logprobs"][0] is None and lp["text_offset"][:4] == [0, 3, 7, 12]
          and len(lp["tokens"]) == 3 + 6 and all(x is None or x <= 0 for x in lp["token_logprobs"]))
    C.check("echo_logprobs", ok, ch)
    # the prompt's logprobs (scored on a context of their own) equal a generator's
    st, r3 = completion(port, prompt="And", max_tokens=1, logprobs=0, temperature=0)
    g = r3["choices"][0]["logprobs"]
    st, r4 = completion(port, prompt="And" + g["tokens"][0], max_tokens=0, echo=True, logprobs=0)
    e = r4["choices"][0]["logprobs"]
    C.check("echo_logprobs_match_generated", abs(e["token_logprobs"][1] - g["token_logprobs"][0]) < 1e-5, (e, g))
    st, r = completion(port, max_tokens=0, echo=True)
    C.check("echo_max_tokens_0", st == 200 and r["choices"][0]["text"] == PROMPT
            and r["usage"]["completion_tokens"] == 0, r)


def t_bad_requests(port):
    st, h, data = request(port, "POST", "/v1/completions", b'{"prompt": "x",', auth(KEY))
    C.check("malformed_json_400", st == 400 and is_openai_error(json.loads(data)), (st, data))
    st, h, data = request(port, "POST", "/v1/completions", b'[1, 2]', auth(KEY))
    C.check("json_not_object_400", st == 400 and is_openai_error(json.loads(data)), (st, data))
    cases = [("temperature_type", {"temperature": "hot"}, "temperature"),
             ("temperature_range", {"temperature": -1}, "temperature"),
             ("n_too_large", {"n": 5}, "n"),
             ("n_zero", {"n": 0}, "n"),
             ("logprobs_range", {"logprobs": 50}, "logprobs"),
             ("max_tokens_negative", {"max_tokens": -1}, "max_tokens"),
             ("max_tokens_fraction", {"max_tokens": 1.5}, "max_tokens"),
             ("max_tokens_over_context", {"max_tokens": 100000}, "max_tokens"),
             ("prompt_bad_token", {"prompt": [1, -5]}, "prompt"),
             ("prompt_mixed", {"prompt": ["a", 1]}, "prompt"),
             ("prompt_empty_array", {"prompt": []}, "prompt"),
             ("stop_type", {"stop": 5}, "stop"),
             ("stop_too_many", {"stop": ["s%d" % i for i in range(17)]}, "stop"),
             ("best_of_unsupported", {"best_of": 3}, "best_of"),
             ("logit_bias_unsupported", {"logit_bias": {"50256": -100}}, "logit_bias"),
             ("suffix_unsupported", {"suffix": "x"}, "suffix"),
             ("echo_type", {"echo": "yes"}, "echo"),
             ("seed_type", {"seed": "1"}, "seed")]
    for name, fields, param in cases:
        st, r = completion(port, **fields)
        C.check("bad_" + name, st == 400 and is_openai_error(r, param=param), (st, r))
    st, r = completion(port, prompt="word " * 300, max_tokens=16)
    C.check("context_length_exceeded", st == 400 and is_openai_error(r, "context_length_exceeded"), (st, r))
    st, r = completion(port, model="gpt-3.5-turbo-instruct")
    C.check("unknown_model_404", st == 404 and is_openai_error(r, "model_not_found", "model"), (st, r))


# --- HTTP --------------------------------------------------------------------------------


def body_of(reply):
    return reply.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in reply else b""


def t_http(port):
    k = ("Authorization: Bearer %s\r\n" % KEY).encode()
    r = raw_exchange(port, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n")
    C.check("garbage_bytes_400", r.startswith(b"HTTP/1.1 400 ") and is_openai_error(json.loads(body_of(r))), r[:120])
    rnd = random.Random(7)
    ok = True
    for _ in range(20):
        junk = bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 600)))
        r = raw_exchange(port, junk + b"\r\n\r\n", timeout=TIMEOUT + 5)
        ok = ok and (r == b"" or r.startswith(b"HTTP/1.1 4"))
    C.check("random_garbage_4xx", ok, r[:100])
    r = raw_exchange(port, b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n")
    C.check("oversize_head_431", r.startswith(b"HTTP/1.1 431 "), r[:100])
    s = raw_connect(port)
    s.sendall(b"POST /tokenize HTTP/1.1\r\nHost: x\r\n" + k + b"Content-Length: 100000000\r\n\r\n")
    head, _ = read_response(s)
    s.close()
    C.check("oversize_body_413_before_reading_it", head.startswith(b"HTTP/1.1 413 "), head[:100])
    big = json.dumps({"content": "a" * 70000}).encode()
    r = raw_exchange(port, b"POST /tokenize HTTP/1.1\r\nHost: x\r\n" + k + b"Transfer-Encoding: chunked\r\n\r\n" +
                     b"%x\r\n" % len(big) + big + b"\r\n0\r\n\r\n")
    C.check("oversize_chunked_body_413", r.startswith(b"HTTP/1.1 413 "), r[:100])
    r = raw_exchange(port, b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab")
    C.check("conflicting_lengths_400", r.startswith(b"HTTP/1.1 400 "), r[:100])
    r = raw_exchange(port, b"GET /health HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n")
    C.check("unknown_transfer_coding_501", r.startswith(b"HTTP/1.1 501 "), r[:100])
    r = raw_exchange(port, b"GET /health HTTP/2.0\r\n\r\n")
    C.check("http2_line_505", r.startswith(b"HTTP/1.1 505 "), r[:100])
    body = json.dumps({"content": PROMPT}).encode()
    chunked = b"5\r\n" + body[:5] + b"\r\n" + b"%x;ext=1\r\n" % (len(body) - 5) + body[5:] + b"\r\n0\r\nX-T: 1\r\n\r\n"
    r = raw_exchange(port, b"POST /tokenize HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + k +
                     b"Transfer-Encoding: chunked\r\n\r\n" + chunked)
    C.check("chunked_request_body", r.startswith(b"HTTP/1.1 200 ") and json.loads(body_of(r))["tokens"] == [1870, 1793, 531],
            r[-100:])
    s = raw_connect(port)
    s.sendall(b"POST /tokenize HTTP/1.1\r\nHost: x\r\n" + k + b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(body))
    s.settimeout(10)
    first = s.recv(100)
    s.sendall(body)
    head, _ = read_response(s)
    s.close()
    C.check("expect_100_continue", first.startswith(b"HTTP/1.1 100 Continue\r\n\r\n") and head.startswith(b"HTTP/1.1 200 "),
            (first, head[:60]))
    s = raw_connect(port)
    s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /v1/models HTTP/1.1\r\nHost: x\r\n" + k + b"\r\n")
    a, rest = read_response(s)
    s.settimeout(10)
    while b"\r\n\r\n" not in rest:
        rest += s.recv(65536)
    C.check("pipelined_requests_in_order", a.startswith(b"HTTP/1.1 200 ") and b'"status":"ok"' in a
            and rest.startswith(b"HTTP/1.1 200 "), (a[:60], rest[:60]))
    s.close()
    r = raw_exchange(port, b"GET /health HTTP/1.0\r\n\r\n")
    C.check("http10_closes", r.startswith(b"HTTP/1.1 200 ") and b"Connection: close" in r, r[:200])
    # a stream to an HTTP/1.0 client: not chunked, ends with the connection
    req = json.dumps({"prompt": PROMPT, "max_tokens": 5, "stream": True, "seed": 1}).encode()
    r = raw_exchange(port, b"POST /v1/completions HTTP/1.0\r\n" + k + b"Content-Length: %d\r\n\r\n" % len(req) + req)
    ok = r.startswith(b"HTTP/1.1 200 ") and b"chunked" not in r.split(b"\r\n\r\n")[0]
    ev, done = parse_events(body_of(r)) if ok else ([], False)
    C.check("http10_stream", ok and done and stream_texts(ev, 1)[0] == text_of(port, max_tokens=5), r[:300])


# --- faults while serving ---------------------------------------------------------------


def slow_client(port, out):
    """One byte a second: the server answers 408 once --timeout has passed."""
    s = raw_connect(port, timeout=TIMEOUT + 10)
    t0 = time.time()
    data = b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" + b"x" * 100
    got = b""
    s.settimeout(1.0)
    for b in data:
        try:
            s.sendall(bytes([b]))
        except OSError:
            break
        try:
            got += s.recv(4096)
            if got:
                break
        except socket.timeout:
            pass
        except OSError:
            break
    try:
        s.settimeout(5)
        while True:
            b = s.recv(4096)
            if not b:
                break
            got += b
    except OSError:
        pass
    out["reply"] = got
    out["seconds"] = time.time() - t0


def t_disconnect_mid_stream(srv):
    port = srv.port
    body = json.dumps({"prompt": PROMPT, "max_tokens": 200, "stream": True, "seed": 2}).encode()
    before = srv.log_text().count("cancelled a completion")
    for _ in range(3):
        s = raw_connect(port)
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + KEY.encode() +
                  b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        got = b""
        while b"data: " not in got:
            got += s.recv(4096)
        s.close()
    deadline = time.time() + 30
    while srv.log_text().count("cancelled a completion") < before + 3 and time.time() < deadline:
        time.sleep(0.05)
    lines = [l for l in srv.log_text().splitlines() if "cancelled a completion" in l][before:]
    counts = [int(l.split("after ")[1].split(" ")[0]) for l in lines]
    C.check("disconnect_cancels_at_next_step", len(counts) == 3 and all(n < 200 for n in counts), lines)


def t_faults(srv, ref_text):
    """Faults while a long stream runs: it finishes with the text it has alone."""
    port = srv.port
    result = {}

    def long_stream():
        st, ev, done, _ = stream(port, {"prompt": PROMPT, "max_tokens": 120, "seed": 77}, KEY)
        result["text"] = stream_texts(ev, 1)[0] if st == 200 and done else None

    th = threading.Thread(target=long_stream)
    th.start()
    t_http(port)
    t_bad_requests(port)
    t_disconnect_mid_stream(srv)
    th.join()
    C.check("faults_do_not_disturb_a_running_stream", result.get("text") == ref_text, (result, ref_text))


def t_queue_and_conns(gpt):
    """--slots 1 --queue 0: a second completion is 503; --max-conns 4: a fifth connection is 503."""
    srv = Server(gpt, ["--slots", "1", "--queue", "0", "--max-conns", "4", "-t", "2", "--timeout", "5"],
                 os.path.join(T, "serve_small.log")).start()
    try:
        body = json.dumps({"prompt": PROMPT, "max_tokens": 150, "stream": True, "seed": 2}).encode()
        s = raw_connect(srv.port)
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        got = b""
        while b"data: " not in got:
            got += s.recv(4096)
        st, h, data = request(srv.port, "POST", "/v1/completions", {"prompt": "x", "max_tokens": 2})
        C.check("queue_full_503", st == 503 and h.get("retry-after") == "1"
                and is_openai_error(json.loads(data), "server_busy"), (st, h, data))
        s.settimeout(60)
        while b"data: [DONE]" not in got:
            b = s.recv(65536)
            if not b:
                break
            got += b
        s.close()
        C.check("queue_full_keeps_the_running_one", b"data: [DONE]" in got, got[-200:])
        idle = [raw_connect(srv.port) for _ in range(4)]
        time.sleep(0.3)
        r = raw_exchange(srv.port, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        C.check("max_conns_503", r.startswith(b"HTTP/1.1 503 ") and b"too_many_connections" in r, r[:200])
        for s in idle:
            s.close()
        time.sleep(0.3)
        st, _, _ = request(srv.port, "GET", "/health")
        C.check("max_conns_frees_closed", st == 200, st)
    finally:
        rc = srv.stop()
    C.check("small_server_exits_0", rc == 0, (rc, srv.log_text()[-300:]))


def t_sigterm(srv):
    """SIGTERM mid-stream: the stream ends with [DONE], new connections are refused, status 0."""
    port = srv.port
    body = json.dumps({"prompt": PROMPT, "max_tokens": 100, "stream": True, "seed": 6}).encode()
    s = raw_connect(port)
    s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + KEY.encode() +
              b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    got = b""
    while b"data: " not in got:
        got += s.recv(4096)
    srv.signal(signal.SIGTERM)
    refused = False
    deadline = time.time() + 10
    while time.time() < deadline and not refused:
        try:
            c = socket.create_connection(("127.0.0.1", port), timeout=2)
            c.close()
            time.sleep(0.05)
        except OSError:
            refused = True
    s.settimeout(60)
    while True:
        b = s.recv(65536)
        if not b:
            break
        got += b
    s.close()
    rc = srv.wait(60)
    ev, done = parse_events(dechunk(got))
    text = stream_texts(ev, 1)[0]
    C.check("sigterm_refuses_new_connections", refused)
    C.check("sigterm_finishes_running_stream", done and len(text) > 0 and ev[-1]["choices"][0]["finish_reason"],
            got[-300:])
    C.check("sigterm_exits_0", rc == 0 and "stopped after" in srv.log_text(), (rc, srv.log_text()[-300:]))


def dechunk(reply):
    """The body of a chunked HTTP response."""
    head, rest = reply.split(b"\r\n\r\n", 1)
    out = b""
    while rest:
        line, rest = rest.split(b"\r\n", 1)
        n = int(line.split(b";")[0], 16)
        if n == 0:
            break
        out += rest[:n]
        rest = rest[n + 2:]
    return out


def sanitized(gpt):
    """Is the command built with a sanitizer?"""
    try:
        with open(shlex.split(gpt)[-1], "rb") as f:
            data = f.read()
        return b"__asan_init" in data or b"__tsan_init" in data
    except OSError:
        return False


def main():
    gpt = GPT
    srv = Server(gpt, ["--slots", "4", "--timeout", str(TIMEOUT), "--api-key", KEY, "-t", "2", "-v",
                       "--max-body", "65536"], os.path.join(T, "serve.log"))
    try:
        srv.start()
    except RuntimeError as e:
        if "not supported" in str(e):
            print("SKIP serve: %s" % str(e).strip().splitlines()[-1])
            return 0
        print("FAIL serve_starts: %s" % e)
        return 1
    C.check("prints_listening", srv.port is not None)
    port = srv.port
    try:
        # warm up, then the memory the server settles at
        ref_text = text_of(port, max_tokens=120, seed=77)
        for _ in range(3):
            text_of(port, max_tokens=40, seed=3, logprobs=5, echo=True)
        rss0 = srv.rss_kb()
        # slow clients and idle connections for the whole run
        slow = {}
        th_slow = threading.Thread(target=slow_client, args=(port, slow))
        th_slow.start()
        idle = [raw_connect(port) for _ in range(200)]
        C.run("endpoints", t_endpoints, port)
        C.run("completion_shape", t_completion_shape, port)
        C.run("determinism", t_determinism, port)
        C.run("sampling_fields", t_sampling_fields, port)
        C.run("logprobs", t_logprobs, port)
        st, r = completion(port, max_tokens=10)
        C.check("served_with_200_idle_connections", st == 200, (st, r))
        C.run("faults", t_faults, srv, ref_text)
        th_slow.join()
        C.check("slow_client_408", slow.get("reply", b"").startswith(b"HTTP/1.1 408 ")
                and slow.get("seconds", 99) < TIMEOUT + 3, slow)
        # the idle connections are closed by the server after --timeout
        time.sleep(max(0, TIMEOUT + 0.5 - 0))
        closed = 0
        for s in idle:
            s.settimeout(5)
            try:
                closed += s.recv(10) == b""
            except OSError:
                closed += 1
            s.close()
        C.check("idle_connections_closed_after_timeout", closed == 200, "%d of 200 closed" % closed)
        # memory: the faults again must not grow it
        rss1 = srv.rss_kb()
        C.prefix = "again_"
        C.run("faults_again", t_http, port)
        C.run("bad_again", t_bad_requests, port)
        C.prefix = ""
        idle = [raw_connect(port) for _ in range(200)]
        for s in idle:
            s.close()
        st, _, _ = request(port, "GET", "/health")
        rss2 = srv.rss_kb()
        if rss0 is not None:
            # a sanitizer keeps freed memory in quarantine: allow it more
            slack = 4 if sanitized(gpt) else 1
            figures = "RSS %d KB after warm-up, %d KB after the faults, %d KB after them again" % (rss0, rss1, rss2)
            C.check("rss_bounded", rss1 - rss0 < slack * 64 * 1024 and rss2 - rss1 < slack * 16 * 1024, figures,
                    figures)
        C.run("sigterm", t_sigterm, srv)
    finally:
        if srv.proc.poll() is None:
            srv.stop()
    C.run("queue_and_conns", t_queue_and_conns, gpt)
    return 1 if C.failed else 0


if __name__ == "__main__":
    sys.exit(main())
