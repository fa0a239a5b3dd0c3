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
 *     shared by any number of threads. A gpt_context (one sequence, its KV
 *     cache and scratch memory) is used by one thread at a time.
 *   - Freeing NULL is always allowed.
 *
 * Build options (define them when compiling gpt.c and tokenizer.c; no build
 * system is needed: `cc -O2 -march=native -c gpt.c tokenizer.c`)
 *   GPT_NO_SIMD      the portable scalar kernels only, even where the target
 *                    has AVX-512, AVX2 + FMA + F16C or NEON (the SIMD kernels
 *                    are chosen by the compiler's target flags, e.g.
 *                    -march=native); results agree within 1e-5 relative
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
#if defined(GPT_INTERNAL)
#include <stdio.h>
#include <stdlib.h>
#endif

#define GPT_VERSION_MAJOR 0
#define GPT_VERSION_MINOR 2
#define GPT_VERSION_PATCH 0
#define GPT_VERSION_STRING "0.2.0"
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
 * or Hugging Face's vocab.json + merges.txt (same formats). */
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

/* Loads a checkpoint (docs/FORMAT.md). The file is mapped and used in place
 * where the platform allows it, otherwise read into memory. */
GPT_API gpt_model *gpt_model_load(const char *path, gpt_error *err);
/* How gpt_model_load_ex reads the file. */
typedef struct gpt_load_params {
    int no_mmap; /* non-zero: read the file into memory instead of mapping it. A mapped
                    file that another process truncates makes the next access to the
                    lost pages raise SIGBUS (docs/SAFETY.md); a copy costs the file's
                    size in memory and the time to read it */
} gpt_load_params;

/* gpt_model_load with parameters (NULL: the defaults, as gpt_model_load). */
GPT_API gpt_model *gpt_model_load_ex(const char *path, const gpt_load_params *p, gpt_error *err);
/* Loads from a copy of len bytes at buf; buf may be freed right away. */
GPT_API gpt_model *gpt_model_load_memory(const void *buf, size_t len, gpt_error *err);
/* Loads from buf without copying: buf must be aligned to 64 bytes
 * (GPT_ERR_INVALID_ARG otherwise), must not change, and must outlive the
 * model. The library only reads it. */
GPT_API gpt_model *gpt_model_load_memory_inplace(const void *buf, size_t len, gpt_error *err);
GPT_API void gpt_model_free(gpt_model *m);

GPT_API gpt_config gpt_model_config(const gpt_model *m);
GPT_API const gpt_tokenizer *gpt_model_tokenizer(const gpt_model *m);

/* ------------------------------------------------------------------------ */
/* Contexts: one sequence, its KV cache and scratch                         */

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
} gpt_context_params;

GPT_API gpt_context_params gpt_context_defaults(void);
/* Bytes a context with these parameters allocates (exactly what
 * gpt_context_new takes through GPT_MALLOC, all at creation; evaluating
 * allocates nothing more), or 0 when the parameters are invalid for the
 * model. With T = n_ctx and D = head_dim, both rounded up to multiples of
 * 64, in floats: the KV cache, n_layer * T * (n_embd + n_head * D) (halves
 * with an f16 cache); activations, n_batch * 10 * n_embd; per thread,
 * 48 * T + 4 * n_embd + 4096 (plus 16384 with AVX-512); logits,
 * 8 * n_vocab, or n_ctx * n_vocab with all_logits; n_ctx token ids; and a
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
/* Number of positions in the cache. */
GPT_API int gpt_context_n_past(const gpt_context *c);
/* The ids in the cache (gpt_context_n_past of them). */
GPT_API const int *gpt_context_tokens(const gpt_context *c);

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

typedef struct gpt_generate_params {
    int max_new_tokens;       /* default 128; 0 generates nothing */
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
    int n_generated;     /* ids sampled */
} gpt_generate_result;

/* Tokenizes prompt (may be NULL or empty), appends it to the context, then
 * samples up to max_new_tokens ids and streams their text to on_text (which
 * may be NULL). An empty context with an empty prompt starts from
 * <|endoftext|>, as GPT-2 does for unconditional text. Returns GPT_OK when it
 * stops for max_new_tokens, <|endoftext|>, a stop string or the callback;
 * GPT_ERR_CONTEXT_FULL when the window fills under GPT_CONTEXT_STOP (the text
 * so far has been delivered); another status on error. */
GPT_API gpt_status gpt_generate(gpt_context *c, const char *prompt, const gpt_generate_params *p,
                                gpt_on_text on_text, void *user);
/* The same, reporting why it stopped and how many ids it used. */
GPT_API gpt_status gpt_generate_ex(gpt_context *c, const char *prompt, const gpt_generate_params *p,
                                   gpt_on_text on_text, void *user, gpt_generate_result *result);

/* ------------------------------------------------------------------------ */
/* Internal: shared by gpt.c, tokenizer.c and the gpt command, which define  */
/* GPT_INTERNAL before including this header. Not part of the API and not    */
/* exported from the shared library.                                         */

#if defined(GPT_INTERNAL)
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
/* Length of the well-formed UTF-8 character at s[0 .. avail) (Unicode's
 * Table 3-7) and its code point, or 0 when none starts there. */
size_t gpt__utf8_decode(const unsigned char *s, size_t avail, uint32_t *cp);
/* Length of the UTF-8 sequence lead byte c starts (0 if none) and the range
 * its second byte must be in. */
size_t gpt__utf8_seq_len(unsigned c, unsigned *lo, unsigned *hi);
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
#endif /* GPT_INTERNAL */

#ifdef __cplusplus
}
#endif

#endif /* GPT_H */
