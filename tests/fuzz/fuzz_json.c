/*
 * fuzz_json.c - libFuzzer harness for the JSON reader of `gpt convert`
 * (cli/json.c).
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -I. -Icli \
 *       tests/fuzz/fuzz_json.c cli/json.c -o build/fuzz_json
 *   mkdir -p build/corpus_json
 *   build/fuzz_json build/corpus_json tests/fuzz/seeds/json -max_total_time=300
 *
 * The input is parsed from a buffer of exactly its size. When it is accepted,
 * the tree is checked (every key found by json_get at its own index, string
 * lengths, integers) and written back out as JSON, which must parse again to
 * an equal tree. Any mismatch calls abort(), which libFuzzer reports. Crashes
 * it finds go to tests/fuzz/regressions/json/ (tests/test_convert.c runs them).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

typedef struct out {
    char *p;
    size_t n, cap;
} out;

static void put(out *o, const char *s, size_t n)
{
    if (o->n + n + 1 > o->cap) {
        size_t c = (o->n + n + 1) * 2;
        char *g = (char *)realloc(o->p, c);
        if (!g) abort();
        o->p = g;
        o->cap = c;
    }
    memcpy(o->p + o->n, s, n);
    o->n += n;
}

static void put_string(out *o, const char *s, size_t n)
{
    size_t i;
    put(o, "\"", 1);
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char b[8];
        if (c == '"' || c == '\\') {
            b[0] = '\\';
            b[1] = (char)c;
            put(o, b, 2);
        } else if (c < 0x20) {
            snprintf(b, sizeof b, "\\u%04x", c);
            put(o, b, 6);
        } else {
            put(o, (const char *)&s[i], 1);
        }
    }
    put(o, "\"", 1);
}

static void write_value(out *o, const json *v)
{
    char b[64];
    size_t i;
    switch (v->type) {
    case JSON_NULL: put(o, "null", 4); break;
    case JSON_BOOL: put(o, v->boolean ? "true" : "false", v->boolean ? 4 : 5); break;
    case JSON_NUMBER:
        if (v->is_int) snprintf(b, sizeof b, "%lld", (long long)v->integer);
        else snprintf(b, sizeof b, "%.17g", v->number);
        put(o, b, strlen(b));
        break;
    case JSON_STRING: put_string(o, v->str, v->len); break;
    case JSON_ARRAY:
        put(o, "[", 1);
        for (i = 0; i < v->len; i++) {
            if (i) put(o, ",", 1);
            write_value(o, &v->items[i]);
        }
        put(o, "]", 1);
        break;
    case JSON_OBJECT:
        put(o, "{", 1);
        for (i = 0; i < v->len; i++) {
            if (i) put(o, ",", 1);
            put_string(o, v->keys[i].str, v->keys[i].len);
            put(o, ":", 1);
            write_value(o, &v->items[i]);
        }
        put(o, "}", 1);
        break;
    }
}

static void check(const json *v, size_t text_len)
{
    size_t i;
    if (v->offset >= text_len) abort();
    switch (v->type) {
    case JSON_STRING:
        if (v->str[v->len] != 0) abort();
        break;
    case JSON_NUMBER:
        if (v->is_int && v->number != (double)v->integer) abort();
        if (!(v->number - v->number == 0)) abort(); /* finite */
        break;
    case JSON_ARRAY:
        for (i = 0; i < v->len; i++) check(&v->items[i], text_len);
        break;
    case JSON_OBJECT:
        for (i = 0; i < v->len; i++) {
            if (v->keys[i].type != JSON_STRING) abort();
            /* keys without NUL bytes can be looked up */
            if (strlen(v->keys[i].str) == v->keys[i].len && json_get(v, v->keys[i].str) != &v->items[i]) abort();
            check(&v->items[i], text_len);
        }
        break;
    default: break;
    }
}

static int same(const json *a, const json *b)
{
    size_t i;
    if (a->type != b->type) return 0;
    switch (a->type) {
    case JSON_NULL: return 1;
    case JSON_BOOL: return a->boolean == b->boolean;
    case JSON_NUMBER: return a->number == b->number && (!a->is_int || !b->is_int || a->integer == b->integer);
    case JSON_STRING: return a->len == b->len && !memcmp(a->str, b->str, a->len);
    case JSON_ARRAY:
    case JSON_OBJECT:
        if (a->len != b->len) return 0;
        for (i = 0; i < a->len; i++) {
            if (a->type == JSON_OBJECT && !same(&a->keys[i], &b->keys[i])) return 0;
            if (!same(&a->items[i], &b->items[i])) return 0;
        }
        return 1;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *copy = (char *)malloc(size ? size : 1);
    json_error err;
    json *root, *again;
    out o = {NULL, 0, 0};
    if (!copy) return 0;
    memcpy(copy, data, size);
    root = json_parse(copy, size, &err);
    if (!root) {
        if (err.offset > size || err.message[0] == 0) abort();
        free(copy);
        return 0;
    }
    check(root, size);
    write_value(&o, root);
    again = json_parse(o.p, o.n, &err);
    if (!again) {
        fprintf(stderr, "re-parse failed: %s at %zu in %.*s\n", err.message, err.offset, (int)o.n, o.p);
        abort();
    }
    if (!same(root, again)) abort();
    json_free(again);
    json_free(root);
    free(o.p);
    free(copy);
    return 0;
}
