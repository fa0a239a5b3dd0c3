/*
 * convert.h - the sources of `gpt convert`: Hugging Face GPT-2 folders
 * (convert_hf.c), llm.c checkpoints (convert_llmc.c), and the file helpers
 * they share (convert_io.c). Not part of the library.
 *
 * Each source is opened first (everything that can be checked without
 * reading the weights is checked then), gives a ckpt_spec, and is read tensor
 * by tensor through a ckpt_source callback while ckpt_write_file streams the
 * checkpoint out, so memory stays at about one tensor.
 */
#ifndef GPT_CLI_CONVERT_H
#define GPT_CLI_CONVERT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "ckpt.h"
#include "gpt.h"

/* ------------------------------------------------------------------------ */
/* Hugging Face GPT-2 folders                                               */

typedef struct hf_model hf_model;

/* Reads dir/config.json, the safetensors header(s) (model.safetensors, or
 * model.safetensors.index.json and its shards) and vocab.json + merges.txt,
 * and checks every tensor's name, dtype and shape against config.json. */
hf_model *hf_open(const char *dir, gpt_error *err);
void hf_close(hf_model *m);
/* The shape, ln_eps and tokenizer of the model (dtype fields: f32). */
void hf_spec(const hf_model *m, ckpt_spec *spec);
/* ckpt_source over an hf_model: reads tensor k (Conv1D weights transposed;
 * for wte, also checks that lm_head.weight, if present, equals it). */
gpt_status hf_source(void *user, int k, int rows, int cols, float *dst, gpt_error *err);

/* ------------------------------------------------------------------------ */
/* llm.c checkpoints                                                        */

typedef struct llmc_model llmc_model;

#define LLMC_MAGIC 20240326

/* Reads and checks the header and the length of an llm.c checkpoint and
 * loads the tokenizer from vocab_path + merges_path. */
llmc_model *llmc_open(const char *path, const char *vocab_path, const char *merges_path, gpt_error *err);
void llmc_close(llmc_model *m);
void llmc_spec(const llmc_model *m, ckpt_spec *spec);
gpt_status llmc_source(void *user, int k, int rows, int cols, float *dst, gpt_error *err);

/* ------------------------------------------------------------------------ */
/* Large files (64-bit offsets where the platform has them)                 */

/* Opens a regular file for reading and gets its size; messages name the
 * path (a FIFO, a device or a directory is refused without blocking). */
FILE *cv_open(const char *path, uint64_t *size, gpt_error *err);
/* Moves to offset off. */
gpt_status cv_seek(FILE *f, const char *path, uint64_t off, gpt_error *err);
/* Reads exactly n bytes at the current position (off: that position, for
 * messages). */
gpt_status cv_read(FILE *f, const char *path, uint64_t off, void *buf, size_t n, gpt_error *err);
/* Reads exactly n bytes at offset off. */
gpt_status cv_read_at(FILE *f, const char *path, uint64_t off, void *buf, size_t n, gpt_error *err);

/* Element types of stored values. */
typedef enum cv_type { CV_F32, CV_F16, CV_BF16 } cv_type;
/* Reads n little-endian values of type t at offset off into dst as floats. */
gpt_status cv_read_floats(FILE *f, const char *path, uint64_t off, cv_type t, size_t n, float *dst,
                          gpt_error *err);
/* Converts n stored values (little-endian bytes) to floats. */
void cv_decode(const unsigned char *src, cv_type t, size_t n, float *dst);
size_t cv_type_size(cv_type t);

/* 1 when something exists at path (whether it can be read is for the
 * opening to say, with a message that tells why not). */
int cv_exists(const char *path);

/* "dir/name" in a new malloc'd string (NULL when out of memory). */
char *cv_join(const char *dir, const char *name);

#endif
