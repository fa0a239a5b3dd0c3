/* main.c - the `gpt` command: dispatches to the subcommands. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "gpt.h"

/* Whatever the command did, a write error on stdout (a full disk, a closed
 * pipe or stdout) turns success into failure, with a message. */
static int finish(const char *cmd, int rc)
{
    if (cli_stdout_failed(cmd)) return rc ? rc : 1;
    if (fclose(stdout) != 0) {
        fprintf(stderr, "gpt %s: cannot write to stdout: %s\n", cmd, strerror(errno));
        return rc ? rc : 1;
    }
    return rc;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: gpt COMMAND [options]\n"
            "\n"
            "Runs GPT-2 style language models on the CPU (gpt.c %s).\n"
            "\n"
            "commands:\n"
            "  generate     continue a prompt (default: the demo model in models/)\n"
            "  score        log-probability of every token, and perplexity\n"
            "  tokenize     text on stdin -> token ids\n"
            "  detokenize   token ids on stdin -> text\n"
            "  info         hyperparameters and size of a checkpoint\n"
            "  convert      write a checkpoint from Hugging Face, llm.c or random weights\n"
            "  bench        speed against the machine's memory bandwidth and FMA peak\n"
            "  serve        an HTTP server with OpenAI's completions API (continuous batching)\n"

            "\n"
            "`gpt COMMAND --help` describes each command. `gpt --version` prints the version.\n",
            gpt_version());
}

int main(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*fn)(int, char **);
    } cmds[] = {{"generate", cmd_generate}, {"score", cmd_score},     {"tokenize", cmd_tokenize},
                {"detokenize", cmd_detokenize}, {"info", cmd_info}, {"convert", cmd_convert},
                {"bench", cmd_bench}, {"serve", cmd_serve}};
    size_t i;
    cli_guard_std_streams();
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
        printf("gpt %s\n", gpt_version());
        return finish("--version", 0);
    }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return finish("--help", 0);
    }
    for (i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        if (strcmp(argv[1], cmds[i].name) == 0) return finish(cmds[i].name, cmds[i].fn(argc - 1, argv + 1));
    fprintf(stderr, "gpt: unknown command \"%s\"\n\n", argv[1]);
    usage(stderr);
    return 2;
}
