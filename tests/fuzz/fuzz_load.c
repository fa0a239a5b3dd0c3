/*
 * fuzz_load.c - libFuzzer harness for checkpoint loading
 * (gpt_model_load_memory), and for running whatever loads.
 *
 *   make fuzz                       (every harness, FUZZ_TIME seconds each)
 *   sh tests/test_fuzz.sh           (the same, as `make test` runs it)
 *   build/fuzz/fuzz_load tests/fuzz/seeds/load/crash-...   (replay one input)
 *
 * Run from the repository root (it builds its base checkpoints with GPT-2's
 * tokenizer from models/tokenizer/). The input has two forms:
 *
 *   - starting with 'G' (the first byte of the magic): the input is a whole
 *     checkpoint. It is loaded as it is, and once more with the header's
 *     file_size set to the input's length (so that mutations that grow or
 *     cut the file reach the section checks). The seeds of this form are
 *     files written by `gpt convert --random 1,1,16,8 --n-vocab 256` in each
 *     weight type, and cut or patched copies of them.
 *   - anything else: structure-aware. Byte 1 picks one of the valid
 *     checkpoints built at start-up (four weight types, a 2-layer model with
 *     merges), bit 0 of byte 0 asks for file_size to follow the final
 *     length, and the rest is a list of 12-byte edits {op, a, b (u16),
 *     v (u64)}: set a header, directory or tokenizer-section field to a
 *     chosen value (0, 1, -1, huge, near the old value, the file length,
 *     ...), write bytes, truncate, grow, move a tensor onto another region
 *     or to the end of the file, swap directory entries, flip bits.
 *
 * Every load happens twice, from an exact-size 64-aligned buffer (the model
 * is built in place, so AddressSanitizer sees any read past the end) and
 * from an unaligned one (the copying path); both must agree. A refused load
 * must give GPT_ERR_FORMAT or GPT_ERR_UNSUPPORTED with a message; a model
 * that loads must have a consistent configuration and survive gpt_eval,
 * gpt_score and gpt_generate. Any violation calls abort().
 */
#if (defined(__unix__) || defined(__APPLE__)) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt.h"
#include "gpt.h"
#include "../util.h"

#define N_BASES 5

static unsigned char *g_base[N_BASES];
static size_t g_base_len[N_BASES];

static void die(const char *what, const char *detail)
{
    fprintf(stderr, "fuzz_load: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    abort();
}

static void setup(void)
{
    static const struct { int L, H, C, T, V; gpt_dtype dt; } spec[N_BASES] = {
        {1, 1, 16, 8, 256, GPT_DTYPE_F32}, {1, 1, 16, 8, 256, GPT_DTYPE_F16}, {1, 2, 16, 8, 256, GPT_DTYPE_BF16},
        {1, 1, 40, 8, 256, GPT_DTYPE_Q8_0}, {2, 2, 16, 8, 300, GPT_DTYPE_F32},
    };
    gpt_error err;
    int i;
    for (i = 0; i < N_BASES; i++) {
        ckpt_spec s;
        ckpt_random r;
        gpt_tokenizer *tok = ckpt_gpt2_tokenizer("models/tokenizer/encoder.json", "models/tokenizer/vocab.bpe",
                                                 spec[i].V, &err);
        if (!tok) die("run from the repository root", err.message);
        memset(&s, 0, sizeof s);
        s.n_layer = spec[i].L;
        s.n_head = spec[i].H;
        s.n_embd = spec[i].C;
        s.n_ctx = spec[i].T;
        s.n_vocab = spec[i].V;
        s.ln_eps = 1e-5f;
        s.dtype = spec[i].dt;
        s.wpe_dtype = i == 3 ? GPT_DTYPE_Q8_0 : GPT_DTYPE_F32;
        s.tok = tok;
        r.seed = 7 + (uint64_t)i;
        r.n_layer = spec[i].L;
        if (ckpt_write_memory(&s, ckpt_random_source, &r, &g_base[i], &g_base_len[i], &err) != GPT_OK)
            die("base checkpoint", err.message);
        gpt_tokenizer_free(tok);
    }
}

/* ------------------------------------------------------------------------ */
/* Running a model that loaded                                              */

static void exercise(gpt_model *m, const uint8_t *data, size_t size)
{
    gpt_config cfg = gpt_model_config(m);
    const gpt_tokenizer *tok = gpt_model_tokenizer(m);
    gpt_context_params cp = gpt_context_defaults();
    gpt_generate_params gp = gpt_generate_defaults();
    gpt_generate_result res;
    const char *stops[1] = {"e"};
    gpt_context *c;
    gpt_status st;
    int ids[8], n, i;
    float lp[8];
    char prompt[8];
    if (!tok || gpt_tokenizer_n_vocab(tok) != cfg.n_vocab || cfg.n_vocab < 256 || cfg.n_ctx < 1 || cfg.n_embd < 1 ||
        cfg.n_head < 1 || cfg.n_embd % cfg.n_head != 0 || cfg.n_layer < 1 || !(cfg.ln_eps > 0.0f && cfg.ln_eps < 1.0f))
        die("a loaded model has an inconsistent configuration", NULL);
    cp.n_threads = 1;
    cp.n_ctx = cfg.n_ctx < 8 ? cfg.n_ctx : 8;
    c = gpt_context_new(m, &cp, NULL);
    if (!c) die("gpt_context_new failed on a loaded model", NULL);
    n = cp.n_ctx < 6 ? cp.n_ctx : 6;
    for (i = 0; i < n; i++) ids[i] = (int)(((size > (size_t)i ? data[size - 1 - (size_t)i] : 0) * 131u + 7u * (unsigned)i) %
                                           (unsigned)cfg.n_vocab);
    if ((st = gpt_eval(c, ids, n)) != GPT_OK || !gpt_logits(c)) die("gpt_eval failed", gpt_context_error(c));
    /* garbage weights may make the logits NaN: a clean GPT_ERR_NUMERIC */
    if (cp.n_ctx >= 2 && (st = gpt_score(c, ids, n, lp)) != GPT_OK && st != GPT_ERR_NUMERIC)
        die("gpt_score failed", gpt_context_error(c));
    gpt_rewind(c, 0);
    for (i = 0; i < 3; i++) prompt[i] = (char)('a' + (size > (size_t)i ? data[i] : 0) % 26);
    prompt[3] = 0;
    gp.max_new_tokens = 3;
    gp.temperature = size % 2 ? 0.0f : 1.0f;
    gp.repetition_penalty = 1.1f;
    gp.stop = stops;
    gp.n_stop = 1;
    gp.context_policy = GPT_CONTEXT_SLIDE;
    st = gpt_generate_ex(c, prompt, &gp, NULL, NULL, &res);
    if (st != GPT_OK && st != GPT_ERR_NUMERIC) die("gpt_generate failed", gpt_context_error(c));
    gpt_context_free(c);
}

/* Loads img[0..len) in place and through a copy; checks and runs. */
static void load_and_check(const unsigned char *img, size_t len, const uint8_t *data, size_t size)
{
    gpt_error e1, e2;
    gpt_model *m1, *m2;
    void *aligned = NULL;
    unsigned char *unaligned = (unsigned char *)malloc(len + 1);
    if (posix_memalign(&aligned, 64, len ? len : 1) != 0 || !unaligned) die("out of memory", NULL);
    if (len) memcpy(aligned, img, len);
    memcpy(unaligned + 1, img, len);
    memset(&e1, 0x5A, sizeof e1);
    memset(&e2, 0x5A, sizeof e2);
    m1 = gpt_model_load_memory_inplace(aligned, len, &e1);
    if (len && memcmp(aligned, img, len) != 0) die("the loader wrote into the caller's buffer", NULL);
    m2 = gpt_model_load_memory(unaligned + 1, len, &e2);
    if ((m1 != NULL) != (m2 != NULL) || (!m1 && e1.status != e2.status))
        die("in-place and copied loads disagree", m1 ? e2.message : e1.message);
    if (!m1) {
        if (e1.status != GPT_ERR_FORMAT && e1.status != GPT_ERR_UNSUPPORTED) die("undocumented status", e1.message);
        if (!memchr(e1.message, 0, sizeof e1.message) || !e1.message[0]) die("refused without a message", NULL);
    } else {
        if (e1.status != GPT_OK) die("loaded but err->status is not GPT_OK", NULL);
        exercise(m1, data, size);
        exercise(m2, data, size);
    }
    gpt_model_free(m1);
    gpt_model_free(m2);
    free(aligned);
    free(unaligned);
}

/* ------------------------------------------------------------------------ */
/* Structure-aware edits                                                    */

#define DIR_AT(k) (128 + 32 * (size_t)(k))

/* A value for a field of `width` bytes that held `orig`. */
static uint64_t pick(uint64_t v, uint64_t orig, size_t len, int width)
{
    uint64_t mask = width == 4 ? 0xFFFFFFFFull : ~0ull, r = v >> 8;
    switch (v & 15) {
    case 0: return 0;
    case 1: return 1;
    case 2: return mask;
    case 3: return (orig + (uint64_t)(int64_t)(int8_t)(r & 0xFF)) & mask; /* near the old value */
    case 4: return (orig ^ ((uint64_t)1 << (r % (uint64_t)(8 * width)))) & mask;
    case 5: return len & mask;
    case 6: return (len - 64 * (r % 4)) & mask;
    case 7: return (mask >> 1) + 1;     /* INT_MIN / 2^63 */
    case 8: return mask >> 1;           /* INT_MAX */
    case 9: return (orig * 2) & mask;
    case 10: return (r % 65) * 64;      /* an aligned offset near the start */
    case 11: return (mask - orig + 1 + (r & 0xFFF)) & mask; /* orig + value wraps */
    default: return r & mask;
    }
}

typedef struct img {
    unsigned char *b;
    size_t len, cap;
} img;

static int grow_to(img *im, size_t n)
{
    if (n > 1u << 20) return 0;
    if (n > im->cap) {
        unsigned char *nb = (unsigned char *)realloc(im->b, n);
        if (!nb) return 0;
        im->b = nb;
        im->cap = n;
    }
    if (n > im->len) memset(im->b + im->len, 0, n - im->len);
    im->len = n;
    return 1;
}

static void apply_edit(img *im, const uint8_t *e)
{
    static const struct { unsigned off; int width; } hdr[] = {
        {0, 8}, {8, 4}, {12, 4}, {16, 4}, {20, 4}, {24, 4}, {28, 4}, {32, 4}, {36, 4},
        {40, 4}, {44, 4}, {48, 8}, {56, 8}, {64, 8}, {72, 4}, {76, 8},
    };
    static const struct { unsigned off; int width; } ent[] = {{0, 4}, {4, 4}, {8, 4}, {12, 4}, {16, 8}, {24, 8}};
    unsigned op = e[0] % 12, a = e[1];
    uint32_t b = (uint32_t)e[2] | (uint32_t)e[3] << 8;
    uint64_t v = get64(e + 4), n_tensors, tok_off, tok_size;
    unsigned char *p = im->b;
    size_t len = im->len, at;
    if (len < 128) {
        if (op == 5 && len) p[v % len] = (unsigned char)a;
        return;
    }
    n_tensors = get32(p + 72);
    if (n_tensors == 0 || DIR_AT(n_tensors) > len) n_tensors = (len - 128) / 32;
    if (n_tensors > 400) n_tensors = 400;
    tok_off = get64(p + 48);
    tok_size = get64(p + 56);
    switch (op) {
    case 0: { /* a header field */
        unsigned f = a % (sizeof hdr / sizeof hdr[0]);
        at = hdr[f].off;
        if (hdr[f].width == 4) put32(p + at, (uint32_t)pick(v, get32(p + at), len, 4));
        else put64(p + at, pick(v, get64(p + at), len, 8));
        break;
    }
    case 1: { /* a directory field */
        unsigned f = a % 6;
        if (!n_tensors) break;
        at = DIR_AT(b % n_tensors) + ent[f].off;
        if (ent[f].width == 4) put32(p + at, (uint32_t)pick(v, get32(p + at), len, 4));
        else put64(p + at, pick(v, get64(p + at), len, 8));
        break;
    }
    case 2: /* a field of the tokenizer section's header */
        at = (size_t)tok_off + 4 * (a % 6);
        if (tok_off <= len && at + 4 <= len) put32(p + at, (uint32_t)pick(v, get32(p + at), len, 4));
        break;
    case 3: { /* a token offset */
        uint32_t nv;
        if (tok_off > len || tok_off + 24 > len) break;
        nv = get32(p + tok_off + 8);
        at = (size_t)tok_off + 24 + 4 * (size_t)(b % ((uint64_t)nv + 1));
        if (at + 4 <= len) put32(p + at, (uint32_t)pick(v, get32(p + at), len, 4));
        break;
    }
    case 4: { /* a merge id */
        uint32_t nm;
        if (tok_off > len || tok_size > len - tok_off || tok_off + 24 > len) break;
        nm = get32(p + tok_off + 12);
        if (nm == 0 || (uint64_t)nm * 8 > tok_size) break;
        at = (size_t)(tok_off + tok_size) - 8 * (size_t)nm + 8 * (size_t)(b % nm) + 4 * (a & 1);
        put32(p + at, a & 2 ? (uint32_t)(v % 310) : (uint32_t)pick(v, get32(p + at), len, 4));
        break;
    }
    case 5: /* a byte */
        p[v % len] = (unsigned char)a;
        break;
    case 6: /* 4 bytes at an aligned place */
        at = (size_t)((v >> 32) % (len / 4)) * 4;
        put32(p + at, (uint32_t)v);
        break;
    case 7: /* cut */
        im->len = (size_t)(v % (len + 1));
        if (a & 1 && im->len >= 72) put64(p + 64, im->len);
        break;
    case 8: /* grow */
        if (grow_to(im, len + (size_t)(v % 1024))) {
            memset(im->b + len, a, im->len - len);
            if (b & 1) put64(im->b + 64, im->len);
        }
        break;
    case 9: { /* a tensor onto another region, or copied to the end */
        uint64_t k, j;
        if (!n_tensors) break;
        k = b % n_tensors;
        if (a == 255) {
            uint64_t off = get64(p + DIR_AT(k) + 16), nb = get64(p + DIR_AT(k) + 24), end = (len + 63) / 64 * 64;
            if (off <= len && nb <= len - off && grow_to(im, (size_t)(end + nb))) {
                memcpy(im->b + end, im->b + off, (size_t)nb);
                put64(im->b + DIR_AT(k) + 16, end);
                put64(im->b + 64, im->len);
            }
            break;
        }
        j = a % (n_tensors + 1);
        put64(p + DIR_AT(k) + 16, j == n_tensors ? tok_off : get64(p + DIR_AT(j) + 16) + 64 * (v % 3));
        break;
    }
    case 10: { /* swap two directory entries */
        unsigned char t[32];
        uint64_t k1, k2;
        if (!n_tensors) break;
        k1 = b % n_tensors;
        k2 = (k1 + 1 + a) % n_tensors;
        memcpy(t, p + DIR_AT(k1), 32);
        memcpy(p + DIR_AT(k1), p + DIR_AT(k2), 32);
        memcpy(p + DIR_AT(k2), t, 32);
        break;
    }
    default: { /* flip bits in a run of bytes */
        size_t start = (size_t)(v % len), i, cnt = (size_t)(a % 32) + 1;
        for (i = 0; i < cnt && start + i < len; i++) p[start + i] ^= (unsigned char)(b >> (i % 16)) | 1;
        break;
    }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!g_base[0]) setup();
    if (size == 0) return 0;
    if (data[0] == 'G') {
        /* a whole checkpoint */
        load_and_check(data, size, data, size);
        if (size >= 72 && get64(data + 64) != size) {
            unsigned char *fixed = (unsigned char *)malloc(size);
            if (!fixed) die("out of memory", NULL);
            memcpy(fixed, data, size);
            put64(fixed + 64, size);
            load_and_check(fixed, size, data, size);
            free(fixed);
        }
    } else {
        img im;
        size_t i, which = size > 1 ? data[1] % N_BASES : 0;
        im.len = g_base_len[which];
        im.cap = im.len + 64;
        im.b = (unsigned char *)malloc(im.cap);
        if (!im.b) die("out of memory", NULL);
        memcpy(im.b, g_base[which], im.len);
        for (i = 2; i + 12 <= size && i < 2 + 12 * 16; i += 12) apply_edit(&im, data + i);
        if ((data[0] & 1) && im.len >= 72) put64(im.b + 64, im.len);
        load_and_check(im.b, im.len, data, size);
        free(im.b);
    }
    return 0;
}
