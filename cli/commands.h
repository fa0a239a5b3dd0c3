/* commands.h - the subcommands of the `gpt` command. Each returns the exit
 * status (0 success, 1 failure, 2 usage error). */
#ifndef GPT_CLI_COMMANDS_H
#define GPT_CLI_COMMANDS_H

#include "gpt.h"

int cmd_generate(int argc, char **argv);
int cmd_score(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_detokenize(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_bench(int argc, char **argv);

/* Option parsing shared by the commands: each prints a message naming the
 * option on failure and returns non-zero. */
int opt_value(int argc, char **argv, int *i, const char **out);
int opt_int(int argc, char **argv, int *i, int lo, int hi, int *out);
int opt_float(int argc, char **argv, int *i, double lo, double hi, float *out);
int opt_u64(int argc, char **argv, int *i, uint64_t *out);
int opt_kv(int argc, char **argv, int *i, int *out);
int is_help(const char *arg);
int usage_error(const char *cmd, const char *fmt, ...);

/* Loads -m PATH, or the demo model when path is NULL; prints the error. */
gpt_model *cli_load_model(const char *path);

#endif
