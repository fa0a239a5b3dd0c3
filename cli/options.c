/* options.c - the commands' option parser and --help, random seeds, JSON
 * strings, and model loading. */
#if (defined(__unix__) || defined(__APPLE__)) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif
#if defined(_WIN32) && !defined(_CRT_RAND_S)
#define _CRT_RAND_S /* rand_s in stdlib.h */
#endif
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>
#elif defined(_WIN32)
#include <process.h>
#endif

static int is_end(const cli_option *o) { return o->kind == CLI_SECTION && o->help == NULL; }

int usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "gpt %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(see `gpt %s --help`)\n", cmd);
    return 2;
}

/* ------------------------------------------------------------------------ */
/* --help                                                                   */

/* "  -m, --model PATH" or "      --temp T" */
static void left_column(const cli_option *o, char *buf, size_t cap)
{
    const char *sp = o->arg ? " " : "", *arg = o->arg ? o->arg : "";
    if (o->short_name) snprintf(buf, cap, "  -%c, --%s%s%s", o->short_name, o->name, sp, arg);
    else snprintf(buf, cap, "      --%s%s%s", o->name, sp, arg);
}

void cli_help(const cli_command *cmd, FILE *f)
{
    const cli_option *o;
    char left[128];
    size_t width = 0, col;
    for (o = cmd->options; !is_end(o); o++) {
        if (o->kind == CLI_SECTION) continue;
        left_column(o, left, sizeof left);
        if (strlen(left) > width) width = strlen(left);
    }
    col = (width > 26 ? 26 : width) + 2;
    fputs(cmd->intro, f);
    for (o = cmd->options; !is_end(o); o++) {
        const char *h = o->help, *nl;
        if (o->kind == CLI_SECTION) {
            fprintf(f, "\n%s\n", h);
            continue;
        }
        left_column(o, left, sizeof left);
        fputs(left, f);
        if (strlen(left) + 2 > col) fprintf(f, "\n%*s", (int)col, "");
        else fprintf(f, "%*s", (int)(col - strlen(left)), "");
        while ((nl = strchr(h, '\n')) != NULL) {
            fprintf(f, "%.*s\n%*s", (int)(nl - h), h, (int)col, "");
            h = nl + 1;
        }
        fprintf(f, "%s\n", h);
    }
    if (cmd->epilog) fputs(cmd->epilog, f);
}

/* ------------------------------------------------------------------------ */
/* Parsing                                                                  */

/* How the option was written, for messages: "--top-k", or "-t (--threads)". */
static const char *label(const cli_option *o, int as_short, char *buf, size_t cap)
{
    if (as_short) snprintf(buf, cap, "-%c (--%s)", o->short_name, o->name);
    else snprintf(buf, cap, "--%s", o->name);
    return buf;
}

/* "auto, f16 or f32" from "auto|f16|f32". */
static void list_choices(const char *choices, char *buf, size_t cap)
{
    size_t n = 0, k = 0, i;
    const char *p;
    for (p = choices; *p; p++) n += *p == '|';
    buf[0] = 0;
    for (p = choices, i = 0; i <= n; i++) {
        size_t len = strcspn(p, "|");
        k += (size_t)snprintf(buf + k, k < cap ? cap - k : 0, "%s%.*s", i == 0 ? "" : i == n ? " or " : ", ", (int)len,
                              p);
        if (k >= cap) return;
        p += len + (p[len] == '|');
    }
}

static int parse_value(const char *cmd, const cli_option *o, const char *opt, const char *v)
{
    char *end;
    switch (o->kind) {
    case CLI_INT: {
        long x;
        errno = 0;
        x = strtol(v, &end, 10);
        if (errno || end == v || *end || (double)x < o->lo || (double)x > o->hi)
            return usage_error(cmd, "%s expects an integer in %.0f .. %.0f, not \"%s\"", opt, o->lo, o->hi, v);
        *(int *)o->value = (int)x;
        return 0;
    }
    case CLI_FLOAT: {
        double x;
        errno = 0;
        x = strtod(v, &end);
        if (errno || end == v || *end || !(x >= o->lo && x <= o->hi))
            return usage_error(cmd, "%s expects a number in %g .. %g, not \"%s\"", opt, o->lo, o->hi, v);
        *(float *)o->value = (float)x;
        return 0;
    }
    case CLI_U64: {
        unsigned long long x;
        errno = 0;
        x = strtoull(v, &end, 10);
        if (errno || end == v || *end || !(v[0] >= '0' && v[0] <= '9'))
            return usage_error(cmd, "%s expects an integer in 0 .. 18446744073709551615, not \"%s\"", opt, v);
        *(uint64_t *)o->value = (uint64_t)x;
        return 0;
    }
    case CLI_CHOICE: {
        const char *p = o->choices;
        int i = 0;
        char all[256];
        while (*p) {
            size_t len = strcspn(p, "|");
            if (strlen(v) == len && strncmp(p, v, len) == 0) {
                *(int *)o->value = i;
                return 0;
            }
            p += len + (p[len] == '|');
            i++;
        }
        list_choices(o->choices, all, sizeof all);
        return usage_error(cmd, "%s expects %s, not \"%s\"", opt, all, v);
    }
    case CLI_SEED: {
        unsigned long long x;
        cli_seed *seed = (cli_seed *)o->value;
        if (!strcmp(v, "-1")) {
            seed->value = cli_random_seed();
            seed->random = 1;
            return 0;
        }
        errno = 0;
        x = strtoull(v, &end, 10);
        if (errno || end == v || *end || !(v[0] >= '0' && v[0] <= '9'))
            return usage_error(cmd, "%s expects an integer in 0 .. 18446744073709551615 or -1 (a random seed), not "
                               "\"%s\"", opt, v);
        seed->value = (uint64_t)x;
        seed->random = 0;
        return 0;
    }
    case CLI_STRING:
    case CLI_LIST:
        if ((o->flags & CLI_NONEMPTY) && !v[0]) return usage_error(cmd, "%s needs a non-empty value", opt);
        if (o->kind == CLI_STRING) {
            *(const char **)o->value = v;
        } else {
            cli_list *l = (cli_list *)o->value;
            const char **grown = (const char **)gpt__realloc((void *)l->v, sizeof(char *) * (size_t)(l->n + 1));
            if (!grown) {
                fprintf(stderr, "gpt %s: out of memory\n", cmd);
                return 1;
            }
            l->v = grown;
            l->v[l->n++] = v;
        }
        return 0;
    default:
        return 0;
    }
}

int cli_parse(const cli_command *cmd, int argc, char **argv)
{
    int i, rest = 0;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *eq = NULL, *v;
        const cli_option *o;
        int as_short = 0, rc;
        char opt[96];
        if (rest || a[0] != '-' || a[1] == 0)
            return usage_error(cmd->name, "unexpected argument \"%s\" (gpt %s takes options only)", a, cmd->name);
        if (!strcmp(a, "--")) {
            rest = 1;
            continue;
        }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            cli_help(cmd, stdout);
            return 0;
        }
        if (a[1] == '-') {
            size_t len;
            eq = strchr(a + 2, '=');
            len = eq ? (size_t)(eq - (a + 2)) : strlen(a + 2);
            for (o = cmd->options; !is_end(o); o++)
                if (o->kind != CLI_SECTION && strlen(o->name) == len && !strncmp(o->name, a + 2, len)) break;
        } else {
            as_short = 1;
            for (o = cmd->options; !is_end(o); o++)
                if (o->kind != CLI_SECTION && o->short_name && o->short_name == a[1] && a[2] == 0) break;
        }
        if (is_end(o)) {
            if (eq) return usage_error(cmd->name, "unknown option \"%.*s\"", (int)(eq - a), a);
            return usage_error(cmd->name, "unknown option \"%s\"", a);
        }
        label(o, as_short, opt, sizeof opt);
        if (o->seen) *o->seen = 1;
        if (o->kind == CLI_FLAG) {
            if (eq) return usage_error(cmd->name, "%s takes no value (given \"%s\")", opt, eq + 1);
            *(int *)o->value = o->set;
            continue;
        }
        if (eq) v = eq + 1;
        else if (i + 1 < argc) v = argv[++i];
        else return usage_error(cmd->name, "option %s needs a value%s%s", opt, o->arg ? " " : "", o->arg ? o->arg : "");
        if ((rc = parse_value(cmd->name, o, opt, v)) != 0) return rc;
    }
    return -1;
}

/* ------------------------------------------------------------------------ */
/* Random seeds                                                             */

/* SplitMix64's finalizer: spreads the bits of a weak source. */
static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

uint64_t cli_random_seed(void)
{
    const uint64_t mask = ((uint64_t)1 << 53) - 1;
    uint64_t x = 0;
    int got = 0;
#if defined(__unix__) || defined(__APPLE__)
    FILE *f = fopen("/dev/urandom", "rb");
    if (f) {
        got = fread(&x, sizeof x, 1, f) == 1;
        fclose(f);
    }
#elif defined(_WIN32)
    unsigned int a, b;
    if (rand_s(&a) == 0 && rand_s(&b) == 0) {
        x = (uint64_t)a << 32 | b;
        got = 1;
    }
#endif
    if (!got) { /* the time, the processor clock, the process and a stack address */
        uint64_t pid = 0;
        int local = 0;
#if defined(__unix__) || defined(__APPLE__)
        pid = (uint64_t)getpid();
#elif defined(_WIN32)
        pid = (uint64_t)_getpid();
#endif
        x = mix64((uint64_t)time(NULL) ^ mix64((uint64_t)clock() + 0x9e3779b97f4a7c15ULL) ^ mix64(pid << 17) ^
                  mix64((uint64_t)(uintptr_t)&local));
    }
    return mix64(x) & mask;
}

/* ------------------------------------------------------------------------ */
/* JSON strings                                                             */

/* Length of the well-formed UTF-8 character at s[0 .. n) (Unicode's Table
 * 3-7), or 0; *sub is then the length of the maximal subpart that starts
 * there (at least 1). */
static size_t utf8_char(const unsigned char *s, size_t n, size_t *sub)
{
    unsigned lo, hi;
    size_t want = gpt__utf8_seq_len(s[0], &lo, &hi), i;
    *sub = 1;
    if (s[0] < 0x80) return 1;
    if (want == 0) return 0;
    for (i = 1; i < want; i++) {
        unsigned b = i < n ? s[i] : 0x100;
        if (i == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF)) {
            *sub = i;
            return 0;
        }
    }
    return want;
}

int cli_utf8_valid(const char *text, size_t n)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t i = 0, len, sub;
    while (i < n) {
        if ((len = utf8_char(s + i, n - i, &sub)) == 0) return 0;
        i += len;
    }
    return 1;
}

size_t cli_json_escape(const char *text, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)text;
    size_t i = 0, o = 0, len, sub;
    while (i < n) {
        unsigned c = s[i];
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
            i++;
        } else if (c < 0x20) {
            const char *e = c == '\n'   ? "\\n"
                            : c == '\t' ? "\\t"
                            : c == '\r' ? "\\r"
                            : c == '\b' ? "\\b"
                            : c == '\f' ? "\\f"
                                        : NULL;
            if (e) {
                memcpy(out + o, e, 2);
                o += 2;
            } else {
                memcpy(out + o, "\\u00", 4);
                out[o + 4] = hex[c >> 4];
                out[o + 5] = hex[c & 15];
                o += 6;
            }
            i++;
        } else if ((len = utf8_char(s + i, n - i, &sub)) > 0) {
            memcpy(out + o, s + i, len);
            o += len;
            i += len;
        } else {
            memcpy(out + o, "\\ufffd", 6);
            o += 6;
            i += sub;
        }
    }
    return o;
}

/* ------------------------------------------------------------------------ */
/* Models                                                                   */

gpt_model *cli_load_model(const char *path, int no_mmap, const char **used)
{
    static char found[CLI_PATH_MAX];
    gpt_error err;
    gpt_load_params lp;
    gpt_model *m;
    if (!path) {
        path = cli_data_path("models/demo.bin", found, sizeof found);
        if (!path) {
            fprintf(stderr, "gpt: no model given (-m MODEL) and the demo model models/demo.bin was not found\n");
            return NULL;
        }
    }
    if (used) *used = path;
    if (cli_check_regular(path, 0, &err) != GPT_OK) {
        fprintf(stderr, "gpt: cannot load model: %s\n", err.message);
        return NULL;
    }
    memset(&lp, 0, sizeof lp);
    lp.no_mmap = no_mmap;
    m = gpt_model_load_ex(path, &lp, &err);
    if (!m) fprintf(stderr, "gpt: cannot load model: %s\n", err.message);
    return m;
}
