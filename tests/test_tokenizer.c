/*
 * test_tokenizer.c - tests of tokenizer.c: exact ids against tiktoken's on
 * the corpus and the edge cases of tests/data/tokenizer/, round trips of any
 * bytes, special tokens, buffer sizing, the streaming decoder, serialization,
 * loading both file formats, and malformed inputs of every kind.
 */
#if !defined(_WIN32)
#define _POSIX_C_SOURCE 200809L
#endif
#include "gpt.h"
#include "test.h"

#include <limits.h>
#include <stdint.h>

#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#define HAVE_PTHREAD 1
#endif
#include "util.h"

#define VOCAB_PATH "models/tokenizer/encoder.json"
#define MERGES_PATH "models/tokenizer/vocab.bpe"
#define DATA "tests/data/tokenizer/"

static gpt_tokenizer *g_tok; /* GPT-2's, loaded once by main */

/* ------------------------------------------------------------------------ */
/* helpers                                                                  */

/* Parses whitespace-separated ids from s up to the end of the line; returns
 * the count (ids may be NULL to count) and sets *end past the LF. */
static int parse_id_line(const char *s, int *ids, const char **end)
{
    int n = 0;
    while (*s && *s != '\n') {
        char *e;
        long v;
        if (*s == ' ') {
            s++;
            continue;
        }
        v = strtol(s, &e, 10);
        if (e == s) break;
        if (ids) ids[n] = (int)v;
        n++;
        s = e;
    }
    if (*s == '\n') s++;
    if (end) *end = s;
    return n;
}

/* Escapes bytes for a failure message. */
static const char *esc(char *dst, size_t cap, const char *p, size_t n)
{
    size_t o = 0, i;
    for (i = 0; i < n && o + 8 < cap; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c >= 0x20 && c < 0x7F && c != '\\') dst[o++] = (char)c;
        else o += (size_t)sprintf(dst + o, "\\x%02X", c);
    }
    dst[o] = 0;
    return dst;
}

/* Encodes with a buffer of exactly the right size (checking that the
 * sizing call agrees). Returns a malloc'd array, *n its length, or NULL. */
static int *encode_all(const gpt_tokenizer *t, const char *text, size_t len, int flags, int *n)
{
    int need = gpt_tokenize_ex(t, text, len, NULL, 0, flags), got;
    int *ids;
    if (need < 0) return NULL;
    ids = (int *)malloc(((size_t)need + 1) * sizeof *ids);
    if (!ids) return NULL;
    got = gpt_tokenize_ex(t, text, len, ids, need, flags);
    if (got != need) {
        free(ids);
        return NULL;
    }
    *n = need;
    return ids;
}

/* Decodes ids; returns a malloc'd buffer (NUL-terminated) and *len. */
static char *decode_all(const gpt_tokenizer *t, const int *ids, int n, size_t *len)
{
    int need = gpt_detokenize(t, ids, n, NULL, 0), got;
    char *out;
    if (need < 0) return NULL;
    out = (char *)malloc((size_t)need + 1);
    if (!out) return NULL;
    got = gpt_detokenize(t, ids, n, out, (size_t)need + 1);
    if (got != need || out[need] != 0) {
        free(out);
        return NULL;
    }
    *len = (size_t)need;
    return out;
}

/* Compares our ids with the reference; on a mismatch describes it with the
 * text around it in msg and returns 0. */
static int compare_ids(const gpt_tokenizer *t, const int *got, int ngot, const int *ref, int nref, char *msg,
                       size_t cap)
{
    int i, n = ngot < nref ? ngot : nref, a, b;
    char *ctx;
    size_t clen = 0;
    char e1[200], e2[200];
    for (i = 0; i < n; i++)
        if (got[i] != ref[i]) break;
    if (i == n && ngot == nref) return 1;
    a = i >= 8 ? i - 8 : 0;
    b = i + 8 < nref ? i + 8 : nref;
    ctx = decode_all(t, ref + a, b - a, &clen);
    {
        size_t glen = 0, rlen = 0;
        const char *g = i < ngot ? gpt_token_bytes(t, got[i], &glen) : "";
        const char *r = i < nref ? gpt_token_bytes(t, ref[i], &rlen) : "";
        snprintf(msg, cap, "id %d of %d/%d: got %d \"%s\", expected %d \"%s\"; reference text around it: \"%s\"", i,
                 ngot, nref, i < ngot ? got[i] : -1, esc(e1, 60, g ? g : "?", glen), i < nref ? ref[i] : -1,
                 esc(e2, 60, r ? r : "?", rlen), ctx ? esc(e1 + 60, 140, ctx, clen) : "?");
    }
    free(ctx);
    return 0;
}

/* Decodes one JSON string literal (extra_edge.txt) into out; returns length
 * or -1. */
static long json_unquote(const char *s, size_t n, char *out)
{
    size_t i = 1, o = 0;
    if (n < 2 || s[0] != '"' || s[n - 1] != '"') return -1;
    n--;
    while (i < n) {
        unsigned long cp;
        if (s[i] != '\\') {
            out[o++] = s[i++];
            continue;
        }
        if (i + 1 >= n) return -1;
        switch (s[i + 1]) {
        case 'n': out[o++] = '\n'; i += 2; continue;
        case 'r': out[o++] = '\r'; i += 2; continue;
        case 't': out[o++] = '\t'; i += 2; continue;
        case 'b': out[o++] = '\b'; i += 2; continue;
        case 'f': out[o++] = '\f'; i += 2; continue;
        case '"': out[o++] = '"'; i += 2; continue;
        case '\\': out[o++] = '\\'; i += 2; continue;
        case '/': out[o++] = '/'; i += 2; continue;
        case 'u': break;
        default: return -1;
        }
        {
            char hex[5];
            if (i + 6 > n) return -1;
            memcpy(hex, s + i + 2, 4);
            hex[4] = 0;
            cp = strtoul(hex, NULL, 16);
            i += 6;
            if (cp >= 0xD800 && cp < 0xDC00 && i + 6 <= n && s[i] == '\\' && s[i + 1] == 'u') {
                unsigned long lo;
                memcpy(hex, s + i + 2, 4);
                lo = strtoul(hex, NULL, 16);
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                i += 6;
            }
        }
        if (cp < 0x80) out[o++] = (char)cp;
        else if (cp < 0x800) {
            out[o++] = (char)(0xC0 | cp >> 6);
            out[o++] = (char)(0x80 | (cp & 0x3F));
        } else if (cp < 0x10000) {
            out[o++] = (char)(0xE0 | cp >> 12);
            out[o++] = (char)(0x80 | (cp >> 6 & 0x3F));
            out[o++] = (char)(0x80 | (cp & 0x3F));
        } else {
            out[o++] = (char)(0xF0 | cp >> 18);
            out[o++] = (char)(0x80 | (cp >> 12 & 0x3F));
            out[o++] = (char)(0x80 | (cp >> 6 & 0x3F));
            out[o++] = (char)(0x80 | (cp & 0x3F));
        }
    }
    return (long)o;
}

/* xorshift64*: the property tests' fixed-seed generator */
static uint64_t rng_state = 0x2545F4914F6CDD1Dull;
static uint32_t rnd(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 0x2545F4914F6CDD1Dull) >> 32);
}

static int write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    if (fwrite(data, 1, n, f) != n) {
        fclose(f);
        return 0;
    }
    return fclose(f) == 0;
}

/* A small vocabulary: the 256 bytes (ids 0..255 in byte order), then
 * "ab" "abc" "cd" " x" " xy", then <|endoftext|>; merges a+b, ab+c, c+d,
 * " "+x, " x"+y. */
static char small_vocab[8192];
static const char small_merges[] = "#version: 0.2\na b\nab c\nc d\nĠ x\nĠx y\n";
static size_t make_small_vocab(void)
{
    static const char *extra[] = {"ab", "abc", "cd", " x", " xy", "<|endoftext|>"};
    size_t o = 0;
    unsigned b, k;
    o += (size_t)sprintf(small_vocab + o, "{");
    for (b = 0; b < 256; b++) {
        char c = (char)b;
        small_vocab[o++] = '"';
        o += spell(small_vocab + o, &c, 1);
        o += (size_t)sprintf(small_vocab + o, "\": %u, ", b);
    }
    for (k = 0; k < 6; k++) {
        small_vocab[o++] = '"';
        o += spell(small_vocab + o, extra[k], strlen(extra[k]));
        o += (size_t)sprintf(small_vocab + o, "\": %u%s", 256 + k, k < 5 ? ", " : "}");
    }
    small_vocab[o] = 0;
    return o;
}

static gpt_tokenizer *load_mem(const char *v, const char *m, gpt_error *err)
{
    return gpt_tokenizer_load_memory(v, strlen(v), m, strlen(m), err);
}

/* ------------------------------------------------------------------------ */
/* exactness against tiktoken                                               */

static void check_corpus_file(const char *name)
{
    char path[256], msg[600];
    size_t tlen = 0, ilen = 0;
    char *text, *idtext;
    int *ref, *got, nref, ngot = 0;
    snprintf(path, sizeof path, DATA "%s", name);
    text = test_read_file(path, &tlen);
    snprintf(path, sizeof path, DATA "%s.ids", name);
    idtext = test_read_file(path, &ilen);
    if (!text || !idtext) {
        free(text);
        free(idtext);
        CHECKF(0, "cannot read %s%s or its .ids", DATA, name);
    }
    nref = parse_id_line(idtext, NULL, NULL);
    ref = (int *)malloc(((size_t)nref + 1) * sizeof *ref);
    parse_id_line(idtext, ref, NULL);
    got = encode_all(g_tok, text, tlen, 0, &ngot);
    if (!got) {
        EXPECTF(0, "%s: encoding failed", name);
    } else if (!compare_ids(g_tok, got, ngot, ref, nref, msg, sizeof msg)) {
        EXPECTF(0, "%s: %s", name, msg);
    } else {
        size_t blen = 0;
        char *back = decode_all(g_tok, got, ngot, &blen);
        EXPECTF(back && blen == tlen && memcmp(back, text, tlen) == 0, "%s: decode(encode(text)) != text", name);
        free(back);
    }
    free(got);
    free(ref);
    free(text);
    free(idtext);
}

TEST(corpus_en) { check_corpus_file("en.txt"); }
TEST(corpus_multi) { check_corpus_file("multi.txt"); }
TEST(corpus_code) { check_corpus_file("code.txt"); }
TEST(corpus_man) { check_corpus_file("man.txt"); }
TEST(corpus_ws) { check_corpus_file("ws.txt"); }
TEST(corpus_ctrl) { check_corpus_file("ctrl.txt"); }

/* edge files: one case per LF-separated line; json: lines are JSON strings */
static void check_edge_file(const char *name, int json)
{
    char path[256], msg[600];
    size_t tlen = 0, ilen = 0;
    char *text, *idtext, *buf;
    const char *line, *idl;
    int lineno = 0, failures = 0;
    snprintf(path, sizeof path, DATA "%s", name);
    text = test_read_file(path, &tlen);
    snprintf(path, sizeof path, DATA "%s.ids", name);
    idtext = test_read_file(path, &ilen);
    buf = (char *)malloc(tlen + 1);
    if (!text || !idtext || !buf) {
        free(text);
        free(idtext);
        free(buf);
        CHECKF(0, "cannot read %s%s or its .ids", DATA, name);
    }
    line = text;
    idl = idtext;
    while (line < text + tlen && *idl) {
        const char *nl = (const char *)memchr(line, '\n', (size_t)(text + tlen - line));
        size_t llen = nl ? (size_t)(nl - line) : (size_t)(text + tlen - line);
        const char *case_text = line;
        long clen = (long)llen;
        int nref = parse_id_line(idl, NULL, NULL), ngot = 0;
        int *ref = (int *)malloc(((size_t)nref + 1) * sizeof *ref), *got;
        lineno++;
        parse_id_line(idl, ref, &idl);
        if (json) {
            clen = json_unquote(line, llen, buf);
            case_text = buf;
        }
        if (clen < 0) {
            EXPECTF(0, "%s line %d: bad JSON string", name, lineno);
            failures++;
        } else {
            got = encode_all(g_tok, case_text, (size_t)clen, 0, &ngot);
            if (!got || !compare_ids(g_tok, got, ngot, ref, nref, msg, sizeof msg)) {
                char e[120];
                EXPECTF(0, "%s line %d \"%s\": %s", name, lineno, esc(e, sizeof e, case_text, (size_t)clen),
                        got ? msg : "encoding failed");
                failures++;
            }
            free(got);
        }
        free(ref);
        line = nl ? nl + 1 : text + tlen;
        if (failures) break;
    }
    EXPECTF(failures || line == text + tlen, "%s: fewer lines of ids than cases (stopped at line %d)", name,
            lineno);
    free(text);
    free(idtext);
    free(buf);
}

TEST(edge_cases) { check_edge_file("edge.txt", 0); }
TEST(edge_ucd_unicode16) { check_edge_file("edge_ucd.txt", 0); }
TEST(extra_edge_cases) { check_edge_file("extra_edge.txt", 1); }

/* ------------------------------------------------------------------------ */
/* properties                                                               */

TEST(basic_facts)
{
    size_t len = 0;
    const char *p;
    int ids[8];
    CHECK(gpt_tokenizer_n_vocab(g_tok) == 50257);
    CHECK(gpt_tokenizer_eot(g_tok) == 50256);
    CHECK(gpt_tokenizer_max_token_bytes(g_tok) == 128);
    p = gpt_token_bytes(g_tok, 198, &len);
    CHECK(p && len == 1 && p[0] == '\n');
    p = gpt_token_bytes(g_tok, 188, &len);
    CHECK(p && len == 1 && p[0] == 0);
    p = gpt_token_bytes(g_tok, 50256, &len);
    CHECK(p && len == 13 && memcmp(p, "<|endoftext|>", 13) == 0);
    CHECK(gpt_token_bytes(g_tok, 50257, &len) == NULL && len == 0);
    CHECK(gpt_token_bytes(g_tok, -1, &len) == NULL);
    CHECK(gpt_token_bytes(NULL, 0, &len) == NULL);
    CHECK(gpt_tokenize(g_tok, "", 0, ids, 8) == 0);
    CHECK(gpt_tokenize(g_tok, NULL, 0, NULL, 0) == 0);
    CHECK(gpt_tokenize(g_tok, "Hello world", 11, ids, 8) == 2 && ids[0] == 15496 && ids[1] == 995);
}

TEST(special_tokens)
{
    static const char s1[] = "a<|endoftext|>b";
    static const char s2[] = "<|endoftext|><|endoftext|> <|endoftext|";
    int *ids, n = 0, i, eots = 0;
    size_t len = 0;
    char *back;
    /* ordinary by default */
    ids = encode_all(g_tok, s1, strlen(s1), 0, &n);
    CHECK(ids);
    for (i = 0; i < n; i++) EXPECTF(ids[i] != 50256, "EOT id produced without GPT_TOKENIZE_SPECIAL");
    free(ids);
    ids = encode_all(g_tok, "<|endoftext|>", 13, 0, &n);
    CHECK(ids && n > 1);
    free(ids);
    /* special */
    ids = encode_all(g_tok, s1, strlen(s1), GPT_TOKENIZE_SPECIAL, &n);
    CHECK(ids && n == 3 && ids[0] == 64 && ids[1] == 50256 && ids[2] == 65);
    free(ids);
    ids = encode_all(g_tok, s2, strlen(s2), GPT_TOKENIZE_SPECIAL, &n);
    CHECK(ids);
    for (i = 0; i < n; i++) eots += ids[i] == 50256;
    CHECKF(eots == 2 && ids[0] == 50256 && ids[1] == 50256, "expected two EOT ids first, got %d", eots);
    back = decode_all(g_tok, ids, n, &len);
    CHECK(back && len == strlen(s2) && memcmp(back, s2, len) == 0);
    free(back);
    free(ids);
    /* the text around is encoded separately, as tiktoken does */
    {
        int a[16], b[16], na, nb;
        na = gpt_tokenize_ex(g_tok, "x <|endoftext|> y", 17, a, 16, GPT_TOKENIZE_SPECIAL);
        nb = gpt_tokenize(g_tok, "x ", 2, b, 16);
        CHECK(na == nb + 2 && memcmp(a, b, (size_t)nb * sizeof *a) == 0 && a[nb] == 50256);
    }
    CHECK(gpt_tokenize_ex(g_tok, "x", 1, NULL, 0, 2) == GPT_ERR_INVALID_ARG);
}

TEST(buffer_too_small)
{
    static const char text[] = "The quick brown fox jumps over the lazy dog, again and again.";
    int full[64], part[64], n, k, i;
    char out[128];
    n = gpt_tokenize(g_tok, text, strlen(text), full, 64);
    CHECK(n > 5 && n < 64);
    CHECK(gpt_tokenize(g_tok, text, strlen(text), NULL, 0) == n);
    for (k = 0; k < n; k++) {
        for (i = 0; i < 64; i++) part[i] = -7;
        CHECK(gpt_tokenize(g_tok, text, strlen(text), part, k) == n);
        CHECK(memcmp(part, full, (size_t)k * sizeof *part) == 0 && part[k] == -7);
    }
    /* detokenize: snprintf-like */
    CHECK(gpt_detokenize(g_tok, full, n, NULL, 0) == (int)strlen(text));
    for (k = 0; k <= (int)strlen(text) + 1; k++) {
        memset(out, 'Z', sizeof out);
        CHECK(gpt_detokenize(g_tok, full, n, out, (size_t)k) == (int)strlen(text));
        CHECK(memcmp(out, text, (size_t)(k < (int)strlen(text) ? k : (int)strlen(text))) == 0);
        if (k > (int)strlen(text)) CHECK(out[strlen(text)] == 0);
        else CHECK(out[k] == 'Z');
    }
}

TEST(bad_arguments_and_ids)
{
    int ids[4] = {15496, 50257, 0, 0};
    char out[64];
    gpt_decoder d;
    CHECK(gpt_tokenize(NULL, "a", 1, ids, 4) == GPT_ERR_INVALID_ARG);
    CHECK(gpt_tokenize(g_tok, NULL, 1, ids, 4) == GPT_ERR_INVALID_ARG);
    CHECK(gpt_tokenize(g_tok, "a", 1, NULL, 4) == GPT_ERR_INVALID_ARG);
    CHECK(gpt_tokenize(g_tok, "a", 1, ids, -1) == GPT_ERR_INVALID_ARG);
    CHECK(gpt_detokenize(g_tok, ids, 2, out, sizeof out) == GPT_ERR_TOKEN_RANGE);
    ids[1] = -1;
    CHECK(gpt_detokenize(g_tok, ids, 2, out, sizeof out) == GPT_ERR_TOKEN_RANGE);
    ids[1] = INT_MAX;
    CHECK(gpt_detokenize(g_tok, ids, 2, NULL, 0) == GPT_ERR_TOKEN_RANGE);
    CHECK(gpt_detokenize(g_tok, ids, -1, out, sizeof out) == GPT_ERR_INVALID_ARG);
    CHECK(gpt_detokenize(g_tok, NULL, 1, out, sizeof out) == GPT_ERR_INVALID_ARG);
    CHECK(gpt_detokenize(NULL, ids, 1, out, sizeof out) == GPT_ERR_INVALID_ARG);
    CHECK(gpt_detokenize(g_tok, ids, 0, out, sizeof out) == 0 && out[0] == 0);
    gpt_decoder_init(&d);
    CHECK(gpt_decoder_push(&d, g_tok, 50257, out, sizeof out) == GPT_ERR_TOKEN_RANGE);
    CHECK(gpt_decoder_push(&d, g_tok, -5, out, sizeof out) == GPT_ERR_TOKEN_RANGE);
    CHECK(gpt_decoder_push(&d, NULL, 0, out, sizeof out) == GPT_ERR_INVALID_ARG);
    CHECK(gpt_decoder_push(NULL, g_tok, 0, out, sizeof out) == GPT_ERR_INVALID_ARG);
    CHECK(gpt_tokenizer_n_vocab(NULL) == 0 && gpt_tokenizer_eot(NULL) == -1);
    CHECK(gpt_tokenizer_serialize(NULL, NULL, 0) == 0);
    gpt_tokenizer_free(NULL);
}

/* Random byte strings from several distributions: raw bytes, UTF-8
 * fragments (valid, truncated, overlong, surrogates, > U+10FFFF), white
 * space of every kind, apostrophes and letters. */
static size_t random_text(char *buf, size_t max)
{
    static const char *frags[] = {
        " ", "  ", "\t", "\n", "\r\n", "\xC2\xA0", "\xC2\x85", "\xE3\x80\x80", "\xE2\x80\xA8", "\xEF\xBB\xBF",
        "'", "'s", "'LL", "'re", "\xE2\x80\x99", "a", "Z", "hello", " the", "1", "42", "\xD9\xA3", "!", "...",
        "\xC3\xA9", "\xE4\xB8\xAD", "\xF0\x9F\x98\x80", "\xE2\x80\x8D", "\xCC\x81", "\xF0\x9F", "\xE2\x82",
        "\xC0\x80", "\xC1\xBF", "\xE0\x80\xAF", "\xED\xA0\x80", "\xED\xBF\xBF", "\xF4\x90\x80\x80", "\xF5",
        "\xFF", "\x80", "\xBF", "<|endoftext|>", "<|", "\0", "\xF0\x90\x8D\x88", "\xE0\xA4\x95",
    };
    size_t n = 0, target = rnd() % max;
    unsigned mode = rnd() % 3;
    while (n < target) {
        if (mode == 0 || (mode == 2 && rnd() % 2)) {
            buf[n++] = (char)(rnd() & 0xFF);
        } else {
            const char *f = frags[rnd() % (sizeof frags / sizeof *frags)];
            size_t l = f[0] ? strlen(f) : 1;
            if (n + l > max) break;
            memcpy(buf + n, f, l);
            n += l;
        }
    }
    return n;
}

TEST(round_trip_random_bytes)
{
    char text[600], back[4096], dec[4096 + 64];
    int ids[700], trial, flags;
    for (trial = 0; trial < 20000; trial++) {
        size_t n = random_text(text, sizeof text), dn = 0;
        int k, m, i;
        gpt_decoder d;
        flags = trial % 4 == 3 ? GPT_TOKENIZE_SPECIAL : 0;
        m = gpt_tokenize_ex(g_tok, text, n, ids, 700, flags);
        CHECKF(m >= 0 && m <= 700 && (size_t)m <= n, "trial %d: tokenize returned %d for %u bytes", trial, m,
               (unsigned)n);
        for (i = 0; i < m; i++) CHECK(ids[i] >= 0 && ids[i] < 50257);
        if (!flags)
            for (i = 0; i < m; i++) CHECK(ids[i] != 50256);
        k = gpt_detokenize(g_tok, ids, m, back, sizeof back);
        if (k != (int)n || memcmp(back, text, n) != 0) {
            char e[300];
            CHECKF(0, "trial %d: decode(encode(x)) != x for x = \"%s\"", trial, esc(e, sizeof e, text, n));
        }
        /* the streaming decoder gives the same bytes */
        gpt_decoder_init(&d);
        for (i = 0; i < m; i++) {
            int r = gpt_decoder_push(&d, g_tok, ids[i], dec + dn, sizeof dec - dn);
            CHECK(r >= 0);
            dn += (size_t)r;
        }
        k = gpt_decoder_flush(&d, dec + dn, sizeof dec - dn);
        CHECK(k >= 0);
        dn += (size_t)k;
        CHECKF(dn == n && memcmp(dec, text, n) == 0, "trial %d: streamed bytes differ", trial);
    }
}

/* The documented rule for bytes that are not well-formed UTF-8: each is one
 * "other" character. Where the rule puts a piece boundary between a and b,
 * encode(a b) == encode(a) encode(b). */
TEST(invalid_utf8_pieces)
{
    static const char *const pairs[][2] = {
        {"a", "\xFF"},           {"\xFF", "b"},         {"x", "\x00"},      {"\x00", "y"},
        {"\xE2\x82", "A"},      {"abc", "\xED\xA0\x80"}, {"\xC0\x80", "12"}, {"12", " \xF5!"},
        {"\xF0\x9F\x98", "z"}, {"don", "'t\xFF"},       {"\x80\x80", "\xC3\xA9t\xC3\xA9"},
    };
    size_t k;
    for (k = 0; k < sizeof pairs / sizeof *pairs; k++) {
        char both[64];
        int a[64], b[64], ab[64], na, nb, nab;
        size_t la = strlen(pairs[k][0]), lb = strlen(pairs[k][1]);
        if (k < 4) la = lb = 1; /* the NUL cases */
        memcpy(both, pairs[k][0], la);
        memcpy(both + la, pairs[k][1], lb);
        na = gpt_tokenize(g_tok, pairs[k][0], la, a, 64);
        nb = gpt_tokenize(g_tok, pairs[k][1], lb, b, 64);
        nab = gpt_tokenize(g_tok, both, la + lb, ab, 64);
        CHECKF(na > 0 && nb > 0 && nab == na + nb && memcmp(ab, a, (size_t)na * sizeof *a) == 0 &&
                   memcmp(ab + na, b, (size_t)nb * sizeof *b) == 0,
               "case %u: no piece boundary where the rule puts one", (unsigned)k);
    }
    /* a run of invalid bytes ends a word and starts another: "a", the run, "b" */
    {
        int x[16], n = gpt_tokenize(g_tok, "a\xFF\xFE\x80" "b", 5, x, 16);
        CHECK(n >= 3 && x[0] == 64 && x[n - 1] == 65);
    }
}

TEST(streaming_decoder)
{
    /* characters whose bytes are split across tokens */
    static const char text[] = "\xF0\x9F\x98\x80 caf\xC3\xA9 \xE4\xB8\xAD\xE6\x96\x87 \xF0\x9F\x87\xBA\xF0\x9F\x87\xB3 "
                               "\xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9 \xE0\xA4\x95\xE0\xA5\x8D\xE0\xA4\xB7";
    char out[256], all[512];
    size_t n = 0;
    int ids[128], m, i, r, split = 0;
    gpt_decoder d;
    m = gpt_tokenize(g_tok, text, strlen(text), ids, 128);
    CHECK(m > 0);
    gpt_decoder_init(&d);
    for (i = 0; i < m; i++) {
        size_t l = 0;
        const char *tb = gpt_token_bytes(g_tok, ids[i], &l);
        if (!valid_utf8((const unsigned char *)tb, l)) split = 1;
        r = gpt_decoder_push(&d, g_tok, ids[i], out, sizeof out);
        CHECK(r >= 0);
        CHECKF(valid_utf8((const unsigned char *)out, (size_t)r), "token %d: output is not whole characters", i);
        memcpy(all + n, out, (size_t)r);
        n += (size_t)r;
    }
    CHECK(split); /* the text does split characters across tokens */
    CHECK(gpt_decoder_flush(&d, out, sizeof out) == 0);
    CHECK(n == strlen(text) && memcmp(all, text, n) == 0);

    /* byte tokens one at a time: F0 9F 98 80 (U+1F600) */
    {
        static const unsigned char emo[] = {0xF0, 0x9F, 0x98, 0x80};
        int bid[4];
        for (i = 0; i < 4; i++) CHECK(gpt_tokenize(g_tok, (const char *)emo + i, 1, &bid[i], 1) == 1);
        gpt_decoder_init(&d);
        for (i = 0; i < 3; i++) CHECK(gpt_decoder_push(&d, g_tok, bid[i], out, sizeof out) == 0);
        CHECK(d.n_held == 3);
        /* a buffer too small leaves the state as it was */
        CHECK(gpt_decoder_push(&d, g_tok, bid[3], out, 3) == GPT_ERR_BUFFER_TOO_SMALL && d.n_held == 3);
        CHECK(gpt_decoder_push(&d, g_tok, bid[3], out, sizeof out) == 4 && memcmp(out, emo, 4) == 0);
        CHECK(d.n_held == 0);
        /* an incomplete character at the end comes out of flush */
        CHECK(gpt_decoder_push(&d, g_tok, bid[0], out, sizeof out) == 0);
        CHECK(gpt_decoder_push(&d, g_tok, bid[1], out, sizeof out) == 0);
        CHECK(gpt_decoder_flush(&d, out, 1) == GPT_ERR_BUFFER_TOO_SMALL);
        CHECK(gpt_decoder_flush(&d, out, sizeof out) == 2 && memcmp(out, emo, 2) == 0 && d.n_held == 0);
    }
    /* bytes that can never become valid pass through at once */
    {
        static const char *seqs[] = {"\x80", "\xFF", "\xC0", "\xF5", "\xED\xA0", "\xE0\x80", "\xF4\x90", "\xE2\x41"};
        static const int immediate[] = {1, 1, 1, 1, 2, 2, 2, 2};
        for (i = 0; i < 8; i++) {
            size_t l = strlen(seqs[i]), k, got = 0;
            gpt_decoder_init(&d);
            for (k = 0; k < l; k++) {
                int bid;
                CHECK(gpt_tokenize(g_tok, seqs[i] + k, 1, &bid, 1) == 1);
                r = gpt_decoder_push(&d, g_tok, bid, out + got, sizeof out - got);
                CHECK(r >= 0);
                got += (size_t)r;
            }
            CHECKF(got == (size_t)immediate[i] && d.n_held == 0 && memcmp(out, seqs[i], got) == 0,
                   "sequence %d: %u bytes out, %d held", i, (unsigned)got, d.n_held);
        }
    }
}

TEST(huge_word)
{
    size_t n = (size_t)1 << 20, i, blen = 0;
    char *w = (char *)malloc(n), *back;
    int *ids, m = 0, pass;
    CHECK(w);
    for (pass = 0; pass < 3; pass++) {
        /* random letters, one letter repeated, and letters + combining marks */
        for (i = 0; i < n; i++) {
            if (pass == 0) w[i] = (char)('a' + rnd() % 26);
            else if (pass == 1) w[i] = 'a';
            else w[i] = (i % 3 == 0) ? 'e' : (i % 3 == 1 ? '\xCC' : '\x81');
        }
        ids = encode_all(g_tok, w, n, 0, &m);
        if (!ids) {
            free(w);
            CHECKF(0, "pass %d: encoding a 1 MB word failed", pass);
        }
        back = decode_all(g_tok, ids, m, &blen);
        EXPECTF(back && blen == n && memcmp(back, w, n) == 0, "pass %d: round trip of a 1 MB word", pass);
        free(back);
        free(ids);
    }
    free(w);
}

/* ------------------------------------------------------------------------ */
/* serialization                                                            */

TEST(serialize_round_trip)
{
    size_t size = gpt_tokenizer_serialize(g_tok, NULL, 0), size2, i;
    unsigned char *buf = (unsigned char *)malloc(size), *buf2 = NULL;
    gpt_tokenizer *t2;
    gpt_error err;
    int v;
    CHECK(buf && size > 24);
    CHECK(gpt_tokenizer_serialize(g_tok, buf, size - 1) == size);
    CHECK(gpt_tokenizer_serialize(g_tok, buf, size) == size);
    CHECK(memcmp(buf, "GTOK", 4) == 0 && buf[4] == 1 && buf[8] == (50257 & 0xFF));
    t2 = gpt_tokenizer_deserialize(buf, size, &err);
    if (!t2) {
        free(buf);
        CHECKF(0, "deserialize: %s", err.message);
    }
    EXPECTF(err.status == GPT_OK, "status %d", err.status);
    EXPECTF(gpt_tokenizer_n_vocab(t2) == 50257 && gpt_tokenizer_eot(t2) == 50256 &&
                gpt_tokenizer_max_token_bytes(t2) == 128,
            "header values differ");
    for (v = 0; v < 50257; v++) {
        size_t l1 = 0, l2 = 0;
        const char *a = gpt_token_bytes(g_tok, v, &l1), *b = gpt_token_bytes(t2, v, &l2);
        if (l1 != l2 || memcmp(a, b, l1) != 0) {
            EXPECTF(0, "token %d differs", v);
            break;
        }
    }
    size2 = gpt_tokenizer_serialize(t2, NULL, 0);
    buf2 = (unsigned char *)malloc(size2);
    EXPECTF(buf2 && size2 == size && gpt_tokenizer_serialize(t2, buf2, size2) == size &&
                memcmp(buf, buf2, size) == 0,
            "serialize(deserialize(s)) != s");
    {
        /* same ids on real text */
        size_t tlen = 0;
        char *text = test_read_file(DATA "multi.txt", &tlen);
        int *a, *b, na = 0, nb = 0;
        if (text) {
            if (tlen > 300000) tlen = 300000;
            a = encode_all(g_tok, text, tlen, 0, &na);
            b = encode_all(t2, text, tlen, 0, &nb);
            EXPECTF(a && b && na == nb && memcmp(a, b, (size_t)na * sizeof *a) == 0,
                    "deserialized tokenizer encodes differently");
            free(a);
            free(b);
            free(text);
        }
    }
    /* every truncation is rejected (a sample of lengths), never a crash */
    for (i = 0; i < size; i += 1 + i / 3) {
        gpt_tokenizer *t3 = gpt_tokenizer_deserialize(buf, i, &err);
        if (t3) {
            gpt_tokenizer_free(t3);
            EXPECTF(0, "truncated section of %u bytes accepted", (unsigned)i);
            break;
        }
        if (err.status != GPT_ERR_FORMAT) {
            EXPECTF(0, "truncated section of %u bytes: status %d", (unsigned)i, err.status);
            break;
        }
    }
    gpt_tokenizer_free(t2);
    free(buf);
    free(buf2);
}

/* Applies edit to a copy of the serialized small tokenizer and checks that
 * deserialization fails with status st and a message containing word. */
static int expect_bad_section(const unsigned char *good, size_t size, void (*edit)(unsigned char *, size_t *),
                              gpt_status st, const char *word, const char *name)
{
    unsigned char *b = (unsigned char *)malloc(size + 16);
    size_t n = size;
    gpt_error err;
    gpt_tokenizer *t;
    memcpy(b, good, size);
    memset(b + size, 0, 16);
    edit(b, &n);
    t = gpt_tokenizer_deserialize(b, n, &err);
    free(b);
    if (t) {
        gpt_tokenizer_free(t);
        EXPECTF(0, "%s: accepted", name);
        return 0;
    }
    if (err.status != st || !strstr(err.message, word)) {
        EXPECTF(0, "%s: got status %d \"%s\", expected %d and \"%s\"", name, err.status, err.message, st, word);
        return 0;
    }
    return 1;
}

/* layout of the small tokenizer's section: 262 tokens, 5 merges */
#define S_NV 262
#define S_OFFS 24
#define S_BLOB (24 + 4 * (S_NV + 1))
static size_t s_blob_len(const unsigned char *b) { return get32(b + S_OFFS + 4 * S_NV); }
static size_t s_merges(const unsigned char *b) { return (S_BLOB + s_blob_len(b) + 3) & ~(size_t)3; }

static void ed_magic(unsigned char *b, size_t *n) { (void)n; b[0] = 'X'; }
static void ed_version(unsigned char *b, size_t *n) { (void)n; put32(b + 4, 2); }
static void ed_version0(unsigned char *b, size_t *n) { (void)n; put32(b + 4, 0); }
static void ed_nvocab_big(unsigned char *b, size_t *n) { (void)n; put32(b + 8, 0xFFFFFFFFu); }
static void ed_nvocab_small(unsigned char *b, size_t *n) { (void)n; put32(b + 8, 255); }
static void ed_nvocab_off(unsigned char *b, size_t *n) { (void)n; put32(b + 8, S_NV - 1); }
static void ed_nmerges(unsigned char *b, size_t *n) { (void)n; put32(b + 12, 6); }
static void ed_eot(unsigned char *b, size_t *n) { (void)n; put32(b + 16, S_NV); }
static void ed_eot_neg(unsigned char *b, size_t *n) { (void)n; put32(b + 16, 0xFFFFFFFEu); }
static void ed_eot_byte(unsigned char *b, size_t *n) { (void)n; put32(b + 16, 65); }
static void ed_reserved(unsigned char *b, size_t *n) { (void)n; b[20] = 1; }
static void ed_off0(unsigned char *b, size_t *n) { (void)n; put32(b + S_OFFS, 1); }
static void ed_off_equal(unsigned char *b, size_t *n) { (void)n; put32(b + S_OFFS + 4 * 10, get32(b + S_OFFS + 4 * 9)); }
static void ed_off_past(unsigned char *b, size_t *n) { (void)n; put32(b + S_OFFS + 4 * S_NV, 0x7FFFFFFF); }
static void ed_dup_token(unsigned char *b, size_t *n) { (void)n; b[S_BLOB + 66] = 'A'; } /* token 66 "B" -> "A" */
static void ed_trailing(unsigned char *b, size_t *n) { (void)b; *n += 8; }
static void ed_short(unsigned char *b, size_t *n) { (void)b; *n -= 1; }
static void ed_merge_range(unsigned char *b, size_t *n) { (void)n; put32(b + s_merges(b), 999); }
static void ed_merge_result(unsigned char *b, size_t *n) { (void)n; put32(b + s_merges(b) + 4, 'z'); } /* a+z */
static void ed_merge_dup(unsigned char *b, size_t *n) { (void)n; memcpy(b + s_merges(b) + 8, b + s_merges(b), 8); }
static void ed_padding(unsigned char *b, size_t *n)
{
    (void)n;
    if (S_BLOB + s_blob_len(b) < s_merges(b)) b[S_BLOB + s_blob_len(b)] = 7;
    else b[0] = 'X';
}

TEST(deserialize_malformed)
{
    gpt_error err;
    gpt_tokenizer *t;
    size_t size, i;
    unsigned char *good;
    CHECK(make_small_vocab() > 0);
    t = load_mem(small_vocab, small_merges, &err);
    CHECKF(t, "small vocabulary: %s", err.message);
    size = gpt_tokenizer_serialize(t, NULL, 0);
    good = (unsigned char *)malloc(size);
    CHECK(good && gpt_tokenizer_serialize(t, good, size) == size);
    gpt_tokenizer_free(t);
    CHECK(get32(good + 8) == S_NV && get32(good + 12) == 5 && get32(good + 16) == 261);
    t = gpt_tokenizer_deserialize(good, size, &err);
    CHECKF(t, "good section rejected: %s", err.message);
    gpt_tokenizer_free(t);
    expect_bad_section(good, size, ed_magic, GPT_ERR_FORMAT, "magic", "magic");
    expect_bad_section(good, size, ed_version, GPT_ERR_UNSUPPORTED, "version", "newer version");
    expect_bad_section(good, size, ed_version0, GPT_ERR_FORMAT, "version", "version 0");
    expect_bad_section(good, size, ed_nvocab_big, GPT_ERR_FORMAT, "n_vocab", "huge n_vocab");
    expect_bad_section(good, size, ed_nvocab_small, GPT_ERR_FORMAT, "n_vocab", "n_vocab < 256");
    expect_bad_section(good, size, ed_nvocab_off, GPT_ERR_FORMAT, "tokenizer section", "n_vocab one less");
    expect_bad_section(good, size, ed_nmerges, GPT_ERR_FORMAT, "bytes", "n_merges one more");
    expect_bad_section(good, size, ed_eot, GPT_ERR_FORMAT, "eot_id", "eot out of range");
    expect_bad_section(good, size, ed_eot_neg, GPT_ERR_FORMAT, "eot_id -2", "eot -2");
    expect_bad_section(good, size, ed_eot_byte, GPT_ERR_FORMAT, "single byte", "eot a single byte");
    expect_bad_section(good, size, ed_reserved, GPT_ERR_FORMAT, "reserved", "reserved");
    expect_bad_section(good, size, ed_off0, GPT_ERR_FORMAT, "token 0", "first offset");
    expect_bad_section(good, size, ed_off_equal, GPT_ERR_FORMAT, "strictly increase", "empty token");
    expect_bad_section(good, size, ed_off_past, GPT_ERR_FORMAT, "past", "blob past the end");
    expect_bad_section(good, size, ed_dup_token, GPT_ERR_FORMAT, "same bytes", "duplicate token");
    expect_bad_section(good, size, ed_trailing, GPT_ERR_FORMAT, "bytes", "trailing bytes");
    expect_bad_section(good, size, ed_short, GPT_ERR_FORMAT, "bytes", "one byte short");
    expect_bad_section(good, size, ed_merge_range, GPT_ERR_FORMAT, "out of range", "merge id out of range");
    expect_bad_section(good, size, ed_merge_result, GPT_ERR_FORMAT, "not a token", "merge result");
    expect_bad_section(good, size, ed_merge_dup, GPT_ERR_FORMAT, "already merge", "duplicate merge");
    expect_bad_section(good, size, ed_padding, GPT_ERR_FORMAT, "", "padding");
    /* every single-byte corruption: accepted or rejected, never a crash */
    for (i = 0; i < size; i++) {
        unsigned char *b = (unsigned char *)malloc(size);
        memcpy(b, good, size);
        b[i] ^= (unsigned char)(1 + i % 255);
        t = gpt_tokenizer_deserialize(b, size, &err);
        if (t) {
            int ids[64];
            int m = gpt_tokenize(t, "abcd xy \xC3\xA9", 10, ids, 64);
            EXPECTF(m > 0, "corrupted section at %u accepted but cannot encode", (unsigned)i);
            gpt_tokenizer_free(t);
        } else {
            EXPECTF(err.message[0] != 0, "no message for corruption at %u", (unsigned)i);
        }
        free(b);
    }
    t = gpt_tokenizer_deserialize(NULL, 0, &err);
    EXPECTF(!t && err.status == GPT_ERR_FORMAT, "empty section");
    free(good);
}

/* ------------------------------------------------------------------------ */
/* loading the JSON formats                                                 */

TEST(small_vocab_encodes_by_merges)
{
    gpt_error err;
    gpt_tokenizer *t;
    int ids[16], n;
    CHECK(make_small_vocab() > 0);
    t = load_mem(small_vocab, small_merges, &err);
    CHECKF(t, "%s", err.message);
    CHECK(gpt_tokenizer_n_vocab(t) == 262 && gpt_tokenizer_eot(t) == 261);
    n = gpt_tokenize(t, "abcd xyz", 8, ids, 16);
    /* "abcd": a+b -> ab, ab+c -> abc (rank 1) before c+d (rank 2): abc d */
    CHECK(n == 4 && ids[0] == 257 && ids[1] == 'd' && ids[2] == 260 && ids[3] == 'z');
    n = gpt_tokenize_ex(t, "ab<|endoftext|>", 15, ids, 16, GPT_TOKENIZE_SPECIAL);
    CHECK(n == 2 && ids[0] == 256 && ids[1] == 261);
    gpt_tokenizer_free(t);
}

/* Hugging Face style variants of encoder.json: 1 = one entry per line,
 * 2 = also "Ġ" written as \u0120, 3 = also a final newline. Returns the length. */
static size_t vocab_variant(const char *v, size_t vl, int variant, char *out)
{
    size_t i, o = 0;
    int in_str = 0;
    for (i = 0; i < vl; i++) {
        unsigned char c = (unsigned char)v[i];
        if (in_str) {
            if (c == '\\' && i + 1 < vl) {
                out[o++] = v[i++];
                out[o++] = v[i];
            } else if (variant >= 2 && c == 0xC4 && i + 1 < vl && (unsigned char)v[i + 1] == 0xA0) {
                memcpy(out + o, "\\u0120", 6); /* "\u0120" is the character Ġ */
                o += 6;
                i++;
            } else {
                if (c == '"') in_str = 0;
                out[o++] = (char)c;
            }
            continue;
        }
        if (c == '"') in_str = 1;
        out[o++] = (char)c;
        if (variant >= 1 && (c == '{' || c == ',')) {
            memcpy(out + o, "\n  ", 3);
            o += 3;
            if (i + 1 < vl && v[i + 1] == ' ') i++; /* drop the space */
        }
    }
    if (variant == 3) out[o++] = '\n';
    return o;
}

/* Variants of vocab.bpe: 1 = no #version line, 2 = CRLF line ends, 3 = CRLF
 * and no line end after the last merge. */
static size_t merges_variant(const char *m, size_t ml, int variant, char *out)
{
    size_t i = 0, o = 0;
    if (variant == 1) {
        const char *nl = (const char *)memchr(m, '\n', ml);
        i = nl ? (size_t)(nl - m) + 1 : 0;
    }
    for (; i < ml; i++) {
        if (m[i] == '\n' && variant >= 2) out[o++] = '\r';
        out[o++] = m[i];
    }
    if (variant == 3 && o >= 2) o -= 2;
    return o;
}

TEST(load_formats)
{
    gpt_error err;
    size_t vl = 0, ml = 0, hvl = 0, hml = 0;
    char *v = test_read_file(VOCAB_PATH, &vl), *m = test_read_file(MERGES_PATH, &ml), *hv = NULL, *hm = NULL;
    gpt_tokenizer *t;
    size_t ref_size = gpt_tokenizer_serialize(g_tok, NULL, 0);
    unsigned char *ref = (unsigned char *)malloc(ref_size), *got = (unsigned char *)malloc(ref_size);
    int variant;
    char tmp_vocab[512], tmp_merges[512];
    if (!v || !m || !ref || !got) {
        free(v), free(m), free(ref), free(got);
        CHECKF(0, "cannot read the vocabulary files");
    }
    gpt_tokenizer_serialize(g_tok, ref, ref_size);
    hv = (char *)malloc(vl * 7 + 16);
    hm = (char *)malloc(ml * 2 + 16);
    for (variant = 0; hv && hm && variant < 4; variant++) {
        hvl = vocab_variant(v, vl, variant, hv);
        hml = merges_variant(m, ml, variant, hm);
        t = gpt_tokenizer_load_memory(hv, hvl, hm, hml, &err);
        if (!t) {
            EXPECTF(0, "variant %d: %s", variant, err.message);
            continue;
        }
        EXPECTF(gpt_tokenizer_serialize(t, got, ref_size) == ref_size && memcmp(got, ref, ref_size) == 0,
                "variant %d loads differently", variant);
        gpt_tokenizer_free(t);
    }
    /* from files, with the last (Hugging Face style) variant, written to the
     * build directory (tests/run.sh passes it as $BUILD) or /tmp */
    {
        const char *dir = getenv("BUILD");
        snprintf(tmp_vocab, sizeof tmp_vocab, "%s/tests/test_tokenizer.tmp.json", dir ? dir : "build");
        snprintf(tmp_merges, sizeof tmp_merges, "%s/tests/test_tokenizer.tmp.txt", dir ? dir : "build");
        if (!write_file(tmp_vocab, "", 0)) {
            snprintf(tmp_vocab, sizeof tmp_vocab, "/tmp/gpt_test_tokenizer.tmp.json");
            snprintf(tmp_merges, sizeof tmp_merges, "/tmp/gpt_test_tokenizer.tmp.txt");
        }
    }
    EXPECTF(hv && hm && write_file(tmp_vocab, hv, hvl) && write_file(tmp_merges, hm, hml),
            "cannot write %s and %s", tmp_vocab, tmp_merges);
    if (hv && hm && write_file(tmp_vocab, hv, hvl) && write_file(tmp_merges, hm, hml)) {
        t = gpt_tokenizer_load(tmp_vocab, tmp_merges, &err);
        EXPECTF(t != NULL, "load from files: %s", err.message);
        if (t)
            EXPECTF(gpt_tokenizer_serialize(t, got, ref_size) == ref_size && memcmp(got, ref, ref_size) == 0,
                    "file load differs");
        gpt_tokenizer_free(t);
        /* a broken file is named in the message */
        hv[0] = '[';
        if (write_file(tmp_vocab, hv, hvl)) {
            t = gpt_tokenizer_load(tmp_vocab, tmp_merges, &err);
            EXPECTF(!t && err.status == GPT_ERR_FORMAT && strstr(err.message, tmp_vocab) &&
                        strstr(err.message, ":1:1: expected '{'"),
                    "broken file: %s", err.message);
            gpt_tokenizer_free(t);
        }
        remove(tmp_vocab);
        remove(tmp_merges);
    }
    t = gpt_tokenizer_load("no/such/encoder.json", MERGES_PATH, &err);
    EXPECTF(!t && err.status == GPT_ERR_IO && strstr(err.message, "no/such/encoder.json"),
            "missing file: %d %s", err.status, err.message);
    t = gpt_tokenizer_load(VOCAB_PATH, NULL, &err);
    EXPECTF(!t && err.status == GPT_ERR_INVALID_ARG, "NULL path");
    free(v);
    free(m);
    free(hv);
    free(hm);
    free(ref);
    free(got);
}

/* Loads (vocab, merges) expecting failure with a message containing word. */
static void expect_bad_load(const char *vocab, const char *merges, const char *word, const char *name)
{
    gpt_error err;
    gpt_tokenizer *t;
    if (!vocab) {
        EXPECTF(0, "%s: the test's edit does not apply", name);
        return;
    }
    t = load_mem(vocab, merges, &err);
    if (t) {
        gpt_tokenizer_free(t);
        EXPECTF(0, "%s: accepted", name);
        return;
    }
    EXPECTF(err.status == GPT_ERR_FORMAT && strstr(err.message, word), "%s: status %d, message \"%s\" lacks \"%s\"",
            name, err.status, err.message, word);
}

/* small_vocab with the first occurrence of from replaced by to ("}": the
 * last character) */
static char *vocab_edit(const char *from, const char *to)
{
    static char buf[9000];
    const char *p = strcmp(from, "}") == 0 ? strrchr(small_vocab, '}') : strstr(small_vocab, from);
    size_t a;
    if (!p) return NULL;
    a = (size_t)(p - small_vocab);
    memcpy(buf, small_vocab, a);
    strcpy(buf + a, to);
    strcat(buf, p + strlen(from));
    return buf;
}

TEST(load_malformed)
{
    gpt_error err;
    gpt_tokenizer *t;
    size_t vl;
    CHECK((vl = make_small_vocab()) > 0);
    t = load_mem(small_vocab, small_merges, &err);
    CHECKF(t, "%s", err.message);
    gpt_tokenizer_free(t);
    /* JSON */
    expect_bad_load("", small_merges, "expected '{'", "empty vocab");
    expect_bad_load("[1,2]", small_merges, "expected '{'", "array");
    expect_bad_load("{}", small_merges, "256", "empty object");
    expect_bad_load(vocab_edit("}", ""), small_merges, "expected ',' or '}'", "unterminated object");
    expect_bad_load(vocab_edit("}", ",}"), small_merges, "expected a token string", "trailing comma");
    expect_bad_load(vocab_edit("}", "} x"), small_merges, "after the JSON object", "trailing data");
    expect_bad_load(vocab_edit("\"a\": 97", "\"a\" 97"), small_merges, "expected ':'", "missing colon");
    expect_bad_load(vocab_edit("\"a\": 97", "\"a\": 97.0"), small_merges, "not an integer", "float id");
    expect_bad_load(vocab_edit("\"a\": 97", "\"a\": -97"), small_merges, "expected a token id", "negative id");
    expect_bad_load(vocab_edit("\"a\": 97", "\"a\": 097"), small_merges, "leading zero", "leading zero");
    expect_bad_load(vocab_edit("\"a\": 97", "\"a\": 99999999999"), small_merges, "too large", "huge id");
    expect_bad_load(vocab_edit("\"a\": 97", "\"a\": 300"), small_merges, "out of range", "id out of range");
    expect_bad_load(vocab_edit("\"a\": 97", "\"a\": 98"), small_merges, "given twice", "duplicate id");
    expect_bad_load(vocab_edit("\"a\": 97", "\"b\": 97"), small_merges, "same bytes", "duplicate key");
    expect_bad_load(vocab_edit("\"a\": 97", "\"\xE2\x82\xAC\": 97"), small_merges, "U+20AC", "unknown character");
    expect_bad_load(vocab_edit("\"a\": 97", "\" \": 97"), small_merges, "U+0020", "raw space");
    expect_bad_load(vocab_edit("\"a\": 97", "\"\\q\": 97"), small_merges, "invalid escape", "bad escape");
    expect_bad_load(vocab_edit("\"a\": 97", "\"\\uD800\": 97"), small_merges, "surrogate", "lone surrogate");
    expect_bad_load(vocab_edit("\"a\": 97", "\"\\u00\": 97"), small_merges, "hex digits", "short \\u");
    expect_bad_load(vocab_edit("\"a\": 97", "\"\xC3\": 97"), small_merges, "UTF-8", "invalid UTF-8");
    expect_bad_load(vocab_edit("\"a\": 97", "\"\": 97"), small_merges, "empty token", "empty token");
    expect_bad_load(vocab_edit("\"a\": 97", "\"a\x01\": 97"), small_merges, "control character", "control char");
    expect_bad_load(vocab_edit("\"a\": 97, ", ""), small_merges, "out of range", "missing byte token");
    expect_bad_load(vocab_edit("\"a\": 97", "\"a"), small_merges, "", "unterminated string");
    /* merges */
    expect_bad_load(small_vocab, "a b\n\nab c\n", ":2:", "empty line in the middle");
    expect_bad_load(small_vocab, "a b c\n", "second one", "three fields");
    expect_bad_load(small_vocab, "ab\n", "two tokens", "one field");
    expect_bad_load(small_vocab, " a\n", "two tokens", "empty left part");
    expect_bad_load(small_vocab, "a b\nab q\n", "not a token", "result not a token");
    expect_bad_load(small_vocab, "a b\nabx c\n", "not a token of the vocabulary", "part not a token");
    expect_bad_load(small_vocab, "a b\na b\n", "already merge", "duplicate merge");
    expect_bad_load(small_vocab, "a \xE2\x82\xAC\n", "U+20AC", "unknown character in merges");
    expect_bad_load(small_vocab, "#version: 0.2\n#version: 0.2\n", "", "second #version line");
    expect_bad_load(small_vocab, "a b\n<|endoftext|> x\n", "", "merge making nonsense");
    /* a merge that would make the EOT token */
    {
        char v2[9000];
        const char *e2 = vocab_edit("\"<|endoftext|>\": 261", "\"ab\\u010a\": 261");
        CHECK(e2);
        strcpy(v2, e2);
        /* eot is now absent: loading works, eot -1 */
        t = load_mem(v2, small_merges, &err);
        EXPECTF(t && gpt_tokenizer_eot(t) == -1, "vocabulary without <|endoftext|>: %s", t ? "" : err.message);
        gpt_tokenizer_free(t);
    }
    expect_bad_load(vocab_edit("\"<|endoftext|>\": 261", "\"<|endoftext|>\": 261, \"<|endoftext|\": 262"),
                    "<|endoftext| >\n",
                    "end-of-text", "merge giving EOT");
    t = gpt_tokenizer_load_memory(NULL, 5, small_merges, 3, &err);
    EXPECTF(!t && err.status == GPT_ERR_INVALID_ARG, "NULL buffer");
    (void)vl;
}

/* ------------------------------------------------------------------------ */
/* threads                                                                  */

#ifdef HAVE_PTHREAD
typedef struct job {
    const char *text;
    size_t len;
    const int *ref;
    int nref;
    int ok;
} job;

static void *worker(void *arg)
{
    job *j = (job *)arg;
    int rep, n = 0;
    j->ok = 1;
    for (rep = 0; rep < 3; rep++) {
        int *ids = encode_all(g_tok, j->text, j->len, 0, &n);
        if (!ids || n != j->nref || memcmp(ids, j->ref, (size_t)n * sizeof *ids) != 0) j->ok = 0;
        free(ids);
    }
    return NULL;
}
#endif

TEST(threads_share_one_tokenizer)
{
#ifdef HAVE_PTHREAD
    size_t len = 0;
    char *text = test_read_file(DATA "multi.txt", &len);
    int *ref, nref = 0, i;
    pthread_t th[4];
    job jobs[4];
    CHECK(text);
    if (len > 200000) len = 200000;
    ref = encode_all(g_tok, text, len, 0, &nref);
    CHECK(ref);
    for (i = 0; i < 4; i++) {
        jobs[i].text = text + (i % 2) * 1000;
        jobs[i].len = len - (size_t)(i % 2) * 1000;
        jobs[i].ok = 0;
        jobs[i].ref = NULL;
        jobs[i].nref = 0;
    }
    for (i = 0; i < 4; i++) {
        if (i % 2 == 0) {
            jobs[i].ref = ref;
            jobs[i].nref = nref;
        } else {
            int n2 = 0;
            jobs[i].ref = encode_all(g_tok, jobs[i].text, jobs[i].len, 0, &n2);
            jobs[i].nref = n2;
        }
    }
    for (i = 0; i < 4; i++) CHECK(pthread_create(&th[i], NULL, worker, &jobs[i]) == 0);
    for (i = 0; i < 4; i++) pthread_join(th[i], NULL);
    for (i = 0; i < 4; i++) EXPECTF(jobs[i].ok, "thread %d got different ids", i);
    free((void *)jobs[1].ref);
    free((void *)jobs[3].ref);
    free(ref);
    free(text);
#else
    SKIP("no pthreads on this platform");
#endif
}

int main(void)
{
    gpt_error err;
    g_tok = gpt_tokenizer_load(VOCAB_PATH, MERGES_PATH, &err);
    if (!g_tok) {
        printf("FAIL load_gpt2_tokenizer: %s\n", err.message);
        return 1;
    }
    RUN(basic_facts);
    RUN(corpus_en);
    RUN(corpus_multi);
    RUN(corpus_code);
    RUN(corpus_man);
    RUN(corpus_ws);
    RUN(corpus_ctrl);
    RUN(edge_cases);
    RUN(edge_ucd_unicode16);
    RUN(extra_edge_cases);
    RUN(special_tokens);
    RUN(buffer_too_small);
    RUN(bad_arguments_and_ids);
    RUN(round_trip_random_bytes);
    RUN(invalid_utf8_pieces);
    RUN(streaming_decoder);
    RUN(huge_word);
    RUN(serialize_round_trip);
    RUN(deserialize_malformed);
    RUN(small_vocab_encodes_by_merges);
    RUN(load_formats);
    RUN(load_malformed);
    RUN(threads_share_one_tokenizer);
    gpt_tokenizer_free(g_tok);
    return test_summary();
}
