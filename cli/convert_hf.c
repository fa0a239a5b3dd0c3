/*
 * convert_hf.c - reads Hugging Face GPT-2 folders for `gpt convert --hf`:
 * config.json, model.safetensors (or model.safetensors.index.json and its
 * shards), vocab.json and merges.txt.
 *
 * Everything is checked when the folder is opened, before a byte of the
 * output is written: config.json's hyperparameters and the features gpt.c
 * does not have, every safetensors header (safetensors.h), and every tensor's
 * name, dtype and shape against config.json. The weights themselves are read
 * one tensor at a time when the checkpoint writer asks for them (hf_source),
 * so converting gpt2-xl needs memory for its largest tensor, not the file.
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "convert.h"
#include "json.h"
#include "safetensors.h"

typedef struct hf_shard {
    char *file; /* its name in the folder */
    char *path;
    FILE *f;
    uint64_t size;
    st_header h;
} hf_shard;

typedef struct hf_slot {
    int shard; /* -1: not found */
    const st_tensor *t;
} hf_slot;

struct hf_model {
    char *dir;
    int n_vocab, n_ctx, n_embd, n_head, n_layer;
    float ln_eps;
    gpt_tokenizer *tok;
    hf_shard *shards;
    int n_shards;
    hf_slot *slots; /* one per canonical tensor */
    hf_slot lm_head;
};

#define HF_CHUNK (4u << 20)

/* ------------------------------------------------------------------------ */
/* config.json                                                              */

static void describe(const json *v, char *buf, size_t cap)
{
    if (v->type == JSON_NUMBER) snprintf(buf, cap, "%.17g", v->number);
    else if (v->type == JSON_STRING) {
        char s[64];
        snprintf(buf, cap, "\"%s\"", st_printable(v->str, s, sizeof s));
    } else snprintf(buf, cap, "%s", json_type_name(v->type));
}

/* An integer in [1, hi]; *present = 0 when the key is absent. */
static gpt_status cfg_int(const json *root, const char *key, const char *path, int64_t hi, int *out, int *present,
                          gpt_error *err)
{
    const json *v = json_get(root, key);
    int64_t x;
    char d[96];
    *present = v != NULL;
    if (!v) return GPT_OK;
    if (!json_int(v, &x) || x < 1 || x > hi) {
        describe(v, d, sizeof d);
        return gpt__set_error(err, GPT_ERR_FORMAT, "%s: \"%s\" must be an integer in 1 .. %lld, not %s", path, key,
                        (long long)hi, d);
    }
    *out = (int)x;
    return GPT_OK;
}

static gpt_status cfg_need_int(const json *root, const char *key, const char *path, int64_t hi, int *out,
                               gpt_error *err)
{
    int present;
    gpt_status st = cfg_int(root, key, path, hi, out, &present, err);
    if (st == GPT_OK && !present) return gpt__set_error(err, GPT_ERR_FORMAT, "%s: \"%s\" is missing", path, key);
    return st;
}

/* A boolean that must have a given value (when present) for gpt.c to compute
 * the same thing. */
static gpt_status cfg_bool_is(const json *root, const char *key, int want, const char *path, const char *why,
                              gpt_error *err)
{
    const json *v = json_get(root, key);
    if (!v) return GPT_OK;
    if (v->type != JSON_BOOL)
        return gpt__set_error(err, GPT_ERR_FORMAT, "%s: \"%s\" must be true or false, not %s", path, key,
                        json_type_name(v->type));
    if (v->boolean != want)
        return gpt__set_error(err, GPT_ERR_UNSUPPORTED, "%s: \"%s\": %s is not supported (%s)", path, key,
                        v->boolean ? "true" : "false", why);
    return GPT_OK;
}

static gpt_status read_config(hf_model *m, const char *path, gpt_error *err)
{
    size_t len;
    char *text = cli_read_file(path, CLI_MAX_JSON, &len, err), d[96];
    json_error je;
    json *root;
    const json *v;
    int present;
    gpt_status st;
    if (!text) return err ? err->status : GPT_ERR_IO;
    root = json_parse(text, len, &je);
    gpt__free(text);
    if (!root)
        return gpt__set_error(err, je.out_of_memory ? GPT_ERR_OUT_OF_MEMORY : GPT_ERR_FORMAT, "%s: not valid JSON: %s at byte %llu", path, je.message,
                        (unsigned long long)je.offset);
    if (root->type != JSON_OBJECT) {
        st = gpt__set_error(err, GPT_ERR_FORMAT, "%s: expected a JSON object, found %s", path, json_type_name(root->type));
        goto done;
    }
    v = json_get(root, "model_type");
    if (v && (v->type != JSON_STRING || strcmp(v->str, "gpt2") != 0)) {
        describe(v, d, sizeof d);
        st = gpt__set_error(err, GPT_ERR_UNSUPPORTED, "%s: model_type is %s; gpt convert --hf reads GPT-2 models (\"gpt2\")",
                      path, d);
        goto done;
    }
    if ((st = cfg_need_int(root, "n_embd", path, 65536, &m->n_embd, err)) != GPT_OK) goto done;
    if ((st = cfg_need_int(root, "n_layer", path, 4096, &m->n_layer, err)) != GPT_OK) goto done;
    if ((st = cfg_need_int(root, "n_head", path, 65536, &m->n_head, err)) != GPT_OK) goto done;
    if ((st = cfg_need_int(root, "vocab_size", path, 16777216, &m->n_vocab, err)) != GPT_OK) goto done;
    if ((st = cfg_int(root, "n_positions", path, 1048576, &m->n_ctx, &present, err)) != GPT_OK) goto done;
    if (!present) {
        if ((st = cfg_int(root, "n_ctx", path, 1048576, &m->n_ctx, &present, err)) != GPT_OK) goto done;
        if (!present) {
            st = gpt__set_error(err, GPT_ERR_FORMAT, "%s: \"n_positions\" (or \"n_ctx\") is missing", path);
            goto done;
        }
    }
    if (m->n_embd % m->n_head != 0) {
        st = gpt__set_error(err, GPT_ERR_FORMAT, "%s: n_embd %d is not a multiple of n_head %d", path, m->n_embd,
                      m->n_head);
        goto done;
    }
    m->ln_eps = 1e-5f;
    v = json_get(root, "layer_norm_epsilon");
    if (v) {
        if (v->type != JSON_NUMBER || !(v->number > 0 && v->number < 1) || !((float)v->number > 0.0f)) {
            describe(v, d, sizeof d);
            st = gpt__set_error(err, GPT_ERR_FORMAT, "%s: \"layer_norm_epsilon\" must be a number in (0, 1), not %s", path,
                          d);
            goto done;
        }
        m->ln_eps = (float)v->number;
    }
    v = json_get(root, "activation_function");
    if (v && (v->type != JSON_STRING || (strcmp(v->str, "gelu_new") != 0 && strcmp(v->str, "gelu_pytorch_tanh") != 0))) {
        describe(v, d, sizeof d);
        st = gpt__set_error(err, GPT_ERR_UNSUPPORTED,
                      "%s: activation_function %s is not supported: gpt.c computes GELU in its tanh form "
                      "(\"gelu_new\" or \"gelu_pytorch_tanh\")",
                      path, d);
        goto done;
    }
    v = json_get(root, "n_inner");
    if (v && v->type != JSON_NULL) {
        int64_t x;
        if (!json_int(v, &x) || x != 4 * (int64_t)m->n_embd) {
            describe(v, d, sizeof d);
            st = gpt__set_error(err, GPT_ERR_UNSUPPORTED,
                          "%s: n_inner %s is not supported: gpt.c's MLP is 4 x n_embd = %d wide (n_inner null)", path,
                          d, 4 * m->n_embd);
            goto done;
        }
    }
    if ((st = cfg_bool_is(root, "scale_attn_weights", 1, path, "gpt.c scales attention by 1/sqrt(head size)", err)) !=
        GPT_OK)
        goto done;
    if ((st = cfg_bool_is(root, "scale_attn_by_inverse_layer_idx", 0, path,
                          "gpt.c does not scale attention by the layer index", err)) != GPT_OK)
        goto done;
    if ((st = cfg_bool_is(root, "add_cross_attention", 0, path, "gpt.c has no cross-attention", err)) != GPT_OK)
        goto done;
    st = GPT_OK;
done:
    json_free(root);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Tensor names and shapes                                                  */

static const char *const block_names[12] = {
    "ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias",
    "attn.c_proj.weight", "attn.c_proj.bias", "ln_2.weight", "ln_2.bias",
    "mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias"};

enum { CLS_TENSOR, CLS_SKIP, CLS_LM_HEAD, CLS_UNKNOWN, CLS_BAD_LAYER };

/* Sorts a (prefix-stripped) name into canonical tensor k, a skipped mask
 * buffer, the output head, or something GPT-2 does not have. */
static int classify(const char *name, int L, int *k, long *layer)
{
    *layer = -1;
    if (!strcmp(name, "wte.weight")) return *k = 0, CLS_TENSOR;
    if (!strcmp(name, "wpe.weight")) return *k = 1, CLS_TENSOR;
    if (!strcmp(name, "ln_f.weight")) return *k = 2 + 12 * L, CLS_TENSOR;
    if (!strcmp(name, "ln_f.bias")) return *k = 3 + 12 * L, CLS_TENSOR;
    if (!strcmp(name, "lm_head.weight")) return CLS_LM_HEAD;
    if (name[0] == 'h' && name[1] == '.' && name[2] >= '0' && name[2] <= '9') {
        const char *p = name + 2, *rest;
        long l = 0;
        int i;
        if (p[0] == '0' && p[1] != '.') return CLS_UNKNOWN; /* no leading zeros */
        while (*p >= '0' && *p <= '9') {
            l = l * 10 + (*p - '0');
            if (l > 1000000) return CLS_UNKNOWN;
            p++;
        }
        if (*p != '.') return CLS_UNKNOWN;
        rest = p + 1;
        for (i = 0; i < 12; i++)
            if (!strcmp(rest, block_names[i])) break;
        if (i == 12 && strcmp(rest, "attn.bias") != 0 && strcmp(rest, "attn.masked_bias") != 0) return CLS_UNKNOWN;
        *layer = l;
        if (l >= L) return CLS_BAD_LAYER;
        if (i == 12) return CLS_SKIP;
        *k = 2 + 12 * (int)l + i;
        return CLS_TENSOR;
    }
    return CLS_UNKNOWN;
}

static int is_conv1d(const hf_model *m, int k)
{
    int i;
    if (k < 2 || k >= 2 + 12 * m->n_layer) return 0;
    i = (k - 2) % 12;
    return i == 2 || i == 4 || i == 8 || i == 10;
}

/* The shape Hugging Face stores tensor k in, and how to explain it. */
static int hf_shape(const hf_model *m, int k, uint64_t shape[2], const char **why)
{
    int C = m->n_embd;
    if (k == 0) {
        shape[0] = (uint64_t)m->n_vocab;
        shape[1] = (uint64_t)C;
        *why = "[vocab_size, n_embd]";
        return 2;
    }
    if (k == 1) {
        shape[0] = (uint64_t)m->n_ctx;
        shape[1] = (uint64_t)C;
        *why = "[n_positions, n_embd]";
        return 2;
    }
    if (k < 2 + 12 * m->n_layer) {
        switch ((k - 2) % 12) {
        case 2: shape[0] = (uint64_t)C; shape[1] = 3 * (uint64_t)C; *why = "Conv1D [in, out] = [n_embd, 3 n_embd]"; return 2;
        case 3: shape[0] = 3 * (uint64_t)C; *why = "[3 n_embd]"; return 1;
        case 4: shape[0] = (uint64_t)C; shape[1] = (uint64_t)C; *why = "Conv1D [in, out] = [n_embd, n_embd]"; return 2;
        case 8: shape[0] = (uint64_t)C; shape[1] = 4 * (uint64_t)C; *why = "Conv1D [in, out] = [n_embd, 4 n_embd]"; return 2;
        case 9: shape[0] = 4 * (uint64_t)C; *why = "[4 n_embd]"; return 1;
        case 10: shape[0] = 4 * (uint64_t)C; shape[1] = (uint64_t)C; *why = "Conv1D [in, out] = [4 n_embd, n_embd]"; return 2;
        default: break;
        }
    }
    shape[0] = (uint64_t)C;
    *why = "[n_embd]";
    return 1;
}

static void fmt_shape(const uint64_t *shape, int ndim, char *buf, size_t cap)
{
    size_t w = (size_t)snprintf(buf, cap, "[");
    int i;
    for (i = 0; i < ndim && w < cap; i++)
        w += (size_t)snprintf(buf + w, cap - w, "%s%llu", i ? ", " : "", (unsigned long long)shape[i]);
    if (w < cap) snprintf(buf + w, cap - w, "]");
}

static int cv_type_of(st_dtype t, cv_type *out)
{
    if (t == ST_F32) *out = CV_F32;
    else if (t == ST_F16) *out = CV_F16;
    else if (t == ST_BF16) *out = CV_BF16;
    else return 0;
    return 1;
}

static gpt_status check_tensor(const hf_model *m, const hf_slot *s, int k, const char *explain, gpt_error *err)
{
    const st_tensor *t = s->t;
    const char *file = m->shards[s->shard].path, *why;
    uint64_t want[2];
    int nd = hf_shape(m, k, want, &why), same = t->ndim == nd, i;
    if (explain) why = explain;
    char nm[96], a[160], b[160];
    cv_type ct = CV_F32;
    if (!cv_type_of(t->dtype, &ct))
        return gpt__set_error(err, GPT_ERR_UNSUPPORTED, "%s: tensor %s has dtype %s; gpt convert reads F32, F16 and BF16",
                        file, st_printable(t->name, nm, sizeof nm), st_dtype_name(t->dtype));
    for (i = 0; same && i < nd; i++) same = t->shape[i] == want[i];
    if (!same) {
        fmt_shape(t->shape, t->ndim, a, sizeof a);
        fmt_shape(want, nd, b, sizeof b);
        return gpt__set_error(err, GPT_ERR_FORMAT, "%s: tensor %s has shape %s, expected %s (%s from config.json)", file,
                        st_printable(t->name, nm, sizeof nm), a, b, why);
    }
    return GPT_OK;
}

/* ------------------------------------------------------------------------ */
/* Finding the tensors                                                      */

static int name_cmp(const void *a, const void *b)
{
    return strcmp((*(const st_tensor *const *)a)->name, (*(const st_tensor *const *)b)->name);
}

/* A file name from the index must be a plain name in the folder. */
static int plain_file_name(const char *s, size_t len)
{
    size_t i;
    if (len == 0 || strlen(s) != len || !strcmp(s, ".") || !strcmp(s, "..")) return 0;
    for (i = 0; i < len; i++)
        if (s[i] == '/' || s[i] == '\\' || s[i] == ':') return 0;
    return 1;
}

static gpt_status open_shard(hf_model *m, const char *name, const char *named_by, gpt_error *err)
{
    hf_shard *s = &m->shards[m->n_shards];
    gpt_error e;
    gpt_status st;
    memset(s, 0, sizeof *s);
    m->n_shards++; /* hf_close frees what is set */
    s->path = cv_join(m->dir, name);
    s->file = (char *)gpt__alloc(strlen(name) + 1);
    if (s->file) strcpy(s->file, name);
    if (!s->path || !s->file) return gpt__set_error(err, GPT_ERR_OUT_OF_MEMORY, "out of memory");
    s->f = cv_open(s->path, &s->size, &e);
    if (!s->f) {
        if (named_by) return gpt__set_error(err, e.status, "%s (named in %s)", e.message, named_by);
        return gpt__set_error(err, e.status, "%s", e.message);
    }
    st = st_read_file(s->f, s->size, s->path, &s->h, err);
    return st;
}

/* Puts tensor t of shard si into its slot. */
static gpt_status assign(hf_model *m, int si, const st_tensor *t, gpt_error *err)
{
    const char *name = t->name;
    int k = 0, cls;
    long layer;
    hf_slot *slot;
    char nm[96], other[96];
    if (!strncmp(name, "transformer.", 12)) name += 12;
    cls = classify(name, m->n_layer, &k, &layer);
    switch (cls) {
    case CLS_SKIP: return GPT_OK;
    case CLS_UNKNOWN:
        return gpt__set_error(err, GPT_ERR_FORMAT, "%s: unexpected tensor \"%s\": not part of a GPT-2 language model",
                        m->shards[si].path, st_printable(t->name, nm, sizeof nm));
    case CLS_BAD_LAYER:
        return gpt__set_error(err, GPT_ERR_FORMAT, "%s: tensor %s is in layer %ld, but config.json says n_layer %d",
                        m->shards[si].path, st_printable(t->name, nm, sizeof nm), layer, m->n_layer);
    case CLS_LM_HEAD: slot = &m->lm_head; break;
    default: slot = &m->slots[k]; break;
    }
    if (slot->shard >= 0)
        return gpt__set_error(err, GPT_ERR_FORMAT, "%s: tensor %s appears twice (also as %s in %s)", m->shards[si].path,
                        st_printable(t->name, nm, sizeof nm), st_printable(slot->t->name, other, sizeof other),
                        m->shards[slot->shard].path);
    slot->shard = si;
    slot->t = t;
    return GPT_OK;
}

static gpt_status find_tensors(hf_model *m, gpt_error *err)
{
    char *single = cv_join(m->dir, "model.safetensors"), *index = cv_join(m->dir, "model.safetensors.index.json");
    char *text = NULL, *bin = NULL;
    json *root = NULL;
    const json *wm;
    gpt_status st = GPT_OK;
    size_t i, len;
    int si;
    if (!single || !index) {
        st = gpt__set_error(err, GPT_ERR_OUT_OF_MEMORY, "out of memory");
        goto done;
    }
    if (cv_exists(single)) {
        m->shards = (hf_shard *)gpt__calloc(1, sizeof(hf_shard));
        if (!m->shards) {
            st = gpt__set_error(err, GPT_ERR_OUT_OF_MEMORY, "out of memory");
            goto done;
        }
        if ((st = open_shard(m, "model.safetensors", NULL, err)) != GPT_OK) goto done;
        for (i = 0; i < m->shards[0].h.n; i++)
            if ((st = assign(m, 0, &m->shards[0].h.tensors[i], err)) != GPT_OK) goto done;
    } else if (cv_exists(index)) {
        json_error je;
        size_t n_files = 0, j, assigned = 0;
        const char **files;
        text = cli_read_file(index, CLI_MAX_JSON, &len, err);
        if (!text) {
            st = err ? err->status : GPT_ERR_IO;
            goto done;
        }
        root = json_parse(text, len, &je);
        if (!root) {
            st = gpt__set_error(err, je.out_of_memory ? GPT_ERR_OUT_OF_MEMORY : GPT_ERR_FORMAT, "%s: not valid JSON: %s at byte %llu", index, je.message,
                          (unsigned long long)je.offset);
            goto done;
        }
        wm = json_get(root, "weight_map");
        if (!wm || wm->type != JSON_OBJECT || wm->len == 0) {
            st = gpt__set_error(err, GPT_ERR_FORMAT, "%s: no \"weight_map\" object naming the tensors' files", index);
            goto done;
        }
        files = (const char **)gpt__alloc(wm->len * sizeof(char *));
        m->shards = (hf_shard *)gpt__calloc(wm->len, sizeof(hf_shard));
        if (!files || !m->shards) {
            gpt__free((void *)files);
            st = gpt__set_error(err, GPT_ERR_OUT_OF_MEMORY, "out of memory");
            goto done;
        }
        /* the distinct file names, in order of first appearance */
        for (i = 0; i < wm->len; i++) {
            const json *v = &wm->items[i];
            char nm[96];
            if (v->type != JSON_STRING || !plain_file_name(v->str, v->len)) {
                gpt__free((void *)files);
                st = gpt__set_error(err, GPT_ERR_FORMAT, "%s: the file of tensor %s is not a plain file name in the folder",
                              index, st_printable(wm->keys[i].str, nm, sizeof nm));
                goto done;
            }
            for (j = 0; j < n_files; j++)
                if (!strcmp(files[j], v->str)) break;
            if (j == n_files) {
                if (n_files == 4096) {
                    gpt__free((void *)files);
                    st = gpt__set_error(err, GPT_ERR_FORMAT, "%s names more than 4096 files", index);
                    goto done;
                }
                files[n_files++] = v->str;
            }
        }
        for (j = 0; j < n_files; j++) {
            if ((st = open_shard(m, files[j], index, err)) != GPT_OK) break;
        }
        gpt__free((void *)files);
        if (st != GPT_OK) goto done;
        /* the tensors of each shard that the weight map puts there */
        for (si = 0; si < m->n_shards; si++) {
            for (i = 0; i < m->shards[si].h.n; i++) {
                const st_tensor *t = &m->shards[si].h.tensors[i];
                const json *v = json_get(wm, t->name);
                if (!v || strcmp(v->str, m->shards[si].file) != 0) continue;
                assigned++;
                if ((st = assign(m, si, t, err)) != GPT_OK) goto done;
            }
        }
        if (assigned != wm->len) {
            /* name one tensor of the map that its file does not have: each
             * shard's names sorted once, then a binary search per entry */
            const st_tensor ***sorted = (const st_tensor ***)gpt__calloc((size_t)m->n_shards, sizeof(void *));
            char nm[96];
            st = gpt__set_error(err, GPT_ERR_FORMAT, "%s: its weight_map does not match its files", index);
            for (si = 0; sorted && si < m->n_shards; si++) {
                sorted[si] = (const st_tensor **)gpt__alloc((m->shards[si].h.n + 1) * sizeof(void *));
                if (!sorted[si]) break;
                for (j = 0; j < m->shards[si].h.n; j++) sorted[si][j] = &m->shards[si].h.tensors[j];
                qsort((void *)sorted[si], m->shards[si].h.n, sizeof(void *), name_cmp);
            }
            for (i = 0; sorted && si == m->n_shards && i < wm->len; i++) {
                const char *file = wm->items[i].str;
                st_tensor key, *kp = &key;
                int s2;
                for (s2 = 0; s2 < m->n_shards; s2++)
                    if (!strcmp(m->shards[s2].file, file)) break;
                key.name = wm->keys[i].str;
                if (s2 < m->n_shards && strlen(key.name) == wm->keys[i].len &&
                    bsearch(&kp, (const void *)sorted[s2], m->shards[s2].h.n, sizeof(void *), name_cmp))
                    continue;
                st = gpt__set_error(err, GPT_ERR_FORMAT, "%s puts tensor %s in %s, but that file does not have it", index,
                              st_printable(key.name, nm, sizeof nm), s2 < m->n_shards ? m->shards[s2].path : file);
                break;
            }
            for (si = 0; sorted && si < m->n_shards; si++) gpt__free((void *)sorted[si]);
            gpt__free((void *)sorted);
            goto done;
        }
    } else {
        bin = cv_join(m->dir, "pytorch_model.bin");
        if (bin && cv_exists(bin))
            st = gpt__set_error(err, GPT_ERR_UNSUPPORTED,
                          "%s has pytorch_model.bin but no model.safetensors; gpt convert reads safetensors "
                          "(save the model with safe_serialization=True, or download model.safetensors)",
                          m->dir);
        else
            st = gpt__set_error(err, GPT_ERR_IO, "%s: no model.safetensors (nor model.safetensors.index.json) in the folder",
                          m->dir);
        goto done;
    }
    /* every canonical tensor is there, with its dtype and shape */
    for (si = 0; si < 12 * m->n_layer + 4; si++) {
        if (m->slots[si].shard < 0) {
            char nm[96];
            ckpt_spec sp;
            memset(&sp, 0, sizeof sp);
            sp.n_layer = m->n_layer;
            ckpt_tensor_name(&sp, si, nm, sizeof nm);
            st = gpt__set_error(err, GPT_ERR_FORMAT, "%s: tensor %s is missing (looked in %s%s)", m->dir, nm,
                          m->n_shards == 1 ? m->shards[0].path : "the files of ",
                          m->n_shards == 1 ? "" : "model.safetensors.index.json");
            goto done;
        }
        if ((st = check_tensor(m, &m->slots[si], si, NULL, err)) != GPT_OK) goto done;
    }
    if (m->lm_head.shard >= 0 &&
        (st = check_tensor(m, &m->lm_head, 0, "tied to wte: [vocab_size, n_embd]", err)) != GPT_OK)
        goto done;
done:
    json_free(root);
    gpt__free(text);
    gpt__free(single);
    gpt__free(index);
    gpt__free(bin);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Opening and reading                                                      */

hf_model *hf_open(const char *dir, gpt_error *err)
{
    hf_model *m = (hf_model *)gpt__calloc(1, sizeof *m);
    char *config = NULL, *vocab = NULL, *merges = NULL;
    gpt_status st = GPT_OK;
    int k;
    if (!m || !(m->dir = (char *)gpt__alloc(strlen(dir) + 1))) {
        gpt__free(m);
        gpt__set_error(err, GPT_ERR_OUT_OF_MEMORY, "out of memory");
        return NULL;
    }
    strcpy(m->dir, dir);
    {
        size_t n = strlen(m->dir); /* "dir/" -> "dir" in messages */
        while (n > 1 && m->dir[n - 1] == '/') m->dir[--n] = 0;
    }
    m->lm_head.shard = -1;
    config = cv_join(m->dir, "config.json");
    vocab = cv_join(m->dir, "vocab.json");
    merges = cv_join(m->dir, "merges.txt");
    if (!config || !vocab || !merges) {
        st = gpt__set_error(err, GPT_ERR_OUT_OF_MEMORY, "out of memory");
        goto done;
    }
    if (!cv_exists(config)) {
        st = gpt__set_error(err, GPT_ERR_IO, "%s is missing (is %s a Hugging Face GPT-2 folder?)", config, m->dir);
        goto done;
    }
    if ((st = read_config(m, config, err)) != GPT_OK) goto done;
    if (!cv_exists(vocab) || !cv_exists(merges)) {
        st = gpt__set_error(err, GPT_ERR_IO, "%s is missing: the tokenizer needs vocab.json and merges.txt",
                      cv_exists(vocab) ? merges : vocab);
        goto done;
    }
    m->slots = (hf_slot *)gpt__alloc(sizeof(hf_slot) * (size_t)(12 * m->n_layer + 4));
    if (!m->slots) {
        st = gpt__set_error(err, GPT_ERR_OUT_OF_MEMORY, "out of memory");
        goto done;
    }
    for (k = 0; k < 12 * m->n_layer + 4; k++) {
        m->slots[k].shard = -1;
        m->slots[k].t = NULL;
    }
    if ((st = find_tensors(m, err)) != GPT_OK) goto done;
    m->tok = gpt_tokenizer_load(vocab, merges, err);
    if (!m->tok) {
        st = err ? err->status : GPT_ERR_FORMAT;
        goto done;
    }
    if (gpt_tokenizer_n_vocab(m->tok) != m->n_vocab)
        st = gpt__set_error(err, GPT_ERR_FORMAT,
                      "%s has %d tokens, but config.json says vocab_size %d (added tokens are not supported)", vocab,
                      gpt_tokenizer_n_vocab(m->tok), m->n_vocab);
done:
    gpt__free(config);
    gpt__free(vocab);
    gpt__free(merges);
    if (st != GPT_OK) {
        hf_close(m);
        return NULL;
    }
    return m;
}

void hf_close(hf_model *m)
{
    int i;
    if (!m) return;
    for (i = 0; i < m->n_shards; i++) {
        if (m->shards[i].f) fclose(m->shards[i].f);
        st_header_free(&m->shards[i].h);
        gpt__free(m->shards[i].path);
        gpt__free(m->shards[i].file);
    }
    gpt__free(m->shards);
    gpt__free(m->slots);
    gpt_tokenizer_free(m->tok);
    gpt__free(m->dir);
    gpt__free(m);
}

void hf_spec(const hf_model *m, ckpt_spec *spec)
{
    memset(spec, 0, sizeof *spec);
    spec->n_vocab = m->n_vocab;
    spec->n_ctx = m->n_ctx;
    spec->n_embd = m->n_embd;
    spec->n_head = m->n_head;
    spec->n_layer = m->n_layer;
    spec->ln_eps = m->ln_eps;
    spec->dtype = GPT_DTYPE_F32;
    spec->wpe_dtype = GPT_DTYPE_F32;
    spec->tok = m->tok;
}

/* Reads a Conv1D weight stored [in = cols, out = rows] into dst [rows][cols]. */
static gpt_status read_transposed(const hf_shard *sh, const st_tensor *t, int rows, int cols, float *dst,
                                  gpt_error *err)
{
    cv_type ct = CV_F32;
    size_t es, row_bytes, per, i0, o, r;
    unsigned char *raw;
    float *vals;
    uint64_t off = sh->h.data_start + t->begin;
    gpt_status st;
    cv_type_of(t->dtype, &ct);
    es = cv_type_size(ct);
    row_bytes = (size_t)rows * es;
    per = HF_CHUNK / row_bytes ? HF_CHUNK / row_bytes : 1;
    if (per > (size_t)cols) per = (size_t)cols;
    raw = (unsigned char *)gpt__alloc(per * row_bytes);
    vals = (float *)gpt__alloc(per * (size_t)rows * sizeof(float));
    if (!raw || !vals) {
        gpt__free(raw);
        gpt__free(vals);
        return gpt__set_error(err, GPT_ERR_OUT_OF_MEMORY, "out of memory");
    }
    st = cv_seek(sh->f, sh->path, off, err);
    for (i0 = 0; st == GPT_OK && i0 < (size_t)cols; i0 += per) {
        size_t cr = (size_t)cols - i0 < per ? (size_t)cols - i0 : per;
        st = cv_read(sh->f, sh->path, off + (uint64_t)i0 * row_bytes, raw, cr * row_bytes, err);
        if (st != GPT_OK) break;
        cv_decode(raw, ct, cr * (size_t)rows, vals);
        for (o = 0; o < (size_t)rows; o++) {
            float *d = dst + o * (size_t)cols + i0;
            const float *s = vals + o;
            for (r = 0; r < cr; r++) d[r] = s[r * (size_t)rows];
        }
    }
    gpt__free(raw);
    gpt__free(vals);
    return st;
}

/* lm_head.weight must equal wte (already in dst). */
static gpt_status check_tied(const hf_model *m, const float *wte, size_t n, gpt_error *err)
{
    const hf_shard *sh = &m->shards[m->lm_head.shard];
    const st_tensor *t = m->lm_head.t;
    size_t done = 0, per = 1 << 16, i;
    float *buf = (float *)gpt__alloc(per * sizeof(float));
    cv_type ct = CV_F32;
    gpt_status st = GPT_OK;
    if (!buf) return gpt__set_error(err, GPT_ERR_OUT_OF_MEMORY, "out of memory");
    cv_type_of(t->dtype, &ct);
    while (done < n) {
        size_t k = n - done < per ? n - done : per;
        st = cv_read_floats(sh->f, sh->path, sh->h.data_start + t->begin + (uint64_t)done * cv_type_size(ct), ct, k,
                            buf, err);
        if (st != GPT_OK) break;
        for (i = 0; i < k; i++) {
            float a = wte[done + i], b = buf[i];
            if (a != b && !(a != a && b != b)) {
                size_t at = done + i;
                st = gpt__set_error(err, GPT_ERR_UNSUPPORTED,
                              "%s: lm_head.weight differs from wte.weight (row %llu, column %llu: %.9g vs %.9g): "
                              "an untied output head is not supported (gpt.c ties it to the token embedding)",
                              sh->path, (unsigned long long)(at / (size_t)m->n_embd),
                              (unsigned long long)(at % (size_t)m->n_embd), (double)b, (double)a);
                break;
            }
        }
        if (st != GPT_OK) break;
        done += k;
    }
    gpt__free(buf);
    return st;
}

gpt_status hf_source(void *user, int k, int rows, int cols, float *dst, gpt_error *err)
{
    hf_model *m = (hf_model *)user;
    const hf_slot *s;
    const hf_shard *sh;
    cv_type ct = CV_F32;
    gpt_status st;
    if (k < 0 || k >= 12 * m->n_layer + 4 || m->slots[k].shard < 0)
        return gpt__set_error(err, GPT_ERR_INVALID_ARG, "no tensor %d in %s", k, m->dir);
    s = &m->slots[k];
    sh = &m->shards[s->shard];
    if ((uint64_t)rows * (uint64_t)cols != s->t->numel)
        return gpt__set_error(err, GPT_ERR_INVALID_ARG, "tensor %d: asked for %d x %d values, %s has %llu", k, rows, cols,
                        s->t->name, (unsigned long long)s->t->numel);
    if (is_conv1d(m, k)) return read_transposed(sh, s->t, rows, cols, dst, err);
    cv_type_of(s->t->dtype, &ct);
    st = cv_read_floats(sh->f, sh->path, sh->h.data_start + s->t->begin, ct, (size_t)rows * (size_t)cols, dst, err);
    if (st == GPT_OK && k == 0 && m->lm_head.shard >= 0) st = check_tied(m, dst, (size_t)rows * (size_t)cols, err);
    return st;
}
