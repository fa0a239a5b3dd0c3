/* safetensors.c - reads and checks safetensors headers (safetensors.h). */
#include "safetensors.h"

#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "convert.h"
#include "json.h"

static const struct {
    const char *name;
    size_t size;
} dtypes[ST_N_DTYPES] = {
    {"BOOL", 1}, {"U8", 1},  {"I8", 1},   {"F8_E5M2", 1}, {"F8_E4M3", 1}, {"F8_E8M0", 1}, {"I16", 2}, {"U16", 2},
    {"F16", 2},  {"BF16", 2}, {"I32", 4}, {"U32", 4},     {"F32", 4},     {"F64", 8},     {"I64", 8}, {"U64", 8},
};

const char *st_dtype_name(st_dtype t) { return (int)t >= 0 && t < ST_N_DTYPES ? dtypes[t].name : "?"; }
size_t st_dtype_size(st_dtype t) { return (int)t >= 0 && t < ST_N_DTYPES ? dtypes[t].size : 0; }

const char *st_printable(const char *s, char *buf, size_t cap)
{
    size_t n = strlen(s), keep = n, i;
    if (cap < 4) {
        if (cap) buf[0] = 0;
        return buf;
    }
    if (n + 1 > cap) keep = cap - 4; /* room for "..." and the NUL */
    for (i = 0; i < keep; i++) {
        unsigned char c = (unsigned char)s[i];
        buf[i] = (char)(c >= 0x20 && c < 0x7f ? c : '?');
    }
    if (keep < n) memcpy(buf + keep, "...", 4);
    else buf[keep] = 0;
    return buf;
}

void st_header_free(st_header *h)
{
    size_t i;
    if (!h) return;
    for (i = 0; i < h->n; i++) gpt__free(h->tensors[i].name);
    gpt__free(h->tensors);
    memset(h, 0, sizeof *h);
}

static void shape_str(const st_tensor *t, char *buf, size_t cap)
{
    size_t w = 0;
    int i;
    w += (size_t)snprintf(buf, cap, "[");
    for (i = 0; i < t->ndim && w < cap; i++)
        w += (size_t)snprintf(buf + w, cap - w, "%s%llu", i ? ", " : "", (unsigned long long)t->shape[i]);
    if (w < cap) snprintf(buf + w, cap - w, "]");
}

static int range_cmp(const void *a, const void *b)
{
    const st_tensor *x = *(const st_tensor *const *)a, *y = *(const st_tensor *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

/* A non-negative integer element of a JSON array. */
static int get_u64(const json *v, uint64_t *out)
{
    int64_t i;
    if (!json_int(v, &i) || i < 0) return 0;
    *out = (uint64_t)i;
    return 1;
}

static gpt_status parse_entry(const json *key, const json *e, uint64_t data_size, const char *what, st_tensor *t,
                              gpt_error *err)
{
    char nm[96], sh[160];
    const json *dt = json_get(e, "dtype"), *shape = json_get(e, "shape"), *offs = json_get(e, "data_offsets");
    size_t i;
    uint64_t bytes;
    st_printable(key->str, nm, sizeof nm);
    if (strlen(key->str) != key->len)
        return gpt__set_error(err, GPT_ERR_FORMAT, "%s: tensor name \"%s\" holds a NUL character", what, nm);
    if (e->type != JSON_OBJECT)
        return gpt__set_error(err, GPT_ERR_FORMAT, "%s: the entry of tensor \"%s\" is %s, not an object", what, nm,
                        json_type_name(e->type));
    if (!dt || dt->type != JSON_STRING)
        return gpt__set_error(err, GPT_ERR_FORMAT, "%s: tensor \"%s\" has no \"dtype\" string", what, nm);
    for (i = 0; i < ST_N_DTYPES; i++)
        if (strcmp(dt->str, dtypes[i].name) == 0 && strlen(dt->str) == dt->len) break;
    if (i == ST_N_DTYPES) {
        char d[40];
        return gpt__set_error(err, GPT_ERR_FORMAT, "%s: tensor \"%s\" has an unknown dtype \"%s\"", what, nm,
                        st_printable(dt->str, d, sizeof d));
    }
    t->dtype = (st_dtype)i;
    if (!shape || shape->type != JSON_ARRAY)
        return gpt__set_error(err, GPT_ERR_FORMAT, "%s: tensor \"%s\" has no \"shape\" array", what, nm);
    if (shape->len > ST_MAX_DIMS)
        return gpt__set_error(err, GPT_ERR_FORMAT, "%s: tensor \"%s\" has %llu dimensions (at most %d are read)", what, nm,
                        (unsigned long long)shape->len, ST_MAX_DIMS);
    t->ndim = (int)shape->len;
    t->numel = 1;
    for (i = 0; i < shape->len; i++) {
        if (!get_u64(&shape->items[i], &t->shape[i]))
            return gpt__set_error(err, GPT_ERR_FORMAT, "%s: tensor \"%s\": the shape must be non-negative integers", what,
                            nm);
        if (t->shape[i] && t->numel > (uint64_t)-1 / t->shape[i])
            return gpt__set_error(err, GPT_ERR_FORMAT, "%s: tensor \"%s\": the shape's size overflows", what, nm);
        t->numel *= t->shape[i];
    }
    if (t->numel > (uint64_t)-1 / 8)
        return gpt__set_error(err, GPT_ERR_FORMAT, "%s: tensor \"%s\": the shape's size overflows", what, nm);
    if (!offs || offs->type != JSON_ARRAY || offs->len != 2 || !get_u64(&offs->items[0], &t->begin) ||
        !get_u64(&offs->items[1], &t->end))
        return gpt__set_error(err, GPT_ERR_FORMAT, "%s: tensor \"%s\" needs \"data_offsets\": [begin, end] (integers >= 0)",
                        what, nm);
    if (t->begin > t->end)
        return gpt__set_error(err, GPT_ERR_FORMAT, "%s: tensor \"%s\": data_offsets [%llu, %llu] end before they begin",
                        what, nm, (unsigned long long)t->begin, (unsigned long long)t->end);
    if (t->end > data_size)
        return gpt__set_error(err, GPT_ERR_FORMAT,
                        "%s: tensor \"%s\": data_offsets [%llu, %llu] lie outside the data (%llu bytes after the header)",
                        what, nm, (unsigned long long)t->begin, (unsigned long long)t->end,
                        (unsigned long long)data_size);
    bytes = t->numel * dtypes[t->dtype].size;
    if (t->end - t->begin != bytes) {
        shape_str(t, sh, sizeof sh);
        return gpt__set_error(err, GPT_ERR_FORMAT,
                        "%s: tensor \"%s\": data_offsets [%llu, %llu] cover %llu bytes, but %s %s needs %llu", what, nm,
                        (unsigned long long)t->begin, (unsigned long long)t->end,
                        (unsigned long long)(t->end - t->begin), dtypes[t->dtype].name, sh, (unsigned long long)bytes);
    }
    t->name = (char *)gpt__alloc(key->len + 1);
    if (!t->name) return gpt__set_error(err, GPT_ERR_OUT_OF_MEMORY, "out of memory");
    memcpy(t->name, key->str, key->len + 1);
    return GPT_OK;
}

gpt_status st_parse_header(const char *text, size_t len, uint64_t data_size, const char *what, st_header *out,
                           gpt_error *err)
{
    json_error je;
    json *root;
    size_t i, n_meta = 0;
    st_tensor **order = NULL;
    gpt_status st = GPT_OK;
    uint64_t at;

    memset(out, 0, sizeof *out);
    out->header_len = len;
    out->data_start = 8 + (uint64_t)len;
    out->data_size = data_size;
    if (len == 0 || text[0] != '{')
        return gpt__set_error(err, GPT_ERR_FORMAT, "%s: the header does not start with '{' (not a safetensors file?)", what);
    root = json_parse(text, len, &je);
    if (!root)
        return gpt__set_error(err, je.out_of_memory ? GPT_ERR_OUT_OF_MEMORY : GPT_ERR_FORMAT, "%s: the header is not valid JSON: %s at byte %llu of the header", what,
                        je.message, (unsigned long long)je.offset);
    /* the header starts with '{', so root is an object */
    for (i = 0; i < root->len; i++) {
        const json *k = &root->keys[i], *v = &root->items[i];
        if (k->len == 12 && memcmp(k->str, "__metadata__", 12) == 0) {
            size_t j;
            n_meta++;
            if (v->type != JSON_OBJECT) {
                st = gpt__set_error(err, GPT_ERR_FORMAT, "%s: __metadata__ is %s, not an object of strings", what,
                              json_type_name(v->type));
                goto done;
            }
            for (j = 0; j < v->len; j++)
                if (v->items[j].type != JSON_STRING) {
                    st = gpt__set_error(err, GPT_ERR_FORMAT, "%s: __metadata__ holds %s; its values must be strings", what,
                                  json_type_name(v->items[j].type));
                    goto done;
                }
        }
    }
    out->n = root->len - n_meta;
    out->tensors = (st_tensor *)gpt__calloc(out->n ? out->n : 1, sizeof(st_tensor));
    order = (st_tensor **)gpt__alloc((out->n ? out->n : 1) * sizeof(st_tensor *));
    if (!out->tensors || !order) {
        st = gpt__set_error(err, GPT_ERR_OUT_OF_MEMORY, "out of memory for %llu tensors", (unsigned long long)out->n);
        out->n = 0; /* none to free one by one */
        goto done;
    }
    out->n = 0;
    for (i = 0; i < root->len; i++) {
        const json *k = &root->keys[i];
        if (k->len == 12 && memcmp(k->str, "__metadata__", 12) == 0) continue;
        st = parse_entry(k, &root->items[i], data_size, what, &out->tensors[out->n], err);
        if (st != GPT_OK) goto done;
        order[out->n] = &out->tensors[out->n];
        out->n++;
    }
    /* no overlaps, no holes: sorted by begin, each starts where the last ended */
    qsort(order, out->n, sizeof *order, range_cmp);
    at = 0;
    for (i = 0; i < out->n; i++) {
        const st_tensor *t = order[i];
        if (t->begin < at) {
            const st_tensor *prev = order[i - 1]; /* at > 0 only after a tensor */
            char a[96], b[96];
            size_t j;
            /* the tensor that actually reaches past t->begin */
            for (j = i; j-- > 0;)
                if (order[j]->end > t->begin) {
                    prev = order[j];
                    break;
                }
            st = gpt__set_error(err, GPT_ERR_FORMAT, "%s: tensors \"%s\" [%llu, %llu] and \"%s\" [%llu, %llu] overlap", what,
                          st_printable(prev->name, a, sizeof a), (unsigned long long)prev->begin,
                          (unsigned long long)prev->end, st_printable(t->name, b, sizeof b),
                          (unsigned long long)t->begin, (unsigned long long)t->end);
            goto done;
        }
        if (t->begin > at) {
            st = gpt__set_error(err, GPT_ERR_FORMAT, "%s: bytes %llu .. %llu of the data belong to no tensor", what,
                          (unsigned long long)at, (unsigned long long)t->begin - 1);
            goto done;
        }
        if (t->end > at) at = t->end;
    }
    if (at != data_size)
        st = gpt__set_error(err, GPT_ERR_FORMAT, "%s: bytes %llu .. %llu of the data belong to no tensor", what,
                      (unsigned long long)at, (unsigned long long)data_size - 1);
done:
    gpt__free(order);
    json_free(root);
    if (st != GPT_OK) st_header_free(out);
    return st;
}

static uint64_t get_u64le(const unsigned char *p)
{
    uint64_t v = 0;
    int i;
    for (i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

static gpt_status check_length(uint64_t hlen, uint64_t file_size, const char *what, gpt_error *err)
{
    if (file_size < 8)
        return gpt__set_error(err, GPT_ERR_FORMAT, "%s: %llu bytes is too short for a safetensors file (no header length)",
                        what, (unsigned long long)file_size);
    if (hlen > file_size - 8)
        return gpt__set_error(err, GPT_ERR_FORMAT,
                        "%s: the header length %llu runs past the end of the file (%llu bytes, so at most %llu)", what,
                        (unsigned long long)hlen, (unsigned long long)file_size, (unsigned long long)(file_size - 8));
    if (hlen > ST_MAX_HEADER)
        return gpt__set_error(err, GPT_ERR_FORMAT, "%s: the header length %llu is more than safetensors allows (%llu)", what,
                        (unsigned long long)hlen, (unsigned long long)ST_MAX_HEADER);
    return GPT_OK;
}

gpt_status st_parse_memory(const void *buf, size_t len, const char *what, st_header *out, gpt_error *err)
{
    const unsigned char *b = (const unsigned char *)buf;
    uint64_t hlen;
    gpt_status st;
    memset(out, 0, sizeof *out);
    if (len < 8) return check_length(0, len, what, err);
    hlen = get_u64le(b);
    if ((st = check_length(hlen, len, what, err)) != GPT_OK) return st;
    return st_parse_header((const char *)b + 8, (size_t)hlen, (uint64_t)len - 8 - hlen, what, out, err);
}

gpt_status st_read_file(FILE *f, uint64_t file_size, const char *path, st_header *out, gpt_error *err)
{
    unsigned char lenbuf[8];
    uint64_t hlen;
    char *text;
    gpt_status st;
    memset(out, 0, sizeof *out);
    if (file_size < 8) return check_length(0, file_size, path, err);
    if ((st = cv_read_at(f, path, 0, lenbuf, 8, err)) != GPT_OK) return st;
    hlen = get_u64le(lenbuf);
    if ((st = check_length(hlen, file_size, path, err)) != GPT_OK) return st;
    text = (char *)gpt__alloc((size_t)hlen + 1);
    if (!text)
        return gpt__set_error(err, GPT_ERR_OUT_OF_MEMORY, "%s: out of memory for a %llu-byte header", path,
                        (unsigned long long)hlen);
    if ((st = cv_read_at(f, path, 8, text, (size_t)hlen, err)) == GPT_OK)
        st = st_parse_header(text, (size_t)hlen, file_size - 8 - hlen, path, out, err);
    gpt__free(text);
    return st;
}
