/*
 * test_kernels.c - the matrix-product kernels alone, on odd shapes.
 *
 * This program compiles gpt.c into itself (as test_alloc.c does) to call
 * the kernels directly, and checks, for every weight type:
 *   - the SIMD kernels (gp_linear_simd) against the scalar references
 *     (gp_linear_ref) within 1e-5 relative, on K not a multiple of 32 or
 *     16, 1 to 13 rows of x, ragged groups of rows of W;
 *   - with rounded activations (issue 16: q8_0 in integer dot products,
 *     bf16 in vdpbf16ps), the scalar twins against the arithmetic they
 *     stand for, computed in double from the same rounded integers and bf16
 *     values, and the rounding itself (int8 codes within one step of
 *     x / d, bf16 to nearest even);
 *   - batch invariance inside the kernel: each row of x gives the same bits
 *     alone, in any batch, and whatever range of rows of W a call computes.
 */
#include "../gpt.c"
#include "../tokenizer.c"

#include "test.h"

static uint64_t tk_rng = 0x9e3779b97f4a7c15u;
static float frand(void) /* uniform in [-1, 1) */
{
    tk_rng ^= tk_rng << 13;
    tk_rng ^= tk_rng >> 7;
    tk_rng ^= tk_rng << 17;
    return (float)((double)(tk_rng >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

/* A random J x K matrix of type t, with its storage. */
typedef struct kt_matrix {
    gp_tensor W;
    void *data, *q, *scales, *packed;
} kt_matrix;

/* The packed copy the loader makes of a model's matrices, where this build
 * packs the type. */
static int kt_pack(kt_matrix *m)
{
    size_t bytes = gp_packed_bytes(&m->W);
    if (!bytes) return 0;
    m->packed = malloc(bytes);
    if (!m->packed) return -1;
    gp_pack(&m->W, (unsigned char *)m->packed);
    return 0;
}

static int kt_make(kt_matrix *m, gpt_dtype t, int J, int K)
{
    int j, k, nb = (K + 31) / 32;
    memset(m, 0, sizeof *m);
    m->W.type = t;
    m->W.rows = J;
    m->W.cols = K;
    m->W.nb = nb;
    if (t == GPT_DTYPE_Q8_0) {
        signed char *q = (signed char *)malloc((size_t)J * nb * 32 + 64);
        uint16_t *s = (uint16_t *)malloc(sizeof(uint16_t) * ((size_t)J * nb + 1));
        if (!q || !s) return -1;
        for (j = 0; j < J * nb * 32; j++) q[j] = (signed char)(int)(frand() * 127.5f);
        for (j = 0; j < J * nb; j++) s[j] = gpt__f32_to_f16(0.0005f + 0.001f * (frand() + 1.0f)); /* weights up to ~0.3 */
        m->q = q;
        m->scales = s;
        m->W.q = q;
        m->W.scales = s;
        m->W.data = (const unsigned char *)q;
        return kt_pack(m);
    }
    m->data = malloc((size_t)J * K * 4 + 64);
    if (!m->data) return -1;
    for (j = 0; j < J; j++)
        for (k = 0; k < K; k++) {
            size_t at = (size_t)j * K + k;
            float v = frand() * 0.1f;
            if (t == GPT_DTYPE_F32) ((float *)m->data)[at] = v;
            if (t == GPT_DTYPE_F16) ((uint16_t *)m->data)[at] = gpt__f32_to_f16(v);
            if (t == GPT_DTYPE_BF16) ((uint16_t *)m->data)[at] = gpt__f32_to_bf16(v);
        }
    m->W.data = (const unsigned char *)m->data;
    return kt_pack(m);
}

static void kt_free(kt_matrix *m)
{
    free(m->data);
    free(m->q);
    free(m->scales);
    free(m->packed);
}

/* x: (n + GP_ROW_PAD) rows of K, with a few large values (activations of
 * GPT-2 have them) */
static float *kt_x(int n, int K)
{
    float *x = (float *)malloc(sizeof(float) * (size_t)(n + GP_ROW_PAD) * K);
    int i;
    if (!x) return NULL;
    for (i = 0; i < (n + GP_ROW_PAD) * K; i++) x[i] = frand() * (i % 37 == 5 ? 20.0f : 1.0f);
    return x;
}

/* A thread's linear scratch for n rows of x and K columns. */
static float *kt_scratch(int n, int K)
{
    size_t q8 = gp_prep_bytes(GP_PREP_Q8, K), bf16 = gp_prep_bytes(GP_PREP_BF16, K);
    size_t floats = (size_t)4 * K + (size_t)(n + GP_PREP_PAD) * (q8 > bf16 ? q8 : bf16) / 4 + (size_t)64 * K + 64;
    return (float *)calloc(floats, sizeof(float));
}

typedef void (*kt_linear)(const gp_tensor *, const float *, const float *, int, int, int, int, float *, int, int,
                          float *);

/* y [n][J] = x W^T + bias with kernel f, the rows of W in calls of `piece` rows. */
static void kt_run_to(kt_linear f, const gp_tensor *W, const float *bias, const float *x, int n, float *y,
                      float *scratch, int piece, int accumulate)
{
    int j;
    gp_linear_prepare(W, x, W->cols, n, scratch);
    for (j = 0; j < W->rows; j += piece)
        f(W, bias, x, W->cols, n, j, j + piece < W->rows ? j + piece : W->rows, y, W->rows, accumulate, scratch);
}
static void kt_run(kt_linear f, const gp_tensor *W, const float *bias, const float *x, int n, float *y, float *scratch,
                   int piece)
{
    kt_run_to(f, W, bias, x, n, y, scratch, piece, 0);
}

/* Where the code of element i of block b sits in a prepared row of nb blocks. */
static size_t kt_q8_at(int nb, int b, int i)
{
    size_t step, at = gp_q8_block_at(nb, b, &step);
    return at + (size_t)(i / 4) * step + (size_t)(i % 4);
}

static const gpt_dtype kt_types[4] = {GPT_DTYPE_F32, GPT_DTYPE_F16, GPT_DTYPE_BF16, GPT_DTYPE_Q8_0};
/* K: odd tails of vectors, q8_0 rows of 1 .. 63 blocks whose last group
 * (of 16 on AVX-512) is 1, 2, 4, 8, 16 wide or absent (512, 1024) */
static const int kt_ks[] = {1, 5, 16, 31, 32, 33, 47, 63, 64, 65, 90, 96, 100, 129, 257, 512, 544, 640, 768, 800, 1024, 1600, 2000};

#if defined(GP_SIMD)
TEST(simd_and_scalar_twins_agree)
{
    int t, ki, n, i, J = 13;
    double worst[4] = {0, 0, 0, 0};
    for (t = 0; t < 4; t++)
        for (ki = 0; ki < (int)(sizeof kt_ks / sizeof kt_ks[0]); ki++) {
            int K = kt_ks[ki];
            kt_matrix m;
            float *x = kt_x(13, K), *sc = kt_scratch(13, K), bias[13], ys[13 * 13], yr[13 * 13];
            CHECK(x && sc && kt_make(&m, kt_types[t], J, K) == 0);
            for (n = 0; n < J; n++) bias[n] = frand();
            for (n = 1; n <= 13; n++) {
                double d;
                kt_run(gp_linear_simd, &m.W, bias, x, n, ys, sc, J);
                kt_run(gp_linear_ref, &m.W, bias, x, n, yr, sc, J);
                d = max_rel_diff(yr, ys, (size_t)n * J);
                if (!(d <= worst[t])) worst[t] = d;
                /* and added to what y holds (the residual layers): the
                 * same values in both (not drawn from frand, whose later
                 * draws make the other cases), so only the products differ */
                for (i = 0; i < n * J; i++) ys[i] = yr[i] = (float)(i % 7 - 3) * 0.25f;
                kt_run_to(gp_linear_simd, &m.W, bias, x, n, ys, sc, J, 1);
                kt_run_to(gp_linear_ref, &m.W, bias, x, n, yr, sc, J, 1);
                d = max_rel_diff(yr, ys, (size_t)n * J);
                if (!(d <= worst[t])) worst[t] = d;
            }
            EXPECTF(worst[t] <= 1e-5, "%s, K %d: SIMD and scalar differ by %g relative", gpt_dtype_name(kt_types[t]),
                    K, worst[t]);
            kt_free(&m);
            free(x);
            free(sc);
        }
    for (t = 0; t < 4; t++)
        printf("# %-5s%s SIMD vs scalar twin: max relative difference %.1e\n", gpt_dtype_name(kt_types[t]),
               gp_prep_kind(kt_types[t]) ? " (rounded activations)" : "", worst[t]);
}
#endif

/* The twins against their definition, in double: per block, the exact
 * integer sum times d_x * d_w (q8_0); the products of the bf16 values
 * (bf16). And the rounding: int8 codes within half a step of x / d, d =
 * max|x| / 127; bf16 the nearest. */
TEST(scalar_twins_compute_their_definition)
{
    int t, ki, checked = 0;
    for (t = 2; t < 4; t++) {
        int kind = gp_prep_kind(kt_types[t]);
        if (!kind) continue;
        for (ki = 0; ki < (int)(sizeof kt_ks / sizeof kt_ks[0]); ki++) {
            int K = kt_ks[ki], n = 3, J = 5, r, j, k;
            kt_matrix m;
            float *x = kt_x(n, K), *sc = kt_scratch(n, K), y[15];
            size_t rb = gp_prep_bytes(kind, K);
            CHECK(x && sc && kt_make(&m, kt_types[t], J, K) == 0);
            kt_run(gp_linear_ref, &m.W, NULL, x, n, y, sc, J);
            for (r = 0; r < n; r++) {
                const unsigned char *xr = (const unsigned char *)sc + r * rb;
                for (j = 0; j < J; j++) {
                    double want = 0, size = 0;
                    if (kind == GP_PREP_Q8) {
                        int nb = m.W.nb, b;
                        const signed char *q = gp_q8_codes(xr);
                        const float *d = gp_q8_dx(xr, nb);
                        for (b = 0; b < nb; b++) {
                            long isum = 0;
                            double s = (double)d[b] * gpt__f16_to_f32(m.W.scales[j * nb + b]);
                            for (k = b * 32; k < b * 32 + 32; k++)
                                isum += (long)q[kt_q8_at(nb, b, k % 32)] * m.W.q[(size_t)j * nb * 32 + k];
                            want += s * (double)isum;
                            for (k = b * 32; k < b * 32 + 32; k++)
                                size += fabs(s * q[kt_q8_at(nb, b, k % 32)] * m.W.q[(size_t)j * nb * 32 + k]);
                        }
                        if (j == 0)
                            for (k = 0; k < K; k++) {
                                int code_k = q[kt_q8_at(nb, k / 32, k % 32)];
                                double code = x[r * K + k] / (double)d[k / 32];
                                CHECKF(d[k / 32] == 0 || fabs(code - code_k) <= 0.5001,
                                       "K %d: x %g rounds to %d (d %g)", K, (double)x[r * K + k], code_k,
                                       (double)d[k / 32]);
                            }
                    } else {
                        const uint16_t *h = (const uint16_t *)(const void *)xr;
                        for (k = 0; k < K; k++) {
                            double p = (double)gpt__bf16_to_f32(h[k]) *
                                       gpt__bf16_to_f32(((const uint16_t *)m.data)[(size_t)j * K + k]);
                            want += p;
                            size += fabs(p);
                            if (j == 0)
                                CHECKF(h[k] == gpt__f32_to_bf16(x[r * K + k]), "K %d: bf16 of %g", K,
                                       (double)x[r * K + k]);
                        }
                    }
                    /* f32 sums of 16 partial sums: a few ulps of the terms' size */
                    CHECKF(fabs(y[r * J + j] - want) <= 1e-6 * size + 1e-30, "%s K %d row %d: %.9g, expected %.9g",
                           gpt_dtype_name(kt_types[t]), K, j, (double)y[r * J + j], want);
                }
            }
            checked++;
            kt_free(&m);
            free(x);
            free(sc);
        }
    }
    if (!checked) printf("# no weight type takes rounded activations in this build (%s)\n", gp_pick_kernels(0)->name);
}

/* The int8 rounding of a block, whichever code does it (AVX-512 or the
 * scalar loop), is x * (127 / max|x|) clamped and rounded to nearest, with
 * d = max|x| / 127: the same bits. Blocks with large values, exact ties
 * and exact maxima included. */
TEST(q8_rounding_is_the_same_in_every_path)
{
    int rep, i, b;
    float x[96];
    unsigned char out[8192];
    for (rep = 0; rep < 200; rep++) {
        const signed char *q = gp_q8_codes(out);
        const float *d;
        for (i = 0; i < 96; i++) x[i] = frand() * (rep % 3 == 0 ? 1000.0f : 1.0f);
        if (rep % 5 == 1) x[7] = 127.0f, x[3] = 0.5f, x[4] = -1.5f; /* codes 127, 0.5, -1.5: ties */
        gp_q8_round_row(x, 96, out);
        d = gp_q8_dx(out, 3);
        for (b = 0; b < 3; b++) {
            float amax = 0.0f, inv;
            for (i = 0; i < 32; i++) amax = fabsf(x[b * 32 + i]) > amax ? fabsf(x[b * 32 + i]) : amax;
            inv = 127.0f / amax;
            CHECKF(d[b] == amax / 127.0f, "block %d: d %g, expected %g", b, (double)d[b], (double)(amax / 127.0f));
            for (i = 0; i < 32; i++) {
                float v = x[b * 32 + i] * inv;
                v = v > 127.0f ? 127.0f : v < -127.0f ? -127.0f : v;
                CHECKF(q[kt_q8_at(3, b, i)] == (signed char)(int)rintf(v), "x %.9g: code %d, expected %d",
                       (double)x[b * 32 + i], q[kt_q8_at(3, b, i)], (int)rintf(v));
            }
        }
    }
}

/* Rounding x to bf16 for vdpbf16ps, whichever code does it (the
 * instruction vcvtneps2bf16 or the scalar loop): nearest even, subnormals
 * to zero of their sign, NaNs quiet, zeros after the row to a multiple of
 * 32; ties, subnormals, NaNs, infinities and overflow included. */
TEST(bf16_rounding_is_the_same_in_every_path)
{
    static const uint32_t special[] = {0x00000001u, 0x807fffffu, 0x00800000u, 0x80800000u, 0x7f800000u,
                                       0xff800000u, 0x7fc00001u, 0xffa12345u, 0x7f7fffffu, 0x7f7f8000u,
                                       0x3f808000u, 0x3f818000u, 0x3f807fffu, 0x3f808001u, 0x00000000u,
                                       0x80000000u, 0x7f800001u};
    int Ks[] = {1, 15, 16, 17, 31, 32, 33, 47, 64, 100}, ki, i, rep;
    float x[100];
    uint16_t out[128];
    for (rep = 0; rep < 20; rep++)
        for (ki = 0; ki < (int)(sizeof Ks / sizeof Ks[0]); ki++) {
            int K = Ks[ki], n = (K + 31) / 32 * 32;
            for (i = 0; i < K; i++) {
                uint32_t bits = (uint32_t)(i + rep) % 3 == 0 ? special[(size_t)(i + rep) % (sizeof special / 4)]
                                                              : (uint32_t)rand() * 65599u + (uint32_t)rand();
                memcpy(&x[i], &bits, 4);
            }
            memset(out, 0xa5, sizeof out);
            gp_bf16_round_row(x, K, out);
            for (i = 0; i < n; i++) {
                uint32_t bits = 0;
                uint16_t want;
                if (i < K) memcpy(&bits, &x[i], 4);
                if (i >= K) want = 0;
                else if ((bits & 0x7f800000u) == 0) want = (uint16_t)(bits >> 16 & 0x8000u);
                else want = gpt__f32_to_bf16(x[i]);
                CHECKF(out[i] == want, "K %d, value %d (bits %08x): bf16 %04x, expected %04x", K, i,
                       i < K ? (unsigned)bits : 0u, (unsigned)out[i], (unsigned)want);
            }
        }
}

/* Each row's bits do not depend on the batch or the rows of W a call
 * covers, for both kernel tables. */
TEST(rows_are_batch_invariant_in_the_kernels)
{
    int t, ki, tab;
    for (tab = 0; tab < 2; tab++)
        for (t = 0; t < 4; t++)
            for (ki = 0; ki < (int)(sizeof kt_ks / sizeof kt_ks[0]); ki += 3) {
                /* batches of 4, 10 and 16 rows end with a half tile and a one-row tile;
                 * pieces of 7 put a group of 4 rows at odd rows of W (bf16's pairs) */
                int K = kt_ks[ki], J = 11, n, ni, r, pieces[4] = {11, 7, 4, 3}, p, ns[7] = {1, 2, 4, 7, 10, 13, 16};
                kt_linear f = gp_pick_kernels(tab)->linear;
                kt_matrix m;
                float *x = kt_x(16, K), *sc = kt_scratch(16, K), alone[16 * 11], y[16 * 11];
                CHECK(x && sc && kt_make(&m, kt_types[t], J, K) == 0);
                for (r = 0; r < 16; r++) kt_run(f, &m.W, NULL, x + r * K, 1, alone + r * J, sc, J);
                for (ni = 0; ni < 7; ni++)
                    for (p = 0, n = ns[ni]; p < 4; p++) {
                        kt_run(f, &m.W, NULL, x, n, y, sc, pieces[p]);
                        CHECKF(memcmp(y, alone, sizeof(float) * (size_t)n * J) == 0,
                               "%s kernels, %s, K %d: %d rows in calls of %d rows of W differ from rows alone",
                               gp_pick_kernels(tab)->name, gpt_dtype_name(kt_types[t]), K, n, pieces[p]);
                    }
                kt_free(&m);
                free(x);
                free(sc);
            }
}

#if defined(GP_F32_CHAINS) || defined(GP_Q8_CHAINS)
/* A J x K matrix of type t with a bias, up to `rows` rows of x, and room
 * for the results: SIMD (ys), reference (yr) and rows alone. */
typedef struct kt_case {
    kt_matrix m;
    float *x, *sc, *bias, *ys, *yr, *alone;
} kt_case;

static int kt_case_make(kt_case *c, gpt_dtype t, int J, int K, int rows)
{
    size_t out = sizeof(float) * (size_t)rows * J;
    int j;
    memset(c, 0, sizeof *c);
    c->x = kt_x(rows, K);
    c->sc = kt_scratch(rows, K);
    c->bias = (float *)malloc(sizeof(float) * (size_t)J);
    c->ys = (float *)malloc(out);
    c->yr = (float *)malloc(out);
    c->alone = (float *)malloc(out);
    if (!c->x || !c->sc || !c->bias || !c->ys || !c->yr || !c->alone || kt_make(&c->m, t, J, K) != 0) return -1;
    for (j = 0; j < J; j++) c->bias[j] = frand();
    return 0;
}

static void kt_case_free(kt_case *c)
{
    kt_free(&c->m);
    free(c->x);
    free(c->sc);
    free(c->bias);
    free(c->ys);
    free(c->yr);
    free(c->alone);
}
#endif

#if defined(GP_F32_CHAINS) || defined(GP_Q8_CHAINS)
/* rows of x a case holds: ns[] stays within them */
#define KT_MAX_ROWS 33
/* The SIMD kernels of type t against the scalar twin, bit for bit, for
 * every K in ks, J (rows of W) in js and n (rows of x) in ns, W's rows in
 * calls of each of pieces; and each row against the row computed alone. */
static void kt_chains_equal_their_twin(gpt_dtype t, const int *ks, int nk, const int *js, int nj, const int *ns,
                                       int nn, const int *pieces, int np)
{
    int ki, ji, ni, p;
    for (ki = 0; ki < nk; ki++)
        for (ji = 0; ji < nj; ji++) {
            int K = ks[ki], J = js[ji], r;
            kt_case c;
            CHECK(kt_case_make(&c, t, J, K, KT_MAX_ROWS) == 0);
            for (ni = 0; ni < nn; ni++) {
                int n = ns[ni];
                kt_run(gp_linear_ref, &c.m.W, c.bias, c.x, n, c.yr, c.sc, J);
                for (p = 0; p < np; p++) {
                    kt_run(gp_linear_simd, &c.m.W, c.bias, c.x, n, c.ys, c.sc, pieces[p]);
                    CHECKF(memcmp(c.ys, c.yr, sizeof(float) * (size_t)n * J) == 0,
                           "%s, K %d, %d rows of W in calls of %d, %d rows of x: SIMD and scalar twin differ",
                           gpt_dtype_name(t), K, J, pieces[p], n);
                }
                for (r = 0; r < n; r++) {
                    kt_run(gp_linear_simd, &c.m.W, c.bias, c.x + (size_t)r * K, 1, c.alone, c.sc, J);
                    CHECKF(memcmp(c.alone, c.ys + (size_t)r * J, sizeof(float) * (size_t)J) == 0,
                           "%s, K %d, J %d: row %d of %d differs from the row alone", gpt_dtype_name(t), K, J, r, n);
                }
            }
            kt_case_free(&c);
        }
}
#define KT_N(a) ((int)(sizeof(a) / sizeof((a)[0])))
#endif

#if defined(GP_F32_CHAINS)
/* f32 on AVX-512: each output is one chain of FMAs, k = 0 first, in every
 * path (one row, up to 16 rows fed from one load of a packed group, more
 * rows through 64-wide panels, whole panels and partial ones): the SIMD kernels equal the scalar
 * twin bit for bit, and each row equals the row computed alone, for any
 * cut of W's rows. */
TEST(f32_chains_equal_their_twin_in_every_path)
{
    /* every count of rows up to 16 has a kernel of its own (gp_group_rows) */
    static const int ks[] = {1, 15, 16, 17, 100, 768}, js[] = {17, 64, 65, 130},
                     ns[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 23, 30};
    static const int pieces[] = {1000, 72, 64, 40, 16, 3}; /* 72 and 40: panels starting inside a group */
    kt_chains_equal_their_twin(GPT_DTYPE_F32, ks, KT_N(ks), js, KT_N(js), ns, KT_N(ns), pieces, KT_N(pieces));
}

/* f16 weights, and bf16 ones where they take no dot products, widened to
 * f32 on AVX-512: the same chains, bit for bit the twin's on the widened
 * rows, in every path: one row and 2 to 16 rows take the two groups of a
 * pair (the second partial with 17 and 120 rows of W), or a group alone
 * where a piece starts or ends inside a pair (pieces of 72, 40 and 16
 * rows); 2 to 16 rows over K = 100 and 768 in blocks of GP_PAIR_BLOCK. */
TEST(widened_chains_equal_their_twin_in_every_path)
{
    static const int ks[] = {1, 15, 16, 17, 100, 768}, js[] = {17, 64, 65, 120, 130}, ns[] = {1, 2, 3, 8, 16, 17, 23};
    static const int pieces[] = {1000, 72, 40, 16, 3}; /* 72 and 40: panels starting inside a group */
    kt_chains_equal_their_twin(GPT_DTYPE_F16, ks, KT_N(ks), js, KT_N(js), ns, KT_N(ns), pieces, KT_N(pieces));
    if (!gp_prep_kind(GPT_DTYPE_BF16))
        kt_chains_equal_their_twin(GPT_DTYPE_BF16, ks, KT_N(ks), js, KT_N(js), ns, KT_N(ns), pieces, KT_N(pieces));
}
#endif

#if defined(GP_Q8_CHAINS)
/* q8_0 on AVX-512 with VNNI: each output is one chain over the blocks, one
 * fused step per block, in tiles of 1 to 4 rows of x by 1 to 3 groups of
 * 16 rows of W, or of 8 or 16 rows by one group (batches of 8 to 32 rows,
 * the rest 4 at a time), W cut anywhere (a cut inside a group stores part
 * of it): bit for bit the scalar twin's, and each row the row alone's. */
TEST(q8_chains_equal_their_twin_in_every_path)
{
    static const int ks[] = {1, 32, 33, 100, 768}, js[] = {1, 17, 48, 49, 130},
                     ns[] = {1, 2, 3, 4, 5, 7, 8, 9, 12, 15, 16, 17, 23, 32, 33};
    static const int pieces[] = {1000, 48, 16, 7, 3};
    kt_chains_equal_their_twin(GPT_DTYPE_Q8_0, ks, KT_N(ks), js, KT_N(js), ns, KT_N(ns), pieces, KT_N(pieces));
}
#endif

#if defined(GP_BF16_AMX)
/* bf16 on AMX's tiles: each row bit for bit the row computed alone, for
 * rows in one or several tiles of 16 (full and partial) and W cut anywhere,
 * within 1e-5 of the vdpbf16ps twin (the rule for the rounded
 * products: the tile sums in its own order), and within a few ulps of the
 * terms' size of the exact sum of the bf16 products. */
TEST(bf16_tiles_are_batch_invariant_and_exact_products)
{
    static const int ks[] = {1, 31, 32, 33, 100, 768, 2000}, js[] = {17, 40, 130}, ns[] = {1, 2, 15, 16, 17, 33};
    static const int pieces[] = {1000, 40, 16, 3};
    int ki, ji, ni, p, r, j, k;
    if (!gp_amx_usable()) {
        printf("# AMX is not usable here: bf16 takes vdpbf16ps\n");
        return;
    }
    for (ki = 0; ki < KT_N(ks); ki++)
        for (ji = 0; ji < KT_N(js); ji++) {
            int K = ks[ki], J = js[ji];
            kt_case c;
            const uint16_t *w, *h;
            CHECK(kt_case_make(&c, GPT_DTYPE_BF16, J, K, 33) == 0);
            CHECK(c.m.W.ap != NULL);
            w = (const uint16_t *)c.m.data;
            h = (const uint16_t *)(const void *)c.sc;
            for (r = 0; r < 33; r++) kt_run(gp_linear_simd, &c.m.W, c.bias, c.x + (size_t)r * K, 1, c.alone + (size_t)r * J, c.sc, J);
            for (r = 0; r < 33; r++) { /* against the exact sums of the bf16 products */
                gp_linear_prepare(&c.m.W, c.x + (size_t)r * K, K, 1, c.sc);
                for (j = 0; j < J; j++) {
                    double want = c.bias[j], size = fabs(c.bias[j]);
                    for (k = 0; k < K; k++) {
                        double prod = (double)gpt__bf16_to_f32(h[k]) * gpt__bf16_to_f32(w[(size_t)j * K + k]);
                        want += prod;
                        size += fabs(prod);
                    }
                    CHECKF(fabs(c.alone[(size_t)r * J + j] - want) <= 1e-6 * size + 1e-30,
                           "K %d row %d output %d: %.9g, exact %.9g", K, r, j, (double)c.alone[(size_t)r * J + j], want);
                }
            }
            for (ni = 0; ni < KT_N(ns); ni++) {
                int n = ns[ni];
                double worst;
                kt_run(gp_linear_ref, &c.m.W, c.bias, c.x, n, c.yr, c.sc, J);
                for (p = 0; p < KT_N(pieces); p++) {
                    kt_run(gp_linear_simd, &c.m.W, c.bias, c.x, n, c.ys, c.sc, pieces[p]);
                    CHECKF(memcmp(c.ys, c.alone, sizeof(float) * (size_t)n * J) == 0,
                           "K %d, J %d: %d rows in calls of %d rows of W differ from the rows alone", K, J, n, pieces[p]);
                }
                worst = max_rel_diff(c.yr, c.ys, (size_t)n * J);
                CHECKF(worst <= 1e-5, "K %d, J %d, %d rows: tiles and twin differ by %g relative", K, J, n, worst);
            }
            kt_case_free(&c);
        }
}
#endif

int main(void)
{
    printf("# kernels: %s; rounded activations for%s%s%s\n", gp_pick_kernels(0)->name,
           gp_prep_kind(GPT_DTYPE_Q8_0) ? " q8_0 (int8 blocks)" : "",
           gp_prep_kind(GPT_DTYPE_BF16) ? " bf16" : "", (gpt__dot_products() & 3) ? "" : " none");
#if defined(GP_SIMD)
    RUN(simd_and_scalar_twins_agree);
#endif
    RUN(scalar_twins_compute_their_definition);
    RUN(q8_rounding_is_the_same_in_every_path);
    RUN(bf16_rounding_is_the_same_in_every_path);
    RUN(rows_are_batch_invariant_in_the_kernels);
#if defined(GP_F32_CHAINS)
    RUN(f32_chains_equal_their_twin_in_every_path);
    RUN(widened_chains_equal_their_twin_in_every_path);
#endif
#if defined(GP_Q8_CHAINS)
    RUN(q8_chains_equal_their_twin_in_every_path);
#endif
#if defined(GP_BF16_AMX)
    RUN(bf16_tiles_are_batch_invariant_and_exact_products);
#endif
    return test_summary();
}
