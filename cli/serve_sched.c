/*
 * serve_sched.c - the scheduler of `gpt serve`: continuous batching.
 *
 * One thread owns the context (n_seq = slots sequences) and makes every
 * library call on it. Each turn of its loop:
 *   1. under the mutex: drops the jobs whose client went away, and moves
 *      jobs from the queue to free sequences (first come, first served);
 *   2. starts the new jobs: clears their sequences and creates their
 *      generators (an echoed prompt with logprobs is scored first);
 *   3. one gpt_generator_step for every running job: a single batched
 *      forward step gives each running choice its next token, and a new
 *      job's prompt is evaluated in that same step;
 *   4. takes each job's pieces (text, tokens, log-probabilities, why a
 *      choice ended), renders them as stream events or keeps them for the
 *      response, and, under the mutex, hands them to the request;
 *   5. wakes the network thread through the pipe.
 * The library guarantees that a sequence's logits do not depend on what
 * else is in the step, so a request's text is the same alone or under load.
 */
#if (defined(__unix__) || defined(__APPLE__)) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif
#include "serve.h"

#if !defined(_WIN32)
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Sequences of the context that scores echoed prompts: each is a row whose
 * logits one evaluation can keep (gpt_context_max_logits). */
#define SCORE_ROWS 32

struct srv_sched {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    const gpt_model *model;
    const gpt_tokenizer *tok;
    gpt_context *ctx;
    gpt_context *score;    /* made when an echoed prompt's logprobs are first asked */
    srv_sched_params p;
    int wake_fd;
    int eot;
    /* under mu */
    srv_job *q_head, *q_tail;
    int q_len, q_seqs;     /* jobs waiting, and the sequences they need */
    int *free_seqs;
    int n_free;
    srv_job **running;     /* [slots] */
    int n_running;
    int stop;
    /* the scheduler thread's */
    gpt_generator **gens;  /* [slots] */
    srv_job **stepped;     /* [slots] */
    srv_job **fresh;       /* [slots] */
    srv_job **dropped;     /* [slots] */
    sbuf scratch;          /* stream events of the job being published */
};

static void wake(srv_sched *s)
{
    char c = 1;
    ssize_t w;
    do {
        w = write(s->wake_fd, &c, 1);
    } while (w < 0 && errno == EINTR); /* EAGAIN: the pipe is full, the other side will look anyway */
}

/* ------------------------------------------------------------------------ */
/* Under the mutex                                                          */

static int job_gone(const srv_job *j) { return j->req->cancelled || j->req->failed; }

/* The job has ended (its generator is freed and its sequences cleared):
 * gives back its sequences; the request is finished with its last job. */
static void job_done(srv_sched *s, srv_job *j)
{
    srv_request *r = j->req;
    int k;
    if (j->state == SRV_JOB_RUNNING) {
        for (k = 0; k < r->n; k++) s->free_seqs[s->n_free++] = j->seqs[k];
        for (k = 0; k < s->n_running; k++)
            if (s->running[k] == j) {
                s->running[k] = s->running[--s->n_running];
                break;
            }
    }
    j->state = SRV_JOB_DONE;
    if (--r->jobs_left == 0 && --r->refs == 0) srv_request_free(r);
}

static void job_fail(srv_sched *s, srv_job *j, const char *why)
{
    srv_request *r = j->req;
    if (!r->failed) {
        r->failed = 1;
        api_fail(&r->error, 500, "server_error", NULL, NULL, "generation failed: %s", why);
    }
    (void)s;
}

/* Drops queued jobs whose request is gone; picks running ones to drop. */
static int sweep(srv_sched *s, srv_job **dropped)
{
    srv_job **pp = &s->q_head, *j;
    int n = 0, k;
    s->q_tail = NULL;
    while ((j = *pp) != NULL) {
        if (job_gone(j)) {
            *pp = j->next;
            s->q_len--;
            s->q_seqs -= j->req->n;
            job_done(s, j);
            continue;
        }
        s->q_tail = j;
        pp = &j->next;
    }
    for (k = 0; k < s->n_running; k++)
        if (job_gone(s->running[k])) dropped[n++] = s->running[k];
    return n;
}

/* Moves queued jobs to free sequences, in order. */
static int admit(srv_sched *s, srv_job **fresh)
{
    int n = 0, k;
    while (s->q_head && s->n_free >= s->q_head->req->n) {
        srv_job *j = s->q_head;
        s->q_head = j->next;
        if (!s->q_head) s->q_tail = NULL;
        s->q_len--;
        s->q_seqs -= j->req->n;
        j->next = NULL;
        for (k = 0; k < j->req->n; k++) j->seqs[k] = s->free_seqs[--s->n_free];
        j->state = SRV_JOB_RUNNING;
        s->running[s->n_running++] = j;
        fresh[n++] = j;
    }
    return n;
}

/* ------------------------------------------------------------------------ */
/* The scheduler thread                                                     */

/* Frees a running job's generator and empties its sequences. */
static void job_release_seqs(srv_sched *s, srv_job *j)
{
    int k;
    gpt_generator_free(j->gen);
    j->gen = NULL;
    for (k = 0; k < j->req->n; k++) gpt_seq_clear(s->ctx, j->seqs[k]);
}

/* log p(id) and the n most likely ids from raw logits, as the library
 * computes them for generated tokens. */
static float logprobs_of(const float *logits, int V, int id, gpt_token_logprob *top, int n, int *n_top)
{
    double mx = -INFINITY, sum = 0.0, lse;
    int i, k;
    for (i = 0; i < V; i++)
        if (logits[i] > mx) mx = logits[i];
    for (i = 0; i < V; i++) sum += exp((double)logits[i] - mx);
    lse = mx + log(sum);
    *n_top = 0;
    for (i = 0; i < V && n > 0; i++) {
        float v = logits[i];
        if (*n_top == n && !(v > top[n - 1].logprob)) continue;
        k = *n_top < n ? (*n_top)++ : n - 1;
        while (k > 0 && v > top[k - 1].logprob) {
            top[k] = top[k - 1];
            k--;
        }
        top[k].token = i;
        top[k].logprob = v;
    }
    for (k = 0; k < *n_top; k++) top[k].logprob = (float)(top[k].logprob - lse);
    return (float)(logits[id] - lse);
}

/* echo with logprobs: the prompt's tokens and their log-probabilities
 * (the first has none), on a context of its own, SCORE_ROWS at a time. */
static int score_prompt(srv_sched *s, srv_job *j, char *why, size_t why_cap)
{
    gpt_token_logprob top[GPT_MAX_LOGPROBS];
    unsigned char keep[SCORE_ROWS];
    int V = gpt_model_config(s->model).n_vocab, n_top = j->req->logprobs, pos, i, got;
    gpt_error err;
    if (j->n_ids == 0) return 1;
    if (!s->score) {
        gpt_context_params cp = gpt_context_defaults();
        cp.n_ctx = s->p.n_ctx;
        cp.n_threads = s->p.n_threads;
        cp.kv_type = s->p.kv_type;
        cp.n_seq = SCORE_ROWS;
        cp.kv_size = s->p.n_ctx;
        if (!(s->score = gpt_context_new(s->model, &cp, &err))) {
            snprintf(why, why_cap, "%s", err.message);
            return 0;
        }
    }
    if (!srv_tokens_add(&j->prompt_toks, j->ids[0], NAN, NULL, 0)) {
        snprintf(why, why_cap, "out of memory");
        return 0;
    }
    memset(keep, 1, sizeof keep);
    gpt_seq_clear(s->score, 0);
    for (pos = 0; pos < j->n_ids - 1; pos += SCORE_ROWS) {
        gpt_batch b;
        int k = j->n_ids - 1 - pos < SCORE_ROWS ? j->n_ids - 1 - pos : SCORE_ROWS;
        b.n = k;
        b.tokens = j->ids + pos;
        b.seq = NULL;
        b.logits = keep;
        if (gpt_eval_batch(s->score, &b) != GPT_OK) {
            snprintf(why, why_cap, "%s", gpt_context_error(s->score));
            return 0;
        }
        for (i = 0; i < k; i++) {
            const float *lg = gpt_logits_batch(s->score, i);
            int next = j->ids[pos + i + 1];
            float lp = lg ? logprobs_of(lg, V, next, top, n_top, &got) : NAN;
            if (!lg || !srv_tokens_add(&j->prompt_toks, next, lp, top, got)) {
                snprintf(why, why_cap, "cannot score the prompt");
                return 0;
            }
        }
    }
    gpt_seq_clear(s->score, 0);
    return 1;
}

/* Creates a new job's generator; echo in a stream sends the prompt first. */
static int job_start(srv_sched *s, srv_job *j, char *why, size_t why_cap)
{
    srv_request *r = j->req;
    gpt_generate_params gp = r->gp;
    gpt_error err;
    int k;
    for (k = 0; k < r->n; k++) gpt_seq_clear(s->ctx, j->seqs[k]);
    if (r->echo && r->logprobs >= 0 && !score_prompt(s, j, why, why_cap)) return 0;
    gp.n_sequences = r->n;
    if (!(j->gen = gpt_generator_new_ids(s->ctx, j->ids, j->n_ids, j->seqs, &gp, &err))) {
        snprintf(why, why_cap, "%s", err.message);
        return 0;
    }
    j->n_running = r->n;
    if (r->stream && r->echo)
        for (k = 0; k < r->n; k++)
            api_render_chunk(&s->scratch, r, j, k, j->prompt_text, j->prompt_len,
                             r->logprobs >= 0 ? &j->prompt_toks : NULL, 0, GPT_STOP_NONE);
    return 1;
}

/* Takes the pieces a step left in a job's generator. Returns 0 when the
 * generator failed (why says how). */
static int job_drain(srv_sched *s, srv_job *j, char *why, size_t why_cap)
{
    srv_request *r = j->req;
    gpt_piece piece;
    while (gpt_generator_pending(j->gen) > 0) {
        int rc = gpt_generator_next(j->gen, &piece), from, listed;
        srv_choice *ch;
        if (rc < 0) {
            snprintf(why, why_cap, "%s", gpt_generator_error(j->gen));
            return 0;
        }
        if (rc == 0) break;
        ch = &j->choices[piece.seq];
        from = ch->toks.n;
        listed = 0;
        if (piece.token >= 0) {
            ch->n_generated++;
            /* the logprobs list every sampled token but the <|endoftext|> that ends a choice */
            if (r->logprobs >= 0 && !(piece.stop_reason == GPT_STOP_EOS && piece.token == s->eot)) {
                if (!srv_tokens_add(&ch->toks, piece.token, piece.logprob, piece.top, piece.n_top)) {
                    snprintf(why, why_cap, "out of memory");
                    return 0;
                }
                listed = 1;
            }
        }
        if (piece.stop_reason != GPT_STOP_NONE) {
            ch->finish = piece.stop_reason;
            j->n_running--;
        }
        if (!r->stream) {
            sb_put(&ch->text, piece.text, piece.len);
            if (ch->text.failed) {
                snprintf(why, why_cap, "out of memory");
                return 0;
            }
        } else if (piece.len > 0 || listed || piece.stop_reason != GPT_STOP_NONE) {
            api_render_chunk(&s->scratch, r, j, piece.seq, piece.text, piece.len, listed ? &ch->toks : NULL, from,
                             piece.stop_reason);
        }
    }
    return 1;
}

/* Hands what a job produced to its request; ends the job when it is done.
 * Returns 1 when there was something to tell. */
static int job_publish(srv_sched *s, srv_job *j, int ended)
{
    int told = s->scratch.n > 0 || ended;
    if (ended) job_release_seqs(s, j);
    pthread_mutex_lock(&s->mu);
    if (s->scratch.n > 0) sb_put(&j->req->events, s->scratch.p, s->scratch.n);
    if (s->scratch.failed || j->req->events.failed) job_fail(s, j, "out of memory for the stream");
    if (ended) job_done(s, j);
    pthread_mutex_unlock(&s->mu);
    sb_reset(&s->scratch);
    return told;
}

/* One turn: steps every running job and publishes the pieces. */
static int step_all(srv_sched *s)
{
    int n = 0, i, told = 0;
    gpt_status st;
    char why[400];
    pthread_mutex_lock(&s->mu);
    for (i = 0; i < s->n_running; i++)
        if (s->running[i]->gen) {
            s->stepped[n] = s->running[i];
            s->gens[n++] = s->running[i]->gen;
        }
    pthread_mutex_unlock(&s->mu);
    if (n == 0) return 0;
    st = gpt_generator_step(s->gens, n);
    for (i = 0; i < n; i++) {
        srv_job *j = s->stepped[i];
        int ok = st == GPT_OK && job_drain(s, j, why, sizeof why);
        if (!ok) {
            if (st != GPT_OK)
                snprintf(why, sizeof why, "%s", gpt_generator_error(j->gen)[0] ? gpt_generator_error(j->gen)
                                                                               : gpt_status_name(st));
            sb_reset(&s->scratch);
            pthread_mutex_lock(&s->mu);
            job_fail(s, j, why);
            pthread_mutex_unlock(&s->mu);
            told |= job_publish(s, j, 1);
            continue;
        }
        told |= job_publish(s, j, j->n_running == 0);
    }
    return told;
}

static void *sched_main(void *arg)
{
    srv_sched *s = (srv_sched *)arg;
    char why[400];
    for (;;) {
        int n_drop, n_fresh = 0, i, told = 0;
        pthread_mutex_lock(&s->mu);
        for (;;) {
            n_drop = sweep(s, s->dropped);
            n_fresh = admit(s, s->fresh);
            if (n_drop || n_fresh || s->n_running) break;
            if (s->stop && !s->q_head) {
                pthread_mutex_unlock(&s->mu);
                return NULL;
            }
            pthread_cond_wait(&s->cv, &s->mu);
        }
        pthread_mutex_unlock(&s->mu);
        for (i = 0; i < n_drop; i++) { /* clients gone: their sequences are free at once */
            srv_job *j = s->dropped[i];
            if (s->p.verbose && j->req->cancelled) {
                int k, tokens = 0;
                for (k = 0; k < j->req->n; k++) tokens += j->choices[k].n_generated;
                fprintf(stderr, "gpt serve: cancelled a completion whose client went away, after %d tokens; %d "
                        "sequences free\n", tokens, j->req->n);
            }
            job_release_seqs(s, j);
            pthread_mutex_lock(&s->mu);
            job_done(s, s->dropped[i]);
            pthread_mutex_unlock(&s->mu);
            told = 1;
        }
        for (i = 0; i < n_fresh; i++) {
            srv_job *j = s->fresh[i];
            if (!job_start(s, j, why, sizeof why)) {
                sb_reset(&s->scratch);
                pthread_mutex_lock(&s->mu);
                job_fail(s, j, why);
                pthread_mutex_unlock(&s->mu);
                job_publish(s, j, 1);
            } else {
                job_publish(s, j, 0);
            }
            told = 1;
        }
        told |= step_all(s);
        if (told) wake(s);
    }
}

/* ------------------------------------------------------------------------ */
/* The network thread's side                                                */

static void sched_free(srv_sched *s)
{
    gpt_context_free(s->ctx);
    gpt_context_free(s->score);
    gpt__free(s->free_seqs);
    gpt__free(s->running);
    gpt__free(s->gens);
    gpt__free(s->stepped);
    gpt__free(s->fresh);
    gpt__free(s->dropped);
    sb_free(&s->scratch);
    gpt__free(s);
}

static srv_sched *sched_oom(gpt_error *err)
{
    snprintf(err->message, sizeof err->message, "out of memory for the scheduler");
    err->status = GPT_ERR_OUT_OF_MEMORY;
    return NULL;
}

srv_sched *sched_start(const gpt_model *m, const srv_sched_params *p, int wake_fd, gpt_error *err)
{
    srv_sched *s = (srv_sched *)gpt__calloc(1, sizeof *s);
    gpt_context_params cp = gpt_context_defaults();
    sigset_t all, old;
    int i, rc;
    size_t n = (size_t)p->slots;
    if (!s) return sched_oom(err);
    s->model = m;
    s->tok = gpt_model_tokenizer(m);
    s->eot = gpt_tokenizer_eot(s->tok);
    s->p = *p;
    s->wake_fd = wake_fd;
    s->free_seqs = (int *)gpt__alloc(sizeof(int) * n);
    s->running = (srv_job **)gpt__calloc(n, sizeof(srv_job *));
    s->gens = (gpt_generator **)gpt__calloc(n, sizeof(gpt_generator *));
    s->stepped = (srv_job **)gpt__calloc(n, sizeof(srv_job *));
    s->fresh = (srv_job **)gpt__calloc(n, sizeof(srv_job *));
    s->dropped = (srv_job **)gpt__calloc(n, sizeof(srv_job *));
    if (!s->free_seqs || !s->running || !s->gens || !s->stepped || !s->fresh || !s->dropped) {
        sched_free(s);
        return sched_oom(err);
    }
    for (i = 0; i < p->slots; i++) s->free_seqs[i] = p->slots - 1 - i;
    s->n_free = p->slots;
    cp.n_ctx = p->n_ctx;
    cp.n_threads = p->n_threads;
    cp.kv_type = p->kv_type;
    cp.n_seq = p->slots;
    /* The context's worker threads and the scheduler never take signals:
     * SIGINT and SIGTERM go to the network thread, which shuts down. */
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    s->ctx = gpt_context_new(m, &cp, err);
    if (!s->ctx) {
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        sched_free(s);
        return NULL;
    }
    s->p.n_ctx = gpt_context_n_ctx(s->ctx);
    s->p.n_threads = gpt_context_n_threads(s->ctx);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    rc = pthread_create(&s->thread, NULL, sched_main, s);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        snprintf(err->message, sizeof err->message, "cannot start the scheduler thread: %s", strerror(rc));
        err->status = GPT_ERR_OUT_OF_MEMORY;
        pthread_mutex_destroy(&s->mu);
        pthread_cond_destroy(&s->cv);
        sched_free(s);
        return NULL;
    }
    return s;
}

int sched_submit(srv_sched *s, srv_request *r)
{
    int i, free_now, room;
    pthread_mutex_lock(&s->mu);
    free_now = s->n_free - s->q_seqs;
    room = s->p.queue + (free_now > 0 ? free_now / r->n : 0);
    if (s->stop || s->q_len + r->n_jobs > room) {
        pthread_mutex_unlock(&s->mu);
        return -1;
    }
    r->refs++;
    for (i = 0; i < r->n_jobs; i++) {
        srv_job *j = &r->jobs[i];
        j->state = SRV_JOB_QUEUED;
        j->next = NULL;
        if (s->q_tail) s->q_tail->next = j;
        else s->q_head = j;
        s->q_tail = j;
        s->q_len++;
        s->q_seqs += r->n;
    }
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

int sched_collect(srv_sched *s, srv_request *r, sbuf *out)
{
    int done;
    pthread_mutex_lock(&s->mu);
    if (r->events.n > 0) {
        sb_put(out, r->events.p, r->events.n);
        sb_reset(&r->events);
    }
    done = r->jobs_left == 0;
    pthread_mutex_unlock(&s->mu);
    return done;
}

void sched_release(srv_sched *s, srv_request *r, int cancel)
{
    int gone;
    pthread_mutex_lock(&s->mu);
    if (cancel) r->cancelled = 1;
    gone = --r->refs == 0;
    if (cancel && !gone) pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    if (gone) srv_request_free(r);
}

void sched_load(srv_sched *s, int *queued, int *running)
{
    pthread_mutex_lock(&s->mu);
    *queued = s->q_len;
    *running = s->p.slots - s->n_free;
    pthread_mutex_unlock(&s->mu);
}

void sched_stop(srv_sched *s, int cancel)
{
    int i;
    srv_job *j;
    if (!s) return;
    pthread_mutex_lock(&s->mu);
    s->stop = 1;
    if (cancel) {
        for (j = s->q_head; j; j = j->next) j->req->cancelled = 1;
        for (i = 0; i < s->n_running; i++) s->running[i]->req->cancelled = 1;
    }
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    sched_free(s);
}

#endif /* !_WIN32 */
