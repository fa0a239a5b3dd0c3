/*
 * model_util.h - builds the random models of docs/FORMAT.md in memory for
 * the tests, and reads golden files written by tests/reference/.
 */
#ifndef GPT_TEST_MODEL_UTIL_H
#define GPT_TEST_MODEL_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt.h"
#include "gpt.h"

#if defined(__GNUC__)
#define MU_UNUSED __attribute__((unused))
#else
#define MU_UNUSED
#endif

#define GPT2_VOCAB "models/tokenizer/encoder.json"
#define GPT2_MERGES "models/tokenizer/vocab.bpe"

/* Writes a random checkpoint of the given shape into memory (freed with
 * gpt__free, as ckpt_write_memory's buffers are). */
MU_UNUSED static unsigned char *random_checkpoint(int L, int H, int C, int T, int V, uint64_t seed, gpt_dtype dtype,
                                        size_t *len, gpt_error *err)
{
    ckpt_spec spec;
    ckpt_random rnd;
    unsigned char *buf = NULL;
    gpt_tokenizer *tok = ckpt_gpt2_tokenizer(GPT2_VOCAB, GPT2_MERGES, V, err);
    if (!tok) return NULL;
    memset(&spec, 0, sizeof spec);
    spec.n_layer = L;
    spec.n_head = H;
    spec.n_embd = C;
    spec.n_ctx = T;
    spec.n_vocab = V;
    spec.ln_eps = 1e-5f;
    spec.dtype = dtype;
    spec.wpe_dtype = GPT_DTYPE_F32;
    spec.tok = tok;
    rnd.seed = seed;
    rnd.n_layer = L;
    if (ckpt_write_memory(&spec, ckpt_random_source, &rnd, &buf, len, err) != GPT_OK) buf = NULL;
    gpt_tokenizer_free(tok);
    return buf;
}

/* A random model, loaded. The loader is handed a deliberately unaligned
 * pointer so that it keeps its own copy and the bytes can be freed here. */
MU_UNUSED static gpt_model *random_model(int L, int H, int C, int T, int V, uint64_t seed, gpt_dtype dtype,
                                         gpt_error *err)
{
    size_t len;
    unsigned char *buf = random_checkpoint(L, H, C, T, V, seed, dtype, &len, err), *shifted;
    gpt_model *m = NULL;
    if (!buf) return NULL;
    shifted = (unsigned char *)malloc(len + 64);
    if (shifted) {
        unsigned char *at = shifted + (64 - (size_t)shifted % 64) % 64 + 1;
        memcpy(at, buf, len);
        gpt__free(buf);
        buf = NULL;
        m = gpt_model_load_memory(at, len, err);
        free(shifted);
    }
    gpt__free(buf);
    return m;
}

typedef struct golden {
    char kind[16]; /* random, file, hf, llmc */
    char path[512];
    int L, H, C, T, V;
    unsigned long long seed;
    char dtype[16];
    int n, m, k;
    int *tokens;
    int *sample;
    double *vals;   /* n * m */
    int *top_ids;   /* n * k */
    double *top_v;  /* n * k */
} golden;

MU_UNUSED static void golden_free(golden *g)
{
    free(g->tokens);
    free(g->sample);
    free(g->vals);
    free(g->top_ids);
    free(g->top_v);
    memset(g, 0, sizeof *g);
}

/* Parses the golden format of tests/reference/README.md; 0 on success. */
MU_UNUSED static int golden_read(const char *path, golden *g)
{
    FILE *f = fopen(path, "r");
    char word[64];
    int i, p, ok = 0;
    memset(g, 0, sizeof *g);
    if (!f) return -1;
    if (fscanf(f, "%63s", word) != 1 || strcmp(word, "gpt-golden") != 0 || fscanf(f, "%d", &i) != 1 || i != 1) goto out;
    while (fscanf(f, "%63s", word) == 1) {
        if (!strcmp(word, "model")) {
            if (fscanf(f, "%15s", g->kind) != 1) goto out;
            if (!strcmp(g->kind, "random")) {
                if (fscanf(f, "%d %d %d %d %d %llu", &g->L, &g->H, &g->C, &g->T, &g->V, &g->seed) != 6) goto out;
            } else if (fscanf(f, "%511s", g->path) != 1) goto out;
        } else if (!strcmp(word, "dtype")) {
            if (fscanf(f, "%15s", g->dtype) != 1) goto out;
        } else if (!strcmp(word, "tokens")) {
            if (fscanf(f, "%d", &g->n) != 1 || g->n < 0) goto out;
            g->tokens = (int *)malloc(sizeof(int) * (size_t)(g->n + 1));
            for (i = 0; i < g->n; i++)
                if (fscanf(f, "%d", &g->tokens[i]) != 1) goto out;
        } else if (!strcmp(word, "sample")) {
            if (fscanf(f, "%d", &g->m) != 1 || g->m < 0 || !g->n) goto out;
            g->sample = (int *)malloc(sizeof(int) * (size_t)(g->m + 1));
            g->vals = (double *)malloc(sizeof(double) * (size_t)(g->m * g->n + 1));
            for (i = 0; i < g->m; i++)
                if (fscanf(f, "%d", &g->sample[i]) != 1) goto out;
        } else if (!strcmp(word, "pos")) {
            if (fscanf(f, "%d", &p) != 1 || p < 0 || p >= g->n || !g->vals) goto out;
            for (i = 0; i < g->m; i++)
                if (fscanf(f, "%lf", &g->vals[(size_t)p * g->m + i]) != 1) goto out;
        } else if (!strcmp(word, "top")) {
            int k;
            if (fscanf(f, "%d %d", &p, &k) != 2 || p < 0 || p >= g->n || k < 1) goto out;
            if (!g->top_ids) {
                g->k = k;
                g->top_ids = (int *)malloc(sizeof(int) * (size_t)(g->n * k));
                g->top_v = (double *)malloc(sizeof(double) * (size_t)(g->n * k));
            }
            if (k != g->k) goto out;
            for (i = 0; i < k; i++)
                if (fscanf(f, " %d:%lf", &g->top_ids[p * k + i], &g->top_v[p * k + i]) != 2) goto out;
        } else if (!strcmp(word, "end")) {
            ok = 1;
            break;
        } else {
            goto out;
        }
    }
out:
    fclose(f);
    if (!ok) golden_free(g);
    return ok ? 0 : -1;
}

#endif
