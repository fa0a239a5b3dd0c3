"""lb.py - scale-out the way operators do it: two `gpt serve` processes behind
a stock nginx (Debian's), all on loopback ports. 64 completions through the
balancer from 16 clients all succeed; then the same 64 again, with SIGTERM
sent to one instance while they run: every request still succeeds (the
stopping instance finishes what it has; nginx takes the refused connections
to the other), with the same texts as before, and the stopped instance exits
with status 0. The nginx configuration is the one docs/SERVER.md shows.

    python3 tests/server/lb.py NGINX

Environment: GPT, BUILD (tests/run.sh)."""
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from load import run_one, specs  # noqa: E402
from serve_util import Checks, Server, getenv_gpt  # noqa: E402

NGINX_CONF = """\
# gpt serve behind nginx: two instances, one balancer (docs/SERVER.md)
{user}worker_processes 1;
pid {tmp}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
    access_log {tmp}/access.log;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;

    upstream gpt_serve {{
        server 127.0.0.1:{port_a} max_fails=1 fail_timeout=30s;
        server 127.0.0.1:{port_b} max_fails=1 fail_timeout=30s;
    }}
    server {{
        listen 127.0.0.1:{port_lb};
        location / {{
            proxy_pass http://gpt_serve;
            proxy_http_version 1.1;
            proxy_buffering off;              # stream tokens as they come
            proxy_read_timeout 600s;          # a long completion is not a dead server
            # A refused connection (an instance stopping), a reset one or a
            # full queue (503) goes to the other instance. Completions change
            # nothing on the server, so retrying a POST is safe.
            proxy_next_upstream error timeout http_503 non_idempotent;
            proxy_next_upstream_tries 2;
        }}
    }}
}}
"""


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def run_all(port, work, clients, on_done=None):
    """Runs every request from `clients` threads: ({i: (texts, tokens)}, errors)."""
    results, errors, q, lock = {}, [], queue.Queue(), threading.Lock()
    for i in range(len(work)):
        q.put(i)

    def client():
        while True:
            try:
                i = q.get_nowait()
            except queue.Empty:
                return
            try:
                r = run_one(port, *work[i])
                with lock:
                    results[i] = r
                    n = len(results)
                if on_done:
                    on_done(n)
            except Exception as e:  # noqa: BLE001
                with lock:
                    errors.append((i, str(e)[:200]))

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return results, errors


def main():
    nginx = sys.argv[1] if len(sys.argv) > 1 else "nginx"
    gpt, build = getenv_gpt()
    tmp = os.path.abspath(os.path.join(build, "tmp_serve_lb"))
    os.makedirs(tmp, exist_ok=True)
    C = Checks()
    args = ["--slots", "4", "-t", "1", "-v"]
    a = Server(gpt, args, os.path.join(tmp, "a.log"))
    b = Server(gpt, args, os.path.join(tmp, "b.log"))
    ng = None
    try:
        try:
            a.start()
            b.start()
        except RuntimeError as e:
            if "not supported" in str(e):
                print("SKIP serve_lb: %s" % str(e).strip().splitlines()[-1])
                return 0
            raise
        port_lb = free_port()
        conf = os.path.join(tmp, "nginx.conf")
        with open(conf, "w") as f:
            f.write(NGINX_CONF.format(tmp=tmp, port_a=a.port, port_b=b.port, port_lb=port_lb,
                                      user="user root;\n" if os.geteuid() == 0 else ""))
        ng = subprocess.Popen([nginx, "-p", tmp, "-c", conf, "-e", os.path.join(tmp, "error.log"), "-g", "daemon off;"],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=open(os.path.join(tmp, "nginx.stderr"), "wb"))
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port_lb), timeout=1).close()
                break
            except OSError:
                if ng.poll() is not None:
                    break
                time.sleep(0.05)
        if ng.poll() is not None:
            with open(os.path.join(tmp, "error.log"), "rb") as f:
                err = f.read().decode("utf-8", "replace")
            print("FAIL lb_nginx_starts: nginx exited: %s" % err[-400:])
            return 1
        work = specs(64)
        first, errors = run_all(port_lb, work, 16)
        served_a = a.log_text().count("POST /v1/completions 200")
        served_b = b.log_text().count("POST /v1/completions 200")
        C.check("lb_64_requests_succeed", not errors and len(first) == 64, errors[:3])
        C.check("lb_both_instances_serve", served_a > 0 and served_b > 0, (served_a, served_b),
                "A answered %d, B %d" % (served_a, served_b))

        sent = {}

        def on_done(n):
            if n >= 12 and "t" not in sent:
                sent["t"] = time.time()
                a.signal(signal.SIGTERM)

        before_a = a.log_text().count("POST /v1/completions 200")
        second, errors = run_all(port_lb, work, 16, on_done)
        rc = a.wait(120)
        after_a = a.log_text().count("POST /v1/completions 200") - before_a
        log_a = a.log_text()
        drained = log_a.split("stopping:")[-1].count("POST /v1/completions 200") if "stopping:" in log_a else 0
        C.check("lb_sigterm_mid_run_loses_nothing", "t" in sent and not errors and len(second) == 64, errors[:3],
                "SIGTERM to A after 12 completions; A answered %d of the 64, %d of them after the signal" %
                (after_a, drained))
        same = [i for i in range(64) if i in first and i in second and first[i][0] == second[i][0]]
        C.check("lb_same_texts_on_either_instance", len(same) == 64, "%d of 64 equal" % len(same))
        C.check("lb_stopped_instance_exits_0", rc == 0 and "stopped after" in a.log_text(), (rc, a.log_text()[-300:]))
    finally:
        if ng and ng.poll() is None:
            ng.send_signal(signal.SIGQUIT)
            try:
                ng.wait(20)
            except subprocess.TimeoutExpired:
                ng.kill()
        for s in (a, b):
            if s.proc:
                s.stop()
    return 1 if C.failed else 0


if __name__ == "__main__":
    sys.exit(main())
