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

/* exe_dir/../rel (a build tree: build/gpt next to models/), then
 * exe_dir/../share/gpt/name (an installation, wherever it was moved). */
static const char *near_executable(const char *exe_dir, const char *rel, char *buf, size_t cap)
{
    const char *name = strncmp(rel, "models/", 7) == 0 ? rel + 7 : rel;
    snprintf(buf, cap, "%s/../%s", exe_dir, rel);
    if (file_exists(buf)) return buf;
    snprintf(buf, cap, "%s/../share/gpt/%s", exe_dir, name);
    if (file_exists(buf)) return buf;
    return NULL;
}

const char *cli_data_path(const char *rel, char *buf, size_t cap)
{
    char exe[4096];
    int have_exe = 0;
#if defined(__linux__)
    {
        ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
        if (n > 0) {
            exe[n] = 0;
            have_exe = 1;
        }
    }
#elif defined(_WIN32)
    {
        DWORD n = GetModuleFileNameA(NULL, exe, sizeof exe);
        char *p;
        if (n > 0 && n < sizeof exe) {
            for (p = exe; *p; p++)
                if (*p == '\\') *p = '/';
            have_exe = 1;
        }
    }
#endif
    if (have_exe) {
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = 0;
            if (near_executable(exe, rel, buf, cap)) return buf;
        }
    }
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
