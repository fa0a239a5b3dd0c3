/* options.c - option parsing and model loading shared by the commands. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "common.h"

int is_help(const char *arg) { return strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0; }

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

int opt_value(int argc, char **argv, int *i, const char **out)
{
    if (*i + 1 >= argc) {
        fprintf(stderr, "gpt %s: option %s needs a value\n", argv[0], argv[*i]);
        return 1;
    }
    *out = argv[++*i];
    return 0;
}

int opt_int(int argc, char **argv, int *i, int lo, int hi, int *out)
{
    const char *v, *opt = argv[*i];
    char *end;
    long x;
    if (opt_value(argc, argv, i, &v)) return 1;
    errno = 0;
    x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi) {
        fprintf(stderr, "gpt %s: %s expects an integer in %d .. %d, not \"%s\"\n", argv[0], opt, lo, hi, v);
        return 1;
    }
    *out = (int)x;
    return 0;
}

int opt_float(int argc, char **argv, int *i, double lo, double hi, float *out)
{
    const char *v, *opt = argv[*i];
    char *end;
    double x;
    if (opt_value(argc, argv, i, &v)) return 1;
    errno = 0;
    x = strtod(v, &end);
    if (errno || end == v || *end || !(x >= lo && x <= hi)) {
        fprintf(stderr, "gpt %s: %s expects a number in %g .. %g, not \"%s\"\n", argv[0], opt, lo, hi, v);
        return 1;
    }
    *out = (float)x;
    return 0;
}

int opt_u64(int argc, char **argv, int *i, uint64_t *out)
{
    const char *v, *opt = argv[*i];
    char *end;
    unsigned long long x;
    if (opt_value(argc, argv, i, &v)) return 1;
    errno = 0;
    x = strtoull(v, &end, 10);
    if (errno || end == v || *end || v[0] == '-') {
        fprintf(stderr, "gpt %s: %s expects a non-negative integer, not \"%s\"\n", argv[0], opt, v);
        return 1;
    }
    *out = (uint64_t)x;
    return 0;
}

/* --kv TYPE; --kv-f16 stays as a synonym of --kv f16. */
int opt_kv(int argc, char **argv, int *i, int *out)
{
    const char *v;
    if (!strcmp(argv[*i], "--kv-f16")) {
        *out = GPT_KV_F16;
        return 0;
    }
    if (opt_value(argc, argv, i, &v)) return 1;
    if (!strcmp(v, "auto")) *out = GPT_KV_AUTO;
    else if (!strcmp(v, "f16")) *out = GPT_KV_F16;
    else if (!strcmp(v, "f32")) *out = GPT_KV_F32;
    else {
        fprintf(stderr, "gpt %s: --kv expects auto, f16 or f32, not \"%s\"\n", argv[0], v);
        return 1;
    }
    return 0;
}

gpt_model *cli_load_model(const char *path)
{
    gpt_error err;
    gpt_model *m;
    char found[CLI_PATH_MAX];
    if (!path) {
        path = cli_data_path("models/demo.bin", found, sizeof found);
        if (!path) {
            fprintf(stderr, "gpt: no model given (-m MODEL) and the demo model models/demo.bin was not found\n");
            return NULL;
        }
    }
    m = gpt_model_load(path, &err);
    if (!m) fprintf(stderr, "gpt: cannot load model: %s\n", err.message);
    return m;
}
