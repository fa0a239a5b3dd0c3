/*
 * cmd_generate.c - `gpt generate`: continue a prompt, streaming to stdout;
 * several continuations in one batch (-N), Hugging Face's generate()
 * options (beam search, max_length, ...) and JSON lines (--json).
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char *intro =
    "usage: gpt generate [-m MODEL] [-p TEXT | -f FILE] [-N K] [--json] [options]\n"
    "\n"
    "Continues a prompt and streams the new text to stdout. Without -p or -f the\n"
    "prompt is read from stdin when stdin is not a terminal (-f - always reads\n"
    "stdin); an empty prompt starts from <|endoftext|> (unconditional text).\n"
    "Without -m the demo model is used. Exit status: 0 when the text was\n"
    "generated (also when the context filled up after some of it), 1 when it\n"
    "could not be (a prompt that leaves no room to generate, non-finite logits,\n"
    "a write error on stdout, ...), 2 for a usage error (a bad value, or\n"
    "options that do not go together).\n"
    "\n"
    "Defaults sample at temperature 0.8 with top-k 40, top-p 0.95, min-p 0.05;\n"
    "Hugging Face's generate() is greedy by default: --greedy gives its default.\n"
    "\n"
    "options:\n";

static const char *epilog =
    "\n"
    "-N K prints K continuations of the prompt, each under a line \"--- i ---\"\n"
    "(i from 0) and followed by a newline. They are sampled together, as\n"
    "sequences of one context in one batch; continuation i draws from seed + i,\n"
    "so it is the text `gpt generate --seed S+i` prints. Section 0 streams as it\n"
    "is generated; a later section is held until the ones before it have ended,\n"
    "then printed and streamed from there, so the sections come in order. With\n"
    "--beams N, -N K returns the K best hypotheses, best first, when the search\n"
    "ends.\n"
    "\n"
    "--json prints one line per continuation, in index order, when it ends:\n"
    "  {\"index\": i, \"text\": \"...\", \"tokens\": [ids generated], \"stop_reason\":\n"
    "   \"length\" | \"eos\" | \"stop\" | \"context_full\", \"seed\": S}\n"
    "(text: the prompt too with --echo; tokens: <|endoftext|> included when it\n"
    "ended the text; seed: the command's, drawn or given), plus \"score\" for beam\n"
    "hypotheses and, with --logprobs N, \"logprobs\": [{\"token\": id, \"text\": \"...\",\n"
    "\"logprob\": x, \"top\": [[id, logprob], ...]}, ...]: the natural-log probability\n"
    "of each id under the model (before temperature and the filters) and the N\n"
    "most likely ids. Bytes that are not UTF-8 are written as \\ufffd (a token's\n"
    "entry then also has \"bytes\": its exact bytes).\n";

/* ------------------------------------------------------------------------ */
/* Growing buffers                                                          */

typedef struct buf {
    char *p;
    size_t n, cap;
} buf;

/* Room for n more bytes and a NUL. */
static int buf_reserve(buf *b, size_t n)
{
    if (n > (size_t)-1 / 4 - b->n) return -1;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        char *grown;
        while (cap < b->n + n + 1) cap *= 2;
        if (!(grown = (char *)gpt__realloc(b->p, cap))) return -1;
        b->p = grown;
        b->cap = cap;
    }
    return 0;
}

static int buf_add(buf *b, const void *s, size_t n)
{
    if (buf_reserve(b, n) != 0) return -1;
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
    return 0;
}

static int buf_printf(buf *b, const char *fmt, ...) CLI_PRINTF(2, 3);
static int buf_printf(buf *b, const char *fmt, ...)
{
    char tmp[128];
    int n;
    va_list ap;
    va_start(ap, fmt);
    n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0 || n >= (int)sizeof tmp) return -1; /* only short numbers go through here */
    return buf_add(b, tmp, (size_t)n);
}

/* A JSON string: quotes around cli_json_escape. */
static int buf_json(buf *b, const char *s, size_t n)
{
    if (n > (size_t)-1 / 8 || buf_add(b, "\"", 1) != 0 || buf_reserve(b, 6 * n + 1) != 0) return -1;
    b->n += cli_json_escape(s, n, b->p + b->n);
    return buf_add(b, "\"", 1);
}

/* A float for JSON (which has no NaN or infinity): null then. */
static int buf_float(buf *b, double x)
{
    if (!isfinite(x)) return buf_add(b, "null", 4);
    return buf_printf(b, "%.9g", x);
}

static void buf_free(buf *b)
{
    gpt__free(b->p);
    b->p = NULL;
    b->n = b->cap = 0;
}

/* ------------------------------------------------------------------------ */
/* Output                                                                   */

/* What one continuation has produced and not yet printed. */
typedef struct seq_out {
    buf text;            /* text held until its section is printed (all of it with --json) */
    buf tokens;          /* --json: "id, id, ..." */
    buf logprobs;        /* --json --logprobs: the entries, comma-separated */
    gpt_stop_reason why; /* GPT_STOP_NONE while it goes on */
    int has_score;
    float score;
} seq_out;

typedef struct gen_out {
    int n;               /* continuations */
    seq_out *seqs;
    int cur;             /* the section being printed, or the next JSON line */
    int json, headers, echo, beams, n_logprobs; /* n_logprobs -1: no "logprobs" */
    const char *prompt;
    size_t prompt_len;
    uint64_t seed;
    const gpt_tokenizer *tok;
    size_t bytes;        /* written to stdout */
    int last_newline;
    int n_generated;     /* ids over all continuations */
    int failed;          /* a write to stdout failed */
    int oom;
} gen_out;

static void out_write(gen_out *o, const char *s, size_t n)
{
    if (o->failed || n == 0) return;
    if (fwrite(s, 1, n, stdout) != n || fflush(stdout) != 0) {
        cli_stdout_note_errno(errno);
        o->failed = 1;
        return;
    }
    o->bytes += n;
    o->last_newline = s[n - 1] == '\n';
}

static const char *stop_json(gpt_stop_reason r)
{
    switch (r) {
    case GPT_STOP_MAX_TOKENS: return "length";
    case GPT_STOP_EOS: return "eos";
    case GPT_STOP_STRING: return "stop";
    case GPT_STOP_CONTEXT_FULL: return "context_full";
    case GPT_STOP_CALLBACK: return "cancelled";
    default: return "none";
    }
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

/* A section begins: its header, the prompt with --echo, what it has so far. */
static void section_start(gen_out *o, int i)
{
    seq_out *s = &o->seqs[i];
    if (o->json) return;
    if (o->headers) {
        char h[48];
        int n = snprintf(h, sizeof h, "--- %d ---\n", i);
        out_write(o, h, (size_t)n);
    }
    if (o->echo) out_write(o, o->prompt, o->prompt_len);
    out_write(o, s->text.p, s->text.n);
    buf_free(&s->text);
}

/* A section ends: the newline that closes it, or its JSON line. */
static void section_end(gen_out *o, int i)
{
    seq_out *s = &o->seqs[i];
    buf line = {NULL, 0, 0};
    int bad = 0;
    if (!o->json) {
        if (o->headers) out_write(o, "\n", 1);
        return;
    }
    bad |= buf_printf(&line, "{\"index\": %d, \"text\": ", i);
    if (o->echo) { /* the prompt and the text as one string */
        buf all = {NULL, 0, 0};
        bad |= buf_add(&all, o->prompt, o->prompt_len) | buf_add(&all, s->text.p, s->text.n);
        bad |= buf_json(&line, all.p ? all.p : "", all.n);
        buf_free(&all);
    } else {
        bad |= buf_json(&line, s->text.p ? s->text.p : "", s->text.n);
    }
    bad |= buf_add(&line, ", \"tokens\": [", 13) | buf_add(&line, s->tokens.p, s->tokens.n);
    bad |= buf_printf(&line, "], \"stop_reason\": \"%s\", \"seed\": %llu", stop_json(s->why),
                      (unsigned long long)o->seed);
    if (s->has_score) bad |= buf_add(&line, ", \"score\": ", 11) | buf_float(&line, s->score);
    if (o->n_logprobs >= 0)
        bad |= buf_add(&line, ", \"logprobs\": [", 15) | buf_add(&line, s->logprobs.p, s->logprobs.n) |
               buf_add(&line, "]", 1);
    bad |= buf_add(&line, "}\n", 2);
    if (bad) o->oom = 1;
    else out_write(o, line.p, line.n);
    buf_free(&line);
    buf_free(&s->text);
    buf_free(&s->tokens);
    buf_free(&s->logprobs);
}

/* Prints the sections that have ended, in order, and starts the next. */
static void advance(gen_out *o)
{
    while (o->cur < o->n && o->seqs[o->cur].why != GPT_STOP_NONE && !o->failed && !o->oom) {
        section_end(o, o->cur);
        if (++o->cur < o->n) section_start(o, o->cur);
    }
}

/* One --logprobs entry: the id, its text, its log-probability and the
 * alternatives. */
static int add_logprob(gen_out *o, seq_out *s, int id, float lp, const gpt_token_logprob *top, int n_top)
{
    size_t len = 0;
    const char *bytes = gpt_token_bytes(o->tok, id, &len);
    char tmp[8];
    int bad = 0, k;
    size_t i;
    if (!bytes) bytes = "";
    if (s->logprobs.n) bad |= buf_add(&s->logprobs, ", ", 2);
    bad |= buf_printf(&s->logprobs, "{\"token\": %d, \"text\": ", id) | buf_json(&s->logprobs, bytes, len);
    if (!cli_utf8_valid(bytes, len)) { /* the text has \ufffd: the exact bytes too */
        bad |= buf_add(&s->logprobs, ", \"bytes\": [", 12);
        for (i = 0; i < len; i++) {
            snprintf(tmp, sizeof tmp, "%s%u", i ? ", " : "", (unsigned)(unsigned char)bytes[i]);
            bad |= buf_add(&s->logprobs, tmp, strlen(tmp));
        }
        bad |= buf_add(&s->logprobs, "]", 1);
    }
    bad |= buf_add(&s->logprobs, ", \"logprob\": ", 13) | buf_float(&s->logprobs, lp);
    bad |= buf_add(&s->logprobs, ", \"top\": [", 10);
    for (k = 0; k < n_top; k++) {
        bad |= buf_printf(&s->logprobs, "%s[%d, ", k ? ", " : "", top[k].token) |
               buf_float(&s->logprobs, top[k].logprob) | buf_add(&s->logprobs, "]", 1);
    }
    bad |= buf_add(&s->logprobs, "]}", 2);
    return bad;
}

/* Takes one piece of the generation; non-zero stops it. */
static int on_piece(gen_out *o, const gpt_piece *pc)
{
    seq_out *s;
    int j, bad = 0;
    if (pc->seq < 0 || pc->seq >= o->n) return 0;
    s = &o->seqs[pc->seq];
    o->n_generated += pc->n_tokens;
    if (o->json)
        for (j = 0; j < pc->n_tokens; j++) {
            bad |= buf_printf(&s->tokens, "%s%d", s->tokens.n ? ", " : "", pc->tokens[j]);
            if (o->n_logprobs >= 0)
                bad |= add_logprob(o, s, pc->tokens[j], pc->logprobs ? pc->logprobs[j] : pc->logprob,
                                   pc->top ? pc->top + (size_t)j * (size_t)pc->n_top : NULL, pc->top ? pc->n_top : 0);
        }
    if (pc->len) {
        if (!o->json && pc->seq == o->cur) out_write(o, pc->text, pc->len);
        else bad |= buf_add(&s->text, pc->text, pc->len);
    }
    if (bad) o->oom = 1;
    if (pc->stop_reason != GPT_STOP_NONE) {
        s->why = pc->stop_reason;
        if (o->beams) { /* a hypothesis: all its ids in one piece, and its score */
            s->has_score = 1;
            s->score = pc->score;
        }
        advance(o);
    }
    return o->failed || o->oom;
}

static double rate(int n, double dt) { return n / (dt > 0 ? dt : 1e-9); }

/* The KV cache a generation of n_streams sequences over one prompt needs
 * (0 for one sequence: the library's default). The prompt's pages (at most
 * a window's) are shared; each sequence then holds the pages of its new
 * positions, which may start inside the prompt's last page (a copy):
 * ceil(new / 64) + 1 pages, new bounded by -n, --max-length and the window,
 * and one page more each to spare. Far less than the library's default (a
 * window per sequence) when the new tokens are few, as they are by default:
 * -N 16 on GPT-2 124M with an f32 cache takes 0.38 GB instead of 1.2 GB. */
static int kv_size_for(int n_ctx, int n_streams, int max_new, int max_length, int slide)
{
    long long pages_ctx = (n_ctx + 63) / 64, bound = n_ctx, total;
    if (n_streams <= 1) return 0;
    if (!slide && max_new >= 0 && max_new < bound) bound = max_new;
    if (!slide && max_length > 0 && max_length < bound) bound = max_length;
    total = pages_ctx + (long long)n_streams * ((bound + 63) / 64 + 2);
    return total * 64 > INT_MAX ? 0 : (int)(total * 64);
}

int cmd_generate(int argc, char **argv)
{
    gpt_generate_params gp = gpt_generate_defaults(), gp0;
    gpt_context_params cp = gpt_context_defaults();
    const char *model_path = NULL, *prompt = NULL, *file = NULL;
    cli_list stops = {NULL, 0};
    cli_seed seed = {0, 0};
    char *prompt_buf = NULL;
    int verbose = 0, n_predict = INT_MIN, no_mmap = 0, ignore_eos = 0, special = 0, slide = 0, rc = 1;
    int n_seq = 1, beams = 1, max_length = 0, json = 0, echo = 0, logprobs = -1, n_streams, i, r = 0;
    gpt_model *m = NULL;
    gpt_context *c = NULL;
    gpt_generator *g = NULL;
    gpt_generate_result res0;
    gpt_error err;
    gpt_status st;
    gpt_piece piece;
    gen_out out;
    double t0, t1, t2;
    const cli_option options[] = {
        OPT_STRING("model", 'm', &model_path, "PATH", "checkpoint (default: models/demo.bin)"),
        OPT_STRING("prompt", 'p', &prompt, "TEXT", "prompt text"),
        OPT_STRING("file", 'f', &file, "PATH", "read the prompt from a file (-: stdin)"),
        OPT_INT("n-predict", 'n', &n_predict, "N", -1, INT_MAX,
                "tokens to generate (default 128, or no limit with\n--max-length; -1 = until the context is full)"),
        OPT_INT("n-sequences", 'N', &n_seq, "K", 1, GPT_MAX_SEQ,
                "K continuations, sampled in one batch; the i-th uses\nseed + i (default 1; HF num_return_sequences)"),
        OPT_FLAG("json", 0, &json, 1, "one JSON object per continuation and line (below)"),
        OPT_FLAG("echo", 0, &echo, 1, "print the prompt before the continuation"),
        OPT_SECTION("sampling:"),
        OPT_FLOAT("temp", 0, &gp.temperature, "T", 0, 1e6, "temperature (default 0.8; 0 = greedy)"),
        OPT_INT("top-k", 0, &gp.top_k, "K", 0, INT_MAX, "keep the K most likely tokens (default 40; 0 = off)"),
        OPT_FLOAT("top-p", 0, &gp.top_p, "P", 1e-9, 1,
                  "keep the most likely tokens that sum to P (default 0.95; 1 = off)"),
        OPT_FLOAT("min-p", 0, &gp.min_p, "P", 0, 1,
                  "drop tokens below P times the top probability (default 0.05; 0 = off)"),
        OPT_FLOAT("repeat-penalty", 0, &gp.repetition_penalty, "R", 1e-6, 1e6,
                  "CTRL-style penalty on tokens already in the context\n(default 1.0 = off; HF repetition_penalty)"),
        OPT_INT("repeat-last-n", 0, &gp.repeat_last_n, "N", -1, INT_MAX,
                "tokens the penalty looks back on (default -1 = all; 0 = none)"),
        OPT_FLOAT("presence-penalty", 0, &gp.presence_penalty, "X", -2, 2,
                  "subtract X from the logit of each token generated so\nfar (OpenAI's; default 0)"),
        OPT_FLOAT("frequency-penalty", 0, &gp.frequency_penalty, "X", -2, 2,
                  "subtract X per time a token was generated (OpenAI's;\ndefault 0)"),
        OPT_SEED("seed", 's', &seed, "S",
                 "random seed (default 42; -1 = drawn from the system,\nshown by -v and in --json); the same seed gives the\n"
                 "same text"),
        OPT_FLAG("greedy", 0, &gp.do_sample, 0, "the most likely token at each step (HF's default,\ndo_sample=False); "
                 "with --beams, beam search"),
        OPT_CHOICE("do-sample", 0, &gp.do_sample, "BOOL", "false|true",
                   "false = --greedy; true = sample (HF do_sample;\ndefault: sample unless --temp 0 or --beams)"),
        OPT_SECTION("Hugging Face generate():"),
        OPT_INT("max-length", 0, &max_length, "N", 1, INT_MAX,
                "stop when a sequence holds N tokens, the prompt's\nincluded (HF max_length; default: no limit; -n wins\nover it)"),
        OPT_INT("min-new-tokens", 0, &gp.min_new_tokens, "N", 0, INT_MAX,
                "<|endoftext|> cannot come before N new tokens\n(HF min_new_tokens; default 0)"),
        OPT_INT("no-repeat-ngram", 0, &gp.no_repeat_ngram_size, "N", 0, INT_MAX,
                "no N-gram occurs twice in a sequence\n(HF no_repeat_ngram_size; default 0 = off)"),
        OPT_INT("beams", 0, &beams, "N", 1, GPT_MAX_SEQ, "beam search with N beams (HF num_beams;\ndefault 1 = off)"),
        OPT_FLOAT("length-penalty", 0, &gp.length_penalty, "X", -1e6, 1e6,
                  "beam hypotheses score sum(logprobs) / length^X\n(HF length_penalty; default 1)"),
        OPT_CHOICE("early-stopping", 0, &gp.early_stopping, "WHEN", "false|true|never",
                   "when beam search ends (HF early_stopping): false\n(default) when no beam can still win, judged at the\n"
                   "current length; true as soon as --beams hypotheses\nare done; never when no beam can win at any length"),
        OPT_INT("logprobs", 0, &logprobs, "N", 0, GPT_MAX_LOGPROBS,
                "with --json: each token's log-probability and the N\nmost likely alternatives (0 .. 20)"),
        OPT_SECTION("stopping and context:"),
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
        OPT_FLAG("verbose", 'v', &verbose, 1, "print the seed and the prompt's and generation's\nspeeds on stderr"),
        OPT_END};
    const cli_command cmd = {"generate", intro, options, epilog};

    memset(&out, 0, sizeof out);
    seed.value = gp.seed;
    if ((rc = cli_parse(&cmd, argc, argv)) >= 0) goto done;
    rc = 2;
    if (prompt && file) {
        usage_error("generate", "give the prompt with -p or -f, not both");
        goto done;
    }
    /* the combinations Hugging Face refuses, in the command's words */
    if (beams > 1 && n_seq > beams) {
        usage_error("generate", "-N (--n-sequences) %d is more than --beams %d: beam search returns at most one "
                    "hypothesis per beam", n_seq, beams);
        goto done;
    }
    if (beams > 1 && gp.do_sample == 1) {
        usage_error("generate", "--do-sample true does not go with --beams %d (beam sampling is not supported; "
                    "beam search picks the most likely tokens)", beams);
        goto done;
    }
    if (beams == 1 && gp.do_sample == 0 && n_seq > 1) {
        usage_error("generate", "greedy search (--greedy, --do-sample false) gives one sequence: -N %d needs sampling "
                    "or --beams", n_seq);
        goto done;
    }
    if (gp.do_sample == 1 && gp.temperature == 0.0f) {
        usage_error("generate", "--do-sample true needs a temperature above 0 (--temp 0 is greedy)");
        goto done;
    }
    if (beams > 1 && stops.n > 0) {
        usage_error("generate", "--stop does not go with --beams (beam search ranks whole hypotheses)");
        goto done;
    }
    if (beams > 1 && slide) {
        usage_error("generate", "--slide does not go with --beams (the beams keep their whole context)");
        goto done;
    }
    if (logprobs >= 0 && !json) {
        usage_error("generate", "--logprobs goes with --json (the log-probabilities are printed in its lines)");
        goto done;
    }
    gp.seed = seed.value;
    /* as in Hugging Face's generate(): max_length alone lifts the default
     * of new tokens; max_new_tokens given wins over it */
    if (n_predict != INT_MIN && max_length > 0) {
        fprintf(stderr, "gpt generate: warning: -n %d wins over --max-length %d (as max_new_tokens does over "
                "max_length in Hugging Face's generate())\n", n_predict, max_length);
        max_length = 0;
    }
    gp.max_new_tokens = n_predict == INT_MIN ? (max_length > 0 ? -1 : 128) : n_predict;
    gp.max_length = max_length;
    gp.n_sequences = n_seq;
    gp.num_beams = beams;
    gp.n_logprobs = logprobs > 0 ? logprobs : 0;
    gp.stop = stops.v;
    gp.n_stop = stops.n;
    gp.ignore_eos = ignore_eos;
    gp.special = special;
    gp.context_policy = slide ? GPT_CONTEXT_SLIDE : GPT_CONTEXT_STOP;
    if (gpt_generate_params_check(&gp, &err) != GPT_OK) {
        usage_error("generate", "%s", err.message);
        goto done;
    }
    rc = 1;
    if (verbose)
        fprintf(stderr, "gpt generate: seed %llu%s\n", (unsigned long long)gp.seed,
                seed.random ? " (drawn at random; --seed with it repeats this run)" : "");

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
    n_streams = beams > 1 ? beams : n_seq;
    cp.n_seq = n_streams;
    {
        gpt_config cfg = gpt_model_config(m);
        int n_ctx = cp.n_ctx > 0 && cp.n_ctx < cfg.n_ctx ? cp.n_ctx : cfg.n_ctx;
        cp.kv_size = kv_size_for(n_ctx, n_streams, gp.max_new_tokens, max_length, slide);
    }
    if (!(c = gpt_context_new(m, &cp, &err))) {
        fprintf(stderr, "gpt generate: %s\n", err.message);
        goto done;
    }
    /* The prompt goes in first, alone, so that a prompt that does not fit
     * fails before anything is printed and its speed can be told apart;
     * the generator then continues sequence 0 (and copies it to the
     * others) with samplers seeded as a single run's, so the text is the
     * one a single call gives. */
    gp0 = gp;
    gp0.max_new_tokens = 0;
    gp0.max_length = 0;
    gp0.n_sequences = 1;
    gp0.num_beams = 1;
    gp0.do_sample = -1;
    gp0.n_logprobs = 0;
    gp0.stop = NULL;
    gp0.n_stop = 0;
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
    if (!slide && gp.max_new_tokens != 0 && gpt_context_n_past(c) >= gpt_context_n_ctx(c) &&
        !(max_length > 0 && gpt_context_n_past(c) >= max_length)) {
        fprintf(stderr, "gpt generate: no room to generate: the prompt fills all %d positions of the context (-c "
                "sets the context size, --slide keeps going)\n", gpt_context_n_ctx(c));
        goto done;
    }
    if (!(g = gpt_generator_new(c, "", &gp, &err))) {
        fprintf(stderr, "gpt generate: %s\n", err.message);
        goto done;
    }

    out.n = beams > 1 ? n_seq : n_streams;
    out.seqs = (seq_out *)gpt__calloc((size_t)out.n, sizeof(seq_out));
    if (!out.seqs) {
        fprintf(stderr, "gpt generate: out of memory\n");
        goto done;
    }
    out.json = json;
    out.headers = !json && out.n > 1;
    out.echo = echo;
    out.beams = beams > 1;
    out.n_logprobs = logprobs;
    out.prompt = prompt ? prompt : "";
    out.prompt_len = strlen(out.prompt);
    out.seed = gp.seed;
    out.tok = gpt_model_tokenizer(m);
    out.last_newline = 1;
    section_start(&out, 0);
    while (!out.failed && !out.oom && (r = gpt_generator_next(g, &piece)) > 0)
        if (on_piece(&out, &piece)) break;
    t2 = cli_now();
    if (out.failed || cli_stdout_failed("generate")) goto done;
    if (out.oom) {
        fprintf(stderr, "gpt generate: out of memory for the output\n");
        goto done;
    }
    if (r < 0) {
        /* what has ended is printed; the message says why the rest is not */
        fprintf(stderr, "gpt generate: %s\n", gpt_generator_error(g));
        goto done;
    }
    for (i = out.cur; i < out.n; i++) /* (never: every continuation ends with a piece) */
        if (out.seqs[i].why == GPT_STOP_NONE) out.seqs[i].why = GPT_STOP_CALLBACK;
    advance(&out);
    if (out.n == 1 && !json && out.bytes && !out.last_newline && cli_isatty(stdout)) fputc('\n', stdout);
    if (cli_stdout_failed("generate")) goto done;
    {
        int full = 0;
        for (i = 0; i < out.n; i++) full += out.seqs[i].why == GPT_STOP_CONTEXT_FULL;
        if (full == out.n && out.n_generated == 0) {
            fprintf(stderr, "gpt generate: no room to generate: the context is full (-c sets the context size, "
                    "--slide keeps going)\n");
            goto done;
        }
        if (full && out.n == 1)
            fprintf(stderr, "gpt generate: stopped: the context is full: all %d positions are in use (--slide keeps "
                    "going, -c sets the size)\n", gpt_context_n_ctx(c));
        else if (full)
            fprintf(stderr, "gpt generate: %d of %d continuations stopped: the context is full: all %d positions are "
                    "in use (--slide keeps going, -c sets the size)\n", full, out.n, gpt_context_n_ctx(c));
    }
    rc = 0;
    if (verbose) {
        fprintf(stderr, "gpt generate: prompt: %d tokens in %.3f s (%.1f tokens/s)\n", res0.n_prompt_tokens, t1 - t0,
                rate(res0.n_prompt_tokens, t1 - t0));
        if (out.n == 1) {
            fprintf(stderr, "gpt generate: generation: %d tokens in %.3f s (%.1f tokens/s), stop: %s\n",
                    out.n_generated, t2 - t1, rate(out.n_generated, t2 - t1), stop_name(out.seqs[0].why));
        } else {
            fprintf(stderr, "gpt generate: generation: %d sequences, %d tokens in %.3f s (%.1f tokens/s), stop:",
                    out.n, out.n_generated, t2 - t1, rate(out.n_generated, t2 - t1));
            for (i = 0; i < out.n; i++) fprintf(stderr, "%s %s", i ? "," : "", stop_name(out.seqs[i].why));
            fputc('\n', stderr);
        }
    }
done:
    if (out.seqs)
        for (i = 0; i < out.n; i++) {
            buf_free(&out.seqs[i].text);
            buf_free(&out.seqs[i].tokens);
            buf_free(&out.seqs[i].logprobs);
        }
    gpt__free(out.seqs);
    gpt_generator_free(g);
    gpt_context_free(c);
    gpt_model_free(m);
    gpt__free(prompt_buf);
    gpt__free((void *)stops.v);
    return rc;
}
