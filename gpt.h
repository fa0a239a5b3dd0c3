/*
 * gpt.h - the whole public API of gpt.c, a dependency-free C99 library that
 * runs GPT-2 style language models on the CPU.
 *
 * Conventions
 *   - Every function that can fail returns a gpt_status (0 = GPT_OK, negative
 *     = error) or NULL, and leaves a message naming the cause either in the
 *     caller's gpt_error (loading functions) or in the context
 *     (gpt_context_error). Nothing in the library prints, exits or aborts.
 *   - A gpt_model and its gpt_tokenizer are immutable once loaded and may be
 *     shared by any number of threads. A gpt_context (its sequences, their
 *     KV cache and scratch memory) is used by one thread at a time, and so
 *     is a gpt_generator (with its context).
 *   - Freeing NULL is always allowed.
 *
 * Build options (define them when compiling gpt.c and tokenizer.c; no build
 * system is needed: `cc -O2 -march=native -c gpt.c tokenizer.c`)
 *   GPT_NO_SIMD      the portable scalar kernels only, even where the target
 *                    has AVX-512, AVX2 + FMA + F16C or NEON (the SIMD kernels
 *                    are chosen by the compiler's target flags, e.g.
 *                    -march=native); results agree within 1e-5 relative
 *   GPT_NO_VNNI      q8_0 weights meet f32 activations (each weight widened)
 *                    instead of activations rounded to int8 blocks of 32 in
 *                    integer dot products (AVX512-VNNI, AVX-VNNI, NEON
 *                    dotprod, and their scalar twin in builds without SIMD)
 *   GPT_NO_BF16DOT   bf16 weights meet f32 activations instead of
 *                    activations rounded to bf16 in vdpbf16ps products
 *                    (AVX512_BF16, and its scalar twin without SIMD)
 *   GPT_NO_AMX       those bf16 products stay on vdpbf16ps. Otherwise, in
 *                    builds for x86-64 Linux whose target has AMX-TILE and
 *                    AMX-BF16 (-march=native on Intel Xeons since Sapphire
 *                    Rapids), they take AMX's tiles when the CPU has them
 *                    and Linux grants them; the tiles' sums agree with the
 *                    scalar twin's within 1e-5 (relative, absolute below 1).
 *                    Loading a bf16 model asks Linux for the tiles for the
 *                    whole process (arch_prctl ARCH_REQ_XCOMP_PERM), which
 *                    cannot be undone: from then on the kernel refuses
 *                    sigaltstack() stacks smaller than the tiles' signal
 *                    frame (about 11 KB; the old SIGSTKSZ, 8 KB, is too
 *                    small), and signal frames of threads that used the
 *                    tiles are that much larger
 *   GPT_NO_THREADS   no thread pool: every context computes on the calling
 *                    thread (threads are POSIX or Win32, with GCC-style atomics)
 *   GPT_NO_MMAP      checkpoints are read into memory instead of mapped
 *                    (mmap on POSIX, file mapping on Windows)
 *   GPT_MALLOC(n), GPT_REALLOC(p, n), GPT_FREE(p)
 *                    the allocator: every allocation of the library goes
 *                    through these three (default malloc, realloc, free);
 *                    define all three, e.g. -DGPT_MALLOC=my_malloc ..., to
 *                    route the library's memory to your own allocator. They
 *                    must behave like malloc/realloc/free; a NULL result is
 *                    reported as GPT_ERR_OUT_OF_MEMORY.
 *   GPT_BUILD_DLL, GPT_DLL
 *                    Windows: building, or using, gpt.dll (see GPT_API)
 *
 * MIT licence; see LICENSE.
 */
#ifndef GPT_H
#define GPT_H

#include <stddef.h>
#include <stdint.h>

#define GPT_VERSION_MAJOR 0
#define GPT_VERSION_MINOR 3
#define GPT_VERSION_PATCH 0
#define GPT_VERSION_STRING "0.3.0"
/* Single number for #if comparisons: major*10000 + minor*100 + patch. */
#define GPT_VERSION_NUMBER (GPT_VERSION_MAJOR * 10000 + GPT_VERSION_MINOR * 100 + GPT_VERSION_PATCH)

/* GPT_API marks the exported functions. Build a Windows DLL with
 * -DGPT_BUILD_DLL and use it with -DGPT_DLL; elsewhere the library is built
 * with -fvisibility=hidden and only these symbols are exported. */
#if defined(_WIN32) && defined(GPT_BUILD_DLL)
#define GPT_API __declspec(dllexport)
#elif defined(_WIN32) && defined(GPT_DLL)
#define GPT_API __declspec(dllimport)
#elif defined(__GNUC__) && __GNUC__ >= 4
#define GPT_API __attribute__((visibility("default")))
#else
#define GPT_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Status codes and errors (docs/ERRORS.md says when each one happens)       */

typedef enum gpt_status {
    GPT_OK = 0,
    GPT_ERR_INVALID_ARG = -1,      /* NULL pointer, negative count, parameter out of range */
    GPT_ERR_OUT_OF_MEMORY = -2,    /* an allocation failed */
    GPT_ERR_IO = -3,               /* a file could not be opened, read or written */
    GPT_ERR_FORMAT = -4,           /* a file is malformed: magic, sizes, offsets, values */
    GPT_ERR_UNSUPPORTED = -5,      /* well-formed but not supported (version, dtype, host) */
    GPT_ERR_TOKEN_RANGE = -6,      /* a token id is outside [0, n_vocab) */
    GPT_ERR_CONTEXT_FULL = -7,     /* the context window has no room for the tokens */
    GPT_ERR_BUFFER_TOO_SMALL = -8, /* a caller's buffer cannot hold the result */
    GPT_ERR_EXISTS = -9,           /* an output file exists and overwriting was not asked for */
    GPT_ERR_CANCELLED = -10,       /* a progress callback asked to stop */
    GPT_ERR_NUMERIC = -11          /* the model computed logits that are not finite (NaN or
                                      infinite weights or activations) */
} gpt_status;

typedef struct gpt_error {
    gpt_status status;
    char message[320];
} gpt_error;

/* Short constant name of a status, e.g. "GPT_ERR_FORMAT". */
GPT_API const char *gpt_status_name(gpt_status s);

/* Library version as "MAJOR.MINOR.PATCH" (equal to GPT_VERSION_STRING of the
 * header the library was built with). */
GPT_API const char *gpt_version(void);

/* ------------------------------------------------------------------------ */
/* Weight types                                                             */

typedef enum gpt_dtype {
    GPT_DTYPE_F32 = 0,
    GPT_DTYPE_F16 = 1,  /* IEEE 754 binary16 */
    GPT_DTYPE_BF16 = 2, /* bfloat16: the top 16 bits of an f32 */
    GPT_DTYPE_Q8_0 = 3  /* rows of int8 blocks of 32, one f16 scale per block */
} gpt_dtype;

/* "f32", "f16", "bf16", "q8_0"; "?" for an unknown value. */
GPT_API const char *gpt_dtype_name(gpt_dtype t);
/* Parses a name as above; returns GPT_ERR_INVALID_ARG for unknown names. */
GPT_API gpt_status gpt_dtype_from_name(const char *name, gpt_dtype *out);

/* ------------------------------------------------------------------------ */
/* Tokenizer: GPT-2 byte-level BPE                                          */

typedef struct gpt_tokenizer gpt_tokenizer;

/* Loads a vocabulary and merges from files: OpenAI's encoder.json + vocab.bpe
 * or Hugging Face's vocab.json + merges.txt (same formats). Each must be a
 * regular file of at most GPT_TOKENIZER_FILE_MAX bytes (GPT-2's are 1 MB and
 * 0.5 MB); a directory, FIFO or device is refused without being read. */
#define GPT_TOKENIZER_FILE_MAX ((size_t)64 << 20)
GPT_API gpt_tokenizer *gpt_tokenizer_load(const char *vocab_json_path, const char *merges_path,
                                          gpt_error *err);
/* The same from memory. */
GPT_API gpt_tokenizer *gpt_tokenizer_load_memory(const void *vocab_json, size_t vocab_len,
                                                 const void *merges, size_t merges_len,
                                                 gpt_error *err);
GPT_API void gpt_tokenizer_free(gpt_tokenizer *t);

/* Serialized form stored in checkpoints (docs/FORMAT.md, "Tokenizer
 * section"). gpt_tokenizer_serialize writes at most cap bytes and returns the
 * number of bytes the whole section needs (call with cap 0 to size it). */
GPT_API size_t gpt_tokenizer_serialize(const gpt_tokenizer *t, void *out, size_t cap);
GPT_API gpt_tokenizer *gpt_tokenizer_deserialize(const void *data, size_t len, gpt_error *err);

GPT_API int gpt_tokenizer_n_vocab(const gpt_tokenizer *t);
/* Id of <|endoftext|>, or -1 if the vocabulary has none. */
GPT_API int gpt_tokenizer_eot(const gpt_tokenizer *t);
/* Longest byte length of any token (sizes streaming buffers). */
GPT_API size_t gpt_tokenizer_max_token_bytes(const gpt_tokenizer *t);

/* Flags for gpt_tokenize_ex. */
#define GPT_TOKENIZE_SPECIAL 1 /* the text "<|endoftext|>" becomes the EOT id */

/* Encodes len bytes of text (any bytes; invalid UTF-8 is kept, never lost).
 * Writes at most max_ids ids and returns the number of ids the whole text
 * needs, which is > max_ids when the buffer is too small (call with max_ids 0
 * to size it). Negative return: a gpt_status (NULL arguments, more than
 * INT_MAX ids, out of memory). */
GPT_API int gpt_tokenize(const gpt_tokenizer *t, const char *text, size_t len, int *ids, int max_ids);
GPT_API int gpt_tokenize_ex(const gpt_tokenizer *t, const char *text, size_t len, int *ids,
                            int max_ids, int flags);

/* Decodes n ids to their exact bytes. Writes at most cap bytes (plus a
 * terminating NUL when there is room for it) and returns the number of bytes
 * the whole text needs, > cap when the buffer is too small. Negative return:
 * a gpt_status, GPT_ERR_TOKEN_RANGE for an id outside [0, n_vocab). */
GPT_API int gpt_detokenize(const gpt_tokenizer *t, const int *ids, int n, char *out, size_t cap);

/* The bytes of one token (not NUL-terminated) and their count; NULL for an id
 * out of range. */
GPT_API const char *gpt_token_bytes(const gpt_tokenizer *t, int id, size_t *len);

/* Streaming decoder: feeds ids one at a time and returns only whole UTF-8
 * characters, holding back the first bytes of a character until the token
 * that completes it arrives. Bytes that can never become valid UTF-8 are
 * passed through unchanged, so the concatenated output always equals
 * gpt_detokenize of all ids. */
typedef struct gpt_decoder {
    unsigned char held[4];
    int n_held;
} gpt_decoder;

GPT_API void gpt_decoder_init(gpt_decoder *d);
/* Appends token id; writes the bytes that are ready to out and returns their
 * count. out needs gpt_tokenizer_max_token_bytes(t) + 4 bytes. Negative
 * return: a gpt_status. */
GPT_API int gpt_decoder_push(gpt_decoder *d, const gpt_tokenizer *t, int id, char *out, size_t cap);
/* Writes whatever is still held (an incomplete character at the end of the
 * stream) and resets the decoder. out needs 4 bytes. */
GPT_API int gpt_decoder_flush(gpt_decoder *d, char *out, size_t cap);

/* ------------------------------------------------------------------------ */
/* Models                                                                   */

typedef struct gpt_model gpt_model;

typedef struct gpt_config {
    int n_vocab;
    int n_ctx;
    int n_embd;
    int n_head;
    int n_layer;
    float ln_eps;
    gpt_dtype dtype;       /* type of the weight matrices */
    uint64_t n_params;     /* number of parameters (weights and biases) */
    uint64_t weight_bytes; /* bytes of all tensors in the checkpoint */
} gpt_config;

/* Loads a checkpoint (docs/FORMAT.md). The file is mapped where the platform
 * allows it (and used in place, but for what is packed or, on Linux,
 * copied: below), otherwise read into memory. It must be a
 * regular file: a directory, FIFO or device is refused without being read.
 * Where the build has the integer dot products (AVX512-VNNI, AVX-VNNI, NEON
 * dotprod; not with GPT_NO_VNNI or GPT_NO_SIMD), the matrices of a q8_0
 * checkpoint are also packed once into an allocation of about their size,
 * in the order those products read them, and the products read only that
 * copy (the embedding lookup still reads wte's rows in the file). On
 * AVX-512 so are f32 and f16 matrices (and bf16 ones with GPT_NO_BF16DOT or
 * without AVX512_BF16, or for AMX's tiles where they take them, GPT_NO_AMX):
 * an f32 or f16 model takes about its size again. On Linux a mapped model
 * then lets go of the file's pages of each packed matrix (madvise
 * MADV_DONTNEED: they stay in the page cache), and copies every other
 * tensor into the same allocation and lets go of its pages too: the
 * mapping is read afterwards only for wte's rows where wte is packed
 * (embedding lookups), and the process holds the model once. The matrices are packed for
 * the three functions below too. On Linux that copy, a model read or
 * copied into memory and each context's KV cache ask for 2 MB pages (madvise
 * MADV_HUGEPAGE: advice, which the system may decline). */
GPT_API gpt_model *gpt_model_load(const char *path, gpt_error *err);
/* How gpt_model_load_ex reads the file. */
typedef struct gpt_load_params {
    int no_mmap; /* non-zero: read the file into memory instead of mapping it. A mapped
                    file that another process truncates makes the next access to the
                    lost pages raise SIGBUS (docs/SAFETY.md); a copy costs the file's
                    size in memory and the time to read it (on Linux a mapped model
                    also ends up as a copy, made as the file's pages are let go of) */
} gpt_load_params;

/* gpt_model_load with parameters (NULL: the defaults, as gpt_model_load). */
GPT_API gpt_model *gpt_model_load_ex(const char *path, const gpt_load_params *p, gpt_error *err);
/* Loads from a copy of len bytes at buf; buf may be freed right away. */
GPT_API gpt_model *gpt_model_load_memory(const void *buf, size_t len, gpt_error *err);
/* Loads from buf without copying it (but for the packed matrices, above):
 * buf must be aligned to 64 bytes (GPT_ERR_INVALID_ARG otherwise), must not
 * change, and must outlive the model. The library only reads it. */
GPT_API gpt_model *gpt_model_load_memory_inplace(const void *buf, size_t len, gpt_error *err);
GPT_API void gpt_model_free(gpt_model *m);

GPT_API gpt_config gpt_model_config(const gpt_model *m);
GPT_API const gpt_tokenizer *gpt_model_tokenizer(const gpt_model *m);

/* ------------------------------------------------------------------------ */
/* Contexts: sequences, their KV cache and scratch                          */
/*
 * A context holds n_seq sequences (1 by default), numbered 0 .. n_seq-1, each
 * with its own positions 0 .. n_ctx-1. Their keys and values live in one
 * pool of cells shared by all, handed out in pages of 64 positions: a
 * sequence takes pages as it grows and gives them back when rewound or
 * cleared, and a fork shares its source's pages until either writes to a
 * shared page (which is then copied). So a prompt evaluated once serves any
 * number of continuations.
 *
 * The calls without a sequence argument (gpt_eval, gpt_logits, gpt_rewind,
 * gpt_context_n_past, gpt_context_tokens, gpt_score, gpt_generate) work on
 * sequence 0, as they did before sequences existed.
 *
 * Batch invariance: a sequence's logits are bitwise the same whether it is
 * evaluated alone or in a batch with any other sequences (of any lengths and
 * positions), in one call or token by token, on any number of threads.
 */

typedef struct gpt_context gpt_context;

/* Storage of the KV cache. Attention reads the whole cache for every new
 * token: in f32 that is 42 MB a token for GPT-2 124M at position 576, a third
 * of the bytes of its q8_0 weights. */
typedef enum gpt_kv_type {
    GPT_KV_AUTO = 0, /* f32 when wte and every block matrix are f32 (exact); f16
                        otherwise: the f16 cache moves the logits about as much as
                        f16 weights do, and much less than bf16 or q8_0 weights */
    GPT_KV_F16 = 1,  /* IEEE half: half the memory and the bandwidth of attention;
                        logits move by about 1e-3 */
    GPT_KV_F32 = 2   /* single precision */
} gpt_kv_type;

#define GPT_MAX_SEQ 65536 /* most sequences a context can hold */

typedef struct gpt_context_params {
    int n_ctx;      /* positions the context holds; 0 = the model's n_ctx; more is refused */
    int n_batch;    /* most tokens one forward step processes (longer gpt_eval calls are
                       split); 0 = default (512) */
    int n_threads;  /* worker threads for this context; 0 = one per online CPU */
    int all_logits; /* non-zero: keep the logits of every token of the last gpt_eval
                       (costs n_ctx * n_vocab floats) */
    int reference_kernels; /* non-zero: the portable scalar kernels even where SIMD ones
                              are compiled in (for testing and comparison) */
    int kv_type;    /* how the KV cache is stored: a gpt_kv_type; 0 = GPT_KV_AUTO */
    /* since 0.3 */
    int n_seq;      /* sequences the context holds; 0 = 1 */
    int kv_size;    /* positions of KV cache shared by all sequences, rounded up to a
                       multiple of 64; 0 = n_seq * n_ctx (rounded up per sequence):
                       every sequence can fill its window at once. Less saves memory
                       when sequences share prompts or stay short; a step that needs
                       more than is free fails with GPT_ERR_CONTEXT_FULL */
} gpt_context_params;

GPT_API gpt_context_params gpt_context_defaults(void);
/* Bytes a context with these parameters allocates (exactly what
 * gpt_context_new takes through GPT_MALLOC, all at creation; evaluating
 * allocates nothing more), or 0 when the parameters are invalid for the
 * model. With D = head_dim rounded up to a multiple of 64, P = kv_size
 * rounded up to pages of 64 and T = n_ctx, in floats: the KV cache,
 * n_layer * P * (n_embd + n_head * D) (halves with an f16 cache);
 * activations, (n_batch + 8) * 10 * n_embd; per thread, 48 * T + 4 * n_embd
 * + 4096, and with q8_0 or bf16 matrices that take dot products (see
 * GPT_NO_VNNI), (n_batch + 6) rows of their activations rounded, about
 * 2.2 bytes per element of the widest row (4 * n_embd), or with f32
 * matrices on AVX-512 a panel of 64 * 4 * n_embd, whichever is larger; logits, n_vocab per sequence plus n_vocab per row the last batch
 * can keep (max(n_seq, 8), or max(n_ctx, n_seq) with all_logits); per
 * sequence, T token ids and T / 64 page numbers; two ints per page; and a
 * few hundred bytes per thread for the pool. The threads' stacks come from
 * the system and are not counted. */
GPT_API size_t gpt_context_memory(const gpt_model *m, const gpt_context_params *p);

GPT_API gpt_context *gpt_context_new(const gpt_model *m, const gpt_context_params *p, gpt_error *err);
GPT_API void gpt_context_free(gpt_context *c);

/* Message for the last failure of a function called on this context. */
GPT_API const char *gpt_context_error(const gpt_context *c);
GPT_API int gpt_context_n_ctx(const gpt_context *c);
/* Threads the context computes with. */
GPT_API int gpt_context_n_threads(const gpt_context *c);
/* How its KV cache is stored: GPT_KV_F16 or GPT_KV_F32 (what GPT_KV_AUTO
 * chose); 0 only for a NULL context. */
GPT_API int gpt_context_kv_type(const gpt_context *c);
/* Number of positions sequence 0 holds. */
GPT_API int gpt_context_n_past(const gpt_context *c);
/* The ids sequence 0 holds (gpt_context_n_past of them). */
GPT_API const int *gpt_context_tokens(const gpt_context *c);
/* Sequences the context holds (n_seq). */
GPT_API int gpt_context_n_seq(const gpt_context *c);
/* Positions of KV cache not in use by any sequence (a multiple of 64). */
GPT_API int gpt_context_kv_free(const gpt_context *c);

/* Appends n ids and runs them through the model as one batch; afterwards
 * gpt_logits gives the next-token logits after the last id. On failure
 * nothing is appended (GPT_ERR_TOKEN_RANGE, GPT_ERR_CONTEXT_FULL, ...). */
GPT_API gpt_status gpt_eval(gpt_context *c, const int *ids, int n);
/* n_vocab logits after the last evaluated id; NULL before the first gpt_eval
 * and after gpt_rewind. */
GPT_API const float *gpt_logits(const gpt_context *c);
/* With all_logits: logits after the i-th id of the last gpt_eval call
 * (0 <= i < n of that call); NULL otherwise. */
GPT_API const float *gpt_logits_at(const gpt_context *c, int i);
/* Keeps the first n_keep cached positions and drops the rest. */
GPT_API gpt_status gpt_rewind(gpt_context *c, int n_keep);

/* A batch: n ids, each appended to its sequence, all run through the model
 * in forward steps of up to n_batch rows (each weight is read once per
 * step). A sequence's ids take its next positions in the order they appear;
 * sequences may be interleaved. */
typedef struct gpt_batch {
    int n;                         /* entries */
    const int *tokens;             /* [n] ids */
    const int *seq;                /* [n] the sequence of each id; NULL: all sequence 0 */
    const unsigned char *logits;   /* [n] non-zero: keep the logits after this id (read them
                                      with gpt_logits_batch); NULL: keep them after the last
                                      id of each sequence in the batch */
} gpt_batch;

/* Evaluates a batch. Everything is checked first: on failure nothing is
 * appended to any sequence (GPT_ERR_INVALID_ARG for a sequence out of range
 * or more kept logits than gpt_context_max_logits, GPT_ERR_TOKEN_RANGE,
 * GPT_ERR_CONTEXT_FULL when a sequence would pass n_ctx or the KV cache has
 * no room). Afterwards gpt_logits_seq(c, s) gives the logits after the last
 * kept id of each sequence s of the batch. */
GPT_API gpt_status gpt_eval_batch(gpt_context *c, const gpt_batch *b);
/* Logits after entry i of the last gpt_eval_batch (or gpt_eval) whose
 * logits were kept; NULL otherwise. */
GPT_API const float *gpt_logits_batch(const gpt_context *c, int i);
/* n_vocab logits after the last evaluated id of sequence seq whose logits
 * were kept; NULL before any, after gpt_seq_rewind, and for a bad seq. */
GPT_API const float *gpt_logits_seq(const gpt_context *c, int seq);
/* Most entries of one batch whose logits can be kept: max(n_seq, 8), or
 * max(n_ctx, n_seq) with all_logits. */
GPT_API int gpt_context_max_logits(const gpt_context *c);

/* Positions sequence seq holds; 0 for a bad seq. */
GPT_API int gpt_seq_n_past(const gpt_context *c, int seq);
/* The ids sequence seq holds; NULL for a bad seq. */
GPT_API const int *gpt_seq_tokens(const gpt_context *c, int seq);
/* Keeps the first n_keep positions of sequence seq and drops the rest (the
 * pages it no longer needs go back to the pool). */
GPT_API gpt_status gpt_seq_rewind(gpt_context *c, int seq, int n_keep);
/* Empties sequence seq: gpt_seq_rewind(c, seq, 0). */
GPT_API gpt_status gpt_seq_clear(gpt_context *c, int seq);
/* Makes sequence dst a copy of sequence src: its ids, its cache (shared,
 * copied a page at a time only when one of them writes to a shared page)
 * and its last logits. What dst held is dropped. dst == src is
 * GPT_ERR_INVALID_ARG. */
GPT_API gpt_status gpt_seq_fork(gpt_context *c, int src, int dst);

/* Log-probability (natural log) of every id given the ids before it:
 * logprobs[i - 1] = log p(ids[i] | ids[0..i-1]) for i = 1 .. n-1 (the
 * context needs n_ctx >= 2). Sequences longer than the context are scored in
 * sliding windows: with W = n_ctx and S = W / 2, window k covers ids
 * [k*S, min(k*S + W, n)) and scores those of its ids that no earlier window
 * scored; the last window is the first that reaches id n-1. So every id is
 * conditioned on all earlier ids of its window, at least W - S of them once
 * the sequence is longer than W. The context is cleared first and left
 * holding the last window. */
GPT_API gpt_status gpt_score(gpt_context *c, const int *ids, int n, float *logprobs);
/* The same, calling on_progress(scored, n - 1, user) after each window;
 * a non-zero return stops with GPT_ERR_CANCELLED. */
GPT_API gpt_status gpt_score_ex(gpt_context *c, const int *ids, int n, float *logprobs,
                                int (*on_progress)(int scored, int total, void *user), void *user);

/* ------------------------------------------------------------------------ */
/* Sampling                                                                 */

/* What gpt_generate does when the context window is full. */
typedef enum gpt_context_policy {
    GPT_CONTEXT_STOP = 0, /* stop with GPT_ERR_CONTEXT_FULL */
    GPT_CONTEXT_SLIDE = 1 /* drop the oldest half of the window and go on */
} gpt_context_policy;

/* How beam search decides it is done (Hugging Face's early_stopping). */
typedef enum gpt_early_stopping {
    GPT_EARLY_STOP_HEURISTIC = 0, /* HF False: stop when no beam can still beat the
                                     worst kept hypothesis, judged at the current length */
    GPT_EARLY_STOP_TRUE = 1,      /* HF True: stop as soon as num_beams hypotheses are done */
    GPT_EARLY_STOP_NEVER = 2      /* HF "never": stop only when no beam can beat them at
                                     any length up to the limit */
} gpt_early_stopping;

#define GPT_MAX_LOGPROBS 20 /* most alternatives per token that n_logprobs can ask for */

typedef struct gpt_generate_params {
    int max_new_tokens;       /* default 128; 0 generates nothing; -1 = no limit (until
                                 <|endoftext|>, a stop string, max_length or a full context) */
    float temperature;        /* default 0.8; 0 = greedy (argmax) */
    int top_k;                /* default 40; 0 = off */
    float top_p;              /* default 0.95; 1 = off */
    float min_p;              /* default 0.05; 0 = off */
    float repetition_penalty; /* default 1.0 = off; CTRL-style, > 0 */
    int repeat_last_n;        /* tokens the penalty looks back on; -1 (default) = all in context */
    uint64_t seed;            /* default 42; same seed, same text */
    const char *const *stop;  /* n_stop stop strings; generation ends before one, unprinted */
    int n_stop;
    int ignore_eos;           /* non-zero: do not stop at <|endoftext|> */
    int special;              /* non-zero: "<|endoftext|>" in the prompt is the EOT id */
    gpt_context_policy context_policy; /* default GPT_CONTEXT_STOP */
    /* since 0.3 (Hugging Face's generate() options keep its names) */
    int n_sequences;          /* continuations of the prompt (HF num_return_sequences); default
                                 1. They run as sequences 0 .. n_sequences-1 of the context,
                                 sampled together in one batch; continuation i draws from
                                 seed + i, so it equals a run of its own with that seed */
    int max_length;           /* positions a sequence may reach, prompt included (HF
                                 max_length); 0 (default) = no such limit. With
                                 max_new_tokens, whichever comes first stops */
    int min_new_tokens;       /* <|endoftext|> cannot be chosen before this many new tokens
                                 (HF); default 0 */
    int do_sample;            /* -1 (default): sample when temperature > 0, else greedy; 0: HF's
                                 do_sample=False (greedy, or beam search with num_beams > 1;
                                 temperature, top-k, top-p and min-p are not used); 1: sample */
    int num_beams;            /* beam search with this many beams (HF); default 1 = off; needs
                                 a context of at least num_beams sequences */
    float length_penalty;     /* a hypothesis scores sum(logprobs) / length^length_penalty,
                                 length = its new tokens (HF); default 1.0 */
    int early_stopping;       /* a gpt_early_stopping; default GPT_EARLY_STOP_HEURISTIC */
    int no_repeat_ngram_size; /* no n-gram of this size occurs twice (HF); default 0 = off */
    float presence_penalty;   /* OpenAI's: subtracted from the logit of every token generated
                                 at least once; default 0 */
    float frequency_penalty;  /* OpenAI's: subtracted once per time a token was generated;
                                 default 0 */
    int n_logprobs;           /* alternatives reported with each token: 0 (default) ..
                                 GPT_MAX_LOGPROBS */
} gpt_generate_params;

GPT_API gpt_generate_params gpt_generate_defaults(void);
/* Checks every field; GPT_ERR_INVALID_ARG with a message in err otherwise. */
GPT_API gpt_status gpt_generate_params_check(const gpt_generate_params *p, gpt_error *err);

/* A sampler: the logit filters of gpt_generate_params and a seeded random
 * generator of its own (results do not depend on the platform's rand()). */
typedef struct gpt_sampler gpt_sampler;

GPT_API gpt_sampler *gpt_sampler_new(const gpt_generate_params *p, int n_vocab, gpt_error *err);
GPT_API void gpt_sampler_free(gpt_sampler *s);
/* Restarts the random sequence from a seed. */
GPT_API void gpt_sampler_seed(gpt_sampler *s, uint64_t seed);
/* Draws one id from n_vocab logits. history (n_history ids, may be NULL) is
 * what the repetition penalty looks at. Returns the id, or a negative
 * gpt_status. Order: repetition penalty, temperature, top-k, top-p, min-p. */
GPT_API int gpt_sampler_sample(gpt_sampler *s, const float *logits, const int *history, int n_history);

/* ------------------------------------------------------------------------ */
/* Generation                                                               */

/* Receives generated text: len bytes, always whole UTF-8 characters. Return
 * non-zero to stop generating. */
typedef int (*gpt_on_text)(const char *text, size_t len, void *user);

typedef enum gpt_stop_reason {
    GPT_STOP_NONE = 0,       /* generation did not run (an error happened first) */
    GPT_STOP_MAX_TOKENS = 1, /* max_new_tokens were generated */
    GPT_STOP_EOS = 2,        /* the model produced <|endoftext|> */
    GPT_STOP_STRING = 3,     /* a stop string appeared */
    GPT_STOP_CALLBACK = 4,   /* the callback returned non-zero */
    GPT_STOP_CONTEXT_FULL = 5 /* the context window is full (GPT_CONTEXT_STOP) */
} gpt_stop_reason;

typedef struct gpt_generate_result {
    gpt_stop_reason stop_reason;
    int n_prompt_tokens; /* ids the prompt was tokenized into */
    int n_generated;     /* ids sampled: <|endoftext|> included, and under
                            GPT_CONTEXT_STOP the one that found no room */
} gpt_generate_result;

/* A token and its log-probability. */
typedef struct gpt_token_logprob {
    int token;
    float logprob;
} gpt_token_logprob;

/* What one step of a generation gives for one of its sequences. */
typedef struct gpt_piece {
    int seq;                /* which continuation: 0 .. n_sequences-1 (beam search: the rank
                               of the hypothesis, best first) */
    int token;              /* the id chosen at this step; -1 for a piece that only ends its
                               sequence */
    float logprob;          /* its natural-log probability under the model: log_softmax of
                               the raw logits (beam search: of the hypothesis's last id) */
    const char *text;       /* the text this step releases: whole UTF-8 characters, never
                               any of a stop string; NUL-terminated; may be empty */
    size_t len;
    gpt_stop_reason stop_reason; /* GPT_STOP_NONE while the sequence goes on; otherwise it
                                    ended with this piece, which is its last */
    const gpt_token_logprob *top; /* for each of the piece's ids, the n_top most likely ids at
                                     its step by the same log-probabilities, most likely
                                     first: top[i * n_top + j] */
    int n_top;
    /* the ids of the piece: the one token of a sampled piece; with beam search
       each returned hypothesis comes as one piece at the end, with all its ids */
    const int *tokens;      /* n_tokens ids, <|endoftext|> included if it ended so */
    const float *logprobs;  /* the log-probability of each */
    int n_tokens;
    float score;            /* beam search: the sum of its ids' log-probabilities as beam
                               search ranked them (after the penalties) / n_tokens^
                               length_penalty */
} gpt_piece;

/* Receives each piece; return non-zero to stop the whole generation. */
typedef int (*gpt_on_piece)(const gpt_piece *piece, void *user);

/* A generation as an object, stepped by the caller (SQLite's prepare,
 * step, finalize): no callback and no thread, so a loop in any language can
 * stream the text.
 *
 * gpt_generator_new checks the parameters and tokenizes the prompt; the
 * first gpt_generator_next appends the prompt to sequence 0 (an empty prompt
 * on an empty sequence starts from <|endoftext|>), copies sequence 0 to
 * sequences 1 .. n_sequences-1 (or num_beams-1), and from then on each
 * call returns the next piece: 1 with *piece filled, 0 when every sequence
 * has ended, or a negative gpt_status (gpt_generator_error says why). One
 * step samples a token for every sequence still going, in one batched
 * forward step, and yields their pieces in sequence order. A piece is valid
 * until the next call on its generator.
 *
 * The generator owns the sequences it uses until it is freed: the caller
 * must not evaluate, rewind or fork them meanwhile, and must free the
 * generator before its context. Freeing it keeps what the sequences hold
 * (the prompt and the tokens generated), as gpt_generate does. */
typedef struct gpt_generator gpt_generator;

GPT_API gpt_generator *gpt_generator_new(gpt_context *c, const char *prompt, const gpt_generate_params *p,
                                         gpt_error *err);
/* The same with the prompt as ids (n_ids may be 0: continue what the first
 * sequence holds) and the context's sequences to use: seqs[i] for
 * continuation i (n_sequences of them, or num_beams for beam search; NULL =
 * 0, 1, ...). The prompt goes to seqs[0]. Generators on one context with
 * disjoint sequences can be stepped together by gpt_generator_step. */
GPT_API gpt_generator *gpt_generator_new_ids(gpt_context *c, const int *ids, int n_ids, const int *seqs,
                                             const gpt_generate_params *p, gpt_error *err);
GPT_API int gpt_generator_next(gpt_generator *g, gpt_piece *piece);
/* One step of several generators of the same context in one batched forward
 * step (continuous batching: a new generator's prompt joins the others'
 * next tokens). Their pieces are then taken with gpt_generator_next, which
 * computes nothing while a generator has pieces waiting
 * (gpt_generator_pending). The same seed gives the same text whatever else
 * is in the step. A generator that fails in the step (non-finite logits)
 * fails alone: its gpt_generator_next returns the status, and the others
 * go on; when the forward step itself cannot run (the KV cache is full),
 * every generator of the step fails with that status, which is returned.
 * After beam search, the sequences hold the last beams, not the returned
 * hypotheses. */
GPT_API gpt_status gpt_generator_step(gpt_generator *const *gens, int n);
/* Pieces waiting to be taken. */
GPT_API int gpt_generator_pending(const gpt_generator *g);
/* Non-zero once no step can give it more: every sequence has ended (its
 * last pieces may still be waiting), or it failed. */
GPT_API int gpt_generator_done(const gpt_generator *g);
/* Why continuation i stopped and how many ids it used so far. */
GPT_API gpt_status gpt_generator_result(const gpt_generator *g, int i, gpt_generate_result *r);
/* Message of the generator's last failure. */
GPT_API const char *gpt_generator_error(const gpt_generator *g);
GPT_API void gpt_generator_free(gpt_generator *g);

/* gpt_generate with a callback that is told which sequence each piece
 * belongs to; results (n_sequences entries, which with beam search are the
 * returned hypotheses; may be NULL) says why each one stopped. */
GPT_API gpt_status gpt_generate_pieces(gpt_context *c, const char *prompt, const gpt_generate_params *p,
                                       gpt_on_piece on_piece, void *user, gpt_generate_result *results);

/* Tokenizes prompt (may be NULL or empty), appends it to sequence 0, then
 * samples up to max_new_tokens ids and streams their text to on_text (which
 * may be NULL). An empty context with an empty prompt starts from
 * <|endoftext|>, as GPT-2 does for unconditional text. Returns GPT_OK when it
 * stops for max_new_tokens, <|endoftext|>, a stop string or the callback;
 * GPT_ERR_CONTEXT_FULL when the window fills under GPT_CONTEXT_STOP (the text
 * so far has been delivered); another status on error. A thin wrapper over
 * the generator; for n_sequences > 1 or beam search, use
 * gpt_generate_pieces or the generator, which say which sequence a piece
 * belongs to (GPT_ERR_INVALID_ARG here). */
GPT_API gpt_status gpt_generate(gpt_context *c, const char *prompt, const gpt_generate_params *p,
                                gpt_on_text on_text, void *user);
/* The same, reporting why it stopped and how many ids it used. */
GPT_API gpt_status gpt_generate_ex(gpt_context *c, const char *prompt, const gpt_generate_params *p,
                                   gpt_on_text on_text, void *user, gpt_generate_result *result);

#ifdef __cplusplus
}
#endif

#endif /* GPT_H */

/* ------------------------------------------------------------------------ */
/* Internal: shared by gpt.c, tokenizer.c and the gpt command, which define  */
/* GPT_INTERNAL before including this header (again: this part has its own */
/* guard, so a file that included gpt.h earlier can still get it). Not part */
/* of the API and not exported from the shared library.                     */

#if defined(GPT_INTERNAL) && !defined(GPT_H_INTERNAL)
#define GPT_H_INTERNAL
#include <stdio.h>
#include <stdlib.h>
#ifdef __cplusplus
extern "C" {
#endif
#if !defined(GPT_MALLOC) && !defined(GPT_REALLOC) && !defined(GPT_FREE)
#define GPT_MALLOC(n) malloc(n)
#define GPT_REALLOC(p, n) realloc((p), (n))
#define GPT_FREE(p) free(p)
#elif !defined(GPT_MALLOC) || !defined(GPT_REALLOC) || !defined(GPT_FREE)
#error "define all three of GPT_MALLOC, GPT_REALLOC and GPT_FREE, or none"
#endif

/* Allocations through the hooks above; gpt__calloc zeroes, and checks
 * count * size for overflow. */
void *gpt__alloc(size_t n);
void *gpt__calloc(size_t count, size_t size);
void *gpt__realloc(void *p, size_t n);
void gpt__free(void *p);
/* Asks Linux for 2 MB pages for a large buffer that is streamed (weights,
 * KV caches, gpt bench's read); nothing elsewhere. */
void gpt__advise_huge(void *p, size_t n);
/* Fills err (may be NULL) with status and a printf-style message; returns
 * status. */
gpt_status gpt__set_error(gpt_error *err, gpt_status status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
void gpt__clear_error(gpt_error *err);
/* fopen with a UTF-8 file name on every platform (Windows included). */
FILE *gpt__fopen(const char *path, const char *mode);
/* Opens path for reading ("rb") only if it is a regular file of at most
 * max_size bytes (0: no limit), without blocking on a FIFO; *size (may be
 * NULL) gets its size. Anything else (a directory, FIFO, device, socket, a
 * file over the limit) fails with GPT_ERR_IO and a message naming what it
 * is. Without POSIX or Windows file calls only the size is checked. */
FILE *gpt__open_regular(const char *path, uint64_t max_size, uint64_t *size, gpt_error *err);
/* "a directory", "a FIFO (named pipe)", ... for a stat() st_mode. */
const char *gpt__file_kind(unsigned long mode);
/* Length of the well-formed UTF-8 character at s[0 .. avail) (Unicode's
 * Table 3-7) and its code point, or 0 when none starts there. */
size_t gpt__utf8_decode(const unsigned char *s, size_t avail, uint32_t *cp);
/* Length of the UTF-8 sequence lead byte c starts (0 if none) and the range
 * its second byte must be in. */
size_t gpt__utf8_seq_len(unsigned c, unsigned *lo, unsigned *hi);
/* Which weight types take dot products on rounded activations in this
 * build: 1 q8_0 (activations in int8 blocks), 2 bf16 (activations in
 * bf16), or both; see GPT_NO_VNNI and GPT_NO_BF16DOT. Plus 4 where f32
 * matrices take one chain of FMAs per output through panels of 64 columns
 * (AVX-512), and 8 where bf16 products take AMX's tiles on this machine
 * (GPT_NO_AMX). */
int gpt__dot_products(void);
/* IEEE half and bfloat16 conversions (rounding to nearest even). */
float gpt__f16_to_f32(uint16_t h);
uint16_t gpt__f32_to_f16(float f);
float gpt__bf16_to_f32(uint16_t b);
uint16_t gpt__f32_to_bf16(float f);
/* The checkpoint's canonical tensors (docs/FORMAT.md): Hugging Face style
 * name of tensor k ("wte.weight", "h.3.mlp.c_fc.weight"), its shape for a
 * configuration, and the bytes of a tensor of a type and shape (0 on
 * overflow). */
void gpt__tensor_name(uint32_t k, uint32_t n_layer, char *buf, size_t cap);
void gpt__tensor_shape(uint32_t k, const gpt_config *c, uint32_t *rows, uint32_t *cols);
uint64_t gpt__tensor_nbytes(gpt_dtype t, uint64_t rows, uint64_t cols);

#ifdef __cplusplus
}
#endif
#endif /* GPT_INTERNAL */
