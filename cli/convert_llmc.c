/*
 * convert_llmc.c - reads llm.c checkpoints (karpathy/llm.c, gpt2_124M.bin
 * and the like) for `gpt convert --llmc`.
 *
 * Layout: a header of 256 little-endian int32 ([0] magic 20240326, [1]
 * version 3 = fp32 or 5 = bf16, [2] max_seq_len T, [3] vocab_size V, [4]
 * num_layers L, [5] num_heads H, [6] channels C, [7] padded_vocab_size Vp),
 * then 16 tensors, each stacked over the layers, in nn.Linear layout
 * ([out, in], the same as ours): wte [Vp, C], wpe [T, C], ln1w [L, C],
 * ln1b [L, C], qkvw [L, 3C, C], qkvb [L, 3C], attprojw [L, C, C],
 * attprojb [L, C], ln2w [L, C], ln2b [L, C], fcw [L, 4C, C], fcb [L, 4C],
 * fcprojw [L, C, 4C], fcprojb [L, C], lnfw [C], lnfb [C]. Rows V .. Vp-1 of
 * wte are padding and are dropped. The file holds nothing else, so its length
 * is checked exactly. It holds no tokenizer: vocab.json + merges.txt give it.
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "convert.h"

struct llmc_model {
    char *path;
    FILE *f;
    uint64_t size;
    int version;
    int T, V, L, H, C, Vp;
    cv_type type;
    uint64_t numel[16]; /* elements of each of the 16 tensors */
    uint64_t off[16];   /* byte offset of each in the file */
    gpt_tokenizer *tok;
};

static int32_t get_i32(const unsigned char *p)
{
    uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    return u <= 0x7fffffffu ? (int32_t)u : -(int32_t)(~u) - 1;
}

static gpt_status check_field(const char *path, const char *name, int32_t v, int32_t hi, gpt_error *err)
{
    if (v < 1 || v > hi)
        return gpt__set_error(err, GPT_ERR_FORMAT, "%s: header %s is %ld; it must be in 1 .. %ld", path, name, (long)v,
                        (long)hi);
    return GPT_OK;
}

static gpt_status read_header(llmc_model *m, gpt_error *err)
{
    unsigned char h[1024];
    int32_t magic, f[8];
    uint64_t C, L, total = 0, es, expect;
    gpt_status st;
    int i;
    if (m->size < 1024)
        return gpt__set_error(err, GPT_ERR_FORMAT, "%s: %llu bytes is too short for an llm.c checkpoint (1024-byte header)",
                        m->path, (unsigned long long)m->size);
    if ((st = cv_read_at(m->f, m->path, 0, h, sizeof h, err)) != GPT_OK) return st;
    for (i = 0; i < 8; i++) f[i] = get_i32(h + 4 * i);
    magic = f[0];
    if (magic != LLMC_MAGIC) {
        const char *what = magic == 20240328   ? " (that is an llm.c tokenizer file)"
                           : magic == 20240327 ? " (that is an llm.c training-state file)"
                           : magic == 20240520 || magic == 20240522 ? " (that is an llm.c token data file)"
                                                                    : "";
        return gpt__set_error(err, GPT_ERR_FORMAT, "%s: not an llm.c model checkpoint: magic %ld, expected %d%s", m->path,
                        (long)magic, LLMC_MAGIC, what);
    }
    m->version = f[1];
    if (m->version == 3) m->type = CV_F32;
    else if (m->version == 5) m->type = CV_BF16;
    else
        return gpt__set_error(err, GPT_ERR_UNSUPPORTED, "%s: llm.c checkpoint version %ld is not supported (3 = fp32, 5 = bf16)",
                        m->path, (long)m->version);
    if ((st = check_field(m->path, "max_seq_len", f[2], 1048576, err)) != GPT_OK) return st;
    if ((st = check_field(m->path, "vocab_size", f[3], 16777216, err)) != GPT_OK) return st;
    if ((st = check_field(m->path, "num_layers", f[4], 4096, err)) != GPT_OK) return st;
    if ((st = check_field(m->path, "num_heads", f[5], 65536, err)) != GPT_OK) return st;
    if ((st = check_field(m->path, "channels", f[6], 65536, err)) != GPT_OK) return st;
    if ((st = check_field(m->path, "padded_vocab_size", f[7], 33554432, err)) != GPT_OK) return st;
    m->T = f[2];
    m->V = f[3];
    m->L = f[4];
    m->H = f[5];
    m->C = f[6];
    m->Vp = f[7];
    if (m->Vp < m->V)
        return gpt__set_error(err, GPT_ERR_FORMAT, "%s: padded_vocab_size %d is smaller than vocab_size %d", m->path, m->Vp,
                        m->V);
    if (m->C % m->H != 0)
        return gpt__set_error(err, GPT_ERR_FORMAT, "%s: channels %d is not a multiple of num_heads %d", m->path, m->C, m->H);
    C = (uint64_t)m->C;
    L = (uint64_t)m->L;
    m->numel[0] = (uint64_t)m->Vp * C;
    m->numel[1] = (uint64_t)m->T * C;
    m->numel[2] = L * C;
    m->numel[3] = L * C;
    m->numel[4] = L * 3 * C * C;
    m->numel[5] = L * 3 * C;
    m->numel[6] = L * C * C;
    m->numel[7] = L * C;
    m->numel[8] = L * C;
    m->numel[9] = L * C;
    m->numel[10] = L * 4 * C * C;
    m->numel[11] = L * 4 * C;
    m->numel[12] = L * 4 * C * C;
    m->numel[13] = L * C;
    m->numel[14] = C;
    m->numel[15] = C;
    es = cv_type_size(m->type);
    for (i = 0; i < 16; i++) {
        m->off[i] = 1024 + total * es;
        total += m->numel[i]; /* at most ~2^25 * 2^16 * 50: no overflow */
    }
    expect = 1024 + total * es;
    if (m->size != expect)
        return gpt__set_error(err, GPT_ERR_FORMAT,
                        "%s: the file is %llu bytes, but its header (%s, L %d, H %d, C %d, T %d, V %d padded to %d) "
                        "says %llu: %s",
                        m->path, (unsigned long long)m->size, m->version == 3 ? "fp32" : "bf16", m->L, m->H, m->C,
                        m->T, m->V, m->Vp, (unsigned long long)expect,
                        m->size < expect ? "it is truncated" : "it has extra bytes at the end");
    return GPT_OK;
}

llmc_model *llmc_open(const char *path, const char *vocab_path, const char *merges_path, gpt_error *err)
{
    llmc_model *m = (llmc_model *)gpt__calloc(1, sizeof *m);
    gpt_status st = GPT_OK;
    if (!m || !(m->path = (char *)gpt__alloc(strlen(path) + 1))) {
        gpt__free(m);
        gpt__set_error(err, GPT_ERR_OUT_OF_MEMORY, "out of memory");
        return NULL;
    }
    strcpy(m->path, path);
    m->f = cv_open(path, &m->size, err);
    if (!m->f) {
        st = err ? err->status : GPT_ERR_IO;
        goto done;
    }
    if ((st = read_header(m, err)) != GPT_OK) goto done;
    if (!vocab_path || !merges_path) {
        st = gpt__set_error(err, GPT_ERR_INVALID_ARG, "an llm.c checkpoint holds no tokenizer: give vocab.json and merges.txt");
        goto done;
    }
    if (!cv_exists(vocab_path) || !cv_exists(merges_path)) {
        st = gpt__set_error(err, GPT_ERR_IO, "%s: cannot open it (the tokenizer needs vocab.json and merges.txt)",
                      cv_exists(vocab_path) ? merges_path : vocab_path);
        goto done;
    }
    m->tok = gpt_tokenizer_load(vocab_path, merges_path, err);
    if (!m->tok) {
        st = err ? err->status : GPT_ERR_FORMAT;
        goto done;
    }
    if (gpt_tokenizer_n_vocab(m->tok) != m->V)
        st = gpt__set_error(err, GPT_ERR_FORMAT, "%s has %d tokens, but the checkpoint's vocab_size is %d", vocab_path,
                      gpt_tokenizer_n_vocab(m->tok), m->V);
done:
    if (st != GPT_OK) {
        llmc_close(m);
        return NULL;
    }
    return m;
}

void llmc_close(llmc_model *m)
{
    if (!m) return;
    if (m->f) fclose(m->f);
    gpt_tokenizer_free(m->tok);
    gpt__free(m->path);
    gpt__free(m);
}

void llmc_spec(const llmc_model *m, ckpt_spec *spec)
{
    memset(spec, 0, sizeof *spec);
    spec->n_vocab = m->V;
    spec->n_ctx = m->T;
    spec->n_embd = m->C;
    spec->n_head = m->H;
    spec->n_layer = m->L;
    spec->ln_eps = 1e-5f; /* llm.c's layernorm uses 1e-5 */
    spec->dtype = GPT_DTYPE_F32;
    spec->wpe_dtype = GPT_DTYPE_F32;
    spec->tok = m->tok;
}

gpt_status llmc_source(void *user, int k, int rows, int cols, float *dst, gpt_error *err)
{
    llmc_model *m = (llmc_model *)user;
    uint64_t n = (uint64_t)rows * (uint64_t)cols, off;
    int t;
    if (k == 0) {
        t = 0;
        off = m->off[0]; /* the first V of the Vp rows */
        if (n != (uint64_t)m->V * (uint64_t)m->C) t = -1;
    } else if (k == 1) {
        t = 1;
        off = m->off[1];
        if (n != m->numel[1]) t = -1;
    } else if (k >= 2 + 12 * m->L) {
        t = k == 2 + 12 * m->L ? 14 : 15;
        off = m->off[t];
        if (k > 3 + 12 * m->L || n != m->numel[t]) t = -1;
    } else {
        int l = (k - 2) / 12;
        t = 2 + (k - 2) % 12;
        off = m->off[t] + (uint64_t)l * (m->numel[t] / (uint64_t)m->L) * cv_type_size(m->type);
        if (n != m->numel[t] / (uint64_t)m->L) t = -1;
    }
    if (t < 0) return gpt__set_error(err, GPT_ERR_INVALID_ARG, "%s: tensor %d has no %d x %d values", m->path, k, rows, cols);
    return cv_read_floats(m->f, m->path, off, m->type, (size_t)n, dst, err);
}
