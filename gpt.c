/*
 * gpt.c - GPT-2 on the CPU: checkpoint loading, the forward pass with a KV
 * cache, sampling and generation, and the kernels and threads under them.
 * The tokenizer is in tokenizer.c; both implement gpt.h. docs/FORMAT.md
 * specifies the checkpoint, docs/ARCHITECTURE.md maps this file and follows
 * one token through it.
 *
 * The file reads top to bottom like the model:
 *   1. notation, types, and the machinery's declarations
 *   2. errors and names
 *   3. loading a checkpoint: header, directory, regions, tokenizer
 *   4. contexts: parameters, memory, the KV cache
 *   5. the model: embeddings, blocks (layer norm, attention, MLP), the head
 *   6. evaluating and scoring
 *   7. sampling
 *   8. generation
 * and then the machinery:
 *   9. numbers (f16, bf16)
 *  10. kernels: each scalar reference right above its SIMD versions, and the
 *      table that picks one set per context
 *  11. the thread pool
 *  12. the platform: files, mapping, CPUs
 *
 * Notation (shapes are written [rows][cols], row-major, in floats):
 *   V  n_vocab          tokens in the vocabulary
 *   T  n_ctx            positions a context holds
 *   C  n_embd           width of the residual stream
 *   H  n_head           attention heads;  D = C / H, the head size
 *   L  n_layer          transformer blocks
 *   n                   tokens (rows) in one forward step
 *   K                   the inner dimension of a matrix product
 * A weight matrix W of a linear layer has one row per output: y = x W^T + b
 * (docs/FORMAT.md: Hugging Face's Conv1D weights, transposed).
 *
 * Rules (C99 and its standard library only; SIMD, threads and mapping sit
 * behind guards with portable fallbacks that give the same results; no
 * global mutable state; every allocation goes through GPT_MALLOC /
 * GPT_REALLOC / GPT_FREE, see gpt.h). Internal names start with gp_ and GP_;
 * gpt__ marks the few helpers tokenizer.c and the gpt command share.
 *
 * MIT licence; see LICENSE.
 */

/* mmap, sysconf and pthreads are POSIX; ask for them before any header. */
#if (defined(__unix__) || defined(__APPLE__)) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif
/* and, on Linux, madvise (gpt__advise_huge, gp_release_pages) */
#if defined(__linux__) && !defined(_DEFAULT_SOURCE)
#define _DEFAULT_SOURCE 1
#endif

#define GPT_INTERNAL 1
#include "gpt.h"

#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Platform features, each with a portable fallback (section 12). */
#if !defined(GPT_NO_MMAP) && (defined(__unix__) || defined(__APPLE__))
#define GP_MMAP_POSIX 1
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#elif !defined(GPT_NO_MMAP) && defined(_WIN32)
#define GP_MMAP_WIN32 1
#endif
/* Letting go of a mapping's pages (gp_release_pages): Linux's madvise (on
 * other systems MADV_DONTNEED may be only advice, and a copy would then
 * hold the model twice) */
#if defined(GP_MMAP_POSIX) && defined(__linux__) && defined(MADV_DONTNEED) && defined(_SC_PAGESIZE)
#define GP_RELEASES_PAGES 1
#endif
/* Checking that an input is a regular file before reading it (section 12). */
#if defined(__unix__) || defined(__APPLE__)
#define GP_FILES_POSIX 1
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#elif defined(_WIN32)
#define GP_FILES_WIN32 1
#include <sys/stat.h>
#endif

/* Threads need a thread API and atomics; without both we run on one thread. */
#if !defined(GPT_NO_THREADS) && defined(__GNUC__) && (defined(__unix__) || defined(__APPLE__))
#define GP_THREADS_PTHREAD 1
#include <pthread.h>
#include <sched.h>
#elif !defined(GPT_NO_THREADS) && defined(__GNUC__) && defined(_WIN32)
#define GP_THREADS_WIN32 1
#endif
#if defined(GP_THREADS_PTHREAD) || defined(GP_THREADS_WIN32)
#define GP_HAVE_THREADS 1
#endif

#if defined(_WIN32)
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>
#endif

/* The SIMD kernels compiled in (section 10), chosen by the compiler's
 * target flags; GPT_NO_SIMD leaves only the scalar ones. */
#if !defined(GPT_NO_SIMD) && defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && \
    defined(__F16C__)
#define GP_AVX512 1
#include <immintrin.h>
#elif !defined(GPT_NO_SIMD) && defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#define GP_AVX2 1
#include <immintrin.h>
#elif !defined(GPT_NO_SIMD) && defined(__ARM_NEON) && defined(__aarch64__)
#define GP_NEON 1
#include <arm_neon.h>
#endif
#if defined(GP_AVX512) || defined(GP_AVX2) || defined(GP_NEON)
#define GP_SIMD 1
#endif

/* Integer and bf16 dot products (section 10.5): q8_0 weights meet
 * activations rounded to int8 blocks, bf16 weights activations rounded to
 * bf16. On where the build has the instructions (AVX512-VNNI, AVX-VNNI, NEON
 * dotprod; AVX512_BF16) and in the scalar build, whose reference twins do
 * the same arithmetic; elsewhere, and with GPT_NO_VNNI / GPT_NO_BF16DOT,
 * those weights are widened to f32 and meet f32 activations. The reference
 * kernels of a build always follow its SIMD kernels' choice. */
#if !defined(GPT_NO_VNNI) && (!defined(GP_SIMD) || (defined(GP_AVX512) && defined(__AVX512VNNI__)) || \
                              (defined(GP_AVX2) && defined(__AVXVNNI__)) ||                          \
                              (defined(GP_NEON) && defined(__ARM_FEATURE_DOTPROD)))
#define GP_Q8_DOT 1
#endif
#if !defined(GPT_NO_BF16DOT) && (!defined(GP_SIMD) || (defined(GP_AVX512) && defined(__AVX512BF16__)))
#define GP_BF16_DOT 1
#endif

/* f32 weights on AVX-512 (section 10.6): every output of a linear layer is
 * one chain of FMAs over k, x[0] w[0] first, as the scalar twin computes it
 * (gp_chain_ref), so both give the same bits. f16 weights, and bf16 ones
 * where they take no dot products, take the same chains over their values
 * widened to f32 (exact). Elsewhere these weights take the dot products of
 * section 10.5. */
#if defined(GP_AVX512)
#define GP_F32_CHAINS 1
#endif
/* q8_0 on AVX-512 with VNNI (section 10.5): the same, a chain per output
 * over the blocks (gp_q8_chains), one fused step per block. */
#if defined(GP_Q8_DOT) && defined(GP_AVX512)
#define GP_Q8_CHAINS 1
#endif
/* bf16 for vdpbf16ps: the weights packed in pairs of rows (gp_pair_pack) */
#if defined(GP_BF16_DOT) && defined(GP_SIMD)
#define GP_BF16_PAIRS 1
#endif
/* bf16 on Intel's AMX (Xeons since Sapphire Rapids; Linux, which lets a
 * process use the tiles once it asks): every product of bf16 weights is a
 * tile's dot products (tdpbf16ps), for one row of x as for many, so a row's
 * bits do not depend on its batch. Checked at load time (gp_amx_usable);
 * elsewhere bf16 takes vdpbf16ps. (gcc spells the macros __AMX_TILE__,
 * clang 14 __AMXTILE__.) */
#if defined(GP_BF16_DOT) && defined(GP_AVX512) && defined(__linux__) && defined(__x86_64__) && \
    !defined(GPT_NO_AMX) && (defined(__AMX_TILE__) || defined(__AMXTILE__)) &&                   \
    (defined(__AMX_BF16__) || defined(__AMXBF16__))
#define GP_BF16_AMX 1
#include <cpuid.h>
#include <sys/syscall.h>
long syscall(long number, ...); /* unistd.h declares it only beyond POSIX */
#endif

#define GP_ALIGN 64
#define GP_MAX_THREADS 256

/* ======================================================================== */
/* 1. Types                                                                 */
/* ======================================================================== */

/* A tensor of the checkpoint, used in place: [rows][cols] of its type. */
typedef struct gp_tensor {
    const unsigned char *data;
    gpt_dtype type;
    int rows, cols;
    int nb;                 /* q8_0: blocks of 32 per row */
    const signed char *q;   /* q8_0: [rows][nb * 32] quants */
    const uint16_t *scales; /* q8_0: [rows][nb] f16 scales */
    /* q8_0 weights of the linear layers where the integer products are
     * compiled in (section 10.5): the same rows packed for them, else NULL */
    const unsigned char *qp; /* [rows][np * 32] quants in groups (gp_q8_block_at), x86: as w + 128 */
    const uint16_t *sp;      /* [rows][np] f16 scales, 0 past nb */
    /* f32, f16 and bf16 weights of the linear layers where they take the
     * chains (section 10.6): the same values by groups of 16 rows, k-major,
     * f32 [(rows + 15) / 16][cols][16], f16 and bf16 in pairs of groups
     * [(rows + 31) / 32][cols][2][16] (gp_group_pack), else NULL */
    const unsigned char *groups;
    /* bf16 weights of the linear layers where AMX takes them: groups of 16
     * rows, each block of 32 columns as tdpbf16ps reads it, [(rows + 15) /
     * 16][(cols + 31) / 32][16 column pairs][16 rows][2] (gp_amx_pack),
     * else NULL */
    const uint16_t *ap;
    /* bf16 weights of the linear layers where vdpbf16ps takes them (and
     * AMX does not): pairs of rows, each step of 32 columns as the two
     * rows' 64-byte lines in turn, [(rows + 1) / 2][(cols + 31) / 32][2][32]
     * (gp_pair_pack), else NULL */
    const uint16_t *pairs;
} gp_tensor;

/* The weights of one transformer block, in the checkpoint's order. */
typedef struct gp_block {
    gp_tensor ln_1_w, ln_1_b;             /* [1][C] */
    gp_tensor attn_w, attn_b;             /* c_attn: [3C][C], [1][3C] (q, k, v) */
    gp_tensor attn_proj_w, attn_proj_b;   /* c_proj: [C][C], [1][C] */
    gp_tensor ln_2_w, ln_2_b;             /* [1][C] */
    gp_tensor fc_w, fc_b;                 /* c_fc: [4C][C], [1][4C] */
    gp_tensor mlp_proj_w, mlp_proj_b;     /* mlp c_proj: [C][4C], [1][C] */
} gp_block;

enum gp_storage { GP_STORAGE_USER, GP_STORAGE_HEAP, GP_STORAGE_MMAP };

struct gpt_model {
    gpt_config cfg;
    gp_tensor wte;          /* [V][C] token embeddings, also the output head */
    gp_tensor wpe;          /* [T][C] position embeddings */
    gp_tensor ln_f_w, ln_f_b; /* [1][C] */
    gp_block *blocks;       /* [L] */
    gpt_tokenizer *tok;
    enum gp_storage storage;
    unsigned char *heap;    /* GP_STORAGE_HEAP: the copy (gp_alloc_aligned) */
    void *map_base;         /* GP_STORAGE_MMAP */
    unsigned char *packed; /* the weights packed for the SIMD products, if any (gp_alloc_aligned; gp_pack_model) */
    size_t map_len;
#if defined(GP_MMAP_WIN32)
    HANDLE win_file, win_mapping;
#endif
};

/* The KV cache is a pool of pages of 64 positions (section 4); attention
 * reads a sequence's keys and values page by page, as they are stored. */
#define GP_PAGE 64

/* What one attention call computes: `rows` consecutive queries of one head
 * of one sequence, query i at position first_keys - 1 + i, attending to
 * positions 0 .. first_keys - 1 + i. */
typedef struct gp_attention_args {
    const float *q;          /* [rows][ldq], the head's D values first */
    int ldq;
    const unsigned char *k_base; /* page 0's keys of this layer and head: [D][64] */
    const unsigned char *v_base; /* page 0's values of this layer and head: [d_alloc/64][64][64] */
    size_t page_bytes;       /* from one page to the next */
    const int *pages;        /* the sequence's pages: positions 64 p .. 64 p + 63 are in pages[p] */
    int kv_f16;              /* the cache holds IEEE halves instead of floats */
    int first_keys, rows, D;
    int lds;                 /* floats from one row of scores to the next in the scratch */
    float scale;             /* 1 / sqrt(D) */
    float *out;              /* [rows][ldo] */
    int ldo;
} gp_attention_args;

/* The kernels a context computes with: the scalar references, or the SIMD
 * versions compiled in (section 10). Chosen once, in gpt_context_new. */
typedef struct gp_kernels {
    const char *name;
    /* y[r][j] = x[r] . W[j] + bias[j] (+ y[r][j] when accumulate), for
     * r < n and j0 <= j < j1; bias may be NULL; x has GP_ROW_PAD readable
     * rows after row n - 1. scratch: the calling thread's linear scratch,
     * where gp_linear_prepare(W, x, ldx, n, scratch) has put x's rows rounded
     * for W's dot products (q8_0, bf16), or a few rows transposed for the
     * f32 chains, before the first call for a product. */
    void (*linear)(const gp_tensor *W, const float *bias, const float *x, int ldx, int n, int j0, int j1, float *y,
                   int ldy, int accumulate, float *scratch);
    /* x[i] = gelu(x[i]) for i < n */
    void (*gelu)(float *x, size_t n);
    /* causal attention, see gp_attention_args; scratch: the calling thread's
     * scores (GP_ATT_ROWS rows of lds floats) and then GP_PAGE^2 floats */
    void (*attention)(const gp_attention_args *a, float *scratch);
    int attention_rows; /* queries one call takes at most */
} gp_kernels;

typedef struct gp_pool gp_pool;

/* One sequence of a context. */
typedef struct gp_seq {
    int n_past;           /* positions in use */
    int *tokens;          /* [T] its ids */
    int *pages;           /* [T / 64 rounded up] the page holding each 64 positions */
    int has_logits;       /* seq_logits holds its logits after its last id */
} gp_seq;

struct gpt_context {
    const gpt_model *m;
    const gp_kernels *kern;
    int n_ctx, n_batch, n_threads, all_logits, n_seq;
    gp_seq *seqs;         /* [n_seq] */
    /* the KV cache: n_pages pages of 64 positions, each [L][H] heads of keys
     * [D][64] followed by values [d_alloc / 64][64][64], in floats or halves */
    int kv_f16;
    int d_alloc;          /* D rounded up to a multiple of 64 */
    int t_alloc;          /* T rounded up to a multiple of 64: a row of attention scores */
    int n_pages;
    unsigned char *kv;
    size_t page_bytes, head_bytes, key_bytes; /* a page, one head's keys and values, its keys */
    int *page_refs;       /* [n_pages] sequences holding each page */
    int *free_pages;      /* [n_pages] a stack of the pages no sequence holds */
    int *page_scratch;    /* [n_pages] zero, for counting the writers of shared pages */
    int n_free;
    /* one forward step of n <= n_batch rows */
    int *row_seq, *row_pos; /* [n_batch] the sequence and position of each row */
    int *seq_count;       /* [n_seq] scratch for checking a batch */
    int batch_seq;        /* the sequence of a batch's entries when it has no seq array */
    float *x;             /* [n][C]  the residual stream */
    float *xn;            /* [n][C]  layer-norm output */
    float *qkv;           /* [n][3C] queries, keys, values */
    float *att;           /* [n][C]  attention output */
    float *hid;           /* [n][4C] MLP hidden */
    float *scratch;       /* [n_threads][scratch_stride] per thread: attention scores
                             (GP_ATT_ROWS * T), a widened row (4C), a KV panel
                             (GP_PAGE^2), the linear kernels' scratch */
    size_t scratch_stride, scratch_row; /* in floats */
    /* logits */
    float *seq_logits;    /* [n_seq][V] after each sequence's last kept id */
    float *logits;        /* [logits_cap][V] the rows the last batch kept */
    int *logits_entry;    /* [logits_cap] the batch entry of each kept row */
    int logits_cap, logits_rows;
    void *arena;          /* everything above, in one allocation */
    size_t arena_bytes;
    gp_pool *pool;
    char err[320];
};

/* ---- The machinery at the end of the file, declared here ---- */

/* 9. numbers */
static void gp_row_to_f32(const gp_tensor *t, int r, float *out);

/* 10. kernels */
static void gp_layernorm_row(float *out, const float *x, const float *w, const float *b, int n, float eps);
static void gp_cache_kv_head(gpt_context *c, unsigned char *head, int slot, const float *kh, const float *vh);
static const gp_kernels *gp_pick_kernels(int reference);
static size_t gp_linear_scratch_floats(const gpt_model *m, size_t rows);
static void gp_linear_prepare(const gp_tensor *W, const float *x, int ldx, int n, float *scratch);
static gpt_status gp_pack_model(gpt_model *m, const char *what, int mapped, gpt_error *err);

/* 11. the thread pool: runs fn(arg, ith, nth) on every thread and waits */
typedef void (*gp_task_fn)(void *arg, int ith, int nth);
static gp_pool *gp_pool_create(int n_threads, gpt_error *err);
static size_t gp_pool_bytes(int n_threads);
static void gp_pool_destroy(gp_pool *p);
static void gp_pool_run(gp_pool *p, gp_task_fn fn, void *arg);
static void gp_split_range(int n, int grain, int ith, int nth, int *b, int *e);
/* a matrix product shared out by rows of W, see gp_linear_task */
static void gp_pool_linear(gpt_context *c, const gp_tensor *W, const gp_tensor *bias, const float *x, int ldx, int n,
                           float *y, int ldy, int accumulate);
static int gp_atomic_take(int *counter);

/* 12. the platform */
static int gp_online_cpus(void);
static gpt_model *gp_load_mapped(const char *path, gpt_error *err);
static void gp_unmap(gpt_model *m);
static void gp_release_pages(const void *p, size_t n);
static gpt_status gp_read_whole_file(const char *path, unsigned char **out, uint64_t *len, gpt_error *err);

/* Memory: every allocation of the library goes through these (and so
 * through GPT_MALLOC, GPT_REALLOC, GPT_FREE). Shared with tokenizer.c. */
void *gpt__alloc(size_t n) { return GPT_MALLOC(n ? n : 1); }
void *gpt__realloc(void *p, size_t n) { return GPT_REALLOC(p, n ? n : 1); }
void gpt__free(void *p) { GPT_FREE(p); }
void *gpt__calloc(size_t count, size_t size)
{
    void *p;
    if (size && count > SIZE_MAX / size) return NULL;
    p = gpt__alloc(count * size);
    if (p) memset(p, 0, count * size);
    return p;
}
/* Linux gives 2 MB pages to the anonymous memory that asks for them (with
 * transparent_hugepage set to "madvise", as Debian and others ship it).
 * Decoding streams the packed weights and the KV cache: on 4 KB pages the
 * hardware's prefetchers stop at every page and the TLB misses every 4 KB
 * (2 threads decoding GPT-2 XL in q8_0 ran 6-10% faster on 2 MB pages).
 * Only the whole 2 MB pages inside the buffer are asked for; advice, so a
 * failure changes nothing. */
void gpt__advise_huge(void *p, size_t n)
{
#if defined(GP_MMAP_POSIX) && defined(MADV_HUGEPAGE)
    const uintptr_t huge = (uintptr_t)2 << 20;
    uintptr_t first = ((uintptr_t)p + huge - 1) & ~(huge - 1), end = ((uintptr_t)p + n) & ~(huge - 1);
    if (n >= 2 * huge && end > first) (void)madvise((void *)first, (size_t)(end - first), MADV_HUGEPAGE);
#else
    (void)p;
    (void)n;
#endif
}

/* Bytes gp_alloc_aligned(n) takes from the allocator. */
static size_t gp_aligned_alloc_bytes(size_t n) { return n + GP_ALIGN + sizeof(void *); }

/* C99 has no aligned allocation: over-allocate and keep the original
 * pointer just below the aligned block. */
static void *gp_alloc_aligned(size_t n)
{
    unsigned char *raw, *p;
    if (n > SIZE_MAX - GP_ALIGN - sizeof(void *)) return NULL;
    raw = (unsigned char *)gpt__alloc(gp_aligned_alloc_bytes(n));
    if (!raw) return NULL;
    p = raw + sizeof(void *);
    p += (GP_ALIGN - ((size_t)(uintptr_t)p % GP_ALIGN)) % GP_ALIGN;
    memcpy(p - sizeof(void *), &raw, sizeof(void *));
    gpt__advise_huge(p, n); /* the large ones: weights, KV caches */
    return p;
}

static void gp_free_aligned(void *p)
{
    void *raw;
    if (!p) return;
    memcpy(&raw, (unsigned char *)p - sizeof(void *), sizeof(void *));
    gpt__free(raw);
}

static size_t gp_align_up(size_t n) { return (n + GP_ALIGN - 1) / GP_ALIGN * GP_ALIGN; }

/* ======================================================================== */
/* 2. Errors and names                                                      */
/* ======================================================================== */

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

/* Fills err (if any) and returns status, so callers can `return
 * gpt__set_error(...)`. Shared with tokenizer.c and the gpt command. */
gpt_status gpt__set_error(gpt_error *err, gpt_status status, const char *fmt, ...)
{
    va_list ap;
    if (err) {
        err->status = status;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
    }
    return status;
}

void gpt__clear_error(gpt_error *err)
{
    if (err) {
        err->status = GPT_OK;
        err->message[0] = 0;
    }
}

/* Records a message on the context and returns status. */
static gpt_status gp_ctx_fail(gpt_context *c, gpt_status status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, sizeof c->err, fmt, ap);
    va_end(ap);
    return status;
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

/* ======================================================================== */
/* 3. Loading a checkpoint (docs/FORMAT.md)                                 */
/* ======================================================================== */

#define GP_HEADER_SIZE 128
#define GP_DIR_ENTRY_SIZE 32
#define GP_LIMIT_VOCAB 16777216u
#define GP_LIMIT_CTX 1048576u
#define GP_LIMIT_EMBD 65536u
#define GP_LIMIT_LAYER 4096u

static const unsigned char gp_magic[8] = {'G', 'P', 'T', 'C', 0x0D, 0x0A, 0x1A, 0x0A};

static uint32_t gp_rd_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t gp_rd_u64(const unsigned char *p) { return (uint64_t)gp_rd_u32(p) | (uint64_t)gp_rd_u32(p + 4) << 32; }

static float gp_rd_f32(const unsigned char *p)
{
    uint32_t u = gp_rd_u32(p);
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static int gp_host_is_little_endian(void)
{
    const uint32_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 1;
}

/* The canonical tensors: wte, wpe, 12 per block, ln_f.weight, ln_f.bias.
 * Shared with the checkpoint writer of the gpt command. */
static const char *const gp_block_tensor_names[12] = {
    "ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias",
    "attn.c_proj.weight", "attn.c_proj.bias", "ln_2.weight", "ln_2.bias",
    "mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias"};

/* Hugging Face style name of canonical tensor k, e.g. "h.3.mlp.c_fc.weight". */
void gpt__tensor_name(uint32_t k, uint32_t n_layer, char *buf, size_t cap)
{
    if (k == 0) snprintf(buf, cap, "wte.weight");
    else if (k == 1) snprintf(buf, cap, "wpe.weight");
    else if (k < 2 + 12 * n_layer) snprintf(buf, cap, "h.%u.%s", (k - 2) / 12, gp_block_tensor_names[(k - 2) % 12]);
    else if (k == 2 + 12 * n_layer) snprintf(buf, cap, "ln_f.weight");
    else snprintf(buf, cap, "ln_f.bias");
}

/* Canonical shape of tensor k: [rows][cols]. */
void gpt__tensor_shape(uint32_t k, const gpt_config *c, uint32_t *rows, uint32_t *cols)
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

/* Bytes of a rows x cols tensor of type t (docs/FORMAT.md); 0 on overflow. */
uint64_t gpt__tensor_nbytes(gpt_dtype t, uint64_t rows, uint64_t cols)
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

/* Tensor k of the model (the canonical order). */
static gp_tensor *gp_model_tensor(gpt_model *m, uint32_t k, uint32_t n_tensors)
{
    gp_block *b;
    if (k == 0) return &m->wte;
    if (k == 1) return &m->wpe;
    if (k == n_tensors - 2) return &m->ln_f_w;
    if (k == n_tensors - 1) return &m->ln_f_b;
    b = &m->blocks[(k - 2) / 12];
    switch ((k - 2) % 12) {
    case 0: return &b->ln_1_w;
    case 1: return &b->ln_1_b;
    case 2: return &b->attn_w;
    case 3: return &b->attn_b;
    case 4: return &b->attn_proj_w;
    case 5: return &b->attn_proj_b;
    case 6: return &b->ln_2_w;
    case 7: return &b->ln_2_b;
    case 8: return &b->fc_w;
    case 9: return &b->fc_b;
    case 10: return &b->mlp_proj_w;
    default: return &b->mlp_proj_b;
    }
}

static void gp_bind_tensor(gp_tensor *t, const unsigned char *base, uint64_t off, gpt_dtype type, uint32_t rows,
                           uint32_t cols)
{
    t->data = base + off;
    t->type = type;
    t->rows = (int)rows;
    t->cols = (int)cols;
    t->nb = (int)((cols + 31) / 32);
    t->q = NULL;
    t->scales = NULL;
    t->qp = NULL;
    t->sp = NULL;
    t->groups = NULL;
    t->ap = NULL;
    if (type == GPT_DTYPE_Q8_0) {
        uint64_t qbytes = ((uint64_t)rows * (uint64_t)t->nb * 32 + 63) / 64 * 64;
        t->q = (const signed char *)(const void *)t->data;
        t->scales = (const uint16_t *)(const void *)(t->data + qbytes);
    }
}

/* The parts of the file that must not overlap: the tokenizer section and
 * every tensor. */
typedef struct gp_region {
    uint64_t begin, end;
    uint32_t what; /* tensor index, or UINT32_MAX for the tokenizer section */
} gp_region;

static int gp_region_cmp(const void *a, const void *b)
{
    const gp_region *x = (const gp_region *)a, *y = (const gp_region *)b;
    return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : 0;
}

static void gp_region_name(char *buf, size_t cap, const gp_region *r, uint32_t n_layer)
{
    if (r->what == UINT32_MAX) snprintf(buf, cap, "the tokenizer section");
    else {
        char name[64];
        gpt__tensor_name(r->what, n_layer, name, sizeof name);
        snprintf(buf, cap, "tensor %u (%s)", r->what, name);
    }
}

/* What the header says, once checked. */
typedef struct gp_header {
    gpt_config cfg;
    uint64_t tok_off, tok_size, dir_end;
    uint32_t n_tensors;
} gp_header;

/* Checks the five hyperparameters at offsets 16..35 against the format's
 * limits. */
static gpt_status gp_parse_hparams(const unsigned char *base, const char *what, gpt_config *cfg, gpt_error *err)
{
    static const struct { unsigned off; const char *name; uint32_t limit; } hp[5] = {
        {16, "n_vocab", GP_LIMIT_VOCAB}, {20, "n_ctx", GP_LIMIT_CTX}, {24, "n_embd", GP_LIMIT_EMBD},
        {28, "n_head", GP_LIMIT_EMBD}, {32, "n_layer", GP_LIMIT_LAYER}};
    uint32_t v[5];
    int i;
    for (i = 0; i < 5; i++) {
        v[i] = gp_rd_u32(base + hp[i].off);
        if (v[i] == 0 || v[i] > hp[i].limit)
            return gpt__set_error(err, GPT_ERR_FORMAT, "%s: %s at offset %u is %u, expected 1 .. %u", what,
                                  hp[i].name, hp[i].off, v[i], hp[i].limit);
    }
    cfg->n_vocab = (int)v[0];
    cfg->n_ctx = (int)v[1];
    cfg->n_embd = (int)v[2];
    cfg->n_head = (int)v[3];
    cfg->n_layer = (int)v[4];
    if (v[2] % v[3] != 0)
        return gpt__set_error(err, GPT_ERR_FORMAT, "%s: n_embd %u is not a multiple of n_head %u", what, v[2], v[3]);
    return GPT_OK;
}

/* The 128-byte header: magic, version, hyperparameters, where the tokenizer
 * and the directory are. */
static gpt_status gp_parse_header(const unsigned char *base, uint64_t len, const char *what, int is_file,
                                  gp_header *h, gpt_error *err)
{
    uint32_t version, header_size, dt, flags;
    gpt_status st;
    float eps;
    int i;
    memset(h, 0, sizeof *h);
    if (!gp_host_is_little_endian())
        return gpt__set_error(err, GPT_ERR_UNSUPPORTED,
                              "%s: big-endian hosts are not supported (the format is little-endian)", what);
    if (len < GP_HEADER_SIZE)
        return gpt__set_error(err, GPT_ERR_FORMAT,
                              "%s: %llu bytes is too short for the %d-byte header (truncated or not a checkpoint)",
                              what, (unsigned long long)len, GP_HEADER_SIZE);
    if (memcmp(base, gp_magic, 8) != 0) {
        if (memcmp(base, gp_magic, 4) == 0)
            return gpt__set_error(err, GPT_ERR_FORMAT, "%s: magic at offset 0 starts with \"GPTC\" but its line-end "
                                  "bytes are damaged (was the file transferred in text mode?)", what);
        return gpt__set_error(err, GPT_ERR_FORMAT,
                              "%s: not a gpt.c checkpoint: bad magic at offset 0 (expected \"GPTC\\r\\n\\x1a\\n\")", what);
    }
    version = gp_rd_u32(base + 8);
    if (version != 1)
        return gpt__set_error(err, version > 1 ? GPT_ERR_UNSUPPORTED : GPT_ERR_FORMAT,
                              "%s: checkpoint version %u at offset 8 is not supported (this library reads version 1)",
                              what, version);
    header_size = gp_rd_u32(base + 12);
    if (header_size != GP_HEADER_SIZE)
        return gpt__set_error(err, GPT_ERR_FORMAT, "%s: header_size at offset 12 is %u, expected %d", what,
                              header_size, GP_HEADER_SIZE);
    if ((st = gp_parse_hparams(base, what, &h->cfg, err)) != GPT_OK) return st;
    eps = gp_rd_f32(base + 36);
    if (!(eps > 0.0f && eps < 1.0f))
        return gpt__set_error(err, GPT_ERR_FORMAT,
                              "%s: ln_eps at offset 36 is %g, expected a number with 0 < ln_eps < 1", what, (double)eps);
    h->cfg.ln_eps = eps;
    dt = gp_rd_u32(base + 40);
    if (dt > GPT_DTYPE_Q8_0)
        return gpt__set_error(err, GPT_ERR_UNSUPPORTED,
                              "%s: weight type %u at offset 40 is unknown (0 f32, 1 f16, 2 bf16, 3 q8_0)", what, dt);
    h->cfg.dtype = (gpt_dtype)dt;
    flags = gp_rd_u32(base + 44);
    if (flags != 0)
        return gpt__set_error(err, GPT_ERR_UNSUPPORTED, "%s: flags at offset 44 are 0x%x, expected 0", what, flags);
    h->tok_off = gp_rd_u64(base + 48);
    h->tok_size = gp_rd_u64(base + 56);
    h->n_tensors = gp_rd_u32(base + 72);
    for (i = 76; i < GP_HEADER_SIZE; i++)
        if (base[i] != 0)
            return gpt__set_error(err, GPT_ERR_FORMAT, "%s: reserved header byte at offset %d is 0x%02x, expected 0",
                                  what, i, base[i]);
    if (gp_rd_u64(base + 64) != len)
        return gpt__set_error(err, GPT_ERR_FORMAT, "%s: the header's file_size (offset 64) is %llu bytes but %s %llu "
                              "bytes%s", what, (unsigned long long)gp_rd_u64(base + 64),
                              is_file ? "the file has" : "the buffer has", (unsigned long long)len,
                              len < gp_rd_u64(base + 64) ? " (truncated)" : "");
    if (h->n_tensors != 12 * (uint32_t)h->cfg.n_layer + 4)
        return gpt__set_error(err, GPT_ERR_FORMAT, "%s: n_tensors at offset 72 is %u, expected 12 * n_layer + 4 = %u",
                              what, h->n_tensors, 12 * (uint32_t)h->cfg.n_layer + 4);
    h->dir_end = GP_HEADER_SIZE + (uint64_t)h->n_tensors * GP_DIR_ENTRY_SIZE;
    if (h->dir_end > len)
        return gpt__set_error(err, GPT_ERR_FORMAT, "%s: the tensor directory (offsets %d .. %llu) runs past the end "
                              "(%llu bytes)", what, GP_HEADER_SIZE, (unsigned long long)h->dir_end,
                              (unsigned long long)len);
    if (h->tok_off % GP_ALIGN != 0 || h->tok_off < h->dir_end || h->tok_off > len || h->tok_size > len - h->tok_off)
        return gpt__set_error(err, GPT_ERR_FORMAT, "%s: tokenizer section (offset %llu, %llu bytes) must start at a "
                              "multiple of 64 after the directory (%llu) and end inside the file (%llu bytes)", what,
                              (unsigned long long)h->tok_off, (unsigned long long)h->tok_size,
                              (unsigned long long)h->dir_end, (unsigned long long)len);
    return GPT_OK;
}

/* Directory entry k: type, shape, offset and size of tensor k, checked
 * against the canonical shape and the file; binds the model's tensor and
 * records its region. */
static gpt_status gp_parse_dir_entry(const unsigned char *base, uint64_t len, const char *what, const gp_header *h,
                                     uint32_t k, gpt_model *m, gp_region *region, gpt_error *err)
{
    const unsigned char *e = base + GP_HEADER_SIZE + (size_t)k * GP_DIR_ENTRY_SIZE;
    uint32_t tdt = gp_rd_u32(e), rows = gp_rd_u32(e + 4), cols = gp_rd_u32(e + 8), resv = gp_rd_u32(e + 12);
    uint64_t off = gp_rd_u64(e + 16), nbytes = gp_rd_u64(e + 24), expect;
    uint32_t erows, ecols;
    char name[64];
    gpt__tensor_name(k, (uint32_t)h->cfg.n_layer, name, sizeof name);
    gpt__tensor_shape(k, &h->cfg, &erows, &ecols);
    if (rows != erows || cols != ecols)
        return gpt__set_error(err, GPT_ERR_FORMAT, "%s: tensor %u (%s) has shape %u x %u, expected %u x %u", what, k,
                              name, rows, cols, erows, ecols);
    if (tdt > GPT_DTYPE_Q8_0)
        return gpt__set_error(err, GPT_ERR_UNSUPPORTED, "%s: tensor %u (%s) has unknown type %u", what, k, name, tdt);
    if (rows == 1 && k >= 2 && tdt != GPT_DTYPE_F32)
        return gpt__set_error(err, GPT_ERR_FORMAT, "%s: tensor %u (%s) is a vector of type %s; vectors must be f32",
                              what, k, name, gpt_dtype_name((gpt_dtype)tdt));
    if (resv != 0)
        return gpt__set_error(err, GPT_ERR_FORMAT, "%s: tensor %u (%s): reserved directory field is %u, expected 0",
                              what, k, name, resv);
    expect = gpt__tensor_nbytes((gpt_dtype)tdt, rows, cols);
    if (nbytes != expect)
        return gpt__set_error(err, GPT_ERR_FORMAT, "%s: tensor %u (%s) has nbytes %llu, expected %llu for %s %u x %u",
                              what, k, name, (unsigned long long)nbytes, (unsigned long long)expect,
                              gpt_dtype_name((gpt_dtype)tdt), rows, cols);
    if (off % GP_ALIGN != 0 || off < h->dir_end || off > len || nbytes > len - off)
        return gpt__set_error(err, GPT_ERR_FORMAT, "%s: tensor %u (%s) at offset %llu (%llu bytes) must start at a "
                              "multiple of 64 after the directory (%llu) and end inside the file (%llu bytes)", what,
                              k, name, (unsigned long long)off, (unsigned long long)nbytes,
                              (unsigned long long)h->dir_end, (unsigned long long)len);
    region->begin = off;
    region->end = off + nbytes;
    region->what = k;
    gp_bind_tensor(gp_model_tensor(m, k, h->n_tensors), base, off, (gpt_dtype)tdt, rows, cols);
    return GPT_OK;
}

/* No two regions (the tokenizer section, the tensors) may overlap. */
static gpt_status gp_check_regions(gp_region *regions, uint32_t n, uint32_t n_layer, const char *what, gpt_error *err)
{
    uint32_t k;
    qsort(regions, n, sizeof(gp_region), gp_region_cmp);
    for (k = 1; k < n; k++) {
        if (regions[k].begin < regions[k - 1].end) {
            char a[96], b[96];
            gp_region_name(a, sizeof a, &regions[k - 1], n_layer);
            gp_region_name(b, sizeof b, &regions[k], n_layer);
            return gpt__set_error(err, GPT_ERR_FORMAT, "%s: %s (offset %llu) overlaps %s (offsets %llu .. %llu)", what,
                                  b, (unsigned long long)regions[k].begin, a,
                                  (unsigned long long)regions[k - 1].begin, (unsigned long long)regions[k - 1].end);
        }
    }
    return GPT_OK;
}

/* The tokenizer section, which must agree with n_vocab. */
static gpt_status gp_load_tokenizer(const unsigned char *base, const gp_header *h, const char *what, gpt_model *m,
                                    gpt_error *err)
{
    gpt_error terr;
    gpt__clear_error(&terr);
    m->tok = gpt_tokenizer_deserialize(base + h->tok_off, (size_t)h->tok_size, &terr);
    if (!m->tok)
        return gpt__set_error(err, terr.status ? terr.status : GPT_ERR_FORMAT, "%s: tokenizer section at offset %llu: "
                              "%s", what, (unsigned long long)h->tok_off, terr.message);
    if (gpt_tokenizer_n_vocab(m->tok) != h->cfg.n_vocab)
        return gpt__set_error(err, GPT_ERR_FORMAT, "%s: the tokenizer has %d tokens but n_vocab is %d", what,
                              gpt_tokenizer_n_vocab(m->tok), h->cfg.n_vocab);
    return GPT_OK;
}

/* Validates a checkpoint image of len bytes at base and builds the model
 * around it; the tensors point into base (or into the model's copies of
 * them, gp_pack_model). `what` names the source in messages (a path, or
 * "buffer"). `mapped`: base is a mapped file, whose pages the loader lets
 * go of once it has packed or copied what they hold (gp_release_pages). */
static gpt_model *gp_parse_checkpoint(const unsigned char *base, uint64_t len, const char *what, int is_file,
                                      int mapped, gpt_error *err)
{
    gp_header h;
    gpt_model *m = NULL;
    gp_region *regions = NULL;
    uint32_t k;
    if (gp_parse_header(base, len, what, is_file, &h, err) != GPT_OK) return NULL;
    m = (gpt_model *)gpt__calloc(1, sizeof *m);
    regions = (gp_region *)gpt__alloc(sizeof(gp_region) * (h.n_tensors + 1));
    if (m) m->blocks = (gp_block *)gpt__calloc((size_t)h.cfg.n_layer, sizeof(gp_block));
    if (!m || !regions || !m->blocks) {
        gpt__set_error(err, GPT_ERR_OUT_OF_MEMORY, "%s: out of memory for the model description", what);
        goto bad;
    }
    regions[0].begin = h.tok_off;
    regions[0].end = h.tok_off + h.tok_size;
    regions[0].what = UINT32_MAX;
    for (k = 0; k < h.n_tensors; k++) {
        uint32_t rows, cols;
        if (gp_parse_dir_entry(base, len, what, &h, k, m, &regions[k + 1], err) != GPT_OK) goto bad;
        gpt__tensor_shape(k, &h.cfg, &rows, &cols);
        h.cfg.n_params += (uint64_t)rows * cols;
        h.cfg.weight_bytes += regions[k + 1].end - regions[k + 1].begin;
    }
    if (gp_check_regions(regions, h.n_tensors + 1, (uint32_t)h.cfg.n_layer, what, err) != GPT_OK) goto bad;
    gpt__free(regions);
    regions = NULL;
    if (gp_load_tokenizer(base, &h, what, m, err) != GPT_OK) goto bad;
    m->cfg = h.cfg;
    if (gp_pack_model(m, what, mapped, err) != GPT_OK) goto bad;
    return m;

bad:
    gpt__free(regions);
    if (m) {
        gp_free_aligned(m->packed);
        gpt_tokenizer_free(m->tok);
        gpt__free(m->blocks);
        gpt__free(m);
    }
    return NULL;
}

/* A model over a heap copy of len bytes that it then owns. */
static gpt_model *gp_load_owned_copy(unsigned char *copy, uint64_t len, const char *what, int is_file, gpt_error *err)
{
    gpt_model *m = gp_parse_checkpoint(copy, len, what, is_file, 0, err);
    if (!m) {
        gp_free_aligned(copy);
        return NULL;
    }
    m->storage = GP_STORAGE_HEAP;
    m->heap = copy;
    return m;
}

gpt_model *gpt_model_load_memory(const void *buf, size_t len, gpt_error *err)
{
    unsigned char *copy;
    gpt__clear_error(err);
    if (!buf) {
        gpt__set_error(err, GPT_ERR_INVALID_ARG, "gpt_model_load_memory: buf is NULL");
        return NULL;
    }
    copy = (unsigned char *)gp_alloc_aligned(len ? len : 1);
    if (!copy) {
        gpt__set_error(err, GPT_ERR_OUT_OF_MEMORY, "buffer: out of memory copying %llu bytes", (unsigned long long)len);
        return NULL;
    }
    memcpy(copy, buf, len);
    return gp_load_owned_copy(copy, len, "buffer", 0, err);
}

gpt_model *gpt_model_load_memory_inplace(const void *buf, size_t len, gpt_error *err)
{
    gpt_model *m;
    gpt__clear_error(err);
    if (!buf) {
        gpt__set_error(err, GPT_ERR_INVALID_ARG, "gpt_model_load_memory_inplace: buf is NULL");
        return NULL;
    }
    if ((size_t)(uintptr_t)buf % GP_ALIGN != 0) {
        gpt__set_error(err, GPT_ERR_INVALID_ARG, "gpt_model_load_memory_inplace: buf is not aligned to %d bytes "
                       "(gpt_model_load_memory copies it instead)", GP_ALIGN);
        return NULL;
    }
    m = gp_parse_checkpoint((const unsigned char *)buf, len, "buffer", 0, 0, err);
    if (m) m->storage = GP_STORAGE_USER;
    return m;
}

/* Reads the whole file into memory (where mapping is not available, fails,
 * or is not wanted). */
static gpt_model *gp_load_read(const char *path, gpt_error *err)
{
    unsigned char *buf = NULL;
    uint64_t len = 0;
    if (gp_read_whole_file(path, &buf, &len, err) != GPT_OK) return NULL;
    return gp_load_owned_copy(buf, len, path, 1, err);
}

gpt_model *gpt_model_load(const char *path, gpt_error *err) { return gpt_model_load_ex(path, NULL, err); }

gpt_model *gpt_model_load_ex(const char *path, const gpt_load_params *p, gpt_error *err)
{
    gpt__clear_error(err);
    if (!path) {
        gpt__set_error(err, GPT_ERR_INVALID_ARG, "gpt_model_load: path is NULL");
        return NULL;
    }
    if (p && p->no_mmap) return gp_load_read(path, err);
    return gp_load_mapped(path, err);
}

void gpt_model_free(gpt_model *m)
{
    if (!m) return;
    gpt_tokenizer_free(m->tok);
    gpt__free(m->blocks);
    gp_free_aligned(m->packed);
    if (m->storage == GP_STORAGE_HEAP) gp_free_aligned(m->heap);
    if (m->storage == GP_STORAGE_MMAP) gp_unmap(m);
    gpt__free(m);
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

/* ======================================================================== */
/* 4. Contexts: parameters, memory, sequences and the KV cache              */
/* ======================================================================== */

#define GP_DEFAULT_BATCH 512
#define GP_SCORE_ROWS 8 /* logits rows computed at once while scoring */
#define GP_ATT_ROWS 48  /* queries of one head the SIMD attention takes together (a multiple of 6) */
#define GP_ROW_PAD 8    /* rows of activations past the last a product may read (and ignore) */

/*
 * The KV cache is one pool of pages shared by the context's sequences. A
 * page holds 64 positions of one sequence for every layer and head:
 *   keys:   [L][H] of [d][position % 64]                (D x 64)
 *   values: [L][H] of [d / 64][position % 64][d % 64]   (d_alloc x 64)
 * so that both attention products are outer products over a page as it is
 * stored (docs/PERFORMANCE.md); the value dims from D to d_alloc are zero.
 * Position p of a sequence is in its page pages[p / 64]. Pages are
 * reference-counted: gpt_seq_fork shares its source's pages, and a sequence
 * about to write into a page it shares first gets a copy (copy on write).
 */

/* Where a head's keys and values start in a page. */
static unsigned char *gp_page_keys(const gpt_context *c, int page, int layer, int head)
{
    return c->kv + (size_t)page * c->page_bytes + ((size_t)layer * c->m->cfg.n_head + head) * c->head_bytes;
}

gpt_context_params gpt_context_defaults(void)
{
    gpt_context_params p;
    memset(&p, 0, sizeof p);
    return p;
}

/* Whether wte and every block matrix are f32 (the header's dtype only
 * describes the file; each tensor carries its own type). */
static int gp_all_matrices_f32(const gpt_model *m)
{
    int l;
    if (m->wte.type != GPT_DTYPE_F32) return 0;
    for (l = 0; l < m->cfg.n_layer; l++) {
        const gp_block *b = &m->blocks[l];
        if (b->attn_w.type != GPT_DTYPE_F32 || b->attn_proj_w.type != GPT_DTYPE_F32 || b->fc_w.type != GPT_DTYPE_F32 ||
            b->mlp_proj_w.type != GPT_DTYPE_F32)
            return 0;
    }
    return 1;
}

/* The parts of a context's one allocation, in order. */
enum { GP_PART_SEQS, GP_PART_TOKENS, GP_PART_PAGE_TABLES, GP_PART_PAGE_REFS, GP_PART_FREE_PAGES, GP_PART_KV,
       GP_PART_ROWS, GP_PART_X, GP_PART_XN, GP_PART_QKV, GP_PART_ATT, GP_PART_HID, GP_PART_SCRATCH,
       GP_PART_SEQ_LOGITS, GP_PART_LOGITS, GP_PART_LOGITS_ENTRY, GP_N_PARTS };

/* The parameters a context really uses, and its memory. */
typedef struct gp_ctx_shape {
    int n_ctx, n_batch, n_threads, all_logits, n_seq, n_pages, logits_cap, t_alloc, d_alloc, kv_f16;
    int pages_per_seq;
    size_t page_bytes, head_bytes, key_bytes, scratch_stride;
    size_t sizes[GP_N_PARTS]; /* bytes of each part of the arena */
} gp_ctx_shape;

/* Checks the parameters against the model and the format's limits. */
static gpt_status gp_check_params(const gpt_model *m, const gpt_context_params *p, gpt_error *err)
{
    const gpt_config *c = &m->cfg;
    if (p->n_ctx < 0 || p->n_ctx > c->n_ctx)
        return gpt__set_error(err, GPT_ERR_INVALID_ARG, "n_ctx %d is outside 0 .. %d (the model's context; 0 = all of "
                              "it)", p->n_ctx, c->n_ctx);
    if (p->n_batch < 0) return gpt__set_error(err, GPT_ERR_INVALID_ARG, "n_batch %d is negative", p->n_batch);
    if (p->n_threads < 0 || p->n_threads > GP_MAX_THREADS)
        return gpt__set_error(err, GPT_ERR_INVALID_ARG, "n_threads %d is outside 0 .. %d", p->n_threads,
                              GP_MAX_THREADS);
    if (p->kv_type < GPT_KV_AUTO || p->kv_type > GPT_KV_F32)
        return gpt__set_error(err, GPT_ERR_INVALID_ARG, "kv_type %d is not a gpt_kv_type (0 .. 2)", p->kv_type);
    if (p->n_seq < 0 || p->n_seq > GPT_MAX_SEQ)
        return gpt__set_error(err, GPT_ERR_INVALID_ARG, "n_seq %d is outside 0 .. %d", p->n_seq, GPT_MAX_SEQ);
    if (p->kv_size < 0) return gpt__set_error(err, GPT_ERR_INVALID_ARG, "kv_size %d is negative", p->kv_size);
    return GPT_OK;
}

static gpt_status gp_resolve_params(const gpt_model *m, const gpt_context_params *p, gp_ctx_shape *s, gpt_error *err)
{
    gpt_context_params d = gpt_context_defaults();
    const gpt_config *c;
    size_t C, L, H, V, T, B, S, es;
    gpt_status st;
    if (!m) return gpt__set_error(err, GPT_ERR_INVALID_ARG, "model is NULL");
    c = &m->cfg;
    if (!p) p = &d;
    if ((st = gp_check_params(m, p, err)) != GPT_OK) return st;
    s->n_ctx = p->n_ctx ? p->n_ctx : c->n_ctx;
    s->n_batch = p->n_batch ? p->n_batch : GP_DEFAULT_BATCH;
    s->n_threads = p->n_threads ? p->n_threads : gp_online_cpus();
    s->all_logits = p->all_logits != 0;
    s->n_seq = p->n_seq ? p->n_seq : 1;
    s->pages_per_seq = (s->n_ctx + GP_PAGE - 1) / GP_PAGE;
    s->n_pages = p->kv_size ? (int)(((size_t)p->kv_size + GP_PAGE - 1) / GP_PAGE)
                            : s->n_seq * s->pages_per_seq;
    if (s->n_batch > s->n_ctx * s->n_seq) s->n_batch = s->n_ctx * s->n_seq;
    s->logits_cap = s->all_logits ? (s->n_ctx > s->n_seq ? s->n_ctx : s->n_seq)
                                  : (s->n_seq > GP_SCORE_ROWS ? s->n_seq : GP_SCORE_ROWS);
    C = (size_t)c->n_embd;
    L = (size_t)c->n_layer;
    H = (size_t)c->n_head;
    V = (size_t)c->n_vocab;
    T = (size_t)s->n_ctx;
    B = (size_t)s->n_batch;
    S = (size_t)s->n_seq;
    /* every factor is bounded by the format's and GPT_MAX_SEQ's limits, so
     * none of these products overflows a 64-bit size_t; check the 32-bit
     * case */
    if (sizeof(size_t) < 8 && (double)L * s->n_pages * GP_PAGE * C * 8 + ((double)s->logits_cap + S) * V * 4 >
                                  (double)SIZE_MAX / 2)
        return gpt__set_error(err, GPT_ERR_OUT_OF_MEMORY, "a context of %d sequences of %d positions does not fit in "
                              "this address space", s->n_seq, s->n_ctx);
    s->t_alloc = (int)((T + GP_PAGE - 1) / GP_PAGE * GP_PAGE);
    s->d_alloc = (c->n_embd / c->n_head + GP_PAGE - 1) / GP_PAGE * GP_PAGE;
    s->kv_f16 = p->kv_type == GPT_KV_F16 || (p->kv_type == GPT_KV_AUTO && !gp_all_matrices_f32(m));
    es = s->kv_f16 ? 2 : 4;
    s->key_bytes = (C / H) * GP_PAGE * es;
    s->head_bytes = s->key_bytes + (size_t)s->d_alloc * GP_PAGE * es;
    s->page_bytes = gp_align_up(L * H * s->head_bytes);
    s->scratch_stride = gp_align_up((GP_ATT_ROWS * (size_t)s->t_alloc + 4 * C + GP_PAGE * GP_PAGE +
                                     gp_linear_scratch_floats(m, B)) * sizeof(float)) / sizeof(float);
    s->sizes[GP_PART_SEQS] = gp_align_up(S * sizeof(gp_seq));
    s->sizes[GP_PART_TOKENS] = gp_align_up(S * T * sizeof(int));
    s->sizes[GP_PART_PAGE_TABLES] = gp_align_up(S * (size_t)s->pages_per_seq * sizeof(int));
    s->sizes[GP_PART_PAGE_REFS] = gp_align_up((size_t)s->n_pages * sizeof(int));
    s->sizes[GP_PART_FREE_PAGES] = gp_align_up(2 * (size_t)s->n_pages * sizeof(int)); /* and page_scratch */
    s->sizes[GP_PART_KV] = (size_t)s->n_pages * s->page_bytes;
    s->sizes[GP_PART_ROWS] = gp_align_up((2 * B + S) * sizeof(int));
    /* GP_ROW_PAD rows more than a step's: the SIMD products read whole tiles of rows */
    s->sizes[GP_PART_X] = gp_align_up((B + GP_ROW_PAD) * C * sizeof(float));
    s->sizes[GP_PART_XN] = gp_align_up((B + GP_ROW_PAD) * C * sizeof(float));
    s->sizes[GP_PART_QKV] = gp_align_up((B + GP_ROW_PAD) * 3 * C * sizeof(float));
    s->sizes[GP_PART_ATT] = gp_align_up((B + GP_ROW_PAD) * C * sizeof(float));
    s->sizes[GP_PART_HID] = gp_align_up((B + GP_ROW_PAD) * 4 * C * sizeof(float));
    s->sizes[GP_PART_SCRATCH] = (size_t)s->n_threads * s->scratch_stride * sizeof(float);
    s->sizes[GP_PART_SEQ_LOGITS] = gp_align_up(S * V * sizeof(float));
    s->sizes[GP_PART_LOGITS] = gp_align_up((size_t)s->logits_cap * V * sizeof(float));
    s->sizes[GP_PART_LOGITS_ENTRY] = gp_align_up((size_t)s->logits_cap * sizeof(int));
    return GPT_OK;
}

static size_t gp_arena_bytes(const gp_ctx_shape *s)
{
    size_t total = 0;
    int i;
    for (i = 0; i < GP_N_PARTS; i++) total += s->sizes[i];
    return total;
}

/* Exactly what gpt_context_new allocates: the context, its arena (with the
 * room gp_alloc_aligned takes to align it) and its thread pool. */
size_t gpt_context_memory(const gpt_model *m, const gpt_context_params *p)
{
    gp_ctx_shape s;
    if (gp_resolve_params(m, p, &s, NULL) != GPT_OK) return 0;
    return sizeof(gpt_context) + gp_aligned_alloc_bytes(gp_arena_bytes(&s)) + gp_pool_bytes(s.n_threads);
}

/* Points the context's buffers into its arena. */
static void gp_carve_arena(gpt_context *c, const gp_ctx_shape *s)
{
    unsigned char *a = (unsigned char *)c->arena, *part[GP_N_PARTS];
    int i;
    for (i = 0; i < GP_N_PARTS; i++) {
        part[i] = a;
        a += s->sizes[i];
    }
    c->seqs = (gp_seq *)(void *)part[GP_PART_SEQS];
    for (i = 0; i < c->n_seq; i++) {
        c->seqs[i].n_past = 0;
        c->seqs[i].has_logits = 0;
        c->seqs[i].tokens = (int *)(void *)part[GP_PART_TOKENS] + (size_t)i * c->n_ctx;
        c->seqs[i].pages = (int *)(void *)part[GP_PART_PAGE_TABLES] + (size_t)i * s->pages_per_seq;
    }
    c->page_refs = (int *)(void *)part[GP_PART_PAGE_REFS];
    c->free_pages = (int *)(void *)part[GP_PART_FREE_PAGES];
    c->page_scratch = c->free_pages + c->n_pages;
    for (i = 0; i < c->n_pages; i++) {
        c->page_refs[i] = 0;
        c->page_scratch[i] = 0;
        c->free_pages[i] = c->n_pages - 1 - i; /* page 0 is taken first */
    }
    c->n_free = c->n_pages;
    c->kv = part[GP_PART_KV];
    c->row_seq = (int *)(void *)part[GP_PART_ROWS];
    c->row_pos = c->row_seq + c->n_batch;
    c->seq_count = c->row_pos + c->n_batch;
    c->x = (float *)(void *)part[GP_PART_X];
    c->xn = (float *)(void *)part[GP_PART_XN];
    c->qkv = (float *)(void *)part[GP_PART_QKV];
    c->att = (float *)(void *)part[GP_PART_ATT];
    c->hid = (float *)(void *)part[GP_PART_HID];
    /* the padding rows past the last row of a step: read, never used; zero
     * rather than whatever memory held */
    memset(part[GP_PART_X], 0, s->sizes[GP_PART_X]);
    memset(part[GP_PART_XN], 0, s->sizes[GP_PART_XN]);
    memset(part[GP_PART_ATT], 0, s->sizes[GP_PART_ATT]);
    memset(part[GP_PART_HID], 0, s->sizes[GP_PART_HID]);
    c->scratch = (float *)(void *)part[GP_PART_SCRATCH];
    c->seq_logits = (float *)(void *)part[GP_PART_SEQ_LOGITS];
    c->logits = (float *)(void *)part[GP_PART_LOGITS];
    c->logits_entry = (int *)(void *)part[GP_PART_LOGITS_ENTRY];
}

gpt_context *gpt_context_new(const gpt_model *m, const gpt_context_params *p, gpt_error *err)
{
    gp_ctx_shape s;
    gpt_context *c;
    size_t total;
    gpt__clear_error(err);
    if (gp_resolve_params(m, p, &s, err) != GPT_OK) return NULL;
    total = gp_arena_bytes(&s);
    c = (gpt_context *)gpt__calloc(1, sizeof *c);
    if (!c) {
        gpt__set_error(err, GPT_ERR_OUT_OF_MEMORY, "out of memory for a context");
        return NULL;
    }
    c->arena = gp_alloc_aligned(total);
    if (!c->arena) {
        gpt__free(c);
        gpt__set_error(err, GPT_ERR_OUT_OF_MEMORY, "out of memory: a context of %d sequences of %d positions needs "
                       "%.1f MB", s.n_seq, s.n_ctx, (double)total / 1e6);
        return NULL;
    }
    c->arena_bytes = total;
    c->m = m;
    c->kern = gp_pick_kernels(p && p->reference_kernels);
    c->n_ctx = s.n_ctx;
    c->n_batch = s.n_batch;
    c->n_threads = s.n_threads;
    c->all_logits = s.all_logits;
    c->n_seq = s.n_seq;
    c->n_pages = s.n_pages;
    c->logits_cap = s.logits_cap;
    c->scratch_stride = s.scratch_stride;
    c->scratch_row = (size_t)GP_ATT_ROWS * (size_t)s.t_alloc + GP_PAGE * GP_PAGE;
    c->t_alloc = s.t_alloc;
    c->d_alloc = s.d_alloc;
    c->kv_f16 = s.kv_f16;
    c->page_bytes = s.page_bytes;
    c->head_bytes = s.head_bytes;
    c->key_bytes = s.key_bytes;
    gp_carve_arena(c, &s);
    c->pool = gp_pool_create(c->n_threads, err);
    if (!c->pool) {
        gp_free_aligned(c->arena);
        gpt__free(c);
        return NULL;
    }
    return c;
}

void gpt_context_free(gpt_context *c)
{
    if (!c) return;
    gp_pool_destroy(c->pool);
    gp_free_aligned(c->arena);
    gpt__free(c);
}

const char *gpt_context_error(const gpt_context *c) { return c ? c->err : "context is NULL"; }
int gpt_context_n_ctx(const gpt_context *c) { return c ? c->n_ctx : 0; }
int gpt_context_n_threads(const gpt_context *c) { return c ? c->n_threads : 0; }
int gpt_context_kv_type(const gpt_context *c) { return c ? (c->kv_f16 ? GPT_KV_F16 : GPT_KV_F32) : 0; }
int gpt_context_n_seq(const gpt_context *c) { return c ? c->n_seq : 0; }
int gpt_context_kv_free(const gpt_context *c) { return c ? c->n_free * GP_PAGE : 0; }
int gpt_context_max_logits(const gpt_context *c) { return c ? c->logits_cap : 0; }
int gpt_context_n_past(const gpt_context *c) { return c ? c->seqs[0].n_past : 0; }
const int *gpt_context_tokens(const gpt_context *c) { return c ? c->seqs[0].tokens : NULL; }
int gpt_seq_n_past(const gpt_context *c, int seq) { return c && seq >= 0 && seq < c->n_seq ? c->seqs[seq].n_past : 0; }
const int *gpt_seq_tokens(const gpt_context *c, int seq)
{
    return c && seq >= 0 && seq < c->n_seq ? c->seqs[seq].tokens : NULL;
}

/* ---- pages ---- */

static int gp_pages_for(int positions) { return (positions + GP_PAGE - 1) / GP_PAGE; }

static void gp_page_release(gpt_context *c, int page)
{
    if (--c->page_refs[page] == 0) c->free_pages[c->n_free++] = page;
}

static int gp_page_take(gpt_context *c)
{
    int page = c->free_pages[--c->n_free];
    c->page_refs[page] = 1;
    return page;
}

/* Pages sequence s needs from the pool to grow by n positions, not
 * counting copies of a shared page (gp_copies_needed). */
static int gp_pages_needed(const gpt_context *c, int s, int n)
{
    const gp_seq *q = &c->seqs[s];
    if (n <= 0) return 0;
    return gp_pages_for(q->n_past + n) - gp_pages_for(q->n_past);
}

/* Copies of shared pages that sequences growing by count[s] positions will
 * make: a page shared by R sequences of which W write into it is copied
 * W times, or R - 1 when all of them do (the last keeps it). page_scratch
 * is left zero. */
static int gp_copies_needed(gpt_context *c, const int *count)
{
    int s, need = 0;
    for (s = 0; s < c->n_seq; s++) {
        const gp_seq *q = &c->seqs[s];
        if (count[s] > 0 && q->n_past % GP_PAGE != 0) c->page_scratch[q->pages[q->n_past / GP_PAGE]]++;
    }
    for (s = 0; s < c->n_seq; s++) {
        const gp_seq *q = &c->seqs[s];
        int page, writers, refs;
        if (count[s] <= 0 || q->n_past % GP_PAGE == 0) continue;
        page = q->pages[q->n_past / GP_PAGE];
        writers = c->page_scratch[page];
        refs = c->page_refs[page];
        if (writers == 0) continue; /* counted already */
        need += writers < refs ? writers : refs - 1;
        c->page_scratch[page] = 0;
    }
    return need;
}

/* Makes position pos of sequence s writable: a fresh page at the start of a
 * page, a private copy of a shared one. The pool has room (checked first). */
static void gp_page_prepare(gpt_context *c, int s, int pos)
{
    gp_seq *q = &c->seqs[s];
    int slot = pos / GP_PAGE, page;
    if (pos % GP_PAGE == 0) {
        q->pages[slot] = gp_page_take(c);
    } else if (c->page_refs[q->pages[slot]] > 1) {
        page = gp_page_take(c);
        memcpy(c->kv + (size_t)page * c->page_bytes, c->kv + (size_t)q->pages[slot] * c->page_bytes, c->page_bytes);
        gp_page_release(c, q->pages[slot]);
        q->pages[slot] = page;
    }
}

/* Drops positions n_keep .. n_past-1 of sequence s. */
static void gp_seq_truncate(gpt_context *c, int s, int n_keep)
{
    gp_seq *q = &c->seqs[s];
    int p;
    for (p = gp_pages_for(n_keep); p < gp_pages_for(q->n_past); p++) gp_page_release(c, q->pages[p]);
    q->n_past = n_keep;
    q->has_logits = 0;
}

static gpt_status gp_check_seq(gpt_context *c, int seq, const char *what)
{
    if (seq < 0 || seq >= c->n_seq)
        return gp_ctx_fail(c, GPT_ERR_INVALID_ARG, "%s: sequence %d is outside 0 .. %d", what, seq, c->n_seq - 1);
    return GPT_OK;
}

gpt_status gpt_seq_rewind(gpt_context *c, int seq, int n_keep)
{
    gpt_status st;
    if (!c) return GPT_ERR_INVALID_ARG;
    if ((st = gp_check_seq(c, seq, "gpt_seq_rewind")) != GPT_OK) return st;
    if (n_keep < 0 || n_keep > c->seqs[seq].n_past)
        return gp_ctx_fail(c, GPT_ERR_INVALID_ARG, "n_keep %d is outside 0 .. %d (positions sequence %d holds)",
                           n_keep, c->seqs[seq].n_past, seq);
    gp_seq_truncate(c, seq, n_keep);
    return GPT_OK;
}

gpt_status gpt_seq_clear(gpt_context *c, int seq)
{
    gpt_status st;
    if (!c) return GPT_ERR_INVALID_ARG;
    if ((st = gp_check_seq(c, seq, "gpt_seq_clear")) != GPT_OK) return st;
    gp_seq_truncate(c, seq, 0);
    return GPT_OK;
}

gpt_status gpt_rewind(gpt_context *c, int n_keep)
{
    if (!c) return GPT_ERR_INVALID_ARG;
    if (n_keep < 0 || n_keep > c->seqs[0].n_past)
        return gp_ctx_fail(c, GPT_ERR_INVALID_ARG, "n_keep %d is outside 0 .. %d (positions in use)", n_keep,
                           c->seqs[0].n_past);
    gp_seq_truncate(c, 0, n_keep);
    c->logits_rows = 0;
    return GPT_OK;
}

/* Beam search's reordering: sequence seqs[i] becomes a copy of what
 * sequence seqs[from[i]] held, for i < n, all at once (a parent may have
 * several children, or none). Pages are shared, not copied. scratch: n *
 * (pages per sequence + n_ctx + 1) ints. */
static void gp_seqs_reorder(gpt_context *c, const int *seqs, const int *from, int n, int *scratch)
{
    int pps = gp_pages_for(c->n_ctx), i, p;
    int *pages = scratch, *tokens = scratch + (size_t)n * pps, *n_past = tokens + (size_t)n * c->n_ctx;
    for (i = 0; i < n; i++) { /* take a reference to what each will hold */
        const gp_seq *a = &c->seqs[seqs[from[i]]];
        for (p = 0; p < gp_pages_for(a->n_past); p++) {
            pages[(size_t)i * pps + p] = a->pages[p];
            c->page_refs[a->pages[p]]++;
        }
        memcpy(tokens + (size_t)i * c->n_ctx, a->tokens, sizeof(int) * (size_t)a->n_past);
        n_past[i] = a->n_past;
    }
    for (i = 0; i < n; i++) { /* drop what each held, then take its new part */
        gp_seq *b = &c->seqs[seqs[i]];
        gp_seq_truncate(c, seqs[i], 0);
        memcpy(b->pages, pages + (size_t)i * pps, sizeof(int) * (size_t)gp_pages_for(n_past[i]));
        memcpy(b->tokens, tokens + (size_t)i * c->n_ctx, sizeof(int) * (size_t)n_past[i]);
        b->n_past = n_past[i];
        b->has_logits = 0; /* the beams' next tokens are evaluated right after */
    }
}

gpt_status gpt_seq_fork(gpt_context *c, int src, int dst)
{
    gpt_status st;
    gp_seq *a, *b;
    int p;
    if (!c) return GPT_ERR_INVALID_ARG;
    if ((st = gp_check_seq(c, src, "gpt_seq_fork")) != GPT_OK || (st = gp_check_seq(c, dst, "gpt_seq_fork")) != GPT_OK)
        return st;
    if (src == dst) return gp_ctx_fail(c, GPT_ERR_INVALID_ARG, "gpt_seq_fork: sequence %d onto itself", src);
    a = &c->seqs[src];
    b = &c->seqs[dst];
    gp_seq_truncate(c, dst, 0);
    for (p = 0; p < gp_pages_for(a->n_past); p++) {
        b->pages[p] = a->pages[p];
        c->page_refs[a->pages[p]]++;
    }
    memcpy(b->tokens, a->tokens, sizeof(int) * (size_t)a->n_past);
    b->n_past = a->n_past;
    b->has_logits = a->has_logits;
    if (a->has_logits) {
        size_t V = (size_t)c->m->cfg.n_vocab;
        memcpy(c->seq_logits + (size_t)dst * V, c->seq_logits + (size_t)src * V, sizeof(float) * V);
    }
    return GPT_OK;
}

/* ======================================================================== */
/* 5. The model                                                             */
/* ======================================================================== */
/*
 * One forward step takes n rows, row r a token of sequence row_seq[r] at
 * position row_pos[r], and leaves their residual stream in x [n][C]:
 *
 *   x = wte[id] + wpe[pos]                                      embeddings
 *   for each block:
 *     xn  = ln_1(x)                                             layer norm
 *     qkv = xn c_attn^T + b                                     [n][3C]
 *     cache k, v of every row                                   KV store
 *     att = softmax(q k^T / sqrt(D), causal) v, per head        [n][C]
 *     x  += att c_proj^T + b                                    residual
 *     xn  = ln_2(x)
 *     hid = gelu(xn c_fc^T + b)                                 [n][4C]
 *     x  += hid mlp_c_proj^T + b                                residual
 *   logits = ln_f(x) wte^T                                      the head, [rows][V]
 *
 * Each step below runs on the context's threads. Every number a row gets is
 * computed from that row alone, in the same order whatever the other rows
 * are, and whole by one thread: so a sequence's logits do not depend on the
 * number of threads, on what else is in its batch, or on how its tokens are
 * split into steps (batch invariance).
 */

/* x[r] = wte[ids[r]] + wpe[row_pos[r]]                  x: [n][C] */
static void gp_embed(gpt_context *c, const int *ids, int n)
{
    const gpt_model *m = c->m;
    int C = m->cfg.n_embd, r, i;
    float *pos_row = c->scratch; /* thread 0's scratch, free between steps */
    for (r = 0; r < n; r++) {
        float *x = c->x + (size_t)r * C;
        gp_row_to_f32(&m->wte, ids[r], x);
        gp_row_to_f32(&m->wpe, c->row_pos[r], pos_row);
        for (i = 0; i < C; i++) x[i] += pos_row[i];
    }
}

typedef struct gp_layernorm_job {
    float *out;
    const float *x;
    const int *rows; /* rows of x to normalize (NULL: 0 .. n-1) into out 0 .. n-1 */
    const gp_tensor *w, *b;
    int n, C;
    float eps;
} gp_layernorm_job;

static void gp_layernorm_task(void *arg, int ith, int nth)
{
    const gp_layernorm_job *j = (const gp_layernorm_job *)arg;
    int r, b, e;
    gp_split_range(j->n, 1, ith, nth, &b, &e);
    for (r = b; r < e; r++)
        gp_layernorm_row(j->out + (size_t)r * j->C, j->x + (size_t)(j->rows ? j->rows[r] : r) * j->C,
                         (const float *)(const void *)j->w->data, (const float *)(const void *)j->b->data, j->C,
                         j->eps);
}

/* out[i] = (x[rows[i]] - mean) / sqrt(var + eps) * w + b for i < n (rows
 * NULL: row i)                                       out: [n][C], x: [..][C] */
static void gp_layernorm_rows(gpt_context *c, float *out, const float *x, const int *rows, int n, const gp_tensor *w,
                              const gp_tensor *b)
{
    gp_layernorm_job j;
    j.out = out;
    j.x = x;
    j.rows = rows;
    j.w = w;
    j.b = b;
    j.n = n;
    j.C = c->m->cfg.n_embd;
    j.eps = c->m->cfg.ln_eps;
    if (n < 4) gp_layernorm_task(&j, 0, 1); /* not worth waking the workers */
    else gp_pool_run(c->pool, gp_layernorm_task, &j);
}

/* out = layer_norm(x)                                    out, x: [n][C] */
static void gp_layernorm(gpt_context *c, float *out, const float *x, int n, const gp_tensor *w, const gp_tensor *b)
{
    gp_layernorm_rows(c, out, x, NULL, n, w, b);
}

/* y = x W^T + b                           x: [n][K], W: [J][K], y: [n][J] */
static void gp_linear(gpt_context *c, float *y, const float *x, int n, const gp_tensor *W, const gp_tensor *b)
{
    gp_pool_linear(c, W, b, x, W->cols, n, y, W->rows, 0);
}

/* y += x W^T + b: a linear layer added to the residual stream, y: [n][J] */
static void gp_linear_residual(gpt_context *c, float *y, const float *x, int n, const gp_tensor *W,
                               const gp_tensor *b)
{
    gp_pool_linear(c, W, b, x, W->cols, n, y, W->rows, 1);
}

typedef struct gp_gelu_job {
    gpt_context *c;
    float *x;
    int n, width;
} gp_gelu_job;

static void gp_gelu_task(void *arg, int ith, int nth)
{
    const gp_gelu_job *j = (const gp_gelu_job *)arg;
    int r, b, e;
    gp_split_range(j->n, 1, ith, nth, &b, &e);
    for (r = b; r < e; r++) j->c->kern->gelu(j->x + (size_t)r * j->width, (size_t)j->width);
}

/* x = gelu(x), GPT-2's tanh form                         x: [n][width] */
static void gp_gelu(gpt_context *c, float *x, int n, int width)
{
    gp_gelu_job j;
    j.c = c;
    j.x = x;
    j.n = n;
    j.width = width;
    if (n < 4) gp_gelu_task(&j, 0, 1);
    else gp_pool_run(c->pool, gp_gelu_task, &j);
}

typedef struct gp_kv_job {
    gpt_context *c;
    int layer, n;
} gp_kv_job;

static void gp_kv_store_task(void *arg, int ith, int nth)
{
    const gp_kv_job *j = (const gp_kv_job *)arg;
    gpt_context *c = j->c;
    int C = c->m->cfg.n_embd, H = c->m->cfg.n_head, h, r, b, e;
    gp_split_range(H, 1, ith, nth, &b, &e);
    for (h = b; h < e; h++)
        for (r = 0; r < j->n; r++) {
            const float *k = c->qkv + (size_t)r * 3 * C + C;
            int pos = c->row_pos[r], page = c->seqs[c->row_seq[r]].pages[pos / GP_PAGE];
            gp_cache_kv_head(c, gp_page_keys(c, page, j->layer, h), pos % GP_PAGE, k + (size_t)h * (C / H),
                             k + C + (size_t)h * (C / H));
        }
}

/* The KV store: the keys and values of every row (the middle and last
 * thirds of qkv) into its sequence's page of `layer`, head by head, each
 * head by one thread. */
static void gp_kv_store(gpt_context *c, int layer, int n)
{
    gp_kv_job j;
    j.c = c;
    j.layer = layer;
    j.n = n;
    gp_pool_run(c->pool, gp_kv_store_task, &j);
}

/* A run of up to GP_ATT_ROWS consecutive rows of one sequence (so at
 * consecutive positions): what one attention call takes. */
typedef struct gp_att_run {
    int row, rows;
} gp_att_run;

typedef struct gp_attention_job {
    gpt_context *c;
    int layer;
    const gp_att_run *runs;
    int n_runs;
    int items_taken; /* atomic: items handed out so far */
} gp_attention_job;

/* Item `item`: one head of one run. */
static void gp_attention_item(const gp_attention_job *j, int ith, int item)
{
    gpt_context *c = j->c;
    int H = c->m->cfg.n_head, C = c->m->cfg.n_embd, D = C / H;
    const gp_att_run *run = &j->runs[item / H];
    int h = item % H, r = run->row;
    const gp_seq *q = &c->seqs[c->row_seq[r]];
    gp_attention_args a;
    a.q = c->qkv + (size_t)r * 3 * C + (size_t)h * D;
    a.ldq = 3 * C;
    a.k_base = gp_page_keys(c, 0, j->layer, h);
    a.v_base = a.k_base + c->key_bytes;
    a.page_bytes = c->page_bytes;
    a.pages = q->pages;
    a.kv_f16 = c->kv_f16;
    a.first_keys = c->row_pos[r] + 1;
    a.rows = run->rows;
    a.D = D;
    a.lds = c->t_alloc;
    a.scale = 1.0f / sqrtf((float)D);
    a.out = c->att + (size_t)r * C + (size_t)h * D;
    a.ldo = C;
    c->kern->attention(&a, c->scratch + (size_t)ith * c->scratch_stride);
}

/* The threads take items one at a time as they finish the last, the runs
 * with the most keys first, so that neither waits long for the other at
 * the end. */
static void gp_attention_task(void *arg, int ith, int nth)
{
    gp_attention_job *j = (gp_attention_job *)arg;
    int n_items = j->n_runs * j->c->m->cfg.n_head;
    (void)nth;
    for (;;) {
        int taken = gp_atomic_take(&j->items_taken);
        if (taken >= n_items) break;
        gp_attention_item(j, ith, taken);
    }
}

/* Cuts rows 0 .. n-1 into runs (a sequence's consecutive rows, at most
 * `per` of them), the runs that end at the latest position first. */
static int gp_attention_runs(const gpt_context *c, int n, int per, gp_att_run *runs)
{
    int r = 0, n_runs = 0, i, k;
    while (r < n) {
        int len = 1;
        while (r + len < n && len < per && c->row_seq[r + len] == c->row_seq[r]) len++;
        runs[n_runs].row = r;
        runs[n_runs].rows = len;
        n_runs++;
        r += len;
    }
    for (i = 1; i < n_runs; i++) { /* insertion sort by last position, descending; stable */
        gp_att_run t = runs[i];
        int last = c->row_pos[t.row + t.rows - 1];
        for (k = i; k > 0 && c->row_pos[runs[k - 1].row + runs[k - 1].rows - 1] < last; k--) runs[k] = runs[k - 1];
        runs[k] = t;
    }
    return n_runs;
}

/* att[r] = softmax(q[r] k^T / sqrt(D)) v over positions 0 .. row_pos[r] of
 * row r's sequence, for each head: qkv: [n][3C] (q first), att: [n][C]. */
static void gp_attention(gpt_context *c, int layer, int n)
{
    gp_attention_job j;
    gp_att_run *runs = (gp_att_run *)(void *)c->hid; /* free until the MLP; n runs at most */
    j.c = c;
    j.layer = layer;
    j.runs = runs;
    j.n_runs = gp_attention_runs(c, n, c->kern->attention_rows, runs);
    j.items_taken = 0;
    gp_pool_run(c->pool, gp_attention_task, &j);
}

/* Block `layer` on the residual stream x [n][C]. */
static void gp_block_forward(gpt_context *c, int layer, int n)
{
    const gp_block *w = &c->m->blocks[layer];
    int C = c->m->cfg.n_embd;
    gp_layernorm(c, c->xn, c->x, n, &w->ln_1_w, &w->ln_1_b);     /* xn  = ln_1(x)             [n][C]  */
    gp_linear(c, c->qkv, c->xn, n, &w->attn_w, &w->attn_b);       /* qkv = xn c_attn^T + b     [n][3C] */
    gp_kv_store(c, layer, n);                                     /* cache k, v                        */
    gp_attention(c, layer, n);                                    /* att = attention(q, cache) [n][C]  */
    gp_linear_residual(c, c->x, c->att, n, &w->attn_proj_w, &w->attn_proj_b); /* x += att c_proj^T + b */
    gp_layernorm(c, c->xn, c->x, n, &w->ln_2_w, &w->ln_2_b);     /* xn  = ln_2(x)             [n][C]  */
    gp_linear(c, c->hid, c->xn, n, &w->fc_w, &w->fc_b);           /* hid = xn c_fc^T + b       [n][4C] */
    gp_gelu(c, c->hid, n, 4 * C);                                 /* hid = gelu(hid)                   */
    gp_linear_residual(c, c->x, c->hid, n, &w->mlp_proj_w, &w->mlp_proj_b); /* x += hid c_proj^T + b */
}

/* Runs n (<= n_batch) rows (ids, with row_seq and row_pos set) through the
 * embeddings and every block, filling the KV cache; leaves the residual
 * stream in c->x [n][C]. */
static void gp_forward(gpt_context *c, const int *ids, int n)
{
    int l;
    gp_embed(c, ids, n);
    for (l = 0; l < c->m->cfg.n_layer; l++) gp_block_forward(c, l, n);
}

/* The head: out[i] = ln_f(x[rows[i]]) wte^T for i < n     out: [n][V] */
static void gp_head(gpt_context *c, const int *rows, int n, float *out)
{
    const gpt_model *m = c->m;
    gp_layernorm_rows(c, c->xn, c->x, rows, n, &m->ln_f_w, &m->ln_f_b);
    gp_linear(c, out, c->xn, n, &m->wte, NULL);
}

/* ======================================================================== */
/* 6. Evaluating and scoring                                                */
/* ======================================================================== */

/* Which entries of a batch keep their logits. */
enum gp_keep { GP_KEEP_LAST, GP_KEEP_FLAGGED, GP_KEEP_ALL };

/* The sequence of entry i: its own, or (no array) the batch's one
 * sequence, which internal callers set in c->batch_seq and gpt_eval_batch
 * sets to 0. */
static int gp_entry_seq(const gpt_context *c, const gpt_batch *b, int i) { return b->seq ? b->seq[i] : c->batch_seq; }

/* Checks a batch before anything changes: sequences, ids, room in every
 * sequence and in the KV cache, kept logits. Leaves each sequence's count
 * of entries in c->seq_count. */
static gpt_status gp_check_batch(gpt_context *c, const gpt_batch *b, enum gp_keep keep)
{
    int i, s, V = c->m->cfg.n_vocab, need = 0, kept = 0;
    if (!b) return gp_ctx_fail(c, GPT_ERR_INVALID_ARG, "the batch is NULL");
    if (b->n < 0) return gp_ctx_fail(c, GPT_ERR_INVALID_ARG, "n is %d; a count cannot be negative", b->n);
    if (b->n > 0 && !b->tokens) return gp_ctx_fail(c, GPT_ERR_INVALID_ARG, "ids is NULL");
    for (s = 0; s < c->n_seq; s++) c->seq_count[s] = 0;
    for (i = 0; i < b->n; i++) {
        s = gp_entry_seq(c, b, i);
        if (s < 0 || s >= c->n_seq)
            return gp_ctx_fail(c, GPT_ERR_INVALID_ARG, "sequence %d at index %d is outside 0 .. %d", s, i,
                               c->n_seq - 1);
        if (b->tokens[i] < 0 || b->tokens[i] >= V)
            return gp_ctx_fail(c, GPT_ERR_TOKEN_RANGE, "token id %d at index %d is outside 0 .. %d", b->tokens[i], i,
                               V - 1);
        c->seq_count[s]++;
        kept += keep == GP_KEEP_ALL || (keep == GP_KEEP_FLAGGED && b->logits[i]);
    }
    for (s = 0; s < c->n_seq; s++) {
        if (c->seq_count[s] > c->n_ctx - c->seqs[s].n_past) {
            if (c->n_seq == 1)
                return gp_ctx_fail(c, GPT_ERR_CONTEXT_FULL, "%d tokens do not fit: %d of %d positions are in use",
                                   c->seq_count[s], c->seqs[s].n_past, c->n_ctx);
            return gp_ctx_fail(c, GPT_ERR_CONTEXT_FULL, "sequence %d: %d tokens do not fit: %d of its %d positions "
                               "are in use", s, c->seq_count[s], c->seqs[s].n_past, c->n_ctx);
        }
        need += gp_pages_needed(c, s, c->seq_count[s]);
        kept += keep == GP_KEEP_LAST && c->seq_count[s] > 0;
    }
    need += gp_copies_needed(c, c->seq_count);
    if (need > c->n_free)
        return gp_ctx_fail(c, GPT_ERR_CONTEXT_FULL, "the KV cache is full: the batch needs %d more pages of %d "
                           "positions and %d of its %d pages are free (kv_size)", need, GP_PAGE, c->n_free,
                           c->n_pages);
    if (kept > c->logits_cap)
        return gp_ctx_fail(c, GPT_ERR_INVALID_ARG, "the batch keeps the logits of %d entries; this context keeps at "
                           "most %d (gpt_context_max_logits)", kept, c->logits_cap);
    return GPT_OK;
}

/* Whether entry i keeps its logits; with GP_KEEP_LAST, seq_count counts
 * down the entries of each sequence still to come. */
static int gp_entry_keeps_logits(gpt_context *c, const gpt_batch *b, int i, enum gp_keep keep)
{
    if (keep == GP_KEEP_ALL) return 1;
    if (keep == GP_KEEP_FLAGGED) return b->logits[i] != 0;
    return --c->seq_count[gp_entry_seq(c, b, i)] == 0;
}

/* Sets up rows 0 .. n-1 of a forward step from entries [from, from + n):
 * each is appended to its sequence, whose page for it is made writable. */
static void gp_place_rows(gpt_context *c, const gpt_batch *b, int from, int n)
{
    int r;
    for (r = 0; r < n; r++) {
        int s = gp_entry_seq(c, b, from + r);
        gp_seq *q = &c->seqs[s];
        gp_page_prepare(c, s, q->n_past);
        c->row_seq[r] = s;
        c->row_pos[r] = q->n_past;
        q->tokens[q->n_past++] = b->tokens[from + r];
        q->has_logits = 0;
    }
}

/* Runs entries [from, from + n) of a checked batch as one forward step and
 * computes the logits they keep into c->logits from row c->logits_rows on,
 * and into each sequence's own row. */
static void gp_eval_step(gpt_context *c, const gpt_batch *b, int from, int n, enum gp_keep keep)
{
    int V = c->m->cfg.n_vocab, r, n_head = 0, k0 = c->logits_rows;
    int *head_rows = c->row_pos; /* free once the blocks have run */
    gp_place_rows(c, b, from, n);
    gp_forward(c, b->tokens + from, n);
    for (r = 0; r < n; r++)
        if (gp_entry_keeps_logits(c, b, from + r, keep)) {
            c->logits_entry[k0 + n_head] = from + r;
            head_rows[n_head++] = r;
        }
    if (n_head == 0) return;
    gp_head(c, head_rows, n_head, c->logits + (size_t)k0 * V);
    for (r = 0; r < n_head; r++) {
        int s = gp_entry_seq(c, b, c->logits_entry[k0 + r]);
        memcpy(c->seq_logits + (size_t)s * V, c->logits + (size_t)(k0 + r) * V, sizeof(float) * (size_t)V);
        c->seqs[s].has_logits = 1;
    }
    c->logits_rows += n_head;
}

/* Evaluates a batch in forward steps of up to n_batch rows. */
static gpt_status gp_eval_entries(gpt_context *c, const gpt_batch *b, enum gp_keep keep)
{
    gpt_status st;
    int done = 0;
    if ((st = gp_check_batch(c, b, keep)) != GPT_OK) return st;
    if (b->n == 0) return GPT_OK; /* the last logits stay */
    c->logits_rows = 0;
    while (done < b->n) {
        int chunk = b->n - done < c->n_batch ? b->n - done : c->n_batch;
        gp_eval_step(c, b, done, chunk, keep);
        done += chunk;
    }
    return GPT_OK;
}

gpt_status gpt_eval_batch(gpt_context *c, const gpt_batch *b)
{
    if (!c) return GPT_ERR_INVALID_ARG;
    c->batch_seq = 0;
    return gp_eval_entries(c, b, b && b->logits ? GP_KEEP_FLAGGED : GP_KEEP_LAST);
}

gpt_status gpt_eval(gpt_context *c, const int *ids, int n)
{
    gpt_batch b;
    if (!c) return GPT_ERR_INVALID_ARG;
    b.n = n;
    b.tokens = ids;
    b.seq = NULL;
    b.logits = NULL;
    c->batch_seq = 0;
    return gp_eval_entries(c, &b, c->all_logits ? GP_KEEP_ALL : GP_KEEP_LAST);
}

const float *gpt_logits_seq(const gpt_context *c, int seq)
{
    if (!c || seq < 0 || seq >= c->n_seq || !c->seqs[seq].has_logits) return NULL;
    return c->seq_logits + (size_t)seq * c->m->cfg.n_vocab;
}

const float *gpt_logits(const gpt_context *c) { return gpt_logits_seq(c, 0); }

const float *gpt_logits_batch(const gpt_context *c, int i)
{
    int lo = 0, hi;
    if (!c || i < 0) return NULL;
    hi = c->logits_rows - 1;
    while (lo <= hi) { /* the kept entries are in increasing order */
        int mid = lo + (hi - lo) / 2;
        if (c->logits_entry[mid] == i) return c->logits + (size_t)mid * c->m->cfg.n_vocab;
        if (c->logits_entry[mid] < i) lo = mid + 1;
        else hi = mid - 1;
    }
    return NULL;
}

const float *gpt_logits_at(const gpt_context *c, int i)
{
    if (!c || !c->all_logits) return NULL;
    return gpt_logits_batch(c, i);
}

/* Whether all n logits are finite numbers. */
static int gp_logits_finite(const float *logits, int n)
{
    int i;
    for (i = 0; i < n; i++)
        if (!(logits[i] - logits[i] == 0.0f)) return 0; /* NaN and +-inf give NaN */
    return 1;
}

/* log p(target) from one row of logits, in double precision; NaN when a
 * logit is not finite. */
static float gp_log_softmax_at(const float *logits, int V, int target)
{
    double mx = -INFINITY, sum = 0.0;
    int i;
    if (!gp_logits_finite(logits, V)) return NAN;
    for (i = 0; i < V; i++)
        if (logits[i] > mx) mx = logits[i];
    for (i = 0; i < V; i++) sum += exp((double)logits[i] - mx);
    return (float)((double)logits[target] - mx - log(sum));
}

/* Appends ids[0..n) to sequence 0 (which has room) and writes, for every
 * row r >= score_from with r + 1 < n, out[r - score_from] = log p(ids[r + 1]
 * | ...). */
static void gp_eval_scoring(gpt_context *c, const int *ids, int n, int score_from, float *out)
{
    int done = 0, V = c->m->cfg.n_vocab, i;
    float *buf = c->logits; /* at least GP_SCORE_ROWS rows */
    int *head_rows = c->row_pos;
    gpt_batch b;
    b.n = n;
    b.tokens = ids;
    b.seq = NULL;
    b.logits = NULL;
    c->batch_seq = 0;
    while (done < n) {
        int chunk = n - done < c->n_batch ? n - done : c->n_batch, r0;
        gp_place_rows(c, &b, done, chunk);
        gp_forward(c, ids + done, chunk);
        /* rows of this chunk that predict a scored id */
        r0 = score_from > done ? score_from - done : 0;
        while (r0 < chunk && done + r0 + 1 < n) {
            int rows = chunk - r0;
            if (rows > GP_SCORE_ROWS) rows = GP_SCORE_ROWS;
            if (done + r0 + rows + 1 > n) rows = n - 1 - done - r0;
            for (i = 0; i < rows; i++) head_rows[i] = r0 + i;
            gp_head(c, head_rows, rows, buf);
            for (i = 0; i < rows; i++) {
                int r = done + r0 + i;
                out[r - score_from] = gp_log_softmax_at(buf + (size_t)i * V, V, ids[r + 1]);
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

/* Checks what gpt_score is given. */
static gpt_status gp_check_score(gpt_context *c, const int *ids, int n, const float *logprobs)
{
    int i, V = c->m->cfg.n_vocab, W = c->n_ctx;
    if (n < 0) return gp_ctx_fail(c, GPT_ERR_INVALID_ARG, "n is %d; a count cannot be negative", n);
    if (n > 0 && !ids) return gp_ctx_fail(c, GPT_ERR_INVALID_ARG, "ids is NULL");
    for (i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= V)
            return gp_ctx_fail(c, GPT_ERR_TOKEN_RANGE, "token id %d at index %d is outside 0 .. %d", ids[i], i, V - 1);
    if (n > 1 && !logprobs) return gp_ctx_fail(c, GPT_ERR_INVALID_ARG, "logprobs is NULL");
    if (W < 2) return gp_ctx_fail(c, GPT_ERR_INVALID_ARG, "scoring needs a context of at least 2 positions");
    /* a window takes up to W positions of sequence 0, which first gives
     * back what it holds */
    if (gp_pages_for(n < W ? n : W) > c->n_free + gp_pages_for(c->seqs[0].n_past))
        return gp_ctx_fail(c, GPT_ERR_CONTEXT_FULL, "the KV cache is full: scoring needs %d pages of %d positions "
                           "and %d are free (kv_size)", gp_pages_for(n < W ? n : W), GP_PAGE,
                           c->n_free + gp_pages_for(c->seqs[0].n_past));
    return GPT_OK;
}

gpt_status gpt_score_ex(gpt_context *c, const int *ids, int n, float *logprobs,
                        int (*on_progress)(int scored, int total, void *user), void *user)
{
    gpt_status st;
    int W, S, start, scored_to, i;
    if (!c) return GPT_ERR_INVALID_ARG;
    if ((st = gp_check_score(c, ids, n, logprobs)) != GPT_OK) return st;
    gp_seq_truncate(c, 0, 0);
    c->logits_rows = 0;
    if (n < 2) return GPT_OK;
    W = c->n_ctx;
    S = W / 2;
    scored_to = 1; /* one past the last scored id */
    for (start = 0;; start += S) {
        int end = start + W < n ? start + W : n;
        gp_seq_truncate(c, 0, 0);
        /* row r of the window predicts id start + r + 1 */
        gp_eval_scoring(c, ids + start, end - start, scored_to - 1 - start, logprobs + (scored_to - 1));
        for (i = scored_to - 1; i < end - 1; i++)
            if (logprobs[i] != logprobs[i])
                return gp_ctx_fail(c, GPT_ERR_NUMERIC, "the logits predicting id %d (index %d) are not finite: the "
                                   "model has NaN or infinite weights, or its activations overflow", ids[i + 1], i + 1);
        scored_to = end;
        if (on_progress && on_progress(scored_to - 1, n - 1, user))
            return gp_ctx_fail(c, GPT_ERR_CANCELLED, "scoring cancelled after %d of %d ids", scored_to - 1, n - 1);
        if (end == n) break;
    }
    return GPT_OK;
}

/* ======================================================================== */
/* 7. Sampling                                                              */
/* ======================================================================== */

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
    p.n_sequences = 1;
    p.do_sample = -1;
    p.num_beams = 1;
    p.length_penalty = 1.0f;
    p.early_stopping = GPT_EARLY_STOP_HEURISTIC;
    return p;
}

/* The options of Hugging Face's generate() and OpenAI's penalties. */
static gpt_status gp_check_hf_params(const gpt_generate_params *p, gpt_error *err)
{
    if (p->n_sequences < 1 || p->n_sequences > GPT_MAX_SEQ)
        return gpt__set_error(err, GPT_ERR_INVALID_ARG, "n_sequences %d is outside 1 .. %d", p->n_sequences,
                              GPT_MAX_SEQ);
    if (p->max_length < 0) return gpt__set_error(err, GPT_ERR_INVALID_ARG, "max_length %d is negative (0 = off)",
                                                 p->max_length);
    if (p->min_new_tokens < 0)
        return gpt__set_error(err, GPT_ERR_INVALID_ARG, "min_new_tokens %d is negative", p->min_new_tokens);
    if (p->do_sample < -1 || p->do_sample > 1)
        return gpt__set_error(err, GPT_ERR_INVALID_ARG, "do_sample %d is not -1 (auto), 0 or 1", p->do_sample);
    if (p->do_sample == 1 && p->temperature == 0.0f)
        return gpt__set_error(err, GPT_ERR_INVALID_ARG, "do_sample needs a temperature above 0");
    if (p->num_beams < 1 || p->num_beams > GPT_MAX_SEQ)
        return gpt__set_error(err, GPT_ERR_INVALID_ARG, "num_beams %d is outside 1 .. %d (1 = no beam search)",
                              p->num_beams, GPT_MAX_SEQ);
    if (p->num_beams > 1 && p->do_sample == 1)
        return gpt__set_error(err, GPT_ERR_INVALID_ARG, "beam search samples nothing: do_sample must be 0 or -1 "
                              "with num_beams %d (beam sampling is not supported)", p->num_beams);
    if (p->num_beams > 1 && p->n_sequences > p->num_beams)
        return gpt__set_error(err, GPT_ERR_INVALID_ARG, "n_sequences (num_return_sequences) %d is more than num_beams "
                              "%d", p->n_sequences, p->num_beams);
    if (p->num_beams == 1 && p->do_sample == 0 && p->n_sequences > 1)
        return gpt__set_error(err, GPT_ERR_INVALID_ARG, "greedy search gives one sequence: n_sequences %d needs "
                              "sampling or beam search", p->n_sequences);
    if (!(p->length_penalty >= -1e6f && p->length_penalty <= 1e6f))
        return gpt__set_error(err, GPT_ERR_INVALID_ARG, "length_penalty %g is not a finite number",
                              (double)p->length_penalty);
    if (p->early_stopping < GPT_EARLY_STOP_HEURISTIC || p->early_stopping > GPT_EARLY_STOP_NEVER)
        return gpt__set_error(err, GPT_ERR_INVALID_ARG, "early_stopping %d is not a gpt_early_stopping (0 .. 2)",
                              p->early_stopping);
    if (p->no_repeat_ngram_size < 0)
        return gpt__set_error(err, GPT_ERR_INVALID_ARG, "no_repeat_ngram_size %d is negative (0 = off)",
                              p->no_repeat_ngram_size);
    if (!(p->presence_penalty >= -2.0f && p->presence_penalty <= 2.0f))
        return gpt__set_error(err, GPT_ERR_INVALID_ARG, "presence_penalty %g is outside -2 .. 2",
                              (double)p->presence_penalty);
    if (!(p->frequency_penalty >= -2.0f && p->frequency_penalty <= 2.0f))
        return gpt__set_error(err, GPT_ERR_INVALID_ARG, "frequency_penalty %g is outside -2 .. 2",
                              (double)p->frequency_penalty);
    if (p->n_logprobs < 0 || p->n_logprobs > GPT_MAX_LOGPROBS)
        return gpt__set_error(err, GPT_ERR_INVALID_ARG, "n_logprobs %d is outside 0 .. %d", p->n_logprobs,
                              GPT_MAX_LOGPROBS);
    return GPT_OK;
}

gpt_status gpt_generate_params_check(const gpt_generate_params *p, gpt_error *err)
{
    int i;
    gpt__clear_error(err);
    if (!p) return gpt__set_error(err, GPT_ERR_INVALID_ARG, "generate params are NULL");
    if (p->max_new_tokens < -1)
        return gpt__set_error(err, GPT_ERR_INVALID_ARG, "max_new_tokens %d is below -1 (-1 = no limit)",
                              p->max_new_tokens);
    if (!(p->temperature >= 0.0f && p->temperature <= 1e6f))
        return gpt__set_error(err, GPT_ERR_INVALID_ARG, "temperature %g is outside 0 .. 1e6 (0 = greedy)",
                              (double)p->temperature);
    if (p->top_k < 0) return gpt__set_error(err, GPT_ERR_INVALID_ARG, "top_k %d is negative (0 = off)", p->top_k);
    if (!(p->top_p > 0.0f && p->top_p <= 1.0f))
        return gpt__set_error(err, GPT_ERR_INVALID_ARG, "top_p %g is outside (0, 1] (1 = off)", (double)p->top_p);
    if (!(p->min_p >= 0.0f && p->min_p <= 1.0f))
        return gpt__set_error(err, GPT_ERR_INVALID_ARG, "min_p %g is outside [0, 1] (0 = off)", (double)p->min_p);
    if (!(p->repetition_penalty > 0.0f && p->repetition_penalty <= 1e6f))
        return gpt__set_error(err, GPT_ERR_INVALID_ARG, "repetition_penalty %g must be > 0 (1 = off)",
                              (double)p->repetition_penalty);
    if (p->repeat_last_n < -1)
        return gpt__set_error(err, GPT_ERR_INVALID_ARG, "repeat_last_n %d is below -1 (-1 = all, 0 = none)",
                              p->repeat_last_n);
    if (p->n_stop < 0) return gpt__set_error(err, GPT_ERR_INVALID_ARG, "n_stop %d is negative", p->n_stop);
    if (p->n_stop > 0 && !p->stop)
        return gpt__set_error(err, GPT_ERR_INVALID_ARG, "n_stop is %d but stop is NULL", p->n_stop);
    for (i = 0; i < p->n_stop; i++) {
        if (!p->stop[i] || !p->stop[i][0])
            return gpt__set_error(err, GPT_ERR_INVALID_ARG, "stop string %d is NULL or empty", i);
        if (strlen(p->stop[i]) > 4096)
            return gpt__set_error(err, GPT_ERR_INVALID_ARG, "stop string %d is longer than 4096 bytes", i);
    }
    if (p->context_policy != GPT_CONTEXT_STOP && p->context_policy != GPT_CONTEXT_SLIDE)
        return gpt__set_error(err, GPT_ERR_INVALID_ARG, "context_policy %d is unknown", (int)p->context_policy);
    return gp_check_hf_params(p, err);
}

/* A candidate token: its logit, later exp(logit - max). */
typedef struct gp_cand {
    float v;
    int id;
} gp_cand;

/* Most likely first; equal values by lower id, so the order is total. */
static int gp_cand_before(const gp_cand *a, const gp_cand *b) { return a->v > b->v || (a->v == b->v && a->id < b->id); }

static int gp_cand_cmp(const void *a, const void *b)
{
    const gp_cand *x = (const gp_cand *)a, *y = (const gp_cand *)b;
    return gp_cand_before(x, y) ? -1 : gp_cand_before(y, x) ? 1 : 0;
}

/* Moves the k first (by gp_cand_before) of c[0..n) to the front, unordered. */
static void gp_select_top(gp_cand *c, int n, int k)
{
    int lo = 0, hi = n - 1;
    while (lo < hi) {
        gp_cand pivot = c[lo + (hi - lo) / 2], t;
        int i = lo, j = hi;
        while (i <= j) {
            while (gp_cand_before(&c[i], &pivot)) i++;
            while (gp_cand_before(&pivot, &c[j])) j--;
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
    float *work;         /* [V] logits being filtered */
    gp_cand *cands;      /* [V] */
    unsigned char *seen; /* [V] */
};

static uint64_t gp_splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t gp_rotl64(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

/* xoshiro256**: the sampler's random numbers. */
static uint64_t gp_rng_next(uint64_t *s)
{
    uint64_t result = gp_rotl64(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = gp_rotl64(s[3], 45);
    return result;
}

/* Uniform in [0, 1) with 53 random bits. */
static double gp_rng_uniform(uint64_t *s) { return (double)(gp_rng_next(s) >> 11) * (1.0 / 9007199254740992.0); }

void gpt_sampler_seed(gpt_sampler *s, uint64_t seed)
{
    uint64_t x = seed;
    int i;
    if (!s) return;
    for (i = 0; i < 4; i++) s->rng[i] = gp_splitmix64(&x);
}

gpt_sampler *gpt_sampler_new(const gpt_generate_params *p, int n_vocab, gpt_error *err)
{
    gpt_sampler *s;
    if (gpt_generate_params_check(p, err) != GPT_OK) return NULL;
    if (n_vocab < 1) {
        gpt__set_error(err, GPT_ERR_INVALID_ARG, "n_vocab %d must be at least 1", n_vocab);
        return NULL;
    }
    s = (gpt_sampler *)gpt__calloc(1, sizeof *s);
    if (!s) {
        gpt__set_error(err, GPT_ERR_OUT_OF_MEMORY, "out of memory for a sampler");
        return NULL;
    }
    s->p = *p;
    s->p.stop = NULL; /* not used here, and the caller's array need not outlive us */
    s->p.n_stop = 0;
    s->n_vocab = n_vocab;
    s->work = (float *)gpt__alloc(sizeof(float) * (size_t)n_vocab);
    s->cands = (gp_cand *)gpt__alloc(sizeof(gp_cand) * (size_t)n_vocab);
    s->seen = (unsigned char *)gpt__calloc((size_t)n_vocab, 1);
    if (!s->work || !s->cands || !s->seen) {
        gpt_sampler_free(s);
        gpt__set_error(err, GPT_ERR_OUT_OF_MEMORY, "out of memory for a sampler over %d tokens", n_vocab);
        return NULL;
    }
    gpt_sampler_seed(s, p->seed);
    return s;
}

void gpt_sampler_free(gpt_sampler *s)
{
    if (!s) return;
    gpt__free(s->work);
    gpt__free(s->cands);
    gpt__free(s->seen);
    gpt__free(s);
}

/* CTRL's repetition penalty on w [V] over the last repeat_last_n ids of
 * history: a seen token's logit is divided by the penalty when positive,
 * multiplied when not (seen: V zero bytes, left zero). GPT_ERR_TOKEN_RANGE
 * (and w untouched) for an id out of range. */
static gpt_status gp_repetition_penalty(const gpt_generate_params *p, unsigned char *seen, int V, float *w,
                                        const int *history, int n_history)
{
    int from, i;
    if (p->repetition_penalty == 1.0f || n_history == 0 || p->repeat_last_n == 0) return GPT_OK;
    from = p->repeat_last_n < 0 || p->repeat_last_n > n_history ? 0 : n_history - p->repeat_last_n;
    for (i = from; i < n_history; i++)
        if (history[i] < 0 || history[i] >= V) return GPT_ERR_TOKEN_RANGE;
    for (i = from; i < n_history; i++) {
        int id = history[i];
        if (seen[id]) continue;
        seen[id] = 1;
        w[id] = w[id] > 0.0f ? w[id] / p->repetition_penalty : w[id] * p->repetition_penalty;
    }
    for (i = from; i < n_history; i++) seen[history[i]] = 0;
    return GPT_OK;
}

/* The candidates after temperature and top-k: c[0..*n) with v = exp((logit
 * - max) / T), 1 for the most likely; returns their sum. `best` is the
 * argmax of w. */
static double gp_candidates(gpt_sampler *s, float *w, int best, int *n_out)
{
    const gpt_generate_params *p = &s->p;
    gp_cand *c = s->cands;
    float mx = w[best];
    double total = 0.0;
    int V = s->n_vocab, i, n = 0;
    /* shift by the maximum before dividing, so that the best token stays at
     * 0 even when a tiny temperature sends every other logit to -inf */
    for (i = 0; i < V; i++) w[i] = (w[i] - mx) / p->temperature;
    w[best] = 0.0f;
    for (i = 0; i < V; i++)
        if (w[i] > -INFINITY) {
            c[n].v = w[i];
            c[n].id = i;
            n++;
        }
    if (p->top_k > 0 && p->top_k < n) {
        gp_select_top(c, n, p->top_k);
        n = p->top_k;
    }
    for (i = 0; i < n; i++) {
        c[i].v = (float)exp((double)c[i].v);
        total += c[i].v;
    }
    *n_out = n;
    return total;
}

/* Top-p and min-p, which both keep a prefix of the candidates in order of
 * probability; sorts c[0..*n) and shortens it. Returns the new sum. */
static double gp_filter_top_p_min_p(const gpt_generate_params *p, gp_cand *c, int *n_io, double total)
{
    /* Drop, before sorting, tokens that cannot be in the prefix: min-p's own
     * threshold, and for top-p any token below (1 - top_p) / n, since
     * everything from it down sums to less than the 1 - top_p that top-p may
     * drop. */
    double floor_p = p->min_p > 0.0f ? (double)p->min_p : 0.0;
    double floor_top_p = p->top_p < 1.0f ? (1.0 - p->top_p) / *n_io * total : 0.0;
    double acc;
    int n = *n_io, m = 0, i, k;
    if (floor_top_p > floor_p) floor_p = floor_top_p;
    for (i = 0; i < n; i++)
        if (c[i].v >= floor_p) c[m++] = c[i];
    n = m;
    qsort(c, (size_t)n, sizeof(gp_cand), gp_cand_cmp);
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
    *n_io = n;
    return total;
}

int gpt_sampler_sample(gpt_sampler *s, const float *logits, const int *history, int n_history)
{
    float *w;
    int V, i, n, best;
    double total, u, acc;
    if (!s || !logits || n_history < 0 || (n_history > 0 && !history)) return GPT_ERR_INVALID_ARG;
    V = s->n_vocab;
    w = s->work;
    for (i = 0; i < V; i++) w[i] = logits[i] != logits[i] ? -INFINITY : logits[i]; /* NaN never wins */
    if (gp_repetition_penalty(&s->p, s->seen, V, w, history, n_history) != GPT_OK) return GPT_ERR_TOKEN_RANGE;
    best = 0;
    for (i = 1; i < V; i++)
        if (w[i] > w[best]) best = i;
    if (s->p.temperature == 0.0f || s->p.top_k == 1 || w[best] == -INFINITY || w[best] == INFINITY) return best;
    total = gp_candidates(s, w, best, &n);
    if (s->p.top_p < 1.0f || s->p.min_p > 0.0f) total = gp_filter_top_p_min_p(&s->p, s->cands, &n, total);
    u = gp_rng_uniform(s->rng) * total;
    acc = 0.0;
    for (i = 0; i < n - 1; i++) {
        acc += s->cands[i].v;
        if (u < acc) break;
    }
    return s->cands[i].id;
}

/* ======================================================================== */
/* 8. Generation                                                            */
/* ======================================================================== */

/* Copies in[0..n) to out, replacing each maximal invalid subpart with U+FFFD
 * (as Python's errors="replace" does); out needs 3n bytes. Returns the
 * length written. */
static size_t gp_utf8_sanitize(const unsigned char *in, size_t n, unsigned char *out)
{
    size_t i = 0, o = 0;
    while (i < n) {
        uint32_t cp;
        size_t len = gpt__utf8_decode(in + i, n - i, &cp);
        if (len > 0) {
            memcpy(out + o, in + i, len);
            o += len;
            i += len;
        } else {
            /* skip the lead byte and the continuation bytes that keep the
             * prefix a possible character */
            unsigned lo, hi;
            size_t want = gpt__utf8_seq_len(in[i], &lo, &hi), j = i + 1;
            if (want > 1 && j < n && in[j] >= lo && in[j] <= hi) {
                j++;
                while (j < i + want - 1 && j < n && (in[j] & 0xC0) == 0x80) j++;
            }
            out[o++] = 0xEF;
            out[o++] = 0xBF;
            out[o++] = 0xBD;
            i = j;
        }
    }
    return o;
}

/*
 * A generation is a gpt_generator: its continuations (streams), each on a
 * sequence of the context with its own sampler, UTF-8 decoder and text
 * held back for stop strings. A step samples a token for every stream still
 * going, appends them all in one batched forward step, and turns each
 * token into a piece: its text, its log-probability, why the stream ended.
 * gpt_generate is a thin wrapper over it.
 */

/* One continuation. */
typedef struct gp_stream {
    int seq;                 /* its sequence in the context */
    gpt_sampler *sampler;
    gpt_decoder dec;
    unsigned char *pend;     /* text held back: it may begin a stop string */
    size_t n_pend;
    char *text;              /* the text of its waiting piece (NUL-terminated) */
    size_t n_text;
    int token;               /* the id of its waiting piece, or -1 */
    float logprob;
    gpt_token_logprob *top;  /* [n_logprobs] */
    int n_top;
    int n_generated;
    gpt_stop_reason why;     /* GPT_STOP_NONE while it goes on */
    int has_piece;           /* a piece waits to be taken */
    int appending;           /* its token joins the current forward step */
} gp_stream;

/* The entries of one forward step, gathered from the generators in it;
 * room for all of them is made before the step (gp_step_room), so that a
 * step allocates nothing. */
typedef struct gp_step {
    int *tokens, *seqs;
    int n, cap;
} gp_step;

typedef struct gp_beams gp_beams;

enum gp_gen_state { GP_GEN_NEW, GP_GEN_RUNNING, GP_GEN_DONE, GP_GEN_FAILED };

struct gpt_generator {
    gpt_context *c;
    gpt_generate_params p;   /* a copy; p.stop points to our copies of the strings */
    char **stops;            /* [n_stops] copies (gpt__calloc'd: NULL where none yet) */
    int n_stops;
    const gpt_tokenizer *tok;
    int eot;
    size_t max_tok;          /* longest token, in bytes */
    int V;
    int n_streams;
    gp_stream *streams;
    int *prompt;             /* ids to append to the first stream's sequence */
    int n_prompt;
    enum gp_gen_state state;
    gpt_status status;       /* GP_GEN_FAILED: why */
    int next_piece;          /* the stream whose piece gpt_generator_next gives next */
    float *work;             /* [V] the logits a stream samples from */
    unsigned char *seen;     /* [V] zero, for the repetition penalty */
    int *counts;             /* [V] zero, for the presence and frequency penalties */
    gp_beams *beams;         /* beam search's state (below); NULL when sampling */
    unsigned char *clean;    /* [3 * (max_tok + 8)] sanitizer output */
    char *piece;             /* [max_tok + 8] a token's bytes */
    int *window;             /* [T] the ids kept when a sequence slides */
    gp_step step;            /* room for the entries of its own steps */
    char err[320];
};

static void gp_beams_free(gp_beams *b);
static gp_beams *gp_beams_new(const gpt_generator *g, int cap);

static gpt_status gp_gen_fail(gpt_generator *g, gpt_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g->err, sizeof g->err, fmt, ap);
    va_end(ap);
    g->state = GP_GEN_FAILED;
    g->status = st;
    return st;
}

/* Appends text to the stream's held text and moves to its piece what can no
 * longer be part of a stop string; reports a stop string (GPT_STOP_STRING:
 * the piece then ends before it). At the end (final) everything left goes. */
static gpt_stop_reason gp_gen_push_text(gpt_generator *g, gp_stream *st, const unsigned char *bytes, size_t n,
                                        int final)
{
    size_t clean_n = gp_utf8_sanitize(bytes, n, g->clean), emit, hold = 0, best = (size_t)-1;
    int i;
    memcpy(st->pend + st->n_pend, g->clean, clean_n);
    st->n_pend += clean_n;
    for (i = 0; i < g->p.n_stop; i++) {
        const char *s = g->p.stop[i];
        size_t sl = strlen(s), at;
        if (sl <= st->n_pend) {
            for (at = 0; at + sl <= st->n_pend && at < best; at++)
                if (memcmp(st->pend + at, s, sl) == 0) {
                    best = at;
                    break;
                }
        }
    }
    if (best != (size_t)-1) {
        /* a stop string may begin inside a character (it is bytes): the
         * text before it then ends where that character starts */
        while (best > 0 && (st->pend[best] & 0xC0) == 0x80) best--;
        memcpy(st->text + st->n_text, st->pend, best);
        st->n_text += best;
        st->text[st->n_text] = 0;
        st->n_pend = 0;
        return GPT_STOP_STRING;
    }
    if (!final) {
        /* hold back the longest tail that a stop string starts with */
        for (i = 0; i < g->p.n_stop; i++) {
            const char *s = g->p.stop[i];
            size_t sl = strlen(s), h;
            for (h = sl - 1 < st->n_pend ? sl - 1 : st->n_pend; h > hold; h--)
                if (memcmp(st->pend + st->n_pend - h, s, h) == 0) {
                    hold = h;
                    break;
                }
        }
    }
    emit = st->n_pend - hold;
    while (emit > 0 && emit < st->n_pend && (st->pend[emit] & 0xC0) == 0x80) emit--; /* whole characters */
    memcpy(st->text + st->n_text, st->pend, emit);
    st->n_text += emit;
    st->text[st->n_text] = 0;
    memmove(st->pend, st->pend + emit, st->n_pend - emit);
    st->n_pend -= emit;
    return GPT_STOP_NONE;
}

/* Ends a stream with reason why: what its decoder and held text still
 * have goes into its piece (unless a stop string ended it), and the text
 * may turn out to end in a stop string after all. */
static void gp_gen_end_stream(gpt_generator *g, gp_stream *st, gpt_stop_reason why)
{
    st->why = why;
    st->has_piece = 1;
    if (why == GPT_STOP_MAX_TOKENS || why == GPT_STOP_EOS || why == GPT_STOP_CONTEXT_FULL) {
        int n = gpt_decoder_flush(&st->dec, g->piece, g->max_tok + 8);
        if (gp_gen_push_text(g, st, (const unsigned char *)g->piece, n > 0 ? (size_t)n : 0, 1) == GPT_STOP_STRING)
            st->why = GPT_STOP_STRING;
    }
}

static int gp_gen_stream_limit_reached(const gpt_generator *g, const gp_stream *st)
{
    if (g->p.max_new_tokens >= 0 && st->n_generated >= g->p.max_new_tokens) return 1;
    return g->p.max_length > 0 && g->c->seqs[st->seq].n_past >= g->p.max_length;
}

void gpt_generator_free(gpt_generator *g)
{
    int i;
    if (!g) return;
    for (i = 0; g->streams && i < g->n_streams; i++) {
        gpt_sampler_free(g->streams[i].sampler);
        gpt__free(g->streams[i].pend);
        gpt__free(g->streams[i].text);
        gpt__free(g->streams[i].top);
    }
    for (i = 0; g->stops && i < g->n_stops; i++) gpt__free(g->stops[i]);
    gpt__free(g->stops);
    gpt__free(g->streams);
    gpt__free(g->prompt);
    gpt__free(g->work);
    gpt__free(g->seen);
    gpt__free(g->counts);
    gp_beams_free(g->beams);
    gpt__free(g->clean);
    gpt__free(g->piece);
    gpt__free(g->window);
    gpt__free(g->step.tokens);
    gpt__free(g->step.seqs);
    gpt__free(g);
}

/* Copies the stop strings, so that the caller's may go away. */
static gpt_status gp_gen_copy_stops(gpt_generator *g, const gpt_generate_params *p, gpt_error *err)
{
    int i;
    g->p.stop = NULL;
    if (p->n_stop == 0) return GPT_OK;
    g->stops = (char **)gpt__calloc((size_t)p->n_stop, sizeof(char *));
    if (!g->stops) return gpt__set_error(err, GPT_ERR_OUT_OF_MEMORY, "out of memory for the stop strings");
    g->n_stops = p->n_stop;
    for (i = 0; i < p->n_stop; i++) {
        size_t n = strlen(p->stop[i]) + 1;
        if (!(g->stops[i] = (char *)gpt__alloc(n)))
            return gpt__set_error(err, GPT_ERR_OUT_OF_MEMORY, "out of memory for the stop strings");
        memcpy(g->stops[i], p->stop[i], n);
    }
    g->p.stop = (const char *const *)g->stops;
    return GPT_OK;
}

/* The sampler of stream i: the parameters, greedy when do_sample is 0, and
 * seed + i. */
static gpt_sampler *gp_gen_sampler(const gpt_generator *g, int i, gpt_error *err)
{
    gpt_generate_params sp = g->p;
    gpt_sampler *s;
    if (sp.do_sample == 0) sp.temperature = 0.0f;
    sp.repetition_penalty = 1.0f; /* the generator's processors apply it, in Hugging Face's order */
    sp.stop = NULL;
    sp.n_stop = 0;
    s = gpt_sampler_new(&sp, g->V, err);
    if (s) gpt_sampler_seed(s, g->p.seed + (uint64_t)i);
    return s;
}

static gpt_status gp_gen_alloc_streams(gpt_generator *g, const int *seqs, gpt_error *err)
{
    size_t max_stop = 0, text_cap;
    int i, k;
    for (i = 0; i < g->p.n_stop; i++)
        if (strlen(g->p.stop[i]) > max_stop) max_stop = strlen(g->p.stop[i]);
    text_cap = max_stop + 3 * (g->max_tok + 8) + 16;
    g->streams = (gp_stream *)gpt__calloc((size_t)g->n_streams, sizeof(gp_stream));
    g->work = (float *)gpt__alloc(sizeof(float) * (size_t)g->V);
    g->seen = (unsigned char *)gpt__calloc((size_t)g->V, 1);
    g->counts = (int *)gpt__calloc((size_t)g->V, sizeof(int));
    g->clean = (unsigned char *)gpt__alloc(3 * (g->max_tok + 8));
    g->piece = (char *)gpt__alloc(g->max_tok + 8);
    g->window = (int *)gpt__alloc(sizeof(int) * (size_t)g->c->n_ctx);
    if (!g->streams || !g->work || !g->seen || !g->counts || !g->clean || !g->piece || !g->window)
        return gpt__set_error(err, GPT_ERR_OUT_OF_MEMORY, "out of memory for generation");
    for (i = 0; i < g->n_streams; i++) {
        gp_stream *st = &g->streams[i];
        st->seq = seqs ? seqs[i] : i;
        if (st->seq < 0 || st->seq >= g->c->n_seq)
            return gpt__set_error(err, GPT_ERR_INVALID_ARG, "sequence %d of continuation %d is outside 0 .. %d "
                                  "(the context holds %d sequences; n_sequences is %d)", st->seq, i, g->c->n_seq - 1,
                                  g->c->n_seq, g->n_streams);
        for (k = 0; k < i; k++)
            if (g->streams[k].seq == st->seq)
                return gpt__set_error(err, GPT_ERR_INVALID_ARG, "sequence %d is given twice", st->seq);
        st->token = -1;
        gpt_decoder_init(&st->dec);
        st->pend = (unsigned char *)gpt__alloc(text_cap);
        st->text = (char *)gpt__alloc(text_cap + 1);
        st->top = (gpt_token_logprob *)gpt__alloc(sizeof(gpt_token_logprob) * (size_t)(g->p.n_logprobs + 1));
        if (!st->pend || !st->text || !st->top)
            return gpt__set_error(err, GPT_ERR_OUT_OF_MEMORY, "out of memory for generation");
        st->text[0] = 0;
        if (!(st->sampler = gp_gen_sampler(g, i, err))) return err ? err->status : GPT_ERR_OUT_OF_MEMORY;
    }
    return GPT_OK;
}

/* A generator over a prompt of ids. */
static gpt_generator *gp_gen_create(gpt_context *c, const int *ids, int n_ids, const int *seqs,
                                    const gpt_generate_params *p, gpt_error *err)
{
    gpt_generator *g;
    gpt_status st;
    int i;
    if ((st = gpt_generate_params_check(p, err)) != GPT_OK) return NULL;
    if (p->num_beams > 1 && p->n_stop > 0) {
        gpt__set_error(err, GPT_ERR_INVALID_ARG, "stop strings are not supported with beam search");
        return NULL;
    }
    if (p->num_beams > 1 && p->context_policy == GPT_CONTEXT_SLIDE) {
        gpt__set_error(err, GPT_ERR_INVALID_ARG, "beam search cannot slide the context window (context_policy)");
        return NULL;
    }
    if (n_ids < 0 || (n_ids > 0 && !ids)) {
        gpt__set_error(err, GPT_ERR_INVALID_ARG, "the prompt's ids are NULL or their count is negative");
        return NULL;
    }
    for (i = 0; i < n_ids; i++)
        if (ids[i] < 0 || ids[i] >= c->m->cfg.n_vocab) {
            gpt__set_error(err, GPT_ERR_TOKEN_RANGE, "prompt id %d at index %d is outside 0 .. %d", ids[i], i,
                           c->m->cfg.n_vocab - 1);
            return NULL;
        }
    if (!(g = (gpt_generator *)gpt__calloc(1, sizeof *g))) {
        gpt__set_error(err, GPT_ERR_OUT_OF_MEMORY, "out of memory for a generator");
        return NULL;
    }
    g->c = c;
    g->p = *p;
    g->tok = c->m->tok;
    g->eot = gpt_tokenizer_eot(g->tok);
    g->max_tok = gpt_tokenizer_max_token_bytes(g->tok);
    g->V = c->m->cfg.n_vocab;
    g->n_streams = p->num_beams > 1 ? p->num_beams : p->n_sequences;
    if (gp_gen_copy_stops(g, p, err) != GPT_OK) goto bad;
    if (gp_gen_alloc_streams(g, seqs, err) != GPT_OK) goto bad;
    if (p->num_beams > 1 && !(g->beams = gp_beams_new(g, c->n_ctx))) {
        gpt__set_error(err, GPT_ERR_OUT_OF_MEMORY, "out of memory for %d beams", p->num_beams);
        goto bad;
    }
    g->prompt = (int *)gpt__alloc(sizeof(int) * (size_t)(n_ids + 1));
    if (!g->prompt) {
        gpt__set_error(err, GPT_ERR_OUT_OF_MEMORY, "out of memory for the prompt");
        goto bad;
    }
    if (n_ids > 0) memcpy(g->prompt, ids, sizeof(int) * (size_t)n_ids);
    g->n_prompt = n_ids;
    g->step.cap = n_ids + 2 + g->n_streams;
    g->step.tokens = (int *)gpt__alloc(sizeof(int) * (size_t)g->step.cap);
    g->step.seqs = (int *)gpt__alloc(sizeof(int) * (size_t)g->step.cap);
    if (!g->step.tokens || !g->step.seqs) {
        gpt__set_error(err, GPT_ERR_OUT_OF_MEMORY, "out of memory for the steps");
        goto bad;
    }
    if (n_ids == 0 && c->seqs[g->streams[0].seq].n_past == 0) {
        if (g->eot < 0) {
            gpt__set_error(err, GPT_ERR_INVALID_ARG, "the prompt is empty and the vocabulary has no <|endoftext|> "
                           "to start from");
            goto bad;
        }
        g->prompt[g->n_prompt++] = g->eot; /* GPT-2 starts unconditional text so */
    }
    if (p->context_policy == GPT_CONTEXT_STOP && g->n_prompt > c->n_ctx - c->seqs[g->streams[0].seq].n_past) {
        gpt__set_error(err, GPT_ERR_CONTEXT_FULL, "the prompt (%d tokens) does not fit in the %d free positions of "
                       "the context", g->n_prompt, c->n_ctx - c->seqs[g->streams[0].seq].n_past);
        goto bad;
    }
    gpt__clear_error(err);
    return g;
bad:
    gpt_generator_free(g);
    return NULL;
}

gpt_generator *gpt_generator_new_ids(gpt_context *c, const int *ids, int n_ids, const int *seqs,
                                     const gpt_generate_params *p, gpt_error *err)
{
    gpt__clear_error(err);
    if (!c || !p) {
        gpt__set_error(err, GPT_ERR_INVALID_ARG, "gpt_generator_new: %s is NULL", c ? "params" : "context");
        return NULL;
    }
    return gp_gen_create(c, ids, n_ids, seqs, p, err);
}

/* Tokenizes a prompt; refuses, before tokenizing megabytes, one with more
 * bytes than the longest token times the free positions. */
static int *gp_gen_tokenize(gpt_context *c, const char *prompt, const gpt_generate_params *p, int *n_out,
                            gpt_error *err)
{
    const gpt_tokenizer *tok = c->m->tok;
    size_t len = prompt ? strlen(prompt) : 0, max_tok = gpt_tokenizer_max_token_bytes(tok);
    int flags = p->special ? GPT_TOKENIZE_SPECIAL : 0, n = 0, *ids;
    *n_out = 0;
    if (p->context_policy == GPT_CONTEXT_STOP && max_tok > 0 && len / max_tok > (size_t)(c->n_ctx - c->seqs[0].n_past)) {
        gpt__set_error(err, GPT_ERR_CONTEXT_FULL, "the prompt (%lu bytes) cannot fit in the %d free positions of the "
                       "context", (unsigned long)len, c->n_ctx - c->seqs[0].n_past);
        return NULL;
    }
    if (len > 0 && (n = gpt_tokenize_ex(tok, prompt, len, NULL, 0, flags)) < 0) {
        gpt__set_error(err, (gpt_status)n, "cannot tokenize the prompt: %s", gpt_status_name((gpt_status)n));
        return NULL;
    }
    if (!(ids = (int *)gpt__alloc(sizeof(int) * (size_t)(n + 1)))) {
        gpt__set_error(err, GPT_ERR_OUT_OF_MEMORY, "out of memory for the prompt");
        return NULL;
    }
    if (n > 0) gpt_tokenize_ex(tok, prompt, len, ids, n, flags);
    *n_out = n;
    return ids;
}

gpt_generator *gpt_generator_new(gpt_context *c, const char *prompt, const gpt_generate_params *p, gpt_error *err)
{
    gpt_generator *g;
    int *ids, n;
    gpt__clear_error(err);
    if (!c || !p) {
        gpt__set_error(err, GPT_ERR_INVALID_ARG, "gpt_generator_new: %s is NULL", c ? "params" : "context");
        return NULL;
    }
    if (gpt_generate_params_check(p, err) != GPT_OK) return NULL;
    if (!(ids = gp_gen_tokenize(c, prompt, p, &n, err))) return NULL;
    g = gp_gen_create(c, ids, n, NULL, p, err);
    gpt__free(ids);
    return g;
}

/* Evaluates ids for sequence seq alone; when they do not fit and the policy
 * is to slide, restarts the sequence from its newest T / 2 ids (positions
 * are absolute in GPT-2, so the kept ids are evaluated again). */
static gpt_status gp_gen_append_alone(gpt_generator *g, int seq, const int *ids, int n)
{
    gpt_context *c = g->c;
    gp_seq *q = &c->seqs[seq];
    int keep, from_ctx, i;
    gpt_batch b;
    if (n > c->n_ctx - q->n_past) {
        if (g->p.context_policy != GPT_CONTEXT_SLIDE)
            return gp_ctx_fail(c, GPT_ERR_CONTEXT_FULL, "the context is full: %d of %d positions are in use and %d "
                               "more are needed", q->n_past, c->n_ctx, n);
        keep = c->n_ctx / 2 > 0 ? c->n_ctx / 2 : 1;
        if (keep > q->n_past + n) keep = q->n_past + n;
        from_ctx = keep - n > 0 ? keep - n : 0;
        for (i = 0; i < from_ctx; i++) g->window[i] = q->tokens[q->n_past - from_ctx + i];
        for (i = from_ctx; i < keep; i++) g->window[i] = ids[n - (keep - from_ctx) + (i - from_ctx)];
        gp_seq_truncate(c, seq, 0);
        ids = g->window;
        n = keep;
    }
    b.n = n;
    b.tokens = ids;
    b.seq = NULL;
    b.logits = NULL;
    c->batch_seq = seq;
    return gp_eval_entries(c, &b, GP_KEEP_LAST);
}

/* Entries a generator can add to one step: its prompt (and the id a
 * rewound sequence evaluates again), or a token per stream. */
static int gp_gen_step_room(const gpt_generator *g) { return g->n_prompt + 1 + g->n_streams; }

static void gp_step_add(gp_step *s, int seq, int token)
{
    s->tokens[s->n] = token;
    s->seqs[s->n] = seq;
    s->n++;
}

/* A new generator's prompt: the ids go to the first stream's sequence (in
 * the step when they fit; alone when it must slide). A sequence whose
 * logits were dropped (after a rewind) evaluates its last id again. */
static gpt_status gp_gen_begin(gpt_generator *g, gp_step *step)
{
    gpt_context *c = g->c;
    int seq = g->streams[0].seq, i;
    gpt_status st;
    if (g->n_prompt == 0 && !c->seqs[seq].has_logits) {
        g->prompt[0] = c->seqs[seq].tokens[c->seqs[seq].n_past - 1];
        g->n_prompt = 1;
        gp_seq_truncate(c, seq, c->seqs[seq].n_past - 1);
    }
    if (g->n_prompt > c->n_ctx - c->seqs[seq].n_past) {
        if ((st = gp_gen_append_alone(g, seq, g->prompt, g->n_prompt)) != GPT_OK) {
            if (st == GPT_ERR_CONTEXT_FULL) g->streams[0].why = GPT_STOP_CONTEXT_FULL;
            return gp_gen_fail(g, st, "%s", c->err);
        }
        return GPT_OK;
    }
    for (i = 0; i < g->n_prompt; i++) gp_step_add(step, seq, g->prompt[i]);
    return GPT_OK;
}

/* The log-probabilities of a stream's token and of the most likely ones,
 * from the raw logits. */
static void gp_gen_logprobs(gpt_generator *g, gp_stream *st, const float *logits, int id)
{
    double mx = -INFINITY, sum = 0.0;
    float lse;
    int i, k, n = g->p.n_logprobs;
    for (i = 0; i < g->V; i++)
        if (logits[i] > mx) mx = logits[i];
    for (i = 0; i < g->V; i++) sum += exp((double)logits[i] - mx);
    lse = (float)(mx + log(sum));
    st->logprob = logits[id] - lse;
    /* the n most likely, by insertion: n is at most GPT_MAX_LOGPROBS */
    st->n_top = 0;
    for (i = 0; i < g->V && n > 0; i++) {
        float v = logits[i];
        if (st->n_top == n && !(v > st->top[n - 1].logprob)) continue;
        k = st->n_top < n ? st->n_top++ : n - 1;
        while (k > 0 && v > st->top[k - 1].logprob) {
            st->top[k] = st->top[k - 1];
            k--;
        }
        st->top[k].token = i;
        st->top[k].logprob = v;
    }
    for (k = 0; k < st->n_top; k++) st->top[k].logprob -= lse;
}

/* Hugging Face's logits processors, in its order, on w [V] for a sequence
 * whose ids are hist[0 .. n_hist) (its prompt included), the last n_new of
 * them generated: the repetition penalty (over the whole sequence), then
 * OpenAI's presence and frequency penalties (over the generated ids), then
 * no_repeat_ngram_size, then min_new_tokens. w holds logits when sampling
 * or greedy, log-probabilities in beam search, as in HF. */
static void gp_gen_process(gpt_generator *g, float *w, const int *hist, int n_hist, int n_new)
{
    const gpt_generate_params *p = &g->p;
    int i, n = p->no_repeat_ngram_size;
    gp_repetition_penalty(p, g->seen, g->V, w, hist, n_hist); /* ids were checked on the way in */
    if (p->presence_penalty != 0.0f || p->frequency_penalty != 0.0f) {
        for (i = n_hist - n_new; i < n_hist; i++) g->counts[hist[i]]++;
        for (i = n_hist - n_new; i < n_hist; i++) {
            int t = hist[i];
            if (g->counts[t] == 0) continue; /* done already */
            w[t] -= p->frequency_penalty * (float)g->counts[t] + p->presence_penalty;
            g->counts[t] = 0;
        }
    }
    if (n > 0 && n_hist >= n) {
        /* an id that would complete an n-gram already in the sequence */
        const int *prefix = hist + n_hist - (n - 1);
        for (i = 0; i + n <= n_hist; i++)
            if (memcmp(hist + i, prefix, sizeof(int) * (size_t)(n - 1)) == 0) w[hist[i + n - 1]] = -INFINITY;
    }
    if (g->eot >= 0 && n_new < p->min_new_tokens) w[g->eot] = -INFINITY;
}

/* Sampling for one stream: its logits, the processors, the sampler.
 * Returns the id, or a negative status. */
static int gp_gen_sample(gpt_generator *g, gp_stream *st)
{
    const gp_seq *q = &g->c->seqs[st->seq];
    const float *logits = gpt_logits_seq(g->c, st->seq);
    int id;
    if (!logits) return gp_gen_fail(g, GPT_ERR_INVALID_ARG, "sequence %d has no logits to sample from", st->seq);
    if (!gp_logits_finite(logits, g->V))
        return gp_gen_fail(g, GPT_ERR_NUMERIC, "the logits after position %d are not finite: the model has NaN or "
                           "infinite weights, or its activations overflow", q->n_past - 1);
    memcpy(g->work, logits, sizeof(float) * (size_t)g->V);
    gp_gen_process(g, g->work, q->tokens, q->n_past, st->n_generated);
    id = gpt_sampler_sample(st->sampler, g->work, NULL, 0);
    if (id < 0) return gp_gen_fail(g, (gpt_status)id, "sampling failed: %s", gpt_status_name((gpt_status)id));
    gp_gen_logprobs(g, st, logits, id);
    return id;
}

/*
 * Beam search, as Hugging Face's generate() does it (num_beams > 1,
 * do_sample off). The beams are sequences of the context, evaluated as one
 * batch each step. A step: each beam's log-softmax, through the processors,
 * plus the beam's running score; the 2 k best (beam, id) pairs over all
 * beams, best first; an end-of-text among the first k ends a hypothesis
 * (scored sum / length^length_penalty, length = its new ids), the others
 * become the next k beams (their sequences copied from their parents, pages
 * shared). It stops when early_stopping says no beam can do better, or at
 * the length limit, where the live beams become hypotheses too. The best
 * n_sequences hypotheses come out as one piece each, best first.
 */
typedef struct gp_hyp {
    double score;
    int n;                   /* new ids, an end-of-text included */
    int ended_eos;
    int order;               /* when it was added (ties: the later comes first, as in HF) */
    int *tokens;
    float *logprobs;
    gpt_token_logprob *tops; /* [n][n_top] */
} gp_hyp;

struct gp_beams {
    int k, cap, n_top;       /* beams; the most new ids; alternatives per id */
    int n_new;               /* ids every beam has generated */
    int max_new;             /* the length limit, in new ids */
    int prompt_len;
    int done;
    float *score, *score2;   /* [k] running sums of the processed log-probabilities */
    int *tokens, *tokens2;   /* [k][cap] */
    float *lp, *lp2;         /* [k][cap] raw log-probabilities of those ids */
    gpt_token_logprob *tops, *tops2; /* [k][cap][n_top] */
    gp_cand *cands;          /* [V] one beam's candidates */
    gp_cand *best;           /* [k][2k] every beam's best 2k */
    int *flat;               /* [k * 2k] beam of each candidate in best */
    int *parent, *next_tok;  /* [k] */
    float *next_score, *next_lp; /* [k] */
    int *reorder;            /* scratch of gp_seqs_reorder */
    int *seqs;               /* [k] the beams' sequences */
    gp_hyp *hyps;            /* [k + 1] */
    int n_hyps, n_added;
    double worst;
    int n_out, next_out;     /* hypotheses returned, and the next to give */
    unsigned char *raw;      /* [raw_cap] one hypothesis's bytes */
    size_t raw_cap;
    char *text;              /* [3 raw_cap + 1] and its text */
};

static void gp_beams_free(gp_beams *b)
{
    int i;
    if (!b) return;
    for (i = 0; b->hyps && i <= b->k; i++) {
        gpt__free(b->hyps[i].tokens);
        gpt__free(b->hyps[i].logprobs);
        gpt__free(b->hyps[i].tops);
    }
    gpt__free(b->hyps);
    gpt__free(b->score);
    gpt__free(b->score2);
    gpt__free(b->tokens);
    gpt__free(b->tokens2);
    gpt__free(b->lp);
    gpt__free(b->lp2);
    gpt__free(b->tops);
    gpt__free(b->tops2);
    gpt__free(b->cands);
    gpt__free(b->best);
    gpt__free(b->flat);
    gpt__free(b->parent);
    gpt__free(b->next_tok);
    gpt__free(b->next_score);
    gpt__free(b->next_lp);
    gpt__free(b->reorder);
    gpt__free(b->seqs);
    gpt__free(b->raw);
    gpt__free(b->text);
    gpt__free(b);
}

static gp_beams *gp_beams_new(const gpt_generator *g, int cap)
{
    gp_beams *b = (gp_beams *)gpt__calloc(1, sizeof *b);
    int k = g->p.num_beams, i, ok, nt = g->p.n_logprobs > 0 ? g->p.n_logprobs : 1;
    size_t V = (size_t)g->V, pps = (size_t)gp_pages_for(g->c->n_ctx);
    if (!b) return NULL;
    b->k = k;
    b->cap = cap > 0 ? cap : 1;
    b->n_top = g->p.n_logprobs;
    b->worst = 1e9;
    b->score = (float *)gpt__calloc((size_t)k, sizeof(float));
    b->score2 = (float *)gpt__calloc((size_t)k, sizeof(float));
    b->tokens = (int *)gpt__alloc(sizeof(int) * (size_t)k * b->cap);
    b->tokens2 = (int *)gpt__alloc(sizeof(int) * (size_t)k * b->cap);
    b->lp = (float *)gpt__alloc(sizeof(float) * (size_t)k * b->cap);
    b->lp2 = (float *)gpt__alloc(sizeof(float) * (size_t)k * b->cap);
    b->tops = (gpt_token_logprob *)gpt__alloc(sizeof(gpt_token_logprob) * (size_t)k * b->cap * nt);
    b->tops2 = (gpt_token_logprob *)gpt__alloc(sizeof(gpt_token_logprob) * (size_t)k * b->cap * nt);
    b->cands = (gp_cand *)gpt__alloc(sizeof(gp_cand) * V);
    b->best = (gp_cand *)gpt__alloc(sizeof(gp_cand) * (size_t)k * 2 * k);
    b->flat = (int *)gpt__alloc(sizeof(int) * (size_t)k * 2 * k);
    b->parent = (int *)gpt__alloc(sizeof(int) * (size_t)k);
    b->next_tok = (int *)gpt__alloc(sizeof(int) * (size_t)k);
    b->next_score = (float *)gpt__alloc(sizeof(float) * (size_t)k);
    b->next_lp = (float *)gpt__alloc(sizeof(float) * (size_t)k);
    b->reorder = (int *)gpt__alloc(sizeof(int) * (size_t)k * (pps + (size_t)g->c->n_ctx + 1));
    b->seqs = (int *)gpt__alloc(sizeof(int) * (size_t)k);
    b->hyps = (gp_hyp *)gpt__calloc((size_t)k + 1, sizeof(gp_hyp));
    b->raw_cap = (size_t)(b->cap + 1) * g->max_tok;
    b->raw = (unsigned char *)gpt__alloc(b->raw_cap + 1);
    b->text = (char *)gpt__alloc(3 * b->raw_cap + 1);
    ok = b->score && b->score2 && b->tokens && b->tokens2 && b->lp && b->lp2 && b->tops && b->tops2 && b->cands &&
         b->best && b->flat && b->parent && b->next_tok && b->next_score && b->next_lp && b->reorder && b->seqs && b->hyps &&
         b->raw && b->text;
    for (i = 0; ok && i <= k; i++) {
        b->hyps[i].tokens = (int *)gpt__alloc(sizeof(int) * (size_t)(b->cap + 1));
        b->hyps[i].logprobs = (float *)gpt__alloc(sizeof(float) * (size_t)(b->cap + 1));
        b->hyps[i].tops = (gpt_token_logprob *)gpt__alloc(sizeof(gpt_token_logprob) * (size_t)(b->cap + 1) * nt);
        ok = b->hyps[i].tokens && b->hyps[i].logprobs && b->hyps[i].tops;
    }
    if (!ok) {
        gp_beams_free(b);
        return NULL;
    }
    return b;
}

static void gp_swap_beam_buffers(gp_beams *b)
{
    int *t = b->tokens;
    float *l = b->lp, *s = b->score;
    gpt_token_logprob *tp = b->tops;
    b->tokens = b->tokens2;
    b->tokens2 = t;
    b->lp = b->lp2;
    b->lp2 = l;
    b->tops = b->tops2;
    b->tops2 = tp;
    b->score = b->score2;
    b->score2 = s;
}

/* HF's BeamHypotheses.add: keeps the k best finished hypotheses. The new
 * one is beam `beam`'s ids with (when last >= 0) one more id. */
static void gp_beams_add(gpt_generator *g, gp_beams *b, int beam, int last, float last_lp,
                         const gpt_token_logprob *last_top, float sum, int ended_eos)
{
    int n = b->n_new + (last >= 0), nt = b->n_top, i, worst_i = 0, second_i = -1;
    double score = n > 0 ? (double)sum / pow((double)n, (double)g->p.length_penalty) : 0.0;
    gp_hyp *h;
    if (!(b->n_hyps < b->k || score > b->worst)) return;
    h = &b->hyps[b->n_hyps++];
    h->score = score;
    h->n = n;
    h->ended_eos = ended_eos;
    h->order = b->n_added++;
    memcpy(h->tokens, b->tokens + (size_t)beam * b->cap, sizeof(int) * (size_t)b->n_new);
    memcpy(h->logprobs, b->lp + (size_t)beam * b->cap, sizeof(float) * (size_t)b->n_new);
    if (nt > 0)
        memcpy(h->tops, b->tops + (size_t)beam * b->cap * nt, sizeof(gpt_token_logprob) * (size_t)b->n_new * nt);
    if (last >= 0) {
        h->tokens[b->n_new] = last;
        h->logprobs[b->n_new] = last_lp;
        if (nt > 0) memcpy(h->tops + (size_t)b->n_new * nt, last_top, sizeof(gpt_token_logprob) * (size_t)nt);
    }
    if (b->n_hyps > b->k) {
        /* drop the worst (the first added among equals, as Python's stable
         * sort puts it first), and the next worst sets the bar */
        gp_hyp t;
        for (i = 1; i < b->n_hyps; i++)
            if (b->hyps[i].score < b->hyps[worst_i].score ||
                (b->hyps[i].score == b->hyps[worst_i].score && b->hyps[i].order < b->hyps[worst_i].order))
                worst_i = i;
        t = b->hyps[worst_i];
        b->hyps[worst_i] = b->hyps[b->n_hyps - 1];
        b->hyps[b->n_hyps - 1] = t;
        b->n_hyps--;
        for (i = 0; i < b->n_hyps; i++)
            if (second_i < 0 || b->hyps[i].score < b->hyps[second_i].score) second_i = i;
        b->worst = b->hyps[second_i].score;
    } else if (score < b->worst) {
        b->worst = score;
    }
}

/* HF's BeamHypotheses.is_done, with the best running score of this step
 * and the length its candidates have. */
static int gp_beams_is_done(const gpt_generator *g, const gp_beams *b, float best, int gen_len)
{
    double lp = (double)g->p.length_penalty, highest;
    if (b->n_hyps < b->k) return 0;
    if (g->p.early_stopping == GPT_EARLY_STOP_TRUE) return 1;
    if (g->p.early_stopping == GPT_EARLY_STOP_NEVER && lp > 0.0)
        highest = (double)best / pow((double)b->max_new, lp);
    else
        highest = (double)best / pow((double)gen_len, lp);
    return b->worst >= highest;
}

/* Orders candidates best first; ties by lower beam * V + id, as the flat
 * index of HF's topk. */
static int gp_beam_cand_before(const gp_cand *x, int fx, const gp_cand *y, int fy, int V)
{
    if (x->v != y->v) return x->v > y->v;
    return (long long)fx * V + x->id < (long long)fy * V + y->id;
}

/* Every beam's 2k best candidates, then all of them sorted best first. */
static int gp_beams_candidates(gpt_generator *g, gp_beams *b)
{
    int k = b->k, two_k = 2 * k, beam, i, j, n = 0, V = g->V;
    for (beam = 0; beam < k; beam++) {
        gp_stream *st = &g->streams[beam];
        const gp_seq *q = &g->c->seqs[st->seq];
        const float *logits = gpt_logits_seq(g->c, st->seq);
        double mx = -INFINITY, sum = 0.0;
        float lse;
        int m;
        if (!logits) return gp_gen_fail(g, GPT_ERR_INVALID_ARG, "beam %d has no logits", beam);
        if (!gp_logits_finite(logits, V))
            return gp_gen_fail(g, GPT_ERR_NUMERIC, "the logits after position %d are not finite: the model has NaN "
                               "or infinite weights, or its activations overflow", q->n_past - 1);
        for (i = 0; i < V; i++)
            if (logits[i] > mx) mx = logits[i];
        for (i = 0; i < V; i++) sum += exp((double)logits[i] - mx);
        lse = (float)(mx + log(sum));
        for (i = 0; i < V; i++) g->work[i] = logits[i] - lse; /* HF: log_softmax, then the processors */
        gp_gen_process(g, g->work, q->tokens, q->n_past, b->n_new);
        for (i = 0; i < V; i++) {
            b->cands[i].v = g->work[i] + b->score[beam];
            b->cands[i].id = i;
        }
        m = two_k < V ? two_k : V;
        if (m < V) gp_select_top(b->cands, V, m);
        for (i = 0; i < m; i++) {
            b->best[n] = b->cands[i];
            b->flat[n] = beam;
            n++;
        }
    }
    for (i = 1; i < n; i++) { /* insertion sort: 2k^2 candidates */
        gp_cand c = b->best[i];
        int f = b->flat[i];
        for (j = i; j > 0 && gp_beam_cand_before(&c, f, &b->best[j - 1], b->flat[j - 1], V); j--) {
            b->best[j] = b->best[j - 1];
            b->flat[j] = b->flat[j - 1];
        }
        b->best[j] = c;
        b->flat[j] = f;
    }
    return n;
}

/* The raw log-probability of id after beam's sequence, and the top ones. */
static float gp_beam_raw_logprob(gpt_generator *g, gp_stream *st, int id)
{
    gp_gen_logprobs(g, st, gpt_logits_seq(g->c, st->seq), id);
    return st->logprob;
}

/* The end: unless early stopping ended the search, the live beams become
 * hypotheses too (HF's finalize). */
static void gp_beams_finalize(gpt_generator *g, int add_live)
{
    gp_beams *b = g->beams;
    int i;
    for (i = 0; add_live && i < b->k; i++) gp_beams_add(g, b, i, -1, 0.0f, NULL, b->score[i], 0);
    b->done = 1;
}

/* One beam step: candidates, hypotheses, the next beams (their sequences
 * reordered, their new ids added to the step). */
static gpt_status gp_beams_choose(gpt_generator *g, gp_step *step)
{
    gp_beams *b = g->beams;
    int k = b->k, n, rank, next = 0, i, nt = b->n_top, *sq;
    if (b->done) return GPT_OK;
    if (b->n_new >= b->max_new) { /* no room for an id at all (max_new_tokens 0) */
        gp_beams_finalize(g, 1);
        return GPT_OK;
    }
    if ((n = gp_beams_candidates(g, b)) < 0) return (gpt_status)n;
    for (rank = 0; rank < n && next < k; rank++) {
        int beam = b->flat[rank], id = b->best[rank].id;
        if (id == g->eot && g->eot >= 0) {
            if (rank >= k) continue;
            gp_beam_raw_logprob(g, &g->streams[beam], id);
            gp_beams_add(g, b, beam, id, g->streams[beam].logprob, g->streams[beam].top, b->best[rank].v, 1);
            continue;
        }
        b->parent[next] = beam;
        b->next_tok[next] = id;
        b->next_score[next] = b->best[rank].v;
        b->next_lp[next] = gp_beam_raw_logprob(g, &g->streams[beam], id);
        if (nt > 0) memcpy(b->tops2 + ((size_t)next * b->cap + (size_t)b->n_new) * nt, g->streams[beam].top,
                           sizeof(gpt_token_logprob) * (size_t)nt);
        next++;
    }
    if (next < k)
        return gp_gen_fail(g, GPT_ERR_INVALID_ARG, "beam search found %d continuations for %d beams (the vocabulary "
                           "is too small for them)", next, k);
    /* the next beams' histories, from their parents */
    for (i = 0; i < k; i++) {
        int p = b->parent[i];
        memcpy(b->tokens2 + (size_t)i * b->cap, b->tokens + (size_t)p * b->cap, sizeof(int) * (size_t)b->n_new);
        memcpy(b->lp2 + (size_t)i * b->cap, b->lp + (size_t)p * b->cap, sizeof(float) * (size_t)b->n_new);
        if (nt > 0)
            memcpy(b->tops2 + (size_t)i * b->cap * nt, b->tops + (size_t)p * b->cap * nt,
                   sizeof(gpt_token_logprob) * (size_t)b->n_new * nt);
        b->tokens2[(size_t)i * b->cap + b->n_new] = b->next_tok[i];
        b->lp2[(size_t)i * b->cap + b->n_new] = b->next_lp[i];
        b->score2[i] = b->next_score[i];
    }
    gp_swap_beam_buffers(b);
    b->n_new++;
    if (gp_beams_is_done(g, b, b->best[0].v, b->n_new)) {
        gp_beams_finalize(g, 0); /* HF: done, so the live beams are not kept */
        return GPT_OK;
    }
    /* the beams' sequences become their parents', then grow by their ids */
    sq = b->seqs;
    for (i = 0; i < k; i++) sq[i] = g->streams[i].seq;
    gp_seqs_reorder(g->c, sq, b->parent, k, b->reorder);
    for (i = 0; i < k; i++) gp_step_add(step, g->streams[i].seq, b->next_tok[i]);
    return GPT_OK;
}

/* After the step: at the length limit (max_new_tokens, max_length, the
 * context) the live beams become hypotheses. */
static void gp_beams_after_step(gpt_generator *g)
{
    gp_beams *b = g->beams;
    if (!b->done && b->n_new >= b->max_new) gp_beams_finalize(g, 1);
}

/* The hypotheses, best first (ties: the later added first, as HF pops
 * them from a stable ascending sort). */
static void gp_beams_sort(gp_beams *b)
{
    int i, j;
    for (i = 1; i < b->n_hyps; i++) {
        gp_hyp h = b->hyps[i];
        for (j = i; j > 0 && (b->hyps[j - 1].score < h.score ||
                              (b->hyps[j - 1].score == h.score && b->hyps[j - 1].order < h.order));
             j--)
            b->hyps[j] = b->hyps[j - 1];
        b->hyps[j] = h;
    }
}

/* Piece i of the result: hypothesis i, whole. */
static void gp_beams_piece(gpt_generator *g, int i, gpt_piece *piece)
{
    gp_beams *b = g->beams;
    gp_hyp *h = &b->hyps[i];
    size_t n = 0;
    int t, n_text = h->n - h->ended_eos; /* the end-of-text has no text */
    for (t = 0; t < n_text; t++) {
        size_t len;
        const char *bytes = gpt_token_bytes(g->tok, h->tokens[t], &len);
        if (bytes && n + len <= b->raw_cap) {
            memcpy(b->raw + n, bytes, len);
            n += len;
        }
    }
    n = gp_utf8_sanitize(b->raw, n, (unsigned char *)b->text); /* whole characters, as every piece */
    b->text[n] = 0;
    piece->seq = i;
    piece->token = h->n > 0 ? h->tokens[h->n - 1] : -1;
    piece->logprob = h->n > 0 ? h->logprobs[h->n - 1] : 0.0f;
    piece->text = b->text;
    piece->len = n;
    piece->stop_reason = h->ended_eos ? GPT_STOP_EOS : GPT_STOP_MAX_TOKENS;
    piece->top = h->tops;
    piece->n_top = b->n_top;
    piece->tokens = h->tokens;
    piece->logprobs = h->logprobs;
    piece->n_tokens = h->n;
    piece->score = (float)h->score;
}

/* A running generator's part of a step: a token for each stream that goes
 * on and has no piece waiting. */
static gpt_status gp_gen_choose(gpt_generator *g, gp_step *step)
{
    int i, id;
    for (i = 0; i < g->n_streams; i++) {
        gp_stream *st = &g->streams[i];
        gp_seq *q = &g->c->seqs[st->seq];
        if (st->why != GPT_STOP_NONE || st->has_piece) continue;
        st->n_text = 0;
        st->text[0] = 0;
        st->token = -1;
        st->n_top = 0;
        if (gp_gen_stream_limit_reached(g, st)) { /* max_new_tokens 0, or a prompt at max_length */
            gp_gen_end_stream(g, st, GPT_STOP_MAX_TOKENS);
            continue;
        }
        if ((id = gp_gen_sample(g, st)) < 0) return (gpt_status)id;
        st->token = id;
        st->n_generated++;
        if (id == g->eot && !g->p.ignore_eos) {
            gp_gen_end_stream(g, st, GPT_STOP_EOS);
            continue;
        }
        if (q->n_past == g->c->n_ctx) {
            gpt_status s;
            if (g->p.context_policy != GPT_CONTEXT_SLIDE) {
                st->token = -1; /* sampled, but there is no room for it */
                gp_gen_end_stream(g, st, GPT_STOP_CONTEXT_FULL);
                continue;
            }
            if ((s = gp_gen_append_alone(g, st->seq, &id, 1)) != GPT_OK) return gp_gen_fail(g, s, "%s", g->c->err);
            st->appending = 2; /* appended already */
            continue;
        }
        gp_step_add(step, st->seq, id);
        st->appending = 1;
    }
    return GPT_OK;
}

/* After the step's forward pass: a new generator copies its first
 * sequence to the others; each appended token becomes text. */
static gpt_status gp_gen_finish_step(gpt_generator *g)
{
    int i, n;
    if (g->state == GP_GEN_NEW) {
        for (i = 1; i < g->n_streams; i++) gpt_seq_fork(g->c, g->streams[0].seq, g->streams[i].seq);
        g->state = GP_GEN_RUNNING;
        if (g->beams) {
            gp_beams *b = g->beams;
            b->prompt_len = g->c->seqs[g->streams[0].seq].n_past;
            b->max_new = g->c->n_ctx - b->prompt_len;
            if (g->p.max_new_tokens >= 0 && g->p.max_new_tokens < b->max_new) b->max_new = g->p.max_new_tokens;
            if (g->p.max_length > 0 && g->p.max_length - b->prompt_len < b->max_new)
                b->max_new = g->p.max_length - b->prompt_len > 0 ? g->p.max_length - b->prompt_len : 0;
            for (i = 1; i < b->k; i++) b->score[i] = -1e9f; /* HF: only the first beam starts */
        }
        return GPT_OK;
    }
    if (g->beams) {
        gp_beams_after_step(g);
        return GPT_OK;
    }
    for (i = 0; i < g->n_streams; i++) {
        gp_stream *st = &g->streams[i];
        if (!st->appending) continue;
        st->appending = 0;
        st->has_piece = 1;
        n = gpt_decoder_push(&st->dec, g->tok, st->token, g->piece, g->max_tok + 8);
        if (n < 0) return gp_gen_fail(g, (gpt_status)n, "cannot decode token %d", st->token);
        if (gp_gen_push_text(g, st, (const unsigned char *)g->piece, (size_t)n, 0) == GPT_STOP_STRING)
            st->why = GPT_STOP_STRING;
        else if (gp_gen_stream_limit_reached(g, st))
            gp_gen_end_stream(g, st, GPT_STOP_MAX_TOKENS);
    }
    return GPT_OK;
}

/* Beam search has its pieces once it is done: the best hypotheses. */
static void gp_beams_prepare_output(gpt_generator *g)
{
    gp_beams *b = g->beams;
    if (!b->done || b->n_out > 0 || b->next_out > 0) return;
    gp_beams_sort(b);
    b->n_out = g->p.n_sequences < b->n_hyps ? g->p.n_sequences : b->n_hyps;
}

static int gp_gen_pending(const gpt_generator *g)
{
    int i, n = 0;
    if (g->beams) return g->beams->done ? g->beams->n_out - g->beams->next_out : 0;
    for (i = 0; i < g->n_streams; i++) n += g->streams[i].has_piece;
    return n;
}

static int gp_gen_ended(const gpt_generator *g)
{
    int i;
    if (g->beams) return g->beams->done;
    for (i = 0; i < g->n_streams; i++)
        if (g->streams[i].why == GPT_STOP_NONE) return 0;
    return 1;
}

/* One step of n generators of one context, with room for their entries:
 * each chooses, one forward step runs all their entries, each finishes. */
static gpt_status gp_gen_step(gpt_generator *const *gens, int n, gp_step *step)
{
    gpt_context *c = gens[0]->c;
    gpt_batch b;
    gpt_status st = GPT_OK;
    int i;
    step->n = 0;
    for (i = 0; i < n; i++) {
        /* a generator that fails here (its logits are not finite, say) leaves
         * the step without its entries; the others go on */
        gpt_generator *g = gens[i];
        int before = step->n;
        gpt_status s = GPT_OK;
        if (g->state == GP_GEN_NEW) s = gp_gen_begin(g, step);
        else if (g->state == GP_GEN_RUNNING) s = g->beams ? gp_beams_choose(g, step) : gp_gen_choose(g, step);
        if (s != GPT_OK) step->n = before;
    }
    if (step->n > 0) {
        b.n = step->n;
        b.tokens = step->tokens;
        b.seq = step->seqs;
        b.logits = NULL;
        if ((st = gp_eval_entries(c, &b, GP_KEEP_LAST)) != GPT_OK) {
            for (i = 0; i < n; i++)
                if (gens[i]->state == GP_GEN_NEW || gens[i]->state == GP_GEN_RUNNING)
                    gp_gen_fail(gens[i], st, "%s", c->err);
            return st;
        }
    }
    for (i = 0; i < n; i++)
        if (gens[i]->state == GP_GEN_NEW || gens[i]->state == GP_GEN_RUNNING) {
            gp_gen_finish_step(gens[i]);
            if (gens[i]->beams) gp_beams_prepare_output(gens[i]);
        }
    return GPT_OK;
}

int gpt_generator_pending(const gpt_generator *g) { return g ? gp_gen_pending(g) : 0; }

int gpt_generator_done(const gpt_generator *g)
{
    if (!g) return 1;
    return g->state == GP_GEN_FAILED || g->state == GP_GEN_DONE || (g->state == GP_GEN_RUNNING && gp_gen_ended(g));
}

gpt_status gpt_generator_step(gpt_generator *const *gens, int n)
{
    int i, k, s, t;
    if (!gens || n < 0) return GPT_ERR_INVALID_ARG;
    if (n == 0) return GPT_OK;
    gp_step step;
    gpt_status st;
    size_t room = 0;
    for (i = 0; i < n; i++) {
        if (!gens[i] || gens[i]->c != gens[0]->c) return GPT_ERR_INVALID_ARG;
        for (k = 0; k < i; k++)
            for (s = 0; s < gens[i]->n_streams; s++)
                for (t = 0; t < gens[k]->n_streams; t++)
                    if (gens[i]->streams[s].seq == gens[k]->streams[t].seq)
                        return gp_gen_fail(gens[i], GPT_ERR_INVALID_ARG, "two generators of the step share sequence %d",
                                           gens[i]->streams[s].seq);
        room += (size_t)gp_gen_step_room(gens[i]);
    }
    step.tokens = (int *)gpt__alloc(sizeof(int) * room);
    step.seqs = (int *)gpt__alloc(sizeof(int) * room);
    step.cap = (int)room;
    if (!step.tokens || !step.seqs) st = GPT_ERR_OUT_OF_MEMORY; /* before anything changes */
    else st = gp_gen_step(gens, n, &step);
    gpt__free(step.tokens);
    gpt__free(step.seqs);
    return st;
}

int gpt_generator_next(gpt_generator *g, gpt_piece *piece)
{
    gpt_status st;
    if (!g || !piece) return GPT_ERR_INVALID_ARG;
    memset(piece, 0, sizeof *piece);
    for (;;) {
        if (g->state == GP_GEN_FAILED) return (int)g->status;
        if (g->beams && gp_gen_pending(g) > 0) {
            gp_beams_piece(g, g->beams->next_out++, piece);
            return 1;
        }
        if (!g->beams && gp_gen_pending(g) > 0) {
            int i;
            for (i = 0; i < g->n_streams; i++) {
                gp_stream *s = &g->streams[(g->next_piece + i) % g->n_streams];
                if (!s->has_piece) continue;
                s->has_piece = 0;
                g->next_piece = (int)(s - g->streams + 1) % g->n_streams;
                piece->seq = (int)(s - g->streams);
                piece->token = s->token;
                piece->logprob = s->token >= 0 ? s->logprob : 0.0f;
                piece->text = s->text;
                piece->len = s->n_text;
                piece->stop_reason = s->why;
                piece->top = s->top;
                piece->n_top = s->token >= 0 ? s->n_top : 0;
                piece->tokens = s->token >= 0 ? &s->token : NULL;
                piece->logprobs = s->token >= 0 ? &s->logprob : NULL;
                piece->n_tokens = s->token >= 0;
                return 1;
            }
        }
        if (g->state == GP_GEN_DONE || (g->state == GP_GEN_RUNNING && gp_gen_ended(g))) {
            g->state = GP_GEN_DONE;
            return 0;
        }
        if ((st = gp_gen_step(&g, 1, &g->step)) != GPT_OK) return (int)st;
        if (g->state == GP_GEN_FAILED) return (int)g->status;
    }
}

gpt_status gpt_generator_result(const gpt_generator *g, int i, gpt_generate_result *r)
{
    if (!g || !r || i < 0 || i >= (g->beams ? g->p.n_sequences : g->n_streams)) return GPT_ERR_INVALID_ARG;
    if (g->beams) {
        const gp_beams *b = g->beams;
        r->stop_reason = i < b->n_out ? (b->hyps[i].ended_eos ? GPT_STOP_EOS : GPT_STOP_MAX_TOKENS) : GPT_STOP_NONE;
        r->n_prompt_tokens = g->n_prompt;
        r->n_generated = i < b->n_out ? b->hyps[i].n : 0;
        return GPT_OK;
    }
    r->stop_reason = g->streams[i].why;
    r->n_prompt_tokens = g->n_prompt;
    r->n_generated = g->streams[i].n_generated;
    return GPT_OK;
}

const char *gpt_generator_error(const gpt_generator *g) { return g ? g->err : "generator is NULL"; }

/* Runs a generator to its end, giving each piece to on_piece (or its text
 * to on_text); the results of its continuations in results. */
static gpt_status gp_generate_run(gpt_context *c, const char *prompt, const gpt_generate_params *p,
                                  gpt_on_piece on_piece, gpt_on_text on_text, void *user, gpt_generate_result *results)
{
    gpt_generate_params defaults;
    gpt_generator *g;
    gpt_error err;
    gpt_piece piece;
    gpt_status st = GPT_OK;
    int rc, i, n, stopped = 0;
    if (!p) {
        defaults = gpt_generate_defaults();
        p = &defaults;
    }
    n = p->n_sequences > 0 ? p->n_sequences : 1;
    if (results) memset(results, 0, sizeof *results * (size_t)n);
    if (!(g = gpt_generator_new(c, prompt, p, &err))) {
        if (results && err.status == GPT_ERR_CONTEXT_FULL) results[0].stop_reason = GPT_STOP_CONTEXT_FULL;
        return gp_ctx_fail(c, err.status, "%s", err.message);
    }
    while ((rc = gpt_generator_next(g, &piece)) > 0) {
        if (on_piece ? on_piece(&piece, user) != 0 : on_text && piece.len > 0 && on_text(piece.text, piece.len, user)) {
            stopped = 1;
            break;
        }
    }
    if (rc < 0) st = gp_ctx_fail(c, (gpt_status)rc, "%s", g->err);
    for (i = 0; i < n; i++) {
        gp_stream *s = &g->streams[i];
        if (!g->beams && stopped && s->why == GPT_STOP_NONE) s->why = GPT_STOP_CALLBACK;
        if (results) gpt_generator_result(g, i, &results[i]);
        if (rc < 0 && results) results[i].stop_reason = s->why == GPT_STOP_CONTEXT_FULL ? s->why : GPT_STOP_NONE;
        if (g->beams && stopped && results && results[i].stop_reason == GPT_STOP_NONE)
            results[i].stop_reason = GPT_STOP_CALLBACK;
    }
    if (st == GPT_OK && g->streams[0].why == GPT_STOP_CONTEXT_FULL)
        st = gp_ctx_fail(c, GPT_ERR_CONTEXT_FULL, "the context is full: all %d positions are in use", c->n_ctx);
    gpt_generator_free(g);
    return st;
}

gpt_status gpt_generate_pieces(gpt_context *c, const char *prompt, const gpt_generate_params *p, gpt_on_piece on_piece,
                               void *user, gpt_generate_result *results)
{
    if (!c) return GPT_ERR_INVALID_ARG;
    return gp_generate_run(c, prompt, p, on_piece, NULL, user, results);
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
    if (result) memset(result, 0, sizeof *result);
    if (!c) return GPT_ERR_INVALID_ARG;
    if (p && (p->n_sequences > 1 || p->num_beams > 1))
        return gp_ctx_fail(c, GPT_ERR_INVALID_ARG, "n_sequences %d and num_beams %d: gpt_generate streams one "
                           "sequence; gpt_generate_pieces and the generator say which sequence a piece belongs to",
                           p->n_sequences, p->num_beams);
    {
        gpt_status st = gp_generate_run(c, prompt, p, NULL, on_text, user, &res);
        if (result) *result = res;
        return st;
    }
}

/* ======================================================================== */
/* 9. Numbers                                                               */
/* ======================================================================== */

/* IEEE binary16 -> binary32, exact for every input including subnormals,
 * infinities and NaN. */
float gpt__f16_to_f32(uint16_t h)
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

/* binary32 -> binary16, rounding to nearest even; NaN stays NaN with the
 * top of its payload, as the F16C instruction does. */
uint16_t gpt__f32_to_f16(float f)
{
    uint32_t x, sign, man, h, rem;
    int e;
    memcpy(&x, &f, 4);
    sign = (x >> 16) & 0x8000u;
    man = x & 0x7fffffu;
    e = (int)((x >> 23) & 0xffu);
    if (e == 0xff) return (uint16_t)(sign | 0x7c00u | (man ? 0x200u | (man >> 13) : 0)); /* inf, NaN */
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

float gpt__bf16_to_f32(uint16_t b)
{
    uint32_t bits = (uint32_t)b << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

/* binary32 -> bfloat16, rounding to nearest even; NaN stays a quiet NaN. */
uint16_t gpt__f32_to_bf16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40);
    x += 0x7fffu + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}

/* Row r of a weight tensor widened to f32: out [cols]. */
static void gp_row_to_f32(const gp_tensor *t, int r, float *out)
{
    int i, n = t->cols;
    switch (t->type) {
    case GPT_DTYPE_F32:
        memcpy(out, (const float *)(const void *)t->data + (size_t)r * n, sizeof(float) * (size_t)n);
        break;
    case GPT_DTYPE_F16: {
        const uint16_t *h = (const uint16_t *)(const void *)t->data + (size_t)r * n;
        for (i = 0; i < n; i++) out[i] = gpt__f16_to_f32(h[i]);
        break;
    }
    case GPT_DTYPE_BF16: {
        const uint16_t *h = (const uint16_t *)(const void *)t->data + (size_t)r * n;
        for (i = 0; i < n; i++) out[i] = gpt__bf16_to_f32(h[i]);
        break;
    }
    case GPT_DTYPE_Q8_0: {
        const signed char *q = t->q + (size_t)r * t->nb * 32;
        const uint16_t *s = t->scales + (size_t)r * t->nb;
        for (i = 0; i < n; i++) out[i] = gpt__f16_to_f32(s[i / 32]) * (float)q[i];
        break;
    }
    }
}

/* ======================================================================== */
/* 10. Kernels                                                              */
/* ======================================================================== */
/*
 * Each operation has a scalar reference, written for clarity and used where
 * no SIMD is compiled in (and with reference_kernels), and right below it
 * its SIMD versions. All products take f32 activations and accumulate in
 * f32; weights of every type are widened to f32 as they are read.
 *
 * Two kinds of SIMD products:
 * - dot products (gp_gemm_*): rows of X against rows of W (weights in any
 *   type), both contiguous along K; a tile of GP_MR rows of X times GP_NR
 *   rows of W keeps GP_MR*GP_NR vector accumulators in registers, each weight
 *   vector is widened once per k step and used GP_MR times, and the
 *   accumulators are summed across lanes at the end. One row of X (every
 *   decoded token) takes gp_rowdot_*, which streams one row of W front to
 *   back.
 * - outer products (gp_op_row, and gp_op_tile6 on AVX-512): rows of X times
 *   a panel of 64 outputs stored k-major, broadcasting X[r][k]; each output
 *   is one chain of FMAs, no lane sums. The KV cache is kept in that
 *   layout, so attention needs no packing; on AVX-512, f32 and f16
 *   weights take such chains too (gp_group_linear), from a copy packed at
 *   load time by groups of 16 rows, k-major.
 */

/* ---- 10.1 layer norm (one version: it is a small part of the time) ---- */

/* The sum of 8 partial sums, pairwise. */
static double gp_sum8(const double *part)
{
    return ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
}

/* out = (x - mean) / sqrt(var + eps) * w + b over n values; the mean and the
 * biased variance are summed in double, in 8 partial sums: one chain of
 * dependent additions made layer norms 3% of a bf16 prompt's time. */
static void gp_layernorm_row(float *out, const float *x, const float *w, const float *b, int n, float eps)
{
    double part[8] = {0, 0, 0, 0, 0, 0, 0, 0}, sum, var;
    float mean, rstd;
    int i, k;
    for (i = 0; i + 8 <= n; i += 8)
        for (k = 0; k < 8; k++) part[k] += x[i + k];
    for (sum = gp_sum8(part); i < n; i++) sum += x[i];
    mean = (float)(sum / n);
    for (k = 0; k < 8; k++) part[k] = 0.0;
    for (i = 0; i + 8 <= n; i += 8)
        for (k = 0; k < 8; k++) {
            double d = (double)x[i + k] - mean;
            part[k] += d * d;
        }
    for (var = gp_sum8(part); i < n; i++) {
        double d = (double)x[i] - mean;
        var += d * d;
    }
    rstd = (float)(1.0 / sqrt(var / n + eps));
    for (i = 0; i < n; i++) out[i] = (x[i] - mean) * rstd * w[i] + b[i];
}

/* ---- 10.2 the scalar references ---- */

/* GPT-2's GELU, tanh form; sqrt(2/pi) = 0.7978845608... */
static float gp_gelu_scalar(float x)
{
    return 0.5f * x * (1.0f + tanhf(0.7978845608028654f * (x + 0.044715f * x * x * x)));
}

static void gp_gelu_ref(float *x, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) x[i] = gp_gelu_scalar(x[i]);
}

/* Dot product of n floats. Eight partial sums, so that it rounds like the
 * SIMD versions and compilers can vectorize it. */
static float gp_dot_ref(const float *a, const float *b, int n)
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

/*
 * Rounding the activations for the dot products (GP_Q8_DOT, GP_BF16_DOT):
 * before a thread computes a product with such weights, gp_linear_prepare
 * rounds every row of x once into the thread's scratch, rows
 * gp_prep_bytes(kind, K) bytes apart, each row on its own (so a row's
 * numbers do not depend on the rows beside it). The same scalar code serves
 * the SIMD and the reference kernels, so both see the very same integers.
 *
 * q8_0 (K = W->cols, nb = W->nb blocks of 32): each block b is rounded as
 * q8_0 weights are, d[b] = max|x| / 127 and codes x * (127 / max|x|)
 * rounded to nearest (rintf: ties to even), |code| <= 127. On AVX2 and
 * NEON the codes are stored interleaved in groups of GP_Q8_G blocks as the
 * packed weights are (gp_q8_block_at), so that one int32 lane of the
 * integer products sums a whole block; on AVX-512 and in the scalar build
 * the blocks follow each other. The row has np = gp_q8_npad(nb) blocks
 * (whole groups), zeros past K. Then corr [np] int32, -128 times each block's sum of codes (the x86
 * kernels feed the weights as unsigned bytes w + 128 and start each lane
 * there, which takes the 128s back out exactly), then d [np] f32.
 *
 * bf16: x rounded to bf16 (to nearest even; subnormals flushed to zero of
 * their sign, as vdpbf16ps reads them), [nb * 32], zeros past K.
 */
#define GP_PREP_Q8 1
#define GP_PREP_BF16 2
#define GP_PREP_PAD 6 /* zero rows after the last: tiles read up to GP_MR - 1 more */

/* Blocks per group of the q8_0 layout: one per int32 lane where a lane
 * sums a block (AVX2, NEON); 1 where the lanes are outputs and a row's
 * blocks come in order (AVX-512's chains, and the scalar build). */
#if defined(GP_AVX2)
#define GP_Q8_G 8
#elif defined(GP_NEON)
#define GP_Q8_G 4
#else
#define GP_Q8_G 1
#endif

/* Blocks stored per row: whole groups (zeros past nb). */
static int gp_q8_npad(int nb) { return (nb + GP_Q8_G - 1) / GP_Q8_G * GP_Q8_G; }

/* Where block b of a row of nb blocks interleaved in groups starts, and
 * *step: a group of GP_Q8_G blocks is 8 steps of GP_Q8_G * 4 bytes, the
 * step's lane l (4 bytes) being the group's block l's, so byte i of the
 * block is at the result + (i / 4) * *step + i % 4 (with GP_Q8_G 1, the
 * blocks one after the other). */
static size_t gp_q8_block_at(int nb, int b, size_t *step)
{
    int g = b / GP_Q8_G * GP_Q8_G;
    (void)nb;
    *step = (size_t)GP_Q8_G * 4;
    return (size_t)g * 32 + (size_t)(b - g) * 4;
}


/* Which rounding a product with W's type uses, if any. */
static int gp_prep_kind(gpt_dtype type)
{
#if defined(GP_Q8_DOT)
    if (type == GPT_DTYPE_Q8_0) return GP_PREP_Q8;
#endif
#if defined(GP_BF16_DOT)
    if (type == GPT_DTYPE_BF16) return GP_PREP_BF16;
#endif
    (void)type;
    return 0;
}

static size_t gp_prep_bytes(int kind, int K)
{
    size_t nb = ((size_t)K + 31) / 32, np = (size_t)gp_q8_npad((int)nb);
    return kind == GP_PREP_Q8 ? (np * 40 + 63) / 64 * 64 : nb * 64;
}

/* The parts of a row prepared for q8_0: codes, corrections, scales. */
static const signed char *gp_q8_codes(const unsigned char *row) { return (const signed char *)row; }
#if defined(GP_Q8_DOT) && defined(GP_SIMD)
static const int32_t *gp_q8_corr(const unsigned char *row, int nb)
{
    return (const int32_t *)(const void *)(row + (size_t)gp_q8_npad(nb) * 32);
}
#endif
static const float *gp_q8_dx(const unsigned char *row, int nb)
{
    return (const float *)(const void *)(row + (size_t)gp_q8_npad(nb) * 36);
}

#if defined(GP_AVX512)
/* A whole block of 32 values rounded as gp_q8_round_row does it, with the
 * same IEEE operations in AVX-512 (so the same bits: the maximum is exact
 * in any order, and vcvtps2dq rounds in the current mode as rintf does);
 * 0 for a block that needs the careful path (NaN, infinities, tiny or
 * huge values). */
static int gp_q8_round_block_avx512(const float *x, signed char *q, float *d)
{
    __m512 a0 = _mm512_loadu_ps(x), a1 = _mm512_loadu_ps(x + 16), vi, hi, lo;
    float amax;
    if (_mm512_cmp_ps_mask(a0, a0, _CMP_UNORD_Q) | _mm512_cmp_ps_mask(a1, a1, _CMP_UNORD_Q)) return 0;
    amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(a0), _mm512_abs_ps(a1)));
    if (!(amax >= 1e-30f && amax <= FLT_MAX)) return 0;
    *d = amax / 127.0f;
    vi = _mm512_set1_ps(127.0f / amax);
    hi = _mm512_set1_ps(127.0f);
    lo = _mm512_set1_ps(-127.0f);
    a0 = _mm512_min_ps(_mm512_max_ps(_mm512_mul_ps(a0, vi), lo), hi);
    a1 = _mm512_min_ps(_mm512_max_ps(_mm512_mul_ps(a1, vi), lo), hi);
    _mm_storeu_si128((__m128i *)(void *)q, _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(a0)));
    _mm_storeu_si128((__m128i *)(void *)(q + 16), _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(a1)));
    return 1;
}
#endif

/* One block of len values (len <= 32; zeros after them) rounded into
 * codes [32] and its scale. */
static void gp_q8_round_block(const float *x, int len, signed char *q, float *d)
{
    float amax = 0.0f, inv;
    int nan = 0, i;
#if defined(GP_AVX512)
    if (len == 32 && gp_q8_round_block_avx512(x, q, d)) return;
#endif
    for (i = 0; i < len; i++) {
        float a = fabsf(x[i]);
        amax = a > amax ? a : amax;
        nan |= a != a;
    }
    if (nan) amax = NAN; /* NaN in, NaN out */
    *d = amax / 127.0f;
    inv = amax > 0.0f ? 127.0f / amax : 0.0f;
    if (len == 32 && amax >= 1e-30f && amax <= FLT_MAX) {
        /* the common case, which compilers vectorize: every v is finite
         * and within [-127, 127] but for rounding */
        for (i = 0; i < 32; i++) {
            float v = x[i] * inv;
            v = v > 127.0f ? 127.0f : v < -127.0f ? -127.0f : v;
            q[i] = (signed char)(int)rintf(v);
        }
        return;
    }
    for (i = 0; i < 32; i++) {
        float v = i < len ? x[i] * inv : 0.0f;
        /* clamped before converting; NaN (0 * inf) becomes 0 */
        q[i] = (signed char)(v >= 127.0f ? 127 : v <= -127.0f ? -127 : v == v ? (int)rintf(v) : 0);
    }
}

static void gp_q8_round_row(const float *x, int K, unsigned char *out)
{
    int nb = (K + 31) / 32, np = gp_q8_npad(nb), b, i;
    signed char *q = (signed char *)out, codes[32];
    int32_t *corr = (int32_t *)(void *)(out + (size_t)np * 32);
    float *d = (float *)(void *)(out + (size_t)np * 36);
    for (b = 0; b < np; b++) {
        int32_t sum = 0;
        if (b < nb) {
            gp_q8_round_block(x + b * 32, K - b * 32 < 32 ? K - b * 32 : 32, codes, &d[b]);
        } else {
            memset(codes, 0, sizeof codes);
            d[b] = 0.0f;
        }
        size_t step, at = gp_q8_block_at(nb, b, &step);
        for (i = 0; i < 32; i++) sum += codes[i];
        for (i = 0; i < 8; i++) memcpy(q + at + (size_t)i * step, codes + 4 * i, 4);
        corr[b] = -128 * sum;
    }
}

/* The matrices of linear layers: wte (the output head) for l = -1, else
 * block l's four; returns how many it put in ts. */
static int gp_linear_weights(const gpt_model *m, int l, const gp_tensor **ts)
{
    if (l < 0) {
        ts[0] = &m->wte;
        return 1;
    }
    ts[0] = &m->blocks[l].attn_w;
    ts[1] = &m->blocks[l].attn_proj_w;
    ts[2] = &m->blocks[l].fc_w;
    ts[3] = &m->blocks[l].mlp_proj_w;
    return 4;
}

#if defined(GP_Q8_DOT) && defined(GP_SIMD)
/* Bytes of a q8_0 tensor's rows packed for the integer products: the
 * quants, then the scales (each part whole lines). */
/* Rows the packed copy holds: AVX-512 packs whole groups of 16 rows. */
static size_t gp_q8_packed_rows(const gp_tensor *t)
{
#if defined(GP_Q8_CHAINS)
    return ((size_t)t->rows + 15) / 16 * 16;
#else
    return (size_t)t->rows;
#endif
}
static size_t gp_q8_packed_quant_bytes(const gp_tensor *t)
{
    return gp_align_up(gp_q8_packed_rows(t) * (size_t)gp_q8_npad(t->nb) * 32);
}
static size_t gp_q8_packed_bytes(const gp_tensor *t)
{
    return gp_q8_packed_quant_bytes(t) + gp_align_up(gp_q8_packed_rows(t) * (size_t)gp_q8_npad(t->nb) * 2);
}

#if defined(GP_Q8_CHAINS)
/* t's rows packed into buf (gp_q8_packed_bytes) for gp_q8_chains: groups
 * of 16 rows; in a group, block by block, 8 steps of 64 bytes, lane i's 4
 * bytes being bytes 4s .. 4s+3 of row 16g + i's block (as unsigned w + 128,
 * what vpdpbusd multiplies), and the group's 16 scales of each block
 * (rows past the last: weights and scales 0). t->qp and t->sp then point
 * there. */
static void gp_q8_pack(gp_tensor *t, unsigned char *buf)
{
    int nb = t->nb, groups = (int)(gp_q8_packed_rows(t) / 16), g, b, s, i, c;
    uint16_t *sp = (uint16_t *)(void *)(buf + gp_q8_packed_quant_bytes(t));
    for (g = 0; g < groups; g++)
        for (b = 0; b < nb; b++) {
            unsigned char *dst = buf + ((size_t)g * nb + b) * 512;
            for (i = 0; i < 16; i++) {
                int row = g * 16 + i;
                const signed char *src = row < t->rows ? t->q + ((size_t)row * nb + b) * 32 : NULL;
                for (s = 0; s < 8; s++)
                    for (c = 0; c < 4; c++)
                        dst[s * 64 + i * 4 + c] = (unsigned char)((src ? (unsigned char)src[s * 4 + c] : 0) ^ 0x80);
                sp[((size_t)g * nb + b) * 16 + i] = src ? t->scales[(size_t)row * nb + b] : 0;
            }
        }
    t->qp = buf;
    t->sp = sp;
}
#else
/* t's rows packed into buf (gp_q8_packed_bytes): each block's 32 quants
 * spread over its group's 8 steps, x86's as unsigned w + 128 (what
 * vpdpbusd multiplies), zeros past the last block; t->qp and t->sp then
 * point there. */
static void gp_q8_pack(gp_tensor *t, unsigned char *buf)
{
    int np = gp_q8_npad(t->nb), j, b, i;
    uint16_t *sp = (uint16_t *)(void *)(buf + gp_q8_packed_quant_bytes(t));
#if defined(GP_NEON)
    const unsigned char bias = 0;
#else
    const unsigned char bias = 0x80;
#endif
    for (j = 0; j < t->rows; j++) {
        unsigned char *row = buf + (size_t)j * np * 32;
        for (b = 0; b < np; b++) {
            const signed char *src = b < t->nb ? t->q + ((size_t)j * t->nb + b) * 32 : NULL;
            size_t step, at = gp_q8_block_at(t->nb, b, &step);
            for (i = 0; i < 32; i++)
                row[at + (size_t)(i / 4) * step + i % 4] = (unsigned char)((src ? (unsigned char)src[i] : 0) ^ bias);
            sp[(size_t)j * np + b] = b < t->nb ? t->scales[(size_t)j * t->nb + b] : 0;
        }
    }
    t->qp = buf;
    t->sp = sp;
}
#endif
#endif

#if defined(GP_F32_CHAINS)
/* f32 and f16 weights, and bf16 ones where they take no dot products,
 * packed for the chains (section 10.6): groups of 16 rows, k-major, one
 * group's 16 values at k side by side (rows past the last: 0); t->groups
 * then points there. The chains then load (and widen) 16 outputs' weights
 * at k with one load. Every k of a group starts a 64-byte line: f32
 * [group][k][16], and f16 and bf16 in pairs of groups, [pair][k][2][16],
 * so that one decoded row reads the two chains of a pair from one stream
 * (gp_group_row). */
/* up to this many rows of x, the chains keep every row's accumulators in
 * registers (gp_group_rows); more rows take panels */
#define GP_CHAIN_FEW 16
static int gp_takes_chains(gpt_dtype type)
{
    return type == GPT_DTYPE_F32 || type == GPT_DTYPE_F16 || (type == GPT_DTYPE_BF16 && !gp_prep_kind(type));
}
/* (the rows padded to whole groups; gp_packed_bytes_bound has checked the
 * size against the address space) */
static int gp_group_rows_packed(const gp_tensor *t)
{
    return t->type == GPT_DTYPE_F32 ? (t->rows + 15) / 16 * 16 : (t->rows + 31) / 32 * 32;
}
static size_t gp_group_packed_bytes(const gp_tensor *t)
{
    return gp_align_up((size_t)gpt__tensor_nbytes(t->type, (uint64_t)gp_group_rows_packed(t), (uint64_t)t->cols));
}
static void gp_group_pack(gp_tensor *t, unsigned char *buf)
{
    int groups = gp_group_rows_packed(t) / 16, K = t->cols, g, i, k;
    for (g = 0; g < groups; g++)
        for (i = 0; i < 16; i++) {
            int row = g * 16 + i;
            /* in values: f32 [group][k][16]; halves [pair][k][2][16] */
            size_t from = (size_t)row * K,
                   to = t->type == GPT_DTYPE_F32 ? (size_t)g * K * 16 + i : (size_t)(g / 2) * K * 32 + (g % 2) * 16 + i;
            if (t->type == GPT_DTYPE_F32) {
                const float *w = (const float *)(const void *)t->data;
                float *out = (float *)(void *)buf;
                for (k = 0; k < K; k++) out[to + (size_t)k * 16] = row < t->rows ? w[from + k] : 0.0f;
            } else {
                const uint16_t *w = (const uint16_t *)(const void *)t->data;
                uint16_t *out = (uint16_t *)(void *)buf;
                for (k = 0; k < K; k++) out[to + (size_t)k * 32] = row < t->rows ? w[from + k] : 0;
            }
        }
    t->groups = buf;
}
#endif

#if defined(GP_BF16_AMX)
/* Whether this process may use AMX's tiles: the CPU has them (CPUID leaf 7:
 * AMX-BF16, AMX-TILE) and Linux granted them (arch_prctl
 * ARCH_REQ_XCOMP_PERM, 0x1023, for XFEATURE_XTILEDATA, 18; refused under
 * some seccomp filters, by kernels before 5.16, and while a thread's
 * signal stack is too small for the tiles). The first answer stands for
 * the process (threads asking at once keep the one stored first), so that
 * the loader's two passes over a model's matrices agree. */
static int gp_amx_usable(void)
{
    static int state; /* 0: not asked yet, 1: usable, -1: not */
    int s = __atomic_load_n(&state, __ATOMIC_ACQUIRE);
    if (!s) {
        unsigned a, b, c, d;
        int none = 0;
        s = -1;
        if (__get_cpuid_count(7, 0, &a, &b, &c, &d) && (d >> 22 & 1u) && (d >> 24 & 1u) &&
            syscall((long)SYS_arch_prctl, 0x1023L, 18L) == 0)
            s = 1;
        if (!__atomic_compare_exchange_n(&state, &none, s, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) s = none;
    }
    return s > 0;
}
static size_t gp_amx_packed_bytes(const gp_tensor *t)
{
    return gp_align_up(((size_t)t->rows + 15) / 16 * 16 * (((size_t)t->cols + 31) / 32 * 32) * 2);
}
/* bf16 W for tdpbf16ps: block b of group g is 16 lines of 64 bytes, line p
 * holding columns 32 b + 2 p and 32 b + 2 p + 1 of the group's 16 rows in
 * turn (rows and columns past W's: 0). */
static void gp_amx_pack(gp_tensor *t, unsigned char *buf)
{
    const uint16_t *w = (const uint16_t *)(const void *)t->data;
    uint16_t *out = (uint16_t *)(void *)buf;
    int groups = (t->rows + 15) / 16, nb = (t->cols + 31) / 32, K = t->cols, g, b, p, i, e;
    size_t at = 0;
    for (g = 0; g < groups; g++)
        for (b = 0; b < nb; b++)
            for (p = 0; p < 16; p++)
                for (i = 0; i < 16; i++)
                    for (e = 0; e < 2; e++) {
                        int row = g * 16 + i, k = b * 32 + 2 * p + e;
                        out[at++] = row < t->rows && k < K ? w[(size_t)row * K + k] : 0;
                    }
    t->ap = out;
}
#endif
#if defined(GP_BF16_PAIRS)
/* bf16 W for vdpbf16ps in pairs of rows: each step of 32 columns is the
 * two rows' 64-byte lines in turn, so that a decoded row reads two chains
 * side by side from one stream of addresses (gp_bf16_row2). Rows and
 * columns past W's: 0, as masked loads of a row's last step would give. */
static size_t gp_pair_packed_bytes(const gp_tensor *t)
{
    return gp_align_up(((size_t)t->rows + 1) / 2 * 2 * (((size_t)t->cols + 31) / 32 * 32) * 2);
}
static void gp_pair_pack(gp_tensor *t, unsigned char *buf)
{
    const uint16_t *w = (const uint16_t *)(const void *)t->data;
    uint16_t *out = (uint16_t *)(void *)buf;
    int pairs = (t->rows + 1) / 2, steps = (t->cols + 31) / 32, K = t->cols, p, s, i, e;
    size_t at = 0;
    for (p = 0; p < pairs; p++)
        for (s = 0; s < steps; s++)
            for (i = 0; i < 2; i++)
                for (e = 0; e < 32; e++) {
                    int row = 2 * p + i, k = 32 * s + e;
                    out[at++] = row < t->rows && k < K ? w[(size_t)row * K + k] : 0;
                }
    t->pairs = out;
}
#endif
/* Whether products with weights of this type take AMX's tiles here. */
static int gp_amx_takes(gpt_dtype type)
{
#if defined(GP_BF16_AMX)
    return type == GPT_DTYPE_BF16 && gp_amx_usable();
#else
    (void)type;
    return 0;
#endif
}

/* Whether this build packs t (q8_0 for the integer products; f32, f16, and
 * bf16 without them, for the chains; bf16 for AMX or, without it, for
 * vdpbf16ps); an upper bound of the packed copy's
 * bytes, in 64 bits, to check against the address space before
 * gp_packed_bytes computes them in size_t (padding to whole groups can make
 * a tensor larger than its bytes in the file); the bytes; the packing. */
static int gp_packs(const gp_tensor *t)
{
#if defined(GP_Q8_DOT) && defined(GP_SIMD)
    if (t->type == GPT_DTYPE_Q8_0) return 1;
#endif
#if defined(GP_F32_CHAINS)
    if (gp_takes_chains(t->type)) return 1;
#endif
#if defined(GP_BF16_PAIRS)
    if (t->type == GPT_DTYPE_BF16) return 1; /* for AMX's tiles where they are taken, else in pairs */
#endif
    (void)t;
    return 0;
}
/* Whether the loader copies a tensor's rows as they lie into the model's
 * allocation and lets go of the mapping's pages (gp_pack_model): on a
 * mapped model where the pages can be let go of, every tensor that is not
 * packed (`packs`). On the mapping's 4 KB pages one thread decoded bf16
 * (then read as it lies) 5-8% slower than from the copy's 2 MB pages
 * (gpt__advise_huge). Elsewhere the model would be held twice. */
static int gp_copies_rows(int packs, int mapped)
{
#if defined(GP_RELEASES_PAGES)
    return mapped && !packs;
#else
    (void)packs;
    (void)mapped;
    return 0;
#endif
}
static size_t gp_row_copy_bytes(const gp_tensor *t)
{
    return gp_align_up((size_t)gpt__tensor_nbytes(t->type, t->rows, t->cols));
}
/* t's rows copied to `to`, 2 MB at a time, each piece's pages of the
 * mapping let go of once copied (so that the process never holds much of
 * both); t then reads the copy. */
static void gp_copy_rows(gp_tensor *t, unsigned char *to)
{
    const uintptr_t piece = (uintptr_t)2 << 20;
    const unsigned char *from = (const unsigned char *)t->data;
    size_t n = (size_t)gpt__tensor_nbytes(t->type, t->rows, t->cols), at = 0;
    while (at < n) {
        /* up to the next 2 MB boundary of the mapping: a page boundary */
        size_t len = (size_t)(piece - ((uintptr_t)(from + at) & (piece - 1)));
        if (len > n - at) len = n - at;
        memcpy(to + at, from + at, len);
        gp_release_pages(from + at, len);
        at += len;
    }
    if (t->q) { /* q8_0: the scales after the quants */
        t->q = (const signed char *)(const void *)(to + ((const unsigned char *)(const void *)t->q - from));
        t->scales = (const uint16_t *)(const void *)(to + ((const unsigned char *)(const void *)t->scales - from));
    }
    t->data = to;
}
static uint64_t gp_packed_bytes_bound(const gp_tensor *t)
{
    if (t->type == GPT_DTYPE_Q8_0) return ((uint64_t)t->rows + 15) * (uint64_t)gp_q8_npad(t->nb) * 34 + 2 * GP_ALIGN;
    return ((uint64_t)t->rows + 15) * ((uint64_t)t->cols + 31) * 4 + 2 * GP_ALIGN; /* up to 4-byte values */
}
static size_t gp_packed_bytes(const gp_tensor *t)
{
#if defined(GP_Q8_DOT) && defined(GP_SIMD)
    if (t->type == GPT_DTYPE_Q8_0) return gp_q8_packed_bytes(t);
#endif
#if defined(GP_F32_CHAINS)
    if (gp_takes_chains(t->type)) return gp_group_packed_bytes(t);
#endif
#if defined(GP_BF16_AMX)
    if (gp_amx_takes(t->type)) return gp_amx_packed_bytes(t);
#endif
#if defined(GP_BF16_PAIRS)
    if (t->type == GPT_DTYPE_BF16) return gp_pair_packed_bytes(t);
#endif
    (void)t;
    return 0;
}
static void gp_pack(gp_tensor *t, unsigned char *buf)
{
#if defined(GP_Q8_DOT) && defined(GP_SIMD)
    if (t->type == GPT_DTYPE_Q8_0) gp_q8_pack(t, buf);
#endif
#if defined(GP_F32_CHAINS)
    if (gp_takes_chains(t->type)) gp_group_pack(t, buf);
#endif
#if defined(GP_BF16_AMX)
    if (gp_amx_takes(t->type)) {
        gp_amx_pack(t, buf);
        return;
    }
#endif
#if defined(GP_BF16_PAIRS)
    if (t->type == GPT_DTYPE_BF16) gp_pair_pack(t, buf);
#endif
    (void)t;
    (void)buf;
}

/* Whether w, tensor k of m (the canonical order), is one of the linear
 * layers' weights (gp_linear_weights: wte, or of block (k - 2) / 12). */
static int gp_is_linear_weight(const gpt_model *m, uint32_t k, const gp_tensor *w)
{
    const gp_tensor *ts[4];
    int l = k < 2 ? -1 : (int)((k - 2) / 12), nt, t;
    if (l >= m->cfg.n_layer) return 0; /* ln_f */
    nt = gp_linear_weights(m, l, ts);
    for (t = 0; t < nt; t++)
        if (ts[t] == w) return 1;
    return 0;
}

/* The weights of m's linear layers packed for the SIMD products (q8_0 for
 * the integer products, f32, f16 and bf16 for the chains, bf16 for AMX's
 * tiles or in pairs of rows for vdpbf16ps), in one allocation that the
 * model owns; nothing where no such products are compiled in (the scalar
 * twins read the checkpoint's rows).
 * The SIMD products read only the packed copy; the embedding lookup (wte's
 * rows) and the reference kernels read the checkpoint's rows, or the copy
 * below.
 *
 * A mapped model, where the process can let go of the mapping's pages
 * (gp_release_pages: Linux), lets go of them for each packed matrix and
 * copies every other tensor into the same allocation (gp_copies_rows): the
 * forward pass then reads the mapping only for wte's rows, if wte is
 * packed. Besides 2 MB pages for what is copied, this keeps the file's
 * large folios out of the process: one read of a bias maps the whole 2 MB
 * folio around it (ext4 on Linux 6.x), 35 MB of a 250 MB bf16 model. If
 * memory for the copies cannot be had, the model reads those tensors from
 * the mapping, as before. */
static gpt_status gp_pack_model(gpt_model *m, const char *what, int mapped, gpt_error *err)
{
    size_t total = 0, copies = 0, at = 0;
    uint32_t k, n = 12 * (uint32_t)m->cfg.n_layer + 4;
    int pass, copying = 1;
    for (pass = 0; pass < 2; pass++) {
        for (k = 0; k < n; k++) {
            gp_tensor *w = gp_model_tensor(m, k, n);
            int packs = gp_is_linear_weight(m, k, w) && gp_packs(w), copy = copying && gp_copies_rows(packs, mapped);
            if (!packs && !copy) continue;
            if (pass == 0) {
                /* packed and copied sizes are each at most the bound */
                if (gp_packed_bytes_bound(w) > (uint64_t)(SIZE_MAX / 2) - total)
                    return gpt__set_error(err, GPT_ERR_OUT_OF_MEMORY, "%s: the %s weights are too large to "
                                          "%s in this address space", what, gpt_dtype_name(w->type),
                                          packs ? "pack" : "copy");
                if (packs) {
                    total += gp_packed_bytes(w);
                } else {
                    total += gp_row_copy_bytes(w);
                    copies += gp_row_copy_bytes(w);
                }
            } else {
                if (packs) {
                    gp_pack(w, m->packed + at);
                    at += gp_packed_bytes(w);
                }
                if (copy) {
                    gp_copy_rows(w, m->packed + at);
                    at += gp_row_copy_bytes(w);
                } else if (mapped) {
                    gp_release_pages(w->data, (size_t)gpt__tensor_nbytes(w->type, w->rows, w->cols));
                }
            }
        }
        if (pass == 0) {
            if (!total) return GPT_OK;
            m->packed = (unsigned char *)gp_alloc_aligned(total);
            if (!m->packed && copies) { /* without the copies */
                copying = 0;
                total -= copies;
                if (!total) return GPT_OK;
                m->packed = (unsigned char *)gp_alloc_aligned(total);
            }
            if (!m->packed)
                return gpt__set_error(err, GPT_ERR_OUT_OF_MEMORY, "%s: out of memory packing the weights for the "
                                      "SIMD products (%llu bytes)", what, (unsigned long long)total);
        }
    }
    return GPT_OK;
}

/* x rounded to bf16, to nearest even, subnormals to zero of their sign and
 * NaNs kept quiet (what vdpbf16ps's users round to), zeros to a multiple
 * of 32 values. */
static void gp_bf16_round_row(const float *x, int K, uint16_t *out)
{
    int i = 0, n = (K + 31) / 32 * 32;
#if defined(GP_BF16_DOT) && defined(GP_AVX512)
    /* vcvtneps2bf16 rounds just so: one instruction for 16 values, where
     * the loop below made rounding x 3% of a bf16 prompt's time */
    for (; i < n; i += 16) {
        __mmask16 m = K - i >= 16 ? (__mmask16)0xffff : K <= i ? 0 : (__mmask16)((1u << (K - i)) - 1u);
        _mm256_storeu_si256((__m256i *)(void *)(out + i), (__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, x + i)));
    }
#endif
    for (; i < n; i++) {
        float v = i < K ? x[i] : 0.0f;
        if (fabsf(v) < FLT_MIN) v = copysignf(0.0f, v); /* false for NaN: kept */
        out[i] = i < K ? gpt__f32_to_bf16(v) : 0;
    }
}

/* Rows 0 .. n-1 of x rounded for products with W (see above) into scratch,
 * where W's type takes dot products; where it takes the chains and there
 * are 2 to GP_CHAIN_FEW rows, x transposed, scratch[k * GP_CHAIN_FEW + r] =
 * x[r][k] (once per thread: per piece of W's rows, as pieces are claimed,
 * it cost up to a third of a batch's products); nothing otherwise. */
static void gp_linear_prepare(const gp_tensor *W, const float *x, int ldx, int n, float *scratch)
{
    int kind = gp_prep_kind(W->type), r;
    size_t rb;
    unsigned char *out = (unsigned char *)scratch;
#if defined(GP_F32_CHAINS)
    /* (the reference kernels read x itself: for them this is wasted) */
    if (gp_takes_chains(W->type) && n > 1 && n <= GP_CHAIN_FEW) {
        int k;
        for (r = 0; r < n; r++)
            for (k = 0; k < W->cols; k++) scratch[(size_t)k * GP_CHAIN_FEW + r] = x[(size_t)r * ldx + k];
        return;
    }
#endif
    if (!kind) return;
    rb = gp_prep_bytes(kind, W->cols);
    for (r = 0; r < n; r++) {
        if (kind == GP_PREP_Q8)
            gp_q8_round_row(x + (size_t)r * ldx, W->cols, out + (size_t)r * rb);
        else
            gp_bf16_round_row(x + (size_t)r * ldx, W->cols, (uint16_t *)(void *)(out + (size_t)r * rb));
    }
    if (n > 1) memset(out + (size_t)n * rb, 0, GP_PREP_PAD * rb);
}

/* Floats of per-thread scratch the linear kernels need beyond a widened row:
 * rows + GP_PREP_PAD prepared rows of the widest matrix that takes dot
 * products, if any, or the panel of 64 x K floats of the chains (section
 * 10.6), if more; the chains' x transposed for 2 to 16 rows (16 x K
 * floats, gp_linear_prepare) fits in the panel's place. */
static size_t gp_linear_scratch_floats(const gpt_model *m, size_t rows)
{
    size_t most = 0, bytes, panel = 0;
    int l, t;
    for (l = -1; l < m->cfg.n_layer; l++) {
        const gp_tensor *ts[4];
        int nt = gp_linear_weights(m, l, ts);
        for (t = 0; t < nt; t++) {
            int kind = gp_prep_kind(ts[t]->type);
            bytes = kind ? gp_prep_bytes(kind, ts[t]->cols) : 0;
            if (bytes > most) most = bytes;
#if defined(GP_F32_CHAINS)
            if (gp_takes_chains(ts[t]->type) && (size_t)64 * ts[t]->cols > panel) panel = (size_t)64 * ts[t]->cols;
#endif
        }
    }
    most = most ? (rows + GP_PREP_PAD) * most / sizeof(float) : 0;
    return most > panel ? most : panel;
}

/* The lanes of an AVX-512 accumulator summed by gp_vsum4's tree. */
static float gp_sum16(const float *a)
{
    float u0 = (a[0] + a[2]) + (a[1] + a[3]), u1 = (a[4] + a[6]) + (a[5] + a[7]);
    float u2 = (a[8] + a[10]) + (a[9] + a[11]), u3 = (a[12] + a[14]) + (a[13] + a[15]);
    return (u0 + u2) + (u1 + u3);
}

#if defined(GP_F32_CHAINS)
/* The f32 chains' scalar twin: one fused multiply-add per k, k = 0 first. */
static float gp_chain_ref(const float *w, const float *x, int n)
{
    float acc = 0.0f;
    int k;
    for (k = 0; k < n; k++) acc = fmaf(x[k], w[k], acc);
    return acc;
}
#endif

/* The integer dot product's scalar twin: row j of q8_0 W against a row of
 * x prepared by gp_q8_round_row. Each block's products are summed exactly
 * in int32, and that sum times (d_x * d_w of the block) is added in one
 * fused step, block 0 first: AVX-512's chains (gp_q8_chains) do the same;
 * AVX2 and NEON keep 8 or 4 partial sums, one per lane. */
static float gp_dot_q8_ref(const gp_tensor *W, int j, const unsigned char *xr)
{
    int nb = W->nb, b, i;
    const signed char *w = W->q + (size_t)j * nb * 32, *q = gp_q8_codes(xr);
    const uint16_t *ws = W->scales + (size_t)j * nb;
    const float *d = gp_q8_dx(xr, nb);
    float acc = 0.0f;
    for (b = 0; b < nb; b++) {
        int32_t t = 0;
        size_t step, at = gp_q8_block_at(nb, b, &step);
        for (i = 0; i < 32; i++) t += (int32_t)q[at + (size_t)(i / 4) * step + i % 4] * w[b * 32 + i];
        acc = fmaf((float)t, d[b] * gpt__f16_to_f32(ws[b]), acc);
    }
    return acc;
}

/* bf16 weights' subnormals read as zero, as vdpbf16ps reads them. */
static float gp_bf16_daz(uint16_t h) { return gpt__bf16_to_f32((h & 0x7f80u) ? h : (uint16_t)(h & 0x8000u)); }

/* vdpbf16ps's scalar twin: row j of bf16 W against a row of x rounded by
 * gp_bf16_round_row. Element pair (2l, 2l+1) of every 32 goes to partial
 * sum l, the odd product first (products of two bf16 are exact in f32, so
 * each step is one rounding as in the instruction), and gp_sum16 sums them.
 * Past K the products are 0. */
static float gp_dot_bf16_ref(const gp_tensor *W, int j, const uint16_t *xr)
{
    int K = W->cols, n = (K + 31) / 32 * 32, k;
    const uint16_t *w = (const uint16_t *)(const void *)W->data + (size_t)j * K;
    float acc[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    for (k = 0; k < n; k += 2) {
        float *a = &acc[(k / 2) % 16];
        *a += gpt__bf16_to_f32(xr[k + 1]) * (k + 1 < K ? gp_bf16_daz(w[k + 1]) : 0.0f);
        *a += gpt__bf16_to_f32(xr[k]) * (k < K ? gp_bf16_daz(w[k]) : 0.0f);
    }
    return gp_sum16(acc);
}

/* The linear layer, reference: each row of W widened to f32 in scratch
 * (W->cols floats), then dotted with every row of x; or, for weights that
 * take dot products, the scalar twins on the rows gp_linear_prepare left in
 * scratch. */
static void gp_linear_ref(const gp_tensor *W, const float *bias, const float *x, int ldx, int n, int j0, int j1,
                          float *y, int ldy, int accumulate, float *scratch)
{
    int j, r, cols = W->cols, kind = gp_prep_kind(W->type);
    for (j = j0; j < j1; j++) {
        const float *w = NULL;
        float b = bias ? bias[j] : 0.0f;
        if (kind) {
            /* the rows are in scratch */
        } else if (W->type == GPT_DTYPE_F32) {
            w = (const float *)(const void *)W->data + (size_t)j * cols;
        } else {
            gp_row_to_f32(W, j, scratch);
            w = scratch;
        }
        for (r = 0; r < n; r++) {
            const unsigned char *xr = (const unsigned char *)scratch + (size_t)r * (kind ? gp_prep_bytes(kind, cols) : 0);
            float v = kind == GP_PREP_Q8     ? gp_dot_q8_ref(W, j, xr)
                      : kind == GP_PREP_BF16 ? gp_dot_bf16_ref(W, j, (const uint16_t *)(const void *)xr)
#if defined(GP_F32_CHAINS)
                      : gp_takes_chains(W->type) ? gp_chain_ref(w, x + (size_t)r * ldx, cols)
#endif
                                             : gp_dot_ref(w, x + (size_t)r * ldx, cols);
            float *out = y + (size_t)r * ldy + j;
            v += b;
            *out = accumulate ? *out + v : v;
        }
    }
}

/* Element i of a cache panel stored as f32 or (kv_f16) IEEE half. */
static float gp_kv_at(const unsigned char *base, size_t i, int kv_f16)
{
    return kv_f16 ? gpt__f16_to_f32(((const uint16_t *)(const void *)base)[i])
                  : ((const float *)(const void *)base)[i];
}

/* Causal attention, reference: for each query, scores q . k_j * scale over
 * its keys, softmax (summed in double), then the weighted sum of values;
 * the keys and values are read page by page. */
static void gp_attention_ref(const gp_attention_args *a, float *scores)
{
    int i, j, d, D = a->D;
    for (i = 0; i < a->rows; i++) {
        const float *q = a->q + (size_t)i * a->ldq;
        float *out = a->out + (size_t)i * a->ldo, mx = -INFINITY, inv;
        double sum = 0.0;
        int n_keys = a->first_keys + i;
        for (j = 0; j < n_keys; j++) {
            const unsigned char *keys = a->k_base + (size_t)a->pages[j / GP_PAGE] * a->page_bytes;
            float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0}, s = 0.0f;
            for (d = 0; d < D; d++) acc[d % 8] += q[d] * gp_kv_at(keys, (size_t)d * GP_PAGE + j % GP_PAGE, a->kv_f16);
            for (d = 0; d < 8; d++) s += acc[d];
            scores[j] = s * a->scale;
            if (scores[j] > mx) mx = scores[j];
        }
        for (j = 0; j < n_keys; j++) {
            scores[j] = expf(scores[j] - mx);
            sum += scores[j];
        }
        for (d = 0; d < D; d++) out[d] = 0.0f;
        for (j = 0; j < n_keys; j++) {
            const unsigned char *values = a->v_base + (size_t)a->pages[j / GP_PAGE] * a->page_bytes;
            float p = scores[j];
            for (d = 0; d < D; d++)
                out[d] += p * gp_kv_at(values, (size_t)(d / GP_PAGE) * GP_PAGE * GP_PAGE + (size_t)(j % GP_PAGE) * GP_PAGE +
                                                    d % GP_PAGE, a->kv_f16);
        }
        inv = (float)(1.0 / sum);
        for (d = 0; d < D; d++) out[d] *= inv;
    }
}

/* f32 -> f16 for the cache: one F16C instruction where there is one (it
 * rounds to nearest even like gpt__f32_to_f16, identical for every float). */
#if defined(GP_AVX512) || defined(GP_AVX2)
#define GP_CACHE_HALF(x) _cvtss_sh((x), 0)
#else
#define GP_CACHE_HALF(x) gpt__f32_to_f16(x)
#endif

/* Stores one head's key kh and value vh (D each) at slot (position % 64)
 * of a page whose part for this layer and head starts at head: keys
 * [d][slot], then values [d / 64][slot][d % 64], zero from D to d_alloc. */
static void gp_cache_kv_head(gpt_context *c, unsigned char *head, int slot, const float *kh, const float *vh)
{
    int D = c->m->cfg.n_embd / c->m->cfg.n_head, d;
    if (c->kv_f16) {
        uint16_t *kc = (uint16_t *)(void *)head, *vc = (uint16_t *)(void *)(head + c->key_bytes);
        for (d = 0; d < D; d++) kc[(size_t)d * GP_PAGE + slot] = GP_CACHE_HALF(kh[d]);
        for (d = 0; d < c->d_alloc; d++)
            vc[(size_t)(d / GP_PAGE) * GP_PAGE * GP_PAGE + (size_t)slot * GP_PAGE + d % GP_PAGE] =
                d < D ? GP_CACHE_HALF(vh[d]) : 0;
    } else {
        float *kc = (float *)(void *)head, *vc = (float *)(void *)(head + c->key_bytes);
        for (d = 0; d < D; d++) kc[(size_t)d * GP_PAGE + slot] = kh[d];
        for (d = 0; d < c->d_alloc; d++)
            vc[(size_t)(d / GP_PAGE) * GP_PAGE * GP_PAGE + (size_t)slot * GP_PAGE + d % GP_PAGE] = d < D ? vh[d] : 0.0f;
    }
}

/* ---- 10.3 the SIMD vocabulary: one vector type and its operations ---- */
#if defined(GP_SIMD)

#if defined(GP_AVX512)
typedef __m512 gp_vf;
#define GP_VL 16
#define GP_VZERO() _mm512_setzero_ps()
#define GP_VSET1(x) _mm512_set1_ps(x)
#define GP_VLOAD(p) _mm512_loadu_ps(p)
#define GP_VSTORE(p, v) _mm512_storeu_ps((p), (v))
#define GP_VADD(a, b) _mm512_add_ps((a), (b))
#define GP_VMUL(a, b) _mm512_mul_ps((a), (b))
#define GP_VDIV(a, b) _mm512_div_ps((a), (b))
#define GP_VFMA(a, b, c) _mm512_fmadd_ps((a), (b), (c)) /* a*b + c */
#define GP_VMAX(a, b) _mm512_max_ps((a), (b))
#define GP_VMIN(a, b) _mm512_min_ps((a), (b))
#define GP_VLOAD_F16(p) _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)(p)))
#define GP_VLOAD_BF16(p) \
    _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(const void *)(p))), 16))
#define GP_VLOAD_Q8(p) _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(const void *)(p))))
#define GP_SCALE_F16(h) _cvtsh_ss(h)
/* a statement for each row of a GP_MR-row tile */
#define GP_TILE_ROWS(M) M(0) M(1) M(2) M(3) M(4) M(5)
#define GP_MR 6
static float gp_vsum(gp_vf v) { return _mm512_reduce_add_ps(v); }
/* out[i] = sum of the lanes of a, b, c, d */
static void gp_vsum4(gp_vf a, gp_vf b, gp_vf c, gp_vf d, float *out)
{
    __m512 t0 = _mm512_add_ps(_mm512_unpacklo_ps(a, b), _mm512_unpackhi_ps(a, b));
    __m512 t1 = _mm512_add_ps(_mm512_unpacklo_ps(c, d), _mm512_unpackhi_ps(c, d));
    __m512 u = _mm512_add_ps(_mm512_shuffle_ps(t0, t1, _MM_SHUFFLE(1, 0, 1, 0)),
                             _mm512_shuffle_ps(t0, t1, _MM_SHUFFLE(3, 2, 3, 2)));
    __m256 h = _mm256_add_ps(_mm512_castps512_ps256(u),
                             _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(u), 1)));
    _mm_storeu_ps(out, _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1)));
}
static gp_vf gp_vround(gp_vf x) { return _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
static gp_vf gp_vpow2i(gp_vf n) { return _mm512_scalef_ps(GP_VSET1(1.0f), n); }

#elif defined(GP_AVX2)
typedef __m256 gp_vf;
#define GP_VL 8
#define GP_VZERO() _mm256_setzero_ps()
#define GP_VSET1(x) _mm256_set1_ps(x)
#define GP_VLOAD(p) _mm256_loadu_ps(p)
#define GP_VSTORE(p, v) _mm256_storeu_ps((p), (v))
#define GP_VADD(a, b) _mm256_add_ps((a), (b))
#define GP_VMUL(a, b) _mm256_mul_ps((a), (b))
#define GP_VDIV(a, b) _mm256_div_ps((a), (b))
#define GP_VFMA(a, b, c) _mm256_fmadd_ps((a), (b), (c))
#define GP_VMAX(a, b) _mm256_max_ps((a), (b))
#define GP_VMIN(a, b) _mm256_min_ps((a), (b))
#define GP_VLOAD_F16(p) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(p)))
#define GP_VLOAD_BF16(p) \
    _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(const void *)(p))), 16))
#define GP_VLOAD_Q8(p) _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)(p))))
#define GP_SCALE_F16(h) _cvtsh_ss(h)
#define GP_TILE_ROWS(M) M(0) M(1)
#define GP_MR 2
static float gp_vsum(gp_vf v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}
static void gp_vsum4(gp_vf a, gp_vf b, gp_vf c, gp_vf d, float *out)
{
    __m256 t0 = _mm256_add_ps(_mm256_unpacklo_ps(a, b), _mm256_unpackhi_ps(a, b));
    __m256 t1 = _mm256_add_ps(_mm256_unpacklo_ps(c, d), _mm256_unpackhi_ps(c, d));
    __m256 u = _mm256_add_ps(_mm256_shuffle_ps(t0, t1, _MM_SHUFFLE(1, 0, 1, 0)),
                             _mm256_shuffle_ps(t0, t1, _MM_SHUFFLE(3, 2, 3, 2)));
    _mm_storeu_ps(out, _mm_add_ps(_mm256_castps256_ps128(u), _mm256_extractf128_ps(u, 1)));
}
static gp_vf gp_vround(gp_vf x) { return _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
static gp_vf gp_vpow2i(gp_vf n)
{
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23));
}

#else /* NEON */
typedef float32x4_t gp_vf;
#define GP_VL 4
#define GP_VZERO() vdupq_n_f32(0.0f)
#define GP_VSET1(x) vdupq_n_f32(x)
#define GP_VLOAD(p) vld1q_f32(p)
#define GP_VSTORE(p, v) vst1q_f32((p), (v))
#define GP_VADD(a, b) vaddq_f32((a), (b))
#define GP_VMUL(a, b) vmulq_f32((a), (b))
#define GP_VDIV(a, b) vdivq_f32((a), (b))
#define GP_VFMA(a, b, c) vfmaq_f32((c), (a), (b))
#define GP_VMAX(a, b) vmaxq_f32((a), (b))
#define GP_VMIN(a, b) vminq_f32((a), (b))
#define GP_VLOAD_F16(p) vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16((const uint16_t *)(const void *)(p))))
#define GP_VLOAD_BF16(p) vreinterpretq_f32_u32(vshll_n_u16(vld1_u16((const uint16_t *)(const void *)(p)), 16))
#define GP_VLOAD_Q8(p) vcvtq_f32_s32(vmovl_s16(vget_low_s16(vmovl_s8(vld1_s8((const int8_t *)(const void *)(p))))))
#define GP_SCALE_F16(h) gpt__f16_to_f32(h)
#define GP_TILE_ROWS(M) M(0) M(1) M(2) M(3) M(4) M(5)
#define GP_MR 6
static float gp_vsum(gp_vf v) { return vaddvq_f32(v); }
static void gp_vsum4(gp_vf a, gp_vf b, gp_vf c, gp_vf d, float *out)
{
    vst1q_f32(out, vpaddq_f32(vpaddq_f32(a, b), vpaddq_f32(c, d)));
}
static gp_vf gp_vround(gp_vf x) { return vrndnq_f32(x); }
static gp_vf gp_vpow2i(gp_vf n)
{
    return vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(vcvtq_s32_f32(n), vdupq_n_s32(127)), 23));
}
#endif

#define GP_NR 4 /* rows of W in a dot-product tile */

/* GCC folds the load of an activation vector into each of the GP_NR FMAs
 * that use it (GP_NR loads instead of one), which makes the tile load-bound;
 * an empty asm that claims to change the register keeps the loaded value in
 * it. */
#if defined(__GNUC__) && !defined(__clang__) && (defined(GP_AVX512) || defined(GP_AVX2))
#define GP_KEEP_IN_REG(v) __asm__("" : "+v"(v))
#elif defined(__GNUC__) && !defined(__clang__) && defined(GP_NEON)
#define GP_KEEP_IN_REG(v) __asm__("" : "+w"(v))
#else
#define GP_KEEP_IN_REG(v) ((void)0)
#endif

/* The generic kernels below are written once and instantiated per weight
 * type by callers that pass the type as a constant; forcing them inline
 * lets the compiler drop the switch on the type from the inner loops. */
#if defined(__GNUC__)
#define GP_INLINE static inline __attribute__((always_inline))
#else
#define GP_INLINE static inline
#endif

/* Element k of row j of W, widened (for the tails that do not fill a vector). */
static float gp_w_at(const gp_tensor *W, int j, int k)
{
    size_t at = (size_t)j * W->cols + k;
    switch (W->type) {
    case GPT_DTYPE_F32: return ((const float *)(const void *)W->data)[at];
    case GPT_DTYPE_F16: return gpt__f16_to_f32(((const uint16_t *)(const void *)W->data)[at]);
    case GPT_DTYPE_BF16: return gpt__bf16_to_f32(((const uint16_t *)(const void *)W->data)[at]);
    case GPT_DTYPE_Q8_0:
        return gpt__f16_to_f32(W->scales[(size_t)j * W->nb + k / 32]) * (float)W->q[(size_t)j * W->nb * 32 + k];
    }
    return 0.0f;
}


/* ---- 10.4 GELU ---- */

/* e^x for |x| < ~88, relative error about 2e-7: x = n ln2 + f, e^f by its
 * Taylor polynomial of degree 6 on |f| <= ln2/2. */
static gp_vf gp_vexp(gp_vf x)
{
    gp_vf n, f, p;
    x = GP_VMIN(GP_VMAX(x, GP_VSET1(-87.0f)), GP_VSET1(88.0f));
    n = gp_vround(GP_VMUL(x, GP_VSET1(1.44269504088896341f)));
    f = GP_VFMA(n, GP_VSET1(-0.693145751953125f), x); /* ln2 split so n*hi is exact */
    f = GP_VFMA(n, GP_VSET1(-1.428606820309417232e-6f), f);
    p = GP_VSET1(1.0f / 720.0f);
    p = GP_VFMA(p, f, GP_VSET1(1.0f / 120.0f));
    p = GP_VFMA(p, f, GP_VSET1(1.0f / 24.0f));
    p = GP_VFMA(p, f, GP_VSET1(1.0f / 6.0f));
    p = GP_VFMA(p, f, GP_VSET1(0.5f));
    p = GP_VFMA(p, f, GP_VSET1(1.0f));
    p = GP_VFMA(p, f, GP_VSET1(1.0f));
    return GP_VMUL(p, gp_vpow2i(n));
}

/* GPT-2's GELU: 0.5x(1 + tanh(y)) = x / (1 + e^(-2y)), y = sqrt(2/pi)(x + 0.044715x^3) */
static gp_vf gp_vgelu(gp_vf x)
{
    gp_vf x3 = GP_VMUL(GP_VMUL(x, x), x);
    gp_vf y = GP_VMUL(GP_VFMA(x3, GP_VSET1(0.044715f), x), GP_VSET1(-2.0f * 0.7978845608028654f));
    return GP_VDIV(x, GP_VADD(GP_VSET1(1.0f), gp_vexp(y)));
}

static void gp_gelu_simd(float *x, size_t n)
{
    size_t i = 0;
    for (; i + GP_VL <= n; i += GP_VL) GP_VSTORE(x + i, gp_vgelu(GP_VLOAD(x + i)));
    for (; i < n; i++) x[i] = gp_gelu_scalar(x[i]);
}

/* ---- 10.5 the linear layer: dot products in one order ---- */

/* Statements for each row of tiles of 1 to 8 rows (GP_TILE_ROWS is the
 * full GP_MR-row tile); GP_HALF_TILE_ROWS is half of it, for the last rows
 * of a batch that would leave most of a full tile empty. */
#define GP_ROWS1(M) M(0)
#define GP_ROWS2(M) M(0) M(1)
#define GP_ROWS3(M) M(0) M(1) M(2)
#define GP_ROWS4(M) M(0) M(1) M(2) M(3)
#define GP_ROWS5(M) M(0) M(1) M(2) M(3) M(4)
#define GP_ROWS6(M) M(0) M(1) M(2) M(3) M(4) M(5)
#define GP_ROWS7(M) M(0) M(1) M(2) M(3) M(4) M(5) M(6)
#define GP_ROWS8(M) M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7)
#define GP_ROWS16(M) GP_ROWS8(M) M(8) M(9) M(10) M(11) M(12) M(13) M(14) M(15)
#if GP_MR == 6
#define GP_HALF_TILE_ROWS GP_ROWS3
#else
#define GP_HALF_TILE_ROWS GP_ROWS1
#endif
#define GP_HALF_MR (GP_MR / 2)
/*
 * Every product y[r][j] = x[r] . W[j] is summed in one order, whatever tile
 * computes it (batch invariance): one vector accumulator takes
 * x[r][k .. k+VL) * W[j][k .. k+VL) for k = 0, VL, 2 VL, ... in turn, its
 * lanes are added by gp_vsum4's tree, the elements after the last whole
 * vector are added one by one, and then the bias. A tile of GP_MR rows of x
 * and 4 rows of W (prompts, batches), a tile of 1 row and 4 rows of W (the
 * rows left over; every decoded token), one row against two rows of W
 * (gp_bf16_row2: decoded tokens, bf16) and one row against one (gp_dot_row1,
 * gp_bf16_row1: decoded tokens where the rows are read one after the other)
 * give each output the very same sum, so a row's result
 * does not depend on how many rows share its step.
 */

/* The dot products on rounded activations (below) pass through the
 * generic kernels as two more types. */
#define GP_Q8DOT ((gpt_dtype)100)
#define GP_BF16DOT ((gpt_dtype)101)

/* Row j of W as a pointer to its first element, and GP_VL of its elements
 * from k on, widened to f32 (q8_0: times the scale of their block). */
GP_INLINE const void *gp_w_row(const gp_tensor *W, gpt_dtype type, int j)
{
    switch (type) {
    case GPT_DTYPE_F32: return (const float *)(const void *)W->data + (size_t)j * W->cols;
    case GPT_DTYPE_F16:
    case GPT_DTYPE_BF16: return (const uint16_t *)(const void *)W->data + (size_t)j * W->cols;
    default: return W->q + (size_t)j * W->nb * 32;
    }
}

GP_INLINE gp_vf gp_w_load(const gp_tensor *W, gpt_dtype type, const void *row, int j, int k)
{
    switch (type) {
    case GPT_DTYPE_F32: return GP_VLOAD((const float *)row + k);
    case GPT_DTYPE_F16: return GP_VLOAD_F16((const uint16_t *)row + k);
    case GPT_DTYPE_BF16: return GP_VLOAD_BF16((const uint16_t *)row + k);
    default:
        return GP_VMUL(GP_VLOAD_Q8((const signed char *)row + k),
                       GP_VSET1(GP_SCALE_F16(W->scales[(size_t)j * W->nb + k / 32])));
    }
}

GP_INLINE size_t gp_w_elem_size(gpt_dtype type)
{
    return type == GPT_DTYPE_F32 ? 4 : type == GPT_DTYPE_Q8_0 || type == GP_Q8DOT ? 1 : 2;
}

/*
 * Decoding reads each weight once from memory. Where a kernel reads 4 rows
 * side by side, each line is also prefetched into L2 GP_PREFETCH_AHEAD
 * bytes ahead: about 15% more bandwidth per core than the hardware
 * prefetchers reach alone on 4 streams (a prefetch into L1 instead costs a
 * third of it). Where one chain is fast enough, the rows are read one
 * after the other instead (bf16 with vdpbf16ps, f32 on AVX2): one stream,
 * which the hardware prefetchers alone follow to the core's bandwidth (a
 * Zen 4 core: 31 GB/s, against 23 for 4 rows with these prefetches).
 */
#define GP_PREFETCH_AHEAD 16384
#if defined(__GNUC__)
/* locality 2: prefetcht1 on x86. The address may lie past W: prefetches do
 * not fault, and it is computed as an integer, not as a pointer. */
#define GP_PREFETCH_L2(p) __builtin_prefetch((const void *)((uintptr_t)(p) + GP_PREFETCH_AHEAD), 0, 2)
/* the same, `bytes` from p, into L2 (locality 2) or L1 (3: prefetcht0) */
#define GP_PREFETCH_L2_AT(p, bytes) __builtin_prefetch((const void *)((uintptr_t)(p) + (uintptr_t)(bytes)), 0, 2)
#define GP_PREFETCH_L1_AT(p, bytes) __builtin_prefetch((const void *)((uintptr_t)(p) + (uintptr_t)(bytes)), 0, 3)
#else
#define GP_PREFETCH_L2(p) ((void)0)
#define GP_PREFETCH_L2_AT(p, bytes) ((void)0)
#define GP_PREFETCH_L1_AT(p, bytes) ((void)0)
#endif

/* The sum of an accumulator's lanes, by the same tree as gp_vsum4. */
static float gp_vsum1(gp_vf a)
{
    float out[4];
    gp_vf z = GP_VZERO();
    gp_vsum4(a, z, z, z, out);
    return out[0];
}

/* y[r][j] = sums + bias, or y[r][j] += that. */
static void gp_store_sum(float *y, float sum, const float *bias, int j, int accumulate)
{
    float v = sum + (bias ? bias[j] : 0.0f);
    *y = accumulate ? *y + v : v;
}

#if defined(GP_AVX512)
/* The same for 16 outputs side by side (the f32 and q8_0 chains): y[i] =
 * (acc + bias) (+ y) for the lanes i in m. */
GP_INLINE void gp_chain_store_mask(float *y, __m512 acc, const float *bias, __mmask16 m, int accumulate)
{
    __m512 v = _mm512_add_ps(acc, bias ? _mm512_maskz_loadu_ps(m, bias) : _mm512_setzero_ps());
    if (accumulate) v = _mm512_add_ps(_mm512_maskz_loadu_ps(m, y), v);
    _mm512_mask_storeu_ps(y, m, v);
}
/* Lanes lo .. hi-1 only (clamped to 0 .. 16): a piece of W's rows that
 * starts inside a packed group of 16. */
GP_INLINE void gp_chain_store_range(float *y, __m512 acc, const float *bias, int lo, int hi, int accumulate)
{
    unsigned below_hi = hi >= 16 ? 0xFFFFu : hi <= 0 ? 0u : (1u << hi) - 1u;
    unsigned from_lo = lo <= 0 ? 0xFFFFu : lo >= 16 ? 0u : 0xFFFFu & ~((1u << lo) - 1u);
    gp_chain_store_mask(y, acc, bias, (__mmask16)(below_hi & from_lo), accumulate);
}
#endif

/* The accumulators of tile row r, one per row of W, and one k step of it. */
#define GP_DECL_ACC(r) gp_vf a##r##0 = GP_VZERO(), a##r##1 = GP_VZERO(), a##r##2 = GP_VZERO(), a##r##3 = GP_VZERO();
#define GP_FMA_ROW(r)                                                                                      \
    {                                                                                                      \
        gp_vf xv = GP_VLOAD(x + (size_t)(r) * ldx + k);                                                    \
        GP_KEEP_IN_REG(xv);                                                                                \
        a##r##0 = GP_VFMA(xv, w0, a##r##0);                                                                \
        a##r##1 = GP_VFMA(xv, w1, a##r##1);                                                                \
        a##r##2 = GP_VFMA(xv, w2, a##r##2);                                                                \
        a##r##3 = GP_VFMA(xv, w3, a##r##3);                                                                \
    }
#define GP_SUM_ROW(r) gp_vsum4(a##r##0, a##r##1, a##r##2, a##r##3, sums + (r)*4);

/* The tail of a dot product: the elements after the last whole vector. */
GP_INLINE float gp_dot_tail(const gp_tensor *W, const float *x, int j, float sum)
{
    int k;
    for (k = W->cols / GP_VL * GP_VL; k < W->cols; k++) sum += x[k] * gp_w_at(W, j, k);
    return sum;
}

/* Prefetches into L2 the part of W that a batch of rows needs next, a few
 * lines per step of the tiles that compute from cache meanwhile, so that
 * memory and the cores work at once. */
typedef struct gp_prefetch {
    const char *at, *end;
    int lines;    /* lines per k step */
} gp_prefetch;

/*
 * The integer dot products of q8_0 weights (GP_Q8_DOT) and the bf16 ones
 * (GP_BF16_DOT), on rows of x rounded by gp_linear_prepare. The generic
 * kernels below take them as two more "types", GP_Q8DOT and GP_BF16DOT,
 * with x pointing at the prepared rows (ldx counting floats of them).
 *
 * q8_0 on AVX2 and NEON: the weights packed at load time (gp_q8_pack) and
 * x's codes both hold a group of GP_Q8_G blocks as 8 steps of one vector
 * each, lane l of every step being 4 bytes of block l. An int32 lane takes
 * the 4 products of its bytes per step (vpdpbusd on x86, with the weights
 * as unsigned w + 128 and the lane started at -128 times its block's
 * codes, so that it ends at exactly sum xq * w; sdot on NEON), so after the
 * 8 steps lane l holds block l's whole integer sum: then one conversion and
 * one FMA with d_x * d_w per lane, for 32 products per lane, and the lanes
 * added up at the end. AVX-512 puts outputs in the lanes instead
 * (gp_q8_chains, below).
 */
/* A tile row's four accumulators summed into sums (both kinds of kernels). */
#define GP_Q8_SUM(r) gp_vsum4(a##r##0, a##r##1, a##r##2, a##r##3, sums + (r)*4);
#if defined(GP_Q8_DOT) && !defined(GP_Q8_CHAINS)
#if defined(GP_AVX2)
typedef __m256i gp_vi;
typedef __m256i gp_qv;
#define GP_Q8_XS(d) GP_VLOAD(d)
#define GP_Q8_WS(s) GP_VLOAD_F16(s)
#define GP_Q8_LOAD(p) _mm256_loadu_si256((const __m256i *)(const void *)(p))
#define GP_Q8_INIT(corr) _mm256_loadu_si256((const __m256i *)(const void *)(corr))
#define GP_Q8_DOTI(acc, w, x) _mm256_dpbusd_avx_epi32((acc), (w), (x))
#define GP_Q8_CVT(i) _mm256_cvtepi32_ps(i)
#else /* NEON with dotprod: signed bytes on both sides, lanes start at 0 */
typedef int32x4_t gp_vi;
typedef int8x16_t gp_qv;
#define GP_Q8_XS(d) GP_VLOAD(d)
#define GP_Q8_WS(s) GP_VLOAD_F16(s)
#define GP_Q8_LOAD(p) vld1q_s8((const int8_t *)(const void *)(p))
#define GP_Q8_INIT(corr) ((void)(corr), vdupq_n_s32(0))
#define GP_Q8_DOTI(acc, w, x) vdotq_s32((acc), (w), (x))
#define GP_Q8_CVT(i) vcvtq_f32_s32(i)
#endif

/* A tile of ROWS prepared rows of x (ldb bytes apart) against rows j .. j+3
 * of W: sums[r * 4 + b]. pf: lines to prefetch for what comes next; stream:
 * prefetch the rows of W themselves (one row of x streaming W). */
#define GP_Q8_DECL(r)                                                                                 \
    gp_vf a##r##0 = GP_VZERO(), a##r##1 = GP_VZERO(), a##r##2 = GP_VZERO(), a##r##3 = GP_VZERO();     \
    const unsigned char *xq##r = X + (size_t)(r)*ldb;                                                 \
    const int32_t *nc##r = gp_q8_corr(X + (size_t)(r)*ldb, nb);                                       \
    const float *dx##r = gp_q8_dx(X + (size_t)(r)*ldb, nb);                                           \
    gp_vi i##r##0, i##r##1, i##r##2, i##r##3;
/* One group of blocks: each row's int32 lanes start at its corrections,
 * take the group's 8 steps, and go into the f32 accumulators with
 * d_x * d_w. */
#define GP_Q8_START(r) i##r##0 = i##r##1 = i##r##2 = i##r##3 = GP_Q8_INIT(nc##r + g);
#define GP_Q8_ROW(r)                                                                                  \
    {                                                                                                 \
        gp_qv xv = GP_Q8_LOAD(xq##r + k);                                                             \
        i##r##0 = GP_Q8_DOTI(i##r##0, w0, xv);                                                        \
        i##r##1 = GP_Q8_DOTI(i##r##1, w1, xv);                                                        \
        i##r##2 = GP_Q8_DOTI(i##r##2, w2, xv);                                                        \
        i##r##3 = GP_Q8_DOTI(i##r##3, w3, xv);                                                        \
    }
#define GP_Q8_END(r)                                                                                  \
    {                                                                                                 \
        gp_vf xs = GP_Q8_XS(dx##r + g);                                                               \
        a##r##0 = GP_VFMA(GP_Q8_CVT(i##r##0), GP_VMUL(xs, s0), a##r##0);                              \
        a##r##1 = GP_VFMA(GP_Q8_CVT(i##r##1), GP_VMUL(xs, s1), a##r##1);                              \
        a##r##2 = GP_VFMA(GP_Q8_CVT(i##r##2), GP_VMUL(xs, s2), a##r##2);                              \
        a##r##3 = GP_VFMA(GP_Q8_CVT(i##r##3), GP_VMUL(xs, s3), a##r##3);                              \
    }
#define GP_Q8_GROUP(ROWS)                                                                                   \
    {                                                                                                       \
        gp_vf s0, s1, s2, s3;                                                                               \
        ROWS(GP_Q8_START)                                                                                   \
        for (s = 0, k = g * 32; s < 8; s++, k += GP_Q8_G * 4) {                                             \
            gp_qv w0, w1, w2, w3;                                                                           \
            if (pf)                                                                                         \
                for (l = 0; l < pf->lines && pf->at < pf->end; l++, pf->at += 64)                          \
                    GP_PREFETCH_L2(pf->at - GP_PREFETCH_AHEAD);                                             \
            if (stream && k % 64 == 0) {                                                                    \
                GP_PREFETCH_L2(p0 + k);                                                                     \
                GP_PREFETCH_L2(p1 + k);                                                                     \
                GP_PREFETCH_L2(p2 + k);                                                                     \
                GP_PREFETCH_L2(p3 + k);                                                                     \
            }                                                                                               \
            w0 = GP_Q8_LOAD(p0 + k);                                                                        \
            w1 = GP_Q8_LOAD(p1 + k);                                                                        \
            w2 = GP_Q8_LOAD(p2 + k);                                                                        \
            w3 = GP_Q8_LOAD(p3 + k);                                                                        \
            ROWS(GP_Q8_ROW)                                                                                 \
        }                                                                                                   \
        s0 = GP_Q8_WS(q0 + g);                                                                              \
        s1 = GP_Q8_WS(q1 + g);                                                                              \
        s2 = GP_Q8_WS(q2 + g);                                                                              \
        s3 = GP_Q8_WS(q3 + g);                                                                              \
        ROWS(GP_Q8_END)                                                                                     \
    }
#define GP_Q8_KERNEL(name, ROWS)                                                                            \
    GP_INLINE void name(const gp_tensor *W, const unsigned char *X, size_t ldb, int j, gp_prefetch *pf,     \
                        int stream, float *sums)                                                            \
    {                                                                                                       \
        int nb = W->nb, np = gp_q8_npad(nb), g, k, s, l;                                                    \
        const unsigned char *p0 = W->qp + (size_t)j * np * 32, *p1 = p0 + (size_t)np * 32,                 \
                            *p2 = p1 + (size_t)np * 32, *p3 = p2 + (size_t)np * 32;                        \
        const uint16_t *q0 = W->sp + (size_t)j * np, *q1 = q0 + np, *q2 = q1 + np, *q3 = q2 + np;           \
        ROWS(GP_Q8_DECL)                                                                                    \
        for (g = 0; g < np; g += GP_Q8_G) GP_Q8_GROUP(ROWS)                                                 \
        ROWS(GP_Q8_SUM)                                                                                     \
    }
GP_Q8_KERNEL(gp_q8_tile1, GP_ROWS1)
#if GP_MR == 6
GP_Q8_KERNEL(gp_q8_tile3, GP_ROWS3)
#else
GP_Q8_KERNEL(gp_q8_tile2, GP_ROWS2)
#endif

/* One prepared row of x against row j of W. */
GP_INLINE float gp_q8_row1(const gp_tensor *W, const unsigned char *X, int j)
{
    int nb = W->nb, np = gp_q8_npad(nb), g, s;
    const unsigned char *p0 = W->qp + (size_t)j * np * 32;
    const uint16_t *q0 = W->sp + (size_t)j * np;
    const int32_t *nc = gp_q8_corr(X, nb);
    const float *dx = gp_q8_dx(X, nb);
    gp_vf acc = GP_VZERO();
    for (g = 0; g < np; g += GP_Q8_G) {
        gp_vi i0 = GP_Q8_INIT(nc + g);
        for (s = 0; s < 8; s++) {
            size_t k = (size_t)g * 32 + (size_t)s * GP_Q8_G * 4;
            i0 = GP_Q8_DOTI(i0, GP_Q8_LOAD(p0 + k), GP_Q8_LOAD(X + k));
        }
        acc = GP_VFMA(GP_Q8_CVT(i0), GP_VMUL(GP_Q8_XS(dx + g), GP_Q8_WS(q0 + g)), acc);
    }
    return gp_vsum1(acc);
}
#endif /* GP_Q8_DOT && !GP_Q8_CHAINS */

#if defined(GP_Q8_CHAINS)
/*
 * q8_0 on AVX-512: the lanes are outputs. A step of a block is 64 bytes of
 * the packed weights (gp_q8_pack: 4 bytes of each of a group's 16 rows)
 * and 4 codes of a row of x broadcast to every lane, so vpdpbusd adds to
 * lane i 4 products of output i; after the block's 8 steps, started at x's
 * correction, lane i holds the block's exact integer sum, which goes into
 * the chain y = fma(isum, d_x[b] * d_w[b], y), block 0 first (the twin's
 * order; no partial sums to add up at the end). A tile is up to 4 rows of
 * x by up to 3 groups of 16 outputs: per step 3 loads and 4 broadcasts for
 * 12 products, per block 12 conversions, multiplies and FMAs for 96 of
 * them. The lane-per-block kernels that AVX2 and NEON keep ran GPT-2's
 * 768-wide rows at a third of vpdpbusd's rate here (a row's 24 blocks left
 * a tail of 8 to fold, and each output's 16 lanes to add up).
 */

/* Rows 0 .. R-1 of x (prepared, ldb bytes apart) against groups g .. g+G-1
 * of W, storing outputs j0 .. j1-1 of them: one function per R and G, the
 * accumulators named (a##r##h: row r, group h) so that they stay in
 * registers. */
#define GP_G1(M) M(0)
#define GP_G2(M) M(0) M(1)
#define GP_G3(M) M(0) M(1) M(2)
#define GP_RG11(M) M(0, 0)
#define GP_RG12(M) M(0, 0) M(0, 1)
#define GP_RG13(M) M(0, 0) M(0, 1) M(0, 2)
#define GP_RG21(M) M(0, 0) M(1, 0)
#define GP_RG22(M) M(0, 0) M(0, 1) M(1, 0) M(1, 1)
#define GP_RG23(M) M(0, 0) M(0, 1) M(0, 2) M(1, 0) M(1, 1) M(1, 2)
#define GP_RG31(M) M(0, 0) M(1, 0) M(2, 0)
#define GP_RG32(M) M(0, 0) M(0, 1) M(1, 0) M(1, 1) M(2, 0) M(2, 1)
#define GP_RG33(M) M(0, 0) M(0, 1) M(0, 2) M(1, 0) M(1, 1) M(1, 2) M(2, 0) M(2, 1) M(2, 2)
#define GP_RG41(M) M(0, 0) M(1, 0) M(2, 0) M(3, 0)
#define GP_RG42(M) M(0, 0) M(0, 1) M(1, 0) M(1, 1) M(2, 0) M(2, 1) M(3, 0) M(3, 1)
#define GP_RG43(M) M(0, 0) M(0, 1) M(0, 2) M(1, 0) M(1, 1) M(1, 2) M(2, 0) M(2, 1) M(2, 2) M(3, 0) M(3, 1) M(3, 2)
/* How far ahead the first tile of rows prefetches each group's stream
 * into L2 (one row of x). 2 KB: GPT-2 XL decoded 3-6% faster than with 4
 * KB, 124M 3-5% (1 KB: 3-6% and 2-4%; none: XL within 3% of 4 KB),
 * measured alternating builds on a Zen 4 (docs/PERFORMANCE.md, tenth
 * round) */
#ifndef GP_Q8C_AHEAD
#define GP_Q8C_AHEAD 2048
#endif
/* Up to this many rows of x (decoding 1 to 3 sequences) take W one group
 * at a time, so that the weights are read as one stream, which the
 * hardware's prefetchers follow to the core's bandwidth: with one thread,
 * one row decoded 24% faster than with 2 or 3 groups side by side (167 ->
 * 205-212 tok/s on a Zen 4, twelfth round), 2 rows 14-28%, 3 rows 0-12%;
 * 4 rows no faster. */
#ifndef GP_Q8_ONE_GROUP_ROWS
#define GP_Q8_ONE_GROUP_ROWS 3
#endif
/* and the 8- and 16-row tiles (B = 16: 4 KB 1-3% slower, 16 KB the same) */
#define GP_Q8C_WIDE_AHEAD 8192
/* The most rows of x that take them (B = 24 and 32 +5%, 48 +1-2%, 64 no
 * faster; a prompt's 512 rows 15% slower: 17 loads for 16 products a step
 * against the 4 x 3 tile's 7 for 12) */
#define GP_Q8C_WIDE_ROWS 32
GP_INLINE __m512i gp_q8c_four(const unsigned char *p)
{
    int32_t four;
    memcpy(&four, p, 4);
    return _mm512_set1_epi32(four);
}
#define GP_QC_GROUP(h)                                                                                     \
    const unsigned char *qg##h = W->qp + (size_t)(g + (h)) * nb * 512;                                    \
    const uint16_t *sg##h = W->sp + (size_t)(g + (h)) * nb * 16;                                          \
    int first##h = (g + (h)) * 16, lo##h = j0 > first##h ? j0 - first##h : 0,                             \
        hi##h = j1 < first##h + 16 ? j1 - first##h : 16;                                                  \
    __m512i w##h;                                                                                          \
    __m512 dw##h;
#define GP_QC_ROW(r)                                                                                       \
    const unsigned char *xr##r = X + (size_t)(r)*ldb;                                                     \
    const int32_t *nc##r = gp_q8_corr(xr##r, nb);                                                         \
    const float *dx##r = gp_q8_dx(xr##r, nb);
#define GP_QC_PAIR(r, h)                                                                                   \
    __m512 a##r##h = _mm512_setzero_ps();                                                                  \
    __m512i i##r##h;
#define GP_QC_START(r, h) i##r##h = _mm512_set1_epi32(nc##r[b]);
#define GP_QC_LOADW(h)                                                                                     \
    if (ahead) GP_PREFETCH_L2_AT(qg##h + (size_t)b * 512 + s * 64, ahead);                                \
    w##h = _mm512_loadu_si512((const void *)(qg##h + (size_t)b * 512 + s * 64));
#define GP_QC_DOT(r, h) i##r##h = _mm512_dpbusd_epi32(i##r##h, w##h, gp_q8c_four(xr##r + (size_t)b * 32 + s * 4));
#define GP_QC_SCALE(h) dw##h = GP_VLOAD_F16(sg##h + (size_t)b * 16);
#define GP_QC_END(r, h)                                                                                    \
    a##r##h = _mm512_fmadd_ps(_mm512_cvtepi32_ps(i##r##h), _mm512_mul_ps(_mm512_set1_ps(dx##r[b]), dw##h), a##r##h);
#define GP_QC_STORE(r, h)                                                                                  \
    gp_chain_store_range(y + (size_t)(r)*ldy + first##h, a##r##h, bias ? bias + first##h : NULL, lo##h, hi##h,  \
                         accumulate);
/* A block's 8 steps written out: GCC keeps the accumulators of a rolled
 * loop of vpdpbusd in place only by copying each of them every step. */
#define GP_QC_STEPS(s, BODY)                                                                               \
    s = 0; { BODY } s = 1; { BODY } s = 2; { BODY } s = 3; { BODY }                                      \
    s = 4; { BODY } s = 5; { BODY } s = 6; { BODY } s = 7; { BODY }
#define GP_Q8C_TILE(name, ROWS, GROUPS, PAIRS)                                                             \
    static void name(const gp_tensor *W, const unsigned char *X, size_t ldb, int g, int j0, int j1, float *y, \
                     int ldy, const float *bias, int accumulate, size_t ahead)                             \
    {                                                                                                      \
        int nb = W->nb, b, s;                                                                              \
        GROUPS(GP_QC_GROUP)                                                                                \
        ROWS(GP_QC_ROW)                                                                                    \
        PAIRS(GP_QC_PAIR)                                                                                  \
        for (b = 0; b < nb; b++) {                                                                         \
            PAIRS(GP_QC_START)                                                                             \
            GP_QC_STEPS(s, GROUPS(GP_QC_LOADW) PAIRS(GP_QC_DOT))                                          \
            GROUPS(GP_QC_SCALE)                                                                            \
            PAIRS(GP_QC_END)                                                                               \
        }                                                                                                  \
        PAIRS(GP_QC_STORE)                                                                                 \
    }
GP_Q8C_TILE(gp_q8c_tile11, GP_ROWS1, GP_G1, GP_RG11)
GP_Q8C_TILE(gp_q8c_tile12, GP_ROWS1, GP_G2, GP_RG12)
GP_Q8C_TILE(gp_q8c_tile13, GP_ROWS1, GP_G3, GP_RG13)
GP_Q8C_TILE(gp_q8c_tile21, GP_ROWS2, GP_G1, GP_RG21)
GP_Q8C_TILE(gp_q8c_tile22, GP_ROWS2, GP_G2, GP_RG22)
GP_Q8C_TILE(gp_q8c_tile23, GP_ROWS2, GP_G3, GP_RG23)
GP_Q8C_TILE(gp_q8c_tile31, GP_ROWS3, GP_G1, GP_RG31)
GP_Q8C_TILE(gp_q8c_tile32, GP_ROWS3, GP_G2, GP_RG32)
GP_Q8C_TILE(gp_q8c_tile33, GP_ROWS3, GP_G3, GP_RG33)
GP_Q8C_TILE(gp_q8c_tile41, GP_ROWS4, GP_G1, GP_RG41)
GP_Q8C_TILE(gp_q8c_tile42, GP_ROWS4, GP_G2, GP_RG42)
GP_Q8C_TILE(gp_q8c_tile43, GP_ROWS4, GP_G3, GP_RG43)
/* One group by 8 or 16 rows, for batches of sequences (gp_q8_chains) */
#define GP_RG81(M) M(0, 0) M(1, 0) M(2, 0) M(3, 0) M(4, 0) M(5, 0) M(6, 0) M(7, 0)
#define GP_RG161(M) GP_RG81(M) M(8, 0) M(9, 0) M(10, 0) M(11, 0) M(12, 0) M(13, 0) M(14, 0) M(15, 0)
GP_Q8C_TILE(gp_q8c_tile8, GP_ROWS8, GP_G1, GP_RG81)
GP_Q8C_TILE(gp_q8c_tile16, GP_ROWS16, GP_G1, GP_RG161)

/* y[r][j] (+)= x[r] . W[j] + bias[j] for r < n, j0 <= j < j1: the groups
 * up to 3 at a time (one at a time for up to GP_Q8_ONE_GROUP_ROWS rows),
 * each meeting every row of x 4 at a time (from L1 or L2 for a prompt,
 * straight from memory for one row). */
static void gp_q8_chains(const gp_tensor *W, const float *bias, const unsigned char *X, size_t ldb, int n, int j0,
                         int j1, float *y, int ldy, int accumulate)
{
    typedef void (*tile_fn)(const gp_tensor *, const unsigned char *, size_t, int, int, int, float *, int,
                            const float *, int, size_t);
    static const tile_fn tiles[4][3] = {{gp_q8c_tile11, gp_q8c_tile12, gp_q8c_tile13},
                                        {gp_q8c_tile21, gp_q8c_tile22, gp_q8c_tile23},
                                        {gp_q8c_tile31, gp_q8c_tile32, gp_q8c_tile33},
                                        {gp_q8c_tile41, gp_q8c_tile42, gp_q8c_tile43}};
    int g, r, G, gend = (j1 + 15) / 16;
    if (n >= 8 && n <= GP_Q8C_WIDE_ROWS) {
        /* A batch of sequences decoding: one group at a time, its weights
         * streamed from memory for the first 16 or 8 rows at once, so that
         * their products overlap the read (4 rows at a time, the later
         * tiles' products came after it: +8-10% at B = 16); the further
         * rows take the group again from L1 or L2. */
        for (g = j0 / 16; g < gend; g++) {
            for (r = 0; r + 16 <= n; r += 16)
                gp_q8c_tile16(W, X + (size_t)r * ldb, ldb, g, j0, j1, y + (size_t)r * ldy, ldy, bias, accumulate,
                              r == 0 ? GP_Q8C_WIDE_AHEAD : 0);
            for (; r + 8 <= n; r += 8)
                gp_q8c_tile8(W, X + (size_t)r * ldb, ldb, g, j0, j1, y + (size_t)r * ldy, ldy, bias, accumulate,
                             r == 0 ? GP_Q8C_WIDE_AHEAD : 0);
            for (; r < n; r += 4) {
                int R = n - r < 4 ? n - r : 4;
                tiles[R - 1][0](W, X + (size_t)r * ldb, ldb, g, j0, j1, y + (size_t)r * ldy, ldy, bias, accumulate, 0);
            }
        }
        return;
    }
    for (g = j0 / 16; g < gend; g += G) {
        /* 4 groups (a thread's usual piece of 64 rows) as 2 + 2: a tile of
         * one group takes 4 broadcasts for 4 products a step */
        G = gend - g == 4 ? 2 : gend - g < 3 ? gend - g : 3;
        if (n <= GP_Q8_ONE_GROUP_ROWS) G = 1;
        for (r = 0; r < n; r += 4) {
            int R = n - r < 4 ? n - r : 4;
            tiles[R - 1][G - 1](W, X + (size_t)r * ldb, ldb, g, j0, j1, y + (size_t)r * ldy, ldy, bias, accumulate,
                                r == 0 ? GP_Q8C_AHEAD : 0);
        }
    }
}
#endif /* GP_Q8_CHAINS */

/*
 * bf16 (AVX512_BF16): a step takes 32 elements; vdpbf16ps adds to lane l
 * the products of elements 2l+1 and 2l of x (rounded to bf16) and W, as
 * gp_dot_bf16_ref does. The last step of a row reads the zeros its packing
 * added past the row's elements.
 */
#if defined(GP_BF16_DOT)
/* Row j of W in pairs (gp_pair_pack): its step k (32 values) is at
 * gp_bf16_row(W, j) + 2 k, the last step padded with zeros */
GP_INLINE const uint16_t *gp_bf16_row(const gp_tensor *W, int j)
{
    return W->pairs + (size_t)(j / 2) * (size_t)((W->cols + 31) / 32 * 32) * 2 + (j % 2) * 32;
}
#define GP_BF16_FMA(acc, x, w) _mm512_dpbf16_ps((acc), (__m512bh)(x), (__m512bh)(w))
#define GP_BF_DECL(r) gp_vf a##r##0 = GP_VZERO(), a##r##1 = GP_VZERO(), a##r##2 = GP_VZERO(), a##r##3 = GP_VZERO();
#define GP_BF_FMA(r)                                                                                  \
    {                                                                                                 \
        __m512i xv = _mm512_loadu_si512((const void *)(xh + (size_t)(r)*ldh + k));                    \
        GP_KEEP_IN_REG(xv);                                                                           \
        a##r##0 = GP_BF16_FMA(a##r##0, xv, w0);                                                       \
        a##r##1 = GP_BF16_FMA(a##r##1, xv, w1);                                                       \
        a##r##2 = GP_BF16_FMA(a##r##2, xv, w2);                                                       \
        a##r##3 = GP_BF16_FMA(a##r##3, xv, w3);                                                       \
    }
#define GP_BF_KERNEL(name, ROWS)                                                                           \
    GP_INLINE void name(const gp_tensor *W, const uint16_t *xh, size_t ldh, int j, gp_prefetch *pf,         \
                        float *sums)                                                                       \
    {                                                                                                      \
        int k, l, kend = (W->cols + 31) / 32 * 32;                                                         \
        const uint16_t *q0 = gp_bf16_row(W, j), *q1 = gp_bf16_row(W, j + 1), *q2 = gp_bf16_row(W, j + 2),      \
                       *q3 = gp_bf16_row(W, j + 3);                                                        \
        ROWS(GP_BF_DECL)                                                                                   \
        for (k = 0; k < kend; k += 32, q0 += 64, q1 += 64, q2 += 64, q3 += 64) {                           \
            __m512i w0, w1, w2, w3;                                                                        \
            if (pf)                                                                                        \
                for (l = 0; l < pf->lines && pf->at < pf->end; l++, pf->at += 64)                         \
                    GP_PREFETCH_L2(pf->at - GP_PREFETCH_AHEAD);                                            \
            w0 = _mm512_loadu_si512((const void *)q0);                                                     \
            w1 = _mm512_loadu_si512((const void *)q1);                                                     \
            w2 = _mm512_loadu_si512((const void *)q2);                                                     \
            w3 = _mm512_loadu_si512((const void *)q3);                                                     \
            ROWS(GP_BF_FMA)                                                                                \
        }                                                                                                  \
        ROWS(GP_Q8_SUM)                                                                                    \
    }
GP_BF_KERNEL(gp_bf16_tile1, GP_ROWS1)
GP_BF_KERNEL(gp_bf16_tile_half, GP_HALF_TILE_ROWS)
GP_BF_KERNEL(gp_bf16_tile, GP_TILE_ROWS)

/* One row of x against row j of W, and against rows j and j + 1 side by
 * side (a decoded token: one stream when j is even): the tiles' chains. */
GP_INLINE float gp_bf16_row1(const gp_tensor *W, const uint16_t *xh, int j)
{
    int k, kend = (W->cols + 31) / 32 * 32;
    const uint16_t *q = gp_bf16_row(W, j);
    gp_vf acc = GP_VZERO();
    for (k = 0; k < kend; k += 32, q += 64)
        acc = GP_BF16_FMA(acc, _mm512_loadu_si512((const void *)(xh + k)), _mm512_loadu_si512((const void *)q));
    return gp_vsum1(acc);
}
/* How far ahead gp_bf16_row2 asks for the lines of its stream: on Zen 4
 * one thread decoded 124M 3-5% faster than with the hardware's prefetchers
 * alone (and faster than the same loop placed elsewhere in the binary
 * without them, which was 7% slower again: alone, its speed depended on
 * where the loop lay), two threads in the fast state 5-15%; 1 KB and 4 KB
 * were alike. */
#define GP_PAIR_AHEAD 2048
GP_INLINE void gp_bf16_row2(const gp_tensor *W, const uint16_t *xh, int j, float *sums)
{
    int k, kend = (W->cols + 31) / 32 * 32;
    const uint16_t *q0 = gp_bf16_row(W, j), *q1 = gp_bf16_row(W, j + 1);
    gp_vf a0 = GP_VZERO(), a1 = GP_VZERO();
    for (k = 0; k < kend; k += 32, q0 += 64, q1 += 64) {
        __m512i xv = _mm512_loadu_si512((const void *)(xh + k));
        GP_PREFETCH_L2_AT(q0, GP_PAIR_AHEAD);
        GP_PREFETCH_L2_AT(q1, GP_PAIR_AHEAD);
        a0 = GP_BF16_FMA(a0, xv, _mm512_loadu_si512((const void *)q0));
        a1 = GP_BF16_FMA(a1, xv, _mm512_loadu_si512((const void *)q1));
    }
    sums[0] = gp_vsum1(a0);
    sums[1] = gp_vsum1(a1);
}
#endif /* GP_BF16_DOT */

/* k steps of a row of W: what a tile's prefetching spreads its lines over */
GP_INLINE int gp_k_steps(const gp_tensor *W, gpt_dtype type)
{
#if defined(GP_Q8_DOT)
    if (type == GP_Q8DOT) return gp_q8_npad(W->nb) / GP_Q8_G * 8;
#endif
#if defined(GP_BF16_DOT)
    if (type == GP_BF16DOT) return W->nb;
#endif
    (void)type;
    return W->cols / GP_VL;
}

/* Rows 0 .. NROWS-1 of x (rows of ldx floats; past the rows that matter,
 * any readable memory) against rows j .. j+3 of W, widened to f32:
 * sums[a * 4 + b]. Written out for the full tile and the half tile. */
#define GP_DOT_KERNEL(name, ROWS, NROWS)                                                                       \
    GP_INLINE void name(const gp_tensor *W, gpt_dtype type, const float *x, size_t ldx, int j, gp_prefetch *pf, \
                        float *sums)                                                                           \
    {                                                                                                          \
        int Kv = W->cols / GP_VL * GP_VL, k, a, b, l;                                                          \
        const void *p0 = gp_w_row(W, type, j), *p1 = gp_w_row(W, type, j + 1), *p2 = gp_w_row(W, type, j + 2), \
                   *p3 = gp_w_row(W, type, j + 3);                                                             \
        ROWS(GP_DECL_ACC)                                                                                      \
        for (k = 0; k < Kv; k += GP_VL) {                                                                      \
            gp_vf w0, w1, w2, w3;                                                                              \
            if (pf)                                                                                            \
                for (l = 0; l < pf->lines && pf->at < pf->end; l++, pf->at += 64)                             \
                    GP_PREFETCH_L2(pf->at - GP_PREFETCH_AHEAD);                                                \
            w0 = gp_w_load(W, type, p0, j, k);                                                                 \
            w1 = gp_w_load(W, type, p1, j + 1, k);                                                             \
            w2 = gp_w_load(W, type, p2, j + 2, k);                                                             \
            w3 = gp_w_load(W, type, p3, j + 3, k);                                                             \
            ROWS(GP_FMA_ROW)                                                                                   \
        }                                                                                                      \
        ROWS(GP_SUM_ROW)                                                                                       \
        for (a = 0; a < NROWS; a++)                                                                            \
            for (b = 0; b < 4; b++) sums[a * 4 + b] = gp_dot_tail(W, x + a * ldx, j + b, sums[a * 4 + b]);   \
    }
GP_DOT_KERNEL(gp_dot_tile_full, GP_TILE_ROWS, GP_MR)
GP_DOT_KERNEL(gp_dot_tile_half, GP_HALF_TILE_ROWS, GP_HALF_MR)
#if GP_MR == 6
GP_DOT_KERNEL(gp_dot_tile_one, GP_ROWS1, 1)
#endif

/* The tile for rows 0 .. mr-1 of x (mr <= GP_MR; up to GP_MR rows are read)
 * against rows j .. j+3 of W: the half tile when the rows that matter fit in
 * it (a batch of 2 or 8 sequences no longer computes 6 or 12 rows), the
 * half tile and a one-row tile for 4 rows (a batch of 4 or 16 no longer
 * computes 6 or 18), and the full one otherwise. Every output is the same
 * chain in all of them. */
GP_INLINE void gp_dot_tile(const gp_tensor *W, gpt_dtype type, const float *x, size_t ldx, int j, int mr,
                           gp_prefetch *pf, float *sums)
{
    int half = mr <= GP_HALF_MR;
#if GP_MR == 6
    int one_more = mr == GP_HALF_MR + 1;
#endif
#if defined(GP_Q8_DOT) && !defined(GP_Q8_CHAINS)
    if (type == GP_Q8DOT) {
        const unsigned char *X = (const unsigned char *)(const void *)x;
#if GP_MR == 6
        gp_q8_tile3(W, X, ldx * 4, j, pf, 0, sums);
        if (one_more) gp_q8_tile1(W, X + ldx * 12, ldx * 4, j, NULL, 0, sums + 12);
        else if (!half) gp_q8_tile3(W, X + ldx * 12, ldx * 4, j, NULL, 0, sums + 12);
#else
        if (half) gp_q8_tile1(W, X, ldx * 4, j, pf, 0, sums);
        else gp_q8_tile2(W, X, ldx * 4, j, pf, 0, sums);
#endif
        return;
    }
#endif
#if defined(GP_BF16_DOT)
    if (type == GP_BF16DOT) {
        const uint16_t *xh = (const uint16_t *)(const void *)x;
#if GP_MR == 6
        if (one_more) {
            gp_bf16_tile_half(W, xh, ldx * 2, j, pf, sums);
            gp_bf16_tile1(W, xh + ldx * 2 * GP_HALF_MR, ldx * 2, j, NULL, sums + GP_HALF_MR * 4);
            return;
        }
#endif
        if (half) gp_bf16_tile_half(W, xh, ldx * 2, j, pf, sums);
        else gp_bf16_tile(W, xh, ldx * 2, j, pf, sums);
        return;
    }
#endif
#if GP_MR == 6
    if (one_more) {
        gp_dot_tile_half(W, type, x, ldx, j, pf, sums);
        gp_dot_tile_one(W, type, x + ldx * GP_HALF_MR, ldx, j, NULL, sums + GP_HALF_MR * 4);
        return;
    }
#endif
    if (half) gp_dot_tile_half(W, type, x, ldx, j, pf, sums);
    else gp_dot_tile_full(W, type, x, ldx, j, pf, sums);
}

/* One row of x against row j of W (the rows of W after the last group of 4). */
GP_INLINE float gp_dot_row1(const gp_tensor *W, gpt_dtype type, const float *x, int j)
{
    int Kv = W->cols / GP_VL * GP_VL, k;
    const void *p0;
    gp_vf acc = GP_VZERO();
#if defined(GP_Q8_DOT) && !defined(GP_Q8_CHAINS)
    if (type == GP_Q8DOT) return gp_q8_row1(W, (const unsigned char *)(const void *)x, j);
#endif
#if defined(GP_BF16_DOT)
    if (type == GP_BF16DOT) return gp_bf16_row1(W, (const uint16_t *)(const void *)x, j);
#endif
    p0 = gp_w_row(W, type, j);
    for (k = 0; k < Kv; k += GP_VL) acc = GP_VFMA(GP_VLOAD(x + k), gp_w_load(W, type, p0, j, k), acc);
    return gp_dot_tail(W, x, j, gp_vsum1(acc));
}

/* One row of x against rows j .. j+3 of W, streaming them from memory
 * (side by side, each line prefetched, for the types whose one chain is
 * too slow to keep up with the memory). */
GP_INLINE void gp_dot_row4(const gp_tensor *W, gpt_dtype type, const float *x, int j, float *sums)
{
    int Kv = W->cols / GP_VL * GP_VL, k, b, line = (int)(64 / gp_w_elem_size(type));
    size_t es = gp_w_elem_size(type);
    const void *p0, *p1, *p2, *p3;
    gp_vf a0 = GP_VZERO(), a1 = GP_VZERO(), a2 = GP_VZERO(), a3 = GP_VZERO();
#if defined(GP_Q8_DOT) && !defined(GP_Q8_CHAINS)
    if (type == GP_Q8DOT) {
        gp_q8_tile1(W, (const unsigned char *)(const void *)x, 0, j, NULL, 1, sums);
        return;
    }
#endif
#if defined(GP_BF16_DOT)
    /* bf16 with vdpbf16ps: a pair of rows, two chains side by side from
     * one stream, then the next pair. On Zen 4 one row at a time from the
     * checkpoint's rows read GPT-2 XL at 0.78-0.80 of a core's bandwidth
     * (one chain of vdpbf16ps), pairs at 0.90-0.91; 4 rows' chains from one
     * stream were as fast there, but two threads decoded 124M 1-10% slower. */
    if (type == GP_BF16DOT) {
        gp_bf16_row2(W, (const uint16_t *)(const void *)x, j, sums);
        gp_bf16_row2(W, (const uint16_t *)(const void *)x, j + 2, sums + 2);
        return;
    }
#endif
#if defined(GP_AVX2)
    /* f32 on AVX2: the 4 rows one after the other, without software
     * prefetches: one stream of addresses, which the hardware prefetchers
     * follow to a core's whole bandwidth (one thread decoded 17-28% faster
     * than 4 rows side by side with prefetches 16 KB ahead). f16 on AVX2
     * was 13% slower so: its widening makes one chain too slow to keep up
     * with the memory. The same chains as the tiles'. */
    if (type == GPT_DTYPE_F32) {
        for (b = 0; b < 4; b++) sums[b] = gp_dot_row1(W, type, x, j + b);
        return;
    }
#endif
    p0 = gp_w_row(W, type, j);
    p1 = gp_w_row(W, type, j + 1);
    p2 = gp_w_row(W, type, j + 2);
    p3 = gp_w_row(W, type, j + 3);
    for (k = 0; k < Kv; k += GP_VL) {
        gp_vf xv = GP_VLOAD(x + k);
        if (k % line == 0) {
            GP_PREFETCH_L2((const char *)p0 + (size_t)k * es);
            GP_PREFETCH_L2((const char *)p1 + (size_t)k * es);
            GP_PREFETCH_L2((const char *)p2 + (size_t)k * es);
            GP_PREFETCH_L2((const char *)p3 + (size_t)k * es);
        }
        a0 = GP_VFMA(xv, gp_w_load(W, type, p0, j, k), a0);
        a1 = GP_VFMA(xv, gp_w_load(W, type, p1, j + 1, k), a1);
        a2 = GP_VFMA(xv, gp_w_load(W, type, p2, j + 2, k), a2);
        a3 = GP_VFMA(xv, gp_w_load(W, type, p3, j + 3, k), a3);
    }
    gp_vsum4(a0, a1, a2, a3, sums);
    for (b = 0; b < 4; b++) sums[b] = gp_dot_tail(W, x, j + b, sums[b]);
}

/* Rows r .. r+mr-1 of y for W rows j .. j+3: sums[a * 4 + b] (+ bias)
 * (+ y), as gp_store_sum. A row's 4 outputs are read, then written, so
 * that the compiler makes them one vector (one by one, storing took 3% of
 * a bf16 prompt's time). */
static void gp_store_tile(float *y, int ldy, int r, int mr, int j, const float *sums, const float *bias,
                          int accumulate)
{
    float add[4] = {0.0f, 0.0f, 0.0f, 0.0f}, v[4];
    int a, b;
    if (bias)
        for (b = 0; b < 4; b++) add[b] = bias[j + b];
    for (a = 0; a < mr; a++) {
        float *yr = y + (size_t)(r + a) * ldy + j;
        for (b = 0; b < 4; b++) v[b] = sums[a * 4 + b] + add[b];
        if (accumulate)
            for (b = 0; b < 4; b++) v[b] = yr[b] + v[b];
        for (b = 0; b < 4; b++) yr[b] = v[b];
    }
}

/* W rows jb .. je-1 against rows r0 .. r1-1 of X, tile by tile (a group of
 * 4 rows of W meets all of them while it is in L1); pf, if any, brings in
 * what comes next. */
GP_INLINE void gp_dot_block(const gp_tensor *W, gpt_dtype type, const float *X, int ldx, int n, int jb, int je,
                            int r0, int r1, float *y, int ldy, const float *bias, int accumulate, gp_prefetch *pf)
{
    float sums[GP_MR * 4];
    int r, j, mr;
    (void)n;
    for (j = jb; j + 4 <= je; j += 4)
        for (r = r0; r < r1; r += GP_MR) {
            mr = r1 - r < GP_MR ? r1 - r : GP_MR;
            gp_dot_tile(W, type, X + (size_t)r * ldx, (size_t)ldx, j, mr, pf, sums);
            gp_store_tile(y, ldy, r, mr, j, sums, bias, accumulate);
        }
    for (; j < je; j++)
        for (r = r0; r < r1; r++)
            gp_store_sum(y + (size_t)r * ldy + j, gp_dot_row1(W, type, X + (size_t)r * ldx, j), bias, j, accumulate);
}

/* Where W's row `row` starts (q8_0: its quants, packed if they are; its
 * scales are a sixteenth of that and come with the hardware prefetcher). */
static const char *gp_w_bytes(const gp_tensor *W, int row)
{
    size_t es = W->type == GPT_DTYPE_F32 ? 4 : W->type == GPT_DTYPE_Q8_0 ? 1 : 2;
#if !defined(GP_Q8_CHAINS)
    if (W->type == GPT_DTYPE_Q8_0 && W->qp) return (const char *)W->qp + (size_t)row * gp_q8_npad(W->nb) * 32;
#endif
    if (W->type == GPT_DTYPE_Q8_0) return (const char *)W->q + (size_t)row * W->nb * 32;
#if defined(GP_BF16_PAIRS)
    if (W->pairs) return (const char *)(const void *)gp_bf16_row(W, row);
#endif
    return (const char *)W->data + (size_t)row * W->cols * es;
}

/*
 * For X rows r < n and W rows j in [j0, j1): y[r][j] (+)= dot(X[r], W[j]) +
 * bias[j]. One row (every decoded token) streams W four rows at a time
 * (side by side, or one after the other: gp_dot_row4). A
 * few rows (a batch of decoded tokens) keep X in cache and take W in
 * chunks of GP_CHUNK_ROWS rows, each group of 4 rows meeting every row of X
 * while in L1, the next chunk being prefetched meanwhile. Many rows
 * (prompts) walk W in panels that stay in L2 while blocks of GP_MR rows of
 * X pass over them.
 */
#define GP_FEW_ROWS 48
#define GP_CHUNK_ROWS 16
GP_INLINE void gp_dot_body(const gp_tensor *W, gpt_dtype type, const float *X, int ldx, int n, int j0, int j1,
                           float *y, int ldy, const float *bias, int accumulate)
{
    float sums[4];
    int panel, jb, r, j, b;
    if (n == 1) {
        for (j = j0; j + 4 <= j1; j += 4) {
            gp_dot_row4(W, type, X, j, sums);
            for (b = 0; b < 4; b++) gp_store_sum(y + j + b, sums[b], bias, j + b, accumulate);
        }
        for (; j < j1; j++) gp_store_sum(y + j, gp_dot_row1(W, type, X, j), bias, j, accumulate);
        return;
    }
    if (n <= GP_FEW_ROWS) {
        /* the k steps of a chunk's tiles, over which to spread the next chunk's lines */
        size_t steps = (size_t)(GP_CHUNK_ROWS / 4) * (size_t)((n + GP_MR - 1) / GP_MR) * (size_t)gp_k_steps(W, type);
        gp_prefetch pf;
        for (jb = j0; jb < j1; jb += GP_CHUNK_ROWS) {
            int je = jb + GP_CHUNK_ROWS < j1 ? jb + GP_CHUNK_ROWS : j1;
            int jn = je + GP_CHUNK_ROWS < j1 ? je + GP_CHUNK_ROWS : j1;
            pf.at = gp_w_bytes(W, je);
            pf.end = gp_w_bytes(W, jn);
            pf.lines = steps ? (int)(((size_t)(pf.end - pf.at) / 64 + steps - 1) / steps) : 1;
            gp_dot_block(W, type, X, ldx, n, jb, je, 0, n, y, ldy, bias, accumulate, &pf);
        }
        return;
    }
    panel = (int)((256 * 1024) / ((size_t)W->cols * gp_w_elem_size(type) + 1)) / 4 * 4;
    if (panel < 4) panel = 4;
    for (jb = j0; jb < j1; jb += panel) {
        int je = jb + panel < j1 ? jb + panel : j1;
        for (r = 0; r < n; r += GP_MR)
            gp_dot_block(W, type, X, ldx, n, jb, je, r, r + GP_MR < n ? r + GP_MR : n, y, ldy, bias, accumulate, NULL);
    }
}

#if defined(GP_F32_CHAINS)
static void gp_group_linear_f32(const gp_tensor *W, const float *bias, const float *x, int ldx, int n, int j0, int j1,
                                float *y, int ldy, int accumulate, float *scratch);
static void gp_group_linear_f16(const gp_tensor *W, const float *bias, const float *x, int ldx, int n, int j0, int j1,
                                float *y, int ldy, int accumulate, float *scratch);
#if !defined(GP_BF16_DOT)
static void gp_group_linear_bf16(const gp_tensor *W, const float *bias, const float *x, int ldx, int n, int j0, int j1,
                                 float *y, int ldy, int accumulate, float *scratch);
#endif
#endif

#if defined(GP_BF16_AMX)
/* The tiles' shapes (palette 1): 0 and 1 the sums of up to 16 rows of x by
 * 16 outputs (f32); 2 a block of 32 of x's rounded values for those rows;
 * 3 and 4 a block of two groups of W (gp_amx_pack). */
typedef struct gp_amx_config {
    unsigned char palette, start_row, reserved[14];
    uint16_t colsb[16];
    unsigned char rows[16];
} gp_amx_config;

static void gp_amx_configure(int rows)
{
    gp_amx_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    cfg.rows[0] = cfg.rows[1] = cfg.rows[2] = (unsigned char)rows;
    cfg.colsb[0] = cfg.colsb[1] = cfg.colsb[2] = 64;
    cfg.rows[3] = cfg.rows[4] = 16;
    cfg.colsb[3] = cfg.colsb[4] = 64;
    _tile_loadconfig(&cfg);
}

/* Rows 0 .. n-1 of x (rounded to bf16, ldb bytes apart) against rows j0 ..
 * j1-1 of W on AMX: two groups of 16 rows of W at a time meet every 16
 * rows of x while they are in cache; each output's sum runs over the
 * blocks of 32 in order in the tile. A piece of W's rows that starts or
 * ends inside a group computes the whole group and stores its own. */
static void gp_bf16_amx(const gp_tensor *W, const float *bias, const unsigned char *X, size_t ldb, int n, int j0,
                        int j1, float *y, int ldy, int accumulate)
{
    float sums[2][16][16];
    int nb = (W->cols + 31) / 32, g, r, b, i, h, configured = 0;
    for (g = j0 / 16; g * 16 < j1; g += 2) {
        int g1 = (g + 1) * 16 < j1 ? g + 1 : g; /* past the piece: computed, not stored */
        const uint16_t *w0 = W->ap + (size_t)g * nb * 512, *w1 = W->ap + (size_t)g1 * nb * 512;
        for (r = 0; r < n; r += 16) {
            int m = n - r < 16 ? n - r : 16;
            const unsigned char *xr = X + (size_t)r * ldb;
            if (m != configured) {
                gp_amx_configure(m);
                configured = m;
            }
            _tile_zero(0);
            _tile_zero(1);
            for (b = 0; b < nb; b++) {
                _tile_loadd(2, xr + (size_t)b * 64, (long)ldb);
                _tile_loadd(3, w0 + (size_t)b * 512, 64);
                _tile_loadd(4, w1 + (size_t)b * 512, 64);
                _tile_dpbf16ps(0, 2, 3);
                _tile_dpbf16ps(1, 2, 4);
            }
            _tile_stored(0, sums[0], 64);
            _tile_stored(1, sums[1], 64);
            for (h = 0; h < 2 && (g + h) * 16 < j1; h++)
                for (i = 0; i < m; i++)
                    gp_chain_store_range(y + (size_t)(r + i) * ldy + (g + h) * 16, _mm512_loadu_ps(sums[h][i]),
                                         bias ? bias + (g + h) * 16 : NULL, j0 - (g + h) * 16, j1 - (g + h) * 16,
                                         accumulate);
        }
    }
    if (configured) _tile_release();
}
#endif

/* The linear layer with the SIMD kernels, one instance per weight type. */
static void gp_linear_simd(const gp_tensor *W, const float *bias, const float *x, int ldx, int n, int j0, int j1,
                           float *y, int ldy, int accumulate, float *scratch)
{
    (void)scratch;
    (void)x;
    switch (W->type) {
#if defined(GP_F32_CHAINS)
    case GPT_DTYPE_F32: gp_group_linear_f32(W, bias, x, ldx, n, j0, j1, y, ldy, accumulate, scratch); break;
    case GPT_DTYPE_F16: gp_group_linear_f16(W, bias, x, ldx, n, j0, j1, y, ldy, accumulate, scratch); break;
#else
    case GPT_DTYPE_F32: gp_dot_body(W, GPT_DTYPE_F32, x, ldx, n, j0, j1, y, ldy, bias, accumulate); break;
    case GPT_DTYPE_F16: gp_dot_body(W, GPT_DTYPE_F16, x, ldx, n, j0, j1, y, ldy, bias, accumulate); break;
#endif
#if defined(GP_BF16_DOT)
    case GPT_DTYPE_BF16:
#if defined(GP_BF16_AMX)
        if (W->ap) {
            gp_bf16_amx(W, bias, (const unsigned char *)(const void *)scratch, gp_prep_bytes(GP_PREP_BF16, W->cols), n, j0,
                        j1, y, ldy, accumulate);
            break;
        }
#endif
        gp_dot_body(W, GP_BF16DOT, scratch, (int)(gp_prep_bytes(GP_PREP_BF16, W->cols) / 4), n, j0, j1, y, ldy, bias,
                    accumulate);
        break;
#elif defined(GP_F32_CHAINS)
    case GPT_DTYPE_BF16: gp_group_linear_bf16(W, bias, x, ldx, n, j0, j1, y, ldy, accumulate, scratch); break;
#if defined(GP_Q8_CHAINS)
    default: (void)gp_dot_body; break; /* every type takes chains in this build (AVX-512 with VNNI, no BF16) */
#endif
#else
    case GPT_DTYPE_BF16: gp_dot_body(W, GPT_DTYPE_BF16, x, ldx, n, j0, j1, y, ldy, bias, accumulate); break;
#endif
#if defined(GP_Q8_CHAINS)
    case GPT_DTYPE_Q8_0:
        gp_q8_chains(W, bias, (const unsigned char *)(const void *)scratch, gp_prep_bytes(GP_PREP_Q8, W->cols), n, j0,
                     j1, y, ldy, accumulate);
        break;
#elif defined(GP_Q8_DOT)
    case GPT_DTYPE_Q8_0:
        gp_dot_body(W, GP_Q8DOT, scratch, (int)(gp_prep_bytes(GP_PREP_Q8, W->cols) / 4), n, j0, j1, y, ldy, bias,
                    accumulate);
        break;
#else
    case GPT_DTYPE_Q8_0: gp_dot_body(W, GPT_DTYPE_Q8_0, x, ldx, n, j0, j1, y, ldy, bias, accumulate); break;
#endif
    }
}

/* ---- 10.6 outer products over panels of 64 outputs ---- */
/*
 * y[0..nj) = (from_y ? y : 0) + sum_k x[k] * panel[k][0..nj), the panel's
 * rows being 64 values: each output is one chain of FMAs over k, continued
 * from y when from_y (so a sum split across calls, a page at a time, is the
 * same sum). Where next is not NULL, the
 * panel of the same shape there is prefetched into L2, a row of it a step:
 * a sequence's KV pages lie apart, where the hardware's prefetchers do not
 * follow, and a query's attention reads them one after another.
 */
/* A row's 64 outputs are taken 4 vectors at a time (every output on
 * AVX-512, half of them on AVX2, a quarter on NEON), in accumulators named
 * so that they stay in registers: as an array, GCC kept them on the stack,
 * a store and a reload every step, and a prompt's attention was 2-3%
 * slower. The panel holds floats, or halves (f16, the f16 KV cache)
 * widened in registers; f16 is a constant where this is inlined. */
#define GP_OP_PASS (4 * GP_VL)
GP_INLINE gp_vf gp_panel_load(const unsigned char *row, int f16, int at)
{
    if (f16) return GP_VLOAD_F16((const uint16_t *)(const void *)row + at);
    return GP_VLOAD((const float *)(const void *)row + at);
}
GP_INLINE void gp_op_row_any(const float *x, const unsigned char *panel, int f16, int kc, float *y, int nj,
                             int from_y, const unsigned char *next)
{
    size_t row_bytes = f16 ? 128 : 256, line;
    float tmp[64];
    int k, pass, jj;
    for (jj = 0; jj < 64; jj++) tmp[jj] = from_y && jj < nj ? y[jj] : 0.0f;
    for (pass = 0; pass < 64; pass += GP_OP_PASS) {
        gp_vf a0 = GP_VLOAD(tmp + pass), a1 = GP_VLOAD(tmp + pass + GP_VL), a2 = GP_VLOAD(tmp + pass + 2 * GP_VL),
              a3 = GP_VLOAD(tmp + pass + 3 * GP_VL);
        for (k = 0; k < kc; k++) {
            gp_vf b = GP_VSET1(x[k]);
            const unsigned char *p = panel + (size_t)k * row_bytes;
            for (line = 0; next && pass == 0 && line < row_bytes; line += 64)
                GP_PREFETCH_L2_AT(next, (size_t)k * row_bytes + line);
            a0 = GP_VFMA(b, gp_panel_load(p, f16, pass), a0);
            a1 = GP_VFMA(b, gp_panel_load(p, f16, pass + GP_VL), a1);
            a2 = GP_VFMA(b, gp_panel_load(p, f16, pass + 2 * GP_VL), a2);
            a3 = GP_VFMA(b, gp_panel_load(p, f16, pass + 3 * GP_VL), a3);
        }
        GP_VSTORE(tmp + pass, a0);
        GP_VSTORE(tmp + pass + GP_VL, a1);
        GP_VSTORE(tmp + pass + 2 * GP_VL, a2);
        GP_VSTORE(tmp + pass + 3 * GP_VL, a3);
    }
    for (jj = 0; jj < nj; jj++) y[jj] = tmp[jj];
}
static void gp_op_row(const float *x, const float *panel, int kc, float *y, int nj, int from_y,
                      const unsigned char *next)
{
    gp_op_row_any(x, (const unsigned char *)(const void *)panel, 0, kc, y, nj, from_y, next);
}
static void gp_op_row_f16(const float *x, const uint16_t *panel, int kc, float *y, int nj, int from_y,
                          const unsigned char *next)
{
    gp_op_row_any(x, (const unsigned char *)(const void *)panel, 1, kc, y, nj, from_y, next);
}

#if defined(GP_AVX512)
/* Six rows at once on AVX-512: a 6 x 64 tile of y in 24 registers, each
 * panel row loaded once for the six. Each output is the same chain as
 * gp_op_row's. */
#define GP_PK_DECL(r) __m512 c##r##0, c##r##1, c##r##2, c##r##3;
#define GP_PK_INIT(r)                                                                                      \
    if (from_y) {                                                                                          \
        c##r##0 = _mm512_maskz_loadu_ps(m0, y + (size_t)(r) * ldy);                                        \
        c##r##1 = _mm512_maskz_loadu_ps(m1, y + (size_t)(r) * ldy + 16);                                   \
        c##r##2 = _mm512_maskz_loadu_ps(m2, y + (size_t)(r) * ldy + 32);                                   \
        c##r##3 = _mm512_maskz_loadu_ps(m3, y + (size_t)(r) * ldy + 48);                                   \
    } else {                                                                                               \
        c##r##0 = c##r##1 = c##r##2 = c##r##3 = _mm512_setzero_ps();                                       \
    }
#define GP_PK_FMA(r)                                                                                       \
    {                                                                                                      \
        __m512 xb = _mm512_set1_ps(x[(size_t)(r) * ldx + k]);                                              \
        GP_KEEP_IN_REG(xb);                                                                                \
        c##r##0 = _mm512_fmadd_ps(xb, b0, c##r##0);                                                        \
        c##r##1 = _mm512_fmadd_ps(xb, b1, c##r##1);                                                        \
        c##r##2 = _mm512_fmadd_ps(xb, b2, c##r##2);                                                        \
        c##r##3 = _mm512_fmadd_ps(xb, b3, c##r##3);                                                        \
    }
#define GP_PK_STORE(r)                                                                                     \
    _mm512_mask_storeu_ps(y + (size_t)(r) * ldy, m0, c##r##0);                                             \
    _mm512_mask_storeu_ps(y + (size_t)(r) * ldy + 16, m1, c##r##1);                                        \
    _mm512_mask_storeu_ps(y + (size_t)(r) * ldy + 32, m2, c##r##2);                                        \
    _mm512_mask_storeu_ps(y + (size_t)(r) * ldy + 48, m3, c##r##3);

/* y[0..6)[0..nj) = (from_y ? y : 0) + x[0..6)[0..kc) . panel */
static void gp_op_tile6(const float *x, int ldx, const float *panel, int kc, float *y, int ldy, int nj, int from_y)
{
    __mmask16 m0 = (__mmask16)(nj >= 16 ? 0xFFFF : (1u << nj) - 1);
    __mmask16 m1 = (__mmask16)(nj >= 32 ? 0xFFFF : nj <= 16 ? 0 : (1u << (nj - 16)) - 1);
    __mmask16 m2 = (__mmask16)(nj >= 48 ? 0xFFFF : nj <= 32 ? 0 : (1u << (nj - 32)) - 1);
    __mmask16 m3 = (__mmask16)(nj >= 64 ? 0xFFFF : nj <= 48 ? 0 : (1u << (nj - 48)) - 1);
    int k;
    GP_TILE_ROWS(GP_PK_DECL)
    GP_TILE_ROWS(GP_PK_INIT)
    for (k = 0; k < kc; k++) {
        const float *p = panel + (size_t)k * 64;
        __m512 b0 = _mm512_loadu_ps(p), b1 = _mm512_loadu_ps(p + 16), b2 = _mm512_loadu_ps(p + 32),
               b3 = _mm512_loadu_ps(p + 48);
        GP_TILE_ROWS(GP_PK_FMA)
    }
    GP_TILE_ROWS(GP_PK_STORE)
}
#endif

/* y[rows][0..nj) (+)= x[rows][0..kc) . panel[kc][64], row by row (six at a
 * time on AVX-512). */
static void gp_op_rows(const float *x, int ldx, int rows, const float *panel, int kc, float *y, int ldy, int nj,
                       int from_y)
{
    int r = 0;
#if defined(GP_AVX512)
    for (; r + 6 <= rows; r += 6) gp_op_tile6(x + (size_t)r * ldx, ldx, panel, kc, y + (size_t)r * ldy, ldy, nj, from_y);
#endif
    for (; r < rows; r++) gp_op_row(x + (size_t)r * ldx, panel, kc, y + (size_t)r * ldy, nj, from_y, NULL);
}

#if defined(GP_F32_CHAINS)
/*
 * The linear layer of f32, f16 and bf16 weights on AVX-512 (bf16 where it
 * takes no dot products): y[r][j] = x[r] . W[j] + bias[j] (+ y[r][j]) where
 * the product is one chain of FMAs, k = 0 first, in a lane of its own. So a
 * row's outputs do not depend on the rows beside it (batch invariance) and
 * no lane sums are needed. The chains need W by columns, 16 outputs side by
 * side, so W is read from a copy packed at load time by groups of 16 rows,
 * k-major (gp_group_pack): one vector load gives 16 outputs' weights at k.
 * - one row of x (every decoded token): one stream of lines, one f32 group
 *   or one f16/bf16 pair of groups at a time (gp_group_row);
 * - up to GP_CHAIN_FEW (16) rows (batches of sequences): each load of a
 *   group's weights feeds every row's chain, the accumulators in registers
 *   (a pair's groups in turn over blocks of k);
 * - more rows (prompts): 4 groups are copied into a panel of 64 outputs
 *   (gp_op_tile6's layout, K x 64, in the thread's scratch) that tiles of up
 *   to 6 rows of x then use from L2, each panel row loaded once per tile and
 *   each x[r][k] broadcast: 24 FMAs for 4 loads and 6 broadcasts.
 * Until the eleventh round (docs/PERFORMANCE.md) f32 weights were read
 * where they lie in the checkpoint and transposed in registers, 16 x 16 at
 * a time; on Zen 4 the packed copy decoded one row 12-18% faster and 16
 * rows 30-40% faster (the transposes' shuffles and the accumulators that
 * did not fit in registers beside them cost a quarter of the FMAs' time).
 */

/* How far ahead the chains prefetch a group's weights into L2: 2 to 16
 * rows of x (8 KB: with 2 KB a quarter of the time waited on the load;
 * 4 and 16 KB were no better), the panels of prompts (4 KB: without, one
 * thread's prompts were 7-10% slower). One row reads one stream and
 * prefetches nothing. */
#ifndef GP_FEW_AHEAD
#define GP_FEW_AHEAD 8192
#endif
#ifndef GP_PANEL_AHEAD
#define GP_PANEL_AHEAD 4096
#endif
/* 2 to 16 rows of x take a pair's two groups in turn over this many k
 * (4 KB of f16: in L1 when the second group reads its halves); 128 was no
 * faster */
#define GP_PAIR_BLOCK 64

/* The 16 weights of a packed group at column k, as floats: one line of
 * f32, half a line of f16 or bf16. */
GP_INLINE __m512 gp_group_load(const unsigned char *group, gpt_dtype type, int k)
{
    const unsigned char *p = group + (size_t)k * 64;
    if (type == GPT_DTYPE_F32) return _mm512_loadu_ps((const float *)(const void *)p);
    return type == GPT_DTYPE_F16 ? GP_VLOAD_F16(p) : GP_VLOAD_BF16(p);
}

/* Group g of W's packed copy (gp_group_pack). */
GP_INLINE const unsigned char *gp_group_at(const gp_tensor *W, gpt_dtype type, int g)
{
    if (type == GPT_DTYPE_F32) return W->groups + (size_t)g * W->cols * 64;
    return W->groups + (size_t)(g / 2) * W->cols * 64 + (size_t)(g % 2) * 32;
}

/* The chains of `rows` rows of x (a constant where this is inlined, so that
 * the accumulators stay in registers) over columns k0 .. k1-1 of one group,
 * going on from acc: xt holds x transposed, xt[k][row], so that a step's
 * broadcasts come from one line. A pair's second group prefetches nothing:
 * its lines are the first's. */
#define GP_GR_DECL(q) __m512 a##q = (q) < rows ? acc[q] : _mm512_setzero_ps();
#define GP_GR_FMA(q)                                                                                       \
    if ((q) < rows) a##q = _mm512_fmadd_ps(_mm512_set1_ps(xk[q]), w, a##q);
#define GP_GR_PUT(q)                                                                                       \
    if ((q) < rows) acc[q] = a##q;
GP_INLINE void gp_group_rows(const unsigned char *group, gpt_dtype type, int k0, int k1, const float *xt, int rows,
                             __m512 *acc, int prefetch)
{
    int k;
    GP_ROWS16(GP_GR_DECL)
    for (k = k0; k < k1; k++) {
        const float *xk = xt + (size_t)k * GP_CHAIN_FEW;
        __m512 w = gp_group_load(group, type, k);
        if (prefetch) GP_PREFETCH_L2_AT(group + (size_t)k * 64, GP_FEW_AHEAD);
        GP_ROWS16(GP_GR_FMA)
    }
    GP_ROWS16(GP_GR_PUT)
}

/* Columns k .. k+kn-1 (kn <= 16) of a packed group, widened: r[i] = the
 * group's 16 values at k + i. */
GP_INLINE void gp_group_block(const unsigned char *group, gpt_dtype type, int k, int kn, __m512 *r)
{
    int i;
    for (i = 0; i < kn; i++) r[i] = gp_group_load(group, type, k + i);
}

/* A tile of ROWS rows of x against a panel: the chains as in gp_op_tile6,
 * stored with the bias by gp_chain_store_range. */
#define GP_CH_ZERO(r) c##r##0 = c##r##1 = c##r##2 = c##r##3 = _mm512_setzero_ps();
#define GP_CH_STORE1(r, v)                                                                                 \
    if (nj > 16 * (v))                                                                                     \
        gp_chain_store_range(y + (size_t)(r) * ldy + 16 * (v), c##r##v, bias ? bias + 16 * (v) : NULL, lo - 16 * (v), \
                             nj - 16 * (v), accumulate);
#define GP_CH_STORE(r) GP_CH_STORE1(r, 0) GP_CH_STORE1(r, 1) GP_CH_STORE1(r, 2) GP_CH_STORE1(r, 3)
/* (outputs lo .. nj-1 of the panel stored; lo > 0 where a piece of W's
 * rows starts inside a packed group) */
#define GP_CHAIN_TILE(name, ROWS)                                                                          \
    static void name(const float *x, int ldx, const float *panel, int K, float *y, int ldy, int lo, int nj, \
                     const float *bias, int accumulate)                                                    \
    {                                                                                                      \
        int k;                                                                                             \
        ROWS(GP_PK_DECL)                                                                                   \
        ROWS(GP_CH_ZERO)                                                                                   \
        for (k = 0; k < K; k++) {                                                                          \
            const float *p = panel + (size_t)k * 64;                                                       \
            __m512 b0 = _mm512_loadu_ps(p), b1 = _mm512_loadu_ps(p + 16), b2 = _mm512_loadu_ps(p + 32),    \
                   b3 = _mm512_loadu_ps(p + 48);                                                           \
            ROWS(GP_PK_FMA)                                                                                \
        }                                                                                                  \
        ROWS(GP_CH_STORE)                                                                                  \
    }
GP_CHAIN_TILE(gp_chain_tile1, GP_ROWS1)
GP_CHAIN_TILE(gp_chain_tile2, GP_ROWS2)
GP_CHAIN_TILE(gp_chain_tile3, GP_ROWS3)
GP_CHAIN_TILE(gp_chain_tile4, GP_ROWS4)
GP_CHAIN_TILE(gp_chain_tile5, GP_ROWS5)
GP_CHAIN_TILE(gp_chain_tile6, GP_TILE_ROWS)

typedef void (*gp_chain_tile_fn)(const float *, int, const float *, int, float *, int, int, int, const float *, int);
static const gp_chain_tile_fn gp_chain_tiles[7] = {NULL,           gp_chain_tile1, gp_chain_tile2, gp_chain_tile3,
                                                   gp_chain_tile4, gp_chain_tile5, gp_chain_tile6};

/* One row of x against group g of W's packed copy and, if ng is 2 (a
 * constant where this is inlined), group g + 1, the other half of its
 * pair's lines: one stream either way. Stores outputs j0 .. j1-1. */
GP_INLINE void gp_group_row(const gp_tensor *W, gpt_dtype type, const float *bias, const float *x, int g, int ng,
                            int j0, int j1, float *y, int accumulate)
{
    int K = W->cols, k, i;
    const unsigned char *gr[2];
    __m512 c[2];
    for (i = 0; i < ng; i++) {
        gr[i] = gp_group_at(W, type, g + i);
        c[i] = _mm512_setzero_ps();
    }
    for (k = 0; k < K; k++) {
        __m512 xb = _mm512_set1_ps(x[k]);
        for (i = 0; i < ng; i++) c[i] = _mm512_fmadd_ps(xb, gp_group_load(gr[i], type, k), c[i]);
    }
    for (i = 0; i < ng; i++)
        gp_chain_store_range(y + (g + i) * 16, c[i], bias ? bias + (g + i) * 16 : NULL, j0 - (g + i) * 16,
                             j1 - (g + i) * 16, accumulate);
}

/* How many groups from group g a piece ending at row j1 takes at once: the
 * two of an f16 or bf16 pair where the piece holds both, else one. */
GP_INLINE int gp_groups_taken(gpt_dtype type, int g, int j1)
{
    return type != GPT_DTYPE_F32 && !(g & 1) && (g + 1) * 16 < j1 ? 2 : 1;
}

/* The chains over W's packed groups (type: f32, f16 or bf16, a constant
 * where this is inlined). A piece of rows j0 .. j1-1 computes the whole
 * groups it touches and stores its own outputs. */
GP_INLINE void gp_group_linear(const gp_tensor *W, gpt_dtype type, const float *bias, const float *x, int ldx, int n,
                               int j0, int j1, float *y, int ldy, int accumulate, float *scratch)
{
    int K = W->cols, g, k, row, r, gb, i, ng;
    __m512 blk[16];
    if (n == 1) {
        /* every decoded token: one line at a time, front to back, so that
         * the core reads one stream, which its prefetchers follow to its
         * whole bandwidth without software prefetches. f32: one group, one
         * chain of FMAs (4 cycles each for 64 bytes, twice what a core
         * reads; one thread decoded 5-7% faster than with 4 groups side by
         * side, two 7%). f16 and bf16: the two groups of a pair, whose
         * lines hold both (one chain would take 4 cycles for 32 bytes,
         * short of the memory; one thread decoded 10-15% faster than with 8
         * groups side by side from 8 streams, prefetched). */
        for (g = j0 / 16; g * 16 < j1; g += ng) {
            ng = gp_groups_taken(type, g, j1);
            if (ng == 2) gp_group_row(W, type, bias, x, g, 2, j0, j1, y, accumulate);
            else gp_group_row(W, type, bias, x, g, 1, j0, j1, y, accumulate);
        }
        return;
    }
    if (n <= GP_CHAIN_FEW) { /* x transposed in the scratch by gp_linear_prepare */
        __m512 acc2[2][GP_CHAIN_FEW];
        for (g = j0 / 16; g * 16 < j1; g += ng) {
            /* the two groups of a pair (f16, bf16) take turns over blocks
             * of GP_PAIR_BLOCK k, so that each line comes from memory once
             * and the other half from L1 */
            int kb, kstep = K;
            ng = gp_groups_taken(type, g, j1);
            if (ng == 2) kstep = GP_PAIR_BLOCK;
            for (i = 0; i < ng; i++)
                for (row = 0; row < n; row++) acc2[i][row] = _mm512_setzero_ps();
            for (kb = 0; kb < K; kb += kstep)
                for (i = 0; i < ng; i++) {
                    const unsigned char *group = gp_group_at(W, type, g + i);
                    int ke = K - kb < kstep ? K : kb + kstep;
                    switch (n) {
#define GP_GR_CASE(q)                                                                                      \
    case (q) + 1: gp_group_rows(group, type, kb, ke, scratch, (q) + 1, acc2[i], i == 0); break;
                        GP_ROWS16(GP_GR_CASE)
#undef GP_GR_CASE
                    }
                }
            for (i = 0; i < ng; i++)
                for (row = 0; row < n; row++)
                    gp_chain_store_range(y + (size_t)row * ldy + (g + i) * 16, acc2[i][row],
                                         bias ? bias + (g + i) * 16 : NULL, j0 - (g + i) * 16, j1 - (g + i) * 16,
                                         accumulate);
        }
        return;
    }
    for (gb = j0 / 16 * 16; gb < j1; gb += 64) {
        int nj = j1 - gb < 64 ? j1 - gb : 64;
        for (i = 0; i < 4; i++) { /* groups past the piece: zeros, computed and never stored */
            const unsigned char *group = 16 * i < nj ? gp_group_at(W, type, gb / 16 + i) : NULL;
            for (k = 0; k < K; k += 16) {
                int kn = K - k < 16 ? K - k : 16, c, line;
                if (group) {
                    for (line = 0; line < kn; line++)
                        GP_PREFETCH_L2_AT(group + (size_t)(k + line) * 64, GP_PANEL_AHEAD);
                    gp_group_block(group, type, k, kn, blk);
                } else
                    for (c = 0; c < kn; c++) blk[c] = _mm512_setzero_ps();
                for (c = 0; c < kn; c++) _mm512_storeu_ps(scratch + (size_t)(k + c) * 64 + 16 * i, blk[c]);
            }
        }
        for (r = 0; r < n; r += 6) {
            int mr = n - r < 6 ? n - r : 6;
            gp_chain_tiles[mr](x + (size_t)r * ldx, ldx, scratch, K, y + (size_t)r * ldy + gb, ldy, j0 - gb, nj,
                               bias ? bias + gb : NULL, accumulate);
        }
    }
}

static void gp_group_linear_f32(const gp_tensor *W, const float *bias, const float *x, int ldx, int n, int j0, int j1,
                                float *y, int ldy, int accumulate, float *scratch)
{
    gp_group_linear(W, GPT_DTYPE_F32, bias, x, ldx, n, j0, j1, y, ldy, accumulate, scratch);
}
static void gp_group_linear_f16(const gp_tensor *W, const float *bias, const float *x, int ldx, int n, int j0, int j1,
                                float *y, int ldy, int accumulate, float *scratch)
{
    gp_group_linear(W, GPT_DTYPE_F16, bias, x, ldx, n, j0, j1, y, ldy, accumulate, scratch);
}
#if !defined(GP_BF16_DOT)
static void gp_group_linear_bf16(const gp_tensor *W, const float *bias, const float *x, int ldx, int n, int j0, int j1,
                                 float *y, int ldy, int accumulate, float *scratch)
{
    gp_group_linear(W, GPT_DTYPE_BF16, bias, x, ldx, n, j0, j1, y, ldy, accumulate, scratch);
}
#endif
#endif /* GP_F32_CHAINS */

/* n halves to floats. */
static void gp_f16_row_to_f32(const uint16_t *src, float *dst, size_t n)
{
    size_t i = 0;
    for (; i + GP_VL <= n; i += GP_VL) GP_VSTORE(dst + i, GP_VLOAD_F16(src + i));
    for (; i < n; i++) dst[i] = gpt__f16_to_f32(src[i]);
}

/* y[rows][0..nj) (+)= x[rows][0..kc) . panel[kc][64], where the panel is
 * f32, or f16 (kv_f16) widened in registers (one row) or 64 panel rows at a
 * time into conv (64 x 64). One row (every decoded token) prefetches the
 * panel at next, if any: spread over the steps, the next page's keys or
 * values made decoding at 16 sequences 3-6% faster and after a 512-token
 * prompt up to 15% (q8_0); the whole page at once, before the steps, made
 * no difference that could be seen. */
static void gp_op_rows_kv(const float *x, int ldx, int rows, const unsigned char *panel, int kv_f16, int kc, float *y,
                          int ldy, int nj, int from_y, float *conv, const unsigned char *next)
{
    int k0;
    if (!kv_f16 && rows == 1) {
        gp_op_row(x, (const float *)(const void *)panel, kc, y, nj, from_y, next);
        return;
    }
    if (!kv_f16) {
        gp_op_rows(x, ldx, rows, (const float *)(const void *)panel, kc, y, ldy, nj, from_y);
        return;
    }
    if (rows == 1) {
        gp_op_row_f16(x, (const uint16_t *)(const void *)panel, kc, y, nj, from_y, next);
        return;
    }
    for (k0 = 0; k0 < kc; k0 += GP_PAGE) {
        int n = kc - k0 < GP_PAGE ? kc - k0 : GP_PAGE;
        gp_f16_row_to_f32((const uint16_t *)(const void *)panel + (size_t)k0 * GP_PAGE, conv, (size_t)n * GP_PAGE);
        gp_op_rows(x + k0, ldx, rows, conv, n, y, ldy, nj, from_y || k0 > 0);
    }
}

/* ---- 10.7 attention ---- */

/* out[rows][0..D) (+)= p[rows][a..b) . V[a..b): the probabilities of keys a
 * .. b-1 times their values, page by page, continuing each output's chain. */
static void gp_attend_values(const gp_attention_args *a, const float *p, int lds, int rows, float *out, int from,
                             int to, int from_y, float *conv)
{
    size_t es = a->kv_f16 ? 2 : 4;
    int k0, db;
    for (k0 = from; k0 < to;) {
        int page = k0 / GP_PAGE, k1 = (page + 1) * GP_PAGE < to ? (page + 1) * GP_PAGE : to;
        const unsigned char *values = a->v_base + (size_t)a->pages[page] * a->page_bytes;
        const unsigned char *next = k1 < to ? a->v_base + (size_t)a->pages[page + 1] * a->page_bytes : NULL;
        for (db = 0; db * GP_PAGE < a->D; db++) {
            int nj = a->D - db * GP_PAGE < GP_PAGE ? a->D - db * GP_PAGE : GP_PAGE;
            gp_op_rows_kv(p + k0, lds, rows, values + es * ((size_t)db * GP_PAGE * GP_PAGE + (size_t)(k0 % GP_PAGE) * GP_PAGE),
                          a->kv_f16, k1 - k0, out + (size_t)db * GP_PAGE, a->ldo, nj, from_y || k0 > from, conv,
                          next ? next + es * (size_t)db * GP_PAGE * GP_PAGE : NULL);
        }
        k0 = k1;
    }
}

/* Causal attention for `rows` consecutive queries of one head: query i sees
 * keys 0 .. first_keys + i - 1. Scores are q . K^T over the key pages, then
 * softmax, then P . V over the value pages; both are outer products with
 * the pages as they are stored. Each query's numbers are its own: the keys
 * all queries see are summed for all at once, and each query's later keys
 * one query at a time, in the same order as a query alone. scratch: rows
 * rows of lds scores, then GP_PAGE^2 floats for widening f16 panels. */
static void gp_attention_simd(const gp_attention_args *a, float *scratch)
{
    int n_keys = a->first_keys + a->rows - 1, i, j, kb, D = a->D, lds = a->lds;
    size_t es = a->kv_f16 ? 2 : 4;
    float *scores = scratch, *conv = scratch + (size_t)GP_ATT_ROWS * lds;
    for (kb = 0; kb * GP_PAGE < n_keys; kb++) {
        int nj = n_keys - kb * GP_PAGE < GP_PAGE ? n_keys - kb * GP_PAGE : GP_PAGE;
        /* the next page's keys, or after the last the first page's values */
        const unsigned char *next = (kb + 1) * GP_PAGE < n_keys ? a->k_base + (size_t)a->pages[kb + 1] * a->page_bytes
                                                                : a->v_base + (size_t)a->pages[0] * a->page_bytes;
        gp_op_rows_kv(a->q, a->ldq, a->rows, a->k_base + (size_t)a->pages[kb] * a->page_bytes, a->kv_f16, D,
                      scores + (size_t)kb * GP_PAGE, lds, nj, 0, conv, next);
    }
    (void)es;
    for (i = 0; i < a->rows; i++) {
        float *s = scores + (size_t)i * lds, mx = -INFINITY, sum;
        int valid = a->first_keys + i;
        gp_vf vs = GP_VZERO();
        for (j = 0; j < valid; j++)
            if (s[j] > mx) mx = s[j];
        for (j = 0; j + GP_VL <= valid; j += GP_VL) {
            gp_vf e = gp_vexp(GP_VMUL(GP_VADD(GP_VLOAD(s + j), GP_VSET1(-mx)), GP_VSET1(a->scale)));
            GP_VSTORE(s + j, e);
            vs = GP_VADD(vs, e);
        }
        sum = gp_vsum(vs);
        for (; j < valid; j++) {
            s[j] = expf((s[j] - mx) * a->scale);
            sum += s[j];
        }
        sum = 1.0f / sum;
        for (j = 0; j < valid; j++) s[j] *= sum;
    }
    gp_attend_values(a, scores, lds, a->rows, a->out, 0, a->first_keys, 0, conv);
    for (i = 1; i < a->rows; i++)
        gp_attend_values(a, scores + (size_t)i * lds, lds, 1, a->out + (size_t)i * a->ldo, a->first_keys,
                         a->first_keys + i, 1, conv);
}

#endif /* GP_SIMD */

/* ---- 10.8 the kernel tables ---- */

static const gp_kernels gp_kernels_ref = {"reference", gp_linear_ref, gp_gelu_ref, gp_attention_ref, 1};
#if defined(GP_AVX512)
static const gp_kernels gp_kernels_simd = {"avx512", gp_linear_simd, gp_gelu_simd, gp_attention_simd, GP_ATT_ROWS};
#elif defined(GP_AVX2)
static const gp_kernels gp_kernels_simd = {"avx2", gp_linear_simd, gp_gelu_simd, gp_attention_simd, GP_ATT_ROWS};
#elif defined(GP_NEON)
static const gp_kernels gp_kernels_simd = {"neon", gp_linear_simd, gp_gelu_simd, gp_attention_simd, GP_ATT_ROWS};
#endif

/* Which weight types take dot products on rounded activations in this
 * build (1: q8_0, integer; 2: bf16), 4 where f32 weights (and f16, and
 * bf16 without bit 2) take the chains of section 10.6, and 8 where bf16
 * takes AMX's tiles on this machine, for the tests' tolerances and sizes. */
int gpt__dot_products(void)
{
    int kinds = gp_prep_kind(GPT_DTYPE_Q8_0) | gp_prep_kind(GPT_DTYPE_BF16) | (gp_amx_takes(GPT_DTYPE_BF16) ? 8 : 0);
#if defined(GP_F32_CHAINS)
    kinds |= 4;
#endif
    return kinds;
}

/* The SIMD kernels compiled in, unless the reference ones are asked for. */
static const gp_kernels *gp_pick_kernels(int reference)
{
#if defined(GP_SIMD)
    if (!reference) return &gp_kernels_simd;
#endif
    (void)reference;
    return &gp_kernels_ref;
}


/* ======================================================================== */
/* 11. The thread pool                                                      */
/* ======================================================================== */
/*
 * Each context owns n_threads - 1 workers; the calling thread is worker 0.
 * A job is published by bumping `generation`; workers spin on it for a short
 * while (a token's jobs follow each other within microseconds) and then
 * sleep on a condition variable. Work is always split by output element, so
 * results are bitwise identical for any thread count.
 */

#if defined(GP_HAVE_THREADS)
#define GP_ATOMIC_LOAD(p) __atomic_load_n((p), __ATOMIC_SEQ_CST)
#define GP_ATOMIC_STORE(p, v) __atomic_store_n((p), (v), __ATOMIC_SEQ_CST)
#define GP_ATOMIC_ADD(p, v) __atomic_add_fetch((p), (v), __ATOMIC_SEQ_CST)
#if defined(__x86_64__) || defined(__i386__)
#define GP_CPU_RELAX() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define GP_CPU_RELAX() __asm__ __volatile__("yield")
#else
#define GP_CPU_RELAX() ((void)0)
#endif
/* About 0.1 ms of spinning before a worker sleeps: long enough to catch the
 * next job of the same token, short enough not to steal a busy machine. */
#define GP_SPIN_LIMIT 2000
#endif

#if defined(GP_THREADS_PTHREAD)
typedef pthread_t gp_thread;
#elif defined(GP_THREADS_WIN32)
typedef HANDLE gp_thread;
#endif

typedef struct gp_worker {
    gp_pool *p;
    int ith;
    /* The rows of a matrix product this thread has left: front << 32 | back
     * (see gp_claim_rows). Atomic; kept 128 bytes from the next worker's, on
     * a cache line of its own. */
    uint64_t rows_left;
    char pad[128 - sizeof(uint64_t)];
} gp_worker;

struct gp_pool {
    int n; /* threads including the caller */
#if defined(GP_HAVE_THREADS)
    gp_worker *workers;
    int n_started;
    int generation; /* atomic */
    int n_done;     /* atomic */
    int sleeping;   /* atomic */
    int stop;       /* atomic */
    gp_task_fn fn;
    void *arg;
    gp_thread *threads;
#if defined(GP_THREADS_PTHREAD)
    pthread_mutex_t mu;
    pthread_cond_t cv;
#else
    SRWLOCK mu;
    CONDITION_VARIABLE cv;
#endif
#endif
};

/* Takes the next number from a counter shared by the threads of a job. */
static int gp_atomic_take(int *counter)
{
#if defined(GP_HAVE_THREADS)
    return GP_ATOMIC_ADD(counter, 1) - 1;
#else
    return (*counter)++;
#endif
}

#if defined(GP_HAVE_THREADS)
#if defined(GP_THREADS_PTHREAD)
#define GP_POOL_LOCK(p) pthread_mutex_lock(&(p)->mu)
#define GP_POOL_UNLOCK(p) pthread_mutex_unlock(&(p)->mu)
#define GP_POOL_WAIT(p) pthread_cond_wait(&(p)->cv, &(p)->mu)
#define GP_POOL_WAKE_ALL(p) pthread_cond_broadcast(&(p)->cv)
#else
#define GP_POOL_LOCK(p) AcquireSRWLockExclusive(&(p)->mu)
#define GP_POOL_UNLOCK(p) ReleaseSRWLockExclusive(&(p)->mu)
#define GP_POOL_WAIT(p) SleepConditionVariableSRW(&(p)->cv, &(p)->mu, INFINITE, 0)
#define GP_POOL_WAKE_ALL(p) WakeAllConditionVariable(&(p)->cv)
#endif

static void gp_worker_loop(gp_worker *w)
{
    gp_pool *p = w->p;
    int seen = 0;
    for (;;) {
        int spins = 0, gen;
        while ((gen = GP_ATOMIC_LOAD(&p->generation)) == seen && !GP_ATOMIC_LOAD(&p->stop) && spins < GP_SPIN_LIMIT) {
            GP_CPU_RELAX();
            spins++;
        }
        if (gen == seen && !GP_ATOMIC_LOAD(&p->stop)) {
            GP_POOL_LOCK(p);
            GP_ATOMIC_ADD(&p->sleeping, 1);
            while ((gen = GP_ATOMIC_LOAD(&p->generation)) == seen && !GP_ATOMIC_LOAD(&p->stop)) GP_POOL_WAIT(p);
            GP_ATOMIC_ADD(&p->sleeping, -1);
            GP_POOL_UNLOCK(p);
        }
        if (GP_ATOMIC_LOAD(&p->stop)) return;
        seen = gen;
        p->fn(p->arg, w->ith, p->n);
        GP_ATOMIC_ADD(&p->n_done, 1);
    }
}

#if defined(GP_THREADS_PTHREAD)
static void *gp_worker_main(void *arg)
{
    gp_worker_loop((gp_worker *)arg);
    return NULL;
}
#else
static DWORD WINAPI gp_worker_main(LPVOID arg)
{
    gp_worker_loop((gp_worker *)arg);
    return 0;
}
#endif

/* Starts the n - 1 workers of an initialized pool; 0 when one failed. */
static int gp_pool_start(gp_pool *p, int n)
{
    int i;
    for (i = 1; i < n; i++) {
        p->workers[i].p = p;
        p->workers[i].ith = i;
#if defined(GP_THREADS_PTHREAD)
        if (pthread_create(&p->threads[i - 1], NULL, gp_worker_main, &p->workers[i]) != 0) break;
#else
        p->threads[i - 1] = CreateThread(NULL, 0, gp_worker_main, &p->workers[i], 0, NULL);
        if (!p->threads[i - 1]) break;
#endif
        p->n_started++;
    }
    return p->n_started == n - 1;
}
#endif /* GP_HAVE_THREADS */

static void gp_pool_destroy(gp_pool *p)
{
    if (!p) return;
#if defined(GP_HAVE_THREADS)
    if (p->n > 1) {
        int i;
        GP_POOL_LOCK(p);
        GP_ATOMIC_STORE(&p->stop, 1);
        GP_POOL_WAKE_ALL(p);
        GP_POOL_UNLOCK(p);
        for (i = 0; i < p->n_started; i++) {
#if defined(GP_THREADS_PTHREAD)
            pthread_join(p->threads[i], NULL);
#else
            WaitForSingleObject(p->threads[i], INFINITE);
            CloseHandle(p->threads[i]);
#endif
        }
#if defined(GP_THREADS_PTHREAD)
        pthread_cond_destroy(&p->cv);
        pthread_mutex_destroy(&p->mu);
#endif
        gpt__free(p->threads);
        gpt__free(p->workers);
    }
#endif
    gpt__free(p);
}

/* Bytes gp_pool_create(n) allocates (the threads' stacks come from the
 * system, not from GPT_MALLOC). */
static size_t gp_pool_bytes(int n)
{
#if defined(GP_HAVE_THREADS)
    if (n > 1) return sizeof(gp_pool) + (size_t)n * (sizeof(gp_worker) + sizeof(gp_thread));
#endif
    (void)n;
    return sizeof(gp_pool);
}

/* A pool of n threads (the caller plus n - 1 workers). Without thread support
 * the pool runs everything on the caller. */
static gp_pool *gp_pool_create(int n, gpt_error *err)
{
    gp_pool *p = (gp_pool *)gpt__calloc(1, sizeof *p);
    if (!p) {
        gpt__set_error(err, GPT_ERR_OUT_OF_MEMORY, "out of memory for the thread pool");
        return NULL;
    }
#if defined(GP_HAVE_THREADS)
    p->n = n;
    if (n > 1) {
#if defined(GP_THREADS_PTHREAD)
        if (pthread_mutex_init(&p->mu, NULL) != 0) {
            gpt__free(p);
            gpt__set_error(err, GPT_ERR_OUT_OF_MEMORY, "cannot create a mutex for the thread pool");
            return NULL;
        }
        if (pthread_cond_init(&p->cv, NULL) != 0) {
            pthread_mutex_destroy(&p->mu);
            gpt__free(p);
            gpt__set_error(err, GPT_ERR_OUT_OF_MEMORY, "cannot create a condition variable for the thread pool");
            return NULL;
        }
#else
        InitializeSRWLock(&p->mu);
        InitializeConditionVariable(&p->cv);
#endif
        p->workers = (gp_worker *)gpt__calloc((size_t)n, sizeof(gp_worker));
        p->threads = (gp_thread *)gpt__calloc((size_t)n, sizeof(gp_thread));
        if (!p->workers || !p->threads) {
            gp_pool_destroy(p);
            gpt__set_error(err, GPT_ERR_OUT_OF_MEMORY, "out of memory for %d threads", n);
            return NULL;
        }
        if (!gp_pool_start(p, n)) {
            gp_pool_destroy(p);
            gpt__set_error(err, GPT_ERR_OUT_OF_MEMORY, "cannot start %d worker threads", n - 1);
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
static void gp_pool_run(gp_pool *p, gp_task_fn fn, void *arg)
{
#if defined(GP_HAVE_THREADS)
    if (p->n > 1) {
        int spins = 0;
        p->fn = fn;
        p->arg = arg;
        GP_ATOMIC_STORE(&p->n_done, 0);
        GP_ATOMIC_ADD(&p->generation, 1);
        if (GP_ATOMIC_LOAD(&p->sleeping) > 0) {
            GP_POOL_LOCK(p);
            GP_POOL_WAKE_ALL(p);
            GP_POOL_UNLOCK(p);
        }
        fn(arg, 0, p->n);
        while (GP_ATOMIC_LOAD(&p->n_done) != p->n - 1) {
            GP_CPU_RELAX();
            if (++spins == GP_SPIN_LIMIT) {
                spins = 0;
#if defined(GP_THREADS_PTHREAD)
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

/* Splits [0, n) into nth parts whose bounds are multiples of `grain`; part ith
 * is [*b, *e). */
static void gp_split_range(int n, int grain, int ith, int nth, int *b, int *e)
{
    int chunks = (n + grain - 1) / grain;
    int c0 = (int)((long long)chunks * ith / nth), c1 = (int)((long long)chunks * (ith + 1) / nth);
    *b = c0 * grain < n ? c0 * grain : n;
    *e = c1 * grain < n ? c1 * grain : n;
}

/*
 * Rows of a matrix product handed out while it runs. Each thread starts on
 * its own share of the rows, front to back in pieces (a sequential stream);
 * a thread that runs out takes pieces of GP_ROWS_STOLEN rows, or of a
 * pair of groups (gp_rows_unit), from the back of another's share. With
 * fixed shares, the two threads of a decoded token finished each phase up to
 * tens of microseconds apart (memory serves the two cores unevenly): about
 * 13% of q8_0 decoding time went to waiting. Results do not depend on who
 * computes a row.
 */
#define GP_ROWS_STOLEN 16
/* The fewest rows a thread claims from its own share at once: 64, and 128
 * for one row of x (with 64, two threads decoded f16 8-37% slower, 124M and
 * GPT-2 XL, when a row took 8 groups side by side; with pairs of groups,
 * 64 and 128 were alike) */
#define GP_MIN_PIECE 64
#define GP_MIN_PIECE_ONE_ROW 128
#if defined(GP_HAVE_THREADS)
/* What a thread's share and pieces are multiples of: GP_ROWS_STOLEN rows,
 * or 32 for f16 and bf16 chains, whose packed groups go in pairs that
 * share every line (split between two threads, both would read it). */
static int gp_rows_unit(const gp_tensor *W)
{
    return W->groups && W->type != GPT_DTYPE_F32 ? 2 * GP_ROWS_STOLEN : GP_ROWS_STOLEN;
}
#define GP_ROWS_PACK(front, back) (((uint64_t)(uint32_t)(front) << 32) | (uint32_t)(back))

/* Takes rows from *left into [*b, *e); 0 when none are left. From the front,
 * `piece` rows; from the back, the rows after the last multiple of `piece`;
 * `piece` is a multiple of the unit (gp_rows_unit), itself a multiple of
 * GP_ROWS_STOLEN. Every bound stays a multiple of the unit (or the
 * matrix's end), as with the static split: the
 * dot-product kernels group rows in fours from the start of their range,
 * and the grouping decides the order of their sums (the chains' order does
 * not depend on it; their packed groups are 16 rows), so results stay
 * bitwise the same for any thread count. */
static int gp_claim_rows(uint64_t *left, int piece, int from_back, int *b, int *e)
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
            next = GP_ROWS_PACK(front, cut);
        } else {
            cut = back - front < piece ? back : front + piece;
            next = GP_ROWS_PACK(cut, back);
        }
    } while (!__atomic_compare_exchange_n(left, &cur, next, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE));
    *b = from_back ? cut : front;
    *e = from_back ? back : cut;
    return 1;
}
#endif

typedef struct gp_linear_job {
    gpt_context *c;
    const gp_tensor *W;
    const float *bias;
    const float *x;
    int ldx, n;
    float *y;
    int ldy, accumulate;
} gp_linear_job;

/* Rows [b, e) of W, on thread ith. */
static void gp_linear_rows(const gp_linear_job *j, int ith, int b, int e)
{
    gpt_context *c = j->c;
    c->kern->linear(j->W, j->bias, j->x, j->ldx, j->n, b, e, j->y, j->ldy, j->accumulate,
                    c->scratch + (size_t)ith * c->scratch_stride + c->scratch_row);
}

static void gp_linear_task(void *arg, int ith, int nth)
{
    const gp_linear_job *j = (const gp_linear_job *)arg;
    /* each thread rounds x for its own products (integer and bf16 ones) */
    gp_linear_prepare(j->W, j->x, j->ldx, j->n,
                      j->c->scratch + (size_t)ith * j->c->scratch_stride + j->c->scratch_row);
#if defined(GP_HAVE_THREADS)
    if (nth > 1) {
        gp_worker *w = j->c->pool->workers;
        int b, e, share, piece, unit = gp_rows_unit(j->W), t;
        gp_split_range(j->W->rows, unit, ith, nth, &b, &e);
        /* pieces of 1/32 of the share (GP_MIN_PIECE rows at least): few
         * claims, and a tail small enough to balance */
        share = e - b;
        piece = j->n == 1 ? GP_MIN_PIECE_ONE_ROW : GP_MIN_PIECE;
        if (share / 32 > piece) piece = share / 32;
        piece = (piece + unit - 1) / unit * unit;
        while (gp_claim_rows(&w[ith].rows_left, piece, 0, &b, &e)) gp_linear_rows(j, ith, b, e);
        for (t = 1; t < nth; t++)
            while (gp_claim_rows(&w[(ith + t) % nth].rows_left, unit, 1, &b, &e)) gp_linear_rows(j, ith, b, e);
        return;
    }
#endif
    (void)nth;
    gp_linear_rows(j, ith, 0, j->W->rows);
}

/* y[r][j] = x[r] . W[j] + bias[j] (+ y[r][j] when accumulate), r < n, on
 * every thread of the context. */
static void gp_pool_linear(gpt_context *c, const gp_tensor *W, const gp_tensor *bias, const float *x, int ldx, int n,
                           float *y, int ldy, int accumulate)
{
    gp_linear_job j;
    j.c = c;
    j.W = W;
    j.bias = bias ? (const float *)(const void *)bias->data : NULL;
    j.x = x;
    j.ldx = ldx;
    j.n = n;
    j.y = y;
    j.ldy = ldy;
    j.accumulate = accumulate;
#if defined(GP_HAVE_THREADS)
    if (c->pool->n > 1) {
        int t, b, e;
        for (t = 0; t < c->pool->n; t++) {
            gp_split_range(W->rows, gp_rows_unit(W), t, c->pool->n, &b, &e);
            /* published to the workers by gp_pool_run */
            c->pool->workers[t].rows_left = GP_ROWS_PACK(b, e);
        }
    }
#endif
    gp_pool_run(c->pool, gp_linear_task, &j);
}

/* ======================================================================== */
/* 12. The platform: files, mapping, CPUs                                   */
/* ======================================================================== */

static int gp_online_cpus(void)
{
    long n = 1;
#if defined(GP_MMAP_POSIX) && defined(_SC_NPROCESSORS_ONLN)
    n = sysconf(_SC_NPROCESSORS_ONLN);
#elif defined(_WIN32) && (defined(GP_MMAP_WIN32) || defined(GP_THREADS_WIN32))
    {
        SYSTEM_INFO si;
        GetSystemInfo(&si);
        n = (long)si.dwNumberOfProcessors;
    }
#endif
    if (n < 1) n = 1;
    if (n > GP_MAX_THREADS) n = GP_MAX_THREADS;
    return (int)n;
}

#if defined(_WIN32)
/* File names are UTF-8 on every platform. Windows' char functions (fopen,
 * CreateFileA) read them in the ANSI code page instead, so there they go
 * through UTF-16; a name that is not valid UTF-8 is used as it is. */
static wchar_t *gp_win_path(const char *path)
{
    int n = MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, path, -1, NULL, 0);
    wchar_t *w = n > 0 ? (wchar_t *)gpt__alloc((size_t)n * sizeof(wchar_t)) : NULL;
    if (w && MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, path, -1, w, n) != n) {
        gpt__free(w);
        w = NULL;
    }
    return w;
}
#endif

/* fopen with a UTF-8 file name on every platform (mode "rb", "wb", ...).
 * Shared with tokenizer.c and the gpt command. */
FILE *gpt__fopen(const char *path, const char *mode)
{
#if defined(_WIN32)
    wchar_t *w = gp_win_path(path), wmode[8];
    FILE *f;
    size_t i;
    for (i = 0; mode[i] && i + 1 < sizeof wmode / sizeof wmode[0]; i++) wmode[i] = (wchar_t)mode[i];
    wmode[i] = 0;
    f = w ? _wfopen(w, wmode) : fopen(path, mode);
    gpt__free(w);
    return f;
#else
    return fopen(path, mode);
#endif
}

const char *gpt__file_kind(unsigned long mode)
{
#if defined(GP_FILES_POSIX)
    mode_t m = (mode_t)mode;
    if (S_ISREG(m)) return "a regular file";
    if (S_ISDIR(m)) return "a directory";
    if (S_ISFIFO(m)) return "a FIFO (named pipe)";
    if (S_ISCHR(m)) return "a character device";
    if (S_ISBLK(m)) return "a block device";
#if defined(S_ISSOCK)
    if (S_ISSOCK(m)) return "a socket";
#endif
#elif defined(GP_FILES_WIN32)
    if ((mode & _S_IFMT) == _S_IFREG) return "a regular file";
    if ((mode & _S_IFMT) == _S_IFDIR) return "a directory";
    if ((mode & _S_IFMT) == _S_IFCHR) return "a character device";
#else
    (void)mode;
#endif
    return "a special file";
}

/* The check of gpt__open_regular on an open file's mode and size. */
static gpt_status gp_check_regular(const char *path, unsigned long mode, int is_regular, uint64_t size,
                                   uint64_t max_size, gpt_error *err)
{
    if (!is_regular)
        return gpt__set_error(err, GPT_ERR_IO, "%s is %s, not a regular file", path, gpt__file_kind(mode));
    if (max_size && size > max_size) {
        char limit[32];
        if (max_size % ((uint64_t)1 << 20) == 0)
            snprintf(limit, sizeof limit, "%llu MiB", (unsigned long long)(max_size >> 20));
        else snprintf(limit, sizeof limit, "%llu bytes", (unsigned long long)max_size);
        return gpt__set_error(err, GPT_ERR_IO, "%s is %llu bytes, more than the %s this input may have", path,
                              (unsigned long long)size, limit);
    }
    return GPT_OK;
}

FILE *gpt__open_regular(const char *path, uint64_t max_size, uint64_t *size, gpt_error *err)
{
    FILE *f;
    uint64_t bytes = 0;
#if defined(GP_FILES_POSIX)
    /* Non-blocking, so that opening a FIFO does not wait for a writer; the
     * checks are made on the open file, not on a name that may change. */
    struct stat st;
    int fd = open(path, O_RDONLY | O_NONBLOCK), flags;
    if (fd < 0) {
        gpt__set_error(err, GPT_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    if (fstat(fd, &st) != 0) {
        gpt__set_error(err, GPT_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
        close(fd);
        return NULL;
    }
    if (gp_check_regular(path, (unsigned long)st.st_mode, S_ISREG(st.st_mode), (uint64_t)st.st_size, max_size,
                         err) != GPT_OK) {
        close(fd);
        return NULL;
    }
    flags = fcntl(fd, F_GETFL);
    if (flags == -1 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) == -1 || !(f = fdopen(fd, "rb"))) {
        gpt__set_error(err, GPT_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        close(fd);
        return NULL;
    }
    bytes = (uint64_t)st.st_size;
#else
    long end;
    if (!(f = gpt__fopen(path, "rb"))) {
        gpt__set_error(err, GPT_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
#if defined(GP_FILES_WIN32)
    {
        struct _stat64 st;
        if (_fstat64(_fileno(f), &st) != 0) {
            gpt__set_error(err, GPT_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
            fclose(f);
            return NULL;
        }
        if (gp_check_regular(path, (unsigned long)st.st_mode, (st.st_mode & _S_IFMT) == _S_IFREG,
                             (uint64_t)st.st_size, max_size, err) != GPT_OK) {
            fclose(f);
            return NULL;
        }
    }
#endif
    /* Plain C: the size is where the end is. */
    if (fseek(f, 0, SEEK_END) != 0 || (end = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
        gpt__set_error(err, GPT_ERR_IO, "%s: cannot determine the file size", path);
        fclose(f);
        return NULL;
    }
    bytes = (uint64_t)end;
    if (gp_check_regular(path, 0, 1, bytes, max_size, err) != GPT_OK) {
        fclose(f);
        return NULL;
    }
#endif
    if (size) *size = bytes;
    return f;
}

/* Reads a whole regular file into an aligned buffer: *out (freed with
 * gp_free_aligned) and *len. */
static gpt_status gp_read_whole_file(const char *path, unsigned char **out, uint64_t *len, gpt_error *err)
{
    uint64_t size;
    FILE *f = gpt__open_regular(path, 0, &size, err);
    unsigned char *buf;
    if (!f) return err ? err->status : GPT_ERR_IO;
    if (size > (uint64_t)SIZE_MAX - GP_ALIGN - sizeof(void *)) {
        fclose(f);
        return gpt__set_error(err, GPT_ERR_UNSUPPORTED, "%s: file too large for this address space", path);
    }
    buf = (unsigned char *)gp_alloc_aligned((size_t)size ? (size_t)size : 1);
    if (!buf) {
        fclose(f);
        return gpt__set_error(err, GPT_ERR_OUT_OF_MEMORY, "%s: out of memory reading %llu bytes", path,
                              (unsigned long long)size);
    }
    if (fread(buf, 1, (size_t)size, f) != (size_t)size) {
        gp_free_aligned(buf);
        fclose(f);
        return gpt__set_error(err, GPT_ERR_IO, "%s: read error (the file is shorter than it was)", path);
    }
    fclose(f);
    *out = buf;
    *len = size;
    return GPT_OK;
}

static gpt_model *gp_load_read(const char *path, gpt_error *err);

#if defined(GP_MMAP_POSIX)
/* The mapped pages of bytes p .. p+n-1, which the loader has packed or
 * copied (gp_pack_model): the model reads only its copy, so the process
 * lets go of the pages (the whole ones inside the range). They stay in the
 * page cache, and a read maps them again (wte's rows for the embedding
 * lookup where wte is packed). Without this, an f32 model held its file
 * and its packed copy: twice its size. */
static void gp_release_pages(const void *p, size_t n)
{
#if defined(GP_RELEASES_PAGES)
    long page = sysconf(_SC_PAGESIZE);
    uintptr_t begin = (uintptr_t)p, end = begin + (uintptr_t)n;
    if (page <= 0) return;
    begin = (begin + (uintptr_t)page - 1) / (uintptr_t)page * (uintptr_t)page;
    end = end / (uintptr_t)page * (uintptr_t)page;
    if (end > begin) (void)madvise((void *)begin, (size_t)(end - begin), MADV_DONTNEED);
#else
    (void)p;
    (void)n;
#endif
}

/* Maps the file and builds the model on the mapping; falls back to reading
 * it where mapping is not available or fails. */
static gpt_model *gp_load_mapped(const char *path, gpt_error *err)
{
    uint64_t size;
    FILE *f = gpt__open_regular(path, 0, &size, err);
    void *p;
    gpt_model *m;
    if (!f) return NULL;
    if (size < GP_HEADER_SIZE) {
        fclose(f);
        return gp_load_read(path, err); /* tiny: reading gives the precise message */
    }
    if (size > (uint64_t)SIZE_MAX) {
        gpt__set_error(err, GPT_ERR_UNSUPPORTED, "%s: file too large for this address space", path);
        fclose(f);
        return NULL;
    }
    p = mmap(NULL, (size_t)size, PROT_READ, MAP_PRIVATE, fileno(f), 0);
    fclose(f);
    if (p == MAP_FAILED) return gp_load_read(path, err);
    m = gp_parse_checkpoint((const unsigned char *)p, size, path, 1, 1, err);
    if (!m) {
        munmap(p, (size_t)size);
        return NULL;
    }
    m->storage = GP_STORAGE_MMAP;
    m->map_base = p;
    m->map_len = (size_t)size;
    return m;
}

static void gp_unmap(gpt_model *m) { munmap(m->map_base, m->map_len); }

#elif defined(GP_MMAP_WIN32)
static gpt_model *gp_load_mapped(const char *path, gpt_error *err)
{
    HANDLE file, mapping;
    LARGE_INTEGER size;
    void *p;
    gpt_model *m;
    wchar_t *wpath = gp_win_path(path);
    file = wpath ? CreateFileW(wpath, GENERIC_READ, FILE_SHARE_READ, NULL, OPEN_EXISTING, FILE_ATTRIBUTE_NORMAL, NULL)
                 : CreateFileA(path, GENERIC_READ, FILE_SHARE_READ, NULL, OPEN_EXISTING, FILE_ATTRIBUTE_NORMAL, NULL);
    gpt__free(wpath);
    if (file == INVALID_HANDLE_VALUE) {
        gpt__set_error(err, GPT_ERR_IO, "%s: cannot open (Windows error %lu)", path, (unsigned long)GetLastError());
        return NULL;
    }
    if (!GetFileSizeEx(file, &size) || size.QuadPart < GP_HEADER_SIZE ||
        (unsigned long long)size.QuadPart > (unsigned long long)SIZE_MAX) {
        CloseHandle(file);
        return gp_load_read(path, err);
    }
    mapping = CreateFileMappingA(file, NULL, PAGE_READONLY, 0, 0, NULL);
    if (!mapping) {
        CloseHandle(file);
        return gp_load_read(path, err);
    }
    p = MapViewOfFile(mapping, FILE_MAP_READ, 0, 0, 0);
    if (!p) {
        CloseHandle(mapping);
        CloseHandle(file);
        return gp_load_read(path, err);
    }
    m = gp_parse_checkpoint((const unsigned char *)p, (uint64_t)size.QuadPart, path, 1, 1, err);
    if (!m) {
        UnmapViewOfFile(p);
        CloseHandle(mapping);
        CloseHandle(file);
        return NULL;
    }
    m->storage = GP_STORAGE_MMAP;
    m->map_base = p;
    m->map_len = (size_t)size.QuadPart;
    m->win_file = file;
    m->win_mapping = mapping;
    return m;
}

static void gp_unmap(gpt_model *m)
{
    UnmapViewOfFile(m->map_base);
    CloseHandle(m->win_mapping);
    CloseHandle(m->win_file);
}

/* (the view's pages stay in the working set until Windows trims it) */
static void gp_release_pages(const void *p, size_t n)
{
    (void)p;
    (void)n;
}

#else
static gpt_model *gp_load_mapped(const char *path, gpt_error *err) { return gp_load_read(path, err); }
static void gp_unmap(gpt_model *m) { (void)m; }
static void gp_release_pages(const void *p, size_t n)
{
    (void)p;
    (void)n;
}
#endif
