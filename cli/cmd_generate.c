/* cmd_generate.c - `gpt generate`: continue a prompt, streaming to stdout. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char *intro =
    "usage: gpt generate [-m MODEL] [-p TEXT | -f FILE] [options]\n"
    "\n"
    "Continues a prompt and streams the new text to stdout. Without -p or -f the\n"
    "prompt is read from stdin when stdin is not a terminal (-f - always reads\n"
    "stdin); an empty prompt starts from <|endoftext|> (unconditional text).\n"
    "Without -m the demo model is used. Exit status: 0 when the text was\n"
    "generated (also when the context filled up after some of it), 1 when it\n"
    "could not be (a prompt that leaves no room to generate, non-finite logits,\n"
    "a write error on stdout, ...), 2 for a usage error.\n"
    "\n"
    "options:\n";

typedef struct out_state {
    size_t bytes;
    int last_newline;
    int failed; /* a write to stdout failed */
} out_state;

static int on_text(const char *text, size_t len, void *user)
{
    out_state *o = (out_state *)user;
    if (fwrite(text, 1, len, stdout) != len || fflush(stdout) != 0) {
        cli_stdout_note_errno(errno);
        o->failed = 1;
        return 1;
    }
    o->bytes += len;
    if (len) o->last_newline = text[len - 1] == '\n';
    return 0;
}

static const char *stop_name(gpt_stop_reason r)
{
    switch (r) {
    case GPT_STOP_EOS: return "end of text";
    case GPT_STOP_STRING: return "stop string";
    case GPT_STOP_MAX_TOKENS: return "max tokens";
    case GPT_STOP_CONTEXT_FULL: return "context full";
    case GPT_STOP_CALLBACK: return "output error";
    default: return "other";
    }
}

static double rate(int n, double dt) { return n / (dt > 0 ? dt : 1e-9); }

int cmd_generate(int argc, char **argv)
{
    gpt_generate_params gp = gpt_generate_defaults(), gp0;
    gpt_context_params cp = gpt_context_defaults();
    const char *model_path = NULL, *prompt = NULL, *file = NULL;
    cli_list stops = {NULL, 0};
    char *prompt_buf = NULL;
    int verbose = 0, n_predict = 128, no_mmap = 0, ignore_eos = 0, special = 0, slide = 0, rc = 1;
    gpt_model *m = NULL;
    gpt_context *c = NULL;
    gpt_generate_result res, res0;
    gpt_error err;
    gpt_status st;
    out_state out = {0, 1, 0};
    double t0, t1, t2;
    const cli_option options[] = {
        OPT_STRING("model", 'm', &model_path, "PATH", "checkpoint (default: models/demo.bin)"),
        OPT_STRING("prompt", 'p', &prompt, "TEXT", "prompt text"),
        OPT_STRING("file", 'f', &file, "PATH", "read the prompt from a file (-: stdin)"),
        OPT_INT("n-predict", 'n', &n_predict, "N", -1, INT_MAX,
                "tokens to generate (default 128; -1 = until the context is full)"),
        OPT_FLOAT("temp", 0, &gp.temperature, "T", 0, 1e6, "temperature (default 0.8; 0 = greedy)"),
        OPT_INT("top-k", 0, &gp.top_k, "K", 0, INT_MAX, "keep the K most likely tokens (default 40; 0 = off)"),
        OPT_FLOAT("top-p", 0, &gp.top_p, "P", 1e-9, 1,
                  "keep the most likely tokens that sum to P (default 0.95; 1 = off)"),
        OPT_FLOAT("min-p", 0, &gp.min_p, "P", 0, 1,
                  "drop tokens below P times the top probability (default 0.05; 0 = off)"),
        OPT_FLOAT("repeat-penalty", 0, &gp.repetition_penalty, "R", 1e-6, 1e6,
                  "CTRL-style penalty on tokens already in the context (default 1.0 = off)"),
        OPT_INT("repeat-last-n", 0, &gp.repeat_last_n, "N", -1, INT_MAX,
                "tokens the penalty looks back on (default -1 = all; 0 = none)"),
        OPT_U64("seed", 's', &gp.seed, "S", NULL, "random seed (default 42); the same seed gives the same text"),
        OPT_LIST("stop", 0, &stops, "STR", CLI_NONEMPTY, "stop before STR (repeatable); STR is never printed"),
        OPT_FLAG("ignore-eos", 0, &ignore_eos, 1, "do not stop at <|endoftext|>"),
        OPT_FLAG("special", 0, &special, 1, "read \"<|endoftext|>\" in the prompt as the special token"),
        OPT_FLAG("slide", 0, &slide, 1, "when the context is full, drop its older half and go on"),
        OPT_INT("ctx-size", 'c', &cp.n_ctx, "N", 0, INT_MAX, "context positions (default 0: the model's)"),
        OPT_CHOICE("kv", 0, &cp.kv_type, "TYPE", "auto|f16|f32",
                   "KV cache storage: auto (f16 unless the weights are f32),\nf16 or f32"),
        OPT_FLAG("kv-f16", 0, &cp.kv_type, GPT_KV_F16, "the same as --kv f16"),
        OPT_INT("batch-size", 'b', &cp.n_batch, "N", 1, INT_MAX, "tokens per forward step for the prompt (default 512)"),
        OPT_INT("threads", 't', &cp.n_threads, "N", 0, 256, "threads (default 0: one per CPU)"),
        OPT_FLAG("no-mmap", 0, &no_mmap, 1, "read the model into memory instead of mapping it\n(docs/SAFETY.md)"),
        OPT_FLAG("verbose", 'v', &verbose, 1, "print the prompt and generation speeds on stderr"),
        OPT_END};
    const cli_command cmd = {"generate", intro, options, NULL};

    if ((rc = cli_parse(&cmd, argc, argv)) >= 0) goto done;
    rc = 1;
    if (prompt && file) {
        rc = usage_error("generate", "give the prompt with -p or -f, not both");
        goto done;
    }
    gp.max_new_tokens = n_predict < 0 ? INT_MAX : n_predict;
    gp.stop = stops.v;
    gp.n_stop = stops.n;
    gp.ignore_eos = ignore_eos;
    gp.special = special;
    gp.context_policy = slide ? GPT_CONTEXT_SLIDE : GPT_CONTEXT_STOP;

    cli_binary_stdio(); /* the prompt's and the text's exact bytes, on every platform */
    if (file || (!prompt && !cli_isatty(stdin))) {
        size_t len;
        const char *what = file && strcmp(file, "-") != 0 ? file : "stdin";
        prompt_buf = cli_read_input(file ? file : "-", CLI_MAX_INPUT, &len, &err);
        if (!prompt_buf) {
            fprintf(stderr, "gpt generate: %s\n", err.message);
            goto done;
        }
        if (strlen(prompt_buf) != len)
            fprintf(stderr, "gpt generate: warning: %s contains NUL bytes; the prompt ends at the first\n", what);
        prompt = prompt_buf;
    }

    if (!(m = cli_load_model(model_path, no_mmap, NULL))) goto done;
    if (!(c = gpt_context_new(m, &cp, &err))) {
        fprintf(stderr, "gpt generate: %s\n", err.message);
        goto done;
    }
    /* The prompt goes in first, alone, so that a prompt that does not fit
     * fails before anything is printed and its speed can be told apart;
     * the second call continues the context with the same sampler seed, so
     * the text is the one a single call gives. */
    gp0 = gp;
    gp0.max_new_tokens = 0;
    t0 = cli_now();
    st = gpt_generate_ex(c, prompt, &gp0, NULL, NULL, &res0);
    t1 = cli_now();
    if (st == GPT_ERR_CONTEXT_FULL) {
        fprintf(stderr, "gpt generate: the prompt does not fit: %s (-c sets the context size, --slide keeps the "
                "prompt's end)\n", gpt_context_error(c));
        goto done;
    }
    if (st != GPT_OK) {
        fprintf(stderr, "gpt generate: %s\n", gpt_context_error(c));
        goto done;
    }
    st = gpt_generate_ex(c, "", &gp, on_text, &out, &res);
    t2 = cli_now();
    if (out.bytes && !out.last_newline && !out.failed && cli_isatty(stdout)) fputc('\n', stdout);
    if (cli_stdout_failed("generate")) goto done;
    if (st == GPT_ERR_CONTEXT_FULL && out.bytes == 0) {
        fprintf(stderr, "gpt generate: no room to generate: %s (-c sets the context size, --slide keeps "
                "going)\n", gpt_context_error(c));
        goto done;
    } else if (st == GPT_ERR_CONTEXT_FULL) {
        fprintf(stderr, "gpt generate: stopped: %s (--slide keeps going, -c sets the size)\n", gpt_context_error(c));
    } else if (st != GPT_OK) {
        fprintf(stderr, "gpt generate: %s\n", gpt_context_error(c));
        goto done;
    }
    rc = 0;
    if (verbose) {
        fprintf(stderr, "gpt generate: prompt: %d tokens in %.3f s (%.1f tokens/s)\n", res0.n_prompt_tokens, t1 - t0,
                rate(res0.n_prompt_tokens, t1 - t0));
        fprintf(stderr, "gpt generate: generation: %d tokens in %.3f s (%.1f tokens/s), stop: %s\n", res.n_generated,
                t2 - t1, rate(res.n_generated, t2 - t1), stop_name(res.stop_reason));
    }
done:
    gpt_context_free(c);
    gpt_model_free(m);
    free(prompt_buf);
    free((void *)stops.v);
    return rc;
}
