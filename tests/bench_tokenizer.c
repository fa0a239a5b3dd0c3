/*
 * bench_tokenizer.c - speed and size of the tokenizer (a benchmark, not a
 * test: it never asserts on time).
 *
 *   make build/tests/bench_tokenizer && build/tests/bench_tokenizer [--json] [--runs N]
 *
 * Run from the repository root. Reports, single-threaded:
 *   - load time of encoder.json + vocab.bpe and of the checkpoint section
 *     (gpt_tokenizer_deserialize), median of N loads;
 *   - memory: growth of the resident set per loaded tokenizer (Linux; "n/a"
 *     elsewhere) and the size of the serialized section;
 *   - encode MB/s (bytes of UTF-8 in per second) and decode MB/s (bytes out
 *     per second) of each corpus file, median of N runs, with its token count.
 * --json also prints the numbers as one JSON object on the last line.
 */
#if !defined(_WIN32)
#define _POSIX_C_SOURCE 200809L
#endif
#include "gpt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define VOCAB_PATH "models/tokenizer/encoder.json"
#define MERGES_PATH "models/tokenizer/vocab.bpe"
#define DATA "tests/data/tokenizer/"

static double now_s(void)
{
#if defined(CLOCK_MONOTONIC)
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) == 0) return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
#endif
    return (double)clock() / CLOCKS_PER_SEC;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static char *read_file(const char *path, size_t *len)
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
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) buf[n] = 0;
    *len = (size_t)n;
    return buf;
}

/* Resident set size in bytes (Linux), or -1. */
static long rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = -1, rss = -1;
    if (!f) return -1;
    if (fscanf(f, "%ld %ld", &pages, &rss) != 2) rss = -1;
    fclose(f);
    return rss < 0 ? -1 : rss * 4096;
}

typedef struct result {
    const char *name;
    size_t bytes;
    int tokens;
    double enc_mbs, dec_mbs;
} result;

int main(int argc, char **argv)
{
    static const char *files[] = {"en.txt", "multi.txt", "code.txt", "man.txt", "ws.txt"};
    enum { NFILES = sizeof files / sizeof *files };
    result res[NFILES];
    int json = 0, runs = 7, i, r;
    double *times, load_ms, deser_ms, mem_mb = -1;
    gpt_error err;
    gpt_tokenizer *tok, *extra[4];
    size_t sec_size;
    unsigned char *sec;
    long rss0, rss1;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) json = 1;
        else if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc) runs = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--json] [--runs N]\n", argv[0]);
            return 2;
        }
    }
    if (runs < 1) runs = 1;
    times = (double *)malloc((size_t)(runs > 9 ? runs : 9) * sizeof *times);
    if (!times) return 1;

    /* load time: median of 9 */
    for (r = 0; r < 9; r++) {
        double t0 = now_s();
        tok = gpt_tokenizer_load(VOCAB_PATH, MERGES_PATH, &err);
        times[r] = now_s() - t0;
        if (!tok) {
            fprintf(stderr, "bench_tokenizer: %s\n", err.message);
            return 1;
        }
        gpt_tokenizer_free(tok);
    }
    load_ms = median(times, 9) * 1e3;

    /* memory: resident growth per tokenizer, over 4 extra loads */
    tok = gpt_tokenizer_load(VOCAB_PATH, MERGES_PATH, &err);
    if (!tok) return 1;
    rss0 = rss_bytes();
    for (i = 0; i < 4; i++) extra[i] = gpt_tokenizer_load(VOCAB_PATH, MERGES_PATH, &err);
    rss1 = rss_bytes();
    if (rss0 >= 0 && rss1 >= 0) mem_mb = (double)(rss1 - rss0) / 4 / 1e6;
    for (i = 0; i < 4; i++) gpt_tokenizer_free(extra[i]);

    /* the checkpoint path */
    sec_size = gpt_tokenizer_serialize(tok, NULL, 0);
    sec = (unsigned char *)malloc(sec_size);
    if (!sec) return 1;
    gpt_tokenizer_serialize(tok, sec, sec_size);
    for (r = 0; r < 9; r++) {
        double t0 = now_s();
        gpt_tokenizer *t2 = gpt_tokenizer_deserialize(sec, sec_size, &err);
        times[r] = now_s() - t0;
        if (!t2) {
            fprintf(stderr, "bench_tokenizer: %s\n", err.message);
            return 1;
        }
        gpt_tokenizer_free(t2);
    }
    deser_ms = median(times, 9) * 1e3;

    printf("GPT-2 tokenizer, single thread, median of %d runs\n", runs);
    printf("load encoder.json + vocab.bpe: %.1f ms   deserialize section: %.1f ms (median of 9)\n", load_ms,
           deser_ms);
    if (mem_mb >= 0) printf("memory per tokenizer: %.2f MB resident   ", mem_mb);
    else printf("memory per tokenizer: n/a   ");
    printf("serialized section: %.2f MB\n", (double)sec_size / 1e6);
    printf("%-10s %10s %10s %12s %12s\n", "file", "bytes", "tokens", "encode MB/s", "decode MB/s");

    for (i = 0; i < NFILES; i++) {
        char path[256];
        size_t len = 0;
        char *text, *out;
        int *ids, n, m;
        snprintf(path, sizeof path, DATA "%s", files[i]);
        res[i].name = files[i];
        res[i].bytes = 0;
        res[i].tokens = -1;
        res[i].enc_mbs = res[i].dec_mbs = 0;
        text = read_file(path, &len);
        if (!text) {
            fprintf(stderr, "bench_tokenizer: cannot read %s\n", path);
            continue;
        }
        n = gpt_tokenize(tok, text, len, NULL, 0);
        ids = (int *)malloc(((size_t)(n > 0 ? n : 0) + 1) * sizeof *ids);
        out = (char *)malloc(len + 1);
        if (n < 0 || !ids || !out) return 1;
        for (r = 0; r < runs; r++) {
            double t0 = now_s();
            m = gpt_tokenize(tok, text, len, ids, n);
            times[r] = now_s() - t0;
            if (m != n) return 1;
        }
        res[i].enc_mbs = (double)len / median(times, runs) / 1e6;
        for (r = 0; r < runs; r++) {
            double t0 = now_s();
            m = gpt_detokenize(tok, ids, n, out, len + 1);
            times[r] = now_s() - t0;
            if (m != (int)len || memcmp(out, text, len) != 0) {
                fprintf(stderr, "bench_tokenizer: %s does not round-trip\n", files[i]);
                return 1;
            }
        }
        res[i].dec_mbs = (double)len / median(times, runs) / 1e6;
        res[i].bytes = len;
        res[i].tokens = n;
        printf("%-10s %10lu %10d %12.1f %12.1f\n", files[i], (unsigned long)len, n, res[i].enc_mbs,
               res[i].dec_mbs);
        free(text);
        free(ids);
        free(out);
    }

    if (json) {
        printf("{\"runs\": %d, \"load_ms\": %.2f, \"deserialize_ms\": %.2f, ", runs, load_ms, deser_ms);
        if (mem_mb >= 0) printf("\"memory_mb\": %.3f, ", mem_mb);
        else printf("\"memory_mb\": null, ");
        printf("\"section_bytes\": %lu, \"files\": {", (unsigned long)sec_size);
        for (i = 0; i < NFILES; i++)
            printf("%s\"%s\": {\"bytes\": %lu, \"tokens\": %d, \"encode_mb_s\": %.2f, \"decode_mb_s\": %.2f}",
                   i ? ", " : "", res[i].name, (unsigned long)res[i].bytes, res[i].tokens, res[i].enc_mbs,
                   res[i].dec_mbs);
        printf("}}\n");
    }
    gpt_tokenizer_free(tok);
    free(sec);
    free(times);
    return 0;
}
