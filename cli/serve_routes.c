/*
 * serve_routes.c - the endpoints of `gpt serve`: the API key, the routes,
 * and what each one answers. Runs on the network thread; a completion is
 * checked and tokenized here and handed to the scheduler.
 *
 *   GET  /health               {"status": "ok"} (no key needed)
 *   GET  /v1/models            the served model, in OpenAI's list
 *   GET  /v1/models/{id}       the model, or 404
 *   POST /v1/completions       OpenAI's completions (serve_api.c)
 *   POST /tokenize             {"content": "..."} -> {"tokens": [...]} (llama.cpp's)
 *   POST /detokenize           {"tokens": [...]} -> {"content": "..."}
 */
#if (defined(__unix__) || defined(__APPLE__)) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif
#include "cli.h"
#include "serve.h"

#if !defined(_WIN32)
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------------ */
/* Responses                                                                */

void srv_error_response(sbuf *out, const api_error *e, int keep_alive, const char *extra)
{
    sbuf body = {NULL, 0, 0, 0};
    api_error_json(&body, e);
    if (!extra && e->status == 401) extra = "WWW-Authenticate: Bearer\r\n";
    if (!extra && e->status == 503) extra = "Retry-After: 1\r\n";
    http_head(out, e->status, "application/json", (long long)body.n, 0, keep_alive, extra);
    sb_put(out, body.p, body.n);
    sb_free(&body);
}

static void json_response(sbuf *out, int status, sbuf *body, int keep_alive)
{
    if (body->failed) {
        api_error e;
        api_fail(&e, 500, "server_error", NULL, NULL, "out of memory");
        srv_error_response(out, &e, keep_alive, NULL);
        return;
    }
    http_head(out, status, "application/json", (long long)body->n, 0, keep_alive, NULL);
    sb_put(out, body->p, body->n);
}

void srv_completion_end(srv_request *r, int keep_alive, sbuf *out)
{
    sbuf body = {NULL, 0, 0, 0};
    if (r->stream) {
        if (r->failed) api_render_stream_error(out, &r->error);
        api_render_stream_end(out, r);
        return;
    }
    if (r->failed) {
        srv_error_response(out, &r->error, keep_alive, NULL);
        return;
    }
    api_render_response(&body, r);
    json_response(out, 200, &body, keep_alive);
    sb_free(&body);
}

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */

/* splitmix64 over a state seeded at start-up: request ids, and the seeds
 * of requests that give none. The network thread is the only caller. */
static uint64_t next_random(void)
{
    static uint64_t state;
    uint64_t z;
    if (state == 0) state = (uint64_t)time(NULL) * 0x9E3779B97F4A7C15ULL ^ (uint64_t)getpid() << 32 ^ 0x5851F42D4C957F2DULL;
    z = (state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* Compares without stopping at the first difference (the key's length is
 * not secret). */
static int same_secret(const char *a, size_t an, const char *b)
{
    size_t bn = strlen(b), i;
    unsigned diff = an != bn;
    for (i = 0; i < an; i++) diff |= (unsigned char)a[i] ^ (unsigned char)(i < bn ? b[i] : 0);
    return diff == 0;
}

static int authorized(const srv_server *s, const http_request *h, api_error *e)
{
    const http_field *f;
    if (!s->cfg.api_key) return 1;
    f = http_field_get(h, "authorization");
    if (!f || f->value_len < 7 || (f->value[0] | 0x20) != 'b' || strncmp(f->value + 1, "earer ", 6) != 0) {
        return api_fail(e, 401, "invalid_request_error", "invalid_api_key", NULL,
                        "You didn't provide an API key. Send it in an Authorization header using Bearer auth "
                        "(Authorization: Bearer YOUR_KEY).");
    }
    if (!same_secret(f->value + 7, f->value_len - 7, s->cfg.api_key))
        return api_fail(e, 401, "invalid_request_error", "invalid_api_key", NULL, "Incorrect API key provided.");
    return 1;
}

static int is(const char *path, size_t n, const char *want) { return strlen(want) == n && !memcmp(path, want, n); }

static json *parse_body(const char *body, size_t len, api_error *e)
{
    json_error je;
    json *root = json_parse(body, len, &je);
    if (!root && je.out_of_memory)
        api_fail(e, 503, "server_error", NULL, NULL, "The server ran out of memory reading your request.");
    else if (!root)
        api_fail(e, 400, "invalid_request_error", NULL, NULL,
                 "We could not parse the JSON body of your request: %s at byte %lu.", je.message,
                 (unsigned long)je.offset);
    return root;
}

/* ------------------------------------------------------------------------ */
/* Endpoints                                                                */

static void model_object(sbuf *b, const srv_server *s)
{
    gpt_config c = gpt_model_config(s->model);
    sb_puts(b, "{\"id\":");
    jw_cstr(b, s->cfg.model_name);
    sb_printf(b, ",\"object\":\"model\",\"created\":%lld,\"owned_by\":\"gpt.c\",\"meta\":{\"n_vocab\":%d,"
              "\"n_ctx_train\":%d,\"n_ctx\":%d,\"n_embd\":%d,\"n_layer\":%d,\"n_params\":%llu}}",
              s->cfg.model_created, c.n_vocab, c.n_ctx, s->cfg.api.n_ctx, c.n_embd, c.n_layer,
              (unsigned long long)c.n_params);
}

static void get_models(srv_server *s, const char *path, size_t n, int keep_alive, sbuf *out)
{
    sbuf b = {NULL, 0, 0, 0};
    api_error e;
    if (n > 11) { /* /v1/models/{id} */
        if (!is(path + 11, n - 11, s->cfg.model_name)) {
            api_fail(&e, 404, "invalid_request_error", "model_not_found", "model", "The model `%.*s` does not exist.",
                     (int)(n - 11 > 200 ? 200 : n - 11), path + 11);
            srv_error_response(out, &e, keep_alive, NULL);
            return;
        }
        model_object(&b, s);
    } else {
        sb_puts(&b, "{\"object\":\"list\",\"data\":[");
        model_object(&b, s);
        sb_puts(&b, "]}");
    }
    json_response(out, 200, &b, keep_alive);
    sb_free(&b);
}

static void post_tokenize(srv_server *s, const char *body, size_t len, int keep_alive, sbuf *out)
{
    api_error e;
    json *root = parse_body(body, len, &e);
    const json *content, *flag;
    int special = 1, pieces = 0, n = 0, *ids = NULL, i;
    sbuf b = {NULL, 0, 0, 0};
    if (!root) goto fail;
    if (root->type != JSON_OBJECT) {
        api_fail(&e, 400, "invalid_request_error", NULL, NULL, "The request body must be a JSON object.");
        goto fail;
    }
    content = json_get(root, "content");
    if (!content || content->type != JSON_STRING) {
        api_fail(&e, 400, "invalid_request_error", NULL, "content", "'content' must be a string.");
        goto fail;
    }
    if ((flag = json_get(root, "parse_special")) != NULL && flag->type == JSON_BOOL) special = flag->boolean;
    if ((flag = json_get(root, "with_pieces")) != NULL && flag->type == JSON_BOOL) pieces = flag->boolean;
    if (content->len > 0) {
        int flags = special ? GPT_TOKENIZE_SPECIAL : 0;
        n = gpt_tokenize_ex(s->tok, content->str, content->len, NULL, 0, flags);
        if (n < 0 || !(ids = (int *)gpt__alloc(sizeof(int) * (size_t)n))) {
            api_fail(&e, 500, "server_error", NULL, NULL, "cannot tokenize the content");
            goto fail;
        }
        gpt_tokenize_ex(s->tok, content->str, content->len, ids, n, flags);
    }
    sb_puts(&b, "{\"tokens\":[");
    for (i = 0; i < n; i++) {
        if (i) sb_puts(&b, ",");
        if (pieces) {
            size_t bl = 0, k;
            const char *bytes = gpt_token_bytes(s->tok, ids[i], &bl);
            sb_printf(&b, "{\"id\":%d,\"piece\":", ids[i]);
            if (cli_utf8_valid(bytes, bl)) {
                jw_str(&b, bytes, bl);
            } else { /* llama.cpp's form for a piece that is not text: its bytes */
                sb_puts(&b, "[");
                for (k = 0; k < bl; k++) sb_printf(&b, "%s%u", k ? "," : "", (unsigned)(unsigned char)bytes[k]);
                sb_puts(&b, "]");
            }
            sb_puts(&b, "}");
        } else {
            sb_printf(&b, "%d", ids[i]);
        }
    }
    sb_puts(&b, "]}");
    json_response(out, 200, &b, keep_alive);
    sb_free(&b);
    gpt__free(ids);
    json_free(root);
    return;
fail:
    srv_error_response(out, &e, keep_alive, NULL);
    gpt__free(ids);
    json_free(root);
}

static void post_detokenize(srv_server *s, const char *body, size_t len, int keep_alive, sbuf *out)
{
    api_error e;
    json *root = parse_body(body, len, &e);
    const json *toks;
    int *ids = NULL, n = 0, i, bytes;
    char *text = NULL;
    sbuf b = {NULL, 0, 0, 0};
    if (!root) goto fail;
    if (root->type != JSON_OBJECT) {
        api_fail(&e, 400, "invalid_request_error", NULL, NULL, "The request body must be a JSON object.");
        goto fail;
    }
    toks = json_get(root, "tokens");
    if (toks && toks->type != JSON_NULL) {
        if (toks->type != JSON_ARRAY) {
            api_fail(&e, 400, "invalid_request_error", NULL, "tokens", "'tokens' must be an array of token ids.");
            goto fail;
        }
        if (!(ids = (int *)gpt__alloc(sizeof(int) * (toks->len + 1)))) {
            api_fail(&e, 500, "server_error", NULL, NULL, "out of memory");
            goto fail;
        }
        for (i = 0; i < (int)toks->len; i++) {
            const json *t = &toks->items[i];
            if (t->type != JSON_NUMBER || !t->is_int || t->integer < 0 || t->integer >= s->cfg.api.n_vocab) {
                api_fail(&e, 400, "invalid_request_error", NULL, "tokens",
                         "Invalid token at index %d of 'tokens': token ids are integers 0 .. %d.", i,
                         s->cfg.api.n_vocab - 1);
                goto fail;
            }
            ids[i] = (int)t->integer;
        }
        n = (int)toks->len;
    }
    bytes = n > 0 ? gpt_detokenize(s->tok, ids, n, NULL, 0) : 0;
    if (bytes < 0 || !(text = (char *)gpt__alloc((size_t)bytes + 1))) {
        api_fail(&e, 500, "server_error", NULL, NULL, "cannot decode the tokens");
        goto fail;
    }
    if (n > 0) gpt_detokenize(s->tok, ids, n, text, (size_t)bytes + 1);
    sb_puts(&b, "{\"content\":");
    jw_str(&b, text, (size_t)bytes);
    sb_puts(&b, "}");
    json_response(out, 200, &b, keep_alive);
    sb_free(&b);
    gpt__free(text);
    gpt__free(ids);
    json_free(root);
    return;
fail:
    srv_error_response(out, &e, keep_alive, NULL);
    gpt__free(text);
    gpt__free(ids);
    json_free(root);
}

static void post_completions(srv_server *s, const char *body, size_t len, int minor, int keep_alive, sbuf *out,
                             srv_reply *reply)
{
    api_error e;
    api_completion c;
    srv_request *r = NULL;
    json *root = parse_body(body, len, &e);
    memset(&c, 0, sizeof c);
    if (!root || !api_parse_completion(root, &s->cfg.api, &c, &e)) goto fail;
    if (c.model && strcmp(c.model, s->cfg.model_name) != 0) {
        api_fail(&e, 404, "invalid_request_error", "model_not_found", "model",
                 "The model `%.200s` does not exist. This server serves `%s` (GET /v1/models).", c.model,
                 s->cfg.model_name);
        goto fail;
    }
    if (!c.has_seed) c.gp.seed = next_random();
    if (!(r = srv_request_new(&c, s->tok, s->cfg.model_name, &s->cfg.api, &e))) goto fail;
    snprintf(r->id, sizeof r->id, "cmpl-%016llx%08llx", (unsigned long long)next_random(),
             (unsigned long long)(next_random() & 0xffffffffULL));
    r->created = (long long)time(NULL);
    if (sched_submit(s->sched, r) != 0) {
        api_fail(&e, 503, "server_error", "server_busy", NULL,
                 "The server is busy: every slot is taken and the queue is full. Retry later.");
        goto fail;
    }
    reply->req = r;
    if (r->stream)
        http_head(out, 200, "text/event-stream", -1, minor >= 1, keep_alive,
                  "Cache-Control: no-cache\r\nX-Accel-Buffering: no\r\n");
    api_completion_free(&c);
    json_free(root);
    return;
fail:
    reply->status = e.status;
    srv_request_free(r);
    api_completion_free(&c);
    json_free(root);
    srv_error_response(out, &e, keep_alive, NULL);
}

void srv_route(srv_server *s, const http_request *h, const char *body, size_t body_len, int keep_alive,
               sbuf *out, srv_reply *reply)
{
    const char *path = h->target, *q = (const char *)memchr(h->target, '?', h->target_len);
    size_t n = q ? (size_t)(q - path) : h->target_len;
    int get = is(h->method, h->method_len, "GET"), post = is(h->method, h->method_len, "POST");
    const char *allow = NULL;
    api_error e;
    memset(reply, 0, sizeof *reply);
    reply->status = 200;
    s->n_requests++;
    if (is(path, n, "/health")) {
        if (get) {
            sbuf b = {NULL, 0, 0, 0};
            sb_puts(&b, "{\"status\":\"ok\"}");
            json_response(out, 200, &b, keep_alive);
            sb_free(&b);
            return;
        }
        allow = "Allow: GET\r\n";
    } else if (!authorized(s, h, &e)) {
        goto error;
    } else if (is(path, n, "/v1/completions")) {
        if (post) {
            post_completions(s, body, body_len, h->minor, keep_alive, out, reply);
            if (reply->status >= 400) s->n_errors++;
            return;
        }
        allow = "Allow: POST\r\n";
    } else if (is(path, n, "/v1/models") || (n > 11 && !memcmp(path, "/v1/models/", 11))) {
        if (get) {
            get_models(s, path, n, keep_alive, out);
            return;
        }
        allow = "Allow: GET\r\n";
    } else if (is(path, n, "/tokenize") || is(path, n, "/detokenize")) {
        if (post) {
            if (path[1] == 't') post_tokenize(s, body, body_len, keep_alive, out);
            else post_detokenize(s, body, body_len, keep_alive, out);
            return;
        }
        allow = "Allow: POST\r\n";
    } else {
        api_fail(&e, 404, "invalid_request_error", "unknown_url", NULL, "Invalid URL (%.*s %.*s).",
                 (int)(h->method_len > 16 ? 16 : h->method_len), h->method, (int)(n > 200 ? 200 : n), path);
        goto error;
    }
    api_fail(&e, 405, "invalid_request_error", "method_not_allowed", NULL, "Method %.*s is not allowed on %.*s.",
             (int)(h->method_len > 16 ? 16 : h->method_len), h->method, (int)(n > 200 ? 200 : n), path);
error:
    reply->status = e.status;
    s->n_errors++;
    srv_error_response(out, &e, keep_alive, allow);
}

#endif /* !_WIN32 */
