"""serve_util.py - starting `gpt serve` and talking HTTP to it, for the
server's tests (tests/test_serve*.sh). Standard library only; loopback only."""
import http.client
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time

HOST = "127.0.0.1"


class Server:
    """A `gpt serve --port 0` process; its stderr goes to log_path."""

    def __init__(self, gpt, args, log_path, start_timeout=120):
        self.cmd = shlex.split(gpt) + ["serve", "--host", HOST, "--port", "0"] + list(args)
        self.log_path = log_path
        self.start_timeout = start_timeout
        self.proc = None
        self.port = None

    def start(self):
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.log)
        deadline = time.time() + self.start_timeout
        while time.time() < deadline:
            m = re.search(r"listening on http://([^\s]+):(\d+)", self.log_text())
            if m:
                self.port = int(m.group(2))
                return self
            if self.proc.poll() is not None:
                raise RuntimeError("gpt serve exited with status %d: %s" % (self.proc.returncode, self.log_text()[-600:]))
            time.sleep(0.05)
        raise RuntimeError("gpt serve did not print 'listening on' in %d s" % self.start_timeout)

    def log_text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def signal(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)

    def wait(self, timeout=60):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None

    def stop(self, timeout=60):
        if self.proc and self.proc.poll() is None:
            self.signal(signal.SIGTERM)
        rc = self.wait(timeout) if self.proc else None
        if self.proc:
            self.log.close()
        return rc

    def rss_kb(self):
        """Resident memory of the server process (Linux), or None."""
        try:
            with open("/proc/%d/status" % self.proc.pid) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except OSError:
            return None
        return None


def request(port, method, path, body=None, headers=None, timeout=120):
    """One request on a new connection: (status, headers, body bytes)."""
    c = http.client.HTTPConnection(HOST, port, timeout=timeout)
    h = dict(headers or {})
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
        h.setdefault("Content-Type", "application/json")
    c.request(method, path, body=body, headers=h)
    r = c.getresponse()
    data = r.read()
    hdrs = {k.lower(): v for k, v in r.getheaders()}
    c.close()
    return r.status, hdrs, data


def auth(key):
    return {"Authorization": "Bearer " + key} if key else {}


def post(port, path, obj, key=None, timeout=120):
    """POST JSON: (status, parsed body or None)."""
    st, _, data = request(port, "POST", path, obj, auth(key), timeout)
    try:
        return st, json.loads(data)
    except ValueError:
        return st, None


def parse_events(data):
    """Server-sent events of a whole stream: (list of decoded data, saw [DONE])."""
    events, done = [], False
    for block in data.decode("utf-8").split("\n\n"):
        block = block.strip()
        if not block:
            continue
        if not block.startswith("data: "):
            raise ValueError("not an SSE data line: %r" % block[:80])
        payload = block[6:]
        if payload == "[DONE]":
            done = True
            continue
        if done:
            raise ValueError("an event after [DONE]")
        events.append(json.loads(payload))
    return events, done


def stream(port, obj, key=None, timeout=120):
    """A streamed completion: (status, events, saw [DONE], headers)."""
    o = dict(obj)
    o["stream"] = True
    st, hdrs, data = request(port, "POST", "/v1/completions", o, auth(key), timeout)
    if st != 200:
        return st, json.loads(data), False, hdrs
    events, done = parse_events(data)
    return st, events, done, hdrs


def stream_texts(events, n):
    """The text of each choice index, joined from stream events."""
    out = [""] * n
    for e in events:
        for c in e.get("choices", []):
            out[c["index"]] += c["text"]
    return out


def raw_connect(port, timeout=30):
    s = socket.create_connection((HOST, port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def raw_exchange(port, data, timeout=30):
    """Sends bytes, reads until the server closes or the timeout: the reply."""
    s = raw_connect(port, timeout)
    try:
        s.sendall(data)
    except OSError:
        pass
    out = b""
    try:
        while True:
            b = s.recv(65536)
            if not b:
                break
            out += b
    except OSError:
        pass
    s.close()
    return out


def read_response(sock, timeout=30):
    """Reads one HTTP response with a Content-Length body from a socket."""
    sock.settimeout(timeout)
    buf = b""
    while b"\r\n\r\n" not in buf:
        b = sock.recv(65536)
        if not b:
            return buf
        buf += b
    head, rest = buf.split(b"\r\n\r\n", 1)
    m = re.search(rb"(?i)content-length: *(\d+)", head)
    n = int(m.group(1)) if m else 0
    while len(rest) < n:
        b = sock.recv(65536)
        if not b:
            break
        rest += b
    return head + b"\r\n\r\n" + rest[:n], rest[n:]


class Checks:
    """PASS/FAIL lines as tests/run.sh counts them."""

    def __init__(self):
        self.failed = 0
        self.prefix = ""  # for checks that run twice

    def check(self, name, ok, detail="", note=None):
        """note: shown in parentheses after a PASS (figures worth seeing)."""
        name = self.prefix + name
        if ok:
            print("PASS " + name + (" (%s)" % note if note else ""))
        else:
            self.failed += 1
            print("FAIL %s: %s" % (name, str(detail)[:600].replace("\n", " ")))
        sys.stdout.flush()
        return ok

    def run(self, name, fn, *args):
        """Runs fn(); an exception is a failure of name."""
        try:
            fn(*args)
        except Exception as e:  # noqa: BLE001 - any error is a failed test
            import traceback
            tb = traceback.format_exc().strip().splitlines()
            self.check(name, False, "%s: %s (%s)" % (type(e).__name__, e, " | ".join(tb[-3:])))


def getenv_gpt():
    return os.environ.get("GPT", "build/gpt"), os.environ.get("BUILD", "build")
