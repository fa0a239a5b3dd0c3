/* json.c - the strict JSON reader of json.h. */
#include "json.h"

#define GPT_INTERNAL /* gpt__utf8_decode */
#include "gpt.h"

#include <errno.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct doc {
    json root; /* first member: json_free casts back */
    char *pool; /* decoded strings */
} doc;

typedef struct parser {
    const unsigned char *s;
    size_t n, pos;
    char *pool;
    size_t pool_used, pool_cap;
    json_error *err;
    int failed;
} parser;

static int fail(parser *p, size_t at, const char *fmt, ...)
{
    va_list ap;
    if (p->failed) return 0;
    p->failed = 1;
    if (p->err) {
        p->err->offset = at;
        va_start(ap, fmt);
        vsnprintf(p->err->message, sizeof p->err->message, fmt, ap);
        va_end(ap);
    }
    return 0;
}

/* A byte for a message: 'c' when printable, otherwise its hex value. */
static const char *show_byte(unsigned char c, char *buf)
{
    if (c >= 0x20 && c < 0x7f) sprintf(buf, "'%c'", (char)c);
    else sprintf(buf, "byte 0x%02X", (unsigned)c);
    return buf;
}

static int unexpected(parser *p, const char *wanted)
{
    char b[16];
    if (p->pos >= p->n) return fail(p, p->pos, "unexpected end of input, expected %s", wanted);
    return fail(p, p->pos, "unexpected %s, expected %s", show_byte(p->s[p->pos], b), wanted);
}

static int out_of_memory(parser *p, size_t at)
{
    if (!p->failed && p->err) p->err->out_of_memory = 1;
    return fail(p, at, "out of memory");
}

static void skip_ws(parser *p)
{
    while (p->pos < p->n) {
        unsigned char c = p->s[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        p->pos++;
    }
}

static void node_free(json *v)
{
    size_t i;
    if (v->type == JSON_ARRAY || v->type == JSON_OBJECT) {
        for (i = 0; i < v->len; i++) node_free(&v->items[i]);
        gpt__free(v->items);
        gpt__free(v->keys); /* keys are strings: their bytes live in the pool */
        gpt__free((void *)v->by_key);
    }
    v->items = NULL;
    v->keys = NULL;
    v->by_key = NULL;
    v->len = 0;
}

static int parse_value(parser *p, json *out, int depth);

/* ------------------------------------------------------------------------ */
/* Literals and numbers                                                     */

static int parse_literal(parser *p, json *out, const char *word, json_type t, int b)
{
    size_t k = strlen(word), i;
    for (i = 0; i < k; i++)
        if (p->pos + i >= p->n || p->s[p->pos + i] != (unsigned char)word[i])
            return fail(p, p->pos, "invalid literal (expected \"%s\")", word);
    p->pos += k;
    out->type = t;
    out->boolean = b;
    return 1;
}

static int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

static int parse_number(parser *p, json *out)
{
    size_t start = p->pos, i;
    int neg = 0, is_int = 1;
    uint64_t mag = 0, limit;
    if (p->pos < p->n && p->s[p->pos] == '-') {
        neg = 1;
        p->pos++;
    }
    if (p->pos >= p->n || !is_digit(p->s[p->pos])) return fail(p, start, "invalid number: a digit must follow '-'");
    if (p->s[p->pos] == '0') p->pos++;
    else
        while (p->pos < p->n && is_digit(p->s[p->pos])) p->pos++;
    if (p->pos < p->n && p->s[p->pos] == '.') {
        is_int = 0;
        p->pos++;
        if (p->pos >= p->n || !is_digit(p->s[p->pos])) return fail(p, p->pos, "invalid number: a digit must follow '.'");
        while (p->pos < p->n && is_digit(p->s[p->pos])) p->pos++;
    }
    if (p->pos < p->n && (p->s[p->pos] == 'e' || p->s[p->pos] == 'E')) {
        is_int = 0;
        p->pos++;
        if (p->pos < p->n && (p->s[p->pos] == '+' || p->s[p->pos] == '-')) p->pos++;
        if (p->pos >= p->n || !is_digit(p->s[p->pos]))
            return fail(p, p->pos, "invalid number: a digit must follow the exponent");
        while (p->pos < p->n && is_digit(p->s[p->pos])) p->pos++;
    }
    out->type = JSON_NUMBER;
    if (is_int) {
        limit = neg ? (uint64_t)INT64_MAX + 1u : (uint64_t)INT64_MAX;
        for (i = start + (size_t)neg; i < p->pos; i++) {
            unsigned d = (unsigned)(p->s[i] - '0');
            if (mag > (limit - d) / 10) return fail(p, start, "integer out of range (it must fit in 64 bits)");
            mag = mag * 10 + d;
        }
        out->is_int = 1;
        if (neg) out->integer = mag == (uint64_t)INT64_MAX + 1u ? INT64_MIN : -(int64_t)mag;
        else out->integer = (int64_t)mag;
        out->number = (double)out->integer;
        return 1;
    } else {
        /* strtod on a copy, with the locale's decimal point */
        size_t len = p->pos - start;
        char *buf = (char *)gpt__alloc(len + 8), *end;
        const char *dp = localeconv()->decimal_point;
        size_t w = 0;
        double x;
        if (!buf) return out_of_memory(p, start);
        for (i = start; i < p->pos; i++) {
            if (p->s[i] == '.' && dp && dp[0] && strlen(dp) < 8) {
                memcpy(buf + w, dp, strlen(dp));
                w += strlen(dp);
                /* the buffer has 8 spare bytes; a number has at most one '.' */
            } else {
                buf[w++] = (char)p->s[i];
            }
        }
        buf[w] = 0;
        errno = 0;
        x = strtod(buf, &end);
        if (*end != 0) {
            gpt__free(buf);
            return fail(p, start, "invalid number");
        }
        gpt__free(buf);
        if (errno == ERANGE && (x == HUGE_VAL || x == -HUGE_VAL)) return fail(p, start, "number out of range for a double");
        if (!(x - x == 0)) return fail(p, start, "number out of range for a double");
        out->number = x;
        return 1;
    }
}

/* ------------------------------------------------------------------------ */
/* Strings                                                                  */

static int hex4(parser *p, size_t at, unsigned *out)
{
    unsigned v = 0;
    size_t i;
    if (at + 4 > p->n) return fail(p, at, "unterminated \\u escape");
    for (i = 0; i < 4; i++) {
        unsigned char c = p->s[at + i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else return fail(p, at, "invalid \\u escape: four hex digits must follow \\u");
    }
    *out = v;
    return 1;
}

static size_t put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* p->pos is at the opening quote. The decoded bytes go to the pool. No
 * input byte decodes to more than one output byte (an escape of 2, 6 or 12
 * bytes gives 1, at most 3 or 4 bytes), so a string of r bytes in the text
 * (quotes included) needs at most r - 2 bytes plus a NUL: the strings before
 * it used less of the pool than of the text, and a pool of len + 1 bytes can
 * never overflow. */
static int parse_string(parser *p, json *out)
{
    size_t start = p->pos;
    char *o;
    size_t w = 0;
    p->pos++;
    o = p->pool + p->pool_used;
    for (;;) {
        unsigned char c;
        if (p->pos >= p->n) return fail(p, start, "unterminated string");
        c = p->s[p->pos];
        if (c == '"') {
            p->pos++;
            break;
        }
        if (c < 0x20) {
            char b[16];
            return fail(p, p->pos, "control character (%s) in a string; it must be escaped", show_byte(c, b));
        }
        if (c == '\\') {
            unsigned char e;
            if (p->pos + 1 >= p->n) return fail(p, start, "unterminated string");
            e = p->s[p->pos + 1];
            switch (e) {
            case '"': o[w++] = '"'; break;
            case '\\': o[w++] = '\\'; break;
            case '/': o[w++] = '/'; break;
            case 'b': o[w++] = '\b'; break;
            case 'f': o[w++] = '\f'; break;
            case 'n': o[w++] = '\n'; break;
            case 'r': o[w++] = '\r'; break;
            case 't': o[w++] = '\t'; break;
            case 'u': {
                unsigned cp, lo;
                size_t at = p->pos;
                if (!hex4(p, p->pos + 2, &cp)) return 0;
                p->pos += 6;
                if (cp >= 0xDC00 && cp <= 0xDFFF)
                    return fail(p, at, "invalid \\u escape: a low surrogate (\\u%04X) without a high one", cp);
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    if (p->pos + 1 >= p->n || p->s[p->pos] != '\\' || p->s[p->pos + 1] != 'u')
                        return fail(p, at, "invalid \\u escape: a high surrogate (\\u%04X) not followed by a low one",
                                    cp);
                    if (!hex4(p, p->pos + 2, &lo)) return 0;
                    if (lo < 0xDC00 || lo > 0xDFFF)
                        return fail(p, at, "invalid \\u escape: a high surrogate (\\u%04X) not followed by a low one",
                                    cp);
                    p->pos += 6;
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                }
                w += put_utf8(o + w, cp);
                continue;
            }
            default: {
                char b[16];
                return fail(p, p->pos, "invalid escape: %s after a backslash", show_byte(e, b));
            }
            }
            p->pos += 2;
            continue;
        }
        if (c < 0x80) {
            o[w++] = (char)c;
            p->pos++;
        } else {
            uint32_t cp_unused;
            size_t k = gpt__utf8_decode(p->s + p->pos, p->n - p->pos, &cp_unused);
            if (!k) return fail(p, p->pos, "invalid UTF-8 in a string");
            memcpy(o + w, p->s + p->pos, k);
            w += k;
            p->pos += k;
        }
    }
    o[w] = 0;
    p->pool_used += w + 1;
    out->type = JSON_STRING;
    out->str = o;
    out->len = w;
    return 1;
}

/* ------------------------------------------------------------------------ */
/* Arrays and objects                                                       */

static int grow(parser *p, void **arr, size_t *cap, size_t need, size_t elem)
{
    size_t nc;
    void *g;
    if (need <= *cap) return 1;
    nc = *cap ? *cap : 4;
    while (nc < need) {
        if (nc > ((size_t)-1) / 2 / elem) return out_of_memory(p, p->pos);
        nc *= 2;
    }
    g = gpt__realloc(*arr, nc * elem);
    if (!g) return out_of_memory(p, p->pos);
    *arr = g;
    *cap = nc;
    return 1;
}

static int parse_array(parser *p, json *out, int depth)
{
    size_t cap = 0;
    out->type = JSON_ARRAY;
    p->pos++;
    skip_ws(p);
    if (p->pos < p->n && p->s[p->pos] == ']') {
        p->pos++;
        return 1;
    }
    for (;;) {
        if (!grow(p, (void **)&out->items, &cap, out->len + 1, sizeof(json))) return 0;
        memset(&out->items[out->len], 0, sizeof(json));
        out->len++; /* counted before parsing, so a failure frees what was built */
        if (!parse_value(p, &out->items[out->len - 1], depth + 1)) return 0;
        skip_ws(p);
        if (p->pos < p->n && p->s[p->pos] == ',') {
            p->pos++;
            continue;
        }
        if (p->pos < p->n && p->s[p->pos] == ']') {
            p->pos++;
            return 1;
        }
        return unexpected(p, "',' or ']' in an array");
    }
}

static int key_cmp(const json *a, const json *b)
{
    size_t n = a->len < b->len ? a->len : b->len;
    int c = memcmp(a->str, b->str, n);
    if (c) return c;
    return a->len < b->len ? -1 : a->len > b->len ? 1 : 0;
}

static int by_key_cmp(const void *x, const void *y)
{
    return key_cmp(*(const json *const *)x, *(const json *const *)y);
}

static int parse_object(parser *p, json *out, int depth)
{
    size_t cap = 0, kcap = 0, i;
    out->type = JSON_OBJECT;
    p->pos++;
    skip_ws(p);
    if (p->pos < p->n && p->s[p->pos] == '}') {
        p->pos++;
        return 1;
    }
    for (;;) {
        json key;
        memset(&key, 0, sizeof key);
        skip_ws(p);
        if (p->pos >= p->n || p->s[p->pos] != '"') return unexpected(p, "a string key in an object");
        key.offset = p->pos;
        if (!parse_string(p, &key)) return 0;
        skip_ws(p);
        if (p->pos >= p->n || p->s[p->pos] != ':') return unexpected(p, "':' after an object key");
        p->pos++;
        if (!grow(p, (void **)&out->keys, &kcap, out->len + 1, sizeof(json))) return 0;
        if (!grow(p, (void **)&out->items, &cap, out->len + 1, sizeof(json))) return 0;
        out->keys[out->len] = key;
        memset(&out->items[out->len], 0, sizeof(json));
        out->len++;
        if (!parse_value(p, &out->items[out->len - 1], depth + 1)) return 0;
        skip_ws(p);
        if (p->pos < p->n && p->s[p->pos] == ',') {
            p->pos++;
            continue;
        }
        if (p->pos < p->n && p->s[p->pos] == '}') {
            p->pos++;
            break;
        }
        return unexpected(p, "',' or '}' in an object");
    }
    out->by_key = (const json **)gpt__alloc(out->len * sizeof(json *));
    if (!out->by_key) return out_of_memory(p, out->offset);
    for (i = 0; i < out->len; i++) out->by_key[i] = &out->keys[i];
    qsort((void *)out->by_key, out->len, sizeof(json *), by_key_cmp);
    for (i = 1; i < out->len; i++)
        if (key_cmp(out->by_key[i - 1], out->by_key[i]) == 0) {
            const json *a = out->by_key[i - 1], *b = out->by_key[i];
            const json *later = a->offset > b->offset ? a : b;
            char shown[48];
            size_t k, m = 0;
            for (k = 0; k < later->len && m + 4 < sizeof shown; k++) {
                unsigned char c = (unsigned char)later->str[k];
                shown[m++] = (char)(c >= 0x20 && c < 0x7f ? c : '?');
            }
            shown[m] = 0;
            return fail(p, later->offset, "duplicate key \"%s%s\" in an object", shown, k < later->len ? "..." : "");
        }
    return 1;
}

static int parse_value(parser *p, json *out, int depth)
{
    unsigned char c;
    skip_ws(p);
    out->offset = p->pos;
    if (p->pos >= p->n) return unexpected(p, "a value");
    c = p->s[p->pos];
    switch (c) {
    case '{':
    case '[':
        if (depth >= JSON_MAX_DEPTH) return fail(p, p->pos, "nesting deeper than %d arrays/objects", JSON_MAX_DEPTH);
        return c == '{' ? parse_object(p, out, depth) : parse_array(p, out, depth);
    case '"': return parse_string(p, out);
    case 't': return parse_literal(p, out, "true", JSON_BOOL, 1);
    case 'f': return parse_literal(p, out, "false", JSON_BOOL, 0);
    case 'n': return parse_literal(p, out, "null", JSON_NULL, 0);
    default:
        if (c == '-' || is_digit(c)) return parse_number(p, out);
        return unexpected(p, "a value");
    }
}

json *json_parse(const char *text, size_t len, json_error *err)
{
    parser p;
    doc *d;
    memset(&p, 0, sizeof p);
    p.err = err;
    if (err) {
        err->offset = 0;
        err->message[0] = 0;
        err->out_of_memory = 0;
    }
    if (!text && len) {
        fail(&p, 0, "no input");
        return NULL;
    }
    if (len >= (size_t)-1) {
        fail(&p, 0, "input too large");
        return NULL;
    }
    d = (doc *)gpt__calloc(1, sizeof *d);
    if (d) d->pool = (char *)gpt__alloc(len + 1);
    if (!d || !d->pool) {
        if (d) gpt__free(d);
        out_of_memory(&p, 0);
        return NULL;
    }
    p.s = (const unsigned char *)text;
    p.n = len;
    p.pool = d->pool;
    p.pool_cap = len + 1;
    skip_ws(&p);
    if (p.pos >= p.n) {
        fail(&p, p.pos, "no JSON value (the input is empty)");
    } else if (parse_value(&p, &d->root, 0)) {
        skip_ws(&p);
        if (p.pos < p.n) {
            char b[16];
            fail(&p, p.pos, "unexpected %s after the JSON value", show_byte(p.s[p.pos], b));
        }
    }
    if (p.failed) {
        json_free(&d->root);
        return NULL;
    }
    return &d->root;
}

void json_free(json *root)
{
    doc *d = (doc *)root;
    if (!root) return;
    node_free(&d->root);
    gpt__free(d->pool);
    gpt__free(d);
}

const json *json_get(const json *v, const char *key)
{
    json probe;
    size_t lo = 0, hi;
    if (!v || v->type != JSON_OBJECT || !key) return NULL;
    memset(&probe, 0, sizeof probe);
    probe.str = (char *)key;
    probe.len = strlen(key);
    hi = v->len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = key_cmp(v->by_key[mid], &probe);
        if (c == 0) return &v->items[v->by_key[mid] - v->keys];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

int json_int(const json *v, int64_t *out)
{
    if (!v || v->type != JSON_NUMBER || !v->is_int) return 0;
    *out = v->integer;
    return 1;
}

const char *json_type_name(json_type t)
{
    switch (t) {
    case JSON_NULL: return "null";
    case JSON_BOOL: return "a boolean";
    case JSON_NUMBER: return "a number";
    case JSON_STRING: return "a string";
    case JSON_ARRAY: return "an array";
    case JSON_OBJECT: return "an object";
    }
    return "?";
}
