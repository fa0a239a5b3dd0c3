/*
 * test_model.c - the forward pass against the PyTorch reference's golden
 * logits, KV-cache consistency, rewind, threads, scoring, and eval errors.
 */
#include <dirent.h>
#include <math.h>

#include "model_util.h"
#include "test.h"

#define GOLDEN_DIR "tests/data/golden"
#define TOL 1e-4

int gpt__dot_products(void); /* gpt.h's internal part: 1 q8_0, 2 bf16, 4 f32 chains */

/* Whether this build rounds the activations of m's matrices (integer q8_0
 * and bf16 dot products, issue 16): then the forward pass leaves the
 * PyTorch reference by that rounding, and what holds instead is the
 * perplexity rule (within 0.5% of f32, tools/quant_quality.py and
 * test_quality) and the looser bounds below, measured on these goldens. */
static int rounds_activations(const gpt_model *m)
{
    gpt_dtype t = gpt_model_config(m).dtype;
    return (t == GPT_DTYPE_Q8_0 && (gpt__dot_products() & 1)) || (t == GPT_DTYPE_BF16 && (gpt__dot_products() & 2));
}
#define DOT_TOL 0.15 /* logits, absolute: 4.3e-2 (q8_0), 1.4e-2 (bf16) measured */
#define DOT_MARGIN 0.1 /* greedy generation: compared up to the first closer call */

/* Loads the model a golden file names; NULL (and a reason) if it cannot. */
static gpt_model *golden_model(const golden *g, char *why, size_t cap)
{
    gpt_error err;
    gpt_model *m = NULL;
    if (!strcmp(g->kind, "random")) {
        if (strcmp(g->dtype, "f32") != 0) {
            snprintf(why, cap, "random model with dtype %s", g->dtype);
            return NULL;
        }
        m = random_model(g->L, g->H, g->C, g->T, g->V, g->seed, GPT_DTYPE_F32, &err);
    } else if (!strcmp(g->kind, "file")) {
        m = gpt_model_load(g->path, &err);
    } else {
        snprintf(why, cap, "model kind %s is tested elsewhere", g->kind);
        return NULL;
    }
    if (!m) snprintf(why, cap, "%s", err.message);
    return m;
}

/* Compares every position's logits with the golden values; returns the max
 * abs error, or -1 with a message when something else is wrong. */
static double golden_compare(const golden *g, gpt_model *m, int n_threads, int n_batch, char *why, size_t cap)
{
    double tol = rounds_activations(m) ? DOT_TOL : TOL;
    gpt_context_params cp = gpt_context_defaults();
    gpt_context *c;
    gpt_error err;
    double worst = 0.0;
    int p, i;
    cp.all_logits = 1;
    cp.n_threads = n_threads;
    cp.n_batch = n_batch;
    cp.kv_type = GPT_KV_F32; /* the reference keeps its cache in f32 */
    c = gpt_context_new(m, &cp, &err);
    if (!c) {
        snprintf(why, cap, "context: %s", err.message);
        return -1;
    }
    if (gpt_eval(c, g->tokens, g->n) != GPT_OK) {
        snprintf(why, cap, "eval: %s", gpt_context_error(c));
        gpt_context_free(c);
        return -1;
    }
    for (p = 0; p < g->n; p++) {
        const float *lg = gpt_logits_at(c, p);
        int best = 0, V = gpt_model_config(m).n_vocab;
        for (i = 0; i < g->m; i++) {
            double d = fabs((double)lg[g->sample[i]] - g->vals[(size_t)p * g->m + i]);
            if (!(d <= worst)) worst = d; /* NaN propagates as a failure */
        }
        for (i = 0; i < g->k; i++) {
            double d = fabs((double)lg[g->top_ids[p * g->k + i]] - g->top_v[p * g->k + i]);
            if (!(d <= worst)) worst = d;
        }
        for (i = 1; i < V; i++)
            if (lg[i] > lg[best]) best = i;
        /* our best must be (within tolerance) as good as the reference's */
        if (fabs((double)lg[best] - g->top_v[p * g->k]) > tol) {
            snprintf(why, cap, "position %d: our argmax %d has logit %.6f, the reference's top %d has %.6f", p, best,
                     (double)lg[best], g->top_ids[p * g->k], g->top_v[p * g->k]);
            gpt_context_free(c);
            return -1;
        }
    }
    gpt_context_free(c);
    return worst;
}

TEST(golden_logits)
{
    DIR *d = opendir(GOLDEN_DIR);
    struct dirent *e;
    int files = 0, checked = 0;
    CHECKF(d != NULL, "cannot open %s", GOLDEN_DIR);
    while ((e = readdir(d)) != NULL) {
        char path[1024], why[512];
        size_t nl = strlen(e->d_name);
        golden g;
        gpt_model *m;
        double err1, err2, tol;
        if (nl < 4 || strcmp(e->d_name + nl - 4, ".txt") != 0) continue;
        files++;
        snprintf(path, sizeof path, "%s/%s", GOLDEN_DIR, e->d_name);
        EXPECTF(golden_read(path, &g) == 0, "%s: cannot parse", path);
        if (!g.n) continue;
        why[0] = 0;
        m = golden_model(&g, why, sizeof why);
        if (!m) {
            EXPECTF(strcmp(g.kind, "random") != 0 && strcmp(g.kind, "file") != 0, "%s: %s", path, why);
            golden_free(&g);
            continue;
        }
        /* one batch on one thread, and in small batches on three threads */
        tol = rounds_activations(m) ? DOT_TOL : TOL;
        err1 = golden_compare(&g, m, 1, 0, why, sizeof why);
        EXPECTF(err1 >= 0 && err1 <= tol, "%s (1 thread): max abs error %g > %g %s", e->d_name, err1, tol, why);
        err2 = golden_compare(&g, m, 3, 5, why, sizeof why);
        EXPECTF(err2 >= 0 && err2 <= tol, "%s (3 threads, batch 5): max abs error %g > %g %s", e->d_name, err2, tol,
                why);
        printf("# %-45s max abs error %.2e%s\n", e->d_name, err1 > err2 ? err1 : err2,
               tol > TOL ? " (activations rounded)" : "");
        checked++;
        gpt_model_free(m);
        golden_free(&g);
    }
    closedir(d);
    CHECKF(checked >= 5, "only %d of %d golden files were checked", checked, files);
}

/* Logits of ids evaluated in chunks of `step` tokens (all positions kept). */
static int use_reference_kernels, use_kv_type;
static float *eval_logits(gpt_model *m, const int *ids, int n, int step, int n_threads)
{
    gpt_context_params cp = gpt_context_defaults();
    cp.reference_kernels = use_reference_kernels;
    cp.kv_type = use_kv_type;
    gpt_context *c;
    int V = gpt_model_config(m).n_vocab, done = 0, i;
    float *out = (float *)malloc(sizeof(float) * (size_t)n * V);
    cp.all_logits = 1;
    cp.n_threads = n_threads;
    c = gpt_context_new(m, &cp, NULL);
    if (!c || !out) {
        free(out);
        gpt_context_free(c);
        return NULL;
    }
    while (done < n) {
        int k = n - done < step ? n - done : step;
        if (gpt_eval(c, ids + done, k) != GPT_OK) {
            free(out);
            gpt_context_free(c);
            return NULL;
        }
        for (i = 0; i < k; i++) memcpy(out + (size_t)(done + i) * V, gpt_logits_at(c, i), sizeof(float) * V);
        done += k;
    }
    gpt_context_free(c);
    return out;
}

static int test_ids[40] = {5, 17, 300, 999, 0, 42, 42, 42, 7, 613, 128, 1, 2, 3, 4, 5, 6, 7, 8, 9,
                           400, 401, 402, 998, 997, 13, 31, 77, 88, 99, 111, 222, 333, 444, 555, 666, 777, 888, 11, 12};

TEST(kv_cache_matches_batch)
{
    gpt_model *m = random_model(2, 5, 80, 64, 1000, 7, GPT_DTYPE_F32, NULL);
    float *batch, *single, *chunks;
    size_t n = 40 * 1000;
    CHECK(m != NULL);
    batch = eval_logits(m, test_ids, 40, 40, 1);
    single = eval_logits(m, test_ids, 40, 1, 1);
    chunks = eval_logits(m, test_ids, 40, 7, 2);
    CHECK(batch && single && chunks);
    EXPECTF(max_rel_diff(batch, single, n) <= 1e-5, "token by token differs from one batch by %g",
            max_rel_diff(batch, single, n));
    EXPECTF(max_rel_diff(batch, chunks, n) <= 1e-5, "chunks of 7 differ from one batch by %g",
            max_rel_diff(batch, chunks, n));
    free(batch);
    free(single);
    free(chunks);
    gpt_model_free(m);
}

TEST(threads_are_bitwise_identical)
{
    gpt_model *m = random_model(2, 6, 90, 96, 512, 3, GPT_DTYPE_F32, NULL);
    int ids[30], i, t;
    float *one, *other;
    CHECK(m != NULL);
    for (i = 0; i < 30; i++) ids[i] = (i * 37 + 11) % 512;
    one = eval_logits(m, ids, 30, 30, 1);
    CHECK(one != NULL);
    for (t = 2; t <= 4; t++) {
        other = eval_logits(m, ids, 30, 30, t);
        CHECK(other != NULL);
        EXPECTF(memcmp(one, other, sizeof(float) * 30 * 512) == 0, "%d threads give different logits than 1", t);
        free(other);
    }
    free(one);
    gpt_model_free(m);
}

TEST(rewind_then_eval_matches_fresh)
{
    gpt_model *m = random_model(2, 5, 80, 64, 1000, 7, GPT_DTYPE_F32, NULL);
    gpt_context *c, *fresh;
    int other[5] = {900, 800, 700, 600, 500}, seq[10];
    float *a;
    CHECK(m != NULL);
    c = gpt_context_new(m, NULL, NULL);
    fresh = gpt_context_new(m, NULL, NULL);
    CHECK(c && fresh);
    CHECK(gpt_eval(c, test_ids, 10) == GPT_OK);
    CHECK(gpt_context_n_past(c) == 10);
    CHECK(gpt_rewind(c, 5) == GPT_OK);
    CHECK(gpt_context_n_past(c) == 5);
    CHECK(gpt_logits(c) == NULL);
    CHECK(gpt_eval(c, other, 5) == GPT_OK);
    memcpy(seq, test_ids, 5 * sizeof(int));
    memcpy(seq + 5, other, 5 * sizeof(int));
    CHECK(gpt_eval(fresh, seq, 10) == GPT_OK);
    a = (float *)malloc(1000 * sizeof(float));
    memcpy(a, gpt_logits(c), 1000 * sizeof(float));
    EXPECTF(max_rel_diff(a, gpt_logits(fresh), 1000) <= 1e-5, "rewound context differs by %g",
            max_rel_diff(a, gpt_logits(fresh), 1000));
    CHECK(memcmp(gpt_context_tokens(c), seq, sizeof seq) == 0);
    CHECK(gpt_rewind(c, 11) == GPT_ERR_INVALID_ARG);
    CHECK(gpt_rewind(c, -1) == GPT_ERR_INVALID_ARG);
    CHECK(gpt_rewind(c, 0) == GPT_OK && gpt_context_n_past(c) == 0);
    free(a);
    gpt_context_free(c);
    gpt_context_free(fresh);
    gpt_model_free(m);
}

/* log p(ids[i+1]) from full logits, computed here in double */
static double ref_logprob(const float *lg, int V, int target)
{
    double mx = -INFINITY, s = 0;
    int i;
    for (i = 0; i < V; i++)
        if (lg[i] > mx) mx = lg[i];
    for (i = 0; i < V; i++) s += exp((double)lg[i] - mx);
    return (double)lg[target] - mx - log(s);
}

TEST(score_matches_logits_and_windows)
{
    gpt_model *m = random_model(1, 2, 32, 16, 300, 5, GPT_DTYPE_F32, NULL);
    gpt_context_params cp = gpt_context_defaults();
    gpt_context *c;
    float lp[39];
    float *win;
    int i, n = 40, ids[40];
    CHECK(m != NULL);
    for (i = 0; i < n; i++) ids[i] = (i * 53 + 7) % 300;
    c = gpt_context_new(m, &cp, NULL);
    CHECK(c != NULL);
    CHECK(gpt_score(c, ids, n, lp) == GPT_OK);
    /* window rule for n_ctx 16: windows start at 0, 8, 16, 24; window
     * [s, s+16) scores ids from max(prev_end, s+1) */
    {
        int start, scored_to = 1;
        for (start = 0;; start += 8) {
            int end = start + 16 < n ? start + 16 : n, t;
            win = eval_logits(m, ids + start, end - start, 16, 1);
            CHECK(win != NULL);
            for (t = scored_to; t < end; t++) {
                double want = ref_logprob(win + (size_t)(t - 1 - start) * 300, 300, ids[t]);
                EXPECTF(fabs(want - lp[t - 1]) < 1e-5, "id %d: score %g, expected %g", t, (double)lp[t - 1], want);
            }
            free(win);
            scored_to = end;
            if (end == n) break;
        }
    }
    CHECK(gpt_score(c, ids, 1, NULL) == GPT_OK);
    CHECK(gpt_score(c, ids, 5, NULL) == GPT_ERR_INVALID_ARG);
    gpt_context_free(c);
    cp.n_ctx = 1;
    c = gpt_context_new(m, &cp, NULL);
    CHECK(c != NULL);
    CHECK(gpt_score(c, ids, 5, lp) == GPT_ERR_INVALID_ARG);
    gpt_context_free(c);
    gpt_model_free(m);
}

TEST(eval_rejects_bad_input_without_changing_state)
{
    gpt_model *m = random_model(1, 1, 32, 16, 256, 1, GPT_DTYPE_F32, NULL);
    gpt_context_params cp = gpt_context_defaults();
    gpt_context *c;
    gpt_error err;
    int ids[20] = {1, 2, 3, 256, 5}, ok[17], i;
    CHECK(m != NULL);
    c = gpt_context_new(m, NULL, &err);
    CHECK(c != NULL);
    CHECK(gpt_eval(c, ids, 5) == GPT_ERR_TOKEN_RANGE);
    CHECKF(strstr(gpt_context_error(c), "256") != NULL, "message: %s", gpt_context_error(c));
    CHECK(gpt_context_n_past(c) == 0);
    ids[3] = -1;
    CHECK(gpt_eval(c, ids, 5) == GPT_ERR_TOKEN_RANGE);
    CHECK(gpt_eval(c, ids, -1) == GPT_ERR_INVALID_ARG);
    CHECK(gpt_eval(c, NULL, 3) == GPT_ERR_INVALID_ARG);
    CHECK(gpt_eval(c, NULL, 0) == GPT_OK);
    CHECK(gpt_eval(NULL, ids, 1) == GPT_ERR_INVALID_ARG);
    for (i = 0; i < 17; i++) ok[i] = i;
    CHECK(gpt_eval(c, ok, 17) == GPT_ERR_CONTEXT_FULL);
    CHECK(gpt_context_n_past(c) == 0);
    CHECK(gpt_eval(c, ok, 16) == GPT_OK);
    CHECK(gpt_eval(c, ok, 1) == GPT_ERR_CONTEXT_FULL);
    CHECKF(strstr(gpt_context_error(c), "16") != NULL, "message: %s", gpt_context_error(c));
    CHECK(gpt_context_n_past(c) == 16);
    CHECK(gpt_logits(c) != NULL);
    CHECK(gpt_logits_at(c, 0) == NULL); /* all_logits was not asked for */
    gpt_context_free(c);

    cp.n_ctx = 17;
    CHECK(gpt_context_new(m, &cp, &err) == NULL && err.status == GPT_ERR_INVALID_ARG);
    CHECKF(strstr(err.message, "17") != NULL, "message: %s", err.message);
    cp.n_ctx = -1;
    CHECK(gpt_context_new(m, &cp, &err) == NULL && err.status == GPT_ERR_INVALID_ARG);
    cp.n_ctx = 0;
    cp.n_threads = -2;
    CHECK(gpt_context_new(m, &cp, &err) == NULL && err.status == GPT_ERR_INVALID_ARG);
    cp.n_threads = 0;
    cp.n_batch = -5;
    CHECK(gpt_context_new(m, &cp, &err) == NULL && err.status == GPT_ERR_INVALID_ARG);
    CHECK(gpt_context_new(NULL, NULL, &err) == NULL && err.status == GPT_ERR_INVALID_ARG);
    CHECK(gpt_context_memory(m, &cp) == 0);
    gpt_context_free(NULL);
    gpt_model_free(NULL);
    gpt_model_free(m);
}

TEST(context_memory_is_as_stated)
{
    /* As gpt.h states it, with D = head_dim rounded up to a multiple of 64,
     * T = n_ctx and P = kv_size rounded up to pages of 64: keys n_layer * P
     * * n_embd floats, values n_layer * n_head * D * P floats; activations
     * for n_batch rows of 10 * n_embd floats; per thread 48 * T + 4 * n_embd
     * + 4096 floats (attention scores, a widened row, a widened cache
     * page), and where f32 matrices take chains (AVX-512) a panel of 64
     * columns of the widest row, 64 * 4 * n_embd floats; 8 more rows of activations (a product reads whole tiles); the logits of each sequence and of the rows a batch keeps
     * (8, or n_ctx with all_logits) with an int each; per sequence T token
     * ids and T / 64 page numbers. Shape here: 2 layers, 5 heads of 16 (D =
     * 64), n_embd 80, n_ctx 128. The exact count is test_alloc's; this
     * checks the formula. */
    gpt_model *m = random_model(2, 5, 80, 128, 1000, 7, GPT_DTYPE_F32, NULL);
    gpt_context_params cp = gpt_context_defaults();
    size_t base, want, got, fixed = 2048, per_thread = 4 * (48 * 128 + 4 * 80 + 4096);
    CHECK(m != NULL);
    if (gpt__dot_products() & 4) per_thread += 4 * 64 * 4 * 80;
    cp.n_threads = 1;
    cp.n_batch = 16;
    got = gpt_context_memory(m, &cp);
    want = 4 * (2 * 128 * 80 + 2 * 5 * 64 * 128 + (16 + 8) * 10 * 80 + 1000 + 8 * 1000 + 8) + 4 * (128 + 3) + per_thread;
    CHECKF(got >= want && got <= want + fixed, "stated %zu bytes, expected %zu .. %zu", got, want, want + fixed);
    base = got;
    cp.n_threads = 3;
    got = gpt_context_memory(m, &cp);
    CHECKF(got - base >= 2 * per_thread && got - base <= 2 * (per_thread + fixed), "two more threads add %zu",
           got - base);
    cp.n_threads = 1;
    cp.all_logits = 1;
    got = gpt_context_memory(m, &cp);
    CHECKF(got - base + 64 >= 4 * (128 - 8) * 1001 && got - base <= 4 * (128 - 8) * 1001 + 128, "all_logits adds %zu",
           got - base);
    cp.all_logits = 0;
    cp.n_batch = 32;
    got = gpt_context_memory(m, &cp);
    CHECKF(got - base >= 4 * 16 * 10 * 80 && got - base <= 4 * 16 * 10 * 80 + 320, "16 more batch rows add %zu",
           got - base);
    cp.n_batch = 16;
    cp.n_ctx = 64;
    got = gpt_context_memory(m, &cp);
    want = 4 * (2 * 64 * 80 + 2 * 5 * 64 * 64 + 64 + 48 * 64);
    CHECKF(base - got >= want && base - got <= want + 256, "halving n_ctx saves %zu, expected %zu", base - got, want);
    cp.n_ctx = 0;
    cp.kv_type = GPT_KV_F16;
    got = gpt_context_memory(m, &cp);
    want = 2 * (2 * 128 * 80 + 2 * 5 * 64 * 128);
    CHECKF(base - got >= want && base - got <= want + 128, "an f16 cache saves %zu, expected %zu", base - got, want);
    cp.kv_type = GPT_KV_AUTO;
    /* four sequences: four times the cache, ids and pages, and a row of
     * logits each (the batch keeps max(n_seq, 8) rows: still 8) */
    cp.n_seq = 4;
    got = gpt_context_memory(m, &cp);
    want = 3 * (4 * (2 * 128 * 80 + 2 * 5 * 64 * 128) + 4 * (128 + 2) + 4 * 1000);
    CHECKF(got - base >= want && got - base <= want + 512, "three more sequences add %zu, expected %zu", got - base,
           want);
    /* a shared cache of 150 positions for them: three pages of 64, 320
     * positions fewer than the eight they would have by default */
    base = got;
    cp.kv_size = 150;
    got = gpt_context_memory(m, &cp);
    want = 4 * 320 * 2 * (80 + 5 * 64);
    CHECKF(base - got >= want && base - got <= want + 128, "kv_size 150 saves %zu, expected %zu", base - got, want);
    gpt_model_free(m);
}

TEST(reduced_precision_models_load_and_run)
{
    static const gpt_dtype types[3] = {GPT_DTYPE_F16, GPT_DTYPE_BF16, GPT_DTYPE_Q8_0};
    gpt_model *ref = random_model(2, 5, 80, 64, 1000, 9, GPT_DTYPE_F32, NULL);
    float *want;
    int t;
    CHECK(ref != NULL);
    want = eval_logits(ref, test_ids, 20, 20, 1);
    CHECK(want != NULL);
    for (t = 0; t < 3; t++) {
        gpt_model *m = random_model(2, 5, 80, 64, 1000, 9, types[t], NULL);
        float *got;
        double worst = 0;
        int i;
        CHECK(m != NULL);
        CHECK(gpt_model_config(m).dtype == types[t]);
        got = eval_logits(m, test_ids, 20, 20, 1);
        CHECK(got != NULL);
        for (i = 0; i < 20 * 1000; i++)
            if (fabs((double)got[i] - want[i]) > worst) worst = fabs((double)got[i] - want[i]);
        /* the weights move by at most 2^-8 (bf16) of their size, the f16 cache
         * (the default for these weights) by 2^-11; logits stay close */
        EXPECTF(worst < 0.15, "%s logits differ from f32 by %g", gpt_dtype_name(types[t]), worst);
        free(got);
        gpt_model_free(m);
    }
    free(want);
    gpt_model_free(ref);
}

/* Reads "word n v1 .. vn" at the current position of f into a new array. */
static double *read_doubles(FILE *f, const char *word, int *n)
{
    char w[32];
    double *v;
    int i;
    if (fscanf(f, "%31s %d", w, n) != 2 || strcmp(w, word) != 0 || *n < 0 || *n > 10000000) return NULL;
    v = (double *)malloc(sizeof(double) * (size_t)(*n + 1));
    for (i = 0; v && i < *n; i++)
        if (fscanf(f, "%lf", &v[i]) != 1) {
            free(v);
            return NULL;
        }
    return v;
}

/* Skips "key rest-of-line" lines until a line starting with `word`. */
static int seek_word(FILE *f, const char *word)
{
    char w[64];
    int ch;
    long at;
    for (;;) {
        at = ftell(f);
        if (fscanf(f, "%63s", w) != 1) return -1;
        if (!strcmp(w, word)) {
            fseek(f, at, SEEK_SET);
            return 0;
        }
        while ((ch = fgetc(f)) != EOF && ch != '\n') {
        }
    }
}

TEST(golden_scores)
{
    static const char *const files[] = {"ckpt_l2_h3_c36_t64_v300_f32.score", "ckpt_l2_h3_c36_t64_v300_q8_0.score",
                                        "demo.score"};
    size_t fi;
    int checked = 0;
    for (fi = 0; fi < sizeof files / sizeof files[0]; fi++) {
        char path[512], model[512], w[32];
        FILE *f;
        int window, stride, n, nl, i;
        double *ids = NULL, *lp = NULL, ppl, worst = 0, sum = 0;
        gpt_model *m;
        gpt_context_params cp = gpt_context_defaults();
        gpt_context *c;
        int *tok;
        float *got;
        snprintf(path, sizeof path, "tests/data/golden/%s", files[fi]);
        f = fopen(path, "rb"); /* rb: ftell/fseek are exact on Windows too */
        if (!f) {
            CHECKF(strncmp(files[fi], "demo", 4) == 0, "%s is missing", path);
            continue;
        }
        CHECK(fscanf(f, "%31s %d", w, &i) == 2 && !strcmp(w, "gpt-score"));
        CHECK(fscanf(f, " model file %511s", model) == 1);
        CHECK(seek_word(f, "window") == 0 && fscanf(f, " window %d %d", &window, &stride) == 2);
        CHECK(seek_word(f, "tokens") == 0 && (ids = read_doubles(f, "tokens", &n)) != NULL);
        CHECK((lp = read_doubles(f, "logprob", &nl)) != NULL && nl == n - 1);
        CHECK(fscanf(f, " ppl %lf", &ppl) == 1);
        fclose(f);
        m = gpt_model_load(model, NULL);
        CHECKF(m != NULL, "cannot load %s", model);
        cp.n_ctx = window;
        cp.kv_type = GPT_KV_F32; /* as the reference computes */
        c = gpt_context_new(m, &cp, NULL);
        tok = (int *)malloc(sizeof(int) * (size_t)n);
        got = (float *)malloc(sizeof(float) * (size_t)n);
        CHECK(c && tok && got && stride == window / 2);
        for (i = 0; i < n; i++) tok[i] = (int)ids[i];
        CHECK(gpt_score(c, tok, n, got) == GPT_OK);
        for (i = 0; i < n - 1; i++) {
            double d = fabs((double)got[i] - lp[i]);
            if (!(d <= worst)) worst = d;
            sum += got[i];
        }
        /* rounded activations: the rule, perplexity within 0.5% */
        EXPECTF(worst <= (rounds_activations(m) ? DOT_TOL : 1e-4), "%s: log-probs differ by up to %g", files[fi], worst);
        EXPECTF(fabs(exp(-sum / (n - 1)) / ppl - 1) < (rounds_activations(m) ? 5e-3 : 1e-4),
                "%s: perplexity %.6f, reference %.6f", files[fi], exp(-sum / (n - 1)), ppl);
        printf("# %-45s %d tokens, ppl %.4f (reference %.4f), max log-prob error %.1e\n", files[fi], n,
               exp(-sum / (n - 1)), ppl, worst);
        gpt_context_free(c);
        /* The default cache of reduced-precision weights is f16: the
         * perplexity still holds within 0.1% of the reference. */
        cp.kv_type = GPT_KV_AUTO;
        c = gpt_context_new(m, &cp, NULL);
        CHECK(c != NULL);
        CHECK(gpt_context_kv_type(c) == (gpt_model_config(m).dtype == GPT_DTYPE_F32 ? GPT_KV_F32 : GPT_KV_F16));
        if (gpt_context_kv_type(c) == GPT_KV_F16) {
            CHECK(gpt_score(c, tok, n, got) == GPT_OK);
            for (sum = 0, i = 0; i < n - 1; i++) sum += got[i];
            EXPECTF(fabs(exp(-sum / (n - 1)) / ppl - 1) < (rounds_activations(m) ? 5e-3 : 1e-3), "%s, f16 cache: perplexity %.6f, reference %.6f",
                    files[fi], exp(-sum / (n - 1)), ppl);
            printf("# %-45s f16 cache: ppl %.4f\n", files[fi], exp(-sum / (n - 1)));
        }
        checked++;
        free(ids);
        free(lp);
        free(tok);
        free(got);
        gpt_context_free(c);
        gpt_model_free(m);
    }
    CHECK(checked >= 2);
}

/* Decodes the JSON string at s (after the opening quote) into out. */
static void json_string(const char *s, char *out, size_t cap)
{
    size_t o = 0;
    while (*s && *s != '"' && o + 4 < cap) {
        if (*s == '\\' && s[1]) {
            s++;
            if (*s == 'n') out[o++] = '\n';
            else if (*s == 't') out[o++] = '\t';
            else if (*s == 'u') {
                unsigned v = (unsigned)strtoul((char[5]){s[1], s[2], s[3], s[4], 0}, NULL, 16);
                if (v < 0x80) out[o++] = (char)v;
                else if (v < 0x800) {
                    out[o++] = (char)(0xC0 | (v >> 6));
                    out[o++] = (char)(0x80 | (v & 0x3F));
                } else {
                    out[o++] = (char)(0xE0 | (v >> 12));
                    out[o++] = (char)(0x80 | ((v >> 6) & 0x3F));
                    out[o++] = (char)(0x80 | (v & 0x3F));
                }
                s += 4;
            } else out[o++] = *s;
            s++;
        } else out[o++] = *s++;
    }
    out[o] = 0;
}

TEST(golden_greedy_generation)
{
    static const char *const files[] = {"ckpt_l2_h3_c36_t64_v300_f32.greedy", "ckpt_l2_h3_c36_t64_v300_q8_0.greedy",
                                        "demo.greedy"};
    size_t fi;
    int checked = 0;
    for (fi = 0; fi < sizeof files / sizeof files[0]; fi++) {
        char path[512], model[512], line[4096], prompt[2048], w[32];
        FILE *f;
        int n_prompt, n_greedy, nm, i, kv;
        double *pids, *gids, *margin;
        gpt_model *m;
        gpt_context *c;
        gpt_generate_params gp = gpt_generate_defaults();
        gpt_generate_result res;
        const int *toks;
        snprintf(path, sizeof path, "tests/data/golden/%s", files[fi]);
        f = fopen(path, "rb"); /* rb: ftell/fseek are exact on Windows too */
        if (!f) {
            CHECKF(strncmp(files[fi], "demo", 4) == 0, "%s is missing", path);
            continue;
        }
        CHECK(fscanf(f, "%31s %d", w, &i) == 2 && !strcmp(w, "gpt-greedy"));
        CHECK(fscanf(f, " model file %511s", model) == 1);
        CHECK(seek_word(f, "prompt-text") == 0 && fgets(line, sizeof line, f) != NULL);
        CHECK(strchr(line, '"') != NULL);
        json_string(strchr(line, '"') + 1, prompt, sizeof prompt);
        CHECK((pids = read_doubles(f, "prompt", &n_prompt)) != NULL);
        CHECK((gids = read_doubles(f, "greedy", &n_greedy)) != NULL);
        CHECK((margin = read_doubles(f, "margin", &nm)) != NULL && nm == n_greedy);
        fclose(f);
        m = gpt_model_load(model, NULL);
        CHECKF(m != NULL, "cannot load %s", model);
        gp.temperature = 0.0f;
        gp.ignore_eos = 1;
        gp.max_new_tokens = n_greedy;
        /* the f32 cache, as the reference; then the default cache, which for
         * reduced-precision weights is f16 and moves logits by ~1e-3 */
        for (kv = 0; kv < 2; kv++) {
            gpt_context_params cp = gpt_context_defaults();
            cp.kv_type = kv == 0 ? GPT_KV_F32 : GPT_KV_AUTO;
            c = gpt_context_new(m, &cp, NULL);
            CHECK(c != NULL);
            CHECK(gpt_generate_ex(c, prompt, &gp, NULL, NULL, &res) == GPT_OK);
            CHECKF(res.n_prompt_tokens == n_prompt, "%s: prompt \"%s\" gave %d tokens, expected %d", files[fi],
                   prompt, res.n_prompt_tokens, n_prompt);
            toks = gpt_context_tokens(c);
            for (i = 0; i < n_prompt; i++) CHECK(toks[i] == (int)pids[i]);
            for (i = 0; i < n_greedy; i++) {
                /* a near tie: the reference cannot decide either */
                if (margin[i] < (rounds_activations(m) ? DOT_MARGIN : kv == 0 ? 1e-4 : 0.05)) break;
                CHECKF(toks[n_prompt + i] == (int)gids[i], "%s (%s cache): greedy token %d is %d, expected %d",
                       files[fi], kv == 0 ? "f32" : "default", i, toks[n_prompt + i], (int)gids[i]);
            }
            gpt_context_free(c);
        }
        c = NULL;
        checked++;
        free(pids);
        free(gids);
        free(margin);
        gpt_context_free(c);
        gpt_model_free(m);
    }
    CHECK(checked >= 2);
}

TEST(simd_and_scalar_kernels_agree)
{
    static const gpt_dtype types[4] = {GPT_DTYPE_F32, GPT_DTYPE_F16, GPT_DTYPE_BF16, GPT_DTYPE_Q8_0};
    /* With the f16 cache, a last-bit difference between the kernels' keys
     * can round a cached half the other way, a step of 2^-11 (4.9e-4) in
     * that element: up to 1.2e-4 here (f16 weights), so the limit is 5e-4 */
    static const int kv_types[2] = {GPT_KV_F32, GPT_KV_F16};
    static const double limits[2] = {1e-5, 5e-4};
    int t, step, kv;
    for (t = 0; t < 4; t++) {
        /* n_embd 90 with 6 heads: rows that do not fill vectors, odd head size */
        gpt_model *m = random_model(2, 6, 90, 96, 1000, 21, types[t], NULL);
        CHECK(m != NULL);
        for (kv = 0; kv < 2; kv++)
            for (step = 1; step <= 40; step += 39) { /* decoding and one prompt batch */
                float *simd, *ref;
                double d;
                use_kv_type = kv_types[kv];
                use_reference_kernels = 0;
                simd = eval_logits(m, test_ids, 40, step, 2);
                use_reference_kernels = 1;
                ref = eval_logits(m, test_ids, 40, step, 1);
                use_reference_kernels = 0;
                use_kv_type = GPT_KV_AUTO;
                CHECK(simd && ref);
                d = max_rel_diff(ref, simd, (size_t)40 * 1000);
                printf("# %-5s %s cache, %2d tokens per eval: SIMD vs scalar max relative difference %.1e\n",
                       gpt_dtype_name(types[t]), kv ? "f16" : "f32", step, d);
                /* bf16 on AMX's tiles: each product within 1e-5 of the
                 * twin's and of its exact sum (test_kernels), but not the
                 * same bits, so the next product's activations, rounded to
                 * bf16, now and then round to the neighbouring value (2^-8
                 * of it); over two layers that moved the logits by 1.1e-2 */
                EXPECTF(d <= (types[t] == GPT_DTYPE_BF16 && (gpt__dot_products() & 8) ? 0.05 : limits[kv]),
                        "%s, %s cache, %d tokens per eval: SIMD and scalar kernels differ by %g",
                        gpt_dtype_name(types[t]), kv ? "f16" : "f32", step, d);
                free(simd);
                free(ref);
            }
        gpt_model_free(m);
    }
}

TEST(kv_type_resolves_from_the_weights)
{
    static const gpt_dtype types[4] = {GPT_DTYPE_F32, GPT_DTYPE_F16, GPT_DTYPE_BF16, GPT_DTYPE_Q8_0};
    int t;
    for (t = 0; t < 4; t++) {
        gpt_model *m = random_model(1, 2, 32, 16, 300, 5, types[t], NULL);
        gpt_context_params cp = gpt_context_defaults();
        gpt_context *c;
        gpt_error err;
        CHECK(m != NULL);
        c = gpt_context_new(m, &cp, NULL);
        CHECKF(c && gpt_context_kv_type(c) == (t == 0 ? GPT_KV_F32 : GPT_KV_F16), "%s weights: automatic cache %d",
               gpt_dtype_name(types[t]), c ? gpt_context_kv_type(c) : -1);
        gpt_context_free(c);
        cp.kv_type = t == 0 ? GPT_KV_F16 : GPT_KV_F32; /* an explicit choice wins */
        c = gpt_context_new(m, &cp, NULL);
        CHECK(c && gpt_context_kv_type(c) == cp.kv_type);
        gpt_context_free(c);
        cp.kv_type = t == 0 ? -1 : 3;
        CHECK(gpt_context_new(m, &cp, &err) == NULL && err.status == GPT_ERR_INVALID_ARG &&
              strstr(err.message, "kv_type") != NULL);
        CHECK(gpt_context_memory(m, &cp) == 0);
        gpt_model_free(m);
    }
    CHECK(gpt_context_kv_type(NULL) == 0);
}

TEST(kv_cache_in_f16)
{
    /* head_dim 15: cache panels padded; 40 tokens: two key panels */
    gpt_model *m = random_model(2, 6, 90, 96, 1000, 21, GPT_DTYPE_F32, NULL);
    float *f32, *half_batch, *half_steps, *half_ref;
    double d;
    CHECK(m != NULL);
    f32 = eval_logits(m, test_ids, 40, 40, 2);
    use_kv_type = GPT_KV_F16;
    half_batch = eval_logits(m, test_ids, 40, 40, 2);
    half_steps = eval_logits(m, test_ids, 40, 1, 1);
    use_reference_kernels = 1;
    half_ref = eval_logits(m, test_ids, 40, 7, 1);
    use_reference_kernels = 0;
    use_kv_type = GPT_KV_AUTO;
    CHECK(f32 && half_batch && half_steps && half_ref);
    d = max_rel_diff(f32, half_batch, (size_t)40 * 1000);
    printf("# f16 KV cache moves logits by up to %.1e (relative)\n", d);
    EXPECTF(d > 0 && d < 1e-2, "f16 cache vs f32 cache: %g", d);
    /* A last-bit difference between two ways of computing a key can round
     * its cached half the other way (a step of 2^-11), so the paths agree
     * less closely than with the f32 cache. */
    d = max_rel_diff(half_batch, half_steps, (size_t)40 * 1000);
    EXPECTF(d <= 1e-4, "f16 cache, token by token vs one batch: %g", d);
    d = max_rel_diff(half_ref, half_batch, (size_t)40 * 1000);
    EXPECTF(d <= 1e-4, "f16 cache, scalar vs SIMD kernels: %g", d);
    free(f32);
    free(half_batch);
    free(half_steps);
    free(half_ref);
    gpt_model_free(m);
}

int main(void)
{
    RUN(golden_logits);
    RUN(golden_scores);
    RUN(golden_greedy_generation);
    RUN(kv_cache_matches_batch);
    RUN(kv_type_resolves_from_the_weights);
    RUN(threads_are_bitwise_identical);
    RUN(simd_and_scalar_kernels_agree);
    RUN(kv_cache_in_f16);
    RUN(rewind_then_eval_matches_fresh);
    RUN(score_matches_logits_and_windows);
    RUN(eval_rejects_bad_input_without_changing_state);
    RUN(context_memory_is_as_stated);
    RUN(reduced_precision_models_load_and_run);
    return test_summary();
}
