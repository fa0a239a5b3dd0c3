/*
 * test_hostile.c - a generator of hostile checkpoints: it corrupts valid
 * checkpoints in every way docs/FORMAT.md allows and checks that each load
 * either fails with GPT_ERR_FORMAT / GPT_ERR_UNSUPPORTED and a message, or
 * loads a model that survives gpt_eval, gpt_score and gpt_generate.
 *
 * tests/test_loader.c checks named messages for ~40 single damages; this
 * file goes wide instead: truncation at every byte offset (with and without
 * the header's file_size following the cut), every header and directory
 * field set to 0, -1, huge, overflowing and off-by-one values, tensors moved
 * outside the file, off alignment and onto each other, the tokenizer
 * section's fields and tables broken one by one, and random byte flips in
 * every region. Each buffer is handed to the loader as an exact-size,
 * 64-aligned allocation, so the model is built in place and AddressSanitizer
 * (make test-sanitize) sees any read past the end. A sample of the cases is
 * also loaded through the copying path and from a file (mmap), and must give
 * the same status.
 */
#if (defined(__unix__) || defined(__APPLE__)) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#include <math.h>
#include <stdlib.h>
#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>
#define PROCESS_ID() ((long)getpid())
#else
#define PROCESS_ID() 0L
#endif
#if defined(_WIN32)
#include <malloc.h> /* _aligned_malloc */
#endif

#include "model_util.h"
#include "test.h"
#include "util.h"

static void put_width(unsigned char *p, int width, uint64_t v)
{
    if (width == 4) put32(p, (uint32_t)v);
    else put64(p, v);
}
static uint64_t get_width(const unsigned char *p, int width) { return width == 4 ? get32(p) : get64(p); }

static uint64_t rng_state = 0x5EED1234ABCDull;
static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* ------------------------------------------------------------------------ */
/* The valid checkpoints that get damaged                                   */

#define DIR_AT(k) (128 + 32 * (size_t)(k))
#define N_BASES 5

typedef struct base {
    const char *name;
    unsigned char *b;
    size_t len;
    uint32_t n_tensors;
    uint64_t tok_off, tok_size;
} base;

static base bases[N_BASES];

/* A vocabulary of the 256 bytes, a few merged tokens (two of them multi-byte
 * UTF-8 characters) and <|endoftext|>, as encoder.json + vocab.bpe text. */
static gpt_tokenizer *small_eot_tokenizer(gpt_error *err)
{
    static const char *const merge[][2] = {{"a", "b"}, {"ab", "c"}, {"\xC3", "\xA9"}, {" ", "\xC3\xA9"},
                                           {"\xE6", "\x97"}, {"\xE6\x97", "\xA5"}};
    static char v[16384], mg[1024];
    size_t o, mo;
    byte_vocab_text(merge, sizeof merge / sizeof merge[0], v, &o, mg, &mo);
    return gpt_tokenizer_load_memory(v, o, mg, mo, err);
}

static unsigned char *small_eot_checkpoint(size_t *len, gpt_error *err)
{
    ckpt_spec spec;
    ckpt_random rnd_src;
    unsigned char *buf = NULL;
    gpt_tokenizer *tok = small_eot_tokenizer(err);
    if (!tok) return NULL;
    memset(&spec, 0, sizeof spec);
    spec.n_layer = 1;
    spec.n_head = 2;
    spec.n_embd = 16;
    spec.n_ctx = 8;
    spec.n_vocab = gpt_tokenizer_n_vocab(tok);
    spec.ln_eps = 1e-5f;
    spec.dtype = GPT_DTYPE_F16;
    spec.wpe_dtype = GPT_DTYPE_Q8_0;
    spec.tok = tok;
    rnd_src.seed = 9;
    rnd_src.n_layer = 1;
    if (ckpt_write_memory(&spec, ckpt_random_source, &rnd_src, &buf, len, err) != GPT_OK) buf = NULL;
    gpt_tokenizer_free(tok);
    return buf;
}

static int make_bases(char *why, size_t cap)
{
    static const struct { const char *name; int L, H, C, T, V; gpt_dtype dt; } spec[N_BASES - 1] = {
        {"f32 2x2x16 V300", 2, 2, 16, 8, 300, GPT_DTYPE_F32},
        {"f16 1x1x16 V256", 1, 1, 16, 8, 256, GPT_DTYPE_F16},
        {"bf16 1x2x16 V280", 1, 2, 16, 8, 280, GPT_DTYPE_BF16},
        {"q8_0 1x1x40 V300", 1, 1, 40, 8, 300, GPT_DTYPE_Q8_0},
    };
    gpt_error err;
    int i;
    for (i = 0; i < N_BASES; i++) {
        base *b = &bases[i];
        if (i < N_BASES - 1) {
            b->name = spec[i].name;
            b->b = random_checkpoint(spec[i].L, spec[i].H, spec[i].C, spec[i].T, spec[i].V, 100 + (uint64_t)i,
                                     spec[i].dt, &b->len, &err);
        } else {
            b->name = "f16+q8_0 wpe, small vocab with EOT";
            b->b = small_eot_checkpoint(&b->len, &err);
        }
        if (!b->b) {
            snprintf(why, cap, "%s: %s", b->name, err.message);
            return 0;
        }
        b->n_tensors = get32(b->b + 72);
        b->tok_off = get64(b->b + 48);
        b->tok_size = get64(b->b + 56);
    }
    return 1;
}

/* ------------------------------------------------------------------------ */
/* Loading one damaged image                                                */

typedef enum expect { MUST_FAIL, MAY_LOAD, MUST_LOAD } expect;

static long n_cases, n_loaded, n_refused, n_copy_checked, n_file_checked;
static char tmp_path[512];

/* An exact-size, 64-aligned copy: the loader uses it in place, and any read
 * past len is outside the allocation. */
static unsigned char *exact_copy(const unsigned char *src, size_t len)
{
    void *p = NULL;
    size_t n = len ? len : 1;
#if defined(_WIN32)
    p = _aligned_malloc(n, 64);
#elif defined(__unix__) || defined(__APPLE__)
    if (posix_memalign(&p, 64, n) != 0) p = NULL;
#else
#error "exact_copy needs an aligned allocator on this platform"
#endif
    if (!p) return NULL;
    if (len) memcpy(p, src, len);
    return (unsigned char *)p;
}

static void exact_free(unsigned char *p)
{
#if defined(_WIN32)
    _aligned_free(p);
#else
    free(p);
#endif
}

static void put_token(char *text, int *n, int id) { text[(*n)++] = (char)('a' + id % 26); }

/* What a model must survive: eval, logits, score, generate (greedy, sampled
 * with stop strings, sliding), on one and two threads. */
static int exercise(gpt_model *m, char *why, size_t cap, long case_no)
{
    gpt_config cfg = gpt_model_config(m);
    const gpt_tokenizer *tok = gpt_model_tokenizer(m);
    gpt_context_params cp = gpt_context_defaults();
    gpt_generate_params gp = gpt_generate_defaults();
    gpt_generate_result res;
    const char *stops[2] = {"e", "\xC3\xA9"};
    gpt_context *c;
    gpt_status st;
    int ids[8], i, n = cfg.n_ctx < 6 ? cfg.n_ctx : 6, np = 0;
    float lp[8];
    char prompt[16];
    if (!tok || gpt_tokenizer_n_vocab(tok) != cfg.n_vocab || cfg.n_vocab < 1 || cfg.n_ctx < 1 || cfg.n_embd < 1 ||
        cfg.n_head < 1 || cfg.n_embd % cfg.n_head != 0 || cfg.n_layer < 1) {
        snprintf(why, cap, "loaded a model with an inconsistent config");
        return 0;
    }
    cp.n_threads = 1; /* threads: tests/test_threads.c */
    cp.n_ctx = cfg.n_ctx < 8 ? cfg.n_ctx : 8;
    c = gpt_context_new(m, &cp, NULL);
    if (!c) {
        snprintf(why, cap, "loaded, but gpt_context_new failed");
        return 0;
    }
    for (i = 0; i < n; i++) ids[i] = (int)((i * 97 + 13) % cfg.n_vocab);
    if ((st = gpt_eval(c, ids, n)) != GPT_OK || !gpt_logits(c)) {
        snprintf(why, cap, "loaded, but gpt_eval gave %s: %s", gpt_status_name(st), gpt_context_error(c));
        gpt_context_free(c);
        return 0;
    }
    /* weights that make the logits NaN or infinite are a clean
     * GPT_ERR_NUMERIC, not garbage text or a perplexity of nan */
    if (cp.n_ctx >= 2 && (st = gpt_score(c, ids, n, lp)) != GPT_OK && st != GPT_ERR_NUMERIC) {
        snprintf(why, cap, "loaded, but gpt_score gave %s", gpt_status_name(st));
        gpt_context_free(c);
        return 0;
    }
    gpt_rewind(c, 0);
    for (i = 0; i < 3; i++) put_token(prompt, &np, (int)(case_no + i));
    prompt[np] = 0;
    gp.max_new_tokens = 4;
    gp.temperature = case_no % 3 == 0 ? 0.0f : 1.0f;
    gp.top_k = (int)(case_no % 5);
    gp.repetition_penalty = 1.3f;
    gp.stop = stops;
    gp.n_stop = 2;
    gp.seed = (uint64_t)case_no;
    gp.context_policy = GPT_CONTEXT_SLIDE;
    st = gpt_generate_ex(c, prompt, &gp, NULL, NULL, &res);
    if (st != GPT_OK && st != GPT_ERR_NUMERIC) {
        snprintf(why, cap, "loaded, but gpt_generate gave %s: %s", gpt_status_name(st), gpt_context_error(c));
        gpt_context_free(c);
        return 0;
    }
    gpt_context_free(c);
    return 1;
}

/* Why the last check_case failed. */
static char last_why[400];

/* Loads buf[0..len) and applies the expectation. Returns 1 if it holds;
 * otherwise leaves the reason in last_why and returns 0. */
static int check_case(const unsigned char *img, size_t len, expect ex)
{
    gpt_error err;
    gpt_model *m;
    unsigned char *buf = exact_copy(img, len);
    char why[400];
    int ok = 1, loaded;
    gpt_status status;
    long case_no = n_cases++;
    if (!buf) {
        snprintf(last_why, sizeof last_why, "out of memory in the test");
        return 0;
    }
    why[0] = 0;
    memset(&err, 0x55, sizeof err);
    m = gpt_model_load_memory_inplace(buf, len, &err);
    loaded = m != NULL;
    status = m ? GPT_OK : err.status;
    if (memcmp(buf, img, len) != 0) {
        snprintf(why, sizeof why, "the loader wrote into the caller's buffer");
        ok = 0;
    } else if (m) {
        n_loaded++;
        if (ex == MUST_FAIL) {
            snprintf(why, sizeof why, "loaded, but the damage must be refused");
            ok = 0;
        } else {
            ok = exercise(m, why, sizeof why, case_no);
        }
        gpt_model_free(m);
    } else {
        n_refused++;
        if (ex == MUST_LOAD) {
            snprintf(why, sizeof why, "refused a harmless change: %s: %s", gpt_status_name(err.status), err.message);
            ok = 0;
        } else if (err.status != GPT_ERR_FORMAT && err.status != GPT_ERR_UNSUPPORTED) {
            snprintf(why, sizeof why, "status %s (%d), expected GPT_ERR_FORMAT or GPT_ERR_UNSUPPORTED: %.200s",
                     gpt_status_name(err.status), (int)err.status, err.message);
            ok = 0;
        } else if (!memchr(err.message, 0, sizeof err.message) || !err.message[0] ||
                   strncmp(err.message, "buffer", 6) != 0) {
            snprintf(why, sizeof why, "the message is empty, unterminated or does not name the buffer");
            ok = 0;
        }
    }
    exact_free(buf);
    /* the copying path (an unaligned buffer) must agree */
    if (ok && case_no % 8 == 3) {
        unsigned char *raw = (unsigned char *)malloc(len + 1);
        n_copy_checked++;
        if (raw) {
            memcpy(raw + 1, img, len);
            m = gpt_model_load_memory(raw + 1, len, &err);
            if ((m != NULL) != loaded || (!m && err.status != status)) {
                snprintf(why, sizeof why, "a copied buffer gives %s, in place gave %s", m ? "GPT_OK" :
                         gpt_status_name(err.status), gpt_status_name(status));
                ok = 0;
            }
            gpt_model_free(m);
            free(raw);
        }
    }
    /* and a file (mapped) too */
    if (ok && case_no % 128 == 7) {
        FILE *f = fopen(tmp_path, "wb");
        n_file_checked++;
        if (f && fwrite(img, 1, len, f) == len && fclose(f) == 0) {
            m = gpt_model_load(tmp_path, &err);
            if ((m != NULL) != loaded || (!m && err.status != status)) {
                snprintf(why, sizeof why, "the file gives %s, the buffer gave %s", m ? "GPT_OK" :
                         gpt_status_name(err.status), gpt_status_name(status));
                ok = 0;
            } else if (!m && !strstr(err.message, tmp_path)) {
                snprintf(why, sizeof why, "the message does not name the file: %s", err.message);
                ok = 0;
            } else if (m && !exercise(m, why, sizeof why, case_no)) {
                ok = 0;
            }
            gpt_model_free(m);
        } else if (f) {
            fclose(f);
        }
    }
    if (!ok) snprintf(last_why, sizeof last_why, "%s", why);
    return ok;
}

/* A scratch copy of base b to damage, with room to grow to 2 * len + 4096
 * bytes (zeros past len). */
static unsigned char *work;
static size_t work_cap;

static unsigned char *fresh(const base *b)
{
    if (work_cap < 2 * b->len + 4096) {
        free(work);
        work_cap = 2 * b->len + 4096;
        work = (unsigned char *)malloc(work_cap);
        if (!work) return NULL;
    }
    memset(work, 0, work_cap);
    memcpy(work, b->b, b->len);
    return work;
}

/* Checks one case; reports the first failure of a test as its FAIL line
 * and a few more as '#' lines, then only counts them. */
static int fails_shown;
static void case_at(const unsigned char *img, size_t len, expect ex, const char *what, const char *file, int line)
{
    if (check_case(img, len, ex)) return;
    if (fails_shown == 0) test_fail_at(file, line, "%s: %s", what, last_why);
    else if (fails_shown < 8) printf("# also: %s: %s\n", what, last_why);
    fails_shown++;
}
#define CASE(img, len, ex, what) case_at((img), (len), (ex), (what), __FILE__, __LINE__)

/* ------------------------------------------------------------------------ */
/* A small reference of the layout rules (FORMAT.md), used to predict       */
/* whether moving a region makes the file invalid                           */

static uint64_t nbytes_of(uint32_t dt, uint64_t rows, uint64_t cols)
{
    uint64_t nb = (cols + 31) / 32;
    switch (dt) {
    case 0: return 4 * rows * cols;
    case 1:
    case 2: return 2 * rows * cols;
    case 3: return (rows * nb * 32 + 63) / 64 * 64 + 2 * rows * nb;
    }
    return 0;
}

/* 1 if every region is aligned, after the directory, inside the file and
 * no two overlap. */
static int layout_valid(const unsigned char *img, size_t len)
{
    uint32_t n = get32(img + 72), i, j;
    uint64_t dir_end = 128 + 32 * (uint64_t)n, b[200], e[200];
    if (n + 1 > 200 || dir_end > len) return 0;
    for (i = 0; i <= n; i++) {
        if (i < n) {
            b[i] = get64(img + DIR_AT(i) + 16);
            e[i] = b[i] + get64(img + DIR_AT(i) + 24);
        } else {
            b[i] = get64(img + 48);
            e[i] = b[i] + get64(img + 56);
        }
        if (b[i] % 64 || b[i] < dir_end || b[i] > len || e[i] > len || e[i] < b[i]) return 0;
    }
    for (i = 0; i <= n; i++)
        for (j = i + 1; j <= n; j++)
            if (b[i] < e[j] && b[j] < e[i]) return 0;
    return 1;
}

/* ------------------------------------------------------------------------ */
/* Tests                                                                    */

TEST(bases_load_and_run)
{
    int i;
    for (i = 0; i < N_BASES; i++) {
        char what[96];
        snprintf(what, sizeof what, "base %s", bases[i].name);
        CASE(bases[i].b, bases[i].len, MUST_LOAD, what);
    }
}

/* 1 if the cut at `cut` is tried for base b: every byte of the first and
 * last bases; for the others every byte of the header, directory and tokenizer
 * section, every byte within 2 of a tensor's start or end, and every 13th
 * byte of the rest. */
static int cut_tried(const base *b, int bi, size_t cut)
{
    uint32_t k;
    if (bi == 0 || bi == N_BASES - 1 || cut < b->tok_off + b->tok_size + 2 || cut % 13 == 0) return 1;
    for (k = 0; k < b->n_tensors; k++) {
        uint64_t off = get64(b->b + DIR_AT(k) + 16), end = off + get64(b->b + DIR_AT(k) + 24);
        if ((cut + 2 >= off && cut <= off + 2) || (cut + 2 >= end && cut <= end + 2)) return 1;
    }
    return 0;
}

/* Every length from 0 to len - 1 (a dense sample for the larger bases), the
 * header unchanged (its file_size then disagrees) and with file_size set to
 * the cut (the sections are checked). */
TEST(truncation_at_every_byte)
{
    int i;
    fails_shown = 0;
    for (i = 0; i < N_BASES; i++) {
        const base *b = &bases[i];
        size_t cut;
        for (cut = 0; cut < b->len; cut++) {
            unsigned char *img;
            char what[128];
            if (!cut_tried(b, i, cut)) continue;
            img = fresh(b);
            CHECK(img != NULL);
            snprintf(what, sizeof what, "%s cut at %lu", b->name, (unsigned long)cut);
            CASE(img, cut, MUST_FAIL, what);
            if (cut >= 72) {
                put64(img + 64, cut);
                snprintf(what, sizeof what, "%s cut at %lu, file_size following", b->name, (unsigned long)cut);
                CASE(img, cut, MUST_FAIL, what);
            }
        }
        /* grown: trailing bytes after the last region */
        {
            unsigned char *img = fresh(b);
            char what[128];
            size_t extra;
            for (extra = 1; extra <= 256; extra *= 4) {
                img = fresh(b);
                snprintf(what, sizeof what, "%s with %lu trailing bytes", b->name, (unsigned long)extra);
                CASE(img, b->len + extra, MUST_FAIL, what);
                put64(img + 64, b->len + extra); /* file_size agrees: trailing zeros are a gap */
                snprintf(what, sizeof what, "%s with %lu trailing zero bytes counted", b->name, (unsigned long)extra);
                CASE(img, b->len + extra, MAY_LOAD, what);
            }
        }
    }
}

/* Values tried on every field: the interesting ones, and neighbours of the
 * field's own value. */
static int field_values(uint64_t orig, int width, uint64_t len, uint64_t *v)
{
    int n = 0;
    uint64_t maxw = width == 4 ? 0xFFFFFFFFull : ~0ull;
    v[n++] = 0;
    v[n++] = 1;
    v[n++] = maxw;            /* -1 */
    v[n++] = maxw - 1;        /* -2 */
    v[n++] = maxw >> 1;       /* INT_MAX */
    v[n++] = (maxw >> 1) + 1; /* INT_MIN */
    v[n++] = orig + 1;
    v[n++] = orig - 1;
    v[n++] = orig * 2;
    v[n++] = orig + 64;
    v[n++] = orig - 64;
    v[n++] = 16777217;  /* past n_vocab's limit */
    v[n++] = 1048577;   /* past n_ctx's limit */
    v[n++] = 65537;     /* past n_embd's limit */
    v[n++] = 4097;      /* past n_layer's limit */
    v[n++] = 16777216;  /* at the limits */
    v[n++] = 1048576;
    v[n++] = 65536;
    v[n++] = 4096;
    v[n++] = 0x55555555;
    if (width == 8) {
        v[n++] = 1ull << 32;
        v[n++] = 1ull << 63;
        v[n++] = ~0ull - 63;  /* aligned, wraps when a size is added */
        v[n++] = len;
        v[n++] = len + 64;
        v[n++] = len - 64;
        v[n++] = (len + 63) / 64 * 64;
        v[n++] = orig + (1ull << 32);
        v[n++] = orig | (1ull << 63);
        v[n++] = (~0ull - orig) + 1; /* orig + v wraps to 0 */
    }
    return n;
}

TEST(every_header_field_damaged)
{
    static const struct { unsigned off; int width; const char *name; } f[] = {
        {8, 4, "version"}, {12, 4, "header_size"}, {16, 4, "n_vocab"}, {20, 4, "n_ctx"}, {24, 4, "n_embd"},
        {28, 4, "n_head"}, {32, 4, "n_layer"}, {36, 4, "ln_eps"}, {40, 4, "dtype"}, {44, 4, "flags"},
        {48, 8, "tokenizer_offset"}, {56, 8, "tokenizer_size"}, {64, 8, "file_size"}, {72, 4, "n_tensors"},
        {0, 4, "magic[0..3]"}, {4, 4, "magic[4..7]"},
    };
    size_t i;
    int bi, j;
    fails_shown = 0;
    for (bi = 0; bi < N_BASES; bi++) {
        const base *b = &bases[bi];
        for (i = 0; i < sizeof f / sizeof f[0]; i++) {
            uint64_t v[40], orig = get_width(b->b + f[i].off, f[i].width);
            int nv = field_values(orig, f[i].width, b->len, v);
            for (j = 0; j < nv; j++) {
                unsigned char *img = fresh(b);
                char what[160];
                expect ex = MUST_FAIL;
                uint64_t val = f[i].width == 4 ? v[j] & 0xFFFFFFFFu : v[j];
                CHECK(img != NULL);
                if (val == orig || (j > 0 && v[j] == v[j - 1])) continue;
                put_width(img + f[i].off, f[i].width, val);
                if (f[i].off == 40 && val <= 3) ex = MAY_LOAD; /* informational weight type */
                /* n_head is in no tensor's shape: any divisor of n_embd is a valid model */
                if (f[i].off == 28 && val >= 1 && val <= 65536 && get32(b->b + 24) % (uint32_t)val == 0) ex = MAY_LOAD;
                if (f[i].off == 36) {
                    float eps;
                    uint32_t u = (uint32_t)val;
                    memcpy(&eps, &u, 4);
                    if (eps > 0.0f && eps < 1.0f) ex = MAY_LOAD; /* another valid epsilon */
                }
                snprintf(what, sizeof what, "%s: header %s = 0x%llx (was 0x%llx)", b->name, f[i].name,
                         (unsigned long long)val, (unsigned long long)orig);
                CASE(img, b->len, ex, what);
            }
        }
        /* the reserved bytes 76..127 are not checked by readers (FORMAT.md
         * says "zero"): any value may load, and must then work */
        for (i = 76; i < 128; i += 4) {
            unsigned char *img = fresh(b);
            char what[128];
            put32(img + i, 0xFFFFFFFFu);
            snprintf(what, sizeof what, "%s: header reserved bytes at %lu", b->name, (unsigned long)i);
            CASE(img, b->len, MAY_LOAD, what);
        }
    }
}

TEST(every_directory_field_damaged)
{
    static const struct { unsigned off; int width; const char *name; } f[] = {
        {0, 4, "dtype"}, {4, 4, "rows"}, {8, 4, "cols"}, {12, 4, "reserved"}, {16, 8, "offset"}, {24, 8, "nbytes"},
    };
    int bi, j;
    uint32_t k;
    size_t i;
    fails_shown = 0;
    for (bi = 0; bi < N_BASES; bi++) {
        const base *b = &bases[bi];
        for (k = 0; k < b->n_tensors; k++) {
            const unsigned char *e = b->b + DIR_AT(k);
            for (i = 0; i < sizeof f / sizeof f[0]; i++) {
                uint64_t v[40 + 16], orig = get_width(e + f[i].off, f[i].width);
                int nv = field_values(orig, f[i].width, b->len, v);
                uint32_t other;
                /* offsets: every other region's start and a few inside it */
                if (f[i].off == 16) {
                    v[nv++] = b->tok_off;
                    v[nv++] = b->tok_off + 64;
                    v[nv++] = 128;
                    v[nv++] = DIR_AT(b->n_tensors) / 64 * 64;
                    for (other = 0; other < b->n_tensors && nv < 56; other += 3)
                        v[nv++] = get64(b->b + DIR_AT(other) + 16) + (other % 2 ? 64 : 0);
                }
                for (j = 0; j < nv; j++) {
                    unsigned char *img = fresh(b);
                    char what[200];
                    expect ex = MUST_FAIL;
                    uint64_t val = f[i].width == 4 ? v[j] & 0xFFFFFFFFu : v[j];
                    CHECK(img != NULL);
                    if (val == orig) continue;
                    put_width(img + DIR_AT(k) + f[i].off, f[i].width, val);
                    if (f[i].off == 16 && layout_valid(img, b->len)) ex = MUST_LOAD; /* moved to free space */
                    if (f[i].off == 0 && val <= 3 && get32(e + 4) > 1 &&
                        nbytes_of((uint32_t)val, get32(e + 4), get32(e + 8)) == get64(e + 24))
                        ex = MUST_LOAD; /* f16 <-> bf16: same size, other values */
                    snprintf(what, sizeof what, "%s: tensor %u %s = 0x%llx (was 0x%llx)", b->name, k, f[i].name,
                             (unsigned long long)val, (unsigned long long)orig);
                    CASE(img, b->len, ex, what);
                }
            }
        }
    }
}

/* A matrix given another type with the matching nbytes (smaller, so it stays
 * in its slot) is well-formed: its bytes are read as that type, whatever
 * values (NaN, Inf, huge) they then have. */
TEST(matrices_retyped_consistently_load_and_run)
{
    int bi;
    uint32_t k, t;
    fails_shown = 0;
    for (bi = 0; bi < N_BASES; bi++) {
        const base *b = &bases[bi];
        for (k = 0; k < b->n_tensors; k++) {
            const unsigned char *e = b->b + DIR_AT(k);
            uint32_t rows = get32(e + 4), cols = get32(e + 8);
            if (rows == 1) continue; /* vectors must stay f32 */
            for (t = 0; t <= 3; t++) {
                unsigned char *img = fresh(b);
                uint64_t nb = nbytes_of(t, rows, cols);
                char what[160];
                if (t == get32(e) || nb > get64(e + 24)) continue;
                put32(img + DIR_AT(k), t);
                put64(img + DIR_AT(k) + 24, nb);
                snprintf(what, sizeof what, "%s: tensor %u retyped to %s", b->name, k, gpt_dtype_name((gpt_dtype)t));
                CASE(img, b->len, MUST_LOAD, what);
            }
        }
        /* every weight set to the same bit pattern: NaN, Inf, huge, -0 */
        {
            static const uint32_t pat[] = {0x7FC00000u, 0x7F800000u, 0xFF800000u, 0x7F7FFFFFu, 0x80000000u, 0x00000001u};
            size_t p;
            for (p = 0; p < sizeof pat / sizeof pat[0]; p++) {
                unsigned char *img = fresh(b);
                char what[128];
                for (k = 0; k < b->n_tensors; k++) {
                    uint64_t off = get64(img + DIR_AT(k) + 16), n = get64(img + DIR_AT(k) + 24), o;
                    uint32_t dt = get32(img + DIR_AT(k));
                    for (o = 0; o + 4 <= n; o += 4) {
                        if (dt == 0) put32(img + off + o, pat[p]);
                        else put32(img + off + o, (pat[p] >> 16) * 0x10001u);
                    }
                }
                snprintf(what, sizeof what, "%s: all weights 0x%08x", b->name, pat[p]);
                CASE(img, b->len, MUST_LOAD, what);
            }
        }
    }
}

/* Regions placed anywhere valid load; regions placed on each other, on the
 * header or directory, or off the end do not. */
TEST(regions_moved_overlapping_and_relocated)
{
    int bi;
    uint32_t k, o;
    fails_shown = 0;
    for (bi = 0; bi < N_BASES; bi++) {
        const base *b = &bases[bi];
        size_t end = (b->len + 63) / 64 * 64;
        char what[160];
        for (k = 0; k < b->n_tensors; k++) {
            uint64_t off = get64(b->b + DIR_AT(k) + 16), n = get64(b->b + DIR_AT(k) + 24);
            unsigned char *img;
            /* moved (copied) to the end of a grown file: valid */
            img = fresh(b);
            memcpy(img + end, b->b + off, (size_t)n);
            put64(img + DIR_AT(k) + 16, end);
            put64(img + 64, end + n);
            snprintf(what, sizeof what, "%s: tensor %u relocated to the end", b->name, k);
            CASE(img, (size_t)(end + n), MUST_LOAD, what);
            /* onto every other region, at its start and straddling its end */
            for (o = 0; o <= b->n_tensors; o++) {
                uint64_t ob = o < b->n_tensors ? get64(b->b + DIR_AT(o) + 16) : b->tok_off;
                uint64_t on = o < b->n_tensors ? get64(b->b + DIR_AT(o) + 24) : b->tok_size;
                uint64_t at[3];
                int a;
                if (o == k) continue;
                at[0] = ob;
                at[1] = (ob + on) / 64 * 64 - (on > 64 ? 64 : 0);
                at[2] = ob >= n ? (ob + 63 - n) / 64 * 64 : ob; /* ending inside it */
                for (a = 0; a < 3; a++) {
                    img = fresh(b);
                    put64(img + DIR_AT(k) + 16, at[a]);
                    snprintf(what, sizeof what, "%s: tensor %u moved to %llu (region %u)", b->name, k,
                             (unsigned long long)at[a], o);
                    CASE(img, b->len, layout_valid(img, b->len) ? MUST_LOAD : MUST_FAIL, what);
                }
            }
        }
        /* the tokenizer section moved to the end: valid; onto a tensor, the
         * directory or past the end: not */
        {
            unsigned char *img = fresh(b);
            memcpy(img + end, b->b + b->tok_off, (size_t)b->tok_size);
            put64(img + 48, end);
            put64(img + 64, end + b->tok_size);
            snprintf(what, sizeof what, "%s: tokenizer relocated to the end", b->name);
            CASE(img, (size_t)(end + b->tok_size), MUST_LOAD, what);
            for (k = 0; k < b->n_tensors; k++) {
                img = fresh(b);
                put64(img + 48, get64(b->b + DIR_AT(k) + 16));
                snprintf(what, sizeof what, "%s: tokenizer moved onto tensor %u", b->name, k);
                CASE(img, b->len, MUST_FAIL, what);
            }
            for (k = 1; k <= 4; k++) {
                img = fresh(b);
                put64(img + 56, b->tok_size + 64 * k); /* runs into the first tensor */
                snprintf(what, sizeof what, "%s: tokenizer size +%u", b->name, 64 * k);
                CASE(img, b->len, MUST_FAIL, what);
            }
        }
        /* two directory entries swapped: shapes no longer canonical (or the
         * same shape, then only which data is used changes) */
        for (k = 0; k + 1 < b->n_tensors; k++) {
            unsigned char *img = fresh(b), tmp[32];
            const unsigned char *e1 = b->b + DIR_AT(k), *e2 = b->b + DIR_AT(k + 1);
            int same = get32(e1) == get32(e2) && get32(e1 + 4) == get32(e2 + 4) && get32(e1 + 8) == get32(e2 + 8);
            memcpy(tmp, img + DIR_AT(k), 32);
            memcpy(img + DIR_AT(k), img + DIR_AT(k + 1), 32);
            memcpy(img + DIR_AT(k + 1), tmp, 32);
            snprintf(what, sizeof what, "%s: directory entries %u and %u swapped", b->name, k, k + 1);
            CASE(img, b->len, same ? MUST_LOAD : MUST_FAIL, what);
        }
    }
}

/* The tokenizer section inside the checkpoint, field by field and table by
 * table. */
TEST(tokenizer_section_damaged)
{
    int bi;
    fails_shown = 0;
    for (bi = 0; bi < N_BASES; bi++) {
        const base *b = &bases[bi];
        const unsigned char *T = b->b + b->tok_off;
        uint32_t nv = get32(T + 8), nm = get32(T + 12), blob_len = get32(T + 24 + 4 * (size_t)nv);
        size_t offs = b->tok_off + 24, blob = offs + 4 * ((size_t)nv + 1);
        size_t merges = b->tok_off + (size_t)b->tok_size - 8 * (size_t)nm;
        uint32_t i, idx[] = {0, 1, 2, 37, 100, 200, 255, 256, 257, nv - 2, nv - 1, nv};
        char what[200];
        unsigned char *img;
        size_t w;
        /* header fields */
        static const struct { unsigned off; const char *name; } hf[] = {
            {0, "magic"}, {4, "version"}, {8, "n_vocab"}, {12, "n_merges"}, {16, "eot_id"}, {20, "reserved"}};
        for (w = 0; w < sizeof hf / sizeof hf[0]; w++) {
            uint64_t v[40], orig = get32(T + hf[w].off);
            int nvals = field_values(orig, 4, b->len, v), j;
            for (j = 0; j < nvals; j++) {
                uint32_t val = (uint32_t)v[j];
                expect ex = MUST_FAIL;
                if (val == orig || (j > 0 && v[j] == v[j - 1])) continue;
                img = fresh(b);
                put32(img + b->tok_off + hf[w].off, val);
                /* eot_id: -1 (no EOT) is always valid; another id may be, if
                 * it is not a single byte */
                if (hf[w].off == 16 && (val == 0xFFFFFFFFu || (val >= 256 && val < nv))) ex = MAY_LOAD;
                snprintf(what, sizeof what, "%s: tokenizer %s = 0x%x (was 0x%x)", b->name, hf[w].name, val,
                         (unsigned)orig);
                CASE(img, b->len, ex, what);
            }
        }
        /* eot on every kind of token: single bytes are refused */
        for (i = 0; i < nv; i += (i < 300 ? 7 : 997)) {
            img = fresh(b);
            put32(img + b->tok_off + 16, i);
            snprintf(what, sizeof what, "%s: eot_id = %u", b->name, i);
            CASE(img, b->len, i < 256 ? MUST_FAIL : MAY_LOAD, what);
        }
        /* token offsets: empty tokens, going backwards, past the blob */
        for (w = 0; w < sizeof idx / sizeof idx[0]; w++) {
            uint32_t at = idx[w], prev, cur, next, vals[8];
            int j;
            if (at > nv) continue;
            prev = at > 0 ? get32(T + 24 + 4 * (size_t)(at - 1)) : 0;
            cur = get32(T + 24 + 4 * (size_t)at);
            next = at < nv ? get32(T + 24 + 4 * (size_t)(at + 1)) : cur;
            vals[0] = prev;         /* token at-1 empty */
            vals[1] = prev - 1;     /* backwards */
            vals[2] = next;         /* token at empty */
            vals[3] = next + 1;     /* overtakes the next offset */
            vals[4] = blob_len + 1; /* past the blob */
            vals[5] = 0xFFFFFFFFu;
            vals[6] = cur + 1;      /* token boundaries shifted */
            vals[7] = cur - 1;
            for (j = 0; j < 8; j++) {
                expect ex = MUST_FAIL;
                if (vals[j] == cur) continue;
                if ((j == 6 || j == 7) && at > 0 && vals[j] > prev && (at == nv || vals[j] < next)) ex = MAY_LOAD;
                img = fresh(b);
                put32(img + offs + 4 * (size_t)at, vals[j]);
                snprintf(what, sizeof what, "%s: token offset %u = %u (was %u)", b->name, at, vals[j], cur);
                CASE(img, b->len, ex, what);
            }
        }
        /* duplicate token strings: a single byte turned into another, a
         * multi-byte token made equal to another of its length */
        for (i = 0; i < 256; i += 17) {
            uint32_t a = get32(T + 24 + 4 * (size_t)i), other = (i + 1) % 256;
            img = fresh(b);
            img[blob + a] = T[24 + 4 * ((size_t)nv + 1) + get32(T + 24 + 4 * (size_t)other)];
            snprintf(what, sizeof what, "%s: token %u made a copy of token %u", b->name, i, other);
            CASE(img, b->len, MUST_FAIL, what);
        }
        for (i = 256; i < nv; i++) {
            uint32_t a = get32(T + 24 + 4 * (size_t)i), l = get32(T + 28 + 4 * (size_t)i) - a, j2;
            for (j2 = i + 1; j2 < nv; j2++) {
                uint32_t a2 = get32(T + 24 + 4 * (size_t)j2), l2 = get32(T + 28 + 4 * (size_t)j2) - a2;
                if (l2 == l) {
                    img = fresh(b);
                    memcpy(img + blob + a2, img + blob + a, l);
                    snprintf(what, sizeof what, "%s: token %u made a copy of token %u", b->name, j2, i);
                    CASE(img, b->len, MUST_FAIL, what);
                    break;
                }
            }
        }
        /* merges: ids out of range, results that are not tokens, duplicates */
        for (i = 0; i < nm; i += (nm > 8 ? nm / 8 : 1)) {
            static const uint32_t bad[] = {0xFFFFFFFFu, 0x80000000u, 0x7FFFFFFFu, 0};
            uint32_t j2;
            size_t at = merges + 8 * (size_t)i;
            for (j2 = 0; j2 < 4; j2++) {
                uint32_t val = j2 == 3 ? nv : bad[j2];
                img = fresh(b);
                put32(img + at, val);
                snprintf(what, sizeof what, "%s: merge %u left = 0x%x", b->name, i, val);
                CASE(img, b->len, MUST_FAIL, what);
                img = fresh(b);
                put32(img + at + 4, val);
                snprintf(what, sizeof what, "%s: merge %u right = 0x%x", b->name, i, val);
                CASE(img, b->len, MUST_FAIL, what);
            }
            /* (q, z): "qz" is not a token of these vocabularies */
            img = fresh(b);
            put32(img + at, 'q' - 33);
            put32(img + at + 4, 'z' - 33);
            snprintf(what, sizeof what, "%s: merge %u = (q, z), not a token", b->name, i);
            CASE(img, b->len, MUST_FAIL, what);
            /* swapped pair: its result is usually not a token */
            img = fresh(b);
            put32(img + at, get32(b->b + at + 4));
            put32(img + at + 4, get32(b->b + at));
            snprintf(what, sizeof what, "%s: merge %u swapped", b->name, i);
            CASE(img, b->len, MAY_LOAD, what);
            if (i + 1 < nm) {
                img = fresh(b);
                memcpy(img + at + 8, img + at, 8);
                snprintf(what, sizeof what, "%s: merge %u duplicated", b->name, i);
                CASE(img, b->len, MUST_FAIL, what);
            }
        }
        /* fewer merges, the section shortened to match: a valid tokenizer */
        if (nm > 0) {
            img = fresh(b);
            put32(img + b->tok_off + 12, nm - 1);
            put64(img + 56, b->tok_size - 8);
            snprintf(what, sizeof what, "%s: last merge dropped", b->name);
            CASE(img, b->len, MAY_LOAD, what);
        }
        /* the section's size off by a few bytes either way */
        {
            static const int d[] = {-9, -8, -4, -1, 1, 4, 8};
            for (w = 0; w < sizeof d / sizeof d[0]; w++) {
                img = fresh(b);
                put64(img + 56, b->tok_size + (uint64_t)(int64_t)d[w]);
                snprintf(what, sizeof what, "%s: tokenizer_size %+d", b->name, d[w]);
                CASE(img, b->len, MUST_FAIL, what);
            }
        }
        /* padding between the blob and the merges */
        if (merges > blob + blob_len) {
            img = fresh(b);
            img[blob + blob_len] = 0x41;
            snprintf(what, sizeof what, "%s: tokenizer padding byte", b->name);
            CASE(img, b->len, MUST_FAIL, what);
        }
    }
}

/* Random flips, region by region: the outcome may be either, but never a
 * crash, a wrong status or a model that fails to run; flips inside tensor
 * data (unchecked values) must load. */
TEST(random_flips_in_every_region)
{
    int bi;
    fails_shown = 0;
    for (bi = 0; bi < N_BASES; bi++) {
        const base *b = &bases[bi];
        const unsigned char *T = b->b + b->tok_off;
        uint32_t nv = get32(T + 8), nm = get32(T + 12);
        size_t blob = b->tok_off + 24 + 4 * ((size_t)nv + 1);
        struct { const char *name; size_t begin, end; int trials; expect ex; } r[8 + 200];
        int nr = 0, ri, t;
        uint32_t k;
        r[nr].name = "header"; r[nr].begin = 0; r[nr].end = 128; r[nr].trials = 300; r[nr++].ex = MAY_LOAD;
        r[nr].name = "directory"; r[nr].begin = 128; r[nr].end = DIR_AT(b->n_tensors); r[nr].trials = 400;
        r[nr++].ex = MAY_LOAD;
        r[nr].name = "tokenizer header"; r[nr].begin = b->tok_off; r[nr].end = b->tok_off + 24; r[nr].trials = 150;
        r[nr++].ex = MAY_LOAD;
        r[nr].name = "token offsets"; r[nr].begin = b->tok_off + 24; r[nr].end = blob; r[nr].trials = 300;
        r[nr++].ex = MAY_LOAD;
        r[nr].name = "token bytes"; r[nr].begin = blob; r[nr].end = blob + get32(T + 24 + 4 * (size_t)nv);
        r[nr].trials = 300; r[nr++].ex = MAY_LOAD;
        if (nm > 0) {
            r[nr].name = "merges"; r[nr].begin = b->tok_off + (size_t)b->tok_size - 8 * (size_t)nm;
            r[nr].end = b->tok_off + (size_t)b->tok_size; r[nr].trials = 200; r[nr++].ex = MAY_LOAD;
        }
        for (k = 0; k < b->n_tensors && nr < (int)(sizeof r / sizeof r[0]); k++) {
            r[nr].name = "tensor data";
            r[nr].begin = (size_t)get64(b->b + DIR_AT(k) + 16);
            r[nr].end = r[nr].begin + (size_t)get64(b->b + DIR_AT(k) + 24);
            r[nr].trials = k < 2 ? 60 : 20;
            r[nr++].ex = MUST_LOAD;
        }
        for (ri = 0; ri < nr; ri++) {
            if (r[ri].end <= r[ri].begin) continue;
            for (t = 0; t < r[ri].trials; t++) {
                unsigned char *img = fresh(b);
                int flips = 1 + (int)(rnd() % 4), f;
                char what[160];
                for (f = 0; f < flips; f++) {
                    size_t at = r[ri].begin + (size_t)(rnd() % (r[ri].end - r[ri].begin));
                    unsigned char x = (unsigned char)(rnd() % 255 + 1);
                    if (t % 3 == 0) x = (unsigned char)(1u << (rnd() % 8)); /* one bit */
                    img[at] ^= x;
                }
                snprintf(what, sizeof what, "%s: %d flips in %s [%lu, %lu), trial %d", b->name, flips, r[ri].name,
                         (unsigned long)r[ri].begin, (unsigned long)r[ri].end, t);
                CASE(img, b->len, r[ri].ex, what);
            }
        }
        /* and anywhere in the file */
        for (t = 0; t < 1500; t++) {
            unsigned char *img = fresh(b);
            int flips = 1 + (int)(rnd() % 8), f;
            char what[128];
            for (f = 0; f < flips; f++) img[rnd() % b->len] ^= (unsigned char)(rnd() % 255 + 1);
            snprintf(what, sizeof what, "%s: %d flips anywhere, trial %d", b->name, flips, t);
            CASE(img, b->len, MAY_LOAD, what);
        }
    }
}

TEST(summary)
{
    printf("# %ld damaged checkpoints: %ld refused, %ld loaded and ran; %ld also copied, %ld also from a file\n",
           n_cases, n_refused, n_loaded, n_copy_checked, n_file_checked);
    CHECK(n_cases > 100000);
    CHECK(n_loaded > 1000 && n_refused > 100000);
}

int main(void)
{
    char why[512];
    const char *build = getenv("BUILD");
    int i;
    /* several runs of the suite may share a build folder */
    snprintf(tmp_path, sizeof tmp_path, "%s/tmp_hostile_%ld.bin", build ? build : "build", PROCESS_ID());
    if (!make_bases(why, sizeof why)) {
        printf("FAIL setup: %s\n", why);
        return 1;
    }
    RUN(bases_load_and_run);
    RUN(truncation_at_every_byte);
    RUN(every_header_field_damaged);
    RUN(every_directory_field_damaged);
    RUN(matrices_retyped_consistently_load_and_run);
    RUN(regions_moved_overlapping_and_relocated);
    RUN(tokenizer_section_damaged);
    RUN(random_flips_in_every_region);
    RUN(summary);
    remove(tmp_path);
    for (i = 0; i < N_BASES; i++) free(bases[i].b);
    free(work);
    return test_summary();
}
