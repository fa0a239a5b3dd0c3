/*
 * test.h - the small test framework of gpt.c's test programs.
 *
 * A test program defines functions with TEST(name), calls RUN(name) for each
 * from main(), and returns test_summary(). Each test prints one line:
 *   PASS name
 *   FAIL name: file:line: what failed
 *   SKIP name: why
 * tests/run.sh counts these lines across all programs. Test programs run
 * with the repository root as the working directory.
 */
#ifndef GPT_TEST_H
#define GPT_TEST_H

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__)
#define TEST_MAYBE_UNUSED __attribute__((unused))
#else
#define TEST_MAYBE_UNUSED
#endif

static int test_n_pass, test_n_fail, test_n_skip;
static int test_cur_failed, test_cur_skipped;
static const char *test_cur_name;

static void test_fail_at(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    if (test_cur_failed) return; /* first failure of a test is the one reported */
    test_cur_failed = 1;
    printf("FAIL %s: %s:%d: ", test_cur_name, file, line);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
}

TEST_MAYBE_UNUSED static void test_skip(const char *fmt, ...)
{
    va_list ap;
    if (test_cur_skipped || test_cur_failed) return;
    test_cur_skipped = 1;
    printf("SKIP %s: ", test_cur_name);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
}

#define TEST(name) static void name(void)

/* Stops the current test when cond is false. */
#define CHECK(cond)                                                          \
    do {                                                                     \
        if (!(cond)) {                                                       \
            test_fail_at(__FILE__, __LINE__, "%s", #cond);                   \
            return;                                                          \
        }                                                                    \
    } while (0)

/* Like CHECK, with a printf-style explanation. */
#define CHECKF(cond, ...)                                                    \
    do {                                                                     \
        if (!(cond)) {                                                       \
            test_fail_at(__FILE__, __LINE__, __VA_ARGS__);                   \
            return;                                                          \
        }                                                                    \
    } while (0)

/* Records a failure and goes on (for loops that should report one case). */
#define EXPECTF(cond, ...)                                                   \
    do {                                                                     \
        if (!(cond)) test_fail_at(__FILE__, __LINE__, __VA_ARGS__);          \
    } while (0)

#define SKIP(...)                                                            \
    do {                                                                     \
        test_skip(__VA_ARGS__);                                              \
        return;                                                              \
    } while (0)

#define RUN(name)                                                            \
    do {                                                                     \
        test_cur_name = #name;                                               \
        test_cur_failed = 0;                                                 \
        test_cur_skipped = 0;                                                \
        name();                                                              \
        if (test_cur_failed) test_n_fail++;                                  \
        else if (test_cur_skipped) test_n_skip++;                            \
        else {                                                               \
            test_n_pass++;                                                   \
            printf("PASS %s\n", #name);                                      \
            fflush(stdout);                                                  \
        }                                                                    \
    } while (0)

static int test_summary(void)
{
    return test_n_fail ? 1 : 0;
}

/* The largest difference between n values and their reference, relative
 * to the reference where it is above 1 in magnitude, absolute below. */
TEST_MAYBE_UNUSED static double max_rel_diff(const float *ref, const float *got, size_t n)
{
    double worst = 0;
    size_t i;
    for (i = 0; i < n; i++) {
        double d = fabs((double)got[i] - ref[i]) / (fabs((double)ref[i]) > 1.0 ? fabs((double)ref[i]) : 1.0);
        if (!(d <= worst)) worst = d; /* a NaN is the worst */
    }
    return worst;
}

/* Reads a whole file; returns NULL on failure. *len gets the size. The buffer
 * has one extra NUL byte after the data. */
TEST_MAYBE_UNUSED static char *test_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    long n;
    if (!f) return NULL;
    if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return NULL;
    }
    buf = (char *)malloc((size_t)n + 1);
    if (!buf) {
        fclose(f);
        return NULL;
    }
    if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        fclose(f);
        return NULL;
    }
    fclose(f);
    buf[n] = 0;
    if (len) *len = (size_t)n;
    return buf;
}

#endif
