/*
 * test_convert.c - `gpt convert`'s readers: the JSON reader, the safetensors
 * header parser, Hugging Face folders and llm.c checkpoints against the
 * PyTorch reference's golden logits (tests/reference/README.md), reduced
 * precision, every bad input of tests/data/hf/bad_*, truncated and corrupted
 * files, and the fuzzers' regression inputs (tests/fuzz/regressions/).
 * Outputs go to $BUILD/tmp_convert (default build/).
 */
#include <dirent.h>
#include <math.h>
#include <sys/stat.h>
#include <sys/types.h>
#if defined(_WIN32)
#include <direct.h> /* _mkdir, _rmdir */
#define mkdir(path, mode) _mkdir(path)
#define rmdir _rmdir
#else
#include <unistd.h>
#endif

#include "convert.h"
#include "json.h"
#include "model_util.h"
#include "safetensors.h"
#include "test.h"

#define GOLDEN_DIR "tests/data/golden"
#define HF_DIR "tests/data/hf"
#define LLMC_DIR "tests/data/llmc"
#define TOL 1e-4

int gpt__dot_products(void); /* gpt.h's internal part: 1 q8_0, 2 bf16, 4 f32 chains */

/* Whether this build rounds the activations of m's matrices for their dot
 * products (issue 16): then a lossless conversion still leaves the PyTorch
 * reference by that rounding (test_model.c measures it: up to 4.3e-2 on
 * the logits of its goldens, DOT_TOL 0.15 there and here). */
static int rounds_activations(const gpt_model *m)
{
    gpt_dtype t = gpt_model_config(m).dtype;
    return (t == GPT_DTYPE_Q8_0 && (gpt__dot_products() & 1)) || (t == GPT_DTYPE_BF16 && (gpt__dot_products() & 2));
}
#define DOT_TOL 0.15
static double golden_tol = TOL; /* golden_error's, for the model at hand */

static char tmp_dir[512];

static void make_dir(const char *path) { mkdir(path, 0777); }

/* Removes the files of a directory (not recursive) and the directory. */
static void remove_dir(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *e;
    char p[2048];
    if (!d) return;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", path, e->d_name);
        remove(p);
    }
    closedir(d);
    rmdir(path);
}

/* Number of entries of a directory (without . and ..), -1 if it cannot be read. */
static int count_entries(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *e;
    int n = 0;
    if (!d) return -1;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

static int write_file(const char *path, const void *buf, size_t len)
{
    FILE *f = fopen(path, "wb");
    int ok;
    if (!f) return 0;
    ok = fwrite(buf, 1, len, f) == len;
    return fclose(f) == 0 && ok;
}

static int copy_file(const char *from, const char *to)
{
    size_t len;
    char *buf = test_read_file(from, &len);
    int ok;
    if (!buf) return 0;
    ok = write_file(to, buf, len);
    free(buf);
    return ok;
}

/* ------------------------------------------------------------------------ */
/* Converting                                                               */

/* Converts an HF folder (kind "hf") or llm.c file ("llmc") to path. */
static gpt_status convert_to(const char *kind, const char *src, const char *path, gpt_dtype dtype, int force,
                             gpt_error *err)
{
    ckpt_spec spec;
    gpt_status st;
    if (!strcmp(kind, "hf")) {
        hf_model *m = hf_open(src, err);
        if (!m) return err->status;
        hf_spec(m, &spec);
        spec.dtype = dtype;
        st = ckpt_write_file(path, &spec, hf_source, m, force, 0, err);
        hf_close(m);
    } else {
        llmc_model *m = llmc_open(src, LLMC_DIR "/vocab.json", LLMC_DIR "/merges.txt", err);
        if (!m) return err->status;
        llmc_spec(m, &spec);
        spec.dtype = dtype;
        st = ckpt_write_file(path, &spec, llmc_source, m, force, 0, err);
        llmc_close(m);
    }
    return st;
}

/* Logits of every position of ids (n * n_vocab floats, malloc'd). */
static float *all_logits(const gpt_model *m, const int *ids, int n, char *why, size_t cap)
{
    gpt_context_params cp = gpt_context_defaults();
    gpt_context *c;
    gpt_error err;
    int V = gpt_model_config(m).n_vocab, p;
    float *out = (float *)malloc(sizeof(float) * (size_t)n * (size_t)V);
    cp.all_logits = 1;
    cp.n_threads = 1;
    cp.kv_type = GPT_KV_F32; /* what moves is the weights' rounding alone */
    c = gpt_context_new(m, &cp, &err);
    if (!c || !out) {
        snprintf(why, cap, "context: %s", c ? "out of memory" : err.message);
        gpt_context_free(c);
        free(out);
        return NULL;
    }
    if (gpt_eval(c, ids, n) != GPT_OK) {
        snprintf(why, cap, "eval: %s", gpt_context_error(c));
        gpt_context_free(c);
        free(out);
        return NULL;
    }
    for (p = 0; p < n; p++) memcpy(out + (size_t)p * V, gpt_logits_at(c, p), sizeof(float) * (size_t)V);
    gpt_context_free(c);
    return out;
}

/* Max abs error against a golden file's sampled and top logits, and whether
 * our argmax is as good as the reference's (within TOL); -1 on failure. */
static double golden_error(const golden *g, const float *lg, int V, int check_argmax, char *why, size_t cap)
{
    double worst = 0.0;
    int p, i;
    for (p = 0; p < g->n; p++) {
        const float *l = lg + (size_t)p * V;
        int best = 0;
        for (i = 0; i < g->m; i++) {
            double d = fabs((double)l[g->sample[i]] - g->vals[(size_t)p * g->m + i]);
            if (!(d <= worst)) worst = d;
        }
        for (i = 0; i < g->k; i++) {
            double d = fabs((double)l[g->top_ids[p * g->k + i]] - g->top_v[p * g->k + i]);
            if (!(d <= worst)) worst = d;
        }
        if (!check_argmax) continue;
        for (i = 1; i < V; i++)
            if (l[i] > l[best]) best = i;
        if (fabs((double)l[best] - g->top_v[p * g->k]) > golden_tol) {
            snprintf(why, cap, "position %d: our argmax %d has logit %.6f, the reference's top %d has %.6f", p, best,
                     (double)l[best], g->top_ids[p * g->k], g->top_v[p * g->k]);
            return -1;
        }
    }
    return worst;
}

/* Loads path and compares it with golden g; returns the max abs error or -1. */
static double check_against_golden(const golden *g, const char *path, char *why, size_t cap)
{
    gpt_error err;
    gpt_model *m = gpt_model_load(path, &err);
    float *lg;
    double e;
    if (!m) {
        snprintf(why, cap, "load %s: %s", path, err.message);
        return -1;
    }
    golden_tol = rounds_activations(m) ? DOT_TOL : TOL;
    lg = all_logits(m, g->tokens, g->n, why, cap);
    e = lg ? golden_error(g, lg, gpt_model_config(m).n_vocab, 1, why, cap) : -1;
    free(lg);
    gpt_model_free(m); /* golden_tol stays the bound of this model's error */
    return e;
}

static void out_path(char *buf, size_t cap, const char *name)
{
    snprintf(buf, cap, "%s/%s", tmp_dir, name);
}

/* Every golden file of an HF folder or llm.c file: convert to f32 into
 * $BUILD/tmp_convert, load, compare. */
TEST(golden_hf_and_llmc_f32)
{
    DIR *d = opendir(GOLDEN_DIR);
    struct dirent *e;
    int hf = 0, llmc = 0;
    CHECKF(d != NULL, "cannot open %s", GOLDEN_DIR);
    while ((e = readdir(d)) != NULL) {
        char path[1024], out[1024], why[512];
        size_t nl = strlen(e->d_name);
        golden g;
        gpt_error err;
        double worst;
        if (nl < 4 || strcmp(e->d_name + nl - 4, ".txt") != 0) continue;
        if (strncmp(e->d_name, "hf_", 3) != 0 && strncmp(e->d_name, "llmc_", 5) != 0) continue;
        snprintf(path, sizeof path, "%s/%s", GOLDEN_DIR, e->d_name);
        EXPECTF(golden_read(path, &g) == 0, "%s: cannot parse", path);
        if (!g.n) continue;
        EXPECTF(!strcmp(g.dtype, "f32"), "%s: dtype %s", path, g.dtype);
        out_path(out, sizeof out, e->d_name);
        strcpy(out + strlen(out) - 4, ".bin");
        remove(out);
        if (convert_to(g.kind, g.path, out, GPT_DTYPE_F32, 0, &err) != GPT_OK) {
            EXPECTF(0, "%s: converting %s: %s", e->d_name, g.path, err.message);
            golden_free(&g);
            continue;
        }
        why[0] = 0;
        worst = check_against_golden(&g, out, why, sizeof why);
        EXPECTF(worst >= 0 && worst <= golden_tol, "%s: max abs error %g > %g %s", e->d_name, worst, golden_tol, why);
        printf("# %-40s f32  max abs logit error %.2e\n", e->d_name, worst);
        if (!strcmp(g.kind, "hf")) hf++;
        else llmc++;
        golden_free(&g);
    }
    closedir(d);
    CHECKF(hf >= 4 && llmc >= 2, "only %d HF and %d llm.c goldens were checked", hf, llmc);
}

/* Weights already in f16 (or bf16) convert to that type without loss, so the
 * logits still match the golden values. */
TEST(lossless_f16_and_bf16_sources)
{
    static const struct {
        const char *golden, *kind;
        gpt_dtype dtype;
    } cases[] = {
        {"hf_l3_h5_c40_f16_masks.txt", "hf", GPT_DTYPE_F16},
        {"hf_l2_h6_c42_bf16_prefix.txt", "hf", GPT_DTYPE_BF16},
        {"llmc_l3_h3_c24_t32_v300_bf16.txt", "llmc", GPT_DTYPE_BF16},
    };
    size_t i;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[1024], out[1024], why[512] = "";
        golden g;
        gpt_error err;
        double worst;
        snprintf(path, sizeof path, "%s/%s", GOLDEN_DIR, cases[i].golden);
        CHECKF(golden_read(path, &g) == 0, "%s: cannot parse", path);
        snprintf(out, sizeof out, "%s/lossless_%s.bin", tmp_dir, gpt_dtype_name(cases[i].dtype));
        remove(out);
        CHECKF(convert_to(cases[i].kind, g.path, out, cases[i].dtype, 0, &err) == GPT_OK, "%s: %s", g.path,
               err.message);
        worst = check_against_golden(&g, out, why, sizeof why);
        EXPECTF(worst >= 0 && worst <= golden_tol, "%s as %s: max abs error %g %s", g.path, gpt_dtype_name(cases[i].dtype),
                worst, why);
        printf("# %-40s %-4s max abs logit error %.2e (lossless)\n", cases[i].golden, gpt_dtype_name(cases[i].dtype),
               worst);
        golden_free(&g);
        remove(out);
    }
}

static double perplexity(const float *lg, const int *ids, int n, int V)
{
    double s = 0;
    int p, i;
    for (p = 0; p + 1 < n; p++) {
        const float *l = lg + (size_t)p * V;
        double mx = l[0], z = 0;
        for (i = 1; i < V; i++)
            if (l[i] > mx) mx = l[i];
        for (i = 0; i < V; i++) z += exp((double)l[i] - mx);
        s += (double)l[ids[p + 1]] - mx - log(z);
    }
    return exp(-s / (n - 1));
}

/* f16, bf16 and q8_0 conversions of F32 folders: how far the logits move. */
TEST(reduced_precision_close_to_f32)
{
    static const char *const goldens[2] = {"hf_l2_h4_c32_f32_prefix.txt", "hf_l4_h2_c24_f32_sharded.txt"};
    static const gpt_dtype types[3] = {GPT_DTYPE_F16, GPT_DTYPE_BF16, GPT_DTYPE_Q8_0};
    /* limits on the max abs logit error and on the perplexity change */
    static const double max_err[3] = {1e-2, 0.1, 0.1}, max_ppl[3] = {0.005, 0.005, 0.02};
    int gi, t;
    for (gi = 0; gi < 2; gi++) {
        char path[1024], out[1024], why[512] = "";
        golden g;
        gpt_error err;
        gpt_model *ref;
        float *want;
        int V, p, i;
        double ppl_ref;
        snprintf(path, sizeof path, "%s/%s", GOLDEN_DIR, goldens[gi]);
        CHECKF(golden_read(path, &g) == 0, "%s: cannot parse", path);
        snprintf(out, sizeof out, "%s/rp_f32.bin", tmp_dir);
        remove(out);
        CHECKF(convert_to("hf", g.path, out, GPT_DTYPE_F32, 0, &err) == GPT_OK, "%s", err.message);
        ref = gpt_model_load(out, &err);
        CHECKF(ref != NULL, "%s", err.message);
        V = gpt_model_config(ref).n_vocab;
        want = all_logits(ref, g.tokens, g.n, why, sizeof why);
        CHECKF(want != NULL, "%s", why);
        ppl_ref = perplexity(want, g.tokens, g.n, V);
        for (t = 0; t < 3; t++) {
            gpt_model *m;
            float *got;
            double worst = 0, gold, ppl;
            int agree = 0;
            snprintf(out, sizeof out, "%s/rp_%s.bin", tmp_dir, gpt_dtype_name(types[t]));
            remove(out);
            CHECKF(convert_to("hf", g.path, out, types[t], 0, &err) == GPT_OK, "%s", err.message);
            m = gpt_model_load(out, &err);
            CHECKF(m != NULL, "%s", err.message);
            CHECK(gpt_model_config(m).dtype == types[t]);
            got = all_logits(m, g.tokens, g.n, why, sizeof why);
            CHECKF(got != NULL, "%s", why);
            for (p = 0; p < g.n; p++) {
                int a = 0, b = 0;
                for (i = 0; i < V; i++) {
                    double dd = fabs((double)got[(size_t)p * V + i] - want[(size_t)p * V + i]);
                    if (!(dd <= worst)) worst = dd;
                    if (want[(size_t)p * V + i] > want[(size_t)p * V + a]) a = i;
                    if (got[(size_t)p * V + i] > got[(size_t)p * V + b]) b = i;
                }
                agree += a == b;
            }
            golden_tol = rounds_activations(m) ? DOT_TOL : TOL;
            gold = golden_error(&g, got, V, 0, why, sizeof why);
            golden_tol = TOL;
            ppl = perplexity(got, g.tokens, g.n, V);
            printf("# %-40s %-4s max abs logit error %.2e vs f32 (%.2e vs golden), top-1 %d/%d, ppl %.4f vs %.4f "
                   "(%+.3f%%)\n",
                   goldens[gi], gpt_dtype_name(types[t]), worst, gold, agree, g.n, ppl, ppl_ref,
                   100.0 * (ppl - ppl_ref) / ppl_ref);
            /* rounded activations (issue 16) move q8_0's by 0.101 here */
            EXPECTF(worst <= max_err[t] * (rounds_activations(m) ? 2 : 1), "%s as %s: logits move by %g (limit %g)",
                    g.path, gpt_dtype_name(types[t]), worst, max_err[t] * (rounds_activations(m) ? 2 : 1));
            EXPECTF(fabs(ppl - ppl_ref) <= max_ppl[t] * ppl_ref, "%s as %s: perplexity %g vs %g", g.path,
                    gpt_dtype_name(types[t]), ppl, ppl_ref);
            free(got);
            gpt_model_free(m);
            remove(out);
        }
        free(want);
        gpt_model_free(ref);
        golden_free(&g);
        snprintf(out, sizeof out, "%s/rp_f32.bin", tmp_dir);
        remove(out);
    }
}

/* ------------------------------------------------------------------------ */
/* Bad inputs                                                               */

/* Converts src into an empty directory and expects failure with a message
 * holding every word of want (separated by '|'), and nothing left behind. */
static void expect_failure(const char *kind, const char *src, gpt_status status, const char *want)
{
    char dir[1024], out[1100], words[512], *w;
    gpt_error err;
    gpt_status st;
    snprintf(dir, sizeof dir, "%s/fail", tmp_dir);
    remove_dir(dir);
    make_dir(dir);
    snprintf(out, sizeof out, "%s/out.bin", dir);
    memset(&err, 0, sizeof err);
    st = convert_to(kind, src, out, GPT_DTYPE_F32, 0, &err);
    EXPECTF(st != GPT_OK, "%s: converted, expected an error about %s", src, want);
    if (st == GPT_OK) return;
    EXPECTF(status == GPT_OK || st == status, "%s: status %s, expected %s (%s)", src, gpt_status_name(st),
            gpt_status_name(status), err.message);
    EXPECTF(err.status == st, "%s: err.status %d but returned %d", src, (int)err.status, (int)st);
    snprintf(words, sizeof words, "%s", want);
    for (w = strtok(words, "|"); w; w = strtok(NULL, "|"))
        EXPECTF(strstr(err.message, w) != NULL, "%s: the message does not say \"%s\": %s", src, w, err.message);
    EXPECTF(count_entries(dir) == 0, "%s: %d files left behind in %s", src, count_entries(dir), dir);
    remove_dir(dir);
}

TEST(bad_hf_folders)
{
    static const struct {
        const char *folder, *words;
        gpt_status status;
    } cases[] = {
        {"bad_header_len", "model.safetensors|header length 13340|runs past the end", GPT_ERR_FORMAT},
        {"bad_header_json", "model.safetensors|not valid JSON|byte", GPT_ERR_FORMAT},
        {"bad_offsets_outside", "ln_f.bias|outside the data", GPT_ERR_FORMAT},
        {"bad_offsets_overlap", "h.0.ln_1.bias|h.0.attn.c_proj.weight|overlap", GPT_ERR_FORMAT},
        {"bad_offsets_size", "ln_f.weight|28 bytes|needs 32", GPT_ERR_FORMAT},
        {"bad_dtype_unknown", "ln_f.weight|unknown dtype \"Q7\"", GPT_ERR_FORMAT},
        {"bad_dtype_f64", "wpe.weight|F64", GPT_ERR_UNSUPPORTED},
        {"bad_shape_transposed", "h.0.attn.c_attn.weight|[24, 8]|expected [8, 24]", GPT_ERR_FORMAT},
        {"bad_shape_config", "wpe.weight|[8, 8]|expected [16, 8]|n_positions", GPT_ERR_FORMAT},
        {"bad_config_json", "config.json|not valid JSON", GPT_ERR_FORMAT},
        {"bad_no_vocab", "vocab.json|missing", GPT_ERR_IO},
        {"bad_no_merges", "merges.txt|missing", GPT_ERR_IO},
        {"bad_missing_tensor", "h.0.mlp.c_fc.bias|missing", GPT_ERR_FORMAT},
        {"bad_lm_head_untied", "lm_head.weight|differs from wte|untied", GPT_ERR_UNSUPPORTED},
        {"bad_shard_missing", "model-00002-of-00002.safetensors|cannot open|index.json", GPT_ERR_IO},
    };
    size_t i, n = 0;
    DIR *d;
    struct dirent *e;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char src[512];
        snprintf(src, sizeof src, "%s/%s", HF_DIR, cases[i].folder);
        expect_failure("hf", src, cases[i].status, cases[i].words);
    }
    /* every bad_* folder of the reference is in the table */
    d = opendir(HF_DIR);
    CHECK(d != NULL);
    while ((e = readdir(d)) != NULL) {
        int found = 0;
        if (strncmp(e->d_name, "bad_", 4) != 0) continue;
        n++;
        for (i = 0; i < sizeof cases / sizeof cases[0]; i++) found |= !strcmp(cases[i].folder, e->d_name);
        EXPECTF(found, "%s/%s is not tested", HF_DIR, e->d_name);
    }
    closedir(d);
    CHECK(n == sizeof cases / sizeof cases[0]);
}

/* Writes the files of a good folder into dir, model.safetensors replaced by
 * st (len bytes) and config.json by config when given. */
static int make_folder(const char *dir, const char *from, const void *st, size_t len, const char *config)
{
    static const char *const names[3] = {"config.json", "vocab.json", "merges.txt"};
    char a[1024], b[1024];
    int i;
    remove_dir(dir);
    make_dir(dir);
    for (i = 0; i < 3; i++) {
        snprintf(a, sizeof a, "%s/%s", from, names[i]);
        snprintf(b, sizeof b, "%s/%s", dir, names[i]);
        if (i == 0 && config) {
            if (!write_file(b, config, strlen(config))) return 0;
        } else if (!copy_file(a, b)) return 0;
    }
    snprintf(b, sizeof b, "%s/model.safetensors", dir);
    return write_file(b, st, len);
}

#define GOOD HF_DIR "/l2_h4_c32_f32_prefix"

TEST(truncated_safetensors)
{
    char src[512], dir[1024];
    size_t len, hlen, cuts[16], i, n = 0;
    unsigned char *buf;
    snprintf(src, sizeof src, "%s/model.safetensors", GOOD);
    buf = (unsigned char *)test_read_file(src, &len);
    CHECK(buf != NULL && len > 64);
    hlen = (size_t)buf[0] | (size_t)buf[1] << 8 | (size_t)buf[2] << 16;
    cuts[n++] = 0;
    cuts[n++] = 1;
    cuts[n++] = 7;
    cuts[n++] = 8;
    cuts[n++] = 9;
    cuts[n++] = 8 + hlen / 2;
    cuts[n++] = 8 + hlen - 1;
    cuts[n++] = 8 + hlen;
    cuts[n++] = 8 + hlen + 1;
    cuts[n++] = 8 + hlen + 4096;
    cuts[n++] = len / 2;
    cuts[n++] = len - 4;
    cuts[n++] = len - 1;
    snprintf(dir, sizeof dir, "%s/trunc", tmp_dir);
    for (i = 0; i < n; i++) {
        gpt_error err;
        hf_model *m;
        st_header h;
        CHECK(make_folder(dir, GOOD, buf, cuts[i], NULL));
        m = hf_open(dir, &err);
        EXPECTF(m == NULL, "cut at %llu bytes of %llu: opened", (unsigned long long)cuts[i], (unsigned long long)len);
        if (m) hf_close(m);
        else EXPECTF(strstr(err.message, "model.safetensors") != NULL, "cut at %llu: %s", (unsigned long long)cuts[i],
                     err.message);
        EXPECTF(st_parse_memory(buf, cuts[i], "mem", &h, &err) != GPT_OK, "in memory, cut at %llu: parsed",
                (unsigned long long)cuts[i]);
    }
    /* one extra byte at the end is a hole */
    {
        unsigned char *more = (unsigned char *)malloc(len + 1);
        gpt_error err;
        st_header h;
        CHECK(more != NULL);
        memcpy(more, buf, len);
        more[len] = 0;
        EXPECTF(st_parse_memory(more, len + 1, "mem", &h, &err) != GPT_OK && strstr(err.message, "no tensor"),
                "an extra byte: %s", err.message);
        free(more);
    }
    remove_dir(dir);
    free(buf);
}

/* The file shrinks between opening and reading: a read error, no output. */
TEST(file_shrinks_while_converting)
{
    char src[512], dir[1024], st_path[1100], out[1100];
    size_t len;
    unsigned char *buf;
    hf_model *m;
    ckpt_spec spec;
    gpt_error err;
    gpt_status st;
    snprintf(src, sizeof src, "%s/model.safetensors", GOOD);
    buf = (unsigned char *)test_read_file(src, &len);
    CHECK(buf != NULL);
    snprintf(dir, sizeof dir, "%s/shrink", tmp_dir);
    CHECK(make_folder(dir, GOOD, buf, len, NULL));
    m = hf_open(dir, &err);
    CHECKF(m != NULL, "%s", err.message);
    snprintf(st_path, sizeof st_path, "%s/model.safetensors", dir);
    CHECK(write_file(st_path, buf, len / 2));
    hf_spec(m, &spec);
    snprintf(out, sizeof out, "%s/out.bin", dir);
    st = ckpt_write_file(out, &spec, hf_source, m, 0, 0, &err);
    hf_close(m);
    EXPECTF(st != GPT_OK, "converted a file cut in half");
    EXPECTF(strstr(err.message, "model.safetensors") && strstr(err.message, "ends at"), "message: %s", err.message);
    EXPECTF(count_entries(dir) == 4, "%d files in %s (expected the 4 inputs only)", count_entries(dir), dir);
    remove_dir(dir);
    free(buf);
}

/* Deterministic byte flips in the header of a good file: each parse either
 * fails with a message or succeeds; never crashes (ASan/UBSan builds check
 * the memory accesses). */
TEST(corrupted_headers_never_crash)
{
    char src[512];
    size_t len, hlen, i;
    unsigned char *buf, *copy;
    uint64_t x = 0x9E3779B97F4A7C15ull;
    int failed = 0, parsed = 0;
    snprintf(src, sizeof src, "%s/model.safetensors", GOOD);
    buf = (unsigned char *)test_read_file(src, &len);
    CHECK(buf != NULL);
    hlen = (size_t)buf[0] | (size_t)buf[1] << 8 | (size_t)buf[2] << 16;
    copy = (unsigned char *)malloc(len);
    CHECK(copy != NULL);
    for (i = 0; i < 3000; i++) {
        gpt_error err;
        st_header h;
        int flips = 1 + (int)(i % 4), j;
        memcpy(copy, buf, len);
        for (j = 0; j < flips; j++) {
            size_t at;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            at = (size_t)(x % (hlen + 8));
            copy[at] = (unsigned char)(x >> 32);
        }
        err.message[0] = 0;
        if (st_parse_memory(copy, len, "mem", &h, &err) == GPT_OK) {
            parsed++;
            st_header_free(&h);
        } else {
            failed++;
            EXPECTF(err.message[0] != 0, "flip %d: an error without a message", (int)i);
        }
    }
    printf("# corrupted headers: %d rejected, %d still valid\n", failed, parsed);
    CHECK(failed > 1000);
    free(copy);
    free(buf);
}

TEST(bad_configs)
{
    static const struct {
        const char *config, *words;
    } cases[] = {
        {"[]", "expected a JSON object"},
        {"{\"n_embd\": 32, \"n_layer\": 2, \"n_head\": 4, \"n_positions\": 24}", "vocab_size|missing"},
        {"{\"n_embd\": 32, \"n_layer\": 2, \"n_head\": 4, \"vocab_size\": 300}", "n_positions|missing"},
        {"{\"n_embd\": 32.0, \"n_layer\": 2, \"n_head\": 4, \"vocab_size\": 300, \"n_positions\": 24}", "n_embd|integer"},
        {"{\"n_embd\": 32, \"n_layer\": 0, \"n_head\": 4, \"vocab_size\": 300, \"n_positions\": 24}", "n_layer"},
        {"{\"n_embd\": 32, \"n_layer\": 2, \"n_head\": 5, \"vocab_size\": 300, \"n_positions\": 24}", "multiple"},
        {"{\"n_embd\": 32, \"n_layer\": 2, \"n_head\": 4, \"vocab_size\": 300, \"n_positions\": 24, "
         "\"activation_function\": \"gelu\"}",
         "activation_function|\"gelu\"|gelu_new"},
        {"{\"n_embd\": 32, \"n_layer\": 2, \"n_head\": 4, \"vocab_size\": 300, \"n_positions\": 24, \"n_inner\": 64}",
         "n_inner 64|128"},
        {"{\"n_embd\": 32, \"n_layer\": 2, \"n_head\": 4, \"vocab_size\": 300, \"n_positions\": 24, "
         "\"layer_norm_epsilon\": 0}",
         "layer_norm_epsilon"},
        {"{\"n_embd\": 32, \"n_layer\": 2, \"n_head\": 4, \"vocab_size\": 300, \"n_positions\": 24, "
         "\"model_type\": \"llama\"}",
         "model_type|llama"},
        {"{\"n_embd\": 32, \"n_layer\": 2, \"n_head\": 4, \"vocab_size\": 300, \"n_positions\": 24, "
         "\"scale_attn_by_inverse_layer_idx\": true}",
         "scale_attn_by_inverse_layer_idx"},
        {"{\"n_embd\": 32, \"n_layer\": 2, \"n_head\": 4, \"vocab_size\": 300, \"n_positions\": 24} x",
         "not valid JSON|after the JSON value"},
        /* a well-formed config that disagrees with the weights */
        {"{\"n_embd\": 32, \"n_layer\": 3, \"n_head\": 4, \"vocab_size\": 300, \"n_positions\": 24}",
         "h.2.ln_1.weight|missing"},
        {"{\"n_embd\": 32, \"n_layer\": 1, \"n_head\": 4, \"vocab_size\": 300, \"n_positions\": 24}",
         "h.1.|layer 1|n_layer 1"},
        {"{\"n_embd\": 32, \"n_layer\": 2, \"n_head\": 4, \"vocab_size\": 301, \"n_positions\": 24}",
         "wte.weight|[300, 32]|expected [301, 32]"},
    };
    char src[512], dir[1024];
    size_t len, i;
    unsigned char *buf;
    snprintf(src, sizeof src, "%s/model.safetensors", GOOD);
    buf = (unsigned char *)test_read_file(src, &len);
    CHECK(buf != NULL);
    snprintf(dir, sizeof dir, "%s/cfg", tmp_dir);
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        CHECK(make_folder(dir, GOOD, buf, len, cases[i].config));
        expect_failure("hf", dir, GPT_OK, cases[i].words);
    }
    /* the good config with n_ctx only (no n_positions) works */
    CHECK(make_folder(dir, GOOD, buf, len,
                      "{\"n_embd\": 32, \"n_layer\": 2, \"n_head\": 4, \"vocab_size\": 300, \"n_ctx\": 24, "
                      "\"n_inner\": 128, \"activation_function\": \"gelu_pytorch_tanh\"}"));
    {
        gpt_error err;
        hf_model *m = hf_open(dir, &err);
        EXPECTF(m != NULL, "n_ctx instead of n_positions: %s", err.message);
        hf_close(m);
    }
    remove_dir(dir);
    free(buf);
}

/* Sharded folders whose index is wrong. */
TEST(bad_sharded_indexes)
{
    static const char *const files[5] = {"config.json", "vocab.json", "merges.txt", "model-00001-of-00002.safetensors",
                                         "model-00002-of-00002.safetensors"};
    static const struct {
        const char *from, *to, *words;
    } cases[] = {
        /* a tensor mapped to the other shard */
        {"\"h.0.attn.c_attn.bias\": \"model-00001-of-00002.safetensors\"",
         "\"h.0.attn.c_attn.bias\": \"model-00002-of-00002.safetensors\"",
         "puts tensor h.0.attn.c_attn.bias in|model-00002-of-00002.safetensors|does not have it"},
        /* a tensor no file has */
        {"\"weight_map\": {", "\"weight_map\": {\"h.9.ln_1.bias\": \"model-00001-of-00002.safetensors\",",
         "puts tensor h.9.ln_1.bias in"},
        {"\"h.0.attn.c_attn.bias\": \"model-00001-of-00002.safetensors\"", "\"h.0.attn.c_attn.bias\": \"../x\"",
         "h.0.attn.c_attn.bias|not a plain file name"},
        {"\"h.0.attn.c_attn.bias\": \"model-00001-of-00002.safetensors\"", "\"h.0.attn.c_attn.bias\": 3",
         "not a plain file name"},
        {"\"weight_map\"", "\"weight_mop\"", "no \"weight_map\""},
        {"\"metadata\": {", "\"metadata\": {{", "index.json: not valid JSON"},
    };
    char dir[1024], a[1024], b[1100], *index, *changed;
    size_t len, i, k;
    snprintf(dir, sizeof dir, "%s/shards", tmp_dir);
    snprintf(a, sizeof a, "%s/l4_h2_c24_f32_sharded/model.safetensors.index.json", HF_DIR);
    index = test_read_file(a, &len);
    CHECK(index != NULL);
    changed = (char *)malloc(len + 256);
    CHECK(changed != NULL);
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *at = strstr(index, cases[i].from);
        CHECKF(at != NULL, "case %d: \"%s\" is not in the index", (int)i, cases[i].from);
        remove_dir(dir);
        make_dir(dir);
        for (k = 0; k < 5; k++) {
            snprintf(a, sizeof a, "%s/l4_h2_c24_f32_sharded/%s", HF_DIR, files[k]);
            snprintf(b, sizeof b, "%s/%s", dir, files[k]);
            CHECK(copy_file(a, b));
        }
        memcpy(changed, index, (size_t)(at - index));
        strcpy(changed + (at - index), cases[i].to);
        strcat(changed, at + strlen(cases[i].from));
        snprintf(b, sizeof b, "%s/model.safetensors.index.json", dir);
        CHECK(write_file(b, changed, strlen(changed)));
        expect_failure("hf", dir, GPT_OK, cases[i].words);
    }
    /* unchanged, the copy converts */
    snprintf(b, sizeof b, "%s/model.safetensors.index.json", dir);
    CHECK(write_file(b, index, len));
    {
        gpt_error err;
        hf_model *m = hf_open(dir, &err);
        EXPECTF(m != NULL, "the copied sharded folder: %s", err.message);
        hf_close(m);
    }
    remove_dir(dir);
    free(changed);
    free(index);
}

/* Small llm.c files made from a good one with one thing changed. */
TEST(bad_llmc_files)
{
    char src[512], path[1024];
    size_t len;
    unsigned char *buf, *copy;
    struct {
        int field;      /* header int to change, or -1 */
        int32_t value;
        long cut;       /* change of the length */
        const char *words;
        gpt_status status;
    } cases[] = {
        {0, 20240327, 0, "magic 20240327|training-state", GPT_ERR_FORMAT},
        {0, 1234, 0, "not an llm.c model checkpoint", GPT_ERR_FORMAT},
        {1, 4, 0, "version 4", GPT_ERR_UNSUPPORTED},
        {3, 301, 0, "vocab.json has 300 tokens|vocab_size is 301", GPT_ERR_FORMAT},
        {7, 299, 0, "padded_vocab_size 299", GPT_ERR_FORMAT},
        {5, 5, 0, "not a multiple of num_heads 5", GPT_ERR_FORMAT},
        {6, 0, 0, "channels is 0", GPT_ERR_FORMAT},
        {2, -5, 0, "max_seq_len is -5", GPT_ERR_FORMAT},
        {-1, 0, -1, "truncated", GPT_ERR_FORMAT},
        {-1, 0, -4, "truncated", GPT_ERR_FORMAT},
        {-1, 0, 1, "extra bytes", GPT_ERR_FORMAT},
        {2, 25, 0, "says", GPT_ERR_FORMAT}, /* T + 1: the length no longer fits */
        {-1, 0, -150000, "truncated", GPT_ERR_FORMAT},
    };
    size_t i;
    snprintf(src, sizeof src, "%s/l2_h4_c32_t24_v300_fp32.bin", LLMC_DIR);
    buf = (unsigned char *)test_read_file(src, &len);
    CHECK(buf != NULL && len > 150000);
    copy = (unsigned char *)malloc(len + 1);
    CHECK(copy != NULL);
    snprintf(path, sizeof path, "%s/bad_llmc.bin", tmp_dir);
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = (size_t)((long)len + cases[i].cut);
        memcpy(copy, buf, len);
        copy[len] = 0;
        if (cases[i].field >= 0) {
            uint32_t u = (uint32_t)cases[i].value;
            unsigned char *p = copy + 4 * cases[i].field;
            p[0] = (unsigned char)u;
            p[1] = (unsigned char)(u >> 8);
            p[2] = (unsigned char)(u >> 16);
            p[3] = (unsigned char)(u >> 24);
        }
        CHECK(write_file(path, copy, n));
        expect_failure("llmc", path, cases[i].status, cases[i].words);
    }
    CHECK(write_file(path, buf, 100));
    expect_failure("llmc", path, GPT_ERR_FORMAT, "too short");
    remove(path);
    expect_failure("llmc", path, GPT_ERR_IO, "cannot open");
    {
        gpt_error err;
        llmc_model *m = llmc_open(src, LLMC_DIR "/missing.json", LLMC_DIR "/merges.txt", &err);
        EXPECTF(m == NULL && strstr(err.message, "missing.json"), "missing vocab: %s", m ? "opened" : err.message);
        llmc_close(m);
    }
    free(copy);
    free(buf);
}

/* An existing output is refused without force (and kept), replaced with it. */
TEST(existing_output)
{
    char out[1100];
    gpt_error err;
    size_t a, b;
    char *before, *after;
    snprintf(out, sizeof out, "%s/exists.bin", tmp_dir);
    CHECK(write_file(out, "keep me", 7));
    CHECK(convert_to("hf", GOOD, out, GPT_DTYPE_F32, 0, &err) == GPT_ERR_EXISTS);
    CHECKF(strstr(err.message, "exists") && strstr(err.message, "--force"), "message: %s", err.message);
    before = test_read_file(out, &a);
    CHECK(before && a == 7 && !memcmp(before, "keep me", 7));
    CHECK(convert_to("hf", GOOD, out, GPT_DTYPE_F32, 1, &err) == GPT_OK);
    after = test_read_file(out, &b);
    CHECK(after && b > 1000);
    {
        gpt_model *m = gpt_model_load(out, &err);
        CHECKF(m != NULL, "%s", err.message);
        gpt_model_free(m);
    }
    free(before);
    free(after);
    remove(out);
    /* an output folder that does not exist: an error naming it */
    snprintf(out, sizeof out, "%s/no/such/dir/x.bin", tmp_dir);
    CHECK(convert_to("hf", GOOD, out, GPT_DTYPE_F32, 0, &err) == GPT_ERR_IO);
    CHECKF(strstr(err.message, "no/such/dir"), "message: %s", err.message);
}

/* ------------------------------------------------------------------------ */
/* The JSON reader                                                          */

TEST(json_accepts_and_decodes)
{
    const char *text = " {\"a\": [1, -0, 2.5e3, -1.25E-2, 9223372036854775807, -9223372036854775808, 1e308],\n"
                       "  \"s\": \"q\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\u20AC\\ud83d\\ude00\\u0000z\",\n"
                       "  \"t\": true, \"f\": false, \"n\": null, \"o\": {}, \"e\": [],\n"
                       "  \"u\": \"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\", \"\": 7} ";
    json_error je;
    json *r = json_parse(text, strlen(text), &je);
    const json *a, *s;
    int64_t i;
    CHECKF(r != NULL, "%s at %llu", je.message, (unsigned long long)je.offset);
    CHECK(r->type == JSON_OBJECT && r->len == 9);
    a = json_get(r, "a");
    CHECK(a && a->type == JSON_ARRAY && a->len == 7);
    CHECK(json_int(&a->items[0], &i) && i == 1);
    CHECK(json_int(&a->items[1], &i) && i == 0);
    CHECK(!json_int(&a->items[2], &i) && a->items[2].number == 2500.0);
    CHECK(a->items[3].number == -0.0125);
    CHECK(json_int(&a->items[4], &i) && i == INT64_MAX);
    CHECK(json_int(&a->items[5], &i) && i == INT64_MIN);
    CHECK(a->items[6].number == 1e308);
    s = json_get(r, "s");
    CHECK(s && s->type == JSON_STRING);
    CHECKF(s->len == 9 + 2 + 3 + 4 + 1 + 1, "length %d", (int)s->len);
    CHECK(!memcmp(s->str, "q\"\\/\b\f\n\r\t\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\0z", s->len));
    CHECK(!strcmp(json_get(r, "u")->str, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"));
    CHECK(json_get(r, "t")->type == JSON_BOOL && json_get(r, "t")->boolean == 1);
    CHECK(json_get(r, "f")->boolean == 0 && json_get(r, "n")->type == JSON_NULL);
    CHECK(json_get(r, "o")->type == JSON_OBJECT && json_get(r, "o")->len == 0);
    CHECK(json_get(r, "e")->type == JSON_ARRAY && json_get(r, "e")->len == 0);
    CHECK(json_int(json_get(r, ""), &i) && i == 7);
    CHECK(json_get(r, "missing") == NULL && json_get(a, "a") == NULL);
    /* members keep their text order; lookups work on every key */
    CHECK(!strcmp(r->keys[0].str, "a") && !strcmp(r->keys[8].str, ""));
    json_free(r);
    /* scalars at the top level, and nesting up to the limit */
    {
        char deep[2 * JSON_MAX_DEPTH + 1];
        int k;
        r = json_parse("\"x\"", 3, &je);
        CHECK(r && r->type == JSON_STRING);
        json_free(r);
        r = json_parse("12", 2, &je); /* not NUL-terminated is fine: len decides */
        CHECK(r && r->is_int && r->integer == 12);
        json_free(r);
        for (k = 0; k < JSON_MAX_DEPTH; k++) {
            deep[k] = '[';
            deep[2 * JSON_MAX_DEPTH - 1 - k] = ']';
        }
        r = json_parse(deep, 2 * JSON_MAX_DEPTH, &je);
        CHECKF(r != NULL, "depth %d: %s", JSON_MAX_DEPTH, je.message);
        json_free(r);
    }
    /* many keys: lookups by binary search find each */
    {
        char *big = (char *)malloc(20 * 2000 + 16);
        size_t w = 0;
        int k;
        CHECK(big != NULL);
        big[w++] = '{';
        for (k = 0; k < 2000; k++) w += (size_t)sprintf(big + w, "%s\"k%d\":%d", k ? "," : "", (k * 7919) % 2000, k);
        big[w++] = '}';
        r = json_parse(big, w, &je);
        CHECKF(r != NULL, "%s", je.message);
        for (k = 0; k < 2000; k++) {
            char key[16];
            const json *v;
            sprintf(key, "k%d", (k * 7919) % 2000);
            v = json_get(r, key);
            EXPECTF(v && v->integer == k, "key %s", key);
        }
        json_free(r);
        free(big);
    }
}

TEST(json_rejects_with_offsets)
{
    static const struct {
        const char *text;
        size_t len; /* 0: strlen */
        size_t offset;
        const char *words;
    } cases[] = {
        {"", 0, 0, "empty"},
        {"   ", 0, 3, "empty"},
        {"{", 0, 1, "end of input"},
        {"{\"a\":1", 0, 6, "end of input"},
        {"{\"a\" 1}", 0, 5, "':'"},
        {"{\"a\":1,}", 0, 7, "string key"},
        {"[1,]", 0, 3, "a value"},
        {"[1 2]", 0, 3, "','"},
        {"{a:1}", 0, 1, "string key"},
        {"{\"a\":1}x", 0, 7, "after the JSON value"},
        {"{} {}", 0, 3, "after the JSON value"},
        {"\"abc", 0, 0, "unterminated string"},
        {"\"a\x01\"", 0, 2, "control character"},
        {"\"a\nb\"", 0, 2, "control character"},
        {"\"\\x\"", 0, 1, "invalid escape"},
        {"\"\\u12zz\"", 0, 3, "hex digits"},
        {"\"\\u12", 0, 3, "unterminated"},
        {"\"\\ud800\"", 0, 1, "high surrogate"},
        {"\"\\ud800\\u0041\"", 0, 1, "high surrogate"},
        {"\"\\udc00\"", 0, 1, "low surrogate"},
        {"\"\xff\"", 0, 1, "UTF-8"},
        {"\"\xc0\xaf\"", 0, 1, "UTF-8"},         /* overlong '/' */
        {"\"\xed\xa0\x80\"", 0, 1, "UTF-8"},     /* an encoded surrogate */
        {"\"\xf4\x90\x80\x80\"", 0, 1, "UTF-8"}, /* above U+10FFFF */
        {"\"\xe2\x82\"", 0, 1, "UTF-8"},         /* cut short */
        {"01", 0, 1, "after the JSON value"},
        {"-", 0, 0, "digit"},
        {"1.", 0, 2, "digit"},
        {"1e", 0, 2, "digit"},
        {".5", 0, 0, "a value"},
        {"+1", 0, 0, "a value"},
        {"1e400", 0, 0, "out of range"},
        {"-1e400", 0, 0, "out of range"},
        {"9223372036854775808", 0, 0, "out of range"},
        {"-9223372036854775809", 0, 0, "out of range"},
        {"tru", 0, 0, "true"},
        {"nul", 0, 0, "null"},
        {"NaN", 0, 0, "a value"},
        {"Infinity", 0, 0, "a value"},
        {"'a'", 0, 0, "a value"},
        {"\xef\xbb\xbf{}", 0, 0, "0xEF"},
        {"{\"a\":1,\"b\":2,\"a\":3}", 0, 13, "duplicate key \"a\""},
        {"[1] // c", 0, 4, "after"},
        {"{\"a\":1}\0", 8, 7, "0x00"},
        {"[\0]", 3, 1, "0x00"},
    };
    size_t i;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t len = cases[i].len ? cases[i].len : strlen(cases[i].text);
        char *copy = (char *)malloc(len ? len : 1); /* exactly len bytes: reading past them is caught by ASan */
        json_error je;
        json *r;
        CHECK(copy != NULL);
        memcpy(copy, cases[i].text, len);
        r = json_parse(copy, len, &je);
        EXPECTF(r == NULL, "case %d (%s): accepted", (int)i, cases[i].text);
        if (r) json_free(r);
        else {
            EXPECTF(je.offset == cases[i].offset, "case %d (%s): offset %llu, expected %llu (%s)", (int)i,
                    cases[i].text, (unsigned long long)je.offset, (unsigned long long)cases[i].offset, je.message);
            EXPECTF(strstr(je.message, cases[i].words) != NULL, "case %d (%s): message \"%s\" lacks \"%s\"", (int)i,
                    cases[i].text, je.message, cases[i].words);
        }
        free(copy);
    }
    /* one level too deep */
    {
        char deep[2 * JSON_MAX_DEPTH + 3];
        json_error je;
        int k;
        for (k = 0; k <= JSON_MAX_DEPTH; k++) {
            deep[k] = '[';
            deep[2 * JSON_MAX_DEPTH + 1 - k] = ']';
        }
        CHECK(json_parse(deep, 2 * JSON_MAX_DEPTH + 2, &je) == NULL);
        CHECKF(strstr(je.message, "nesting") && je.offset == JSON_MAX_DEPTH, "%s at %llu", je.message,
               (unsigned long long)je.offset);
    }
}

/* Every prefix of a valid document, in a buffer of exactly its length. */
TEST(json_prefixes_never_read_past_the_end)
{
    const char *text = "{\"a\": [1, 2.5e-3, \"x\\u00e9\\ud83d\\ude00\xe2\x82\xac\"], \"b\": {\"c\": null, \"d\": true}}";
    size_t n = strlen(text), k;
    int accepted = 0;
    for (k = 0; k <= n; k++) {
        char *copy = (char *)malloc(k ? k : 1);
        json_error je;
        json *r;
        CHECK(copy != NULL);
        memcpy(copy, text, k);
        r = json_parse(copy, k, &je);
        if (r) accepted++;
        EXPECTF(r == NULL || k == n, "prefix of %d bytes accepted", (int)k);
        EXPECTF(r != NULL || je.offset <= k, "prefix of %d bytes: offset %llu", (int)k, (unsigned long long)je.offset);
        json_free(r);
        free(copy);
    }
    CHECK(accepted == 1);
}

/* ------------------------------------------------------------------------ */
/* The safetensors header parser                                            */

/* A safetensors file in memory from a header text and a data size. */
static unsigned char *st_file(const char *header, size_t data, size_t *len)
{
    size_t h = strlen(header), i;
    unsigned char *b = (unsigned char *)calloc(8 + h + data + 1, 1);
    if (!b) return NULL;
    for (i = 0; i < 8; i++) b[i] = (unsigned char)((uint64_t)h >> (8 * i));
    memcpy(b + 8, header, h);
    *len = 8 + h + data;
    return b;
}

TEST(safetensors_headers)
{
    static const struct {
        const char *header;
        size_t data;
        const char *words; /* NULL: valid */
    } cases[] = {
        {"{\"__metadata__\":{\"format\":\"pt\"},\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
         "\"b\":{\"dtype\":\"BF16\",\"shape\":[],\"data_offsets\":[24,26]},"
         "\"z\":{\"dtype\":\"U8\",\"shape\":[0,5],\"data_offsets\":[26,26]}}   ",
         26, NULL},
        {"{}", 0, NULL},
        {"{}", 1, "bytes 0 .. 0|no tensor"},
        {"[]", 0, "start with '{'"},
        {" {}", 0, "start with '{'"},
        {"{\"a\":1}", 0, "not an object"},
        {"{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "no \"dtype\""},
        {"{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, "no \"shape\""},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "data_offsets"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4, "data_offsets"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", 4, "data_offsets"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}", 4, "end before"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 4, "data_offsets"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4, "non-negative integers"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, "non-negative integers"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,8]}}", 4, "outside the data"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4, "cover 4 bytes|F32 [2] needs 8"},
        {"{\"a\":{\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "unknown dtype \"f32\""},
        {"{\"a\":{\"dtype\":7,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "dtype"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,4]}}", 4, "overflows"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4,
         "17 dimensions"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[2,6]}}",
         6, "\"a\" [0, 4] and \"b\" [2, 6] overlap"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
         12, "bytes 4 .. 7|no tensor"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
         "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
         4, "duplicate key"},
        {"{\"__metadata__\":{\"format\":1}}", 0, "__metadata__"},
        {"{\"__metadata__\":[]}", 0, "__metadata__"},
        {"{\"a\\u0000b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "NUL"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}", 4, "not valid JSON|end of input"},
    };
    size_t i;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t len;
        unsigned char *f = st_file(cases[i].header, cases[i].data, &len);
        st_header h;
        gpt_error err;
        gpt_status st;
        CHECK(f != NULL);
        st = st_parse_memory(f, len, "t.safetensors", &h, &err);
        if (!cases[i].words) {
            EXPECTF(st == GPT_OK, "case %d: %s", (int)i, err.message);
            if (st == GPT_OK && i == 0) {
                EXPECTF(h.n == 3 && !strcmp(h.tensors[0].name, "a") && h.tensors[0].dtype == ST_F32 &&
                            h.tensors[0].ndim == 2 && h.tensors[0].shape[1] == 3 && h.tensors[1].ndim == 0 &&
                            h.tensors[1].numel == 1 && h.tensors[2].numel == 0 && h.data_size == 26,
                        "case 0 parsed wrongly");
            }
            st_header_free(&h);
        } else {
            char words[256], *w;
            EXPECTF(st == GPT_ERR_FORMAT, "case %d: status %s (%s)", (int)i, gpt_status_name(st), err.message);
            snprintf(words, sizeof words, "%s", cases[i].words);
            for (w = strtok(words, "|"); w; w = strtok(NULL, "|"))
                EXPECTF(strstr(err.message, w) != NULL, "case %d: \"%s\" lacks \"%s\"", (int)i, err.message, w);
            EXPECTF(strstr(err.message, "t.safetensors") != NULL, "case %d: \"%s\" does not name the file", (int)i,
                    err.message);
        }
        free(f);
    }
    /* header lengths: past the end, past 2^63, larger than safetensors allows */
    {
        unsigned char f[16] = {0};
        st_header h;
        gpt_error err;
        f[0] = 9;
        CHECK(st_parse_memory(f, 16, "t", &h, &err) == GPT_ERR_FORMAT && strstr(err.message, "runs past"));
        memset(f, 0xff, 8);
        CHECK(st_parse_memory(f, 16, "t", &h, &err) == GPT_ERR_FORMAT && strstr(err.message, "runs past"));
        CHECK(st_parse_memory(f, 7, "t", &h, &err) == GPT_ERR_FORMAT && strstr(err.message, "too short"));
        CHECK(st_parse_memory(f, 0, "t", &h, &err) == GPT_ERR_FORMAT);
    }
}

/* ------------------------------------------------------------------------ */
/* Fuzzer regressions                                                       */

static int run_dir(const char *dir, int is_json)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    if (!d) return 0;
    while ((e = readdir(d)) != NULL) {
        char path[1024];
        size_t len;
        char *buf, *exact;
        if (e->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        buf = test_read_file(path, &len);
        if (!buf) continue;
        exact = (char *)malloc(len ? len : 1);
        if (exact) {
            memcpy(exact, buf, len);
            if (is_json) {
                json_error je;
                json_free(json_parse(exact, len, &je));
            } else {
                st_header h;
                gpt_error err;
                if (st_parse_memory(exact, len, path, &h, &err) == GPT_OK) st_header_free(&h);
            }
            n++;
        }
        free(exact);
        free(buf);
    }
    closedir(d);
    return n;
}

TEST(fuzz_seeds_and_regressions)
{
    int n = 0;
    n += run_dir("tests/fuzz/seeds/json", 1);
    n += run_dir("tests/fuzz/regressions/json", 1);
    n += run_dir("tests/fuzz/seeds/safetensors", 0);
    n += run_dir("tests/fuzz/regressions/safetensors", 0);
    printf("# %d fuzz seeds and regression inputs parsed\n", n);
    CHECK(n >= 10);
}

int main(void)
{
    const char *b = getenv("BUILD");
    char base[400];
    snprintf(base, sizeof base, "%s", b && *b ? b : "build");
    make_dir(base);
    snprintf(tmp_dir, sizeof tmp_dir, "%s/tmp_convert", base);
    make_dir(tmp_dir);
    RUN(json_accepts_and_decodes);
    RUN(json_rejects_with_offsets);
    RUN(json_prefixes_never_read_past_the_end);
    RUN(safetensors_headers);
    RUN(golden_hf_and_llmc_f32);
    RUN(lossless_f16_and_bf16_sources);
    RUN(reduced_precision_close_to_f32);
    RUN(bad_hf_folders);
    RUN(bad_configs);
    RUN(bad_sharded_indexes);
    RUN(truncated_safetensors);
    RUN(file_shrinks_while_converting);
    RUN(corrupted_headers_never_crash);
    RUN(bad_llmc_files);
    RUN(existing_output);
    RUN(fuzz_seeds_and_regressions);
    if (!test_n_fail) remove_dir(tmp_dir);
    return test_summary();
}
