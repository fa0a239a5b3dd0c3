/*
 * serve_http.c - the HTTP/1.1 request parser of `gpt serve` (RFC 9112), a
 * pure function over a byte buffer, and the response head writer.
 *
 * It is strict where leniency lets two parsers read one request two ways
 * (a proxy in front of the server, request smuggling): a header field with
 * whitespace before its colon, a folded line, Content-Length given twice
 * with different values or together with Transfer-Encoding, a transfer
 * coding other than chunked, control characters, a CR not followed by LF -
 * each is refused. A line may end with CRLF or a bare LF. Bytes that can
 * never become a valid request are refused as soon as they arrive, so
 * garbage is answered at once instead of after the timeout.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "serve.h"

/* RFC 9110 tchar: the characters of a method or a field name. */
static int is_tchar(unsigned char c)
{
    if (c >= '0' && c <= '9') return 1;
    if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return 1;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* A byte of a field value: visible, space, tab, or obs-text. */
static int is_vchar(unsigned char c) { return c == '\t' || (c >= 0x20 && c != 0x7f); }

static int bad(http_request *req, const char *why)
{
    req->why = why;
    return 400;
}

static int eq_nocase(const char *a, size_t n, const char *b)
{
    size_t i;
    if (strlen(b) != n) return 0;
    for (i = 0; i < n; i++)
        if (tolower((unsigned char)a[i]) != tolower((unsigned char)b[i])) return 0;
    return 1;
}

/* The line starting at p[0 .. avail): its length without the line end in
 * *n, and 1 when it is complete (its end is in *end), 0 when more bytes
 * are needed, -1 for a CR that is not followed by LF. */
static int take_line(const char *p, size_t avail, size_t *n, size_t *end)
{
    const char *nl = (const char *)memchr(p, '\n', avail);
    const char *cr;
    size_t len = nl ? (size_t)(nl - p) : avail;
    *n = len;
    if (len > 0 && p[len - 1] == '\r') len--; /* the CR of CRLF, or a last byte that may be one */
    cr = (const char *)memchr(p, '\r', len);
    if (cr) return -1;
    *n = len;
    if (!nl) return 0;
    *end = (size_t)(nl - p) + 1;
    return 1;
}

/* Checks a request line, whole or (complete == 0) its beginning. */
static int request_line(const char *p, size_t n, int complete, http_request *req)
{
    static const char version[] = "HTTP/d.d";
    size_t i = 0, t, v;
    while (i < n && is_tchar((unsigned char)p[i])) i++;
    if (i == n) return complete ? bad(req, "the request line has no target") : 0;
    if (p[i] != ' ' || i == 0) return bad(req, "malformed method in the request line");
    req->method = p;
    req->method_len = i;
    t = ++i;
    while (i < n && (unsigned char)p[i] > 0x20 && (unsigned char)p[i] < 0x7f) i++;
    if (i == n) return complete ? bad(req, "the request line has no HTTP version") : 0;
    if (p[i] != ' ' || i == t) return bad(req, "malformed target in the request line");
    req->target = p + t;
    req->target_len = i - t;
    v = ++i;
    for (; i < n; i++) {
        size_t k = i - v;
        if (k >= 8) return bad(req, "malformed HTTP version");
        if (version[k] == 'd' ? !isdigit((unsigned char)p[i]) : p[i] != version[k])
            return bad(req, "malformed HTTP version");
    }
    if (!complete) return 0;
    if (n - v != 8) return bad(req, "malformed HTTP version");
    if (p[v + 5] != '1') {
        req->why = "only HTTP/1.0 and HTTP/1.1 are supported";
        return 505;
    }
    req->minor = p[v + 7] == '0' ? 0 : 1;
    return 0;
}

/* Checks a header field line, whole or its beginning; a whole one is added. */
static int field_line(const char *p, size_t n, int complete, http_request *req)
{
    size_t i = 0, vs, ve;
    if (n > 0 && (p[0] == ' ' || p[0] == '\t')) return bad(req, "folded header line (obs-fold)");
    while (i < n && is_tchar((unsigned char)p[i])) i++;
    if (i < n && (p[i] != ':' || i == 0)) return bad(req, "malformed header field name");
    for (vs = i + 1; vs < n; vs++)
        if (!is_vchar((unsigned char)p[vs])) return bad(req, "control character in a header field");
    if (!complete) return 0;
    if (i == n) return bad(req, "header line without a colon");
    if (req->n_fields == HTTP_MAX_FIELDS) {
        req->why = "too many header fields";
        return 431;
    }
    for (vs = i + 1; vs < n && (p[vs] == ' ' || p[vs] == '\t'); vs++) {}
    for (ve = n; ve > vs && (p[ve - 1] == ' ' || p[ve - 1] == '\t'); ve--) {}
    req->fields[req->n_fields].name = p;
    req->fields[req->n_fields].name_len = i;
    req->fields[req->n_fields].value = p + vs;
    req->fields[req->n_fields].value_len = ve - vs;
    req->n_fields++;
    return 0;
}

/* Does the comma-separated list hold token (any case)? */
static int list_has(const char *v, size_t n, const char *token)
{
    size_t i = 0;
    while (i < n) {
        size_t s, e;
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ',')) i++;
        s = i;
        while (i < n && v[i] != ',') i++;
        for (e = i; e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'); e--) {}
        if (e > s && eq_nocase(v + s, e - s, token)) return 1;
    }
    return 0;
}

/* What the fields say about the body and the connection. */
static int head_semantics(const http_limits *lim, http_request *req, int *has_length, unsigned long long *length)
{
    int i, has_te = 0;
    req->keep_alive = req->minor >= 1;
    *has_length = 0;
    *length = 0;
    for (i = 0; i < req->n_fields; i++) {
        const http_field *f = &req->fields[i];
        if (eq_nocase(f->name, f->name_len, "content-length")) {
            unsigned long long v = 0;
            size_t k;
            if (f->value_len == 0) return bad(req, "empty Content-Length");
            for (k = 0; k < f->value_len; k++) {
                if (!isdigit((unsigned char)f->value[k])) return bad(req, "Content-Length is not a number");
                if (v > 1000000000000ULL) {
                    req->why = "the body is too large";
                    return 413;
                }
                v = v * 10 + (unsigned)(f->value[k] - '0');
            }
            if (*has_length && v != *length) return bad(req, "two different Content-Length fields");
            *has_length = 1;
            *length = v;
        } else if (eq_nocase(f->name, f->name_len, "transfer-encoding")) {
            if (has_te || !eq_nocase(f->value, f->value_len, "chunked")) {
                req->why = "the only transfer coding supported is chunked";
                return 501;
            }
            has_te = 1;
        } else if (eq_nocase(f->name, f->name_len, "connection")) {
            if (list_has(f->value, f->value_len, "close")) req->keep_alive = 0;
            else if (list_has(f->value, f->value_len, "keep-alive")) req->keep_alive = 1;
        } else if (eq_nocase(f->name, f->name_len, "expect")) {
            if (!eq_nocase(f->value, f->value_len, "100-continue")) {
                req->why = "the only expectation supported is 100-continue";
                return 417;
            }
            req->expect_continue = 1;
        }
    }
    if (has_te && *has_length) return bad(req, "both Content-Length and Transfer-Encoding");
    if (has_te && req->minor == 0) return bad(req, "Transfer-Encoding in an HTTP/1.0 request");
    if (*has_length && *length > lim->max_body) {
        req->why = "the body is too large";
        return 413;
    }
    req->chunked = has_te;
    return 0;
}

/* The chunked body at p[0 .. avail): 0 when incomplete, 1 when whole (its
 * bytes, trailer included, in *used), or an error status. */
static int chunked_body(const char *p, size_t avail, const http_limits *lim, http_request *req, size_t *used)
{
    size_t pos = 0, total = 0, trailer = 0;
    for (;;) {
        size_t n, end, i, size = 0;
        int r = take_line(p + pos, avail - pos, &n, &end);
        if (r < 0) return bad(req, "CR without LF in the chunked body");
        for (i = 0; i < n && isxdigit((unsigned char)p[pos + i]); i++) {
            if (i >= 15) {
                req->why = "the body is too large";
                return 413;
            }
            size = size * 16 + (size_t)(isdigit((unsigned char)p[pos + i]) ? p[pos + i] - '0'
                                                                             : (tolower((unsigned char)p[pos + i]) - 'a' + 10));
        }
        if (i < n && (i == 0 || (p[pos + i] != ';' && p[pos + i] != ' ' && p[pos + i] != '\t')))
            return bad(req, "malformed chunk size");
        for (; i < n; i++)
            if (!is_vchar((unsigned char)p[pos + i])) return bad(req, "control character in a chunk extension");
        if (n > 1024) return bad(req, "chunk size line too long");
        if (r == 0) return 0;
        if (n == 0) return bad(req, "empty chunk size line");
        pos += end;
        if (size > lim->max_body - total) {
            req->why = "the body is too large";
            return 413;
        }
        total += size;
        if (size == 0) break;
        if (avail - pos < size) return 0;
        pos += size;
        if (avail - pos == 0) return 0;
        if (p[pos] == '\n') pos += 1;
        else if (p[pos] != '\r') return bad(req, "chunk data longer than its size");
        else if (avail - pos < 2) return 0;
        else if (p[pos + 1] != '\n') return bad(req, "chunk data longer than its size");
        else pos += 2;
    }
    /* trailer fields, ignored, then the empty line */
    for (;;) {
        size_t n, end;
        int r = take_line(p + pos, avail - pos, &n, &end);
        http_request scratch;
        if (r < 0) return bad(req, "CR without LF in the trailer");
        trailer += r ? end : n;
        if (trailer > lim->max_head) {
            req->why = "the trailer is too large";
            return 431;
        }
        if (r && n == 0) {
            pos += end;
            break;
        }
        memset(&scratch, 0, sizeof scratch);
        if (field_line(p + pos, n, r, &scratch) != 0) return bad(req, "malformed trailer field");
        if (r == 0) return 0;
        pos += end;
    }
    req->body_len = total;
    *used = pos;
    return 1;
}

int http_parse(const char *buf, size_t len, const http_limits *lim, http_request *req)
{
    size_t pos = 0, n, end;
    int r, st, has_length, first = 1;
    unsigned long long length;
    memset(req, 0, sizeof *req);
    while (pos < len && pos < 8 && (buf[pos] == '\r' || buf[pos] == '\n')) pos++; /* empty lines before it */
    for (;;) {
        r = take_line(buf + pos, len - pos, &n, &end);
        if (r < 0) return bad(req, "CR without LF in the head");
        if (r == 0 && len > lim->max_head) {
            req->why = "the request head is too large";
            return 431;
        }
        if (r && pos + end > lim->max_head) {
            req->why = "the request head is too large";
            return 431;
        }
        if (first) st = request_line(buf + pos, n, r, req);
        else if (r && n == 0) {
            pos += end;
            break;
        } else st = field_line(buf + pos, n, r, req);
        if (st) return st;
        if (r == 0) return 0;
        pos += end;
        first = 0;
    }
    req->head_len = pos;
    if ((st = head_semantics(lim, req, &has_length, &length)) != 0) {
        req->head_len = 0;
        return st;
    }
    if (req->chunked) {
        size_t used;
        if ((st = chunked_body(buf + pos, len - pos, lim, req, &used)) != 1) return st;
        req->consumed = pos + used;
        return 1;
    }
    if (len - pos < length) return 0;
    req->body = buf + pos;
    req->body_len = (size_t)length;
    req->consumed = pos + (size_t)length;
    return 1;
}

void http_dechunk(const char *buf, const http_request *req, char *out)
{
    const char *p = buf + req->head_len;
    size_t o = 0;
    for (;;) {
        size_t size = 0;
        while (isxdigit((unsigned char)*p)) {
            size = size * 16 + (size_t)(isdigit((unsigned char)*p) ? *p - '0' : (tolower((unsigned char)*p) - 'a' + 10));
            p++;
        }
        while (*p != '\n') p++;
        p++;
        if (size == 0) return;
        memcpy(out + o, p, size);
        o += size;
        p += size;
        p += *p == '\r' ? 2 : 1;
    }
}

const http_field *http_field_get(const http_request *req, const char *name)
{
    int i;
    for (i = 0; i < req->n_fields; i++)
        if (eq_nocase(req->fields[i].name, req->fields[i].name_len, name)) return &req->fields[i];
    return NULL;
}

const char *http_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}

void http_head(sbuf *b, int status, const char *content_type, long long content_length, int chunked,
               int keep_alive, const char *extra)
{
    sb_printf(b, "HTTP/1.1 %d %s\r\n", status, http_reason(status));
    if (content_type) sb_printf(b, "Content-Type: %s\r\n", content_type);
    if (content_length >= 0) sb_printf(b, "Content-Length: %lld\r\n", content_length);
    else if (chunked) sb_puts(b, "Transfer-Encoding: chunked\r\n");
    sb_puts(b, keep_alive ? "Connection: keep-alive\r\n" : "Connection: close\r\n");
    if (extra) sb_puts(b, extra);
    sb_puts(b, "\r\n");
}
