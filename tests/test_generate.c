/*
 * test_generate.c - gpt_generate: streaming never splits UTF-8, stop strings
 * are never printed, the callback can cancel, end of text, a full context,
 * sliding, seeds and thread counts.
 */
#include <math.h>

#include "model_util.h"
#include "test.h"
#include "util.h"

typedef struct capture {
    char buf[1 << 16];
    size_t len;
    int pieces, bad_utf8, stop_after;
} capture;

static int on_text(const char *text, size_t len, void *user)
{
    capture *c = (capture *)user;
    if (!valid_utf8((const unsigned char *)text, len)) c->bad_utf8++;
    if (c->len + len < sizeof c->buf) {
        memcpy(c->buf + c->len, text, len);
        c->len += len;
    }
    c->buf[c->len] = 0;
    c->pieces++;
    return c->stop_after && c->pieces >= c->stop_after;
}

static gpt_model *full_vocab_model(void)
{
    return random_model(3, 4, 64, 128, 50257, 11, GPT_DTYPE_F32, NULL);
}

static gpt_status run(gpt_model *m, const char *prompt, const gpt_generate_params *gp, int threads, capture *cap,
                      gpt_generate_result *res)
{
    gpt_context_params cp = gpt_context_defaults();
    gpt_context *c;
    gpt_status st;
    cp.n_threads = threads;
    c = gpt_context_new(m, &cp, NULL);
    if (!c) return GPT_ERR_OUT_OF_MEMORY;
    {
        int stop_after = cap->stop_after;
        memset(cap, 0, sizeof *cap);
        cap->stop_after = stop_after;
    }
    st = gpt_generate_ex(c, prompt, gp, on_text, cap, res);
    gpt_context_free(c);
    return st;
}

TEST(streamed_pieces_are_whole_utf8)
{
    gpt_model *m = full_vocab_model();
    gpt_generate_params gp = gpt_generate_defaults();
    gpt_generate_result res;
    capture *cap = (capture *)calloc(1, sizeof *cap);
    uint64_t seed;
    CHECK(m && cap);
    gp.ignore_eos = 1;
    gp.max_new_tokens = 100;
    gp.temperature = 1.5f;
    gp.top_k = 0;
    gp.top_p = 1.0f;
    gp.min_p = 0.0f;
    /* a random model over the whole vocabulary emits many pieces of
     * multi-byte characters (and invalid sequences) */
    for (seed = 1; seed <= 5; seed++) {
        gp.seed = seed;
        CHECK(run(m, "Hello", &gp, 1, cap, &res) == GPT_OK);
        CHECK(res.stop_reason == GPT_STOP_MAX_TOKENS && res.n_generated == 100);
        CHECKF(cap->bad_utf8 == 0, "seed %llu: %d pieces were not valid UTF-8", (unsigned long long)seed, cap->bad_utf8);
        CHECK(valid_utf8((const unsigned char *)cap->buf, cap->len));
    }
    free(cap);
    gpt_model_free(m);
}

TEST(stop_strings_are_never_printed)
{
    gpt_model *m = random_model(2, 5, 80, 64, 1000, 7, GPT_DTYPE_F32, NULL);
    gpt_generate_params gp = gpt_generate_defaults();
    gpt_generate_result res;
    capture *full = (capture *)calloc(1, sizeof *full), *cap = (capture *)calloc(1, sizeof *cap);
    char stop[3][16];
    const char *stops[3];
    size_t at, n, want;
    int k;
    CHECK(m && full && cap);
    gp.temperature = 0.0f;
    gp.max_new_tokens = 40;
    CHECK(run(m, "The", &gp, 1, full, &res) == GPT_OK);
    CHECKF(full->len >= 30, "greedy text too short: %zu bytes", full->len);
    /* stop strings taken from the middle of the greedy text, of several
     * lengths so that they straddle token boundaries */
    for (k = 0; k < 3; k++) {
        n = (size_t)(2 + 3 * k);
        at = full->len / 2 - (size_t)k;
        memcpy(stop[k], full->buf + at, n);
        stop[k][n] = 0;
        stops[0] = stop[k];
        gp.stop = stops;
        gp.n_stop = 1;
        CHECK(run(m, "The", &gp, 1, cap, &res) == GPT_OK);
        CHECKF(res.stop_reason == GPT_STOP_STRING, "stop \"%s\": reason %d", stop[k], (int)res.stop_reason);
        want = (size_t)(strstr(full->buf, stop[k]) - full->buf);
        CHECKF(cap->len == want && memcmp(cap->buf, full->buf, want) == 0,
               "stop \"%s\": printed %zu bytes, expected the %zu before it", stop[k], cap->len, want);
        CHECK(strstr(cap->buf, stop[k]) == NULL);
    }
    /* several stop strings: the earliest wins; a string that never appears
     * changes nothing */
    stops[0] = "\x01never";
    stops[1] = stop[2];
    stops[2] = stop[0];
    gp.n_stop = 3;
    CHECK(run(m, "The", &gp, 1, cap, &res) == GPT_OK);
    want = (size_t)(strstr(full->buf, stop[0]) - full->buf);
    if ((size_t)(strstr(full->buf, stop[2]) - full->buf) < want) want = (size_t)(strstr(full->buf, stop[2]) - full->buf);
    CHECK(cap->len == want);
    stops[0] = "\x01never";
    gp.n_stop = 1;
    CHECK(run(m, "The", &gp, 1, cap, &res) == GPT_OK);
    CHECK(res.stop_reason == GPT_STOP_MAX_TOKENS && cap->len == full->len && !memcmp(cap->buf, full->buf, cap->len));
    free(full);
    free(cap);
    gpt_model_free(m);
}

TEST(callback_can_cancel)
{
    gpt_model *m = random_model(2, 5, 80, 64, 1000, 7, GPT_DTYPE_F32, NULL);
    gpt_generate_params gp = gpt_generate_defaults();
    gpt_generate_result res;
    capture *cap = (capture *)calloc(1, sizeof *cap);
    CHECK(m && cap);
    cap->stop_after = 3;
    gp.max_new_tokens = 50;
    CHECK(run(m, "Once", &gp, 1, cap, &res) == GPT_OK);
    CHECK(res.stop_reason == GPT_STOP_CALLBACK);
    CHECK(cap->pieces == 3);
    CHECK(res.n_generated < 50);
    free(cap);
    gpt_model_free(m);
}

/* The random weights with the <|endoftext|> row of wte scaled up, so that
 * greedy decoding picks it at once. */
static gpt_status eot_heavy_source(void *user, int k, int rows, int cols, float *dst, gpt_error *err)
{
    gpt_status st = ckpt_random_source(user, k, rows, cols, dst, err);
    int i;
    if (st == GPT_OK && k == 0)
        for (i = 0; i < cols; i++) dst[(size_t)50256 * cols + i] *= 40.0f;
    return st;
}

TEST(stops_at_end_of_text_unless_told)
{
    ckpt_spec spec;
    ckpt_random rnd;
    unsigned char *buf;
    size_t len;
    gpt_model *m;
    gpt_generate_params gp = gpt_generate_defaults();
    gpt_generate_result res;
    capture *cap = (capture *)calloc(1, sizeof *cap);
    gpt_tokenizer *tok = ckpt_gpt2_tokenizer(GPT2_VOCAB, GPT2_MERGES, 50257, NULL);
    CHECK(tok && cap);
    memset(&spec, 0, sizeof spec);
    spec.n_layer = 1;
    spec.n_head = 2;
    spec.n_embd = 32;
    spec.n_ctx = 64;
    spec.n_vocab = 50257;
    spec.ln_eps = 1e-5f;
    spec.tok = tok;
    rnd.seed = 3;
    rnd.n_layer = 1;
    CHECK(ckpt_write_memory(&spec, eot_heavy_source, &rnd, &buf, &len, NULL) == GPT_OK);
    m = gpt_model_load_memory(buf, len, NULL);
    CHECK(m != NULL);
    gp.temperature = 0.0f;
    CHECK(run(m, "Hi", &gp, 1, cap, &res) == GPT_OK);
    CHECK(res.stop_reason == GPT_STOP_EOS);
    CHECK(cap->len == 0 && res.n_generated == 1);
    gp.ignore_eos = 1;
    gp.max_new_tokens = 5;
    CHECK(run(m, "Hi", &gp, 1, cap, &res) == GPT_OK);
    CHECK(res.stop_reason == GPT_STOP_MAX_TOKENS && res.n_generated == 5);
    CHECKF(cap->len == 5 * strlen("<|endoftext|>"), "printed %zu bytes: %s", cap->len, cap->buf);
    /* "<|endoftext|>" in a prompt is text unless special is set */
    gp.special = 1;
    CHECK(run(m, "<|endoftext|>", &gp, 1, cap, &res) == GPT_OK && res.n_prompt_tokens == 1);
    gp.special = 0;
    CHECK(run(m, "<|endoftext|>", &gp, 1, cap, &res) == GPT_OK && res.n_prompt_tokens > 1);
    /* an empty prompt starts from <|endoftext|> */
    CHECK(run(m, "", &gp, 1, cap, &res) == GPT_OK && res.n_prompt_tokens == 1);
    CHECK(run(m, NULL, &gp, 1, cap, &res) == GPT_OK && res.n_prompt_tokens == 1);
    gpt_model_free(m);
    free(buf); /* after the model: it may have used the bytes in place */
    gpt_tokenizer_free(tok);
    free(cap);
}

TEST(full_context_stops_or_slides)
{
    gpt_model *m = random_model(1, 1, 32, 16, 256, 1, GPT_DTYPE_F32, NULL);
    gpt_context *c;
    gpt_generate_params gp = gpt_generate_defaults();
    gpt_generate_result res;
    capture *cap = (capture *)calloc(1, sizeof *cap);
    char *huge;
    CHECK(m && cap);
    gp.max_new_tokens = 50;
    c = gpt_context_new(m, NULL, NULL);
    CHECK(c != NULL);
    CHECK(gpt_generate_ex(c, "abcdefgh", &gp, on_text, cap, &res) == GPT_ERR_CONTEXT_FULL);
    CHECK(res.stop_reason == GPT_STOP_CONTEXT_FULL);
    CHECK(gpt_context_n_past(c) == 16);
    CHECKF(res.n_prompt_tokens + res.n_generated - 1 == 16, "prompt %d + generated %d", res.n_prompt_tokens,
           res.n_generated);
    CHECKF(strstr(gpt_context_error(c), "full") != NULL, "%s", gpt_context_error(c));
    CHECK(gpt_rewind(c, 0) == GPT_OK);
    gp.context_policy = GPT_CONTEXT_SLIDE;
    CHECK(gpt_generate_ex(c, "abcdefgh", &gp, on_text, cap, &res) == GPT_OK);
    CHECK(res.stop_reason == GPT_STOP_MAX_TOKENS && res.n_generated == 50);
    CHECK(gpt_context_n_past(c) <= 16);
    /* a prompt far larger than the context fails at once */
    CHECK(gpt_rewind(c, 0) == GPT_OK);
    gp.context_policy = GPT_CONTEXT_STOP;
    huge = (char *)malloc(4 << 20);
    CHECK(huge != NULL);
    memset(huge, 'a', 4 << 20);
    huge[(4 << 20) - 1] = 0;
    CHECK(gpt_generate_ex(c, huge, &gp, on_text, cap, &res) == GPT_ERR_CONTEXT_FULL);
    CHECK(gpt_context_n_past(c) == 0);
    /* with sliding, a long prompt keeps its end */
    huge[3000] = 0;
    gp.context_policy = GPT_CONTEXT_SLIDE;
    gp.max_new_tokens = 3;
    CHECK(gpt_generate_ex(c, huge, &gp, on_text, cap, &res) == GPT_OK);
    CHECK(gpt_context_n_past(c) <= 16 && gpt_context_n_past(c) > 3);
    /* no <|endoftext|> in this vocabulary: an empty start is an error */
    CHECK(gpt_rewind(c, 0) == GPT_OK);
    CHECK(gpt_generate_ex(c, "", &gp, on_text, cap, &res) == GPT_ERR_INVALID_ARG);
    gp.top_p = 3.0f;
    CHECK(gpt_generate_ex(c, "a", &gp, on_text, cap, &res) == GPT_ERR_INVALID_ARG);
    CHECK(strstr(gpt_context_error(c), "top_p") != NULL);
    CHECK(gpt_generate(NULL, "a", &gp, NULL, NULL) == GPT_ERR_INVALID_ARG);
    free(huge);
    gpt_context_free(c);
    free(cap);
    gpt_model_free(m);
}

TEST(same_seed_same_text_any_thread_count)
{
    gpt_model *m = full_vocab_model();
    gpt_generate_params gp = gpt_generate_defaults();
    gpt_generate_result res;
    capture *a = (capture *)calloc(1, sizeof *a), *b = (capture *)calloc(1, sizeof *b);
    CHECK(m && a && b);
    gp.max_new_tokens = 40;
    gp.temperature = 1.0f;
    gp.ignore_eos = 1;
    gp.seed = 99;
    CHECK(run(m, "In the beginning", &gp, 1, a, &res) == GPT_OK);
    CHECK(run(m, "In the beginning", &gp, 3, b, &res) == GPT_OK);
    CHECK(a->len == b->len && memcmp(a->buf, b->buf, a->len) == 0);
    gp.seed = 100;
    CHECK(run(m, "In the beginning", &gp, 2, b, &res) == GPT_OK);
    CHECK(a->len != b->len || memcmp(a->buf, b->buf, a->len) != 0);
    free(a);
    free(b);
    gpt_model_free(m);
}

TEST(generation_continues_a_context)
{
    gpt_model *m = random_model(2, 5, 80, 64, 1000, 7, GPT_DTYPE_F32, NULL);
    gpt_context *c;
    gpt_generate_params gp = gpt_generate_defaults();
    gpt_generate_result res;
    capture *one = (capture *)calloc(1, sizeof *one), *two = (capture *)calloc(1, sizeof *two);
    CHECK(m && one && two);
    gp.temperature = 0.0f;
    gp.max_new_tokens = 20;
    CHECK(run(m, "Go", &gp, 1, one, &res) == GPT_OK);
    /* the same 20 tokens generated as 8 + 12 in two calls */
    c = gpt_context_new(m, NULL, NULL);
    CHECK(c != NULL);
    gp.max_new_tokens = 8;
    CHECK(gpt_generate_ex(c, "Go", &gp, on_text, two, &res) == GPT_OK);
    CHECK(gpt_context_n_past(c) == res.n_prompt_tokens + 8);
    gp.max_new_tokens = 12;
    CHECK(gpt_generate_ex(c, NULL, &gp, on_text, two, &res) == GPT_OK);
    CHECKF(two->len == one->len && memcmp(one->buf, two->buf, one->len) == 0, "\"%s\" vs \"%s\"", one->buf, two->buf);
    gp.max_new_tokens = 0;
    CHECK(gpt_generate_ex(c, "x", &gp, on_text, two, &res) == GPT_OK && res.n_generated == 0);
    gpt_context_free(c);
    free(one);
    free(two);
    gpt_model_free(m);
}

/* A NaN in ln_f.bias (the last tensor) makes every logit NaN: generation
 * and scoring stop with GPT_ERR_NUMERIC instead of printing "!!!!" (the
 * argmax of NaNs) or a perplexity of nan. */
TEST(non_finite_logits_stop_generation_and_scoring)
{
    size_t len;
    unsigned char *buf = random_checkpoint(2, 2, 32, 32, 300, 4, GPT_DTYPE_F32, &len, NULL);
    gpt_model *m;
    gpt_context *c;
    gpt_generate_params gp = gpt_generate_defaults();
    gpt_generate_result res;
    const float nan_value = NAN;
    unsigned char *entry;
    unsigned long long off = 0;
    float lp[9];
    int ids[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, i;
    CHECK(buf != NULL);
    entry = buf + 128 + (size_t)(12 * 2 + 3) * 32; /* directory entry of tensor 12L + 3 */
    for (i = 0; i < 8; i++) off |= (unsigned long long)entry[16 + i] << (8 * i);
    memcpy(buf + off, &nan_value, 4);
    m = gpt_model_load_memory(buf, len, NULL);
    free(buf);
    CHECK(m != NULL);
    c = gpt_context_new(m, NULL, NULL);
    CHECK(c != NULL);
    gp.max_new_tokens = 5;
    EXPECTF(gpt_generate_ex(c, "abc", &gp, NULL, NULL, &res) == GPT_ERR_NUMERIC && res.n_generated == 0,
            "generate: %s", gpt_context_error(c));
    EXPECTF(strstr(gpt_context_error(c), "not finite") != NULL, "message: %s", gpt_context_error(c));
    EXPECTF(gpt_score(c, ids, 10, lp) == GPT_ERR_NUMERIC, "score: %s", gpt_context_error(c));
    gpt_context_free(c);
    gpt_model_free(m);
}

int main(void)
{
    RUN(streamed_pieces_are_whole_utf8);
    RUN(stop_strings_are_never_printed);
    RUN(callback_can_cancel);
    RUN(stops_at_end_of_text_unless_told);
    RUN(full_context_stops_or_slides);
    RUN(same_seed_same_text_any_thread_count);
    RUN(generation_continues_a_context);
    RUN(non_finite_logits_stop_generation_and_scoring);
    return test_summary();
}
