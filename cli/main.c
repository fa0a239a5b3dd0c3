/* main.c - the `gpt` command: dispatches to the subcommands. */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "gpt.h"

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
                {"bench", cmd_bench}};
    size_t i;
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
        printf("gpt %s\n", gpt_version());
        return 0;
    }
    if (is_help(argv[1]) || strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    for (i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        if (strcmp(argv[1], cmds[i].name) == 0) return cmds[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "gpt: unknown command \"%s\"\n\n", argv[1]);
    usage(stderr);
    return 2;
}
