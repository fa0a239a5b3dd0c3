/*
 * serve_net.c - the sockets of `gpt serve`: one thread, poll(), non-blocking
 * connections.
 *
 * A connection reads a request into its buffer (parsed again as bytes
 * arrive; serve_http.c), answers it through srv_route (serve_routes.c), and
 * either has the whole response at once or waits for the scheduler, which
 * wakes this thread through a pipe when a request has stream events or is
 * finished. Requests on one connection are answered in order (keep-alive
 * and pipelining). Limits: --max-conns connections (more are answered 503
 * and closed), the request head and body sizes, and --timeout: a request
 * must arrive whole within it (a client sending one byte a second is
 * answered 408), an idle connection is closed after it, and a client that
 * takes no output for that long is dropped (its sequences are cancelled).
 * A client that closes its connection while its completion runs has it
 * cancelled at the scheduler's next step.
 *
 * SIGINT/SIGTERM: the connections waiting in the listen queue are taken,
 * the listening socket is closed (new connections are refused, so a load
 * balancer goes to another instance), idle connections are closed, every
 * request already on a connection is answered, and srv_run returns 0 when
 * the last connection is done. A second signal stops at once (status 1).
 */
#if (defined(__unix__) || defined(__APPLE__)) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif
#include "serve.h"

#if !defined(_WIN32)
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0 /* SIGPIPE is ignored anyway */
#endif

#define LINGER_SECONDS 2.0  /* after the last response, reading what the client still sends */
#define DRAIN_GRACE 1.0     /* shutting down: how long a new connection may take to send its request */
#define MAX_PENDING_OUT ((size_t)1 << 20) /* pipelined responses waiting before reading more */

enum { C_READ, C_BUSY, C_LINGER };

typedef struct conn {
    int fd;
    int state;
    char *in;              /* bytes read and not yet answered */
    size_t in_n, in_cap;
    sbuf out;              /* bytes to send, from out_off */
    size_t out_off;
    double started;        /* when the request being read began */
    double last_read;      /* for the idle timeout */
    double write_wait;     /* since when output has waited without progress (0: none waits) */
    double linger_until;
    int served;            /* requests answered */
    int keep_alive;        /* of the running completion's response */
    int chunked;           /* the running stream's body is chunked */
    int close_after;       /* close once out is sent */
    int continue_sent;     /* 100 Continue for the request being read */
    srv_request *req;      /* the running completion */
    int req_status;
    double req_time;
    char what[48];         /* "POST /v1/completions", for the log */
} conn;

typedef struct net {
    srv_server *s;
    int listen_fd;
    int wake[2];           /* the scheduler's and the signal handler's pipe */
    conn **conns;
    int n_conns;
    struct pollfd *pfds;
    size_t in_limit;       /* most bytes a request may take in the buffer */
    double drain_started;
    double accept_paused_until;
    int force;             /* a second signal */
} net;

static volatile sig_atomic_t got_signals;
static int signal_pipe = -1;

static void on_signal(int sig)
{
    int saved = errno;
    char c = 2;
    (void)sig;
    got_signals = got_signals + 1;
    if (signal_pipe >= 0 && write(signal_pipe, &c, 1) < 0) {}
    errno = saved;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int set_nonblocking(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) return -1;
    return fcntl(fd, F_SETFD, FD_CLOEXEC);
}

/* ------------------------------------------------------------------------ */
/* Listening                                                                */

static int open_listener(const char *host, int port, char *shown, size_t cap)
{
    struct addrinfo hints, *res, *ai;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    char ps[16], h[128], sv[16];
    int fd = -1, one = 1, rc, e = 0;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    snprintf(ps, sizeof ps, "%d", port);
    if ((rc = getaddrinfo(host, ps, &hints, &res)) != 0) {
        fprintf(stderr, "gpt serve: cannot use host \"%s\": %s\n", host, gai_strerror(rc));
        return -1;
    }
    for (ai = res; ai; ai = ai->ai_next) {
        if ((fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol)) < 0) {
            e = errno;
            continue;
        }
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, SOMAXCONN) == 0 && set_nonblocking(fd) == 0)
            break;
        e = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        fprintf(stderr, "gpt serve: cannot listen on %s port %d: %s\n", host, port, strerror(e));
        return -1;
    }
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0 &&
        getnameinfo((struct sockaddr *)&ss, sl, h, sizeof h, sv, sizeof sv, NI_NUMERICHOST | NI_NUMERICSERV) == 0)
        snprintf(shown, cap, ss.ss_family == AF_INET6 ? "http://[%s]:%s" : "http://%s:%s", h, sv);
    else
        snprintf(shown, cap, "http://%s:%d", host, port);
    return fd;
}

/* ------------------------------------------------------------------------ */
/* Connections                                                              */

static void conn_close(net *N, int i, int cancel)
{
    conn *c = N->conns[i];
    if (c->req) sched_release(N->s->sched, c->req, cancel);
    close(c->fd);
    gpt__free(c->in);
    sb_free(&c->out);
    gpt__free(c);
    N->conns[i] = N->conns[--N->n_conns];
}

static void conn_log(net *N, conn *c, int status, double t0)
{
    if (N->s->cfg.verbose)
        fprintf(stderr, "gpt serve: %s %d %.3f s\n", c->what[0] ? c->what : "-", status, now() - t0);
}

/* Reads what is there. Returns 0, or -1 when the peer closed or failed. */
static int conn_read(net *N, conn *c)
{
    if (c->state == C_LINGER) {
        char junk[4096];
        ssize_t n;
        while ((n = recv(c->fd, junk, sizeof junk, 0)) > 0) {}
        return n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) ? -1 : 0;
    }
    for (;;) {
        ssize_t n;
        if (c->in_n == c->in_cap) {
            size_t cap = c->in_cap ? c->in_cap * 2 : 4096;
            char *p;
            if (c->in_cap >= N->in_limit) return 0; /* full: the request is too large, or pipelined */
            if (cap > N->in_limit) cap = N->in_limit;
            if (!(p = (char *)gpt__realloc(c->in, cap))) return -1;
            c->in = p;
            c->in_cap = cap;
        }
        n = recv(c->fd, c->in + c->in_n, c->in_cap - c->in_n, 0);
        if (n > 0) {
            if (c->in_n == 0 && c->state == C_READ) c->started = now();
            c->in_n += (size_t)n;
            c->last_read = now();
            if (c->in_n < c->in_cap) return 0;
            continue;
        }
        if (n == 0) return -1;
        if (errno == EINTR) continue;
        return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
    }
}

/* Sends what it can. Returns -1 when the peer is gone. */
static int conn_write(conn *c)
{
    while (c->out_off < c->out.n) {
        ssize_t w = send(c->fd, c->out.p + c->out_off, c->out.n - c->out_off, MSG_NOSIGNAL);
        if (w > 0) {
            c->out_off += (size_t)w;
            c->write_wait = now();
            continue;
        }
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        return -1;
    }
    if (c->out_off == c->out.n) {
        if (c->out.cap > MAX_PENDING_OUT) sb_free(&c->out);
        else sb_reset(&c->out);
        c->out_off = 0;
        c->write_wait = 0;
    } else if (c->write_wait == 0) {
        c->write_wait = now();
    }
    return c->out.failed ? -1 : 0;
}

static void conn_consume(conn *c, size_t n)
{
    memmove(c->in, c->in + n, c->in_n - n);
    c->in_n -= n;
    if (c->in_n == 0 && c->in_cap > 65536) { /* an idle connection keeps a small buffer */
        gpt__free(c->in);
        c->in = NULL;
        c->in_cap = 0;
    }
}

static void http_error(conn *c, int status, const char *why)
{
    api_error e;
    api_fail(&e, status, "invalid_request_error", NULL, NULL, "%s", why ? why : http_reason(status));
    srv_error_response(&c->out, &e, 0, NULL);
    c->close_after = 1;
}

/* Parses and answers the requests in the buffer, in order, until one is
 * incomplete or a completion must wait for the scheduler. */
static void conn_process(net *N, conn *c)
{
    while (c->state == C_READ && !c->close_after && c->in_n > 0 && c->out.n < MAX_PENDING_OUT) {
        http_request h;
        srv_reply rep;
        char *decoded = NULL;
        const char *body;
        int r = http_parse(c->in, c->in_n, &N->s->cfg.http, &h), keep;
        double t0 = now();
        if (r == 0) {
            if (h.head_len && h.expect_continue && !c->continue_sent) {
                sb_puts(&c->out, "HTTP/1.1 100 Continue\r\n\r\n");
                c->continue_sent = 1;
            }
            if (c->in_n >= N->in_limit) http_error(c, 413, "the request is too large");
            return;
        }
        if (r >= 400) {
            snprintf(c->what, sizeof c->what, "(bad request)");
            http_error(c, r, h.why);
            N->s->n_errors++;
            conn_log(N, c, r, t0);
            return;
        }
        snprintf(c->what, sizeof c->what, "%.*s %.*s", (int)(h.method_len > 8 ? 8 : h.method_len), h.method,
                 (int)(h.target_len > 32 ? 32 : h.target_len), h.target);
        body = h.body;
        if (h.chunked) {
            if (!(decoded = (char *)gpt__alloc(h.body_len + 1))) {
                http_error(c, 500, "out of memory");
                return;
            }
            http_dechunk(c->in, &h, decoded);
            body = decoded;
        }
        keep = h.keep_alive && !N->s->draining;
        srv_route(N->s, &h, body ? body : "", h.body_len, keep, &c->out, &rep);
        gpt__free(decoded);
        conn_consume(c, h.consumed);
        c->continue_sent = 0;
        c->served++;
        c->started = c->last_read = now();
        if (rep.req) {
            c->state = C_BUSY;
            c->req = rep.req;
            c->keep_alive = keep;
            c->chunked = rep.req->stream && h.minor >= 1;
            c->req_time = t0;
        } else {
            conn_log(N, c, rep.status, t0);
            if (!keep || rep.close) c->close_after = 1;
        }
    }
}

/* Stream bytes: an HTTP chunk each (HTTP/1.0: as they are). */
static void conn_frame(conn *c, const char *p, size_t n)
{
    if (n == 0) return;
    if (c->chunked) sb_printf(&c->out, "%lx\r\n", (unsigned long)n);
    sb_put(&c->out, p, n);
    if (c->chunked) sb_puts(&c->out, "\r\n");
}

/* Takes what the scheduler has for the connection's completion. */
static void conn_pump(net *N, conn *c)
{
    sbuf got = {NULL, 0, 0, 0};
    srv_request *r = c->req;
    int done = sched_collect(N->s->sched, r, &got);
    if (r->stream) conn_frame(c, got.p, got.n);
    if (got.failed) c->out.failed = 1;
    sb_free(&got);
    if (!done) return;
    if (r->stream) {
        srv_completion_end(r, c->keep_alive, &got);
        conn_frame(c, got.p, got.n);
        if (c->chunked) sb_puts(&c->out, "0\r\n\r\n");
        else c->close_after = 1; /* HTTP/1.0: the body ends with the connection */
        sb_free(&got);
    } else {
        srv_completion_end(r, c->keep_alive, &c->out);
    }
    if (r->failed) N->s->n_errors++;
    conn_log(N, c, r->failed ? r->error.status : 200, c->req_time);
    sched_release(N->s->sched, r, 0);
    c->req = NULL;
    c->state = C_READ;
    c->started = c->last_read = now(); /* idle from the end of the response */
    if (!c->keep_alive || N->s->draining) c->close_after = 1;
}

/* Moves a connection on after an event: sends, answers what is buffered,
 * starts the lingering close. Returns -1 when it must be closed. */
static int conn_advance(net *N, conn *c)
{
    for (;;) {
        size_t in_before = c->in_n;
        if (conn_write(c) < 0) return -1;
        if (c->state != C_READ || c->out.n > 0) return 0; /* waiting for the scheduler, or for the client */
        if (c->close_after) {
            /* lingering close: the client reads the response before it sees the end */
            shutdown(c->fd, SHUT_WR);
            c->state = C_LINGER;
            c->linger_until = now() + LINGER_SECONDS;
            return 0;
        }
        if (c->in_n == 0) return 0;
        conn_process(N, c);
        if (c->out.n == 0 && c->state == C_READ && !c->close_after && c->in_n == in_before) return 0;
    }
}

/* When the connection's next timeout falls, or a huge value. */
static double conn_deadline(const net *N, const conn *c)
{
    double t = N->s->cfg.timeout, d = 1e300;
    if (c->state == C_LINGER) return c->linger_until;
    if (c->write_wait > 0) d = c->write_wait + t;
    if (c->state == C_READ && c->out.n == 0 && !c->close_after) {
        if (c->in_n > 0) {
            if (c->started + t < d) d = c->started + t;
        } else if (N->s->draining) {
            if (c->served > 0) return 0; /* idle keep-alive connection: closed now */
            d = c->last_read + t < N->drain_started + DRAIN_GRACE ? c->last_read + t : N->drain_started + DRAIN_GRACE;
        } else if (c->last_read + t < d) {
            d = c->last_read + t;
        }
    }
    return d;
}

/* A timeout fell: returns -1 to close. */
static int conn_timeout(net *N, conn *c)
{
    if (c->state == C_LINGER || c->write_wait > 0 || c->in_n == 0) return -1;
    http_error(c, 408, "the request did not arrive in time (--timeout)");
    N->s->n_errors++;
    snprintf(c->what, sizeof c->what, "(slow request)");
    conn_log(N, c, 408, c->started);
    return conn_advance(N, c);
}

/* ------------------------------------------------------------------------ */
/* The loop                                                                 */

static void refuse(int fd, srv_server *s)
{
    sbuf b = {NULL, 0, 0, 0};
    api_error e;
    api_fail(&e, 503, "server_error", "too_many_connections", NULL,
             "The server has %d connections open, its limit (--max-conns). Retry later.", s->cfg.max_conns);
    srv_error_response(&b, &e, 0, NULL);
    if (send(fd, b.p, b.n, MSG_NOSIGNAL) < 0) {}
    sb_free(&b);
}

static void accept_all(net *N)
{
    int k;
    for (k = 0; k < 256; k++) {
        int fd = accept(N->listen_fd, NULL, NULL), one = 1;
        conn *c;
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                N->accept_paused_until = now() + 0.1;
            return;
        }
        if (set_nonblocking(fd) < 0) {
            close(fd);
            continue;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (N->n_conns >= N->s->cfg.max_conns || !(c = (conn *)gpt__calloc(1, sizeof *c))) {
            refuse(fd, N->s);
            close(fd);
            continue;
        }
        c->fd = fd;
        c->state = C_READ;
        c->started = c->last_read = now();
        N->conns[N->n_conns++] = c;
    }
}

static void start_drain(net *N)
{
    int queued, running;
    if (N->listen_fd >= 0) {
        accept_all(N); /* what is in the listen queue has been started by its client */
        close(N->listen_fd);
        N->listen_fd = -1;
    }
    N->s->draining = 1;
    N->drain_started = now();
    sched_load(N->s->sched, &queued, &running);
    fprintf(stderr, "gpt serve: stopping: no new connections; finishing %d connections (%d prompts running, %d "
            "queued)\n", N->n_conns, running, queued);
}

/* One poll() over the wake pipe, the listener and the connections. */
static void poll_once(net *N)
{
    int n = 0, i, base, timeout_ms;
    double t = now(), next = t + 1.0;
    N->pfds[n].fd = N->wake[0];
    N->pfds[n++].events = POLLIN;
    N->pfds[n].fd = N->listen_fd >= 0 && t >= N->accept_paused_until ? N->listen_fd : -1;
    N->pfds[n++].events = POLLIN;
    base = n;
    for (i = 0; i < N->n_conns; i++) {
        conn *c = N->conns[i];
        double d = conn_deadline(N, c);
        short ev = 0;
        if (c->state == C_LINGER || c->in_n < N->in_limit) ev |= POLLIN;
        if (c->out.n > c->out_off) ev |= POLLOUT;
        N->pfds[n].fd = c->fd;
        N->pfds[n++].events = ev;
        if (d < next) next = d;
    }
    timeout_ms = next <= t ? 0 : (int)((next - t) * 1000.0) + 1;
    if (poll(N->pfds, (nfds_t)n, timeout_ms) < 0) {
        if (errno != EINTR) {
            fprintf(stderr, "gpt serve: poll: %s\n", strerror(errno));
            N->force = 1;
        }
        return;
    }
    if (N->pfds[0].revents) {
        char junk[256];
        while (read(N->wake[0], junk, sizeof junk) > 0) {}
        for (i = 0; i < N->n_conns; i++) /* the scheduler has news for some of them */
            if (N->conns[i]->req) conn_pump(N, N->conns[i]);
    }
    /* the connections polled, in their order then (new ones come after) */
    for (i = n - base - 1; i >= 0; i--) {
        conn *c = N->conns[i];
        short re = N->pfds[base + i].revents;
        int bad = 0;
        if (re & (POLLERR | POLLHUP)) bad = 1; /* reset by the peer */
        else if ((re & POLLIN) && conn_read(N, c) < 0) bad = 1;
        if (!bad) bad = conn_advance(N, c) < 0;
        if (!bad && conn_deadline(N, c) <= now()) bad = conn_timeout(N, c) < 0;
        if (bad) conn_close(N, i, 1);
    }
    if (N->pfds[1].fd >= 0 && (N->pfds[1].revents & POLLIN)) accept_all(N);
}

/* Keeps the connection limit under the descriptors the process may open. */
static void fit_max_conns(srv_config *cfg)
{
    struct rlimit rl;
    rlim_t want = (rlim_t)cfg->max_conns + 64;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
        rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= want ? want : rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
        if (rl.rlim_cur < want) {
            int fit = rl.rlim_cur > 96 ? (int)rl.rlim_cur - 64 : 32;
            fprintf(stderr, "gpt serve: warning: the process may open %lu files; --max-conns lowered from %d to %d\n",
                    (unsigned long)rl.rlim_cur, cfg->max_conns, fit);
            cfg->max_conns = fit;
        }
    }
}

int srv_run(srv_server *s, const srv_sched_params *sp)
{
    net N;
    struct sigaction sa;
    gpt_error err;
    char shown[200];
    int rc = 0, i;
    memset(&N, 0, sizeof N);
    N.s = s;
    N.wake[0] = N.wake[1] = -1;
    fit_max_conns(&s->cfg);
    N.in_limit = s->cfg.http.max_head + s->cfg.http.max_body + 65536;
    N.conns = (conn **)gpt__calloc((size_t)s->cfg.max_conns, sizeof(conn *));
    N.pfds = (struct pollfd *)gpt__calloc((size_t)s->cfg.max_conns + 2, sizeof(struct pollfd));
    if (!N.conns || !N.pfds || pipe(N.wake) != 0 || set_nonblocking(N.wake[0]) != 0 ||
        set_nonblocking(N.wake[1]) != 0) {
        fprintf(stderr, "gpt serve: cannot set up: %s\n", strerror(errno));
        rc = 1;
        goto done;
    }
    signal(SIGPIPE, SIG_IGN);
    if ((N.listen_fd = open_listener(s->cfg.host, s->cfg.port, shown, sizeof shown)) < 0) {
        rc = 1;
        goto done;
    }
    if (!(s->sched = sched_start(s->model, sp, N.wake[1], &err))) {
        fprintf(stderr, "gpt serve: %s\n", err.message);
        rc = 1;
        goto done;
    }
    signal_pipe = N.wake[1];
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    fprintf(stderr, "listening on %s\n", shown);
    fflush(stderr);
    for (;;) {
        if (got_signals >= 1 && !s->draining) start_drain(&N);
        if (got_signals >= 2 || N.force) {
            fprintf(stderr, "gpt serve: stopping at once: %d connections closed\n", N.n_conns);
            rc = 1;
            break;
        }
        if (s->draining && N.n_conns == 0) break;
        poll_once(&N);
    }
done:
    for (i = N.n_conns - 1; i >= 0; i--) conn_close(&N, i, 1);
    sched_stop(s->sched, 1);
    s->sched = NULL;
    signal_pipe = -1;
    if (N.listen_fd >= 0) close(N.listen_fd);
    if (N.wake[0] >= 0) close(N.wake[0]);
    if (N.wake[1] >= 0) close(N.wake[1]);
    gpt__free(N.conns);
    gpt__free(N.pfds);
    if (rc == 0)
        fprintf(stderr, "gpt serve: stopped after %llu requests (%llu errors)\n", s->n_requests, s->n_errors);
    return rc;
}

#endif /* !_WIN32 */
