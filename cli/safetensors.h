/*
 * safetensors.h - reads and checks the header of a safetensors file:
 * 8 bytes of little-endian header length N, N bytes of JSON
 * {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
 * "__metadata__": {"key": "value", ...}}, then the raw little-endian data, with
 * data_offsets relative to the start of the data. Not part of the library.
 *
 * Checked: the header length against the file (and safetensors' 100 MB
 * limit), that the header is a JSON object (json.h, strict), every entry's
 * fields, dtypes (the byte-sized ones safetensors knows), shapes, that every
 * tensor's bytes lie inside the data and are exactly dtype size x elements,
 * that no two tensors overlap, and that the tensors cover the data with no
 * hole (as safetensors itself requires).
 */
#ifndef GPT_CLI_SAFETENSORS_H
#define GPT_CLI_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "gpt.h"

#define ST_MAX_DIMS 16
#define ST_MAX_HEADER 100000000ull /* safetensors' own limit */

typedef enum st_dtype {
    ST_BOOL, ST_U8, ST_I8, ST_F8_E5M2, ST_F8_E4M3, ST_F8_E8M0, ST_I16, ST_U16, ST_F16, ST_BF16,
    ST_I32, ST_U32, ST_F32, ST_F64, ST_I64, ST_U64, ST_N_DTYPES
} st_dtype;

typedef struct st_tensor {
    char *name;          /* as written in the header (NUL-terminated UTF-8) */
    st_dtype dtype;
    int ndim;
    uint64_t shape[ST_MAX_DIMS];
    uint64_t numel;
    uint64_t begin, end; /* byte range relative to the start of the data */
} st_tensor;

typedef struct st_header {
    st_tensor *tensors;  /* in the header's order */
    size_t n;
    uint64_t header_len; /* N */
    uint64_t data_start; /* 8 + N: file offset of the data */
    uint64_t data_size;
} st_header;

/* Name ("F32", ...) and element size in bytes of a dtype. */
const char *st_dtype_name(st_dtype t);
size_t st_dtype_size(st_dtype t);

/* Parses and checks a header. json/json_len is the JSON text (the N bytes
 * after the length), data_size the number of bytes after it; what names the
 * file in messages. On success *out holds the tensors (st_header_free). */
gpt_status st_parse_header(const char *json_text, size_t json_len, uint64_t data_size, const char *what,
                           st_header *out, gpt_error *err);

/* The same from a whole file in memory (buf, len). For tests and fuzzing. */
gpt_status st_parse_memory(const void *buf, size_t len, const char *what, st_header *out, gpt_error *err);

/* Reads the header of an open file whose size is file_size. */
gpt_status st_read_file(FILE *f, uint64_t file_size, const char *path, st_header *out, gpt_error *err);

void st_header_free(st_header *h);

/* Copies s into buf (cap bytes) for a message: printable ASCII kept, other
 * bytes shown as '?', cut with "..." if long. Returns buf. */
const char *st_printable(const char *s, char *buf, size_t cap);

#endif
