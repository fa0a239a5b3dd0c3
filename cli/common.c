/* common.c - helpers shared by the parts of the `gpt` command: errors,
 * reading inputs safely, standard streams, data files, clocks. */
#if (defined(__unix__) || defined(__APPLE__)) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__unix__) || defined(__APPLE__)
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>
#define CLI_POSIX 1
#elif defined(_WIN32)
#include <fcntl.h>
#include <io.h>
#include <sys/stat.h>
#include <windows.h>
#endif

#ifndef GPT_SOURCE_DIR
#define GPT_SOURCE_DIR "."
#endif
#ifndef GPT_PREFIX
#define GPT_PREFIX "/usr/local"
#endif

/* "256 MiB" for messages. */
static const char *size_text(uint64_t n, char *buf, size_t cap)
{
    if (n >= ((uint64_t)1 << 20) && n % ((uint64_t)1 << 20) == 0)
        snprintf(buf, cap, "%llu MiB", (unsigned long long)(n >> 20));
    else snprintf(buf, cap, "%llu bytes", (unsigned long long)n);
    return buf;
}

char *cli_read_stream(FILE *f, size_t max_size, size_t *len, gpt_error *err)
{
    size_t cap = 1 << 16, n = 0, got;
    char *buf = (char *)gpt__alloc(cap + 1), *grown, lim[32];
    if (!buf) {
        gpt__set_error(err, GPT_ERR_OUT_OF_MEMORY, "out of memory reading input");
        return NULL;
    }
    /* reads at most max_size + 1 bytes: one more than allowed is the error */
    while ((got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n > max_size) {
            gpt__free(buf);
            gpt__set_error(err, GPT_ERR_IO, "more than %s of input (the limit; docs/SAFETY.md)",
                     size_text(max_size, lim, sizeof lim));
            return NULL;
        }
        if (n == cap) {
            size_t want = cap > max_size / 2 ? max_size + 1 : cap * 2;
            grown = (char *)gpt__realloc(buf, want + 1);
            if (!grown) {
                gpt__free(buf);
                gpt__set_error(err, GPT_ERR_OUT_OF_MEMORY, "out of memory reading input");
                return NULL;
            }
            buf = grown;
            cap = want;
        }
    }
    if (ferror(f)) {
        gpt__free(buf);
        gpt__set_error(err, GPT_ERR_IO, "read error: %s", strerror(errno));
        return NULL;
    }
    buf[n] = 0;
    *len = n;
    return buf;
}

gpt_status cli_check_regular(const char *path, uint64_t max_size, gpt_error *err)
{
#if defined(CLI_POSIX) || defined(_WIN32)
#if defined(CLI_POSIX)
    struct stat st;
    if (stat(path, &st) != 0) return gpt__set_error(err, GPT_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    int is_regular = S_ISREG(st.st_mode);
#else
    struct _stat64 st;
    if (_stat64(path, &st) != 0) return gpt__set_error(err, GPT_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    int is_regular = (st.st_mode & _S_IFMT) == _S_IFREG;
#endif
    char lim[32];
    if (!is_regular)
        return gpt__set_error(err, GPT_ERR_IO, "%s is %s, not a regular file", path,
                              gpt__file_kind((unsigned long)st.st_mode));
    if (max_size && (uint64_t)st.st_size > max_size)
        return gpt__set_error(err, GPT_ERR_IO, "%s is %llu bytes, more than the %s this input may have (docs/SAFETY.md)",
                              path, (unsigned long long)st.st_size, size_text(max_size, lim, sizeof lim));
#else
    (void)path;
    (void)max_size;
    (void)err;
#endif
    return GPT_OK;
}

char *cli_read_file(const char *path, size_t max_size, size_t *len, gpt_error *err)
{
    FILE *f = gpt__open_regular(path, max_size, NULL, err);
    char *buf;
    gpt_error e;
    if (!f) return NULL;
    buf = cli_read_stream(f, max_size, len, &e);
    fclose(f);
    if (!buf) gpt__set_error(err, e.status, "%s: %s", path, e.message);
    return buf;
}

char *cli_read_input(const char *path, size_t max_size, size_t *len, gpt_error *err)
{
    char *buf;
    gpt_error e;
    if (strcmp(path, "-") != 0) return cli_read_file(path, max_size, len, err);
    buf = cli_read_stream(stdin, max_size, len, &e);
    if (!buf) gpt__set_error(err, e.status, "stdin: %s", e.message);
    return buf;
}

/* ------------------------------------------------------------------------ */
/* Standard streams                                                         */

void cli_guard_std_streams(void)
{
#if defined(CLI_POSIX)
    int fd;
    for (fd = 0; fd <= 2; fd++) {
        if (fcntl(fd, F_GETFD) != -1 || errno != EBADF) continue;
        /* reading what should be written and the reverse both fail */
        int got = open("/dev/null", fd == 0 ? O_WRONLY : O_RDONLY);
        if (got >= 0 && got != fd) {
            dup2(got, fd);
            close(got);
        }
    }
#endif
}

static int stdout_errno, stdout_reported;

void cli_stdout_note_errno(int e)
{
    if (!stdout_errno) stdout_errno = e;
}

int cli_stdout_failed(const char *cmd)
{
    int e = 0;
    errno = 0;
    if (fflush(stdout) != 0) e = errno;
    if (!e && !ferror(stdout)) return 0;
    if (!e) e = stdout_errno;
    if (!stdout_reported) {
        stdout_reported = 1;
        fprintf(stderr, "gpt %s: cannot write to stdout: %s\n", cmd, e ? strerror(e) : "write error");
    }
    return 1;
}

void cli_binary_stdio(void)
{
#if defined(_WIN32)
    _setmode(_fileno(stdout), _O_BINARY);
    _setmode(_fileno(stdin), _O_BINARY);
#endif
}

/* Exists as a regular file (checked without opening it). */
static int file_exists(const char *path) { return cli_check_regular(path, 0, NULL) == GPT_OK; }

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
