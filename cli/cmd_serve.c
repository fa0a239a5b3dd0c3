/* cmd_serve.c - `gpt serve`: OpenAI's completions API over HTTP, with
 * continuous batching (docs/SERVER.md; the parts are listed in serve.h). */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "serve.h"

static const char *intro =
    "usage: gpt serve [-m MODEL] [--host 127.0.0.1] [--port 8080] [--slots N] [options]\n"
    "\n"
    "Serves the model over HTTP with OpenAI's completions API (POST /v1/completions,\n"
    "GET /v1/models) and GET /health, POST /tokenize and POST /detokenize as\n"
    "llama.cpp's server has them. Every running request advances in one batched\n"
    "step per token; the same request with the same seed gives the same text\n"
    "whether the server is idle or busy. Prints \"listening on http://HOST:PORT\"\n"
    "on stderr once it accepts connections. SIGINT or SIGTERM stops accepting,\n"
    "answers the requests already received and exits with status 0.\n"
    "docs/SERVER.md has the endpoints, the limits and examples.\n"
    "\n"
    "options:\n";

static const char *epilog =
    "\n"
    "Listening on another address than 127.0.0.1 exposes the model to the network:\n"
    "use --api-key there (or a proxy that authenticates).\n";

/* "models/gpt2-124M.bin" -> "gpt2-124M" */
static void name_from_path(const char *path, char *out, size_t cap)
{
    const char *b = strrchr(path, '/'), *dot;
    size_t n;
#if defined(_WIN32)
    const char *bs = strrchr(path, '\\');
    if (bs && (!b || bs > b)) b = bs;
#endif
    b = b ? b + 1 : path;
    dot = strrchr(b, '.');
    n = dot && dot != b ? (size_t)(dot - b) : strlen(b);
    if (n >= cap) n = cap - 1;
    memcpy(out, b, n);
    out[n] = 0;
    if (!out[0]) snprintf(out, cap, "gpt2");
}

/* The first line of a file, for --api-key-file. */
static char *read_key_file(const char *path)
{
    gpt_error err;
    size_t len;
    char *s = cli_read_file(path, 4096, &len, &err), *nl;
    if (!s) {
        fprintf(stderr, "gpt serve: %s\n", err.message);
        return NULL;
    }
    if ((nl = strpbrk(s, "\r\n")) != NULL) *nl = 0;
    if (!s[0]) {
        fprintf(stderr, "gpt serve: %s holds no key on its first line\n", path);
        gpt__free(s);
        return NULL;
    }
    return s;
}

int cmd_serve(int argc, char **argv)
{
    const char *model_path = NULL, *host = "127.0.0.1", *api_key = NULL, *key_file = NULL, *alias = NULL;
    const char *used = NULL;
    char name[128], *key_buf = NULL;
    int port = 8080, slots = 4, n_ctx = 0, n_threads = 0, kv_type = 0, timeout = 60, queue = 64, max_conns = 512;
    int max_body = 1 << 20, max_head = 16384, max_tokens = 0, no_mmap = 0, verbose = 0, rc;
    gpt_model *m = NULL;
    gpt_config mc;
    srv_server s;
    srv_sched_params sp;
    const cli_option options[] = {
        OPT_STRING("model", 'm', &model_path, "PATH", "checkpoint (default: models/demo.bin)"),
        OPT_STRING("alias", 'a', &alias, "NAME", "the model's name in the API (default: the file's name\nwithout .bin)"),
        OPT_STRING("host", 0, &host, "HOST", "address to listen on (default 127.0.0.1; 0.0.0.0 or ::\nlistens on every interface)"),
        OPT_INT("port", 0, &port, "N", 0, 65535, "port (default 8080; 0: any free port, printed)"),
        OPT_SECTION("batching:"),
        OPT_INT("slots", 0, &slots, "N", 1, 1024,
                "sequences decoded together: completions running at once\n(default 4; a request with n choices takes n)"),
        OPT_INT("queue", 0, &queue, "N", 0, 65536,
                "prompts that may wait for a slot (default 64); more are\nanswered 503"),
        OPT_INT("ctx-size", 'c', &n_ctx, "N", 0, INT_MAX, "positions per sequence (default 0: the model's)"),
        OPT_INT("threads", 't', &n_threads, "N", 0, 256, "threads (default 0: one per CPU)"),
        OPT_CHOICE("kv", 0, &kv_type, "TYPE", "auto|f16|f32", "KV cache storage (default auto: f16 unless the\nweights are f32)"),
        OPT_FLAG("no-mmap", 0, &no_mmap, 1, "read the model into memory instead of mapping it"),
        OPT_SECTION("safety:"),
        OPT_STRING("api-key", 0, &api_key, "KEY", "require \"Authorization: Bearer KEY\" (all but /health)"),
        OPT_STRING("api-key-file", 0, &key_file, "PATH", "the same, the key being the file's first line"),
        OPT_INT("timeout", 0, &timeout, "SECONDS", 1, 86400,
                "a request must arrive within it, an idle connection is\nclosed after it, a client that reads "
                "nothing for it is\ndropped (default 60)"),
        OPT_INT("max-conns", 0, &max_conns, "N", 1, 100000, "open connections (default 512); more are answered 503"),
        OPT_INT("max-body", 0, &max_body, "BYTES", 1024, 1 << 30, "request body (default 1048576); more is 413"),
        OPT_INT("max-header", 0, &max_head, "BYTES", 1024, 1 << 20,
                "request line and header fields (default 16384); more is 431"),
        OPT_INT("max-tokens", 0, &max_tokens, "N", 0, INT_MAX, "most max_tokens a request may ask (default 0: the\ncontext size)"),
        OPT_FLAG("verbose", 'v', &verbose, 1, "log every request on stderr"),
        OPT_END};
    const cli_command cmd = {"serve", intro, options, epilog};

    if ((rc = cli_parse(&cmd, argc, argv)) >= 0) return rc;
    if (api_key && key_file) return usage_error("serve", "give --api-key or --api-key-file, not both");
    if (api_key && !api_key[0]) return usage_error("serve", "--api-key needs a non-empty key");
#if defined(_WIN32)
    (void)name_from_path;
    (void)read_key_file;
    (void)m;
    (void)mc;
    (void)s;
    (void)sp;
    (void)used;
    (void)name;
    (void)key_buf;
    fprintf(stderr, "gpt serve: not supported on Windows (it is built on POSIX sockets); run it on Linux, macOS or "
            "WSL\n");
    return 1;
#else
    if (key_file && !(api_key = key_buf = read_key_file(key_file))) return 1;
    if (!(m = cli_load_model(model_path, no_mmap, &used))) {
        gpt__free(key_buf);
        return 1;
    }
    mc = gpt_model_config(m);
    if (n_ctx > mc.n_ctx) {
        fprintf(stderr, "gpt serve: -c %d is more than the model's context (%d positions)\n", n_ctx, mc.n_ctx);
        gpt_model_free(m);
        gpt__free(key_buf);
        return 2;
    }
    if (n_ctx == 0) n_ctx = mc.n_ctx;
    if (alias) snprintf(name, sizeof name, "%s", alias);
    else name_from_path(model_path ? model_path : used ? used : "demo", name, sizeof name);

    memset(&s, 0, sizeof s);
    s.cfg.host = host;
    s.cfg.port = port;
    s.cfg.api_key = api_key;
    s.cfg.model_name = name;
    s.cfg.model_created = (long long)time(NULL);
    s.cfg.timeout = timeout;
    s.cfg.max_conns = max_conns;
    s.cfg.http.max_head = (size_t)max_head;
    s.cfg.http.max_body = (size_t)max_body;
    s.cfg.api.n_ctx = n_ctx;
    s.cfg.api.n_vocab = mc.n_vocab;
    s.cfg.api.max_tokens = max_tokens > 0 && max_tokens < n_ctx ? max_tokens : n_ctx;
    s.cfg.api.max_choices = slots;
    s.cfg.verbose = verbose;
    s.model = m;
    s.tok = gpt_model_tokenizer(m);
    sp.slots = slots;
    sp.queue = queue;
    sp.n_ctx = n_ctx;
    sp.n_threads = n_threads;
    sp.kv_type = kv_type;
    sp.verbose = verbose;
    fprintf(stderr, "gpt serve: model \"%s\" (%s), %d slots of %d positions, queue %d\n", name,
            model_path ? model_path : used ? used : "demo", slots, n_ctx, queue);
    rc = srv_run(&s, &sp);
    gpt_model_free(m);
    gpt__free(key_buf);
    return rc;
#endif
}
