/*
 * cli.h - what the parts of the `gpt` command share (not the library): the
 * subcommands, the table-driven option parser, reading inputs safely, model
 * loading, and small platform helpers. Each subcommand returns the exit
 * status: 0 success, 1 failure, 2 usage error.
 */
#ifndef GPT_CLI_H
#define GPT_CLI_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* The gpt command shares the library's internal helpers (gpt.h's end). */
#ifndef GPT_INTERNAL
#define GPT_INTERNAL
#endif
#include "gpt.h"

#if defined(__GNUC__)
#define CLI_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define CLI_PRINTF(a, b)
#endif

/* ------------------------------------------------------------------------ */
/* Subcommands                                                              */

int cmd_generate(int argc, char **argv);
int cmd_score(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_detokenize(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_serve(int argc, char **argv);

/* ------------------------------------------------------------------------ */
/* Options                                                                  */

typedef enum cli_opt_kind {
    CLI_SECTION, /* not an option: a heading in --help (help is its text) */
    CLI_FLAG,    /* no value: stores `set` into an int */
    CLI_INT,     /* an int in [lo, hi] */
    CLI_FLOAT,   /* a float in [lo, hi] (finite) */
    CLI_U64,     /* an integer in 0 .. 2^64 - 1 */
    CLI_STRING,  /* any string; the last one given wins */
    CLI_CHOICE,  /* one of `choices` ("auto|f16|f32"); stores its index into an int */
    CLI_LIST,    /* a string that may be repeated; appends to a cli_list */
    CLI_SEED     /* a seed into a cli_seed: an integer in 0 .. 2^64 - 1, or -1 for one
                    drawn from the operating system (cli_random_seed) */
} cli_opt_kind;

/* Values of a CLI_LIST option, in the order given (v is malloc'd; free it). */
typedef struct cli_list {
    const char **v;
    int n;
} cli_list;

/* A CLI_SEED value: the seed, and whether -1 drew it. */
typedef struct cli_seed {
    uint64_t value;
    int random;
} cli_seed;

#define CLI_NONEMPTY 1 /* CLI_STRING, CLI_LIST: an empty value is an error */

typedef struct cli_option {
    cli_opt_kind kind;
    const char *name;    /* long name without the dashes: "n-predict" */
    char short_name;     /* 'n', or 0 */
    void *value;         /* int *, float *, uint64_t *, const char **, cli_list *, cli_seed * */
    const char *arg;     /* the value in --help: "N", "PATH" */
    const char *help;    /* the description; '\n' starts a continuation line */
    double lo, hi;       /* CLI_INT, CLI_FLOAT: the accepted range */
    const char *choices; /* CLI_CHOICE: "a|b|c" */
    int set;             /* CLI_FLAG: the value stored */
    int flags;           /* CLI_NONEMPTY */
    int *seen;           /* if not NULL, set to 1 when the option is given */
} cli_option;

/* Table entries (kind, long name, short name or 0, where the value goes,
 * its name in --help, ...). */
#define OPT_SECTION(text) {CLI_SECTION, NULL, 0, NULL, NULL, text, 0, 0, NULL, 0, 0, NULL}
#define OPT_END {CLI_SECTION, NULL, 0, NULL, NULL, NULL, 0, 0, NULL, 0, 0, NULL}
#define OPT_FLAG(name, sh, ptr, set, help) {CLI_FLAG, name, sh, ptr, NULL, help, 0, 0, NULL, set, 0, NULL}
#define OPT_INT(name, sh, ptr, arg, lo, hi, help) {CLI_INT, name, sh, ptr, arg, help, lo, hi, NULL, 0, 0, NULL}
#define OPT_FLOAT(name, sh, ptr, arg, lo, hi, help) {CLI_FLOAT, name, sh, ptr, arg, help, lo, hi, NULL, 0, 0, NULL}
#define OPT_U64(name, sh, ptr, arg, seen, help) {CLI_U64, name, sh, ptr, arg, help, 0, 0, NULL, 0, 0, seen}
#define OPT_STRING(name, sh, ptr, arg, help) {CLI_STRING, name, sh, ptr, arg, help, 0, 0, NULL, 0, 0, NULL}
#define OPT_CHOICE(name, sh, ptr, arg, choices, help) {CLI_CHOICE, name, sh, ptr, arg, help, 0, 0, choices, 0, 0, NULL}
#define OPT_LIST(name, sh, ptr, arg, flags, help) {CLI_LIST, name, sh, ptr, arg, help, 0, 0, NULL, 0, flags, NULL}
#define OPT_SEED(name, sh, ptr, arg, help) {CLI_SEED, name, sh, ptr, arg, help, 0, 0, NULL, 0, 0, NULL}

/* A command's options and the text --help shows around their list. */
typedef struct cli_command {
    const char *name;         /* "generate" */
    const char *intro;        /* usage lines and description, before the options */
    const cli_option *options; /* ended by an entry with kind CLI_SECTION and help NULL */
    const char *epilog;       /* after the options, or NULL */
} cli_command;

/* Parses argv[1 .. argc) against the command's table: --name VALUE,
 * --name=VALUE, -x VALUE, flags, -h/--help, and "--" (after which every
 * word is an argument; no command takes arguments). Returns -1 when the
 * command should go on, 0 after printing --help, 2 after printing a usage
 * error that names the option, what it expects and what it got. */
int cli_parse(const cli_command *cmd, int argc, char **argv);
/* Writes the command's --help text (the option list comes from the table). */
void cli_help(const cli_command *cmd, FILE *f);
/* Prints "gpt CMD: MESSAGE" and a pointer to --help on stderr; returns 2. */
int usage_error(const char *cmd, const char *fmt, ...) CLI_PRINTF(2, 3);
/* A seed from the operating system (/dev/urandom; on Windows rand_s, which
 * is RtlGenRandom), or from the time, the clock and the process id when
 * that fails. Below 2^53, so that a JSON reader that keeps numbers as
 * doubles reads it back exactly. */
uint64_t cli_random_seed(void);

/* ------------------------------------------------------------------------ */
/* JSON output                                                              */

/* Writes n bytes of s as the inside of a JSON string (no quotes) to out,
 * which needs room for 6 * n bytes; returns the bytes written. ", \ and
 * control characters are escaped (\n, \t, \u001b, ...); well-formed UTF-8
 * is kept as it is; each maximal ill-formed subsequence (Unicode's
 * "substitution of maximal subparts", as the library cleans its text) is
 * written as \ufffd, so any bytes give valid JSON. */
size_t cli_json_escape(const char *s, size_t n, char *out);
/* Non-zero when the n bytes are well-formed UTF-8 (cli_json_escape keeps
 * them exactly). */
int cli_utf8_valid(const char *s, size_t n);

/* ------------------------------------------------------------------------ */
/* Errors, inputs and outputs                                               */


/* The most bytes the command reads from a text input (a prompt, text or ids
 * on stdin or in a file): 256 MiB. */
#define CLI_MAX_INPUT ((size_t)256 << 20)
/* The most bytes of a JSON file the converter reads (config.json, the
 * safetensors index): 64 MiB. */
#define CLI_MAX_JSON ((size_t)64 << 20)

/* Checks that path names a regular file (a symbolic link to one is fine)
 * of at most max_size bytes (0: any size) without opening it, so that a
 * FIFO or a device never blocks or floods the reader. GPT_OK, or
 * GPT_ERR_IO with a message naming the path and what it is. */
gpt_status cli_check_regular(const char *path, uint64_t max_size, gpt_error *err);
/* Reads a whole regular file of at most max_size bytes into a malloc'd,
 * NUL-terminated buffer. */
char *cli_read_file(const char *path, size_t max_size, size_t *len, gpt_error *err);
/* Reads a stream (stdin) to its end into a malloc'd, NUL-terminated buffer;
 * more than max_size bytes is an error. */
char *cli_read_stream(FILE *f, size_t max_size, size_t *len, gpt_error *err);
/* cli_read_file, or stdin when path is "-". */
char *cli_read_input(const char *path, size_t max_size, size_t *len, gpt_error *err);

/* Makes sure file descriptors 0, 1 and 2 are open (POSIX): a closed one is
 * opened on /dev/null in the direction that makes its use fail, so that a
 * file the command opens never becomes its stdout. */
void cli_guard_std_streams(void);
/* Flushes stdout; on a write error (now or earlier) prints "gpt CMD: cannot
 * write to stdout: ..." once and returns 1, else 0. */
int cli_stdout_failed(const char *cmd);
/* Records errno of a failed write to stdout for cli_stdout_failed. */
void cli_stdout_note_errno(int e);

/* ------------------------------------------------------------------------ */
/* Models and data files                                                    */

/* Loads -m PATH, or the demo model when path is NULL (its path is put in
 * *used when used is not NULL); no_mmap reads the file instead of mapping
 * it. Prints the error and returns NULL on failure. */
gpt_model *cli_load_model(const char *path, int no_mmap, const char **used);


/* Path of a file shipped in the repository or installation, e.g.
 * "models/demo.bin": looked up next to the executable (../models/demo.bin in
 * a build tree, ../share/gpt/demo.bin in an installation), in the source tree
 * it was built from, then under PREFIX/share/gpt. Writes it to out and
 * returns out, or NULL if none exists. */
#define CLI_PATH_MAX 4608
const char *cli_data_path(const char *rel, char *out, size_t cap);

/* ------------------------------------------------------------------------ */
/* Platform                                                                 */

/* Non-zero when the stream is a terminal (progress lines go there only). */
int cli_isatty(FILE *f);
/* Monotonic-ish wall clock in seconds. */
double cli_now(void);
/* stdin and stdout in binary mode (Windows; elsewhere nothing to do). */
void cli_binary_stdio(void);

#endif
