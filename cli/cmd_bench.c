/*
 * cmd_bench.c - `gpt bench`: measures, in one run, the machine's memory read
 * bandwidth and FMA peak with the given thread count, then the model's
 * prompt and decode speed, and prints both as ratios to those limits.
 */
#if (defined(__unix__) || defined(__APPLE__)) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#define BENCH_PTHREADS 1
#elif defined(_WIN32)
#include <windows.h>
#define BENCH_WIN32 1
#endif

#if defined(__AVX512F__)
#include <immintrin.h>
#define BENCH_AVX512 1
#elif defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define BENCH_AVX2 1
#elif defined(__ARM_NEON) && defined(__aarch64__)
#include <arm_neon.h>
#define BENCH_NEON 1
#endif

static const char *intro =
    "usage: gpt bench [-m MODEL] [-t THREADS] [-p PROMPT_TOKENS] [-n GEN_TOKENS] [-d DEPTH]\n"
    "                 [-r REPEATS] [-B BATCH,...] [--kv TYPE] [--json]\n"
    "\n"
    "Measures, in one run and with the same threads: the machine's memory read\n"
    "bandwidth (a streaming read of a buffer much larger than the caches) and FMA\n"
    "peak (independent fused multiply-adds in registers), then the model's prompt\n"
    "processing (P tokens in one gpt_eval) and decoding (N tokens one at a time\n"
    "after D tokens of context, by default the prompt), each the median of R\n"
    "repeats. It reports tokens/s and the ratios\n"
    "  decode_roofline  = decode tok/s / (bandwidth / bytes of weights per token)\n"
    "  prefill_roofline = prompt tok/s / (FMA peak / FLOPs per prompt token)\n"
    "and decode_roofline_kv, which also counts the bytes attention reads from the\n"
    "KV cache (on average over the decoded positions): what decoding must read.\n"
    "The FMA peak and the bandwidth are the best of measurements before and\n"
    "between the repeats: the ratios are not flattered by a moment when other\n"
    "jobs took part of the machine.\n"
    "\n"
    "-B 1,2,4,8,16 measures batched decoding instead: for each B, B sequences of\n"
    "one context, each with its own P-token prompt (evaluated in one batch), then\n"
    "N tokens per sequence in B-wide steps (one gpt_eval_batch per step, a token\n"
    "for each sequence). One row (one JSON line) per B: decode tok/s over all B\n"
    "sequences and per sequence, and decode_roofline against the step's bound,\n"
    "the larger of weight bytes / bandwidth and B x FLOPs per token / FMA peak.\n"
    "\n";
/* ------------------------------------------------------------------------ */
/* Running a function on N threads                                          */

typedef struct job {
    void (*fn)(struct job *);
    int ith, nth;
    const unsigned char *buf;
    size_t len;
    double result;
    long iters;   /* fma_job: iterations */
    size_t ahead; /* read_job: bytes to prefetch ahead, 0 for none */
} job;

#if defined(BENCH_PTHREADS)
static void *job_main(void *arg)
{
    job *j = (job *)arg;
    j->fn(j);
    return NULL;
}
#elif defined(BENCH_WIN32)
static DWORD WINAPI job_main(LPVOID arg)
{
    job *j = (job *)arg;
    j->fn(j);
    return 0;
}
#endif

/* Runs jobs[0..n) at once (job 0 on this thread); returns the wall time. */
static double run_jobs(job *jobs, int n)
{
    double t0 = cli_now();
    int i, started = 1;
#if defined(BENCH_PTHREADS)
    pthread_t th[256];
    for (i = 1; i < n; i++)
        if (pthread_create(&th[i], NULL, job_main, &jobs[i]) == 0) started++;
        else break;
    jobs[0].fn(&jobs[0]);
    for (i = 1; i < started; i++) pthread_join(th[i], NULL);
#elif defined(BENCH_WIN32)
    HANDLE th[256];
    for (i = 1; i < n; i++) {
        th[i] = CreateThread(NULL, 0, job_main, &jobs[i], 0, NULL);
        if (!th[i]) break;
        started++;
    }
    jobs[0].fn(&jobs[0]);
    for (i = 1; i < started; i++) {
        WaitForSingleObject(th[i], INFINITE);
        CloseHandle(th[i]);
    }
#else
    for (i = 0; i < n; i++) jobs[i].fn(&jobs[i]);
    (void)started;
#endif
    return cli_now() - t0;
}

/* Reads this job's share of the buffer; the sum keeps the loads alive.
 * With j->ahead > 0, each step also prefetches into L2 the lines that many
 * bytes ahead. Which reads fastest depends on the machine and its moment:
 * on a Zen 4 host, a prefetch 1 KB ahead or none read up to 63 GB/s with 2
 * threads (31 GB/s with one) where 16 KB ahead, this loop's old distance,
 * read 51 (26), and dependent FMAs on the loads no faster than either.
 * So measure_bandwidth takes the best of both. */
#if defined(__GNUC__)
#define BENCH_PREFETCH(p, ahead, span)                                                                     \
    if (ahead) {                                                                                           \
        int pf_i;                                                                                          \
        for (pf_i = 0; pf_i < (span); pf_i += 64)                                                          \
            __builtin_prefetch((const void *)((uintptr_t)(p) + (uintptr_t)(ahead) + (uintptr_t)pf_i), 0, 2); \
    }
#else
#define BENCH_PREFETCH(p, ahead, span) ((void)(ahead))
#endif

static void read_job(job *j)
{
    size_t per = j->len / (size_t)j->nth / 256 * 256, ahead = j->ahead;
    const unsigned char *p = j->buf + per * (size_t)j->ith, *end = p + per;
#if defined(BENCH_AVX512)
    __m512i a = _mm512_setzero_si512(), b = a, c = a, d = a;
    for (; p < end; p += 256) {
        BENCH_PREFETCH(p, ahead, 256);
        a = _mm512_xor_si512(a, _mm512_load_si512((const void *)p));
        b = _mm512_xor_si512(b, _mm512_load_si512((const void *)(p + 64)));
        c = _mm512_xor_si512(c, _mm512_load_si512((const void *)(p + 128)));
        d = _mm512_xor_si512(d, _mm512_load_si512((const void *)(p + 192)));
    }
    a = _mm512_xor_si512(_mm512_xor_si512(a, b), _mm512_xor_si512(c, d));
    j->result = (double)(_mm512_reduce_add_epi64(a) & 0xff);
#elif defined(BENCH_AVX2)
    __m256i a = _mm256_setzero_si256(), b = a, c = a, d = a;
    for (; p < end; p += 128) {
        BENCH_PREFETCH(p, ahead, 128);
        a = _mm256_xor_si256(a, _mm256_load_si256((const __m256i *)(const void *)p));
        b = _mm256_xor_si256(b, _mm256_load_si256((const __m256i *)(const void *)(p + 32)));
        c = _mm256_xor_si256(c, _mm256_load_si256((const __m256i *)(const void *)(p + 64)));
        d = _mm256_xor_si256(d, _mm256_load_si256((const __m256i *)(const void *)(p + 96)));
    }
    a = _mm256_xor_si256(_mm256_xor_si256(a, b), _mm256_xor_si256(c, d));
    j->result = (double)(_mm256_extract_epi64(a, 0) & 0xff);
#elif defined(BENCH_NEON)
    uint64x2_t a = vdupq_n_u64(0), b = a, c = a, d = a;
    (void)ahead;
    for (; p < end; p += 64) {
        a = veorq_u64(a, vld1q_u64((const uint64_t *)(const void *)p));
        b = veorq_u64(b, vld1q_u64((const uint64_t *)(const void *)(p + 16)));
        c = veorq_u64(c, vld1q_u64((const uint64_t *)(const void *)(p + 32)));
        d = veorq_u64(d, vld1q_u64((const uint64_t *)(const void *)(p + 48)));
    }
    a = veorq_u64(veorq_u64(a, b), veorq_u64(c, d));
    j->result = (double)(vgetq_lane_u64(a, 0) & 0xff);
#else
    uint64_t s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int k;
    (void)ahead;
    for (; p < end; p += 64)
        for (k = 0; k < 8; k++) {
            uint64_t v;
            memcpy(&v, p + 8 * k, 8);
            s[k] ^= v;
        }
    j->result = (double)((s[0] ^ s[1] ^ s[2] ^ s[3] ^ s[4] ^ s[5] ^ s[6] ^ s[7]) & 0xff);
#endif
}

/* FLOPs per iteration of fma_job: 12 independent accumulators. */
#if defined(BENCH_AVX512)
#define FMA_LANES 16
#elif defined(BENCH_AVX2) || defined(BENCH_NEON)
#define FMA_LANES 8
#else
#define FMA_LANES 1
#endif
#define FMA_FLOPS_PER_ITER (12.0 * FMA_LANES * 2.0)

static void fma_job(job *j)
{
    long i, n = j->iters;
#if defined(BENCH_AVX512)
    /* distinct starting values: equal chains would be merged into one by
     * the compiler, and the loop would measure a twelfth of the work */
    __m512 x = _mm512_set1_ps(0.999999f), y = _mm512_set1_ps(1e-7f);
    __m512 a0 = _mm512_set1_ps(1.0f + j->ith), a1 = _mm512_set1_ps(1.1f), a2 = _mm512_set1_ps(1.2f),
           a3 = _mm512_set1_ps(1.3f), a4 = _mm512_set1_ps(1.4f), a5 = _mm512_set1_ps(1.5f), a6 = _mm512_set1_ps(1.6f),
           a7 = _mm512_set1_ps(1.7f), a8 = _mm512_set1_ps(1.8f), a9 = _mm512_set1_ps(1.9f), a10 = _mm512_set1_ps(2.0f),
           a11 = _mm512_set1_ps(2.1f);
    for (i = 0; i < n; i++) {
        a0 = _mm512_fmadd_ps(a0, x, y); a1 = _mm512_fmadd_ps(a1, x, y); a2 = _mm512_fmadd_ps(a2, x, y);
        a3 = _mm512_fmadd_ps(a3, x, y); a4 = _mm512_fmadd_ps(a4, x, y); a5 = _mm512_fmadd_ps(a5, x, y);
        a6 = _mm512_fmadd_ps(a6, x, y); a7 = _mm512_fmadd_ps(a7, x, y); a8 = _mm512_fmadd_ps(a8, x, y);
        a9 = _mm512_fmadd_ps(a9, x, y); a10 = _mm512_fmadd_ps(a10, x, y); a11 = _mm512_fmadd_ps(a11, x, y);
    }
    a0 = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                       _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)));
    a0 = _mm512_add_ps(a0, _mm512_add_ps(_mm512_add_ps(a8, a9), _mm512_add_ps(a10, a11)));
    j->result = (double)_mm512_reduce_add_ps(a0);
#elif defined(BENCH_AVX2)
    __m256 x = _mm256_set1_ps(0.999999f), y = _mm256_set1_ps(1e-7f);
    __m256 a0 = _mm256_set1_ps(1.0f + j->ith), a1 = _mm256_set1_ps(1.1f), a2 = _mm256_set1_ps(1.2f),
           a3 = _mm256_set1_ps(1.3f), a4 = _mm256_set1_ps(1.4f), a5 = _mm256_set1_ps(1.5f), a6 = _mm256_set1_ps(1.6f),
           a7 = _mm256_set1_ps(1.7f), a8 = _mm256_set1_ps(1.8f), a9 = _mm256_set1_ps(1.9f), a10 = _mm256_set1_ps(2.0f),
           a11 = _mm256_set1_ps(2.1f);
    float out[8];
    for (i = 0; i < n; i++) {
        a0 = _mm256_fmadd_ps(a0, x, y); a1 = _mm256_fmadd_ps(a1, x, y); a2 = _mm256_fmadd_ps(a2, x, y);
        a3 = _mm256_fmadd_ps(a3, x, y); a4 = _mm256_fmadd_ps(a4, x, y); a5 = _mm256_fmadd_ps(a5, x, y);
        a6 = _mm256_fmadd_ps(a6, x, y); a7 = _mm256_fmadd_ps(a7, x, y); a8 = _mm256_fmadd_ps(a8, x, y);
        a9 = _mm256_fmadd_ps(a9, x, y); a10 = _mm256_fmadd_ps(a10, x, y); a11 = _mm256_fmadd_ps(a11, x, y);
    }
    a0 = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                       _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
    a0 = _mm256_add_ps(a0, _mm256_add_ps(_mm256_add_ps(a8, a9), _mm256_add_ps(a10, a11)));
    _mm256_storeu_ps(out, a0);
    j->result = (double)out[0];
#elif defined(BENCH_NEON)
    float32x4_t x = vdupq_n_f32(0.999999f), y = vdupq_n_f32(1e-7f);
    float32x4_t a[24];
    int k;
    for (k = 0; k < 24; k++) a[k] = vdupq_n_f32(1.0f + 0.1f * k + (float)j->ith);
    for (i = 0; i < n; i++)
        for (k = 0; k < 24; k++) a[k] = vfmaq_f32(y, a[k], x);
    for (k = 1; k < 24; k++) a[0] = vaddq_f32(a[0], a[k]);
    j->result = (double)vgetq_lane_f32(a[0], 0);
#else
    float a[12];
    int k;
    for (k = 0; k < 12; k++) a[k] = 1.0f + 0.1f * k + (float)j->ith;
    for (i = 0; i < n; i++)
        for (k = 0; k < 12; k++) a[k] = a[k] * 0.999999f + 1e-7f;
    for (k = 1; k < 12; k++) a[0] += a[k];
    j->result = (double)a[0];
#endif
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef struct stats {
    double median, min, max;
} stats;

static stats summarize(double *v, int n)
{
    stats s;
    qsort(v, (size_t)n, sizeof(double), cmp_double);
    s.min = v[0];
    s.max = v[n - 1];
    s.median = n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
    return s;
}

/* A buffer much larger than the last-level cache, to stream from. */
typedef struct read_buffer {
    unsigned char *raw, *buf;
    size_t len;
} read_buffer;

static int read_buffer_init(read_buffer *rb)
{
    size_t i;
    rb->len = (size_t)512 << 20;
    rb->raw = (unsigned char *)gpt__alloc(rb->len + 64);
    if (!rb->raw) return 0;
    rb->buf = rb->raw + (64 - (size_t)rb->raw % 64) % 64;
    /* on the 2 MB pages the library asks for its weights: a limit read on
     * 4 KB pages would understate what the memory delivers */
    gpt__advise_huge(rb->buf, rb->len);
    for (i = 0; i < rb->len; i += 4096) rb->buf[i] = (unsigned char)i; /* fault the pages in */
    memset(rb->buf, 1, rb->len);
    return 1;
}

/* Best read bandwidth in GB/s over `passes` pairs of reads of the buffer
 * (one prefetching 1 KB ahead, one without: see read_job), or `best` if
 * that is higher. */
static double measure_bandwidth(const read_buffer *rb, int threads, int passes, double best)
{
    job jobs[256];
    int r, t;
    for (r = 0; r < 2 * passes; r++) {
        double dt, gbs;
        for (t = 0; t < threads; t++) {
            jobs[t].fn = read_job;
            jobs[t].ith = t;
            jobs[t].nth = threads;
            jobs[t].buf = rb->buf;
            jobs[t].len = rb->len;
            jobs[t].ahead = r % 2 ? 0 : 1024;
        }
        dt = run_jobs(jobs, threads);
        gbs = (double)(rb->len / (size_t)threads / 256 * 256 * (size_t)threads) / dt / 1e9;
        if (gbs > best) best = gbs;
    }
    return best;
}

/* Best FMA throughput in GFLOP/s over `repeats` runs of ~0.2 s (after one
 * that sizes them), or `best` if that is higher. */
static double measure_peak(int threads, int repeats, double best)
{
    job jobs[256];
    long iters = 2000000;
    int r, t;
    for (r = 0; r < repeats + 1; r++) {
        double dt, gf;
        for (t = 0; t < threads; t++) {
            jobs[t].fn = fma_job;
            jobs[t].ith = t;
            jobs[t].nth = threads;
            jobs[t].iters = iters;
        }
        dt = run_jobs(jobs, threads);
        gf = FMA_FLOPS_PER_ITER * (double)iters * threads / dt / 1e9;
        if (r > 0 && gf > best) best = gf;
        if (r == 0 && dt < 0.1) iters = (long)((double)iters * 0.2 / (dt > 1e-4 ? dt : 1e-4));
    }
    return best;
}

/* ------------------------------------------------------------------------ */
/* Batched decoding (-B)                                                    */

#define BENCH_MAX_BATCHES 64
#define BENCH_MAX_BATCH 4096

/* "1,2,4,8,16" into sizes; 0, or a usage error's status. */
static int parse_batches(const char *list, int *sizes, int *n)
{
    const char *p = list;
    *n = 0;
    for (;;) {
        char *end;
        long v;
        if (!(*p >= '0' && *p <= '9'))
            return usage_error("bench", "-B (--batch-sizes) expects sizes in 1 .. %d separated by commas, "
                               "e.g. 1,2,4,8,16, not \"%s\"", BENCH_MAX_BATCH, list);
        v = strtol(p, &end, 10);
        if (v < 1 || v > BENCH_MAX_BATCH || (*end != ',' && *end != 0))
            return usage_error("bench", "-B (--batch-sizes) expects sizes in 1 .. %d separated by commas, "
                               "e.g. 1,2,4,8,16, not \"%s\"", BENCH_MAX_BATCH, list);
        if (*n == BENCH_MAX_BATCHES)
            return usage_error("bench", "-B (--batch-sizes) takes at most %d sizes", BENCH_MAX_BATCHES);
        sizes[(*n)++] = (int)v;
        if (*end == 0) return 0;
        p = end + 1;
    }
}

/* One B's measurements. */
typedef struct batch_row {
    int B;
    stats sp, sd; /* aggregate tok/s over the B sequences */
} batch_row;

/* What a bench run measures against, for the rows. */
typedef struct bench_setup {
    const gpt_model *m;
    gpt_context_params cp;
    int P, N, D, R;
    int threads;
    const read_buffer *rb;
} bench_setup;

/* The id at position i of sequence s: a different prompt for each. */
static int batch_id(int s, int i, int V)
{
    return (int)(((uint64_t)(i + 1) * 2654435761u + (uint64_t)s * 40503u) % (uint64_t)V);
}

/* Measures one B: the B prompts in one batch (once: they only set up the
 * cache), then R repeats of N B-wide decode steps at positions D .. D+N-1,
 * each repeat rewinding the sequences to D. Updates *bw and *peak with the
 * bandwidth and FMA peak measured between repeats. 0, or 1 after printing
 * the error. */
static int bench_batch(const bench_setup *su, int B, batch_row *row, double *bw, double *peak)
{
    gpt_config cfg = gpt_model_config(su->m);
    gpt_context_params cp = su->cp;
    gpt_context *c = NULL;
    gpt_error err;
    gpt_batch b;
    int P = su->P, N = su->N, D = su->D, R = su->R, V = cfg.n_vocab, hi = (P > D ? P : D) + N, rc = 1;
    int *tok = NULL, *seq = NULL, s, i, r, n;
    double t0, t1;
    double *pre = (double *)gpt__alloc(sizeof(double) * (size_t)R), *dec = (double *)gpt__alloc(sizeof(double) * (size_t)R);
    size_t cap = (size_t)B * (size_t)(P > D - P ? P : D - P);
    if (cap < (size_t)B) cap = (size_t)B;
    tok = (int *)gpt__alloc(sizeof(int) * cap);
    seq = (int *)gpt__alloc(sizeof(int) * cap);
    if (!pre || !dec || !tok || !seq) {
        fprintf(stderr, "gpt bench: out of memory\n");
        goto done;
    }
    /* every sequence has pages of its own for the positions it reaches */
    cp.n_seq = B;
    if ((long long)B * ((hi + 63) / 64) * 64 > INT_MAX) {
        fprintf(stderr, "gpt bench: batch %d: %d sequences of %d positions are more than a KV cache can hold\n", B,
                B, hi);
        goto done;
    }
    cp.kv_size = B * ((hi + 63) / 64) * 64;
    if (!(c = gpt_context_new(su->m, &cp, &err))) {
        fprintf(stderr, "gpt bench: batch %d: %s\n", B, err.message);
        goto done;
    }
    memset(&b, 0, sizeof b);
    b.tokens = tok;
    b.seq = seq;
    for (s = 0; s < B; s++) { /* warm up: page in the weights */
        tok[s] = batch_id(s, 0, V);
        seq[s] = s;
    }
    b.n = B;
    if (gpt_eval_batch(c, &b) != GPT_OK) goto fail;
    for (s = 0; s < B; s++) gpt_seq_clear(c, s);
    /* the prompts, once: every sequence's P ids in one batch */
    for (n = 0, s = 0; s < B; s++)
        for (i = 0; i < P; i++, n++) {
            tok[n] = batch_id(s, i, V);
            seq[n] = s;
        }
    b.n = n;
    t0 = cli_now();
    if (gpt_eval_batch(c, &b) != GPT_OK) goto fail;
    t1 = cli_now();
    pre[0] = (double)B * P / (t1 - t0);
    /* the context decoding starts from: part of the prompts, or more */
    if (D > P) {
        for (n = 0, s = 0; s < B; s++)
            for (i = P; i < D; i++, n++) {
                tok[n] = batch_id(s, i, V);
                seq[n] = s;
            }
        b.n = n;
        if (gpt_eval_batch(c, &b) != GPT_OK) goto fail;
    }
    for (r = 0; r < R; r++) {
        for (s = 0; s < B; s++) /* back to D: the positions decoded last time go */
            if (gpt_seq_rewind(c, s, D) != GPT_OK) goto fail;
        t0 = cli_now();
        for (i = 0; i < N; i++) {
            for (s = 0; s < B; s++) {
                tok[s] = batch_id(s, D + i, V);
                seq[s] = s;
            }
            b.n = B;
            if (gpt_eval_batch(c, &b) != GPT_OK) goto fail;
        }
        t1 = cli_now();
        for (s = 0; s < B; s++)
            if (gpt_seq_n_past(c, s) != D + N) { /* the figure would be for other positions */
                fprintf(stderr, "gpt bench: batch %d: sequence %d ended at position %d, not %d\n", B, s,
                        gpt_seq_n_past(c, s), D + N);
                goto done;
            }
        dec[r] = N > 0 ? (double)B * N / (t1 - t0) : 0;
        *bw = measure_bandwidth(su->rb, su->threads, 2, *bw);
        *peak = measure_peak(su->threads, 1, *peak);
    }
    row->B = B;
    row->sp = summarize(pre, 1);
    row->sd = summarize(dec, R);
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "gpt bench: batch %d: %s\n", B, gpt_context_error(c));
done:
    gpt_context_free(c);
    gpt__free(pre);
    gpt__free(dec);
    gpt__free(tok);
    gpt__free(seq);
    return rc;
}

/* -B: measures each B, then prints a row (a JSON line) per B against the
 * best bandwidth and FMA peak seen in the whole run. */
static int bench_batches(const gpt_model *m, gpt_context_params cp, const char *model, int P, int N, int D, int R,
                         int threads, int json, const int *batches, int n_batches, const read_buffer *rb, double bw,
                         double peak, double bytes_tok, double kv_bytes_tok, double flops_tok, double dflops_tok,
                         const char *kv_name)
{
    batch_row rows[BENCH_MAX_BATCHES];
    bench_setup su;
    gpt_config cfg = gpt_model_config(m);
    char *esc;
    int k;
    su.m = m;
    su.cp = cp;
    su.P = P;
    su.N = N;
    su.D = D;
    su.R = R;
    su.threads = threads;
    su.rb = rb;
    for (k = 0; k < n_batches; k++) {
        if (!json) fprintf(stderr, "batch %d...\n", batches[k]);
        if (bench_batch(&su, batches[k], &rows[k], &bw, &peak) != 0) return 1;
    }
    if (!(esc = (char *)gpt__alloc(6 * strlen(model) + 1))) {
        fprintf(stderr, "gpt bench: out of memory\n");
        return 1;
    }
    esc[cli_json_escape(model, strlen(model), esc)] = 0;
    if (!json) {
        printf("model     %s (%s, %.1fM parameters, %d layers, n_embd %d; KV cache %s)\n", model,
               gpt_dtype_name(cfg.dtype), (double)cfg.n_params / 1e6, cfg.n_layer, cfg.n_embd, kv_name);
        printf("machine   %d threads: read bandwidth %.1f GB/s, FMA peak %.1f GFLOP/s (best seen)\n", threads, bw,
               peak);
        printf("batches   each sequence: a %d-token prompt (all B in one batch, once), then %d tokens decoded at "
               "positions %d .. %d (median of %d)\n", P, N, D, D + N - 1, R);
        printf("%5s %13s %27s %14s %10s %8s %6s\n", "batch", "prefill tok/s", "decode tok/s (min .. max)",
               "tok/s per seq", "bound", "roofline", "+KV");
    }
    for (k = 0; k < n_batches; k++) {
        const batch_row *w = &rows[k];
        double B = w->B, bytes_step = bytes_tok + (B - 1) * cfg.n_embd * 4; /* one wpe row per sequence */
        double t_mem = bytes_step / (bw * 1e9), t_fma = B * dflops_tok / (peak * 1e9);
        double t_kv = (bytes_step + B * kv_bytes_tok) / (bw * 1e9);
        double steps = w->sd.median / B; /* steps per second */
        double roof = steps * (t_mem > t_fma ? t_mem : t_fma), roof_kv = steps * (t_kv > t_fma ? t_kv : t_fma);
        const char *bound = t_mem >= t_fma ? "bandwidth" : "compute";
        if (json) {
            printf("{\"model\": \"%s\", \"dtype\": \"%s\", \"threads\": %d, \"bandwidth_gbs\": %.2f, "
                   "\"peak_gflops\": %.1f, \"batch\": %d, \"prefill_tokens\": %d, \"prefill_tok_s\": %.2f, "
                   "\"prefill_tok_s_min\": %.2f, \"prefill_tok_s_max\": %.2f, \"decode_tokens\": %d, "
                   "\"decode_depth\": %d, \"decode_tok_s\": %.2f, \"decode_tok_s_min\": %.2f, "
                   "\"decode_tok_s_max\": %.2f, \"decode_tok_s_per_seq\": %.2f, \"bytes_per_token\": %.0f, "
                   "\"bytes_per_step\": %.0f, \"flops_per_token\": %.0f, \"decode_flops_per_token\": %.0f, "
                   "\"decode_bound\": \"%s\", \"decode_roofline\": %.3f, \"prefill_roofline\": %.3f, "
                   "\"repeats\": %d, \"kv_cache\": \"%s\", \"kv_bytes_per_token\": %.0f, "
                   "\"decode_roofline_kv\": %.3f}\n",
                   esc, gpt_dtype_name(cfg.dtype), threads, bw, peak, w->B, P, w->sp.median, w->sp.min, w->sp.max, N,
                   D, w->sd.median, w->sd.min, w->sd.max, w->sd.median / B, bytes_step / B, bytes_step, flops_tok,
                   dflops_tok, bound, roof, w->sp.median / (peak * 1e9 / flops_tok), R, kv_name, kv_bytes_tok,
                   roof_kv);
        } else {
            printf("%5d %13.1f %8.1f (%6.1f .. %6.1f) %14.1f %10s %8.2f %6.2f\n", w->B, w->sp.median, w->sd.median,
                   w->sd.min, w->sd.max, w->sd.median / B, bound, roof, roof_kv);
        }
    }
    gpt__free(esc);
    return 0;
}

int cmd_bench(int argc, char **argv)
{
    const char *model = NULL, *kv_name = "f32", *batch_list = NULL;
    int threads = 0, P = 0, N = -1, D = -1, R = 5, json = 0, no_mmap = 0, i, r, rc = 1, n_ids;
    int batches[BENCH_MAX_BATCHES], n_batches = 0;
    gpt_model *m = NULL;
    gpt_context *c = NULL;
    gpt_context_params cp = gpt_context_defaults();
    gpt_config cfg;
    gpt_error err;
    int *ids = NULL;
    double *pre = NULL, *dec = NULL, bw, peak, bytes_tok, kv_bytes_tok, flops_tok, dflops_tok, block_params;
    stats sp, sd;
    read_buffer rb = {NULL, NULL, 0};

    const cli_option options[] = {
        OPT_STRING("model", 'm', &model, "PATH", "checkpoint (default: models/demo.bin)"),
        OPT_INT("threads", 't', &threads, "N", 0, 256, "threads (default 0: one per CPU)"),
        OPT_INT("prompt", 'p', &P, "N", 1, INT_MAX, "prompt tokens (default 512, or half the context if\nthat is smaller)"),
        OPT_INT("gen", 'n', &N, "N", 0, INT_MAX, "decoded tokens (default 128, or what the context has\nroom for after D)"),
        OPT_INT("depth", 'd', &D, "D", 0, INT_MAX,
                "decode at positions D .. D+N-1 (default: P, right after\n"
                "the prompt; 0: from an empty context, as llama-bench's tg)"),
        OPT_INT("repeats", 'r', &R, "R", 1, 1000, "repeats of each measurement (default 5)"),
        OPT_CHOICE("kv", 0, &cp.kv_type, "TYPE", "auto|f16|f32", "KV cache: auto (f16 unless the weights are f32), f16, f32"),
        OPT_FLAG("kv-f16", 0, &cp.kv_type, GPT_KV_F16, "the same as --kv f16"),
        OPT_FLAG("no-mmap", 0, &no_mmap, 1, "read the model into memory instead of mapping it"),
        OPT_STRING("batch-sizes", 'B', &batch_list, "LIST",
                   "batched decoding for each size B in LIST (1,2,4,8,16):\nB sequences decoded in B-wide steps"),
        OPT_FLAG("json", 0, &json, 1, "print one JSON object instead of the table (with -B,\none per B and line)"),
        OPT_END};
    const cli_command cmd = {"bench", intro, options, NULL};

    if ((rc = cli_parse(&cmd, argc, argv)) >= 0) return rc;
    if (batch_list && (rc = parse_batches(batch_list, batches, &n_batches)) != 0) return rc;
    rc = 1;
    if (!(m = cli_load_model(model, no_mmap, &model))) return 1;
    cfg = gpt_model_config(m);
    /* defaults that fit the model's context: P at most half of it, N what
     * is left after D */
    if (P == 0) P = cfg.n_ctx / 2 < 512 ? (cfg.n_ctx / 2 > 0 ? cfg.n_ctx / 2 : 1) : 512;
    if (D < 0) D = P;
    if (N < 0) N = cfg.n_ctx - D < 128 ? (cfg.n_ctx - D > 0 ? cfg.n_ctx - D : 0) : 128;
    if (P > cfg.n_ctx || (long long)D + N > cfg.n_ctx) {
        if (P > cfg.n_ctx)
            fprintf(stderr, "gpt bench: a prompt of %d tokens exceeds the context of %d\n", P, cfg.n_ctx);
        else
            fprintf(stderr, "gpt bench: decoding %d tokens after %d of context exceeds the context of %d\n", N, D,
                    cfg.n_ctx);
        goto done;
    }
    n_ids = (P > D ? P : D) + N;
    cp.n_threads = threads;
    if (!(c = gpt_context_new(m, &cp, &err))) {
        fprintf(stderr, "gpt bench: %s\n", err.message);
        goto done;
    }
    threads = gpt_context_n_threads(c); /* the default when -t was not given */
    kv_name = gpt_context_kv_type(c) == GPT_KV_F16 ? "f16" : "f32";
    ids = (int *)gpt__alloc(sizeof(int) * (size_t)n_ids);
    pre = (double *)gpt__alloc(sizeof(double) * (size_t)R);
    dec = (double *)gpt__alloc(sizeof(double) * (size_t)R);
    if (!ids || !pre || !dec) goto done;
    for (i = 0; i < n_ids; i++) ids[i] = (int)((uint64_t)(i + 1) * 2654435761u % (uint64_t)cfg.n_vocab);

    /* Bytes of weights one decoded token reads: every tensor but the
     * position embedding, of which it reads one row. FLOPs of a prompt
     * token: two per block weight, the attention over the tokens before it
     * (averaged over the prompt), and the output head once per prompt. */
    {
        double C = cfg.n_embd, L = cfg.n_layer, V = cfg.n_vocab, T = cfg.n_ctx;
        double wpe_bytes = T * C * 4; /* gpt convert keeps wpe in f32 */
        block_params = L * 12 * C * C;
        bytes_tok = (double)cfg.weight_bytes - wpe_bytes + C * 4;
        /* keys and values of every layer, one n_embd row each per position */
        kv_bytes_tok = L * 2 * C * (gpt_context_kv_type(c) == GPT_KV_F16 ? 2 : 4) * (D + (N + 1) / 2.0);
        flops_tok = 2 * block_params + 4 * L * C * (P + 1) / 2.0 + 2 * V * C / P;
        /* a decoded token: the block weights, attention over its positions
         * (on average over the decoded ones), and the output head */
        dflops_tok = 2 * block_params + 4 * L * C * (D + (N + 1) / 2.0) + 2 * V * C;
    }
    if (!read_buffer_init(&rb)) {
        fprintf(stderr, "gpt bench: out of memory for the 512 MiB bandwidth buffer\n");
        goto done;
    }
    if (!json) fprintf(stderr, "measuring memory bandwidth and FMA peak with %d threads...\n", threads);
    measure_bandwidth(&rb, threads, 1, 0); /* warm-up */
    bw = measure_bandwidth(&rb, threads, R, 0);
    peak = measure_peak(threads, R, 0);
    if (n_batches > 0) {
        rc = bench_batches(m, cp, model, P, N, D, R, threads, json, batches, n_batches, &rb, bw, peak, bytes_tok,
                           kv_bytes_tok, flops_tok, dflops_tok, kv_name);
        goto done;
    }

    gpt_eval(c, ids, P < 8 ? P : 8); /* warm up: page in the weights */
    for (r = 0; r < R; r++) {
        double t0, t1;
        gpt_rewind(c, 0);
        t0 = cli_now();
        if (gpt_eval(c, ids, P) != GPT_OK) {
            fprintf(stderr, "gpt bench: %s\n", gpt_context_error(c));
            goto done;
        }
        t1 = cli_now();
        pre[r] = P / (t1 - t0);
        /* the context decoding starts from: part of the prompt, or more */
        if (gpt_rewind(c, D < P ? D : P) != GPT_OK || (D > P && gpt_eval(c, ids + P, D - P) != GPT_OK)) {
            fprintf(stderr, "gpt bench: %s\n", gpt_context_error(c));
            goto done;
        }
        t0 = cli_now();
        for (i = 0; i < N; i++)
            if (gpt_eval(c, ids + D + i, 1) != GPT_OK) {
                fprintf(stderr, "gpt bench: %s\n", gpt_context_error(c));
                goto done;
            }
        t1 = cli_now();
        if (gpt_context_n_past(c) != D + N) { /* the figure would be for other positions */
            fprintf(stderr, "gpt bench: decoding ended at position %d, not %d\n", gpt_context_n_past(c), D + N);
            goto done;
        }
        dec[r] = N > 0 ? N / (t1 - t0) : 0;
        /* Other jobs on a shared machine take a varying share of its
         * bandwidth and cores: the limits are the best seen at any point
         * of the run (a peak measured at half while another guest ran on
         * the cores' siblings once gave a roofline of 1.26). */
        bw = measure_bandwidth(&rb, threads, 2, bw);
        peak = measure_peak(threads, 1, peak);
    }
    sp = summarize(pre, R);
    sd = summarize(dec, R);

    if (json) {
        printf("{\"model\": \"%s\", \"dtype\": \"%s\", \"threads\": %d, \"bandwidth_gbs\": %.2f, \"peak_gflops\": %.1f, "
               "\"prefill_tokens\": %d, \"prefill_tok_s\": %.2f, \"prefill_tok_s_min\": %.2f, \"prefill_tok_s_max\": %.2f, "
               "\"decode_tokens\": %d, \"decode_depth\": %d, \"decode_tok_s\": %.2f, \"decode_tok_s_min\": %.2f, \"decode_tok_s_max\": %.2f, "
               "\"bytes_per_token\": %.0f, \"flops_per_token\": %.0f, \"decode_roofline\": %.3f, "
               "\"prefill_roofline\": %.3f, \"repeats\": %d, \"kv_cache\": \"%s\", \"kv_bytes_per_token\": %.0f, "
               "\"decode_roofline_kv\": %.3f}\n",
               model, gpt_dtype_name(cfg.dtype), threads, bw, peak, P, sp.median, sp.min, sp.max, N, D, sd.median,
               sd.min, sd.max, bytes_tok, flops_tok, sd.median / (bw * 1e9 / bytes_tok),
               sp.median / (peak * 1e9 / flops_tok), R, kv_name, kv_bytes_tok,
               sd.median / (bw * 1e9 / (bytes_tok + kv_bytes_tok)));
    } else {
        printf("model     %s (%s, %.1fM parameters, %d layers, n_embd %d; KV cache %s)\n", model,
               gpt_dtype_name(cfg.dtype), (double)cfg.n_params / 1e6, cfg.n_layer, cfg.n_embd, kv_name);
        printf("machine   %d threads: read bandwidth %.1f GB/s (best of %d), FMA peak %.1f GFLOP/s (best of %d)\n",
               threads, bw, 3 * R, peak, 2 * R);
        printf("prefill   %4d tokens  %8.1f tok/s (median of %d, %.1f .. %.1f)  %.3f GFLOP/token  roofline %.2f\n", P,
               sp.median, R, sp.min, sp.max, flops_tok / 1e9, sp.median / (peak * 1e9 / flops_tok));
        printf("decode    %4d tokens  %8.1f tok/s (median of %d, %.1f .. %.1f)  %.1f MB/token      roofline %.2f\n", N,
               sd.median, R, sd.min, sd.max, bytes_tok / 1e6, sd.median / (bw * 1e9 / bytes_tok));
        if (N > 0)
            printf("          at positions %d .. %d, with the KV cache's %.1f MB/token: roofline %.2f\n", D, D + N - 1,
                   kv_bytes_tok / 1e6, sd.median / (bw * 1e9 / (bytes_tok + kv_bytes_tok)));
    }
    rc = 0;
done:
    gpt__free(rb.raw);
    gpt__free(ids);
    gpt__free(pre);
    gpt__free(dec);
    gpt_context_free(c);
    gpt_model_free(m);
    return rc;
}
