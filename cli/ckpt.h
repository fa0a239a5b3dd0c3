/*
 * ckpt.h - writing gpt.c checkpoints (docs/FORMAT.md) and making random
 * models. Used by `gpt convert` and by the tests; not part of the library.
 */
#ifndef GPT_CKPT_H
#define GPT_CKPT_H

#include <stddef.h>
#include <stdint.h>

/* The gpt command shares the library's internal helpers (gpt.h's end). */
#ifndef GPT_INTERNAL
#define GPT_INTERNAL
#endif
#include "gpt.h"

typedef struct ckpt_spec {
    int n_vocab, n_ctx, n_embd, n_head, n_layer;
    float ln_eps;
    gpt_dtype dtype;     /* of wte and the block matrices */
    gpt_dtype wpe_dtype; /* of the position embedding (f32 unless asked) */
    const gpt_tokenizer *tok;
    int allow_nonfinite; /* 0: a NaN or infinite source value, or one too large for
                            the stored type, stops the writer (GPT_ERR_NUMERIC) */
} ckpt_spec;

/* Fills dst (rows * cols floats, rows output-major as in FORMAT.md) with the
 * values of canonical tensor k. Returns GPT_OK or fills err. */
typedef gpt_status (*ckpt_source)(void *user, int k, int rows, int cols, float *dst, gpt_error *err);

/* Writes a checkpoint to path through a temporary file created (exclusively)
 * in the same folder and moved into place at the end, so the output is never
 * half-written and a program that has the old file mapped keeps reading the
 * old one. Refuses an existing path unless force (GPT_ERR_EXISTS); refuses,
 * even with force, a path that is anything but a regular file or a symbolic
 * link (a device, a FIFO, a directory, a socket); a symbolic link is
 * replaced by the new file, its target is left alone. Tensors are fetched
 * one at a time, so memory stays at one tensor. progress != 0 prints
 * progress on stderr. */
gpt_status ckpt_write_file(const char *path, const ckpt_spec *spec, ckpt_source src, void *user, int force,
                           int progress, gpt_error *err);

/* The checks ckpt_write_file makes before it starts: GPT_OK when path can
 * be written (nothing there, or a file or link and force). */
gpt_status ckpt_check_output(const char *path, int force, gpt_error *err);

/* The same into a buffer (*out, *len) the caller frees with gpt__free (the
 * library's allocator, as every allocation of the command). */
gpt_status ckpt_write_memory(const ckpt_spec *spec, ckpt_source src, void *user, unsigned char **out, size_t *len,
                             gpt_error *err);

/* Reads every weight of the checkpoint at path (already loaded once, so
 * its layout is valid) and checks that all are finite: GPT_OK and the
 * number of values in *n_values, or GPT_ERR_NUMERIC naming the tensor and
 * the element, or an I/O error. q8_0 tensors are checked through their
 * scales (their quants are integers). */
gpt_status ckpt_check_finite(const char *path, uint64_t *n_values, gpt_error *err);

/* Canonical tensor count and shapes. */
int ckpt_n_tensors(const ckpt_spec *spec);
void ckpt_tensor_shape(const ckpt_spec *spec, int k, int *rows, int *cols);
/* Hugging Face style name of tensor k, e.g. "h.0.attn.c_attn.weight". */
void ckpt_tensor_name(const ckpt_spec *spec, int k, char *buf, size_t cap);
/* 1 for weight matrices (wte, wpe and the four per block), 0 for vectors. */
int ckpt_tensor_is_matrix(const ckpt_spec *spec, int k);

/* Random weights of FORMAT.md "Random weights". */
typedef struct ckpt_random {
    uint64_t seed;
    int n_layer;
} ckpt_random;
gpt_status ckpt_random_source(void *user, int k, int rows, int cols, float *dst, gpt_error *err);
float ckpt_random_uniform(uint64_t seed, int k, uint64_t j);

/* GPT-2's tokenizer from encoder.json/vocab.bpe, cut to n_vocab tokens as
 * FORMAT.md says for random models (all of it for 50257). */
gpt_tokenizer *ckpt_gpt2_tokenizer(const char *vocab_path, const char *merges_path, int n_vocab, gpt_error *err);

/* Parses a shape "124M", "355M", "774M", "1558M" or "L,H,C,T" into spec
 * (n_vocab 50257 and ln_eps 1e-5 unless already set). */
gpt_status ckpt_parse_shape(const char *s, ckpt_spec *spec, gpt_error *err);

#endif
