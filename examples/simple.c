/*
 * simple.c - load a model, continue a prompt, free everything.
 *
 *   make examples && build/examples/simple [MODEL] [PROMPT]
 *
 * Or against an installed library: cc simple.c $(pkg-config --cflags --libs gpt)
 */
#include <stdio.h>

#include "gpt.h"

/* Receives the generated text piece by piece (always whole UTF-8 characters). */
static int print_text(const char *text, size_t len, void *user)
{
    (void)user;
    fwrite(text, 1, len, stdout);
    fflush(stdout);
    return 0; /* non-zero would stop generation */
}

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : "models/demo.bin";
    const char *prompt = argc > 2 ? argv[2] : "And God said";
    gpt_error err;
    gpt_model *model;
    gpt_context *ctx;
    gpt_generate_params p;
    gpt_status st;

    model = gpt_model_load(path, &err);
    if (!model) {
        fprintf(stderr, "simple: %s\n", err.message);
        return 1;
    }
    ctx = gpt_context_new(model, NULL, &err); /* NULL: default parameters */
    if (!ctx) {
        fprintf(stderr, "simple: %s\n", err.message);
        gpt_model_free(model);
        return 1;
    }

    p = gpt_generate_defaults();
    p.max_new_tokens = 60;
    p.seed = 7;
    fputs(prompt, stdout);
    st = gpt_generate(ctx, prompt, &p, print_text, NULL);
    putchar('\n');
    if (st != GPT_OK) fprintf(stderr, "simple: %s\n", gpt_context_error(ctx));

    gpt_context_free(ctx);
    gpt_model_free(model);
    return st == GPT_OK ? 0 : 1;
}
