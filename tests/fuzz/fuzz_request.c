/*
 * fuzz_request.c - libFuzzer harness for the JSON body of a completions
 * request in `gpt serve` (cli/serve_api.c) and for everything the server
 * writes back.
 *
 *   make fuzz FUZZ_ONLY=fuzz_request   (or tests/test_fuzz.sh, which make test runs)
 *
 * Run from the repository root (it loads models/tokenizer/). The input is a
 * request body. When it is JSON, api_parse_completion either refuses it
 * with an OpenAI error (status 400 or 500, a message; the error's JSON must
 * parse) or accepts it with every field in range and parameters the
 * library accepts; srv_request_new then tokenizes its prompts. Each
 * accepted request is given made-up results - the prompts' own bytes and
 * ids as the generated text and tokens, with log-probabilities and
 * alternatives - and the whole response, every stream chunk and the
 * stream's end are rendered: each must be valid JSON (bytes that are not
 * UTF-8, from token-id prompts, included) with the choices and logprobs
 * arrays where they belong. abort() on any mismatch.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve.h"

static gpt_tokenizer *g_tok;

static json *must_parse(const char *s, size_t n)
{
    json_error e;
    json *j = json_parse(s, n, &e);
    if (!j) {
        fprintf(stderr, "output is not JSON (%s at %lu): %.*s\n", e.message, (unsigned long)e.offset,
                (int)(n > 2000 ? 2000 : n), s);
        abort();
    }
    return j;
}

/* Made-up results: the prompt's ids as generated tokens, its text as text. */
static void fake_results(srv_request *r)
{
    int i, k, t;
    for (i = 0; i < r->n_jobs; i++) {
        srv_job *j = &r->jobs[i];
        gpt_token_logprob top[GPT_MAX_LOGPROBS];
        for (t = 0; t < GPT_MAX_LOGPROBS; t++) {
            top[t].token = (t * 7919) % gpt_tokenizer_n_vocab(g_tok);
            top[t].logprob = -(float)t - 0.5f;
        }
        if (r->echo && r->logprobs >= 0)
            for (t = 0; t < j->n_ids; t++)
                if (!srv_tokens_add(&j->prompt_toks, j->ids[t], t ? -1.25f : NAN, top, r->logprobs)) abort();
        for (k = 0; k < r->n; k++) {
            srv_choice *ch = &j->choices[k];
            sb_put(&ch->text, j->prompt_text, j->prompt_len);
            for (t = 0; t < j->n_ids && r->logprobs >= 0; t++)
                if (!srv_tokens_add(&ch->toks, j->ids[t], -(float)t / 3.0f, top, r->logprobs)) abort();
            ch->n_generated = j->n_ids;
            ch->finish = 1 + (k + i) % 5;
        }
    }
}

static void check_response(srv_request *r)
{
    sbuf b = {NULL, 0, 0, 0};
    json *root;
    const json *choices, *usage;
    size_t i;
    api_render_response(&b, r);
    if (b.failed) abort();
    root = must_parse(b.p, b.n);
    choices = json_get(root, "choices");
    usage = json_get(root, "usage");
    if (!choices || choices->type != JSON_ARRAY || choices->len != (size_t)(r->n_jobs * r->n)) abort();
    if (!usage || !json_get(usage, "total_tokens")) abort();
    for (i = 0; i < choices->len; i++) {
        const json *lp = json_get(&choices->items[i], "logprobs");
        const json *text = json_get(&choices->items[i], "text");
        if (!text || text->type != JSON_STRING || !lp) abort();
        if (r->logprobs < 0 ? lp->type != JSON_NULL : lp->type != JSON_OBJECT) abort();
        if (r->logprobs >= 0) {
            const json *tokens = json_get(lp, "tokens"), *lps = json_get(lp, "token_logprobs");
            const json *tops = json_get(lp, "top_logprobs"), *offs = json_get(lp, "text_offset");
            if (!tokens || !lps || !tops || !offs || tokens->len != lps->len || tokens->len != tops->len ||
                tokens->len != offs->len)
                abort();
        }
    }
    json_free(root);
    sb_free(&b);
}

static void check_stream(srv_request *r)
{
    int i, k;
    for (i = 0; i < r->n_jobs; i++)
        for (k = 0; k < r->n; k++) {
            srv_job *j = &r->jobs[i];
            srv_choice *ch = &j->choices[k];
            sbuf b = {NULL, 0, 0, 0};
            json *root;
            api_render_chunk(&b, r, j, k, j->prompt_text, j->prompt_len, r->logprobs >= 0 ? &j->prompt_toks : NULL,
                             0, GPT_STOP_NONE);
            api_render_chunk(&b, r, j, k, ch->text.p, ch->text.n, r->logprobs >= 0 ? &ch->toks : NULL,
                             ch->toks.n / 2, ch->finish);
            if (b.failed || b.n < 8 || memcmp(b.p, "data: ", 6) != 0 || memcmp(b.p + b.n - 2, "\n\n", 2) != 0)
                abort();
            {
                char *second = strstr(b.p + 6, "\n\ndata: ");
                if (!second) abort();
                root = must_parse(b.p + 6, (size_t)(second - (b.p + 6)));
                json_free(root);
                root = must_parse(second + 8, (size_t)(b.p + b.n - 2 - (second + 8)));
                json_free(root);
            }
            sb_free(&b);
        }
    {
        sbuf b = {NULL, 0, 0, 0};
        api_render_stream_end(&b, r);
        if (b.n < 14 || memcmp(b.p + b.n - 14, "data: [DONE]\n\n", 14) != 0) abort();
        if (r->include_usage) {
            json *root = must_parse(b.p + 6, b.n - 14 - 6 - 2);
            json_free(root);
        }
        sb_free(&b);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *copy;
    json *root;
    api_completion c;
    api_error e;
    api_limits lim;
    srv_request *r;
    sbuf b = {NULL, 0, 0, 0};
    if (!g_tok) {
        gpt_error err;
        g_tok = gpt_tokenizer_load("models/tokenizer/encoder.json", "models/tokenizer/vocab.bpe", &err);
        if (!g_tok) {
            fprintf(stderr, "fuzz_request: run from the repository root: %s\n", err.message);
            abort();
        }
    }
    copy = (char *)malloc(size ? size : 1);
    if (!copy) return 0;
    memcpy(copy, data, size);
    root = json_parse(copy, size, NULL);
    if (!root) {
        free(copy);
        return 0;
    }
    lim.n_ctx = 64;
    lim.n_vocab = gpt_tokenizer_n_vocab(g_tok);
    lim.max_tokens = 48;
    lim.max_choices = 6;
    memset(&e, 0, sizeof e);
    if (!api_parse_completion(root, &lim, &c, &e)) {
        json *ej;
        if ((e.status != 400 && e.status != 500) || !e.message[0] || !e.type) abort();
        api_error_json(&b, &e);
        ej = must_parse(b.p, b.n);
        json_free(ej);
        sb_free(&b);
    } else {
        if (c.n < 1 || c.n_prompts < 1 || c.n * c.n_prompts > lim.max_choices) abort();
        if (c.logprobs < -1 || c.logprobs > GPT_MAX_LOGPROBS) abort();
        if (c.gp.max_new_tokens < 0 || c.gp.max_new_tokens > lim.max_tokens) abort();
        if (gpt_generate_params_check(&c.gp, NULL) != GPT_OK) abort();
        r = srv_request_new(&c, g_tok, "fuzz-model", &lim, &e);
        if (!r) {
            if (e.status != 400 || !e.code || strcmp(e.code, "context_length_exceeded") != 0) abort();
        } else {
            int i;
            if (r->n_jobs != c.n_prompts) abort();
            for (i = 0; i < r->n_jobs; i++)
                if (r->jobs[i].n_prompt_tokens + r->gp.max_new_tokens > lim.n_ctx) abort();
            snprintf(r->id, sizeof r->id, "cmpl-fuzz");
            fake_results(r);
            check_response(r);
            check_stream(r);
            api_render_stream_error(&b, &e);
            sb_free(&b);
            srv_request_free(r);
        }
        api_completion_free(&c);
    }
    json_free(root);
    free(copy);
    return 0;
}
