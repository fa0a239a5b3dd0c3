/*
 * gpt.c - checkpoint loading, the GPT-2 forward pass with a KV cache, the
 * kernels, sampling and generation. The tokenizer is in tokenizer.c; both
 * implement gpt.h. See docs/FORMAT.md for the checkpoint and DESIGN.md for
 * the rules this file follows (C99 + standard library; platform features
 * behind guards with a portable fallback).
 *
 * MIT licence; see LICENSE.
 */

/* mmap, sysconf and pthreads are POSIX; ask for them before any header. */
#if (defined(__unix__) || defined(__APPLE__)) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#include "gpt.h"

#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Platform features, each with a portable fallback                          */

#if !defined(GPT_NO_MMAP) && (defined(__unix__) || defined(__APPLE__))
#define GPT_MMAP_POSIX 1
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#elif !defined(GPT_NO_MMAP) && defined(_WIN32)
#define GPT_MMAP_WIN32 1
#endif

/* Threads need a thread API and atomics; without both we run on one thread. */
#if !defined(GPT_NO_THREADS) && defined(__GNUC__) && (defined(__unix__) || defined(__APPLE__))
#define GPT_THREADS_PTHREAD 1
#include <pthread.h>
#include <sched.h>
#elif !defined(GPT_NO_THREADS) && defined(__GNUC__) && defined(_WIN32)
#define GPT_THREADS_WIN32 1
#endif

#if defined(_WIN32)
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>
#endif

#if !defined(GPT_NO_SIMD) && defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && \
    defined(__F16C__)
#define GPT_AVX512 1
#include <immintrin.h>
#elif !defined(GPT_NO_SIMD) && defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#define GPT_AVX2 1
#include <immintrin.h>
#elif !defined(GPT_NO_SIMD) && defined(__ARM_NEON) && defined(__aarch64__)
#define GPT_NEON 1
#include <arm_neon.h>
#endif

#define GPT_ALIGN 64
#define GPT_MAX_THREADS 256

/* ------------------------------------------------------------------------ */
/* Errors                                                                   */

const char *gpt_version(void) { return GPT_VERSION_STRING; }

const char *gpt_status_name(gpt_status s)
{
    switch (s) {
    case GPT_OK: return "GPT_OK";
    case GPT_ERR_INVALID_ARG: return "GPT_ERR_INVALID_ARG";
    case GPT_ERR_OUT_OF_MEMORY: return "GPT_ERR_OUT_OF_MEMORY";
    case GPT_ERR_IO: return "GPT_ERR_IO";
    case GPT_ERR_FORMAT: return "GPT_ERR_FORMAT";
    case GPT_ERR_UNSUPPORTED: return "GPT_ERR_UNSUPPORTED";
    case GPT_ERR_TOKEN_RANGE: return "GPT_ERR_TOKEN_RANGE";
    case GPT_ERR_CONTEXT_FULL: return "GPT_ERR_CONTEXT_FULL";
    case GPT_ERR_BUFFER_TOO_SMALL: return "GPT_ERR_BUFFER_TOO_SMALL";
    case GPT_ERR_EXISTS: return "GPT_ERR_EXISTS";
    case GPT_ERR_CANCELLED: return "GPT_ERR_CANCELLED";
    case GPT_ERR_NUMERIC: return "GPT_ERR_NUMERIC";
    }
    return "GPT_ERR_UNKNOWN";
}

static void vset_error(char *msg, size_t cap, const char *fmt, va_list ap)
{
    if (!msg || cap == 0) return;
    vsnprintf(msg, cap, fmt, ap);
}

/* Fills err (if any) and returns status, so callers can `return fail(...)`. */
static gpt_status fail(gpt_error *err, gpt_status status, const char *fmt, ...)
{
    va_list ap;
    if (err) {
        err->status = status;
        va_start(ap, fmt);
        vset_error(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
    }
    return status;
}

static void clear_error(gpt_error *err)
{
    if (err) {
        err->status = GPT_OK;
        err->message[0] = 0;
    }
}

/* ------------------------------------------------------------------------ */
/* Small helpers                                                            */

static void *aligned_alloc64(size_t n)
{
    /* C99 has no aligned allocation: over-allocate and keep the original
     * pointer just below the aligned block. */
    unsigned char *raw, *p;
    if (n > SIZE_MAX - GPT_ALIGN - sizeof(void *)) return NULL;
    raw = (unsigned char *)malloc(n + GPT_ALIGN + sizeof(void *));
    if (!raw) return NULL;
    p = raw + sizeof(void *);
    p += (GPT_ALIGN - ((size_t)(uintptr_t)p % GPT_ALIGN)) % GPT_ALIGN;
    memcpy(p - sizeof(void *), &raw, sizeof(void *));
    return p;
}

static void aligned_free64(void *p)
{
    void *raw;
    if (!p) return;
    memcpy(&raw, (unsigned char *)p - sizeof(void *), sizeof(void *));
    free(raw);
}

static uint32_t rd_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t rd_u64(const unsigned char *p)
{
    return (uint64_t)rd_u32(p) | (uint64_t)rd_u32(p + 4) << 32;
}

static float rd_f32(const unsigned char *p)
{
    uint32_t u = rd_u32(p);
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static int host_is_little_endian(void)
{
    const uint32_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 1;
}

/* IEEE binary16 -> binary32, exact for every input including subnormals,
 * infinities and NaN. */
static float f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ff;
    uint32_t bits;
    float f;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (man << 13);
    } else if (exp != 0) {
        bits = sign | ((exp + 112) << 23) | (man << 13);
    } else if (man == 0) {
        bits = sign;
    } else {
        /* subnormal: value = man * 2^-24 */
        f = (float)man * (1.0f / 16777216.0f);
        return sign ? -f : f;
    }
    memcpy(&f, &bits, 4);
    return f;
}

#if !(defined(GPT_AVX512) || defined(GPT_AVX2)) /* F16C does it there (CACHE_HALF) */
/* binary32 -> binary16, rounding to nearest even (for the f16 KV cache). */
static uint16_t f32_to_f16(float f)
{
    uint32_t x, sign, man, h, rem;
    int e;
    memcpy(&x, &f, 4);
    sign = (x >> 16) & 0x8000u;
    man = x & 0x7fffffu;
    e = (int)((x >> 23) & 0xffu);
    if (e == 0xff) return (uint16_t)(sign | 0x7c00u | (man ? 0x200u : 0)); /* inf, NaN */
    e = e - 127 + 15;
    if (e >= 0x1f) return (uint16_t)(sign | 0x7c00u);
    if (e <= 0) {
        /* subnormal: (1.man) * 2^(e - 14) in units of 2^-24 */
        uint32_t m = man | 0x800000u, half_ulp;
        int shift = 14 - e;
        if (shift > 24) return (uint16_t)sign;
        h = m >> shift;
        rem = m & ((1u << shift) - 1);
        half_ulp = 1u << (shift - 1);
        if (rem > half_ulp || (rem == half_ulp && (h & 1))) h++;
        return (uint16_t)(sign | h);
    }
    h = sign | ((uint32_t)e << 10) | (man >> 13);
    rem = man & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1))) h++; /* may carry into the exponent, as it should */
    return (uint16_t)h;
}
#endif

static float bf16_to_f32(uint16_t b)
{
    uint32_t bits = (uint32_t)b << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

const char *gpt_dtype_name(gpt_dtype t)
{
    switch (t) {
    case GPT_DTYPE_F32: return "f32";
    case GPT_DTYPE_F16: return "f16";
    case GPT_DTYPE_BF16: return "bf16";
    case GPT_DTYPE_Q8_0: return "q8_0";
    }
    return "?";
}

gpt_status gpt_dtype_from_name(const char *name, gpt_dtype *out)
{
    int t;
    if (!name || !out) return GPT_ERR_INVALID_ARG;
    for (t = 0; t <= GPT_DTYPE_Q8_0; t++) {
        if (strcmp(name, gpt_dtype_name((gpt_dtype)t)) == 0) {
            *out = (gpt_dtype)t;
            return GPT_OK;
        }
    }
    return GPT_ERR_INVALID_ARG;
}

/* Bytes of a rows x cols tensor of type t (docs/FORMAT.md); 0 on overflow. */
static uint64_t tensor_nbytes(gpt_dtype t, uint64_t rows, uint64_t cols)
{
    uint64_t n, nb, q;
    if (rows > UINT32_MAX || cols > UINT32_MAX) return 0;
    n = rows * cols; /* < 2^64 since both < 2^32 */
    switch (t) {
    case GPT_DTYPE_F32: return n > UINT64_MAX / 4 ? 0 : n * 4;
    case GPT_DTYPE_F16:
    case GPT_DTYPE_BF16: return n > UINT64_MAX / 2 ? 0 : n * 2;
    case GPT_DTYPE_Q8_0:
        nb = (cols + 31) / 32;
        if (nb != 0 && rows > UINT64_MAX / 64 / nb) return 0;
        q = (rows * nb * 32 + 63) / 64 * 64;
        return q + rows * nb * 2;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Model and loading                                                        */

typedef struct tensor {
    const unsigned char *data;
    gpt_dtype type;
    int rows, cols;
    int nb;                 /* q8_0: blocks per row */
    const signed char *q;   /* q8_0: quants */
    const uint16_t *scales; /* q8_0: f16 scales */
} tensor;

typedef struct layer {
    tensor ln1_w, ln1_b, qkv_w, qkv_b, proj_w, proj_b;
    tensor ln2_w, ln2_b, fc_w, fc_b, fcproj_w, fcproj_b;
} layer;

enum storage { STORAGE_USER, STORAGE_HEAP, STORAGE_MMAP };

struct gpt_model {
    gpt_config cfg;
    tensor wte, wpe, lnf_w, lnf_b;
    layer *layers;
    gpt_tokenizer *tok;
    enum storage storage;
    unsigned char *heap;  /* STORAGE_HEAP: the copy, from aligned_alloc64 */
    void *map_base;       /* STORAGE_MMAP */
    size_t map_len;
#if defined(GPT_MMAP_WIN32)
    HANDLE win_file, win_mapping;
#endif
};

#define HEADER_SIZE 128
#define DIR_ENTRY_SIZE 32
#define LIMIT_VOCAB 16777216u
#define LIMIT_CTX 1048576u
#define LIMIT_EMBD 65536u
#define LIMIT_LAYER 4096u

static const unsigned char ckpt_magic[8] = {'G', 'P', 'T', 'C', 0x0D, 0x0A, 0x1A, 0x0A};

static const char *const layer_tensor_names[12] = {
    "ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias",
    "attn.c_proj.weight", "attn.c_proj.bias", "ln_2.weight", "ln_2.bias",
    "mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias"};

/* Name of canonical tensor k for messages, e.g. "h.3.mlp.c_fc.weight". */
static void tensor_name(char *buf, size_t cap, uint32_t k, uint32_t n_layer)
{
    if (k == 0) snprintf(buf, cap, "wte");
    else if (k == 1) snprintf(buf, cap, "wpe");
    else if (k < 2 + 12 * n_layer) snprintf(buf, cap, "h.%u.%s", (k - 2) / 12, layer_tensor_names[(k - 2) % 12]);
    else if (k == 2 + 12 * n_layer) snprintf(buf, cap, "ln_f.weight");
    else snprintf(buf, cap, "ln_f.bias");
}

/* Canonical shape of tensor k (docs/FORMAT.md). */
static void tensor_shape(uint32_t k, const gpt_config *c, uint32_t *rows, uint32_t *cols)
{
    uint32_t C = (uint32_t)c->n_embd, L = (uint32_t)c->n_layer;
    *rows = 1;
    *cols = C;
    if (k == 0) *rows = (uint32_t)c->n_vocab;
    else if (k == 1) *rows = (uint32_t)c->n_ctx;
    else if (k < 2 + 12 * L) {
        switch ((k - 2) % 12) {
        case 2: *rows = 3 * C; break;
        case 3: *cols = 3 * C; break;
        case 4: *rows = C; break;
        case 8: *rows = 4 * C; break;
        case 9: *cols = 4 * C; break;
        case 10: *rows = C; *cols = 4 * C; break;
        default: break;
        }
    }
}

/* Tensor i (0..11, canonical order) of a block. */
static tensor *layer_tensor(layer *l, int i)
{
    switch (i) {
    case 0: return &l->ln1_w;
    case 1: return &l->ln1_b;
    case 2: return &l->qkv_w;
    case 3: return &l->qkv_b;
    case 4: return &l->proj_w;
    case 5: return &l->proj_b;
    case 6: return &l->ln2_w;
    case 7: return &l->ln2_b;
    case 8: return &l->fc_w;
    case 9: return &l->fc_b;
    case 10: return &l->fcproj_w;
    default: return &l->fcproj_b;
    }
}

typedef struct region {
    uint64_t begin, end;
    uint32_t what; /* tensor index, or UINT32_MAX for the tokenizer section */
} region;

static int region_cmp(const void *a, const void *b)
{
    const region *x = (const region *)a, *y = (const region *)b;
    return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : 0;
}

static void region_name(char *buf, size_t cap, const region *r, uint32_t n_layer)
{
    if (r->what == UINT32_MAX) snprintf(buf, cap, "the tokenizer section");
    else {
        char name[64];
        tensor_name(name, sizeof name, r->what, n_layer);
        snprintf(buf, cap, "tensor %u (%s)", r->what, name);
    }
}

static void bind_tensor(tensor *t, const unsigned char *base, uint64_t off, gpt_dtype type,
                        uint32_t rows, uint32_t cols)
{
    t->data = base + off;
    t->type = type;
    t->rows = (int)rows;
    t->cols = (int)cols;
    t->nb = (int)((cols + 31) / 32);
    t->q = NULL;
    t->scales = NULL;
    if (type == GPT_DTYPE_Q8_0) {
        uint64_t qbytes = ((uint64_t)rows * (uint64_t)t->nb * 32 + 63) / 64 * 64;
        t->q = (const signed char *)(const void *)t->data;
        t->scales = (const uint16_t *)(const void *)(t->data + qbytes);
    }
}

/* Validates a checkpoint image of len bytes at base and builds the model
 * around it; the tensors point into base. `what` names the source in
 * messages (a path, or "buffer"). */
static gpt_model *parse_checkpoint(const unsigned char *base, uint64_t len, const char *what, int is_file,
                                   gpt_error *err)
{
    gpt_model *m = NULL;
    gpt_config cfg;
    uint32_t version, header_size, flags, n_tensors, k, n_regions = 0;
    uint64_t tok_off, tok_size, file_size, dir_end, n_params = 0, weight_bytes = 0;
    region *regions = NULL;
    float eps;
    uint32_t dt;

    if (!host_is_little_endian()) {
        fail(err, GPT_ERR_UNSUPPORTED, "%s: big-endian hosts are not supported (the format is little-endian)", what);
        return NULL;
    }
    if (len < HEADER_SIZE) {
        fail(err, GPT_ERR_FORMAT, "%s: %llu bytes is too short for the %d-byte header (truncated or not a checkpoint)",
             what, (unsigned long long)len, HEADER_SIZE);
        return NULL;
    }
    if (memcmp(base, ckpt_magic, 8) != 0) {
        if (memcmp(base, ckpt_magic, 4) == 0)
            fail(err, GPT_ERR_FORMAT, "%s: magic at offset 0 starts with \"GPTC\" but its line-end bytes are damaged "
                 "(was the file transferred in text mode?)", what);
        else
            fail(err, GPT_ERR_FORMAT, "%s: not a gpt.c checkpoint: bad magic at offset 0 (expected \"GPTC\\r\\n\\x1a\\n\")", what);
        return NULL;
    }
    version = rd_u32(base + 8);
    if (version != 1) {
        fail(err, version > 1 ? GPT_ERR_UNSUPPORTED : GPT_ERR_FORMAT,
             "%s: checkpoint version %u at offset 8 is not supported (this library reads version 1)", what, version);
        return NULL;
    }
    header_size = rd_u32(base + 12);
    if (header_size != HEADER_SIZE) {
        fail(err, GPT_ERR_FORMAT, "%s: header_size at offset 12 is %u, expected %d", what, header_size, HEADER_SIZE);
        return NULL;
    }
    memset(&cfg, 0, sizeof cfg);
    {
        static const struct { unsigned off; const char *name; uint32_t limit; } hp[5] = {
            {16, "n_vocab", LIMIT_VOCAB}, {20, "n_ctx", LIMIT_CTX}, {24, "n_embd", LIMIT_EMBD},
            {28, "n_head", LIMIT_EMBD}, {32, "n_layer", LIMIT_LAYER}};
        uint32_t v[5];
        int i;
        for (i = 0; i < 5; i++) {
            v[i] = rd_u32(base + hp[i].off);
            if (v[i] == 0 || v[i] > hp[i].limit) {
                fail(err, GPT_ERR_FORMAT, "%s: %s at offset %u is %u, expected 1 .. %u", what, hp[i].name,
                     hp[i].off, v[i], hp[i].limit);
                return NULL;
            }
        }
        cfg.n_vocab = (int)v[0];
        cfg.n_ctx = (int)v[1];
        cfg.n_embd = (int)v[2];
        cfg.n_head = (int)v[3];
        cfg.n_layer = (int)v[4];
        if (v[2] % v[3] != 0) {
            fail(err, GPT_ERR_FORMAT, "%s: n_embd %u is not a multiple of n_head %u", what, v[2], v[3]);
            return NULL;
        }
    }
    eps = rd_f32(base + 36);
    if (!(eps > 0.0f && eps < 1.0f)) {
        fail(err, GPT_ERR_FORMAT, "%s: ln_eps at offset 36 is %g, expected a number with 0 < ln_eps < 1", what, (double)eps);
        return NULL;
    }
    cfg.ln_eps = eps;
    dt = rd_u32(base + 40);
    if (dt > GPT_DTYPE_Q8_0) {
        fail(err, GPT_ERR_UNSUPPORTED, "%s: weight type %u at offset 40 is unknown (0 f32, 1 f16, 2 bf16, 3 q8_0)", what, dt);
        return NULL;
    }
    cfg.dtype = (gpt_dtype)dt;
    flags = rd_u32(base + 44);
    if (flags != 0) {
        fail(err, GPT_ERR_UNSUPPORTED, "%s: flags at offset 44 are 0x%x, expected 0", what, flags);
        return NULL;
    }
    tok_off = rd_u64(base + 48);
    tok_size = rd_u64(base + 56);
    file_size = rd_u64(base + 64);
    n_tensors = rd_u32(base + 72);
    {
        int i;
        for (i = 76; i < HEADER_SIZE; i++)
            if (base[i] != 0) {
                fail(err, GPT_ERR_FORMAT, "%s: reserved header byte at offset %d is 0x%02x, expected 0", what, i,
                     base[i]);
                return NULL;
            }
    }
    if (file_size != len) {
        fail(err, GPT_ERR_FORMAT, "%s: the header's file_size (offset 64) is %llu bytes but %s %llu bytes%s", what,
             (unsigned long long)file_size, is_file ? "the file has" : "the buffer has", (unsigned long long)len,
             len < file_size ? " (truncated)" : "");
        return NULL;
    }
    if (n_tensors != 12 * (uint32_t)cfg.n_layer + 4) {
        fail(err, GPT_ERR_FORMAT, "%s: n_tensors at offset 72 is %u, expected 12 * n_layer + 4 = %u", what, n_tensors,
             12 * (uint32_t)cfg.n_layer + 4);
        return NULL;
    }
    dir_end = HEADER_SIZE + (uint64_t)n_tensors * DIR_ENTRY_SIZE;
    if (dir_end > len) {
        fail(err, GPT_ERR_FORMAT, "%s: the tensor directory (offsets %d .. %llu) runs past the end (%llu bytes)", what,
             HEADER_SIZE, (unsigned long long)dir_end, (unsigned long long)len);
        return NULL;
    }
    if (tok_off % GPT_ALIGN != 0 || tok_off < dir_end || tok_off > len || tok_size > len - tok_off) {
        fail(err, GPT_ERR_FORMAT, "%s: tokenizer section (offset %llu, %llu bytes) must start at a multiple of 64 "
             "after the directory (%llu) and end inside the file (%llu bytes)", what, (unsigned long long)tok_off,
             (unsigned long long)tok_size, (unsigned long long)dir_end, (unsigned long long)len);
        return NULL;
    }

    m = (gpt_model *)calloc(1, sizeof *m);
    regions = (region *)malloc(sizeof(region) * (n_tensors + 1));
    if (m) m->layers = (layer *)calloc((size_t)cfg.n_layer, sizeof(layer));
    if (!m || !regions || !m->layers) {
        fail(err, GPT_ERR_OUT_OF_MEMORY, "%s: out of memory for the model description", what);
        goto bad;
    }
    regions[n_regions].begin = tok_off;
    regions[n_regions].end = tok_off + tok_size;
    regions[n_regions].what = UINT32_MAX;
    n_regions++;

    for (k = 0; k < n_tensors; k++) {
        const unsigned char *e = base + HEADER_SIZE + (size_t)k * DIR_ENTRY_SIZE;
        uint32_t tdt = rd_u32(e), rows = rd_u32(e + 4), cols = rd_u32(e + 8), resv = rd_u32(e + 12);
        uint64_t off = rd_u64(e + 16), nbytes = rd_u64(e + 24), expect;
        uint32_t erows, ecols;
        char name[64];
        tensor *t;
        tensor_name(name, sizeof name, k, (uint32_t)cfg.n_layer);
        tensor_shape(k, &cfg, &erows, &ecols);
        if (rows != erows || cols != ecols) {
            fail(err, GPT_ERR_FORMAT, "%s: tensor %u (%s) has shape %u x %u, expected %u x %u", what, k, name, rows,
                 cols, erows, ecols);
            goto bad;
        }
        if (tdt > GPT_DTYPE_Q8_0) {
            fail(err, GPT_ERR_UNSUPPORTED, "%s: tensor %u (%s) has unknown type %u", what, k, name, tdt);
            goto bad;
        }
        if (rows == 1 && k >= 2 && tdt != GPT_DTYPE_F32) {
            fail(err, GPT_ERR_FORMAT, "%s: tensor %u (%s) is a vector of type %s; vectors must be f32", what, k, name,
                 gpt_dtype_name((gpt_dtype)tdt));
            goto bad;
        }
        if (resv != 0) {
            fail(err, GPT_ERR_FORMAT, "%s: tensor %u (%s): reserved directory field is %u, expected 0", what, k, name, resv);
            goto bad;
        }
        expect = tensor_nbytes((gpt_dtype)tdt, rows, cols);
        if (nbytes != expect) {
            fail(err, GPT_ERR_FORMAT, "%s: tensor %u (%s) has nbytes %llu, expected %llu for %s %u x %u", what, k, name,
                 (unsigned long long)nbytes, (unsigned long long)expect, gpt_dtype_name((gpt_dtype)tdt), rows, cols);
            goto bad;
        }
        if (off % GPT_ALIGN != 0 || off < dir_end || off > len || nbytes > len - off) {
            fail(err, GPT_ERR_FORMAT, "%s: tensor %u (%s) at offset %llu (%llu bytes) must start at a multiple of 64 "
                 "after the directory (%llu) and end inside the file (%llu bytes)", what, k, name,
                 (unsigned long long)off, (unsigned long long)nbytes, (unsigned long long)dir_end,
                 (unsigned long long)len);
            goto bad;
        }
        regions[n_regions].begin = off;
        regions[n_regions].end = off + nbytes;
        regions[n_regions].what = k;
        n_regions++;
        n_params += (uint64_t)rows * cols;
        weight_bytes += nbytes;

        if (k == 0) t = &m->wte;
        else if (k == 1) t = &m->wpe;
        else if (k == n_tensors - 2) t = &m->lnf_w;
        else if (k == n_tensors - 1) t = &m->lnf_b;
        else t = layer_tensor(&m->layers[(k - 2) / 12], (int)((k - 2) % 12));
        bind_tensor(t, base, off, (gpt_dtype)tdt, rows, cols);
    }

    qsort(regions, n_regions, sizeof(region), region_cmp);
    for (k = 1; k < n_regions; k++) {
        if (regions[k].begin < regions[k - 1].end) {
            char a[96], b[96];
            region_name(a, sizeof a, &regions[k - 1], (uint32_t)cfg.n_layer);
            region_name(b, sizeof b, &regions[k], (uint32_t)cfg.n_layer);
            fail(err, GPT_ERR_FORMAT, "%s: %s (offset %llu) overlaps %s (offsets %llu .. %llu)", what, b,
                 (unsigned long long)regions[k].begin, a, (unsigned long long)regions[k - 1].begin,
                 (unsigned long long)regions[k - 1].end);
            goto bad;
        }
    }
    free(regions);
    regions = NULL;

    {
        gpt_error terr;
        clear_error(&terr);
        m->tok = gpt_tokenizer_deserialize(base + tok_off, (size_t)tok_size, &terr);
        if (!m->tok) {
            fail(err, terr.status ? terr.status : GPT_ERR_FORMAT, "%s: tokenizer section at offset %llu: %s", what,
                 (unsigned long long)tok_off, terr.message);
            goto bad;
        }
        if (gpt_tokenizer_n_vocab(m->tok) != cfg.n_vocab) {
            fail(err, GPT_ERR_FORMAT, "%s: the tokenizer has %d tokens but n_vocab is %d", what,
                 gpt_tokenizer_n_vocab(m->tok), cfg.n_vocab);
            goto bad;
        }
    }
    cfg.n_params = n_params;
    cfg.weight_bytes = weight_bytes;
    m->cfg = cfg;
    return m;

bad:
    free(regions);
    if (m) {
        gpt_tokenizer_free(m->tok);
        free(m->layers);
        free(m);
    }
    return NULL;
}

static gpt_model *load_copy(const void *buf, size_t len, const char *what, gpt_error *err)
{
    unsigned char *copy = (unsigned char *)aligned_alloc64(len ? len : 1);
    gpt_model *m;
    if (!copy) {
        fail(err, GPT_ERR_OUT_OF_MEMORY, "%s: out of memory copying %llu bytes", what, (unsigned long long)len);
        return NULL;
    }
    memcpy(copy, buf, len);
    m = parse_checkpoint(copy, len, what, 0, err);
    if (!m) {
        aligned_free64(copy);
        return NULL;
    }
    m->storage = STORAGE_HEAP;
    m->heap = copy;
    return m;
}

gpt_model *gpt_model_load_memory(const void *buf, size_t len, gpt_error *err)
{
    clear_error(err);
    if (!buf) {
        fail(err, GPT_ERR_INVALID_ARG, "gpt_model_load_memory: buf is NULL");
        return NULL;
    }
    return load_copy(buf, len, "buffer", err);
}

gpt_model *gpt_model_load_memory_inplace(const void *buf, size_t len, gpt_error *err)
{
    gpt_model *m;
    clear_error(err);
    if (!buf) {
        fail(err, GPT_ERR_INVALID_ARG, "gpt_model_load_memory_inplace: buf is NULL");
        return NULL;
    }
    if ((size_t)(uintptr_t)buf % GPT_ALIGN != 0) {
        fail(err, GPT_ERR_INVALID_ARG, "gpt_model_load_memory_inplace: buf is not aligned to %d bytes "
             "(gpt_model_load_memory copies it instead)", GPT_ALIGN);
        return NULL;
    }
    m = parse_checkpoint((const unsigned char *)buf, len, "buffer", 0, err);
    if (m) m->storage = STORAGE_USER;
    return m;
}

#if defined(_WIN32)
/* File names are UTF-8 on every platform. Windows' char functions (fopen,
 * CreateFileA) read them in the ANSI code page instead, so there they go
 * through UTF-16; a name that is not valid UTF-8 is used as it is. */
static wchar_t *win_path(const char *path)
{
    int n = MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, path, -1, NULL, 0);
    wchar_t *w = n > 0 ? (wchar_t *)malloc((size_t)n * sizeof(wchar_t)) : NULL;
    if (w && MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, path, -1, w, n) != n) {
        free(w);
        w = NULL;
    }
    return w;
}

static FILE *open_read(const char *path)
{
    wchar_t *w = win_path(path);
    FILE *f = w ? _wfopen(w, L"rb") : fopen(path, "rb");
    free(w);
    return f;
}
#else
static FILE *open_read(const char *path) { return fopen(path, "rb"); }
#endif

/* Reads a whole file with stdio into an aligned buffer (the fallback where
 * mapping is not available or fails). */
static gpt_model *load_read(const char *path, gpt_error *err)
{
    FILE *f = open_read(path);
    unsigned char *buf = NULL;
    long size;
    gpt_model *m;
    if (!f) {
        fail(err, GPT_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fail(err, GPT_ERR_IO, "%s: cannot determine the file size", path);
        fclose(f);
        return NULL;
    }
    buf = (unsigned char *)aligned_alloc64((size_t)size ? (size_t)size : 1);
    if (!buf) {
        fail(err, GPT_ERR_OUT_OF_MEMORY, "%s: out of memory reading %ld bytes", path, size);
        fclose(f);
        return NULL;
    }
    if (fread(buf, 1, (size_t)size, f) != (size_t)size) {
        fail(err, GPT_ERR_IO, "%s: read error", path);
        aligned_free64(buf);
        fclose(f);
        return NULL;
    }
    fclose(f);
    m = parse_checkpoint(buf, (uint64_t)size, path, 1, err);
    if (!m) {
        aligned_free64(buf);
        return NULL;
    }
    m->storage = STORAGE_HEAP;
    m->heap = buf;
    return m;
}

gpt_model *gpt_model_load(const char *path, gpt_error *err) { return gpt_model_load_ex(path, NULL, err); }

gpt_model *gpt_model_load_ex(const char *path, const gpt_load_params *p, gpt_error *err)
{
    clear_error(err);
    if (!path) {
        fail(err, GPT_ERR_INVALID_ARG, "gpt_model_load: path is NULL");
        return NULL;
    }
    if (p && p->no_mmap) return load_read(path, err);
#if defined(GPT_MMAP_POSIX)
    {
        struct stat st;
        int fd = open(path, O_RDONLY);
        void *p;
        gpt_model *m;
        if (fd < 0) {
            fail(err, GPT_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
            return NULL;
        }
        if (fstat(fd, &st) != 0) {
            fail(err, GPT_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
            close(fd);
            return NULL;
        }
        if (!S_ISREG(st.st_mode)) {
            fail(err, GPT_ERR_IO, "%s: not a regular file", path);
            close(fd);
            return NULL;
        }
        if (st.st_size < HEADER_SIZE) {
            close(fd);
            return load_read(path, err); /* tiny: reading gives the precise message */
        }
        if ((uint64_t)st.st_size > (uint64_t)SIZE_MAX) {
            fail(err, GPT_ERR_UNSUPPORTED, "%s: file too large for this address space", path);
            close(fd);
            return NULL;
        }
        p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        close(fd);
        if (p == MAP_FAILED) return load_read(path, err);
        m = parse_checkpoint((const unsigned char *)p, (uint64_t)st.st_size, path, 1, err);
        if (!m) {
            munmap(p, (size_t)st.st_size);
            return NULL;
        }
        m->storage = STORAGE_MMAP;
        m->map_base = p;
        m->map_len = (size_t)st.st_size;
        return m;
    }
#elif defined(GPT_MMAP_WIN32)
    {
        HANDLE file, mapping;
        LARGE_INTEGER size;
        void *p;
        gpt_model *m;
        wchar_t *wpath = win_path(path);
        file = wpath ? CreateFileW(wpath, GENERIC_READ, FILE_SHARE_READ, NULL, OPEN_EXISTING, FILE_ATTRIBUTE_NORMAL, NULL)
                     : CreateFileA(path, GENERIC_READ, FILE_SHARE_READ, NULL, OPEN_EXISTING, FILE_ATTRIBUTE_NORMAL, NULL);
        if (file == INVALID_HANDLE_VALUE) {
            unsigned long code = (unsigned long)GetLastError();
            free(wpath);
            fail(err, GPT_ERR_IO, "%s: cannot open (Windows error %lu)", path, code);
            return NULL;
        }
        free(wpath);
        if (!GetFileSizeEx(file, &size) || size.QuadPart < HEADER_SIZE ||
            (unsigned long long)size.QuadPart > (unsigned long long)SIZE_MAX) {
            CloseHandle(file);
            return load_read(path, err);
        }
        mapping = CreateFileMappingA(file, NULL, PAGE_READONLY, 0, 0, NULL);
        if (!mapping) {
            CloseHandle(file);
            return load_read(path, err);
        }
        p = MapViewOfFile(mapping, FILE_MAP_READ, 0, 0, 0);
        if (!p) {
            CloseHandle(mapping);
            CloseHandle(file);
            return load_read(path, err);
        }
        m = parse_checkpoint((const unsigned char *)p, (uint64_t)size.QuadPart, path, 1, err);
        if (!m) {
            UnmapViewOfFile(p);
            CloseHandle(mapping);
            CloseHandle(file);
            return NULL;
        }
        m->storage = STORAGE_MMAP;
        m->map_base = p;
        m->map_len = (size_t)size.QuadPart;
        m->win_file = file;
        m->win_mapping = mapping;
        return m;
    }
#else
    return load_read(path, err);
#endif
}

void gpt_model_free(gpt_model *m)
{
    if (!m) return;
    gpt_tokenizer_free(m->tok);
    free(m->layers);
    if (m->storage == STORAGE_HEAP) aligned_free64(m->heap);
#if defined(GPT_MMAP_POSIX)
    if (m->storage == STORAGE_MMAP) munmap(m->map_base, m->map_len);
#elif defined(GPT_MMAP_WIN32)
    if (m->storage == STORAGE_MMAP) {
        UnmapViewOfFile(m->map_base);
        CloseHandle(m->win_mapping);
        CloseHandle(m->win_file);
    }
#endif
    free(m);
}

gpt_config gpt_model_config(const gpt_model *m)
{
    gpt_config c;
    if (!m) {
        memset(&c, 0, sizeof c);
        return c;
    }
    return m->cfg;
}

const gpt_tokenizer *gpt_model_tokenizer(const gpt_model *m) { return m ? m->tok : NULL; }

/* ------------------------------------------------------------------------ */
/* Thread pool                                                              */
/*
 * Each context owns n_threads - 1 workers; the calling thread is worker 0.
 * A job is published by bumping `generation`; workers spin on it for a short
 * while (a token's jobs follow each other within microseconds) and then
 * sleep on a condition variable. Work is always split by output element, so
 * results are bitwise identical for any thread count.
 */

typedef void (*task_fn)(void *arg, int ith, int nth);

#if defined(GPT_THREADS_PTHREAD) || defined(GPT_THREADS_WIN32)
#define GPT_HAVE_THREADS 1
#define ATOMIC_LOAD(p) __atomic_load_n((p), __ATOMIC_SEQ_CST)
#define ATOMIC_STORE(p, v) __atomic_store_n((p), (v), __ATOMIC_SEQ_CST)
#define ATOMIC_ADD(p, v) __atomic_add_fetch((p), (v), __ATOMIC_SEQ_CST)
#if defined(__x86_64__) || defined(__i386__)
#define CPU_RELAX() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define CPU_RELAX() __asm__ __volatile__("yield")
#else
#define CPU_RELAX() ((void)0)
#endif
/* About 0.1 ms of spinning before a worker sleeps: long enough to catch the
 * next job of the same token, short enough not to steal a busy machine. */
#define SPIN_LIMIT 2000
#endif

typedef struct pool pool;
#if defined(GPT_THREADS_PTHREAD)
typedef pthread_t thread_handle;
#elif defined(GPT_THREADS_WIN32)
typedef HANDLE thread_handle;
#endif

typedef struct worker {
    pool *p;
    int ith;
    /* The rows of a matrix product this thread has left: front << 32 | back
     * (see claim_rows). Atomic; kept 128 bytes from the next worker's, on a
     * cache line of its own. */
    uint64_t rows_left;
    char pad[128 - sizeof(uint64_t)];
} worker;

struct pool {
    int n; /* threads including the caller */
#if defined(GPT_HAVE_THREADS)
    worker *workers;
    int n_started;
    int generation; /* atomic */
    int n_done;     /* atomic */
    int sleeping;   /* atomic */
    int stop;       /* atomic */
    task_fn fn;
    void *arg;
#if defined(GPT_THREADS_PTHREAD)
    thread_handle *threads;
    pthread_mutex_t mu;
    pthread_cond_t cv;
#else
    thread_handle *threads;
    SRWLOCK mu;
    CONDITION_VARIABLE cv;
#endif
#endif
};

#if defined(GPT_HAVE_THREADS)
#if defined(GPT_THREADS_PTHREAD)
#define POOL_LOCK(p) pthread_mutex_lock(&(p)->mu)
#define POOL_UNLOCK(p) pthread_mutex_unlock(&(p)->mu)
#define POOL_WAIT(p) pthread_cond_wait(&(p)->cv, &(p)->mu)
#define POOL_WAKE_ALL(p) pthread_cond_broadcast(&(p)->cv)
#else
#define POOL_LOCK(p) AcquireSRWLockExclusive(&(p)->mu)
#define POOL_UNLOCK(p) ReleaseSRWLockExclusive(&(p)->mu)
#define POOL_WAIT(p) SleepConditionVariableSRW(&(p)->cv, &(p)->mu, INFINITE, 0)
#define POOL_WAKE_ALL(p) WakeAllConditionVariable(&(p)->cv)
#endif

static void worker_loop(worker *w)
{
    pool *p = w->p;
    int seen = 0;
    for (;;) {
        int spins = 0, gen;
        while ((gen = ATOMIC_LOAD(&p->generation)) == seen && !ATOMIC_LOAD(&p->stop) && spins < SPIN_LIMIT) {
            CPU_RELAX();
            spins++;
        }
        if (gen == seen && !ATOMIC_LOAD(&p->stop)) {
            POOL_LOCK(p);
            ATOMIC_ADD(&p->sleeping, 1);
            while ((gen = ATOMIC_LOAD(&p->generation)) == seen && !ATOMIC_LOAD(&p->stop)) POOL_WAIT(p);
            ATOMIC_ADD(&p->sleeping, -1);
            POOL_UNLOCK(p);
        }
        if (ATOMIC_LOAD(&p->stop)) return;
        seen = gen;
        p->fn(p->arg, w->ith, p->n);
        ATOMIC_ADD(&p->n_done, 1);
    }
}

#if defined(GPT_THREADS_PTHREAD)
static void *worker_main(void *arg)
{
    worker_loop((worker *)arg);
    return NULL;
}
#else
static DWORD WINAPI worker_main(LPVOID arg)
{
    worker_loop((worker *)arg);
    return 0;
}
#endif
#endif /* GPT_HAVE_THREADS */

static void pool_destroy(pool *p)
{
    if (!p) return;
#if defined(GPT_HAVE_THREADS)
    {
        int i;
        POOL_LOCK(p);
        ATOMIC_STORE(&p->stop, 1);
        POOL_WAKE_ALL(p);
        POOL_UNLOCK(p);
        for (i = 0; i < p->n_started; i++) {
#if defined(GPT_THREADS_PTHREAD)
            pthread_join(p->threads[i], NULL);
#else
            WaitForSingleObject(p->threads[i], INFINITE);
            CloseHandle(p->threads[i]);
#endif
        }
#if defined(GPT_THREADS_PTHREAD)
        pthread_cond_destroy(&p->cv);
        pthread_mutex_destroy(&p->mu);
#endif
        free(p->threads);
        free(p->workers);
    }
#endif
    free(p);
}

/* A pool of n threads (the caller plus n - 1 workers). Without thread support
 * the pool runs everything on the caller. */
static pool *pool_create(int n, gpt_error *err)
{
    pool *p = (pool *)calloc(1, sizeof *p);
    if (!p) {
        fail(err, GPT_ERR_OUT_OF_MEMORY, "out of memory for the thread pool");
        return NULL;
    }
#if defined(GPT_HAVE_THREADS)
    p->n = n;
    if (n > 1) {
        int i;
#if defined(GPT_THREADS_PTHREAD)
        if (pthread_mutex_init(&p->mu, NULL) != 0) {
            free(p);
            fail(err, GPT_ERR_OUT_OF_MEMORY, "cannot create a mutex for the thread pool");
            return NULL;
        }
        if (pthread_cond_init(&p->cv, NULL) != 0) {
            pthread_mutex_destroy(&p->mu);
            free(p);
            fail(err, GPT_ERR_OUT_OF_MEMORY, "cannot create a condition variable for the thread pool");
            return NULL;
        }
#else
        InitializeSRWLock(&p->mu);
        InitializeConditionVariable(&p->cv);
#endif
        p->workers = (worker *)calloc((size_t)n, sizeof(worker));
        p->threads = (thread_handle *)calloc((size_t)n, sizeof(thread_handle));
        if (!p->workers || !p->threads) {
            pool_destroy(p);
            fail(err, GPT_ERR_OUT_OF_MEMORY, "out of memory for %d threads", n);
            return NULL;
        }
        for (i = 1; i < n; i++) {
            p->workers[i].p = p;
            p->workers[i].ith = i;
#if defined(GPT_THREADS_PTHREAD)
            if (pthread_create(&p->threads[i - 1], NULL, worker_main, &p->workers[i]) != 0) break;
#else
            p->threads[i - 1] = CreateThread(NULL, 0, worker_main, &p->workers[i], 0, NULL);
            if (!p->threads[i - 1]) break;
#endif
            p->n_started++;
        }
        if (p->n_started != n - 1) {
            pool_destroy(p);
            fail(err, GPT_ERR_OUT_OF_MEMORY, "cannot start %d worker threads", n - 1);
            return NULL;
        }
    }
#else
    (void)n;
    (void)err;
    p->n = 1;
#endif
    return p;
}

/* Runs fn(arg, ith, n) on every thread of the pool and waits for all. */
static void pool_run(pool *p, task_fn fn, void *arg)
{
#if defined(GPT_HAVE_THREADS)
    if (p->n > 1) {
        int spins = 0;
        p->fn = fn;
        p->arg = arg;
        ATOMIC_STORE(&p->n_done, 0);
        ATOMIC_ADD(&p->generation, 1);
        if (ATOMIC_LOAD(&p->sleeping) > 0) {
            POOL_LOCK(p);
            POOL_WAKE_ALL(p);
            POOL_UNLOCK(p);
        }
        fn(arg, 0, p->n);
        while (ATOMIC_LOAD(&p->n_done) != p->n - 1) {
            CPU_RELAX();
            if (++spins == SPIN_LIMIT) {
                spins = 0;
#if defined(GPT_THREADS_PTHREAD)
                sched_yield();
#else
                SwitchToThread();
#endif
            }
        }
        return;
    }
#endif
    (void)p;
    fn(arg, 0, 1);
}

/*
 * Rows of a matrix product handed out while it runs. Each thread starts on
 * its own share of the rows, front to back in pieces (a sequential stream);
 * a thread that runs out takes pieces of ROWS_STOLEN rows (whole 64-row
 * panels for the packed prompt kernel) from the back of another's share.
 * With fixed shares, the two threads of a decoded token finished each phase
 * up to tens of microseconds apart (memory serves the two cores unevenly):
 * about 13% of q8_0 decoding time went to waiting. Results do not depend on
 * who computes a row.
 */
#define ROWS_STOLEN 16
#if defined(GPT_HAVE_THREADS)
#define ROWS_PACK(front, back) (((uint64_t)(uint32_t)(front) << 32) | (uint32_t)(back))

/* Takes rows from *left into [*b, *e); 0 when none are left. From the front,
 * `piece` rows; from the back, the rows after the last multiple of `piece`;
 * `piece` is a multiple of ROWS_STOLEN. Every bound stays a multiple of
 * ROWS_STOLEN (or the matrix's end), as with the static split: the kernels
 * group rows in fours from the start of their range, and the grouping
 * decides the order of the sums, so results stay bitwise the same for any
 * thread count. */
static int claim_rows(uint64_t *left, int piece, int from_back, int *b, int *e)
{
    uint64_t cur = __atomic_load_n(left, __ATOMIC_ACQUIRE), next;
    int front, back, cut;
    do {
        front = (int)(cur >> 32);
        back = (int)(uint32_t)cur;
        if (front >= back) return 0;
        if (from_back) {
            cut = (back - 1) / piece * piece;
            if (cut < front) cut = front;
            next = ROWS_PACK(front, cut);
        } else {
            cut = back - front < piece ? back : front + piece;
            next = ROWS_PACK(cut, back);
        }
    } while (!__atomic_compare_exchange_n(left, &cur, next, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE));
    *b = from_back ? cut : front;
    *e = from_back ? back : cut;
    return 1;
}
#endif

/* Splits [0, n) into nth parts whose bounds are multiples of `grain`; part ith
 * is [*b, *e). */
static void split_range(int n, int grain, int ith, int nth, int *b, int *e)
{
    int chunks = (n + grain - 1) / grain;
    int c0 = (int)((long long)chunks * ith / nth), c1 = (int)((long long)chunks * (ith + 1) / nth);
    *b = c0 * grain < n ? c0 * grain : n;
    *e = c1 * grain < n ? c1 * grain : n;
}

/* ------------------------------------------------------------------------ */
/* Kernels                                                                  */

/* Dot product of n floats. The scalar version keeps 8 partial sums so that
 * it rounds like the SIMD versions and lets compilers vectorize it. */
static float dot_f32(const float *a, const float *b, int n)
{
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    float s;
    int i = 0, k;
    for (; i + 8 <= n; i += 8)
        for (k = 0; k < 8; k++) acc[k] += a[i + k] * b[i + k];
    s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

/* Row r of a weight tensor widened to f32. */
static void row_to_f32(const tensor *t, int r, float *out)
{
    int i, n = t->cols;
    switch (t->type) {
    case GPT_DTYPE_F32:
        memcpy(out, (const float *)(const void *)t->data + (size_t)r * n, sizeof(float) * (size_t)n);
        break;
    case GPT_DTYPE_F16: {
        const uint16_t *h = (const uint16_t *)(const void *)t->data + (size_t)r * n;
        for (i = 0; i < n; i++) out[i] = f16_to_f32(h[i]);
        break;
    }
    case GPT_DTYPE_BF16: {
        const uint16_t *h = (const uint16_t *)(const void *)t->data + (size_t)r * n;
        for (i = 0; i < n; i++) out[i] = bf16_to_f32(h[i]);
        break;
    }
    case GPT_DTYPE_Q8_0: {
        const signed char *q = t->q + (size_t)r * t->nb * 32;
        const uint16_t *s = t->scales + (size_t)r * t->nb;
        for (i = 0; i < n; i++) out[i] = f16_to_f32(s[i / 32]) * (float)q[i];
        break;
    }
    }
}

static float gelu(float x)
{
    /* GPT-2's tanh form; sqrt(2/pi) = 0.7978845608... */
    return 0.5f * x * (1.0f + tanhf(0.7978845608028654f * (x + 0.044715f * x * x * x)));
}

enum mm_mode { MM_STORE, MM_ADD, MM_GELU };

/* For input rows r < n and outputs j in [j0, j1):
 *   v = dot(W[j], x[r]) + bias[j];  y[r][j] = v | y[r][j] + v | gelu(v)
 * rowbuf holds W->cols floats when W is not f32. */
static void matmul_range(const tensor *W, const float *bias, const float *x, int ldx, int n, float *y, int ldy,
                         int j0, int j1, enum mm_mode mode, float *rowbuf)
{
    int j, r, cols = W->cols;
    for (j = j0; j < j1; j++) {
        const float *w;
        float b = bias ? bias[j] : 0.0f;
        if (W->type == GPT_DTYPE_F32) {
            w = (const float *)(const void *)W->data + (size_t)j * cols;
        } else {
            row_to_f32(W, j, rowbuf);
            w = rowbuf;
        }
        for (r = 0; r < n; r++) {
            float v = dot_f32(w, x + (size_t)r * ldx, cols) + b;
            float *out = y + (size_t)r * ldy + j;
            if (mode == MM_STORE) *out = v;
            else if (mode == MM_ADD) *out += v;
            else *out = gelu(v);
        }
    }
}

static void layernorm(float *out, const float *x, const float *w, const float *b, int n, float eps)
{
    double sum = 0.0, var = 0.0;
    float mean, rstd;
    int i;
    for (i = 0; i < n; i++) sum += x[i];
    mean = (float)(sum / n);
    for (i = 0; i < n; i++) {
        double d = (double)x[i] - mean;
        var += d * d;
    }
    rstd = (float)(1.0 / sqrt(var / n + eps));
    for (i = 0; i < n; i++) out[i] = (x[i] - mean) * rstd * w[i] + b[i];
}

/*
 * The KV cache of one head is stored in panels of 64 so that both attention
 * products are outer products (docs/PERFORMANCE.md):
 *   keys:   [position / 64][d][position % 64]   (D x 64 per 64 positions)
 *   values: [d / 64][position][d % 64]          (T_alloc x 64 per 64 dims)
 * T_alloc and D_alloc are n_ctx and head_dim rounded up to multiples of 64.
 */
#define KV_PANEL 64
static size_t k_index(int pos, int d, int D)
{
    return (size_t)(pos / KV_PANEL) * D * KV_PANEL + (size_t)d * KV_PANEL + pos % KV_PANEL;
}
static size_t v_index(int pos, int d, int t_alloc)
{
    return (size_t)(d / KV_PANEL) * t_alloc * KV_PANEL + (size_t)pos * KV_PANEL + d % KV_PANEL;
}

/* Element i of a cache stored as f32 or (kv_f16) IEEE half. */
static float kv_at(const void *base, size_t i, int kv_f16)
{
    return kv_f16 ? f16_to_f32(((const uint16_t *)base)[i]) : ((const float *)base)[i];
}

/* Causal attention of one query over n_keys cached positions of one head:
 * out = softmax(q . k_j * scale) . v_j. scores holds n_keys floats. */
static void attend(const float *q, const void *keys, const void *values, int kv_f16, int n_keys, int D, int t_alloc,
                   float scale, float *scores, float *out)
{
    float mx = -INFINITY, inv;
    double sum = 0.0;
    int j, d;
    for (j = 0; j < n_keys; j++) {
        float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0}, s = 0.0f;
        for (d = 0; d < D; d++) acc[d % 8] += q[d] * kv_at(keys, k_index(j, d, D), kv_f16);
        for (d = 0; d < 8; d++) s += acc[d];
        scores[j] = s * scale;
        if (scores[j] > mx) mx = scores[j];
    }
    for (j = 0; j < n_keys; j++) {
        scores[j] = expf(scores[j] - mx);
        sum += scores[j];
    }
    for (d = 0; d < D; d++) out[d] = 0.0f;
    for (j = 0; j < n_keys; j++) {
        float p = scores[j];
        for (d = 0; d < D; d++) out[d] += p * kv_at(values, v_index(j, d, t_alloc), kv_f16);
    }
    inv = (float)(1.0 / sum);
    for (d = 0; d < D; d++) out[d] *= inv;
}

/* ------------------------------------------------------------------------ */
/* SIMD kernels                                                             */
/*
 * Two kinds of products, both with f32 activations and f32 accumulators:
 * - dot products (gemm_*): rows of X against rows of W (weights in any type),
 *   both contiguous along K; a tile of MR rows of X times NR rows of W keeps
 *   MR*NR vector accumulators in registers, each weight vector is widened
 *   once per k step and used MR times, and the accumulators are summed
 *   across lanes at the end. This streams the weights once, which is what
 *   decoding (one row) needs.
 * - outer products (op_row, and pk_kernel on AVX-512): rows of X times a
 *   panel of 64 outputs stored k-major, broadcasting X[r][k]; no lane sums.
 *   Prompts pack the weights into such panels, and the KV cache is kept in
 *   that layout, so attention needs no packing.
 */
#if defined(GPT_AVX512) || defined(GPT_AVX2) || defined(GPT_NEON)
#define GPT_SIMD 1

#if defined(GPT_AVX512)
typedef __m512 vf;
#define VL 16
#define VZERO() _mm512_setzero_ps()
#define VSET1(x) _mm512_set1_ps(x)
#define VLOAD(p) _mm512_loadu_ps(p)
#define VSTORE(p, v) _mm512_storeu_ps((p), (v))
#define VADD(a, b) _mm512_add_ps((a), (b))
#define VMUL(a, b) _mm512_mul_ps((a), (b))
#define VDIV(a, b) _mm512_div_ps((a), (b))
#define VFMA(a, b, c) _mm512_fmadd_ps((a), (b), (c)) /* a*b + c */
#define VMAX(a, b) _mm512_max_ps((a), (b))
#define VMIN(a, b) _mm512_min_ps((a), (b))
#define VLOAD_F16(p) _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)(p)))
#define VLOAD_BF16(p) \
    _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(const void *)(p))), 16))
#define VLOAD_Q8(p) _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(const void *)(p))))
#define SCALE_F16(h) _cvtsh_ss(h)
#define TILE_ROWS(M) M(0) M(1) M(2) M(3) M(4) M(5)
#define MR 6
static float vsum(vf v) { return _mm512_reduce_add_ps(v); }
/* out[i] = sum of the lanes of a, b, c, d */
static void vsum4(vf a, vf b, vf c, vf d, float *out)
{
    __m512 t0 = _mm512_add_ps(_mm512_unpacklo_ps(a, b), _mm512_unpackhi_ps(a, b));
    __m512 t1 = _mm512_add_ps(_mm512_unpacklo_ps(c, d), _mm512_unpackhi_ps(c, d));
    __m512 u = _mm512_add_ps(_mm512_shuffle_ps(t0, t1, _MM_SHUFFLE(1, 0, 1, 0)),
                             _mm512_shuffle_ps(t0, t1, _MM_SHUFFLE(3, 2, 3, 2)));
    __m256 h = _mm256_add_ps(_mm512_castps512_ps256(u),
                             _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(u), 1)));
    _mm_storeu_ps(out, _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1)));
}
static vf vround(vf x) { return _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
static vf vpow2i(vf n) { return _mm512_scalef_ps(VSET1(1.0f), n); }

#elif defined(GPT_AVX2)
typedef __m256 vf;
#define VL 8
#define VZERO() _mm256_setzero_ps()
#define VSET1(x) _mm256_set1_ps(x)
#define VLOAD(p) _mm256_loadu_ps(p)
#define VSTORE(p, v) _mm256_storeu_ps((p), (v))
#define VADD(a, b) _mm256_add_ps((a), (b))
#define VMUL(a, b) _mm256_mul_ps((a), (b))
#define VDIV(a, b) _mm256_div_ps((a), (b))
#define VFMA(a, b, c) _mm256_fmadd_ps((a), (b), (c))
#define VMAX(a, b) _mm256_max_ps((a), (b))
#define VMIN(a, b) _mm256_min_ps((a), (b))
#define VLOAD_F16(p) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(p)))
#define VLOAD_BF16(p) \
    _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(const void *)(p))), 16))
#define VLOAD_Q8(p) _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)(p))))
#define SCALE_F16(h) _cvtsh_ss(h)
#define TILE_ROWS(M) M(0) M(1)
#define MR 2
static float vsum(vf v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}
static void vsum4(vf a, vf b, vf c, vf d, float *out)
{
    __m256 t0 = _mm256_add_ps(_mm256_unpacklo_ps(a, b), _mm256_unpackhi_ps(a, b));
    __m256 t1 = _mm256_add_ps(_mm256_unpacklo_ps(c, d), _mm256_unpackhi_ps(c, d));
    __m256 u = _mm256_add_ps(_mm256_shuffle_ps(t0, t1, _MM_SHUFFLE(1, 0, 1, 0)),
                             _mm256_shuffle_ps(t0, t1, _MM_SHUFFLE(3, 2, 3, 2)));
    _mm_storeu_ps(out, _mm_add_ps(_mm256_castps256_ps128(u), _mm256_extractf128_ps(u, 1)));
}
static vf vround(vf x) { return _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
static vf vpow2i(vf n)
{
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23));
}

#else /* NEON */
typedef float32x4_t vf;
#define VL 4
#define VZERO() vdupq_n_f32(0.0f)
#define VSET1(x) vdupq_n_f32(x)
#define VLOAD(p) vld1q_f32(p)
#define VSTORE(p, v) vst1q_f32((p), (v))
#define VADD(a, b) vaddq_f32((a), (b))
#define VMUL(a, b) vmulq_f32((a), (b))
#define VDIV(a, b) vdivq_f32((a), (b))
#define VFMA(a, b, c) vfmaq_f32((c), (a), (b))
#define VMAX(a, b) vmaxq_f32((a), (b))
#define VMIN(a, b) vminq_f32((a), (b))
#define VLOAD_F16(p) vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16((const uint16_t *)(const void *)(p))))
#define VLOAD_BF16(p) vreinterpretq_f32_u32(vshll_n_u16(vld1_u16((const uint16_t *)(const void *)(p)), 16))
#define VLOAD_Q8(p) vcvtq_f32_s32(vmovl_s16(vget_low_s16(vmovl_s8(vld1_s8((const int8_t *)(const void *)(p))))))
#define SCALE_F16(h) f16_to_f32(h)
#define TILE_ROWS(M) M(0) M(1) M(2) M(3) M(4) M(5)
#define MR 6
static float vsum(vf v) { return vaddvq_f32(v); }
static void vsum4(vf a, vf b, vf c, vf d, float *out) { vst1q_f32(out, vpaddq_f32(vpaddq_f32(a, b), vpaddq_f32(c, d))); }
static vf vround(vf x) { return vrndnq_f32(x); }
static vf vpow2i(vf n)
{
    return vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(vcvtq_s32_f32(n), vdupq_n_s32(127)), 23));
}
#endif

#define NR 4

/* GCC folds the load of an activation vector into each of the NR FMAs that
 * use it (NR loads instead of one), which makes the tile load-bound; an empty
 * asm that claims to change the register keeps the loaded value in it. */
#if defined(__GNUC__) && !defined(__clang__) && (defined(GPT_AVX512) || defined(GPT_AVX2))
#define KEEP_IN_REG(v) __asm__("" : "+v"(v))
#elif defined(__GNUC__) && !defined(__clang__) && defined(GPT_NEON)
#define KEEP_IN_REG(v) __asm__("" : "+w"(v))
#else
#define KEEP_IN_REG(v) ((void)0)
#endif

/* e^x for |x| < ~88, relative error about 2e-7: x = n ln2 + f, e^f by its
 * Taylor polynomial of degree 6 on |f| <= ln2/2. */
static vf vexp(vf x)
{
    vf n, f, p;
    x = VMIN(VMAX(x, VSET1(-87.0f)), VSET1(88.0f));
    n = vround(VMUL(x, VSET1(1.44269504088896341f)));
    f = VFMA(n, VSET1(-0.693145751953125f), x); /* ln2 split so n*hi is exact */
    f = VFMA(n, VSET1(-1.428606820309417232e-6f), f);
    p = VSET1(1.0f / 720.0f);
    p = VFMA(p, f, VSET1(1.0f / 120.0f));
    p = VFMA(p, f, VSET1(1.0f / 24.0f));
    p = VFMA(p, f, VSET1(1.0f / 6.0f));
    p = VFMA(p, f, VSET1(0.5f));
    p = VFMA(p, f, VSET1(1.0f));
    p = VFMA(p, f, VSET1(1.0f));
    return VMUL(p, vpow2i(n));
}

/* GPT-2's GELU: 0.5x(1 + tanh(y)) = x / (1 + e^(-2y)), y = sqrt(2/pi)(x + 0.044715x^3) */
static vf vgelu(vf x)
{
    vf x3 = VMUL(VMUL(x, x), x);
    vf y = VMUL(VFMA(x3, VSET1(0.044715f), x), VSET1(-2.0f * 0.7978845608028654f));
    return VDIV(x, VADD(VSET1(1.0f), vexp(y)));
}

static void gelu_rows_simd(float *x, size_t n)
{
    size_t i = 0;
    for (; i + VL <= n; i += VL) VSTORE(x + i, vgelu(VLOAD(x + i)));
    for (; i < n; i++) x[i] = gelu(x[i]);
}

/* Element k of row j of W, widened (for the tails that do not fill a vector). */
static float w_at(const tensor *W, int j, int k)
{
    size_t at = (size_t)j * W->cols + k;
    switch (W->type) {
    case GPT_DTYPE_F32: return ((const float *)(const void *)W->data)[at];
    case GPT_DTYPE_F16: return f16_to_f32(((const uint16_t *)(const void *)W->data)[at]);
    case GPT_DTYPE_BF16: return bf16_to_f32(((const uint16_t *)(const void *)W->data)[at]);
    case GPT_DTYPE_Q8_0:
        return f16_to_f32(W->scales[(size_t)j * W->nb + k / 32]) * (float)W->q[(size_t)j * W->nb * 32 + k];
    }
    return 0.0f;
}

/* Writes MRxNR (or fewer) dot products with bias and mode. */
static void tile_store(float *y, int ldy, int r, int j, int nrow, int ncol, const float *sums, const float *bias,
                       int accumulate)
{
    int a, b;
    for (a = 0; a < nrow; a++)
        for (b = 0; b < ncol; b++) {
            float v = sums[a * NR + b] + (bias ? bias[j + b] : 0.0f);
            float *o = y + (size_t)(r + a) * ldy + j + b;
            *o = accumulate ? *o + v : v;
        }
}

/*
 * gemm_<type>: for X rows r < n and W rows j in [j0, j1):
 *   y[r][j] (+)= dot(X[r], W[j]) + bias[j]
 * W is walked in panels of rows that stay in the L2 cache while every block
 * of MR rows of X passes over them.
 */
#define DECL_ACC(r) vf a##r##0 = VZERO(), a##r##1 = VZERO(), a##r##2 = VZERO(), a##r##3 = VZERO();
#define FMA_ROW(r)                                                                                         \
    {                                                                                                      \
        vf xv = VLOAD(x + (size_t)(r) * ldx + k);                                                          \
        KEEP_IN_REG(xv);                                                                                   \
        a##r##0 = VFMA(xv, w0, a##r##0);                                                                   \
        a##r##1 = VFMA(xv, w1, a##r##1);                                                                   \
        a##r##2 = VFMA(xv, w2, a##r##2);                                                                   \
        a##r##3 = VFMA(xv, w3, a##r##3);                                                                   \
    }
#define SUM_ROW(r) vsum4(a##r##0, a##r##1, a##r##2, a##r##3, sums + (r)*NR);

#define DEFINE_GEMM(NAME, ELEM_T, ROW_PTR, LOADW, ROWDOT)                                                        \
    static void NAME(const tensor *W, const float *X, int ldx, int n, int j0, int j1, float *y, int ldy,   \
                     const float *bias, int accumulate)                                                    \
    {                                                                                                      \
        int K = W->cols, Kv = K / VL * VL, panel, jb, r, j, k, a, b;                                       \
        float sums[MR * NR];                                                                               \
        panel = (int)((256 * 1024) / ((size_t)K * sizeof(ELEM_T) + 1)) / NR * NR;                          \
        if (panel < NR) panel = NR;                                                                        \
        for (jb = j0; jb < j1; jb += panel) {                                                              \
            int je = jb + panel < j1 ? jb + panel : j1;                                                    \
            for (r = 0; r + MR <= n; r += MR) {                                                            \
                const float *x = X + (size_t)r * ldx;                                                      \
                for (j = jb; j + NR <= je; j += NR) {                                                      \
                    const ELEM_T *p0 = ROW_PTR(j), *p1 = ROW_PTR(j + 1), *p2 = ROW_PTR(j + 2),             \
                                 *p3 = ROW_PTR(j + 3);                                                     \
                    TILE_ROWS(DECL_ACC)                                                                    \
                    for (k = 0; k < Kv; k += VL) {                                                         \
                        vf w0 = LOADW(p0, j, k), w1 = LOADW(p1, j + 1, k), w2 = LOADW(p2, j + 2, k),       \
                           w3 = LOADW(p3, j + 3, k);                                                       \
                        TILE_ROWS(FMA_ROW)                                                                 \
                    }                                                                                      \
                    TILE_ROWS(SUM_ROW)                                                                     \
                    for (k = Kv; k < K; k++)                                                               \
                        for (a = 0; a < MR; a++)                                                           \
                            for (b = 0; b < NR; b++) sums[a * NR + b] += x[(size_t)a * ldx + k] * w_at(W, j + b, k); \
                    tile_store(y, ldy, r, j, MR, NR, sums, bias, accumulate);                              \
                }                                                                                          \
                for (; j < je; j++)                                                                        \
                    for (a = 0; a < MR; a++) {                                                             \
                        const ELEM_T *p0 = ROW_PTR(j);                                                     \
                        vf acc = VZERO();                                                                  \
                        for (k = 0; k < Kv; k += VL) acc = VFMA(VLOAD(x + (size_t)a * ldx + k), LOADW(p0, j, k), acc); \
                        sums[0] = vsum(acc);                                                               \
                        for (k = Kv; k < K; k++) sums[0] += x[(size_t)a * ldx + k] * w_at(W, j, k);        \
                        tile_store(y, ldy, r + a, j, 1, 1, sums, bias, accumulate);                        \
                    }                                                                                      \
            }                                                                                              \
            /* rows of X left over (decoding: the only one): ROWDOT, one row of W at a time */             \
            for (; r < n; r++)                                                                             \
                for (j = jb; j < je; j++) {                                                                \
                    sums[0] = ROWDOT(W, X + (size_t)r * ldx, j);                                           \
                    tile_store(y, ldy, r, j, 1, 1, sums, bias, accumulate);                                \
                }                                                                                          \
        }                                                                                                  \
    }

/*
 * rowdot_<type>: dot(x, W[j]), reading the row front to back: one sequential
 * stream, which the hardware prefetchers follow at full speed (the four rows
 * of a tile read side by side get about half the bandwidth from one core).
 * Four accumulators along k hide the FMA latency. Each line is also
 * prefetched into L2 PREFETCH_AHEAD bytes ahead: about 15% more bandwidth
 * per core than the hardware prefetchers reach alone (a prefetch into L1
 * instead costs a third of it).
 */
#define PREFETCH_AHEAD 16384
#if defined(__GNUC__)
/* locality 2: prefetcht1 on x86. The address may lie past W: prefetches do
 * not fault, and it is computed as an integer, not as a pointer. */
#define PREFETCH_L2(p, bytes)                                                                              \
    {                                                                                                      \
        size_t pf_off;                                                                                     \
        for (pf_off = 0; pf_off < (bytes); pf_off += 64)                                                   \
            __builtin_prefetch((const void *)((uintptr_t)(p) + PREFETCH_AHEAD + pf_off), 0, 2);            \
    }
#else
#define PREFETCH_L2(p, bytes) {} /* used without a semicolon, like the block above */
#endif
#define DEFINE_ROWDOT(NAME, ELEM_T, ROW_PTR, LOADW)                                                        \
    static float NAME(const tensor *W, const float *x, int j)                                              \
    {                                                                                                      \
        int K = W->cols, Kv = K / VL * VL, k;                                                              \
        const ELEM_T *p0 = ROW_PTR(j);                                                                     \
        vf c0 = VZERO(), c1 = VZERO(), c2 = VZERO(), c3 = VZERO();                                         \
        float sum;                                                                                         \
        for (k = 0; k + 4 * VL <= Kv; k += 4 * VL) {                                                       \
            PREFETCH_L2(p0 + k, 4 * VL * sizeof(ELEM_T))                                                   \
            c0 = VFMA(VLOAD(x + k), LOADW(p0, j, k), c0);                                                  \
            c1 = VFMA(VLOAD(x + k + VL), LOADW(p0, j, k + VL), c1);                                        \
            c2 = VFMA(VLOAD(x + k + 2 * VL), LOADW(p0, j, k + 2 * VL), c2);                                \
            c3 = VFMA(VLOAD(x + k + 3 * VL), LOADW(p0, j, k + 3 * VL), c3);                                \
        }                                                                                                  \
        for (; k < Kv; k += VL) c0 = VFMA(VLOAD(x + k), LOADW(p0, j, k), c0);                              \
        sum = vsum(VADD(VADD(c0, c1), VADD(c2, c3)));                                                      \
        for (k = Kv; k < K; k++) sum += x[k] * w_at(W, j, k);                                              \
        return sum;                                                                                        \
    }

#define ROW_F32(j) ((const float *)(const void *)W->data + (size_t)(j) * K)
#define ROW_U16(j) ((const uint16_t *)(const void *)W->data + (size_t)(j) * K)
#define ROW_Q8(j) (W->q + (size_t)(j) * W->nb * 32)
#define LOAD_F32(p, j, k) VLOAD((p) + (k))
#define LOAD_F16(p, j, k) VLOAD_F16((p) + (k))
#define LOAD_BF16(p, j, k) VLOAD_BF16((p) + (k))
#define LOAD_Q8(p, j, k) VMUL(VLOAD_Q8((p) + (k)), VSET1(SCALE_F16(W->scales[(size_t)(j) * W->nb + (k) / 32])))

DEFINE_ROWDOT(rowdot_f32, float, ROW_F32, LOAD_F32)
DEFINE_ROWDOT(rowdot_f16, uint16_t, ROW_U16, LOAD_F16)
DEFINE_ROWDOT(rowdot_bf16, uint16_t, ROW_U16, LOAD_BF16)

/* q8_0: the products of a block of 32 are summed before its scale is
 * applied (one multiply per block instead of one per weight), and the scales
 * are widened 16 at a time. */
static float rowdot_q8(const tensor *W, const float *x, int j)
{
    int K = W->cols, full = K / 32, b, c, i, k;
    const signed char *q = ROW_Q8(j);
    const uint16_t *sc = W->scales + (size_t)j * W->nb;
    float scale[16], sum;
    vf acc0 = VZERO(), acc1 = VZERO();
    for (c = 0; c < full; c += 16) {
        int nc = full - c < 16 ? full - c : 16;
        for (i = 0; i + VL <= nc; i += VL) VSTORE(scale + i, VLOAD_F16(sc + c + i));
        for (; i < nc; i++) scale[i] = SCALE_F16(sc[c + i]);
        for (b = 0; b < nc; b++) {
            const float *xb = x + (size_t)(c + b) * 32;
            const signed char *qb = q + (size_t)(c + b) * 32;
            if (!(b & 1)) PREFETCH_L2(qb, 64)
            vf s = VMUL(VLOAD(xb), VLOAD_Q8(qb));
            for (i = VL; i < 32; i += VL) s = VFMA(VLOAD(xb + i), VLOAD_Q8(qb + i), s);
            if (b & 1) acc1 = VFMA(s, VSET1(scale[b]), acc1);
            else acc0 = VFMA(s, VSET1(scale[b]), acc0);
        }
    }
    sum = vsum(VADD(acc0, acc1));
    for (k = full * 32; k < K; k++) sum += x[k] * w_at(W, j, k);
    return sum;
}

DEFINE_GEMM(gemm_f32, float, ROW_F32, LOAD_F32, rowdot_f32)
DEFINE_GEMM(gemm_f16, uint16_t, ROW_U16, LOAD_F16, rowdot_f16)
DEFINE_GEMM(gemm_bf16, uint16_t, ROW_U16, LOAD_BF16, rowdot_bf16)
DEFINE_GEMM(gemm_q8, signed char, ROW_Q8, LOAD_Q8, rowdot_q8)

static void gemm_simd(const tensor *W, const float *X, int ldx, int n, int j0, int j1, float *y, int ldy,
                      const float *bias, int accumulate)
{
    switch (W->type) {
    case GPT_DTYPE_F32: gemm_f32(W, X, ldx, n, j0, j1, y, ldy, bias, accumulate); break;
    case GPT_DTYPE_F16: gemm_f16(W, X, ldx, n, j0, j1, y, ldy, bias, accumulate); break;
    case GPT_DTYPE_BF16: gemm_bf16(W, X, ldx, n, j0, j1, y, ldy, bias, accumulate); break;
    case GPT_DTYPE_Q8_0: gemm_q8(W, X, ldx, n, j0, j1, y, ldy, bias, accumulate); break;
    }
}

/* One row of an outer product: y[0..nj) = (from_y ? y : 0) + sum_k x[k] *
 * panel[k][0..nj) (+ bias), panel rows being 64 values: op_row over floats,
 * op_row_f16 over halves (the KV cache with kv_f16), widened in registers. */
#define DEFINE_OP_ROW(NAME, ELEM_T, LOAD)                                                                  \
    static void NAME(const float *x, const ELEM_T *panel, int kc, float *y, int nj, int from_y,              \
                     const float *bias)                                                                    \
    {                                                                                                      \
        vf acc[64 / VL];                                                                                   \
        float tmp[64];                                                                                     \
        int k, v, jj;                                                                                      \
        for (v = 0; v < 64 / VL; v++) acc[v] = VZERO();                                                    \
        for (k = 0; k < kc; k++) {                                                                         \
            vf b = VSET1(x[k]);                                                                            \
            const ELEM_T *p = panel + (size_t)k * 64;                                                      \
            for (v = 0; v < 64 / VL; v++) acc[v] = VFMA(b, LOAD(p + v * VL), acc[v]);                      \
        }                                                                                                  \
        for (v = 0; v < 64 / VL; v++) VSTORE(tmp + v * VL, acc[v]);                                        \
        for (jj = 0; jj < nj; jj++) y[jj] = (from_y ? y[jj] : 0.0f) + tmp[jj] + (bias ? bias[jj] : 0.0f);  \
    }
DEFINE_OP_ROW(op_row, float, VLOAD)
DEFINE_OP_ROW(op_row_f16, uint16_t, VLOAD_F16)

static void op_rows(const float *x, int ldx, int rows, const float *panel, int kc, float *y, int ldy, int nj,
                    int from_y, const float *bias);

/* Causal attention for `rows` consecutive queries of one head: query i sees
 * keys 0 .. first_keys + i - 1. Scores are q . K^T over key panels, then
 * softmax, then P . V over value panels; both are outer products with the
 * cached panels as they are. scores holds rows * t_alloc floats. */
/* n halves to floats. */
static void f16_row_to_f32(const uint16_t *src, float *dst, size_t n)
{
    size_t i = 0;
    for (; i + VL <= n; i += VL) VSTORE(dst + i, VLOAD_F16(src + i));
    for (; i < n; i++) dst[i] = f16_to_f32(src[i]);
}

/* y[rows][0..nj) (+)= x[rows][0..kc) . panel[kc][64], where the panel is
 * f32, or f16 (kv_f16) widened 64 rows at a time into conv (64 x 64). */
static void op_rows_kv(const float *x, int ldx, int rows, const void *panel, int kv_f16, int kc, float *y, int ldy,
                       int nj, int from_y, float *conv)
{
    int k0;
    if (!kv_f16) {
        op_rows(x, ldx, rows, (const float *)panel, kc, y, ldy, nj, from_y, NULL);
        return;
    }
    if (rows == 1) { /* decoding: widen in registers, nothing to share a conversion with */
        op_row_f16(x, (const uint16_t *)panel, kc, y, nj, from_y, NULL);
        return;
    }
    for (k0 = 0; k0 < kc; k0 += KV_PANEL) {
        int n = kc - k0 < KV_PANEL ? kc - k0 : KV_PANEL;
        f16_row_to_f32((const uint16_t *)panel + (size_t)k0 * KV_PANEL, conv, (size_t)n * KV_PANEL);
        op_rows(x + k0, ldx, rows, conv, n, y, ldy, nj, from_y || k0 > 0, NULL);
    }
}

static void attend_block_simd(const float *q, int ldq, const void *keys, const void *values, int kv_f16,
                              int first_keys, int rows, int D, int t_alloc, float scale, float *scores, float *out,
                              int ldo, float *conv)
{
    int n_keys = first_keys + rows - 1, i, j, kb, db;
    size_t es = kv_f16 ? 2 : 4;
    for (kb = 0; kb * KV_PANEL < n_keys; kb++) {
        int nj = n_keys - kb * KV_PANEL < KV_PANEL ? n_keys - kb * KV_PANEL : KV_PANEL;
        op_rows_kv(q, ldq, rows, (const char *)keys + es * (size_t)kb * D * KV_PANEL, kv_f16, D,
                   scores + (size_t)kb * KV_PANEL, t_alloc, nj, 0, conv);
    }
    for (i = 0; i < rows; i++) {
        float *s = scores + (size_t)i * t_alloc, mx = -INFINITY, sum;
        int valid = first_keys + i;
        vf vs = VZERO();
        for (j = 0; j < valid; j++)
            if (s[j] > mx) mx = s[j];
        for (j = 0; j + VL <= valid; j += VL) {
            vf e = vexp(VMUL(VADD(VLOAD(s + j), VSET1(-mx)), VSET1(scale)));
            VSTORE(s + j, e);
            vs = VADD(vs, e);
        }
        sum = vsum(vs);
        for (; j < valid; j++) {
            s[j] = expf((s[j] - mx) * scale);
            sum += s[j];
        }
        for (; j < n_keys; j++) s[j] = 0.0f; /* masked: later keys add nothing */
        sum = 1.0f / sum;
        for (j = 0; j < valid; j++) s[j] *= sum;
    }
    for (db = 0; db * KV_PANEL < D; db++) {
        int nj = D - db * KV_PANEL < KV_PANEL ? D - db * KV_PANEL : KV_PANEL;
        op_rows_kv(scores, t_alloc, rows, (const char *)values + es * (size_t)db * t_alloc * KV_PANEL, kv_f16, n_keys,
                   out + (size_t)db * KV_PANEL, ldo, nj, 0, conv);
    }
}

#if defined(GPT_AVX512)
/*
 * Prompt-sized products on AVX-512: W is packed, KC columns at a time, into
 * panels of 64 outputs stored k-major (widened to f32 once, whatever W's
 * type), and a 6 x 64 tile of Y accumulates broadcast(X[r][k]) * panel[k] in
 * 24 registers. No horizontal sums, and each panel is reused by every block
 * of 6 rows. A panel of 256 columns (64 KB) lives in L2 rather than L1, but
 * Y makes half the passes of 128 columns: 512-token prompts ran 1-4% faster.
 */
#define PK_NR 64
#define PK_MR 6
#define PK_KC 256
#define PK_MIN_ROWS 12 /* fewer rows than this: the dot-product kernels */
#define PK_SCRATCH (PK_NR * PK_KC)

/* Transposes the 16 x 16 floats in r[0..16) in place. */
static void transpose16(__m512 *r)
{
    __m512 t[16];
    int i;
    for (i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (i = 0; i < 4; i++) {
        __m512d a = _mm512_castps_pd(t[4 * i]), b = _mm512_castps_pd(t[4 * i + 1]);
        __m512d c = _mm512_castps_pd(t[4 * i + 2]), d = _mm512_castps_pd(t[4 * i + 3]);
        r[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
        r[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
        r[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
        r[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
    }
    for (i = 0; i < 4; i++) {
        t[i] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0x88);
        t[i + 4] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0xdd);
        t[i + 8] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0x88);
        t[i + 12] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0xdd);
    }
    for (i = 0; i < 4; i++) {
        r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
        r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xdd);
        r[i + 4] = _mm512_shuffle_f32x4(t[i + 4], t[i + 12], 0x88);
        r[i + 12] = _mm512_shuffle_f32x4(t[i + 4], t[i + 12], 0xdd);
    }
}

/* 16 elements k.. of row j of W, widened to f32 (k is a multiple of 16). */
static __m512 load_row16(const tensor *W, size_t j, int k)
{
    size_t at = j * (size_t)W->cols + (size_t)k;
    switch (W->type) {
    case GPT_DTYPE_F16: return VLOAD_F16((const uint16_t *)(const void *)W->data + at);
    case GPT_DTYPE_BF16: return VLOAD_BF16((const uint16_t *)(const void *)W->data + at);
    case GPT_DTYPE_Q8_0:
        return VMUL(VLOAD_Q8(W->q + j * W->nb * 32 + (size_t)k), VSET1(_cvtsh_ss(W->scales[j * W->nb + (size_t)k / 32])));
    default: return VLOAD((const float *)(const void *)W->data + at);
    }
}

/* Rows [j, j+nj) and columns [k0, k0+kc) of W into p[k][PK_NR], as f32,
 * zero past nj: 16 x 16 blocks are loaded row-wise and transposed. */
static void pack_panel(const tensor *W, int j, int nj, int k0, int kc, float *p)
{
    int jj, k, i, kv = kc / 16 * 16;
    __m512 r[16];
    for (jj = 0; jj < PK_NR; jj += 16) {
        for (k = 0; k < kv; k += 16) {
            for (i = 0; i < 16; i++)
                r[i] = jj + i < nj ? load_row16(W, (size_t)(j + jj + i), k0 + k) : _mm512_setzero_ps();
            transpose16(r);
            for (i = 0; i < 16; i++) _mm512_storeu_ps(p + (size_t)(k + i) * PK_NR + jj, r[i]);
        }
        for (; k < kc; k++)
            for (i = 0; i < 16; i++) p[(size_t)k * PK_NR + jj + i] = jj + i < nj ? w_at(W, j + jj + i, k0 + k) : 0.0f;
    }
}

#define PK_DECL(r) __m512 c##r##0, c##r##1, c##r##2, c##r##3;
#define PK_INIT(r)                                                                                         \
    if (from_y) {                                                                                          \
        c##r##0 = _mm512_maskz_loadu_ps(m0, y + (size_t)(r) * ldy);                                        \
        c##r##1 = _mm512_maskz_loadu_ps(m1, y + (size_t)(r) * ldy + 16);                                   \
        c##r##2 = _mm512_maskz_loadu_ps(m2, y + (size_t)(r) * ldy + 32);                                   \
        c##r##3 = _mm512_maskz_loadu_ps(m3, y + (size_t)(r) * ldy + 48);                                   \
    } else {                                                                                               \
        c##r##0 = c##r##1 = c##r##2 = c##r##3 = _mm512_setzero_ps();                                       \
    }
#define PK_FMA(r)                                                                                          \
    {                                                                                                      \
        __m512 xb = _mm512_set1_ps(x[(size_t)(r) * ldx + k]);                                              \
        KEEP_IN_REG(xb);                                                                                   \
        c##r##0 = _mm512_fmadd_ps(xb, b0, c##r##0);                                                        \
        c##r##1 = _mm512_fmadd_ps(xb, b1, c##r##1);                                                        \
        c##r##2 = _mm512_fmadd_ps(xb, b2, c##r##2);                                                        \
        c##r##3 = _mm512_fmadd_ps(xb, b3, c##r##3);                                                        \
    }
#define PK_STORE(r)                                                                                        \
    if (bias) {                                                                                            \
        c##r##0 = _mm512_add_ps(c##r##0, v0);                                                              \
        c##r##1 = _mm512_add_ps(c##r##1, v1);                                                              \
        c##r##2 = _mm512_add_ps(c##r##2, v2);                                                              \
        c##r##3 = _mm512_add_ps(c##r##3, v3);                                                              \
    }                                                                                                      \
    _mm512_mask_storeu_ps(y + (size_t)(r) * ldy, m0, c##r##0);                                             \
    _mm512_mask_storeu_ps(y + (size_t)(r) * ldy + 16, m1, c##r##1);                                        \
    _mm512_mask_storeu_ps(y + (size_t)(r) * ldy + 32, m2, c##r##2);                                        \
    _mm512_mask_storeu_ps(y + (size_t)(r) * ldy + 48, m3, c##r##3);

/* y[0..6)[0..nj) = (from_y ? y : 0) + x[0..6)[0..kc) . panel (+ bias) */
static void pk_kernel(const float *x, int ldx, const float *panel, int kc, float *y, int ldy, int nj, int from_y,
                      const float *bias)
{
    __mmask16 m0 = (__mmask16)(nj >= 16 ? 0xFFFF : (1u << nj) - 1);
    __mmask16 m1 = (__mmask16)(nj >= 32 ? 0xFFFF : nj <= 16 ? 0 : (1u << (nj - 16)) - 1);
    __mmask16 m2 = (__mmask16)(nj >= 48 ? 0xFFFF : nj <= 32 ? 0 : (1u << (nj - 32)) - 1);
    __mmask16 m3 = (__mmask16)(nj >= 64 ? 0xFFFF : nj <= 48 ? 0 : (1u << (nj - 48)) - 1);
    __m512 v0, v1, v2, v3;
    int k;
    TILE_ROWS(PK_DECL)
    TILE_ROWS(PK_INIT)
    for (k = 0; k < kc; k++) {
        const float *p = panel + (size_t)k * PK_NR;
        __m512 b0 = _mm512_loadu_ps(p), b1 = _mm512_loadu_ps(p + 16), b2 = _mm512_loadu_ps(p + 32),
               b3 = _mm512_loadu_ps(p + 48);
        TILE_ROWS(PK_FMA)
    }
    if (bias) {
        v0 = _mm512_maskz_loadu_ps(m0, bias);
        v1 = _mm512_maskz_loadu_ps(m1, bias + 16);
        v2 = _mm512_maskz_loadu_ps(m2, bias + 32);
        v3 = _mm512_maskz_loadu_ps(m3, bias + 48);
    } else {
        v0 = v1 = v2 = v3 = _mm512_setzero_ps();
    }
    TILE_ROWS(PK_STORE)
}

static void op_rows(const float *x, int ldx, int rows, const float *panel, int kc, float *y, int ldy, int nj,
                    int from_y, const float *bias)
{
    int r = 0;
    for (; r + PK_MR <= rows; r += PK_MR)
        pk_kernel(x + (size_t)r * ldx, ldx, panel, kc, y + (size_t)r * ldy, ldy, nj, from_y, bias);
    for (; r < rows; r++) op_row(x + (size_t)r * ldx, panel, kc, y + (size_t)r * ldy, nj, from_y, bias);
}

/* Same contract as gemm_simd, for n >= PK_MIN_ROWS. scratch: PK_SCRATCH floats. */
static void gemm_packed(const tensor *W, const float *X, int ldx, int n, int j0, int j1, float *y, int ldy,
                        const float *bias, int accumulate, float *scratch)
{
    float *panel = scratch;
    int K = W->cols, j, k0;
    for (j = j0; j < j1; j += PK_NR) {
        int nj = j1 - j < PK_NR ? j1 - j : PK_NR;
        for (k0 = 0; k0 < K; k0 += PK_KC) {
            int kc = K - k0 < PK_KC ? K - k0 : PK_KC;
            const float *b = k0 + kc == K && bias ? bias + j : NULL;
            pack_panel(W, j, nj, k0, kc, panel);
            op_rows(X + k0, ldx, n, panel, kc, y + j, ldy, nj, k0 > 0 || accumulate, b);
        }
    }
}
#else
#define PK_SCRATCH 0
static void op_rows(const float *x, int ldx, int rows, const float *panel, int kc, float *y, int ldy, int nj,
                    int from_y, const float *bias)
{
    int r;
    for (r = 0; r < rows; r++) op_row(x + (size_t)r * ldx, panel, kc, y + (size_t)r * ldy, nj, from_y, bias);
}
#endif
#endif /* SIMD */
#ifndef PK_SCRATCH
#define PK_SCRATCH 0
#endif

/* ------------------------------------------------------------------------ */
/* Contexts                                                                 */

#define DEFAULT_BATCH 512
#define SCORE_ROWS 8 /* logits rows computed at once while scoring */
#define ATT_ROWS 48  /* queries of one head attended together (a multiple of 6) */

struct gpt_context {
    const gpt_model *m;
    int n_ctx, n_batch, n_threads, all_logits;
    int simd;           /* use the SIMD kernels (compiled in and not turned off) */
    int n_past;
    int logits_rows;    /* rows of `logits` that are valid (from the last gpt_eval) */
    int logits_cap;     /* rows `logits` can hold */
    int *tokens;        /* n_ctx ids in the cache */
    int t_alloc, d_alloc; /* n_ctx and head_dim rounded up to multiples of KV_PANEL */
    int kv_f16;         /* the cache holds IEEE halves instead of floats */
    void *k_cache;      /* [n_layer][n_head] panels of keys, see k_index */
    void *v_cache;      /* [n_layer][n_head] panels of values, see v_index */
    float *x;           /* [n_batch][C] residual stream */
    float *xn;          /* [n_batch][C] layer-norm output */
    float *qkv;         /* [n_batch][3C] */
    float *att;         /* [n_batch][C] attention output */
    float *hid;         /* [n_batch][4C] MLP hidden */
    float *scratch;     /* [n_threads][scratch_stride] per thread: attention scores
                           (ATT_ROWS * t_alloc), a widened row (4C), a packed panel */
    size_t scratch_stride, scratch_row, scratch_conv, scratch_panel; /* stride and offsets, in floats */
    float *logits;      /* [logits_cap][n_vocab] */
    void *arena;
    size_t arena_bytes;
    pool *pool;
    char err[320];
};

static size_t align_up(size_t n) { return (n + GPT_ALIGN - 1) / GPT_ALIGN * GPT_ALIGN; }

gpt_context_params gpt_context_defaults(void)
{
    gpt_context_params p;
    memset(&p, 0, sizeof p);
    return p;
}

static int online_cpus(void)
{
    long n = 1;
#if defined(GPT_MMAP_POSIX) && defined(_SC_NPROCESSORS_ONLN)
    n = sysconf(_SC_NPROCESSORS_ONLN);
#elif defined(_WIN32) && (defined(GPT_MMAP_WIN32) || defined(GPT_THREADS_WIN32))
    {
        SYSTEM_INFO si;
        GetSystemInfo(&si);
        n = (long)si.dwNumberOfProcessors;
    }
#endif
    if (n < 1) n = 1;
    if (n > GPT_MAX_THREADS) n = GPT_MAX_THREADS;
    return (int)n;
}

/* Whether wte and every block matrix are f32 (the header's dtype only
 * describes the file; each tensor carries its own type). */
static int all_matrices_f32(const gpt_model *m)
{
    int l;
    if (m->wte.type != GPT_DTYPE_F32) return 0;
    for (l = 0; l < m->cfg.n_layer; l++) {
        const layer *L = &m->layers[l];
        if (L->qkv_w.type != GPT_DTYPE_F32 || L->proj_w.type != GPT_DTYPE_F32 || L->fc_w.type != GPT_DTYPE_F32 ||
            L->fcproj_w.type != GPT_DTYPE_F32)
            return 0;
    }
    return 1;
}

/* The parameters a context really uses, or an error in err. */
typedef struct ctx_shape {
    int n_ctx, n_batch, n_threads, all_logits, logits_cap, t_alloc, d_alloc, kv_f16;
    size_t scratch_stride;
    size_t sizes[11]; /* bytes of each arena part, in struct order */
} ctx_shape;

static gpt_status resolve_params(const gpt_model *m, const gpt_context_params *p, ctx_shape *s, gpt_error *err)
{
    gpt_context_params d = gpt_context_defaults();
    const gpt_config *c;
    size_t C, L, V, T, B, kv;
    if (!m) return fail(err, GPT_ERR_INVALID_ARG, "model is NULL");
    c = &m->cfg;
    if (!p) p = &d;
    if (p->n_ctx < 0 || p->n_ctx > c->n_ctx)
        return fail(err, GPT_ERR_INVALID_ARG, "n_ctx %d is outside 0 .. %d (the model's context; 0 = all of it)",
                    p->n_ctx, c->n_ctx);
    if (p->n_batch < 0) return fail(err, GPT_ERR_INVALID_ARG, "n_batch %d is negative", p->n_batch);
    if (p->n_threads < 0 || p->n_threads > GPT_MAX_THREADS)
        return fail(err, GPT_ERR_INVALID_ARG, "n_threads %d is outside 0 .. %d", p->n_threads, GPT_MAX_THREADS);
    s->n_ctx = p->n_ctx ? p->n_ctx : c->n_ctx;
    s->n_batch = p->n_batch ? p->n_batch : DEFAULT_BATCH;
    if (s->n_batch > s->n_ctx) s->n_batch = s->n_ctx;
    s->n_threads = p->n_threads ? p->n_threads : online_cpus();
    s->all_logits = p->all_logits != 0;
    s->logits_cap = s->all_logits ? s->n_ctx : SCORE_ROWS;
    C = (size_t)c->n_embd;
    L = (size_t)c->n_layer;
    V = (size_t)c->n_vocab;
    T = (size_t)s->n_ctx;
    B = (size_t)s->n_batch;
    /* every factor is bounded by the format's limits, so none of these
     * products overflows a 64-bit size_t; check the 32-bit case */
    if (sizeof(size_t) < 8 && (double)L * T * C * 8 + (double)s->logits_cap * V * 4 > (double)SIZE_MAX / 2)
        return fail(err, GPT_ERR_OUT_OF_MEMORY, "a context of %d positions does not fit in this address space", s->n_ctx);
    s->t_alloc = (int)((T + KV_PANEL - 1) / KV_PANEL * KV_PANEL);
    s->d_alloc = (c->n_embd / c->n_head + KV_PANEL - 1) / KV_PANEL * KV_PANEL;
    if (p->kv_type < GPT_KV_AUTO || p->kv_type > GPT_KV_F32)
        return fail(err, GPT_ERR_INVALID_ARG, "kv_type %d is not a gpt_kv_type (0 .. 2)", p->kv_type);
    s->kv_f16 = p->kv_type == GPT_KV_F16 || (p->kv_type == GPT_KV_AUTO && !all_matrices_f32(m));
    kv = L * (size_t)s->t_alloc * C * (s->kv_f16 ? 2 : 4); /* keys; values use d_alloc per head */
    s->scratch_stride = align_up((ATT_ROWS * (size_t)s->t_alloc + 4 * C + KV_PANEL * KV_PANEL + PK_SCRATCH) *
                                 sizeof(float)) / sizeof(float);
    s->sizes[0] = align_up(T * sizeof(int));
    s->sizes[1] = align_up(kv);
    s->sizes[2] = align_up(L * (size_t)c->n_head * (size_t)s->d_alloc * (size_t)s->t_alloc * (s->kv_f16 ? 2 : 4));
    s->sizes[3] = align_up(B * C * sizeof(float));
    s->sizes[4] = align_up(B * C * sizeof(float));
    s->sizes[5] = align_up(B * 3 * C * sizeof(float));
    s->sizes[6] = align_up(B * C * sizeof(float));
    s->sizes[7] = align_up(B * 4 * C * sizeof(float));
    s->sizes[8] = (size_t)s->n_threads * s->scratch_stride * sizeof(float);
    s->sizes[9] = align_up((size_t)s->logits_cap * V * sizeof(float));
    s->sizes[10] = 0;
    return GPT_OK;
}

size_t gpt_context_memory(const gpt_model *m, const gpt_context_params *p)
{
    ctx_shape s;
    size_t total = 0;
    int i;
    if (resolve_params(m, p, &s, NULL) != GPT_OK) return 0;
    for (i = 0; i < 11; i++) total += s.sizes[i];
    return total + sizeof(gpt_context) + GPT_ALIGN;
}

gpt_context *gpt_context_new(const gpt_model *m, const gpt_context_params *p, gpt_error *err)
{
    ctx_shape s;
    gpt_context *c;
    unsigned char *a;
    size_t total = 0;
    int i;
    clear_error(err);
    if (resolve_params(m, p, &s, err) != GPT_OK) return NULL;
    for (i = 0; i < 11; i++) total += s.sizes[i];
    c = (gpt_context *)calloc(1, sizeof *c);
    if (!c) {
        fail(err, GPT_ERR_OUT_OF_MEMORY, "out of memory for a context");
        return NULL;
    }
    c->arena = aligned_alloc64(total);
    if (!c->arena) {
        free(c);
        fail(err, GPT_ERR_OUT_OF_MEMORY, "out of memory: a context of %d positions needs %.1f MB", s.n_ctx,
             (double)total / 1e6);
        return NULL;
    }
    c->arena_bytes = total;
    c->m = m;
    c->n_ctx = s.n_ctx;
    c->n_batch = s.n_batch;
    c->n_threads = s.n_threads;
    c->all_logits = s.all_logits;
    c->logits_cap = s.logits_cap;
    c->scratch_stride = s.scratch_stride;
    c->t_alloc = s.t_alloc;
    c->d_alloc = s.d_alloc;
    c->scratch_row = (size_t)ATT_ROWS * (size_t)s.t_alloc;
    c->scratch_conv = c->scratch_row + 4 * (size_t)m->cfg.n_embd;
    c->scratch_panel = c->scratch_conv + KV_PANEL * KV_PANEL;
    c->kv_f16 = s.kv_f16;
#if defined(GPT_SIMD)
    c->simd = !(p && p->reference_kernels);
#endif
    a = (unsigned char *)c->arena;
    c->tokens = (int *)(void *)a; a += s.sizes[0];
    c->k_cache = a; a += s.sizes[1];
    c->v_cache = a; a += s.sizes[2];
    c->x = (float *)(void *)a; a += s.sizes[3];
    c->xn = (float *)(void *)a; a += s.sizes[4];
    c->qkv = (float *)(void *)a; a += s.sizes[5];
    c->att = (float *)(void *)a; a += s.sizes[6];
    c->hid = (float *)(void *)a; a += s.sizes[7];
    c->scratch = (float *)(void *)a; a += s.sizes[8];
    c->logits = (float *)(void *)a;
    c->pool = pool_create(c->n_threads, err);
    if (!c->pool) {
        aligned_free64(c->arena);
        free(c);
        return NULL;
    }
    return c;
}

void gpt_context_free(gpt_context *c)
{
    if (!c) return;
    pool_destroy(c->pool);
    aligned_free64(c->arena);
    free(c);
}

/* Records a message on the context and returns status. */
static gpt_status ctx_fail(gpt_context *c, gpt_status status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vset_error(c->err, sizeof c->err, fmt, ap);
    va_end(ap);
    return status;
}

const char *gpt_context_error(const gpt_context *c) { return c ? c->err : "context is NULL"; }
int gpt_context_n_ctx(const gpt_context *c) { return c ? c->n_ctx : 0; }
int gpt_context_n_threads(const gpt_context *c) { return c ? c->n_threads : 0; }
int gpt_context_kv_type(const gpt_context *c) { return c ? (c->kv_f16 ? GPT_KV_F16 : GPT_KV_F32) : 0; }
int gpt_context_n_past(const gpt_context *c) { return c ? c->n_past : 0; }
const int *gpt_context_tokens(const gpt_context *c) { return c ? c->tokens : NULL; }

/* ------------------------------------------------------------------------ */
/* Forward pass                                                             */

typedef struct mm_job {
    gpt_context *c;
    const tensor *W;
    const float *bias;
    const float *x;
    int ldx, n;
    float *y;
    int ldy;
    enum mm_mode mode;
} mm_job;

/* Rows [b, e) of one product. */
static void mm_rows(const mm_job *j, int ith, int b, int e)
{
#if defined(GPT_SIMD)
    if (j->c->simd) {
        int r;
#if defined(GPT_AVX512)
        if (j->n >= PK_MIN_ROWS)
            gemm_packed(j->W, j->x, j->ldx, j->n, b, e, j->y, j->ldy, j->bias, j->mode == MM_ADD,
                        j->c->scratch + (size_t)ith * j->c->scratch_stride + j->c->scratch_panel);
        else
#endif
            gemm_simd(j->W, j->x, j->ldx, j->n, b, e, j->y, j->ldy, j->bias, j->mode == MM_ADD);
        if (j->mode == MM_GELU)
            for (r = 0; r < j->n; r++) gelu_rows_simd(j->y + (size_t)r * j->ldy + b, (size_t)(e - b));
        return;
    }
#endif
    matmul_range(j->W, j->bias, j->x, j->ldx, j->n, j->y, j->ldy, b, e, j->mode,
                 j->c->scratch + (size_t)ith * j->c->scratch_stride + j->c->scratch_row);
}

static void mm_task(void *arg, int ith, int nth)
{
    const mm_job *j = (const mm_job *)arg;
#if defined(GPT_HAVE_THREADS)
    if (nth > 1) {
        worker *w = j->c->pool->workers;
        int b, e, share, piece, unit = ROWS_STOLEN, t;
#if defined(GPT_SIMD) && defined(GPT_AVX512)
        if (j->c->simd && j->n >= PK_MIN_ROWS) unit = PK_NR; /* whole packed panels */
#endif
        split_range(j->W->rows, ROWS_STOLEN, ith, nth, &b, &e);
        /* pieces of 1/32 of the share (64 rows at least): few claims, and
         * a tail small enough to balance */
        share = e - b;
        piece = share / 32 < 64 ? 64 : share / 32;
        piece = (piece + unit - 1) / unit * unit;
        while (claim_rows(&w[ith].rows_left, piece, 0, &b, &e)) mm_rows(j, ith, b, e);
        for (t = 1; t < nth; t++)
            while (claim_rows(&w[(ith + t) % nth].rows_left, unit, 1, &b, &e)) mm_rows(j, ith, b, e);
        return;
    }
#endif
    (void)nth;
    mm_rows(j, ith, 0, j->W->rows);
}

static void matmul(gpt_context *c, const tensor *W, const tensor *bias, const float *x, int ldx, int n, float *y,
                   int ldy, enum mm_mode mode)
{
    mm_job j;
    j.c = c;
    j.W = W;
    j.bias = bias ? (const float *)(const void *)bias->data : NULL;
    j.x = x;
    j.ldx = ldx;
    j.n = n;
    j.y = y;
    j.ldy = ldy;
    j.mode = mode;
#if defined(GPT_HAVE_THREADS)
    if (c->pool->n > 1) {
        int t, b, e;
        for (t = 0; t < c->pool->n; t++) {
            split_range(W->rows, ROWS_STOLEN, t, c->pool->n, &b, &e);
            /* published to the workers by pool_run */
            c->pool->workers[t].rows_left = ROWS_PACK(b, e);
        }
    }
#endif
    pool_run(c->pool, mm_task, &j);
}

typedef struct ln_job {
    float *out;
    const float *x;
    const tensor *w, *b;
    int n, C;
    float eps;
} ln_job;

static void ln_task(void *arg, int ith, int nth)
{
    const ln_job *j = (const ln_job *)arg;
    int r, b, e;
    split_range(j->n, 1, ith, nth, &b, &e);
    for (r = b; r < e; r++)
        layernorm(j->out + (size_t)r * j->C, j->x + (size_t)r * j->C, (const float *)(const void *)j->w->data,
                  (const float *)(const void *)j->b->data, j->C, j->eps);
}

static void layernorm_rows(gpt_context *c, float *out, const float *x, int n, const tensor *w, const tensor *b)
{
    ln_job j;
    j.out = out;
    j.x = x;
    j.w = w;
    j.b = b;
    j.n = n;
    j.C = c->m->cfg.n_embd;
    j.eps = c->m->cfg.ln_eps;
    if (n < 4) ln_task(&j, 0, 1); /* not worth waking the workers */
    else pool_run(c->pool, ln_task, &j);
}

/* f32 -> f16 for the cache: one F16C instruction where there is one (it
 * rounds to nearest even like f32_to_f16, identical for every non-NaN float). */
#if defined(GPT_AVX512) || defined(GPT_AVX2)
#define CACHE_HALF(x) _cvtss_sh((x), 0)
#else
#define CACHE_HALF(x) f32_to_f16(x)
#endif

/* Stores head h's key and value (head_dim each, from the rows k and v of
 * n_embd) of layer l at position pos; the padding of the head's value panel
 * (d_alloc > head_dim) is zeroed. */
static void cache_kv_head(gpt_context *c, int l, int pos, int h, const float *k, const float *v)
{
    int H = c->m->cfg.n_head, D = c->m->cfg.n_embd / H, d;
    size_t kb = ((size_t)l * H + h) * c->t_alloc * D, vb = ((size_t)l * H + h) * c->t_alloc * c->d_alloc;
    const float *kh = k + (size_t)h * D, *vh = v + (size_t)h * D;
    if (c->kv_f16) {
        uint16_t *kc = (uint16_t *)c->k_cache + kb, *vc = (uint16_t *)c->v_cache + vb;
        for (d = 0; d < D; d++) kc[k_index(pos, d, D)] = CACHE_HALF(kh[d]);
        for (d = 0; d < c->d_alloc; d++) vc[v_index(pos, d, c->t_alloc)] = d < D ? CACHE_HALF(vh[d]) : 0;
    } else {
        float *kc = (float *)c->k_cache + kb, *vc = (float *)c->v_cache + vb;
        for (d = 0; d < D; d++) kc[k_index(pos, d, D)] = kh[d];
        for (d = 0; d < c->d_alloc; d++) vc[v_index(pos, d, c->t_alloc)] = d < D ? vh[d] : 0.0f;
    }
}

typedef struct att_job {
    gpt_context *c;
    int layer, n, pos0;
    int items_taken; /* atomic: items handed out so far */
} att_job;

/* Attention of item `item`: one head of one block of query rows. */
static void att_item(const att_job *j, int ith, int item)
{
    gpt_context *c = j->c;
    const gpt_config *cfg = &c->m->cfg;
    int H = cfg->n_head, C = cfg->n_embd, D = C / H;
    int rows_per_item = c->simd ? ATT_ROWS : 1;
    int r = item / H * rows_per_item, h = item % H;
    float scale = 1.0f / sqrtf((float)D);
    float *scores = c->scratch + (size_t)ith * c->scratch_stride;
    size_t es = c->kv_f16 ? 2 : 4;
    const char *keys = (const char *)c->k_cache + es * ((size_t)j->layer * H + h) * c->t_alloc * D;
    const char *values = (const char *)c->v_cache + es * ((size_t)j->layer * H + h) * c->t_alloc * c->d_alloc;
    const float *q = c->qkv + (size_t)r * 3 * C + (size_t)h * D;
    float *out = c->att + (size_t)r * C + (size_t)h * D;
    /* Decoding: the thread that attends with head h stores its key and
     * value first. Its D key dims lie on D different cache lines, which
     * are then hot for the scores, and the two threads share the work. */
    if (j->n == 1) cache_kv_head(c, j->layer, j->pos0, h, c->qkv + C, c->qkv + 2 * C);
#if defined(GPT_SIMD)
    if (c->simd) {
        int rows = j->n - r < rows_per_item ? j->n - r : rows_per_item;
        attend_block_simd(q, 3 * C, keys, values, c->kv_f16, j->pos0 + r + 1, rows, D, c->t_alloc, scale, scores, out,
                          C, c->scratch + (size_t)ith * c->scratch_stride + c->scratch_conv);
        return;
    }
#endif
    attend(q, keys, values, c->kv_f16, j->pos0 + r + 1, D, c->t_alloc, scale, scores, out);
}

/* The threads take items one at a time as they finish the last, the last
 * block of rows (the most keys) first, so that neither waits long for the
 * other at the end. */
static void att_task(void *arg, int ith, int nth)
{
    att_job *j = (att_job *)arg;
    int rows_per_item = j->c->simd ? ATT_ROWS : 1;
    int n_items = (j->n + rows_per_item - 1) / rows_per_item * j->c->m->cfg.n_head;
    (void)nth;
    for (;;) {
#if defined(GPT_HAVE_THREADS)
        int taken = ATOMIC_ADD(&j->items_taken, 1) - 1;
#else
        int taken = j->items_taken++;
#endif
        if (taken >= n_items) break;
        att_item(j, ith, n_items - 1 - taken);
    }
}

/* Runs n (<= n_batch) ids at positions n_past .. n_past+n-1 through every
 * block, filling the KV cache; leaves the residual stream in c->x. */
static void forward_blocks(gpt_context *c, const int *ids, int n)
{
    const gpt_model *m = c->m;
    const gpt_config *cfg = &m->cfg;
    int C = cfg->n_embd, pos0 = c->n_past, r, l;
    float *tmp = c->scratch; /* thread 0's scratch, free between jobs */

    for (r = 0; r < n; r++) {
        float *x = c->x + (size_t)r * C;
        int i;
        row_to_f32(&m->wte, ids[r], x);
        row_to_f32(&m->wpe, pos0 + r, tmp);
        for (i = 0; i < C; i++) x[i] += tmp[i];
    }
    for (l = 0; l < cfg->n_layer; l++) {
        const layer *L = &m->layers[l];
        att_job aj;
        layernorm_rows(c, c->xn, c->x, n, &L->ln1_w, &L->ln1_b);
        matmul(c, &L->qkv_w, &L->qkv_b, c->xn, C, n, c->qkv, 3 * C, MM_STORE);
        if (n > 1) /* (one row: att_item stores it, head by head) */
            for (r = 0; r < n; r++) {
                const float *k = c->qkv + (size_t)r * 3 * C + C;
                int h;
                for (h = 0; h < cfg->n_head; h++) cache_kv_head(c, l, pos0 + r, h, k, k + C);
            }
        aj.c = c;
        aj.layer = l;
        aj.n = n;
        aj.pos0 = pos0;
        aj.items_taken = 0;
        pool_run(c->pool, att_task, &aj);
        matmul(c, &L->proj_w, &L->proj_b, c->att, C, n, c->x, C, MM_ADD);
        layernorm_rows(c, c->xn, c->x, n, &L->ln2_w, &L->ln2_b);
        matmul(c, &L->fc_w, &L->fc_b, c->xn, C, n, c->hid, 4 * C, MM_GELU);
        matmul(c, &L->fcproj_w, &L->fcproj_b, c->hid, 4 * C, n, c->x, C, MM_ADD);
    }
}

/* Logits of residual rows [r0, r0+n) into out ([n][n_vocab]). */
static void head_rows(gpt_context *c, int r0, int n, float *out)
{
    const gpt_model *m = c->m;
    int C = m->cfg.n_embd;
    layernorm_rows(c, c->xn + (size_t)r0 * C, c->x + (size_t)r0 * C, n, &m->lnf_w, &m->lnf_b);
    matmul(c, &m->wte, NULL, c->xn + (size_t)r0 * C, C, n, out, m->cfg.n_vocab, MM_STORE);
}

static gpt_status check_ids(gpt_context *c, const int *ids, int n)
{
    int i, V = c->m->cfg.n_vocab;
    if (n < 0) return ctx_fail(c, GPT_ERR_INVALID_ARG, "n is %d; a count cannot be negative", n);
    if (n > 0 && !ids) return ctx_fail(c, GPT_ERR_INVALID_ARG, "ids is NULL");
    for (i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= V)
            return ctx_fail(c, GPT_ERR_TOKEN_RANGE, "token id %d at index %d is outside 0 .. %d", ids[i], i, V - 1);
    return GPT_OK;
}

gpt_status gpt_eval(gpt_context *c, const int *ids, int n)
{
    gpt_status st;
    int done = 0, V;
    if (!c) return GPT_ERR_INVALID_ARG;
    if ((st = check_ids(c, ids, n)) != GPT_OK) return st;
    if (n > c->n_ctx - c->n_past)
        return ctx_fail(c, GPT_ERR_CONTEXT_FULL, "%d tokens do not fit: %d of %d positions are in use", n, c->n_past,
                        c->n_ctx);
    if (n == 0) return GPT_OK;
    V = c->m->cfg.n_vocab;
    c->logits_rows = 0;
    while (done < n) {
        int chunk = n - done < c->n_batch ? n - done : c->n_batch;
        forward_blocks(c, ids + done, chunk);
        memcpy(c->tokens + c->n_past, ids + done, sizeof(int) * (size_t)chunk);
        c->n_past += chunk;
        if (c->all_logits) {
            head_rows(c, 0, chunk, c->logits + (size_t)done * V);
        } else if (done + chunk == n) {
            head_rows(c, chunk - 1, 1, c->logits);
        }
        done += chunk;
    }
    c->logits_rows = c->all_logits ? n : 1;
    return GPT_OK;
}

const float *gpt_logits(const gpt_context *c)
{
    if (!c || c->logits_rows == 0) return NULL;
    return c->logits + (size_t)(c->logits_rows - 1) * c->m->cfg.n_vocab;
}

const float *gpt_logits_at(const gpt_context *c, int i)
{
    if (!c || !c->all_logits || i < 0 || i >= c->logits_rows) return NULL;
    return c->logits + (size_t)i * c->m->cfg.n_vocab;
}

gpt_status gpt_rewind(gpt_context *c, int n_keep)
{
    if (!c) return GPT_ERR_INVALID_ARG;
    if (n_keep < 0 || n_keep > c->n_past)
        return ctx_fail(c, GPT_ERR_INVALID_ARG, "n_keep %d is outside 0 .. %d (positions in use)", n_keep, c->n_past);
    c->n_past = n_keep;
    c->logits_rows = 0;
    return GPT_OK;
}

/* Whether all n logits are finite numbers. */
static int logits_finite(const float *logits, int n)
{
    int i;
    for (i = 0; i < n; i++)
        if (!(logits[i] - logits[i] == 0.0f)) return 0; /* NaN and +-inf give NaN */
    return 1;
}

/* log p(target) from one row of logits, in double precision; NaN when a
 * logit is not finite. */
static float log_softmax_at(const float *logits, int V, int target)
{
    double mx = -INFINITY, sum = 0.0;
    int i;
    if (!logits_finite(logits, V)) return NAN;
    for (i = 0; i < V; i++)
        if (logits[i] > mx) mx = logits[i];
    for (i = 0; i < V; i++) sum += exp((double)logits[i] - mx);
    return (float)((double)logits[target] - mx - log(sum));
}

/* Appends ids[0..n) and writes, for every row r >= score_from with r + 1 < n,
 * out[r - score_from] = log p(ids[r + 1] | ...). */
static void eval_scoring(gpt_context *c, const int *ids, int n, int score_from, float *out)
{
    int done = 0, V = c->m->cfg.n_vocab;
    float *buf = c->logits; /* at least SCORE_ROWS rows */
    while (done < n) {
        int chunk = n - done < c->n_batch ? n - done : c->n_batch, r0;
        forward_blocks(c, ids + done, chunk);
        memcpy(c->tokens + c->n_past, ids + done, sizeof(int) * (size_t)chunk);
        c->n_past += chunk;
        /* rows of this chunk that predict a scored id */
        r0 = score_from > done ? score_from - done : 0;
        while (r0 < chunk && done + r0 + 1 < n) {
            int rows = chunk - r0, i;
            if (rows > SCORE_ROWS) rows = SCORE_ROWS;
            if (done + r0 + rows + 1 > n) rows = n - 1 - done - r0;
            head_rows(c, r0, rows, buf);
            for (i = 0; i < rows; i++) {
                int r = done + r0 + i;
                out[r - score_from] = log_softmax_at(buf + (size_t)i * V, V, ids[r + 1]);
            }
            r0 += rows;
        }
        done += chunk;
    }
    c->logits_rows = 0;
}

gpt_status gpt_score(gpt_context *c, const int *ids, int n, float *logprobs)
{
    return gpt_score_ex(c, ids, n, logprobs, NULL, NULL);
}

gpt_status gpt_score_ex(gpt_context *c, const int *ids, int n, float *logprobs,
                        int (*on_progress)(int scored, int total, void *user), void *user)
{
    gpt_status st;
    int W, S, start, scored_to, i;
    if (!c) return GPT_ERR_INVALID_ARG;
    if ((st = check_ids(c, ids, n)) != GPT_OK) return st;
    if (n > 1 && !logprobs) return ctx_fail(c, GPT_ERR_INVALID_ARG, "logprobs is NULL");
    if (c->n_ctx < 2) return ctx_fail(c, GPT_ERR_INVALID_ARG, "scoring needs a context of at least 2 positions");
    c->n_past = 0;
    c->logits_rows = 0;
    if (n < 2) return GPT_OK;
    W = c->n_ctx;
    S = W / 2;
    scored_to = 1; /* one past the last scored id */
    for (start = 0;; start += S) {
        int end = start + W < n ? start + W : n;
        c->n_past = 0;
        /* row r of the window predicts id start + r + 1 */
        eval_scoring(c, ids + start, end - start, scored_to - 1 - start, logprobs + (scored_to - 1));
        for (i = scored_to - 1; i < end - 1; i++)
            if (logprobs[i] != logprobs[i])
                return ctx_fail(c, GPT_ERR_NUMERIC, "the logits predicting id %d (index %d) are not finite: the model "
                                "has NaN or infinite weights, or its activations overflow", ids[i + 1], i + 1);
        scored_to = end;
        if (on_progress && on_progress(scored_to - 1, n - 1, user))
            return ctx_fail(c, GPT_ERR_CANCELLED, "scoring cancelled after %d of %d ids", scored_to - 1, n - 1);
        if (end == n) break;
    }
    return GPT_OK;
}

/* ------------------------------------------------------------------------ */
/* Sampling                                                                 */

gpt_generate_params gpt_generate_defaults(void)
{
    gpt_generate_params p;
    memset(&p, 0, sizeof p);
    p.max_new_tokens = 128;
    p.temperature = 0.8f;
    p.top_k = 40;
    p.top_p = 0.95f;
    p.min_p = 0.05f;
    p.repetition_penalty = 1.0f;
    p.repeat_last_n = -1;
    p.seed = 42;
    p.context_policy = GPT_CONTEXT_STOP;
    return p;
}

gpt_status gpt_generate_params_check(const gpt_generate_params *p, gpt_error *err)
{
    int i;
    clear_error(err);
    if (!p) return fail(err, GPT_ERR_INVALID_ARG, "generate params are NULL");
    if (p->max_new_tokens < 0)
        return fail(err, GPT_ERR_INVALID_ARG, "max_new_tokens %d is negative", p->max_new_tokens);
    if (!(p->temperature >= 0.0f && p->temperature <= 1e6f))
        return fail(err, GPT_ERR_INVALID_ARG, "temperature %g is outside 0 .. 1e6 (0 = greedy)", (double)p->temperature);
    if (p->top_k < 0) return fail(err, GPT_ERR_INVALID_ARG, "top_k %d is negative (0 = off)", p->top_k);
    if (!(p->top_p > 0.0f && p->top_p <= 1.0f))
        return fail(err, GPT_ERR_INVALID_ARG, "top_p %g is outside (0, 1] (1 = off)", (double)p->top_p);
    if (!(p->min_p >= 0.0f && p->min_p <= 1.0f))
        return fail(err, GPT_ERR_INVALID_ARG, "min_p %g is outside [0, 1] (0 = off)", (double)p->min_p);
    if (!(p->repetition_penalty > 0.0f && p->repetition_penalty <= 1e6f))
        return fail(err, GPT_ERR_INVALID_ARG, "repetition_penalty %g must be > 0 (1 = off)",
                    (double)p->repetition_penalty);
    if (p->repeat_last_n < -1)
        return fail(err, GPT_ERR_INVALID_ARG, "repeat_last_n %d is below -1 (-1 = all, 0 = none)", p->repeat_last_n);
    if (p->n_stop < 0) return fail(err, GPT_ERR_INVALID_ARG, "n_stop %d is negative", p->n_stop);
    if (p->n_stop > 0 && !p->stop) return fail(err, GPT_ERR_INVALID_ARG, "n_stop is %d but stop is NULL", p->n_stop);
    for (i = 0; i < p->n_stop; i++) {
        if (!p->stop[i] || !p->stop[i][0])
            return fail(err, GPT_ERR_INVALID_ARG, "stop string %d is NULL or empty", i);
        if (strlen(p->stop[i]) > 4096)
            return fail(err, GPT_ERR_INVALID_ARG, "stop string %d is longer than 4096 bytes", i);
    }
    if (p->context_policy != GPT_CONTEXT_STOP && p->context_policy != GPT_CONTEXT_SLIDE)
        return fail(err, GPT_ERR_INVALID_ARG, "context_policy %d is unknown", (int)p->context_policy);
    return GPT_OK;
}

typedef struct cand {
    float v; /* logit, later exp(logit - max) */
    int id;
} cand;

/* Most likely first; equal values by lower id, so the order is total. */
static int cand_before(const cand *a, const cand *b) { return a->v > b->v || (a->v == b->v && a->id < b->id); }

static int cand_cmp(const void *a, const void *b)
{
    const cand *x = (const cand *)a, *y = (const cand *)b;
    return cand_before(x, y) ? -1 : cand_before(y, x) ? 1 : 0;
}

/* Moves the k first (by cand_before) of c[0..n) to the front, unordered. */
static void select_top(cand *c, int n, int k)
{
    int lo = 0, hi = n - 1;
    while (lo < hi) {
        cand pivot = c[lo + (hi - lo) / 2], t;
        int i = lo, j = hi;
        while (i <= j) {
            while (cand_before(&c[i], &pivot)) i++;
            while (cand_before(&pivot, &c[j])) j--;
            if (i <= j) {
                t = c[i];
                c[i] = c[j];
                c[j] = t;
                i++;
                j--;
            }
        }
        if (k - 1 <= j) hi = j;
        else if (k - 1 >= i) lo = i;
        else return;
    }
}

struct gpt_sampler {
    gpt_generate_params p;
    int n_vocab;
    uint64_t rng[4];
    float *work;         /* n_vocab */
    cand *cands;         /* n_vocab */
    unsigned char *seen; /* n_vocab */
};

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t rotl64(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

/* xoshiro256**: the sampler's random numbers. */
static uint64_t rng_next(uint64_t *s)
{
    uint64_t result = rotl64(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl64(s[3], 45);
    return result;
}

/* Uniform in [0, 1) with 53 random bits. */
static double rng_uniform(uint64_t *s) { return (double)(rng_next(s) >> 11) * (1.0 / 9007199254740992.0); }

void gpt_sampler_seed(gpt_sampler *s, uint64_t seed)
{
    uint64_t x = seed;
    int i;
    if (!s) return;
    for (i = 0; i < 4; i++) s->rng[i] = splitmix64(&x);
}

gpt_sampler *gpt_sampler_new(const gpt_generate_params *p, int n_vocab, gpt_error *err)
{
    gpt_sampler *s;
    if (gpt_generate_params_check(p, err) != GPT_OK) return NULL;
    if (n_vocab < 1) {
        fail(err, GPT_ERR_INVALID_ARG, "n_vocab %d must be at least 1", n_vocab);
        return NULL;
    }
    s = (gpt_sampler *)calloc(1, sizeof *s);
    if (!s) {
        fail(err, GPT_ERR_OUT_OF_MEMORY, "out of memory for a sampler");
        return NULL;
    }
    s->p = *p;
    s->p.stop = NULL; /* not used here, and the caller's array need not outlive us */
    s->p.n_stop = 0;
    s->n_vocab = n_vocab;
    s->work = (float *)malloc(sizeof(float) * (size_t)n_vocab);
    s->cands = (cand *)malloc(sizeof(cand) * (size_t)n_vocab);
    s->seen = (unsigned char *)calloc((size_t)n_vocab, 1);
    if (!s->work || !s->cands || !s->seen) {
        gpt_sampler_free(s);
        fail(err, GPT_ERR_OUT_OF_MEMORY, "out of memory for a sampler over %d tokens", n_vocab);
        return NULL;
    }
    gpt_sampler_seed(s, p->seed);
    return s;
}

void gpt_sampler_free(gpt_sampler *s)
{
    if (!s) return;
    free(s->work);
    free(s->cands);
    free(s->seen);
    free(s);
}

int gpt_sampler_sample(gpt_sampler *s, const float *logits, const int *history, int n_history)
{
    const gpt_generate_params *p;
    float *w;
    cand *c;
    int V, i, n, best, k;
    double total, u, acc;
    float mx;
    if (!s || !logits || n_history < 0 || (n_history > 0 && !history)) return GPT_ERR_INVALID_ARG;
    p = &s->p;
    V = s->n_vocab;
    w = s->work;
    c = s->cands;
    for (i = 0; i < V; i++) w[i] = logits[i] != logits[i] ? -INFINITY : logits[i]; /* NaN never wins */

    if (p->repetition_penalty != 1.0f && n_history > 0 && p->repeat_last_n != 0) {
        int from = p->repeat_last_n < 0 || p->repeat_last_n > n_history ? 0 : n_history - p->repeat_last_n;
        for (i = from; i < n_history; i++)
            if (history[i] < 0 || history[i] >= V) return GPT_ERR_TOKEN_RANGE; /* before any state changes */
        for (i = from; i < n_history; i++) {
            int id = history[i];
            if (s->seen[id]) continue;
            s->seen[id] = 1;
            w[id] = w[id] > 0.0f ? w[id] / p->repetition_penalty : w[id] * p->repetition_penalty;
        }
        for (i = from; i < n_history; i++) s->seen[history[i]] = 0;
    }

    best = 0;
    for (i = 1; i < V; i++)
        if (w[i] > w[best]) best = i;
    if (p->temperature == 0.0f || p->top_k == 1 || w[best] == -INFINITY || w[best] == INFINITY) return best;

    /* shift by the maximum before dividing, so that the best token stays at
     * 0 even when a tiny temperature sends every other logit to -inf */
    mx = w[best];
    for (i = 0; i < V; i++) w[i] = (w[i] - mx) / p->temperature;
    w[best] = 0.0f;

    /* candidates: top-k, or every token with a finite logit */
    n = 0;
    for (i = 0; i < V; i++)
        if (w[i] > -INFINITY) {
            c[n].v = w[i];
            c[n].id = i;
            n++;
        }
    if (p->top_k > 0 && p->top_k < n) {
        select_top(c, n, p->top_k);
        n = p->top_k;
    }
    total = 0.0;
    for (i = 0; i < n; i++) {
        c[i].v = (float)exp((double)c[i].v); /* 1 for the most likely */
        total += c[i].v;
    }
    if (p->top_p < 1.0f || p->min_p > 0.0f) {
        /* Both filters keep a prefix of the candidates in order of
         * probability. Drop, before sorting, tokens that cannot be in it:
         * min-p's own threshold, and for top-p any token below
         * (1 - top_p) / n, since everything from it down sums to less than
         * the 1 - top_p that top-p may drop. */
        double floor_p = p->min_p > 0.0f ? (double)p->min_p : 0.0;
        double floor_top_p = p->top_p < 1.0f ? (1.0 - p->top_p) / n * total : 0.0;
        int m = 0;
        if (floor_top_p > floor_p) floor_p = floor_top_p;
        for (i = 0; i < n; i++)
            if (c[i].v >= floor_p) c[m++] = c[i];
        n = m;
        qsort(c, (size_t)n, sizeof(cand), cand_cmp);
        if (p->top_p < 1.0f) {
            double need = (double)p->top_p * total;
            acc = 0.0;
            for (k = 0; k < n; k++) {
                acc += c[k].v;
                if (acc >= need) break;
            }
            n = k < n ? k + 1 : n;
        }
        if (p->min_p > 0.0f) {
            k = 0;
            while (k < n && c[k].v >= p->min_p) k++;
            n = k > 0 ? k : 1;
        }
        total = 0.0;
        for (i = 0; i < n; i++) total += c[i].v;
    }
    u = rng_uniform(s->rng) * total;
    acc = 0.0;
    for (i = 0; i < n - 1; i++) {
        acc += c[i].v;
        if (u < acc) break;
    }
    return c[i].id;
}

/* ------------------------------------------------------------------------ */
/* Generation                                                               */

/* Length of the UTF-8 sequence at s[0..n) if it is one valid character
 * (shortest form, no surrogates, <= U+10FFFF), else 0. */
static int utf8_char_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    int len, i;
    unsigned lo = 0x80, hi = 0xBF;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else return 0;
    for (i = 1; i < len; i++) {
        if ((size_t)i >= n || s[i] < lo || s[i] > hi) return 0;
        lo = 0x80;
        hi = 0xBF;
    }
    return len;
}

/* Copies in[0..n) to out, replacing each maximal invalid subpart with U+FFFD
 * (as Python's errors="replace" does); out needs 3n bytes. Returns the
 * length written. */
static size_t utf8_sanitize(const unsigned char *in, size_t n, unsigned char *out)
{
    size_t i = 0, o = 0;
    while (i < n) {
        int len = utf8_char_len(in + i, n - i);
        if (len > 0) {
            memcpy(out + o, in + i, (size_t)len);
            o += (size_t)len;
            i += (size_t)len;
        } else {
            /* skip the lead byte and the continuation bytes that still fit */
            size_t j = i + 1;
            unsigned c = in[i];
            int want = c >= 0xF0 && c <= 0xF4 ? 3 : c >= 0xE0 && c <= 0xEF ? 2 : c >= 0xC2 && c <= 0xDF ? 1 : 0;
            while (want > 0 && j < n && (in[j] & 0xC0) == 0x80) {
                /* stop where the prefix stops being a possible character */
                unsigned char probe[4] = {0, 0, 0, 0};
                size_t k, plen = j - i + 1;
                int ok = 1;
                memcpy(probe, in + i, plen);
                for (k = plen; k < (size_t)(want + 1); k++) probe[k] = 0x80;
                if (c == 0xE0 && probe[1] < 0xA0) ok = 0;
                if (c == 0xED && probe[1] > 0x9F) ok = 0;
                if (c == 0xF0 && probe[1] < 0x90) ok = 0;
                if (c == 0xF4 && probe[1] > 0x8F) ok = 0;
                if (!ok) break;
                j++;
                want--;
            }
            out[o++] = 0xEF;
            out[o++] = 0xBF;
            out[o++] = 0xBD;
            i = j;
        }
    }
    return o;
}

typedef struct gen_state {
    gpt_context *c;
    const gpt_generate_params *p;
    gpt_on_text on_text;
    void *user;
    unsigned char *pend; /* text not yet delivered */
    size_t n_pend, cap_pend;
    unsigned char *clean; /* sanitizer output */
    size_t max_stop;
    int *window; /* n_ctx ids for sliding */
} gen_state;

/* Appends text, delivers what can no longer be part of a stop string, and
 * reports how generation must stop (GPT_STOP_NONE = go on). At the end of
 * the stream (final != 0) everything left is delivered. */
static gpt_stop_reason gen_push(gen_state *g, const unsigned char *bytes, size_t n, int final)
{
    size_t clean_n = utf8_sanitize(bytes, n, g->clean), emit, hold = 0, best = (size_t)-1;
    int i;
    memcpy(g->pend + g->n_pend, g->clean, clean_n);
    g->n_pend += clean_n;
    for (i = 0; i < g->p->n_stop; i++) {
        const char *s = g->p->stop[i];
        size_t sl = strlen(s), at;
        if (sl <= g->n_pend) {
            for (at = 0; at + sl <= g->n_pend && at < best; at++)
                if (memcmp(g->pend + at, s, sl) == 0) {
                    best = at;
                    break;
                }
        }
    }
    if (best != (size_t)-1) {
        /* a stop string may begin inside a character (it is bytes): the
         * text before it then ends where that character starts */
        while (best > 0 && (g->pend[best] & 0xC0) == 0x80) best--;
        if (best > 0 && g->on_text) g->on_text((const char *)g->pend, best, g->user);
        g->n_pend = 0;
        return GPT_STOP_STRING;
    }
    if (!final) {
        /* hold back the longest tail that a stop string starts with */
        for (i = 0; i < g->p->n_stop; i++) {
            const char *s = g->p->stop[i];
            size_t sl = strlen(s), h;
            for (h = sl - 1 < g->n_pend ? sl - 1 : g->n_pend; h > hold; h--)
                if (memcmp(g->pend + g->n_pend - h, s, h) == 0) {
                    hold = h;
                    break;
                }
        }
    }
    emit = g->n_pend - hold;
    while (emit > 0 && emit < g->n_pend && (g->pend[emit] & 0xC0) == 0x80) emit--; /* whole characters */
    if (emit > 0) {
        int stop = g->on_text ? g->on_text((const char *)g->pend, emit, g->user) : 0;
        memmove(g->pend, g->pend + emit, g->n_pend - emit);
        g->n_pend -= emit;
        if (stop) return GPT_STOP_CALLBACK;
    }
    return GPT_STOP_NONE;
}

/* Appends ids to the context; when they do not fit and the policy is to
 * slide, restarts the context from the newest n_ctx / 2 ids (positions are
 * absolute in GPT-2, so the kept ids are evaluated again). */
static gpt_status gen_append(gen_state *g, const int *ids, int n)
{
    gpt_context *c = g->c;
    int keep, from_ctx, i;
    if (n <= c->n_ctx - c->n_past) return gpt_eval(c, ids, n);
    if (g->p->context_policy != GPT_CONTEXT_SLIDE)
        return ctx_fail(c, GPT_ERR_CONTEXT_FULL, "the context is full: %d of %d positions are in use and %d more "
                        "are needed", c->n_past, c->n_ctx, n);
    keep = c->n_ctx / 2 > 0 ? c->n_ctx / 2 : 1;
    if (keep > c->n_past + n) keep = c->n_past + n;
    from_ctx = keep - n > 0 ? keep - n : 0;
    for (i = 0; i < from_ctx; i++) g->window[i] = c->tokens[c->n_past - from_ctx + i];
    for (i = from_ctx; i < keep; i++) g->window[i] = ids[n - (keep - from_ctx) + (i - from_ctx)];
    c->n_past = 0;
    return gpt_eval(c, g->window, keep);
}

gpt_status gpt_generate(gpt_context *c, const char *prompt, const gpt_generate_params *p, gpt_on_text on_text,
                        void *user)
{
    return gpt_generate_ex(c, prompt, p, on_text, user, NULL);
}

gpt_status gpt_generate_ex(gpt_context *c, const char *prompt, const gpt_generate_params *p, gpt_on_text on_text,
                           void *user, gpt_generate_result *result)
{
    gpt_generate_result res;
    gpt_generate_params defaults;
    gpt_error perr;
    gen_state g;
    gpt_sampler *sampler = NULL;
    gpt_decoder dec;
    const gpt_tokenizer *tok;
    int *ids = NULL, n_ids = 0, eot, i;
    char *piece = NULL;
    size_t prompt_len, max_tok;
    gpt_status st = GPT_OK;
    gpt_stop_reason why = GPT_STOP_NONE;

    memset(&res, 0, sizeof res);
    memset(&g, 0, sizeof g);
    if (result) *result = res;
    if (!c) return GPT_ERR_INVALID_ARG;
    if (!p) {
        defaults = gpt_generate_defaults();
        p = &defaults;
    }
    if ((st = gpt_generate_params_check(p, &perr)) != GPT_OK) return ctx_fail(c, st, "%s", perr.message);
    tok = c->m->tok;
    eot = gpt_tokenizer_eot(tok);
    max_tok = gpt_tokenizer_max_token_bytes(tok);
    prompt_len = prompt ? strlen(prompt) : 0;

    /* A prompt with more bytes than max_tok per free position cannot fit:
     * refuse it before tokenizing megabytes. */
    if (p->context_policy == GPT_CONTEXT_STOP && max_tok > 0 &&
        prompt_len / max_tok > (size_t)(c->n_ctx - c->n_past)) {
        res.stop_reason = GPT_STOP_CONTEXT_FULL;
        if (result) *result = res;
        return ctx_fail(c, GPT_ERR_CONTEXT_FULL, "the prompt (%lu bytes) cannot fit in the %d free positions of the "
                        "context", (unsigned long)prompt_len, c->n_ctx - c->n_past);
    }
    if (prompt_len > 0) {
        n_ids = gpt_tokenize_ex(tok, prompt, prompt_len, NULL, 0, p->special ? GPT_TOKENIZE_SPECIAL : 0);
        if (n_ids < 0) return ctx_fail(c, (gpt_status)n_ids, "cannot tokenize the prompt: %s",
                                       gpt_status_name((gpt_status)n_ids));
    }
    ids = (int *)malloc(sizeof(int) * (size_t)(n_ids + 1));
    g.window = (int *)malloc(sizeof(int) * (size_t)c->n_ctx);
    piece = (char *)malloc(max_tok + 8);
    if (!ids || !g.window || !piece) {
        st = ctx_fail(c, GPT_ERR_OUT_OF_MEMORY, "out of memory for the prompt");
        goto done;
    }
    if (n_ids > 0) gpt_tokenize_ex(tok, prompt, prompt_len, ids, n_ids, p->special ? GPT_TOKENIZE_SPECIAL : 0);
    if (n_ids == 0 && c->n_past == 0) {
        if (eot < 0) {
            st = ctx_fail(c, GPT_ERR_INVALID_ARG, "the prompt is empty and the vocabulary has no <|endoftext|> to "
                          "start from");
            goto done;
        }
        ids[n_ids++] = eot;
    }
    res.n_prompt_tokens = n_ids;

    for (i = 0; i < p->n_stop; i++)
        if (strlen(p->stop[i]) > g.max_stop) g.max_stop = strlen(p->stop[i]);
    g.c = c;
    g.p = p;
    g.on_text = on_text;
    g.user = user;
    g.cap_pend = g.max_stop + 3 * (max_tok + 8) + 16;
    g.pend = (unsigned char *)malloc(g.cap_pend);
    g.clean = (unsigned char *)malloc(3 * (max_tok + 8));
    sampler = gpt_sampler_new(p, c->m->cfg.n_vocab, &perr);
    if (!g.pend || !g.clean || !sampler) {
        st = ctx_fail(c, GPT_ERR_OUT_OF_MEMORY, "out of memory for generation");
        goto done;
    }

    if (n_ids > 0 && (st = gen_append(&g, ids, n_ids)) != GPT_OK) {
        if (st == GPT_ERR_CONTEXT_FULL) why = GPT_STOP_CONTEXT_FULL;
        goto done;
    }
    if (!gpt_logits(c)) {
        /* continuing a context whose last logits were dropped: recompute */
        int last = c->tokens[c->n_past - 1];
        c->n_past--;
        if ((st = gpt_eval(c, &last, 1)) != GPT_OK) goto done;
    }
    gpt_decoder_init(&dec);
    for (i = 0; i < p->max_new_tokens && why == GPT_STOP_NONE; i++) {
        int id, n_piece;
        if (!logits_finite(gpt_logits(c), c->m->cfg.n_vocab)) {
            st = ctx_fail(c, GPT_ERR_NUMERIC, "the logits after position %d are not finite: the model has NaN or "
                          "infinite weights, or its activations overflow", c->n_past - 1);
            goto done;
        }
        id = gpt_sampler_sample(sampler, gpt_logits(c), c->tokens, c->n_past);
        if (id < 0) {
            st = ctx_fail(c, (gpt_status)id, "sampling failed: %s", gpt_status_name((gpt_status)id));
            goto done;
        }
        res.n_generated++;
        if (id == eot && !p->ignore_eos) {
            why = GPT_STOP_EOS;
            break;
        }
        if ((st = gen_append(&g, &id, 1)) != GPT_OK) {
            if (st == GPT_ERR_CONTEXT_FULL) why = GPT_STOP_CONTEXT_FULL;
            break;
        }
        n_piece = gpt_decoder_push(&dec, tok, id, piece, max_tok + 8);
        if (n_piece < 0) {
            st = ctx_fail(c, (gpt_status)n_piece, "cannot decode token %d", id);
            goto done;
        }
        why = gen_push(&g, (const unsigned char *)piece, (size_t)n_piece, 0);
    }
    if (why == GPT_STOP_NONE) why = GPT_STOP_MAX_TOKENS;
    if (why == GPT_STOP_MAX_TOKENS || why == GPT_STOP_EOS || why == GPT_STOP_CONTEXT_FULL) {
        int n_piece = gpt_decoder_flush(&dec, piece, max_tok + 8);
        gpt_stop_reason last = gen_push(&g, (const unsigned char *)piece, n_piece > 0 ? (size_t)n_piece : 0, 1);
        if (last == GPT_STOP_STRING) {
            /* the text ended in a stop string after all: that is why it stopped */
            why = last;
            st = GPT_OK;
        }
    }

done:
    res.stop_reason = why;
    if (result) *result = res;
    gpt_sampler_free(sampler);
    free(g.pend);
    free(g.clean);
    free(g.window);
    free(piece);
    free(ids);
    return st;
}
