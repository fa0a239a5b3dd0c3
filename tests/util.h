/*
 * util.h - small helpers shared by the test programs and fuzz harnesses:
 * little-endian fields, GPT-2's byte-to-character spelling (for writing
 * vocabulary files), and a UTF-8 validity check.
 */
#ifndef GPT_TEST_UTIL_H
#define GPT_TEST_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#if defined(__GNUC__)
#define UTIL_UNUSED __attribute__((unused))
#else
#define UTIL_UNUSED
#endif

UTIL_UNUSED static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

UTIL_UNUSED static uint64_t get64(const unsigned char *p) { return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32; }

UTIL_UNUSED static void put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

UTIL_UNUSED static void put64(unsigned char *p, uint64_t v)
{
    put32(p, (uint32_t)v);
    put32(p + 4, (uint32_t)(v >> 32));
}

/* The code point GPT-2's bytes_to_unicode gives byte b: printable Latin-1
 * bytes stand for themselves, the others are numbered from 256 in order. */
UTIL_UNUSED static unsigned byte_char(unsigned b)
{
    unsigned k = 0, x;
    if ((b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)) return b;
    for (x = 0; x < b; x++)
        if (!((x >= 0x21 && x <= 0x7E) || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE && x <= 0xFF))) k++;
    return 256 + k;
}

/* Writes the byte-level spelling of p[0..n) as UTF-8, escaped for a JSON
 * string, to out (at most 4 bytes per input byte); returns its length. */
UTIL_UNUSED static size_t spell(char *out, const char *p, size_t n)
{
    size_t o = 0, i;
    for (i = 0; i < n; i++) {
        unsigned c = byte_char((unsigned char)p[i]);
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c < 0x80) {
            out[o++] = (char)c;
        } else {
            out[o++] = (char)(0xC0 | c >> 6);
            out[o++] = (char)(0x80 | (c & 0x3F));
        }
    }
    return o;
}

/* encoder.json and vocab.bpe text of a small byte-level vocabulary: the 256
 * bytes (ids 0..255), then one token per merge, made of its two parts (ids
 * 256..), then <|endoftext|>. Merge parts of at most 8 bytes; vocab needs
 * 4096 + 64 bytes per merge, merges 16 + 64 per merge. */
UTIL_UNUSED static void byte_vocab_text(const char *const merge[][2], size_t n_merges, char *vocab, size_t *vocab_len,
                                        char *merges, size_t *merges_len)
{
    size_t o = 0, mo = 0, k;
    unsigned b;
    vocab[o++] = '{';
    for (b = 0; b < 256; b++) {
        char c = (char)b;
        vocab[o++] = '"';
        o += spell(vocab + o, &c, 1);
        o += (size_t)sprintf(vocab + o, "\": %u, ", b);
    }
    mo += (size_t)sprintf(merges, "#version: 0.2\n");
    for (k = 0; k < n_merges; k++) {
        char both[16];
        size_t l0 = strlen(merge[k][0]), l1 = strlen(merge[k][1]);
        memcpy(both, merge[k][0], l0);
        memcpy(both + l0, merge[k][1], l1);
        vocab[o++] = '"';
        o += spell(vocab + o, both, l0 + l1);
        o += (size_t)sprintf(vocab + o, "\": %u, ", 256 + (unsigned)k);
        mo += spell(merges + mo, merge[k][0], l0);
        merges[mo++] = ' ';
        mo += spell(merges + mo, merge[k][1], l1);
        merges[mo++] = '\n';
    }
    o += (size_t)sprintf(vocab + o, "\"<|endoftext|>\": %u}", 256 + (unsigned)n_merges);
    *vocab_len = o;
    *merges_len = mo;
}

/* 1 if s[0..n) is valid UTF-8 (shortest forms, no surrogates, <= U+10FFFF). */
UTIL_UNUSED static int valid_utf8(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i], lo = 0x80, hi = 0xBF;
        size_t len, k;
        if (c < 0x80) {
            i++;
            continue;
        }
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
        if (i + len > n) return 0;
        for (k = 1; k < len; k++) {
            if (s[i + k] < lo || s[i + k] > hi) return 0;
            lo = 0x80;
            hi = 0xBF;
        }
        i += len;
    }
    return 1;
}

#endif
