/*
 * test_alloc.c - the library's memory, counted and failed through its
 * allocator hooks.
 *
 * This program compiles gpt.c and tokenizer.c into itself with GPT_MALLOC,
 * GPT_REALLOC and GPT_FREE routed to a counting allocator that can fail the
 * k-th allocation (as SQLite's tests do), and checks:
 *   - gpt_context_memory is exactly what gpt_context_new allocates, for
 *     several shapes, thread counts and KV caches; evaluating allocates
 *     nothing more; freeing gives all of it back. This measures what the
 *     library allocates, not what the process happens to hold, so it holds
 *     on any host and under any emulator;
 *   - every allocation along each path (loading a model from memory and from
 *     a file, mapped and read, loading and using a tokenizer, creating a
 *     context, evaluating, scoring, generating (one sequence, several, and
 *     beam search), sampling, and the gpt
 *     command's converter, whose objects linked in here allocate through
 *     the same hooks: writing a random model, converting a Hugging Face
 *     folder and an llm.c file) fails cleanly when
 *     it is the one that fails: GPT_ERR_OUT_OF_MEMORY with a message,
 *     nothing leaked, and the objects used so far still work.
 * Each path prints how many allocations it has; every one of them is failed
 * once.
 */
#if (defined(__unix__) || defined(__APPLE__)) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif
#include <stddef.h>

static void *ta_malloc(size_t n);
static void *ta_realloc(void *p, size_t n);
static void ta_free(void *p);
#define GPT_MALLOC(n) ta_malloc(n)
#define GPT_REALLOC(p, n) ta_realloc((p), (n))
#define GPT_FREE(p) ta_free(p)
#include "../gpt.c"
#include "../tokenizer.c"

#include "convert.h"
#include "model_util.h"
#include "test.h"

#include <dirent.h>
#if defined(_WIN32)
#include <direct.h>
#define mkdir(path, mode) _mkdir(path)
#else
#include <sys/stat.h>
#include <sys/types.h>
#endif

/* ---- the counting allocator ---- */

#define TA_HEADER 16 /* keeps malloc's 16-byte alignment */

static struct {
    int armed;      /* count (and fail) only while armed */
    long count;     /* allocations since armed */
    long fail_at;   /* 1-based allocation to fail; 0 = none */
    int failed;     /* the chosen allocation was failed */
    size_t live;    /* bytes allocated and not freed (armed or not) */
} ta;

static int ta_should_fail(void)
{
    if (!ta.armed) return 0;
    ta.count++;
    if (ta.fail_at > 0 && ta.count == ta.fail_at) {
        ta.failed = 1;
        return 1;
    }
    return 0;
}

static void *ta_malloc(size_t n)
{
    unsigned char *p;
    if (ta_should_fail()) return NULL;
    p = (unsigned char *)malloc(n + TA_HEADER);
    if (!p) return NULL;
    memcpy(p, &n, sizeof n);
    ta.live += n;
    return p + TA_HEADER;
}

static void *ta_realloc(void *old, size_t n)
{
    unsigned char *p, *base = old ? (unsigned char *)old - TA_HEADER : NULL;
    size_t was = 0;
    if (ta_should_fail()) return NULL;
    if (base) memcpy(&was, base, sizeof was);
    p = (unsigned char *)realloc(base, n + TA_HEADER);
    if (!p) return NULL;
    memcpy(p, &n, sizeof n);
    ta.live += n;
    ta.live -= was;
    return p + TA_HEADER;
}

static void ta_free(void *q)
{
    size_t n;
    unsigned char *base;
    if (!q) return;
    base = (unsigned char *)q - TA_HEADER;
    memcpy(&n, base, sizeof n);
    ta.live -= n;
    free(base);
}

static void ta_arm(long fail_at)
{
    ta.armed = 1;
    ta.count = 0;
    ta.fail_at = fail_at;
    ta.failed = 0;
}

static void ta_disarm(void) { ta.armed = 0; }

/* ---- the paths ---- */

/* A path runs one operation with the allocator armed (and its setup and
 * checks disarmed). It returns the operation's status and leaves its
 * message in msg; when the operation fails it checks that what it used
 * still works, and reports a problem in msg with GPT_ERR_FORMAT. */
typedef gpt_status (*path_fn)(void *arg, char *msg, size_t cap);

typedef struct fixture {
    unsigned char *ckpt; /* a random model's checkpoint */
    size_t ckpt_len;
    gpt_model *model;    /* loaded from it */
} fixture;

static gpt_status path_model_load_memory(void *arg, char *msg, size_t cap)
{
    fixture *f = (fixture *)arg;
    gpt_error err;
    gpt_model *m;
    ta_arm(ta.fail_at);
    m = gpt_model_load_memory(f->ckpt, f->ckpt_len, &err);
    ta_disarm();
    if (!m) {
        snprintf(msg, cap, "%s", err.message);
        return err.status;
    }
    gpt_model_free(m);
    return GPT_OK;
}

static gpt_status load_file(const char *path, int no_mmap, char *msg, size_t cap)
{
    gpt_load_params lp;
    gpt_error err;
    gpt_model *m;
    memset(&lp, 0, sizeof lp);
    lp.no_mmap = no_mmap;
    ta_arm(ta.fail_at);
    m = gpt_model_load_ex(path, &lp, &err);
    ta_disarm();
    if (!m) {
        snprintf(msg, cap, "%s", err.message);
        return err.status;
    }
    gpt_model_free(m);
    return GPT_OK;
}

static gpt_status path_model_load_mapped(void *arg, char *msg, size_t cap)
{
    (void)arg;
    return load_file("tests/data/ckpt/l2_h3_c36_t64_v300_q8_0.bin", 0, msg, cap);
}

static gpt_status path_model_load_read(void *arg, char *msg, size_t cap)
{
    (void)arg;
    return load_file("tests/data/ckpt/l2_h3_c36_t64_v300_bf16.bin", 1, msg, cap);
}

static gpt_status path_tokenizer_load(void *arg, char *msg, size_t cap)
{
    gpt_error err;
    gpt_tokenizer *t;
    (void)arg;
    ta_arm(ta.fail_at);
    t = gpt_tokenizer_load(GPT2_VOCAB, GPT2_MERGES, &err);
    ta_disarm();
    if (!t) {
        snprintf(msg, cap, "%s", err.message);
        return err.status;
    }
    gpt_tokenizer_free(t);
    return GPT_OK;
}

/* A text long enough for the encoder's cache (over 4 KB), with a word too
 * long for its small-piece path, so that encoding allocates. The cache is
 * optional: without memory for it, encoding goes on without, and must give
 * the same ids. */
static char long_text[6200];

static gpt_status path_tokenize(void *arg, char *msg, size_t cap)
{
    fixture *f = (fixture *)arg;
    const gpt_tokenizer *t = gpt_model_tokenizer(f->model);
    static int ids[8192], want[8192];
    static int n_want = -1;
    size_t len = strlen(long_text);
    int n;
    if (n_want < 0) n_want = gpt_tokenize(t, long_text, len, want, 8192);
    ta_arm(ta.fail_at);
    n = gpt_tokenize(t, long_text, len, ids, 8192);
    ta_disarm();
    if (n >= 0 && (n != n_want || memcmp(ids, want, sizeof(int) * (size_t)n) != 0)) {
        snprintf(msg, cap, "gpt_tokenize gave other ids with allocation %ld failed", ta.fail_at);
        return GPT_ERR_FORMAT;
    }
    if (n < 0) {
        snprintf(msg, cap, "gpt_tokenize returned %s", gpt_status_name((gpt_status)n));
        if (gpt_tokenize(t, long_text, len, ids, 8192) <= 0) {
            snprintf(msg, cap, "the tokenizer does not work after a failed allocation");
            return GPT_ERR_FORMAT;
        }
        return (gpt_status)n;
    }
    return GPT_OK;
}

static gpt_status path_context_new(void *arg, char *msg, size_t cap)
{
    fixture *f = (fixture *)arg;
    gpt_context_params cp = gpt_context_defaults();
    gpt_error err;
    gpt_context *c;
    cp.n_threads = 2;
    ta_arm(ta.fail_at);
    c = gpt_context_new(f->model, &cp, &err);
    ta_disarm();
    if (!c) {
        snprintf(msg, cap, "%s", err.message);
        return err.status;
    }
    gpt_context_free(c);
    return GPT_OK;
}

/* Evaluating and scoring allocate nothing: their memory is the context's. */
static gpt_status path_eval_and_score(void *arg, char *msg, size_t cap)
{
    fixture *f = (fixture *)arg;
    gpt_context *c = gpt_context_new(f->model, NULL, NULL);
    int ids[40], i;
    float lp[39];
    gpt_status st;
    if (!c) return GPT_ERR_OUT_OF_MEMORY;
    for (i = 0; i < 40; i++) ids[i] = (i * 7 + 3) % 300;
    ta_arm(ta.fail_at);
    st = gpt_eval(c, ids, 20);
    if (st == GPT_OK) st = gpt_eval(c, ids + 20, 1);
    if (st == GPT_OK) st = gpt_score(c, ids, 40, lp);
    ta_disarm();
    snprintf(msg, cap, "%s", gpt_context_error(c));
    gpt_context_free(c);
    return st;
}

static int on_text_count(const char *text, size_t len, void *user)
{
    (void)text;
    *(size_t *)user += len;
    return 0;
}

static gpt_status path_generate(void *arg, char *msg, size_t cap)
{
    fixture *f = (fixture *)arg;
    gpt_context *c = gpt_context_new(f->model, NULL, NULL);
    gpt_generate_params gp = gpt_generate_defaults();
    const char *stops[2] = {"xyz", "\n\n"};
    size_t got = 0;
    gpt_status st;
    if (!c) return GPT_ERR_OUT_OF_MEMORY;
    gp.max_new_tokens = 12;
    gp.stop = stops;
    gp.n_stop = 2;
    gp.repetition_penalty = 1.2f;
    ta_arm(ta.fail_at);
    st = gpt_generate(c, "hello there", &gp, on_text_count, &got);
    ta_disarm();
    snprintf(msg, cap, "%s", gpt_context_error(c));
    if (st != GPT_OK) {
        /* a refused generation appends nothing: the context is as it was */
        if (gpt_context_n_past(c) != 0 || got != 0) {
            snprintf(msg, cap, "a failed generation left %d positions and delivered %lu bytes",
                     gpt_context_n_past(c), (unsigned long)got);
            st = GPT_ERR_FORMAT;
        } else if (gpt_generate(c, "hello there", &gp, NULL, NULL) != GPT_OK) {
            snprintf(msg, cap, "the context does not generate after a failed allocation: %s", gpt_context_error(c));
            st = GPT_ERR_FORMAT;
        }
    }
    gpt_context_free(c);
    return st;
}

static int on_piece_count(const gpt_piece *piece, void *user)
{
    *(size_t *)user += piece->len;
    return 0;
}

/* Many sequences: three sampled continuations with log-probabilities, then
 * beam search with three beams, in a context of four sequences. */
static void clear_all(gpt_context *c)
{
    int i;
    for (i = 0; i < gpt_context_n_seq(c); i++) gpt_seq_clear(c, i);
}

static gpt_status path_generate_many(void *arg, char *msg, size_t cap)
{
    fixture *f = (fixture *)arg;
    gpt_context_params cp = gpt_context_defaults();
    gpt_generate_params gp = gpt_generate_defaults();
    gpt_context *c;
    size_t got = 0;
    gpt_status st;
    int round;
    cp.n_seq = 4;
    c = gpt_context_new(f->model, &cp, NULL);
    if (!c) return GPT_ERR_OUT_OF_MEMORY;
    gp.max_new_tokens = 8;
    gp.n_logprobs = 3;
    gp.no_repeat_ngram_size = 2;
    for (round = 0; round < 2; round++) {
        if (round == 0) gp.n_sequences = 3;
        else {
            gp.n_sequences = 2;
            gp.num_beams = 3;
            gp.do_sample = 0;
        }
        clear_all(c);
        ta_arm(ta.fail_at);
        st = gpt_generate_pieces(c, "hello there", &gp, on_piece_count, &got, NULL);
        ta_disarm();
        snprintf(msg, cap, "%s", gpt_context_error(c));
        if (st != GPT_OK) {
            clear_all(c);
            if (gpt_generate_pieces(c, "hello there", &gp, NULL, NULL, NULL) != GPT_OK) {
                snprintf(msg, cap, "the context does not generate after a failed allocation: %s",
                         gpt_context_error(c));
                st = GPT_ERR_FORMAT;
            }
            break;
        }
    }
    gpt_context_free(c);
    return st;
}

static gpt_status path_sampler(void *arg, char *msg, size_t cap)
{
    gpt_generate_params gp = gpt_generate_defaults();
    gpt_error err;
    gpt_sampler *s;
    (void)arg;
    ta_arm(ta.fail_at);
    s = gpt_sampler_new(&gp, 300, &err);
    ta_disarm();
    if (!s) {
        snprintf(msg, cap, "%s", err.message);
        return err.status;
    }
    gpt_sampler_free(s);
    return GPT_OK;
}

/* ---- the converter (gpt convert), linked from the command's objects ---- */

static char convert_dir[512], convert_out[600];

/* No file is left in the output folder: neither the output nor the
 * temporary file it is written through. */
static int convert_dir_is_empty(void)
{
    DIR *d = opendir(convert_dir);
    struct dirent *e;
    int n = 0;
    if (!d) return 0;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) n++;
    closedir(d);
    return n == 0;
}

static gpt_status convert_finish(gpt_status st, const gpt_error *err, char *msg, size_t cap)
{
    snprintf(msg, cap, "%s", err->message);
    if (st == GPT_OK) {
        gpt_model *m = gpt_model_load(convert_out, NULL);
        if (!m) {
            snprintf(msg, cap, "the converted file does not load");
            return GPT_ERR_FORMAT;
        }
        gpt_model_free(m);
        remove(convert_out);
    } else if (!convert_dir_is_empty()) {
        snprintf(msg, cap, "a failed conversion left a file in %s", convert_dir);
        return GPT_ERR_FORMAT;
    }
    return st;
}

static gpt_status path_write_random(void *arg, char *msg, size_t cap)
{
    gpt_error err;
    unsigned char *buf;
    size_t len;
    (void)arg;
    err.message[0] = 0;
    ta_arm(ta.fail_at);
    buf = random_checkpoint(2, 2, 32, 16, 300, 3, GPT_DTYPE_Q8_0, &len, &err);
    ta_disarm();
    snprintf(msg, cap, "%s", err.message);
    if (!buf) return err.status;
    gpt__free(buf);
    return GPT_OK;
}

static gpt_status path_convert_hf(void *arg, char *msg, size_t cap)
{
    gpt_error err;
    ckpt_spec spec;
    gpt_status st;
    hf_model *m;
    (void)arg;
    ta_arm(ta.fail_at);
    m = hf_open("tests/data/hf/l4_h2_c24_f32_sharded", &err);
    if (m) {
        hf_spec(m, &spec);
        spec.dtype = GPT_DTYPE_Q8_0;
        st = ckpt_write_file(convert_out, &spec, hf_source, m, 1, 0, &err);
        hf_close(m);
    } else st = err.status;
    ta_disarm();
    return convert_finish(st, &err, msg, cap);
}

static gpt_status path_convert_llmc(void *arg, char *msg, size_t cap)
{
    gpt_error err;
    ckpt_spec spec;
    gpt_status st;
    llmc_model *m;
    (void)arg;
    ta_arm(ta.fail_at);
    m = llmc_open("tests/data/llmc/l3_h3_c24_t32_v300_bf16.bin", "tests/data/llmc/vocab.json",
                  "tests/data/llmc/merges.txt", &err);
    if (m) {
        llmc_spec(m, &spec);
        spec.dtype = GPT_DTYPE_BF16;
        st = ckpt_write_file(convert_out, &spec, llmc_source, m, 1, 0, &err);
        llmc_close(m);
    } else st = err.status;
    ta_disarm();
    return convert_finish(st, &err, msg, cap);
}

/* Runs a path once to count its allocations, then once more failing each
 * of them in turn. */
static void fail_each_allocation(const char *name, path_fn run, void *arg)
{
    size_t live0 = ta.live;
    long n, k, n_done_without = 0;
    char msg[400];
    gpt_status st;
    msg[0] = 0;
    ta.fail_at = 0;
    st = run(arg, msg, sizeof msg);
    CHECKF(st == GPT_OK, "%s without failures: %s: %s", name, gpt_status_name(st), msg);
    n = ta.count;
    CHECKF(ta.live == live0, "%s leaked %ld bytes", name, (long)(ta.live - live0));
    for (k = 1; k <= n; k++) {
        msg[0] = 0;
        ta.fail_at = k;
        st = run(arg, msg, sizeof msg);
        CHECKF(ta.failed, "%s: allocation %ld of %ld was not reached the second time", name, k, n);
        if (st == GPT_OK) n_done_without++; /* an optional allocation; the path checked its result */
        CHECKF(st == GPT_OK || (st == GPT_ERR_OUT_OF_MEMORY && msg[0]),
               "%s: failing allocation %ld of %ld gave %s: \"%s\" (expected GPT_ERR_OUT_OF_MEMORY and a message)",
               name, k, n, gpt_status_name(st), msg);
        CHECKF(ta.live == live0, "%s: failing allocation %ld of %ld leaked %ld bytes", name, k, n,
               (long)(ta.live - live0));
    }
    ta.fail_at = 0;
    printf("# %s: %ld allocations, each failed once: GPT_ERR_OUT_OF_MEMORY%s, nothing leaked\n", name, n,
           n_done_without ? " (or the same result without an optional one)" : "");
}

static fixture fx;

static int fixture_init(void)
{
    size_t i;
    if (fx.model) return 1;
    for (i = 0; i + 1 < sizeof long_text; i++) long_text[i] = i >= 3000 && i < 3150 ? 'q' : "the words, "[i % 11];
    long_text[sizeof long_text - 1] = 0;
    fx.ckpt = random_checkpoint(2, 2, 32, 64, 300, 9, GPT_DTYPE_F32, &fx.ckpt_len, NULL);
    if (!fx.ckpt) return 0;
    fx.model = gpt_model_load_memory(fx.ckpt, fx.ckpt_len, NULL);
    return fx.model != NULL;
}

TEST(every_allocation_fails_cleanly)
{
    CHECK(fixture_init());
    fail_each_allocation("gpt_model_load_memory", path_model_load_memory, &fx);
    fail_each_allocation("gpt_model_load (mapped)", path_model_load_mapped, &fx);
    fail_each_allocation("gpt_model_load_ex (read)", path_model_load_read, &fx);
    fail_each_allocation("gpt_tokenizer_load", path_tokenizer_load, &fx);
    fail_each_allocation("gpt_tokenize", path_tokenize, &fx);
    fail_each_allocation("gpt_context_new (2 threads)", path_context_new, &fx);
    fail_each_allocation("gpt_sampler_new", path_sampler, &fx);
    fail_each_allocation("gpt_generate", path_generate, &fx);
    fail_each_allocation("gpt_generate_pieces (3 sequences, then 3 beams)", path_generate_many, &fx);
}

TEST(every_allocation_of_the_converter_fails_cleanly)
{
    const char *build = getenv("BUILD");
    snprintf(convert_dir, sizeof convert_dir, "%s/tmp_alloc", build ? build : "build");
    mkdir(convert_dir, 0777);
    snprintf(convert_out, sizeof convert_out, "%s/converted.bin", convert_dir);
    remove(convert_out);
    fail_each_allocation("writing a random model (q8_0)", path_write_random, NULL);
    fail_each_allocation("converting a sharded Hugging Face folder to q8_0", path_convert_hf, NULL);
    fail_each_allocation("converting an llm.c bf16 file", path_convert_llmc, NULL);
    remove(convert_out);
}

TEST(evaluating_and_scoring_allocate_nothing)
{
    char msg[400];
    CHECK(fixture_init());
    ta.fail_at = 0;
    CHECKF(path_eval_and_score(&fx, msg, sizeof msg) == GPT_OK, "%s", msg);
    CHECKF(ta.count == 0, "gpt_eval and gpt_score made %ld allocations", ta.count);
}

/* gpt_context_memory is what gpt_context_new allocates, to the byte. */
TEST(context_memory_is_what_the_context_allocates)
{
    static const struct {
        int L, H, C, T, V;
        gpt_dtype dtype;
        int n_ctx, n_batch, threads, all_logits, kv;
    } cases[] = {
        {2, 4, 64, 1024, 600, GPT_DTYPE_F32, 0, 0, 1, 1, GPT_KV_AUTO},
        {2, 4, 64, 1024, 600, GPT_DTYPE_F32, 0, 64, 2, 1, GPT_KV_AUTO},
        {2, 4, 64, 1024, 600, GPT_DTYPE_F32, 100, 7, 3, 0, GPT_KV_F16},
        {1, 3, 36, 64, 300, GPT_DTYPE_Q8_0, 0, 0, 7, 0, GPT_KV_AUTO},
        {1, 3, 36, 64, 300, GPT_DTYPE_BF16, 33, 5, 2, 1, GPT_KV_F32},
    };
    size_t i;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        gpt_model *m = random_model(cases[i].L, cases[i].H, cases[i].C, cases[i].T, cases[i].V, 5, cases[i].dtype,
                                    NULL);
        gpt_context_params cp = gpt_context_defaults();
        gpt_context *c;
        size_t stated, live0, took;
        int *ids, n, k;
        CHECK(m != NULL);
        cp.n_ctx = cases[i].n_ctx;
        cp.n_batch = cases[i].n_batch;
        cp.n_threads = cases[i].threads;
        cp.all_logits = cases[i].all_logits;
        cp.kv_type = cases[i].kv;
        stated = gpt_context_memory(m, &cp);
        live0 = ta.live;
        c = gpt_context_new(m, &cp, NULL);
        CHECK(c != NULL);
        took = ta.live - live0;
        printf("# case %lu: gpt_context_memory %lu bytes, gpt_context_new allocated %lu\n", (unsigned long)i,
               (unsigned long)stated, (unsigned long)took);
        CHECKF(took == stated, "case %lu: gpt_context_new allocated %lu bytes, gpt_context_memory says %lu",
               (unsigned long)i, (unsigned long)took, (unsigned long)stated);
        n = gpt_context_n_ctx(c);
        ids = (int *)malloc(sizeof(int) * (size_t)n);
        CHECK(ids != NULL);
        for (k = 0; k < n; k++) ids[k] = (k * 13 + 1) % cases[i].V;
        CHECK(gpt_eval(c, ids, n) == GPT_OK); /* every position */
        CHECKF(ta.live == live0 + took, "case %lu: evaluating allocated %ld bytes", (unsigned long)i,
               (long)(ta.live - live0 - took));
        free(ids);
        gpt_context_free(c);
        CHECKF(ta.live == live0, "case %lu: freeing the context left %ld bytes", (unsigned long)i,
               (long)(ta.live - live0));
        gpt_model_free(m);
    }
}

#if defined(__linux__) && defined(__x86_64__) && defined(MADV_HUGEPAGE)
/* The line `key` (such as "VmFlags:" or "Rss:") of the mapping in
 * /proc/self/smaps that holds address a, after the key (into out): 0 when
 * there is none. */
static int ta_smaps_line(uintptr_t a, const char *key, char *out, size_t cap)
{
    char line[512];
    int inside = 0, found = 0;
    FILE *f = fopen("/proc/self/smaps", "r");
    if (!f) return 0;
    while (!found && fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        char dash;
        if (sscanf(line, "%lx%c%lx", &lo, &dash, &hi) == 3 && dash == '-')
            inside = a >= (uintptr_t)lo && a < (uintptr_t)hi;
        else if (inside && strncmp(line, key, strlen(key)) == 0) {
            snprintf(out, cap, "%s", line + strlen(key));
            found = 1;
        }
    }
    fclose(f);
    return found;
}
#endif

/* A context's arena (its KV cache) is streamed by decoding: Linux is asked
 * for 2 MB pages for it (gpt__advise_huge), which smaps shows as the flag
 * "hg" of its mapping. (x86-64 only: the tests run natively there, while
 * qemu-user, which runs the ARM build, takes madvise and does nothing.) */
TEST(a_context_asks_for_2mb_pages)
{
#if defined(__linux__) && defined(__x86_64__) && defined(MADV_HUGEPAGE)
    gpt_model *m = random_model(4, 4, 256, 1024, 600, 5, GPT_DTYPE_F32, NULL);
    gpt_context_params cp = gpt_context_defaults();
    gpt_context *c;
    char flags[512] = "";
    size_t bytes;
    uintptr_t mid;
    CHECK(m != NULL);
    cp.n_ctx = 1024;
    c = gpt_context_new(m, &cp, NULL);
    CHECK(c != NULL);
    bytes = gpt_context_memory(m, &cp);
    CHECKF(bytes >= (size_t)8 << 20, "the arena is only %lu bytes", (unsigned long)bytes);
    mid = ((uintptr_t)c->arena + bytes / 2) & ~(((uintptr_t)2 << 20) - 1);
    if (!ta_smaps_line(mid, "VmFlags:", flags, sizeof flags))
        SKIP("/proc/self/smaps has no VmFlags for the arena");
    else
        CHECKF(strstr(flags, " hg") != NULL, "the arena's mapping has VmFlags:%s", flags);
    gpt_context_free(c);
    gpt_model_free(m);
#else
    SKIP("2 MB pages are asked for on Linux, and checked on x86-64");
#endif
}

#if defined(__linux__) && defined(__x86_64__) && defined(MADV_DONTNEED)
/* One checkpoint of `type` written to a file, mapped and evaluated next to
 * the same bytes loaded from memory: the logits must be the same and the
 * mapping must hold little of the file. Returns 0 where this build maps no
 * file, else 1 (failures are recorded, and everything is freed). */
static int ta_check_mapped(gpt_dtype type)
{
    const char *build = getenv("BUILD");
    char path[600], rss[128] = "";
    size_t len = 0;
    unsigned long rss_kb = 0;
    int tokens[3] = {1, 200, 7}, i, maps = 1, same = 1;
    unsigned char *buf = random_checkpoint(4, 4, 256, 64, 256, 9, type, &len, NULL);
    gpt_model *mapped = NULL, *copied = NULL;
    gpt_context *a = NULL, *b = NULL;
    FILE *f;
    snprintf(path, sizeof path, "%s/tests/mapped_%s.bin", build ? build : "build", gpt_dtype_name(type));
    EXPECTF(buf != NULL, "%s: writing the checkpoint", gpt_dtype_name(type));
    if (!buf) return 1;
    f = fopen(path, "wb");
    EXPECTF(f != NULL && fwrite(buf, 1, len, f) == len, "%s: writing %s", gpt_dtype_name(type), path);
    if (f) fclose(f);
    mapped = gpt_model_load(path, NULL);
    copied = gpt_model_load_memory(buf, len, NULL);
    EXPECTF(mapped != NULL && copied != NULL, "%s: loading", gpt_dtype_name(type));
    if (mapped && mapped->storage != GP_STORAGE_MMAP) maps = 0;
    if (mapped && copied && maps) {
        a = gpt_context_new(mapped, NULL, NULL);
        b = gpt_context_new(copied, NULL, NULL);
        EXPECTF(a != NULL && b != NULL, "%s: contexts", gpt_dtype_name(type));
    }
    if (a && b) {
        EXPECTF(gpt_eval(a, tokens, 3) == GPT_OK && gpt_eval(b, tokens, 3) == GPT_OK, "%s: evaluating",
                gpt_dtype_name(type));
        for (i = 0; i < 256; i++) same &= gpt_logits(a)[i] == gpt_logits(b)[i];
        EXPECTF(same, "%s: the mapped model's logits differ from the copied one's", gpt_dtype_name(type));
        /* wte's rows for the 3 tokens lie in the file's first 2 MB, which
         * one large folio (ext4 on Linux 6.x) maps whole; an eighth of the
         * file for the pages shared by tensors' ends */
        if (ta_smaps_line((uintptr_t)mapped->map_base, "Rss:", rss, sizeof rss) && sscanf(rss, "%lu", &rss_kb) == 1)
            EXPECTF(rss_kb * 1024 < (2u << 20) + len / 8, "%s: %lu KB of the %lu KB file resident",
                    gpt_dtype_name(type), rss_kb, (unsigned long)(len / 1024));
        else
            EXPECTF(0, "/proc/self/smaps shows no Rss for the mapping");
    }
    gpt_context_free(a);
    gpt_context_free(b);
    gpt_model_free(mapped);
    gpt_model_free(copied);
    gpt__free(buf);
    remove(path);
    return maps;
}
#endif

/* A mapped model packs or copies every tensor and lets go of the file's
 * pages (gp_pack_model): after evaluating, the mapping holds little more
 * than the pages of wte's rows that the embedding lookup read, and the
 * model computes the same logits as one loaded into memory. */
TEST(a_mapped_model_lets_go_of_the_file)
{
#if defined(__linux__) && defined(__x86_64__) && defined(MADV_DONTNEED)
    static const gpt_dtype types[] = {GPT_DTYPE_F32, GPT_DTYPE_F16, GPT_DTYPE_BF16, GPT_DTYPE_Q8_0};
    unsigned t;
    for (t = 0; t < sizeof types / sizeof types[0]; t++)
        if (!ta_check_mapped(types[t])) SKIP("this build maps no file");
#else
    SKIP("the resident pages of a mapping are checked on x86-64 Linux");
#endif
}

int main(void)
{
    RUN(a_context_asks_for_2mb_pages);
    RUN(a_mapped_model_lets_go_of_the_file);
    RUN(context_memory_is_what_the_context_allocates);
    RUN(evaluating_and_scoring_allocate_nothing);
    RUN(every_allocation_fails_cleanly);
    RUN(every_allocation_of_the_converter_fails_cleanly);
    if (fx.model) gpt_model_free(fx.model);
    gpt__free(fx.ckpt);
    return test_summary();
}
