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
    char *buf = (char *)malloc(cap + 1), *grown, lim[32];
    if (!buf) {
        cli_fail(err, GPT_ERR_OUT_OF_MEMORY, "out of memory reading input");
        return NULL;
    }
    /* reads at most max_size + 1 bytes: one more than allowed is the error */
    while ((got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n > max_size) {
            free(buf);
            cli_fail(err, GPT_ERR_IO, "more than %s of input (the limit; docs/SAFETY.md)",
                     size_text(max_size, lim, sizeof lim));
            return NULL;
        }
        if (n == cap) {
            size_t want = cap > max_size / 2 ? max_size + 1 : cap * 2;
            grown = (char *)realloc(buf, want + 1);
            if (!grown) {
                free(buf);
                cli_fail(err, GPT_ERR_OUT_OF_MEMORY, "out of memory reading input");
                return NULL;
            }
            buf = grown;
            cap = want;
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

/* What a file that is not a regular file is, for messages. */
#if defined(CLI_POSIX)
static const char *kind_of(mode_t m)
{
    if (S_ISDIR(m)) return "a directory";
    if (S_ISFIFO(m)) return "a FIFO (named pipe)";
    if (S_ISCHR(m)) return "a character device";
    if (S_ISBLK(m)) return "a block device";
#if defined(S_ISSOCK)
    if (S_ISSOCK(m)) return "a socket";
#endif
    return "a special file";
}
#define CLI_STAT struct stat
#define CLI_IS_REG(m) S_ISREG(m)
#define cli_stat stat
#define cli_fstat fstat
#elif defined(_WIN32)
static const char *kind_of(unsigned m)
{
    if ((m & _S_IFMT) == _S_IFDIR) return "a directory";
    if ((m & _S_IFMT) == _S_IFCHR) return "a character device";
    return "a special file";
}
#define CLI_STAT struct _stat64
#define CLI_IS_REG(m) (((m)&_S_IFMT) == _S_IFREG)
#define cli_stat _stat64
#define cli_fstat _fstat64
#endif

const char *cli_kind_of_mode(unsigned long mode)
{
#if defined(CLI_STAT)
    if (CLI_IS_REG(mode)) return "a regular file";
    return kind_of(mode);
#else
    (void)mode;
    return "not a regular file";
#endif
}

#if defined(CLI_STAT)
static gpt_status check_stat(const char *path, const CLI_STAT *st, uint64_t max_size, gpt_error *err)
{
    char lim[32];
    if (!CLI_IS_REG(st->st_mode))
        return cli_fail(err, GPT_ERR_IO, "%s is %s, not a regular file", path, kind_of(st->st_mode));
    if (max_size && (uint64_t)st->st_size > max_size)
        return cli_fail(err, GPT_ERR_IO, "%s is %llu bytes, more than the %s this input may have (docs/SAFETY.md)",
                        path, (unsigned long long)st->st_size, size_text(max_size, lim, sizeof lim));
    return GPT_OK;
}
#endif

gpt_status cli_check_regular(const char *path, uint64_t max_size, gpt_error *err)
{
#if defined(CLI_STAT)
    CLI_STAT st;
    if (cli_stat(path, &st) != 0) return cli_fail(err, GPT_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    return check_stat(path, &st, max_size, err);
#else
    (void)path;
    (void)max_size;
    (void)err;
    return GPT_OK;
#endif
}

FILE *cli_open_regular(const char *path, uint64_t max_size, uint64_t *size, gpt_error *err)
{
    FILE *f = NULL;
#if defined(CLI_POSIX)
    /* Non-blocking, so that opening a FIFO that replaced the file since it
     * was checked does not wait for a writer; then checked on the open file. */
    CLI_STAT st;
    int fd = open(path, O_RDONLY | O_NONBLOCK);
    if (fd < 0) {
        cli_fail(err, GPT_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    if (fstat(fd, &st) != 0) {
        cli_fail(err, GPT_ERR_IO, "%s: cannot find its size: %s", path, strerror(errno));
        close(fd);
        return NULL;
    }
    if (check_stat(path, &st, max_size, err) != GPT_OK) {
        close(fd);
        return NULL;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    f = fdopen(fd, "rb");
    if (!f) {
        cli_fail(err, GPT_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        close(fd);
        return NULL;
    }
    if (size) *size = (uint64_t)st.st_size;
#else
    if (cli_check_regular(path, max_size, err) != GPT_OK) return NULL;
    f = fopen(path, "rb");
    if (!f) {
        cli_fail(err, GPT_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
#if defined(CLI_STAT)
    {
        CLI_STAT st;
        if (cli_fstat(_fileno(f), &st) != 0 || check_stat(path, &st, max_size, err) != GPT_OK) {
            fclose(f);
            return NULL;
        }
        if (size) *size = (uint64_t)st.st_size;
    }
#else
    if (size) *size = 0;
#endif
#endif
    return f;
}

char *cli_read_file(const char *path, size_t max_size, size_t *len, gpt_error *err)
{
    FILE *f = cli_open_regular(path, max_size, NULL, err);
    char *buf;
    gpt_error e;
    if (!f) return NULL;
    buf = cli_read_stream(f, max_size, len, &e);
    fclose(f);
    if (!buf) cli_fail(err, e.status, "%s: %s", path, e.message);
    return buf;
}

char *cli_read_input(const char *path, size_t max_size, size_t *len, gpt_error *err)
{
    char *buf;
    gpt_error e;
    if (strcmp(path, "-") != 0) return cli_read_file(path, max_size, len, err);
    buf = cli_read_stream(stdin, max_size, len, &e);
    if (!buf) cli_fail(err, e.status, "stdin: %s", e.message);
    return buf;
}

gpt_tokenizer *cli_tokenizer_load(const char *vocab_path, const char *merges_path, gpt_error *err)
{
    if (cli_check_regular(vocab_path, CLI_MAX_JSON, err) != GPT_OK ||
        cli_check_regular(merges_path, CLI_MAX_JSON, err) != GPT_OK)
        return NULL;
    return gpt_tokenizer_load(vocab_path, merges_path, err);
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
