/*
 * test_threads.c - one model shared by many threads. Each thread has its own
 * context and generates with a fixed seed; its text (and status, stop
 * reason, token count, scores) must be identical to the same run done alone.
 * Then contexts with two worker threads each run concurrently, and threads
 * create, use and free contexts and models while others generate. Built with
 * -fsanitize=thread by `make test-tsan`, which must report nothing.
 */
#if (defined(__unix__) || defined(__APPLE__)) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#include "model_util.h"
#include "test.h"

#if (defined(__unix__) || defined(__APPLE__)) && !defined(GPT_NO_THREADS)
#include <pthread.h>
#define HAVE_PTHREADS 1
#endif

#define N_JOBS 8
#define OUT_CAP 4096

static gpt_model *g_model;

static unsigned char *g_ckpt; /* the checkpoint bytes, 64-aligned, loaded in place by several threads */
static size_t g_ckpt_len;

typedef struct job {
    /* in */
    int index;
    int n_threads;
    /* out */
    gpt_status status;
    gpt_generate_result res;
    char text[OUT_CAP];
    size_t len;
    float scores[64];
    int n_scores;
    char err[320];
} job;

static job *g_ref; /* every job run alone on one thread, before any thread starts */

static int collect(const char *text, size_t len, void *user)
{
    job *j = (job *)user;
    if (j->len + len < OUT_CAP) {
        memcpy(j->text + j->len, text, len);
        j->len += len;
    }
    return 0;
}

static const char *const prompts[N_JOBS] = {
    "In the beginning", "And God said", "The quick brown fox", "Once upon a time",
    "\xC3\xA9t\xC3\xA9 \xE4\xB8\xAD", "1 2 3 4", "<|endoftext|>Hello", "\xFF\xFE\xC3 bytes",
};

/* One generation, then the tokenizer and the scorer on its text. Writes
 * everything into j; touches nothing shared but the model. */
static void run_job(job *j)
{
    gpt_context_params cp = gpt_context_defaults();
    gpt_generate_params gp = gpt_generate_defaults();
    const gpt_tokenizer *tok = gpt_model_tokenizer(g_model);
    const char *stops[1] = {"\n\n"};
    gpt_context *c;
    int ids[64], n;
    cp.n_threads = j->n_threads;
    cp.n_ctx = 96;
    j->len = 0;
    j->n_scores = 0;
    j->err[0] = 0;
    c = gpt_context_new(g_model, &cp, NULL);
    if (!c) {
        j->status = GPT_ERR_OUT_OF_MEMORY;
        return;
    }
    gp.max_new_tokens = 24 + j->index % 3 * 8;
    gp.temperature = 0.7f + 0.1f * (float)(j->index % 4);
    gp.top_k = j->index % 2 ? 0 : 50;
    gp.top_p = 0.9f;
    gp.min_p = 0.02f;
    gp.repetition_penalty = j->index % 3 ? 1.0f : 1.2f;
    gp.seed = 1000 + (uint64_t)j->index;
    gp.special = 1;
    gp.stop = stops;
    gp.n_stop = 1;
    gp.context_policy = j->index % 2 ? GPT_CONTEXT_SLIDE : GPT_CONTEXT_STOP;
    j->status = gpt_generate_ex(c, prompts[j->index % N_JOBS], &gp, collect, j, &j->res);
    if (j->status != GPT_OK) snprintf(j->err, sizeof j->err, "%s", gpt_context_error(c));
    /* the shared tokenizer, and the scores of the generated text */
    n = gpt_tokenize(tok, j->text, j->len, ids, 64);
    if (n > 64) n = 64;
    if (n >= 2 && gpt_score(c, ids, n, j->scores) == GPT_OK) j->n_scores = n - 1;
    gpt_context_free(c);
}

static void reference_runs(job *ref, int n_threads)
{
    int i;
    for (i = 0; i < N_JOBS; i++) {
        memset(&ref[i], 0, sizeof ref[i]);
        ref[i].index = i;
        ref[i].n_threads = n_threads;
        run_job(&ref[i]);
    }
}

/* "" if got equals want, else what differs. */
static const char *compare(const job *want, const job *got)
{
    if (got->status != want->status) return "status";
    if (got->res.stop_reason != want->res.stop_reason) return "stop reason";
    if (got->res.n_generated != want->res.n_generated || got->res.n_prompt_tokens != want->res.n_prompt_tokens)
        return "token counts";
    if (got->len != want->len || memcmp(got->text, want->text, want->len) != 0) return "text";
    if (got->n_scores != want->n_scores ||
        memcmp(got->scores, want->scores, sizeof(float) * (size_t)want->n_scores) != 0)
        return "scores";
    return "";
}

#if defined(HAVE_PTHREADS)

/* All threads of a round start together. */
typedef struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int open;
} gate;

static gate g_gate;

static void gate_wait(void)
{
    pthread_mutex_lock(&g_gate.mu);
    while (!g_gate.open) pthread_cond_wait(&g_gate.cv, &g_gate.mu);
    pthread_mutex_unlock(&g_gate.mu);
}

static void gate_set(int open)
{
    pthread_mutex_lock(&g_gate.mu);
    g_gate.open = open;
    pthread_cond_broadcast(&g_gate.cv);
    pthread_mutex_unlock(&g_gate.mu);
}

static void *job_main(void *arg)
{
    gate_wait();
    run_job((job *)arg);
    return NULL;
}

/* Runs n jobs on n threads at once; 0 if a thread could not start. */
static int run_concurrently(job *jobs, int n)
{
    pthread_t th[N_JOBS * 2];
    int i, started = 0, ok = 1;
    gate_set(0);
    for (i = 0; i < n; i++) {
        if (pthread_create(&th[i], NULL, job_main, &jobs[i]) != 0) {
            ok = 0;
            break;
        }
        started++;
    }
    gate_set(1);
    for (i = 0; i < started; i++) pthread_join(th[i], NULL);
    return ok;
}

TEST(eight_threads_one_model_same_text_as_alone)
{
    job *ref = g_ref, *par = (job *)calloc(N_JOBS, sizeof *par);
    int i, round;
    CHECK(par != NULL);
    for (i = 0; i < N_JOBS; i++) {
        CHECKF(ref[i].status == GPT_OK || ref[i].status == GPT_ERR_CONTEXT_FULL, "job %d alone: %s: %s", i,
               gpt_status_name(ref[i].status), ref[i].err);
        CHECKF(ref[i].res.n_generated > 0, "job %d generated nothing", i);
    }
    for (round = 0; round < 2; round++) {
        for (i = 0; i < N_JOBS; i++) {
            memset(&par[i], 0, sizeof par[i]);
            par[i].index = i;
            par[i].n_threads = 1;
        }
        CHECK(run_concurrently(par, N_JOBS));
        for (i = 0; i < N_JOBS; i++) {
            const char *d = compare(&ref[i], &par[i]);
            CHECKF(!d[0], "round %d, job %d: the %s differs from the run alone", round, i, d);
        }
    }
    free(par);
}

/* Every context has its own pool of 2 threads; 4 of them run at once (8
 * threads on whatever cores there are). Same seed, same text, on any thread
 * count. */
TEST(concurrent_contexts_with_two_threads_each)
{
    job *ref = g_ref, *par = (job *)calloc(N_JOBS, sizeof *par);
    int i, half;
    CHECK(par != NULL);
    for (half = 0; half < 2; half++) {
        for (i = 0; i < N_JOBS / 2; i++) {
            memset(&par[i], 0, sizeof par[i]);
            par[i].index = half * (N_JOBS / 2) + i;
            par[i].n_threads = 2;
        }
        CHECK(run_concurrently(par, N_JOBS / 2));
        for (i = 0; i < N_JOBS / 2; i++) {
            const char *d = compare(&ref[par[i].index], &par[i]);
            CHECKF(!d[0], "job %d on 2 threads, concurrently: the %s differs from the run alone on 1", par[i].index, d);
        }
    }
    free(par);
}

/* Threads that load their own model from one shared buffer (in place, so
 * the loader must only read it), create and free contexts with worker
 * threads, and evaluate, while generation jobs run on the shared model. */
typedef struct churn {
    int index, failures;
    char why[400];
} churn;

static void *churn_main(void *arg)
{
    churn *ch = (churn *)arg;
    int round, i, ids[6];
    gate_wait();
    for (round = 0; round < 6; round++) {
        gpt_error err;
        gpt_model *m = gpt_model_load_memory_inplace(g_ckpt, g_ckpt_len, &err);
        gpt_context_params cp = gpt_context_defaults();
        gpt_context *c;
        if (!m) {
            ch->failures++;
            snprintf(ch->why, sizeof ch->why, "load: %s", err.message);
            continue;
        }
        cp.n_threads = 1 + (ch->index + round) % 3;
        cp.n_ctx = 16;
        c = gpt_context_new(round % 2 ? m : g_model, &cp, &err);
        if (!c) {
            ch->failures++;
            snprintf(ch->why, sizeof ch->why, "context: %s", err.message);
        } else {
            for (i = 0; i < 6; i++) ids[i] = (ch->index * 31 + round * 7 + i * 13) % 500;
            if (gpt_eval(c, ids, 6) != GPT_OK || !gpt_logits(c)) {
                ch->failures++;
                snprintf(ch->why, sizeof ch->why, "eval: %s", gpt_context_error(c));
            }
            gpt_context_free(c);
        }
        gpt_model_free(m);
    }
    return NULL;
}

TEST(contexts_and_models_come_and_go_while_others_generate)
{
    job *ref = g_ref, *par = (job *)calloc(4, sizeof *par);
    churn ch[4];
    pthread_t th[8];
    int i, started = 0;
    CHECK(par != NULL);
    gate_set(0);
    for (i = 0; i < 4; i++) {
        memset(&par[i], 0, sizeof par[i]);
        par[i].index = i * 2 + 1;
        par[i].n_threads = 1 + i % 2;
        memset(&ch[i], 0, sizeof ch[i]);
        ch[i].index = i;
        if (pthread_create(&th[started], NULL, job_main, &par[i]) == 0) started++;
        if (pthread_create(&th[started], NULL, churn_main, &ch[i]) == 0) started++;
    }
    gate_set(1);
    for (i = 0; i < started; i++) pthread_join(th[i], NULL);
    CHECK(started == 8);
    for (i = 0; i < 4; i++) {
        const char *d = compare(&ref[par[i].index], &par[i]);
        CHECKF(!d[0], "job %d: the %s differs from the run alone", par[i].index, d);
        CHECKF(ch[i].failures == 0, "churn thread %d: %s", i, ch[i].why);
    }
    free(par);
}

#endif /* HAVE_PTHREADS */

int main(void)
{
    gpt_error err;
    unsigned char *raw, *block;
    size_t len;
    raw = random_checkpoint(2, 4, 64, 128, 2000, 17, GPT_DTYPE_F32, &len, &err);
    if (!raw) {
        printf("FAIL setup: %s\n", err.message);
        return 1;
    }
    /* an aligned copy: every load of it is in place */
    block = (unsigned char *)malloc(len + 64);
    if (!block) return 1;
    g_ckpt = block + (64 - (size_t)block % 64) % 64;
    g_ckpt_len = len;
    memcpy(g_ckpt, raw, len);
    free(raw);
    g_model = gpt_model_load_memory_inplace(g_ckpt, g_ckpt_len, &err);
    if (!g_model) {
        printf("FAIL setup: %s\n", err.message);
        return 1;
    }
    g_ref = (job *)calloc(N_JOBS, sizeof *g_ref);
    if (!g_ref) return 1;
    reference_runs(g_ref, 1);
#if defined(HAVE_PTHREADS)
    pthread_mutex_init(&g_gate.mu, NULL);
    pthread_cond_init(&g_gate.cv, NULL);
    RUN(eight_threads_one_model_same_text_as_alone);
    RUN(concurrent_contexts_with_two_threads_each);
    RUN(contexts_and_models_come_and_go_while_others_generate);
    pthread_cond_destroy(&g_gate.cv);
    pthread_mutex_destroy(&g_gate.mu);
#else
    printf("SKIP threads: built without POSIX threads\n");
#endif
    gpt_model_free(g_model);
    free(g_ref);
    free(block);
    return test_summary();
}
