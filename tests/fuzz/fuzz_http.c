/*
 * fuzz_http.c - libFuzzer harness for the HTTP/1.1 request parser of
 * `gpt serve` (cli/serve_http.c).
 *
 *   make fuzz FUZZ_ONLY=fuzz_http      (or tests/test_fuzz.sh, which make test runs)
 *
 * The first input byte picks the limits (so that 413 and 431 are reached);
 * the rest is parsed from a buffer of exactly its size, as bytes arriving
 * on a connection. Checked, with abort() on any mismatch:
 *   - the result is 0 (more bytes needed), 1 (a whole request) or an HTTP
 *     error status with a reason;
 *   - a whole request lies inside the buffer: method, target, fields, body,
 *     the head within max_head, the body within max_body; a chunked body
 *     decodes into exactly body_len bytes;
 *   - bytes arrive in pieces: every prefix of a request that parses, and
 *     of one that still needs bytes, needs more bytes (never an error), and
 *     the request parses the same when followed by another (pipelining).
 * A crash it finds goes to tests/fuzz/regressions/http/ once fixed.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve.h"

static void inside(const char *buf, size_t size, const char *p, size_t n)
{
    if (n == 0) return;
    if (!p || p < buf || p + n > buf + size) abort();
}

static void check_whole(const char *buf, size_t size, const http_limits *lim, const http_request *r)
{
    int i;
    if (r->consumed == 0 || r->consumed > size || r->head_len == 0 || r->head_len > r->consumed) abort();
    if (r->head_len > lim->max_head || r->body_len > lim->max_body) abort();
    if (r->n_fields < 0 || r->n_fields > HTTP_MAX_FIELDS) abort();
    if (r->method_len == 0 || r->target_len == 0 || (r->minor != 0 && r->minor != 1)) abort();
    inside(buf, r->head_len, r->method, r->method_len);
    inside(buf, r->head_len, r->target, r->target_len);
    for (i = 0; i < r->n_fields; i++) {
        if (r->fields[i].name_len == 0) abort();
        inside(buf, r->head_len, r->fields[i].name, r->fields[i].name_len);
        inside(buf, r->head_len, r->fields[i].value, r->fields[i].value_len);
    }
    if (r->chunked) {
        char *out = (char *)malloc(r->body_len ? r->body_len : 1);
        if (!out) abort();
        if (r->body) abort();
        http_dechunk(buf, r, out); /* ASan: never more than body_len bytes */
        free(out);
    } else {
        if (r->consumed != r->head_len + r->body_len) abort();
        if (r->body_len && r->body != buf + r->head_len) abort();
    }
}

/* Parses the first n bytes from a buffer of exactly n bytes. */
static int parse_prefix(const char *data, size_t n, const http_limits *lim, http_request *r)
{
    char *b = (char *)malloc(n ? n : 1);
    int rc;
    if (!b) abort();
    memcpy(b, data, n);
    rc = http_parse(b, n, lim, r);
    free(b);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    http_limits lim;
    http_request r, p;
    char *buf;
    int rc, k;
    if (size == 0) return 0;
    lim.max_head = 64 + (size_t)(data[0] & 15) * 64;
    lim.max_body = (size_t)(data[0] >> 4) * 97;
    data++;
    size--;
    buf = (char *)malloc(size ? size : 1);
    if (!buf) abort();
    memcpy(buf, data, size);
    rc = http_parse(buf, size, &lim, &r);
    if (rc != 0 && rc != 1 && !(rc >= 400 && rc <= 505)) abort();
    if (rc >= 400 && (!r.why || !r.why[0])) abort();
    if (rc == 1) {
        check_whole(buf, size, &lim, &r);
        /* alone, and followed by anything: the same request */
        if (parse_prefix(buf, r.consumed, &lim, &p) != 1 || p.consumed != r.consumed || p.body_len != r.body_len)
            abort();
    }
    if (rc == 0 || rc == 1) {
        size_t end = rc == 1 ? r.consumed : size;
        size_t step = end > 300 ? end / 150 : 1;
        for (k = 0; (size_t)k < end; k += (int)step) {
            int pr = parse_prefix(buf, (size_t)k, &lim, &p);
            if (pr != 0) {
                fprintf(stderr, "prefix of %d bytes gives %d (%s); the %lu bytes give %d\n", k, pr,
                        p.why ? p.why : "", (unsigned long)end, rc);
                abort();
            }
        }
    }
    free(buf);
    return 0;
}
