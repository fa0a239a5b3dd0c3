/*
 * common.h - helpers shared by the `gpt` command's parts (not the library).
 */
#ifndef GPT_CLI_COMMON_H
#define GPT_CLI_COMMON_H

#include <stddef.h>
#include <stdio.h>

#include "gpt.h"

/* Fills err (may be NULL) and returns status. */
gpt_status cli_fail(gpt_error *err, gpt_status status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Reads a whole file into a malloc'd, NUL-terminated buffer. */
char *cli_read_file(const char *path, size_t *len, gpt_error *err);
/* Reads all of a stream (stdin). */
char *cli_read_stream(FILE *f, size_t *len, gpt_error *err);

/* Path of a file shipped in the repository or installation, e.g.
 * "models/demo.bin": looked up next to the executable (../models/demo.bin in
 * a build tree, ../share/gpt/demo.bin in an installation), in the source tree
 * it was built from, then under PREFIX/share/gpt. Writes it to out and
 * returns out, or NULL if none exists. */
#define CLI_PATH_MAX 4608
const char *cli_data_path(const char *rel, char *out, size_t cap);

/* Non-zero when the stream is a terminal (progress lines go there only). */
int cli_isatty(FILE *f);

/* Monotonic-ish wall clock in seconds. */
double cli_now(void);

#endif
