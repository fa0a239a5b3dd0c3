/*
 * convert_io.c - reading large input files for `gpt convert`: 64-bit
 * offsets (fseeko/ftello on POSIX, _fseeki64 on Windows, fseek elsewhere
 * with a check that the offset fits a long), and decoding stored values.
 */
#if defined(__unix__) || defined(__APPLE__)
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#ifndef _FILE_OFFSET_BITS
#define _FILE_OFFSET_BITS 64
#endif
#endif

#include "cli.h"
#include "convert.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>


#if defined(__unix__) || defined(__APPLE__)
#include <sys/stat.h>
#include <sys/types.h>
#define CV_FSEEKO 1
#endif

static int seek_to(FILE *f, uint64_t off)
{
#if defined(CV_FSEEKO)
    /* off_t is 64-bit with _FILE_OFFSET_BITS 64 (or on any 64-bit system) */
    if (sizeof(off_t) < 8 && off > (uint64_t)LONG_MAX) return -1;
    return fseeko(f, (off_t)off, SEEK_SET);
#elif defined(_WIN32)
    if (off > (uint64_t)9223372036854775807ull) return -1;
    return _fseeki64(f, (__int64)off, SEEK_SET);
#else
    if (off > (uint64_t)LONG_MAX) return -1;
    return fseek(f, (long)off, SEEK_SET);
#endif
}

FILE *cv_open(const char *path, uint64_t *size, gpt_error *err)
{
    /* a regular file only: a FIFO or a device would block or never end */
    return gpt__open_regular(path, 0, size, err);
}

gpt_status cv_seek(FILE *f, const char *path, uint64_t off, gpt_error *err)
{
    errno = 0;
    if (seek_to(f, off) != 0)
        return gpt__set_error(err, GPT_ERR_IO, "%s: cannot seek to offset %llu: %s", path, (unsigned long long)off,
                        errno ? strerror(errno) : "offset too large for this platform");
    return GPT_OK;
}

gpt_status cv_read(FILE *f, const char *path, uint64_t off, void *buf, size_t n, gpt_error *err)
{
    size_t got = fread(buf, 1, n, f);
    if (got != n) {
        if (ferror(f))
            return gpt__set_error(err, GPT_ERR_IO, "%s: read error at offset %llu: %s", path, (unsigned long long)off,
                            strerror(errno));
        return gpt__set_error(err, GPT_ERR_FORMAT, "%s: the file ends at offset %llu, before the %llu bytes at %llu", path,
                        (unsigned long long)(off + got), (unsigned long long)n, (unsigned long long)off);
    }
    return GPT_OK;
}

gpt_status cv_read_at(FILE *f, const char *path, uint64_t off, void *buf, size_t n, gpt_error *err)
{
    gpt_status st = cv_seek(f, path, off, err);
    return st != GPT_OK ? st : cv_read(f, path, off, buf, n, err);
}

size_t cv_type_size(cv_type t) { return t == CV_F32 ? 4 : 2; }

void cv_decode(const unsigned char *src, cv_type t, size_t n, float *dst)
{
    size_t i;
    switch (t) {
    case CV_F32:
        for (i = 0; i < n; i++) {
            const unsigned char *p = src + 4 * i;
            uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
            memcpy(&dst[i], &u, 4);
        }
        break;
    case CV_F16:
        for (i = 0; i < n; i++) dst[i] = gpt__f16_to_f32((uint16_t)(src[2 * i] | src[2 * i + 1] << 8));
        break;
    case CV_BF16:
        for (i = 0; i < n; i++) dst[i] = gpt__bf16_to_f32((uint16_t)(src[2 * i] | src[2 * i + 1] << 8));
        break;
    }
}

#define CV_CHUNK (1u << 16)

gpt_status cv_read_floats(FILE *f, const char *path, uint64_t off, cv_type t, size_t n, float *dst, gpt_error *err)
{
    unsigned char buf[CV_CHUNK];
    size_t es = cv_type_size(t), per = CV_CHUNK / es, done = 0;
    gpt_status st = cv_seek(f, path, off, err);
    while (st == GPT_OK && done < n) {
        size_t k = n - done < per ? n - done : per;
        st = cv_read(f, path, off + (uint64_t)done * es, buf, k * es, err);
        if (st != GPT_OK) break;
        cv_decode(buf, t, k, dst + done);
        done += k;
    }
    return st;
}

int cv_exists(const char *path)
{
#if defined(CV_FSEEKO)
    struct stat st;
    return stat(path, &st) == 0;
#else
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    fclose(f);
    return 1;
#endif
}

char *cv_join(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    char *s = (char *)gpt__alloc(a + b + 2);
    if (!s) return NULL;
    memcpy(s, dir, a);
    if (a && dir[a - 1] != '/'
#if defined(_WIN32)
        && dir[a - 1] != '\\'
#endif
    )
        s[a++] = '/';
    memcpy(s + a, name, b + 1);
    return s;
}
