/* common.c - helpers shared by the parts of the `gpt` command. */
#if (defined(__unix__) || defined(__APPLE__)) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#include "common.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>
#define CLI_POSIX 1
#elif defined(_WIN32)
#include <io.h>
#include <windows.h>
#endif

#ifndef GPT_SOURCE_DIR
#define GPT_SOURCE_DIR "."
#endif
#ifndef GPT_PREFIX
#define GPT_PREFIX "/usr/local"
#endif

gpt_status cli_fail(gpt_error *err, gpt_status status, const char *fmt, ...)
{
    va_list ap;
    if (err) {
        err->status = status;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
    }
    return status;
}

char *cli_read_stream(FILE *f, size_t *len, gpt_error *err)
{
    size_t cap = 1 << 16, n = 0, got;
    char *buf = (char *)malloc(cap + 1), *grown;
    if (!buf) {
        cli_fail(err, GPT_ERR_OUT_OF_MEMORY, "out of memory reading input");
        return NULL;
    }
    while ((got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            if (cap > ((size_t)-1) / 4) {
                free(buf);
                cli_fail(err, GPT_ERR_OUT_OF_MEMORY, "input too large");
                return NULL;
            }
            cap *= 2;
            grown = (char *)realloc(buf, cap + 1);
            if (!grown) {
                free(buf);
                cli_fail(err, GPT_ERR_OUT_OF_MEMORY, "out of memory reading input");
                return NULL;
            }
            buf = grown;
        }
    }
    if (ferror(f)) {
        free(buf);
        cli_fail(err, GPT_ERR_IO, "read error: %s", strerror(errno));
        return NULL;
    }
    buf[n] = 0;
    *len = n;
    return buf;
}

char *cli_read_file(const char *path, size_t *len, gpt_error *err)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    gpt_error e;
    if (!f) {
        cli_fail(err, GPT_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    buf = cli_read_stream(f, len, &e);
    fclose(f);
    if (!buf) cli_fail(err, e.status, "%s: %s", path, e.message);
    return buf;
}

static int file_exists(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    fclose(f);
    return 1;
}

const char *cli_data_path(const char *rel, char *buf, size_t cap)
{
#if defined(__linux__)
    {
        char exe[4096];
        ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
        if (n > 0) {
            char *slash;
            exe[n] = 0;
            slash = strrchr(exe, '/');
            if (slash) {
                *slash = 0;
                snprintf(buf, cap, "%s/../%s", exe, rel);
                if (file_exists(buf)) return buf;
            }
        }
    }
#elif defined(_WIN32)
    {
        char exe[4096];
        DWORD n = GetModuleFileNameA(NULL, exe, sizeof exe);
        if (n > 0 && n < sizeof exe) {
            char *slash = strrchr(exe, '\\');
            if (!slash) slash = strrchr(exe, '/');
            if (slash) {
                *slash = 0;
                snprintf(buf, cap, "%s/../%s", exe, rel);
                if (file_exists(buf)) return buf;
            }
        }
    }
#endif
    snprintf(buf, cap, "%s/%s", GPT_SOURCE_DIR, rel);
    if (file_exists(buf)) return buf;
    snprintf(buf, cap, "%s/share/gpt/%s", GPT_PREFIX, strncmp(rel, "models/", 7) == 0 ? rel + 7 : rel);
    if (file_exists(buf)) return buf;
    return NULL;
}

int cli_isatty(FILE *f)
{
#if defined(CLI_POSIX)
    return isatty(fileno(f));
#elif defined(_WIN32)
    return _isatty(_fileno(f));
#else
    (void)f;
    return 0;
#endif
}

double cli_now(void)
{
#if defined(CLI_POSIX)
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
#elif defined(_WIN32)
    LARGE_INTEGER f, c;
    QueryPerformanceFrequency(&f);
    QueryPerformanceCounter(&c);
    return (double)c.QuadPart / (double)f.QuadPart;
#else
    return (double)clock() / CLOCKS_PER_SEC;
#endif
}
