/* cmd_text.c - `gpt tokenize`, `gpt detokenize`, `gpt score` and `gpt info`. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "common.h"

#if defined(_WIN32)
#include <fcntl.h>
#include <io.h>
#endif

static void binary_stdio(void)
{
#if defined(_WIN32)
    _setmode(_fileno(stdout), _O_BINARY);
    _setmode(_fileno(stdin), _O_BINARY);
#endif
}

/* Parses whitespace-separated decimal ids; NULL (with a message printed) on
 * anything else. */
static int *parse_ids(const char *cmd, const char *text, int *n_out)
{
    size_t cap = 1024;
    int n = 0, *ids = (int *)malloc(cap * sizeof(int)), *grown;
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
            free(ids);
            return NULL;
        }
        if ((size_t)n == cap) {
            cap *= 2;
            grown = (int *)realloc(ids, cap * sizeof(int));
            if (!grown) {
                free(ids);
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

static int open_tokenizer(const char *cmd, tok_source *s, const char *model, const char *vocab, const char *merges)
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
    s->m = cli_load_model(model);
    if (!s->m) return 1;
    s->tok = gpt_model_tokenizer(s->m);
    return 0;
}

static void close_tokenizer(tok_source *s)
{
    gpt_tokenizer_free(s->own);
    gpt_model_free(s->m);
}

/* Options of tokenize and detokenize: -m, --vocab, --merges, and --special
 * where `special` is not NULL. Returns -1 to go on, else an exit status. */
static int tokenizer_options(const char *cmd, const char *help, int argc, char **argv, const char **model,
                             const char **vocab, const char **merges, int *special)
{
    int i;
    *model = *vocab = *merges = NULL;
    for (i = 1; i < argc; i++) {
        if (is_help(argv[i])) {
            fputs(help, stdout);
            return 0;
        }
        if (!strcmp(argv[i], "-m") || !strcmp(argv[i], "--model")) {
            if (opt_value(argc, argv, &i, model)) return 2;
        } else if (!strcmp(argv[i], "--vocab")) {
            if (opt_value(argc, argv, &i, vocab)) return 2;
        } else if (!strcmp(argv[i], "--merges")) {
            if (opt_value(argc, argv, &i, merges)) return 2;
        } else if (special && !strcmp(argv[i], "--special")) {
            *special = 1;
        } else {
            return usage_error(cmd, "unknown option \"%s\"", argv[i]);
        }
    }
    return -1;
}

int cmd_tokenize(int argc, char **argv)
{
    static const char *help =
        "usage: gpt tokenize [-m MODEL | --vocab VOCAB.json --merges MERGES.txt] [--special] < text\n"
        "\n"
        "Reads UTF-8 text (any bytes) on stdin and prints its token ids on one line,\n"
        "separated by single spaces. The tokenizer comes from the model (default: the\n"
        "demo model) or from encoder.json/vocab.json + vocab.bpe/merges.txt.\n"
        "\n"
        "  --special    read the text \"<|endoftext|>\" as the special token\n";
    const char *model, *vocab, *merges;
    int special = 0, i, rc, n;
    tok_source s;
    char *text;
    size_t len;
    int *ids;
    gpt_error err;
    if ((rc = tokenizer_options("tokenize", help, argc, argv, &model, &vocab, &merges, &special)) >= 0) return rc;
    if ((rc = open_tokenizer("tokenize", &s, model, vocab, merges)) != 0) return rc;
    binary_stdio();
    text = cli_read_stream(stdin, &len, &err);
    if (!text) {
        fprintf(stderr, "gpt tokenize: stdin: %s\n", err.message);
        close_tokenizer(&s);
        return 1;
    }
    n = gpt_tokenize_ex(s.tok, text, len, NULL, 0, special ? GPT_TOKENIZE_SPECIAL : 0);
    ids = n >= 0 ? (int *)malloc(sizeof(int) * (size_t)(n + 1)) : NULL;
    if (n < 0 || !ids) {
        fprintf(stderr, "gpt tokenize: %s\n", n < 0 ? gpt_status_name((gpt_status)n) : "out of memory");
        free(text);
        close_tokenizer(&s);
        return 1;
    }
    gpt_tokenize_ex(s.tok, text, len, ids, n, special ? GPT_TOKENIZE_SPECIAL : 0);
    for (i = 0; i < n; i++) printf(i ? " %d" : "%d", ids[i]);
    printf("\n");
    free(ids);
    free(text);
    close_tokenizer(&s);
    return fflush(stdout) == 0 && !ferror(stdout) ? 0 : 1;
}

int cmd_detokenize(int argc, char **argv)
{
    static const char *help =
        "usage: gpt detokenize [-m MODEL | --vocab VOCAB.json --merges MERGES.txt] < ids\n"
        "\n"
        "Reads token ids (decimal, separated by spaces or newlines) on stdin and writes\n"
        "the exact bytes they stand for to stdout.\n";
    const char *model, *vocab, *merges;
    int i, rc, n, need;
    tok_source s;
    char *text, *out;
    size_t len;
    int *ids;
    gpt_error err;
    if ((rc = tokenizer_options("detokenize", help, argc, argv, &model, &vocab, &merges, NULL)) >= 0) return rc;
    if ((rc = open_tokenizer("detokenize", &s, model, vocab, merges)) != 0) return rc;
    binary_stdio();
    text = cli_read_stream(stdin, &len, &err);
    if (!text) {
        fprintf(stderr, "gpt detokenize: stdin: %s\n", err.message);
        close_tokenizer(&s);
        return 1;
    }
    ids = parse_ids("detokenize", text, &n);
    free(text);
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
        free(ids);
        close_tokenizer(&s);
        return 1;
    }
    out = (char *)malloc((size_t)need + 1);
    if (!out) {
        free(ids);
        close_tokenizer(&s);
        return 1;
    }
    gpt_detokenize(s.tok, ids, n, out, (size_t)need + 1);
    fwrite(out, 1, (size_t)need, stdout);
    free(out);
    free(ids);
    close_tokenizer(&s);
    return fflush(stdout) == 0 && !ferror(stdout) ? 0 : 1;
}

static int score_progress(int done, int total, void *user)
{
    (void)user;
    fprintf(stderr, "\rscored %d of %d tokens", done, total);
    fflush(stderr);
    return 0;
}

int cmd_score(int argc, char **argv)
{
    static const char *help =
        "usage: gpt score [-m MODEL] [--ids \"ID ID ...\"] [options] [< text]\n"
        "\n"
        "Prints the natural-log probability of every token given the ones before it,\n"
        "one line per token: INDEX<TAB>ID<TAB>LOGPROB for INDEX = 1 .. n-1, then\n"
        "ppl<TAB>PERPLEXITY. The tokens are --ids, or the tokenized text on stdin.\n"
        "Text longer than the context is scored in sliding windows of n_ctx tokens\n"
        "that advance by n_ctx/2; each token is scored once, with at least n_ctx/2\n"
        "tokens before it once the text is longer than the context.\n"
        "\n"
        "  -m, --model PATH     checkpoint (default: models/demo.bin)\n"
        "      --ids \"...\"      token ids instead of text on stdin\n"
        "  -c, --ctx-size N     window size (default: the model's context)\n"
        "      --kv TYPE        KV cache: auto (f16 unless the weights are f32), f16, f32\n"
        "  -b, --batch-size N   tokens per forward step (default 512)\n"
        "  -t, --threads N      threads (default: one per CPU)\n";
    const char *model = NULL, *ids_text = NULL;
    gpt_context_params cp = gpt_context_defaults();
    gpt_model *m = NULL;
    gpt_context *c = NULL;
    int *ids = NULL, n = 0, i, rc = 1;
    float *lp = NULL;
    double sum = 0.0;
    gpt_error err;
    gpt_status st;
    for (i = 1; i < argc; i++) {
        if (is_help(argv[i])) {
            fputs(help, stdout);
            return 0;
        }
        if (!strcmp(argv[i], "-m") || !strcmp(argv[i], "--model")) {
            if (opt_value(argc, argv, &i, &model)) return 2;
        } else if (!strcmp(argv[i], "--ids")) {
            if (opt_value(argc, argv, &i, &ids_text)) return 2;
        } else if (!strcmp(argv[i], "--kv") || !strcmp(argv[i], "--kv-f16")) {
            if (opt_kv(argc, argv, &i, &cp.kv_type)) return 2;
        } else if (!strcmp(argv[i], "-c") || !strcmp(argv[i], "--ctx-size")) {
            if (opt_int(argc, argv, &i, 0, INT_MAX, &cp.n_ctx)) return 2;
        } else if (!strcmp(argv[i], "-b") || !strcmp(argv[i], "--batch-size")) {
            if (opt_int(argc, argv, &i, 1, INT_MAX, &cp.n_batch)) return 2;
        } else if (!strcmp(argv[i], "-t") || !strcmp(argv[i], "--threads")) {
            if (opt_int(argc, argv, &i, 1, 256, &cp.n_threads)) return 2;
        } else {
            return usage_error("score", "unknown option \"%s\"", argv[i]);
        }
    }
    if (!(m = cli_load_model(model))) return 1;
    binary_stdio(); /* the same bytes out on every platform: no CRLF on Windows */
    if (ids_text) {
        if (!(ids = parse_ids("score", ids_text, &n))) goto done;
    } else {
        size_t len;
        char *text;
        text = cli_read_stream(stdin, &len, &err);
        if (!text) {
            fprintf(stderr, "gpt score: stdin: %s\n", err.message);
            goto done;
        }
        n = gpt_tokenize(gpt_model_tokenizer(m), text, len, NULL, 0);
        ids = n >= 0 ? (int *)malloc(sizeof(int) * (size_t)(n + 1)) : NULL;
        if (ids) gpt_tokenize(gpt_model_tokenizer(m), text, len, ids, n);
        free(text);
        if (!ids) {
            fprintf(stderr, "gpt score: cannot tokenize the input\n");
            goto done;
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
    lp = (float *)malloc(sizeof(float) * (size_t)n);
    if (!lp) goto done;
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
    rc = fflush(stdout) == 0 && !ferror(stdout) ? 0 : 1;
done:
    free(lp);
    free(ids);
    gpt_context_free(c);
    gpt_model_free(m);
    return rc;
}

int cmd_info(int argc, char **argv)
{
    static const char *help =
        "usage: gpt info [-m MODEL]\n"
        "\n"
        "Prints a checkpoint's hyperparameters, weight type, parameter count and size.\n";
    const char *model = NULL;
    char found[CLI_PATH_MAX];
    gpt_model *m;
    gpt_config cfg;
    const gpt_tokenizer *tok;
    int i;
    long size = -1;
    FILE *f;
    for (i = 1; i < argc; i++) {
        if (is_help(argv[i])) {
            fputs(help, stdout);
            return 0;
        }
        if (!strcmp(argv[i], "-m") || !strcmp(argv[i], "--model")) {
            if (opt_value(argc, argv, &i, &model)) return 2;
        } else {
            return usage_error("info", "unknown option \"%s\"", argv[i]);
        }
    }
    if (!model) model = cli_data_path("models/demo.bin", found, sizeof found);
    if (!(m = cli_load_model(model))) return 1;
    cfg = gpt_model_config(m);
    tok = gpt_model_tokenizer(m);
    if ((f = fopen(model, "rb")) != NULL) {
        if (fseek(f, 0, SEEK_END) == 0) size = ftell(f);
        fclose(f);
    }
    printf("file       %s\n", model);
    printf("size       %ld bytes\n", size);
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
    return 0;
}
