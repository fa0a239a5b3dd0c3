/*
 * fuzz_tokenizer.c - libFuzzer harness for tokenizer.c.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -I. \
 *       tests/fuzz/fuzz_tokenizer.c tokenizer.c -o build/fuzz_tokenizer
 *   mkdir -p tests/fuzz/corpus-run
 *   build/fuzz_tokenizer tests/fuzz/corpus-run tests/fuzz/seeds/tokenizer -max_total_time=300
 *
 * Run from the repository root (it loads models/tokenizer/). The first input
 * byte picks what is fuzzed; the rest is the data:
 *   0-3  encode (ordinary / special), check the ids and that decoding gives
 *        the input back, also with a buffer that is too small, and that the
 *        streaming decoder's output concatenates to the same bytes (0x80:
 *        the same on the input repeated to a long text);
 *   4    decode arbitrary ids (in and out of range), streaming and whole;
 *   5    deserialize the data as a tokenizer section;
 *   6    deserialize a valid section (of a small 262-token vocabulary) with
 *        a few fuzzed bytes patched in, maybe truncated;
 *   7    load the data as a vocabulary JSON (with the small vocabulary's
 *        merges) and as merges (with the small vocabulary).
 * Any mismatch calls abort(), which libFuzzer reports as a crash.
 */
#include "gpt.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../util.h"

static gpt_tokenizer *g_tok;
static unsigned char *g_sec; /* section of the small tokenizer below */
static size_t g_sec_len;
static char g_vocab[8192];   /* small vocabulary: 256 bytes + 5 merges + <|endoftext|> */
static size_t g_vocab_len;
static char g_merges[512];
static size_t g_merges_len;

static void make_small_vocab(void)
{
    static const char *const merge[][2] = {{"a", "b"}, {"ab", "c"}, {"c", "d"}, {" ", "x"}, {" x", "y"}};
    byte_vocab_text(merge, sizeof merge / sizeof merge[0], g_vocab, &g_vocab_len, g_merges, &g_merges_len);
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *b;
    long n;
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    b = (char *)malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return b;
}

static void setup(void)
{
    gpt_error err;
    gpt_tokenizer *small;
    size_t vl = 0, ml = 0;
    char *v = slurp("models/tokenizer/encoder.json", &vl), *m = slurp("models/tokenizer/vocab.bpe", &ml);
    if (!v || !m) {
        fprintf(stderr, "fuzz_tokenizer: run from the repository root\n");
        abort();
    }
    g_tok = gpt_tokenizer_load_memory(v, vl, m, ml, &err);
    if (!g_tok) {
        fprintf(stderr, "fuzz_tokenizer: %s\n", err.message);
        abort();
    }
    free(v);
    free(m);
    make_small_vocab();
    small = gpt_tokenizer_load_memory(g_vocab, g_vocab_len, g_merges, g_merges_len, &err);
    if (!small) {
        fprintf(stderr, "fuzz_tokenizer: small vocabulary: %s\n", err.message);
        abort();
    }
    g_sec_len = gpt_tokenizer_serialize(small, NULL, 0);
    g_sec = (unsigned char *)malloc(g_sec_len);
    if (!g_sec || gpt_tokenizer_serialize(small, g_sec, g_sec_len) != g_sec_len) abort();
    gpt_tokenizer_free(small);
}

static void check(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "fuzz_tokenizer: check failed: %s\n", what);
        abort();
    }
}

static void fuzz_encode(const char *text, size_t len, int flags)
{
    int n = gpt_tokenize_ex(g_tok, text, len, NULL, 0, flags), m, i, k;
    int *ids, small[4];
    char *back, *streamed;
    size_t sn = 0, max_tok = gpt_tokenizer_max_token_bytes(g_tok);
    gpt_decoder d;
    check(n >= 0 && (size_t)n <= len, "id count");
    ids = (int *)malloc(((size_t)n + 1) * sizeof *ids);
    back = (char *)malloc(len + 1);
    streamed = (char *)malloc(len + max_tok + 8);
    check(ids && back && streamed, "malloc");
    m = gpt_tokenize_ex(g_tok, text, len, ids, n, flags);
    check(m == n, "sizing call agrees");
    if (n > 0) {
        k = gpt_tokenize_ex(g_tok, text, len, small, n < 4 ? n - 1 : 3, flags);
        check(k == n, "too small buffer reports the size");
        for (i = 0; i < (n < 4 ? n - 1 : 3); i++) check(small[i] == ids[i], "prefix of ids");
    }
    for (i = 0; i < n; i++) {
        check(ids[i] >= 0 && ids[i] < gpt_tokenizer_n_vocab(g_tok), "id range");
        if (!flags) check(ids[i] != gpt_tokenizer_eot(g_tok), "no EOT without the flag");
    }
    k = gpt_detokenize(g_tok, ids, n, back, len + 1);
    check(k == (int)len && memcmp(back, text, len) == 0, "decode(encode(x)) == x");
    if (len > 0) {
        k = gpt_detokenize(g_tok, ids, n, back, len - 1);
        check(k == (int)len, "detokenize reports the size");
    }
    gpt_decoder_init(&d);
    for (i = 0; i < n; i++) {
        k = gpt_decoder_push(&d, g_tok, ids[i], streamed + sn, max_tok + 4);
        check(k >= 0, "decoder push");
        sn += (size_t)k;
    }
    k = gpt_decoder_flush(&d, streamed + sn, 4);
    check(k >= 0, "decoder flush");
    sn += (size_t)k;
    check(sn == len && memcmp(streamed, text, len) == 0, "streamed == detokenize");
    free(ids);
    free(back);
    free(streamed);
}

static void fuzz_decode(const uint8_t *data, size_t size)
{
    size_t n = size / 3, i, sn = 0, max_tok = gpt_tokenizer_max_token_bytes(g_tok);
    int *ids = (int *)malloc((n + 1) * sizeof *ids), need, k, bad = 0;
    char *out, *streamed;
    gpt_decoder d;
    check(ids != NULL, "malloc");
    for (i = 0; i < n; i++) {
        /* mostly valid ids, sometimes out of range */
        uint32_t v = (uint32_t)data[3 * i] | (uint32_t)data[3 * i + 1] << 8 | (uint32_t)data[3 * i + 2] << 16;
        ids[i] = (data[3 * i + 2] & 0x80) ? (int)(v ^ 0x80000000u) - 0x800000 : (int)(v % 50300);
        if (ids[i] < 0 || ids[i] >= gpt_tokenizer_n_vocab(g_tok)) bad = 1;
    }
    need = gpt_detokenize(g_tok, ids, (int)n, NULL, 0);
    if (bad) {
        check(need == GPT_ERR_TOKEN_RANGE, "bad id reported");
        free(ids);
        return;
    }
    check(need >= 0, "decode size");
    out = (char *)malloc((size_t)need + 1);
    streamed = (char *)malloc((size_t)need + max_tok + 8);
    check(out && streamed, "malloc");
    check(gpt_detokenize(g_tok, ids, (int)n, out, (size_t)need + 1) == need, "decode");
    gpt_decoder_init(&d);
    for (i = 0; i < n; i++) {
        k = gpt_decoder_push(&d, g_tok, ids[i], streamed + sn, max_tok + 4);
        check(k >= 0, "decoder push");
        sn += (size_t)k;
    }
    k = gpt_decoder_flush(&d, streamed + sn, 4);
    check(k >= 0, "flush");
    sn += (size_t)k;
    check(sn == (size_t)need && memcmp(streamed, out, sn) == 0, "streamed == detokenize");
    free(ids);
    free(out);
    free(streamed);
}

/* A deserialized tokenizer must be usable: encode and round-trip a text. */
static void exercise(gpt_tokenizer *t, const uint8_t *data, size_t size)
{
    int n = gpt_tokenize_ex(t, (const char *)data, size, NULL, 0, GPT_TOKENIZE_SPECIAL), k;
    int *ids;
    char *back;
    check(n >= 0, "encode with a fuzzed tokenizer");
    ids = (int *)malloc(((size_t)n + 1) * sizeof *ids);
    back = (char *)malloc(size + 1);
    check(ids && back, "malloc");
    check(gpt_tokenize_ex(t, (const char *)data, size, ids, n, GPT_TOKENIZE_SPECIAL) == n, "encode again");
    k = gpt_detokenize(t, ids, n, back, size + 1);
    check(k == (int)size && memcmp(back, data, size) == 0, "round trip with a fuzzed tokenizer");
    {
        size_t sl = gpt_tokenizer_serialize(t, NULL, 0);
        unsigned char *s = (unsigned char *)malloc(sl);
        gpt_error err;
        gpt_tokenizer *t2;
        check(s && gpt_tokenizer_serialize(t, s, sl) == sl, "serialize");
        t2 = gpt_tokenizer_deserialize(s, sl, &err);
        check(t2 != NULL, "re-deserialize");
        gpt_tokenizer_free(t2);
        free(s);
    }
    free(ids);
    free(back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    gpt_error err;
    gpt_tokenizer *t;
    unsigned op;
    if (!g_tok) setup();
    if (size < 1) return 0;
    op = data[0] & 7;
    if (op == 0 && (data[0] & 0x80) && size > 1) {
        /* a long text (the input repeated to >= 8 KB): the path with the
         * per-call cache of merged pieces */
        size_t n = 0, want = 8192 + size;
        char *big = (char *)malloc(want);
        check(big != NULL, "malloc");
        while (n + size - 1 <= want) {
            memcpy(big + n, data + 1, size - 1);
            n += size - 1;
        }
        fuzz_encode(big, n, 0);
        free(big);
        return 0;
    }
    data++;
    size--;
    switch (op) {
    case 0:
    case 1:
    case 2:
        fuzz_encode((const char *)data, size, 0);
        break;
    case 3:
        fuzz_encode((const char *)data, size, GPT_TOKENIZE_SPECIAL);
        break;
    case 4:
        fuzz_decode(data, size);
        break;
    case 5:
        t = gpt_tokenizer_deserialize(data, size, &err);
        if (t) {
            exercise(t, data, size < 256 ? size : 256);
            gpt_tokenizer_free(t);
        } else {
            check(err.status != GPT_OK && err.message[0], "error message");
        }
        break;
    case 6: {
        /* patch (offset, byte) pairs into GPT-2's section */
        unsigned char *s = (unsigned char *)malloc(g_sec_len);
        size_t i, len = g_sec_len;
        check(s != NULL, "malloc");
        memcpy(s, g_sec, g_sec_len);
        for (i = 0; i + 4 <= size && i < 64; i += 4) {
            size_t off = ((size_t)data[i] | (size_t)data[i + 1] << 8 | (size_t)data[i + 2] << 16) % g_sec_len;
            /* the first bytes (header, first offsets) are hit more often */
            if (data[i + 2] & 0x80) off %= 512;
            s[off] = data[i + 3];
        }
        if (size % 5 == 1 && len > 0) len -= 1 + size % 97;
        t = gpt_tokenizer_deserialize(s, len, &err);
        if (t) {
            exercise(t, data, size < 256 ? size : 256);
            gpt_tokenizer_free(t);
        } else {
            check(err.status != GPT_OK && err.message[0], "error message");
        }
        free(s);
        break;
    }
    case 7:
        t = gpt_tokenizer_load_memory(data, size, g_merges, g_merges_len, &err);
        if (t) {
            exercise(t, data, size < 256 ? size : 256);
            gpt_tokenizer_free(t);
        }
        t = gpt_tokenizer_load_memory(g_vocab, g_vocab_len, data, size, &err);
        if (!t) check(err.status != GPT_OK && err.message[0], "error message");
        if (t) {
            exercise(t, data, size < 256 ? size : 256);
            gpt_tokenizer_free(t);
        }
        break;
    }
    return 0;
}
