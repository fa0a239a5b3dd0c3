/*
 * ckpt.c - writes gpt.c checkpoints (docs/FORMAT.md) tensor by tensor, and
 * makes the random models of FORMAT.md "Random weights".
 */
#if (defined(__unix__) || defined(__APPLE__)) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#include "ckpt.h"
#include "cli.h"
#include "convert.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__unix__) || defined(__APPLE__)
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>
#define CKPT_POSIX 1
#elif defined(_WIN32)
#include <fcntl.h>
#include <io.h>
#include <sys/stat.h>
#include <windows.h>
#endif

/* ------------------------------------------------------------------------ */
/* Shapes and names                                                         */

int ckpt_n_tensors(const ckpt_spec *spec) { return 12 * spec->n_layer + 4; }

void ckpt_tensor_shape(const ckpt_spec *spec, int k, int *rows, int *cols)
{
    gpt_config c;
    uint32_t r, q;
    memset(&c, 0, sizeof c);
    c.n_vocab = spec->n_vocab;
    c.n_ctx = spec->n_ctx;
    c.n_embd = spec->n_embd;
    c.n_layer = spec->n_layer;
    gpt__tensor_shape((uint32_t)k, &c, &r, &q);
    *rows = (int)r;
    *cols = (int)q;
}

int ckpt_tensor_is_matrix(const ckpt_spec *spec, int k)
{
    int i;
    if (k < 2) return 1;
    if (k >= 2 + 12 * spec->n_layer) return 0;
    i = (k - 2) % 12;
    return i == 2 || i == 4 || i == 8 || i == 10;
}

void ckpt_tensor_name(const ckpt_spec *spec, int k, char *buf, size_t cap)
{
    gpt__tensor_name((uint32_t)k, (uint32_t)spec->n_layer, buf, cap);
}

static void put_u32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

static uint32_t get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_u64(unsigned char *p, uint64_t v)
{
    put_u32(p, (uint32_t)v);
    put_u32(p + 4, (uint32_t)(v >> 32));
}

/* Encodes n = rows * cols floats as type t into out (nbytes_of bytes). */
static void encode_tensor(gpt_dtype t, const float *x, int rows, int cols, unsigned char *out)
{
    size_t n = (size_t)rows * (size_t)cols, i;
    switch (t) {
    case GPT_DTYPE_F32:
        for (i = 0; i < n; i++) {
            uint32_t u;
            memcpy(&u, &x[i], 4);
            put_u32(out + 4 * i, u);
        }
        break;
    case GPT_DTYPE_F16:
    case GPT_DTYPE_BF16:
        for (i = 0; i < n; i++) {
            uint16_t h = t == GPT_DTYPE_F16 ? gpt__f32_to_f16(x[i]) : gpt__f32_to_bf16(x[i]);
            out[2 * i] = (unsigned char)h;
            out[2 * i + 1] = (unsigned char)(h >> 8);
        }
        break;
    case GPT_DTYPE_Q8_0: {
        size_t nb = ((size_t)cols + 31) / 32, qbytes = ((size_t)rows * nb * 32 + 63) / 64 * 64, r, b;
        memset(out, 0, (size_t)gpt__tensor_nbytes(t, (uint64_t)rows, (uint64_t)cols));
        for (r = 0; r < (size_t)rows; r++) {
            for (b = 0; b < nb; b++) {
                const float *blk = x + r * (size_t)cols + b * 32;
                size_t len = (size_t)cols - b * 32 < 32 ? (size_t)cols - b * 32 : 32, j;
                signed char *q = (signed char *)(out + (r * nb + b) * 32);
                float amax = 0.0f, scale;
                uint16_t s16;
                for (j = 0; j < len; j++)
                    if (fabsf(blk[j]) > amax) amax = fabsf(blk[j]);
                s16 = gpt__f32_to_f16(amax / 127.0f);
                scale = gpt__f16_to_f32(s16);
                for (j = 0; j < len; j++) {
                    float v = scale > 0.0f ? roundf(blk[j] / scale) : 0.0f;
                    if (v > 127.0f) v = 127.0f;
                    if (v < -127.0f) v = -127.0f;
                    q[j] = (signed char)v;
                }
                out[qbytes + 2 * (r * nb + b)] = (unsigned char)s16;
                out[qbytes + 2 * (r * nb + b) + 1] = (unsigned char)(s16 >> 8);
            }
        }
        break;
    }
    }
}

/* ------------------------------------------------------------------------ */
/* Writing                                                                  */

typedef struct sink {
    FILE *f;            /* or NULL: memory */
    unsigned char *mem;
    uint64_t pos;
} sink;

static gpt_status sink_write(sink *s, const void *p, size_t n, gpt_error *err)
{
    if (n == 0) return GPT_OK;
    if (s->f) {
        if (fwrite(p, 1, n, s->f) != n)
            return gpt__set_error(err, GPT_ERR_IO, "write error at offset %llu: %s", (unsigned long long)s->pos,
                            strerror(errno));
    } else {
        memcpy(s->mem + s->pos, p, n);
    }
    s->pos += n;
    return GPT_OK;
}

static gpt_status sink_pad(sink *s, uint64_t to, gpt_error *err)
{
    static const unsigned char zeros[64] = {0};
    while (s->pos < to) {
        size_t n = to - s->pos < 64 ? (size_t)(to - s->pos) : 64;
        gpt_status st = sink_write(s, zeros, n, err);
        if (st != GPT_OK) return st;
    }
    return GPT_OK;
}

static uint64_t align64(uint64_t x) { return (x + 63) / 64 * 64; }

typedef struct layout {
    int n_tensors;
    uint64_t dir_end, tok_off, tok_size, file_size;
    uint64_t *off, *nbytes;
    gpt_dtype *type;
} layout;

static gpt_dtype tensor_dtype(const ckpt_spec *spec, int k)
{
    if (k == 1) return spec->wpe_dtype;
    return ckpt_tensor_is_matrix(spec, k) ? spec->dtype : GPT_DTYPE_F32;
}

static gpt_status plan(const ckpt_spec *spec, layout *lay, gpt_error *err)
{
    int k, rows, cols;
    uint64_t at;
    if (!spec->tok) return gpt__set_error(err, GPT_ERR_INVALID_ARG, "no tokenizer for the checkpoint");
    if (spec->n_vocab < 1 || spec->n_ctx < 1 || spec->n_embd < 1 || spec->n_head < 1 || spec->n_layer < 1 ||
        spec->n_embd % spec->n_head != 0)
        return gpt__set_error(err, GPT_ERR_INVALID_ARG, "impossible shape: n_vocab %d n_ctx %d n_embd %d n_head %d n_layer %d",
                        spec->n_vocab, spec->n_ctx, spec->n_embd, spec->n_head, spec->n_layer);
    if (gpt_tokenizer_n_vocab(spec->tok) != spec->n_vocab)
        return gpt__set_error(err, GPT_ERR_INVALID_ARG, "the tokenizer has %d tokens but n_vocab is %d",
                        gpt_tokenizer_n_vocab(spec->tok), spec->n_vocab);
    lay->n_tensors = ckpt_n_tensors(spec);
    lay->off = (uint64_t *)gpt__calloc((size_t)lay->n_tensors, sizeof(uint64_t));
    lay->nbytes = (uint64_t *)gpt__calloc((size_t)lay->n_tensors, sizeof(uint64_t));
    lay->type = (gpt_dtype *)gpt__calloc((size_t)lay->n_tensors, sizeof(gpt_dtype));
    if (!lay->off || !lay->nbytes || !lay->type) return gpt__set_error(err, GPT_ERR_OUT_OF_MEMORY, "out of memory");
    lay->dir_end = 128 + 32 * (uint64_t)lay->n_tensors;
    lay->tok_off = align64(lay->dir_end);
    lay->tok_size = gpt_tokenizer_serialize(spec->tok, NULL, 0);
    at = lay->tok_off + lay->tok_size;
    for (k = 0; k < lay->n_tensors; k++) {
        ckpt_tensor_shape(spec, k, &rows, &cols);
        lay->type[k] = tensor_dtype(spec, k);
        lay->nbytes[k] = gpt__tensor_nbytes(lay->type[k], (uint64_t)rows, (uint64_t)cols);
        lay->off[k] = align64(at);
        at = lay->off[k] + lay->nbytes[k];
    }
    lay->file_size = at;
    return GPT_OK;
}

static void layout_free(layout *lay)
{
    gpt__free(lay->off);
    gpt__free(lay->nbytes);
    gpt__free(lay->type);
}

/* Whether a finite f32 stays finite once stored as type t (f16 ends at
 * 65504, bf16 just below FLT_MAX, a q8_0 block's f16 scale is max|x|/127). */
static int fits(gpt_dtype t, float x)
{
    float a = fabsf(x);
    if (!(a <= FLT_MAX)) return 0; /* NaN or infinite */
    switch (t) {
    case GPT_DTYPE_F16: return a < 65520.0f;
    case GPT_DTYPE_BF16: return (gpt__f32_to_bf16(x) & 0x7f80u) != 0x7f80u;
    case GPT_DTYPE_Q8_0: return a / 127.0f < 65520.0f;
    default: return 1;
    }
}

/* The source's values of tensor k must be finite and fit the type they are
 * stored in: a NaN weight would make every logit NaN. */
static gpt_status check_values(const ckpt_spec *spec, int k, gpt_dtype t, const float *x, int rows, int cols,
                               gpt_error *err)
{
    size_t n = (size_t)rows * (size_t)cols, i;
    char name[64];
    for (i = 0; i < n; i++)
        if (!fits(t, x[i])) break;
    if (i == n) return GPT_OK;
    ckpt_tensor_name(spec, k, name, sizeof name);
    if (x[i] != x[i] || fabsf(x[i]) > FLT_MAX)
        return gpt__set_error(err, GPT_ERR_NUMERIC, "tensor %s (%d) has a non-finite value (%g) at row %llu, column %llu: "
                        "the source's weights are damaged (--allow-nonfinite writes them anyway)", name, k,
                        (double)x[i], (unsigned long long)(i / (size_t)cols), (unsigned long long)(i % (size_t)cols));
    return gpt__set_error(err, GPT_ERR_NUMERIC, "tensor %s (%d): the value %g at row %llu, column %llu is too large for %s "
                    "(it would become infinite; --allow-nonfinite writes it anyway)", name, k, (double)x[i],
                    (unsigned long long)(i / (size_t)cols), (unsigned long long)(i % (size_t)cols),
                    gpt_dtype_name(t));
}

static gpt_status write_all(sink *s, const ckpt_spec *spec, const layout *lay, ckpt_source src, void *user,
                            int progress, gpt_error *err)
{
    static const unsigned char magic[8] = {'G', 'P', 'T', 'C', 0x0D, 0x0A, 0x1A, 0x0A};
    unsigned char head[128], *dir = NULL, *tokbuf = NULL, *enc = NULL;
    float *vals = NULL;
    uint64_t max_vals = 0, max_enc = 0;
    int k, rows, cols;
    gpt_status st = GPT_OK;
    uint32_t epsbits;

    memset(head, 0, sizeof head);
    memcpy(head, magic, 8);
    put_u32(head + 8, 1);
    put_u32(head + 12, 128);
    put_u32(head + 16, (uint32_t)spec->n_vocab);
    put_u32(head + 20, (uint32_t)spec->n_ctx);
    put_u32(head + 24, (uint32_t)spec->n_embd);
    put_u32(head + 28, (uint32_t)spec->n_head);
    put_u32(head + 32, (uint32_t)spec->n_layer);
    memcpy(&epsbits, &spec->ln_eps, 4);
    put_u32(head + 36, epsbits);
    put_u32(head + 40, (uint32_t)spec->dtype);
    put_u32(head + 44, 0);
    put_u64(head + 48, lay->tok_off);
    put_u64(head + 56, lay->tok_size);
    put_u64(head + 64, lay->file_size);
    put_u32(head + 72, (uint32_t)lay->n_tensors);

    dir = (unsigned char *)gpt__calloc((size_t)lay->n_tensors, 32);
    tokbuf = (unsigned char *)gpt__alloc((size_t)lay->tok_size);
    if (!dir || !tokbuf) {
        st = gpt__set_error(err, GPT_ERR_OUT_OF_MEMORY, "out of memory");
        goto done;
    }
    for (k = 0; k < lay->n_tensors; k++) {
        ckpt_tensor_shape(spec, k, &rows, &cols);
        put_u32(dir + 32 * k, (uint32_t)lay->type[k]);
        put_u32(dir + 32 * k + 4, (uint32_t)rows);
        put_u32(dir + 32 * k + 8, (uint32_t)cols);
        put_u64(dir + 32 * k + 16, lay->off[k]);
        put_u64(dir + 32 * k + 24, lay->nbytes[k]);
        if ((uint64_t)rows * (uint64_t)cols > max_vals) max_vals = (uint64_t)rows * (uint64_t)cols;
        if (lay->nbytes[k] > max_enc) max_enc = lay->nbytes[k];
    }
    gpt_tokenizer_serialize(spec->tok, tokbuf, (size_t)lay->tok_size);
    if ((st = sink_write(s, head, sizeof head, err)) != GPT_OK) goto done;
    if ((st = sink_write(s, dir, (size_t)lay->n_tensors * 32, err)) != GPT_OK) goto done;
    if ((st = sink_pad(s, lay->tok_off, err)) != GPT_OK) goto done;
    if ((st = sink_write(s, tokbuf, (size_t)lay->tok_size, err)) != GPT_OK) goto done;

    if (max_vals > (uint64_t)((size_t)-1) / sizeof(float)) {
        st = gpt__set_error(err, GPT_ERR_OUT_OF_MEMORY, "a tensor is too large for this address space");
        goto done;
    }
    vals = (float *)gpt__alloc((size_t)max_vals * sizeof(float));
    enc = (unsigned char *)gpt__alloc((size_t)max_enc);
    if (!vals || !enc) {
        st = gpt__set_error(err, GPT_ERR_OUT_OF_MEMORY, "out of memory for a tensor of %llu values",
                      (unsigned long long)max_vals);
        goto done;
    }
    for (k = 0; k < lay->n_tensors; k++) {
        ckpt_tensor_shape(spec, k, &rows, &cols);
        if ((st = src(user, k, rows, cols, vals, err)) != GPT_OK) goto done;
        if (!spec->allow_nonfinite && (st = check_values(spec, k, lay->type[k], vals, rows, cols, err)) != GPT_OK)
            goto done;
        encode_tensor(lay->type[k], vals, rows, cols, enc);
        if ((st = sink_pad(s, lay->off[k], err)) != GPT_OK) goto done;
        if ((st = sink_write(s, enc, (size_t)lay->nbytes[k], err)) != GPT_OK) goto done;
        if (progress) {
            fprintf(stderr, "\rwriting tensor %d/%d (%.0f%%)", k + 1, lay->n_tensors,
                    100.0 * (double)s->pos / (double)lay->file_size);
            fflush(stderr);
        }
    }
    if (progress) fprintf(stderr, "\n");
done:
    gpt__free(dir);
    gpt__free(tokbuf);
    gpt__free(vals);
    gpt__free(enc);
    return st;
}

gpt_status ckpt_write_memory(const ckpt_spec *spec, ckpt_source src, void *user, unsigned char **out, size_t *len,
                             gpt_error *err)
{
    layout lay;
    sink s;
    gpt_status st;
    memset(&lay, 0, sizeof lay);
    *out = NULL;
    *len = 0;
    if ((st = plan(spec, &lay, err)) != GPT_OK) {
        layout_free(&lay);
        return st;
    }
    memset(&s, 0, sizeof s);
    s.mem = (unsigned char *)gpt__alloc((size_t)lay.file_size);
    if (!s.mem) {
        layout_free(&lay);
        return gpt__set_error(err, GPT_ERR_OUT_OF_MEMORY, "out of memory for a %llu-byte checkpoint",
                        (unsigned long long)lay.file_size);
    }
    st = write_all(&s, spec, &lay, src, user, 0, err);
    if (st != GPT_OK) {
        gpt__free(s.mem);
    } else {
        *out = s.mem;
        *len = (size_t)lay.file_size;
    }
    layout_free(&lay);
    return st;
}

/* What is at the output path: 0 nothing, 1 a regular file or a symbolic
 * link (replaced only with force), -1 anything else or an error (err set).
 * The path is examined, never opened: opening a FIFO would block, and a
 * file the user cannot read still exists. */
static int output_state(const char *path, gpt_error *err)
{
#if defined(CKPT_POSIX)
    struct stat st;
    if (lstat(path, &st) != 0) {
        if (errno == ENOENT) return 0;
        gpt__set_error(err, GPT_ERR_IO, "%s: cannot examine it: %s", path, strerror(errno));
        return -1;
    }
    if (S_ISREG(st.st_mode) || S_ISLNK(st.st_mode)) return 1;
    gpt__set_error(err, GPT_ERR_IO, "%s is %s: gpt convert writes regular files only and replaces nothing else, even with "
             "--force", path, gpt__file_kind((unsigned long)st.st_mode));
    return -1;
#elif defined(_WIN32)
    struct _stat64 st;
    if (_stat64(path, &st) != 0) {
        if (errno == ENOENT) return 0;
        gpt__set_error(err, GPT_ERR_IO, "%s: cannot examine it: %s", path, strerror(errno));
        return -1;
    }
    if ((st.st_mode & _S_IFMT) == _S_IFREG) return 1;
    gpt__set_error(err, GPT_ERR_IO, "%s is %s: gpt convert writes regular files only and replaces nothing else, even with "
             "--force", path, gpt__file_kind((unsigned long)st.st_mode));
    return -1;
#else
    FILE *f = fopen(path, "rb");
    (void)err;
    if (!f) return 0;
    fclose(f);
    return 1;
#endif
}

gpt_status ckpt_check_output(const char *path, int force, gpt_error *err)
{
    int state = output_state(path, err);
    if (state < 0) return err ? err->status : GPT_ERR_IO;
    if (state > 0 && !force)
        return gpt__set_error(err, GPT_ERR_EXISTS, "%s already exists (use --force to overwrite it)", path);
    return GPT_OK;
}

/* Creates a new, empty temporary file next to path (never an existing one)
 * and opens it for writing; its name goes to tmp (cap bytes). */
static FILE *create_temporary(const char *path, char *tmp, size_t cap, gpt_error *err)
{
    FILE *f = NULL;
#if defined(CKPT_POSIX)
    int fd;
    mode_t mask;
    snprintf(tmp, cap, "%s.tmp-XXXXXX", path);
    mask = umask(0);
    umask(mask);
    fd = mkstemp(tmp);
    /* mkstemp creates the file 0600; give it the permissions a plain fopen
     * would have */
    if (fd >= 0) fchmod(fd, 0666 & ~mask);
    if (fd >= 0 && !(f = fdopen(fd, "wb"))) close(fd);
#elif defined(_WIN32)
    int i, fd = -1;
    for (i = 0; i < 100 && fd < 0; i++) {
        snprintf(tmp, cap, "%s.tmp-%lu-%d", path, (unsigned long)GetCurrentProcessId(), i);
        fd = _open(tmp, _O_CREAT | _O_EXCL | _O_WRONLY | _O_BINARY, _S_IREAD | _S_IWRITE);
        if (fd < 0 && errno != EEXIST) break;
    }
    if (fd >= 0 && !(f = _fdopen(fd, "wb"))) _close(fd);
#else
    snprintf(tmp, cap, "%s.partial", path);
    f = fopen(tmp, "wb");
#endif
    if (!f) gpt__set_error(err, GPT_ERR_IO, "cannot create a temporary file next to %s: %s", path, strerror(errno));
    return f;
}

/* Moves the finished temporary file to path: without force only if path
 * still does not exist (atomically, by a hard link or MoveFileEx, where the
 * file system allows), with force replacing the file or link there. */
static gpt_status move_into_place(const char *tmp, const char *path, int force, gpt_error *err)
{
    gpt_status st = ckpt_check_output(path, force, err);
    if (st == GPT_ERR_EXISTS)
        return gpt__set_error(err, GPT_ERR_EXISTS, "%s appeared while converting; not overwriting it (--force does)", path);
    if (st != GPT_OK) return st;
#if defined(CKPT_POSIX)
    if (!force) {
        if (link(tmp, path) == 0) {
            unlink(tmp);
            return GPT_OK;
        }
        if (errno == EEXIST)
            return gpt__set_error(err, GPT_ERR_EXISTS, "%s appeared while converting; not overwriting it (--force does)",
                            path);
        if (errno != EPERM && errno != EXDEV && errno != EMLINK && errno != ENOSYS
#if defined(EOPNOTSUPP)
            && errno != EOPNOTSUPP
#endif
        )
            return gpt__set_error(err, GPT_ERR_IO, "cannot create %s: %s", path, strerror(errno));
        /* a file system without hard links: rename right after the check */
    }
    if (rename(tmp, path) != 0)
        return gpt__set_error(err, GPT_ERR_IO, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
    return GPT_OK;
#elif defined(_WIN32)
    if (!MoveFileExA(tmp, path, force ? MOVEFILE_REPLACE_EXISTING : 0)) {
        DWORD e = GetLastError();
        if (e == ERROR_ALREADY_EXISTS || e == ERROR_FILE_EXISTS)
            return gpt__set_error(err, GPT_ERR_EXISTS, "%s appeared while converting; not overwriting it (--force does)",
                            path);
        return gpt__set_error(err, GPT_ERR_IO, "cannot move %s to %s (Windows error %lu)", tmp, path, (unsigned long)e);
    }
    return GPT_OK;
#else
    if (force) remove(path);
    if (rename(tmp, path) != 0)
        return gpt__set_error(err, GPT_ERR_IO, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
    return GPT_OK;
#endif
}

gpt_status ckpt_write_file(const char *path, const ckpt_spec *spec, ckpt_source src, void *user, int force,
                           int progress, gpt_error *err)
{
    layout lay;
    sink s;
    gpt_status st;
    char *tmp;
    size_t cap = strlen(path) + 32;
    if ((st = ckpt_check_output(path, force, err)) != GPT_OK) return st;
    memset(&lay, 0, sizeof lay);
    if ((st = plan(spec, &lay, err)) != GPT_OK) {
        layout_free(&lay);
        return st;
    }
    tmp = (char *)gpt__alloc(cap);
    if (!tmp) {
        layout_free(&lay);
        return gpt__set_error(err, GPT_ERR_OUT_OF_MEMORY, "out of memory");
    }
    memset(&s, 0, sizeof s);
    if (!(s.f = create_temporary(path, tmp, cap, err))) {
        gpt__free(tmp);
        layout_free(&lay);
        return GPT_ERR_IO;
    }
    st = write_all(&s, spec, &lay, src, user, progress, err);
    if (st == GPT_OK && fflush(s.f) != 0)
        st = gpt__set_error(err, GPT_ERR_IO, "%s: write error: %s", path, strerror(errno));
#if defined(CKPT_POSIX)
    /* on the disk before it replaces anything */
    if (st == GPT_OK && fsync(fileno(s.f)) != 0 && errno != EINVAL && errno != ENOTSUP)
        st = gpt__set_error(err, GPT_ERR_IO, "%s: write error: %s", path, strerror(errno));
#endif
    if (fclose(s.f) != 0 && st == GPT_OK)
        st = gpt__set_error(err, GPT_ERR_IO, "%s: write error on close: %s", path, strerror(errno));
    if (st == GPT_OK) st = move_into_place(tmp, path, force, err);
    if (st != GPT_OK) remove(tmp);
    gpt__free(tmp);
    layout_free(&lay);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Checking the weights of a checkpoint                                     */

static uint64_t get_u64(const unsigned char *p) { return (uint64_t)get_u32(p) | (uint64_t)get_u32(p + 4) << 32; }

gpt_status ckpt_check_finite(const char *path, uint64_t *n_values, gpt_error *err)
{
    unsigned char head[128], e[32];
    uint64_t size, total = 0;
    uint32_t n_tensors, n_layer, k;
    float *buf = NULL;
    const size_t per = 1 << 16;
    gpt_status st;
    ckpt_spec spec;
    FILE *f = cv_open(path, &size, err);
    if (!f) return err ? err->status : GPT_ERR_IO;
    buf = (float *)gpt__alloc(per * sizeof(float));
    if (!buf) {
        fclose(f);
        return gpt__set_error(err, GPT_ERR_OUT_OF_MEMORY, "out of memory");
    }
    if ((st = cv_read_at(f, path, 0, head, sizeof head, err)) != GPT_OK) goto done;
    n_layer = get_u32(head + 32);
    n_tensors = get_u32(head + 72);
    memset(&spec, 0, sizeof spec);
    spec.n_layer = (int)n_layer;
    for (k = 0; k < n_tensors && st == GPT_OK; k++) {
        uint32_t dt, rows, cols;
        uint64_t off, n, done = 0, nb;
        cv_type ct = CV_F32;
        char name[64];
        if ((st = cv_read_at(f, path, 128 + 32 * (uint64_t)k, e, sizeof e, err)) != GPT_OK) break;
        dt = get_u32(e);
        rows = get_u32(e + 4);
        cols = get_u32(e + 8);
        off = get_u64(e + 16);
        n = (uint64_t)rows * cols;
        total += n;
        if (dt == GPT_DTYPE_F16) ct = CV_F16;
        else if (dt == GPT_DTYPE_BF16) ct = CV_BF16;
        else if (dt == GPT_DTYPE_Q8_0) {
            /* only the f16 scales can be non-finite */
            nb = (cols + 31) / 32;
            ct = CV_F16;
            off += ((uint64_t)rows * nb * 32 + 63) / 64 * 64;
            n = (uint64_t)rows * nb;
        }
        while (done < n) {
            size_t m = n - done < per ? (size_t)(n - done) : per, i;
            if ((st = cv_read_floats(f, path, off + done * cv_type_size(ct), ct, m, buf, err)) != GPT_OK) break;
            for (i = 0; i < m; i++)
                if (!(fabsf(buf[i]) <= FLT_MAX)) break;
            if (i < m) {
                uint64_t at = done + i, c = dt == GPT_DTYPE_Q8_0 ? (cols + 31) / 32 : cols;
                ckpt_tensor_name(&spec, (int)k, name, sizeof name);
                st = gpt__set_error(err, GPT_ERR_NUMERIC, "%s: tensor %u (%s) holds %s at %s %llu (row %llu, %s %llu)",
                              path, k, name, buf[i] != buf[i] ? "NaN" : "an infinity",
                              dt == GPT_DTYPE_Q8_0 ? "scale" : "element", (unsigned long long)at,
                              (unsigned long long)(at / c), dt == GPT_DTYPE_Q8_0 ? "block" : "column",
                              (unsigned long long)(at % c));
                break;
            }
            done += m;
        }
    }
done:
    gpt__free(buf);
    fclose(f);
    if (st == GPT_OK && n_values) *n_values = total;
    return st;
}

/* ------------------------------------------------------------------------ */
/* Random models                                                            */

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

#define GOLDEN 0x9E3779B97F4A7C15ull

float ckpt_random_uniform(uint64_t seed, int k, uint64_t j)
{
    uint64_t key = mix64(seed + GOLDEN * (uint64_t)(k + 1));
    uint64_t bits = mix64(key + GOLDEN * (j + 1));
    return (float)((int32_t)(bits >> 40) - 8388608) / 8388608.0f;
}

gpt_status ckpt_random_source(void *user, int k, int rows, int cols, float *dst, gpt_error *err)
{
    const ckpt_random *r = (const ckpt_random *)user;
    uint64_t n = (uint64_t)rows * (uint64_t)cols, j;
    uint64_t key = mix64(r->seed + GOLDEN * (uint64_t)(k + 1));
    int L = r->n_layer, kind; /* 0 matrix, 1 layer-norm weight, 2 bias */
    float s = (float)sqrt(3.0 / (double)cols);
    if (L < 1) return gpt__set_error(err, GPT_ERR_INVALID_ARG, "random source without n_layer");
    if (k < 2) kind = 0;
    else if (k >= 2 + 12 * L) kind = k == 2 + 12 * L ? 1 : 2;
    else {
        int i = (k - 2) % 12;
        kind = (i == 2 || i == 4 || i == 8 || i == 10) ? 0 : (i == 0 || i == 6) ? 1 : 2;
    }
    for (j = 0; j < n; j++) {
        uint64_t bits = mix64(key + GOLDEN * (j + 1));
        float u = (float)((int32_t)(bits >> 40) - 8388608) / 8388608.0f;
        dst[j] = kind == 0 ? u * s : kind == 1 ? 1.0f + 0.25f * u : 0.125f * u;
    }
    return GPT_OK;
}

gpt_tokenizer *ckpt_gpt2_tokenizer(const char *vocab_path, const char *merges_path, int n_vocab, gpt_error *err)
{
    gpt_tokenizer *full = gpt_tokenizer_load(vocab_path, merges_path, err), *cut;
    unsigned char *sec, *out;
    size_t len, blob, merges_at, out_len, out_merges_at;
    uint32_t n_full, n_merges, keep_merges, i;
    if (!full) return NULL;
    n_full = (uint32_t)gpt_tokenizer_n_vocab(full);
    if (n_vocab == (int)n_full) return full;
    if (n_vocab < 256 || (uint32_t)n_vocab > n_full) {
        gpt_tokenizer_free(full);
        gpt__set_error(err, GPT_ERR_INVALID_ARG, "a GPT-2 vocabulary can be cut to 256 .. %u tokens, not %d", n_full, n_vocab);
        return NULL;
    }
    len = gpt_tokenizer_serialize(full, NULL, 0);
    sec = (unsigned char *)gpt__alloc(len);
    if (!sec) {
        gpt_tokenizer_free(full);
        gpt__set_error(err, GPT_ERR_OUT_OF_MEMORY, "out of memory");
        return NULL;
    }
    gpt_tokenizer_serialize(full, sec, len);
    gpt_tokenizer_free(full);
    n_merges = get_u32(sec + 12);
    blob = get_u32(sec + 24 + 4 * (size_t)n_full);
    merges_at = (24 + 4 * ((size_t)n_full + 1) + blob + 3) / 4 * 4;
    /* GPT-2's merge of rank r makes token 256 + r, from earlier tokens */
    keep_merges = (uint32_t)n_vocab - 256 < n_merges ? (uint32_t)n_vocab - 256 : n_merges;
    {
        size_t cut_blob = get_u32(sec + 24 + 4 * (size_t)n_vocab);
        out_merges_at = (24 + 4 * ((size_t)n_vocab + 1) + cut_blob + 3) / 4 * 4;
        out_len = out_merges_at + 8 * (size_t)keep_merges;
        out = (unsigned char *)gpt__calloc(out_len, 1);
        if (!out) {
            gpt__free(sec);
            gpt__set_error(err, GPT_ERR_OUT_OF_MEMORY, "out of memory");
            return NULL;
        }
        memcpy(out, sec, 24);
        put_u32(out + 8, (uint32_t)n_vocab);
        put_u32(out + 12, keep_merges);
        put_u32(out + 16, 0xFFFFFFFFu); /* no <|endoftext|> */
        memcpy(out + 24, sec + 24, 4 * ((size_t)n_vocab + 1));
        memcpy(out + 24 + 4 * ((size_t)n_vocab + 1), sec + 24 + 4 * ((size_t)n_full + 1), cut_blob);
        for (i = 0; i < keep_merges; i++) memcpy(out + out_merges_at + 8 * i, sec + merges_at + 8 * i, 8);
    }
    gpt__free(sec);
    cut = gpt_tokenizer_deserialize(out, out_len, err);
    gpt__free(out);
    return cut;
}

gpt_status ckpt_parse_shape(const char *s, ckpt_spec *spec, gpt_error *err)
{
    static const struct { const char *name; int L, H, C; } known[4] = {
        {"124M", 12, 12, 768}, {"355M", 24, 16, 1024}, {"774M", 36, 20, 1280}, {"1558M", 48, 25, 1600}};
    int i, L, H, C, T;
    char tail;
    if (!spec->n_vocab) spec->n_vocab = 50257;
    if (!(spec->ln_eps > 0.0f)) spec->ln_eps = 1e-5f;
    for (i = 0; i < 4; i++)
        if (strcmp(s, known[i].name) == 0) {
            spec->n_layer = known[i].L;
            spec->n_head = known[i].H;
            spec->n_embd = known[i].C;
            spec->n_ctx = 1024;
            return GPT_OK;
        }
    if (sscanf(s, "%d,%d,%d,%d%c", &L, &H, &C, &T, &tail) != 4)
        return gpt__set_error(err, GPT_ERR_INVALID_ARG, "shape \"%s\" is not 124M, 355M, 774M, 1558M or L,H,C,T", s);
    if (L < 1 || H < 1 || C < 1 || T < 1 || L > 4096 || C > 65536 || T > 1048576 || C % H != 0)
        return gpt__set_error(err, GPT_ERR_INVALID_ARG,
                        "shape %d,%d,%d,%d: need layers, heads, n_embd, n_ctx >= 1 with n_embd a multiple of heads",
                        L, H, C, T);
    spec->n_layer = L;
    spec->n_head = H;
    spec->n_embd = C;
    spec->n_ctx = T;
    return GPT_OK;
}
