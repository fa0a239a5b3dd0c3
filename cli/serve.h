/*
 * serve.h - the parts of `gpt serve` (not the library). docs/SERVER.md
 * describes the server from the outside; this header is the map inside:
 *
 *   serve_json.c    a growable byte buffer and the JSON writer (pure)
 *   serve_http.c    the HTTP/1.1 request parser over a byte buffer and the
 *                   response head writer (pure; fuzzed by tests/fuzz/fuzz_http.c)
 *   serve_api.c     OpenAI's completions request -> checked parameters, and
 *                   the responses, stream chunks and errors it returns (pure;
 *                   fuzzed by tests/fuzz/fuzz_request.c)
 *   serve_sched.c   the scheduler: one thread owns the model's context and
 *                   advances every running request in one batched step per token
 *   serve_routes.c  the endpoints: authentication, routing, tokenizing prompts,
 *                   handing completions to the scheduler
 *   serve_net.c     the sockets: one thread, poll(), connections, timeouts,
 *                   limits, the shutdown on SIGINT/SIGTERM
 *   cmd_serve.c     the command's options and start-up
 *
 * Threads: the network thread (the command's main thread) does all socket
 * I/O, parsing and tokenizing; the scheduler thread makes every call on the
 * context. They share srv_request objects under the scheduler's mutex and
 * the scheduler wakes the network thread through a pipe.
 */
#ifndef GPT_CLI_SERVE_H
#define GPT_CLI_SERVE_H

#include <stddef.h>
#include <stdint.h>

/* The gpt command shares the library's internal helpers (gpt.h's end). */
#ifndef GPT_INTERNAL
#define GPT_INTERNAL
#endif
#include "gpt.h"
#include "json.h"

/* ------------------------------------------------------------------------ */
/* Byte buffers and JSON output (serve_json.c)                               */

typedef struct sbuf {
    char *p;     /* NUL-terminated when n > 0 */
    size_t n, cap;
    int failed;  /* an allocation failed: the content is incomplete */
} sbuf;

void sb_put(sbuf *b, const void *s, size_t n);
void sb_puts(sbuf *b, const char *s);
void sb_printf(sbuf *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Drops the first n bytes. */
void sb_consume(sbuf *b, size_t n);
void sb_reset(sbuf *b); /* empty, keeping the memory */
void sb_free(sbuf *b);

/* A JSON string of n bytes: quotes, escapes; bytes that are not well-formed
 * UTF-8 become U+FFFD, so the output is always valid JSON. */
void jw_str(sbuf *b, const char *s, size_t n);
void jw_cstr(sbuf *b, const char *s);
/* A number; NaN is written as null and infinities as -9999 / 9999 (JSON
 * has neither). */
void jw_num(sbuf *b, double v);
/* A token as OpenAI names it in logprobs: its text when its bytes are
 * well-formed UTF-8, otherwise "bytes:\xNN..." with the bytes in hex. */
void jw_token(sbuf *b, const char *bytes, size_t n);
/* Unicode characters in n bytes (text offsets count characters). */
size_t utf8_chars(const char *s, size_t n);

/* ------------------------------------------------------------------------ */
/* HTTP/1.1 requests (serve_http.c)                                          */

#define HTTP_MAX_FIELDS 64

typedef struct http_limits {
    size_t max_head; /* request line and header fields, with their line ends */
    size_t max_body; /* the body (decoded, when chunked) */
} http_limits;

typedef struct http_field {
    const char *name, *value; /* not NUL-terminated; value without surrounding spaces */
    size_t name_len, value_len;
} http_field;

typedef struct http_request {
    const char *method, *target; /* into the buffer */
    size_t method_len, target_len;
    int minor;                   /* HTTP/1.minor: 0 or 1 */
    http_field fields[HTTP_MAX_FIELDS];
    int n_fields;
    size_t head_len;             /* bytes of the head (request line to empty line); 0 until whole */
    int chunked;                 /* Transfer-Encoding: chunked */
    int keep_alive;              /* the client wants the connection kept */
    int expect_continue;         /* Expect: 100-continue */
    const char *body;            /* Content-Length: into the buffer; chunked: NULL (http_dechunk) */
    size_t body_len;             /* the body's (decoded) length, once complete */
    size_t consumed;             /* bytes of the whole request, once complete */
    const char *why;             /* what was wrong, for an error status */
} http_request;

/* Parses the request at the start of buf[0 .. len). Returns 0 when more
 * bytes are needed (head_len is set as soon as the head is whole), 1 when
 * the whole request is there, or an HTTP status for a bad request: 400
 * (malformed; req->why says what), 413 (body over max_body), 417 (unknown
 * Expect), 431 (head over max_head or too many fields), 501 (a transfer
 * coding other than chunked), 505 (not HTTP/1.x). A prefix of a request
 * that parses is never an error. Reads only buf[0 .. len). */
int http_parse(const char *buf, size_t len, const http_limits *lim, http_request *req);
/* Copies the decoded body of a complete chunked request (whose head ends
 * at buf + req->head_len) to out, which has room for req->body_len bytes. */
void http_dechunk(const char *buf, const http_request *req, char *out);
/* A header field by name (any case), or NULL. */
const http_field *http_field_get(const http_request *req, const char *name);
/* The reason phrase of a status: "Bad Request". */
const char *http_reason(int status);
/* Writes a response head: status line, Content-Type (if not NULL),
 * Content-Length (when >= 0; -1: chunked when chunked is set, else none),
 * Connection, and extra (whole header lines with CRLF, or NULL). */
void http_head(sbuf *b, int status, const char *content_type, long long content_length, int chunked,
               int keep_alive, const char *extra);

/* ------------------------------------------------------------------------ */
/* OpenAI's API: requests, results, responses (serve_api.c)                  */

#define API_MAX_STOP 16        /* stop strings in one request */
#define API_MAX_STOP_BYTES 1024
#define API_MAX_N 128          /* choices per prompt (OpenAI's limit too) */

/* An error as OpenAI returns it: {"error": {"message", "type", "param",
 * "code"}} with an HTTP status. */
typedef struct api_error {
    int status;
    const char *type;  /* "invalid_request_error", "authentication_error", "server_error" */
    const char *code;  /* NULL: null */
    const char *param; /* NULL: null */
    char message[400];
} api_error;

/* Fills e; returns 0 (so that a parser can `return api_fail(...)`). */
int api_fail(api_error *e, int status, const char *type, const char *code, const char *param, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 6, 7)))
#endif
    ;
/* The error's JSON body. */
void api_error_json(sbuf *b, const api_error *e);

/* What a request may ask for. */
typedef struct api_limits {
    int n_ctx;       /* positions of a sequence */
    int n_vocab;
    int max_tokens;  /* most max_tokens */
    int max_choices; /* most prompts x n (the server's slots) */
} api_limits;

/* One prompt: text (from a JSON string) or token ids (a JSON array). */
typedef struct api_prompt {
    const char *text; /* NULL when ids */
    size_t len;
    int *ids;         /* malloc'd when the prompt is ids */
    int n_ids;
} api_prompt;

/* A checked completions request. Its strings point into the JSON tree it
 * was read from, which must outlive it. */
typedef struct api_completion {
    const char *model;     /* NULL: not given */
    api_prompt *prompts;   /* malloc'd */
    int n_prompts;
    int n;                 /* choices per prompt */
    int stream, echo, include_usage;
    int logprobs;          /* -1: null (none); else 0 .. GPT_MAX_LOGPROBS */
    int has_seed;
    gpt_generate_params gp; /* sampling, the seed, max_new_tokens, stop */
    const char *stop[API_MAX_STOP];
} api_completion;

/* Reads and checks a completions request (OpenAI's fields, GPT-2's top_k,
 * min_p and repetition_penalty; unknown fields are ignored). Returns 1, or
 * 0 with err filled (status 400, the offending param named) and nothing
 * left to free. */
int api_parse_completion(const json *root, const api_limits *lim, api_completion *out, api_error *err);
void api_completion_free(api_completion *c);

/* Tokens with their log-probabilities, for the logprobs object. */
typedef struct srv_tokens {
    int n, cap;
    int n_top;               /* alternatives kept per token */
    int *ids;
    float *lp;               /* NaN: null (the first token of a prompt) */
    gpt_token_logprob *top;  /* [cap * n_top] */
    int *n_tops;             /* [cap] alternatives of each token (0: null) */
} srv_tokens;

/* Appends a token; returns 0 when out of memory. */
int srv_tokens_add(srv_tokens *t, int id, float lp, const gpt_token_logprob *top, int n_top);
void srv_tokens_free(srv_tokens *t);

/* One choice's result. */
typedef struct srv_choice {
    sbuf text;           /* the generated text (not the echoed prompt) */
    srv_tokens toks;     /* generated tokens, when logprobs were asked */
    int finish;          /* gpt_stop_reason; GPT_STOP_NONE while it runs */
    int n_generated;     /* tokens sampled */
    size_t tok_chars;    /* characters of the tokens' bytes so far (text_offset) */
} srv_choice;

struct srv_request;

/* One prompt of a request and its n choices: what the scheduler runs. */
typedef struct srv_job {
    struct srv_request *req;
    int index;              /* the response index of its first choice */
    int *ids;               /* the prompt */
    int n_ids;
    char *prompt_text;      /* the prompt as text, for echo */
    size_t prompt_len;
    srv_tokens prompt_toks; /* echo with logprobs: the prompt's tokens */
    int n_prompt_tokens;    /* tokens the prompt took (an empty prompt is <|endoftext|>) */
    srv_choice *choices;    /* [req->n] */
    /* the scheduler's */
    gpt_generator *gen;
    int *seqs;              /* [req->n] the context's sequences it uses */
    int n_running;          /* choices not yet finished */
    int state;              /* SRV_JOB_* */
    struct srv_job *next;   /* in the queue */
} srv_job;

enum { SRV_JOB_QUEUED, SRV_JOB_RUNNING, SRV_JOB_DONE };

/* One HTTP request for completions: a job per prompt. */
typedef struct srv_request {
    char id[40];            /* "cmpl-..." */
    long long created;      /* Unix time */
    const char *model;      /* the served model's name */
    int n, stream, echo, include_usage;
    int logprobs;           /* -1: none */
    gpt_generate_params gp;
    char **stop;            /* copies of the stop strings (gp.stop points here) */
    int n_jobs;
    srv_job *jobs;
    const gpt_tokenizer *tok;
    /* under the scheduler's mutex */
    sbuf events;            /* stream: whole server-sent events, ready to send */
    int jobs_left;          /* jobs the scheduler has not finished */
    int cancelled;          /* the client went away */
    int failed;             /* the library failed: error holds why (status 500) */
    api_error error;
    int refs;               /* the connection's and the scheduler's */
} srv_request;

/* Builds a request from a checked completions request: its jobs with their
 * prompts as ids (tokenized here), the stop strings copied. NULL with err
 * filled (400 when a prompt does not fit, 500 when out of memory). */
srv_request *srv_request_new(const api_completion *c, const gpt_tokenizer *tok, const char *model,
                             const api_limits *lim, api_error *err);
void srv_request_free(srv_request *r);

/* The whole response of a finished request (non-stream). */
void api_render_response(sbuf *b, const srv_request *r);
/* One stream event for choice index of job j: its new text, the tokens
 * from toks->ids[from .. toks->n) (when logprobs are asked), and the
 * finish reason (GPT_STOP_NONE: null). Updates the choice's offsets. */
void api_render_chunk(sbuf *b, const srv_request *r, srv_job *j, int choice, const char *text, size_t len,
                      const srv_tokens *toks, int from, int finish);
/* The stream's last events: usage (when asked) and data: [DONE]. */
void api_render_stream_end(sbuf *b, const srv_request *r);
/* A stream event carrying an error. */
void api_render_stream_error(sbuf *b, const api_error *e);
/* OpenAI's finish_reason for a stop reason: "stop", "length" or NULL. */
const char *api_finish_reason(int stop_reason);

/* ------------------------------------------------------------------------ */
/* The scheduler (serve_sched.c)                                             */

typedef struct srv_sched srv_sched;

typedef struct srv_sched_params {
    int slots;      /* sequences of the context: choices that run at once */
    int queue;      /* jobs that may wait for a slot */
    int n_ctx;
    int n_threads;
    int kv_type;
    int verbose;    /* log cancelled jobs on stderr */
} srv_sched_params;

/* Creates the context (n_seq = slots) and starts the scheduler thread,
 * which writes a byte to wake_fd whenever a request has something new. */
srv_sched *sched_start(const gpt_model *m, const srv_sched_params *p, int wake_fd, gpt_error *err);
/* Queues a request's jobs. Returns 0, or -1 when the queue has no room for
 * them (the request is not taken). On success the request holds a
 * reference for the scheduler. */
int sched_submit(srv_sched *s, srv_request *r);
/* Moves the stream events the request has ready to out; returns 1 once
 * every job of the request is finished (its results may then be read
 * without the lock), else 0. */
int sched_collect(srv_sched *s, srv_request *r, sbuf *out);
/* The connection is done with the request (cancel: the client went away;
 * its running sequences are dropped at the next step). Frees it when the
 * scheduler is done with it too. */
void sched_release(srv_sched *s, srv_request *r, int cancel);
/* Jobs waiting and running, and choices running. */
void sched_load(srv_sched *s, int *queued, int *running);
/* Finishes every request (cancels them when cancel is set), stops the
 * thread and frees the context. */
void sched_stop(srv_sched *s, int cancel);

/* ------------------------------------------------------------------------ */
/* The server (serve_routes.c, serve_net.c)                                  */

typedef struct srv_config {
    const char *host;
    int port;
    const char *api_key;   /* NULL: none */
    const char *model_name;
    long long model_created;
    int timeout;           /* seconds */
    int max_conns;
    http_limits http;
    api_limits api;
    int verbose;
} srv_config;

typedef struct srv_server {
    srv_config cfg;
    const gpt_model *model;
    const gpt_tokenizer *tok;
    srv_sched *sched;
    int draining;          /* SIGINT/SIGTERM: no new connections */
    /* counters, for the log */
    unsigned long long n_requests, n_errors;
} srv_server;

/* What a request gets back at once: a whole response in out (a JSON body
 * with its head), or a completion started (req) whose head (for a stream)
 * is already in out. */
typedef struct srv_reply {
    int status;
    int close;             /* close the connection after the response */
    srv_request *req;      /* a completion handed to the scheduler */
} srv_reply;

/* Handles one parsed request (serve_routes.c). */
void srv_route(srv_server *s, const http_request *h, const char *body, size_t body_len, int keep_alive,
               sbuf *out, srv_reply *reply);
/* Writes a whole JSON error response; extra: more header lines, or NULL
 * (401 and 503 add their own). */
void srv_error_response(sbuf *out, const api_error *e, int keep_alive, const char *extra);
/* The rest of a completion once the scheduler has finished it: the stream's
 * last events (body bytes, to be framed by the caller), or the whole
 * response with its head. */
void srv_completion_end(srv_request *r, int keep_alive, sbuf *out);

/* Listens, starts the scheduler and serves until SIGINT/SIGTERM
 * (serve_net.c); returns the command's exit status. */
int srv_run(srv_server *s, const srv_sched_params *sp);

#endif
