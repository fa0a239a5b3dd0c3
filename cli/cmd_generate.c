/* cmd_generate.c - `gpt generate`: continue a prompt, streaming to stdout. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "common.h"

#if defined(_WIN32)
#include <fcntl.h>
#include <io.h>
#endif

static const char *help =
    "usage: gpt generate [-m MODEL] [-p TEXT | -f FILE] [options]\n"
    "\n"
    "Continues a prompt and streams the new text to stdout. Without -p or -f the\n"
    "prompt is read from stdin when stdin is not a terminal; an empty prompt starts\n"
    "from <|endoftext|> (unconditional text). Without -m the demo model is used.\n"
    "\n"
    "options:\n"
    "  -m, --model PATH        checkpoint (default: models/demo.bin)\n"
    "  -p, --prompt TEXT       prompt text\n"
    "  -f, --file PATH         read the prompt from a file\n"
    "  -n, --n-predict N       tokens to generate (default 128; -1 = until the end)\n"
    "      --temp T            temperature (default 0.8; 0 = greedy)\n"
    "      --top-k K           keep the K most likely tokens (default 40; 0 = off)\n"
    "      --top-p P           keep the most likely tokens that sum to P (default 0.95; 1 = off)\n"
    "      --min-p P           drop tokens below P times the top probability (default 0.05; 0 = off)\n"
    "      --repeat-penalty R  CTRL-style penalty on tokens already in the context (default 1.0 = off)\n"
    "      --repeat-last-n N   tokens the penalty looks back on (default -1 = all; 0 = none)\n"
    "  -s, --seed S            random seed (default 42); the same seed gives the same text\n"
    "      --stop STR          stop before STR (repeatable); STR is never printed\n"
    "      --ignore-eos        do not stop at <|endoftext|>\n"
    "      --special           read \"<|endoftext|>\" in the prompt as the special token\n"
    "      --slide             when the context is full, drop its older half and go on\n"
    "  -c, --ctx-size N        context positions (default: the model's)\n"
    "      --kv TYPE           KV cache storage: auto (f16 unless the weights are f32),\n"
    "                          f16 or f32 (--kv-f16 = --kv f16)\n"
    "  -b, --batch-size N      tokens per forward step for the prompt (default 512)\n"
    "  -t, --threads N         threads (default: one per CPU)\n"
    "  -v, --verbose           print timings on stderr\n";

typedef struct out_state {
    size_t bytes;
    int last_newline;
} out_state;

static int on_text(const char *text, size_t len, void *user)
{
    out_state *o = (out_state *)user;
    fwrite(text, 1, len, stdout);
    fflush(stdout);
    o->bytes += len;
    if (len) o->last_newline = text[len - 1] == '\n';
    return ferror(stdout) ? 1 : 0;
}

int cmd_generate(int argc, char **argv)
{
    gpt_generate_params gp = gpt_generate_defaults();
    gpt_context_params cp = gpt_context_defaults();
    const char *model_path = NULL, *prompt = NULL, *file = NULL, *v;
    const char **stops = NULL;
    char *prompt_buf = NULL;
    int n_stops = 0, verbose = 0, n_predict = 128, i, rc = 1;
    gpt_model *m = NULL;
    gpt_context *c = NULL;
    gpt_generate_result res;
    gpt_error err;
    gpt_status st;
    out_state out = {0, 1};
    double t0, t1;

    stops = (const char **)calloc((size_t)argc, sizeof(char *));
    if (!stops) return 1;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (is_help(a)) {
            fputs(help, stdout);
            free(stops);
            return 0;
        }
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            if (opt_value(argc, argv, &i, &model_path)) goto usage;
        } else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) {
            if (opt_value(argc, argv, &i, &prompt)) goto usage;
        } else if (!strcmp(a, "-f") || !strcmp(a, "--file")) {
            if (opt_value(argc, argv, &i, &file)) goto usage;
        } else if (!strcmp(a, "-n") || !strcmp(a, "--n-predict")) {
            if (opt_int(argc, argv, &i, -1, INT_MAX, &n_predict)) goto usage;
        } else if (!strcmp(a, "--temp")) {
            if (opt_float(argc, argv, &i, 0, 1e6, &gp.temperature)) goto usage;
        } else if (!strcmp(a, "--top-k")) {
            if (opt_int(argc, argv, &i, 0, INT_MAX, &gp.top_k)) goto usage;
        } else if (!strcmp(a, "--top-p")) {
            if (opt_float(argc, argv, &i, 1e-9, 1, &gp.top_p)) goto usage;
        } else if (!strcmp(a, "--min-p")) {
            if (opt_float(argc, argv, &i, 0, 1, &gp.min_p)) goto usage;
        } else if (!strcmp(a, "--repeat-penalty")) {
            if (opt_float(argc, argv, &i, 1e-6, 1e6, &gp.repetition_penalty)) goto usage;
        } else if (!strcmp(a, "--repeat-last-n")) {
            if (opt_int(argc, argv, &i, -1, INT_MAX, &gp.repeat_last_n)) goto usage;
        } else if (!strcmp(a, "-s") || !strcmp(a, "--seed")) {
            if (opt_u64(argc, argv, &i, &gp.seed)) goto usage;
        } else if (!strcmp(a, "--stop")) {
            if (opt_value(argc, argv, &i, &v)) goto usage;
            if (!v[0]) {
                usage_error("generate", "--stop needs a non-empty string");
                goto usage;
            }
            stops[n_stops++] = v;
        } else if (!strcmp(a, "--ignore-eos")) {
            gp.ignore_eos = 1;
        } else if (!strcmp(a, "--special")) {
            gp.special = 1;
        } else if (!strcmp(a, "--slide")) {
            gp.context_policy = GPT_CONTEXT_SLIDE;
        } else if (!strcmp(a, "--kv") || !strcmp(a, "--kv-f16")) {
            if (opt_kv(argc, argv, &i, &cp.kv_type)) goto usage;
        } else if (!strcmp(a, "-c") || !strcmp(a, "--ctx-size")) {
            if (opt_int(argc, argv, &i, 0, INT_MAX, &cp.n_ctx)) goto usage;
        } else if (!strcmp(a, "-b") || !strcmp(a, "--batch-size")) {
            if (opt_int(argc, argv, &i, 1, INT_MAX, &cp.n_batch)) goto usage;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            if (opt_int(argc, argv, &i, 1, 256, &cp.n_threads)) goto usage;
        } else if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
            verbose = 1;
        } else {
            usage_error("generate", "unknown option \"%s\"", a);
            goto usage;
        }
    }
    if (prompt && file) {
        usage_error("generate", "give the prompt with -p or -f, not both");
        goto usage;
    }
    gp.max_new_tokens = n_predict < 0 ? INT_MAX : n_predict;
    gp.stop = stops;
    gp.n_stop = n_stops;

    if (file) {
        size_t len;
        prompt_buf = cli_read_file(file, &len, &err);
        if (!prompt_buf) {
            fprintf(stderr, "gpt generate: %s\n", err.message);
            goto done;
        }
        if (strlen(prompt_buf) != len) fprintf(stderr, "gpt generate: warning: %s contains NUL bytes; the prompt ends at the first\n", file);
        prompt = prompt_buf;
    } else if (!prompt && !cli_isatty(stdin)) {
        size_t len;
        prompt_buf = cli_read_stream(stdin, &len, &err);
        if (!prompt_buf) {
            fprintf(stderr, "gpt generate: stdin: %s\n", err.message);
            goto done;
        }
        prompt = prompt_buf;
    }

    if (!(m = cli_load_model(model_path))) goto done;
    if (!(c = gpt_context_new(m, &cp, &err))) {
        fprintf(stderr, "gpt generate: %s\n", err.message);
        goto done;
    }
#if defined(_WIN32)
    _setmode(_fileno(stdout), _O_BINARY);
#endif
    t0 = cli_now();
    st = gpt_generate_ex(c, prompt, &gp, on_text, &out, &res);
    t1 = cli_now();
    if (out.bytes && !out.last_newline && cli_isatty(stdout)) fputc('\n', stdout);
    fflush(stdout);
    if (st == GPT_ERR_CONTEXT_FULL) {
        fprintf(stderr, "gpt generate: stopped: %s (--slide keeps going, -c sets the size)\n", gpt_context_error(c));
        rc = 0;
    } else if (st != GPT_OK) {
        fprintf(stderr, "gpt generate: %s\n", gpt_context_error(c));
        goto done;
    } else {
        rc = 0;
    }
    if (verbose)
        fprintf(stderr, "gpt generate: %d prompt tokens, %d generated in %.3f s (%.1f tokens/s), stop: %s\n",
                res.n_prompt_tokens, res.n_generated, t1 - t0, res.n_generated / (t1 - t0 > 0 ? t1 - t0 : 1e-9),
                res.stop_reason == GPT_STOP_EOS ? "end of text"
                : res.stop_reason == GPT_STOP_STRING ? "stop string"
                : res.stop_reason == GPT_STOP_MAX_TOKENS ? "max tokens"
                : res.stop_reason == GPT_STOP_CONTEXT_FULL ? "context full" : "other");
    goto done;
usage:
    rc = 2;
done:
    gpt_context_free(c);
    gpt_model_free(m);
    free(prompt_buf);
    free(stops);
    return rc;
}
