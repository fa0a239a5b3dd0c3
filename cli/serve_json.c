/* serve_json.c - growable byte buffers and the JSON writer of `gpt serve`. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "serve.h"

static int sb_reserve(sbuf *b, size_t extra)
{
    size_t want, cap;
    char *p;
    if (b->failed) return 0;
    if (extra > (size_t)-1 / 2 - b->n) {
        b->failed = 1;
        return 0;
    }
    want = b->n + extra + 1;
    if (want <= b->cap) return 1;
    cap = b->cap ? b->cap : 256;
    while (cap < want) cap *= 2;
    if (!(p = (char *)gpt__realloc(b->p, cap))) {
        b->failed = 1;
        return 0;
    }
    b->p = p;
    b->cap = cap;
    return 1;
}

void sb_put(sbuf *b, const void *s, size_t n)
{
    if (n == 0 || !sb_reserve(b, n)) return;
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

void sb_puts(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

void sb_printf(sbuf *b, const char *fmt, ...)
{
    char small[256];
    va_list ap;
    int n;
    va_start(ap, fmt);
    n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = 1;
        return;
    }
    if ((size_t)n < sizeof small) {
        sb_put(b, small, (size_t)n);
        return;
    }
    if (!sb_reserve(b, (size_t)n)) return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->n, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->n += (size_t)n;
}

void sb_consume(sbuf *b, size_t n)
{
    if (n >= b->n) {
        b->n = 0;
        if (b->p) b->p[0] = 0;
        return;
    }
    memmove(b->p, b->p + n, b->n - n);
    b->n -= n;
    b->p[b->n] = 0;
}

void sb_reset(sbuf *b)
{
    b->n = 0;
    b->failed = 0;
    if (b->p) b->p[0] = 0;
}

void sb_free(sbuf *b)
{
    gpt__free(b->p);
    b->p = NULL;
    b->n = b->cap = 0;
    b->failed = 0;
}

void jw_str(sbuf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, run;
    sb_put(b, "\"", 1);
    while (i < n) {
        unsigned char c = u[i];
        char e[8];
        /* the longest run that needs no escaping goes in one copy */
        for (run = i; run < n && u[run] >= 0x20 && u[run] < 0x80 && u[run] != '"' && u[run] != '\\'; run++) {}
        if (run > i) {
            sb_put(b, s + i, run - i);
            i = run;
            continue;
        }
        if (c >= 0x80) {
            uint32_t cp;
            size_t len = gpt__utf8_decode(u + i, n - i, &cp);
            if (len > 0) {
                sb_put(b, s + i, len);
                i += len;
            } else {
                sb_put(b, "\xEF\xBF\xBD", 3); /* U+FFFD for a byte that starts no character */
                i++;
            }
            continue;
        }
        e[0] = '\\';
        switch (c) {
        case '"': e[1] = '"'; sb_put(b, e, 2); break;
        case '\\': e[1] = '\\'; sb_put(b, e, 2); break;
        case '\n': e[1] = 'n'; sb_put(b, e, 2); break;
        case '\r': e[1] = 'r'; sb_put(b, e, 2); break;
        case '\t': e[1] = 't'; sb_put(b, e, 2); break;
        case '\b': e[1] = 'b'; sb_put(b, e, 2); break;
        case '\f': e[1] = 'f'; sb_put(b, e, 2); break;
        default:
            e[1] = 'u';
            e[2] = '0';
            e[3] = '0';
            e[4] = hex[c >> 4];
            e[5] = hex[c & 15];
            sb_put(b, e, 6);
        }
        i++;
    }
    sb_put(b, "\"", 1);
}

void jw_cstr(sbuf *b, const char *s) { jw_str(b, s, strlen(s)); }

void jw_num(sbuf *b, double v)
{
    if (v != v) sb_puts(b, "null");
    else if (v == HUGE_VAL) sb_puts(b, "9999");
    else if (v == -HUGE_VAL) sb_puts(b, "-9999");
    else sb_printf(b, "%.9g", v);
}

void jw_token(sbuf *b, const char *bytes, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t i;
    if (cli_utf8_valid(bytes, n)) {
        jw_str(b, bytes, n);
        return;
    }
    sb_puts(b, "\"bytes:");
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)bytes[i];
        char e[5] = {'\\', '\\', 'x', 0, 0}; /* a backslash, escaped in JSON, then xNN */
        e[3] = hex[c >> 4];
        sb_put(b, e, 4);
        sb_put(b, &hex[c & 15], 1);
    }
    sb_puts(b, "\"");
}

size_t utf8_chars(const char *s, size_t n)
{
    size_t i, k = 0;
    for (i = 0; i < n; i++) k += ((unsigned char)s[i] & 0xC0) != 0x80;
    return k;
}
