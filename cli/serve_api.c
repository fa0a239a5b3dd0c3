/*
 * serve_api.c - OpenAI's completions API for `gpt serve`: the request's
 * fields checked and mapped to gpt_generate_params, and everything the
 * server writes back (responses, stream chunks, errors). No I/O, no
 * threads: tests/fuzz/fuzz_request.c runs it on arbitrary bodies.
 */
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve.h"

/* ------------------------------------------------------------------------ */
/* Errors                                                                   */

int api_fail(api_error *e, int status, const char *type, const char *code, const char *param, const char *fmt, ...)
{
    va_list ap;
    e->status = status;
    e->type = type;
    e->code = code;
    e->param = param;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return 0;
}

static void put_opt_str(sbuf *b, const char *s)
{
    if (s) jw_cstr(b, s);
    else sb_puts(b, "null");
}

void api_error_json(sbuf *b, const api_error *e)
{
    sb_puts(b, "{\"error\":{\"message\":");
    jw_cstr(b, e->message);
    sb_puts(b, ",\"type\":");
    put_opt_str(b, e->type);
    sb_puts(b, ",\"param\":");
    put_opt_str(b, e->param);
    sb_puts(b, ",\"code\":");
    put_opt_str(b, e->code);
    sb_puts(b, "}}");
}

/* ------------------------------------------------------------------------ */
/* The request                                                              */

static int bad_param(api_error *e, const char *param, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

static int bad_param(api_error *e, const char *param, const char *fmt, ...)
{
    va_list ap;
    api_fail(e, 400, "invalid_request_error", NULL, param, "%s", "");
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return 0;
}

static int wrong_type(api_error *e, const char *param, const char *expected, const json *v)
{
    return bad_param(e, param, "Invalid type for '%s': expected %s, but got %s instead.", param, expected,
                     json_type_name(v->type));
}

/* A member that is absent or null leaves *out as it is. */
static const json *member(const json *root, const char *key)
{
    const json *v = json_get(root, key);
    return v && v->type != JSON_NULL ? v : NULL;
}

static int get_bool(const json *root, const char *key, int *out, api_error *e)
{
    const json *v = member(root, key);
    if (!v) return 1;
    if (v->type != JSON_BOOL) return wrong_type(e, key, "a boolean", v);
    *out = v->boolean;
    return 1;
}

static int get_number(const json *root, const char *key, float *out, double lo, double hi, api_error *e)
{
    const json *v = member(root, key);
    if (!v) return 1;
    if (v->type != JSON_NUMBER) return wrong_type(e, key, "a number", v);
    if (!(v->number >= lo && v->number <= hi))
        return bad_param(e, key, "%g is not valid for '%s': it must be between %g and %g.", v->number, key, lo, hi);
    *out = (float)v->number;
    return 1;
}

/* An integer (a number with no fraction) in lo .. hi. */
static int get_int(const json *root, const char *key, int *out, long long lo, long long hi, api_error *e)
{
    const json *v = member(root, key);
    if (!v) return 1;
    if (v->type != JSON_NUMBER || v->number != floor(v->number)) return wrong_type(e, key, "an integer", v);
    if (!(v->number >= (double)lo && v->number <= (double)hi))
        return bad_param(e, key, "%.17g is not valid for '%s': it must be between %lld and %lld.", v->number, key,
                         lo, hi);
    *out = (int)v->number;
    return 1;
}

/* A token-id prompt: a JSON array of integers in the vocabulary. */
static int read_ids(const json *a, const api_limits *lim, api_prompt *p, api_error *e)
{
    size_t i;
    if (a->len > (size_t)lim->n_ctx)
        return api_fail(e, 400, "invalid_request_error", "context_length_exceeded", "prompt",
                        "This model's maximum context length is %d tokens, however your prompt has %lu tokens.",
                        lim->n_ctx, (unsigned long)a->len);
    p->ids = (int *)gpt__alloc(sizeof(int) * (a->len ? a->len : 1));
    if (!p->ids) return api_fail(e, 500, "server_error", NULL, NULL, "out of memory");
    for (i = 0; i < a->len; i++) {
        const json *t = &a->items[i];
        if (t->type != JSON_NUMBER || !t->is_int)
            return bad_param(e, "prompt", "Invalid token in 'prompt' at index %lu: expected an integer.",
                             (unsigned long)i);
        if (t->integer < 0 || t->integer >= lim->n_vocab)
            return bad_param(e, "prompt", "Invalid token %lld in 'prompt' at index %lu: token ids are 0 .. %d.",
                             (long long)t->integer, (unsigned long)i, lim->n_vocab - 1);
        p->ids[i] = (int)t->integer;
    }
    p->n_ids = (int)a->len;
    return 1;
}

/* prompt: a string, an array of strings, an array of token ids, or an
 * array of arrays of token ids; absent or null: one empty prompt. */
static int read_prompts(const json *root, const api_limits *lim, api_completion *c, api_error *e)
{
    const json *v = member(root, "prompt");
    size_t i, n;
    int kind;
    if (!v || v->type == JSON_STRING) {
        if (!(c->prompts = (api_prompt *)gpt__calloc(1, sizeof(api_prompt))))
            return api_fail(e, 500, "server_error", NULL, NULL, "out of memory");
        c->n_prompts = 1;
        c->prompts[0].text = v ? v->str : "";
        c->prompts[0].len = v ? v->len : 0;
        return 1;
    }
    if (v->type != JSON_ARRAY) return wrong_type(e, "prompt", "a string or an array", v);
    if (v->len == 0) return bad_param(e, "prompt", "'prompt' is an empty array.");
    kind = v->items[0].type;
    if (kind != JSON_STRING && kind != JSON_NUMBER && kind != JSON_ARRAY)
        return bad_param(e, "prompt", "'prompt' must be a string, an array of strings, an array of token ids or "
                         "an array of arrays of token ids.");
    for (i = 0; i < v->len; i++)
        if ((int)v->items[i].type != kind)
            return bad_param(e, "prompt", "'prompt' mixes types: item %lu is %s, item 0 is %s.", (unsigned long)i,
                             json_type_name(v->items[i].type), json_type_name(v->items[0].type));
    n = kind == JSON_NUMBER ? 1 : v->len;
    if (n > (size_t)lim->max_choices)
        return bad_param(e, "prompt", "'prompt' has %lu prompts; this server runs at most %d at once.",
                         (unsigned long)n, lim->max_choices);
    if (!(c->prompts = (api_prompt *)gpt__calloc(n, sizeof(api_prompt))))
        return api_fail(e, 500, "server_error", NULL, NULL, "out of memory");
    c->n_prompts = (int)n;
    if (kind == JSON_NUMBER) return read_ids(v, lim, &c->prompts[0], e);
    for (i = 0; i < n; i++) {
        if (kind == JSON_STRING) {
            c->prompts[i].text = v->items[i].str;
            c->prompts[i].len = v->items[i].len;
        } else if (!read_ids(&v->items[i], lim, &c->prompts[i], e)) {
            return 0;
        }
    }
    return 1;
}

/* stop: a string or an array of strings; empty strings are ignored. */
static int read_stop(const json *root, api_completion *c, api_error *e)
{
    const json *v = member(root, "stop");
    const json *items;
    size_t i, n;
    if (!v) return 1;
    if (v->type == JSON_STRING) {
        items = v;
        n = 1;
    } else if (v->type == JSON_ARRAY) {
        items = v->items;
        n = v->len;
    } else {
        return wrong_type(e, "stop", "a string or an array of strings", v);
    }
    for (i = 0; i < n; i++) {
        const json *s = &items[i];
        if (s->type != JSON_STRING) return wrong_type(e, "stop", "a string or an array of strings", s);
        if (s->len == 0) continue;
        if (strlen(s->str) != s->len) return bad_param(e, "stop", "A stop string may not contain NUL characters.");
        if (s->len > API_MAX_STOP_BYTES)
            return bad_param(e, "stop", "A stop string is longer than %d bytes.", API_MAX_STOP_BYTES);
        if (c->gp.n_stop == API_MAX_STOP) return bad_param(e, "stop", "At most %d stop strings.", API_MAX_STOP);
        c->stop[c->gp.n_stop++] = s->str;
    }
    c->gp.stop = c->gp.n_stop ? c->stop : NULL;
    return 1;
}

/* Fields OpenAI has that change the result and this server cannot honour. */
static int read_unsupported(const json *root, const api_completion *c, api_error *e)
{
    const json *v;
    int best_of = c->n;
    if (!get_int(root, "best_of", &best_of, 1, API_MAX_N, e)) return 0;
    if (best_of != c->n)
        return bad_param(e, "best_of", "'best_of' is not supported (only best_of = n, the default).");
    if ((v = member(root, "logit_bias")) != NULL) {
        if (v->type != JSON_OBJECT) return wrong_type(e, "logit_bias", "an object", v);
        if (v->len > 0) return bad_param(e, "logit_bias", "'logit_bias' is not supported.");
    }
    if ((v = member(root, "suffix")) != NULL) {
        if (v->type != JSON_STRING) return wrong_type(e, "suffix", "a string", v);
        if (v->len > 0) return bad_param(e, "suffix", "'suffix' is not supported (GPT-2 does not insert text).");
    }
    return 1;
}

static int read_sampling(const json *root, api_completion *c, api_error *e)
{
    gpt_generate_params *gp = &c->gp;
    return get_number(root, "temperature", &gp->temperature, 0, 1e6, e) &&
           get_number(root, "top_p", &gp->top_p, 0, 1, e) && get_int(root, "top_k", &gp->top_k, 0, INT_MAX, e) &&
           get_number(root, "min_p", &gp->min_p, 0, 1, e) &&
           get_number(root, "repetition_penalty", &gp->repetition_penalty, 0, 1e6, e) &&
           get_number(root, "presence_penalty", &gp->presence_penalty, -2, 2, e) &&
           get_number(root, "frequency_penalty", &gp->frequency_penalty, -2, 2, e);
}

static int read_seed(const json *root, api_completion *c, api_error *e)
{
    const json *v = member(root, "seed");
    if (!v) return 1;
    if (v->type != JSON_NUMBER || !v->is_int) return wrong_type(e, "seed", "an integer", v);
    c->gp.seed = (uint64_t)v->integer;
    c->has_seed = 1;
    return 1;
}

static int read_stream(const json *root, api_completion *c, api_error *e)
{
    const json *v;
    if (!get_bool(root, "stream", &c->stream, e)) return 0;
    if ((v = member(root, "stream_options")) != NULL) {
        if (v->type != JSON_OBJECT) return wrong_type(e, "stream_options", "an object", v);
        if (!get_bool(v, "include_usage", &c->include_usage, e)) return 0;
    }
    return 1;
}

static int parse_completion(const json *root, const api_limits *lim, api_completion *c, api_error *e)
{
    const json *v;
    gpt_error ge;
    int max_tokens = 16;
    memset(c, 0, sizeof *c);
    c->gp = gpt_generate_defaults();
    /* OpenAI's defaults, not the command's: plain sampling at temperature 1 */
    c->gp.temperature = 1.0f;
    c->gp.top_p = 1.0f;
    c->gp.top_k = 0;
    c->gp.min_p = 0.0f;
    c->n = 1;
    c->logprobs = -1;
    if (root->type != JSON_OBJECT)
        return bad_param(e, NULL, "The request body must be a JSON object, not %s.", json_type_name(root->type));
    if ((v = member(root, "model")) != NULL) {
        if (v->type != JSON_STRING) return wrong_type(e, "model", "a string", v);
        c->model = v->str;
    }
    if (!get_int(root, "n", &c->n, 1, API_MAX_N, e)) return 0;
    if (!get_int(root, "max_tokens", &max_tokens, 0, lim->max_tokens, e)) return 0;
    if (!get_int(root, "logprobs", &c->logprobs, 0, GPT_MAX_LOGPROBS, e)) return 0;
    if (!get_bool(root, "echo", &c->echo, e) || !read_stream(root, c, e)) return 0;
    if (!read_sampling(root, c, e) || !read_seed(root, c, e) || !read_stop(root, c, e)) return 0;
    if (!read_unsupported(root, c, e)) return 0;
    if (!read_prompts(root, lim, c, e)) return 0;
    if (c->n_prompts * c->n > lim->max_choices)
        return bad_param(e, "n", "%d prompts x n = %d asks for %d completions at once; this server runs at most %d.",
                         c->n_prompts, c->n, c->n_prompts * c->n, lim->max_choices);
    c->gp.max_new_tokens = max_tokens;
    c->gp.n_sequences = c->n;
    c->gp.n_logprobs = c->logprobs > 0 ? c->logprobs : 0;
    if (gpt_generate_params_check(&c->gp, &ge) != GPT_OK) return bad_param(e, NULL, "%s", ge.message);
    return 1;
}

int api_parse_completion(const json *root, const api_limits *lim, api_completion *c, api_error *e)
{
    if (parse_completion(root, lim, c, e)) return 1;
    api_completion_free(c);
    return 0;
}

void api_completion_free(api_completion *c)
{
    int i;
    for (i = 0; c->prompts && i < c->n_prompts; i++) gpt__free(c->prompts[i].ids);
    gpt__free(c->prompts);
    c->prompts = NULL;
    c->n_prompts = 0;
}

/* ------------------------------------------------------------------------ */
/* Requests and their results                                              */

int srv_tokens_add(srv_tokens *t, int id, float lp, const gpt_token_logprob *top, int n_top)
{
    if (t->n == t->cap) {
        int cap = t->cap ? t->cap * 2 : 16;
        int *ids = (int *)gpt__realloc(t->ids, sizeof(int) * (size_t)cap);
        float *l;
        gpt_token_logprob *tp;
        int *nt;
        if (!ids) return 0;
        t->ids = ids;
        if (!(l = (float *)gpt__realloc(t->lp, sizeof(float) * (size_t)cap))) return 0;
        t->lp = l;
        if (!(nt = (int *)gpt__realloc(t->n_tops, sizeof(int) * (size_t)cap))) return 0;
        t->n_tops = nt;
        if (t->n_top > 0) {
            if (!(tp = (gpt_token_logprob *)gpt__realloc(t->top, sizeof(gpt_token_logprob) * (size_t)cap * (size_t)t->n_top)))
                return 0;
            t->top = tp;
        }
        t->cap = cap;
    }
    if (n_top > t->n_top) n_top = t->n_top;
    if (n_top < 0) n_top = 0;
    t->ids[t->n] = id;
    t->lp[t->n] = lp;
    t->n_tops[t->n] = n_top;
    if (n_top > 0) memcpy(t->top + (size_t)t->n * (size_t)t->n_top, top, sizeof(gpt_token_logprob) * (size_t)n_top);
    t->n++;
    return 1;
}

void srv_tokens_free(srv_tokens *t)
{
    gpt__free(t->ids);
    gpt__free(t->lp);
    gpt__free(t->top);
    gpt__free(t->n_tops);
    memset(t, 0, sizeof *t);
}

void srv_request_free(srv_request *r)
{
    int i, k;
    if (!r) return;
    for (i = 0; r->jobs && i < r->n_jobs; i++) {
        srv_job *j = &r->jobs[i];
        gpt__free(j->ids);
        gpt__free(j->prompt_text);
        gpt__free(j->seqs);
        srv_tokens_free(&j->prompt_toks);
        for (k = 0; j->choices && k < r->n; k++) {
            sb_free(&j->choices[k].text);
            srv_tokens_free(&j->choices[k].toks);
        }
        gpt__free(j->choices);
    }
    gpt__free(r->jobs);
    for (i = 0; r->stop && i < r->gp.n_stop; i++) gpt__free(r->stop[i]);
    gpt__free(r->stop);
    sb_free(&r->events);
    gpt__free(r);
}

/* The prompt of job j: its ids (tokenized with <|endoftext|> as the special
 * token, as OpenAI reads it) and its text for echo. */
static int job_prompt(srv_job *j, const api_prompt *p, const gpt_tokenizer *tok, int n_ctx, api_error *e)
{
    size_t max_tok = gpt_tokenizer_max_token_bytes(tok);
    int n, len;
    if (p->text) {
        /* no token is longer than max_tok bytes: a text that cannot fit is
         * refused before it is tokenized */
        if (max_tok > 0 && p->len / max_tok > (size_t)n_ctx)
            return api_fail(e, 400, "invalid_request_error", "context_length_exceeded", "prompt",
                            "This model's maximum context length is %d tokens; your prompt of %lu bytes is longer.",
                            n_ctx, (unsigned long)p->len);
        n = p->len ? gpt_tokenize_ex(tok, p->text, p->len, NULL, 0, GPT_TOKENIZE_SPECIAL) : 0;
        if (n < 0) return api_fail(e, 500, "server_error", NULL, NULL, "cannot tokenize the prompt: %s",
                                   gpt_status_name((gpt_status)n));
        if (!(j->ids = (int *)gpt__alloc(sizeof(int) * (size_t)(n + 1))) ||
            !(j->prompt_text = (char *)gpt__alloc(p->len + 1)))
            return api_fail(e, 500, "server_error", NULL, NULL, "out of memory");
        if (n > 0) gpt_tokenize_ex(tok, p->text, p->len, j->ids, n, GPT_TOKENIZE_SPECIAL);
        memcpy(j->prompt_text, p->text, p->len);
        j->prompt_text[p->len] = 0;
        j->prompt_len = p->len;
    } else {
        n = p->n_ids;
        if (!(j->ids = (int *)gpt__alloc(sizeof(int) * (size_t)(n + 1))))
            return api_fail(e, 500, "server_error", NULL, NULL, "out of memory");
        if (n > 0) memcpy(j->ids, p->ids, sizeof(int) * (size_t)n);
        len = n > 0 ? gpt_detokenize(tok, p->ids, n, NULL, 0) : 0;
        if (len < 0 || !(j->prompt_text = (char *)gpt__alloc((size_t)len + 1)))
            return api_fail(e, 500, "server_error", NULL, NULL, "cannot decode the prompt's tokens");
        if (len > 0) gpt_detokenize(tok, p->ids, n, j->prompt_text, (size_t)len + 1);
        j->prompt_text[len] = 0;
        j->prompt_len = (size_t)len;
    }
    j->n_ids = n;
    j->n_prompt_tokens = n > 0 ? n : 1; /* an empty prompt starts from <|endoftext|> */
    return 1;
}

srv_request *srv_request_new(const api_completion *c, const gpt_tokenizer *tok, const char *model,
                             const api_limits *lim, api_error *e)
{
    srv_request *r = (srv_request *)gpt__calloc(1, sizeof *r);
    int i, k;
    if (!r) {
        api_fail(e, 500, "server_error", NULL, NULL, "out of memory");
        return NULL;
    }
    r->model = model;
    r->tok = tok;
    r->n = c->n;
    r->stream = c->stream;
    r->echo = c->echo;
    r->include_usage = c->include_usage;
    r->logprobs = c->logprobs;
    r->gp = c->gp;
    r->gp.stop = NULL;
    r->gp.n_stop = 0;
    r->refs = 1;
    if (c->gp.n_stop > 0) {
        if (!(r->stop = (char **)gpt__calloc((size_t)c->gp.n_stop, sizeof(char *)))) goto oom;
        for (i = 0; i < c->gp.n_stop; i++) {
            size_t n = strlen(c->stop[i]) + 1;
            if (!(r->stop[i] = (char *)gpt__alloc(n))) goto oom;
            memcpy(r->stop[i], c->stop[i], n);
            r->gp.n_stop = i + 1;
        }
        r->gp.stop = (const char *const *)r->stop;
    }
    if (!(r->jobs = (srv_job *)gpt__calloc((size_t)c->n_prompts, sizeof(srv_job)))) goto oom;
    r->n_jobs = c->n_prompts;
    for (i = 0; i < c->n_prompts; i++) {
        srv_job *j = &r->jobs[i];
        j->req = r;
        j->index = i * c->n;
        if (!(j->choices = (srv_choice *)gpt__calloc((size_t)c->n, sizeof(srv_choice))) ||
            !(j->seqs = (int *)gpt__calloc((size_t)c->n, sizeof(int))))
            goto oom;
        for (k = 0; k < c->n; k++) j->choices[k].toks.n_top = c->logprobs > 0 ? c->logprobs : 0;
        j->prompt_toks.n_top = c->logprobs > 0 ? c->logprobs : 0;
        if (!job_prompt(j, &c->prompts[i], tok, lim->n_ctx, e)) goto fail;
        for (k = 0; k < c->n; k++) j->choices[k].tok_chars = utf8_chars(j->prompt_text, j->prompt_len);
        if (j->n_prompt_tokens + c->gp.max_new_tokens > lim->n_ctx) {
            api_fail(e, 400, "invalid_request_error", "context_length_exceeded", "prompt",
                     "This model's maximum context length is %d tokens, however you requested %d tokens (%d in "
                     "your prompt; %d for the completion). Please reduce your prompt; or completion length.",
                     lim->n_ctx, j->n_prompt_tokens + c->gp.max_new_tokens, j->n_prompt_tokens,
                     c->gp.max_new_tokens);
            goto fail;
        }
    }
    r->jobs_left = r->n_jobs;
    return r;
oom:
    api_fail(e, 500, "server_error", NULL, NULL, "out of memory");
fail:
    srv_request_free(r);
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Responses                                                                */

const char *api_finish_reason(int stop_reason)
{
    switch (stop_reason) {
    case GPT_STOP_EOS:
    case GPT_STOP_STRING:
    case GPT_STOP_CALLBACK: return "stop";
    case GPT_STOP_MAX_TOKENS:
    case GPT_STOP_CONTEXT_FULL: return "length";
    default: return NULL;
    }
}

static void put_token(sbuf *b, const gpt_tokenizer *tok, int id)
{
    size_t n = 0;
    const char *s = gpt_token_bytes(tok, id, &n);
    jw_token(b, s ? s : "", s ? n : 0);
}

/* A run of tokens in a logprobs object: toks[from .. n), their text
 * offsets counted from offset. */
typedef struct lp_segment {
    const srv_tokens *t;
    int from;
    size_t offset;
} lp_segment;

/* OpenAI's logprobs object over one or two runs of tokens (the echoed
 * prompt's, then the generated ones). */
static void put_logprobs_object(sbuf *b, const gpt_tokenizer *tok, const lp_segment *seg, int n_seg)
{
    int s, i, k, any;
    sb_puts(b, "{\"tokens\":[");
    for (s = 0, any = 0; s < n_seg; s++)
        for (i = seg[s].from; i < seg[s].t->n; i++, any = 1) {
            if (any) sb_puts(b, ",");
            put_token(b, tok, seg[s].t->ids[i]);
        }
    sb_puts(b, "],\"token_logprobs\":[");
    for (s = 0, any = 0; s < n_seg; s++)
        for (i = seg[s].from; i < seg[s].t->n; i++, any = 1) {
            if (any) sb_puts(b, ",");
            jw_num(b, seg[s].t->lp[i]);
        }
    sb_puts(b, "],\"top_logprobs\":[");
    for (s = 0, any = 0; s < n_seg; s++)
        for (i = seg[s].from; i < seg[s].t->n; i++, any = 1) {
            const srv_tokens *t = seg[s].t;
            const gpt_token_logprob *top = t->top ? t->top + (size_t)i * (size_t)t->n_top : NULL;
            int has_self = 0;
            if (any) sb_puts(b, ",");
            if (t->lp[i] != t->lp[i]) { /* no logprob: the first token of a prompt */
                sb_puts(b, "null");
                continue;
            }
            sb_puts(b, "{");
            for (k = 0; k < t->n_tops[i]; k++) {
                if (k) sb_puts(b, ",");
                put_token(b, tok, top[k].token);
                sb_puts(b, ":");
                jw_num(b, top[k].logprob);
                has_self |= top[k].token == t->ids[i];
            }
            if (!has_self) { /* the chosen token is always there (OpenAI: up to logprobs + 1) */
                if (t->n_tops[i]) sb_puts(b, ",");
                put_token(b, tok, t->ids[i]);
                sb_puts(b, ":");
                jw_num(b, t->lp[i]);
            }
            sb_puts(b, "}");
        }
    sb_puts(b, "],\"text_offset\":[");
    for (s = 0, any = 0; s < n_seg; s++) {
        size_t chars = seg[s].offset;
        for (i = seg[s].from; i < seg[s].t->n; i++, any = 1) {
            size_t n = 0;
            const char *bytes = gpt_token_bytes(tok, seg[s].t->ids[i], &n);
            if (any) sb_puts(b, ",");
            sb_printf(b, "%lu", (unsigned long)chars);
            chars += bytes ? utf8_chars(bytes, n) : 0;
        }
    }
    sb_puts(b, "]}");
}

/* Characters of a token run's bytes. */
static size_t tokens_chars(const gpt_tokenizer *tok, const srv_tokens *t, int from)
{
    size_t chars = 0, n;
    int i;
    for (i = from; i < t->n; i++) {
        const char *bytes = gpt_token_bytes(tok, t->ids[i], &n);
        chars += bytes ? utf8_chars(bytes, n) : 0;
    }
    return chars;
}

/* A choice's logprobs in a whole response: the prompt's tokens (echo) from
 * offset 0, the generated ones from the prompt's length. */
static void put_logprobs(sbuf *b, const srv_request *r, const srv_job *j, const srv_choice *ch)
{
    lp_segment seg[2];
    int n = 0;
    if (r->logprobs < 0) {
        sb_puts(b, "null");
        return;
    }
    if (r->echo) {
        seg[n].t = &j->prompt_toks;
        seg[n].from = 0;
        seg[n].offset = 0;
        n++;
    }
    seg[n].t = &ch->toks;
    seg[n].from = 0;
    seg[n].offset = utf8_chars(j->prompt_text, j->prompt_len);
    n++;
    put_logprobs_object(b, r->tok, seg, n);
}

static void put_usage(sbuf *b, const srv_request *r)
{
    long long prompt = 0, completion = 0;
    int i, k;
    for (i = 0; i < r->n_jobs; i++) {
        prompt += r->jobs[i].n_prompt_tokens;
        for (k = 0; k < r->n; k++) completion += r->jobs[i].choices[k].n_generated;
    }
    sb_printf(b, "\"usage\":{\"prompt_tokens\":%lld,\"completion_tokens\":%lld,\"total_tokens\":%lld}", prompt,
              completion, prompt + completion);
}

static void put_header(sbuf *b, const srv_request *r)
{
    sb_puts(b, "{\"id\":");
    jw_cstr(b, r->id);
    sb_printf(b, ",\"object\":\"text_completion\",\"created\":%lld,\"model\":", r->created);
    jw_cstr(b, r->model);
}

void api_render_response(sbuf *b, const srv_request *r)
{
    int i, k;
    put_header(b, r);
    sb_puts(b, ",\"choices\":[");
    for (i = 0; i < r->n_jobs; i++) {
        const srv_job *j = &r->jobs[i];
        for (k = 0; k < r->n; k++) {
            const srv_choice *ch = &j->choices[k];
            const char *fr = api_finish_reason(ch->finish);
            sbuf text = {NULL, 0, 0, 0};
            if (i || k) sb_puts(b, ",");
            sb_puts(b, "{\"text\":");
            if (r->echo) {
                sb_put(&text, j->prompt_text, j->prompt_len);
                sb_put(&text, ch->text.p, ch->text.n);
                if (text.failed) b->failed = 1;
                jw_str(b, text.p ? text.p : "", text.n);
                sb_free(&text);
            } else {
                jw_str(b, ch->text.p ? ch->text.p : "", ch->text.n);
            }
            sb_printf(b, ",\"index\":%d,\"logprobs\":", j->index + k);
            put_logprobs(b, r, j, ch);
            sb_puts(b, ",\"finish_reason\":");
            put_opt_str(b, fr);
            sb_puts(b, "}");
        }
    }
    sb_puts(b, "],");
    put_usage(b, r);
    sb_puts(b, "}");
}

void api_render_chunk(sbuf *b, const srv_request *r, srv_job *j, int choice, const char *text, size_t len,
                      const srv_tokens *toks, int from, int finish)
{
    srv_choice *ch = &j->choices[choice];
    const char *fr = api_finish_reason(finish);
    sb_puts(b, "data: ");
    put_header(b, r);
    sb_puts(b, ",\"choices\":[{\"text\":");
    jw_str(b, text ? text : "", text ? len : 0);
    sb_printf(b, ",\"index\":%d,\"logprobs\":", j->index + choice);
    if (r->logprobs < 0 || !toks) {
        sb_puts(b, "null");
    } else {
        lp_segment seg;
        seg.t = toks;
        seg.from = from;
        if (toks == &j->prompt_toks) {
            seg.offset = 0;
        } else {
            seg.offset = ch->tok_chars;
            ch->tok_chars += tokens_chars(r->tok, toks, from);
        }
        put_logprobs_object(b, r->tok, &seg, 1);
    }
    sb_puts(b, ",\"finish_reason\":");
    put_opt_str(b, fr);
    sb_puts(b, "}]}\n\n");
}

void api_render_stream_end(sbuf *b, const srv_request *r)
{
    if (r->include_usage) {
        sb_puts(b, "data: ");
        put_header(b, r);
        sb_puts(b, ",\"choices\":[],");
        put_usage(b, r);
        sb_puts(b, "}\n\n");
    }
    sb_puts(b, "data: [DONE]\n\n");
}

void api_render_stream_error(sbuf *b, const api_error *e)
{
    sb_puts(b, "data: ");
    api_error_json(b, e);
    sb_puts(b, "\n\n");
}
