/* cmd_text.c - `gpt tokenize`, `gpt detokenize`, `gpt score` and `gpt info`. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#include "ckpt.h"

/* Parses whitespace-separated decimal ids; NULL (with a message printed) on
 * anything else. */
static int *parse_ids(const char *cmd, const char *text, int *n_out)
{
    size_t cap = 1024;
    int n = 0, *ids = (int *)gpt__alloc(cap * sizeof(int)), *grown;
    const char *p = text;
    if (!ids) return NULL;
    for (;;) {
        char *end;
        long v;
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == ',') p++;
        if (!*p) break;
        errno = 0;
        v = strtol(p, &end, 10);
        if (end == p || errno || v < INT_MIN || v > INT_MAX || (*end && !strchr(" \t\r\n,", *end))) {
            fprintf(stderr, "gpt %s: \"%.20s\" is not a token id (expected decimal integers)\n", cmd, p);
            gpt__free(ids);
            return NULL;
        }
        if ((size_t)n == cap) {
            cap *= 2;
            grown = (int *)gpt__realloc(ids, cap * sizeof(int));
            if (!grown) {
                gpt__free(ids);
                return NULL;
            }
            ids = grown;
        }
        ids[n++] = (int)v;
        p = end;
    }
    *n_out = n;
    return ids;
}

/* The tokenizer for tokenize/detokenize: from --vocab/--merges or a model. */
typedef struct tok_source {
    gpt_model *m;
    gpt_tokenizer *own;
    const gpt_tokenizer *tok;
} tok_source;

static int open_tokenizer(const char *cmd, tok_source *s, const char *model, const char *vocab, const char *merges,
                          int no_mmap)
{
    gpt_error err;
    memset(s, 0, sizeof *s);
    if ((vocab != NULL) != (merges != NULL)) {
        usage_error(cmd, "--vocab and --merges go together");
        return 2;
    }
    if (vocab && model) {
        usage_error(cmd, "give either -m or --vocab/--merges");
        return 2;
    }
    if (vocab) {
        s->own = gpt_tokenizer_load(vocab, merges, &err);
        if (!s->own) {
            fprintf(stderr, "gpt %s: %s\n", cmd, err.message);
            return 1;
        }
        s->tok = s->own;
        return 0;
    }
    s->m = cli_load_model(model, no_mmap, NULL);
    if (!s->m) return 1;
    s->tok = gpt_model_tokenizer(s->m);
    return 0;
}

static void close_tokenizer(tok_source *s)
{
    gpt_tokenizer_free(s->own);
    gpt_model_free(s->m);
}

/* The options of tokenize and detokenize. */
#define OPT_MODEL_TOKENIZER                                                                                \
    OPT_STRING("model", 'm', &model, "PATH", "take the tokenizer from this checkpoint (default: the demo model)"), \
    OPT_STRING("vocab", 0, &vocab, "PATH", "encoder.json or vocab.json (with --merges) instead of a model"),     \
    OPT_STRING("merges", 0, &merges, "PATH", "vocab.bpe or merges.txt (with --vocab)"),                      \
    OPT_FLAG("no-mmap", 0, &no_mmap, 1, "read the model into memory instead of mapping it")

int cmd_tokenize(int argc, char **argv)
{
    static const char *intro =
        "usage: gpt tokenize [-m MODEL | --vocab VOCAB.json --merges MERGES.txt] [--special] < text\n"
        "\n"
        "Reads UTF-8 text (any bytes, at most 256 MiB) on stdin and prints its token\n"
        "ids on one line, separated by single spaces (what `gpt score --ids -` and\n"
        "`gpt detokenize` read). The tokenizer comes from the model (default: the demo\n"
        "model) or from encoder.json/vocab.json + vocab.bpe/merges.txt.\n"
        "\n"
        "options:\n";
    const char *model = NULL, *vocab = NULL, *merges = NULL;
    int special = 0, no_mmap = 0, i, rc, n;
    tok_source s;
    char *text;
    size_t len;
    int *ids;
    gpt_error err;
    const cli_option options[] = {
        OPT_MODEL_TOKENIZER,
        OPT_FLAG("special", 0, &special, 1, "read the text \"<|endoftext|>\" as the special token"), OPT_END};
    const cli_command cmd = {"tokenize", intro, options, NULL};
    if ((rc = cli_parse(&cmd, argc, argv)) >= 0) return rc;
    if ((rc = open_tokenizer("tokenize", &s, model, vocab, merges, no_mmap)) != 0) return rc;
    cli_binary_stdio();
    text = cli_read_stream(stdin, CLI_MAX_INPUT, &len, &err);
    if (!text) {
        fprintf(stderr, "gpt tokenize: stdin: %s\n", err.message);
        close_tokenizer(&s);
        return 1;
    }
    n = gpt_tokenize_ex(s.tok, text, len, NULL, 0, special ? GPT_TOKENIZE_SPECIAL : 0);
    ids = n >= 0 ? (int *)gpt__alloc(sizeof(int) * (size_t)(n + 1)) : NULL;
    if (n < 0 || !ids) {
        fprintf(stderr, "gpt tokenize: %s\n", n < 0 ? gpt_status_name((gpt_status)n) : "out of memory");
        gpt__free(text);
        close_tokenizer(&s);
        return 1;
    }
    gpt_tokenize_ex(s.tok, text, len, ids, n, special ? GPT_TOKENIZE_SPECIAL : 0);
    for (i = 0; i < n; i++) printf(i ? " %d" : "%d", ids[i]);
    printf("\n");
    gpt__free(ids);
    gpt__free(text);
    close_tokenizer(&s);
    return cli_stdout_failed("tokenize");
}

int cmd_detokenize(int argc, char **argv)
{
    static const char *intro =
        "usage: gpt detokenize [-m MODEL | --vocab VOCAB.json --merges MERGES.txt] < ids\n"
        "\n"
        "Reads token ids (decimal, separated by spaces or newlines) on stdin and writes\n"
        "the exact bytes they stand for to stdout.\n"
        "\n"
        "options:\n";
    const char *model = NULL, *vocab = NULL, *merges = NULL;
    int no_mmap = 0, i, rc, n, need;
    tok_source s;
    char *text, *out;
    size_t len;
    int *ids;
    gpt_error err;
    const cli_option options[] = {OPT_MODEL_TOKENIZER, OPT_END};
    const cli_command cmd = {"detokenize", intro, options, NULL};
    if ((rc = cli_parse(&cmd, argc, argv)) >= 0) return rc;
    if ((rc = open_tokenizer("detokenize", &s, model, vocab, merges, no_mmap)) != 0) return rc;
    cli_binary_stdio();
    text = cli_read_stream(stdin, CLI_MAX_INPUT, &len, &err);
    if (!text) {
        fprintf(stderr, "gpt detokenize: stdin: %s\n", err.message);
        close_tokenizer(&s);
        return 1;
    }
    ids = parse_ids("detokenize", text, &n);
    gpt__free(text);
    if (!ids) {
        close_tokenizer(&s);
        return 1;
    }
    need = gpt_detokenize(s.tok, ids, n, NULL, 0);
    if (need < 0) {
        for (i = 0; i < n; i++)
            if (ids[i] < 0 || ids[i] >= gpt_tokenizer_n_vocab(s.tok)) break;
        if (i < n)
            fprintf(stderr, "gpt detokenize: token id %d (number %d) is outside 0 .. %d\n", ids[i], i + 1,
                    gpt_tokenizer_n_vocab(s.tok) - 1);
        else
            fprintf(stderr, "gpt detokenize: %s\n", gpt_status_name((gpt_status)need));
        gpt__free(ids);
        close_tokenizer(&s);
        return 1;
    }
    out = (char *)gpt__alloc((size_t)need + 1);
    if (!out) {
        gpt__free(ids);
        close_tokenizer(&s);
        return 1;
    }
    gpt_detokenize(s.tok, ids, n, out, (size_t)need + 1);
    fwrite(out, 1, (size_t)need, stdout);
    gpt__free(out);
    gpt__free(ids);
    close_tokenizer(&s);
    return cli_stdout_failed("detokenize");
}

static int score_progress(int done, int total, void *user)
{
    (void)user;
    fprintf(stderr, "\rscored %d of %d tokens", done, total);
    fflush(stderr);
    return 0;
}

/* Text made of decimal numbers and white space only, at least two of
 * them: most likely the output of `gpt tokenize`, meant for --ids -. */
static int looks_like_ids(const char *text, size_t len)
{
    size_t i, numbers = 0;
    int in_number = 0;
    for (i = 0; i < len; i++) {
        char ch = text[i];
        if (ch >= '0' && ch <= '9') {
            numbers += !in_number;
            in_number = 1;
        } else if (ch == ' ' || ch == '\n' || ch == '\r' || ch == '\t') {
            in_number = 0;
        } else {
            return 0;
        }
    }
    return numbers >= 2;
}

int cmd_score(int argc, char **argv)
{
    static const char *intro =
        "usage: gpt score [-m MODEL] [--ids \"ID ID ...\" | --ids - | -f FILE] [options] [< text]\n"
        "\n"
        "Prints the natural-log probability of every token given the ones before it,\n"
        "one line per token: INDEX<TAB>ID<TAB>LOGPROB for INDEX = 1 .. n-1, then\n"
        "ppl<TAB>PERPLEXITY. The tokens are --ids (\"-\": read them from stdin, as\n"
        "`gpt tokenize` prints them), or the tokenized text of -f FILE or of stdin.\n"
        "Text longer than the context is scored in sliding windows of n_ctx tokens\n"
        "that advance by n_ctx/2; each token is scored once, with at least n_ctx/2\n"
        "tokens before it once the text is longer than the context. Inputs are at\n"
        "most 256 MiB. Non-finite logits (a model with NaN weights) are an error.\n"
        "\n"
        "options:\n";
    const char *model = NULL, *ids_text = NULL, *file = NULL;
    gpt_context_params cp = gpt_context_defaults();
    gpt_model *m = NULL;
    gpt_context *c = NULL;
    int *ids = NULL, n = 0, i, rc = 1, no_mmap = 0;
    char *input = NULL;
    float *lp = NULL;
    double sum = 0.0;
    gpt_error err;
    gpt_status st;
    const cli_option options[] = {
        OPT_STRING("model", 'm', &model, "PATH", "checkpoint (default: models/demo.bin)"),
        OPT_STRING("ids", 0, &ids_text, "IDS", "token ids instead of text (\"-\": from stdin)"),
        OPT_STRING("file", 'f', &file, "PATH", "score the text of a file (\"-\": stdin, the default)"),
        OPT_INT("ctx-size", 'c', &cp.n_ctx, "N", 0, INT_MAX, "window size (default 0: the model's context)"),
        OPT_CHOICE("kv", 0, &cp.kv_type, "TYPE", "auto|f16|f32",
                   "KV cache: auto (f16 unless the weights are f32), f16, f32"),
        OPT_FLAG("kv-f16", 0, &cp.kv_type, GPT_KV_F16, "the same as --kv f16"),
        OPT_INT("batch-size", 'b', &cp.n_batch, "N", 1, INT_MAX, "tokens per forward step (default 512)"),
        OPT_INT("threads", 't', &cp.n_threads, "N", 0, 256, "threads (default 0: one per CPU)"),
        OPT_FLAG("no-mmap", 0, &no_mmap, 1, "read the model into memory instead of mapping it"),
        OPT_END};
    const cli_command cmd = {"score", intro, options, NULL};
    if ((rc = cli_parse(&cmd, argc, argv)) >= 0) return rc;
    rc = 1;
    if (ids_text && file) return usage_error("score", "give the tokens with --ids or the text with -f, not both");
    if (!(m = cli_load_model(model, no_mmap, NULL))) return 1;
    cli_binary_stdio(); /* the same bytes in and out on every platform: no CRLF on Windows */
    if (ids_text && strcmp(ids_text, "-") != 0) {
        if (!(ids = parse_ids("score", ids_text, &n))) goto done;
    } else {
        size_t len;
        if (!(input = cli_read_input(ids_text ? "-" : file ? file : "-", CLI_MAX_INPUT, &len, &err))) {
            fprintf(stderr, "gpt score: %s\n", err.message);
            goto done;
        }
        if (ids_text) {
            if (!(ids = parse_ids("score", input, &n))) goto done;
        } else {
            if (!file && looks_like_ids(input, len))
                fprintf(stderr, "gpt score: warning: the text on stdin is only numbers; it is scored as text "
                                "(to score token ids, use --ids -)\n");
            n = gpt_tokenize(gpt_model_tokenizer(m), input, len, NULL, 0);
            ids = n >= 0 ? (int *)gpt__alloc(sizeof(int) * (size_t)(n + 1)) : NULL;
            if (ids) gpt_tokenize(gpt_model_tokenizer(m), input, len, ids, n);
            if (!ids) {
                fprintf(stderr, "gpt score: cannot tokenize the input\n");
                goto done;
            }
        }
    }
    if (n < 2) {
        fprintf(stderr, "gpt score: need at least 2 tokens to score, got %d\n", n);
        goto done;
    }
    if (!(c = gpt_context_new(m, &cp, &err))) {
        fprintf(stderr, "gpt score: %s\n", err.message);
        goto done;
    }
    lp = (float *)gpt__alloc(sizeof(float) * (size_t)n);
    if (!lp) {
        fprintf(stderr, "gpt score: out of memory for %d log-probabilities\n", n);
        goto done;
    }
    st = gpt_score_ex(c, ids, n, lp, cli_isatty(stderr) ? score_progress : NULL, NULL);
    if (cli_isatty(stderr)) fprintf(stderr, "\n");
    if (st != GPT_OK) {
        fprintf(stderr, "gpt score: %s\n", gpt_context_error(c));
        goto done;
    }
    for (i = 1; i < n; i++) {
        printf("%d\t%d\t%.6f\n", i, ids[i], (double)lp[i - 1]);
        sum += lp[i - 1];
    }
    printf("ppl\t%.6f\n", exp(-sum / (n - 1)));
    rc = cli_stdout_failed("score");
done:
    gpt__free(input);
    gpt__free(lp);
    gpt__free(ids);
    gpt_context_free(c);
    gpt_model_free(m);
    return rc;
}

int cmd_info(int argc, char **argv)
{
    static const char *intro =
        "usage: gpt info [-m MODEL] [--check]\n"
        "\n"
        "Prints a checkpoint's hyperparameters, weight type, parameter count and size.\n"
        "With --check it also reads every weight and fails (exit 1) naming the first\n"
        "one that is NaN or infinite.\n"
        "\n"
        "options:\n";
    const char *model = NULL;
    gpt_model *m;
    gpt_config cfg;
    const gpt_tokenizer *tok;
    int rc, check = 0, no_mmap = 0;
    uint64_t size = 0, n_checked = 0;
    gpt_error err;
    FILE *f;
    const cli_option options[] = {
        OPT_STRING("model", 'm', &model, "PATH", "checkpoint (default: models/demo.bin)"),
        OPT_FLAG("check", 0, &check, 1, "read every weight: all must be finite"),
        OPT_FLAG("no-mmap", 0, &no_mmap, 1, "read the model into memory instead of mapping it"),
        OPT_END};
    const cli_command cmd = {"info", intro, options, NULL};
    if ((rc = cli_parse(&cmd, argc, argv)) >= 0) return rc;
    if (!(m = cli_load_model(model, no_mmap, &model))) return 1;
    cfg = gpt_model_config(m);
    tok = gpt_model_tokenizer(m);
    if ((f = gpt__open_regular(model, 0, &size, NULL)) != NULL) fclose(f);
    printf("file       %s\n", model);
    printf("size       %llu bytes\n", (unsigned long long)size);
    printf("n_vocab    %d\n", cfg.n_vocab);
    printf("n_ctx      %d\n", cfg.n_ctx);
    printf("n_embd     %d\n", cfg.n_embd);
    printf("n_head     %d\n", cfg.n_head);
    printf("n_layer    %d\n", cfg.n_layer);
    printf("head_dim   %d\n", cfg.n_embd / cfg.n_head);
    printf("ln_eps     %g\n", (double)cfg.ln_eps);
    printf("dtype      %s\n", gpt_dtype_name(cfg.dtype));
    printf("params     %llu (%.1fM)\n", (unsigned long long)cfg.n_params, (double)cfg.n_params / 1e6);
    printf("weights    %llu bytes\n", (unsigned long long)cfg.weight_bytes);
    printf("eot        %d\n", gpt_tokenizer_eot(tok));
    gpt_model_free(m);
    if (!check) return 0;
    if (ckpt_check_finite(model, &n_checked, &err) != GPT_OK) {
        printf("check      failed\n");
        fprintf(stderr, "gpt info: %s\n", err.message);
        return 1;
    }
    printf("check      all %llu weights are finite\n", (unsigned long long)n_checked);
    return 0;
}
