/*
 * fuzz_generate.c - libFuzzer harness for generation, evaluation, scoring
 * and sampling with fuzzed parameters, prompts, token ids and stop strings,
 * on tiny models built once in memory.
 *
 *   make fuzz                       (every harness, FUZZ_TIME seconds each)
 *   sh tests/test_fuzz.sh           (the same, as `make test` runs it)
 *   build/fuzz/fuzz_generate FILE   (replay one input)
 *
 * Run from the repository root (the models use GPT-2's tokenizer from
 * models/tokenizer/). Two models: A, 1 layer over a 300-token cut of GPT-2's
 * vocabulary (merges, no <|endoftext|>), f32; B, 2 layers over a small
 * vocabulary with multi-byte characters, merges and <|endoftext|>, q8_0.
 * Input: byte 0 picks the operation (low 2 bits) and the model (bit 2);
 * bytes 1..24 are parameters read through tables that mix valid values with
 * invalid ones (negative, NaN, infinite, huge, out of range); the rest is
 * the payload: a prompt and stop strings separated by NUL bytes, or token
 * ids, or logits.
 *
 *   0, 1  gpt_generate_ex (1: also a second run on a fresh context that
 *         must give the same text, and a continuation of the first);
 *   2     gpt_eval / gpt_rewind / gpt_score / gpt_logits_at on fuzzed ids;
 *   3     gpt_sampler_* on fuzzed logits and history.
 *
 * Checked (abort() on violation): every status is one docs/ERRORS.md
 * documents for the situation; parameters that gpt_generate_params_check
 * refuses are refused by gpt_generate and gpt_sampler_new and change
 * nothing; every streamed piece is valid UTF-8 and no stop string appears
 * in the text; the stop reason agrees with the status; n_generated <=
 * max_new_tokens; the context never holds more than n_ctx positions; a
 * failed gpt_eval appends nothing; the same seed gives the same text; the
 * text equals the detokenized ids when those are valid UTF-8; a sampled id
 * is in range; and a sampler call that fails leaves the sampler as it was.
 * Inputs that found bugs are in tests/fuzz/regressions/generate/.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt.h"
#include "gpt.h"
#include "../util.h"

static gpt_model *g_models[2];

static void die(const char *what, const char *detail)
{
    fprintf(stderr, "fuzz_generate: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    abort();
}

/* ------------------------------------------------------------------------ */
/* Models                                                                   */

/* 256 bytes, then tokens made by the merges below, then <|endoftext|>. */
static gpt_tokenizer *small_tokenizer(void)
{
    static const char *const merge[][2] = {
        {"a", "b"}, {"ab", "c"}, {"\xC3", "\xA9"}, {" ", "\xC3\xA9"}, {"\xE6", "\x97"}, {"\xE6\x97", "\xA5"},
        {"\xF0", "\x9F"}, {"\xF0\x9F", "\x98"}, {"\xF0\x9F\x98", "\x80"}, {" ", "t"}, {" t", "h"}, {" th", "e"},
        {"e", "\n"}, {"\n", "\n"},
    };
    static char v[16384], mg[1024];
    size_t o, mo;
    gpt_error err;
    gpt_tokenizer *t;
    byte_vocab_text(merge, sizeof merge / sizeof merge[0], v, &o, mg, &mo);
    t = gpt_tokenizer_load_memory(v, o, mg, mo, &err);
    if (!t) die("small vocabulary", err.message);
    return t;
}

static gpt_model *build(int L, int H, int C, int T, gpt_dtype dt, gpt_tokenizer *tok)
{
    ckpt_spec s;
    ckpt_random r;
    gpt_error err;
    unsigned char *buf = NULL;
    size_t len;
    gpt_model *m;
    memset(&s, 0, sizeof s);
    s.n_layer = L;
    s.n_head = H;
    s.n_embd = C;
    s.n_ctx = T;
    s.n_vocab = gpt_tokenizer_n_vocab(tok);
    s.ln_eps = 1e-5f;
    s.dtype = dt;
    s.wpe_dtype = GPT_DTYPE_F32;
    s.tok = tok;
    r.seed = 5;
    r.n_layer = L;
    if (ckpt_write_memory(&s, ckpt_random_source, &r, &buf, &len, &err) != GPT_OK) die("checkpoint", err.message);
    /* from an address that is not 64-aligned, so that the loader keeps a
     * copy (malloc may well return a 64-aligned block, used in place) */
    {
        unsigned char *odd = (unsigned char *)malloc(len + 1);
        if (!odd) die("out of memory", NULL);
        memcpy(odd + 1, buf, len);
        m = gpt_model_load_memory(odd + 1, len, &err);
        free(odd);
    }
    if (!m) die("load", err.message);
    free(buf);
    gpt_tokenizer_free(tok);
    return m;
}

static void setup(void)
{
    gpt_error err;
    gpt_tokenizer *t = ckpt_gpt2_tokenizer("models/tokenizer/encoder.json", "models/tokenizer/vocab.bpe", 300, &err);
    if (!t) die("run from the repository root", err.message);
    g_models[0] = build(1, 2, 16, 24, GPT_DTYPE_F32, t);
    g_models[1] = build(2, 2, 32, 16, GPT_DTYPE_Q8_0, small_tokenizer());
}

/* ------------------------------------------------------------------------ */
/* Parameters through tables                                                */

static const float t_temp[16] = {0.0f, 0.5f, 1.0f, 2.0f, 1e-30f, 1e6f, 1e7f, -0.1f,
                                 NAN, INFINITY, -INFINITY, 0.8f, 1.5f, 100.0f, 1e-3f, 0.0f};
static const int t_topk[8] = {0, 1, 2, 5, 40, 100000, -1, 0x7FFFFFFF};
static const float t_topp[8] = {1.0f, 0.95f, 0.5f, 0.1f, 1e-30f, 0.0f, 1.5f, NAN};
static const float t_minp[8] = {0.0f, 0.05f, 0.5f, 1.0f, -0.1f, 2.0f, NAN, 1e-30f};
static const float t_pen[16] = {1.0f, 1.3f, 0.5f, 1e6f, 0.0f, -1.0f, NAN, 1e7f,
                                1e-30f, 1.0f, 1.1f, 2.0f, 1.0f, INFINITY, 0.9f, 1.0f};

typedef struct fz {
    const uint8_t *p; /* 24 parameter bytes */
    const uint8_t *payload;
    size_t n_payload;
} fz;

static void read_params(const fz *f, gpt_generate_params *gp)
{
    const uint8_t *p = f->p;
    int i;
    *gp = gpt_generate_defaults();
    gp->max_new_tokens = p[0] & 0x80 ? (p[0] & 1 ? -2 : 0) : p[0] % 10; /* -2 is invalid */
    gp->temperature = t_temp[p[1] % 16];
    gp->top_k = t_topk[p[2] % 8];
    gp->top_p = t_topp[p[3] % 8];
    gp->min_p = t_minp[p[4] % 8];
    gp->repetition_penalty = t_pen[p[5] % 16];
    gp->repeat_last_n = (int)(int8_t)p[6];
    gp->seed = 0;
    for (i = 0; i < 8; i++) gp->seed |= (uint64_t)p[7 + i] << (8 * i);
    gp->ignore_eos = p[16] & 1;
    gp->special = (p[16] >> 1) & 1;
    gp->context_policy = (gpt_context_policy)((p[16] >> 2) % 3); /* 2 is invalid */
    /* no limit but the context's (not with sliding, which would never end) */
    if ((p[0] & 0xC1) == 0xC0 && gp->context_policy == GPT_CONTEXT_STOP) gp->max_new_tokens = -1;
}

/* The prompt and up to 3 stop strings: NUL-separated payload. */
typedef struct texts {
    char *buf;
    const char *prompt;
    const char *stop[4];
    int n_stop;
} texts;

static void read_texts(const fz *f, const uint8_t *p, texts *t, gpt_generate_params *gp)
{
    size_t i, start = 0;
    int k = 0;
    t->buf = (char *)malloc(f->n_payload + 1);
    if (!t->buf) die("out of memory", NULL);
    memcpy(t->buf, f->payload, f->n_payload);
    t->buf[f->n_payload] = 0;
    t->prompt = t->buf;
    t->n_stop = 0;
    for (i = 0; i < f->n_payload && k < 4; i++) {
        if (t->buf[i] == 0) {
            if (k > 0) t->stop[t->n_stop++] = t->buf + start;
            k++;
            start = i + 1;
        }
    }
    if (k > 0 && k < 4 && start <= f->n_payload) t->stop[t->n_stop++] = t->buf + start;
    if (t->n_stop > 3) t->n_stop = 3;
    gp->stop = t->n_stop ? t->stop : NULL;
    gp->n_stop = t->n_stop;
    if (p[17] & 1) t->prompt = NULL;
    if ((p[17] & 6) == 6) gp->n_stop++; /* one more than there are: the array has a NULL (or garbage) entry */
    if ((p[17] & 6) == 6) t->stop[t->n_stop] = NULL;
}

/* ------------------------------------------------------------------------ */
/* Checks                                                                   */

typedef struct out {
    char buf[8192];
    size_t len;
    int pieces, stop_after;
} out;

static int on_text(const char *text, size_t len, void *user)
{
    out *o = (out *)user;
    if (len == 0) die("an empty piece was streamed", NULL);
    if (!valid_utf8((const unsigned char *)text, len)) die("a streamed piece is not valid UTF-8", NULL);
    if (o->len + len > sizeof o->buf) die("more text than max_new_tokens can make", NULL);
    memcpy(o->buf + o->len, text, len);
    o->len += len;
    o->pieces++;
    return o->stop_after > 0 && o->pieces >= o->stop_after;
}

static int contains(const char *hay, size_t n, const char *needle)
{
    size_t l = strlen(needle), i;
    if (l == 0 || l > n) return 0;
    for (i = 0; i + l <= n; i++)
        if (memcmp(hay + i, needle, l) == 0) return 1;
    return 0;
}

static gpt_context *make_ctx(const gpt_model *m, const uint8_t *p, gpt_error *err)
{
    gpt_context_params cp = gpt_context_defaults();
    cp.n_ctx = p[18] % 20;                 /* 0: the model's */
    cp.n_threads = p[18] == 0xFF ? 2 : 1; /* rarely: threads are tests/test_threads.c's, and slow here */
    cp.n_batch = p[19] % 5;                /* 0: default */
    cp.all_logits = (p[19] >> 3) & 1;
    cp.reference_kernels = (p[19] >> 4) & 1;
    if (cp.n_ctx > gpt_model_config(m).n_ctx) cp.n_ctx = gpt_model_config(m).n_ctx;
    return gpt_context_new(m, &cp, err);
}

/* One generation on context c (maybe holding earlier positions); checks
 * everything about it. */
static gpt_status generate_checked(const gpt_model *m, gpt_context *c, const char *prompt,
                                   const gpt_generate_params *gp, int params_ok, out *o, int stop_after,
                                   gpt_generate_result *res)
{
    int before = gpt_context_n_past(c), n_ctx = gpt_context_n_ctx(c), i;
    gpt_status st;
    memset(o, 0, sizeof *o);
    o->stop_after = stop_after;
    memset(res, 0x6B, sizeof *res);
    st = gpt_generate_ex(c, prompt, gp, on_text, o, res);
    if (!params_ok) {
        if (st != GPT_ERR_INVALID_ARG) die("invalid parameters were not refused", gpt_status_name(st));
        if (gpt_context_n_past(c) != before || o->len || res->stop_reason != GPT_STOP_NONE)
            die("refused parameters changed something", NULL);
        if (!gpt_context_error(c)[0]) die("no message", NULL);
        return st;
    }
    if (gpt_context_n_past(c) > n_ctx || gpt_context_n_past(c) < 0) die("n_past outside the context", NULL);
    if (res->n_generated < 0 ||
        res->n_generated > (gp->max_new_tokens >= 0 ? gp->max_new_tokens : n_ctx + 1)) /* + the one that did not fit */
        die("n_generated out of range", NULL);
    switch (st) {
    case GPT_OK:
        if (res->stop_reason != GPT_STOP_MAX_TOKENS && res->stop_reason != GPT_STOP_EOS &&
            res->stop_reason != GPT_STOP_STRING && res->stop_reason != GPT_STOP_CALLBACK)
            die("GPT_OK with a stop reason that is not a normal stop", NULL);
        break;
    case GPT_ERR_CONTEXT_FULL:
        if (res->stop_reason != GPT_STOP_CONTEXT_FULL) die("GPT_ERR_CONTEXT_FULL without its stop reason", NULL);
        if (gp->context_policy != GPT_CONTEXT_STOP) die("a full context under GPT_CONTEXT_SLIDE", NULL);
        break;
    case GPT_ERR_INVALID_ARG:
        /* with valid parameters, only an empty start without <|endoftext|> */
        if ((prompt && prompt[0]) || before != 0 || gpt_tokenizer_eot(gpt_model_tokenizer(m)) != -1)
            die("GPT_ERR_INVALID_ARG with valid parameters", gpt_context_error(c));
        if (res->stop_reason != GPT_STOP_NONE || gpt_context_n_past(c) != before) die("a refusal changed something", NULL);
        break;
    default:
        die("undocumented status from gpt_generate", gpt_status_name(st));
    }
    if (stop_after > 0 && o->pieces > stop_after) die("generation went on after the callback said stop", NULL);
    /* (a stop asked for by the callback on the last piece, which generation
     * delivers as it ends anyway, may leave the reason that ended it) */
    if (res->stop_reason == GPT_STOP_CALLBACK && (stop_after == 0 || o->pieces != stop_after))
        die("GPT_STOP_CALLBACK, but the callback did not ask to stop", NULL);
    if (!valid_utf8((const unsigned char *)o->buf, o->len)) die("the text is not valid UTF-8", NULL);
    for (i = 0; i < gp->n_stop; i++)
        if (contains(o->buf, o->len, gp->stop[i])) die("a stop string was printed", gp->stop[i]);
    return st;
}

static void op_generate(const gpt_model *m, const fz *f, int twice)
{
    gpt_generate_params gp;
    gpt_generate_result res, res2;
    gpt_error err;
    texts tx;
    gpt_context *c, *c2;
    out *o1 = (out *)malloc(sizeof *o1), *o2 = (out *)malloc(sizeof *o2);
    int params_ok, stop_after = f->p[17] >> 4, prefill = f->p[20] % 8, i;
    gpt_status st, st2;
    if (!o1 || !o2) die("out of memory", NULL);
    read_params(f, &gp);
    read_texts(f, f->p, &tx, &gp);
    params_ok = gpt_generate_params_check(&gp, &err) == GPT_OK;
    c = make_ctx(m, f->p, &err);
    if (!c) die("gpt_context_new", err.message);
    /* maybe continue a context that already holds positions */
    if (prefill > 0) {
        int ids[8], n = prefill < gpt_context_n_ctx(c) ? prefill : gpt_context_n_ctx(c);
        for (i = 0; i < n; i++) ids[i] = (f->p[21] * 7 + i * 13) % gpt_model_config(m).n_vocab;
        if (gpt_eval(c, ids, n) != GPT_OK) die("prefill", gpt_context_error(c));
        if (f->p[21] & 1) gpt_rewind(c, n - 1); /* logits dropped: generate recomputes them */
    }
    st = generate_checked(m, c, tx.prompt, &gp, params_ok, o1, stop_after, &res);
    /* without stop strings, callback stops or sliding, the text is the
     * detokenized ids whenever those bytes are valid UTF-8 */
    if (st == GPT_OK && gp.n_stop == 0 && stop_after == 0 && gp.context_policy == GPT_CONTEXT_STOP &&
        res.stop_reason != GPT_STOP_CALLBACK) {
        const int *toks = gpt_context_tokens(c);
        int from = gpt_context_n_past(c) - (res.n_generated - (res.stop_reason == GPT_STOP_EOS ? 1 : 0)), need;
        if (from < 0) die("fewer positions than generated ids", NULL);
        need = gpt_detokenize(gpt_model_tokenizer(m), toks + from, gpt_context_n_past(c) - from, NULL, 0);
        if (need >= 0 && (size_t)need <= sizeof o2->buf) {
            gpt_detokenize(gpt_model_tokenizer(m), toks + from, gpt_context_n_past(c) - from, o2->buf, sizeof o2->buf);
            if (valid_utf8((const unsigned char *)o2->buf, (size_t)need) &&
                ((size_t)need != o1->len || memcmp(o2->buf, o1->buf, o1->len) != 0))
                die("the streamed text differs from the detokenized ids", NULL);
        }
    }
    if (twice && params_ok && prefill == 0) {
        /* same seed, fresh context: the same everything */
        c2 = make_ctx(m, f->p, &err);
        if (!c2) die("gpt_context_new", err.message);
        st2 = generate_checked(m, c2, tx.prompt, &gp, params_ok, o2, stop_after, &res2);
        if (st2 != st || res2.stop_reason != res.stop_reason || res2.n_generated != res.n_generated ||
            o2->len != o1->len || memcmp(o2->buf, o1->buf, o1->len) != 0 ||
            gpt_context_n_past(c2) != gpt_context_n_past(c))
            die("the same seed gave a different result", NULL);
        gpt_context_free(c2);
        /* and go on from where the first run stopped */
        if (st == GPT_OK || st == GPT_ERR_CONTEXT_FULL) generate_checked(m, c, NULL, &gp, params_ok, o2, 0, &res2);
    }
    gpt_context_free(c);
    free(tx.buf);
    free(o1);
    free(o2);
}

/* ------------------------------------------------------------------------ */
/* Eval, rewind, score                                                      */

static void op_eval(const gpt_model *m, const fz *f)
{
    gpt_error err;
    gpt_context *c = make_ctx(m, f->p, &err);
    int V = gpt_model_config(m).n_vocab, n_ctx, *ids, n, i, step;
    float *lp;
    size_t at = 0;
    if (!c) die("gpt_context_new", err.message);
    n_ctx = gpt_context_n_ctx(c);
    n = (int)(f->n_payload / 2);
    ids = (int *)malloc(sizeof(int) * (size_t)(n + 1));
    lp = (float *)malloc(sizeof(float) * (size_t)(n + 1));
    if (!ids || !lp) die("out of memory", NULL);
    for (i = 0; i < n; i++) {
        unsigned v = (unsigned)f->payload[2 * i] | (unsigned)f->payload[2 * i + 1] << 8;
        /* mostly in range; 0xFFxx are negative, 0xFExx past the end */
        ids[i] = v >= 0xFF00 ? -(int)(v & 0xFF) - 1 : v >= 0xFE00 ? V + (int)(v & 0xFF) : (int)(v % (unsigned)V);
    }
    /* a sequence of calls, each taking its count from the parameters */
    for (step = 0; step < 6 && at <= (size_t)n; step++) {
        int k = f->p[step + 1] % 12, before = gpt_context_n_past(c), bad = 0;
        const float *lg_before = gpt_logits(c);
        gpt_status st;
        if (k > n - (int)at) k = n - (int)at;
        for (i = 0; i < k; i++)
            if (ids[at + (size_t)i] < 0 || ids[at + (size_t)i] >= V) bad = 1;
        switch (f->p[step + 8] % 4) {
        case 0:
        case 1:
            st = gpt_eval(c, ids + at, k);
            if (bad) {
                if (st != GPT_ERR_TOKEN_RANGE) die("a bad id was not refused", gpt_status_name(st));
            } else if (k > n_ctx - before) {
                if (st != GPT_ERR_CONTEXT_FULL) die("too many ids were not refused", gpt_status_name(st));
            } else if (st != GPT_OK) {
                die("gpt_eval failed", gpt_context_error(c));
            }
            if (st != GPT_OK) {
                if (gpt_context_n_past(c) != before || gpt_logits(c) != lg_before) die("a failed gpt_eval changed the context", NULL);
                if (!gpt_context_error(c)[0]) die("no message", NULL);
            } else {
                if (gpt_context_n_past(c) != before + k) die("n_past", NULL);
                if (k > 0 && !gpt_logits(c)) die("no logits after gpt_eval", NULL);
                if (k > 0 && memcmp(gpt_context_tokens(c) + before, ids + at, sizeof(int) * (size_t)k) != 0)
                    die("gpt_context_tokens differ from the ids", NULL);
                if (k > 0 && (gpt_logits_at(c, k) != NULL || gpt_logits_at(c, -1) != NULL))
                    die("gpt_logits_at out of range", NULL);
            }
            break;
        case 2: {
            int keep = (int)(f->p[step + 14] % 24) - 2;
            st = gpt_rewind(c, keep);
            if (keep < 0 || keep > before) {
                if (st != GPT_ERR_INVALID_ARG || gpt_context_n_past(c) != before) die("a bad rewind", NULL);
            } else if (st != GPT_OK || gpt_context_n_past(c) != keep || gpt_logits(c) != NULL) {
                die("rewind", NULL);
            }
            break;
        }
        default: {
            int cnt = (int)(f->n_payload / 2) - (int)at;
            if (cnt > 40) cnt = 40;
            st = gpt_score(c, ids + at, cnt, lp);
            bad = 0;
            for (i = 0; i < cnt; i++)
                if (ids[at + (size_t)i] < 0 || ids[at + (size_t)i] >= V) bad = 1;
            if (bad) {
                if (st != GPT_ERR_TOKEN_RANGE) die("gpt_score took a bad id", gpt_status_name(st));
            } else if (n_ctx < 2) {
                /* ERRORS.md: scoring needs a context of at least 2 positions */
                if (st != GPT_ERR_INVALID_ARG) die("gpt_score on a 1-position context", gpt_status_name(st));
            } else if (st != GPT_OK) {
                die("gpt_score failed", gpt_context_error(c));
            } else {
                for (i = 0; i + 1 < cnt; i++)
                    if (!(lp[i] <= 1e-5f) || !(lp[i] > -1e4f)) die("a log-probability out of range", NULL);
                if (gpt_context_n_past(c) > n_ctx) die("n_past after scoring", NULL);
            }
            k = cnt > 0 ? cnt : 0;
            break;
        }
        }
        at += (size_t)(k > 0 ? k : 1);
    }
    gpt_context_free(c);
    free(ids);
    free(lp);
}

/* ------------------------------------------------------------------------ */
/* Sampler                                                                  */

static void op_sample(const fz *f)
{
    gpt_generate_params gp;
    gpt_error err;
    gpt_sampler *s, *s2;
    int V = 1 + f->p[21] % 64, n_hist, i, id, id2, bad = 0, from;
    float *lg = (float *)calloc((size_t)V, sizeof(float));
    int hist[16];
    size_t need = (size_t)V * 4;
    if (!lg) die("out of memory", NULL);
    read_params(f, &gp);
    for (i = 0; i < V && (size_t)i * 4 + 4 <= f->n_payload; i++) {
        uint32_t u = (uint32_t)f->payload[4 * i] | (uint32_t)f->payload[4 * i + 1] << 8 |
                     (uint32_t)f->payload[4 * i + 2] << 16 | (uint32_t)f->payload[4 * i + 3] << 24;
        memcpy(&lg[i], &u, 4);
    }
    n_hist = f->p[22] % 17;
    for (i = 0; i < n_hist; i++) {
        uint8_t b = need + (size_t)i < f->n_payload ? f->payload[need + (size_t)i] : (uint8_t)i;
        hist[i] = b >= 0xF8 ? (b & 1 ? V + (b & 7) : -1 - (b & 7)) : b % V;
    }
    from = gp.repeat_last_n < 0 || gp.repeat_last_n > n_hist ? 0 : n_hist - gp.repeat_last_n;
    if (gp.repetition_penalty != 1.0f && gp.repeat_last_n != 0)
        for (i = from; i < n_hist; i++)
            if (hist[i] < 0 || hist[i] >= V) bad = 1;
    s = gpt_sampler_new(&gp, V, &err);
    if (gpt_generate_params_check(&gp, NULL) != GPT_OK) {
        if (s || err.status != GPT_ERR_INVALID_ARG) die("gpt_sampler_new took invalid parameters", NULL);
        free(lg);
        return;
    }
    if (!s) die("gpt_sampler_new", err.message);
    s2 = gpt_sampler_new(&gp, V, &err);
    if (!s2) die("gpt_sampler_new", err.message);
    for (i = 0; i < 3; i++) {
        id = gpt_sampler_sample(s, lg, hist, n_hist);
        id2 = gpt_sampler_sample(s2, lg, hist, n_hist);
        if (id != id2) die("two samplers with one seed disagree", NULL);
        if (bad) {
            if (id != GPT_ERR_TOKEN_RANGE) die("a bad history id was not refused", NULL);
        } else if (id < 0 || id >= V) {
            char why[64];
            snprintf(why, sizeof why, "id %d, n_vocab %d, call %d", id, V, i);
            die("sampled an id out of range", why);
        }
    }
    if (bad) {
        /* a refused call leaves the sampler as it was: from now on it must
         * agree with a fresh one given only the good ids */
        gpt_sampler *fresh = gpt_sampler_new(&gp, V, &err);
        int good[16], ng = 0;
        if (!fresh) die("gpt_sampler_new", err.message);
        gpt_sampler_seed(s, gp.seed);
        for (i = 0; i < n_hist; i++)
            if (hist[i] >= 0 && hist[i] < V) good[ng++] = hist[i];
        id = gpt_sampler_sample(s, lg, good, ng);
        id2 = gpt_sampler_sample(fresh, lg, good, ng);
        if (id != id2) die("a refused gpt_sampler_sample changed the sampler", NULL);
        gpt_sampler_free(fresh);
    }
    /* a re-seeded sampler repeats itself */
    gpt_sampler_seed(s, gp.seed);
    gpt_sampler_seed(s2, gp.seed);
    if (gpt_sampler_sample(s, lg, NULL, 0) != gpt_sampler_sample(s2, lg, NULL, 0)) die("re-seeding", NULL);
    gpt_sampler_free(s);
    gpt_sampler_free(s2);
    free(lg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t params[24];
    fz f;
    const gpt_model *m;
    if (!g_models[0]) setup();
    if (size < 1) return 0;
    memset(params, 0, sizeof params);
    memcpy(params, data + 1, size - 1 < 24 ? size - 1 : 24);
    f.p = params;
    f.payload = size > 25 ? data + 25 : data + size;
    f.n_payload = size > 25 ? size - 25 : 0;
    if (f.n_payload > 4096) f.n_payload = 4096;
    m = g_models[(data[0] >> 2) & 1];
    switch (data[0] & 3) {
    case 0: op_generate(m, &f, 0); break;
    case 1: op_generate(m, &f, 1); break;
    case 2: op_eval(m, &f); break;
    default: op_sample(&f); break;
    }
    return 0;
}
