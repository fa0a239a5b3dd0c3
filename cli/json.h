/*
 * json.h - a small, strict JSON reader (RFC 8259) for config.json, the
 * safetensors header and model.safetensors.index.json. Not part of the
 * library.
 *
 * What it accepts: exactly one JSON value with optional whitespace (space,
 * tab, CR, LF) around it. Strings must be valid UTF-8; escapes \" \\ \/ \b
 * \f \n \r \t and \uXXXX (surrogate pairs combined, unpaired surrogates
 * rejected) are decoded to UTF-8; raw control characters (< 0x20) are
 * rejected. Integers (no fraction, no exponent) must fit in int64; other
 * numbers must be finite as a double. Objects may not repeat a key. Nesting
 * is limited to JSON_MAX_DEPTH arrays/objects. Everything else - trailing
 * text, a byte-order mark, comments, trailing commas, NaN, single quotes - is
 * an error with the byte offset where it was found. The parser reads only
 * the len bytes it is given (the text need not be NUL-terminated).
 */
#ifndef GPT_CLI_JSON_H
#define GPT_CLI_JSON_H

#include <stddef.h>
#include <stdint.h>

#define JSON_MAX_DEPTH 64

typedef enum json_type { JSON_NULL, JSON_BOOL, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT } json_type;

typedef struct json json;
struct json {
    json_type type;
    size_t offset;      /* byte offset of the value in the text */
    int boolean;        /* JSON_BOOL: 0 or 1 */
    int is_int;         /* JSON_NUMBER written as an integer (fits int64) */
    int64_t integer;    /* the integer when is_int */
    double number;      /* JSON_NUMBER: its value (integers too) */
    char *str;          /* JSON_STRING: UTF-8 bytes + NUL (may hold NUL bytes: use len) */
    size_t len;         /* string bytes; array items; object members */
    json *items;        /* JSON_ARRAY: the items; JSON_OBJECT: the values, in text order */
    json *keys;         /* JSON_OBJECT: the keys (JSON_STRING), in text order */
    const json **by_key; /* JSON_OBJECT: pointers into keys, sorted by bytes */
};

typedef struct json_error {
    size_t offset;        /* byte offset of the problem */
    char message[128];    /* what is wrong, without the offset */
    int out_of_memory;    /* 1: the text may be fine; memory ran out reading it */
} json_error;

/* Parses len bytes of text. Returns the root value (free it with json_free),
 * or NULL with err filled (err may be NULL). */
json *json_parse(const char *text, size_t len, json_error *err);
void json_free(json *root);

/* Member of an object by key (a C string), or NULL if v is not an object or
 * has no such key. */
const json *json_get(const json *v, const char *key);

/* 1 and *out when v is a number written as an integer, 0 otherwise. */
int json_int(const json *v, int64_t *out);

/* Name of a type for messages: "null", "a boolean", "a number", ... */
const char *json_type_name(json_type t);

#endif
