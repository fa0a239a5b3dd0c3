/*
 * test_misuse.c - every public function of gpt.h called wrongly: NULL
 * pointers, negative counts, ids out of range, buffers too small, parameters
 * out of range (negative, NaN, infinite, huge), free of NULL. Each call must
 * return the status docs/ERRORS.md documents, leave a message where one is
 * promised, and change nothing. Also the resource limits: contexts larger
 * than the model, multi-megabyte prompts and id arrays that cannot fit, and
 * the memory a context really uses against gpt_context_memory().
 */
#if (defined(__unix__) || defined(__APPLE__)) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#include <limits.h>
#include <math.h>

#include "model_util.h"
#include "test.h"

#if defined(__unix__) || defined(__APPLE__)
#include <sys/resource.h>
#include <unistd.h>
#define HAVE_POSIX 1
#endif

#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include "util.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define UNDER_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
#define UNDER_SANITIZER 1
#endif
#endif

static gpt_model *g_model;     /* 1 layer, V 300: no <|endoftext|> */
static gpt_model *g_eot_model; /* a small vocabulary with <|endoftext|> */
static int V;                  /* g_model's n_vocab */

/* ------------------------------------------------------------------------ */
/* A small vocabulary with <|endoftext|> (GPT-2's JSON spelling of bytes)   */

static const char small_merges[] = "#version: 0.2\na b\nab c\n";

/* encoder.json text: the 256 bytes, "ab", "abc", "<|endoftext|>" (the merges
 * are small_merges) */
static size_t small_vocab_json(char *v)
{
    static const char *const merge[][2] = {{"a", "b"}, {"ab", "c"}};
    char mg[256];
    size_t vl, ml;
    byte_vocab_text(merge, 2, v, &vl, mg, &ml);
    return vl;
}

static gpt_model *eot_model(gpt_error *err)
{
    static char v[8192];
    ckpt_spec spec;
    ckpt_random r;
    unsigned char *buf = NULL;
    size_t len;
    gpt_model *m = NULL;
    gpt_tokenizer *tok = gpt_tokenizer_load_memory(v, small_vocab_json(v), small_merges, sizeof small_merges - 1, err);
    if (!tok) return NULL;
    memset(&spec, 0, sizeof spec);
    spec.n_layer = 1;
    spec.n_head = 2;
    spec.n_embd = 16;
    spec.n_ctx = 16;
    spec.n_vocab = gpt_tokenizer_n_vocab(tok);
    spec.ln_eps = 1e-5f;
    spec.dtype = GPT_DTYPE_F32;
    spec.wpe_dtype = GPT_DTYPE_F32;
    spec.tok = tok;
    r.seed = 3;
    r.n_layer = 1;
    if (ckpt_write_memory(&spec, ckpt_random_source, &r, &buf, &len, err) == GPT_OK) {
        /* unaligned on purpose: the loader keeps a copy */
        unsigned char *shifted = (unsigned char *)malloc(len + 1);
        if (shifted) {
            memcpy(shifted + 1, buf, len);
            m = gpt_model_load_memory(shifted + 1, len, err);
            free(shifted);
        }
    }
    free(buf);
    gpt_tokenizer_free(tok);
    return m;
}

static gpt_context *new_ctx(const gpt_model *m, int n_ctx, int all_logits)
{
    gpt_context_params cp = gpt_context_defaults();
    cp.n_ctx = n_ctx;
    cp.n_threads = 1;
    cp.all_logits = all_logits;
    return gpt_context_new(m, &cp, NULL);
}

/* A gpt_error pre-filled with garbage, so that a function that forgets to
 * set it is caught. */
static void dirty(gpt_error *err)
{
    memset(err, 0x5A, sizeof *err);
}

/* 1 if the loading-style error says status s with a message. */
static int err_is(const gpt_error *err, gpt_status s)
{
    return err->status == s && memchr(err->message, 0, sizeof err->message) && err->message[0] != 0;
}

/* ------------------------------------------------------------------------ */
/* Names and versions                                                       */

TEST(names_and_versions)
{
    static const gpt_status all[] = {GPT_OK, GPT_ERR_INVALID_ARG, GPT_ERR_OUT_OF_MEMORY, GPT_ERR_IO, GPT_ERR_FORMAT,
                                     GPT_ERR_UNSUPPORTED, GPT_ERR_TOKEN_RANGE, GPT_ERR_CONTEXT_FULL,
                                     GPT_ERR_BUFFER_TOO_SMALL, GPT_ERR_EXISTS, GPT_ERR_CANCELLED};
    size_t i;
    gpt_dtype d = GPT_DTYPE_BF16;
    for (i = 0; i < sizeof all / sizeof all[0]; i++) {
        const char *n = gpt_status_name(all[i]);
        CHECKF(n && !strncmp(n, "GPT_", 4) && strcmp(n, "GPT_ERR_UNKNOWN") != 0, "status %d has no name", (int)all[i]);
    }
    CHECK(!strcmp(gpt_status_name(GPT_ERR_FORMAT), "GPT_ERR_FORMAT"));
    /* values that are no status still give a string */
    CHECK(gpt_status_name((gpt_status)1) != NULL && gpt_status_name((gpt_status)-11) != NULL);
    CHECK(gpt_status_name((gpt_status)INT_MIN) != NULL && gpt_status_name((gpt_status)INT_MAX) != NULL);
    CHECK(!strcmp(gpt_version(), GPT_VERSION_STRING));
    CHECK(!strcmp(gpt_dtype_name((gpt_dtype)4), "?") && !strcmp(gpt_dtype_name((gpt_dtype)-1), "?"));
    CHECK(gpt_dtype_from_name(NULL, &d) == GPT_ERR_INVALID_ARG && d == GPT_DTYPE_BF16);
    CHECK(gpt_dtype_from_name("f16", NULL) == GPT_ERR_INVALID_ARG);
    CHECK(gpt_dtype_from_name("", &d) == GPT_ERR_INVALID_ARG && d == GPT_DTYPE_BF16);
    CHECK(gpt_dtype_from_name("?", &d) == GPT_ERR_INVALID_ARG);
    CHECK(gpt_dtype_from_name("F16", &d) == GPT_ERR_INVALID_ARG);
    CHECK(gpt_dtype_from_name("q8_0", &d) == GPT_OK && d == GPT_DTYPE_Q8_0);
}

/* ------------------------------------------------------------------------ */
/* Tokenizer                                                                */

TEST(tokenizer_loading_misuse)
{
    gpt_error err;
    const char *build = getenv("BUILD");
    char dir[512], vocab[8192];
    size_t vl = small_vocab_json(vocab);
    gpt_tokenizer *t;
    snprintf(dir, sizeof dir, "%s", build ? build : "build");
    dirty(&err);
    CHECK(gpt_tokenizer_load(NULL, GPT2_MERGES, &err) == NULL && err_is(&err, GPT_ERR_INVALID_ARG));
    dirty(&err);
    CHECK(gpt_tokenizer_load(GPT2_VOCAB, NULL, &err) == NULL && err_is(&err, GPT_ERR_INVALID_ARG));
    dirty(&err);
    CHECK(gpt_tokenizer_load("no/such/vocab.json", GPT2_MERGES, &err) == NULL && err_is(&err, GPT_ERR_IO));
    CHECKF(strstr(err.message, "no/such/vocab.json") != NULL, "%s", err.message);
    dirty(&err);
    t = gpt_tokenizer_load(dir, GPT2_MERGES, &err);
    CHECKF(t == NULL && (err_is(&err, GPT_ERR_IO) || err_is(&err, GPT_ERR_FORMAT)), "a folder as vocab: %s",
           err.message);
    CHECK(gpt_tokenizer_load(NULL, NULL, NULL) == NULL); /* err may be NULL */
    dirty(&err);
    CHECK(gpt_tokenizer_load_memory(NULL, 10, small_merges, 5, &err) == NULL && err_is(&err, GPT_ERR_INVALID_ARG));
    dirty(&err);
    CHECK(gpt_tokenizer_load_memory(vocab, vl, NULL, 10, &err) == NULL && err_is(&err, GPT_ERR_INVALID_ARG));
    dirty(&err);
    CHECK(gpt_tokenizer_load_memory(NULL, 0, NULL, 0, &err) == NULL && err_is(&err, GPT_ERR_FORMAT));
    /* merges may be empty */
    dirty(&err);
    t = gpt_tokenizer_load_memory(vocab, vl, NULL, 0, &err);
    CHECKF(t != NULL && err.status == GPT_OK, "%s", err.message);
    gpt_tokenizer_free(t);
    dirty(&err);
    CHECK(gpt_tokenizer_deserialize(NULL, 5, &err) == NULL && err_is(&err, GPT_ERR_INVALID_ARG));
    dirty(&err);
    CHECK(gpt_tokenizer_deserialize(NULL, 0, &err) == NULL && err_is(&err, GPT_ERR_FORMAT));
    dirty(&err);
    CHECK(gpt_tokenizer_deserialize("GTOK", 4, &err) == NULL && err_is(&err, GPT_ERR_FORMAT));
    gpt_tokenizer_free(NULL);
    gpt_tokenizer_free(NULL);
}

TEST(tokenizer_calls_misuse)
{
    const gpt_tokenizer *t = gpt_model_tokenizer(g_model);
    int ids[8] = {0, 1, 2, 3, 4, 5, 6, 7}, k;
    char out[64], sec_small[16];
    size_t len = 77, need, max_tok;
    const char *p;
    gpt_decoder d;
    CHECK(t != NULL);
    /* sizes and lookups */
    CHECK(gpt_tokenizer_n_vocab(NULL) == 0 && gpt_tokenizer_eot(NULL) == -1 && gpt_tokenizer_max_token_bytes(NULL) == 0);
    need = gpt_tokenizer_serialize(t, NULL, 0);
    CHECK(need > 24);
    CHECK(gpt_tokenizer_serialize(t, NULL, 1000) == need); /* NULL out: sizing */
    memset(sec_small, 0x33, sizeof sec_small);
    CHECK(gpt_tokenizer_serialize(t, sec_small, sizeof sec_small) == need);
    for (k = 0; k < (int)sizeof sec_small; k++) CHECKF(sec_small[k] == 0x33, "a too small buffer was written at %d", k);
    CHECK(gpt_tokenizer_serialize(NULL, sec_small, sizeof sec_small) == 0);
    CHECK(gpt_token_bytes(NULL, 0, &len) == NULL && len == 0);
    len = 77;
    CHECK(gpt_token_bytes(t, -1, &len) == NULL && len == 0);
    CHECK(gpt_token_bytes(t, V, NULL) == NULL);
    CHECK(gpt_token_bytes(t, INT_MIN, NULL) == NULL && gpt_token_bytes(t, INT_MAX, NULL) == NULL);
    p = gpt_token_bytes(t, V - 1, NULL);
    CHECK(p != NULL);
    /* tokenize */
    CHECK(gpt_tokenize(NULL, "a", 1, ids, 8) == GPT_ERR_INVALID_ARG);
    CHECK(gpt_tokenize(t, NULL, 3, ids, 8) == GPT_ERR_INVALID_ARG);
    CHECK(gpt_tokenize(t, NULL, 0, ids, 8) == 0); /* no text at all is fine */
    CHECK(gpt_tokenize(t, "abc", 3, NULL, 8) == GPT_ERR_INVALID_ARG);
    CHECK(gpt_tokenize(t, "abc", 3, NULL, 0) > 0);
    CHECK(gpt_tokenize(t, "abc", 3, ids, -1) == GPT_ERR_INVALID_ARG);
    CHECK(gpt_tokenize(t, "abc", 3, ids, INT_MIN) == GPT_ERR_INVALID_ARG);
    CHECK(gpt_tokenize_ex(t, "abc", 3, ids, 8, 2) == GPT_ERR_INVALID_ARG);
    CHECK(gpt_tokenize_ex(t, "abc", 3, ids, 8, -1) == GPT_ERR_INVALID_ARG);
    CHECK(gpt_tokenize_ex(t, "abc", 3, ids, 8, GPT_TOKENIZE_SPECIAL) > 0); /* no EOT: the flag changes nothing */
    /* detokenize */
    ids[0] = 5;
    ids[1] = V;
    CHECK(gpt_detokenize(t, ids, 2, out, sizeof out) == GPT_ERR_TOKEN_RANGE);
    ids[1] = INT_MIN;
    CHECK(gpt_detokenize(t, ids, 2, out, sizeof out) == GPT_ERR_TOKEN_RANGE);
    ids[1] = 6;
    CHECK(gpt_detokenize(t, ids, -1, out, sizeof out) == GPT_ERR_INVALID_ARG);
    CHECK(gpt_detokenize(t, ids, INT_MIN, out, sizeof out) == GPT_ERR_INVALID_ARG);
    CHECK(gpt_detokenize(t, NULL, 2, out, sizeof out) == GPT_ERR_INVALID_ARG);
    CHECK(gpt_detokenize(t, ids, 2, NULL, 5) == GPT_ERR_INVALID_ARG);
    CHECK(gpt_detokenize(NULL, ids, 2, out, sizeof out) == GPT_ERR_INVALID_ARG);
    CHECK(gpt_detokenize(t, ids, 2, NULL, 0) == 2); /* sizing */
    memset(out, 'Z', sizeof out);
    CHECK(gpt_detokenize(t, ids, 2, out, 1) == 2 && out[1] == 'Z'); /* too small: the size, one byte, no NUL */
    /* streaming decoder */
    gpt_decoder_init(NULL);
    gpt_decoder_init(&d);
    max_tok = gpt_tokenizer_max_token_bytes(t);
    CHECK(max_tok >= 1 && max_tok < sizeof out);
    CHECK(gpt_decoder_push(&d, t, V, out, sizeof out) == GPT_ERR_TOKEN_RANGE);
    CHECK(gpt_decoder_push(&d, t, -1, out, sizeof out) == GPT_ERR_TOKEN_RANGE);
    CHECK(gpt_decoder_push(&d, t, 40, NULL, 8) == GPT_ERR_INVALID_ARG);
    CHECK(gpt_decoder_push(NULL, t, 40, out, sizeof out) == GPT_ERR_INVALID_ARG);
    CHECK(gpt_decoder_push(&d, NULL, 40, out, sizeof out) == GPT_ERR_INVALID_ARG);
    CHECK(gpt_decoder_push(&d, t, 40, out, 0) == GPT_ERR_BUFFER_TOO_SMALL); /* '!' + 40: one ASCII byte */
    CHECK(d.n_held == 0);
    CHECK(gpt_decoder_push(&d, t, 40, out, sizeof out) == 1);
    /* hold the first byte of a 2-byte character: flushing into no room
     * fails and keeps it */
    CHECK(gpt_tokenize(t, "\xC3", 1, &k, 1) == 1);
    CHECK(gpt_decoder_push(&d, t, k, out, sizeof out) == 0 && d.n_held == 1);
    CHECK(gpt_decoder_flush(&d, out, 0) == GPT_ERR_BUFFER_TOO_SMALL && d.n_held == 1);
    CHECK(gpt_decoder_flush(&d, NULL, 4) == GPT_ERR_INVALID_ARG && d.n_held == 1);
    CHECK(gpt_decoder_flush(&d, out, 4) == 1 && d.n_held == 0 && (unsigned char)out[0] == 0xC3);
    CHECK(gpt_decoder_flush(&d, NULL, 0) == 0);
    CHECK(gpt_decoder_flush(NULL, out, 4) == GPT_ERR_INVALID_ARG);
    /* a decoder whose fields were overwritten by the caller */
    d.n_held = 9;
    CHECK(gpt_decoder_push(&d, t, 40, out, sizeof out) == GPT_ERR_INVALID_ARG);
    CHECK(gpt_decoder_flush(&d, out, sizeof out) == GPT_ERR_INVALID_ARG);
    d.n_held = -3;
    CHECK(gpt_decoder_push(&d, t, 40, out, sizeof out) == GPT_ERR_INVALID_ARG);
    CHECK(gpt_decoder_flush(&d, out, sizeof out) == GPT_ERR_INVALID_ARG);
}

/* ------------------------------------------------------------------------ */
/* Models and contexts                                                      */

TEST(model_loading_misuse)
{
    gpt_error err;
    const char *build = getenv("BUILD");
    char dir[512];
    unsigned char small[200];
    gpt_config c;
    snprintf(dir, sizeof dir, "%s", build ? build : "build");
    dirty(&err);
    CHECK(gpt_model_load(NULL, &err) == NULL && err_is(&err, GPT_ERR_INVALID_ARG));
    dirty(&err);
    CHECK(gpt_model_load("", &err) == NULL && err_is(&err, GPT_ERR_IO));
    dirty(&err);
    CHECK(gpt_model_load("no/such/model.bin", &err) == NULL && err_is(&err, GPT_ERR_IO));
    CHECK(strstr(err.message, "no/such/model.bin") != NULL);
    dirty(&err);
    CHECK(gpt_model_load(dir, &err) == NULL && err_is(&err, GPT_ERR_IO));
#if defined(HAVE_POSIX)
    dirty(&err);
    CHECKF(gpt_model_load("/dev/null", &err) == NULL && err_is(&err, GPT_ERR_IO), "/dev/null: %s %s",
           gpt_status_name(err.status), err.message);
#endif
    CHECK(gpt_model_load(NULL, NULL) == NULL);
    dirty(&err);
    CHECK(gpt_model_load_memory(NULL, 0, &err) == NULL && err_is(&err, GPT_ERR_INVALID_ARG));
    dirty(&err);
    CHECK(gpt_model_load_memory(NULL, 1000, &err) == NULL && err_is(&err, GPT_ERR_INVALID_ARG));
    memset(small, 0, sizeof small);
    dirty(&err);
    CHECK(gpt_model_load_memory(small, 0, &err) == NULL && err_is(&err, GPT_ERR_FORMAT));
    dirty(&err);
    CHECK(gpt_model_load_memory(small + 1, 127, &err) == NULL && err_is(&err, GPT_ERR_FORMAT));
    dirty(&err);
    CHECK(gpt_model_load_memory(small, sizeof small, &err) == NULL && err_is(&err, GPT_ERR_FORMAT));
    gpt_model_free(NULL);
    gpt_model_free(NULL);
    c = gpt_model_config(NULL);
    CHECK(c.n_vocab == 0 && c.n_ctx == 0 && c.n_embd == 0 && c.n_layer == 0 && c.n_params == 0);
    CHECK(gpt_model_tokenizer(NULL) == NULL);
}

TEST(context_creation_misuse)
{
    gpt_context_params cp = gpt_context_defaults(), bad;
    gpt_error err;
    gpt_config c = gpt_model_config(g_model);
    struct { const char *what; int field, value; } cases[] = {
        {"n_ctx -1", 0, -1}, {"n_ctx INT_MIN", 0, INT_MIN}, {"n_ctx model + 1", 0, 0}, {"n_ctx INT_MAX", 0, INT_MAX},
        {"n_batch -1", 1, -1}, {"n_batch INT_MIN", 1, INT_MIN}, {"n_threads -1", 2, -1},
        {"n_threads 257", 2, 257}, {"n_threads INT_MAX", 2, INT_MAX}, {"n_threads INT_MIN", 2, INT_MIN},
        {"kv_type -1", 3, -1}, {"kv_type 3", 3, 3}, {"kv_type INT_MAX", 3, INT_MAX}, {"kv_type INT_MIN", 3, INT_MIN},
    };
    size_t i;
    gpt_context *ctx;
    CHECK(cp.n_ctx == 0 && cp.n_batch == 0 && cp.n_threads == 0 && cp.all_logits == 0 && cp.reference_kernels == 0 &&
          cp.kv_type == GPT_KV_AUTO);
    cases[2].value = c.n_ctx + 1;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bad = cp;
        if (cases[i].field == 0) bad.n_ctx = cases[i].value;
        else if (cases[i].field == 1) bad.n_batch = cases[i].value;
        else if (cases[i].field == 2) bad.n_threads = cases[i].value;
        else bad.kv_type = cases[i].value;
        dirty(&err);
        ctx = gpt_context_new(g_model, &bad, &err);
        EXPECTF(ctx == NULL && err_is(&err, GPT_ERR_INVALID_ARG), "%s: %s", cases[i].what, err.message);
        gpt_context_free(ctx);
        EXPECTF(gpt_context_memory(g_model, &bad) == 0, "%s: memory stated for invalid parameters", cases[i].what);
        CHECK(gpt_context_new(g_model, &bad, NULL) == NULL);
    }
    dirty(&err);
    CHECK(gpt_context_new(NULL, &cp, &err) == NULL && err_is(&err, GPT_ERR_INVALID_ARG));
    CHECK(gpt_context_new(NULL, NULL, NULL) == NULL);
    CHECK(gpt_context_memory(NULL, NULL) == 0 && gpt_context_memory(NULL, &cp) == 0);
    CHECK(gpt_context_memory(g_model, NULL) > 0);
    /* odd but valid: a huge n_batch is capped, all_logits any non-zero */
    bad = cp;
    bad.n_batch = INT_MAX;
    bad.all_logits = -7;
    bad.n_threads = 1;
    dirty(&err);
    ctx = gpt_context_new(g_model, &bad, &err);
    CHECKF(ctx != NULL && err.status == GPT_OK, "%s", err.message);
    CHECK(gpt_context_n_ctx(ctx) == c.n_ctx && gpt_context_n_threads(ctx) == 1 && gpt_context_n_past(ctx) == 0);
    gpt_context_free(ctx);
    /* NULL contexts */
    gpt_context_free(NULL);
    gpt_context_free(NULL);
    CHECK(gpt_context_error(NULL) != NULL);
    CHECK(gpt_context_n_ctx(NULL) == 0 && gpt_context_n_threads(NULL) == 0 && gpt_context_n_past(NULL) == 0 &&
          gpt_context_kv_type(NULL) == 0);
    CHECK(gpt_context_tokens(NULL) == NULL);
}

TEST(eval_misuse_changes_nothing)
{
    gpt_context *c = new_ctx(g_model, 8, 1);
    int ids[8] = {1, 2, 3, 4, 5, 6, 7, 8}, bad[4] = {1, 2, 0, 3}, i;
    static const int bad_ids[] = {-1, INT_MIN, INT_MAX, 0};
    float *before = (float *)malloc(sizeof(float) * (size_t)V);
    CHECK(c && before);
    CHECK(gpt_logits(c) == NULL && gpt_logits_at(c, 0) == NULL);
    CHECK(gpt_eval(NULL, ids, 1) == GPT_ERR_INVALID_ARG);
    CHECK(gpt_eval(c, NULL, 1) == GPT_ERR_INVALID_ARG && gpt_context_error(c)[0]);
    CHECK(gpt_eval(c, ids, -1) == GPT_ERR_INVALID_ARG && gpt_context_error(c)[0]);
    CHECK(gpt_eval(c, ids, INT_MIN) == GPT_ERR_INVALID_ARG);
    CHECK(gpt_eval(c, NULL, 0) == GPT_OK && gpt_context_n_past(c) == 0);
    CHECK(gpt_eval(c, ids, 3) == GPT_OK);
    memcpy(before, gpt_logits(c), sizeof(float) * (size_t)V);
    for (i = 0; i < 4; i++) {
        bad[2] = i < 3 ? bad_ids[i] : V;
        CHECK(gpt_eval(c, bad, 4) == GPT_ERR_TOKEN_RANGE);
        CHECKF(gpt_context_error(c)[0] != 0, "no message");
        CHECK(gpt_context_n_past(c) == 3);
        CHECK(gpt_logits(c) != NULL && memcmp(gpt_logits(c), before, sizeof(float) * (size_t)V) == 0);
        CHECK(gpt_logits_at(c, 2) != NULL && gpt_logits_at(c, 3) == NULL);
    }
    CHECK(gpt_eval(c, ids, 6) == GPT_ERR_CONTEXT_FULL && gpt_context_n_past(c) == 3);
    CHECK(memcmp(gpt_logits(c), before, sizeof(float) * (size_t)V) == 0);
    CHECK(gpt_logits(NULL) == NULL && gpt_logits_at(NULL, 0) == NULL);
    CHECK(gpt_logits_at(c, -1) == NULL && gpt_logits_at(c, INT_MIN) == NULL && gpt_logits_at(c, INT_MAX) == NULL);
    /* rewind */
    CHECK(gpt_rewind(NULL, 0) == GPT_ERR_INVALID_ARG);
    CHECK(gpt_rewind(c, -1) == GPT_ERR_INVALID_ARG && gpt_context_n_past(c) == 3);
    CHECK(gpt_rewind(c, 4) == GPT_ERR_INVALID_ARG && gpt_context_n_past(c) == 3);
    CHECK(gpt_rewind(c, INT_MAX) == GPT_ERR_INVALID_ARG && gpt_rewind(c, INT_MIN) == GPT_ERR_INVALID_ARG);
    CHECK(gpt_logits(c) != NULL); /* a refused rewind keeps the logits */
    CHECK(gpt_rewind(c, 3) == GPT_OK && gpt_logits(c) == NULL && gpt_context_n_past(c) == 3);
    free(before);
    gpt_context_free(c);
}

static int cancel_at_once(int scored, int total, void *user)
{
    (void)scored;
    (void)total;
    (*(int *)user)++;
    return 1;
}

TEST(score_misuse)
{
    gpt_context *c = new_ctx(g_model, 8, 0), *one = new_ctx(g_model, 1, 0);
    int ids[20], i, calls = 0;
    float lp[20];
    CHECK(c && one);
    for (i = 0; i < 20; i++) ids[i] = (i * 7 + 1) % V;
    CHECK(gpt_score(NULL, ids, 3, lp) == GPT_ERR_INVALID_ARG);
    CHECK(gpt_score(c, NULL, 3, lp) == GPT_ERR_INVALID_ARG);
    CHECK(gpt_score(c, ids, -1, lp) == GPT_ERR_INVALID_ARG);
    CHECK(gpt_score(c, ids, 3, NULL) == GPT_ERR_INVALID_ARG && gpt_context_error(c)[0]);
    CHECK(gpt_score(c, ids, 1, NULL) == GPT_OK);
    CHECK(gpt_score(c, NULL, 0, NULL) == GPT_OK);
    ids[5] = V;
    CHECK(gpt_score(c, ids, 10, lp) == GPT_ERR_TOKEN_RANGE);
    ids[5] = -5;
    CHECK(gpt_score(c, ids, 10, lp) == GPT_ERR_TOKEN_RANGE);
    ids[5] = 5;
    CHECK(gpt_score(one, ids, 5, lp) == GPT_ERR_INVALID_ARG && gpt_context_error(one)[0]);
    CHECK(gpt_score_ex(c, ids, 20, lp, cancel_at_once, &calls) == GPT_ERR_CANCELLED && calls == 1);
    CHECK(gpt_context_error(c)[0] != 0);
    CHECK(gpt_score_ex(c, ids, 20, lp, NULL, NULL) == GPT_OK);
    for (i = 0; i < 19; i++) CHECKF(lp[i] <= 1e-6f && lp[i] > -1e4f, "logprob %d is %g", i, (double)lp[i]);
    gpt_context_free(c);
    gpt_context_free(one);
}

/* ------------------------------------------------------------------------ */
/* Sampling and generation parameters                                       */

typedef struct bad_param {
    const char *what;
    gpt_generate_params p;
} bad_param;

static int bad_params(bad_param *out, const char *const *stops_null, const char *const *stops_empty,
                      const char *const *stops_long)
{
    gpt_generate_params d = gpt_generate_defaults();
    int n = 0;
#define BAD(desc, stmt)                                                                                       \
    do {                                                                                                      \
        out[n].what = desc;                                                                                   \
        out[n].p = d;                                                                                         \
        {                                                                                                     \
            gpt_generate_params *q = &out[n].p;                                                               \
            stmt;                                                                                             \
        }                                                                                                     \
        n++;                                                                                                  \
    } while (0)
    BAD("max_new_tokens -2", q->max_new_tokens = -2);
    BAD("max_new_tokens INT_MIN", q->max_new_tokens = INT_MIN);
    BAD("temperature -0.1", q->temperature = -0.1f);
    BAD("temperature -inf", q->temperature = -INFINITY);
    BAD("temperature NaN", q->temperature = NAN);
    BAD("temperature inf", q->temperature = INFINITY);
    BAD("temperature 1e7", q->temperature = 1e7f);
    BAD("top_k -1", q->top_k = -1);
    BAD("top_k INT_MIN", q->top_k = INT_MIN);
    BAD("top_p 0", q->top_p = 0.0f);
    BAD("top_p -0.5", q->top_p = -0.5f);
    BAD("top_p 1.0001", q->top_p = 1.0001f);
    BAD("top_p NaN", q->top_p = NAN);
    BAD("top_p inf", q->top_p = INFINITY);
    BAD("min_p -0.01", q->min_p = -0.01f);
    BAD("min_p 1.5", q->min_p = 1.5f);
    BAD("min_p NaN", q->min_p = NAN);
    BAD("repetition_penalty 0", q->repetition_penalty = 0.0f);
    BAD("repetition_penalty -1", q->repetition_penalty = -1.0f);
    BAD("repetition_penalty NaN", q->repetition_penalty = NAN);
    BAD("repetition_penalty inf", q->repetition_penalty = INFINITY);
    BAD("repetition_penalty 1e7", q->repetition_penalty = 1e7f);
    BAD("repeat_last_n -2", q->repeat_last_n = -2);
    BAD("repeat_last_n INT_MIN", q->repeat_last_n = INT_MIN);
    BAD("n_stop -1", q->n_stop = -1);
    BAD("n_stop 1, stop NULL", q->n_stop = 1);
    BAD("stop string NULL", (q->stop = stops_null, q->n_stop = 2));
    BAD("stop string empty", (q->stop = stops_empty, q->n_stop = 1));
    BAD("stop string of 4097 bytes", (q->stop = stops_long, q->n_stop = 1));
    BAD("context_policy 2", q->context_policy = (gpt_context_policy)2);
    BAD("context_policy -1", q->context_policy = (gpt_context_policy)-1);
    /* Hugging Face's options, as HF refuses them */
    BAD("n_sequences 0", q->n_sequences = 0);
    BAD("n_sequences -3", q->n_sequences = -3);
    BAD("max_length -1", q->max_length = -1);
    BAD("min_new_tokens -1", q->min_new_tokens = -1);
    BAD("do_sample 2", q->do_sample = 2);
    BAD("do_sample with temperature 0", (q->do_sample = 1, q->temperature = 0.0f));
    BAD("num_beams 0", q->num_beams = 0);
    BAD("num_beams -1", q->num_beams = -1);
    BAD("beam sampling", (q->num_beams = 4, q->do_sample = 1));
    BAD("num_return_sequences > num_beams", (q->num_beams = 2, q->n_sequences = 3));
    BAD("greedy with 2 sequences", (q->do_sample = 0, q->n_sequences = 2));
    BAD("length_penalty NaN", q->length_penalty = NAN);
    BAD("length_penalty inf", q->length_penalty = INFINITY);
    BAD("early_stopping 3", q->early_stopping = 3);
    BAD("early_stopping -1", q->early_stopping = -1);
    BAD("no_repeat_ngram_size -1", q->no_repeat_ngram_size = -1);
    BAD("presence_penalty 2.5", q->presence_penalty = 2.5f);
    BAD("presence_penalty NaN", q->presence_penalty = NAN);
    BAD("frequency_penalty -3", q->frequency_penalty = -3.0f);
    BAD("n_logprobs -1", q->n_logprobs = -1);
    BAD("n_logprobs 21", q->n_logprobs = GPT_MAX_LOGPROBS + 1);
#undef BAD
    return n;
}

TEST(generate_params_out_of_range)
{
    static char long_stop[4098];
    const char *stops_null[2] = {"x", NULL}, *stops_empty[1] = {""}, *stops_long[1] = {long_stop};
    bad_param cases[64];
    int n, i;
    gpt_error err;
    gpt_context *c = new_ctx(g_model, 8, 0);
    gpt_generate_params ok = gpt_generate_defaults();
    gpt_generate_result res;
    CHECK(c != NULL);
    memset(long_stop, 'x', 4097);
    n = bad_params(cases, stops_null, stops_empty, stops_long);
    for (i = 0; i < n; i++) {
        gpt_sampler *s;
        gpt_status st;
        dirty(&err);
        st = gpt_generate_params_check(&cases[i].p, &err);
        EXPECTF(st == GPT_ERR_INVALID_ARG && err_is(&err, GPT_ERR_INVALID_ARG), "check %s: %s", cases[i].what,
                gpt_status_name(st));
        dirty(&err);
        s = gpt_sampler_new(&cases[i].p, V, &err);
        EXPECTF(s == NULL && err_is(&err, GPT_ERR_INVALID_ARG), "sampler %s", cases[i].what);
        gpt_sampler_free(s);
        memset(&res, 0x77, sizeof res);
        st = gpt_generate_ex(c, "ab", &cases[i].p, NULL, NULL, &res);
        EXPECTF(st == GPT_ERR_INVALID_ARG && gpt_context_error(c)[0] && res.stop_reason == GPT_STOP_NONE &&
                    res.n_generated == 0 && gpt_context_n_past(c) == 0,
                "generate %s: %s", cases[i].what, gpt_status_name(st));
    }
    /* the boundaries that are allowed */
    ok.temperature = 0.0f;
    ok.top_p = 1.0f;
    ok.min_p = 1.0f;
    ok.top_k = INT_MAX;
    ok.repeat_last_n = -1;
    ok.max_new_tokens = 0;
    long_stop[4096] = 0;
    ok.stop = stops_long;
    ok.n_stop = 1;
    CHECKF(gpt_generate_params_check(&ok, &err) == GPT_OK, "%s", err.message);
    ok.n_stop = 0;
    ok.stop = NULL;
    ok.temperature = 1e-30f;
    ok.min_p = 0.0f;
    ok.top_p = 1e-30f;
    ok.repetition_penalty = 1e-30f;
    CHECKF(gpt_generate_params_check(&ok, &err) == GPT_OK, "%s", err.message);
    CHECK(gpt_generate_params_check(NULL, &err) == GPT_ERR_INVALID_ARG && err_is(&err, GPT_ERR_INVALID_ARG));
    CHECK(gpt_generate_params_check(NULL, NULL) == GPT_ERR_INVALID_ARG);
    gpt_context_free(c);
}

TEST(sampler_misuse)
{
    gpt_generate_params gp = gpt_generate_defaults();
    gpt_error err;
    gpt_sampler *s;
    float lg[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    int hist[3] = {1, 2, 3}, id;
    dirty(&err);
    CHECK(gpt_sampler_new(NULL, 8, &err) == NULL && err_is(&err, GPT_ERR_INVALID_ARG));
    dirty(&err);
    CHECK(gpt_sampler_new(&gp, 0, &err) == NULL && err_is(&err, GPT_ERR_INVALID_ARG));
    dirty(&err);
    CHECK(gpt_sampler_new(&gp, -8, &err) == NULL && err_is(&err, GPT_ERR_INVALID_ARG));
    CHECK(gpt_sampler_new(&gp, INT_MIN, NULL) == NULL);
    gpt_sampler_free(NULL);
    gpt_sampler_free(NULL);
    gpt_sampler_seed(NULL, 5);
    s = gpt_sampler_new(&gp, 8, &err);
    CHECK(s != NULL);
    CHECK(gpt_sampler_sample(NULL, lg, NULL, 0) == GPT_ERR_INVALID_ARG);
    CHECK(gpt_sampler_sample(s, NULL, NULL, 0) == GPT_ERR_INVALID_ARG);
    CHECK(gpt_sampler_sample(s, lg, NULL, 2) == GPT_ERR_INVALID_ARG);
    CHECK(gpt_sampler_sample(s, lg, hist, -1) == GPT_ERR_INVALID_ARG);
    CHECK(gpt_sampler_sample(s, lg, hist, INT_MIN) == GPT_ERR_INVALID_ARG);
    id = gpt_sampler_sample(s, lg, NULL, 0);
    CHECK(id >= 0 && id < 8);
    gpt_sampler_free(s);
    /* history ids out of range, where the repetition penalty reads them */
    gp.repetition_penalty = 1.5f;
    s = gpt_sampler_new(&gp, 8, &err);
    CHECK(s != NULL);
    hist[1] = 8;
    CHECK(gpt_sampler_sample(s, lg, hist, 3) == GPT_ERR_TOKEN_RANGE);
    hist[1] = -1;
    CHECK(gpt_sampler_sample(s, lg, hist, 3) == GPT_ERR_TOKEN_RANGE);
    hist[1] = INT_MIN;
    CHECK(gpt_sampler_sample(s, lg, hist, 3) == GPT_ERR_TOKEN_RANGE);
    gpt_sampler_free(s);
}

/* Logits no model gives: NaN, infinities, all equal, huge. The sampler must
 * still return an id in range for every filter setting. */
TEST(sampler_survives_hostile_logits)
{
    static const float specials[] = {NAN, INFINITY, -INFINITY, 3.4e38f, -3.4e38f, 0.0f, -0.0f, 1e-45f};
    gpt_generate_params gp = gpt_generate_defaults();
    float lg[16];
    int trial, i;
    uint64_t x = 1;
    for (trial = 0; trial < 3000; trial++) {
        gpt_sampler *s;
        int id, hist[4] = {1, 5, 9, 15};
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        for (i = 0; i < 16; i++) {
            uint64_t r = (x >> (i * 4 % 60)) ^ (uint64_t)(i * 2654435761u) ^ (uint64_t)trial;
            lg[i] = r % 3 == 0 ? specials[(r >> 3) % 8] : (float)((int)(r >> 8) % 2000 - 1000) / 50.0f;
        }
        if (trial % 7 == 0)
            for (i = 0; i < 16; i++) lg[i] = NAN;
        if (trial % 11 == 0)
            for (i = 0; i < 16; i++) lg[i] = -INFINITY;
        gp.temperature = (float)(trial % 5) * 0.5f;
        if (trial % 13 == 0) gp.temperature = 1e-30f;
        if (trial % 17 == 0) gp.temperature = 1e6f;
        gp.top_k = trial % 4 == 0 ? 0 : trial % 20;
        gp.top_p = trial % 3 == 0 ? 1.0f : 0.01f + (float)(trial % 10) / 10.1f;
        gp.min_p = trial % 2 ? 0.0f : (float)(trial % 9) / 8.0f;
        gp.repetition_penalty = trial % 3 ? 1.0f : 1e6f;
        gp.repeat_last_n = trial % 6 - 1;
        gp.seed = (uint64_t)trial;
        s = gpt_sampler_new(&gp, 16, NULL);
        CHECK(s != NULL);
        id = gpt_sampler_sample(s, lg, hist, 4);
        CHECKF(id >= 0 && id < 16, "trial %d: sampled %d", trial, id);
        gpt_sampler_free(s);
    }
}

/* A temperature so small that every logit divided by it overflows: when the
 * largest logit is negative (as language models' logits often all are),
 * all of them become -inf. The limit of sampling as the temperature goes to
 * 0 is the argmax, and in any case the id must be one of the vocabulary. */
TEST(tiny_temperature_with_negative_logits)
{
    gpt_generate_params gp = gpt_generate_defaults();
    float lg[6] = {-80.0f, -52.5f, -300.0f, -51.0f, -90.0f, -1e30f};
    static const float temps[] = {1e-38f, 1e-37f, 1e-30f, 1e-45f};
    size_t t;
    int k;
    for (t = 0; t < sizeof temps / sizeof temps[0]; t++) {
        for (k = 0; k < 4; k++) {
            gpt_sampler *s;
            int id;
            gp.temperature = temps[t];
            gp.top_k = k == 0 ? 0 : k == 1 ? 3 : 40;
            gp.top_p = k == 3 ? 0.5f : 1.0f;
            gp.min_p = k == 2 ? 0.1f : 0.0f;
            s = gpt_sampler_new(&gp, 6, NULL);
            CHECK(s != NULL);
            id = gpt_sampler_sample(s, lg, NULL, 0);
            gpt_sampler_free(s);
            CHECKF(id == 3, "temperature %g, top_k %d, top_p %g, min_p %g: sampled %d, expected the argmax 3 "
                   "(gpt.c gpt_sampler_sample: every logit / temperature is -inf, no candidate is left, and "
                   "c[0].id is read uninitialized)",
                   (double)gp.temperature, gp.top_k, (double)gp.top_p, (double)gp.min_p, id);
        }
    }
}

/* Documented (ERRORS.md): "On failure nothing changes". A sampler call that
 * fails on a bad history id must not change the sampler: the next call with
 * a good history must give what a fresh sampler gives. */
TEST(failed_sample_leaves_sampler_unchanged)
{
    gpt_generate_params gp = gpt_generate_defaults();
    gpt_sampler *a, *b;
    float lg[8] = {0, 0, 0, 0, 0, 3.0f, 2.9f, 0};
    int bad[2] = {5, -1}, good[1] = {5}, fresh, after;
    gp.temperature = 0.0f; /* greedy: the penalty decides between ids 5 and 6 */
    gp.repetition_penalty = 2.0f;
    a = gpt_sampler_new(&gp, 8, NULL);
    b = gpt_sampler_new(&gp, 8, NULL);
    CHECK(a && b);
    fresh = gpt_sampler_sample(b, lg, good, 1);
    CHECK(fresh == 6); /* 3.0 / 2 < 2.9 */
    EXPECTF(gpt_sampler_sample(a, lg, bad, 2) == GPT_ERR_TOKEN_RANGE, "the bad id was not refused");
    after = gpt_sampler_sample(a, lg, good, 1);
    EXPECTF(after == fresh,
           "after a refused history {5, -1}, id 5 is no longer penalized: sampled %d, a fresh sampler gives %d "
           "(gpt.c gpt_sampler_sample leaves s->seen[] set when it returns GPT_ERR_TOKEN_RANGE)",
           after, fresh);
    gpt_sampler_free(a);
    gpt_sampler_free(b);
}

/* ------------------------------------------------------------------------ */
/* Generation                                                               */

typedef struct sink {
    char buf[4096];
    size_t len;
    int calls;
} sink;

static int to_sink(const char *text, size_t len, void *user)
{
    sink *s = (sink *)user;
    if (s->len + len < sizeof s->buf) {
        memcpy(s->buf + s->len, text, len);
        s->len += len;
    }
    s->calls++;
    return 0;
}

static int stop_at_once(const char *text, size_t len, void *user)
{
    (void)text;
    (void)len;
    (*(int *)user)++;
    return 1;
}

TEST(generate_misuse)
{
    gpt_context *c = new_ctx(g_model, 16, 0), *e = new_ctx(g_eot_model, 16, 0);
    gpt_generate_params gp = gpt_generate_defaults();
    gpt_generate_result res;
    sink *out = (sink *)calloc(1, sizeof *out);
    int calls = 0;
    CHECK(c && e && out);
    gp.max_new_tokens = 4;
    CHECK(gpt_generate(NULL, "a", &gp, NULL, NULL) == GPT_ERR_INVALID_ARG);
    memset(&res, 0x77, sizeof res);
    CHECK(gpt_generate_ex(NULL, "a", &gp, NULL, NULL, &res) == GPT_ERR_INVALID_ARG);
    CHECK(res.stop_reason == GPT_STOP_NONE && res.n_generated == 0 && res.n_prompt_tokens == 0);
    /* an empty start needs <|endoftext|> */
    CHECK(gpt_generate_ex(c, NULL, &gp, NULL, NULL, &res) == GPT_ERR_INVALID_ARG && gpt_context_error(c)[0]);
    CHECK(res.stop_reason == GPT_STOP_NONE && gpt_context_n_past(c) == 0);
    CHECK(gpt_generate_ex(c, "", &gp, NULL, NULL, &res) == GPT_ERR_INVALID_ARG);
    CHECK(gpt_generate_ex(e, NULL, &gp, NULL, NULL, &res) == GPT_OK && res.n_prompt_tokens == 1);
    /* NULL callback, NULL result, NULL params (the defaults) */
    CHECK(gpt_rewind(c, 0) == GPT_OK);
    CHECK(gpt_generate(c, "ab", &gp, NULL, NULL) == GPT_OK);
    CHECK(gpt_rewind(c, 0) == GPT_OK);
    CHECK(gpt_generate_ex(c, "ab", NULL, to_sink, out, &res) == GPT_OK || res.stop_reason == GPT_STOP_CONTEXT_FULL);
    /* invalid UTF-8, control bytes and the special text in the prompt */
    CHECK(gpt_rewind(e, 0) == GPT_OK);
    gp.special = 1;
    CHECK(gpt_generate_ex(e, "\xFF\xC3<|endoftext|>\x01\x7F", &gp, to_sink, out, &res) == GPT_OK);
    gp.special = 0;
    /* the callback stops at once */
    CHECK(gpt_rewind(c, 0) == GPT_OK);
    gp.max_new_tokens = 50;
    gp.temperature = 1.0f;
    gp.top_k = 0;
    gp.min_p = 0.0f;
    CHECK(gpt_generate_ex(c, "ab", &gp, stop_at_once, &calls, &res) == GPT_OK);
    CHECK(calls == 1 && res.stop_reason == GPT_STOP_CALLBACK && res.n_generated >= 1);
    /* a full context under GPT_CONTEXT_STOP: the prompt does not fit, and
     * nothing is appended */
    CHECK(gpt_rewind(c, 0) == GPT_OK);
    CHECK(gpt_generate_ex(c, "abcdefghijklmnopqrstuvwxyz", &gp, NULL, NULL, &res) == GPT_ERR_CONTEXT_FULL);
    CHECK(res.stop_reason == GPT_STOP_CONTEXT_FULL && gpt_context_n_past(c) == 0 && gpt_context_error(c)[0]);
    /* filled by generation */
    gp.ignore_eos = 1;
    CHECK(gpt_generate_ex(c, "abc", &gp, NULL, NULL, &res) == GPT_ERR_CONTEXT_FULL);
    CHECK(res.stop_reason == GPT_STOP_CONTEXT_FULL && gpt_context_n_past(c) == 16);
    /* and asked to go on */
    CHECK(gpt_generate_ex(c, NULL, &gp, NULL, NULL, &res) == GPT_ERR_CONTEXT_FULL);
    CHECK(gpt_generate_ex(c, "x", &gp, NULL, NULL, &res) == GPT_ERR_CONTEXT_FULL && gpt_context_n_past(c) == 16);
    gp.context_policy = GPT_CONTEXT_SLIDE;
    CHECK(gpt_generate_ex(c, "x", &gp, NULL, NULL, &res) == GPT_OK && res.stop_reason == GPT_STOP_MAX_TOKENS);
    gpt_context_free(c);
    gpt_context_free(e);
    free(out);
}

/* Documented (gpt.h, ERRORS.md): GPT_ERR_CONTEXT_FULL comes with the stop
 * reason GPT_STOP_CONTEXT_FULL, and GPT_OK with a normal stop. The case
 * that breaks it: the window fills while the decoder holds the first byte
 * of a character; flushing it at the end gives U+FFFD, and a stop string
 * U+FFFD then matches in that last piece. Many seeds, so that the case
 * happens. */
TEST(generate_status_agrees_with_stop_reason)
{
    gpt_context *c = new_ctx(g_eot_model, 3, 0);
    gpt_generate_params gp = gpt_generate_defaults();
    gpt_generate_result res;
    const char *stops[1] = {"\xEF\xBF\xBD"};
    sink *out = (sink *)calloc(1, sizeof *out);
    int seed, full = 0, stopped = 0;
    CHECK(c && out);
    gp.max_new_tokens = 10;
    gp.temperature = 1.5f;
    gp.top_k = 0;
    gp.top_p = 1.0f;
    gp.min_p = 0.0f;
    gp.ignore_eos = 1;
    gp.stop = stops;
    gp.n_stop = 1;
    for (seed = 1; seed <= 300; seed++) {
        gpt_status st;
        gp.seed = (uint64_t)seed;
        CHECK(gpt_rewind(c, 0) == GPT_OK);
        st = gpt_generate_ex(c, "a", &gp, to_sink, out, &res);
        if (st == GPT_ERR_CONTEXT_FULL) full++;
        if (res.stop_reason == GPT_STOP_STRING) stopped++;
        if (st == GPT_ERR_CONTEXT_FULL && res.stop_reason != GPT_STOP_CONTEXT_FULL) {
            EXPECTF(0, "seed %d: GPT_ERR_CONTEXT_FULL with stop reason %d (a stop string found when the last piece "
                    "was flushed: gpt.c gpt_generate_ex keeps st = GPT_ERR_CONTEXT_FULL but sets why = "
                    "GPT_STOP_STRING)", seed, (int)res.stop_reason);
            break;
        }
        if (st == GPT_OK && (res.stop_reason == GPT_STOP_CONTEXT_FULL || res.stop_reason == GPT_STOP_NONE)) {
            EXPECTF(0, "seed %d: GPT_OK with stop reason %d", seed, (int)res.stop_reason);
            break;
        }
    }
    gpt_context_free(c);
    free(out);
    CHECKF(full > 0 && stopped > 0, "the cases did not happen: %d full, %d stopped by the string", full, stopped);
}

/* Documented (gpt.h): on_text gets whole UTF-8 characters. A stop string
 * that is not valid UTF-8 (here the last two bytes of U+FFFD, which the
 * stream holds for every invalid byte) must not cut a character in two:
 * either gpt_generate refuses it as a parameter, or it never splits one. */
static int count_bad_pieces(const char *text, size_t len, void *user)
{
    size_t i = 0;
    while (i < len) {
        unsigned char c = (unsigned char)text[i];
        size_t n = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 ? 2 : 0, k;
        if (n == 0 || i + n > len) {
            (*(int *)user)++;
            return 0;
        }
        for (k = 1; k < n; k++)
            if (((unsigned char)text[i + k] & 0xC0) != 0x80) {
                (*(int *)user)++;
                return 0;
            }
        i += n;
    }
    return 0;
}

TEST(stop_string_never_splits_a_character)
{
    gpt_context *c = new_ctx(g_eot_model, 16, 0);
    gpt_generate_params gp = gpt_generate_defaults();
    gpt_generate_result res;
    const char *stops[1] = {"\xBF\xBD"};
    int seed, bad = 0, stopped = 0;
    CHECK(c != NULL);
    gp.max_new_tokens = 14;
    gp.temperature = 1.5f;
    gp.top_k = 0;
    gp.top_p = 1.0f;
    gp.min_p = 0.0f;
    gp.ignore_eos = 1;
    gp.stop = stops;
    gp.n_stop = 1;
    for (seed = 1; seed <= 100 && !bad; seed++) {
        gpt_status st;
        gp.seed = (uint64_t)seed;
        gpt_rewind(c, 0);
        st = gpt_generate_ex(c, "a", &gp, count_bad_pieces, &bad, &res);
        if (st == GPT_ERR_INVALID_ARG) break; /* refused as a parameter: fine */
        EXPECTF(st == GPT_OK || st == GPT_ERR_CONTEXT_FULL, "seed %d: %s", seed, gpt_status_name(st));
        if (res.stop_reason == GPT_STOP_STRING) stopped++;
    }
    gpt_context_free(c);
    CHECKF(bad == 0,
           "seed %d: a piece ended inside a character: the stop string \"\\xBF\\xBD\" matched inside U+FFFD and "
           "the text before it was cut there (gpt.c gen_push emits pend[0..best) without a character boundary)",
           seed - 1);
    (void)stopped;
}

/* A context of one position: every call works or says the context is full. */
TEST(one_position_context)
{
    gpt_context *c = new_ctx(g_eot_model, 1, 1);
    gpt_generate_params gp = gpt_generate_defaults();
    gpt_generate_result res;
    int ids[2] = {1, 2};
    float lp[2];
    CHECK(c != NULL);
    CHECK(gpt_eval(c, ids, 2) == GPT_ERR_CONTEXT_FULL);
    CHECK(gpt_eval(c, ids, 1) == GPT_OK && gpt_eval(c, ids, 1) == GPT_ERR_CONTEXT_FULL);
    CHECK(gpt_score(c, ids, 2, lp) == GPT_ERR_INVALID_ARG);
    CHECK(gpt_rewind(c, 0) == GPT_OK);
    gp.max_new_tokens = 5;
    CHECK(gpt_generate_ex(c, NULL, &gp, NULL, NULL, &res) == GPT_ERR_CONTEXT_FULL || res.stop_reason == GPT_STOP_EOS);
    CHECK(gpt_rewind(c, 0) == GPT_OK);
    gp.context_policy = GPT_CONTEXT_SLIDE;
    gp.ignore_eos = 1;
    CHECK(gpt_generate_ex(c, "abcab", &gp, NULL, NULL, &res) == GPT_OK && res.n_generated == 5);
    CHECK(gpt_context_n_past(c) == 1);
    gpt_context_free(c);
}

/* ------------------------------------------------------------------------ */
/* Resource limits                                                          */

/* Resident memory in bytes now, and the peak so far (0 where unknown). */
static size_t rss_now(void)
{
#if defined(__linux__)
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, res = 0;
    if (!f) return 0;
    if (fscanf(f, "%lu %lu", &size, &res) != 2) res = 0;
    fclose(f);
    return (size_t)res * (size_t)sysconf(_SC_PAGESIZE);
#else
    return 0;
#endif
}

static size_t rss_peak(void)
{
#if defined(HAVE_POSIX)
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
#if defined(__APPLE__)
    return (size_t)ru.ru_maxrss;
#else
    return (size_t)ru.ru_maxrss * 1024;
#endif
#else
    return 0;
#endif
}

TEST(huge_prompt_is_refused_without_memory)
{
    gpt_context *c = new_ctx(g_model, 16, 0);
    gpt_generate_params gp = gpt_generate_defaults();
    gpt_generate_result res;
    size_t n = (size_t)16 << 20, i, peak0, peak1;
    char *huge = (char *)malloc(n + 1);
    int k;
    CHECK(c && huge);
    for (i = 0; i < n; i++) huge[i] = (char)('a' + i % 23);
    huge[n] = 0;
    gp.max_new_tokens = 3;
    CHECK(gpt_eval(c, (const int[]){1, 2, 3}, 3) == GPT_OK);
    peak0 = rss_peak();
    for (k = 0; k < 2; k++) {
        gp.special = k;
        CHECK(gpt_generate_ex(c, huge, &gp, NULL, NULL, &res) == GPT_ERR_CONTEXT_FULL);
        CHECK(res.stop_reason == GPT_STOP_CONTEXT_FULL && res.n_generated == 0);
        CHECK(gpt_context_n_past(c) == 3 && gpt_logits(c) != NULL);
        CHECKF(strstr(gpt_context_error(c), "prompt") != NULL, "%s", gpt_context_error(c));
    }
    peak1 = rss_peak();
    if (peak0 == 0) {
        free(huge);
        gpt_context_free(c);
        SKIP("no getrusage here to measure memory");
    }
    /* a 16 MB prompt costs nothing: it is refused before it is tokenized */
    CHECKF(peak1 - peak0 < ((size_t)1 << 20), "the peak resident size grew by %lu KB for a refused prompt",
           (unsigned long)((peak1 - peak0) >> 10));
    free(huge);
    gpt_context_free(c);
}

TEST(huge_id_arrays_are_refused_without_memory)
{
    gpt_context *c = new_ctx(g_model, 16, 0);
    size_t n = (size_t)4 << 20, i, peak0, peak1;
    int *ids = (int *)malloc(n * sizeof *ids);
    CHECK(c && ids);
    for (i = 0; i < n; i++) ids[i] = (int)(i % (size_t)V);
    peak0 = rss_peak();
    CHECK(gpt_eval(c, ids, (int)n) == GPT_ERR_CONTEXT_FULL && gpt_context_n_past(c) == 0);
    ids[n - 1] = -1;
    CHECK(gpt_eval(c, ids, (int)n) == GPT_ERR_TOKEN_RANGE && gpt_context_n_past(c) == 0);
    peak1 = rss_peak();
    CHECKF(peak0 == 0 || peak1 - peak0 < ((size_t)1 << 20), "the peak grew by %lu KB",
           (unsigned long)((peak1 - peak0) >> 10));
    free(ids);
    gpt_context_free(c);
}

/* Scoring a sequence far longer than the context slides over it in windows
 * and needs no memory beyond the context. */
TEST(long_score_needs_no_extra_memory)
{
    gpt_context *c = new_ctx(g_model, 16, 0);
    int n = 3000, i;
    int *ids = (int *)malloc(sizeof(int) * (size_t)n);
    float *lp = (float *)malloc(sizeof(float) * (size_t)n);
    size_t peak0, peak1;
    CHECK(c && ids && lp);
    for (i = 0; i < n; i++) ids[i] = (i * 31 + 7) % V;
    peak0 = rss_peak();
    CHECK(gpt_score(c, ids, n, lp) == GPT_OK);
    peak1 = rss_peak();
    CHECK(gpt_context_n_past(c) <= 16);
    for (i = 0; i < n - 1; i++) CHECK(lp[i] < 1e-6f && lp[i] > -1e4f);
    CHECKF(peak0 == 0 || peak1 - peak0 < ((size_t)1 << 20), "the peak grew by %lu KB",
           (unsigned long)((peak1 - peak0) >> 10));
    free(ids);
    free(lp);
    gpt_context_free(c);
}

/* gpt_context_memory() against what the process really holds once every
 * byte of the context has been used (Linux: /proc/self/statm). The exact
 * count is tests/test_alloc.c's (every byte through the allocator hooks);
 * this checks what the kernel sees, and only where that means something: a
 * native run. Under an emulator (TEST_WRAPPER, e.g. qemu-user) resident
 * memory also counts the emulator's own state for each thread, which is a
 * property of the host. The allowance for a thread (its stack, the
 * allocator's arena for it) is measured in this run: what starting a
 * second thread with a small context adds beyond its stated size. It runs
 * first: memory that earlier tests freed could otherwise be reused and not
 * show up as growth. */
static size_t measured_growth(gpt_model *m, const gpt_context_params *cp, const int *ids, int n, gpt_context **out)
{
    size_t before = rss_now(), after;
    gpt_context *c = gpt_context_new(m, cp, NULL);
    if (!c || gpt_eval(c, ids, n) != GPT_OK) {
        gpt_context_free(c);
        *out = NULL;
        return 0;
    }
    after = rss_now();
    *out = c;
    return after > before ? after - before : 0;
}

TEST(context_memory_matches_resident_memory)
{
    gpt_model *m;
    gpt_context_params cp = gpt_context_defaults(), small;
    gpt_context *c, *warm;
    size_t stated, grown, thread_cost, small_stated, slack = (size_t)512 << 10;
    const char *wrapper = getenv("TEST_WRAPPER");
    int *ids, i, T = 1024;
    if (rss_now() == 0) SKIP("no /proc/self/statm here");
    if (wrapper && wrapper[0])
        SKIP("under %s resident memory counts the emulator's own state; test_alloc checks the bytes", wrapper);
    m = random_model(2, 4, 64, T, 600, 5, GPT_DTYPE_F32, NULL);
    CHECK(m != NULL);
    ids = (int *)malloc(sizeof(int) * (size_t)T);
    CHECK(ids != NULL);
    for (i = 0; i < T; i++) ids[i] = (i * 13 + 1) % 600;
    cp.n_threads = 1;
    cp.all_logits = 1;
    cp.n_batch = 64;
    /* bring the model's weights and the code in before measuring, with a
     * small context (a freed context of the same size would leave its pages
     * to the next one) */
    small = cp;
    small.n_ctx = 16;
    small.all_logits = 0;
    measured_growth(m, &small, ids, 8, &warm);
    CHECK(warm != NULL);
    gpt_context_free(warm);

    stated = gpt_context_memory(m, &cp);
    grown = measured_growth(m, &cp, ids, T, &c); /* every position, every logits row */
    CHECK(c != NULL);
    printf("# context: stated %lu KB, resident memory grew by %lu KB\n", (unsigned long)(stated >> 10),
           (unsigned long)(grown >> 10));
#if defined(UNDER_SANITIZER)
    /* shadow memory and allocator redzones come on top */
    CHECKF(grown <= stated + stated / 2 + ((size_t)4 << 20), "grew by %lu KB, stated %lu KB",
           (unsigned long)(grown >> 10), (unsigned long)(stated >> 10));
#else
    CHECKF(grown <= stated + slack, "grew by %lu KB, more than the stated %lu KB",
           (unsigned long)(grown >> 10), (unsigned long)(stated >> 10));
#if defined(__GLIBC__)
    /* and the statement is not a wild overestimate: all of it was used
     * (glibc: large blocks are fresh mappings, see main) */
    CHECKF(grown + slack >= stated - stated / 8, "grew by only %lu KB, stated %lu KB",
           (unsigned long)(grown >> 10), (unsigned long)(stated >> 10));
#endif
#endif
    gpt_context_free(c);

    /* what a second thread costs beyond the stated bytes, on this host */
    small.n_threads = 2;
    small_stated = gpt_context_memory(m, &small);
    grown = measured_growth(m, &small, ids, 8, &warm);
    CHECK(warm != NULL);
    thread_cost = grown > small_stated ? grown - small_stated : 0;
    gpt_context_free(warm);
    printf("# a second thread: %lu KB beyond the stated size\n", (unsigned long)(thread_cost >> 10));

    cp.n_threads = 2;
    stated = gpt_context_memory(m, &cp);
    grown = measured_growth(m, &cp, ids, T, &c);
    CHECK(c != NULL);
    printf("# context on 2 threads: stated %lu KB, resident memory grew by %lu KB\n", (unsigned long)(stated >> 10),
           (unsigned long)(grown >> 10));
#if defined(UNDER_SANITIZER)
    CHECK(grown <= stated + stated / 2 + ((size_t)4 << 20));
#else
    CHECKF(grown <= stated + thread_cost + slack, "grew by %lu KB, more than the stated %lu KB and a thread's %lu KB",
           (unsigned long)(grown >> 10), (unsigned long)(stated >> 10), (unsigned long)(thread_cost >> 10));
#endif
    gpt_context_free(c);
    free(ids);
    gpt_model_free(m);
}

int main(void)
{
    gpt_error err;
#if defined(__GLIBC__) && !defined(UNDER_SANITIZER)
    /* blocks of 64 KB and more come from fresh mappings, never from memory
     * freed before (so that resident memory counts what a context uses) */
    mallopt(M_MMAP_THRESHOLD, 64 * 1024);
#endif
    g_model = random_model(1, 2, 16, 16, 300, 21, GPT_DTYPE_F32, &err);
    if (!g_model) {
        printf("FAIL setup: %s\n", err.message);
        return 1;
    }
    V = gpt_model_config(g_model).n_vocab;
    g_eot_model = eot_model(&err);
    if (!g_eot_model) {
        printf("FAIL setup: small vocabulary: %s\n", err.message);
        return 1;
    }
    RUN(context_memory_matches_resident_memory);
    RUN(names_and_versions);
    RUN(tokenizer_loading_misuse);
    RUN(tokenizer_calls_misuse);
    RUN(model_loading_misuse);
    RUN(context_creation_misuse);
    RUN(eval_misuse_changes_nothing);
    RUN(score_misuse);
    RUN(generate_params_out_of_range);
    RUN(sampler_misuse);
    RUN(sampler_survives_hostile_logits);
    RUN(tiny_temperature_with_negative_logits);
    RUN(failed_sample_leaves_sampler_unchanged);
    RUN(generate_misuse);
    RUN(generate_status_agrees_with_stop_reason);
    RUN(stop_string_never_splits_a_character);
    RUN(one_position_context);
    RUN(huge_prompt_is_refused_without_memory);
    RUN(huge_id_arrays_are_refused_without_memory);
    RUN(long_score_needs_no_extra_memory);
    gpt_model_free(g_model);
    gpt_model_free(g_eot_model);
    return test_summary();
}
