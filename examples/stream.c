/*
 * stream.c - generation token by token with the low-level calls: tokenize the
 * prompt, run it through the model with gpt_eval, then repeatedly draw the
 * next id with a gpt_sampler, print its text through a gpt_decoder (which
 * never splits a UTF-8 character) and feed the id back. This is what
 * gpt_generate does for you; doing it by hand lets a program inspect the
 * logits, change sampling between tokens, or branch with gpt_rewind.
 *
 *   make examples && build/examples/stream [MODEL] [PROMPT] [N]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpt.h"

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : "models/demo.bin";
    const char *prompt = argc > 2 ? argv[2] : "In the beginning";
    int n_new = argc > 3 ? atoi(argv[3]) : 60;
    gpt_error err;
    gpt_model *model = NULL;
    gpt_context *ctx = NULL;
    gpt_sampler *sampler = NULL;
    const gpt_tokenizer *tok;
    gpt_generate_params p = gpt_generate_defaults();
    gpt_decoder dec;
    int *ids = NULL, n_ids, i, rc = 1;
    char *piece = NULL;
    size_t piece_cap;

    if (!(model = gpt_model_load(path, &err)) || !(ctx = gpt_context_new(model, NULL, &err))) {
        fprintf(stderr, "stream: %s\n", err.message);
        goto done;
    }
    tok = gpt_model_tokenizer(model);

    /* Tokenize: ask for the size first, then fill. */
    n_ids = gpt_tokenize(tok, prompt, strlen(prompt), NULL, 0);
    if (n_ids <= 0 || !(ids = (int *)malloc((size_t)n_ids * sizeof *ids))) {
        fprintf(stderr, "stream: cannot tokenize the prompt (%s)\n", n_ids < 0 ? gpt_status_name((gpt_status)n_ids) : "empty");
        goto done;
    }
    gpt_tokenize(tok, prompt, strlen(prompt), ids, n_ids);
    if (gpt_eval(ctx, ids, n_ids) != GPT_OK) {
        fprintf(stderr, "stream: %s\n", gpt_context_error(ctx));
        goto done;
    }

    p.temperature = 0.7f;
    p.seed = 1;
    if (!(sampler = gpt_sampler_new(&p, gpt_model_config(model).n_vocab, &err))) {
        fprintf(stderr, "stream: %s\n", err.message);
        goto done;
    }
    piece_cap = gpt_tokenizer_max_token_bytes(tok) + 4;
    if (!(piece = (char *)malloc(piece_cap))) goto done;
    gpt_decoder_init(&dec);

    fputs(prompt, stdout);
    for (i = 0; i < n_new; i++) {
        /* the repetition penalty (off by default) looks at the ids in the context */
        int id = gpt_sampler_sample(sampler, gpt_logits(ctx), gpt_context_tokens(ctx), gpt_context_n_past(ctx));
        int n;
        if (id < 0 || id == gpt_tokenizer_eot(tok)) break;
        n = gpt_decoder_push(&dec, tok, id, piece, piece_cap);
        if (n > 0) {
            fwrite(piece, 1, (size_t)n, stdout);
            fflush(stdout);
        }
        if (gpt_context_n_past(ctx) == gpt_context_n_ctx(ctx)) break; /* window full */
        if (gpt_eval(ctx, &id, 1) != GPT_OK) {
            fprintf(stderr, "\nstream: %s\n", gpt_context_error(ctx));
            goto done;
        }
    }
    n_ids = gpt_decoder_flush(&dec, piece, piece_cap); /* an unfinished character, if any */
    if (n_ids > 0) fwrite(piece, 1, (size_t)n_ids, stdout);
    putchar('\n');
    rc = 0;

done:
    free(piece);
    free(ids);
    gpt_sampler_free(sampler);
    gpt_context_free(ctx);
    gpt_model_free(model);
    return rc;
}
