/* cmd_convert.c - `gpt convert`: writes gpt.c checkpoints from Hugging Face
 * GPT-2 folders, llm.c checkpoints, or random weights. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt.h"
#include "commands.h"
#include "common.h"
#include "convert.h"

static const char *help =
    "usage: gpt convert --hf DIR -o OUT.bin [options]\n"
    "       gpt convert --llmc FILE.bin --vocab vocab.json --merges merges.txt -o OUT.bin [options]\n"
    "       gpt convert --random SHAPE -o OUT.bin [options]\n"
    "\n"
    "Writes a gpt.c checkpoint (docs/FORMAT.md). The output is written to a\n"
    "temporary file next to OUT.bin and renamed at the end, so it is never\n"
    "half-written; an existing OUT.bin is kept unless --force is given. The\n"
    "input is read one tensor at a time. docs/CONVERT.md has the details.\n"
    "\n"
    "sources (exactly one):\n"
    "  --hf DIR               a Hugging Face GPT-2 folder: config.json, model.safetensors\n"
    "                         (or model.safetensors.index.json + shards), vocab.json, merges.txt;\n"
    "                         F32, F16 or BF16 tensors\n"
    "  --llmc FILE            an llm.c checkpoint (gpt2_124M.bin: version 3 fp32 or 5 bf16);\n"
    "                         needs --vocab and --merges\n"
    "  --random SHAPE         random weights (docs/FORMAT.md \"Random weights\"); SHAPE is\n"
    "                         124M, 355M, 774M, 1558M or L,H,C,T (layers, heads, n_embd, n_ctx)\n"
    "\n"
    "options:\n"
    "  -o, --output PATH      the checkpoint to write\n"
    "      --dtype T          f32 (default), f16, bf16 or q8_0 for wte and the block matrices\n"
    "                         (wpe and the vectors stay f32)\n"
    "      --vocab F          GPT-2 encoder.json/vocab.json (--llmc: required; --random:\n"
    "                         default models/tokenizer/encoder.json)\n"
    "      --merges F         GPT-2 vocab.bpe/merges.txt (--llmc: required; --random:\n"
    "                         default models/tokenizer/vocab.bpe)\n"
    "      --seed S           seed of the random weights (default 0; --random only)\n"
    "      --n-vocab N        cut GPT-2's vocabulary to its first N tokens (--random only)\n"
    "      --force            overwrite OUT.bin if it exists\n";

int cmd_convert(int argc, char **argv)
{
    const char *random_shape = NULL, *hf_dir = NULL, *llmc_file = NULL, *out = NULL, *dtype_name = NULL,
               *vocab = NULL, *merges = NULL, *source_desc;
    char vocab_found[CLI_PATH_MAX], merges_found[CLI_PATH_MAX];
    uint64_t seed = 0;
    int force = 0, n_vocab = 0, have_seed = 0, i, rc = 1, n_sources;
    ckpt_spec spec;
    ckpt_random rnd;
    ckpt_source src;
    void *user;
    gpt_tokenizer *tok = NULL;
    hf_model *hf = NULL;
    llmc_model *llmc = NULL;
    gpt_dtype dtype = GPT_DTYPE_F32;
    gpt_error err;
    gpt_status st;
    double t0;

    memset(&spec, 0, sizeof spec);
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (is_help(a)) {
            fputs(help, stdout);
            return 0;
        }
        if (!strcmp(a, "--random")) {
            if (opt_value(argc, argv, &i, &random_shape)) return 2;
        } else if (!strcmp(a, "--hf")) {
            if (opt_value(argc, argv, &i, &hf_dir)) return 2;
        } else if (!strcmp(a, "--llmc")) {
            if (opt_value(argc, argv, &i, &llmc_file)) return 2;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            if (opt_value(argc, argv, &i, &out)) return 2;
        } else if (!strcmp(a, "--dtype")) {
            if (opt_value(argc, argv, &i, &dtype_name)) return 2;
        } else if (!strcmp(a, "--seed")) {
            if (opt_u64(argc, argv, &i, &seed)) return 2;
            have_seed = 1;
        } else if (!strcmp(a, "--n-vocab")) {
            if (opt_int(argc, argv, &i, 256, INT_MAX, &n_vocab)) return 2;
        } else if (!strcmp(a, "--vocab")) {
            if (opt_value(argc, argv, &i, &vocab)) return 2;
        } else if (!strcmp(a, "--merges")) {
            if (opt_value(argc, argv, &i, &merges)) return 2;
        } else if (!strcmp(a, "--force")) {
            force = 1;
        } else {
            return usage_error("convert", "unknown option \"%s\"", a);
        }
    }
    n_sources = (random_shape != NULL) + (hf_dir != NULL) + (llmc_file != NULL);
    if (n_sources == 0) return usage_error("convert", "say what to convert: --hf DIR, --llmc FILE or --random SHAPE");
    if (n_sources > 1) return usage_error("convert", "give one source: --hf, --llmc or --random, not several");
    if (!out) return usage_error("convert", "say where to write: -o OUT.bin");
    if (dtype_name && gpt_dtype_from_name(dtype_name, &dtype) != GPT_OK)
        return usage_error("convert", "--dtype must be f32, f16, bf16 or q8_0, not \"%s\"", dtype_name);
    if (!random_shape && (have_seed || n_vocab))
        return usage_error("convert", "--seed and --n-vocab go with --random only");
    if (hf_dir && (vocab || merges))
        return usage_error("convert", "--hf reads vocab.json and merges.txt from DIR; --vocab/--merges are not used");
    if (llmc_file && (!vocab || !merges))
        return usage_error("convert", "--llmc needs --vocab vocab.json and --merges merges.txt "
                                      "(llm.c checkpoints hold no tokenizer)");

    if (hf_dir) {
        hf = hf_open(hf_dir, &err);
        if (!hf) {
            fprintf(stderr, "gpt convert: %s\n", err.message);
            return 1;
        }
        hf_spec(hf, &spec);
        src = hf_source;
        user = hf;
        source_desc = hf_dir;
    } else if (llmc_file) {
        llmc = llmc_open(llmc_file, vocab, merges, &err);
        if (!llmc) {
            fprintf(stderr, "gpt convert: %s\n", err.message);
            return 1;
        }
        llmc_spec(llmc, &spec);
        src = llmc_source;
        user = llmc;
        source_desc = llmc_file;
    } else {
        if (ckpt_parse_shape(random_shape, &spec, &err) != GPT_OK) {
            fprintf(stderr, "gpt convert: %s\n", err.message);
            return 2;
        }
        if (n_vocab) spec.n_vocab = n_vocab;
        if (!vocab) vocab = cli_data_path("models/tokenizer/encoder.json", vocab_found, sizeof vocab_found);
        if (!merges) merges = cli_data_path("models/tokenizer/vocab.bpe", merges_found, sizeof merges_found);
        if (!vocab || !merges) {
            fprintf(stderr,
                    "gpt convert: GPT-2's vocabulary (models/tokenizer/) was not found; give --vocab and --merges\n");
            return 1;
        }
        tok = ckpt_gpt2_tokenizer(vocab, merges, spec.n_vocab, &err);
        if (!tok) {
            fprintf(stderr, "gpt convert: %s\n", err.message);
            return 1;
        }
        spec.tok = tok;
        rnd.seed = seed;
        rnd.n_layer = spec.n_layer;
        src = ckpt_random_source;
        user = &rnd;
        source_desc = "random weights";
    }
    spec.dtype = dtype;
    spec.wpe_dtype = GPT_DTYPE_F32;

    t0 = cli_now();
    st = ckpt_write_file(out, &spec, src, user, force, cli_isatty(stderr), &err);
    if (st != GPT_OK) {
        fprintf(stderr, "gpt convert: %s\n", err.message);
        goto done;
    }
    fprintf(stderr,
            "gpt convert: wrote %s from %s (%d layers, %d heads, n_embd %d, n_ctx %d, n_vocab %d, %s) in %.1f s\n",
            out, source_desc, spec.n_layer, spec.n_head, spec.n_embd, spec.n_ctx, spec.n_vocab,
            gpt_dtype_name(spec.dtype), cli_now() - t0);
    rc = 0;
done:
    hf_close(hf);
    llmc_close(llmc);
    gpt_tokenizer_free(tok);
    return rc;
}
