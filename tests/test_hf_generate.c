/*
 * test_hf_generate.c - greedy search, beam search, the logits processors,
 * the length limits and per-token log-probabilities against the goldens of
 * tests/reference/hf_generate.py, a float64 implementation of Hugging
 * Face's generate() rules (tests/reference/README.md, "Decoding goldens").
 *
 * Every case must give the same ids (each decision is at least 2e-3 from a
 * tie in the reference), and log-probabilities and beam scores within 1e-4.
 * The caches are f32, as in the reference's exactness tests.
 */
#include <math.h>

#include "model_util.h"
#include "test.h"

#define MAX_IDS 256
#define TOPN 5

typedef struct gen_seq {
    int eos, n, ids[MAX_IDS];
    double score, logprob[MAX_IDS];
    int top_id[MAX_IDS][TOPN];
    double top_lp[MAX_IDS][TOPN];
} gen_seq;

typedef struct gen_case {
    char name[64];
    int n_prompt, prompt[MAX_IDS];
    int num_beams, max_new_tokens, max_length, min_new_tokens, no_repeat, nrs, early;
    double rep, pres, freq, lp;
    int returned;
    gen_seq seq[8];
} gen_case;

/* The next line of f into buf; 0 at the end. */
static int next_line(FILE *f, char *buf, size_t cap)
{
    size_t n;
    if (!fgets(buf, (int)cap, f)) return 0;
    n = strlen(buf);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) buf[--n] = 0;
    return 1;
}

/* "key=value" from the params line; "-" gives dash. */
static double param(const char *line, const char *key, double dash)
{
    char pat[64];
    const char *p;
    snprintf(pat, sizeof pat, " %s=", key);
    p = strstr(line, pat);
    if (!p) return NAN;
    p += strlen(pat);
    if (*p == '-' && (p[1] == ' ' || p[1] == 0)) return dash;
    if (!strncmp(p, "true", 4)) return GPT_EARLY_STOP_TRUE;
    if (!strncmp(p, "false", 5)) return GPT_EARLY_STOP_HEURISTIC;
    if (!strncmp(p, "never", 5)) return GPT_EARLY_STOP_NEVER;
    return strtod(p, NULL);
}

/* Reads one case (after its "case" line); 0 on a format error. */
static int read_case(FILE *f, gen_case *c, char *line, size_t cap)
{
    int r = -1, i, j, k, n;
    char *p, *end;
    while (next_line(f, line, cap) && strcmp(line, "end-case") != 0) {
        if (!strncmp(line, "prompt ", 7)) {
            c->n_prompt = (int)strtol(line + 7, &p, 10);
            for (i = 0; i < c->n_prompt && i < MAX_IDS; i++) c->prompt[i] = (int)strtol(p, &p, 10);
        } else if (!strncmp(line, "params ", 7)) {
            c->num_beams = (int)param(line + 6, "num_beams", 1);
            c->max_new_tokens = (int)param(line + 6, "max_new_tokens", -1);
            c->max_length = (int)param(line + 6, "max_length", 0);
            c->min_new_tokens = (int)param(line + 6, "min_new_tokens", 0);
            c->rep = param(line + 6, "repetition_penalty", 1);
            c->pres = param(line + 6, "presence_penalty", 0);
            c->freq = param(line + 6, "frequency_penalty", 0);
            c->no_repeat = (int)param(line + 6, "no_repeat_ngram_size", 0);
            c->lp = param(line + 6, "length_penalty", 1);
            c->early = (int)param(line + 6, "early_stopping", 0);
            c->nrs = (int)param(line + 6, "num_return_sequences", 1);
        } else if (!strncmp(line, "returned ", 9)) {
            c->returned = atoi(line + 9);
            if (c->returned < 1 || c->returned > 8) return 0;
        } else if (!strncmp(line, "seq ", 4)) {
            r = (int)strtol(line + 4, &p, 10);
            if (r < 0 || r >= 8) return 0;
            while (*p == ' ') p++;
            c->seq[r].eos = !strncmp(p, "eos", 3);
            p += c->seq[r].eos ? 3 : 6;
            c->seq[r].n = n = (int)strtol(p, &p, 10);
            if (n < 0 || n > MAX_IDS) return 0;
            for (i = 0; i < n; i++) c->seq[r].ids[i] = (int)strtol(p, &p, 10);
        } else if (!strncmp(line, "score ", 6)) {
            r = (int)strtol(line + 6, &p, 10);
            c->seq[r].score = strtod(p, NULL);
        } else if (!strncmp(line, "logprob ", 8)) {
            r = (int)strtol(line + 8, &p, 10);
            n = (int)strtol(p, &p, 10);
            for (i = 0; i < n && i < MAX_IDS; i++) c->seq[r].logprob[i] = strtod(p, &p);
        } else if (!strncmp(line, "top ", 4)) {
            r = (int)strtol(line + 4, &p, 10);
            j = (int)strtol(p, &p, 10);
            n = (int)strtol(p, &p, 10);
            if (j < 0 || j >= MAX_IDS || n != TOPN) return 0;
            for (k = 0; k < n; k++) {
                c->seq[r].top_id[j][k] = (int)strtol(p, &end, 10);
                c->seq[r].top_lp[j][k] = strtod(end + 1, &p);
            }
        }
    }
    return 1;
}

/* Runs a case through the generator; a description of the first
 * difference in why (empty when none). */
static void run_case(gpt_model *m, const gen_case *gc, int threads, char *why, size_t cap)
{
    gpt_context_params cp = gpt_context_defaults();
    gpt_generate_params p = gpt_generate_defaults();
    gpt_context *c;
    gpt_generator *g;
    gpt_error err;
    gpt_piece piece;
    int rc, i, k, got_n[8] = {0}, got_seqs = 0;
    why[0] = 0;
    cp.n_seq = gc->num_beams;
    cp.kv_type = GPT_KV_F32;
    cp.n_threads = threads;
    c = gpt_context_new(m, &cp, &err);
    if (!c) {
        snprintf(why, cap, "context: %s", err.message);
        return;
    }
    p.do_sample = 0;
    p.num_beams = gc->num_beams;
    p.n_sequences = gc->nrs;
    /* HF: max_new_tokens, when given, wins over max_length (the library
     * applies both limits; its front ends pass HF's precedence this way) */
    p.max_new_tokens = gc->max_new_tokens;
    p.max_length = gc->max_new_tokens >= 0 ? 0 : gc->max_length;
    p.min_new_tokens = gc->min_new_tokens;
    p.repetition_penalty = (float)gc->rep;
    p.presence_penalty = (float)gc->pres;
    p.frequency_penalty = (float)gc->freq;
    p.no_repeat_ngram_size = gc->no_repeat;
    p.length_penalty = (float)gc->lp;
    p.early_stopping = gc->early;
    p.n_logprobs = TOPN;
    g = gpt_generator_new_ids(c, gc->prompt, gc->n_prompt, NULL, &p, &err);
    if (!g) {
        snprintf(why, cap, "generator: %s", err.message);
        gpt_context_free(c);
        return;
    }
    while (!why[0] && (rc = gpt_generator_next(g, &piece)) > 0) {
        const gen_seq *want = &gc->seq[piece.seq < 8 ? piece.seq : 7];
        if (piece.seq >= gc->returned) {
            snprintf(why, cap, "a piece for sequence %d; %d were returned", piece.seq, gc->returned);
            break;
        }
        if (gc->num_beams > 1) {
            got_seqs++;
            if (fabs(piece.score - want->score) > 1e-4)
                snprintf(why, cap, "rank %d: score %.7f, want %.7f", piece.seq, piece.score, want->score);
        }
        for (i = 0; i < piece.n_tokens && !why[0]; i++) {
            int at = got_n[piece.seq]++;
            if (at >= want->n || piece.tokens[i] != want->ids[at]) {
                snprintf(why, cap, "rank %d, token %d: id %d, want %d", piece.seq, at, piece.tokens[i],
                         at < want->n ? want->ids[at] : -1);
                break;
            }
            if (fabs(piece.logprobs[i] - want->logprob[at]) > 1e-4)
                snprintf(why, cap, "rank %d, token %d: logprob %.7f, want %.7f", piece.seq, at, piece.logprobs[i],
                         want->logprob[at]);
            for (k = 0; k < TOPN && !why[0] && piece.n_top == TOPN; k++) {
                const gpt_token_logprob *t = &piece.top[i * TOPN + k];
                /* two alternatives within 1e-4 of each other may come in either order */
                int same = t->token == want->top_id[at][k] ||
                           (k + 1 < TOPN && t->token == want->top_id[at][k + 1] &&
                            fabs(want->top_lp[at][k] - want->top_lp[at][k + 1]) < 1e-4) ||
                           (k > 0 && t->token == want->top_id[at][k - 1] &&
                            fabs(want->top_lp[at][k] - want->top_lp[at][k - 1]) < 1e-4);
                if (!same || fabs(t->logprob - want->top_lp[at][k]) > 1e-4)
                    snprintf(why, cap, "rank %d, token %d, alternative %d: %d:%.7f, want %d:%.7f", piece.seq, at, k,
                             t->token, t->logprob, want->top_id[at][k], want->top_lp[at][k]);
            }
            if (piece.n_top != TOPN) snprintf(why, cap, "%d alternatives, want %d", piece.n_top, TOPN);
        }
    }
    if (!why[0] && rc < 0) snprintf(why, cap, "generation failed: %s", gpt_generator_error(g));
    for (i = 0; i < gc->returned && !why[0]; i++)
        if (got_n[i] != gc->seq[i].n)
            snprintf(why, cap, "rank %d: %d ids, want %d", i, got_n[i], gc->seq[i].n);
    if (!why[0] && gc->num_beams > 1 && got_seqs != gc->returned)
        snprintf(why, cap, "%d hypotheses, want %d", got_seqs, gc->returned);
    gpt_generator_free(g);
    gpt_context_free(c);
}

/* Every case of one golden file. */
static void check_file(const char *golden, int threads)
{
    char line[16384], model[512] = "", why[400];
    FILE *f = fopen(golden, "r");
    gpt_model *m = NULL;
    gen_case *gc = (gen_case *)malloc(sizeof *gc);
    int n_cases = 0;
    CHECKF(f != NULL && gc != NULL, "cannot read %s", golden);
    while (next_line(f, line, sizeof line)) {
        if (!strncmp(line, "model file ", 11)) {
            snprintf(model, sizeof model, "%.500s", line + 11);
            m = gpt_model_load(model, NULL);
            CHECKF(m != NULL, "%s: cannot load %s", golden, model);
        } else if (!strncmp(line, "case ", 5)) {
            memset(gc, 0, sizeof *gc);
            snprintf(gc->name, sizeof gc->name, "%.60s", line + 5);
            EXPECTF(read_case(f, gc, line, sizeof line), "%s: case %s is malformed", golden, gc->name);
            run_case(m, gc, threads, why, sizeof why);
            EXPECTF(!why[0], "%s, case %s (%d threads): %s", golden, gc->name, threads, why);
            n_cases++;
        }
    }
    printf("# %s: %d cases, %d threads\n", golden, n_cases, threads);
    EXPECTF(n_cases >= 10, "%s: only %d cases", golden, n_cases);
    fclose(f);
    free(gc);
    gpt_model_free(m);
}

TEST(demo_model_decodes_as_hugging_face)
{
    check_file("tests/data/golden/demo.generate", 2);
}

TEST(small_vocabulary_model_decodes_as_hugging_face)
{
    check_file("tests/data/golden/ckpt_l2_h3_c36_t64_v300_f32.generate", 1);
}

TEST(full_vocabulary_model_decodes_as_hugging_face)
{
    check_file("tests/data/golden/ckpt_l2_h2_c24_t64_v50257_f16.generate", 3);
}

int main(void)
{
    RUN(demo_model_decodes_as_hugging_face);
    RUN(small_vocabulary_model_decodes_as_hugging_face);
    RUN(full_vocabulary_model_decodes_as_hugging_face);
    return test_summary();
}
