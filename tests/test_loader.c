/*
 * test_loader.c - checkpoint loading: files, buffers, and every kind of
 * damage the format allows, each refused with a status and a message that
 * names the problem.
 */
#if (defined(__unix__) || defined(__APPLE__)) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L /* mkfifo, alarm */
#endif
#include "model_util.h"
#include "test.h"
#include "util.h"

#include <errno.h>
#if defined(__unix__) || defined(__APPLE__)
#include <sys/stat.h>
#include <unistd.h>
#endif

static unsigned char *good;
static size_t good_len;

/* A copy of the good checkpoint in a 64-aligned buffer (loaded in place). */
static unsigned char *copy_good(void **raw)
{
    unsigned char *p = (unsigned char *)malloc(good_len + 64);
    *raw = p;
    if (!p) return NULL;
    p += (64 - (size_t)p % 64) % 64;
    memcpy(p, good, good_len);
    return p;
}

/* Loads buf[0..len) and expects failure with status and a message that
 * contains `needle`; returns 1 if so. */
static int refused(const unsigned char *buf, size_t len, gpt_status status, const char *needle, const char *what)
{
    gpt_error err;
    gpt_model *m = gpt_model_load_memory(buf, len, &err);
    if (m) {
        printf("# %s: loaded, expected %s\n", what, gpt_status_name(status));
        gpt_model_free(m);
        return 0;
    }
    if (err.status != status || !err.message[0] || (needle && !strstr(err.message, needle))) {
        printf("# %s: got %s \"%s\", expected %s with \"%s\"\n", what, gpt_status_name(err.status), err.message,
               gpt_status_name(status), needle ? needle : "");
        return 0;
    }
    return 1;
}

#define DIR_AT(k) (128 + 32 * (size_t)(k))

TEST(good_checkpoint_loads_from_memory_and_file)
{
    gpt_error err;
    void *raw;
    unsigned char *buf = copy_good(&raw);
    gpt_model *m;
    gpt_config c;
    char path[512];
    FILE *f;
    const char *build = getenv("BUILD");
    CHECK(buf != NULL);
    m = gpt_model_load_memory(buf, good_len, &err);
    CHECKF(m != NULL, "%s", err.message);
    c = gpt_model_config(m);
    CHECK(c.n_vocab == 256 && c.n_ctx == 16 && c.n_embd == 32 && c.n_head == 1 && c.n_layer == 1);
    CHECK(c.dtype == GPT_DTYPE_F32 && c.ln_eps == 1e-5f);
    CHECK(c.n_params == (uint64_t)(256 * 32 + 16 * 32 + 12 * 32 * 32 + 13 * 32 + 2 * 32));
    CHECK(gpt_tokenizer_n_vocab(gpt_model_tokenizer(m)) == 256);
    gpt_model_free(m);
    /* in place: the aligned buffer is used as it is, and stays unchanged */
    m = gpt_model_load_memory_inplace(buf, good_len, &err);
    CHECKF(m != NULL, "%s", err.message);
    CHECK(memcmp(buf, good, good_len) == 0);
    gpt_model_free(m);
    /* any buffer is copied by gpt_model_load_memory; in place needs alignment */
    memmove(buf + 1, buf, good_len);
    m = gpt_model_load_memory(buf + 1, good_len, &err);
    CHECKF(m != NULL, "%s", err.message);
    memset(buf, 0xAA, good_len + 1); /* the copy does not depend on the caller's bytes */
    CHECK(gpt_logits(NULL) == NULL);
    {
        gpt_context *c = gpt_context_new(m, NULL, &err);
        int id = 3;
        CHECKF(c != NULL, "%s", err.message);
        CHECK(gpt_eval(c, &id, 1) == GPT_OK);
        gpt_context_free(c);
    }
    gpt_model_free(m);
    m = gpt_model_load_memory_inplace(buf + 1, good_len, &err);
    CHECK(m == NULL && err.status == GPT_ERR_INVALID_ARG && strstr(err.message, "aligned"));
    CHECK(gpt_model_load_memory_inplace(NULL, good_len, &err) == NULL && err.status == GPT_ERR_INVALID_ARG);
    free(raw);

    snprintf(path, sizeof path, "%s/tmp_loader.bin", build ? build : "build");
    f = fopen(path, "wb");
    CHECK(f != NULL);
    CHECK(fwrite(good, 1, good_len, f) == good_len);
    CHECK(fclose(f) == 0);
    m = gpt_model_load(path, &err);
    CHECKF(m != NULL, "%s", err.message);
    gpt_model_free(m);
    /* truncated on disk */
    f = fopen(path, "wb");
    CHECK(f && fwrite(good, 1, good_len - 100, f) == good_len - 100 && fclose(f) == 0);
    m = gpt_model_load(path, &err);
    CHECK(m == NULL && err.status == GPT_ERR_FORMAT && strstr(err.message, "truncated") && strstr(err.message, path));
    f = fopen(path, "wb");
    CHECK(f && fclose(f) == 0);
    m = gpt_model_load(path, &err);
    CHECKF(m == NULL && err.status == GPT_ERR_FORMAT, "empty file: %s", err.message);
    remove(path);
    m = gpt_model_load(path, &err);
    CHECK(m == NULL && err.status == GPT_ERR_IO && strstr(err.message, path));
    m = gpt_model_load(build ? build : "build", &err);
    CHECK(m == NULL && err.status == GPT_ERR_IO);
    CHECK(gpt_model_load(NULL, &err) == NULL && err.status == GPT_ERR_INVALID_ARG);
    CHECK(gpt_model_load_memory(NULL, 10, &err) == NULL && err.status == GPT_ERR_INVALID_ARG);
    m = gpt_model_load_memory(good, good_len, NULL); /* err may be NULL */
    CHECK(m != NULL);
    gpt_model_free(m);
    CHECK(gpt_model_load_memory(good, 5, NULL) == NULL);
}

TEST(truncation_anywhere_is_refused)
{
    void *raw;
    unsigned char *buf = copy_good(&raw);
    size_t cuts[64], n = 0, i;
    int k;
    CHECK(buf != NULL);
    cuts[n++] = 0;
    cuts[n++] = 7;
    cuts[n++] = 127;
    cuts[n++] = 128;
    cuts[n++] = DIR_AT(16);
    cuts[n++] = (size_t)get64(buf + 48);
    cuts[n++] = (size_t)(get64(buf + 48) + get64(buf + 56));
    for (k = 0; k < 16; k++) cuts[n++] = (size_t)get64(buf + DIR_AT(k) + 16) + 1;
    cuts[n++] = good_len - 1;
    for (i = 0; i < n; i++) {
        char what[64];
        snprintf(what, sizeof what, "cut at %zu", cuts[i]);
        /* the header's file_size still says the full length */
        EXPECTF(refused(buf, cuts[i], GPT_ERR_FORMAT, NULL, what), "%s", what);
    }
    /* and with file_size patched to match the cut, the sections are checked */
    for (k = 0; k < 16; k++) {
        size_t cut = (size_t)get64(buf + DIR_AT(k) + 16) + 4;
        char what[64];
        snprintf(what, sizeof what, "cut inside tensor %d", k);
        put64(buf + 64, cut);
        EXPECTF(refused(buf, cut, GPT_ERR_FORMAT, "end inside the file", what), "%s", what);
    }
    free(raw);
}

/* Applies one patch to a fresh copy and expects refusal. */
typedef struct patch {
    size_t at;
    int width; /* 4 or 8 */
    uint64_t value;
    gpt_status status;
    const char *needle;
    const char *what;
} patch;

TEST(damaged_header_fields_are_refused)
{
    static const uint64_t huge64 = ~(uint64_t)0;
    patch p[] = {
        {0, 4, 0x58585858, GPT_ERR_FORMAT, "magic", "magic"},
        {4, 4, 0x0A0D0A1A, GPT_ERR_FORMAT, "text mode", "line-end bytes of the magic"},
        {8, 4, 2, GPT_ERR_UNSUPPORTED, "version 2", "newer version"},
        {8, 4, 0, GPT_ERR_FORMAT, "version 0", "version 0"},
        {12, 4, 64, GPT_ERR_FORMAT, "header_size", "header size"},
        {16, 4, 0, GPT_ERR_FORMAT, "n_vocab", "n_vocab 0"},
        {16, 4, 0xFFFFFFFF, GPT_ERR_FORMAT, "n_vocab", "n_vocab -1"},
        {16, 4, 255, GPT_ERR_FORMAT, "wte", "n_vocab one less"},
        {20, 4, 0, GPT_ERR_FORMAT, "n_ctx", "n_ctx 0"},
        {20, 4, 0x80000000, GPT_ERR_FORMAT, "n_ctx", "n_ctx huge"},
        {24, 4, 0, GPT_ERR_FORMAT, "n_embd", "n_embd 0"},
        {24, 4, 33, GPT_ERR_FORMAT, "shape", "n_embd 33"},
        {28, 4, 0, GPT_ERR_FORMAT, "n_head", "n_head 0"},
        {28, 4, 3, GPT_ERR_FORMAT, "multiple of n_head", "n_embd not a multiple of n_head"},
        {28, 4, 0xFFFFFFFF, GPT_ERR_FORMAT, "n_head", "n_head -1"},
        {32, 4, 0, GPT_ERR_FORMAT, "n_layer", "n_layer 0"},
        {32, 4, 2, GPT_ERR_FORMAT, "n_tensors", "n_layer 2"},
        {32, 4, 0x7FFFFFFF, GPT_ERR_FORMAT, "n_layer", "n_layer huge"},
        {36, 4, 0x7FC00000, GPT_ERR_FORMAT, "ln_eps", "ln_eps NaN"},
        {36, 4, 0, GPT_ERR_FORMAT, "ln_eps", "ln_eps 0"},
        {36, 4, 0xBF800000, GPT_ERR_FORMAT, "ln_eps", "ln_eps -1"},
        {36, 4, 0x7F800000, GPT_ERR_FORMAT, "ln_eps", "ln_eps inf"},
        {40, 4, 9, GPT_ERR_UNSUPPORTED, "weight type", "dtype 9"},
        {44, 4, 1, GPT_ERR_UNSUPPORTED, "flags", "flags"},
        {48, 8, 1, GPT_ERR_FORMAT, "tokenizer section", "tokenizer offset misaligned"},
        {48, 8, 64, GPT_ERR_FORMAT, "tokenizer section", "tokenizer inside the directory"},
        {48, 8, huge64 - 63, GPT_ERR_FORMAT, "tokenizer section", "tokenizer offset huge"},
        {56, 8, huge64, GPT_ERR_FORMAT, "tokenizer section", "tokenizer size huge"},
        {56, 8, 16, GPT_ERR_FORMAT, "tokenizer", "tokenizer size too small"},
        {64, 8, 12345, GPT_ERR_FORMAT, "file_size", "file_size"},
        {64, 8, huge64, GPT_ERR_FORMAT, "file_size", "file_size huge"},
        {72, 4, 15, GPT_ERR_FORMAT, "n_tensors", "n_tensors"},
        {72, 4, 0xFFFFFFFF, GPT_ERR_FORMAT, "n_tensors", "n_tensors -1"},
        {80, 4, 1, GPT_ERR_FORMAT, "reserved header byte", "reserved header bytes"},
        {124, 4, 0x01000000, GPT_ERR_FORMAT, "offset 127", "last reserved header byte"},
        {DIR_AT(0), 4, 7, GPT_ERR_UNSUPPORTED, "unknown type", "tensor dtype 7"},
        {DIR_AT(3), 4, 1, GPT_ERR_FORMAT, "vectors must be f32", "vector in f16"},
        {DIR_AT(0) + 4, 4, 257, GPT_ERR_FORMAT, "shape", "wte rows"},
        {DIR_AT(4) + 8, 4, 31, GPT_ERR_FORMAT, "shape", "c_attn cols"},
        {DIR_AT(5) + 12, 4, 1, GPT_ERR_FORMAT, "reserved", "reserved field"},
        {DIR_AT(2) + 24, 8, 8, GPT_ERR_FORMAT, "nbytes", "nbytes"},
        {DIR_AT(2) + 16, 8, 4, GPT_ERR_FORMAT, "multiple of 64", "tensor misaligned"},
        {DIR_AT(2) + 16, 8, 0, GPT_ERR_FORMAT, "after the directory", "tensor over the header"},
        {DIR_AT(9) + 16, 8, huge64 - 63, GPT_ERR_FORMAT, "end inside the file", "tensor offset huge"},
        {DIR_AT(15) + 16, 8, 1 << 30, GPT_ERR_FORMAT, "end inside the file", "tensor past the end"},
    };
    size_t i;
    for (i = 0; i < sizeof p / sizeof p[0]; i++) {
        void *raw;
        unsigned char *buf = copy_good(&raw);
        CHECK(buf != NULL);
        if (p[i].width == 4) put32(buf + p[i].at, (uint32_t)p[i].value);
        else put64(buf + p[i].at, p[i].value);
        EXPECTF(refused(buf, good_len, p[i].status, p[i].needle, p[i].what), "%s", p[i].what);
        free(raw);
    }
}

TEST(overlapping_regions_are_refused)
{
    void *raw;
    unsigned char *buf = copy_good(&raw);
    CHECK(buf != NULL);
    /* tensor 3 placed on tensor 2 */
    put64(buf + DIR_AT(3) + 16, get64(buf + DIR_AT(2) + 16));
    EXPECTF(refused(buf, good_len, GPT_ERR_FORMAT, "overlaps", "tensor on tensor"), "tensor on tensor");
    memcpy(buf, good, good_len);
    /* a tensor on the tokenizer section */
    put64(buf + DIR_AT(2) + 16, get64(buf + 48));
    EXPECTF(refused(buf, good_len, GPT_ERR_FORMAT, "overlaps", "tensor on tokenizer"), "tensor on tokenizer");
    free(raw);
}

TEST(damaged_tokenizer_section_is_refused)
{
    void *raw;
    unsigned char *buf = copy_good(&raw);
    size_t tok;
    CHECK(buf != NULL);
    tok = (size_t)get64(buf + 48);
    buf[tok] = 'X';
    EXPECTF(refused(buf, good_len, GPT_ERR_FORMAT, "tokenizer", "tokenizer magic"), "tokenizer magic");
    memcpy(buf, good, good_len);
    put32(buf + tok + 8, 255); /* its own n_vocab disagrees */
    EXPECTF(refused(buf, good_len, GPT_ERR_FORMAT, "tokenizer", "tokenizer n_vocab"), "tokenizer n_vocab");
    memcpy(buf, good, good_len);
    memset(buf + tok + 24, 0xFF, 64); /* token offsets garbage */
    EXPECTF(refused(buf, good_len, GPT_ERR_FORMAT, "tokenizer", "token offsets"), "token offsets");
    free(raw);
}

/* gpt_model_load_ex with no_mmap reads the file into memory: same model,
 * same logits, and the same messages for a bad path. */
TEST(no_mmap_reads_the_same_model)
{
    gpt_load_params lp;
    gpt_error err;
    gpt_model *a, *b;
    gpt_context *ca, *cb;
    int ids[3] = {1870, 1793, 531};
    memset(&lp, 0, sizeof lp);
    lp.no_mmap = 1;
    a = gpt_model_load("models/demo.bin", &err);
    b = gpt_model_load_ex("models/demo.bin", &lp, &err);
    CHECK(a && b);
    ca = gpt_context_new(a, NULL, NULL);
    cb = gpt_context_new(b, NULL, NULL);
    CHECK(ca && cb);
    CHECK(gpt_eval(ca, ids, 3) == GPT_OK && gpt_eval(cb, ids, 3) == GPT_OK);
    CHECK(memcmp(gpt_logits(ca), gpt_logits(cb), sizeof(float) * (size_t)gpt_model_config(a).n_vocab) == 0);
    gpt_context_free(ca);
    gpt_context_free(cb);
    gpt_model_free(a);
    gpt_model_free(b);
    CHECK(gpt_model_load_ex("tests/data/no-such-file.bin", &lp, &err) == NULL && err.status == GPT_ERR_IO);
    CHECK(strstr(err.message, "no-such-file.bin") != NULL);
    a = gpt_model_load_ex("models/demo.bin", NULL, &err); /* NULL params: mapped, as gpt_model_load */
    CHECK(a != NULL);
    gpt_model_free(a);
}

/* Loads path both ways (mapped and read) and the tokenizer with path as its
 * vocabulary; each must fail with GPT_ERR_IO and a message naming path and
 * containing `kind` (NULL: any). Returns 1 if so. */
static int input_refused(const char *path, const char *kind)
{
    gpt_load_params lp;
    gpt_error err;
    int round, ok = 1;
    memset(&lp, 0, sizeof lp);
    for (round = 0; round < 3; round++) {
        void *obj;
        lp.no_mmap = round == 1;
        obj = round < 2 ? (void *)gpt_model_load_ex(path, &lp, &err)
                        : (void *)gpt_tokenizer_load(path, GPT2_MERGES, &err);
        if (obj || err.status != GPT_ERR_IO || !strstr(err.message, path) || (kind && !strstr(err.message, kind))) {
            printf("# %s (%s): %s \"%s\", expected GPT_ERR_IO naming \"%s\"\n", path,
                   round == 0 ? "mapped" : round == 1 ? "read" : "tokenizer", obj ? "loaded" : gpt_status_name(err.status),
                   obj ? "" : err.message, kind ? kind : "the path");
            ok = 0;
            if (obj) round < 2 ? gpt_model_free((gpt_model *)obj) : gpt_tokenizer_free((gpt_tokenizer *)obj);
        }
    }
    return ok;
}

/* The library reads only regular files: a directory, a FIFO (which would
 * block until a writer comes) or a device such as /dev/zero (which would
 * fill the memory) is refused without being read, as is a vocabulary over
 * GPT_TOKENIZER_FILE_MAX. */
TEST(inputs_that_are_not_regular_files_are_refused)
{
    const char *build = getenv("BUILD");
    char fifo[512], big[512];
    gpt_error err;
    FILE *f;
    int posix = 0;
#if defined(__unix__) || defined(__APPLE__)
    posix = 1;
#endif
    if (!build) build = "build";
    /* a directory (Windows' CreateFile only says "access denied") */
    CHECK(input_refused(build, posix ? "a directory" : NULL));
    if (posix) CHECK(input_refused("/dev/zero", "a character device"));
#if defined(__unix__) || defined(__APPLE__)
    snprintf(fifo, sizeof fifo, "%s/test_loader.fifo", build);
    remove(fifo);
    CHECKF(mkfifo(fifo, 0600) == 0, "mkfifo %s: %s", fifo, strerror(errno));
    alarm(60); /* a regression would block in open(): end the test instead of hanging */
    CHECK(input_refused(fifo, "a FIFO"));
    alarm(0);
    remove(fifo);
#else
    (void)fifo;
#endif
    /* a sparse file one byte over the vocabulary limit */
    snprintf(big, sizeof big, "%s/test_loader.big.json", build);
    f = fopen(big, "wb");
    CHECK(f != NULL);
    CHECK(fseek(f, (long)GPT_TOKENIZER_FILE_MAX, SEEK_SET) == 0 && fputc('}', f) != EOF && fclose(f) == 0);
    CHECK(gpt_tokenizer_load(big, GPT2_MERGES, &err) == NULL && err.status == GPT_ERR_IO);
    CHECKF(strstr(err.message, "67108865 bytes, more than the 64 MiB"), "%s", err.message);
    CHECK(gpt_tokenizer_load(GPT2_VOCAB, big, &err) == NULL && err.status == GPT_ERR_IO);
    remove(big);
}

int main(void)
{
    gpt_error err;
    good = random_checkpoint(1, 1, 32, 16, 256, 1, GPT_DTYPE_F32, &good_len, &err);
    if (!good) {
        printf("FAIL setup: %s\n", err.message);
        return 1;
    }
    RUN(good_checkpoint_loads_from_memory_and_file);
    RUN(truncation_anywhere_is_refused);
    RUN(damaged_header_fields_are_refused);
    RUN(overlapping_regions_are_refused);
    RUN(damaged_tokenizer_section_is_refused);
    RUN(no_mmap_reads_the_same_model);
    RUN(inputs_that_are_not_regular_files_are_refused);
    free(good);
    return test_summary();
}
