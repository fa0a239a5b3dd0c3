/*
 * test_batch.c - many sequences in one context: batches, batch invariance,
 * forks, rewinds, the shared KV cache, and misuse of all of these.
 *
 * Batch invariance is checked bit for bit: a sequence's logits, evaluated
 * in batches of 1 to 16 sequences of mixed lengths and positions, on 1, 2,
 * 3 and 7 threads, with f32 and f16 KV caches, equal those of the sequence
 * evaluated alone, token by token, on one thread.
 */
#include "model_util.h"
#include "test.h"

/* Under ThreadSanitizer (make test-tsan) every sequence count and thread
 * count still runs, on the first two shapes. */
#if defined(__SANITIZE_THREAD__)
#define N_SHAPES 2
#else
#define N_SHAPES (sizeof shapes / sizeof shapes[0])
#endif

#define MAX_SEQ 16
#define MAX_LEN 70

typedef struct shape {
    int L, H, C, T, V;
    gpt_dtype dtype;
} shape;

static const shape shapes[] = {
    {2, 4, 64, 128, 300, GPT_DTYPE_F32},   /* one head of 16: GP_VL-sized tails */
    {1, 3, 36, 96, 300, GPT_DTYPE_Q8_0},   /* head size 12: no whole vector */
    {2, 5, 80, 160, 777, GPT_DTYPE_F16},   /* odd vocabulary, pages of 64 crossed */
    {1, 2, 200, 72, 1000, GPT_DTYPE_BF16}, /* head size 100: two value panels */
};

/* A deterministic id for sequence s at position p. */
static int id_at(int s, int p, int V) { return (int)(((unsigned)s * 7919u + (unsigned)p * 104729u + 17u) % (unsigned)V); }

static int bits_equal(const float *a, const float *b, int n) { return memcmp(a, b, sizeof(float) * (size_t)n) == 0; }

/* The logits of sequence s after each of its first len ids, evaluated alone
 * and token by token on one thread: want[p * V ..]. */
static float *alone(gpt_model *m, int kv, int s, int len)
{
    gpt_context_params cp = gpt_context_defaults();
    gpt_context *c;
    int V = gpt_model_config(m).n_vocab, p;
    float *want = (float *)malloc(sizeof(float) * (size_t)V * (size_t)len);
    cp.n_threads = 1;
    cp.kv_type = kv;
    c = gpt_context_new(m, &cp, NULL);
    if (!c || !want) {
        gpt_context_free(c);
        free(want);
        return NULL;
    }
    for (p = 0; p < len; p++) {
        int id = id_at(s, p, V);
        if (gpt_eval(c, &id, 1) != GPT_OK) {
            free(want);
            want = NULL;
            break;
        }
        memcpy(want + (size_t)p * V, gpt_logits(c), sizeof(float) * (size_t)V);
    }
    gpt_context_free(c);
    return want;
}

/* Sequences 0 .. n_seq-1 grow together in rounds: in each round every
 * sequence gets a chunk of 0 .. 7 ids (so their lengths and positions
 * differ), interleaved or grouped; every entry keeps its logits, which
 * must equal the sequence's alone. */
static int check_mixed_batches(gpt_model *m, int kv, int threads, int n_seq, int len, float **want, char *why,
                               size_t cap)
{
    gpt_context_params cp = gpt_context_defaults();
    gpt_context *c;
    int V = gpt_model_config(m).n_vocab, done[MAX_SEQ] = {0}, round = 0, ok = 1, s, k;
    int tokens[MAX_SEQ * 8], seqs[MAX_SEQ * 8];
    unsigned char keep[MAX_SEQ * 8];
    cp.n_threads = threads;
    cp.kv_type = kv;
    cp.n_seq = n_seq;
    cp.n_batch = 13; /* batches are split into steps at odd places */
    cp.all_logits = 1;
    c = gpt_context_new(m, &cp, NULL);
    if (!c) return snprintf(why, cap, "no context"), 0;
    while (ok) {
        gpt_batch b;
        int n = 0, left = 0;
        for (s = 0; s < n_seq; s++) left += len - done[s];
        if (left == 0) break;
        {
            /* each sequence's chunk; odd rounds deal them out one id at a
             * time, round-robin, even rounds one sequence after another */
            int want_n[MAX_SEQ], given[MAX_SEQ] = {0}, more = 1;
            for (s = 0; s < n_seq; s++) {
                want_n[s] = (s * 5 + round * 3) % 8;
                if (want_n[s] > len - done[s]) want_n[s] = len - done[s];
            }
            if (round % 2 == 0) {
                for (s = 0; s < n_seq; s++)
                    for (; given[s] < want_n[s]; given[s]++, n++) {
                        tokens[n] = id_at(s, done[s] + given[s], V);
                        seqs[n] = s;
                        keep[n] = 1;
                    }
            } else {
                while (more) {
                    more = 0;
                    for (s = 0; s < n_seq; s++)
                        if (given[s] < want_n[s]) {
                            tokens[n] = id_at(s, done[s] + given[s], V);
                            seqs[n] = s;
                            keep[n] = 1;
                            given[s]++;
                            n++;
                            more = 1;
                        }
                }
            }
        }
        b.n = n;
        b.tokens = tokens;
        b.seq = seqs;
        b.logits = keep;
        if (gpt_eval_batch(c, &b) != GPT_OK) {
            snprintf(why, cap, "gpt_eval_batch: %s", gpt_context_error(c));
            ok = 0;
            break;
        }
        for (k = 0; k < n && ok; k++) {
            int p = done[seqs[k]]++;
            const float *got = gpt_logits_batch(c, k);
            if (!got || !bits_equal(got, want[seqs[k]] + (size_t)p * V, V)) {
                snprintf(why, cap, "%d sequences, %d threads, kv %s: sequence %d position %d (round %d) differs "
                         "from the sequence alone", n_seq, threads, kv == GPT_KV_F16 ? "f16" : "f32", seqs[k], p,
                         round);
                ok = 0;
            }
        }
        round++;
    }
    gpt_context_free(c);
    return ok;
}

TEST(every_sequence_equals_itself_alone)
{
    /* (sequences, threads): every thread count, and batches of 1 to 16 */
    static const int pairs[][2] = {{1, 1}, {2, 2}, {5, 3}, {16, 7}, {16, 2}};
    size_t si;
    char why[300];
    for (si = 0; si < N_SHAPES; si++) {
        const shape *sh = &shapes[si];
        gpt_model *m = random_model(sh->L, sh->H, sh->C, sh->T, sh->V, 21, sh->dtype, NULL);
        int kv, len = sh->T < MAX_LEN ? sh->T : MAX_LEN, s, i;
        float *want[MAX_SEQ];
        CHECK(m != NULL);
        for (kv = GPT_KV_F16; kv <= GPT_KV_F32; kv++) {
            for (s = 0; s < MAX_SEQ; s++) {
                want[s] = alone(m, kv, s, len);
                CHECK(want[s] != NULL);
            }
            for (i = 0; i < (int)(sizeof pairs / sizeof pairs[0]); i++)
                EXPECTF(check_mixed_batches(m, kv, pairs[i][1], pairs[i][0], len, want, why, sizeof why),
                        "shape %lu: %s", (unsigned long)si, why);
            for (s = 0; s < MAX_SEQ; s++) free(want[s]);
        }
        gpt_model_free(m);
    }
}

/* A prompt evaluated as one block gives, at every position, the logits of
 * the same prompt evaluated token by token. */
TEST(a_prompt_in_one_block_equals_token_by_token)
{
    gpt_model *m = gpt_model_load("models/demo.bin", NULL);
    gpt_context_params cp = gpt_context_defaults();
    gpt_context *c;
    int V, ids[200], i, kv;
    float *want;
    CHECK(m != NULL);
    V = gpt_model_config(m).n_vocab;
    for (i = 0; i < 200; i++) ids[i] = id_at(3, i, V);
    for (kv = GPT_KV_F16; kv <= GPT_KV_F32; kv++) {
        want = alone(m, kv, 3, 200);
        CHECK(want != NULL);
        cp.kv_type = kv;
        cp.all_logits = 1;
        cp.n_threads = 2;
        c = gpt_context_new(m, &cp, NULL);
        CHECK(c != NULL);
        CHECK(gpt_eval(c, ids, 200) == GPT_OK);
        for (i = 0; i < 200; i++)
            CHECKF(bits_equal(gpt_logits_at(c, i), want + (size_t)i * V, V), "kv %d: position %d differs", kv, i);
        gpt_context_free(c);
        free(want);
    }
    gpt_model_free(m);
}

/* A fork carries on exactly as if its history had been evaluated again;
 * and writing to a shared page copies it, leaving the other sequence as it
 * was. */
TEST(forks_equal_recomputed_history)
{
    gpt_model *m = random_model(2, 4, 64, 200, 300, 3, GPT_DTYPE_F32, NULL);
    gpt_context_params cp = gpt_context_defaults();
    gpt_context *c;
    int V = 300, ids[150], i, s;
    float *want0, *want1;
    CHECK(m != NULL);
    for (i = 0; i < 150; i++) ids[i] = id_at(0, i, V);
    want0 = alone(m, GPT_KV_AUTO, 0, 150);
    CHECK(want0 != NULL);
    cp.n_seq = 4;
    cp.n_threads = 2;
    c = gpt_context_new(m, &cp, NULL);
    CHECK(c != NULL);
    CHECK(gpt_eval(c, ids, 100) == GPT_OK); /* sequence 0: 100 ids, a page and a half */
    for (s = 1; s < 4; s++) CHECK(gpt_seq_fork(c, 0, s) == GPT_OK);
    CHECK(gpt_seq_n_past(c, 2) == 100 && memcmp(gpt_seq_tokens(c, 2), ids, sizeof(int) * 100) == 0);
    CHECK(bits_equal(gpt_logits_seq(c, 3), want0 + (size_t)99 * V, V));
    /* sequence 1 continues the shared history; sequence 2 goes elsewhere */
    {
        gpt_batch b;
        int tok[2] = {ids[100], 7}, seq[2] = {1, 2};
        b.n = 2;
        b.tokens = tok;
        b.seq = seq;
        b.logits = NULL;
        CHECK(gpt_eval_batch(c, &b) == GPT_OK);
        CHECK(bits_equal(gpt_logits_seq(c, 1), want0 + (size_t)100 * V, V));
    }
    {
        int copy[101];
        memcpy(copy, ids, sizeof(int) * 100);
        copy[100] = 7;
        for (i = 0; i < 101; i++) copy[i] = i < 100 ? ids[i] : 7;
        gpt_context_params one = gpt_context_defaults();
        gpt_context *c2;
        one.n_threads = 1;
        c2 = gpt_context_new(m, &one, NULL);
        CHECK(c2 != NULL);
        CHECK(gpt_eval(c2, copy, 101) == GPT_OK);
        want1 = (float *)malloc(sizeof(float) * (size_t)V);
        CHECK(want1 != NULL);
        memcpy(want1, gpt_logits(c2), sizeof(float) * (size_t)V);
        gpt_context_free(c2);
        CHECKF(bits_equal(gpt_logits_seq(c, 2), want1, V), "a fork that wrote to the shared page differs");
        free(want1);
    }
    /* sequence 0 and 3 still hold the original history: continue them */
    CHECK(gpt_eval(c, ids + 100, 50) == GPT_OK);
    CHECK(bits_equal(gpt_logits(c), want0 + (size_t)149 * V, V));
    {
        gpt_batch b;
        int seq[50];
        for (i = 0; i < 50; i++) seq[i] = 3;
        b.n = 50;
        b.tokens = ids + 100;
        b.seq = seq;
        b.logits = NULL;
        CHECK(gpt_eval_batch(c, &b) == GPT_OK);
        CHECK(bits_equal(gpt_logits_seq(c, 3), want0 + (size_t)149 * V, V));
    }
    /* rewinding a fork into the shared part and growing again */
    CHECK(gpt_seq_rewind(c, 1, 40) == GPT_OK);
    {
        gpt_batch b;
        int seq[60];
        for (i = 0; i < 60; i++) seq[i] = 1;
        b.n = 60;
        b.tokens = ids + 40;
        b.seq = seq;
        b.logits = NULL;
        CHECK(gpt_eval_batch(c, &b) == GPT_OK);
        CHECK(bits_equal(gpt_logits_seq(c, 1), want0 + (size_t)99 * V, V));
    }
    gpt_context_free(c);
    free(want0);
    gpt_model_free(m);
}

/* Pages come back to the pool: forks share them, rewinds and clears free
 * them, and a full pool refuses a batch without changing anything. */
TEST(the_kv_pool_is_shared_and_bounded)
{
    gpt_model *m = random_model(1, 2, 32, 256, 300, 3, GPT_DTYPE_F32, NULL);
    gpt_context_params cp = gpt_context_defaults();
    gpt_context *c;
    int ids[256], i, seq[256];
    gpt_batch b;
    CHECK(m != NULL);
    for (i = 0; i < 256; i++) ids[i] = id_at(1, i, 300);
    cp.n_seq = 3;
    cp.kv_size = 300; /* five pages of 64 */
    c = gpt_context_new(m, &cp, NULL);
    CHECK(c != NULL);
    CHECK(gpt_context_kv_free(c) == 320);
    CHECK(gpt_eval(c, ids, 130) == GPT_OK); /* three pages */
    CHECK(gpt_context_kv_free(c) == 128);
    CHECK(gpt_seq_fork(c, 0, 1) == GPT_OK && gpt_seq_fork(c, 0, 2) == GPT_OK); /* shared: no new pages */
    CHECK(gpt_context_kv_free(c) == 128);
    /* sequences 1 and 2 each write into the shared third page: a copy each */
    for (i = 0; i < 2; i++) seq[i] = 1 + i;
    b.n = 2;
    b.tokens = ids;
    b.seq = seq;
    b.logits = NULL;
    CHECK(gpt_eval_batch(c, &b) == GPT_OK);
    CHECK(gpt_context_kv_free(c) == 0);
    /* now a batch that needs a page does not fit, and changes nothing: 62
     * more ids take sequence 1 to position 192, a fourth page */
    for (i = 0; i < 62; i++) seq[i] = 1;
    b.n = 62;
    CHECK(gpt_eval_batch(c, &b) == GPT_ERR_CONTEXT_FULL);
    CHECKF(strstr(gpt_context_error(c), "KV cache is full") != NULL, "%s", gpt_context_error(c));
    CHECK(gpt_seq_n_past(c, 1) == 131 && gpt_seq_n_past(c, 2) == 131 && gpt_logits_seq(c, 1) != NULL);
    CHECK(gpt_seq_clear(c, 2) == GPT_OK); /* its private copy comes back; the first two pages stay shared */
    CHECK(gpt_context_kv_free(c) == 64);
    CHECK(gpt_seq_rewind(c, 1, 10) == GPT_OK && gpt_seq_rewind(c, 0, 10) == GPT_OK);
    CHECK(gpt_context_kv_free(c) == 256);
    CHECK(gpt_seq_clear(c, 0) == GPT_OK && gpt_seq_clear(c, 1) == GPT_OK && gpt_context_kv_free(c) == 320);
    gpt_context_free(c);
    /* three sequences sharing one page all write into it: two copies, and
     * the last keeps the page, so a pool of three pages is enough */
    cp.kv_size = 192;
    c = gpt_context_new(m, &cp, NULL);
    CHECK(c != NULL);
    CHECK(gpt_eval(c, ids, 10) == GPT_OK);
    CHECK(gpt_seq_fork(c, 0, 1) == GPT_OK && gpt_seq_fork(c, 0, 2) == GPT_OK);
    for (i = 0; i < 3; i++) seq[i] = i;
    b.n = 3;
    b.tokens = ids + 10;
    b.seq = seq;
    b.logits = NULL;
    CHECKF(gpt_eval_batch(c, &b) == GPT_OK, "%s", gpt_context_error(c));
    CHECK(gpt_context_kv_free(c) == 0);
    gpt_context_free(c);
    gpt_model_free(m);
}

/* Bad batches, sequences and forks get a status and a message and change
 * nothing. */
TEST(misuse_changes_nothing)
{
    gpt_model *m = random_model(1, 2, 32, 64, 300, 3, GPT_DTYPE_F32, NULL);
    gpt_context_params cp = gpt_context_defaults();
    gpt_context *c;
    int ids[70], seq[70], i;
    unsigned char keep[70];
    gpt_batch b;
    CHECK(m != NULL);
    for (i = 0; i < 70; i++) {
        ids[i] = id_at(2, i, 300);
        seq[i] = i % 2;
        keep[i] = 1;
    }
    cp.n_seq = 2;
    c = gpt_context_new(m, &cp, NULL);
    CHECK(c != NULL);
    CHECK(gpt_eval(c, ids, 10) == GPT_OK);
    b.tokens = ids;
    b.seq = seq;
    b.logits = NULL;
    /* a sequence out of range */
    seq[3] = 2;
    b.n = 6;
    CHECK(gpt_eval_batch(c, &b) == GPT_ERR_INVALID_ARG && strstr(gpt_context_error(c), "sequence 2"));
    seq[3] = -1;
    CHECK(gpt_eval_batch(c, &b) == GPT_ERR_INVALID_ARG);
    seq[3] = 1;
    /* a bad id */
    ids[4] = 300;
    CHECK(gpt_eval_batch(c, &b) == GPT_ERR_TOKEN_RANGE);
    ids[4] = 5;
    /* one sequence runs past n_ctx while the other fits */
    for (i = 0; i < 70; i++) seq[i] = i < 55 ? 0 : 1;
    b.n = 70;
    CHECK(gpt_eval_batch(c, &b) == GPT_ERR_CONTEXT_FULL && strstr(gpt_context_error(c), "sequence 0"));
    /* more kept logits than the context keeps */
    b.n = 20;
    b.logits = keep;
    CHECK(gpt_eval_batch(c, &b) == GPT_ERR_INVALID_ARG && strstr(gpt_context_error(c), "logits"));
    b.logits = NULL;
    CHECK(gpt_eval_batch(c, NULL) == GPT_ERR_INVALID_ARG);
    b.n = -1;
    CHECK(gpt_eval_batch(c, &b) == GPT_ERR_INVALID_ARG);
    /* nothing changed */
    CHECK(gpt_seq_n_past(c, 0) == 10 && gpt_seq_n_past(c, 1) == 0 && gpt_logits(c) != NULL);
    CHECK(gpt_logits_seq(c, 1) == NULL && gpt_logits_seq(c, 2) == NULL && gpt_logits_seq(c, -1) == NULL);
    /* forks, rewinds and clears of bad sequences */
    CHECK(gpt_seq_fork(c, 0, 0) == GPT_ERR_INVALID_ARG && strstr(gpt_context_error(c), "onto itself"));
    CHECK(gpt_seq_fork(c, 0, 2) == GPT_ERR_INVALID_ARG);
    CHECK(gpt_seq_fork(c, -1, 1) == GPT_ERR_INVALID_ARG);
    CHECK(gpt_seq_rewind(c, 1, 1) == GPT_ERR_INVALID_ARG);
    CHECK(gpt_seq_rewind(c, 5, 0) == GPT_ERR_INVALID_ARG);
    CHECK(gpt_seq_clear(c, 2) == GPT_ERR_INVALID_ARG);
    CHECK(gpt_seq_n_past(c, 0) == 10 && gpt_logits(c) != NULL);
    CHECK(gpt_seq_n_past(c, 9) == 0 && gpt_seq_tokens(c, 9) == NULL);
    CHECK(gpt_eval_batch(NULL, &b) == GPT_ERR_INVALID_ARG && gpt_seq_fork(NULL, 0, 1) == GPT_ERR_INVALID_ARG);
    /* bad parameters */
    cp.n_seq = -1;
    CHECK(gpt_context_new(m, &cp, NULL) == NULL && gpt_context_memory(m, &cp) == 0);
    cp.n_seq = GPT_MAX_SEQ + 1;
    CHECK(gpt_context_new(m, &cp, NULL) == NULL);
    cp.n_seq = 1;
    cp.kv_size = -64;
    CHECK(gpt_context_new(m, &cp, NULL) == NULL);
    gpt_context_free(c);
    gpt_model_free(m);
}

int main(void)
{
    RUN(every_sequence_equals_itself_alone);
    RUN(a_prompt_in_one_block_equals_token_by_token);
    RUN(forks_equal_recomputed_history);
    RUN(the_kv_pool_is_shared_and_bounded);
    RUN(misuse_changes_nothing);
    return test_summary();
}
