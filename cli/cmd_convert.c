/* cmd_convert.c - `gpt convert`: writes gpt.c checkpoints from Hugging Face
 * GPT-2 folders, llm.c checkpoints, or random weights. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt.h"
#include "cli.h"
#include "convert.h"

static const char *intro =
    "usage: gpt convert --hf DIR -o OUT.bin [options]\n"
    "       gpt convert --llmc FILE.bin --vocab vocab.json --merges merges.txt -o OUT.bin [options]\n"
    "       gpt convert --random SHAPE -o OUT.bin [options]\n"
    "\n"
    "Writes a gpt.c checkpoint (docs/FORMAT.md). The output is written to a new\n"
    "temporary file next to OUT.bin and moved into place at the end, so it is\n"
    "never half-written, and a program that has the old OUT.bin mapped keeps the\n"
    "old file. An existing OUT.bin is kept unless --force is given; anything but\n"
    "a regular file (a device, a FIFO, a directory) is never replaced; a symbolic\n"
    "link is replaced by the new file (its target is not touched). The output\n"
    "cannot be stdout (-o -). Source weights that are NaN or infinite, or too\n"
    "large for --dtype, are refused. The input is read one tensor at a time.\n"
    "docs/CONVERT.md has the details.\n";

int cmd_convert(int argc, char **argv)
{
    const char *random_shape = NULL, *hf_dir = NULL, *llmc_file = NULL, *out = NULL, *vocab = NULL,
               *merges = NULL, *source_desc;
    char vocab_found[CLI_PATH_MAX], merges_found[CLI_PATH_MAX];
    uint64_t seed = 0;
    int force = 0, n_vocab = 0, have_seed = 0, allow_nonfinite = 0, dtype_i = GPT_DTYPE_F32, rc = 1, n_sources;
    ckpt_spec spec;
    ckpt_random rnd;
    ckpt_source src;
    void *user;
    gpt_tokenizer *tok = NULL;
    hf_model *hf = NULL;
    llmc_model *llmc = NULL;
    gpt_dtype dtype;
    gpt_error err;
    gpt_status st;
    double t0;
    const cli_option options[] = {
        OPT_SECTION("sources (exactly one):"),
        OPT_STRING("hf", 0, &hf_dir, "DIR",
                   "a Hugging Face GPT-2 folder: config.json, model.safetensors\n"
                   "(or model.safetensors.index.json + shards), vocab.json, merges.txt;\n"
                   "F32, F16 or BF16 tensors"),
        OPT_STRING("llmc", 0, &llmc_file, "FILE",
                   "an llm.c checkpoint (gpt2_124M.bin: version 3 fp32 or 5 bf16);\nneeds --vocab and --merges"),
        OPT_STRING("random", 0, &random_shape, "SHAPE",
                   "random weights (docs/FORMAT.md \"Random weights\"); SHAPE is\n"
                   "124M, 355M, 774M, 1558M or L,H,C,T (layers, heads, n_embd, n_ctx)"),
        OPT_SECTION("options:"),
        OPT_STRING("output", 'o', &out, "PATH", "the checkpoint to write"),
        OPT_CHOICE("dtype", 0, &dtype_i, "T", "f32|f16|bf16|q8_0",
                   "f32 (default), f16, bf16 or q8_0 for wte and the block matrices\n(wpe and the vectors stay f32)"),
        OPT_STRING("vocab", 0, &vocab, "F",
                   "GPT-2 encoder.json/vocab.json (--llmc: required; --random:\ndefault models/tokenizer/encoder.json)"),
        OPT_STRING("merges", 0, &merges, "F",
                   "GPT-2 vocab.bpe/merges.txt (--llmc: required; --random:\ndefault models/tokenizer/vocab.bpe)"),
        OPT_U64("seed", 0, &seed, "S", &have_seed, "seed of the random weights (default 0; --random only)"),
        OPT_INT("n-vocab", 0, &n_vocab, "N", 256, INT_MAX, "cut GPT-2's vocabulary to its first N tokens (--random only)"),
        OPT_FLAG("force", 0, &force, 1, "replace OUT.bin if it exists (a regular file or a link)"),
        OPT_FLAG("allow-nonfinite", 0, &allow_nonfinite, 1,
                 "write NaN and infinite source weights (and values too large\nfor --dtype) instead of refusing them"),
        OPT_END};
    const cli_command cmd = {"convert", intro, options, NULL};

    memset(&spec, 0, sizeof spec);
    if ((rc = cli_parse(&cmd, argc, argv)) >= 0) return rc;
    rc = 1;
    dtype = (gpt_dtype)dtype_i;
    n_sources = (random_shape != NULL) + (hf_dir != NULL) + (llmc_file != NULL);
    if (n_sources == 0) return usage_error("convert", "say what to convert: --hf DIR, --llmc FILE or --random SHAPE");
    if (n_sources > 1) return usage_error("convert", "give one source: --hf, --llmc or --random, not several");
    if (!out) return usage_error("convert", "say where to write: -o OUT.bin");
    if (!strcmp(out, "-"))
        return usage_error("convert", "-o - (stdout) is not supported: a checkpoint is written to a new file next "
                                      "to OUT.bin and moved into place; give a file name");
    if (!random_shape && (have_seed || n_vocab))
        return usage_error("convert", "--seed and --n-vocab go with --random only");
    if (hf_dir && (vocab || merges))
        return usage_error("convert", "--hf reads vocab.json and merges.txt from DIR; --vocab/--merges are not used");
    if (llmc_file && (!vocab || !merges))
        return usage_error("convert", "--llmc needs --vocab vocab.json and --merges merges.txt "
                                      "(llm.c checkpoints hold no tokenizer)");

    /* before reading anything: an existing output, a device or a FIFO */
    if (ckpt_check_output(out, force, &err) != GPT_OK) {
        fprintf(stderr, "gpt convert: %s\n", err.message);
        return 1;
    }
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
    spec.allow_nonfinite = allow_nonfinite;

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
