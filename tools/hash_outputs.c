/*
 * hash_outputs.c - hashes every logit gpt.c computes for a set of models and
 * configurations, so that a change meant to keep behaviour (a refactor) can
 * be checked bit for bit: run tools/hash_outputs.sh before and after, and
 * diff the two outputs.
 *
 * usage: hash_outputs MODEL...   (prints one line per model x configuration)
 *
 * For each model and each of threads 1, 2, 3 x SIMD / reference kernels x
 * f16 / f32 KV cache it evaluates a prompt of up to 100 ids in one call with
 * every position's logits kept, then 24 ids one at a time, and scores a
 * sequence twice the context long (sliding windows); the FNV-1a hash of the
 * bytes of all those floats is printed.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpt.h"

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = (const unsigned char *)p;
    size_t i;
    for (i = 0; i < n; i++) {
        h ^= b[i];
        h *= 1099511628211ull;
    }
    return h;
}

/* A deterministic id sequence over the vocabulary. */
static int id_at(int i, int V) { return (int)(((uint64_t)i * 2654435761u + 12345u) % (uint64_t)V); }

static int hash_one(const gpt_model *m, int threads, int ref, int kv, uint64_t *out)
{
    gpt_config cfg = gpt_model_config(m);
    gpt_context_params p = gpt_context_defaults();
    gpt_context *c;
    gpt_error err;
    uint64_t h = 1469598103934665603ull;
    int V = cfg.n_vocab, T = cfg.n_ctx, n_prompt = T - 24 < 100 ? T - 24 : 100, i, n_score;
    int *ids;
    float *lp;
    if (n_prompt < 1) n_prompt = 1;
    p.n_threads = threads;
    p.reference_kernels = ref;
    p.kv_type = kv;
    p.all_logits = 1;
    c = gpt_context_new(m, &p, &err);
    if (!c) {
        fprintf(stderr, "context: %s\n", err.message);
        return 1;
    }
    n_score = 2 * T;
    ids = (int *)malloc(sizeof(int) * (size_t)n_score);
    lp = (float *)malloc(sizeof(float) * (size_t)n_score);
    for (i = 0; i < n_score; i++) ids[i] = id_at(i, V);
    if (gpt_eval(c, ids, n_prompt) != GPT_OK) goto bad;
    for (i = 0; i < n_prompt; i++) h = fnv(h, gpt_logits_at(c, i), sizeof(float) * (size_t)V);
    for (i = 0; i < 24 && n_prompt + i < T; i++) {
        if (gpt_eval(c, ids + n_prompt + i, 1) != GPT_OK) goto bad;
        h = fnv(h, gpt_logits(c), sizeof(float) * (size_t)V);
    }
    if (T >= 2) {
        if (gpt_score(c, ids, n_score, lp) != GPT_OK) goto bad;
        h = fnv(h, lp, sizeof(float) * (size_t)(n_score - 1));
    }
    *out = h;
    free(ids);
    free(lp);
    gpt_context_free(c);
    return 0;
bad:
    fprintf(stderr, "eval: %s\n", gpt_context_error(c));
    free(ids);
    free(lp);
    gpt_context_free(c);
    return 1;
}

int main(int argc, char **argv)
{
    int a, threads, ref, kv, rc = 0;
    for (a = 1; a < argc; a++) {
        gpt_error err;
        gpt_model *m = gpt_model_load(argv[a], &err);
        if (!m) {
            fprintf(stderr, "%s\n", err.message);
            return 1;
        }
        for (threads = 1; threads <= 3; threads++)
            for (ref = 0; ref <= 1; ref++)
                for (kv = GPT_KV_F16; kv <= GPT_KV_F32; kv++) {
                    uint64_t h = 0;
                    if (hash_one(m, threads, ref, kv, &h)) rc = 1;
                    printf("%s threads=%d kernels=%s kv=%s %016llx\n", argv[a], threads, ref ? "reference" : "simd",
                           kv == GPT_KV_F16 ? "f16" : "f32", (unsigned long long)h);
                }
        gpt_model_free(m);
    }
    return rc;
}
